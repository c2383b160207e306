import { Command } from 'commander';
import { checkStore, type CheckReport } from '../../store/check.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes } from '../parse.js';
import { BLOCK_SIZE } from '../../store/types.js';

export function renderCheck(r: CheckReport): string {
  const lines = r.faults.flatMap((f) => [`${f.class === 'leak' ? 'Leaked' : 'ERROR'}: ${f.message}${f.repaired ? ' (repaired)' : ''}`, ...readsOf(r, f.slot)]);
  if (r.damagedReadsNotListed > 0) lines.push(`  ... and ${r.damagedReadsNotListed} further read(s) of damaged slots`);
  lines.push(
    `${r.images} image(s), ${r.slotsVerified} distinct block(s) verified (${humanBytes(r.verifiedBytes)} uncompressed) in ${r.elapsedMs} ms`,
    r.faults.length === 0
      ? 'No errors were found on the store.'
      : `${r.corruptions} corruption(s), ${r.leaks} leak(s)${r.repaired ? `, ${r.repaired} repaired` : ''}; store is ${r.status === 'clean' ? 'now clean' : r.status === 'leaks' ? 'leaking space (run check --repair)' : 'CORRUPT'}`,
  );
  return lines.join('\n') + '\n';
}

/** Under a damaged slot's fault, each image and byte offset that reads it: what a user restores or rewrites. */
function readsOf(r: CheckReport, slot: number | undefined): string[] {
  if (slot === undefined) return [];
  return r.damagedReads
    .filter((d) => d.slot === slot)
    .map((d) => `  read by image ${d.image} at byte offset ${d.offset}${d.length > BLOCK_SIZE ? ` (${d.length} bytes)` : ''}`);
}

export const checkCommand = () =>
  new Command('check')
    .description('verify the store: every slot in use against its hash, refcounts, free list, maps and chains (exit 0 clean, 2 corruption, 3 leaks only)')
    .option('--repair', 'fix leaks and refcounts (never drops data)')
    .action(async (o: { repair?: boolean }, cmd: Command) => {
      let status = 0;
      await runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          const kept = (done: number, total: number) =>
            o.repair ? 'check --repair rolled back; nothing was repaired' : `check stopped after verifying ${humanBytes(done)} of ${humanBytes(total)}; nothing was changed`;
          const r = longWork(ctx, o.repair ? 'checking and repairing' : 'checking', kept, (onProgress) => checkStore(store, { repair: o.repair, onProgress }));
          status = r.exitStatus;
          return r;
        },
        renderCheck,
      );
      // The status is the result itself, not an error: the report is printed in full either way.
      process.exitCode = status;
    });
