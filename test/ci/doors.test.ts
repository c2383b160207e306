/**
 * Nothing outside src/store/ reaches the store's SQLite (issue #23): code
 * elsewhere reads through a Reader (the store) and writes through the WriteTx
 * of store.write, so the store's rules cannot be skipped. This reads the
 * sources as text, the way a reviewer would grep them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

/** The remote's local index cache: its own database file and connection, not the store's. */
const OWN_DATABASE = new Set(['remote/cache.ts']);

/**
 * Files that other parts of issue #23 move to the doors on their own
 * branches. Each must still need its place here: one that no longer touches
 * SQLite fails the test until it leaves the list, so the list only shrinks.
 */
const PENDING = new Set([
  'image/image.ts',
  'image/lifecycle.ts',
  'image/reshape.ts',
  'image/views.ts',
  'remote/cache-limit.ts',
  'remote/dependents.ts',
  'remote/held-remotely.ts',
  'remote/layers.ts',
  'remote/lazy.ts',
  'remote/pull.ts',
  'remote/push.ts',
  'remote/zero-runs.ts',
]);

/** The connection itself, taken from a store or by destructuring, or SQL run on a connection. */
const REACHES_SQL = [/\bstore\.db\b/, /\{\s*db\s*\}\s*=/, /\bsqlOf\(/, /\bdb\.(prepare|pragma|exec|transaction)\(/];
const IMPORTS_DRIVER = /from 'better-sqlite3'/;

function sourcesOutsideStore(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (path.relative(SRC, p) !== 'store') walk(p);
      } else if (e.name.endsWith('.ts')) out.push(path.relative(SRC, p));
    }
  };
  walk(SRC);
  return out.sort();
}

describe('the store has one front door', () => {
  const files = sourcesOutsideStore();
  const text = new Map(files.map((f) => [f, fs.readFileSync(path.join(SRC, f), 'utf8')]));
  const reaches = (f: string) => REACHES_SQL.some((re) => re.test(text.get(f)!));

  it('no file outside src/store/ imports better-sqlite3 or reaches the store connection, but those named above', () => {
    expect(files.length).toBeGreaterThan(100);
    expect(files.filter((f) => IMPORTS_DRIVER.test(text.get(f)!) && !OWN_DATABASE.has(f))).toEqual([]);
    expect(files.filter((f) => reaches(f) && !OWN_DATABASE.has(f) && !PENDING.has(f))).toEqual([]);
  });

  it('every pending file still reaches it (a converted one leaves the list)', () => {
    expect([...PENDING].filter((f) => !text.has(f) || !reaches(f))).toEqual([]);
  });
});
