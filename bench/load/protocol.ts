/**
 * What the coordinator asks of a load worker process, and what the worker reports.
 *
 * @module
 */
import type { Wire } from '../servers/protocol.js';

/** Where and how load clients connect. */
export interface Target {
  readonly wire: Wire;
  /** `ws://127.0.0.1:PORT/path` */
  readonly url: string;
  /** `http://127.0.0.1:PORT`, for tickets. */
  readonly httpBase: string;
}

/**
 * The credential each client presents. Client `i` of a batch uses `tokens[i % length]`,
 * so a batch as long as its token list gives every client its own token.
 */
export type CredentialPlan =
  | { readonly kind: 'none' }
  /** `Authorization: Token <t>` (opaque tokens) or `Bearer <t>` (JWTs). */
  | {
      readonly kind: 'header';
      readonly scheme: 'Token' | 'Bearer';
      readonly tokens: readonly string[];
    }
  /** `POST /api/auth/ticket` with the token, then `?ticket=` (SPEC §3), per connection. */
  | { readonly kind: 'ticket'; readonly tokens: readonly string[] }
  /** Socket.IO's `auth: {token}` in the CONNECT packet. */
  | { readonly kind: 'socketio'; readonly tokens: readonly string[] }
  /** `?id=<t>`: raw ws has no credentials, only a tag a logout can name. */
  | { readonly kind: 'tag'; readonly tokens: readonly string[] };

/** Failures by kind (`http-401`, `close-4401`, `timeout`, `error-EADDRNOTAVAIL`, …). */
export type ErrorCounts = Record<string, number>;

export interface ConnectReport {
  readonly opened: number;
  readonly errors: ErrorCounts;
  readonly elapsedMs: number;
}

export interface HandshakeReport {
  readonly ok: number;
  readonly errors: ErrorCounts;
  /** Time from the first attempt to the last completed one. */
  readonly elapsedMs: number;
  /** Time of each successful handshake (up to a bounded sample), in ms. */
  readonly latencyMs: number[];
}

export interface EchoReport {
  readonly sent: number;
  readonly received: number;
  /** Round trips measured from each message's scheduled send time, after warm-up, in µs. */
  readonly latencyUs: number[];
}

/** Delivery completeness of one worker's clients after a fan-out. */
export interface Tally {
  readonly clients: number;
  readonly expectedPerClient: number;
  readonly received: number;
  /** Clients that got fewer than expected. */
  readonly short: number;
  readonly missing: number;
  readonly extra: number;
}

export type WorkerMethods = {
  /**
   * Opens `count` idle clients in `group` (one group per server, so several servers'
   * clients can be held at once), numbered from `firstIndex`, kept until `closeAll`.
   */
  connect: {
    params: {
      group: string;
      target: Target;
      plan: CredentialPlan;
      count: number;
      firstIndex: number;
      concurrency: number;
      timeoutMs: number;
    };
    result: ConnectReport;
  };
  /** Opens and closes clients in a loop for at most `durationMs` and `maxCount` attempts. */
  handshakes: {
    params: {
      target: Target;
      plan: CredentialPlan;
      concurrency: number;
      durationMs: number;
      maxCount: number;
    };
    result: HandshakeReport;
  };
  /**
   * Resets the counters of `group`; `complete` is emitted once every client of it got
   * `perClient` messages.
   */
  expect: { params: { group: string; perClient: number }; result: null };
  /** Completeness of the group armed by the last `expect`. */
  tally: { params: null; result: Tally };
  /** Sends `{"echo":n}` at a fixed rate over the first `connections` clients of `group`. */
  echo: {
    params: {
      group: string;
      connections: number;
      rate: number;
      durationMs: number;
      warmupMs: number;
    };
    result: EchoReport;
  };
  /** Emits `closed` for every client the server closes from now on. */
  watch: { params: null; result: null };
  /** Closes the clients of `group`, or every client when `null`. */
  closeAll: { params: { group: string | null }; result: { closed: number } };
};

export type WorkerEvents = {
  /** The worker listens for requests. */
  ready: null;
  progress: { readonly received: number };
  complete: { readonly at: number };
  closed: {
    readonly index: number;
    /** {@link monotonicMs} when the close arrived. */
    readonly at: number;
    readonly code: number;
    readonly reason: string;
  };
};

/**
 * A millisecond clock shared by every process of the run: `hrtime` reads
 * `CLOCK_MONOTONIC`, which is system-wide, so times taken in different processes compare.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
