import { Command } from 'commander';
import { badInput } from '../../errors.js';
import { pullImage } from '../../remote/store-side/pull.js';
import { openRemote } from '../../remote/remote.js';
import { runCommand } from '../context.js';
import { warnSkipped } from '../skipped.js';
import { longWork } from '../long-work.js';
import { humanBytes } from '../parse.js';
import { BLOCK_SIZE } from '../../store/core/index.js';

/** REMOTE/IMAGE or REMOTE/IMAGE@MANIFEST */
/**
 * REMOTE/IMAGE, REMOTE/IMAGE@MANIFEST, REMOTE/IMAGE@SNAP and
 * REMOTE/IMAGE@SNAP@MANIFEST. One '@' followed by 4-64 hex digits is a
 * manifest, as it was before snapshots had '@' names: a snapshot named so
 * (`vm@2026`) is pulled as REMOTE/vm@2026@MANIFEST.
 */
export function parseRef(ref: string): { remote: string; image: string; manifest?: string } {
  const m = /^([^/]+)\/([^/@]+)(?:@([^/@]+))?(?:@([0-9a-f]{4,64}))?$/.exec(ref);
  if (!m) throw badInput(`${JSON.stringify(ref)} is not REMOTE/IMAGE (or REMOTE/IMAGE@MANIFEST-ID)`, { ref });
  const [, remote, image, second, third] = m;
  if (second === undefined) return { remote, image };
  if (third === undefined && MANIFEST_ID.test(second)) return { remote, image, manifest: second };
  return { remote, image: `${image}@${second}`, manifest: third };
}

const MANIFEST_ID = /^[0-9a-f]{4,64}$/;

export const pullCommand = () =>
  new Command('pull')
    .description('fetch an image and its chain from a remote: only blocks this store lacks, each checked against its digest')
    .argument('<ref>', 'REMOTE/IMAGE, or REMOTE/IMAGE@MANIFEST for an older push')
    .action(async (ref: string, _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const { remote: remoteName, image, manifest } = parseRef(ref);
          const store = await ctx.store();
          const remote = openRemote(ctx.storeDir, remoteName);
          try {
            const kept = () => `pull stopped; layers pulled whole are kept, the one under way was dropped`;
            const pulled = await longWork(ctx, `pulling ${ref}`, kept, (onProgress) => pullImage(store, remote, image, { manifest, onProgress }));
            return { ...pulled, skipped: remote.skipped };
          } finally {
            warnSkipped(remote);
            remote.close();
          }
        },
        (r) =>
          `pulled ${r.image} from ${r.remote} (manifest ${r.manifest.slice(0, 12)}): ` +
          `stored ${r.fetchedBlocks} new block(s) (${humanBytes(r.fetchedBlocks * BLOCK_SIZE)}), fetched as ${humanBytes(r.fetchedBytes)} in ${r.gets} request(s); ` +
          `${r.localBlocks} already here; ${r.layers.filter((l) => !l.reused).length} of ${r.layers.length} layer(s) new\n`,
      ),
    );
