// Browser test of the offline PWA (issue 16) at 375 px, against two real pulsed processes
// (PULSE_BIN, the Postgres and Redis of the environment) and Debian's Chromium:
// - offline writes: with the network cut (Playwright's setOffline), three bottles are logged
//   and one of them edited; the header says "3 changes waiting"; the page is reloaded while
//   still offline and the app shell comes from the service worker; back online, the outbox
//   replays in order and the server has exactly three feedings, the edit applied, which a
//   second device (another browser context) sees; a note written offline likewise;
// - a conflict: an edit made offline of a feeding that another device changes meanwhile is
//   refused on replay (412) and shown with the server's reason until dismissed, not dropped;
// - resume: while a writer keeps creating feedings through the other pulsed, the page's
//   pulsed is killed (SIGKILL: the socket drops from the server side) and started again; the
//   page reconnects (resume from its last seq, or a refetch) and shows every feeding once.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchBrowser } from './browser.mjs';
import { ROOT, freePort, startServer, stopServer, waitFor, waitReadyRaw } from '../../tests/e2e/helpers.mjs';

const ARTIFACTS = path.join(ROOT, 'tests/artifacts/web');
const PASSWORD = 'correct horse battery staple';
const PHONE = { viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true, deviceScaleFactor: 1 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let portA;
let origin; // the page's pulsed (A)
let srvA;
let srvB; // the other replica: same Postgres and Redis
let browser;

const envFor = (port) => ({
  PULSE_LISTEN: `127.0.0.1:${port}`,
  PULSE_PUBLIC_ORIGIN: `http://127.0.0.1:${port}`,
  PULSE_WEB_ROOT: path.join(ROOT, 'web/dist'),
  PULSE_ACCESS_LOG: 'off',
});

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  portA = await freePort();
  origin = `http://127.0.0.1:${portA}`;
  srvA = await startServer(envFor(portA));
  await waitReadyRaw(srvA);
  srvB = await startServer(envFor(await freePort()));
  await waitReadyRaw(srvB);
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (srvA) await stopServer(srvA);
  if (srvB) await stopServer(srvB);
});

// The REST API with a bearer token (the session token of the register answer).
async function call(srv, token, method, p, body, headers = {}) {
  const r = await fetch(srv.url(`/api/v1${p}`), {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body ? { 'Content-Type': 'application/json' } : {}),
      ...headers,
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null, etag: r.headers.get('etag') };
}

describe('offline PWA', () => {
  const errors = [];
  let context;
  let page;
  let email;
  let token;
  const noErrors = () => assert.deepEqual(errors.splice(0), []);
  const feedings = async () => {
    const r = await call(srvB, token, 'GET', '/feedings?limit=100');
    assert.equal(r.status, 200);
    return r.json.items;
  };
  const banner = () => page.locator('.outbox-waiting');
  const rows = () => page.locator('ul.items > li');

  before(async () => {
    email = `offline-${Date.now()}@example.com`;
    const r = await call(srvB, '', 'POST', '/auth/register', { email, password: PASSWORD, display_name: 'Ola' });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    token = r.json.token;
    context = await browser.newContext({ ...PHONE, baseURL: origin, reducedMotion: 'reduce' });
    context.setDefaultTimeout(10000);
    page = await context.newPage();
    // the offline phase makes failed loads of the page's own requests (not errors of the app)
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    await page.goto('/login');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Live' }).waitFor();
  });
  after(async () => {
    if (context) await context.close();
  });

  it('serves a manifest with icons and registers a service worker that caches the shell', async () => {
    const m = await page.request.get('/manifest.webmanifest');
    assert.equal(m.status(), 200);
    const manifest = await m.json();
    assert.equal(manifest.display, 'standalone');
    const sizes = manifest.icons.map((i) => `${i.sizes}/${i.purpose}`);
    for (const s of ['192x192/any', '512x512/any', '512x512/maskable']) assert.ok(sizes.includes(s), s);
    for (const i of manifest.icons) assert.equal((await page.request.get(i.src)).status(), 200, i.src);
    assert.equal((await page.request.get('/icons/apple-touch-icon.png')).status(), 200);
    const sw = await page.request.get('/sw.js');
    assert.equal(sw.status(), 200);
    assert.match(sw.headers()['cache-control'], /no-cache/, 'sw.js is never cached as immutable');
    await page.evaluate(() => navigator.serviceWorker.ready);
    await waitFor(() => page.evaluate(() => navigator.serviceWorker.controller !== null));
    const cached = await page.evaluate(async () => {
      const names = await caches.keys();
      const c = await caches.open(names.find((n) => n.startsWith('pulse-shell-')));
      return (await c.keys()).map((r) => new URL(r.url).pathname);
    });
    assert.ok(cached.includes('/index.html'), 'index.html precached');
    assert.ok(
      cached.some((p) => /^\/assets\/index-[0-9a-f]+\.js$/.test(p)),
      'the bundle precached',
    );
    noErrors();
  });

  it('keeps three feedings and an edit made offline, across a reload, and sends them once online', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Feedings' }).click();
    await page.getByRole('heading', { level: 1, name: 'Feedings' }).waitFor();
    const bottle = page.locator('button.quick.bottle');
    await bottle.waitFor();
    await context.setOffline(true);
    for (let i = 1; i <= 3; i++) {
      await bottle.click();
      await waitFor(
        async () =>
          (await banner()
            .textContent()
            .catch(() => '')) === `${i} ${i === 1 ? 'change' : 'changes'} waiting`,
      );
    }
    await waitFor(async () => (await rows().count()) === 3);
    assert.equal(await page.locator('ul.items > li.pending').count(), 3, 'shown as waiting');
    // edit one of them: the queued create carries the new amount (no fourth write)
    await rows()
      .first()
      .getByRole('button', { name: /^Edit / })
      .click();
    const amount = page.locator('form.edit-form').getByLabel(/^Amount \(/);
    await amount.fill('150');
    await page.locator('form.edit-form').getByRole('button', { name: 'Save' }).click();
    await page.locator('form.edit-form').waitFor({ state: 'detached' });
    assert.equal(await banner().textContent(), '3 changes waiting');
    assert.equal((await feedings()).length, 0, 'nothing reached the server');

    // a reload with no network: the shell comes from the service worker, the outbox from IndexedDB
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Feedings' }).waitFor();
    await waitFor(
      async () =>
        (await banner()
          .textContent()
          .catch(() => '')) === '3 changes waiting',
    );
    await page.screenshot({ path: path.join(ARTIFACTS, 'offline-waiting.png') });

    await context.setOffline(false);
    await banner().waitFor({ state: 'detached' });
    const items = await feedings();
    assert.equal(items.length, 3, 'exactly three feedings');
    assert.deepEqual(
      items.map((f) => f.amount_ml).sort((a, b) => a - b),
      [120, 120, 150],
    );
    assert.ok(
      items.every((f) => f.version === 1),
      'the edit went with the create',
    );
    await waitFor(async () => (await rows().count()) === 3 && (await page.locator('li.pending').count()) === 0);

    // a second device sees them
    const other = await browser.newContext({ ...PHONE, baseURL: origin });
    try {
      const p2 = await other.newPage();
      await p2.goto('/login');
      await p2.getByLabel('Email').fill(email);
      await p2.getByLabel('Password').fill(PASSWORD);
      await p2.getByRole('button', { name: 'Sign in' }).click();
      await p2.getByRole('heading', { level: 1, name: 'Live' }).waitFor();
      await p2.goto('/feedings');
      await waitFor(async () => (await p2.locator('ul.items > li').count()) === 3);
      const text = await p2.locator('ul.items').textContent();
      assert.match(text, /150 ml/);
    } finally {
      await other.close();
    }
    noErrors();
  });

  it('shows a write refused on replay (412) until it is dismissed', async () => {
    const [f] = await feedings();
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Feedings' }).waitFor();
    await waitFor(async () => (await rows().count()) === 3);
    await context.setOffline(true);
    await page
      .locator(`ul.items > li[data-id="${f.id}"]`)
      .getByRole('button', { name: /^Edit / })
      .click();
    await page
      .locator('form.edit-form')
      .getByLabel(/^Amount \(/)
      .fill('90');
    await page.locator('form.edit-form').getByRole('button', { name: 'Save' }).click();
    await waitFor(
      async () =>
        (await banner()
          .textContent()
          .catch(() => '')) === '1 change waiting',
    );
    // meanwhile another device changes it
    const r = await call(
      srvB,
      token,
      'PATCH',
      `/feedings/${f.id}`,
      { amount_ml: 60 },
      { 'If-Match': `"${f.version}"` },
    );
    assert.equal(r.status, 200);
    await context.setOffline(false);
    const failed = page.locator('.outbox-failed');
    await failed.waitFor();
    assert.match(
      await failed.textContent(),
      /^An edit of a feeding was not saved \(412\): it was changed on another device/,
    );
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(ARTIFACTS, 'offline-conflict.png') });
    const now = (await feedings()).find((x) => x.id === f.id);
    assert.equal(now.amount_ml, 60, 'the other device’s change stands');
    await page.reload();
    await failed.waitFor(); // kept in IndexedDB
    await failed.getByRole('button', { name: 'Dismiss' }).click();
    await failed.waitFor({ state: 'detached' });
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Feedings' }).waitFor();
    await sleep(300);
    assert.equal(await failed.count(), 0);
    noErrors();
  });

  it('keeps a note written offline and sends it once online', async () => {
    await page.goto('/notes');
    await page.getByRole('heading', { level: 1, name: 'Notes' }).waitFor();
    await context.setOffline(true);
    const form = page.locator('form', { has: page.getByRole('button', { name: 'Add note' }) });
    await form.getByLabel('Title').fill('Night feed');
    await form.getByLabel('Text').fill('Woke at 3, settled quickly.');
    await form.getByLabel('Tags').fill('night');
    await form.getByRole('button', { name: 'Add note' }).click();
    await waitFor(
      async () =>
        (await banner()
          .textContent()
          .catch(() => '')) === '1 change waiting',
    );
    await page.locator('ul.items > li.pending').waitFor();
    await context.setOffline(false);
    await banner().waitFor({ state: 'detached' });
    const r = await call(srvB, token, 'GET', '/notes?limit=100');
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.json.items.map((n) => [n.title, n.body, n.tags]),
      [['Night feed', 'Woke at 3, settled quickly.', ['night']]],
    );
    await waitFor(async () => (await page.locator('ul.items > li.pending').count()) === 0);
    noErrors();
  });

  it('shows every feeding once after the page’s server drops the socket while another keeps writing', async () => {
    await page.goto('/feedings');
    await page.getByRole('heading', { level: 1, name: 'Feedings' }).waitFor();
    await waitFor(() => page.evaluate(() => document.querySelector('.live-status')?.dataset.status === 'open'));
    // the frames of the page's sockets: the seqs received, the resume sent, its answer
    const sockets = [];
    page.on('websocket', (ws) => {
      const sock = { url: ws.url(), seqs: [], sent: [], got: [] };
      sockets.push(sock);
      ws.on('framesent', (f) => sock.sent.push(JSON.parse(f.payload)));
      ws.on('framereceived', (f) => {
        const m = JSON.parse(f.payload);
        if (m.type === 'event') sock.seqs.push(m.seq);
        else if (m.type !== 'metrics') sock.got.push(m);
      });
    });
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Feedings' }).waitFor();
    await waitFor(() => page.evaluate(() => document.querySelector('.live-status')?.dataset.status === 'open'));
    const before = (await feedings()).length;
    const created = [];
    let writing = true;
    const writer = (async () => {
      let i = 0;
      while (writing) {
        i++;
        const r = await call(
          srvB,
          token,
          'POST',
          '/feedings',
          { kind: 'formula', amount_ml: 10 + (i % 50) },
          {
            'Idempotency-Key': `resume-${Date.now()}-${i}`,
          },
        );
        assert.equal(r.status, 201);
        created.push(r.json.id);
        await sleep(40);
      }
    })();
    await sleep(400);
    await srvA.stop('SIGKILL');
    await waitFor(() => page.evaluate(() => document.querySelector('.live-status')?.dataset.status !== 'open'));
    await sleep(500);
    srvA = await startServer(envFor(portA));
    await waitReadyRaw(srvA);
    await waitFor(() => page.evaluate(() => document.querySelector('.live-status')?.dataset.status === 'open'), {
      timeout: 20000,
    });
    await sleep(400);
    writing = false;
    await writer;
    const all = await feedings();
    assert.equal(all.length, before + created.length);
    // the first socket saw some events, the next one resumed after the newest of them
    assert.ok(sockets.length >= 2, `${sockets.length} sockets`);
    const first = sockets[0];
    assert.ok(first.seqs.length > 0, 'events before the drop');
    const last = sockets.at(-1);
    // reopened with ?after= the newest seq seen: the replay comes before any live frame
    const resumed = sockets.slice(1).find((x) => x.url.includes('?after='));
    assert.ok(resumed, sockets.map((x) => x.url).join(' '));
    assert.equal(new URL(resumed.url).searchParams.get('after'), first.seqs.at(-1));
    await waitFor(() => last.got.some((m) => m.type === 'resumed' && m.count > 0));
    const seqs = sockets.flatMap((x) => x.seqs).map(BigInt);
    for (let i = 1; i < seqs.length; i++)
      assert.ok(seqs[i] > seqs[i - 1], 'every event once, in order, across the drop');
    // the page's first 20 (newest first): each once, all of the newest on the server
    const newest = all.slice(0, 20).map((x) => x.id);
    await waitFor(async () => {
      const ids = await rows().evaluateAll((els) => els.map((e) => e.dataset.id));
      return newest.every((id) => ids.includes(id));
    });
    const ids = await rows().evaluateAll((els) => els.map((e) => e.dataset.id));
    assert.equal(new Set(ids).size, ids.length, 'no feeding shown twice');
    for (const id of ids)
      assert.ok(
        all.some((x) => x.id === id),
        'only feedings of the server',
      );
    noErrors();
  });
});
