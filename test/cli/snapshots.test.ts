/**
 * Snapshots of live disks and rollback, as a fleet operator uses them: a
 * served leaf written by qemu-io over NBD is snapshotted and cloned from the
 * CLI while the server runs; rollback goes back; numbers only grow; a
 * snapshot is never changed unasked.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { openImage } from '../../src/image/image.js';
import { openStore } from '../../src/store/core/store.js';
import { CMD } from '../../src/nbd/protocol.js';
import { strata, strataAsync, strataOk } from '../helpers/cli.js';
import { RawClient } from '../helpers/nbd-raw-client.js';
import { startServe } from '../helpers/serve.js';
import { requireTool, run } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

const KiB = 1024;
const MiB = 1024 * KiB;

const fill = (byte: number, n: number) => Buffer.alloc(n, byte);
const read = (store: string, name: string) => strataOk(store, ['read', name]).out;
function expectClean(store: string): void {
  const r = strata(store, ['check']);
  expect(r.status, r.stdout + r.stderr).toBe(0);
}

describe('snapshot and clone of a leaf a server is writing', () => {
  it.skipIf(!requireTool('qemu-io'))('the snapshot holds exactly what qemu-io wrote before it, the leaf what it wrote after', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'vm', '--size', '2M']);
    const srv = await startServe(store, ['vm']);
    const io = async (cmd: string) => {
      const r = await run('qemu-io', ['-f', 'raw', '-c', cmd, srv.uri('vm')]);
      expect(r.code, r.stderr + r.stdout).toBe(0);
    };
    await io(`write -P 0x11 0 ${MiB}`);
    const snap = strata(store, ['snapshot', 'vm', 'before', '--json']);
    expect(snap.status, snap.stderr).toBe(0);
    expect(JSON.parse(snap.stdout)).toEqual({ snapshot: 'vm@before', kind: 'base', leaf: 'vm' });
    await io(`write -P 0x22 ${512 * KiB} ${MiB}`);
    const clone = strata(store, ['clone', 'vm', 'c1', 'c2']);
    expect(clone.status, clone.stderr).toBe(0);
    expect(clone.stdout).toBe('snapshotted vm as vm@snap1\ncloned c1 from vm@snap1\ncloned c2 from vm@snap1\n');
    await io(`write -P 0x33 0 ${4 * KiB}`);
    // While the server runs, other processes read the frozen images exactly.
    const first = Buffer.concat([fill(0x11, MiB), fill(0, MiB)]);
    const second = Buffer.concat([fill(0x11, 512 * KiB), fill(0x22, MiB), fill(0, 512 * KiB)]);
    expect(read(store, 'vm@before').equals(first)).toBe(true);
    expect(read(store, 'c1').equals(second)).toBe(true);
    await srv.stop();
    expect(read(store, 'vm').equals(Buffer.concat([fill(0x33, 4 * KiB), second.subarray(4 * KiB)]))).toBe(true);
    expect(read(store, 'vm@snap1').equals(second)).toBe(true);
    expect(read(store, 'c2').equals(second)).toBe(true);
    expectClean(store);
  });

  it('takes writes the client had acknowledged but not flushed, and the client goes on writing throughout', async () => {
    const store = tmpDir();
    const size = 4 * MiB;
    strataOk(store, ['create', 'vm', '--size', String(size)]);
    const srv = await startServe(store, ['vm']);
    const c = await RawClient.open(srv.socketPath, 'vm');
    const model = Buffer.alloc(size);
    const a = randomBytes(256 * KiB);
    expect((await c.call(CMD.WRITE, 0, a.length, 0, a)).error).toBe(0);
    a.copy(model, 0);
    // No FLUSH: the server flushes before it freezes.
    strataOk(store, ['snapshot', 'vm']);
    const snaps: Buffer[] = [Buffer.from(model)];
    let stop = false;
    let writes = 0;
    const errors: number[] = [];
    const writer = (async () => {
      while (!stop) {
        const off = 64 * KiB * ((writes * 7) % (size / (64 * KiB)));
        const d = randomBytes(64 * KiB);
        const r = await c.call(CMD.WRITE, off, d.length, 0, d);
        if (r.error !== 0) errors.push(r.error);
        d.copy(model, off);
        writes++;
      }
    })();
    for (let i = 0; i < 3; i++) {
      const r = await strataAsync(store, ['snapshot', 'vm', '--json']);
      expect(r.status, r.err).toBe(0);
      expect(JSON.parse(r.out.toString()).snapshot).toBe(`vm@snap${i + 2}`);
    }
    stop = true;
    await writer;
    expect(errors).toEqual([]);
    expect(writes).toBeGreaterThan(3);
    c.close();
    await srv.stop();
    expect(read(store, 'vm@snap1').equals(snaps[0])).toBe(true);
    expect(read(store, 'vm').equals(model)).toBe(true);
    expect(strataOk(store, ['tree']).stdout).toMatch(/vm@snap1[\s\S]*vm@snap2[\s\S]*vm@snap3[\s\S]*vm@snap4/);
    expectClean(store);
  });

  it('a leaf held by a writer that takes no requests is refused with E_BUSY; so is rollback of a served leaf', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'vm', '--size', '1M']);
    strataOk(store, ['snapshot', 'vm']);
    const s = await openStore(store, { create: false });
    const w = openImage(s, 'vm', { writable: true });
    try {
      const r = strata(store, ['snapshot', 'vm']);
      expect(r.status).toBe(ERROR_CODES.E_BUSY);
      expect(r.stderr.trim()).toMatch(/^strata: cannot snapshot vm: image vm is open by process \d+$/);
    } finally {
      w.close();
      s.close();
    }
    const srv = await startServe(store, ['vm']);
    const r = strata(store, ['rollback', 'vm']);
    expect(r.status).toBe(ERROR_CODES.E_BUSY);
    expect(r.stderr.trim()).toMatch(/^strata: cannot roll back vm: image vm is open by strata serve \d+$/);
    // A name that exists already: the server's answer comes back as the same typed error.
    const dup = strata(store, ['snapshot', 'vm', 'snap1']);
    expect(dup.status).toBe(ERROR_CODES.E_EXISTS);
    expect(dup.stderr.trim()).toBe('strata: an image named vm@snap1 already exists');
    await srv.stop();
    expectClean(store);
  });
});

describe('rollback', () => {
  it('drops the changes since the latest snapshot, or since an older one, keeping the snapshots in between', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'vm', '--size', '64K']);
    const a = randomBytes(64 * KiB);
    const b = randomBytes(64 * KiB);
    const c = randomBytes(32 * KiB);
    strataOk(store, ['write', 'vm'], { input: a });
    strataOk(store, ['snapshot', 'vm']); // vm@snap1 = a
    strataOk(store, ['write', 'vm'], { input: b });
    strataOk(store, ['snapshot', 'vm']); // vm@snap2 = b
    strataOk(store, ['write', 'vm'], { input: c });
    const r1 = strataOk(store, ['rollback', 'vm']);
    expect(r1.stdout).toBe('rolled vm back to vm@snap2 (dropped 32 KiB of its own changes)\n');
    expect(read(store, 'vm').equals(b)).toBe(true);
    strataOk(store, ['write', 'vm'], { input: c });
    const r2 = JSON.parse(strataOk(store, ['rollback', 'vm', 'vm@snap1', '--json']).stdout);
    expect(r2).toEqual({ leaf: 'vm', to: 'vm@snap1', discardedBytes: 32 * KiB, virtualSize: 64 * KiB, kept: ['vm@snap2'] });
    expect(read(store, 'vm').equals(a)).toBe(true);
    expect(read(store, 'vm@snap2').equals(b)).toBe(true);
    // Numbers only grow: with vm@snap2 gone, the next snapshot is still vm@snap3.
    strataOk(store, ['rm', 'vm@snap2']);
    expect(JSON.parse(strataOk(store, ['snapshot', 'vm', '--json']).stdout).snapshot).toBe('vm@snap3');
    expectClean(store);
  });

  it('refuses what it cannot do with a typed one-line error and changes nothing', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'vm', '--size', '64K']);
    strataOk(store, ['create', 'other', '--size', '64K']);
    strataOk(store, ['snapshot', 'other']);
    const before = strataOk(store, ['ls', '--json']).stdout;
    const cases: [string[], number, string][] = [
      [['rollback', 'vm'], ERROR_CODES.E_BAD_INPUT, 'strata: image vm has no snapshot to roll back to'],
      [['rollback', 'other@snap1', 'other@snap1'], ERROR_CODES.E_READONLY, 'strata: image other@snap1 is frozen (base); rollback resets a writable leaf'],
      [['rollback', 'nope'], ERROR_CODES.E_NOT_FOUND, 'strata: no image named nope'],
      [['rollback', 'other', 'nope'], ERROR_CODES.E_NOT_FOUND, 'strata: no image named nope'],
      [['rollback', 'other', 'vm'], ERROR_CODES.E_BAD_INPUT, 'strata: cannot roll back other to vm: vm is not below other (its chain: other@snap1)'],
    ];
    for (const [args, status, message] of cases) {
      const r = strata(store, args);
      expect(r.status, args.join(' ')).toBe(status);
      expect(r.stderr).toBe(message + '\n');
    }
    expect(strataOk(store, ['ls', '--json']).stdout).toBe(before);
  });
});

describe('commit into a snapshot', () => {
  it('is refused unless forced: a snapshot keeps what it held when taken', () => {
    const store = tmpDir();
    const a = randomBytes(64 * KiB);
    const b = randomBytes(64 * KiB);
    strataOk(store, ['create', 'vm', '--size', '64K']);
    strataOk(store, ['write', 'vm'], { input: a });
    strataOk(store, ['snapshot', 'vm', 'golden']);
    strataOk(store, ['write', 'vm'], { input: b });
    const r = strata(store, ['commit', 'vm']);
    expect(r.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(r.stderr).toMatch(/^strata: cannot commit vm into vm@golden: vm@golden is a snapshot \(taken \d{4}-\d\d-\d\dT[\d:.]+Z\) and would no longer hold what it held then; pass --force to change it, or snapshot vm instead\n$/);
    expect(read(store, 'vm@golden').equals(a)).toBe(true);
    strataOk(store, ['commit', 'vm', '--force']);
    expect(read(store, 'vm@golden').equals(b)).toBe(true);
    expect(read(store, 'vm').equals(b)).toBe(true);
    expectClean(store);
  });
});
