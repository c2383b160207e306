/**
 * The shape of a zstd fragment, read before fzstd decodes it (RFC 8878,
 * section 3.1.1). fzstd allocates what a frame header asks for and decodes
 * every frame it is given whole, so a 60 KiB fragment from a bucket could
 * ask for 1.9 GiB. libzstd writes a block as one frame that declares its
 * content size in a single segment (window = content), and nothing after
 * it: a fragment that is anything else is refused before decoding, and
 * the decoder's window is then the 4 KiB block itself.
 */

const MAGIC = 0xfd2fb528;
const MAX_BLOCK = 128 * 1024;

/** Why `frame` is not one zstd frame of exactly `size` bytes of content as libzstd writes it, or undefined. */
export function zstdFrameProblem(frame: Uint8Array, size: number): string | undefined {
  if (frame.length < 6) return 'too short for a zstd frame';
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (view.getUint32(0, true) !== MAGIC) return 'no zstd frame magic';
  const fhd = frame[4];
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const checksum = (fhd >> 2) & 1;
  if (fhd & 8) return 'a reserved frame header bit is set';
  if (fhd & 3) return 'a dictionary id (strata writes none)';
  if (!singleSegment) return 'no single-segment frame header (a window to allocate)';
  const fcsBytes = [1, 2, 4, 8][fcsFlag];
  let at = 5;
  if (frame.length < at + fcsBytes) return 'a truncated frame header';
  let content = 0;
  for (let i = fcsBytes - 1; i >= 0; i--) content = content * 256 + frame[at + i];
  if (fcsBytes === 2) content += 256;
  at += fcsBytes;
  if (content !== size) return `a declared content size of ${content} bytes`;
  // The blocks: raw and RLE ones add their size, compressed ones at most the window (= content size).
  for (let raw = 0; ; ) {
    if (frame.length < at + 3) return 'a truncated block header';
    const h = frame[at] | (frame[at + 1] << 8) | (frame[at + 2] << 16);
    at += 3;
    const last = h & 1;
    const type = (h >> 1) & 3;
    const blockSize = h >>> 3;
    if (type === 3) return 'a reserved block type';
    if (blockSize > Math.min(MAX_BLOCK, size)) return `a block of ${blockSize} bytes in a frame of ${size}`;
    if (type !== 2) raw += blockSize;
    if (raw > size) return `blocks of more than ${size} bytes`;
    at += type === 1 ? 1 : blockSize;
    if (frame.length < at) return 'a truncated block';
    if (last) break;
  }
  at += checksum ? 4 : 0;
  if (frame.length !== at) return frame.length < at ? 'a truncated checksum' : `${frame.length - at} bytes after the frame`;
  return undefined;
}
