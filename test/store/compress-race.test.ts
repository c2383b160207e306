/**
 * compress chooses its candidates once and moves them batch by batch, each
 * batch checking again under its own lock what is still there to move. A
 * candidate slot can meanwhile be freed, cut off by gc and reborn as a
 * container of another import's fragments: a container is not a block, and
 * the batch must leave it alone rather than read it as one (which failed the
 * whole compress with E_CORRUPT).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { strataAsync, strataOk } from '../helpers/cli.js';
import { faultChannel } from '../helpers/fault.js';
import { tmpDir } from '../helpers/tmp.js';

const BLOCK = 4096;
/** compress's batch (relocate.ts BATCH) and a little more: two batches. */
const A_BLOCKS = 4096 + 64;

/** `n` distinct blocks that compress to a few dozen bytes each. */
function textBlocks(tag: string, n: number): Buffer {
  const out = Buffer.alloc(n * BLOCK);
  for (let i = 0; i < n; i++) out.write(`${tag}${String(i).padStart(6, '0')} `.repeat(BLOCK / 8), i * BLOCK, BLOCK, 'latin1');
  return out;
}

describe('compress while its candidates change under it', () => {
  it('leaves a candidate slot that became a container alone, and the store stays whole', async () => {
    const store = tmpDir();
    const dir = tmpDir();
    const a = path.join(dir, 'a.raw');
    const b = path.join(dir, 'b.raw');
    fs.writeFileSync(a, textBlocks('A', A_BLOCKS));
    const bBytes = textBlocks('B', 4096);
    fs.writeFileSync(b, bBytes);
    strataOk(store, ['init']);
    strataOk(store, ['import', a, 'a']);

    const fault = faultChannel();
    const compress = strataAsync(store, ['compress', 'a', '--codec', 'zstd', '--json'], { env: fault.env('compress.after-commit') });
    await fault.reached('compress.after-commit', { exited: compress });
    // Between its batches: a's blocks go, gc cuts the store down, and b's import puts its
    // containers where the second batch's candidates were (after b's own 4096 block slots).
    strataOk(store, ['rm', 'a']);
    strataOk(store, ['gc']);
    strataOk(store, ['import', '--compress', 'zstd', b, 'b']);
    fault.release();
    const r = await compress;

    expect({ status: r.status, stderr: r.err }).toEqual({ status: 0, stderr: '' });
    expect(JSON.parse(r.out.toString()).compressed).toBe(4096); // the first batch; the second found nothing left to move
    expect(strataOk(store, ['export', 'b', '-']).out.equals(bBytes)).toBe(true);
    expect((await strataAsync(store, ['check'])).status).toBe(0);
  });
});
