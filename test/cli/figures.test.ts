/**
 * One meaning per figure (#25 item 3): after compress, info, stats, check and
 * the page's data give the same distinct blocks (uncompressed) and the same
 * stored bytes on disk, each under the same name, and no label means two things.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BLOCK_SIZE } from '../../src/store/core/types.js';
import { humanBytes } from '../../src/units.js';
import { strataOk } from '../helpers/cli.js';
import { rng } from '../helpers/random.js';
import { startServe } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;

describe('one meaning per figure', () => {
  it('after compress: distinct blocks and stored bytes agree across info, stats, check and the page', async () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const r = rng(3);
    // Text compresses, random does not; the second image shares its first MiB with the first.
    const text = r.text(2 * MiB);
    const a = Buffer.concat([text, r.bytes(MiB)]);
    const b = Buffer.concat([text.subarray(0, MiB), r.text(MiB)]);
    fs.writeFileSync(path.join(dir, 'a.raw'), a);
    fs.writeFileSync(path.join(dir, 'b.raw'), b);
    strataOk(store, ['import', path.join(dir, 'a.raw')]);
    strataOk(store, ['import', path.join(dir, 'b.raw')]);
    strataOk(store, ['compress', '--codec', 'zstd']);

    const j = (...args: string[]) => JSON.parse(strataOk(store, ['--json', ...args]).stdout);
    const info = j('info');
    const stats = j('stats');
    const check = j('check');
    const distinctBlocks = (3 * MiB + MiB) / BLOCK_SIZE; // a's 3 MiB, and b's second MiB
    expect(info.distinctBlocks).toBe(distinctBlocks);
    expect(info.distinctBytes).toBe(distinctBlocks * BLOCK_SIZE);
    expect(stats.distinctBytes).toBe(info.distinctBytes);
    expect(check.slotsVerified).toBe(distinctBlocks);
    expect(check.verifiedBytes).toBe(info.distinctBytes);
    // Compressed: stored is less than distinct, and the same wherever it is shown.
    expect(info.storedBytes).toBe(stats.storedBytes);
    expect(stats.storedBytes).toBeLessThan(stats.distinctBytes);

    const distinct = humanBytes(info.distinctBytes);
    const stored = humanBytes(info.storedBytes);
    expect(strataOk(store, ['info']).stdout).toContain(`\ndistinct blocks: ${distinctBlocks} (${distinct} uncompressed)\nstored on disk:  ${stored}\n`);
    const s = strataOk(store, ['stats']).stdout;
    expect(s).toMatch(new RegExp(`\\ndistinct blocks: +${distinct} uncompressed\\n`));
    expect(s).toMatch(new RegExp(`\\nstored on disk: +${stored}, `));
    expect(s).not.toContain('slots in use');
    expect(strataOk(store, ['check']).stdout).toMatch(new RegExp(`^2 image\\(s\\), ${distinctBlocks} distinct block\\(s\\) verified \\(${distinct} uncompressed\\) in \\d+ ms\\n`));

    // The page's data is stats': the same two figures.
    const ui = await startServe(store, [], { command: 'ui', listenArgs: ['--listen', '127.0.0.1:0'] });
    try {
      const page = (await (await fetch(new URL('/api/state', ui.address))).json()) as { stats: { distinctBytes: number; storedBytes: number } };
      expect(page.stats).toMatchObject({ distinctBytes: info.distinctBytes, storedBytes: info.storedBytes });
    } finally {
      await ui.stop();
    }
  });
});
