import fs from 'node:fs';
import { Command } from 'commander';
import { openImage } from '../../image/image.js';
import { StrataError, badInput } from '../../errors.js';
import { runCommand } from '../context.js';
import { parseBytes } from '../parse.js';
import { bytesText } from '../../units.js';

function fileSizeOf(file: string): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new StrataError('E_NOT_FOUND', `no such file: ${file}`);
    throw new StrataError('E_IO', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code}`);
  }
  if (st.isDirectory()) throw badInput(`${file} is a directory: give a file to write, or - for stdin`);
  return st.size;
}

export const writeCommand = () =>
  new Command('write')
    .description('write a file (or stdin) into a writable image at an offset, then flush')
    .argument('<name>', 'writable image')
    .argument('[file]', 'input file, or - for stdin (the default, except at a terminal)')
    .option('-o, --offset <offset>', 'first byte', '0')
    .action(async (name: string, given: string | undefined, o: { offset: string }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          // Waiting for keystrokes nobody knows to type looks like a hang: as strata import - does, refuse.
          if (given === undefined && process.stdin.isTTY) throw badInput(`stdin is a terminal: pipe or redirect data into strata write ${name}, or name the input (strata write ${name} FILE; - to type it here, ending with Ctrl-D)`);
          const file = given ?? '-';
          const offset = parseBytes(o.offset, 'offset');
          const img = openImage(await ctx.store(), name, { writable: true });
          let pos = offset;
          let ok = false;
          try {
            if (offset > img.size) throw new StrataError('E_RANGE', `offset ${offset} is beyond the end of image ${name} (${bytesText(img.size)})`);
            // A file's size is known: refuse before writing anything rather than part-way.
            const fileSize = file === '-' ? undefined : fileSizeOf(file);
            if (fileSize !== undefined && offset + fileSize > img.size) {
              throw new StrataError('E_RANGE', `${file} (${bytesText(fileSize)}) runs past the end of image ${name} (${bytesText(img.size)}) at offset ${offset}`);
            }
            const input = file === '-' ? process.stdin : fs.createReadStream(file, { highWaterMark: 1 << 20 });
            for await (const chunk of input as AsyncIterable<Buffer>) {
              if (pos + chunk.length > img.size) {
                // Unflushed writes are dropped below. From stdin, more than the dirty limit
                // (64 MiB) before this point has already been flushed and stays written.
                throw new StrataError('E_RANGE', `input runs past the end of image ${name} (${bytesText(img.size)}) at offset ${pos + chunk.length}`);
              }
              img.write(pos, chunk);
              pos += chunk.length;
            }
            img.flush();
            ok = true;
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code;
            if (code === 'ENOENT') throw new StrataError('E_NOT_FOUND', `no such file: ${file}`);
            throw e;
          } finally {
            img.close({ discard: !ok });
          }
          return { name, offset, length: pos - offset };
        },
        (r) => `wrote ${r.length} bytes to ${r.name} at offset ${r.offset}\n`,
      ),
    );
