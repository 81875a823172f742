/**
 * A real Redis Cluster of three masters (no replicas) on free ports of this machine,
 * made of the machine's `redis-server` and `redis-cli`, for tests that need cluster
 * behaviour: slots, MOVED redirections, sharded pub/sub, a master that restarts.
 *
 * ```ts
 * const cluster = await startRedisCluster();
 * t.after(() => cluster.close());
 * const url = cluster.url; // one node; the client discovers the others
 * await cluster.restartNode(1);
 * ```
 *
 * Every node keeps its cluster state in a file under a temporary folder of its own
 * (removed on close) and no data (`--save ''`, `--appendonly no`): a restarted master
 * rejoins with its slots and nothing in them, as after a crash without persistence.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, stopProcess } from './processes.js';

const run = promisify(execFile);

/** True when this machine has the binaries a cluster needs. */
export function hasRedisClusterTools(): boolean {
  return (
    spawnSync('redis-server', ['--version']).error === undefined &&
    spawnSync('redis-cli', ['--version']).error === undefined
  );
}

/** Options of {@link startRedisCluster}. */
export interface RedisClusterOptions {
  /** ms before the others mark a silent master as failed (`cluster-node-timeout`). @default 1000 */
  nodeTimeout?: number;
}

/** A running cluster; see {@link startRedisCluster}. */
export interface RedisCluster {
  /** `redis://127.0.0.1:<port of the first node>` */
  readonly url: string;
  /** The client ports of the three masters. */
  readonly ports: readonly number[];
  /** Stops a master at once (SIGKILL), as a crash would. */
  stopNode(index: number): Promise<void>;
  /** Starts a stopped master again, with its slots and no data, and waits for `cluster_state:ok`. */
  startNode(index: number): Promise<void>;
  /** Waits until every running node reports `cluster_state:ok`. */
  waitUntilOk(timeout?: number): Promise<void>;
  /** Stops every node and removes their files. */
  close(): Promise<void>;
}

async function clusterState(port: number): Promise<string | undefined> {
  try {
    const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info'], {
      timeout: 2_000,
    });
    return /cluster_state:(\w+)/.exec(stdout)?.[1];
  } catch {
    return undefined;
  }
}

async function waitFor(
  check: () => Promise<boolean>,
  what: string,
  timeout: number,
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`redis cluster: ${what} within ${timeout} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Starts three `redis-server --cluster-enabled yes` on free ports, joins them with
 * `redis-cli --cluster create … --cluster-replicas 0`, and resolves once every node
 * says `cluster_state:ok`.
 *
 * @throws when a node does not start or the cluster does not form within 15 s.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const { nodeTimeout = 1_000 } = options;
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-redis-cluster-'));
  const ports: number[] = [];
  const busPorts: number[] = [];
  // Ports one by one: a port handed out and then released could be handed out again.
  while (ports.length < 3) {
    const port = await freePort();
    const bus = await freePort();
    if ([...ports, ...busPorts].includes(port) || [...ports, ...busPorts, port].includes(bus)) {
      continue;
    }
    ports.push(port);
    busPorts.push(bus);
  }
  const nodes: (ChildProcess | undefined)[] = [];

  const start = async (index: number): Promise<void> => {
    const port = ports[index]!;
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-port',
        String(busPorts[index]),
        '--cluster-config-file',
        `nodes-${port}.conf`,
        '--cluster-node-timeout',
        String(nodeTimeout),
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--logfile',
        join(dir, `redis-${port}.log`),
      ],
      { stdio: 'ignore' },
    );
    nodes[index] = child;
    await waitFor(
      async () => (await clusterState(port)) !== undefined,
      `node ${port} did not start`,
      5_000,
    );
  };

  const cluster: RedisCluster = {
    url: `redis://127.0.0.1:${ports[0]}`,
    ports,
    async stopNode(index) {
      const node = nodes[index];
      nodes[index] = undefined;
      if (node !== undefined) await stopProcess(node, 'SIGKILL');
    },
    async startNode(index) {
      if (nodes[index] !== undefined) throw new Error(`node ${index} is running`);
      await start(index);
      await cluster.waitUntilOk();
    },
    async waitUntilOk(timeout = 15_000) {
      await waitFor(
        async () => {
          const states = await Promise.all(
            ports.filter((_, index) => nodes[index] !== undefined).map(clusterState),
          );
          return states.every((state) => state === 'ok');
        },
        'cluster_state did not become ok',
        timeout,
      );
    },
    async close() {
      await Promise.all(nodes.map((node) => (node === undefined ? undefined : stopProcess(node))));
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    await Promise.all([0, 1, 2].map(start));
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((port) => `127.0.0.1:${port}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { timeout: 15_000 },
    );
    await cluster.waitUntilOk();
  } catch (error) {
    await cluster.close();
    throw error;
  }
  return cluster;
}
