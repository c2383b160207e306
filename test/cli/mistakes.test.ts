/**
 * Ordinary mistakes get a typed error: one line naming the thing and the
 * fix, and an exit status from the README's table, never "internal error".
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataOk } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';
import { requireTool, runOk } from '../helpers/tools.js';

/** Exactly one line on stderr, `strata: ` and then `message`. */
function expectError(r: { status: number; stderr: string }, status: number, message: string) {
  expect(r.stderr).toBe(`strata: ${message}\n`);
  expect(r.status).toBe(status);
}

describe('ordinary mistakes are typed errors', () => {
  let store: string;
  beforeAll(() => {
    store = fs.mkdtempSync('/tmp/strata-mistakes-');
    strataOk(store, ['create', 'a', '--size', '1M']);
  });
  afterAll(() => fs.rmSync(store, { recursive: true, force: true }));

  it('a TCP port another process listens on: E_BUSY naming it and the fix', async () => {
    const other = net.createServer();
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const port = (other.address() as net.AddressInfo).port;
    try {
      const r = strata(store, ['serve', '--listen', `127.0.0.1:${port}`]);
      expectError(r, ERROR_CODES.E_BUSY, `127.0.0.1:${port} is in use by another process: stop it, or serve on another port (--listen HOST:PORT)`);
    } finally {
      other.close();
    }
  });

  it('a socket in a missing directory, too long a socket path, a file in the way of the socket', () => {
    const dir = tmpDir();
    let r = strata(store, ['serve', '--socket', path.join(dir, 'nodir', 's.sock')]);
    expectError(r, ERROR_CODES.E_NOT_FOUND, `cannot create socket ${path.join(dir, 'nodir', 's.sock')}: no such directory ${path.join(dir, 'nodir')} (create it first)`);

    const long = path.join(dir, 'x'.repeat(120));
    r = strata(store, ['serve', '--socket', long]);
    expectError(r, ERROR_CODES.E_BAD_INPUT, `socket path ${long} is ${long.length} bytes long, over the 107 a Unix socket allows: use a shorter path`);
    expect(fs.readdirSync(dir)).toEqual([]); // no socket under a cut-off name either

    // A regular file at the socket's path is someone's data: refused, and left alone.
    const file = path.join(dir, 'notes.txt');
    fs.writeFileSync(file, 'keep me');
    r = strata(store, ['serve', '--socket', file]);
    expectError(r, ERROR_CODES.E_EXISTS, `${file} exists and is not a socket: choose another socket path`);
    expect(fs.readFileSync(file, 'utf8')).toBe('keep me');
  });

  it('a directory where a file is expected: write and export say so', () => {
    const dir = tmpDir();
    let r = strata(store, ['write', 'a', `${dir}/`]);
    expectError(r, ERROR_CODES.E_BAD_INPUT, `${dir}/ is a directory: give a file to write, or - for stdin`);
    r = strata(store, ['export', 'a', dir]);
    expectError(r, ERROR_CODES.E_BAD_INPUT, `${dir} is a directory: give the file to write, such as ${path.join(dir, 'a.raw')}`);
    r = strata(store, ['export', 'a', dir, '--format', 'qcow2']);
    expectError(r, ERROR_CODES.E_BAD_INPUT, `${dir} is a directory: give the file to write, such as ${path.join(dir, 'a.qcow2')}`);
    // And a file in a directory that is not there.
    r = strata(store, ['export', 'a', path.join(dir, 'nodir', 'a.raw')]);
    expectError(r, ERROR_CODES.E_NOT_FOUND, `cannot create ${path.join(dir, 'nodir', 'a.raw')}: no such directory ${path.join(dir, 'nodir')} (create it first)`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('a zero rate limit: E_BAD_INPUT naming the option', () => {
    const r = strata(store, ['serve', '--iops-limit', '0', '--socket', path.join(tmpDir(), 's.sock')]);
    expectError(r, ERROR_CODES.E_BAD_INPUT, '--iops-limit must be above 0 (leave it out for no limit)');
  });

  it('an unknown --log-level: E_BAD_INPUT listing the levels', () => {
    const r = strata(store, ['--log-level', 'verbose', 'ls']);
    expectError(r, ERROR_CODES.E_BAD_INPUT, 'invalid --log-level "verbose": use debug, info, warn or error (or trace, fatal, silent)');
  });

  it('a store path that is a file: init and create name it, nothing is created', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'store');
    fs.writeFileSync(file, '');
    for (const args of [['init'], ['create', 'x', '--size', '1M']]) {
      const r = strata(file, args);
      expectError(r, ERROR_CODES.E_BAD_INPUT, `store path ${file} is a file, not a strata store directory (give --store a directory, or a path to create one)`);
    }
    const r = strata(path.join(file, 'sub'), ['init']);
    expectError(r, ERROR_CODES.E_BAD_INPUT, `store path ${path.join(file, 'sub')} is inside ${file}, which is a file, not a directory (give --store a directory, or a path to create one)`);
    expect(fs.readdirSync(dir)).toEqual(['store']);
    expect(fs.statSync(file).size).toBe(0);
  });

  it.runIf(requireTool('openssl'))('bad TLS files: each named, with what it should hold', async () => {
    const dir = tmpDir();
    const pem = (n: string) => path.join(dir, n);
    for (const n of ['1', '2']) {
      await runOk('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-keyout', pem(`key${n}.pem`), '-out', pem(`cert${n}.pem`), '-subj', `/CN=t${n}`]);
    }
    fs.writeFileSync(pem('junk.pem'), 'not a certificate\n');
    const serve = (...tls: string[]) => strata(store, ['serve', '--socket', pem('s.sock'), ...tls]);
    expectError(
      serve('--tls-cert', pem('junk.pem'), '--tls-key', pem('key1.pem')),
      ERROR_CODES.E_BAD_INPUT,
      `${pem('junk.pem')} is not a PEM certificate (PEM routines::no start line): --tls-cert takes a file starting -----BEGIN CERTIFICATE-----`,
    );
    let r = serve('--tls-cert', pem('cert1.pem'), '--tls-key', pem('junk.pem'));
    expect(r.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(r.stderr).toMatch(new RegExp(`^strata: ${pem('junk.pem')} is not a PEM private key \\(.*\\): --tls-key takes an unencrypted key starting -----BEGIN PRIVATE KEY-----\\n$`));
    r = serve('--tls-cert', pem('cert1.pem'), '--tls-key', pem('key2.pem'));
    expect(r.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(r.stderr).toMatch(new RegExp(`^strata: the TLS key ${pem('key2.pem')} does not belong to the certificate ${pem('cert1.pem')} \\(.*mismatch\\)\\n$`));
    expectError(
      serve('--tls-cert', pem('cert1.pem'), '--tls-key', pem('key1.pem'), '--tls-ca', pem('junk.pem')),
      ERROR_CODES.E_BAD_INPUT,
      `${pem('junk.pem')} holds no PEM certificate: --tls-ca takes the CA certificates that sign client certificates`,
    );
    expectError(serve('--tls-cert', pem('missing.pem'), '--tls-key', pem('key1.pem')), ERROR_CODES.E_NOT_FOUND, `no such file: ${pem('missing.pem')} (the TLS certificate)`);
    expectError(serve('--tls-ca', pem('cert1.pem')), ERROR_CODES.E_BAD_INPUT, '--tls-ca goes with --tls-cert and --tls-key');
    expect(fs.existsSync(pem('s.sock'))).toBe(false);
  });
});
