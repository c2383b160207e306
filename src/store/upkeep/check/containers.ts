/**
 * Check pass: containers. A packed block lies in a live container; each
 * container's refcount equals the live fragments in it; the packed counts
 * in meta agree with the locations.
 */
import { OWN } from '../../blocks/location.js';
import { packedCounts } from '../../slots/slots.js';
import type { CheckContext } from './context.js';
import type { SlotsSeen } from './slots.js';

export function checkContainers(cx: CheckContext, seen: SlotsSeen): void {
  const { store, repair, fault, edit, toFree } = cx;
  const { packedAt, containers, fragmentsIn, packedSeen } = seen;
  // A packed block must lie in a live container; a container counts its live fragments.
  for (let k = 0; k < packedAt.length; k += 2) {
    if (!containers.has(packedAt[k + 1])) fault('corruption', 'bad-location', `slot ${packedAt[k]}: packed into slot ${packedAt[k + 1]}, which is not a container in use`);
  }
  for (const [c, rc] of containers) {
    const n = fragmentsIn.get(c) ?? 0;
    if (rc === n) continue;
    if (repair) {
      edit.set(c, n);
      if (n === 0) {
        edit.setLoc(c, OWN);
        toFree.push(c);
      }
    }
    if (rc > n) fault('leak', 'refcount-high', `container slot ${c}: refcount ${rc}, holds ${n} live fragments`, repair);
    else fault('corruption', 'refcount-low', `container slot ${c}: refcount ${rc}, holds ${n} live fragments`, repair);
  }
  const packedMeta = packedCounts(store);
  if (packedMeta.packedBlocks !== packedSeen.packedBlocks || packedMeta.packedBytes !== packedSeen.packedBytes || packedMeta.containers !== packedSeen.containers) {
    // Repair sets them after the edit's own commit, which moves them by what it changed.
    fault('leak', 'packed-counts', `the store counts ${packedMeta.packedBlocks} packed blocks (${packedMeta.packedBytes} bytes) in ${packedMeta.containers} containers; its locations say ${packedSeen.packedBlocks} (${packedSeen.packedBytes} bytes) in ${packedSeen.containers}`, repair);
  }
}
