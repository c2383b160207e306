/**
 * Every failure a user can cause or meet is a StrataError with a stable code.
 * The CLI turns the code into an exit status and prints the one-line message;
 * tests assert on `code`, never on message wording alone.
 */

export const ERROR_CODES = {
  E_INTERNAL: 1,
  E_BAD_INPUT: 2,
  E_NOT_FOUND: 3,
  E_EXISTS: 4,
  E_READONLY: 5,
  E_BUSY: 6,
  E_HAS_CHILDREN: 7,
  E_CORRUPT: 8,
  E_NO_SPACE: 9,
  E_RANGE: 10,
  E_UNSUPPORTED: 11,
  E_IO: 12,
  E_PROTOCOL: 13,
  /** A send stream that is cut, damaged or not one (strata receive): nothing of it is kept. */
  E_BAD_STREAM: 14,
  /** An incremental stream whose base this store lacks, or holds with other content. */
  E_BASE_MISMATCH: 15,
  /** Lazy clones (on this or another host) still fetch blocks of what a remote delete/gc/rm would remove. */
  E_HAS_DEPENDENTS: 16,
  /** Ctrl-C (SIGINT) stopped the work; 128 + SIGINT, as a shell reports a process killed by it. */
  E_INTERRUPTED: 130,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class StrataError extends Error {
  readonly code: ErrorCode;
  readonly data: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StrataError';
    this.code = code;
    this.data = data;
  }

  get exitStatus(): number {
    return ERROR_CODES[this.code];
  }

  toJSON(): { code: ErrorCode; message: string; data: Record<string, unknown> } {
    return { code: this.code, message: this.message, data: this.data };
  }
}

export function isStrataError(e: unknown, code?: ErrorCode): e is StrataError {
  return e instanceof StrataError && (code === undefined || e.code === code);
}

/** Shorthand constructors keep call sites to one line. */
export const badInput = (msg: string, data?: Record<string, unknown>) => new StrataError('E_BAD_INPUT', msg, data);
export const notFound = (msg: string, data?: Record<string, unknown>) => new StrataError('E_NOT_FOUND', msg, data);
export const corrupt = (msg: string, data?: Record<string, unknown>) => new StrataError('E_CORRUPT', msg, data);
export const unsupported = (msg: string, data?: Record<string, unknown>) => new StrataError('E_UNSUPPORTED', msg, data);
