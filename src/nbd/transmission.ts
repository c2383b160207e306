/**
 * The transmission phase of one connection: parse requests as they arrive,
 * run each in arrival order (but for those that wait for a remote fetch:
 * range-order.ts), answer each as soon as it completes.
 *
 * The device is synchronous, so an unlimited export answers a request before
 * the next one is parsed. With a rate limit, requests wait their turn on the
 * export's limiter while parsing continues (bounded by InflightLimit), and
 * replies go out in completion order, each tagged with its handle.
 *
 * Memory: a request's payload (WRITE) or reply (READ) is reserved before
 * it is taken on, on this connection's InflightLimit and then on the
 * server's budget shared by all connections, and freed only once the socket
 * has taken the reply. A client that does not read its replies therefore
 * stops being read itself (TCP backpressure), and all such clients together
 * hold no more than the server's budget.
 *
 * What ends a connection: NBD_CMD_DISC (after in-flight requests are
 * answered), EOF, a bad request magic (we can no longer find request
 * boundaries), or a WRITE larger than maxPayload (answered with EINVAL first;
 * reading its payload would break the memory bound).
 */
import type { Channel } from './channel.js';
import { type CommandContext, type Request, dataBytes, errorReply, execute, validate } from './commands.js';
import { InflightLimit } from './inflight.js';
import { RangeOrder } from './range-order.js';
import type { StallWatch } from './stalls.js';
import { errnoFor, messageFor } from './errno.js';
import { damagedSlotOf } from '../store/blocks/index.js';
import type { Logger } from '../log.js';
import { CMD, NBD_ERRNO, REQUEST_HEADER_SIZE, REQUEST_MAGIC, decodeRequestHeader } from './protocol.js';
import type { Session } from './handshake.js';
import { isConnectionClosed } from './stream-reader.js';

/** Requests parsed but unanswered, per connection; fio and qemu use well under this. */
const MAX_INFLIGHT_REQUESTS = 256;

export interface TransmissionConfig {
  maxPayload: number;
  budget: InflightLimit;
  /** Drops this connection if it holds budget bytes without progress while others wait for them. */
  stalls: StallWatch;
  /** For the log lines. */
  connectionId: number;
  logger: Logger;
  isShuttingDown(): boolean;
}

export async function serveTransmission(ch: Channel, session: Session, cfg: TransmissionConfig): Promise<void> {
  const ctx: CommandContext = {
    device: session.export.device,
    structuredReplies: session.structuredReplies,
    contexts: session.contexts,
    maxPayload: cfg.maxPayload,
    // A damaged block is the operator's to know of (the client sees only EIO): warn, naming where.
    onFailure: (req, e) => {
      if (damagedSlotOf(e) !== undefined) cfg.logger.warn({ export: session.export.name, offset: String(req.offset), length: req.length, err: messageFor(e) }, 'read of a damaged block answered EIO');
    },
  };
  const limiter = session.export.limiter;
  const inflight = new InflightLimit(cfg.maxPayload, MAX_INFLIGHT_REQUESTS);
  const log = cfg.logger;
  const budget = cfg.budget;
  /** Budget bytes this connection holds, and when it last made progress (a reply taken, bytes received). */
  let sharedHeld = 0;
  let lastProgress = performance.now();
  const progress = () => (lastProgress = performance.now());
  /** Frees what a request held, on this connection and in the server's budget. */
  const release = (held: number) => {
    inflight.done(held);
    if (held > 0) {
      budget.done(held);
      sharedHeld -= held;
      progress();
    }
  };

  /** Sends the reply, then frees the request's memory once the socket has taken it. */
  const send = (parts: Buffer[], held: number) => ch.write(parts, () => release(held));

  const run = (req: Request, held: number) => {
    // The client is gone: nobody will see a reply, and requests it never got
    // an answer for carry no promise, so skip the work.
    if (ch.isClosed) {
      release(held);
      return;
    }
    if (cfg.isShuttingDown()) {
      send([errorReply(req, ctx, NBD_ERRNO.ESHUTDOWN, 'server is shutting down')], held);
      return;
    }
    const parts = execute(req, ctx);
    req.payload = undefined;
    send(parts, held);
  };

  /** Which requests may run beside which, and overlap waits (range-order.ts). */
  const order = new RangeOrder();
  const ordered = (req: Request, held: number) => {
    const start = Number(req.offset);
    // FLUSH covers only the writes already answered: it orders with nothing.
    const ranged = req.length > 0 && req.type !== CMD.FLUSH && req.type !== CMD.DISC;
    order.submit({
      start,
      end: ranged ? start + req.length : start,
      prepare: () => ((req.type === CMD.READ || req.type === CMD.WRITE) && ctx.device.prepare ? ctx.device.prepare(start, req.length, req.type === CMD.WRITE) : null),
      run: () => run(req, held),
      fail: (e) => {
        log.debug({ offset: String(req.offset), length: req.length, err: messageFor(e) }, 'fetch for request failed');
        send([errorReply(req, ctx, errnoFor(e), messageFor(e))], held);
      },
    });
  };

  const dispatch = (req: Request, held: number) => {
    const errno = validate(req, ctx);
    if (errno !== 0) {
      log.debug({ type: req.type, offset: String(req.offset), length: req.length, errno }, 'request rejected');
      send([errorReply(req, ctx, errno, 'invalid request')], held);
      return;
    }
    const wait = limiter?.admit(dataBytes(req));
    if (!wait) return ordered(req, held);
    wait.then(
      () => ordered(req, held),
      () => send([errorReply(req, ctx, NBD_ERRNO.ESHUTDOWN, 'export is closing')], held),
    );
  };

  /**
   * Waits for `held` bytes of the server's budget; false if the client went
   * away first (the bytes, once granted, go straight back).
   */
  const admitShared = (held: number): boolean | Promise<boolean> => {
    const granted = budget.admit(held);
    if (!granted) {
      sharedHeld += held;
      return true;
    }
    log.debug({ conn: cfg.connectionId, bytes: held }, 'request waits for the server-wide in-flight budget');
    return new Promise((resolve) => {
      const cancel = ch.onClose(() => {
        void granted.then(() => budget.done(held));
        resolve(false);
      });
      void granted.then(() => {
        cancel();
        sharedHeld += held;
        progress();
        resolve(true);
      });
    });
  };

  const socket = ch.socket;
  socket.on('data', progress);
  const unwatch = cfg.stalls.watch({ id: cfg.connectionId, heldBytes: () => sharedHeld, lastProgress: () => lastProgress, drop: () => ch.destroy() });

  try {
    while (!ch.isClosed && !cfg.isShuttingDown()) {
      const head = decodeRequestHeader(await ch.reader.read(REQUEST_HEADER_SIZE));
      if (head.magic !== REQUEST_MAGIC) {
        log.warn({ magic: head.magic }, 'bad request magic; dropping connection');
        ch.destroy();
        return;
      }
      if (head.type === CMD.DISC) break;
      const req: Request = { flags: head.flags, type: head.type, handle: head.handle, offset: head.offset, length: head.length };

      if (head.type === CMD.WRITE && head.length > cfg.maxPayload) {
        log.warn({ length: head.length, maxPayload: cfg.maxPayload }, 'write payload exceeds maxPayload; disconnecting');
        await inflight.idle();
        ch.write(errorReply(req, ctx, NBD_ERRNO.EINVAL, 'write larger than the maximum payload'));
        ch.end();
        return;
      }
      // Reserve the payload (WRITE) or reply (READ) memory before taking it on.
      const held = head.type === CMD.WRITE || (head.type === CMD.READ && head.length <= cfg.maxPayload) ? head.length : 0;
      const admitted = inflight.admit(held);
      if (admitted) await admitted;
      if (held > 0 && !(await admitShared(held))) {
        inflight.done(held);
        break;
      }
      if (head.type === CMD.WRITE) {
        try {
          req.payload = await ch.reader.read(head.length);
        } catch (e) {
          release(held); // admitted but never dispatched
          throw e;
        }
      }
      dispatch(req, held);
    }
    // NBD_CMD_DISC: answer everything outstanding, then hang up.
    await inflight.idle();
    ch.end();
  } catch (e) {
    if (!isConnectionClosed(e)) throw e;
  } finally {
    // The caller releases the export after this returns; nothing may still
    // be queued to touch its device by then.
    await inflight.idle();
    unwatch();
    socket.off('data', progress);
  }
}
