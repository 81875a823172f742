#!/usr/bin/env node
// The `portcullis` command: a thin shell around dist/gateway/cli.js, whose main() returns
// the exit status instead of exiting, so that it can run in process under test.
import { fileURLToPath } from 'node:url';

const cliPath = fileURLToPath(new URL('../dist/gateway/cli.js', import.meta.url));
let cli;
try {
  cli = await import('../dist/gateway/cli.js');
} catch (error) {
  const missing = error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes(cliPath);
  const why = String(error?.message ?? error).split('\n', 1)[0];
  process.stderr.write(
    missing
      ? 'portcullis: the build is missing (dist/); run `npm run build` first\n'
      : `portcullis: cannot load ${cliPath}: ${why}\n`,
  );
  process.exitCode = 1;
}
if (cli !== undefined) process.exitCode = await cli.main(process.argv.slice(2));
