/**
 * The REST plugin over SQLite (a real temporary file) and PostgreSQL (a fresh schema per
 * test): the main flow over real HTTP and `fetch`, the rest through `inject`, and one
 * WebSocket on the same server that sees the same user and closes on logout.
 */
import { Accounts } from '../../src/auth/accounts.js';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { jwtAuthenticator } from '../../src/auth/authenticators/jwt.js';
import {
  ticketAuthenticator,
  tokenAuthenticator,
  type TokenAuthenticator,
} from '../../src/auth/authenticators/token.js';
import type { Authenticator } from '../../src/auth/authenticator.js';
import { generateToken } from '../../src/auth/tokens.js';
import { JsonWebsocketConsumer } from '../../src/consumer/json-consumer.js';
import { AuthenticationError } from '../../src/errors.js';
import { authMiddleware } from '../../src/middleware/auth.js';
import {
  installErrorHandlers,
  portcullisRest,
  requireStaff,
  requireUser,
  RestDetail,
  RestError,
  restLoggerOptions,
  type PortcullisRestOptions,
} from '../../src/rest/index.js';
import { meBody } from '../../src/rest/routes/me.js';
import { route, urlRouter } from '../../src/routing/url-router.js';
import { openStore, type Store, type StoredUser } from '../../src/store/index.js';
import { connectClient } from '../../src/testing/client.js';
import { attachWebSocket } from '../../src/transport/ws.js';
import { databaseVariants } from '../helpers/stores.js';
import type { TestDatabase } from '../helpers/stores.js';

const FAST_SCRYPT = { N: 1024, r: 8, p: 1 };
const DAY = 24 * 60 * 60 * 1000;
const JWT_SECRET = 'a-jwt-secret-of-at-least-32-bytes-long!';
const PASSWORD = 'correct horse battery';
const SECRET_MESSAGE = 'connect to postgres://admin:hunter2@db failed';

const variants = databaseVariants;

/** Matches a V8 stack frame (`at fn (file.ts:1:2)`) anywhere in a body. */
const STACK_FRAME = /\bat .*:\d+:\d+/;

/** Every issued secret must stay out of the logs; collected per test. */
const secrets = new Set<string>();

/** A JSON body, after checking that nothing internal leaked into it. */
function json(response: LightMyRequestResponse | { status: number; body: string }): unknown {
  assert.doesNotMatch(response.body, STACK_FRAME);
  const status = 'statusCode' in response ? response.statusCode : response.status;
  // Only error bodies: a random token could spell one of these words.
  if (status >= 400) {
    assert.doesNotMatch(response.body, /stack|hunter2|ECONNREFUSED|sqlite|postgres|kysely/i);
  }
  return JSON.parse(response.body) as unknown;
}

async function signJwt(claims: Record<string, unknown>, expiresIn = '5m'): Promise<string> {
  const jwt = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(JWT_SECRET));
  secrets.add(jwt);
  return jwt;
}

/** Sends a hand-written HTTP/1.1 request (`fetch` would merge repeated headers). */
function rawRequest(url: URL, request: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => socket.end(request));
    let response = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (response += chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
      resolve({ status, body: response.slice(response.indexOf('\r\n\r\n') + 4) });
    });
  });
}

class WhoAmI extends JsonWebsocketConsumer {
  override connect(): void {
    this.accept();
    this.sendJson(meBody(this.scope.user));
  }
}

for (const variant of variants) {
  describe(`REST plugin (${variant.name})`, variant.options, () => {
    let database: TestDatabase;
    let store: Store;
    let clock: number;
    let tokens: TokenAuthenticator;
    let authenticators: Authenticator[];
    let alice: StoredUser;
    let accounts: Accounts;
    let logs: string[];
    let revoked: { credentials: string[]; users: string[] };
    const apps: FastifyInstance[] = [];
    const cleanups: (() => Promise<void>)[] = [];

    /** An app with the plugin, a public route, a guarded one and one that throws. */
    async function buildApp(
      options: Partial<PortcullisRestOptions> = {},
      onApp?: (app: FastifyInstance) => void,
    ): Promise<FastifyInstance> {
      const app = Fastify({
        logger: { ...restLoggerOptions('debug'), stream: { write: (line) => logs.push(line) } },
      });
      apps.push(app);
      installErrorHandlers(app);
      await app.register(portcullisRest, {
        store,
        authenticators,
        passwordParams: FAST_SCRYPT,
        now: () => clock,
        revoke: {
          credential: async (id) => void revoked.credentials.push(id),
          user: async (id) => void revoked.users.push(id),
        },
        ...options,
      });
      app.get('/public', async (request) => ({ anonymous: request.user.isAnonymous }));
      app.get('/api/private', { preHandler: requireUser }, async (request) => ({
        username: request.user.username,
        method: request.auth?.method,
      }));
      app.get('/api/staff', { preHandler: requireStaff }, async () => ({ ok: true }));
      app.post<{ Body: { n: number } }>(
        '/api/numbers',
        {
          preHandler: requireUser,
          schema: {
            body: {
              type: 'object',
              required: ['n'],
              properties: { n: { type: 'integer' } },
            },
          },
        },
        async (request) => ({ n: request.body.n }),
      );
      app.post('/api/publish', { config: { portcullisAuth: false } }, async (request) => ({
        key: request.headers.authorization === 'Bearer server-api-key',
        anonymous: request.user.isAnonymous,
      }));
      app.get('/api/boom', async () => {
        throw new Error(SECRET_MESSAGE);
      });
      app.get('/api/forbidden', async () => {
        throw new RestError(403, 'Staff only.');
      });
      app.get('/api/teapot', async () => {
        throw Object.assign(new Error(SECRET_MESSAGE), { statusCode: 418 });
      });
      onApp?.(app);
      await app.ready();
      return app;
    }

    async function login(
      app: FastifyInstance,
      username = 'alice',
      password = PASSWORD,
    ): Promise<string> {
      const response = await app.inject({
        method: 'POST',
        url: '/api/auth/token',
        payload: { username, password },
      });
      assert.equal(response.statusCode, 200, response.body);
      const { token } = json(response) as { token: string };
      secrets.add(token);
      return token;
    }

    beforeEach(async () => {
      clock = Date.now();
      database = await variant.create();
      store = openStore(database.url, { now: () => clock });
      accounts = new Accounts(store, { passwordParams: FAST_SCRYPT, now: () => clock });
      await store.migrate();
      alice = await accounts.createUser({ username: 'alice', password: PASSWORD });
      await accounts.createUser({ username: 'bob', password: PASSWORD, isStaff: true });
      tokens = tokenAuthenticator({ store, now: () => clock });
      authenticators = [tokens, jwtAuthenticator({ secret: JWT_SECRET })];
      logs = [];
      revoked = { credentials: [], users: [] };
      secrets.clear();
      secrets.add(PASSWORD);
    });

    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
      for (const app of apps.splice(0)) await app.close();
      tokens.close();
      await store.close();
      await database.teardown();
      const logged = logs.join('');
      for (const secret of secrets) {
        assert.ok(!logged.includes(secret), 'an issued secret or password reached the log');
      }
    });

    it('logs in, authenticates, issues a ticket and logs out over real HTTP', async () => {
      const app = await buildApp();
      const base = await app.listen({ port: 0, host: '127.0.0.1' });

      const loginResponse = await fetch(`${base}/api/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'alice', password: PASSWORD }),
      });
      assert.equal(loginResponse.status, 200);
      assert.equal(loginResponse.headers.get('cache-control'), 'no-store');
      const issued = (await loginResponse.json()) as { token: string; expires_at: string };
      secrets.add(issued.token);
      assert.deepEqual(Object.keys(issued).sort(), ['expires_at', 'token']);
      assert.match(issued.token, /^pcu_/);
      assert.equal(issued.expires_at, new Date(clock + 30 * DAY).toISOString());

      for (const scheme of ['Token', 'Bearer', 'token', 'bearer']) {
        const me = await fetch(`${base}/api/me`, {
          headers: { authorization: `${scheme} ${issued.token}` },
        });
        assert.equal(me.status, 200, scheme);
        assert.deepEqual(await me.json(), {
          id: Number(alice.id),
          username: 'alice',
          is_staff: false,
        });
      }
      const guarded = await fetch(`${base}/api/private`, {
        headers: { authorization: `Token ${issued.token}` },
      });
      assert.deepEqual(await guarded.json(), { username: 'alice', method: 'header' });

      const ticketResponse = await fetch(`${base}/api/auth/ticket`, {
        method: 'POST',
        headers: { authorization: `Token ${issued.token}` },
      });
      assert.equal(ticketResponse.status, 200);
      assert.equal(ticketResponse.headers.get('cache-control'), 'no-store');
      const { ticket, expires_in } = (await ticketResponse.json()) as {
        ticket: string;
        expires_in: number;
      };
      secrets.add(ticket);
      assert.match(ticket, /^pct_/);
      assert.equal(expires_in, 30);
      const redeemed = await accounts.consumeTicket(ticket);
      assert.equal(redeemed.user.id, alice.id);
      const [listed] = await store.listTokens(alice.id);
      assert.equal(redeemed.tokenId, listed?.id);
      await assert.rejects(accounts.consumeTicket(ticket), AuthenticationError, 'single use');

      const logout = await fetch(`${base}/api/auth/logout`, {
        method: 'POST',
        headers: { authorization: `Token ${issued.token}` },
      });
      assert.equal(logout.status, 204);
      assert.equal(await logout.text(), '');
      assert.deepEqual(revoked.credentials, [listed?.id]);

      const after = await fetch(`${base}/api/me`, {
        headers: { authorization: `Token ${issued.token}` },
      });
      assert.equal(after.status, 401);
      assert.equal(after.headers.get('www-authenticate'), 'Token');
      assert.deepEqual(await after.json(), { detail: RestDetail.TokenRevoked });
    });

    describe('POST /api/auth/token', () => {
      it('refuses a wrong password and an unknown user alike', async () => {
        const app = await buildApp();
        for (const payload of [
          { username: 'alice', password: 'wrong' },
          { username: 'nobody', password: PASSWORD },
        ]) {
          const response = await app.inject({ method: 'POST', url: '/api/auth/token', payload });
          assert.equal(response.statusCode, 400);
          assert.deepEqual(json(response), {
            non_field_errors: ['Unable to log in with provided credentials.'],
          });
        }
        assert.deepEqual(await store.listTokens(alice.id), []);
      });

      it('reports every missing or invalid field as DRF does', async () => {
        const app = await buildApp();
        const cases: [unknown, unknown][] = [
          [{}, { username: ['This field is required.'], password: ['This field is required.'] }],
          [{ username: 'alice' }, { password: ['This field is required.'] }],
          [
            { username: '', password: null },
            {
              username: ['This field may not be blank.'],
              password: ['This field may not be null.'],
            },
          ],
          [
            { username: ['alice'], password: true },
            {
              username: ['Not a valid string.'],
              password: ['Not a valid string.'],
            },
          ],
          [
            { username: 'a'.repeat(151), password: 'x' },
            { username: ['Ensure this field has no more than 150 characters.'] },
          ],
          [['alice'], { non_field_errors: ['Invalid data. Expected a dictionary, but got list.'] }],
          ['"alice"', { non_field_errors: ['Invalid data. Expected a dictionary, but got str.'] }],
        ];
        for (const [payload, expected] of cases) {
          const response = await app.inject({
            method: 'POST',
            url: '/api/auth/token',
            headers: { 'content-type': 'application/json' },
            payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
          });
          assert.equal(response.statusCode, 400, JSON.stringify(payload));
          assert.deepEqual(json(response), expected);
        }
        // No body at all, and an empty JSON body, are empty data as in DRF.
        for (const headers of [{}, { 'content-type': 'application/json' }]) {
          const response = await app.inject({ method: 'POST', url: '/api/auth/token', headers });
          assert.equal(response.statusCode, 400);
          assert.deepEqual(json(response), {
            username: ['This field is required.'],
            password: ['This field is required.'],
          });
        }
      });

      it('accepts an HTML-form body, as obtain_auth_token does', async () => {
        const app = await buildApp();
        const response = await app.inject({
          method: 'POST',
          url: '/api/auth/token',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams({ username: 'alice', password: PASSWORD }).toString(),
        });
        assert.equal(response.statusCode, 200);
        secrets.add((json(response) as { token: string }).token);
      });

      it('issues tokens with the configured lifetime, or none', async () => {
        const hour = await buildApp({ tokenTtlMs: 60 * 60 * 1000 });
        let response = await hour.inject({
          method: 'POST',
          url: '/api/auth/token',
          payload: { username: 'alice', password: PASSWORD },
        });
        const issued = json(response) as { token: string; expires_at: string | null };
        secrets.add(issued.token);
        assert.equal(issued.expires_at, new Date(clock + 60 * 60 * 1000).toISOString());

        const forever = await buildApp({ tokenTtlMs: null });
        response = await forever.inject({
          method: 'POST',
          url: '/api/auth/token',
          payload: { username: 'alice', password: PASSWORD },
        });
        const eternal = json(response) as { token: string; expires_at: string | null };
        secrets.add(eternal.token);
        assert.equal(eternal.expires_at, null);
      });

      it('refuses bad JSON, other media types and large bodies without echoing them', async () => {
        const app = await buildApp();
        let response = await app.inject({
          method: 'POST',
          url: '/api/auth/token',
          headers: { 'content-type': 'application/json' },
          payload: `{"username": "alice", "password": "${PASSWORD}"`,
        });
        assert.equal(response.statusCode, 400);
        assert.deepEqual(json(response), { detail: 'JSON parse error.' });

        response = await app.inject({
          method: 'POST',
          url: '/api/auth/token',
          headers: { 'content-type': 'text/plain' },
          payload: PASSWORD,
        });
        assert.equal(response.statusCode, 415);
        assert.deepEqual(json(response), {
          detail: 'Unsupported media type "text/plain" in request.',
        });

        response = await app.inject({
          method: 'POST',
          url: '/api/auth/token',
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify({ username: 'alice', password: 'x'.repeat(20_000) }),
        });
        assert.equal(response.statusCode, 413);
        assert.deepEqual(json(response), { detail: 'Request body is too large.' });

        response = await app.inject({
          method: 'POST',
          url: '/api/auth/token',
          headers: { 'content-type': 'application/json' },
          payload: '{"__proto__": {"isStaff": true}, "username": "alice", "password": "x"}',
        });
        assert.equal(response.statusCode, 400);
        assert.deepEqual(json(response), { detail: 'JSON parse error.' });
      });

      it('throttles login attempts per client address', async () => {
        const app = await buildApp({
          loginRateLimit: { max: 2, windowMs: 60_000 },
          now: () => clock,
        });
        const attempt = (remoteAddress: string) =>
          app.inject({
            method: 'POST',
            url: '/api/auth/token',
            remoteAddress,
            payload: { username: 'alice', password: 'wrong' },
          });
        assert.equal((await attempt('10.0.0.1')).statusCode, 400);
        assert.equal((await attempt('10.0.0.1')).statusCode, 400);
        const throttled = await attempt('10.0.0.1');
        assert.equal(throttled.statusCode, 429);
        assert.equal(throttled.headers['retry-after'], '60');
        assert.deepEqual(json(throttled), {
          detail: 'Request was throttled. Expected available in 60 seconds.',
        });
        // Even a correct password waits: the window counts attempts, not failures.
        const correct = await app.inject({
          method: 'POST',
          url: '/api/auth/token',
          remoteAddress: '10.0.0.1',
          payload: { username: 'alice', password: PASSWORD },
        });
        assert.equal(correct.statusCode, 429);
        assert.equal((await attempt('10.0.0.2')).statusCode, 400, 'another address');
        clock += 59_500;
        assert.deepEqual(json(await attempt('10.0.0.1')), {
          detail: 'Request was throttled. Expected available in 1 second.',
        });
        clock += 500;
        assert.equal((await attempt('10.0.0.1')).statusCode, 400, 'a new window');
      });

      it('answers other methods 405 and unknown routes 404', async () => {
        const app = await buildApp();
        let response = await app.inject({ method: 'GET', url: '/api/auth/token' });
        assert.equal(response.statusCode, 405);
        assert.equal(response.headers['allow'], 'POST');
        assert.deepEqual(json(response), { detail: 'Method "GET" not allowed.' });
        response = await app.inject({ method: 'DELETE', url: '/api/me' });
        assert.equal(response.statusCode, 405);
        assert.equal(response.headers['allow'], 'GET, HEAD');
        const token = await login(app);
        for (const headers of [{}, { authorization: `Token ${token}` }]) {
          response = await app.inject({ method: 'GET', url: '/api/nope', headers });
          assert.equal(response.statusCode, 404);
          assert.deepEqual(json(response), { detail: 'Not found.' });
        }
        response = await app.inject({ method: 'GET', url: '/elsewhere' });
        assert.equal(response.statusCode, 404);
        assert.deepEqual(json(response), { detail: 'Not found.' });
      });
    });

    describe('header authentication', () => {
      it('treats a request without a credential as anonymous, and guards refuse it', async () => {
        const app = await buildApp();
        assert.deepEqual(json(await app.inject('/public')), { anonymous: true });
        for (const url of ['/api/me', '/api/private']) {
          const response = await app.inject(url);
          assert.equal(response.statusCode, 401);
          assert.equal(response.headers['www-authenticate'], 'Token');
          assert.deepEqual(json(response), {
            detail: 'Authentication credentials were not provided.',
          });
        }
        for (const method of ['ticket', 'logout', 'logout-all']) {
          const response = await app.inject({ method: 'POST', url: `/api/auth/${method}` });
          assert.equal(response.statusCode, 401, method);
        }
        // Another scheme is not a Token/Bearer credential: anonymous, as in DRF.
        const basic = await app.inject({
          url: '/public',
          headers: { authorization: 'Basic YWxpY2U6cHc=' },
        });
        assert.deepEqual(json(basic), { anonymous: true });
      });

      it('refuses invalid, malformed, expired and revoked tokens with 401, on any route', async () => {
        const app = await buildApp();
        const me = (authorization: string) =>
          app.inject({ url: '/public', headers: { authorization } });
        const valid = generateToken();
        const typo = valid.slice(0, 10) + (valid[10] === 'a' ? 'b' : 'a') + valid.slice(11);
        for (const authorization of [
          `Token ${valid}`,
          `Token ${typo}`,
          'Token abc',
          'Bearer not-a-jwt',
          'Token',
          'Token a b',
        ]) {
          const response = await me(authorization);
          assert.equal(response.statusCode, 401, authorization);
          assert.equal(response.headers['www-authenticate'], 'Token');
          assert.deepEqual(json(response), { detail: 'Invalid token.' }, authorization);
        }

        const short = await accounts.createToken(alice.id, { ttlMs: 60_000 });
        secrets.add(short.token);
        assert.equal((await me(`Token ${short.token}`)).statusCode, 200);
        clock += 60_000;
        assert.deepEqual(json(await me(`Token ${short.token}`)), { detail: 'Token has expired.' });

        const other = await accounts.createToken(alice.id);
        secrets.add(other.token);
        assert.equal((await me(`Bearer ${other.token}`)).statusCode, 200);
        await store.revokeToken(other.id);
        const response = await me(`Bearer ${other.token}`);
        assert.equal(response.statusCode, 401);
        assert.deepEqual(json(response), { detail: 'Token has been revoked.' });
      });

      it('refuses two Authorization headers, even when both are valid', async () => {
        const app = await buildApp();
        const token = await login(app);
        const response = await app.inject({
          url: '/public',
          // Node's typings allow a list only under a name they do not declare; case is irrelevant.
          headers: { Authorization: [`Token ${token}`, `Token ${token}`] },
        });
        assert.equal(response.statusCode, 401);
        assert.deepEqual(json(response), {
          detail: 'Invalid token header. Only one Authorization header is allowed.',
        });

        // And over a real socket, where Node keeps only the first in `request.headers`.
        const base = await app.listen({ port: 0, host: '127.0.0.1' });
        const real = await rawRequest(
          new URL(base),
          `GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Token ${token}\r\n` +
            'Authorization: Token pcu_other\r\nConnection: close\r\n\r\n',
        );
        assert.equal(real.status, 401);
        assert.deepEqual(json(real), {
          detail: 'Invalid token header. Only one Authorization header is allowed.',
        });
      });

      it('leaves routes that opt out to read their own Authorization header', async () => {
        const app = await buildApp();
        const response = await app.inject({
          method: 'POST',
          url: '/api/publish',
          headers: { authorization: 'Bearer server-api-key' },
        });
        assert.equal(response.statusCode, 200);
        assert.deepEqual(json(response), { key: true, anonymous: true });
        const elsewhere = await app.inject({
          url: '/public',
          headers: { authorization: 'Bearer server-api-key' },
        });
        assert.equal(elsewhere.statusCode, 401);
      });

      it('refuses a ticket sent as a header credential without spending it', async () => {
        const app = await buildApp();
        const token = await login(app);
        const issued = await app.inject({
          method: 'POST',
          url: '/api/auth/ticket',
          headers: { authorization: `Token ${token}` },
        });
        const { ticket } = json(issued) as { ticket: string };
        secrets.add(ticket);
        const response = await app.inject({
          url: '/api/me',
          headers: { authorization: `Bearer ${ticket}` },
        });
        assert.equal(response.statusCode, 401);
        assert.equal((await accounts.consumeTicket(ticket)).user.id, alice.id);
      });

      it('refuses tickets even when the chain has a ticket authenticator', async () => {
        authenticators = [ticketAuthenticator({ store }), ...authenticators];
        const app = await buildApp();
        const { ticket } = await accounts.createTicket(
          alice.id,
          (await accounts.createToken(alice.id)).id,
        );
        secrets.add(ticket);
        const response = await app.inject({
          url: '/api/me',
          headers: { authorization: `Bearer ${ticket}` },
        });
        assert.equal(response.statusCode, 401);
        assert.equal((await accounts.consumeTicket(ticket)).user.id, alice.id);
      });

      it('authenticates a JWT as the user of its claims, without tickets or logout', async () => {
        const app = await buildApp();
        const jwt = await signJwt({ sub: 'auth0|42', preferred_username: 'carol', is_staff: true });
        const headers = { authorization: `Bearer ${jwt}` };
        assert.deepEqual(json(await app.inject({ url: '/api/me', headers })), {
          id: 'auth0|42',
          username: 'carol',
          is_staff: true,
        });
        assert.deepEqual(json(await app.inject({ url: '/api/staff', headers })), { ok: true });
        const numeric = await signJwt({ sub: '7', username: 'dave' });
        assert.deepEqual(
          json(
            await app.inject({ url: '/api/me', headers: { authorization: `Bearer ${numeric}` } }),
          ),
          { id: 7, username: 'dave', is_staff: false },
        );
        for (const action of ['ticket', 'logout', 'logout-all']) {
          const response = await app.inject({
            method: 'POST',
            url: `/api/auth/${action}`,
            headers,
          });
          assert.equal(response.statusCode, 403, action);
          assert.deepEqual(json(response), { detail: 'This action requires a Portcullis token.' });
        }
        const expired = await signJwt({ sub: '7' }, '-1m');
        const response = await app.inject({
          url: '/api/me',
          headers: { authorization: `Bearer ${expired}` },
        });
        assert.equal(response.statusCode, 401);
        assert.deepEqual(json(response), { detail: 'Token has expired.' });
        assert.deepEqual(revoked, { credentials: [], users: [] });
      });

      it('lets staff through requireStaff and refuses others 403', async () => {
        const app = await buildApp();
        const aliceToken = await login(app);
        const bobToken = await login(app, 'bob');
        const staff = (token: string) =>
          app.inject({ url: '/api/staff', headers: { authorization: `Token ${token}` } });
        assert.equal((await staff(bobToken)).statusCode, 200);
        const refused = await staff(aliceToken);
        assert.equal(refused.statusCode, 403);
        assert.deepEqual(json(refused), {
          detail: 'You do not have permission to perform this action.',
        });
        assert.deepEqual(
          json(
            await app.inject({ url: '/api/me', headers: { authorization: `Token ${bobToken}` } }),
          ),
          {
            id: Number((await store.getUserByUsername('bob'))?.id),
            username: 'bob',
            is_staff: true,
          },
        );
      });
    });

    describe('logout', () => {
      it('revokes only the caller’s token and closes its sockets', async () => {
        const app = await buildApp();
        const first = await login(app);
        const second = await login(app);
        // Cached by the authenticator: revocation must still take effect at once.
        assert.equal(
          (await app.inject({ url: '/api/me', headers: { authorization: `Token ${first}` } }))
            .statusCode,
          200,
        );
        const response = await app.inject({
          method: 'POST',
          url: '/api/auth/logout',
          headers: { authorization: `Token ${first}`, 'content-type': 'application/json' },
        });
        assert.equal(response.statusCode, 204);
        const [firstInfo, secondInfo] = await store.listTokens(alice.id);
        assert.notEqual(firstInfo?.revokedAt, null);
        assert.equal(secondInfo?.revokedAt, null);
        assert.deepEqual(revoked.credentials, [firstInfo?.id]);
        const me = (token: string) =>
          app.inject({ url: '/api/me', headers: { authorization: `Token ${token}` } });
        assert.equal((await me(first)).statusCode, 401);
        assert.equal((await me(second)).statusCode, 200);
      });

      it('logout-all revokes every token of the caller and closes every socket', async () => {
        const app = await buildApp();
        const first = await login(app);
        const second = await login(app);
        const bobs = await login(app, 'bob');
        const response = await app.inject({
          method: 'POST',
          url: '/api/auth/logout-all',
          headers: { authorization: `Token ${second}` },
        });
        assert.equal(response.statusCode, 204);
        assert.deepEqual(revoked.users, [alice.id]);
        const me = (token: string) =>
          app.inject({ url: '/api/me', headers: { authorization: `Token ${token}` } });
        assert.equal((await me(first)).statusCode, 401);
        assert.equal((await me(second)).statusCode, 401);
        assert.equal((await me(bobs)).statusCode, 200);
      });

      it('still answers 204 when the sockets cannot be reached, and logs why', async () => {
        const app = await buildApp({
          revoke: {
            credential: async () => {
              throw new Error('layer down');
            },
            user: async () => {},
          },
        });
        const token = await login(app);
        const response = await app.inject({
          method: 'POST',
          url: '/api/auth/logout',
          headers: { authorization: `Token ${token}` },
        });
        assert.equal(response.statusCode, 204);
        assert.match(logs.join(''), /live WebSockets could not be closed/);
      });
    });

    describe('errors', () => {
      it('answers a thrown error 500 without its message, stack or cause, and logs it', async () => {
        const app = await buildApp();
        const response = await app.inject('/api/boom');
        assert.equal(response.statusCode, 500);
        assert.equal(response.headers['content-type'], 'application/json; charset=utf-8');
        assert.deepEqual(json(response), { detail: 'A server error occurred.' });
        assert.match(logs.join(''), /hunter2/, 'the detail goes to the log');
        // A 4xx error that is not a RestError gets the generic text, not its message.
        const teapot = await app.inject('/api/teapot');
        assert.equal(teapot.statusCode, 418);
        assert.deepEqual(json(teapot), { detail: "I'm a Teapot." });
        assert.deepEqual(json(await app.inject('/api/forbidden')), { detail: 'Staff only.' });
      });

      it('keeps credentials out of request logs', async () => {
        const app = await buildApp();
        const token = await login(app);
        await app.inject({
          url: `/public?token=${token}&ticket=pct_x&room=1`,
          headers: { authorization: `Token ${token}` },
        });
        const logged = logs.join('');
        assert.match(logged, /\/public\?token=\[redacted\]&ticket=\[redacted\]&room=1/);
        assert.ok(!logged.includes(token));
      });

      it('maps schema validation errors of the app’s own routes to field errors', async () => {
        const app = await buildApp();
        const token = await login(app);
        const post = (payload: unknown) =>
          app.inject({
            method: 'POST',
            url: '/api/numbers',
            headers: { authorization: `Token ${token}` },
            payload: payload as Record<string, unknown>,
          });
        let response = await post({});
        assert.equal(response.statusCode, 400);
        assert.deepEqual(json(response), { n: ['This field is required.'] });
        response = await post({ n: 'x' });
        assert.deepEqual(json(response), { n: ['A valid integer is required.'] });
        assert.deepEqual(json(await post({ n: 3 })), { n: 3 });
      });

      it('fails closed with 503 when the database is down', async () => {
        const down = openStore(variant.unreachableUrl);
        cleanups.push(() => down.close());
        const downTokens = tokenAuthenticator({ store: down });
        cleanups.push(async () => downTokens.close());
        const app = Fastify({
          logger: { ...restLoggerOptions('debug'), stream: { write: (line) => logs.push(line) } },
        });
        apps.push(app);
        await app.register(portcullisRest, {
          store: down,
          authenticators: [downTokens],
          passwordParams: FAST_SCRYPT,
        });
        app.get('/public', async () => ({ ok: true }));
        let response = await app.inject({
          method: 'POST',
          url: '/api/auth/token',
          payload: { username: 'alice', password: PASSWORD },
        });
        assert.equal(response.statusCode, 503);
        assert.deepEqual(json(response), {
          detail: 'Service temporarily unavailable, try again later.',
        });
        const token = generateToken();
        secrets.add(token);
        for (const url of ['/api/me', '/public']) {
          response = await app.inject({ url, headers: { authorization: `Token ${token}` } });
          assert.equal(response.statusCode, 503, url);
          assert.deepEqual(json(response), {
            detail: 'Service temporarily unavailable, try again later.',
          });
        }
      });
    });

    it('gives a WebSocket on the same server the same user, and closes it on logout', async () => {
      const auth = authMiddleware({
        authenticators: [ticketAuthenticator({ store }), ...authenticators],
        requireAuthentication: true,
        // Its log lines join the app's, so the secrets check covers them too.
        logger: pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) }),
      });
      cleanups.push(() => auth.close());
      const app = await buildApp({ revoke: auth });
      const transport = attachWebSocket(
        app.server,
        auth(urlRouter([route('/ws/me/', WhoAmI.asApp())])),
      );
      cleanups.push(() => transport.close({ timeout: 1_000 }));
      const base = await app.listen({ port: 0, host: '127.0.0.1' });
      const wsBase = base.replace(/^http/, 'ws');

      const loginResponse = await fetch(`${base}/api/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'alice', password: PASSWORD }),
      });
      const { token } = (await loginResponse.json()) as { token: string };
      secrets.add(token);
      const authorization = `Token ${token}`;
      const me = await (await fetch(`${base}/api/me`, { headers: { authorization } })).json();

      const byHeader = await connectClient(`${wsBase}/ws/me/`, { headers: { authorization } });
      assert.deepEqual(await byHeader.receiveJson(), me);

      const ticketResponse = await fetch(`${base}/api/auth/ticket`, {
        method: 'POST',
        headers: { authorization },
      });
      const { ticket } = (await ticketResponse.json()) as { ticket: string };
      secrets.add(ticket);
      const byTicket = await connectClient(`${wsBase}/ws/me/?ticket=${ticket}`);
      assert.deepEqual(await byTicket.receiveJson(), me);

      const otherToken = await login(app);
      const other = await connectClient(`${wsBase}/ws/me/`, {
        headers: { authorization: `Token ${otherToken}` },
      });
      assert.deepEqual(await other.receiveJson(), me);

      const logout = await fetch(`${base}/api/auth/logout`, {
        method: 'POST',
        headers: { authorization },
      });
      assert.equal(logout.status, 204);
      assert.deepEqual(await byHeader.waitForClose(), { code: 4401, reason: 'token revoked' });
      assert.deepEqual(await byTicket.waitForClose(), { code: 4401, reason: 'token revoked' });
      assert.equal(await other.receiveNothing(100), true);
      assert.equal(other.socket.readyState, other.socket.OPEN, 'another token’s socket stays');

      const again = await connectClient(`${wsBase}/ws/me/`, { headers: { authorization } });
      assert.deepEqual(await again.waitForClose(), { code: 4401, reason: 'token revoked' });

      await fetch(`${base}/api/auth/logout-all`, {
        method: 'POST',
        headers: { authorization: `Token ${otherToken}` },
      });
      assert.deepEqual(await other.waitForClose(), { code: 4401, reason: 'token revoked' });
    });
  });
}

describe('portcullisRest options', () => {
  const store = openStore('sqlite::memory:');
  const tokens = tokenAuthenticator({ store });
  const authenticators = [tokens];
  after(async () => {
    tokens.close();
    await store.close();
  });

  it('refuses invalid options at registration with a message naming the option', async () => {
    const cases: [Partial<PortcullisRestOptions>, RegExp][] = [
      [{ store: {} as PortcullisRestOptions['store'] }, /options\.store must be a Store/],
      [{ authenticators: [] }, /options\.authenticators must be a non-empty array/],
      [{ prefix: 'api' }, /options\.prefix must be ''/],
      [{ prefix: '/api/' }, /options\.prefix must be ''/],
      [{ tokenTtlMs: 0 }, /options\.tokenTtlMs must be a positive integer, or null/],
      [{ loginRateLimit: { max: -1 } }, /loginRateLimit\.max must be a non-negative integer/],
      [{ loginRateLimit: { windowMs: 0 } }, /loginRateLimit\.windowMs must be a positive integer/],
      [
        { revoke: {} as NonNullable<PortcullisRestOptions['revoke']> },
        /options\.revoke must be the auth middleware or/,
      ],
    ];
    for (const [options, message] of cases) {
      const app = Fastify();
      await assert.rejects(
        async () => {
          await app.register(portcullisRest, {
            store,
            authenticators,
            ...options,
          } as PortcullisRestOptions);
          await app.ready();
        },
        (error: unknown) => {
          assert.ok(error instanceof TypeError || error instanceof RangeError, String(error));
          assert.match(error.message, message);
          return true;
        },
      );
      await app.close();
    }
  });

  it('refuses to be registered twice in one scope', async () => {
    const app = Fastify();
    await app.register(portcullisRest, { store, authenticators });
    await assert.rejects(async () => {
      await app.register(portcullisRest, { store, authenticators, prefix: '/v2' });
      await app.ready();
    }, /already decorated/);
    await app.close();
  });

  it('mounts at another prefix, with requireUser in the registering scope', async () => {
    const app = Fastify();
    app.get('/early', { preHandler: requireUser }, async () => []);
    await app.register(portcullisRest, { store, authenticators, prefix: '/v1' });
    app.get('/orders', { preHandler: requireUser }, async () => []);
    await app.ready();
    assert.equal((await app.inject('/v1/me')).statusCode, 401);
    assert.equal((await app.inject('/orders')).statusCode, 401);
    assert.equal((await app.inject('/early')).statusCode, 401, 'declared before the plugin');
    assert.equal((await app.inject('/api/me')).statusCode, 404);
    await app.close();
  });

  it('fails a guarded route outside the plugin’s scope loudly, without leaking why', async () => {
    const app = Fastify();
    installErrorHandlers(app);
    await app.register(async (sibling) => {
      await sibling.register(portcullisRest, { store, authenticators });
    });
    app.get('/orders', { preHandler: requireUser }, async () => []);
    await app.ready();
    const response = await app.inject('/orders');
    assert.equal(response.statusCode, 500);
    assert.deepEqual(JSON.parse(response.body), { detail: 'A server error occurred.' });
    await app.close();
  });
});

describe('RestError', () => {
  it('accepts only error statuses', () => {
    assert.throws(() => new RestError(200, 'ok'), {
      name: 'RangeError',
      message: 'RestError: statusCode must be an integer from 400 to 599',
    });
    const error = new RestError(409, { title: ['Taken.'] });
    assert.deepEqual(error.body, { title: ['Taken.'] });
    assert.equal(error.statusCode, 409);
  });
});
