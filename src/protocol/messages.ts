/**
 * Frame parsing shared by JSON consumers, first-message auth and the built-in apps.
 *
 * @module
 */
import { ProtocolError } from '../errors.js';
import { CloseReason } from './close-codes.js';

/** A JSON object as received from a client. */
export type JsonObject = { [key: string]: unknown };

/**
 * Parses a client frame that must be a JSON object.
 * @throws {ProtocolError} `ERR_BINARY_NOT_ACCEPTED`, `ERR_INVALID_JSON` or `ERR_NOT_AN_OBJECT`;
 *   its message is the close reason to send with 4400.
 */
export function parseJsonObject(data: string | Uint8Array): JsonObject {
  if (typeof data !== 'string') {
    throw new ProtocolError('ERR_BINARY_NOT_ACCEPTED', CloseReason.BinaryNotAccepted);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    throw new ProtocolError('ERR_INVALID_JSON', CloseReason.InvalidJson);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ProtocolError('ERR_NOT_AN_OBJECT', CloseReason.NotAnObject);
  }
  return parsed as JsonObject;
}

/** The in-band authentication frame: `{"type":"auth","token":"…"}` (SPEC §3). */
export interface AuthFrame {
  readonly type: 'auth';
  readonly token: string;
}

/** True when a parsed frame is an {@link AuthFrame}. */
export function isAuthFrame(frame: JsonObject): frame is JsonObject & AuthFrame {
  return frame['type'] === 'auth' && typeof frame['token'] === 'string';
}
