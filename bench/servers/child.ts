/**
 * The part every bench server child shares: parse its options, start, answer the
 * coordinator's `stats`/`issue`/`register`/`shutdown`, and the small HTTP helpers of
 * the comparison servers' publish and logout routes.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveRpc } from '../lib/rpc.js';
import type {
  ReadyEvent,
  ServerEvents,
  ServerMethods,
  ServerOptions,
  ServerStats,
} from './protocol.js';

/** What a server module returns once it listens. */
export interface BenchServer {
  readonly ready: Omit<ReadyEvent, 'pid'>;
  issue(count: number): Promise<string[]>;
  register(tokens: readonly string[]): void;
  close(): Promise<void>;
}

const gc = (globalThis as { gc?: () => void }).gc;

async function collect(): Promise<void> {
  if (gc === undefined) return;
  // Several passes with turns in between let weak callbacks and finalizers run, so the
  // heap figure is what is reachable, not what happens to be uncollected yet.
  for (let pass = 0; pass < 3; pass += 1) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function stats(): ServerStats {
  const { user, system } = process.cpuUsage();
  const memory = process.memoryUsage();
  return {
    userUs: user,
    systemUs: system,
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    heapTotal: memory.heapTotal,
    external: memory.external,
    arrayBuffers: memory.arrayBuffers,
  };
}

/**
 * Runs a server child: `start` either returns a running server or a sentence saying why
 * this server cannot run here (reported as the scenario's skip reason).
 */
export function runServerChild(
  start: (options: ServerOptions) => Promise<BenchServer | string>,
): void {
  const options = JSON.parse(process.argv[2] ?? '{}') as ServerOptions;
  let server: BenchServer | undefined;
  const rpc = serveRpc<ServerMethods, ServerEvents>({
    async stats({ gc: full }) {
      if (full) await collect();
      return stats();
    },
    async issue({ count }) {
      if (server === undefined) throw new Error('not started');
      return { tokens: await server.issue(count) };
    },
    async register({ tokens }) {
      server?.register(tokens);
      return null;
    },
    async shutdown() {
      await server?.close();
      // Exit after the reply has been sent.
      setImmediate(() => process.exit(0));
      return null;
    },
  });
  start(options).then(
    (result) => {
      if (typeof result === 'string') {
        rpc.emit('unavailable', { reason: result });
        return;
      }
      server = result;
      rpc.emit('ready', { ...result.ready, pid: process.pid });
    },
    (error: unknown) => {
      rpc.emit('unavailable', {
        reason: `failed to start: ${error instanceof Error ? error.message : String(error)}`,
      });
    },
  );
}

/** Reads a JSON request body of at most `limit` bytes. */
export function readJson(request: IncomingMessage, limit = 4 * 1024 * 1024): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new Error('body too large'));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString()) as unknown);
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
    request.on('error', reject);
  });
}

/** The messages of a publish body, `{group, message}` or `{group, messages}` as SPEC §6. */
export function publishedMessages(body: unknown): unknown[] | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const record = body as Record<string, unknown>;
  if (Array.isArray(record['messages'])) return record['messages'];
  if ('message' in record) return [record['message']];
  return undefined;
}

/** The token of `Authorization: Token <t>` or `Bearer <t>`. */
export function bearer(request: IncomingMessage): string | undefined {
  const match = /^(?:Token|Bearer) (\S+)$/.exec(request.headers.authorization ?? '');
  return match?.[1];
}

export function respond(response: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    response.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json' }).end(text);
}
