/**
 * A message to be sent to many sockets, encoded once.
 *
 * @module
 */

/**
 * A payload shared by many connections (a group send). Transports keep their encoded
 * form (a pre-built WebSocket frame) in {@link cache}, so a broadcast to N sockets on
 * one process frames the message once, not N times.
 */
export class OutboundMessage {
  readonly data: string | Uint8Array;
  readonly binary: boolean;
  /** Transport-private encodings, keyed by a symbol each transport owns. */
  readonly cache = new Map<symbol, unknown>();
  /**
   * @internal The `ws` transport's frame: a field rather than a {@link cache} entry,
   * because it is read once per member of every broadcast.
   */
  wsFrame: Buffer | undefined = undefined;

  constructor(data: string | Uint8Array) {
    this.data = data;
    this.binary = typeof data !== 'string';
  }
}

/**
 * Several shared messages that go to each connection together, in order, as separate
 * frames (a published batch): a transport frames the whole batch once for every
 * connection, and queues it to each as one piece.
 */
export class OutboundBatch {
  readonly messages: readonly OutboundMessage[];
  /** @internal The `ws` transport's frames of every message, concatenated. */
  wsFrame: Buffer | undefined = undefined;

  constructor(messages: readonly OutboundMessage[]) {
    this.messages = messages;
  }
}
