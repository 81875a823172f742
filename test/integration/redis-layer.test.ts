/**
 * The Redis channel layer against the machine's real Redis (TEST_REDIS_URL, default
 * 127.0.0.1:6379): the shared layer suite in both pub/sub modes, then what only Redis
 * has: several processes (one layer instance each), one subscription per group per
 * process, queued members, an unreachable Redis and a real outage (a throwaway
 * redis-server child killed and restarted). Each test uses its own key prefix.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { ServiceUnavailableError } from '../../src/errors.js';
import { EnvelopeBatch } from '../../src/layers/layer.js';
import type { Envelope } from '../../src/layers/layer.js';
import {
  RedisChannelLayer,
  type RedisChannelLayerOptions,
  type RedisLayerStatus,
} from '../../src/layers/redis/layer.js';
import { eventually } from '../helpers/eventually.js';
import {
  freePort,
  startRedisServer,
  stopProcess,
  constructingLoadsIoredis,
} from '../helpers/processes.js';
import { collector, layerSuite } from '../helpers/layer-suite.js';
import { isCI, serviceSuiteOptions, serviceUrl } from '../helpers/services.js';

const silent = pino({ level: 'silent' });
const SU = { name: 'ServiceUnavailableError', code: 'ERR_SERVICE_UNAVAILABLE' };

function randomPrefix(): string {
  return `pcu-test-${randomBytes(5).toString('hex')}`;
}

/** Polls an async condition; for Redis-side state such as PUBSUB NUMSUB. */
async function until(check: () => Promise<boolean>, what: string, timeout = 3_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeout} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('options', () => {
  const cases: [RedisChannelLayerOptions, string, string][] = [
    [{ capacity: 0 }, 'RangeError', 'The "capacity" option must be a positive integer'],
    [{ expiry: 0 }, 'RangeError', 'The "expiry" option must be a positive integer'],
    [
      { connectTimeout: 1.5 },
      'RangeError',
      'The "connectTimeout" option must be a positive integer',
    ],
    [
      { commandTimeout: -1 },
      'RangeError',
      'The "commandTimeout" option must be a positive integer',
    ],
    [
      { maxReconnectDelay: 0 },
      'RangeError',
      'The "maxReconnectDelay" option must be a positive integer',
    ],
    [{ groupExpiry: -1 }, 'RangeError', 'The "groupExpiry" option must be a non-negative integer'],
    [
      { url: 'http://127.0.0.1:6379' },
      'TypeError',
      'The "url" option must be a redis:// or rediss:// URL',
    ],
    [{ url: 'not a url' }, 'TypeError', 'The "url" option must be a redis:// or rediss:// URL'],
    [
      { prefix: 'app{1}' },
      'TypeError',
      'The "prefix" option must be 1 to 64 letters, digits, "-", "_", "." or ":"',
    ],
    [
      { sharded: 'yes' as unknown as boolean },
      'TypeError',
      'The "sharded" option must be a boolean',
    ],
    [
      { onStatus: 1 as unknown as () => void },
      'TypeError',
      'The "onStatus" option must be a function',
    ],
  ];
  for (const [options, name, message] of cases) {
    it(`rejects ${JSON.stringify(options)}`, async () => {
      assert.throws(() => new RedisChannelLayer(options), { name, message });
      await assert.rejects(RedisChannelLayer.connect(options), { name, message });
    });
  }

  it('tells the fix when used before connect()', async () => {
    const layer = new RedisChannelLayer({ logger: silent });
    await assert.rejects(layer.groupSend('g', { type: 'x' }), {
      name: 'TypeError',
      message: /not connected: use `await RedisChannelLayer.connect\(options\)`/,
    });
    await layer.close();
  });

  it('does not load ioredis until connect()', async () => {
    assert.equal(
      await constructingLoadsIoredis('./src/layers/redis/layer.ts', 'RedisChannelLayer'),
      false,
    );
  });
});

describe('redis unreachable', () => {
  it('fails fast with ServiceUnavailableError and keeps local traffic', async () => {
    const statuses: RedisLayerStatus[] = [];
    const started = Date.now();
    const layer = await RedisChannelLayer.connect({
      url: 'redis://127.0.0.1:1',
      prefix: randomPrefix(),
      connectTimeout: 500,
      logger: silent,
      onStatus: (status) => statuses.push(status),
    });
    try {
      assert.equal(layer.status, 'down');
      assert.deepEqual(statuses, ['down']);
      await assert.rejects(layer.ping(), ServiceUnavailableError);
      await assert.rejects(layer.groupSend('g', { type: 'x' }), SU);
      await assert.rejects(layer.groupAdd('g', layer.newChannel()), SU);
      await assert.rejects(layer.send('worker.jobs', { type: 'x' }), SU);
      await assert.rejects(layer.receive('worker.jobs'), SU);
      assert.equal(layer.stats.publishFailures, 2);
      const { received, receiver } = collector();
      const channel = layer.newChannel();
      layer.attach(channel, receiver);
      await layer.send(channel, { type: 'local' });
      assert.deepEqual(received, [{ type: 'local' }]);
      assert.ok(Date.now() - started < 2_000, `took ${Date.now() - started} ms`);
    } finally {
      await layer.close();
    }
  });
});

describe('redis layer', await serviceSuiteOptions('redis'), () => {
  let url: string;
  let admin: Redis;
  const prefixes: string[] = [];
  const layers: RedisChannelLayer[] = [];

  before(async () => {
    url = await serviceUrl('redis');
    admin = new Redis(url, { lazyConnect: true });
    await admin.connect();
  });

  afterEach(async () => {
    await Promise.all(layers.splice(0).map((layer) => layer.close()));
  });

  after(async () => {
    for (const prefix of prefixes) {
      const keys = await admin.keys(`${prefix}:*`);
      if (keys.length > 0) await admin.del(...keys);
    }
    await admin.quit();
  });

  async function open(options: RedisChannelLayerOptions = {}): Promise<RedisChannelLayer> {
    const prefix = options.prefix ?? randomPrefix();
    if (!prefixes.includes(prefix)) prefixes.push(prefix);
    const layer = await RedisChannelLayer.connect({ url, logger: silent, ...options, prefix });
    layers.push(layer);
    assert.equal(layer.status, 'ready');
    return layer;
  }

  /** Two layers on one prefix: two gateway processes. */
  async function pair(
    options: RedisChannelLayerOptions = {},
  ): Promise<[RedisChannelLayer, RedisChannelLayer]> {
    const prefix = randomPrefix();
    return [await open({ ...options, prefix }), await open({ ...options, prefix })];
  }

  async function subscribers(topic: string, sharded = false): Promise<number> {
    const reply = sharded
      ? await admin.pubsub('SHARDNUMSUB', topic)
      : await admin.pubsub('NUMSUB', topic);
    return Number(reply[1]);
  }

  for (const sharded of [false, true]) {
    layerSuite(sharded ? 'redis, sharded pub/sub' : 'redis', {
      create: ({ capacity }) => open({ capacity, sharded, groupExpiry: 600_000 }),
    });
  }

  it('carries group sends and direct sends between processes', async () => {
    const [a, b] = await pair();
    const onA = collector();
    const onB1 = collector();
    const onB2 = collector();
    const channelA = a.newChannel();
    const channelB1 = b.newChannel();
    const channelB2 = b.newChannel();
    a.attach(channelA, onA.receiver);
    b.attach(channelB1, onB1.receiver);
    b.attach(channelB2, onB2.receiver);
    for (const [layer, channel] of [
      [a, channelA],
      [b, channelB1],
      [b, channelB2],
    ] as const) {
      await layer.groupAdd('room', channel);
    }
    assert.deepEqual(
      (await a.groupMembers('room')).sort(),
      [channelA, channelB1, channelB2].sort(),
    );

    const result = await a.groupSend('room', { type: 'chat.message', text: 'hi' });
    assert.deepEqual(result, { delivered: 2, dropped: 0 }, 'one publish reached two processes');
    await eventually(() => [onA, onB1, onB2].every((member) => member.received.length === 1));
    // Decoded once per process: B's two members share one envelope.
    assert.equal(onB1.envelopes[0], onB2.envelopes[0]);
    assert.notEqual(onA.envelopes[0], onB1.envelopes[0]);
    assert.equal(onB1.envelopes[0]!.json, '{"type":"chat.message","text":"hi"}');

    await a.send(channelB1, { type: 'direct', from: 'a' });
    await b.send(channelA, { type: 'direct', from: 'b' });
    await eventually(() => onB1.received.length === 2 && onA.received.length === 2);
    assert.deepEqual(onB1.received[1], { type: 'direct', from: 'a' });
    assert.deepEqual(onA.received[1], { type: 'direct', from: 'b' });
    assert.equal(onB2.received.length, 1);
  });

  for (const sharded of [false, true]) {
    it(`holds one subscription per group per process (${sharded ? 'SSUBSCRIBE' : 'SUBSCRIBE'})`, async () => {
      const [a, b] = await pair({ sharded });
      const topic = `${prefixes.at(-1)}:g:{busy}`;
      const channelsA = [a.newChannel(), a.newChannel(), a.newChannel()];
      for (const channel of channelsA) a.attach(channel, () => {});
      for (const channel of channelsA) await a.groupAdd('busy', channel);
      assert.equal(await subscribers(topic, sharded), 1);
      const channelB = b.newChannel();
      b.attach(channelB, () => {});
      await b.groupAdd('busy', channelB);
      assert.equal(await subscribers(topic, sharded), 2);

      await a.groupDiscard('busy', channelsA[0]!);
      await a.detach(channelsA[1]!);
      assert.equal(await subscribers(topic, sharded), 2);
      await a.groupDiscard('busy', channelsA[2]!);
      await until(async () => (await subscribers(topic, sharded)) === 1, 'A unsubscribed');
      await b.groupDiscard('busy', channelB);
      await until(async () => (await subscribers(topic, sharded)) === 0, 'B unsubscribed');
    });
  }

  it('carries a batch to another process in one publish, handed whole to batch receivers', async () => {
    const [a, b] = await pair();
    const deliveries: (Envelope | EnvelopeBatch)[] = [];
    const whole = b.newChannel();
    b.attach(whole, (delivery: Envelope | EnvelopeBatch) => deliveries.push(delivery), {
      batches: true,
    });
    const plain = collector();
    const plainChannel = b.newChannel();
    b.attach(plainChannel, plain.receiver);
    const queued = b.newChannel();
    for (const channel of [whole, plainChannel, queued]) await b.groupAdd('burst', channel);
    const batch = ['a', 'b', 'c'].map((text) => ({ type: 'websocket.send', text }));
    const result = await a.groupSendMany('burst', batch);
    // One publish reached B (three messages), and the queued member took all three.
    assert.deepEqual(result, { delivered: 6, dropped: 0 });
    await eventually(() => deliveries.length === 1 && plain.received.length === 3);
    const [delivery] = deliveries;
    assert.ok(delivery instanceof EnvelopeBatch);
    assert.deepEqual(
      delivery.envelopes.map((envelope) => envelope.message),
      batch,
    );
    assert.deepEqual(plain.received, batch);
    for (const message of batch) assert.deepEqual(await b.receive(queued), message);
    await assert.rejects(a.groupSendMany('burst', [{ text: 'no type' } as never]), TypeError);
    assert.deepEqual(await a.groupSendMany('burst', []), { delivered: 0, dropped: 0 });
  });

  it('queues group messages for a member without a receiver in another process', async () => {
    const [a, b] = await pair({ capacity: 1 });
    const queued = b.newChannel();
    await b.groupAdd('jobs', queued);
    assert.deepEqual(await a.groupSend('jobs', { type: 'job', n: 1 }), {
      delivered: 1,
      dropped: 0,
    });
    assert.deepEqual(await a.groupSend('jobs', { type: 'job', n: 2 }), {
      delivered: 0,
      dropped: 1,
    });
    assert.equal(a.stats.dropped, 1);
    assert.deepEqual(await b.receive(queued), { type: 'job', n: 1 });
  });

  it('serves a named worker channel from any process', async () => {
    const [a, b] = await pair();
    const waiting = b.receive('thumbnails');
    await a.send('thumbnails', { type: 'thumbnail.make', id: 3 });
    assert.deepEqual(await waiting, { type: 'thumbnail.make', id: 3 });
  });

  it("adds another process's channel to a group through that process", async () => {
    const [a, b] = await pair();
    const onB = collector();
    const channelB = b.newChannel();
    b.attach(channelB, onB.receiver);
    await a.groupAdd('remote', channelB);
    const topic = `${prefixes.at(-1)}:g:{remote}`;
    await until(async () => (await subscribers(topic)) === 1, 'B subscribed');
    await a.groupSend('remote', { type: 'hello' });
    await eventually(() => onB.received.length === 1);
    await a.groupDiscard('remote', channelB);
    await until(async () => (await subscribers(topic)) === 0, 'B unsubscribed');
    assert.deepEqual(await a.groupMembers('remote'), []);
  });

  it('refuses to attach a channel another process owns', async () => {
    const [a, b] = await pair();
    assert.throws(() => a.attach(b.newChannel(), () => {}), {
      name: 'TypeError',
      message: /was not made by this layer's newChannel\(\)/,
    });
  });

  it('expires queued messages and memberships on its clock', async () => {
    let now = 1_000_000;
    const layer = await open({ expiry: 100, groupExpiry: 500, now: () => now });
    const queued = layer.newChannel();
    await layer.send(queued, { type: 'old' });
    now += 101;
    await layer.send(queued, { type: 'new' });
    assert.deepEqual(await layer.receive(queued), { type: 'new' });

    const live = collector();
    const channel = layer.newChannel();
    layer.attach(channel, live.receiver);
    await layer.groupAdd('g', channel);
    await layer.groupAdd('g', queued);
    now += 501;
    assert.deepEqual(await layer.groupMembers('g'), []);
    assert.deepEqual(await layer.groupSend('g', { type: 'late' }), { delivered: 1, dropped: 0 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(live.received, [], 'the expired local member got nothing');
  });

  it('names keys under its prefix and shares its connection', async () => {
    const layer = await open();
    assert.equal(layer.prefix, prefixes.at(-1));
    assert.equal(layer.key('limits:login'), `${layer.prefix}:limits:login`);
    await layer.client!.set(layer.key('limits:login'), '1', 'PX', 60_000);
    assert.equal(await admin.get(`${layer.prefix}:limits:login`), '1');
  });

  it('rejects a pending receive() when closed', async () => {
    const layer = await open();
    const waiting = layer.receive(layer.newChannel());
    // Handled before the close: the rejection may come while close() is still running,
    // and one with no handler yet is reported as unhandled (this test flaked so).
    const rejected = assert.rejects(waiting, SU);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await layer.close();
    await rejected;
  });

  it('receive() can be aborted while blocked in Redis', async () => {
    const layer = await open();
    const channel = layer.newChannel();
    const controller = new AbortController();
    const waiting = layer.receive(channel, controller.signal);
    await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort(new Error('stop'));
    await assert.rejects(waiting, /stop/);
    await layer.send(channel, { type: 'next' });
    assert.deepEqual(await layer.receive(channel), { type: 'next' });
  });
});

// Needs the redis-server binary, not the Redis at 6379: it runs throwaway servers of its own.
const hasRedisServer = spawnSync('redis-server', ['--version']).error === undefined;

describe(
  'redis outage',
  { skip: hasRedisServer || isCI() ? false : 'redis-server is not installed' },
  () => {
    before(() => {
      if (!hasRedisServer) throw new Error('redis-server is not installed; CI=true requires it');
    });

    it('turns down on the first command a stalled Redis does not answer, then recovers', async (t) => {
      const port = await freePort();
      const server = await startRedisServer(port);
      t.after(() => stopProcess(server));
      const statuses: RedisLayerStatus[] = [];
      const layer = await RedisChannelLayer.connect({
        url: `redis://127.0.0.1:${port}`,
        prefix: randomPrefix(),
        logger: silent,
        commandTimeout: 300,
        maxReconnectDelay: 100,
        onStatus: (status) => statuses.push(status),
      });
      t.after(() => layer.close());
      const admin = new Redis(`redis://127.0.0.1:${port}`, { lazyConnect: true });
      t.after(() => admin.disconnect());
      await admin.connect();
      // Every client waits, PING included, as on a link that stalled.
      await admin.call('CLIENT', 'PAUSE', '1500', 'ALL');
      await assert.rejects(layer.groupSend('room', { type: 'stalled' }), SU);
      assert.equal(layer.status, 'down', 'down from the first failed command');
      const started = Date.now();
      await assert.rejects(layer.groupSend('room', { type: 'refused' }), SU);
      assert.ok(Date.now() - started < 500, 'refused at once while down');
      await eventually(() => layer.status === 'ready', 5_000, 'ready again');
      assert.deepEqual(statuses, ['ready', 'down', 'ready']);
      assert.deepEqual(await layer.groupSend('room', { type: 'after' }), {
        delivered: 0,
        dropped: 0,
      });
    });

    it('fails fast while Redis is away, then resubscribes and flows again', async (t) => {
      const port = await freePort();
      let server = await startRedisServer(port);
      t.after(() => stopProcess(server));
      const url = `redis://127.0.0.1:${port}`;
      const prefix = randomPrefix();
      const statusesA: RedisLayerStatus[] = [];
      const options = {
        url,
        prefix,
        logger: silent,
        maxReconnectDelay: 100,
        connectTimeout: 1_000,
      };
      const a = await RedisChannelLayer.connect({ ...options, onStatus: (s) => statusesA.push(s) });
      const b = await RedisChannelLayer.connect(options);
      t.after(() => Promise.all([a.close(), b.close()]));

      const onA = collector();
      const channelA = a.newChannel();
      a.attach(channelA, onA.receiver);
      await a.groupAdd('room', channelA);
      await b.groupSend('room', { type: 'before' });
      await eventually(() => onA.received.length === 1);

      await stopProcess(server);
      await eventually(() => a.status === 'down' && b.status === 'down', 2_000, 'layers down');
      const started = Date.now();
      await assert.rejects(a.ping(), SU);
      await assert.rejects(b.groupSend('room', { type: 'lost' }), SU);
      await assert.rejects(b.groupAdd('room', b.newChannel()), SU);
      await assert.rejects(b.send(channelA, { type: 'lost' }), SU);
      assert.ok(Date.now() - started < 500, `calls took ${Date.now() - started} ms`);
      await a.send(channelA, { type: 'local' });
      assert.deepEqual(onA.received.at(-1), { type: 'local' }, 'local traffic keeps flowing');

      server = await startRedisServer(port);
      await eventually(() => a.status === 'ready' && b.status === 'ready', 5_000, 'layers ready');
      assert.deepEqual(statusesA, ['ready', 'down', 'ready']);
      const check = new Redis(url, { lazyConnect: true });
      t.after(() => check.disconnect());
      await check.connect();
      assert.deepEqual(await check.pubsub('NUMSUB', `${prefix}:g:{room}`), [
        `${prefix}:g:{room}`,
        1,
      ]);
      assert.deepEqual(
        await check.pubsub(
          'NUMSUB',
          `${prefix}:proc:${a.processId}`,
          `${prefix}:proc:${b.processId}`,
        ),
        [`${prefix}:proc:${a.processId}`, 1, `${prefix}:proc:${b.processId}`, 1],
      );
      // The new server started empty: A registered its membership again.
      assert.deepEqual(await b.groupMembers('room'), [channelA]);
      assert.deepEqual(await b.groupSend('room', { type: 'after' }), { delivered: 1, dropped: 0 });
      await b.send(channelA, { type: 'direct after' });
      // The push script is gone from the new server's cache: EVALSHA falls back to EVAL.
      await b.send('outage-worker', { type: 'queued after' });
      assert.deepEqual(await a.receive('outage-worker'), { type: 'queued after' });
      await eventually(() => onA.received.length === 4);
      assert.deepEqual(
        onA.received.map((message) => message.type),
        ['before', 'local', 'after', 'direct after'],
      );
    });
  },
);
