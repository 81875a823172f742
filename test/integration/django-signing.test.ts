// Django's signing, sessions and session auth hash as Portcullis verifies them, against
// values made by the real Django 3.2 (Debian's python3-django) in a subprocess.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { before, describe, test } from 'node:test';
import {
  decodeSessionData,
  sessionAuthHashes,
  sessionUser,
} from '../../src/auth/authenticators/django/session.js';
import {
  BadSignature,
  loadsSigned,
  SignatureExpired,
} from '../../src/auth/authenticators/django/signing.js';
import { djangoSuiteOptions, PYTHON } from '../helpers/django.js';

const SECRET = 'django-insecure-k#3x!a8v@q2w$e4r%t6y^u8i*o0p(l)k_j-h=g+f';
const SALT = 'django.contrib.sessions.SessionStore';
const PASSWORD_HASH = 'pbkdf2_sha256$260000$salt$hashhashhashhashhashhashhashhashhashhashhas=';

const SCRIPT = `
import json, time
import django
from django.conf import settings
settings.configure(SECRET_KEY=${JSON.stringify(SECRET)}, INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"])
django.setup()
from django.core import signing
from django.utils import baseconv
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore

session = {"_auth_user_id": "7", "_auth_user_backend": "django.contrib.auth.backends.ModelBackend", "_auth_user_hash": "h", "note": "caf\\u00e9 " * 20}
out = {
    "plain": signing.dumps({"a": [1, 2]}, salt=${JSON.stringify(SALT)}),
    "compressed": signing.dumps(session, salt=${JSON.stringify(SALT)}, compress=True),
    "sha1": signing.TimestampSigner(salt=${JSON.stringify(SALT)}, algorithm="sha1").sign_object({"b": 1}),
    "session": SessionStore().encode(session),
    "legacy": SessionStore()._legacy_encode(session),
    "other_salt": signing.dumps({"a": 1}, salt="elsewhere"),
}
signer = signing.TimestampSigner(salt="django.contrib.sessions.backends.signed_cookies")
signer.timestamp = lambda: baseconv.base62.encode(int(time.time()) - 1000)
out["old"] = signer.sign_object({"c": 1}, compress=True)
user = User(password=${JSON.stringify(PASSWORD_HASH)})
out["hash"] = user.get_session_auth_hash()
out["legacy_hash"] = user._legacy_get_session_auth_hash()
print(json.dumps(out))
`;

describe('Django signing, against Django 3.2', djangoSuiteOptions(), () => {
  let made: Record<string, string>;

  before(() => {
    const run = spawnSync(PYTHON, ['-c', SCRIPT], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    made = JSON.parse(run.stdout) as Record<string, string>;
  });

  test('signing.dumps values load, compressed or not, SHA-256 or legacy SHA-1', () => {
    assert.deepEqual(loadsSigned(made['plain']!, { secret: SECRET, salt: SALT }).value, {
      a: [1, 2],
    });
    const compressed = loadsSigned(made['compressed']!, { secret: SECRET, salt: SALT });
    assert.ok(made['compressed']!.startsWith('.'), 'Django chose to compress');
    assert.equal((compressed.value as { note: string }).note, 'café '.repeat(20));
    assert.ok(Math.abs(compressed.signedAt - Date.now() / 1000) < 60);
    assert.deepEqual(loadsSigned(made['sha1']!, { secret: SECRET, salt: SALT }).value, { b: 1 });
  });

  test('a wrong secret, salt, tampering or truncation is BadSignature', () => {
    const value = made['compressed']!;
    const refusals = [
      () => loadsSigned(value, { secret: `${SECRET}x`, salt: SALT }),
      () => loadsSigned(made['other_salt']!, { secret: SECRET, salt: SALT }),
      () =>
        loadsSigned(`${value.slice(0, 5)}${value[5] === 'A' ? 'B' : 'A'}${value.slice(6)}`, {
          secret: SECRET,
          salt: SALT,
        }),
      () => loadsSigned(value.slice(0, -1), { secret: SECRET, salt: SALT }),
      () => loadsSigned(value.slice(0, value.lastIndexOf(':')), { secret: SECRET, salt: SALT }),
      () => loadsSigned('no separator', { secret: SECRET, salt: SALT }),
    ];
    for (const refusal of refusals) assert.throws(refusal, BadSignature);
  });

  test('max_age: an old signature is SignatureExpired', () => {
    const salt = 'django.contrib.sessions.backends.signed_cookies';
    assert.deepEqual(loadsSigned(made['old']!, { secret: SECRET, salt, maxAge: 2_000 }).value, {
      c: 1,
    });
    assert.throws(
      () => loadsSigned(made['old']!, { secret: SECRET, salt, maxAge: 500 }),
      SignatureExpired,
    );
  });

  test('session data in the current and the pre-3.1 format decodes; the user is read', () => {
    for (const data of [made['session']!, made['legacy']!]) {
      const decoded = decodeSessionData(data, SECRET);
      assert.deepEqual(sessionUser(decoded), { userId: '7', hash: 'h' });
      assert.equal(decodeSessionData(data, `${SECRET}x`), undefined);
    }
    assert.equal(sessionUser({ _auth_user_id: '7' }), undefined, 'no backend: anonymous');
    assert.equal(sessionUser({ note: 'anonymous' }), undefined);
  });

  test('the session auth hash is Django’s, SHA-256 and the legacy SHA-1', () => {
    assert.deepEqual(sessionAuthHashes(PASSWORD_HASH, SECRET), [made['hash'], made['legacy_hash']]);
  });
});
