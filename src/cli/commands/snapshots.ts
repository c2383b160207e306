import { Command } from 'commander';
import { listSnapshotRows, type ListedSnapshot } from '../../image/listing.js';
import { runCommand } from '../context.js';
import { BYTES_OPTION, localTime, sizeFormatter, table } from '../render.js';

function renderSnapshots(rows: readonly ListedSnapshot[], image: string | undefined, exact?: boolean): string {
  if (rows.length === 0) return image === undefined ? 'no snapshots (take one: strata snapshot IMAGE [NAME])\n' : `${image} has no snapshots (take one: strata snapshot ${image} [NAME])\n`;
  const size = sizeFormatter(exact);
  return table(
    rows.map((r) => ({
      name: r.name,
      taken: r.takenAt === null ? '-' : localTime(r.takenAt),
      ownBytes: size(r.ownBytes),
      virtualSize: size(r.virtualSize),
      dependents: r.dependents.length === 0 ? '-' : r.dependents.length <= 3 ? r.dependents.join(', ') : `${r.dependents.slice(0, 3).join(', ')} +${r.dependents.length - 3}`,
    })),
    [
      ['name', 'NAME'],
      ['taken', 'TAKEN'],
      ['ownBytes', 'OWN'],
      ['virtualSize', 'SIZE'],
      ['dependents', 'CLONES'],
    ],
  );
}

export const snapshotsCommand = () =>
  new Command('snapshots')
    .description('list snapshots flat, IMAGE@SNAP oldest first, with the clones that stand on each (as zfs list -t snapshot)')
    .argument('[image]', "only this image's snapshots")
    .option(...BYTES_OPTION)
    .action(async (image: string | undefined, o: { bytes?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => listSnapshotRows(await ctx.store(), image),
        (rows) => renderSnapshots(rows, image, o.bytes),
      ),
    );
