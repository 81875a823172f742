/**
 * The Portcullis token format (SPEC §4): `pcu_` + 32 random base62 characters + a
 * 6-character base62 checksum. The prefix makes leaked tokens greppable by secret
 * scanners; the checksum rejects a mistyped token before any database lookup.
 *
 * Only {@link digestToken | the SHA-256 digest} of a token is ever stored.
 *
 * @module
 */
import * as nodeCrypto from 'node:crypto';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Prefix of every Portcullis API token. */
export const TOKEN_PREFIX = 'pcu_';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** Random characters per secret: 32 × log2(62) ≈ 190 bits of entropy. */
const BODY_LENGTH = 32;
/** 62^6 > 2^32, so six characters hold a whole CRC-32 without loss. */
const CHECKSUM_LENGTH = 6;
/** Largest multiple of 62 that fits in a byte; bytes at or above it are redrawn. */
const UNBIASED_BYTE_LIMIT = 248;

/**
 * `length` base62 characters from the CSPRNG. A byte maps to `byte % 62` only when it is
 * below 248 (= 4 × 62), so each character is exactly uniform: no modulo bias.
 */
function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    // ~3% of bytes are rejected; ask for a little more than needed to rarely loop.
    for (const byte of randomBytes(length + 8)) {
      if (byte < UNBIASED_BYTE_LIMIT) {
        out += BASE62[byte % 62];
        if (out.length === length) break;
      }
    }
  }
  return out;
}

const CRC32_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * CRC-32 (IEEE 802.3, as zlib). Implemented here rather than taken from `node:zlib`
 * because `zlib.crc32` only exists from Node 20.15 and the package supports all of 20.x.
 * A CRC detects every error confined to 32 consecutive bits, so every single-character
 * typo and every swap of neighbouring characters is caught, not just most of them.
 *
 * @internal
 */
export function crc32(text: string): number {
  let crc = 0xffffffff;
  // Tokens are ASCII, whose UTF-8 bytes are the char codes: no buffer per check.
  for (let index = 0; index < text.length; index += 1) {
    const code = text.charCodeAt(index);
    if (code > 0x7f) return crc32Bytes(Buffer.from(text, 'utf8'));
    crc = (CRC32_TABLE[(crc ^ code) & 0xff] ?? 0) ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function crc32Bytes(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = (CRC32_TABLE[(crc ^ byte) & 0xff] ?? 0) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function checksum(prefixAndBody: string): string {
  let value = crc32(prefixAndBody);
  let out = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = BASE62[value % 62] + out;
    value = Math.floor(value / 62);
  }
  return out;
}

/**
 * A new random secret `prefix` + body + checksum. Shared by tokens and tickets.
 *
 * @internal
 */
export function generateSecret(prefix: string): string {
  const head = prefix + randomBase62(BODY_LENGTH);
  return head + checksum(head);
}

const SECRET_TAIL = new RegExp(`^[0-9A-Za-z]{${BODY_LENGTH + CHECKSUM_LENGTH}}$`);

/**
 * The random body of `value` when it is a well-formed `prefix` secret with a valid
 * checksum, else `undefined`.
 *
 * @internal
 */
export function parseSecret(value: string, prefix: string): string | undefined {
  if (value.length !== prefix.length + BODY_LENGTH + CHECKSUM_LENGTH) return undefined;
  if (!value.startsWith(prefix)) return undefined;
  if (!SECRET_TAIL.test(value.slice(prefix.length))) return undefined;
  const head = value.slice(0, prefix.length + BODY_LENGTH);
  // The checksum is computable by anyone from the body, so a plain compare leaks nothing.
  if (checksum(head) !== value.slice(head.length)) return undefined;
  return value.slice(prefix.length, head.length);
}

/**
 * Generates a new API token. Show it to its owner once and store only its digest.
 *
 * @example
 * ```ts
 * const token = generateToken(); // 'pcu_4bX…' (42 characters)
 * await db.insert({ digest: digestToken(token) });
 * ```
 */
export function generateToken(): string {
  return generateSecret(TOKEN_PREFIX);
}

/**
 * Checks a token's shape and checksum without any I/O.
 *
 * @returns the 32-character random body, or `undefined` when `value` is not a
 *   well-formed Portcullis token (wrong prefix, length, alphabet or checksum).
 */
export function parseToken(value: string): string | undefined {
  return parseSecret(value, TOKEN_PREFIX);
}

/**
 * True when `value` carries the Portcullis token prefix, whether or not it is valid.
 * An authenticator uses it to decide that the credential is its own: a recognised but
 * malformed token is then an error, never a fall-through to the next authenticator.
 */
export function looksLikePortcullisToken(value: string): boolean {
  return value.startsWith(TOKEN_PREFIX);
}

/**
 * The SHA-256 digest of a token or ticket as 64 lower-case hex characters; the only form
 * in which secrets are stored. A fast hash is enough: tokens carry ~190 random bits, so
 * there is nothing for a slow hash to protect against.
 */
export function digestToken(value: string): string {
  return sha256Hex(value);
}

// The one-shot crypto.hash() where Node has it (20.12+), createHash() before; both give
// the same digest (docs/performance.md). A namespace read, not a named import: a missing
// named export would fail at load time.
const oneShotHash = (nodeCrypto as Partial<typeof nodeCrypto>).hash;
const sha256Hex: (value: string) => string =
  oneShotHash !== undefined
    ? (value) => oneShotHash('sha256', value, 'hex')
    : (value) => createHash('sha256').update(value, 'utf8').digest('hex');

/**
 * Compares two strings in time that depends only on their lengths. Use it for secrets
 * and digests; lengths are not secret for digests, which always have the same length.
 *
 * @example
 * ```ts
 * if (!constantTimeEqual(digestToken(presented), row.digest)) throw new AuthenticationError(…);
 * ```
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  if (left.length !== right.length) return false;
  return timingSafeEqual(left, right);
}
