/**
 * Django's signed values (`django.core.signing`, Django 3.2 and later), verified with
 * Node's crypto: `salted_hmac` (a key derived by hashing the salt and the secret, then
 * HMAC), URL-safe base64 without padding, base62 timestamps and zlib-compressed JSON.
 * Sessions use it for their data (`django_session.session_data`) and, with the
 * `signed_cookies` backend, for the cookie itself.
 *
 * @internal
 * @module
 */
import { createHash, createHmac } from 'node:crypto';
import { inflateSync } from 'node:zlib';
import { constantTimeEqual } from '../../tokens.js';

/** Hash functions Django signs with: `sha256` since 3.1, `sha1` before (still accepted by 3.2). */
export type DjangoHashAlgorithm = 'sha1' | 'sha256';

/** Why a signed value was refused; never carries the value or the secret. */
export class BadSignature extends Error {}

/** A signed value past its `max_age` (Django's `SignatureExpired`). */
export class SignatureExpired extends BadSignature {}

/**
 * The largest decompressed payload accepted. Django signs before it compresses, so only
 * the holder of the secret can make a zip bomb; a session this large is a mistake anyway.
 */
export const MAX_SIGNED_PAYLOAD_BYTES = 1024 * 1024;

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/**
 * Django's `salted_hmac(key_salt, value, secret, algorithm=...)`: HMAC keyed with
 * `hash(key_salt + secret)`, so each use of the secret gets its own key.
 */
export function saltedHmac(
  keySalt: string,
  value: string | Buffer,
  secret: string | Buffer,
  algorithm: DjangoHashAlgorithm,
): Buffer {
  const key = createHash(algorithm).update(keySalt).update(secret).digest();
  return createHmac(algorithm, key).update(value).digest();
}

/** Base62 as `django.utils.baseconv.base62` writes timestamps; `undefined` when malformed. */
function decodeBase62(text: string): number | undefined {
  if (text === '' || text.length > 11) return undefined;
  let value = 0;
  for (const character of text) {
    const digit = BASE62.indexOf(character);
    if (digit < 0) return undefined;
    value = value * 62 + digit;
  }
  return Number.isSafeInteger(value) ? value : undefined;
}

/** Options of {@link loadsSigned}. */
export interface LoadsOptions {
  /** Django's `SECRET_KEY`. */
  readonly secret: string;
  /** The namespace the value was signed in (`signing.dumps(..., salt=...)`). */
  readonly salt: string;
  /** Refuse a value signed longer ago than this, in seconds. */
  readonly maxAge?: number;
  /** The clock, in milliseconds. */
  readonly now?: () => number;
}

/**
 * Django's `signing.loads(value, salt=..., max_age=...)` with the JSON serializer:
 * checks the `TimestampSigner` signature (SHA-256, or the legacy SHA-1 Django 3.2 still
 * accepts) in constant time, the age, then decompresses (`.` prefix) and parses.
 *
 * @returns the signed object and when it was signed (seconds since the epoch).
 * @throws {BadSignature} for a tampered, truncated or malformed value;
 *   {@link SignatureExpired} past `maxAge`.
 */
export function loadsSigned(
  signed: string,
  options: LoadsOptions,
): { readonly value: unknown; readonly signedAt: number } {
  const { secret, salt, maxAge, now = Date.now } = options;
  const cut = signed.lastIndexOf(':');
  if (cut < 0) throw new BadSignature('no signature');
  const payload = signed.slice(0, cut);
  const signature = signed.slice(cut + 1);
  const keySalt = `${salt}signer`;
  const matches = (algorithm: DjangoHashAlgorithm): boolean =>
    constantTimeEqual(
      signature,
      saltedHmac(keySalt, payload, secret, algorithm).toString('base64url'),
    );
  if (!matches('sha256') && !matches('sha1')) throw new BadSignature('signature mismatch');

  const stamp = payload.lastIndexOf(':');
  const signedAt = stamp < 0 ? undefined : decodeBase62(payload.slice(stamp + 1));
  if (stamp < 0 || signedAt === undefined) throw new BadSignature('no valid timestamp');
  if (maxAge !== undefined && now() / 1000 - signedAt > maxAge) {
    throw new SignatureExpired('signature too old');
  }
  return { value: decodeObject(payload.slice(0, stamp)), signedAt };
}

/** `Signer.unsign_object`'s decoding: optional `.` for zlib, URL-safe base64, JSON. */
function decodeObject(encoded: string): unknown {
  const compressed = encoded.startsWith('.');
  const base64 = compressed ? encoded.slice(1) : encoded;
  if (!BASE64URL.test(base64) || base64.length % 4 === 1) throw new BadSignature('bad base64');
  let data = Buffer.from(base64, 'base64url');
  if (compressed) {
    try {
      data = inflateSync(data, { maxOutputLength: MAX_SIGNED_PAYLOAD_BYTES });
    } catch {
      throw new BadSignature('bad or oversized compressed data');
    }
  }
  return parseSerialized(data);
}

/** Django's `JSONSerializer.loads`: the bytes read as Latin-1, then JSON. */
function parseSerialized(data: Buffer): unknown {
  try {
    return JSON.parse(data.toString('latin1'));
  } catch {
    throw new BadSignature('not JSON');
  }
}

/**
 * Session data in the format before Django 3.1 (`base64(hexhmac ":" json)`, SHA-1 keyed
 * with `"django.contrib.sessions" + class name`), which Django 3.2 still reads.
 *
 * @throws {BadSignature} when it is not that format or the hash does not match.
 */
export function decodeLegacySession(encoded: string, secret: string, className: string): unknown {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded)) throw new BadSignature('not base64');
  const data = Buffer.from(encoded, 'base64');
  const cut = data.indexOf(0x3a); // ':'
  if (cut < 0) throw new BadSignature('no hash');
  const hash = data.subarray(0, cut).toString('latin1');
  const serialized = data.subarray(cut + 1);
  const expected = saltedHmac(
    `django.contrib.sessions${className}`,
    serialized,
    secret,
    'sha1',
  ).toString('hex');
  if (!constantTimeEqual(hash, expected)) throw new BadSignature('hash mismatch');
  return parseSerialized(serialized);
}
