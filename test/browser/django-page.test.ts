// docs/django.md in a real browser: the MultiChat page rendered by Django (logged in
// through Django's own login form) opens its socket to Portcullis, which authenticates
// the session cookie; Django code's group_send reaches the page.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import {
  browserSuiteOptions,
  closeBrowser,
  launchBrowser,
  screenshot,
  watchPage,
} from '../helpers/browser.js';
import { createDjangoProject, djangoSuiteOptions } from '../helpers/django.js';
import type { DjangoProject } from '../helpers/django.js';
import { builtCli, freePort, startGatewayProcess, stopProcess } from '../helpers/processes.js';
import type { GatewayProcess } from '../helpers/processes.js';
import { serviceSuiteOptions } from '../helpers/services.js';

const skip =
  browserSuiteOptions().skip ||
  djangoSuiteOptions().skip ||
  (await serviceSuiteOptions('redis')).skip;
const PASSWORD = 'correct-horse-battery';

describe('the MultiChat page served by Django, on Portcullis', { skip }, () => {
  let browser: Browser;
  let project: DjangoProject;
  let gateway: GatewayProcess;
  let dir: string;
  let lobby: number;

  before(async () => {
    assert.ok(builtCli(), 'run npm run build first');
    const port = await freePort();
    project = await createDjangoProject({
      database: 'sqlite',
      portcullisWsUrl: `ws://127.0.0.1:${port}/ws/chat/`,
    });
    await project.agent('create_user', { username: 'ada', password: PASSWORD });
    lobby = await project.agent<number>('create_room', { title: 'Lobby' });
    dir = await mkdtemp(join(tmpdir(), 'portcullis-state-'));
    gateway = await startGatewayProcess(
      {
        DATABASE_URL: `sqlite:${join(dir, 'portcullis.db')}`,
        DJANGO_DATABASE_URL: project.databaseUrl,
        DJANGO_SECRET_KEY: project.secretKey,
        REDIS_URL: project.redisUrl,
        CHANNELS_REDIS_PREFIX: project.channelsPrefix,
        ALLOWED_ORIGINS: project.url,
      },
      { port },
    );
    browser = await launchBrowser();
  });

  after(async () => {
    await closeBrowser(browser);
    if (gateway !== undefined) await stopProcess(gateway.child, 'SIGTERM');
    await project?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('log in with Django, join a room, talk, hear Django', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = watchPage(page);
    try {
      await page.goto(`${project.url}/`);
      // Not logged in: Django's login_required sends the browser to its login form.
      await page.waitForURL(/\/accounts\/login\//);
      await page.fill('input[name=username]', 'ada');
      await page.fill('input[name=password]', PASSWORD);
      await Promise.all([page.waitForURL(`${project.url}/`), page.click('button[type=submit]')]);
      await page.locator('li.room-link', { hasText: 'Lobby' }).click();
      const room = page.locator(`#room-${lobby}`);
      await room.locator('h2', { hasText: 'Lobby' }).waitFor();
      await room.locator('input').fill('<img src=x onerror=alert(1)> hello');
      await room.locator('button').click();
      await room.locator('.message', { hasText: '<img src=x onerror=alert(1)> hello' }).waitFor();
      await project.agent('group_send', {
        group: `room-${lobby}`,
        message: {
          type: 'chat.message',
          room_id: lobby,
          username: 'django',
          message: 'from a view',
        },
      });
      await room.locator('.message', { hasText: 'from a view' }).waitFor();
      await page.locator('li.room-link', { hasText: 'Lobby' }).click();
      await room.waitFor({ state: 'detached' });
      assert.deepEqual(problems.errors, []);
      assert.deepEqual(problems.dialogs, [], 'no error alert, no script from a message');
    } catch (error) {
      await screenshot(page, 'django-page');
      throw error;
    } finally {
      await context.close();
    }
  });
});
