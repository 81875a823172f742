/**
 * Decoding what arrives from Redis. Anything on the layer's prefix that is not a layer
 * message (another program publishing there, a corrupt list item) is logged and
 * dropped, never handed to a consumer.
 *
 * @internal
 * @module
 */
import type { Logger } from 'pino';
import { assertLayerMessage, Envelope } from '../layer.js';
import type { LayerMessage } from '../layer.js';

/**
 * The payload of a group send: one message as its JSON object, several as a JSON
 * array of them (what {@link decodeGroupPayload} reads).
 * @internal
 */
export function encodeGroupPayload(jsons: readonly string[]): string {
  return jsons.length === 1 ? jsons[0]! : `[${jsons.join(',')}]`;
}

/**
 * One message from its JSON, or undefined (logged) when it is not a layer message.
 * @internal
 */
export function decodeMessage(json: string, logger: Logger): LayerMessage | undefined {
  try {
    const message: unknown = JSON.parse(json);
    assertLayerMessage(message);
    return message;
  } catch (err) {
    logger.warn({ err }, 'redis channel layer: dropped a malformed message');
    return undefined;
  }
}

/**
 * The envelopes of a group payload: one for an object (keeping the JSON as received),
 * two or more for an array; undefined (logged) when malformed.
 * @internal
 */
export function decodeGroupPayload(json: string, logger: Logger): Envelope[] | undefined {
  if (!json.startsWith('[')) {
    const message = decodeMessage(json, logger);
    return message === undefined ? undefined : [new Envelope(message, json)];
  }
  try {
    const messages: unknown = JSON.parse(json);
    if (!Array.isArray(messages) || messages.length < 2) throw new TypeError('not a batch');
    for (const message of messages) assertLayerMessage(message);
    return (messages as LayerMessage[]).map((message) => new Envelope(message));
  } catch (err) {
    logger.warn({ err }, 'redis channel layer: dropped a malformed batch');
    return undefined;
  }
}

/**
 * A queued list item, `<expires-at ms> <json>`: its message, or undefined when it
 * expired or is malformed.
 * @internal
 */
export function decodeListItem(
  item: string,
  now: number,
  logger: Logger,
): LayerMessage | undefined {
  const space = item.indexOf(' ');
  const expiresAt = Number(item.slice(0, space));
  if (space < 1 || !(expiresAt > now)) return undefined;
  return decodeMessage(item.slice(space + 1), logger);
}
