/**
 * Running the real NBD clients (qemu-img, qemu-io, nbdinfo, nbdcopy, fio)
 * from tests: PATH lookup for skipping, and a child-process runner that
 * always has a timeout and never throws on a non-zero exit.
 */
import { execFile, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { available, inCI } from './available.js';

const found = new Map<string, boolean>();

/** True when `name` is an executable on PATH; otherwise says why a test will skip, or in CI throws (see available.ts). */
export function requireTool(name: string): boolean {
  let ok = found.get(name);
  if (ok === false && !inCI) return false; // said so already
  if (ok === undefined) {
    ok = (process.env.PATH ?? '').split(delimiter).some((dir) => {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
    found.set(name, ok);
  }
  return available(ok, `${name} is not on PATH`);
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 60_000, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: NodeJS.Signals }) | null;
        resolve({
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          stdout: String(stdout),
          stderr: String(stderr),
        });
      },
    );
  });
}

/** run() that fails the test with the tool's output when it does not exit 0. */
export async function runOk(cmd: string, args: string[], opts?: { timeoutMs?: number }): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}\n${r.stderr}\n${r.stdout}`);
  return r;
}

// Where the fault-log tests have always found it; it lives with the other waits.
export { waitForFile } from './wait.js';

/**
 * `qemu-img create` of a LUKS-encrypted file (raw LUKS or qcow2 with encrypt.format=luks).
 * qemu times a first batch of PBKDF2 iterations by the thread's CPU time to pick its
 * iteration count; where that time is counted in scheduler ticks, a busy machine can charge
 * the batch nothing, and qemu-img then fails with "Unable to get accurate CPU usage". Each
 * try is a fresh draw, so this tries again (up to 30 times) on that error alone.
 */
export function qemuImgCreateLuks(args: readonly string[]): void {
  for (let attempt = 1; ; attempt++) {
    const r = spawnSync('qemu-img', ['create', '-q', ...args], { encoding: 'utf8', timeout: 120_000 });
    if (r.status === 0) return;
    if (attempt === 30 || !(r.stderr ?? '').includes('accurate CPU usage')) throw new Error(`qemu-img create ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  }
}
