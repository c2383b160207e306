/**
 * Runs the built `strata serve` as a child process on a Unix socket in a
 * fresh temp dir, waits for its "serving ... on <uri>" line, and makes sure
 * it never outlives the test: every server still running after a test is
 * SIGKILLed (and its socket dir removed), and so is any left at exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { STRATA_BIN } from './cli.js';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Served {
  readonly pid: number;
  readonly socketPath: string;
  /** The URI printed on the "serving" line. */
  readonly address: string;
  /** Everything the server wrote so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** Calls `listener` after each chunk the server writes to stderr (to wait for a log line without polling). */
  onStderr(listener: () => void): void;
  /** nbd URI of one export, for qemu and libnbd tools. */
  uri(name: string): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  /** Graceful stop (SIGINT by default): waits for the exit; SIGKILL if it takes over `timeoutMs`. */
  stop(signal?: 'SIGINT' | 'SIGTERM', timeoutMs?: number): Promise<Exit>;
  /** SIGKILL, as a crash would; resolves once the process is gone. */
  kill(): Promise<Exit>;
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();

function killAll(): void {
  for (const c of live) c.kill('SIGKILL');
}

afterEach(async () => {
  const waits = [...live].map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r))));
  killAll();
  await Promise.all(waits);
  live.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
});
process.on('exit', killAll);

/**
 * `strata --store STORE serve NAMES... --socket <tmp>/nbd.sock`. Rejects with
 * the server's stderr if it exits before printing its "serving" line.
 */
export async function startServe(
  store: string,
  names: readonly string[] = [],
  opts: {
    extraArgs?: string[];
    timeoutMs?: number;
    nodeArgs?: string[];
    /** Instead of `--socket <tmp>/nbd.sock`. */ listenArgs?: string[];
    /** Another server command with the same first line (`ui`); default `serve`. */ command?: 'serve' | 'ui';
    env?: NodeJS.ProcessEnv;
  } = {},
): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-serve-'));
  dirs.add(dir);
  const socketPath = join(dir, 'nbd.sock');
  const command = opts.command ?? 'serve';
  const stderrListeners: (() => void)[] = [];
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), STRATA_BIN, '--store', store, command, ...names, ...(opts.listenArgs ?? ['--socket', socketPath]), ...(opts.extraArgs ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: opts.env ? { ...process.env, ...opts.env } : undefined,
  });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    for (const f of stderrListeners) f();
  });
  const exited = new Promise<Exit>((resolve) =>
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );

  const address = await new Promise<string>((resolve, reject) => {
    const timeoutMs = opts.timeoutMs ?? 20_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`strata ${command} printed no "serving" line within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    const onData = () => {
      // The text line, or with --json the first key of the JSON line.
      const m = /^serving .* on (\S+)$/m.exec(stdout) ?? /^\{"address":"([^"]+)"/m.exec(stdout);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(m[1]);
      }
    };
    child.stdout!.on('data', onData);
    void exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`strata ${command} exited (${e.code ?? e.signal}) before serving\nstdout: ${stdout}\nstderr: ${stderr}`));
    });
  });

  const waitExit = async (timeoutMs: number): Promise<Exit> => {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<null>((r) => (timer = setTimeout(() => r(null), timeoutMs)));
    const e = await Promise.race([exited, t]);
    clearTimeout(timer);
    if (e) return e;
    child.kill('SIGKILL');
    await exited;
    throw new Error(`strata ${command} did not exit within ${timeoutMs} ms of its signal; killed\nstderr: ${stderr}`);
  };

  return {
    pid: child.pid!,
    socketPath,
    address,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    onStderr: (listener) => void stderrListeners.push(listener),
    uri: (name) => `nbd+unix:///${name}?socket=${socketPath}`,
    exited,
    stop(signal = 'SIGINT', timeoutMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return waitExit(timeoutMs);
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return exited;
    },
  };
}
