/**
 * (c) Idle memory per authenticated connection: a fresh server per point, warmed up,
 * collected, then N idle clients, collected again; the growth divided by N.
 *
 * @module
 */
import { cpuUs, growthPer, per, round } from '../lib/stats.js';
import {
  errorText,
  errorTotal,
  idlePlan,
  isRunning,
  newResult,
  sleep,
  startServer,
  targetOf,
  VARIANT_LABEL,
} from './context.js';
import type { Context, ScenarioResult } from './context.js';

const WARMUP_CONNECTIONS = 50;
/** Idle time before the second sample, so handshake garbage and timers settle. */
const SETTLE_MS = 1_000;

export async function memoryScenario(context: Context): Promise<ScenarioResult> {
  const result = newResult(
    'memory',
    '(c) Idle memory per authenticated connection',
    'A fresh server process per point; after 50 warm-up connections and a full GC, N idle ' +
      'authenticated clients connect; after 1 s and a full GC the growth of RSS and of the ' +
      'V8 heap (plus external buffers) is divided by N (— where it did not grow: RSS moves in ' +
      'pages and reuses freed ones). Portcullis: `Authorization: Token`; ' +
      'Socket.IO: `auth.token`; raw ws: no auth.',
    [
      { key: 'connections', label: 'connections', unit: '', better: 'higher' },
      {
        key: 'rssPerConnection',
        label: 'RSS / conn',
        unit: 'B',
        better: 'lower',
        chart: true,
        ratio: true,
      },
      {
        key: 'heapPerConnection',
        label: 'heap / conn',
        unit: 'B',
        better: 'lower',
        chart: true,
        ratio: true,
      },
      { key: 'externalPerConnection', label: 'external / conn', unit: 'B', better: 'lower' },
      { key: 'cpuPerConnect', label: 'CPU / connect', unit: 'µs', better: 'lower', ratio: true },
      { key: 'errors', label: 'errors', unit: '', better: 'lower' },
    ],
  );
  const { pool, progress, sizes } = context;
  for (const connections of sizes.memory.connections) {
    for (const name of context.servers) {
      const server = await startServer(context, name, {}, `${name}-memory`);
      if (!isRunning(server)) {
        result.skipped.push({ variant: name, reason: server.reason });
        continue;
      }
      const group = `memory-${name}`;
      try {
        const target = targetOf(server);
        const plan = await idlePlan(context, server);
        const connect = { concurrency: sizes.connectConcurrency, timeoutMs: 20_000 };
        await pool.connect(group, target, plan, WARMUP_CONNECTIONS, connect);
        await pool.closeAll(group);
        const before = await server.stats(true);
        progress.update(`(c) memory: ${name} opening ${connections} connections…`);
        const report = await pool.connect(group, target, plan, connections, connect);
        const connected = await server.stats();
        await sleep(SETTLE_MS);
        const after = await server.stats(true);
        const opened = report.opened;
        result.rows.push({
          case: `${connections.toLocaleString('en')} connections`,
          series: VARIANT_LABEL[name],
          variant: name,
          values: {
            connections: opened,
            rssPerConnection: round(growthPer(after.rss - before.rss, opened)),
            heapPerConnection: round(growthPer(after.heapUsed - before.heapUsed, opened)),
            externalPerConnection: round(
              per(
                after.external + after.arrayBuffers - before.external - before.arrayBuffers,
                opened,
              ),
            ),
            cpuPerConnect: round(per(cpuUs(before, connected), opened)),
            errors: errorTotal(report.errors),
          },
          complete: opened === connections,
          errors: report.errors,
        });
        progress.log(
          `(c) memory ${connections}: ${name} opened ${opened} (errors ${errorText(report.errors)}), ` +
            `RSS ${fmtBytes(per(after.rss - before.rss, opened))}/conn, ` +
            `heap ${fmtBytes(per(after.heapUsed - before.heapUsed, opened))}/conn`,
        );
      } finally {
        await pool.closeAll(group);
        await server.stop();
      }
    }
  }
  return result;
}

function fmtBytes(value: number | null): string {
  return value === null ? '—' : `${(value / 1024).toFixed(1)} KiB`;
}
