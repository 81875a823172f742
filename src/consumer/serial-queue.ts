/**
 * Runs a consumer's work one task at a time, in arrival order, as Channels does per
 * consumer instance. Synchronous tasks on an idle queue run at once with no promise
 * allocated: broadcast deliveries stay cheap.
 *
 * @module
 * @internal
 */

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  );
}

export class SerialQueue<Owner = unknown> {
  #pending = 0;
  // Created with the first asynchronous task: most consumers of a broadcast never have one.
  #tail: Promise<void> | undefined;
  readonly #owner: Owner;
  // Shared by every queue of a kind and called with the owner: no closure per consumer.
  readonly #onError: (owner: Owner, error: unknown) => void;

  constructor(owner: Owner, onError: (owner: Owner, error: unknown) => void) {
    this.#owner = owner;
    this.#onError = onError;
  }

  /** Tasks queued or running asynchronously. */
  get pending(): number {
    return this.#pending;
  }

  run(task: () => unknown): void {
    if (this.#pending === 0) {
      let result: unknown;
      try {
        result = task();
      } catch (error) {
        this.#onError(this.#owner, error);
        return;
      }
      if (!isThenable(result)) return;
      this.#track(Promise.resolve(result));
      return;
    }
    this.#track((this.#tail ?? Promise.resolve()).then(task));
  }

  #track(work: Promise<unknown>): void {
    this.#pending += 1;
    const tail: Promise<void> = work.then(
      () => this.#settled(tail),
      (error: unknown) => {
        this.#settled(tail);
        this.#onError(this.#owner, error);
      },
    );
    this.#tail = tail;
  }

  #settled(tail: Promise<void>): void {
    this.#pending -= 1;
    // Idle again: drop the settled promise instead of keeping it for the socket's life.
    if (this.#pending === 0 && this.#tail === tail) this.#tail = undefined;
  }

  /** Resolves when every task queued so far has finished. */
  idle(): Promise<void> {
    return this.#tail ?? Promise.resolve();
  }
}
