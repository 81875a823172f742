/**
 * The MultiChat web page served at `/` (SPEC §6, §7): log in over REST, connect to
 * `/ws/chat/` with a single-use ticket, join several rooms, chat, log out.
 *
 * Message text, usernames and room titles are data: they only ever reach the DOM
 * through `textContent` and attributes, never as HTML.
 *
 * The SDK is imported by its path in `dist/`. From `/app.js` the browser resolves it to
 * `/client/index.js` (URL resolution stops at the root), so the gateway serves
 * `dist/client/` at `/client/` and `dist/protocol/` at `/protocol/`.
 *
 * @module
 */
import {
  CloseCode,
  HttpError,
  UnauthorizedError,
  createClient,
  createRestClient,
  ticketCredential,
} from '../../../../client/index.js';
import type {
  ClientCloseEvent,
  JsonObject,
  PortcullisClient,
  RoomInfo,
} from '../../../../client/index.js';

/** sessionStorage key of the REST token: per tab, gone when the tab closes. */
const TOKEN_KEY = 'portcullis.token';
/** The log keeps this many entries; older ones are dropped. */
const LOG_LIMIT = 500;
/** How long logout waits for the server's 4401 `token revoked` before closing locally. */
const LOGOUT_CLOSE_WAIT = 2_000; // 2 s

/** Room traffic types of the channels-examples MultiChat protocol (SPEC §7). */
const MsgType = { Message: 0, Warning: 1, Alert: 2, Muted: 3, Enter: 4, Leave: 5 } as const;

/** In-band errors (SPEC §7), worded for people; the code is shown too. */
const ERROR_TEXT: Readonly<Record<string, string>> = {
  ROOM_ACCESS_DENIED: 'access denied',
  ROOM_INVALID: 'no such room',
  USER_HAS_TO_LOGIN: 'log in first',
  UNKNOWN_COMMAND: 'the server did not understand the command',
};

type Membership = 'out' | 'joining' | 'in' | 'leaving';
type LogKind = 'message' | 'enter' | 'leave' | 'notice' | 'error' | 'system';

interface Room {
  readonly id: string;
  title: string;
  readonly staffOnly: boolean;
}

function element<T extends HTMLElement>(id: string, type: { new (): T; prototype: T }): T {
  const found = document.getElementById(id);
  if (!(found instanceof type)) throw new Error(`MultiChat page: #${id} is missing`);
  return found;
}

const ui = {
  state: element('state', HTMLOutputElement),
  loginSection: element('login-section', HTMLElement),
  loginForm: element('login-form', HTMLFormElement),
  username: element('username', HTMLInputElement),
  password: element('password', HTMLInputElement),
  login: element('login', HTMLButtonElement),
  loginError: element('login-error', HTMLParagraphElement),
  loginNotice: element('login-notice', HTMLParagraphElement),
  sessionSection: element('session-section', HTMLElement),
  whoami: element('whoami', HTMLElement),
  staffBadge: element('staff-badge', HTMLSpanElement),
  logout: element('logout', HTMLButtonElement),
  reconnect: element('reconnect', HTMLButtonElement),
  rooms: element('rooms', HTMLUListElement),
  roomsEmpty: element('rooms-empty', HTMLParagraphElement),
  log: element('log', HTMLOListElement),
  sendForm: element('send-form', HTMLFormElement),
  roomSelect: element('room-select', HTMLSelectElement),
  message: element('message', HTMLInputElement),
  send: element('send', HTMLButtonElement),
  chatError: element('chat-error', HTMLParagraphElement),
};

const rest = createRestClient({ baseUrl: location.origin });

let token: string | null = sessionStorage.getItem(TOKEN_KEY);
let client: PortcullisClient | undefined;
let lastClose: ClientCloseEvent | undefined;
/** True from an `open` to the next `close`: tells a drop from a failed attempt. */
let opened = false;
let loggingOut = false;
/** The logged-in user's name. */
let me = '';
const rooms = new Map<string, Room>();
/** Rooms the user wants to be in: joined again after every reconnect. */
const wanted = new Set<string>();
/** Rooms the server confirmed on the current connection. */
const joined = new Set<string>();
/**
 * Joins and leaves awaiting their answer, oldest first. The server answers each with
 * `{join}`/`{leave}` or `{error}` in order, so an error belongs to the oldest one.
 */
let pending: { readonly command: 'join' | 'leave'; readonly room: string }[] = [];

function roomId(value: unknown): string | null {
  if (typeof value === 'number' && Number.isInteger(value)) return String(value);
  if (typeof value === 'string' && /^\d+$/.test(value)) return String(Number(value));
  return null;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function roomTitle(id: string): string {
  return rooms.get(id)?.title ?? `room ${id}`;
}

function membership(id: string): Membership {
  const waiting = pending.find((entry) => entry.room === id);
  if (waiting !== undefined) return waiting.command === 'join' ? 'joining' : 'leaving';
  if (joined.has(id)) return 'in';
  // Wanted but not joined: waiting for the connection to (re)open.
  return wanted.has(id) ? 'joining' : 'out';
}

// ---- rendering ---------------------------------------------------------------------

function span(className: string, content: string): HTMLSpanElement {
  const node = document.createElement('span');
  node.className = className;
  node.textContent = content;
  return node;
}

function renderState(): void {
  const state = client?.state ?? 'closed';
  const close = lastClose === undefined ? '' : `${lastClose.code} ${lastClose.reason}`.trim();
  let label: string;
  if (state === 'connecting') label = 'connecting…';
  else if (state === 'open') label = 'open';
  else if (state === 'reconnecting') {
    const delay = lastClose?.delay;
    const retry = delay === undefined ? '' : `; retrying in ${(delay / 1000).toFixed(1)} s`;
    label = `reconnecting (${close}${retry})`;
  } else label = close === '' ? 'closed' : `closed (${close})`;
  ui.state.textContent = label;
  ui.state.dataset['state'] = state;
  if (lastClose === undefined) {
    delete ui.state.dataset['closeCode'];
    delete ui.state.dataset['closeReason'];
  } else {
    ui.state.dataset['closeCode'] = String(lastClose.code);
    ui.state.dataset['closeReason'] = lastClose.reason;
  }
  ui.reconnect.hidden = client === undefined || state !== 'closed';
  renderComposer();
}

interface RoomRow {
  readonly item: HTMLLIElement;
  readonly title: HTMLSpanElement;
  readonly button: HTMLButtonElement;
}

/** The rendered rows, by room id: updated in place so a focused button keeps focus. */
const roomRows = new Map<string, RoomRow>();

function roomRow(room: Room): RoomRow {
  const item = document.createElement('li');
  const title = span('room-title', room.title);
  item.append(title);
  if (room.staffOnly) item.append(span('badge', 'staff only'));
  const button = document.createElement('button');
  button.type = 'button';
  button.dataset['roomId'] = room.id;
  item.append(button);
  return { item, title, button };
}

function renderRooms(): void {
  for (const [id, row] of roomRows) {
    if (rooms.has(id)) continue;
    row.item.remove();
    roomRows.delete(id);
  }
  for (const room of rooms.values()) {
    let row = roomRows.get(room.id);
    if (row === undefined) {
      row = roomRow(room);
      roomRows.set(room.id, row);
      ui.rooms.append(row.item);
    }
    const state = membership(room.id);
    const verb = { out: 'Join', joining: 'Joining…', in: 'Leave', leaving: 'Leaving…' }[state];
    row.title.textContent = room.title;
    row.button.dataset['membership'] = state;
    row.button.textContent = verb;
    row.button.setAttribute('aria-label', `${verb} ${room.title}`);
    // aria-disabled rather than disabled: a disabled button would drop keyboard focus.
    row.button.setAttribute('aria-disabled', String(state === 'leaving'));
  }
  ui.roomsEmpty.hidden = rooms.size > 0;
  renderComposer();
}

function renderComposer(): void {
  const previous = ui.roomSelect.value;
  const options = [...rooms.values()]
    .filter((room) => joined.has(room.id))
    .map((room) => new Option(room.title, room.id, false, room.id === previous));
  if (options.length === 0) {
    const placeholder = new Option('Join a room first', '');
    placeholder.disabled = true;
    options.push(placeholder);
  }
  ui.roomSelect.replaceChildren(...options);
  const canSend = client?.state === 'open' && joined.size > 0;
  ui.roomSelect.disabled = joined.size === 0;
  ui.message.disabled = !canSend;
  ui.send.disabled = !canSend;
}

function log(kind: LogKind, room: string | null, author: string | null, content: string): void {
  const nearBottom = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40;
  const item = document.createElement('li');
  item.className = `entry entry-${kind}`;
  item.dataset['kind'] = kind;
  if (room !== null) {
    item.dataset['room'] = room;
    item.append(span('room-label', roomTitle(room)));
  }
  if (author !== null) {
    item.dataset['author'] = author;
    item.append(span('author', author));
  }
  item.append(span('text', content));
  ui.log.append(item);
  while (ui.log.childElementCount > LOG_LIMIT) ui.log.firstElementChild?.remove();
  if (nearBottom) ui.log.scrollTop = ui.log.scrollHeight;
}

function showChatError(message: string): void {
  ui.chatError.textContent = message;
}

function showSession(username: string, isStaff: boolean): void {
  ui.whoami.textContent = username;
  ui.staffBadge.hidden = !isStaff;
  ui.loginSection.hidden = true;
  ui.sessionSection.hidden = false;
  document.body.dataset['session'] = 'in';
}

/** Shows the login form with a neutral `notice` or an `error`. */
function showLogin(message: { notice?: string; error?: string }): void {
  ui.sessionSection.hidden = true;
  ui.loginSection.hidden = false;
  ui.loginNotice.textContent = message.notice ?? '';
  ui.loginError.textContent = message.error ?? '';
  ui.login.disabled = false;
  ui.password.value = '';
  document.body.dataset['session'] = 'out';
}

// ---- the connection ----------------------------------------------------------------

function sendCommand(message: JsonObject): boolean {
  if (client?.state !== 'open') return false;
  client.send(message);
  return true;
}

function join(id: string): void {
  wanted.add(id);
  if (sendCommand({ command: 'join', room: id })) pending.push({ command: 'join', room: id });
  renderRooms();
}

function leave(id: string): void {
  wanted.delete(id);
  if (joined.has(id) && sendCommand({ command: 'leave', room: id })) {
    pending.push({ command: 'leave', room: id });
  }
  renderRooms();
}

function settle(command: 'join' | 'leave', id: string | null): void {
  const index = pending.findIndex((entry) => entry.command === command && entry.room === id);
  if (index >= 0) pending.splice(index, 1);
}

function onFrame(frame: JsonObject): void {
  if (typeof frame['error'] === 'string') {
    const code = frame['error'];
    const failed = pending.shift();
    const reason = `${ERROR_TEXT[code] ?? 'refused'} (${code})`;
    let message = `The server refused a command: ${reason}.`;
    if (failed !== undefined) {
      if (failed.command === 'join') wanted.delete(failed.room);
      message = `Could not ${failed.command} ${roomTitle(failed.room)}: ${reason}.`;
    }
    showChatError(message);
    log('error', failed?.room ?? null, null, message);
    renderRooms();
    return;
  }
  if ('join' in frame) {
    const id = roomId(frame['join']);
    settle('join', id);
    if (id === null) return;
    const title = text(frame['title']);
    const known = rooms.get(id);
    if (known === undefined) rooms.set(id, { id, title: title || `room ${id}`, staffOnly: false });
    else if (title !== '') known.title = title;
    joined.add(id);
    // A join the user withdrew while it was in flight.
    if (!wanted.has(id)) leave(id);
    log('system', id, null, `You joined ${roomTitle(id)}.`);
    renderRooms();
    if (wanted.has(id)) ui.roomSelect.value = id;
    return;
  }
  if ('leave' in frame) {
    const id = roomId(frame['leave']);
    settle('leave', id);
    if (id === null) return;
    joined.delete(id);
    if (wanted.has(id)) join(id);
    renderRooms();
    return;
  }
  const room = roomId(frame['room']);
  const username = text(frame['username']);
  switch (frame['msg_type']) {
    case MsgType.Message:
      log('message', room, username, text(frame['message']));
      return;
    case MsgType.Enter:
      log('enter', room, null, `${username} joined.`);
      return;
    case MsgType.Leave:
      // The leaver gets its own leave notice (SPEC §7).
      log(
        'leave',
        room,
        null,
        username === me ? `You left ${roomTitle(room ?? '')}.` : `${username} left.`,
      );
      return;
    case MsgType.Warning:
    case MsgType.Alert:
    case MsgType.Muted:
      log('notice', room, username || null, text(frame['message']));
      return;
    default:
      log('notice', null, null, 'The server sent a message this page does not understand.');
  }
}

function onOpen(reconnected: boolean): void {
  if (reconnected) log('system', null, null, 'Reconnected.');
  opened = true;
  lastClose = undefined;
  showChatError('');
  // After a reconnect the server remembers nothing: join again what the user had joined.
  for (const id of wanted) {
    if (sendCommand({ command: 'join', room: id })) pending.push({ command: 'join', room: id });
  }
  renderState();
  renderRooms();
}

function onClose(event: ClientCloseEvent): void {
  const wasOpen = opened;
  opened = false;
  lastClose = event;
  joined.clear();
  pending = [];
  if (!event.willRetry && event.code === CloseCode.Unauthorized) {
    // SPEC §5: 4401 other than `token expired` (which the SDK refreshes) means "log in again".
    endSession(
      loggingOut
        ? { notice: 'You have logged out.' }
        : { error: `Your session ended (${event.reason || 'unauthorized'}). Log in again.` },
    );
    return;
  }
  // Logged once per drop, not once per failed attempt while the server is away.
  if (event.willRetry && wasOpen) {
    const delay = ((event.delay ?? 0) / 1000).toFixed(1);
    const why = `${event.code} ${event.reason}`.trim();
    log('system', null, null, `Connection lost (${why}); reconnecting in ${delay} s.`);
  }
  renderState();
  renderRooms();
}

function connect(): void {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const current = createClient({
    url: `${scheme}//${location.host}/ws/chat/`,
    // The REST token never goes into a URL: each attempt trades it for a single-use
    // ticket (SPEC §3); a 401 there throws UnauthorizedError, which stops the client.
    credential: ticketCredential({
      fetchTicket: async () => {
        if (token === null) throw new UnauthorizedError('logged out');
        return (await rest.ticket(token)).ticket;
      },
    }),
    minDelay: 1_000, // 1 s
    maxDelay: 30_000, // 30 s
    // Commands are sent only while open; stale ones must not replay after a reconnect.
    queueLimit: 0,
  });
  const mine = (fn: () => void): void => {
    if (client === current) fn();
  };
  current.on('state', () => mine(renderState));
  current.on('open', ({ reconnected }) => mine(() => onOpen(reconnected)));
  current.on('close', (event) => mine(() => onClose(event)));
  current.on('message', (frame) => mine(() => onFrame(frame)));
  client = current;
  lastClose = undefined;
  opened = false;
  current.connect();
}

function waitForClosed(target: PortcullisClient, timeout: number): Promise<void> {
  if (target.state === 'closed') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeout);
    const off = target.on('state', (state) => {
      if (state === 'closed') done();
    });
    function done(): void {
      clearTimeout(timer);
      off();
      resolve();
    }
  });
}

// ---- the session -------------------------------------------------------------------

function describeError(error: unknown): string {
  if (error instanceof HttpError) {
    if (error.status === 429) return 'Too many attempts; wait a minute and try again.';
    const body = error.body;
    if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
      const lines = Object.entries(body as Record<string, unknown>).flatMap(([field, value]) => {
        const messages = Array.isArray(value) ? value.map(String) : [String(value)];
        return field === 'non_field_errors' || field === 'detail'
          ? messages
          : messages.map((message) => `${field}: ${message}`);
      });
      if (lines.length > 0) return lines.join(' ');
    }
    return `The server answered ${error.status}.`;
  }
  if (error instanceof UnauthorizedError) return 'Your session has ended. Log in again.';
  return 'Cannot reach the server; try again.';
}

async function startSession(): Promise<void> {
  if (token === null) return;
  const current = token;
  const [user, list] = await Promise.all([rest.me(current), rest.rooms(current)]);
  if (token !== current) return;
  me = user.username;
  rooms.clear();
  for (const room of list) rooms.set(String(room.id), toRoom(room));
  showSession(user.username, user.is_staff);
  renderRooms();
  connect();
}

function toRoom(room: RoomInfo): Room {
  return { id: String(room.id), title: room.title, staffOnly: room.staff_only === true };
}

function endSession(message: { notice?: string; error?: string }): void {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  const previous = client;
  client = undefined;
  previous?.close();
  loggingOut = false;
  me = '';
  rooms.clear();
  wanted.clear();
  joined.clear();
  pending = [];
  ui.log.replaceChildren();
  showChatError('');
  renderRooms();
  renderState();
  ui.logout.disabled = false;
  showLogin(message);
  ui.username.focus();
}

async function onLogin(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const username = ui.username.value.trim();
  const password = ui.password.value;
  if (username === '' || password === '') {
    ui.loginError.textContent = 'Enter a username and a password.';
    ui.loginNotice.textContent = '';
    return;
  }
  ui.login.disabled = true;
  ui.loginError.textContent = '';
  ui.loginNotice.textContent = '';
  try {
    const result = await rest.login(username, password);
    token = result.token;
    sessionStorage.setItem(TOKEN_KEY, result.token);
    await startSession();
    ui.password.value = '';
  } catch (error) {
    ui.loginError.textContent = describeError(error);
  } finally {
    ui.login.disabled = false;
  }
}

async function onLogout(): Promise<void> {
  const current = token;
  const socket = client;
  ui.logout.disabled = true;
  loggingOut = true;
  if (current !== null) {
    try {
      // Revokes the token; the server closes this page's sockets 4401 `token revoked`.
      await rest.logout(current);
    } catch {
      // Already revoked, or the server is unreachable: log out locally either way.
    }
  }
  if (socket !== undefined) await waitForClosed(socket, LOGOUT_CLOSE_WAIT);
  if (token === current) endSession({ notice: 'You have logged out.' });
}

function onSend(event: SubmitEvent): void {
  event.preventDefault();
  const room = ui.roomSelect.value;
  const message = ui.message.value;
  if (message.trim() === '') return;
  if (!joined.has(room)) {
    showChatError('Join a room before sending to it.');
    return;
  }
  if (!sendCommand({ command: 'send', room, message })) {
    showChatError('Not connected; the message was not sent.');
    return;
  }
  showChatError('');
  ui.message.value = '';
  ui.message.focus();
}

ui.loginForm.addEventListener('submit', (event) => void onLogin(event));
ui.sendForm.addEventListener('submit', onSend);
ui.logout.addEventListener('click', () => void onLogout());
ui.reconnect.addEventListener('click', () => {
  if (token !== null && client?.state === 'closed') client.connect();
});
ui.rooms.addEventListener('click', (event) => {
  const target = event.target;
  if (!(target instanceof HTMLButtonElement)) return;
  const id = target.dataset['roomId'];
  if (id === undefined) return;
  const state = membership(id);
  if (state === 'out') join(id);
  else if (state !== 'leaving') leave(id);
});

renderState();
renderRooms();
if (token === null) showLogin({});
else {
  startSession().catch((error: unknown) => {
    if (error instanceof UnauthorizedError) {
      endSession({ notice: 'Your session has ended. Log in again.' });
    } else showLogin({ error: describeError(error) });
  });
}
