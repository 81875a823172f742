// The Lua scripts live in src/layers/redis/*.lua and are read at connect time: the
// build must copy each one next to the compiled module, and the package must ship it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { builtCli } from '../helpers/processes.js';
import { isCI } from '../helpers/services.js';

const scripts = readdirSync('src/layers/redis').filter((file) => file.endsWith('.lua'));

describe(
  'redis lua scripts',
  { skip: builtCli() || isCI() ? false : 'run `npm run build` first' },
  () => {
    it('are found beside the sources', () => {
      assert.deepEqual(scripts.sort(), [
        'presence-group.lua',
        'presence-leave.lua',
        'presence-list.lua',
        'presence-reap.lua',
        'presence-touch.lua',
        'push.lua',
      ]);
    });

    it('are copied into dist/ by the build, unchanged', () => {
      for (const file of scripts) {
        const built = `dist/layers/redis/${file}`;
        assert.ok(existsSync(built), `${built} is missing`);
        assert.equal(readFileSync(built, 'utf8'), readFileSync(`src/layers/redis/${file}`, 'utf8'));
      }
    });

    it('are in the published package', () => {
      const [pack] = JSON.parse(
        execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        }),
      ) as [{ files: { path: string }[] }];
      const shipped = new Set(pack.files.map((file) => file.path));
      for (const file of scripts) assert.ok(shipped.has(`dist/layers/redis/${file}`), file);
    });
  },
);
