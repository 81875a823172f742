import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CloseEvent, IncomingData } from '../../src/application.js';
import { JsonWebsocketConsumer } from '../../src/consumer/json-consumer.js';
import { handlerNameFor, WebsocketConsumer } from '../../src/consumer/consumer.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import { MemoryChannelLayer } from '../../src/layers/memory.js';
import { groupSendAll } from '../../src/layers/layer.js';
import type { LayerMessage } from '../../src/layers/layer.js';
import type { JsonObject } from '../../src/protocol/messages.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { WebsocketCommunicator } from '../../src/testing/communicator.js';
import { pino } from 'pino';

const silent = pino({ level: 'silent' });

describe('handler names', () => {
  it('maps message types to on-prefixed camelCase methods', () => {
    assert.equal(handlerNameFor('chat.message'), 'onChatMessage');
    assert.equal(handlerNameFor('user_left'), 'onUserLeft');
    assert.equal(handlerNameFor('ping'), 'onPing');
  });

  it('refuses types that could name anything else', () => {
    for (const type of [
      '__proto__',
      'constructor.',
      '_private',
      '.x',
      'a..b',
      'a b',
      '',
      'x'.repeat(100),
    ]) {
      assert.equal(handlerNameFor(type), undefined, type);
    }
  });
});

class Recorder extends JsonWebsocketConsumer {
  static events: string[] = [];
  override async connect(): Promise<void> {
    this.scope.state['connectedAt'] = 'connect';
    await this.groupAdd('everyone');
    this.accept();
  }
  override receiveJson(content: JsonObject): void {
    if (content['command'] === 'state') this.sendJson({ state: this.scope.state['connectedAt'] });
    if (content['command'] === 'throw') throw new Error('boom with secret pcu_should_not_leak');
    if (content['command'] === 'unavailable') throw new ServiceUnavailableError('database');
  }
  onChatMessage(message: LayerMessage): void {
    this.sendJson({ got: message['text'] });
  }
  helperMethod(): void {
    this.sendJson({ reached: 'helperMethod' });
  }
  override disconnect(event: CloseEvent): void {
    Recorder.events.push(`disconnect ${event.code}`);
  }
}

function chat(layer: MemoryChannelLayer): WebsocketCommunicator {
  return new WebsocketCommunicator(Recorder.asApp({ layer, logger: silent }), '/ws/');
}

describe('WebsocketConsumer', () => {
  it('dispatches layer messages to the handler for their type', async () => {
    const layer = new MemoryChannelLayer();
    const communicator = chat(layer);
    assert.deepEqual(await communicator.connect(), { accepted: true, subprotocol: null });
    await layer.groupSend('everyone', { type: 'chat.message', text: 'hello' });
    assert.deepEqual(await communicator.receiveJson(), { got: 'hello' });
    await communicator.disconnect();
  });

  it('never lets a message type reach a non-handler', async () => {
    const layer = new MemoryChannelLayer();
    const communicator = chat(layer);
    await communicator.connect();
    for (const type of [
      '__proto__',
      'constructor',
      '_private',
      'helper.method',
      'helperMethod',
      'connect',
      'receive.json',
      'send.json',
      'disconnect',
      'group.add',
      'toString',
      'has_own_property',
    ]) {
      await layer.groupSend('everyone', { type, command: 'throw' });
    }
    assert.equal(await communicator.receiveNothing(50), true);
    assert.equal(communicator.state, 'open');
    await communicator.disconnect();
  });

  it('keeps scope.state from connect to disconnect', async () => {
    const communicator = chat(new MemoryChannelLayer());
    await communicator.connect();
    communicator.sendJson({ command: 'state' });
    assert.deepEqual(await communicator.receiveJson(), { state: 'connect' });
    await communicator.disconnect();
  });

  it('closes 1011 when a handler throws, without the error text, and runs disconnect', async () => {
    Recorder.events = [];
    const communicator = chat(new MemoryChannelLayer());
    await communicator.connect();
    communicator.sendJson({ command: 'throw' });
    assert.deepEqual(await communicator.waitForClose(), {
      code: CloseCode.InternalError,
      reason: '',
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(Recorder.events, ['disconnect 1011']);
  });

  it('closes 1013 when a backing service is unavailable', async () => {
    const communicator = chat(new MemoryChannelLayer());
    await communicator.connect();
    communicator.sendJson({ command: 'unavailable' });
    assert.deepEqual(await communicator.waitForClose(), {
      code: CloseCode.TryAgainLater,
      reason: 'try again later',
    });
  });

  it('leaves its groups on disconnect', async () => {
    const layer = new MemoryChannelLayer();
    const communicator = chat(layer);
    await communicator.connect();
    assert.equal(layer.groupMembers('everyone').length, 1);
    await communicator.disconnect();
    assert.deepEqual(layer.groupMembers('everyone'), []);
  });

  it('forwards websocket.send payloads encoded once', async () => {
    const layer = new MemoryChannelLayer();
    const first = chat(layer);
    const second = chat(layer);
    await first.connect();
    await second.connect();
    await layer.groupSend('everyone', { type: 'websocket.send', json: { n: 1 } });
    assert.deepEqual(await first.receiveJson(), { n: 1 });
    assert.deepEqual(await second.receiveJson(), { n: 1 });
    await layer.groupSend('everyone', { type: 'websocket.send', text: 'plain' });
    assert.equal(await first.receiveText(), 'plain');
  });

  it('forwards a published batch in order, and dispatches a mixed one message by message', async () => {
    const layer = new MemoryChannelLayer();
    const first = chat(layer);
    const second = chat(layer);
    await first.connect();
    await second.connect();
    await groupSendAll(layer, 'everyone', [
      { type: 'websocket.send', json: { n: 1 } },
      { type: 'websocket.send', text: 'two' },
      { type: 'websocket.send', json: { n: 3 } },
    ]);
    for (const communicator of [first, second]) {
      assert.deepEqual(await communicator.receiveJson(), { n: 1 });
      assert.equal(await communicator.receiveText(), 'two');
      assert.deepEqual(await communicator.receiveJson(), { n: 3 });
    }
    // A handler in the middle: not forwardable as one piece, every message still arrives.
    await groupSendAll(layer, 'everyone', [
      { type: 'websocket.send', text: 'before' },
      { type: 'chat.message', text: 'handled' },
      { type: 'websocket.send', text: 'after' },
    ]);
    assert.equal(await first.receiveText(), 'before');
    assert.deepEqual(await first.receiveJson(), { got: 'handled' });
    assert.equal(await first.receiveText(), 'after');
    await first.disconnect();
    await second.disconnect();
  });

  it('hands a batch to a websocket.send handler one message at a time', async () => {
    class Counting extends WebsocketConsumer {
      override async connect(): Promise<void> {
        await this.groupAdd('counted');
        this.accept();
      }
      onWebsocketSend(message: LayerMessage): void {
        this.send(`seen ${String(message['text'])}`);
      }
    }
    const layer = new MemoryChannelLayer();
    const communicator = new WebsocketCommunicator(Counting.asApp({ layer, logger: silent }), '/');
    await communicator.connect();
    await groupSendAll(layer, 'counted', [
      { type: 'websocket.send', text: 'a' },
      { type: 'websocket.send', text: 'b' },
    ]);
    assert.equal(await communicator.receiveText(), 'seen a');
    assert.equal(await communicator.receiveText(), 'seen b');
    await communicator.disconnect();
  });

  it('closes from a websocket.close layer message', async () => {
    const layer = new MemoryChannelLayer();
    const communicator = chat(layer);
    await communicator.connect();
    await layer.groupSend('everyone', {
      type: 'websocket.close',
      code: 4401,
      reason: 'token revoked',
    });
    assert.deepEqual(await communicator.waitForClose(), { code: 4401, reason: 'token revoked' });
  });

  it('throws a TypeError naming the fix when groups are used without a layer', async () => {
    class NoLayer extends WebsocketConsumer {
      override async connect(): Promise<void> {
        try {
          await this.groupAdd('x');
        } catch (error) {
          this.accept();
          this.send((error as Error).message);
        }
      }
    }
    const communicator = new WebsocketCommunicator(NoLayer.asApp({ logger: silent }), '/');
    await communicator.connect();
    assert.equal(
      await communicator.receiveText(),
      'NoLayer has no channel layer: pass { layer } to asApp()',
    );
  });

  it('refuses a connection whose connect() neither accepts nor closes', async () => {
    class Undecided extends WebsocketConsumer {
      override connect(): void {}
    }
    const communicator = new WebsocketCommunicator(Undecided.asApp({ logger: silent }), '/');
    assert.deepEqual(await communicator.connect(), {
      accepted: false,
      closeCode: CloseCode.Forbidden,
      reason: 'forbidden',
    });
  });

  it('accepts the first offered subprotocol by default', async () => {
    class Plain extends WebsocketConsumer {}
    const communicator = new WebsocketCommunicator(Plain.asApp(), '/', {
      subprotocols: ['chat.v1', 'chat.v0'],
    });
    assert.deepEqual(await communicator.connect(), { accepted: true, subprotocol: 'chat.v1' });
  });

  it('processes frames one at a time, in order', async () => {
    const order: number[] = [];
    class Slow extends WebsocketConsumer {
      override async receive(data: IncomingData): Promise<void> {
        const n = Number(data);
        await new Promise((resolve) => setTimeout(resolve, n === 1 ? 30 : 1));
        order.push(n);
        if (n === 3) this.send('done');
      }
    }
    const communicator = new WebsocketCommunicator(Slow.asApp(), '/');
    await communicator.connect();
    for (const n of [1, 2, 3]) communicator.sendText(String(n));
    assert.equal(await communicator.receiveText(), 'done');
    assert.deepEqual(order, [1, 2, 3]);
  });

  it('forwards a websocket.send to its own group after the handler that sent it', async () => {
    const layer = new MemoryChannelLayer();
    class Echo extends WebsocketConsumer {
      override readonly groups = ['echo'];
      override async receive(data: IncomingData): Promise<void> {
        await this.groupSend('echo', { type: 'websocket.send', text: `group ${String(data)}` });
        this.send(`direct ${String(data)}`);
      }
    }
    const communicator = new WebsocketCommunicator(Echo.asApp({ layer }), '/');
    await communicator.connect();
    communicator.sendText('1');
    communicator.sendText('2');
    const received = [];
    for (let index = 0; index < 4; index += 1) received.push(await communicator.receiveText());
    assert.deepEqual(received, ['direct 1', 'group 1', 'direct 2', 'group 2']);
  });

  it('handles a layer message that arrives during connect() after connect()', async () => {
    const layer = new MemoryChannelLayer();
    class Greeter extends JsonWebsocketConsumer {
      override readonly groups = ['greet'];
      override async connect(): Promise<void> {
        await this.groupSend('greet', { type: 'hello' });
        this.accept();
        this.sendJson({ step: 'connected' });
      }
      onHello(): void {
        this.sendJson({ step: 'hello' });
      }
    }
    const communicator = new WebsocketCommunicator(Greeter.asApp({ layer }), '/');
    await communicator.connect();
    assert.deepEqual(await communicator.receiveJson(), { step: 'connected' });
    assert.deepEqual(await communicator.receiveJson(), { step: 'hello' });
  });

  it('closes 4429 when a client floods a slow consumer', async () => {
    class Stuck extends WebsocketConsumer {
      override receive(): Promise<void> {
        return new Promise(() => {});
      }
    }
    const communicator = new WebsocketCommunicator(Stuck.asApp({ maxQueuedMessages: 5 }), '/');
    await communicator.connect();
    for (let index = 0; index < 10; index += 1) communicator.sendText('x');
    assert.equal((await communicator.waitForClose()).code, CloseCode.TooManyRequests);
  });

  it('validates asApp options', () => {
    assert.throws(() => Recorder.asApp({ maxQueuedMessages: 0 }), {
      name: 'RangeError',
      message: 'The "maxQueuedMessages" option must be a positive integer',
    });
  });
});

describe('JsonWebsocketConsumer', () => {
  const cases: [string, string | Uint8Array, string][] = [
    ['invalid JSON', '{nope', 'invalid json'],
    ['a JSON array', '[1,2]', 'message must be a json object'],
    ['a JSON string', '"text"', 'message must be a json object'],
    ['null', 'null', 'message must be a json object'],
    ['a binary frame', new Uint8Array([1, 2, 3]), 'binary frames not accepted'],
  ];
  for (const [name, frame, reason] of cases) {
    it(`closes 4400 on ${name}`, async () => {
      const communicator = chat(new MemoryChannelLayer());
      await communicator.connect();
      if (typeof frame === 'string') communicator.sendText(frame);
      else communicator.sendBytes(frame);
      assert.deepEqual(await communicator.waitForClose(), { code: CloseCode.BadFrame, reason });
    });
  }
});
