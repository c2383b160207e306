/** `--open`: hands a URL to the desktop's opener, where there is one. */
import { spawn } from 'node:child_process';

/** The opener for this platform, overridable with $BROWSER (a command taking the URL). */
function opener(env: NodeJS.ProcessEnv): string[] {
  if (env.BROWSER) return [env.BROWSER];
  if (process.platform === 'darwin') return ['open'];
  if (process.platform === 'win32') return ['cmd', '/c', 'start', '""'];
  return ['xdg-open'];
}

/** Resolves to null once the opener started, or to why it could not (no opener installed, no display). */
export function openBrowser(url: string, env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  const [cmd, ...args] = opener(env);
  return new Promise((resolve) => {
    const child = spawn(cmd, [...args, url], { stdio: 'ignore', detached: true });
    child.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ENOENT' ? `${cmd} is not installed` : `${cmd}: ${e.message}`));
    child.once('spawn', () => {
      child.unref();
      resolve(null);
    });
  });
}
