/**
 * Seeded fuzz of the layer tar reader (src/formats/oci/tar.ts): valid
 * archives (ustar, PAX long names and xattrs, PAX globals, GNU long names)
 * mutated by bit flips, truncation, size fields, PAX records and huge
 * lengths, fed in random chunks. Every outcome is a StrataError or a result
 * a layer may have: entries with sane fields and exactly their size of body.
 * Nothing else is thrown, and memory stays bounded. The seed is printed on
 * failure (TAR_FUZZ_SEED=N reruns one).
 */
import { describe, expect, it } from 'vitest';
import { StrataError } from '../../src/errors.js';
import { TarParser, type TarHeader } from '../../src/formats/oci/tar.js';
import { paxBody, tarHeader, tarOf, type Entry } from '../helpers/oci.js';
import { rng } from '../helpers/random.js';

const CASES = 20000;
const TIME_BUDGET_MS = 5000;
const MEMORY_BOUND = 256 << 20;

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);
const blocks = (...parts: Buffer[]) => Buffer.concat(parts.flatMap((p) => [p, pad(p.length)]));

/** The valid archives mutations start from, and what each must parse to. */
function bases(): { name: string; tar: Buffer }[] {
  const layer: Entry[] = [
    { type: 'dir', name: 'etc/' },
    { type: 'file', name: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\n', mtime: 1_700_000_001 },
    { type: 'file', name: `deep/${'n'.repeat(150)}/file`, data: Buffer.alloc(1300, 7), uid: 1000, gid: 1000 },
    { type: 'file', name: 'bin/ping', data: Buffer.alloc(700, 1), mode: 0o4755, xattrs: { 'security.capability': Buffer.from('0100000200200000', 'hex'), 'user.x': Buffer.from('v') } },
    { type: 'symlink', name: 'bin/sh', target: 'busybox' },
    { type: 'symlink', name: 'long-link', target: `/usr/${'t'.repeat(200)}` },
    { type: 'hardlink', name: 'bin/ping6', target: 'bin/ping' },
    { type: 'char', name: 'dev/null', major: 1, minor: 3 },
    { type: 'fifo', name: 'dev/fifo' },
    { type: 'file', name: 'empty', data: '' },
  ];
  const gnuName = `gnu/${'g'.repeat(180)}`;
  const gnu = Buffer.concat([
    blocks(tarHeader('././@LongLink', 'L', { mode: 0, uid: 0, gid: 0, size: gnuName.length + 1, mtime: 0 }), Buffer.from(`${gnuName}\0`)),
    blocks(tarHeader('gnu/short', '0', { mode: 0o644, uid: 0, gid: 0, size: 5, mtime: 1 }), Buffer.from('hello')),
    blocks(tarHeader('pax_global_header', 'g', { mode: 0, uid: 0, gid: 0, size: paxBody([['comment', Buffer.from('global')]]).length, mtime: 0 }), paxBody([['comment', Buffer.from('global')]])),
    blocks(tarHeader('PaxHeader', 'x', { mode: 0, uid: 0, gid: 0, size: paxBody([['size', Buffer.from('600')], ['mtime', Buffer.from('1700000000.5')], ['uid', Buffer.from('70000')]]).length, mtime: 0 }), paxBody([['size', Buffer.from('600')], ['mtime', Buffer.from('1700000000.5')], ['uid', Buffer.from('70000')]])),
    blocks(tarHeader('pax-sized', '0', { mode: 0o600, uid: 0, gid: 0, size: 0, mtime: 1 }), Buffer.alloc(600, 9)),
    Buffer.alloc(1024),
  ]);
  return [
    { name: 'layer', tar: tarOf(layer) },
    { name: 'gnu+pax', tar: gnu },
  ];
}

type R = ReturnType<typeof rng>;

const INTERESTING_SIZES = ['0', '1', '777', '7777777777', '77777777777', '99999999999', '-1', ' ', '', '1e9'];
const PAX_RECORDS = [
  'size=-1', 'size=1e30', 'size=1.5', 'size=9007199254740993', 'size=0x10', 'size=', 'uid=-5', 'uid=NaN', 'uid=1e400', 'gid=4294967296',
  'mtime=1e400', 'mtime=-1e20', 'mtime=abc', 'path=', 'path=a/../../b', 'linkpath=x', 'SCHILY.xattr.=', 'SCHILY.xattr.user.a=\0\n', 'GNU.sparse.size=1', '=novalue',
];

/** Recomputes the checksum of the header block at `off`, so a mutated field gets past the checksum to the parser. */
function fixChecksum(b: Buffer, off: number): void {
  if (off + 512 > b.length) return;
  b.fill(0x20, off + 148, off + 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[off + i];
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, off + 148, 'ascii');
}

/** Offsets of the header blocks of a valid archive (walked with the ustar size field). */
function headerOffsets(tar: Buffer): number[] {
  const out: number[] = [];
  for (let off = 0; off + 512 <= tar.length; ) {
    if (tar.subarray(off, off + 512).every((x) => x === 0)) break;
    out.push(off);
    const size = parseInt(tar.toString('ascii', off + 124, off + 135), 8) || 0;
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

function mutate(tar: Buffer, r: R): { buf: Buffer; how: string } {
  const b = Buffer.from(tar);
  const heads = headerOffsets(tar);
  const head = r.pick(heads);
  const kind = r.int(8);
  if (kind === 0) {
    const at = r.int(b.length);
    return { buf: b.subarray(0, at), how: `truncate at ${at}` };
  }
  if (kind === 1) {
    const n = 1 + r.int(8);
    for (let i = 0; i < n; i++) {
      const at = r.int(b.length);
      b[at] ^= 1 << r.int(8);
    }
    if (r.next() < 0.7) for (const h of heads) fixChecksum(b, h);
    return { buf: b, how: `${n} bit flips` };
  }
  if (kind === 2) {
    // The size field, octal or GNU base-256 (huge, or with every byte set).
    if (r.next() < 0.5) b.write(r.pick(INTERESTING_SIZES).padEnd(11, ' ').slice(0, 11) + '\0', head + 124, 'ascii');
    else {
      b[head + 124] = 0x80;
      for (let i = 1; i < 12; i++) b[head + 124 + i] = r.next() < 0.5 ? 0xff : r.int(256);
    }
    fixChecksum(b, head);
    return { buf: b, how: `size field of the header at ${head}` };
  }
  if (kind === 3) {
    // Another type flag, numeric fields garbled.
    b[head + 156] = r.pick([...'0123456789xgLKSAVDM\0'].map((c) => c.charCodeAt(0)));
    if (r.next() < 0.5) b.write(r.pick(['7777777', '9999999', '\x80\xff\xff\xff\xff\xff\xff', '       ']), head + r.pick([100, 108, 116, 329, 337]), 'latin1');
    fixChecksum(b, head);
    return { buf: b, how: `type flag of the header at ${head}` };
  }
  if (kind <= 5) {
    // A PAX header with hostile records before some entry.
    const recs: [string, Buffer][] = [];
    for (let i = 1 + r.int(3); i > 0; i--) {
      const rec = r.pick(PAX_RECORDS);
      const eq = rec.indexOf('=');
      recs.push([rec.slice(0, eq), Buffer.from(rec.slice(eq + 1), 'latin1')]);
    }
    let body = paxBody(recs);
    if (r.next() < 0.3) {
      // A length that lies.
      const s = body.toString('latin1');
      body = Buffer.from(s.replace(/^\d+/, (d) => String(Math.max(0, Number(d) + r.pick([-3, -1, 1, 7, 1e6, 1e18])))), 'latin1');
    }
    const flag = r.next() < 0.8 ? 'x' : 'g';
    const ext = blocks(tarHeader('PaxHeader', flag, { mode: 0, uid: 0, gid: 0, size: body.length, mtime: 0 }), body);
    return { buf: Buffer.concat([b.subarray(0, head), ext, b.subarray(head)]), how: `PAX ${flag} ${JSON.stringify(recs.map(([k, v]) => `${k}=${v.toString('latin1')}`))} before ${head}` };
  }
  if (kind === 6) {
    // An extended header that claims a huge size, or a GNU long name that does.
    const flag = r.pick(['x', 'g', 'L', 'K']);
    const size = r.pick([16 << 20, (16 << 20) + 1, 2 ** 33, 2 ** 52]);
    const h = tarHeader('Huge', flag, { mode: 0, uid: 0, gid: 0, size: 0, mtime: 0 });
    h[124] = 0x80;
    h.fill(0, 125, 136);
    h.writeUIntBE(Math.floor(size / 2 ** 32), 128, 4);
    h.writeUInt32BE(size % 2 ** 32, 132);
    fixChecksum(h, 0);
    return { buf: Buffer.concat([b.subarray(0, head), h, b.subarray(head)]), how: `${flag} header of ${size} bytes before ${head}` };
  }
  // Random bytes in one header, checksum fixed.
  for (let i = 1 + r.int(6); i > 0; i--) b[head + r.int(512)] = r.int(256);
  fixChecksum(b, head);
  return { buf: b, how: `random bytes in the header at ${head}` };
}

interface Parsed {
  entries: { h: TarHeader; body: number }[];
}

/** Parses `tar` fed in random chunks; checks each entry as a layer would use it. Returns the entries or throws. */
function parse(tar: Buffer, r: R): Parsed {
  const entries: Parsed['entries'] = [];
  const p = new TarParser({
    entry: (h) => entries.push({ h, body: 0 }),
    body: (c) => {
      entries[entries.length - 1].body += c.length;
    },
  });
  for (let off = 0; off < tar.length; ) {
    const n = Math.min(tar.length - off, r.pick([1, 7, 511, 512, 513, 4096, 65536]));
    p.push(tar.subarray(off, off + n));
    off += n;
  }
  p.end();
  return { entries };
}

/** What no parsed entry may ever be, whatever the archive held. */
function insane(e: Parsed['entries'][number]): string | undefined {
  const h = e.h;
  const nonNegInt = (v: number) => Number.isSafeInteger(v) && v >= 0;
  if (typeof h.name !== 'string' || typeof h.linkname !== 'string') return 'name or linkname not a string';
  if (!nonNegInt(h.size)) return `size ${h.size}`;
  if (!nonNegInt(h.uid) || !nonNegInt(h.gid)) return `uid/gid ${h.uid}/${h.gid}`;
  if (!Number.isFinite(h.mtime) || !Number.isInteger(h.mtime)) return `mtime ${h.mtime}`;
  if (!nonNegInt(h.mode) || h.mode > 0o7777) return `mode ${h.mode}`;
  if (!nonNegInt(h.devmajor) || !nonNegInt(h.devminor)) return `device ${h.devmajor}:${h.devminor}`;
  if (![...h.xattrs.values()].every((v) => Buffer.isBuffer(v))) return 'xattr value not bytes';
  if (h.type === 'file' ? e.body !== h.size : e.body !== 0 || h.size !== 0) return `${h.type} of size ${h.size} got ${e.body} bytes of body`;
  return undefined;
}

describe('tar reader fuzz', () => {
  it(`seeded mutations: a typed error or sane entries, bounded memory`, () => {
    const seed = Number(process.env.TAR_FUZZ_SEED ?? 0x7a5f);
    const r = rng(seed);
    const all = bases();
    // The unmutated archives parse to what they hold.
    const layer = parse(all[0].tar, r).entries;
    expect(layer.map((e) => [e.h.type, e.h.name, e.body])).toEqual([
      ['dir', 'etc/', 0], ['file', 'etc/passwd', 30], ['file', `deep/${'n'.repeat(150)}/file`, 1300], ['file', 'bin/ping', 700], ['symlink', 'bin/sh', 0],
      ['symlink', 'long-link', 0], ['hardlink', 'bin/ping6', 0], ['char', 'dev/null', 0], ['fifo', 'dev/fifo', 0], ['file', 'empty', 0],
    ]);
    expect(layer[3].h.xattrs.get('security.capability')?.toString('hex')).toBe('0100000200200000');
    expect(layer[5].h.linkname).toBe(`/usr/${'t'.repeat(200)}`);
    const gnu = parse(all[1].tar, r).entries;
    expect(gnu.map((e) => [e.h.name, e.h.size, e.h.uid, e.h.mtime, e.body])).toEqual([[`gnu/${'g'.repeat(180)}`, 5, 0, 1, 5], ['pax-sized', 600, 70000, 1700000000, 600]]);

    const outcomes: Record<string, number> = {};
    const rss0 = process.memoryUsage().rss;
    let peak = 0;
    const start = performance.now();
    let ran = 0;
    for (let i = 0; i < CASES && performance.now() - start < TIME_BUDGET_MS; i++) {
      const base = all[i % all.length];
      const { buf, how } = mutate(base.tar, r);
      const where = `seed ${seed} case ${i} (${base.name}: ${how})`;
      let outcome: string;
      let parsed: Parsed | undefined;
      try {
        parsed = parse(buf, r);
        outcome = 'ok';
      } catch (e) {
        if (!(e instanceof StrataError)) throw new Error(`${where}: ${(e as Error)?.stack ?? e}`);
        outcome = e.code;
      }
      const bad = parsed?.entries.map(insane).find((x) => x !== undefined);
      if (bad) throw new Error(`${where}: parsed an entry no layer may hold: ${bad}`);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      peak = Math.max(peak, process.memoryUsage().rss - rss0);
      if (peak > MEMORY_BOUND) throw new Error(`${where}: RSS grew by ${peak >> 20} MiB`);
      ran++;
    }
    console.log(`tar fuzz (seed ${seed}): ${ran} cases in ${(performance.now() - start).toFixed(0)} ms, RSS +${peak >> 20} MiB`, outcomes);
    expect(ran).toBeGreaterThan(500);
    expect(outcomes.ok).toBeGreaterThan(0);
    expect(outcomes.E_BAD_FILE).toBeGreaterThan(0);
  });
});

describe('tar reader: what the fuzz found', () => {
  const withPax = (recs: [string, string][], flag = 'x') => {
    const body = paxBody(recs.map(([k, v]) => [k, Buffer.from(v)]));
    return Buffer.concat([
      blocks(tarHeader('PaxHeader', flag, { mode: 0, uid: 0, gid: 0, size: body.length, mtime: 0 }), body),
      blocks(tarHeader('f', '0', { mode: 0o644, uid: 0, gid: 0, size: 3, mtime: 1 }), Buffer.from('abc')),
      Buffer.alloc(1024),
    ]);
  };
  const outcome = (tar: Buffer) => {
    try {
      return parse(tar, rng(1)).entries.map((e) => [e.h.size, e.h.uid, e.h.mtime, e.body]);
    } catch (e) {
      return e instanceof StrataError ? `${e.code}: ${e.message}` : `not a StrataError: ${String(e)}`;
    }
  };

  it.each([
    ['size', '1.5', 'E_BAD_FILE: PAX record size is not a whole number: "1.5"'],
    ['size', '-1', 'E_BAD_FILE: PAX record size is not a whole number: "-1"'],
    ['size', '1e3', 'E_BAD_FILE: PAX record size is not a whole number: "1e3"'],
    ['uid', '0x10', 'E_BAD_FILE: PAX record uid is not a whole number: "0x10"'],
    ['uid', '4294967296', 'E_BAD_FILE: tar entry "f" has owner 4294967296:0, beyond 32 bits'],
    ['mtime', '1e400', 'E_BAD_FILE: PAX record mtime is not a time: "1e400"'],
  ])('a PAX %s of %s is refused', (key, v, message) => {
    expect(outcome(withPax([[key, v]]))).toBe(message);
  });

  it('PAX numbers that are right are taken (a fractional mtime is floored)', () => {
    expect(outcome(withPax([['size', '3'], ['uid', '70000'], ['mtime', '1700000000.75']]))).toEqual([[3, 70000, 1700000000, 3]]);
  });

  it('PAX global records beyond 1 MiB are refused (each later entry would carry them)', () => {
    const recs: [string, string][] = Array.from({ length: 20 }, (_, i) => [`comment${i}`, 'c'.repeat(60_000)]);
    expect(outcome(withPax(recs, 'g'))).toBe('E_UNSUPPORTED: the layer\'s PAX global headers hold 1200170 bytes of records, more than 1048576');
  });
});
