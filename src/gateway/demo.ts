/**
 * The demo data `npm start` seeds into a new database.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { Store } from '../store/store.js';

function password(): string {
  return randomBytes(12).toString('base64url');
}

/**
 * When the database has no users yet: creates `alice` (staff) and `bob`, a public and a
 * staff-only room, and prints the generated passwords once. Does nothing otherwise.
 */
export async function seedDemo(store: Store, announce: (line: string) => void): Promise<boolean> {
  if ((await store.getUserByUsername('alice')) !== undefined) return false;
  const users = [
    { username: 'alice', isStaff: true, password: password() },
    { username: 'bob', isStaff: false, password: password() },
  ];
  for (const user of users) await store.createUser(user);
  await store.createRoom({ title: 'Lobby', staffOnly: false });
  await store.createRoom({ title: 'Staff room', staffOnly: true });
  announce('Demo data created (shown once):');
  for (const user of users) {
    announce(`  ${user.username}${user.isStaff ? ' (staff)' : ''}  password: ${user.password}`);
  }
  announce('  rooms: "Lobby" (public), "Staff room" (staff only)');
  return true;
}
