/** Types for mulberry32.mjs (plain JS so child processes run by `node` can import it). */
export function mulberry32(seed: number): () => number;
