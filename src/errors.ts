/**
 * Error classes. Two families, kept apart on purpose (STYLE.md practice 4):
 * programmer misuse throws `TypeError`/`RangeError` at construction; untrusted input
 * throws a {@link PortcullisError} subclass whose `code` is a literal union, so
 * `switch (err.code)` narrows. Every code is documented in `docs/errors.md`.
 *
 * @module
 */

/** Every error code Portcullis throws for untrusted input or unavailable services. */
export type PortcullisErrorCode =
  | 'ERR_INVALID_JSON'
  | 'ERR_NOT_AN_OBJECT'
  | 'ERR_BINARY_NOT_ACCEPTED'
  | 'ERR_INVALID_CHANNEL_NAME'
  | 'ERR_CHANNEL_FULL'
  | 'ERR_INVALID_CREDENTIALS'
  | 'ERR_TOKEN_EXPIRED'
  | 'ERR_TOKEN_REVOKED'
  | 'ERR_CONFLICTING_CREDENTIALS'
  | 'ERR_SERVICE_UNAVAILABLE'
  | 'ERR_USERNAME_TAKEN'
  | 'ERR_CONFIG'
  | 'ERR_SCHEMA_OUTDATED';

/** Base class of every coded Portcullis error. */
export class PortcullisError extends Error {
  /** A stable code; see `docs/errors.md` for each. */
  readonly code: PortcullisErrorCode;

  constructor(code: PortcullisErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A client frame that the protocol cannot accept (closes 4400). */
export class ProtocolError extends PortcullisError {
  declare readonly code: 'ERR_INVALID_JSON' | 'ERR_NOT_AN_OBJECT' | 'ERR_BINARY_NOT_ACCEPTED';
  constructor(code: ProtocolError['code'], message: string) {
    super(code, message);
  }
}

/** A channel or group name that breaks the naming rule of SPEC §2. */
export class InvalidChannelNameError extends PortcullisError {
  declare readonly code: 'ERR_INVALID_CHANNEL_NAME';
  constructor(kind: 'channel' | 'group', name: string) {
    super(
      'ERR_INVALID_CHANNEL_NAME',
      `Invalid ${kind} name ${JSON.stringify(name.slice(0, 120))}: ` +
        'names must match ^[A-Za-z0-9\\-_.]{1,99}$ (ASCII letters, digits, hyphens, underscores, periods; shorter than 100)',
    );
  }
}

/** A channel's queue is at capacity; the message was not stored. */
export class ChannelFullError extends PortcullisError {
  declare readonly code: 'ERR_CHANNEL_FULL';
  constructor(channel: string) {
    super('ERR_CHANNEL_FULL', `Channel ${channel} is full`);
  }
}

/**
 * A credential was recognised but is not valid. `code` tells which; the message is
 * safe to log and never contains the credential.
 */
export class AuthenticationError extends PortcullisError {
  declare readonly code:
    | 'ERR_INVALID_CREDENTIALS'
    | 'ERR_TOKEN_EXPIRED'
    | 'ERR_TOKEN_REVOKED'
    | 'ERR_CONFLICTING_CREDENTIALS';
  constructor(
    code: AuthenticationError['code'],
    message = 'invalid credentials',
    options?: ErrorOptions,
  ) {
    super(code, message, options);
  }
}

/** A backing service (database, Redis) is unreachable. Callers fail closed (1013 / 503). */
export class ServiceUnavailableError extends PortcullisError {
  declare readonly code: 'ERR_SERVICE_UNAVAILABLE';
  constructor(service: string, options?: ErrorOptions) {
    super('ERR_SERVICE_UNAVAILABLE', `${service} is unavailable`, options);
  }
}

/** Invalid gateway configuration; the message names the variable and is one line. */
export class ConfigError extends PortcullisError {
  declare readonly code: 'ERR_CONFIG';
  constructor(message: string) {
    super('ERR_CONFIG', message);
  }
}
