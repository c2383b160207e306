/**
 * Several processes mutating one store at once: three CLI workers, each on
 * its own images (write, snapshot, clone, write the clone, rm it, read back),
 * and a `strata serve` process whose leaf an NBD client writes and flushes.
 * Every command must succeed (no SQLITE_BUSY or E_BUSY reaches a user), and
 * afterwards every image reads exactly its worker's model; check is clean.
 */
import { describe, expect, it } from 'vitest';
import { openImage } from '../../src/image/image.js';
import { CMD } from '../../src/nbd/protocol.js';
import { listImages } from '../../src/store/images/catalog.js';
import { openStore } from '../../src/store/core/store.js';
import { strata, strataAsync, strataOk } from '../helpers/cli.js';
import { auditStore } from '../helpers/consistency.js';
import { RawClient } from '../helpers/nbd-raw-client.js';
import { rng } from '../helpers/random.js';
import { startServe } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';

const SIZE = 1 << 20;
const DURATION_MS = 15_000;
const WORKERS = 3;

const cli = strataAsync;

describe('concurrency', () => {
  it(`${WORKERS} CLI workers and an NBD writer on one store for ${DURATION_MS / 1000} s: nothing lost, no busy errors`, async () => {
    const store = tmpDir();
    const models = new Map<string, Buffer>();
    for (let w = 0; w < WORKERS; w++) {
      strataOk(store, ['create', `w${w}`, '--size', String(SIZE)]);
      models.set(`w${w}`, Buffer.alloc(SIZE));
    }
    strataOk(store, ['create', 'served', '--size', String(SIZE)]);
    models.set('served', Buffer.alloc(SIZE));
    const server = await startServe(store, ['served']);
    const sock = server.socketPath;

    const deadline = Date.now() + DURATION_MS;
    const failures: string[] = [];
    let completed = 0;
    const ok = async (args: string[], input?: Buffer) => {
      const r = await cli(store, args, { input });
      if (r.status !== 0) failures.push(`${args.join(' ')} → ${r.status}: ${r.err}`);
      else completed++;
      return r;
    };

    const worker = async (w: number) => {
      const r = rng(1000 + w);
      const leaf = `w${w}`;
      const clones: string[] = [];
      let snaps = 0;
      while (Date.now() < deadline && failures.length === 0) {
        const dice = r.int(10);
        if (dice < 5) {
          const target = clones.length > 0 && r.int(2) === 0 ? r.pick(clones) : leaf;
          const len = 1 + r.int(40_000);
          const off = r.int(SIZE - len);
          const data = r.int(3) === 0 ? Buffer.alloc(len, 0x20 + w) : r.bytes(len);
          await ok(['write', target, '--offset', String(off)], data);
          data.copy(models.get(target)!, off);
        } else if (dice < 6) {
          const snap = `s${++snaps}`;
          await ok(['snapshot', leaf, snap]);
          models.set(`${leaf}@${snap}`, Buffer.from(models.get(leaf)!));
        } else if (dice < 8) {
          const name = `${leaf}-c${completed}-${r.int(1e6)}`;
          await ok(['clone', leaf, name]); // snapshots the leaf first: leaf@snapN
          models.set(name, Buffer.from(models.get(leaf)!));
          clones.push(name);
        } else if (dice < 9 && clones.length > 0) {
          const name = clones.splice(r.int(clones.length), 1)[0];
          await ok(['rm', name]);
          models.delete(name);
        } else {
          const target = clones.length > 0 && r.int(2) === 0 ? r.pick(clones) : leaf;
          const got = await ok(['read', target]);
          if (got.status === 0 && !got.out.equals(models.get(target)!)) failures.push(`read ${target}: content differs from the model`);
        }
      }
    };

    let nbdWrites = 0;
    const nbdWriter = async () => {
      const r = rng(77);
      const c = await RawClient.open(sock, 'served');
      const model = models.get('served')!;
      while (Date.now() < deadline && failures.length === 0) {
        const len = 4096 * (1 + r.int(16));
        const off = 512 * r.int((SIZE - len) / 512);
        const data = r.bytes(len);
        const w = await c.call(CMD.WRITE, off, len, 0, data);
        if (w.error !== 0) failures.push(`nbd write → ${w.error}`);
        data.copy(model, off);
        nbdWrites++;
        if (nbdWrites % 4 === 0 && (await c.call(CMD.FLUSH, 0, 0)).error !== 0) failures.push('nbd flush failed');
      }
      await c.call(CMD.FLUSH, 0, 0);
      c.close();
    };

    await Promise.all([...Array.from({ length: WORKERS }, (_, w) => worker(w)), nbdWriter()]);
    await server.stop('SIGTERM');
    expect(failures).toEqual([]);
    expect(server.stderr).not.toMatch(/BUSY|locked|error/i);

    // Snapshots made by clone (leaf@snapN) read what the leaf read then; their content is checked through the clones.
    const s = await openStore(store, { create: false });
    try {
      const names = listImages(s).map((i) => i.name);
      for (const [name, model] of models) {
        expect(names, name).toContain(name);
        const img = openImage(s, name);
        expect(img.read(0, SIZE).equals(model), `${name} differs from its model`).toBe(true);
        img.close();
      }
      expect(auditStore(s)).toEqual([]);
    } finally {
      s.close();
    }
    expect(strata(store, ['check']).status).toBe(0);
    console.log(`concurrency: ${completed} CLI operations and ${nbdWrites} NBD writes completed by ${WORKERS + 1} processes in ${DURATION_MS / 1000} s, ${models.size} images verified, nothing lost`);
  }, 90_000);
});
