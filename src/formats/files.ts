/** Import and export by file format: detection, and the dispatch to raw or qcow2. */
import { resolveImage } from '../image/refs.js';
import fs from 'node:fs';
import path from 'node:path';
import { StrataError, badInput, unsupported } from '../errors.js';
import type { Image } from '../image/image.js';
import { removeImages } from '../image/lifecycle.js';
import { ownExtents } from '../image/inspect.js';
import { chainOf, listVisibleImages } from '../store/images/index.js';
import type { Store } from '../store/core/index.js';
import { isFrozen, type ImageRecord, type OnProgress } from '../store/core/index.js';
import { fileStamp, importSource, type ImportOptions } from './import.js';
import { backingChain, openQcow2, readQcow2Info, writeQcow2, type Qcow2Info } from './qcow2/index.js';
import { chainFiles } from './chain-files.js';
import { openOutput, realTarget, type Output } from './output.js';
import { exportRaw, imageToRead, openFileForRead, openRawSource } from './raw.js';
import type { ImportSource } from './source.js';
import { FOREIGN_FORMATS, FORMAT_LABEL, detectFormat as detectMagic, probeFile, type DetectedFormat } from './magic.js';

export type FileFormat = 'raw' | 'qcow2';

/** A file's format, by its magic (see magic.ts). */
export function detectFormat(file: string): DetectedFormat {
  const fd = openFileForRead(file);
  try {
    return detectMagic(probeFile(fd, fs.fstatSync(fd).size));
  } finally {
    fs.closeSync(fd);
  }
}

function checkFormat(f: string | undefined): FileFormat | undefined {
  if (f === undefined) return undefined;
  if (f !== 'raw' && f !== 'qcow2') throw badInput(`unknown format ${JSON.stringify(f)}: use raw or qcow2`);
  return f;
}

/** An import's --format: raw, qcow2, or a format qemu-nbd reads, by QEMU's name (vhd for vpc too). */
export function checkImportFormat(f: string | undefined): Exclude<DetectedFormat, 'luks'> | undefined {
  if (f === undefined) return undefined;
  const g = f === 'vhd' ? 'vpc' : f;
  if (g === 'raw' || g === 'qcow2' || (FOREIGN_FORMATS as readonly string[]).includes(g)) return g as Exclude<DetectedFormat, 'luks'>;
  throw badInput(`unknown format ${JSON.stringify(f)}: use raw, qcow2, or one qemu-nbd reads: vhd, ${FOREIGN_FORMATS.filter((x) => x !== 'vpc').join(', ')}`);
}

export interface FileImportOptions extends ImportOptions {
  format?: string;
  /** qcow2: import the backing chain too, as layers sharing their blocks. */
  withBacking?: boolean;
  /** With withBacking: directories besides the top file's whose files may be backing files (see qcow2/backing.ts). */
  backingDirs?: readonly string[];
  /** With withBacking: told the chain as imported, top first. */
  onChain?: (chain: ImportedLink[]) => void;
  /** Names of the imported backing files: prefix + file name (default: file name). */
  namePrefix?: string;
  /** qcow2: import this internal snapshot (id or name) instead of the active state. */
  snapshot?: string;
  /** Import over a --parent that does not stand for the file's backing file. */
  force?: boolean;
  /** Told about things worth a warning (a dirty qcow2 file). */
  warn?: (message: string) => void;
}

/** One file of a chain imported with --with-backing, and the image it is in the store. */
export interface ImportedLink {
  image: string;
  /** The file read (symlinks resolved). */
  file: string;
  format: 'qcow2' | 'raw';
  /** Imported before (the same file, unchanged, over the same parent), and shared rather than imported again. */
  reused: boolean;
}

/**
 * A qcow2 file as an import source. Unallocated clusters fall through to
 * the parent only when the parent is the file's own backing file; otherwise
 * they read as zeros, so they hide whatever a chosen parent holds.
 */
function qcow2Source(file: string, snapshot: string | undefined, holesInherit: boolean): ImportSource & { info: Qcow2Info } {
  const r = openQcow2(file, { snapshot });
  return {
    info: r.info,
    size: r.size,
    extents: (o, l) => (holesInherit ? r.extents(o, l) : r.extents(o, l).map((e) => (e.kind === 'hole' ? { ...e, kind: 'zero' } : e))),
    read: (o, l) => r.read(o, l),
    close: () => r.close(),
  };
}

/** A valid image name from a file name: its stem, with other characters made '-'. */
export function nameFromFile(file: string, prefix = ''): string {
  const stem = path.basename(file).replace(/\.(qcow2?|img|raw|bin|iso|dd|disk|ext[234]|vhdx?|vpc|vmdk|vdi|qed|hdd|dmg|bochs)$/i, '');
  const clean = (prefix + stem).replace(/[^A-Za-z0-9._+-]/g, '-').replace(/\.\.+/g, '.').replace(/^[^A-Za-z0-9]+/, '');
  return clean.slice(0, 128) || 'backing';
}

function importOne(store: Store, src: ImportSource, name: string, opts: ImportOptions): ImageRecord {
  try {
    return importSource(store, src, name, opts);
  } finally {
    src.close();
  }
}

/**
 * `import overlay.qcow2 --parent P`: where the store knows the file P was
 * imported from, that must be the overlay's backing file, or the overlay's
 * unallocated clusters would show P's unrelated data.
 */
function checkParentStandsFor(store: Store, parent: string, backing: string, file: string, force: boolean | undefined): void {
  const from = resolveImage(store, parent).source?.file;
  if (typeof from !== 'string' || force) return;
  if (realTarget(from) === realTarget(backing)) return;
  throw badInput(`${file} is backed by ${backing}, but ${parent} was imported from ${from}; pass --force to import it over ${parent} all the same`, {
    file,
    backingFile: backing,
    parent,
    parentSource: from,
  });
}

/**
 * The image already imported from `file` (the same file, unchanged since) over
 * `parentId`, to reuse rather than import again; undefined if there is none.
 * A same-named image from a changed file is refused: importing it again would
 * take its name.
 */
function importedFrom(store: Store, file: string, parentId: number | null, wantedName: string): ImageRecord | undefined {
  const stamp = fileStamp(file);
  const real = realTarget(file);
  for (const img of listVisibleImages(store)) {
    const src = img.source;
    if (!isFrozen(img) || typeof src?.file !== 'string' || realTarget(src.file) !== real) continue;
    if (src.fileBytes === stamp.fileBytes && src.modifiedAt === stamp.modifiedAt && img.parentId === parentId) return img;
    if (img.name === wantedName) {
      throw new StrataError('E_EXISTS', `${file} changed since it was imported as ${img.name}; use --name-prefix to import the chain again under other names`, { file, image: img.name });
    }
  }
  return undefined;
}

export function importFile(store: Store, file: string, name: string, opts: FileImportOptions = {}): ImageRecord {
  const format = checkImportFormat(opts.format) ?? detectFormat(file);
  if (format !== 'raw' && format !== 'qcow2') {
    throw unsupported(`${file} is a ${FORMAT_LABEL[format]} image: import it with strata import, which reads it through qemu-nbd`, { file, format });
  }
  if (format === 'raw') {
    if (opts.withBacking || opts.snapshot) throw badInput(`${file} is imported as raw: --with-backing and --snapshot apply to qcow2 files`);
    const src = openRawSource(file);
    return importOne(store, src, name, { ...opts, source: { format: 'raw', ...fileStamp(file), size: src.size } });
  }

  const info = readQcow2Info(file);
  if (info.dirty) opts.warn?.(`${file} was not closed cleanly (dirty bit set); reading it anyway, refcounts are not needed to read`);
  const provenance = (f: string, i: Qcow2Info) => ({
    format: 'qcow2',
    ...fileStamp(f),
    clusterSize: i.clusterSize,
    version: i.version,
    ...(opts.snapshot && f === file ? { snapshot: opts.snapshot } : {}),
  });
  if (info.backingFile === undefined || (opts.parent !== undefined && !opts.withBacking)) {
    if (info.backingFile !== undefined) {
      const backing = path.isAbsolute(info.backingFile) ? info.backingFile : path.resolve(path.dirname(file), info.backingFile);
      checkParentStandsFor(store, opts.parent!, backing, file, opts.force);
    }
    // Over a parent the user says stands for the backing file, holes fall through to it.
    const holesInherit = info.backingFile !== undefined;
    return importOne(store, qcow2Source(file, opts.snapshot, holesInherit), name, { ...opts, source: provenance(file, info) });
  }
  if (!opts.withBacking) {
    const known = listVisibleImages(store).find((i) => isFrozen(i) && typeof i.source?.file === 'string' && realTarget(i.source.file as string) === realTarget(path.resolve(path.dirname(file), info.backingFile!)));
    throw badInput(
      `${file} has a backing file (${info.backingFile}); import the chain with --with-backing, or name a --parent to store it over` +
        (known ? ` (${known.name} was imported from it: --parent ${known.name})` : ''),
      { backingFile: info.backingFile },
    );
  }
  if (opts.parent !== undefined) throw badInput('--with-backing imports the backing chain as the parents; it does not go with --parent');

  // Bottom first: each file becomes a layer over the one below, sharing its blocks.
  const chain = backingChain(file, { allowDirs: opts.backingDirs }).reverse();
  const names = chain.map((c, i) => (i === chain.length - 1 ? name : nameFromFile(c.path, opts.namePrefix ?? '')));
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw badInput(`two files of the chain would both be named ${dup}; use --name-prefix or rename the files`);
  let parent: ImageRecord | undefined;
  let rec: ImageRecord | undefined;
  const made: string[] = [];
  const imported: ImportedLink[] = [];
  try {
    chain.forEach((c, i) => {
      const top = i === chain.length - 1;
      // A backing file already imported, unchanged, over the same parent is shared, not imported twice.
      const reuse = top ? undefined : importedFrom(store, c.path, parent?.id ?? null, names[i]);
      imported.push({ image: reuse?.name ?? names[i], file: realTarget(c.path), format: c.format, reused: reuse !== undefined });
      if (reuse) {
        parent = rec = reuse;
        return;
      }
      let src: ImportSource;
      let source: Record<string, unknown>;
      if (c.format === 'raw') {
        src = openRawSource(c.path);
        source = { format: 'raw', ...fileStamp(c.path), size: src.size };
      } else {
        const q = qcow2Source(c.path, top ? opts.snapshot : undefined, parent !== undefined);
        src = q;
        source = provenance(c.path, q.info);
      }
      rec = importOne(store, src, names[i], { ...opts, parent: parent?.name, writable: top ? opts.writable : false, source });
      made.push(names[i]);
      parent = rec;
    });
  } catch (e) {
    // Leave the store as it was: the layers imported so far go too (shared ones stay).
    if (made.length > 0) removeImages(store, [made[0]], { recursive: true });
    throw e;
  }
  opts.onChain?.(imported.reverse());
  return rec!;
}

export function listQcow2Snapshots(file: string): Qcow2Info['snapshots'] {
  if (detectFormat(file) !== 'qcow2') throw badInput(`${file} is not a qcow2 file; only qcow2 files have internal snapshots`);
  return readQcow2Info(file).snapshots;
}

export interface ExportOptions {
  format?: string;
  clusterSize?: number;
  compress?: boolean;
  chain?: boolean;
  /** --chain: overwrite existing files where the lower layers go. */
  force?: boolean;
  /** Raw: fsync the output before returning (default: no, like qemu-img convert). qcow2 output is always synced. */
  sync?: boolean;
  /** Told about things worth a warning (a qcow2 size rounded up to whole sectors). */
  warn?: (message: string) => void;
  /** Bytes of virtual size written (over all files of a chain); may throw to stop, and no output file is left. */
  onProgress?: OnProgress;
  /** The image, already open: read through this handle (a lazy clone's blocks were fetched through it), left open. */
  image?: Image;
}

export interface ExportResult {
  files: string[];
  size: number;
  dataBytes: number;
  /** qcow2: the virtual size the (top) file records, `size` rounded up to a multiple of 512. */
  fileVirtualSize?: number;
}

/** Writes one image as qcow2 into an opened output; over `backing`, only the image's own layer. */
function writeImageQcow2(store: Store, name: string, out: Output, opts: ExportOptions, backing?: { file: string }, onProgress = opts.onProgress): { bytes: number; virtualSize: number } {
  if (out.kind === 'stream') {
    throw badInput(`qcow2 needs an output it can seek in, and ${out.name} is ${out.what}; export --format raw to stream`, { file: out.name });
  }
  const { img, close } = imageToRead(store, name, opts.image);
  try {
    const rec = img.record;
    const source = backing
      ? { size: img.size, read: (o: number, l: number) => img.read(o, l), extents: (o: number, l: number) => ownExtents(store, rec, o, l) }
      : img;
    const r = writeQcow2(out.name, source, {
      clusterSize: opts.clusterSize,
      compress: opts.compress,
      fd: out.fd,
      truncate: out.kind === 'file',
      onProgress,
      ...(backing ? { backingFile: backing.file, backingFormat: 'qcow2' } : {}),
    });
    if (r.virtualSize !== img.size) {
      opts.warn?.(`qcow2 sizes are whole 512-byte sectors: ${out.name} has a virtual size of ${r.virtualSize} bytes, the last ${r.virtualSize - img.size} reading as zeros`);
    }
    return { bytes: r.bytes, virtualSize: r.virtualSize };
  } finally {
    close();
  }
}

export function exportFile(store: Store, name: string, file: string, opts: ExportOptions = {}): ExportResult {
  const format = checkFormat(opts.format) ?? 'raw';
  if (format === 'raw') {
    if (opts.chain || opts.compress) throw badInput('--chain and --compress apply to --format qcow2 only');
    const r = exportRaw(store, name, file, { sync: opts.sync, onProgress: opts.onProgress, image: opts.image });
    return { files: [file], ...r };
  }
  const rec = resolveImage(store, name);
  if (!opts.chain) {
    const out = openOutput(file);
    try {
      const r = writeImageQcow2(store, name, out, opts);
      out.commit({ sync: true });
      return { files: [file], size: rec.virtualSize, dataBytes: r.bytes, fileVirtualSize: r.virtualSize };
    } catch (e) {
      out.abort();
      throw e;
    }
  }
  // One file per layer, bottom first, each backed by the one below by relative name.
  const chain = chainOf(store, rec).reverse();
  const files = chainFiles(chain.map((c) => c.name), file, !!opts.force);
  // Progress runs over the whole chain: each layer's file counts its virtual size.
  const total = chain.reduce((n, c) => n + c.virtualSize, 0);
  let before = 0;
  const outs: Output[] = [];
  try {
    let bytes = 0;
    let fileVirtualSize = 0;
    chain.forEach((c, i) => {
      const out = openOutput(files[i]);
      outs.push(out);
      if (out.kind !== 'file') throw badInput(`--chain writes regular files, and ${files[i]} is ${out.what}; export without --chain`, { file: files[i] });
      const progress = opts.onProgress && ((done: number) => opts.onProgress!(before + done, total));
      const r = writeImageQcow2(store, c.name, out, opts, i === 0 ? undefined : { file: path.basename(files[i - 1]) }, progress);
      bytes += r.bytes;
      fileVirtualSize = r.virtualSize;
      before += c.virtualSize;
    });
    // Every file is complete before any takes its name; until then a failure (or Ctrl-C) leaves none.
    for (const out of outs.splice(0)) out.commit({ sync: true });
    return { files, size: rec.virtualSize, dataBytes: bytes, fileVirtualSize };
  } finally {
    for (const out of outs) out.abort();
  }
}
