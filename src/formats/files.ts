/** Import and export by file format: detection, and the dispatch to raw or qcow2. */
import fs from 'node:fs';
import path from 'node:path';
import { badInput, unsupported } from '../errors.js';
import type { Store } from '../store/store.js';
import type { ImageRecord } from '../store/types.js';
import { importSource, type ImportOptions } from './import.js';
import { exportRaw, openFileForRead, openRawSource } from './raw.js';

export type FileFormat = 'raw' | 'qcow2';
const QCOW2_MAGIC = 0x514649fb;

export function detectFormat(file: string): FileFormat {
  const fd = openFileForRead(file);
  try {
    const head = Buffer.alloc(4);
    const n = fs.readSync(fd, head, 0, 4, 0);
    return n === 4 && head.readUInt32BE(0) === QCOW2_MAGIC ? 'qcow2' : 'raw';
  } finally {
    fs.closeSync(fd);
  }
}

function checkFormat(f: string | undefined): FileFormat | undefined {
  if (f === undefined) return undefined;
  if (f !== 'raw' && f !== 'qcow2') throw badInput(`unknown format ${JSON.stringify(f)}: use raw or qcow2`);
  return f;
}

export function importFile(store: Store, file: string, name: string, opts: ImportOptions & { format?: string } = {}): ImageRecord {
  const format = checkFormat(opts.format) ?? detectFormat(file);
  if (format === 'qcow2') throw unsupported(`${file} is a qcow2 file, and qcow2 import is not built yet; convert it with qemu-img convert -O raw first`);
  const src = openRawSource(file);
  try {
    return importSource(store, src, name, { ...opts, source: { format: 'raw', file: path.resolve(file), size: src.size } });
  } finally {
    src.close();
  }
}

export interface ExportOptions {
  format?: string;
  clusterSize?: string;
  compress?: boolean;
  chain?: boolean;
  /** fsync the output before returning (default: no, like qemu-img convert). */
  sync?: boolean;
}

export function exportFile(store: Store, name: string, file: string, opts: ExportOptions = {}): { files: string[]; size: number; dataBytes: number } {
  const format = checkFormat(opts.format) ?? 'raw';
  if (format === 'qcow2') throw unsupported('qcow2 export is not built yet');
  if (opts.chain || opts.compress) throw badInput('--chain and --compress apply to --format qcow2 only');
  const r = exportRaw(store, name, file, { sync: opts.sync });
  return { files: [file], ...r };
}
