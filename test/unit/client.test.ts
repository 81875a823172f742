import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';

import { WebSocket, WebSocketServer } from 'ws';

import {
  BEARER_PROTOCOL_PREFIX,
  CloseCode,
  CloseReason,
  HttpError,
  InvalidMessageError,
  UnauthorizedError,
  cookieCredential,
  createClient,
  createRestClient,
  firstMessageCredential,
  headerCredential,
  subprotocolCredential,
  ticketCredential,
  type ClientEventMap,
  type ClientOptions,
  type PortcullisClient,
} from '../../src/client/index.js';

// ---------------------------------------------------------------------------------------
// A real ws server on 127.0.0.1:0, recording every connection and frame.

interface ServerConnection {
  readonly socket: WebSocket;
  readonly request: IncomingMessage;
  readonly frames: unknown[];
  /** Resolves with the close code the server saw. */
  readonly closed: Promise<number>;
}

interface TestServer {
  readonly url: string;
  readonly connections: ServerConnection[];
  waitForConnections(count: number, timeout?: number): Promise<ServerConnection>;
  waitForFrames(connection: ServerConnection, count: number, timeout?: number): Promise<unknown[]>;
}

function poll<T>(label: string, timeout: number, check: () => T | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = (): void => {
      const value = check();
      if (value !== undefined) resolve(value);
      else if (Date.now() - started > timeout) reject(new Error(`timed out: ${label}`));
      else setTimeout(tick, 2);
    };
    tick();
  });
}

async function startServer(
  t: TestContext,
  onConnection: (connection: ServerConnection, index: number) => void = () => {},
): Promise<TestServer> {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    // As the real server does (SPEC §3): select the app protocol, never the bearer entry.
    handleProtocols: (protocols) => {
      for (const protocol of protocols) {
        if (!protocol.startsWith(BEARER_PROTOCOL_PREFIX)) return protocol;
      }
      return false;
    },
  });
  await once(wss, 'listening');
  const connections: ServerConnection[] = [];
  wss.on('connection', (socket, request) => {
    const frames: unknown[] = [];
    socket.on('message', (data, isBinary) => {
      frames.push(isBinary ? data : JSON.parse(String(data)));
    });
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    const connection = { socket, request, frames, closed };
    connections.push(connection);
    onConnection(connection, connections.length - 1);
  });
  t.after(async () => {
    for (const socket of wss.clients) socket.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });
  const { port } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/ws/test/`,
    connections,
    waitForConnections: (count, timeout = 2_000) =>
      poll(`${count} connections`, timeout, () => connections[count - 1]),
    waitForFrames: (connection, count, timeout = 2_000) =>
      poll(`${count} frames`, timeout, () =>
        connection.frames.length >= count ? connection.frames : undefined,
      ),
  };
}

// ---------------------------------------------------------------------------------------
// A client whose every event is recorded, closed when the test ends.

type LoggedEvent = {
  [K in keyof ClientEventMap]: { event: K; payload: ClientEventMap[K] };
}[keyof ClientEventMap];

interface Watched {
  readonly client: PortcullisClient;
  readonly log: LoggedEvent[];
  all<K extends keyof ClientEventMap>(event: K): ClientEventMap[K][];
  /** Resolves with the n-th (1-based) occurrence of `event`, past or future. */
  nth<K extends keyof ClientEventMap>(
    event: K,
    n: number,
    timeout?: number,
  ): Promise<ClientEventMap[K]>;
}

function watch(
  t: TestContext,
  options: Partial<ClientOptions> & Pick<ClientOptions, 'url'>,
): Watched {
  const client = createClient({
    webSocketImpl: WebSocket,
    minDelay: 1,
    maxDelay: 50,
    ...options,
  });
  t.after(() => client.close());
  const log: LoggedEvent[] = [];
  const events = ['open', 'message', 'close', 'state', 'error'] as const;
  for (const event of events) {
    client.on(event, (payload: unknown) => {
      log.push({ event, payload } as LoggedEvent);
    });
  }
  const all = <K extends keyof ClientEventMap>(event: K): ClientEventMap[K][] =>
    log.filter((entry) => entry.event === event).map((entry) => entry.payload as ClientEventMap[K]);
  const describeLog = (): string =>
    JSON.stringify(
      log.map(({ event, payload }) => [
        event,
        payload instanceof Error ? payload.message : payload,
      ]),
    );
  return {
    client,
    log,
    all,
    nth: (event, n, timeout = 2_000) =>
      poll(`${event} #${n} in ${describeLog()}`, timeout, () => all(event)[n - 1]),
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function decodeBearer(protocols: string[]): string | undefined {
  const entry = protocols.find((p) => p.startsWith(BEARER_PROTOCOL_PREFIX));
  if (entry === undefined) return undefined;
  const encoded = entry.slice(BEARER_PROTOCOL_PREFIX.length);
  assert.doesNotMatch(encoded, /[=+/]/, 'base64url without padding');
  return Buffer.from(encoded, 'base64url').toString('utf8');
}

function offeredProtocols(request: IncomingMessage): string[] {
  const header = request.headers['sec-websocket-protocol'] ?? '';
  return header.split(',').map((p) => p.trim());
}

// ---------------------------------------------------------------------------------------

describe('createClient over a real WebSocket server', () => {
  test('connects, receives JSON objects, sends JSON, and closes with 1000', async (t) => {
    const server = await startServer(t, ({ socket }) => {
      socket.send(JSON.stringify({ hello: 'world' }));
    });
    const w = watch(t, { url: server.url });
    assert.equal(w.client.state, 'closed');
    w.client.connect();
    assert.equal(w.client.state, 'connecting');

    assert.deepEqual(await w.nth('open', 1), { protocol: '', reconnected: false });
    assert.deepEqual(await w.nth('message', 1), { hello: 'world' });
    assert.equal(w.client.state, 'open');

    w.client.send({ command: 'ping', n: 1 });
    const connection = await server.waitForConnections(1);
    assert.deepEqual(await server.waitForFrames(connection, 1), [{ command: 'ping', n: 1 }]);

    w.client.close();
    assert.equal(w.client.state, 'closed');
    assert.equal(await connection.closed, CloseCode.Normal);
    assert.deepEqual(w.all('state'), ['connecting', 'open', 'closed']);
    assert.deepEqual(w.all('close'), [{ code: CloseCode.Normal, reason: '', willRetry: false }]);
  });

  test('reconnects with backoff after the server drops the socket (1006)', async (t) => {
    const server = await startServer(t, ({ socket }, index) => {
      if (index === 0) socket.terminate();
    });
    const w = watch(t, { url: server.url, minDelay: 5, maxDelay: 1_000, random: () => 0 });
    w.client.connect();

    // ws completes the handshake before terminate() drops it: open, then 1006.
    const close = await w.nth('close', 1);
    assert.deepEqual(close, { code: 1006, reason: '', willRetry: true, delay: 5 });
    assert.deepEqual(await w.nth('open', 2), { protocol: '', reconnected: true });
    assert.equal(server.connections.length, 2);
    assert.deepEqual(w.all('state'), ['connecting', 'open', 'reconnecting', 'open']);
  });

  test('send() while the socket is closing queues the message for the next connection', async (t) => {
    const server = await startServer(t);
    // ws's own WebSocket, remembered so that the test can start a close on the client's
    // side: the socket is then CLOSING while the client has not had its close event.
    const sockets: WebSocket[] = [];
    class Remembered extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        sockets.push(this);
      }
    }
    const w = watch(t, { url: server.url, webSocketImpl: Remembered });
    w.client.connect();
    await w.nth('open', 1);
    sockets[0]!.close(CloseCode.GoingAway);
    assert.equal(sockets[0]!.readyState, WebSocket.CLOSING);
    assert.equal(w.client.state, 'open');
    w.client.send({ n: 1 });
    await w.nth('open', 2);
    const [first, second] = [server.connections[0]!, await server.waitForConnections(2)];
    assert.deepEqual(await server.waitForFrames(second, 1), [{ n: 1 }]);
    assert.deepEqual(first.frames, []);
  });

  test('retry delays grow per attempt and reset once a connection was stable', async (t) => {
    // Connections 0 and 1 drop at once; 2 stays past stableAfter, then drops; 3 stays.
    const server = await startServer(t, ({ socket }, index) => {
      if (index < 2) socket.terminate();
      if (index === 2) setTimeout(() => socket.terminate(), 60);
    });
    const w = watch(t, {
      url: server.url,
      minDelay: 5,
      maxDelay: 1_000,
      stableAfter: 30,
      random: () => 1,
    });
    w.client.connect();
    await server.waitForConnections(4);
    await w.nth('open', 2);
    const delays = w.all('close').map((c) => c.delay);
    assert.deepEqual(delays, [10, 20, 10]);
  });

  test('gives up after maxRetries', async (t) => {
    const server = await startServer(t, ({ socket }) => socket.terminate());
    const w = watch(t, { url: server.url, maxRetries: 2, random: () => 0 });
    w.client.connect();
    const last = await w.nth('close', 3);
    assert.deepEqual(last, { code: 1006, reason: '', willRetry: false });
    assert.equal(w.client.state, 'closed');
    await sleep(30);
    assert.equal(server.connections.length, 3);
    assert.deepEqual(
      w.all('close').map((c) => c.willRetry),
      [true, true, false],
    );
  });

  test('4429 waits at least rateLimitDelay before reconnecting', async (t) => {
    const server = await startServer(t, ({ socket }, index) => {
      if (index === 0) socket.close(CloseCode.TooManyRequests, CloseReason.TooManyConnections);
    });
    const w = watch(t, { url: server.url, minDelay: 1, rateLimitDelay: 40, random: () => 0 });
    w.client.connect();
    const close = await w.nth('close', 1);
    const closedAt = Date.now();
    assert.deepEqual(close, {
      code: CloseCode.TooManyRequests,
      reason: CloseReason.TooManyConnections,
      willRetry: true,
      delay: 40,
    });
    await w.nth('open', 2);
    assert.ok(Date.now() - closedAt >= 35, 'reconnected before the rate-limit floor');
  });

  for (const [code, reason] of [
    [CloseCode.Unauthorized, CloseReason.InvalidCredentials],
    [CloseCode.Unauthorized, CloseReason.TokenRevoked],
    [CloseCode.Unauthorized, CloseReason.AuthenticationRequired],
    [CloseCode.Forbidden, CloseReason.Forbidden],
    [CloseCode.Forbidden, CloseReason.OriginNotAllowed],
    [CloseCode.BadFrame, CloseReason.InvalidJson],
    [CloseCode.Normal, ''],
  ] as const) {
    test(`does not reconnect after ${code} ${JSON.stringify(reason)}`, async (t) => {
      const server = await startServer(t, ({ socket }) => socket.close(code, reason));
      let tokens = 0;
      const w = watch(t, {
        url: server.url,
        protocols: ['chat'],
        credential: subprotocolCredential({ getToken: () => `token-${++tokens}` }),
      });
      w.client.connect();
      assert.deepEqual(await w.nth('close', 1), { code, reason, willRetry: false });
      assert.equal(w.client.state, 'closed');
      await sleep(40); // minDelay is 1 ms: a retry would have happened by now
      assert.equal(server.connections.length, 1);
      assert.equal(tokens, 1);
      assert.deepEqual(w.all('state'), ['connecting', 'open', 'closed']);
    });
  }

  test('after 4401 `token expired` calls getToken again and reconnects at once', async (t) => {
    const server = await startServer(t, ({ socket }, index) => {
      if (index === 0) socket.close(CloseCode.Unauthorized, CloseReason.TokenExpired);
    });
    let calls = 0;
    const w = watch(t, {
      url: server.url,
      protocols: ['chat'],
      credential: subprotocolCredential({ getToken: () => `token-${++calls}` }),
      // A backoff delay would be a second: the 500 ms wait below would time out.
      minDelay: 1_000,
      maxDelay: 1_000,
    });
    w.client.connect();
    assert.deepEqual(await w.nth('close', 1), {
      code: CloseCode.Unauthorized,
      reason: CloseReason.TokenExpired,
      willRetry: true,
      delay: 0,
    });
    assert.deepEqual(await w.nth('open', 2, 500), { protocol: 'chat', reconnected: true });
    const tokens = server.connections.map((c) => decodeBearer(offeredProtocols(c.request)));
    assert.deepEqual(tokens, ['token-1', 'token-2']);
    assert.equal(calls, 2);
  });

  test('reuses the token across ordinary reconnects; refreshes only after `token expired`', async (t) => {
    const server = await startServer(t, ({ socket }, index) => {
      if (index === 0) socket.terminate();
      if (index === 1) socket.close(CloseCode.Unauthorized, CloseReason.TokenExpired);
    });
    let calls = 0;
    const w = watch(t, {
      url: server.url,
      protocols: ['chat'],
      credential: subprotocolCredential({ getToken: () => `token-${++calls}` }),
      random: () => 0,
    });
    w.client.connect();
    await server.waitForConnections(3);
    await w.nth('open', 3);
    const tokens = server.connections.map((c) => decodeBearer(offeredProtocols(c.request)));
    assert.deepEqual(tokens, ['token-1', 'token-1', 'token-2']);
    assert.equal(calls, 2);
  });

  test('stops when `token expired` comes twice without a stable connection between', async (t) => {
    const server = await startServer(t, ({ socket }) =>
      socket.close(CloseCode.Unauthorized, CloseReason.TokenExpired),
    );
    let calls = 0;
    const w = watch(t, {
      url: server.url,
      credential: firstMessageCredential({ getToken: () => `token-${++calls}` }),
    });
    w.client.connect();
    const last = await w.nth('close', 2);
    assert.deepEqual(last, {
      code: CloseCode.Unauthorized,
      reason: CloseReason.TokenExpired,
      willRetry: false,
    });
    await sleep(40);
    assert.equal(server.connections.length, 2);
    assert.equal(calls, 2);
    assert.equal(w.client.state, 'closed');
  });

  test('UnauthorizedError from getToken at connect stops before any socket', async (t) => {
    const server = await startServer(t);
    const unauthorized = new UnauthorizedError('not logged in');
    const w = watch(t, {
      url: server.url,
      credential: firstMessageCredential({
        getToken: () => {
          throw unauthorized;
        },
      }),
    });
    w.client.connect();
    assert.deepEqual(await w.nth('close', 1), {
      code: CloseCode.Unauthorized,
      reason: CloseReason.AuthenticationRequired,
      willRetry: false,
    });
    assert.equal(w.all('error')[0], unauthorized);
    assert.equal(w.client.state, 'closed');
    await sleep(20);
    assert.equal(server.connections.length, 0);
  });

  test('UnauthorizedError from getToken after `token expired` stops', async (t) => {
    const server = await startServer(t, ({ socket }) =>
      socket.close(CloseCode.Unauthorized, CloseReason.TokenExpired),
    );
    let calls = 0;
    const w = watch(t, {
      url: server.url,
      protocols: ['chat'],
      credential: subprotocolCredential({
        getToken: async () => {
          calls++;
          if (calls > 1) throw new UnauthorizedError('session ended');
          return 'token-1';
        },
      }),
    });
    w.client.connect();
    const second = await w.nth('close', 2);
    assert.deepEqual(second, {
      code: CloseCode.Unauthorized,
      reason: CloseReason.AuthenticationRequired,
      willRetry: false,
    });
    assert.ok(w.all('error').some((e) => e instanceof UnauthorizedError));
    await sleep(20);
    assert.equal(server.connections.length, 1);
    assert.equal(calls, 2);
  });

  test('a failing getToken (not UnauthorizedError) is retried with backoff', async (t) => {
    const server = await startServer(t);
    let calls = 0;
    const w = watch(t, {
      url: server.url,
      credential: firstMessageCredential({
        getToken: () => {
          if (++calls === 1) throw new Error('network down');
          return 'token';
        },
      }),
      random: () => 0,
    });
    w.client.connect();
    assert.deepEqual(await w.nth('close', 1), {
      code: 1006,
      reason: '',
      willRetry: true,
      delay: 1,
    });
    assert.equal(w.all('error')[0]?.message, 'network down');
    await w.nth('open', 1);
    const connection = await server.waitForConnections(1);
    assert.deepEqual(await server.waitForFrames(connection, 1), [{ type: 'auth', token: 'token' }]);
  });

  test('subprotocol credential offers the app protocol and portcullis.bearer.<base64url>', async (t) => {
    const server = await startServer(t);
    // Non-ASCII and a length whose base64 would need padding.
    const token = 'pcu_tøken✓?~>';
    const w = watch(t, {
      url: server.url,
      protocols: ['multichat'],
      credential: subprotocolCredential({ getToken: () => token }),
    });
    w.client.connect();
    assert.deepEqual(await w.nth('open', 1), { protocol: 'multichat', reconnected: false });
    const connection = await server.waitForConnections(1);
    const offered = offeredProtocols(connection.request);
    assert.equal(offered.length, 2);
    assert.equal(offered[0], 'multichat');
    assert.equal(decodeBearer(offered), token);
    assert.equal(connection.socket.protocol, 'multichat');
  });

  test('ticket credential fetches a new ticket for every attempt', async (t) => {
    const server = await startServer(t, ({ socket }, index) => {
      if (index === 0) socket.terminate();
    });
    let fetched = 0;
    const w = watch(t, {
      url: `${server.url}?room=7`,
      credential: ticketCredential({ fetchTicket: async () => `pct_${++fetched}` }),
      random: () => 0,
    });
    w.client.connect();
    await w.nth('open', 2);
    const queries = server.connections.map(
      (c) => new URL(c.request.url ?? '', 'http://x').searchParams,
    );
    assert.deepEqual(
      queries.map((q) => q.get('ticket')),
      ['pct_1', 'pct_2'],
    );
    assert.deepEqual(
      queries.map((q) => q.get('room')),
      ['7', '7'],
    );
    assert.equal(fetched, 2);
  });

  test('first-message credential sends the auth frame before queued messages', async (t) => {
    const server = await startServer(t);
    const w = watch(t, {
      url: server.url,
      credential: firstMessageCredential({ getToken: () => 'pcu_first' }),
    });
    w.client.connect();
    w.client.send({ command: 'join', room: 1 });
    w.client.send({ command: 'send', room: 1, message: 'hi' });
    const connection = await server.waitForConnections(1);
    assert.deepEqual(await server.waitForFrames(connection, 3), [
      { type: 'auth', token: 'pcu_first' },
      { command: 'join', room: 1 },
      { command: 'send', room: 1, message: 'hi' },
    ]);
  });

  test('header credential sends Authorization through webSocketImpl options', async (t) => {
    const server = await startServer(t);
    const w = watch(t, {
      url: server.url,
      credential: headerCredential({ getToken: () => 'pcu_header' }),
    });
    w.client.connect();
    const connection = await server.waitForConnections(1);
    assert.equal(connection.request.headers.authorization, 'Bearer pcu_header');
  });

  test('cookie credential with getToken sends Cookie: key=<token> (Node.js)', async (t) => {
    const server = await startServer(t);
    const w = watch(t, {
      url: server.url,
      credential: cookieCredential({ getToken: () => 'pcu_cookie' }),
    });
    w.client.connect();
    const connection = await server.waitForConnections(1);
    assert.equal(connection.request.headers.cookie, 'key=pcu_cookie');
  });

  test('refreshCredential() sends a fresh token in-band', async (t) => {
    const server = await startServer(t);
    let calls = 0;
    const w = watch(t, {
      url: server.url,
      protocols: ['chat'],
      credential: subprotocolCredential({ getToken: () => `token-${++calls}` }),
    });
    w.client.connect();
    await w.nth('open', 1);
    await w.client.refreshCredential();
    const connection = await server.waitForConnections(1);
    assert.deepEqual(await server.waitForFrames(connection, 1), [
      { type: 'auth', token: 'token-2' },
    ]);
    assert.equal(calls, 2);
  });

  test('refreshCredential() rejects for a credential without getToken', async (t) => {
    const server = await startServer(t);
    const w = watch(t, {
      url: server.url,
      credential: ticketCredential({ fetchTicket: () => 'pct_x' }),
    });
    await assert.rejects(w.client.refreshCredential(), {
      name: 'TypeError',
      message: 'refreshCredential(): the ticket credential has no getToken',
    });
  });

  test('unreadable server frames are reported and the socket stays open', async (t) => {
    const server = await startServer(t, ({ socket }) => {
      socket.send('not json');
      socket.send('[1,2]');
      socket.send(new Uint8Array([1, 2, 3]));
      socket.send(JSON.stringify({ ok: true }));
    });
    const w = watch(t, { url: server.url });
    w.client.connect();
    assert.deepEqual(await w.nth('message', 1), { ok: true });
    const errors = w.all('error');
    assert.equal(errors.length, 3);
    assert.ok(errors.every((e) => e instanceof InvalidMessageError));
    assert.equal(w.client.state, 'open');
  });

  test('close() while waiting to reconnect cancels the retry', async (t) => {
    const server = await startServer(t, ({ socket }) => socket.terminate());
    const w = watch(t, { url: server.url, minDelay: 20, maxDelay: 20 });
    w.client.connect();
    await w.nth('close', 1);
    assert.equal(w.client.state, 'reconnecting');
    w.client.close();
    assert.equal(w.client.state, 'closed');
    await sleep(50);
    assert.equal(server.connections.length, 1);
    assert.equal(w.all('close').length, 1);
  });

  test('close() while connecting closes the socket and stays closed', async (t) => {
    const server = await startServer(t);
    const w = watch(t, { url: server.url });
    w.client.connect();
    w.client.close();
    await sleep(30);
    assert.equal(w.client.state, 'closed');
    assert.equal(w.all('open').length, 0);
    assert.deepEqual(w.all('state'), ['connecting', 'closed']);
    for (const connection of server.connections) assert.notEqual(connection.socket.readyState, 1);
  });

  test('on() returns an unsubscribe function', async (t) => {
    const server = await startServer(t, ({ socket }) => {
      socket.send(JSON.stringify({ n: 1 }));
      setTimeout(() => socket.send(JSON.stringify({ n: 2 })), 10);
    });
    const w = watch(t, { url: server.url });
    const seen: unknown[] = [];
    const off = w.client.on('message', (message) => {
      seen.push(message);
      off();
    });
    w.client.connect();
    await w.nth('message', 2);
    assert.deepEqual(seen, [{ n: 1 }]);
  });
});

describe('createClient checks', () => {
  test('send() on a closed client, or with a non-object, throws TypeError', () => {
    const client = createClient({ url: 'ws://127.0.0.1:1/', webSocketImpl: WebSocket });
    assert.throws(() => client.send({ a: 1 }), {
      name: 'TypeError',
      message: 'send() called on a closed client; call connect() first',
    });
    assert.throws(() => client.send([1, 2]), {
      name: 'TypeError',
      message: 'send() takes a JSON object; the server closes 4400 on anything else',
    });
  });

  test('send() beyond queueLimit while connecting throws RangeError', (t) => {
    const client = createClient({
      url: 'ws://127.0.0.1:1/',
      webSocketImpl: WebSocket,
      queueLimit: 1,
      minDelay: 10_000,
    });
    t.after(() => client.close());
    client.connect();
    client.send({ a: 1 });
    assert.throws(() => client.send({ a: 2 }), {
      name: 'RangeError',
      message: 'send() queue is full (1 messages); wait for the open event',
    });
  });

  test('invalid options throw with exact messages', () => {
    const base = { url: 'ws://127.0.0.1:1/', webSocketImpl: WebSocket };
    assert.throws(() => createClient({ ...base, url: 'http://example.com/' }), {
      name: 'TypeError',
      message: 'createClient: url must be an absolute ws:// or wss:// URL',
    });
    assert.throws(() => createClient({ ...base, url: '/ws/chat/' }), {
      message: 'createClient: url must be an absolute ws:// or wss:// URL',
    });
    assert.throws(() => createClient({ ...base, minDelay: -1 }), {
      name: 'RangeError',
      message: 'createClient: minDelay must be a number of milliseconds from 0 to 2147483647',
    });
    assert.throws(() => createClient({ ...base, minDelay: 100, maxDelay: 50 }), {
      name: 'RangeError',
      message: 'createClient: maxDelay must be a number of milliseconds from 100 to 2147483647',
    });
    assert.throws(() => createClient({ ...base, maxDelay: Infinity }), { name: 'RangeError' });
    assert.throws(() => createClient({ ...base, minDelay: Number.NaN }), {
      name: 'TypeError',
      message: 'createClient: minDelay must be a number',
    });
    assert.throws(() => createClient({ ...base, maxRetries: 1.5 }), {
      name: 'RangeError',
      message: 'createClient: maxRetries must be an integer >= 0 or Infinity',
    });
    assert.throws(
      () =>
        createClient({
          url: base.url,
          credential: headerCredential({ getToken: () => 't' }),
        }),
      {
        name: 'TypeError',
        message:
          'createClient: the header credential sends handshake headers, which browsers cannot; ' +
          'pass a webSocketImpl that accepts a headers option, such as WebSocket from the ws package',
      },
    );
    assert.throws(
      () => createClient({ ...base, credential: subprotocolCredential({ getToken: () => 't' }) }),
      {
        name: 'TypeError',
        message:
          'createClient: subprotocolCredential needs at least one application subprotocol in ' +
          'protocols; browsers fail the handshake when only the bearer entry is offered',
      },
    );
    assert.throws(() => createClient({ ...base, protocols: ['portcullis.bearer.abc'] }), {
      name: 'TypeError',
      message: 'createClient: do not put a bearer entry in protocols; use subprotocolCredential()',
    });
    assert.throws(() => ticketCredential({} as never), {
      name: 'TypeError',
      message: 'ticketCredential: fetchTicket must be a function',
    });
  });

  test('without webSocketImpl and without a global WebSocket, says what to pass', (t) => {
    if (typeof globalThis.WebSocket === 'function') {
      t.skip('this Node.js has a global WebSocket');
      return;
    }
    assert.throws(() => createClient({ url: 'ws://127.0.0.1:1/' }), {
      name: 'TypeError',
      message:
        'createClient: no global WebSocket; pass webSocketImpl (WebSocket from the ws package on Node.js)',
    });
  });
});

// ---------------------------------------------------------------------------------------

describe('createRestClient', () => {
  interface Seen {
    method: string | undefined;
    url: string | undefined;
    authorization: string | undefined;
    contentType: string | undefined;
    body: string;
  }

  async function startRest(t: TestContext): Promise<{ baseUrl: string; seen: Seen[] }> {
    const seen: Seen[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        seen.push({
          method: req.method,
          url: req.url,
          authorization: req.headers.authorization,
          contentType: req.headers['content-type'],
          body,
        });
        const json = (status: number, value: unknown): void => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(value));
        };
        const authorized = req.headers.authorization === 'Bearer pcu_good';
        switch (`${req.method} ${req.url}`) {
          case 'POST /prefix/api/auth/token': {
            const { username, password } = JSON.parse(body) as Record<string, unknown>;
            if (username === 'alice' && password === 'pw') {
              json(200, { token: 'pcu_good', expires_at: '2030-01-01T00:00:00Z' });
            } else {
              json(400, { non_field_errors: ['Unable to log in with provided credentials.'] });
            }
            return;
          }
          case 'POST /prefix/api/auth/ticket':
            if (authorized) json(200, { ticket: 'pct_1', expires_in: 30 });
            else json(401, { detail: 'Invalid token.' });
            return;
          case 'POST /prefix/api/auth/logout':
            res.writeHead(204).end();
            return;
          case 'GET /prefix/api/me':
            json(200, { id: '1', username: 'alice', is_staff: false });
            return;
          case 'GET /prefix/api/rooms':
            json(200, [{ id: 1, title: 'Lobby', staff_only: false }]);
            return;
          default:
            res.writeHead(500, { 'content-type': 'text/plain' }).end('boom');
        }
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as AddressInfo;
    return { baseUrl: `http://127.0.0.1:${port}/prefix/`, seen };
  }

  test('login, ticket, me, rooms and logout follow SPEC §6', async (t) => {
    const { baseUrl, seen } = await startRest(t);
    const rest = createRestClient({ baseUrl });
    const login = await rest.login('alice', 'pw');
    assert.deepEqual(login, { token: 'pcu_good', expires_at: '2030-01-01T00:00:00Z' });
    assert.deepEqual(await rest.ticket(login.token), { ticket: 'pct_1', expires_in: 30 });
    assert.deepEqual(await rest.me(login.token), { id: '1', username: 'alice', is_staff: false });
    assert.deepEqual(await rest.rooms(login.token), [{ id: 1, title: 'Lobby', staff_only: false }]);
    assert.equal(await rest.logout(login.token), undefined);

    assert.deepEqual(
      seen.map((s) => `${s.method} ${s.url}`),
      [
        'POST /prefix/api/auth/token',
        'POST /prefix/api/auth/ticket',
        'GET /prefix/api/me',
        'GET /prefix/api/rooms',
        'POST /prefix/api/auth/logout',
      ],
    );
    assert.equal(seen[0]?.authorization, undefined);
    assert.equal(seen[0]?.contentType, 'application/json');
    assert.deepEqual(JSON.parse(seen[0]?.body ?? ''), { username: 'alice', password: 'pw' });
    assert.ok(seen.slice(1).every((s) => s.authorization === 'Bearer pcu_good'));
  });

  test('a failed login is an HttpError carrying status 400 and the DRF body', async (t) => {
    const { baseUrl } = await startRest(t);
    const rest = createRestClient({ baseUrl });
    await assert.rejects(rest.login('alice', 'wrong'), (error: unknown) => {
      assert.ok(error instanceof HttpError);
      assert.equal(error.code, 'ERR_HTTP');
      assert.equal(error.status, 400);
      assert.deepEqual(error.body, {
        non_field_errors: ['Unable to log in with provided credentials.'],
      });
      return true;
    });
  });

  test('401 is an UnauthorizedError, which stops a ticket client', async (t) => {
    const { baseUrl } = await startRest(t);
    const rest = createRestClient({ baseUrl, scheme: 'Bearer' });
    await assert.rejects(rest.ticket('pcu_bad'), (error: unknown) => {
      assert.ok(error instanceof UnauthorizedError);
      assert.equal(error.status, 401);
      assert.deepEqual(error.body, { detail: 'Invalid token.' });
      return true;
    });

    const server = await startServer(t);
    const w = watch(t, {
      url: server.url,
      credential: ticketCredential({
        fetchTicket: async () => (await rest.ticket('pcu_bad')).ticket,
      }),
    });
    w.client.connect();
    assert.equal((await w.nth('close', 1)).willRetry, false);
    assert.equal(server.connections.length, 0);
  });

  test('other statuses are HttpErrors with the raw body when it is not JSON', async (t) => {
    const { baseUrl } = await startRest(t);
    const rest = createRestClient({
      baseUrl: baseUrl.replace('/prefix/', '/other'),
      fetchImpl: (url, init) => fetch(url, init),
    });
    await assert.rejects(rest.me('pcu_good'), (error: unknown) => {
      assert.ok(error instanceof HttpError);
      assert.equal(error.status, 500);
      assert.equal(error.body, 'boom');
      return true;
    });
  });

  test('baseUrl must be http(s)', () => {
    assert.throws(() => createRestClient({ baseUrl: 'ws://example.com' }), {
      name: 'TypeError',
      message: 'createRestClient: baseUrl must be an absolute http:// or https:// URL',
    });
  });
});
