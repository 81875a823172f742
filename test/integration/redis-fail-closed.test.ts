// Failing closed when Redis is lost (issue 16, defect 6), on a real gateway process and a
// redis-server of the test's own (the machine's shared Redis is never stopped).
//
// Before: about 1 s after Redis was lost new sockets were still accepted, live sockets
// were never told, and with a stalled Redis link a publish took 5 s to answer 503.
// After: from the first failed Redis command (or the dropped connection) new sockets
// close 1013, live ones are closed 1013 `try again later` so their clients resync, the
// publish API answers 503 within the 1.5 s command timeout, and all of it recovers
// when Redis does.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { chat, joinRoom, login, receiveMatching, seedChat } from '../helpers/gateway-clients.js';
import {
  builtCli,
  freePort,
  startGatewayProcess,
  startRedisServer,
  stopProcess,
} from '../helpers/processes.js';
import type { GatewayProcess } from '../helpers/processes.js';
import { hasRedisClusterTools } from '../helpers/redis-cluster.js';
import { isCI } from '../helpers/services.js';

const run = promisify(execFile);
const PUBLISH_API_KEY = 'publish-key-for-tests-0123456789';
const TRY_AGAIN_LATER = { code: 1013, reason: 'try again later' };

const suiteOptions = (() => {
  if (isCI()) return { skip: false as const };
  if (!builtCli()) return { skip: 'run `npm run build` first' };
  if (!hasRedisClusterTools()) return { skip: 'redis-server and redis-cli are not installed' };
  return { skip: false as const };
})();

describe('failing closed when Redis is lost', suiteOptions, () => {
  let dir: string;
  let redisPort: number;
  let redis: ChildProcess | undefined;
  let gateway: GatewayProcess;
  let room: string;

  const publish = (message: unknown) =>
    fetch(`${gateway.url}/api/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${PUBLISH_API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ group: `room.${room}`, message }),
    });
  const readiness = async () => (await fetch(`${gateway.url}/readyz`)).status;

  /** Polls until the gateway is ready again; bounded, as Redis's return is. */
  async function ready(): Promise<void> {
    const deadline = Date.now() + 15_000;
    while ((await readiness()) !== 200) {
      if (Date.now() > deadline) throw new Error('the gateway did not become ready again');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** A socket in the room that gets a publish: everything flows. */
  async function flowing(username: string) {
    const client = await chat(gateway, await login(gateway, username));
    await joinRoom(client, room);
    const response = await publish({ hello: username });
    assert.equal(response.status, 202);
    assert.deepEqual(await receiveMatching(client, (frame) => 'hello' in frame), {
      hello: username,
    });
    return client;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-fail-closed-'));
    const databaseUrl = `sqlite:${join(dir, 'gateway.db')}`;
    room = await seedChat(databaseUrl, ['alice', 'bob', 'carol', 'dave']);
    redisPort = await freePort();
    redis = await startRedisServer(redisPort);
    gateway = await startGatewayProcess({
      DATABASE_URL: databaseUrl,
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      PUBLISH_API_KEY,
    });
  });

  after(async () => {
    if (gateway !== undefined) await stopProcess(gateway.child, 'SIGTERM');
    if (redis !== undefined) await stopProcess(redis);
    rmSync(dir, { recursive: true, force: true });
  });

  it('closes live sockets 1013 and refuses new ones once Redis is gone, then recovers', async () => {
    const alice = await flowing('alice');
    await stopProcess(redis!);
    redis = undefined;
    // Told at once: the dropped connection is the first failure.
    assert.deepEqual(await alice.waitForClose(5_000), TRY_AGAIN_LATER);
    const refused = await chat(gateway, await login(gateway, 'bob'));
    assert.deepEqual(await refused.waitForClose(5_000), TRY_AGAIN_LATER);
    assert.equal((await publish({ lost: true })).status, 503);
    assert.equal(await readiness(), 503);

    redis = await startRedisServer(redisPort);
    await ready();
    await (await flowing('bob')).close();
  });

  it('answers a publish 503 within 2 s on a stalled link, closes live sockets, then recovers', async () => {
    const carol = await flowing('carol');
    // Every client of this Redis waits, PING included, as on a link that stalled.
    await run('redis-cli', ['-p', String(redisPort), 'client', 'pause', '4000', 'all']);
    const started = Date.now();
    const response = await publish({ stalled: true });
    const took = Date.now() - started;
    assert.equal(response.status, 503);
    assert.ok(took < 2_000, `the publish took ${took} ms`);
    assert.deepEqual(await carol.waitForClose(5_000), TRY_AGAIN_LATER);
    // Refused at once while down, not after another command timeout.
    const refused = await chat(gateway, await login(gateway, 'dave'));
    assert.deepEqual(await refused.waitForClose(1_000), TRY_AGAIN_LATER);

    await ready();
    await (await flowing('dave')).close();
  });
});
