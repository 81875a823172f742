/**
 * (a) Authenticated handshakes per second: clients open, authenticate and close in a
 * loop at a fixed concurrency, for a bounded time and count.
 *
 * @module
 */
import type { ServerHandle } from '../lib/server-handle.js';
import { cpuUs, per, percentile, round } from '../lib/stats.js';
import type { CredentialPlan } from '../load/protocol.js';
import {
  errorText,
  errorTotal,
  idlePlan,
  newResult,
  signJwts,
  sleep,
  targetOf,
  VARIANT_LABEL,
} from './context.js';
import type { Context, ScenarioResult, Variant } from './context.js';

/** Closing handshakes finish on the server a moment after the client saw them. */
const SETTLE_MS = 100;

interface Method {
  readonly name: string;
  /** How the clients of this method authenticate. */
  plan(): Promise<CredentialPlan>;
  /** Attempts are capped by the credentials available (single-use JWTs). */
  readonly maxCount?: number;
}

export async function handshakeScenario(
  context: Context,
  servers: readonly ServerHandle[],
): Promise<ScenarioResult> {
  const { sizes, pool, progress } = context;
  const { durationMs, rounds, warmupMs, maxCount, uniqueJwts } = sizes.handshakes;
  const result = newResult(
    'handshakes',
    '(a) Authenticated handshakes per second',
    `Clients open a WebSocket, authenticate, and close it, in a loop at a fixed concurrency, ` +
      `for ${durationMs / 1000} s per case, in ${rounds} turns taken in rotation with the ` +
      `other cases (the load on a shared machine drifts). Portcullis: an opaque token in \`Authorization: Token\`, a ` +
      `ticket from \`POST /api/auth/ticket\` (the REST round trip is part of each handshake), ` +
      `a JWT from a pool of ${sizes.tokenPool} (verified once, then cached) and a distinct JWT per ` +
      `connection (no cache hit). Socket.IO: \`auth.token\` checked against a Map by \`io.use\`. ` +
      `raw ws: no authentication. CPU is the server process's user + system time per handshake.`,
    [
      {
        key: 'rate',
        label: 'handshakes/s',
        unit: '/s',
        better: 'higher',
        chart: true,
        ratio: true,
      },
      {
        key: 'cpuPerHandshake',
        label: 'CPU / handshake',
        unit: 'µs',
        better: 'lower',
        chart: true,
        ratio: true,
      },
      { key: 'p50', label: 'p50', unit: 'ms', better: 'lower' },
      { key: 'p99', label: 'p99', unit: 'ms', better: 'lower' },
      { key: 'count', label: 'handshakes', unit: '', better: 'higher' },
      { key: 'errors', label: 'errors', unit: '', better: 'lower' },
    ],
  );

  const methodsOf = async (server: ServerHandle): Promise<Method[]> => {
    const idle = await idlePlan(context, server);
    if (server.name !== 'portcullis') {
      return [
        { name: server.name === 'raw-ws' ? 'no auth' : 'auth.token', plan: async () => idle },
      ];
    }
    const tokens = idle.kind === 'none' ? [] : idle.tokens;
    const userId = server.ready.userId ?? '';
    const cachedJwts = await signJwts(context.jwtSecret, userId, sizes.tokenPool);
    return [
      { name: 'token', plan: async () => idle },
      { name: 'ticket', plan: async () => ({ kind: 'ticket', tokens }) },
      { name: 'JWT', plan: async () => ({ kind: 'header', scheme: 'Bearer', tokens: cachedJwts }) },
      {
        name: 'JWT, uncached',
        // Signed per case: a JWT verified once is cached, which is what this case avoids.
        plan: async () => ({
          kind: 'header',
          scheme: 'Bearer',
          tokens: await signJwts(context.jwtSecret, userId, uniqueJwts),
        }),
        maxCount: uniqueJwts,
      },
    ];
  };

  const plans = new Map<ServerHandle, Method[]>();
  for (const server of servers) plans.set(server, await methodsOf(server));

  // Warm-up: JIT, lazily built state and the first verification of each credential are
  // paid before measuring, identically for every server.
  for (const server of servers) {
    for (const method of plans.get(server) ?? []) {
      if (method.maxCount !== undefined) continue;
      progress.update(`(a) handshakes: warming up ${server.name} (${method.name})…`);
      await pool.handshakes(targetOf(server), await method.plan(), {
        concurrency: 20,
        durationMs: warmupMs,
        maxCount,
      });
    }
  }

  // Every case of one concurrency takes turns, round by round, in an order rotated each
  // round: on a shared machine the load drifts within a minute, and a case measured in
  // one stretch of 5 s took the drift alone (rates of one server differed 2x by stretch).
  const cases = servers.flatMap((server) =>
    (plans.get(server) ?? []).map((method) => ({ server, method })),
  );
  for (const concurrency of sizes.handshakes.concurrency) {
    const totals = cases.map(() => ({
      ok: 0,
      elapsedMs: 0,
      cpuUs: 0,
      latencyMs: [] as number[],
      errors: {} as Record<string, number>,
    }));
    for (let lap = 0; lap < rounds; lap += 1) {
      for (let turn = 0; turn < cases.length; turn += 1) {
        const index = (turn + lap) % cases.length;
        const { server, method } = cases[index]!;
        const total = totals[index]!;
        progress.update(
          `(a) handshakes: ${server.name} ${method.name}, concurrency ${concurrency}, ` +
            `round ${lap + 1}/${rounds}…`,
        );
        const plan = await method.plan();
        // A full collection first: the garbage and caches of the case before (a server
        // runs all its cases in one process) are not billed to this one.
        const before = await server.stats(true);
        const report = await pool.handshakes(targetOf(server), plan, {
          concurrency,
          durationMs: durationMs / rounds,
          maxCount: method.maxCount ?? maxCount,
        });
        await sleep(SETTLE_MS);
        const after = await server.stats();
        total.ok += report.ok;
        total.elapsedMs += report.elapsedMs;
        total.cpuUs += cpuUs(before, after);
        total.latencyMs.push(...report.latencyMs);
        for (const [kind, count] of Object.entries(report.errors)) {
          total.errors[kind] = (total.errors[kind] ?? 0) + count;
        }
      }
    }
    cases.forEach(({ server, method }, index) => {
      const total = totals[index]!;
      const rate = per(total.ok, total.elapsedMs / 1000);
      const cpu = per(total.cpuUs, total.ok);
      const variant: Variant = server.name;
      result.rows.push({
        case: `concurrency ${concurrency}`,
        series: `${VARIANT_LABEL[variant]} · ${method.name}`,
        variant,
        values: {
          rate: round(rate),
          cpuPerHandshake: round(cpu),
          p50: round(percentile(total.latencyMs, 50)),
          p99: round(percentile(total.latencyMs, 99)),
          count: total.ok,
          errors: errorTotal(total.errors),
        },
        errors: total.errors,
      });
      progress.log(
        `(a) ${server.name} ${method.name} c=${concurrency}: ${Math.round(rate ?? 0)}/s, ` +
          `${Math.round(cpu ?? 0)} µs CPU each, errors ${errorText(total.errors)}`,
      );
    });
  }
  return result;
}
