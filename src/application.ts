/**
 * The one app contract everything nests by: routers, middleware and consumers are all
 * {@link Application}s, as in ASGI (SPEC §2, STYLE.md practice 3).
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { CloseCode } from './protocol/close-codes.js';
import { isBearerSubprotocol } from './protocol/subprotocol.js';
import { itemsOf, withItem, withoutItem } from './small-list.js';
import type { Few } from './small-list.js';
import type { OutboundBatch, OutboundMessage } from './outbound.js';
import type { Scope } from './scope.js';

/** Lifecycle of a connection: `pending` until the app accepts or refuses the handshake. */
export type ConnectionState = 'pending' | 'open' | 'closing' | 'closed';

/** How a connection ended. `code` 1006 means it dropped without a close frame. */
export interface CloseEvent {
  readonly code: number;
  readonly reason: string;
  /** True when the server initiated the close. */
  readonly byServer: boolean;
}

/** A close listener; a returned promise is awaited before the connection is finished. */
export type CloseListener = (event: CloseEvent) => void | Promise<void>;

/** Options for {@link Connection.accept}. */
export interface AcceptOptions {
  /** The subprotocol to select; must be one the client offered. */
  readonly subprotocol?: string | undefined;
}

/** Data received from the client: text frames as strings, binary frames as bytes. */
export type IncomingData = string | Uint8Array;

/** Something that can be sent to a client. */
export type OutgoingData = string | Uint8Array | OutboundMessage | OutboundBatch;

/**
 * A WebSocket connection as apps see it. Transport-agnostic: the `ws` adapter and the
 * in-process {@link WebsocketCommunicator} both implement it.
 */
export interface Connection {
  /** Unique id of this connection within the process. */
  readonly id: string;
  readonly state: ConnectionState;
  /** The selected subprotocol, or `null`. */
  readonly subprotocol: string | null;
  /**
   * Completes the handshake. Idempotent once open.
   * @throws {RangeError} when the subprotocol was not offered by the client.
   */
  accept(options?: AcceptOptions): void;
  /**
   * Refuses the handshake with an HTTP status (only while `pending`; later it closes
   * with 1008-free mapping: 401→4401, 403→4403, else 1011).
   */
  reject(status: number, headers?: Readonly<Record<string, string>>): void;
  /** Queues data for the client. Ignored once closing. */
  send(data: OutgoingData): void;
  /**
   * Closes the connection. While `pending` it accepts first so that browsers learn the
   * code (SPEC §5). Idempotent.
   */
  close(code?: number, reason?: string): void;
  /**
   * Registers the message listener; frames that arrived before are delivered to it at
   * once. Returns a function that unregisters it (later frames are held for the next).
   */
  onMessage(listener: (data: IncomingData) => void): () => void;
  /**
   * Registers a close listener. A returned promise is awaited before the connection
   * counts as finished (graceful shutdown waits for it).
   */
  onClose(listener: CloseListener): () => void;
}

/**
 * An application: a function of a scope and a connection. It returns once it has set the
 * connection up (listeners registered); the connection then lives on its own.
 */
export interface Application {
  (scope: Scope, connection: Connection): void | Promise<void>;
  /**
   * Whether this app handles a scope, checked by transports before anything runs so that
   * unknown paths are refused at the handshake (404). Routers set it; middleware passes
   * the inner app's through. Absent means "yes".
   */
  match?: (scope: Scope) => boolean;
}

/**
 * Declares an app that wraps `inner`, keeping the inner app's {@link Application.match}.
 *
 * @example
 * ```ts
 * const tagged = (inner: Application) =>
 *   wrapApplication(inner, (scope, connection) => inner({ ...scope, state: scope.state }, connection));
 * ```
 */
export function wrapApplication(inner: Application, outer: Application): Application {
  if (typeof inner !== 'function') throw new TypeError('The inner application must be a function');
  if (inner.match !== undefined) outer.match = inner.match;
  return outer;
}

/**
 * @internal A middleware's hold on a connection without wrapping it (no object or
 * closures per socket): it sees each frame before the app (`true` takes the frame out of
 * the stream) and hears the close before the app's listeners.
 */
export interface ConnectionGuard {
  filterMessage(data: IncomingData): boolean;
  connectionClosed(event: CloseEvent): void;
}

/**
 * @internal Keys of the methods of a {@link ConnectionListener}. Symbols, so that a
 * consumer can be its connection's listener without public methods of that name.
 */
export const kConnectionMessage = Symbol('portcullis.connectionMessage');
/** @internal See {@link kConnectionMessage}. */
export const kConnectionClosed = Symbol('portcullis.connectionClosed');

/**
 * @internal A listener object: what {@link BaseConnection.listenForClose} takes instead of two
 * closures, so that a consumer listens to its connection with no function per socket.
 */
export interface ConnectionListener {
  [kConnectionMessage](data: IncomingData): void;
  /** Like a {@link CloseListener}: a returned promise is awaited. */
  [kConnectionClosed](event: CloseEvent): void | Promise<void>;
}

type MessageListener = ((data: IncomingData) => void) | ConnectionListener;
type AnyCloseListener = CloseListener | ConnectionListener;

/** A middleware: a function from an inner app to an app. */
export type Middleware = (inner: Application) => Application;

/**
 * Composes middleware outermost first: `stack(a, b)(app)` is `a(b(app))`.
 *
 * @example
 * ```ts
 * const app = stack(originCheck({ allowedOrigins }), connectionLimits({}))(router);
 * ```
 */
export function stack(...middleware: readonly Middleware[]): Middleware {
  return (inner) => middleware.reduceRight<Application>((app, wrap) => wrap(app), inner);
}

const MAX_HELD_MESSAGES = 1_024;

/** Drops a promise's value or rejection: what is awaited here is only that it settled. */
const toUndefined = (): undefined => undefined;
const FINISHED: Promise<void> = Promise.resolve();

/** Runs a close listener; its promise, if any, never rejects (errors are the listener's). */
function callCloseListener(
  listener: AnyCloseListener,
  event: CloseEvent,
): Promise<void> | undefined {
  try {
    const result =
      typeof listener === 'function' ? listener(event) : listener[kConnectionClosed](event);
    return result === undefined ? undefined : result.catch(toUndefined);
  } catch {
    // A throwing close listener must not stop the others; consumers log their own errors.
    return undefined;
  }
}

function deliverFrame(listener: MessageListener, data: IncomingData): void {
  if (typeof listener === 'function') listener(data);
  else listener[kConnectionMessage](data);
}
let connectionCounter = 0;
const processTag = randomBytes(4).toString('hex');

/**
 * Shared machinery of {@link Connection} implementations: state, listener bookkeeping,
 * holding frames that arrive before a listener, and the "finished" promise. Transports
 * implement the four `transport*` methods and call {@link deliverMessage} /
 * {@link deliverClose}.
 */
export abstract class BaseConnection implements Connection {
  // The number only; the string is made when asked for (logs), not for every socket.
  readonly #serial = ++connectionCounter;
  #state: ConnectionState = 'pending';
  #subprotocol: string | null = null;
  #messageListener: MessageListener | undefined;
  // Frames that arrived before a listener: rare, so made on the first one.
  #held: IncomingData[] | undefined;
  // Most connections have one close listener (their consumer): kept as itself, a small
  // list from the second on (a one-entry Set costs ~250 bytes, an array ~56).
  #closeListeners: Few<AnyCloseListener>;
  #guard: ConnectionGuard | undefined;
  readonly #offered: readonly string[];
  // Made only when someone asks: most connections never are (about 300 bytes each).
  // FINISHED once finished before anyone asked.
  #finished: Promise<void> | undefined;
  #resolveFinished: (() => void) | undefined;
  #closeEvent: CloseEvent | undefined;

  constructor(offeredSubprotocols: readonly string[]) {
    this.#offered = offeredSubprotocols;
  }

  /** Unique id of this connection within the process. */
  get id(): string {
    return `${processTag}.${this.#serial.toString(36)}`;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get subprotocol(): string | null {
    return this.#subprotocol;
  }

  /** Resolves once the connection closed and every close listener finished. */
  get finished(): Promise<void> {
    this.#finished ??= new Promise<void>((resolve) => {
      this.#resolveFinished = resolve;
    });
    return this.#finished;
  }

  /** Called once the connection closed and every close listener finished. */
  protected onFinished(): void {}

  #finish(): void {
    if (this.#resolveFinished === undefined) this.#finished = FINISHED;
    else this.#resolveFinished();
    this.#resolveFinished = undefined;
    this.onFinished();
  }

  accept(options: AcceptOptions = {}): void {
    if (this.#state !== 'pending') return;
    const subprotocol = options.subprotocol ?? null;
    if (subprotocol !== null && !this.#offered.includes(subprotocol)) {
      throw new RangeError(
        `Subprotocol ${JSON.stringify(subprotocol)} was not offered by the client`,
      );
    }
    this.#subprotocol = subprotocol;
    this.#state = 'open';
    this.transportAccept(subprotocol);
  }

  reject(status: number, headers: Readonly<Record<string, string>> = {}): void {
    if (this.#state === 'pending') {
      this.#state = 'closing';
      this.transportReject(status, headers);
      return;
    }
    const code =
      status === 401
        ? CloseCode.Unauthorized
        : status === 403
          ? CloseCode.Forbidden
          : CloseCode.InternalError;
    this.close(code);
  }

  send(data: OutgoingData): void {
    if (this.#state === 'pending') {
      throw new Error('Cannot send before the connection is accepted: call accept() first');
    }
    if (this.#state !== 'open') return;
    this.transportSend(data);
  }

  close(code: number = CloseCode.Normal, reason = ''): void {
    // Browsers fail a handshake where they offered protocols and none was selected, and
    // then never see the close code: select an app protocol even to refuse.
    if (this.#state === 'pending') {
      this.accept({ subprotocol: this.#offered.find((entry) => !isBearerSubprotocol(entry)) });
    }
    if (this.#state !== 'open') return;
    this.#state = 'closing';
    this.transportClose(code, reason);
  }

  onMessage(listener: (data: IncomingData) => void): () => void {
    this.#takeMessages(listener);
    return () => {
      if (this.#messageListener === listener) this.#messageListener = undefined;
    };
  }

  #takeMessages(listener: MessageListener): void {
    this.#messageListener = listener;
    const held = this.#held;
    while (held !== undefined && held.length > 0 && this.#messageListener === listener) {
      deliverFrame(listener, held.shift()!);
    }
  }

  /** @internal {@link onClose} for a listener object, registered until the close. */
  listenForClose(listener: ConnectionListener): void {
    this.#closeListeners = withItem(this.#closeListeners, listener);
  }

  /** @internal {@link onMessage} for a listener object, registered until the close. */
  listenForMessages(listener: ConnectionListener): void {
    this.#takeMessages(listener);
  }

  onClose(listener: CloseListener): () => void {
    // Set semantics: one function registered twice runs once.
    this.#closeListeners = withItem(this.#closeListeners, listener);
    return () => {
      this.#closeListeners = withoutItem(this.#closeListeners, listener);
    };
  }

  /**
   * @internal Installs the one {@link ConnectionGuard} a connection can have; false when
   * another holds it (the caller then wraps the connection instead).
   */
  guard(guard: ConnectionGuard): boolean {
    if (this.#guard !== undefined) return false;
    this.#guard = guard;
    return true;
  }

  /** How the connection ended, once it has. */
  get closeEvent(): CloseEvent | undefined {
    return this.#closeEvent;
  }

  /** Called by transports for every frame received. */
  protected deliverMessage(data: IncomingData): void {
    if (this.#state !== 'open' && this.#state !== 'closing') return;
    if (this.#guard?.filterMessage(data) === true) return;
    const listener = this.#messageListener;
    if (listener !== undefined) {
      deliverFrame(listener, data);
      return;
    }
    const held = (this.#held ??= []);
    if (held.length >= MAX_HELD_MESSAGES) {
      this.close(CloseCode.TooManyRequests, 'too many requests');
      return;
    }
    held.push(data);
  }

  /** Called by transports exactly once, when the connection is gone. */
  protected deliverClose(event: CloseEvent): void {
    if (this.#closeEvent !== undefined) return;
    this.#state = 'closed';
    this.#closeEvent = event;
    this.#held = undefined;
    this.#messageListener = undefined;
    const listeners = this.#closeListeners;
    this.#closeListeners = undefined;
    const guard = this.#guard;
    this.#guard = undefined;
    try {
      guard?.connectionClosed(event);
    } catch {
      // Like a close listener: it must not stop the others.
    }
    let pending: Promise<void> | undefined;
    if (listeners !== undefined && !Array.isArray(listeners)) {
      // One listener (a consumer), the usual case: no array, no Promise.all machinery.
      pending = callCloseListener(listeners, event);
    } else {
      const all: Promise<void>[] = [];
      for (const listener of itemsOf(listeners)) {
        const result = callCloseListener(listener, event);
        if (result !== undefined) all.push(result);
      }
      if (all.length > 0) pending = all.length === 1 ? all[0] : Promise.all(all).then(toUndefined);
    }
    if (pending === undefined) this.#finish();
    else void pending.then(() => this.#finish());
  }

  protected abstract transportAccept(subprotocol: string | null): void;
  protected abstract transportReject(
    status: number,
    headers: Readonly<Record<string, string>>,
  ): void;
  protected abstract transportSend(data: OutgoingData): void;
  protected abstract transportClose(code: number, reason: string): void;
}
