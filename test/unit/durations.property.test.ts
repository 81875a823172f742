/** Properties of operator durations (`30d`, `12h`, `none`): parse and format agree. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatDuration, MAX_DURATION_MS, parseDuration } from '../../src/gateway/durations.js';

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const unit = fc.constantFrom('s', 'm', 'h', 'd');

describe('durations (property)', () => {
  it('reads a whole number of one unit as milliseconds, up to 100 years', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9_999_999_999 }), unit, (amount, u) => {
        const ms = amount * UNIT_MS[u];
        assert.equal(parseDuration(`${amount}${u}`), ms <= MAX_DURATION_MS ? ms : undefined);
      }),
    );
  });

  it('refuses two units together, a zero amount and fractions', () => {
    const amount = fc.integer({ min: 1, max: 999 });
    fc.assert(
      fc.property(amount, unit, amount, unit, (a, u, b, v) => {
        for (const text of [`${a}${u}${b}${v}`, `0${u}`, `${a}.${b}${u}`, `-${a}${u}`]) {
          assert.equal(parseDuration(text), undefined, text);
        }
      }),
    );
  });

  it('formats what it reads so that it reads back the same', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 36_500 * 86_400 }), (seconds) => {
        const ms = seconds * 1_000;
        const text = formatDuration(ms);
        assert.match(text, /^[1-9][0-9]*[smhd]$/);
        assert.equal(parseDuration(text), ms);
      }),
    );
    assert.equal(parseDuration(formatDuration(null)), null);
  });

  it('ignores surrounding blanks and the case of none', () => {
    const blank = fc.stringMatching(/^[ \t]{0,3}$/);
    fc.assert(
      fc.property(blank, blank, fc.constantFrom('none', 'NONE', 'None', '30d', '5m'), (l, r, t) => {
        assert.equal(parseDuration(`${l}${t}${r}`), parseDuration(t));
      }),
    );
  });

  it('answers any other text with undefined, never a number out of range or a throw', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary-ascii', maxLength: 14 }), (text) => {
        const ms = parseDuration(text);
        if (ms === undefined || ms === null) return;
        assert.ok(Number.isSafeInteger(ms) && ms >= 1_000 && ms <= MAX_DURATION_MS, text);
        assert.match(text.trim(), /^[1-9][0-9]*[smhd]$/);
      }),
    );
  });
});
