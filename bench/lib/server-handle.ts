/**
 * The coordinator's view of one server child: start it, read its CPU and memory, issue
 * credentials, publish to its bench group and log a token out over HTTP.
 *
 * @module
 */
import type { ChildProcess } from 'node:child_process';
import { postJson } from './http.js';
import { forkScript, stopChild } from './process.js';
import { RpcPeer } from './rpc.js';
import type {
  ReadyEvent,
  ServerEvents,
  ServerMethods,
  ServerName,
  ServerOptions,
  ServerStats,
} from '../servers/protocol.js';

const SCRIPTS: Record<ServerName, URL> = {
  portcullis: new URL('../servers/portcullis.ts', import.meta.url),
  'raw-ws': new URL('../servers/raw-ws.ts', import.meta.url),
  socketio: new URL('../servers/socketio.ts', import.meta.url),
};

const START_TIMEOUT = 30_000;
const CALL_TIMEOUT = 60_000;

/** A server that could not start here, and why. */
export interface Unavailable {
  readonly name: ServerName;
  readonly reason: string;
}

/** A running server child. */
export class ServerHandle {
  readonly ready: ReadyEvent;
  readonly #rpc: RpcPeer<ServerMethods, ServerEvents>;
  readonly #child: ChildProcess;

  private constructor(ready: ReadyEvent, rpc: RpcPeer<ServerMethods, ServerEvents>) {
    this.ready = ready;
    this.#rpc = rpc;
    this.#child = rpc.child;
  }

  /** Starts a server child; resolves with the reason when it cannot run here. */
  static async start(
    name: ServerName,
    options: ServerOptions = {},
    label: string = name,
  ): Promise<ServerHandle | Unavailable> {
    const child = forkScript(SCRIPTS[name], {
      label,
      args: [JSON.stringify(options)],
      exposeGc: true,
    });
    const rpc = new RpcPeer<ServerMethods, ServerEvents>(child, label);
    const outcome = await Promise.race([
      rpc.once('ready', START_TIMEOUT).then((ready) => ({ ready })),
      rpc.once('unavailable', START_TIMEOUT).then(({ reason }) => ({ reason })),
    ]).catch((error: unknown) => ({
      reason: error instanceof Error ? error.message : String(error),
    }));
    if ('reason' in outcome) {
      await stopChild(child, 1_000);
      return { name, reason: outcome.reason };
    }
    return new ServerHandle(outcome.ready, rpc);
  }

  get name(): ServerName {
    return this.ready.name;
  }

  get httpBase(): string {
    return `http://127.0.0.1:${this.ready.port}`;
  }

  /** The bench WebSocket URL, with extra query parameters for the Socket.IO path. */
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.ready.port}${this.ready.wsPath}`;
  }

  stats(gc = false): Promise<ServerStats> {
    return this.#rpc.call('stats', { gc }, CALL_TIMEOUT);
  }

  async issue(count: number): Promise<string[]> {
    if (count === 0) return [];
    return (await this.#rpc.call('issue', { count }, CALL_TIMEOUT + count * 10)).tokens;
  }

  async register(tokens: readonly string[]): Promise<void> {
    await this.#rpc.call('register', { tokens: [...tokens] }, CALL_TIMEOUT);
  }

  /** Publishes to the bench group; `mode` picks the raw-ws loop. Throws unless 202. */
  async publish(messages: readonly unknown[], mode?: 'send' | 'coalesced'): Promise<void> {
    const query = mode === undefined ? '' : `?mode=${mode}`;
    const result = await postJson(
      `${this.httpBase}${this.ready.publishPath}${query}`,
      { group: 'bench', messages },
      { headers: this.ready.publishHeaders, timeoutMs: 60_000 },
    );
    if (result.status !== 202) {
      throw new Error(
        `${this.name} publish answered ${result.status}: ${result.body.slice(0, 200)}`,
      );
    }
  }

  /** Logs `token` out (`POST …/logout` with `Authorization: Token`); returns the status. */
  async logout(token: string): Promise<number> {
    const result = await postJson(`${this.httpBase}${this.ready.logoutPath}`, undefined, {
      headers: { authorization: `Token ${token}` },
    });
    return result.status;
  }

  /** Asks the server to close, then makes sure the process is gone. */
  async stop(): Promise<void> {
    if (this.#rpc.exited === undefined) {
      await this.#rpc.call('shutdown', null, 15_000).catch(() => undefined);
    }
    await stopChild(this.#child);
  }
}
