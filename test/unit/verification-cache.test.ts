import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { credentialDigest, VerificationCache } from '../../src/auth/verification-cache.js';
import type { CachedVerification } from '../../src/auth/verification-cache.js';
import { fakeClock, T0 } from '../helpers/clock.js';

const meta = (
  credentialId: string | null,
  userId: string | null,
  expiresAt: Date | null = null,
): { credentialId: string | null; userId: string | null; expiresAt: Date | null } => ({
  credentialId,
  userId,
  expiresAt,
});

function entries<V>(cache: VerificationCache<V>): CachedVerification<V>[] {
  const seen: CachedVerification<V>[] = [];
  cache.delete((entry) => {
    seen.push(entry);
    return false;
  });
  return seen;
}

describe('VerificationCache', () => {
  test('serves a value until its credential expires, and never at or after expiry', () => {
    const clock = fakeClock();
    const cache = new VerificationCache<string>({ now: clock.now });
    cache.set('cred-a', 'A', meta('a', 'u1', new Date(T0 + 1_000)));
    assert.equal(cache.get('cred-a'), 'A');
    assert.equal(cache.get('cred-b'), undefined);
    clock.advance(999);
    assert.equal(cache.get('cred-a'), 'A');
    clock.advance(1);
    assert.equal(cache.get('cred-a'), undefined);
    assert.equal(cache.size, 0, 'an expired entry is dropped when looked up');
  });

  test('maxTtlMs bounds entries that live longer or never expire', () => {
    const clock = fakeClock();
    const cache = new VerificationCache<string>({ now: clock.now, maxTtlMs: 5_000 });
    cache.set('forever', 'F', meta(null, null, null));
    cache.set('long', 'L', meta(null, null, new Date(T0 + 3_600_000)));
    clock.advance(4_999);
    assert.equal(cache.get('forever'), 'F');
    assert.equal(cache.get('long'), 'L');
    clock.advance(1);
    assert.equal(cache.get('forever'), undefined);
    assert.equal(cache.get('long'), undefined);
  });

  test('an already expired credential is not stored', () => {
    const clock = fakeClock();
    const cache = new VerificationCache<string>({ now: clock.now });
    cache.set('old', 'O', meta(null, null, new Date(T0)));
    assert.equal(cache.size, 0);
  });

  test('keeps at most maxEntries, dropping the least recently used', () => {
    const cache = new VerificationCache<number>({ maxEntries: 2, now: fakeClock().now });
    cache.set('one', 1, meta(null, null));
    cache.set('two', 2, meta(null, null));
    assert.equal(cache.get('one'), 1); // "two" is now the least recently used
    cache.set('three', 3, meta(null, null));
    assert.equal(cache.size, 2);
    assert.equal(cache.get('two'), undefined);
    assert.equal(cache.get('one'), 1);
    assert.equal(cache.get('three'), 3);
  });

  test('invalidateCredential and invalidateUser drop exactly the matching entries', () => {
    const cache = new VerificationCache<string>({ now: fakeClock().now });
    cache.set('t1', 'x', meta('c1', 'alice'));
    cache.set('t2', 'y', meta('c2', 'alice'));
    cache.set('t3', 'z', meta('c3', 'bob'));
    assert.equal(cache.invalidateCredential('c1'), 1);
    assert.equal(cache.get('t1'), undefined);
    assert.equal(cache.get('t2'), 'y');
    assert.equal(cache.invalidateCredential('nope'), 0);
    assert.equal(cache.invalidateUser('alice'), 1);
    assert.equal(cache.get('t2'), undefined);
    assert.equal(cache.get('t3'), 'z');
    assert.equal(
      cache.delete((entry) => entry.value === 'z'),
      1,
    );
    assert.equal(cache.size, 0);
  });

  test('clear() drops everything', () => {
    const cache = new VerificationCache<string>({ now: fakeClock().now });
    cache.set('t1', 'x', meta('c1', 'alice'));
    cache.clear();
    assert.equal(cache.get('t1'), undefined);
  });

  test('entries hold no credential, only its digest is used as a key', () => {
    const credential = 'eyJhbGciOiJIUzI1NiJ9.secret-payload.secret-signature';
    const cache = new VerificationCache<{ ok: true }>({ now: fakeClock().now });
    cache.set(credential, { ok: true }, meta('jti-1', 'u'));
    const dump = JSON.stringify(entries(cache));
    assert.ok(!dump.includes('secret-payload'), dump);
    assert.equal(
      credentialDigest('abc'),
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });

  test('options are checked at construction', () => {
    assert.throws(() => new VerificationCache({ maxEntries: 0 }), {
      name: 'RangeError',
      message: 'VerificationCache: "maxEntries" must be a positive integer',
    });
    assert.throws(() => new VerificationCache({ maxEntries: 1.5 }), {
      name: 'RangeError',
      message: 'VerificationCache: "maxEntries" must be a positive integer',
    });
    assert.throws(() => new VerificationCache({ maxTtlMs: 0 }), {
      name: 'RangeError',
      message: 'VerificationCache: "maxTtlMs" must be a positive number',
    });
    assert.throws(() => new VerificationCache({ maxTtlMs: Number.NaN }), {
      name: 'RangeError',
      message: 'VerificationCache: "maxTtlMs" must be a positive number',
    });
  });
});
