/**
 * Properties of URL-router patterns: a path built from a pattern routes to it with its
 * parameters decoded, and a path that differs in a literal character does not.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Application } from '../../src/application.js';
import { route, urlRouter } from '../../src/routing/url-router.js';
import { createScope } from '../../src/scope.js';
import { WebsocketCommunicator } from '../../src/testing/communicator.js';
import { isWellFormed } from '../helpers/unicode.js';

type Part = { readonly literal: string } | { readonly param: string };

// Regular-expression syntax included: a pattern's literal text must match only itself.
const LITERAL_CHARACTERS = [...'abcXYZ019-_.~+*()[]{}|^$\\!&=@;,'];
const literal = fc
  .array(fc.constantFrom(...LITERAL_CHARACTERS), { minLength: 1, maxLength: 6 })
  .map((characters) => ({ literal: characters.join('') }));
const parts = fc
  .array(fc.oneof(literal, fc.constant(null)), { minLength: 1, maxLength: 5 })
  // Parameters named by position, so names are unique within a pattern.
  .map((items) => items.map((item, index): Part => item ?? { param: `p${index}` }));
const value = fc
  .string({ unit: 'binary', minLength: 1, maxLength: 12 })
  .filter((text) => isWellFormed(text));

const patternOf = (items: readonly Part[]): string =>
  `/${items.map((part) => ('literal' in part ? part.literal : `:${part.param}`)).join('/')}/`;

const pathOf = (items: readonly Part[], values: readonly string[]): string =>
  `/${items.map((part, index) => ('literal' in part ? part.literal : encodeURIComponent(values[index]!))).join('/')}/`;

function recorder(): { app: Application; seen: Readonly<Record<string, string>>[] } {
  const seen: Readonly<Record<string, string>>[] = [];
  return {
    seen,
    app: (scope, connection) => {
      seen.push(scope.params);
      connection.accept();
    },
  };
}

describe('URL router patterns (property)', () => {
  it('routes a path built from a pattern there, with every parameter decoded', async () => {
    await fc.assert(
      fc.asyncProperty(
        parts,
        fc.array(value, { minLength: 5, maxLength: 5 }),
        async (items, values) => {
          const { app, seen } = recorder();
          const router = urlRouter([route(patternOf(items), app)]);
          const communicator = new WebsocketCommunicator(router, pathOf(items, values));
          assert.deepEqual(await communicator.connect(), { accepted: true, subprotocol: null });
          const expected: Record<string, string> = {};
          items.forEach((part, index) => {
            if ('param' in part) expected[part.param] = values[index]!;
          });
          assert.deepEqual(seen, [expected]);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('does not route a path that differs from the pattern in one literal character', () => {
    const change = fc.tuple(parts, fc.nat(), fc.nat(), fc.constantFrom(...LITERAL_CHARACTERS));
    fc.assert(
      fc.property(change, ([items, which, at, replacement]) => {
        const literals = items.flatMap((part, index) => ('literal' in part ? [index] : []));
        fc.pre(literals.length > 0);
        const index = literals[which % literals.length]!;
        const text = (items[index] as { literal: string }).literal;
        const position = at % text.length;
        fc.pre(text[position] !== replacement);
        const changed = items.map((part, i) =>
          i === index
            ? { literal: text.slice(0, position) + replacement + text.slice(position + 1) }
            : part,
        );
        const router = urlRouter([route(patternOf(items), recorder().app)]);
        const path = pathOf(changed, Array<string>(items.length).fill('v'));
        assert.equal(router.match!(createScope({ path })), false, `${patternOf(items)} ${path}`);
      }),
    );
  });
});
