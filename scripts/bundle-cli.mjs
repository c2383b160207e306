// Bundles dist/cli/main.js (built by tsc) into one file, dist/cli/strata.js,
// the `strata` bin. Start-up time of a short command (`strata ls`) is mostly
// ESM resolution and loading of ~60 modules; one file loads in a fraction of
// that. better-sqlite3 (native) and pino (loaded only with --log-level) stay
// external. The bundle sits in dist/cli/ like main.js, so paths it resolves
// from import.meta.url (../../package.json, ../../native/) are the same.
//
// esbuild comes with the dev tooling (vitest, tsx). Where it is missing, the
// bin becomes a one-line re-export of main.js: slower to start, same result.
import { existsSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist/cli/main.js');
const out = join(root, 'dist/cli/strata.js');
if (!existsSync(entry)) {
  process.stderr.write(`bundle-cli: ${entry} is missing; run tsc first\n`);
  process.exit(1);
}

const shim = () => writeFileSync(out, "#!/usr/bin/env node\nimport './main.js';\n", { mode: 0o755 });

// ESM imports of built-ins are hoisted to the bundle's top and load at start-up even when only
// `strata serve` (reached by a dynamic import) uses them. node:net and node:tls cost ~20 ms:
// they become require() calls, run when the module that uses them first runs.
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(build) {
    build.onResolve({ filter: /^node:(net|tls)$/ }, (a) => ({ path: a.path, namespace: 'lazy-builtin' }));
    build.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (a) => ({ contents: `module.exports = require(${JSON.stringify(a.path.slice("node:".length))});`, loader: 'js' }));
  },
};

let esbuild;
try {
  esbuild = createRequire(import.meta.url)('esbuild');
} catch {
  shim();
  process.stderr.write('bundle-cli: esbuild not found; dist/cli/strata.js re-exports main.js\n');
  process.exit(0);
}

try {
  await esbuild.build({
    entryPoints: [entry],
    outfile: out,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['better-sqlite3', 'pino'],
    // CommonJS dependencies (commander) call require() for node: built-ins.
    banner: { js: "import { createRequire as __strataRequire } from 'node:module';\nconst require = __strataRequire(import.meta.url);" },
    legalComments: 'none',
    plugins: [lazyBuiltins],
    logLevel: 'warning',
  });
} catch (e) {
  shim();
  process.stderr.write(`bundle-cli: esbuild failed (${e.message}); dist/cli/strata.js re-exports main.js\n`);
}
