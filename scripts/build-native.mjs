// Builds the optional N-API addon in native/. Failure is not fatal: strata
// falls back to plain fs calls (see src/store/native.ts), so installing never
// depends on a compiler being present. Set STRATA_SKIP_NATIVE=1 to skip.
// STRATA_REQUIRE_NATIVE=1 (set by .ci/run) makes a failure fatal instead: CI
// must not go green with the addon silently missing and its tests skipped.
//
// npm puts its bundled node-gyp on PATH for lifecycle scripts and names it in
// npm_config_node_gyp; outside npm we look for npm's copy next to node. When
// no nodedir is configured and node's own headers are installed beside it
// (e.g. /usr/include/node), we point node-gyp at them so the build needs no
// download.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');
const required = process.env.STRATA_REQUIRE_NATIVE === '1';
/** `detail`: the compiler's output, shown in full when the build is required (npm prints it under the error). */
const fail = (why, detail = '') => {
  if (!required) {
    process.stderr.write(`strata: native addon not built (${why}); using the portable fallback\n`);
    process.exit(0);
  }
  // The one-line reason goes last too, so that the tail of npm's output still names it.
  process.stderr.write(`${detail}strata: native addon not built (${why}), and STRATA_REQUIRE_NATIVE=1 requires it\n`);
  process.exit(1);
};

if (!existsSync(join(nativeDir, 'binding.gyp'))) process.exit(0);
if (process.env.STRATA_SKIP_NATIVE === '1') fail('STRATA_SKIP_NATIVE=1');

/** [command, leading args] for node-gyp, or null. Prefers a JS entry run by this node. */
function findNodeGyp() {
  const prefix = resolve(dirname(process.execPath), '..');
  const scripts = [
    process.env.npm_config_node_gyp,
    join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
    join(dirname(process.execPath), 'node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'), // Windows layout
  ];
  for (const s of scripts) if (s && existsSync(s)) return [process.execPath, [s]];
  const probe = spawnSync('node-gyp', ['--version'], { stdio: 'ignore', shell: process.platform === 'win32' });
  if (probe.status === 0) return ['node-gyp', []];
  return null;
}

const gyp = findNodeGyp();
if (!gyp) fail('node-gyp not found');

const args = [...gyp[1], 'rebuild', '--directory', nativeDir];
if (!process.env.npm_config_nodedir) {
  const prefix = resolve(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include/node/common.gypi'))) args.push(`--nodedir=${prefix}`);
}

const r = spawnSync(gyp[0], args, {
  cwd: root,
  stdio: ['ignore', 'ignore', 'pipe'],
  encoding: 'utf8',
  shell: process.platform === 'win32' && gyp[0] === 'node-gyp',
});
const built = join(nativeDir, 'build/Release/strata_native.node');
if (r.status !== 0 || !existsSync(built)) {
  // One line: the compiler's first error, else node-gyp's own error, else its last line.
  const lines = (r.stderr ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  const last =
    lines.find((l) => /\berror:/.test(l)) ?? lines.find((l) => /^gyp ERR! stack \w*Error/.test(l)) ?? lines.at(-1);
  const why = r.error ? r.error.message : `node-gyp exited ${r.status ?? r.signal}${last ? `: ${last.slice(0, 160)}` : ''}`;
  const tail = lines.slice(-40).join('\n');
  fail(why, tail ? `${tail}\n` : '');
}
process.exit(0);
