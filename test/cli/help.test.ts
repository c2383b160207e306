/** --help of every subcommand shows the global options and one example. */
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/program.js';
import { strataOk } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

describe('help', () => {
  it('every subcommand lists --store, --json and --debug and ends with an example of itself', () => {
    const program = buildProgram();
    expect(program.commands.length).toBeGreaterThan(20);
    for (const cmd of program.commands) {
      let text = '';
      cmd.configureOutput({ writeOut: (s) => (text += s) });
      cmd.outputHelp();
      const global = text.slice(text.indexOf('Global Options:'));
      expect(text, cmd.name()).toContain('Global Options:');
      for (const flag of ['--store <dir>', '--json', '--debug', '--log-level <level>']) expect(global, `${cmd.name()} ${flag}`).toContain(flag);
      expect(text, cmd.name()).toMatch(new RegExp(`\\nExample:\\n  \\$ strata (--store \\S+ )?${cmd.name()}( .*)?\\n$`));
      for (const line of text.split('\n')) expect(line.length, `${cmd.name()}: ${line}`).toBeLessThanOrEqual(80);
    }
  });

  it('the built binary prints the same', () => {
    const r = strataOk(tmpDir(), ['du', '--help']);
    expect(r.stdout).toContain('Global Options:\n');
    expect(r.stdout).toMatch(/--json +print results \(and errors, on stderr\) as JSON\n/);
    expect(r.stdout.endsWith('Example:\n  $ strata du web1 web2 --bytes\n')).toBe(true);
  });
});
