/**
 * Text that a database driver or Redis can hold unchanged. PostgreSQL refuses U+0000 in
 * text (an error that would look like an outage), and a lone UTF-16 surrogate has no
 * UTF-8 form, so drivers silently replace it: both are refused before they reach a
 * driver (issue 16), with the messages Django REST Framework's `CharField` uses.
 *
 * @module
 */

// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Why `text` cannot be stored as it is, in DRF's words, or `undefined` when it can.
 *
 * @example
 * ```ts
 * unstorableText('ali\u0000ce'); // 'Null characters are not allowed.'
 * ```
 */
export function unstorableText(text: string): string | undefined {
  if (text.includes('\u0000')) return 'Null characters are not allowed.';
  const surrogate = LONE_SURROGATE.exec(text)?.[0];
  if (surrogate !== undefined) {
    const code = surrogate.charCodeAt(0).toString(16).toUpperCase();
    return `Surrogate characters are not allowed: U+${code}.`;
  }
  return undefined;
}

/** True when `text` reaches a driver unchanged: no U+0000, no lone surrogate. */
export function isStorableText(text: string): boolean {
  return unstorableText(text) === undefined;
}
