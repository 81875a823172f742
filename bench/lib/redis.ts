/**
 * The Redis of the cross-process scenario. By default a private `redis-server` on a free
 * loopback port, started and stopped by the run: pub/sub channels ignore database
 * numbers, so on a shared Redis the bench's groups (`bench`, revocation groups named
 * after token ids) would reach other gateways using the same prefix, and theirs would
 * reach the bench. `BENCH_REDIS_URL` names another one instead.
 *
 * @module
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { connect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { spawnTracked, stopChild } from './process.js';

/** A Redis to use, and how to let it go. */
export interface BenchRedis {
  readonly url: string;
  /** Where it comes from, for the results file. */
  readonly origin: string;
  stop(): Promise<void>;
}

/** Sends `PING`; true on `+PONG` within `timeoutMs`. */
export function pingRedis(url: string, timeoutMs = 1_000): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port || 6379) });
    const done = (up: boolean): void => {
      socket.destroy();
      resolve(up);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function hasRedisServer(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A Redis for the run, or the reason there is none. */
export async function benchRedis(): Promise<BenchRedis | string> {
  const configured = process.env['BENCH_REDIS_URL'];
  if (configured !== undefined && configured !== '') {
    if (!(await pingRedis(configured))) return 'BENCH_REDIS_URL does not answer PING';
    return { url: configured, origin: 'BENCH_REDIS_URL', stop: async () => undefined };
  }
  if (!hasRedisServer()) return 'redis-server is not installed and BENCH_REDIS_URL is not set';
  const port = await freePort();
  const child: ChildProcess = spawnTracked(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    'redis',
  );
  const url = `redis://127.0.0.1:${port}`;
  // Bounded wait for it to listen: 50 tries, 100 ms apart.
  for (let attempt = 0; attempt < 50; attempt += 1) {
    if (await pingRedis(url, 500)) {
      return {
        url,
        origin: 'private redis-server',
        async stop() {
          child.kill('SIGTERM');
          await stopChild(child, 3_000);
        },
      };
    }
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGKILL');
  return 'the private redis-server did not start';
}
