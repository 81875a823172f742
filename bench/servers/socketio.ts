/**
 * Baseline 2: Socket.IO v4, WebSocket transport only, with the equivalent of Portcullis's
 * token authentication (a middleware looking the `auth.token` up in a Map) and rooms:
 * every socket joins `bench` and a room named after its token, so a logout closes the
 * token's sockets. With `redisUrl`, the official Redis adapter carries both across
 * processes.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { bearer, publishedMessages, readJson, respond, runServerChild } from './child.js';
import type { BenchServer } from './child.js';
import { BENCH_GROUP } from './protocol.js';

interface ClientToServer {
  echo: (value: unknown) => void;
}
interface ServerToClient {
  echo: (value: unknown) => void;
  message: (value: unknown) => void;
}
interface SocketData {
  token: string;
}

const tokenRoom = (token: string): string => `token:${token}`;

async function start(options: { redisUrl?: string }): Promise<BenchServer> {
  /** Valid tokens → user id: what a token store lookup returns, held in memory. */
  const tokens = new Map<string, string>();

  const http = createServer();
  const io = new Server<ClientToServer, ServerToClient, Record<string, never>, SocketData>(http, {
    transports: ['websocket'],
    serveClient: false,
    perMessageDeflate: false,
    httpCompression: false,
    // The same 64 KiB message limit as the other two servers.
    maxHttpBufferSize: 64 * 1024,
  });

  let publisher: Redis | undefined;
  let subscriber: Redis | undefined;
  if (options.redisUrl !== undefined) {
    publisher = new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    subscriber = publisher.duplicate();
    await Promise.all([publisher.connect(), subscriber.connect()]);
    io.adapter(createAdapter(publisher, subscriber, { key: 'portcullis-bench:sio' }));
  }

  io.use((socket, next) => {
    const token: unknown = socket.handshake.auth['token'];
    if (typeof token !== 'string' || !tokens.has(token)) {
      next(new Error('invalid credentials'));
      return;
    }
    socket.data.token = token;
    next();
  });
  io.on('connection', (socket) => {
    void socket.join([BENCH_GROUP, tokenRoom(socket.data.token)]);
    socket.on('echo', (value) => socket.emit('echo', value));
  });

  // Engine.io claims `/socket.io/`; every other path reaches these listeners.
  http.on('request', (request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (url.pathname.startsWith('/socket.io/')) return;
    if (request.method === 'POST' && url.pathname === '/publish') {
      readJson(request).then(
        (body) => {
          const messages = publishedMessages(body);
          if (messages === undefined) return respond(response, 400, { message: ['required'] });
          for (const message of messages) io.to(BENCH_GROUP).emit('message', message);
          respond(response, 202, { published: messages.length });
        },
        () => respond(response, 400),
      );
      return;
    }
    if (request.method === 'POST' && url.pathname === '/logout') {
      request.resume();
      const token = bearer(request);
      if (token === undefined || !tokens.delete(token)) return respond(response, 401);
      io.in(tokenRoom(token)).disconnectSockets(true);
      respond(response, 204);
      return;
    }
    respond(response, 404);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));

  return {
    ready: {
      name: 'socketio',
      port: (http.address() as AddressInfo).port,
      wire: 'socketio',
      wsPath: '/socket.io/?EIO=4&transport=websocket',
      publishPath: '/publish',
      publishHeaders: {},
      logoutPath: '/logout',
    },
    async issue(count) {
      const issued = Array.from({ length: count }, () => randomBytes(24).toString('base64url'));
      for (const token of issued) tokens.set(token, 'bench');
      return issued;
    },
    register(shared) {
      for (const token of shared) tokens.set(token, 'bench');
    },
    async close() {
      io.disconnectSockets(true);
      await new Promise((resolve) => {
        void io.close(resolve);
      });
      publisher?.disconnect();
      subscriber?.disconnect();
    },
  };
}

runServerChild(start);
