#!/usr/bin/env node
// tsc compiles only TypeScript; the files beside it that the compiled code reads at run
// time are copied next to it so that dist/ is self-contained: the web page's HTML and
// CSS, and the Redis Lua scripts.
import { cpSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const assets = [
  ['src/gateway/apps/multichat/page', 'dist/gateway/apps/multichat/page', /\.(html|css|svg|ico)$/],
  ['src/layers/redis', 'dist/layers/redis', /\.lua$/],
];
for (const [from, to, pattern] of assets) {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from)) {
    if (pattern.test(entry)) cpSync(join(from, entry), join(to, entry));
  }
}
