/**
 * Small sets: a connection's close listeners, a consumer's groups, a channel's groups.
 * They hold one item or a few, and a one-entry `Set` costs ~250 bytes a socket, a
 * one-entry array ~56, the item alone nothing.
 *
 * @module
 * @internal
 */

/**
 * A few items kept as a set: nothing, the lone item itself, or an array from the
 * second item on. Items must not be arrays.
 */
export type Few<T> = T | T[] | undefined;

/** `few` with `item` added unless present (a new value: assign it back). */
export function withItem<T>(few: Few<T>, item: T): Few<T> {
  if (few === undefined) return item;
  if (Array.isArray(few)) {
    if (!few.includes(item)) few.push(item);
    return few;
  }
  return few === item ? few : [few, item];
}

/** `few` without `item` (a new value: assign it back). */
export function withoutItem<T>(few: Few<T>, item: T): Few<T> {
  if (few === item) return undefined;
  if (Array.isArray(few)) {
    const index = few.indexOf(item);
    if (index !== -1) few.splice(index, 1);
    return few.length === 0 ? undefined : few;
  }
  return few;
}

/** The items, in the order they were added. */
export function itemsOf<T>(few: Few<T>): readonly T[] {
  if (few === undefined) return [];
  return Array.isArray(few) ? few : [few];
}

/**
 * Keys to sets of values where most keys have one value (a user's sessions, a token's
 * sockets): a lone value is stored as itself, a `Set` is made for the second. Values
 * must not themselves be `Set`s.
 */
export class SmallMultiMap<K, V extends object> {
  readonly #entries = new Map<K, V | Set<V>>();

  add(key: K, value: V): void {
    const found = this.#entries.get(key);
    if (found === undefined) this.#entries.set(key, value);
    else if (found instanceof Set) found.add(value);
    else if (found !== value) this.#entries.set(key, new Set([found, value]));
  }

  delete(key: K, value: V): void {
    const found = this.#entries.get(key);
    if (found === value) this.#entries.delete(key);
    else if (found instanceof Set && found.delete(value) && found.size === 0) {
      this.#entries.delete(key);
    }
  }

  /** The values of `key`, as a snapshot: safe to change the map while walking it. */
  get(key: K): V[] {
    const found = this.#entries.get(key);
    if (found === undefined) return [];
    return found instanceof Set ? [...found] : [found];
  }

  /** Every key with its values (live: do not change the map while walking it). */
  *entries(): IterableIterator<[K, Iterable<V>]> {
    for (const [key, found] of this.#entries) {
      yield [key, found instanceof Set ? found : [found]];
    }
  }
}
