/**
 * A workload of real processes on one store, recorded for the crash-state
 * test: each `strata` process runs under strace (recorder.ts), and each step
 * notes when it began and when it was acknowledged, with what the images it
 * touched hold afterwards (checker.ts's Step).
 */
import fs from 'node:fs';
import path from 'node:path';
import { STRATA_BIN } from '../helpers/cli.js';
import { spawnTracked, type Tracked } from '../helpers/processes.js';
import { run } from '../helpers/tools.js';
import type { Step } from './checker.js';
import { mergeTraces, nowMicros, straced, TRACE_ENV, type FileOp } from './recorder.js';
import { readStoreFiles, type Files } from './states.js';

export class Recording {
  readonly steps: Step[] = [];
  private readonly traces: string[] = [];
  /** The store's files when recording began: all durable. */
  readonly initial: Files;

  constructor(
    readonly store: string,
    private readonly workDir: string,
    private readonly env: NodeJS.ProcessEnv = {},
  ) {
    this.initial = readStoreFiles(store);
  }

  /** What images made before recording hold: acknowledged before any crash point. */
  known(images: Record<string, Buffer>): void {
    this.steps.push({ label: 'before recording', started: 0, acked: 0, after: images });
  }

  /** `strata ARGS` under strace, started now; the caller waits for it. */
  spawn(args: readonly string[]): Tracked {
    const trace = path.join(this.workDir, `trace-${this.traces.length}.txt`);
    this.traces.push(trace);
    const [cmd, ...rest] = straced(trace, process.execPath, [STRATA_BIN, '--store', this.store, ...args]);
    return spawnTracked(cmd, rest, { env: { ...TRACE_ENV, ...this.env } });
  }

  /** One acknowledged step: `strata ARGS` exits 0, after which the images in `after` hold what it says. Returns its stdout. */
  async cli(args: readonly string[], after: Record<string, Buffer | null>): Promise<string> {
    const started = nowMicros('down');
    const p = this.spawn(args);
    const e = await p.exited;
    if (e.code !== 0) throw new Error(`strata ${args.join(' ')} exited ${e.code ?? e.signal}: ${p.stderr}`);
    this.steps.push({ label: `strata ${args.join(' ')}`, started, acked: nowMicros('up'), after });
    return p.stdout;
  }

  /** One acknowledged step through another program (an NBD client): it exits 0 once its FLUSH was answered. */
  async tool(cmd: string, args: string[], after: Record<string, Buffer | null>): Promise<void> {
    const started = nowMicros('down');
    const r = await run(cmd, args);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}: ${r.stderr}`);
    this.steps.push({ label: `${cmd} ${args.join(' ')}`, started, acked: nowMicros('up'), after });
  }

  /** Every recorded operation on the store, in order. Call once the traced processes have exited. */
  ops(): FileOp[] {
    for (const t of this.traces) if (!fs.existsSync(t)) throw new Error(`no trace at ${t}`);
    return mergeTraces(this.traces, this.store);
  }

  /** The acknowledgement times, where crash points go. */
  marks(): number[] {
    return this.steps.map((s) => s.acked);
  }
}
