/**
 * `portcullis serve`: runs the gateway until SIGTERM or SIGINT, in this process or, with
 * `--workers N`, in N cluster workers supervised by this one.
 *
 * @module
 */
import { createServer } from 'node:net';
import { isClusterWorker, releaseClusterWorker, superviseWorkers } from '../cluster.js';
import type { GatewayConfig } from '../config.js';
import { shutdownRequested } from '../signals.js';
import type { ShutdownOptions } from '../signals.js';
import { configFor, ExitCode, withStore } from './command.js';
import type { CliIO, CommandContext } from './command.js';
import { CommandFailed, describeDatabase, describeFailure } from './failures.js';

/**
 * How long a gateway may take to stop: the transport gives disconnect handlers 10 s, then
 * the HTTP server, the layer and the database close.
 */
const WORKER_SHUTDOWN_DEADLINE_MS = 15_000;
/** The primary outlives its workers' deadline, so they report their own overrun. */
const PRIMARY_SHUTDOWN_DEADLINE_MS = WORKER_SHUTDOWN_DEADLINE_MS + 5_000;

export async function serve(context: CommandContext): Promise<number> {
  const { values } = context.parsed;
  const flag = (name: string): string | undefined =>
    typeof values[name] === 'string' ? values[name] : undefined;
  const port = flag('port');
  const host = flag('host');
  const workers = flag('workers');
  const config = configFor(context, {
    ...(port === undefined ? {} : { port }),
    ...(host === undefined ? {} : { host }),
    ...(workers === undefined ? {} : { workers }),
    bench: values['bench'] === true,
  });
  const demo = values['demo'] === true;
  if (isClusterWorker()) {
    try {
      return await serveOne(context, config, demo, async () => undefined);
    } finally {
      releaseClusterWorker();
    }
  }
  const release = await holdPort(config);
  try {
    return config.workers > 1
      ? await servePrimary(context, config, demo, release)
      : await serveOne(context, config, demo, release);
  } finally {
    await release();
  }
}

async function serveOne(
  context: CommandContext,
  config: GatewayConfig,
  demo: boolean,
  releasePort: () => Promise<void>,
): Promise<number> {
  const { startGateway } = await import('../server.js');
  const announce = (line: string): void => void context.io.stdout.write(`${line}\n`);
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    gateway = await startGateway(config, { demo, announce, beforeListen: releasePort });
  } catch (error) {
    throw new CommandFailed(describeStartFailure(error, config));
  }
  const cause = await shutdownRequested(shutdownOptions(context.io, WORKER_SHUTDOWN_DEADLINE_MS));
  gateway.logger.info({ cause }, 'shutting down: every socket closes with 1001 going away');
  await gateway.close();
  return ExitCode.Ok;
}

function shutdownOptions(io: CliIO, deadlineMs: number): ShutdownOptions {
  return {
    abort: io.shutdown,
    deadlineMs,
    onOverdue: () =>
      void io.stderr.write(
        `portcullis: shutdown still unfinished after ${deadlineMs / 1_000} s; exiting with what hangs\n`,
      ),
  };
}

/**
 * Binds the port before anything else and holds it until the gateway is ready to take
 * it: a port already taken (a gateway running, a second `npm start`) or a host that
 * cannot be bound fails at once, and of two gateways started at the same moment the
 * second fails on the port before it migrates or seeds the database they share.
 *
 * @returns a function that lets the port go; later calls do nothing.
 */
async function holdPort(config: GatewayConfig): Promise<() => Promise<void>> {
  // Port 0 is a new port for every listen: there is nothing to hold.
  if (config.port === 0) return async () => undefined;
  // Refused like a closed port until the gateway listens; a connection kept open would
  // also keep close() waiting.
  const holder = createServer((socket) => socket.destroy());
  try {
    await new Promise<void>((resolve, reject) => {
      holder.once('error', reject);
      holder.listen({ port: config.port, host: config.host, exclusive: true }, resolve);
    });
  } catch (error) {
    throw new CommandFailed(describeStartFailure(error, config));
  }
  let released: Promise<void> | undefined;
  return () => (released ??= new Promise((resolve) => holder.close(() => resolve())));
}

function describeStartFailure(error: unknown, config: GatewayConfig): string {
  const code = (error as { code?: unknown } | null)?.code;
  const where = `${config.host}:${config.port}`;
  switch (code) {
    case 'EADDRINUSE':
      return `port ${config.port} on ${config.host} is already in use (set PORT or --port)`;
    case 'EACCES':
      return `no permission to listen on ${where} (ports below 1024 need privileges)`;
    case 'EADDRNOTAVAIL':
      return `HOST ${config.host} is not an address of this machine`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `HOST ${config.host} does not resolve to an address`;
    default:
      return describeFailure(error, describeDatabase(config.databaseUrl));
  }
}

/**
 * `serve --workers N`: this process migrates (and seeds the demo) once, then supervises N
 * copies of the command as cluster workers sharing the port, replacing any that dies.
 */
async function servePrimary(
  context: CommandContext,
  config: GatewayConfig,
  demo: boolean,
  releasePort: () => Promise<void>,
): Promise<number> {
  const { io } = context;
  await withStore(
    config,
    async (store) => {
      if (store.kind === 'sqlite') await store.migrate();
      if (demo) {
        const { seedDemo } = await import('../demo.js');
        await seedDemo(store, (line) => void io.stdout.write(`${line}\n`));
      }
    },
    { autoMigrate: false },
  );
  await releasePort();
  const clean = await superviseWorkers({
    count: config.workers,
    // The demo was seeded above, once: workers would race on it.
    args: ['serve', ...context.args.filter((arg) => arg !== '--demo')],
    env: io.env,
    stderr: io.stderr,
    shutdownRequested: () => shutdownRequested(shutdownOptions(io, PRIMARY_SHUTDOWN_DEADLINE_MS)),
  });
  return clean ? ExitCode.Ok : ExitCode.Failure;
}
