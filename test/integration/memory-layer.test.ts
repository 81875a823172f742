import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EnvelopeBatch } from '../../src/layers/layer.js';
import type { Envelope } from '../../src/layers/layer.js';
import { MemoryChannelLayer } from '../../src/layers/memory.js';
import { layerSuite } from '../helpers/layer-suite.js';

layerSuite('memory', { create: async ({ capacity }) => new MemoryChannelLayer({ capacity }) });

describe('memory layer specifics', () => {
  it('validates options at construction', () => {
    assert.throws(() => new MemoryChannelLayer({ capacity: 0 }), {
      name: 'RangeError',
      message: 'The "capacity" option must be a positive integer',
    });
    assert.throws(() => new MemoryChannelLayer({ expiry: -1 }), {
      name: 'RangeError',
      message: 'The "expiry" option must be a non-negative integer',
    });
  });

  it('expires queued messages and group memberships on its clock', async () => {
    let now = 1_000;
    const layer = new MemoryChannelLayer({ expiry: 100, groupExpiry: 500, now: () => now });
    const channel = layer.newChannel();
    await layer.send(channel, { type: 'old' });
    now += 101;
    await layer.send(channel, { type: 'new' });
    assert.deepEqual(await layer.receive(channel), { type: 'new' });
    await layer.groupAdd('g', channel);
    now += 501;
    const result = await layer.groupSend('g', { type: 'late' });
    assert.deepEqual(result, { delivered: 0, dropped: 0 });
    assert.deepEqual(layer.groupMembers('g'), []);
  });

  it('counts dropped messages', async () => {
    const layer = new MemoryChannelLayer({ capacity: 1 });
    const channel = layer.newChannel();
    await layer.groupAdd('g', channel);
    await layer.groupSend('g', { type: 'x' });
    const result = await layer.groupSend('g', { type: 'x' });
    assert.deepEqual(result, { delivered: 0, dropped: 1 });
    assert.equal(layer.stats.dropped, 1);
  });

  it('encodes a group message once for all members', async () => {
    const layer = new MemoryChannelLayer();
    const seen: string[] = [];
    for (let index = 0; index < 3; index += 1) {
      const channel = layer.newChannel();
      layer.attach(channel, (envelope) => seen.push(envelope.json));
      await layer.groupAdd('g', channel);
    }
    const message = {
      type: 'websocket.send',
      get json() {
        encodings += 1;
        return { a: 1 };
      },
    };
    let encodings = 0;
    await layer.groupSend('g', message);
    assert.equal(seen.length, 3);
    assert.equal(encodings, 1);
  });

  it('hands a batch once per member, the same batch to all, framed payloads shared', async () => {
    const layer = new MemoryChannelLayer();
    const batches: EnvelopeBatch[] = [];
    for (let index = 0; index < 3; index += 1) {
      const channel = layer.newChannel();
      layer.attach(
        channel,
        (delivery: Envelope | EnvelopeBatch) => {
          assert.ok(delivery instanceof EnvelopeBatch);
          batches.push(delivery);
        },
        { batches: true },
      );
      await layer.groupAdd('g', channel);
    }
    const result = await layer.groupSendMany('g', [
      { type: 'websocket.send', text: 'a' },
      { type: 'websocket.send', json: { b: 2 } },
    ]);
    assert.deepEqual(result, { delivered: 6, dropped: 0 });
    assert.equal(batches.length, 3);
    assert.equal(batches[0], batches[1]);
    assert.equal(batches[0]!.outbound, batches[2]!.outbound);
    assert.deepEqual(
      batches[0]!.outbound?.messages.map((message) => message.data),
      ['a', '{"b":2}'],
    );
  });
});
