/**
 * The receivers attached in this process, and handing deliveries to them. A channel
 * attached here gets its messages from this process without a Redis round trip when
 * the sender is local, and from this process's subscriptions otherwise.
 *
 * @internal
 * @module
 */
import { handOver } from '../layer.js';
import type { ChannelReceiver, Envelope, EnvelopeBatch } from '../layer.js';
import type { LayerStats } from '../memory.js';

/** @internal */
export class LocalReceivers {
  readonly #receivers = new Map<string, ChannelReceiver>();
  /** Attached channels whose receiver takes whole batches (`{ batches: true }`). */
  readonly #batchChannels = new Set<string>();
  readonly #stats: LayerStats;

  /** `stats.delivered` counts every hand-over that did not throw. */
  constructor(stats: LayerStats) {
    this.#stats = stats;
  }

  get(channel: string): ChannelReceiver | undefined {
    return this.#receivers.get(channel);
  }

  has(channel: string): boolean {
    return this.#receivers.has(channel);
  }

  add(channel: string, receiver: ChannelReceiver, batches: boolean): void {
    this.#receivers.set(channel, receiver);
    if (batches) this.#batchChannels.add(channel);
  }

  /** Removes the channel's receiver (only `receiver`, when given); false when it was not attached. */
  delete(channel: string, receiver?: ChannelReceiver): boolean {
    const attached = this.#receivers.get(channel);
    if (attached === undefined || (receiver !== undefined && attached !== receiver)) return false;
    this.#receivers.delete(channel);
    this.#batchChannels.delete(channel);
    return true;
  }

  /** Hands one envelope to a receiver. */
  hand(receiver: ChannelReceiver, envelope: Envelope): void {
    if (handOver(receiver, envelope)) this.#stats.delivered += 1;
  }

  /**
   * Hands a group send's envelopes to one attached channel: the whole batch in one call
   * when its receiver takes batches, else one call per envelope.
   */
  handAll(channel: string, envelopes: readonly Envelope[], batch: EnvelopeBatch | undefined): void {
    const receiver = this.#receivers.get(channel);
    if (receiver === undefined) return;
    if (batch !== undefined && this.#batchChannels.has(channel)) {
      if (handOver(receiver, batch)) this.#stats.delivered += envelopes.length;
    } else for (const envelope of envelopes) this.hand(receiver, envelope);
  }

  clear(): void {
    this.#receivers.clear();
    this.#batchChannels.clear();
  }
}
