// Echo server: every frame comes back as it was sent.
// Run: npx tsx examples/echo/server.ts   then connect to ws://127.0.0.1:8001/ws/echo/
import { listen, route, urlRouter, WebsocketConsumer } from '../../src/index.js';
import type { IncomingData } from '../../src/index.js';

class EchoConsumer extends WebsocketConsumer {
  override receive(data: IncomingData): void {
    this.send(data);
  }
}

const app = urlRouter([route('/ws/echo/', EchoConsumer.asApp())]);
const server = await listen(app, { port: Number(process.env['PORT'] ?? 8001) });
console.log(`echo server on ${server.url}/ws/echo/`);
process.once('SIGINT', () => void server.close());
process.once('SIGTERM', () => void server.close());
