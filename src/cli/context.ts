/**
 * What every command gets: the store (opened on demand), output mode and a
 * logger. Commands return data; `runCommand` prints it as JSON or as text.
 */
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { corrupt, isStrataError, StrataError } from '../errors.js';
import { listVisibleImages } from '../store/images/index.js';
import { printable } from '../untrusted.js';
import { closeNames } from './suggest.js';
import { DB_FILE, openStore, type Store, type StoreOptions } from '../store/core/index.js';
import { recoverAbandoned } from '../formats/import.js';
import { makeLogger, type Logger } from './logger.js';

export interface GlobalOptions {
  store?: string;
  json?: boolean;
  debug?: boolean;
  logLevel?: string;
}

export interface Ctx {
  storeDir: string;
  json: boolean;
  logger: Logger;
  /**
   * Something the user should know that does not stop the command: one line on
   * stderr now, whatever the mode, and with --json also in the result's `warnings`.
   */
  warn(message: string): void;
  /** Opens the store on first use; `tuning` (memory of a long-running server) counts only on that first call. */
  store(tuning?: Pick<StoreOptions, 'sqliteCacheBytes' | 'cacheSegments'>): Promise<Store>;
}

export function defaultStoreDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STRATA_STORE) return path.resolve(env.STRATA_STORE);
  const data = env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(data, 'strata');
}

/**
 * The commands that may make a new store. Every other command needs one that
 * exists, so a mistyped --store is an error, not a new empty store.
 */
const CREATES_STORE = new Set(['init', 'create', 'import', 'receive', 'demo']);

export type Render<R> = (result: R, ctx: Ctx) => string | undefined;

/** Runs a command body with a context, prints its result, and always closes the store. */
export async function runCommand<R>(cmd: Command, body: (ctx: Ctx) => Promise<R> | R, render: Render<R>): Promise<void> {
  const g = cmd.optsWithGlobals() as GlobalOptions;
  let opened: Store | undefined;
  const warnings: string[] = [];
  const ctx: Ctx = {
    storeDir: g.store ? path.resolve(g.store) : defaultStoreDir(),
    json: !!g.json,
    logger: await makeLogger(g.logLevel),
    warn(message) {
      warnings.push(message);
      process.stderr.write(`strata: warning: ${printable(message)}\n`);
    },
    async store(tuning) {
      if (!opened) {
        opened = await openStore(ctx.storeDir, { ...tuning, create: CREATES_STORE.has(cmd.name()) });
        ctx.logger.debug({ store: ctx.storeDir }, 'store opened');
        const dropped = recoverAbandoned(opened);
        if (dropped > 0) ctx.logger.warn({ dropped }, 'dropped images left by interrupted imports and exports');
      }
      return opened;
    },
  };
  try {
    const result = await body(ctx);
    // A command that wrote its data to stdout itself (read, export -) returns nothing to print.
    const text = result === undefined ? undefined : ctx.json ? JSON.stringify(withWarnings(result, warnings), null, 2) + '\n' : render(result, ctx);
    if (text) process.stdout.write(text);
  } catch (e) {
    // SQLite finds a damaged page only when a query reaches it, long after the store opened.
    // A local image only: a name missing from a remote is looked up among the remote's, not here.
    if (isStrataError(e, 'E_NOT_FOUND') && typeof e.data.image === 'string' && e.data.remote === undefined && opened) throw withImageHint(e, e.data.image, opened);
    const code = (e as { code?: unknown }).code;
    if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') {
      throw corrupt(`store database ${path.join(ctx.storeDir, DB_FILE)} is corrupt: ${(e as Error).message}`, { file: path.join(ctx.storeDir, DB_FILE) });
    }
    throw e;
  } finally {
    opened?.close();
  }
}

/** A --json document carries the warnings printed on the way (an object's `warnings`; a list has no place for them). */
function withWarnings<R>(result: R, warnings: readonly string[]): R | (R & { warnings: string[] }) {
  if (warnings.length === 0 || typeof result !== 'object' || result === null || Array.isArray(result)) return result;
  return { ...result, warnings: [...warnings] };
}

/** `info Debian` where the store has `debian`: the same error, with the names it may have meant as its hint. */
function withImageHint(e: StrataError, name: string, store: Store): StrataError {
  if (e.data.hint !== undefined) return e;
  const near = closeNames(name, listVisibleImages(store).map((i) => i.name));
  if (near.length === 0) return e;
  const err = new StrataError(e.code, e.message, { ...e.data, hint: `did you mean ${near.join(' or ')}?` }, { cause: e });
  err.stack = e.stack;
  return err;
}
