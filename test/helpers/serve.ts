/**
 * Runs the built `strata serve` as a child process on a Unix socket in a
 * fresh temp dir, and waits for its "serving ... on <uri>" line. It is a
 * tracked process (processes.ts): killed with its process group after the
 * test, and its socket dir removed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { STRATA_BIN } from './cli.js';
import { spawnTracked } from './processes.js';

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
  /** Resolves once `re` matches its output (a log line, a warning); rejects if it exits first. */
  waitFor(re: RegExp, on?: 'stdout' | 'stderr' | 'either'): Promise<RegExpExecArray>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  /** Graceful stop (SIGINT by default): waits for the exit; SIGKILL if it takes over `timeoutMs`. */
  stop(signal?: 'SIGINT' | 'SIGTERM', timeoutMs?: number): Promise<Exit>;
  /** SIGKILL, as a crash would; resolves once the process is gone. */
  kill(): Promise<Exit>;
}

// The servers themselves are killed after each test by processes.ts; their socket dirs go here.
const dirs = new Set<string>();
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
});

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
    /** A command that runs node in turn, e.g. `['unshare', '--pid', '--fork']`. */ wrap?: string[];
  } = {},
): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-serve-'));
  dirs.add(dir);
  const socketPath = join(dir, 'nbd.sock');
  const command = opts.command ?? 'serve';
  const argv = [...(opts.nodeArgs ?? []), STRATA_BIN, '--store', store, command, ...names, ...(opts.listenArgs ?? ['--socket', socketPath]), ...(opts.extraArgs ?? [])];
  const wrap = opts.wrap ?? [];
  const proc = wrap.length > 0 ? spawnTracked(wrap[0], [...wrap.slice(1), process.execPath, ...argv], { env: opts.env }) : spawnTracked(process.execPath, argv, { env: opts.env });
  const child = proc.child;
  const exited: Promise<Exit> = proc.exited.then(({ code, signal }) => ({ code, signal }));

  const timeoutMs = opts.timeoutMs ?? 20_000;
  let timer: NodeJS.Timeout | undefined;
  const address = await Promise.race([
    // The text line, or with --json the first key of the JSON line.
    proc.waitFor(/^serving .* on (\S+)$|^\{"address":"([^"]+)"/m, 'stdout').then((m) => m[1] ?? m[2]),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        void proc.kill();
        reject(new Error(`strata ${command} printed no "serving" line within ${timeoutMs} ms\nstdout: ${proc.stdout}\nstderr: ${proc.stderr}`));
      }, timeoutMs);
    }),
  ]).catch((e: Error) => {
    throw new Error(e.message.replace(/^.* exited before .* showed/, `strata ${command} exited before serving`));
  }).finally(() => clearTimeout(timer));

  const waitExit = async (timeoutMs: number): Promise<Exit> => {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<null>((r) => (timer = setTimeout(() => r(null), timeoutMs)));
    const e = await Promise.race([exited, t]);
    clearTimeout(timer);
    if (e) return e;
    await proc.kill();
    throw new Error(`strata ${command} did not exit within ${timeoutMs} ms of its signal; killed\nstderr: ${proc.stderr}`);
  };

  return {
    pid: child.pid!,
    socketPath,
    address,
    get stdout() {
      return proc.stdout;
    },
    get stderr() {
      return proc.stderr;
    },
    // spawnTracked's own listener comes first, so proc.stderr already holds the chunk.
    onStderr: (listener) => void child.stderr!.on('data', () => listener()),
    uri: (name) => `nbd+unix:///${name}?socket=${socketPath}`,
    waitFor: (re, on) => proc.waitFor(re, on),
    exited,
    stop(signal = 'SIGINT', timeoutMs = 10_000) {
      proc.signal(signal);
      return waitExit(timeoutMs);
    },
    kill: () => proc.kill().then(() => exited),
  };
}
