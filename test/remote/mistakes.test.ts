// Mistakes with remotes: each a typed error with its stable code and exit status, one line.
import { describe, expect, it } from 'vitest';
import { strata, strataOk } from '../helpers/cli.js';
import { freshBucket, haveRgw, rgw } from '../helpers/rgw.js';
import { tmpDir } from '../helpers/tmp.js';

const err = (r: { status: number; stderr: string }) => ({ status: r.status, code: JSON.parse(r.stderr).error as string });

describe('remote mistakes without S3', () => {
  it('bad URLs, names and endpoints are E_BAD_INPUT; unknown remotes E_NOT_FOUND', () => {
    const s = tmpDir();
    strataOk(s, ['init']);
    expect(err(strata(s, ['--json', 'remote', 'add', 'fleet', 'http://bucket']))).toEqual({ status: 2, code: 'E_BAD_INPUT' });
    expect(err(strata(s, ['--json', 'remote', 'add', '../x', 's3://bucket']))).toEqual({ status: 2, code: 'E_BAD_INPUT' });
    expect(err(strata(s, ['--json', 'remote', 'add', 'fleet', 's3://bucket', '--endpoint', 'ftp://x']))).toEqual({ status: 2, code: 'E_BAD_INPUT' });
    expect(err(strata(s, ['--json', 'pull', 'no-slash']))).toEqual({ status: 2, code: 'E_BAD_INPUT' });
    expect(err(strata(s, ['--json', 'pull', 'nowhere/img']))).toEqual({ status: 3, code: 'E_NOT_FOUND' });
    expect(err(strata(s, ['--json', 'push', 'img', 'nowhere']))).toEqual({ status: 3, code: 'E_NOT_FOUND' });
    // Unreachable endpoint: E_IO, and the remote is not kept.
    expect(err(strata(s, ['--json', 'remote', 'add', 'dead', 's3://bucket', '--endpoint', 'http://127.0.0.1:9']))).toEqual({ status: 12, code: 'E_IO' });
    expect(JSON.parse(strataOk(s, ['--json', 'remote', 'ls']).stdout).remotes).toEqual([]);
    strataOk(s, ['remote', 'add', 'later', 's3://bucket', '--endpoint', 'http://127.0.0.1:9', '--no-check']);
    expect(err(strata(s, ['--json', 'remote', 'add', 'later', 's3://bucket', '--no-check']))).toEqual({ status: 4, code: 'E_EXISTS' });
  });
});

describe.skipIf(!haveRgw())('remote mistakes on RGW', () => {
  it('a leaf is not pushed; an image the remote lacks is E_NOT_FOUND', () => {
    const s = tmpDir();
    strataOk(s, ['init']);
    strataOk(s, ['create', 'vm', '--size', '1M']);
    strataOk(s, ['remote', 'add', 'fleet', `s3://${freshBucket('mistakes')}`, '--create', '--endpoint', rgw().endpoint]);
    expect(err(strata(s, ['--json', 'push', 'vm', 'fleet']))).toEqual({ status: 2, code: 'E_BAD_INPUT' });
    expect(err(strata(s, ['--json', 'pull', 'fleet/vm']))).toEqual({ status: 3, code: 'E_NOT_FOUND' });
  });
});
