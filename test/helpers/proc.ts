/**
 * Waiting on what another process did, read from /proc: for the events a
 * test cannot be told about (a process that is not our child died; a signal
 * was taken off the pending set), through waitUntil.
 */
import fs from 'node:fs';
import { waitUntil } from './wait.js';

/** The pids of `pid`'s children (all threads), from /proc. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    const text = fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
    if (text) out.push(...text.split(/\s+/).map(Number));
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    // A zombie has exited: its locks and files are released already.
    return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** Resolves once `pid` (not necessarily a child of ours) has exited. */
export function pidGone(pid: number): Promise<void> {
  return waitUntil(`process ${pid} to exit`, () => !alive(pid));
}

/**
 * Sends `sig` to `pid` and resolves once the kernel delivered it (it is off
 * the pending sets, so its handler ran or is running). A second signal sent
 * after this cannot merge with the first.
 */
export async function signalDelivered(pid: number, sig: 'SIGINT' | 'SIGTERM'): Promise<void> {
  const bit = 1n << BigInt((sig === 'SIGINT' ? 2 : 15) - 1);
  const read = (f: string) => {
    try {
      return fs.readFileSync(f, 'utf8');
    } catch {
      return ''; // a thread, or the process, that has gone: nothing pending there
    }
  };
  const pending = () => {
    let text = read(`/proc/${pid}/status`);
    for (const t of alive(pid) ? fs.readdirSync(`/proc/${pid}/task`) : []) text += read(`/proc/${pid}/task/${t}/status`);
    return [...text.matchAll(/^(?:SigPnd|ShdPnd):\s+([0-9a-f]+)$/gm)].some((m) => (BigInt(`0x${m[1]}`) & bit) !== 0n);
  };
  process.kill(pid, sig);
  await waitUntil(`${sig} to be delivered to process ${pid}`, () => !pending());
}
