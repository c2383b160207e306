/**
 * A bucket others can write to (issue #29, items 4-6 and 9-11): objects
 * crafted and put into a real Ceph RGW, handed to the real CLI. Each ends
 * in a typed error for what needs the bad object, or a warning naming it
 * while the rest works; never unbounded memory, an escape sequence on the
 * terminal, or one bad object failing every image.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeLayer, RUN_DATA, RUN_ZERO } from '../../src/remote/objects/layer-file.js';
import { manifestBytes, putLayer, putManifest, putPackAndIndex, putRawIndex, rawBucket, type ChainEntry } from '../helpers/bucket-objects.js';
import { STRATA_BIN, strata, strataOk, type CliResult } from '../helpers/cli.js';
import { rng } from '../helpers/random.js';
import { bytesText } from '../../src/units.js';
import { openStore } from '../../src/store/core/store.js';
import { snapshotImage } from '../../src/image/lifecycle.js';
import { freshBucket, haveRgw, rgw, storesOnBucket } from '../helpers/rgw.js';
import { tmpDir } from '../helpers/tmp.js';
import { sha256 } from '../../src/remote/objects/layout.js';

const KiB = 1024;
const json = (r: CliResult) => JSON.parse(r.stdout);
const failure = (r: CliResult) => ({ status: r.status, ...(JSON.parse(r.stderr.trim().split('\n').at(-1)!) as { error: string; message: string }) });

/**
 * The CLI with its data segment (heap, array buffers) capped by the kernel
 * (RLIMIT_DATA): a command that tried to allocate without bound dies there
 * (SIGABRT, or E_INTERNAL) instead of taking the machine's memory.
 */
function strataCapped(store: string, args: string[], dataBytes: number, env: NodeJS.ProcessEnv = {}): CliResult {
  const r = spawnSync('prlimit', [`--data=${dataBytes}`, process.execPath, STRATA_BIN, '--store', store, ...args], { env: { ...process.env, ...env }, maxBuffer: 1 << 26 });
  return { status: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString(), out: r.stdout };
}
const CAP = 768 * 1024 * 1024;

interface World {
  dir: string;
  bucket: string;
  /** The pushing store, with `good` (256 KiB of data, frozen) pushed. */
  A: string;
  /** A store that only reads the bucket. */
  B: string;
  good: Buffer;
  goodChain: ChainEntry[];
}

/** Two stores on a fresh bucket; A pushes a 256 KiB image `good`. */
function world(what: string): World {
  const dir = tmpDir();
  const A = path.join(dir, 'A');
  const B = path.join(dir, 'B');
  const bucket = freshBucket(what);
  storesOnBucket([A, B], bucket);
  const good = rng(29).text(256 * KiB);
  const file = path.join(dir, 'good.raw');
  fs.writeFileSync(file, good);
  strataOk(A, ['create', 'good', '--from', file]);
  strataOk(A, ['freeze', 'good']);
  const pushed = json(strataOk(A, ['--json', 'push', 'good', 'fleet']));
  const goodChain = [{ layer: pushed.layers[0].layer as string, name: 'good', virtualSize: good.length, blocks: good.length / 4096 }];
  return { dir, bucket, A, B, good, goodChain };
}

describe.skipIf(!haveRgw())('a hostile bucket (Ceph RGW, the real CLI)', () => {
  beforeAll(() => {
    rgw();
  });

  it('a 40-byte layer claiming 2^32 zero blocks is E_CORRUPT at once, for clone and pull, in bounded memory', async () => {
    const w = world('zero-bomb');
    const b = rawBucket(w.bucket);
    try {
      // Over the real base: one zero run from block 0 over 2^32 - 1 blocks of a 16 TiB image.
      const bomb = await putLayer(b, 2 ** 44, [{ first: 0, count: 0xffffffff, kind: RUN_ZERO }]);
      await putManifest(b, 'bomb', manifestBytes('bomb', [...w.goodChain, { layer: bomb, name: 'bomb', virtualSize: 2 ** 44, blocks: 0 }]));
      // As a base: a zero run with nothing under it to hide.
      const base = await putLayer(b, 2 ** 44, [{ first: 0, count: 0xffffffff, kind: RUN_ZERO }]);
      await putManifest(b, 'flat', manifestBytes('flat', [{ layer: base, name: 'flat', virtualSize: 2 ** 44, blocks: 0 }]));
    } finally {
      b.close();
    }
    for (const args of [['clone', 'fleet/bomb', 'vm'], ['pull', 'fleet/bomb']]) {
      const r = strataCapped(w.B, ['--json', ...args], CAP);
      expect(failure(r)).toMatchObject({ status: 8, error: 'E_CORRUPT' });
      expect(failure(r).message).toMatch(/^remote layer [0-9a-f]{64} is malformed: zero run at block 0 hides block 64, which good has no data in \(not canonical\)$/);
      // A clone is a leaf or nothing: the base it made for the bad layer went with it. (A pull keeps layers pulled whole.)
      if (args[0] === 'clone') expect(json(strataOk(w.B, ['--json', 'ls']))).toEqual([]);
    }
    const flat = strataCapped(w.B, ['--json', 'clone', 'fleet/flat', 'vm'], CAP);
    expect(failure(flat)).toMatchObject({ status: 8, error: 'E_CORRUPT' });
    expect(failure(flat).message).toMatch(/is malformed: a base with zero runs \(not canonical\)$/);
    // No leaf was made; the good image still clones and reads back.
    expect(json(strataOk(w.B, ['--json', 'ls'])).map((i: { name: string }) => i.name)).not.toContain('vm');
    strataOk(w.B, ['clone', 'fleet/good', 'vm2']);
    expect(strataOk(w.B, ['read', 'vm2']).out.equals(w.good)).toBe(true);

    // A layer whose zero run hides its parent's data (as push writes it) clones and pulls as before.
    strataOk(w.A, ['clone', 'good', 'edit']);
    strataOk(w.A, ['write', 'edit', '--offset', String(64 * KiB)], { input: Buffer.alloc(64 * KiB) });
    strataOk(w.A, ['snapshot', 'edit', 'zeroed']);
    const zeroed = json(strataOk(w.A, ['--json', 'push', 'edit@zeroed', 'fleet'])).layers.at(-1).layer as string;
    const b2 = rawBucket(w.bucket);
    try {
      expect(decodeLayer(await b2.get(`layers/${zeroed}`, 1 << 20), zeroed).runs).toEqual([{ first: 16, count: 16, kind: RUN_ZERO }]);
    } finally {
      b2.close();
    }
    const want = Buffer.from(w.good).fill(0, 64 * KiB, 128 * KiB);
    strataOk(w.B, ['clone', 'fleet/edit@zeroed', 'vm3']);
    expect(strataOk(w.B, ['read', 'vm3']).out.equals(want)).toBe(true);
    strataOk(w.B, ['pull', 'fleet/edit@zeroed']);
    expect(strataOk(w.B, ['read', 'edit@zeroed']).out.equals(want)).toBe(true);
  });

  it('a zstd fragment that inflates past 4 KiB is refused before the fallback decoder allocates it', async () => {
    const w = world('zstd-bomb');
    const block = Buffer.alloc(4096, 0x41);
    // One frame, no content size, a 128 KiB window, 890 RLE blocks of 128 KiB: 3,566 bytes that inflate to 111 MiB.
    const n = 890;
    const frame = Buffer.alloc(6 + 4 * n);
    frame.writeUInt32LE(0xfd2fb528, 0);
    frame[4] = 0x00;
    frame[5] = 7 << 3;
    for (let i = 0; i < n; i++) {
      frame.writeUIntLE(((128 * KiB) << 3) | (1 << 1) | (i === n - 1 ? 1 : 0), 6 + 4 * i, 3);
      frame[6 + 4 * i + 3] = 0x41;
    }
    const b = rawBucket(w.bucket);
    try {
      await putPackAndIndex(b, [{ data: frame, digest: sha256(block), codec: 1 }]);
      const layer = await putLayer(b, 4096, [{ first: 0, count: 1, kind: RUN_DATA }], sha256(block));
      await putManifest(b, 'zbomb', manifestBytes('zbomb', [{ layer, name: 'zbomb', virtualSize: 4096, blocks: 1 }]));
    } finally {
      b.close();
    }
    const fallback = strata(w.B, ['--json', 'pull', 'fleet/zbomb'], { env: { STRATA_NO_NATIVE: '1' } });
    expect(failure(fallback)).toEqual({ status: 8, error: 'E_CORRUPT', message: 'a zstd fragment is not one block: no single-segment frame header (a window to allocate)' });
    // The addon decodes into the 4 KiB it is given: refused as well.
    expect(failure(strata(w.B, ['--json', 'pull', 'fleet/zbomb']))).toMatchObject({ status: 8, error: 'E_CORRUPT' });
    expect(json(strataOk(w.B, ['--json', 'ls']))).toEqual([]);
  });

  it('an oversized manifest is refused unread: remote ls lists the rest and warns; pulling it is E_CORRUPT', async () => {
    const w = world('big-manifest');
    const b = rawBucket(w.bucket);
    let key: string;
    // A valid manifest but for its size: 5 MiB of padding in a field strata ignores.
    const big = manifestBytes('big', [{ ...w.goodChain[0], name: 'big' }], { padding: 'x'.repeat(5 * 1024 * KiB) });
    try {
      key = await putManifest(b, 'big', big);
    } finally {
      b.close();
    }
    const ls = strataCapped(w.B, ['--json', 'remote', 'ls', 'fleet'], CAP);
    expect(ls.status).toBe(0);
    const listed = json(ls);
    expect(listed.images.map((i: { name: string }) => i.name)).toEqual(['good']);
    const why = `object ${key} in s3://${w.bucket} at ${rgw().endpoint} is ${bytesText(big.length)}, over the 4 MiB, 4194304 bytes such an object can hold; refused`;
    expect(listed.skipped).toEqual([{ object: 'manifest', id: key.slice('manifests/'.length, -'.json'.length), key, code: 'E_CORRUPT', message: why }]);
    expect(ls.stderr).toBe(`strata: warning: skipped manifest ${key}: ${why}\n`);
    expect(failure(strata(w.B, ['--json', 'pull', 'fleet/big']))).toEqual({ status: 8, error: 'E_CORRUPT', message: why });
  });

  it('manifest fields: a host with escapes is printed escaped; a non-string pushedAt skips that manifest only', async () => {
    const w = world('fields');
    const b = rawBucket(w.bucket);
    let broken: string;
    try {
      await putManifest(b, 'evil', manifestBytes('evil', [{ ...w.goodChain[0], name: 'evil' }], { host: 'h\u001b]0;owned\u0007\u001b[2J\u202e' }));
      broken = await putManifest(b, 'broken', manifestBytes('broken', [{ ...w.goodChain[0], name: 'broken' }], { pushedAt: 12345 }));
    } finally {
      b.close();
    }
    const ls = strata(w.B, ['remote', 'ls', 'fleet']);
    expect(ls.status).toBe(0);
    const rows = ls.stdout.trim().split('\n');
    expect(rows.map((l) => l.split(/\s+/)[0])).toEqual(['NAME', 'evil', 'good']);
    expect(ls.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/u);
    expect(rows[1]).toContain('h\\x1b]0;owned\\x07\\x1b[2J\\u{202e}');
    expect(ls.stderr).toBe(`strata: warning: skipped manifest ${broken}: remote manifest ${broken.slice('manifests/'.length, -'.json'.length)} is malformed: pushedAt 12345 is not an ISO 8601 time\n`);
    // --json keeps the host as it is (JSON escapes it), and names what was skipped.
    const listed = json(strataOk(w.B, ['--json', 'remote', 'ls', 'fleet']));
    expect(listed.images.find((i: { name: string }) => i.name === 'evil').host).toBe('h\u001b]0;owned\u0007\u001b[2J\u202e');
    expect(listed.skipped.map((s: { key: string }) => s.key)).toEqual([broken]);

    // remote check quotes what it could not parse: escaped too.
    const b2 = rawBucket(w.bucket);
    try {
      await putManifest(b2, 'junk', Buffer.from('garbage\u001b[2J\u001b]0;owned\u0007'));
      await putManifest(b2, 'liar', manifestBytes('liar', [{ ...w.goodChain[0], name: 'liar', blocks: 3 }]));
    } finally {
      b2.close();
    }
    const check = strata(w.B, ['remote', 'check', 'fleet']);
    expect(check.status).toBe(2);
    expect(check.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/u);
    // A manifest's block count is what its layer holds, or the image is refused.
    expect(failure(strata(w.B, ['--json', 'pull', 'fleet/liar']))).toEqual({ status: 8, error: 'E_CORRUPT', message: `remote layer ${w.goodChain[0].layer} holds 64 data blocks, its manifest says 3` });
    expect(check.stdout).toMatch(/^ERROR: remote manifest junk\/[0-9a-f]{64} is malformed: Unexpected token .*"garbage\\x1b\[2"/m);
  });

  it('one damaged index is skipped with a warning: pull and clone of the images it does not hold work', async () => {
    const w = world('bad-index');
    const b = rawBucket(w.bucket);
    let key: string;
    try {
      key = await putRawIndex(b, Buffer.from('not an index, but named by its hash'));
    } finally {
      b.close();
    }
    const why = `remote index ${key.slice('index/'.length)} is malformed: no STRATAIX header`;
    const pulled = strata(w.B, ['--json', 'pull', 'fleet/good']);
    expect(pulled.status).toBe(0);
    expect(json(pulled).skipped).toEqual([{ object: 'index', id: key.slice('index/'.length), key, code: 'E_CORRUPT', message: why }]);
    expect(pulled.stderr).toBe(`strata: warning: skipped index ${key}: ${why}\n`);
    expect(strataOk(w.B, ['read', 'good']).out.equals(w.good)).toBe(true);
    // Not remembered as read: the next command skips it again, and says so again.
    const cloned = strata(w.B, ['clone', 'fleet/good', 'vm']);
    expect(cloned.status).toBe(0);
    expect(cloned.stderr).toBe(`strata: warning: skipped index ${key}: ${why}\n`);
  });

  it('a manifest chain deeper than a qcow2 backing chain may be is E_CORRUPT before any image is made', async () => {
    const w = world('deep');
    const b = rawBucket(w.bucket);
    try {
      const empty = await putLayer(b, 4096, []);
      const chain = Array.from({ length: 257 }, (_, i) => ({ layer: empty, name: i === 256 ? 'deep' : `deep-${i}`, virtualSize: 4096, blocks: 0 }));
      await putManifest(b, 'deep', manifestBytes('deep', chain));
    } finally {
      b.close();
    }
    const r = strata(w.B, ['--json', 'clone', 'fleet/deep', 'vm']);
    expect(failure(r)).toMatchObject({ status: 8, error: 'E_CORRUPT' });
    expect(failure(r).message).toMatch(/^remote manifest deep\/[0-9a-f]{64} is malformed: a chain of 257 layers, over the 256 strata takes$/);
    expect(json(strataOk(w.B, ['--json', 'ls']))).toEqual([]);
  });
});

describe.skipIf(!haveRgw())('push writes nothing a pull would refuse (Ceph RGW)', () => {
  it('a chain deeper than MAX_CHAIN_DEPTH is E_UNSUPPORTED before anything is uploaded', async () => {
    const dir = tmpDir();
    const S = path.join(dir, 'S');
    const bucket = freshBucket('deep-push');
    storesOnBucket([S], bucket);
    strataOk(S, ['create', 'vm', '--size', '1M']);
    const store = await openStore(S);
    try {
      for (let i = 0; i < 257; i++) snapshotImage(store, 'vm', `s${i}`);
    } finally {
      store.close();
    }
    expect(failure(strata(S, ['--json', 'push', 'vm@s256', 'fleet']))).toEqual({
      status: 11,
      error: 'E_UNSUPPORTED',
      message: 'vm@s256 is 257 images deep; a remote image is at most 256 (strata flatten first)',
    });
    const b = rawBucket(bucket);
    try {
      expect((await b.list('')).filter((o) => !o.key.startsWith('locks/'))).toEqual([]);
    } finally {
      b.close();
    }
  });
});
