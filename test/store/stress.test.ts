/**
 * Cross-process stress: one `strata serve` holds the writable leaf `served`,
 * which an NBD client writes, overwrites, zeroes and flushes the whole time;
 * meanwhile CLI processes (three workers, each spawning one command at a
 * time, plus deliberate two-process races) snapshot, clone, write, flatten,
 * rebase, commit, resize, rm, rename, import, gc, check, read and export
 * their own images, and now and then `served` itself.
 *
 * The contract checked (see DESIGN.md, "Several processes, one store"):
 * - every operation that would change the served leaf's identity or map
 *   (rename, rm, flatten, rebase, commit, resize, write) is refused with
 *   exit 6 (E_BUSY) and a one-line message, and changes nothing; snapshot
 *   and clone of it (last round) are taken by the server itself, and read
 *   a state of it no older than the last FLUSH before they were asked for;
 * - `read served` and `export served` succeed, and each 4 KiB block they
 *   return is a version the NBD client wrote to that very block (zeros
 *   included: never written, WRITE_ZEROES, TRIM), no older than the last
 *   version whose FLUSH completed before the read started: never another
 *   image's or another block's bytes;
 * - every read or export of a worker's image equals the worker's model
 *   exactly (frozen images and clones never change; a write is visible once
 *   the command has returned), and no image disappears or appears behind the
 *   workers' backs;
 * - a `write L` overlapping `snapshot L`, `clone L`, `flatten L`, `rebase L`
 *   or `commit L` lands in the leaf L is afterwards, never in the frozen
 *   layer the other op made, and never relies on a chain L no longer has;
 * - `strata check` exits 0 and `strata gc` exits 0 at any time;
 * - after the load the server is stopped with SIGINT (it flushes), every
 *   image reads exactly its model, check exits 0 and auditStore is clean.
 *
 * Every 4 KiB block any writer produces is tagged: a 16-byte header (magic,
 * write sequence number, block number) and filler derived from the header,
 * so a block read anywhere can be attributed to the write and block it came
 * from, and failure messages say what was found where.
 *
 * Slot reuse is what exposes readers that keep using map segments their
 * writer has since freed, so the load frees a lot: the NBD client overwrites
 * a hot set of blocks, workers rm images with much exclusive data and run gc,
 * and imports of one seed file share slots between families. Besides the
 * workers, a reader process after another reads (as a slow consumer) or
 * exports served, or runs check.
 *
 * The load runs in rounds (half of it, then a quarter, then a quarter);
 * between rounds every worker image is removed and the NBD client zeroes the
 * served leaf, so gc empties the store entirely while the server keeps its
 * data file open: a store emptied under a running server. (If check finds
 * leaks there, that is reported, and check --repair runs so that gc can
 * still empty the store.)
 *
 * Each worker has its own family of images (nothing else touches them, so
 * no lease of another process gets in the way); families share slots only
 * through dedup. Failures are collected, not thrown, up to a cap, so one run
 * shows every kind of failure it met, each with its round: round 1 comes
 * before any drain.
 *
 * Knobs (environment): STRESS_SEED (default 7331), STRESS_LOAD_MS (default
 * 45000), STRESS_SKIP (comma-separated kinds to leave out: worker ops such
 * as race, served-mutate, served-read, check, import; or drain, reader; for
 * narrowing a failure down), STRESS_LOG (a file: one line per command run,
 * with its exit status and stderr).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openImage } from '../../src/image/image.js';
import { CMD } from '../../src/nbd/protocol.js';
import { listVisibleImages } from '../../src/store/images/catalog.js';
import { openStore } from '../../src/store/core/store.js';
import { strataOk, strataSpawn } from '../helpers/cli.js';
import { auditStore } from '../helpers/consistency.js';
import { RawClient } from '../helpers/nbd-raw-client.js';
import { rng } from '../helpers/random.js';
import { startServe } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';

const SEED = Number(process.env.STRESS_SEED ?? 7331);
const LOAD_MS = Number(process.env.STRESS_LOAD_MS ?? 45_000);
const SKIP = new Set((process.env.STRESS_SKIP ?? '').split(',').filter(Boolean));
const WORKERS = 3;
const ROUNDS = SKIP.has('drain') ? 1 : 3;
const B = 4096;
const MiB = 1 << 20;
/** Over 4 MiB, so `strata read served` reads it in two chunks, as any bigger image would be. */
const SERVED_SIZE = 6 * MiB;
const SERVED_BLOCKS = SERVED_SIZE / B;
const SEED_SIZE = 2 * MiB;
/**
 * The last HOT blocks of served take most NBD writes: constant overwrites free
 * slots constantly, and a reader (which goes front to back) reaches them last.
 */
const HOT = 192;

// ---- tagged blocks ----------------------------------------------------------

const MAGIC = 0x5354524b; // 'STRK'
/** What wrote each sequence number. */
const origins: string[] = [''];
const nbdSeqs = new Set<number>();
const zeroSeqs = new Set<number>();

function newSeq(origin: string): number {
  origins.push(origin);
  return origins.length - 1;
}

function fillBody(out: Buffer, at: number, seq: number, block: number): void {
  let a = (Math.imul(seq, 0x9e3779b1) ^ Math.imul(block + 1, 0x85ebca6b)) >>> 0;
  for (let i = 16; i < B; i += 4) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out.writeUInt32LE((t ^ (t >>> 14)) >>> 0, at + i);
  }
}

/** `n` tagged blocks for image blocks b0.., all of one write `seq`. */
function taggedBlocks(seq: number, b0: number, n: number): Buffer {
  const out = Buffer.allocUnsafe(n * B);
  for (let k = 0; k < n; k++) {
    const at = k * B;
    out.writeUInt32LE(MAGIC, at);
    out.writeUInt32LE(seq, at + 4);
    out.writeUInt32LE(b0 + k, at + 8);
    out.writeUInt32LE((seq ^ (b0 + k) ^ 0xa5a5a5a5) >>> 0, at + 12);
    fillBody(out, at, seq, b0 + k);
  }
  return out;
}

const ZERO_BLOCK = Buffer.alloc(B);
const scratch = Buffer.allocUnsafe(B);

type Decoded = { kind: 'zero' } | { kind: 'tag'; seq: number; block: number } | { kind: 'junk'; head: string };

function decode(blk: Buffer): Decoded {
  if (blk.equals(ZERO_BLOCK)) return { kind: 'zero' };
  const seq = blk.readUInt32LE(4);
  const block = blk.readUInt32LE(8);
  if (blk.readUInt32LE(0) === MAGIC && seq > 0 && seq < origins.length && blk.readUInt32LE(12) === ((seq ^ block ^ 0xa5a5a5a5) >>> 0)) {
    fillBody(scratch, 0, seq, block);
    if (blk.subarray(16).equals(scratch.subarray(16))) return { kind: 'tag', seq, block };
  }
  return { kind: 'junk', head: blk.subarray(0, 16).toString('hex') };
}

function describe_(blk: Buffer): string {
  const d = decode(blk);
  if (d.kind === 'zero') return 'zeros';
  if (d.kind === 'junk') return `unattributable bytes (head ${d.head})`;
  return `block ${d.block} of ${origins[d.seq]} (seq ${d.seq})`;
}

const blockOf = (buf: Buffer, b: number) => buf.subarray(b * B, (b + 1) * B);

/** Up to 4 blocks where `got` differs from `want`, each with what was expected and what was found. */
function diffBlocks(want: Buffer, got: Buffer): string {
  if (got.length !== want.length) return `length ${got.length}, expected ${want.length}`;
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b * B < want.length; b++) {
    if (blockOf(want, b).equals(blockOf(got, b))) continue;
    if (++n <= 4) out.push(`block ${b}: expected ${describe_(blockOf(want, b))}, found ${describe_(blockOf(got, b))}`);
  }
  return `${n} block(s) differ: ${out.join('; ')}${n > 4 ? '; …' : ''}`;
}

// ---- the served leaf's model ------------------------------------------------

/** Every version the NBD client wrote to each block of `served`, and which are covered by a completed FLUSH. */
class ServedModel {
  readonly versions: number[][] = Array.from({ length: SERVED_BLOCKS }, () => []);
  /** Index into versions[b] of the newest version a completed FLUSH covers; -1: none. */
  readonly flushed = new Int32Array(SERVED_BLOCKS).fill(-1);
  readonly current = Buffer.alloc(SERVED_SIZE);

  record(b0: number, n: number, seq: number, data: Buffer | null): void {
    for (let b = b0; b < b0 + n; b++) this.versions[b].push(seq);
    if (data) data.copy(this.current, b0 * B);
    else this.current.fill(0, b0 * B, (b0 + n) * B);
  }

  /** A FLUSH completed; the client has nothing else in flight. */
  markFlushed(): void {
    for (let b = 0; b < SERVED_BLOCKS; b++) this.flushed[b] = this.versions[b].length - 1;
  }

  floor(): Int32Array {
    return this.flushed.slice();
  }

  /** Problems with `got`, a whole read of served that started when the flushed floor was `floor`. */
  check(got: Buffer, floor: Int32Array): { kind: string; msg: string }[] {
    if (got.length !== SERVED_SIZE) return [{ kind: 'served-read-short', msg: `returned ${got.length} bytes, expected ${SERVED_SIZE}` }];
    const problems: { kind: string; msg: string }[] = [];
    let bad = 0;
    for (let b = 0; b < SERVED_BLOCKS; b++) {
      const blk = blockOf(got, b);
      if (blk.equals(blockOf(this.current, b))) continue; // the newest version is always allowed
      const vs = this.versions[b];
      const f = floor[b];
      const d = decode(blk);
      let ok = false;
      let kind = 'served-read-stale';
      if (d.kind === 'zero') ok = f === -1 || vs.slice(f).some((s) => zeroSeqs.has(s));
      else if (d.kind === 'tag' && d.block === b && nbdSeqs.has(d.seq)) {
        const i = vs.lastIndexOf(d.seq);
        ok = i >= 0 && i >= f;
        if (i < 0) kind = 'served-read-foreign';
      } else kind = 'served-read-foreign';
      if (ok) continue;
      if (++bad <= 3) {
        const expect =
          f === -1
            ? 'zeros or a version the NBD client wrote to it'
            : `a version written at or after seq ${vs[f]} (flushed before the read began; newest seq ${vs[vs.length - 1]})`;
        problems.push({ kind, msg: `block ${b}: found ${describe_(blk)}; expected ${expect}` });
      }
    }
    if (bad > 3) problems.push({ kind: 'served-read-count', msg: `${bad} of ${SERVED_BLOCKS} blocks wrong in this read` });
    return problems;
  }
}

// ---- processes --------------------------------------------------------------

interface Run {
  status: number;
  out: Buffer;
  err: string;
}

interface Started {
  done: Promise<Run>;
  /** Ends stdin with `data` (for stdin: 'hold'). */
  feed(data: Buffer): void;
}

/**
 * Spawns `strata --store STORE ...args`. stdin: the input, or 'hold' to keep
 * it open until feed(). slowMs: stop reading stdout for that long once the
 * first bytes arrive, as a slow consumer would.
 */
function startCli(store: string, args: readonly string[], opts: { stdin?: Buffer | 'hold'; slowMs?: number } = {}): Started {
  const t = strataSpawn(store, args, { keepStdin: true });
  const p = t.child;
  let paused = false;
  p.stdout!.on('data', () => {
    if (opts.slowMs && !paused) {
      paused = true;
      p.stdout!.pause();
      setTimeout(() => p.stdout!.resume(), opts.slowMs);
    }
  });
  const done = t.exited.then(({ code, signal }): Run => {
    if (process.env.STRESS_LOG) fs.appendFileSync(process.env.STRESS_LOG, `${Date.now()} ${args.join(' ')} → ${code ?? signal} ${oneLine(t.stderr)}\n`);
    return { status: code ?? (signal ? 128 : -1), out: t.out, err: t.stderr };
  });
  if (opts.stdin !== 'hold') p.stdin!.end(opts.stdin);
  return { done, feed: (data) => p.stdin!.end(data) };
}

const oneLine = (s: string) => s.trim().split('\n').join(' | ');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- the test ---------------------------------------------------------------

interface Img {
  name: string;
  /** The operation that made it, for messages. */
  born: string;
  frozen: boolean;
  parent: string | null;
  size: number;
  data: Buffer;
}

describe('stress', () => {
  it(`serve + NBD writer + ${WORKERS} CLI workers, seed ${SEED}, ${LOAD_MS / 1000} s of load in ${ROUNDS} round(s): the served leaf is never changed around its server, reads never see foreign bytes, check and gc always succeed`, async () => {
    const store = tmpDir('strata-stress-');
    const scratchDir = tmpDir('strata-stress-files-');
    const failures: { kind: string; msg: string }[] = [];
    const counts = new Map<string, number>();
    const count = (k: string) => counts.set(k, (counts.get(k) ?? 0) + 1);
    let stopAll = false;
    let round = 0;
    const fail = (kind: string, msg: string) => {
      if (failures.length < 400) failures.push({ kind, msg: `[round ${round}] ${msg}` });
      if (failures.length >= 400) stopAll = true;
    };
    let fileNo = 0;
    const tmpFile = (tag: string) => path.join(scratchDir, `${tag}-${++fileNo}.raw`);

    // The seed file: tagged data with a zero run, imported by every family, so families share slots.
    const seedData = Buffer.alloc(SEED_SIZE);
    {
      const seq = newSeq('the seed file');
      taggedBlocks(seq, 0, SEED_SIZE / B).copy(seedData);
      seedData.fill(0, 100 * B, 160 * B);
    }
    const seedFile = tmpFile('seed');
    fs.writeFileSync(seedFile, seedData);

    // served: a leaf over an empty base of its own, so commit has a parent to refuse into.
    strataOk(store, ['create', 'served.base', '--size', String(SERVED_SIZE)]);
    strataOk(store, ['freeze', 'served.base']);
    strataOk(store, ['clone', 'served.base', 'served']);
    const served = new ServedModel();
    const server = await startServe(store, ['served']);
    const nbd = await RawClient.open(server.socketPath, 'served');
    expect(nbd.size).toBe(SERVED_SIZE);

    // ---- NBD client ----------------------------------------------------------
    let nbdWrites = 0;
    let nbdZeroes = 0;
    let nbdFlushes = 0;
    let nbdReads = 0;
    const nbdRng = rng(SEED * 31 + 1);
    const nbdCall = async (what: string, type: number, off: number, len: number, payload?: Buffer) => {
      let r: Awaited<ReturnType<RawClient['call']>>;
      try {
        r = await nbd.call(type, off, len, 0, payload);
      } catch (e) {
        fail('nbd', `NBD ${what} at block ${off / B} (+${len / B}) → ${(e as Error).message}; the connection is gone, stopping (server: ${oneLine(server.stderr).slice(0, 300)})`);
        stopAll = true;
        return { handle: 0n, error: -1 };
      }
      if (r.error !== 0) fail('nbd', `NBD ${what} at block ${off / B} (+${len / B}) → error ${r.error}`);
      return r;
    };
    const nbdFlush = async () => {
      const r = await nbdCall('FLUSH', CMD.FLUSH, 0, 0);
      if (r.error === 0) served.markFlushed();
      nbdFlushes++;
    };
    const nbdLoop = async (until: number) => {
      const r = nbdRng;
      let sinceFlush = 0;
      let flushEvery = 1 + r.int(4);
      while (Date.now() < until && !stopAll) {
        const dice = r.int(100);
        const n = 1 + r.int(16);
        const b0 = r.int(3) > 0 ? SERVED_BLOCKS - HOT + r.int(HOT - n) : r.int(SERVED_BLOCKS - n);
        if (dice < 82) {
          const seq = newSeq(`NBD write #${nbdWrites + 1} to served`);
          nbdSeqs.add(seq);
          const data = taggedBlocks(seq, b0, n);
          served.record(b0, n, seq, data);
          await nbdCall('WRITE', CMD.WRITE, b0 * B, n * B, data);
          nbdWrites++;
        } else if (dice < 90) {
          const seq = newSeq(`NBD ${dice < 86 ? 'WRITE_ZEROES' : 'TRIM'} #${nbdZeroes + 1} on served`);
          nbdSeqs.add(seq);
          zeroSeqs.add(seq);
          served.record(b0, n, seq, null);
          await nbdCall(dice < 86 ? 'WRITE_ZEROES' : 'TRIM', dice < 86 ? CMD.WRITE_ZEROES : CMD.TRIM, b0 * B, n * B);
          nbdZeroes++;
        } else {
          // The server reads its own writes back, flushed or not.
          const rd = await nbdCall('READ', CMD.READ, b0 * B, n * B);
          nbdReads++;
          const want = served.current.subarray(b0 * B, (b0 + n) * B);
          if (rd.error === 0 && !rd.data!.equals(want)) fail('nbd', `NBD READ of served blocks ${b0}..${b0 + n - 1}: ${diffBlocks(want, rd.data!)}`);
          continue;
        }
        if (++sinceFlush >= flushEvery) {
          await nbdFlush();
          sinceFlush = 0;
          flushEvery = 1 + r.int(4);
        }
      }
    };

    // ---- workers ---------------------------------------------------------------
    const check = async (who: string): Promise<number> => {
      const c = await startCli(store, ['check']).done;
      count('check');
      if (c.status !== 0) {
        const errors = c.out.toString().split('\n').filter((l) => /^ERROR|^Leaked/.test(l));
        fail('check', `${who}: strata check exited ${c.status} (expected 0): ${errors.slice(0, 3).join(' | ') || oneLine(c.err)}${errors.length > 3 ? ` (+${errors.length - 3} more)` : ''}`);
      }
      return c.status;
    };
    const gc = async (who: string) => {
      const g = await startCli(store, ['gc']).done;
      count('gc');
      if (g.status !== 0) fail('gc', `${who}: strata gc exited ${g.status} (expected 0): ${oneLine(g.err)}`);
    };

    /** Reads (or exports) served and checks every block against the NBD model. */
    const readServed = async (who: string, how: 'read' | 'export', slowMs: number) => {
      const floor = served.floor();
      const file = tmpFile('served-export');
      const args = how === 'read' ? ['read', 'served'] : ['export', 'served', file];
      const r = await startCli(store, args, { slowMs }).done;
      count(`${how} served`);
      if (r.status !== 0) {
        fail('served-read-failed', `${who}: strata ${args.join(' ')} exited ${r.status} (expected 0): ${oneLine(r.err)}`);
        return;
      }
      const got = how === 'read' ? r.out : fs.readFileSync(file);
      fs.rmSync(file, { force: true });
      for (const p of served.check(got, floor)) fail(p.kind, `${who}: strata ${how} served: ${p.msg}`);
    };

    let servedMutations = 0;

    /**
     * Snapshots and clones of served, which its server takes between two NBD
     * writes: each reads a state of served no older than the last FLUSH
     * before it was asked for, and never changes after. Taken in the last
     * round only, since drains cannot remove images below the served leaf.
     */
    const live = new Map<string, Buffer>();
    let liveN = 0;
    const liveSnapshot = async (who: string) => {
      const floor = served.floor();
      const asClone = liveN % 2 === 1;
      const cloneName = `live-c${liveN++}`;
      const args = asClone ? ['--json', 'clone', 'served', cloneName] : ['--json', 'snapshot', 'served'];
      const r = await startCli(store, args).done;
      count(asClone ? 'clone served (live)' : 'snapshot served (live)');
      if (r.status !== 0) {
        fail('live-snapshot', `${who}: strata ${args.join(' ')} exited ${r.status} (expected 0): ${oneLine(r.err)}`);
        return;
      }
      const snap = (JSON.parse(r.out.toString()) as { snapshot: string }).snapshot;
      const got = await startCli(store, ['read', snap]).done;
      if (got.status !== 0) {
        fail('live-snapshot', `${who}: strata read ${snap} exited ${got.status}: ${oneLine(got.err)}`);
        return;
      }
      for (const p of served.check(got.out, floor)) fail(p.kind, `${who}: live snapshot ${snap}: ${p.msg}`);
      live.set(snap, got.out);
      if (asClone) live.set(cloneName, got.out);
    };

    /** A reader of the live leaf, besides the workers: read (a slow consumer), export, check and (last round) live snapshots, back to back. */
    const readerRng = rng(SEED * 31 + 50);
    const readerLoop = async (until: number) => {
      for (let k = 0; Date.now() < until && !stopAll; k++) {
        if (k % 3 === 2) {
          if (!SKIP.has('check')) await check(`reader #${k}`);
        } else if (round === ROUNDS && k % 3 === 1) await liveSnapshot(`reader #${k}`);
        else await readServed(`reader #${k}`, k % 3 ? 'export' : 'read', 50 + readerRng.int(150));
      }
    };

    class Worker {
      readonly imgs = new Map<string, Img>();
      private n = 0;
      ops = 0;
      readonly r: ReturnType<typeof rng>;
      constructor(readonly w: number) {
        this.r = rng(SEED * 31 + 100 + w);
      }
      private newName() {
        return `w${this.w}-${++this.n}`;
      }
      private who(op: string) {
        return `w${this.w} op#${this.ops} ${op}`;
      }
      private list(pred: (i: Img) => boolean = () => true) {
        return [...this.imgs.values()].filter(pred);
      }
      private children(name: string) {
        return this.list((i) => i.parent === name);
      }
      private descendants(name: string): Img[] {
        return this.children(name).flatMap((c) => [c, ...this.descendants(c.name)]);
      }

      /** Runs a command that must succeed; records the failure otherwise. */
      private async ok(op: string, args: string[], stdin?: Buffer): Promise<Run | null> {
        const r = await startCli(store, args, { stdin }).done;
        count(op);
        if (r.status === 0) return r;
        if (!this.vanished(op, r)) fail('op-failed', `${this.who(op)}: strata ${args.join(' ')} exited ${r.status} (expected 0): ${oneLine(r.err)}`);
        return null;
      }

      /**
       * An image of this worker's model that the store no longer has, though
       * no worker removed it: reported once, then dropped from the model.
       */
      vanished(op: string, r: Run): boolean {
        const m = /no image named (\S+)/.exec(r.err);
        const img = m && r.status === 3 ? this.imgs.get(m[1]) : undefined;
        if (!img) return false;
        fail('image-vanished', `${this.who(op)}: ${img.name} is gone from the store (${oneLine(r.err)}), though it was made by ${img.born} and nothing removed it`);
        this.imgs.delete(img.name);
        return true;
      }

      /** Compares what was read with the model; on a difference, reports it and adopts what was read (no cascade). */
      verify(img: Img, got: Buffer, how: string): void {
        if (got.equals(img.data)) return;
        fail('content', `${this.who(how)}: ${img.name} (${img.frozen ? 'frozen' : 'leaf'}, parent ${img.parent ?? 'none'}) differs from its model: ${diffBlocks(img.data, got)}`);
        if (got.length === img.size) img.data = Buffer.from(got);
      }

      private async readImg(img: Img, how = 'read') {
        const r = await this.ok('read', ['read', img.name]);
        if (r) this.verify(img, r.out, how);
      }

      /** Bytes for blocks [b0, b0+n) of leaf L: fresh tagged, the parent's own (a write-back), the seed's, or zeros. */
      private content(L: Img, b0: number, n: number, mode: 'fresh' | 'parent' | 'seed' | 'zero'): Buffer {
        const parent = L.parent ? this.imgs.get(L.parent) : undefined;
        if (mode === 'parent' && parent) {
          const out = Buffer.alloc(n * B);
          parent.data.copy(out, 0, b0 * B, Math.min(parent.size, (b0 + n) * B));
          return out;
        }
        if (mode === 'seed' && (b0 + n) * B <= SEED_SIZE) return Buffer.from(seedData.subarray(b0 * B, (b0 + n) * B));
        if (mode === 'zero') return Buffer.alloc(n * B);
        return taggedBlocks(newSeq(`CLI write by w${this.w} (op#${this.ops}) to ${L.name}`), b0, n);
      }

      private pickMode(L: Img): 'fresh' | 'parent' | 'seed' | 'zero' {
        const d = this.r.int(10);
        return d < 6 ? 'fresh' : d < 8 && L.parent ? 'parent' : d < 9 ? 'seed' : 'zero';
      }

      private snapshotModel(L: Img, snap: string): Img {
        const s: Img = { name: snap, born: this.who(`snapshot of ${L.name}`), frozen: true, parent: L.parent, size: L.size, data: Buffer.from(L.data) };
        this.imgs.set(snap, s);
        L.parent = snap;
        return s;
      }

      async step(): Promise<void> {
        this.ops++;
        const r = this.r;
        const leaves = this.list((i) => !i.frozen);
        const frozen = this.list((i) => i.frozen);
        const all = this.list();
        const weights: [string, number][] = [
          ['write', 16],
          ['read', 7],
          ['export', 4],
          ['snapshot', 5],
          ['clone', 6],
          ['flatten', 3],
          ['rebase', 3],
          ['commit', 3],
          ['resize', 2],
          ['rm', all.length > 12 ? 30 : 6],
          ['rename', 3],
          ['import', all.length === 0 ? 30 : 5],
          ['create', leaves.length === 0 ? 10 : 1],
          ['gc', 3],
          ['check', 3],
          ['race', 9],
          ['served-mutate', 6],
          ['served-read', 8],
        ];
        const usable = weights.filter(([k]) => !SKIP.has(k));
        const total = usable.reduce((s, [, w]) => s + w, 0);
        let x = r.int(total);
        let op = usable[0][0];
        for (const [k, w] of usable) {
          if (x < w) {
            op = k;
            break;
          }
          x -= w;
        }
        const needsLeaf = ['write', 'snapshot', 'commit', 'resize', 'race'];
        const needsAny = ['read', 'export', 'clone', 'flatten', 'rebase', 'rm', 'rename'];
        if ((needsLeaf.includes(op) && leaves.length === 0) || (needsAny.includes(op) && all.length === 0)) op = r.int(2) ? 'import' : 'create';

        switch (op) {
          case 'create': {
            const name = this.newName();
            const size = (1 + r.int(4)) * MiB;
            if (await this.ok('create', ['create', name, '--size', String(size)])) this.imgs.set(name, { name, born: this.who('create'), frozen: false, parent: null, size, data: Buffer.alloc(size) });
            return;
          }
          case 'import': {
            const name = this.newName();
            const kind = r.int(3);
            const writable = r.int(3) === 0;
            let data: Buffer;
            let parent: Img | undefined;
            let file = seedFile;
            if (kind === 0) data = seedData;
            else {
              parent = kind === 2 && frozen.length > 0 ? r.pick(frozen) : undefined;
              const size = parent ? parent.size : (1 + r.int(4)) * MiB;
              data = parent ? Buffer.from(parent.data) : Buffer.alloc(size);
              if (!parent) seedData.copy(data, 0, 0, Math.min(size, SEED_SIZE));
              // Replace a few runs: fresh data, zeros; the rest is shared with the seed or the parent.
              for (let k = 0; k < 1 + r.int(5); k++) {
                const n = 1 + r.int(64);
                const b0 = r.int(size / B - n);
                const z = r.int(4) === 0;
                (z ? Buffer.alloc(n * B) : taggedBlocks(newSeq(`import file by w${this.w} (op#${this.ops}) for ${name}`), b0, n)).copy(data, b0 * B);
              }
              file = tmpFile(`w${this.w}-import`);
              fs.writeFileSync(file, data);
            }
            const args = ['import', file, name, ...(parent ? ['--parent', parent.name] : []), ...(writable ? ['--writable'] : [])];
            const ok = await this.ok('import', args);
            if (file !== seedFile) fs.rmSync(file, { force: true });
            if (ok) this.imgs.set(name, { name, born: this.who(`import of ${file === seedFile ? 'the seed file' : 'a file'}`), frozen: !writable, parent: parent?.name ?? null, size: data.length, data: Buffer.from(data) });
            return;
          }
          case 'write': {
            const L = r.pick(leaves);
            const blocks = L.size / B;
            const n = 1 + r.int(Math.min(64, blocks));
            const b0 = r.int(blocks - n + 1);
            const data = this.content(L, b0, n, this.pickMode(L));
            if (await this.ok('write', ['write', L.name, '--offset', String(b0 * B)], data)) data.copy(L.data, b0 * B);
            return;
          }
          case 'read':
            return this.readImg(r.pick(all));
          case 'export': {
            const img = r.pick(all);
            const file = tmpFile(`w${this.w}-export`);
            if (await this.ok('export', ['export', img.name, file])) this.verify(img, fs.readFileSync(file), 'export');
            fs.rmSync(file, { force: true });
            return;
          }
          case 'snapshot': {
            const L = r.pick(leaves);
            const snap = this.newName();
            if (await this.ok('snapshot', ['snapshot', L.name, snap])) this.snapshotModel(L, `${L.name}@${snap}`);
            return;
          }
          case 'clone': {
            const src = r.pick(all);
            const names = Array.from({ length: 1 + r.int(2) }, () => this.newName());
            const res = await this.ok('clone', ['--json', 'clone', src.name, ...names]);
            if (!res) return;
            const j = JSON.parse(res.out.toString()) as { parent: string; snapshot: string | null };
            if (!src.frozen) this.snapshotModel(src, j.snapshot!);
            for (const name of names) this.imgs.set(name, { name, born: this.who(`clone of ${src.name}`), frozen: false, parent: j.parent, size: src.size, data: Buffer.from(src.data) });
            return;
          }
          case 'flatten': {
            const img = r.pick(all);
            if (await this.ok('flatten', ['flatten', img.name])) img.parent = null;
            return;
          }
          case 'rebase': {
            const img = r.pick(all);
            const below = new Set(this.descendants(img.name).map((d) => d.name));
            const onto = frozen.filter((f) => f !== img && !below.has(f.name));
            if (onto.length === 0) return;
            const p = r.pick(onto);
            if (await this.ok('rebase', ['rebase', img.name, '--onto', p.name])) img.parent = p.name;
            return;
          }
          case 'commit': {
            const L = r.pick(leaves);
            if (!L.parent) return;
            const P = this.imgs.get(L.parent)!;
            const siblings = this.children(P.name).filter((c) => c !== L);
            const res = await startCli(store, ['commit', L.name, '--force']).done;
            count('commit');
            let want = siblings.length > 0 ? 7 : 0;
            if (res.status === 0 && want === 7) {
              // Allowed only if the store lost every sibling behind the model's back (reported as such).
              for (const sib of siblings) {
                const i = await startCli(store, ['info', sib.name]).done;
                if (this.vanished('info', i)) want = 0;
              }
              if (this.children(P.name).some((c) => c !== L)) want = 7;
            }
            if (res.status !== want) {
              if (!this.vanished('commit', res)) fail('op-failed', `${this.who('commit')}: strata commit ${L.name} (parent ${P.name}, ${siblings.length} other children) exited ${res.status}, expected ${want}: ${oneLine(res.err)}`);
              return;
            }
            if (want === 0) {
              P.data = Buffer.from(L.data);
              P.size = L.size;
            }
            return;
          }
          case 'resize': {
            const L = r.pick(leaves);
            const shrink = L.size > 64 * 1024 && r.int(3) === 0;
            const size = shrink ? 65536 * (1 + r.int(L.size / 65536 - 1)) : Math.min(5 * MiB, L.size + 65536 * (1 + r.int(8)));
            if (size === L.size) return;
            if (await this.ok('resize', ['resize', L.name, String(size), ...(shrink ? ['--shrink'] : [])])) {
              const data = Buffer.alloc(size);
              L.data.copy(data, 0, 0, Math.min(size, L.size));
              L.data = data;
              L.size = size;
            }
            return;
          }
          case 'rm': {
            // Often the subtree holding the most data: its slots free up for others to reuse.
            const weight = (i: Img) => [i, ...this.descendants(i.name)].reduce((s, d) => s + d.data.length, 0);
            const img = r.int(2) ? all.reduce((a, b) => (weight(b) > weight(a) ? b : a)) : r.pick(all);
            const doomed = [img, ...this.descendants(img.name)];
            const res = await this.ok('rm', ['--json', 'rm', ...(doomed.length > 1 ? ['-r'] : []), img.name]);
            if (res) {
              // rm takes the image's own snapshots (IMAGE@SNAP) that nothing else stands on along with it.
              const removed = (JSON.parse(res.out.toString()) as { removed: string[] }).removed;
              for (const d of doomed) if (!removed.includes(d.name)) fail('op-failed', `${this.who('rm')}: rm ${img.name} did not remove ${d.name}`);
              for (const n of removed) {
                if (!doomed.some((d) => d.name === n) && !n.startsWith(`${img.name}@`)) fail('op-failed', `${this.who('rm')}: rm ${img.name} removed ${n}, neither below it nor its snapshot`);
                if (n.startsWith(`${img.name}@`) && this.children(n).some((c) => !removed.includes(c.name))) fail('op-failed', `${this.who('rm')}: rm ${img.name} removed its snapshot ${n}, on which another image stands`);
                this.imgs.delete(n);
              }
            }
            if (r.int(2)) await gc(this.who('gc after rm'));
            return;
          }
          case 'rename': {
            const img = r.pick(all);
            const name = this.newName();
            const res = await this.ok('rename', ['--json', 'rename', img.name, name]);
            if (res) {
              // A snapshot is renamed within its image (L@x to L@NAME); an image takes its snapshots with it.
              const to = (JSON.parse(res.out.toString()) as { to: string }).to;
              const own = img.name.includes('@') ? [] : this.list((i) => i.name.startsWith(`${img.name}@`));
              for (const [m, next] of [[img, to], ...own.map((o) => [o, to + o.name.slice(img.name.length)])] as [Img, string][]) {
                this.imgs.delete(m.name);
                for (const c of this.children(m.name)) c.parent = next;
                m.name = next;
                this.imgs.set(next, m);
              }
            }
            return;
          }
          case 'gc':
            return gc(this.who('gc'));
          case 'check':
            await check(this.who('check'));
            return;
          case 'race':
            return this.race();
          case 'served-mutate':
            return this.servedMutate();
          case 'served-read':
            return readServed(this.who('served read'), r.int(2) ? 'read' : 'export', r.int(60));
        }
      }

      /**
       * `write L` overlapping one op that changes L's identity or chain. The
       * write's stdin is held until the other op has finished, so the write
       * cannot have flushed before it: if the other op succeeded, it acted on
       * L as it was before the write (the write, holding L's lease, would
       * have made it fail with E_BUSY otherwise), and the write then went
       * into whatever L is afterwards.
       */
      private async race(): Promise<void> {
        const r = this.r;
        const L = r.pick(this.list((i) => !i.frozen));
        const P = L.parent ? this.imgs.get(L.parent)! : undefined;
        const ontos = this.list((i) => i.frozen);
        const kinds = ['snapshot', 'clone', 'flatten'];
        if (P && this.children(P.name).length === 1) kinds.push('commit');
        if (ontos.length > 0) kinds.push('rebase');
        const kind = r.pick(kinds);
        const blocks = L.size / B;
        const n = 1 + r.int(Math.min(32, blocks));
        const b0 = r.int(blocks - n + 1);
        // A write-back of the parent's bytes dedups to the parent's slots: the write path then
        // keeps INHERIT, which is only right over the chain the image really has.
        const data = this.content(L, b0, n, (kind === 'flatten' || kind === 'rebase') && P ? 'parent' : 'fresh');
        const names = [this.newName(), this.newName()];
        const onto = kind === 'rebase' ? r.pick(ontos) : undefined;
        const args =
          kind === 'snapshot'
            ? ['snapshot', L.name, names[0]]
            : kind === 'clone'
              ? ['--json', 'clone', L.name, names[1]]
              : kind === 'flatten'
                ? ['flatten', L.name]
                : kind === 'commit'
                  ? ['commit', L.name, '--force']
                  : ['rebase', L.name, '--onto', onto!.name];
        const d = r.int(16) - 12; // ms by which the other op starts after the write (negative: before)
        let other: Started;
        let write: Started;
        if (d < 0) {
          other = startCli(store, args);
          await sleep(-d);
          write = startCli(store, ['write', L.name, '--offset', String(b0 * B)], { stdin: 'hold' });
        } else {
          write = startCli(store, ['write', L.name, '--offset', String(b0 * B)], { stdin: 'hold' });
          await sleep(d);
          other = startCli(store, args);
        }
        const o = await other.done;
        write.feed(data);
        const w = await write.done;
        count(`race write/${kind}`);
        const who = this.who(`race write ${L.name} / ${args.filter((a) => a !== '--json').join(' ')}`);
        if (o.status !== 0 && o.status !== 6 && !this.vanished(kind, o)) fail('op-failed', `${who}: the ${kind} exited ${o.status} (expected 0, or 6 while the write holds the lease): ${oneLine(o.err)}`);
        if (!this.imgs.has(L.name)) return; // the store lost L (reported by vanished())
        const created: Img[] = [];
        const before = Buffer.from(L.data);
        if (o.status === 0) {
          count(`race ${kind} won`);
          if (kind === 'snapshot') created.push(this.snapshotModel(L, `${L.name}@${names[0]}`));
          else if (kind === 'clone') {
            const j = JSON.parse(o.out.toString()) as { snapshot: string };
            created.push(this.snapshotModel(L, j.snapshot));
            const c: Img = { name: names[1], born: this.who(`race clone of ${L.name}`), frozen: false, parent: j.snapshot, size: L.size, data: Buffer.from(before) };
            this.imgs.set(c.name, c);
            created.push(c);
          } else if (kind === 'flatten') L.parent = null;
          else if (kind === 'rebase') L.parent = onto!.name;
          else if (kind === 'commit') {
            P!.data = Buffer.from(before);
            P!.size = L.size;
            created.push(P!);
          }
        }
        if (w.status === 0) data.copy(L.data, b0 * B);
        else if (!this.vanished('race write', w)) fail('op-failed', `${who}: the write exited ${w.status} (expected 0): ${oneLine(w.err)}`);
        if (!this.imgs.has(L.name)) return;
        // What the other op made must not have taken the write; the leaf must have it.
        for (const c of created) await this.readImg(c, `race check of ${c.name} after ${kind} of ${L.name}`);
        await this.readImg(L, `race check of ${L.name} after ${kind}`);
      }

      /**
       * Two operations that would change the served leaf, at once: each must
       * be refused with E_BUSY, in one line. The kinds go in turn, so every
       * kind is tried early in any run.
       */
      private async servedMutate(): Promise<void> {
        const r = this.r;
        const choices = (x: string): [string, string[], Buffer?][] => [
          ['rename', ['rename', 'served', x]],
          ['rm', ['rm', 'served']],
          ['flatten', ['flatten', 'served']],
          ['rebase', ['rebase', 'served', '--onto', 'served.base']],
          ['commit', ['commit', 'served']],
          ['resize', ['resize', 'served', String(SERVED_SIZE + MiB)]],
          ['write', ['write', 'served', '--offset', String(B * r.int(SERVED_BLOCKS))], taggedBlocks(newSeq(`CLI write by w${this.w} to served (must be refused)`), 0, 1)],
        ];
        const picks = [0, 1].map((k) => {
          const all = choices(`x${this.w}-${this.ops}-${k}`);
          return all[servedMutations++ % all.length];
        });
        const runs = await Promise.all(picks.map(([, args, stdin]) => startCli(store, args, { stdin }).done));
        for (let k = 0; k < picks.length; k++) {
          const [kind, args] = picks[k];
          const res = runs[k];
          count(`${kind} served`);
          const who = this.who(`strata ${args.join(' ')}`);
          // commit may meet E_HAS_CHILDREN first, once a live clone stands on served's parent: a refusal too.
          if (res.status === 6 || (kind === 'commit' && res.status === 7)) {
            const lines = res.err.trim().split('\n');
            if (lines.length !== 1 || lines[0] === '') fail('served-mutation-message', `${who}: refused, but not with one line: ${JSON.stringify(res.err)}`);
            continue;
          }
          if (res.status !== 0) {
            fail('served-mutation-status', `${who}: exited ${res.status}, expected 6 (E_BUSY): ${oneLine(res.err)}`);
            continue;
          }
          fail('served-mutation-accepted', `${who}: succeeded on the leaf strata serve holds open (expected exit 6, E_BUSY): ${oneLine(res.out.toString())}`);
          if (kind === 'rename') {
            // Put the name back so the run can go on.
            const back = await startCli(store, ['rename', args[2], 'served']).done;
            if (back.status !== 0) {
              fail('served-mutation-accepted', `${who}: renaming it back failed (${back.status}: ${oneLine(back.err)}); stopping the load`);
              stopAll = true;
            }
          } else stopAll = true;
        }
      }

      async run(until: number): Promise<void> {
        while (Date.now() < until && !stopAll) await this.step();
      }
    }

    const workers = Array.from({ length: WORKERS }, (_, w) => new Worker(w));

    /**
     * Verifies every worker image in this process, against a fresh store
     * handle, and that the store holds exactly the modelled images. Returns
     * the names of the images the store holds besides served and its base.
     */
    const verifyAll = async (when: string): Promise<string[]> => {
      const s = await openStore(store, { create: false });
      try {
        const names: string[] = listVisibleImages(s).map((i) => String(i.name));
        const others = names.filter((n) => n !== 'served' && n !== 'served.base');
        if (!names.includes('served')) fail('final', `${when}: the store has no image named served`);
        for (const wk of workers) {
          for (const img of [...wk.imgs.values()]) {
            if (!names.includes(img.name)) {
              fail('image-vanished', `${when}: ${img.name} is gone from the store, though it was made by ${img.born} and nothing removed it`);
              wk.imgs.delete(img.name);
              continue;
            }
            let got: Buffer;
            try {
              const h = openImage(s, img.name);
              try {
                got = h.read(0, h.size);
              } finally {
                h.close();
              }
            } catch (e) {
              fail('content', `${when}: cannot read ${img.name}: ${(e as Error).message}`);
              continue;
            }
            if (!got.equals(img.data)) fail('content', `${when}: ${img.name} (${img.frozen ? 'frozen' : 'leaf'}, parent ${img.parent ?? 'none'}, made by ${img.born}) differs from its model: ${diffBlocks(img.data, got)}`);
          }
        }
        for (const [name, data] of live) {
          if (!names.includes(name)) {
            fail('image-vanished', `${when}: live snapshot ${name} is gone from the store`);
            continue;
          }
          const h = openImage(s, name);
          try {
            const got = h.read(0, h.size);
            if (!got.equals(data)) fail('content', `${when}: live snapshot ${name} changed after it was taken: ${diffBlocks(data, got)}`);
          } finally {
            h.close();
          }
        }
        const modelled = new Set([...workers.flatMap((wk) => [...wk.imgs.keys()]), ...live.keys()]);
        const extra = others.filter((n) => !modelled.has(n));
        if (extra.length > 0) fail('catalog', `${when}: the store holds images no worker made or kept: ${extra.join(', ')}`);
        return others;
      } finally {
        s.close();
      }
    };

    /**
     * Between rounds: every worker image is removed and the NBD client zeroes
     * the served leaf, so no slot is in use; gc then gives every data file
     * back while the server, still running, holds them open. Then the load
     * starts again from nothing.
     */
    const drain = async () => {
      const doomed = await verifyAll(`drain after round ${round}`);
      if (doomed.length > 0) {
        const r = await startCli(store, ['rm', '-r', ...doomed]).done;
        if (r.status !== 0) fail('op-failed', `drain: strata rm -r ${doomed.join(' ')} exited ${r.status}: ${oneLine(r.err)}`);
      }
      for (const wk of workers) wk.imgs.clear();
      const seq = newSeq(`NBD WRITE_ZEROES of all of served (drain after round ${round})`);
      nbdSeqs.add(seq);
      zeroSeqs.add(seq);
      served.record(0, SERVED_BLOCKS, seq, null);
      await nbdCall('WRITE_ZEROES', CMD.WRITE_ZEROES, 0, SERVED_SIZE);
      await nbdFlush();
      if ((await check('drain')) !== 0) {
        // Reported; repaired so that gc can still empty the store, which is the point of the drain.
        const rep = await startCli(store, ['check', '--repair']).done;
        console.log(`stress: drain after round ${round}: check --repair exited ${rep.status}`);
      }
      const g = await startCli(store, ['--json', 'gc']).done;
      count('gc');
      if (g.status !== 0) fail('gc', `drain: strata gc exited ${g.status} (expected 0): ${oneLine(g.err)}`);
      else {
        const j = JSON.parse(g.out.toString()) as { nextSlotAfter: number; truncatedSlots: number };
        console.log(`stress: drain after round ${round}: gc cut ${j.truncatedSlots} slot(s), ${j.nextSlotAfter} left in use`);
      }
      await readServed('drain', 'read', 0);
    };

    const t0 = Date.now();
    try {
      for (round = 1; round <= ROUNDS && !stopAll; round++) {
        // The first round, before any drain, is the longest: half the load (all of it without drains).
        const until = t0 + LOAD_MS * (ROUNDS === 1 ? 1 : [0, 0.5, 0.75, 1][round]);
        await Promise.all([...workers.map((wk) => wk.run(until)), nbdLoop(until), SKIP.has('reader') ? null : readerLoop(until)]);
        if (round < ROUNDS && !stopAll) await drain();
      }
      round = ROUNDS + 1; // "after the load"
      const loadMs = Date.now() - t0;

      // Every reply is in; nothing is flushed since the last FLUSH: the server must flush on SIGINT.
      const exit = await server.stop('SIGINT', 30_000);
      nbd.close();
      if (exit.code !== 0) fail('serve', `strata serve exited ${exit.code ?? exit.signal} on SIGINT (expected 0): ${oneLine(server.stderr)}`);
      if (/BUSY|locked|error/i.test(server.stderr)) fail('serve', `strata serve logged: ${oneLine(server.stderr).slice(0, 500)}`);

      await verifyAll('after the load');
      const s = await openStore(store, { create: false });
      try {
        try {
          const h = openImage(s, 'served');
          const got = h.read(0, h.size);
          h.close();
          if (!got.equals(served.current)) fail('final', `served after SIGINT differs from the NBD client's last writes: ${diffBlocks(served.current, got)}`);
        } catch (e) {
          fail('final', `served cannot be read after SIGINT: ${(e as Error).message}`);
        }
        for (const p of auditStore(s).slice(0, 5)) fail('final', `auditStore: ${p}`);
      } finally {
        s.close();
      }
      await check('after the load');

      const ops = [...counts.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k} ${n}`).join(', ');
      console.log(
        `stress (seed ${SEED}): ${Math.round(loadMs / 1000)} s of load in ${ROUNDS} round(s); NBD: ${nbdWrites} writes, ${nbdZeroes} zeroes, ${nbdFlushes} flushes, ${nbdReads} reads; CLI: ${ops}; ${failures.length} failure(s)`,
      );
    } finally {
      stopAll = true;
      nbd.close();
    }

    if (failures.length > 0) {
      const byKind = new Map<string, string[]>();
      for (const f of failures) byKind.set(f.kind, [...(byKind.get(f.kind) ?? []), f.msg]);
      const report = [...byKind.entries()].map(([k, ms]) => `${k} (${ms.length}):\n    ${ms.slice(0, 4).join('\n    ')}${ms.length > 4 ? '\n    …' : ''}`).join('\n  ');
      console.log(`stress failures:\n  ${report}`);
      expect.fail(`${failures.length} failure(s) under load (seed ${SEED}):\n  ${report}`);
    }
  }, LOAD_MS + 90_000);
});
