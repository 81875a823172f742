// A real Django project for the Django mode tests: examples/django-multichat copied to a
// temp dir, migrated on SQLite or on a PostgreSQL schema of its own, its dev server
// (`manage.py runserver`) for Django's own login, token and JWT views, and a long-lived
// agent process (test/fixtures/django_agent.py) that does inside Django what an operator
// or the app's code does. Debian's python3 runs it: /usr/bin/python3, not a PATH shim.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { freePort, stopProcess } from './processes.js';
import { createPostgresSchema, isCI, serviceUrl } from './services.js';

export const PYTHON = '/usr/bin/python3';
const EXAMPLE = resolve('examples/django-multichat');
const AGENT = resolve('test/fixtures/django_agent.py');
const PACKAGES = [
  'django',
  'rest_framework',
  'rest_framework_simplejwt',
  'channels',
  'channels_redis',
  'psycopg2',
];

let available: boolean | undefined;

/** Whether Debian's Django packages (and psycopg2) are importable. */
export function djangoAvailable(): boolean {
  available ??=
    spawnSync(PYTHON, ['-c', `import ${PACKAGES.join(', ')}`], { stdio: 'ignore' }).status === 0;
  return available;
}

/** `describe` options: skipped locally without Django; with CI=true a missing Django fails. */
export function djangoSuiteOptions(): { skip: string | false } {
  if (djangoAvailable() || isCI()) return { skip: false };
  return { skip: `Django is not installed (apt-get install python3-django ...; see .ci/run)` };
}

export type DjangoDatabaseKind = 'sqlite' | 'postgres';

export interface DjangoProjectOptions {
  readonly database: DjangoDatabaseKind;
  /** Where the page's socket goes (MULTICHAT_PORTCULLIS_WS_URL). */
  readonly portcullisWsUrl?: string;
  /** `SESSION_ENGINE`. @default the db backend */
  readonly sessionEngine?: string;
}

export interface Credentials {
  readonly sessionid: string;
}

/** A migrated Django project with its agent and dev server running. */
export interface DjangoProject {
  readonly dir: string;
  /** For `DJANGO_DATABASE_URL`: the same database the project uses. */
  readonly databaseUrl: string;
  readonly secretKey: string;
  /** `CHANNEL_LAYERS` prefix, unique to this project. */
  readonly channelsPrefix: string;
  readonly redisUrl: string;
  /** `http://127.0.0.1:PORT` of `manage.py runserver`. */
  readonly url: string;
  /** Runs one agent operation (see django_agent.py) and resolves with its result. */
  agent<T = unknown>(op: string, args?: Record<string, unknown>): Promise<T>;
  /** Runs `manage.py shell -c CODE` and resolves with its stdout. */
  shell(code: string): Promise<string>;
  /** Logs in through Django's LoginView and returns the `sessionid` cookie. */
  login(username: string, password: string): Promise<string>;
  /** POST to a DRF/SimpleJWT view with JSON; resolves with status and body. */
  postJson(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

function pythonEnv(project: string, vars: Record<string, string>): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONUNBUFFERED: '1',
    PYTHONPATH: project,
    DJANGO_SETTINGS_MODULE: 'multichat.settings',
    ...vars,
  };
}

async function run(
  command: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<string> {
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let errors = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`${args.join(' ')} exited ${code}:\n${errors || output}`);
  return output;
}

/** The cookie value `name` from a response's Set-Cookie headers. */
export function setCookie(response: Response, name: string): string | undefined {
  for (const header of response.headers.getSetCookie()) {
    const [pair = ''] = header.split(';');
    const eq = pair.indexOf('=');
    if (pair.slice(0, eq).trim() === name) return pair.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * Creates, migrates and starts a Django project. Everything it makes (the temp dir, the
 * PostgreSQL schema, the Redis keys under its channels prefix) goes away on `close()`.
 */
export async function createDjangoProject(options: DjangoProjectOptions): Promise<DjangoProject> {
  const root = await mkdtemp(join(tmpdir(), 'portcullis-django-'));
  const dir = join(root, 'project');
  await cp(EXAMPLE, dir, { recursive: true });
  const secretKey = `django-insecure-${randomBytes(30).toString('base64url')}`;
  const channelsPrefix = `pcutest${randomBytes(5).toString('hex')}`;
  const redisUrl = await serviceUrl('redis');
  let databaseUrl: string;
  let dropSchema: (() => Promise<void>) | undefined;
  if (options.database === 'sqlite') {
    databaseUrl = `sqlite:${join(root, 'db.sqlite3')}`;
  } else {
    const schema = await createPostgresSchema(await serviceUrl('postgres'));
    databaseUrl = schema.url;
    dropSchema = () => schema.drop();
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = pythonEnv(dir, {
    MULTICHAT_SECRET_KEY: secretKey,
    MULTICHAT_DATABASE_URL: databaseUrl,
    MULTICHAT_REDIS_URL: redisUrl,
    MULTICHAT_CHANNELS_PREFIX: channelsPrefix,
    MULTICHAT_PORTCULLIS_WS_URL: options.portcullisWsUrl ?? 'ws://127.0.0.1:1/ws/chat/',
    ...(options.sessionEngine === undefined
      ? {}
      : { MULTICHAT_SESSION_ENGINE: options.sessionEngine }),
  });

  const children: ChildProcess[] = [];
  const cleanup = async (): Promise<void> => {
    for (const child of children) await stopProcess(child, 'SIGTERM').catch(() => undefined);
    await dropSchema?.().catch(() => undefined);
    await deleteKeys(redisUrl, channelsPrefix);
    await rm(root, { recursive: true, force: true });
  };
  try {
    await run(PYTHON, ['manage.py', 'migrate', '--noinput'], dir, env);

    const agentProcess = spawn(PYTHON, [AGENT], { cwd: dir, env, stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(agentProcess);
    let agentErrors = '';
    agentProcess.stderr!.on('data', (chunk: Buffer) => (agentErrors += chunk.toString()));
    const pending = new Map<
      number,
      { resolve(value: unknown): void; reject(error: Error): void }
    >();
    createInterface({ input: agentProcess.stdout! }).on('line', (line) => {
      const reply = JSON.parse(line) as {
        id: number;
        ok: boolean;
        result?: unknown;
        error?: string;
      };
      const waiter = pending.get(reply.id);
      pending.delete(reply.id);
      if (reply.ok) waiter?.resolve(reply.result);
      else waiter?.reject(new Error(`django agent: ${reply.error}`));
    });
    agentProcess.once('exit', (code) => {
      for (const waiter of pending.values()) {
        waiter.reject(new Error(`django agent exited ${code}:\n${agentErrors}`));
      }
      pending.clear();
    });
    let nextId = 0;
    const agent = <T>(op: string, args: Record<string, unknown> = {}): Promise<T> =>
      new Promise<T>((resolveReply, reject) => {
        const id = ++nextId;
        pending.set(id, { resolve: (value) => resolveReply(value as T), reject });
        agentProcess.stdin!.write(`${JSON.stringify({ ...args, id, op })}\n`);
      });

    const server = spawn(PYTHON, ['manage.py', 'runserver', '--noreload', `127.0.0.1:${port}`], {
      cwd: dir,
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(server);
    let serverErrors = '';
    server.stderr!.on('data', (chunk: Buffer) => (serverErrors += chunk.toString()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      const up = await fetch(`${url}/accounts/login/`).then(
        (response) => response.ok,
        () => false,
      );
      if (up) break;
      if (server.exitCode !== null || Date.now() > deadline) {
        throw new Error(`manage.py runserver did not start:\n${serverErrors}`);
      }
      await new Promise((wake) => setTimeout(wake, 100));
    }

    return {
      dir,
      databaseUrl,
      secretKey,
      channelsPrefix,
      redisUrl,
      url,
      agent,
      shell: (code) => run(PYTHON, ['manage.py', 'shell', '-c', code], dir, env),
      async login(username, password) {
        const page = await fetch(`${url}/accounts/login/`);
        const csrf = setCookie(page, 'csrftoken');
        const token = /name="csrfmiddlewaretoken" value="([^"]+)"/.exec(await page.text())?.[1];
        if (csrf === undefined || token === undefined) throw new Error('login page without CSRF');
        const response = await fetch(`${url}/accounts/login/`, {
          method: 'POST',
          redirect: 'manual',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            cookie: `csrftoken=${csrf}`,
          },
          body: new URLSearchParams({ username, password, csrfmiddlewaretoken: token }).toString(),
        });
        const sessionid = setCookie(response, 'sessionid');
        if (response.status !== 302 || sessionid === undefined) {
          throw new Error(`login as ${username} failed: HTTP ${response.status}`);
        }
        return sessionid;
      },
      async postJson(path, body) {
        const response = await fetch(`${url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        return {
          status: response.status,
          body: (await response.json()) as Record<string, unknown>,
        };
      },
      close: cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** Deletes the keys under a channels prefix (never FLUSHDB: Redis is shared). */
async function deleteKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } catch {
    // Best effort: the keys expire on their own (60 s for queues, a day for groups).
  } finally {
    redis.disconnect();
  }
}
