/**
 * Sizes for people: one formatter shared by the CLI's tables and the
 * library's error messages, which show human units beside exact bytes.
 */
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, StrataError } from '../src/errors.js';
import { openImage } from '../src/image/image.js';
import { createImage } from '../src/image/lifecycle.js';
import { openStore } from '../src/store/core/store.js';
import { bytesText, humanBytes } from '../src/units.js';
import { strata, strataOk } from './helpers/cli.js';
import { tmpDir } from './helpers/tmp.js';

describe('sizes for people', () => {
  it('humanBytes: binary units, whole values without decimals, three figures otherwise', () => {
    expect(humanBytes(0)).toBe('0 B');
    expect(humanBytes(1023)).toBe('1023 B');
    expect(humanBytes(4096)).toBe('4 KiB');
    expect(humanBytes(1048576)).toBe('1 MiB');
    expect(humanBytes(1536 * 1024)).toBe('1.50 MiB');
    expect(humanBytes(180236288)).toBe('171.9 MiB');
    expect(humanBytes(2 ** 40)).toBe('1 TiB');
  });

  it('bytesText: human units beside the exact count, and only bytes below 1 KiB', () => {
    expect(bytesText(512)).toBe('512 bytes');
    expect(bytesText(1048576)).toBe('1 MiB, 1048576 bytes');
    expect(bytesText(1048577)).toBe('1.00 MiB, 1048577 bytes');
  });

  it('an image read past its end: E_RANGE with the size in human units and bytes', async () => {
    const store = await openStore(tmpDir(), { durability: 'unsafe' });
    try {
      createImage(store, 'a', 1048576);
      const img = openImage(store, 'a');
      try {
        let err: unknown;
        try {
          img.read(1048576, 4096);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(StrataError);
        expect((err as StrataError).code).toBe('E_RANGE');
        expect((err as StrataError).message).toBe('range 1048576+4096 is beyond the end of image a (1 MiB, 1048576 bytes)');
      } finally {
        img.close();
      }
    } finally {
      store.close();
    }
  });

  it('resize smaller without --shrink: both sizes in human units and bytes', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'a', '--size', '1M']);
    const r = strata(store, ['resize', 'a', '512K']);
    expect(r.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(r.stderr).toBe('strata: 512 KiB (524288 bytes) is smaller than a (1 MiB, 1048576 bytes); pass --shrink to drop the data past the new end\n');
  });
});
