/**
 * Two processes on one store: each test here reproduces a way a second
 * process used to lose acknowledged data or hand one image another's bytes,
 * with real processes (a `strata serve`, CLI commands, a holder in another
 * PID namespace) and, where a race must be made certain, a transaction held
 * open by the test or a fault-log FIFO that stops a process at a named step.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openImage } from '../../src/image/image.js';
import { cloneImage, snapshotImage } from '../../src/image/lifecycle.js';
import { flattenImage } from '../../src/image/reshape.js';
import { CMD } from '../../src/nbd/protocol.js';
import { openStore } from '../../src/store/core/store.js';
import { available } from '../helpers/available.js';
import { STRATA_BIN, strata, strataAsync, strataOk } from '../helpers/cli.js';
import { RawClient } from '../helpers/nbd-raw-client.js';
import { startServe } from '../helpers/serve.js';
import { requireTool, run } from '../helpers/tools.js';
import { faultChannel } from '../helpers/fault.js';
import { childPids, pidGone } from '../helpers/proc.js';
import { tmpDir } from '../helpers/tmp.js';
import { sqlOf } from '../helpers/sql.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const E_BUSY = 6;

const cli = strataAsync;

async function nbdWrite(c: RawClient, offset: number, data: Buffer): Promise<void> {
  expect((await c.call(CMD.WRITE, offset, data.length, 0, data)).error).toBe(0);
}
async function nbdZero(c: RawClient, offset: number, length: number): Promise<void> {
  expect((await c.call(CMD.WRITE_ZEROES, offset, length, 0)).error).toBe(0);
}
async function nbdFlush(c: RawClient): Promise<void> {
  expect((await c.call(CMD.FLUSH, 0, 0)).error).toBe(0);
}

function expectClean(store: string): void {
  const r = strata(store, ['check']);
  expect(r.status, r.stdout + r.stderr).toBe(0);
}

describe('gc beside a server', () => {
  it('never leaves the server writing into a data file it unlinked (#1)', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'other', '--size', '1M']);
    strataOk(store, ['write', 'other'], { input: randomBytes(MiB) });
    strataOk(store, ['create', 'served', '--size', '1M']);
    const srv = await startServe(store, ['served']);
    const c = await RawClient.open(srv.socketPath, 'served');
    // The server writes a slot, so it holds 000000.dat open; then it frees it again.
    await nbdWrite(c, 0, randomBytes(64 * KiB));
    await nbdFlush(c);
    await nbdZero(c, 0, 64 * KiB);
    await nbdFlush(c);
    // Nothing references any slot now: gc cuts the whole store away.
    strataOk(store, ['rm', 'other']);
    const gc = JSON.parse(strataOk(store, ['gc', '--json']).stdout);
    expect(gc.nextSlotAfter).toBe(0);
    const data = randomBytes(256 * KiB);
    await nbdWrite(c, 128 * KiB, data);
    await nbdFlush(c);
    c.close();
    await srv.stop();
    const got = strataOk(store, ['read', 'served']).out;
    expect(got.subarray(128 * KiB, 384 * KiB).equals(data)).toBe(true);
    expect(got.subarray(0, 128 * KiB).every((b) => b === 0)).toBe(true);
    expectClean(store);
  });
});

describe('a write racing a change of the image it opens (#2)', () => {
  const ops = {
    clone: (s: Awaited<ReturnType<typeof openStore>>) => cloneImage(s, 'L', ['x']),
    snapshot: (s: Awaited<ReturnType<typeof openStore>>) => snapshotImage(s, 'L', 'snap'),
    flatten: (s: Awaited<ReturnType<typeof openStore>>) => flattenImage(s, 'L'),
  };
  for (const [op, apply] of Object.entries(ops)) {
    it(`strata write L overlapping ${op} L writes the leaf named L as it is after the ${op}`, async () => {
      const store = tmpDir();
      const a = randomBytes(256 * KiB);
      const b = randomBytes(64 * KiB);
      if (op === 'flatten') {
        strataOk(store, ['create', 'p', '--size', '256K']);
        strataOk(store, ['write', 'p'], { input: a });
        strataOk(store, ['freeze', 'p']);
        strataOk(store, ['clone', 'p', 'L']);
      } else {
        strataOk(store, ['create', 'L', '--size', '256K']);
        strataOk(store, ['write', 'L'], { input: a });
      }
      // The writer is held where it is about to look L up and lease it; the op commits right then.
      const fault = faultChannel();
      const writer = cli(store, ['write', 'L', '--offset', '0'], { input: b, env: fault.env('open.before-lease') });
      await fault.reached('open.before-lease', { exited: writer });
      const s = await openStore(store, { create: false });
      try {
        apply(s);
      } finally {
        s.close();
      }
      fault.release();
      const w = await writer;
      expect(w.status, w.err).toBe(0);
      const expected = Buffer.concat([b, a.subarray(b.length)]);
      expect(strataOk(store, ['read', 'L']).out.equals(expected), 'L reads the write over its old content').toBe(true);
      if (op === 'clone') {
        expect(strataOk(store, ['read', 'x']).out.equals(a), 'the clone reads what L read before').toBe(true);
        expect(strataOk(store, ['read', 'L@snap1']).out.equals(a), 'the frozen snapshot is unchanged').toBe(true);
      }
      if (op === 'snapshot') expect(strataOk(store, ['read', 'L@snap']).out.equals(a), 'the snapshot is unchanged').toBe(true);
      expectClean(store);
    });
  }
});

describe('import beside other commands', () => {
  it('refuses a writable leaf as --parent, naming it, and changes nothing (#4)', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st'); // a store is made only in a new or empty directory
    const file = path.join(dir, 'in.raw');
    fs.writeFileSync(file, randomBytes(64 * KiB));
    strataOk(store, ['create', 'leaf', '--size', '64K']);
    const before = strataOk(store, ['ls', '--json']).stdout;
    const r = strata(store, ['import', file, 'child', '--parent', 'leaf']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toMatch(/^strata: cannot import onto leaf: it is a writable leaf.*snapshot or freeze it first$/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(strataOk(store, ['ls', '--json']).stdout).toBe(before);
    strataOk(store, ['freeze', 'leaf']);
    strataOk(store, ['import', file, 'child', '--parent', 'leaf']);
    expectClean(store);
  });

  /**
   * The importer pauses at a named step (STRATA_FAULT=<step>:pause) while
   * another process runs its start-up recovery, which must neither drop the
   * hidden image nor show it.
   */
  for (const stopAt of ['import.after-create', 'import.after-flush']) {
    it(`another command's recovery leaves an import stopped at ${stopAt} alone (#8)`, async () => {
      const store = tmpDir();
      strataOk(store, ['init']);
      const file = path.join(store, 'in.raw');
      const data = randomBytes(512 * KiB);
      fs.writeFileSync(file, data);
      const fault = faultChannel();
      const importer = cli(store, ['import', file, 'img'], { env: fault.env(stopAt) });
      await fault.reached(stopAt, { exited: importer });
      const ls = await cli(store, ['ls', '--json']);
      expect(ls.status, ls.err).toBe(0);
      expect(JSON.parse(ls.out.toString()), 'the import in progress is not listed').toEqual([]);
      fault.release();
      const r = await importer;
      expect(r.status, r.err).toBe(0);
      expect(strataOk(store, ['read', 'img']).out.equals(data)).toBe(true);
      expectClean(store);
    });
  }
});

describe('a reader of a leaf that a server is writing (#6)', () => {
  it('never reads another image’s bytes, even after the writer frees what it read and others write', async () => {
    const store = tmpDir();
    const d1 = randomBytes(64 * KiB);
    const d2 = randomBytes(64 * KiB);
    strataOk(store, ['create', 'served', '--size', '1M']);
    strataOk(store, ['write', 'served'], { input: d1 });
    strataOk(store, ['create', 'other', '--size', '1M']);
    const srv = await startServe(store, ['served']);
    const s = await openStore(store, { create: false });
    try {
      const reader = openImage(s, 'served');
      expect(reader.read(0, d1.length).equals(d1)).toBe(true);
      // The server overwrites what the reader has mapped; its old slots are free once that commits.
      const c = await RawClient.open(srv.socketPath, 'served');
      await nbdWrite(c, 0, d2);
      await nbdFlush(c);
      // Another process stores new data: it must not be given the slots the reader still names.
      const o = randomBytes(256 * KiB);
      strataOk(store, ['write', 'other'], { input: o });
      const seen = reader.read(0, d1.length);
      expect(seen.equals(d1) || seen.equals(d2), 'the reader sees a version of its own image').toBe(true);
      expect(seen.indexOf(o.subarray(0, 4 * KiB)), 'the reader sees none of the other image').toBe(-1);
      // `strata read` of the live leaf sees the flushed state.
      expect(strataOk(store, ['read', 'served', '--length', String(d2.length)]).out.equals(d2)).toBe(true);
      reader.close();
      // With the reader gone, its pinned slots are reused and nothing leaks.
      strataOk(store, ['write', 'other', '--offset', String(256 * KiB)], { input: randomBytes(64 * KiB) });
      c.close();
    } finally {
      s.close();
    }
    await srv.stop();
    const r = strata(store, ['check', '--json']);
    expect(JSON.parse(r.stdout).faults).toEqual([]);
    expect(r.status).toBe(0);
  });
});

describe('check beside writers (#7)', () => {
  it('reports a healthy store clean while a server overwrites and flushes', async () => {
    const store = tmpDir();
    const size = 2 * MiB;
    strataOk(store, ['create', 'served', '--size', String(size)]);
    strataOk(store, ['write', 'served'], { input: randomBytes(size) });
    const srv = await startServe(store, ['served']);
    const c = await RawClient.open(srv.socketPath, 'served');
    let stop = false;
    let writes = 0;
    const load = (async () => {
      while (!stop) {
        const off = 64 * KiB * Math.floor(Math.random() * (size / (64 * KiB)));
        await nbdWrite(c, off, randomBytes(64 * KiB));
        if (++writes % 2 === 0) await nbdFlush(c);
      }
    })();
    const results: string[] = [];
    try {
      for (let i = 0; i < 6; i++) {
        const r = await cli(store, ['check']);
        if (r.status !== 0) results.push(`check ${i} exited ${r.status}: ${r.out.toString()}${r.err}`);
      }
    } finally {
      stop = true;
      await load;
      c.close();
      await srv.stop();
    }
    expect(writes).toBeGreaterThan(10);
    expect(results).toEqual([]);
    expectClean(store);
  });
});

describe('leases across PID namespaces (#9)', () => {
  const canUnshare = requireTool('unshare') && available(spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0, 'unshare --pid --mount-proc is not permitted here (needs root)');

  it.skipIf(!canUnshare)('a server in another PID namespace keeps its leaf: a second writer and rm get E_BUSY', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'L', '--size', '1M']);
    const server = await startServe(store, ['L'], { wrap: ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child=SIGKILL'] });
    let holder = 0;
    try {
      // unshare --fork: its one child is the server, pid 1 inside its namespace.
      [holder] = childPids(server.pid);
      // Inside its namespace the server is pid 1; here pid 1 is init, with another start time.
      const w = strata(store, ['write', 'L'], { input: Buffer.alloc(4096, 1) });
      expect(w.status, w.stderr).toBe(E_BUSY);
      expect(w.stderr).toMatch(/^strata: image L is open for writing by strata serve \d+/);
      expect(strata(store, ['rm', 'L']).status).toBe(E_BUSY);
    } finally {
      await server.kill();
    }
    // The holder dies with unshare (--kill-child), a moment after it: once it is gone the kernel
    // has dropped its lock, and its row is cleared on the next look.
    expect(holder).toBeGreaterThan(1);
    await pidGone(holder);
    const w = strata(store, ['write', 'L'], { input: Buffer.alloc(4096, 1) });
    expect(w.status, w.stderr).toBe(0);
    expectClean(store);
  });

  it('a live holder whose pid names no process here keeps its lease (the kernel lock decides)', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'L', '--size', '1M']);
    const srv = await startServe(store, ['L']);
    const s = await openStore(store, { create: false });
    try {
      // What a holder in another namespace looks like from here: a pid that is not running.
      s.write(() => sqlOf(s).prepare("UPDATE leases SET pid = 4194304, start_time = '1'").run());
    } finally {
      s.close();
    }
    const w = strata(store, ['write', 'L'], { input: Buffer.alloc(4096, 1) });
    expect(w.status, w.stderr).toBe(E_BUSY);
    await srv.stop();
    strataOk(store, ['write', 'L'], { input: Buffer.alloc(4096, 1) });
  });
});

describe('rename of an image a server has open (#10)', () => {
  it('is refused with E_BUSY and the export keeps its name', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'served', '--size', '1M']);
    const srv = await startServe(store, ['served']);
    const r = strata(store, ['rename', 'served', 'moved']);
    expect(r.status).toBe(E_BUSY);
    expect(r.stderr.trim()).toMatch(/^strata: cannot rename served: image served is open by strata serve \d+$/);
    if (requireTool('nbdinfo')) {
      const list = await run('nbdinfo', ['--list', '--json', `nbd+unix://?socket=${srv.socketPath}`]);
      expect(list.code, list.stderr).toBe(0);
      expect(JSON.parse(list.stdout).exports.map((e: { 'export-name': string }) => e['export-name'])).toEqual(['served']);
    }
    await srv.stop();
    strataOk(store, ['rename', 'served', 'moved']);
    expect(strata(store, ['info', 'moved']).status).toBe(0);
  });
});

describe('durability of new data files (#14)', () => {
  it.skipIf(!requireTool('strace'))('fsyncs data/ after creating a data file, before the commit that uses it', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'L', '--size', '64K']);
    const trace = path.join(store, 'trace.txt');
    const input = randomBytes(64 * KiB);
    const r = spawnSync('strace', ['-f', '-e', 'trace=openat,fsync,fdatasync', '-o', trace, process.execPath, STRATA_BIN, '--store', store, 'write', 'L'], { input, timeout: 120_000, killSignal: 'SIGKILL' });
    expect(r.status, r.stderr.toString()).toBe(0);
    const lines = fs.readFileSync(trace, 'utf8').split('\n');
    const dataDir = path.join(store, 'data');
    const createdAt = lines.findIndex((l) => l.includes(`"${dataDir}/000000.dat"`) && l.includes('O_CREAT') && !/= -1/.test(l));
    expect(createdAt, 'the data file is created by this command').toBeGreaterThanOrEqual(0);
    const dirOpen = lines.findIndex((l, i) => i > createdAt && l.includes(`"${dataDir}"`) && / = \d+$/.test(l));
    expect(dirOpen, 'data/ is opened after the file is created').toBeGreaterThan(createdAt);
    const fd = / = (\d+)$/.exec(lines[dirOpen])![1];
    const dirSync = lines.findIndex((l, i) => i > dirOpen && new RegExp(`fsync\\(${fd}\\)`).test(l));
    expect(dirSync, 'data/ is fsynced').toBeGreaterThan(dirOpen);
    const walSync = lines.findIndex((l, i) => i > dirSync && /fsync|fdatasync/.test(l));
    expect(walSync, 'the commit is synced after data/').toBeGreaterThan(dirSync);
    expect(strataOk(store, ['read', 'L']).out.equals(input)).toBe(true);
  });
});
