/** Logs go to stderr through pino, loaded only when a level is asked for (start-up time matters). */
import { badInput } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { prettyDestination } from './log-format.js';

export type { Logger } from '../log.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export async function makeLogger(level: string | undefined): Promise<Logger> {
  if (level !== undefined && !LEVELS.includes(level)) {
    throw badInput(`invalid --log-level ${JSON.stringify(level)}: use debug, info, warn or error (or trace, fatal, silent)`);
  }
  if (!level || level === 'silent') return silentLogger;
  const { default: pino } = await import('pino');
  // JSON lines for collectors; readable lines for a person at a terminal.
  const tty = process.stderr.isTTY;
  const dest = tty ? prettyDestination(process.stderr, !process.env.NO_COLOR) : pino.destination(2);
  // pino's logger is thenable-looking to TypeScript; it is a plain object here.
  return pino({ level, base: { pid: process.pid } }, dest) as unknown as Logger;
}
