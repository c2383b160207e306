/**
 * `strata serve --bitmap SNAP`: the `qemu:dirty-bitmap:SNAP` metadata
 * context, read by the real clients backup tools use (nbdinfo --map,
 * qemu-img map with x-dirty-bitmap), against `strata diff` and against what
 * `qemu-nbd -B` serves for a qcow2 that went through the same writes with a
 * persistent bitmap; then the protocol details with a raw client (writes
 * after connect, REQ_ONE, several contexts, LIST/SET queries, a live
 * snapshot), and the refusals.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CMD, CMD_FLAG, NBD_ERRNO, OPT, REP, REPLY_TYPE } from '../../src/nbd/protocol.js';
import { strata, strataOk } from '../helpers/cli.js';
import { RawClient, type Reply } from '../helpers/nbd-raw-client.js';
import { spawnTracked } from '../helpers/processes.js';
import { startServe } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';
import { requireTool, runOk } from '../helpers/tools.js';
import { waitUntil } from '../helpers/wait.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 8 * MiB;

/** [offset, length, byte] writes: before the snapshot, then after it (into a hole, over data, zeros over data, unaligned within and across blocks). */
const BEFORE: [number, number, number][] = [
  [0, MiB, 1],
  [4 * MiB, 512 * KiB, 5],
];
const AFTER: [number, number, number][] = [
  [3 * MiB, 64 * KiB, 2],
  [100 * KiB, 64 * KiB, 3],
  [4 * MiB + 128 * KiB, 128 * KiB, 0],
  [6 * MiB + 1000, 100, 4],
  [7 * MiB + 4000, 200, 6],
];

/** A store with leaf `vm` snapshotted as `mon` between BEFORE and AFTER. */
function storeAfterWrites(): string {
  const store = tmpDir('strata-bitmap-');
  const dir = tmpDir('strata-bitmap-data-');
  const write = ([offset, length, byte]: [number, number, number], k: number) => {
    const f = join(dir, `w${k}`);
    writeFileSync(f, Buffer.alloc(length, byte));
    strataOk(store, ['write', 'vm', f, '--offset', String(offset)]);
  };
  strataOk(store, ['create', 'vm', '--size', String(SIZE)]);
  BEFORE.forEach(write);
  strataOk(store, ['snapshot', 'vm', 'mon']);
  AFTER.forEach((w, k) => write(w, k + BEFORE.length));
  return store;
}

/** The same history in a qcow2 through qemu-io, with a persistent 4 KiB-granularity bitmap `mon` added at the snapshot point. */
async function qcow2AfterWrites(): Promise<string> {
  const file = join(tmpDir('strata-bitmap-qcow2-'), 'vm.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(SIZE)]);
  const io = (ws: [number, number, number][]) => runOk('qemu-io', ['-f', 'qcow2', ...ws.flatMap(([o, l, b]) => ['-c', `write -P ${b} ${o} ${l}`]), file]);
  await io(BEFORE);
  await runOk('qemu-img', ['bitmap', '--add', '-g', '4096', file, 'vm@mon']);
  await io(AFTER);
  return file;
}

interface MapEntry {
  offset: number;
  length: number;
  type: number;
}

async function nbdinfoMap(uri: string, context: string): Promise<MapEntry[]> {
  const out = (await runOk('nbdinfo', ['--json', `--map=${context}`, uri], { timeoutMs: 30_000 })).stdout;
  return (JSON.parse(out) as MapEntry[]).map(({ offset, length, type }) => ({ offset, length, type }));
}

/** qemu-img map through qemu's NBD client reading the bitmap instead of base:allocation (as oVirt imageio and virtnbdbackup do): dirty reads as data: false. */
async function qemuImgBitmapMap(socket: string, exportName: string, context: string): Promise<{ start: number; length: number; data: boolean }[]> {
  const opts = `driver=nbd,export=${exportName},server.type=unix,server.path=${socket},x-dirty-bitmap=${context}`;
  const out = (await runOk('qemu-img', ['map', '--output=json', '--image-opts', opts], { timeoutMs: 30_000 })).stdout;
  return (JSON.parse(out) as { start: number; length: number; data: boolean }[]).map(({ start, length, data }) => ({ start, length, data }));
}

const dirtyOnly = (m: MapEntry[]) => m.filter((e) => e.type === 1).map(({ offset, length }) => ({ offset, length }));

interface StatusChunk {
  id: number;
  descriptors: [number, number][];
}

/** The BLOCK_STATUS chunks of a reply: context id and (length, flags) descriptors. */
function statusChunks(r: Reply): StatusChunk[] {
  expect(r.error).toBe(0);
  return r.chunks!.map((c) => {
    expect(c.type).toBe(REPLY_TYPE.BLOCK_STATUS);
    const descriptors: [number, number][] = [];
    for (let at = 4; at < c.payload.length; at += 8) descriptors.push([c.payload.readUInt32BE(at), c.payload.readUInt32BE(at + 4)]);
    return { id: c.payload.readUInt32BE(0), descriptors };
  });
}

/** Connects with structured replies and the given contexts selected; returns the client and each context's id. */
async function openWith(socket: string, name: string, queries: string[]): Promise<{ c: RawClient; ids: Map<string, number> }> {
  const c = await RawClient.connect(socket);
  await c.greet();
  expect((await c.option(OPT.STRUCTURED_REPLY))[0].type).toBe(REP.ACK);
  const set = await c.option(OPT.SET_META_CONTEXT, RawClient.metaData(name, queries));
  expect(set[set.length - 1].type).toBe(REP.ACK);
  const ids = new Map(set.filter((r) => r.type === REP.META_CONTEXT).map((r) => [r.data.toString('utf8', 4), r.data.readUInt32BE(0)]));
  const go = await c.option(OPT.GO, RawClient.goData(name));
  expect(go[go.length - 1].type).toBe(REP.ACK);
  c.structured = true;
  return { c, ids };
}

const listNames = async (c: RawClient, name: string, queries: string[]) =>
  (await c.option(OPT.LIST_META_CONTEXT, RawClient.metaData(name, queries))).filter((r) => r.type === REP.META_CONTEXT).map((r) => r.data.toString('utf8', 4));

describe.runIf(requireTool('nbdinfo') && requireTool('qemu-img') && requireTool('qemu-io') && requireTool('qemu-nbd'))('serve --bitmap: qemu:dirty-bitmap contexts', () => {
  it('nbdinfo and qemu-img read the same dirty extents from strata as from qemu-nbd -B over a qcow2 with the same history, and as strata diff', async () => {
    const store = storeAfterWrites();
    const qcow2 = await qcow2AfterWrites();
    const qsock = join(tmpDir('strata-bitmap-qnbd-'), 'q.sock');
    const qnbd = spawnTracked('qemu-nbd', ['-r', '-t', '-f', 'qcow2', '-B', 'vm@mon', '-x', 'vm', '-k', qsock, qcow2]);
    const srv = await startServe(store, ['vm'], { extraArgs: ['--bitmap', 'vm@mon'] });
    try {
      await waitUntil('qemu-nbd to listen', () => existsSync(qsock));
      const ctx = 'qemu:dirty-bitmap:vm@mon';
      const ours = await nbdinfoMap(srv.uri('vm'), ctx);
      const theirs = await nbdinfoMap(`nbd+unix:///vm?socket=${qsock}`, ctx);
      expect(ours).toEqual(theirs);
      // Every 4 KiB block an AFTER write touched, and nothing else.
      expect(dirtyOnly(ours)).toEqual([
        { offset: 100 * KiB, length: 64 * KiB },
        { offset: 3 * MiB, length: 64 * KiB },
        { offset: 4 * MiB + 128 * KiB, length: 128 * KiB },
        { offset: 6 * MiB, length: 4 * KiB },
        { offset: 7 * MiB, length: 8 * KiB },
      ]);
      expect(ours.reduce((s, e) => s + e.length, 0)).toBe(SIZE);

      const diff = strata(store, ['--json', 'diff', 'vm@mon', 'vm']);
      expect(diff.status).toBe(1); // they differ
      expect((JSON.parse(diff.stdout) as { extents: unknown[] }).extents).toEqual(dirtyOnly(ours));

      expect(await qemuImgBitmapMap(srv.socketPath, 'vm', ctx)).toEqual(await qemuImgBitmapMap(qsock, 'vm', ctx));
      expect((await qemuImgBitmapMap(srv.socketPath, 'vm', ctx)).filter((e) => !e.data).map(({ start, length }) => ({ offset: start, length }))).toEqual(dirtyOnly(ours));
      expect((await srv.stop()).code).toBe(0);
    } finally {
      await qnbd.kill();
    }
  });

  it('a write after connect is dirty at the next BLOCK_STATUS, before any flush; REQ_ONE, two contexts, and a live snapshot', async () => {
    const store = storeAfterWrites();
    const srv = await startServe(store, ['vm'], { extraArgs: ['--bitmap', 'vm@mon', '--json'] });
    expect(JSON.parse(srv.stdout.split('\n')[0]).exports).toEqual([{ name: 'vm', uri: srv.uri('vm'), bitmaps: ['qemu:dirty-bitmap:vm@mon'] }]);
    const { c, ids } = await openWith(srv.socketPath, 'vm', ['qemu:dirty-bitmap:vm@mon', 'base:allocation']);
    try {
      const bitmap = ids.get('qemu:dirty-bitmap:vm@mon')!;
      const allocation = ids.get('base:allocation')!;
      expect(new Set([bitmap, allocation]).size).toBe(2);
      const at = 5 * MiB;
      const before = statusChunks(await c.call(CMD.BLOCK_STATUS, at, MiB));
      // One chunk per context, whatever the order; the dirty bitmap says clean here, allocation says hole.
      expect(new Map(before.map((s) => [s.id, s.descriptors]))).toEqual(
        new Map([
          [bitmap, [[MiB, 0]]],
          [allocation, [[MiB, 3]]],
        ]),
      );

      expect((await c.call(CMD.WRITE, at + 8 * KiB, 4 * KiB, 0, Buffer.alloc(4 * KiB, 9))).error).toBe(0);
      const after = new Map(statusChunks(await c.call(CMD.BLOCK_STATUS, at, MiB)).map((s) => [s.id, s.descriptors]));
      expect(after.get(bitmap)).toEqual([
        [8 * KiB, 0],
        [4 * KiB, 1],
        [MiB - 12 * KiB, 0],
      ]);
      // REQ_ONE: exactly one descriptor per context, never longer than the request (here unaligned).
      const one = statusChunks(await c.call(CMD.BLOCK_STATUS, at + 8 * KiB + 100, 3 * KiB, CMD_FLAG.REQ_ONE));
      expect(one.find((s) => s.id === bitmap)!.descriptors).toEqual([[3 * KiB, 1]]);
      expect(one.every((s) => s.descriptors.length === 1 && s.descriptors[0][0] <= 3 * KiB)).toBe(true);

      // A snapshot of the served leaf taken meanwhile (through the server) changes nothing: still since mon.
      strataOk(store, ['snapshot', 'vm', 'tue']);
      expect((await c.call(CMD.WRITE, at + 16 * KiB, 4 * KiB, 0, Buffer.alloc(4 * KiB, 8))).error).toBe(0);
      const later = statusChunks(await c.call(CMD.BLOCK_STATUS, at, MiB)).find((s) => s.id === bitmap)!;
      expect(later.descriptors).toEqual([
        [8 * KiB, 0],
        [4 * KiB, 1],
        [4 * KiB, 0],
        [4 * KiB, 1],
        [MiB - 20 * KiB, 0],
      ]);
      // Past the end is invalid, as for base:allocation.
      expect((await c.call(CMD.BLOCK_STATUS, SIZE - 4 * KiB, 8 * KiB)).error).toBe(NBD_ERRNO.EINVAL);
    } finally {
      c.close();
    }
    expect((await srv.stop()).code).toBe(0);
    // What the server held is flushed: strata diff now says what the bitmap said.
    const diff = JSON.parse(strata(store, ['--json', 'diff', 'vm@mon', 'vm']).stdout) as { extents: { offset: number; length: number }[] };
    expect(diff.extents.filter((e) => e.offset >= 5 * MiB && e.offset < 6 * MiB)).toEqual([
      { offset: 5 * MiB + 8 * KiB, length: 4 * KiB },
      { offset: 5 * MiB + 16 * KiB, length: 4 * KiB },
    ]);
  });

  it('LIST and SET_META_CONTEXT queries: namespaces list, SET takes exact names only', async () => {
    const store = storeAfterWrites();
    strataOk(store, ['snapshot', 'vm', 'tue']);
    const srv = await startServe(store, ['vm'], { extraArgs: ['--bitmap', 'vm@mon', '--bitmap', 'vm@tue'] });
    expect(srv.stdout).toContain('dirty bitmaps of every export: qemu:dirty-bitmap:vm@mon, qemu:dirty-bitmap:vm@tue\n');
    const c = await RawClient.connect(srv.socketPath);
    try {
      await c.greet();
      await c.option(OPT.STRUCTURED_REPLY);
      const all = ['base:allocation', 'qemu:dirty-bitmap:vm@mon', 'qemu:dirty-bitmap:vm@tue'];
      expect(await listNames(c, 'vm', [])).toEqual(all);
      expect(await listNames(c, 'vm', ['qemu:'])).toEqual(all.slice(1));
      expect(await listNames(c, 'vm', ['qemu:dirty-bitmap:'])).toEqual(all.slice(1));
      expect(await listNames(c, 'vm', ['qemu:dirty-bitmap:vm@tue', 'base:'])).toEqual(['base:allocation', 'qemu:dirty-bitmap:vm@tue']);
      expect(await listNames(c, 'vm', ['qemu:dirty-bitmap:wed'])).toEqual([]);
      // SET: a wildcard selects nothing (the protocol's SHOULD NOT), so BLOCK_STATUS is then invalid.
      const set = await c.option(OPT.SET_META_CONTEXT, RawClient.metaData('vm', ['qemu:dirty-bitmap:']));
      expect(set.map((r) => r.type)).toEqual([REP.ACK]);
      const go = await c.option(OPT.GO, RawClient.goData('vm'));
      expect(go[go.length - 1].type).toBe(REP.ACK);
      c.structured = true;
      expect((await c.call(CMD.BLOCK_STATUS, 0, 4096)).error).toBe(NBD_ERRNO.EINVAL);
    } finally {
      c.close();
    }
    // Since tue nothing changed; since mon, what AFTER wrote.
    expect(dirtyOnly(await nbdinfoMap(srv.uri('vm'), 'qemu:dirty-bitmap:vm@tue'))).toEqual([]);
    expect(dirtyOnly(await nbdinfoMap(srv.uri('vm'), 'qemu:dirty-bitmap:vm@mon'))).toHaveLength(5);
    expect((await srv.stop()).code).toBe(0);
  });

  it('refuses a bitmap against a leaf or a missing image, with a typed error and the store unchanged', () => {
    const store = tmpDir('strata-bitmap-');
    strataOk(store, ['create', 'vm', '--size', String(SIZE)]);
    strataOk(store, ['snapshot', 'vm', 'mon']);
    const before = strataOk(store, ['--json', 'ls']).stdout;
    const leaf = strata(store, ['serve', 'vm', '--socket', join(tmpDir(), 's.sock'), '--bitmap', 'vm']);
    expect(leaf.status).toBe(2);
    expect(leaf.stderr).toBe('strata: dirty bitmap vm: image vm is a writable leaf; a bitmap compares with a frozen image (a snapshot)\n');
    const missing = strata(store, ['serve', 'vm', '--socket', join(tmpDir(), 's.sock'), '--bitmap', 'wed']);
    expect(missing.status).toBe(3);
    expect(missing.stderr).toMatch(/^strata: .*wed.*\n$/);
    expect(strataOk(store, ['--json', 'ls']).stdout).toBe(before);
  });
});
