import { Command } from 'commander';
import { parseCompression } from '../../store/blocks/index.js';
import { pushImage, type PushResult } from '../../remote/store-side/push.js';
import { BLOCK_SIZE } from '../../store/core/index.js';
import { openRemote } from '../../remote/remote.js';
import { runCommand } from '../context.js';
import { warnSkipped } from '../skipped.js';
import { longWork } from '../long-work.js';
import { humanBytes, parseBytes } from '../parse.js';

/** What went up and what the bucket had, as restic says it ("Added to the repository: ..."). */
export function renderPushed(r: PushResult): string {
  const head = r.manifestExisted
    ? `${r.image} is unchanged in ${r.remote}: manifest ${r.manifest.slice(0, 12)} already exists, kept`
    : `pushed ${r.image} to ${r.remote} (manifest ${r.manifest.slice(0, 12)})`;
  const up = `uploaded ${r.newBlocks} block(s) (${humanBytes(r.newBlocks * BLOCK_SIZE)}, ${humanBytes(r.uploadedBytes)} compressed) in ${r.packs} pack(s)`;
  const there = `${r.inBucketBlocks} already in the bucket${r.repeatedBlocks > 0 ? `, ${r.repeatedBlocks} repeated in the image` : ''}`;
  return `${head}: ${up}; ${there}; ${r.layers.filter((l) => l.uploaded).length} of ${r.layers.length} layer(s) uploaded\n`;
}

export const pushCommand = () =>
  new Command('push')
    .description('upload a frozen image and its chain to a remote: only blocks the bucket lacks, compressed, in packs')
    .argument('<image>', 'frozen image (base or layer)')
    .argument('<remote>', 'remote (strata remote add)')
    .option('--compress <codec>', 'codec of uploaded blocks: zstd, zstd-LEVEL, lz4, lz4hc[-LEVEL] or none', 'zstd')
    .option('--pack-size <size>', 'pack objects of about this size', '16M')
    .action(async (image: string, remoteName: string, o: { compress: string; packSize: string }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          const compress = parseCompression(o.compress);
          const packBytes = parseBytes(o.packSize, 'pack size');
          const remote = openRemote(ctx.storeDir, remoteName);
          try {
            // What a stopped push leaves: complete packs (and perhaps an index) no manifest names yet.
            const kept = () => `push stopped; ${remoteName} does not list ${image} yet (blocks whose index was written are reused by the next push; the rest is waste for remote gc)`;
            const pushed = await longWork(ctx, `pushing ${image}`, kept, (onProgress) => pushImage(store, remote, image, { compress, packBytes, onProgress }));
            return { ...pushed, skipped: remote.skipped };
          } finally {
            warnSkipped(remote);
            remote.close();
          }
        },
        (r) => renderPushed(r),
      ),
    );
