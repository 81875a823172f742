/**
 * Percentiles and CPU arithmetic for bench results.
 *
 * @module
 */
import type { ServerStats } from '../servers/protocol.js';

/** Nearest-rank percentile (`p` in 0–100) of unsorted values; `null` when empty. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? null;
}

/** CPU (user + system) used between two samples, in µs. */
export function cpuUs(before: ServerStats, after: ServerStats): number {
  return after.userUs + after.systemUs - (before.userUs + before.systemUs);
}

/** `numerator / denominator`, or `null` when nothing was counted. */
export function per(numerator: number, denominator: number): number | null {
  return denominator > 0 ? numerator / denominator : null;
}

/**
 * Memory growth per item, or `null` when there was no growth to divide: RSS moves in
 * pages and reuses freed ones, so a few hundred sockets can leave it flat (or lower),
 * which says nothing about their size.
 */
export function growthPer(growth: number, count: number): number | null {
  return growth > 0 ? per(growth, count) : null;
}

/** Rounds to a few significant digits for the results file. */
export function round(value: number | null, digits = 4): number | null {
  if (value === null || !Number.isFinite(value)) return null;
  if (value === 0) return 0;
  const scale = 10 ** Math.max(0, digits - 1 - Math.floor(Math.log10(Math.abs(value))));
  return Math.round(value * scale) / scale;
}
