/**
 * The small collections against the plain ones they stand for: any sequence of
 * additions and removals leaves them holding what a `Set` (or a map of sets) would.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { itemsOf, SmallMultiMap, withItem, withoutItem } from '../../src/small-list.js';
import type { Few } from '../../src/small-list.js';

const ITEMS = ['a', 'b', 'c', 'd'].map((name) => ({ name }));
const item = fc.constantFrom(...ITEMS);
const step = fc.record({ add: fc.boolean(), item });

describe('Few (property)', () => {
  it('holds what a Set would, in insertion order, after any adds and removes', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 30 }), (steps) => {
        let few: Few<{ name: string }>;
        const model = new Set<{ name: string }>();
        for (const { add, item: value } of steps) {
          few = add ? withItem(few, value) : withoutItem(few, value);
          if (add) model.add(value);
          else model.delete(value);
          assert.deepEqual(itemsOf(few), [...model]);
        }
        // Empty is nothing at all: no array kept for a set that emptied.
        if (model.size === 0) assert.equal(few, undefined);
      }),
    );
  });
});

describe('SmallMultiMap (property)', () => {
  it('holds what a Map of Sets would after any adds and deletes', () => {
    const mapStep = fc.record({ add: fc.boolean(), key: fc.constantFrom('k1', 'k2', 'k3'), item });
    fc.assert(
      fc.property(fc.array(mapStep, { maxLength: 40 }), (steps) => {
        const map = new SmallMultiMap<string, { name: string }>();
        const model = new Map<string, Set<{ name: string }>>();
        for (const { add, key, item: value } of steps) {
          if (add) {
            map.add(key, value);
            model.set(key, (model.get(key) ?? new Set()).add(value));
          } else {
            map.delete(key, value);
            model.get(key)?.delete(value);
            if (model.get(key)?.size === 0) model.delete(key);
          }
          for (const key of ['k1', 'k2', 'k3']) {
            assert.deepEqual(map.get(key), [...(model.get(key) ?? [])]);
          }
          assert.deepEqual(
            [...map.entries()].map(([key, values]) => [key, [...values]]),
            [...model].map(([key, values]) => [key, [...values]]),
          );
        }
      }),
    );
  });
});
