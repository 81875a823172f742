/**
 * When a running `serve` should stop.
 *
 * @module
 */

/**
 * Resolves on the first SIGTERM or SIGINT (or when `shutdown` aborts). Afterwards a
 * second signal takes its default action and ends the process, the usual way out of a
 * shutdown that hangs; with `keepIgnoring` (cluster workers) later signals stay caught,
 * since their primary decides.
 */
export function shutdownRequested(
  shutdown: AbortSignal | undefined,
  keepIgnoring: boolean,
): Promise<void> {
  if (shutdown !== undefined) {
    return new Promise((resolve) => {
      if (shutdown.aborted) resolve();
      else shutdown.addEventListener('abort', () => resolve(), { once: true });
    });
  }
  return new Promise((resolve) => {
    const onSignal = (): void => {
      if (!keepIgnoring) {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
