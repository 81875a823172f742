/**
 * Presence (issue 5, item 3): the shared suite over the in-memory and the Redis
 * implementations, then what only Redis has: several processes (one instance each, or
 * a real child process killed with SIGKILL), heartbeat expiry, re-registration after a
 * reconnect or a Redis restart, and an unreachable Redis. Real Redis at TEST_REDIS_URL
 * (default 127.0.0.1:6379); each test uses its own key prefix.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, afterEach, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { MemoryPresence } from '../../src/layers/presence.js';
import {
  RedisPresence,
  type RedisPresenceOptions,
  type RedisPresenceStatus,
} from '../../src/layers/redis/presence.js';
import { eventually } from '../helpers/eventually.js';
import {
  freePort,
  startRedisServer,
  stopProcess,
  constructingLoadsIoredis,
} from '../helpers/processes.js';
import { presenceSuite, recorder } from '../helpers/presence-suite.js';
import { isCI, serviceSuiteOptions, serviceUrl } from '../helpers/services.js';

const silent = pino({ level: 'silent' });
const SU = { name: 'ServiceUnavailableError', code: 'ERR_SERVICE_UNAVAILABLE' };
const ada = { id: 'c1', userId: '1', username: 'ada' };
const bob = { id: 'c2', userId: '2', username: 'bob' };

function randomPrefix(): string {
  return `pcu-test-${randomBytes(5).toString('hex')}`;
}

/** Polls an async condition; for Redis-side state. */
async function until(check: () => Promise<boolean>, what: string, timeout = 3_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeout} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

presenceSuite('memory', {
  create: async () => new MemoryPresence({ logger: silent }),
  pair: async () => {
    const presence = new MemoryPresence({ logger: silent });
    return [presence, presence];
  },
});

describe('memory presence specifics', () => {
  it('validates its options', () => {
    assert.throws(() => new MemoryPresence({ logger: 'x' as unknown as typeof silent }), {
      name: 'TypeError',
      message: 'The "logger" option must be a pino logger',
    });
  });

  it('emits after the change, never inside the call', async () => {
    const presence = new MemoryPresence({ logger: silent });
    const { events } = recorder(presence);
    const joining = presence.join('room', ada);
    assert.deepEqual(events, []);
    await joining;
    assert.equal(events.length, 1);
    await presence.close();
  });
});

describe('redis presence options', () => {
  const cases: [RedisPresenceOptions, string, string][] = [
    [
      { url: 'http://127.0.0.1' },
      'TypeError',
      'The "url" option must be a redis:// or rediss:// URL',
    ],
    [
      { prefix: 'a{b}' },
      'TypeError',
      'The "prefix" option must be 1 to 64 letters, digits, "-", "_", "." or ":"',
    ],
    [
      { processId: 'a:b' },
      'TypeError',
      'The "processId" option must be 1 to 64 letters, digits, "-", "_" or "."',
    ],
    [
      { heartbeatInterval: 0 },
      'RangeError',
      'The "heartbeatInterval" option must be a positive integer',
    ],
    [{ ttl: 1.5 }, 'RangeError', 'The "ttl" option must be a positive integer'],
    [
      { heartbeatInterval: 1_000, ttl: 1_000 },
      'RangeError',
      'The "ttl" option must be greater than "heartbeatInterval"',
    ],
    [
      { commandTimeout: -1 },
      'RangeError',
      'The "commandTimeout" option must be a positive integer',
    ],
    [
      { onStatus: 1 as unknown as () => void },
      'TypeError',
      'The "onStatus" option must be a function',
    ],
    [{ now: 1 as unknown as () => number }, 'TypeError', 'The "now" option must be a function'],
  ];
  for (const [options, name, message] of cases) {
    it(`rejects ${JSON.stringify(options)}`, async () => {
      assert.throws(() => new RedisPresence(options), { name, message });
      await assert.rejects(RedisPresence.connect(options), { name, message });
    });
  }

  it('tells the fix when used before connect()', async () => {
    const presence = new RedisPresence({ logger: silent });
    await assert.rejects(presence.join('room', ada), {
      name: 'TypeError',
      message: /not connected: use `await RedisPresence.connect\(options\)`/,
    });
    await presence.close();
  });

  it('does not load ioredis until connect()', async () => {
    assert.equal(
      await constructingLoadsIoredis('./src/layers/redis/presence.ts', 'RedisPresence'),
      false,
    );
  });
});

describe('redis presence, redis unreachable', () => {
  it('fails fast with ServiceUnavailableError', async () => {
    const statuses: RedisPresenceStatus[] = [];
    const started = Date.now();
    const presence = await RedisPresence.connect({
      url: 'redis://127.0.0.1:1',
      prefix: randomPrefix(),
      connectTimeout: 500,
      logger: silent,
      onStatus: (status) => statuses.push(status),
    });
    try {
      assert.equal(presence.status, 'down');
      assert.deepEqual(statuses, ['down']);
      await assert.rejects(presence.join('room', ada), SU);
      await assert.rejects(presence.leave('room', 'c1'), SU);
      await assert.rejects(presence.members('room'), SU);
      assert.ok(Date.now() - started < 2_000, `took ${Date.now() - started} ms`);
    } finally {
      await presence.close();
    }
  });
});

describe('redis presence', await serviceSuiteOptions('redis'), () => {
  let url: string;
  let admin: Redis;
  const prefixes: string[] = [];
  const opened: RedisPresence[] = [];

  before(async () => {
    url = await serviceUrl('redis');
    admin = new Redis(url, { lazyConnect: true });
    await admin.connect();
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((presence) => presence.close()));
  });

  after(async () => {
    for (const prefix of prefixes) {
      const keys = await admin.keys(`${prefix}:*`);
      if (keys.length > 0) await admin.del(...keys);
    }
    await admin.quit();
  });

  async function open(options: RedisPresenceOptions = {}): Promise<RedisPresence> {
    const prefix = options.prefix ?? randomPrefix();
    if (!prefixes.includes(prefix)) prefixes.push(prefix);
    const presence = await RedisPresence.connect({ url, logger: silent, ...options, prefix });
    opened.push(presence);
    assert.equal(presence.status, 'ready');
    return presence;
  }

  presenceSuite('redis', {
    create: () => open(),
    pair: async () => {
      const prefix = randomPrefix();
      return [await open({ prefix }), await open({ prefix })];
    },
  });

  it("expires a silent process's connections on the clock, with leave events", async () => {
    // Heartbeats far apart, so only the shared clock moves during the test.
    let now = 1_000_000;
    const options = {
      prefix: randomPrefix(),
      heartbeatInterval: 60_000,
      ttl: 120_000,
      now: () => now,
    };
    const silentOne = await open(options);
    const survivor = await open(options);
    const { events } = recorder(survivor);
    await silentOne.join('room', ada);
    await silentOne.join('room', bob);
    now += 120_001;
    // bob's new connection on the survivor keeps him in: only ada leaves, no flicker for bob.
    assert.deepEqual(await survivor.join('room', { ...bob, id: 's1' }), { first: false });
    assert.deepEqual(await survivor.members('room'), [
      { userId: '2', username: 'bob', connections: 1 },
    ]);
    await eventually(() => events.length === 3);
    assert.deepEqual(
      events.map((event) => `${event.type} ${event.username}`),
      ['join ada', 'join bob', 'leave ada'],
    );
  });

  it('registers its connections again after a reconnect', async () => {
    let now = 1_000_000;
    const prefix = randomPrefix();
    const statuses: RedisPresenceStatus[] = [];
    const options = { prefix, heartbeatInterval: 60_000, ttl: 120_000, now: () => now };
    const cutOff = await open({ ...options, onStatus: (status) => statuses.push(status) });
    const other = await open(options);
    const { events } = recorder(other);
    await cutOff.join('room', ada);
    // The others expire it while it is cut off...
    now += 120_001;
    assert.deepEqual(await other.members('room'), []);
    await eventually(() => events.length === 2, 2_000, 'join and leave');
    // ...and when it reconnects it comes back, with an enter event.
    const clients = String(await admin.client('LIST')).split('\n');
    const line = clients.find((entry) =>
      entry.includes(`name=portcullis-presence-${cutOff.processId}-cmd`),
    );
    const id = /\bid=(\d+)/.exec(line ?? '')?.[1];
    assert.ok(id !== undefined, 'found its command connection');
    await admin.client('KILL', 'ID', id);
    await eventually(() => events.length === 3, 3_000, 'enter event after reconnect');
    assert.deepEqual(
      events.map((event) => `${event.type} ${event.username}`),
      ['join ada', 'leave ada', 'join ada'],
    );
    assert.deepEqual(await other.members('room'), [
      { userId: '1', username: 'ada', connections: 1 },
    ]);
    await eventually(() => statuses.length === 3);
    assert.deepEqual(statuses, ['ready', 'down', 'ready']);
  });

  it('leaves its connections at once when closed', async () => {
    const prefix = randomPrefix();
    const closing = await open({ prefix });
    const other = await open({ prefix });
    const { events } = recorder(other);
    await closing.join('room', ada);
    await closing.join('hall', ada);
    await closing.close();
    await eventually(() => events.length === 4);
    assert.deepEqual(
      events
        .filter((event) => event.type === 'leave')
        .map((event) => event.group)
        .sort(),
      ['hall', 'room'],
    );
    assert.deepEqual(await other.members('room'), []);
    assert.equal(await admin.zscore(`${prefix}:presence:{procs}`, closing.processId), null);
  });

  it('removes the members of a process killed with SIGKILL, with leave events', async (t) => {
    const prefix = randomPrefix();
    prefixes.push(prefix);
    const timing = { heartbeatInterval: 100, ttl: 300 };
    const survivor = await open({ prefix, ...timing });
    const { events } = recorder(survivor);
    const script = [
      "const { RedisPresence } = await import('./src/layers/redis/presence.ts');",
      `const presence = await RedisPresence.connect(${JSON.stringify({ url, prefix, ...timing, processId: 'doomed' })});`,
      "await presence.join('room', { id: 'd1', userId: '1', username: 'ada' });",
      "await presence.join('hall', { id: 'd1', userId: '1', username: 'ada' });",
      "console.log('joined');",
      'setInterval(() => {}, 1_000);',
    ].join('\n');
    const child: ChildProcess = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await eventually(() => output.includes('joined'), 10_000, 'the child joined');
    assert.deepEqual(await survivor.members('room'), [
      { userId: '1', username: 'ada', connections: 1 },
    ]);
    // Its heartbeats keep it in past ttl.
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal((await survivor.members('hall')).length, 1);

    child.kill('SIGKILL');
    await once(child, 'exit');
    const killedAt = Date.now();
    // Nobody here touches 'hall': only the sweeper can notice.
    await eventually(
      () => events.filter((event) => event.type === 'leave').length === 2,
      2_000,
      'leave events for both groups',
    );
    const took = Date.now() - killedAt;
    assert.ok(took < 1_000, `leave events took ${took} ms`);
    assert.deepEqual(
      events
        .filter((event) => event.type === 'leave')
        .map((event) => event.group)
        .sort(),
      ['hall', 'room'],
    );
    assert.deepEqual(await survivor.members('room'), []);
    assert.deepEqual(await survivor.members('hall'), []);
    await until(
      async () => (await admin.zscore(`${prefix}:presence:{procs}`, 'doomed')) === null,
      'the dead process forgotten',
    );
  });
});

// Needs the redis-server binary, not the Redis at 6379: it runs a throwaway server.
const hasRedisServer = spawnSync('redis-server', ['--version']).error === undefined;

describe(
  'redis presence, redis restart',
  { skip: hasRedisServer || isCI() ? false : 'redis-server is not installed' },
  () => {
    before(() => {
      if (!hasRedisServer) throw new Error('redis-server is not installed; CI=true requires it');
    });

    it('fails fast while Redis is away and registers everything again after', async (t) => {
      const port = await freePort();
      let server = await startRedisServer(port);
      t.after(() => stopProcess(server));
      const options = {
        url: `redis://127.0.0.1:${port}`,
        prefix: randomPrefix(),
        logger: silent,
        maxReconnectDelay: 100,
        connectTimeout: 1_000,
      };
      const a = await RedisPresence.connect(options);
      const b = await RedisPresence.connect(options);
      t.after(() => Promise.all([a.close(), b.close()]));
      await a.join('room', ada);
      await b.join('room', bob);

      await stopProcess(server);
      await eventually(() => a.status === 'down' && b.status === 'down', 2_000, 'both down');
      const started = Date.now();
      await assert.rejects(a.join('room', { ...ada, id: 'c3' }), SU);
      await assert.rejects(b.members('room'), SU);
      await assert.rejects(b.leave('room', bob.id), SU, 'forgotten locally all the same');
      assert.ok(Date.now() - started < 500, `calls took ${Date.now() - started} ms`);

      server = await startRedisServer(port);
      await eventually(() => a.status === 'ready' && b.status === 'ready', 5_000, 'both ready');
      // The new server started empty: A registered ada again; B's bob left during the outage.
      assert.deepEqual(await b.members('room'), [{ userId: '1', username: 'ada', connections: 1 }]);
      const { events } = recorder(b);
      assert.deepEqual(await a.leave('room', ada.id), {
        last: true,
        userId: '1',
        username: 'ada',
      });
      await eventually(() => events.length === 1);
    });
  },
);
