// Redis Cluster (issue 12): a real cluster of three masters started on this machine by
// test/helpers/redis-cluster.ts. The layer and presence suites run over it (groups in
// slots of every master, sharded pub/sub), then real gateway processes with
// REDIS_CLUSTER=true carry chat, presence and revocation from one process to another,
// fail closed while a master is down (1013 / 503), and recover when it is back.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Cluster } from 'ioredis';
import { pino } from 'pino';
import { RedisChannelLayer } from '../../src/layers/redis/layer.js';
import type { RedisChannelLayerOptions } from '../../src/layers/redis/layer.js';
import { RedisPresence } from '../../src/layers/redis/presence.js';
import type { RedisPresenceOptions } from '../../src/layers/redis/presence.js';
import type { TestClient } from '../../src/testing/client.js';
import { chat, joinRoom, login, receiveMatching, seedChat } from '../helpers/gateway-clients.js';
import { collector, layerSuite } from '../helpers/layer-suite.js';
import { presenceSuite } from '../helpers/presence-suite.js';
import { gatewaySuiteOptions, startGatewayProcess, stopProcess } from '../helpers/processes.js';
import type { GatewayProcess } from '../helpers/processes.js';
import { hasRedisClusterTools, startRedisCluster } from '../helpers/redis-cluster.js';
import type { RedisCluster } from '../helpers/redis-cluster.js';
import { eventually } from '../helpers/eventually.js';
import { createPostgresSchema, isCI, serviceUrl } from '../helpers/services.js';
import type { PostgresSchema } from '../helpers/services.js';

const silent = pino({ level: 'silent' });
const TRY_AGAIN_LATER = { code: 1013, reason: 'try again later' };
const PUBLISH_API_KEY = 'publish-key-for-tests-0123456789';

const gatewayOptions = await gatewaySuiteOptions();
const suiteOptions = (() => {
  if (isCI()) return { skip: false as const };
  if (!hasRedisClusterTools()) return { skip: 'redis-server and redis-cli are not installed' };
  return { skip: false as const };
})();

function randomPrefix(): string {
  return `pcu-test-${randomBytes(5).toString('hex')}`;
}

describe('redis cluster', suiteOptions, () => {
  let cluster: RedisCluster;
  let admin: Cluster;
  const closers: (() => Promise<unknown>)[] = [];

  before(async () => {
    if (!hasRedisClusterTools()) throw new Error('redis-server and redis-cli are required');
    cluster = await startRedisCluster();
    admin = new Cluster([{ host: '127.0.0.1', port: cluster.ports[0]! }]);
    await new Promise((resolve) => admin.once('ready', resolve));
  });

  after(async () => {
    admin?.disconnect();
    await cluster?.close();
  });

  async function openLayer(options: RedisChannelLayerOptions = {}): Promise<RedisChannelLayer> {
    const layer = await RedisChannelLayer.connect({
      url: cluster.url,
      cluster: true,
      prefix: randomPrefix(),
      logger: silent,
      ...options,
    });
    assert.equal(layer.status, 'ready');
    return layer;
  }

  async function openPresence(options: RedisPresenceOptions = {}): Promise<RedisPresence> {
    const presence = await RedisPresence.connect({
      url: cluster.url,
      cluster: true,
      prefix: randomPrefix(),
      logger: silent,
      ...options,
    });
    closers.push(() => presence.close());
    return presence;
  }

  /** The index (in `cluster.ports`) of the master that owns `key`'s slot. */
  async function ownerOf(key: string): Promise<number> {
    const slot = Number(await admin.cluster('KEYSLOT', key));
    const [owner] = admin.slots[slot]!;
    return cluster.ports.findIndex((port) => owner === `127.0.0.1:${port}`);
  }

  layerSuite('redis cluster', {
    create: ({ capacity }) => openLayer({ capacity, groupExpiry: 600_000 }),
  });

  presenceSuite('redis cluster', {
    create: () => openPresence(),
    pair: async () => {
      const prefix = randomPrefix();
      return [await openPresence({ prefix }), await openPresence({ prefix })];
    },
  });

  after(async () => {
    await Promise.all(closers.splice(0).map((close) => close()));
  });

  it('spreads groups over the masters and uses sharded pub/sub there', async () => {
    const prefix = randomPrefix();
    const [a, b] = [await openLayer({ prefix }), await openLayer({ prefix })];
    try {
      const groups = Array.from({ length: 12 }, (_, n) => `room.${n}`);
      const owners = new Set(await Promise.all(groups.map((group) => ownerOf(`{${group}}`))));
      assert.equal(owners.size, 3, 'twelve groups land on all three masters');
      const members = groups.map(() => collector());
      for (const [n, group] of groups.entries()) {
        const channel = b.newChannel();
        b.attach(channel, members[n]!.receiver);
        await b.groupAdd(group, channel);
      }
      for (const group of groups) await a.groupSend(group, { type: 'hello', group });
      await eventually(() => members.every((member) => member.received.length === 1));
      assert.deepEqual(
        members.map((member) => member.received[0]!['group']),
        groups,
      );
      // Each group's channel is a shard channel of the master that owns the group.
      for (const group of groups.slice(0, 3)) {
        const topic = `${prefix}:g:{${group}}`;
        const home = cluster.ports[await ownerOf(topic)];
        const node = admin.nodes('master').find((candidate) => candidate.options.port === home);
        assert.deepEqual(await node!.pubsub('SHARDNUMSUB', topic), [topic, 1], topic);
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  describe('gateway processes with REDIS_CLUSTER=true', gatewayOptions, () => {
    let schema: PostgresSchema;
    let room: string;
    let env: Record<string, string>;
    const gateways: GatewayProcess[] = [];
    const clients: TestClient[] = [];

    async function socket(gateway: GatewayProcess, username: string): Promise<TestClient> {
      const client = await chat(gateway, await login(gateway, username));
      clients.push(client);
      return client;
    }

    const readiness = async (gateway: GatewayProcess) =>
      (await fetch(`${gateway.url}/readyz`)).status;
    const publish = (gateway: GatewayProcess, message: unknown) =>
      fetch(`${gateway.url}/api/publish`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${PUBLISH_API_KEY}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({ group: `room.${room}`, message }),
      });

    before(async () => {
      schema = await createPostgresSchema(await serviceUrl('postgres'));
      room = await seedChat(schema.url, ['alice', 'bob', 'carol', 'dave', 'erin']);
      env = {
        DATABASE_URL: schema.url,
        REDIS_URL: cluster.url,
        REDIS_CLUSTER: 'true',
        REDIS_PREFIX: randomPrefix(),
        PUBLISH_API_KEY,
      };
      gateways.push(...(await Promise.all([startGatewayProcess(env), startGatewayProcess(env)])));
    });

    after(async () => {
      await Promise.all(clients.map((client) => client.close().catch(() => {})));
      await Promise.all(gateways.map((gateway) => stopProcess(gateway.child, 'SIGTERM')));
      await schema?.drop();
    });

    it('carries chat and presence from one process to the other', async () => {
      const [one, two] = gateways as [GatewayProcess, GatewayProcess];
      const alice = await socket(one, 'alice');
      await joinRoom(alice, room);
      const bob = await socket(two, 'bob');
      await joinRoom(bob, room);
      const entered = await receiveMatching(alice, (frame) => frame['msg_type'] === 4);
      assert.equal(entered['username'], 'bob', 'alice saw bob enter on the other process');
      bob.sendJson({ command: 'send', room, message: 'through the cluster' });
      const got = await receiveMatching(alice, (frame) => frame['msg_type'] === 0);
      assert.deepEqual([got['username'], got['message']], ['bob', 'through the cluster']);
      await bob.close();
      const left = await receiveMatching(alice, (frame) => frame['msg_type'] === 5);
      assert.equal(left['username'], 'bob');
    });

    it('closes a socket on the other process when its token is revoked', async () => {
      const [one, two] = gateways as [GatewayProcess, GatewayProcess];
      const token = await login(one, 'carol');
      const carol = await chat(two, token);
      clients.push(carol);
      await joinRoom(carol, room);
      const logout = await fetch(`${one.url}/api/auth/logout`, {
        method: 'POST',
        headers: { authorization: `Token ${token}` },
      });
      assert.equal(logout.status, 204);
      assert.deepEqual(await carol.waitForClose(5_000), { code: 4401, reason: 'token revoked' });
    });

    it('fails closed while a master is down, and recovers when it is back', async () => {
      const [one, two] = gateways as [GatewayProcess, GatewayProcess];
      const dave = await socket(one, 'dave');
      await joinRoom(dave, room);
      // The master that owns the room's group: its messages cannot travel while it is down.
      const down = await ownerOf(`{room.${room}}`);
      await cluster.stopNode(down);
      try {
        assert.deepEqual(await dave.waitForClose(10_000), TRY_AGAIN_LATER);
        const refused = await socket(two, 'erin');
        assert.deepEqual(await refused.waitForClose(5_000), TRY_AGAIN_LATER);
        assert.equal((await publish(one, { lost: true })).status, 503);
        assert.equal(await readiness(two), 503);
        // A gateway started meanwhile comes up unready rather than failing or letting in.
        const node = cluster.ports.findIndex((_, index) => index !== down);
        const late = await startGatewayProcess({
          ...env,
          REDIS_URL: `redis://127.0.0.1:${cluster.ports[node]}`,
        });
        gateways.push(late);
        assert.equal(await readiness(late), 503);
      } finally {
        await cluster.startNode(down);
      }
      const deadline = Date.now() + 20_000;
      for (const gateway of gateways) {
        while ((await readiness(gateway)) !== 200) {
          assert.ok(
            Date.now() < deadline,
            `${gateway.url} did not become ready again:\n${gateway.lines.slice(-25).join('\n')}`,
          );
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
      // The restarted master came back empty; the room's group lives on it again.
      const late = gateways[2]!;
      const erin = await socket(late, 'erin');
      await joinRoom(erin, room);
      const again = await socket(two, 'dave');
      await joinRoom(again, room);
      await receiveMatching(
        erin,
        (frame) => frame['msg_type'] === 4 && frame['username'] === 'dave',
      );
      again.sendJson({ command: 'send', room, message: 'after the restart' });
      const got = await receiveMatching(erin, (frame) => frame['msg_type'] === 0);
      assert.deepEqual([got['username'], got['message']], ['dave', 'after the restart']);
      const published = await publish(one, { hello: 'all' });
      assert.equal(published.status, 202);
      assert.deepEqual(await receiveMatching(again, (frame) => 'hello' in frame), { hello: 'all' });
    });
  });

  it('rejects a database in the URL of a cluster', () => {
    assert.throws(() => new RedisChannelLayer({ url: `${cluster.url}/2`, cluster: true }), {
      name: 'TypeError',
      message:
        'The "url" option must not select a database (/2) with "cluster": a Redis Cluster has only database 0',
    });
  });
});
