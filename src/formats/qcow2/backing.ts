/**
 * backing.ts: the backing chain of a qcow2 file, and which backing files
 * strata agrees to read.
 *
 * A backing file name is written by whoever made the file, and a qcow2 file
 * downloaded from elsewhere may name /etc/shadow, ../../.ssh/id_ed25519 or
 * /dev/zero. qemu opens whatever it names; strata, which copies what it
 * reads into a store that may be served or pushed, follows a name only to a
 * regular file whose real path (symlinks resolved) lies in or below the top
 * file's directory, or below a directory the user allowed (--backing-dir).
 */
import { existsSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { badInput, inputError, notFound, unsupported } from '../../errors.js';
import { ImageFile } from './file.js';
import { MAX_BACKING_NAME, parseHeader } from './header.js';
import { MAX_CHAIN_DEPTH } from '../../store/core/index.js';

export interface ChainLink {
  /** The file as its name resolves (relative names against the folder of the file naming them). */
  path: string;
  format: 'qcow2' | 'raw';
}

export interface BackingPolicy {
  /** Directories whose files may be backing files besides the top file's own (`--backing-dir`). */
  allowDirs?: readonly string[];
}

/**
 * The backing chain named by `path`, top first (the image itself is element 0).
 * Relative backing names resolve against the folder of the image naming them.
 * The format of each backing file must be declared in the header naming it:
 * strata never probes the format of a file the user did not name (a guest
 * could write a qcow2 header into a raw disk to reach host files). A raw
 * backing file ends the chain. Each backing file must pass `allowedBacking`.
 */
export function backingChain(path: string, policy: BackingPolicy = {}): ChainLink[] {
  const top = resolve(path);
  const realTop = realOf(top, () => notFound(`${top}: no such file`, { path: top }));
  const roots = allowedRoots(top, policy);
  const chain: ChainLink[] = [{ path: top, format: 'qcow2' }];
  const seen = new Set<string>([realTop]);
  let cur = top;
  for (;;) {
    const h = withHeader(cur);
    if (h.backingFile === undefined) return chain;
    const name = h.backingFile;
    if (Buffer.byteLength(name) > MAX_BACKING_NAME) throw inputError(`${cur}: backing file name over ${MAX_BACKING_NAME} bytes`);
    if (name.length === 0) throw inputError(`${cur}: empty backing file name`);
    const next = isAbsolute(name) ? name : resolve(dirname(cur), name);
    const missing = () => notFound(`${cur}: backing file ${next} not found`, { path: next, referencedBy: cur });
    if (!existsSync(next)) throw missing();
    const real = realOf(next, missing);
    allowedBacking(cur, name, real, roots);
    let format: 'qcow2' | 'raw';
    if (h.backingFormat === undefined) {
      throw unsupported(
        `${cur}: the format of its backing file ${name} is not declared; declare it with: qemu-img rebase -u -F qcow2 -b ${name} ${cur} (or -F raw)`,
        { path: cur, backingFile: name },
      );
    } else if (h.backingFormat === 'qcow2' || h.backingFormat === 'raw') format = h.backingFormat;
    else throw unsupported(`${cur}: backing file format ${JSON.stringify(h.backingFormat)} is not supported (qcow2 or raw only)`);
    if (seen.has(real)) throw inputError(`${cur}: backing chain loops back to ${next}`, { path: next });
    seen.add(real);
    chain.push({ path: next, format });
    if (format === 'raw') return chain;
    if (chain.length > MAX_CHAIN_DEPTH) throw inputError(`${top}: backing chain deeper than ${MAX_CHAIN_DEPTH}`);
    cur = next;
  }
}

/** The real directories backing files may lie in or below: the top file's, then the allowed ones. */
function allowedRoots(top: string, policy: BackingPolicy): string[] {
  const roots = [realOf(dirname(top), () => notFound(`${dirname(top)}: no such directory`))];
  for (const d of policy.allowDirs ?? []) {
    const dir = resolve(d);
    const real = realOf(dir, () => notFound(`--backing-dir ${d}: no such directory`, { dir: d }));
    if (!statSync(real).isDirectory()) throw badInput(`--backing-dir ${d} is not a directory`, { dir: d });
    roots.push(real);
  }
  return roots;
}

/**
 * Refuses a backing file strata will not read: one whose real path is not in
 * or below an allowed root, or that is not a regular file (a FIFO would
 * block the import, a device such as /dev/zero never ends, and neither is a
 * disk image someone shipped).
 */
function allowedBacking(cur: string, name: string, real: string, roots: readonly string[]): void {
  const data = { path: cur, backingFile: name, realPath: real };
  // The name as written, and the file it reaches when that is not plain from the name.
  const named = real === name ? name : `${name} (${real})`;
  const kind = fileKind(statSync(real));
  if (kind !== undefined) throw badInput(`${cur}: backing file ${named} is ${kind}, not a regular file; strata reads backing files only from regular files`, data);
  if (roots.some((root) => isWithin(real, root))) return;
  throw badInput(
    `${cur}: backing file ${named} is outside ${roots.join(', ')}: strata follows backing files only in or below the top file's directory; if you trust it, allow its directory with --backing-dir ${dirname(real)}`,
    data,
  );
}

function isWithin(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/** What a file is when it is not a regular file, for the message. */
function fileKind(st: Stats): string | undefined {
  if (st.isFile()) return undefined;
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

function realOf(path: string, missing: () => Error): string {
  try {
    return realpathSync(path);
  } catch {
    throw missing();
  }
}

function withHeader(path: string) {
  const f = new ImageFile(path);
  try {
    return parseHeader(f);
  } finally {
    f.close();
  }
}
