/**
 * Drives an app in process, with no network: Channels' `WebsocketCommunicator`.
 *
 * @module
 */
import { BaseConnection } from '../application.js';
import type { Application, OutgoingData } from '../application.js';
import { OutboundBatch, OutboundMessage } from '../outbound.js';
import { createScope } from '../scope.js';
import { Waiters } from './waiters.js';
import type { ClientAddress, Scope } from '../scope.js';

/** Options of {@link WebsocketCommunicator}. */
export interface CommunicatorOptions {
  /** Request headers; names are lower-cased. Repeat a header by giving an array. */
  headers?: Record<string, string | readonly string[]>;
  /** Subprotocols the client offers (sent as `Sec-WebSocket-Protocol`). */
  subprotocols?: readonly string[];
  client?: ClientAddress;
  /** Changes the scope before the app sees it (e.g. to set a user directly). */
  scope?: (scope: Scope) => Scope;
}

/** What {@link WebsocketCommunicator.connect} reports. */
export type ConnectResult =
  | { readonly accepted: true; readonly subprotocol: string | null }
  | {
      readonly accepted: false;
      /** The close code when the app accepted and closed at once (the default for refusals). */
      readonly closeCode?: number;
      readonly reason?: string;
      /** The HTTP status when the app refused the handshake. */
      readonly status?: number;
    };

/** One thing the app did, in order. */
export type CommunicatorOutput =
  | { readonly type: 'send'; readonly data: string | Uint8Array }
  | { readonly type: 'close'; readonly code: number; readonly reason: string };

export { ReceiveTimeoutError } from './waiters.js';

class CommunicatorConnection extends BaseConnection {
  readonly outputs: CommunicatorOutput[] = [];
  readonly #notify: () => void;
  rejectedWith: { status: number } | undefined;

  constructor(offered: readonly string[], notify: () => void) {
    super(offered);
    this.#notify = notify;
  }

  protected transportAccept(): void {
    this.#notify();
  }

  protected transportReject(status: number): void {
    this.rejectedWith = { status };
    this.deliverClose({ code: 1006, reason: '', byServer: true });
    this.#notify();
  }

  protected transportSend(data: OutgoingData): void {
    // A batch is its messages, one frame each, as a real transport sends it.
    const messages = data instanceof OutboundBatch ? data.messages : [data];
    for (const message of messages) {
      const payload = message instanceof OutboundMessage ? message.data : message;
      this.outputs.push({ type: 'send', data: payload });
    }
    this.#notify();
  }

  protected transportClose(code: number, reason: string): void {
    this.outputs.push({ type: 'close', code, reason });
    // Acknowledge at once, as a well-behaved client would.
    this.deliverClose({ code, reason, byServer: true });
    this.#notify();
  }

  receiveFromClient(data: string | Uint8Array): void {
    this.deliverMessage(data);
  }

  closeFromClient(code: number, reason: string): void {
    this.deliverClose({ code, reason, byServer: false });
  }
}

/**
 * Runs an app against an in-memory connection. The same apps run over real sockets.
 *
 * @example
 * ```ts
 * const communicator = new WebsocketCommunicator(app, '/ws/echo/');
 * assert.deepEqual(await communicator.connect(), { accepted: true, subprotocol: null });
 * communicator.sendJson({ hello: 1 });
 * assert.deepEqual(await communicator.receiveJson(), { hello: 1 });
 * await communicator.disconnect();
 * ```
 */
export class WebsocketCommunicator {
  readonly scope: Scope;
  readonly #app: Application;
  readonly #connection: CommunicatorConnection;
  readonly #waiters = new Waiters();
  #read = 0;

  constructor(app: Application, path: string, options: CommunicatorOptions = {}) {
    const queryStart = path.indexOf('?');
    const headers: Record<string, string | readonly string[]> = { ...options.headers };
    if (options.subprotocols !== undefined && options.subprotocols.length > 0) {
      headers['sec-websocket-protocol'] = options.subprotocols.join(', ');
    }
    let scope = createScope({
      path: queryStart === -1 ? path : path.slice(0, queryStart),
      queryString: queryStart === -1 ? '' : path.slice(queryStart + 1),
      headers,
      ...(options.client === undefined ? {} : { client: options.client }),
    });
    if (options.scope !== undefined) scope = options.scope(scope);
    this.scope = scope;
    this.#app = app;
    this.#connection = new CommunicatorConnection(scope.subprotocols, () => this.#waiters.wake());
  }

  /** The connection's state as the app left it. */
  get state(): BaseConnection['state'] {
    return this.#connection.state;
  }

  /**
   * Runs the app and waits until it accepts, refuses or closes the connection. A refusal
   * done the default way (accept then close at once) reports `accepted: false` with the
   * close code.
   */
  async connect(timeout = 1_000): Promise<ConnectResult> {
    const app = this.#app;
    if (app.match !== undefined && !app.match(this.scope)) return { accepted: false, status: 404 };
    const connection = this.#connection;
    const running = Promise.resolve().then(() => app(this.scope, connection));
    running.catch(() => {
      connection.close(1011);
    });
    await this.#waiters.waitFor('the app to accept or refuse', timeout, () =>
      connection.state === 'pending' ? undefined : true,
    );
    // Let an accept-then-close in the same turn show as a refusal.
    await new Promise((resolve) => setImmediate(resolve));
    if (connection.rejectedWith !== undefined) {
      return { accepted: false, status: connection.rejectedWith.status };
    }
    const first = connection.outputs[this.#read];
    if (first?.type === 'close') {
      this.#read += 1;
      return { accepted: false, closeCode: first.code, reason: first.reason };
    }
    return { accepted: true, subprotocol: connection.subprotocol };
  }

  /** Sends a text frame from the client. */
  sendText(text: string): void {
    this.#connection.receiveFromClient(text);
  }

  /** Sends a binary frame from the client. */
  sendBytes(bytes: Uint8Array): void {
    this.#connection.receiveFromClient(bytes);
  }

  /** Sends a value as a JSON text frame from the client. */
  sendJson(value: unknown): void {
    this.sendText(JSON.stringify(value));
  }

  /** The next thing the app did: a frame sent or the close. */
  receiveOutput(timeout = 1_000): Promise<CommunicatorOutput> {
    return this.#waiters.waitFor('output', timeout, () => {
      const output = this.#connection.outputs[this.#read];
      if (output !== undefined) this.#read += 1;
      return output;
    });
  }

  /** The next frame, which must be text. */
  async receiveText(timeout = 1_000): Promise<string> {
    const output = await this.receiveOutput(timeout);
    if (output.type !== 'send' || typeof output.data !== 'string') {
      throw new TypeError(`Expected a text frame, got ${JSON.stringify(output)}`);
    }
    return output.data;
  }

  /** The next frame, parsed as JSON. */
  async receiveJson(timeout = 1_000): Promise<unknown> {
    return JSON.parse(await this.receiveText(timeout)) as unknown;
  }

  /** True when the app sends nothing for `timeout` ms. */
  async receiveNothing(timeout = 100): Promise<boolean> {
    await new Promise((resolve) => setTimeout(resolve, timeout));
    return this.#connection.outputs.length === this.#read;
  }

  /** Waits for the app to close the connection; returns its code and reason. */
  async waitForClose(timeout = 1_000): Promise<{ code: number; reason: string }> {
    for (;;) {
      const output = await this.receiveOutput(timeout);
      if (output.type === 'close') return { code: output.code, reason: output.reason };
    }
  }

  /** Closes from the client side and waits for the app's disconnect handling. */
  async disconnect(code = 1000, reason = ''): Promise<void> {
    this.#connection.closeFromClient(code, reason);
    await this.#connection.finished;
  }
}
