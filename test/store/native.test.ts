import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readSync, rmSync, writeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { canCompress } from '../../src/store/blocks/codecs.js';
import { dataExtents, nativeBlockHash, nativeStatus, ofdLocks, punchHole } from '../../src/store/blocks/native.js';
import { loadXxh64 } from '../../src/store/core/hash.js';
import { inCI } from '../helpers/available.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const nativeModule = fileURLToPath(new URL('../../src/store/blocks/native.ts', import.meta.url));

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'strata-native-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A block of 4 KiB filled with a non-zero byte derived from its index. */
function block(i: number): Buffer {
  return Buffer.alloc(4 * KiB, (i % 255) + 1);
}

function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, offset + done);
    if (n === 0) break;
    done += n;
  }
  return buf.subarray(0, done);
}

function withFile<T>(name: string, fn: (fd: number) => T): T {
  const fd = openSync(join(dir, name), 'w+');
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

const native = nativeStatus().mode === 'native';

describe('native addon', () => {
  it('reports its mode; in CI, native with both codecs, for .ci/run builds it', () => {
    const s = nativeStatus();
    expect(['native', 'fallback']).toContain(s.mode);
    if (inCI) expect({ ...s, zstd: canCompress('zstd'), lz4: canCompress('lz4') }).toEqual({ mode: 'native', zstd: true, lz4: true });
    if (s.mode === 'fallback') expect(s.reason).toMatch(/\S/);
    // Building the addon is part of `npm install` on Linux; say so loudly if it is missing.
    if (!native) console.warn(`native addon not in use: ${s.reason}`);
  });

  describe.skipIf(!native)('punchHole', () => {
    it('frees the blocks of the range, which then reads zeros, and keeps the size', () => {
      withFile('punch', (fd) => {
        const blocks = 256; // 1 MiB of written 4 KiB blocks
        for (let i = 0; i < blocks; i++) writeSync(fd, block(i), 0, 4 * KiB, i * 4 * KiB);
        const before = fstatSync(fd);
        expect(before.size).toBe(1 * MiB);

        // Punch blocks 16..143 (512 KiB).
        expect(punchHole(fd, 16 * 4 * KiB, 128 * 4 * KiB)).toBe(true);
        const after = fstatSync(fd);
        expect(after.size).toBe(before.size);
        // stat blocks are 512-byte units: at least the punched 512 KiB went back.
        expect(before.blocks - after.blocks).toBeGreaterThanOrEqual((512 * KiB) / 512);

        expect(readAt(fd, 16 * 4 * KiB, 128 * 4 * KiB).equals(Buffer.alloc(128 * 4 * KiB))).toBe(true);
        // Neighbours untouched.
        expect(readAt(fd, 15 * 4 * KiB, 4 * KiB).equals(block(15))).toBe(true);
        expect(readAt(fd, 144 * 4 * KiB, 4 * KiB).equals(block(144))).toBe(true);
        // The punched range shows up as a hole.
        expect(dataExtents(fd, after.size)).toEqual([
          { offset: 0, length: 16 * 4 * KiB },
          { offset: 144 * 4 * KiB, length: (blocks - 144) * 4 * KiB },
        ]);
      });
    });

    it('treats an empty range as done and rejects bad arguments', () => {
      withFile('punch-args', (fd) => {
        writeSync(fd, block(1), 0, 4 * KiB, 0);
        expect(punchHole(fd, 0, 0)).toBe(true);
        expect(() => punchHole(fd, -1, 4096)).toThrow(RangeError);
        expect(() => punchHole(fd, 0.5, 4096)).toThrow(RangeError);
        expect(() => punchHole(fd, 2 ** 53, 4096)).toThrow(RangeError);
        expect(() => punchHole('x' as unknown as number, 0, 4096)).toThrow(TypeError);
      });
    });

    it('throws an errno error for a bad descriptor', () => {
      const fd = openSync(join(dir, 'closed'), 'w+');
      closeSync(fd);
      expect(() => punchHole(fd, 0, 4096)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'fallocate' }));
    });

    it('throws EBADF for a read-only descriptor', () => {
      withFile('ro-src', (fd) => writeSync(fd, block(2), 0, 4 * KiB, 0));
      const fd = openSync(join(dir, 'ro-src'), 'r');
      try {
        expect(() => punchHole(fd, 0, 4096)).toThrow(expect.objectContaining({ code: 'EBADF' }));
      } finally {
        closeSync(fd);
      }
    });
  });

  describe.skipIf(!native)('dataExtents', () => {
    it('finds exactly the written runs of a sparse file, aligned to the fs block size', () => {
      withFile('sparse', (fd) => {
        const size = 64 * MiB;
        ftruncateSync(fd, size);
        const bs = fstatSync(fd).blksize || 4096;
        const align = Math.max(bs, 4 * KiB);
        // Whole-block writes at block-aligned offsets, one spanning two blocks, one at the very end.
        const writes = [
          { offset: 1 * MiB, length: 4 * KiB },
          { offset: 8 * MiB, length: 128 * KiB },
          { offset: 8 * MiB + 512 * KiB, length: 8 * KiB },
          { offset: 40 * MiB + 100, length: 10 }, // unaligned: the fs allocates its whole block
          { offset: size - 4 * KiB, length: 4 * KiB },
        ];
        for (const w of writes) writeSync(fd, Buffer.alloc(w.length, 0xab), 0, w.length, w.offset);
        expect(fstatSync(fd).size).toBe(size);

        const floor = (n: number) => Math.floor(n / align) * align;
        const ceil = (n: number) => Math.ceil(n / align) * align;
        const expected = writes.map((w) => ({ offset: floor(w.offset), length: ceil(w.offset + w.length) - floor(w.offset) }));
        const runs = dataExtents(fd, size);
        expect(runs).toEqual(expected);
        for (const r of runs) expect(r.offset % align).toBe(0);
      });
    });

    it('clips runs to the given size and handles empty and all-hole files', () => {
      withFile('clip', (fd) => {
        expect(dataExtents(fd, 0)).toEqual([]);
        ftruncateSync(fd, 1 * MiB);
        expect(dataExtents(fd, 1 * MiB)).toEqual([]);
        writeSync(fd, Buffer.alloc(64 * KiB, 1), 0, 64 * KiB, 0);
        expect(dataExtents(fd, 16 * KiB)).toEqual([{ offset: 0, length: 16 * KiB }]);
        // A size past EOF: the tail beyond EOF is not data.
        expect(dataExtents(fd, 4 * MiB)).toEqual([{ offset: 0, length: 64 * KiB }]);
      });
    });

    it('lists a dense file as one run', () => {
      withFile('dense', (fd) => {
        writeSync(fd, Buffer.alloc(3 * MiB + 123, 7));
        expect(dataExtents(fd, 3 * MiB + 123)).toEqual([{ offset: 0, length: 3 * MiB + 123 }]);
      });
    });
  });

  describe.skipIf(!native)('block hashes (read verification)', () => {
    it('XXH64 in C agrees with xxhash-wasm, block by block, and names the first block that differs', async () => {
      const hash = await loadXxh64();
      const n = 64;
      const buf = Buffer.from(Array.from({ length: n * 4 * KiB }, (_, i) => (i * 2654435761) >>> 24));
      buf.fill(0, 3 * 4 * KiB, 4 * 4 * KiB); // a zero block hashes like any other
      const expected = new Float64Array(n);
      for (let i = 0; i < n; i++) expected[i] = hash(buf.subarray(i * 4 * KiB, (i + 1) * 4 * KiB));
      const bh = nativeBlockHash()!;
      expect(bh.verify(buf, 0, n, expected, 0)).toBe(-1);
      expect(bh.verify(buf, 10 * 4 * KiB, 5, expected, 10)).toBe(-1);
      buf[37 * 4 * KiB + 4095] ^= 1;
      expect(bh.verify(buf, 0, n, expected, 0)).toBe(37);
      expect(bh.verify(buf, 30 * 4 * KiB, 10, expected, 30)).toBe(7);
      expected[0] = NaN; // a container's hash matches nothing
      expect(bh.verify(buf, 0, 1, expected, 0)).toBe(0);
      expect(() => bh.verify(buf, 0, n + 1, expected, 0)).toThrow(/outside their buffer/);
    });

    it('readBlocks reads and verifies in one call; a file that ends first is E_SHORT', async () => {
      const hash = await loadXxh64();
      withFile('hashed', (fd) => {
        const data = Buffer.concat([block(1), block(2), block(3)]);
        writeSync(fd, data, 0, data.length, 0);
        const expected = new Float64Array([1, 2, 3].map((i) => hash(block(i))));
        const into = Buffer.alloc(3 * 4 * KiB);
        expect(nativeBlockHash()!.read(fd, 0, 3, into, 0, expected, 0)).toBe(-1);
        expect(into.equals(data)).toBe(true);
        expected[2] = hash(block(9));
        expect(nativeBlockHash()!.read(fd, 4 * KiB, 2, into, 0, expected, 1)).toBe(1);
        expect(() => nativeBlockHash()!.read(fd, 2 * 4 * KiB, 2, into, 0, expected, 0)).toThrow(expect.objectContaining({ code: 'E_SHORT' }));
      });
    });
  });
});

describe('fallback (STRATA_NO_NATIVE=1)', () => {
  it('in an isolated module instance: mode fallback, one full run, nothing reclaimed', async () => {
    vi.resetModules();
    vi.stubEnv('STRATA_NO_NATIVE', '1');
    try {
      const m = await import('../../src/store/blocks/native.js');
      expect(m.nativeStatus()).toEqual({ mode: 'fallback', reason: expect.stringContaining('STRATA_NO_NATIVE') });
      withFile('fallback', (fd) => {
        ftruncateSync(fd, 8 * MiB);
        writeSync(fd, block(3), 0, 4 * KiB, 4 * MiB);
        expect(m.dataExtents(fd, 8 * MiB)).toEqual([{ offset: 0, length: 8 * MiB }]);
        expect(m.dataExtents(fd, 0)).toEqual([]);
        expect(m.punchHole(fd, 4 * MiB, 4 * KiB)).toBe(false);
        expect(readAt(fd, 4 * MiB, 4 * KiB).equals(block(3))).toBe(true);
      });
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });

  it('in a child process under tsx', () => {
    const file = join(dir, 'child');
    withFile('child', (fd) => {
      ftruncateSync(fd, 2 * MiB);
      writeSync(fd, block(4), 0, 4 * KiB, 1 * MiB);
    });
    const script = `
      import { openSync } from 'node:fs';
      import { nativeStatus, dataExtents, punchHole } from ${JSON.stringify(nativeModule)};
      const fd = openSync(${JSON.stringify(file)}, 'r+');
      console.log(JSON.stringify({ status: nativeStatus(), runs: dataExtents(fd, ${2 * MiB}), punched: punchHole(fd, 0, 4096) }));
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, STRATA_NO_NATIVE: '1' },
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      status: { mode: 'fallback', reason: 'disabled by STRATA_NO_NATIVE=1' },
      runs: [{ offset: 0, length: 2 * MiB }],
      punched: false,
    });
  });
});

describe('OFD locks (the liveness of leases)', () => {
  const locks = ofdLocks();
  it.skipIf(!native)('conflict between two opens of one file in one process, see every holder, and end with the fd', () => {
    expect(locks).not.toBeNull();
    const file = join(dir, 'lock');
    const a = openSync(file, 'w+');
    const b = openSync(file, 'r+');
    const probe = openSync(file, 'r');
    try {
      expect(locks!.locked(probe, 7, 1)).toBe(false);
      expect(locks!.lock(a, 7, 1, true)).toBe(true);
      expect(locks!.lock(b, 7, 1, true)).toBe(false); // another open file description: a conflict, even here
      expect(locks!.lock(b, 8, 1, true)).toBe(true); // the next byte is another lease
      expect(locks!.locked(probe, 7, 1)).toBe(true);
      expect(locks!.locked(a, 7, 1)).toBe(false); // an OFD never conflicts with itself
      closeSync(a);
      expect(locks!.locked(probe, 7, 1)).toBe(false); // closing drops the lock: a dead holder's lease is gone
      expect(locks!.lock(b, 7, 1, true)).toBe(true);
    } finally {
      closeSync(b);
      closeSync(probe);
    }
  });

  it('are absent under STRATA_NO_NATIVE=1, and leases fall back to pids', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', `import('${nativeModule}').then((m) => console.log(m.ofdLocks() === null))`], {
      env: { ...process.env, STRATA_NO_NATIVE: '1' },
      encoding: 'utf8',
    });
    expect(r.stdout.trim(), r.stderr).toBe('true');
  });
});
