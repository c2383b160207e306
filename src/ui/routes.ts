/**
 * Requests to replies. Read-only: GET (and HEAD) of the page's files and of
 * two JSON resources; everything else is refused with a status, never by
 * throwing at the server.
 *
 *   GET /                        the page (and its files, see assets.ts)
 *   GET /api/state[?since=V]     StoreState; 204 when the store is still at version V
 *   GET /api/image?name=NAME     ImageDetail of one image
 *
 * Errors are JSON like the CLI's: {"error": CODE, "message": ...}.
 */
import { StrataError, isStrataError, type ErrorCode } from '../errors.js';
import type { Asset } from './assets.js';
import type { StoreWatch } from './watch.js';

export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string | Buffer;
}

export interface RouteContext {
  watch: StoreWatch;
  assets: ReadonlyMap<string, Asset>;
  /** Told about failures that are not the client's (a 500). */
  onError(e: unknown): void;
}

const SECURITY = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // The page loads nothing from elsewhere and runs no inline script or style.
  'content-security-policy': "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
};

/** The longest request target accepted: a name is at most 128 characters, percent-encoded 3 bytes each. */
export const MAX_TARGET = 2048;

const STATUS_OF: Partial<Record<ErrorCode, number>> = { E_BAD_INPUT: 400, E_NOT_FOUND: 404, E_BUSY: 503 };

export function jsonReply(status: number, value: unknown): Reply {
  return { status, headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...SECURITY }, body: typeof value === 'string' ? value : JSON.stringify(value) };
}

export function errorReply(status: number, code: ErrorCode, message: string): Reply {
  return jsonReply(status, { error: code, message });
}

const bad = (message: string) => new StrataError('E_BAD_INPUT', message);

function parseTarget(target: string): { path: string; query: URLSearchParams } {
  // Origin-form only ("/path?query"): not "*", "http://host/…" or "//host/…".
  if (!target.startsWith('/') || target.startsWith('//')) throw bad('the request target must be a path starting with one /');
  if (target.length > MAX_TARGET) throw bad(`the request target is longer than ${MAX_TARGET} characters`);
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  // A path of the page is plain: a dot-segment, a backslash or an escape can only be an attempt at another file.
  if (/(^|\/)\.\.?(\/|$)|\\|%/.test(path)) throw bad(`no such path ${JSON.stringify(path.slice(0, 100))}`);
  // URLSearchParams never throws: a bad escape decodes to U+FFFD, which names no image.
  return { path, query: new URLSearchParams(q < 0 ? '' : target.slice(q + 1)) };
}

function only(query: URLSearchParams, allowed: readonly string[]): void {
  for (const k of query.keys()) if (!allowed.includes(k)) throw bad(`unknown query parameter ${JSON.stringify(k.slice(0, 40))}`);
}

function one(query: URLSearchParams, key: string): string | undefined {
  const all = query.getAll(key);
  if (all.length > 1) throw bad(`${key} is given more than once`);
  return all[0];
}

function state(ctx: RouteContext, query: URLSearchParams): Reply {
  only(query, ['since']);
  const since = one(query, 'since');
  if (since !== undefined && !/^\d{1,15}$/.test(since)) throw bad(`since must be a version number, not ${JSON.stringify(since.slice(0, 40))}`);
  const { version, json } = ctx.watch.currentJson();
  if (since !== undefined && Number(since) === version) return { status: 204, headers: { 'cache-control': 'no-store', ...SECURITY }, body: '' };
  return jsonReply(200, json);
}

function image(ctx: RouteContext, query: URLSearchParams): Reply {
  only(query, ['name']);
  const name = one(query, 'name');
  if (!name) throw bad('name= names the image');
  if (name.length > 128) throw bad('an image name is at most 128 characters');
  // Names starting with '.' are strata's own (an import under way): never shown, so never found.
  if (name.startsWith('.')) throw new StrataError('E_NOT_FOUND', `no image named ${name}`);
  return jsonReply(200, ctx.watch.detail(name));
}

export function route(ctx: RouteContext, method: string, target: string): Reply {
  try {
    if (method !== 'GET' && method !== 'HEAD') {
      const r = errorReply(405, 'E_BAD_INPUT', `${method} is not allowed: the page only reads`);
      r.headers.allow = 'GET, HEAD';
      return r;
    }
    const { path, query } = parseTarget(target);
    if (path === '/api/state') return state(ctx, query);
    if (path === '/api/image') return image(ctx, query);
    const asset = ctx.assets.get(path);
    if (asset && !path.startsWith('/api/')) {
      only(query, []);
      return { status: 200, headers: { 'content-type': asset.type, 'cache-control': 'no-cache', ...SECURITY }, body: asset.body };
    }
    return errorReply(404, 'E_NOT_FOUND', `no such path ${JSON.stringify(path.slice(0, 100))}`);
  } catch (e) {
    if (isStrataError(e) && STATUS_OF[e.code]) return errorReply(STATUS_OF[e.code]!, e.code, e.message);
    ctx.onError(e);
    const code: ErrorCode = isStrataError(e) ? e.code : 'E_INTERNAL';
    return errorReply(500, code, isStrataError(e) ? e.message : `internal error: ${(e as Error)?.message ?? String(e)}`);
  }
}
