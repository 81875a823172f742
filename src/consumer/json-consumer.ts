/**
 * A consumer that speaks JSON objects.
 *
 * @module
 */
import type { IncomingData } from '../application.js';
import { ProtocolError } from '../errors.js';
import { CloseCode } from '../protocol/close-codes.js';
import { parseJsonObject } from '../protocol/messages.js';
import type { JsonObject } from '../protocol/messages.js';
import { registerBaseConsumer, WebsocketConsumer } from './consumer.js';

/**
 * A {@link WebsocketConsumer} whose frames are JSON objects. A binary frame, invalid JSON
 * or a JSON value that is not an object closes the connection 4400 with a fixed reason.
 *
 * @example
 * ```ts
 * class Chat extends JsonWebsocketConsumer {
 *   override readonly groups = ['lobby'];
 *   override async receiveJson(content: JsonObject) {
 *     await this.groupSend('lobby', { type: 'websocket.send', json: { text: content['text'] } });
 *   }
 * }
 * ```
 */
export class JsonWebsocketConsumer extends WebsocketConsumer {
  override receive(data: IncomingData): void | Promise<void> {
    let content: JsonObject;
    try {
      content = parseJsonObject(data);
    } catch (error) {
      if (error instanceof ProtocolError) {
        this.close(CloseCode.BadFrame, error.message);
        return;
      }
      throw error;
    }
    return this.receiveJson(content);
  }

  /** Called for each JSON object the client sends. The default ignores it. */
  receiveJson(_content: JsonObject): void | Promise<void> {}

  /** Sends a value as one JSON text frame. */
  sendJson(content: unknown): void {
    this.send(JSON.stringify(content));
  }
}

registerBaseConsumer(JsonWebsocketConsumer.prototype);
