/**
 * A push parser for the tar archives that container layers are: ustar, PAX
 * extended headers (long names, big sizes, xattrs as SCHILY.xattr.*) and GNU
 * long names. Fed chunks as they are decompressed, it calls back once per
 * entry with the header, then with the entry's body in pieces, so a layer is
 * never held in memory whole.
 *
 * Our own rather than tar-stream: we need the xattr records (tar-stream
 * hands PAX records over only as strings, which breaks binary values such as
 * security.capability), a synchronous body sink, and a clear refusal of what
 * we do not apply (GNU sparse files), in ~200 lines with no dependency.
 */
import { inputError, unsupported } from '../../errors.js';

const BLOCK = 512;

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarHeader {
  /** As written in the archive: not yet checked or normalised (see tree.ts). */
  name: string;
  type: TarEntryType;
  /** Permission bits with setuid, setgid and sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes from PAX records, values as bytes. */
  xattrs: Map<string, Buffer>;
}

export interface TarSink {
  /** A new entry; its body (size bytes) follows through body(). */
  entry(h: TarHeader): void;
  body(chunk: Buffer): void;
}

const TYPES: Record<string, TarEntryType> = { '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo' };

export function cstring(b: Buffer, off: number, len: number): string {
  const end = b.indexOf(0, off);
  return b.toString('utf8', off, end < 0 || end > off + len ? off + len : end);
}

/** Octal, or GNU base-256 when the high bit of the first byte is set. */
export function number(b: Buffer, off: number, len: number, what: string): number {
  if (b[off] & 0x80) {
    let v = b[off] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i];
    if (!Number.isSafeInteger(v)) throw inputError(`tar header field ${what} is too large`);
    return v;
  }
  const s = cstring(b, off, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw inputError(`tar header field ${what} is not a number: ${JSON.stringify(s)}`);
  return parseInt(s, 8);
}

export function checksumOk(b: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : b[i];
  const stored = cstring(b, 148, 8).trim();
  return /^[0-7]+$/.test(stored) && parseInt(stored, 8) === sum;
}

/** PAX records: "LEN KEY=VALUE\n", values kept as bytes (xattrs are binary). */
export function paxRecords(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < buf.length) {
    const sp = buf.indexOf(0x20, pos);
    if (sp < 0) break;
    const len = parseInt(buf.toString('ascii', pos, sp), 10);
    if (!Number.isSafeInteger(len) || len <= sp - pos || pos + len > buf.length) throw inputError('malformed PAX extended header');
    const rec = buf.subarray(sp + 1, pos + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw inputError('malformed PAX record');
    out.set(rec.toString('utf8', 0, eq), Buffer.from(rec.subarray(eq + 1)));
    pos += len;
  }
  return out;
}

/** Owners are 32-bit in ext4 (and Linux). */
const ID_MAX = 0xffffffff;

/**
 * A PAX numeric record: a decimal integer, or for mtime a decimal with an
 * optional sign and fraction (dropped). Anything else (1e9, 0x10, 1.5 bytes,
 * -1) is refused: the size decides where the next header is.
 */
export function paxNumber(key: 'size' | 'uid' | 'gid' | 'mtime', text: string): number {
  const ok = key === 'mtime' ? /^-?\d{1,15}(\.\d*)?$/.test(text) : /^\d{1,16}$/.test(text);
  const n = Number(text);
  if (!ok || !Number.isSafeInteger(Math.floor(n))) throw inputError(`PAX record ${key} is not a ${key === 'mtime' ? 'time' : 'whole number'}: ${JSON.stringify(text.slice(0, 40))}`);
  return Math.floor(n);
}

/** PAX global records outlive their header, for every later entry: a layer has no use for more than this. */
const GLOBAL_MAX = 1 << 20;

type State = { at: 'header' } | { at: 'body'; left: number; pad: number; meta?: 'pax' | 'global' | 'longname' | 'longlink'; acc?: Buffer[] } | { at: 'end' };

export class TarParser {
  private state: State = { at: 'header' };
  private pending: Buffer = Buffer.alloc(0);
  private pax = new Map<string, Buffer>();
  private global = new Map<string, Buffer>();
  private longname?: string;
  private longlink?: string;
  private zeroBlocks = 0;

  constructor(private readonly sink: TarSink) {}

  push(chunk: Buffer): void {
    const buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let pos = 0;
    while (pos < buf.length) {
      const s = this.state;
      if (s.at === 'end') return;
      if (s.at === 'body') {
        if (s.left > 0) {
          const n = Math.min(s.left, buf.length - pos);
          const piece = buf.subarray(pos, pos + n);
          if (s.meta) s.acc!.push(Buffer.from(piece));
          else this.sink.body(piece);
          s.left -= n;
          pos += n;
          if (s.left > 0) break;
        }
        const skip = Math.min(s.pad, buf.length - pos);
        s.pad -= skip;
        pos += skip;
        if (s.pad > 0) break;
        if (s.meta) this.endMeta(s.meta, Buffer.concat(s.acc!));
        this.state = { at: 'header' };
        continue;
      }
      if (buf.length - pos < BLOCK) break;
      this.header(buf.subarray(pos, pos + BLOCK));
      pos += BLOCK;
    }
    this.pending = pos < buf.length ? Buffer.from(buf.subarray(pos)) : Buffer.alloc(0);
  }

  /** The stream ended: anything but a complete archive is refused. */
  end(): void {
    if (this.state.at === 'body' || this.pending.length > 0) throw inputError('the tar stream ends in the middle of an entry (truncated layer)');
    // Two zero blocks end an archive; some writers stop after one or none, which tar(1) accepts.
  }

  private header(b: Buffer): void {
    if (b.every((x) => x === 0)) {
      if (++this.zeroBlocks >= 2) this.state = { at: 'end' };
      return;
    }
    this.zeroBlocks = 0;
    if (!checksumOk(b)) throw inputError('not a tar archive (bad header checksum)');
    const flag = String.fromCharCode(b[156]);
    const size = number(b, 124, 12, 'size');
    const metaKind = flag === 'x' ? 'pax' : flag === 'g' ? 'global' : flag === 'L' ? 'longname' : flag === 'K' ? 'longlink' : undefined;
    if (metaKind) {
      if (size > 16 << 20) throw inputError(`tar extended header of ${size} bytes is too large`);
      this.state = { at: 'body', left: size, pad: (BLOCK - (size % BLOCK)) % BLOCK, meta: metaKind, acc: [] };
      return;
    }
    if (flag === 'S') throw unsupported('the layer holds a GNU sparse file, which strata does not apply');
    const type = TYPES[flag];
    if (type === undefined) throw unsupported(`the layer holds a tar entry of type ${JSON.stringify(flag)}, which strata does not apply`);
    const rec = new Map([...this.global, ...this.pax]);
    this.pax = new Map();
    const magic = b.toString('ascii', 257, 263);
    const prefix = magic.startsWith('ustar') ? cstring(b, 345, 155) : '';
    let name = this.longname ?? (prefix ? `${prefix}/${cstring(b, 0, 100)}` : cstring(b, 0, 100));
    let linkname = this.longlink ?? cstring(b, 157, 100);
    this.longname = this.longlink = undefined;
    if (rec.has('path')) name = rec.get('path')!.toString('utf8');
    if (rec.has('linkpath')) linkname = rec.get('linkpath')!.toString('utf8');
    if ([...rec.keys()].some((k) => k.startsWith('GNU.sparse'))) throw unsupported('the layer holds a PAX sparse file, which strata does not apply');
    const num = (key: 'size' | 'uid' | 'gid' | 'mtime', fallback: number) => {
      const v = rec.get(key);
      return v === undefined ? fallback : paxNumber(key, v.toString('latin1'));
    };
    const xattrs = new Map<string, Buffer>();
    for (const [k, v] of rec) if (k.startsWith('SCHILY.xattr.')) xattrs.set(k.slice('SCHILY.xattr.'.length), v);
    const h: TarHeader = {
      name,
      type,
      mode: number(b, 100, 8, 'mode') & 0o7777,
      uid: num('uid', number(b, 108, 8, 'uid')),
      gid: num('gid', number(b, 116, 8, 'gid')),
      size: num('size', size),
      mtime: num('mtime', number(b, 136, 12, 'mtime')),
      linkname,
      devmajor: number(b, 329, 8, 'devmajor'),
      devminor: number(b, 337, 8, 'devminor'),
      xattrs,
    };
    if (h.uid > ID_MAX || h.gid > ID_MAX) throw inputError(`tar entry ${JSON.stringify(name.slice(0, 100))} has owner ${h.uid}:${h.gid}, beyond 32 bits`);
    // Only regular files carry a body; a hard link's size field is ignored, as tar(1) does.
    const body = type === 'file' ? h.size : 0;
    if (type !== 'file') h.size = 0;
    this.sink.entry(h);
    this.state = { at: 'body', left: body, pad: (BLOCK - (body % BLOCK)) % BLOCK };
  }

  private endMeta(kind: 'pax' | 'global' | 'longname' | 'longlink', data: Buffer): void {
    if (kind === 'longname') this.longname = cstring(data, 0, data.length);
    else if (kind === 'longlink') this.longlink = cstring(data, 0, data.length);
    else if (kind === 'pax') this.pax = paxRecords(data);
    else {
      for (const [k, v] of paxRecords(data)) this.global.set(k, v);
      let bytes = 0;
      for (const [k, v] of this.global) bytes += k.length + v.length;
      if (bytes > GLOBAL_MAX) throw unsupported(`the layer's PAX global headers hold ${bytes} bytes of records, more than ${GLOBAL_MAX}`);
    }
  }
}
