/**
 * Waiting for a condition another process brings about (a line printed, a
 * file written, a process gone), when there is no event to listen to: polls
 * the condition, never the clock. The guard only turns a hang into a failure
 * that says what was awaited; it is not a speed bound, so it is generous.
 */
import { setTimeout as tick } from 'node:timers/promises';

export const GUARD_MS = 60_000;

export async function waitUntil(what: string, done: () => boolean, guardMs = GUARD_MS): Promise<void> {
  const start = performance.now();
  while (!done()) {
    if (performance.now() - start > guardMs) throw new Error(`still waiting after ${guardMs / 1000} s for ${what}`);
    await tick(5);
  }
}
