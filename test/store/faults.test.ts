/**
 * Every mutating operation, killed at every step. Each operation first runs
 * to completion with STRATA_FAULT_LOG set, which lists the fault points it
 * passes (src/store/core/faults.ts); then, for each point and each time it is
 * passed, a fresh copy of the same store runs the operation with
 * STRATA_FAULT=point:N, and the process dies there by SIGKILL.
 *
 * After each kill: `strata check` exits 0 (or 3 for leaks only, which
 * `check --repair` must then reclaim), the independent audit is clean, and
 * the store reads exactly its state before the operation or exactly its
 * state after it: every image by sha256 of its content, never a mix.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImage } from '../../src/image/image.js';
import { listImages } from '../../src/store/images/catalog.js';
import { openStore } from '../../src/store/core/store.js';
import { strata, strataOk, strataSpawn } from '../helpers/cli.js';
import { auditStore } from '../helpers/consistency.js';
import { rng } from '../helpers/random.js';
import { forceRefcount, liveSlots } from '../helpers/slots.js';

const MiB = 1024 * 1024;
/** Kill at most this many hits of one point per operation (gc punches once per free run). */
const MAX_HITS_PER_POINT = 1;
/** Kill runs at once (each is a few short-lived processes). */
const PARALLEL = 3;

let root: string;
let template: string;
let smallRaw: string;
let bigRaw: string;
let patch: string;
let textRaw: string;

/** name -> sha256 of the image's content, for every visible image. */
type State = Record<string, string>;

async function stateOf(dir: string): Promise<{ state: State; audit: string[] }> {
  const s = await openStore(dir, { create: false });
  try {
    const state: State = {};
    for (const rec of listImages(s)) {
      if (rec.name.startsWith('.')) continue;
      const img = openImage(s, rec.name);
      const h = createHash('sha256');
      for (let off = 0; off < img.size; off += 4 * MiB) h.update(img.read(off, Math.min(4 * MiB, img.size - off)));
      img.close();
      const parent = rec.parentId === null ? '-' : listImages(s).find((p) => p.id === rec.parentId)?.name;
      state[rec.name] = `${rec.kind}:${parent}:${rec.virtualSize}:${h.digest('hex')}`;
    }
    return { state, audit: auditStore(s) };
  } finally {
    s.close();
  }
}

/** The built CLI, asynchronously, so kill runs can overlap: exit status, or -1 when killed by a signal. */
async function strataAsync(store: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number; out: string }> {
  const p = strataSpawn(store, args, { env });
  const { code } = await p.exited;
  return { status: code ?? -1, out: p.all };
}

/** Runs `fn` over `items`, `n` at a time. */
async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

let copies = 0;
function copyTemplate(prepare?: (dir: string) => void): string {
  const dir = path.join(root, `run-${copies++}`);
  fs.cpSync(template, dir, { recursive: true });
  prepare?.(dir);
  return dir;
}

/** Space lost and nothing else: refcount above its references, a slot on no list. */
function makeLeaks(dir: string): void {
  const db = new Database(path.join(dir, 'strata.db'));
  const first = liveSlots(db)[0];
  forceRefcount(db, first.slot, first.refcount + 1);
  db.prepare('DELETE FROM free_slots WHERE slot = (SELECT min(slot) FROM free_slots)').run();
  db.close();
}

interface Op {
  name: string;
  args: () => string[];
  /** The point past which the operation has happened; at every other point the store must read as before. */
  done: string;
  /** Kill at the first this many hits of each point (default MAX_HITS_PER_POINT). */
  hits?: number;
  prepare?: (dir: string) => void;
}

const OPS: Op[] = [
  { name: 'write', args: () => ['write', 'a', patch, '--offset', '12345'], done: 'flush.after-commit' },
  { name: 'import', args: () => ['import', smallRaw, 'imp', '--parent', 'base'], done: 'import.after-rename-commit' },
  { name: 'import (flushing every 1 MiB)', args: () => ['import', bigRaw, 'big', '--dirty-limit', '1M'], done: 'import.after-rename-commit', hits: 2 },
  { name: 'clone of a frozen image', args: () => ['clone', 'a@s1', 'c1', 'c2'], done: 'clone.after-commit' },
  { name: 'clone of a leaf', args: () => ['clone', 'solo', 'c3'], done: 'clone.after-commit' },
  { name: 'snapshot', args: () => ['snapshot', 'a'], done: 'snapshot.after-commit' },
  { name: 'commit', args: () => ['commit', 'a', '--force'], done: 'commit.after-commit' },
  { name: 'rollback', args: () => ['rollback', 'a'], done: 'rollback.after-commit' },
  { name: 'flatten', args: () => ['flatten', 'b'], done: 'flatten.after-commit' },
  { name: 'rebase', args: () => ['rebase', 'a', '--onto', 'base'], done: 'rebase.after-commit' },
  { name: 'resize (shrink inside a block)', args: () => ['resize', 'solo', '600001', '--shrink'], done: 'resize.after-commit' },
  { name: 'rm', args: () => ['rm', 'b'], done: 'rm.after-commit' },
  { name: 'rm -r', args: () => ['rm', '-r', 'a@s1'], done: 'rm.after-commit' },
  // gc and repair change no image: "before" and "after" read the same.
  { name: 'gc (repacking half-empty containers)', args: () => ['gc'], done: 'gc.after-commit', hits: 2 },
  { name: 'import --compress zstd (flushing every 1 MiB)', args: () => ['import', '--compress', 'zstd', textRaw, 'ztext', '--dirty-limit', '1M'], done: 'import.after-rename-commit', hits: 2 },
  { name: 'compress (moving frozen blocks into containers)', args: () => ['compress'], done: 'compress.after-commit', hits: 2 },
  { name: 'compress --codec lz4hc (recompressing zstd blocks)', args: () => ['compress', 'zhalf', '--codec', 'lz4hc'], done: 'compress.after-commit' },
  { name: 'compress --codec none (back to their own slots)', args: () => ['compress', 'zhalf', '--codec', 'none'], done: 'compress.after-commit' },
  { name: 'check --repair', args: () => ['check', '--repair'], done: 'repair.after-commit', prepare: makeLeaks },
];

beforeAll(() => {
  root = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'strata-faults-'));
  template = path.join(root, 'template');
  const r = rng(77);
  smallRaw = path.join(root, 'small.raw');
  const small = Buffer.alloc(MiB);
  r.bytes(192 * 1024).copy(small, 64 * 1024);
  small.fill(0x5a, 512 * 1024, 640 * 1024);
  fs.writeFileSync(smallRaw, small);
  // 6 MiB, read in 4 MiB chunks: with --dirty-limit 1M the import flushes after each chunk.
  bigRaw = path.join(root, 'big.raw');
  fs.writeFileSync(bigRaw, Buffer.concat([r.bytes(5 * MiB), Buffer.alloc(MiB, 0x33)]));
  // Text-like, so it compresses: 3 MiB, the first 2 MiB also in the template (half of it compressed).
  textRaw = path.join(root, 'text.raw');
  const text = r.text(3 * MiB);
  fs.writeFileSync(textRaw, text);
  const halfText = Buffer.from(text.subarray(0, MiB));
  for (let off = 0; off < MiB; off += 8192) halfText.fill(0, off, off + 4096);
  patch = path.join(root, 'patch.bin');
  fs.writeFileSync(patch, Buffer.concat([r.bytes(100_000), Buffer.alloc(8192, 0x5a), Buffer.alloc(8192)]));

  const t = template;
  strataOk(t, ['create', 'junk', '--size', '1M']);
  strataOk(t, ['write', 'junk', '--offset', '0'], { input: r.bytes(64 * 1024) });
  strataOk(t, ['import', smallRaw, 'base']);
  strataOk(t, ['clone', 'base', 'a', 'b']);
  strataOk(t, ['write', 'a', '--offset', '4096'], { input: r.bytes(50_000) });
  strataOk(t, ['write', 'b', '--offset', '300000'], { input: r.bytes(70_000) });
  strataOk(t, ['snapshot', 'a', 's1']);
  strataOk(t, ['write', 'a', '--offset', '65536'], { input: Buffer.concat([r.bytes(20_000), Buffer.alloc(40_000)]) });
  strataOk(t, ['create', 'solo', '--size', '1M']);
  strataOk(t, ['write', 'solo', '--offset', '590000'], { input: r.bytes(30_000) });
  strataOk(t, ['create', 'tail', '--size', '1M']);
  strataOk(t, ['write', 'tail', '--offset', '0'], { input: r.bytes(40_000) });
  // Compressed blocks: zhalf shares every other block of zfull, so removing zfull leaves its
  // containers half empty, for gc to repack. plain is stored as it is, for compress to move.
  fs.writeFileSync(path.join(root, 'half.raw'), halfText);
  fs.writeFileSync(path.join(root, 'plain.raw'), text.subarray(MiB, 2 * MiB));
  strataOk(t, ['import', '--compress', 'zstd', path.join(root, 'half.raw'), 'zhalf']);
  strataOk(t, ['import', '--compress', 'zstd', textRaw, 'zfull', '--dirty-limit', '1M']);
  strataOk(t, ['import', path.join(root, 'plain.raw'), 'plain']);
  // Free slots inside the store (junk's) and at its end (tail's), for gc to punch and cut.
  strataOk(t, ['rm', 'junk', 'tail', 'zfull']);
  expect(strata(t, ['check']).status).toBe(0);
});

afterAll(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

let killPoints = 0;
let leaksRepaired = 0;
const exercised: string[] = [];

describe('a kill at every step of every mutating operation', () => {
  for (const op of OPS) {
    it(`${op.name}: the store reads its state before or after, and checks clean`, async () => {
      // The operation run to completion, tracing the fault points it passes.
      const full = copyTemplate(op.prepare);
      const before = (await stateOf(full)).state;
      const log = path.join(root, `trace-${copies}.log`);
      const done = strata(full, op.args(), { env: { STRATA_FAULT_LOG: log } });
      expect(done.status, done.stderr).toBe(0);
      const after = (await stateOf(full)).state;
      if (!/^(gc|check|compress)/.test(op.name)) expect(after).not.toEqual(before);
      const seen = new Map<string, number>();
      const points: string[] = [];
      for (const name of fs.readFileSync(log, 'utf8').split('\n').filter(Boolean)) {
        if (name.startsWith('datafile.')) continue; // I/O error points, not kill points
        const n = (seen.get(name) ?? 0) + 1;
        seen.set(name, n);
        if (n <= (op.hits ?? MAX_HITS_PER_POINT)) points.push(`${name}:${n}`);
      }
      expect(points.length).toBeGreaterThanOrEqual(2);

      await pool(points, PARALLEL, async (point) => {
        const dir = copyTemplate(op.prepare);
        const r = await strataAsync(dir, op.args(), { STRATA_FAULT: point });
        expect(r.status, `${point} did not kill: ${r.out}`).toBe(-1);
        let check = await strataAsync(dir, ['check']);
        if (check.status === 3) {
          await strataAsync(dir, ['check', '--repair']);
          check = await strataAsync(dir, ['check']);
          leaksRepaired++;
        }
        expect(check.status, `${point}: ${check.out}`).toBe(0);
        const { state, audit } = await stateOf(dir);
        expect(audit, point).toEqual([]);
        const which = JSON.stringify(state) === JSON.stringify(before) ? 'before' : JSON.stringify(state) === JSON.stringify(after) ? 'after' : 'mix';
        expect(which, `${point}: ${JSON.stringify({ state, before, after }, null, 1)}`).not.toBe('mix');
        // Killed at or after its commit (rm goes on to reclaim space), the operation has happened; anywhere before it, it has not.
        const committed = points.indexOf(point) >= points.findIndex((p) => p.startsWith(`${op.done}:`));
        if (JSON.stringify(before) !== JSON.stringify(after)) expect(which, point).toBe(committed ? 'after' : 'before');
        fs.rmSync(dir, { recursive: true, force: true });
        killPoints++;
        exercised.push(`${op.name} @ ${point}`);
      });
      fs.rmSync(full, { recursive: true, force: true });
    });
  }

  afterAll(() => {
    console.log(`fault injection: ${killPoints} kill points exercised over ${OPS.length} operations (${leaksRepaired} left leaks, reclaimed by check --repair)\n  ${exercised.join('\n  ')}`);
  });
});
