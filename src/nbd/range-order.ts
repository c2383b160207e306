/**
 * Which requests of one connection may run beside which.
 *
 * Requests whose range holds blocks still in a remote pack (a lazy clone)
 * wait for the device to fetch them; a failed fetch fails that request
 * (EIO). A request overlapping one still waiting (or queued) waits behind
 * it, so overlapping requests run in arrival order; any other runs at
 * once, so a slow remote stalls only the requests that need it, not the
 * guest's reads of local blocks or its writes elsewhere. NBD allows
 * replies in any order; a FLUSH covers the writes already answered,
 * which this never delays.
 */

/** One request, as the ordering sees it. */
export interface Ordered {
  /** First byte of its range. */
  start: number;
  /** End of its range (exclusive). An empty range (a FLUSH, a zero length) overlaps nothing and never waits. */
  end: number;
  /** Starts what must happen before it runs (a fetch of remote blocks), or null when nothing must. Called once nothing it overlaps is waiting. */
  prepare(): Promise<void> | null;
  /** Does the request and answers it. */
  run(): void;
  /** Answers it with the error its preparation failed with; run() is then never called. */
  fail(e: unknown): void;
}

interface Waiting {
  start: number;
  end: number;
  done: Promise<void>;
}

export class RangeOrder {
  private readonly pending = new Set<Waiting>();

  /** Requests submitted and not yet done that waited or are waiting: for a fetch, or behind another. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Runs `req` now (synchronously) if nothing it overlaps is waiting and it needs no preparation; else once both are done. */
  submit(req: Ordered): void {
    const { start, end } = req;
    const ahead = [...this.pending].filter((w) => start < w.end && w.start < end);
    if (ahead.length === 0) {
      const p = req.prepare();
      if (!p) return req.run();
      this.track({ start, end, done: prepareThenRun(p, req) });
      return;
    }
    // Behind every waiting request it overlaps, and registered now so that later overlapping ones queue behind it.
    this.track({
      start,
      end,
      done: Promise.all(ahead.map((x) => x.done)).then(() => {
        const p = req.prepare();
        return p ? prepareThenRun(p, req) : req.run();
      }),
    });
  }

  private track(w: Waiting): void {
    this.pending.add(w);
    void w.done.then(() => this.pending.delete(w));
  }
}

function prepareThenRun(p: Promise<void>, req: Ordered): Promise<void> {
  return p.then(
    () => req.run(),
    (e) => req.fail(e),
  );
}
