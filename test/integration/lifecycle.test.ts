/**
 * The gateway's life as a process (SPEC §8), on real processes, real signals and real
 * sockets: `portcullis serve` and `npm start`, stopped the ways people stop them. A
 * terminal's Ctrl-C is SIGINT to every process of the foreground group, which is what
 * `process.kill(-pid, 'SIGINT')` sends to a detached child.
 */
import { Accounts } from '../../src/auth/accounts.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import WebSocket from 'ws';
import { openStore } from '../../src/store/index.js';
import {
  builtCli,
  freePort,
  startGatewayProcess,
  startRedisServer,
  stopProcess,
} from '../helpers/processes.js';
import { eventually } from '../helpers/eventually.js';
import { serviceSuiteOptions } from '../helpers/services.js';
import type { GatewayProcess, GatewayProcessOptions } from '../helpers/processes.js';

const GOING_AWAY = { code: 1001, reason: 'going away' };
/** Generous: `npm start` and a gateway start on a machine shared with other suites. */
const TIMEOUT = { timeout: 30_000 };

let dir: string;
let env: Record<string, string>;
let token: string;
let running: GatewayProcess | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-lifecycle-'));
  const databaseUrl = `sqlite:${join(dir, 'gateway.db')}`;
  const store = openStore(databaseUrl);
  try {
    await store.migrate();
    const accounts = new Accounts(store);
    const user = await accounts.createUser({ username: 'zed' });
    token = (await accounts.createToken(user.id)).token;
  } finally {
    await store.close();
  }
  env = { DATABASE_URL: databaseUrl };
});

afterEach(async () => {
  if (running !== undefined) {
    const { child } = running;
    running = undefined;
    if (child.pid !== undefined && groupAlive(child.pid)) process.kill(-child.pid, 'SIGKILL');
    await stopProcess(child);
  }
  await rm(dir, { recursive: true, force: true });
});

async function start(options: GatewayProcessOptions): Promise<GatewayProcess> {
  running = await startGatewayProcess(env, { detached: true, ...options });
  return running;
}

function openSocket(url: string): Promise<WebSocket> {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/ws/chat/`, {
    headers: { Authorization: `Token ${token}` },
  });
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

async function closeOf(socket: WebSocket): Promise<{ code: number; reason: string }> {
  const [code, reason] = (await once(socket, 'close')) as [number, Buffer];
  return { code, reason: reason.toString() };
}

/** Whether any process of the group led by `pgid` is still there. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/**
 * Opens sockets, one of which stops reading so that it holds the shutdown open, sends
 * the first signal, waits until every reading socket got 1001, then sends the others:
 * they arrive while the gateway is still shutting down, and must not cut it short.
 */
async function stopWhileHeldOpen(
  gateway: GatewayProcess,
  signals: readonly NodeJS.Signals[],
  send: (signal: NodeJS.Signals) => void,
): Promise<void> {
  const sockets = await Promise.all(Array.from({ length: 10 }, () => openSocket(gateway.url)));
  const held = await openSocket(gateway.url);
  held.pause();
  const closes = sockets.map(closeOf);
  const heldClose = closeOf(held);
  const exit = once(gateway.child, 'exit');
  const [first, ...more] = signals;
  assert.ok(first !== undefined);
  send(first);
  for (const close of await Promise.all(closes)) assert.deepEqual(close, GOING_AWAY);
  for (const signal of more) send(signal);
  await delay(300);
  assert.equal(gateway.child.exitCode, null, 'the gateway left before its last socket closed');
  assert.equal(gateway.child.signalCode, null, 'a signal during the shutdown killed it');
  held.resume();
  assert.deepEqual(await heldClose, GOING_AWAY);
  const [code, signal] = (await exit) as [number | null, NodeJS.Signals | null];
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, gateway.lines.join('\n'));
}

describe('signals', { skip: !builtCli() && 'run npm run build first' }, () => {
  describe('portcullis serve', () => {
    const cases: readonly (readonly NodeJS.Signals[])[] = [
      ['SIGTERM'],
      ['SIGINT'],
      ['SIGINT', 'SIGINT'],
      ['SIGTERM', 'SIGINT'],
    ];
    for (const signals of cases) {
      it(
        `${signals.join(' then ')}: every socket gets 1001 going away, exit 0`,
        TIMEOUT,
        async () => {
          const gateway = await start({});
          const pid = gateway.child.pid!;
          await stopWhileHeldOpen(gateway, signals, (signal) => process.kill(pid, signal));
        },
      );
    }
  });

  describe('npm start', () => {
    it(
      'Ctrl-C (SIGINT to the process group): every socket gets 1001, exit 0',
      TIMEOUT,
      async () => {
        const gateway = await start({ command: ['npm', 'start'] });
        const pgid = gateway.child.pid!;
        await stopWhileHeldOpen(gateway, ['SIGINT'], (signal) => process.kill(-pgid, signal));
        assert.equal(groupAlive(pgid), false, 'a process of npm start outlived it');
      },
    );

    it('Ctrl-C twice: the second does not cut the shutdown short', TIMEOUT, async () => {
      const gateway = await start({ command: ['npm', 'start'] });
      const pgid = gateway.child.pid!;
      await stopWhileHeldOpen(gateway, ['SIGINT', 'SIGINT'], (signal) =>
        process.kill(-pgid, signal),
      );
      assert.equal(groupAlive(pgid), false, 'a process of npm start outlived it');
    });

    it(
      'SIGTERM to npm alone (a process manager, docker stop) reaches the gateway',
      TIMEOUT,
      async () => {
        const gateway = await start({ command: ['npm', 'start'] });
        const pid = gateway.child.pid!;
        await stopWhileHeldOpen(gateway, ['SIGTERM'], (signal) => process.kill(pid, signal));
        assert.equal(groupAlive(pid), false, 'the gateway outlived npm');
      },
    );
  });
});

/** The pids of the workers that said they listen, in order. */
function listeningPids(gateway: GatewayProcess): number[] {
  const pids: number[] = [];
  for (const line of gateway.lines) {
    if (!line.includes('portcullis gateway listening')) continue;
    const { pid } = JSON.parse(line) as { pid: number };
    pids.push(pid);
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe(
  'portcullis serve --workers',
  // redis-server is only there to be started on a port of the test's own.
  { skip: (!builtCli() && 'run npm run build first') || (await serviceSuiteOptions('redis')).skip },
  () => {
    /** `serve --workers 2` over a Redis of the test's own, once both workers listen. */
    async function startWorkers(t: TestContext): Promise<GatewayProcess> {
      const redisPort = await freePort();
      const redis = await startRedisServer(redisPort);
      t.after(() => stopProcess(redis));
      env = { ...env, REDIS_URL: `redis://127.0.0.1:${redisPort}` };
      const gateway = await start({
        command: [process.execPath, 'bin/portcullis.js', 'serve', '--workers', '2'],
      });
      await eventually(() => listeningPids(gateway).length === 2, 15_000, 'two workers listening');
      return gateway;
    }

    it('replaces a worker killed with SIGKILL, and the replacements serve', TIMEOUT, async (t) => {
      const gateway = await startWorkers(t);
      const workers = (): number[] => listeningPids(gateway);
      const [first, second] = workers() as [number, number];

      process.kill(first, 'SIGKILL');
      await eventually(() => workers().length === 3, 15_000, 'a replacement listening');
      assert.ok(
        gateway.lines.some((line) =>
          /^portcullis: worker \d+ \(pid \d+\) exited \(SIGKILL\); starting another$/.test(line),
        ),
        gateway.lines.join('\n'),
      );
      process.kill(second, 'SIGKILL');
      await eventually(() => workers().length === 4, 15_000, 'a second replacement listening');
      assert.deepEqual([alive(first), alive(second)], [false, false]);

      // Only replacements are left to take these.
      const socket = await openSocket(gateway.url);
      const me = await fetch(`${gateway.url}/api/me`, {
        headers: { Authorization: `Token ${token}` },
      });
      assert.equal(me.status, 200);
      assert.equal(((await me.json()) as { username: string }).username, 'zed');

      const closed = closeOf(socket);
      const exit = once(gateway.child, 'exit');
      process.kill(gateway.child.pid!, 'SIGTERM');
      assert.deepEqual(await closed, GOING_AWAY);
      assert.deepEqual(await exit, [0, null], gateway.lines.join('\n'));
    });

    it(
      'stops with status 1 after 5 replacements within a minute',
      { timeout: 60_000 },
      async (t) => {
        const gateway = await startWorkers(t);
        const exit = once(gateway.child, 'exit');
        for (let killed = 0; killed < 6; killed += 1) {
          const newest = listeningPids(gateway).at(-1)!;
          process.kill(newest, 'SIGKILL');
          if (killed < 5) {
            await eventually(
              () => listeningPids(gateway).length === 3 + killed,
              15_000,
              'a replacement',
            );
          }
        }
        assert.deepEqual(await exit, [1, null]);
        const said = gateway.lines.filter((line) => line.startsWith('portcullis: '));
        assert.equal(said.length, 6, said.join('\n'));
        assert.match(
          said[5]!,
          /exited \(SIGKILL\) after 5 restarts within 60 s; stopping the others$/,
        );
      },
    );
  },
);

describe('two gateways started at once', { skip: !builtCli() && 'run npm run build first' }, () => {
  const demo: [string, ...string[]] = [process.execPath, 'bin/portcullis.js', 'serve', '--demo'];
  let started: GatewayProcess[] = [];

  beforeEach(() => {
    // A database of its own that nobody has seeded or migrated yet.
    env = { DATABASE_URL: `sqlite:${join(dir, 'new.db')}` };
    started = [];
  });

  afterEach(async () => {
    await Promise.all(started.map((gateway) => stopProcess(gateway.child, 'SIGTERM')));
  });

  /** Starts both at once; the ones that exit instead of listening come back as their output. */
  async function startBoth(ports: readonly [number, number]): Promise<string[]> {
    const results = await Promise.allSettled(
      ports.map((port) => startGatewayProcess(env, { command: demo, port })),
    );
    const failures: string[] = [];
    for (const result of results) {
      if (result.status === 'fulfilled') started.push(result.value);
      else failures.push(String(result.reason));
    }
    return failures;
  }

  it(
    'on one port: the second says the port is in use, never that alice is taken',
    TIMEOUT,
    async () => {
      const port = await freePort();
      const failures = await startBoth([port, port]);
      assert.equal(started.length, 1, failures.join('\n'));
      assert.equal(failures.length, 1);
      assert.match(
        failures[0]!,
        new RegExp(
          `exited with 1:\\nportcullis: port ${port} on 127\\.0\\.0\\.1 is already in use[^\\n]*$`,
        ),
      );
      // The gateway that runs is the one that seeded, so its passwords are the ones shown.
      assert.ok(started[0]!.lines.includes('Demo data created (shown once):'));
    },
  );

  it(
    'on two ports, one new database: both serve, one seeds, the other says how to sign in',
    TIMEOUT,
    async () => {
      const failures = await startBoth([await freePort(), await freePort()]);
      assert.deepEqual(failures, []);
      const lines = started.flatMap((gateway) => gateway.lines);
      assert.equal(lines.filter((line) => line === 'Demo data created (shown once):').length, 1);
      assert.equal(
        lines.filter((line) => line.includes('New one: npx portcullis user password alice')).length,
        1,
        lines.join('\n'),
      );
    },
  );
});
