/**
 * Bucket locks across PID namespaces (#22 item 3): a push running in a
 * container that shares the host name (here: `unshare --pid`, as with host
 * networking) holds its lock under a pid of its own namespace. A `remote gc`
 * on the host must not judge that pid by kill(pid, 0): it must see a live
 * push, refuse with E_BUSY (exit 6) and delete nothing, and the push must
 * then complete with an image that pulls byte-identical.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openBucket } from '../../src/remote/s3.js';
import { STRATA_BIN, strata, strataOk } from '../helpers/cli.js';
import { rng } from '../helpers/random.js';
import { freshBucket, haveRgw, rgw, storesOnBucket } from '../helpers/rgw.js';
import { tmpDir } from '../helpers/tmp.js';
import { requireTool } from '../helpers/tools.js';

const MiB = 1024 * 1024;

const children = (pid: number): number[] => {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
};
const stat = (pid: number): { comm: string; state: string } | undefined => {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = s.lastIndexOf(')');
    return { comm: s.slice(s.indexOf('(') + 1, close), state: s.slice(close + 2, close + 3) };
  } catch {
    return undefined;
  }
};
const descendants = (pid: number): number[] => children(pid).flatMap((c) => [c, ...descendants(c)]);

/** Resolves with the host pid of the `node` process under `root` once it has stopped itself (state T); rejects if `root` exits first. */
function stoppedNode(root: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`the held push exited (${code}) before it stopped`));
    root.once('exit', onExit);
    const look = () => {
      const node = descendants(root.pid!).find((p) => stat(p)?.comm === 'node' && stat(p)?.state === 'T');
      if (node !== undefined) {
        root.off('exit', onExit);
        resolve(node);
      } else setTimeout(look, 20); // polling /proc for the state change: no time bound
    };
    look();
  });
}

/**
 * The first of 16 pids in a row that no host process or thread holds, in the range the host's
 * pid counter has already passed (pid_max is small and wraps, so low pids are in use again
 * on a machine that has run many processes): free until the counter wraps round once more.
 */
function hostPidGap(): number {
  const last = Number(fs.readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8'));
  const max = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  const free = (t: number) => Array.from({ length: 16 }, (_, i) => t + i).every((p) => !fs.existsSync(`/proc/${p}`));
  const below = Array.from({ length: Math.max(0, last - 200 - 300) }, (_, i) => 300 + i);
  const above = Array.from({ length: Math.max(0, max - 32 - (last + 3000)) }, (_, i) => last + 3000 + i);
  const t = [...below, ...above].find(free);
  if (t === undefined) throw new Error(`no 16 free pids in a row on this host (last pid ${last}, pid_max ${max})`);
  return t;
}

const canUnshare = (): boolean => requireTool('unshare') && process.getuid?.() === 0;

describe.skipIf(!haveRgw() || !canUnshare())('bucket locks across PID namespaces', () => {
  let endpoint: string;
  const started: ChildProcess[] = [];
  const held: number[] = [];
  beforeAll(() => {
    endpoint = rgw().endpoint;
  });
  afterEach(() => {
    for (const pid of held.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const c of started.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  });

  it('a push held in another PID namespace on this host name keeps remote gc off (E_BUSY, exit 6, nothing deleted); it then completes and pulls byte-identical', async () => {
    const dir = tmpDir();
    const data = rng(22).text(2 * MiB);
    fs.writeFileSync(path.join(dir, 'later.raw'), data);
    const bucketName = freshBucket('lockns');
    const [a, b] = ['A', 'B'].map((n) => path.join(dir, n));
    storesOnBucket([a, b], bucketName);
    strataOk(a, ['create', 'later', '--from', path.join(dir, 'later.raw')]);
    const bucket = openBucket({ bucket: bucketName, endpoint });
    try {
      // The push runs as a process of a new PID namespace (not its init: init ignores its own SIGSTOP).
      // The namespace's pids are spent up to a number no host process has (hostPidGap), so the
      // push's pid means nothing on the host, as a container's: judged by kill(pid, 0) it looks dead.
      const gap = hostPidGap();
      const script = `while [ "$(sh -c 'echo $$')" -lt ${gap} ]; do :; done; "$0" "$@"; exit $?`;
      const root = spawn('unshare', ['--pid', '--fork', '--mount-proc', 'bash', '-c', script, process.execPath, STRATA_BIN, '--store', a, 'push', 'later', 'fleet'], {
        env: { ...process.env, STRATA_FAULT: 'push.before-manifest:stop' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      started.push(root);
      let err = '';
      root.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const done = new Promise<number | null>((resolve) => root.on('close', (code) => resolve(code)));
      const node = await stoppedNode(root);
      held.push(node);

      // Held after uploading its packs and layer, before its manifest: gc would see them unreachable.
      const [lock] = await bucket.list('locks/push/');
      const body = JSON.parse((await bucket.get(lock.key, 4096)).toString('utf8'));
      expect(body.pid).not.toBe(node);
      expect(fs.existsSync(`/proc/${body.pid}`)).toBe(false); // its pid means nothing here
      const packs = (await bucket.list('packs/')).map((o) => o.key);
      const layers = (await bucket.list('layers/')).map((o) => o.key);
      expect(packs.length).toBeGreaterThan(0);

      const gc = strata(b, ['remote', 'gc', 'fleet']);
      expect(gc.stderr).toMatch(/has a push running on .* \(pid \d+\)/);
      expect(gc.status).toBe(6);
      expect((await bucket.list('packs/')).map((o) => o.key)).toEqual(packs);
      expect((await bucket.list('layers/')).map((o) => o.key)).toEqual(layers);
      expect((await bucket.list('locks/push/')).map((o) => o.key)).toEqual([lock.key]);

      process.kill(node, 'SIGCONT');
      expect(await done, err).toBe(0);
      held.splice(0);
      expect((await bucket.list('locks/')).length).toBe(0);

      strataOk(b, ['pull', 'fleet/later']);
      const out = path.join(dir, 'later.out');
      strataOk(b, ['export', 'later', out]);
      expect(fs.readFileSync(out).equals(data)).toBe(true);
      expect(JSON.parse(strataOk(b, ['--json', 'remote', 'check', 'fleet', '--read-data']).stdout).status).toBe('clean');
    } finally {
      bucket.close();
    }
  });
});
