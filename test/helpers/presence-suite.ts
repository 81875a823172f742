// One suite for every presence implementation (STYLE.md practice 14).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidChannelNameError, ServiceUnavailableError } from '../../src/errors.js';
import type { Presence, PresenceEvent, PresenceMember } from '../../src/layers/presence.js';
import { eventually } from './eventually.js';

export interface PresenceFactory {
  /** A fresh presence with state of its own (its own key prefix, for Redis). */
  create(): Promise<Presence>;
  /**
   * Two presences sharing state, as two gateway processes would. An implementation
   * confined to one process answers the same instance twice.
   */
  pair(): Promise<[Presence, Presence]>;
}

/** Records every event a presence emits. */
export function recorder(presence: Presence): { events: PresenceEvent[]; stop: () => void } {
  const events: PresenceEvent[] = [];
  const stop = presence.onChange((event) => events.push(event));
  return { events, stop };
}

const ada = (id: string): PresenceMember => ({ id, userId: '1', username: 'ada' });
const bob = (id: string): PresenceMember => ({ id, userId: '2', username: 'bob' });
const join = (group: string, user: PresenceMember): PresenceEvent => ({
  group,
  type: 'join',
  userId: user.userId,
  username: user.username,
});
const leave = (group: string, user: PresenceMember): PresenceEvent => ({
  ...join(group, user),
  type: 'leave',
});

let markers = 0;

/**
 * Waits for the enter event of a marker user joined after everything else in each of
 * `groups`, then returns the events without markers. A group's events are delivered in
 * order, so every earlier event of it has arrived by then, and an unexpected extra one
 * would be in the list. (Events of different groups may arrive interleaved otherwise:
 * on a Redis Cluster they come from different nodes.)
 */
async function settle(
  presence: Presence,
  events: PresenceEvent[],
  ...groups: string[]
): Promise<PresenceEvent[]> {
  const userIds: string[] = [];
  for (const group of groups) {
    const userId = `marker-${++markers}`;
    userIds.push(userId);
    await presence.join(group, { id: userId, userId, username: 'marker' });
  }
  await eventually(
    () => userIds.every((userId) => events.some((event) => event.userId === userId)),
    2_000,
    `the ${userIds.join(', ')} events`,
  );
  return events.filter((event) => !event.userId.startsWith('marker-'));
}

/** The events of one group, in the order they arrived. */
function ofGroup(events: readonly PresenceEvent[], group: string): PresenceEvent[] {
  return events.filter((event) => event.group === group);
}

export function presenceSuite(name: string, factory: PresenceFactory): void {
  describe(`presence: ${name}`, () => {
    const withPresence = (body: (presence: Presence) => Promise<void>) => async () => {
      const presence = await factory.create();
      try {
        await body(presence);
      } finally {
        await presence.close();
      }
    };

    it(
      'tells the first and the last connection of a user',
      withPresence(async (presence) => {
        assert.deepEqual(await presence.join('room', ada('c1')), { first: true });
        assert.deepEqual(await presence.join('room', ada('c2')), { first: false });
        assert.deepEqual(await presence.join('room', bob('c3')), { first: true });
        assert.deepEqual(await presence.leave('room', 'c1'), {
          last: false,
          userId: '1',
          username: 'ada',
        });
        assert.deepEqual(await presence.leave('room', 'c2'), {
          last: true,
          userId: '1',
          username: 'ada',
        });
        assert.equal(await presence.leave('room', 'c2'), undefined, 'already gone');
        assert.equal(await presence.leave('room', 'nobody'), undefined);
        assert.deepEqual(await presence.join('room', ada('c4')), { first: true }, 'back again');
      }),
    );

    it(
      'lists users with their connection counts, sorted by name',
      withPresence(async (presence) => {
        assert.deepEqual(await presence.members('room'), []);
        await presence.join('room', bob('c1'));
        await presence.join('room', ada('c2'));
        await presence.join('room', ada('c3'));
        await presence.join('other', ada('c4'));
        assert.deepEqual(await presence.members('room'), [
          { userId: '1', username: 'ada', connections: 2 },
          { userId: '2', username: 'bob', connections: 1 },
        ]);
        await presence.leave('room', 'c1');
        await presence.leave('room', 'c2');
        assert.deepEqual(await presence.members('room'), [
          { userId: '1', username: 'ada', connections: 1 },
        ]);
        assert.deepEqual(await presence.members('other'), [
          { userId: '1', username: 'ada', connections: 1 },
        ]);
      }),
    );

    it(
      'renews a connection that joins again',
      withPresence(async (presence) => {
        assert.deepEqual(await presence.join('room', ada('c1')), { first: true });
        assert.deepEqual(await presence.join('room', ada('c1')), { first: false });
        assert.deepEqual(await presence.members('room'), [
          { userId: '1', username: 'ada', connections: 1 },
        ]);
        assert.deepEqual(await presence.leave('room', 'c1'), {
          last: true,
          userId: '1',
          username: 'ada',
        });
      }),
    );

    it(
      'emits enter and leave events per user, not per connection',
      withPresence(async (presence) => {
        const { events } = recorder(presence);
        await presence.join('room', ada('c1'));
        await presence.join('room', ada('c2'));
        await presence.join('room', bob('c3'));
        await presence.leave('room', 'c1');
        await presence.leave('room', 'c2');
        await presence.leave('room', 'c3');
        await presence.join('hall', ada('c1'));
        const settled = await settle(presence, events, 'room', 'hall');
        assert.deepEqual(ofGroup(settled, 'room'), [
          join('room', ada('c1')),
          join('room', bob('c3')),
          leave('room', ada('c2')),
          leave('room', bob('c3')),
        ]);
        assert.deepEqual(ofGroup(settled, 'hall'), [join('hall', ada('c1'))]);
        assert.equal(settled.length, 5);
      }),
    );

    it(
      'stops a listener when asked, and survives one that throws',
      withPresence(async (presence) => {
        presence.onChange(() => {
          throw new Error('listener bug');
        });
        const stopped = recorder(presence);
        const kept = recorder(presence);
        stopped.stop();
        await presence.join('room', ada('c1'));
        assert.deepEqual(await settle(presence, kept.events, 'room'), [join('room', ada('c1'))]);
        assert.deepEqual(stopped.events, []);
      }),
    );

    it(
      'carries ids and names containing the separators',
      withPresence(async (presence) => {
        const odd: PresenceMember = { id: 'c|1', userId: 'auth0|42', username: 'a%7C|b%25 ü' };
        const { events } = recorder(presence);
        assert.deepEqual(await presence.join('room', odd), { first: true });
        assert.deepEqual(await presence.members('room'), [
          { userId: 'auth0|42', username: 'a%7C|b%25 ü', connections: 1 },
        ]);
        assert.deepEqual(await presence.leave('room', 'c|1'), {
          last: true,
          userId: 'auth0|42',
          username: 'a%7C|b%25 ü',
        });
        assert.deepEqual(await settle(presence, events, 'room'), [
          join('room', odd),
          leave('room', odd),
        ]);
      }),
    );

    it(
      'treats a connection id reused by another user as that user joining',
      withPresence(async (presence) => {
        const { events } = recorder(presence);
        await presence.join('room', ada('c1'));
        assert.deepEqual(await presence.join('room', bob('c1')), { first: true });
        assert.deepEqual(await presence.members('room'), [
          { userId: '2', username: 'bob', connections: 1 },
        ]);
        assert.deepEqual(await settle(presence, events, 'room'), [
          join('room', ada('c1')),
          leave('room', ada('c1')),
          join('room', bob('c1')),
        ]);
      }),
    );

    it(
      'validates names, members and listeners',
      withPresence(async (presence) => {
        await assert.rejects(presence.join('bad name', ada('c1')), InvalidChannelNameError);
        await assert.rejects(presence.leave('x'.repeat(100), 'c1'), InvalidChannelNameError);
        await assert.rejects(presence.members('é'), InvalidChannelNameError);
        const memberMessage =
          'A presence member must be an object with a non-empty string "id", ' +
          'a non-empty string "userId" and a string "username"';
        for (const member of [
          null,
          'c1',
          { id: '', userId: '1', username: 'ada' },
          { id: 'c1', userId: '', username: 'ada' },
          { id: 'c1', userId: 1, username: 'ada' },
          { id: 'c1', userId: '1' },
        ]) {
          await assert.rejects(presence.join('room', member as unknown as PresenceMember), {
            name: 'TypeError',
            message: memberMessage,
          });
        }
        await assert.rejects(presence.leave('room', '' as string), {
          name: 'TypeError',
          message: 'A presence member id must be a non-empty string',
        });
        assert.throws(() => presence.onChange('x' as unknown as () => void), {
          name: 'TypeError',
          message: 'A presence listener must be a function',
        });
        assert.deepEqual(await presence.members('room'), [], 'nothing joined');
      }),
    );

    it(
      'rejects calls once closed',
      withPresence(async (presence) => {
        await presence.close();
        await presence.close();
        await assert.rejects(presence.join('room', ada('c1')), ServiceUnavailableError);
        await assert.rejects(presence.leave('room', 'c1'), ServiceUnavailableError);
        await assert.rejects(presence.members('room'), ServiceUnavailableError);
      }),
    );

    it('shares members and events between processes', async () => {
      const [a, b] = await factory.pair();
      try {
        const onA = recorder(a);
        const onB = recorder(b);
        assert.deepEqual(await a.join('room', ada('a1')), { first: true });
        assert.deepEqual(await b.join('room', ada('b1')), { first: false }, 'ada is in already');
        assert.deepEqual(await b.join('room', bob('b2')), { first: true });
        const expected = [
          { userId: '1', username: 'ada', connections: 2 },
          { userId: '2', username: 'bob', connections: 1 },
        ];
        assert.deepEqual(await a.members('room'), expected);
        assert.deepEqual(await b.members('room'), expected);
        assert.deepEqual(await a.leave('room', 'a1'), {
          last: false,
          userId: '1',
          username: 'ada',
        });
        assert.deepEqual(await b.leave('room', 'b1'), { last: true, userId: '1', username: 'ada' });
        const wanted = [join('room', ada('a1')), join('room', bob('b2')), leave('room', ada('b1'))];
        assert.deepEqual(await settle(a, onA.events, 'room'), wanted, 'events on A');
        assert.deepEqual(await settle(b, onB.events, 'room'), wanted, 'events on B');
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });
  });
}
