import { Command } from 'commander';
import { hasRemoteBlocks } from '../../store/upkeep/index.js';
import { StrataError, badInput } from '../../errors.js';
import { openOutput } from '../../formats/output.js';
import { writeRaw } from '../../formats/raw.js';
import { runCommand } from '../context.js';
import { parseBytes } from '../parse.js';
import { bytesText } from '../../units.js';
import { openForCopy, sourceText } from '../live.js';

const CHUNK = 4 * 1024 * 1024;

async function writeOut(buf: Buffer): Promise<void> {
  if (!process.stdout.write(buf)) await new Promise((r) => process.stdout.once('drain', r));
}

export const readCommand = () =>
  new Command('read')
    .description('write bytes of an image to stdout, or to a file')
    .argument('<name>', 'image')
    .argument('[file]', 'output file, or - for stdout (the default, except at a terminal)')
    .option('-o, --offset <offset>', 'first byte', '0')
    .option('-l, --length <length>', 'bytes to read (default: to the end)')
    .option('--shared', 'read a leaf another process is writing as it changes, without a point-in-time snapshot: writes made during the read may show in part')
    .action(async (name: string, given: string | undefined, o: { offset: string; length?: string; shared?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          // Raw disk bytes on a terminal garble it: as zstd does, only when asked for with `-`.
          if (given === undefined && process.stdout.isTTY) throw badInput(`stdout is a terminal: pipe strata read ${name} into xxd or a file, or name the output (strata read ${name} FILE; - for this terminal)`);
          const file = given ?? '-';
          // The bytes go to stdout as they are; JSON around them would be neither bytes nor JSON.
          if (ctx.json && file === '-') throw badInput('read writes raw bytes to stdout and has no --json output: pipe it to xxd or base64, or see map --json');
          const offset = parseBytes(o.offset, 'offset');
          const store = await ctx.store();
          // A leaf a server writes is read through a point-in-time snapshot the server takes (live.ts).
          const copy = await openForCopy(store, name, { shared: o.shared });
          const img = copy.img;
          const source = copy.source;
          /** Lets the remote caches shrink again, once the read is done; set when blocks were fetched. */
          let release: (() => Promise<void>) | undefined;
          try {
            if (offset > img.size) throw new StrataError('E_RANGE', `offset ${offset} is beyond the end of image ${name} (${bytesText(img.size)})`);
            const length = o.length === undefined ? img.size - offset : parseBytes(o.length, 'length');
            if (offset + length > img.size) {
              throw new StrataError('E_RANGE', `range ${offset}+${length} is beyond the end of image ${name} (${bytesText(img.size)})`);
            }
            // A lazy clone's blocks still in a bucket come first (a block that cannot be fetched: E_IO),
            // fetched and read through this one handle: its lease keeps them here until it is closed.
            // (Loaded only where a store has such blocks: the S3 client costs a start-up.)
            if (hasRemoteBlocks(store)) release = (await (await import('../../remote/store-side/lazy.js')).fetchForRead(store, img, offset, length)).done;
            if (file !== '-') {
              // A file gets the same care as an export: complete under its name, or not there.
              const out = openOutput(file);
              try {
                writeRaw(img, out, { offset, length });
                out.commit();
              } catch (e) {
                out.abort();
                throw e;
              }
              return { name, file, offset, length, source };
            }
            for (let done = 0; done < length; done += CHUNK) await writeOut(img.read(offset + done, Math.min(CHUNK, length - done)));
          } finally {
            copy.done(true);
            await release?.();
          }
          return undefined;
        },
        (r) => {
          if (!r) return undefined;
          const about = sourceText(r.source);
          return `read ${r.length} bytes of ${r.name} at offset ${r.offset} into ${r.file}${about ? `: ${about}` : ''}\n`;
        },
      ),
    );
