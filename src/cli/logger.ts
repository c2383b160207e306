/** Logs go to stderr through pino, loaded only when a level is asked for (start-up time matters). */
export interface Logger {
  debug(obj: unknown, msg?: string): void;
  info(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
}

const noop = () => {};
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

export async function makeLogger(level: string | undefined): Promise<Logger> {
  if (!level || level === 'silent') return silentLogger;
  const { default: pino } = await import('pino');
  return pino({ level, base: { pid: process.pid } }, pino.destination(2)) as unknown as Logger;
}
