// REDIS_PREFIX (SPEC §12, issue 12): two deployments on one Redis, each with its own
// database and prefix, never see each other's chat messages, presence notices or
// revocations; processes of one deployment still see each other's. Before the prefix
// reached the gateway, deployment B received A's message and A's "log out everywhere"
// closed B's socket.
//
// "Never" is checked by order, not by waiting: after A's event reached A's second
// process, B makes an event of the same kind. Were the prefixes shared, A's event would
// travel on the same Redis channel ahead of B's and reach B first.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { TestClient } from '../../src/testing/client.js';
import { chat, joinRoom, login, receiveMatching, seedChat } from '../helpers/gateway-clients.js';
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

const chatFrom = (username: string) => (frame: Record<string, unknown>) =>
  frame['msg_type'] === 0 && frame['username'] === username;
const presenceNotice = (frame: Record<string, unknown>) =>
  frame['msg_type'] === 4 || frame['msg_type'] === 5;

describe('REDIS_PREFIX: two deployments on one Redis', suiteOptions, () => {
  let redis: ChildProcess;
  const schemas: PostgresSchema[] = [];
  const gateways: GatewayProcess[] = [];
  const clients: TestClient[] = [];
  let a1: GatewayProcess;
  let a2: GatewayProcess;
  let b: GatewayProcess;
  let roomA: string;
  let roomB: string;

  async function socket(gateway: GatewayProcess, username: string): Promise<TestClient> {
    const client = await chat(gateway, await login(gateway, username));
    clients.push(client);
    return client;
  }

  before(async () => {
    const port = await freePort();
    redis = await startRedisServer(port);
    const postgres = await serviceUrl('postgres');
    const [schemaA, schemaB] = await Promise.all([
      createPostgresSchema(postgres),
      createPostgresSchema(postgres),
    ]);
    schemas.push(schemaA, schemaB);
    // The same users in the same order: alice and bob have the same ids in both.
    roomA = await seedChat(schemaA.url, ['alice', 'bob', 'carol']);
    roomB = await seedChat(schemaB.url, ['alice', 'bob', 'dave']);
    assert.equal(roomA, roomB, 'both deployments have the same room id');
    const tag = randomBytes(4).toString('hex');
    const deployment = (schema: PostgresSchema, prefix: string) => ({
      DATABASE_URL: schema.url,
      REDIS_URL: `redis://127.0.0.1:${port}`,
      REDIS_PREFIX: prefix,
    });
    const envA = deployment(schemaA, `team-a.${tag}`);
    const envB = deployment(schemaB, `team-b.${tag}`);
    [a1, a2, b] = await Promise.all([
      startGatewayProcess(envA),
      startGatewayProcess(envA),
      startGatewayProcess(envB),
    ]);
    gateways.push(a1, a2, b);
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    await Promise.all(gateways.map((gateway) => stopProcess(gateway.child, 'SIGTERM')));
    if (redis !== undefined) await stopProcess(redis);
    await Promise.all(schemas.map((schema) => schema.drop()));
  });

  it('keeps chat messages within their deployment', async () => {
    const aliceA1 = await socket(a1, 'alice');
    const aliceA2 = await socket(a2, 'alice');
    const aliceB = await socket(b, 'alice');
    for (const [client, room] of [
      [aliceA1, roomA],
      [aliceA2, roomA],
      [aliceB, roomB],
    ] as const) {
      await joinRoom(client, room);
    }
    aliceA1.sendJson({ command: 'send', room: roomA, message: 'from A' });
    const onA2 = await receiveMatching(aliceA2, chatFrom('alice'));
    assert.equal(onA2['message'], 'from A', "A's other process got it");
    aliceB.sendJson({ command: 'send', room: roomB, message: 'from B' });
    const onB = await receiveMatching(aliceB, chatFrom('alice'));
    assert.equal(onB['message'], 'from B', "B's first chat frame is its own, not A's");
  });

  it('keeps presence notices within their deployment', async () => {
    const watcherA = await socket(a2, 'bob');
    const watcherB = await socket(b, 'bob');
    await joinRoom(watcherA, roomA);
    await joinRoom(watcherB, roomB);
    const carol = await socket(a1, 'carol');
    await joinRoom(carol, roomA);
    const enteredA = await receiveMatching(watcherA, presenceNotice);
    assert.deepEqual([enteredA['msg_type'], enteredA['username']], [4, 'carol']);
    const dave = await socket(b, 'dave');
    await joinRoom(dave, roomB);
    const enteredB = await receiveMatching(watcherB, presenceNotice);
    assert.deepEqual(
      [enteredB['msg_type'], enteredB['username']],
      [4, 'dave'],
      "B's first notice is its own, not carol's",
    );
  });

  it('keeps revocations within their deployment', async () => {
    const tokenA = await login(a1, 'bob');
    const bobA = await chat(a2, tokenA);
    clients.push(bobA);
    const bobB = await socket(b, 'bob');
    const tokenDave = await login(b, 'dave');
    const daveB = await chat(b, tokenDave);
    clients.push(daveB);
    // "Log out everywhere" for bob (the same user id in both deployments) on A.
    const logoutAll = await fetch(`${a1.url}/api/auth/logout-all`, {
      method: 'POST',
      headers: { authorization: `Token ${tokenA}` },
    });
    assert.equal(logoutAll.status, 204);
    assert.deepEqual(await bobA.waitForClose(5_000), { code: 4401, reason: 'token revoked' });
    // B's own revocation, on the channel A's would share with it under one prefix.
    const logout = await fetch(`${b.url}/api/auth/logout`, {
      method: 'POST',
      headers: { authorization: `Token ${tokenDave}` },
    });
    assert.equal(logout.status, 204);
    assert.deepEqual(await daveB.waitForClose(5_000), { code: 4401, reason: 'token revoked' });
    // Still open: it answers.
    await joinRoom(bobB, roomB);
  });
});
