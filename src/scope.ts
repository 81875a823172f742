/**
 * The scope: everything known about a connection before the app runs (SPEC §2).
 *
 * @module
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { parse as parseCookieHeader } from 'cookie';
import { ANONYMOUS_USER } from './auth/user.js';
import type { AuthInfo, User } from './auth/user.js';

/** The network peer of a connection. */
export interface ClientAddress {
  readonly address: string;
  readonly port: number;
}

/**
 * Everything known about one WebSocket connection. Middleware never mutates a scope; it
 * passes a copy with its additions to the inner app (`deriveScope(scope, { user })`, or
 * `{ ...scope, user }`).
 */
export interface Scope {
  readonly type: 'websocket';
  /** The URL path, percent-decoded segments left as sent (e.g. `/ws/chat/`). */
  readonly path: string;
  /** The raw query string without `?` (may contain credentials: never log it). */
  readonly queryString: string;
  readonly query: URLSearchParams;
  /**
   * Header values by lower-case name; repeated headers joined with `, `. A plain object:
   * read with `Object.hasOwn` or `?? ` on known names, not with `in`.
   */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * Every header line as sent, flat as Node's `rawHeaders`: name, value, name, value…
   * (names in their original case, duplicates kept, to detect conflicts). Read it with
   * {@link headerValues}.
   */
  readonly rawHeaders: readonly string[];
  readonly cookies: Readonly<Record<string, string>>;
  readonly client: ClientAddress;
  /** Subprotocols the client offered, in order. The auth middleware removes bearer entries. */
  readonly subprotocols: readonly string[];
  /** The `Origin` header, or `null` when absent (a non-browser client). */
  readonly origin: string | null;
  /** Route parameters collected by URL routers (`/ws/app_:id/` → `{ id }`). */
  readonly params: Readonly<Record<string, string>>;
  /** The authenticated user, or {@link ANONYMOUS_USER}; never undefined. */
  readonly user: User;
  /** How `user` was authenticated, or `null` for anonymous connections. */
  readonly auth: AuthInfo | null;
  /**
   * Per-connection session data, from connect to disconnect. The one mutable part of a
   * scope: copies made by middleware share the same object.
   */
  readonly state: Record<string, unknown>;
  /** The part of `path` that routers have not consumed yet (for nested URL routers). */
  readonly remainingPath?: string | undefined;
  /**
   * The app subprotocol chosen for this connection by a {@link protocolRouter}; consumers
   * accept with it by default.
   */
  readonly protocol?: string | undefined;
}

/** The fields a middleware may change when it derives a scope for its inner app. */
export type ScopeChanges = { -readonly [Key in keyof Scope]?: Scope[Key] };

/**
 * A copy of `scope` with `changes` applied: what middleware passes to its inner app.
 * Every copy has the same fixed shape, so V8 shares one hidden class among them; object
 * spreads of scopes were given a hidden class of their own per connection (~0.4 KB each).
 *
 * @example
 * ```ts
 * return inner(deriveScope(scope, { state: { ...scope.state, tenant } }), connection);
 * ```
 */
export function deriveScope(scope: Scope, changes: ScopeChanges): Scope {
  return {
    type: 'websocket',
    path: changes.path ?? scope.path,
    queryString: changes.queryString ?? scope.queryString,
    query: changes.query ?? scope.query,
    headers: changes.headers ?? scope.headers,
    rawHeaders: changes.rawHeaders ?? scope.rawHeaders,
    cookies: changes.cookies ?? scope.cookies,
    client: changes.client ?? scope.client,
    subprotocols: changes.subprotocols ?? scope.subprotocols,
    origin: 'origin' in changes ? (changes.origin ?? null) : scope.origin,
    params: changes.params ?? scope.params,
    user: changes.user ?? scope.user,
    auth: 'auth' in changes ? (changes.auth ?? null) : scope.auth,
    state: changes.state ?? scope.state,
    remainingPath: 'remainingPath' in changes ? changes.remainingPath : scope.remainingPath,
    protocol: 'protocol' in changes ? changes.protocol : scope.protocol,
  };
}

/** Options for {@link createScope}, for transports and tests. */
export interface CreateScopeOptions {
  path: string;
  queryString?: string;
  headers?: Record<string, string | readonly string[]>;
  client?: ClientAddress;
}

/**
 * Sets an own property even for the name `__proto__`, which a plain assignment would
 * take as a prototype change. Client-chosen names (headers, cookies) go through here.
 */
function setOwn(target: Record<string, string>, name: string, value: string): void {
  if (name === '__proto__') {
    Object.defineProperty(target, name, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else target[name] = value;
}

/**
 * The `params` of a scope no router has added to, shared by all of them (frozen, as
 * every part of a scope is read-only). Routers compare with it to skip a merge.
 */
export const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});
const NO_COOKIES: Readonly<Record<string, string>> = Object.freeze({});

/** Query parameters that refuse changes: one instance serves every empty query string. */
class FrozenSearchParams extends URLSearchParams {
  #sealed = false;

  constructor() {
    super();
    this.#sealed = true;
  }

  #refuse(): never {
    throw new TypeError('scope.query is read-only');
  }

  override append(name: string, value: string): void {
    if (this.#sealed) this.#refuse();
    super.append(name, value);
  }
  override set(name: string, value: string): void {
    if (this.#sealed) this.#refuse();
    super.set(name, value);
  }
  override delete(name: string, value?: string): void {
    if (this.#sealed) this.#refuse();
    super.delete(name, value);
  }
  override sort(): void {
    if (this.#sealed) this.#refuse();
    super.sort();
  }
}

// Most sockets send no query string: no URLSearchParams (~100 bytes) each.
const NO_QUERY: URLSearchParams = new FrozenSearchParams();
const NO_SUBPROTOCOLS: readonly string[] = Object.freeze([]);

function cookiesFrom(header: string | undefined): Readonly<Record<string, string>> {
  if (header === undefined || header === '') return NO_COOKIES;
  const parsed = parseCookieHeader(header);
  const cookies: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (value !== undefined) setOwn(cookies, name, value);
  }
  return cookies;
}

function offeredSubprotocols(header: string | undefined): readonly string[] {
  if (header === undefined) return NO_SUBPROTOCOLS;
  return header
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
}

/**
 * Builds a scope from parts. Transports call it with the request's pieces; tests call it
 * directly.
 */
export function createScope(options: CreateScopeOptions): Scope {
  const rawHeaders: string[] = [];
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    const values = typeof value === 'string' ? [value] : value;
    for (const single of values) rawHeaders.push(name, single);
  }
  return scopeFromHeaderList(
    options.path,
    options.queryString ?? '',
    rawHeaders,
    options.client ?? { address: '127.0.0.1', port: 0 },
  );
}

/**
 * Every value of header `name` (lower case) in a flat raw header list, in order.
 *
 * @example
 * ```ts
 * headerValues(scope.rawHeaders, 'authorization'); // ['Token pcu_…'], or two entries
 * ```
 */
export function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    if (lowerCaseName(rawHeaders[index]!) === name) values.push(rawHeaders[index + 1]!);
  }
  return values;
}

function ownHeader(headers: Record<string, string>, name: string): string | undefined {
  return Object.hasOwn(headers, name) ? headers[name] : undefined;
}

/**
 * One shared copy of the strings that repeat on every handshake (header names, values of
 * headers like `Upgrade` or `Origin`, paths): a scope keeps its headers for the life of
 * the connection, and ten copies of `Sec-WebSocket-Version` per socket add up. Clients
 * choose these strings, so the pool stops growing when full (it never evicts).
 */
class StringPool {
  readonly #strings = new Map<string, string>();
  readonly #capacity: number;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  intern(value: string): string {
    if (value.length > 128) return value;
    const shared = this.#strings.get(value);
    if (shared !== undefined) return shared;
    if (this.#strings.size < this.#capacity) this.#strings.set(value, value);
    return value;
  }
}

const sharedStrings = new StringPool(2_048);
/** Header name as sent → lower case, so that `toLowerCase` runs once per spelling. */
const lowerCaseNames = new Map<string, string>();

function lowerCaseName(rawName: string): string {
  let name = lowerCaseNames.get(rawName);
  if (name === undefined) {
    name = rawName.toLowerCase();
    if (lowerCaseNames.size < 2_048) lowerCaseNames.set(rawName, name);
  }
  return name;
}

/** Headers whose values are few and the same across clients; others are not pooled. */
const POOLED_VALUES = new Set([
  'host',
  'connection',
  'upgrade',
  'origin',
  'sec-websocket-version',
  'sec-websocket-extensions',
  'sec-websocket-protocol',
  'user-agent',
  'accept-encoding',
  'accept-language',
  'cache-control',
  'pragma',
]);

function scopeFromHeaderList(
  path: string,
  queryString: string,
  receivedHeaders: readonly string[],
  client: ClientAddress,
): Scope {
  // A plain object, not Object.create(null): V8 keeps null-prototype objects in
  // dictionary mode, about 350 bytes more per connection. Reads must use own keys.
  const headers: Record<string, string> = {};
  const rawHeaders: string[] = new Array<string>(receivedHeaders.length);
  for (let index = 0; index + 1 < receivedHeaders.length; index += 2) {
    const rawName = sharedStrings.intern(receivedHeaders[index]!);
    const name = lowerCaseName(rawName);
    const received = receivedHeaders[index + 1]!;
    const value = POOLED_VALUES.has(name) ? sharedStrings.intern(received) : received;
    rawHeaders[index] = rawName;
    rawHeaders[index + 1] = value;
    // Set-Cookie never arrives on a request; RFC 9110 §5.3 allows joining the rest.
    const joiner = name === 'cookie' ? '; ' : ', ';
    setOwn(
      headers,
      name,
      Object.hasOwn(headers, name) ? `${headers[name]}${joiner}${value}` : value,
    );
  }
  return {
    type: 'websocket',
    path: sharedStrings.intern(path),
    queryString,
    query: queryString === '' ? NO_QUERY : new URLSearchParams(queryString),
    headers,
    rawHeaders,
    cookies: cookiesFrom(ownHeader(headers, 'cookie')),
    client,
    subprotocols: offeredSubprotocols(ownHeader(headers, 'sec-websocket-protocol')),
    origin: ownHeader(headers, 'origin') ?? null,
    params: NO_PARAMS,
    user: ANONYMOUS_USER,
    auth: null,
    state: new ConnectionState(),
    // Present from the start, so that derived scopes keep this one's hidden class.
    remainingPath: undefined,
    protocol: undefined,
  };
}

/**
 * The initial, empty `scope.state`. An instance of an empty class rather than `{}`: V8
 * shrinks a class's instances to the fields they get (24 bytes), where every `{}`
 * reserves four property slots it rarely fills (56 bytes).
 */
class ConnectionState implements Record<string, unknown> {
  [key: string]: unknown;
}

/**
 * The peer of a socket, asked of the kernel (`getpeername`) on first read: most
 * handshakes never need it (the failure limiter reads it only once some address has
 * failed), and the call is a measurable part of a handshake.
 */
class SocketPeer implements ClientAddress {
  #socket: Socket | undefined;
  #address = '';
  #port = 0;

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  #read(): void {
    const socket = this.#socket;
    if (socket === undefined) return;
    this.#socket = undefined;
    this.#address = socket.remoteAddress ?? '';
    this.#port = socket.remotePort ?? 0;
  }

  get address(): string {
    this.#read();
    return this.#address;
  }

  get port(): number {
    this.#read();
    return this.#port;
  }

  toJSON(): ClientAddress {
    return { address: this.address, port: this.port };
  }
}

/** Builds the scope of an HTTP upgrade request. */
export function scopeFromRequest(request: IncomingMessage): Scope {
  const url = request.url ?? '/';
  const queryStart = url.indexOf('?');
  const path = queryStart === -1 ? url : url.slice(0, queryStart);
  const queryString = queryStart === -1 ? '' : url.slice(queryStart + 1);
  return scopeFromHeaderList(path, queryString, request.rawHeaders, new SocketPeer(request.socket));
}
