// The last line of .ci/run, from vitest's JSON report: "tests: N passed, N failed".
// In CI nothing skips: each skipped or todo test is named and counted as failed.
// A run whose tests all passed but whose vitest exited non-zero (the global teardown
// found processes left running) counts one failure. Exits 0 only for a clean run.
// Usage: node .ci/summary.mjs REPORT.json VITEST_EXIT_STATUS
import { readFileSync } from 'node:fs';

const [report, status] = process.argv.slice(2);
const r = JSON.parse(readFileSync(report, 'utf8'));
const skipped = [];
for (const f of r.testResults) {
  for (const t of f.assertionResults) {
    if (t.status !== 'passed' && t.status !== 'failed') skipped.push(`${f.name.replace(`${process.cwd()}/`, '')}: ${t.fullName} (${t.status})`);
  }
}
for (const s of skipped) console.log(`ci: skipped in CI, counted as failed: ${s}`);
let failed = r.numFailedTests;
if (!r.success && failed === 0) failed = r.numFailedTestSuites || 1;
if (status !== '0' && failed === 0) {
  console.log(`ci: vitest exited ${status} though every test passed: see its error above (e.g. processes left running)`);
  failed = 1;
}
failed += skipped.length;
console.log(`tests: ${r.numPassedTests} passed, ${failed} failed${skipped.length ? ` (${skipped.length} of them skipped)` : ''}`);
process.exit(failed > 0 ? 1 : 0);
