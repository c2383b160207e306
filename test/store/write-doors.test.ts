/**
 * Only a write transaction changes the index. Functions that write take a
 * WriteTx (the compiler refuses a Reader: the @ts-expect-error lines below
 * fail typecheck the day that stops holding); store code handed the Store
 * inside a caller's transaction (the allocator, leases) checks at run time
 * and refuses to write outside one, where each statement would have
 * committed on its own.
 */
import { describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/core/store.js';
import { insertImage } from '../../src/store/images/catalog.js';
import { allocateSlots } from '../../src/store/slots/allocator.js';
import { metaNumber } from '../../src/store/core/meta.js';
import { freeSlots } from '../../src/store/slots/freelist.js';
import type { ImageName } from '../../src/store/core/types.js';
import { StrataError } from '../../src/errors.js';
import { tmpDir } from '../helpers/tmp.js';

// Never called: typecheck is the test.
export function readersCannotWrite(store: Store): void {
  // @ts-expect-error a Reader is not a write door
  insertImage(store, { name: 'x' as ImageName, kind: 'leaf', parentId: null, virtualSize: 4096 });
  // @ts-expect-error a Reader is not a write door
  freeSlots(store, [1]);
  store.write((tx) => freeSlots(tx, [1]));
}

describe('write doors', () => {
  it('allocating slots outside a write transaction is refused and allocates nothing; inside one it allocates', async () => {
    const store = await openStore(tmpDir(), { durability: 'unsafe' });
    try {
      let err: unknown;
      try {
        allocateSlots(store, 4);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(StrataError);
      expect((err as StrataError).code).toBe('E_INTERNAL');
      expect((err as StrataError).message).toBe('a store write was attempted outside a write transaction');
      expect(metaNumber(store, 'next_slot')).toBe(0);
      expect(store.write(() => allocateSlots(store, 4))).toEqual([0, 1, 2, 3]);
      expect(metaNumber(store, 'next_slot')).toBe(4);
    } finally {
      store.close();
    }
  });
});
