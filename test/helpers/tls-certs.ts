/**
 * A self-signed server certificate for TLS tests, made by openssl: the
 * certificate is its own CA, copied as ca-cert.pem into a client directory
 * that libnbd (tls-certificates=, or $HOME/.pki/libnbd) and qemu's
 * tls-creds-x509 (dir=) both read. Removed after the file's tests.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runOk } from './tools.js';

export interface TlsCerts {
  dir: string;
  /** Holds ca-cert.pem. */
  clientDir: string;
  certFile: string;
  keyFile: string;
  remove(): void;
}

export async function makeTlsCerts(): Promise<TlsCerts> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-tls-'));
  const clientDir = join(dir, 'client');
  mkdirSync(clientDir);
  const certFile = join(dir, 'server-cert.pem');
  const keyFile = join(dir, 'server-key.pem');
  await runOk('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
    '-keyout', keyFile, '-out', certFile,
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { timeoutMs: 60_000 });
  copyFileSync(certFile, join(clientDir, 'ca-cert.pem'));
  return { dir, clientDir, certFile, keyFile, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
