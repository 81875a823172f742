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
