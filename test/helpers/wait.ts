/**
 * Waiting for something another process does. Where there is an event, on
 * the event: a file's contents through fs.watch (waitForFile), a line on a
 * process's output through waitFor() in processes.ts. Where there is none
 * (a process gone, a row committed), waitUntil polls the condition, never
 * the clock. The time limits only turn a hang into a failure that says what
 * was awaited; they are not speed bounds, so they are generous.
 */
import { existsSync, readFileSync, watch } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as tick } from 'node:timers/promises';

export const GUARD_MS = 60_000;

export async function waitUntil(what: string, done: () => boolean, guardMs = GUARD_MS): Promise<void> {
  const start = performance.now();
  while (!done()) {
    if (performance.now() - start > guardMs) throw new Error(`still waiting after ${guardMs / 1000} s for ${what}`);
    await tick(5);
  }
}

/** Resolves once `re` matches the text of `file` (a fault log, a browser's note), which may not exist yet. */
export function waitForFile(file: string, re: RegExp, ms = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const matches = () => existsSync(file) && re.test(readFileSync(file, 'utf8'));
    let timer: NodeJS.Timeout | undefined;
    // The directory, not the file: it also reports the file's creation. Watching starts before the first look, so no write falls between.
    const watcher = watch(dirname(file), () => {
      if (matches()) end();
    });
    const end = (err?: Error) => {
      watcher.close();
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    };
    timer = setTimeout(() => end(new Error(`gave up after ${ms} ms waiting for ${re} in ${file}${existsSync(file) ? `, which holds: ${JSON.stringify(readFileSync(file, 'utf8').slice(-500))}` : ', which does not exist'}`)), ms);
    if (matches()) end();
  });
}
