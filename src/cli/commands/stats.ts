import { Command } from 'commander';
import { storeStats, type StoreStats } from '../../image/usage.js';
import { runCommand } from '../context.js';
import { humanBytes } from '../parse.js';
import { keyValues } from '../render.js';

const both = (n: number) => `${humanBytes(n)} (${n} bytes)`;
const pct = (r: number) => `${(100 * r).toFixed(1)}%`;

export function renderStats(s: StoreStats): string {
  return keyValues([
    ['images', s.images],
    ['logical (raw copies)', both(s.logicalBytes)],
    ['referenced (sparse copies)', both(s.referencedBytes)],
    ['qcow2 chains (64K clusters)', both(s.qcow2Bytes)],
    ['own (layers, 4K blocks)', both(s.ownBytes)],
    ['stored (slots in use)', `${both(s.storedBytes)}, ${pct(s.ratios.storedOfLogical)} of logical, ${pct(s.ratios.storedOfQcow2)} of qcow2`],
    ['data files on disk', `${both(s.dataFiles.allocatedBytes)} allocated, ${humanBytes(s.dataFiles.apparentBytes)} apparent, ${s.dataFiles.files} file(s)`],
    ['metadata (strata.db + wal)', both(s.metadataBytes)],
    ['saved by zero blocks', both(s.savings.zeroBytes)],
    ['saved by layers and clones', both(s.savings.layeringBytes)],
    ['saved by dedup across images', `${both(s.savings.dedupBytes)}, ratio ${s.ratios.dedup.toFixed(2)}x`],
  ]);
}

export const statsCommand = () =>
  new Command('stats')
    .description('the whole store: logical vs stored bytes, what qcow2 chains would take, and the savings by cause')
    .action(async (_o, cmd: Command) => runCommand(cmd, async (ctx) => storeStats(await ctx.store()), renderStats));
