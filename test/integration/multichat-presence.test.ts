// MultiChat with presence (issue 5, item 3; SPEC §7 msg_type 4 and 5): enter and leave
// notices per user rather than per socket, in one process over MemoryPresence and
// across two gateways in this test process, each with its own RedisChannelLayer and
// RedisPresence over the real Redis (TEST_REDIS_URL, default 127.0.0.1:6379; skipped
// locally when unreachable, a failure under CI=true). Every wait is bounded.
import { Accounts } from '../../src/auth/accounts.js';
import { identityKey } from '../../src/auth/user.js';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect as netConnect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { tokenAuthenticator } from '../../src/auth/authenticators/token.js';
import type { User } from '../../src/auth/user.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import {
  multichatApp,
  roomGroupName,
  roomMembers,
} from '../../src/gateway/apps/multichat/index.js';
import type { MultichatOptions } from '../../src/gateway/apps/multichat/index.js';
import type { ChannelLayer, GroupSendResult, LayerMessage } from '../../src/layers/layer.js';
import { MemoryChannelLayer } from '../../src/layers/memory.js';
import { MemoryPresence } from '../../src/layers/presence.js';
import type {
  Presence,
  PresenceJoinResult,
  PresenceLeaveResult,
  PresenceListener,
  PresenceMember,
  PresenceUser,
} from '../../src/layers/presence.js';
import { RedisChannelLayer } from '../../src/layers/redis/layer.js';
import { RedisPresence } from '../../src/layers/redis/presence.js';
import type { RedisPresenceOptions } from '../../src/layers/redis/presence.js';
import { authMiddleware } from '../../src/middleware/auth.js';
import type { AuthMiddleware } from '../../src/middleware/auth.js';
import { CloseCode, CloseReason } from '../../src/protocol/close-codes.js';
import { route, urlRouter } from '../../src/routing/url-router.js';
import type { Room, Store } from '../../src/store/store.js';
import { connectClient } from '../../src/testing/client.js';
import type { TestClient } from '../../src/testing/client.js';
import { WebsocketCommunicator } from '../../src/testing/communicator.js';
import { listen } from '../../src/transport/ws.js';
import type { RunningServer } from '../../src/transport/ws.js';
import { serviceSuiteOptions, serviceUrl } from '../helpers/services.js';
import { storeVariants } from '../helpers/stores.js';
import type { OpenedStore } from '../helpers/stores.js';

/** Every line logged, to check what was reported and that no consumer crashed. */
const logLines: string[] = [];
const logger: Logger = pino({ level: 'warn' }, { write: (line: string) => logLines.push(line) });
const silent = pino({ level: 'silent' });

const enter = (room: string, username: string): object => ({ msg_type: 4, room, username });
const left = (room: string, username: string): object => ({ msg_type: 5, room, username });
const said = (room: string, username: string, message: string): object => ({
  msg_type: 0,
  room,
  username,
  message,
});

/** A layer that records group sends, to check that notices never go through it. */
class RecordingLayer extends MemoryChannelLayer {
  readonly sends: { group: string; message: LayerMessage }[] = [];
  override groupSend(group: string, message: LayerMessage): Promise<GroupSendResult> {
    this.sends.push({ group, message });
    return super.groupSend(group, message);
  }
}

/** A presence whose `leave` can be made to fail, as one cut off from Redis does. */
class FlakyPresence implements Presence {
  readonly inner = new MemoryPresence({ logger: silent });
  failLeave = false;
  join(group: string, member: PresenceMember): Promise<PresenceJoinResult> {
    return this.inner.join(group, member);
  }
  leave(group: string, memberId: string): Promise<PresenceLeaveResult | undefined> {
    if (this.failLeave) return Promise.reject(new ServiceUnavailableError('presence'));
    return this.inner.leave(group, memberId);
  }
  members(group: string): Promise<PresenceUser[]> {
    return this.inner.members(group);
  }
  onChange(listener: PresenceListener): () => void {
    return this.inner.onChange(listener);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A chat gateway in this process: the auth middleware and the MultiChat app on a port. */
interface Gateway {
  readonly server: RunningServer;
  readonly auth: AuthMiddleware;
  close(): Promise<void>;
}

async function startGateway(
  store: Store,
  layer: ChannelLayer,
  presence: Presence | undefined,
): Promise<Gateway> {
  const auth = authMiddleware({
    authenticators: [tokenAuthenticator({ store })],
    requireAuthentication: false,
    layer,
    logger,
  });
  const options: MultichatOptions =
    presence === undefined ? { store, layer, logger } : { store, layer, logger, presence };
  const server = await listen(auth(urlRouter([route('/ws/chat/', multichatApp(options))])), {
    logger,
  });
  return {
    server,
    auth,
    async close() {
      await server.close();
      await auth.close();
    },
  };
}

/** The users every suite signs in as, with their tokens. */
async function createUsers(store: Store): Promise<Map<string, string>> {
  const tokens = new Map<string, string>();
  const accounts = new Accounts(store);
  for (const username of ['alice', 'bob', 'carol']) {
    const user = await accounts.createUser({ username, isStaff: false });
    tokens.set(username, (await accounts.createToken(user.id)).token);
  }
  return tokens;
}

async function joined(client: TestClient, room: string, title: string): Promise<void> {
  client.sendJson({ command: 'join', room });
  assert.deepEqual(await client.receiveJson(), { join: room, title });
}

async function leaves(client: TestClient, room: string, username: string): Promise<void> {
  client.sendJson({ command: 'leave', room });
  assert.deepEqual(await client.receiveJson(), { leave: room });
  assert.deepEqual(await client.receiveJson(), left(room, username), 'its own leave notice');
}

const sqlite = storeVariants[0]!;

describe('MultiChat with presence, one process (memory)', () => {
  let opened: OpenedStore;
  let store: Store;
  let layer: RecordingLayer;
  let presence: MemoryPresence;
  let gateway: Gateway;
  let tokens: Map<string, string>;
  const clients: TestClient[] = [];

  async function connectAs(username: string): Promise<TestClient> {
    const client = await connectClient(`${gateway.server.url}/ws/chat/`, {
      headers: { Authorization: `Token ${tokens.get(username)!}` },
    });
    clients.push(client);
    return client;
  }

  before(async () => {
    opened = await sqlite.open();
    store = opened.store;
    tokens = await createUsers(store);
    layer = new RecordingLayer();
    presence = new MemoryPresence({ logger });
    gateway = await startGateway(store, layer, presence);
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
  });

  after(async () => {
    await gateway.close();
    await presence.close();
    await layer.close();
    await opened.cleanup();
    const crashes = logLines.filter((line) => line.includes('consumer error'));
    assert.deepEqual(crashes, []);
  });

  it('checks the presence option', () => {
    const options = { store, layer, presence: { join: () => undefined } as unknown as Presence };
    assert.throws(() => multichatApp(options), {
      name: 'TypeError',
      message: 'The "presence" option must be a Presence (join, leave, members and onChange)',
    });
  });

  it('notices a user once, however many sockets they have in the room', async () => {
    const room = await store.createRoom({ title: 'Lobby', staffOnly: false });
    const group = roomGroupName(room);
    const bob = await connectAs('bob');
    const alice1 = await connectAs('alice');
    const alice2 = await connectAs('alice');
    await joined(bob, room, 'Lobby');
    const sendsBefore = layer.sends.length;

    await joined(alice1, room, 'Lobby');
    assert.deepEqual(await bob.receiveJson(), enter(room, 'alice'));
    await joined(alice2, room, 'Lobby');
    assert.ok(await bob.receiveNothing(150), 'no second enter notice for alice');
    assert.ok(await alice1.receiveNothing(), 'alice is not told she entered');
    // Presence keys users by identity (SPEC §3): source and id.
    assert.deepEqual(await roomMembers(presence, room), [
      {
        userId: identityKey((await store.getUserByUsername('alice'))!),
        username: 'alice',
        connections: 2,
      },
      {
        userId: identityKey((await store.getUserByUsername('bob'))!),
        username: 'bob',
        connections: 1,
      },
    ]);

    // Alice is still in the room through her other socket: only the leaver hears it.
    await leaves(alice1, room, 'alice');
    assert.ok(await bob.receiveNothing(150), 'no leave notice while alice is still there');
    assert.ok(await alice2.receiveNothing());

    alice2.sendJson({ command: 'send', room, message: 'still here' });
    assert.deepEqual(await bob.receiveJson(), said(room, 'alice', 'still here'));
    assert.deepEqual(await alice2.receiveJson(), said(room, 'alice', 'still here'));
    assert.ok(await alice1.receiveNothing(), 'the socket that left gets no more traffic');

    await leaves(alice2, room, 'alice');
    assert.deepEqual(await bob.receiveJson(), left(room, 'alice'));
    assert.ok(await bob.receiveNothing());
    assert.deepEqual(
      (await roomMembers(presence, room)).map((user) => user.username),
      ['bob'],
    );

    // Notices come from presence only: the layer carried the one room message.
    assert.deepEqual(
      layer.sends.slice(sendsBefore).map(({ group: name, message }) => [name, message.type]),
      [[group, 'websocket.send']],
    );
  });

  it('notices the leave only when the last socket disconnects', async () => {
    const room = await store.createRoom({ title: 'Hall', staffOnly: false });
    const bob = await connectAs('bob');
    const alice1 = await connectAs('alice');
    const alice2 = await connectAs('alice');
    await joined(bob, room, 'Hall');
    await joined(alice1, room, 'Hall');
    await joined(alice2, room, 'Hall');
    assert.deepEqual(await bob.receiveJson(), enter(room, 'alice'));

    await alice1.close();
    assert.ok(await bob.receiveNothing(200), 'alice still has a socket in the room');
    await alice2.close();
    assert.deepEqual(await bob.receiveJson(), left(room, 'alice'));
    assert.deepEqual(
      (await roomMembers(presence, room)).map((user) => user.username),
      ['bob'],
    );
  });
});

describe('MultiChat with presence, in process', () => {
  const lobby: Room = { id: '1', title: 'Lobby', staffOnly: false, createdAt: new Date(0) };
  const store: MultichatOptions['store'] = {
    getRoom: async (id) => (String(id) === lobby.id ? lobby : undefined),
    listRooms: async () => [lobby],
  };
  const alice: User = {
    source: 'test',
    id: '1',
    username: 'alice',
    isStaff: false,
    isAnonymous: false,
  };
  const bob: User = {
    source: 'test',
    id: '2',
    username: 'bob',
    isStaff: false,
    isAnonymous: false,
  };
  const layers: MemoryChannelLayer[] = [];
  const communicators: WebsocketCommunicator[] = [];

  function communicatorFor(
    app: ReturnType<typeof multichatApp>,
    user: User,
  ): WebsocketCommunicator {
    const created = new WebsocketCommunicator(app, '/ws/chat/', {
      scope: (scope) => ({ ...scope, user }),
    });
    communicators.push(created);
    return created;
  }

  function newLayer(): MemoryChannelLayer {
    const layer = new MemoryChannelLayer();
    layers.push(layer);
    return layer;
  }

  afterEach(async () => {
    await Promise.all(communicators.splice(0).map((created) => created.disconnect()));
    await Promise.all(layers.splice(0).map((layer) => layer.close()));
  });

  it('fails a join closed (1013) when presence is unavailable, joining nothing', async () => {
    const presence = new MemoryPresence({ logger: silent });
    await presence.close(); // every call now throws ServiceUnavailableError
    const layer = newLayer();
    const member = communicatorFor(multichatApp({ store, layer, logger, presence }), alice);
    assert.deepEqual(await member.connect(), { accepted: true, subprotocol: null });
    member.sendJson({ command: 'join', room: 1 });
    assert.deepEqual(await member.waitForClose(), {
      code: CloseCode.TryAgainLater,
      reason: CloseReason.TryAgainLater,
    });
    assert.deepEqual(layer.groupMembers('room.1'), [], 'the layer group was left again');
  });

  it('logs a failed presence leave and still answers the leaver', async () => {
    const presence = new FlakyPresence();
    const app = multichatApp({ store, layer: newLayer(), logger, presence });
    const aliceSocket = communicatorFor(app, alice);
    const bobSocket = communicatorFor(app, bob);
    await aliceSocket.connect();
    await bobSocket.connect();
    for (const socket of [aliceSocket, bobSocket]) {
      socket.sendJson({ command: 'join', room: 1 });
      assert.deepEqual(await socket.receiveJson(), { join: '1', title: 'Lobby' });
    }
    assert.deepEqual(await aliceSocket.receiveJson(), enter('1', 'bob'));

    presence.failLeave = true;
    const linesBefore = logLines.length;
    bobSocket.sendJson({ command: 'leave', room: 1 });
    assert.deepEqual(await bobSocket.receiveJson(), { leave: '1' });
    assert.deepEqual(await bobSocket.receiveJson(), left('1', 'bob'));
    assert.equal(bobSocket.state, 'open', 'the socket stays open');
    assert.ok(
      logLines.slice(linesBefore).some((line) => line.includes('presence leave failed')),
      'the failure is logged',
    );
    // Presence never heard bob leave, so nobody was told; a real presence expires him.
    assert.ok(await aliceSocket.receiveNothing());
    await presence.close();
  });

  it('queues a notice behind the room traffic that reached the member first', async () => {
    // A store whose next getRoom waits for the test: it holds alice's queue busy.
    let hold: { entered: () => void; release: Promise<void> } | undefined;
    const slowStore: MultichatOptions['store'] = {
      async getRoom(id) {
        const held = hold;
        hold = undefined;
        if (held !== undefined) {
          held.entered();
          await held.release;
        }
        return store.getRoom(id);
      },
      listRooms: () => store.listRooms(),
    };
    const presence = new MemoryPresence({ logger: silent });
    const app = multichatApp({ store: slowStore, layer: newLayer(), logger, presence });
    const aliceSocket = communicatorFor(app, alice);
    const bobSocket = communicatorFor(app, bob);
    for (const socket of [aliceSocket, bobSocket]) {
      await socket.connect();
      socket.sendJson({ command: 'join', room: 1 });
      assert.deepEqual(await socket.receiveJson(), { join: '1', title: 'Lobby' });
    }
    assert.deepEqual(await aliceSocket.receiveJson(), enter('1', 'bob'));

    let release = (): void => {};
    const entered = new Promise<void>((resolve) => {
      hold = { entered: resolve, release: new Promise((done) => (release = done)) };
    });
    aliceSocket.sendJson({ command: 'send', room: 1, message: 'slow' });
    await entered; // alice's consumer now waits in its send
    bobSocket.sendJson({ command: 'send', room: 1, message: 'bye' });
    assert.deepEqual(await bobSocket.receiveJson(), said('1', 'bob', 'bye'));
    bobSocket.sendJson({ command: 'leave', room: 1 });
    assert.deepEqual(await bobSocket.receiveJson(), { leave: '1' });
    assert.deepEqual(await bobSocket.receiveJson(), left('1', 'bob'));
    release();
    assert.deepEqual(await aliceSocket.receiveJson(), said('1', 'bob', 'bye'));
    assert.deepEqual(await aliceSocket.receiveJson(), left('1', 'bob'));
    assert.deepEqual(await aliceSocket.receiveJson(), said('1', 'alice', 'slow'));
    await presence.close();
  });

  it('gives the enter notice to every local socket but the joiner’s', async () => {
    const presence = new MemoryPresence({ logger: silent });
    const app = multichatApp({ store, layer: newLayer(), logger, presence });
    const watchers = [communicatorFor(app, bob), communicatorFor(app, bob)];
    const joiner = communicatorFor(app, alice);
    for (const socket of [...watchers, joiner]) {
      await socket.connect();
      socket.sendJson({ command: 'join', room: 1 });
      assert.deepEqual(await socket.receiveJson(), { join: '1', title: 'Lobby' });
    }
    const frames = await Promise.all(watchers.map((socket) => socket.receiveOutput()));
    assert.deepEqual(
      frames.map((frame) => (frame.type === 'send' ? frame.data : frame.type)),
      Array.from({ length: 2 }, () => JSON.stringify(enter('1', 'alice'))),
    );
    assert.ok(await joiner.receiveNothing());
    await presence.close();
  });
});

/** A TCP proxy to Redis that can be cut like a dead machine's network: no close, no return. */
class CuttableProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #target: URL;

  private constructor(target: URL) {
    this.#target = target;
    this.#server = createServer((client) => {
      const upstream = netConnect({
        host: this.#target.hostname,
        port: Number(this.#target.port || 6379),
      });
      for (const [from, to] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        this.#sockets.add(from);
        from.on('error', () => to.destroy());
        from.on('close', () => {
          this.#sockets.delete(from);
          to.destroy();
        });
        from.pipe(to);
      }
    });
  }

  static async start(target: string): Promise<{ proxy: CuttableProxy; url: string }> {
    const targetUrl = new URL(target);
    const proxy = new CuttableProxy(targetUrl);
    proxy.#server.listen(0, '127.0.0.1');
    await once(proxy.#server, 'listening');
    const { port } = proxy.#server.address() as { port: number };
    const url = new URL(target);
    url.hostname = '127.0.0.1';
    url.port = String(port);
    return { proxy, url: url.toString() };
  }

  /** Drops every connection and refuses new ones, so reconnects fail until the end. */
  async cut(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }
}

describe(
  'MultiChat with presence, two gateways over Redis',
  await serviceSuiteOptions('redis'),
  () => {
    let redisUrl: string;
    // Unset when `before` failed (Redis unreachable under CI=true): `after` must not throw too.
    let admin: Redis | undefined;
    let opened: OpenedStore | undefined;
    let store: Store;
    let tokens: Map<string, string>;
    const prefixes: string[] = [];
    const clients: TestClient[] = [];
    const teardown: (() => Promise<void>)[] = [];

    before(async () => {
      redisUrl = await serviceUrl('redis');
      admin = new Redis(redisUrl, { lazyConnect: true });
      await admin.connect();
      // One store shared by both gateways, as many processes share one database.
      opened = await sqlite.open();
      store = opened.store;
      tokens = await createUsers(store);
    });

    afterEach(async () => {
      await Promise.all(clients.splice(0).map((client) => client.close()));
      // Last started, first stopped: gateways before the presence and layer they use.
      for (const step of teardown.splice(0).reverse()) await step();
    });

    after(async () => {
      if (admin !== undefined) {
        for (const prefix of prefixes) {
          const keys = await admin.keys(`${prefix}:*`);
          if (keys.length > 0) await admin.del(...keys);
        }
        await admin.quit();
      }
      await opened?.cleanup();
      const crashes = logLines.filter((line) => line.includes('consumer error'));
      assert.deepEqual(crashes, []);
    });

    function randomPrefix(): string {
      const prefix = `pcu-test-${randomBytes(5).toString('hex')}`;
      prefixes.push(prefix);
      return prefix;
    }

    /** A gateway with its own layer and presence, like one process of many. */
    async function gatewayOn(
      prefix: string,
      timing: Pick<RedisPresenceOptions, 'heartbeatInterval' | 'ttl'> = {},
      url = redisUrl,
    ): Promise<{ gateway: Gateway; presence: RedisPresence }> {
      const common = { url, prefix, logger: silent, maxReconnectDelay: 200, connectTimeout: 1_000 };
      const layer = await RedisChannelLayer.connect(common);
      teardown.push(() => layer.close());
      const presence = await RedisPresence.connect({
        ...common,
        ...timing,
        processId: layer.processId,
      });
      teardown.push(() => presence.close());
      assert.equal(layer.status, 'ready');
      assert.equal(presence.status, 'ready');
      const gateway = await startGateway(store, layer, presence);
      teardown.push(() => gateway.close());
      return { gateway, presence };
    }

    async function connectTo(gateway: Gateway, username: string): Promise<TestClient> {
      const client = await connectClient(`${gateway.server.url}/ws/chat/`, {
        headers: { Authorization: `Token ${tokens.get(username)!}` },
      });
      clients.push(client);
      return client;
    }

    it('carries messages in order and notices between users on different gateways', async () => {
      const prefix = randomPrefix();
      const a = await gatewayOn(prefix);
      const b = await gatewayOn(prefix);
      const room = await store.createRoom({ title: 'Across', staffOnly: false });
      const alice = await connectTo(a.gateway, 'alice');
      const bob = await connectTo(b.gateway, 'bob');

      await joined(alice, room, 'Across');
      await joined(bob, room, 'Across');
      assert.deepEqual(await alice.receiveJson(), enter(room, 'bob'));
      assert.ok(await bob.receiveNothing(), 'bob is not told he entered');

      // Both send at once; each reader sees every message, each sender's in its order.
      const count = 30;
      for (let index = 0; index < count; index += 1) {
        alice.sendJson({ command: 'send', room, message: `a${index}` });
        bob.sendJson({ command: 'send', room, message: `b${index}` });
      }
      for (const reader of [alice, bob]) {
        const received: { username: string; message: string }[] = [];
        for (let index = 0; index < 2 * count; index += 1) {
          received.push((await reader.receiveJson()) as { username: string; message: string });
        }
        for (const [username, tag] of [
          ['alice', 'a'],
          ['bob', 'b'],
        ] as const) {
          assert.deepEqual(
            received.filter((frame) => frame.username === username).map((frame) => frame.message),
            Array.from({ length: count }, (_, index) => `${tag}${index}`),
          );
        }
      }

      // Bob opens a second socket, on the other gateway: no second enter notice.
      const bobOnA = await connectTo(a.gateway, 'bob');
      await joined(bobOnA, room, 'Across');
      assert.ok(await alice.receiveNothing(200), 'bob was already in the room');
      assert.deepEqual(
        (await roomMembers(a.presence, room)).map(({ username, connections }) => [
          username,
          connections,
        ]),
        [
          ['alice', 1],
          ['bob', 2],
        ],
      );

      // His socket on B leaves: he hears it, the room does not (he is still there on A).
      await leaves(bob, room, 'bob');
      assert.ok(await alice.receiveNothing(200));
      assert.ok(await bobOnA.receiveNothing());

      // His last socket goes: everyone left in the room hears it, once.
      await bobOnA.close();
      assert.deepEqual(await alice.receiveJson(), left(room, 'bob'));
      assert.ok(await alice.receiveNothing(200));

      // And the other way round: alice leaving on A is heard by bob's new socket on B.
      const bobAgain = await connectTo(b.gateway, 'bob');
      await joined(bobAgain, room, 'Across');
      assert.deepEqual(await alice.receiveJson(), enter(room, 'bob'));
      await leaves(alice, room, 'alice');
      assert.deepEqual(await bobAgain.receiveJson(), left(room, 'alice'));
    });

    it('tells the room a cut-off gateway’s users left once its heartbeat expires', async () => {
      const prefix = randomPrefix();
      const timing = { heartbeatInterval: 100, ttl: 300 };
      const a = await gatewayOn(prefix, timing);
      // B reaches Redis only through a proxy, so the test can cut it off like a killed
      // process: no leave, no close, no heartbeat, and no reconnect.
      const { proxy, url } = await CuttableProxy.start(redisUrl);
      const b = await gatewayOn(prefix, timing, url);
      const room = await store.createRoom({ title: 'Doomed', staffOnly: false });
      const alice = await connectTo(a.gateway, 'alice');
      const bob = await connectTo(b.gateway, 'bob');
      await joined(alice, room, 'Doomed');
      await joined(bob, room, 'Doomed');
      assert.deepEqual(await alice.receiveJson(), enter(room, 'bob'));

      await proxy.cut();
      const cutAt = Date.now();
      assert.deepEqual(await alice.receiveJson(2_000), left(room, 'bob'));
      const took = Date.now() - cutAt;
      assert.ok(took < 2_000, `the leave notice took ${took} ms`);
      assert.deepEqual(
        (await roomMembers(a.presence, room)).map((user) => user.username),
        ['alice'],
      );
      assert.ok(await alice.receiveNothing(300), 'one leave notice, nothing after');
    });
  },
);
