/**
 * Fault injection for crash, disk-full and two-process tests. Off unless the
 * environment asks for it; read once when the module loads.
 *
 *   STRATA_FAULT=flush.after-data-sync      SIGKILL at the first hit of that point
 *   STRATA_FAULT=flush.after-commit:3       SIGKILL at its third hit
 *   STRATA_FAULT=datafile.write:enospc:2    the second data-file write fails with ENOSPC
 *   STRATA_FAULT=progress:sleep:50          every faultDelay('progress') sleeps 50 ms: a long
 *                                           operation, for tests, without a large input
 *   STRATA_FAULT=push.before-manifest:stop  the process stops itself (SIGSTOP) at the first
 *                                           faultDelay there: a test holds it at that step,
 *                                           waits until it is stopped, and SIGCONTs it
 *   STRATA_FAULT=import.after-flush:pause   at the first hit (`:pause:N` the Nth), announce the
 *                                           point on STRATA_FAULT_CHANNEL and wait for the answer
 *   STRATA_FAULT=datafile.sync:skip         every data-file sync is left out (faulty-blocks.ts): a build that
 *                                           leaves out one fdatasync, for the crash-state test to
 *                                           prove it catches a lost write (test/crash/)
 *   STRATA_FAULT=datafile.write:pause:2     any action at a data-file point (datafile.write,
 *                                           datafile.sync): the store then opens its data files
 *                                           through FaultyBlocks (blocks/faulty-blocks.ts)
 *   STRATA_FAULT_LOG=FILE                   append the name of every point reached to FILE
 *
 * Points are named `<operation>.<step>`; each mutating operation names its
 * steps where they happen (see `grep -r faultPoint src`). A kill is a real
 * SIGKILL, so no finally block, exit handler or buffered write runs: exactly
 * what a crash or an OOM kill leaves behind.
 *
 * A pause is how a test holds a process at a known step instead of guessing
 * where it is after a sleep: STRATA_FAULT_CHANNEL names a directory with two
 * FIFOs the test made and holds open (test/helpers/fault.ts). The process
 * writes `<point> <pid>` to `reached` and blocks until a line arrives on
 * `release`. If the test is gone (nobody holds the FIFOs) the process kills
 * itself rather than run on unobserved or wait forever.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface Spec {
  name: string;
  action: 'kill' | 'enospc' | 'sleep' | 'stop' | 'pause' | 'skip';
  /** Fire at this hit of `name` (1-based); for sleep, the milliseconds of every hit. */
  at: number;
}

function parse(raw: string | undefined): Spec | null {
  if (!raw) return null;
  const [name, a, b] = raw.split(':');
  if (a === 'enospc') return { name, action: 'enospc', at: Number(b ?? 1) || 1 };
  if (a === 'sleep') return { name, action: 'sleep', at: Number(b ?? 10) || 10 };
  if (a === 'stop') return { name, action: 'stop', at: 1 };
  if (a === 'skip') return { name, action: 'skip', at: 1 };
  if (a === 'pause') return { name, action: 'pause', at: Number(b ?? 1) || 1 };
  return { name, action: 'kill', at: Number(a ?? 1) || 1 };
}

const spec = parse(process.env.STRATA_FAULT);
const log = process.env.STRATA_FAULT_LOG || null;
const channel = process.env.STRATA_FAULT_CHANNEL || null;
const hits = new Map<string, number>();

function hit(name: string): number {
  if (log) fs.appendFileSync(log, `${name}\n`);
  const n = (hits.get(name) ?? 0) + 1;
  hits.set(name, n);
  return n;
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The test is not listening (any more): stop as a crash would, never run on or hang unobserved. */
function orphaned(name: string, why: string): never {
  fs.writeSync(2, `strata: fault point ${name}: ${why}; stopping\n`);
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
}

/**
 * Announces `name` on the channel and blocks until the test answers. Both
 * FIFOs are opened non-blocking: an open or read that blocked would hang for
 * ever once the test is gone, where these see ENXIO or end-of-file instead.
 */
function pause(name: string): void {
  if (!channel) orphaned(name, 'STRATA_FAULT asks for a pause but STRATA_FAULT_CHANNEL is not set');
  const { O_WRONLY, O_RDONLY, O_NONBLOCK } = fs.constants;
  let out: number;
  try {
    out = fs.openSync(path.join(channel, 'reached'), O_WRONLY | O_NONBLOCK);
  } catch (e) {
    orphaned(name, `nobody listens on ${channel} (${(e as NodeJS.ErrnoException).code})`);
  }
  const release = fs.openSync(path.join(channel, 'release'), O_RDONLY | O_NONBLOCK);
  // Under PIPE_BUF bytes: one atomic write, never interleaved with another process's.
  fs.writeSync(out, `${name} ${process.pid}\n`);
  fs.closeSync(out);
  const buf = Buffer.alloc(64);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(release, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      // Synchronous callers (a transaction, a flush) cannot await: wait here, on this thread.
      sleepMs(2);
      continue;
    }
    fs.closeSync(release);
    if (n === 0) orphaned(name, `the test closed ${channel} before releasing it`);
    return;
  }
}

/** A step of a mutating operation: the process dies or pauses here if STRATA_FAULT names it. */
export function faultPoint(name: string): void {
  if (spec === null && log === null) return;
  const n = hit(name);
  if (spec?.name !== name || spec.at !== n) return;
  if (spec.action === 'kill') process.kill(process.pid, 'SIGKILL');
  if (spec.action === 'pause') pause(name);
}

/** A place that STRATA_FAULT=<name>:sleep:MS slows down, <name>:pause holds, or <name>:stop stops (once). Not a kill point, and not logged. */
export function faultDelay(name: string): void {
  if (spec?.name !== name) return;
  if (spec.action === 'sleep') sleepMs(spec.at);
  else if (spec.action === 'pause') {
    const n = (hits.get(name) ?? 0) + 1;
    hits.set(name, n);
    if (n === spec.at) pause(name);
  } else if (spec.action === 'stop' && (hits.get(name) ?? 0) === 0) {
    hits.set(name, 1);
    // A stop the test can see (/proc state T) and end with SIGCONT: a hold that waits for no clock.
    process.kill(process.pid, 'SIGSTOP');
  }
}

/** What STRATA_FAULT does at points named `name`, or null when it names another point. */
export function faultAction(name: string): Spec['action'] | null {
  return spec?.name === name ? spec.action : null;
}

/** An I/O call that may be made to fail: returns the errno code to raise, or null. */
export function faultError(name: string): 'ENOSPC' | null {
  if (spec === null && log === null) return null;
  const n = hit(name);
  return spec?.action === 'enospc' && spec.name === name && n >= spec.at ? 'ENOSPC' : null;
}
