/**
 * Reconnect delays: capped exponential backoff with full jitter.
 *
 * @module
 */

/** Options of {@link backoff}. */
export interface BackoffOptions {
  /** The shortest delay in milliseconds; no retry happens sooner. */
  readonly minDelay: number;
  /** The longest delay in milliseconds, however many attempts failed. */
  readonly maxDelay: number;
  /**
   * A source of uniform numbers in `[0, 1)`; injectable so tests can pin the jitter.
   * @default Math.random
   */
  readonly random?: () => number;
}

/**
 * The delay before retry number `attempt` (0 for the first retry), in milliseconds.
 *
 * The delay is drawn uniformly between `minDelay` and the ceiling
 * `min(maxDelay, minDelay * 2 ** (attempt + 1))` ("full jitter", as in the AWS
 * architecture blog and centrifuge-js): spreading the whole range, rather than adding a
 * little noise to a fixed schedule, is what keeps thousands of clients dropped by one
 * server restart from reconnecting in lock-step. The floor keeps a flapping server from
 * seeing a retry sooner than `minDelay`.
 *
 * @example
 * ```ts
 * backoff(0, { minDelay: 500, maxDelay: 30_000 }); // between 500 and 1000
 * backoff(3, { minDelay: 500, maxDelay: 30_000 }); // between 500 and 8000
 * backoff(9, { minDelay: 500, maxDelay: 30_000 }); // between 500 and 30000
 * ```
 */
export function backoff(attempt: number, options: BackoffOptions): number {
  const { minDelay, maxDelay, random = Math.random } = options;
  // Beyond 2 ** 52 the product is past any sane maxDelay; clamping the exponent keeps
  // the arithmetic finite for clients that have retried for days.
  const exponent = Math.min(Math.max(attempt, 0), 52) + 1;
  const ceiling = Math.max(minDelay, Math.min(maxDelay, minDelay * 2 ** exponent));
  return minDelay + random() * (ceiling - minDelay);
}
