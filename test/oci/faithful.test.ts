/**
 * A container image imported by strata holds the tree umoci unpacks, in an
 * ext4 file system e2fsck finds clean, layer by layer; the same image gives
 * the same bytes whatever its transport (OCI gzip, OCI zstd, docker-archive)
 * and whoever imports it (root or not).
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { strata, strataOk } from '../helpers/cli.js';
import { ext4Listing, dirListing } from '../helpers/fs-listing.js';
import { ociImage, sh, umociUnpack } from '../helpers/oci.js';
import { isRoot } from '../helpers/available.js';
import { requireTool } from '../helpers/tools.js';
import { LAYER1, LAYER2, LAYER3 } from './fixtures.js';

const haveTools = requireTool('umoci') && requireTool('skopeo') && requireTool('setpriv');
// The umoci unpack oracle needs root (owners, device nodes).
const root = isRoot();

const digestOf = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

describe.skipIf(!haveTools || !root)('container images are imported faithfully', () => {
  let work: string;
  let layout: string;

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-oci-faithful-'));
    fs.chmodSync(work, 0o755);
    layout = path.join(work, 'oci');
    ociImage(layout, 'full', [LAYER1, LAYER2, LAYER3], work);
    // The same layers as images of one and two layers: the oracle for the lower strata layers.
    ociImage(layout, 'one', [LAYER1], work);
    ociImage(layout, 'two', [LAYER1, LAYER2], work);
    sh('chmod', ['-R', 'a+rX', layout]);
    return () => fs.rmSync(work, { recursive: true, force: true });
  });

  it('every layer holds the tree umoci unpacks, and e2fsck -fn is clean on each', () => {
    const store = path.join(work, 'store-gzip');
    const r = strataOk(store, ['import', `oci:${layout}:full`, 'full']);
    expect(r.stdout).toMatch(/^imported full: layer/);
    const info = JSON.parse(strataOk(store, ['--json', 'info', 'full']).stdout) as { chain: string[]; source: Record<string, unknown> };
    // The name on top, then one strata layer per OCI layer, named by chain ID.
    expect(info.chain).toHaveLength(4);
    expect(info.chain.slice(1).every((n) => /^oci-[0-9a-f]{12}$/.test(n))).toBe(true);
    expect(info.source).toMatchObject({ format: 'oci', reference: 'full', layers: 3 });
    expect(info.source.manifestDigest).toMatch(/^sha256:[0-9a-f]{64}$/);

    const layers = info.chain.slice(1).reverse();
    ['one', 'two', 'full'].forEach((tag, i) => {
      const img = path.join(work, `${tag}.ext4`);
      strataOk(store, ['export', layers[i], img]);
      const fsck = sh('e2fsck', ['-fn', img]);
      expect(fsck).toMatch(/Pass 5/);
      const scratch = fs.mkdtempSync(path.join(work, 'dump-'));
      const got = ext4Listing(img, scratch);
      const want = dirListing(umociUnpack(layout, tag, path.join(work, `bundle-${tag}`)));
      expect(got).toEqual(want);
    });
    // Spot checks a reader can follow without the oracle.
    const top = ext4Listing(path.join(work, 'full.ext4'), fs.mkdtempSync(path.join(work, 'dump-')));
    expect(top['/bin/ping']).toMatchObject({ mode: '4755', nlink: 2, xattrs: { 'security.capability': '0100000200200000000000000000000000000000' } });
    expect(top['/bin/ping6']).toBeUndefined();
    expect(top['/dev/big']).toMatchObject({ type: 'block', dev: '259:300' });
    expect(top['/home/user/big-uid']).toMatchObject({ uid: 100000, gid: 200000 });
    expect(top['/etc/shadow']).toBeUndefined();
    expect(top['/var/cache/a']).toBeUndefined();
    expect(top['/var/fresh']).toBeDefined();
    expect(top['/opt/app/old']).toBeUndefined();
    expect(top['/opt/app/new']).toMatchObject({ type: 'symlink', target: '/etc/passwd' });
    expect(top['/tmp']).toMatchObject({ mode: '1777' });
  });

  it('gives the same bytes from zstd layers, from a docker-archive, and to a user without root', () => {
    const ref = path.join(work, 'store-ref');
    strataOk(ref, ['import', `oci:${layout}:full`, 'full']);
    const want = path.join(work, 'ref.ext4');
    strataOk(ref, ['export', 'full', want]);

    const zstd = path.join(work, 'oci-zstd');
    sh('skopeo', ['copy', '--dest-compress-format', 'zstd', `oci:${layout}:full`, `oci:${zstd}:full`]);
    const manifest = fs.readFileSync(path.join(zstd, 'index.json'), 'utf8');
    expect(manifest).toContain('full');
    const archive = path.join(work, 'full.tar');
    sh('skopeo', ['copy', `oci:${layout}:full`, `docker-archive:${archive}:example/full:1.0`]);

    const viaZstd = path.join(work, 'store-zstd');
    strataOk(viaZstd, ['import', `oci:${zstd}:full`, 'full']);
    const viaArchive = path.join(work, 'store-archive');
    strataOk(viaArchive, ['import', `docker-archive:${archive}`]);
    // The name defaults to the archive's tag.
    expect(JSON.parse(strataOk(viaArchive, ['--json', 'info', 'full-1.0']).stdout).source).toMatchObject({ format: 'docker-archive', reference: 'docker.io/example/full:1.0', manifestDigest: null });

    // A user without root: nobody, with a store and a temp directory of its own.
    const mine = path.join(work, 'nobody');
    fs.mkdirSync(mine);
    fs.chownSync(mine, 65534, 65534);
    const asNobody = spawnAs(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, path.resolve('dist/cli/strata.js'), '--store', path.join(mine, 'store'), 'import', `oci:${layout}:full`, 'full'], mine);
    expect(asNobody.stderr).toBe('');
    expect(asNobody.status).toBe(0);

    for (const [store, name] of [[viaZstd, 'full'], [viaArchive, 'full-1.0'], [path.join(mine, 'store'), 'full']] as const) {
      const out = path.join(work, `${path.basename(store)}.ext4`);
      strataOk(store, ['export', name, out]);
      expect(digestOf(out)).toBe(digestOf(want));
    }
  });

  it('a multi-image layout needs a REF, and names the ones it has', () => {
    const store = path.join(work, 'store-refs');
    const r = strata(store, ['import', `oci:${layout}`]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/holds 3 images; name one as oci:.*:REF \(it has: full, one, two\)/);
    const missing = strata(store, ['import', `oci:${layout}:nope`]);
    expect(missing.status).toBe(3);
    expect(missing.stderr).toMatch(/has no image named nope \(it has: full, one, two\)/);
  });
});

function spawnAs(argv: string[], tmp: string): { status: number; stderr: string } {
  const r = spawnSync(argv[0], argv.slice(1), { env: { ...process.env, TMPDIR: tmp, HOME: tmp }, encoding: 'utf8', cwd: tmp, timeout: 300_000, killSignal: 'SIGKILL' });
  return { status: r.status ?? -1, stderr: r.stderr };
}
