#!/usr/bin/env node
// tsc compiles only TypeScript; the web page's HTML and CSS are copied next to its
// compiled script so that dist/ is self-contained.
import { cpSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const pages = [['src/gateway/apps/multichat/page', 'dist/gateway/apps/multichat/page']];
for (const [from, to] of pages) {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from)) {
    if (/\.(html|css|svg|ico)$/.test(entry)) cpSync(join(from, entry), join(to, entry));
  }
}
