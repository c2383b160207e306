/**
 * A minimal NBD client over a raw socket, for tests that need to send what
 * real clients never would (bad ranges, bad magic, oversized payloads) and
 * see exactly what comes back.
 */
import * as net from 'node:net';
import { StreamReader } from '../../src/nbd/stream-reader.js';
import {
  FLAG_C_FIXED_NEWSTYLE,
  FLAG_C_NO_ZEROES,
  IHAVEOPT,
  OPT,
  REP,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC,
  encodeRequestHeader,
} from '../../src/nbd/protocol.js';

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

export interface Chunk {
  flags: number;
  type: number;
  handle: bigint;
  payload: Buffer;
}

export interface Reply {
  handle: bigint;
  error: number;
  /** Simple reply data (READ), or the chunks of a structured reply. */
  data?: Buffer;
  chunks?: Chunk[];
}

export class RawClient {
  readonly reader: StreamReader;
  private nextHandle = 1n;
  closed = false;
  size = 0;
  transmissionFlags = 0;
  structured = false;

  private constructor(readonly socket: net.Socket) {
    this.reader = new StreamReader(socket);
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }

  static connect(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ path });
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  send(b: Buffer): void {
    this.socket.write(b);
  }

  /** Reads the greeting and answers with fixed-newstyle + no-zeroes. */
  async greet(): Promise<number> {
    const g = await this.reader.read(18);
    const flags = g.readUInt16BE(16);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES);
    this.send(c);
    return flags;
  }

  sendOption(option: number, data: Buffer = Buffer.alloc(0)): void {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(IHAVEOPT, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(data.length, 12);
    this.send(Buffer.concat([h, data]));
  }

  async readOptionReply(): Promise<OptionReply> {
    const h = await this.reader.read(20);
    const len = h.readUInt32BE(16);
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: await this.reader.read(len) };
  }

  /** Sends an option and collects replies up to the final (ACK or error) one. */
  async option(option: number, data?: Buffer): Promise<OptionReply[]> {
    this.sendOption(option, data);
    const out: OptionReply[] = [];
    for (;;) {
      const r = await this.readOptionReply();
      out.push(r);
      if (r.type === REP.ACK || r.type >= 0x80000000) return out;
    }
  }

  static goData(name: string, infos: number[] = []): Buffer {
    const n = Buffer.from(name);
    const b = Buffer.alloc(4 + n.length + 2 + 2 * infos.length);
    b.writeUInt32BE(n.length, 0);
    n.copy(b, 4);
    b.writeUInt16BE(infos.length, 4 + n.length);
    infos.forEach((t, i) => b.writeUInt16BE(t, 6 + n.length + 2 * i));
    return b;
  }

  static metaData(name: string, queries: string[]): Buffer {
    const parts: Buffer[] = [];
    const u32 = (v: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(v);
      return b;
    };
    parts.push(u32(Buffer.byteLength(name)), Buffer.from(name), u32(queries.length));
    for (const q of queries) parts.push(u32(Buffer.byteLength(q)), Buffer.from(q));
    return Buffer.concat(parts);
  }

  /** Full handshake to transmission via NBD_OPT_GO. */
  static async open(path: string, name: string, opts: { structured?: boolean; meta?: boolean } = {}): Promise<RawClient> {
    const c = await RawClient.connect(path);
    await c.greet();
    if (opts.structured) {
      const r = await c.option(OPT.STRUCTURED_REPLY);
      if (r[0].type !== REP.ACK) throw new Error('structured replies refused');
      c.structured = true;
    }
    if (opts.meta) {
      const r = await c.option(OPT.SET_META_CONTEXT, RawClient.metaData(name, ['base:allocation']));
      if (r[r.length - 1].type !== REP.ACK) throw new Error('meta context refused');
    }
    const replies = await c.option(OPT.GO, RawClient.goData(name));
    const last = replies[replies.length - 1];
    if (last.type !== REP.ACK) throw new Error(`GO failed: ${last.type.toString(16)} ${last.data.toString()}`);
    const info = replies.find((r) => r.type === REP.INFO && r.data.readUInt16BE(0) === 0)!;
    c.size = Number(info.data.readBigUInt64BE(2));
    c.transmissionFlags = info.data.readUInt16BE(10);
    return c;
  }

  /** Sends one request and returns its handle. */
  request(type: number, offset: bigint | number, length: number, flags = 0, payload?: Buffer, magic?: number): bigint {
    const handle = this.nextHandle++;
    const hb = Buffer.alloc(8);
    hb.writeBigUInt64BE(handle);
    const head = encodeRequestHeader({ type, flags, handle: hb, offset: BigInt(offset), length, magic });
    this.send(payload ? Buffer.concat([head, payload]) : head);
    return handle;
  }

  /**
   * Reads the next reply. `readLengths` maps pending READ handles to their
   * lengths, needed to frame simple READ replies (the protocol's known flaw).
   */
  async readReply(readLengths: Map<bigint, number> = new Map()): Promise<Reply> {
    const magic = (await this.reader.read(4)).readUInt32BE(0);
    if (magic === SIMPLE_REPLY_MAGIC) {
      const rest = await this.reader.read(12);
      const error = rest.readUInt32BE(0);
      const handle = rest.readBigUInt64BE(4);
      const len = readLengths.get(handle);
      const data = error === 0 && len !== undefined ? await this.reader.read(len) : undefined;
      return { handle, error, data };
    }
    if (magic !== STRUCTURED_REPLY_MAGIC) throw new Error(`bad reply magic ${magic.toString(16)}`);
    const chunks: Chunk[] = [];
    let first = true;
    for (;;) {
      if (!first) {
        const m = (await this.reader.read(4)).readUInt32BE(0);
        if (m !== STRUCTURED_REPLY_MAGIC) throw new Error('bad chunk magic');
      }
      first = false;
      const h = await this.reader.read(16);
      const chunk = { flags: h.readUInt16BE(0), type: h.readUInt16BE(2), handle: h.readBigUInt64BE(4), payload: await this.reader.read(h.readUInt32BE(12)) };
      chunks.push(chunk);
      if (chunk.flags & 1) break;
    }
    const err = chunks.find((c) => c.type & 0x8000);
    return { handle: chunks[0].handle, error: err ? err.payload.readUInt32BE(0) : 0, chunks };
  }

  /** One request, one reply; READ data is reassembled from structured chunks. */
  async call(type: number, offset: bigint | number, length: number, flags = 0, payload?: Buffer): Promise<Reply> {
    const h = this.request(type, offset, length, flags, payload);
    const r = await this.readReply(new Map(type === 0 ? [[h, length]] : []));
    if (r.handle !== h) throw new Error(`reply for handle ${r.handle}, expected ${h}`);
    if (r.chunks && type === 0 && r.error === 0) r.data = assembleRead(r.chunks, BigInt(offset), length);
    return r;
  }

  /** Resolves when the server has closed the connection. */
  waitClosed(timeoutMs = 5000): Promise<boolean> {
    if (this.closed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

export function assembleRead(chunks: Chunk[], offset: bigint, length: number): Buffer {
  const out = Buffer.alloc(length, 0x5a); // poison: uncovered bytes show up
  for (const c of chunks) {
    if (c.type === 1) {
      const at = Number(c.payload.readBigUInt64BE(0) - offset);
      c.payload.copy(out, at, 8);
    } else if (c.type === 2) {
      const at = Number(c.payload.readBigUInt64BE(0) - offset);
      out.fill(0, at, at + c.payload.readUInt32BE(8));
    }
  }
  return out;
}
