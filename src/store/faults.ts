/**
 * Fault injection for crash and disk-full tests. Off unless the environment
 * asks for it; read once when the module loads.
 *
 *   STRATA_FAULT=flush.after-data-sync      SIGKILL at the first hit of that point
 *   STRATA_FAULT=flush.after-commit:3       SIGKILL at its third hit
 *   STRATA_FAULT=datafile.write:enospc:2    the second data-file write fails with ENOSPC
 *   STRATA_FAULT=progress:sleep:50          every faultDelay('progress') sleeps 50 ms: a long
 *                                           operation, for tests, without a large input
 *   STRATA_FAULT=push.before-manifest:stop  the process stops itself (SIGSTOP) at the first
 *                                           faultDelay there: a test holds it at that step,
 *                                           waits until it is stopped, and SIGCONTs it
 *   STRATA_FAULT_LOG=FILE                   append the name of every point reached to FILE
 *
 * Points are named `<operation>.<step>`; each mutating operation names its
 * steps where they happen (see `grep -r faultPoint src`). A kill is a real
 * SIGKILL, so no finally block, exit handler or buffered write runs: exactly
 * what a crash or an OOM kill leaves behind.
 */
import fs from 'node:fs';

interface Spec {
  name: string;
  action: 'kill' | 'enospc' | 'sleep' | 'stop';
  /** Fire at this hit of `name` (1-based); for sleep, the milliseconds of every hit. */
  at: number;
}

function parse(raw: string | undefined): Spec | null {
  if (!raw) return null;
  const [name, a, b] = raw.split(':');
  if (a === 'enospc') return { name, action: 'enospc', at: Number(b ?? 1) || 1 };
  if (a === 'sleep') return { name, action: 'sleep', at: Number(b ?? 10) || 10 };
  if (a === 'stop') return { name, action: 'stop', at: 1 };
  return { name, action: 'kill', at: Number(a ?? 1) || 1 };
}

const spec = parse(process.env.STRATA_FAULT);
const log = process.env.STRATA_FAULT_LOG || null;
const hits = new Map<string, number>();

function hit(name: string): number {
  if (log) fs.appendFileSync(log, `${name}\n`);
  const n = (hits.get(name) ?? 0) + 1;
  hits.set(name, n);
  return n;
}

/** A step of a mutating operation: the process dies here if STRATA_FAULT names it. */
export function faultPoint(name: string): void {
  if (spec === null && log === null) return;
  const n = hit(name);
  if (spec?.action === 'kill' && spec.name === name && spec.at === n) process.kill(process.pid, 'SIGKILL');
}

/** A place that STRATA_FAULT=<name>:sleep:MS slows down, or <name>:stop holds (once). Not a kill point, and not logged. */
export function faultDelay(name: string): void {
  if (spec?.name !== name) return;
  if (spec.action === 'sleep') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, spec.at);
  else if (spec.action === 'stop' && (hits.get(name) ?? 0) === 0) {
    hits.set(name, 1);
    // A stop the test can see (/proc state T) and end with SIGCONT: a hold that waits for no clock.
    process.kill(process.pid, 'SIGSTOP');
  }
}

/** An I/O call that may be made to fail: returns the errno code to raise, or null. */
export function faultError(name: string): 'ENOSPC' | null {
  if (spec === null && log === null) return null;
  const n = hit(name);
  return spec?.action === 'enospc' && spec.name === name && n >= spec.at ? 'ENOSPC' : null;
}
