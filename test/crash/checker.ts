/**
 * Opens each crash state with the real CLI and says what it lost: `strata
 * check` must find no corruption (leaks, exit 3, are allowed: a crash between
 * writing slots and committing them leaves them unclaimed, and `check
 * --repair` reclaims them), and every result acknowledged before the crash
 * must be there, byte for byte.
 *
 * What a workload promised is a list of steps, each with the time it was
 * acknowledged (a command exited 0, a FLUSH was answered) and what the
 * images named in it hold after it (null: the image is gone). At a crash
 * before a step's acknowledgement, each image it names may be as before the
 * step or as after it (the step may have committed unacknowledged); after
 * the acknowledgement, only as after it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ERROR_CODES } from '../../src/errors.js';
import { strata } from '../helpers/cli.js';
import { writeStoreFiles, type CrashState } from './states.js';

export interface Step {
  label: string;
  /** strace clock (recorder.nowMicros) when the step began: a crash before it sees none of it. */
  started: number;
  /** ... and when it was acknowledged. */
  acked: number;
  /** Images after the step: content, or null when the step removed it. */
  after: Record<string, Buffer | null>;
}

/**
 * The contents each image may have at a crash at time `t`: the last
 * acknowledged (null: absent, also for an image no acknowledged step named
 * yet), and what a step under way at `t` would make of it.
 */
export function allowedAt(steps: readonly Step[], t: number): Map<string, (Buffer | null)[]> {
  const allowed = new Map<string, (Buffer | null)[]>();
  for (const s of steps) {
    if (s.started >= t) break;
    for (const [name, content] of Object.entries(s.after)) {
      allowed.set(name, s.acked < t ? [content] : [...(allowed.get(name) ?? [null]), content]);
    }
  }
  return allowed;
}

/** One failure: a state, and what was wrong with it. */
export interface Loss {
  state: string;
  problem: string;
}

const label = (s: CrashState) => `crash before op ${s.at} (${s.variant})`;

/** Checks one state; returns what is wrong with it (empty: nothing). */
export function checkState(state: CrashState, steps: readonly Step[]): Loss[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-crash-state-'));
  try {
    const store = path.join(dir, 'st');
    writeStoreFiles(store, state.files);
    const losses: Loss[] = [];
    const lose = (problem: string) => losses.push({ state: label(state), problem });
    const check = strata(store, ['check', '--json']);
    if (check.status !== 0 && check.status !== 3) {
      lose(`strata check exited ${check.status}: ${check.stdout.trim().split('\n').slice(-3).join(' ')} ${check.stderr.trim()}`);
      return losses;
    }
    for (const [name, options] of allowedAt(steps, state.t)) {
      const r = strata(store, ['read', name]);
      // Absent: E_NOT_FOUND, whatever the resolver says of it (`no image named X`, `IMG has no snapshot S`).
      if (r.status === ERROR_CODES.E_NOT_FOUND) {
        if (!options.includes(null)) lose(`image ${name} is missing`);
        continue;
      }
      const contents = options.filter((o): o is Buffer => o !== null);
      if (r.status !== 0) {
        lose(`strata read ${name} exited ${r.status}: ${r.stderr.trim()}`);
        continue;
      }
      if (contents.length === 0) {
        lose(`image ${name} exists, but its removal was acknowledged (or the workload never said what it held)`);
        continue;
      }
      if (!contents.some((c) => c.equals(r.out))) {
        const c = contents[contents.length - 1];
        let first = 0;
        while (first < Math.min(c.length, r.out.length) && c[first] === r.out[first]) first++;
        lose(`image ${name} reads ${r.out.length} bytes differing from every acknowledged version (first difference from the latest at byte ${first})`);
      }
    }
    return losses;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
