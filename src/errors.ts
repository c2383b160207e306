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
  /** A file or archive the user handed in (qcow2, vmdk, OCI layout, docker-archive, layer tar) is malformed: the user's to fix, not strata's. */
  E_BAD_FILE: 17,
  /** An object that a manifest or index names is not in the bucket (a pack, layer or manifest deleted meanwhile). */
  E_REMOTE_MISSING: 18,
  /** Ctrl-C (SIGINT) stopped the work; 128 + SIGINT, as a shell reports a process killed by it. */
  E_INTERRUPTED: 130,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * Whose fault an E_CORRUPT is. 'store': certain damage to strata's own store,
 * which the store records and which refuses later writes until check --repair
 * (store/core/damage.ts). 'bucket': a damaged object in a remote's bucket.
 */
export type CorruptionOf = 'store' | 'bucket';

export class StrataError extends Error {
  readonly code: ErrorCode;
  readonly data: Record<string, unknown>;
  /** Set only by storeCorrupt() and bucketCorrupt(): read by the store's doors, never printed. */
  readonly corruptionOf: CorruptionOf | undefined;

  constructor(code: ErrorCode, message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown; corruptionOf?: CorruptionOf }) {
    super(message, options);
    this.name = 'StrataError';
    this.code = code;
    this.data = data;
    this.corruptionOf = options?.corruptionOf;
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
export const unsupported = (msg: string, data?: Record<string, unknown>) => new StrataError('E_UNSUPPORTED', msg, data);

/*
 * Whose fault a damaged or missing thing is decides its code, here and
 * nowhere else:
 * - a file or archive the user handed in: inputError, E_BAD_FILE;
 * - strata's own store: storeCorrupt, E_CORRUPT, and the store is marked;
 * - a remote's bucket holding a damaged object: bucketCorrupt, E_CORRUPT;
 * - a bucket lacking an object that a manifest or index names: remoteMissing.
 */

/** A malformed file, directory or archive the user gave strata to read (qcow2 header, OCI layout, layer tar...). */
export const inputError = (msg: string, data?: Record<string, unknown>) => new StrataError('E_BAD_FILE', msg, data);

/**
 * Certain damage to strata's own store: a refcount below zero, a map naming
 * a free slot, a block failing its hash, a row of the wrong size. The store
 * records the first such error and refuses writes until check --repair
 * (store/core/damage.ts). Only for damage no reader racing a writer could
 * see: such a lookup is corrupt(), which marks nothing.
 */
export const storeCorrupt = (msg: string, data?: Record<string, unknown>, cause?: unknown) =>
  new StrataError('E_CORRUPT', msg, data, { cause, corruptionOf: 'store' });

/** A damaged object in a remote's bucket: one that does not match its name, or does not decode. */
export const bucketCorrupt = (msg: string, data?: Record<string, unknown>) => new StrataError('E_CORRUPT', msg, data, { corruptionOf: 'bucket' });

/** An object that a manifest or index names is not in the bucket (not a remote that does not exist: that is E_NOT_FOUND). */
export const remoteMissing = (msg: string, data?: Record<string, unknown>, cause?: unknown) => new StrataError('E_REMOTE_MISSING', msg, data, { cause });

/**
 * What looks like damage in the store but may be a lookup that raced another
 * process's commit (an image id gone since it was read): E_CORRUPT, not marked.
 */
export const corrupt = (msg: string, data?: Record<string, unknown>) => new StrataError('E_CORRUPT', msg, data);

/** Whether `e` is certain damage to the store (storeCorrupt()), which the store records. */
export const isStoreDamage = (e: unknown): e is StrataError => e instanceof StrataError && e.code === 'E_CORRUPT' && e.corruptionOf === 'store';
