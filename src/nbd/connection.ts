/**
 * One client connection from accept to close: handshake, transmission,
 * cleanup. Whatever a client sends, the worst outcome is that this
 * connection is dropped; nothing here throws to the server.
 */
import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import { isStrataError } from '../errors.js';
import { Channel } from './channel.js';
import type { ExportRegistry } from './exports.js';
import { negotiate, refuseHandshake, type Session } from './handshake.js';
import type { InflightLimit } from './inflight.js';
import type { StallWatch } from './stalls.js';
import type { Logger } from '../log.js';
import { isConnectionClosed } from './stream-reader.js';
import { serveTransmission } from './transmission.js';

/** A client that has not finished the handshake by then is dropped. */
const HANDSHAKE_TIMEOUT_MS = 30_000;
/** A refused client gets this long to hear why (in reply to its options) and go. */
const REFUSAL_TIMEOUT_MS = 5_000;

export interface ConnectionDeps {
  registry: ExportRegistry;
  maxPayload: number;
  /** Request and reply bytes held in memory, shared by every connection of the server. */
  budget: InflightLimit;
  stalls: StallWatch;
  tls: SecureContext | null;
  logger: Logger;
  isShuttingDown(): boolean;
}

export class Connection {
  readonly channel: Channel;
  readonly finished: Promise<void>;

  constructor(socket: Socket, readonly id: number, private readonly deps: ConnectionDeps) {
    socket.setNoDelay?.(true);
    this.channel = new Channel(socket);
    this.finished = this.run();
  }

  /** Server shutdown: let queued replies out, then close. */
  shutdown(): void {
    this.channel.end();
  }

  destroy(): void {
    this.channel.destroy();
  }

  private async run(): Promise<void> {
    const log = this.deps.logger;
    let session: Session | null = null;
    const timer = setTimeout(() => {
      log.warn({ conn: this.id }, 'handshake timed out');
      this.channel.destroy();
    }, HANDSHAKE_TIMEOUT_MS);
    try {
      session = await negotiate(this.channel, this.deps);
      clearTimeout(timer);
      if (!session) {
        this.channel.end();
        return;
      }
      log.debug({ conn: this.id, export: session.export.name, structured: session.structuredReplies }, 'transmission started');
      await serveTransmission(this.channel, session, { ...this.deps, connectionId: this.id });
    } catch (e) {
      if (!isConnectionClosed(e)) {
        const level = isStrataError(e, 'E_PROTOCOL') ? 'warn' : 'error';
        log[level]({ conn: this.id, err: isStrataError(e) ? e.toJSON() : String(e) }, 'connection dropped');
      }
      this.channel.destroy();
    } finally {
      clearTimeout(timer);
      if (session) this.deps.registry.release(session.export);
      log.debug({ conn: this.id }, 'connection closed');
    }
  }
}

/**
 * A connection the server will not serve: the client hears `message` in the
 * handshake (see refuseHandshake), then the socket closes. Resolves once it
 * has closed.
 */
export async function refuseConnection(socket: Socket, message: string): Promise<void> {
  const ch = new Channel(socket);
  const closed = new Promise<void>((resolve) => (ch.isClosed ? resolve() : socket.once('close', () => resolve())));
  const timer = setTimeout(() => ch.destroy(), REFUSAL_TIMEOUT_MS);
  try {
    await refuseHandshake(ch, message);
    ch.end();
  } catch {
    ch.destroy();
  }
  await closed;
  clearTimeout(timer);
}
