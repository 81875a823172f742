/**
 * Waiting for something a test client or communicator receives, with a timeout.
 *
 * @module
 * @internal
 */

/** Raised by receive methods when nothing arrives in time. */
export class ReceiveTimeoutError extends Error {
  constructor(what: string, timeout: number) {
    super(`Timed out after ${timeout} ms waiting for ${what}`);
    this.name = 'ReceiveTimeoutError';
  }
}

/** Callers waiting for state to change; {@link wake} re-checks them all. */
export class Waiters {
  #waiting: (() => void)[] = [];

  /** Re-runs every pending check; call it whenever something arrives. */
  wake(): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const waiter of waiting) waiter();
  }

  /**
   * Resolves with the first defined value `check` returns, checking now and on every
   * wake; rejects when `check` throws or after `timeout` ms.
   */
  waitFor<T>(what: string, timeout: number, check: () => T | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting = this.#waiting.filter((waiter) => waiter !== listen);
        reject(new ReceiveTimeoutError(what, timeout));
      }, timeout);
      const listen = (): void => {
        let value: T | undefined;
        try {
          value = check();
        } catch (error) {
          clearTimeout(timer);
          reject(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        if (value === undefined) {
          this.#waiting.push(listen);
          return;
        }
        clearTimeout(timer);
        resolve(value);
      };
      listen();
    });
  }
}
