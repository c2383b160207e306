/**
 * Holding a `strata` process at a named step (STRATA_FAULT=<point>:pause,
 * src/store/core/faults.ts), so a test knows where the other process is instead
 * of guessing after a sleep:
 *
 *   const fault = faultChannel();
 *   const p = strataAsync(store, ['import', file, 'img'], { env: fault.env('import.after-flush') });
 *   await fault.reached('import.after-flush');   // the importer is blocked right there
 *   ...                                          // whatever must happen at that step
 *   fault.release();                             // it runs on
 *
 * The channel is two FIFOs in a temp dir, both held open read-write by the
 * test so the process never blocks opening them. The test reads through an
 * async stream (a hung or silent peer cannot block the worker) and writes its
 * answer with a non-blocking write. Closed after the test; a process still
 * paused then sees end-of-file and kills itself.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { onTestFinished } from 'vitest';

export interface FaultChannel {
  /** Environment for a process to pause at the `hit`th time it reaches `point`. */
  env(point: string, hit?: number): NodeJS.ProcessEnv;
  /**
   * Resolves with the pid of the process once it announces `point` (and is
   * blocked there). Rejects, naming the point and what was announced, after
   * `timeoutMs` (a failure guard, never a synchronisation) or as soon as
   * `exited` settles, since a process that exited will never get there.
   */
  reached(point: string, opts?: { timeoutMs?: number; exited?: Promise<unknown> }): Promise<number>;
  /** Lets the paused process run on. */
  release(): void;
  /** Every point announced so far, in order. */
  readonly announced: readonly string[];
  close(): void;
}

const { O_RDWR, O_NONBLOCK } = fs.constants;

export function faultChannel(): FaultChannel {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-fault-'));
  for (const f of ['reached', 'release']) {
    const r = spawnSync('mkfifo', [path.join(dir, f)]);
    if (r.status !== 0) throw new Error(`mkfifo ${f}: ${r.stderr}`);
  }
  // Read-write: the test is its own writer, so its reader never sees end-of-file between processes.
  const reachedFd = fs.openSync(path.join(dir, 'reached'), O_RDWR | O_NONBLOCK);
  const releaseFd = fs.openSync(path.join(dir, 'release'), O_RDWR | O_NONBLOCK);
  const stream = new net.Socket({ fd: reachedFd, readable: true, writable: false });
  const announced: { point: string; pid: number }[] = [];
  let consumed = 0;
  let waiter: (() => void) | null = null;
  let buffered = '';
  stream.on('data', (d: Buffer) => {
    buffered += d.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const l of lines) {
      const [point, pid] = l.split(' ');
      announced.push({ point, pid: Number(pid) });
    }
    waiter?.();
  });
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    stream.destroy();
    fs.closeSync(releaseFd);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  onTestFinished(close);

  return {
    env: (point, hit = 1) => ({ STRATA_FAULT: `${point}:pause:${hit}`, STRATA_FAULT_CHANNEL: dir }),
    get announced() {
      return announced.map((a) => a.point);
    },
    reached(point, opts = {}) {
      const timeoutMs = opts.timeoutMs ?? 60_000;
      return new Promise<number>((resolve, reject) => {
        const done = (f: () => void) => {
          clearTimeout(timer);
          waiter = null;
          f();
        };
        const check = () => {
          // Each announcement is answered once: a second reached() waits for the next one.
          const next = announced[consumed];
          if (!next) return;
          consumed++;
          if (next.point === point) done(() => resolve(next.pid));
          else done(() => reject(new Error(`waiting for fault point ${point}, the process paused at ${next.point}`)));
        };
        const timer = setTimeout(
          () => done(() => reject(new Error(`fault point ${point} not reached in ${timeoutMs / 1000} s; announced so far: ${announced.map((a) => a.point).join(', ') || 'nothing'}`))),
          timeoutMs,
        );
        opts.exited?.then(
          (r) => {
            const how = typeof r === 'object' && r !== null && 'status' in r ? `exit status ${String(r.status)}` : 'exited';
            if (waiter === check) done(() => reject(new Error(`the process ended (${how}) before reaching fault point ${point}`)));
          },
          () => {},
        );
        waiter = check;
        check();
      });
    },
    release() {
      if (closed) throw new Error('fault channel already closed');
      fs.writeSync(releaseFd, 'release\n');
    },
    close,
  };
}
