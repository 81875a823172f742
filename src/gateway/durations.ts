/**
 * Durations as operators write them (`30d`, `12h`, `90m`, `45s`, `none`), shared by
 * `TOKEN_TTL` and `portcullis token create --ttl`.
 *
 * @module
 */

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

const DURATION = /^([1-9][0-9]{0,9})([smhd])$/;

/** 100 years: past this an expiry date is meaningless, and far past it `Date` overflows. */
export const MAX_DURATION_MS = 36_500 * UNIT_MS.d;

/** What every duration error says is expected, so the CLI and config read the same. */
export const DURATION_HINT = 'a duration such as 30d, 12h, 90m or 45s, or "none"';

/**
 * Parses a whole number of seconds, minutes, hours or days into milliseconds, or `none`
 * into `null` (no expiry). One unit only: `1h30m` is refused rather than guessed at, and
 * so is `0s`, since a token that is born expired is a mistake, not a setting, and so is
 * anything longer than {@link MAX_DURATION_MS} (write `none` for no expiry).
 *
 * @example
 * ```ts
 * parseDuration('12h'); // 43_200_000
 * parseDuration('none'); // null
 * ```
 * @returns milliseconds, or `null` for `none`; `undefined` when `text` is not a duration.
 */
export function parseDuration(text: string): number | null | undefined {
  const trimmed = text.trim();
  if (trimmed.toLowerCase() === 'none') return null;
  const match = DURATION.exec(trimmed);
  if (match === null) return undefined;
  const [, amount, unit] = match as unknown as [string, string, keyof typeof UNIT_MS];
  const ms = Number(amount) * UNIT_MS[unit];
  return ms <= MAX_DURATION_MS ? ms : undefined;
}

/**
 * Formats milliseconds in the largest unit that divides them exactly, for messages:
 * the inverse of {@link parseDuration} for its own output.
 *
 * @example
 * ```ts
 * formatDuration(2_592_000_000); // '30d'
 * formatDuration(null); // 'none'
 * ```
 */
export function formatDuration(ms: number | null): string {
  if (ms === null) return 'none';
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}
