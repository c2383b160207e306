/**
 * Every debugfs script strata writes during the run is kept (runDebugfs
 * copies it into STRATA_DEBUGFS_SCRIPT_LOG) and checked after the run: each
 * line starts with a verb strata uses, holds no control character and fits
 * debugfs's 8,192-byte line buffer. A script that breaks a rule fails the
 * run, whichever test made it. The rules are written out again here rather
 * than imported from src/, so a bug in the script builder cannot hide itself.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const VERBS = new Set(['cd', 'ea_rm', 'ea_set', 'ln', 'mkdir', 'mknod', 'rm', 'rmdir', 'sif', 'symlink', 'write']);

/** What is wrong with one script (one message per bad line), given its bytes. */
export function scriptProblems(script: Buffer): string[] {
  const problems: string[] = [];
  if (script.length > 0 && script[script.length - 1] !== 0x0a) problems.push('does not end with a newline');
  const lines = script.toString('latin1').split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((line, i) => {
    const at = `line ${i + 1}`;
    // latin1: one character per byte, so lengths and control bytes are exact.
    if (line.length >= 8191) problems.push(`${at} is ${line.length} bytes, beyond debugfs's 8,191-byte buffer`);
    const c = /[\x00-\x1f\x7f]/.exec(line);
    if (c) problems.push(`${at} holds the control byte 0x${c[0].charCodeAt(0).toString(16)}`);
    const verb = line.split(' ', 1)[0];
    if (!VERBS.has(verb)) problems.push(`${at} starts with ${JSON.stringify(verb.slice(0, 40))}, not a verb strata uses`);
  });
  return problems;
}

export default function setup(): () => void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-debugfs-scripts-'));
  // Tests also run strata as other users (setpriv): they must be able to add their scripts.
  fs.chmodSync(dir, 0o1777);
  process.env.STRATA_DEBUGFS_SCRIPT_LOG = dir;
  return () => {
    const files = fs.readdirSync(dir);
    const bad = files.flatMap((f) => scriptProblems(fs.readFileSync(path.join(dir, f))).map((p) => `${f}: ${p}`));
    fs.rmSync(dir, { recursive: true, force: true });
    if (bad.length > 0) {
      // vitest only logs an error thrown by a teardown: the exit status is what fails CI.
      process.exitCode = 1;
      throw new Error(`debugfs scripts strata wrote break the script rules:\n${bad.slice(0, 20).join('\n')}`);
    }
    console.log(`debugfs scripts: ${files.length} checked, every line clean`);
  };
}
