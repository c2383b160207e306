// Fails the run when a process a test started outlived the run. Every process the tests start
// inherits STRATA_TEST_RUN (set here, before the workers are forked); the teardown looks for it
// in /proc/*/environ, kills what it finds, and throws with the list. The per-test kill is in
// test/helpers/processes.ts: this catches what that missed (a worker that died, a process
// started some other way).
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';

/** The loopback Ceph RGW outlives tests by design: test/setup/rgw.ts stops it after the run. */
const OWNED_ELSEWHERE = new Set(['ceph-mon', 'ceph-mgr', 'ceph-osd', 'radosgw']);

const VITEST_WORKER = /\/vitest\/dist\/workers\//;

interface Left {
  pid: number;
  cmd: string;
}

/** Processes carrying `marker` in their environment, other than vitest's, and the RGW. */
export function processesOfRun(marker: string): Left[] {
  const needle = Buffer.from(`\0STRATA_TEST_RUN=${marker}\0`);
  const found: Left[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    let env: Buffer;
    let argv: string[];
    try {
      env = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${pid}/environ`)]);
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch {
      continue; // gone, or not ours to read
    }
    if (argv.length === 0 || !env.includes(needle)) continue; // a zombie has no cmdline
    if (OWNED_ELSEWHERE.has(argv[0].split('/').pop()!)) continue;
    if (argv.some((a) => VITEST_WORKER.test(a))) continue; // vitest's own, still closing

    found.push({ pid, cmd: argv.join(' ').slice(0, 300) });
  }
  return found;
}

export default function setup(): () => void {
  const marker = randomUUID();
  process.env.STRATA_TEST_RUN = marker;
  return () => {
    const left = processesOfRun(marker);
    for (const p of left) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    if (left.length > 0) {
      process.exitCode = 1; // vitest logs a teardown error but would still exit 0
      throw new Error(`${left.length} process(es) started by the tests were still running after the run (now killed):\n${left.map((p) => `  ${p.pid} ${p.cmd}`).join('\n')}`);
    }
  };
}
