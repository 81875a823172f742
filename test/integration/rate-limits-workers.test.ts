// Issue 12: with REDIS_URL the failed-authentication budget of an address is shared by
// every process, so `serve --workers 4` gives an attacker exactly what one process gives.
// Real processes, a real Redis; the attacker uses a loopback address of its own, so the
// count is this test's alone.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { connectClient } from '../../src/testing/client.js';
import { MAX_FAILURES } from '../../src/gateway/limits.js';
import { builtCli, freePort, stopProcess } from '../helpers/processes.js';
import { isCI, serviceSuiteOptions, serviceUrl } from '../helpers/services.js';

async function serve(
  workers: number,
  env: Record<string, string>,
): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    ['bin/portcullis.js', 'serve', '--workers', String(workers)],
    {
      env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: string[] = [];
  await new Promise<void>((resolve, reject) => {
    let listening = 0;
    const timer = setTimeout(() => reject(new Error(`not started:\n${lines.join('\n')}`)), 30_000);
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        lines.push(line);
        if (line.includes('portcullis gateway listening') && ++listening === workers) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}:\n${lines.join('\n')}`));
    });
  });
  return { child, url: `ws://127.0.0.1:${port}/ws/chat/` };
}

/** Close codes of `attempts` bad-token handshakes from `localAddress`, one after another. */
async function attack(url: string, localAddress: string, attempts: number): Promise<number[]> {
  const codes: number[] = [];
  for (let index = 0; index < attempts; index += 1) {
    const client = await connectClient(url, {
      headers: { Authorization: 'Token pcu_guess' },
      wsOptions: { localAddress },
    });
    codes.push((await client.waitForClose(5_000)).code);
  }
  return codes;
}

const options =
  !builtCli() && !isCI()
    ? { skip: 'run `npm run build` first' }
    : await serviceSuiteOptions('redis');

describe('failed authentications across processes (issue 12)', options, () => {
  const directories: string[] = [];
  const children: ChildProcess[] = [];

  after(async () => {
    for (const child of children) await stopProcess(child, 'SIGTERM');
    for (const directory of directories) rmSync(directory, { recursive: true, force: true });
  });

  for (const workers of [1, 4]) {
    it(`gives one address ${MAX_FAILURES} failures with ${workers} process(es), then 4429`, async () => {
      const directory = mkdtempSync(join(tmpdir(), 'portcullis-limits-'));
      directories.push(directory);
      const gateway = await serve(workers, {
        DATABASE_URL: `sqlite:${join(directory, 'gateway.db')}`,
        REDIS_URL: await serviceUrl('redis'),
        REDIS_PREFIX: `pcu-limits-${process.pid}-${workers}`,
      });
      children.push(gateway.child);
      // 127.0.0.0/8 is loopback: an address no other test uses.
      const attacker = `127.${1 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
      const codes = await attack(gateway.url, attacker, MAX_FAILURES + 4);
      assert.deepEqual(codes, [
        ...Array.from({ length: MAX_FAILURES }, () => 4401),
        ...Array.from({ length: 4 }, () => 4429),
      ]);
    });
  }
});
