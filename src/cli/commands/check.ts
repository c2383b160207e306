import { Command } from 'commander';
import { checkStore, type CheckReport, hasRemoteBlocks } from '../../store/upkeep/index.js';
import type { Store } from '../../store/core/index.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes } from '../parse.js';
import { BLOCK_SIZE } from '../../store/core/index.js';

export function renderCheck(r: CheckReport): string {
  const lines = r.faults.flatMap((f) => [`${f.class === 'leak' ? 'Leaked' : 'ERROR'}: ${f.message}${f.repaired ? ' (repaired)' : ''}`, ...readsOf(r, f.slot)]);
  if (r.damagedReadsNotListed > 0) lines.push(`  ... and ${r.damagedReadsNotListed} further read(s) of damaged slots`);
  if (r.damage) lines.push(damageLine(r.damage));
  lines.push(
    `${r.images} image(s), ${r.slotsVerified} distinct block(s) verified (${humanBytes(r.verifiedBytes)} uncompressed) in ${r.elapsedMs} ms`,
    r.faults.length === 0
      ? `No errors were found on the store${r.damage && !r.damage.cleared ? ', but it stays marked damaged: run strata check --repair' : ''}.`
      : `${r.corruptions} corruption(s), ${r.leaks} leak(s)${r.repaired ? `, ${r.repaired} repaired` : ''}; store is ${r.status === 'clean' ? 'now clean' : r.status === 'leaks' ? 'leaking space (run check --repair)' : 'CORRUPT'}`,
  );
  return lines.join('\n') + '\n';
}

/** The store's damage mark (store/core/damage.ts): what it refuses, or that this repair cleared it. */
function damageLine(d: NonNullable<CheckReport['damage']>): string {
  const what = `the store is marked damaged${d.at ? ` since ${d.at}` : ''}: ${d.message}`;
  return d.cleared ? `Repaired: ${what}; the mark is cleared and writes are allowed again` : `ERROR: ${what}; writes are refused until check --repair finds it sound`;
}

/** Under a damaged slot's fault, each image and byte offset that reads it: what a user restores or rewrites. */
function readsOf(r: CheckReport, slot: number | undefined): string[] {
  if (slot === undefined) return [];
  return r.damagedReads
    .filter((d) => d.slot === slot)
    .map((d) => `  read by image ${d.image} at byte offset ${d.offset}${d.length > BLOCK_SIZE ? ` (${d.length} bytes)` : ''}`);
}

/**
 * Blocks held only in a remote's bucket (lazy clones): counted per remote,
 * not an error; with --remote, each bucket is asked whether it still holds
 * them, and those it does not are errors naming the images they leave
 * unreadable. Apart from the store's own report.
 */
interface RemoteSection {
  remoteOnly: { remote: string; blocks: number; bytes: number; images: string[] }[];
  /** With --remote: what each bucket still holds. */
  confirmed?: { remote: string; confirmedBlocks: number; missingBlocks: number; missingBytes: number; images: string[]; problem?: string }[];
}

async function remoteSection(store: Store, confirm: boolean): Promise<RemoteSection> {
  if (!hasRemoteBlocks(store) && !confirm) return { remoteOnly: [] };
  const [{ heldRemotely, confirmHeld }, { openRemote }, { syncDependents }, { listRemotes }] = await Promise.all([
    import('../../remote/store-side/held-remotely.js'),
    import('../../remote/remote.js'),
    import('../../remote/upkeep/dependents.js'),
    import('../../remote/config.js'),
  ]);
  const remoteOnly = heldRemotely(store);
  if (!confirm) return { remoteOnly };
  const confirmed: NonNullable<RemoteSection['confirmed']> = [];
  const configured = new Set(listRemotes(store.dir).map((c) => c.name));
  for (const h of remoteOnly) {
    if (!configured.has(h.remote)) confirmed.push({ remote: h.remote, confirmedBlocks: 0, missingBlocks: h.blocks, missingBytes: h.bytes, images: h.images, problem: `remote ${h.remote} is not configured in this store: it cannot fetch` });
  }
  for (const name of configured) {
    const r = openRemote(store.dir, name);
    try {
      // Asking the bucket anyway: bring its record of this store's clones up to date (one a killed rm left).
      await syncDependents(store, r);
      if (remoteOnly.some((h) => h.remote === name)) confirmed.push(await confirmHeld(store, r));
    } finally {
      r.close();
    }
  }
  return { remoteOnly, confirmed };
}

const names = (l: readonly string[]) => (l.length > 5 ? `${l.slice(0, 5).join(', ')} and ${l.length - 5} more` : l.join(', '));

function renderRemoteSection(r: RemoteSection): string {
  const lines = r.remoteOnly.map((h) => `held only in remote ${h.remote}: ${h.blocks} block(s) (${humanBytes(h.bytes)}) of ${names(h.images)}${r.confirmed ? '' : ' (check --remote asks the bucket)'}`);
  for (const c of r.confirmed ?? []) {
    lines.push(
      c.missingBlocks > 0
        ? `ERROR: ${c.problem ?? `remote ${c.remote} no longer holds`} ${c.missingBlocks} block(s) (${humanBytes(c.missingBytes)}) that ${names(c.images)} need: reading them fails`
        : `remote ${c.remote} holds all ${c.confirmedBlocks} of them`,
    );
  }
  return lines.map((l) => l + '\n').join('');
}

export const checkCommand = () =>
  new Command('check')
    .description('verify the store: every slot in use against its hash, refcounts, free list, maps and chains (exit 0 clean, 2 corruption, 3 leaks only)')
    .option('--repair', 'fix leaks and refcounts (never drops data)')
    .option('--remote', "ask each remote's bucket whether it still holds the blocks lazy clones have only there (missing ones are errors)")
    .action(async (o: { repair?: boolean; remote?: boolean }, cmd: Command) => {
      let status = 0;
      await runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          const kept = (done: number, total: number) =>
            o.repair ? 'check --repair rolled back; nothing was repaired' : `check stopped after verifying ${humanBytes(done)} of ${humanBytes(total)}; nothing was changed`;
          const r = longWork(ctx, o.repair ? 'checking and repairing' : 'checking', kept, (onProgress) => checkStore(store, { repair: o.repair, onProgress }));
          const remote = await remoteSection(store, o.remote === true);
          const missing = (remote.confirmed ?? []).some((c) => c.missingBlocks > 0);
          status = missing ? 2 : r.exitStatus;
          // Only where there is something to say: a store without lazy clones prints what it always did.
          const shown = remote.remoteOnly.length > 0 || remote.confirmed !== undefined;
          return { ...r, ...(missing ? { status: 'corrupt' as const, exitStatus: 2 as const } : {}), ...(shown ? { remote } : {}) };
        },
        (r) => renderCheck(r) + (r.remote ? renderRemoteSection(r.remote) : ''),
      );
      // The status is the result itself, not an error: the report is printed in full either way.
      process.exitCode = status;
    });
