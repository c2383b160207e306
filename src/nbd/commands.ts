/**
 * Validates and executes one transmission-phase request against the device
 * and builds its reply. Synchronous, like BlockDevice: by the time execute()
 * returns, the device has done the work and the reply bytes exist.
 */
import type { BlockDevice } from '../image/device.js';
import { errnoFor, messageFor } from './errno.js';
import { bitmapDescriptors, runsFor, statusDescriptors } from './extents.js';
import type { BoundContext } from './meta-contexts.js';
import {
  CMD,
  CMD_FLAG,
  NBD_ERRNO,
  REPLY_FLAG_DONE,
  encodeBlockStatusChunk,
  encodeErrorChunk,
  encodeNoneChunk,
  encodeOffsetDataChunk,
  encodeOffsetHoleChunk,
  encodeSimpleReply,
} from './protocol.js';

export interface Request {
  flags: number;
  type: number;
  handle: Buffer;
  offset: bigint;
  length: number;
  /** WRITE only. */
  payload?: Buffer;
}

export interface CommandContext {
  device: BlockDevice;
  structuredReplies: boolean;
  /** Selected metadata contexts: BLOCK_STATUS answers one chunk for each, in this order. */
  contexts: readonly BoundContext[];
  maxPayload: number;
  /** Told of each request the device failed, before its error reply goes out: for the server's log. */
  onFailure?(req: Request, e: unknown): void;
}

/** A READ split into more pieces than this is sent as one data chunk: fewer, larger chunks beat fine-grained sparseness. */
const MAX_READ_CHUNKS = 64;
/** BLOCK_STATUS may answer with fewer extents than asked; clients continue from where we stopped. */
const MAX_STATUS_DESCRIPTORS = 4096;

const ALLOWED_FLAGS: Record<number, number> = {
  [CMD.READ]: CMD_FLAG.FUA | CMD_FLAG.DF,
  [CMD.WRITE]: CMD_FLAG.FUA,
  [CMD.FLUSH]: CMD_FLAG.FUA,
  [CMD.TRIM]: CMD_FLAG.FUA,
  [CMD.CACHE]: CMD_FLAG.FUA,
  [CMD.WRITE_ZEROES]: CMD_FLAG.FUA | CMD_FLAG.NO_HOLE | CMD_FLAG.FAST_ZERO,
  [CMD.BLOCK_STATUS]: CMD_FLAG.FUA | CMD_FLAG.REQ_ONE,
};

const WRITES = new Set<number>([CMD.WRITE, CMD.TRIM, CMD.WRITE_ZEROES]);

/** Bytes the request moves, for the bandwidth limit. */
export function dataBytes(req: Request): number {
  return req.type === CMD.READ || req.type === CMD.WRITE ? req.length : 0;
}

/** Returns 0 when the request may run, else the NBD error to answer with. */
export function validate(req: Request, ctx: CommandContext): number {
  const allowed = ALLOWED_FLAGS[req.type];
  if (allowed === undefined) return NBD_ERRNO.EINVAL;
  if (req.flags & ~allowed) return NBD_ERRNO.EINVAL;
  if (req.flags & CMD_FLAG.DF && !ctx.structuredReplies) return NBD_ERRNO.EINVAL;
  if (WRITES.has(req.type) && ctx.device.readOnly) return NBD_ERRNO.EPERM;
  if (req.type === CMD.FLUSH) return 0;
  if (req.type === CMD.BLOCK_STATUS && (ctx.contexts.length === 0 || req.length === 0)) return NBD_ERRNO.EINVAL;
  if (req.offset + BigInt(req.length) > BigInt(ctx.device.size)) {
    // Per the spec: ENOSPC for writing past the end, EINVAL for everything else.
    return req.type === CMD.WRITE || req.type === CMD.WRITE_ZEROES ? NBD_ERRNO.ENOSPC : NBD_ERRNO.EINVAL;
  }
  if (req.type === CMD.READ && req.length > ctx.maxPayload) return NBD_ERRNO.EINVAL;
  return 0;
}

export function errorReply(req: Request, ctx: CommandContext, errno: number, message: string): Buffer {
  return ctx.structuredReplies ? encodeErrorChunk(req.handle, errno, message) : encodeSimpleReply(req.handle, errno);
}

/** Runs a validated request; device failures become error replies, never exceptions. */
export function execute(req: Request, ctx: CommandContext): Buffer[] {
  const { device } = ctx;
  const offset = Number(req.offset);
  const ok = () => [encodeSimpleReply(req.handle, 0)];
  try {
    switch (req.type) {
      case CMD.READ:
        return readReply(req, ctx, offset);
      case CMD.WRITE:
        if (req.length > 0) device.write(offset, req.payload!);
        if (req.flags & CMD_FLAG.FUA) device.flush();
        return ok();
      case CMD.WRITE_ZEROES:
        // NO_HOLE cannot be honoured literally: strata never stores zero
        // blocks, and that is also why FAST_ZERO always succeeds.
        if (req.length > 0) device.writeZeroes(offset, req.length);
        if (req.flags & CMD_FLAG.FUA) device.flush();
        return ok();
      case CMD.TRIM:
        if (req.length > 0) device.discard(offset, req.length);
        if (req.flags & CMD_FLAG.FUA) device.flush();
        return ok();
      case CMD.FLUSH:
        device.flush();
        return ok();
      case CMD.CACHE:
        // Reads are served from strata's own caches; there is nothing to warm.
        return ok();
      case CMD.BLOCK_STATUS:
        return blockStatusReply(req, ctx, offset);
      default:
        return [errorReply(req, ctx, NBD_ERRNO.EINVAL, 'unknown command')];
    }
  } catch (e) {
    ctx.onFailure?.(req, e);
    return [errorReply(req, ctx, errnoFor(e), messageFor(e))];
  }
}

function readReply(req: Request, ctx: CommandContext, offset: number): Buffer[] {
  const { device } = ctx;
  if (!ctx.structuredReplies) {
    const data = req.length > 0 ? device.read(offset, req.length) : Buffer.alloc(0);
    return [encodeSimpleReply(req.handle, 0), data];
  }
  if (req.length === 0) return [encodeNoneChunk(req.handle)];
  let runs = req.flags & CMD_FLAG.DF ? null : runsFor(device, offset, req.length);
  if (runs && runs.length > MAX_READ_CHUNKS) runs = null;
  if (!runs) return encodeOffsetDataChunk(req.handle, REPLY_FLAG_DONE, offset, device.read(offset, req.length));
  // Read everything before sending anything: an error then costs one error
  // chunk instead of a half-sent reply.
  const parts: Buffer[] = [];
  runs.forEach((r, i) => {
    const flags = i === runs!.length - 1 ? REPLY_FLAG_DONE : 0;
    if (r.kind === 'data') parts.push(...encodeOffsetDataChunk(req.handle, flags, r.offset, device.read(r.offset, r.length)));
    else parts.push(encodeOffsetHoleChunk(req.handle, flags, r.offset, r.length));
  });
  return parts;
}

/**
 * One chunk per selected context, the last flagged DONE. Every descriptor
 * lies within the request (so REQ_ONE's "no longer than the request" holds),
 * and each is at most the request's 32-bit length.
 */
function blockStatusReply(req: Request, ctx: CommandContext, offset: number): Buffer[] {
  const max = req.flags & CMD_FLAG.REQ_ONE ? 1 : MAX_STATUS_DESCRIPTORS;
  // Computed before anything is sent: a failure then costs one error chunk, not half a reply.
  const all = ctx.contexts.map((c) =>
    c.kind === 'allocation' ? statusDescriptors(runsFor(ctx.device, offset, req.length), max) : bitmapDescriptors(c.tracker.runs(offset, req.length, max)),
  );
  return all.map((d, k) => encodeBlockStatusChunk(req.handle, k === all.length - 1 ? REPLY_FLAG_DONE : 0, ctx.contexts[k].id, d));
}
