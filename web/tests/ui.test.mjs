// Browser tests of the UI: Playwright (playwright-core) driving Debian's Chromium against the
// real pulsed (PULSE_BIN, default build-asan/pulsed) serving web/dist, with the Postgres and
// Redis of DATABASE_URL / REDIS_URL. The same scenarios run at a phone viewport (375x812) and
// a desktop one (1280x800). Any console error or uncaught page error fails the test it
// happened in. Screenshots go to tests/artifacts/web/.
//
// The live parts (charts receiving points, a second browser seeing a change, revocation)
// need /api/v1/live: when the binary has no such route they are skipped, saying so.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchBrowser } from './browser.mjs';
import {
  ROOT,
  freePort,
  middayZone,
  startServer,
  stopServer,
  waitFor,
  waitReadyRaw,
} from '../../tests/e2e/helpers.mjs';

const ARTIFACTS = path.join(ROOT, 'tests/artifacts/web');
const PASSWORD = 'correct horse battery staple';
const VIEWPORTS = [
  { name: 'phone', viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true, deviceScaleFactor: 1 },
  { name: 'desktop', viewport: { width: 1280, height: 800 } },
];

let origin;
let browser;
// The browsers' (and so the account's) time zone: about noon now, so that "today" does not
// end during the run, whenever it runs.
const ZONE = middayZone();

// One hook each way (node 20 does not wait for one root-level hook before the next).
let srv;
before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  // Origin checks need the public origin before the server starts: pick the port first.
  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  srv = await startServer({
    PULSE_LISTEN: `127.0.0.1:${port}`,
    PULSE_PUBLIC_ORIGIN: origin,
    PULSE_WEB_ROOT: path.join(ROOT, 'web/dist'),
    PULSE_ACCESS_LOG: 'off',
  });
  await waitReadyRaw(srv);
  // the live socket is part of the dashboard: unauthenticated it is 401, never 404
  assert.equal((await fetch(`${origin}/api/v1/live`)).status, 401);
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (srv) await stopServer(srv); // exit status 0, no sanitizer report
});

// Collects console errors and page errors: any of them fails the test that saw it.
function watch(page, errors, label) {
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    errors.push(`${label} console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`${label} page error: ${e.message}`));
}

async function newPage(vp, errors, label) {
  const { name, ...options } = vp;
  const context = await browser.newContext({ ...options, baseURL: origin, reducedMotion: 'reduce', timezoneId: ZONE });
  context.setDefaultTimeout(10000);
  const page = await context.newPage();
  watch(page, errors, label);
  return { context, page };
}

const shot = (page, file) => page.screenshot({ path: path.join(ARTIFACTS, file) });

async function nav(page, label) {
  // At 375 px the navigation is a row of large links under the header; the same links.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label }).click();
  await page.getByRole('heading', { level: 1, name: label }).waitFor();
}

for (const vp of VIEWPORTS) {
  describe(`web UI at ${vp.name} size (${vp.viewport.width}x${vp.viewport.height})`, () => {
    const errors = [];
    const email = `web-${vp.name}-${Date.now()}@example.com`;
    let a; // { context, page }: the first browser
    let b; // the second browser, same user

    before(async () => {
      a = await newPage(vp, errors, 'A');
    });
    after(async () => {
      if (a) await a.context.close();
      if (b) await b.context.close();
    });
    // `expected`: patterns of errors the test provokes on purpose (Chromium logs every 4xx
    // response as a console error, so a deliberate 422 shows up there too).
    const noErrors = (expected = []) =>
      assert.deepEqual(
        errors.splice(0).filter((e) => !expected.some((re) => re.test(e))),
        [],
      );

    it('sends a visitor to sign in, and registers', async (t) => {
      const { page } = a;
      await page.goto('/');
      await page.waitForURL('**/login');
      await page.getByLabel('Email').waitFor();
      // What the first page load really cost on the wire (gzip bodies and HTTP headers).
      const entries = await page.evaluate(() =>
        [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')].map((e) => ({
          name: e.name,
          size: e.transferSize,
        })),
      );
      const bytes = entries.reduce((n, e) => n + e.size, 0);
      t.diagnostic(`first load over the wire: ${(bytes / 1024).toFixed(1)} KB in ${entries.length} responses`);
      assert.ok(bytes > 0 && bytes < 150 * 1024, `${bytes} bytes`);
      await page.getByRole('link', { name: 'Create an account' }).click();
      await page.getByRole('heading', { name: 'Create an account' }).waitFor();
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByLabel('Name (optional)').fill(`Tester ${vp.name}`);
      await page.getByRole('button', { name: 'Create account' }).click();
      await page.getByRole('heading', { level: 1, name: 'Live' }).waitFor();
      assert.equal(new URL(page.url()).pathname, '/');
      noErrors();
    });

    it('shows validation errors from the API next to their fields', async () => {
      const { page } = a;
      await nav(page, 'Profile');
      await page.getByLabel('Daily target (ml)').fill('20000');
      await page.getByRole('button', { name: 'Save profile' }).click();
      const err = page.locator('.field-error:visible');
      await err.first().waitFor();
      assert.match(await err.first().textContent(), /\S/);
      assert.equal(await page.getByLabel('Daily target (ml)').getAttribute('aria-invalid'), 'true');
      noErrors([/^A console: Failed to load resource: the server responded with a status of 422\b/]);
    });

    it('sets the daily target in the profile', async () => {
      const { page } = a;
      await page.getByLabel('Daily target (ml)').fill('500');
      await page.getByRole('button', { name: 'Save profile' }).click();
      await page.getByText('Saved.').waitFor();
      noErrors();
    });

    it('creates an access token shown once, revokes it, and exports the data', async () => {
      const { page } = a;
      await page.getByRole('textbox', { name: 'Name', exact: true }).last().fill('kitchen tablet');
      await page.getByRole('button', { name: 'Create token' }).click();
      const secret = page.locator('.token-shown code');
      await secret.waitFor();
      assert.match(await secret.textContent(), /^pat_[A-Za-z0-9_-]{20,}$/);
      await page.locator('.item', { hasText: 'kitchen tablet' }).waitFor();
      await shot(page, `${vp.name}-profile.png`);
      await page.getByRole('button', { name: 'Revoke token kitchen tablet' }).click();
      await page.getByText('No access tokens.').waitFor();
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('link', { name: 'Download my data' }).click(),
      ]);
      const exported = JSON.parse(readFileSync(await download.path(), 'utf8'));
      assert.equal(exported.user.email, email);
      assert.equal(exported.user.daily_target_ml, 500);
      noErrors();
    });

    it("logs a feeding and today's progress moves", async () => {
      const { page } = a;
      await nav(page, 'Feedings');
      const summary = page.locator('.today-summary');
      await waitFor(async () => /0 ml of 500 ml/.test(await summary.textContent()));
      await page.getByRole('button', { name: '120', exact: true }).click();
      await page.getByRole('button', { name: 'Log feeding' }).click();
      await page.getByText('Logged 120 ml of milk.').waitFor();
      await waitFor(async () => /120 ml of 500 ml \(24%\)/.test(await summary.textContent()));
      assert.equal(await page.locator('.today progress').evaluate((p) => p.value), 120);
      await page.locator('.feedings-list .item', { hasText: '120 ml' }).waitFor();
      noErrors();
    });

    it('edits a feeding (If-Match) and the totals follow', async () => {
      const { page } = a;
      await page.getByRole('button', { name: /^Edit 120 ml milk/ }).click();
      await page.locator('.edit-form').getByLabel('Amount (ml)').fill('130');
      await page.locator('.edit-form').getByRole('button', { name: 'Save' }).click();
      await page.locator('.feedings-list .item', { hasText: '130 ml' }).waitFor();
      await waitFor(async () => /130 ml of 500 ml/.test(await page.locator('.today-summary').textContent()));
      await waitFor(async () => (await page.locator('.feedings-page .chart').getAttribute('data-points')) === '30');
      await waitFor(async () => /^130 ml in 1 feeding /.test(await page.locator('.stats-summary').textContent()));
      await shot(page, `${vp.name}-feedings.png`);
      noErrors();
    });

    it('creates notes and finds them by search and tag', async () => {
      const { page } = a;
      await nav(page, 'Notes');
      const form = page.locator('form.note-form');
      for (const [title, body, tags] of [
        ['Walk in the park', 'Sunny, forty minutes by the pond.', 'walk outside'],
        ['Vet appointment', 'Tuesday 10:00, bring the booklet.', 'health'],
      ]) {
        await form.getByLabel('Title').fill(title);
        await form.getByLabel('Text').fill(body);
        await form.getByLabel('Tags').fill(tags);
        await form.getByRole('button', { name: 'Add note' }).click();
        await page.locator('.notes-list .item', { hasText: title }).waitFor();
      }
      const list = page.locator('.notes-list');
      await page.getByRole('searchbox', { name: 'Search notes' }).fill('pond');
      await waitFor(
        async () => (await list.locator('.item').count()) === 1 && /Walk in the park/.test(await list.textContent()),
      );
      await page.getByRole('searchbox', { name: 'Search notes' }).fill('zebra');
      await page.getByText('No notes match.').waitFor();
      await page.getByRole('searchbox', { name: 'Search notes' }).fill('');
      await waitFor(async () => (await list.locator('.item').count()) === 2);
      await page.getByRole('button', { name: /#health/ }).click();
      await waitFor(
        async () => (await list.locator('.item').count()) === 1 && /Vet appointment/.test(await list.textContent()),
      );
      await page.getByRole('button', { name: /#health/ }).click();
      await waitFor(async () => (await list.locator('.item').count()) === 2);
      await page.getByRole('button', { name: 'Pin note Vet appointment' }).click();
      await waitFor(async () => /Vet appointment/.test(await list.locator('.item').first().textContent()));
      await shot(page, `${vp.name}-notes.png`);
      noErrors();
    });

    it('draws live metrics on the dashboard charts', async (t) => {
      const { page } = a;
      await nav(page, 'Live');
      const charts = page.locator('.dashboard .chart');
      assert.equal(await charts.count(), 4);
      await waitFor(
        async () => {
          const points = await charts.evaluateAll((els) => els.map((e) => Number(e.dataset.points)));
          return points.every((n) => n >= 3);
        },
        { timeout: 15000 },
      );
      await page.locator('.live-status[data-status="open"]').waitFor();
      assert.match(await page.locator('.tile', { hasText: 'Memory' }).textContent(), /of/);
      await shot(page, `${vp.name}-dashboard.png`);
      noErrors();
    });

    it('a second browser signed in as the same user sees changes live', async (t) => {
      b = await newPage(vp, errors, 'B');
      const pb = b.page;
      await pb.goto('/login');
      // Keyboard only: the email field has focus, Tab to the password, Enter submits.
      await pb.keyboard.type(email);
      await pb.keyboard.press('Tab');
      await pb.keyboard.type(PASSWORD);
      await pb.keyboard.press('Enter');
      await pb.getByRole('heading', { level: 1, name: 'Live' }).waitFor();
      await nav(pb, 'Feedings');
      await waitFor(async () => /130 ml of 500 ml/.test(await pb.locator('.today-summary').textContent()));
      await pb.locator('.live-status[data-status="open"]').waitFor();

      const pa = a.page;
      await nav(pa, 'Feedings');
      await pa.getByLabel('Amount (ml)').fill('77');
      await pa.getByRole('button', { name: 'Log feeding' }).click();
      await pa.getByText('Logged 77 ml of milk.').waitFor();
      // B never reloads: the event arrives over the socket.
      await pb.locator('.feedings-list .item', { hasText: '77 ml' }).waitFor({ timeout: 5000 });
      await waitFor(async () => /207 ml of 500 ml/.test(await pb.locator('.today-summary').textContent()), {
        timeout: 5000,
      });

      // And the other way round, with a delete.
      await pb.getByRole('button', { name: /^Delete 77 ml milk/ }).click();
      await pb.getByRole('button', { name: /^Confirm deleting 77 ml milk/ }).click();
      await waitFor(async () => (await pa.locator('.feedings-list .item', { hasText: '77 ml' }).count()) === 0, {
        timeout: 5000,
      });
      await waitFor(async () => /130 ml of 500 ml/.test(await pa.locator('.today-summary').textContent()), {
        timeout: 5000,
      });
      noErrors();
    });

    it('revoking the second session sends that browser to sign in (close code 4401)', async (t) => {
      assert.ok(b, 'the second browser of the previous test');
      const pa = a.page;
      await nav(pa, 'Profile');
      const revoke = pa.getByRole('button', { name: /^Revoke session/ });
      await revoke.first().waitFor();
      assert.equal(await revoke.count(), 1);
      await revoke.click();
      await b.page.waitForURL('**/login', { timeout: 5000 });
      await b.page.getByText('This session was signed out').waitFor();
      noErrors();
    });

    it('changes the password, and revokes every access token when asked', async () => {
      const { page } = a;
      await nav(page, 'Profile');
      await page.getByRole('textbox', { name: 'Name', exact: true }).last().fill('old script');
      await page.getByRole('button', { name: 'Create token' }).click();
      await page.locator('.item', { hasText: 'old script' }).waitFor();
      const secret = (await page.locator('.token-shown code').textContent()).trim();
      const tokenStatus = async () =>
        (await fetch(`${origin}/api/v1/me`, { headers: { Authorization: `Bearer ${secret}` } })).status;
      assert.equal(await tokenStatus(), 200);
      const form = page.locator('form.password-form');
      // a wrong current password: said next to the form, nothing changes
      await form.getByLabel('Current password').fill('not my password!');
      await form.getByLabel('New password').fill('a fresh passphrase 2');
      await form.getByLabel('Also revoke every access token').check();
      await form.getByRole('button', { name: 'Change password' }).click();
      await form.getByText('The current password is wrong.').waitFor();
      assert.equal(await tokenStatus(), 200);
      // the right one, with the box ticked
      await form.getByLabel('Current password').fill(PASSWORD);
      await form.getByRole('button', { name: 'Change password' }).click();
      await form.getByText(/Password changed\..*every access token was revoked/).waitFor();
      await page.getByText('No access tokens.').waitFor();
      assert.equal(await tokenStatus(), 401);
      assert.equal(await form.getByLabel('Also revoke every access token').isChecked(), false);
      // still signed in here
      await nav(page, 'Feedings');
      noErrors([/^A console: Failed to load resource: the server responded with a status of 403\b/]);
    });

    it('signs out', async () => {
      const { page } = a;
      await page.getByRole('button', { name: 'Sign out' }).first().click();
      await page.waitForURL('**/login');
      await page.getByText('You are signed out.').waitFor();
      await page.goto('/feedings');
      await page.waitForURL('**/login');
      const cookies = await a.context.cookies();
      assert.ok(!cookies.some((c) => c.name === 'pulse_session' && c.value), 'the session cookie is cleared');
      noErrors();
    });

    it('deletes an account with its password', async () => {
      const { page } = a;
      await page.getByRole('link', { name: 'Create an account' }).click();
      await page.getByLabel('Email').fill(`gone-${email}`);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Create account' }).click();
      await page.getByRole('heading', { level: 1, name: 'Live' }).waitFor();
      await nav(page, 'Profile');
      const form = page.locator('form.danger-zone');
      await form.getByLabel('Password').fill(PASSWORD);
      await form.getByLabel('I understand that this cannot be undone').check();
      await form.getByRole('button', { name: 'Delete my account' }).click();
      await page.waitForURL('**/login');
      await page.getByText('Your account and all its data were deleted.').waitFor();
      noErrors();
    });
  });
}

describe('static serving of the built UI by pulsed', () => {
  it('answers with CSP, validators, cache policy, gzip and the SPA fallback', async () => {
    let r = await fetch(`${origin}/feedings`, { headers: { 'Accept-Encoding': 'gzip' } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/html/);
    assert.match(r.headers.get('content-security-policy'), /script-src 'self'/);
    assert.doesNotMatch(r.headers.get('content-security-policy'), /unsafe-inline/);
    // WebSockets to the public origin only (the dashboard's socket above passed this policy)
    const connect = /(?:^|;\s*)connect-src ([^;]*)/.exec(r.headers.get('content-security-policy'))[1].trim();
    assert.equal(connect, `'self' ${origin.replace(/^http/, 'ws')}`);
    assert.equal(r.headers.get('cache-control'), 'no-cache');
    const html = await r.text();
    const js = html.match(/src="(\/assets\/[^"]+\.js)"/)[1];
    r = await fetch(origin + js, { headers: { 'Accept-Encoding': 'gzip' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.equal(r.headers.get('content-encoding'), 'gzip');
    assert.equal(r.headers.get('vary'), 'Accept-Encoding');
    assert.match(r.headers.get('content-type'), /^text\/javascript/);
    const etag = r.headers.get('etag');
    await r.arrayBuffer();
    r = await fetch(origin + js, { headers: { 'Accept-Encoding': 'gzip', 'If-None-Match': etag } });
    assert.equal(r.status, 304);
    r = await fetch(`${origin}/api/v1/nothing-here`);
    assert.equal(r.status, 404);
    assert.equal(r.headers.get('content-type'), 'application/problem+json');
    await r.arrayBuffer();
    r = await fetch(`${origin}/health/nothing`);
    assert.equal(r.status, 404);
    await r.arrayBuffer();
  });
});
