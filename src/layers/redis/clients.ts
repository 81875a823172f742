/**
 * Making the ioredis clients, for one Redis server or a Redis Cluster, with the same
 * fail-fast settings either way, and checking that what they reach is healthy.
 *
 * On a cluster, `url` names one node; the client discovers the others and routes each
 * command to the node that owns its key's slot. A client for a cluster is an ioredis
 * `Cluster`, which offers the same commands as `Redis`, so the rest of the layer and
 * presence use either through {@link RedisClient}.
 *
 * Only types are imported from `ioredis` here; the module itself is loaded by the
 * lifecycle's `open()`, so apps that never use Redis never load it.
 *
 * @internal
 * @module
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis';

/**
 * A connection to one Redis server, or to a Redis Cluster through its nodes.
 * @internal
 */
export type RedisClient = Redis | Cluster;

/** The two client classes of `ioredis`, once loaded. */
type Constructors = Pick<typeof import('ioredis'), 'Redis' | 'Cluster'>;

/**
 * Lua scripts to define on a connection as commands (EVALSHA, EVAL on NOSCRIPT).
 * @internal
 */
export type Scripts = Record<string, { lua: string; numberOfKeys: number }>;

/**
 * What an owner sets on one of its connections.
 * @internal
 */
export interface RedisClientOptions {
  /** Shown in `CLIENT LIST`, so operators can tell the connections apart. */
  connectionName: string;
  scripts?: Scripts;
  /** Whether ioredis resubscribes by itself after a reconnect. @default true */
  autoResubscribe?: boolean;
  /** On a cluster: `SSUBSCRIBE` goes to the node that owns each channel's slot. */
  shardedSubscribers?: boolean;
}

/**
 * Fail fast instead of queueing while Redis is away: no unbounded memory, no hung call;
 * a command in flight when the connection drops is rejected, never resent, so nothing
 * is reported done that Redis did not confirm.
 */
const FAIL_FAST = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
} satisfies RedisOptions;

/** @internal */
export interface ClientFactoryOptions {
  url: string;
  /** `url` names one node of a Redis Cluster. */
  cluster: boolean;
  connectTimeout: number;
  commandTimeout: number;
  /** ms before reconnect attempt `n` (from 1); `null` gives up. */
  reconnectDelay: (attempt: number) => number | null;
}

/**
 * The cluster's first node and the credentials every node shares, from `url`.
 * @throws {TypeError} when `url` selects a database: a cluster has only database 0.
 * @internal
 */
export function clusterNode(url: string): {
  node: { host: string; port: number };
  options: Pick<RedisOptions, 'username' | 'password' | 'tls'>;
} {
  const parsed = new URL(url);
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '' && db !== '0') {
    throw new TypeError(
      `The "url" option must not select a database (/${db}) with "cluster": a Redis Cluster has only database 0`,
    );
  }
  return {
    node: {
      host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: parsed.port === '' ? 6379 : Number(parsed.port),
    },
    options: {
      ...(parsed.username === '' ? {} : { username: decodeURIComponent(parsed.username) }),
      ...(parsed.password === '' ? {} : { password: decodeURIComponent(parsed.password) }),
      ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
    },
  };
}

/**
 * Makes clients with one set of settings. Created by the lifecycle once `ioredis` is
 * loaded.
 * @internal
 */
export class ClientFactory {
  readonly #ioredis: Constructors;
  readonly #options: ClientFactoryOptions;

  constructor(ioredis: Constructors, options: ClientFactoryOptions) {
    this.#ioredis = ioredis;
    this.#options = options;
  }

  /**
   * A long-lived connection that reconnects by itself, with backoff (the command or
   * the subscriber connection).
   */
  connection(options: RedisClientOptions): RedisClient {
    return this.#make(options, true);
  }

  /**
   * A disposable connection, connected on demand and never revived (a blocking read's:
   * a dropped one fails its call). No command timeout: a blocking command waits longer.
   */
  disposable(options: RedisClientOptions): RedisClient {
    return this.#make(options, false);
  }

  #make(options: RedisClientOptions, lasting: boolean): RedisClient {
    const { url, cluster, connectTimeout, commandTimeout, reconnectDelay } = this.#options;
    const { connectionName, scripts, autoResubscribe = true, shardedSubscribers = false } = options;
    const retry = lasting ? reconnectDelay : () => null;
    const connection = {
      ...FAIL_FAST,
      connectionName,
      connectTimeout,
      autoResubscribe,
      ...(lasting ? { commandTimeout } : {}),
    } satisfies RedisOptions;
    if (!cluster) {
      return new this.#ioredis.Redis(url, {
        ...connection,
        retryStrategy: retry,
        lazyConnect: !lasting,
        ...(scripts === undefined ? {} : { scripts }),
      });
    }
    const { node, options: credentials } = clusterNode(url);
    return new this.#ioredis.Cluster([node], {
      redisOptions: { ...connection, ...credentials },
      enableOfflineQueue: false,
      clusterRetryStrategy: retry,
      shardedSubscribers,
      lazyConnect: !lasting,
      ...(scripts === undefined ? {} : { scripts }),
    });
  }
}

/** `cluster_state:ok` in a `CLUSTER INFO` reply. */
const CLUSTER_OK = /^cluster_state:ok\r?$/m;

/**
 * Resolves when what `client` reaches answers: the server's `PING`; on a cluster, a
 * `PING` from every master that owns slots, and `cluster_state:ok`.
 * @throws what the first failing node throws, or an `Error` naming what is missing.
 * @internal
 */
export async function checkHealth(client: RedisClient): Promise<void> {
  if (!client.isCluster) {
    await client.ping();
    return;
  }
  const cluster = client as Cluster;
  let masters = slotOwners(cluster);
  if (masters.some(({ node }) => node === undefined)) {
    // ioredis drops a node that went away and takes it back only with a new slot map.
    await new Promise<void>((resolve, reject) =>
      cluster.refreshSlotsCache((err) => (err ? reject(err) : resolve())),
    );
    masters = slotOwners(cluster);
  }
  if (masters.length === 0) throw new Error('no slots known');
  const missing = masters.find(({ node }) => node === undefined);
  if (missing !== undefined) throw new Error(`no connection to the master at ${missing.key}`);
  const [info] = await Promise.all([
    cluster.cluster('INFO'),
    ...masters.map(({ node }) => node!.ping()),
  ]);
  if (typeof info !== 'string' || !CLUSTER_OK.test(info))
    throw new Error('cluster_state is not ok');
}

/** Every master that owns slots, as `host:port`, with its connection when ioredis has one. */
function slotOwners(cluster: Cluster): { key: string; node: Redis | undefined }[] {
  const keys = new Set<string>();
  for (const nodes of cluster.slots) if (nodes[0] !== undefined) keys.add(nodes[0]);
  const connections = new Map(
    cluster.nodes('master').map((node) => [`${node.options.host}:${node.options.port}`, node]),
  );
  return [...keys].map((key) => ({ key, node: connections.get(key) }));
}
