/**
 * Debian's Chromium, driven headless through playwright-core (which downloads
 * no browser): the tests' and the bench's real browser. The flags keep it
 * from reaching out to the network (here closed: its connections would only
 * be refused) and let it run as root in a container.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const CHROMIUM = process.env.STRATA_CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p)) ?? null;

if (!CHROMIUM) console.warn('[skip] chromium is not installed (apt-get install chromium); the tests of the web page are skipped');

const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

/** A headless Chromium with a fresh profile; close() also removes the profile. Null when Chromium is not installed. */
export async function launchChromium() {
  if (!CHROMIUM) return null;
  const { chromium } = await import('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1400, height: 1000 } });
  return {
    context,
    async newPage() {
      return context.newPage();
    },
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}
