/**
 * Open exports, shared by name.
 *
 * Each export name maps to at most one open BlockDevice, whatever the number
 * of connections using it. That is what makes NBD_FLAG_CAN_MULTI_CONN true:
 * a flush on any connection flushes the one device all of them write to.
 * The device is opened by the first connection and flushed and closed when
 * the last one goes. The rate limiter lives here too, because limits are per
 * export, not per connection.
 */
import type { BlockDevice } from '../image/device.js';
import { notFound } from '../errors.js';
import { RateLimiter, type RateLimits } from './limits.js';
import type { Logger } from '../log.js';

export interface ExportEntry {
  name: string;
  description?: string;
  /** Frozen images this export offers a `qemu:dirty-bitmap:` context against (the opened device's changeTrackers). */
  bitmaps?: readonly string[];
}

export interface ExportCatalog {
  list(): ExportEntry[];
  /** Opens (or throws StrataError E_NOT_FOUND / E_BUSY). Called once per export name; the server shares one device among all connections to that name and closes it when the last one goes. */
  open(name: string): BlockDevice;
}

export interface SharedExport {
  readonly name: string;
  readonly device: BlockDevice;
  readonly limiter: RateLimiter | null;
  refs: number;
}

export class ExportRegistry {
  private readonly open = new Map<string, SharedExport>();

  constructor(
    private readonly catalog: ExportCatalog,
    private readonly limits: RateLimits,
    private readonly logger: Logger,
  ) {}

  list(): ExportEntry[] {
    return this.catalog.list();
  }

  /**
   * The empty name is NBD's "default export"; strata has none unless the
   * catalog offers exactly one export, which is then the obvious default.
   */
  resolveName(name: string): string {
    if (name !== '') return name;
    const all = this.catalog.list();
    if (all.length === 1) return all[0].name;
    throw notFound('no default export: name one of the exports');
  }

  acquire(requested: string): SharedExport {
    const name = this.resolveName(requested);
    let exp = this.open.get(name);
    if (!exp) {
      const device = this.catalog.open(name);
      exp = { name, device, limiter: RateLimiter.needed(this.limits) ? new RateLimiter(this.limits) : null, refs: 0 };
      this.open.set(name, exp);
      this.logger.debug({ export: name, size: device.size, readOnly: device.readOnly }, 'export opened');
    }
    exp.refs++;
    return exp;
  }

  release(exp: SharedExport): void {
    exp.refs--;
    if (exp.refs > 0 || this.open.get(exp.name) !== exp) return;
    this.open.delete(exp.name);
    this.closeDevice(exp);
  }

  /** Server shutdown, first step: requests waiting on a rate limit fail with ESHUTDOWN now. */
  stopLimiters(): void {
    for (const exp of this.open.values()) exp.limiter?.shutdown(new Error('server shutting down'));
  }

  /** Server shutdown: flush and close every open device, whoever still holds it. */
  closeAll(): void {
    for (const exp of this.open.values()) this.closeDevice(exp);
    this.open.clear();
  }

  private closeDevice(exp: SharedExport): void {
    exp.limiter?.shutdown(new Error('export closed'));
    try {
      if (!exp.device.readOnly) exp.device.flush();
    } catch (e) {
      this.logger.error({ export: exp.name, err: e }, 'flush on close failed');
    }
    try {
      exp.device.close();
    } catch (e) {
      this.logger.error({ export: exp.name, err: e }, 'close failed');
    }
    this.logger.debug({ export: exp.name }, 'export closed');
  }
}
