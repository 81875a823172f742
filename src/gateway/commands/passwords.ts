/**
 * Passwords on the command line: read by `--password-stdin`, or generated and shown once.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import type { CliIO } from './command.js';
import { CommandFailed } from './failures.js';

const MIN_PASSWORD_LENGTH = 8;
/** scrypt takes any length, but a password longer than this is a mistake (a pasted file). */
const MAX_PASSWORD_LENGTH = 1_024;

/** A new random password: 16 characters, 96 bits. */
export function generatePassword(): string {
  return randomBytes(12).toString('base64url');
}

/**
 * Reads the first line of stdin, without its line ending. A terminal is refused: typing
 * there would echo the password, and a prompt that hides it is a job for the shell.
 *
 * @param command the command line that reads it, for the hint (`user create NAME`).
 */
export async function readPassword(stdin: CliIO['stdin'], command: string): Promise<string> {
  if (stdin.isTTY === true) {
    throw new CommandFailed(
      `--password-stdin reads a piped password, not a terminal: read -rs PW && printf '%s\\n' "$PW" | portcullis ${command} --password-stdin`,
    );
  }
  const decoder = new StringDecoder('utf8');
  let text = '';
  let complete = false;
  for await (const chunk of stdin) {
    text += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    if (text.includes('\n')) {
      complete = true;
      break;
    }
    if (text.length > MAX_PASSWORD_LENGTH + 2) break;
  }
  if (!complete) text += decoder.end();
  const password = text.split('\n', 1)[0]?.replace(/\r$/, '') ?? '';
  const length = [...password].length;
  if (length === 0) throw new CommandFailed('--password-stdin read an empty password');
  if (length < MIN_PASSWORD_LENGTH) {
    throw new CommandFailed(`password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  if (length > MAX_PASSWORD_LENGTH) {
    throw new CommandFailed(`password must be at most ${MAX_PASSWORD_LENGTH} characters`);
  }
  return password;
}
