import { Command } from 'commander';
import { storeStats, type StoreStats } from '../../image/usage.js';
import { storeDamage, type StoreDamage } from '../../store/core/index.js';
import { runCommand } from '../context.js';
import { BYTES_OPTION, keyValues, sizeFormatter } from '../render.js';

const pct = (r: number) => `${(100 * r).toFixed(1)}%`;

/** The store's figures, and its damage mark (null when it has none): a marked store refuses writes. */
export type StatsResult = StoreStats & { damage: StoreDamage | null };

/** The line info and stats show for a store marked damaged (store/core/damage.ts). */
export const damageText = (d: StoreDamage): string => `${d.message}${d.at ? ` (found ${d.at})` : ''}; writes are refused: run strata check --repair`;

export function renderStats(s: StatsResult, exact?: boolean): string {
  const size = sizeFormatter(exact);
  return keyValues([
    ...(s.damage ? [['DAMAGED', damageText(s.damage)] as [string, string]] : []),
    ['images', s.images],
    ['logical (raw copies)', size(s.logicalBytes)],
    ['referenced (sparse copies)', size(s.referencedBytes)],
    ['qcow2 chains (64K clusters)', size(s.qcow2Bytes)],
    ['own (layers, 4K blocks)', size(s.ownBytes)],
    ['distinct blocks', `${size(s.distinctBytes)} uncompressed`],
    ['stored on disk', `${size(s.storedBytes)}, ${pct(s.ratios.storedOfLogical)} of logical, ${pct(s.ratios.storedOfQcow2)} of qcow2`],
    ...(s.remoteBytes > 0 ? [['in remote packs, not here', size(s.remoteBytes)] as [string, string]] : []),
    ['data files (allocated)', `${size(s.dataFiles.allocatedBytes)}, ${size(s.dataFiles.apparentBytes)} apparent, ${s.dataFiles.files} file(s)`],
    ['metadata (strata.db + wal)', size(s.metadataBytes)],
    ['saved by zero blocks', size(s.savings.zeroBytes)],
    ['saved by layers and clones', size(s.savings.layeringBytes)],
    ['saved by dedup across images', `${size(s.savings.dedupBytes)}, ratio ${s.ratios.dedup.toFixed(2)}x`],
    [
      'saved by compression',
      s.compression.blocks === 0
        ? `none (setting: ${s.compression.setting})`
        : `${size(s.savings.compressionBytes)}: ${s.compression.blocks} block(s), ${size(s.compression.bytesBefore)} -> ${size(s.compression.bytesAfter)}, ratio ${s.ratios.compression.toFixed(2)}x (setting: ${s.compression.setting})`,
    ],
  ]);
}

export const statsCommand = () =>
  new Command('stats')
    .description('the whole store: logical vs stored bytes, what qcow2 chains would take, and the savings by cause')
    .option(...BYTES_OPTION)
    .action(async (o: { bytes?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx): Promise<StatsResult> => {
          const store = await ctx.store();
          return { ...storeStats(store), damage: storeDamage(store) ?? null };
        },
        (s) => renderStats(s, o.bytes),
      ),
    );
