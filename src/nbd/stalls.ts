/**
 * Frees the server's in-flight budget from clients that hold it and make
 * no progress: a client that neither takes its replies off the socket nor
 * sends the payload of a WRITE it announced keeps its share of the budget
 * for as long as it stays connected, and a few such clients would stall
 * every other client's reads and writes.
 *
 * A holder is dropped only while another request waits for the budget, and
 * only after `stallMs` without progress (a reply handed to the kernel, or
 * bytes received): a client that is merely slow, or idle while nobody else
 * needs the memory, keeps its connection.
 */
import type { InflightLimit } from './inflight.js';
import type { Logger } from '../log.js';

/** How long a holder may go without progress while others wait; as long as nginx's send_timeout. */
export const DEFAULT_STALL_MS = 60_000;

export interface Holder {
  /** Connection id, for the log. */
  readonly id: number;
  /** Budget bytes this connection holds now. */
  heldBytes(): number;
  /** performance.now() of its last progress. */
  lastProgress(): number;
  drop(): void;
}

export class StallWatch {
  private readonly holders = new Set<Holder>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly budget: InflightLimit,
    private readonly stallMs: number,
    private readonly logger: Logger,
  ) {}

  /** Watches a connection until the returned function is called. */
  watch(h: Holder): () => void {
    this.holders.add(h);
    this.timer ??= setInterval(() => this.check(), Math.max(1, Math.min(this.stallMs / 4, 5_000))).unref();
    return () => {
      this.holders.delete(h);
      if (this.holders.size === 0) this.stop();
    };
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private check(): void {
    if (!this.budget.waiting) return;
    const now = performance.now();
    for (const h of this.holders) {
      const held = h.heldBytes();
      if (held === 0 || now - h.lastProgress() < this.stallMs) continue;
      this.logger.warn({ conn: h.id, heldBytes: held, stallMs: this.stallMs }, 'client dropped: it held in-flight memory others wait for, and neither read its replies nor sent data');
      this.holders.delete(h);
      h.drop();
    }
  }
}
