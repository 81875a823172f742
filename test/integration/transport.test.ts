import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect as netConnect } from 'node:net';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import type { Application, CloseEvent, IncomingData } from '../../src/application.js';
import { WebsocketConsumer } from '../../src/consumer/consumer.js';
import { JsonWebsocketConsumer } from '../../src/consumer/json-consumer.js';
import { MemoryChannelLayer } from '../../src/layers/memory.js';
import type { JsonObject } from '../../src/protocol/messages.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { route, urlRouter } from '../../src/routing/url-router.js';
import { attachWebSocket, listen } from '../../src/transport/ws.js';
import type { ListenOptions, RunningServer } from '../../src/transport/ws.js';
import { connectClient, HandshakeRefusedError } from '../../src/testing/client.js';
import type { Scope } from '../../src/scope.js';
import { eventually } from '../helpers/eventually.js';

const silent = pino({ level: 'silent' });

class Echo extends WebsocketConsumer {
  override receive(data: IncomingData): void {
    this.send(data);
  }
}

let lastScope: Scope | undefined;
const disconnects: number[] = [];

class Inspect extends JsonWebsocketConsumer {
  override connect(): void {
    lastScope = this.scope;
    this.accept();
  }
  override receiveJson(content: JsonObject): void {
    if (content['burst'] !== undefined) {
      for (let index = 0; index < Number(content['burst']); index += 1) this.sendJson({ n: index });
    }
    if (content['flood'] === true) {
      const chunk = 'x'.repeat(60_000);
      const pump = (): void => {
        if (this.connection.state !== 'open') return;
        for (let index = 0; index < 20; index += 1) this.send(chunk);
        setImmediate(pump);
      };
      pump();
    }
    if (content['throw'] === true) throw new Error('internal detail');
  }
  override async disconnect(event: CloseEvent): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 20));
    disconnects.push(event.code);
  }
}

async function withServer(
  options: ListenOptions,
  body: (server: RunningServer) => Promise<void>,
): Promise<void> {
  const layer = new MemoryChannelLayer();
  const app = urlRouter([
    route('/ws/echo/', Echo.asApp({ logger: silent })),
    route('/ws/inspect/', Inspect.asApp({ layer, logger: silent })),
  ]);
  const server = await listen(app, { logger: silent, ...options });
  try {
    await body(server);
  } finally {
    await server.close({ timeout: 1_000 });
  }
}

describe('ws transport', () => {
  it('echoes text and binary over a real socket', () =>
    withServer({}, async (server) => {
      const client = await connectClient(`${server.url}/ws/echo/`);
      client.send('hello');
      assert.equal(await client.receive(), 'hello');
      client.send(Buffer.from([0, 1, 2, 255]));
      assert.deepEqual(await client.receive(), Buffer.from([0, 1, 2, 255]));
      await client.close();
    }));

  it('builds the scope from the request', () =>
    withServer({}, async (server) => {
      const client = await connectClient(`${server.url}/ws/inspect/?a=1&b=two`, {
        protocols: ['chat.v1', 'chat.v0'],
        origin: 'http://localhost:8000',
        headers: { Cookie: 'key=abc; other=x%20y', 'X-Custom': 'Value' },
      });
      assert.equal(client.protocol, 'chat.v1');
      const scope = lastScope!;
      assert.equal(scope.type, 'websocket');
      assert.equal(scope.path, '/ws/inspect/');
      assert.equal(scope.query.get('b'), 'two');
      assert.equal(scope.headers['x-custom'], 'Value');
      assert.deepEqual(scope.cookies, { key: 'abc', other: 'x y' });
      assert.deepEqual(scope.subprotocols, ['chat.v1', 'chat.v0']);
      assert.equal(scope.origin, 'http://localhost:8000');
      assert.equal(scope.client.address, '127.0.0.1');
      assert.ok(scope.client.port > 0);
      // Read lazily from the socket, but logs and JSON see plain data.
      assert.deepEqual(JSON.parse(JSON.stringify(scope.client)), {
        address: '127.0.0.1',
        port: scope.client.port,
      });
      assert.equal(scope.user.isAnonymous, true);
      await client.close();
    }));

  it('closes 1013 a handshake the app leaves undecided past handshakeTimeout', async () => {
    const undecided: Application = () => undefined;
    const late: Application = (_scope, connection) => {
      setTimeout(() => connection.accept(), 50);
    };
    const app = urlRouter([route('/ws/undecided/', undecided), route('/ws/late/', late)]);
    const server = await listen(app, { logger: silent, handshakeTimeout: 200 });
    try {
      const started = Date.now();
      const stuck = new WebSocket(`${server.url}/ws/undecided/`);
      const decided = await connectClient(`${server.url}/ws/late/`);
      const [code, reason] = await new Promise<[number, string]>((resolve) => {
        stuck.on('close', (closeCode, closeReason) => resolve([closeCode, closeReason.toString()]));
      });
      assert.equal(code, CloseCode.TryAgainLater);
      assert.equal(reason, 'try again later');
      assert.ok(Date.now() - started >= 190, 'not before the deadline');
      // The one the app accepted in time stays open past the deadline.
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.equal(decided.socket.readyState, WebSocket.OPEN);
      await decided.close();
    } finally {
      await server.close({ timeout: 1_000 });
    }
  });

  it('refuses unknown paths at the handshake with 404', () =>
    withServer({}, async (server) => {
      await assert.rejects(connectClient(`${server.url}/ws/unknown/`), (error: unknown) => {
        assert.ok(error instanceof HandshakeRefusedError);
        assert.equal(error.status, 404);
        return true;
      });
    }));

  it('closes 1009 on a frame over the size limit', () =>
    withServer({ maxMessageSize: 1024 }, async (server) => {
      const client = await connectClient(`${server.url}/ws/echo/`);
      client.send('x'.repeat(1025));
      assert.equal((await client.waitForClose()).code, CloseCode.MessageTooBig);
      const ok = await connectClient(`${server.url}/ws/echo/`);
      ok.send('x'.repeat(1024));
      assert.equal((await ok.receive()).length, 1024);
      await ok.close();
    }));

  it('closes 4400 on invalid JSON with a fixed reason', () =>
    withServer({}, async (server) => {
      const client = await connectClient(`${server.url}/ws/inspect/`);
      client.send('{not json');
      assert.deepEqual(await client.waitForClose(), { code: 4400, reason: 'invalid json' });
    }));

  it('closes 1011 when a consumer throws, and the server keeps serving', () =>
    withServer({}, async (server) => {
      const client = await connectClient(`${server.url}/ws/inspect/`);
      client.sendJson({ throw: true });
      assert.deepEqual(await client.waitForClose(), { code: 1011, reason: '' });
      const next = await connectClient(`${server.url}/ws/echo/`);
      next.send('still here');
      assert.equal(await next.receive(), 'still here');
      await next.close();
    }));

  it('delivers a burst in order, coalesced into few writes', () =>
    withServer({}, async (server) => {
      const client = await connectClient(`${server.url}/ws/inspect/`);
      client.sendJson({ burst: 200 });
      for (let index = 0; index < 200; index += 1) {
        assert.deepEqual(await client.receiveJson(), { n: index });
      }
      await client.close();
    }));

  it('disconnects a dead peer that stops answering pings', () =>
    withServer({ heartbeatInterval: 40 }, async (server) => {
      const client = await connectClient(`${server.url}/ws/echo/`, { autoPong: false });
      assert.equal((await client.waitForClose(1_000)).code, 1006);
      await eventually(() => server.transport.size === 0, 1_000, 'server-side cleanup');
    }));

  it('keeps a live peer that answers pings', () =>
    withServer({ heartbeatInterval: 30 }, async (server) => {
      const client = await connectClient(`${server.url}/ws/echo/`);
      await new Promise((resolve) => setTimeout(resolve, 150));
      client.send('alive');
      assert.equal(await client.receive(), 'alive');
      await client.close();
    }));

  it('disconnects a slow reader once its outbound buffer is full', () =>
    withServer({ maxBufferedBytes: 256 * 1024 }, async (server) => {
      // A raw TCP client that completes the handshake, asks for a flood, then never reads.
      const socket = netConnect(server.port, '127.0.0.1');
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write(
        'GET /ws/inspect/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      await new Promise<void>((resolve) => socket.once('data', () => resolve()));
      socket.pause();
      const payload = Buffer.from(JSON.stringify({ flood: true }));
      const mask = Buffer.from([1, 2, 3, 4]);
      const masked = Buffer.from(payload.map((byte, index) => byte ^ mask[index % 4]!));
      socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      const start = Date.now();
      while (server.transport.size > 0 && Date.now() - start < 5_000) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(server.transport.size, 0);
      socket.destroy();
      await closed;
    }));

  it('shuts down gracefully: 1001 to every socket, disconnect handlers run first', async () => {
    disconnects.length = 0;
    const layer = new MemoryChannelLayer();
    const app = urlRouter([route('/ws/inspect/', Inspect.asApp({ layer, logger: silent }))]);
    const server = await listen(app, { logger: silent });
    const clients = await Promise.all(
      [1, 2, 3].map(() => connectClient(`${server.url}/ws/inspect/`)),
    );
    const closes = clients.map((client) => client.waitForClose());
    await server.close();
    for (const closed of await Promise.all(closes)) {
      assert.deepEqual(closed, { code: 1001, reason: 'going away' });
    }
    assert.deepEqual(disconnects, [1001, 1001, 1001]);
  });

  it('attaches to an existing HTTP server and lowers its headersTimeout', async () => {
    const httpServer = createServer((_request, response) => response.end('plain http'));
    assert.equal(httpServer.headersTimeout, 60_000);
    const transport = attachWebSocket(httpServer, Echo.asApp(), { logger: silent });
    assert.equal(httpServer.headersTimeout, 10_000);
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', () => resolve()));
    const { port } = httpServer.address() as AddressInfo;
    const response = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await response.text(), 'plain http');
    const client = await connectClient(`ws://127.0.0.1:${port}/anything`);
    client.send('via http server');
    assert.equal(await client.receive(), 'via http server');
    await transport.close();
    await new Promise<void>((resolve) => httpServer.close(() => resolve()));
  });

  it('validates options with exact messages', () => {
    const httpServer = createServer();
    assert.throws(() => attachWebSocket(httpServer, Echo.asApp(), { maxMessageSize: -1 }), {
      name: 'RangeError',
      message: 'The "maxMessageSize" option must be a non-negative integer',
    });
    assert.throws(() => attachWebSocket(httpServer, 'nope' as never), {
      name: 'TypeError',
      message: 'The application must be a function',
    });
  });

  it('frames shared messages exactly as ws itself does (pinned ws internals)', () =>
    withServer({}, async (server) => {
      const layer = new MemoryChannelLayer();
      class Member extends WebsocketConsumer {
        override readonly groups = ['all'];
      }
      const app = urlRouter([route('/m/', Member.asApp({ layer }))]);
      const memberServer = await listen(app, { logger: silent });
      const sockets = await Promise.all([1, 2].map(() => connectClient(`${memberServer.url}/m/`)));
      await new Promise((resolve) => setTimeout(resolve, 20));
      const big = 'é'.repeat(40_000);
      await layer.groupSend('all', { type: 'websocket.send', text: big });
      await layer.groupSend('all', { type: 'websocket.send', json: { small: true } });
      for (const socket of sockets) {
        assert.equal(await socket.receive(), big);
        assert.deepEqual(await socket.receiveJson(), { small: true });
        await socket.close();
      }
      await memberServer.close();
      assert.ok(server.port > 0);
      assert.equal(WebSocket.OPEN, 1);
    }));
});
