/**
 * The crash-state model on its own, from hand-written strace lines: the
 * POSIX rules the crash-state test relies on (a name is durable only after
 * its directory's fsync, a file's content only up to its last sync, an
 * unlinked name keeps its old inode until the directory is synced) and the
 * parsing of strace's split lines.
 */
import { describe, expect, it } from 'vitest';
import { parseTrace, type FileOp } from './recorder.js';
import { crashStates, type Files } from './states.js';

const S = '/st';
const x = (s: string | Buffer) => [...Buffer.from(s)].map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('');
let clock = 1_000_000;
const line = (call: string, ret: string) => `42 ${(clock++ / 1e6).toFixed(6)} ${call} = ${ret}`;
const fd = (n: number, p: string) => `${n}<${x(p)}>`;
const open = (p: string, flags: string) => line(`openat(AT_FDCWD<${x('/')}>, "${x(p)}", ${flags}, 0600)`, fd(9, p));
const pwrite = (p: string, data: Buffer, at: number) => line(`pwrite64(${fd(9, p)}, "${x(data)}", ${data.length}, ${at})`, String(data.length));
const sync = (p: string) => line(`fsync(${fd(9, p)})`, '0');
const unlink = (p: string) => line(`unlink("${x(p)}")`, '0');

function final(ops: FileOp[], initial: Files, variant: RegExp): Files[] {
  return crashStates(initial, ops, { seed: 1, keepDuplicates: true }).filter((s) => s.at === ops.length && variant.test(s.variant)).map((s) => s.files);
}

describe('crash states from a trace', () => {
  it('a new file survives a power cut only once its directory is synced, and holds only what was synced', () => {
    const a = Buffer.alloc(4096, 1);
    const b = Buffer.alloc(4096, 2);
    const head = [open(`${S}/data/000001.dat`, 'O_RDWR|O_CREAT|O_CLOEXEC'), pwrite(`${S}/data/000001.dat`, a, 0), sync(`${S}/data/000001.dat`), pwrite(`${S}/data/000001.dat`, b, 4096)];
    const unsyncedDir = parseTrace(head.join('\n'), S);
    expect(final(unsyncedDir, new Map(), /synced only/)[0].has('data/000001.dat')).toBe(false);
    // A SIGKILL keeps what the processes saw.
    expect(final(unsyncedDir, new Map(), /process killed/)[0].get('data/000001.dat')).toEqual(Buffer.concat([a, b]));
    const synced = parseTrace([...head, sync(`${S}/data`)].join('\n'), S);
    expect(final(synced, new Map(), /synced only/)[0].get('data/000001.dat')).toEqual(a);
  });

  it('an unlinked and recreated WAL keeps its old content until the directory is synced', () => {
    const initial: Files = new Map([['strata.db-wal', Buffer.from('old frames')]]);
    const ops = parseTrace([unlink(`${S}/strata.db-wal`), open(`${S}/strata.db-wal`, 'O_RDWR|O_CREAT'), pwrite(`${S}/strata.db-wal`, Buffer.from('new'), 0), sync(`${S}/strata.db-wal`)].join('\n'), S);
    expect(final(ops, initial, /synced only/)[0].get('strata.db-wal')).toEqual(Buffer.from('old frames'));
    expect(final(ops, initial, /process killed/)[0].get('strata.db-wal')).toEqual(Buffer.from('new'));
  });

  it('an unsynced write is kept, dropped or torn only at 512-byte sectors', () => {
    const initial: Files = new Map([['strata.db', Buffer.alloc(8 * 512, 0)]]);
    const writes = Array.from({ length: 6 }, (_, i) => pwrite(`${S}/strata.db`, Buffer.alloc(8 * 512, i + 1), 0));
    const states = crashStates(initial, parseTrace(writes.join('\n'), S), { seed: 7, randomPerPoint: 8 });
    expect(states.length).toBeGreaterThan(3);
    for (const s of states) {
      const db = s.files.get('strata.db')!;
      expect(db.length).toBe(8 * 512);
      // Every sector is one write's, whole.
      for (let sec = 0; sec < 8; sec++) expect(new Set(db.subarray(sec * 512, sec * 512 + 512)).size).toBe(1);
    }
    // ... and some state has a write torn: sectors of different writes side by side.
    expect(states.some((s) => new Set(s.files.get('strata.db')!).size > 1)).toBe(true);
  });

  it("joins strace's unfinished and resumed halves, and leaves out the lock file, -shm and failed calls", () => {
    const text = [
      `42 1.000001 pwrite64(${fd(9, `${S}/strata.db`)}, "${x('ab')}", 2, 10 <unfinished ...>`,
      `43 1.000002 fsync(${fd(7, `${S}/lock`)}) = 0`,
      `42 1.000003 <... pwrite64 resumed>) = 2`,
      line(`pwrite64(${fd(8, `${S}/strata.db-shm`)}, "${x('z')}", 1, 0)`, '1'),
      line(`openat(AT_FDCWD<${x('/')}>, "${x(`${S}/data/000002.dat`)}", O_RDWR|O_CLOEXEC)`, '-1 ENOENT (No such file or directory)'),
    ].join('\n');
    expect(parseTrace(text, S)).toEqual([{ kind: 'write', t: 1_000_001, path: 'strata.db', offset: 10, data: Buffer.from('ab') }]);
  });
});
