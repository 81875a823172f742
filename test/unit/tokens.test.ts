import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as zlib from 'node:zlib';
import {
  constantTimeEqual,
  crc32,
  digestToken,
  generateToken,
  looksLikePortcullisToken,
  parseToken,
  TOKEN_PREFIX,
} from '../../src/auth/tokens.js';
import {
  generateTicket,
  looksLikeTicket,
  parseTicket,
  TICKET_PREFIX,
} from '../../src/auth/tickets.js';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

describe('tokens', () => {
  it('are pcu_ + 32 base62 characters + a 6-character checksum', () => {
    const token = generateToken();
    assert.match(token, /^pcu_[0-9A-Za-z]{38}$/);
    assert.equal(token.length, 42);
    assert.equal(parseToken(token), token.slice(4, 36));
  });

  it('are unique', () => {
    const tokens = new Set(Array.from({ length: 2_000 }, generateToken));
    assert.equal(tokens.size, 2_000);
  });

  it('draw characters without modulo bias', () => {
    // A naive `byte % 62` makes '0'..'7' (from bytes 248..255) 25% more likely than the rest.
    const counts = new Map<string, number>();
    for (let i = 0; i < 2_000; i++) {
      for (const char of generateToken().slice(4, 36))
        counts.set(char, (counts.get(char) ?? 0) + 1);
    }
    assert.equal(counts.size, 62);
    const mean = (chars: string): number =>
      [...chars].reduce((sum, c) => sum + (counts.get(c) ?? 0), 0) / chars.length;
    const ratio = mean(BASE62.slice(0, 8)) / mean(BASE62.slice(8));
    assert.ok(ratio > 0.9 && ratio < 1.1, `'0'..'7' drawn ${ratio.toFixed(3)}× as often as others`);
  });

  it('reject every single-character typo without a lookup', () => {
    const token = generateToken();
    let tried = 0;
    for (let i = 0; i < token.length; i++) {
      for (const char of BASE62 + '_') {
        if (char === token[i]) continue;
        const typo = token.slice(0, i) + char + token.slice(i + 1);
        assert.equal(parseToken(typo), undefined, `typo at ${i} accepted`);
        tried++;
      }
    }
    assert.ok(tried > 2_000);
  });

  it('reject swapped neighbouring characters', () => {
    const token = generateToken();
    for (let i = 4; i < token.length - 1; i++) {
      if (token[i] === token[i + 1]) continue;
      const swapped = token.slice(0, i) + token[i + 1] + token[i] + token.slice(i + 2);
      assert.equal(parseToken(swapped), undefined, `swap at ${i} accepted`);
    }
  });

  it('reject wrong prefix, length and alphabet', () => {
    const token = generateToken();
    for (const bad of [
      '',
      'pcu_',
      token.slice(0, -1),
      `${token}0`,
      token.toUpperCase(),
      `pcx_${token.slice(4)}`,
      `${token.slice(0, 10)}-${token.slice(11)}`,
      ` ${token.slice(1)}`,
      `${token.slice(0, 10)}é${token.slice(11)}`,
    ]) {
      assert.equal(parseToken(bad), undefined, JSON.stringify(bad));
    }
  });

  it('are recognised by prefix alone', () => {
    assert.equal(looksLikePortcullisToken(generateToken()), true);
    assert.equal(looksLikePortcullisToken('pcu_broken'), true);
    assert.equal(looksLikePortcullisToken('eyJhbGciOiJIUzI1NiJ9.e30.sig'), false);
    assert.equal(looksLikePortcullisToken(generateTicket()), false);
    assert.equal(TOKEN_PREFIX, 'pcu_');
  });

  it('are digested with SHA-256 hex', () => {
    assert.equal(
      digestToken('abc'),
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    const token = generateToken();
    assert.match(digestToken(token), /^[0-9a-f]{64}$/);
    assert.notEqual(digestToken(token), digestToken(generateToken()));
  });
});

describe('crc32', () => {
  it('matches the standard check value', () => {
    assert.equal(crc32('123456789'), 0xcbf43926);
    assert.equal(crc32(''), 0);
  });

  it('matches zlib.crc32 where Node has it', (t) => {
    const native = (zlib as { crc32?: (data: string) => number }).crc32;
    if (native === undefined) {
      t.skip('zlib.crc32 needs Node 20.15+');
      return;
    }
    for (const text of ['pcu_', generateToken(), 'ünïcödé', 'x'.repeat(1000)]) {
      assert.equal(crc32(text), native(text));
    }
  });
});

describe('tickets', () => {
  it('use the token format with the pct_ prefix', () => {
    const ticket = generateTicket();
    assert.match(ticket, /^pct_[0-9A-Za-z]{38}$/);
    assert.equal(parseTicket(ticket), ticket.slice(4, 36));
    assert.equal(looksLikeTicket(ticket), true);
    assert.equal(TICKET_PREFIX, 'pct_');
  });

  it('are not tokens and tokens are not tickets: the checksum covers the prefix', () => {
    const ticket = generateTicket();
    const token = generateToken();
    assert.equal(parseToken(ticket), undefined);
    assert.equal(parseTicket(token), undefined);
    assert.equal(parseToken(`pcu_${ticket.slice(4)}`), undefined);
    assert.equal(parseTicket(`pct_${token.slice(4)}`), undefined);
  });
});

describe('constantTimeEqual', () => {
  it('compares contents', () => {
    const digest = digestToken('a');
    assert.equal(constantTimeEqual(digest, digestToken('a')), true);
    assert.equal(constantTimeEqual(digest, digestToken('b')), false);
  });

  it('is false for different lengths instead of throwing', () => {
    assert.equal(constantTimeEqual('abc', 'abcd'), false);
    assert.equal(constantTimeEqual('', ''), true);
  });
});
