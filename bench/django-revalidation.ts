/**
 * What re-checking live Django credentials costs (SPEC §11, docs/django.md): 10,000 live
 * sockets, a third each on DRF tokens, `db` sessions and SimpleJWT access tokens, all
 * made by Django itself, re-checked by `djangoRevalidator` against SQLite and PostgreSQL.
 *
 *   npm run build && node --import tsx bench/django-revalidation.ts [--sockets 10000]
 *
 * Needs Debian's Django packages, PostgreSQL and Redis as the test suite does.
 */
import { parseArgs } from 'node:util';
import type { AuthInfo, User } from '../src/auth/user.js';
import {
  djangoRevalidator,
  djangoSessionAuthenticator,
  drfTokenAuthenticator,
  simpleJwtAuthenticator,
} from '../src/auth/authenticators/django.js';
import type { Authenticator } from '../src/auth/authenticator.js';
import { openReadOnlyDjangoDatabase } from '../src/gateway/django.js';
import { createDjangoProject } from '../test/helpers/django.js';
import type { DjangoDatabaseKind } from '../test/helpers/django.js';

const { values } = parseArgs({ options: { sockets: { type: 'string', default: '10000' } } });
const sockets = Number(values.sockets);
const ROUNDS = 7;

const MAKE = (count: number): string => `
import datetime, json
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.models import Session
from django.utils import timezone
from django.utils.crypto import get_random_string
from rest_framework.authtoken.models import Token
from rest_framework_simplejwt.tokens import AccessToken
password = make_password("bench-password")
User.objects.bulk_create([User(username="u%d" % i, password=password) for i in range(${count})])
users = list(User.objects.filter(username__startswith="u").order_by("id"))
tokens = [Token(user=u, key=Token.generate_key()) for u in users[0::3]]
Token.objects.bulk_create(tokens)
sessions = []
for u in users[1::3]:
    data = {"_auth_user_id": str(u.pk), "_auth_user_backend": "django.contrib.auth.backends.ModelBackend", "_auth_user_hash": u.get_session_auth_hash()}
    sessions.append(Session(session_key=get_random_string(32, VALID_KEY_CHARS), session_data=SessionStore().encode(data), expire_date=timezone.now() + datetime.timedelta(days=1)))
Session.objects.bulk_create(sessions)
jwts = [str(AccessToken.for_user(u)) for u in users[2::3]]
print(json.dumps({"tokens": [t.key for t in tokens], "sessions": [s.session_key for s in sessions], "jwts": jwts}))
`;

interface Live {
  readonly user: User;
  readonly auth: AuthInfo;
}

async function measure(kind: DjangoDatabaseKind): Promise<void> {
  const project = await createDjangoProject({ database: kind });
  try {
    const made = JSON.parse(await project.shell(MAKE(sockets))) as {
      tokens: string[];
      sessions: string[];
      jwts: string[];
    };
    const { db } = await openReadOnlyDjangoDatabase(project.databaseUrl);
    try {
      const session = djangoSessionAuthenticator({ db, secretKey: project.secretKey });
      const jwt = simpleJwtAuthenticator({ signingKey: project.secretKey, db });
      const drf = drfTokenAuthenticator({ db });
      const live: Live[] = [];
      const accept = async (
        authenticator: Authenticator,
        credential: string,
        cookie?: string,
      ): Promise<void> => {
        const context =
          cookie === undefined
            ? { transport: 'header' as const }
            : { transport: 'cookie' as const, cookie };
        const result = await authenticator.authenticate(credential, context);
        if (result === undefined) throw new Error('not accepted');
        live.push({
          user: result.user,
          auth: {
            method: context.transport,
            authenticator: authenticator.name,
            credentialId: result.credentialId,
            expiresAt: result.expiresAt,
          },
        });
      };
      for (const key of made.tokens) await accept(drf, key);
      for (const key of made.sessions) await accept(session, key, 'sessionid');
      for (const token of made.jwts) await accept(jwt, token);

      const revalidate = djangoRevalidator({ authenticators: [session, jwt, drf] });
      const times: number[] = [];
      let queries = 0;
      for (let round = 0; round < ROUNDS; round += 1) {
        const started = performance.now();
        const result = await revalidate(live);
        times.push(performance.now() - started);
        queries = result.queries;
        if (result.revoked.length !== 0) throw new Error(`${result.revoked.length} revoked`);
      }
      times.sort((a, b) => a - b);
      // One of each ended in Django: the next check finds exactly those.
      await project.shell(`
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from django.contrib.sessions.models import Session
Token.objects.filter(key=${JSON.stringify(made.tokens[0])}).delete()
Session.objects.filter(session_key=${JSON.stringify(made.sessions[0])}).delete()
User.objects.filter(pk=${live[live.length - 1]!.user.id}).update(is_active=False)
`);
      const after = await revalidate(live);
      console.log(
        `${kind}: ${live.length} live sockets, ${queries} queries per check; ` +
          `median ${times[ROUNDS >> 1]!.toFixed(1)} ms, min ${times[0]!.toFixed(1)} ms, ` +
          `max ${times[ROUNDS - 1]!.toFixed(1)} ms; after ending 3 credentials: ${after.revoked.length} revoked`,
      );
    } finally {
      await db.destroy();
    }
  } finally {
    await project.close();
  }
}

for (const kind of ['sqlite', 'postgres'] as const) await measure(kind);
