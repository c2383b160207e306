/**
 * `strata import FILE [NAME]` as a user means it: FILE may be `-` (stdin),
 * any format strata parses (raw, qcow2) or one qemu-nbd reads (VHD, VMDK,
 * ...), recognised by its magic; NAME defaults to the file's name. A file
 * that does not look like what it is imported as gets a warning.
 */
import fs from 'node:fs';
import { badInput, unsupported } from '../errors.js';
import type { Store, ImageRecord } from '../store/core/index.js';
import { checkImportFormat, importFile, nameFromFile, type FileImportOptions } from './files.js';
import { importForeign } from './foreign.js';
import { FORMAT_LABEL, detectFormat, notADisk, probeFile } from './magic.js';
import { openFileForRead } from './raw.js';
import { importStream } from './stdin.js';
import { importContainer, type ContainerImportOptions } from './oci/import.js';
import { parseContainerRef } from './oci/source.js';

export type PathImportOptions = FileImportOptions & Pick<ContainerImportOptions, 'size' | 'maxSize' | 'platform' | 'compress'>;

/** `oci:PATH[:REF]` and `docker-archive:FILE[:REF]`: container images, with options of their own. */
function importContainerRef(store: Store, arg: string, name: string | undefined, opts: PathImportOptions): Promise<ImageRecord> | undefined {
  const ref = parseContainerRef(arg);
  if (ref === undefined) {
    const given = (['size', 'maxSize', 'platform'] as const).filter((k) => opts[k] !== undefined);
    if (given.length > 0) throw badInput(`--${given.map((k) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)).join(', --')} apply to container images (oci:PATH, docker-archive:FILE), not to ${arg}`);
    return undefined;
  }
  const wrong = (['parent', 'format', 'withBacking', 'snapshot', 'namePrefix'] as const).filter((k) => opts[k] !== undefined && opts[k] !== false);
  if (wrong.length > 0) {
    throw badInput(`${arg} is a container image: --${wrong.map((k) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)).join(', --')} do not apply (its layers are its parents)`);
  }
  return importContainer(store, ref, name, { size: opts.size, maxSize: opts.maxSize, platform: opts.platform, writable: opts.writable, onProgress: opts.onProgress, compress: opts.compress });
}

/** stdin redirected from a file (`< disk.raw`) is that file, read like any other. */
function stdinFile(): string | undefined {
  try {
    if (!fs.fstatSync(0).isFile()) return undefined;
    const real = fs.readlinkSync('/proc/self/fd/0');
    return fs.existsSync(real) ? real : '/dev/stdin';
  } catch {
    return undefined;
  }
}

export async function importPath(store: Store, file: string, name: string | undefined, opts: PathImportOptions = {}): Promise<ImageRecord> {
  if (opts.backingDirs?.length && !opts.withBacking) throw badInput('--backing-dir goes with --with-backing: it names where backing files may be');
  if (opts.namePrefix !== undefined && !opts.withBacking) throw badInput('--name-prefix goes with --with-backing: it names the backing layers, and without it there are none');
  const container = importContainerRef(store, file, name, opts);
  if (container !== undefined) return container;
  const warn = opts.warn ?? (() => undefined);
  if (file === '-') {
    if (name === undefined) throw badInput('import from stdin (-) needs a name for the new image: strata import - NAME');
    const redirected = stdinFile();
    if (redirected === undefined) {
      if (process.stdin.isTTY) throw badInput('stdin is a terminal: pipe or redirect an image into strata import - NAME');
      if (opts.withBacking || opts.snapshot) throw badInput('--with-backing and --snapshot need a qcow2 file, not a pipe');
      return importStream(store, process.stdin as AsyncIterable<Buffer>, name, opts);
    }
    file = redirected;
  }
  const fd = openFileForRead(file);
  let probe;
  try {
    probe = probeFile(fd, fs.fstatSync(fd).size);
  } finally {
    fs.closeSync(fd);
  }
  const detected = detectFormat(probe);
  const asked = checkImportFormat(opts.format);
  const format = asked ?? detected;
  if (format === 'luks') throw unsupported(`${file} is a LUKS encrypted volume; strata does not import encrypted images`, { file });
  if (asked === 'raw' && detected !== 'raw') warn(`${file} looks like a ${FORMAT_LABEL[detected]} image, but --format raw imports its bytes as they are`);
  if (format === 'raw' && detected === 'raw') {
    const why = notADisk(probe);
    if (why) warn(`${file} ${why}; importing it as raw all the same`);
  }
  const image = name ?? nameFromFile(file);
  if (format === 'raw' || format === 'qcow2') return importFile(store, file, image, { ...opts, format });
  if (opts.withBacking || opts.snapshot) throw badInput(`${file} is a ${FORMAT_LABEL[format]} image: --with-backing and --snapshot apply to qcow2 files`);
  return importForeign(store, file, format, image, opts);
}
