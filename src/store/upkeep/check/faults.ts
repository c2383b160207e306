/**
 * What check finds: a fault, of one of two classes, and the sink every pass
 * reports into, which names at most MAX_FAULTS_PER_KIND of a kind.
 */
export type FaultClass = 'corruption' | 'leak';

export interface Fault {
  class: FaultClass;
  /** Short stable name of the kind of fault. */
  kind:
    | 'bad-hash'
    | 'unreadable-slot'
    | 'refcount-high'
    | 'refcount-low'
    | 'used-slots'
    | 'map-points-at-free-slot'
    | 'map-points-past-end'
    | 'lost-slot'
    | 'list-past-end'
    | 'orphan-map'
    | 'missing-parent'
    | 'chain-loop'
    | 'own-blocks'
    | 'bad-location'
    | 'packed-counts';
  message: string;
  repaired: boolean;
  /** The slot a data fault is about. */
  slot?: number;
}

/** Faults named per slot past this many are summarised, so a wrecked store still yields a readable report. */
export const MAX_FAULTS_PER_KIND = 1000;

/** Reports a fault; `slot` names the slot a data fault is about. */
export type FaultSink = (cls: FaultClass, kind: Fault['kind'], message: string, repaired?: boolean, slot?: number) => void;

/** A sink that appends to `faults`, in the order the passes report. */
export function faultSink(faults: Fault[]): FaultSink {
  const perKind = new Map<string, number>();
  return (cls, kind, message, repaired = false, slot) => {
    const n = (perKind.get(kind) ?? 0) + 1;
    perKind.set(kind, n);
    if (n <= MAX_FAULTS_PER_KIND) faults.push(slot === undefined ? { class: cls, kind, message, repaired } : { class: cls, kind, message, repaired, slot });
    else if (n === MAX_FAULTS_PER_KIND + 1) faults.push({ class: cls, kind, message: `further faults of kind ${kind} not listed`, repaired });
  };
}

/** A referenced slot on the free list is named by the map pass; taking it back is what repairs it. */
export function markFreeHitsRepaired(faults: Fault[], slot: number, repaired: boolean): void {
  const tail = ` points at free slot ${slot}`;
  for (const f of faults) if (f.kind === 'map-points-at-free-slot' && f.message.endsWith(tail)) f.repaired = repaired;
}
