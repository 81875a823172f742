/**
 * The token and ticket authenticators over a real SQLite store, with the database
 * queries counted through the store's `onQuery` hook to prove what the cache saves.
 */
import { Accounts } from '../../src/auth/accounts.js';
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  ticketAuthenticator,
  tokenAuthenticator,
  type TokenAuthenticator,
  type TokenVerifier,
} from '../../src/auth/authenticators/token.js';
import type { AuthContext } from '../../src/auth/authenticator.js';
import { generateTicket } from '../../src/auth/tickets.js';
import { generateToken } from '../../src/auth/tokens.js';
import { AuthenticationError, ServiceUnavailableError } from '../../src/errors.js';
import { openStore, type Store, type StoredUser, type TokenRecord } from '../../src/store/index.js';

const HEADER: AuthContext = { transport: 'header' };
const TICKET: AuthContext = { transport: 'ticket' };

async function rejectsWith(promise: Promise<unknown>, code: AuthenticationError['code']) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof AuthenticationError, String(error));
    assert.equal(error.code, code);
    return true;
  });
}

describe('tokenAuthenticator', () => {
  let store: Store;
  let clock: number;
  let queries: number;
  let alice: StoredUser;
  let accounts: Accounts;
  let auth: TokenAuthenticator | undefined;

  beforeEach(async () => {
    clock = Date.UTC(2030, 0, 1);
    queries = 0;
    store = openStore('sqlite::memory:', {
      now: () => clock,
      onQuery: () => queries++,
    });
    accounts = new Accounts(store, { now: () => clock });
    await store.migrate();
    alice = await accounts.createUser({ username: 'alice' });
  });

  afterEach(async () => {
    auth?.close();
    auth = undefined;
    await store.close();
  });

  /** An authenticator on the shared store and clock; `queries` counts what reaches SQL. */
  function make(options: { cacheTtlMs?: number; maxCacheEntries?: number } = {}) {
    auth = tokenAuthenticator({ store, now: () => clock, ...options });
    return auth;
  }

  /** Runs `work` and returns how many SQL statements it caused. */
  async function queriesDuring(work: () => Promise<unknown>): Promise<number> {
    const before = queries;
    await work();
    return queries - before;
  }

  it('recognises only pcu_ credentials', async () => {
    const tokens = make();
    assert.equal(tokens.name, 'token');
    for (const other of ['', 'abc', 'eyJhbGciOiJIUzI1NiJ9.e30.x', generateTicket(), 'PCU_x']) {
      assert.equal(await tokens.authenticate(other, HEADER), undefined);
    }
  });

  it('accepts a valid token, with its id as credentialId and its expiry', async () => {
    const tokens = make();
    const created = await accounts.createToken(alice.id, { ttlMs: 60_000 });
    assert.deepEqual(await tokens.authenticate(created.token, HEADER), {
      user: {
        source: 'portcullis',
        id: alice.id,
        username: 'alice',
        isStaff: false,
        isAnonymous: false,
      },
      credentialId: created.id,
      expiresAt: new Date(clock + 60_000),
    });
  });

  it('refuses a malformed token without touching the database', async () => {
    let calls = 0;
    const tokens = tokenAuthenticator({
      store: {
        findTokenByDigest: (digest) => {
          calls++;
          return store.findTokenByDigest(digest);
        },
        touchToken: (id, lastUsedAt) => store.touchToken(id, lastUsedAt),
      },
    });
    const { token } = await accounts.createToken(alice.id);
    const typo = token.slice(0, 20) + (token[20] === 'x' ? 'y' : 'x') + token.slice(21);
    const count = await queriesDuring(async () => {
      for (const bad of ['pcu_', 'pcu_short', typo, `${token}x`]) {
        await rejectsWith(tokens.authenticate(bad, HEADER), 'ERR_INVALID_CREDENTIALS');
      }
    });
    assert.equal(count, 0);
    assert.equal(calls, 0);
  });

  it('refuses unknown, expired and revoked tokens', async () => {
    const tokens = make();
    await rejectsWith(tokens.authenticate(generateToken(), HEADER), 'ERR_INVALID_CREDENTIALS');
    const short = await accounts.createToken(alice.id, { ttlMs: 1_000 });
    const revoked = await accounts.createToken(alice.id);
    await store.revokeToken(revoked.id);
    clock += 1_000;
    await rejectsWith(tokens.authenticate(short.token, HEADER), 'ERR_TOKEN_EXPIRED');
    await rejectsWith(tokens.authenticate(revoked.token, HEADER), 'ERR_TOKEN_REVOKED');
  });

  it('serves repeat handshakes from the cache, without a query', async () => {
    const tokens = make();
    const { token, id } = await accounts.createToken(alice.id);
    assert.ok((await queriesDuring(() => tokens.authenticate(token, HEADER))) > 0);
    const repeat = await queriesDuring(async () => {
      for (let i = 0; i < 100; i++) {
        const result = await tokens.authenticate(token, HEADER);
        assert.equal(result?.credentialId, id);
      }
    });
    assert.equal(repeat, 0);
  });

  it('keeps serving cached tokens while the database is down, until the entry expires', async () => {
    const tokens = make({ cacheTtlMs: 5_000 });
    const { token } = await accounts.createToken(alice.id);
    await tokens.authenticate(token, HEADER);
    await store.close();
    clock += 4_999;
    assert.equal((await tokens.authenticate(token, HEADER))?.user.username, 'alice');
    clock += 1;
    await assert.rejects(tokens.authenticate(token, HEADER), ServiceUnavailableError);
  });

  it('shares one verification among concurrent handshakes', async () => {
    const tokens = make();
    const { token } = await accounts.createToken(alice.id);
    let calls = 0;
    const counting = tokenAuthenticator({
      store: {
        findTokenByDigest: (digest: string) => {
          calls++;
          return store.findTokenByDigest(digest);
        },
        touchToken: (id, lastUsedAt) => store.touchToken(id, lastUsedAt),
      },
    });
    const results = await Promise.all(
      Array.from({ length: 50 }, () => counting.authenticate(token, HEADER)),
    );
    assert.equal(calls, 1);
    assert.ok(results.every((r) => r?.user.id === alice.id));
    assert.ok(tokens !== counting);
    counting.close();
  });

  it('never caches past the token expiry', async () => {
    const tokens = make({ cacheTtlMs: 5_000 });
    const { token } = await accounts.createToken(alice.id, { ttlMs: 2_000 });
    await tokens.authenticate(token, HEADER);
    clock += 1_999;
    assert.equal(await queriesDuring(() => tokens.authenticate(token, HEADER)), 0);
    clock += 1;
    await rejectsWith(tokens.authenticate(token, HEADER), 'ERR_TOKEN_EXPIRED');
  });

  it('re-verifies after cacheTtlMs', async () => {
    const tokens = make({ cacheTtlMs: 5_000 });
    const { token } = await accounts.createToken(alice.id);
    await tokens.authenticate(token, HEADER);
    clock += 4_999;
    assert.equal(await queriesDuring(() => tokens.authenticate(token, HEADER)), 0);
    clock += 1;
    assert.ok((await queriesDuring(() => tokens.authenticate(token, HEADER))) > 0);
  });

  it('does not cache with cacheTtlMs: 0', async () => {
    const tokens = make({ cacheTtlMs: 0 });
    const { token } = await accounts.createToken(alice.id);
    await tokens.authenticate(token, HEADER);
    assert.ok((await queriesDuring(() => tokens.authenticate(token, HEADER))) > 0);
  });

  it('evicts the least recently used token beyond maxCacheEntries', async () => {
    const tokens = make({ maxCacheEntries: 2 });
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => accounts.createToken(alice.id)));
    assert.ok(a && b && c);
    await tokens.authenticate(a.token, HEADER);
    await tokens.authenticate(b.token, HEADER);
    await tokens.authenticate(a.token, HEADER); // a is now the most recently used
    await tokens.authenticate(c.token, HEADER); // evicts b
    assert.equal(await queriesDuring(() => tokens.authenticate(a.token, HEADER)), 0);
    assert.equal(await queriesDuring(() => tokens.authenticate(c.token, HEADER)), 0);
    assert.ok((await queriesDuring(() => tokens.authenticate(b.token, HEADER))) > 0);
  });

  it('forgets a token at once on invalidate(tokenId) / invalidateCredential', async () => {
    const tokens = make();
    const a = await accounts.createToken(alice.id);
    const b = await accounts.createToken(alice.id);
    await tokens.authenticate(a.token, HEADER);
    await tokens.authenticate(b.token, HEADER);
    tokens.invalidate(a.id);
    assert.ok((await queriesDuring(() => tokens.authenticate(a.token, HEADER))) > 0);
    assert.equal(await queriesDuring(() => tokens.authenticate(b.token, HEADER)), 0);
    // The Authenticator interface's name for it, as the auth middleware calls it.
    tokens.invalidateCredential(b.id);
    assert.ok((await queriesDuring(() => tokens.authenticate(b.token, HEADER))) > 0);
  });

  it('forgets every token of a user on invalidateUser(userId)', async () => {
    const tokens = make();
    const bob = await accounts.createUser({ username: 'bob' });
    const a1 = await accounts.createToken(alice.id);
    const a2 = await accounts.createToken(alice.id);
    const b1 = await accounts.createToken(bob.id);
    for (const t of [a1, a2, b1]) await tokens.authenticate(t.token, HEADER);
    tokens.invalidateUser(alice.id);
    assert.ok((await queriesDuring(() => tokens.authenticate(a1.token, HEADER))) > 0);
    assert.ok((await queriesDuring(() => tokens.authenticate(a2.token, HEADER))) > 0);
    assert.equal(await queriesDuring(() => tokens.authenticate(b1.token, HEADER)), 0);
  });

  it('refuses a token revoked through the store at once, despite the cache', async () => {
    const tokens = make({ cacheTtlMs: 60_000 });
    const a = await accounts.createToken(alice.id);
    const b = await accounts.createToken(alice.id);
    await tokens.authenticate(a.token, HEADER);
    await tokens.authenticate(b.token, HEADER);
    await store.revokeToken(a.id);
    await rejectsWith(tokens.authenticate(a.token, HEADER), 'ERR_TOKEN_REVOKED');
    await store.revokeUserTokens(alice.id);
    await rejectsWith(tokens.authenticate(b.token, HEADER), 'ERR_TOKEN_REVOKED');
  });

  it('does not cache a verification that raced an invalidation', async () => {
    const { token, id } = await accounts.createToken(alice.id);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const slow: TokenVerifier = {
      async findTokenByDigest(digest: string): Promise<TokenRecord | undefined> {
        calls++;
        const result = await store.findTokenByDigest(digest);
        await gate;
        return result;
      },
      touchToken: (id, lastUsedAt) => store.touchToken(id, lastUsedAt),
    };
    const tokens = tokenAuthenticator({ store: slow, now: () => clock });
    const pending = tokens.authenticate(token, HEADER);
    tokens.invalidate(id);
    release();
    await pending;
    await tokens.authenticate(token, HEADER);
    assert.equal(calls, 2);
    tokens.close();
  });

  it('stops following the store and caching after close()', async () => {
    const { token } = await accounts.createToken(alice.id);
    const listeners = new Set<unknown>();
    const tokens = tokenAuthenticator({
      store: {
        findTokenByDigest: (digest) => store.findTokenByDigest(digest),
        touchToken: (id, lastUsedAt) => store.touchToken(id, lastUsedAt),
        onRevoke(listener) {
          listeners.add(listener);
          return () => listeners.delete(listener);
        },
      },
      now: () => clock,
    });
    assert.equal(listeners.size, 1);
    await tokens.authenticate(token, HEADER);
    tokens.close();
    assert.equal(listeners.size, 0);
    assert.ok((await queriesDuring(() => tokens.authenticate(token, HEADER))) > 0);
    assert.ok((await queriesDuring(() => tokens.authenticate(token, HEADER))) > 0);
  });

  it('checks its options at construction', () => {
    assert.throws(() => tokenAuthenticator({ store: {} as TokenVerifier }), {
      name: 'TypeError',
      message: 'tokenAuthenticator: options.store must be a Store (findTokenByDigest)',
    });
    for (const cacheTtlMs of [-1, 1.5, Number.NaN]) {
      assert.throws(() => tokenAuthenticator({ store, cacheTtlMs }), {
        name: 'RangeError',
        message: 'tokenAuthenticator: options.cacheTtlMs must be a non-negative integer',
      });
    }
    assert.throws(() => tokenAuthenticator({ store, maxCacheEntries: 0 }), {
      name: 'RangeError',
      message: 'tokenAuthenticator: options.maxCacheEntries must be a positive integer',
    });
  });
});

describe('ticketAuthenticator', () => {
  let store: Store;
  let accounts: Accounts;
  let clock: number;

  beforeEach(async () => {
    clock = Date.UTC(2030, 0, 1);
    store = openStore('sqlite::memory:', { now: () => clock });
    accounts = new Accounts(store, { now: () => clock });
    await store.migrate();
  });

  afterEach(() => store.close());

  it('recognises only pct_ credentials', async () => {
    const tickets = ticketAuthenticator({ store });
    assert.equal(tickets.name, 'ticket');
    for (const other of ['', 'abc', generateToken(), 'PCT_x']) {
      assert.equal(await tickets.authenticate(other, TICKET), undefined);
    }
  });

  it('redeems a ticket once, as the token that asked for it', async () => {
    const tickets = ticketAuthenticator({ store });
    const alice = await accounts.createUser({ username: 'alice', isStaff: true });
    const token = await accounts.createToken(alice.id, { ttlMs: 3_600_000 });
    const { ticket } = await accounts.createTicket(alice.id, token.id);
    assert.deepEqual(await tickets.authenticate(ticket, TICKET), {
      user: {
        source: 'portcullis',
        id: alice.id,
        username: 'alice',
        isStaff: true,
        isAnonymous: false,
      },
      credentialId: token.id,
      expiresAt: new Date(clock + 3_600_000),
    });
    await rejectsWith(tickets.authenticate(ticket, TICKET), 'ERR_INVALID_CREDENTIALS');
  });

  it('refuses a malformed ticket without redeeming anything', async () => {
    let calls = 0;
    const tickets = ticketAuthenticator({
      store: {
        consumeTicketDigest: (digest: string) => {
          calls++;
          return store.consumeTicketDigest(digest);
        },
        getTokens: (ids) => store.getTokens(ids),
      },
    });
    const ticket = generateTicket();
    const typo = ticket.slice(0, 12) + (ticket[12] === 'q' ? 'r' : 'q') + ticket.slice(13);
    await rejectsWith(tickets.authenticate(typo, TICKET), 'ERR_INVALID_CREDENTIALS');
    await rejectsWith(tickets.authenticate('pct_', TICKET), 'ERR_INVALID_CREDENTIALS');
    assert.equal(calls, 0);
  });

  it('refuses a ticket whose token was revoked', async () => {
    const tickets = ticketAuthenticator({ store });
    const alice = await accounts.createUser({ username: 'alice' });
    const token = await accounts.createToken(alice.id);
    const { ticket } = await accounts.createTicket(alice.id, token.id);
    await store.revokeToken(token.id);
    await rejectsWith(tickets.authenticate(ticket, TICKET), 'ERR_TOKEN_REVOKED');
  });

  it('checks its options at construction', () => {
    assert.throws(() => ticketAuthenticator({ store: {} as Store }), {
      name: 'TypeError',
      message: 'ticketAuthenticator: options.store must be a Store (consumeTicketDigest)',
    });
  });
});
