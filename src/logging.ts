/**
 * Logging defaults shared by the library and the gateway.
 *
 * @module
 */
import { pino } from 'pino';
import type { Logger } from 'pino';

/**
 * Paths pino blanks in every log line, so that a credential never reaches a log even if a
 * caller logs a whole request or scope (SPEC §3: credentials never appear in logs).
 */
export const REDACTED_PATHS: readonly string[] = [
  'headers.authorization',
  'headers.cookie',
  'headers["sec-websocket-protocol"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["sec-websocket-protocol"]',
  'token',
  'ticket',
  'password',
  '*.token',
  '*.ticket',
  '*.password',
  'queryString',
  'query',
  'cookies',
  'rawHeaders',
];

/**
 * The logger used when none is passed: warnings and errors to stderr, with credentials
 * redacted. Libraries should not chatter, but a crashed consumer must be visible.
 */
export function defaultLogger(): Logger {
  return pino(
    { level: 'warn', redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' } },
    pino.destination(2),
  );
}
