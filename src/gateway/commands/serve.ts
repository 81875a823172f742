/**
 * `portcullis serve`: runs the gateway until SIGTERM or SIGINT, in this process or, with
 * `--workers N`, in N cluster workers supervised by this one.
 *
 * @module
 */
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
  if (config.workers > 1 && !isClusterWorker()) {
    return servePrimary(context, config, demo);
  }
  try {
    return await serveOne(context, config, demo);
  } finally {
    releaseClusterWorker();
  }
}

async function serveOne(
  context: CommandContext,
  config: GatewayConfig,
  demo: boolean,
): Promise<number> {
  const { startGateway } = await import('../server.js');
  const announce = (line: string): void => void context.io.stdout.write(`${line}\n`);
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    gateway = await startGateway(config, { demo, announce });
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
