import fs from 'node:fs';
import { Command } from 'commander';
import { badInput } from '../../errors.js';
import { receiveStream, type ReceiveResult } from '../../formats/receive.js';
import { openFileForRead } from '../../formats/raw.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes } from '../parse.js';

/** Where the stream comes from: a file, else stdin, which must not be a terminal. */
function streamInput(file: string | undefined): AsyncIterable<Buffer> {
  if (file !== undefined && file !== '-') return fs.createReadStream('', { fd: openFileForRead(file), highWaterMark: 1024 * 1024 });
  if (process.stdin.isTTY) throw badInput('stdin is a terminal: pipe a stream into it (strata send SNAP | strata receive NAME) or give -i FILE');
  return process.stdin as AsyncIterable<Buffer>;
}

export const receiveCommand = () =>
  new Command('receive')
    .description('make a new frozen image from a send stream (stdin, or -i FILE); it appears only once the whole stream has checked, and an incremental stream applies only over an identical copy of its base')
    .argument('<name>', 'name of the new image')
    .option('-i, --input <file>', 'read the stream from this file instead of stdin')
    .option('--base <image>', 'for an incremental stream: the image here that it applies to (default: found by its content digest, else by the base name in the stream)')
    .action(async (name: string, o: { input?: string; base?: string }, cmd: Command) =>
      runCommand<ReceiveResult>(
        cmd,
        async (ctx) => {
          const input = streamInput(o.input);
          const store = await ctx.store({ sqliteCacheBytes: 64 * 1024 * 1024 });
          return longWork(ctx, `receiving ${name}`, () => `nothing received; no image ${name} was made`, (onProgress) => receiveStream(store, input, name, { base: o.base, onProgress }));
        },
        (r) => `received ${r.name}${r.base ? ` over ${r.base}` : ''}: ${humanBytes(r.virtualSize)} virtual, ${r.dataBlocks} data block(s), ${r.zeroBlocks} zero block(s), ${humanBytes(r.streamBytes)} of stream\n`,
      ),
    );
