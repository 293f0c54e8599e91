// Browser test of feedings v2 (issue 15) at 375 px, against the real pulsed (PULSE_BIN) and
// Debian's Chromium, like ui.test.mjs: a left-breast timer started, the page reloaded (the
// timer is a start time in localStorage, not a running counter), stopped: one feeding whose
// duration is within a second of the real one and whose given_at is the start; the one-tap
// bottle of the last amount; ounces through the real form and server (0.1, 4.5, 67.6 oz stored
// as round(oz × 29.5735) ml and shown back the same; 67.7 refused by the form, nothing sent);
// "since last feed" in the header and the day's timeline. Screenshots of the quick log and the
// timeline go to tests/artifacts/web/ (copied to docs/screenshots for the README).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startUi } from './browser.mjs';
import { ROOT, middayZone, waitFor } from '../../tests/e2e/helpers.mjs';

const ARTIFACTS = path.join(ROOT, 'tests/artifacts/web');
const PASSWORD = 'correct horse battery staple';
const ZONE = middayZone();
const PHONE = { viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true, deviceScaleFactor: 1 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let origin;
let browser;
let ui;
before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  ui = await startUi();
  ({ origin, browser } = ui);
});

after(async () => {
  if (ui) await ui.stop();
});

describe('feedings v2 on a phone', () => {
  const errors = [];
  let context;
  let page;
  const noErrors = () => assert.deepEqual(errors.splice(0), []);
  // The subject's feedings as the API has them (the page's cookie), newest first.
  const feedings = async () => {
    const r = await page.request.get(`${origin}/api/v1/feedings?limit=100`);
    assert.equal(r.status(), 200);
    return (await r.json()).items;
  };
  const nav = async (label) => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label }).click();
    await page.getByRole('heading', { level: 1, name: label }).waitFor();
  };

  before(async () => {
    context = await browser.newContext({ ...PHONE, baseURL: origin, reducedMotion: 'reduce', timezoneId: ZONE });
    context.setDefaultTimeout(10000);
    page = await context.newPage();
    page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    await page.goto('/register');
    await page.getByLabel('Email').fill(`feed-${Date.now()}@example.com`);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('Name (optional)').fill('Nia');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { level: 1, name: 'Live' }).waitFor();
  });
  after(async () => {
    if (context) await context.close();
  });

  it('a left-breast timer survives a reload and logs one feeding of the real duration', async () => {
    await nav('Feedings');
    await page.getByRole('button', { name: 'Start left breast timer' }).waitFor();
    // no feeding yet: since_last_s is null and the header says nothing
    await sleep(500);
    assert.equal(await page.locator('.since-last').isVisible(), false, 'no "since last feed" before the first');
    const t0a = Date.now();
    await page.getByRole('button', { name: 'Start left breast timer' }).click();
    const t0b = Date.now();
    await page.locator('.timer-running').waitFor();
    const stored = await page.evaluate(() =>
      Object.entries(localStorage).find(([k]) => k.startsWith('pulse.feed-timer.')),
    );
    assert.ok(stored, 'the start time is kept in localStorage');
    const { method, start } = JSON.parse(stored[1]);
    assert.equal(method, 'breast_left');
    assert.ok(Date.parse(start) >= t0a - 50 && Date.parse(start) <= t0b + 50, 'the start is the moment of the tap');
    await sleep(2200);
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Feedings' }).waitFor();
    const clock = page.getByRole('timer');
    await clock.waitFor();
    // counted from the stored start, not from the reload
    await waitFor(async () => Number(await clock.getAttribute('data-seconds')) >= 2);
    assert.match(await page.locator('.timer-side').textContent(), /Left breast/);
    await sleep(1500);
    const t1a = Date.now();
    await page.getByRole('button', { name: 'Stop and log' }).click();
    const t1b = Date.now();
    await page.getByText(/^Logged Left breast, \d+ s of breast milk\.$/).waitFor();
    await page.locator('.quick-buttons').waitFor();
    const items = await feedings();
    assert.equal(items.length, 1, 'one feeding');
    const f = items[0];
    assert.equal(f.method, 'breast_left');
    assert.equal(f.kind, 'breast_milk');
    assert.equal(f.amount_ml, null);
    assert.equal(Date.parse(f.given_at), Date.parse(start), 'given_at is the start');
    const real = ((t1a + t1b) / 2 - (t0a + t0b) / 2) / 1000;
    assert.ok(Math.abs(f.duration_s - real) <= 1, `duration ${f.duration_s} s, real ${real.toFixed(2)} s`);
    assert.ok(f.duration_s >= 3);
    assert.equal(
      await page.evaluate(() => Object.keys(localStorage).some((k) => k.startsWith('pulse.feed-timer.'))),
      false,
    );
    // the list, "since last feed" in the header, the timeline
    await page.locator('.feedings-list .item', { hasText: 'Left breast' }).waitFor();
    await page.locator('.since-last', { hasText: /\d+ min since last feed/ }).waitFor();
    await waitFor(async () => (await page.locator('.day-chart').getAttribute('data-points')) === '1');
    noErrors();
  });

  it('a timer can be discarded: nothing is logged', async () => {
    await page.getByRole('button', { name: 'Start right breast timer' }).click();
    await page.getByRole('button', { name: 'Discard' }).click();
    await page.locator('.quick-buttons').waitFor();
    assert.equal((await feedings()).length, 1);
    noErrors();
  });

  it('a breastfeed edited: another side, a duration and an amount (PATCH with If-Match)', async () => {
    const [f] = await feedings();
    const item = page.locator('.feedings-list .item', { hasText: 'Left breast' });
    await item.getByRole('button', { name: /^Edit / }).click();
    const form = page.locator('.feedings-list form.edit-form');
    await form.getByLabel('Method').selectOption('breast_both');
    await form.getByLabel('Duration (min)').fill('12.5');
    await form.getByLabel('Amount (ml)').fill('30');
    await form.getByRole('button', { name: 'Save' }).click();
    await page.locator('.feedings-list .item', { hasText: 'Both breasts' }).waitFor();
    const [g] = await feedings();
    assert.equal(g.id, f.id);
    assert.deepEqual([g.method, g.duration_s, g.amount_ml, g.version], ['breast_both', 750, 30, f.version + 1]);
    // switching it to a bottle with no amount is refused in the form, nothing sent
    await page
      .locator('.feedings-list .item', { hasText: 'Both breasts' })
      .getByRole('button', { name: /^Edit / })
      .click();
    await form.getByLabel('Amount (ml)').fill('');
    await form.getByLabel('Method').selectOption('bottle');
    await form.getByRole('button', { name: 'Save' }).click();
    await form.getByText('Enter a whole number of millilitres.').waitFor();
    await form.getByRole('button', { name: 'Cancel' }).click();
    assert.equal((await feedings())[0].version, g.version);
    noErrors();
  });

  it('a timer forgotten for 7 h is logged as the 6 h the API allows, from its start', async () => {
    const start = await page.evaluate(() => {
      const k = Object.keys(localStorage).find((x) => x.startsWith('pulse.subject.'));
      const t = { method: 'breast_right', start: new Date(Date.now() - 7 * 3600e3).toISOString() };
      localStorage.setItem(`pulse.feed-timer.${localStorage.getItem(k)}`, JSON.stringify(t));
      return t.start;
    });
    await page.reload();
    await page.getByText('over 6 h: logged as 6 h').waitFor();
    await page.getByRole('button', { name: 'Stop and log' }).click();
    await page.locator('.quick-buttons').waitFor();
    const all = await feedings();
    assert.equal(all.length, 2);
    const f = all.find((x) => x.method === 'breast_right'); // listed by given_at: 7 h ago
    assert.deepEqual([f.duration_s, Date.parse(f.given_at)], [21600, Date.parse(start)]);
    // gone again, for the figures and pictures that follow
    const del = await page.request.delete(`${origin}/api/v1/feedings/${f.id}`, {
      headers: { Origin: origin, 'If-Match': `"${f.version}"` },
    });
    assert.equal(del.status(), 204);
    await waitFor(async () => (await page.locator('.feedings-list .item').count()) === 1);
    noErrors();
  });

  it('ounces: the profile unit, values through the form and server, 67.7 refused', async () => {
    await nav('Profile');
    await page.getByLabel('Volumes in').selectOption('oz');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.getByText('Saved.').waitFor();
    await nav('Feedings');
    const form = page.locator('form.quick-log');
    const amount = form.getByLabel('Amount (oz)');
    for (const oz of ['67.6', '0.1', '4.5']) {
      await amount.fill(oz);
      await form.getByLabel('Method').selectOption('bottle');
      await form.getByRole('button', { name: 'Log feeding' }).click();
      await page.getByText(`Logged Bottle, ${oz} oz of`).waitFor();
      const [f] = await feedings();
      assert.equal(f.method, 'bottle');
      assert.equal(f.amount_ml, Math.round(Number(oz) * 29.5735), `${oz} oz stored in ml`);
      await page
        .locator('.feedings-list .item .amount', { hasText: `${oz} oz` })
        .first()
        .waitFor();
    }
    const before = (await feedings()).length;
    await amount.fill('67.7');
    await form.getByRole('button', { name: 'Log feeding' }).click();
    await form.getByText('Enter 0.1 to 67.6 oz.').waitFor();
    assert.equal(await amount.getAttribute('aria-invalid'), 'true');
    await sleep(300);
    assert.equal((await feedings()).length, before, 'nothing sent');
    // the one-tap bottle repeats the last amount
    const bottle = page.getByRole('button', { name: 'Log a bottle of 4.5 oz' });
    await bottle.click();
    await waitFor(async () => (await feedings()).length === before + 1);
    const [f] = await feedings();
    assert.deepEqual([f.method, f.amount_ml], ['bottle', 133]);
    noErrors();
  });

  it('the timeline shows the day and the interval figures; screenshots', async () => {
    await waitFor(async () => (await page.locator('.day-chart').getAttribute('data-points')) === '5');
    await page.locator('.timeline-summary', { hasText: '5 feedings on' }).waitFor();
    // a morning of feedings (it is about noon in the zone): bars where they belong
    const r = await page.request.get(`${origin}/api/v1/feedings/timeline`);
    const { date, timezone } = await r.json();
    assert.equal(timezone, ZONE);
    const east = ZONE === 'Etc/GMT' ? 0 : -Number(ZONE.slice(7)); // POSIX signs
    const at = (hh, mm) =>
      new Date(Date.parse(`${date}T00:00:00Z`) - east * 3600e3 + (hh * 60 + mm) * 60e3).toISOString();
    const morning = [
      { given_at: at(0, 40), method: 'bottle', amount_ml: 118, kind: 'formula' },
      { given_at: at(3, 15), method: 'breast_left', duration_s: 14 * 60 },
      { given_at: at(6, 5), method: 'bottle', amount_ml: 148, kind: 'formula' },
      { given_at: at(8, 50), method: 'breast_right', duration_s: 21 * 60 },
    ];
    for (const data of morning)
      assert.equal(
        (await page.request.post(`${origin}/api/v1/feedings`, { data, headers: { Origin: origin } })).status(),
        201,
      );
    await waitFor(async () => (await page.locator('.day-chart').getAttribute('data-points')) === '9');
    await page.locator('.timeline-summary', { hasText: '9 feedings on' }).waitFor();
    await page.locator('.today-summary', { hasText: '86.7 oz today' }).waitFor();
    await waitFor(async () => /\d h \d+ min/.test(await page.locator('.interval-figures').textContent()));
    // the timeline of another day (the date picker) is empty
    await page.locator('.timeline-date').fill('2026-01-02');
    await page.locator('.timeline-summary', { hasText: '0 feedings on 2026-01-02' }).waitFor();
    await page.locator('.timeline-date').fill(date);
    await page.locator('.timeline-summary', { hasText: '9 feedings on' }).waitFor();
    await page.locator('.timeline-date').blur();
    await page.locator('.timeline').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(ARTIFACTS, 'feedings-timeline-phone.png') });
    // a timer started 12 min 34 s ago, as the page shows it after a reload
    await page.evaluate(() => {
      const k = Object.keys(localStorage).find((x) => x.startsWith('pulse.subject.'));
      const sid = localStorage.getItem(k);
      const start = new Date(Date.now() - 754e3).toISOString();
      localStorage.setItem(`pulse.feed-timer.${sid}`, JSON.stringify({ method: 'breast_left', start }));
    });
    await page.reload();
    await page.locator('.timer-running').waitFor();
    await waitFor(async () => Number(await page.getByRole('timer').getAttribute('data-seconds')) >= 754);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(ARTIFACTS, 'feedings-timer-phone.png') });
    await page.getByRole('button', { name: 'Discard' }).click();
    await page.locator('.quick-buttons').waitFor();
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(ARTIFACTS, 'feedings-quick-phone.png') });
    const fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
    assert.ok(fits, 'no horizontal scrolling at 375 px');
    noErrors();
  });
});
