// Issue 12 limits on real sockets: a per-connection message rate (4429 `too many
// requests`, other connections unaffected) and failed authentications per address.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Accounts } from '../../src/auth/accounts.js';
import { tokenAuthenticator } from '../../src/auth/authenticators/token.js';
import { authMiddleware } from '../../src/middleware/auth.js';
import type { AuthMiddleware } from '../../src/middleware/auth.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/store.js';
import { connectClient } from '../../src/testing/client.js';
import { listen } from '../../src/transport/ws.js';
import type { RunningServer } from '../../src/transport/ws.js';

const logger = pino({ level: 'silent' });

describe('message rate per connection', () => {
  let store: Store;
  let auth: AuthMiddleware;
  let server: RunningServer;
  let token: string;

  before(async () => {
    store = openStore('sqlite::memory:');
    await store.migrate();
    const accounts = new Accounts(store);
    const user = await accounts.createUser({ username: 'alice' });
    token = (await accounts.createToken(user.id)).token;
    auth = authMiddleware({
      authenticators: [tokenAuthenticator({ store })],
      requireAuthentication: true,
      messageRate: { perSecond: 10, burst: 20 },
      maxFailures: 3,
      logger,
    });
    // An echo app: every frame that passes the limit comes back.
    server = await listen(
      auth(async (_scope, connection) => {
        connection.accept();
        connection.onMessage((data) => connection.send(data));
      }),
      { logger },
    );
  });

  after(async () => {
    await server.close();
    await auth.close();
    await store.close();
  });

  const open = () =>
    connectClient(`${server.url}/`, { headers: { Authorization: `Token ${token}` } });

  it('closes a flooding connection 4429 and leaves the others alone', async () => {
    const flooding = await open();
    const calm = await open();
    for (let index = 0; index < 100; index += 1) flooding.send(`m${index}`);
    assert.deepEqual(await flooding.waitForClose(), { code: 4429, reason: 'too many requests' });
    calm.send('still here');
    assert.equal(await calm.receive(), 'still here');
    await calm.close();
  });

  it('lets a burst within the limit through, in order', async () => {
    const client = await open();
    for (let index = 0; index < 20; index += 1) client.send(`m${index}`);
    for (let index = 0; index < 20; index += 1) assert.equal(await client.receive(), `m${index}`);
    await client.close();
  });

  it('refuses an address past its failed authentications (4429)', async () => {
    for (let index = 0; index < 3; index += 1) {
      const bad = await connectClient(`${server.url}/`, {
        headers: { Authorization: 'Token pcu_wrong' },
      });
      assert.deepEqual(await bad.waitForClose(), { code: 4401, reason: 'invalid credentials' });
    }
    const refused = await open();
    assert.deepEqual(await refused.waitForClose(), { code: 4429, reason: 'too many requests' });
  });
});
