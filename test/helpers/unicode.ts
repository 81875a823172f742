/**
 * True when `text` has no lone surrogate: with the `u` flag a pair is one code point,
 * so only a lone half is of category Cs. (`String#isWellFormed` is not in our lib types.)
 */
export function isWellFormed(text: string): boolean {
  return !/\p{Cs}/u.test(text);
}
