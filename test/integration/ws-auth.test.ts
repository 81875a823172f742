// Every credential transport of SPEC §3, accepted and refused, over real sockets, on
// SQLite and PostgreSQL.
import { Accounts } from '../../src/auth/accounts.js';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { tokenAuthenticator, ticketAuthenticator } from '../../src/auth/authenticators/token.js';
import { jwtAuthenticator } from '../../src/auth/authenticators/jwt.js';
import { WebsocketConsumer } from '../../src/consumer/consumer.js';
import { MemoryChannelLayer } from '../../src/layers/memory.js';
import { authMiddleware } from '../../src/middleware/auth.js';
import type {
  AuthMiddleware,
  AuthMiddlewareOptions,
  AuthResultEvent,
} from '../../src/middleware/auth.js';
import { route, urlRouter } from '../../src/routing/url-router.js';
import { connectClient, HandshakeRefusedError } from '../../src/testing/client.js';
import type { TestClient, TestClientOptions } from '../../src/testing/client.js';
import { listen } from '../../src/transport/ws.js';
import type { RunningServer } from '../../src/transport/ws.js';
import type { Store } from '../../src/store/store.js';
import { storeVariants } from '../helpers/stores.js';
import type { OpenedStore } from '../helpers/stores.js';

const JWT_SECRET = 'a-test-secret-that-is-at-least-32-bytes-long!';
const ORIGIN = 'http://localhost:8000';

/** Every line the servers logged during this file, to grep for secrets at the end. */
const logLines: string[] = [];
const logger: Logger = pino({ level: 'debug' }, { write: (line: string) => logLines.push(line) });
/** Every secret issued during this file. */
const secrets: string[] = [];

class WhoAmI extends WebsocketConsumer {
  override connect(): void {
    this.accept();
    this.send(
      JSON.stringify({
        id: this.scope.user.id,
        username: this.scope.user.username,
        anonymous: this.scope.user.isAnonymous,
        method: this.scope.auth?.method ?? null,
        authenticator: this.scope.auth?.authenticator ?? null,
      }),
    );
  }
  override receive(data: string | Uint8Array): void {
    this.send(data);
  }
}

function hs256(
  claims: Record<string, unknown>,
  expiresIn: string | number = '1h',
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(JWT_SECRET));
}

function b64url(text: string): string {
  return Buffer.from(text).toString('base64url');
}

interface Fixture {
  readonly store: Store;
  readonly server: RunningServer;
  readonly auth: AuthMiddleware;
  readonly events: AuthResultEvent[];
  alice: { id: string; token: string; tokenId: string };
  bob: { id: string; token: string; tokenId: string };
}

async function startFixture(
  store: Store,
  overrides: Partial<AuthMiddlewareOptions> = {},
): Promise<Omit<Fixture, 'alice' | 'bob'>> {
  const events: AuthResultEvent[] = [];
  const layer = new MemoryChannelLayer();
  const auth = authMiddleware({
    authenticators: [
      tokenAuthenticator({ store }),
      ticketAuthenticator({ store }),
      jwtAuthenticator({ secret: JWT_SECRET }),
    ],
    allowedOrigins: [ORIGIN],
    layer,
    logger,
    onResult: (event) => events.push(event),
    ...overrides,
  });
  const app = auth(urlRouter([route('/ws/', WhoAmI.asApp({ layer, logger }))]));
  const server = await listen(app, { logger });
  return { store, server, auth, events };
}

async function makeUser(
  store: Store,
  username: string,
): Promise<{ id: string; token: string; tokenId: string }> {
  const accounts = new Accounts(store);
  const user = await accounts.createUser({ username, password: `${username}-password-1` });
  const created = await accounts.createToken(user.id, { name: 'test' });
  secrets.push(created.token);
  return { id: user.id, token: created.token, tokenId: created.id };
}

/** Upgrades with raw header lines and reads the server's close frame. */
function rawHandshakeClose(
  port: number,
  path: string,
  headers: string[],
): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({
      host: '127.0.0.1',
      port,
      path,
      headers: [
        'Connection',
        'Upgrade',
        'Upgrade',
        'websocket',
        'Sec-WebSocket-Version',
        '13',
        'Sec-WebSocket-Key',
        'dGhlIHNhbXBsZSBub25jZQ==',
        ...headers,
      ],
    });
    request.on('upgrade', (_response, socket, head) => {
      let buffer = head;
      const tryParse = (): void => {
        // Unmasked server frame: skip data frames, stop at the close frame (opcode 8).
        while (buffer.length >= 2) {
          const opcode = buffer[0]! & 0x0f;
          const length = buffer[1]! & 0x7f;
          if (length > 125 || buffer.length < 2 + length) return;
          if (opcode === 8) {
            socket.destroy();
            resolve({
              code: buffer.readUInt16BE(2),
              reason: buffer.subarray(4, 2 + length).toString(),
            });
            return;
          }
          buffer = buffer.subarray(2 + length);
        }
      };
      socket.on('data', (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk]);
        tryParse();
      });
      tryParse();
    });
    request.on('response', (response) => reject(new Error(`HTTP ${response.statusCode}`)));
    request.on('error', reject);
    request.end();
  });
}

interface Identity {
  id: string;
  username: string;
  anonymous: boolean;
  method: string | null;
  authenticator: string | null;
}

for (const variant of storeVariants) {
  describe(`websocket authentication (${variant.name})`, await variant.options, () => {
    let opened: OpenedStore;
    let fixture: Fixture;
    const url = (path = '/ws/') => `${fixture.server.url}${path}`;
    const open = (options: TestClientOptions = {}, path?: string): Promise<TestClient> =>
      connectClient(url(path), options);
    const identity = async (client: TestClient): Promise<Identity> =>
      (await client.receiveJson()) as Identity;
    const refused = async (
      options: TestClientOptions,
      expected: { code: number; reason: string },
      path?: string,
    ) => {
      const client = await open(options, path);
      assert.deepEqual(await client.waitForClose(), expected);
    };
    const invalid = { code: 4401, reason: 'invalid credentials' };

    before(async () => {
      opened = await variant.open();
      const started = await startFixture(opened.store);
      fixture = {
        ...started,
        alice: await makeUser(opened.store, 'alice'),
        bob: await makeUser(opened.store, 'bob'),
      };
    });
    after(async () => {
      await fixture.server.close();
      await fixture.auth.close();
      await opened.cleanup();
    });

    describe('header', () => {
      it('accepts Token and Bearer schemes', async () => {
        for (const scheme of ['Token', 'Bearer', 'token']) {
          const client = await open({
            headers: { Authorization: `${scheme} ${fixture.alice.token}` },
          });
          assert.deepEqual(await identity(client), {
            id: fixture.alice.id,
            username: 'alice',
            anonymous: false,
            method: 'header',
            authenticator: 'token',
          });
          await client.close();
        }
      });

      it('leaves connections without a credential anonymous', async () => {
        const client = await open();
        assert.equal((await identity(client)).anonymous, true);
        await client.close();
      });

      it('refuses malformed, mistyped and unknown tokens', async () => {
        const typo =
          fixture.alice.token.slice(0, 10) +
          (fixture.alice.token[10] === 'a' ? 'b' : 'a') +
          fixture.alice.token.slice(11);
        for (const value of [
          'Token',
          'Bearer ',
          `Token ${typo}`,
          'Token pcu_short',
          'Bearer not-a-known-credential',
        ]) {
          await refused({ headers: { Authorization: value } }, invalid);
        }
      });

      it('ignores other schemes', async () => {
        const client = await open({ headers: { Authorization: 'Basic dXNlcjpwYXNz' } });
        assert.equal((await identity(client)).anonymous, true);
        await client.close();
      });

      it('refuses two Authorization headers', async () => {
        // Clients merge a repeated header; a raw request sends two lines.
        const closed = await rawHandshakeClose(fixture.server.port, '/ws/', [
          'Authorization',
          `Token ${fixture.alice.token}`,
          'Authorization',
          `Token ${fixture.bob.token}`,
        ]);
        assert.deepEqual(closed, invalid);
      });
    });

    describe('cookie', () => {
      it('accepts the key cookie from a client without Origin (mobile)', async () => {
        const client = await open({ headers: { Cookie: `key=${fixture.alice.token}` } });
        assert.equal((await identity(client)).method, 'cookie');
        await client.close();
      });

      it('accepts a JWT cookie from an allowed origin', async () => {
        const jwt = await hs256({ sub: '900', username: 'jwt-user' });
        secrets.push(jwt);
        const client = await open({ origin: ORIGIN, headers: { Cookie: `JWT=${jwt}` } });
        const who = await identity(client);
        assert.deepEqual([who.id, who.username, who.authenticator], ['900', 'jwt-user', 'jwt']);
        await client.close();
      });

      it('refuses cookies from another origin and from origin null (4403)', async () => {
        for (const origin of ['http://evil.example', 'null', 'http://localhost:8001']) {
          await refused(
            { origin, headers: { Cookie: `key=${fixture.alice.token}` } },
            { code: 4403, reason: 'origin not allowed' },
          );
        }
      });

      it('refuses a header and a cookie naming different users', async () => {
        await refused(
          {
            headers: {
              Authorization: `Token ${fixture.alice.token}`,
              Cookie: `key=${fixture.bob.token}`,
            },
          },
          invalid,
        );
        const same = await open({
          headers: {
            Authorization: `Token ${fixture.alice.token}`,
            Cookie: `key=${fixture.alice.token}`,
          },
        });
        assert.equal((await identity(same)).username, 'alice');
        await same.close();
      });
    });

    describe('ticket', () => {
      it('accepts a ticket once; a replay fails', async () => {
        const { ticket } = await new Accounts(fixture.store).createTicket(
          fixture.alice.id,
          fixture.alice.tokenId,
        );
        secrets.push(ticket);
        const client = await open({}, `/ws/?ticket=${ticket}`);
        const who = await identity(client);
        assert.deepEqual(
          [who.username, who.method, who.authenticator],
          ['alice', 'ticket', 'ticket'],
        );
        await client.close();
        await refused({}, invalid, `/ws/?ticket=${ticket}`);
      });

      it('refuses a malformed ticket and two tickets', async () => {
        await refused({}, invalid, '/ws/?ticket=pct_nope');
        const first = await new Accounts(fixture.store).createTicket(
          fixture.alice.id,
          fixture.alice.tokenId,
        );
        const second = await new Accounts(fixture.store).createTicket(
          fixture.alice.id,
          fixture.alice.tokenId,
        );
        secrets.push(first.ticket, second.ticket);
        await refused({}, invalid, `/ws/?ticket=${first.ticket}&ticket=${second.ticket}`);
      });
    });

    describe('subprotocol', () => {
      it('authenticates and selects the app protocol, never the bearer entry', async () => {
        const client = await open({
          protocols: ['chat.v1', `portcullis.bearer.${b64url(fixture.bob.token)}`],
        });
        assert.equal(client.protocol, 'chat.v1');
        const who = await identity(client);
        assert.deepEqual([who.username, who.method], ['bob', 'subprotocol']);
        await client.close();
      });

      it('refuses two bearer entries and bad encodings', async () => {
        await refused(
          {
            protocols: [
              'chat',
              `portcullis.bearer.${b64url(fixture.alice.token)}`,
              `portcullis.bearer.${b64url(fixture.bob.token)}`,
            ],
          },
          invalid,
        );
        for (const entry of [
          'portcullis.bearer.a',
          'portcullis.bearer.!!!!',
          'portcullis.bearer.%41%41',
        ]) {
          await refused({ protocols: ['chat', entry] }, invalid);
        }
      });
    });

    describe('query token', () => {
      it('is ignored by default', async () => {
        const client = await open({}, `/ws/?token=${fixture.alice.token}`);
        assert.equal((await identity(client)).anonymous, true);
        await client.close();
      });
    });

    describe('JWT', () => {
      it('accepts a valid HS256 token and refuses alg none and expired ones', async () => {
        const jwt = await hs256({ sub: '42', username: 'jay', is_staff: true });
        secrets.push(jwt);
        const client = await open({ headers: { Authorization: `Bearer ${jwt}` } });
        assert.deepEqual((await identity(client)).username, 'jay');
        await client.close();
        const header = b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }));
        const payload = b64url(
          JSON.stringify({ sub: '42', exp: Math.floor(Date.now() / 1000) + 60 }),
        );
        await refused({ headers: { Authorization: `Bearer ${header}.${payload}.` } }, invalid);
        const expired = await hs256({ sub: '42' }, Math.floor(Date.now() / 1000) - 10);
        await refused(
          { headers: { Authorization: `Bearer ${expired}` } },
          { code: 4401, reason: 'token expired' },
        );
      });
    });

    describe('lifetime', () => {
      it('refuses a revoked token, and revocation closes its live sockets 4401 token revoked', async () => {
        const carol = await makeUser(fixture.store, 'carol');
        const header = { headers: { Authorization: `Token ${carol.token}` } };
        const viaHeader = await open(header);
        const viaSubprotocol = await open({
          protocols: ['chat', `portcullis.bearer.${b64url(carol.token)}`],
        });
        await identity(viaHeader);
        await identity(viaSubprotocol);
        assert.equal(await fixture.store.revokeToken(carol.tokenId), true);
        await fixture.auth.revokeCredential(carol.tokenId);
        const revoked = { code: 4401, reason: 'token revoked' };
        assert.deepEqual(await viaHeader.waitForClose(), revoked);
        assert.deepEqual(await viaSubprotocol.waitForClose(), revoked);
        await refused(header, revoked);
      });

      it('closes every socket of a user on revokeUser', async () => {
        const dave = await makeUser(fixture.store, 'dave');
        const second = await new Accounts(fixture.store).createToken(dave.id);
        secrets.push(second.token);
        const a = await open({ headers: { Authorization: `Token ${dave.token}` } });
        const b = await open({ headers: { Authorization: `Token ${second.token}` } });
        const alice = await open({ headers: { Authorization: `Token ${fixture.alice.token}` } });
        await Promise.all([identity(a), identity(b), identity(alice)]);
        await fixture.store.revokeUserTokens(dave.id);
        await fixture.auth.revokeUser(dave.id);
        assert.equal((await a.waitForClose()).reason, 'token revoked');
        assert.equal((await b.waitForClose()).reason, 'token revoked');
        assert.equal(await alice.receiveNothing(50), true);
        alice.send('still open');
        assert.equal(await alice.receive(), 'still open');
        await alice.close();
      });
    });

    describe('metrics hook', () => {
      it('reports outcomes by transport without credentials', () => {
        const outcomes = new Set(
          fixture.events.map((event) => `${event.transport}:${event.outcome}`),
        );
        for (const expected of [
          'header:success',
          'cookie:origin',
          'ticket:success',
          'subprotocol:success',
          'none:anonymous',
        ]) {
          assert.ok(outcomes.has(expected), `${expected} in ${[...outcomes].join(',')}`);
        }
      });
    });
  });
}

describe('websocket authentication: required mode, first message, limits', () => {
  let opened: OpenedStore;
  let server: RunningServer;
  let auth: AuthMiddleware;
  let token: string;
  before(async () => {
    opened = await storeVariants[0]!.open();
    const started = await startFixture(opened.store, {
      requireAuthentication: true,
      firstMessageTimeout: 150,
      maxFailures: 3,
      transports: { query: true },
    });
    server = started.server;
    auth = started.auth;
    token = (await makeUser(opened.store, 'erin')).token;
  });
  after(async () => {
    await server.close();
    await auth.close();
    await opened.cleanup();
  });

  it('authenticates with the first message, and holds later frames until then', async () => {
    const client = await connectClient(`${server.url}/ws/`);
    client.sendJson({ type: 'auth', token });
    client.send('queued behind auth');
    const who = (await client.receiveJson()) as Identity;
    assert.deepEqual([who.username, who.method], ['erin', 'first-message']);
    assert.equal(await client.receive(), 'queued behind auth');
    await client.close();
  });

  it('refuses a first frame that is not an auth frame', async () => {
    const client = await connectClient(`${server.url}/ws/`);
    client.sendJson({ command: 'join', room: 1 });
    assert.deepEqual(await client.waitForClose(), {
      code: 4401,
      reason: 'authentication required',
    });
  });

  it('closes 4408 when no credential arrives in the window', async () => {
    const client = await connectClient(`${server.url}/ws/`);
    assert.deepEqual(await client.waitForClose(), { code: 4408, reason: 'authentication timeout' });
  });

  it('accepts a query token only when switched on', async () => {
    const client = await connectClient(`${server.url}/ws/?token=${token}`);
    assert.equal(((await client.receiveJson()) as Identity).method, 'query');
    await client.close();
  });

  it('rate-limits failed authentications per address (4429)', async () => {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const client = await connectClient(`${server.url}/ws/`, {
        headers: { Authorization: 'Token pcu_bad' },
      });
      assert.equal((await client.waitForClose()).code, 4401);
    }
    const blocked = await connectClient(`${server.url}/ws/`, {
      headers: { Authorization: `Token ${token}` },
    });
    assert.deepEqual(await blocked.waitForClose(), { code: 4429, reason: 'too many requests' });
  });
});

describe('websocket authentication: refusing at the handshake', () => {
  it('answers 401 with WWW-Authenticate and 403 for a foreign origin', async () => {
    const opened = await storeVariants[0]!.open();
    const { server, auth } = await startFixture(opened.store, { refuseAtHandshake: true });
    const { token } = await makeUser(opened.store, 'frank');
    try {
      await assert.rejects(
        connectClient(`${server.url}/ws/`, { headers: { Authorization: 'Token pcu_bad' } }),
        (error: unknown) =>
          error instanceof HandshakeRefusedError &&
          error.status === 401 &&
          String(error.headers['www-authenticate']).startsWith('Bearer'),
      );
      await assert.rejects(
        connectClient(`${server.url}/ws/`, {
          origin: 'http://evil.example',
          headers: { Cookie: `key=${token}` },
        }),
        (error: unknown) => error instanceof HandshakeRefusedError && error.status === 403,
      );
    } finally {
      await server.close();
      await auth.close();
      await opened.cleanup();
    }
  });
});

describe('websocket authentication: re-checking live sessions after an outage', () => {
  it('closes sessions whose token was revoked while revocations could not be heard', async () => {
    const opened = await storeVariants[0]!.open();
    const store = opened.store;
    // The default re-check asks the token authenticator, which reads the token rows.
    const { server, auth } = await startFixture(store);
    try {
      const gina = await makeUser(store, 'gina');
      const hank = await makeUser(store, 'hank');
      const revoked = await connectClient(`${server.url}/ws/`, {
        headers: { Authorization: `Token ${gina.token}` },
      });
      const kept = await connectClient(`${server.url}/ws/`, {
        headers: { Authorization: `Token ${hank.token}` },
      });
      await revoked.receiveJson();
      await kept.receiveJson();
      assert.equal(auth.size, 2);
      // Revoked in the database only: no broadcast reached this process.
      await store.revokeToken(gina.tokenId);
      assert.equal(await revoked.receiveNothing(30), true);
      assert.equal(await auth.recheckAll(), 1);
      assert.deepEqual(await revoked.waitForClose(), { code: 4401, reason: 'token revoked' });
      kept.send('still here');
      assert.equal(await kept.receive(), 'still here');
      await kept.close();
    } finally {
      await server.close();
      await auth.close();
      await opened.cleanup();
    }
  });
});

describe('logs', () => {
  it('never contain an issued token, ticket or JWT', () => {
    assert.ok(logLines.length > 0, 'the servers logged something');
    assert.ok(secrets.length > 5);
    const everything = logLines.join('\n');
    for (const secret of secrets) {
      assert.equal(everything.includes(secret), false, 'a secret appeared in the logs');
      assert.equal(
        everything.includes(secret.slice(4, 24)),
        false,
        'part of a secret appeared in the logs',
      );
    }
  });
});
