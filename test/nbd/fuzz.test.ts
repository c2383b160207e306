/**
 * A seeded protocol fuzzer: truncated handshakes, wrong magics, oversized
 * option and request lengths, out-of-range offsets, random commands and
 * flags, requests after DISC. Bounded in count and time, Unix socket only.
 * The server must survive all of it, release every export, and still serve
 * a well-behaved client afterwards.
 */
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CMD,
  FLAG_C_FIXED_NEWSTYLE,
  FLAG_C_NO_ZEROES,
  IHAVEOPT,
  OPT,
  encodeRequestHeader,
} from '../../src/nbd/protocol.js';
import { MemoryDevice } from '../helpers/memory-device.js';
import { startFixture, type Fixture } from '../helpers/nbd-fixture.js';
import { RawClient } from '../helpers/nbd-raw-client.js';
import { rng } from '../helpers/random.js';
import { waitUntil } from '../helpers/wait.js';

const SEED = Number(process.env.NBD_FUZZ_SEED ?? 20240611);
const CASES = 240;
const PARALLEL = 8;
const MAX_PAYLOAD = 256 * 1024;
const DEVICE_SIZE = 4 * 1024 * 1024;

type Rng = ReturnType<typeof rng>;

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};

function option(opt: number, data: Buffer, declared = data.length, magic = IHAVEOPT): Buffer {
  const h = Buffer.alloc(16);
  h.writeBigUInt64BE(magic, 0);
  h.writeUInt32BE(opt >>> 0, 8);
  h.writeUInt32BE(declared >>> 0, 12);
  return Buffer.concat([h, data]);
}

const clientFlags = u32(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES);
const goDisk = option(OPT.GO, RawClient.goData('disk'));

function randomRequest(r: Rng): Buffer {
  const type = r.pick([CMD.READ, CMD.WRITE, CMD.FLUSH, CMD.TRIM, CMD.CACHE, CMD.WRITE_ZEROES, CMD.BLOCK_STATUS, 8, 200, 0xffff]);
  const offset = r.pick([0n, BigInt(r.int(DEVICE_SIZE)), BigInt(DEVICE_SIZE), BigInt(DEVICE_SIZE - 1), 2n ** 63n, 2n ** 64n - 1n]);
  const length = r.pick([0, 1, 512, 4096, r.int(70_000), MAX_PAYLOAD, MAX_PAYLOAD + 1, 0xffffffff]);
  const flags = r.next() < 0.7 ? 0 : r.int(0x10000);
  const handle = r.bytes(8);
  const head = encodeRequestHeader({ type, flags, handle, offset, length, magic: r.next() < 0.03 ? r.int(2 ** 32) : undefined });
  if (type !== CMD.WRITE) return head;
  // Sometimes send the whole payload, sometimes a truncated one.
  const send = length <= 70_000 ? (r.next() < 0.8 ? length : r.int(length + 1)) : r.int(1024);
  return Buffer.concat([head, Buffer.alloc(send, 0xa5)]);
}

/** One fuzz case: the bytes one connection sends, chosen from the seed. */
function fuzzCase(r: Rng): Buffer[] {
  const kind = r.int(9);
  switch (kind) {
    case 0: // truncated handshake
      return [Buffer.concat([clientFlags, goDisk]).subarray(0, r.int(4 + goDisk.length))];
    case 1: // unknown client flags
      return [u32(r.int(2 ** 32) | 4), goDisk];
    case 2: // wrong option magic
      return [clientFlags, option(OPT.GO, RawClient.goData('disk'), undefined, BigInt(r.int(2 ** 32)))];
    case 3: // oversized or lying option lengths
      return [clientFlags, option(r.pick([OPT.GO, OPT.LIST, OPT.SET_META_CONTEXT, 77]), r.bytes(r.int(64)), r.pick([0xffffffff, 65 * 1024, 100]))];
    case 4: {
      // random options with random or malformed data
      const opts = Array.from({ length: 1 + r.int(6) }, () =>
        option(r.pick([OPT.INFO, OPT.GO, OPT.LIST, OPT.STRUCTURED_REPLY, OPT.LIST_META_CONTEXT, OPT.SET_META_CONTEXT, OPT.STARTTLS, r.int(2 ** 32)]), r.bytes(r.int(40))),
      );
      return [clientFlags, ...opts];
    }
    case 5: // EXPORT_NAME with a random name
      return [clientFlags, option(OPT.EXPORT_NAME, r.next() < 0.5 ? Buffer.from('disk') : r.bytes(r.int(30)))];
    default: {
      // a valid handshake, then a stream of random requests, maybe a DISC in the middle
      const parts = [clientFlags, option(OPT.STRUCTURED_REPLY, Buffer.alloc(0))];
      if (r.next() < 0.5) parts.push(option(OPT.SET_META_CONTEXT, RawClient.metaData('disk', ['base:allocation'])));
      parts.push(goDisk);
      const n = 1 + r.int(30);
      for (let i = 0; i < n; i++) {
        if (r.next() < 0.05) parts.push(encodeRequestHeader({ type: CMD.DISC, flags: 0, handle: r.bytes(8), offset: 0n, length: 0 }));
        else parts.push(randomRequest(r));
      }
      if (r.next() < 0.2) parts.push(r.bytes(r.int(200)));
      return parts;
    }
  }
}

/** Sends the case, reads whatever comes back, and hangs up by a deadline. */
function playCase(path: string, parts: Buffer[], r: Rng): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ path });
    const finish = () => {
      clearTimeout(timer);
      s.destroy();
      resolve();
    };
    const timer = setTimeout(finish, 150 + r.int(150));
    s.on('error', finish);
    s.on('close', finish);
    s.on('data', () => {});
    s.once('connect', () => {
      for (const p of parts) s.write(p);
      if (r.next() < 0.5) s.end(); // half-close: the server sees EOF mid-stream
    });
  });
}

let fx: Fixture | null = null;
afterEach(async () => {
  await fx?.close();
  fx = null;
});

describe('protocol fuzzer', () => {
  it(`survives ${CASES} seeded malformed sessions (seed ${SEED}) and still serves`, async () => {
    const dev = new MemoryDevice(DEVICE_SIZE);
    fx = await startFixture({ disk: dev }, { maxPayload: MAX_PAYLOAD });
    const r = rng(SEED);
    const started = performance.now();
    for (let i = 0; i < CASES; i += PARALLEL) {
      const batch = [];
      for (let j = 0; j < PARALLEL && i + j < CASES; j++) batch.push(playCase(fx.socketPath, fuzzCase(r), r));
      await Promise.all(batch);
      if (performance.now() - started > 45_000) break; // bounded time, whatever the machine
    }

    // Every connection is gone, so the shared device must have been released.
    await waitUntil('the server to close the shared device after the last fuzz connection', () => dev.closed);

    const c = await RawClient.open(fx.socketPath, 'disk', { structured: true });
    try {
      expect((await c.call(CMD.WRITE, 4096, 5, 0, Buffer.from('alive'))).error).toBe(0);
      const back = await c.call(CMD.READ, 4096, 5);
      expect(back.data!.toString()).toBe('alive');
    } finally {
      c.close();
    }
  });
});
