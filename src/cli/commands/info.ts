import { Command } from 'commander';
import { chainOf, getImage } from '../../store/catalog.js';
import type { Store } from '../../store/store.js';
import { BLOCK_SIZE } from '../../store/types.js';
import { runCommand } from '../context.js';
import { humanBytes } from '../parse.js';
import { keyValues } from '../render.js';

export interface ImageInfo {
  name: string;
  kind: string;
  writable: boolean;
  parent: string | null;
  chain: string[];
  virtualSize: number;
  ownBytes: number;
  created: string;
  labels: Record<string, string>;
  source: Record<string, unknown> | null;
}

export function describeImage(store: Store, name: string): ImageInfo {
  const rec = getImage(store.db, name);
  const chain = chainOf(store.db, rec);
  return {
    name: rec.name,
    kind: rec.kind,
    writable: rec.kind === 'leaf',
    parent: chain[1]?.name ?? null,
    chain: chain.map((c) => c.name),
    virtualSize: rec.virtualSize,
    ownBytes: rec.ownBlocks * BLOCK_SIZE,
    created: new Date(rec.createdAt).toISOString(),
    labels: rec.labels,
    source: rec.source,
  };
}

export const infoCommand = () =>
  new Command('info')
    .description('show one image: kind, parent, chain, sizes, origin')
    .argument('<name>', 'image')
    .action(async (name: string, _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => describeImage(await ctx.store(), name),
        (r) =>
          keyValues([
            ['name', r.name],
            ['kind', r.kind + (r.writable ? ' (writable)' : ' (read-only)')],
            ['parent', r.parent ?? '-'],
            ['chain', r.chain.join(' -> ')],
            ['virtual size', `${humanBytes(r.virtualSize)} (${r.virtualSize} bytes)`],
            ['own bytes', `${humanBytes(r.ownBytes)} (${r.ownBytes} bytes)`],
            ['created', r.created],
            ...(r.source ? ([['source', JSON.stringify(r.source)]] as [string, string][]) : []),
          ]),
      ),
    );
