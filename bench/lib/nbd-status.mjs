/**
 * A minimal NBD client for timing NBD_CMD_BLOCK_STATUS: fixed newstyle
 * handshake, structured replies, one metadata context selected, then
 * requests one at a time. Only what the bench needs; no error recovery.
 */
import net from 'node:net';

const IHAVEOPT = 0x49484156454f5054n;
const OPT_GO = 7;
const OPT_STRUCTURED_REPLY = 8;
const OPT_SET_META_CONTEXT = 10;
const REP_ACK = 1;
const REP_META_CONTEXT = 4;
const CMD_BLOCK_STATUS = 7;

/** Buffers a socket's bytes and hands out exact-length reads. */
function reader(socket) {
  let buf = Buffer.alloc(0);
  let waiting = null;
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    if (waiting && buf.length >= waiting.n) {
      const w = waiting;
      waiting = null;
      w.resolve();
    }
  });
  socket.on('error', (e) => waiting?.reject(e));
  return async (n) => {
    if (buf.length < n) await new Promise((resolve, reject) => (waiting = { n, resolve, reject }));
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    return out;
  };
}

const u32 = (v) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};
const str = (s) => Buffer.concat([u32(Buffer.byteLength(s)), Buffer.from(s)]);

/** Connects to `exportName` on the Unix socket with `context` selected. */
export async function connectStatus(socketPath, exportName, context) {
  const socket = net.connect({ path: socketPath });
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const read = reader(socket);
  await read(18);
  socket.write(u32(3)); // fixed newstyle, no zeroes
  const option = async (opt, data) => {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(IHAVEOPT, 0);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(data.length, 12);
    socket.write(Buffer.concat([h, data]));
    const replies = [];
    for (;;) {
      const rh = await read(20);
      const r = { type: rh.readUInt32BE(12), data: await read(rh.readUInt32BE(16)) };
      if (r.type >= 0x80000000) throw new Error(`option ${opt} refused: ${r.data}`);
      replies.push(r);
      if (r.type === REP_ACK) return replies;
    }
  };
  await option(OPT_STRUCTURED_REPLY, Buffer.alloc(0));
  const set = await option(OPT_SET_META_CONTEXT, Buffer.concat([str(exportName), u32(1), str(context)]));
  if (!set.some((r) => r.type === REP_META_CONTEXT)) throw new Error(`the server does not offer ${context}`);
  await option(OPT_GO, Buffer.concat([str(exportName), Buffer.alloc(2)]));
  let handle = 0n;
  return {
    /** One BLOCK_STATUS; resolves with its descriptors as [length, flags] pairs. */
    async status(offset, length) {
      const h = Buffer.alloc(28);
      h.writeUInt32BE(0x25609513, 0);
      h.writeUInt16BE(CMD_BLOCK_STATUS, 6);
      h.writeBigUInt64BE(++handle, 8);
      h.writeBigUInt64BE(BigInt(offset), 16);
      h.writeUInt32BE(length, 24);
      socket.write(h);
      const out = [];
      for (;;) {
        const ch = await read(20);
        const flags = ch.readUInt16BE(4);
        const type = ch.readUInt16BE(6);
        const payload = await read(ch.readUInt32BE(16));
        if (type & 0x8000) throw new Error(`block status failed: error ${payload.readUInt32BE(0)}`);
        for (let at = 4; at < payload.length; at += 8) out.push([payload.readUInt32BE(at), payload.readUInt32BE(at + 4)]);
        if (flags & 1) return out;
      }
    },
    close: () => socket.destroy(),
  };
}
