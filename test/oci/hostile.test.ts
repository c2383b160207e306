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
    ['a layer whose digest does not match', [], 8, /layer 2 of 2 \(sha256:[0-9a-f]{64}\) has digest sha256:[0-9a-f]{64}, not sha256:[0-9a-f]{64} as the manifest says; nothing imported/],
    ['a truncated gzip layer', [], 8, /layer 2 of 2 .* is not a valid gzip stream \(unexpected end of file\)/],
    ['a layer that is not a tar archive', [], 8, /not a tar archive|uncompresses to/],
  ];
  const tags = ['dotdot', 'absolute', 'symlink', 'symlink-across', 'hardlink-out', 'bomb', 'tampered', 'truncated', 'not-tar'];

  it.each(cases.map((c, i) => [c[0], tags[i], ...c.slice(1)] as const))('%s is refused in one line, and nothing changes', (_what, tag, flags, status, message) => {
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
