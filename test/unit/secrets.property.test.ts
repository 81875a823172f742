/**
 * Properties of the token and ticket format (SPEC §4): every well-formed secret parses,
 * every typo is caught by the checksum, and nothing else parses.
 */
import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseTicket, TICKET_PREFIX, generateTicket } from '../../src/auth/tickets.js';
import { crc32, generateToken, parseToken, TOKEN_PREFIX } from '../../src/auth/tokens.js';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

const kinds = [
  { name: 'token', prefix: TOKEN_PREFIX, generate: generateToken, parse: parseToken },
  { name: 'ticket', prefix: TICKET_PREFIX, generate: generateTicket, parse: parseTicket },
] as const;

/** SPEC §4's checksum: the CRC-32 of prefix and body in six base62 digits. */
function checksumOf(head: string): string {
  let value = crc32(head);
  let digits = '';
  for (let index = 0; index < 6; index += 1) {
    digits = BASE62[value % 62]! + digits;
    value = Math.floor(value / 62);
  }
  return digits;
}

/** A well-formed secret with any body, built by the format's definition. */
const secretOf = (prefix: string): fc.Arbitrary<string> =>
  fc.stringMatching(/^[0-9A-Za-z]{32}$/).map((body) => prefix + body + checksumOf(prefix + body));

for (const { name, prefix, generate, parse } of kinds) {
  describe(`${name} format (property)`, () => {
    it('parses every well-formed secret, giving back its body', () => {
      fc.assert(
        fc.property(secretOf(prefix), (secret) => {
          assert.equal(parse(secret), secret.slice(prefix.length, prefix.length + 32));
        }),
      );
    });

    it('generates well-formed secrets', () => {
      for (let index = 0; index < 200; index += 1) {
        const secret = generate();
        assert.match(secret, new RegExp(`^${prefix}[0-9A-Za-z]{38}$`));
        assert.equal(secret.slice(-6), checksumOf(secret.slice(0, -6)));
      }
    });

    it('refuses every single-character typo', () => {
      const typo = fc.tuple(
        secretOf(prefix),
        fc.nat({ max: prefix.length + 37 }),
        fc.constantFrom(...BASE62, '_', '-', ' '),
      );
      fc.assert(
        fc.property(typo, ([secret, at, replacement]) => {
          fc.pre(secret[at] !== replacement);
          const mistyped = secret.slice(0, at) + replacement + secret.slice(at + 1);
          assert.equal(parse(mistyped), undefined, mistyped);
        }),
      );
    });

    it('refuses every swap of two neighbouring characters of the body', () => {
      const swap = fc.tuple(secretOf(prefix), fc.nat({ max: 30 }));
      fc.assert(
        fc.property(swap, ([secret, offset]) => {
          const at = prefix.length + offset;
          fc.pre(secret[at] !== secret[at + 1]);
          const swapped =
            secret.slice(0, at) + secret[at + 1]! + secret[at]! + secret.slice(at + 2);
          assert.equal(parse(swapped), undefined, swapped);
        }),
      );
    });

    it('refuses a secret cut short or made longer', () => {
      const resized = fc.tuple(secretOf(prefix), fc.integer({ min: -20, max: 20 }), fc.string());
      fc.assert(
        fc.property(resized, ([secret, change, extra]) => {
          fc.pre(change !== 0);
          const other =
            change < 0
              ? secret.slice(0, change)
              : secret + (extra + 'x').repeat(change).slice(0, change);
          assert.equal(parse(other), undefined, other);
        }),
      );
    });

    it('parses nothing that lacks its prefix and length, and never throws', () => {
      fc.assert(
        fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (text) => {
          const body = parse(text);
          if (body === undefined) return;
          assert.ok(text.startsWith(prefix) && text.length === prefix.length + 38, text);
        }),
      );
    });
  });
}

describe('secrets of the two kinds (property)', () => {
  it('a token never parses as a ticket, nor a ticket as a token', () => {
    fc.assert(
      fc.property(secretOf(TOKEN_PREFIX), secretOf(TICKET_PREFIX), (token, ticket) => {
        assert.equal(parseTicket(token), undefined);
        assert.equal(parseToken(ticket), undefined);
      }),
    );
  });
});

describe('crc32 (property)', () => {
  // zlib.crc32 arrived in Node 20.15; the format's own CRC exists for the 20.x before it.
  const zlibCrc32 = (zlib as { crc32?: (data: string) => number }).crc32;

  it(
    'agrees with zlib on any text',
    { skip: zlibCrc32 === undefined && 'Node without zlib.crc32' },
    () => {
      fc.assert(
        fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (text) => {
          assert.equal(crc32(text), zlibCrc32!(text));
        }),
      );
    },
  );
});
