/**
 * Exact-length reads from a socket, with backpressure.
 *
 * The NBD handshake and request parsing are naturally written as "wait for
 * the next N bytes". Node's streams push data at us instead, so this class
 * keeps what arrived in a chunk list and hands out exactly N bytes on demand.
 *
 * Memory is bounded: the socket is paused whenever more than `highWater`
 * bytes wait unread (or, during a large read, once that read is satisfied),
 * so a client that pipelines faster than we serve fills its own TCP window,
 * not our heap.
 */
import type { Duplex } from 'node:stream';
import { StrataError } from '../errors.js';

const DEFAULT_HIGH_WATER = 256 * 1024;

export function connectionClosed(): StrataError {
  return new StrataError('E_PROTOCOL', 'connection closed by peer', { closed: true });
}

export function isConnectionClosed(e: unknown): boolean {
  return e instanceof StrataError && e.code === 'E_PROTOCOL' && e.data.closed === true;
}

interface PendingRead {
  need: number;
  resolve(b: Buffer): void;
  reject(e: Error): void;
}

export class StreamReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private pending: PendingRead | null = null;
  private ended = false;
  private readonly onData = (chunk: Buffer) => this.push(chunk);
  private readonly onEnd = () => this.finish();

  constructor(private readonly stream: Duplex, private readonly highWater = DEFAULT_HIGH_WATER) {
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    stream.on('error', this.onEnd);
  }

  /** Resolves with exactly `n` bytes; rejects with a connection-closed error at EOF. */
  read(n: number): Promise<Buffer> {
    if (this.pending) return Promise.reject(new StrataError('E_INTERNAL', 'concurrent StreamReader.read'));
    if (this.buffered >= n) return Promise.resolve(this.take(n));
    if (this.ended) return Promise.reject(connectionClosed());
    return new Promise<Buffer>((resolve, reject) => {
      this.pending = { need: n, resolve, reject };
      this.stream.resume();
    });
  }

  /** Reads and drops `n` bytes without holding more than one chunk of them at a time. */
  async skip(n: number): Promise<void> {
    while (n > 0) {
      const step = Math.min(n, this.highWater);
      await this.read(step);
      n -= step;
    }
  }

  /**
   * Stops reading from the stream and returns anything already buffered, so
   * the caller can hand the raw socket to another consumer (the TLS upgrade).
   */
  detach(): Buffer {
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('close', this.onEnd);
    this.stream.off('error', this.onEnd);
    this.stream.pause();
    const rest = Buffer.concat(this.chunks);
    this.chunks = [];
    this.buffered = 0;
    this.ended = true;
    return rest;
  }

  private push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const p = this.pending;
    if (p && this.buffered >= p.need) {
      this.pending = null;
      p.resolve(this.take(p.need));
    }
    if (this.buffered >= this.highWater && (!this.pending || this.buffered >= this.pending.need)) this.stream.pause();
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    const p = this.pending;
    this.pending = null;
    p?.reject(connectionClosed());
  }

  private take(n: number): Buffer {
    let out: Buffer;
    const first = this.chunks[0];
    if (first && first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let at = 0;
      while (at < n) {
        const c = this.chunks[0];
        const used = Math.min(c.length, n - at);
        c.copy(out, at, 0, used);
        at += used;
        if (used === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(used);
      }
    }
    this.buffered -= n;
    if (!this.ended && this.buffered < this.highWater) this.stream.resume();
    return out;
  }
}
