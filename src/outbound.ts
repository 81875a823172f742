/**
 * A message to be sent to many sockets, encoded once.
 *
 * @module
 */

/**
 * A payload shared by many connections (a group send). The transport keeps its encoded
 * form (a pre-built WebSocket frame) on it, so a broadcast to N sockets on one process
 * frames the message once, not N times.
 */
export class OutboundMessage {
  readonly data: string | Uint8Array;
  readonly binary: boolean;
  /** @internal The `ws` transport's frame of {@link data}, made by the first send. */
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
