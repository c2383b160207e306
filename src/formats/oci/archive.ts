/**
 * A docker-archive: the tarball `docker save` and `skopeo copy ...
 * docker-archive:` write, with a manifest.json naming each image's config
 * and layer files (and, from docker 25, an OCI layout beside it). The
 * archive is indexed by reading its headers only, then each layer is read
 * in place, never extracted. A layer carries no digest here: the diffIDs of
 * the config check its content, and the config is checked against the
 * digest its file name gives.
 */
import fs from 'node:fs';
import path from 'node:path';
import { badInput, inputError, notFound } from '../../errors.js';
import { sha256Digest, type Digest } from './digest.js';
import { parseConfig, parseJsonBlob, readError, type ContainerImage, type ContainerRef } from './source.js';
import { checksumOk, cstring, number, paxRecords } from './tar.js';

interface Member {
  offset: number;
  size: number;
  /** A symlink member's target (old docker save links identical layers). */
  link?: string;
}

/** Member names to where their bytes are, from the headers alone. */
function indexArchive(fd: number, fileSize: number, file: string): Map<string, Member> {
  const out = new Map<string, Member>();
  const h = Buffer.alloc(512);
  let pos = 0;
  let longname: string | undefined;
  let paxPath: string | undefined;
  while (pos + 512 <= fileSize) {
    fs.readSync(fd, h, 0, 512, pos);
    if (h.every((x) => x === 0)) break;
    if (!checksumOk(h)) throw inputError(`${file} is not a tar archive (bad header checksum at byte ${pos})`, { file });
    const flag = String.fromCharCode(h[156]);
    const size = number(h, 124, 12, 'size');
    const body = pos + 512;
    if (body + size > fileSize) throw inputError(`${file} is truncated: member at byte ${pos} runs past the end`, { file });
    if (flag === 'L' || flag === 'x') {
      if (size > 1 << 20) throw inputError(`${file}: extended header too large`);
      const data = Buffer.alloc(size);
      fs.readSync(fd, data, 0, size, body);
      if (flag === 'L') longname = cstring(data, 0, size);
      else paxPath = paxRecords(data).get('path')?.toString('utf8');
    } else {
      const prefix = h.toString('ascii', 257, 262) === 'ustar' ? cstring(h, 345, 155) : '';
      const name = paxPath ?? longname ?? (prefix ? `${prefix}/${cstring(h, 0, 100)}` : cstring(h, 0, 100));
      longname = paxPath = undefined;
      const clean = path.posix.normalize(name).replace(/^\.\//, '');
      if (flag === '0' || flag === '\0') out.set(clean, { offset: body, size });
      else if (flag === '2') out.set(clean, { offset: 0, size: 0, link: path.posix.normalize(path.posix.join(path.posix.dirname(clean), cstring(h, 157, 100))) });
    }
    pos = body + Math.ceil(size / 512) * 512;
  }
  return out;
}

export function openDockerArchive(ref: ContainerRef): ContainerImage {
  const file = ref.path;
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw readError(e, file);
  }
  let members: Map<string, Member>;
  try {
    members = indexArchive(fd, fs.fstatSync(fd).size, file);
  } finally {
    fs.closeSync(fd);
  }
  const member = (name: string, role: string): Member => {
    let m = members.get(path.posix.normalize(name).replace(/^\.\//, ''));
    if (m?.link !== undefined) m = members.get(m.link);
    if (m === undefined || m.link !== undefined) throw inputError(`${file} has no ${role} ${name}`, { file });
    return m;
  };
  const read = (m: Member, role: string): Buffer => {
    if (m.size > 4 << 20) throw inputError(`${file}: ${role} is over 4 MiB`);
    const b = Buffer.alloc(m.size);
    const f = fs.openSync(file, 'r');
    try {
      fs.readSync(f, b, 0, m.size, m.offset);
    } finally {
      fs.closeSync(f);
    }
    return b;
  };
  if (!members.has('manifest.json')) throw badInput(`${file} is not a docker-archive (no manifest.json)`, { file });
  const list = JSON.parse(read(member('manifest.json', 'manifest'), 'manifest.json').toString('utf8')) as unknown;
  if (!Array.isArray(list) || list.length === 0) throw inputError(`${file}: manifest.json lists no image`);
  const entries = list as { Config?: string; RepoTags?: string[] | null; Layers?: string[] }[];
  const tags = entries.flatMap((e) => e.RepoTags ?? []);
  let chosen: (typeof entries)[number];
  if (ref.ref !== undefined) {
    const found = entries.find((e) => (e.RepoTags ?? []).includes(ref.ref!));
    if (!found) throw notFound(`${file} has no image tagged ${ref.ref} (it has: ${tags.join(', ') || 'no tags'})`, { tags });
    chosen = found;
  } else {
    if (entries.length !== 1) throw badInput(`${file} holds ${entries.length} images; name one as docker-archive:${file}:TAG (it has: ${tags.join(', ')})`, { tags });
    chosen = entries[0];
  }
  if (typeof chosen.Config !== 'string' || !Array.isArray(chosen.Layers)) throw inputError(`${file}: manifest.json entry has no Config or Layers`);
  const configBytes = read(member(chosen.Config, 'config'), 'config');
  const hex = /([0-9a-f]{64})(\.json)?$/.exec(chosen.Config)?.[1];
  const configDigest = sha256Digest(configBytes);
  const config = parseJsonBlob(configBytes, `image config ${chosen.Config}`, hex ? (`sha256:${hex}` as Digest) : undefined);
  const { diffIds, platform } = parseConfig(config, chosen.Layers.length, 'image config');
  return {
    source: ref,
    reference: ref.ref ?? chosen.RepoTags?.[0] ?? null,
    manifestDigest: null,
    configDigest,
    platform,
    layers: chosen.Layers.map((name, i) => {
      const m = member(name, `layer ${i + 1}`);
      return {
        digest: null,
        size: m.size,
        mediaType: 'application/vnd.docker.image.rootfs.diff.tar',
        diffId: diffIds[i],
        open: () => fs.createReadStream(file, { start: m.offset, end: m.offset + m.size - 1, highWaterMark: 1 << 20 }),
      };
    }),
  };
}
