// Makes docs/ui-demo.png, the README's picture of `strata ui`: the demo store
// (`strata demo`), one of its leaves served over NBD so the page shows an open
// image, and the page in headless Chromium with demo-vm2 selected.
//   node scripts/ui-screenshot.mjs [OUT.png]
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../test/helpers/chromium.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.resolve(process.argv[2] ?? path.join(root, 'docs/ui-demo.png'));
const bin = path.join(root, 'dist/cli/strata.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-shot-'));
const store = path.join(dir, 'store');
const strata = (...args) => {
  const r = spawnSync(process.execPath, [bin, '--store', store, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`strata ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
/** A server process and the first line it prints. */
const start = (...args) =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, '--store', store, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.setEncoding('utf8').once('data', (line) => resolve({ child, line }));
    child.once('exit', (code) => reject(new Error(`strata ${args[0]} exited ${code}`)));
  });

const children = [];
let browser;
try {
  strata('demo');
  children.push((await start('serve', 'demo-vm1', '--socket', path.join(dir, 'nbd.sock'))).child);
  const ui = await start('ui', '--listen', '127.0.0.1:0');
  children.push(ui.child);
  const url = /on (http:\/\/\S+)/.exec(ui.line)[1];
  browser = await launchChromium();
  const page = await browser.newPage();
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(url);
  await page.waitForSelector('body[data-version]');
  await page.click('[data-size-by="images"]');
  await page.click('.tbody [data-image="demo-vm2"]');
  await page.waitForSelector('[data-detail="demo-vm2"]');
  await page.mouse.move(5, 5);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: out, fullPage: true });
  console.log(`${out}: ${fs.statSync(out).size} bytes`);
} finally {
  await browser?.close();
  for (const c of children) c.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 500));
  fs.rmSync(dir, { recursive: true, force: true });
}
