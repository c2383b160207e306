/** A seeded PRNG (mulberry32) so failures reproduce from the seed in the test name. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)],
    bytes(n: number): Buffer {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = (next() * 256) | 0;
      return b;
    },
  };
}
