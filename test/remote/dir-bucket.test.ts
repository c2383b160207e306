/**
 * A directory as a bucket (src/remote/dir-bucket.ts), beyond the contract
 * every bucket keeps (bucket-contract.test.ts): its objects are plain files
 * an admin can read; a key never reaches outside the directory, neither by
 * its segments nor through a symbolic link someone put there; a put killed
 * before its rename leaves no torn object; and `strata remote add NAME
 * file:///PATH` works as an s3:// remote does.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { openDirBucket } from '../../src/remote/dir-bucket.js';
import { strata, strataOk } from '../helpers/cli.js';
import { rng } from '../helpers/random.js';
import { tmpDir } from '../helpers/tmp.js';

const json = (r: { stdout: string }) => JSON.parse(r.stdout);

/** Every path under `dir`, relative, sorted: what a test compares before and after. */
const tree = (dir: string): string[] => (fs.readdirSync(dir, { recursive: true }) as string[]).sort();

describe('a directory bucket', () => {
  it('holds each object as a file named by its key, readable with any tool; temporaries are never listed', async () => {
    const root = path.join(tmpDir(), 'nas');
    const b = openDirBucket(root);
    await b.ensure();
    await b.put('manifests/deb/abc.json', Buffer.from('{"image":"deb"}\n'));
    await b.put('packs/p1', Buffer.alloc(8192, 1));
    expect(fs.readFileSync(path.join(root, 'manifests/deb/abc.json'), 'utf8')).toBe('{"image":"deb"}\n');
    expect(fs.statSync(path.join(root, 'packs/p1')).size).toBe(8192);
    // What a crash between write and rename leaves: never an object.
    fs.writeFileSync(path.join(root, 'packs', '.tmp.0123456789abcdef'), 'half a pack');
    expect((await b.list('')).map((o) => o.key)).toEqual(['manifests/deb/abc.json', 'packs/p1']);
    // Removing the last object of a folder removes the folder: no empty directories pile up per image.
    await b.remove('manifests/deb/abc.json');
    expect(fs.existsSync(path.join(root, 'manifests'))).toBe(false);
    await b.put('manifests/deb/def.json', Buffer.from('{}'));
    expect(await b.has('manifests/deb/def.json')).toBe(true);
  });

  it('a key that is not a plain path inside the directory is E_BAD_INPUT for every method, and nothing outside is touched', async () => {
    const outer = tmpDir();
    const root = path.join(outer, 'nas');
    const b = openDirBucket(root);
    await b.ensure();
    await b.put('index/good', Buffer.from('x'));
    const before = tree(outer);
    const hostile = ['../escape', 'index/../../escape', '/etc/passwd', 'index//x', 'index/./x', 'index/', '', 'index/a\0b', '.tmp.0000', 'packs/.tmp.1', `x/${'a'.repeat(256)}`];
    for (const key of hostile) {
      const shown = JSON.stringify(key).slice(0, 40);
      for (const op of [() => b.put(key, Buffer.from('evil')), () => b.putNew(key, Buffer.from('evil')), () => b.get(key, 64), () => b.getRange(key, 0, 1), () => b.has(key), () => b.remove(key)]) {
        await expect(op(), shown).rejects.toMatchObject({ code: 'E_BAD_INPUT', message: expect.stringMatching(/^invalid object key .* for a directory bucket: /) });
      }
    }
    await expect(b.list('../')).rejects.toMatchObject({ code: 'E_BAD_INPUT' });
    await expect(b.list('index/../../')).rejects.toMatchObject({ code: 'E_BAD_INPUT' });
    expect(tree(outer)).toEqual(before);
    expect((await b.get('index/good', 64)).toString()).toBe('x');
  });

  it('never follows a symbolic link in the directory: not to read, not to write, not to list', async () => {
    const outer = tmpDir();
    const root = path.join(outer, 'nas');
    const secret = path.join(outer, 'secret');
    fs.mkdirSync(secret);
    fs.writeFileSync(path.join(secret, 'key'), 'private');
    const b = openDirBucket(root);
    await b.ensure();
    await b.put('index/real', Buffer.from('ours'));
    fs.symlinkSync(secret, path.join(root, 'packs')); // a folder that leads out
    fs.symlinkSync(path.join(secret, 'key'), path.join(root, 'index', 'link')); // an object that leads out
    const refused = { code: 'E_IO', message: expect.stringContaining('is a symbolic link; a directory bucket never follows one') };
    await expect(b.get('packs/key', 64)).rejects.toMatchObject(refused);
    await expect(b.getRange('packs/key', 0, 1)).rejects.toMatchObject(refused);
    await expect(b.get('index/link', 64)).rejects.toMatchObject(refused);
    await expect(b.put('packs/planted', Buffer.from('x'))).rejects.toMatchObject(refused);
    await expect(b.putNew('packs/planted', Buffer.from('x'))).rejects.toMatchObject(refused);
    await expect(b.remove('packs/key')).rejects.toMatchObject(refused);
    expect(await b.has('index/link')).toBe(false);
    expect((await b.list('')).map((o) => o.key)).toEqual(['index/real']);
    await expect(b.list('packs/')).rejects.toMatchObject(refused);
    expect(fs.readdirSync(secret)).toEqual(['key']);
    expect(fs.readFileSync(path.join(secret, 'key'), 'utf8')).toBe('private');
  });

  it('a directory that is not there (a NAS not mounted) is E_NOT_FOUND naming it for every method, never an empty bucket, and is not made', async () => {
    const root = path.join(tmpDir(), 'nas');
    const b = openDirBucket(root);
    await b.ensure();
    await b.put('packs/p', Buffer.from('x'));
    fs.rmSync(root, { recursive: true });
    const gone = { code: 'E_NOT_FOUND', message: `no directory ${root}` };
    await expect(b.list('')).rejects.toMatchObject(gone);
    await expect(b.list('manifests/')).rejects.toMatchObject(gone);
    await expect(b.get('packs/p', 64)).rejects.toMatchObject(gone);
    await expect(b.has('packs/p')).rejects.toMatchObject(gone);
    await expect(b.remove('packs/p')).rejects.toMatchObject(gone);
    await expect(b.put('packs/q', Buffer.from('y'))).rejects.toMatchObject(gone);
    await expect(b.putNew('locks/gc', Buffer.from('y'))).rejects.toMatchObject(gone);
    expect(fs.existsSync(root)).toBe(false);
  });

  it('an object where a folder would be is a one-line E_BAD_INPUT for a write, and absent for a read', async () => {
    const b = openDirBucket(path.join(tmpDir(), 'nas'));
    await b.ensure();
    await b.put('locks/gc', Buffer.from('x'));
    await expect(b.put('locks/gc/child', Buffer.from('y'))).rejects.toMatchObject({ code: 'E_BAD_INPUT', message: expect.stringContaining('cannot store locks/gc/child in directory ') });
    await expect(b.get('locks/gc/child', 64)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    expect(await b.has('locks/gc/child')).toBe(false);
    expect((await b.list('locks/gc/')).length).toBe(0);
  });
});

describe('strata remote add NAME file:///PATH', () => {
  it('needs the directory to exist unless --create; is listed with its file:// URL; refuses S3 options and relative paths', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'store');
    strataOk(store, ['init']);
    const nas = path.join(dir, 'mnt nas', 'strata');
    const url = pathToFileURL(nas).href;
    const missing = strata(store, ['remote', 'add', 'nas', url]);
    expect(missing.stderr).toBe(`strata: no directory ${nas}; check the name, or create it: strata remote add nas ${url} --create\n`);
    expect(missing.status).toBe(ERROR_CODES.E_NOT_FOUND);
    expect(fs.existsSync(nas)).toBe(false);
    expect(json(strataOk(store, ['--json', 'remote', 'ls'])).remotes).toEqual([]);

    expect(strataOk(store, ['remote', 'add', 'nas', url, '--create']).stdout).toBe(`remote nas is ${url}\n`);
    expect(fs.statSync(nas).isDirectory()).toBe(true);
    // One that exists needs no --create.
    strataOk(store, ['remote', 'add', 'again', `file://${nas}`]);
    expect(json(strataOk(store, ['--json', 'remote', 'ls'])).remotes.map((r: { name: string; url: string; endpoint: string | null }) => [r.name, r.url, r.endpoint])).toEqual([
      ['again', url, null],
      ['nas', url, null],
    ]);
    expect(strataOk(store, ['remote', 'ls']).stdout).toMatch(new RegExp(`^nas +${url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} +- +`, 'm'));

    for (const [args, message] of [
      [['x', url, '--endpoint', 'http://127.0.0.1:9'], `--endpoint is for s3:// remotes; ${url} is a directory`],
      [['x', url, '--region', 'eu', '--no-path-style'], `--region and --no-path-style are for s3:// remotes; ${url} is a directory`],
      [['x', 'file:relative/dir'], '"file:relative/dir" is not a file:// URL of a directory (file:///PATH, an absolute path)'],
      [['x', 'file://otherhost/dir'], '"file://otherhost/dir" is not a file:// URL of a directory (file:///PATH, an absolute path)'],
    ] as const) {
      const r = strata(store, ['remote', 'add', ...args]);
      expect(r.stderr).toBe(`strata: ${message}\n`);
      expect(r.status).toBe(ERROR_CODES.E_BAD_INPUT);
    }
  });

  it('a push killed before a rename into the directory leaves no torn object, only a temporary no listing shows; the next push completes and pulls byte-identical', async () => {
    const dir = tmpDir();
    const data = rng(5).text(2 * 1024 * 1024);
    fs.writeFileSync(path.join(dir, 'img.raw'), data);
    const nas = path.join(dir, 'nas');
    const [A, B] = ['A', 'B'].map((n) => path.join(dir, n));
    for (const s of [A, B]) {
      strataOk(s, ['init']);
      strataOk(s, ['remote', 'add', 'fleet', pathToFileURL(nas).href, '--create']);
    }
    strataOk(A, ['create', 'img', '--from', path.join(dir, 'img.raw')]);
    // The push's lock is its first put; its first pack the second.
    const killed = strata(A, ['push', 'img', 'fleet'], { env: { STRATA_FAULT: 'dir-bucket.before-rename:2' } });
    expect(killed.status, 'killed at its fault point: a signal, no exit status').toBe(-1);
    const files = tree(nas).filter((f) => fs.statSync(path.join(nas, f)).isFile());
    expect(files.filter((f) => path.basename(f).startsWith('.tmp.'))).toHaveLength(1); // the pack, whole but never renamed
    const listed = await openDirBucket(nas).list('');
    expect(listed.map((o) => o.key)).toEqual([expect.stringMatching(/^locks\/push\//)]);

    strataOk(A, ['push', 'img', 'fleet']);
    strataOk(B, ['pull', 'fleet/img']);
    const out = path.join(dir, 'out.raw');
    strataOk(B, ['export', 'img', out]);
    expect(fs.readFileSync(out).equals(data)).toBe(true);
    expect(json(strataOk(B, ['--json', 'remote', 'check', 'fleet', '--read-data'])).status).toBe('clean');
  });
});
