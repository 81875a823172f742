/**
 * The channel layer contract (SPEC §2) and the naming rule every layer shares.
 *
 * @module
 */
import { InvalidChannelNameError } from '../errors.js';
import { OutboundBatch, OutboundMessage } from '../outbound.js';

/** A message carried by a channel layer: a JSON-serialisable object with a `type`. */
export interface LayerMessage {
  readonly type: string;
  readonly [key: string]: unknown;
}

/** Freezes `value` and everything reachable from it; frozen objects are taken as done. */
function freezeDeep(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return;
  // A typed array's elements cannot be frozen (`Object.freeze` throws on them).
  if (ArrayBuffer.isView(value)) return;
  Object.freeze(value);
  for (const key of Object.keys(value)) freezeDeep((value as Record<string, unknown>)[key]);
}

/**
 * One message as handed to local receivers. A group send builds one envelope and hands
 * the same object to every local member, so whatever is derived from the message (its
 * JSON text, a pre-built WebSocket frame) is computed once, not once per member.
 *
 * The message is frozen, deeply, when the envelope is made: members share it, so none
 * may change what the others read. Layers give an envelope a copy of what was sent
 * (the memory layer a JSON copy, as the Redis layer decodes one), never the sender's
 * own object.
 */
export class Envelope {
  readonly message: LayerMessage;
  #json: string | undefined;
  /** Values derived from the message by its receivers, shared by every member. */
  readonly cache = new Map<symbol, unknown>();

  constructor(message: LayerMessage, json?: string) {
    freezeDeep(message);
    this.message = message;
    this.#json = json;
  }

  /** The message as JSON, encoded at most once. */
  get json(): string {
    this.#json ??= JSON.stringify(this.message);
    return this.#json;
  }

  #outbound: OutboundMessage | undefined;

  /**
   * For a `websocket.send` message: its client payload (`text`, or `json` encoded once)
   * as one {@link OutboundMessage} shared by every member that forwards it.
   * `undefined` when the message carries neither.
   */
  get outbound(): OutboundMessage | undefined {
    if (this.#outbound !== undefined) return this.#outbound;
    const { text, json } = this.message;
    if (typeof text === 'string') this.#outbound = new OutboundMessage(text);
    else if (json !== undefined) this.#outbound = new OutboundMessage(JSON.stringify(json));
    return this.#outbound;
  }
}

/**
 * Envelopes of one batch send handed to a member at once, to receivers attached with
 * `{ batches: true }`. The same object goes to every member, like an envelope.
 */
export class EnvelopeBatch {
  readonly envelopes: readonly Envelope[];
  #outbound: OutboundBatch | null | undefined;

  constructor(envelopes: readonly Envelope[]) {
    this.envelopes = envelopes;
  }

  /**
   * When every envelope is a `websocket.send` with a payload: their payloads as one
   * {@link OutboundBatch} shared by every member that forwards them; else `undefined`.
   */
  get outbound(): OutboundBatch | undefined {
    if (this.#outbound === undefined) {
      const messages: OutboundMessage[] = [];
      for (const envelope of this.envelopes) {
        const outbound = envelope.message.type === 'websocket.send' ? envelope.outbound : undefined;
        if (outbound === undefined) break;
        messages.push(outbound);
      }
      this.#outbound =
        messages.length === this.envelopes.length ? new OutboundBatch(messages) : null;
    }
    return this.#outbound ?? undefined;
  }
}

/**
 * Key of a {@link LayerListener}'s method: a symbol, so that a consumer can be one
 * without a public method of that name.
 */
export const kLayerDelivery = Symbol('portcullis.layerDelivery');

/**
 * A receiver object: the layer calls its method rather than a function, so that a
 * consumer attaches itself instead of a closure per socket. It takes batches only when
 * attached with `{ batches: true }`.
 */
export interface LayerListener {
  [kLayerDelivery](delivery: Envelope | EnvelopeBatch): void;
}

/** Receives messages sent to a channel owned by this process. */
export type ChannelReceiver = ((envelope: Envelope) => void) | LayerListener;

/** A receiver that also takes whole batches: attach it with `{ batches: true }`. */
export type BatchChannelReceiver = ((delivery: Envelope | EnvelopeBatch) => void) | LayerListener;

/**
 * Hands a delivery to a receiver of either kind. Layers call it; a batch only goes to a
 * receiver attached with `{ batches: true }`.
 */
export function deliverTo(
  receiver: ChannelReceiver | BatchChannelReceiver,
  delivery: Envelope | EnvelopeBatch,
): void {
  if (typeof receiver === 'function')
    (receiver as (delivery: Envelope | EnvelopeBatch) => void)(delivery);
  else receiver[kLayerDelivery](delivery);
}

/**
 * @internal {@link deliverTo}, reporting instead of throwing: false when the receiver
 * threw. Receivers are consumers, which catch their own errors; one member's failure
 * must never stop a send reaching the others.
 */
export function handOver(
  receiver: ChannelReceiver | BatchChannelReceiver,
  delivery: Envelope | EnvelopeBatch,
): boolean {
  try {
    deliverTo(receiver, delivery);
    return true;
  } catch {
    return false;
  }
}

/** Options of {@link ChannelLayer.attach}. */
export interface AttachOptions {
  /**
   * The receiver also accepts an {@link EnvelopeBatch} for a batch send (one call per
   * member instead of one per message). Layers without batches ignore it.
   * @default false
   */
  readonly batches?: boolean;
}

/** Outcome of a group send, for metrics and the publish API. */
export interface GroupSendResult {
  /** Local channels the message was handed to (memory layer), or 1 per publish (Redis). */
  readonly delivered: number;
  /** Member channels skipped because they were full. */
  readonly dropped: number;
}

/**
 * A channel layer carries messages between consumers, across groups and processes.
 *
 * Consumers on this process attach a receiver to their channel ({@link attach}) and get
 * messages pushed; background workers without a socket poll with {@link receive}.
 */
export interface ChannelLayer {
  /** A new unique channel name for this process, e.g. `specific.a1b2c3.42`. */
  newChannel(prefix?: string): string;
  /**
   * Pushes every message for `channel` to `receiver` until {@link detach}.
   * @throws {TypeError} when the channel already has a receiver.
   */
  attach(channel: string, receiver: ChannelReceiver, options?: AttachOptions): void;
  /**
   * Stops pushing `channel`'s messages and removes the channel from every group it is
   * in. With `receiver`, only while that receiver is the one attached (a late detach
   * must not remove its successor). A method rather than a function returned by
   * {@link attach}: no closure per attached channel.
   *
   * @returns nothing when done at once, or a promise that settles once a backing service
   * has dropped the memberships (Redis); it never rejects: a membership that could not
   * be dropped expires.
   */
  detach(channel: string, receiver?: ChannelReceiver): void | Promise<void>;
  /** Sends to one channel. @throws {@link ChannelFullError} when its queue is full. */
  send(channel: string, message: LayerMessage): Promise<void>;
  /** Waits for the next message on a channel that has no receiver attached. */
  receive(channel: string, signal?: AbortSignal): Promise<LayerMessage>;
  groupAdd(group: string, channel: string): Promise<void>;
  groupDiscard(group: string, channel: string): Promise<void>;
  /**
   * Sends to every member of a group. A full member is skipped (and counted), the
   * others still get the message.
   */
  groupSend(group: string, message: LayerMessage): Promise<GroupSendResult>;
  /**
   * Optional: sends several messages to every member of a group, in order, as
   * {@link groupSend} for each would, but member by member: a burst reaches each member
   * while its state is hot in the CPU's cache. Results are summed over the messages.
   * Call it through {@link groupSendAll}, which falls back to {@link groupSend}.
   */
  groupSendMany?(group: string, messages: readonly LayerMessage[]): Promise<GroupSendResult>;
  /** Resolves when the layer's backing service answers; rejects otherwise (for readiness). */
  ping(): Promise<void>;
  /** Releases timers and connections. */
  close(): Promise<void>;
}

/**
 * Sends `messages` in order to every member of `group`: one {@link ChannelLayer.groupSendMany}
 * where the layer has it, else one {@link ChannelLayer.groupSend} per message.
 *
 * @example
 * ```ts
 * await groupSendAll(layer, 'room.1', [{ type: 'websocket.send', text: 'a' }, { type: 'websocket.send', text: 'b' }]);
 * ```
 */
export async function groupSendAll(
  layer: ChannelLayer,
  group: string,
  messages: readonly LayerMessage[],
): Promise<GroupSendResult> {
  if (layer.groupSendMany !== undefined) return layer.groupSendMany(group, messages);
  // All checked first, as groupSendMany does: a bad message fails the whole batch.
  assertValidName('group', group);
  for (const message of messages) assertLayerMessage(message);
  let delivered = 0;
  let dropped = 0;
  for (const message of messages) {
    const result = await layer.groupSend(group, message);
    delivered += result.delivered;
    dropped += result.dropped;
  }
  return { delivered, dropped };
}

const NAME_PATTERN = /^[A-Za-z0-9\-_.]{1,99}$/;

/** True when `name` is a valid channel or group name (SPEC §2). */
export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME_PATTERN.test(name);
}

/**
 * Throws {@link InvalidChannelNameError} unless `name` follows SPEC §2's rule. The one
 * place the rule is checked; every layer calls it.
 */
export function assertValidName(kind: 'channel' | 'group', name: unknown): asserts name is string {
  if (!isValidName(name)) throw new InvalidChannelNameError(kind, String(name));
}

/** Throws `TypeError` unless `message` is an object with a string `type`. */
export function assertLayerMessage(message: unknown): asserts message is LayerMessage {
  if (
    typeof message !== 'object' ||
    message === null ||
    typeof (message as { type?: unknown }).type !== 'string'
  ) {
    throw new TypeError('A layer message must be an object with a string "type"');
  }
}
