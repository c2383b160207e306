/**
 * `strata serve` end to end: the built CLI serving real store images to the
 * real NBD clients (qemu-io, qemu-img, nbdinfo, nbdcopy, fio, and a raw
 * protocol client), with every result checked against `strata export`,
 * `strata map` or a model kept here. The store images are an ext4 base
 * imported from a mke2fs image (data, holes), with leaves and snapshot
 * layers over it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CMD, NBD_ERRNO, TFLAG } from '../../src/nbd/protocol.js';
import { STRATA_BIN, strata, strataOk } from '../helpers/cli.js';
import { hasMke2fs, makeExt4, makeTree } from '../helpers/ext4.js';
import { RawClient } from '../helpers/nbd-raw-client.js';
import { rng } from '../helpers/random.js';
import { startServe } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';
import { requireTool, run, runOk } from '../helpers/tools.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const BASE_SIZE = 32 * MiB;

const haveMke2fs = hasMke2fs();
if (!haveMke2fs) console.warn('[skip] mke2fs is not available; the tests over an ext4 base are skipped');
const need = (...tools: string[]) => tools.map((t) => requireTool(t)).every(Boolean);

/** The raw ext4 image every store imports as its base, built once. */
let fixtureDir = '';
let ext4Raw = '';
let ext4Bytes = Buffer.alloc(0);

beforeAll(() => {
  if (!haveMke2fs) return;
  fixtureDir = mkdtempSync(join(tmpdir(), 'strata-serve-fixture-'));
  makeTree(join(fixtureDir, 'tree'), { seed: 7, files: 30, maxSize: 512 * KiB });
  ext4Raw = makeExt4(join(fixtureDir, 'ext4.raw'), join(fixtureDir, 'tree'), BASE_SIZE);
  ext4Bytes = readFileSync(ext4Raw);
});
afterAll(() => {
  if (fixtureDir) rmSync(fixtureDir, { recursive: true, force: true });
});

/** A store with `base` imported from the ext4 image and the leaf `vm` cloned over it. */
function storeWithLeaf(): string {
  const store = tmpDir();
  strataOk(store, ['create', 'base', '--from', ext4Raw]);
  strataOk(store, ['clone', 'base', 'vm']);
  return store;
}

function exportBytes(store: string, name: string): Buffer {
  const out = join(tmpDir('strata-export-'), `${name}.raw`);
  strataOk(store, ['export', name, out]);
  return readFileSync(out);
}

/** Fails with the first differing offset rather than a multi-megabyte diff. */
function expectSameBytes(actual: Buffer, expected: Buffer, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  if (actual.equals(expected)) return;
  let i = 0;
  while (actual[i] === expected[i]) i++;
  expect.fail(`${what}: first difference at byte ${i}: 0x${actual[i].toString(16)} instead of 0x${expected[i].toString(16)}`);
}

async function qemuIo(uri: string, cmds: string[], extra: string[] = []) {
  return run('qemu-io', ['-f', 'raw', ...extra, ...cmds.flatMap((c) => ['-c', c]), uri], { timeoutMs: 30_000 });
}

/** Offset of the first 64 KiB-aligned 64 KiB run at or after `from` with no all-zero 4 KiB block. */
function denseRun(bytes: Buffer, from: number): number {
  const zero = Buffer.alloc(4096);
  for (let off = from; off + 64 * KiB <= bytes.length; off += 64 * KiB) {
    let dense = true;
    for (let b = off; b < off + 64 * KiB && dense; b += 4096) dense = !bytes.subarray(b, b + 4096).equals(zero);
    if (dense) return off;
  }
  throw new Error('the ext4 fixture has no dense 64 KiB run');
}

/** Runs of equal bytes in model[off, off+len): [offset, length, byte]. */
function uniformRuns(model: Buffer, off: number, len: number): [number, number, number][] {
  const runs: [number, number, number][] = [];
  let start = off;
  for (let i = off + 1; i <= off + len; i++) {
    if (i === off + len || model[i] !== model[start]) {
      runs.push([start, i - start, model[start]]);
      start = i;
    }
  }
  return runs;
}

type Kind = 'data' | 'zero' | 'hole';
/** Extents reduced to data / not-data runs, adjacent runs of the same sort merged. */
function dataRuns(extents: { offset: number; length: number; data: boolean }[]): { offset: number; length: number; data: boolean }[] {
  const out: { offset: number; length: number; data: boolean }[] = [];
  for (const e of extents) {
    const last = out[out.length - 1];
    if (last && last.data === e.data && last.offset + last.length === e.offset) last.length += e.length;
    else out.push({ ...e });
  }
  return out;
}

describe.runIf(haveMke2fs)('strata serve with real NBD clients', () => {
  it.runIf(need('qemu-io'))('qemu-io writes, zeroes, discards and reads a leaf; strata export shows the same bytes', async () => {
    const store = storeWithLeaf();
    const size = BASE_SIZE;
    const model = Buffer.from(ext4Bytes);
    const dense = denseRun(model, 1 * MiB);
    const dense2 = denseRun(model, dense + 64 * KiB);
    type Op = { op: 'write'; byte: number; off: number; len: number } | { op: 'zero' | 'discard'; off: number; len: number };
    const ops: Op[] = [
      { op: 'write', byte: 0xab, off: 0, len: 64 * KiB },
      { op: 'write', byte: 0xcd, off: 4096, len: 4096 },
      { op: 'write', byte: 0x5e, off: 1000, len: 70000 }, // unaligned both ends, across blocks
      { op: 'zero', off: 8192, len: 12288 },
      { op: 'zero', off: 5000, len: 3000 }, // unaligned zero inside a block
      { op: 'write', byte: 0x77, off: dense + 777, len: 70000 }, // partial blocks over base data
      { op: 'discard', off: dense2, len: 16 * KiB }, // over base data: reads zeros afterwards
      { op: 'zero', off: dense2 + 32 * KiB + 100, len: 5000 }, // unaligned zero over base data
      { op: 'write', byte: 0x42, off: 12_345_679, len: 1 }, // one odd byte
      { op: 'write', byte: 0xee, off: size - 4096, len: 4096 }, // last block
      { op: 'write', byte: 0x99, off: size - 100, len: 100 }, // last bytes, unaligned
      { op: 'zero', off: size - 10, len: 10 },
    ];
    const cmds: string[] = [];
    for (const o of ops) {
      if (o.op === 'write') {
        cmds.push(`write -P 0x${o.byte.toString(16)} ${o.off} ${o.len}`);
        model.fill(o.byte, o.off, o.off + o.len);
      } else {
        cmds.push(`${o.op === 'zero' ? 'write -z' : 'discard'} ${o.off} ${o.len}`);
        model.fill(0, o.off, o.off + o.len);
      }
    }
    // Read every touched range back through the server, as runs of the byte the model expects.
    for (const o of ops) for (const [off, len, byte] of uniformRuns(model, o.off, o.len)) cmds.push(`read -P 0x${byte.toString(16)} ${off} ${len}`);

    const srv = await startServe(store, ['vm']);
    const r = await qemuIo(srv.uri('vm'), cmds);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout + r.stderr).not.toMatch(/Pattern verification failed|failed|error/i);
    expect(r.stdout.match(/^read \d+\/\d+ bytes/gm)?.length).toBe(cmds.filter((c) => c.startsWith('read')).length);
    expect(await srv.stop()).toEqual({ code: 0, signal: null });

    expectSameBytes(exportBytes(store, 'vm'), model, 'strata export vm');
    // The base under the leaf is untouched.
    expectSameBytes(exportBytes(store, 'base'), ext4Bytes, 'strata export base');
  });

  /** base (ext4) <- vm@snap1 (qemu-io writes) <- vm (more writes, explicit zeros): data at two depths, zeros, holes. */
  async function layeredLeaf(): Promise<string> {
    const store = storeWithLeaf();
    let srv = await startServe(store, ['vm']);
    let r = await qemuIo(srv.uri('vm'), ['write -P 0x11 0 256k', 'write -P 0x12 3M 1M', 'write -P 0x13 20M 64k']);
    expect(r.code, r.stderr).toBe(0);
    expect((await srv.stop()).code).toBe(0);
    strataOk(store, ['snapshot', 'vm', 'snap1']);
    srv = await startServe(store, ['vm']);
    r = await qemuIo(srv.uri('vm'), ['write -P 0x21 128k 8k', 'write -z 3M 512k', 'write -P 0x22 30M 100000', 'write -z 24M 4M']);
    expect(r.code, r.stderr).toBe(0);
    expect((await srv.stop()).code).toBe(0);
    return store;
  }

  it.runIf(need('qemu-img', 'qemu-io'))('qemu-img convert over NBD equals strata export; qemu-img compare reports identical', async () => {
    const store = await layeredLeaf();
    const work = tmpDir();
    const viaNbd = join(work, 'nbd.raw');
    let srv = await startServe(store, ['vm']);
    await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', srv.uri('vm'), viaNbd]);
    expect((await srv.stop()).code).toBe(0);

    const exported = exportBytes(store, 'vm');
    expectSameBytes(readFileSync(viaNbd), exported, 'qemu-img convert vs strata export');
    expect(exported.equals(ext4Bytes)).toBe(false); // the layers are really there
    const exportFile = join(work, 'export.raw');
    writeFileSync(exportFile, exported);

    srv = await startServe(store, ['vm']);
    const same = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', srv.uri('vm'), exportFile]);
    expect(same.code, same.stderr).toBe(0);
    expect(same.stdout).toMatch(/Images are identical/);
    // And compare does see a one-byte difference (the check above is not vacuous).
    const changed = Buffer.from(exported);
    changed[5 * MiB + 3] ^= 1;
    writeFileSync(exportFile, changed);
    const differ = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', srv.uri('vm'), exportFile]);
    expect(differ.code).toBe(1);
    expect(differ.stdout).toMatch(/Content mismatch at offset 5242880/);
    expect((await srv.stop()).code).toBe(0);
  });

  it.runIf(need('nbdinfo', 'qemu-io'))('nbdinfo --map matches strata map; nbdinfo --list lists the exports', async () => {
    const store = await layeredLeaf();
    const map = JSON.parse(strataOk(store, ['map', 'vm', '--json']).stdout) as { virtualSize: number; extents: { offset: number; length: number; kind: Kind; depth?: number }[] };
    // The leaf really has data from two layers and the base, explicit zeros and holes.
    const kinds = new Set(map.extents.map((e) => (e.kind === 'data' ? `data@${e.depth}` : e.kind)));
    for (const k of ['data@0', 'data@1', 'data@2', 'zero', 'hole']) expect(kinds, `strata map has ${k}`).toContain(k);

    const srv = await startServe(store); // every image
    const r = await runOk('nbdinfo', ['--map', '--json', srv.uri('vm')]);
    const nbdMap = JSON.parse(r.stdout) as { offset: number; length: number; type: number; description: string }[];
    expect(new Set(nbdMap.map((e) => e.type))).toEqual(new Set([0, 3]));
    for (const e of nbdMap) expect(e.description).toBe(e.type === 0 ? 'data' : 'hole,zero');
    const total = nbdMap.reduce((s, e) => s + e.length, 0);
    expect(total).toBe(map.virtualSize);
    expect(dataRuns(nbdMap.map((e) => ({ offset: e.offset, length: e.length, data: e.type === 0 })))).toEqual(
      dataRuns(map.extents.map((e) => ({ offset: e.offset, length: e.length, data: e.kind === 'data' }))),
    );

    const list = await runOk('nbdinfo', ['--list', '--json', `nbd+unix:///?socket=${srv.socketPath}`]);
    const listed = (JSON.parse(list.stdout).exports as { 'export-name': string; 'is_read_only': boolean }[]).map((e) => [e['export-name'], e.is_read_only]);
    const images = (JSON.parse(strataOk(store, ['--json', 'ls']).stdout) as { name: string }[]).map((i) => i.name).filter((n) => !n.startsWith('.'));
    expect(listed.map(([n]) => n).sort()).toEqual(images.sort());
    expect(images).toEqual(expect.arrayContaining(['base', 'vm', 'vm@snap1']));
    expect(Object.fromEntries(listed)).toMatchObject({ base: true, 'vm@snap1': true, vm: false });
    expect((await srv.stop()).code).toBe(0);
  });

  it.runIf(need('nbdcopy'))('nbdcopy a raw file into an empty leaf and back out', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'disk', '--size', String(BASE_SIZE)]);
    let srv = await startServe(store, ['disk']);
    await runOk('nbdcopy', [ext4Raw, srv.uri('disk')]);
    expect((await srv.stop()).code).toBe(0);
    expectSameBytes(exportBytes(store, 'disk'), ext4Bytes, 'strata export after nbdcopy in');
    // The file's holes did not become stored data.
    const map = JSON.parse(strataOk(store, ['map', 'disk', '--json']).stdout) as { extents: { length: number; kind: Kind }[] };
    const dataBytes = map.extents.filter((e) => e.kind === 'data').reduce((s, e) => s + e.length, 0);
    let nonZero = 0;
    for (let at = 0; at < ext4Bytes.length; at += 4096) if (ext4Bytes.subarray(at, at + 4096).some((b) => b !== 0)) nonZero += 4096;
    expect(dataBytes).toBe(nonZero);
    expect(dataBytes).toBeLessThan(BASE_SIZE / 2);

    srv = await startServe(store, ['disk']);
    const out = join(tmpDir(), 'out.raw');
    await runOk('nbdcopy', [srv.uri('disk'), out]);
    expect((await srv.stop()).code).toBe(0);
    expectSameBytes(readFileSync(out), ext4Bytes, 'nbdcopy out');
  });

  it.runIf(need('fio'))('fio ioengine=nbd random writes at iodepth 16 verify with crc32c', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'disk', '--size', '64M']);
    const srv = await startServe(store, ['disk']);
    const r = await run(
      'fio',
      [
        '--name=strata-serve-verify',
        '--ioengine=nbd',
        `--uri=${srv.uri('disk')}`,
        '--rw=randwrite',
        '--bsrange=4k-64k',
        '--size=64M',
        '--io_size=48M',
        '--iodepth=16',
        '--verify=crc32c',
        '--do_verify=1',
        '--verify_fatal=1',
        '--randseed=4321',
        '--verify_state_save=0',
        '--output-format=json',
      ],
      { timeoutMs: 600_000 }, // a hang guard: the job is a fixed amount of I/O, however long it takes
    );
    expect(r.code, r.stderr + r.stdout.slice(0, 2000)).toBe(0);
    expect(r.stderr + r.stdout).not.toMatch(/verify: bad|verify failed|bad magic|crc32c: wanted/i);
    const job = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0];
    expect(job.error).toBe(0);
    // The whole io_size, overshot by at most its last block (4k-64k), each block once (fio's random
    // map); the verify pass read exactly that back.
    expect(job.write.io_bytes).toBeGreaterThanOrEqual(48 * MiB);
    expect(job.write.io_bytes).toBeLessThan(48 * MiB + 64 * 1024);
    expect(job.read.io_bytes).toBe(job.write.io_bytes);
    expect((await srv.stop()).code).toBe(0);
    // 4 KiB-aligned blocks written once each, none all-zero (verify headers): the image stores exactly that much.
    const map = JSON.parse(strataOk(store, ['map', 'disk', '--json']).stdout) as { extents: { length: number; kind: Kind }[] };
    expect(map.extents.filter((e) => e.kind === 'data').reduce((n, e) => n + e.length, 0)).toBe(job.write.io_bytes);
    expect(strata(store, ['check']).status).toBe(0);
  });

  it.runIf(need('qemu-io'))('frozen images are read-only; a second server of a leaf exits 6; a bad request leaves the connection usable', async () => {
    const store = storeWithLeaf();
    const srv = await startServe(store, ['base', 'vm']);

    // qemu-io opens the frozen base read-write: refused.
    const w = await qemuIo(srv.uri('base'), ['write -P 0x1 0 4k']);
    expect(w.code).toBe(1);
    expect(w.stderr).toMatch(/Could not open image: Permission denied/);
    const ro = await qemuIo(srv.uri('base'), [`read -v 0 16`], ['-r']);
    expect(ro.code, ro.stderr).toBe(0);

    // The raw protocol: READ_ONLY flag, and a WRITE gets EPERM.
    const rc = await RawClient.open(srv.socketPath, 'base', { structured: true });
    expect(rc.transmissionFlags & TFLAG.READ_ONLY).toBe(TFLAG.READ_ONLY);
    expect((await rc.call(CMD.WRITE, 0, 4096, 0, Buffer.alloc(4096, 1))).error).toBe(NBD_ERRNO.EPERM);
    expect((await rc.call(CMD.READ, 0, 4096)).data).toEqual(ext4Bytes.subarray(0, 4096));
    rc.close();

    // A second server cannot take the leaf.
    const sock2 = join(tmpDir(), 'second.sock');
    const second = await run(process.execPath, [STRATA_BIN, '--store', store, 'serve', 'vm', '--socket', sock2], { timeoutMs: 20_000 });
    expect(second.code, second.stderr).toBe(6);
    expect(second.stderr).toContain('vm');
    expect(second.stderr).toContain(String(srv.pid));
    expect(second.stdout).not.toMatch(/serving/);

    // Out-of-range requests fail, and the same connection serves the next ones.
    for (const structured of [false, true]) {
      const c = await RawClient.open(srv.socketPath, 'vm', { structured });
      expect(c.size).toBe(BASE_SIZE);
      const bad = await c.call(CMD.READ, BASE_SIZE - 100, 4096);
      expect(bad.error).toBe(NBD_ERRNO.EINVAL);
      // A write past the end is ENOSPC, as the NBD protocol asks.
      const badWrite = await c.call(CMD.WRITE, BASE_SIZE, 512, 0, Buffer.alloc(512, 7));
      expect(badWrite.error).toBe(NBD_ERRNO.ENOSPC);
      const past = await c.call(CMD.READ, BigInt(2) ** BigInt(62), 4096);
      expect(past.error).toBe(NBD_ERRNO.EINVAL);
      const good = await c.call(CMD.READ, BASE_SIZE - 4096, 4096);
      expect(good.error).toBe(0);
      expect(good.data).toEqual(ext4Bytes.subarray(BASE_SIZE - 4096));
      const wr = await c.call(CMD.WRITE, 8192, 4096, 0, Buffer.alloc(4096, structured ? 0xa1 : 0xa0));
      expect(wr.error).toBe(0);
      expect((await c.call(CMD.READ, 8192, 4096)).data).toEqual(Buffer.alloc(4096, structured ? 0xa1 : 0xa0));
      expect(c.closed).toBe(false);
      c.close();
    }
    expect((await srv.stop()).code).toBe(0);
    expect(exportBytes(store, 'vm').subarray(8192, 8192 + 4096)).toEqual(Buffer.alloc(4096, 0xa1));
  });
});

/**
 * Crash durability: a raw client writes batches of 4 KiB-aligned blocks
 * (distinct blocks per batch, so no two in-flight writes overlap), FLUSHes
 * after each batch, and the server is SIGKILLed at a random moment. Each block
 * must then hold its value as of the last completed flush, or a value written
 * after it (those may or may not have landed), never anything else.
 */
const BLOCK = 4096;
const DISK_BLOCKS = 4096; // 16 MiB

/** Block content for write number `seq` (> 0) to block `b`; seq 0 is the zero block. */
function blockData(seq: number, b: number): Buffer {
  const buf = Buffer.alloc(BLOCK);
  if (seq === 0) return buf;
  buf.fill((seq * 31 + b) & 0xff || 1);
  buf.writeUInt32BE(seq, 0);
  buf.writeUInt32BE(b, 4);
  return buf;
}

interface DurabilityState {
  /** Seq of each block as of the last completed flush. */
  durable: Int32Array;
  /** Seqs written to each block since then (possibly on disk, possibly not). */
  maybe: Map<number, Set<number>>;
  nextSeq: number;
  flushes: number;
}

async function writeUntilKilled(socketPath: string, st: DurabilityState, seed: number, onFirstFlush: () => void): Promise<void> {
  const c = await RawClient.open(socketPath, 'disk');
  const rand = rng(seed);
  const latest = new Int32Array(st.durable);
  let flushed = 0;
  try {
    for (;;) {
      // A batch: up to 16 writes of 1-4 blocks, pairwise disjoint, all in flight at once.
      const taken = new Set<number>();
      const handles = new Set<bigint>();
      const n = 1 + rand.int(16);
      for (let i = 0; i < n; i++) {
        const blocks = 1 + rand.int(4);
        const first = rand.int(DISK_BLOCKS - blocks);
        const span = Array.from({ length: blocks }, (_, k) => first + k);
        if (span.some((b) => taken.has(b))) continue;
        const seq = st.nextSeq++;
        const parts = span.map((b) => {
          taken.add(b);
          latest[b] = seq;
          let s = st.maybe.get(b);
          if (!s) st.maybe.set(b, (s = new Set()));
          s.add(seq);
          return blockData(seq, b);
        });
        handles.add(c.request(CMD.WRITE, first * BLOCK, blocks * BLOCK, 0, Buffer.concat(parts)));
      }
      while (handles.size > 0) {
        const r = await c.readReply();
        expect(r.error).toBe(0);
        expect(handles.delete(r.handle)).toBe(true);
      }
      // Every write of the batch has completed: FLUSH makes them all durable.
      const fh = c.request(CMD.FLUSH, 0, 0);
      const fr = await c.readReply();
      expect(fr.handle).toBe(fh);
      expect(fr.error).toBe(0);
      st.durable.set(latest);
      st.maybe.clear();
      st.flushes++;
      if (flushed++ === 0) onFirstFlush();
    }
  } catch (e) {
    if (!c.closed && !String(e).includes('connection closed')) throw e;
  } finally {
    c.close();
  }
}

/** Checks every block against the state; returns the seq each block holds. */
function verifyBlocks(bytes: Buffer, st: DurabilityState, what: string): Int32Array {
  expect(bytes.length).toBe(DISK_BLOCKS * BLOCK);
  const seen = new Int32Array(DISK_BLOCKS);
  for (let b = 0; b < DISK_BLOCKS; b++) {
    const got = bytes.subarray(b * BLOCK, (b + 1) * BLOCK);
    const seq = got.readUInt32BE(0);
    const allowed = [st.durable[b], ...(st.maybe.get(b) ?? [])];
    if (!allowed.includes(seq) || !got.equals(blockData(seq, b))) {
      expect.fail(`${what}: block ${b} holds seq ${seq}${got.equals(blockData(seq, b)) ? '' : ' (torn or corrupt)'}; allowed ${allowed.join(', ')}`);
    }
    seen[b] = seq;
  }
  return seen;
}

describe('strata serve crash durability', () => {
  it('after SIGKILL mid-workload, every block flushed before the kill reads back (5 rounds)', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'disk', '--size', String(DISK_BLOCKS * BLOCK)]);
    const st: DurabilityState = { durable: new Int32Array(DISK_BLOCKS), maybe: new Map(), nextSeq: 1, flushes: 0 };
    const rand = rng(20240611);
    let lost = 0;
    for (let round = 0; round < 5; round++) {
      const srv = await startServe(store, ['disk']);
      if (round > 0) {
        // The restarted server serves what the crash left, verified above.
        const c = await RawClient.open(srv.socketPath, 'disk');
        const parts: Buffer[] = [];
        for (let off = 0; off < DISK_BLOCKS * BLOCK; off += MiB) parts.push((await c.call(CMD.READ, off, MiB)).data!);
        c.close();
        verifyBlocks(Buffer.concat(parts), st, `round ${round}: read over NBD after restart`);
      }
      const flushesBefore = st.flushes;
      let timer: NodeJS.Timeout | undefined;
      const delay = 50 + rand.int(600);
      const workload = writeUntilKilled(srv.socketPath, st, 1000 + round, () => {
        timer = setTimeout(() => void srv.kill(), delay);
      });
      // The kill is armed after the first completed flush of the round; if that never comes, kill
      // anyway and fail below. A hang guard, not a speed bound: generous for a loaded machine.
      const guard = setTimeout(() => void srv.kill(), 60_000);
      await workload;
      clearTimeout(guard);
      clearTimeout(timer);
      const exit = await srv.exited;
      expect(exit.signal, `round ${round}: the server was killed, not stopped (${srv.stderr})`).toBe('SIGKILL');
      expect(st.flushes).toBeGreaterThan(flushesBefore);

      const seen = verifyBlocks(exportBytes(store, 'disk'), st, `round ${round}: strata export after SIGKILL`);
      for (const [b] of st.maybe) if (seen[b] === st.durable[b]) lost++;
      // What the crash left becomes the next round's durable baseline.
      st.durable.set(seen);
      st.maybe.clear();
    }
    expect(st.flushes).toBeGreaterThanOrEqual(5);
    const check = strata(store, ['check']);
    expect(check.status, check.stderr + check.stdout).toBe(0);
    console.log(`durability: ${st.nextSeq - 1} writes, ${st.flushes} flushes, ${lost} unflushed blocks not on disk after the kills`);
  });
});
