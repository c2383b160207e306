/**
 * Hostile and damaged container images are refused with one line and a
 * typed exit status, and change nothing: no image (hidden or not), no
 * stored block, no file written outside the store.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { strata, strataOk } from '../helpers/cli.js';
import { bytes, ociImage, type Entry } from '../helpers/oci.js';
import { requireTool } from '../helpers/tools.js';
import { liveSlots } from '../helpers/slots.js';

const sha = (b: Buffer) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

/** Replaces the top layer blob of `tag` by transform(blob), fixing the manifest's digest and size (and the index's) so only the layer itself is bad. */
function rewriteTopLayer(layout: string, tag: string, transform: (blob: Buffer) => Buffer): void {
  const blob = (d: string) => path.join(layout, 'blobs', 'sha256', d.slice(7));
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const desc = index.manifests.find((m: { annotations?: Record<string, string> }) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  const manifest = JSON.parse(fs.readFileSync(blob(desc.digest), 'utf8'));
  const layer = manifest.layers[manifest.layers.length - 1];
  const bad = transform(fs.readFileSync(blob(layer.digest)));
  layer.digest = sha(bad);
  layer.size = bad.length;
  fs.writeFileSync(blob(layer.digest), bad);
  const m = Buffer.from(JSON.stringify(manifest));
  fs.writeFileSync(blob(sha(m)), m);
  desc.digest = sha(m);
  desc.size = m.length;
  fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify(index));
}

describe.skipIf(!requireTool('umoci'))('hostile container images', () => {
  let work: string;
  let layout: string;
  let store: string;

  /** Everything a refused import must leave as it was. */
  const snapshot = () => {
    const db = new Database(path.join(store, 'strata.db'), { readonly: true });
    try {
      return {
        images: db.prepare('SELECT id, name, kind, parent_id FROM images ORDER BY id').all(),
        blocks: (() => {
          const live = liveSlots(db);
          return { n: live.length, refs: live.reduce((t, r) => t + r.refcount, 0) };
        })(),
        segments: db.prepare('SELECT count(*) AS n FROM segments').get(),
      };
    } finally {
      db.close();
    }
  };

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-oci-hostile-'));
    layout = path.join(work, 'oci');
    store = path.join(work, 'store');
    const base: Entry[] = [{ type: 'dir', name: 'etc/' }, { type: 'file', name: 'etc/os-release', data: 'ID=test\n' }];
    ociImage(layout, 'good', [base], work);
    ociImage(layout, 'dotdot', [base, [{ type: 'file', name: '../../escaped', data: 'x' }]], work);
    ociImage(layout, 'absolute', [base, [{ type: 'file', name: '/etc/abs', data: 'x' }]], work);
    fs.mkdirSync(path.join(work, 'outside'));
    ociImage(layout, 'symlink', [base, [{ type: 'symlink', name: 'evil', target: path.join(work, 'outside') }, { type: 'file', name: 'evil/pwned', data: 'x' }]], work);
    ociImage(layout, 'symlink-across', [base, [{ type: 'symlink', name: 'etc2', target: '../../..' + path.join(work, 'outside') }], [{ type: 'file', name: 'etc2/pwned', data: 'x' }]], work);
    ociImage(layout, 'hardlink-out', [base, [{ type: 'hardlink', name: 'h', target: '../../etc/passwd' }]], work);
    ociImage(layout, 'bomb', [base, [{ type: 'file', name: 'zeros', data: Buffer.alloc(40 << 20) }]], work);
    ociImage(layout, 'tampered', [base, [{ type: 'file', name: 'f', data: bytes('t', 10000) }]], work);
    ociImage(layout, 'truncated', [base, [{ type: 'file', name: 'f', data: bytes('u', 100000) }]], work);
    rewriteTopLayer(layout, 'truncated', (b) => b.subarray(0, b.length - 5000));
    ociImage(layout, 'not-tar', [base, [{ type: 'file', name: 'f', data: 'x' }]], work);
    rewriteTopLayer(layout, 'not-tar', () => zlib.gzipSync(Buffer.from('this is not a tar archive at all, just text that goes on '.repeat(20))));
    // A byte flipped in a layer blob whose manifest is left alone: its digest no longer matches.
    const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
    const desc = index.manifests.find((m: { annotations?: Record<string, string> }) => m.annotations?.['org.opencontainers.image.ref.name'] === 'tampered');
    const manifest = JSON.parse(fs.readFileSync(path.join(layout, 'blobs', 'sha256', desc.digest.slice(7)), 'utf8'));
    const victim = path.join(layout, 'blobs', 'sha256', manifest.layers[1].digest.slice(7));
    const b = fs.readFileSync(victim);
    b[b.length >> 1] ^= 0xff;
    fs.writeFileSync(victim, b);
    // The store holds one good image, so "unchanged" is not just "empty".
    strataOk(store, ['import', `oci:${layout}:good`, 'good']);
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  const cases: [string, string[], number, RegExp][] = [
    ['a path with ..', [], 2, /layer 2 of 2 \(sha256:[0-9a-f]{64}\): entry "\.\.\/\.\.\/escaped" escapes the root with "\.\."; nothing imported/],
    ['an absolute path', [], 2, /entry "\/etc\/abs" has an absolute path; nothing imported/],
    ['a symlink written through', [], 2, /entry "evil\/pwned" goes through the symlink evil \(-> .*outside\); nothing imported/],
    ['a symlink of a lower layer written through', [], 2, /layer 3 of 3 .*entry "etc2\/pwned" goes through the symlink etc2/],
    ['a hard link out of the root', [], 2, /hard link.*|escapes the root/],
    ['a tar bomb beyond --max-size', ['--max-size', '16M'], 10, /layer 2 of 2 .* expands beyond --max-size 16 MiB, 16777216 bytes \(a tar bomb, or pass a larger --max-size\); nothing imported/],
    ['a layer whose digest does not match', [], 17, /layer 2 of 2 \(sha256:[0-9a-f]{64}\) has digest sha256:[0-9a-f]{64}, not sha256:[0-9a-f]{64} as the manifest says; nothing imported/],
    ['a truncated gzip layer', [], 17, /layer 2 of 2 .* is not a valid gzip stream \(unexpected end of file\)/],
    ['a layer that is not a tar archive', [], 17, /not a tar archive|uncompresses to/],
  ];
  const tags = ['dotdot', 'absolute', 'symlink', 'symlink-across', 'hardlink-out', 'bomb', 'tampered', 'truncated', 'not-tar'];

  it.each(cases.map((c, i) => [c[0], tags[i], c[1], c[2], c[3]] as const))('%s is refused in one line, and nothing changes', (_what, tag, flags, status, message) => {
    const before = snapshot();
    const tmp = path.join(work, 'tmp');
    fs.mkdirSync(tmp, { recursive: true });
    const r = strata(store, ['import', `oci:${layout}:${tag}`, tag, ...flags], { env: { TMPDIR: tmp } });
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(r.status).toBe(status);
    expect(snapshot()).toEqual(before);
    expect(fs.readdirSync(path.join(work, 'outside'))).toEqual([]);
    // No staged layer contents left behind either.
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('the store is clean after all of them', () => {
    const r = strata(store, ['check']);
    expect(r.status).toBe(0);
    const names = JSON.parse(strataOk(store, ['--json', 'ls']).stdout).map((i: { name: string }) => i.name) as string[];
    expect(names).toHaveLength(2);
    expect(names).toContain('good');
    expect(names.filter((n) => /^oci-[0-9a-f]{12}$/.test(n))).toHaveLength(1);
  });
});

/**
 * The ext4 writer drives debugfs with a script, a command language: a name,
 * link target or xattr key that reached it could start a command of its own
 * (a newline, or a line longer than debugfs's 8,192-byte buffer, which it
 * cuts and runs piece by piece). `dump` then copies a file of the image onto
 * the host, and a line starting with `!` runs a shell command. Each such
 * string is refused by name before anything is staged or built.
 */
describe.skipIf(!requireTool('umoci'))('untrusted strings never reach the debugfs script', () => {
  let work: string;
  let layout: string;
  let store: string;
  let canaries: string;
  const canary = (tag: string) => path.join(canaries, tag);

  /** A layer whose one evil string, once in a debugfs line, puts the command at byte `at` of its line (where debugfs cuts). */
  const cutAt = (prefix: string, cmd: string, len: number) => {
    const head = 'a'.repeat(8191 - prefix.length);
    return (head + cmd).padEnd(len, 'a');
  };

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-oci-debugfs-'));
    layout = path.join(work, 'oci');
    store = path.join(work, 'store');
    canaries = path.join(work, 'canaries');
    fs.mkdirSync(canaries);
    const base: Entry[] = [{ type: 'dir', name: 'etc/' }, { type: 'file', name: 'etc/os-release', data: 'ID=payload\n' }];
    ociImage(layout, 'good', [base], work);
    ociImage(layout, 'target-dump', [base, [{ type: 'symlink', name: 'evil', target: `x\ndump /etc/os-release ${canary('target-dump')}\n#` }]], work);
    ociImage(layout, 'target-shell', [base, [{ type: 'symlink', name: 'evil', target: `x\n!touch ${canary('target-shell')}\n#` }]], work);
    // debugfs cuts at 8,191 bytes: `symlink "/evil" "` then the target, whose byte 8174 starts the next "line".
    ociImage(layout, 'target-long', [base, [{ type: 'symlink', name: 'evil', target: cutAt('symlink "/evil" "', '!touch $STRATA_TEST_CANARY #', 9000) }]], work);
    // A file's `sif "/NAME" mode ...` lines are cut the same way.
    ociImage(layout, 'name-long', [base, [{ type: 'file', name: cutAt('sif "/', '!touch $STRATA_TEST_CANARY #', 9000), data: 'x' }]], work);
    ociImage(layout, 'xattr-key', [base, [{ type: 'file', name: 'f', data: 'x', xattrs: { [`user.x\ndump /etc/os-release ${canary('xattr-key')}\n#`]: Buffer.from('v') } }]], work);
    ociImage(layout, 'name-newline', [base, [{ type: 'file', name: `f\n!touch ${canary('name-newline')}\n#`, data: 'x' }]], work);
    strataOk(store, ['import', `oci:${layout}:good`, 'good']);
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  const ls = () => strataOk(store, ['--json', 'ls']).stdout;

  it.each([
    ['a symlink target with a newline and a dump command', 'target-dump', /layer 2 of 2 \(sha256:[0-9a-f]{64}\): entry "evil" has a control character \(U\+000A\) in its symlink target; nothing imported$/],
    ['a symlink target with a newline and a shell escape', 'target-shell', /entry "evil" has a control character \(U\+000A\) in its symlink target; nothing imported$/],
    ['a 9,000-byte symlink target with a shell escape where debugfs cuts', 'target-long', /entry "evil" has a symlink target of 9000 bytes, more than ext4's 4095; nothing imported$/],
    ['a 9,000-byte name with a shell escape where debugfs cuts', 'name-long', /entry "a{40}[^"]*" has a name component of 9000 bytes, more than ext4's 255; nothing imported$/],
    ['an xattr key with a newline and a dump command', 'xattr-key', /entry "f" has a control character \(U\+000A\) in its xattr name "user\.x\\ndump .*"; nothing imported$/],
    ['a name with a newline and a shell escape', 'name-newline', /entry "f\\n!touch .*" has a control character \(U\+000A\) in its name; nothing imported$/],
  ])('%s is refused by name, and runs nothing', (_what, tag, message) => {
    const before = ls();
    const r = strata(store, ['import', `oci:${layout}:${tag}`, tag], { env: { STRATA_TEST_CANARY: canary(tag) } });
    expect(fs.existsSync(canary(tag))).toBe(false);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr.trim()).toMatch(message);
    expect(r.status).toBe(2);
    expect(ls()).toEqual(before);
  });
});
