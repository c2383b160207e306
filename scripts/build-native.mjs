// Builds the optional N-API addon in native/. Failure is not fatal: strata
// falls back to plain fs calls (see src/store/native.ts), so installing never
// depends on a compiler being present.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

if (!existsSync('native/binding.gyp')) process.exit(0);
const r = spawnSync('node-gyp', ['rebuild', '--directory', 'native'], { stdio: ['ignore', 'ignore', 'pipe'], shell: process.platform === 'win32' });
if (r.status !== 0) {
  process.stderr.write('strata: native addon not built; using the portable fallback\n');
}
process.exit(0);
