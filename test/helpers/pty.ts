/**
 * The built `strata` run on a pseudo-terminal, as a user at a terminal runs
 * it: `script` (util-linux) gives it a pty for stdin, stdout and stderr, and
 * what the test writes to script's stdin is typed at that terminal, so
 * "\x03" is a real Ctrl-C (the terminal driver sends SIGINT).
 */
import { spawnSync } from 'node:child_process';
import { available } from './available.js';
import { STRATA_BIN } from './cli.js';
import { spawnTracked } from './processes.js';

export function hasScript(): boolean {
  return available(spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0, 'script (util-linux) does not run: no pseudo-terminal');
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
  // Tracked (processes.ts): script and strata on its terminal are ended with the test. strata runs
  // in a session of its own there, which a group kill of script does not reach; it gets SIGHUP when
  // script's side of the terminal closes, and the run's teardown catches it if it outlives that.
  const p = spawnTracked('script', ['-qec', cmd, '/dev/null'], { env: { SHELL: '/bin/sh', ...env }, keepStdin: true });
  return {
    output: () => p.all,
    async waitFor(re, ms = 30_000) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} in: ${JSON.stringify(p.all)}`)), ms);
      });
      try {
        await Promise.race([p.waitFor(re), late]);
      } finally {
        clearTimeout(timer);
      }
    },
    type: (s) => p.child.stdin!.write(s),
    exit: p.exited.then((e) => e.code),
  };
}
