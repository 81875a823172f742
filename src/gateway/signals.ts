/**
 * When a running `serve` should stop (SPEC §8: SIGINT and SIGTERM, once or twice, through
 * `npm start` or directly, close every socket with 1001 before the process exits).
 *
 * @module
 */

/** What asked `serve` to stop: a signal, or `'abort'` for an in-process caller's signal. */
export type ShutdownCause = 'SIGINT' | 'SIGTERM' | 'abort';

/** Options of {@link shutdownRequested}. */
export interface ShutdownOptions {
  /** Stops `serve` in process (tests, embedding); no signal is caught then. */
  readonly abort?: AbortSignal | undefined;
  /**
   * How long the process may take to stop after the signal; past it, `onOverdue` runs and
   * the process exits with status 1, whatever still hangs.
   */
  readonly deadlineMs: number;
  readonly onOverdue: () => void;
}

/**
 * Resolves on the first SIGTERM or SIGINT, or when `abort` aborts.
 *
 * Later signals are taken as the same request and ignored, never as "stop now": Ctrl-C in
 * a terminal reaches every process of the foreground group and npm forwards it once more,
 * so one keypress arrives twice, and a second keypress must not drop the sockets the
 * first is closing. What bounds a shutdown that hangs is the deadline instead.
 */
export function shutdownRequested(options: ShutdownOptions): Promise<ShutdownCause> {
  const { abort } = options;
  if (abort !== undefined) {
    return new Promise((resolve) => {
      if (abort.aborted) resolve('abort');
      else abort.addEventListener('abort', () => resolve('abort'), { once: true });
    });
  }
  return new Promise((resolve) => {
    let requested = false;
    const onSignal = (signal: 'SIGINT' | 'SIGTERM'): void => {
      if (requested) return;
      requested = true;
      resolve(signal);
      // Unreferenced: a shutdown that finishes in time exits without waiting for it.
      setTimeout(() => {
        options.onOverdue();
        process.exit(1);
      }, options.deadlineMs).unref();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
