/**
 * The small collections behind per-socket bookkeeping: they must behave as the sets they
 * replace, whatever their storage.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { itemsOf, SmallMultiMap, withItem, withoutItem } from '../../src/small-list.js';
import type { Few } from '../../src/small-list.js';

const values = <K, V extends object>(map: SmallMultiMap<K, V>): [K, V[]][] =>
  [...map.entries()].map(([key, found]) => [key, [...found]]);

describe('SmallMultiMap', () => {
  const a = { name: 'a' };
  const b = { name: 'b' };
  const c = { name: 'c' };

  it('keeps one value per key, then several, as a set would', () => {
    const map = new SmallMultiMap<string, { name: string }>();
    map.add('k', a);
    map.add('k', a);
    assert.deepEqual(map.get('k'), [a]);
    map.add('k', b);
    map.add('k', b);
    map.add('other', c);
    assert.deepEqual(map.get('k'), [a, b]);
    assert.deepEqual(values(map), [
      ['k', [a, b]],
      ['other', [c]],
    ]);
  });

  it('forgets a key with its last value, from one or from several', () => {
    const map = new SmallMultiMap<number, { name: string }>();
    map.add(1, a);
    map.delete(1, b);
    assert.deepEqual(map.get(1), [a]);
    map.delete(1, a);
    assert.deepEqual(map.get(1), []);
    map.add(2, a);
    map.add(2, b);
    map.delete(2, a);
    assert.deepEqual(map.get(2), [b]);
    map.delete(2, b);
    assert.deepEqual(values(map), []);
  });

  it('returns a snapshot that survives changes made while walking it', () => {
    const map = new SmallMultiMap<string, { name: string }>();
    for (const value of [a, b, c]) map.add('k', value);
    const seen: string[] = [];
    for (const value of map.get('k')) {
      seen.push(value.name);
      map.delete('k', value);
    }
    assert.deepEqual(seen, ['a', 'b', 'c']);
    assert.deepEqual(map.get('k'), []);
  });
});

describe('Few', () => {
  it('is the lone item itself, an array from the second, nothing when emptied', () => {
    let few: Few<string> = withItem(undefined, 'x');
    assert.equal(few, 'x');
    few = withItem(few, 'x');
    assert.equal(few, 'x');
    few = withItem(few, 'y');
    few = withItem(few, 'x');
    assert.deepEqual(itemsOf(few), ['x', 'y']);
    few = withoutItem(few, 'z');
    few = withoutItem(few, 'x');
    assert.deepEqual(itemsOf(few), ['y']);
    few = withoutItem(few, 'y');
    assert.equal(few, undefined);
    assert.deepEqual(itemsOf(few), []);
    assert.equal(withoutItem('a', 'b'), 'a');
    assert.equal(withoutItem('a', 'a'), undefined);
  });
});
