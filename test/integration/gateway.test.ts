// The gateway end to end over real HTTP and sockets (SPEC §6-§9): REST, MultiChat,
// publish API, bench endpoint, health, readiness, metrics, shutdown, failing closed.
import { Accounts } from '../../src/auth/accounts.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createNetServer, connect as netConnect } from 'node:net';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/gateway/config.js';
import { startGateway } from '../../src/gateway/server.js';
import type { Gateway } from '../../src/gateway/server.js';
import { connectClient } from '../../src/testing/client.js';
import { createPostgresSchema, serviceSuiteOptions, serviceUrl } from '../helpers/services.js';

const PUBLISH_API_KEY = 'publish-key-for-tests-0123456789';
const logLines: string[] = [];
const logger = pino({ level: 'debug' }, { write: (line: string) => logLines.push(line) });

interface Session {
  token: string;
}

async function post(
  gateway: Gateway,
  path: string,
  body: unknown,
  token?: string,
): Promise<Response> {
  return fetch(`${gateway.url}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token === undefined ? {} : { authorization: `Token ${token}` }),
    },
    body: JSON.stringify(body),
  });
}

async function login(gateway: Gateway, username: string, password: string): Promise<Session> {
  const response = await post(gateway, '/api/auth/token', { username, password });
  assert.equal(response.status, 200);
  const body = (await response.json()) as { token: string; expires_at: string | null };
  assert.match(body.token, /^pcu_/);
  return { token: body.token };
}

async function ticketUrl(gateway: Gateway, session: Session, path: string): Promise<string> {
  const response = await post(gateway, '/api/auth/ticket', {}, session.token);
  assert.equal(response.status, 200);
  const { ticket, expires_in } = (await response.json()) as { ticket: string; expires_in: number };
  assert.match(ticket, /^pct_/);
  assert.equal(expires_in, 30);
  return `${gateway.url.replace('http', 'ws')}${path}?ticket=${ticket}`;
}

function config(directory: string, overrides: Record<string, string> = {}) {
  return loadConfig({
    env: {
      DATABASE_URL: `sqlite:${join(directory, 'gateway.db')}`,
      PUBLISH_API_KEY,
      LOG_LEVEL: 'debug',
      ...overrides,
    },
    flags: { port: 0, bench: true },
  });
}

describe('gateway (SQLite, in-process layer)', () => {
  let directory: string;
  let gateway: Gateway;
  let alice: Session;
  let bob: Session;
  let lobby: string;
  let staffRoom: string;

  before(async () => {
    directory = mkdtempSync(join(tmpdir(), 'portcullis-gateway-'));
    gateway = await startGateway(config(directory), { logger });
    await gateway.accounts.createUser({ username: 'alice', password: 'alice-password-1' });
    await gateway.accounts.createUser({
      username: 'bob',
      password: 'bob-password-1',
      isStaff: true,
    });
    lobby = await gateway.store.createRoom({ title: 'Lobby' });
    staffRoom = await gateway.store.createRoom({ title: 'Staff', staffOnly: true });
    alice = await login(gateway, 'alice', 'alice-password-1');
    bob = await login(gateway, 'bob', 'bob-password-1');
  });
  after(async () => {
    await gateway.close();
    rmSync(directory, { recursive: true, force: true });
  });

  it('answers health and readiness', async () => {
    assert.deepEqual(await (await fetch(`${gateway.url}/healthz`)).json(), { status: 'ok' });
    const ready = await fetch(`${gateway.url}/readyz`);
    assert.equal(ready.status, 200);
  });

  it('serves the MultiChat page and the client SDK modules', async () => {
    const page = await fetch(`${gateway.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  });

  it('refuses bad logins DRF-style and lists the rooms a user may join', async () => {
    const bad = await post(gateway, '/api/auth/token', { username: 'alice', password: 'wrong' });
    assert.equal(bad.status, 400);
    assert.ok(
      Array.isArray(((await bad.json()) as { non_field_errors: unknown }).non_field_errors),
    );
    const rooms = async (session: Session) =>
      (await (
        await fetch(`${gateway.url}/api/rooms`, {
          headers: { authorization: `Token ${session.token}` },
        })
      ).json()) as { id: number; title: string }[];
    assert.deepEqual(
      (await rooms(alice)).map((room) => room.title),
      ['Lobby'],
    );
    assert.deepEqual((await rooms(bob)).map((room) => room.title).sort(), ['Lobby', 'Staff']);
    assert.equal((await fetch(`${gateway.url}/api/rooms`)).status, 401);
    const me = await fetch(`${gateway.url}/api/me`, {
      headers: { authorization: `Bearer ${alice.token}` },
    });
    assert.deepEqual(await me.json(), { id: 1, username: 'alice', is_staff: false });
  });

  it('runs MultiChat between two users connected with tickets', async () => {
    const a = await connectClient(await ticketUrl(gateway, alice, '/ws/chat/'));
    const b = await connectClient(await ticketUrl(gateway, bob, '/ws/chat/'));
    a.sendJson({ command: 'join', room: Number(lobby) });
    assert.deepEqual(await a.receiveJson(), { join: lobby, title: 'Lobby' });
    b.sendJson({ command: 'join', room: lobby });
    assert.deepEqual(await b.receiveJson(), { join: lobby, title: 'Lobby' });
    assert.deepEqual(await a.receiveJson(), { msg_type: 4, room: lobby, username: 'bob' });
    b.sendJson({ command: 'send', room: lobby, message: 'hello <b>alice</b>' });
    const expected = { msg_type: 0, room: lobby, username: 'bob', message: 'hello <b>alice</b>' };
    assert.deepEqual(await a.receiveJson(), expected);
    assert.deepEqual(await b.receiveJson(), expected);
    a.sendJson({ command: 'join', room: staffRoom });
    assert.deepEqual(await a.receiveJson(), { error: 'ROOM_ACCESS_DENIED' });
    await a.close();
    assert.deepEqual(await b.receiveJson(), { msg_type: 5, room: lobby, username: 'alice' });
    await b.close();
  });

  it('closes anonymous chat sockets 4401 and logs out sockets with their token', async () => {
    const anonymous = await connectClient(`${gateway.url.replace('http', 'ws')}/ws/chat/`);
    anonymous.sendJson({ command: 'join', room: lobby });
    assert.deepEqual(await anonymous.waitForClose(), {
      code: 4401,
      reason: 'authentication required',
    });
    const carol = await gateway.accounts.createUser({
      username: 'carol',
      password: 'carol-password-1',
    });
    assert.ok(carol.id);
    const session = await login(gateway, 'carol', 'carol-password-1');
    const socket = await connectClient(`${gateway.url.replace('http', 'ws')}/ws/chat/`, {
      headers: { Authorization: `Token ${session.token}` },
    });
    socket.sendJson({ command: 'join', room: lobby });
    await socket.receiveJson();
    const logout = await post(gateway, '/api/auth/logout', {}, session.token);
    assert.equal(logout.status, 204);
    assert.deepEqual(await socket.waitForClose(), { code: 4401, reason: 'token revoked' });
  });

  it('publishes to groups for other backends, with the API key compared in constant time', async () => {
    const bench = await connectClient(`${gateway.url.replace('http', 'ws')}/ws/bench/`, {
      headers: { Authorization: `Token ${alice.token}` },
    });
    bench.sendJson({ echo: { n: 1 } });
    assert.deepEqual(await bench.receiveJson(), { echo: { n: 1 } });
    const publish = (body: unknown, key = PUBLISH_API_KEY) =>
      fetch(`${gateway.url}/api/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify(body),
      });
    assert.equal((await publish({ group: 'bench', message: { x: 1 } }, 'wrong-key')).status, 401);
    const invalid = await publish({ group: 'bad group!', message: {} });
    assert.equal(invalid.status, 400);
    assert.ok('group' in ((await invalid.json()) as object));
    assert.equal((await publish({ group: 'bench' })).status, 400);
    const accepted = await publish({ group: 'bench', message: { price: 42 } });
    assert.equal(accepted.status, 202);
    assert.deepEqual(await bench.receiveJson(), { price: 42 });
    assert.equal((await publish({ group: 'bench', messages: [{ n: 1 }, { n: 2 }] })).status, 202);
    assert.deepEqual(await bench.receiveJson(), { n: 1 });
    assert.deepEqual(await bench.receiveJson(), { n: 2 });
    await bench.close();
  });

  it('refuses anonymous bench sockets', async () => {
    const socket = await connectClient(`${gateway.url.replace('http', 'ws')}/ws/bench/`);
    socket.sendJson({ echo: 1 });
    assert.equal((await socket.waitForClose()).code, 4401);
  });

  it('exposes Prometheus metrics', async () => {
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    for (const name of [
      'portcullis_connections',
      'portcullis_messages_received_total',
      'portcullis_messages_sent_total',
      'portcullis_close_codes_total',
      'portcullis_group_sends_total',
      'portcullis_layer_latency_seconds',
    ]) {
      assert.match(text, new RegExp(`^${name}`, 'm'), name);
    }
    assert.match(
      text,
      /portcullis_auth_results_total\{transport="ticket",outcome="success"\} [1-9]/,
    );
    assert.match(text, /portcullis_close_codes_total\{code="4401"\} [1-9]/);
  });

  it('refuses unknown paths with 404 at the handshake', async () => {
    await assert.rejects(connectClient(`${gateway.url.replace('http', 'ws')}/ws/nowhere/`), /404/);
  });

  it('never logs an issued credential', () => {
    const everything = logLines.join('\n');
    assert.ok(logLines.length > 0);
    for (const secret of [alice.token, bob.token]) assert.equal(everything.includes(secret), false);
  });
});

describe('gateway lifecycle', () => {
  it('sends 1001 to every socket on shutdown', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'portcullis-gateway-'));
    const gateway = await startGateway(config(directory), { logger });
    try {
      await gateway.accounts.createUser({ username: 'dan', password: 'dan-password-1' });
      const session = await login(gateway, 'dan', 'dan-password-1');
      const sockets = await Promise.all(
        [1, 2, 3].map(() =>
          connectClient(`${gateway.url.replace('http', 'ws')}/ws/chat/`, {
            headers: { Authorization: `Token ${session.token}` },
          }),
        ),
      );
      const closes = sockets.map((socket) => socket.waitForClose(5_000));
      await gateway.close();
      for (const closed of await Promise.all(closes)) {
        assert.deepEqual(closed, { code: 1001, reason: 'going away' });
      }
    } finally {
      await gateway.close();
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('fails to start on a taken port', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'portcullis-gateway-'));
    const blocker = createNetServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    const { port } = blocker.address() as AddressInfo;
    try {
      const taken = loadConfig({
        env: { DATABASE_URL: `sqlite:${join(directory, 'x.db')}` },
        flags: { port },
      });
      await assert.rejects(startGateway(taken, { logger }), { code: 'EADDRINUSE' });
    } finally {
      blocker.close();
      rmSync(directory, { recursive: true, force: true });
    }
  });
});

/** A TCP proxy to PostgreSQL that the test can cut, to take the database away. */
async function startProxy(target: URL): Promise<{ port: number; cut(): void; server: NetServer }> {
  const sockets = new Set<Socket>();
  const server = createNetServer((client) => {
    const upstream = netConnect(Number(target.port || 5432), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    server,
    cut() {
      server.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}

describe(
  'gateway fails closed when PostgreSQL goes away',
  await serviceSuiteOptions('postgres'),
  () => {
    it('reports not ready, refuses new sockets with 1013 and REST with 503', async (t) => {
      // Teardown registered as each resource is made, undone last first: a failure must
      // not leave the proxy or a pool open and hang the file.
      const teardown: (() => unknown)[] = [];
      t.after(async () => {
        for (const undo of teardown.reverse()) await undo();
      });
      const schema = await createPostgresSchema(await serviceUrl('postgres'));
      teardown.push(() => schema.drop());
      const proxy = await startProxy(new URL(schema.url));
      teardown.push(() => proxy.cut());
      const proxied = new URL(schema.url);
      proxied.hostname = '127.0.0.1';
      proxied.port = String(proxy.port);
      const { openStore } = await import('../../src/store/index.js');
      const direct = openStore(schema.url);
      try {
        await direct.migrate();
        await new Accounts(direct).createUser({ username: 'erin', password: 'erin-password-1' });
      } finally {
        await direct.close();
      }
      const gateway = await startGateway(
        loadConfig({ env: { DATABASE_URL: proxied.toString() }, flags: { port: 0 } }),
        { logger },
      );
      teardown.push(() => gateway.close());
      {
        const session = await login(gateway, 'erin', 'erin-password-1');
        assert.equal((await fetch(`${gateway.url}/readyz`)).status, 200);
        proxy.cut();
        const notReady = await fetch(`${gateway.url}/readyz`);
        assert.equal(notReady.status, 503);
        const socket = await connectClient(`${gateway.url.replace('http', 'ws')}/ws/chat/`, {
          headers: { Authorization: `Token ${session.token}` },
        });
        assert.deepEqual(await socket.waitForClose(), { code: 1013, reason: 'try again later' });
        const rest = await post(gateway, '/api/auth/token', {
          username: 'erin',
          password: 'erin-password-1',
        });
        assert.equal(rest.status, 503);
        assert.equal(JSON.stringify(await rest.json()).includes('ECONNREFUSED'), false);
      }
    });
  },
);
