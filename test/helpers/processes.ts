/**
 * The one way tests start a process that runs beside them (`strata`, `strata
 * serve`, a crash writer, a terminal): tracked, so that a failing test leaves
 * nothing running.
 *
 * - Each process gets its own process group (detached), and is killed with
 *   its whole group: when the test that started it ends (passed, failed or
 *   timed out), or the file's last test if it was started outside a test
 *   (beforeAll), when its own timeout passes, and when the worker exits. A
 *   group kill also reaches what it started itself.
 * - Each carries STRATA_TEST_RUN (set by test/setup/processes.ts, and
 *   inherited by its children), so the run's global teardown can find any
 *   that outlived its worker and fail the run.
 * - Output is collected as it arrives, and waitFor() resolves on the data
 *   event that completes a match: no polling.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { afterAll, onTestFinished } from 'vitest';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Killed by the harness because it outlived its timeout. */
  timedOut: boolean;
}

export interface Tracked {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Everything written so far (empty for a stream that is not piped). */
  readonly stdout: string;
  readonly stderr: string;
  /** stdout as bytes. */
  readonly out: Buffer;
  /** stdout and stderr interleaved as they arrived, as a screen shows them. */
  readonly all: string;
  /** Resolves once the process has exited and its output is all in. */
  readonly exited: Promise<Exit>;
  /** Whether it is still running. */
  running(): boolean;
  /**
   * Resolves with the match once `re` matches what the process wrote (stdout
   * and stderr apart, or together as on a terminal); rejects if it exits first.
   */
  waitFor(re: RegExp, on?: 'stdout' | 'stderr' | 'either'): Promise<RegExpExecArray>;
  /** A signal to the process alone (SIGINT as a user's kill would send). */
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL to its whole group; resolves once it has exited. */
  kill(): Promise<Exit>;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin, which is then closed; with neither this nor `keepStdin`, stdin is /dev/null. */
  input?: Buffer | string;
  /** Leave stdin open as a pipe (child.stdin) for the test to write. */
  keepStdin?: boolean;
  /** stdio instead of pipes (e.g. a file descriptor as stdin); output is then not collected. */
  stdio?: StdioOptions;
  /**
   * The whole group is SIGKILLed after this long. The default is a backstop as
   * long as the longest test timeout (10 min): the end of the test is what
   * normally ends it.
   */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 600_000;
const live = new Set<Tracked>();
/** Started outside any test (beforeAll, module scope): ended after the file's tests. */
const ofFile = new Set<Tracked>();

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // The group is gone already.
  }
}

afterAll(async () => {
  await Promise.all([...ofFile].map((p) => p.kill()));
});
process.on('exit', () => {
  for (const p of live) killGroup(p.pid);
});

export function spawnTracked(cmd: string, args: readonly string[], opts: SpawnOptions = {}): Tracked {
  const stdio: StdioOptions = opts.stdio ?? [opts.input !== undefined || opts.keepStdin ? 'pipe' : 'ignore', 'pipe', 'pipe'];
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio,
    detached: true,
  });
  const outChunks: Buffer[] = [];
  let stdout = '';
  let stderr = '';
  let all = '';
  let timedOut = false;
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  child.stdout?.on('data', (d: Buffer) => {
    outChunks.push(d);
    stdout += d.toString();
    all += d.toString();
    wake();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
    all += d.toString();
    wake();
  });
  let done = false;
  const exited = new Promise<Exit>((resolve) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      live.delete(tracked);
      ofFile.delete(tracked);
      wake();
      resolve({ code, signal, timedOut });
    };
    child.once('close', finish);
    child.once('error', (e) => {
      stderr += `${e.message}\n`;
      finish(null, null);
    });
  });
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid!);
  }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  timer.unref();

  const tracked: Tracked = {
    pid: child.pid ?? -1,
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    get out() {
      return Buffer.concat(outChunks);
    },
    get all() {
      return all;
    },
    exited,
    running: () => !done,
    waitFor(re, on = 'either') {
      const text = () => (on === 'stdout' ? stdout : on === 'stderr' ? stderr : all);
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(text());
          if (m) {
            waiters.delete(check);
            resolve(m);
          } else if (done) {
            waiters.delete(check);
            reject(new Error(`${cmd} exited before ${re} showed\nstdout: ${stdout}\nstderr: ${stderr}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
    signal(sig) {
      if (!done) child.kill(sig);
    },
    kill() {
      if (!done) killGroup(child.pid!);
      return exited;
    },
  };
  if (child.pid !== undefined) {
    live.add(tracked);
    try {
      onTestFinished(async () => {
        await tracked.kill();
      });
    } catch {
      ofFile.add(tracked); // not inside a test
    }
  }
  if (child.stdin && opts.input !== undefined) child.stdin.end(opts.input);
  // A child that exits without reading all of its stdin must not crash the worker with EPIPE.
  child.stdin?.on('error', () => {});
  return tracked;
}
