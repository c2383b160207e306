/**
 * An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/`),
 * as skopeo, umoci and buildah write it. The image is chosen as skopeo
 * chooses it: by its org.opencontainers.image.ref.name, or the only one when
 * no REF is given; through an image index, by platform. Every JSON document
 * reached by digest is checked against that digest.
 */
import fs from 'node:fs';
import path from 'node:path';
import { badInput, inputError, notFound } from '../../errors.js';
import { parseDigest, type Digest } from './digest.js';
import { checkLayerType, parseConfig, parseJsonBlob, readError, readSmallFile, refText, type ContainerImage, type ContainerRef } from './source.js';

const REF_NAME = 'org.opencontainers.image.ref.name';
const MANIFEST_TYPES = new Set(['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json']);
const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

function descriptor(v: unknown, what: string): Descriptor {
  const d = v as Partial<Descriptor> | null;
  if (typeof d !== 'object' || d === null) throw inputError(`${what} is not a descriptor`);
  if (!Number.isSafeInteger(d.size) || (d.size as number) < 0) throw inputError(`${what} has no valid size`);
  return { mediaType: String(d.mediaType ?? ''), digest: parseDigest(d.digest, what), size: d.size as number, annotations: (d.annotations ?? {}) as Record<string, string>, platform: d.platform };
}

const blobPath = (dir: string, d: Digest) => path.join(dir, 'blobs', 'sha256', d.slice('sha256:'.length));

function readJson(dir: string, d: Descriptor, what: string): Record<string, unknown> {
  const bytes = readSmallFile(blobPath(dir, d.digest), `${what} (${d.digest})`);
  if (bytes.length !== d.size) throw inputError(`${what} ${d.digest} is ${bytes.length} bytes, but its descriptor says ${d.size}; nothing imported`, { digest: d.digest });
  return parseJsonBlob(bytes, what, d.digest);
}

const platformOf = (d: Descriptor) => [d.platform?.os, d.platform?.architecture, d.platform?.variant].filter(Boolean).join('/');

/** The host's platform in OCI words (linux/amd64, linux/arm64, ...). */
export function hostPlatform(): string {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return `linux/${arch[process.arch] ?? process.arch}`;
}

/** One manifest of an image index: the one for `wanted`, else the host's, else the only one. */
function choosePlatform(list: Descriptor[], wanted: string | undefined, what: string): Descriptor {
  const real = list.filter((d) => platformOf(d) !== 'unknown/unknown');
  const names = real.map(platformOf);
  const match = (w: string) => real.filter((d) => platformOf(d) === w || platformOf(d).startsWith(`${w}/`));
  if (wanted !== undefined) {
    const m = match(wanted);
    if (m.length === 1) return m[0];
    throw badInput(`${what} has ${m.length === 0 ? 'no' : 'several'} image(s) for platform ${wanted} (it has: ${names.join(', ') || 'none'})`, { platforms: names });
  }
  if (real.length === 1) return real[0];
  const host = match(hostPlatform());
  if (host.length === 1) return host[0];
  throw badInput(`${what} is a multi-platform index (${names.join(', ')}); choose one with --platform OS/ARCH`, { platforms: names });
}

export function openOciLayout(ref: ContainerRef, opts: { platform?: string } = {}): ContainerImage {
  const dir = ref.path;
  const what = refText(ref);
  let layout: Record<string, unknown>;
  try {
    layout = JSON.parse(fs.readFileSync(path.join(dir, 'oci-layout'), 'utf8')) as Record<string, unknown>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      if (!fs.existsSync(dir)) throw notFound(`no such directory: ${dir}`, { file: dir });
      throw badInput(`${dir} is not an OCI image layout (no oci-layout file)`, { file: dir });
    }
    if (e instanceof SyntaxError) throw inputError(`${dir}/oci-layout is not valid JSON`);
    throw readError(e, path.join(dir, 'oci-layout'));
  }
  if (layout.imageLayoutVersion !== '1.0.0') throw inputError(`${dir}: unknown image layout version ${JSON.stringify(layout.imageLayoutVersion)}`);
  const index = parseJsonBlob(readSmallFile(path.join(dir, 'index.json'), `${dir}/index.json`), `${dir}/index.json`);
  const all = (Array.isArray(index.manifests) ? index.manifests : []).map((m, i) => descriptor(m, `${dir}/index.json manifest ${i + 1}`));
  const refs = all.map((d) => d.annotations[REF_NAME]).filter((r): r is string => typeof r === 'string');
  let top: Descriptor;
  if (ref.ref !== undefined) {
    const found = all.filter((d) => d.annotations[REF_NAME] === ref.ref);
    if (found.length === 0) throw notFound(`${dir} has no image named ${ref.ref} (it has: ${refs.join(', ') || 'none named'})`, { refs });
    top = found[0];
  } else {
    if (all.length !== 1) throw badInput(`${dir} holds ${all.length} images; name one as oci:${dir}:REF (it has: ${refs.join(', ') || 'none named'})`, { refs });
    top = all[0];
  }
  if (INDEX_TYPES.has(top.mediaType)) {
    const idx = readJson(dir, top, 'image index');
    const list = (Array.isArray(idx.manifests) ? idx.manifests : []).map((m, i) => descriptor(m, `image index manifest ${i + 1}`));
    top = choosePlatform(list, opts.platform, what);
  }
  if (!MANIFEST_TYPES.has(top.mediaType)) throw inputError(`${what}: unknown manifest media type ${JSON.stringify(top.mediaType)}`);
  const manifest = readJson(dir, top, 'manifest');
  const layers = (Array.isArray(manifest.layers) ? manifest.layers : []).map((l, i) => descriptor(l, `manifest layer ${i + 1}`));
  const configDesc = descriptor(manifest.config, 'manifest config');
  const config = readJson(dir, configDesc, 'image config');
  const { diffIds, platform } = parseConfig(config, layers.length, 'image config');
  if (opts.platform !== undefined && platform !== opts.platform && !platform.startsWith(`${opts.platform}/`)) {
    throw badInput(`${what} is for ${platform}, not --platform ${opts.platform}`, { platform });
  }
  return {
    source: ref,
    reference: ref.ref ?? top.annotations[REF_NAME] ?? refs[0] ?? null,
    manifestDigest: top.digest,
    configDigest: configDesc.digest,
    platform,
    layers: layers.map((l, i) => ({
      digest: l.digest,
      size: l.size,
      mediaType: checkLayerType(l.mediaType, `layer ${i + 1} (${l.digest})`),
      diffId: diffIds[i],
      open: () => {
        const file = blobPath(dir, l.digest);
        if (!fs.existsSync(file)) throw inputError(`layer ${i + 1} blob ${l.digest} is missing from ${dir}`, { digest: l.digest });
        return fs.createReadStream(file, { highWaterMark: 1 << 20 });
      },
    })),
  };
}
