/**
 * The reconnecting WebSocket client: one logical connection that survives drops,
 * refreshes its credential when the server says it expired, and stops when the server
 * says retrying cannot help (SPEC §5).
 *
 * @module
 */

import { CloseCode, CloseReason } from '../protocol/close-codes.js';
import type { AuthFrame, JsonObject } from '../protocol/messages.js';
import { backoff } from './backoff.js';
import { ABNORMAL_CLOSURE, classifyClose } from './close-policy.js';
import type { ConnectionPlan, Credential } from './credentials.js';
import { BEARER_PROTOCOL_PREFIX, cookieCredential } from './credentials.js';
import { ConnectionError, InvalidMessageError, UnauthorizedError } from './errors.js';

/**
 * Where the client is:
 *
 * - `connecting`: the first attempt after {@link PortcullisClient.connect}.
 * - `open`: the socket is open; {@link PortcullisClient.send} writes to it.
 * - `reconnecting`: the connection dropped; waiting for, or making, the next attempt.
 * - `closed`: not connected and not going to be until `connect()` is called.
 */
export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Payload of the `open` event. */
export interface ClientOpenEvent {
  /** The application subprotocol the server selected, `''` when none. */
  readonly protocol: string;
  /**
   * True when this connection replaces one that dropped: server-side state such as
   * joined rooms is gone, so re-join here.
   */
  readonly reconnected: boolean;
}

/** Payload of the `close` event, fired once per connection attempt that ended. */
export interface ClientCloseEvent {
  /**
   * The close code (SPEC §5). 1006 when the attempt failed without a close frame, including
   * when `fetchTicket`/`getToken` failed; 4401 `authentication required` when they threw
   * {@link UnauthorizedError}; 1000 after {@link PortcullisClient.close}.
   */
  readonly code: number;
  /** The close reason text, `''` when the server sent none. */
  readonly reason: string;
  /** True when the client will reconnect by itself. */
  readonly willRetry: boolean;
  /** Milliseconds until the next attempt; present only when `willRetry` is true. */
  readonly delay?: number;
}

/** The client's events and their payloads. */
export interface ClientEventMap {
  /** The socket opened (after the first-message credential, if any, was sent). */
  open: ClientOpenEvent;
  /** The server sent a JSON object. Other frames are reported through `error`. */
  message: JsonObject;
  /** A connection attempt ended. */
  close: ClientCloseEvent;
  /** {@link PortcullisClient.state} changed. */
  state: ClientState;
  /**
   * Something went wrong that does not, by itself, end the client: a socket error (a
   * `close` follows), an unreadable frame, a failing `getToken`/`fetchTicket`.
   */
  error: Error;
}

/** A listener for one event of {@link ClientEventMap}. */
export type ClientListener<K extends keyof ClientEventMap> = (payload: ClientEventMap[K]) => void;

/** Listeners to attach at construction, one per event. */
export type ClientListeners = { readonly [K in keyof ClientEventMap]?: ClientListener<K> };

/** The third constructor argument of a Node.js WebSocket implementation such as `ws`. */
export interface WebSocketImplOptions {
  headers?: Record<string, string>;
}

/**
 * The part of a WebSocket the client uses. Both the browser's `WebSocket` and `ws`'s
 * `WebSocket` fit it. Handlers are typed with a `never` parameter so that either
 * implementation's own event types are accepted.
 */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
}

/** A WebSocket constructor: the browser's `WebSocket`, or `ws`'s on Node.js. */
export type WebSocketConstructor = new (
  url: string,
  protocols: string[],
  options?: WebSocketImplOptions,
) => WebSocketLike;

/** Options of {@link createClient}. */
export interface ClientOptions {
  /**
   * The WebSocket URL (`ws://` or `wss://`), or a function returning it, called before
   * every attempt (to pick another node after a 1001, for example).
   */
  readonly url: string | (() => string | Promise<string>);
  /**
   * Application subprotocols to offer. Required with {@link subprotocolCredential}.
   * @default []
   */
  readonly protocols?: readonly string[];
  /**
   * How the credential travels (SPEC §3).
   * @default cookieCredential() (nothing to add: the browser sends its cookies)
   */
  readonly credential?: Credential;
  /**
   * The shortest reconnect delay in milliseconds; `0` reconnects without delay.
   * @default 500
   */
  readonly minDelay?: number;
  /**
   * The longest reconnect delay in milliseconds.
   * @default 30_000
   */
  readonly maxDelay?: number;
  /**
   * How many reconnects in a row to try before giving up (`close` with `willRetry: false`).
   * The count resets once a connection has stayed open for `stableAfter`.
   * @default Infinity
   */
  readonly maxRetries?: number;
  /**
   * The reconnect delay's floor in milliseconds after 4429 (rate or connection limit).
   * @default 5_000
   */
  readonly rateLimitDelay?: number;
  /**
   * How long in milliseconds a connection must stay open to count as healthy, which resets
   * the retry count and allows another immediate reconnect after 4401 `token expired`.
   * @default 5_000
   */
  readonly stableAfter?: number;
  /**
   * How many messages {@link PortcullisClient.send} queues while not open; past it, `send`
   * throws `RangeError`. `0` makes `send` throw whenever the socket is not open.
   * @default 100
   */
  readonly queueLimit?: number;
  /**
   * The WebSocket implementation. Required on Node.js 20 (pass `WebSocket` from `ws`), and
   * with credentials that send headers.
   * @default globalThis.WebSocket
   */
  readonly webSocketImpl?: WebSocketConstructor;
  /** Listeners to attach before anything can fire. */
  readonly on?: ClientListeners;
  /**
   * A source of uniform numbers in `[0, 1)` for the backoff jitter; for tests.
   * @default Math.random
   */
  readonly random?: () => number;
}

/** One logical, reconnecting connection. Create it with {@link createClient}. */
export interface PortcullisClient {
  /** The current state; changes are announced by the `state` event. */
  readonly state: ClientState;
  /**
   * Starts connecting. Does nothing unless the state is `closed`. Progress and failures
   * arrive as events; nothing is thrown.
   */
  connect(): void;
  /**
   * Sends a JSON object. While `connecting` or `reconnecting` the message is queued and sent
   * in order once the socket opens (after the first-message credential); the queue is
   * dropped when the client stops. Apps that must not deliver stale commands after a
   * reconnect set `queueLimit: 0` and send from the `open` event.
   *
   * @throws {TypeError} When `message` is not a plain JSON object (the server would close
   *   4400), or when the client is `closed`.
   * @throws {RangeError} When the queue already holds `queueLimit` messages.
   */
  send(message: object): void;
  /** Closes the connection with 1000 and stops reconnecting. Safe to call in any state. */
  close(): void;
  /**
   * Adds a listener and returns a function that removes it.
   *
   * @example
   * ```ts
   * const off = client.on('message', (msg) => console.log(msg));
   * off();
   * ```
   */
  on<K extends keyof ClientEventMap>(event: K, listener: ClientListener<K>): () => void;
  /**
   * Calls `getToken` for a fresh token and sends it in-band as `{"type":"auth","token":…}`,
   * which keeps an open connection alive past the old token's expiry (SPEC §3). When the
   * socket is not open, the fresh token is kept for the next attempt. If `getToken` throws
   * {@link UnauthorizedError}, the client stops, as it would at connect.
   *
   * @throws {TypeError} When the credential has no `getToken`.
   * @throws Whatever `getToken` throws.
   */
  refreshCredential(): Promise<void>;
}

const OPEN = 1; // WebSocket.OPEN, the same in browsers and ws

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

function noop(): void {}

// The longest delay setTimeout honours; browsers and Node.js fire at once past it.
const MAX_TIMER_DELAY = 2_147_483_647;

/** A delay in milliseconds: finite, and short enough for setTimeout. */
function checkDelay(name: string, value: number, min: number): void {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`createClient: ${name} must be a number`);
  }
  if (value < min || value > MAX_TIMER_DELAY) {
    throw new RangeError(
      `createClient: ${name} must be a number of milliseconds from ${min} to ${MAX_TIMER_DELAY}`,
    );
  }
}

/** A count: a non-negative integer, or Infinity for "no limit". */
function checkCount(name: string, value: number): void {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`createClient: ${name} must be a number`);
  }
  if (value < 0 || (value !== Infinity && !Number.isInteger(value))) {
    throw new RangeError(`createClient: ${name} must be an integer >= 0 or Infinity`);
  }
}

function checkUrl(url: string): void {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  // The URL itself stays out of the message: it may carry a ticket or token (SPEC §3).
  if (parsed === undefined || (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:')) {
    throw new TypeError('createClient: url must be an absolute ws:// or wss:// URL');
  }
}

class Client implements PortcullisClient {
  readonly #url: ClientOptions['url'];
  readonly #protocols: readonly string[];
  readonly #credential: Credential;
  readonly #minDelay: number;
  readonly #maxDelay: number;
  readonly #maxRetries: number;
  readonly #rateLimitDelay: number;
  readonly #stableAfter: number;
  readonly #queueLimit: number;
  readonly #WebSocket: WebSocketConstructor;
  readonly #random: () => number;
  readonly #listeners: { [K in keyof ClientEventMap]: Set<ClientListener<K>> } = {
    open: new Set(),
    message: new Set(),
    close: new Set(),
    state: new Set(),
    error: new Set(),
  };

  #state: ClientState = 'closed';
  #socket: WebSocketLike | undefined;
  // Bumped by every attempt and by close(), so async work started for an abandoned
  // attempt (a slow getToken, a pending timer) sees it is stale and does nothing.
  #generation = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #retries = 0;
  #expiredRefreshUsed = false;
  #openedAt: number | undefined;
  #token: string | undefined;
  #queue: string[] = [];

  constructor(options: ClientOptions) {
    const {
      url,
      protocols = [],
      credential = cookieCredential(),
      minDelay = 500, // 0.5 s
      maxDelay = 30_000, // 30 s
      maxRetries = Infinity,
      rateLimitDelay = 5_000, // 5 s
      stableAfter = 5_000, // 5 s
      queueLimit = 100,
      webSocketImpl,
      on = {},
      random = Math.random,
    } = options;

    if (typeof url === 'string') checkUrl(url);
    else if (typeof url !== 'function') {
      throw new TypeError('createClient: url must be a string or a function returning one');
    }
    if (!Array.isArray(protocols) || protocols.some((p) => typeof p !== 'string')) {
      throw new TypeError('createClient: protocols must be an array of strings');
    }
    if (protocols.some((p) => p.startsWith(BEARER_PROTOCOL_PREFIX))) {
      throw new TypeError(
        'createClient: do not put a bearer entry in protocols; use subprotocolCredential()',
      );
    }
    if (typeof credential?.prepare !== 'function') {
      throw new TypeError('createClient: credential must come from a credential factory');
    }
    checkDelay('minDelay', minDelay, 0);
    checkDelay('maxDelay', maxDelay, minDelay);
    checkDelay('rateLimitDelay', rateLimitDelay, 0);
    checkDelay('stableAfter', stableAfter, 0);
    checkCount('maxRetries', maxRetries);
    checkCount('queueLimit', queueLimit);
    if (credential.method === 'subprotocol' && protocols.length === 0) {
      throw new TypeError(
        'createClient: subprotocolCredential needs at least one application subprotocol in ' +
          'protocols; browsers fail the handshake when only the bearer entry is offered',
      );
    }
    if (credential.usesHeaders === true && webSocketImpl === undefined) {
      throw new TypeError(
        `createClient: the ${credential.method} credential sends handshake headers, which ` +
          'browsers cannot; pass a webSocketImpl that accepts a headers option, such as ' +
          'WebSocket from the ws package',
      );
    }
    const impl = webSocketImpl ?? (globalThis.WebSocket as WebSocketConstructor | undefined);
    if (typeof impl !== 'function') {
      throw new TypeError(
        'createClient: no global WebSocket; pass webSocketImpl (WebSocket from the ws package on Node.js)',
      );
    }

    this.#url = url;
    this.#protocols = [...protocols];
    this.#credential = credential;
    this.#minDelay = minDelay;
    this.#maxDelay = maxDelay;
    this.#maxRetries = maxRetries;
    this.#rateLimitDelay = rateLimitDelay;
    this.#stableAfter = stableAfter;
    this.#queueLimit = queueLimit;
    this.#WebSocket = impl;
    this.#random = random;
    const attach = <K extends keyof ClientEventMap>(event: K): void => {
      const listener: ClientListener<K> | undefined = on[event];
      if (listener !== undefined) this.on(event, listener);
    };
    for (const event of Object.keys(this.#listeners) as (keyof ClientEventMap)[]) attach(event);
  }

  get state(): ClientState {
    return this.#state;
  }

  connect(): void {
    if (this.#state !== 'closed') return;
    this.#retries = 0;
    this.#expiredRefreshUsed = false;
    this.#setState('connecting');
    void this.#attempt();
  }

  send(message: object): void {
    if (!isJsonObject(message)) {
      throw new TypeError('send() takes a JSON object; the server closes 4400 on anything else');
    }
    const text = JSON.stringify(message);
    // A socket past OPEN (the server's close frame is in, its close event not yet) drops
    // what it is given: such a message waits for the next connection instead.
    if (this.#state === 'open' && this.#socket?.readyState === OPEN) {
      this.#socket.send(text);
      return;
    }
    if (this.#state === 'closed') {
      throw new TypeError('send() called on a closed client; call connect() first');
    }
    if (this.#queue.length >= this.#queueLimit) {
      throw new RangeError(
        `send() queue is full (${this.#queueLimit} messages); wait for the open event`,
      );
    }
    this.#queue.push(text);
  }

  close(): void {
    if (this.#state === 'closed') return;
    this.#generation++;
    const socket = this.#socket;
    this.#reset();
    if (socket !== undefined) this.#discard(socket, CloseCode.Normal);
    this.#setState('closed');
    if (socket !== undefined) {
      this.#emit('close', { code: CloseCode.Normal, reason: '', willRetry: false });
    }
  }

  on<K extends keyof ClientEventMap>(event: K, listener: ClientListener<K>): () => void {
    if (!(event in this.#listeners)) {
      throw new TypeError(`on(): unknown event ${JSON.stringify(event)}`);
    }
    if (typeof listener !== 'function') throw new TypeError('on(): listener must be a function');
    return this.#add(event, listener);
  }

  async refreshCredential(): Promise<void> {
    const { getToken } = this.#credential;
    if (getToken === undefined) {
      throw new TypeError(
        `refreshCredential(): the ${this.#credential.method} credential has no getToken`,
      );
    }
    this.#token = undefined;
    let token: string;
    try {
      token = await this.#fetchToken();
    } catch (error) {
      if (error instanceof UnauthorizedError && this.#state !== 'closed') {
        this.#stopUnauthorized(error);
      }
      throw error;
    }
    const socket = this.#socket;
    if (this.#state === 'open' && socket !== undefined && socket.readyState === OPEN) {
      const frame: AuthFrame = { type: 'auth', token };
      socket.send(JSON.stringify(frame));
    }
  }

  #add<K extends keyof ClientEventMap>(event: K, listener: ClientListener<K>): () => void {
    const set = this.#listeners[event];
    // A fresh wrapper per call, so the same function added twice is removed once per
    // unsubscribe, as with addEventListener's counterpart in EventEmitter.
    const entry: ClientListener<K> = (payload) => listener(payload);
    set.add(entry);
    return () => {
      set.delete(entry);
    };
  }

  #emit<K extends keyof ClientEventMap>(event: K, payload: ClientEventMap[K]): void {
    for (const listener of [...this.#listeners[event]]) {
      try {
        listener(payload);
      } catch (error) {
        // A throwing listener must not leave the state machine half-updated; report it
        // the way EventTarget does, as an uncaught error on its own turn.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  #setState(state: ClientState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit('state', state);
  }

  #reset(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#socket = undefined;
    this.#openedAt = undefined;
    this.#queue = [];
  }

  #discard(socket: WebSocketLike, code: number): void {
    // No-ops rather than null: ws throws an unhandled 'error' when a socket closed while
    // connecting has no error listener.
    socket.onopen = noop;
    socket.onmessage = noop;
    socket.onclose = noop;
    socket.onerror = noop;
    try {
      socket.close(code);
    } catch {
      // Already closing or closed: nothing left to release.
    }
  }

  async #fetchToken(): Promise<string> {
    if (this.#token !== undefined) return this.#token;
    const { getToken } = this.#credential;
    if (getToken === undefined) {
      throw new TypeError(`the ${this.#credential.method} credential has no getToken`);
    }
    const token: unknown = await getToken();
    // An empty token means nobody is logged in, which no amount of retrying fixes.
    if (typeof token !== 'string' || token === '') {
      throw new UnauthorizedError('getToken returned no token');
    }
    this.#token = token;
    return token;
  }

  async #resolveUrl(): Promise<string> {
    if (typeof this.#url === 'string') return this.#url;
    const url = await this.#url();
    checkUrl(url);
    return url;
  }

  async #attempt(): Promise<void> {
    const generation = ++this.#generation;
    let plan: ConnectionPlan;
    try {
      const url = await this.#resolveUrl();
      plan = await this.#credential.prepare({
        url,
        protocols: this.#protocols,
        token: () => this.#fetchToken(),
      });
    } catch (error) {
      if (generation !== this.#generation) return;
      if (error instanceof UnauthorizedError) {
        this.#stopUnauthorized(error);
        return;
      }
      this.#emit('error', toError(error));
      // A failing ticket or token fetch is most often the network: the same as a
      // connection that failed without a close frame.
      this.#afterClose(ABNORMAL_CLOSURE, '');
      return;
    }
    if (generation !== this.#generation) return;

    let socket: WebSocketLike;
    try {
      socket =
        plan.headers === undefined
          ? new this.#WebSocket(plan.url, [...plan.protocols])
          : new this.#WebSocket(plan.url, [...plan.protocols], { headers: { ...plan.headers } });
    } catch (error) {
      // The constructor throws only for a malformed URL or subprotocol, which a retry
      // would meet again.
      this.#emit('error', toError(error));
      this.#finish(ABNORMAL_CLOSURE, '');
      return;
    }
    this.#socket = socket;
    socket.onopen = () => {
      if (this.#socket === socket) this.#onOpen(socket, plan);
    };
    socket.onmessage = (event: { data: unknown }) => {
      if (this.#socket === socket) this.#onMessage(event.data);
    };
    socket.onerror = (event: { message?: unknown; error?: unknown }) => {
      if (this.#socket !== socket) return;
      const message = typeof event.message === 'string' ? event.message : undefined;
      this.#emit('error', new ConnectionError(message, { cause: event.error }));
    };
    socket.onclose = (event: { code: number; reason: string }) => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      this.#afterClose(event.code, event.reason);
    };
  }

  #onOpen(socket: WebSocketLike, plan: ConnectionPlan): void {
    const reconnected = this.#state === 'reconnecting';
    this.#openedAt = Date.now();
    // The credential frame goes first: the server treats the first frame as the
    // credential and closes 4401 on anything else (SPEC §3).
    if (plan.firstFrame !== undefined) socket.send(JSON.stringify(plan.firstFrame));
    const queue = this.#queue;
    this.#queue = [];
    for (const text of queue) socket.send(text);
    this.#setState('open');
    this.#emit('open', { protocol: socket.protocol, reconnected });
  }

  #onMessage(data: unknown): void {
    if (typeof data !== 'string') {
      this.#emit('error', new InvalidMessageError('the server sent a binary frame'));
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(data);
    } catch (error) {
      this.#emit(
        'error',
        new InvalidMessageError('the server sent invalid JSON', { cause: error }),
      );
      return;
    }
    if (!isJsonObject(value)) {
      this.#emit('error', new InvalidMessageError('the server sent JSON that is not an object'));
      return;
    }
    this.#emit('message', value);
  }

  #afterClose(code: number, reason: string): void {
    if (this.#openedAt !== undefined && Date.now() - this.#openedAt >= this.#stableAfter) {
      this.#retries = 0;
      this.#expiredRefreshUsed = false;
    }
    this.#openedAt = undefined;

    const decision = classifyClose(code, reason);
    switch (decision.action) {
      case 'stop':
        this.#finish(code, reason);
        return;
      case 'refresh':
        // Once per healthy connection: a getToken that keeps returning the expired token
        // would otherwise reconnect in a tight loop.
        if (this.#expiredRefreshUsed) {
          this.#finish(code, reason);
          return;
        }
        this.#expiredRefreshUsed = true;
        this.#token = undefined;
        this.#schedule(0, code, reason);
        return;
      case 'retry': {
        if (this.#retries >= this.#maxRetries) {
          this.#finish(code, reason);
          return;
        }
        const floor = decision.rateLimited
          ? Math.max(this.#minDelay, this.#rateLimitDelay)
          : this.#minDelay;
        const delay = backoff(this.#retries, {
          minDelay: floor,
          maxDelay: Math.max(this.#maxDelay, floor),
          random: this.#random,
        });
        this.#retries++;
        this.#schedule(delay, code, reason);
        return;
      }
    }
  }

  #schedule(delay: number, code: number, reason: string): void {
    const generation = this.#generation;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (generation === this.#generation) void this.#attempt();
    }, delay);
    this.#setState('reconnecting');
    this.#emit('close', { code, reason, willRetry: true, delay });
  }

  #finish(code: number, reason: string): void {
    this.#generation++;
    this.#reset();
    this.#setState('closed');
    this.#emit('close', { code, reason, willRetry: false });
  }

  #stopUnauthorized(error: UnauthorizedError): void {
    const socket = this.#socket;
    if (socket !== undefined) this.#discard(socket, CloseCode.Normal);
    this.#emit('error', error);
    this.#finish(CloseCode.Unauthorized, CloseReason.AuthenticationRequired);
  }
}

/**
 * Creates a client for one logical WebSocket connection that reconnects with jittered
 * backoff, refreshes its credential after 4401 `token expired`, and stops on close codes
 * that retrying cannot fix (see {@link classifyClose}). Call `connect()` to start.
 *
 * @throws {TypeError} For invalid options: a URL that is not `ws://`/`wss://`, no WebSocket
 *   implementation, a header credential without `webSocketImpl`, a subprotocol credential
 *   without an application protocol.
 * @throws {RangeError} For numeric options out of range.
 *
 * @example
 * ```ts
 * import { createClient, subprotocolCredential, UnauthorizedError } from 'portcullis/client';
 *
 * const client = createClient({
 *   url: 'wss://chat.example.com/ws/chat/',
 *   protocols: ['multichat'],
 *   credential: subprotocolCredential({
 *     getToken: async () => {
 *       const token = localStorage.getItem('token');
 *       if (token === null) throw new UnauthorizedError('not logged in');
 *       return token;
 *     },
 *   }),
 * });
 * client.on('open', ({ reconnected }) => client.send({ command: 'join', room: 1 }));
 * client.on('message', (msg) => console.log(msg));
 * client.on('close', ({ code, reason, willRetry }) => {
 *   if (!willRetry) showLogin(`${code} ${reason}`);
 * });
 * client.connect();
 * ```
 */
export function createClient(options: ClientOptions): PortcullisClient {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('createClient: options must be an object');
  }
  return new Client(options);
}
