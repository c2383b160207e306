/**
 * The map of folders in docs/design.md, checked: which folder may import
 * which, that no files import each other (directly or round a loop), that
 * other folders reach the store only through a wing's front door
 * (src/store/WING/index.ts), and that only the store talks to SQLite.
 * A rule broken here is a design change: change docs/design.md with it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '..', 'src');

interface Edge {
  from: string;
  to: string;
  /** `import('…')` at run time, not a static import. */
  dynamic: boolean;
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) sourceFiles(p, out);
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const files = sourceFiles(SRC);
const rel = (abs: string) => path.relative(SRC, abs);
const text = new Map(files.map((f) => [rel(f), fs.readFileSync(f, 'utf8')]));

/** Every relative import of every file, resolved to a file under src/ (type-only imports too: they are dependencies of the design). */
const edges: Edge[] = [];
const packages = new Map<string, string[]>();
for (const [file, src] of text) {
  for (const m of src.matchAll(/(?:^|[^.\w])(?:import|export)\s[^'"]*?from\s*'([^']+)'|import\(\s*'([^']+)'\s*\)/gm)) {
    const spec = m[1] ?? m[2];
    if (!spec.startsWith('.')) {
      packages.set(file, [...(packages.get(file) ?? []), spec]);
      continue;
    }
    const to = path.normalize(path.join(path.dirname(file), spec)).replace(/\.js$/, '.ts');
    edges.push({ from: file, to, dynamic: m[2] !== undefined });
  }
}

/** A file's folder: the first directory under src/, or '' for the shared files at the top (errors, log, units…). */
const folderOf = (file: string) => (file.includes('/') ? file.split('/')[0] : '');

/** The remote's local index cache: its own database file and connection (rebuilt from the bucket at will), not the store's. */
const OWN_DATABASE = new Set(['remote/cache.ts']);
/** The connection itself, taken from a store or by destructuring, or SQL run on a connection. */
const REACHES_SQL = [/\bstore\.db\b/, /\{\s*db\s*\}\s*=/, /\bsqlOf\(/, /\bdb\.(prepare|pragma|exec|transaction)\(/];

/** cli → ui/nbd/formats/remote → image → store → the shared top-level files. */
const RANK: Record<string, number> = { '': 0, store: 1, image: 2, formats: 3, remote: 3, nbd: 3, ui: 3, cli: 4 };
/** Imports across one rank, each for a reason docs/design.md gives. */
const SIDEWAYS = new Set(['formats->nbd', 'remote->formats']);

describe('the map of folders (docs/design.md)', () => {
  it('every file under src/ sits in a folder the map names', () => {
    const unknown = [...text.keys()].filter((f) => !(folderOf(f) in RANK));
    expect(unknown).toEqual([]);
  });

  it('imports point one way: cli → ui/nbd/formats/remote → image → store', () => {
    const against = edges
      .filter((e) => {
        const a = folderOf(e.from);
        const b = folderOf(e.to);
        return a !== b && !(RANK[b] < RANK[a]) && !SIDEWAYS.has(`${a}->${b}`);
      })
      .map((e) => `${e.from} imports ${e.to}`);
    expect(against).toEqual([]);
  });

  it('no two files import each other, directly or round a loop', () => {
    const next = new Map<string, string[]>();
    for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
    // Tarjan's strongly connected components: a component of more than one file is a loop.
    let counter = 0;
    const index = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const loops: string[][] = [];
    const visit = (v: string): void => {
      index.set(v, counter);
      low.set(v, counter++);
      stack.push(v);
      onStack.add(v);
      for (const w of next.get(v) ?? []) {
        if (!index.has(w)) {
          visit(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
      if (low.get(v) === index.get(v)) {
        const scc: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          scc.push(w);
        } while (w !== v);
        if (scc.length > 1) loops.push(scc.sort());
      }
    };
    for (const f of text.keys()) if (!index.has(f)) visit(f);
    expect(loops).toEqual([]);
  });

  it('other folders reach the store only through a wing’s index.ts', () => {
    const back = edges.filter((e) => folderOf(e.from) !== 'store' && folderOf(e.to) === 'store' && !/^store\/[a-z-]+\/index\.ts$/.test(e.to)).map((e) => `${e.from} imports ${e.to}`);
    expect(back).toEqual([]);
  });

  it('the store core is the bottom of the store: only opening a store (core/store.ts, which wires the wings together) imports another wing', () => {
    const up = edges
      .filter((e) => e.from.startsWith('store/core/') && e.from !== 'store/core/store.ts' && e.to.startsWith('store/') && !e.to.startsWith('store/core/'))
      .map((e) => `${e.from} imports ${e.to}`);
    expect(up).toEqual([]);
  });

  it('only the store opens SQLite, and no wing’s door hands out the connection', () => {
    const sqlite = [...packages].filter(([file, specs]) => folderOf(file) !== 'store' && specs.includes('better-sqlite3') && !OWN_DATABASE.has(file)).map(([file]) => file);
    expect(sqlite).toEqual([]);
    const doors = [...text].filter(([file]) => /^store\/[a-z-]+\/index\.ts$/.test(file));
    // The doors' own helpers (the connection behind a door, doors made from a connection) and cached statements stay inside.
    const leaks = doors.flatMap(([file, src]) =>
      src
        .split('\n')
        .filter((l) => /from '\.\/(statements|tx)\.js'/.test(l) && (/^export \*/.test(l) || /\b(sqlOf|readerOn|writeTxOn|heldTx|prepared)\b/.test(l)))
        .map((l) => `${file}: ${l}`),
    );
    expect(leaks).toEqual([]);
    const viaStore = [...text].filter(([file, src]) => folderOf(file) !== 'store' && !OWN_DATABASE.has(file) && REACHES_SQL.some((re) => re.test(src))).map(([file]) => file);
    expect(viaStore).toEqual([]);
  });
});
