/**
 * (e) Two processes of each server over one Redis: publishes enter process A and every
 * member is on process B; a logout on A must close the token's socket on B.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { benchRedis } from '../lib/redis.js';
import type { ServerHandle, Unavailable } from '../lib/server-handle.js';
import { per, percentile, round } from '../lib/stats.js';
import { monotonicMs } from '../load/protocol.js';
import type { WorkerEvents } from '../load/protocol.js';
import type { ServerName } from '../servers/protocol.js';
import { runFanout } from './fanout.js';
import {
  errorText,
  errorTotal,
  idlePlan,
  isRunning,
  newResult,
  startServer,
  stopAll,
  targetOf,
  tokenPlan,
  VARIANT_LABEL,
} from './context.js';
import type { Context, ScenarioResult, Variant } from './context.js';

/** How each server says "revoked": Portcullis and the raw loop close 4401 (SPEC §5). */
const EXPECTED_CLOSE: Readonly<Record<ServerName, string>> = {
  portcullis: '4401 token revoked',
  'raw-ws': '4401 token revoked',
  // Socket.IO sends a DISCONNECT packet; the client maps it to this.
  socketio: '4401 socket.io disconnect',
};

const REVOCATION_TIMEOUT = 5_000;

async function startPair(
  context: Context,
  name: ServerName,
  redisUrl: string,
): Promise<[ServerHandle, ServerHandle] | string> {
  const databasePath = join(context.tmpDir, `cluster-${randomBytes(6).toString('hex')}.db`);
  // A migrates and seeds the shared database first; B then only opens it.
  const a = await startServer(context, name, { redisUrl, databasePath, seed: true }, `${name}-A`);
  if (!isRunning(a)) return a.reason;
  const b: ServerHandle | Unavailable = await startServer(
    context,
    name,
    { redisUrl, databasePath, seed: false },
    `${name}-B`,
  );
  if (!isRunning(b)) {
    await a.stop();
    return b.reason;
  }
  return [a, b];
}

export async function clusterScenario(context: Context): Promise<ScenarioResult[]> {
  const { sizes, pool, progress } = context;
  const { members, messages, burst, revocations, timeoutMs } = sizes.cluster;
  const fanout = newResult(
    'cluster',
    '(e) Cross-process fan-out over Redis',
    `Two processes of each server share one Redis (Portcullis: \`REDIS_URL\` and one SQLite file; ` +
      `Socket.IO: @socket.io/redis-adapter; raw ws: one PUBLISH per message to a subscriber per ` +
      `process). ${members} clients on process B; ${messages} small messages per client are ` +
      `published to process A in bursts of ${burst}. CPU is A's plus B's.`,
    [
      {
        key: 'rate',
        label: 'deliveries/s',
        unit: '/s',
        better: 'higher',
        chart: true,
        ratio: true,
      },
      {
        key: 'cpuPerDelivery',
        label: 'CPU / delivery',
        unit: 'µs',
        better: 'lower',
        chart: true,
        ratio: true,
      },
      { key: 'deliveries', label: 'deliveries', unit: '', better: 'higher' },
      { key: 'missing', label: 'missing', unit: '', better: 'lower' },
    ],
  );
  const revocation = newResult(
    'revocation',
    '(e) Revocation-to-close latency across processes',
    `${revocations} tokens, one client each on process B; one at a time, a token is logged out on ` +
      `process A (Portcullis: \`POST /api/auth/logout\`; the baselines: the same route, which ` +
      `broadcasts the close through Redis) and the time until its client sees the close is taken. ` +
      `\`as expected\` counts closes with the expected code and reason.`,
    [
      { key: 'p50', label: 'p50', unit: 'ms', better: 'lower', chart: true, ratio: true },
      { key: 'p99', label: 'p99', unit: 'ms', better: 'lower', chart: true, ratio: true },
      { key: 'max', label: 'max', unit: 'ms', better: 'lower' },
      { key: 'closed', label: 'closed', unit: '', better: 'higher' },
      { key: 'expected', label: 'as expected', unit: '', better: 'higher' },
    ],
  );

  const redis = await benchRedis();
  if (typeof redis === 'string') {
    fanout.skipped.push({ variant: null, reason: redis });
    revocation.skipped.push({ variant: null, reason: redis });
    return [fanout, revocation];
  }
  try {
    for (const name of context.servers) {
      const pair = await startPair(context, name, redis.url);
      if (typeof pair === 'string') {
        fanout.skipped.push({ variant: name, reason: pair });
        revocation.skipped.push({ variant: name, reason: pair });
        continue;
      }
      const [a, b] = pair;
      try {
        // Fan-out: credentials issued on A are valid on B (shared database, or registered).
        const plan = await idlePlan(context, a);
        if (plan.kind !== 'none') await b.register(plan.tokens);
        const group = `cluster-${name}`;
        progress.update(`(e) ${name}: connecting ${members} clients to process B…`);
        const opened = await pool.connect(group, targetOf(b), plan, members, {
          concurrency: sizes.connectConcurrency,
          timeoutMs: 30_000,
        });
        if (errorTotal(opened.errors) > 0) {
          progress.log(`(e) ${name}: connect errors ${errorText(opened.errors)}`);
        }
        const modes: readonly { variant: Variant; mode?: 'send' | 'coalesced' }[] =
          name === 'raw-ws'
            ? [
                { variant: 'raw-ws', mode: 'send' },
                { variant: 'raw-ws-coalesced', mode: 'coalesced' },
              ]
            : [{ variant: name }];
        for (const { variant, mode } of modes) {
          if (opened.opened === 0) break;
          const fanOut = (perClient: number, label: string): ReturnType<typeof runFanout> =>
            runFanout(context, {
              group,
              members: opened.opened,
              perClient,
              burst,
              payload: 'small',
              publish: (batch) => a.publish(batch, mode),
              servers: [a, b],
              timeoutMs,
              label,
            });
          // Unmeasured first: JIT, subscriptions and connections warm on both processes.
          await fanOut(burst * 2, `(e) ${variant} warm-up`);
          const run = await fanOut(messages, `(e) ${variant} A → B`);
          const rate =
            run.elapsedMs === null ? null : per(run.tally.received, run.elapsedMs / 1000);
          fanout.rows.push({
            case: `${members.toLocaleString('en')} members on B, bursts of ${burst}`,
            series: VARIANT_LABEL[variant],
            variant,
            values: {
              rate: round(rate),
              cpuPerDelivery: round(per(run.cpuUs, run.tally.received), 3),
              deliveries: run.tally.received,
              missing: run.tally.missing,
            },
            complete: run.elapsedMs !== null && run.tally.missing === 0,
          });
          progress.log(
            `(e) ${variant} A → B: ${rate === null ? 'incomplete' : `${Math.round(rate)}/s`}, ` +
              `missing ${run.tally.missing}`,
          );
        }
        await pool.closeAll(group);

        // Revocation: client i on B holds tokens[i]; each logout on A must close it.
        const tokens = await a.issue(revocations);
        await b.register(tokens);
        const revokeGroup = `revoke-${name}`;
        const report = await pool.connect(
          revokeGroup,
          targetOf(b),
          tokenPlan(b, tokens),
          tokens.length,
          {
            concurrency: sizes.connectConcurrency,
            timeoutMs: 30_000,
          },
        );
        const closes = new Map<number, WorkerEvents['closed']>();
        let arrived: () => void = () => undefined;
        const unwatch = await pool.watch((event) => {
          closes.set(event.index, event);
          arrived();
        });
        const latencies: number[] = [];
        let expected = 0;
        for (let index = 0; index < tokens.length && report.opened === tokens.length; index += 1) {
          progress.update(`(e) ${name}: revocation ${index + 1}/${tokens.length}…`);
          const token = tokens[index] ?? '';
          const started = monotonicMs();
          const status = await a.logout(token);
          if (status !== 204) break;
          const deadline = started + REVOCATION_TIMEOUT;
          while (!closes.has(index) && monotonicMs() < deadline) {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, 50);
              arrived = () => {
                clearTimeout(timer);
                resolve();
              };
            });
          }
          const close = closes.get(index);
          if (close === undefined) continue;
          latencies.push(close.at - started);
          if (`${close.code} ${close.reason}` === EXPECTED_CLOSE[name]) expected += 1;
        }
        unwatch();
        await pool.closeAll(revokeGroup);
        revocation.rows.push({
          case: 'logout on A → close on B',
          series: VARIANT_LABEL[name],
          variant: name,
          values: {
            p50: round(percentile(latencies, 50)),
            p99: round(percentile(latencies, 99)),
            max: round(percentile(latencies, 100)),
            closed: latencies.length,
            expected,
          },
          complete: latencies.length === tokens.length && expected === tokens.length,
          ...(report.opened < tokens.length
            ? {
                note: `only ${report.opened} of ${tokens.length} clients connected (${errorText(report.errors)})`,
              }
            : {}),
        });
        progress.log(
          `(e) ${name} revocation: ${latencies.length}/${tokens.length} closed (${expected} as expected), ` +
            `p50 ${(percentile(latencies, 50) ?? 0).toFixed(2)} ms, p99 ${(percentile(latencies, 99) ?? 0).toFixed(2)} ms`,
        );
      } finally {
        await pool.closeAll(null);
        await stopAll([a, b]);
      }
    }
  } finally {
    await redis.stop();
  }
  return [fanout, revocation];
}
