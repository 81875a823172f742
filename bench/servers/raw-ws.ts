/**
 * Baseline 1: plain `ws` with no authentication, the practical limit for Node. Echo,
 * and a broadcast to every socket in two variants selected by `?mode=` on the publish:
 *
 * - `send`: `ws.send()` per socket per message, one socket write per delivery;
 * - `coalesced`: the frames of one event-loop turn are encoded once into one buffer,
 *   written once to every socket: the best a hand-written loop can do.
 *
 * With `redisUrl` (the cross-process scenario) publishes and revocations travel over
 * Redis pub/sub, one PUBLISH per message as the Portcullis layer does.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Redis } from 'ioredis';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { bearer, publishedMessages, readJson, respond, runServerChild } from './child.js';
import type { BenchServer } from './child.js';

type Mode = 'send' | 'coalesced';

interface Member {
  readonly ws: WebSocket;
  readonly socket: Duplex;
  /** `?id=` of the connection URL: what a logout closes (there are no credentials here). */
  readonly tag: string | undefined;
}

const CHANNEL = { send: 'portcullis-bench:raw:send', coalesced: 'portcullis-bench:raw:coalesced' };
const REVOKE_CHANNEL = 'portcullis-bench:raw:revoke';

/** An unmasked single-fragment text frame (RFC 6455 §5.2): servers never mask. */
function textFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const length = payload.length;
  const header = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + length);
  frame[0] = 0x81; // FIN, opcode 1 (text)
  if (length < 126) frame[1] = length;
  else if (length < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  payload.copy(frame, header);
  return frame;
}

async function start(options: { redisUrl?: string }): Promise<BenchServer> {
  const members = new Set<Member>();
  const byTag = new Map<string, Set<Member>>();
  let pending: Buffer[] = [];

  const flush = (): void => {
    const frames = pending;
    pending = [];
    const buffer = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    for (const member of members) member.socket.write(buffer);
  };

  const fanOut = (mode: Mode, text: string): void => {
    if (mode === 'send') {
      for (const member of members) member.ws.send(text);
      return;
    }
    if (pending.length === 0) setImmediate(flush);
    pending.push(textFrame(text));
  };

  const revokeLocal = (tag: string): void => {
    for (const member of byTag.get(tag) ?? []) member.ws.close(4401, 'token revoked');
  };

  let publisher: Redis | undefined;
  let subscriber: Redis | undefined;
  if (options.redisUrl !== undefined) {
    publisher = new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    subscriber = publisher.duplicate();
    await Promise.all([publisher.connect(), subscriber.connect()]);
    await subscriber.subscribe(CHANNEL.send, CHANNEL.coalesced, REVOKE_CHANNEL);
    subscriber.on('message', (channel: string, text: string) => {
      if (channel === REVOKE_CHANNEL) revokeLocal(text);
      else fanOut(channel === CHANNEL.coalesced ? 'coalesced' : 'send', text);
    });
  }

  const http = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (request.method === 'POST' && url.pathname === '/publish') {
      const mode: Mode = url.searchParams.get('mode') === 'coalesced' ? 'coalesced' : 'send';
      readJson(request).then(
        async (body) => {
          const messages = publishedMessages(body);
          if (messages === undefined) return respond(response, 400, { message: ['required'] });
          for (const message of messages) {
            const text = JSON.stringify(message);
            if (publisher === undefined) fanOut(mode, text);
            else await publisher.publish(CHANNEL[mode], text);
          }
          respond(response, 202, { published: messages.length });
        },
        () => respond(response, 400),
      );
      return;
    }
    if (request.method === 'POST' && url.pathname === '/logout') {
      request.resume();
      const tag = bearer(request);
      if (tag === undefined) return respond(response, 401);
      if (publisher === undefined) {
        revokeLocal(tag);
        respond(response, 204);
      } else {
        void publisher.publish(REVOKE_CHANNEL, tag).then(() => respond(response, 204));
      }
      return;
    }
    respond(response, 404);
  });

  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    clientTracking: false,
    maxPayload: 64 * 1024,
  });
  http.on('upgrade', (request, socket, head) => {
    socket.on('error', () => socket.destroy());
    const query = request.url?.indexOf('?') ?? -1;
    const tag =
      query === -1
        ? undefined
        : (new URLSearchParams(request.url?.slice(query + 1)).get('id') ?? undefined);
    wss.handleUpgrade(request, socket, head, (ws) => {
      const member: Member = { ws, socket, tag };
      members.add(member);
      if (tag !== undefined) {
        let set = byTag.get(tag);
        if (set === undefined) byTag.set(tag, (set = new Set()));
        set.add(member);
      }
      ws.on('message', (data: Buffer) => {
        let content: unknown;
        try {
          content = JSON.parse(data.toString());
        } catch {
          ws.close(4400, 'invalid json');
          return;
        }
        if (typeof content === 'object' && content !== null && 'echo' in content) {
          ws.send(JSON.stringify({ echo: content.echo }));
        }
      });
      ws.on('error', () => undefined);
      ws.on('close', () => {
        members.delete(member);
        if (tag !== undefined) byTag.get(tag)?.delete(member);
      });
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));

  return {
    ready: {
      name: 'raw-ws',
      port: (http.address() as AddressInfo).port,
      wire: 'ws',
      wsPath: '/',
      publishPath: '/publish',
      publishHeaders: {},
      logoutPath: '/logout',
    },
    async issue(count) {
      return Array.from({ length: count }, () => randomBytes(12).toString('base64url'));
    },
    register() {
      // No credentials: any `?id=` is accepted.
    },
    async close() {
      for (const member of members) member.ws.terminate();
      await new Promise((resolve) => http.close(resolve));
      publisher?.disconnect();
      subscriber?.disconnect();
    },
  };
}

runServerChild(start);
