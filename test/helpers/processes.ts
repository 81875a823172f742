// Real child processes for scale-out tests: throwaway redis-server instances and
// gateway processes started from the built bin.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, connect as netConnect } from 'node:net';
import { createInterface } from 'node:readline';
import { isCI, serviceSuiteOptions } from './services.js';

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

function redisAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    const done = (up: boolean): void => {
      socket.destroy();
      resolve(up);
    };
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

/** A redis-server of the test's own, on `port`, that the test may kill and restart. */
export async function startRedisServer(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 5_000;
  while (!(await redisAnswers(port))) {
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return child;
}

export async function stopProcess(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGKILL',
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  await once(child, 'exit');
}

export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** Every line the process printed. */
  readonly lines: string[];
}

/** True when `npm run build` has produced the CLI these tests start. */
export function builtCli(): boolean {
  return existsSync('dist/gateway/cli.js');
}

export interface GatewayProcessOptions {
  /** What to run instead of `node bin/portcullis.js serve` (`['npm', 'start']`). */
  readonly command?: readonly [string, ...string[]];
  /**
   * In a process group of its own, as a terminal runs a job: `process.kill(-child.pid,
   * 'SIGINT')` then reaches every process of it, as Ctrl-C does.
   */
  readonly detached?: boolean;
  /** @default a free port */
  readonly port?: number;
}

/** Starts `portcullis serve` on a free port and resolves once it listens. */
export async function startGatewayProcess(
  env: Record<string, string>,
  options: GatewayProcessOptions = {},
): Promise<GatewayProcess> {
  const port = options.port ?? (await freePort());
  const [command, ...args] = options.command ?? [process.execPath, 'bin/portcullis.js', 'serve'];
  const child = spawn(command, args, {
    env: { ...process.env, LOG_LEVEL: 'info', ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached === true,
  });
  const lines: string[] = [];
  const url = `http://127.0.0.1:${port}`;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`gateway did not start:\n${lines.join('\n')}`)),
      15_000,
    );
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        lines.push(line);
        if (line.includes('portcullis gateway listening')) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
    // 'close', not 'exit': the last lines it printed are read by then.
    child.once('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code}:\n${lines.join('\n')}`));
    });
  });
  return { child, url, lines };
}

/**
 * Whether constructing `className` from `modulePath` (without connecting) loads ioredis,
 * checked in a fresh process since the test file itself may have loaded it.
 */
export async function constructingLoadsIoredis(
  modulePath: string,
  className: string,
): Promise<boolean> {
  const script = [
    "import { createRequire } from 'node:module';",
    `const { ${className} } = await import(${JSON.stringify(modulePath)});`,
    `new ${className}();`,
    'const cache = createRequire(import.meta.url).cache;',
    "console.log(Object.keys(cache).some((path) => path.includes('/node_modules/ioredis/')));",
  ].join('\n');
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await once(child, 'exit');
  if (output.trim() !== 'true' && output.trim() !== 'false') {
    throw new Error(`unexpected output from the probe process: ${output}`);
  }
  return output.trim() === 'true';
}

/**
 * Options for a `describe` of tests that start gateway processes on PostgreSQL: skipped
 * locally, with the reason, without PostgreSQL or a build; never skipped in CI, where
 * what is missing fails the suite instead.
 */
export async function gatewaySuiteOptions(): Promise<{ skip: string | false }> {
  const postgres = await serviceSuiteOptions('postgres');
  if (postgres.skip !== false) return postgres;
  if (!builtCli() && !isCI()) return { skip: 'run `npm run build` first' };
  return { skip: false };
}
