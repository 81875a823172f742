/**
 * How big each scenario is: `full` for `npm run bench` (minutes, bounded per scenario),
 * `smoke` for `npm run bench:smoke` and CI (a few hundred connections, seconds).
 *
 * @module
 */

export type Payload = 'small' | '1KiB';

export interface Sizes {
  /** Load worker processes, and 127.0.0.x source addresses per worker. */
  readonly workers: number;
  readonly addressesPerWorker: number;
  /** Distinct tokens the idle clients of one server cycle through. */
  readonly tokenPool: number;
  /** In-flight handshakes while opening idle clients. */
  readonly connectConcurrency: number;
  readonly memory: { readonly connections: readonly number[] };
  readonly handshakes: {
    readonly concurrency: readonly number[];
    /** Measured time per case, split over {@link rounds}. */
    readonly durationMs: number;
    /**
     * Cases take turns in this many rounds (order rotated each round), so that the
     * host's load drifting over a minute weighs on every case alike.
     */
    readonly rounds: number;
    readonly warmupMs: number;
    readonly maxCount: number;
    /** Pre-signed distinct JWTs of the uncached-JWT case (its count bound). */
    readonly uniqueJwts: number;
  };
  readonly echo: {
    readonly connections: number;
    /** Offered rate, messages per second in total. */
    readonly rate: number;
    readonly durationMs: number;
    readonly warmupMs: number;
  };
  readonly fanout: {
    readonly members: readonly number[];
    readonly payloads: readonly Payload[];
    /** Messages per publish: 10 is a burst, 1 is one message per event-loop turn. */
    readonly bursts: readonly number[];
    /** Deliveries per case; messages per client = deliveries / members. */
    readonly deliveries: number;
    /**
     * Deliveries per case in bursts, which run several times faster: more of them keep
     * the measured interval long enough to be steady (seconds, not a fraction of one).
     */
    readonly burstDeliveries: number;
    /** Messages per client published ahead of the slowest delivery, at most. */
    readonly window: number;
    readonly timeoutMs: number;
  };
  readonly cluster: {
    readonly members: number;
    readonly messages: number;
    readonly burst: number;
    readonly revocations: number;
    readonly timeoutMs: number;
  };
}

export const FULL: Sizes = {
  workers: 4,
  addressesPerWorker: 8,
  tokenPool: 64,
  connectConcurrency: 200,
  memory: { connections: [5_000, 15_000] },
  handshakes: {
    concurrency: [50, 200],
    durationMs: 5_000,
    rounds: 5,
    warmupMs: 1_000,
    maxCount: 100_000,
    uniqueJwts: 20_000,
  },
  echo: { connections: 100, rate: 2_000, durationMs: 10_000, warmupMs: 1_000 },
  fanout: {
    members: [1_000, 10_000],
    payloads: ['small', '1KiB'],
    bursts: [10, 1],
    deliveries: 300_000,
    burstDeliveries: 1_000_000,
    window: 20,
    timeoutMs: 60_000,
  },
  cluster: { members: 2_000, messages: 100, burst: 10, revocations: 200, timeoutMs: 60_000 },
};

export const SMOKE: Sizes = {
  workers: 2,
  addressesPerWorker: 2,
  tokenPool: 8,
  connectConcurrency: 50,
  memory: { connections: [300] },
  handshakes: {
    concurrency: [20],
    durationMs: 500,
    rounds: 1,
    warmupMs: 100,
    maxCount: 2_000,
    uniqueJwts: 300,
  },
  echo: { connections: 20, rate: 200, durationMs: 1_000, warmupMs: 200 },
  fanout: {
    members: [200],
    payloads: ['small'],
    bursts: [10, 1],
    deliveries: 4_000,
    burstDeliveries: 4_000,
    window: 20,
    timeoutMs: 15_000,
  },
  cluster: { members: 100, messages: 20, burst: 10, revocations: 10, timeoutMs: 15_000 },
};
