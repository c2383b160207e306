/**
 * libnbd's tools against the server: nbdinfo (export listing, allocation
 * map) and nbdcopy (a full round trip through an export).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { allocationFlags } from '../../src/nbd/extents.js';
import { MemoryDevice } from '../helpers/memory-device.js';
import { startFixture, type Fixture } from '../helpers/nbd-fixture.js';
import { requireTool, runOk } from '../helpers/tools.js';

const MiB = 1024 * 1024;
let fx: Fixture | null = null;
const dirs: string[] = [];
afterEach(async () => {
  await fx?.close();
  fx = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'strata-libnbd-'));
  dirs.push(d);
  return d;
}

/** The base:allocation map we expect for the whole device, merged like nbdinfo prints it. */
function expectedMap(dev: MemoryDevice): { offset: number; length: number; flags: number }[] {
  const out: { offset: number; length: number; flags: number }[] = [];
  for (const e of dev.extents(0, dev.size)) {
    const flags = allocationFlags(e.kind);
    const last = out[out.length - 1];
    if (last && last.flags === flags) last.length += e.length;
    else out.push({ offset: e.offset, length: e.length, flags });
  }
  return out;
}

describe.runIf(requireTool('nbdinfo'))('nbdinfo', () => {
  it('--list shows every export with its size and description', async () => {
    fx = await startFixture({ alpha: new MemoryDevice(MiB), beta: new MemoryDevice(3 * MiB + 7, true) });
    const r = await runOk('nbdinfo', ['--list', fx.address], { timeoutMs: 20_000 });
    expect(r.stdout).toMatch(/export="alpha":[\s\S]*export-size: 1048576/);
    expect(r.stdout).toMatch(/export="beta":[\s\S]*description: test export beta[\s\S]*export-size: 3145735/);
    expect(r.stdout).toMatch(/is_read_only: true/);
  });

  it('--map matches the device extents', async () => {
    const dev = new MemoryDevice(16 * MiB);
    dev.write(0, Buffer.alloc(64 * 1024, 1));
    dev.write(MiB + 100, Buffer.alloc(10_000, 2)); // unaligned: partial blocks become data
    dev.writeZeroes(2 * MiB, MiB);
    dev.write(5 * MiB, Buffer.alloc(2 * MiB, 3));
    dev.discard(5 * MiB + 4096, 8192);
    dev.write(16 * MiB - 4096, Buffer.alloc(4096, 4));
    const want = expectedMap(dev);
    fx = await startFixture({ disk: dev });
    const r = await runOk('nbdinfo', ['--map', fx.uri('disk')], { timeoutMs: 20_000 });
    const got = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/).map(Number))
      .map(([offset, length, flags]) => ({ offset, length, flags }));
    expect(got).toEqual(want);
    expect(got.length).toBeGreaterThan(5);
  });

  it('reports the exact size of an export that is not block-aligned', async () => {
    fx = await startFixture({ odd: new MemoryDevice(MiB + 12345) });
    const r = await runOk('nbdinfo', ['--size', fx.uri('odd')], { timeoutMs: 20_000 });
    expect(r.stdout.trim()).toBe(String(MiB + 12345));
  });
});

describe.runIf(requireTool('nbdcopy'))('nbdcopy', () => {
  it('round-trips a sparse raw file through an export', async () => {
    const dir = tempDir();
    const size = 24 * MiB;
    const src = Buffer.alloc(size);
    for (let i = 0; i < 40; i++) randomBytes(64 * 1024 + i * 1000).copy(src, i * 512 * 1024 + (i % 7) * 333);
    const srcFile = join(dir, 'src.raw');
    const dstFile = join(dir, 'dst.raw');
    writeFileSync(srcFile, src);
    writeFileSync(dstFile, Buffer.alloc(0));

    const dev = new MemoryDevice(size);
    dev.write(0, Buffer.alloc(size, 0xee)); // stale content nbdcopy must overwrite or zero
    fx = await startFixture({ disk: dev });
    await runOk('nbdcopy', [srcFile, fx.uri('disk')], { timeoutMs: 60_000 });
    expect(dev.bytes.equals(src)).toBe(true);
    expect(dev.flushes).toBeGreaterThan(0);

    await runOk('nbdcopy', [fx.uri('disk'), dstFile], { timeoutMs: 60_000 });
    expect(readFileSync(dstFile).equals(src)).toBe(true);
  });
});
