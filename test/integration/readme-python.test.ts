/**
 * The README's Python example, run as written against a real gateway with the
 * `websockets` library Debian ships (python3-websockets, 10.x), so that the README stays
 * true for the version most servers have.
 */
import { Accounts } from '../../src/auth/accounts.js';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../../src/store/index.js';
import { builtCli, startGatewayProcess, stopProcess } from '../helpers/processes.js';
import type { GatewayProcess } from '../helpers/processes.js';
import { isCI } from '../helpers/services.js';

// Debian's interpreter, which has its python3-websockets; another python3 may come first on PATH.
const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

function websocketsVersion(): string | undefined {
  const probe = spawnSync(python, ['-c', 'import websockets; print(websockets.__version__)'], {
    encoding: 'utf8',
  });
  return probe.status === 0 ? probe.stdout.trim() : undefined;
}

/** The code block under the README's "From Python" heading. */
function readmeExample(): string {
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.split('\n### From Python\n')[1];
  const code = section?.split('```python\n')[1]?.split('\n```')[0];
  assert.ok(code !== undefined, 'README.md has no python block under "From Python"');
  return code;
}

const version = websocketsVersion();
const skip =
  (!builtCli() && 'run npm run build first') ||
  (version === undefined &&
    !isCI() &&
    `${python} cannot import websockets (apt-get install python3-websockets)`);

describe('README: the Python example', { skip }, () => {
  let dir: string;
  let gateway: GatewayProcess;
  let token: string;

  before(async () => {
    assert.ok(version !== undefined, `${python} cannot import websockets; CI=true requires it`);
    dir = await mkdtemp(join(tmpdir(), 'portcullis-python-'));
    const databaseUrl = `sqlite:${join(dir, 'gateway.db')}`;
    const store = openStore(databaseUrl);
    try {
      await store.migrate();
      assert.equal(await store.createRoom({ title: 'Lobby' }), '1');
      const accounts = new Accounts(store);
      const carol = await accounts.createUser({ username: 'carol' });
      token = (await accounts.createToken(carol.id)).token;
    } finally {
      await store.close();
    }
    gateway = await startGatewayProcess({ DATABASE_URL: databaseUrl });
  });

  after(async () => {
    if (gateway !== undefined) await stopProcess(gateway.child, 'SIGTERM');
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it(`joins a room and chats with websockets ${version ?? ''}`, () => {
    const url = gateway.url.replace(/^http/, 'ws');
    const run = spawnSync(python, ['-', url, token], {
      input: readmeExample(),
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.stdout.trim().split('\n'), [
      "{'join': '1', 'title': 'Lobby'}",
      "{'msg_type': 0, 'room': '1', 'username': 'carol', 'message': 'hello'}",
    ]);
  });
});
