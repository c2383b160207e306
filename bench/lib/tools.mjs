/**
 * External tools and strata features. Nothing is installed here: a missing
 * tool is reported with the command that installs it.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
// The `strata` bin (package.json): the bundle built by npm run build.
export const STRATA_MAIN = path.join(ROOT, 'dist', 'cli', 'strata.js');

const TOOLS = [
  { bin: 'qemu-img', pkg: 'qemu-utils', required: true },
  { bin: 'qemu-nbd', pkg: 'qemu-utils', required: true },
  { bin: 'qemu-io', pkg: 'qemu-utils', required: true },
  { bin: 'fio', pkg: 'fio', required: true },
  { bin: 'mke2fs', pkg: 'e2fsprogs', required: false, why: 'building the ext4 inputs' },
  { bin: '/usr/bin/time', pkg: 'time', required: false, why: 'peak RSS of imports (else /proc VmHWM polling every 20 ms)' },
];

export function which(bin) {
  if (bin.startsWith('/')) return fs.existsSync(bin) ? bin : null;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir || '.', bin);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** Checks the tools; prints what is missing and how to install it. Returns { ok, have }. */
export function checkTools(log = console.error) {
  const have = {};
  const missing = [];
  for (const t of TOOLS) {
    have[t.bin] = which(t.bin) !== null;
    if (!have[t.bin]) missing.push(t);
  }
  if (have.fio) {
    const eng = spawnSync('fio', ['--enghelp'], { stdio: 'pipe' }).stdout?.toString() ?? '';
    have.fioNbd = /\bnbd\b/.test(eng);
    if (!have.fioNbd) log('note: this fio has no nbd ioengine (fio >= 3.20 built with libnbd); the NBD workloads will be skipped');
  }
  const req = missing.filter((t) => t.required);
  const opt = missing.filter((t) => !t.required);
  for (const t of opt) log(`note: ${t.bin} not found (${t.why}); install with: sudo apt-get install ${t.pkg}`);
  if (req.length > 0) {
    const pkgs = [...new Set(req.map((t) => t.pkg))].join(' ');
    log(`missing required tools: ${req.map((t) => t.bin).join(', ')}`);
    log(`install them with:  sudo apt-get install ${pkgs}`);
    log('(the bench installs nothing by itself)');
  }
  return { ok: req.length === 0, have };
}

export function checkBuilt(log = console.error) {
  if (fs.existsSync(STRATA_MAIN)) return true;
  log(`strata is not built (${STRATA_MAIN} is missing): run  npm run build  first`);
  return false;
}

/** argv prefix for the strata CLI on a store. */
export const strataArgs = (store, ...args) => [STRATA_MAIN, '--store', store, ...args];

let helpText;
function strataHelp() {
  helpText ??= spawnSync(process.execPath, [STRATA_MAIN, '--help'], { stdio: 'pipe' }).stdout?.toString() ?? '';
  return helpText;
}

/** Whether `strata serve` exists (listed in --help and answers its own --help). */
export function hasServe() {
  if (!/^\s+serve\b/m.test(strataHelp())) return false;
  return spawnSync(process.execPath, [STRATA_MAIN, 'serve', '--help'], { stdio: 'pipe' }).status === 0;
}

/**
 * Whether `strata export --format qcow2` works: the option may be declared
 * before the writer exists, so it is tried on a tiny image.
 */
export function hasQcow2Export(tmpStore) {
  const r1 = spawnSync(process.execPath, strataArgs(tmpStore, 'create', 'probe', '--size', '1M'), { stdio: 'pipe' });
  if (r1.status !== 0) return false;
  const out = path.join(tmpStore, 'probe.qcow2');
  const r = spawnSync(process.execPath, strataArgs(tmpStore, 'export', 'probe', out, '--format', 'qcow2'), { stdio: 'pipe' });
  return r.status === 0 && fs.existsSync(out);
}
