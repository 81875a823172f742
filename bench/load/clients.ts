/**
 * Load clients. All three servers are driven by the same `ws` client; for Socket.IO the
 * few Engine.IO v4 / Socket.IO v5 packets the bench needs are framed here (open `0`,
 * ping `2` → pong `3`, CONNECT `40{auth}`, its ack `40` or error `44`, EVENT `42[…]`,
 * DISCONNECT `41`), so no server is measured against a heavier or lighter client.
 *
 * @module
 */
import type { Agent } from 'node:http';
import { WebSocket } from 'ws';
import { postJson } from '../lib/http.js';
import type { CredentialPlan, Target } from './protocol.js';

const CHAR_0 = 0x30;
const CHAR_1 = 0x31;
const CHAR_2 = 0x32;
const CHAR_4 = 0x34;

/** Why a client could not open; the key of the error counts. */
export class OpenError extends Error {
  readonly kind: string;
  constructor(kind: string) {
    super(kind);
    this.kind = kind;
  }
}

/** Called for each data message (plain frames, or Socket.IO EVENT packets). */
export type DataHandler = (socket: BenchSocket, data: Buffer) => void;
/** Called once when the server closes an open client (Socket.IO: DISCONNECT or close). */
export type CloseHandler = (socket: BenchSocket, code: number, reason: string) => void;

/** Shared by every client of a worker: handlers are swapped per phase, not per socket. */
export interface Hooks {
  onData: DataHandler;
  onClose: CloseHandler;
}

export class BenchSocket {
  readonly ws: WebSocket;
  readonly index: number;
  received = 0;
  /** Set when the connection ended, from either side. */
  ended = false;

  constructor(ws: WebSocket, index: number) {
    this.ws = ws;
    this.index = index;
  }

  /** Closes from the client side; resolves once closed, terminating after `timeoutMs`. */
  close(timeoutMs = 2_000): Promise<void> {
    this.ended = true;
    const { ws } = this;
    if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        ws.terminate();
        resolve();
      }, timeoutMs);
      ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      ws.close(1000);
    });
  }
}

/** A credential as sent on the wire. */
interface Presented {
  readonly headers?: Record<string, string>;
  readonly query?: string;
  readonly socketioToken?: string;
}

/** What one client of a plan presents; tickets take a REST round trip first. */
export async function present(
  plan: CredentialPlan,
  index: number,
  target: Target,
  localAddress: string,
  agent: Agent,
): Promise<Presented> {
  if (plan.kind === 'none') return {};
  const token = plan.tokens[index % plan.tokens.length];
  if (token === undefined) throw new OpenError('no-credential');
  switch (plan.kind) {
    case 'header':
      return { headers: { authorization: `${plan.scheme} ${token}` } };
    case 'socketio':
      return { socketioToken: token };
    case 'tag':
      return { query: `id=${encodeURIComponent(token)}` };
    case 'ticket': {
      const result = await postJson(`${target.httpBase}/api/auth/ticket`, undefined, {
        headers: { authorization: `Token ${token}` },
        agent,
        localAddress,
      }).catch(() => undefined);
      if (result === undefined) throw new OpenError('ticket-error');
      if (result.status !== 200) throw new OpenError(`ticket-http-${result.status}`);
      const { ticket } = JSON.parse(result.body) as { ticket: string };
      return { query: `ticket=${encodeURIComponent(ticket)}` };
    }
  }
}

/**
 * Opens one client and resolves once it is authenticated and usable: the WebSocket is
 * open (Portcullis authenticates before it accepts), or Socket.IO acknowledged CONNECT.
 */
export function openSocket(
  target: Target,
  presented: Presented,
  index: number,
  localAddress: string,
  timeoutMs: number,
  hooks: Hooks,
): Promise<BenchSocket> {
  let url = target.url;
  if (presented.query !== undefined) url += `${url.includes('?') ? '&' : '?'}${presented.query}`;
  const ws = new WebSocket(url, {
    headers: presented.headers ?? {},
    localAddress,
    perMessageDeflate: false,
    // The load generator trusts the server's UTF-8: validating it is client CPU taken
    // from the server on a 2-core machine.
    skipUTF8Validation: true,
    handshakeTimeout: timeoutMs,
  });
  const socket = new BenchSocket(ws, index);
  const socketio = target.wire === 'socketio';
  return new Promise((resolve, reject) => {
    let opening = true;
    const timer = setTimeout(() => fail('timeout'), timeoutMs);
    function fail(kind: string): void {
      if (!opening) return;
      opening = false;
      clearTimeout(timer);
      socket.ended = true;
      ws.terminate();
      reject(new OpenError(kind));
    }
    function succeed(): void {
      if (!opening) return;
      opening = false;
      clearTimeout(timer);
      resolve(socket);
    }
    function serverClosed(code: number, reason: string): void {
      if (socket.ended) return;
      socket.ended = true;
      hooks.onClose(socket, code, reason);
    }
    ws.on('unexpected-response', (_request, response) => {
      response.resume();
      fail(`http-${response.statusCode ?? 0}`);
    });
    ws.on('error', (error: Error & { code?: string }) => fail(`error-${error.code ?? 'socket'}`));
    ws.on('close', (code: number, reason: Buffer) => {
      if (opening) fail(`close-${code}`);
      else serverClosed(code, reason.toString());
    });
    if (!socketio) ws.on('open', succeed);
    ws.on('message', (data: Buffer) => {
      if (socketio) {
        const type = data[0];
        if (type === CHAR_2 && data.length === 1) {
          ws.send('3');
          return;
        }
        if (type === CHAR_0) {
          ws.send(`40${JSON.stringify({ token: presented.socketioToken })}`);
          return;
        }
        if (type !== CHAR_4) return;
        const packet = data[1];
        if (packet === CHAR_0) return succeed();
        if (packet === CHAR_4) return fail('auth-refused');
        if (packet === CHAR_1) return serverClosed(4401, 'socket.io disconnect');
        if (packet !== CHAR_2) return;
      }
      socket.received += 1;
      hooks.onData(socket, data);
    });
  });
}

/** The `n` of an echo answer: `{"echo":n}`, or Socket.IO's `42["echo",n]`. */
export function echoId(target: Target, data: Buffer): number | undefined {
  try {
    if (target.wire === 'socketio') {
      const packet = JSON.parse(data.toString('utf8', 2)) as unknown;
      return Array.isArray(packet) && typeof packet[1] === 'number' ? packet[1] : undefined;
    }
    const content = JSON.parse(data.toString()) as { echo?: unknown };
    return typeof content.echo === 'number' ? content.echo : undefined;
  } catch {
    return undefined;
  }
}

/** An echo request in the target's framing. */
export function echoFrame(target: Target, id: number): string {
  return target.wire === 'socketio' ? `42["echo",${id}]` : `{"echo":${id}}`;
}
