// ChannelsRedisLayer against the real channels_redis 4.0 (Debian's python3-channels-redis):
// both directions of send and group_send, capacity, expiry and the key layout.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { ChannelFullError, InvalidChannelNameError } from '../../src/errors.js';
import { ChannelsRedisLayer } from '../../src/layers/channels-redis.js';
import type { LayerMessage } from '../../src/layers/layer.js';
import { djangoSuiteOptions, PYTHON } from '../helpers/django.js';
import { eventually } from '../helpers/eventually.js';
import { serviceSuiteOptions, serviceUrl } from '../helpers/services.js';

const django = djangoSuiteOptions();
const redisOptions = await serviceSuiteOptions('redis');
const skip = django.skip || redisOptions.skip;

/**
 * Runs `body` (Python, inside `async def main(layer)`) with a channels_redis layer on
 * `prefix`; each `emit(x)` is a JSON line; `await wait_for_line()` reads one from stdin.
 */
function python(redisUrl: string, prefix: string, body: string, capacity = 100) {
  const script = `
import asyncio, json, sys
from channels_redis.core import RedisChannelLayer
def emit(value):
    print(json.dumps(value), flush=True)
async def wait_for_line():
    return json.loads(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
async def main(layer):
${body
  .split('\n')
  .map((line) => `    ${line}`)
  .join('\n')}
layer = RedisChannelLayer(hosts=[${JSON.stringify(redisUrl)}], prefix=${JSON.stringify(prefix)}, capacity=${capacity})
asyncio.run(main(layer))
`;
  const child = spawn(PYTHON, ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: unknown[] = [];
  const waiting: ((value: unknown) => void)[] = [];
  let errors = '';
  child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  let buffered = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const value: unknown = JSON.parse(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      const waiter = waiting.shift();
      if (waiter === undefined) lines.push(value);
      else waiter(value);
    }
  });
  return {
    next(timeout = 5_000): Promise<unknown> {
      if (lines.length > 0) return Promise.resolve(lines.shift());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no line from python in ${timeout} ms:\n${errors}`)),
          timeout,
        );
        waiting.push((value) => {
          clearTimeout(timer);
          resolve(value);
        });
      });
    },
    send(value: unknown): void {
      child.stdin.write(`${JSON.stringify(value)}\n`);
    },
    async done(): Promise<void> {
      child.stdin.end();
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0, errors);
    },
  };
}

describe(
  'ChannelsRedisLayer and channels_redis 4.0',
  { skip: skip === false ? false : skip },
  () => {
    let redisUrl: string;
    let redis: Redis;
    const prefixes: string[] = [];
    const layers: ChannelsRedisLayer[] = [];

    async function newLayer(capacity?: number): Promise<ChannelsRedisLayer> {
      const prefix = `pcutest${randomBytes(5).toString('hex')}`;
      prefixes.push(prefix);
      const layer = await ChannelsRedisLayer.connect({
        url: redisUrl,
        prefix,
        logger: pino({ level: 'silent' }),
        ...(capacity === undefined ? {} : { capacity }),
      });
      layers.push(layer);
      return layer;
    }

    before(async () => {
      redisUrl = await serviceUrl('redis');
      redis = new Redis(redisUrl);
    });
    after(async () => {
      for (const layer of layers) await layer.close();
      for (const prefix of prefixes) {
        const keys = await redis.keys(`${prefix}*`);
        if (keys.length > 0) await redis.del(...keys);
      }
      redis.disconnect();
    });

    test('a Django group_send reaches every Portcullis member, with its types intact', async () => {
      const layer = await newLayer();
      const got: [string, LayerMessage][] = [];
      const channels = [layer.newChannel(), layer.newChannel()];
      for (const channel of channels) {
        assert.match(channel, new RegExp(`^specific\\.${layer.clientPrefix}![0-9a-f]{32}$`));
        layer.attach(channel, (envelope) => got.push([channel, envelope.message]));
        await layer.groupAdd('room-1', channel);
      }
      assert.equal(await redis.zcard(`${layer.prefix}:group:room-1`), 2);
      assert.equal((await redis.ttl(`${layer.prefix}:group:room-1`)) > 86_000, true);
      const py = python(
        redisUrl,
        layer.prefix,
        `await layer.group_send("room-1", {"type": "chat.message", "room_id": 1, "username": "u", "message": "m", "data": b"\\x00\\xff", "list": [1, 2.5, None, True]})
emit("sent")`,
      );
      assert.equal(await py.next(), 'sent');
      await py.done();
      await eventually(() => got.length === 2);
      const message = {
        type: 'chat.message',
        room_id: 1,
        username: 'u',
        message: 'm',
        data: new Uint8Array([0, 255]),
        list: [1, 2.5, null, true],
      };
      for (const [channel, received] of got) {
        assert.ok(channels.includes(channel));
        assert.deepEqual(
          { ...received, data: new Uint8Array(received['data'] as Uint8Array) },
          message,
        );
      }
    });

    test('a Portcullis group send and send reach channels_redis receivers', async () => {
      const layer = await newLayer();
      const mine = layer.newChannel();
      const got: LayerMessage[] = [];
      layer.attach(mine, (envelope) => got.push(envelope.message));
      await layer.groupAdd('room-2', mine);
      const py = python(
        redisUrl,
        layer.prefix,
        `channel = await layer.new_channel()
await layer.group_add("room-2", channel)
emit(channel)
emit(await asyncio.wait_for(layer.receive(channel), 5))
emit(await asyncio.wait_for(layer.receive(channel), 5))
emit(await asyncio.wait_for(layer.receive("general-worker"), 5))`,
      );
      const theirs = String(await py.next());
      assert.match(theirs, /^specific\.[0-9a-f]{32}![0-9a-f]{32}$/);
      const result = await layer.groupSend('room-2', { type: 'chat.message', room_id: '2', n: 1 });
      assert.deepEqual(result, { delivered: 2, dropped: 0 });
      assert.deepEqual(await py.next(), { type: 'chat.message', room_id: '2', n: 1 });
      await layer.send(theirs, { type: 'direct', text: 'é ✓' });
      assert.deepEqual(await py.next(), { type: 'direct', text: 'é ✓' });
      await layer.send('general-worker', { type: 'work', id: 7 });
      assert.deepEqual(await py.next(), { type: 'work', id: 7 });
      await py.done();
      await eventually(() => got.length === 1);
      assert.deepEqual(got[0], { type: 'chat.message', room_id: '2', n: 1 });
    });

    test('Portcullis receives what channels_redis sends to its channel, and to a general one', async () => {
      const layer = await newLayer();
      const mine = layer.newChannel();
      const got: LayerMessage[] = [];
      layer.attach(mine, (envelope) => got.push(envelope.message));
      const general = layer.receive('jobs');
      const py = python(
        redisUrl,
        layer.prefix,
        `await layer.send(${JSON.stringify(mine)}, {"type": "hello", "n": 1})
await layer.send("jobs", {"type": "job", "n": 2})
emit("sent")`,
      );
      assert.equal(await py.next(), 'sent');
      await py.done();
      assert.deepEqual(await general, { type: 'job', n: 2 });
      await eventually(() => got.length === 1);
      assert.deepEqual(got[0], { type: 'hello', n: 1 });
    });

    test('capacity: a full channel refuses a send and is skipped by a group send', async () => {
      const layer = await newLayer(2);
      // A channels_redis consumer that never reads: its queue fills up.
      const py = python(
        redisUrl,
        layer.prefix,
        `channel = await layer.new_channel()
await layer.group_add("busy", channel)
emit(channel)
await wait_for_line()`,
      );
      const theirs = String(await py.next());
      await layer.send(theirs, { type: 'one' });
      await layer.send(theirs, { type: 'two' });
      await assert.rejects(layer.send(theirs, { type: 'three' }), ChannelFullError);
      assert.deepEqual(await layer.groupSend('busy', { type: 'four' }), {
        delivered: 1,
        dropped: 1,
      });
      const key = `${layer.prefix}specific.${theirs.split('.')[1]!.split('!')[0]}!`;
      assert.equal(await redis.zcard(key), 2, 'the queue key channels_redis reads');
      assert.ok((await redis.ttl(key)) <= 60);
      py.send('done');
      await py.done();
    });

    test('leaving: groupDiscard and detach drop the memberships', async () => {
      const layer = await newLayer();
      const a = layer.newChannel();
      const b = layer.newChannel();
      layer.attach(a, () => {});
      layer.attach(b, () => {});
      await layer.groupAdd('g1', a);
      await layer.groupAdd('g2', a);
      await layer.groupAdd('g1', b);
      await layer.groupDiscard('g1', b);
      assert.deepEqual(await redis.zrange(`${layer.prefix}:group:g1`, '0', '-1'), [a]);
      await layer.detach(a);
      assert.equal(await redis.zcard(`${layer.prefix}:group:g1`), 0);
      assert.equal(await redis.zcard(`${layer.prefix}:group:g2`), 0);
    });

    test('names follow Channels’ rules; undecodable entries are dropped, not fatal', async () => {
      const layer = await newLayer();
      assert.throws(() => layer.newChannel('bad!prefix'), InvalidChannelNameError);
      await assert.rejects(
        layer.groupAdd('no spaces', layer.newChannel()),
        InvalidChannelNameError,
      );
      await assert.rejects(layer.send('x'.repeat(100), { type: 't' }), InvalidChannelNameError);
      assert.throws(() => layer.attach('specific.other!x', () => {}), TypeError);
      const mine = layer.newChannel();
      const got: LayerMessage[] = [];
      layer.attach(mine, (envelope) => got.push(envelope.message));
      const key = `${layer.prefix}specific.${layer.clientPrefix}!`;
      // Encrypted (symmetric_encryption_keys) or foreign entries: not msgpack maps with a type.
      await redis.zadd(
        key,
        String(Date.now() / 1000),
        Buffer.concat([randomBytes(12), Buffer.from('garbage')]),
      );
      await layer.send(mine, { type: 'after' });
      await eventually(() => got.length === 1);
      assert.deepEqual(got, [{ type: 'after' }]);
    });
  },
);
