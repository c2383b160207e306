/**
 * The logging surface nbd/ needs. A pino logger satisfies it; so does a
 * test spy. Log objects first, message second, as pino expects.
 */
export type LogMethod = (obj: Record<string, unknown>, msg: string) => void;

export interface Logger {
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
}

const nothing: LogMethod = () => {};
export const silentLogger: Logger = { debug: nothing, info: nothing, warn: nothing, error: nothing };
