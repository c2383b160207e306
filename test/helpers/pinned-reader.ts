/**
 * A reader process holding an image open (test/fixtures/pinned-reader.mjs):
 * a read-only open of a leaf pins its view, as `strata read`/`export` do,
 * and keeps it across other processes' commands. Tests wait for its answer
 * lines, never for time; afterEach should call PinnedReader.killAll().
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { expect } from 'vitest';

const BLOCK = 4096;
const READER = path.resolve('test/fixtures/pinned-reader.mjs');

/** A reader process holding IMAGE open; `read()` has it read the whole image again through the same handle. */
export class PinnedReader {
  private readonly lines: AsyncIterator<string>;
  private constructor(
    private readonly proc: ChildProcessWithoutNullStreams,
    private readonly out: string,
  ) {
    this.lines = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  }

  static async open(store: string, image: string, out: string): Promise<{ reader: PinnedReader; first: Buffer }> {
    const proc = spawn(process.execPath, [READER, store, image, out]);
    let err = '';
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const reader = new PinnedReader(proc, out);
    running.add(reader);
    const first = await reader.next('read 0', () => err);
    return { reader, first };
  }

  private async next(want: string, err: () => string = () => ''): Promise<Buffer> {
    const line = await this.lines.next();
    if (line.done || line.value !== want) throw new Error(`reader said ${JSON.stringify(line.value)}, not ${want}: ${err()}`);
    return fs.readFileSync(this.out);
  }

  private reads = 1;
  async read(): Promise<Buffer> {
    this.proc.stdin.write('\n');
    return this.next(`read ${this.reads++}`);
  }

  /** Closes the image and waits for the process to exit. */
  async close(): Promise<void> {
    const exited = new Promise<number | null>((resolve) => this.proc.once('exit', resolve));
    this.proc.stdin.end();
    expect(await exited).toBe(0);
    running.delete(this);
  }

  /** For afterEach: kills every reader a test left running (one that failed before closing it). */
  static killAll(): void {
    for (const r of running) r.proc.kill('SIGKILL');
    running.clear();
  }
}

const running = new Set<PinnedReader>();


/** Each 4 KiB block of `got` is the same block of one of `versions`; returns the indexes of blocks that are none. */
export function blocksNotFrom(got: Buffer, versions: Buffer[]): number[] {
  const bad: number[] = [];
  for (let b = 0; b < got.length / BLOCK; b++) {
    const mine = got.subarray(b * BLOCK, (b + 1) * BLOCK);
    if (!versions.some((v) => v.subarray(b * BLOCK, (b + 1) * BLOCK).equals(mine))) bad.push(b);
  }
  return bad;
}

