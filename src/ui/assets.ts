/**
 * The page's files, read once into memory when the server starts: the only
 * paths the server answers besides its API. A request names an entry of this
 * table or gets 404; no part of a URL is ever joined to a file-system path.
 *
 * They live in dist/ui/page/ (scripts/bundle-page.mjs copies src/ui/page/
 * and the vendored d3-hierarchy there at build time), found from this
 * module's URL: ../../ is the package root both for dist/ui/assets.js and for
 * the bundled dist/cli/strata.js.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StrataError } from '../errors.js';

export interface Asset {
  body: Buffer;
  type: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
};

export const PAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'ui', 'page');

/** URL path (`/`, `/app.js`, `/vendor/d3-hierarchy.min.mjs`) → file. */
export function loadAssets(dir: string = PAGE_DIR): Map<string, Asset> {
  const out = new Map<string, Asset>();
  const walk = (d: string, prefix: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name), `${prefix}${e.name}/`);
      else if (e.isFile() && TYPES[path.extname(e.name)]) out.set(`${prefix}${e.name}`, { body: fs.readFileSync(path.join(d, e.name)), type: TYPES[path.extname(e.name)] });
    }
  };
  try {
    walk(dir, '/');
  } catch (e) {
    throw new StrataError('E_NOT_FOUND', `the page's files are missing from ${dir} (npm run build makes them)`, { dir }, { cause: e });
  }
  const index = out.get('/index.html');
  if (!index) throw new StrataError('E_NOT_FOUND', `the page's files are missing from ${dir} (npm run build makes them)`, { dir });
  out.set('/', index);
  return out;
}
