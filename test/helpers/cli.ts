import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { spawnTracked, type SpawnOptions, type Tracked } from './processes.js';

export const STRATA_BIN = path.resolve('dist/cli/strata.js');

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
  out: Buffer;
}

/** A command that blocks the test's worker gets this long before it is SIGKILLed and the test fails. */
const SYNC_TIMEOUT_MS = 300_000;

/** Runs the built `strata` binary, as a user would, against `store`. `stdinFd`: a file descriptor as stdin, instead of `input`. */
export function strata(store: string, args: readonly string[], opts: { input?: Buffer | string; env?: NodeJS.ProcessEnv; stdinFd?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [STRATA_BIN, '--store', store, ...args], {
    input: opts.input,
    stdio: opts.stdinFd === undefined ? undefined : [opts.stdinFd, 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
    maxBuffer: 1 << 30,
    timeout: SYNC_TIMEOUT_MS,
    killSignal: 'SIGKILL',
  });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT') throw new Error(`strata ${args.join(' ')} did not exit within ${SYNC_TIMEOUT_MS} ms; killed\n${r.stderr}`);
  return { status: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString(), out: r.stdout };
}

/** Like strata(), but fails the test with stderr when the command fails. */
export function strataOk(store: string, args: readonly string[], opts: Parameters<typeof strata>[2] = {}): CliResult {
  const r = strata(store, args, opts);
  if (r.status !== 0) throw new Error(`strata ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r;
}

/**
 * `strata --store STORE ARGS` started beside the test, tracked (processes.ts):
 * for a test that signals it, waits for its output, or runs others meanwhile.
 */
export function strataSpawn(store: string, args: readonly string[], opts: SpawnOptions = {}): Tracked {
  return spawnTracked(process.execPath, [STRATA_BIN, '--store', store, ...args], opts);
}

/** Like strata(), without blocking the event loop: for tests where something else runs meanwhile. */
export async function strataAsync(store: string, args: readonly string[], opts: { input?: Buffer; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ status: number; out: Buffer; err: string }> {
  const p = strataSpawn(store, args, { input: opts.input ?? Buffer.alloc(0), env: opts.env, timeoutMs: opts.timeoutMs });
  const e = await p.exited;
  if (e.timedOut) throw new Error(`strata ${args.join(' ')} did not exit within its timeout; killed\nstderr: ${p.stderr}`);
  return { status: e.code ?? -1, out: p.out, err: p.stderr };
}
