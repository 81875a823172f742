import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import type { CryptoKey, JWK, JWTPayload } from 'jose';
import { customAuthenticator } from '../../src/auth/authenticators/custom.js';
import { jwtAuthenticator } from '../../src/auth/authenticators/jwt.js';
import type { JwtAuthenticatorOptions } from '../../src/auth/authenticators/jwt.js';
import { AuthenticationError, ServiceUnavailableError } from '../../src/errors.js';
import { fakeClock, T0 } from '../helpers/clock.js';

const SECRET = 'a-test-secret-that-is-at-least-32-bytes-long';
const OTHER_SECRET = 'another-secret-that-is-at-least-32-bytes-long';
const ctx = { transport: 'header' } as const;

const T0_S = T0 / 1000;

async function sign(
  claims: JWTPayload,
  key: CryptoKey | Uint8Array,
  alg: string,
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT({ iat: T0_S, exp: T0_S + 3600, ...claims })
    .setProtectedHeader({ ...header, alg })
    .sign(key);
}

const secretBytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Every failure seen, so the last test can check that none leaked its token. */
const failures: { token: string; error: unknown }[] = [];

async function rejects(
  auth: { authenticate: (c: string, x: typeof ctx) => Promise<unknown> },
  token: string,
  code: 'ERR_INVALID_CREDENTIALS' | 'ERR_TOKEN_EXPIRED',
  message?: string,
): Promise<void> {
  await assert.rejects(auth.authenticate(token, ctx), (err: unknown) => {
    failures.push({ token, error: err });
    assert.ok(
      err instanceof AuthenticationError,
      `expected AuthenticationError, got ${String(err)}`,
    );
    assert.equal(err.code, code);
    if (message !== undefined) assert.equal(err.message, message);
    return true;
  });
}

describe('jwtAuthenticator: algorithms', () => {
  test('HS256 with a secret', async () => {
    const clock = fakeClock();
    const auth = jwtAuthenticator({ secret: SECRET, now: clock.now });
    const token = await sign(
      { sub: '42', username: 'alice', jti: 'j-1' },
      secretBytes(SECRET),
      'HS256',
    );
    const result = await auth.authenticate(token, ctx);
    assert.deepEqual(result, {
      user: { source: 'jwt', id: '42', username: 'alice', isStaff: false, isAnonymous: false },
      credentialId: 'j-1',
      expiresAt: new Date((T0_S + 3600) * 1000),
    });
    assert.equal(auth.name, 'jwt');
  });

  for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
    test(`${alg} with a public key (CryptoKey, JWK and PEM)`, async () => {
      const clock = fakeClock();
      const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
      const token = await sign({ sub: 'u-1', username: 'bob' }, privateKey, alg);
      const keys: JwtAuthenticatorOptions['publicKey'][] = [
        publicKey,
        await exportJWK(publicKey),
        await exportSPKI(publicKey),
      ];
      for (const key of keys) {
        if (key === undefined) continue;
        const auth = jwtAuthenticator({ publicKey: key, now: clock.now });
        const result = await auth.authenticate(token, ctx);
        assert.equal(result?.user.id, 'u-1');
        assert.equal(result?.user.username, 'bob');
        // No jti: the credential id is a digest prefix, not the token.
        assert.match(result?.credentialId ?? '', /^jwt-[0-9a-f]{16}$/);
      }
    });
  }

  test('a Node KeyObject, public or private, is accepted as publicKey', async () => {
    const clock = fakeClock();
    const pair = generateKeyPairSync('ed25519');
    const token = await new SignJWT({ sub: '7', exp: T0_S + 60 })
      .setProtectedHeader({ alg: 'EdDSA' })
      .sign(pair.privateKey);
    for (const key of [pair.publicKey, pair.privateKey]) {
      const auth = jwtAuthenticator({ publicKey: key, now: clock.now });
      assert.equal((await auth.authenticate(token, ctx))?.user.id, '7');
    }
  });

  test('alg "none" is refused, and recognised rather than passed on', async () => {
    const auth = jwtAuthenticator({ secret: SECRET, now: fakeClock().now });
    const token = new UnsecuredJWT({ sub: '1', exp: T0_S + 60 }).encode();
    await rejects(auth, token, 'ERR_INVALID_CREDENTIALS');
  });

  test('a token signed with another secret is refused', async () => {
    const auth = jwtAuthenticator({ secret: SECRET, now: fakeClock().now });
    const token = await sign({ sub: '1' }, secretBytes(OTHER_SECRET), 'HS256');
    await rejects(
      auth,
      token,
      'ERR_INVALID_CREDENTIALS',
      'invalid credentials: token signature verification failed',
    );
  });

  test('a token signed with another key pair is refused', async () => {
    const auth = jwtAuthenticator({
      publicKey: (await generateKeyPair('ES256')).publicKey,
      now: fakeClock().now,
    });
    const token = await sign({ sub: '1' }, (await generateKeyPair('ES256')).privateKey, 'ES256');
    await rejects(auth, token, 'ERR_INVALID_CREDENTIALS');
  });

  test('HS/RS confusion: HS256 signed with the RSA public PEM is refused under RS256', async () => {
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    const pem = await exportSPKI(publicKey);
    const forged = await sign({ sub: 'admin', is_staff: true }, secretBytes(pem), 'HS256');
    const legit = await sign({ sub: 'alice' }, privateKey, 'RS256');
    for (const algorithms of [['RS256'] as const, undefined]) {
      const auth = jwtAuthenticator({
        publicKey: pem,
        now: fakeClock().now,
        ...(algorithms === undefined ? {} : { algorithms }),
      });
      assert.equal((await auth.authenticate(legit, ctx))?.user.id, 'alice');
      await rejects(
        auth,
        forged,
        'ERR_INVALID_CREDENTIALS',
        'invalid credentials: token algorithm not allowed',
      );
    }
  });

  test('an algorithm outside the pinned list is refused even with the right key', async () => {
    const auth = jwtAuthenticator({
      secret: SECRET,
      algorithms: ['HS512'],
      now: fakeClock().now,
    });
    await rejects(
      auth,
      await sign({ sub: '1' }, secretBytes(SECRET), 'HS256'),
      'ERR_INVALID_CREDENTIALS',
      'invalid credentials: token algorithm not allowed',
    );
  });
});

describe('jwtAuthenticator: claims', () => {
  const key = secretBytes(SECRET);

  test('expired (fake clock) → ERR_TOKEN_EXPIRED, also when first seen valid', async () => {
    const clock = fakeClock();
    const auth = jwtAuthenticator({ secret: SECRET, now: clock.now });
    const token = await sign({ sub: '1', exp: T0_S + 60 }, key, 'HS256');
    assert.equal((await auth.authenticate(token, ctx))?.user.id, '1');
    clock.advance(60_000); // exactly at exp: no longer valid
    await rejects(auth, token, 'ERR_TOKEN_EXPIRED', 'token expired');
  });

  test('clockTolerance accepts a token that expired within it', async () => {
    const clock = fakeClock(T0 + 65_000);
    const token = await sign({ sub: '1', exp: T0_S + 60 }, key, 'HS256');
    const lenient = jwtAuthenticator({ secret: SECRET, clockTolerance: 10, now: clock.now });
    assert.equal((await lenient.authenticate(token, ctx))?.user.id, '1');
    const strict = jwtAuthenticator({ secret: SECRET, now: clock.now });
    await rejects(strict, token, 'ERR_TOKEN_EXPIRED');
  });

  test('nbf in the future is refused, and accepted once reached', async () => {
    const clock = fakeClock();
    const auth = jwtAuthenticator({ secret: SECRET, now: clock.now });
    const token = await sign({ sub: '1', nbf: T0_S + 30 }, key, 'HS256');
    await rejects(
      auth,
      token,
      'ERR_INVALID_CREDENTIALS',
      'invalid credentials: token not yet valid',
    );
    clock.advance(30_000);
    assert.equal((await auth.authenticate(token, ctx))?.user.id, '1');
  });

  test('missing exp is refused', async () => {
    const auth = jwtAuthenticator({ secret: SECRET, now: fakeClock().now });
    const token = await new SignJWT({ sub: '1' }).setProtectedHeader({ alg: 'HS256' }).sign(key);
    await rejects(
      auth,
      token,
      'ERR_INVALID_CREDENTIALS',
      'invalid credentials: token has no "exp" claim',
    );
  });

  test('missing or non-string sub is refused', async () => {
    const auth = jwtAuthenticator({ secret: SECRET, now: fakeClock().now });
    await rejects(auth, await sign({}, key, 'HS256'), 'ERR_INVALID_CREDENTIALS');
    await rejects(auth, await sign({ sub: '' }, key, 'HS256'), 'ERR_INVALID_CREDENTIALS');
  });

  test('issuer and audience are checked when configured', async () => {
    const auth = jwtAuthenticator({
      secret: SECRET,
      issuer: 'https://issuer.example/',
      audience: ['chat', 'api'],
      now: fakeClock().now,
    });
    const good = { sub: '1', iss: 'https://issuer.example/', aud: 'chat' };
    assert.equal((await auth.authenticate(await sign(good, key, 'HS256'), ctx))?.user.id, '1');
    await rejects(
      auth,
      await sign({ ...good, aud: 'other' }, key, 'HS256'),
      'ERR_INVALID_CREDENTIALS',
      'invalid credentials: unexpected token audience',
    );
    await rejects(
      auth,
      await sign({ ...good, iss: 'https://evil.example/' }, key, 'HS256'),
      'ERR_INVALID_CREDENTIALS',
      'invalid credentials: unexpected token issuer',
    );
    await rejects(
      auth,
      await sign({ sub: '1', aud: 'chat' }, key, 'HS256'),
      'ERR_INVALID_CREDENTIALS',
      'invalid credentials: token has no "iss" claim',
    );
  });

  test('claim mapping: username, preferred_username, is_staff, fallbacks', async () => {
    const auth = jwtAuthenticator({ secret: SECRET, now: fakeClock().now });
    const user = async (claims: JWTPayload): Promise<unknown> =>
      (await auth.authenticate(await sign(claims, key, 'HS256'), ctx))?.user;
    assert.deepEqual(await user({ sub: '1', username: 'u', is_staff: true }), {
      source: 'jwt',
      id: '1',
      username: 'u',
      isStaff: true,
      isAnonymous: false,
    });
    assert.deepEqual(await user({ sub: '2', preferred_username: 'pref' }), {
      source: 'jwt',
      id: '2',
      username: 'pref',
      isStaff: false,
      isAnonymous: false,
    });
    // username wins over preferred_username; a non-boolean is_staff is not staff.
    assert.deepEqual(
      await user({ sub: '3', username: 'main', preferred_username: 'pref', is_staff: 'true' }),
      { source: 'jwt', id: '3', username: 'main', isStaff: false, isAnonymous: false },
    );
    // No name claim: the id is the name.
    assert.deepEqual(await user({ sub: '4' }), {
      source: 'jwt',
      id: '4',
      username: '4',
      isStaff: false,
      isAnonymous: false,
    });
  });

  test('custom claim names', async () => {
    const auth = jwtAuthenticator({
      secret: SECRET,
      claims: { id: 'uid', username: 'name', isStaff: 'admin' },
      name: 'corp-jwt',
      now: fakeClock().now,
    });
    const token = await sign(
      { sub: 'ignored', uid: 99, name: 'carol', username: 'ignored', admin: true },
      key,
      'HS256',
    );
    const result = await auth.authenticate(token, ctx);
    assert.deepEqual(result?.user, {
      source: 'jwt',
      id: '99',
      username: 'carol',
      isStaff: true,
      isAnonymous: false,
    });
    assert.equal(auth.name, 'corp-jwt');
    await rejects(auth, await sign({ sub: '1' }, key, 'HS256'), 'ERR_INVALID_CREDENTIALS');
  });
});

describe('jwtAuthenticator: recognition', () => {
  test('a non-JWT string is not recognised', async () => {
    const auth = jwtAuthenticator({ secret: SECRET });
    const notJwts = [
      '',
      'pcu_0123456789abcdefghijABCDEFGHIJ012345',
      '0123456789abcdef0123456789abcdef01234567',
      'a.b',
      'a.b.c.d.e',
      'not a.jwt at.all',
      'bm90IGpzb24.eyJzdWIiOiIxIn0.sig', // header is not JSON
      'eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.sig', // {"typ":"JWT"}: no alg
      'WzFd.eyJzdWIiOiIxIn0.sig', // header is an array
    ];
    for (const credential of notJwts) {
      assert.equal(await auth.authenticate(credential, ctx), undefined, credential);
    }
  });

  test('a JWT-shaped credential with garbage inside is recognised and refused', async () => {
    const auth = jwtAuthenticator({ secret: SECRET, now: fakeClock().now });
    // {"alg":"HS256"} . "not json" . junk
    await rejects(auth, 'eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.AAAA', 'ERR_INVALID_CREDENTIALS');
    await rejects(
      auth,
      `eyJhbGciOiJIUzI1NiJ9.${'A'.repeat(20_000)}.AAAA`,
      'ERR_INVALID_CREDENTIALS',
      'invalid credentials: token too large',
    );
  });
});

describe('jwtAuthenticator: JWKS', () => {
  let keys: JWK[] = [];
  let requests = 0;
  let status = 200;
  const server = createServer((_req, res) => {
    requests += 1;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys }));
  });
  let url = '';
  let rsa: CryptoKey;
  let ec: CryptoKey;

  before(async () => {
    const rsaPair = await generateKeyPair('RS256');
    const ecPair = await generateKeyPair('ES256');
    rsa = rsaPair.privateKey;
    ec = ecPair.privateKey;
    keys = [
      { ...(await exportJWK(rsaPair.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(ecPair.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
    ];
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  test('tokens verify against a JWKS served over HTTP, by kid', async () => {
    const auth = jwtAuthenticator({ jwksUrl: url, now: fakeClock().now });
    const a = await sign({ sub: 'r' }, rsa, 'RS256', { kid: 'rsa-1' });
    const b = await sign({ sub: 'e' }, ec, 'ES256', { kid: 'ec-1' });
    assert.equal((await auth.authenticate(a, ctx))?.user.id, 'r');
    assert.equal((await auth.authenticate(b, ctx))?.user.id, 'e');
    const unknownKid = await sign({ sub: 'x' }, ec, 'ES256', { kid: 'nope' });
    await rejects(
      auth,
      unknownKid,
      'ERR_INVALID_CREDENTIALS',
      'invalid credentials: no single key matches the token',
    );
  });

  test('a JWKS endpoint that answers 500 fails closed with ServiceUnavailableError', async (t) => {
    t.after(() => {
      status = 200;
    });
    status = 500;
    const auth = jwtAuthenticator({ jwksUrl: url, now: fakeClock().now });
    const token = await sign({ sub: 'r' }, rsa, 'RS256', { kid: 'rsa-1' });
    await assert.rejects(auth.authenticate(token, ctx), ServiceUnavailableError);
  });

  test('an unreachable JWKS endpoint fails closed with ServiceUnavailableError', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const auth = jwtAuthenticator({
      jwksUrl: `http://127.0.0.1:${port}/jwks`,
      now: fakeClock().now,
    });
    const token = await sign({ sub: 'r' }, rsa, 'RS256', { kid: 'rsa-1' });
    await assert.rejects(auth.authenticate(token, ctx), (err: unknown) => {
      assert.ok(err instanceof ServiceUnavailableError);
      assert.equal(err.code, 'ERR_SERVICE_UNAVAILABLE');
      assert.ok(!err.message.includes(token));
      return true;
    });
  });

  test('verification cache: a second use does not fetch keys; invalidation and expiry work', async () => {
    const clock = fakeClock();
    // cacheMaxAgeMs 0 makes jose fetch the JWKS on every verification it performs,
    // so the request count tells exactly how many times jose ran.
    const auth = jwtAuthenticator({ jwksUrl: url, jwks: { cacheMaxAgeMs: 0 }, now: clock.now });
    const token = await sign({ sub: 'r', jti: 'tok-1', exp: T0_S + 120 }, rsa, 'RS256', {
      kid: 'rsa-1',
    });
    const other = await sign({ sub: 'r', jti: 'tok-2', exp: T0_S + 120 }, rsa, 'RS256', {
      kid: 'rsa-1',
    });
    const start = requests;
    assert.equal((await auth.authenticate(token, ctx))?.user.id, 'r');
    assert.equal(requests, start + 1);
    assert.equal((await auth.authenticate(token, ctx))?.credentialId, 'tok-1');
    assert.equal((await auth.authenticate(token, ctx))?.user.id, 'r');
    assert.equal(requests, start + 1, 'cache hits must not call jose');

    assert.equal((await auth.authenticate(other, ctx))?.credentialId, 'tok-2');
    assert.equal(requests, start + 2);

    auth.invalidateCredential('tok-1');
    await auth.authenticate(token, ctx);
    assert.equal(requests, start + 3, 'an invalidated credential is verified again');
    await auth.authenticate(other, ctx);
    assert.equal(requests, start + 3, 'other credentials stay cached');

    auth.invalidateUser('r');
    await auth.authenticate(token, ctx);
    await auth.authenticate(other, ctx);
    assert.equal(requests, start + 5, 'invalidateUser drops every credential of the user');

    clock.advance(120_000);
    await rejects(auth, token, 'ERR_TOKEN_EXPIRED');
    assert.equal(requests, start + 6, 'an expired entry is not served from the cache');
  });

  test('verification cache: a cached token verifies after the JWKS server is gone', async () => {
    const local = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
    const jwksUrl = `http://127.0.0.1:${(local.address() as AddressInfo).port}/jwks`;
    const clock = fakeClock();
    const cached = jwtAuthenticator({ jwksUrl, jwks: { cacheMaxAgeMs: 0 }, now: clock.now });
    const uncached = jwtAuthenticator({
      jwksUrl,
      jwks: { cacheMaxAgeMs: 0 },
      cache: false,
      now: clock.now,
    });
    const token = await sign({ sub: 'r', jti: 'gone-1' }, rsa, 'RS256', { kid: 'rsa-1' });
    assert.equal((await cached.authenticate(token, ctx))?.user.id, 'r');
    assert.equal((await uncached.authenticate(token, ctx))?.user.id, 'r');

    local.closeAllConnections();
    await new Promise((resolve) => local.close(resolve));

    assert.equal((await cached.authenticate(token, ctx))?.user.id, 'r');
    await assert.rejects(uncached.authenticate(token, ctx), ServiceUnavailableError);
    cached.invalidateCredential('gone-1');
    await assert.rejects(cached.authenticate(token, ctx), ServiceUnavailableError);
  });
});

describe('jwtAuthenticator: options are checked at construction', () => {
  const cases: [string, () => unknown, string][] = [
    [
      'no key source',
      () => jwtAuthenticator({} as JwtAuthenticatorOptions),
      'jwtAuthenticator: exactly one of "secret", "jwksUrl" or "publicKey" is required',
    ],
    [
      'two key sources',
      () =>
        jwtAuthenticator({
          secret: SECRET,
          jwksUrl: 'https://x.example/jwks',
        } as unknown as JwtAuthenticatorOptions),
      'jwtAuthenticator: exactly one of "secret", "jwksUrl" or "publicKey" is required',
    ],
    [
      'alg none',
      () =>
        jwtAuthenticator({
          secret: SECRET,
          algorithms: ['none'],
        } as unknown as JwtAuthenticatorOptions),
      'jwtAuthenticator: "none" is never an accepted algorithm',
    ],
    [
      'empty algorithms',
      () => jwtAuthenticator({ secret: SECRET, algorithms: [] }),
      'jwtAuthenticator: "algorithms" must be a non-empty array',
    ],
    [
      'unknown algorithm',
      () =>
        jwtAuthenticator({
          secret: SECRET,
          algorithms: ['HS1'],
        } as unknown as JwtAuthenticatorOptions),
      'jwtAuthenticator: unsupported algorithm "HS1"',
    ],
    [
      'RS256 with a secret',
      () => jwtAuthenticator({ secret: SECRET, algorithms: ['RS256'] }),
      'jwtAuthenticator: "algorithms" for "secret" must be HMAC algorithms (HS256, HS384, HS512)',
    ],
    [
      'HS256 with a JWKS',
      () => jwtAuthenticator({ jwksUrl: 'https://x.example/jwks', algorithms: ['HS256'] }),
      'jwtAuthenticator: "algorithms" for "publicKey" or "jwksUrl" must be asymmetric (RS*, PS*, ES*, EdDSA, Ed25519)',
    ],
    [
      'bad JWKS URL',
      () => jwtAuthenticator({ jwksUrl: 'ftp://x.example/jwks' }),
      'jwtAuthenticator: "jwksUrl" must be an absolute http: or https: URL',
    ],
    [
      'relative JWKS URL',
      () => jwtAuthenticator({ jwksUrl: '/jwks' }),
      'jwtAuthenticator: "jwksUrl" must be an absolute http: or https: URL',
    ],
    [
      'a symmetric JWK as public key',
      () => jwtAuthenticator({ publicKey: { kty: 'oct', k: 'AAAA' } }),
      'jwtAuthenticator: "publicKey" must be a public key (PEM, KeyObject, CryptoKey or JWK)',
    ],
    [
      'a string that is not PEM as public key',
      () => jwtAuthenticator({ publicKey: SECRET }),
      'jwtAuthenticator: "publicKey" must be a public key (PEM, KeyObject, CryptoKey or JWK)',
    ],
    [
      'an empty name',
      () => jwtAuthenticator({ secret: SECRET, name: '' }),
      'jwtAuthenticator: "name" must be a non-empty string',
    ],
  ];
  for (const [title, make, message] of cases) {
    test(`TypeError: ${title}`, () => {
      assert.throws(make, { name: 'TypeError', message });
    });
  }

  test('RangeError: a secret shorter than 32 bytes', () => {
    assert.throws(() => jwtAuthenticator({ secret: 'short' }), {
      name: 'RangeError',
      message: 'jwtAuthenticator: "secret" must be at least 32 bytes (RFC 7518 §3.2)',
    });
  });

  test('RangeError: a negative clockTolerance', () => {
    assert.throws(() => jwtAuthenticator({ secret: SECRET, clockTolerance: -1 }), {
      name: 'RangeError',
      message: 'jwtAuthenticator: "clockTolerance" must be a non-negative number of seconds',
    });
  });
});

describe('customAuthenticator', () => {
  const user = { id: '9', username: 'eve', isStaff: false, isAnonymous: false } as const;

  test('passes the credential and context through, and the result back', async () => {
    const seen: unknown[] = [];
    const auth = customAuthenticator('api-key', async (credential, context) => {
      seen.push(credential, context.transport);
      return credential === 'ak_good' ? { user, credentialId: 'k1', expiresAt: null } : undefined;
    });
    assert.equal(auth.name, 'api-key');
    // A user without a source belongs to the authenticator (SPEC §3 identity).
    assert.deepEqual(await auth.authenticate('ak_good', ctx), {
      user: { ...user, source: 'api-key' },
      credentialId: 'k1',
      expiresAt: null,
    });
    assert.equal(await auth.authenticate('other', { transport: 'cookie' }), undefined);
    assert.deepEqual(seen, ['ak_good', 'header', 'other', 'cookie']);
  });

  test('errors thrown by the function propagate unchanged', async () => {
    const refusal = new AuthenticationError('ERR_TOKEN_REVOKED', 'token revoked');
    const auth = customAuthenticator('x', async () => {
      throw refusal;
    });
    await assert.rejects(auth.authenticate('c', ctx), (err) => err === refusal);
  });

  test('a malformed or anonymous result is a TypeError, never an authentication', async () => {
    const bad: unknown[] = [
      null,
      {},
      { user: { ...user, isAnonymous: true }, credentialId: null, expiresAt: null },
      { user: { ...user, id: '' }, credentialId: null, expiresAt: null },
      { user, credentialId: 1, expiresAt: null },
      { user, credentialId: null, expiresAt: '2030-01-01' },
    ];
    for (const result of bad) {
      const auth = customAuthenticator('bad', async () => result as never);
      await assert.rejects(auth.authenticate('c', ctx), TypeError);
    }
  });

  test('arguments are checked at construction', () => {
    assert.throws(() => customAuthenticator('', async () => undefined), {
      name: 'TypeError',
      message: 'customAuthenticator: "name" must be a non-empty string',
    });
    assert.throws(() => customAuthenticator('x', 'nope' as never), {
      name: 'TypeError',
      message: 'customAuthenticator: "fn" must be a function',
    });
  });
});

describe('jwtAuthenticator: secrecy', () => {
  test('no error message (or its cause) contains the token', () => {
    assert.ok(failures.length >= 15, `only ${failures.length} failures were recorded`);
    for (const { token, error } of failures) {
      const signature = token.split('.')[2] ?? '';
      const texts = [String(error)];
      if (error instanceof Error && error.cause instanceof Error) texts.push(String(error.cause));
      for (const text of texts) {
        assert.ok(!text.includes(token), text);
        if (signature.length > 8) assert.ok(!text.includes(signature), text);
      }
    }
  });
});

describe('token types (SPEC §3)', () => {
  test('a JWT whose token_type is not access is refused, whatever its claims', async () => {
    const auth = jwtAuthenticator({ secret: SECRET, now: fakeClock().now });
    const key = secretBytes(SECRET);
    // A SimpleJWT refresh token of an app that set USER_ID_CLAIM = "sub".
    const refresh = await sign({ sub: '2', jti: 'r-1', token_type: 'refresh' }, key, 'HS256');
    await assert.rejects(auth.authenticate(refresh, ctx), (error: unknown) => {
      assert.ok(error instanceof AuthenticationError);
      assert.equal(error.code, 'ERR_INVALID_CREDENTIALS');
      return true;
    });
    for (const type of ['id', '', 'ACCESS', 1]) {
      const other = await sign({ sub: '2', token_type: type }, key, 'HS256');
      await assert.rejects(auth.authenticate(other, ctx), AuthenticationError, String(type));
    }
    const access = await sign({ sub: '2', token_type: 'access' }, key, 'HS256');
    assert.equal((await auth.authenticate(access, ctx))?.user.id, '2');
    const plain = await sign({ sub: '2' }, key, 'HS256');
    assert.equal((await auth.authenticate(plain, ctx))?.user.id, '2');
  });
});
