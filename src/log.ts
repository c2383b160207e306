/**
 * The logging surface every layer takes: a pino logger satisfies it, and so
 * does a test spy. Objects first, message second, as pino expects.
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
