/**
 * Direct sends to a process. A channel made by `newChannel()` carries its process id
 * (`specific.<processId>.<n>`), so a send to it goes straight to the owning process
 * over that process's own pub/sub channel; no Redis state is written per attached
 * socket. The same channel carries requests to add or remove one of the process's
 * channels to or from a group, which only the owner can do (it alone knows whether the
 * channel has a receiver).
 *
 * Wire format on `P:proc:<processId>`: `m <channel> <json>` (a send),
 * `a <group> <channel>` / `d <group> <channel>` (membership requests).
 *
 * @internal
 * @module
 */
import type { Logger } from 'pino';
import { ChannelFullError } from '../../errors.js';
import { Envelope, isValidName } from '../layer.js';
import type { LayerMessage } from '../layer.js';
import type { RedisLifecycle } from './lifecycle.js';
import { decodeMessage } from './messages.js';
import { ownerOf } from './names.js';
import type { LayerNames } from './names.js';
import type { ChannelQueues, ScriptedRedis } from './queues.js';
import type { LocalReceivers } from './receivers.js';
import type { Subscriptions } from './subscriptions.js';
import type { RedisLayerStats } from './layer.js';

/** @internal */
export interface DirectSendsOptions {
  readonly processId: string;
  readonly redis: Pick<RedisLifecycle, 'failure'>;
  /** The command connection; a refusal while Redis is down counts as a publish failure. */
  readonly command: () => ScriptedRedis;
  readonly names: LayerNames;
  readonly subscriptions: Subscriptions;
  readonly queues: ChannelQueues;
  readonly receivers: LocalReceivers;
  readonly stats: RedisLayerStats;
  readonly logger: Logger;
  /** Another process asked to add one of this process's channels to a group. */
  readonly onAddRequest: (group: string, channel: string) => void;
  /** Another process asked to remove one of this process's channels from a group. */
  readonly onDiscardRequest: (group: string, channel: string) => void;
}

/** @internal */
export class DirectSends {
  readonly #options: DirectSendsOptions;

  constructor(options: DirectSendsOptions) {
    this.#options = options;
  }

  /**
   * Sends to one channel: handed over at once to a receiver attached here (Redis or
   * not), published to the owning process, or pushed onto the channel's list when it
   * has no receiver (or its process is gone).
   * @throws {ChannelFullError} when the list is at capacity.
   * @throws {ServiceUnavailableError} when Redis is unreachable.
   */
  async send(channel: string, message: LayerMessage): Promise<void> {
    const { processId, redis, command, names, subscriptions, queues, receivers, stats } =
      this.#options;
    const owner = ownerOf(channel);
    if (owner === processId) {
      const receiver = receivers.get(channel);
      if (receiver !== undefined) {
        receivers.hand(receiver, new Envelope(message));
        return;
      }
    }
    const cmd = command();
    const json = JSON.stringify(message);
    try {
      // No subscriber (the owner process is gone): queue it like any unattached channel,
      // where it expires unless someone receives it.
      if (owner !== undefined && owner !== processId) {
        const reached = await subscriptions.publish(
          names.processTopic(owner),
          `m ${channel} ${json}`,
          cmd,
        );
        if (reached > 0) return;
      }
      if (await queues.push(channel, json)) return;
    } catch (err) {
      stats.publishFailures += 1;
      throw redis.failure(err);
    }
    throw new ChannelFullError(channel);
  }

  /**
   * Asks the owning process to add its channel to a group.
   * @returns false when no process heard it (the owner is gone).
   * @throws what Redis throws.
   */
  async requestAdd(owner: string, group: string, channel: string): Promise<boolean> {
    return (await this.#request(owner, `a ${group} ${channel}`)) > 0;
  }

  /** Asks the owning process to remove its channel from a group. @throws what Redis throws. */
  async requestDiscard(owner: string, group: string, channel: string): Promise<void> {
    await this.#request(owner, `d ${group} ${channel}`);
  }

  /** A message on this process's channel. */
  receive(payload: string): void {
    const kind = payload.slice(0, 2);
    const rest = payload.slice(2);
    const space = rest.indexOf(' ');
    const first = rest.slice(0, space);
    const second = rest.slice(space + 1);
    if (space < 1 || !isValidName(first)) return;
    if (kind === 'm ') this.#onSend(first, second);
    else if (kind === 'a ' && isValidName(second)) this.#options.onAddRequest(first, second);
    else if (kind === 'd ' && isValidName(second)) this.#options.onDiscardRequest(first, second);
  }

  #request(owner: string, payload: string): Promise<number> {
    const { command, names, subscriptions } = this.#options;
    return subscriptions.publish(names.processTopic(owner), payload, command());
  }

  #onSend(channel: string, json: string): void {
    const { redis, queues, receivers, stats, logger } = this.#options;
    const receiver = receivers.get(channel);
    if (receiver !== undefined) {
      const message = decodeMessage(json, logger);
      if (message !== undefined) receivers.hand(receiver, new Envelope(message, json));
      return;
    }
    // No receiver here: a worker may be calling receive(), which reads the list. The
    // sender has been answered already, so a full list is only counted, here.
    queues.push(channel, json).catch((err: unknown) => {
      redis.failure(err);
      stats.publishFailures += 1;
      logger.warn({ err, channel }, 'redis channel layer: could not queue a message');
    });
  }
}
