/**
 * The one rule for a test whose prerequisite (a tool, root, the native
 * addon, Ceph) is missing: on a developer machine it skips and says why; in
 * CI (env CI set, as .ci/run sets it) it fails, because .ci/run installs and
 * checks everything the suite needs and a skip there would hide a broken
 * install behind a green run.
 */
export const inCI = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false' && process.env.CI !== '0';

/** `ok`, or, when not: false with a "[skip] why" warning, or in CI an error naming what is missing. */
export function available(ok: boolean, why: string): boolean {
  if (ok) return true;
  if (inCI) throw new Error(`CI runs every test, but ${why} (.ci/run should have provided it)`);
  console.warn(`[skip] ${why}`);
  return false;
}

/** The native addon is loaded (what `nativeStatus()` reports as 'native'); the reason it is not, otherwise. */
export function nativeAvailable(status: { mode: string; reason?: string }): boolean {
  return available(status.mode === 'native', `the native addon is not in use (${status.reason}): npm install builds it with build-essential, python3, libzstd-dev and liblz4-dev`);
}

/** Root, for tests that need it (owners and device nodes in umoci's unpack, loop devices, PID namespaces). */
export const isRoot = (): boolean => available(process.getuid?.() === 0, 'not running as root');
