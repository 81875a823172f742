/**
 * Fixed-window counters per client address, for failed WebSocket authentications
 * (4429) and REST logins (429).
 *
 * @module
 */

// Bounds memory under an address-spraying attack; the oldest windows are dropped first.
const MAX_TRACKED_ADDRESSES = 100_000;

/** Options of {@link AddressWindowLimiter}. */
export interface AddressWindowLimiterOptions {
  /** Events allowed per address per window; `0` switches the limit off. */
  readonly max: number;
  readonly windowMs: number;
  readonly now: () => number;
}

/** Counts events per address in fixed windows. */
export class AddressWindowLimiter {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #windows = new Map<string, { count: number; resetAt: number }>();

  constructor(options: AddressWindowLimiterOptions) {
    this.#max = options.max;
    this.#windowMs = options.windowMs;
    this.#now = options.now;
  }

  #secondsLeft(resetAt: number, now: number): number {
    return Math.max(1, Math.ceil((resetAt - now) / 1000));
  }

  /** Counts one event. @returns seconds to wait when this event is over the limit, else 0. */
  hit(address: string): number {
    if (this.#max === 0) return 0;
    const now = this.#now();
    let window = this.#windows.get(address);
    if (window === undefined || now >= window.resetAt) {
      this.#windows.delete(address);
      if (this.#windows.size >= MAX_TRACKED_ADDRESSES) this.#sweep(now);
      window = { count: 0, resetAt: now + this.#windowMs };
      this.#windows.set(address, window);
    }
    window.count += 1;
    return window.count > this.#max ? this.#secondsLeft(window.resetAt, now) : 0;
  }

  /** True while no address has anything counted: nothing can be over the limit. */
  get idle(): boolean {
    return this.#max === 0 || this.#windows.size === 0;
  }

  /** @returns seconds to wait when the address has used up its window, else 0. Counts nothing. */
  retryAfter(address: string): number {
    if (this.#max === 0) return 0;
    const window = this.#windows.get(address);
    const now = this.#now();
    if (window === undefined || now >= window.resetAt) return 0;
    return window.count >= this.#max ? this.#secondsLeft(window.resetAt, now) : 0;
  }

  #sweep(now: number): void {
    for (const [address, window] of this.#windows) {
      if (now >= window.resetAt) this.#windows.delete(address);
    }
    for (const address of this.#windows.keys()) {
      if (this.#windows.size < MAX_TRACKED_ADDRESSES) break;
      this.#windows.delete(address);
    }
  }
}
