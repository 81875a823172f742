// A hand-driven clock for code that takes `now: () => number` (STYLE.md practice 15).

/** A frozen instant: 2030-01-01T00:00:00Z, in milliseconds. */
export const T0 = Date.UTC(2030, 0, 1);

export interface FakeClock {
  now(): number;
  advance(ms: number): void;
}

export function fakeClock(start = T0): FakeClock {
  let current = start;
  return {
    now: () => current,
    advance: (ms) => {
      current += ms;
    },
  };
}
