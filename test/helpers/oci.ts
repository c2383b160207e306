/**
 * Container images for the tests: layer tarballs written byte by byte (so
 * device nodes, owners, setuid bits, xattrs and whiteouts are exactly what
 * the test says, whoever runs it), assembled into OCI layouts by umoci
 * (`umoci raw add-layer` computes digests and diffIDs and gzips), converted
 * by skopeo (zstd layers, docker-archive).
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export type Entry =
  | { type: 'file'; name: string; data?: Buffer | string; mode?: number; uid?: number; gid?: number; mtime?: number; xattrs?: Record<string, Buffer> }
  | { type: 'dir'; name: string; mode?: number; uid?: number; gid?: number; mtime?: number; xattrs?: Record<string, Buffer> }
  | { type: 'symlink'; name: string; target: string; uid?: number; gid?: number; mtime?: number }
  | { type: 'hardlink'; name: string; target: string }
  | { type: 'char' | 'block'; name: string; major: number; minor: number; mode?: number; uid?: number; gid?: number; mtime?: number }
  | { type: 'fifo'; name: string; mode?: number; uid?: number; gid?: number; mtime?: number };

const FLAG = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' } as const;

function octal(n: number, len: number): string {
  return n.toString(8).padStart(len - 1, '0') + '\0';
}

/** One ustar header block, checksum included. */
export function tarHeader(name: string, flag: string, o: { mode: number; uid: number; gid: number; size: number; mtime: number; link?: string; major?: number; minor?: number }): Buffer {
  const h = Buffer.alloc(512);
  h.write(name.slice(0, 99), 0, 'utf8');
  h.write(octal(o.mode, 8), 100, 'ascii');
  h.write(octal(o.uid, 8), 108, 'ascii');
  h.write(octal(o.gid, 8), 116, 'ascii');
  h.write(octal(o.size, 12), 124, 'ascii');
  h.write(octal(o.mtime, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(flag, 156, 'ascii');
  if (o.link) h.write(o.link.slice(0, 99), 157, 'utf8');
  h.write('ustar\u000000', 257, 'binary');
  h.write(octal(o.major ?? 0, 8), 329, 'ascii');
  h.write(octal(o.minor ?? 0, 8), 337, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

/** A PAX extended header's body: "LEN KEY=VALUE\n" records. */
export function paxBody(records: [string, Buffer][]): Buffer {
  const parts = records.map(([k, v]) => {
    const body = Buffer.concat([Buffer.from(` ${k}=`), v, Buffer.from('\n')]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    return Buffer.concat([Buffer.from(String(len)), body]);
  });
  return Buffer.concat(parts);
}

/** A tar archive of `entries`, in order. PAX headers carry long names and xattrs. */
export function tarOf(entries: Entry[]): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const data = e.type === 'file' ? Buffer.from(e.data ?? '') : Buffer.alloc(0);
    const link = e.type === 'symlink' || e.type === 'hardlink' ? e.target : undefined;
    const recs: [string, Buffer][] = [];
    if (Buffer.byteLength(e.name) > 99) recs.push(['path', Buffer.from(e.name)]);
    if (link && Buffer.byteLength(link) > 99) recs.push(['linkpath', Buffer.from(link)]);
    if ('xattrs' in e && e.xattrs) for (const [k, v] of Object.entries(e.xattrs)) recs.push([`SCHILY.xattr.${k}`, v]);
    if (recs.length) {
      const body = paxBody(recs);
      out.push(tarHeader('PaxHeader', 'x', { mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0 }), body, pad(body.length));
    }
    const m = 'mode' in e && e.mode !== undefined ? e.mode : e.type === 'dir' ? 0o755 : e.type === 'symlink' ? 0o777 : 0o644;
    const own = e.type === 'hardlink' ? { uid: 0, gid: 0, mtime: 0 } : { uid: e.uid ?? 0, gid: e.gid ?? 0, mtime: e.mtime ?? 1700000000 };
    out.push(
      tarHeader(e.name, FLAG[e.type], { mode: m, ...own, size: data.length, link, major: 'major' in e ? e.major : 0, minor: 'minor' in e ? e.minor : 0 }),
      data,
      pad(data.length),
    );
  }
  out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

export function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** An OCI layout at `dir` (made if missing) with image `tag` of these layers, bottom first, via umoci. */
export function ociImage(dir: string, tag: string, layers: Entry[][], scratch: string): void {
  if (!fs.existsSync(path.join(dir, 'oci-layout'))) sh('umoci', ['init', '--layout', dir]);
  sh('umoci', ['new', '--image', `${dir}:${tag}`]);
  layers.forEach((l, i) => {
    const f = path.join(scratch, `${tag}-${i}-${crypto.randomBytes(4).toString('hex')}.tar`);
    fs.writeFileSync(f, tarOf(l));
    sh('umoci', ['raw', 'add-layer', '--image', `${dir}:${tag}`, f]);
  });
}

/** umoci unpack as the oracle: the image's rootfs as umoci applies it (needs root for owners and device nodes). */
export function umociUnpack(dir: string, tag: string, bundle: string): string {
  sh('umoci', ['unpack', '--image', `${dir}:${tag}`, bundle]);
  return path.join(bundle, 'rootfs');
}

/** Deterministic pseudo-random bytes (file contents that compress poorly, like real binaries). */
export function bytes(seed: string, n: number): Buffer {
  const out = Buffer.alloc(n);
  let off = 0;
  for (let i = 0; off < n; i++) {
    const h = crypto.createHash('sha256').update(`${seed}:${i}`).digest();
    h.copy(out, off);
    off += h.length;
  }
  return out;
}
