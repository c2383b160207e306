/**
 * The PEM files behind `serve --tls-cert/--tls-key/--tls-ca`, read and
 * checked before the server starts, so a wrong file is named in one line
 * instead of surfacing as an OpenSSL error string.
 */
import fs from 'node:fs';
import * as tls from 'node:tls';
import { StrataError, badInput } from '../errors.js';

export interface TlsFiles {
  cert: string;
  key: string;
  ca?: string;
}

export interface TlsPem {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

function readPem(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new StrataError('E_NOT_FOUND', `no such file: ${file} (the ${what})`, { file });
    if (code === 'EISDIR') throw badInput(`${file} is a directory: give the ${what} file`, { file });
    throw new StrataError('E_IO', `cannot read the ${what} ${file}: ${code}`, { file });
  }
}

/** Whether OpenSSL accepts `opts`; its complaint when not. */
function rejects(opts: tls.SecureContextOptions): string | undefined {
  try {
    tls.createSecureContext(opts);
    return undefined;
  } catch (e) {
    return (e as Error).message.replace(/^error:[0-9A-F]+:/, '');
  }
}

export function readTlsFiles(files: TlsFiles): TlsPem {
  const cert = readPem(files.cert, 'TLS certificate');
  const key = readPem(files.key, 'TLS key');
  const ca = files.ca === undefined ? undefined : readPem(files.ca, 'TLS CA bundle');
  let why = rejects({ cert });
  if (why) throw badInput(`${files.cert} is not a PEM certificate (${why}): --tls-cert takes a file starting -----BEGIN CERTIFICATE-----`, { file: files.cert });
  why = rejects({ key });
  if (why) throw badInput(`${files.key} is not a PEM private key (${why}): --tls-key takes an unencrypted key starting -----BEGIN PRIVATE KEY-----`, { file: files.key });
  why = rejects({ cert, key });
  if (why) throw badInput(`the TLS key ${files.key} does not belong to the certificate ${files.cert} (${why})`, { file: files.key });
  // OpenSSL ignores a CA bundle with no certificate in it; clients would then all be refused.
  if (ca && (!ca.includes('-----BEGIN CERTIFICATE-----') || rejects({ ca }))) {
    throw badInput(`${files.ca} holds no PEM certificate: --tls-ca takes the CA certificates that sign client certificates`, { file: files.ca });
  }
  return { cert, key, ca };
}
