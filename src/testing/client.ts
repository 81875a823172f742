/**
 * A real-socket test client that queues every message, for tests against a server on
 * `127.0.0.1:0`.
 *
 * @module
 */
import { WebSocket } from 'ws';
import type { ClientOptions } from 'ws';
import { Waiters } from './waiters.js';

/** Options of {@link connectClient}. */
export interface TestClientOptions {
  protocols?: readonly string[];
  headers?: Record<string, string>;
  /** Sets the `Origin` header, as a browser would. */
  origin?: string;
  /** How long to wait for the handshake, in ms. @default 2000 */
  timeout?: number;
  /** Answer pings; `false` simulates a dead peer. @default true */
  autoPong?: boolean;
  /** Extra `ws` client options. */
  wsOptions?: ClientOptions;
}

/** The handshake was refused with an HTTP status. */
export class HandshakeRefusedError extends Error {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  constructor(status: number, headers: Record<string, string | string[] | undefined>) {
    super(`Handshake refused with HTTP ${status}`);
    this.name = 'HandshakeRefusedError';
    this.status = status;
    this.headers = headers;
  }
}

/** A connected test client. Every frame received is queued until read. */
export class TestClient {
  readonly socket: WebSocket;
  readonly #messages: (string | Buffer)[] = [];
  #closed: { code: number; reason: string } | undefined;
  readonly #waiters = new Waiters();

  /** @internal */
  constructor(socket: WebSocket) {
    this.socket = socket;
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      this.#messages.push(isBinary ? data : data.toString());
      this.#waiters.wake();
    });
    socket.on('close', (code: number, reason: Buffer) => {
      this.#closed = { code, reason: reason.toString() };
      this.#waiters.wake();
    });
    socket.on('error', () => {
      // Surfaced as the close event.
    });
  }

  /** The subprotocol the server selected (`''` for none). */
  get protocol(): string {
    return this.socket.protocol;
  }

  /** The next frame: text as a string, binary as a Buffer. Rejects if the socket closes first. */
  receive(timeout = 2_000): Promise<string | Buffer> {
    return this.#waiters.waitFor('a message', timeout, () => {
      const message = this.#messages.shift();
      if (message !== undefined) return message;
      if (this.#closed !== undefined) {
        throw new Error(
          `Socket closed (${this.#closed.code} ${this.#closed.reason}) while waiting for a message`,
        );
      }
      return undefined;
    });
  }

  /** The next frame parsed as JSON. */
  async receiveJson(timeout = 2_000): Promise<unknown> {
    const message = await this.receive(timeout);
    return JSON.parse(message.toString()) as unknown;
  }

  /** True when nothing arrives for `timeout` ms. */
  async receiveNothing(timeout = 100): Promise<boolean> {
    await new Promise((resolve) => setTimeout(resolve, timeout));
    return this.#messages.length === 0;
  }

  /** Frames received and not read yet. */
  get queued(): number {
    return this.#messages.length;
  }

  send(data: string | Buffer): void {
    this.socket.send(data);
  }

  sendJson(value: unknown): void {
    this.socket.send(JSON.stringify(value));
  }

  /** Waits until the socket is closed; returns the close code and reason. */
  waitForClose(timeout = 2_000): Promise<{ code: number; reason: string }> {
    return this.#waiters.waitFor('the socket to close', timeout, () => this.#closed);
  }

  /** Closes from the client side and waits for the close to complete. */
  async close(code = 1000): Promise<void> {
    if (this.#closed !== undefined) return;
    this.socket.close(code);
    await this.waitForClose();
  }
}

/**
 * Opens a real WebSocket to `url` and resolves once the handshake completed.
 *
 * @example
 * ```ts
 * const client = await connectClient(`${server.url}/ws/echo/`);
 * client.sendJson({ hello: 1 });
 * assert.deepEqual(await client.receiveJson(), { hello: 1 });
 * ```
 * @throws {HandshakeRefusedError} when the server answers the upgrade with an HTTP status.
 */
export function connectClient(url: string, options: TestClientOptions = {}): Promise<TestClient> {
  const {
    protocols = [],
    headers = {},
    origin,
    timeout = 2_000,
    autoPong = true,
    wsOptions = {},
  } = options;
  const socket = new WebSocket(url, [...protocols], {
    ...wsOptions,
    headers,
    autoPong,
    handshakeTimeout: timeout,
    ...(origin === undefined ? {} : { origin }),
  });
  const client = new TestClient(socket);
  return new Promise<TestClient>((resolve, reject) => {
    socket.once('open', () => resolve(client));
    socket.once('unexpected-response', (_request, response) => {
      reject(new HandshakeRefusedError(response.statusCode ?? 0, response.headers));
      response.resume();
      socket.terminate();
    });
    socket.once('error', (error) => reject(error));
  });
}
