/**
 * Waiting for something another process does, on the event that does it
 * rather than by polling on a timer: a file's contents through fs.watch here,
 * a line on a process's output through waitFor() in processes.ts. The time
 * limit is only how long to wait before failing, never what the test
 * synchronises on.
 */
import { existsSync, readFileSync, watch } from 'node:fs';
import { dirname } from 'node:path';

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
