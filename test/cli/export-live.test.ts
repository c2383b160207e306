/**
 * `export` and `read` of a leaf that `strata serve` is writing: the copy is
 * one point in time (a view the server takes between two requests, after a
 * flush), never a mix of before and after; the view is gone afterwards, also
 * after a crash of either process; a server that cannot be asked is refused
 * with a hint; `--shared` is the old read as it changes.
 *
 * The writer is a real NBD client (qemu-io). The export is held part-way
 * through by its own output: it writes into a FIFO whose reader (dd) stops
 * after 1 MiB, so the export has read its first 4 MiB chunk and is blocked
 * writing it while the client writes new bytes over the whole disk and
 * flushes. The image is just over 1 GiB, so an export reading the leaf
 * itself reads its last chunk only after that (a second extent window).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { openImage } from '../../src/image/image.js';
import { openStore } from '../../src/store/core/store.js';
import { strata, strataOk, strataSpawn } from '../helpers/cli.js';
import { spawnTracked } from '../helpers/processes.js';
import { startServe } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';
import { requireTool, runOk } from '../helpers/tools.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Just past one extent window (formats/source.ts): the export reads the last 4 MiB in a second window. */
const SIZE = GiB + 4 * MiB;
const need = () => ['qemu-io', 'qemu-img', 'dd', 'mkfifo'].map(requireTool).every(Boolean);

const writePattern = (uri: string, byte: number) =>
  runOk('qemu-io', ['-f', 'raw', uri, '-c', `write -P ${byte} 0 4M`, '-c', `write -P ${byte} 1G 4M`, '-c', 'flush']);

/** Bytes [offset, offset + n) of the flushed state with `byte` in both 4 MiB runs. */
function stateBytes(byte: number, offset: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (const at of [0, GiB]) {
    const from = Math.max(at, offset);
    const to = Math.min(at + 4 * MiB, offset + n);
    if (from < to) b.fill(byte, from - offset, to - offset);
  }
  return b;
}

/**
 * A raw file (the image from `shift` on) equals the flushed state with `byte`
 * in both runs. Only its allocated extents are read (qemu-img map): the
 * rest are holes, which read zero; reading a whole GiB costs seconds.
 */
async function expectState(file: string, byte: number, shift = 0): Promise<void> {
  expect(fs.statSync(file).size).toBe(SIZE - shift);
  const map = JSON.parse((await runOk('qemu-img', ['map', '--output=json', '-f', 'raw', file])).stdout) as { start: number; length: number; data: boolean }[];
  const fd = fs.openSync(file, 'r');
  try {
    for (const e of map) {
      if (!e.data) continue;
      for (let off = e.start; off < e.start + e.length; off += 4 * MiB) {
        const n = Math.min(4 * MiB, e.start + e.length - off);
        const got = Buffer.alloc(n);
        fs.readSync(fd, got, 0, n, off);
        const want = stateBytes(byte, off + shift, n);
        if (!got.equals(want)) {
          let i = 0;
          while (got[i] === want[i]) i++;
          expect.fail(`${file}: byte ${off + shift + i} of the image is 0x${got[i].toString(16)}, not 0x${want[i].toString(16)}`);
        }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** strata's hidden images (imports, views) still in the store. */
function hiddenImages(store: string): string[] {
  const db = new Database(path.join(store, 'strata.db'), { readonly: true });
  try {
    return (db.prepare("SELECT name FROM images WHERE substr(name, 1, 1) = '.'").pluck().all() as string[]).sort();
  } finally {
    db.close();
  }
}

async function servedLeaf() {
  const store = tmpDir();
  strataOk(store, ['create', 'vm', '--size', String(SIZE)]);
  const srv = await startServe(store, ['vm']);
  await writePattern(srv.uri('vm'), 0xaa);
  return { store, srv, dir: tmpDir() };
}

/** A FIFO held open read-write here, so neither end ever sees the other gone between readers. */
function heldFifo(dir: string): { fifo: string; close(): void } {
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const fd = fs.openSync(fifo, fs.constants.O_RDWR);
  return { fifo, close: () => fs.closeSync(fd) };
}

/** Reads `mib` MiB from the FIFO into `out` (holes where zero) and exits. */
async function readMiB(fifo: string, out: string, mib: number): Promise<void> {
  const dd = spawnTracked('dd', [`if=${fifo}`, `of=${out}`, 'bs=1M', `count=${mib}`, 'iflag=fullblock', 'conv=sparse', 'status=none']);
  const e = await dd.exited;
  if (e.code !== 0) throw new Error(`dd exited ${e.code ?? e.signal}: ${dd.stderr}`);
}

describe('export of a leaf strata serve is writing', () => {
  it.runIf(need())('is one flushed state, taken through the server, even while a client writes and flushes during the export', async () => {
    const { store, srv, dir } = await servedLeaf();
    const { fifo, close } = heldFifo(dir);
    let said = '';
    try {
      const exp = strataSpawn(store, ['export', 'vm', fifo]);
      // dd got 1 MiB: the export has read its first 4 MiB chunk and is blocked writing it.
      await readMiB(fifo, path.join(dir, 'head'), 1);
      await writePattern(srv.uri('vm'), 0xbb);
      await readMiB(fifo, path.join(dir, 'tail'), SIZE / MiB - 1);
      const e = await exp.exited;
      expect(e.code, exp.stderr).toBe(0);
      said = exp.stdout;
    } finally {
      close();
    }
    // Exactly the state flushed before the export: none of the writes made during it.
    expect(fs.readFileSync(path.join(dir, 'head')).equals(Buffer.alloc(MiB, 0xaa))).toBe(true);
    await expectState(path.join(dir, 'tail'), 0xaa, MiB);
    expect(said).toBe(`exported vm to ${fifo} (1.00 GiB virtual, 8 MiB written): a point-in-time snapshot taken through strata serve (pid ${srv.pid})\n`);
    // The leaf goes on with the new writes; the view is gone and the store is consistent.
    await runOk('qemu-io', ['-f', 'raw', srv.uri('vm'), '-c', 'read -P 0xbb 0 4M', '-c', 'read -P 0xbb 1G 4M']);
    expect(hiddenImages(store)).toEqual([]);
    expect((await srv.stop()).code).toBe(0);
    expect(strata(store, ['check']).status).toBe(0);
  });

  it.runIf(need())('--json says how the copy was taken; read of a served leaf goes through the server too', async () => {
    const { store, srv, dir } = await servedLeaf();
    const out = path.join(dir, 'vm.raw');
    const r = JSON.parse(strataOk(store, ['export', 'vm', out, '--json']).stdout);
    expect(r).toEqual({ name: 'vm', virtualSize: SIZE, files: [out], dataBytes: 8 * MiB, source: { kind: 'server-snapshot', serverPid: srv.pid, keptAs: null } });
    await expectState(out, 0xaa);
    const part = path.join(dir, 'part.bin');
    expect(strataOk(store, ['read', 'vm', part, '--offset', '1G', '--length', '4096']).stdout).toBe(
      `read 4096 bytes of vm at offset ${GiB} into ${part}: a point-in-time snapshot taken through strata serve (pid ${srv.pid})\n`,
    );
    expect(fs.readFileSync(part).equals(Buffer.alloc(4096, 0xaa))).toBe(true);
    expect(strataOk(store, ['read', 'vm', '-', '--length', '8']).out.equals(Buffer.alloc(8, 0xaa))).toBe(true);
    expect(hiddenImages(store)).toEqual([]);
    expect((await srv.stop()).code).toBe(0);
  });

  it.runIf(need())('--keep keeps the point-in-time snapshot as a frozen image that reads what was exported', async () => {
    const { store, srv, dir } = await servedLeaf();
    const out = path.join(dir, 'vm.raw');
    expect(strataOk(store, ['export', 'vm', out, '--keep', 'vm-backup']).stdout).toMatch(/: a point-in-time snapshot taken through strata serve \(pid \d+\), kept as vm-backup\n$/);
    await writePattern(srv.uri('vm'), 0xbb);
    const again = path.join(dir, 'backup.raw');
    strataOk(store, ['export', 'vm-backup', again]);
    await expectState(out, 0xaa);
    await expectState(again, 0xaa);
    // A name already taken is refused before anything is read or made.
    const taken = strata(store, ['export', 'vm', path.join(dir, 'x.raw'), '--keep', 'vm-backup']);
    expect(taken.status).toBe(ERROR_CODES.E_EXISTS);
    expect(fs.existsSync(path.join(dir, 'x.raw'))).toBe(false);
    expect(hiddenImages(store)).toEqual([]);
    expect((await srv.stop()).code).toBe(0);
    expect(strata(store, ['check']).status).toBe(0);
  });

  it.runIf(need())('a server that cannot be reached is refused in one line with a hint, the store unchanged; --shared reads the leaf as it is', async () => {
    const { store, srv, dir } = await servedLeaf();
    // The server's control socket is gone (its run dir wiped): its lease still names it.
    for (const f of fs.readdirSync(path.join(store, 'run'))) fs.rmSync(path.join(store, 'run', f));
    const out = path.join(dir, 'vm.raw');
    const r = strata(store, ['export', 'vm', out]);
    expect(r.status).toBe(ERROR_CODES.E_BUSY);
    expect(r.stderr).toMatch(/^strata: image vm is held by a server that cannot be reached at \S+ \(ENOENT\); retry, or stop that server; or pass --shared to read it as it changes \(the copy may mix data from before and after writes made during the read\)\n$/);
    expect(fs.existsSync(out)).toBe(false);
    expect(hiddenImages(store)).toEqual([]);
    const shared = strataOk(store, ['export', 'vm', out, '--shared']);
    expect(shared.stdout).toBe(`exported vm to ${out} (1.00 GiB virtual, 8 MiB written): read with --shared: writes made during the read may show in part\n`);
    await expectState(out, 0xaa);
    expect(strata(store, ['export', 'vm', out, '--shared', '--keep', 'k']).status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect((await srv.stop()).code).toBe(0);
  });

  it.runIf(need())('an export killed part-way leaves a view that the next command drops; the store checks clean', async () => {
    const { store, srv, dir } = await servedLeaf();
    const { fifo, close } = heldFifo(dir);
    try {
      const exp = strataSpawn(store, ['export', 'vm', fifo]);
      await readMiB(fifo, path.join(dir, 'head'), 1);
      // Blocked in its write, holding the view: killed as a crash would.
      expect(hiddenImages(store)).toHaveLength(1);
      await exp.kill();
    } finally {
      close();
    }
    await writePattern(srv.uri('vm'), 0xbb);
    strataOk(store, ['ls']);
    expect(hiddenImages(store)).toEqual([]);
    expect((await srv.stop()).code).toBe(0);
    expect(strata(store, ['check']).status).toBe(0);
    const out = path.join(dir, 'vm.raw');
    strataOk(store, ['export', 'vm', out]);
    await expectState(out, 0xbb);
  });

  it.runIf(need())('a server killed right after it made the view: the export fails in one line, and nothing is left', async () => {
    const store = tmpDir();
    const dir = tmpDir();
    strataOk(store, ['create', 'vm', '--size', String(SIZE)]);
    const srv = await startServe(store, ['vm'], { env: { STRATA_FAULT: 'view.after-commit' } });
    await writePattern(srv.uri('vm'), 0xaa);
    const out = path.join(dir, 'vm.raw');
    const r = strata(store, ['export', 'vm', out]);
    expect(r.status).toBe(ERROR_CODES.E_BUSY);
    expect((await srv.exited).signal).toBe('SIGKILL');
    expect(r.stderr.split('\n')).toHaveLength(2);
    expect(fs.existsSync(out)).toBe(false);
    strataOk(store, ['ls']);
    expect(hiddenImages(store)).toEqual([]);
    expect(strata(store, ['check']).status).toBe(0);
    strataOk(store, ['export', 'vm', out]);
    await expectState(out, 0xaa);
  });

  it('a leaf held by a writer that takes no requests is refused in one line with the --shared hint; --shared reads it', async () => {
    const store = tmpDir();
    const out = path.join(tmpDir(), 'vm.raw');
    strataOk(store, ['create', 'vm', '--size', '1M']);
    const s = await openStore(store, { create: false });
    const w = openImage(s, 'vm', { writable: true });
    try {
      w.write(0, Buffer.alloc(4096, 0x5a));
      w.flush();
      const r = strata(store, ['export', 'vm', out]);
      expect(r.status).toBe(ERROR_CODES.E_BUSY);
      expect(r.stderr).toBe(
        `strata: image vm is being written by process ${process.pid}, which cannot take a point-in-time snapshot; stop it, or pass --shared to read it as it changes (the copy may mix data from before and after writes made during the read)\n`,
      );
      expect(strata(store, ['read', 'vm', '-', '--length', '4096']).status).toBe(ERROR_CODES.E_BUSY);
      expect(fs.existsSync(out)).toBe(false);
      expect(strataOk(store, ['read', 'vm', '-', '--length', '4096', '--shared']).out.equals(Buffer.alloc(4096, 0x5a))).toBe(true);
    } finally {
      w.close();
      s.close();
    }
    // Once the writer is gone, the leaf is exported as it is.
    expect(strataOk(store, ['export', 'vm', out]).stdout).toBe(`exported vm to ${out} (1 MiB virtual, 4 KiB written)\n`);
  });
});
