/**
 * `strata import - NAME` from a pipe: raw bytes of a length known only at
 * the end. The image is built as if as large as allowed and cut to the bytes
 * received when the stream ends (all-zero blocks store nothing, so the
 * result is as sparse as from a file). qcow2 and the formats read through
 * qemu-nbd need random access: recognised by their magic and refused, as is
 * a fixed VHD, whose footer shows only at the end.
 */
import { StrataError, badInput } from '../errors.js';
import type { ImageRecord, Store } from '../store/core/index.js';
import { beginImport, type ImportOptions } from './import.js';
import { FORMAT_LABEL, detectFormat, notADisk, type DetectedFormat } from './magic.js';

const HEAD = 4096;

function refuseStream(format: DetectedFormat): StrataError {
  return new StrataError(
    'E_UNSUPPORTED',
    `stdin holds a ${FORMAT_LABEL[format]} image, which cannot be read from a pipe: save it to a file and import that file`,
    { format },
  );
}

export async function importStream(
  store: Store,
  input: AsyncIterable<Buffer>,
  name: string,
  opts: ImportOptions & { format?: string; warn?: (m: string) => void },
): Promise<ImageRecord> {
  if (opts.format !== undefined && opts.format !== 'raw') throw badInput(`--format ${opts.format} needs a file: only raw images can be read from a pipe`);
  const it = input[Symbol.asyncIterator]();
  // Enough of the head to recognise a format, before anything is stored.
  const first: Buffer[] = [];
  let got = 0;
  let ended = false;
  while (got < HEAD) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    first.push(r.value);
    got += r.value.length;
  }
  const head = Buffer.concat(first);
  const format = detectFormat({ head, tail: Buffer.alloc(0) });
  if (format !== 'raw') {
    if (opts.format !== 'raw') throw refuseStream(format);
    opts.warn?.(`stdin looks like a ${FORMAT_LABEL[format]} image, but --format raw imports its bytes as they are`);
  }
  // What the head shows is said now; a length that is no whole number of sectors, at the end.
  let warned = false;
  const warnRaw = (size?: number) => {
    const why = format === 'raw' && !warned ? notADisk({ head, tail: Buffer.alloc(0), size }) : undefined;
    if (why) opts.warn?.(`stdin ${why}; importing it as raw all the same`);
    warned ||= why !== undefined;
  };
  warnRaw();

  const target = beginImport(store, name, 'unknown', { ...opts, source: { format: 'raw', file: '-' } });
  let pos = 0;
  let last = Buffer.alloc(0);
  try {
    const put = (b: Buffer) => {
      target.img.write(pos, b);
      pos += b.length;
      // The length is known only at the end: progress counts bytes so far (and lets Ctrl-C stop the import).
      opts.onProgress?.(pos, pos);
      last = Buffer.concat([last, b.subarray(Math.max(0, b.length - 512))]).subarray(-512);
    };
    put(head);
    while (!ended) {
      const r = await it.next();
      if (r.done) break;
      put(r.value);
    }
    const tail = detectFormat({ head: Buffer.alloc(0), tail: last.length === 512 ? last : Buffer.alloc(0) });
    if (tail !== 'raw' && opts.format !== 'raw') throw refuseStream(tail);
    warnRaw(pos);
  } catch (e) {
    target.abandon();
    throw e;
  }
  return target.finish(pos);
}
