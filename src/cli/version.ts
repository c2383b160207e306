import { createRequire } from 'node:module';

/** From dist/cli/, both as compiled modules and as the bundled dist/cli/strata.js. */
export const STRATA_VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
