// `portcullis serve` in Django mode (SPEC §11) in front of a real Django project
// (examples/django-multichat, migrated by Django itself), on SQLite and on PostgreSQL:
// every credential kind Django hands out, revocation of live sockets, MultiChat on the
// app's own rooms and channels_redis groups shared with the original consumer.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { connectClient } from '../../src/testing/index.js';
import type { TestClient } from '../../src/testing/index.js';
import { createDjangoProject, djangoSuiteOptions } from '../helpers/django.js';
import type { DjangoDatabaseKind, DjangoProject } from '../helpers/django.js';
import { builtCli, freePort, startGatewayProcess, stopProcess } from '../helpers/processes.js';
import type { GatewayProcess } from '../helpers/processes.js';
import { serviceSuiteOptions } from '../helpers/services.js';

/** How often the gateway re-checks live Django credentials in this suite. */
const REVALIDATE_SECONDS = 1;
/** A revoked socket must be closed within the interval; this allows for one full tick more. */
const REVOKED_WITHIN_MS = 2 * REVALIDATE_SECONDS * 1_000 + 1_500;
const PASSWORD = 'correct-horse-battery';

interface Suite {
  readonly name: DjangoDatabaseKind;
  readonly options: { skip: string | false };
}

const django = djangoSuiteOptions();
const suites: Suite[] = [
  { name: 'sqlite', options: django },
  {
    name: 'postgres',
    options: django.skip === false ? await serviceSuiteOptions('postgres') : django,
  },
];

const redisOptions = await serviceSuiteOptions('redis');

for (const suite of suites) {
  const skip = suite.options.skip || redisOptions.skip;
  describe(`Django mode on ${suite.name}`, { skip: skip === false ? false : skip }, () => {
    let project: DjangoProject;
    let gateway: GatewayProcess;
    let portcullisDir: string;
    let wsUrl: string;
    const rooms: Record<string, number> = {};
    let tablesBefore: string[];

    /** A fresh Django user (created through the ORM), so tests never share one. */
    async function newUser(prefix: string, staff = false): Promise<string> {
      const username = `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
      await project.agent('create_user', { username, password: PASSWORD, staff });
      return username;
    }

    async function drfKey(username: string): Promise<string> {
      const { status, body } = await project.postJson('/api/token/', {
        username,
        password: PASSWORD,
      });
      assert.equal(status, 200, JSON.stringify(body));
      return String(body['token']);
    }

    async function jwtPair(username: string): Promise<{ access: string; refresh: string }> {
      const { status, body } = await project.postJson('/api/jwt/', {
        username,
        password: PASSWORD,
      });
      assert.equal(status, 200, JSON.stringify(body));
      return { access: String(body['access']), refresh: String(body['refresh']) };
    }

    function connect(headers: Record<string, string>, origin?: string): Promise<TestClient> {
      return connectClient(wsUrl, { headers, ...(origin === undefined ? {} : { origin }) });
    }

    /** Joins the Lobby: the proof a socket was let in as a user. */
    async function inLobby(client: TestClient): Promise<void> {
      client.sendJson({ command: 'join', room: rooms['Lobby'] });
      assert.deepEqual(await client.receiveJson(3_000), {
        join: String(rooms['Lobby']),
        title: 'Lobby',
      });
    }

    async function refused(
      client: TestClient,
      reason: string,
      code = 4401,
      timeout = 3_000,
    ): Promise<void> {
      assert.deepEqual(await client.waitForClose(timeout), { code, reason });
    }

    /** Still open a while later (it may have room notices queued: not `receiveNothing`). */
    async function stillOpen(client: TestClient): Promise<boolean> {
      await new Promise((resolve) => setTimeout(resolve, 300));
      return client.socket.readyState === client.socket.OPEN;
    }

    async function djangoTables(): Promise<string[]> {
      const { openReadOnlyDjangoDatabase } = await import('../../src/gateway/django.js');
      const { db, kind } = await openReadOnlyDjangoDatabase(project.databaseUrl);
      try {
        const query =
          kind === 'sqlite'
            ? sql<{
                name: string;
              }>`select name from sqlite_master where type = 'table' order by name`
            : sql<{ name: string }>`select table_name as name from information_schema.tables
                where table_schema = current_schema() order by table_name`;
        return (await query.execute(db)).rows.map((row) => row.name);
      } finally {
        await db.destroy();
      }
    }

    before(async () => {
      assert.ok(builtCli(), 'run npm run build first');
      const port = await freePort();
      wsUrl = `ws://127.0.0.1:${port}/ws/chat/`;
      project = await createDjangoProject({ database: suite.name, portcullisWsUrl: wsUrl });
      rooms['Lobby'] = await project.agent<number>('create_room', { title: 'Lobby' });
      rooms['Staff'] = await project.agent<number>('create_room', {
        title: 'Staff',
        staff_only: true,
      });
      tablesBefore = await djangoTables();
      portcullisDir = await mkdtemp(join(tmpdir(), 'portcullis-state-'));
      gateway = await startGatewayProcess(
        {
          DATABASE_URL: `sqlite:${join(portcullisDir, 'portcullis.db')}`,
          DJANGO_DATABASE_URL: project.databaseUrl,
          DJANGO_SECRET_KEY: project.secretKey,
          DJANGO_REVALIDATE_INTERVAL: `${REVALIDATE_SECONDS}s`,
          REDIS_URL: project.redisUrl,
          REDIS_PREFIX: `${project.channelsPrefix}-pcu`,
          CHANNELS_REDIS_PREFIX: project.channelsPrefix,
          // The Django site's pages open the sockets (docs/django.md).
          ALLOWED_ORIGINS: project.url,
        },
        { port },
      );
    });

    after(async () => {
      if (gateway !== undefined) await stopProcess(gateway.child, 'SIGTERM');
      await project?.close();
      if (portcullisDir !== undefined) await rm(portcullisDir, { recursive: true, force: true });
    });

    test('the Django database is read, never written or migrated', async () => {
      const line = gateway.lines.find((entry) => entry.includes('django mode: serving'));
      assert.ok(line, gateway.lines.join('\n'));
      assert.match(line, /"rooms":"chat_room"/);
      assert.deepEqual(await djangoTables(), tablesBefore, 'no table added to Django’s database');
      // The connection Django mode opens refuses writes in the database itself.
      const { openReadOnlyDjangoDatabase } = await import('../../src/gateway/django.js');
      const { db } = await openReadOnlyDjangoDatabase(project.databaseUrl);
      try {
        await assert.rejects(
          sql`update auth_user set is_staff = is_staff`.execute(db),
          (error: { code?: string }) =>
            // SQLite: opened readonly; PostgreSQL: default_transaction_read_only.
            ['SQLITE_READONLY', '25006'].includes(String(error.code)) ||
            assert.fail(String(error.code)),
        );
        await assert.rejects(sql`create table portcullis_probe (id integer)`.execute(db));
      } finally {
        await db.destroy();
      }
    });

    test('a DRF token from Django’s obtain_auth_token: header Token, Bearer, cookie key=', async () => {
      const username = await newUser('drf');
      const key = await drfKey(username);
      for (const headers of [
        { authorization: `Token ${key}` },
        { authorization: `Bearer ${key}` },
        // The Android client's cookie, without an Origin (not a browser).
        { cookie: `key=${key}` },
      ]) {
        const client = await connect(headers);
        await inLobby(client);
        await client.close();
      }
      const wrong = await connect({ authorization: `Token ${key.slice(0, -1)}x` });
      await refused(wrong, 'invalid credentials');
    });

    test('a DRF key in whatever format Django stored it', async () => {
      const username = await newUser('handmade');
      for (const key of ['s3cret-handmade_key.1', 'ABC', 'x'.repeat(40)]) {
        await project.agent('set_drf_token', { username, key });
        const client = await connect({ authorization: `Token ${key}` });
        await inLobby(client);
        await client.close();
      }
    });

    test('SimpleJWT: access tokens on the header and the JWT cookie; refresh and expired refused', async () => {
      const username = await newUser('jwt');
      const { access, refresh } = await jwtPair(username);
      for (const headers of [{ authorization: `Bearer ${access}` }, { cookie: `JWT=${access}` }]) {
        const client = await connect(headers);
        await inLobby(client);
        await client.close();
      }
      await refused(await connect({ authorization: `Bearer ${refresh}` }), 'invalid credentials');
      await refused(await connect({ cookie: `JWT=${refresh}` }), 'invalid credentials');
      // TokenRefreshView's new access token works; the refresh token itself never does.
      const refreshed = await project.postJson('/api/jwt/refresh/', { refresh });
      assert.equal(refreshed.status, 200);
      const client = await connect({ authorization: `Bearer ${String(refreshed.body['access'])}` });
      await inLobby(client);
      await client.close();
      const expired = await project.agent<string>('jwt', {
        username,
        kind: 'access',
        lifetime: -10,
      });
      await refused(await connect({ authorization: `Bearer ${expired}` }), 'token expired');
    });

    test('a SimpleJWT socket closes at the token’s exp', async () => {
      const username = await newUser('short');
      // Long enough to connect on a loaded machine; the close comes at exp, not before.
      const token = await project.agent<string>('jwt', { username, kind: 'access', lifetime: 4 });
      const client = await connect({ authorization: `Bearer ${token}` });
      await inLobby(client);
      await refused(client, 'token expired', 4401, 7_000);
    });

    test('a session cookie from Django’s LoginView; the Origin rule applies to it', async () => {
      const username = await newUser('session');
      const sessionid = await project.login(username, PASSWORD);
      const cookie = { cookie: `sessionid=${sessionid}` };
      // A page of the Django site, and a client without an Origin (not a browser).
      for (const origin of [project.url, undefined]) {
        const client = await connect(cookie, origin);
        await inLobby(client);
        await client.close();
      }
      // Another site's page cannot ride the victim's cookie (cross-site WebSocket hijacking).
      await refused(await connect(cookie, 'http://evil.example'), 'origin not allowed', 4403);
      // A session id is a cookie and nothing else: not a header credential.
      await refused(await connect({ authorization: `Token ${sessionid}` }), 'invalid credentials');
      await refused(
        await connect({ cookie: 'sessionid=0123456789abcdefghijklmnopqrstuv' }),
        'invalid credentials',
      );
    });

    test('a signed_cookies session is verified with SECRET_KEY', async () => {
      const username = await newUser('signed');
      const signed = await project.agent<string>('signed_cookie_session', { username });
      assert.match(signed, /:/);
      const client = await connect({ cookie: `sessionid=${signed}` });
      await inLobby(client);
      await client.close();
      const cut = signed.lastIndexOf(':');
      const tampered = [
        `${signed.slice(0, cut)}:${signed.slice(cut + 1).replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))}`,
        signed.slice(0, -3),
        `${signed.slice(0, 10)}${signed.slice(11)}`,
        `.${'A'.repeat(12_000)}:1abcde:${'B'.repeat(27)}`,
        ':::',
      ];
      for (const value of tampered) {
        await refused(await connect({ cookie: `sessionid=${value}` }), 'invalid credentials');
      }
    });

    test('tampered, truncated and huge session data in django_session are refused', async () => {
      const username = await newUser('tamper');
      const sessionid = await project.login(username, PASSWORD);
      const data = await project.agent<string>('session_data', { key: sessionid });
      const variants = [
        `${data.slice(0, -1)}${data.endsWith('A') ? 'B' : 'A'}`,
        data.slice(0, data.length >> 1),
        `.${'A'.repeat(200_000)}:1abcde:${'B'.repeat(43)}`,
        '',
      ];
      try {
        for (const value of variants) {
          await project.agent('set_session_data', { key: sessionid, data: value });
          await refused(await connect({ cookie: `sessionid=${sessionid}` }), 'invalid credentials');
        }
      } finally {
        await project.agent('set_session_data', { key: sessionid, data });
      }
      const client = await connect({ cookie: `sessionid=${sessionid}` });
      await inLobby(client);
      await client.close();
      assert.equal((await fetch(`${gateway.url}/healthz`)).status, 200);
    });

    test('MultiChat reads Django’s rooms: ids, titles and staff_only match', async () => {
      const staff = await newUser('staffer', true);
      const plain = await newUser('plain');
      const response = await fetch(`${gateway.url}/api/rooms`, {
        headers: { authorization: `Token ${await drfKey(plain)}` },
      });
      assert.deepEqual(await response.json(), [
        { id: rooms['Lobby'], title: 'Lobby', staff_only: false },
      ]);
      const denied = await connect({ authorization: `Token ${await drfKey(plain)}` });
      denied.sendJson({ command: 'join', room: rooms['Staff'] });
      assert.deepEqual(await denied.receiveJson(), { error: 'ROOM_ACCESS_DENIED' });
      const admitted = await connect({ authorization: `Token ${await drfKey(staff)}` });
      admitted.sendJson({ command: 'join', room: String(rooms['Staff']) });
      assert.deepEqual(await admitted.receiveJson(), {
        join: String(rooms['Staff']),
        title: 'Staff',
      });
      await denied.close();
      await admitted.close();
    });

    test('Django ending a credential closes its live sockets (4401 token revoked)', async () => {
      const username = await newUser('revoke');
      const drf = await connect({ authorization: `Token ${await drfKey(username)}` });
      const jwt = await connect({ authorization: `Bearer ${(await jwtPair(username)).access}` });
      const session = await connect({
        cookie: `sessionid=${await project.login(username, PASSWORD)}`,
      });
      for (const client of [drf, jwt, session]) await inLobby(client);

      await project.agent('delete_drf_token', { username });
      await refused(drf, 'token revoked', 4401, REVOKED_WITHIN_MS);
      assert.ok(await stillOpen(session), 'the session socket stays');

      // A password change ends sessions (the session auth hash), not access tokens.
      await project.agent('set_password', { username, password: `${PASSWORD}-2` });
      await refused(session, 'token revoked', 4401, REVOKED_WITHIN_MS);
      assert.ok(await stillOpen(jwt), 'the JWT socket stays');

      await project.agent('set_active', { username, active: false });
      await refused(jwt, 'token revoked', 4401, REVOKED_WITHIN_MS);
    });

    test('a session deleted (logout) or expired in Django closes its sockets', async () => {
      const gone = await newUser('logout');
      const expiring = await newUser('expiry');
      const first = await connect({ cookie: `sessionid=${await project.login(gone, PASSWORD)}` });
      const second = await connect({
        cookie: `sessionid=${await project.login(expiring, PASSWORD)}`,
      });
      await inLobby(first);
      await inLobby(second);
      assert.equal(await project.agent('delete_sessions', { username: gone }), 1);
      assert.equal(await project.agent('expire_sessions', { username: expiring }), 1);
      await refused(first, 'token revoked', 4401, REVOKED_WITHIN_MS);
      await refused(second, 'token revoked', 4401, REVOKED_WITHIN_MS);
    });

    test('channels_redis: Django’s group_send and consumers share the rooms', async () => {
      const username = await newUser('chat');
      const djangoUser = await newUser('daphne');
      const lobby = String(rooms['Lobby']);
      const client = await connect({ authorization: `Token ${await drfKey(username)}` });
      await inLobby(client);

      // Django code, as the issue writes it, with room_id an int.
      await project.agent('group_send', {
        group: `room-${lobby}`,
        message: {
          type: 'chat.message',
          room_id: rooms['Lobby'],
          username: 'django',
          message: 'from Django',
        },
      });
      assert.deepEqual(await client.receiveJson(3_000), {
        msg_type: 0,
        room: lobby,
        username: 'django',
        message: 'from Django',
      });

      // The original consumer, run by Django on the same layer, joins the room...
      await project.agent('consumer_connect', { cid: 'c1', username: djangoUser });
      await project.agent('consumer_send', { cid: 'c1', json: { command: 'join', room: lobby } });
      assert.deepEqual(await project.agent('consumer_receive', { cid: 'c1' }), {
        join: lobby,
        title: 'Lobby',
      });
      assert.deepEqual(await client.receiveJson(3_000), {
        msg_type: 4,
        room: lobby,
        username: djangoUser,
      });

      // ...gets what a Portcullis socket says, and says something back.
      client.sendJson({ command: 'send', room: lobby, message: 'from Portcullis' });
      const frame = { msg_type: 0, room: lobby, username, message: 'from Portcullis' };
      assert.deepEqual(await client.receiveJson(3_000), frame);
      assert.deepEqual(await project.agent('consumer_receive', { cid: 'c1' }), frame);
      await project.agent('consumer_send', {
        cid: 'c1',
        json: { command: 'send', room: lobby, message: 'hello from Channels' },
      });
      assert.deepEqual(await client.receiveJson(3_000), {
        msg_type: 0,
        room: lobby,
        username: djangoUser,
        message: 'hello from Channels',
      });
      assert.equal(
        ((await project.agent('consumer_receive', { cid: 'c1' })) as { message: string }).message,
        'hello from Channels',
      );

      // Leaving on the Portcullis side tells the Django consumer, as the original does.
      client.sendJson({ command: 'leave', room: lobby });
      assert.deepEqual(await client.receiveJson(3_000), { leave: lobby });
      assert.deepEqual(await client.receiveJson(3_000), { msg_type: 5, room: lobby, username });
      assert.deepEqual(await project.agent('consumer_receive', { cid: 'c1' }), {
        msg_type: 5,
        room: lobby,
        username,
      });
      await project.agent('consumer_close', { cid: 'c1' });
      await client.close();
    });

    test('a wrong DJANGO_SECRET_KEY: one startup warning, every session refused', async () => {
      const username = await newUser('secret');
      const sessionid = await project.login(username, PASSWORD);
      const key = await drfKey(username);
      const dir = await mkdtemp(join(tmpdir(), 'portcullis-state-'));
      const wrong = await startGatewayProcess({
        DATABASE_URL: `sqlite:${join(dir, 'portcullis.db')}`,
        DJANGO_DATABASE_URL: project.databaseUrl,
        DJANGO_SECRET_KEY: `${project.secretKey}-not-the-one`,
      });
      try {
        const url = `${wrong.url.replace('http', 'ws')}/ws/chat/`;
        const warnings = wrong.lines.filter((line) =>
          line.includes('DJANGO_SECRET_KEY verifies none'),
        );
        assert.equal(warnings.length, 1, wrong.lines.join('\n'));
        assert.ok(!warnings[0]!.includes(project.secretKey), 'the warning never shows the key');
        const session = await connectClient(url, { headers: { cookie: `sessionid=${sessionid}` } });
        await refused(session, 'invalid credentials');
        // DRF tokens do not depend on the secret.
        const drf = await connectClient(url, { headers: { authorization: `Token ${key}` } });
        drf.sendJson({ command: 'join', room: rooms['Lobby'] });
        assert.deepEqual(await drf.receiveJson(), { join: String(rooms['Lobby']), title: 'Lobby' });
        await drf.close();
      } finally {
        await stopProcess(wrong.child, 'SIGTERM');
        await rm(dir, { recursive: true, force: true });
      }
    });

    // PostgreSQL only: a SQLite file cannot go away under an open handle.
    const onPostgres = suite.name === 'postgres' ? test : undefined;
    onPostgres?.('the Django database going away fails closed (1013) and comes back', async () => {
      const username = await newUser('outage');
      const key = await drfKey(username);
      // Portcullis reaches PostgreSQL through a proxy this test can cut.
      const target = new URL(project.databaseUrl);
      const sockets = new Set<Socket>();
      const proxy = createServer((client) => {
        const upstream = netConnect(Number(target.port || 5432), target.hostname);
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on('error', () => socket.destroy());
          socket.on('close', () => sockets.delete(socket));
        }
        client.pipe(upstream).pipe(client);
      });
      proxy.listen(0, '127.0.0.1');
      await once(proxy, 'listening');
      const proxyPort = (proxy.address() as { port: number }).port;
      const proxied = new URL(project.databaseUrl);
      proxied.port = String(proxyPort);
      const cut = async (): Promise<void> => {
        proxy.close();
        for (const socket of sockets) socket.destroy();
        await once(proxy, 'close');
      };
      const dir = await mkdtemp(join(tmpdir(), 'portcullis-state-'));
      const outage = await startGatewayProcess({
        DATABASE_URL: `sqlite:${join(dir, 'portcullis.db')}`,
        DJANGO_DATABASE_URL: proxied.toString(),
        DJANGO_SECRET_KEY: project.secretKey,
        DJANGO_REVALIDATE_INTERVAL: '1s',
      });
      const url = `${outage.url.replace('http', 'ws')}/ws/chat/`;
      const open = (): Promise<TestClient> =>
        connectClient(url, { headers: { authorization: `Token ${key}` } });
      try {
        const live = await open();
        live.sendJson({ command: 'join', room: rooms['Lobby'] });
        assert.deepEqual(await live.receiveJson(), {
          join: String(rooms['Lobby']),
          title: 'Lobby',
        });
        await cut();
        await refused(await open(), 'try again later', 1013);
        const ready = await fetch(`${outage.url}/readyz`);
        assert.equal(ready.status, 503);
        // Nothing is known while it is gone: the live socket is kept, not revoked.
        assert.ok(await stillOpen(live));
        proxy.listen(proxyPort, '127.0.0.1');
        await once(proxy, 'listening');
        let back: TestClient | undefined;
        for (let attempt = 0; attempt < 50 && back === undefined; attempt += 1) {
          const client = await open();
          client.sendJson({ command: 'join', room: rooms['Lobby'] });
          const answer = await client.receiveJson(3_000).catch(() => undefined);
          if (answer !== undefined) back = client;
          else await new Promise((resolve) => setTimeout(resolve, 200));
        }
        assert.ok(back !== undefined, 'accepted again once the database is back');
        await back.close();
        await live.close();
      } finally {
        await stopProcess(outage.child, 'SIGTERM');
        proxy.close();
        for (const socket of sockets) socket.destroy();
        await rm(dir, { recursive: true, force: true });
      }
    });

    test('docs/django.md: the page Django serves talks to Portcullis with its session', async () => {
      const username = await newUser('reader');
      const other = await newUser('writer');
      const sessionid = await project.login(username, PASSWORD);
      // The page, rendered by Django for the logged-in user.
      const page = await fetch(`${project.url}/`, {
        headers: { cookie: `sessionid=${sessionid}` },
      });
      assert.equal(page.status, 200);
      const html = await page.text();
      assert.ok(html.includes(JSON.stringify(wsUrl)), 'the page points at Portcullis');
      assert.ok(html.includes(`data-room-id="${rooms['Lobby']}"`), 'rooms from Django');
      assert.ok(!html.includes(`data-room-id="${rooms['Staff']}"`), 'no staff room for non-staff');

      // What the page's script does, from the page's origin with its cookie.
      const browser = await connect({ cookie: `sessionid=${sessionid}` }, project.url);
      const writer = await connect(
        { cookie: `sessionid=${await project.login(other, PASSWORD)}` },
        project.url,
      );
      const lobby = String(rooms['Lobby']);
      browser.sendJson({ command: 'join', room: lobby });
      assert.deepEqual(await browser.receiveJson(), { join: lobby, title: 'Lobby' });
      writer.sendJson({ command: 'join', room: lobby });
      assert.deepEqual(await writer.receiveJson(), { join: lobby, title: 'Lobby' });
      assert.deepEqual(await browser.receiveJson(), { msg_type: 4, room: lobby, username: other });
      writer.sendJson({ command: 'send', room: lobby, message: '<b>hi</b>' });
      const said = { msg_type: 0, room: lobby, username: other, message: '<b>hi</b>' };
      assert.deepEqual(await browser.receiveJson(), said);
      assert.deepEqual(await writer.receiveJson(), said);
      browser.sendJson({ command: 'leave', room: lobby });
      assert.deepEqual(await browser.receiveJson(), { leave: lobby });
      assert.deepEqual(await browser.receiveJson(), { msg_type: 5, room: lobby, username });
      // After a reconnect the page leaves rooms it shows but has not joined again.
      browser.sendJson({ command: 'leave', room: lobby });
      assert.deepEqual(await browser.receiveJson(), { leave: lobby });
      await browser.close();
      await writer.close();
    });
  });
}
