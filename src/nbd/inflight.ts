/**
 * Bounds what one connection holds in memory: the payload bytes of requests
 * parsed but not yet answered (WRITE data waiting to be applied, READ
 * replies waiting to leave the socket), and the number of such requests.
 *
 * The request parser waits here before reading the next payload, so a
 * client that pipelines faster than the device (or the rate limiter) allows
 * is slowed by TCP backpressure instead of growing our heap. One request of
 * up to `maxBytes` is always admitted when nothing else is in flight.
 */
interface Waiter {
  bytes: number;
  resolve(): void;
}

export class InflightLimit {
  private bytes = 0;
  private count = 0;
  private readonly waiters: Waiter[] = [];
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly maxBytes: number, private readonly maxCount: number) {}

  get active(): number {
    return this.count;
  }

  /** Bytes held by requests admitted and not yet done. */
  get held(): number {
    return this.bytes;
  }

  /** True while a request waits for admission. */
  get waiting(): boolean {
    return this.waiters.length > 0;
  }

  /** Undefined when admitted now, else a promise resolving at admission. */
  admit(bytes: number): Promise<void> | undefined {
    if (this.waiters.length === 0 && this.fits(bytes)) {
      this.take(bytes);
      return undefined;
    }
    return new Promise<void>((resolve) => this.waiters.push({ bytes, resolve }));
  }

  done(bytes: number): void {
    this.bytes -= bytes;
    this.count--;
    while (this.waiters.length > 0 && this.fits(this.waiters[0].bytes)) {
      const w = this.waiters.shift()!;
      this.take(w.bytes);
      w.resolve();
    }
    if (this.count === 0) for (const f of this.idleWaiters.splice(0)) f();
  }

  /** Resolves when nothing is in flight. */
  idle(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private fits(bytes: number): boolean {
    if (this.count === 0) return true;
    return this.count < this.maxCount && this.bytes + bytes <= this.maxBytes;
  }

  private take(bytes: number): void {
    this.bytes += bytes;
    this.count++;
  }
}
