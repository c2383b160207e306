/**
 * Formats strata does not parse (VHD, VHDX, VMDK, VDI, QED, ...) are read
 * through qemu-nbd, QEMU's own reader, when it is installed. Run safely:
 *
 * - the format is always given (`--format`), never probed by QEMU;
 * - read-only, on a Unix socket in a fresh private directory;
 * - a file with a backing file is refused first (`qemu-img info`, which
 *   does not open backing files), so QEMU never opens, or probes the
 *   format of, a file the user did not name;
 * - the path is absolute, so QEMU never takes part of it for a protocol
 *   prefix ("nbd:", "json:");
 * - qemu-nbd is stopped when the copy ends, however it ends (it also exits
 *   by itself once its one client disconnects: no --persistent).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StrataError, inputError, isStrataError, unsupported } from '../errors.js';
import { connectNbd, type NbdClient } from '../nbd/client.js';
import type { Store, ImageRecord } from '../store/core/index.js';
import { beginImport, fileStamp, type ImportOptions } from './import.js';
import { FORMAT_LABEL, type ForeignFormat } from './magic.js';

function onPath(tool: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => {
    try {
      fs.accessSync(path.join(dir, tool), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The way in when qemu-nbd is missing, for the refusal. */
function howToConvert(file: string, format: ForeignFormat): string {
  return `install qemu-utils (qemu-nbd) to import it directly, or convert it first: qemu-img convert -f ${format} -O raw ${file} ${path.basename(file)}.raw`;
}

interface QemuInfo {
  'virtual-size': number;
  'backing-filename'?: string;
  encrypted?: boolean;
}

function qemuImgInfo(abs: string, file: string, format: ForeignFormat): QemuInfo {
  const r = spawnSync('qemu-img', ['info', '--output=json', '-f', format, abs], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) {
    const why = (r.stderr || r.error?.message || '').trim().split('\n')[0].replace(/^qemu-img: /, '');
    throw inputError(`qemu-img cannot read ${file} as ${FORMAT_LABEL[format]}: ${why}`, { file, format });
  }
  return JSON.parse(r.stdout) as QemuInfo;
}

async function waitForSocket(sock: string, child: ChildProcess, stderr: () => string, file: string, timeoutMs = 15_000): Promise<NbdClient> {
  const t0 = Date.now();
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const why = stderr().trim().split('\n')[0]?.replace(/^qemu-nbd: /, '') || `exit ${child.exitCode ?? child.signalCode}`;
      throw inputError(`qemu-nbd cannot read ${file}: ${why}`, { file });
    }
    if (fs.existsSync(sock)) {
      try {
        return await connectNbd(sock);
      } catch (e) {
        if (e instanceof StrataError) throw e;
        // Listening not yet: try again.
      }
    }
    if (Date.now() - t0 > timeoutMs) throw new StrataError('E_IO', `qemu-nbd did not start serving ${file} within ${timeoutMs / 1000} s`, { file });
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await gone;
  clearTimeout(timer);
}

/**
 * Serves `file` as `format` with qemu-nbd and hands `fn` a connected client;
 * qemu-nbd and its socket directory are gone when this returns or throws.
 */
export async function withQemuNbd<T>(file: string, format: ForeignFormat, fn: (client: NbdClient, info: { virtualSize: number }) => Promise<T>): Promise<T> {
  const label = FORMAT_LABEL[format];
  if (!onPath('qemu-nbd') || !onPath('qemu-img')) {
    throw unsupported(`${file} is a ${label} image, which strata reads through qemu-nbd, and qemu-nbd is not installed: ${howToConvert(file, format)}`, { file, format });
  }
  const abs = path.resolve(file);
  const info = qemuImgInfo(abs, file, format);
  if (info['backing-filename']) {
    throw unsupported(`${file} (${label}) has a backing file, ${info['backing-filename']}; strata imports ${label} files whole only: flatten it first with qemu-img convert -f ${format} -O raw`, {
      file,
      backingFile: info['backing-filename'],
    });
  }
  if (info.encrypted) throw unsupported(`${file} (${label}) is encrypted; strata does not import encrypted images`, { file });

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-nbd-'));
  const sock = path.join(dir, 'nbd.sock');
  const child = spawn('qemu-nbd', ['--read-only', `--format=${format}`, '--shared=1', `--socket=${sock}`, abs], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  let client: NbdClient | undefined;
  try {
    await spawned;
    client = await waitForSocket(sock, child, () => err, file);
    return await fn(client, { virtualSize: info['virtual-size'] });
  } catch (e) {
    // The NBD conversation is an implementation detail: a server gone or confused is an I/O failure reading the file.
    if (isStrataError(e, 'E_PROTOCOL')) {
      const why = err.trim().split('\n')[0]?.replace(/^qemu-nbd: /, '') || e.message;
      throw new StrataError('E_IO', `reading ${file} through qemu-nbd failed: ${why}`, { file }, { cause: e });
    }
    throw e;
  } finally {
    await client?.close().catch(() => undefined);
    await stop(child);
    process.off('exit', kill);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const WINDOW = 1 << 30;
const CHUNK = 4 * 1024 * 1024;

/**
 * Imports a file of a format strata does not parse, read through qemu-nbd.
 * Runs the server reports as zero are written as zeros (nothing stored, and
 * over a parent they hide it: a foreign file has no backing file here).
 */
export async function importForeign(store: Store, file: string, format: ForeignFormat, name: string, opts: ImportOptions = {}): Promise<ImageRecord> {
  return withQemuNbd(file, format, async (client) => {
    const target = beginImport(store, name, client.size, { ...opts, source: { format, ...fileStamp(file), via: 'qemu-nbd' } });
    try {
      for (let off = 0; off < client.size; off += WINDOW) {
        for (const e of await client.extents(off, Math.min(WINDOW, client.size - off))) {
          if (e.kind !== 'data') {
            target.img.writeZeroes(e.offset, e.length);
            continue;
          }
          for (let o = e.offset; o < e.offset + e.length; o += CHUNK) {
            const n = Math.min(CHUNK, e.offset + e.length - o);
            target.img.write(o, await client.read(o, n));
            opts.onProgress?.(o + n, client.size);
          }
        }
      }
    } catch (e) {
      target.abandon();
      throw e;
    }
    return target.finish();
  });
}
