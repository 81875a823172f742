/**
 * The in-process channel layer: for one process, and for tests.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { ChannelFullError } from '../errors.js';
import { itemsOf, withItem, withoutItem } from '../small-list.js';
import type { Few } from '../small-list.js';
import { assertLayerMessage, assertValidName, Envelope, EnvelopeBatch, handOver } from './layer.js';
import type {
  AttachOptions,
  ChannelLayer,
  ChannelReceiver,
  GroupSendResult,
  LayerMessage,
} from './layer.js';

/** Options of {@link MemoryChannelLayer}. */
export interface MemoryChannelLayerOptions {
  /**
   * Messages a channel without a receiver may hold; a send beyond it throws
   * {@link ChannelFullError}, a group send skips that member.
   * @default 100
   */
  capacity?: number;
  /** How long a queued message lives, in ms. @default 60000 */
  expiry?: number;
  /** How long a group membership lives without being renewed, in ms. `0`: forever. @default 86400000 (1 day) */
  groupExpiry?: number;
  /** The clock, for tests. @default Date.now */
  now?: () => number;
}

/**
 * A channel of this process that has a receiver or is in a group: one record, so that a
 * socket's channel costs one map entry.
 */
interface LocalChannel {
  readonly name: string;
  receiver: ChannelReceiver | undefined;
  /** Whether the receiver takes whole batches. */
  batches: boolean;
  /** The channel's groups: one name or a few (see {@link Few}). */
  groups: Few<string>;
}

interface Membership {
  readonly channel: LocalChannel;
  /** When it joined, in ms since the layer was made (see `#sinceEpoch`). */
  readonly joinedAt: number;
}

/** One settled promise for every call whose work was synchronous. */
const DONE: Promise<void> = Promise.resolve();

/** 2^30: every V8 build stores integers below it unboxed. */
const SMALL_INTEGER_LIMIT = 0x4000_0000;

/**
 * The envelope of a message as another process would receive it: a JSON copy, so that
 * what members read is what the Redis layer would carry, and never the sender's object.
 */
function carried(message: LayerMessage): Envelope {
  const json = JSON.stringify(message);
  return new Envelope(JSON.parse(json) as LayerMessage, json);
}

interface QueuedMessage {
  readonly message: LayerMessage;
  readonly expiresAt: number;
}

/** Counters, for metrics and tests. */
export interface LayerStats {
  /** Messages dropped because their channel was full. */
  dropped: number;
  /** Messages handed to a receiver or queued. */
  delivered: number;
}

/**
 * A {@link ChannelLayer} inside one process. Group sends build one {@link Envelope} and
 * hand it to every attached member, so encoding happens once per send.
 *
 * @example
 * ```ts
 * const layer = new MemoryChannelLayer({ capacity: 100 });
 * const app = urlRouter([route('/ws/chat/', Chat.asApp({ layer }))]);
 * ```
 */
export class MemoryChannelLayer implements ChannelLayer {
  readonly stats: LayerStats = { dropped: 0, delivered: 0 };
  readonly #capacity: number;
  readonly #expiry: number;
  readonly #groupExpiry: number;
  readonly #now: () => number;
  readonly #prefix = randomBytes(6).toString('hex');
  #counter = 0;
  /** When the layer was made: the origin of {@link Membership.joinedAt}. */
  readonly #epoch: number;
  /** Channels with a receiver or a group. */
  readonly #channels = new Map<string, LocalChannel>();
  readonly #queues = new Map<string, QueuedMessage[]>();
  readonly #waiters = new Map<string, ((message: LayerMessage) => void)[]>();
  /** group → channel name → membership (with the channel, so a group send needs no lookup) */
  readonly #groups = new Map<string, Map<string, Membership>>();

  #leave(group: string, channel: string): void {
    const members = this.#groups.get(group);
    if (members !== undefined) {
      members.delete(channel);
      if (members.size === 0) this.#groups.delete(group);
    }
    const local = this.#channels.get(channel);
    if (local !== undefined) {
      local.groups = withoutItem(local.groups, group);
      this.#forgetIfUnused(local);
    }
  }

  /**
   * Milliseconds since the layer was made, as a small integer while one holds it (12
   * days): V8 keeps a small integer in the object, a time in a number box of its own.
   */
  #sinceEpoch(): number {
    const elapsed = this.#now() - this.#epoch;
    return elapsed < SMALL_INTEGER_LIMIT && elapsed > -SMALL_INTEGER_LIMIT ? elapsed | 0 : elapsed;
  }

  #localChannel(name: string): LocalChannel {
    let local = this.#channels.get(name);
    if (local === undefined) {
      local = { name, receiver: undefined, batches: false, groups: undefined };
      this.#channels.set(name, local);
    }
    return local;
  }

  #forgetIfUnused(local: LocalChannel): void {
    if (local.receiver === undefined && local.groups === undefined)
      this.#channels.delete(local.name);
  }

  /** @throws {RangeError} for invalid options. */
  constructor(options: MemoryChannelLayerOptions = {}) {
    const {
      capacity = 100,
      expiry = 60_000, // 60 s
      groupExpiry = 86_400_000, // 1 day, as Channels
      now = Date.now,
    } = options;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError('The "capacity" option must be a positive integer');
    }
    for (const [name, value] of Object.entries({ expiry, groupExpiry })) {
      if (!Number.isInteger(value) || value < 0) {
        throw new RangeError(`The "${name}" option must be a non-negative integer`);
      }
    }
    this.#capacity = capacity;
    this.#expiry = expiry;
    this.#groupExpiry = groupExpiry;
    this.#now = now;
    this.#epoch = now();
  }

  newChannel(prefix = 'specific'): string {
    const name = `${prefix}.${this.#prefix}.${(++this.#counter).toString(36)}`;
    assertValidName('channel', name);
    return name;
  }

  attach(channel: string, receiver: ChannelReceiver, options: AttachOptions = {}): void {
    assertValidName('channel', channel);
    const local = this.#localChannel(channel);
    if (local.receiver !== undefined)
      throw new TypeError(`Channel ${channel} already has a receiver`);
    local.receiver = receiver;
    local.batches = options.batches === true;
    for (const queued of this.#takeQueue(channel)) this.#hand(receiver, new Envelope(queued));
  }

  detach(channel: string, receiver?: ChannelReceiver): void {
    const local = this.#channels.get(channel);
    if (local?.receiver === undefined) return;
    if (receiver !== undefined && local.receiver !== receiver) return;
    local.receiver = undefined;
    // Only this channel's groups: walking every group of the process made a detach
    // cost O(groups), which a reconnect storm multiplies.
    const groups = local.groups;
    local.groups = undefined;
    this.#channels.delete(channel);
    for (const group of itemsOf(groups)) this.#leave(group, channel);
  }

  #hand(receiver: ChannelReceiver, envelope: Envelope): void {
    if (handOver(receiver, envelope)) this.stats.delivered += 1;
  }

  #takeQueue(channel: string): LayerMessage[] {
    const queue = this.#queues.get(channel);
    if (queue === undefined) return [];
    this.#queues.delete(channel);
    const now = this.#now();
    return queue.filter((entry) => entry.expiresAt > now).map((entry) => entry.message);
  }

  /** Queues or hands over; returns false when the channel is full. */
  #offer(channel: string, envelope: Envelope): boolean {
    const receiver = this.#channels.get(channel)?.receiver;
    if (receiver !== undefined) {
      this.#hand(receiver, envelope);
      return true;
    }
    const message = envelope.message;
    const waiters = this.#waiters.get(channel);
    const waiter = waiters?.shift();
    if (waiter !== undefined) {
      if (waiters!.length === 0) this.#waiters.delete(channel);
      waiter(message);
      this.stats.delivered += 1;
      return true;
    }
    const now = this.#now();
    let queue = this.#queues.get(channel);
    if (queue === undefined) {
      queue = [];
      this.#queues.set(channel, queue);
    }
    while (queue.length > 0 && queue[0]!.expiresAt <= now) queue.shift();
    if (queue.length >= this.#capacity) {
      this.stats.dropped += 1;
      return false;
    }
    queue.push({ message, expiresAt: now + this.#expiry });
    this.stats.delivered += 1;
    return true;
  }

  async send(channel: string, message: LayerMessage): Promise<void> {
    assertValidName('channel', channel);
    assertLayerMessage(message);
    if (!this.#offer(channel, carried(message))) throw new ChannelFullError(channel);
  }

  receive(channel: string, signal?: AbortSignal): Promise<LayerMessage> {
    assertValidName('channel', channel);
    if (this.#channels.get(channel)?.receiver !== undefined) {
      return Promise.reject(new TypeError(`Channel ${channel} has a receiver attached`));
    }
    const [first, ...rest] = this.#takeQueue(channel);
    if (first !== undefined) {
      if (rest.length > 0) {
        const now = this.#now();
        this.#queues.set(
          channel,
          rest.map((message) => ({ message, expiresAt: now + this.#expiry })),
        );
      }
      return Promise.resolve(first);
    }
    return new Promise<LayerMessage>((resolve, reject) => {
      const waiters = this.#waiters.get(channel) ?? [];
      this.#waiters.set(channel, waiters);
      const waiter = (message: LayerMessage): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(message);
      };
      const onAbort = (): void => {
        const index = waiters.indexOf(waiter);
        if (index !== -1) waiters.splice(index, 1);
        if (waiters.length === 0) this.#waiters.delete(channel);
        reject(signal!.reason);
      };
      if (signal?.aborted === true) {
        reject(signal.reason);
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      waiters.push(waiter);
    });
  }

  groupAdd(group: string, channel: string): Promise<void> {
    // Synchronous work behind the promise the interface asks for: no async function
    // state per join (every bench handshake joins a group).
    try {
      this.#join(group, channel);
    } catch (error) {
      return Promise.reject(error);
    }
    return DONE;
  }

  #join(group: string, channel: string): void {
    assertValidName('group', group);
    assertValidName('channel', channel);
    let members = this.#groups.get(group);
    if (members === undefined) {
      members = new Map();
      this.#groups.set(group, members);
    }
    const local = this.#localChannel(channel);
    members.set(channel, { channel: local, joinedAt: this.#sinceEpoch() });
    local.groups = withItem(local.groups, group);
  }

  groupDiscard(group: string, channel: string): Promise<void> {
    try {
      assertValidName('group', group);
      assertValidName('channel', channel);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#leave(group, channel);
    return DONE;
  }

  async groupSend(group: string, message: LayerMessage): Promise<GroupSendResult> {
    return this.groupSendMany(group, [message]);
  }

  async groupSendMany(group: string, messages: readonly LayerMessage[]): Promise<GroupSendResult> {
    assertValidName('group', group);
    // All checked first: a bad message fails the whole send, not half of it.
    for (const message of messages) assertLayerMessage(message);
    const members = this.#groups.get(group);
    if (members === undefined || messages.length === 0) return { delivered: 0, dropped: 0 };
    const envelopes = messages.map(carried);
    // One batch object for all members, so what it derives (the frames) is made once.
    const batch = envelopes.length > 1 ? new EnvelopeBatch(envelopes) : undefined;
    const expiredBefore =
      this.#groupExpiry > 0 ? this.#sinceEpoch() - this.#groupExpiry : -Infinity;
    let delivered = 0;
    let handed = 0;
    let dropped = 0;
    // Map iteration tolerates a handler leaving the group mid-send; no snapshot copy, so a
    // send to 10,000 members allocates nothing per member. Member by member: a burst
    // reaches each member while its consumer and socket are hot in the CPU's cache.
    for (const membership of members.values()) {
      const channel = membership.channel;
      if (membership.joinedAt <= expiredBefore) {
        this.#leave(group, channel.name);
        continue;
      }
      if (batch !== undefined && channel.batches && channel.receiver !== undefined) {
        handOver(channel.receiver, batch);
        handed += envelopes.length;
        continue;
      }
      for (const envelope of envelopes) {
        const receiver = channel.receiver;
        if (receiver !== undefined) {
          handOver(receiver, envelope);
          handed += 1;
        } else if (this.#offer(channel.name, envelope)) delivered += 1;
        else dropped += 1;
      }
    }
    // Counted once per send, not per delivery: this loop runs for every member.
    this.stats.delivered += handed;
    return { delivered: delivered + handed, dropped };
  }

  /** Channels currently in a group (for tests and presence). */
  groupMembers(group: string): string[] {
    return [...(this.#groups.get(group)?.keys() ?? [])];
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.#channels.clear();
    this.#queues.clear();
    this.#groups.clear();
    for (const waiters of this.#waiters.values()) waiters.length = 0;
    this.#waiters.clear();
  }
}
