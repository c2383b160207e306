/**
 * strata send / receive (issue #26): full and incremental streams between two
 * stores and through a real pipe, and every way a stream can be cut, damaged
 * or aimed at the wrong base, each leaving the receiving store as it was.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { StrataError, type ErrorCode } from '../../src/errors.js';
import { receiveStream } from '../../src/formats/receive.js';
import { listImages } from '../../src/store/images/catalog.js';
import { openImage } from '../../src/image/image.js';
import { checkStore } from '../../src/store/upkeep/check.js';
import { canCompress } from '../../src/store/blocks/codecs.js';
import { openStore, type Store } from '../../src/store/core/store.js';
import { STRATA_BIN, strata, strataAsync, strataOk } from '../helpers/cli.js';
import { available } from '../helpers/available.js';
import { auditStore } from '../helpers/consistency.js';
import { faultChannel } from '../helpers/fault.js';
import { spawnTracked } from '../helpers/processes.js';
import { rng } from '../helpers/random.js';
import { liveSlots } from '../helpers/slots.js';
import { hasScript, strataInPty } from '../helpers/pty.js';
import { tmpDir } from '../helpers/tmp.js';

const B = 4096;
/** Not a whole number of blocks: the last block is partial. */
const SIZE = 4 * 1024 * 1024 + 1000;

const hasZstd = available(canCompress('zstd'), 'the native addon has no zstd (libzstd-dev): strata send compresses with it');

/** Monday's image: compressible text, then incompressible bytes, zeros, and data in the partial last block. */
function mondayBytes(): Buffer {
  const r = rng(26);
  const b = Buffer.alloc(SIZE);
  r.text(64 * B).copy(b, 0);
  r.bytes(64 * B).copy(b, 64 * B);
  r.bytes(1000).copy(b, SIZE - 1000);
  return b;
}

/** Tuesday's changes: new text over blocks 10-19, zeros over 64-79 (data on Monday), random at block 300. */
function applyTuesday(b: Buffer): { text: Buffer; random: Buffer } {
  const r = rng(27);
  const text = r.text(10 * B);
  const random = r.bytes(3 * B);
  text.copy(b, 10 * B);
  b.fill(0, 64 * B, 80 * B);
  random.copy(b, 300 * B);
  return { text, random };
}

/** Where each part of a full stream lies, read from its own fields. */
function layout(s: Buffer) {
  const headerEnd = 16 + s.readUInt32LE(12);
  expect(s[headerEnd]).toBe(0x44); // the first record is data, at block 0
  const count = s.readUInt16LE(headerEnd + 9);
  const tableEnd = headerEnd + 11 + 2 * count;
  const lengths = Array.from({ length: count }, (_, k) => s.readUInt16LE(headerEnd + 11 + 2 * k));
  return { headerEnd, tableEnd, lengths, trailer: s.length - 81 };
}

/** The stream with its last 32 bytes, the SHA-256 of the rest, computed again: damage a forger would hide. */
function reseal(s: Buffer): Buffer {
  const out = Buffer.from(s);
  crypto.createHash('sha256').update(out.subarray(0, out.length - 32)).digest().copy(out, out.length - 32);
  return out;
}

async function* once(b: Buffer): AsyncIterable<Buffer> {
  // In pieces, as a pipe delivers it.
  for (let at = 0; at < b.length; at += 65536) yield b.subarray(at, at + 65536);
}

describe.skipIf(!hasZstd)('strata send | strata receive', () => {
  let src: string;
  let dir: string;
  let full: Buffer;
  let inc: Buffer;
  let wed: Buffer;
  let monday: Buffer;
  let tuesday: Buffer;
  let wednesday: Buffer;
  const opened: Store[] = [];

  beforeAll(() => {
    // Not tmpDir(): that is emptied after each test, and these fixtures serve all of them.
    dir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'strata-send-'));
    src = path.join(dir, 'src');
    monday = mondayBytes();
    tuesday = Buffer.from(monday);
    applyTuesday(tuesday);
    fs.writeFileSync(path.join(dir, 'mon.raw'), monday);
    strataOk(src, ['import', path.join(dir, 'mon.raw'), 'vm7-mon']);
    strataOk(src, ['clone', 'vm7-mon', 'vm7']);
    strataOk(src, ['write', 'vm7', '-o', String(10 * B), '-'], { input: tuesday.subarray(10 * B, 20 * B) });
    strataOk(src, ['write', 'vm7', '-o', String(64 * B), '-'], { input: Buffer.alloc(16 * B) });
    strataOk(src, ['write', 'vm7', '-o', String(300 * B), '-'], { input: tuesday.subarray(300 * B, 303 * B) });
    strataOk(src, ['snapshot', 'vm7', 'tue']);
    full = strataOk(src, ['send', 'vm7-mon']).out;
    inc = strataOk(src, ['send', '-i', 'vm7-mon', 'vm7@tue']).out;
    // Wednesday: one more block, sent over Tuesday.
    wednesday = Buffer.from(tuesday);
    wednesday.fill(7, 500 * B, 501 * B);
    strataOk(src, ['write', 'vm7', '-o', String(500 * B), '-'], { input: wednesday.subarray(500 * B, 501 * B) });
    strataOk(src, ['snapshot', 'vm7', 'wed']);
    wed = strataOk(src, ['send', '-i', 'vm7@tue', 'vm7@wed']).out;
    return () => fs.rmSync(dir, { recursive: true, force: true });
  });

  afterEach(() => {
    for (const s of opened.splice(0)) s.close();
  });

  async function freshStore(): Promise<Store> {
    const s = await openStore(tmpDir(), { create: true });
    opened.push(s);
    return s;
  }

  /** What a store holds: every image (hidden ones too) and the slots in use. */
  const stateOf = (s: Store) => ({
    images: listImages(s).map((r) => `${r.name}:${r.kind}:${r.ownBlocks}`),
    slots: liveSlots(s).length,
  });

  /** Receives `stream` into `store` and expects it refused with `code` and `re`, the store as it was, its check clean. */
  async function refused(store: Store, stream: Buffer, code: ErrorCode, re: RegExp, name = 'got', base?: string): Promise<StrataError> {
    const before = stateOf(store);
    const err = await receiveStream(store, once(stream), name, { base }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StrataError);
    const se = err as StrataError;
    expect({ code: se.code, message: se.message }).toMatchObject({ code, message: expect.stringMatching(re) });
    expect(se.message).not.toContain('\n');
    expect(stateOf(store)).toEqual(before);
    expect(auditStore(store)).toEqual([]);
    expect(checkStore(store).status).toBe('clean');
    return se;
  }

  it('a full and an incremental stream, each through a real pipe between two processes, rebuild both images byte for byte in another store', () => {
    const dst = tmpDir();
    const pipe = (args: string) => {
      const p = spawnTracked('bash', ['-c', `set -o pipefail; node ${STRATA_BIN} --store ${src} send ${args}`]);
      return p.exited.then((e) => ({ e, out: p.stdout, err: p.stderr }));
    };
    return (async () => {
      const a = await pipe(`vm7-mon | node ${STRATA_BIN} --store ${dst} --json receive vm7-mon`);
      expect(a.e.code, a.err).toBe(0);
      expect(JSON.parse(a.out)).toMatchObject({ name: 'vm7-mon', base: null, virtualSize: SIZE, streamBytes: full.length, dataBlocks: 129 });
      const b = await pipe(`-i vm7-mon vm7@tue | node ${STRATA_BIN} --store ${dst} --json receive vm7-tue`);
      expect(b.e.code, b.err).toBe(0);
      // 10 text blocks and 3 random ones; the 16 zeroed blocks as one run of no bytes.
      expect(JSON.parse(b.out)).toMatchObject({ name: 'vm7-tue', base: 'vm7-mon', streamBytes: inc.length, dataBlocks: 13, zeroBlocks: 16 });
      expect(strataOk(dst, ['read', 'vm7-mon']).out.equals(monday)).toBe(true);
      expect(strataOk(dst, ['read', 'vm7-tue']).out.equals(tuesday)).toBe(true);
      const info = JSON.parse(strataOk(dst, ['info', 'vm7-tue', '--json']).stdout);
      expect(info).toMatchObject({ kind: 'layer', parent: 'vm7-mon', ownBytes: 13 * B });
      // The digest checked is recorded: the next incremental stream finds this image by it.
      expect(info.source).toEqual({ format: 'strata-send', image: 'vm7@tue', createdAt: expect.any(String), base: 'vm7-mon', contentDigest: JSON.parse(b.out).contentDigest });
      expect(strata(dst, ['check']).status).toBe(0);
    })();
  });

  it('received back into the sending store, the images are the same as their sources for strata diff, and store no new block', async () => {
    const slots = () => JSON.parse(strataOk(src, ['stats', '--json']).stdout).storedBytes;
    const before = slots();
    strataOk(src, ['receive', 'mon-copy'], { input: full });
    strataOk(src, ['receive', 'tue-copy'], { input: inc });
    expect(strata(src, ['diff', 'vm7-mon', 'mon-copy']).status).toBe(0);
    const d = strata(src, ['diff', 'vm7@tue', 'tue-copy']);
    expect(d.status, d.stdout + d.stderr).toBe(0);
    expect(d.stdout).toBe('vm7@tue and tue-copy have the same content\n');
    // Found its base by content, under another name than the sender's.
    expect(JSON.parse(strataOk(src, ['info', 'tue-copy', '--json']).stdout).parent).toBe('mon-copy');
    expect(slots()).toBe(before);
    strataOk(src, ['rm', 'tue-copy']);
    strataOk(src, ['rm', 'mon-copy']);
  });

  it('an incremental stream is smaller than the changed blocks; zeros and holes cost no block bytes', () => {
    expect(inc.length).toBeLessThan(13 * B + 1024);
    // 64 text blocks compressed, 64 random ones and the partial last block as they are, the rest of 4 MiB as runs.
    expect(full.length).toBeLessThan(65 * B + 64 * B + 64 * B);
    expect(full.length).toBeGreaterThan(65 * B);
  });

  it('--json on a send to stdout reports on stderr, leaving the stream alone; -o writes a file', () => {
    const r = strataOk(src, ['--json', 'send', 'vm7-mon']);
    expect(r.out.equals(full)).toBe(true);
    expect(JSON.parse(r.stderr)).toMatchObject({ name: 'vm7-mon', base: null, streamBytes: full.length, dataBlocks: 129 });
    const file = path.join(tmpDir(), 'inc.stream');
    const j = JSON.parse(strataOk(src, ['--json', 'send', '-i', 'vm7-mon', 'vm7@tue', '-o', file]).stdout);
    expect(j).toMatchObject({ name: 'vm7@tue', base: 'vm7-mon', streamBytes: inc.length, dataBlocks: 13, zeroBlocks: 16 });
    expect(fs.readFileSync(file).equals(inc)).toBe(true);
  });

  it('send refuses a writable leaf, which may change while it is read', () => {
    const r = strata(src, ['send', 'vm7']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/cannot send image vm7: it is a writable leaf.*snapshot it first/);
    expect(r.out.length).toBe(0);
  });

  it('a stream cut in its header, extent table, block data or trailer is refused, naming where, and leaves nothing', async () => {
    const store = await freshStore();
    const { headerEnd, tableEnd, trailer } = layout(full);
    for (const [cut, part] of [
      [0, 'header'],
      [10, 'header'],
      [headerEnd - 5, 'header'],
      [headerEnd + 5, 'extent table'],
      [tableEnd - 1, 'extent table'],
      [tableEnd + 3000, 'block data'],
      [trailer - 3, 'block data'],
      [trailer, 'extent table'],
      [trailer + 20, 'trailer'],
      [full.length - 1, 'trailer'],
    ] as const) {
      const e = await refused(store, full.subarray(0, cut), 'E_BAD_STREAM', new RegExp(`ends early, in its ${part} \\(${cut} bytes in all\\)`));
      expect(e.data.part).toBe(part);
    }
  });

  it('damage to the header, extent table, block data or trailer is refused and leaves nothing', async () => {
    const store = await freshStore();
    const { headerEnd, tableEnd, lengths, trailer } = layout(full);
    const damaged = (at: number, f: (b: Buffer) => void = (b) => (b[at] ^= 0x20)) => {
      const b = Buffer.from(full);
      f(b);
      return b;
    };
    // A changed letter in the image name still parses: the stream's SHA-256 finds it.
    const nameAt = full.indexOf('vm7-mon', 16);
    await refused(store, damaged(nameAt + 1), 'E_BAD_STREAM', /SHA-256 does not match its content: the stream was damaged/);
    await refused(store, damaged(0), 'E_BAD_STREAM', /does not start with a strata send stream magic/);
    await refused(store, damaged(20, (b) => b.write('x', 16)), 'E_BAD_STREAM', /header is not JSON|header does not describe an image/);
    await refused(store, damaged(0, (b) => b.writeUInt16LE(0xffff, headerEnd + 9)), 'E_BAD_STREAM', /a data record of 65535 blocks/);
    await refused(store, damaged(0, (b) => b.writeUInt16LE(0, headerEnd + 11)), 'E_BAD_STREAM', /a block payload of 0 bytes/);
    await refused(store, damaged(0, (b) => (b[headerEnd] = 0x7f)), 'E_BAD_STREAM', /unknown record type 0x7f/);
    // Block 0 is text: compressed. A broken frame does not decode.
    expect(lengths[0]).toBeLessThan(B);
    await refused(store, damaged(tableEnd + 1), 'E_BAD_STREAM', /block 0 does not decode|stream was damaged/);
    // Block 64 is random: sent as is. A flipped bit decodes fine, and the digest catches it.
    const raw64 = tableEnd + lengths.slice(0, 64).reduce((s, n) => s + n, 0);
    expect(lengths[64]).toBe(B);
    await refused(store, damaged(raw64 + 100), 'E_BAD_STREAM', /the stream was damaged/);
    await refused(store, damaged(trailer + 1), 'E_BAD_STREAM', /the stream was damaged/);
    await refused(store, damaged(full.length - 1), 'E_BAD_STREAM', /the stream was damaged/);
    await refused(store, Buffer.concat([full, Buffer.from('x')]), 'E_BAD_STREAM', /bytes follow its trailer/);
  });

  it('a forged stream whose SHA-256 was recomputed is still refused when what it builds is not what its sender had', async () => {
    const store = await freshStore();
    const { tableEnd, lengths } = layout(full);
    const raw64 = tableEnd + lengths.slice(0, 64).reduce((s, n) => s + n, 0);
    const b = Buffer.from(full);
    b[raw64 + 100] ^= 1;
    await refused(store, reseal(b), 'E_BAD_STREAM', /content digest sha256:[0-9a-f]{64} is not the sender's/);
  });

  it('hostile sizes are refused before anything is allocated for them', async () => {
    const store = await freshStore();
    const { headerEnd } = layout(full);
    const patched = (f: (b: Buffer) => void) => {
      const b = Buffer.from(full);
      f(b);
      return b;
    };
    await refused(store, patched((b) => b.writeUInt32LE(0xffffffff, 12)), 'E_BAD_STREAM', /a header of 4294967295 bytes/);
    await refused(store, patched((b) => b.writeBigUInt64LE(2n ** 62n, headerEnd + 1)), 'E_BAD_STREAM', /block 4611686018427387904 is beyond 1025/);
    // A run past the image's end, sealed so only the bounds check can catch it.
    const tail = full.subarray(full.length - 81);
    const run = Buffer.alloc(17);
    run[0] = 0x5a;
    run.writeBigUInt64LE(1025n, 1);
    run.writeBigUInt64LE(100n, 9);
    await refused(store, reseal(Buffer.concat([full.subarray(0, full.length - 81), run, tail])), 'E_BAD_STREAM', /a record for blocks 1025-1124 of an image of 1025/);
    await refused(store, patched((b) => b.writeUInt16LE(9, 8)), 'E_UNSUPPORTED', /send stream version 9 is not supported/);
  });

  it('an incremental stream refuses a store without its base, and one whose base has other content', async () => {
    const store = await freshStore();
    const e = await refused(store, inc, 'E_NOT_FOUND', /incremental from vm7-mon \(sha256:[0-9a-f]{12}…\), which this store does not have/);
    expect(e.data.base).toBe('vm7-mon');
    // An image of the base's name, one block different.
    const other = Buffer.from(monday);
    other[5] ^= 1;
    const t = tmpDir();
    const dst = path.join(t, 'store');
    fs.writeFileSync(path.join(t, 'other.raw'), other);
    strataOk(dst, ['import', path.join(t, 'other.raw'), 'vm7-mon']);
    const before = strataOk(dst, ['ls', '--json']).stdout;
    const r = strata(dst, ['receive', 'vm7-tue'], { input: inc });
    expect(r.status).toBe(15);
    expect(r.stderr).toMatch(/incremental from vm7-mon .*, and vm7-mon here has other content/);
    expect(strataOk(dst, ['ls', '--json']).stdout).toBe(before);
    expect(strata(dst, ['check']).status).toBe(0);
  });

  it('--base names the copy an incremental stream applies to, and a base of other content is refused', async () => {
    const store = await freshStore();
    expect((await receiveStream(store, once(full), 'monday')).contentDigest).toMatch(/^sha256:/);
    const r = await receiveStream(store, once(inc), 'tuesday', { base: 'monday' });
    expect(r).toMatchObject({ name: 'tuesday', base: 'monday', dataBlocks: 13, zeroBlocks: 16 });
    await refused(store, inc, 'E_BASE_MISMATCH', /incremental from vm7-mon .*, and tuesday here has other content/, 'again', 'tuesday');
    await refused(store, inc, 'E_NOT_FOUND', /no image named nothing/, 'again', 'nothing');
    await refused(store, full, 'E_BAD_INPUT', /--base monday is for an incremental stream, and this one is full \(of vm7-mon\)/, 'again', 'monday');
  });

  it('a chain of incremental streams applies each over the last one received, found by the digest recorded then', async () => {
    const store = await freshStore();
    await receiveStream(store, once(full), 'm');
    await receiveStream(store, once(inc), 't');
    const r = await receiveStream(store, once(wed), 'w');
    expect(r).toMatchObject({ name: 'w', base: 't', dataBlocks: 1, zeroBlocks: 0 });
    const img = openImage(store, 'w');
    try {
      expect(img.read(0, SIZE).equals(wednesday)).toBe(true);
      expect(img.depth).toBe(3);
    } finally {
      img.close();
    }
    // Out of order, Wednesday's stream has no Tuesday to apply to.
    await refused(await freshStore(), wed, 'E_NOT_FOUND', /incremental from vm7@tue/);
  });

  it('a name already taken is refused before the stream is read', async () => {
    const store = await freshStore();
    await receiveStream(store, once(full), 'taken');
    await refused(store, full, 'E_EXISTS', /an image named taken already exists/, 'taken');
  });

  it.skipIf(!hasScript())('at a terminal: send refuses to write the stream to it, receive to read one from it, and receive -i shows progress', async () => {
    const dst = tmpDir();
    const send = strataInPty(src, ['send', 'vm7-mon']);
    expect(await send.exit).toBe(2);
    expect(send.output()).toMatch(/stdout is a terminal/);
    const recv = strataInPty(dst, ['receive', 'x']);
    expect(await recv.exit).toBe(2);
    expect(recv.output()).toMatch(/stdin is a terminal: pipe a stream into it \(strata send SNAP \| strata receive NAME\) or give -i FILE/);
    const file = path.join(dst, '..', `${path.basename(dst)}.stream`);
    fs.writeFileSync(file, full);
    // Every progress step held 300 ms (a fault delay, as progress.test.ts does), so the line is drawn.
    const p = strataInPty(path.join(dst, 'store'), ['receive', 'copy', '-i', file], { STRATA_FAULT: 'progress:sleep:300' });
    expect(await p.exit).toBe(0);
    fs.rmSync(file);
    expect(p.output()).toMatch(/receiving copy +\[[#-]+\] +\d+%/);
    expect(p.output()).toMatch(/received copy: 4.00 MiB virtual, 129 data block\(s\), 896 zero block\(s\)/);
  });

  it('a bad stream exits with its own status, 14, and one line', () => {
    const dst = tmpDir();
    const r = strata(dst, ['receive', 'x'], { input: full.subarray(0, 1000) });
    expect(r.status).toBe(14);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/not a valid send stream: it ends early, in its (extent table|block data)/);
  });

  it('a receive killed part-way leaves no image, and check is clean', async () => {
    const dst = tmpDir();
    strataOk(dst, ['init']);
    const fault = faultChannel();
    const recv = strataAsync(dst, ['receive', 'vm7-mon'], { input: full, env: fault.env('receive.after-record') });
    const pid = await fault.reached('receive.after-record', { exited: recv });
    process.kill(pid, 'SIGKILL');
    expect((await recv).status).toBe(-1);
    expect(JSON.parse(strataOk(dst, ['ls', '--json']).stdout)).toEqual([]);
    const c = strata(dst, ['check']);
    expect(c.status, c.stdout + c.stderr).toBe(0);
    // And the same stream, received again, is whole.
    strataOk(dst, ['receive', 'vm7-mon'], { input: full });
    expect(strataOk(dst, ['read', 'vm7-mon']).out.equals(monday)).toBe(true);
  });
});
