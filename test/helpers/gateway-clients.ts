// Clients of real gateway processes (see processes.ts): log in over REST, open MultiChat
// sockets, read frames until the one a test waits for.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Accounts } from '../../src/auth/accounts.js';
import { openStore } from '../../src/store/index.js';
import { connectClient } from '../../src/testing/client.js';
import type { TestClient } from '../../src/testing/client.js';
import type { GatewayProcess } from './processes.js';

const run = promisify(execFile);

/** Every seeded user's password: `<name>-password-1`. */
export function passwordOf(username: string): string {
  return `${username}-password-1`;
}

/**
 * Migrates a database with `portcullis migrate` (a process of its own, as a deployment
 * would), then creates `usernames` (in that order, so ids are 1, 2, …) and one room;
 * returns the room's id.
 */
export async function seedChat(databaseUrl: string, usernames: readonly string[]): Promise<string> {
  await run(process.execPath, ['bin/portcullis.js', 'migrate'], {
    env: { ...process.env, DATABASE_URL: databaseUrl },
    timeout: 30_000,
  });
  const store = openStore(databaseUrl);
  try {
    const accounts = new Accounts(store);
    for (const username of usernames) {
      await accounts.createUser({ username, password: passwordOf(username) });
    }
    return await store.createRoom({ title: 'Lobby' });
  } finally {
    await store.close();
  }
}

/** A token for `username` from `POST /api/auth/token`. */
export async function login(gateway: GatewayProcess, username: string): Promise<string> {
  const response = await fetch(`${gateway.url}/api/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: passwordOf(username) }),
  });
  assert.equal(response.status, 200, `login ${username}`);
  return ((await response.json()) as { token: string }).token;
}

/** A MultiChat socket authenticated with `token`. */
export function chat(gateway: GatewayProcess, token: string): Promise<TestClient> {
  return connectClient(`${gateway.url.replace('http', 'ws')}/ws/chat/`, {
    headers: { Authorization: `Token ${token}` },
  });
}

/** Reads frames until one matches, skipping the others; bounded by the client's timeout. */
export async function receiveMatching(
  client: TestClient,
  match: (frame: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>> {
  for (let skipped = 0; skipped < 500; skipped += 1) {
    const frame = (await client.receiveJson(5_000)) as Record<string, unknown>;
    if (match(frame)) return frame;
  }
  throw new Error('no matching frame');
}

/** Joins `room` and waits for the join reply. */
export async function joinRoom(client: TestClient, room: string): Promise<void> {
  client.sendJson({ command: 'join', room });
  await receiveMatching(client, (frame) => frame['join'] === room);
}
