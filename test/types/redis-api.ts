// Type-level test (run by `npm run typecheck`, never executed): the Redis options and
// accessors the README's deployment section names, as an application writes them.
import { RedisChannelLayer, RedisPresence } from '../../src/index.js';
import type { RedisConnectionOptions } from '../../src/index.js';

export async function deployment(env: NodeJS.ProcessEnv): Promise<void> {
  const where: RedisConnectionOptions = {
    url: env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
    prefix: 'chat-prod',
    cluster: env['REDIS_CLUSTER'] === 'true',
  };
  const layer = await RedisChannelLayer.connect({ ...where, onStatus: (status) => void status });
  const presence = await RedisPresence.connect({ ...where, processId: layer.processId });
  const prefix: string = layer.prefix;
  const key: string = layer.key('limits:login:203.0.113.7');
  // The shared connection takes any command of ioredis, on one server or a cluster.
  await layer.client?.incr(key);
  // @ts-expect-error: the prefix is fixed at construction
  layer.prefix = prefix;
  await presence.close();
  await layer.close();
}
