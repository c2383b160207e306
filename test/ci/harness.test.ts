/**
 * The harness that keeps CI honest (#31): a process a test starts is ended
 * with its whole group when the test ends or its timeout passes; the run's
 * teardown finds any that escaped; in CI a missing prerequisite fails instead
 * of skipping; and .ci/run's summary counts skipped tests as failed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnTracked, type Tracked } from '../helpers/processes.js';
import { tmpDir } from '../helpers/tmp.js';
import { waitForFile } from '../helpers/wait.js';
import { processesOfRun } from '../setup/processes.js';

/** PF_EXITING in /proc/PID/stat's flags: set as the process starts to exit, before it closes its files. */
const PF_EXITING = 0x4;

/**
 * Running, as opposed to gone, a zombie (which nothing reaps in some
 * containers), or on its way out. A SIGKILLed process takes a moment to die;
 * the tests ask only after its pipe closed, which it does while exiting.
 */
function alive(pid: number): boolean {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const [state, , , , , , flags] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return state !== 'Z' && state !== 'X' && (Number(flags) & PF_EXITING) === 0;
}

describe('tracked processes', () => {
  it('kill() ends the whole process group, what the process started included', async () => {
    const p = spawnTracked('sh', ['-c', 'sleep 600 & echo "child $!"; wait']);
    const [, child] = await p.waitFor(/^child (\d+)$/m, 'stdout');
    expect(alive(Number(child))).toBe(true);
    const exit = await p.kill();
    expect(exit).toEqual({ code: null, signal: 'SIGKILL', timedOut: false });
    expect(alive(p.pid)).toBe(false);
    expect(alive(Number(child))).toBe(false);
  });

  let fromLastTest: { p: Tracked; child: number } | undefined;
  it('one left running by a test (as a failing test would leave it) ...', async () => {
    const p = spawnTracked('sh', ['-c', 'sleep 600 & echo "child $!"; wait']);
    const [, child] = await p.waitFor(/^child (\d+)$/m, 'stdout');
    fromLastTest = { p, child: Number(child) };
    expect(p.running()).toBe(true);
  });

  it('... is gone, with its group, when the next test starts', async () => {
    expect(fromLastTest).toBeDefined();
    expect(fromLastTest!.p.running()).toBe(false);
    expect(await fromLastTest!.p.exited).toMatchObject({ signal: 'SIGKILL' });
    expect(alive(fromLastTest!.child)).toBe(false);
  });

  it('a process past its timeout is killed, and says so', async () => {
    const p = spawnTracked('sleep', ['600'], { timeoutMs: 50 });
    expect(await p.exited).toEqual({ code: null, signal: 'SIGKILL', timedOut: true });
  });

  it('waitFor() rejects, with the output, when the process exits before the line shows', async () => {
    const p = spawnTracked('sh', ['-c', 'echo nope >&2; exit 3']);
    await expect(p.waitFor(/ready/)).rejects.toThrow(/^sh exited before \/ready\/ showed\nstdout: \nstderr: nope\n$/);
    expect((await p.exited).code).toBe(3);
  });

  it('the run teardown finds a process carrying the run marker, however it was started, and no other', async () => {
    const marker = randomUUID();
    const escaped = spawn('sleep', ['600'], { detached: true, stdio: 'ignore', env: { ...process.env, STRATA_TEST_RUN: marker } });
    const other = spawn('sleep', ['601'], { detached: true, stdio: 'ignore', env: { ...process.env, STRATA_TEST_RUN: randomUUID() } });
    try {
      // 'spawn' fires once exec has succeeded: /proc shows the new environment from then on.
      await new Promise((r) => escaped.once('spawn', r));
      expect(processesOfRun(marker)).toEqual([{ pid: escaped.pid, cmd: 'sleep 600' }]);
    } finally {
      escaped.kill('SIGKILL');
      other.kill('SIGKILL');
    }
  });
});

describe('skips', () => {
  const probe = (env: NodeJS.ProcessEnv) =>
    spawnSync(process.execPath, ['--import', 'tsx', '-e', "import('./test/helpers/available.ts').then((m) => console.log(m.available(false, 'frobnicate is not on PATH')))"], {
      encoding: 'utf8',
      env: { ...process.env, CI: '', ...env },
      timeout: 60_000,
    });

  it('on a developer machine a missing prerequisite skips, saying why', () => {
    const r = probe({ CI: '' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('false\n');
    expect(r.stderr).toBe('[skip] frobnicate is not on PATH\n');
  });

  it('in CI it fails, naming what is missing', () => {
    const r = probe({ CI: 'true' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('Error: CI runs every test, but frobnicate is not on PATH (.ci/run should have provided it)');
  });

  const summary = (report: object, status: string) => {
    const file = path.join(tmpDir(), 'report.json');
    fs.writeFileSync(file, JSON.stringify(report));
    return spawnSync(process.execPath, ['.ci/summary.mjs', file, status], { encoding: 'utf8', timeout: 60_000 });
  };
  const report = (statuses: string[], success = true) => ({
    success,
    numPassedTests: statuses.filter((s) => s === 'passed').length,
    numFailedTests: statuses.filter((s) => s === 'failed').length,
    numFailedTestSuites: 0,
    testResults: [{ name: `${process.cwd()}/test/x.test.ts`, assertionResults: statuses.map((status, i) => ({ status, fullName: `x ${i}` })) }],
  });

  it('.ci/run counts a skipped or todo test as failed, and names it', () => {
    const r = summary(report(['passed', 'skipped', 'passed', 'todo']), '0');
    expect(r.stdout).toBe(
      ['ci: skipped in CI, counted as failed: test/x.test.ts: x 1 (skipped)', 'ci: skipped in CI, counted as failed: test/x.test.ts: x 3 (todo)', 'tests: 2 passed, 2 failed (2 of them skipped)', ''].join('\n'),
    );
    expect(r.status).toBe(1);
  });

  it('.ci/run fails a run whose tests passed when vitest itself failed (processes left running)', () => {
    const r = summary(report(['passed']), '1');
    expect(r.stdout).toBe('ci: vitest exited 1 though every test passed: see its error above (e.g. processes left running)\ntests: 1 passed, 1 failed\n');
    expect(r.status).toBe(1);
  });

  it('.ci/run passes a clean run', () => {
    const r = summary(report(['passed', 'passed']), '0');
    expect(r.stdout).toBe('tests: 2 passed, 0 failed\n');
    expect(r.status).toBe(0);
  });
});

describe('waiting on events', () => {
  it('waitForFile resolves when another process writes the line, the file not existing before', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'log');
    const writer = spawnTracked('sh', ['-c', `read go; echo "step.one" > "${file}"; echo "step.two" >> "${file}"`], { keepStdin: true });
    const seen = waitForFile(file, /^step\.two$/m);
    writer.child.stdin!.end('go\n');
    await seen;
    expect(fs.readFileSync(file, 'utf8')).toBe('step.one\nstep.two\n');
  });
});
