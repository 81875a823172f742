/**
 * The `ws` adapter: HTTP upgrade → {@link Scope} → {@link Application}. The only module
 * that imports `ws` (STYLE.md practice 2).
 *
 * @module
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import type { Logger } from 'pino';
import * as wsModule from 'ws';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { BaseConnection } from '../application.js';
import type { Application, OutgoingData } from '../application.js';
import { defaultLogger } from '../logging.js';
import { OutboundBatch, OutboundMessage } from '../outbound.js';
import { CloseCode, CloseReason, limitCloseReason } from '../protocol/close-codes.js';
import type { CloseReasonText } from '../protocol/close-codes.js';
import { scopeFromRequest } from '../scope.js';
import type { Scope } from '../scope.js';

/** Options of {@link attachWebSocket}. Every limit has a safe default. */
export interface WebSocketTransportOptions {
  /**
   * Largest message accepted, in bytes, fragments included; a larger one closes 1009.
   * @default 65536 (64 KiB)
   */
  maxMessageSize?: number;
  /**
   * Bytes that may wait to be written to one socket. A client that does not read fast
   * enough to stay under it is disconnected, so memory stays bounded.
   * @default 1048576 (1 MiB)
   */
  maxBufferedBytes?: number;
  /**
   * Interval between pings, in ms. A peer that has not answered the previous ping (nor
   * sent anything) by the next one is disconnected. `0` switches heartbeats off.
   * @default 30000
   */
  heartbeatInterval?: number;
  /**
   * Time the app has to accept or refuse a handshake, in ms; then it closes 1013.
   * @default 10000
   */
  handshakeTimeout?: number;
  /**
   * Upper bound applied to the server's `headersTimeout` (Node's default is 60 s, which
   * lets slow-header clients hold sockets for a minute). `0` leaves it alone.
   * @default 10000
   */
  headersTimeout?: number;
  /** Enables permessage-deflate (costs ~230 KB per connection once used). @default false */
  perMessageDeflate?: boolean;
  /** Where errors and warnings go; credentials are redacted. */
  logger?: Logger;
}

/** What {@link WebSocketTransport.close} accepts. */
export interface TransportCloseOptions {
  /** How long to wait for disconnect handlers before terminating sockets, in ms. @default 10000 */
  timeout?: number;
}

const kSelectedProtocol = Symbol('portcullis.ws.selectedProtocol');

type UpgradeRequest = IncomingMessage & { [kSelectedProtocol]?: string | null };

/** The part of ws's (untyped) `Sender` class used here: its frame builder. */
interface WsSender {
  frame(
    data: Buffer,
    options: { fin: boolean; rsv1: boolean; opcode: number; mask: boolean; readOnly: boolean },
  ): Buffer[];
}
const { Sender } = wsModule as unknown as { Sender: WsSender };

function buildFrame(data: string | Uint8Array, binary: boolean): Buffer[] {
  const payload =
    typeof data === 'string'
      ? Buffer.from(data)
      : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  // Sender.frame is ws's own framer; ws is pinned to an exact version and a test covers it.
  return Sender.frame(payload, {
    fin: true,
    rsv1: false,
    opcode: binary ? 0x02 : 0x01,
    mask: false,
    readOnly: false,
  });
}

function sharedFrame(message: OutboundMessage): Buffer {
  return (message.wsFrame ??= Buffer.concat(buildFrame(message.data, message.binary)));
}

function batchFrames(batch: OutboundBatch): Buffer {
  return (batch.wsFrame ??= Buffer.concat(batch.messages.map(sharedFrame)));
}

function abortHandshake(
  socket: Duplex,
  status: number,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (socket.writable) {
    const body = STATUS_CODES[status] ?? 'Error';
    const lines = [
      `HTTP/1.1 ${status} ${body}`,
      'Connection: close',
      'Content-Type: text/plain; charset=utf-8',
      `Content-Length: ${Buffer.byteLength(body)}`,
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    ];
    socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
  }
  socket.destroy();
}

const kConnection = Symbol('portcullis.ws.connection');
type OwnedWebSocket = WebSocket & { [kConnection]: WsConnection };
type OwnedSocket = Duplex & { [kConnection]: WsConnection };

function destroyOnError(this: Duplex): void {
  this.destroy();
}

function onPendingSocketClose(this: Duplex): void {
  (this as OwnedSocket)[kConnection].droppedWhilePending();
}

function onSocketMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  (this as OwnedWebSocket)[kConnection].received(data, isBinary);
}
function onSocketError(this: WebSocket, error: Error & { code?: string }): void {
  (this as OwnedWebSocket)[kConnection].protocolError(error);
}
function onSocketClose(this: WebSocket, code: number, reason: Buffer): void {
  (this as OwnedWebSocket)[kConnection].closed(code, reason);
}

/**
 * The concatenation of the last queue flushed, reused while the next sockets' queues
 * hold the very same frame buffers (identity, not content: shared group frames).
 */
class CoalescedWrite {
  #frames: readonly Buffer[] = [];
  #buffer: Buffer | undefined;

  concat(frames: readonly Buffer[]): Buffer {
    const previous = this.#frames;
    if (this.#buffer !== undefined && previous.length === frames.length) {
      let same = true;
      for (let index = 0; index < frames.length; index += 1) {
        if (previous[index] !== frames[index]) {
          same = false;
          break;
        }
      }
      if (same) return this.#buffer;
    }
    this.#frames = frames;
    this.#buffer = Buffer.concat(frames);
    return this.#buffer;
  }
}

class WsConnection extends BaseConnection {
  readonly #transport: WebSocketTransport;
  // Needed only until the handshake completes; released then (about 1.3 KB a socket).
  #request: UpgradeRequest | undefined;
  readonly #socket: Duplex;
  #head: Buffer | undefined;
  #ws: WebSocket | undefined;
  // Frames waiting for the end-of-turn flush; no array while none wait (most of the time).
  #queue: Buffer[] | undefined;
  /** While frames are queued: what the socket held at the turn's first frame, plus them. */
  #queuedBytes = 0;
  #serverClosed = false;
  /**
   * The socket's `bytesRead` at the last heartbeat ping, -1 before the first. Any bytes
   * since, a pong or a frame, are a sign of life: no `pong` listener (a fourth key in
   * ws's listener dictionary costs ~100 bytes a socket) and no write per frame.
   */
  #bytesReadAtPing = -1;

  constructor(
    transport: WebSocketTransport,
    request: UpgradeRequest,
    socket: Duplex,
    head: Buffer,
    scope: Scope,
  ) {
    super(scope.subprotocols);
    this.#transport = transport;
    this.#request = request;
    this.#socket = socket;
    this.#head = head;
    (socket as OwnedSocket)[kConnection] = this;
    // on(), not once(): once() wraps the listener in a new closure per socket.
    socket.on('close', onPendingSocketClose);
  }

  /** @internal The client went away before the app decided. */
  droppedWhilePending(): void {
    if (this.#ws === undefined) this.deliverClose({ code: 1006, reason: '', byServer: false });
  }

  protected transportAccept(subprotocol: string | null): void {
    this.#transport.decided(this);
    const request = this.#request!;
    request[kSelectedProtocol] = subprotocol;
    this.#transport.server.handleUpgrade(request, this.#socket, this.#head!, (ws) => {
      this.#opened(ws);
    });
    this.#request = undefined;
    this.#head = undefined;
    // ws completes the upgrade synchronously; no callback means it refused the request
    // (bad Sec-WebSocket-Key, socket gone) and already answered it.
    if (this.#ws === undefined) this.deliverClose({ code: 1006, reason: '', byServer: false });
  }

  #opened(ws: WebSocket): void {
    this.#ws = ws;
    this.#socket.off('close', onPendingSocketClose);
    // Shared listeners that find their connection on the socket: four closures fewer
    // per connection (about 300 bytes each time 15,000 idle sockets).
    (ws as OwnedWebSocket)[kConnection] = this;
    ws.on('message', onSocketMessage);
    ws.on('error', onSocketError);
    ws.on('close', onSocketClose);
    // ws has its own socket error listener now; ours was for the handshake only.
    this.#socket.off('error', destroyOnError);
  }

  protected override onFinished(): void {
    this.#transport.decided(this);
    this.#transport.forget(this, this.closeEvent?.code ?? 1006);
  }

  /** @internal Called by the shared `message` listener. */
  received(data: Buffer, isBinary: boolean): void {
    this.#transport.stats.messagesIn += 1;
    this.deliverMessage(
      isBinary ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : data.toString(),
    );
  }

  /** @internal Called by the shared `error` listener. */
  protocolError(error: Error & { code?: string }): void {
    // Peer protocol errors (oversized or invalid frames): ws closes with the right code.
    this.#transport.logger.debug(
      { connection: this.id, code: error.code },
      'websocket protocol error',
    );
  }

  /** @internal Called by the shared `close` listener. */
  closed(code: number, reason: Buffer): void {
    this.#queue = undefined;
    this.deliverClose({ code, reason: reason.toString(), byServer: this.#serverClosed });
  }

  protected transportReject(status: number, headers: Readonly<Record<string, string>>): void {
    this.#transport.decided(this);
    abortHandshake(this.#socket, status, headers);
  }

  protected transportSend(data: OutgoingData): void {
    if (data instanceof OutboundMessage) {
      // The broadcast path, once per member: one shared frame, no allocation.
      this.#enqueue(sharedFrame(data));
      return;
    }
    if (data instanceof OutboundBatch) {
      // A published batch, once per member: all its frames as one shared buffer.
      this.#enqueue(batchFrames(data));
      this.#transport.stats.messagesOut += data.messages.length - 1;
      return;
    }
    const [header, payload] = buildFrame(data, typeof data !== 'string');
    this.#enqueue(header!, payload);
  }

  #enqueue(frame: Buffer, payload?: Buffer): void {
    const size = frame.length + (payload?.length ?? 0);
    let queue = this.#queue;
    // What the socket still holds cannot change before the flush: read it once per turn.
    const pending = queue === undefined ? this.#socket.writableLength : this.#queuedBytes;
    if (pending + size > this.#transport.maxBufferedBytes) {
      this.#transport.logger.warn(
        { connection: this.id },
        'slow client: outbound buffer full, disconnecting',
      );
      this.terminate();
      return;
    }
    if (queue === undefined) {
      queue = this.#queue = [];
      this.#transport.scheduleFlush(this);
    }
    queue.push(frame);
    if (payload !== undefined) queue.push(payload);
    this.#queuedBytes = pending + size;
    this.#transport.stats.messagesOut += 1;
  }

  /**
   * Writes every frame queued during this event-loop turn in one write: one syscall
   * per socket per turn instead of one per message. `shared` carries the previous
   * socket's concatenation, reused when this socket got the same frames (a group
   * burst), so a burst is copied once for the whole group.
   */
  flush(shared: CoalescedWrite): void {
    const queue = this.#queue;
    if (queue === undefined) return;
    this.#queue = undefined;
    this.#queuedBytes = 0;
    const socket = this.#socket;
    if (socket.destroyed) return;
    if (queue.length === 1) {
      socket.write(queue[0]!);
      return;
    }
    socket.write(shared.concat(queue));
  }

  protected transportClose(code: number, reason: string): void {
    this.flush(new CoalescedWrite());
    this.#serverClosed = true;
    this.#ws?.close(code, limitCloseReason(reason));
  }

  /** Drops the TCP connection without a close handshake (dead or slow peers). */
  terminate(): void {
    this.#serverClosed = true;
    this.#queue = undefined;
    if (this.#ws !== undefined) this.#ws.terminate();
    else this.#socket.destroy();
  }

  /** Heartbeat tick: disconnects a peer silent since the last ping, then pings. */
  heartbeat(): void {
    if (this.#ws === undefined || this.state !== 'open') return;
    // Node's HTTP server hands upgrades a net.Socket (or TLS socket), which counts reads;
    // a stream that does not is never taken for dead.
    const bytesRead = (this.#socket as Partial<Socket>).bytesRead ?? -1;
    if (bytesRead !== -1 && bytesRead === this.#bytesReadAtPing) {
      this.#transport.logger.debug({ connection: this.id }, 'peer did not answer ping');
      this.terminate();
      return;
    }
    this.#bytesReadAtPing = bytesRead;
    this.#ws.ping();
  }
}

/**
 * Runs an {@link Application} on every WebSocket upgrade of an HTTP server.
 * Create it with {@link attachWebSocket}.
 */
export class WebSocketTransport {
  /** @internal */ readonly server: WebSocketServer;
  /** @internal */ readonly logger: Logger;
  /** @internal */ readonly maxBufferedBytes: number;
  /**
   * Frames received from and queued to clients, and finished connections by close code,
   * for metrics. Counted here rather than by a listener per connection: hot path.
   */
  readonly stats = { messagesIn: 0, messagesOut: 0, closeCodes: new Map<number, number>() };
  readonly #httpServer: Server;
  readonly #app: Application;
  readonly #handshakeTimeout: number;
  readonly #connections = new Set<WsConnection>();
  readonly #heartbeat: NodeJS.Timeout | undefined;
  #dirty: WsConnection[] = [];
  #closing = false;
  /**
   * Handshakes the app has not decided yet → their deadline (ms, `Date.now()`), in
   * arrival order, which is deadline order (one timeout for all): one sweep timer instead
   * of a timer set and cleared per socket. The deadline lives here, not on the
   * connection: a time does not fit a small integer, and a field that held one keeps a
   * 16-byte number box for the socket's whole life.
   */
  readonly #undecided = new Map<WsConnection, number>();
  #deadlineTimer: NodeJS.Timeout | undefined;

  constructor(httpServer: Server, app: Application, options: WebSocketTransportOptions = {}) {
    const {
      maxMessageSize = 64 * 1024, // 64 KiB
      maxBufferedBytes = 1024 * 1024, // 1 MiB
      heartbeatInterval = 30_000, // 30 s
      handshakeTimeout = 10_000, // 10 s
      headersTimeout = 10_000, // 10 s
      perMessageDeflate = false,
      logger = defaultLogger(),
    } = options;
    if (typeof app !== 'function') throw new TypeError('The application must be a function');
    for (const [name, value] of Object.entries({
      maxMessageSize,
      maxBufferedBytes,
      heartbeatInterval,
      handshakeTimeout,
      headersTimeout,
    })) {
      if (!Number.isInteger(value) || value < 0) {
        throw new RangeError(`The "${name}" option must be a non-negative integer`);
      }
    }
    if (maxMessageSize === 0) throw new RangeError('The "maxMessageSize" option must be positive');
    this.#httpServer = httpServer;
    this.#app = app;
    this.logger = logger;
    this.maxBufferedBytes = maxBufferedBytes;
    this.#handshakeTimeout = handshakeTimeout;
    this.server = new WebSocketServer({
      noServer: true,
      maxPayload: maxMessageSize,
      perMessageDeflate,
      clientTracking: false,
      handleProtocols: (_offered, request: UpgradeRequest) => request[kSelectedProtocol] ?? false,
    });
    if (headersTimeout > 0 && httpServer.headersTimeout > headersTimeout) {
      httpServer.headersTimeout = headersTimeout;
    }
    httpServer.on('upgrade', this.#onUpgrade);
    if (heartbeatInterval > 0) {
      this.#heartbeat = setInterval(() => {
        for (const connection of this.#connections) connection.heartbeat();
      }, heartbeatInterval);
      this.#heartbeat.unref();
    }
  }

  /** Number of live connections, pending handshakes included. */
  get size(): number {
    return this.#connections.size;
  }

  /** @internal Drops a connection that has finished. */
  forget(connection: WsConnection, code: number): void {
    this.#connections.delete(connection);
    const closeCodes = this.stats.closeCodes;
    closeCodes.set(code, (closeCodes.get(code) ?? 0) + 1);
  }

  /** @internal The app accepted or refused the handshake, or the socket went away. */
  decided(connection: WsConnection): void {
    this.#undecided.delete(connection);
  }

  /** Checks deadlines ten times per timeout period (at most every second, at least every 10 ms). */
  #startDeadlineSweep(): NodeJS.Timeout {
    const period = Math.min(1_000, Math.max(10, Math.floor(this.#handshakeTimeout / 10)));
    const timer = setInterval(() => {
      const now = Date.now();
      for (const [connection, deadline] of this.#undecided) {
        if (deadline > now) break;
        this.#undecided.delete(connection);
        if (connection.state === 'pending') {
          this.logger.warn({ connection: connection.id }, 'handshake timed out');
          connection.close(CloseCode.TryAgainLater, CloseReason.TryAgainLater);
        }
      }
      if (this.#undecided.size === 0) {
        clearInterval(timer);
        this.#deadlineTimer = undefined;
      }
    }, period);
    timer.unref();
    return timer;
  }

  /** @internal Queues a connection for the end-of-turn flush. */
  scheduleFlush(connection: WsConnection): void {
    if (this.#dirty.length === 0) setImmediate(this.#flushAll);
    this.#dirty.push(connection);
  }

  readonly #flushAll = (): void => {
    const dirty = this.#dirty;
    this.#dirty = [];
    const shared = new CoalescedWrite();
    for (const connection of dirty) connection.flush(shared);
  };

  readonly #onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', destroyOnError);
    if (this.#closing) {
      abortHandshake(socket, 503);
      return;
    }
    const scope = scopeFromRequest(request);
    if (this.#app.match !== undefined && !this.#app.match(scope)) {
      abortHandshake(socket, 404);
      return;
    }
    const connection = new WsConnection(this, request, socket, head, scope);
    this.#connections.add(connection);
    if (this.#handshakeTimeout > 0) {
      this.#undecided.set(connection, Date.now() + this.#handshakeTimeout);
      this.#deadlineTimer ??= this.#startDeadlineSweep();
    }

    try {
      const result = this.#app(scope, connection);
      if (result !== undefined) {
        result.catch((error: unknown) => this.#crashed(connection, scope, error));
      }
    } catch (error) {
      this.#crashed(connection, scope, error);
    }
  };

  #crashed(connection: WsConnection, scope: Scope, error: unknown): void {
    this.logger.error(
      { err: error, connection: connection.id, path: scope.path },
      'application error',
    );
    connection.close(CloseCode.InternalError);
  }

  /**
   * Closes every live socket (handshakes in progress included) with `code` and
   * `reason`, and keeps accepting new ones: for a backing service lost, so clients
   * reconnect and resync (1013 `try again later`).
   *
   * @example
   * ```ts
   * transport.closeConnections(CloseCode.TryAgainLater, CloseReason.TryAgainLater);
   * ```
   * @returns how many sockets were told.
   */
  closeConnections(code: CloseCode, reason: CloseReasonText): number {
    const connections = [...this.#connections];
    for (const connection of connections) connection.close(code, reason);
    return connections.length;
  }

  /**
   * Graceful shutdown: refuses new handshakes, closes every socket with 1001 `going
   * away`, waits for disconnect handlers, then terminates what is left. Does not close
   * the HTTP server.
   */
  async close(options: TransportCloseOptions = {}): Promise<void> {
    const { timeout = 10_000 } = options;
    this.#closing = true;
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    clearInterval(this.#deadlineTimer);
    const connections = [...this.#connections];
    for (const connection of connections)
      connection.close(CloseCode.GoingAway, CloseReason.GoingAway);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeout);
    });
    await Promise.race([Promise.all(connections.map((c) => c.finished)), timedOut]);
    clearTimeout(timer);
    for (const connection of this.#connections) connection.terminate();
    this.#httpServer.off('upgrade', this.#onUpgrade);
    this.server.close();
  }
}

/**
 * Attaches an app to an HTTP server's `upgrade` event (plain `http.Server`, Express or
 * Fastify's `server`).
 *
 * @example
 * ```ts
 * const server = http.createServer();
 * const transport = attachWebSocket(server, urlRouter([route('/ws/echo/', EchoConsumer.asApp())]));
 * server.listen(8000);
 * ```
 * @throws {TypeError | RangeError} on invalid options.
 */
export function attachWebSocket(
  server: Server,
  app: Application,
  options?: WebSocketTransportOptions,
): WebSocketTransport {
  return new WebSocketTransport(server, app, options);
}

/** A running server made by {@link listen}. */
export interface RunningServer {
  readonly httpServer: Server;
  readonly transport: WebSocketTransport;
  readonly port: number;
  /** `ws://host:port` */
  readonly url: string;
  /** Graceful shutdown: sockets get 1001, disconnect handlers run, then the server closes. */
  close(options?: TransportCloseOptions): Promise<void>;
}

/** Options of {@link listen}. */
export interface ListenOptions extends WebSocketTransportOptions {
  /** @default 0 (any free port) */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
}

/**
 * Starts an HTTP server that serves only WebSockets with `app`.
 *
 * @example
 * ```ts
 * const running = await listen(app, { port: 8000 });
 * process.on('SIGTERM', () => void running.close());
 * ```
 */
export async function listen(
  app: Application,
  options: ListenOptions = {},
): Promise<RunningServer> {
  const { port = 0, host = '127.0.0.1', ...transportOptions } = options;
  const httpServer = createServer((_request, response) => {
    response.writeHead(426, { 'Content-Type': 'text/plain', Upgrade: 'websocket' });
    response.end('Upgrade Required');
  });
  const transport = attachWebSocket(httpServer, app, transportOptions);
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(port, host, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const address = httpServer.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    httpServer,
    transport,
    port: address.port,
    url: `ws://${urlHost}:${address.port}`,
    async close(closeOptions) {
      await transport.close(closeOptions);
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}
