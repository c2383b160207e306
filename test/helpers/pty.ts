/**
 * The built `strata` run on a pseudo-terminal, as a user at a terminal runs
 * it: `script` (util-linux) gives it a pty for stdin, stdout and stderr, and
 * what the test writes to script's stdin is typed at that terminal, so
 * "\x03" is a real Ctrl-C (the terminal driver sends SIGINT).
 */
import { spawn, spawnSync } from 'node:child_process';
import { STRATA_BIN } from './cli.js';

export function hasScript(): boolean {
  return spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export interface PtyRun {
  /** Everything the terminal showed so far: stdout and stderr together, as on a screen. */
  output(): string;
  /** Resolves once the output matches, or fails after `ms`. */
  waitFor(re: RegExp, ms?: number): Promise<void>;
  /** Types at the terminal. */
  type(s: string): void;
  /** The exit status of strata (script -e passes it on). */
  exit: Promise<number | null>;
}

export function strataInPty(store: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): PtyRun {
  const cmd = [process.execPath, STRATA_BIN, '--store', store, ...args].map(quote).join(' ');
  const child = spawn('script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, SHELL: '/bin/sh', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    output: () => out,
    async waitFor(re, ms = 30_000) {
      const until = Date.now() + ms;
      while (!re.test(out)) {
        if (Date.now() > until) throw new Error(`timed out waiting for ${re} in: ${JSON.stringify(out)}`);
        if (child.exitCode !== null) throw new Error(`strata exited ${child.exitCode} before ${re} showed: ${JSON.stringify(out)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    type: (s) => child.stdin.write(s),
    exit,
  };
}
