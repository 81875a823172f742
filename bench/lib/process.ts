/**
 * Starting bench child processes (servers, load workers, a private Redis) and making
 * sure none outlives the run, whatever way it ends.
 *
 * @module
 */
import { fork, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const children = new Set<ChildProcess>();

function track(child: ChildProcess, label: string): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (child.stderr !== null) {
    // Children's diagnostics stay visible, labelled, without interleaving mid-line.
    createInterface({ input: child.stderr }).on('line', (line) => {
      process.stderr.write(`[${label}] ${line}\n`);
    });
  }
  return child;
}

/** Options of {@link forkScript}. */
export interface ForkOptions {
  /** Prefix of the child's stderr lines. */
  label: string;
  args?: readonly string[];
  /** Adds `--expose-gc`, so memory is measured after a full collection. */
  exposeGc?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Forks a TypeScript bench script through tsx, with an IPC channel. */
export function forkScript(script: URL, options: ForkOptions): ChildProcess {
  // BENCH_SERVER_NODE_ARGS passes profiler flags (e.g. --cpu-prof) to the server children.
  const extra = (process.env['BENCH_SERVER_NODE_ARGS'] ?? '')
    .split(' ')
    .filter((arg) => arg !== '');
  const execArgv = [
    '--import',
    'tsx',
    ...(options.exposeGc === true ? ['--expose-gc'] : []),
    ...extra,
  ];
  const child = fork(fileURLToPath(script), [...(options.args ?? [])], {
    execArgv,
    env: options.env ?? process.env,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  return track(child, options.label);
}

/** Spawns a plain executable (a private `redis-server`). */
export function spawnTracked(
  command: string,
  args: readonly string[],
  label: string,
): ChildProcess {
  return track(spawn(command, [...args], { stdio: ['ignore', 'ignore', 'pipe'] }), label);
}

/** Waits for a child to exit, killing it after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), graceMs);
  });
  if (await Promise.race([exited.then(() => false), timedOut])) {
    child.kill('SIGKILL');
    await exited;
  }
  clearTimeout(timer);
}

/** Kills every child this process started and that is still running. */
export function killChildren(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
}

process.once('exit', killChildren);
