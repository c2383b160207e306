import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';

export const STRATA_BIN = path.resolve('dist/cli/strata.js');

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
  out: Buffer;
}

/** Runs the built `strata` binary, as a user would, against `store`. */
export function strata(store: string, args: readonly string[], opts: { input?: Buffer | string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const r = spawnSync(process.execPath, [STRATA_BIN, '--store', store, ...args], {
    input: opts.input,
    env: { ...process.env, ...opts.env },
    maxBuffer: 1 << 30,
  });
  return { status: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString(), out: r.stdout };
}

/** Like strata(), but fails the test with stderr when the command fails. */
export function strataOk(store: string, args: readonly string[], opts: { input?: Buffer | string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const r = strata(store, args, opts);
  if (r.status !== 0) throw new Error(`strata ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r;
}

/** Like strata(), without blocking the event loop: for tests where something else runs meanwhile. */
export function strataAsync(store: string, args: readonly string[], opts: { input?: Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<{ status: number; out: Buffer; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [STRATA_BIN, '--store', store, ...args], { env: { ...process.env, ...opts.env } });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ status: code ?? -1, out: Buffer.concat(out), err }));
    p.stdin.end(opts.input);
  });
}
