// Two real gateway processes over the machine's PostgreSQL and a Redis of the test's own
// (so that it can be stopped and restarted without disturbing other suites).
import { Accounts } from '../../src/auth/accounts.js';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../../src/store/index.js';
import { chat, login, receiveMatching } from '../helpers/gateway-clients.js';
import {
  freePort,
  gatewaySuiteOptions,
  startGatewayProcess,
  startRedisServer,
  stopProcess,
} from '../helpers/processes.js';
import type { GatewayProcess } from '../helpers/processes.js';
import { createPostgresSchema, serviceUrl } from '../helpers/services.js';
import type { PostgresSchema } from '../helpers/services.js';

const suiteOptions = await gatewaySuiteOptions();

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
      await new Accounts(store).createUser({ username, password: `${username}-password-1` });
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
    // Fail closed: live sockets are told to resync, nobody new is let in.
    for (const client of [alice, dave]) {
      assert.deepEqual(await client.waitForClose(5_000), { code: 1013, reason: 'try again later' });
    }
    const readiness = async (gateway: GatewayProcess) =>
      (await fetch(`${gateway.url}/readyz`)).status;
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
    // The clients reconnect; groups and subscriptions work across processes again.
    const aliceAgain = await chat(a, await login(a, 'alice'));
    const daveAgain = await chat(b, await login(b, 'dave'));
    for (const client of [aliceAgain, daveAgain]) {
      client.sendJson({ command: 'join', room });
      await receiveMatching(client, (frame) => frame['join'] === room);
    }
    aliceAgain.sendJson({ command: 'send', room, message: 'after the restart' });
    const received = await receiveMatching(
      daveAgain,
      (frame) => frame['message'] === 'after the restart',
    );
    assert.equal(received['username'], 'alice');
    await aliceAgain.close();
    await daveAgain.close();
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
