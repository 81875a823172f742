// Two real gateway processes over the machine's PostgreSQL and a Redis of the test's own
// (so that it can be stopped and restarted without disturbing other suites).
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../../src/store/index.js';
import { connectClient } from '../../src/testing/client.js';
import type { TestClient } from '../../src/testing/client.js';
import {
  builtCli,
  freePort,
  startGatewayProcess,
  startRedisServer,
  stopProcess,
} from '../helpers/processes.js';
import type { GatewayProcess } from '../helpers/processes.js';
import {
  createPostgresSchema,
  isCI,
  serviceSuiteOptions,
  serviceUrl,
} from '../helpers/services.js';
import type { PostgresSchema } from '../helpers/services.js';

const suiteOptions = await (async () => {
  const postgres = await serviceSuiteOptions('postgres');
  if (postgres.skip !== false) return postgres;
  if (!builtCli() && !isCI()) return { skip: 'run `npm run build` first' };
  return { skip: false as const };
})();

async function login(gateway: GatewayProcess, username: string): Promise<string> {
  const response = await fetch(`${gateway.url}/api/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: `${username}-password-1` }),
  });
  assert.equal(response.status, 200, `login ${username}`);
  return ((await response.json()) as { token: string }).token;
}

function chat(gateway: GatewayProcess, token: string): Promise<TestClient> {
  return connectClient(`${gateway.url.replace('http', 'ws')}/ws/chat/`, {
    headers: { Authorization: `Token ${token}` },
  });
}

/** Reads frames until one matches, skipping notices; bounded by the client's timeout. */
async function receiveMatching(
  client: TestClient,
  match: (frame: Record<string, unknown>) => boolean,
) {
  for (let skipped = 0; skipped < 500; skipped += 1) {
    const frame = (await client.receiveJson(5_000)) as Record<string, unknown>;
    if (match(frame)) return frame;
  }
  throw new Error('no matching frame');
}

describe('scale-out: two gateway processes over Redis and PostgreSQL', suiteOptions, () => {
  let schema: PostgresSchema;
  let redis: ChildProcess;
  let redisPort: number;
  let a: GatewayProcess;
  let b: GatewayProcess;
  let room: string;

  // Every process of one deployment shares the presence TTL; short here so that a killed
  // process's members expire within the test.
  const env = () => ({
    DATABASE_URL: schema.url,
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    PRESENCE_TTL: '1s',
  });

  before(async () => {
    schema = await createPostgresSchema(await serviceUrl('postgres'));
    const store = openStore(schema.url);
    await store.migrate();
    for (const username of ['alice', 'bob', 'carol', 'dave', 'erin']) {
      await store.createUser({ username, password: `${username}-password-1` });
    }
    room = await store.createRoom({ title: 'Lobby' });
    await store.close();
    redisPort = await freePort();
    redis = await startRedisServer(redisPort);
    [a, b] = await Promise.all([startGatewayProcess(env()), startGatewayProcess(env())]);
  });

  after(async () => {
    await Promise.all(
      [a, b].filter(Boolean).map((gateway) => stopProcess(gateway.child, 'SIGTERM')),
    );
    if (redis !== undefined) await stopProcess(redis);
    await schema?.drop();
  });

  it('delivers room messages across processes, in order per sender', async () => {
    const alice = await chat(a, await login(a, 'alice'));
    const bob = await chat(b, await login(b, 'bob'));
    alice.sendJson({ command: 'join', room });
    assert.deepEqual(await alice.receiveJson(), { join: room, title: 'Lobby' });
    bob.sendJson({ command: 'join', room });
    assert.deepEqual(await bob.receiveJson(), { join: room, title: 'Lobby' });
    await receiveMatching(alice, (frame) => frame['msg_type'] === 4 && frame['username'] === 'bob');
    for (let n = 0; n < 50; n += 1) {
      alice.sendJson({ command: 'send', room, message: `a${n}` });
      bob.sendJson({ command: 'send', room, message: `b${n}` });
    }
    for (const [client, sender] of [
      [bob, 'alice'],
      [alice, 'bob'],
    ] as const) {
      const seen: string[] = [];
      while (seen.length < 50) {
        const frame = await receiveMatching(
          client,
          (f) => f['msg_type'] === 0 && f['username'] === sender,
        );
        seen.push(String(frame['message']));
      }
      const prefix = sender === 'alice' ? 'a' : 'b';
      assert.deepEqual(
        seen,
        Array.from({ length: 50 }, (_, n) => `${prefix}${n}`),
      );
    }
    await alice.close();
    await bob.close();
  });

  it('closes a socket on the other process when its token is revoked', async () => {
    const token = await login(a, 'carol');
    const socket = await chat(b, token);
    socket.sendJson({ command: 'join', room });
    await socket.receiveJson();
    const logout = await fetch(`${a.url}/api/auth/logout`, {
      method: 'POST',
      headers: { authorization: `Token ${token}` },
    });
    assert.equal(logout.status, 204);
    assert.deepEqual(await socket.waitForClose(5_000), { code: 4401, reason: 'token revoked' });
  });

  it('recovers from a Redis restart without restarting the gateways', async () => {
    const alice = await chat(a, await login(a, 'alice'));
    const dave = await chat(b, await login(b, 'dave'));
    for (const client of [alice, dave]) {
      client.sendJson({ command: 'join', room });
      await receiveMatching(client, (frame) => frame['join'] === room);
    }
    await stopProcess(redis);
    // Fail closed: while Redis is away nobody new is let in.
    const readiness = async (gateway: GatewayProcess) =>
      (await fetch(`${gateway.url}/readyz`)).status;
    const deadline = Date.now() + 5_000;
    while ((await readiness(a)) !== 503 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(await readiness(a), 503);
    const refused = await chat(a, await login(a, 'carol').catch(() => 'pcu_unused'));
    assert.equal((await refused.waitForClose(5_000)).code, 1013);
    redis = await startRedisServer(redisPort);
    const ready = Date.now() + 10_000;
    while (((await readiness(a)) !== 200 || (await readiness(b)) !== 200) && Date.now() < ready) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(await readiness(a), 200);
    assert.equal(await readiness(b), 200);
    // Existing sockets stayed open and the groups were resubscribed.
    let received: Record<string, unknown> | undefined;
    const until = Date.now() + 10_000;
    while (received === undefined && Date.now() < until) {
      alice.sendJson({ command: 'send', room, message: 'after the restart' });
      received = await receiveMatching(
        dave,
        (frame) => frame['message'] === 'after the restart',
      ).catch(() => undefined);
    }
    assert.equal(received?.['username'], 'alice');
    await alice.close();
    await dave.close();
  });

  it('drops the members of a killed process from the room for the others', async () => {
    const c = await startGatewayProcess(env());
    const alice = await chat(a, await login(a, 'alice'));
    const erin = await chat(c, await login(c, 'erin'));
    alice.sendJson({ command: 'join', room });
    await receiveMatching(alice, (frame) => frame['join'] === room);
    erin.sendJson({ command: 'join', room });
    await receiveMatching(erin, (frame) => frame['join'] === room);
    await receiveMatching(
      alice,
      (frame) => frame['msg_type'] === 4 && frame['username'] === 'erin',
    );
    await stopProcess(c.child, 'SIGKILL');
    const left = await receiveMatching(
      alice,
      (frame) => frame['msg_type'] === 5 && frame['username'] === 'erin',
    );
    assert.equal(left['room'], room);
    await alice.close();
  });
});
