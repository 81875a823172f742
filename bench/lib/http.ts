/**
 * A minimal keep-alive HTTP POST for publishes, logouts and tickets: `node:http` rather
 * than `fetch`, whose per-request cost would show up in the load generator's CPU.
 *
 * @module
 */
import { Agent, request } from 'node:http';

/** A response: status and body text. */
export interface PostResult {
  readonly status: number;
  readonly body: string;
}

/** Options of {@link postJson}. */
export interface PostOptions {
  readonly headers?: Readonly<Record<string, string>>;
  readonly agent?: Agent;
  /** Source address on 127.0.0.0/8, to spread ephemeral ports. */
  readonly localAddress?: string;
  /** @default 10000 */
  readonly timeoutMs?: number;
}

const defaultAgent = new Agent({ keepAlive: true, maxSockets: 16 });

/** POSTs `body` as JSON (or nothing when `undefined`) and reads the whole answer. */
export function postJson(
  url: string,
  body: unknown,
  options: PostOptions = {},
): Promise<PostResult> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string> = { ...options.headers };
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(payload.length);
  }
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers,
        agent: options.agent ?? defaultAgent,
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
        timeout: options.timeoutMs ?? 10_000,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
        );
        response.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`POST ${url} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}
