/**
 * Long work in a command (import, export, check, gc, rm, reshapes): a
 * progress line on a terminal, and Ctrl-C turned into a clean stop.
 *
 * Library operations are synchronous (a flush or a reshape is one SQLite
 * transaction), and Node runs a JS signal handler only between turns of its
 * event loop, i.e. after the work. So SIGINT is caught natively as a flag
 * (store/native.ts watchInterrupt), and the OnProgress callback handed to the
 * operation, which it calls at safe points only, checks the flag and throws
 * E_INTERRUPTED. The operation then undoes itself as on any error, and the
 * error's one line says what was kept. A second Ctrl-C exits at once.
 * Without the native addon Ctrl-C ends the process at once, as before: the
 * store is crash-safe, so it loses nothing committed.
 */
import { StrataError } from '../errors.js';
import { faultDelay } from '../store/core/index.js';
import { watchInterrupt } from '../store/blocks/index.js';
import type { OnProgress } from '../store/core/index.js';
import type { Ctx } from './context.js';
import { progressLine } from './progress.js';

/**
 * Runs `work` with an OnProgress that draws `label`'s progress on a terminal
 * (never with --json or when stderr is not a TTY) and stops the work on
 * Ctrl-C with `interrupted: <kept(done, total)>`, exit status 130.
 */
export function longWork<T>(ctx: Ctx, label: string, kept: (done: number, total: number) => string, work: (onProgress: OnProgress) => T): T {
  const line = !ctx.json && process.stderr.isTTY ? progressLine(label, process.stderr) : null;
  const watch = watchInterrupt();
  const onProgress: OnProgress = (done, total) => {
    faultDelay('progress');
    if (watch?.interrupted()) {
      line?.clear();
      throw new StrataError('E_INTERRUPTED', `interrupted: ${kept(done, total)}`);
    }
    line?.update(done, total);
  };
  const end = () => {
    line?.clear();
    watch?.stop();
  };
  let pending = false;
  try {
    const r = work(onProgress);
    // Async work (an import read through qemu-nbd or from a pipe) keeps the line and the watch until it settles.
    if (r instanceof Promise) {
      pending = true;
      return r.finally(end) as T;
    }
    return r;
  } finally {
    if (!pending) end();
  }
}
