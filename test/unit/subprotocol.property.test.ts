/**
 * The bearer subprotocol (SPEC §3) end to end: what the client SDK encodes, the server
 * decodes to the same token, and the server reads nothing it would not have encoded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { findCredentials } from '../../src/auth/credentials.js';
import { bearerSubprotocol } from '../../src/client/credentials.js';
import { AuthenticationError } from '../../src/errors.js';
import { BEARER_SUBPROTOCOL_PREFIX } from '../../src/protocol/subprotocol.js';
import { createScope } from '../../src/scope.js';
import { isWellFormed } from '../helpers/unicode.js';

const transports = {
  header: false,
  subprotocol: true,
  ticket: false,
  query: false,
  cookie: false,
  firstMessage: false,
} as const;

/** The server's reading of a handshake offering `protocols`. */
function serverReads(protocols: readonly string[]): ReturnType<typeof findCredentials> {
  const scope = createScope({
    path: '/ws/',
    headers: { 'sec-websocket-protocol': protocols.join(', ') },
  });
  return findCredentials(scope, transports);
}

/** Tokens as credentials come: any well-formed text up to the 16 KiB credential limit. */
const token = fc
  .oneof(
    fc.string({ unit: 'binary', minLength: 1, maxLength: 200 }),
    fc.stringMatching(/^pcu_[0-9A-Za-z]{38}$/),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 100 }),
  )
  .filter((text) => isWellFormed(text) && Buffer.byteLength(text) <= 16 * 1024);

describe('bearer subprotocol (property)', () => {
  it('the server decodes what the client encodes and negotiates only the app protocol', () => {
    fc.assert(
      fc.property(token, (value) => {
        const entry = bearerSubprotocol(value);
        assert.match(entry.slice(BEARER_SUBPROTOCOL_PREFIX.length), /^[A-Za-z0-9_-]+$/);
        const { credentials, subprotocols } = serverReads(['chat.v1', entry]);
        assert.deepEqual(credentials, [{ transport: 'subprotocol', value }]);
        assert.deepEqual(subprotocols, ['chat.v1']);
      }),
    );
  });

  it('reads any other entry as the token whose encoding it is, or refuses it as malformed', () => {
    const encoded = fc.oneof(
      fc.stringMatching(/^[A-Za-z0-9_-]{0,40}$/),
      fc.string({ unit: 'binary-ascii', maxLength: 40 }).filter((text) => !/[\s,]/.test(text)),
    );
    fc.assert(
      fc.property(encoded, (tail) => {
        let credentials;
        try {
          ({ credentials } = serverReads(['chat.v1', BEARER_SUBPROTOCOL_PREFIX + tail]));
        } catch (error) {
          assert.ok(error instanceof AuthenticationError, String(error));
          assert.equal(error.message, 'malformed credential');
          return;
        }
        assert.equal(credentials.length, 1);
        assert.equal(bearerSubprotocol(credentials[0]!.value), BEARER_SUBPROTOCOL_PREFIX + tail);
      }),
    );
  });
});
