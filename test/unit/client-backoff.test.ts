import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { backoff } from '../../src/client/backoff.js';
import {
  ABNORMAL_CLOSURE,
  classifyClose,
  isFatalClose,
  shouldReconnect,
  type CloseAction,
} from '../../src/client/close-policy.js';
import { CloseCode, CloseReason, FATAL_CLOSE_CODES } from '../../src/protocol/close-codes.js';

// Just below 1: Math.random never returns 1 itself.
const ALMOST_ONE = 1 - Number.EPSILON;

describe('backoff', () => {
  const opts = { minDelay: 500, maxDelay: 30_000 };

  test('random() = 0 gives exactly minDelay on every attempt', () => {
    for (const attempt of [0, 1, 2, 5, 10, 100]) {
      assert.equal(backoff(attempt, { ...opts, random: () => 0 }), 500);
    }
  });

  test('the ceiling doubles per attempt: minDelay * 2 ** (attempt + 1)', () => {
    const top = (attempt: number) => backoff(attempt, { ...opts, random: () => 1 });
    assert.equal(top(0), 1_000);
    assert.equal(top(1), 2_000);
    assert.equal(top(2), 4_000);
    assert.equal(top(4), 16_000);
    assert.equal(top(5), 30_000); // 32_000 capped
    assert.ok(backoff(3, { ...opts, random: () => ALMOST_ONE }) < 8_000);
    assert.ok(backoff(3, { ...opts, random: () => ALMOST_ONE }) > 7_999);
  });

  test('the ceiling is capped at maxDelay', () => {
    for (const attempt of [5, 6, 20, 1_000, 1e9, Number.MAX_SAFE_INTEGER]) {
      const delay = backoff(attempt, { ...opts, random: () => 1 });
      assert.equal(delay, 30_000, `attempt ${attempt}`);
      assert.ok(Number.isFinite(delay));
    }
  });

  test('full jitter: the middle of random() lands in the middle of the range', () => {
    // attempt 2: range [500, 4000]
    assert.equal(backoff(2, { ...opts, random: () => 0.5 }), 500 + 0.5 * 3_500);
    assert.equal(backoff(2, { ...opts, random: () => 0.25 }), 500 + 0.25 * 3_500);
  });

  test('with Math.random every delay stays within [minDelay, ceiling]', () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = Math.min(30_000, 500 * 2 ** (attempt + 1));
      for (let i = 0; i < 200; i++) {
        const delay = backoff(attempt, opts);
        assert.ok(delay >= 500 && delay <= ceiling, `attempt ${attempt}: ${delay}`);
      }
    }
  });

  test('a negative attempt is treated as the first', () => {
    assert.equal(backoff(-3, { ...opts, random: () => 1 }), 1_000);
  });

  test('minDelay 0 means no delay; minDelay = maxDelay means a fixed delay', () => {
    assert.equal(backoff(4, { minDelay: 0, maxDelay: 1_000, random: () => 1 }), 0);
    assert.equal(backoff(4, { minDelay: 700, maxDelay: 700, random: () => 1 }), 700);
  });
});

describe('close policy', () => {
  const stop: CloseAction = { action: 'stop' };
  const refresh: CloseAction = { action: 'refresh' };
  const retry: CloseAction = { action: 'retry', rateLimited: false };
  const retrySlowly: CloseAction = { action: 'retry', rateLimited: true };

  // One row per CloseCode member, with the reason the server sends with it (SPEC §5).
  const table: Record<CloseCode, { reason: string; expected: CloseAction }> = {
    [CloseCode.Normal]: { reason: '', expected: stop },
    [CloseCode.GoingAway]: { reason: CloseReason.GoingAway, expected: retry },
    [CloseCode.MessageTooBig]: { reason: '', expected: retry },
    [CloseCode.InternalError]: { reason: CloseReason.InternalError, expected: retry },
    [CloseCode.TryAgainLater]: { reason: CloseReason.TryAgainLater, expected: retry },
    [CloseCode.BadFrame]: { reason: CloseReason.InvalidJson, expected: stop },
    [CloseCode.Unauthorized]: { reason: CloseReason.InvalidCredentials, expected: stop },
    [CloseCode.Forbidden]: { reason: CloseReason.Forbidden, expected: stop },
    [CloseCode.AuthenticationTimeout]: {
      reason: CloseReason.AuthenticationTimeout,
      expected: retry,
    },
    [CloseCode.TooManyRequests]: { reason: CloseReason.TooManyConnections, expected: retrySlowly },
  };

  test('every CloseCode member has a decision', () => {
    const codes = Object.values(CloseCode).filter((v): v is CloseCode => typeof v === 'number');
    assert.equal(codes.length, Object.keys(table).length);
    for (const code of codes) {
      const row = table[code];
      assert.ok(row, `no expectation for close code ${code}`);
      assert.deepEqual(classifyClose(code, row.reason), row.expected, `close code ${code}`);
      assert.equal(isFatalClose(code, row.reason), row.expected.action === 'stop');
      assert.equal(shouldReconnect(code, row.reason), row.expected.action !== 'stop');
    }
  });

  test('4401 refreshes only for `token expired`', () => {
    assert.deepEqual(classifyClose(CloseCode.Unauthorized, CloseReason.TokenExpired), refresh);
    assert.equal(isFatalClose(CloseCode.Unauthorized, CloseReason.TokenExpired), false);
    for (const reason of [
      CloseReason.InvalidCredentials,
      CloseReason.TokenRevoked,
      CloseReason.AuthenticationRequired,
      '',
      'Token Expired',
    ]) {
      assert.deepEqual(classifyClose(CloseCode.Unauthorized, reason), stop, reason);
    }
  });

  test('agrees with FATAL_CLOSE_CODES in the protocol module', () => {
    for (const code of Object.values(CloseCode)) {
      if (typeof code !== 'number') continue;
      // 4401 `token expired` is the one fatal-code close the client recovers from itself.
      const reason = code === CloseCode.Unauthorized ? CloseReason.InvalidCredentials : '';
      if (code === CloseCode.Normal) continue; // not fatal to the protocol, but a deliberate end
      assert.equal(isFatalClose(code, reason), FATAL_CLOSE_CODES.has(code), String(code));
    }
  });

  test('4403 stops whatever the reason', () => {
    assert.deepEqual(classifyClose(CloseCode.Forbidden, CloseReason.OriginNotAllowed), stop);
    assert.deepEqual(classifyClose(CloseCode.Forbidden, CloseReason.TokenExpired), stop);
  });

  test('network-level closes retry; unknown codes stop', () => {
    assert.deepEqual(classifyClose(ABNORMAL_CLOSURE, ''), retry);
    for (const code of [1005, 1012, 1014]) assert.deepEqual(classifyClose(code, ''), retry);
    for (const code of [1002, 1003, 1007, 1008, 1010, 1015, 4000, 4999]) {
      assert.deepEqual(classifyClose(code, ''), stop, String(code));
    }
  });
});
