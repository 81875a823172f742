/**
 * The coordinator's side of the load workers: splits every request across the worker
 * processes and merges what they report.
 *
 * @module
 */
import { forkScript, stopChild } from './process.js';
import { RpcPeer } from './rpc.js';
import type {
  ConnectReport,
  CredentialPlan,
  EchoReport,
  ErrorCounts,
  HandshakeReport,
  Tally,
  Target,
  WorkerEvents,
  WorkerMethods,
} from '../load/protocol.js';

const WORKER = new URL('../load/worker.ts', import.meta.url);

type Worker = RpcPeer<WorkerMethods, WorkerEvents>;

/** `total` split into `parts` near-equal counts. */
export function split(total: number, parts: number): number[] {
  return Array.from(
    { length: parts },
    (_, index) => Math.floor(total / parts) + (index < total % parts ? 1 : 0),
  );
}

function mergeErrors(into: ErrorCounts, from: ErrorCounts): ErrorCounts {
  for (const [kind, count] of Object.entries(from)) into[kind] = (into[kind] ?? 0) + count;
  return into;
}

/** Gives each worker its own share of a plan's tokens when every client has one. */
function planSlice(
  plan: CredentialPlan,
  first: number,
  count: number,
  total: number,
): CredentialPlan {
  if (plan.kind === 'none' || plan.tokens.length < total) return plan;
  return { ...plan, tokens: plan.tokens.slice(first, first + count) };
}

/** Worker processes holding load clients. */
export class LoadPool {
  readonly #workers: Worker[];

  private constructor(workers: Worker[]) {
    this.#workers = workers;
  }

  /**
   * Starts `count` workers, each with `addressesPerWorker` source addresses of its own
   * from 127.0.0.2 up.
   */
  static async start(count: number, addressesPerWorker: number): Promise<LoadPool> {
    if (count * addressesPerWorker > 250) throw new RangeError('too many source addresses');
    const workers = Array.from({ length: count }, (_, index) => {
      const addresses = Array.from(
        { length: addressesPerWorker },
        (_, offset) => `127.0.0.${2 + index * addressesPerWorker + offset}`,
      );
      const child = forkScript(WORKER, {
        label: `load-${index}`,
        args: [JSON.stringify(addresses)],
      });
      return new RpcPeer<WorkerMethods, WorkerEvents>(child, `load-${index}`);
    });
    await Promise.all(workers.map((worker) => worker.once('ready', 30_000)));
    return new LoadPool(workers);
  }

  get size(): number {
    return this.#workers.length;
  }

  /**
   * Opens `total` idle clients in `group` across the workers; client `i` gets the
   * plan's `i`th credential.
   */
  async connect(
    group: string,
    target: Target,
    plan: CredentialPlan,
    total: number,
    options: { concurrency: number; timeoutMs: number },
  ): Promise<ConnectReport> {
    const counts = split(total, this.size);
    const concurrency = Math.max(1, Math.ceil(options.concurrency / this.size));
    let first = 0;
    const reports = await Promise.all(
      this.#workers.map((worker, index) => {
        const count = counts[index] ?? 0;
        const params = {
          group,
          target,
          plan: planSlice(plan, first, count, total),
          count,
          firstIndex: first,
          concurrency,
          timeoutMs: options.timeoutMs,
        };
        first += count;
        // Bounded: every client has its own handshake timeout; this bounds the batch.
        return worker.call('connect', params, 60_000 + (count / concurrency) * options.timeoutMs);
      }),
    );
    return {
      opened: reports.reduce((sum, report) => sum + report.opened, 0),
      errors: reports.reduce((errors, report) => mergeErrors(errors, report.errors), {}),
      elapsedMs: Math.max(...reports.map((report) => report.elapsedMs)),
    };
  }

  /** Handshake loops on every worker at once; `concurrency` and `maxCount` are totals. */
  async handshakes(
    target: Target,
    plan: CredentialPlan,
    options: { concurrency: number; durationMs: number; maxCount: number },
  ): Promise<HandshakeReport> {
    const lanes = split(options.concurrency, this.size);
    const caps = split(options.maxCount, this.size);
    let first = 0;
    const reports = await Promise.all(
      this.#workers.map((worker, index) => {
        const maxCount = caps[index] ?? 0;
        const params = {
          target,
          plan: planSlice(plan, first, maxCount, options.maxCount),
          concurrency: lanes[index] ?? 0,
          durationMs: options.durationMs,
          maxCount,
        };
        first += maxCount;
        return worker.call('handshakes', params, options.durationMs + 60_000);
      }),
    );
    return {
      ok: reports.reduce((sum, report) => sum + report.ok, 0),
      errors: reports.reduce((errors, report) => mergeErrors(errors, report.errors), {}),
      elapsedMs: Math.max(...reports.map((report) => report.elapsedMs)),
      latencyMs: reports.flatMap((report) => report.latencyMs),
    };
  }

  /**
   * Arms the delivery count. `progress` gets the total received so far; the promise
   * resolves with the time the last worker completed, or `undefined` at `timeoutMs`.
   */
  async expect(
    group: string,
    perClient: number,
    timeoutMs: number,
    progress: (received: number) => void,
  ): Promise<{ completed: Promise<number | undefined>; stop: () => void }> {
    const received = new Array<number>(this.size).fill(0);
    const offs: (() => void)[] = [];
    let remaining = this.size;
    let last = 0;
    let settle: (at: number | undefined) => void = () => undefined;
    const completed = new Promise<number | undefined>((resolve) => (settle = resolve));
    const timer = setTimeout(() => settle(undefined), timeoutMs);
    this.#workers.forEach((worker, index) => {
      offs.push(
        worker.on('progress', (data) => {
          received[index] = data.received;
          progress(received.reduce((sum, value) => sum + value, 0));
        }),
        worker.on('complete', ({ at }) => {
          last = Math.max(last, at);
          remaining -= 1;
          if (remaining === 0) {
            clearTimeout(timer);
            settle(last);
          }
        }),
      );
    });
    const stop = (): void => {
      clearTimeout(timer);
      for (const off of offs) off();
    };
    await Promise.all(
      this.#workers.map((worker) => worker.call('expect', { group, perClient }, 10_000)),
    );
    return { completed, stop };
  }

  async tally(): Promise<Tally> {
    const tallies = await Promise.all(
      this.#workers.map((worker) => worker.call('tally', null, 10_000)),
    );
    return {
      clients: tallies.reduce((sum, tally) => sum + tally.clients, 0),
      expectedPerClient: tallies[0]?.expectedPerClient ?? 0,
      received: tallies.reduce((sum, tally) => sum + tally.received, 0),
      short: tallies.reduce((sum, tally) => sum + tally.short, 0),
      missing: tallies.reduce((sum, tally) => sum + tally.missing, 0),
      extra: tallies.reduce((sum, tally) => sum + tally.extra, 0),
    };
  }

  /** Echo at `rate` messages/s in total over `connections` clients of `group` in total. */
  async echo(options: {
    group: string;
    connections: number;
    rate: number;
    durationMs: number;
    warmupMs: number;
  }): Promise<EchoReport> {
    const connections = split(options.connections, this.size);
    const rates = split(options.rate, this.size);
    const reports = await Promise.all(
      this.#workers.map((worker, index) =>
        worker.call(
          'echo',
          {
            group: options.group,
            connections: connections[index] ?? 0,
            rate: rates[index] ?? 0,
            durationMs: options.durationMs,
            warmupMs: options.warmupMs,
          },
          options.durationMs + 30_000,
        ),
      ),
    );
    return {
      sent: reports.reduce((sum, report) => sum + report.sent, 0),
      received: reports.reduce((sum, report) => sum + report.received, 0),
      latencyUs: reports.flatMap((report) => report.latencyUs),
    };
  }

  /** Reports every server-side close from now on to `listener`. */
  async watch(listener: (event: WorkerEvents['closed']) => void): Promise<() => void> {
    const offs = this.#workers.map((worker) => worker.on('closed', listener));
    await Promise.all(this.#workers.map((worker) => worker.call('watch', null, 10_000)));
    return () => {
      for (const off of offs) off();
    };
  }

  /** Closes the clients of `group`, or all when `null`. */
  async closeAll(group: string | null): Promise<number> {
    const results = await Promise.all(
      this.#workers.map((worker) => worker.call('closeAll', { group }, 120_000)),
    );
    return results.reduce((sum, result) => sum + result.closed, 0);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.#workers.map(async (worker) => {
        if (worker.child.connected) worker.child.disconnect();
        await stopChild(worker.child, 5_000);
      }),
    );
  }
}
