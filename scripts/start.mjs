#!/usr/bin/env node
// `npm start`: builds if needed, then serves the gateway with the demo data on the
// embedded database (http://127.0.0.1:8000 unless PORT/HOST say otherwise).
//
// The gateway runs in this process, not in a child: Ctrl-C in a terminal already reaches
// every process of the group, so a parent that forwarded signals would turn one keypress
// into one signal more. package.json runs this script with `exec` so that npm's own
// forwarding (of a SIGTERM sent to npm alone, say) reaches it instead of stopping at sh.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

const built = join(root, 'dist/gateway/cli.js');
if (!existsSync(built) || newestMtime(join(root, 'src')) > statSync(built).mtimeMs) {
  const result = spawnSync('npm', ['run', 'build'], {
    cwd: root,
    stdio: 'inherit',
    shell: process.platform === 'win32',
  });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
const { main } = await import('../dist/gateway/cli.js');
process.exitCode = await main(['serve', '--demo', ...process.argv.slice(2)]);
