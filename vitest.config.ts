import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // debugfs-scripts.ts checks every debugfs script strata wrote during the run (see there).
    // rgw.ts only stops, after the run, the loopback Ceph RGW that remote tests start on first use.
    // processes.ts fails the run if a process a test started is still running after it.
    globalSetup: ['test/setup/build.ts', 'test/setup/processes.ts', 'test/setup/rgw.ts', 'test/setup/debugfs-scripts.ts'],
  },
});
