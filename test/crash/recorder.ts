/**
 * Records the file operations real processes make on a store, with strace
 * (`-f -ttt -y -xx`): every byte written, each sync, truncate, punch, create,
 * unlink and rename on strata.db, its WAL and data/*, in the order the kernel
 * saw them, each with the wall-clock time it was entered. libuv may submit
 * file I/O through io_uring, which strace does not see, so traced processes
 * run with UV_USE_IO_URING=0.
 *
 * Times are CLOCK_REALTIME microseconds, the clock strace -ttt prints, so the
 * operations of several traced processes (a server and the CLI commands beside
 * it) merge into one order, and a test marks an acknowledgement (a command
 * exited 0, a FLUSH answered) on the same clock with nowMicros().
 */
import fs from 'node:fs';
import path from 'node:path';

/** A file operation on the store, by path relative to the store directory ('.' is the store itself). */
export type FileOp =
  | { kind: 'open'; t: number; path: string; creat: boolean; trunc: boolean }
  | { kind: 'write'; t: number; path: string; offset: number; data: Buffer }
  | { kind: 'truncate'; t: number; path: string; size: number }
  | { kind: 'punch'; t: number; path: string; offset: number; length: number }
  | { kind: 'allocate'; t: number; path: string; end: number }
  | { kind: 'sync'; t: number; path: string }
  | { kind: 'unlink'; t: number; path: string }
  | { kind: 'rename'; t: number; from: string; to: string };

/** The syscalls that change what a store's files hold or are called. */
export const TRACED = [
  'open', 'openat', 'creat', 'write', 'pwrite64', 'writev', 'pwritev', 'pwritev2',
  'fsync', 'fdatasync', 'ftruncate', 'truncate', 'fallocate',
  'unlink', 'unlinkat', 'rename', 'renameat', 'renameat2',
];

/** argv that runs `cmd args` under strace, writing its trace to `traceFile`. */
export function straced(traceFile: string, cmd: string, args: readonly string[]): string[] {
  return ['strace', '-f', '-ttt', '-y', '-xx', '-s', '8388608', '-o', traceFile, '-e', `trace=${TRACED.join(',')}`, cmd, ...args];
}

/** The environment traced processes need: every file write a real syscall. */
export const TRACE_ENV = { UV_USE_IO_URING: '0' };

/**
 * Now on strace -ttt's clock (CLOCK_REALTIME), in microseconds, rounded
 * `down` (a step's start: no earlier operation is counted as its own) or up
 * (an acknowledgement: every operation before it is counted before it).
 * Date.now(), not performance.timeOrigin + now(): that drifts from the
 * real-time clock by milliseconds.
 */
export function nowMicros(round: 'down' | 'up'): number {
  return (Date.now() + (round === 'up' ? 1 : 0)) * 1000;
}

const hex = (s: string): Buffer => Buffer.from(s.replace(/\\x/g, ''), 'hex');

/** A quoted -xx string ("\x2f\x74...") as bytes; `...` after it means strace cut it. */
function str(arg: string): { bytes: Buffer; cut: boolean } {
  const m = /^"((?:\\x[0-9a-f]{2})*)"(\.\.\.)?$/.exec(arg.trim());
  if (!m) throw new Error(`recorder: not a strace string: ${arg.slice(0, 80)}`);
  return { bytes: hex(m[1]), cut: m[2] !== undefined };
}

/** The path strace -y shows after a descriptor: `19<\x2f...>`. */
function fdPath(arg: string): string | null {
  const m = /^-?\w+<((?:\\x[0-9a-f]{2})*)>$/.exec(arg.trim());
  return m ? hex(m[1]).toString('utf8') : null;
}

/** Splits an argument list at commas outside [], {}, <> and quotes. */
function splitArgs(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let cur = '';
  for (const c of s) {
    if (c === '"') quoted = !quoted;
    else if (!quoted && '[{<'.includes(c)) depth++;
    else if (!quoted && ']}>'.includes(c)) depth--;
    if (c === ',' && depth === 0 && !quoted) {
      out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  if (cur.trim() !== '') out.push(cur.trim());
  return out;
}

/** Joins strace's `<unfinished ...>` / `<... name resumed>` halves, keeping the entry time. */
function wholeLines(text: string): string[] {
  const pending = new Map<string, string>();
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const pid = /^(\d+)\s/.exec(line)?.[1];
    if (!pid) continue;
    if (line.endsWith(' <unfinished ...>')) {
      pending.set(pid, line.slice(0, -' <unfinished ...>'.length));
      continue;
    }
    const resumed = /^\d+\s+[\d.]+\s+<\.\.\. \w+ resumed>(.*)$/.exec(line);
    if (resumed) {
      const head = pending.get(pid);
      pending.delete(pid);
      if (head !== undefined) out.push(head + resumed[1]);
      continue;
    }
    out.push(line);
  }
  return out;
}

/**
 * The operations on files under `store` in one strace output, in order.
 * Failed calls change nothing and are left out. The lock file, the SQLite
 * shared-memory index (-shm, rebuilt from the WAL by the first opener after
 * a crash) and run/ hold nothing a crash could lose; they are left out too.
 */
export function parseTrace(text: string, store: string): FileOp[] {
  const root = path.resolve(store);
  const rel = (p: string): string | null => {
    const abs = path.resolve(p);
    if (abs === root) return '.';
    if (!abs.startsWith(root + '/')) return null;
    const r = abs.slice(root.length + 1);
    return r === 'lock' || r.endsWith('-shm') || r.startsWith('run/') || r === 'run' ? null : r;
  };
  const at = (dirArg: string, nameArg: string): string => {
    const name = str(nameArg).bytes.toString('utf8');
    if (name.startsWith('/')) return name;
    const dir = fdPath(dirArg);
    if (dir === null) throw new Error(`recorder: relative path ${name} with no directory`);
    return path.join(dir, name);
  };
  const ops: FileOp[] = [];
  for (const line of wholeLines(text)) {
    const m = /^\d+\s+(\d+)\.(\d{6})\s+(\w+)\((.*)\)\s+=\s+(-?\d+)/.exec(line);
    if (!m) continue; // a signal, an exit, or a call that failed with '?'
    const t = Number(m[1]) * 1_000_000 + Number(m[2]);
    const [name, argText, ret] = [m[3], m[4], Number(m[5])];
    if (ret < 0) continue;
    const args = splitArgs(argText);
    const onFd = () => {
      const p = fdPath(args[0]);
      return p === null ? null : rel(p);
    };
    switch (name) {
      case 'open':
      case 'openat':
      case 'creat': {
        const p = rel(name === 'openat' ? at(args[0], args[1]) : str(args[0]).bytes.toString('utf8'));
        if (p === null) break;
        const flags = name === 'creat' ? 'O_CREAT|O_TRUNC' : args[name === 'openat' ? 2 : 1];
        ops.push({ kind: 'open', t, path: p, creat: flags.includes('O_CREAT'), trunc: flags.includes('O_TRUNC') });
        break;
      }
      case 'pwrite64': {
        const p = onFd();
        if (p === null) break;
        const { bytes, cut } = str(args[1]);
        if (cut && bytes.length < ret) throw new Error(`recorder: strace cut a ${ret}-byte write to ${p}`);
        ops.push({ kind: 'write', t, path: p, offset: Number(args[3]), data: bytes.subarray(0, ret) });
        break;
      }
      case 'pwritev':
      case 'pwritev2': {
        const p = onFd();
        if (p === null) break;
        const bases = [...args[1].matchAll(/iov_base=("(?:\\x[0-9a-f]{2})*"(?:\.\.\.)?)/g)].map((b) => str(b[1]).bytes);
        const data = Buffer.concat(bases);
        if (data.length < ret) throw new Error(`recorder: strace cut a ${ret}-byte pwritev to ${p}`);
        ops.push({ kind: 'write', t, path: p, offset: Number(args[3]), data: data.subarray(0, ret) });
        break;
      }
      case 'write':
      case 'writev': {
        // No offset in the call: the model would need each descriptor's position. strata and
        // SQLite write store files only with pwrite; say so loudly if that ever changes.
        const p = onFd();
        if (p !== null) throw new Error(`recorder: ${name} without an offset on store file ${p}`);
        break;
      }
      case 'fsync':
      case 'fdatasync': {
        const p = onFd();
        if (p !== null) ops.push({ kind: 'sync', t, path: p });
        break;
      }
      case 'ftruncate':
      case 'truncate': {
        const p = name === 'truncate' ? rel(str(args[0]).bytes.toString('utf8')) : onFd();
        if (p !== null) ops.push({ kind: 'truncate', t, path: p, size: Number(args[1]) });
        break;
      }
      case 'fallocate': {
        const p = onFd();
        if (p === null) break;
        const [mode, offset, length] = [args[1], Number(args[2]), Number(args[3])];
        if (mode.includes('PUNCH_HOLE') || mode.includes('ZERO_RANGE')) ops.push({ kind: 'punch', t, path: p, offset, length });
        if (!mode.includes('KEEP_SIZE')) ops.push({ kind: 'allocate', t, path: p, end: offset + length });
        break;
      }
      case 'unlink':
      case 'unlinkat': {
        const p = rel(name === 'unlinkat' ? at(args[0], args[1]) : str(args[0]).bytes.toString('utf8'));
        if (p !== null) ops.push({ kind: 'unlink', t, path: p });
        break;
      }
      case 'rename':
      case 'renameat':
      case 'renameat2': {
        const [from, to] = name === 'rename' ? [str(args[0]).bytes.toString('utf8'), str(args[1]).bytes.toString('utf8')] : [at(args[0], args[1]), at(args[2], args[3])];
        const [rf, rt] = [rel(from), rel(to)];
        if (rf === null && rt === null) break;
        if (rf === null || rt === null) throw new Error(`recorder: rename across the store's edge: ${from} -> ${to}`);
        ops.push({ kind: 'rename', t, from: rf, to: rt });
        break;
      }
    }
  }
  return ops;
}

/** The operations of several traces (processes that ran side by side) in one order, by entry time. */
export function mergeTraces(files: readonly string[], store: string): FileOp[] {
  const all = files.flatMap((f) => parseTrace(fs.readFileSync(f, 'latin1'), store));
  // A stable sort: one process's calls keep their order even within one microsecond.
  return all.sort((a, b) => a.t - b.t);
}
