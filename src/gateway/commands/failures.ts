/**
 * How a command fails: the two error families of the command line, and the one line
 * printed for any error (SPEC §8: one line, never a stack trace, never a password).
 *
 * @module
 */
import { PortcullisError, ServiceUnavailableError } from '../../errors.js';
import { parseDatabaseUrl, SchemaOutdatedError } from '../../store/index.js';

/** A wrong command line: exit 2. */
export class UsageError extends Error {}

/** A failed command whose message is already the one line to print: exit 1. */
export class CommandFailed extends Error {}

export function firstLine(text: string): string {
  return text.split('\n', 1)[0]?.trim() ?? '';
}

/** An argument quoted for a message, unless it looks like a credential pasted by mistake. */
export function quoted(arg: string): string {
  return /\b(pcu|pct)_/.test(arg) || arg.length > 200
    ? '(a credential-like value)'
    : JSON.stringify(arg);
}

/**
 * The one line for an error that was not a usage error; `database` names the database
 * (see {@link describeDatabase}) in lines about it.
 */
export function describeFailure(error: unknown, database?: string): string {
  if (error instanceof ServiceUnavailableError) return describeUnavailable(error, database);
  if (error instanceof SchemaOutdatedError) return describeSchema(error, database);
  if (error instanceof CommandFailed || error instanceof PortcullisError) return error.message;
  // The store throws RangeError for invalid names and titles; its message is the rule.
  if (error instanceof RangeError) return error.message;
  const message = error instanceof Error ? error.message : String(error);
  return `unexpected error: ${firstLine(message)}`;
}

function causeOf(error: Error): { code?: string; message?: string } {
  const cause: unknown = error.cause;
  if (typeof cause !== 'object' || cause === null) return {};
  const code = (cause as { code?: unknown }).code;
  const message = (cause as { message?: unknown }).message;
  return {
    ...(typeof code === 'string' && code !== '' ? { code } : {}),
    ...(typeof message === 'string' ? { message } : {}),
  };
}

/** One line for a service that failed; `database` names where, without its password. */
function describeUnavailable(error: ServiceUnavailableError, database?: string): string {
  const { code, message = '' } = causeOf(error);
  if (!error.message.startsWith('database')) {
    const variable = error.message.startsWith('redis') ? '; check REDIS_URL' : '';
    return `${error.message}${code === undefined ? '' : ` (${code})`}${variable}`;
  }
  const where = database === undefined ? '' : ` at ${database}`;
  if (code === '42P01' || /no such table/.test(message)) return noSchema(where);
  const why = code ?? (message === '' ? undefined : firstLine(message).slice(0, 120));
  return `database is unavailable${where}${why === undefined ? '' : ` (${why})`}; check DATABASE_URL`;
}

/** One line naming the fix for a schema the code does not match (SPEC §8). */
function describeSchema(error: SchemaOutdatedError, database?: string): string {
  const where = database === undefined ? '' : ` at ${database}`;
  if (error.missing) return noSchema(where);
  const count = error.pending.length;
  return `the database${where} has a schema older than this version (${count} migration${count === 1 ? '' : 's'} pending): run portcullis migrate`;
}

function noSchema(where: string): string {
  return `the database${where} has no Portcullis schema yet: run portcullis migrate`;
}

/** `DATABASE_URL` without its password or options, for messages. */
export function describeDatabase(databaseUrl: string): string {
  const target = parseDatabaseUrl(databaseUrl);
  if (target.kind === 'sqlite') return `sqlite:${target.path}`;
  const url = new URL(target.url);
  const user = url.username === '' ? '' : `${url.username}@`;
  return `${url.protocol}//${user}${url.host}${url.pathname}`;
}
