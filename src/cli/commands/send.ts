import { Command } from 'commander';
import { sendImage, type SendResult } from '../../formats/send.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes } from '../parse.js';

const summary = (r: SendResult) =>
  `sent ${r.name}${r.base ? ` as the changes since ${r.base}` : ''}: ${humanBytes(r.streamBytes)} of stream, ${r.dataBlocks} data block(s) (${humanBytes(r.payloadBytes)} compressed), ${r.zeroBlocks} zero block(s)\n`;

export const sendCommand = () =>
  new Command('send')
    .description('write a frozen image as a send stream for strata receive: whole, or with -i only the blocks that differ from an earlier snapshot (decided from the maps)')
    .argument('<snap>', 'frozen image to send (snapshot it first if it is a leaf)')
    .option('-i, --incremental <from>', 'send only what differs from this frozen image, which the receiver must hold with the same content')
    .option('-o, --output <file>', 'write the stream to this file instead of stdout')
    .action(async (snap: string, o: { incremental?: string; output?: string }, cmd: Command) => {
      const to = o.output ?? '-';
      await runCommand<SendResult | undefined>(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          const kept = () => (to === '-' ? 'send stopped part-way: stdout got an incomplete stream, which receive refuses' : `nothing sent; ${to} was not written`);
          const r = await longWork(ctx, `sending ${snap}`, kept, (onProgress) => sendImage(store, snap, to, { from: o.incremental, onProgress }));
          // The stream itself went to stdout: the summary goes to stderr, where it cannot corrupt it.
          if (to === '-') {
            process.stderr.write(ctx.json ? JSON.stringify(r, null, 2) + '\n' : summary(r));
            return undefined;
          }
          return r;
        },
        (r) => (r ? summary(r) : undefined),
      );
    });
