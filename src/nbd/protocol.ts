/**
 * NBD wire constants and the encoders/decoders for fixed-layout messages.
 * Values are from the NBD protocol document (NetworkBlockDevice/nbd,
 * doc/proto.md); everything on the wire is big-endian.
 *
 * This module is pure: no sockets, no devices. Everything else in nbd/
 * builds its messages through the functions here.
 */

export const NBDMAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT"
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server, 16 bits). */
export const FLAG_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_NO_ZEROES = 1 << 1;
/** Client flags (32 bits). */
export const FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_C_NO_ZEROES = 1 << 1;

/** Transmission flags (16 bits). */
export const TFLAG = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
} as const;

export const OPT = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
} as const;

export const REP = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: 0x80000001,
  ERR_POLICY: 0x80000002,
  ERR_INVALID: 0x80000003,
  ERR_PLATFORM: 0x80000004,
  ERR_TLS_REQD: 0x80000005,
  ERR_UNKNOWN: 0x80000006,
  ERR_SHUTDOWN: 0x80000007,
  ERR_BLOCK_SIZE_REQD: 0x80000008,
  ERR_TOO_BIG: 0x80000009,
} as const;

export const INFO = {
  EXPORT: 0,
  NAME: 1,
  DESCRIPTION: 2,
  BLOCK_SIZE: 3,
} as const;

export const CMD = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const;

export const CMD_FLAG = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
} as const;

export const REPLY_FLAG_DONE = 1 << 0;

export const REPLY_TYPE = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: 0x8001,
  ERROR_OFFSET: 0x8002,
} as const;

/** base:allocation status flags. */
export const STATE_HOLE = 1 << 0;
export const STATE_ZERO = 1 << 1;
/** qemu:dirty-bitmap: status flag (qemu's docs/interop/nbd.rst): the block is dirty. */
export const STATE_DIRTY = 1 << 0;

/** The error values the protocol allows in replies. */
export const NBD_ERRNO = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;
export type NbdErrno = (typeof NBD_ERRNO)[keyof typeof NBD_ERRNO];

export const REQUEST_HEADER_SIZE = 28;
export const OPTION_HEADER_SIZE = 16;
export const SIMPLE_REPLY_HEADER_SIZE = 16;
export const STRUCTURED_HEADER_SIZE = 20;
/** Strings (names, queries, messages) MUST be no longer than this. */
export const MAX_STRING = 4096;

// ---- handshake ----------------------------------------------------------

export function encodeServerGreeting(handshakeFlags: number): Buffer {
  const b = Buffer.alloc(18);
  b.writeBigUInt64BE(NBDMAGIC, 0);
  b.writeBigUInt64BE(IHAVEOPT, 8);
  b.writeUInt16BE(handshakeFlags, 16);
  return b;
}

export interface OptionHeader {
  magic: bigint;
  option: number;
  length: number;
}

export function decodeOptionHeader(b: Buffer): OptionHeader {
  return { magic: b.readBigUInt64BE(0), option: b.readUInt32BE(8), length: b.readUInt32BE(12) };
}

export function encodeOptionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(20 + data.length);
  b.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(type, 12);
  b.writeUInt32BE(data.length, 16);
  data.copy(b, 20);
  return b;
}

/** Reply to NBD_OPT_EXPORT_NAME: size, flags and (unless NO_ZEROES) 124 zero bytes. */
export function encodeExportNameReply(size: number, transmissionFlags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(noZeroes ? 10 : 134);
  b.writeBigUInt64BE(BigInt(size), 0);
  b.writeUInt16BE(transmissionFlags, 8);
  return b;
}

export function encodeInfoExport(size: number, transmissionFlags: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(INFO.EXPORT, 0);
  b.writeBigUInt64BE(BigInt(size), 2);
  b.writeUInt16BE(transmissionFlags, 10);
  return b;
}

export function encodeInfoBlockSize(min: number, preferred: number, max: number): Buffer {
  const b = Buffer.alloc(14);
  b.writeUInt16BE(INFO.BLOCK_SIZE, 0);
  b.writeUInt32BE(min, 2);
  b.writeUInt32BE(preferred, 6);
  b.writeUInt32BE(max, 10);
  return b;
}

export function encodeInfoString(type: number, text: string): Buffer {
  const s = Buffer.from(text, 'utf8');
  const b = Buffer.alloc(2 + s.length);
  b.writeUInt16BE(type, 0);
  s.copy(b, 2);
  return b;
}

export function encodeServerEntry(name: string, description?: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const d = Buffer.from(description ?? '', 'utf8');
  const b = Buffer.alloc(4 + n.length + d.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  d.copy(b, 4 + n.length);
  return b;
}

export function encodeMetaContext(id: number, name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(4 + n.length);
  b.writeUInt32BE(id, 0);
  n.copy(b, 4);
  return b;
}

// ---- transmission -------------------------------------------------------

export interface RequestHeader {
  magic: number;
  flags: number;
  type: number;
  /** Opaque to the server: echoed back as the same 8 bytes. */
  handle: Buffer;
  /** Offsets beyond 2^53 cannot address any device we export; they are kept as bigint for the range check. */
  offset: bigint;
  length: number;
}

export function decodeRequestHeader(b: Buffer): RequestHeader {
  return {
    magic: b.readUInt32BE(0),
    flags: b.readUInt16BE(4),
    type: b.readUInt16BE(6),
    handle: Buffer.from(b.subarray(8, 16)),
    offset: b.readBigUInt64BE(16),
    length: b.readUInt32BE(24),
  };
}

export function encodeRequestHeader(h: Omit<RequestHeader, 'magic'> & { magic?: number }): Buffer {
  const b = Buffer.alloc(REQUEST_HEADER_SIZE);
  b.writeUInt32BE(h.magic ?? REQUEST_MAGIC, 0);
  b.writeUInt16BE(h.flags, 4);
  b.writeUInt16BE(h.type, 6);
  h.handle.copy(b, 8, 0, 8);
  b.writeBigUInt64BE(h.offset, 16);
  b.writeUInt32BE(h.length, 24);
  return b;
}

export function encodeSimpleReply(handle: Buffer, error: number): Buffer {
  const b = Buffer.alloc(SIMPLE_REPLY_HEADER_SIZE);
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error, 4);
  handle.copy(b, 8, 0, 8);
  return b;
}

export function encodeChunkHeader(handle: Buffer, flags: number, type: number, payloadLength: number): Buffer {
  const b = Buffer.alloc(STRUCTURED_HEADER_SIZE);
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  handle.copy(b, 8, 0, 8);
  b.writeUInt32BE(payloadLength, 16);
  return b;
}

/** OFFSET_DATA chunk as [header+offset, data] so the data buffer is never copied. */
export function encodeOffsetDataChunk(handle: Buffer, flags: number, offset: number, data: Buffer): Buffer[] {
  const head = Buffer.alloc(STRUCTURED_HEADER_SIZE + 8);
  encodeChunkHeader(handle, flags, REPLY_TYPE.OFFSET_DATA, 8 + data.length).copy(head, 0);
  head.writeBigUInt64BE(BigInt(offset), STRUCTURED_HEADER_SIZE);
  return [head, data];
}

export function encodeOffsetHoleChunk(handle: Buffer, flags: number, offset: number, length: number): Buffer {
  const b = Buffer.alloc(STRUCTURED_HEADER_SIZE + 12);
  encodeChunkHeader(handle, flags, REPLY_TYPE.OFFSET_HOLE, 12).copy(b, 0);
  b.writeBigUInt64BE(BigInt(offset), STRUCTURED_HEADER_SIZE);
  b.writeUInt32BE(length, STRUCTURED_HEADER_SIZE + 8);
  return b;
}

export function encodeErrorChunk(handle: Buffer, error: number, message: string): Buffer {
  // The message is for humans; cut it well under the 4096-byte string limit.
  const m = Buffer.from(message, 'utf8').subarray(0, 1024);
  const b = Buffer.alloc(STRUCTURED_HEADER_SIZE + 6 + m.length);
  encodeChunkHeader(handle, REPLY_FLAG_DONE, REPLY_TYPE.ERROR, 6 + m.length).copy(b, 0);
  b.writeUInt32BE(error, STRUCTURED_HEADER_SIZE);
  b.writeUInt16BE(m.length, STRUCTURED_HEADER_SIZE + 4);
  m.copy(b, STRUCTURED_HEADER_SIZE + 6);
  return b;
}

export function encodeNoneChunk(handle: Buffer): Buffer {
  return encodeChunkHeader(handle, REPLY_FLAG_DONE, REPLY_TYPE.NONE, 0);
}

export interface StatusDescriptor {
  length: number;
  flags: number;
}

export function encodeBlockStatusChunk(handle: Buffer, flags: number, contextId: number, descriptors: StatusDescriptor[]): Buffer {
  const payload = 4 + 8 * descriptors.length;
  const b = Buffer.alloc(STRUCTURED_HEADER_SIZE + payload);
  encodeChunkHeader(handle, flags, REPLY_TYPE.BLOCK_STATUS, payload).copy(b, 0);
  b.writeUInt32BE(contextId, STRUCTURED_HEADER_SIZE);
  let at = STRUCTURED_HEADER_SIZE + 4;
  for (const d of descriptors) {
    b.writeUInt32BE(d.length, at);
    b.writeUInt32BE(d.flags, at + 4);
    at += 8;
  }
  return b;
}
