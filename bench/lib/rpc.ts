/**
 * Typed request/response and one-way events over a child process's IPC channel. Every
 * bench process pair (coordinator ↔ server, coordinator ↔ load worker) speaks it, so a
 * measurement never depends on parsing another process's stdout.
 *
 * @module
 */
import type { ChildProcess } from 'node:child_process';

/** Method name → its parameters and result (a type alias, so it satisfies `Record`). */
export type MethodMap = Record<string, { params: unknown; result: unknown }>;
/** Event name → its payload. */
export type EventMap = Record<string, unknown>;

export type Handlers<M extends MethodMap> = {
  [K in keyof M]: (params: M[K]['params']) => Promise<M[K]['result']>;
};

interface RequestFrame {
  readonly kind: 'request';
  readonly id: number;
  readonly method: string;
  readonly params: unknown;
}
type ResponseFrame =
  | { readonly kind: 'response'; readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly kind: 'response'; readonly id: number; readonly ok: false; readonly error: string };
interface EventFrame {
  readonly kind: 'event';
  readonly name: string;
  readonly data: unknown;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Child side: answers requests with `handlers` and returns an `emit` for events. The
 * child exits when its parent goes away, so no bench process outlives the run.
 */
export function serveRpc<M extends MethodMap, E extends EventMap>(
  handlers: Handlers<M>,
): { emit<K extends keyof E & string>(name: K, data: E[K]): void } {
  const send = process.send?.bind(process);
  if (send === undefined) throw new Error('bench: this script runs as a child of bench/run.ts');
  process.on('disconnect', () => process.exit(0));
  process.on('message', (raw: unknown) => {
    if (!isRecord(raw) || raw['kind'] !== 'request') return;
    const request = raw as unknown as RequestFrame;
    const handler = Object.hasOwn(handlers, request.method)
      ? handlers[request.method as keyof M]
      : undefined;
    const reply = (frame: ResponseFrame): void => {
      if (process.connected) send(frame);
    };
    if (handler === undefined) {
      reply({ kind: 'response', id: request.id, ok: false, error: `no method ${request.method}` });
      return;
    }
    // The coordinator is the only sender and types `params` by the same MethodMap.
    handler(request.params as M[keyof M]['params']).then(
      (result) => reply({ kind: 'response', id: request.id, ok: true, result }),
      (error: unknown) =>
        reply({ kind: 'response', id: request.id, ok: false, error: errorText(error) }),
    );
  });
  return {
    emit(name, data) {
      if (process.connected) send({ kind: 'event', name, data } satisfies EventFrame);
    },
  };
}

/** Parent side of {@link serveRpc}. */
export class RpcPeer<M extends MethodMap, E extends EventMap> {
  readonly child: ChildProcess;
  readonly #pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }
  >();
  readonly #listeners = new Map<string, Set<(data: unknown) => void>>();
  #nextId = 1;
  #exited: string | undefined;

  constructor(child: ChildProcess, label: string) {
    this.child = child;
    child.on('message', (raw: unknown) => {
      if (!isRecord(raw)) return;
      if (raw['kind'] === 'response') {
        const frame = raw as unknown as ResponseFrame;
        const pending = this.#pending.get(frame.id);
        if (pending === undefined) return;
        this.#pending.delete(frame.id);
        clearTimeout(pending.timer);
        if (frame.ok) pending.resolve(frame.result);
        else pending.reject(new Error(`${label}: ${frame.error}`));
      } else if (raw['kind'] === 'event') {
        const frame = raw as unknown as EventFrame;
        for (const listener of this.#listeners.get(frame.name) ?? []) listener(frame.data);
      }
    });
    child.once('exit', (code, signal) => {
      this.#exited = `${label} exited (${signal ?? `code ${String(code)}`})`;
      for (const pending of this.#pending.values()) {
        clearTimeout(pending.timer);
        pending.reject(new Error(this.#exited));
      }
      this.#pending.clear();
    });
  }

  /** Why the child is gone, or `undefined` while it runs. */
  get exited(): string | undefined {
    return this.#exited;
  }

  /** Calls a method; rejects after `timeoutMs` so that no step of a run can hang. */
  call<K extends keyof M & string>(
    method: K,
    params: M[K]['params'],
    timeoutMs: number,
  ): Promise<M[K]['result']> {
    if (this.#exited !== undefined) return Promise.reject(new Error(this.#exited));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${method} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      // The child answers with the result type of the same MethodMap entry.
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      this.child.send({ kind: 'request', id, method, params } satisfies RequestFrame);
    });
  }

  on<K extends keyof E & string>(name: K, listener: (data: E[K]) => void): () => void {
    let set = this.#listeners.get(name);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    // Events of one name carry the payload type of the same EventMap entry.
    const untyped = listener as (data: unknown) => void;
    set.add(untyped);
    return () => set.delete(untyped);
  }

  /** Resolves with the first event of `name` (rejects on timeout or exit). */
  once<K extends keyof E & string>(name: K, timeoutMs: number): Promise<E[K]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`no ${name} event within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on(name, (data) => {
        clearTimeout(timer);
        off();
        resolve(data);
      });
      this.child.once('exit', () => {
        clearTimeout(timer);
        off();
        reject(new Error(this.#exited ?? 'child exited'));
      });
    });
  }
}
