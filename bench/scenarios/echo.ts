/**
 * (d) Echo round trip at a fixed offered rate: `{"echo":n}` → `{"echo":n}` (Socket.IO:
 * an `echo` event answered by an `echo` event), sent on a schedule whatever the answers
 * do, latency measured from each message's scheduled time.
 *
 * @module
 */
import type { ServerHandle } from '../lib/server-handle.js';
import { cpuUs, per, percentile, round } from '../lib/stats.js';
import { errorTotal, idlePlan, newResult, targetOf, VARIANT_LABEL } from './context.js';
import type { Context, ScenarioResult } from './context.js';

export async function echoScenario(
  context: Context,
  servers: readonly ServerHandle[],
): Promise<ScenarioResult> {
  const { sizes, pool, progress } = context;
  const { connections, rate, durationMs, warmupMs } = sizes.echo;
  const result = newResult(
    'echo',
    '(d) Echo round trip at a fixed offered rate',
    `${connections} authenticated clients send ${rate} messages/s in total for ${durationMs / 1000} s ` +
      `(open loop: on a schedule, whatever the answers do); the first ${warmupMs / 1000} s are not ` +
      `counted. Latency runs from each message's scheduled send time to its answer.`,
    [
      { key: 'p50', label: 'p50', unit: 'µs', better: 'lower', chart: true, ratio: true },
      { key: 'p99', label: 'p99', unit: 'µs', better: 'lower', chart: true, ratio: true },
      { key: 'p999', label: 'p99.9', unit: 'µs', better: 'lower' },
      { key: 'max', label: 'max', unit: 'µs', better: 'lower' },
      { key: 'cpuPerEcho', label: 'CPU / echo', unit: 'µs', better: 'lower', ratio: true },
      { key: 'answered', label: 'answered', unit: '', better: 'higher' },
      { key: 'lost', label: 'lost', unit: '', better: 'lower' },
    ],
  );
  for (const server of servers) {
    const group = `echo-${server.name}`;
    try {
      progress.update(`(d) echo: ${server.name} connecting ${connections} clients…`);
      const opened = await pool.connect(
        group,
        targetOf(server),
        await idlePlan(context, server),
        connections,
        {
          concurrency: sizes.connectConcurrency,
          timeoutMs: 20_000,
        },
      );
      if (opened.opened === 0) {
        result.skipped.push({ variant: server.name, reason: 'no client could connect' });
        continue;
      }
      progress.update(`(d) echo: ${server.name} warming up…`);
      await pool.echo({ group, connections, rate, durationMs: warmupMs, warmupMs: 0 });
      progress.update(`(d) echo: ${server.name} at ${rate}/s for ${durationMs / 1000} s…`);
      const before = await server.stats();
      const report = await pool.echo({ group, connections, rate, durationMs, warmupMs });
      const after = await server.stats();
      const lost = report.sent - report.received;
      result.rows.push({
        case: `${connections} clients, ${rate}/s`,
        series: VARIANT_LABEL[server.name],
        variant: server.name,
        values: {
          p50: round(percentile(report.latencyUs, 50)),
          p99: round(percentile(report.latencyUs, 99)),
          p999: round(percentile(report.latencyUs, 99.9)),
          max: round(percentile(report.latencyUs, 100)),
          cpuPerEcho: round(per(cpuUs(before, after), report.received)),
          answered: report.received,
          lost,
        },
        complete: lost === 0 && report.sent > 0,
        ...(errorTotal(opened.errors) > 0 ? { errors: opened.errors } : {}),
      });
      progress.log(
        `(d) ${server.name}: p50 ${Math.round(percentile(report.latencyUs, 50) ?? 0)} µs, ` +
          `p99 ${Math.round(percentile(report.latencyUs, 99) ?? 0)} µs, ${report.received}/${report.sent} answered`,
      );
    } finally {
      await pool.closeAll(group);
    }
  }
  return result;
}
