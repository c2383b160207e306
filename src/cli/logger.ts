/** Logs go to stderr through pino, loaded only when a level is asked for (start-up time matters). */
import { silentLogger, type Logger } from '../log.js';

export type { Logger } from '../log.js';

export async function makeLogger(level: string | undefined): Promise<Logger> {
  if (!level || level === 'silent') return silentLogger;
  const { default: pino } = await import('pino');
  // pino's logger is thenable-looking to TypeScript; it is a plain object here.
  return pino({ level, base: { pid: process.pid } }, pino.destination(2)) as unknown as Logger;
}
