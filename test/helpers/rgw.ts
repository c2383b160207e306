/**
 * The loopback Ceph RGW for the remote tests (test/setup/rgw.sh): started on
 * first use by whichever test file asks first (rgw.sh serialises starts and
 * reuses a running one), stopped after the run by test/setup/rgw.ts if the
 * run started it. Tests get its endpoint and keys, and make buckets of their
 * own so files running in parallel never see each other's objects.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { strataOk } from './cli.js';
import { requireTool } from './tools.js';

export const RGW_SCRIPT = path.resolve('test/setup/rgw.sh');

export interface RgwEnv {
  endpoint: string;
  /** Gateway b: the same cluster and buckets, on its own port; only outage tests use it (outageGateway). */
  endpoint2: string;
  /** AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION: pass to child processes, or set on process.env. */
  env: Record<string, string>;
}

/** True when the ceph packages are installed; logs why remote tests skip otherwise. */
export const haveRgw = (): boolean => requireTool('radosgw') && requireTool('ceph-mon');

let started: RgwEnv | undefined;

/** Starts the RGW (or finds it running) and returns how to reach it. Also sets the keys on process.env. */
export function rgw(): RgwEnv {
  if (started) return started;
  // rgw.sh start makes up to three attempts of up to ~200 s each on a loaded machine; in CI it is already up (.ci/run).
  const out = execFileSync(RGW_SCRIPT, ['start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 660_000 });
  const env: Record<string, string> = {};
  for (const m of out.matchAll(/^export (\w+)=(.*)$/gm)) env[m[1]] = m[2];
  const endpoint = env.STRATA_TEST_S3_ENDPOINT;
  if (!endpoint) throw new Error(`rgw.sh start printed no endpoint:\n${out}`);
  const endpoint2 = env.STRATA_TEST_S3_ENDPOINT2;
  if (!endpoint2) throw new Error(`rgw.sh start printed no second endpoint (an instance started by an older rgw.sh? stop it):\n${out}`);
  delete env.STRATA_TEST_S3_ENDPOINT;
  delete env.STRATA_TEST_S3_ENDPOINT2;
  Object.assign(process.env, env);
  started = { endpoint, endpoint2, env };
  return started;
}

/** A bucket name no other test uses (created by the first strata remote add --create). */
export const freshBucket = (what: string): string => `strata-${what}-${randomBytes(4).toString('hex')}`;

/**
 * Starts gateway b (same cluster, same buckets, its own port) and returns its
 * endpoint: a test that stops a gateway (`rgw.sh gw-stop b`) talks through
 * this one, so test files running beside it on gateway a see no outage.
 */
export function outageGateway(): string {
  const { endpoint2 } = rgw();
  execFileSync(RGW_SCRIPT, ['gw-start', 'b'], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
  return endpoint2;
}

/** Makes each store, naming `bucket` in it as the remote `fleet`, reached through gateway a. */
export function storesOnBucket(stores: readonly string[], bucket: string): void {
  const { endpoint } = rgw();
  for (const s of stores) {
    strataOk(s, ['init']);
    strataOk(s, ['remote', 'add', 'fleet', `s3://${bucket}`, '--create', '--endpoint', endpoint]);
  }
}
