// Type-level API test (run by `npm run typecheck`, never executed): the README's
// quickstart and the public entry points must keep compiling as users write them.
import { createServer } from 'node:http';
import {
  attachWebSocket,
  authMiddleware,
  CloseCode,
  CloseReason,
  JsonWebsocketConsumer,
  MemoryChannelLayer,
  PortcullisError,
  route,
  ticketAuthenticator,
  tokenAuthenticator,
  urlRouter,
} from '../../src/index.js';
import type { Application, JsonObject, LayerMessage, Scope } from '../../src/index.js';
import { openStore } from '../../src/store/index.js';
import { createClient, ticketCredential, UnauthorizedError } from '../../src/client/index.js';
import { WebsocketCommunicator } from '../../src/testing/index.js';

class Chat extends JsonWebsocketConsumer {
  override readonly groups = ['lobby'];

  override connect(): void {
    if (this.scope.user.isAnonymous) {
      return this.close(CloseCode.Unauthorized, CloseReason.AuthenticationRequired);
    }
    this.accept();
  }

  override async receiveJson(content: JsonObject): Promise<void> {
    await this.groupSend('lobby', {
      type: 'websocket.send',
      json: { from: this.scope.user.username, text: String(content['text']) },
    });
  }

  onChatNotice(message: LayerMessage): void {
    this.sendJson({ notice: message['text'] });
  }
}

export async function quickstart(): Promise<void> {
  const store = openStore('sqlite::memory:');
  await store.migrate();
  const layer = new MemoryChannelLayer();
  const auth = authMiddleware({
    authenticators: [tokenAuthenticator({ store }), ticketAuthenticator({ store })],
    allowedOrigins: ['https://app.example.com'],
    layer,
  });
  const app: Application = auth(urlRouter([route('/ws/chat/', Chat.asApp({ layer }))]));
  const server = createServer();
  attachWebSocket(server, app);
  await auth.revokeCredential('42');

  const communicator = new WebsocketCommunicator(app, '/ws/chat/');
  const result = await communicator.connect();
  // The connect result is a discriminated union.
  if (!result.accepted) {
    const code: number | undefined = result.closeCode;
    void code;
  }
}

export function errorCodesNarrow(error: unknown): string {
  if (!(error instanceof PortcullisError)) return 'other';
  switch (error.code) {
    case 'ERR_TOKEN_EXPIRED':
      return 'refresh';
    case 'ERR_SERVICE_UNAVAILABLE':
      return 'retry';
    default:
      return error.code;
  }
}

export function client(): void {
  const connection = createClient({
    url: 'wss://example.com/ws/chat/',
    credential: ticketCredential({
      fetchTicket: async () => {
        throw new UnauthorizedError('log in again');
      },
    }),
  });
  connection.on('message', (message) => {
    const scopeLike: Partial<Scope> = {};
    void scopeLike;
    void message;
  });
}

// @ts-expect-error -- scopes are read-only: middleware copies them instead of mutating.
export const mutate = (scope: Scope): void => void (scope.path = '/');
