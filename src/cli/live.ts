/**
 * Operations on a leaf that a server may be writing. Run here when nobody
 * writes it; when a server does, its lease names a control socket and the
 * server does the work itself, between two of its writes (nbd/control.ts).
 */
import { StrataError, badInput } from '../errors.js';
import type { ControlRequest } from '../nbd/control.js';
import { openImage, type Image } from '../image/image.js';
import { dropViewIfUnused, keepView, makeLocalView } from '../image/views.js';
import { assertNameFree } from '../store/images/index.js';
import { resolveImage } from '../image/refs.js';
import { leaseTx, releaseLease } from '../store/leases/index.js';
import { imageName, isFrozen } from '../store/core/index.js';
import type { Store } from '../store/core/index.js';

export async function orAskServer<T>(local: () => T, req: ControlRequest): Promise<T> {
  try {
    return local();
  } catch (e) {
    const control = e instanceof StrataError && e.code === 'E_BUSY' ? e.data.control : undefined;
    if (typeof control !== 'string') throw e;
    // Loaded only here: node:net costs every other command start-up time.
    const { askHolder } = await import('../nbd/control.js');
    try {
      return (await askHolder(control, req)) as T;
    } catch (e2) {
      // The server closed the image between our look and its answer (an export opened on demand
      // whose last client left): nobody writes it now, so it can be done here after all.
      if (e2 instanceof StrataError && e2.code === 'E_NOT_FOUND' && /^this server does not write image /.test(e2.message)) return local();
      throw e2;
    }
  }
}

/** Where the bytes a copy (export, read) reads come from, as its output says. */
export type CopySource =
  | { kind: 'image' }
  | { kind: 'server-snapshot'; serverPid: number; keptAs: string | null }
  | { kind: 'snapshot'; keptAs: string | null }
  | { kind: 'shared' };

/** The sentence the human output adds about a copy's source; undefined where there is nothing to say. */
export function sourceText(s: CopySource): string | undefined {
  const kept = (k: string | null) => (k ? `, kept as ${k}` : '');
  if (s.kind === 'server-snapshot') return `a point-in-time snapshot taken through strata serve (pid ${s.serverPid})${kept(s.keptAs)}`;
  if (s.kind === 'snapshot') return `a point-in-time snapshot${kept(s.keptAs)}`;
  if (s.kind === 'shared') return 'read with --shared: writes made during the read may show in part';
  return undefined;
}

export interface CopyHandle {
  img: Image;
  source: CopySource;
  /** Closes the image; a view is dropped, or (ok, with keep) takes the kept name. */
  done(ok: boolean): void;
}

const SHARED_HINT = 'pass --shared to read it as it changes (the copy may mix data from before and after writes made during the read)';

/**
 * Opens an image to copy whole or in part, so that the copy is one point in
 * time. A leaf a server writes is read through a view the server takes
 * between two of its requests (after a flush); a leaf another process writes
 * without a control socket is refused. `shared` reads the image as it is,
 * as qemu-img's -U does; `keep` keeps the view under that name.
 */
export async function openForCopy(store: Store, name: string, opts: { shared?: boolean; keep?: string } = {}): Promise<CopyHandle> {
  if (opts.shared && opts.keep !== undefined) throw badInput('--keep names a point-in-time snapshot, and --shared reads without one: give one of them');
  if (opts.keep !== undefined) assertNameFree(store, imageName(opts.keep));
  const rec = resolveImage(store, name);
  const direct = (source: CopySource): CopyHandle => {
    const img = openImage(store, name, { refuseWriter: source.kind !== 'shared' });
    return { img, source, done: () => img.close() };
  };
  if (opts.shared) return direct({ kind: 'shared' });
  if (isFrozen(rec)) {
    if (opts.keep !== undefined) throw badInput(`image ${name} is frozen (${rec.kind}) already: export it as it is, without --keep`, { image: name });
    return direct({ kind: 'image' });
  }
  if (store.readOnly) return direct({ kind: 'image' });
  for (let tries = 0; ; tries++) {
    try {
      if (opts.keep === undefined) return direct({ kind: 'image' });
      const { view, lease } = leaseTx(store, (take, tx) => makeLocalView(store, tx, name, take), { durable: true });
      try {
        return viewHandle(store, view.name, { kind: 'snapshot', keptAs: opts.keep }, opts.keep);
      } finally {
        releaseLease(store, lease);
      }
    } catch (e) {
      if (!(e instanceof StrataError) || e.code !== 'E_BUSY' || typeof e.data.pid !== 'number') throw e;
      const control = e.data.control;
      if (typeof control !== 'string') {
        throw new StrataError('E_BUSY', `image ${name} is being written by process ${e.data.pid}, which cannot take a point-in-time snapshot; stop it, or ${SHARED_HINT}`, e.data);
      }
      const { askAndHold } = await import('../nbd/control.js');
      let held: Awaited<ReturnType<typeof askAndHold>>;
      try {
        held = await askAndHold(control, { op: 'view', image: name });
      } catch (e2) {
        // The server closed the image between our look and its answer: look again.
        if (e2 instanceof StrataError && e2.code === 'E_NOT_FOUND' && /^this server does not write image /.test(e2.message) && tries < 3) continue;
        if (e2 instanceof StrataError && e2.code === 'E_BUSY') throw new StrataError('E_BUSY', `${e2.message}; or ${SHARED_HINT}`, { ...e.data, ...e2.data });
        throw e2;
      }
      // Opened (our own lease) before hanging up, on which the server lets go of it.
      try {
        const r = held.result as { view: string; pid: number };
        return viewHandle(store, r.view, { kind: 'server-snapshot', serverPid: r.pid, keptAs: opts.keep ?? null }, opts.keep);
      } finally {
        held.release();
      }
    }
  }
}

function viewHandle(store: Store, viewName: string, source: CopySource, keep: string | undefined): CopyHandle {
  const img = openImage(store, viewName);
  return {
    img,
    source,
    done(ok) {
      img.close();
      if (ok && keep !== undefined) keepView(store, img.record, keep);
      else dropViewIfUnused(store, img.record);
    },
  };
}
