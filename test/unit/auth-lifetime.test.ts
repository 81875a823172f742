// Credential lifetime on a live connection: expiry closes 4401 `token expired` unless a
// fresh credential arrives in-band. The clock is faked, never slept on.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { pino } from 'pino';
import type { Application, Connection } from '../../src/application.js';
import { customAuthenticator } from '../../src/auth/authenticators/custom.js';
import { WebsocketConsumer } from '../../src/consumer/consumer.js';
import { MemoryChannelLayer } from '../../src/layers/memory.js';
import { authMiddleware } from '../../src/middleware/auth.js';
import type { AuthMiddleware } from '../../src/middleware/auth.js';
import { WebsocketCommunicator } from '../../src/testing/communicator.js';

const silent = pino({ level: 'silent' });

class Echo extends WebsocketConsumer {
  override receive(data: string | Uint8Array): void {
    this.send(data);
  }
}

describe('credential lifetime', () => {
  let clock = 1_000_000;
  let auth: AuthMiddleware;
  // Tokens name their user and lifetime: "<user>:<ms to live>".
  const authenticator = customAuthenticator('test', async (credential) => {
    const [user, ttl] = credential.split(':');
    if (user === undefined || ttl === undefined) return undefined;
    return {
      user: { id: user, username: user, isStaff: false, isAnonymous: false },
      credentialId: credential,
      expiresAt: new Date(clock + Number(ttl)),
    };
  });

  beforeEach(() => {
    clock = 1_000_000;
    mock.timers.enable({ apis: ['setInterval'] });
    auth = authMiddleware({
      authenticators: [authenticator],
      layer: new MemoryChannelLayer(),
      logger: silent,
      now: () => clock,
    });
  });
  afterEach(async () => {
    await auth.close();
    mock.timers.reset();
  });

  const connect = async (token: string): Promise<WebsocketCommunicator> => {
    const communicator = new WebsocketCommunicator(auth(Echo.asApp()), '/', {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.deepEqual(await communicator.connect(), { accepted: true, subprotocol: null });
    return communicator;
  };
  const advance = (ms: number): void => {
    clock += ms;
    mock.timers.tick(ms);
  };

  /** Sends `ann:60000` in-band to a socket whose credential lives 5 s, then passes 10 s. */
  const refreshInBandPastExpiry = async (communicator: WebsocketCommunicator): Promise<void> => {
    communicator.sendJson({ type: 'auth', token: 'ann:60000' });
    // The auth frame never reaches the app.
    communicator.sendText('after refresh');
    assert.equal(await communicator.receiveText(), 'after refresh');
    // The refresh is verified asynchronously; let it finish before time moves on.
    await new Promise((resolve) => setImmediate(resolve));
    advance(10_000);
    communicator.sendText('past the first expiry');
    assert.equal(await communicator.receiveText(), 'past the first expiry');
  };

  it('closes 4401 token expired at the expiry, not before', async () => {
    const communicator = await connect('ann:5000');
    advance(4_000);
    communicator.sendText('still open');
    assert.equal(await communicator.receiveText(), 'still open');
    advance(2_000);
    assert.deepEqual(await communicator.waitForClose(), { code: 4401, reason: 'token expired' });
  });

  it('keeps the connection open when a fresh credential arrives in-band first', async () => {
    const communicator = await connect('ann:5000');
    advance(3_000);
    await refreshInBandPastExpiry(communicator);
    advance(60_000);
    assert.deepEqual(await communicator.waitForClose(), { code: 4401, reason: 'token expired' });
  });

  it('refuses an in-band credential naming another user', async () => {
    const communicator = await connect('ann:5000');
    communicator.sendJson({ type: 'auth', token: 'bob:60000' });
    assert.deepEqual(await communicator.waitForClose(), {
      code: 4401,
      reason: 'invalid credentials',
    });
  });

  it('refreshes in-band and leaves its indexes behind a middleware that wraps the connection', async () => {
    // A wrapper is not a BaseConnection, so auth cannot guard it: the fallback path runs.
    const wrapping =
      (inner: Application): Application =>
      (scope, connection) =>
        inner(scope, {
          get id() {
            return connection.id;
          },
          get state() {
            return connection.state;
          },
          get subprotocol() {
            return connection.subprotocol;
          },
          accept: (options) => connection.accept(options),
          reject: (status, headers) => connection.reject(status, headers),
          send: (data) => connection.send(data),
          close: (code, reason) => connection.close(code, reason),
          onMessage: (listener) => connection.onMessage(listener),
          onClose: (listener) => connection.onClose(listener),
        } satisfies Connection);
    const communicator = new WebsocketCommunicator(wrapping(auth(Echo.asApp())), '/', {
      headers: { authorization: 'Bearer ann:5000' },
    });
    assert.deepEqual(await communicator.connect(), { accepted: true, subprotocol: null });
    assert.equal(auth.size, 1);
    await refreshInBandPastExpiry(communicator);
    await communicator.disconnect();
    assert.equal(auth.size, 0);
  });

  it('closes sockets of a revoked credential or user, and counts live sessions', async () => {
    const first = await connect('ann:50000');
    const second = await connect('bob:50000');
    const third = await connect('bob:40000');
    assert.equal(auth.size, 3);
    await auth.revokeCredential('ann:50000');
    assert.deepEqual(await first.waitForClose(), { code: 4401, reason: 'token revoked' });
    await auth.revokeUser({ source: 'test', id: 'bob' });
    assert.deepEqual(await second.waitForClose(), { code: 4401, reason: 'token revoked' });
    assert.deepEqual(await third.waitForClose(), { code: 4401, reason: 'token revoked' });
    assert.equal(auth.size, 0);
  });
});
