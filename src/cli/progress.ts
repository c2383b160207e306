/**
 * A progress line on a terminal, like `qemu-img convert -p` or `docker pull`:
 *
 *   importing web.raw  [########------------]  41%  420.0 MiB / 1.00 GiB  96.3 MiB/s  ETA 6s
 *
 * The work it reports on is synchronous (one SQLite transaction, a copy
 * loop), so nothing here uses timers: each update draws at once if enough
 * time has passed since the last draw, with a plain synchronous write (Node
 * writes to a TTY synchronously). The line is redrawn in place with \r and
 * erased when the work ends, so only the command's own output remains.
 */
import { humanBytes } from './parse.js';

export interface ProgressLine {
  update(done: number, total: number): void;
  /** Erases the line if it was drawn. */
  clear(): void;
}

/** Where a progress line goes: a TTY stream, or anything with the same members. */
export interface ProgressOut {
  write(s: string): unknown;
  columns?: number;
}

/** No line at all for work that ends sooner than this: a quick command prints nothing extra. */
const FIRST_DRAW_MS = 250;
/** Redraws at most this often. */
const REDRAW_MS = 100;
/** Rate over about this much recent time, so the ETA follows changes of pace. */
const RATE_WINDOW_MS = 5000;
/** Bar width: as wide as the line leaves room for, within these bounds, else none. */
const BAR_MIN = 10;
const BAR_MAX = 30;

function duration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  s = Math.ceil(s);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** The text of one line, fitted to `width` columns: the bar narrows, then goes, then the line is cut. */
export function formatProgress(label: string, done: number, total: number, rate: number, width: number): string {
  const frac = total > 0 ? Math.min(1, done / total) : 0;
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  const amounts = `${humanBytes(done)} / ${humanBytes(total)}`;
  const speed = rate > 0 ? `  ${humanBytes(Math.round(rate))}/s  ETA ${duration((total - done) / rate)}` : '';
  const tail = `  ${pct}  ${amounts}${speed}`;
  const room = Math.min(BAR_MAX, width - label.length - tail.length - 4);
  if (room >= BAR_MIN) {
    const filled = Math.round(frac * room);
    return `${label}  [${'#'.repeat(filled)}${'-'.repeat(room - filled)}]${tail}`;
  }
  const line = `${label}${tail}`;
  return line.length > width ? line.slice(0, Math.max(0, width - 1)) + '…' : line;
}

export function progressLine(label: string, out: ProgressOut, now: () => number = () => performance.now()): ProgressLine {
  const start = now();
  let drawn = false;
  let lastDraw = -Infinity;
  let lastTotal = -1;
  let lastDone = 0;
  /** Recent (time, done) pairs, oldest first, for the rate. */
  let samples: [number, number][] = [];
  return {
    update(done, total) {
      const t = now();
      // A new total or a step back is a new phase (the next file of a chain): the old rate says nothing of it.
      if (total !== lastTotal || done < lastDone) samples = [];
      lastTotal = total;
      lastDone = done;
      if (t - start < FIRST_DRAW_MS || t - lastDraw < REDRAW_MS) {
        if (samples.length === 0) samples.push([t, done]);
        return;
      }
      samples.push([t, done]);
      while (samples.length > 2 && t - samples[1][0] >= RATE_WINDOW_MS) samples.shift();
      const [t0, d0] = samples[0];
      const rate = t - t0 >= 200 ? ((done - d0) * 1000) / (t - t0) : 0;
      out.write(`\r${formatProgress(label, done, total, rate, (out.columns || 80) - 1)}\x1b[K`);
      drawn = true;
      lastDraw = t;
    },
    clear() {
      if (drawn) out.write('\r\x1b[K');
      drawn = false;
    },
  };
}
