/**
 * The fixed newstyle handshake: greeting, client flags, then option haggling
 * until the client picks an export (NBD_OPT_GO / NBD_OPT_EXPORT_NAME) or
 * leaves (NBD_OPT_ABORT, EOF).
 *
 * Mode: NOTLS without `tls`, FORCEDTLS with it (every option but STARTTLS
 * and ABORT gets NBD_REP_ERR_TLS_REQD until TLS is up).
 */
import type { SecureContext } from 'node:tls';
import { StrataError, isStrataError } from '../errors.js';
import type { Channel } from './channel.js';
import type { ExportRegistry, SharedExport } from './exports.js';
import type { Logger } from '../log.js';
import { bindContexts, offeredContexts, selectContexts, type BoundContext, type MetaContext } from './meta-contexts.js';
import {
  FLAG_C_FIXED_NEWSTYLE,
  FLAG_C_NO_ZEROES,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  IHAVEOPT,
  INFO,
  MAX_STRING,
  OPT,
  OPTION_HEADER_SIZE,
  REP,
  TFLAG,
  decodeOptionHeader,
  encodeExportNameReply,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoString,
  encodeMetaContext,
  encodeOptionReply,
  encodeServerEntry,
  encodeServerGreeting,
} from './protocol.js';

/** Larger option payloads are not a real client: drop rather than buffer them. */
export const MAX_OPTION_LENGTH = 64 * 1024;
/** Options per connection before we call it a denial of service. */
const MAX_OPTIONS = 1024;

export interface HandshakeConfig {
  registry: ExportRegistry;
  maxPayload: number;
  tls: SecureContext | null;
  logger: Logger;
  isShuttingDown(): boolean;
}

/** What the handshake agreed on; the transmission phase runs on it. */
export interface Session {
  export: SharedExport;
  structuredReplies: boolean;
  /** The metadata contexts the client selected for this export (BLOCK_STATUS answers one chunk for each). */
  contexts: BoundContext[];
}

interface NegotiationState {
  noZeroes: boolean;
  tlsActive: boolean;
  structuredReplies: boolean;
  metaContext: { exportName: string; selected: MetaContext[] } | null;
}

function protocolError(message: string, data: Record<string, unknown> = {}): StrataError {
  return new StrataError('E_PROTOCOL', message, data);
}

export function transmissionFlags(readOnly: boolean, structuredReplies: boolean): number {
  let flags = TFLAG.HAS_FLAGS | TFLAG.SEND_FLUSH | TFLAG.SEND_FUA | TFLAG.SEND_CACHE | TFLAG.CAN_MULTI_CONN;
  // Like qemu-nbd: a read-only export does not advertise write-like commands
  // (they still get EPERM if sent).
  if (readOnly) flags |= TFLAG.READ_ONLY;
  else flags |= TFLAG.SEND_TRIM | TFLAG.SEND_WRITE_ZEROES | TFLAG.SEND_FAST_ZERO;
  if (structuredReplies) flags |= TFLAG.SEND_DF;
  return flags;
}

/** Runs the handshake. Resolves with a session, or null when the client ended it cleanly. */
export async function negotiate(ch: Channel, cfg: HandshakeConfig): Promise<Session | null> {
  ch.write(encodeServerGreeting(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES));
  const clientFlags = (await ch.reader.read(4)).readUInt32BE(0);
  if (clientFlags & ~(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) {
    throw protocolError('unknown client flags', { clientFlags });
  }
  const st: NegotiationState = {
    noZeroes: (clientFlags & FLAG_C_NO_ZEROES) !== 0,
    tlsActive: false,
    structuredReplies: false,
    metaContext: null,
  };

  for (let n = 0; n < MAX_OPTIONS; n++) {
    const head = decodeOptionHeader(await ch.reader.read(OPTION_HEADER_SIZE));
    if (head.magic !== IHAVEOPT) throw protocolError('bad option magic');
    if (head.length > MAX_OPTION_LENGTH) throw protocolError('option data too long', { length: head.length });
    const data = await ch.reader.read(head.length);
    const reply = (type: number, payload?: Buffer) => ch.write(encodeOptionReply(head.option, type, payload));
    const error = (type: number, message: string) => reply(type, Buffer.from(message, 'utf8'));

    if (cfg.isShuttingDown() && head.option !== OPT.ABORT) {
      if (head.option === OPT.EXPORT_NAME) throw protocolError('server shutting down');
      error(REP.ERR_SHUTDOWN, 'server is shutting down');
      continue;
    }
    if (cfg.tls && !st.tlsActive && head.option !== OPT.STARTTLS && head.option !== OPT.ABORT) {
      // EXPORT_NAME cannot carry an error: the only answer is to hang up.
      if (head.option === OPT.EXPORT_NAME) throw protocolError('EXPORT_NAME before STARTTLS');
      error(REP.ERR_TLS_REQD, 'TLS is required: send NBD_OPT_STARTTLS first');
      continue;
    }

    switch (head.option) {
      case OPT.ABORT:
        reply(REP.ACK);
        return null;

      case OPT.EXPORT_NAME: {
        const name = data.toString('utf8');
        let exp: SharedExport;
        try {
          exp = cfg.registry.acquire(name);
        } catch (e) {
          throw protocolError(`cannot open export ${JSON.stringify(name)}`, { cause: describe(e) });
        }
        const structured = st.structuredReplies;
        ch.write(encodeExportNameReply(exp.device.size, transmissionFlags(exp.device.readOnly, structured), st.noZeroes));
        return { export: exp, structuredReplies: structured, contexts: contextsFor(st, exp) };
      }

      case OPT.LIST: {
        if (data.length !== 0) {
          error(REP.ERR_INVALID, 'NBD_OPT_LIST takes no data');
          break;
        }
        for (const e of cfg.registry.list()) reply(REP.SERVER, encodeServerEntry(e.name, e.description));
        reply(REP.ACK);
        break;
      }

      case OPT.STARTTLS: {
        if (!cfg.tls) {
          error(REP.ERR_UNSUP, 'TLS is not configured on this server');
          break;
        }
        if (st.tlsActive || data.length !== 0) {
          error(REP.ERR_INVALID, st.tlsActive ? 'TLS is already active' : 'NBD_OPT_STARTTLS takes no data');
          break;
        }
        reply(REP.ACK);
        await ch.startTls(cfg.tls);
        // The spec forbids keeping state negotiated in clear text.
        st.tlsActive = true;
        st.structuredReplies = false;
        st.metaContext = null;
        break;
      }

      case OPT.INFO:
      case OPT.GO: {
        const session = goOrInfo(head.option, data, st, cfg, reply, error);
        if (session) return session;
        break;
      }

      case OPT.STRUCTURED_REPLY:
        if (data.length !== 0) {
          error(REP.ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
          break;
        }
        st.structuredReplies = true;
        reply(REP.ACK);
        break;

      case OPT.LIST_META_CONTEXT:
      case OPT.SET_META_CONTEXT:
        metaContext(head.option, data, st, cfg, reply, error);
        break;

      default:
        error(REP.ERR_UNSUP, `option ${head.option} is not supported`);
    }
  }
  throw protocolError('too many options');
}

/** Options a refused client may send (each answered with the refusal) before it is dropped. */
const MAX_REFUSED_OPTIONS = 16;

/**
 * The handshake of a connection the server will not serve (over its
 * connection limit): every option is answered with NBD_REP_ERR_POLICY and
 * `message`, which clients such as nbdinfo and qemu show their user when
 * their NBD_OPT_GO gets it (libnbd first sends options it can do without).
 * NBD_OPT_EXPORT_NAME cannot carry an error, so it only gets the hang-up.
 * Returns when the client gives up; the caller closes the connection.
 */
export async function refuseHandshake(ch: Channel, message: string): Promise<void> {
  ch.write(encodeServerGreeting(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES));
  await ch.reader.read(4);
  for (let n = 0; n < MAX_REFUSED_OPTIONS; n++) {
    const head = decodeOptionHeader(await ch.reader.read(OPTION_HEADER_SIZE));
    if (head.magic !== IHAVEOPT || head.option === OPT.EXPORT_NAME || head.length > MAX_OPTION_LENGTH) return;
    await ch.reader.skip(head.length);
    if (head.option === OPT.ABORT) {
      ch.write(encodeOptionReply(head.option, REP.ACK));
      return;
    }
    ch.write(encodeOptionReply(head.option, REP.ERR_POLICY, Buffer.from(message, 'utf8')));
  }
}

type Reply = (type: number, payload?: Buffer) => void;
type ErrorReply = (type: number, message: string) => void;

function describe(e: unknown): string {
  return isStrataError(e) ? `${e.code}: ${e.message}` : String(e);
}

/** What the last SET_META_CONTEXT selected, if it named this export. */
function contextsFor(st: NegotiationState, exp: SharedExport): BoundContext[] {
  return st.metaContext && st.metaContext.exportName === exp.name ? bindContexts(st.metaContext.selected, exp.device) : [];
}

/** Parses a length-prefixed string at `at`; null if it does not fit. */
function readString(data: Buffer, at: number, lengthBytes: 2 | 4): { value: string; next: number } | null {
  if (at + lengthBytes > data.length) return null;
  const len = lengthBytes === 4 ? data.readUInt32BE(at) : data.readUInt16BE(at);
  const start = at + lengthBytes;
  if (len > MAX_STRING || start + len > data.length) return null;
  return { value: data.toString('utf8', start, start + len), next: start + len };
}

function goOrInfo(
  option: number,
  data: Buffer,
  st: NegotiationState,
  cfg: HandshakeConfig,
  reply: Reply,
  error: ErrorReply,
): Session | null {
  const name = readString(data, 0, 4);
  if (!name || name.next + 2 > data.length) {
    error(REP.ERR_INVALID, 'malformed NBD_OPT_INFO/GO');
    return null;
  }
  const count = data.readUInt16BE(name.next);
  if (name.next + 2 + 2 * count !== data.length) {
    error(REP.ERR_INVALID, 'NBD_OPT_INFO/GO information request count does not match its length');
    return null;
  }
  const requested = new Set<number>();
  for (let i = 0; i < count; i++) requested.add(data.readUInt16BE(name.next + 2 + 2 * i));

  let exp: SharedExport;
  try {
    exp = cfg.registry.acquire(name.value);
  } catch (e) {
    if (isStrataError(e, 'E_NOT_FOUND')) error(REP.ERR_UNKNOWN, `export ${JSON.stringify(name.value)} not found`);
    else error(REP.ERR_POLICY, `export ${JSON.stringify(name.value)} unavailable: ${describe(e)}`);
    return null;
  }
  try {
    const { device } = exp;
    reply(REP.INFO, encodeInfoExport(device.size, transmissionFlags(device.readOnly, st.structuredReplies)));
    if (requested.has(INFO.NAME) || name.value !== exp.name) reply(REP.INFO, encodeInfoString(INFO.NAME, exp.name));
    if (requested.has(INFO.DESCRIPTION)) {
      const description = cfg.registry.list().find((e) => e.name === exp.name)?.description;
      if (description) reply(REP.INFO, encodeInfoString(INFO.DESCRIPTION, description));
    }
    // Always sent: our limits are the protocol defaults except the maximum,
    // which clients that did not ask still honour as a hint.
    reply(REP.INFO, encodeInfoBlockSize(1, 4096, cfg.maxPayload));
    reply(REP.ACK);
  } catch (e) {
    cfg.registry.release(exp);
    throw e;
  }
  if (option === OPT.INFO) {
    cfg.registry.release(exp);
    return null;
  }
  return { export: exp, structuredReplies: st.structuredReplies, contexts: contextsFor(st, exp) };
}

function metaContext(option: number, data: Buffer, st: NegotiationState, cfg: HandshakeConfig, reply: Reply, error: ErrorReply): void {
  const isSet = option === OPT.SET_META_CONTEXT;
  // SET replaces the selection even when it fails.
  if (isSet) st.metaContext = null;
  if (!st.structuredReplies) {
    error(REP.ERR_INVALID, 'negotiate NBD_OPT_STRUCTURED_REPLY first');
    return;
  }
  const name = readString(data, 0, 4);
  if (!name || name.next + 4 > data.length) {
    error(REP.ERR_INVALID, 'malformed meta context request');
    return;
  }
  const count = data.readUInt32BE(name.next);
  const queries: string[] = [];
  let at = name.next + 4;
  for (let i = 0; i < count; i++) {
    const q = readString(data, at, 4);
    if (!q) {
      error(REP.ERR_INVALID, 'meta context query runs past the option data');
      return;
    }
    queries.push(q.value);
    at = q.next;
  }
  if (at !== data.length) {
    error(REP.ERR_INVALID, 'trailing bytes after meta context queries');
    return;
  }
  let exportName: string;
  try {
    exportName = cfg.registry.resolveName(name.value);
  } catch {
    error(REP.ERR_UNKNOWN, 'no default export');
    return;
  }
  const entry = cfg.registry.list().find((e) => e.name === exportName);
  if (!entry) {
    error(REP.ERR_UNKNOWN, `export ${JSON.stringify(name.value)} not found`);
    return;
  }
  if (queries.some((q) => !q.includes(':'))) {
    error(REP.ERR_INVALID, 'a meta context query must start with a namespace and a colon');
    return;
  }
  // LIST answers with id 0: ids mean something only once SET selected them.
  const selected = selectContexts(offeredContexts(entry.bitmaps), queries, !isSet);
  for (const c of selected) reply(REP.META_CONTEXT, encodeMetaContext(isSet ? c.id : 0, c.name));
  if (isSet) st.metaContext = { exportName, selected };
  reply(REP.ACK);
}
