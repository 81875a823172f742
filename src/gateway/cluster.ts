/**
 * `serve --workers N`: the primary process that runs N gateway workers sharing one port
 * through `node:cluster`, and replaces a worker that dies.
 *
 * @module
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';

/** The bin that cluster workers run: the same command line, in a worker process. */
const BIN_PATH = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));

/**
 * Past this many replacements within {@link RESTART_WINDOW_MS}, something outside the
 * workers is wrong (the database is gone, memory is short): the primary stops and leaves
 * it to its own supervisor (systemd, Kubernetes) rather than restart in a loop.
 */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;

/** Options of {@link superviseWorkers}. */
export interface SuperviseWorkersOptions {
  /** How many workers. */
  readonly count: number;
  /** The `portcullis` arguments each worker runs (`['serve', ...]`). */
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Where the primary reports workers that die and are replaced. */
  readonly stderr: { write(chunk: string): unknown };
  /** Called once every worker listens; the workers stop when its promise resolves. */
  readonly shutdownRequested: () => Promise<unknown>;
}

/** Whether this process is a worker started by {@link superviseWorkers}. */
export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/** A worker's IPC channel keeps it alive after its work: let go of it so that it exits. */
export function releaseClusterWorker(): void {
  if (cluster.isWorker) cluster.worker?.disconnect();
}

/**
 * Starts `count` workers, the first alone so that a bad port or database is reported
 * once, not N times; a worker that fails before it ever listens stops them all. Once all
 * listen, a worker that dies is replaced, up to {@link MAX_RESTARTS} times a minute.
 * On shutdown every worker gets SIGTERM and closes its sockets with 1001.
 *
 * @returns `true` when every worker stopped cleanly after the shutdown request.
 */
export async function superviseWorkers(options: SuperviseWorkersOptions): Promise<boolean> {
  const { stderr } = options;
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(options.env)) if (value !== undefined) env[key] = value;
  cluster.setupPrimary({ exec: BIN_PATH, args: [...options.args] });

  const workers = new Set<Worker>();
  const restarts: number[] = [];
  let serving = false;
  let stopping = false;
  let failed = false;
  let allExited: () => void = () => undefined;
  const exited = new Promise<void>((resolve) => (allExited = resolve));

  const stop = (): void => {
    stopping = true;
    for (const worker of workers) worker.process.kill('SIGTERM');
    if (workers.size === 0) allExited();
  };
  const start = (): Promise<boolean> =>
    new Promise((resolve) => {
      const worker = cluster.fork(env);
      workers.add(worker);
      worker.once('listening', () => resolve(true));
      worker.once('exit', () => resolve(false));
    });

  cluster.on('exit', (worker, code, signal) => {
    workers.delete(worker);
    const how = signal ?? `status ${code}`;
    if (stopping) {
      if (code !== 0) failed = true;
      if (workers.size === 0) allExited();
      return;
    }
    // Still starting: the worker printed its own one line (a taken port, say).
    if (!serving) return;
    const now = Date.now();
    while (restarts.length > 0 && now - restarts[0]! > RESTART_WINDOW_MS) restarts.shift();
    if (restarts.length >= MAX_RESTARTS) {
      stderr.write(
        `portcullis: worker ${worker.id} (pid ${worker.process.pid}) exited (${how}) after ${MAX_RESTARTS} restarts within ${RESTART_WINDOW_MS / 1_000} s; stopping the others\n`,
      );
      failed = true;
      stop();
      return;
    }
    restarts.push(now);
    stderr.write(
      `portcullis: worker ${worker.id} (pid ${worker.process.pid}) exited (${how}); starting another\n`,
    );
    void start();
  });

  if (await start()) {
    const started = await Promise.all(Array.from({ length: options.count - 1 }, start));
    if (started.every(Boolean)) {
      serving = true;
      await Promise.race([options.shutdownRequested(), exited]);
    }
  }
  // A worker that failed before listening printed why; the primary adds nothing.
  if (!serving) failed = true;
  if (!stopping) stop();
  await exited;
  return !failed;
}
