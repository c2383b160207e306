/**
 * Byte counts for people. Lives below every layer so that an image's error
 * message and the CLI's tables print sizes the same way.
 */

const HUMAN = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** 4096 → "4 KiB", 1572864 → "1.50 MiB", 180236288 → "171.9 MiB": binary units, three significant figures. */
export function humanBytes(n: number): string {
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < HUMAN.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0 || Number.isInteger(v)) return `${v} ${HUMAN[i]}`;
  return `${v.toFixed(Math.abs(v) < 10 ? 2 : 1)} ${HUMAN[i]}`;
}

/** For messages: "1 MiB, 1048576 bytes"; below 1 KiB only "512 bytes". */
export function bytesText(n: number): string {
  return Math.abs(n) < 1024 ? `${n} bytes` : `${humanBytes(n)}, ${n} bytes`;
}
