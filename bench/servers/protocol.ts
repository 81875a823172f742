/**
 * What a bench server child and the coordinator say to each other. Each server runs in
 * its own process so that its CPU time and memory are its own, read with
 * `process.cpuUsage()` and `process.memoryUsage()` inside it.
 *
 * @module
 */

/** The three servers compared. */
export type ServerName = 'portcullis' | 'raw-ws' | 'socketio';

/** How a load client talks to a server: plain WebSocket JSON frames, or Socket.IO v4 packets. */
export type Wire = 'ws' | 'socketio';

/** Options passed to a server child as its single JSON argument. */
export interface ServerOptions {
  /** `redis://…` for the cross-process scenario; omitted for a single process. */
  redisUrl?: string;
  /** Portcullis: the SQLite file (shared by the two processes of the Redis scenario). */
  databasePath?: string;
  /** Portcullis: HS256 secret of the JWT authenticator; the coordinator signs with it. */
  jwtSecret?: string;
  /** Portcullis: creates the bench user (only the first of two processes on one database). */
  seed?: boolean;
}

/** Resource usage of a server process at one instant. */
export interface ServerStats {
  /** `process.cpuUsage()`: user and system CPU since the process started, in µs. */
  readonly userUs: number;
  readonly systemUs: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

/** Sent once the server listens. */
export interface ReadyEvent {
  readonly name: ServerName;
  readonly pid: number;
  readonly port: number;
  readonly wire: Wire;
  /** The WebSocket path (`/ws/bench/`, `/`, `/socket.io/?EIO=4&transport=websocket`). */
  readonly wsPath: string;
  /** `POST` here with `{group, messages}` fans out to every connected bench socket. */
  readonly publishPath: string;
  /** Headers of a publish request (the Portcullis publish key). */
  readonly publishHeaders: Readonly<Record<string, string>>;
  /** `POST` here with `Authorization: Token <t>` revokes `t` and closes its sockets. */
  readonly logoutPath: string;
  /** Portcullis: the bench user's id, the `sub` of the JWTs the coordinator signs. */
  readonly userId?: string;
}

/** Sent instead of `ready` when the server cannot run here; the scenario is skipped. */
export interface UnavailableEvent {
  readonly reason: string;
}

export type ServerMethods = {
  /** Usage now; with `gc`, after full collections (the child runs with `--expose-gc`). */
  stats: { params: { gc: boolean }; result: ServerStats };
  /** Creates `count` credentials the server accepts (opaque tokens). */
  issue: { params: { count: number }; result: { tokens: string[] } };
  /** Makes tokens issued by a peer process valid here (Socket.IO keeps them in a Map). */
  register: { params: { tokens: string[] }; result: null };
  /** Closes the server, then the process exits. */
  shutdown: { params: null; result: null };
};

export type ServerEvents = {
  ready: ReadyEvent;
  unavailable: UnavailableEvent;
};

/** The bench group every server's sockets join (SPEC §9 names it for Portcullis). */
export const BENCH_GROUP = 'bench';
