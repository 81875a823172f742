// Issue 12: a token revoked from the CLI, or a user deactivated, while `serve` runs on the
// same database closes its sockets within 5 s with no Redis: the gateway re-reads its
// live sessions' tokens. Real processes: `portcullis serve` and `portcullis token revoke`.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Accounts } from '../../src/auth/accounts.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/store.js';
import { connectClient } from '../../src/testing/client.js';
import { builtCli, startGatewayProcess, stopProcess } from '../helpers/processes.js';
import type { GatewayProcess } from '../helpers/processes.js';
import { isCI } from '../helpers/services.js';

const run = promisify(execFile);

describe(
  'revocation without Redis (issue 12)',
  !builtCli() && !isCI() ? { skip: 'run `npm run build` first' } : {},
  () => {
    let directory: string;
    let databaseUrl: string;
    let gateway: GatewayProcess;
    let store: Store;
    let accounts: Accounts;

    before(async () => {
      directory = mkdtempSync(join(tmpdir(), 'portcullis-recheck-'));
      databaseUrl = `sqlite:${join(directory, 'gateway.db')}`;
      gateway = await startGatewayProcess({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'info' });
      store = openStore(databaseUrl);
      accounts = new Accounts(store);
    });

    after(async () => {
      await stopProcess(gateway.child, 'SIGTERM');
      await store.close();
      rmSync(directory, { recursive: true, force: true });
    });

    async function joinedSocket(token: string) {
      const client = await connectClient(`${gateway.url.replace('http', 'ws')}/ws/chat/`, {
        headers: { Authorization: `Token ${token}` },
      });
      // A round trip: the session is live on the gateway before anything is revoked.
      client.sendJson({ command: 'leave', room: 1 });
      await client.receiveJson();
      return client;
    }

    it('closes the sockets of a token revoked with the CLI (4401 token revoked)', async () => {
      const user = await accounts.createUser({ username: 'alice' });
      const revoked = await accounts.createToken(user.id);
      const kept = await accounts.createToken(user.id);
      const doomed = await joinedSocket(revoked.token);
      const other = await joinedSocket(kept.token);
      const cli = await run(
        process.execPath,
        ['bin/portcullis.js', 'token', 'revoke', revoked.id],
        {
          env: { ...process.env, DATABASE_URL: databaseUrl },
        },
      );
      assert.equal(cli.stdout, 'revoked 1 token\n');
      // The interval is 5 s; the bound allows for a loaded machine.
      assert.deepEqual(await doomed.waitForClose(8_000), { code: 4401, reason: 'token revoked' });
      other.sendJson({ command: 'leave', room: 1 });
      assert.ok(await other.receiveJson());
      await other.close();
    });

    it('closes the sockets of a user deactivated in the database', async () => {
      const user = await accounts.createUser({ username: 'bob' });
      const { token } = await accounts.createToken(user.id);
      const client = await joinedSocket(token);
      assert.equal(await store.setUserActive(user.id, false), true);
      assert.deepEqual(await client.waitForClose(8_000), { code: 4401, reason: 'token revoked' });
    });
  },
);
