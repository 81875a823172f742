// Issue 16 (auth part) and issue 13 (identity) defects, each over real sockets against a
// real gateway: pipelined auth frames, duplicate credential cookies, JWT refresh tokens,
// NUL bytes before the database, connection and ticket limits, and users of different
// sources sharing an id.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import type { Writable } from 'node:stream';
import * as ws from 'ws';
import { Accounts } from '../../src/auth/accounts.js';
import { loadConfig } from '../../src/gateway/config.js';
import { startGateway } from '../../src/gateway/server.js';
import type { Gateway } from '../../src/gateway/server.js';
import { connectClient, HandshakeRefusedError } from '../../src/testing/client.js';
import type { TestClient } from '../../src/testing/client.js';
import { createPostgresSchema, serviceSuiteOptions, serviceUrl } from '../helpers/services.js';

/** What ws exports and @types/ws leaves out: its frame parser and frame builder. */
interface WsFraming {
  readonly Receiver: new (options: { isServer: boolean }) => Writable;
  readonly Sender: {
    frame(
      data: Buffer,
      options: {
        fin: boolean;
        opcode: number;
        mask: boolean;
        maskKey: Buffer;
        readOnly: boolean;
        rsv1: boolean;
      },
    ): Buffer[];
  };
}
const { Receiver, Sender } = ws as unknown as WsFraming;

const JWT_SECRET = 'jwt-secret-for-the-defect-tests-0123456789';
const logger = pino({ level: 'silent' });

/** A WebSocket client on a raw TCP socket: any header lines, frames written as asked. */
interface RawClient {
  /** Writes every frame in one TCP write. */
  sendTexts(texts: readonly string[]): void;
  nextMessage(timeoutMs?: number): Promise<string | undefined>;
  /** The close frame, or code 0 when none came within `timeoutMs`. */
  closed(timeoutMs?: number): Promise<{ code: number; reason: string }>;
  destroy(): void;
}

function rawClient(port: number, path: string, headerLines: readonly string[]): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const messages: string[] = [];
    const wakers: (() => void)[] = [];
    let close: { code: number; reason: string } | undefined;
    const wake = (): void => {
      for (const waker of wakers.splice(0)) waker();
    };
    const receiver = new Receiver({ isServer: false });
    receiver.on('message', (data: Buffer) => {
      messages.push(data.toString());
      wake();
    });
    receiver.on('conclude', (code: number, reason: Buffer) => {
      close = { code, reason: reason.toString() };
      wake();
    });
    socket.once('error', reject);
    socket.once('close', () => {
      close ??= { code: 1006, reason: '' };
      wake();
    });
    let head = Buffer.alloc(0);
    const onHead = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onHead);
      const status = head.subarray(0, end).toString().split('\r\n')[0] ?? '';
      if (!status.includes(' 101 ')) {
        reject(new Error(`handshake answered ${status}`));
        socket.destroy();
        return;
      }
      receiver.write(head.subarray(end + 4));
      socket.on('data', (data: Buffer) => receiver.write(data));
      resolve({
        sendTexts(texts) {
          const frames = texts.flatMap((text) =>
            Sender.frame(Buffer.from(text), {
              fin: true,
              opcode: 1,
              mask: true,
              maskKey: randomBytes(4),
              readOnly: false,
              rsv1: false,
            }),
          );
          socket.write(Buffer.concat(frames));
        },
        async nextMessage(timeoutMs = 1_000) {
          const deadline = Date.now() + timeoutMs;
          while (messages.length === 0 && close === undefined && Date.now() < deadline) {
            await new Promise<void>((done) => {
              wakers.push(done);
              setTimeout(done, deadline - Date.now()).unref();
            });
          }
          return messages.shift();
        },
        async closed(timeoutMs = 5_000) {
          const deadline = Date.now() + timeoutMs;
          while (close === undefined && Date.now() < deadline) {
            await new Promise<void>((done) => {
              wakers.push(done);
              setTimeout(done, deadline - Date.now()).unref();
            });
          }
          return close ?? { code: 0, reason: 'still open' };
        },
        destroy: () => socket.destroy(),
      });
    };
    socket.on('data', onHead);
    socket.write(
      [
        `GET ${path} HTTP/1.1`,
        `Host: 127.0.0.1:${port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
        ...headerLines,
        '',
        '',
      ].join('\r\n'),
    );
  });
}

async function jwtFor(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(JWT_SECRET));
}

async function post(gateway: Gateway, path: string, body: unknown, token?: string) {
  return fetch(`${gateway.url}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token === undefined ? {} : { authorization: `Token ${token}` }),
    },
    body: JSON.stringify(body),
  });
}

describe('auth defects (issue 16, 13) against the gateway', () => {
  let directory: string;
  let gateway: Gateway;
  let port: number;
  let wsUrl: string;
  let alice: { id: string; token: string };
  let bob: { id: string; token: string };
  const clients: TestClient[] = [];

  before(async () => {
    directory = mkdtempSync(join(tmpdir(), 'portcullis-defects-'));
    const config = loadConfig({
      env: {
        DATABASE_URL: `sqlite:${join(directory, 'gateway.db')}`,
        JWT_SECRET,
        MAX_CONNECTIONS_PER_USER: '3',
        LOG_LEVEL: 'silent',
      },
      flags: { port: 0 },
    });
    gateway = await startGateway(config, { logger });
    port = gateway.port;
    wsUrl = `${gateway.url.replace('http', 'ws')}/ws/chat/`;
    const accounts: Accounts = gateway.accounts;
    const make = async (username: string) => {
      const user = await accounts.createUser({ username, password: `${username}-password-1` });
      return { id: user.id, token: (await accounts.createToken(user.id)).token };
    };
    alice = await make('alice');
    bob = await make('bob');
    await gateway.store.createRoom({ title: 'Lobby' });
  });

  after(async () => {
    for (const client of clients) await client.close().catch(() => undefined);
    await gateway.close();
    rmSync(directory, { recursive: true, force: true });
  });

  const open = async (headers: Record<string, string>): Promise<TestClient> => {
    const client = await connectClient(wsUrl, { headers });
    clients.push(client);
    return client;
  };

  describe('an auth frame pipelined behind the first (16.1)', () => {
    it('naming another user closes 4401, however fast it arrives', async () => {
      const client = await rawClient(port, '/ws/chat/', []);
      client.sendTexts([
        JSON.stringify({ type: 'auth', token: alice.token }),
        JSON.stringify({ type: 'auth', token: bob.token }),
      ]);
      assert.deepEqual(await client.closed(), { code: 4401, reason: 'invalid credentials' });
      client.destroy();
    });

    it('naming the same user never reaches the app', async () => {
      const again = (await gateway.accounts.createToken(alice.id)).token;
      const client = await rawClient(port, '/ws/chat/', []);
      client.sendTexts([
        JSON.stringify({ type: 'auth', token: alice.token }),
        JSON.stringify({ type: 'auth', token: again }),
        JSON.stringify({ command: 'join', room: 1 }),
      ]);
      // The app's first answer is the join: the auth frame was not an UNKNOWN_COMMAND.
      const first = await client.nextMessage(2_000);
      assert.ok(first !== undefined, 'no answer');
      assert.deepEqual(JSON.parse(first), { join: '1', title: 'Lobby' });
      assert.equal(await client.nextMessage(200), undefined);
      client.destroy();
    });

    it('behind a header credential, naming another user closes 4401', async () => {
      const client = await rawClient(port, '/ws/chat/', [`Authorization: Token ${alice.token}`]);
      client.sendTexts([JSON.stringify({ type: 'auth', token: bob.token })]);
      assert.deepEqual(await client.closed(), { code: 4401, reason: 'invalid credentials' });
      client.destroy();
    });
  });

  describe('duplicate credential cookies (16.2)', () => {
    it('conflicting values in one Cookie header are refused (4401)', async () => {
      const client = await rawClient(port, '/ws/chat/', [
        `Cookie: key=${alice.token}; key=${bob.token}`,
      ]);
      assert.deepEqual(await client.closed(), { code: 4401, reason: 'invalid credentials' });
      client.destroy();
    });

    it('conflicting values in two Cookie headers are refused (4401)', async () => {
      const client = await rawClient(port, '/ws/chat/', [
        `Cookie: key=${bob.token}`,
        `Cookie: key=${alice.token}`,
      ]);
      assert.deepEqual(await client.closed(), { code: 4401, reason: 'invalid credentials' });
      client.destroy();
    });

    it('the same value twice is one credential', async () => {
      const client = await rawClient(port, '/ws/chat/', [
        `Cookie: key=${alice.token}; theme=dark; key=${alice.token}`,
      ]);
      client.sendTexts([JSON.stringify({ command: 'join', room: 1 })]);
      const answer = await client.nextMessage(2_000);
      assert.deepEqual(JSON.parse(answer ?? 'null'), { join: '1', title: 'Lobby' });
      client.destroy();
    });
  });

  describe('JWT refresh tokens (16.3, SPEC §3)', () => {
    for (const transport of ['header', 'cookie'] as const) {
      it(`are refused on the ${transport} (4401), access tokens accepted`, async () => {
        const refresh = await jwtFor({ sub: '77', token_type: 'refresh', jti: 'r-77' });
        const access = await jwtFor({ sub: '77', token_type: 'access', username: 'jay' });
        const headers = (token: string): Record<string, string> =>
          transport === 'header'
            ? { Authorization: `Bearer ${token}` }
            : { Cookie: `JWT=${token}` };
        const refused = await open(headers(refresh));
        assert.deepEqual(await refused.waitForClose(), {
          code: 4401,
          reason: 'invalid credentials',
        });
        const accepted = await open(headers(access));
        accepted.sendJson({ command: 'join', room: 1 });
        assert.deepEqual(await accepted.receiveJson(), { join: '1', title: 'Lobby' });
        await accepted.close();
      });
    }
  });

  describe('limits (16.8)', () => {
    it('closes a user past its connection limit with 4429 too many connections', async () => {
      const carol = await gateway.accounts.createUser({ username: 'carol' });
      const token = (await gateway.accounts.createToken(carol.id)).token;
      const held: TestClient[] = [];
      for (let index = 0; index < 3; index += 1) {
        const client = await open({ Authorization: `Token ${token}` });
        client.sendJson({ command: 'join', room: 1 });
        assert.deepEqual(await client.receiveJson(), { join: '1', title: 'Lobby' });
        held.push(client);
      }
      const fourth = await open({ Authorization: `Token ${token}` });
      assert.deepEqual(await fourth.waitForClose(), {
        code: 4429,
        reason: 'too many connections',
      });
      // Another user is not affected; a place freed is usable again.
      const other = await open({ Authorization: `Token ${bob.token}` });
      other.sendJson({ command: 'join', room: 1 });
      assert.deepEqual(await other.receiveJson(), { join: '1', title: 'Lobby' });
      await held[0]!.close();
      const fifth = await open({ Authorization: `Token ${token}` });
      fifth.sendJson({ command: 'join', room: 1 });
      assert.deepEqual(await fifth.receiveJson(), { join: '1', title: 'Lobby' });
      for (const client of [...held.slice(1), other, fifth]) await client.close();
    });

    it('rate-limits ticket issuance per user: 429 with a JSON body', async () => {
      const dave = await gateway.accounts.createUser({ username: 'dave' });
      const token = (await gateway.accounts.createToken(dave.id)).token;
      for (let index = 0; index < 30; index += 1) {
        assert.equal((await post(gateway, '/api/auth/ticket', {}, token)).status, 200);
      }
      const throttled = await post(gateway, '/api/auth/ticket', {}, token);
      assert.equal(throttled.status, 429);
      assert.match(throttled.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/);
      const body = (await throttled.json()) as { detail: string };
      assert.match(body.detail, /^Request was throttled\. Expected available in \d+ seconds?\.$/);
      // Per user: another user still gets tickets.
      assert.equal((await post(gateway, '/api/auth/ticket', {}, bob.token)).status, 200);
    });
  });

  describe('identity: (source, id) (issue 13)', () => {
    it('a JWT user whose sub equals a local user id is another user in presence and revocation', async () => {
      const erin = await gateway.accounts.createUser({ username: 'erin' });
      const erinToken = (await gateway.accounts.createToken(erin.id)).token;
      // The JWT user's id is erin's id, from another source.
      const jwt = await jwtFor({ sub: erin.id, username: 'jwt-erin' });
      const local = await open({ Authorization: `Token ${erinToken}` });
      local.sendJson({ command: 'join', room: 1 });
      assert.deepEqual(await local.receiveJson(), { join: '1', title: 'Lobby' });
      const remote = await open({ Authorization: `Bearer ${jwt}` });
      remote.sendJson({ command: 'join', room: 1 });
      assert.deepEqual(await remote.receiveJson(), { join: '1', title: 'Lobby' });
      // Presence: the local user sees the JWT user enter; they are not one member.
      assert.deepEqual(await local.receiveJson(), {
        msg_type: 4,
        room: '1',
        username: 'jwt-erin',
      });
      // Revocation by user: the local user's logout-all leaves the JWT user's socket open.
      assert.equal((await post(gateway, '/api/auth/logout-all', {}, erinToken)).status, 204);
      assert.deepEqual(await local.waitForClose(), { code: 4401, reason: 'token revoked' });
      assert.deepEqual(await remote.receiveJson(), { msg_type: 5, room: '1', username: 'erin' });
      remote.sendJson({ command: 'send', room: 1, message: 'still here' });
      assert.deepEqual(await remote.receiveJson(), {
        msg_type: 0,
        room: '1',
        username: 'jwt-erin',
        message: 'still here',
      });
      await remote.close();
    });
  });
});

describe('HANDSHAKE_REFUSAL=true (SPEC §5, §8)', () => {
  let directory: string;
  let gateway: Gateway;
  let token: string;

  before(async () => {
    directory = mkdtempSync(join(tmpdir(), 'portcullis-refusal-'));
    const config = loadConfig({
      env: {
        DATABASE_URL: `sqlite:${join(directory, 'gateway.db')}`,
        HANDSHAKE_REFUSAL: 'true',
        LOG_LEVEL: 'silent',
      },
      flags: { port: 0 },
    });
    gateway = await startGateway(config, { logger });
    const user = await gateway.accounts.createUser({ username: 'gail' });
    token = (await gateway.accounts.createToken(user.id)).token;
  });

  after(async () => {
    await gateway.close();
    rmSync(directory, { recursive: true, force: true });
  });

  const refusal = async (options: Parameters<typeof connectClient>[1]) => {
    const url = `${gateway.url.replace('http', 'ws')}/ws/chat/`;
    try {
      const client = await connectClient(url, options);
      await client.close();
      return { status: 101, challenge: undefined };
    } catch (error) {
      assert.ok(error instanceof HandshakeRefusedError, String(error));
      return { status: error.status, challenge: error.headers['www-authenticate'] };
    }
  };

  it('answers missing and bad credentials 401 with WWW-Authenticate', async () => {
    assert.deepEqual(await refusal({}), { status: 401, challenge: 'Bearer realm="portcullis"' });
    assert.deepEqual(await refusal({ headers: { Authorization: 'Token pcu_wrong' } }), {
      status: 401,
      challenge: 'Bearer realm="portcullis"',
    });
  });

  it('answers a cookie from a refused origin 403, and lets a good credential in', async () => {
    assert.deepEqual(
      await refusal({ headers: { Cookie: `key=${token}` }, origin: 'https://evil.test' }),
      { status: 403, challenge: undefined },
    );
    assert.equal((await refusal({ headers: { Authorization: `Token ${token}` } })).status, 101);
  });
});

describe(
  'text that a driver cannot hold is refused before it (16.4)',
  await serviceSuiteOptions('postgres'),
  () => {
    let schema: Awaited<ReturnType<typeof createPostgresSchema>>;
    let gateway: Gateway;

    before(async () => {
      schema = await createPostgresSchema(await serviceUrl('postgres'));
      const config = loadConfig({
        env: { DATABASE_URL: schema.url, LOG_LEVEL: 'silent' },
        flags: { port: 0 },
      });
      const { openStore } = await import('../../src/store/index.js');
      const direct = openStore(schema.url);
      await direct.migrate();
      await direct.close();
      gateway = await startGateway(config, { logger });
    });

    after(async () => {
      await gateway.close();
      await schema.drop();
    });

    it('a NUL byte in a login username is a 400 with a field error, not a 503', async () => {
      const response = await post(gateway, '/api/auth/token', {
        username: 'ali\u0000ce',
        password: 'whatever-password',
      });
      assert.equal(response.status, 400);
      assert.deepEqual(await response.json(), { username: ['Null characters are not allowed.'] });
      const surrogate = await post(gateway, '/api/auth/token', {
        username: 'bob',
        password: 'pass\ud800word',
      });
      assert.equal(surrogate.status, 400);
      assert.deepEqual(await surrogate.json(), {
        password: ['Surrogate characters are not allowed: U+D800.'],
      });
    });

    it('store and accounts refuse such text with a RangeError, or find nothing', async () => {
      const { store, accounts } = gateway;
      assert.equal(await store.findLogin('ali\u0000ce'), undefined);
      assert.equal(await store.getUserByUsername('ali\u0000ce'), undefined);
      await assert.rejects(accounts.createUser({ username: 'ali\u0000ce' }), RangeError);
      await assert.rejects(store.createRoom({ title: 'Lob\u0000by' }), RangeError);
      const user = await accounts.createUser({ username: 'frank' });
      await assert.rejects(accounts.createToken(user.id, { name: 'lap\u0000top' }), RangeError);
    });
  },
);
