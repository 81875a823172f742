/**
 * Small lists used as sets: a connection's close listeners, a consumer's groups, a
 * channel's groups. They hold a few items, and a one-entry `Set` costs ~250 bytes a
 * socket where a one-entry array costs ~50.
 *
 * @module
 * @internal
 */

/**
 * The list with `item` added unless present. The first item makes a one-slot literal:
 * `[]` followed by `push` reserves 16 slots.
 */
export function withItem<T>(list: T[] | undefined, item: T): T[] {
  if (list === undefined) return [item];
  if (!list.includes(item)) list.push(item);
  return list;
}

/** Removes `item` from the list when present. */
export function removeItem<T>(list: T[] | undefined, item: T): void {
  const index = list?.indexOf(item) ?? -1;
  if (index !== -1) list!.splice(index, 1);
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
