/**
 * Prometheus metrics of the gateway (SPEC §6 `/metrics`).
 *
 * Hot-path counts are plain numbers read at scrape time, so that a broadcast to 10,000
 * sockets does not call into prom-client 10,000 times.
 *
 * @module
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuthResultEvent } from '../middleware/auth.js';
import { groupSendAll } from '../layers/layer.js';
import type { ChannelLayer, GroupSendResult, LayerMessage } from '../layers/layer.js';

/** What the transport counts, read at scrape time. */
export interface TransportCounts {
  readonly size: number;
  readonly messagesIn: number;
  readonly messagesOut: number;
  /** Finished connections by close code. */
  readonly closeCodes: ReadonlyMap<number, number>;
}

/** The gateway's metrics and the hooks that feed them. */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #groupSends: Counter<'result'>;
  readonly #layerLatency: Histogram<'operation'>;
  readonly #httpRequests: Counter<'route' | 'status'>;

  constructor(transport: () => TransportCounts) {
    collectDefaultMetrics({ register: this.registry, prefix: 'portcullis_process_' });
    new Gauge({
      name: 'portcullis_connections',
      help: 'Open WebSocket connections, pending handshakes included.',
      registers: [this.registry],
      collect() {
        this.set(transport().size);
      },
    });
    const messagesIn = (): number => transport().messagesIn;
    const messagesOut = (): number => transport().messagesOut;
    new Counter({
      name: 'portcullis_messages_received_total',
      help: 'Frames received from clients.',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(messagesIn());
      },
    });
    new Counter({
      name: 'portcullis_messages_sent_total',
      help: 'Frames queued to clients.',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(messagesOut());
      },
    });
    new Counter({
      name: 'portcullis_close_codes_total',
      help: 'Closed connections by close code.',
      labelNames: ['code'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [code, count] of transport().closeCodes) this.inc({ code: String(code) }, count);
      },
    });
    const authCounts = this.#authCounts;
    new Counter({
      name: 'portcullis_auth_results_total',
      help: 'WebSocket authentication attempts by credential transport and outcome.',
      labelNames: ['transport', 'outcome'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [transport, outcomes] of authCounts) {
          for (const [outcome, count] of outcomes) this.inc({ transport, outcome }, count);
        }
      },
    });
    this.#groupSends = new Counter({
      name: 'portcullis_group_sends_total',
      help: 'Group sends by result.',
      labelNames: ['result'],
      registers: [this.registry],
    });
    this.#layerLatency = new Histogram({
      name: 'portcullis_layer_latency_seconds',
      help: 'Channel layer operation latency.',
      labelNames: ['operation'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [this.registry],
    });
    this.#httpRequests = new Counter({
      name: 'portcullis_http_requests_total',
      help: 'HTTP requests by route and status.',
      labelNames: ['route', 'status'],
      registers: [this.registry],
    });
  }

  /** transport → outcome → count: plain numbers, read at scrape time. */
  readonly #authCounts = new Map<string, Map<string, number>>();

  /** Feed for `authMiddleware({ onResult })`. Runs once per handshake. */
  readonly onAuthResult = (event: AuthResultEvent): void => {
    // Not prom-client's inc(): with labels it cost ~6 µs of a ~350 µs handshake.
    let outcomes = this.#authCounts.get(event.transport);
    if (outcomes === undefined) {
      outcomes = new Map();
      this.#authCounts.set(event.transport, outcomes);
    }
    outcomes.set(event.outcome, (outcomes.get(event.outcome) ?? 0) + 1);
  };

  /** Counts an HTTP response. */
  httpResponse(route: string, status: number): void {
    this.#httpRequests.inc({ route, status: String(status) });
  }

  /** Wraps a layer so group sends and their latency are measured. */
  instrumentLayer(layer: ChannelLayer): ChannelLayer {
    const timed = async <T>(operation: string, run: () => Promise<T>): Promise<T> => {
      const stop = this.#layerLatency.startTimer({ operation });
      try {
        return await run();
      } finally {
        stop();
      }
    };
    const countedSend = async (send: () => Promise<GroupSendResult>): Promise<GroupSendResult> => {
      try {
        const result = await timed('group_send', send);
        this.#groupSends.inc({ result: result.dropped > 0 ? 'partial' : 'ok' });
        return result;
      } catch (error) {
        this.#groupSends.inc({ result: 'failed' });
        throw error;
      }
    };
    return {
      newChannel: (prefix) => layer.newChannel(prefix),
      attach: (channel, receiver, options) => layer.attach(channel, receiver, options),
      detach: (channel, receiver) => layer.detach(channel, receiver),
      send: (channel, message) => timed('send', () => layer.send(channel, message)),
      receive: (channel, signal) => layer.receive(channel, signal),
      // Membership changes run per join and leave, not per message: left untimed.
      groupAdd: (group, channel) => layer.groupAdd(group, channel),
      groupDiscard: (group, channel) => layer.groupDiscard(group, channel),
      groupSend: (group: string, message: LayerMessage) =>
        countedSend(() => layer.groupSend(group, message)),
      groupSendMany: (group: string, messages: readonly LayerMessage[]) =>
        countedSend(() => groupSendAll(layer, group, messages)),
      ping: () => layer.ping(),
      close: () => layer.close(),
    };
  }
}
