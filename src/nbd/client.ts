/**
 * A small NBD client, for reading an export another server offers (qemu-nbd
 * serving a format strata does not parse): the fixed newstyle handshake,
 * structured replies, READ and BLOCK_STATUS over base:allocation. One
 * request in flight at a time; read-only.
 */
import * as net from 'node:net';
import { StrataError } from '../errors.js';
import type { Extent } from '../image/device.js';
import { StreamReader } from './stream-reader.js';
import { BASE_ALLOCATION } from './meta-contexts.js';
import {
  CMD,
  FLAG_C_FIXED_NEWSTYLE,
  FLAG_C_NO_ZEROES,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  IHAVEOPT,
  INFO,
  NBDMAGIC,
  OPT,
  OPTION_REPLY_MAGIC,
  REP,
  REPLY_FLAG_DONE,
  REPLY_TYPE,
  SIMPLE_REPLY_MAGIC,
  STATE_ZERO,
  STRUCTURED_REPLY_MAGIC,
  encodeRequestHeader,
} from './protocol.js';

export interface NbdClient {
  readonly size: number;
  /** Exactly `length` bytes from `offset` (at most 32 MiB per call). */
  read(offset: number, length: number): Promise<Buffer>;
  /** 'data' or 'zero' runs covering [offset, offset+length); all 'data' if the server has no block status. */
  extents(offset: number, length: number): Promise<Extent[]>;
  close(): Promise<void>;
}

const fail = (what: string, data: Record<string, unknown> = {}) => new StrataError('E_PROTOCOL', `NBD server: ${what}`, data);

function optionRequest(option: number, data: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeBigUInt64BE(IHAVEOPT, 0);
  h.writeUInt32BE(option, 8);
  h.writeUInt32BE(data.length, 12);
  return Buffer.concat([h, data]);
}

const str = (s: string) => {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
};

export async function connectNbd(socketPath: string, exportName = ''): Promise<NbdClient> {
  const sock = net.createConnection(socketPath);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const r = new StreamReader(sock);
  const send = (b: Buffer) => sock.write(b);
  try {
    const hello = await r.read(18);
    if (hello.readBigUInt64BE(0) !== NBDMAGIC || hello.readBigUInt64BE(8) !== IHAVEOPT) throw fail('not a newstyle NBD server');
    const hflags = hello.readUInt16BE(16);
    if (!(hflags & FLAG_FIXED_NEWSTYLE)) throw fail('no fixed newstyle handshake');
    const cflags = Buffer.alloc(4);
    cflags.writeUInt32BE(FLAG_C_FIXED_NEWSTYLE | (hflags & FLAG_NO_ZEROES ? FLAG_C_NO_ZEROES : 0));
    send(cflags);

    /** Reads option replies up to the final one (ACK or an error); returns the informational ones. */
    const replies = async (option: number): Promise<{ type: number; data: Buffer }[]> => {
      const out: { type: number; data: Buffer }[] = [];
      for (;;) {
        const h = await r.read(20);
        if (h.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC || h.readUInt32BE(8) !== option) throw fail(`bad reply to option ${option}`);
        const type = h.readUInt32BE(12);
        const len = h.readUInt32BE(16);
        if (len > 1 << 20) throw fail(`option reply of ${len} bytes`);
        const data = await r.read(len);
        if (type === REP.ACK) return out;
        if (type >= 0x80000000) {
          out.push({ type, data });
          return out;
        }
        out.push({ type, data });
      }
    };

    send(optionRequest(OPT.STRUCTURED_REPLY, Buffer.alloc(0)));
    const structured = !(await replies(OPT.STRUCTURED_REPLY)).some((x) => x.type >= 0x80000000);
    let contextId: number | undefined;
    if (structured) {
      const n = Buffer.alloc(4);
      n.writeUInt32BE(1);
      send(optionRequest(OPT.SET_META_CONTEXT, Buffer.concat([str(exportName), n, str(BASE_ALLOCATION)])));
      for (const x of await replies(OPT.SET_META_CONTEXT)) {
        if (x.type === REP.META_CONTEXT && x.data.subarray(4).toString() === BASE_ALLOCATION) contextId = x.data.readUInt32BE(0);
      }
    }
    const noInfo = Buffer.alloc(2);
    send(optionRequest(OPT.GO, Buffer.concat([str(exportName), noInfo])));
    let size: number | undefined;
    for (const x of await replies(OPT.GO)) {
      if (x.type >= 0x80000000) throw fail(`export ${JSON.stringify(exportName)} refused (${x.data.toString() || x.type})`);
      if (x.type === REP.INFO && x.data.readUInt16BE(0) === INFO.EXPORT) size = Number(x.data.readBigUInt64BE(2));
    }
    if (size === undefined) throw fail('no export size');
    return transmission(sock, r, size, structured, contextId);
  } catch (e) {
    sock.destroy();
    throw e;
  }
}

function transmission(sock: net.Socket, r: StreamReader, size: number, structured: boolean, contextId: number | undefined): NbdClient {
  let handle = 0n;
  const request = (type: number, offset: number, length: number) => {
    const h = Buffer.alloc(8);
    h.writeBigUInt64BE(++handle);
    sock.write(encodeRequestHeader({ flags: 0, type, handle: h, offset: BigInt(offset), length }));
    return handle;
  };

  /** Reads one reply; `onChunk` gets each structured chunk's type and payload. */
  const reply = async (expect: bigint, simpleLength: number, onChunk: (type: number, payload: Buffer) => void): Promise<void> => {
    for (;;) {
      const magic = (await r.read(4)).readUInt32BE(0);
      if (magic === SIMPLE_REPLY_MAGIC) {
        const h = await r.read(12);
        if (h.readBigUInt64BE(4) !== expect) throw fail('reply to a request never sent');
        const err = h.readUInt32BE(0);
        if (err) throw new StrataError('E_IO', `NBD server: read failed with error ${err}`);
        onChunk(REPLY_TYPE.OFFSET_DATA, await r.read(simpleLength));
        return;
      }
      if (magic !== STRUCTURED_REPLY_MAGIC) throw fail('bad reply magic');
      const h = await r.read(16);
      const flags = h.readUInt16BE(0);
      const type = h.readUInt16BE(2);
      if (h.readBigUInt64BE(4) !== expect) throw fail('reply to a request never sent');
      const len = h.readUInt32BE(12);
      if (len > 64 << 20) throw fail(`reply chunk of ${len} bytes`);
      const payload = await r.read(len);
      if (type === REPLY_TYPE.ERROR || type === REPLY_TYPE.ERROR_OFFSET) {
        const msg = payload.length >= 6 ? payload.subarray(6, 6 + payload.readUInt16BE(4)).toString() : '';
        throw new StrataError('E_IO', `NBD server: error ${payload.readUInt32BE(0)}${msg ? `: ${msg}` : ''}`);
      }
      onChunk(type, payload);
      if (flags & REPLY_FLAG_DONE) return;
    }
  };

  return {
    size,
    async read(offset, length) {
      const out = Buffer.alloc(length);
      const h = request(CMD.READ, offset, length);
      await reply(h, length, (type, p) => {
        if (!structured) return void p.copy(out);
        if (type === REPLY_TYPE.OFFSET_DATA) {
          const at = Number(p.readBigUInt64BE(0)) - offset;
          if (at < 0 || at + p.length - 8 > length) throw fail('read data outside the request');
          p.copy(out, at, 8);
        } else if (type !== REPLY_TYPE.OFFSET_HOLE && type !== REPLY_TYPE.NONE) throw fail(`unexpected reply type ${type} to a read`);
        // A hole reads as zeros: `out` is zeroed already.
      });
      return out;
    },
    async extents(offset, length) {
      if (contextId === undefined) return [{ offset, length, kind: 'data' }];
      const out: Extent[] = [];
      let pos = offset;
      const end = offset + length;
      while (pos < end) {
        const h = request(CMD.BLOCK_STATUS, pos, Math.min(end - pos, 2 ** 31));
        const before = pos;
        await reply(h, 0, (type, p) => {
          if (type !== REPLY_TYPE.BLOCK_STATUS || p.readUInt32BE(0) !== contextId) return;
          for (let i = 4; i + 8 <= p.length && pos < end; i += 8) {
            const len = Math.min(p.readUInt32BE(i), end - pos);
            const kind = p.readUInt32BE(i + 4) & STATE_ZERO ? 'zero' : 'data';
            const last = out[out.length - 1];
            if (last && last.kind === kind) last.length += len;
            else out.push({ offset: pos, length: len, kind });
            pos += len;
          }
        });
        if (pos === before) throw fail('block status made no progress');
      }
      return out;
    },
    async close() {
      request(CMD.DISC, 0, 0);
      await new Promise<void>((resolve) => sock.end(resolve));
      sock.destroy();
    },
  };
}
