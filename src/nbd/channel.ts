/**
 * One client's byte channel: the socket we write to and the reader we parse
 * from. It exists as its own object because NBD_OPT_STARTTLS swaps both
 * mid-handshake, and everything after must use the encrypted pair.
 */
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { StrataError } from '../errors.js';
import { StreamReader } from './stream-reader.js';

/** Corked bytes past which replies are sent without waiting for the end of the event-loop turn. */
const UNCORK_BYTES = 256 * 1024;

export class Channel {
  reader: StreamReader;
  private closed = false;
  private corked = false;
  private corkedBytes = 0;

  constructor(public socket: Duplex) {
    this.reader = new StreamReader(socket);
    socket.on('close', () => {
      this.closed = true;
    });
    // Errors surface as 'close' to the reader; without a listener they would
    // be thrown as uncaught exceptions and take the process down.
    socket.on('error', () => {});
  }

  get isClosed(): boolean {
    return this.closed || this.socket.destroyed;
  }

  /** Calls `f` once the client's socket has closed (at once if it has); returns what cancels that. */
  onClose(f: () => void): () => void {
    if (this.isClosed) {
      f();
      return () => {};
    }
    const s = this.socket;
    s.once('close', f);
    return () => s.off('close', f);
  }

  /**
   * Queues buffers as one message; `done` runs once they left our buffers (or
   * the socket died). Messages queued in one turn of the event loop go out
   * together: the socket stays corked until setImmediate, so a burst of
   * replies to pipelined requests is one writev, not one syscall each.
   */
  write(parts: Buffer | Buffer[], done?: () => void): void {
    const list = Array.isArray(parts) ? parts : [parts];
    if (this.isClosed || this.socket.writableEnded) {
      done?.();
      return;
    }
    const s = this.socket as Duplex & { cork?: () => void; uncork?: () => void };
    if (!this.corked && s.cork) {
      this.corked = true;
      this.corkedBytes = 0;
      s.cork();
      setImmediate(() => this.uncork());
    }
    for (let i = 0; i < list.length; i++) {
      this.corkedBytes += list[i].length;
      if (i === list.length - 1) s.write(list[i], () => done?.());
      else s.write(list[i]);
    }
    // Large replies (1 MiB reads) go out at once: holding a burst of them back would make the
    // client wait for the last read before it gets the first.
    if (this.corked && this.corkedBytes >= UNCORK_BYTES) this.uncork();
  }

  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    (this.socket as Duplex & { uncork?: () => void }).uncork?.();
  }

  /** Graceful close once queued writes are out. */
  end(): void {
    if (!this.isClosed) this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /**
   * Upgrades to TLS after the NBD_REP_ACK for NBD_OPT_STARTTLS was queued.
   * The client may not send anything between its option and our ACK, so any
   * byte already buffered here is a protocol violation.
   */
  async startTls(context: tls.SecureContext, timeoutMs = 10_000): Promise<void> {
    const leftover = this.reader.detach();
    if (leftover.length > 0) throw new StrataError('E_PROTOCOL', 'client sent data before the STARTTLS reply');
    const secure = new tls.TLSSocket(this.socket as import('node:net').Socket, {
      isServer: true,
      secureContext: context,
      minVersion: 'TLSv1.2',
    } as tls.TLSSocketOptions);
    // A failed handshake can emit more than one error; none may go unheard.
    secure.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new StrataError('E_PROTOCOL', 'TLS handshake timed out')), timeoutMs);
      secure.once('secure', () => {
        clearTimeout(timer);
        resolve();
      });
      secure.once('error', (e) => {
        clearTimeout(timer);
        reject(new StrataError('E_PROTOCOL', `TLS handshake failed: ${e.message}`));
      });
      secure.once('close', () => {
        clearTimeout(timer);
        reject(new StrataError('E_PROTOCOL', 'connection closed during TLS handshake'));
      });
    });
    this.socket = secure;
    this.reader = new StreamReader(secure);
    secure.on('close', () => {
      this.closed = true;
    });
  }
}
