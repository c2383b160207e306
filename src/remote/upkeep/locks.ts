/**
 * Locks in the bucket, restic's way: pushes never exclude one another, and
 * `remote gc` runs alone.
 *
 *   locks/push/<host>-<pid>-<random>   one per running push (shared)
 *   locks/gc                           the one gc (exclusive: a conditional
 *                                      write, If-None-Match: *)
 *
 * Why gc needs them: a push reuses blocks the bucket already holds and
 * uploads packs before the manifest that makes them reachable. A gc running
 * meanwhile would see those packs unreachable, or delete a pack the push is
 * counting on. So gc takes its lock first and then looks for pushes; a push
 * writes its lock first and then looks for gc. The bucket lists what was
 * written before (RGW and S3 are read-after-write consistent), so of a
 * push and a gc that start together at least one sees the other and backs
 * off with E_BUSY. Pulls and lazy reads take no lock: gc deletes only what
 * no manifest reaches or what it has copied, and a reader that finds a pack
 * gone re-reads the indexes (fetch.ts).
 *
 * A holder rewrites its lock every HEARTBEAT_MS. A lock is stale, and is
 * ignored and removed by the next taker, when its holder's process is gone
 * or it has not been rewritten for STALE_MS (a holder elsewhere that died).
 * "Gone" is judged by kill(pid, 0) only where the pid means what it meant
 * to the holder: the same host name, PID namespace and boot (the lock body
 * records all three). A push in a container that shares the host name
 * (host networking, Kubernetes hostNetwork) has pids of its own namespace;
 * read on the host, its pid names another process or none, and judging by
 * it would let gc delete what that push is uploading. Such holders, and
 * bodies from before these fields, are judged by age alone. Age is measured
 * against the bucket's clock (object times), never this host's.
 */
import fs from 'node:fs';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { StrataError } from '../../errors.js';
import type { Remote } from '../remote.js';

const HEARTBEAT_MS = 60_000;
/** A lock body is a line of JSON (body() below): a larger object is no lock of ours, judged by its age alone. */
const MAX_LOCK_BYTES = 4096;
const STALE_MS = 5 * HEARTBEAT_MS;

export type LockKind = 'push' | 'gc';

interface LockBody {
  kind: LockKind;
  host: string;
  pid: number;
  /** The holder's PID namespace (readlink /proc/self/ns/pid) and boot id: where `pid` means a process. */
  pidNs?: string;
  bootId?: string;
  startedAt: string;
}

export interface HeldLock {
  readonly key: string;
  release(): Promise<void>;
}

const lockDir = (r: Remote) => `${r.config.prefix}locks/`;
const gcKey = (r: Remote) => `${lockDir(r)}gc`;
const pushDir = (r: Remote) => `${lockDir(r)}push/`;

const read = (f: () => string): string | undefined => {
  try {
    return f().trim();
  } catch {
    return undefined; // not Linux, or no /proc: holders here are judged by age
  }
};

/** Where this process's pid means what it says: its host, PID namespace and boot. */
const here = {
  host: os.hostname(),
  pidNs: read(() => fs.readlinkSync('/proc/self/ns/pid')),
  bootId: read(() => fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')),
};

/** True when `b`'s pid names a process of this host's same PID namespace and boot, other than us. */
const pidIsOurs = (b: LockBody): boolean =>
  b.host === here.host && here.pidNs !== undefined && b.pidNs === here.pidNs && here.bootId !== undefined && b.bootId === here.bootId && Number.isInteger(b.pid) && b.pid !== process.pid;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface Found {
  key: string;
  body: LockBody | undefined;
  modified: Date | undefined;
}

/** Every lock of `prefix`, with its holder, and the bucket's idea of now (the newest lock's time, ours included). */
async function readLocks(r: Remote, prefix: string): Promise<Found[]> {
  const listed = await r.bucket.list(prefix);
  const out: Found[] = [];
  for (const o of listed) {
    let body: LockBody | undefined;
    try {
      const b = JSON.parse((await r.bucket.get(o.key, MAX_LOCK_BYTES)).toString('utf8')) as Partial<LockBody> | null;
      // Written by anyone who can write the bucket: a holder only if every field is what body() writes.
      body = b && typeof b.host === 'string' && Number.isSafeInteger(b.pid) && typeof b.startedAt === 'string' && (b.kind === 'push' || b.kind === 'gc') ? (b as LockBody) : undefined;
    } catch (e) {
      if (e instanceof StrataError && e.code === 'E_NOT_FOUND') continue; // released meanwhile
      body = undefined; // unreadable: judged by its age alone
    }
    out.push({ key: o.key, body, modified: o.modified });
  }
  return out;
}

function stale(l: Found, now: Date | undefined): boolean {
  if (l.body && pidIsOurs(l.body)) return !alive(l.body.pid);
  if (!l.modified || !now) return false;
  return now.getTime() - l.modified.getTime() > STALE_MS;
}

const holder = (l: Found) => (l.body ? `${l.body.host} (pid ${l.body.pid}) since ${l.body.startedAt}` : `an unknown holder (${l.key})`);

/** A lock just written, kept fresh until released. */
function hold(r: Remote, key: string, bytes: Buffer): HeldLock {
  const t = setInterval(() => void r.bucket.put(key, bytes).catch(() => undefined), HEARTBEAT_MS);
  t.unref();
  return {
    key,
    async release() {
      clearInterval(t);
      await r.bucket.remove(key);
    },
  };
}

/** Keeps `lock` if `look` finds no one in the way; else releases it and throws what look threw. */
async function keepIf(lock: HeldLock, look: () => Promise<void>): Promise<HeldLock> {
  try {
    await look();
    return lock;
  } catch (e) {
    await lock.release().catch(() => undefined);
    throw e;
  }
}

const body = (kind: LockKind): Buffer =>
  Buffer.from(JSON.stringify({ kind, host: here.host, pid: process.pid, pidNs: here.pidNs, bootId: here.bootId, startedAt: new Date().toISOString() } satisfies LockBody) + '\n');

/** The bucket's clock now: the time it gave the object we just wrote. */
async function bucketNow(r: Remote, key: string): Promise<Date | undefined> {
  const [o] = (await r.bucket.list(key)).filter((x) => x.key === key);
  return o?.modified;
}

/** A push's shared lock. E_BUSY while a gc holds the bucket. */
export async function lockForPush(r: Remote): Promise<HeldLock> {
  const key = `${pushDir(r)}${os.hostname().replace(/[^A-Za-z0-9._-]/g, '_')}-${process.pid}-${randomBytes(4).toString('hex')}`;
  const bytes = body('push');
  await r.bucket.put(key, bytes);
  return keepIf(hold(r, key, bytes), async () => {
    const now = await bucketNow(r, key);
    const gc = (await readLocks(r, gcKey(r))).find((l) => l.key === gcKey(r));
    if (gc && !stale(gc, now)) {
      throw new StrataError('E_BUSY', `remote ${r.config.name} is being collected by remote gc on ${holder(gc)}; push again when it ends`, { remote: r.config.name, lock: gc.key });
    }
  });
}

/** gc's exclusive lock. E_BUSY while another gc or any push holds the bucket; stale locks are cleared. */
export async function lockForGc(r: Remote): Promise<HeldLock> {
  const key = gcKey(r);
  const bytes = body('gc');
  for (let attempt = 0; ; attempt++) {
    if (await r.bucket.putNew(key, bytes)) break;
    const [held] = (await readLocks(r, key)).filter((l) => l.key === key);
    if (!held) continue; // released between the two requests
    // Measure its age against a fresh object's time: the bucket's clock, not ours.
    const probe = `${pushDir(r)}.clock-${randomBytes(4).toString('hex')}`;
    await r.bucket.put(probe, Buffer.alloc(0));
    const now = await bucketNow(r, probe);
    await r.bucket.remove(probe);
    if (attempt > 0 || !stale(held, now)) {
      throw new StrataError('E_BUSY', `remote gc is already running on ${r.config.name}: ${holder(held)}`, { remote: r.config.name, lock: key });
    }
    await r.bucket.remove(key);
  }
  return keepIf(hold(r, key, bytes), async () => {
    const now = await bucketNow(r, key);
    for (const p of await readLocks(r, pushDir(r))) {
      if (p.key.includes('/.clock-')) continue;
      if (stale(p, now)) {
        await r.bucket.remove(p.key);
        continue;
      }
      throw new StrataError('E_BUSY', `remote ${r.config.name} has a push running on ${holder(p)}; run remote gc when it ends`, { remote: r.config.name, lock: p.key });
    }
  });
}
