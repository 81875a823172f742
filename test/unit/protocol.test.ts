import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProtocolError } from '../../src/errors.js';
import { CloseCode, CloseReason, limitCloseReason } from '../../src/protocol/close-codes.js';
import { isAuthFrame, parseJsonObject } from '../../src/protocol/messages.js';
import { ANONYMOUS_USER } from '../../src/auth/user.js';
import { createScope, deriveScope, headerValues } from '../../src/scope.js';

describe('close codes', () => {
  it('has the codes of SPEC §5', () => {
    assert.deepEqual(
      [
        CloseCode.BadFrame,
        CloseCode.Unauthorized,
        CloseCode.Forbidden,
        CloseCode.AuthenticationTimeout,
        CloseCode.TooManyRequests,
        CloseCode.GoingAway,
        CloseCode.MessageTooBig,
        CloseCode.InternalError,
        CloseCode.TryAgainLater,
      ],
      [4400, 4401, 4403, 4408, 4429, 1001, 1009, 1011, 1013],
    );
  });

  it('keeps every reason under 123 bytes and clamps longer ones on a character boundary', () => {
    for (const reason of Object.values(CloseReason)) assert.ok(Buffer.byteLength(reason) < 123);
    const clamped = limitCloseReason('é'.repeat(100));
    assert.ok(Buffer.byteLength(clamped) <= 123);
    assert.equal(clamped, 'é'.repeat(61));
    // 30 four-byte characters are 120 bytes; the 31st would need 124: it goes whole.
    assert.equal(limitCloseReason('😀'.repeat(40)), '😀'.repeat(30));
  });
});

describe('parseJsonObject', () => {
  it('returns objects', () => {
    assert.deepEqual(parseJsonObject('{"a":1}'), { a: 1 });
  });
  it('throws coded ProtocolErrors whose message is the close reason', () => {
    const cases: [string | Uint8Array, string][] = [
      ['{', 'ERR_INVALID_JSON'],
      ['[]', 'ERR_NOT_AN_OBJECT'],
      ['1', 'ERR_NOT_AN_OBJECT'],
      [new Uint8Array([123, 125]), 'ERR_BINARY_NOT_ACCEPTED'],
    ];
    for (const [frame, code] of cases) {
      assert.throws(
        () => parseJsonObject(frame),
        (error: unknown) => {
          assert.ok(error instanceof ProtocolError);
          assert.equal(error.code, code);
          assert.ok((Object.values(CloseReason) as string[]).includes(error.message));
          return true;
        },
      );
    }
  });
  it('recognises auth frames', () => {
    assert.equal(isAuthFrame({ type: 'auth', token: 't' }), true);
    assert.equal(isAuthFrame({ type: 'auth', token: 1 }), false);
  });
});

describe('createScope', () => {
  it('lower-cases headers, keeps duplicates, parses cookies and subprotocols', () => {
    const scope = createScope({
      path: '/ws/',
      queryString: 'x=1',
      headers: {
        Authorization: ['Token a', 'Token b'],
        Cookie: 'key=v1; JWT=abc',
        'Sec-WebSocket-Protocol': 'chat, portcullis.bearer.dA',
      },
    });
    assert.equal(scope.headers['authorization'], 'Token a, Token b');
    assert.deepEqual(headerValues(scope.rawHeaders, 'authorization'), ['Token a', 'Token b']);
    assert.deepEqual(scope.cookies, { key: 'v1', JWT: 'abc' });
    assert.deepEqual(scope.subprotocols, ['chat', 'portcullis.bearer.dA']);
    assert.equal(scope.origin, null);
    assert.equal(scope.query.get('x'), '1');
    assert.equal(scope.user.isAnonymous, true);
    assert.equal(scope.auth, null);
  });

  it('keeps client-chosen names like __proto__ as own data, never as a prototype', () => {
    const headers: Record<string, string> = { Cookie: '__proto__=cookie value; ok=1' };
    Object.defineProperty(headers, '__proto__', { value: 'header value', enumerable: true });
    const scope = createScope({ path: '/', headers });
    assert.equal(Object.hasOwn(scope.headers, '__proto__'), true);
    assert.equal(Object.getPrototypeOf(scope.headers), Object.prototype);
    assert.equal(Object.getPrototypeOf(scope.cookies), Object.prototype);
    assert.equal(Object.hasOwn(scope.cookies, '__proto__'), true);
    assert.equal(scope.cookies['ok'], '1');
  });
});

describe('scope.query', () => {
  it('is one shared, read-only instance when there is no query string', () => {
    const first = createScope({ path: '/' });
    const second = createScope({ path: '/' });
    assert.equal(first.query, second.query);
    assert.equal(first.query.get('token'), null);
    assert.equal([...first.query].length, 0);
    for (const change of [
      () => first.query.append('a', '1'),
      () => first.query.set('a', '1'),
      () => first.query.delete('a'),
      () => first.query.sort(),
    ]) {
      assert.throws(change, TypeError);
    }
    assert.equal(second.query.size, 0);
  });

  it('is parsed per scope when there is one', () => {
    const scope = createScope({ path: '/', queryString: 'a=1&a=2&b=x%20y' });
    assert.deepEqual(scope.query.getAll('a'), ['1', '2']);
    assert.equal(scope.query.get('b'), 'x y');
    assert.notEqual(scope.query, createScope({ path: '/', queryString: 'a=1' }).query);
  });
});

describe('deriveScope', () => {
  const user = { source: 'test', id: '7', username: 'ann', isStaff: false, isAnonymous: false };
  const auth = {
    method: 'header',
    authenticator: 'token',
    credentialId: '3',
    expiresAt: null,
  } as const;

  it('applies the changes and keeps every other field, the shared state included', () => {
    const scope = createScope({
      path: '/ws/',
      queryString: 'a=1',
      headers: { Origin: 'https://a' },
    });
    const derived = deriveScope(scope, { user, auth, params: { room: 'x' }, protocol: 'chat' });
    assert.equal(derived.user, user);
    assert.equal(derived.auth, auth);
    assert.deepEqual(derived.params, { room: 'x' });
    assert.equal(derived.protocol, 'chat');
    for (const key of [
      'path',
      'queryString',
      'query',
      'headers',
      'rawHeaders',
      'cookies',
    ] as const) {
      assert.equal(derived[key], scope[key], key);
    }
    assert.equal(derived.state, scope.state);
    assert.equal(derived.origin, 'https://a');
    assert.equal(scope.user, ANONYMOUS_USER, 'the original scope is not changed');
  });

  it('can set nullable and optional fields back to null or undefined', () => {
    const scope = deriveScope(createScope({ path: '/', headers: { Origin: 'https://a' } }), {
      auth,
      protocol: 'chat',
      remainingPath: 'rest/',
    });
    const cleared = deriveScope(scope, {
      auth: null,
      origin: null,
      protocol: undefined,
      remainingPath: undefined,
    });
    assert.equal(cleared.auth, null);
    assert.equal(cleared.origin, null);
    assert.equal(cleared.protocol, undefined);
    assert.equal(cleared.remainingPath, undefined);
  });
});
