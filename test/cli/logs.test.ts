/**
 * Logs: JSON lines on stderr for collectors, readable lines at a terminal,
 * nothing at all without --log-level.
 */
import { describe, expect, it } from 'vitest';
import { formatLogLine } from '../../src/cli/log-format.js';
import { STRATA_BIN, strata, strataOk } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';
import { requireTool, runOk } from '../helpers/tools.js';

describe('logs', () => {
  it('a pino record becomes one line: local time, level, message, fields', () => {
    const time = new Date(2026, 11, 1, 15, 4, 5, 123).getTime();
    const line = JSON.stringify({ level: 40, time, pid: 42, hostname: 'h', msg: 'dropped images left by interrupted imports', dropped: 2, store: '/srv/my store', exports: ['a'] });
    expect(formatLogLine(line + '\n')).toBe('15:04:05.123 WARN  dropped images left by interrupted imports dropped=2 store="/srv/my store" exports=["a"]\n');
    expect(formatLogLine(line, true)).toContain('\x1b[33mWARN \x1b[0m');
    expect(formatLogLine('not json')).toBe('not json\n');
  });

  it('off a terminal: JSON lines on stderr, and none without --log-level', () => {
    const store = tmpDir();
    strataOk(store, ['init']);
    const r = strataOk(store, ['--log-level', 'debug', 'ls']);
    expect(JSON.parse(r.stderr.trim())).toMatchObject({ level: 20, msg: 'store opened', store });
    expect(strataOk(store, ['ls']).stderr).toBe('');
  });

  it.runIf(requireTool('script'))('at a terminal: readable lines', async () => {
    const store = tmpDir();
    strataOk(store, ['init']);
    // script(1) gives the command a pseudo-terminal; stderr goes to it, stdout away.
    const cmd = `'${process.execPath}' '${STRATA_BIN}' --store '${store}' --log-level debug ls 2>&1 >/dev/null`;
    const r = await runOk('script', ['-qec', cmd, '/dev/null']);
    expect(r.stdout.replace(/\r/g, '')).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} DEBUG store opened store=${store}\\n$`));
    expect(strata(store, ['--log-level', 'debug', 'ls']).stderr).toMatch(/^\{"level":20,/);
  });
});
