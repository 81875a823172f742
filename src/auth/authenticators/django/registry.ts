/**
 * What a Django authenticator remembers about each credential it accepted, so that
 * {@link djangoRevalidator} can re-check every live socket in a few queries: the DRF
 * key or session key to look up again, and the session auth hash to compare with the
 * user's current password. Kept in memory only, never logged.
 *
 * @internal
 * @module
 */
import type { Kysely } from 'kysely';
import type { Authenticator } from '../../authenticator.js';
import type { DjangoDatabase } from './schema.js';

/** A live credential, as a re-check needs it. */
export type TrackedCredential =
  | { readonly kind: 'drf-token'; readonly key: string }
  | {
      readonly kind: 'session';
      /** `django_session.session_key`. */
      readonly key: string;
      /** The `session_data` it was verified from: re-decoded only when it changes. */
      readonly data: string;
      readonly userId: string;
      /** `_auth_user_hash`. */
      readonly hash: string;
    }
  | {
      readonly kind: 'signed-session';
      readonly userId: string;
      readonly hash: string;
      /** When Django signed the cookie, in seconds; it ends `cookieAge` later. */
      readonly signedAt: number;
    };

interface Entry {
  readonly credential: TrackedCredential;
  /** When the credential was last accepted (ms), so a re-check never drops a newer one. */
  readonly acceptedAt: number;
}

/** The credentials one authenticator accepted, by credential id. */
export class CredentialRegistry {
  readonly #entries = new Map<string, Entry>();

  remember(credentialId: string, credential: TrackedCredential, now: number): void {
    this.#entries.set(credentialId, { credential, acceptedAt: now });
  }

  get(credentialId: string): TrackedCredential | undefined {
    return this.#entries.get(credentialId)?.credential;
  }

  /**
   * Forgets credentials no live socket holds any more: those not in `live` accepted
   * before `since` (a handshake finishing during a re-check is not in its list yet).
   */
  retainOnly(live: ReadonlySet<string>, since: number): void {
    for (const [credentialId, entry] of this.#entries) {
      if (!live.has(credentialId) && entry.acceptedAt < since) this.#entries.delete(credentialId);
    }
  }

  get size(): number {
    return this.#entries.size;
  }
}

/** What a Django authenticator shares with the revalidator. */
export interface DjangoAuthenticatorState {
  readonly kind: 'drf-token' | 'session' | 'simplejwt';
  readonly db: Kysely<DjangoDatabase> | undefined;
  /** The user table as the queries name it (see `userTable`). */
  readonly userTable: 'auth_user';
  readonly registry: CredentialRegistry;
  /** Sessions only: the session auth hashes a password hash may have (SHA-256, legacy SHA-1). */
  readonly sessionHashes?: (password: string) => readonly string[];
  /** Sessions only: decodes `session_data` again when it changed. */
  readonly decodeSession?: (data: string) => { userId: string; hash: string } | undefined;
  /** Signed-cookie sessions only: `SESSION_COOKIE_AGE`, in seconds. */
  readonly cookieAge?: number;
}

const states = new WeakMap<Authenticator, DjangoAuthenticatorState>();

/** @internal Records `state` for an authenticator the Django factories made. */
export function registerDjangoAuthenticator<A extends Authenticator>(
  authenticator: A,
  state: DjangoAuthenticatorState,
): A {
  states.set(authenticator, state);
  return authenticator;
}

/** @internal The state of an authenticator the Django factories made, else `undefined`. */
export function djangoStateOf(authenticator: Authenticator): DjangoAuthenticatorState | undefined {
  return states.get(authenticator);
}
