/**
 * The Portcullis gateway as `portcullis serve --bench` runs it (SPEC §9), from the built
 * `dist/`, configured through the SPEC §8 environment: a temporary SQLite file, a JWT
 * secret, a publish key and, for the cross-process scenario, `REDIS_URL`.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type * as ConfigModule from '../../src/gateway/config.js';
import type * as ServerModule from '../../src/gateway/server.js';
import { runServerChild } from './child.js';
import type { BenchServer } from './child.js';
import type { ServerOptions } from './protocol.js';

const USERNAME = 'bench';
const TOKEN_TTL = '1d';

/** Imports a built module; its type is the source module's, which it was compiled from. */
async function importBuilt<T>(relative: string): Promise<T | string> {
  const url = new URL(`../../dist/${relative}`, import.meta.url);
  if (!existsSync(fileURLToPath(url))) {
    return `dist/${relative} not found: run \`npm run build\` first`;
  }
  return (await import(url.href)) as T;
}

async function start(options: ServerOptions): Promise<BenchServer | string> {
  const server = await importBuilt<typeof ServerModule>('gateway/server.js');
  if (typeof server === 'string') return server;
  const config = await importBuilt<typeof ConfigModule>('gateway/config.js');
  if (typeof config === 'string') return config;
  if (options.databasePath === undefined || options.jwtSecret === undefined) {
    throw new TypeError('portcullis bench server needs databasePath and jwtSecret');
  }

  const publishKey = randomBytes(24).toString('base64url');
  const env: Record<string, string> = {
    DATABASE_URL: `sqlite:${options.databasePath}`,
    JWT_SECRET: options.jwtSecret,
    PUBLISH_API_KEY: publishKey,
    TOKEN_TTL,
    LOG_LEVEL: 'error',
  };
  if (options.redisUrl !== undefined) env['REDIS_URL'] = options.redisUrl;
  const gatewayConfig = config.loadConfig({ env, flags: { port: 0, bench: true } });
  // Errors only, to stderr: a log line per connection would be measured as gateway work.
  const logger = pino({ level: 'error' }, pino.destination(2));
  const gateway = await server.startGateway(gatewayConfig, { logger });

  const { store, accounts } = gateway;
  let user = await store.getUserByUsername(USERNAME);
  if (user === undefined && options.seed === true) {
    user = await accounts.createUser({ username: USERNAME });
  }
  if (user === undefined) {
    await gateway.close();
    throw new Error(`user ${USERNAME} missing: start the seeding process first`);
  }
  const userId = user.id;

  return {
    ready: {
      name: 'portcullis',
      port: gateway.port,
      wire: 'ws',
      wsPath: '/ws/bench/',
      publishPath: '/api/publish',
      publishHeaders: { authorization: `Bearer ${publishKey}` },
      logoutPath: '/api/auth/logout',
      userId,
    },
    async issue(count) {
      const tokens: string[] = [];
      for (let index = 0; index < count; index += 1) {
        const created = await accounts.createToken(userId, { name: `bench-${index}` });
        tokens.push(created.token);
      }
      return tokens;
    },
    register() {
      // Both processes read the same database: a token issued by one is valid on both.
    },
    close: () => gateway.close(),
  };
}

runServerChild(start);
