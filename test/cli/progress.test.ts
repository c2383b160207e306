/**
 * Long work at a terminal: a progress line on a TTY and nothing extra when
 * piped or with --json; Ctrl-C stops at a safe point, undoes the work, says
 * what was kept in one line and exits 130.
 *
 * The operations are made long without large inputs by
 * STRATA_FAULT=progress:sleep:MS (every progress callback sleeps), so the
 * tests are fast and use little disk. Ctrl-C is typed at a real pty
 * (`script`), after the progress line shows the work is under way; where
 * stderr must be seen alone, SIGINT is sent to the process directly.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { beforeEach, describe, expect, it } from 'vitest';
import { formatProgress } from '../../src/cli/progress.js';
import { ERROR_CODES } from '../../src/errors.js';
import { nativeStatus } from '../../src/store/blocks/native.js';
import { nativeAvailable } from '../helpers/available.js';
import { strata, strataOk, strataSpawn } from '../helpers/cli.js';
import { faultChannel } from '../helpers/fault.js';
import { signalDelivered } from '../helpers/proc.js';
import { hasScript, strataInPty } from '../helpers/pty.js';
import { tmpDir } from '../helpers/tmp.js';
import { forceRefcount, liveSlots } from '../helpers/slots.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const INTERRUPTED = ERROR_CODES.E_INTERRUPTED;
/** Catching Ctrl-C during synchronous work needs the native addon (see src/cli/long-work.ts). */
const native = nativeAvailable(nativeStatus());
const pty = hasScript();
if (!pty) console.warn('[skip] script (util-linux) is not installed; terminal tests are skipped');

let dir: string;
let store: string;
let raw: string;

/**
 * 32 MiB virtual, 16 MiB of data in 64 runs of 256 KiB (distinct 4 KiB
 * blocks): an import or export goes through it in at least 64 steps, and a
 * check verifies it in 16 runs of 1 MiB.
 */
function sparseRaw(file: string, seed = 1): void {
  const fd = fs.openSync(file, 'w');
  const run = Buffer.alloc(256 * KiB);
  for (let r = 0; r < 64; r++) {
    for (let b = 0; b < run.length; b += 4 * KiB) {
      run.fill(r + 1, b, b + 4 * KiB);
      run.writeUInt32LE(seed, b);
      run.writeUInt32LE(r * 64 + b / (4 * KiB), b + 4);
    }
    fs.writeSync(fd, run, 0, run.length, r * 512 * KiB);
  }
  fs.ftruncateSync(fd, 32 * MiB);
  fs.closeSync(fd);
}

/** What strata.db holds, read without running strata (whose start-up recovery would tidy it). */
function peek(): { names: string[]; blocks: number; free: number } {
  const db = new Database(path.join(store, 'strata.db'), { readonly: true });
  try {
    return {
      names: db.prepare('SELECT name FROM images ORDER BY name').pluck().all() as string[],
      blocks: liveSlots(db).length,
      free: db.prepare('SELECT count(*) FROM free_slots').pluck().get() as number,
    };
  } finally {
    db.close();
  }
}

const slow = (ms: number) => ({ STRATA_FAULT: `progress:sleep:${ms}` });

/** strata started directly (no terminal), for SIGINT by kill and stderr on its own. */
function startStrata(args: readonly string[], env: NodeJS.ProcessEnv) {
  const p = strataSpawn(store, args, { env });
  const exit = p.exited.then(({ code, signal }) => ({ status: code, signal }));
  return { child: p.child, exit, out: () => ({ stdout: p.stdout, stderr: p.stderr }) };
}

/** A progress line as drawn: label, percentage, bytes done of the total. */
const progressOf = (label: string) => new RegExp(`\\r${label}.*\\d+%  [\\d.]+ (B|KiB|MiB) / [\\d.]+ MiB`);

beforeEach(() => {
  dir = tmpDir();
  store = path.join(dir, 'store');
  raw = path.join(dir, 'disk.raw');
  sparseRaw(raw);
});

describe('progress', () => {
  it('formats a line that fits the terminal: a bar when there is room, none when not', () => {
    const wide = formatProgress('importing disk.raw', 420 * MiB, 1024 * MiB, 96 * MiB, 119);
    expect(wide).toBe('importing disk.raw  [############------------------]   41%  420 MiB / 1 GiB  96 MiB/s  ETA 7s');
    expect(formatProgress('importing disk.raw', 420 * MiB, 1024 * MiB, 96 * MiB, 62)).toBe('importing disk.raw   41%  420 MiB / 1 GiB  96 MiB/s  ETA 7s');
    expect(formatProgress('importing a-very-long-file-name-indeed.raw', 0, 1024 * MiB, 0, 30)).toHaveLength(30);
  });

  it.skipIf(!pty)('import on a terminal draws progress on stderr, then erases it and prints the result', async () => {
    const run = strataInPty(store, ['import', raw, 'disk'], slow(6));
    expect(await run.exit).toBe(0);
    const out = run.output();
    expect(out).toMatch(progressOf('importing disk.raw'));
    // Erased before the result, which stands alone on its line.
    expect(out).toMatch(/\r\x1b\[Kimported disk: base, 32 MiB virtual, 16 MiB in this layer\r\n$/);
  });

  it.skipIf(!pty)('export, check, rm and flatten on a terminal draw progress too', async () => {
    strataOk(store, ['import', raw, 'disk']);
    strataOk(store, ['clone', 'disk', 'vm']);
    // [args, label, sleep per progress call]: half a second each, whether it calls back 5 times or 65.
    const cases: [string[], string, number][] = [
      [['export', 'disk', path.join(dir, 'out.raw')], 'exporting disk', 8],
      [['export', 'disk', path.join(dir, 'out.qcow2'), '-f', 'qcow2'], 'exporting disk', 8],
      [['check'], 'checking', 30],
      [['flatten', 'vm'], 'flattening vm', 100],
      [['rm', 'vm'], 'removing vm', 100],
    ];
    for (const [args, label, ms] of cases) {
      const run = strataInPty(store, args, slow(ms));
      expect(await run.exit, run.output()).toBe(0);
      expect(run.output(), args.join(' ')).toMatch(progressOf(label));
    }
  });

  it('piped, or with --json on a terminal, there is no progress: stderr stays empty', async () => {
    const piped = strata(store, ['import', raw, 'disk'], { env: slow(6) });
    expect(piped.status).toBe(0);
    expect(piped.stderr).toBe('');
    expect(piped.stdout).toBe('imported disk: base, 32 MiB virtual, 16 MiB in this layer\n');
    const check = strata(store, ['check'], { env: slow(30) });
    expect(check.status).toBe(0);
    expect(check.stderr).toBe('');

    if (!pty) return;
    const run = strataInPty(store, ['--json', 'import', raw, 'again'], slow(6));
    expect(await run.exit).toBe(0);
    const out = run.output();
    expect(out).not.toMatch(/%|\x1b|\r(?!\n)/);
    expect(JSON.parse(out).name).toBe('again');
  });
});

describe.skipIf(!native)('Ctrl-C', () => {
  it.skipIf(!pty)('during an import: exit 130, one line, no image and no hidden image left, check clean', async () => {
    strataOk(store, ['init']);
    const before = peek();
    const run = strataInPty(store, ['import', raw, 'disk'], slow(60));
    await run.waitFor(progressOf('importing disk.raw'));
    run.type('\x03');
    expect(await run.exit).toBe(INTERRUPTED);
    expect(run.output()).toMatch(/\r\x1b\[Kstrata: interrupted: nothing imported\r\n$/);
    // Undone by the import itself, not by the next command's recovery: nothing has run since.
    expect(peek()).toEqual(before);
    const check = strata(store, ['check']);
    expect(check.status).toBe(0);
    expect(check.stdout).toMatch(/^0 image\(s\)/);
    expect(JSON.parse(strataOk(store, ['ls', '--json']).stdout)).toEqual([]);
  });

  it('SIGINT to an import without a terminal: exit 130 and exactly one line on stderr', async () => {
    strataOk(store, ['create', 'keep', '--size', '1M']);
    const before = peek();
    // Flushing every 4 MiB: held after the first flush, data is committed under the hidden name.
    const fault = faultChannel();
    const p = startStrata(['import', raw, 'disk', '--dirty-limit', '4M'], fault.env('flush.after-commit'));
    await fault.reached('flush.after-commit', { exited: p.exit });
    await signalDelivered(p.child.pid!, 'SIGINT');
    fault.release();
    expect(await p.exit).toEqual({ status: INTERRUPTED, signal: null });
    expect(p.out()).toEqual({ stdout: '', stderr: 'strata: interrupted: nothing imported\n' });
    const after = peek();
    expect({ names: after.names, blocks: after.blocks }).toEqual({ names: before.names, blocks: before.blocks });
    expect(after.free).toBeGreaterThan(0);
    expect(strata(store, ['check']).status).toBe(0);
  });

  it('a second SIGINT exits at once; the next command drops the half-made import', async () => {
    strataOk(store, ['init']);
    // Held with the hidden image made: the first SIGINT only raises the flag, the second exits there.
    const fault = faultChannel();
    const p = startStrata(['import', raw, 'disk'], fault.env('import.after-create'));
    await fault.reached('import.after-create', { exited: p.exit });
    await signalDelivered(p.child.pid!, 'SIGINT');
    p.child.kill('SIGINT');
    expect(await p.exit).toEqual({ status: INTERRUPTED, signal: null });
    expect(p.out().stderr).toBe('strata: interrupted again: stopping at once, without cleaning up\n');
    expect(peek().names.filter((n) => n.startsWith('.import-'))).toHaveLength(1);
    expect(JSON.parse(strataOk(store, ['ls', '--json']).stdout)).toEqual([]);
    expect(peek()).toMatchObject({ names: [], blocks: 0 });
    expect(strata(store, ['check']).status).toBe(0);
  });

  it.skipIf(!pty)('during a raw export: exit 130, and no partial output file', async () => {
    strataOk(store, ['import', raw, 'disk']);
    const out = path.join(dir, 'out.raw');
    const run = strataInPty(store, ['export', 'disk', out], slow(60));
    await run.waitFor(progressOf('exporting disk'));
    // Under way, the export is a hidden temporary file; out.raw appears only when complete.
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => /^\.out\.raw\.strata-.*\.part$/.test(f))).toHaveLength(1);
    run.type('\x03');
    expect(await run.exit).toBe(INTERRUPTED);
    expect(run.output()).toContain('strata: interrupted: nothing exported; no partial file was left\r\n');
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.part'))).toEqual([]);
  });

  it.skipIf(!pty)('during a qcow2 --chain export, in the top layer: the layer files already written go too, none took its name', async () => {
    strataOk(store, ['import', raw, 'base']);
    const top = path.join(dir, 'top.raw');
    sparseRaw(top, 2);
    strataOk(store, ['import', top, 'top', '--parent', 'base']);
    const out = path.join(dir, 'top.qcow2');
    const run = strataInPty(store, ['export', 'top', out, '-f', 'qcow2', '--chain'], slow(30));
    // The chain's progress runs over both files: past half, base.qcow2 is whole and top.qcow2 under way.
    await run.waitFor(/\s(5[5-9]|[6-9]\d)%/);
    // base.qcow2 is complete but still under its temporary name: the chain's files take their names together at the end.
    expect(fs.readdirSync(dir).filter((f) => /^\.base\.qcow2\.strata-.*\.part$/.test(f))).toHaveLength(1);
    run.type('\x03');
    expect(await run.exit).toBe(INTERRUPTED);
    expect(run.output()).toContain('strata: interrupted: nothing exported; no file of the chain was written\r\n');
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.qcow2') || f.endsWith('.part'))).toEqual([]);
  });

  it.skipIf(!pty)('during check: nothing changed; during check --repair: rolled back, the leak is still there', async () => {
    strataOk(store, ['import', raw, 'disk']);
    const plain = strataInPty(store, ['check'], slow(150));
    await plain.waitFor(progressOf('checking'));
    plain.type('\x03');
    expect(await plain.exit).toBe(INTERRUPTED);
    expect(plain.output()).toMatch(/strata: interrupted: check stopped after verifying [\d.]+ MiB of 16 MiB; nothing was changed\r\n$/);

    // A leak to repair: one refcount above its references.
    const db = new Database(path.join(store, 'strata.db'));
    const first = liveSlots(db)[0];
    forceRefcount(db, first.slot, first.refcount + 1);
    db.close();
    const repair = strataInPty(store, ['check', '--repair'], slow(150));
    await repair.waitFor(progressOf('checking and repairing'));
    repair.type('\x03');
    expect(await repair.exit).toBe(INTERRUPTED);
    expect(repair.output()).toMatch(/strata: interrupted: check --repair rolled back; nothing was repaired\r\n$/);
    expect(strata(store, ['check']).status).toBe(3);
    expect(strata(store, ['check', '--repair']).status).toBe(0);
  });

  it.skipIf(!pty)('during gc: rolled back, the free list as it was; the next gc finishes', async () => {
    // Free slots below one in use, so gc punches them (slots at the end it only cuts off).
    strataOk(store, ['import', raw, 'gone']);
    const keep = path.join(dir, 'keep.raw');
    fs.writeFileSync(keep, Buffer.alloc(8 * KiB, 7));
    strataOk(store, ['import', keep, 'keep']);
    strataOk(store, ['rm', 'gone']);
    const before = peek();
    expect(before.free).toBe(4096);
    const run = strataInPty(store, ['gc'], slow(500));
    await run.waitFor(progressOf('gc: returning free slots'));
    run.type('\x03');
    expect(await run.exit).toBe(INTERRUPTED);
    expect(run.output()).toMatch(/strata: interrupted: gc rolled back; free slots stay free, run gc again to reclaim the rest\r\n$/);
    expect(peek()).toEqual(before);
    expect(strata(store, ['check']).status).toBe(0);
    expect(strataOk(store, ['gc']).stdout).toMatch(/^reclaimed /);
  });

  it.skipIf(!pty)('during rm and flatten: rolled back, the images as they were', async () => {
    strataOk(store, ['import', raw, 'disk']);
    strataOk(store, ['clone', 'disk', 'vm']);
    const before = peek();
    const info = strataOk(store, ['info', 'vm', '--json']).stdout;

    const rm = strataInPty(store, ['rm', 'disk', '-r'], slow(500));
    await rm.waitFor(progressOf('removing disk'));
    rm.type('\x03');
    expect(await rm.exit).toBe(INTERRUPTED);
    expect(rm.output()).toMatch(/strata: interrupted: nothing removed\r\n$/);
    expect(peek()).toEqual(before);

    const flat = strataInPty(store, ['flatten', 'vm'], slow(500));
    await flat.waitFor(progressOf('flattening vm'));
    flat.type('\x03');
    expect(await flat.exit).toBe(INTERRUPTED);
    expect(flat.output()).toMatch(/strata: interrupted: vm is unchanged\r\n$/);
    expect(peek()).toEqual(before);
    expect(strataOk(store, ['info', 'vm', '--json']).stdout).toBe(info);
    expect(strata(store, ['check']).status).toBe(0);
  });
});

describe('Ctrl-C without the native addon', () => {
  it('ends the process at once, as without any handler; the next command drops the half-made import', async () => {
    strataOk(store, ['init']);
    const fault = faultChannel();
    const p = startStrata(['import', raw, 'disk'], { ...fault.env('import.after-create'), STRATA_NO_NATIVE: '1' });
    await fault.reached('import.after-create', { exited: p.exit });
    p.child.kill('SIGINT');
    expect(await p.exit).toEqual({ status: null, signal: 'SIGINT' });
    expect(peek().names.filter((n) => n.startsWith('.import-'))).toHaveLength(1);
    expect(JSON.parse(strataOk(store, ['ls', '--json']).stdout)).toEqual([]);
    expect(peek().names).toEqual([]);
    expect(strata(store, ['check']).status).toBe(0);
  });
});
