/**
 * Group fan-out. A group send is one `PUBLISH` of JSON encoded once (a batch: one
 * `PUBLISH` of them all), plus a push onto the list of each queued member. Each process
 * holds one subscription per group that has local members, decodes each payload once
 * and hands the same {@link Envelope} (or {@link EnvelopeBatch}) to every local member.
 *
 * @internal
 * @module
 */
import type { Logger } from 'pino';
import { EnvelopeBatch } from '../layer.js';
import type { GroupSendResult } from '../layer.js';
import type { RedisLifecycle } from './lifecycle.js';
import { decodeGroupPayload, encodeGroupPayload } from './messages.js';
import type { Membership } from './membership.js';
import type { LayerNames } from './names.js';
import type { ChannelQueues, ScriptedRedis } from './queues.js';
import type { LocalReceivers } from './receivers.js';
import type { Subscriptions } from './subscriptions.js';
import type { RedisLayerStats } from './layer.js';

/** @internal */
export interface FanOutOptions {
  readonly redis: Pick<RedisLifecycle, 'failure'>;
  /** The command connection; a refusal while Redis is down counts as a publish failure. */
  readonly command: () => ScriptedRedis;
  readonly names: LayerNames;
  readonly subscriptions: Subscriptions;
  readonly membership: Membership;
  readonly queues: ChannelQueues;
  readonly receivers: LocalReceivers;
  readonly stats: RedisLayerStats;
  readonly logger: Logger;
}

/** @internal */
export class FanOut {
  readonly #options: FanOutOptions;

  constructor(options: FanOutOptions) {
    this.#options = options;
  }

  /**
   * Sends the messages (JSON, in order) to every member of a group.
   * @returns `delivered`: processes the publish reached (times the messages) plus list
   * pushes; `dropped`: queued members' messages skipped because full or because Redis
   * failed mid-way.
   * @throws {ServiceUnavailableError} when Redis did not take the publish; nothing was sent.
   */
  async send(group: string, jsons: readonly string[]): Promise<GroupSendResult> {
    const { redis, command, names, subscriptions, membership, queues, stats } = this.#options;
    const cmd = command();
    const topic = names.groupTopic(group);
    // A member that joined here (attach after groupAdd) must see a send made here after it.
    await subscriptions.pending(topic)?.catch(() => {});
    let published: number;
    let queued: string[];
    try {
      [published, queued] = await Promise.all([
        subscriptions.publish(topic, encodeGroupPayload(jsons), cmd),
        membership.members(cmd, group, true),
      ]);
    } catch (err) {
      stats.publishFailures += 1;
      throw redis.failure(err);
    }
    let delivered = published * jsons.length;
    let dropped = 0;
    const outcomes = await Promise.all(queued.map((channel) => queues.pushAll(channel, jsons)));
    for (const pushed of outcomes) {
      delivered += pushed;
      dropped += jsons.length - pushed;
    }
    return { delivered, dropped };
  }

  /** A group send from some process: decoded once, handed to every unexpired local member. */
  deliver(group: string, payload: string): void {
    const { membership, receivers, logger } = this.#options;
    const members = membership.localMembers(group);
    if (members === undefined) return;
    const envelopes = decodeGroupPayload(payload, logger);
    if (envelopes === undefined) return;
    const batch = envelopes.length > 1 ? new EnvelopeBatch(envelopes) : undefined;
    const expiredBefore = membership.expiredBefore();
    for (const [channel, joinedAt] of members) {
      if (joinedAt <= expiredBefore) membership.dropLocal(group, channel);
      else receivers.handAll(channel, envelopes, batch);
    }
  }
}
