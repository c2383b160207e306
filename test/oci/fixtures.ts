/**
 * The container image the OCI tests import: three layers that between them
 * hold every file kind strata must carry (regular, empty, sparse-sized,
 * directories, fast and slow symlinks, hard links, character and block
 * devices, fifos), setuid/setgid/sticky modes, owners above 65535, xattrs
 * (security.capability, user.*), long and odd names, and whiteouts and
 * opaque directories across layers.
 */
import { bytes, type Entry } from '../helpers/oci.js';

export const CAP_NET_RAW = Buffer.from('0100000200200000000000000000000000000000', 'hex');

const T = 1_700_000_000;

export const LAYER1: Entry[] = [
  { type: 'dir', name: './', mode: 0o755, mtime: T },
  { type: 'dir', name: 'etc/', mtime: T },
  { type: 'file', name: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\n', mtime: T + 1 },
  { type: 'file', name: 'etc/shadow', data: 'root:*::0:::::\n', mode: 0o640, gid: 42, mtime: T + 2 },
  { type: 'file', name: 'etc/empty', data: '', mtime: T + 3 },
  { type: 'dir', name: 'bin/', mtime: T },
  { type: 'file', name: 'bin/busybox', data: bytes('busybox', 300_000), mode: 0o755, mtime: T + 4 },
  { type: 'file', name: 'bin/ping', data: bytes('ping', 20_000), mode: 0o4755, mtime: T + 5, xattrs: { 'security.capability': CAP_NET_RAW } },
  { type: 'file', name: 'bin/wall', data: bytes('wall', 9_000), mode: 0o2755, gid: 5, mtime: T + 6 },
  { type: 'hardlink', name: 'bin/ping6', target: 'bin/ping' },
  { type: 'symlink', name: 'bin/sh', target: 'busybox', mtime: T + 7 },
  { type: 'symlink', name: 'bin/long', target: `/usr/share/${'very-long-directory-name/'.repeat(4)}target`, mtime: T + 8 },
  { type: 'symlink', name: 'bin/dangling', target: '../nowhere/at/all', mtime: T + 9 },
  { type: 'dir', name: 'dev/', mtime: T },
  { type: 'char', name: 'dev/null', major: 1, minor: 3, mode: 0o666, mtime: T },
  { type: 'char', name: 'dev/tty1', major: 4, minor: 1, mode: 0o620, gid: 5, mtime: T },
  { type: 'block', name: 'dev/sda1', major: 8, minor: 1, mode: 0o660, gid: 6, mtime: T },
  { type: 'block', name: 'dev/big', major: 259, minor: 300, mode: 0o600, mtime: T },
  { type: 'fifo', name: 'dev/initctl', mode: 0o600, mtime: T },
  { type: 'dir', name: 'tmp/', mode: 0o1777, mtime: T },
  { type: 'dir', name: 'home/', mtime: T },
  { type: 'dir', name: 'home/user/', mode: 0o700, uid: 1000, gid: 1000, mtime: T },
  { type: 'file', name: 'home/user/notes with "quotes" and spaces.txt', data: 'hello\n', uid: 1000, gid: 1000, mtime: T + 10 },
  { type: 'file', name: 'home/user/big-uid', data: 'x', uid: 100_000, gid: 200_000, mtime: T + 11, xattrs: { 'user.origin': Buffer.from('layer1') } },
  { type: 'file', name: `home/user/${'n'.repeat(150)}`, data: 'long name', uid: 1000, gid: 1000, mtime: T + 12 },
  { type: 'dir', name: 'var/', mtime: T },
  { type: 'dir', name: 'var/cache/', mtime: T },
  { type: 'file', name: 'var/cache/a', data: bytes('cache-a', 8192), mtime: T },
  { type: 'dir', name: 'var/cache/sub/', mtime: T },
  { type: 'file', name: 'var/cache/sub/b', data: 'b', mtime: T },
  { type: 'dir', name: 'opt/', mtime: T },
  { type: 'dir', name: 'opt/app/', mtime: T },
  { type: 'file', name: 'opt/app/old', data: 'old', mtime: T },
  { type: 'file', name: 'opt/replaced', data: 'a file, later a directory', mtime: T },
];

export const LAYER2: Entry[] = [
  { type: 'file', name: 'etc/.wh.shadow' },
  { type: 'file', name: '.wh.var' },
  { type: 'file', name: 'opt/app/.wh..wh..opq' },
  { type: 'file', name: 'opt/app/new', data: 'new', mtime: T + 20 },
  { type: 'dir', name: 'opt/replaced/', mode: 0o750, mtime: T + 21 },
  { type: 'file', name: 'opt/replaced/inside', data: 'inside', mtime: T + 22 },
  { type: 'file', name: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n', mtime: T + 23 },
  { type: 'dir', name: 'etc/', mode: 0o700, mtime: T + 24 },
  { type: 'hardlink', name: 'bin/ping4', target: 'bin/ping' },
  { type: 'file', name: 'usr/lib/deep/file', data: bytes('deep', 5000), mtime: T + 25 },
];

export const LAYER3: Entry[] = [
  { type: 'file', name: 'bin/.wh.ping6' },
  { type: 'dir', name: 'var/', mode: 0o755, mtime: T + 30 },
  { type: 'file', name: 'var/fresh', data: 'recreated after a whiteout', mtime: T + 31 },
  { type: 'symlink', name: 'opt/app/new', target: '/etc/passwd', mtime: T + 32 },
];
