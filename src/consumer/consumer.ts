/**
 * Consumers: one instance per connection, with connect / receive / disconnect and
 * handlers for channel-layer messages (SPEC §2).
 *
 * @module
 */
import type { Logger } from 'pino';
import { BaseConnection, kConnectionClosed, kConnectionMessage } from '../application.js';
import type {
  Application,
  CloseEvent,
  Connection,
  ConnectionListener,
  IncomingData,
  OutgoingData,
} from '../application.js';
import { ServiceUnavailableError } from '../errors.js';
import { EnvelopeBatch, kLayerDelivery } from '../layers/layer.js';
import type {
  Envelope,
  ChannelLayer,
  GroupSendResult,
  LayerListener,
  LayerMessage,
} from '../layers/layer.js';
import { defaultLogger } from '../logging.js';
import { CloseCode, CloseReason } from '../protocol/close-codes.js';
import type { Scope } from '../scope.js';
import { itemsOf, withItem, withoutItem } from '../small-list.js';
import type { Few } from '../small-list.js';

/** Options of {@link WebsocketConsumer.asApp}. */
export interface ConsumerOptions {
  /** The channel layer for groups and channel sends. Without it, group methods throw. */
  layer?: ChannelLayer;
  /** Where consumer errors are logged. */
  logger?: Logger;
  /**
   * Messages (client frames and layer messages) that may wait while a handler runs. A
   * client past it is closed 4429; layer messages past it are dropped and logged.
   * @default 1000
   */
  maxQueuedMessages?: number;
}

/** A consumer class as {@link WebsocketConsumer.asApp} receives it. */
export type ConsumerClass<C extends WebsocketConsumer> = new (
  scope: Scope,
  connection: Connection,
  options: ConsumerOptions,
) => C;

/** A handler for a layer message; `envelope` carries the shared encodings. */
export type LayerHandler = (message: LayerMessage, envelope: Envelope) => unknown;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  );
}

/** Message types must look like `chat.message` or `user_left`: no client-made method names. */
const MESSAGE_TYPE = /^[A-Za-z][A-Za-z0-9]*(?:[._][A-Za-z0-9]+)*$/;

/**
 * The handler method name for a message type: `chat.message` → `onChatMessage`,
 * `user_left` → `onUserLeft`. `undefined` for a type that cannot name a handler.
 */
export function handlerNameFor(type: string): string | undefined {
  if (type.length > 99 || !MESSAGE_TYPE.test(type)) return undefined;
  return `on${type[0]!.toUpperCase()}${type.slice(1).replace(/[._]([A-Za-z0-9])/g, (_, c: string) => c.toUpperCase())}`;
}

let logger: Logger | undefined;
function fallbackLogger(): Logger {
  logger ??= defaultLogger();
  return logger;
}

/**
 * A consumer for one WebSocket connection. Subclass it and override {@link connect},
 * {@link receive} and {@link disconnect}; handle layer messages with methods named after
 * their type (`chat.message` → `onChatMessage(message)`). Only methods starting with
 * `on` that a subclass defines can be reached by a message type.
 *
 * Everything a consumer does (connect, each frame, each layer message, disconnect) runs
 * one at a time, in order. An error thrown anywhere closes this socket with 1011 (1013
 * for {@link ServiceUnavailableError}) and is logged; it never reaches the client.
 *
 * @example
 * ```ts
 * class Echo extends WebsocketConsumer {
 *   override receive(data: IncomingData) { this.send(data); }
 * }
 * const app = urlRouter([route('/ws/echo/', Echo.asApp())]);
 * ```
 */
export class WebsocketConsumer implements ConnectionListener, LayerListener {
  /** Groups joined before {@link connect} runs and left on disconnect. */
  readonly groups: readonly string[] = NO_GROUP_NAMES;
  readonly scope: Scope;
  /** The connection; prefer the consumer's own methods. */
  protected readonly connection: Connection;
  /** This consumer's channel on the layer, set before {@link connect} runs. */
  channelName: string | undefined;
  // The options every consumer of an app shares: one field rather than three per socket.
  readonly #options: ConsumerOptions;
  // Nothing until the first join (many consumers never join a group), then the group
  // name itself, an array only from the second.
  #joined: Few<string>;
  // One event at a time (SPEC §2, as Channels): `#busy` from the moment a handler is
  // called until what it returned has settled; events arriving meanwhile wait in
  // `#waiting`, in arrival order. Not busy implies nothing waits.
  #busy = false;
  #waiting: (() => unknown)[] | undefined;
  /** No `onWebsocketSend` handler: broadcasts go straight to the socket (asked once). */
  #forwardsSends: boolean | undefined;

  constructor(scope: Scope, connection: Connection, options: ConsumerOptions = {}) {
    this.scope = scope;
    this.connection = connection;
    this.#options = options;
  }

  /** The channel layer, when one was passed to {@link asApp}. */
  get layer(): ChannelLayer | undefined {
    return this.#options.layer;
  }

  protected get logger(): Logger {
    return this.#options.logger ?? fallbackLogger();
  }

  /**
   * Makes an {@link Application} that runs one instance of this consumer per connection.
   * @throws {RangeError} for an invalid `maxQueuedMessages`.
   */
  static asApp<C extends WebsocketConsumer>(
    this: ConsumerClass<C>,
    options: ConsumerOptions = {},
  ): Application {
    const { maxQueuedMessages = 1_000 } = options;
    if (!Number.isInteger(maxQueuedMessages) || maxQueuedMessages < 1) {
      throw new RangeError('The "maxQueuedMessages" option must be a positive integer');
    }
    return (scope, connection) => {
      new this(scope, connection, options).#start();
    };
  }

  #start(): void {
    const { connection, layer } = this;
    // A connection of this library takes the consumer itself as its listener: no
    // closures per socket. Other Connection implementations get functions.
    if (connection instanceof BaseConnection) connection.listenForClose(this);
    else connection.onClose((event) => this[kConnectionClosed](event));
    if (layer !== undefined) {
      const channel = layer.newChannel();
      this.channelName = channel;
      layer.attach(channel, this, { batches: true });
    }
    this.#run(() => this.#setUp());
  }

  /**
   * Joins `groups`, runs {@link connect}, then listens for frames. Not an `async`
   * function, so that a handshake with no groups and a synchronous `connect()` makes no
   * promise (docs/performance.md).
   */
  #setUp(): unknown {
    if (this.groups.length > 0) return this.#joinThenConnect();
    const connecting = this.connect();
    if (isThenable(connecting)) return connecting.then(() => this.#listen());
    this.#listen();
    return undefined;
  }

  async #joinThenConnect(): Promise<void> {
    for (const group of this.groups) await this.groupAdd(group);
    await this.connect();
    this.#listen();
  }

  #listen(): void {
    const { connection } = this;
    if (connection.state === 'pending') {
      this.logger.warn({ path: this.scope.path }, 'connect() neither accepted nor closed; closing');
      this.close(CloseCode.Forbidden, CloseReason.Forbidden);
      return;
    }
    if (connection instanceof BaseConnection) connection.listenForMessages(this);
    else connection.onMessage((data) => this[kConnectionMessage](data));
  }

  /** @internal A frame from the client, in order. */
  [kConnectionMessage](data: IncomingData): void {
    if (this.#queueFull()) {
      this.close(CloseCode.TooManyRequests, CloseReason.TooManyRequests);
      return;
    }
    this.#run(() => this.receive(data));
  }

  /** @internal The connection closed: disconnect, then leave the layer. */
  [kConnectionClosed](event: CloseEvent): void | Promise<void> {
    this.#run(() => this.disconnect(event));
    if (!this.#busy) return this.#leaveLayer();
    // Resolved by a task of its own, once everything before it (the disconnect) has run.
    return new Promise<void>((resolve) => this.#run(resolve)).then(() => this.#leaveLayer());
  }

  /** Detaching leaves every group too (a promise while a Redis layer confirms it). */
  #leaveLayer(): void | Promise<void> {
    const layer = this.layer;
    const channel = this.channelName;
    this.#joined = undefined;
    if (layer === undefined || channel === undefined) return;
    return layer.detach(channel);
  }

  #queueFull(): boolean {
    return (this.#waiting?.length ?? 0) >= (this.#options.maxQueuedMessages ?? 1_000);
  }

  /** Runs `task` now when idle, else after every event that arrived before it. */
  #run(task: () => unknown): void {
    if (this.#busy) {
      (this.#waiting ??= []).push(task);
      return;
    }
    this.#busy = true;
    this.#drain(task);
  }

  /** Runs `first`, then each waiting task; a returned promise is waited for first. */
  #drain(first: (() => unknown) | undefined): void {
    for (let task = first; task !== undefined; task = this.#waiting?.shift()) {
      let result: unknown;
      try {
        result = task();
      } catch (error) {
        this.#crashed(error);
        continue;
      }
      if (isThenable(result)) {
        const next = (): void => this.#drain(this.#waiting?.shift());
        result.then(next, (error: unknown) => {
          this.#crashed(error);
          next();
        });
        return;
      }
    }
    this.#waiting = undefined;
    this.#busy = false;
  }

  /**
   * Whether a `websocket.send` may go to the socket at once: nothing queued ahead of it
   * (order is kept) and no handler of the subclass's own (asked once per consumer).
   */
  #forwardsNow(): boolean {
    return (
      !this.#busy && (this.#forwardsSends ??= this.#findHandler('websocket.send') === undefined)
    );
  }

  /** @internal A delivery from the channel layer (this consumer is its own receiver). */
  [kLayerDelivery](delivery: Envelope | EnvelopeBatch): void {
    if (!(delivery instanceof EnvelopeBatch)) {
      this.#enqueueLayerMessage(delivery);
      return;
    }
    // A published batch to an idle consumer that forwards websocket.send: the whole
    // batch goes to the socket as one shared piece, framed once for every member.
    if (this.#forwardsNow()) {
      const outbound = delivery.outbound;
      if (outbound !== undefined) {
        if (this.connection.state === 'open') this.connection.send(outbound);
        return;
      }
    }
    for (const envelope of delivery.envelopes) this.#enqueueLayerMessage(envelope);
  }

  #enqueueLayerMessage(envelope: Envelope): void {
    // Broadcast fast path: an idle consumer that does not handle `websocket.send` itself
    // forwards at once, with no task allocated. Order is kept: nothing is queued ahead.
    if (envelope.message.type === 'websocket.send' && this.#forwardsNow()) {
      const outbound = envelope.outbound;
      if (outbound !== undefined && this.connection.state === 'open')
        this.connection.send(outbound);
      return;
    }
    if (this.#queueFull()) {
      this.logger.warn(
        { type: envelope.message.type },
        'consumer queue full: layer message dropped',
      );
      return;
    }
    this.#run(() => this.dispatch(envelope));
  }

  #crashed(error: unknown): void {
    if (error instanceof ServiceUnavailableError) {
      this.logger.warn({ err: error, path: this.scope.path }, 'backing service unavailable');
      this.close(CloseCode.TryAgainLater, CloseReason.TryAgainLater);
      return;
    }
    this.logger.error({ err: error, path: this.scope.path }, 'consumer error');
    if (this.connection.state === 'pending' || this.connection.state === 'open') {
      this.close(CloseCode.InternalError);
    }
  }

  /**
   * Called when the client connects. The default accepts, selecting `scope.protocol`
   * (set by a protocol router) or else the first subprotocol the client offered.
   * Override to check something first; call {@link close} to refuse.
   */
  connect(): void | Promise<void> {
    this.accept();
  }

  /** Called for each frame: text as a string, binary as bytes. The default ignores it. */
  receive(_data: IncomingData): void | Promise<void> {}

  /** Called once when the connection has closed, whoever closed it. */
  disconnect(_event: CloseEvent): void | Promise<void> {}

  /**
   * Accepts the connection. With no argument, selects `scope.protocol` or the first
   * offered subprotocol; `null` selects none.
   * @throws {RangeError} when `subprotocol` was not offered.
   */
  accept(subprotocol?: string | null): void {
    const chosen =
      subprotocol === undefined ? (this.scope.protocol ?? this.scope.subprotocols[0]) : subprotocol;
    this.connection.accept({ subprotocol: chosen ?? undefined });
  }

  /** Sends a text (string) or binary (bytes) frame. */
  send(data: OutgoingData): void {
    this.connection.send(data);
  }

  /** Closes the connection with a code from {@link CloseCode} and a fixed reason. */
  close(code: number = CloseCode.Normal, reason = ''): void {
    this.connection.close(code, reason);
  }

  #requireLayer(): ChannelLayer {
    if (this.layer === undefined) {
      throw new TypeError(
        `${this.constructor.name} has no channel layer: pass { layer } to asApp()`,
      );
    }
    return this.layer;
  }

  /** Joins a group; left automatically on disconnect. */
  groupAdd(group: string): Promise<void> {
    // Not async: every consumer that joins pays this once per handshake (~0.5 KB).
    let joining: Promise<void>;
    try {
      joining = this.#requireLayer().groupAdd(group, this.channelName!);
    } catch (error) {
      return Promise.reject(error);
    }
    return joining.then(() => {
      this.#joined = withItem(this.#joined, group);
    });
  }

  /** Leaves a group. */
  async groupDiscard(group: string): Promise<void> {
    const layer = this.#requireLayer();
    this.#joined = withoutItem(this.#joined, group);
    await layer.groupDiscard(group, this.channelName!);
  }

  /** Sends a message to every member of a group (this consumer included if a member). */
  groupSend(group: string, message: LayerMessage): Promise<GroupSendResult> {
    return this.#requireLayer().groupSend(group, message);
  }

  /** Groups this consumer has joined (a snapshot). */
  get joinedGroups(): ReadonlySet<string> {
    return new Set(itemsOf(this.#joined));
  }

  /**
   * Dispatches a layer message to the subclass's handler for its type. Built in:
   * `websocket.send` forwards `text` (or `json`, encoded once for the whole group) to
   * the client; `websocket.close` closes with its `code` and `reason`.
   */
  protected dispatch(envelope: Envelope): unknown {
    const { message } = envelope;
    const handler = this.#findHandler(message.type);
    if (handler !== undefined) return handler.call(this, message, envelope);
    if (message.type === 'websocket.send') {
      const outbound = envelope.outbound;
      if (outbound !== undefined && this.connection.state === 'open')
        this.connection.send(outbound);
      return undefined;
    }
    if (message.type === 'websocket.close') {
      const code = typeof message['code'] === 'number' ? message['code'] : CloseCode.Normal;
      const reason = typeof message['reason'] === 'string' ? message['reason'] : '';
      this.close(code, reason);
      return undefined;
    }
    this.logger.warn({ type: message.type.slice(0, 100) }, 'no handler for layer message type');
    return undefined;
  }

  #findHandler(type: string): LayerHandler | undefined {
    // Resolved once per class and type: a broadcast to 10,000 members of one class
    // must not walk prototypes 10,000 times.
    const prototype = Object.getPrototypeOf(this) as object;
    let cache = HANDLER_CACHE.get(prototype);
    if (cache === undefined) {
      cache = new Map();
      HANDLER_CACHE.set(prototype, cache);
    }
    if (cache.has(type)) return cache.get(type);
    const handler = this.#resolveHandler(type);
    // Bounded: client-influenced types must not grow the cache without limit.
    if (cache.size < 1_000) cache.set(type, handler);
    return handler;
  }

  #resolveHandler(type: string): LayerHandler | undefined {
    const name = handlerNameFor(type);
    if (name === undefined) return undefined;
    let prototype: object | null = Object.getPrototypeOf(this) as object | null;
    while (prototype !== null && !BASE_PROTOTYPES.has(prototype)) {
      if (Object.hasOwn(prototype, name)) {
        const candidate = (prototype as Record<string, unknown>)[name];
        return typeof candidate === 'function' ? (candidate as LayerHandler) : undefined;
      }
      prototype = Object.getPrototypeOf(prototype) as object | null;
    }
    return undefined;
  }
}

/**
 * Prototypes whose methods are never handlers. Subclasses shipped with the library
 * register theirs, so that e.g. `onX` helpers of the base classes stay unreachable.
 */
const NO_GROUP_NAMES: readonly string[] = Object.freeze([]);

const BASE_PROTOTYPES = new Set<object>([WebsocketConsumer.prototype, Object.prototype]);

/** Consumer prototype → message type → handler (or `undefined` for none). */
const HANDLER_CACHE = new WeakMap<object, Map<string, LayerHandler | undefined>>();

/** @internal Marks a library-provided consumer base class as never holding handlers. */
export function registerBaseConsumer(prototype: object): void {
  BASE_PROTOTYPES.add(prototype);
}
