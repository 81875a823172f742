import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import {
  DEFAULT_SCRYPT_PARAMS,
  hashPassword,
  needsRehash,
  verifyPassword,
  verifyPasswordOrDummy,
  type ScryptParams,
} from '../../src/auth/passwords.js';

/** Cheap parameters so the suite stays fast; the format and logic are the same. */
const FAST: ScryptParams = { N: 1024, r: 8, p: 1 };

describe('passwords', () => {
  it('hash with OWASP parameters by default, raising maxmem to fit', async () => {
    assert.deepEqual({ ...DEFAULT_SCRYPT_PARAMS }, { N: 131072, r: 8, p: 1 });
    const encoded = await hashPassword('correct horse');
    assert.match(encoded, /^scrypt\$131072\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    assert.equal(await verifyPassword('correct horse', encoded), true);
  });

  it('verify the right password and reject a wrong one', async () => {
    const encoded = await hashPassword('s3cret!', FAST);
    assert.match(encoded, /^scrypt\$1024\$8\$1\$/);
    assert.equal(await verifyPassword('s3cret!', encoded), true);
    assert.equal(await verifyPassword('s3cret', encoded), false);
    assert.equal(await verifyPassword('', encoded), false);
  });

  it('salt every hash', async () => {
    const [a, b] = await Promise.all([hashPassword('same', FAST), hashPassword('same', FAST)]);
    assert.notEqual(a, b);
    assert.notEqual(a.split('$')[4], b.split('$')[4]);
  });

  it('treat canonically equivalent Unicode as the same password', async () => {
    const encoded = await hashPassword('caf\u00e9', FAST);
    assert.equal(await verifyPassword('cafe\u0301', encoded), true);
  });

  it('reject malformed and foreign hash strings instead of throwing', async () => {
    const encoded = await hashPassword('pw', FAST);
    const parts = encoded.split('$');
    for (const bad of [
      '',
      'pw',
      `bcrypt$${parts.slice(1).join('$')}`,
      encoded.replace('$1024$', '$1000$'), // N not a power of two
      encoded.replace('$1024$', `$${2 ** 24}$`), // beyond the cap: no 2 GiB allocation
      parts.slice(0, 5).join('$'),
      `${encoded}$extra`,
      `${parts.slice(0, 5).join('$')}$short`,
      `${parts.slice(0, 4).join('$')}$!!!$${parts[5]}`,
    ]) {
      assert.equal(await verifyPassword('pw', bad), false, bad);
    }
  });

  it('refuse out-of-range parameters with a RangeError', async () => {
    await assert.rejects(hashPassword('pw', { N: 1000, r: 8, p: 1 }), {
      name: 'RangeError',
      message:
        'scrypt params must have N a power of two in [2, 2^20], r in [1, 32] and p in [1, 16]',
    });
  });

  it('run scrypt for a missing hash, so unknown users cost as much as known ones', async () => {
    const params: ScryptParams = { N: 2 ** 14, r: 8, p: 1 };
    const encoded = await hashPassword('pw', params);
    const median = async (work: () => Promise<unknown>): Promise<number> => {
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        const start = performance.now();
        await work();
        times.push(performance.now() - start);
      }
      return times.sort((a, b) => a - b)[1] ?? 0;
    };
    const real = await median(() => verifyPasswordOrDummy('wrong', encoded, params));
    const dummy = await median(() => verifyPasswordOrDummy('wrong', undefined, params));
    assert.equal(await verifyPasswordOrDummy('pw', null, params), false);
    assert.equal(await verifyPasswordOrDummy('pw', 'garbage', params), false);
    assert.equal(await verifyPasswordOrDummy('pw', encoded, params), true);
    // Loose bound: a shared CI machine is noisy, but skipping scrypt would be ~1000× faster.
    assert.ok(dummy > real / 4, `dummy ${dummy.toFixed(1)} ms vs real ${real.toFixed(1)} ms`);
  });

  it('tell when a hash should be upgraded', async () => {
    const encoded = await hashPassword('pw', FAST);
    assert.equal(needsRehash(encoded, FAST), false);
    assert.equal(needsRehash(encoded), true);
    assert.equal(needsRehash('garbage'), true);
  });
});
