// The MultiChat protocol of SPEC §7 over real sockets on SQLite, plus the in-process
// driver for what a socket cannot reach (an anonymous user past connect, layer calls).
import { Accounts } from '../../src/auth/accounts.js';
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { ANONYMOUS_USER } from '../../src/auth/user.js';
import type { User } from '../../src/auth/user.js';
import { tokenAuthenticator } from '../../src/auth/authenticators/token.js';
import {
  canJoin,
  multichatApp,
  parseRoomId,
  roomGroupName,
} from '../../src/gateway/apps/multichat/index.js';
import type { MultichatOptions } from '../../src/gateway/apps/multichat/index.js';
import type { GroupSendResult, LayerMessage } from '../../src/layers/layer.js';
import { MemoryChannelLayer } from '../../src/layers/memory.js';
import { authMiddleware } from '../../src/middleware/auth.js';
import type { AuthMiddleware } from '../../src/middleware/auth.js';
import { CloseCode, CloseReason } from '../../src/protocol/close-codes.js';
import { route, urlRouter } from '../../src/routing/url-router.js';
import type { Room, Store } from '../../src/store/store.js';
import { connectClient } from '../../src/testing/client.js';
import type { TestClient } from '../../src/testing/client.js';
import { WebsocketCommunicator } from '../../src/testing/communicator.js';
import type { CommunicatorOptions } from '../../src/testing/communicator.js';
import { listen } from '../../src/transport/ws.js';
import type { RunningServer } from '../../src/transport/ws.js';
import { eventually } from '../helpers/eventually.js';
import { storeVariants } from '../helpers/stores.js';
import type { OpenedStore } from '../helpers/stores.js';

/** Every line logged, to check at the end that no consumer crashed. */
const logLines: string[] = [];
const logger: Logger = pino({ level: 'warn' }, { write: (line: string) => logLines.push(line) });

/** A layer that records group sends, to check there is one per room message. */
class RecordingLayer extends MemoryChannelLayer {
  readonly sends: { group: string; message: LayerMessage }[] = [];
  override groupSend(group: string, message: LayerMessage): Promise<GroupSendResult> {
    this.sends.push({ group, message });
    return super.groupSend(group, message);
  }
}

/**
 * The store as the app sees it: the real SQLite store, with room changes the store has
 * no method for (made staff-only, deleted) layered on top.
 */
function changeableRooms(store: Store): {
  view: MultichatOptions['store'];
  change(id: string, change: Partial<Room> | 'deleted'): void;
} {
  const changes = new Map<string, Partial<Room> | 'deleted'>();
  return {
    view: {
      async getRoom(id) {
        const room = await store.getRoom(id);
        if (room === undefined) return undefined;
        const change = changes.get(room.id);
        if (change === 'deleted') return undefined;
        return change === undefined ? room : { ...room, ...change };
      },
      listRooms: () => store.listRooms(),
    },
    change: (id, change) => changes.set(id, change),
  };
}

describe('MultiChat helpers', () => {
  it('reads room ids as numbers or digit strings, canonical without leading zeros', () => {
    assert.equal(parseRoomId(1), '1');
    assert.equal(parseRoomId('1'), '1');
    assert.equal(parseRoomId('01'), '1');
    assert.equal(parseRoomId(1e3), '1000');
    assert.equal(parseRoomId(Number.MAX_SAFE_INTEGER), String(Number.MAX_SAFE_INTEGER));
    for (const bad of [
      0,
      '0',
      -1,
      '-1',
      1.5,
      '1.5',
      '1.0',
      '1e3',
      ' 1',
      '1 ',
      '+1',
      '',
      '0x1',
      '١',
      Number.MAX_SAFE_INTEGER + 1,
      '9007199254740993',
      '0'.repeat(20) + '1',
      Number.NaN,
      Infinity,
      true,
      null,
      undefined,
      {},
      [1],
    ]) {
      assert.equal(parseRoomId(bad), undefined, JSON.stringify(bad) ?? String(bad));
    }
  });

  it('names one valid layer group per room', () => {
    assert.equal(roomGroupName('12'), 'room.12');
    assert.equal(roomGroupName(12), 'room.12');
    assert.throws(() => roomGroupName('01'), {
      name: 'TypeError',
      message: 'Invalid room id "01": expected a positive integer',
    });
    assert.throws(() => roomGroupName('x y'), TypeError);
  });

  it('lets staff into staff-only rooms and nobody anonymous anywhere', () => {
    const alice = { isStaff: false, isAnonymous: false };
    const sam = { isStaff: true, isAnonymous: false };
    assert.equal(canJoin(alice, { staffOnly: false }), true);
    assert.equal(canJoin(alice, { staffOnly: true }), false);
    assert.equal(canJoin(sam, { staffOnly: true }), true);
    assert.equal(canJoin(ANONYMOUS_USER, { staffOnly: false }), false);
  });

  it('checks its options at construction', () => {
    const layer = new MemoryChannelLayer();
    const store = { getRoom: async () => undefined, listRooms: async () => [] };
    assert.throws(() => multichatApp({ store, layer, maxMessageLength: 0 }), {
      name: 'RangeError',
      message: 'The "maxMessageLength" option must be a positive integer',
    });
    assert.throws(
      () => multichatApp({ store, layer: undefined as unknown as MemoryChannelLayer }),
      { name: 'TypeError', message: 'multichatApp needs a channel layer: pass { layer }' },
    );
  });
});

const sqlite = storeVariants[0]!;

describe(`MultiChat over real sockets (${sqlite.name})`, () => {
  let opened: OpenedStore;
  let store: Store;
  let rooms: ReturnType<typeof changeableRooms>;
  let layer: RecordingLayer;
  let auth: AuthMiddleware;
  let server: RunningServer;
  const tokens = new Map<string, string>();
  const clients: TestClient[] = [];
  const chatUrl = (): string => `${server.url}/ws/chat/`;

  async function connectAs(username: string): Promise<TestClient> {
    const client = await connectClient(chatUrl(), {
      headers: { Authorization: `Token ${tokens.get(username)!}` },
    });
    clients.push(client);
    return client;
  }

  /** A fresh room per test, so that one test's notices never reach another's clients. */
  async function newRoom(title: string, staffOnly = false): Promise<string> {
    return store.createRoom({ title, staffOnly });
  }

  async function joined(client: TestClient, room: string | number, title: string): Promise<void> {
    client.sendJson({ command: 'join', room });
    assert.deepEqual(await client.receiveJson(), { join: String(room), title });
  }

  before(async () => {
    opened = await sqlite.open();
    store = opened.store;
    rooms = changeableRooms(store);
    const accounts = new Accounts(store);
    for (const [username, isStaff] of [
      ['alice', false],
      ['bob', false],
      ['sam', true],
    ] as const) {
      const user = await accounts.createUser({ username, isStaff });
      tokens.set(username, (await accounts.createToken(user.id)).token);
    }
    layer = new RecordingLayer();
    auth = authMiddleware({
      authenticators: [tokenAuthenticator({ store })],
      requireAuthentication: false,
      layer,
      logger,
    });
    const app = auth(
      urlRouter([route('/ws/chat/', multichatApp({ store: rooms.view, layer, logger }))]),
    );
    server = await listen(app, { logger });
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
  });

  after(async () => {
    await server.close();
    await auth.close();
    await layer.close();
    await opened.cleanup();
    const crashes = logLines.filter((line) => line.includes('consumer error'));
    assert.deepEqual(crashes, []);
  });

  it('answers a join with the id as a string and the title', async () => {
    const lobby = await newRoom('Lobby');
    const alice = await connectAs('alice');
    alice.sendJson({ command: 'join', room: Number(lobby) });
    assert.deepEqual(await alice.receiveJson(), { join: lobby, title: 'Lobby' });
    assert.ok(await alice.receiveNothing(), 'the joiner gets no enter notice of its own');
  });

  it('takes a room id as a number or a numeric string, naming the same room', async () => {
    const lobby = await newRoom('Lobby');
    const alice = await connectAs('alice');
    const bob = await connectAs('bob');
    await joined(alice, Number(lobby), 'Lobby');
    bob.sendJson({ command: 'join', room: `0${lobby}` });
    assert.deepEqual(await bob.receiveJson(), { join: lobby, title: 'Lobby' });
    assert.deepEqual(await alice.receiveJson(), { msg_type: 4, room: lobby, username: 'bob' });
    bob.sendJson({ command: 'send', room: Number(lobby), message: 'by number' });
    bob.sendJson({ command: 'send', room: lobby, message: 'by string' });
    for (const message of ['by number', 'by string']) {
      const frame = { msg_type: 0, room: lobby, username: 'bob', message };
      assert.deepEqual(await alice.receiveJson(), frame);
      assert.deepEqual(await bob.receiveJson(), frame);
    }
  });

  it('carries messages between two users both ways, the sender included', async () => {
    const lobby = await newRoom('Lobby');
    const alice = await connectAs('alice');
    const bob = await connectAs('bob');
    await joined(alice, lobby, 'Lobby');
    await joined(bob, lobby, 'Lobby');
    assert.deepEqual(await alice.receiveJson(), { msg_type: 4, room: lobby, username: 'bob' });

    alice.sendJson({ command: 'send', room: lobby, message: 'hi bob' });
    const fromAlice = { msg_type: 0, room: lobby, username: 'alice', message: 'hi bob' };
    assert.deepEqual(await bob.receiveJson(), fromAlice);
    assert.deepEqual(await alice.receiveJson(), fromAlice);

    bob.sendJson({ command: 'send', room: lobby, message: 'hi alice' });
    const fromBob = { msg_type: 0, room: lobby, username: 'bob', message: 'hi alice' };
    assert.deepEqual(await alice.receiveJson(), fromBob);
    assert.deepEqual(await bob.receiveJson(), fromBob);
    assert.ok(await alice.receiveNothing());
    assert.ok(await bob.receiveNothing());
  });

  it('routes each room to its own members only', async () => {
    const first = await newRoom('First');
    const second = await newRoom('Second');
    const alice = await connectAs('alice');
    const bob = await connectAs('bob');
    await joined(alice, first, 'First');
    await joined(alice, second, 'Second');
    await joined(bob, second, 'Second');
    assert.deepEqual(await alice.receiveJson(), { msg_type: 4, room: second, username: 'bob' });
    alice.sendJson({ command: 'send', room: first, message: 'only me' });
    assert.deepEqual(await alice.receiveJson(), {
      msg_type: 0,
      room: first,
      username: 'alice',
      message: 'only me',
    });
    assert.ok(await bob.receiveNothing());
  });

  it('answers a leave, gives the leaver its own leave notice, and stops delivery', async () => {
    const lobby = await newRoom('Lobby');
    const alice = await connectAs('alice');
    const bob = await connectAs('bob');
    await joined(alice, lobby, 'Lobby');
    await joined(bob, lobby, 'Lobby');
    assert.deepEqual(await alice.receiveJson(), { msg_type: 4, room: lobby, username: 'bob' });

    bob.sendJson({ command: 'leave', room: Number(lobby) });
    const notice = { msg_type: 5, room: lobby, username: 'bob' };
    assert.deepEqual(await bob.receiveJson(), { leave: lobby });
    assert.deepEqual(await bob.receiveJson(), notice);
    assert.deepEqual(await alice.receiveJson(), notice);

    alice.sendJson({ command: 'send', room: lobby, message: 'still there?' });
    assert.deepEqual(await alice.receiveJson(), {
      msg_type: 0,
      room: lobby,
      username: 'alice',
      message: 'still there?',
    });
    assert.ok(await bob.receiveNothing(150), 'a member that left gets nothing more');

    bob.sendJson({ command: 'send', room: lobby, message: 'let me in' });
    assert.deepEqual(await bob.receiveJson(), { error: 'ROOM_ACCESS_DENIED' });
    assert.ok(await alice.receiveNothing());
  });

  it('answers a repeated join again without a second enter notice', async () => {
    const lobby = await newRoom('Lobby');
    const alice = await connectAs('alice');
    const bob = await connectAs('bob');
    await joined(alice, lobby, 'Lobby');
    await joined(bob, lobby, 'Lobby');
    assert.deepEqual(await alice.receiveJson(), { msg_type: 4, room: lobby, username: 'bob' });
    await joined(bob, lobby, 'Lobby');
    assert.ok(await alice.receiveNothing());
    bob.sendJson({ command: 'send', room: lobby, message: 'once' });
    assert.deepEqual(await bob.receiveJson(), {
      msg_type: 0,
      room: lobby,
      username: 'bob',
      message: 'once',
    });
    assert.ok(await bob.receiveNothing(), 'one membership, one copy');
  });

  it('refuses sending to a room not joined', async () => {
    const lobby = await newRoom('Lobby');
    const alice = await connectAs('alice');
    alice.sendJson({ command: 'send', room: lobby, message: 'hello?' });
    assert.deepEqual(await alice.receiveJson(), { error: 'ROOM_ACCESS_DENIED' });
    // Membership is checked before existence: nothing about other rooms leaks.
    alice.sendJson({ command: 'send', room: 999_999, message: 'hello?' });
    assert.deepEqual(await alice.receiveJson(), { error: 'ROOM_ACCESS_DENIED' });
    await joined(alice, lobby, 'Lobby');
  });

  it('answers a leave of a room not joined as the original does, telling nobody', async () => {
    const lobby = await newRoom('Lobby');
    const staff = await newRoom('Staff', true);
    const alice = await connectAs('alice');
    const bob = await connectAs('bob');
    await joined(bob, lobby, 'Lobby');
    // The original page leaves the rooms it showed after a reconnect, joined or not.
    alice.sendJson({ command: 'leave', room: lobby });
    assert.deepEqual(await alice.receiveJson(), { leave: lobby });
    alice.sendJson({ command: 'leave', room: String(lobby) });
    assert.deepEqual(await alice.receiveJson(), { leave: lobby });
    assert.ok(await bob.receiveNothing(), 'no leave notice for someone who was not there');
    // The room is still looked up and checked, as the original's get_room_or_error does.
    alice.sendJson({ command: 'leave', room: 999_999 });
    assert.deepEqual(await alice.receiveJson(), { error: 'ROOM_INVALID' });
    alice.sendJson({ command: 'leave', room: staff });
    assert.deepEqual(await alice.receiveJson(), { error: 'ROOM_ACCESS_DENIED' });
    await joined(alice, lobby, 'Lobby');
    assert.deepEqual(await bob.receiveJson(), { msg_type: 4, room: lobby, username: 'alice' });
  });

  it('refuses a staff-only room to non-staff and admits staff', async () => {
    const staff = await newRoom('Staff', true);
    const alice = await connectAs('alice');
    const sam = await connectAs('sam');
    alice.sendJson({ command: 'join', room: staff });
    assert.deepEqual(await alice.receiveJson(), { error: 'ROOM_ACCESS_DENIED' });
    await joined(sam, staff, 'Staff');
    sam.sendJson({ command: 'send', room: staff, message: 'staff only' });
    assert.deepEqual(await sam.receiveJson(), {
      msg_type: 0,
      room: staff,
      username: 'sam',
      message: 'staff only',
    });
    assert.ok(await alice.receiveNothing(), 'a refused join joins nothing');
    assert.equal(alice.socket.readyState, alice.socket.OPEN, 'errors keep the socket open');
  });

  it('re-checks permission on every send and takes a refused member out', async () => {
    const room = await newRoom('Becomes staff-only');
    const alice = await connectAs('alice');
    const bob = await connectAs('bob');
    const sam = await connectAs('sam');
    await joined(alice, room, 'Becomes staff-only');
    await joined(bob, room, 'Becomes staff-only');
    await joined(sam, room, 'Becomes staff-only');
    assert.deepEqual(await alice.receiveJson(), { msg_type: 4, room, username: 'bob' });
    assert.deepEqual(await alice.receiveJson(), { msg_type: 4, room, username: 'sam' });
    assert.deepEqual(await bob.receiveJson(), { msg_type: 4, room, username: 'sam' });

    rooms.change(room, { staffOnly: true });
    alice.sendJson({ command: 'send', room, message: 'can I still?' });
    const aliceLeft = { msg_type: 5, room, username: 'alice' };
    assert.deepEqual(await alice.receiveJson(), { error: 'ROOM_ACCESS_DENIED' });
    assert.deepEqual(await alice.receiveJson(), { leave: room });
    assert.deepEqual(await alice.receiveJson(), aliceLeft);
    assert.deepEqual(await sam.receiveJson(), aliceLeft);
    assert.deepEqual(await bob.receiveJson(), aliceLeft);

    // A repeated join is checked again too.
    bob.sendJson({ command: 'join', room });
    const bobLeft = { msg_type: 5, room, username: 'bob' };
    assert.deepEqual(await bob.receiveJson(), { error: 'ROOM_ACCESS_DENIED' });
    assert.deepEqual(await bob.receiveJson(), { leave: room });
    assert.deepEqual(await bob.receiveJson(), bobLeft);
    assert.deepEqual(await sam.receiveJson(), bobLeft);

    sam.sendJson({ command: 'send', room, message: 'staff talk' });
    assert.deepEqual(await sam.receiveJson(), {
      msg_type: 0,
      room,
      username: 'sam',
      message: 'staff talk',
    });
    assert.ok(await alice.receiveNothing(), 'no longer receives the room');
    assert.ok(await bob.receiveNothing(), 'no longer receives the room');
    alice.sendJson({ command: 'join', room });
    assert.deepEqual(await alice.receiveJson(), { error: 'ROOM_ACCESS_DENIED' });
  });

  it('answers ROOM_INVALID to a member whose room was deleted, and takes it out', async () => {
    const room = await newRoom('Short-lived');
    const alice = await connectAs('alice');
    await joined(alice, room, 'Short-lived');
    rooms.change(room, 'deleted');
    alice.sendJson({ command: 'send', room, message: 'anyone?' });
    assert.deepEqual(await alice.receiveJson(), { error: 'ROOM_INVALID' });
    assert.deepEqual(await alice.receiveJson(), { leave: room });
    assert.deepEqual(await alice.receiveJson(), { msg_type: 5, room, username: 'alice' });
    alice.sendJson({ command: 'join', room });
    assert.deepEqual(await alice.receiveJson(), { error: 'ROOM_INVALID' });
  });

  it('answers ROOM_INVALID for a missing, malformed or unknown room', async () => {
    const alice = await connectAs('alice');
    const malformed: unknown[] = [1.5, -1, 0, '1.5', 'abc', '', ' 1', true, null, {}, [1], 2 ** 60];
    for (const command of ['join', 'leave', 'send']) {
      alice.sendJson({ command, message: 'x' });
      assert.deepEqual(await alice.receiveJson(), { error: 'ROOM_INVALID' }, `${command} no room`);
      for (const room of malformed) {
        alice.sendJson({ command, room, message: 'x' });
        assert.deepEqual(
          await alice.receiveJson(),
          { error: 'ROOM_INVALID' },
          `${command} ${JSON.stringify(room)}`,
        );
      }
    }
    alice.sendJson({ command: 'join', room: 999_999 });
    assert.deepEqual(await alice.receiveJson(), { error: 'ROOM_INVALID' });
    assert.equal(alice.socket.readyState, alice.socket.OPEN);
  });

  it('answers UNKNOWN_COMMAND for a missing or unknown command', async () => {
    const alice = await connectAs('alice');
    for (const frame of [
      {},
      { room: 1 },
      { command: 'dance', room: 1 },
      { command: 'JOIN', room: 1 },
      { command: 1 },
      { command: null },
      { command: ['join'] },
    ]) {
      alice.sendJson(frame);
      assert.deepEqual(
        await alice.receiveJson(),
        { error: 'UNKNOWN_COMMAND' },
        JSON.stringify(frame),
      );
    }
  });

  it('requires a string message no longer than 4,000 characters', async () => {
    const lobby = await newRoom('Lobby');
    const alice = await connectAs('alice');
    await joined(alice, lobby, 'Lobby');
    for (const message of [undefined, 5, null, { text: 'x' }, ['x']]) {
      alice.sendJson({ command: 'send', room: lobby, message });
      assert.deepEqual(await alice.receiveJson(), { error: 'MESSAGE_INVALID' });
    }
    alice.sendJson({ command: 'send', room: lobby, message: 'x'.repeat(4_001) });
    assert.deepEqual(await alice.receiveJson(), { error: 'MESSAGE_TOO_LONG' });
    // Counted in characters: 4,000 emoji are 8,000 UTF-16 units and still fit.
    for (const message of ['', 'x'.repeat(4_000), '😀'.repeat(4_000)]) {
      alice.sendJson({ command: 'send', room: lobby, message });
      assert.deepEqual(await alice.receiveJson(), {
        msg_type: 0,
        room: lobby,
        username: 'alice',
        message,
      });
    }
  });

  it('delivers markup as data, exactly as sent', async () => {
    const lobby = await newRoom('<b>Lobby</b>');
    const alice = await connectAs('alice');
    const bob = await connectAs('bob');
    await joined(alice, lobby, '<b>Lobby</b>');
    await joined(bob, lobby, '<b>Lobby</b>');
    await alice.receiveJson();
    const message = `<script>alert("x")</script><img src=x onerror=alert(1)> &amp; \u2028 '"\\ \u0000`;
    alice.sendJson({ command: 'send', room: lobby, message });
    const frame = (await bob.receiveJson()) as { message: string };
    assert.equal(frame.message, message);
  });

  it('keeps a sender’s order for 100 quick sends', async () => {
    const lobby = await newRoom('Lobby');
    const alice = await connectAs('alice');
    const bob = await connectAs('bob');
    await joined(alice, lobby, 'Lobby');
    await joined(bob, lobby, 'Lobby');
    await alice.receiveJson();
    for (let index = 0; index < 100; index += 1) {
      alice.sendJson({ command: 'send', room: lobby, message: String(index) });
    }
    for (const client of [bob, alice]) {
      const received: string[] = [];
      for (let index = 0; index < 100; index += 1) {
        received.push(((await client.receiveJson()) as { message: string }).message);
      }
      assert.deepEqual(
        received,
        Array.from({ length: 100 }, (_, index) => String(index)),
      );
    }
  });

  it('leaves every joined room on disconnect, telling the others', async () => {
    const first = await newRoom('First');
    const second = await newRoom('Second');
    const alice = await connectAs('alice');
    const bob = await connectAs('bob');
    const sam = await connectAs('sam');
    await joined(alice, first, 'First');
    await joined(alice, second, 'Second');
    await joined(bob, first, 'First');
    await joined(sam, second, 'Second');
    await alice.receiveJson();
    await alice.receiveJson();

    await alice.close();
    assert.deepEqual(await bob.receiveJson(), { msg_type: 5, room: first, username: 'alice' });
    assert.deepEqual(await sam.receiveJson(), { msg_type: 5, room: second, username: 'alice' });
    await eventually(
      () =>
        layer.groupMembers(roomGroupName(first)).length === 1 &&
        layer.groupMembers(roomGroupName(second)).length === 1,
      2_000,
      'the closed socket leaving both groups',
    );
  });

  it('sends one group message per room message, forwarded by websocket.send', async () => {
    const lobby = await newRoom('Lobby');
    const alice = await connectAs('alice');
    const bob = await connectAs('bob');
    await joined(alice, lobby, 'Lobby');
    const group = roomGroupName(lobby);
    const before = layer.sends.length;
    await joined(bob, lobby, 'Lobby');
    await alice.receiveJson();
    bob.sendJson({ command: 'send', room: lobby, message: 'counted' });
    await alice.receiveJson();
    await bob.receiveJson();
    bob.sendJson({ command: 'leave', room: lobby });
    await alice.receiveJson();
    const sends = layer.sends.slice(before).map(({ group: name, message }) => ({
      group: name,
      type: message.type,
    }));
    assert.deepEqual(sends, [
      { group, type: 'chat.enter' },
      { group, type: 'websocket.send' },
      { group, type: 'websocket.send' },
    ]);
  });

  it('closes an anonymous connection 4401 at connect', async () => {
    const client = await connectClient(chatUrl());
    clients.push(client);
    assert.deepEqual(await client.waitForClose(), {
      code: CloseCode.Unauthorized,
      reason: CloseReason.AuthenticationRequired,
    });
  });

  it('closes 4400 on invalid JSON, a non-object frame and a binary frame', async () => {
    const cases: [string | Buffer, string][] = [
      ['{"command":"join",', CloseReason.InvalidJson],
      ['[{"command":"join","room":1}]', CloseReason.NotAnObject],
      ['"join"', CloseReason.NotAnObject],
      [Buffer.from('{"command":"join","room":1}'), CloseReason.BinaryNotAccepted],
    ];
    for (const [frame, reason] of cases) {
      const alice = await connectAs('alice');
      alice.send(frame);
      assert.deepEqual(await alice.waitForClose(), { code: CloseCode.BadFrame, reason });
    }
  });
});

describe('MultiChat in process', () => {
  const layer = new MemoryChannelLayer();
  const lobby: Room = { id: '1', title: 'Lobby', staffOnly: false, createdAt: new Date(0) };
  const store: MultichatOptions['store'] = {
    getRoom: async (id) => (String(id) === lobby.id ? lobby : undefined),
    listRooms: async () => [lobby],
  };
  const app = multichatApp({ store, layer, logger });
  const alice: User = {
    source: 'test',
    id: '1',
    username: 'alice',
    isStaff: false,
    isAnonymous: false,
  };
  const communicators: WebsocketCommunicator[] = [];
  const communicator = (options: CommunicatorOptions = {}): WebsocketCommunicator => {
    const created = new WebsocketCommunicator(app, '/ws/chat/', options);
    communicators.push(created);
    return created;
  };

  afterEach(async () => {
    await Promise.all(communicators.splice(0).map((created) => created.disconnect()));
  });
  after(() => layer.close());

  it('closes an anonymous scope 4401 at connect', async () => {
    assert.deepEqual(await communicator().connect(), {
      accepted: false,
      closeCode: CloseCode.Unauthorized,
      reason: CloseReason.AuthenticationRequired,
    });
  });

  it('answers USER_HAS_TO_LOGIN when the user is anonymous past connect', async () => {
    let user: User = alice;
    const anonymousLater = communicator({
      // A user that turns anonymous after connect: unreachable through the auth middleware,
      // which is why the check is defensive.
      scope: (scope) =>
        Object.defineProperty({ ...scope }, 'user', { get: () => user, enumerable: true }),
    });
    assert.deepEqual(await anonymousLater.connect(), { accepted: true, subprotocol: null });
    anonymousLater.sendJson({ command: 'join', room: 1 });
    assert.deepEqual(await anonymousLater.receiveJson(), { join: '1', title: 'Lobby' });
    user = ANONYMOUS_USER;
    for (const command of ['join', 'leave', 'send']) {
      anonymousLater.sendJson({ command, room: 1, message: 'x' });
      assert.deepEqual(await anonymousLater.receiveJson(), { error: 'USER_HAS_TO_LOGIN' });
    }
    await anonymousLater.disconnect();
  });

  it('leaves its groups when the socket closes', async () => {
    const member = communicator({ scope: (scope) => ({ ...scope, user: alice }) });
    await member.connect();
    member.sendJson({ command: 'join', room: '1' });
    await member.receiveJson();
    assert.equal(layer.groupMembers('room.1').length, 1);
    await member.disconnect();
    assert.equal(layer.groupMembers('room.1').length, 0);
  });
});
