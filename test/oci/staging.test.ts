/**
 * Staging a container image is bounded by the room its directory has, not
 * only by --max-size (64 GiB by default): a small gzip of zeros is refused
 * with E_NO_SPACE before it fills $TMPDIR, and the store is unchanged.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StrataError } from '../../src/errors.js';
import { StagingSpace } from '../../src/formats/oci/staging.js';
import { STRATA_BIN, strataOk } from '../helpers/cli.js';
import { ociImage, type Entry } from '../helpers/oci.js';
import { requireTool } from '../helpers/tools.js';

const MiB = 1 << 20;

describe('StagingSpace', () => {
  /** A file system with `free` bytes, shrinking as the caller writes, counting the statfs calls. */
  const fakeFs = (free: number) => {
    const f = { free, calls: 0, ask: () => (f.calls++, f.free) };
    return f;
  };

  it('asks statfs once per 64 MiB written, not per chunk', () => {
    const f = fakeFs(10_000 * MiB);
    const s = new StagingSpace('/stage', () => f.ask());
    for (let i = 0; i < 1024; i++) {
      s.take(MiB, 'layer 1');
      f.free -= MiB;
    }
    expect(f.calls).toBe(16);
  });

  it('refuses the write that would leave less than the reserve free, naming the directory', () => {
    const f = fakeFs(100 * MiB);
    const s = new StagingSpace('/stage', () => f.ask());
    let written = 0;
    let error: unknown;
    try {
      for (;;) {
        s.take(MiB, 'layer 2 of 2 (sha256:ab)');
        f.free -= MiB;
        written += MiB;
      }
    } catch (e) {
      error = e;
    }
    expect(written).toBe(36 * MiB);
    expect(error).toBeInstanceOf(StrataError);
    expect((error as StrataError).code).toBe('E_NO_SPACE');
    expect((error as StrataError).message).toBe(
      'layer 2 of 2 (sha256:ab): staging it would leave less than 64 MiB, 67108864 bytes free in /stage (64 MiB, 67108864 bytes free); free some space or set TMPDIR to a larger file system; nothing imported',
    );
  });

  it('a full file system met anyway is E_NO_SPACE about staging, not a read error', () => {
    const s = new StagingSpace('/stage', () => 10_000 * MiB);
    const fd = fs.openSync('/dev/full', 'w');
    try {
      expect(() => s.write(fd, Buffer.alloc(4096), 'layer 1 of 1')).toThrow(
        expect.objectContaining({ code: 'E_NO_SPACE', message: 'layer 1 of 1: no space left to stage it in /stage; free some space or set TMPDIR to a larger file system; nothing imported' }),
      );
    } finally {
      fs.closeSync(fd);
    }
  });

  it('sees room that others freed meanwhile', () => {
    const f = fakeFs(65 * MiB);
    const s = new StagingSpace('/stage', () => f.ask());
    s.take(MiB, 'x');
    f.free = 1000 * MiB;
    expect(() => s.take(MiB, 'x')).not.toThrow();
  });
});

/** Runs `strata import` with TMPDIR on a fresh tmpfs of `size`, in a mount namespace of its own (the mount goes with it). */
function importOnSmallTmp(store: string, ref: string, name: string, size: string, tmp: string, listing: string) {
  const script = 'mount -t tmpfs -o size="$1" strata-staging "$2" || exit 99; TMPDIR="$2" "$3" "$4" --store "$5" import "$6" "$7"; s=$?; ls -A "$2" > "$8"; exit $s';
  const r = spawnSync('unshare', ['-m', 'sh', '-c', script, 'sh', size, tmp, process.execPath, STRATA_BIN, store, ref, name, listing], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

const canMount = (() => {
  if (process.getuid?.() !== 0 || !requireTool('unshare')) return false;
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-mount-probe-'));
  const r = spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs -o size=1m probe "$1"', 'sh', d]);
  fs.rmSync(d, { recursive: true, force: true });
  return r.status === 0;
})();
if (!canMount) console.warn('[skip] the small-$TMPDIR import needs root and mount namespaces (unshare -m) to mount a tmpfs');

describe.skipIf(!requireTool('umoci') || !canMount)('a gzip of zeros on a small $TMPDIR', () => {
  let work: string;
  let layout: string;
  let store: string;

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-oci-staging-'));
    layout = path.join(work, 'oci');
    store = path.join(work, 'store');
    const base: Entry[] = [{ type: 'dir', name: 'etc/' }, { type: 'file', name: 'etc/os-release', data: 'ID=test\n' }];
    ociImage(layout, 'good', [base], work);
    // 160 MiB of zeros: a gzip of about 160 KiB, far below the default --max-size of 64 GiB.
    ociImage(layout, 'zeros', [base, [{ type: 'file', name: 'zeros', data: Buffer.alloc(160 * MiB) }]], work);
    strataOk(store, ['import', `oci:${layout}:good`, 'good']);
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  it('is refused with E_NO_SPACE before it fills $TMPDIR, and nothing changes', () => {
    const before = strataOk(store, ['--json', 'ls']).stdout;
    const tmp = fs.mkdtempSync(path.join(work, 'tmp-'));
    const listing = path.join(work, 'listing');
    const r = importOnSmallTmp(store, `oci:${layout}:zeros`, 'zeros', '96m', tmp, listing);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^strata: layer 2 of 2 \(sha256:[0-9a-f]{64}\): staging it would leave less than 64 MiB, 67108864 bytes free in .*\/strata-oci-\w+ \(\d.* free\); free some space or set TMPDIR to a larger file system; nothing imported$/m);
    expect(r.status).toBe(9);
    expect(strataOk(store, ['--json', 'ls']).stdout).toBe(before);
    // The staged files went with the refusal.
    expect(fs.readFileSync(listing, 'utf8')).toBe('');
  });
});
