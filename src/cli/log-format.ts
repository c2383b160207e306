/**
 * pino's JSON lines made readable for a person at a terminal:
 *
 *   15:04:05.123 INFO  nbd server listening address=nbd+unix:///?socket=/tmp/s exports=["web1"]
 *
 * A dozen lines instead of pino-pretty, which brings thirteen packages for
 * the same job. Off a terminal the lines stay JSON, for log collectors.
 */

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const COLORS: Record<number, string> = { 40: '\x1b[33m', 50: '\x1b[31m', 60: '\x1b[31m' };
/** Fields every line has; shown as the time and level, or not at all. */
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'v']);

const two = (n: number) => String(n).padStart(2, '0');

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

export function formatLogLine(line: string, color = false): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : line + '\n';
  }
  const t = new Date(typeof rec.time === 'number' ? rec.time : Date.now());
  const time = `${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}.${String(t.getMilliseconds()).padStart(3, '0')}`;
  const n = Number(rec.level);
  let level = (LEVELS[n] ?? String(rec.level)).padEnd(5);
  if (color && COLORS[n]) level = `${COLORS[n]}${level}\x1b[0m`;
  const fields = Object.entries(rec)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => ` ${k}=${value(v)}`)
    .join('');
  return `${time} ${level} ${String(rec.msg ?? '')}${fields}\n`;
}

/** A pino destination that writes each record formatted. */
export function prettyDestination(out: NodeJS.WriteStream, color: boolean): { write(line: string): void } {
  return { write: (line) => void out.write(formatLogLine(line, color)) };
}
