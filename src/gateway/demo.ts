/**
 * The demo data `npm start` seeds into a new database.
 *
 * @module
 */
import { Accounts } from '../auth/accounts.js';
import { UsernameTakenError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { generatePassword } from './commands/passwords.js';

/** How to sign in to demo data seeded earlier, whose passwords were shown only then. */
const NEW_PASSWORD_HINT =
  'Demo users alice and bob exist already; their passwords were shown when they were created. New one: npx portcullis user password alice';

/**
 * When the database has no users yet: creates `alice` (staff) and `bob`, a public and a
 * staff-only room, and prints the generated passwords once. Otherwise says how to set a
 * new password.
 *
 * @returns whether it seeded.
 */
export async function seedDemo(store: Store, announce: (line: string) => void): Promise<boolean> {
  if ((await store.getUserByUsername('alice')) !== undefined) {
    announce(NEW_PASSWORD_HINT);
    return false;
  }
  const accounts = new Accounts(store);
  const users = [
    { username: 'alice', isStaff: true, password: generatePassword() },
    { username: 'bob', isStaff: false, password: generatePassword() },
  ];
  try {
    for (const user of users) await accounts.createUser(user);
  } catch (error) {
    // Another gateway seeds the same database at this moment (two `npm start` at once):
    // its passwords are the ones that count, and what fails next is the port, if shared.
    if (error instanceof UsernameTakenError) {
      announce(NEW_PASSWORD_HINT);
      return false;
    }
    throw error;
  }
  await store.createRoom({ title: 'Lobby', staffOnly: false });
  await store.createRoom({ title: 'Staff room', staffOnly: true });
  announce('Demo data created (shown once):');
  for (const user of users) {
    announce(`  ${user.username}${user.isStaff ? ' (staff)' : ''}  password: ${user.password}`);
  }
  announce('  rooms: "Lobby" (public), "Staff room" (staff only)');
  return true;
}
