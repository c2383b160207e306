/**
 * The contract every BlockBackend keeps (src/store/blocks/datafiles.ts), run
 * against each: the local data files, and FaultyBlocks over them with no
 * fault planned (a wrapper that changes nothing must be invisible). Then what
 * FaultyBlocks does when a fault is planned: a failed write writes nothing, a
 * torn one exactly its first blocks, a dropped one nothing while it returns,
 * a skipped sync nothing; each failure is the typed error a full disk gives.
 * Last, STRATA_FAULT naming a data-file point installs it in the CLI's store.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { StrataError } from '../../src/errors.js';
import { openLocalBlocks, type BlockBackend } from '../../src/store/blocks/datafiles.js';
import { faultyBlocks, type BlockFaultPlan, type SyncFault, type WriteFault } from '../../src/store/blocks/faulty-blocks.js';
import { CODEC_IDS, compressEach } from '../../src/store/blocks/codecs.js';
import { nativeCodecs, nativeStatus } from '../../src/store/blocks/native.js';
import { loadXxh64, type HashFn } from '../../src/store/core/hash.js';
import { BLOCK_SIZE, SLOTS_PER_FILE, type SlotNumber } from '../../src/store/core/types.js';
import { nativeAvailable } from '../helpers/available.js';
import { strata, strataAsync, strataOk } from '../helpers/cli.js';
import { faultChannel } from '../helpers/fault.js';
import { rng } from '../helpers/random.js';
import { tmpDir } from '../helpers/tmp.js';

const slot = (n: number) => n as SlotNumber;

/** `count` blocks of distinct random bytes, one buffer. */
const blocks = (seed: number, count: number) => Buffer.from(rng(seed).bytes(count * BLOCK_SIZE));

function readBack(b: BlockBackend, first: number, count: number): Buffer {
  const out = Buffer.alloc(count * BLOCK_SIZE);
  b.read(slot(first), count, out, 0);
  return out;
}

let hash: HashFn;
beforeAll(async () => {
  hash = await loadXxh64();
});

/** A backend over a fresh data directory, and how to open another over the same directory (a reopen). */
interface Made {
  backend: BlockBackend;
  reopen(): BlockBackend;
}

function describeBlockBackend(name: string, make: (dataDir: string) => BlockBackend) {
  const fresh = (): Made => {
    const dir = path.join(tmpDir(), 'data');
    fs.mkdirSync(dir);
    return { backend: make(dir), reopen: () => make(dir) };
  };

  describe(`BlockBackend contract: ${name}`, () => {
    it('reads back what write() wrote, from buffers of several slots each, at any slot', () => {
      const { backend: b } = fresh();
      const data = blocks(1, 7);
      b.write(slot(3), [data.subarray(0, 2 * BLOCK_SIZE), data.subarray(2 * BLOCK_SIZE, 3 * BLOCK_SIZE), data.subarray(3 * BLOCK_SIZE)]);
      expect(readBack(b, 3, 7).equals(data)).toBe(true);
      expect(readBack(b, 5, 2).equals(data.subarray(2 * BLOCK_SIZE, 4 * BLOCK_SIZE))).toBe(true);
      // Into the middle of a larger buffer, at a byte offset.
      const into = Buffer.alloc(9 * BLOCK_SIZE, 0xee);
      b.read(slot(4), 2, into, 3 * BLOCK_SIZE);
      expect(into.subarray(3 * BLOCK_SIZE, 5 * BLOCK_SIZE).equals(data.subarray(BLOCK_SIZE, 3 * BLOCK_SIZE))).toBe(true);
      expect(into.subarray(0, 3 * BLOCK_SIZE).every((x) => x === 0xee)).toBe(true);
      expect(into.subarray(5 * BLOCK_SIZE).every((x) => x === 0xee)).toBe(true);
      b.close();
    });

    it('a run of slots across a data-file boundary is written and read as one', () => {
      const { backend: b } = fresh();
      const first = SLOTS_PER_FILE - 2;
      const data = blocks(2, 5);
      b.write(slot(first), [data]);
      expect(readBack(b, first, 5).equals(data)).toBe(true);
      expect(readBack(b, SLOTS_PER_FILE, 3).equals(data.subarray(2 * BLOCK_SIZE))).toBe(true);
      expect(b.diskUsage().files).toBe(2);
      b.close();
    });

    it('writeScattered puts blocks[i] in slots[i], in any order and in several files', () => {
      const { backend: b } = fresh();
      const data = blocks(3, 4);
      const at = [9, 2, SLOTS_PER_FILE + 1, 5];
      b.writeScattered(
        at.map(slot),
        at.map((_, i) => data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE)),
      );
      at.forEach((s, i) => expect(readBack(b, s, 1).equals(data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE)), `slot ${s}`).toBe(true));
      b.close();
    });

    it('a later write to a slot replaces its bytes; its neighbours keep theirs', () => {
      const { backend: b } = fresh();
      const data = blocks(4, 3);
      b.write(slot(0), [data]);
      const again = blocks(5, 1);
      b.writeScattered([slot(1)], [again]);
      expect(readBack(b, 0, 3).equals(Buffer.concat([data.subarray(0, BLOCK_SIZE), again, data.subarray(2 * BLOCK_SIZE)]))).toBe(true);
      b.close();
    });

    it('a read past the end of the data files is E_CORRUPT naming the first slot missing', () => {
      const { backend: b } = fresh();
      b.write(slot(0), [blocks(6, 2)]);
      let err: unknown;
      try {
        readBack(b, 1, 3);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(StrataError);
      expect((err as StrataError).code).toBe('E_CORRUPT');
      expect((err as Error).message).toBe('data file 000000.dat is shorter than slot 2');
      b.close();
    });

    it('readChecked reads as read() does and names the first block whose hash differs (or says null: it cannot)', () => {
      const { backend: b } = fresh();
      const data = blocks(7, 4);
      b.write(slot(10), [data]);
      const expected = new Float64Array(4);
      for (let i = 0; i < 4; i++) expected[i] = hash(data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE));
      const into = Buffer.alloc(4 * BLOCK_SIZE);
      const ok = b.readChecked(slot(10), 4, into, 0, expected);
      if (ok === null) {
        expect(nativeAvailable(nativeStatus())).toBe(false);
        return;
      }
      expect(ok).toBe(-1);
      expect(into.equals(data)).toBe(true);
      expected[2] += 1;
      expect(b.readChecked(slot(10), 4, Buffer.alloc(4 * BLOCK_SIZE), 0, expected)).toBe(2);
      b.close();
    });

    it('readFragment decodes a compressed block from inside a slot, or says -1 (it cannot) for the caller to decode', () => {
      const { backend: b } = fresh();
      const text = Buffer.alloc(BLOCK_SIZE);
      for (let i = 0; i < BLOCK_SIZE; i++) text[i] = 'the same words again and again '.charCodeAt(i % 31);
      if (!nativeAvailable(nativeStatus()) || !nativeCodecs()?.zstd) return;
      let fragment = Buffer.alloc(0);
      compressEach({ codec: 'zstd', level: 3 }, [text], (_i, buf, at, length) => (fragment = Buffer.from(buf.subarray(at, at + length))));
      expect(fragment.length).toBeGreaterThan(0);
      const container = Buffer.alloc(BLOCK_SIZE, 0x55);
      fragment.copy(container, 100);
      b.write(slot(4), [container]);
      const into = Buffer.alloc(2 * BLOCK_SIZE);
      const n = b.readFragment(slot(4), 100, fragment.length, CODEC_IDS.zstd, into, BLOCK_SIZE);
      if (n === -1) return;
      expect(n).toBe(BLOCK_SIZE);
      expect(into.subarray(BLOCK_SIZE).equals(text)).toBe(true);
      b.close();
    });

    it('what was written and synced is there for the next backend over the same directory', () => {
      const made = fresh();
      const data = blocks(8, 3);
      made.backend.write(slot(1), [data]);
      made.backend.startWriteback();
      made.backend.sync();
      made.backend.close();
      const again = made.reopen();
      expect(readBack(again, 1, 3).equals(data)).toBe(true);
      again.close();
    });

    it('release returns slots\' space (reading zeros after) where it can; truncate cuts the files to hold exactly that many slots', () => {
      const { backend: b } = fresh();
      b.write(slot(0), [blocks(9, 64)]);
      b.sync();
      const before = b.diskUsage();
      expect(before).toMatchObject({ apparent: 64 * BLOCK_SIZE, files: 1 });
      if (b.release(slot(8), 16)) {
        expect(readBack(b, 8, 16).every((x) => x === 0)).toBe(true);
        expect(b.diskUsage().allocated).toBeLessThan(before.allocated);
      }
      b.truncate(20);
      expect(b.diskUsage().apparent).toBe(20 * BLOCK_SIZE);
      expect(() => readBack(b, 19, 2)).toThrow('data file 000000.dat is shorter than slot 20');
      b.truncate(0);
      expect(b.diskUsage()).toMatchObject({ apparent: 0, files: 1 });
      b.close();
    });
  });
}

describeBlockBackend('local data files', (dir) => openLocalBlocks(dir, false));
describeBlockBackend('FaultyBlocks with nothing planned', (dir) => faultyBlocks(openLocalBlocks(dir, false), {}));
describeBlockBackend('FaultyBlocks whose plan lets every call through', (dir) => faultyBlocks(openLocalBlocks(dir, false), { write: () => null, sync: () => null }));

describe('FaultyBlocks: the faults it plans', () => {
  /** Local data files with the old bytes in slots 0..7, wrapped in FaultyBlocks whose next write meets `fault`. */
  function over(fault: WriteFault | null, syncFault: SyncFault | null = null) {
    const dir = path.join(tmpDir(), 'data');
    fs.mkdirSync(dir);
    const inner = openLocalBlocks(dir, false);
    const old = blocks(20, 8);
    inner.write(slot(0), [old]);
    const asked: number[][] = [];
    const plan: BlockFaultPlan = {
      write: (slots) => {
        asked.push([...slots]);
        return fault;
      },
      sync: () => syncFault,
    };
    return { b: faultyBlocks(inner, plan), inner, old, asked, dir };
  }

  const thrown = (fn: () => void): StrataError => {
    try {
      fn();
    } catch (e) {
      return e as StrataError;
    }
    throw new Error('it did not throw');
  };

  it('the plan is asked with the slots each call writes', () => {
    const { b, asked } = over(null);
    b.write(slot(2), [blocks(21, 2), blocks(22, 1)]);
    b.writeScattered([slot(7), slot(0)], [blocks(23, 1), blocks(24, 1)]);
    expect(asked).toEqual([[2, 3, 4], [7, 0]]);
  });

  it('a failed write writes nothing and throws E_NO_SPACE naming the data file, as a full disk does', () => {
    const { b, old } = over({ kind: 'fail', code: 'ENOSPC' });
    const e = thrown(() => b.write(slot(2), [blocks(25, 3)]));
    expect(e).toBeInstanceOf(StrataError);
    expect(e.code).toBe('E_NO_SPACE');
    expect(e.message).toBe('no space left to write 000000.dat');
    expect(readBack(b, 0, 8).equals(old)).toBe(true);
    const s = thrown(() => b.writeScattered([slot(1)], [blocks(26, 1)]));
    expect(s.code).toBe('E_NO_SPACE');
    expect(readBack(b, 0, 8).equals(old)).toBe(true);
  });

  it('an EIO is E_IO naming the file of the first slot not written', () => {
    const { b } = over({ kind: 'fail', code: 'EIO' });
    const e = thrown(() => b.write(slot(SLOTS_PER_FILE + 3), [blocks(27, 1)]));
    expect(e.code).toBe('E_IO');
    expect(e.message).toBe('cannot write 000001.dat: EIO');
  });

  it('a torn write writes exactly its first blocks, then fails', () => {
    const { b, old } = over({ kind: 'tear', blocks: 3, code: 'ENOSPC' });
    const data = blocks(28, 5);
    // Buffers of 2 and 3 blocks: the tear falls inside the second.
    const e = thrown(() => b.write(slot(1), [data.subarray(0, 2 * BLOCK_SIZE), data.subarray(2 * BLOCK_SIZE)]));
    expect(e.code).toBe('E_NO_SPACE');
    const want = Buffer.from(old);
    data.copy(want, BLOCK_SIZE, 0, 3 * BLOCK_SIZE);
    expect(readBack(b, 0, 8).equals(want)).toBe(true);

    const s = thrown(() => b.writeScattered([slot(7), slot(0), slot(5), slot(6)], [data.subarray(0, BLOCK_SIZE), data.subarray(BLOCK_SIZE, 2 * BLOCK_SIZE), data.subarray(2 * BLOCK_SIZE, 3 * BLOCK_SIZE), data.subarray(3 * BLOCK_SIZE, 4 * BLOCK_SIZE)]));
    expect(s.code).toBe('E_NO_SPACE');
    data.copy(want, 7 * BLOCK_SIZE, 0, BLOCK_SIZE);
    data.copy(want, 0, BLOCK_SIZE, 2 * BLOCK_SIZE);
    data.copy(want, 5 * BLOCK_SIZE, 2 * BLOCK_SIZE, 3 * BLOCK_SIZE);
    expect(readBack(b, 0, 8).equals(want)).toBe(true);
  });

  it('a dropped write returns as if done, and writes nothing (a lost write)', () => {
    const { b, old } = over({ kind: 'drop' });
    b.write(slot(0), [blocks(29, 8)]);
    b.writeScattered([slot(3)], [blocks(30, 1)]);
    expect(readBack(b, 0, 8).equals(old)).toBe(true);
  });

  it('a skipped sync returns without syncing; a failed one throws E_IO naming the data file', () => {
    const { b, inner } = over(null, { kind: 'skip' });
    let synced = 0;
    const counting = faultyBlocks({ ...inner, sync: () => void synced++ }, { sync: () => ({ kind: 'skip' }) });
    counting.sync();
    expect(synced).toBe(0);
    b.sync();
    const failing = faultyBlocks(inner, { sync: () => ({ kind: 'fail', code: 'EIO' }) });
    const e = thrown(() => failing.sync());
    expect(e.code).toBe('E_IO');
    expect(e.message).toBe('cannot sync 000000.dat: EIO');
  });
});

describe('STRATA_FAULT at a data-file point: the store opens its data files through FaultyBlocks', () => {
  it('datafile.write:pause holds a write at its data-file write; released, it completes', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'a', '--size', '1M']);
    const data = Buffer.from(rng(41).bytes(64 * 1024));
    const fault = faultChannel();
    const writer = strataAsync(store, ['write', 'a'], { input: data, env: fault.env('datafile.write') });
    const pid = await fault.reached('datafile.write', { exited: writer });
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toContain('write');
    fault.release();
    const r = await writer;
    expect(r.status, r.err).toBe(0);
    expect(strataOk(store, ['read', 'a', '--length', String(data.length)]).out.equals(data)).toBe(true);
    expect(fault.announced).toEqual(['datafile.write']);
  });

  it('datafile.write:1 kills the process at its first data-file write: the image reads as before and the store checks clean', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'a', '--size', '1M']);
    const before = Buffer.from(rng(42).bytes(64 * 1024));
    strataOk(store, ['write', 'a'], { input: before });
    const r = strata(store, ['write', 'a'], { input: Buffer.from(rng(43).bytes(64 * 1024)), env: { STRATA_FAULT: 'datafile.write:1' } });
    expect(r.status, r.stderr).toBe(-1);
    expect(strataOk(store, ['read', 'a', '--length', String(before.length)]).out.equals(before)).toBe(true);
    expect(strata(store, ['check']).status).toBe(0);
  });
});
