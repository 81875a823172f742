/**
 * Properties of the protocol's parsers and encoders: handler names from message types,
 * close reasons cut to 123 bytes, and JSON-object frames.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { handlerNameFor } from '../../src/consumer/consumer.js';
import { ProtocolError } from '../../src/errors.js';
import { CloseReason, limitCloseReason } from '../../src/protocol/close-codes.js';
import { parseJsonObject } from '../../src/protocol/messages.js';
import { isWellFormed } from '../helpers/unicode.js';

/** Any UTF-16 text, lone surrogates included: what a server might be asked to send. */
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc
    .array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 200 })
    .map((units) => String.fromCharCode(...units)),
);

const utf8Length = (text: string): number => new TextEncoder().encode(text).length;

describe('handlerNameFor (property)', () => {
  const segment = fc.stringMatching(/^[A-Za-z0-9]{1,8}$/);
  const segments = fc
    .tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9]{0,7}$/), fc.array(segment, { maxLength: 5 }))
    .map(([first, rest]) => [first, ...rest]);
  const capitalised = (text: string): string => text[0]!.toUpperCase() + text.slice(1);

  it('maps dotted and underscored types alike to on + each segment capitalised', () => {
    fc.assert(
      fc.property(
        segments,
        fc.array(fc.constantFrom('.', '_'), { maxLength: 5 }),
        (parts, seps) => {
          const type = parts.reduce(
            (joined, part, index) => `${joined}${seps[index - 1] ?? '.'}${part}`,
          );
          assert.equal(handlerNameFor(type), `on${parts.map(capitalised).join('')}`);
        },
      ),
    );
  });

  it('names only on-prefixed identifiers, and nothing for longer than 99 characters', () => {
    fc.assert(
      fc.property(anyText, (type) => {
        const name = handlerNameFor(type);
        if (name === undefined) return;
        assert.match(name, /^on[A-Z][A-Za-z0-9]*$/);
        assert.ok(type.length <= 99, `a name for a type of ${type.length} characters`);
      }),
    );
  });

  it('refuses a type with a leading, trailing or doubled separator', () => {
    fc.assert(
      fc.property(segments, fc.constantFrom('.', '_'), fc.nat(2), (parts, sep, where) => {
        const type = parts.join('.');
        const broken = [`${sep}${type}`, `${type}${sep}`, `${parts[0]!}${sep}${sep}x`][where]!;
        assert.equal(handlerNameFor(broken), undefined, broken);
      }),
    );
  });
});

describe('limitCloseReason (property)', () => {
  it('keeps a reason of 123 UTF-8 bytes or fewer as it is', () => {
    fc.assert(
      fc.property(anyText, (reason) => {
        fc.pre(utf8Length(reason) <= 123 && isWellFormed(reason));
        assert.equal(limitCloseReason(reason), reason);
      }),
    );
  });

  it('cuts a longer one to the longest prefix of whole characters within 123 bytes', () => {
    const long = fc.oneof(
      fc.string({ unit: 'binary', minLength: 40, maxLength: 200 }),
      fc.string({ unit: 'grapheme', minLength: 40, maxLength: 200 }),
      // Four-byte characters after an odd number of ASCII ones: cuts fall mid-pair.
      fc
        .tuple(fc.nat(130), fc.nat(60))
        .map(([ascii, emoji]) => 'a'.repeat(ascii) + '😀'.repeat(emoji)),
    );
    fc.assert(
      fc.property(long, (reason) => {
        fc.pre(isWellFormed(reason));
        const cut = limitCloseReason(reason);
        assert.ok(reason.startsWith(cut), 'a prefix of the reason');
        assert.ok(utf8Length(cut) <= 123, `${utf8Length(cut)} bytes`);
        assert.ok(isWellFormed(cut), 'no half of a surrogate pair');
        if (cut !== reason) {
          const next = String.fromCodePoint(reason.codePointAt(cut.length)!);
          assert.ok(utf8Length(cut + next) > 123, 'the next character would not have fitted');
        }
      }),
    );
  });
});

describe('parseJsonObject (property)', () => {
  const jsonObject = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }));

  it('reads back every JSON object as it was written', () => {
    fc.assert(
      fc.property(jsonObject, (object) => {
        const text = JSON.stringify(object);
        assert.deepEqual(parseJsonObject(text), JSON.parse(text));
      }),
    );
  });

  it('refuses every other text with a ProtocolError whose message is a fixed close reason', () => {
    const reasons = new Set<string>([CloseReason.InvalidJson, CloseReason.NotAnObject]);
    const notAnObject = fc.oneof(
      anyText,
      fc
        .jsonValue()
        .filter((value) => typeof value !== 'object' || value === null || Array.isArray(value))
        .map((value) => JSON.stringify(value)),
    );
    fc.assert(
      fc.property(notAnObject, (text) => {
        let parsed: unknown;
        try {
          parsed = parseJsonObject(text);
        } catch (error) {
          assert.ok(error instanceof ProtocolError, String(error));
          assert.ok(reasons.has(error.message), error.message);
          return;
        }
        assert.ok(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed), text);
      }),
    );
  });

  it('refuses every binary frame', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        assert.throws(() => parseJsonObject(bytes), {
          name: 'ProtocolError',
          code: 'ERR_BINARY_NOT_ACCEPTED',
          message: CloseReason.BinaryNotAccepted,
        });
      }),
    );
  });
});
