/**
 * `npm run bench`: Portcullis against raw ws and Socket.IO, side by side in one run.
 *
 * ```sh
 * node --import tsx bench/run.ts [--smoke] [--only memory,handshakes,echo,fanout,cluster]
 *   [--servers portcullis,raw-ws,socketio] [--out DIR] [--report | --no-report]
 * ```
 *
 * Writes `<out>/<date>.json` (default `bench/results/`, or `bench/results/tmp/` for
 * `--smoke`) and, for a full run, `BENCHMARKS.md` with its charts. Progress goes to
 * stderr; the results file's path is the last line on stdout. The whole run is bounded
 * in time and ends its child processes however it ends.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FULL, SMOKE } from './config.js';
import { LoadPool } from './lib/load-pool.js';
import { describeMachine } from './lib/machine.js';
import { killChildren } from './lib/process.js';
import { Progress } from './lib/progress.js';
import type { ServerHandle } from './lib/server-handle.js';
import { computeRatios, writeReport } from './report.js';
import type { RunResults } from './report.js';
import { clusterScenario } from './scenarios/cluster.js';
import { isRunning, newResult, startServer, stopAll } from './scenarios/context.js';
import type { Context, ScenarioId, ScenarioResult } from './scenarios/context.js';
import { echoScenario } from './scenarios/echo.js';
import { fanoutScenario } from './scenarios/fanout.js';
import { handshakeScenario } from './scenarios/handshakes.js';
import { memoryScenario } from './scenarios/memory.js';
import type { ServerName } from './servers/protocol.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCENARIOS = ['memory', 'handshakes', 'echo', 'fanout', 'cluster'] as const;
type Part = (typeof SCENARIOS)[number];
const SERVERS: readonly ServerName[] = ['portcullis', 'raw-ws', 'socketio'];
/** The whole run's bound; past it everything is stopped and the run fails. */
const TIME_LIMIT_MS = { full: 45 * 60_000, smoke: 3 * 60_000 };

const TITLES: Readonly<Record<Part, string>> = {
  memory: '(c) Idle memory per authenticated connection',
  handshakes: '(a) Authenticated handshakes per second',
  echo: '(d) Echo round trip at a fixed offered rate',
  fanout: '(b) Broadcast fan-out',
  cluster: '(e) Cross-process fan-out over Redis',
};

function usage(message: string): never {
  process.stderr.write(
    `${message}\nusage: node --import tsx bench/run.ts [--smoke] [--only ${SCENARIOS.join(',')}] ` +
      `[--servers ${SERVERS.join(',')}] [--out DIR] [--report | --no-report]\n`,
  );
  process.exit(2);
}

function list<T extends string>(
  value: string | undefined,
  allowed: readonly T[],
  flag: string,
): T[] {
  if (value === undefined) return [...allowed];
  const items = value.split(',').map((item) => item.trim());
  for (const item of items) {
    if (!allowed.includes(item as T)) usage(`${flag}: unknown "${item}"`);
  }
  return items as T[];
}

/** Newest modification time of a tree, in ms. */
function newest(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return readdirSync(path).reduce((max, entry) => Math.max(max, newest(join(path, entry))), 0);
}

function distIsStale(): boolean {
  const built = join(ROOT, 'dist', 'gateway', 'server.js');
  if (!existsSync(built)) return false;
  return newest(join(ROOT, 'src')) > statSync(built).mtimeMs;
}

/** A scenario that threw is recorded as skipped with the error, and the run goes on. */
async function guarded(
  id: ScenarioId,
  title: string,
  progress: Progress,
  run: () => Promise<ScenarioResult[]>,
): Promise<ScenarioResult[]> {
  const started = Date.now();
  try {
    const results = await run();
    for (const result of results) result.durationMs = Date.now() - started;
    return results;
  } catch (error) {
    const reason = `failed: ${error instanceof Error ? error.message : String(error)}`;
    progress.log(`${title} ${reason}`);
    const result = newResult(id, title, '', []);
    result.skipped.push({ variant: null, reason });
    result.durationMs = Date.now() - started;
    return [result];
  }
}

function parseOptions(): ReturnType<typeof parse> {
  try {
    return parse();
  } catch (error) {
    return usage(error instanceof Error ? error.message : String(error));
  }
}

function parse() {
  return parseArgs({
    options: {
      smoke: { type: 'boolean', default: false },
      only: { type: 'string' },
      servers: { type: 'string' },
      out: { type: 'string' },
      report: { type: 'boolean' },
      'no-report': { type: 'boolean' },
    },
    strict: true,
  });
}

async function main(): Promise<void> {
  const { values } = parseOptions();
  const mode = values.smoke === true ? 'smoke' : 'full';
  const sizes = mode === 'smoke' ? SMOKE : FULL;
  const parts = list(values.only, SCENARIOS, '--only');
  const servers = list(values.servers, SERVERS, '--servers');
  const outDir = resolve(
    values.out ?? join(ROOT, 'bench', 'results', ...(mode === 'smoke' ? ['tmp'] : [])),
  );
  const report = values['no-report'] === true ? false : (values.report ?? mode === 'full');

  const watchdog = setTimeout(() => {
    process.stderr.write(
      `bench: time limit of ${TIME_LIMIT_MS[mode] / 60_000} min reached, stopping\n`,
    );
    killChildren();
    process.exit(1);
  }, TIME_LIMIT_MS[mode]);
  watchdog.unref();

  const progress = new Progress();
  const startedAt = new Date();
  const machine = describeMachine();
  const distStale = distIsStale();
  if (distStale)
    progress.log(
      'bench: dist/ is older than src/: run `npm run build` to measure the current code',
    );
  progress.log(
    `bench: ${mode} run on ${machine.cores} cores, Node ${machine.node}, ` +
      `load ${machine.loadAtStart.join('/')}; scenarios ${parts.join(', ')}; servers ${servers.join(', ')}`,
  );

  const tmpDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  const pool = await LoadPool.start(sizes.workers, sizes.addressesPerWorker);
  const context: Context = {
    mode,
    sizes,
    pool,
    progress,
    tmpDir,
    jwtSecret: randomBytes(48).toString('base64url'),
    servers,
  };
  const scenarios: ScenarioResult[] = [];
  try {
    // Memory first, each point on fresh processes: a server that already held 10,000
    // sockets keeps their pages, and its RSS would not grow for the next ones.
    if (parts.includes('memory')) {
      scenarios.push(
        ...(await guarded('memory', TITLES.memory, progress, async () => [
          await memoryScenario(context),
        ])),
      );
    }
    const shared = parts.filter(
      (part) => part === 'handshakes' || part === 'echo' || part === 'fanout',
    );
    if (shared.length > 0) {
      // One process per server for (a), (d) and (b), all up at once so that every case
      // runs on the three back to back.
      const started = await Promise.all(servers.map((name) => startServer(context, name)));
      const running = started.filter(isRunning);
      const unavailable = started.filter((server) => !isRunning(server));
      try {
        const run = async (
          part: Part,
          scenario: (context: Context, servers: readonly ServerHandle[]) => Promise<ScenarioResult>,
        ): Promise<void> => {
          if (!parts.includes(part)) return;
          const results = await guarded(part, TITLES[part], progress, async () => [
            await scenario(context, running),
          ]);
          for (const result of results) {
            for (const server of unavailable) {
              if (!isRunning(server))
                result.skipped.push({ variant: server.name, reason: server.reason });
            }
          }
          scenarios.push(...results);
        };
        await run('handshakes', handshakeScenario);
        await run('echo', echoScenario);
        await run('fanout', fanoutScenario);
      } finally {
        await stopAll(started);
      }
    }
    if (parts.includes('cluster')) {
      scenarios.push(
        ...(await guarded('cluster', TITLES.cluster, progress, () => clusterScenario(context))),
      );
    }
  } finally {
    await pool.closeAll(null).catch(() => undefined);
    await pool.stop();
    rmSync(tmpDir, { recursive: true, force: true });
  }

  const finishedAt = new Date();
  const results: RunResults = {
    schema: 1,
    mode,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: finishedAt.getTime() - startedAt.getTime(),
    command: `node --import tsx bench/run.ts ${process.argv.slice(2).join(' ')}`.trim(),
    machine,
    loadAtEnd: loadavg().map((value) => Math.round(value * 100) / 100),
    distStale,
    sizes,
    scenarios,
    ratios: computeRatios(scenarios),
  };
  await mkdir(outDir, { recursive: true });
  const stamp = results.startedAt.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  const file = join(outDir, `${mode === 'smoke' ? 'smoke-' : ''}${stamp}.json`);
  await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  if (report) {
    const page = await writeReport(results, file, ROOT);
    progress.log(`bench: wrote ${relative(process.cwd(), page)}`);
  }
  progress.log(`bench: done in ${(results.durationMs / 1000).toFixed(1)} s`);
  process.stdout.write(`${file}\n`);
  clearTimeout(watchdog);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killChildren();
    process.exit(130);
  });
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    killChildren();
    process.exit(1);
  },
);
