/**
 * (b) Broadcast fan-out: every client of a group counts the messages it gets while the
 * coordinator publishes over HTTP (`POST /api/publish` for Portcullis, the same body to
 * the baselines' `/publish`), in bursts or one message per publish, never more than a
 * window of messages ahead of the slowest delivery.
 *
 * @module
 */
import type { Payload } from '../config.js';
import type { ServerHandle } from '../lib/server-handle.js';
import { cpuUs, per, round } from '../lib/stats.js';
import { monotonicMs } from '../load/protocol.js';
import type { Tally } from '../load/protocol.js';
import type { ServerName } from '../servers/protocol.js';
import { errorText, errorTotal, idlePlan, newResult, targetOf, VARIANT_LABEL } from './context.js';
import type { Context, ScenarioResult, Variant } from './context.js';

const PAYLOAD_TEXT: Readonly<Record<Payload, string>> = {
  small: 'hello',
  // With `{"seq":N,"text":…}` around it, a message of about 1 KiB.
  '1KiB': 'x'.repeat(1_000),
};

/** Messages per client of the unmeasured warm-up run of each loop. */
const WARMUP_MESSAGES = 20;

export function messages(payload: Payload, first: number, count: number): unknown[] {
  return Array.from({ length: count }, (_, offset) => ({
    seq: first + offset,
    text: PAYLOAD_TEXT[payload],
  }));
}

/** What one fan-out run measured. */
export interface FanoutRun {
  /** From the first publish to the last delivery; `null` when it did not complete. */
  readonly elapsedMs: number | null;
  readonly tally: Tally;
  /** Server CPU (user + system) of every process given, in µs. */
  readonly cpuUs: number;
}

/**
 * Publishes `perClient` messages in publishes of `burst` to `group`'s clients and waits
 * until each got them all, or `timeoutMs`.
 */
export async function runFanout(
  context: Context,
  options: {
    group: string;
    members: number;
    perClient: number;
    burst: number;
    payload: Payload;
    publish: (batch: unknown[]) => Promise<void>;
    /** Processes whose CPU is charged to the deliveries. */
    servers: readonly ServerHandle[];
    timeoutMs: number;
    label: string;
  },
): Promise<FanoutRun> {
  const { pool, progress, sizes } = context;
  const { members, perClient, burst, timeoutMs } = options;
  const total = members * perClient;
  let received = 0;
  let wake: () => void = () => undefined;
  const armed = await pool.expect(options.group, perClient, timeoutMs, (count) => {
    received = count;
    progress.update(
      `${options.label}: ${count.toLocaleString('en')}/${total.toLocaleString('en')} deliveries ` +
        `(${Math.floor((100 * count) / Math.max(1, total))} %)`,
    );
    wake();
  });
  const before = await Promise.all(options.servers.map((server) => server.stats()));
  const started = monotonicMs();
  const deadline = started + timeoutMs;
  let published = 0;
  try {
    while (published < perClient && monotonicMs() < deadline) {
      // Flow control by totals: the server is never asked to buffer more than `window`
      // messages per client, so a slow reader is not what is measured.
      while (published - received / Math.max(1, members) >= sizes.fanout.window) {
        if (monotonicMs() >= deadline) break;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 50);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      const count = Math.min(burst, perClient - published);
      await options.publish(messages(options.payload, published, count));
      published += count;
    }
    const at = await armed.completed;
    const after = await Promise.all(options.servers.map((server) => server.stats()));
    const cpu = after.reduce((sum, stats, index) => {
      const first = before[index];
      return first === undefined ? sum : sum + cpuUs(first, stats);
    }, 0);
    return {
      elapsedMs: at === undefined ? null : at - started,
      tally: await pool.tally(),
      cpuUs: cpu,
    };
  } finally {
    armed.stop();
  }
}

const VARIANTS: readonly { variant: Variant; server: ServerName; mode?: 'send' | 'coalesced' }[] = [
  { variant: 'portcullis', server: 'portcullis' },
  { variant: 'raw-ws', server: 'raw-ws', mode: 'send' },
  { variant: 'raw-ws-coalesced', server: 'raw-ws', mode: 'coalesced' },
  { variant: 'socketio', server: 'socketio' },
];

export async function fanoutScenario(
  context: Context,
  servers: readonly ServerHandle[],
): Promise<ScenarioResult> {
  const { sizes, pool, progress } = context;
  const { deliveries, burstDeliveries, window, timeoutMs } = sizes.fanout;
  const result = newResult(
    'fanout',
    '(b) Broadcast fan-out',
    `N authenticated clients in one group; the coordinator publishes about ${deliveries.toLocaleString('en')} ` +
      `deliveries per case over HTTP (${burstDeliveries.toLocaleString('en')} in bursts, which run faster), ` +
      `either in bursts (one publish of 10 messages) or one message ` +
      `per publish (one message per event-loop turn), never more than ${window} messages per client ` +
      `ahead of delivery. Every client counts what it gets: \`complete\` means nobody missed ` +
      `anything. raw ws runs two loops: \`ws.send\` per socket per message, and a coalesced loop ` +
      `that encodes each turn's frames once and writes them to each socket in one write.`,
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
      { key: 'members', label: 'members', unit: '', better: 'higher' },
      { key: 'deliveries', label: 'deliveries', unit: '', better: 'higher' },
      { key: 'missing', label: 'missing', unit: '', better: 'lower' },
    ],
  );
  const byName = new Map(servers.map((server) => [server.name, server]));

  for (const members of sizes.fanout.members) {
    const opened = new Map<ServerName, number>();
    try {
      for (const server of servers) {
        progress.update(`(b) fan-out: ${server.name} connecting ${members} clients…`);
        const report = await pool.connect(
          `fanout-${server.name}`,
          targetOf(server),
          await idlePlan(context, server),
          members,
          { concurrency: sizes.connectConcurrency, timeoutMs: 30_000 },
        );
        opened.set(server.name, report.opened);
        if (errorTotal(report.errors) > 0) {
          progress.log(
            `(b) ${server.name}: ${members} clients, connect errors ${errorText(report.errors)}`,
          );
        }
      }
      // Unmeasured: JIT and lazily built state of every loop are paid before any case.
      for (const { variant, server: name, mode } of VARIANTS) {
        const server = byName.get(name);
        const connected = opened.get(name) ?? 0;
        if (server === undefined || connected === 0) continue;
        await runFanout(context, {
          group: `fanout-${name}`,
          members: connected,
          perClient: WARMUP_MESSAGES,
          burst: 10,
          payload: 'small',
          publish: (batch) => server.publish(batch, mode),
          servers: [server],
          timeoutMs,
          label: `(b) ${variant} warm-up`,
        });
      }
      for (const payload of sizes.fanout.payloads) {
        for (const burst of sizes.fanout.bursts) {
          const perClientBase = Math.max(
            1,
            Math.round((burst === 1 ? deliveries : burstDeliveries) / members),
          );
          const perClient = Math.max(burst, Math.round(perClientBase / burst) * burst);
          const shape = burst === 1 ? 'one message per publish' : `bursts of ${burst}`;
          for (const { variant, server: name, mode } of VARIANTS) {
            const server = byName.get(name);
            const connected = opened.get(name) ?? 0;
            if (server === undefined || connected === 0) continue;
            const run = await runFanout(context, {
              group: `fanout-${name}`,
              members: connected,
              perClient,
              burst,
              payload,
              publish: (batch) => server.publish(batch, mode),
              servers: [server],
              timeoutMs,
              label: `(b) ${variant} ${members}×${payload} ${shape}`,
            });
            const { tally } = run;
            const complete = run.elapsedMs !== null && tally.missing === 0 && tally.short === 0;
            const rate = run.elapsedMs === null ? null : per(tally.received, run.elapsedMs / 1000);
            result.rows.push({
              case: `${members.toLocaleString('en')} members, ${payload}, ${shape}`,
              series: VARIANT_LABEL[variant],
              variant,
              values: {
                rate: round(rate),
                cpuPerDelivery: round(per(run.cpuUs, tally.received), 3),
                members: connected,
                deliveries: tally.received,
                missing: tally.missing,
              },
              complete,
              ...(connected < members
                ? { note: `${members - connected} clients could not connect` }
                : {}),
            });
            progress.log(
              `(b) ${variant} ${members} members ${payload} ${shape}: ` +
                `${rate === null ? 'incomplete' : `${Math.round(rate).toLocaleString('en')}/s`}, ` +
                `${(per(run.cpuUs, tally.received) ?? 0).toFixed(2)} µs CPU per delivery, missing ${tally.missing}`,
            );
          }
        }
      }
    } finally {
      await pool.closeAll(null);
    }
  }
  return result;
}
