/**
 * Chromium for browser tests: Debian's `/usr/bin/chromium` driven by `playwright-core`,
 * never a downloaded browser. Launch and close have timeouts, so a hung browser fails
 * the test instead of hanging it.
 *
 * Locally, a missing Chromium skips the suite with a reason; with `CI=true` it is a
 * failure, never a skip (`.ci/run` installs `chromium`).
 *
 * ```ts
 * describe('page', browserSuiteOptions(), () => {
 *   let browser: Browser;
 *   before(async () => { browser = await launchBrowser(); });
 *   after(() => closeBrowser(browser));
 * });
 * ```
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';

/** The Chromium binary: `CHROMIUM_PATH`, else Debian's. */
export const CHROMIUM_PATH = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

/** Where screenshots go (gitignored), kept by CI as artifacts. */
export const ARTIFACTS_DIR = fileURLToPath(new URL('../../test-results/browser/', import.meta.url));

const LAUNCH_TIMEOUT = 30_000; // 30 s: a cold start on a loaded 2-core runner
const CLOSE_TIMEOUT = 10_000; // 10 s
const SCREENSHOT_TIMEOUT = 10_000; // 10 s

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-gpu',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

function isCI(): boolean {
  return process.env['CI'] === 'true';
}

function missing(): string {
  return `Chromium is not installed at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`;
}

/**
 * Options for `describe`: a skip reason when Chromium is missing locally; with `CI=true`
 * never a skip, so {@link launchBrowser} fails the suite instead.
 */
export function browserSuiteOptions(): { skip: string | false } {
  return existsSync(CHROMIUM_PATH) || isCI() ? { skip: false } : { skip: missing() };
}

/** Rejects with a message naming `what` when `promise` does not settle within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Launches headless Chromium.
 * @throws {Error} when Chromium is missing (and the suite was not skipped, as in CI) or
 *   does not start within 30 s.
 */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`${missing()}${isCI() ? '; CI=true requires it' : ''}`);
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: CHROMIUM_ARGS,
    timeout: LAUNCH_TIMEOUT,
  });
}

/** Closes the browser, failing after 10 s rather than hanging the run. */
export async function closeBrowser(browser: Browser | undefined): Promise<void> {
  if (browser === undefined) return;
  await withTimeout(browser.close(), CLOSE_TIMEOUT, 'closing Chromium');
}

/** Saves a full-page screenshot under `test-results/browser/`. @returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  const path = join(ARTIFACTS_DIR, `${name.replace(/[^A-Za-z0-9._-]+/g, '-')}.png`);
  await page.screenshot({ path, fullPage: true, timeout: SCREENSHOT_TIMEOUT });
  return path;
}

/** What a page did that a test should not have to look for in the console. */
export interface PageProblems {
  /** Uncaught exceptions and unhandled rejections in the page. */
  readonly errors: string[];
  /** Texts of `alert`/`confirm`/`prompt` dialogs, which are dismissed. */
  readonly dialogs: string[];
  /** Console messages reporting Content Security Policy violations. */
  readonly cspViolations: string[];
  /** `STATUS METHOD URL` of every response with status 400 or more, and failed requests. */
  readonly failedRequests: string[];
}

/** Starts recording a page's problems; assert on them at the end of the test. */
export function watchPage(page: Page): PageProblems {
  const problems: PageProblems = { errors: [], dialogs: [], cspViolations: [], failedRequests: [] };
  page.on('pageerror', (error) => problems.errors.push(error.message));
  page.on('dialog', (dialog) => {
    problems.dialogs.push(dialog.message());
    void dialog.dismiss().catch(() => undefined);
  });
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) {
      problems.cspViolations.push(message.text());
    }
  });
  page.on('response', (response) => {
    if (response.status() >= 400) {
      problems.failedRequests.push(
        `${response.status()} ${response.request().method()} ${response.url()}`,
      );
    }
  });
  page.on('requestfailed', (request) => {
    problems.failedRequests.push(
      `${request.failure()?.errorText ?? 'failed'} ${request.method()} ${request.url()}`,
    );
  });
  return problems;
}
