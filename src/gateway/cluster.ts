/**
 * `serve --workers N`: the primary process that runs N gateway workers sharing one port
 * through `node:cluster`.
 *
 * @module
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';

/** The bin that cluster workers run: the same command line, in a worker process. */
const BIN_PATH = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));

/** Options of {@link superviseWorkers}. */
export interface SuperviseWorkersOptions {
  /** How many workers. */
  readonly count: number;
  /** The `portcullis` arguments each worker runs (`['serve', ...]`). */
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Where the primary reports a worker that died. */
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
 * once, not N times. A worker that dies stops them all, leaving restarts to the
 * supervisor (systemd, Kubernetes).
 *
 * @returns `true` when every worker stopped cleanly after the shutdown request.
 */
export async function superviseWorkers(options: SuperviseWorkersOptions): Promise<boolean> {
  const { stderr } = options;
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(options.env)) if (value !== undefined) env[key] = value;
  cluster.setupPrimary({ exec: BIN_PATH, args: [...options.args] });

  const workers = new Set<Worker>();
  const listening = new Set<Worker>();
  let stopping = false;
  let failed = false;
  const exited = new Promise<void>((resolveAll) => {
    cluster.on('exit', (worker, code, signal) => {
      workers.delete(worker);
      if (!stopping || code !== 0) failed = true;
      // A worker that never listened printed its own one line (a taken port, say).
      if (!stopping && listening.has(worker)) {
        stderr.write(
          `portcullis: worker ${worker.id} exited (${signal ?? `status ${code}`}); stopping the others\n`,
        );
      }
      if (!stopping) stop();
      if (workers.size === 0) resolveAll();
    });
  });
  const stop = (): void => {
    stopping = true;
    for (const worker of workers) worker.process.kill('SIGTERM');
  };
  const start = (): Promise<boolean> =>
    new Promise((resolve) => {
      const worker = cluster.fork(env);
      workers.add(worker);
      worker.once('listening', () => {
        listening.add(worker);
        resolve(true);
      });
      worker.once('exit', () => resolve(false));
    });

  if (!(await start())) {
    // The worker already printed its one line; the primary adds none.
    await exited;
    return false;
  }
  const started = await Promise.all(Array.from({ length: options.count - 1 }, start));
  if (started.every(Boolean)) {
    await Promise.race([options.shutdownRequested(), exited]);
  }
  stop();
  await exited;
  return !failed;
}
