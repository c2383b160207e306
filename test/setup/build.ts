// CLI tests run the built binary, so every run starts from a fresh build of src/.
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
  // The `strata` bin is the bundle of dist/cli/main.js (scripts/bundle-cli.mjs): CLI tests run that.
  execFileSync(process.execPath, ['scripts/bundle-cli.mjs'], { stdio: 'inherit' });
  // `strata ui` serves its page from dist/ui/page (scripts/bundle-page.mjs).
  execFileSync(process.execPath, ['scripts/bundle-page.mjs'], { stdio: 'inherit' });
}
