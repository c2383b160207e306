// Stops the loopback RGW after the run, if this run started it (test/helpers/rgw.ts starts it on
// first use). One that was running before the run (started by hand to iterate faster) is left.
import { execFileSync } from 'node:child_process';

const script = 'test/setup/rgw.sh';
const running = (): boolean => {
  try {
    execFileSync(script, ['status'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

export default function setup(): () => void {
  const before = running();
  return () => {
    // Unconditional: also clears a start that failed half-way.
    if (!before) execFileSync(script, ['stop'], { stdio: 'inherit' });
  };
}
