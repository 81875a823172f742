/** Polls `check` until it holds or `timeout` ms pass; for state reached asynchronously. */
export async function eventually(
  check: () => boolean,
  timeout = 2_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeout} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
