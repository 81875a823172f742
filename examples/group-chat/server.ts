// A minimal group chat: every client joins room :room; what one sends, all receive.
// Run: npx tsx examples/group-chat/server.ts   then connect to ws://127.0.0.1:8002/ws/rooms/lobby/
import {
  JsonWebsocketConsumer,
  listen,
  MemoryChannelLayer,
  route,
  urlRouter,
} from '../../src/index.js';
import type { JsonObject } from '../../src/index.js';

class RoomConsumer extends JsonWebsocketConsumer {
  get room(): string {
    return `room.${this.scope.params['room']}`;
  }

  override async connect(): Promise<void> {
    await this.groupAdd(this.room);
    this.accept();
  }

  override async receiveJson(content: JsonObject): Promise<void> {
    if (typeof content['text'] !== 'string') {
      this.sendJson({ error: 'text must be a string' });
      return;
    }
    // `websocket.send` is forwarded to every member as is, encoded once for all of them.
    await this.groupSend(this.room, { type: 'websocket.send', json: { text: content['text'] } });
  }
}

const layer = new MemoryChannelLayer();
const app = urlRouter([
  route('/ws/rooms/:room([A-Za-z0-9_-]{1,50})/', RoomConsumer.asApp({ layer })),
]);
const server = await listen(app, { port: Number(process.env['PORT'] ?? 8002) });
console.log(`group chat on ${server.url}/ws/rooms/<room>/`);
process.once('SIGINT', () => void server.close());
process.once('SIGTERM', () => void server.close());
