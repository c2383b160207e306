/**
 * What a file is, from its first bytes (and, for VHD and DMG, its last 512).
 *
 * The magics are those of QEMU's block drivers (each driver's probe) and the
 * formats' specifications:
 *   qcow2      "QFI\xfb", version 2 or 3         (version 1 is the older qcow)
 *   VHD (vpc)  "conectix" at 0 (dynamic: a copy of the footer) or at the
 *              last 512 bytes (fixed: raw data, then the footer)
 *   VHDX       "vhdxfile" at 0
 *   VMDK       "KDMV" at 0 (sparse extent), "COWD" (ESX), or a text
 *              descriptor beginning "# Disk DescriptorFile"
 *   VDI        signature 0xbeda107f (little-endian) at 0x40; the text at 0
 *              varies ("<<< Oracle VM VirtualBox Disk Image >>>", "<<< QEMU VM …")
 *   QED        "QED\0" at 0
 *   Parallels  "WithoutFreeSpace" or "WithouFreSpacExt" at 0
 *   DMG        "koly" at the last 512 bytes
 *   Bochs      "Bochs Virtual HD Image" at 0
 *   cloop      its shell-script header at 0
 *   LUKS       "LUKS\xba\xbe" at 0 (encrypted: never imported)
 *
 * A file matching none is raw. A raw file that looks like something other
 * than a disk (an archive, compressed data, a program, text) is still
 * imported as raw, with a warning, as qemu would import it.
 */
import fs from 'node:fs';

/** A format strata reads itself, or one read through qemu-nbd (QEMU's driver name). */
export type ForeignFormat = 'vpc' | 'vhdx' | 'vmdk' | 'vdi' | 'qed' | 'qcow' | 'parallels' | 'dmg' | 'bochs' | 'cloop';
export type DetectedFormat = 'raw' | 'qcow2' | 'luks' | ForeignFormat;

/** How each format is called in messages. */
export const FORMAT_LABEL: Record<DetectedFormat, string> = {
  raw: 'raw',
  qcow2: 'qcow2',
  luks: 'LUKS (encrypted)',
  vpc: 'VHD',
  vhdx: 'VHDX',
  vmdk: 'VMDK',
  vdi: 'VDI',
  qed: 'QED',
  qcow: 'qcow (version 1)',
  parallels: 'Parallels',
  dmg: 'DMG',
  bochs: 'Bochs',
  cloop: 'cloop',
};

export const FOREIGN_FORMATS: readonly ForeignFormat[] = ['vpc', 'vhdx', 'vmdk', 'vdi', 'qed', 'qcow', 'parallels', 'dmg', 'bochs', 'cloop'];

/** Enough of the file to recognise it: the head, the last sector, the size. */
export interface Probe {
  head: Buffer;
  /** The last 512 bytes (empty when the file is shorter, or a stream). */
  tail: Buffer;
  /** The file's size, or undefined for a stream. */
  size?: number;
}

const HEAD = 4096;

export function probeFile(fd: number, size: number): Probe {
  const head = Buffer.alloc(Math.min(HEAD, size));
  const n = head.length ? fs.readSync(fd, head, 0, head.length, 0) : 0;
  const tail = Buffer.alloc(size >= 1024 ? 512 : 0);
  if (tail.length) fs.readSync(fd, tail, 0, 512, size - 512);
  return { head: head.subarray(0, n), tail, size };
}

const at = (b: Buffer, off: number, magic: string | Buffer) => {
  const m = typeof magic === 'string' ? Buffer.from(magic, 'latin1') : magic;
  return b.length >= off + m.length && b.subarray(off, off + m.length).equals(m);
};

const CLOOP = '#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n';

export function detectFormat(p: Probe): DetectedFormat {
  const h = p.head;
  if (at(h, 0, 'QFI\xfb')) return h.length >= 8 && h.readUInt32BE(4) === 1 ? 'qcow' : 'qcow2';
  if (at(h, 0, 'conectix') || at(p.tail, 0, 'conectix')) return 'vpc';
  if (at(h, 0, 'vhdxfile')) return 'vhdx';
  if (at(h, 0, 'KDMV') || at(h, 0, 'COWD') || at(h, 0, '# Disk DescriptorFile')) return 'vmdk';
  if (h.length >= 0x44 && h.readUInt32LE(0x40) === 0xbeda107f) return 'vdi';
  if (at(h, 0, 'QED\0')) return 'qed';
  if (at(h, 0, 'WithoutFreeSpace') || at(h, 0, 'WithouFreSpacExt')) return 'parallels';
  if (at(h, 0, 'Bochs Virtual HD Image')) return 'bochs';
  if (at(h, 0, CLOOP)) return 'cloop';
  if (at(h, 0, Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]))) return 'luks';
  if (at(p.tail, 0, 'koly')) return 'dmg';
  return 'raw';
}

/** Contents that are common by mistake and are no disk image. */
const NOT_DISKS: [off: number, magic: string | Buffer, what: string][] = [
  [0, Buffer.from([0x1f, 0x8b]), 'gzip-compressed data (decompress it first)'],
  [0, Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), 'xz-compressed data (decompress it first)'],
  [0, Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), 'zstd-compressed data (decompress it first)'],
  [0, 'BZh', 'bzip2-compressed data (decompress it first)'],
  [0, 'PK\x03\x04', 'a zip archive'],
  [0, Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]), 'a 7z archive'],
  [257, 'ustar', 'a tar archive (an OVA holds its disks inside: extract them first)'],
  [0, '\x7fELF', 'an ELF program'],
];

/** Why a file to be imported as raw does not look like a disk image, or undefined if it may be one. */
export function notADisk(p: Probe): string | undefined {
  for (const [off, magic, what] of NOT_DISKS) if (at(p.head, off, magic)) return `looks like ${what}, not a disk image`;
  if (isText(p.head)) return 'looks like a text file, not a disk image';
  if (p.size !== undefined && p.size % 512 !== 0) return `is ${p.size} bytes, not a whole number of 512-byte sectors, so probably not a disk image`;
  return undefined;
}

/**
 * Text: valid UTF-8 (a character cut off at the end of the head allowed) with
 * no control characters but whitespace, perhaps padded with NULs. A disk's first sectors always hold
 * other bytes: zeros, a boot sector, a superblock, or 0xff on erased flash.
 */
function isText(head: Buffer): boolean {
  // Text padded with NULs to a sector (as VMDK descriptors are) is text still.
  let end = head.length;
  while (end > 0 && head[end - 1] === 0) end--;
  const h = head.subarray(0, end);
  if (h.length === 0) return false;
  if (!h.every((c) => c === 9 || c === 10 || c === 13 || (c >= 32 && c !== 127))) return false;
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  for (let cut = 0; cut < 4 && cut < h.length; cut++) {
    try {
      utf8.decode(h.subarray(0, h.length - cut));
      return true;
    } catch {
      /* maybe a character cut in two at the end */
    }
  }
  return false;
}
