/**
 * The page in a real browser (Debian's Chromium, headless, through
 * playwright-core): over a store made here, the DOM shows every image with
 * the bytes `du --json` gives, the savings `stats --json` gives, the image a
 * server holds open, an image's details as `diff` and `du --sharing` say, and
 * a new clone made by another process appears without a reload.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { humanBytes } from '../../src/units.js';
import { strata, strataOk } from '../helpers/cli.js';
import { startServe, type Served } from '../helpers/serve.js';
import { available } from '../helpers/available.js';
import { CHROMIUM, launchChromium } from '../helpers/chromium.mjs';

type Browser = { newPage(): Promise<import('playwright-core').Page>; close(): Promise<void> };

let top: string;
const haveChromium = available(CHROMIUM !== null, 'chromium is not installed (apt-get install chromium)');
let store: string;
let browser: Browser;
let ui: Served;
let nbd: Served;
const json = (...args: string[]) => JSON.parse(strataOk(store, ['--json', ...args]).stdout);

beforeAll(async () => {
  if (!haveChromium) return;
  top = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-ui-page-'));
  store = path.join(top, 'store');
  const block = (b: number) => Buffer.alloc(4096, b);
  const raw = path.join(top, 'golden.raw');
  fs.writeFileSync(raw, Buffer.concat([block(1), block(2), block(3), Buffer.alloc(4096 * 5), block(4)]));
  strataOk(store, ['create', 'golden', '--from', raw]);
  // A layer over golden: its own blocks, one of them golden's block 2 at another offset (dedup).
  const apps = path.join(top, 'apps.raw');
  fs.writeFileSync(apps, Buffer.concat([block(1), block(2), block(3), block(2), block(7), Buffer.alloc(4096 * 3), block(4)]));
  strataOk(store, ['import', apps, 'apps', '--parent', 'golden']);
  strataOk(store, ['clone', 'apps', 'web1', 'web2', 'web3', 'db1']);
  strataOk(store, ['clone', 'golden', 'scratch']);
  // web2 and web3 write the same configuration; web1 writes its own data and is snapshotted.
  strataOk(store, ['write', 'web2', '--offset', '8192'], { input: Buffer.concat([block(8), block(9)]) });
  strataOk(store, ['write', 'web3', '--offset', '16384'], { input: Buffer.concat([block(8), block(9)]) });
  strataOk(store, ['write', 'web1', '--offset', '0'], { input: Buffer.concat([block(10), block(11), block(12)]) });
  strataOk(store, ['snapshot', 'web1', 'before']);
  strataOk(store, ['write', 'web1', '--offset', '4096'], { input: block(13) });
  nbd = await startServe(store, ['db1']);
  ui = await startServe(store, [], { command: 'ui', listenArgs: ['--listen', '127.0.0.1:0'] });
  browser = (await launchChromium())!; // not null: haveChromium said CHROMIUM is there
});

afterAll(async () => {
  await browser?.close();
  await ui?.stop();
  await nbd?.stop();
  if (top) fs.rmSync(top, { recursive: true, force: true });
});

describe.skipIf(!haveChromium)('the page in Chromium', () => {
  it('shows every image with du’s bytes, stats’ savings, the open image and one image’s details; a new clone appears without a reload', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await page.goto(ui.address);
    await page.waitForSelector('body[data-version]');

    // Every image, with the figures of `du --json`, in the table.
    const du = json('du') as { name: string; kind: string; referencedBytes: number; ownBytes: number; exclusiveBytes: number; sharedBytes: number }[];
    const rows = await page.$$eval('.tbody [data-image]', (els) =>
      els.map((el) => {
        const cell = (k: string) => el.querySelector(`[data-col="${k}"]`);
        const n = (k: string) => Number(cell(k)!.querySelector('[data-bytes]')!.getAttribute('data-bytes'));
        return { name: (el as HTMLElement).dataset.image!, kind: cell('kind')!.textContent, referencedBytes: n('referencedBytes'), ownBytes: n('ownBytes'), exclusiveBytes: n('exclusiveBytes'), sharedBytes: n('sharedBytes') };
      }),
    );
    expect(rows.sort((a, b) => (a.name < b.name ? -1 : 1))).toEqual(du.map(({ name, kind, referencedBytes, ownBytes, exclusiveBytes, sharedBytes }) => ({ name, kind, referencedBytes, ownBytes, exclusiveBytes, sharedBytes })));
    expect(du.length).toBe(8);
    expect(du.find((d) => d.name === 'web2')!.sharedBytes).toBe(8192); // the same configuration as web3
    // Sizes read as the CLI prints them.
    expect(await page.textContent('[data-image="web1@before"] [data-col="ownBytes"]')).toBe('12 KiB');

    // The savings, as `stats --json` gives them.
    const stats = json('stats');
    const figure = async (key: string) => Number(await page.getAttribute(`[data-figure="${key}"]`, 'data-bytes'));
    for (const key of ['logicalBytes', 'referencedBytes', 'ownBytes', 'storedBytes', 'qcow2Bytes', 'dataFiles.allocatedBytes']) {
      expect(await figure(key), key).toBe(key.split('.').reduce((o, k) => o[k], stats));
    }
    for (const key of ['zeroBytes', 'layeringBytes', 'dedupBytes']) expect(await figure(`savings.${key}`), key).toBe(stats.savings[key]);
    expect(stats.savings.dedupBytes).toBeGreaterThan(0);
    expect(Number(await page.textContent('[data-figure="images"]'))).toBe(stats.images);

    // db1 is held open by the NBD server.
    expect(await page.textContent('[data-open="db1"]')).toContain(`strata serve ${nbd.pid}`);
    expect(await page.getAttribute('[data-image="db1"]', 'class')).toContain('open');

    // The icicle has a box per image (sized by image count, every one is drawn at this size).
    await page.click('[data-size-by="images"]');
    expect((await page.$$eval('svg.icicle [data-name]', (els) => els.map((e) => e.getAttribute('data-name')))).sort()).toEqual(du.map((d) => d.name));

    // web2's details: drift from its base and the image that shares its blocks, as diff and du --sharing say.
    await page.click('[data-image="web2"]');
    await page.waitForSelector('[data-detail="web2"]');
    const detail = async (key: string) => Number(await page.getAttribute(`[data-detail-figure="${key}"]`, 'data-bytes'));
    expect(await detail('ownBytes')).toBe(du.find((d) => d.name === 'web2')!.ownBytes);
    const diff = JSON.parse(strata(store, ['--json', 'diff', 'web2', 'golden']).stdout); // exit 1: they differ
    expect(await detail('baseDifferingBytes')).toBe(diff.differingBytes);
    const sharing = json('du', 'web2', '--sharing');
    expect(sharing.sharedWith).toEqual([{ name: 'web3', kind: 'leaf', sharedBytes: 8192 }]);
    expect(await page.$$eval('[data-shared-with]', (els) => els.map((e) => [(e as HTMLElement).dataset.sharedWith, Number(e.querySelector('[data-bytes]')!.getAttribute('data-bytes'))]))).toEqual([['web3', 8192]]);

    // Search keeps only the matches.
    await page.fill('#search', 'web');
    await page.waitForFunction(() => document.querySelectorAll('.tbody [data-image]').length === 4);
    expect(await page.textContent('#count')).toBe('4 of 8');
    await page.fill('#search', '');

    const shot = path.join(top, 'page.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(fs.readFileSync(shot).subarray(1, 4).toString()).toBe('PNG');
    expect(fs.statSync(shot).size).toBeGreaterThan(20_000);

    // Another process clones: the page shows it by itself, and is the same page (no reload).
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    strataOk(store, ['clone', 'apps', 'web4']);
    await page.waitForSelector('.tbody [data-image="web4"]', { timeout: 10_000 });
    expect(await page.evaluate(() => (window as unknown as { marker: number }).marker)).toBe(42);
    expect(Number(await page.textContent('[data-figure="images"]'))).toBe(9);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('at 1400 px: drift is what each leaf wrote since it was cloned (du), the caption counts true, forest figures are labelled totals, no number is cut', async () => {
    const page = await browser.newPage();
    await page.goto(ui.address);
    await page.waitForSelector('body[data-version]');
    const du = new Map((json('du') as { name: string; ownBytes: number }[]).map((d) => [d.name, d.ownBytes]));
    const leaves = (json('ls') as { name: string; kind: string }[]).filter((i) => i.kind === 'leaf').map((i) => i.name);
    // web1 wrote its own bytes and those of its snapshot web1@before; every other leaf only its own. The
    // layer apps that web2, web3 and db1 were cloned from is none of theirs.
    const written = new Map(leaves.map((n) => [n, du.get(n)! + (n === 'web1' ? du.get('web1@before')! : 0)]));
    const wrote = [...written].filter(([, b]) => b > 0).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const shown = await page.$$eval('[data-drift]', (els) => els.map((e) => [(e as HTMLElement).dataset.drift!, Number(e.querySelector('[data-bytes]')!.getAttribute('data-bytes'))]));
    expect(shown).toEqual(wrote);
    expect(wrote.map(([n]) => n)).toEqual(['web1', 'web2', 'web3']);
    const nothing = leaves.length - wrote.length;
    expect(await page.textContent('[data-drift-caption]')).toContain(`${leaves.length} leaves; ${nothing} have written nothing since they were cloned`);
    expect(await page.textContent('[data-image="web2"] [data-col="writtenBytes"]')).toBe('8 KiB');

    // A box with images below it shows their total, said to be one; a leaf's box shows its own bytes as ls does.
    await page.click('[data-size-by="own"]');
    const subtree = (name: string): number => {
      const kids = (json('ls') as { name: string; parent: string | null }[]).filter((i) => i.parent === name).map((i) => i.name);
      return du.get(name)! + kids.reduce((n, k) => n + subtree(k), 0);
    };
    const labels = await page.$$eval('svg.icicle [data-name]', (els) =>
      els.map((e) => [e.getAttribute('data-name')!, e.querySelector('text.sub')?.textContent ?? null, Number(e.querySelector('text.sub')?.getAttribute('data-total') ?? NaN)] as const),
    );
    const golden = labels.find(([n]) => n === 'golden')!;
    expect(golden[1]).toBe(`total ${humanBytes(subtree('golden'))}`);
    expect(golden[2]).toBe(subtree('golden'));
    for (const [name, text] of labels) if (text !== null && !text.startsWith('total ')) expect(text, name).toBe(humanBytes(du.get(name)!));

    // No figure in the table or the drift list is cut with an ellipsis, even one as long as "1023.5 KiB".
    strataOk(store, ['create', 'wide', '--size', '1048064']);
    await page.waitForSelector('.tbody [data-image="wide"]', { timeout: 10_000 });
    expect(await page.textContent('[data-image="wide"] [data-col="virtualSize"]')).toBe('1023.5 KiB');
    const cut = await page.$$eval('.tbody .cell.num, ul.drift [data-bytes]', (els) => els.filter((e) => e.scrollWidth > e.clientWidth).map((e) => `${e.closest('[data-image],[data-drift]')?.getAttribute('data-image') ?? ''} ${e.textContent}`));
    expect(cut).toEqual([]);
    await page.close();
  });
});
