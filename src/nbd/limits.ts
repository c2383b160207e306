/**
 * Per-export rate limits: token buckets for requests per second and bytes
 * per second, each holding one second's worth as burst.
 *
 * Waiting requests queue in arrival order behind one timer, so a limited
 * export delays only its own requests (other exports and connections keep
 * their event-loop turns), and the order of writes and flushes on an export
 * is the order they were received: a FLUSH never overtakes a WRITE it must
 * cover.
 */
import { StrataError } from '../errors.js';

export class TokenBucket {
  private tokens: number;
  private last: number;

  /** `rate` tokens per second; the bucket holds at most `rate` (one second of burst). */
  constructor(readonly rate: number, private readonly now: () => number = () => performance.now()) {
    if (!(rate > 0)) throw new StrataError('E_BAD_INPUT', `rate limit must be positive, got ${rate}`);
    this.tokens = rate;
    this.last = now();
  }

  /**
   * Milliseconds until `cost` can be taken (0 = now). A cost above the burst
   * only needs a full bucket and then leaves it in debt; otherwise a request
   * larger than one second's budget could never run.
   */
  delayFor(cost: number): number {
    this.refill();
    const need = Math.min(cost, this.rate);
    return this.tokens >= need ? 0 : ((need - this.tokens) / this.rate) * 1000;
  }

  take(cost: number): void {
    this.refill();
    this.tokens -= cost;
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.rate, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
  }
}

export interface RateLimits {
  iopsLimit?: number;
  bandwidthLimit?: number;
}

interface Waiter {
  bytes: number;
  resolve(): void;
  reject(e: Error): void;
}

export class RateLimiter {
  private readonly iops: TokenBucket | null;
  private readonly bandwidth: TokenBucket | null;
  private readonly queue: Waiter[] = [];
  private timer: NodeJS.Timeout | null = null;
  private closedWith: Error | null = null;

  constructor(limits: RateLimits, now?: () => number) {
    this.iops = limits.iopsLimit ? new TokenBucket(limits.iopsLimit, now) : null;
    this.bandwidth = limits.bandwidthLimit ? new TokenBucket(limits.bandwidthLimit, now) : null;
  }

  static needed(limits: RateLimits): boolean {
    return Boolean(limits.iopsLimit || limits.bandwidthLimit);
  }

  /**
   * Admits one request moving `bytes` of data. Returns undefined when it may
   * run now (the common, unlimited case stays synchronous), else a promise
   * that resolves at its turn or rejects when the limiter is shut down.
   */
  admit(bytes: number): Promise<void> | undefined {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (this.queue.length === 0 && this.delayFor(bytes) === 0) {
      this.take(bytes);
      return undefined;
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ bytes, resolve, reject });
      this.schedule();
    });
  }

  /** Fails every waiting request with `error` and refuses new ones. */
  shutdown(error: Error): void {
    this.closedWith = error;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const w of this.queue.splice(0)) w.reject(error);
  }

  private delayFor(bytes: number): number {
    return Math.max(this.iops?.delayFor(1) ?? 0, bytes > 0 ? this.bandwidth?.delayFor(bytes) ?? 0 : 0);
  }

  private take(bytes: number): void {
    this.iops?.take(1);
    if (bytes > 0) this.bandwidth?.take(bytes);
  }

  private schedule(): void {
    if (this.timer || this.queue.length === 0) return;
    const delay = this.delayFor(this.queue[0].bytes);
    // Timer resolution is ~1 ms; never spin on a zero delay.
    this.timer = setTimeout(() => this.pump(), Math.max(1, Math.ceil(delay)));
  }

  private pump(): void {
    this.timer = null;
    while (this.queue.length > 0 && this.delayFor(this.queue[0].bytes) === 0) {
      const w = this.queue.shift()!;
      this.take(w.bytes);
      w.resolve();
    }
    this.schedule();
  }
}
