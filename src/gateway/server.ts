/**
 * The gateway: REST token API, WebSocket endpoints, publish API and the MultiChat app,
 * assembled from the library's public pieces (SPEC §6-§9).
 *
 * @module
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { ConfigError } from '../errors.js';
import type { Logger } from 'pino';
import { Accounts } from '../auth/accounts.js';
import { ticketAuthenticator, tokenAuthenticator } from '../auth/authenticators/token.js';
import { jwtAuthenticator } from '../auth/authenticators/jwt.js';
import type { Authenticator } from '../auth/authenticator.js';
import { constantTimeEqual } from '../auth/tokens.js';
import { stack } from '../application.js';
import type { Application } from '../application.js';
import { groupSendAll, isValidName } from '../layers/layer.js';
import type { ChannelLayer } from '../layers/layer.js';
import { MemoryChannelLayer } from '../layers/memory.js';
import { MemoryPresence } from '../layers/presence.js';
import type { Presence } from '../layers/presence.js';
import { REDACTED_PATHS } from '../logging.js';
import { authMiddleware } from '../middleware/auth.js';
import { connectionLimits } from '../middleware/limits.js';
import { originMatcher } from '../middleware/origin.js';
import { CloseCode, CloseReason } from '../protocol/close-codes.js';
import { installErrorHandlers, portcullisRest, requireUser } from '../rest/index.js';
import { route, urlRouter } from '../routing/url-router.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/store.js';
import { attachWebSocket } from '../transport/ws.js';
import type { WebSocketTransport } from '../transport/ws.js';
import { wrapApplication } from '../application.js';
import { benchApp } from './apps/bench.js';
import { canJoin, multichatApp } from './apps/multichat/index.js';
import { defaultAllowedOrigins } from './config.js';
import type { GatewayConfig } from './config.js';
import { seedDemo } from './demo.js';
import { MAX_TICKETS, openLimits } from './limits.js';
import type { LimitsRedis } from './limits.js';
import type { DjangoMode } from './django.js';
import { GatewayMetrics } from './metrics.js';
import { RedisHealth, redisLocation } from './redis.js';

/** A running gateway. */
export interface Gateway {
  /** `http://host:port` */
  readonly url: string;
  readonly port: number;
  readonly store: Store;
  /** Users, passwords and tokens over {@link Gateway.store}, with the configured `TOKEN_TTL`. */
  readonly accounts: Accounts;
  readonly layer: ChannelLayer;
  readonly logger: Logger;
  /** Graceful shutdown: stop accepting, 1001 to every socket, finish work, close. */
  close(): Promise<void>;
}

/** Options of {@link startGateway}. */
export interface StartGatewayOptions {
  logger?: Logger;
  /** Seed two users and two rooms when the database has no users (`npm start`). */
  demo?: boolean;
  /** Where seeded passwords are printed. @default process.stdout */
  announce?: (line: string) => void;
  /**
   * Runs once everything is ready, just before the port is bound: `serve` holds the port
   * until then, so a second gateway started at the same moment fails on the port before
   * it touches the database.
   */
  beforeListen?: () => Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The compiled output root (`dist/`), where the page and client SDK modules live. */
const distRoot = join(here, '..');

/** How often live sessions' credentials are re-read from the database: 5 s (issue 12). */
const RECHECK_INTERVAL = 5_000;

/** How often readiness is re-checked; new sockets are refused (1013) while not ready. */
const READINESS_INTERVAL = 1_000;

function createLogger(level: string): Logger {
  const options = { level, redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' } };
  if (process.stdout.isTTY) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { colorize: true } } });
  }
  return pino(options);
}

async function openLayer(
  config: GatewayConfig,
  logger: Logger,
  health: RedisHealth,
): Promise<ChannelLayer> {
  const location = redisLocation(config);
  if (location === null) return new MemoryChannelLayer();
  const { RedisChannelLayer } = await import('../layers/redis/layer.js');
  return RedisChannelLayer.connect({ ...location, logger, onStatus: health.track('layer') });
}

/**
 * Presence for MultiChat's enter/leave notices: in Redis when scaled out, so that the
 * members of a killed process leave the room for everyone once their heartbeat expires.
 */
async function openPresence(
  config: GatewayConfig,
  layer: ChannelLayer,
  logger: Logger,
  health: RedisHealth,
): Promise<Presence> {
  const location = redisLocation(config);
  if (location === null) return new MemoryPresence({ logger });
  const { RedisPresence } = await import('../layers/redis/presence.js');
  const processId =
    'processId' in layer && typeof layer.processId === 'string' ? layer.processId : undefined;
  return RedisPresence.connect({
    ...location,
    logger,
    onStatus: health.track('presence'),
    ttl: config.presenceTtlMs,
    heartbeatInterval: Math.floor(config.presenceTtlMs / 3),
    ...(processId === undefined ? {} : { processId }),
  });
}

function buildAuthenticators(
  config: GatewayConfig,
  store: Store,
  django: DjangoMode | undefined,
): Authenticator[] {
  const authenticators: Authenticator[] = [
    tokenAuthenticator({ store }),
    ticketAuthenticator({ store }),
  ];
  // SPEC §11: Django's own credentials after Portcullis's (config makes JWT_* exclusive).
  if (django !== undefined) return [...authenticators, ...django.authenticators];
  const { jwt } = config;
  const claims = {
    ...(jwt.issuer === null ? {} : { issuer: jwt.issuer }),
    ...(jwt.audience === null ? {} : { audience: jwt.audience }),
  };
  if (jwt.secret !== null) authenticators.push(jwtAuthenticator({ secret: jwt.secret, ...claims }));
  else if (jwt.jwksUrl !== null)
    authenticators.push(jwtAuthenticator({ jwksUrl: jwt.jwksUrl, ...claims }));
  return authenticators;
}

/**
 * Starts the gateway and resolves once it listens.
 *
 * @example
 * ```ts
 * const gateway = await startGateway(loadConfig());
 * process.once('SIGTERM', () => void gateway.close());
 * ```
 * @throws {ServiceUnavailableError} when the database or Redis cannot be reached.
 * @throws {SchemaOutdatedError} when a PostgreSQL schema is missing or older than the code.
 * @throws {Error} with code `EADDRINUSE` when the port is taken.
 */
export async function startGateway(
  config: GatewayConfig,
  options: StartGatewayOptions = {},
): Promise<Gateway> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const store = openStore(config.databaseUrl);
  let layer: ChannelLayer | undefined;
  let fastify: FastifyInstance | undefined;
  let presence: Presence | undefined;
  let django: DjangoMode | undefined;
  try {
    // SPEC §8: the embedded database is migrated here; any other is left to
    // `portcullis migrate`, and a gateway on a schema it does not match refuses to start.
    if (store.kind === 'sqlite') await store.migrate();
    else await store.checkSchema();
    if (config.django !== null) {
      const { openDjangoMode } = await import('./django.js');
      // channels_redis speaks to one Redis server, as Django's side does.
      if (config.redisCluster && config.redisUrl !== null) {
        throw new ConfigError(
          'DJANGO_DATABASE_URL with REDIS_CLUSTER: channels_redis interop needs one Redis server, as channels_redis itself does',
        );
      }
      django = await openDjangoMode(config.django, config.redisUrl, logger);
    }
    if (options.demo === true)
      await seedDemo(store, options.announce ?? ((line) => process.stdout.write(`${line}\n`)));
    const health = new RedisHealth(logger);
    const rawLayer = await openLayer(config, logger, health);
    layer = rawLayer;
    presence = await openPresence(config, rawLayer, logger, health);
    return await assemble(config, store, rawLayer, presence, django, logger, health, (instance) => {
      fastify = instance;
      const { beforeListen } = options;
      // listen() runs the onReady hooks before it binds.
      if (beforeListen !== undefined) instance.addHook('onReady', beforeListen);
    });
  } catch (error) {
    await fastify?.close().catch(() => undefined);
    await django?.close().catch(() => undefined);
    await presence?.close().catch(() => undefined);
    await layer?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw error;
  }
}

async function assemble(
  config: GatewayConfig,
  store: Store,
  rawLayer: ChannelLayer,
  presence: Presence,
  django: DjangoMode | undefined,
  logger: Logger,
  health: RedisHealth,
  expose: (fastify: FastifyInstance) => void,
): Promise<Gateway> {
  const fastify: FastifyInstance = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast drops pino's extra generic parameters.
    loggerInstance: logger as FastifyBaseLogger,
    // Request lines would carry URLs (tickets ride in query strings); errors still log.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 256 * 1024,
  });
  expose(fastify);
  installErrorHandlers(fastify);
  // The transport needs the app, which needs the metrics, which count the transport's sockets.
  const live: { transport?: WebSocketTransport } = {};
  const idle = { size: 0, messagesIn: 0, messagesOut: 0, closeCodes: new Map<number, number>() };
  const metrics = new GatewayMetrics(() =>
    live.transport === undefined ? idle : { size: live.transport.size, ...live.transport.stats },
  );
  const layer = metrics.instrumentLayer(rawLayer);
  const authenticators = buildAuthenticators(config, store, django);
  // The default allow-list names the gateway's own origin, whose port is only known
  // after listen() when the configured port is 0.
  let originAllowed = originMatcher(config.allowedOrigins);
  const rateLimits = openLimits(
    config,
    'key' in rawLayer && 'client' in rawLayer ? (rawLayer as LimitsRedis) : undefined,
  );
  const auth = authMiddleware({
    authenticators,
    ...(rateLimits.failures === undefined ? {} : { failureLimiter: rateLimits.failures }),
    ...(rateLimits.messageRate === undefined ? {} : { messageRate: rateLimits.messageRate }),
    allowedOrigins: (origin) => originAllowed(origin),
    requireAuthentication: true,
    refuseAtHandshake: config.handshakeRefusal,
    transports: {
      query: config.enableQueryToken,
      ...(django === undefined ? {} : { cookie: django.cookieNames }),
    },
    layer,
    logger,
    onResult: metrics.onAuthResult,
    // Revocations made where no broadcast reaches this process (the CLI without Redis, a
    // user deactivated in the database) close live sockets within this time.
    // SPEC §11: Django's credentials are re-checked every DJANGO_REVALIDATE_INTERVAL.
    recheckInterval: Math.min(
      RECHECK_INTERVAL,
      config.django?.revalidateIntervalMs ?? RECHECK_INTERVAL,
    ),
  });
  // Fail closed (SPEC §5, 1013): cut off from Redis, this process hears no revocation
  // and no other process's messages, so its sockets are told to reconnect and resync;
  // they authenticate afresh once Redis is back, so no revocation sent meanwhile is lost.
  health.onChange((redisReady) => {
    if (redisReady) return;
    const told = live.transport?.closeConnections(
      CloseCode.TryAgainLater,
      CloseReason.TryAgainLater,
    );
    logger.warn({ closed: told ?? 0 }, 'redis is down: sockets closed 1013');
  });

  let ready = true;
  const checkReady = async (): Promise<boolean> => {
    try {
      await Promise.all([store.ping(), layer.ping(), django?.ping()]);
      ready = true;
    } catch (error) {
      if (ready) logger.warn({ err: error }, 'not ready: a backing service is down');
      ready = false;
    }
    return ready;
  };
  const readinessTimer = setInterval(() => void checkReady(), READINESS_INTERVAL);
  readinessTimer.unref();
  // Fail closed: while the database or Redis is down, nobody new is let in.
  const readinessGate = (inner: Application): Application =>
    wrapApplication(inner, (scope, connection) => {
      if (!ready || !health.ready) {
        connection.close(CloseCode.TryAgainLater, CloseReason.TryAgainLater);
        return;
      }
      return inner(scope, connection);
    });

  const rooms = django?.rooms ?? store;
  // SPEC §11: with Redis, Django mode's rooms are shared with Django's own consumers.
  const chat =
    django?.channels === undefined
      ? multichatApp({ store: rooms, layer, presence, logger })
      : multichatApp({
          store: rooms,
          layer: metrics.instrumentLayer(django.channels),
          groupMessages: 'channels',
          logger,
        });
  const routes = [route('/ws/chat/', chat)];
  if (config.bench) routes.push(route('/ws/bench/', benchApp({ layer, logger })));
  // Per address before authentication (cheap to refuse), per user (identity) after it;
  // `--bench` lifts both (SPEC §9).
  const limits = config.bench
    ? { maxConnectionsPerAddress: 0, maxConnectionsPerUser: 0 }
    : {
        maxConnectionsPerAddress: config.maxConnectionsPerAddress,
        maxConnectionsPerUser: config.maxConnectionsPerUser,
      };
  const app = stack(
    readinessGate,
    connectionLimits({ maxConnectionsPerAddress: limits.maxConnectionsPerAddress }),
    auth,
    connectionLimits({ maxConnectionsPerUser: limits.maxConnectionsPerUser }),
  )(urlRouter(routes));

  fastify.addHook('onResponse', async (request, reply) => {
    metrics.httpResponse(request.routeOptions.url ?? 'unknown', reply.statusCode);
  });
  await fastify.register(portcullisRest, {
    store,
    authenticators,
    revoke: auth,
    tokenTtlMs: config.tokenTtlMs,
    ...(rateLimits.logins === undefined ? {} : { loginRateLimit: { limiter: rateLimits.logins } }),
    ticketRateLimit:
      rateLimits.tickets !== undefined
        ? { limiter: rateLimits.tickets }
        : { max: config.bench ? 0 : MAX_TICKETS },
  });

  fastify.get('/healthz', async () => ({ status: 'ok' }));
  fastify.get('/readyz', async (_request, reply) => {
    const ok = await checkReady();
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable' });
  });
  fastify.get('/metrics', async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  fastify.get('/api/rooms', { preHandler: requireUser }, async (request) => {
    return (await rooms.listRooms())
      .filter((room) => canJoin(request.user, room))
      .map((room) => ({ id: Number(room.id), title: room.title, staff_only: room.staffOnly }));
  });

  const publishKey = config.publishApiKey;
  // The publish key is not a user credential: the plugin's header authentication is off here.
  fastify.post('/api/publish', { config: { portcullisAuth: false } }, async (request, reply) => {
    if (publishKey === null) {
      return reply.code(403).send({ detail: 'The publish API is disabled: set PUBLISH_API_KEY.' });
    }
    const header = request.headers.authorization ?? '';
    const presented = header.startsWith('Bearer ') ? header.slice(7) : '';
    if (!constantTimeEqual(presented, publishKey)) {
      return reply.code(401).send({ detail: 'Invalid publish API key.' });
    }
    const body = request.body as Record<string, unknown> | null;
    const errors: Record<string, string[]> = {};
    const group = body?.['group'];
    if (!isValidName(group))
      errors['group'] = ['A valid group name is required (^[A-Za-z0-9-_.]{1,99}$).'];
    let messages: unknown[] = [];
    if (body !== null && typeof body === 'object' && 'messages' in body) {
      if (
        !Array.isArray(body['messages']) ||
        body['messages'].length === 0 ||
        body['messages'].length > 1_000
      ) {
        errors['messages'] = ['Must be a list of 1 to 1000 messages.'];
      } else messages = body['messages'];
    } else if (body !== null && typeof body === 'object' && 'message' in body) {
      messages = [body['message']];
    } else {
      errors['message'] = ['This field is required.'];
    }
    if (Object.keys(errors).length > 0) return reply.code(400).send(errors);
    // One send for the whole batch: the layer reaches each member once with all of it.
    const { delivered } = await groupSendAll(
      layer,
      group as string,
      messages.map((message) => ({ type: 'websocket.send', json: message })),
    );
    return reply.code(202).send({ published: messages.length, delivered });
  });

  await fastify.register(fastifyStatic, {
    root: join(distRoot, 'gateway', 'apps', 'multichat', 'page'),
    prefix: '/',
    index: ['index.html'],
    wildcard: false,
    decorateReply: false,
  });
  for (const folder of ['client', 'protocol']) {
    await fastify.register(fastifyStatic, {
      root: join(distRoot, folder),
      prefix: `/${folder}/`,
      decorateReply: false,
      allowedPath: (path) => path.endsWith('.js'),
    });
  }

  const transport = attachWebSocket(fastify.server, app, { logger });
  live.transport = transport;
  await fastify.listen({ port: config.port, host: config.host });
  const address = fastify.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  if (config.defaultOrigins && port !== config.port) {
    originAllowed = originMatcher(defaultAllowedOrigins(config.host, port));
  }
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  logger.info(
    { url, database: store.kind, layer: config.redisUrl === null ? 'memory' : 'redis' },
    'portcullis gateway listening',
  );

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    store,
    accounts: new Accounts(store, { tokenTtlMs: config.tokenTtlMs }),
    layer: rawLayer,
    logger,
    close() {
      closing ??= (async () => {
        clearInterval(readinessTimer);
        await transport.close();
        await fastify.close();
        await auth.close();
        await presence.close();
        await rawLayer.close();
        await django?.close();
        await store.close();
      })();
      return closing;
    },
  };
}
