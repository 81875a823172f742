/**
 * The Lua scripts, kept as `.lua` files beside this module (copied into `dist/` by the
 * build) and read when a Redis-backed class connects, so that importing the library
 * reads no file.
 *
 * @internal
 * @module
 */
import { readFile } from 'node:fs/promises';

/**
 * The text of `<name>.lua` in this folder, after the text of each of `preludes` (files
 * of shared Lua functions): Redis runs one self-contained script per call.
 * @internal
 */
export async function loadLua(name: string, preludes: readonly string[] = []): Promise<string> {
  const parts = await Promise.all(
    [...preludes, name].map((file) => readFile(new URL(`./${file}.lua`, import.meta.url), 'utf8')),
  );
  return parts.join('\n');
}
