import { mulberry32 } from './mulberry32.mjs';

export { mulberry32 };

/** mulberry32 with helpers for picking sizes, elements and bytes. */
export function rng(seed: number) {
  const next = mulberry32(seed);
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)],
    /**
     * `n` bytes that compress about 3x, every 4 KiB block distinct: words
     * from a small vocabulary with numbers, like text and config files.
     */
    text(n: number): Buffer {
      const words = ['strata', 'block', 'layer', 'image', 'zstd', 'slot', 'debian', 'usr', 'lib', 'share', 'the', 'of', 'and', '=', '\n'];
      let s = '';
      while (s.length < n) s += words[Math.floor(next() * words.length)] + (next() < 0.3 ? String(Math.floor(next() * 1000)) : '') + ' ';
      return Buffer.from(s.slice(0, n), 'latin1');
    },
    bytes(n: number): Buffer {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = (next() * 256) | 0;
      return b;
    },
  };
}
