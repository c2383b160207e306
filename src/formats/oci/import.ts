/**
 * `strata import oci:PATH[:REF] | docker-archive:FILE[:REF] [NAME]`: a
 * container image becomes one frozen strata layer per OCI layer, each holding
 * an ext4 file system of the image's tree up to that layer, over the layer
 * below; NAME is a frozen layer with no data of its own on top, carrying the
 * reference and digests (as a tag names an image in docker).
 *
 * Layers are named by chain ID (`oci-<12 hex>`), as containerd's
 * snapshotters key theirs: an image sharing the first layers of one already
 * imported reuses their strata layers, and stores only its own.
 *
 * Order, so that a hostile or damaged image changes nothing: every blob is
 * checked against its digest and every layer parsed and applied to the tree
 * model (where escapes are refused) before the store is touched. Then each
 * new layer's file system is built (ext4.ts) and imported over the one
 * below, and NAME last. What is staged on the way is bounded by the room in
 * the staging directory (staging.ts), not only by --max-size.
 *
 * Beside other processes: two imports sharing a base may run at once. Both
 * build the base (the same bytes: ext4.ts is deterministic); the first to
 * commit its name wins, and the other drops its copy and goes on over the
 * winner's. A layer name taken by a different chain is refused (E_EXISTS).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StrataError, isStrataError } from '../../errors.js';
import { bytesText } from '../../units.js';
import { removeImages } from '../../image/lifecycle.js';
import { assertNameFree, findImage } from '../../store/images/index.js';
import type { Store, ImageRecord, OnProgress } from '../../store/core/index.js';
import { beginImport, importSource } from '../import.js';
import type { CodecSpec } from '../../store/blocks/index.js';
import { exportRaw, openRawSource } from '../raw.js';
import { openDockerArchive } from './archive.js';
import { chainIds, shortHex, type Digest } from './digest.js';
import { debugfsScript, ext4Params, fsSizeFor, growExt4, makeExt4, minimumSize, runDebugfs } from './ext4.js';
import { openOciLayout } from './layout.js';
import { readLayer, verifyBlob } from './layer.js';
import { readError, type ContainerImage, type ContainerRef } from './source.js';
import { StagingSpace } from './staging.js';
import type { TarHeader } from './tar.js';
import { FileTree, type LayerEntry } from './tree.js';

const GiB = 1024 ** 3;

export interface ContainerImportOptions {
  /** Every layer's file-system size (default: the tree's size plus headroom, see fsSizeFor). */
  size?: number;
  /** Uncompressed bytes of all layers together beyond which the import is refused (default 64 GiB). */
  maxSize?: number;
  /** OS/ARCH[/VARIANT] in a multi-platform index. */
  platform?: string;
  /** Make NAME a writable leaf rather than a frozen layer. */
  writable?: boolean;
  onProgress?: OnProgress;
  /** Where to stage layer contents and file systems (default: the system temp directory). */
  tmpdir?: string;
  /** Compression of the layers' blocks (null: none; default: the store's setting). */
  compress?: CodecSpec | null;
}

export const DEFAULT_MAX_SIZE = 64 * GiB;

/** What a strata layer made from an OCI layer records as its source. */
export interface OciLayerSource {
  format: 'oci-layer';
  chainId: Digest;
  diffId: Digest;
  /** The blob's digest (null from a docker-archive, which names none). */
  digest: Digest | null;
  mediaType: string;
  /** Position in the image that first brought it, from 1 at the bottom. */
  layer: number;
  fsBytes: number;
}

export function openContainer(ref: ContainerRef, opts: { platform?: string } = {}): ContainerImage {
  return ref.transport === 'oci' ? openOciLayout(ref, opts) : openDockerArchive(ref);
}

/** An image name from a reference: `docker.io/library/nginx:1.27` → `nginx-1.27`. */
export function nameFromReference(img: ContainerImage): string {
  const raw = img.reference ?? path.basename(path.resolve(img.source.path)).replace(/\.tar$/, '');
  const last = raw.includes('/') ? raw.slice(raw.lastIndexOf('/') + 1) : raw;
  return (last.replace(/[^A-Za-z0-9._+-]/g, '-').replace(/\.\.+/g, '.').replace(/^[^A-Za-z0-9]+/, '') || 'image').slice(0, 128);
}

const layerName = (chain: Digest, size: number | undefined) => `oci-${shortHex(chain)}${size === undefined ? '' : `-${Math.round(size / 2 ** 20)}M`}`;

function sameLayer(rec: ImageRecord, chain: Digest, parentId: number | null): boolean {
  return rec.source?.format === 'oci-layer' && rec.source.chainId === chain && rec.parentId === parentId;
}

/** The strata layer already made for `chain` over `parentId`; a name taken by something else is refused. */
function existingLayer(store: Store, name: string, chain: Digest, parentId: number | null): ImageRecord | undefined {
  const rec = findImage(store, name);
  if (rec === undefined) return undefined;
  if (sameLayer(rec, chain, parentId)) return rec;
  throw new StrataError('E_EXISTS', `image ${name} exists and is not the layer of chain ${chain}; rename it to import this image`, { image: name, chainId: chain });
}

/** A layer as parsed: its entries staged (when it is to be built) and the script that applies it. */
interface PlannedLayer {
  index: number;
  chain: Digest;
  name: string;
  fsBytes: number;
  /** Bytes of file content this layer staged: about what building it writes into its file system. */
  stagedBytes: number;
  time: number;
  script?: string;
  source: OciLayerSource;
}

export async function importContainer(store: Store, ref: ContainerRef, name: string | undefined, opts: ContainerImportOptions = {}): Promise<ImageRecord> {
  const img = openContainer(ref, { platform: opts.platform });
  const final = name ?? nameFromReference(img);
  assertNameFree(store, final);
  const chains = chainIds(img.layers.map((l) => l.diffId));
  const names = chains.map((c) => layerName(c, opts.size));
  // The layers already in the store, bottom up, as far as the chain matches.
  let reused = 0;
  let parent: ImageRecord | undefined;
  for (let i = 0; i < chains.length; i++) {
    const rec = existingLayer(store, names[i], chains[i], parent?.id ?? null);
    if (rec === undefined) break;
    parent = rec;
    reused++;
  }
  const maxSize = opts.maxSize ?? DEFAULT_MAX_SIZE;
  const total = img.layers.reduce((n, l) => n + (l.size ?? 0), 0) * 2 || 1;
  let done = 0;
  const tmp = fs.mkdtempSync(path.join(opts.tmpdir ?? os.tmpdir(), 'strata-oci-'));
  const space = new StagingSpace(tmp);
  const made: string[] = [];
  try {
    // 1. Check and parse everything; nothing is written to the store.
    const tree = new FileTree();
    const planned: PlannedLayer[] = [];
    let expanded = 0;
    let fsBytes = 0;
    for (let i = 0; i < img.layers.length; i++) {
      const l = img.layers[i];
      const what = `layer ${i + 1} of ${img.layers.length} (${l.digest ?? l.diffId})`;
      const blob = img.source.path;
      if (l.digest !== null) await verifyBlob(l.open(), { digest: l.digest, size: l.size }, what).catch((e) => Promise.reject(readError(e, blob)));
      const build = i >= reused;
      const entries: LayerEntry[] = [];
      let fd = -1;
      let stagedBytes = 0;
      const sink = {
        entry: (h: TarHeader) => {
          if (fd >= 0) fs.closeSync(fd);
          fd = -1;
          const e: LayerEntry = { header: h };
          if (build && h.type === 'file') {
            e.content = path.join(tmp, `c${i}-${entries.length}`);
            fd = fs.openSync(e.content, 'w');
          }
          entries.push(e);
        },
        body: (chunk: Buffer) => {
          if (fd < 0) return;
          space.write(fd, chunk, what);
          stagedBytes += chunk.length;
        },
      };
      try {
        expanded += await readLayer(l.open(), sink, { diffId: l.diffId, maxBytes: maxSize - expanded, maxSizeText: bytesText(maxSize), what });
      } catch (e) {
        throw readError(e, blob);
      } finally {
        if (fd >= 0) fs.closeSync(fd);
      }
      const ops = tree.apply(entries, what);
      const usage = tree.usage();
      if (opts.size !== undefined && minimumSize(usage) > opts.size) {
        throw new StrataError('E_NO_SPACE', `${what}: the image's files need about ${bytesText(minimumSize(usage))}, more than --size ${bytesText(opts.size)}; nothing imported`, { size: opts.size });
      }
      fsBytes = opts.size ?? fsSizeFor(usage, fsBytes);
      planned.push({
        index: i,
        chain: chains[i],
        name: names[i],
        fsBytes,
        stagedBytes,
        time: tree.maxMtime,
        script: build ? debugfsScript(ops, tmp) : undefined,
        source: { format: 'oci-layer', chainId: chains[i], diffId: l.diffId, digest: l.digest, mediaType: l.mediaType, layer: i + 1, fsBytes },
      });
      done += l.size ?? 0;
      opts.onProgress?.(done, total);
    }

    // 2. Build each new layer's file system over the one below, and import it.
    const work = path.join(tmp, 'fs.ext4');
    let current = 0;
    if (parent !== undefined) {
      exportRaw(store, parent.name, work);
      current = parent.virtualSize;
    }
    for (const p of planned.slice(reused)) {
      const what = `layer ${p.index + 1} of ${planned.length}`;
      const params = ext4Params(`${p.chain} ${p.fsBytes}`, p.time);
      // The layer's files go into the file system, and mke2fs or resize2fs write inode tables (1/16 of what they add).
      space.take(p.stagedBytes + Math.max(0, p.fsBytes - current) / 16, `building ${what}`);
      if (current === 0) makeExt4(work, p.fsBytes, params);
      else if (p.fsBytes > current) growExt4(work, p.fsBytes, params);
      current = p.fsBytes;
      runDebugfs(work, p.script!, params, tmp, `writing ${what}`);
      const before = done;
      const size = img.layers[p.index].size ?? 0;
      const onProgress: OnProgress | undefined = opts.onProgress && ((d, t) => opts.onProgress!(before + (t > 0 ? (d / t) * size : 0), total));
      try {
        parent = importSource(store, openRawSource(work), p.name, { parent: parent?.name, source: { ...p.source }, onProgress, compress: opts.compress, sameContentName: true });
        made.push(p.name);
      } catch (e) {
        // Another import made this layer first: the same bytes, so go on over theirs.
        const theirs = isStrataError(e, 'E_EXISTS') ? existingLayer(store, p.name, p.chain, parent?.id ?? null) : undefined;
        if (theirs === undefined) throw e;
        parent = theirs;
      }
      done = before + size;
    }

    // 3. The name on top: no data of its own, the image's identity.
    const top = parent!;
    const target = beginImport(store, final, top.virtualSize, {
      parent: top.name,
      writable: opts.writable,
      source: {
        format: ref.transport,
        file: path.resolve(ref.path),
        reference: img.reference,
        manifestDigest: img.manifestDigest,
        configDigest: img.configDigest,
        platform: img.platform,
        layers: img.layers.length,
      },
    });
    return target.finish();
  } catch (e) {
    // Leave the store as it was: drop the layers made here, top down, unless another image stands on them by now.
    for (const n of made.reverse()) {
      try {
        removeImages(store, [n]);
      } catch {
        break;
      }
    }
    throw e;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

