/**
 * Finding credentials on a WebSocket handshake: the six transports of SPEC §3.
 *
 * @module
 */
import { parse as parseCookieHeader } from 'cookie';
import { AuthenticationError } from '../errors.js';
import { headerValues } from '../scope.js';
import type { Scope } from '../scope.js';
import type { CredentialTransport } from './user.js';

import { BEARER_SUBPROTOCOL_PREFIX, isBearerSubprotocol } from '../protocol/subprotocol.js';

/** Which transports are read, and how. Each may be switched off. */
export interface CredentialTransportOptions {
  /** `Authorization: Token <key>` or `Bearer <key or JWT>`. @default true */
  header?: boolean;
  /**
   * Cookies whose value is a credential, by name. Connections that use one are
   * subject to the Origin allow-list. `false` switches cookies off.
   * @default ['key', 'JWT']
   */
  cookie?: false | readonly string[];
  /** `?ticket=pct_…` from `POST /api/auth/ticket`. @default true */
  ticket?: boolean;
  /** `Sec-WebSocket-Protocol: portcullis.bearer.<base64url(token)>`. @default true */
  subprotocol?: boolean;
  /** `{"type":"auth","token":…}` as the first frame (when authentication is required). @default true */
  firstMessage?: boolean;
  /** `?token=<key>`: off by default, since URLs end up in logs and browser history. @default false */
  query?: boolean;
}

/** One credential found on a handshake. */
export interface FoundCredential {
  readonly transport: CredentialTransport;
  readonly value: string;
  /** The cookie's name, for `cookie` credentials. */
  readonly cookie?: string;
}

/** What {@link findCredentials} found. */
export interface HandshakeCredentials {
  readonly credentials: readonly FoundCredential[];
  /** `scope.subprotocols` without the bearer entry, to negotiate from. */
  readonly subprotocols: readonly string[];
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const AUTH_SCHEME = /^(Token|Bearer)\s+(\S+)\s*$/i;
const MAX_CREDENTIAL_LENGTH = 16 * 1024;

const malformed = (): AuthenticationError =>
  new AuthenticationError('ERR_INVALID_CREDENTIALS', 'malformed credential');

function decodeBearerSubprotocol(entry: string): string {
  const encoded = entry.slice(BEARER_SUBPROTOCOL_PREFIX.length);
  if (encoded === '' || !BASE64URL.test(encoded) || encoded.length % 4 === 1) throw malformed();
  const decoded = Buffer.from(encoded, 'base64url').toString('utf8');
  // Round-trip check: Buffer's decoder skips what it cannot read instead of failing.
  if (Buffer.from(decoded, 'utf8').toString('base64url') !== encoded || decoded === '')
    throw malformed();
  return decoded;
}

function headerCredential(scope: Scope): string | undefined {
  const values = headerValues(scope.rawHeaders, 'authorization');
  if (values.length === 0) return undefined;
  if (values.length > 1) {
    throw new AuthenticationError(
      'ERR_CONFLICTING_CREDENTIALS',
      'more than one Authorization header',
    );
  }
  const match = AUTH_SCHEME.exec(values[0]!);
  if (match !== null) return match[2]!;
  // Another scheme (Basic, Digest) is not a credential this library reads; a broken
  // Token/Bearer header is a malformed one.
  if (/^(Token|Bearer)\b/i.test(values[0]!)) throw malformed();
  return undefined;
}

/**
 * The value of a credential cookie, refusing conflicting duplicates (issue 16): a sibling
 * subdomain that can plant `key=<its own>` beside the victim's must not choose whose
 * account the socket gets. The `cookie` package keeps the first of duplicate names, so
 * each pair of every `Cookie` line is given to it alone (RFC 6265 §4.2.1: pairs are
 * separated by ";", which no cookie value contains) to see every value.
 */
function cookieCredential(scope: Scope, name: string): string | undefined {
  const first = scope.cookies[name];
  if (first === undefined) return undefined;
  let value: string | undefined;
  for (const line of headerValues(scope.rawHeaders, 'cookie')) {
    for (const pair of line.split(';')) {
      const found = parseCookieHeader(pair)[name];
      if (found === undefined || found === '') continue;
      if (value !== undefined && found !== value) {
        throw new AuthenticationError(
          'ERR_CONFLICTING_CREDENTIALS',
          `conflicting values of the ${name} cookie`,
        );
      }
      value = found;
    }
  }
  return value ?? (first === '' ? undefined : first);
}

function singleQueryValue(scope: Scope, name: string): string | undefined {
  const values = scope.query.getAll(name);
  if (values.length === 0) return undefined;
  if (values.length > 1) {
    throw new AuthenticationError('ERR_CONFLICTING_CREDENTIALS', `more than one ${name} parameter`);
  }
  if (values[0] === '') throw malformed();
  return values[0]!;
}

function addCredential(
  credentials: FoundCredential[],
  transport: CredentialTransport,
  value: string | undefined,
  cookie?: string,
): void {
  if (value === undefined) return;
  if (value.length > MAX_CREDENTIAL_LENGTH) throw malformed();
  credentials.push(cookie === undefined ? { transport, value } : { transport, value, cookie });
}

/**
 * Collects every credential a handshake carries on the enabled transports, and strips
 * the bearer entry from the offered subprotocols so that it is never selected.
 *
 * @throws {AuthenticationError} for a malformed credential or a duplicated one (two
 *   `Authorization` headers, two bearer subprotocol entries, two tickets).
 */
export function findCredentials(
  scope: Scope,
  transports: Required<CredentialTransportOptions>,
): HandshakeCredentials {
  const credentials: FoundCredential[] = [];
  if (transports.header) addCredential(credentials, 'header', headerCredential(scope));

  // No offered subprotocols (most clients): nothing to filter, no arrays per handshake.
  const offered = scope.subprotocols;
  const bearerEntries =
    offered.length === 0 ? offered : offered.filter((entry) => isBearerSubprotocol(entry));
  // The scope's own array when nothing is removed: no copy per handshake.
  const subprotocols =
    bearerEntries.length === 0 ? offered : offered.filter((entry) => !isBearerSubprotocol(entry));
  if (transports.subprotocol && bearerEntries.length > 0) {
    if (bearerEntries.length > 1) {
      throw new AuthenticationError(
        'ERR_CONFLICTING_CREDENTIALS',
        'more than one bearer subprotocol',
      );
    }
    addCredential(credentials, 'subprotocol', decodeBearerSubprotocol(bearerEntries[0]!));
  }
  if (transports.ticket) addCredential(credentials, 'ticket', singleQueryValue(scope, 'ticket'));
  if (transports.query) addCredential(credentials, 'query', singleQueryValue(scope, 'token'));
  if (transports.cookie !== false) {
    for (const name of transports.cookie) {
      addCredential(credentials, 'cookie', cookieCredential(scope, name), name);
    }
  }
  return { credentials, subprotocols };
}
