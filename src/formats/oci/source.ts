/**
 * A container image as the importer sees it, whatever it came from (an OCI
 * layout directory, a docker-archive tarball): its identity (reference,
 * manifest and config digests, platform) and its layers in order, each with
 * the diffID its config names and a way to read its blob. And the transport
 * names skopeo and podman use: `oci:PATH[:REF]`, `docker-archive:FILE[:REF]`.
 */
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { StrataError, badInput, inputError, unsupported } from '../../errors.js';
import { parseDigest, sha256Digest, type Digest } from './digest.js';

export type Transport = 'oci' | 'docker-archive';

export interface ContainerRef {
  transport: Transport;
  path: string;
  /** oci: the index's org.opencontainers.image.ref.name; docker-archive: a RepoTag. */
  ref?: string;
}

export interface LayerBlob {
  /** The blob's digest (docker-archive names no digest for a layer: null, its diffID checks it). */
  digest: Digest | null;
  size?: number;
  mediaType: string;
  diffId: Digest;
  open(): Readable;
}

export interface ContainerImage {
  source: ContainerRef;
  /** What the user would call it: the ref name or repo tag, when the source has one. */
  reference: string | null;
  /** null for docker-archive, which keeps no manifest blob. */
  manifestDigest: Digest | null;
  /** The image ID, as docker shows it. */
  configDigest: Digest;
  platform: string;
  layers: LayerBlob[];
}

/** `oci:PATH[:REF]` or `docker-archive:FILE[:REF]` (split at the first colon after the transport, as containers/image does), or undefined for a plain file. */
export function parseContainerRef(arg: string): ContainerRef | undefined {
  const m = /^(oci|docker-archive):(.*)$/.exec(arg);
  if (!m) return undefined;
  const [path, ...rest] = m[2].split(':');
  if (path === '') throw badInput(`${arg}: the ${m[1]} transport needs a path (${m[1]}:PATH[:REF])`);
  const ref = rest.length > 0 ? rest.join(':') : undefined;
  if (ref === '') throw badInput(`${arg}: the reference after the path is empty`);
  return { transport: m[1] as Transport, path, ref };
}

export const refText = (r: ContainerRef) => `${r.transport}:${r.path}${r.ref !== undefined ? `:${r.ref}` : ''}`;

const LAYER_TYPES = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.diff.tar',
]);

export function checkLayerType(mediaType: unknown, what: string): string {
  if (typeof mediaType !== 'string' || !LAYER_TYPES.has(mediaType)) {
    throw unsupported(`${what} has media type ${JSON.stringify(mediaType)}: strata applies tar layers, uncompressed, gzip or zstd`, { mediaType });
  }
  return mediaType;
}

/** A JSON document (manifest, index, config) of at most 4 MiB, checked against its digest when one is given. */
export function parseJsonBlob(bytes: Buffer, what: string, digest?: Digest): Record<string, unknown> {
  if (digest !== undefined && sha256Digest(bytes) !== digest) throw inputError(`${what} has digest ${sha256Digest(bytes)}, not ${digest}; nothing imported`, { digest });
  try {
    const v = JSON.parse(bytes.toString('utf8')) as unknown;
    if (typeof v !== 'object' || v === null) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw inputError(`${what} is not valid JSON (${(e as Error).message})`);
  }
}

/** A file-system error while reading the image, as one typed line (a StrataError passes through). */
export function readError(e: unknown, file: string): StrataError {
  if (e instanceof StrataError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new StrataError('E_NOT_FOUND', `no such file: ${file}`, { file });
  if (code === 'EACCES' || code === 'EPERM') return new StrataError('E_IO', `cannot read ${file}: permission denied`, { file });
  return new StrataError('E_IO', `cannot read ${file}: ${code ?? (e as Error).message}`, { file });
}

export function readSmallFile(file: string, what: string): Buffer {
  try {
    const st = fs.statSync(file);
    if (st.size > 4 << 20) throw inputError(`${what} is ${st.size} bytes; a JSON document over 4 MiB is refused`, { file });
    return fs.readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw badInput(`${what} is missing (${file})`, { file });
    throw readError(e, file);
  }
}

/** The config's diffIDs and platform; as many diffIDs as the manifest has layers. */
export function parseConfig(config: Record<string, unknown>, layerCount: number, what: string): { diffIds: Digest[]; platform: string } {
  const rootfs = config.rootfs as { diff_ids?: unknown } | undefined;
  const ids = rootfs?.diff_ids;
  if (!Array.isArray(ids)) throw inputError(`${what} has no rootfs.diff_ids`);
  if (ids.length !== layerCount) throw inputError(`${what} names ${ids.length} layer diffIDs, but the manifest has ${layerCount} layers`);
  const platform = [config.os, config.architecture, config.variant].filter((x) => typeof x === 'string' && x !== '').join('/');
  return { diffIds: ids.map((d, i) => parseDigest(d, `${what}: diffID ${i + 1}`)), platform };
}
