/**
 * Placeholder until the N-API addon lands: every call takes the portable path.
 * (Replaced by the loader for native/ with the same exports.)
 */
export function nativeStatus(): { mode: 'native' | 'fallback'; reason?: string } {
  return { mode: 'fallback', reason: 'addon not built' };
}
export function punchHole(_fd: number, _offset: number, _length: number): boolean {
  return false;
}
export function dataExtents(_fd: number, size: number): { offset: number; length: number }[] {
  return size > 0 ? [{ offset: 0, length: size }] : [];
}
