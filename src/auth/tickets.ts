/**
 * Single-use WebSocket tickets (SPEC §3, §4): `pct_` in the token format, obtained over
 * REST with a token and redeemed once, within 30 s, as `?ticket=`. Storage and the
 * atomic consume live in the store (`Store.createTicket`, `Store.consumeTicket`).
 *
 * @module
 */
import { generateSecret, parseSecret } from './tokens.js';

/** Prefix of every Portcullis ticket. */
export const TICKET_PREFIX = 'pct_';

/** How long a ticket can be redeemed after it is issued: 30 s (SPEC §4). */
export const TICKET_TTL_MS = 30_000;

/** Generates a new ticket. Store only its digest (`digestToken`). */
export function generateTicket(): string {
  return generateSecret(TICKET_PREFIX);
}

/**
 * Checks a ticket's shape and checksum without any I/O.
 *
 * @returns the random body, or `undefined` when `value` is not a well-formed ticket.
 */
export function parseTicket(value: string): string | undefined {
  return parseSecret(value, TICKET_PREFIX);
}

/** True when `value` carries the ticket prefix, whether or not it is valid. */
export function looksLikeTicket(value: string): boolean {
  return value.startsWith(TICKET_PREFIX);
}
