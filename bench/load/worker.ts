/**
 * A load worker process: holds up to a few thousand clients (the open-file limit is
 * 20,000 per process) from its own 127.0.0.x source addresses (each has its own
 * ephemeral ports), and runs what the coordinator asks. Every loop here ends by count
 * or by time.
 *
 * Usage (by the coordinator only): `worker.ts <addresses as JSON>`.
 *
 * @module
 */
import { Agent } from 'node:http';
import { serveRpc } from '../lib/rpc.js';
import { OpenError, echoFrame, echoId, openSocket, present } from './clients.js';
import type { BenchSocket, Hooks } from './clients.js';
import { monotonicMs } from './protocol.js';
import type { ErrorCounts, Target, WorkerEvents, WorkerMethods } from './protocol.js';

const addresses = JSON.parse(process.argv[2] ?? '["127.0.0.1"]') as string[];
const addressOf = (index: number): string => addresses[index % addresses.length] ?? '127.0.0.1';
// Tickets: one keep-alive agent; its pool is keyed by source address too.
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

/** Bound on latency samples kept per call, so a long run cannot grow the worker's heap. */
const MAX_SAMPLES = 200_000;
const PROGRESS_INTERVAL = 25;

interface Group {
  readonly target: Target;
  readonly sockets: BenchSocket[];
}

const groups = new Map<string, Group>();
let watching = false;
/** The group whose deliveries are being counted, and how many each client should get. */
let armed: Group | undefined;
let expected = 0;
let incomplete = 0;
let progressTimer: NodeJS.Timeout | undefined;

function stopProgress(): void {
  clearInterval(progressTimer);
  progressTimer = undefined;
}

const count = (socket: BenchSocket): void => {
  if (socket.received !== expected || armed === undefined) return;
  incomplete -= 1;
  if (incomplete === 0) {
    rpc.emit('complete', { at: monotonicMs() });
    stopProgress();
  }
};

const hooks: Hooks = {
  onData: count,
  onClose(socket, code, reason) {
    if (watching) rpc.emit('closed', { index: socket.index, at: monotonicMs(), code, reason });
  },
};

function addError(errors: ErrorCounts, error: unknown): void {
  const kind = error instanceof OpenError ? error.kind : 'error';
  errors[kind] = (errors[kind] ?? 0) + 1;
}

/** Runs `task(i)` for `i` in `[0, total)` with at most `concurrency` in flight. */
async function pool(
  total: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < total) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, lane));
}

const rpc = serveRpc<WorkerMethods, WorkerEvents>({
  async connect({ group: name, target, plan, count: total, firstIndex, concurrency, timeoutMs }) {
    let group = groups.get(name);
    if (group === undefined) groups.set(name, (group = { target, sockets: [] }));
    const { sockets } = group;
    const started = monotonicMs();
    const errors: ErrorCounts = {};
    let opened = 0;
    await pool(total, concurrency, async (offset) => {
      const index = firstIndex + offset;
      const address = addressOf(index);
      try {
        const credential = await present(plan, offset, target, address, agent);
        sockets.push(await openSocket(target, credential, index, address, timeoutMs, hooks));
        opened += 1;
      } catch (error) {
        addError(errors, error);
      }
    });
    return { opened, errors, elapsedMs: monotonicMs() - started };
  },

  async handshakes({ target, plan, concurrency, durationMs, maxCount }) {
    const errors: ErrorCounts = {};
    const latencyMs: number[] = [];
    const closing: Promise<void>[] = [];
    const started = monotonicMs();
    const deadline = started + durationMs;
    // A client of this loop closed by the server after it opened is not counted again:
    // it was counted as a handshake, and the servers compared never do that here.
    const quiet: Hooks = { onData: () => undefined, onClose: () => undefined };
    let attempts = 0;
    let ok = 0;
    let last = started;
    const lane = async (): Promise<void> => {
      while (attempts < maxCount && monotonicMs() < deadline) {
        const index = attempts++;
        const address = addressOf(index);
        const begin = monotonicMs();
        try {
          const credential = await present(plan, index, target, address, agent);
          const socket = await openSocket(target, credential, index, address, 5_000, quiet);
          last = monotonicMs();
          if (latencyMs.length < MAX_SAMPLES) latencyMs.push(last - begin);
          ok += 1;
          closing.push(socket.close());
        } catch (error) {
          last = monotonicMs();
          addError(errors, error);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, lane));
    await Promise.all(closing);
    return { ok, errors, elapsedMs: last - started, latencyMs };
  },

  async expect({ group: name, perClient }) {
    armed = groups.get(name);
    expected = perClient;
    incomplete = 0;
    stopProgress();
    if (armed === undefined) return null;
    for (const socket of armed.sockets) {
      socket.received = 0;
      if (!socket.ended) incomplete += 1;
    }
    const { sockets } = armed;
    let reported = -1;
    progressTimer = setInterval(() => {
      let received = 0;
      for (const socket of sockets) received += socket.received;
      if (received === reported) return;
      reported = received;
      rpc.emit('progress', { received });
    }, PROGRESS_INTERVAL);
    return null;
  },

  async tally() {
    stopProgress();
    const sockets = armed?.sockets ?? [];
    let received = 0;
    let short = 0;
    let missing = 0;
    let extra = 0;
    for (const socket of sockets) {
      received += socket.received;
      if (socket.received < expected) {
        short += 1;
        missing += expected - socket.received;
      } else extra += socket.received - expected;
    }
    armed = undefined;
    return {
      clients: sockets.length,
      expectedPerClient: expected,
      received,
      short,
      missing,
      extra,
    };
  },

  async echo({ group: name, connections, rate, durationMs, warmupMs }) {
    const group = groups.get(name);
    const clients = (group?.sockets ?? []).filter((socket) => !socket.ended).slice(0, connections);
    if (group === undefined || clients.length === 0 || rate <= 0) {
      return { sent: 0, received: 0, latencyUs: [] };
    }
    const { target } = group;
    const period = 1_000 / rate;
    const total = Math.floor((rate * durationMs) / 1_000);
    const warmup = Math.floor((rate * warmupMs) / 1_000);
    const latencyUs: number[] = [];
    let received = 0;
    let sent = 0;
    const start = monotonicMs() + 5;
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (finish = resolve));
    hooks.onData = (_socket, data) => {
      const id = echoId(target, data);
      if (id === undefined) return;
      received += 1;
      // Open loop: latency counts from when the message was due, so a stalled server
      // is charged for the messages it delayed (no coordinated omission).
      if (id >= warmup && latencyUs.length < MAX_SAMPLES) {
        latencyUs.push((monotonicMs() - (start + id * period)) * 1_000);
      }
      if (received === total) finish();
    };
    const ticker = setInterval(() => {
      const due = Math.min(total, Math.floor((monotonicMs() - start) / period) + 1);
      for (; sent < due; sent += 1) {
        clients[sent % clients.length]?.ws.send(echoFrame(target, sent));
      }
      if (sent >= total) clearInterval(ticker);
    }, 1);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      done,
      new Promise((resolve) => (timer = setTimeout(resolve, durationMs + 5_000))),
    ]);
    clearInterval(ticker);
    clearTimeout(timer);
    hooks.onData = count;
    return { sent, received, latencyUs };
  },

  async watch() {
    watching = true;
    return null;
  },

  async closeAll({ group: name }) {
    stopProgress();
    watching = false;
    armed = undefined;
    const names = name === null ? [...groups.keys()] : [name];
    const closing = names.flatMap((key) => groups.get(key)?.sockets ?? []);
    for (const key of names) groups.delete(key);
    await pool(closing.length, 500, (index) => closing[index]?.close() ?? Promise.resolve());
    return { closed: closing.length };
  },
});

rpc.emit('ready', null);
