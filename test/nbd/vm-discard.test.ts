/**
 * Discard in a real VM: a Linux guest (QEMU under TCG, the distribution's
 * kernel, a busybox initramfs built here) mounts an ext4 file system on a
 * strata leaf served over NBD with `discard=unmap`, writes files, deletes
 * them and runs `fstrim`. The TRIMs must free the leaf's blocks, and
 * `strata gc` must give the data files' space back to the host file system.
 *
 * The guest says where it is on its serial console and waits for a line from
 * the test after writing its files, so the test measures the store at that
 * point and after the trim, with no guessing about timing.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { available } from '../helpers/available.js';
import { strataOk } from '../helpers/cli.js';
import { spawnTracked } from '../helpers/processes.js';
import { startServe } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';
import { requireTool } from '../helpers/tools.js';

const MiB = 1024 * 1024;
/** What the guest writes and then deletes: two files of random bytes (nothing to deduplicate). */
const FILE_MIB = 4;
const FILES = 2;
const FREED = FILE_MIB * FILES * MiB;

/** The newest kernel in /boot with its modules installed: `{ version, image }`, or undefined. */
function findKernel(): { version: string; image: string } | undefined {
  let names: string[];
  try {
    names = fs.readdirSync('/boot');
  } catch {
    return undefined;
  }
  const found = names
    .filter((n) => n.startsWith('vmlinuz-'))
    .map((n) => ({ version: n.slice('vmlinuz-'.length), image: path.join('/boot', n) }))
    .filter((k) => fs.existsSync(`/lib/modules/${k.version}/modules.dep`));
  return found.sort((a, b) => b.version.localeCompare(a.version, undefined, { numeric: true }))[0];
}

const kernel = findKernel();
const ready = () =>
  ['qemu-system-x86_64', 'busybox', 'cpio', 'mkfs.ext4'].map(requireTool).every(Boolean) &&
  available(kernel !== undefined, 'no Linux kernel with its modules in /boot and /lib/modules (Debian: linux-image-amd64)');

/** The modules `wanted` need, each after those it depends on (modules.dep), as paths under /lib/modules/VERSION. */
function modulesFor(version: string, wanted: readonly string[]): string[] {
  const root = `/lib/modules/${version}`;
  const deps = new Map<string, string[]>();
  for (const line of fs.readFileSync(path.join(root, 'modules.dep'), 'utf8').split('\n')) {
    const [mod, rest] = line.split(':');
    if (mod && rest !== undefined) deps.set(mod, rest.trim().split(/\s+/).filter(Boolean));
  }
  const byName = (name: string) => {
    const hit = [...deps.keys()].find((m) => path.basename(m).replace(/\.ko(\.\w+)?$/, '').replace(/-/g, '_') === name);
    if (!hit) throw new Error(`module ${name} is not in ${root}/modules.dep`);
    return hit;
  };
  const order: string[] = [];
  const visit = (mod: string) => {
    if (order.includes(mod)) return;
    for (const d of deps.get(mod) ?? []) visit(d);
    order.push(mod);
  };
  for (const w of wanted) visit(byName(w));
  return order;
}

/** The guest's /init: mount, write, wait for the test, delete, trim, power off. */
const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /$m || echo "STRATA-FAIL insmod $m"; done
mkdir -p /mnt
mount -t ext4 /dev/vda /mnt || echo STRATA-FAIL mount
i=0
while [ $i -lt ${FILES} ]; do dd if=/dev/urandom of=/mnt/file$i bs=1M count=${FILE_MIB} 2>/dev/null; i=$((i + 1)); done
sync
echo STRATA-WRITTEN
read go
rm /mnt/file*
sync
echo "STRATA-TRIM $(fstrim -v /mnt)"
umount /mnt
echo STRATA-DONE
poweroff -f
`;

/** A newc initramfs with busybox, the modules and /init. */
function buildInitramfs(dir: string, version: string): string {
  const root = path.join(dir, 'root');
  for (const d of ['bin', 'proc', 'sys', 'dev', 'mnt']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync(fs.realpathSync(spawnSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).stdout.trim()), path.join(root, 'bin', 'busybox'));
  fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  const mods = modulesFor(version, ['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4']);
  for (const m of mods) {
    fs.mkdirSync(path.join(root, path.dirname(m)), { recursive: true });
    fs.copyFileSync(path.join(`/lib/modules/${version}`, m), path.join(root, m));
  }
  fs.writeFileSync(path.join(root, 'modules.order'), mods.join('\n') + '\n');
  fs.writeFileSync(path.join(root, 'init'), INIT, { mode: 0o755 });
  const out = path.join(dir, 'initramfs.cpio');
  const r = spawnSync('sh', ['-c', `find . | cpio -o -H newc --quiet > "${out}"`], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cpio: ${r.stderr}`);
  return out;
}

/** Bytes the store's data files occupy on the host file system. */
function dataAllocated(store: string): number {
  const dir = path.join(store, 'data');
  return fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).blocks * 512, 0);
}

const ownBytes = (store: string) => (JSON.parse(strataOk(store, ['du', 'vm', '--json']).stdout) as { ownBytes: number }[])[0].ownBytes;

describe('discard in a real VM', () => {
  it.runIf(ready())('fstrim in the guest frees the leaf blocks of deleted files, and gc returns at least 95% of them to the host', async () => {
    const work = tmpDir();
    const store = tmpDir();
    const fsImage = path.join(work, 'fs.raw');
    // Inode tables and journal initialised now: the guest's kernel writes nothing of its own in the background.
    const mk = spawnSync('mkfs.ext4', ['-q', '-F', '-b', '4096', '-E', 'lazy_itable_init=0,lazy_journal_init=0,nodiscard', fsImage, '64M'], { encoding: 'utf8' });
    expect(mk.status, mk.stderr).toBe(0);
    strataOk(store, ['create', 'base', '--from', fsImage]);
    strataOk(store, ['clone', 'base', 'vm']);
    const initramfs = buildInitramfs(work, kernel!.version);

    const srv = await startServe(store, ['vm']);
    const vm = spawnTracked(
      'qemu-system-x86_64',
      [
        ...['-accel', 'tcg', '-m', '256', '-nodefaults', '-display', 'none', '-no-reboot', '-serial', 'stdio'],
        ...['-kernel', kernel!.image, '-initrd', initramfs, '-append', 'console=ttyS0 quiet panic=-1 rdinit=/init'],
        ...['-drive', `file=${srv.uri('vm')},format=raw,if=virtio,discard=unmap,cache=writeback`],
      ],
      { keepStdin: true },
    );
    await vm.waitFor(/STRATA-WRITTEN|STRATA-FAIL.*/);
    expect(vm.stdout, vm.all).not.toMatch(/STRATA-FAIL/);
    // The guest synced: its files are flushed into the leaf.
    const ownWritten = ownBytes(store);
    const allocatedWritten = dataAllocated(store);
    expect(ownWritten, vm.all).toBeGreaterThanOrEqual(FREED);
    vm.child.stdin!.write('go\n');
    // The whole line: output comes in pieces, and a match must not end where a piece does.
    const trim = await vm.waitFor(/STRATA-TRIM ([^\r\n]*)\r?\n/);
    expect(trim[1], vm.all).toMatch(/^\/mnt: \d+ bytes trimmed/);
    await vm.waitFor(/STRATA-DONE/);
    const exit = await vm.exited;
    expect(exit.code, vm.stdout + vm.stderr).toBe(0);
    expect((await srv.stop()).code, srv.stderr).toBe(0);

    // The leaf no longer holds the deleted files' blocks...
    const ownTrimmed = ownBytes(store);
    const said = `leaf own bytes ${ownWritten} -> ${ownTrimmed}; data files ${allocatedWritten} allocated after writing; guest: ${trim[1]}`;
    expect(ownWritten - ownTrimmed, said).toBeGreaterThanOrEqual(0.95 * FREED);
    // ...and gc gives their space back to the host file system.
    strataOk(store, ['gc']);
    const returned = allocatedWritten - dataAllocated(store);
    expect(returned, `${said}; ${returned} returned by gc`).toBeGreaterThanOrEqual(0.95 * FREED);
    expect(strataOk(store, ['check']).stdout).toMatch(/No errors were found/);
    // A guard, not a bound: booting under TCG takes about 20 s on a quiet 2-core machine.
  }, 300_000);
});
