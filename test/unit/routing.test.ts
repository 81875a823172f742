import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Application } from '../../src/application.js';
import { stack, wrapApplication } from '../../src/application.js';
import { ANONYMOUS_USER } from '../../src/auth/user.js';
import { WebsocketConsumer } from '../../src/consumer/consumer.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import { connectionLimits } from '../../src/middleware/limits.js';
import { originCheck } from '../../src/middleware/origin.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { protocolRouter } from '../../src/routing/protocol-router.js';
import { route, urlRouter } from '../../src/routing/url-router.js';
import { WebsocketCommunicator } from '../../src/testing/communicator.js';

class ParamsEcho extends WebsocketConsumer {
  override connect(): void {
    this.accept();
    this.send(JSON.stringify({ params: this.scope.params, protocol: this.scope.protocol ?? null }));
  }
}

async function paramsOf(app: Application, path: string): Promise<unknown> {
  const communicator = new WebsocketCommunicator(app, path);
  const result = await communicator.connect();
  assert.equal(result.accepted, true, JSON.stringify(result));
  return ((await communicator.receiveJson()) as { params: unknown }).params;
}

describe('urlRouter', () => {
  const app = urlRouter([
    route('/ws/chat/', ParamsEcho.asApp()),
    route('/ws/app_:id(\\d+)/', ParamsEcho.asApp()),
    route('/ws/rooms/:room/', ParamsEcho.asApp()),
    route(
      '/ws/nested/:tenant/',
      urlRouter([route('/items/:item/', ParamsEcho.asApp()), route('/', ParamsEcho.asApp())]),
    ),
  ]);

  it('matches exact paths', async () => {
    assert.deepEqual(await paramsOf(app, '/ws/chat/'), {});
  });

  it('collects parameters, percent-decoded', async () => {
    assert.deepEqual(await paramsOf(app, '/ws/app_1234/'), { id: '1234' });
    assert.deepEqual(await paramsOf(app, '/ws/rooms/caf%C3%A9/?x=1'), { room: 'café' });
  });

  it('routes nested routers and merges their parameters', async () => {
    assert.deepEqual(await paramsOf(app, '/ws/nested/acme/items/7/'), {
      tenant: 'acme',
      item: '7',
    });
    assert.deepEqual(await paramsOf(app, '/ws/nested/acme/'), { tenant: 'acme' });
  });

  it('reports unknown paths through match(), so transports refuse them with 404', async () => {
    for (const path of [
      '/ws/chat',
      '/ws/app_abc/',
      '/ws/chat/extra',
      '/ws/nested/acme/other/',
      '/',
    ]) {
      const communicator = new WebsocketCommunicator(app, path);
      assert.deepEqual(await communicator.connect(), { accepted: false, status: 404 }, path);
    }
  });

  it('closes 4403 when the permission hook says no', async () => {
    const guarded = urlRouter([
      route('/ws/app_:id/', ParamsEcho.asApp(), {
        permission: (user, params) => !user.isAnonymous || params['id'] === 'public',
      }),
    ]);
    assert.deepEqual(await new WebsocketCommunicator(guarded, '/ws/app_1234/').connect(), {
      accepted: false,
      closeCode: CloseCode.Forbidden,
      reason: 'forbidden',
    });
    assert.deepEqual(await paramsOf(guarded, '/ws/app_public/'), { id: 'public' });
    const staff = new WebsocketCommunicator(guarded, '/ws/app_1234/', {
      scope: (scope) => ({
        ...scope,
        user: { ...ANONYMOUS_USER, id: '1', username: 'ann', isAnonymous: false },
      }),
    });
    assert.equal((await staff.connect()).accepted, true);
  });

  it('closes 1013 when the permission hook cannot reach its service', async () => {
    const guarded = urlRouter([
      route('/x/', ParamsEcho.asApp(), {
        permission: () => {
          throw new ServiceUnavailableError('database');
        },
      }),
    ]);
    assert.deepEqual(await new WebsocketCommunicator(guarded, '/x/').connect(), {
      accepted: false,
      closeCode: CloseCode.TryAgainLater,
      reason: 'try again later',
    });
  });

  it('rejects bad definitions with TypeErrors', () => {
    assert.throws(() => urlRouter([]), {
      name: 'TypeError',
      message: 'urlRouter needs a non-empty array of routes made with route()',
    });
    assert.throws(() => route('ws/', ParamsEcho.asApp()), {
      name: 'TypeError',
      message: 'A route pattern must be a string starting with "/", got ws/',
    });
  });
});

describe('protocolRouter', () => {
  const app = protocolRouter({ 'chat.v2': ParamsEcho.asApp(), 'chat.v1': ParamsEcho.asApp() });

  it('picks the app for the first offered protocol it knows and selects it', async () => {
    const communicator = new WebsocketCommunicator(app, '/', {
      subprotocols: ['other', 'chat.v1', 'chat.v2'],
    });
    assert.deepEqual(await communicator.connect(), { accepted: true, subprotocol: 'chat.v1' });
    assert.deepEqual(await communicator.receiveJson(), { params: {}, protocol: 'chat.v1' });
  });

  it('refuses clients offering no known protocol, unless there is a fallback', async () => {
    assert.deepEqual(await new WebsocketCommunicator(app, '/').connect(), {
      accepted: false,
      status: 404,
    });
    const withFallback = protocolRouter(
      { 'chat.v2': ParamsEcho.asApp() },
      { fallback: ParamsEcho.asApp() },
    );
    assert.equal((await new WebsocketCommunicator(withFallback, '/').connect()).accepted, true);
  });
});

describe('middleware', () => {
  it('stack() applies middleware outermost first and keeps match()', async () => {
    const order: string[] = [];
    const tag =
      (name: string) =>
      (inner: Application): Application =>
        wrapApplication(inner, (scope, connection) => {
          order.push(name);
          return inner(scope, connection);
        });
    const app = stack(tag('outer'), tag('inner'))(urlRouter([route('/a/', ParamsEcho.asApp())]));
    assert.equal(app.match?.({ ...new WebsocketCommunicator(app, '/b/').scope }), false);
    await new WebsocketCommunicator(app, '/a/').connect();
    assert.deepEqual(order, ['outer', 'inner']);
  });

  it('originCheck closes 4403 for origins off the list and for null', async () => {
    const app = originCheck({ allowedOrigins: ['http://localhost:8000'] })(ParamsEcho.asApp());
    const connect = (origin?: string) =>
      new WebsocketCommunicator(
        app,
        '/',
        origin === undefined ? {} : { headers: { origin } },
      ).connect();
    assert.equal((await connect('http://localhost:8000')).accepted, true);
    assert.equal((await connect()).accepted, true);
    for (const origin of [
      'http://evil.example',
      'null',
      'http://localhost:8001',
      'https://localhost:8000',
    ]) {
      assert.deepEqual(await connect(origin), {
        accepted: false,
        closeCode: CloseCode.Forbidden,
        reason: 'origin not allowed',
      });
    }
  });

  it('originCheck validates its list at construction', () => {
    assert.throws(() => originCheck({ allowedOrigins: ['not a url'] }), {
      name: 'TypeError',
      message: 'Invalid origin in "allowedOrigins": not a url',
    });
  });

  it('connectionLimits closes 4429 over the per-address limit and frees slots on close', async () => {
    const app = connectionLimits({ maxConnectionsPerAddress: 2 })(ParamsEcho.asApp());
    const first = new WebsocketCommunicator(app, '/');
    const second = new WebsocketCommunicator(app, '/');
    assert.equal((await first.connect()).accepted, true);
    assert.equal((await second.connect()).accepted, true);
    assert.deepEqual(await new WebsocketCommunicator(app, '/').connect(), {
      accepted: false,
      closeCode: CloseCode.TooManyRequests,
      reason: 'too many connections',
    });
    await first.disconnect();
    assert.equal((await new WebsocketCommunicator(app, '/').connect()).accepted, true);
  });
});
