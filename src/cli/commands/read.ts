import { Command } from 'commander';
import { openImage } from '../../image/image.js';
import { StrataError, badInput } from '../../errors.js';
import { runCommand } from '../context.js';
import { parseBytes } from '../parse.js';
import { bytesText } from '../../units.js';

const CHUNK = 4 * 1024 * 1024;

async function writeOut(buf: Buffer): Promise<void> {
  if (!process.stdout.write(buf)) await new Promise((r) => process.stdout.once('drain', r));
}

export const readCommand = () =>
  new Command('read')
    .description('write bytes of an image to stdout')
    .argument('<name>', 'image')
    .option('-o, --offset <offset>', 'first byte', '0')
    .option('-l, --length <length>', 'bytes to read (default: to the end)')
    .action(async (name: string, o: { offset: string; length?: string }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          // The bytes go to stdout as they are; JSON around them would be neither bytes nor JSON.
          if (ctx.json) throw badInput('read writes raw bytes to stdout and has no --json output: pipe it to xxd or base64, or see map --json');
          const offset = parseBytes(o.offset, 'offset');
          const img = openImage(await ctx.store(), name);
          try {
            if (offset > img.size) throw new StrataError('E_RANGE', `offset ${offset} is beyond the end of image ${name} (${bytesText(img.size)})`);
            const length = o.length === undefined ? img.size - offset : parseBytes(o.length, 'length');
            if (offset + length > img.size) {
              throw new StrataError('E_RANGE', `range ${offset}+${length} is beyond the end of image ${name} (${bytesText(img.size)})`);
            }
            for (let done = 0; done < length; done += CHUNK) await writeOut(img.read(offset + done, Math.min(CHUNK, length - done)));
          } finally {
            img.close();
          }
        },
        () => undefined,
      ),
    );
