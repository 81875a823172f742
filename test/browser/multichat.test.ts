/**
 * The MultiChat page at `/` in Chromium against the real gateway (issue 4, item 6): two
 * users chat, the staff-only room refuses a non-staff user, message text stays text,
 * logging out closes the page's socket for good, a cross-origin page cannot use the
 * cookie, and a restarted gateway gets the page back with its rooms.
 *
 * Runs against `dist/` (the page is served from there): `npm run build` first.
 * Screenshots of every page after every test go to `test-results/browser/`.
 *
 * The tests share two logged-in pages and run in order, as one user story.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type {
  Browser,
  BrowserContext,
  Locator,
  Page,
  WebSocket as PageWebSocket,
} from 'playwright-core';
import { CloseCode, CloseReason } from '../../src/protocol/close-codes.js';
import type { GatewayConfig } from '../../src/gateway/config.js';
import type { Gateway } from '../../src/gateway/server.js';
import {
  browserSuiteOptions,
  closeBrowser,
  launchBrowser,
  screenshot,
  watchPage,
  withTimeout,
} from '../helpers/browser.js';
import type { PageProblems } from '../helpers/browser.js';

const WAIT = 10_000; // 10 s for anything the page does
const PASSWORDS = { alice: 'alice-correct-horse', sam: 'sam-battery-staple' } as const;
type Username = keyof typeof PASSWORDS;

/**
 * The gateway under test is the built one: it serves the page and the SDK from the
 * `dist/` folder next to its own module, so the compiled page is what runs in Chromium.
 */
const DIST = new URL('../../dist/', import.meta.url);

async function loadBuiltGateway(): Promise<{
  loadConfig: typeof import('../../src/gateway/config.js').loadConfig;
  startGateway: typeof import('../../src/gateway/server.js').startGateway;
}> {
  for (const file of [
    'gateway/server.js',
    'gateway/apps/multichat/page/app.js',
    'client/index.js',
  ]) {
    if (!existsSync(fileURLToPath(new URL(file, DIST)))) {
      throw new Error(`dist/${file} is missing: run \`npm run build\` before the browser tests`);
    }
  }
  const config = (await import(
    new URL('gateway/config.js', DIST).href
  )) as typeof import('../../src/gateway/config.js');
  const server = (await import(
    new URL('gateway/server.js', DIST).href
  )) as typeof import('../../src/gateway/server.js');
  return { loadConfig: config.loadConfig, startGateway: server.startGateway };
}

interface Session {
  readonly context: BrowserContext;
  readonly page: Page;
  readonly problems: PageProblems;
  /** Every WebSocket the page opened, oldest first. */
  readonly sockets: PageWebSocket[];
}

describe('MultiChat page in Chromium', browserSuiteOptions(), () => {
  let dir: string | undefined;
  let startGateway: Awaited<ReturnType<typeof loadBuiltGateway>>['startGateway'];
  let config: GatewayConfig;
  let gateway: Gateway;
  let browser: Browser | undefined;
  let lobby: string;
  let staff: string;
  const sessions = new Map<Username, Session>();
  let cleanups: (() => Promise<void>)[] = [];

  function session(name: Username): Session {
    const found = sessions.get(name);
    assert.ok(found, `${name} has no page: an earlier test failed`);
    return found;
  }

  async function openSession(name: Username): Promise<Session> {
    assert.ok(browser);
    const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
    context.setDefaultTimeout(WAIT);
    context.setDefaultNavigationTimeout(WAIT);
    const page = await context.newPage();
    const problems = watchPage(page);
    const sockets: PageWebSocket[] = [];
    page.on('websocket', (socket) => sockets.push(socket));
    const opened = { context, page, problems, sockets };
    sessions.set(name, opened);
    await page.goto(`${gateway.url}/`);
    // app.js enables the login button once it and the SDK modules have loaded.
    const ready = await page
      .locator('#login:enabled')
      .waitFor()
      .then(() => true)
      .catch(() => false);
    assert.ok(
      ready,
      `the page's script did not start; failed requests: ${
        problems.failedRequests.join(', ') || 'none'
      } (the gateway serves dist/client at /client/ and dist/protocol at /protocol/)`,
    );
    return opened;
  }

  async function logIn(page: Page, username: string, password: string): Promise<void> {
    await page.fill('#username', username);
    await page.fill('#password', password);
    await page.click('#login');
  }

  async function joinRoom(page: Page, room: string): Promise<void> {
    await page.click(`button[data-room-id="${room}"]`);
    await page.locator(`button[data-room-id="${room}"][data-membership="in"]`).waitFor();
  }

  async function say(page: Page, room: string, message: string): Promise<void> {
    await page.selectOption('#room-select', room);
    await page.fill('#message', message);
    await page.click('#send');
  }

  /** The log entry of `author`'s `message` in `room`, matched exactly. */
  function entry(page: Page, room: string, author: string, message: string): Locator {
    return page
      .locator(`#log li[data-kind="message"][data-room="${room}"][data-author="${author}"]`)
      .filter({ has: page.getByText(message, { exact: true }) });
  }

  /** The gateway's open-connection gauge, read from `/metrics`. */
  async function openConnections(): Promise<number> {
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    const match = /^portcullis_connections(?:\{[^}]*\})? (\d+)/m.exec(text);
    assert.ok(match?.[1] !== undefined, 'portcullis_connections is missing from /metrics');
    return Number(match[1]);
  }

  async function waitForConnections(expected: number): Promise<void> {
    const deadline = Date.now() + WAIT;
    let seen = await openConnections();
    while (seen !== expected && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      seen = await openConnections();
    }
    assert.equal(seen, expected, 'open WebSocket connections on the gateway');
  }

  before(async () => {
    const built = await loadBuiltGateway();
    startGateway = built.startGateway;
    dir = await mkdtemp(join(tmpdir(), 'portcullis-browser-'));
    config = built.loadConfig({
      env: { DATABASE_URL: `sqlite:${join(dir, 'chat.db')}`, LOG_LEVEL: 'silent' },
      flags: { port: 0, host: '127.0.0.1' },
    });
    gateway = await startGateway(config, { logger: pino({ level: 'silent' }) });
    await gateway.accounts.createUser({ username: 'alice', password: PASSWORDS.alice });
    await gateway.accounts.createUser({ username: 'sam', password: PASSWORDS.sam, isStaff: true });
    lobby = await gateway.store.createRoom({ title: 'Lobby' });
    staff = await gateway.store.createRoom({ title: 'Staff', staffOnly: true });
    browser = await launchBrowser();
  });

  afterEach(async (t) => {
    for (const [name, { page }] of sessions) {
      if (!page.isClosed()) await screenshot(page, `multichat-${t.name}-${name}`);
    }
    const pending = cleanups;
    cleanups = [];
    for (const cleanup of pending.reverse()) await cleanup();
  });

  after(async () => {
    for (const { context } of sessions.values()) {
      await withTimeout(context.close(), WAIT, 'closing a browser context').catch(() => {});
    }
    await closeBrowser(browser);
    await gateway?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('shows a failed login inline, then who is logged in, and connects with a ticket', async () => {
    const alice = await openSession('alice');
    await logIn(alice.page, 'alice', 'wrong password');
    await alice.page.locator('#login-error:not(:empty)').waitFor();
    assert.match((await alice.page.textContent('#login-error')) ?? '', /unable to log in/i);
    assert.equal(await alice.page.isHidden('#session-section'), true);

    await logIn(alice.page, 'alice', PASSWORDS.alice);
    await alice.page.locator('#state[data-state="open"]').waitFor();
    assert.equal(await alice.page.textContent('#whoami'), 'alice');
    assert.equal(await alice.page.isHidden('#staff-badge'), true);

    const sam = await openSession('sam');
    await logIn(sam.page, 'sam', PASSWORDS.sam);
    await sam.page.locator('#state[data-state="open"]').waitFor();
    assert.equal(await sam.page.textContent('#whoami'), 'sam');
    assert.equal(await sam.page.isVisible('#staff-badge'), true);

    // SPEC §3: the REST token never travels in a WebSocket URL; a single-use ticket does.
    for (const { sockets } of [alice, sam]) {
      assert.equal(sockets.length, 1);
      const url = new URL(sockets[0]?.url() ?? '');
      assert.equal(url.pathname, '/ws/chat/');
      assert.match(url.searchParams.get('ticket') ?? '', /^pct_/);
      assert.doesNotMatch(url.href, /pcu_/);
    }
  });

  it('lets two users chat in the Lobby, each seeing the other live', async () => {
    const alice = session('alice');
    const sam = session('sam');
    await joinRoom(sam.page, lobby);
    await joinRoom(alice.page, lobby);
    // The joiner gets no enter notice of its own; the others do (SPEC §7).
    await sam.page
      .locator(`#log li[data-kind="enter"][data-room="${lobby}"]`, { hasText: 'alice' })
      .waitFor();

    await say(alice.page, lobby, 'hello from alice');
    await entry(sam.page, lobby, 'alice', 'hello from alice').waitFor();
    await entry(alice.page, lobby, 'alice', 'hello from alice').waitFor();

    await say(sam.page, lobby, 'hi alice, sam here');
    await entry(alice.page, lobby, 'sam', 'hi alice, sam here').waitFor();
    assert.equal(await alice.page.inputValue('#message'), '');
  });

  it('refuses the staff-only room to a non-staff user and lets staff in', async () => {
    const alice = session('alice');
    const sam = session('sam');
    // GET /api/rooms lists only rooms the caller may join.
    assert.equal(await alice.page.locator(`button[data-room-id="${staff}"]`).count(), 0);
    assert.equal(await sam.page.locator(`button[data-room-id="${staff}"]`).count(), 1);

    // A stale room list (the room became staff-only after the page loaded it): the page
    // sends the join and the server refuses it in-band (SPEC §7).
    await alice.page.evaluate(`(() => {
      const button = document.createElement('button');
      button.type = 'button';
      button.dataset.roomId = ${JSON.stringify(staff)};
      button.textContent = 'Join';
      document.getElementById('rooms').append(button);
    })()`);
    await alice.page.click(`button[data-room-id="${staff}"]`);
    await alice.page.locator('#chat-error', { hasText: 'ROOM_ACCESS_DENIED' }).waitFor();
    await alice.page
      .locator('#log li[data-kind="error"]', { hasText: 'ROOM_ACCESS_DENIED' })
      .waitFor();
    assert.equal(await alice.page.locator(`#room-select option[value="${staff}"]`).count(), 0);
    assert.equal(await alice.page.getAttribute('#state', 'data-state'), 'open');

    await joinRoom(sam.page, staff);
    await say(sam.page, staff, 'staff only: coffee is ready');
    await entry(sam.page, staff, 'sam', 'staff only: coffee is ready').waitFor();
  });

  it('shows message text as text, never as HTML', async () => {
    const alice = session('alice');
    const sam = session('sam');
    const payload = '<img src=x onerror=alert(1)>';
    await say(alice.page, lobby, payload);
    for (const { page, problems } of [alice, sam]) {
      const shown = entry(page, lobby, 'alice', payload);
      await shown.waitFor();
      assert.equal(await shown.locator('.text').textContent(), payload);
      assert.equal(await page.locator('#log img').count(), 0);
      assert.deepEqual(problems.dialogs, []);
    }
  });

  it('joins and leaves several rooms at once and sends to the chosen one', async () => {
    const alice = session('alice');
    const sam = session('sam');
    assert.deepEqual(await sam.page.$$eval('#room-select option', optionValues), [lobby, staff]);

    await say(sam.page, staff, 'for staff eyes');
    await say(sam.page, lobby, 'for everyone');
    await entry(alice.page, lobby, 'sam', 'for everyone').waitFor();
    await entry(sam.page, staff, 'sam', 'for staff eyes').waitFor();
    assert.equal(await entry(alice.page, staff, 'sam', 'for staff eyes').count(), 0);

    // By keyboard: the button keeps focus while its label goes Leave → Leaving… → Join.
    await sam.page.focus(`button[data-room-id="${staff}"]`);
    await sam.page.keyboard.press('Enter');
    await sam.page.locator(`button[data-room-id="${staff}"][data-membership="out"]`).waitFor();
    assert.equal(await sam.page.evaluate('document.activeElement.dataset.roomId'), staff);
    assert.deepEqual(await sam.page.$$eval('#room-select option', optionValues), [lobby]);
  });

  it('logs out: the server closes the socket 4401 and the page does not reconnect', async () => {
    const alice = session('alice');
    await waitForConnections(2);
    const socket = alice.sockets.at(-1);
    assert.ok(socket);
    const socketClosed = socket.waitForEvent('close', { timeout: WAIT });

    await alice.page.click('#logout');
    await socketClosed;
    await alice.page.locator('#state[data-state="closed"]').waitFor();
    assert.equal(
      await alice.page.getAttribute('#state', 'data-close-code'),
      String(CloseCode.Unauthorized),
    );
    assert.equal(
      await alice.page.getAttribute('#state', 'data-close-reason'),
      CloseReason.TokenRevoked,
    );
    assert.match((await alice.page.textContent('#state')) ?? '', /closed.*4401 token revoked/);
    await alice.page.locator('body[data-session="out"] #login-form').waitFor();
    assert.equal(await alice.page.textContent('#login-notice'), 'You have logged out.');
    assert.equal(await alice.page.isHidden('#session-section'), true);
    assert.equal(await alice.page.evaluate('sessionStorage.length'), 0);
    await waitForConnections(1);

    // The page reconnects after at most 2 * minDelay (2 s) when it means to: give it longer.
    const reopened = await alice.page
      .waitForEvent('websocket', { timeout: 2_500 })
      .then(() => true)
      .catch(() => false);
    assert.equal(reopened, false, 'the page opened a new WebSocket after logging out');
    assert.equal(await alice.page.getAttribute('#state', 'data-state'), 'closed');
    assert.equal(await openConnections(), 1);
  });

  it('refuses a cookie-authenticated socket from another origin (4403)', async () => {
    const alice = session('alice');
    const user = await gateway.store.getUserByUsername('alice');
    assert.ok(user);
    const { token } = await gateway.accounts.createToken(user.id, { name: 'browser test cookie' });
    await alice.context.addCookies([{ name: 'key', value: token, url: gateway.url }]);
    const chatUrl = `${gateway.url.replace(/^http/, 'ws')}/ws/chat/`;
    const probe = `
      window.probe = new Promise((resolve) => {
        const socket = new WebSocket(${JSON.stringify(chatUrl)});
        let opened = false;
        socket.onopen = () => {
          opened = true;
          // A refusal closes right after the open; still open later means let in.
          setTimeout(() => { resolve({ code: null, reason: 'still open', opened }); socket.close(); }, 500);
        };
        socket.onclose = (event) => resolve({ code: event.code, reason: event.reason, opened });
      });`;

    const other: Server = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(`<!doctype html><title>elsewhere</title><script>${probe}</script>`);
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => other.close(() => resolve())));
    const address = other.address();
    assert.ok(typeof address === 'object' && address !== null);

    const page = await alice.context.newPage();
    cleanups.push(() => page.close());
    await page.goto(`http://127.0.0.1:${address.port}/`);
    const result = await withTimeout(page.evaluate('window.probe'), WAIT, 'the cross-origin probe');
    await screenshot(page, 'multichat-cross-origin');
    // 4403, not 4401 `authentication required`: the cookie reached the gateway and was
    // recognised, and the Origin rule refused it (SPEC §3).
    assert.deepEqual(result, {
      code: CloseCode.Forbidden,
      reason: CloseReason.OriginNotAllowed,
      opened: true,
    });

    // The control: the same cookie from the gateway's own origin is let in.
    const own = await withTimeout(
      alice.page.evaluate(`${probe}; window.probe`),
      WAIT,
      'the same-origin probe',
    );
    assert.deepEqual(own, { code: null, reason: 'still open', opened: true });
  });

  it('reconnects after the gateway restarts and joins its rooms again', async () => {
    const sam = session('sam');
    const before = sam.sockets.length;
    const port = gateway.port;
    const reconnecting = sam.page.locator('#state[data-state="reconnecting"]').waitFor();
    await gateway.close();
    await reconnecting;
    // Same database file, same port: the page's token is still valid.
    gateway = await startGateway({ ...config, port }, { logger: pino({ level: 'silent' }) });

    await sam.page.locator('#state[data-state="open"]').waitFor({ timeout: 20_000 });
    await sam.page.locator(`button[data-room-id="${lobby}"][data-membership="in"]`).waitFor();
    assert.ok(sam.sockets.length > before);
    await sam.page
      .locator('#log li[data-kind="system"]', { hasText: 'Connection lost (1001 going away)' })
      .waitFor();
    await sam.page.locator('#log li[data-kind="system"]', { hasText: 'Reconnected.' }).waitFor();
    await say(sam.page, lobby, 'back after the restart');
    await entry(sam.page, lobby, 'sam', 'back after the restart').waitFor();
  });

  it('ran without page errors or CSP violations', () => {
    for (const [name, { problems }] of sessions) {
      assert.deepEqual(problems.errors, [], `${name}: uncaught errors in the page`);
      assert.deepEqual(problems.cspViolations, [], `${name}: CSP violations`);
      assert.deepEqual(problems.dialogs, [], `${name}: dialogs`);
    }
  });
});

function optionValues(options: Element[]): string[] {
  return options.map((option) => option.getAttribute('value') ?? '');
}
