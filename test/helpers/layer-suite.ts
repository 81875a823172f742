// One suite for every channel layer implementation (STYLE.md practice 14).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JsonWebsocketConsumer } from '../../src/consumer/json-consumer.js';
import { ChannelFullError, InvalidChannelNameError } from '../../src/errors.js';
import { EnvelopeBatch, groupSendAll, kLayerDelivery } from '../../src/layers/layer.js';
import type {
  ChannelLayer,
  Envelope,
  LayerListener,
  LayerMessage,
} from '../../src/layers/layer.js';
import type { JsonObject } from '../../src/protocol/messages.js';
import { WebsocketCommunicator } from '../../src/testing/communicator.js';
import { eventually } from './eventually.js';

export interface LayerFactory {
  /** Makes a fresh layer; `capacity` is the per-channel queue size to configure. */
  create(options: { capacity: number }): Promise<ChannelLayer>;
}

/** A receiver that records every envelope it is handed, and each one's message. */
export function collector(): {
  received: LayerMessage[];
  envelopes: Envelope[];
  receiver: (e: Envelope) => void;
} {
  const received: LayerMessage[] = [];
  const envelopes: Envelope[] = [];
  return {
    received,
    envelopes,
    receiver: (envelope) => {
      envelopes.push(envelope);
      received.push(envelope.message);
    },
  };
}

export function layerSuite(name: string, factory: LayerFactory): void {
  describe(`channel layer: ${name}`, () => {
    const withLayer =
      (capacity: number, body: (layer: ChannelLayer) => Promise<void>) => async () => {
        const layer = await factory.create({ capacity });
        try {
          await body(layer);
        } finally {
          await layer.close();
        }
      };

    it(
      'gives unique valid channel names',
      withLayer(10, async (layer) => {
        const a = layer.newChannel();
        const b = layer.newChannel();
        assert.notEqual(a, b);
        assert.match(a, /^[A-Za-z0-9\-_.]{1,99}$/);
      }),
    );

    it(
      'sends to an attached channel',
      withLayer(10, async (layer) => {
        const channel = layer.newChannel();
        const { received, receiver } = collector();
        layer.attach(channel, receiver);
        await layer.send(channel, { type: 'test.message', n: 1 });
        await eventually(() => received.length === 1);
        assert.deepEqual(received, [{ type: 'test.message', n: 1 }]);
      }),
    );

    it(
      'queues for receive() when nothing is attached',
      withLayer(10, async (layer) => {
        const channel = layer.newChannel();
        await layer.send(channel, { type: 'a' });
        await layer.send(channel, { type: 'b' });
        assert.deepEqual(await layer.receive(channel), { type: 'a' });
        assert.deepEqual(await layer.receive(channel), { type: 'b' });
        const waiting = layer.receive(channel);
        await layer.send(channel, { type: 'c' });
        assert.deepEqual(await waiting, { type: 'c' });
      }),
    );

    it(
      'receive() can be aborted',
      withLayer(10, async (layer) => {
        const controller = new AbortController();
        const waiting = layer.receive(layer.newChannel(), controller.signal);
        controller.abort(new Error('stop'));
        await assert.rejects(waiting, /stop/);
      }),
    );

    it(
      'refuses a send to a full channel',
      withLayer(2, async (layer) => {
        const channel = layer.newChannel();
        await layer.send(channel, { type: 'x' });
        await layer.send(channel, { type: 'x' });
        await assert.rejects(layer.send(channel, { type: 'x' }), ChannelFullError);
      }),
    );

    it(
      'delivers a group send to every member, one shared envelope per process',
      withLayer(10, async (layer) => {
        const members = [collector(), collector(), collector()];
        const channels = members.map((member) => {
          const channel = layer.newChannel();
          layer.attach(channel, member.receiver);
          return channel;
        });
        for (const channel of channels) await layer.groupAdd('room-1', channel);
        await layer.groupSend('room-1', { type: 'chat.message', text: 'hi' });
        await eventually(() => members.every((member) => member.received.length === 1));
        for (const member of members)
          assert.deepEqual(member.received, [{ type: 'chat.message', text: 'hi' }]);
        assert.equal(members[0]!.envelopes[0], members[1]!.envelopes[0]);
        assert.equal(members[1]!.envelopes[0], members[2]!.envelopes[0]);
      }),
    );

    it(
      'sends a batch in order to every member, a full one skipped, through groupSendAll',
      withLayer(2, async (layer) => {
        const members = [collector(), collector()];
        for (const member of members) {
          const channel = layer.newChannel();
          layer.attach(channel, member.receiver);
          await layer.groupAdd('batch', channel);
        }
        const queued = layer.newChannel();
        await layer.groupAdd('batch', queued);
        const batch = [1, 2, 3].map((n) => ({ type: 'websocket.send', text: `m${n}` }));
        const result = await groupSendAll(layer, 'batch', batch);
        await eventually(() => members.every((member) => member.received.length === 3));
        for (const member of members) assert.deepEqual(member.received, batch);
        // Two members got all three here; the queued one takes two and drops one where
        // the layer counts per process (memory), or the layer counts publishes (Redis).
        assert.ok(result.delivered >= 3, `delivered ${result.delivered}`);
        assert.deepEqual(await layer.receive(queued), batch[0]);
        // A bad message fails the batch before anything is sent.
        await assert.rejects(
          groupSendAll(layer, 'batch', [batch[0]!, { text: 'no type' } as unknown as LayerMessage]),
          TypeError,
        );
        await new Promise((resolve) => setTimeout(resolve, 50));
        for (const member of members) assert.equal(member.received.length, 3);
      }),
    );

    it(
      'hands a batch to a batch receiver whole or message by message, in order either way',
      withLayer(10, async (layer) => {
        const deliveries: (Envelope | EnvelopeBatch)[] = [];
        const channel = layer.newChannel();
        layer.attach(channel, (delivery: Envelope | EnvelopeBatch) => deliveries.push(delivery), {
          batches: true,
        });
        const plain = collector();
        const plainChannel = layer.newChannel();
        layer.attach(plainChannel, plain.receiver);
        await layer.groupAdd('mixed', channel);
        await layer.groupAdd('mixed', plainChannel);
        const batch = ['a', 'b', 'c'].map((text) => ({ type: 'websocket.send', text }));
        await groupSendAll(layer, 'mixed', batch);
        const flat = (): LayerMessage[] =>
          deliveries.flatMap((delivery) =>
            delivery instanceof EnvelopeBatch
              ? delivery.envelopes.map((envelope) => envelope.message)
              : [delivery.message],
          );
        await eventually(() => flat().length === 3 && plain.received.length === 3);
        assert.deepEqual(flat(), batch);
        assert.deepEqual(plain.received, batch);
        // A layer that sends batches hands them over whole: one visit per member.
        if (layer.groupSendMany !== undefined) assert.equal(deliveries.length, 1);
        for (const delivery of deliveries) {
          if (delivery instanceof EnvelopeBatch) {
            assert.deepEqual(
              delivery.outbound?.messages.map((message) => message.data),
              ['a', 'b', 'c'],
            );
          }
        }
      }),
    );

    it(
      'skips a full member and goes on to the others',
      withLayer(1, async (layer) => {
        const queued = layer.newChannel();
        const attached = collector();
        const live = layer.newChannel();
        layer.attach(live, attached.receiver);
        await layer.groupAdd('g', queued);
        await layer.groupAdd('g', live);
        await layer.groupSend('g', { type: 'n', n: 1 });
        const second = await layer.groupSend('g', { type: 'n', n: 2 });
        await eventually(() => attached.received.length === 2);
        assert.deepEqual(
          attached.received.map((message) => message['n']),
          [1, 2],
        );
        assert.equal(second.dropped >= 0, true);
        assert.deepEqual(await layer.receive(queued), { type: 'n', n: 1 });
      }),
    );

    it(
      'stops delivering after groupDiscard and after detach',
      withLayer(10, async (layer) => {
        const a = collector();
        const b = collector();
        const channelA = layer.newChannel();
        const channelB = layer.newChannel();
        layer.attach(channelA, a.receiver);
        layer.attach(channelB, b.receiver);
        await layer.groupAdd('g', channelA);
        await layer.groupAdd('g', channelB);
        await layer.groupDiscard('g', channelA);
        await layer.detach(channelB);
        await layer.groupSend('g', { type: 'gone' });
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(a.received.length, 0);
        assert.equal(b.received.length, 0);
      }),
    );

    it(
      'detach leaves the groups: the channel attached again hears nothing from them',
      withLayer(10, async (layer) => {
        const first = collector();
        const second = collector();
        const channel = layer.newChannel();
        layer.attach(channel, first.receiver);
        await layer.groupAdd('g', channel);
        await layer.detach(channel);
        layer.attach(channel, second.receiver);
        await layer.groupSend('g', { type: 'gone' });
        await layer.send(channel, { type: 'direct' });
        await eventually(() => second.received.length === 1, 2_000, 'direct message');
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.deepEqual(second.received, [{ type: 'direct' }]);
        assert.equal(first.received.length, 0);
      }),
    );

    it(
      'a detach naming a replaced receiver leaves its successor attached',
      withLayer(10, async (layer) => {
        const old = collector();
        const current = collector();
        const channel = layer.newChannel();
        layer.attach(channel, old.receiver);
        await layer.detach(channel, old.receiver);
        layer.attach(channel, current.receiver);
        await layer.detach(channel, old.receiver);
        await layer.send(channel, { type: 'still here' });
        await eventually(() => current.received.length === 1, 2_000, 'message to the successor');
        assert.deepEqual(current.received, [{ type: 'still here' }]);
        assert.equal(old.received.length, 0);
      }),
    );

    for (const bad of ['', 'a'.repeat(100), 'has space', 'ünï', 'semi;colon', '../x']) {
      it(
        `rejects the bad name ${JSON.stringify(bad.slice(0, 12))}`,
        withLayer(10, async (layer) => {
          await assert.rejects(layer.groupAdd(bad, layer.newChannel()), InvalidChannelNameError);
          await assert.rejects(layer.groupSend(bad, { type: 'x' }), InvalidChannelNameError);
          await assert.rejects(layer.send(bad, { type: 'x' }), InvalidChannelNameError);
        }),
      );
    }

    it(
      'accepts a name of 99 characters',
      withLayer(10, async (layer) => {
        await layer.groupAdd('g'.repeat(99), layer.newChannel());
      }),
    );

    it(
      'rejects a message without a type',
      withLayer(10, async (layer) => {
        await assert.rejects(
          layer.send(layer.newChannel(), { text: 'no type' } as unknown as LayerMessage),
          TypeError,
        );
      }),
    );

    it(
      'hands messages queued before attach to the receiver',
      withLayer(10, async (layer) => {
        const channel = layer.newChannel();
        await layer.send(channel, { type: 'early', n: 1 });
        await layer.send(channel, { type: 'early', n: 2 });
        const { received, receiver } = collector();
        layer.attach(channel, receiver);
        await eventually(() => received.length === 2);
        assert.deepEqual(
          received.map((message) => message['n']),
          [1, 2],
        );
      }),
    );

    it(
      'delivers to a receiver object through its kLayerDelivery method',
      withLayer(10, async (layer) => {
        const received: LayerMessage[] = [];
        const listener: LayerListener = {
          [kLayerDelivery](delivery) {
            const envelopes = delivery instanceof EnvelopeBatch ? delivery.envelopes : [delivery];
            for (const envelope of envelopes) received.push(envelope.message);
          },
        };
        const channel = layer.newChannel();
        await layer.send(channel, { type: 'queued' });
        layer.attach(channel, listener);
        await layer.groupAdd('objects', channel);
        await layer.send(channel, { type: 'direct' });
        await layer.groupSend('objects', { type: 'group' });
        await eventually(() => received.length === 3);
        assert.deepEqual(
          received.map((message) => message.type),
          ['queued', 'direct', 'group'],
        );
        await layer.detach(channel, listener);
        await layer.send(channel, { type: 'after' });
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(received.length, 3);
      }),
    );

    it(
      'refuses a second receiver and receive() on an attached channel',
      withLayer(10, async (layer) => {
        const channel = layer.newChannel();
        layer.attach(channel, () => {});
        assert.throws(() => layer.attach(channel, () => {}), TypeError);
        await assert.rejects(layer.receive(channel), TypeError);
      }),
    );

    it(
      'reaches a group member without a receiver through receive()',
      withLayer(10, async (layer) => {
        const queued = layer.newChannel();
        await layer.groupAdd('jobs', queued);
        const result = await layer.groupSend('jobs', { type: 'job', id: 7 });
        assert.deepEqual(result, { delivered: 1, dropped: 0 });
        assert.deepEqual(await layer.receive(queued), { type: 'job', id: 7 });
      }),
    );

    it(
      'delivers nothing for a group without members',
      withLayer(10, async (layer) => {
        assert.deepEqual(await layer.groupSend('nobody-here', { type: 'x' }), {
          delivered: 0,
          dropped: 0,
        });
      }),
    );

    it(
      'delivers to a channel attached after it joined a group',
      withLayer(10, async (layer) => {
        const channel = layer.newChannel();
        await layer.groupAdd('late', channel);
        const { received, receiver } = collector();
        layer.attach(channel, receiver);
        await layer.groupSend('late', { type: 'after' });
        await eventually(() => received.length === 1);
        assert.deepEqual(received, [{ type: 'after' }]);
      }),
    );

    it(
      'a consumer handles one event at a time: its own group message after the handler that sent it',
      withLayer(100, async (layer) => {
        const log: string[] = [];
        let running = 0;
        let overlaps = 0;
        const step = async <T>(name: string, work: () => T | Promise<T>): Promise<T> => {
          running += 1;
          if (running > 1) overlaps += 1;
          log.push(`${name} start`);
          try {
            return await work();
          } finally {
            log.push(`${name} end`);
            running -= 1;
          }
        };
        class Ordered extends JsonWebsocketConsumer {
          override readonly groups = ['ordered'];
          override receiveJson(content: JsonObject): Promise<void> {
            return step(`receive ${String(content['n'])}`, async () => {
              await this.groupSend('ordered', { type: 'chat.message', n: content['n'] });
            });
          }
          onChatMessage(message: LayerMessage): Promise<void> {
            return step(`chat ${String(message['n'])}`, () => this.sendJson({ n: message['n'] }));
          }
        }
        const communicator = new WebsocketCommunicator(Ordered.asApp({ layer }), '/ws/');
        assert.deepEqual(await communicator.connect(), { accepted: true, subprotocol: null });
        for (const n of [1, 2, 3]) communicator.sendJson({ n });
        for (const n of [1, 2, 3]) assert.deepEqual(await communicator.receiveJson(2_000), { n });
        await communicator.disconnect();
        assert.equal(overlaps, 0, `handlers overlapped: ${log.join(', ')}`);
        const at = (entry: string): number => log.indexOf(entry);
        for (const n of [1, 2, 3]) {
          // Channels' order on every layer: a handler finishes before the next event.
          assert.ok(at(`receive ${n} end`) < at(`chat ${n} start`), log.join(', '));
        }
        const starts = (kind: string): string[] =>
          log.filter((entry) => entry.startsWith(kind) && entry.endsWith('start'));
        assert.deepEqual(starts('receive'), [
          'receive 1 start',
          'receive 2 start',
          'receive 3 start',
        ]);
        assert.deepEqual(starts('chat'), ['chat 1 start', 'chat 2 start', 'chat 3 start']);
      }),
    );

    it(
      "hands every member one frozen copy of a group message, the sender's object untouched",
      withLayer(10, async (layer) => {
        const members = [collector(), collector()];
        for (const member of members) {
          const channel = layer.newChannel();
          layer.attach(channel, member.receiver);
          await layer.groupAdd('frozen', channel);
        }
        const sent = { type: 'chat.message', json: { items: [1] } };
        await layer.groupSend('frozen', sent);
        await eventually(() => members.every((member) => member.received.length === 1));
        const [first, second] = members.map((member) => member.received[0]!);
        assert.ok(Object.isFrozen(first) && Object.isFrozen(second), 'members get frozen messages');
        const items = (first!['json'] as { items: number[] }).items;
        assert.throws(() => items.push(2), TypeError);
        assert.deepEqual(second, { type: 'chat.message', json: { items: [1] } });
        sent.json.items.push(2);
        assert.ok(!Object.isFrozen(sent), "the sender's object is not frozen");
        assert.deepEqual(first!['json'], { items: [1] });
      }),
    );

    it(
      'answers ping',
      withLayer(10, async (layer) => {
        await layer.ping();
      }),
    );
  });
}
