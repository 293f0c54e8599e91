// Browser test of care circles (issue 14): parent A creates a subject and invites B from a
// second browser context with a link (and its QR code); B accepts; B logs a feeding and A's
// open page shows it, with who logged it, without a reload; A demotes B to viewer and B's
// write controls go, live. Also: the subject switcher is remembered per device, every page
// reads the chosen subject, an invitation link works once. Same set-up as ui.test.mjs: real
// pulsed (PULSE_BIN), Debian's Chromium, console errors fail the test they happened in.
// Screenshots of the switcher at 375 and 1280 px go to tests/artifacts/web/.
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
const DESKTOP = { viewport: { width: 1280, height: 800 } };

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

const shot = (page, file) => page.screenshot({ path: path.join(ARTIFACTS, file) });
// The whole page, from the top (so the sticky header is where it belongs).
async function fullShot(page, file) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(ARTIFACTS, file), fullPage: true });
}

async function person(label, options, errors) {
  const context = await browser.newContext({ ...options, baseURL: origin, reducedMotion: 'reduce', timezoneId: ZONE });
  context.setDefaultTimeout(10000);
  const page = await context.newPage();
  page.on('console', (m) => m.type() === 'error' && errors.push(`${label} console: ${m.text()}`));
  page.on('pageerror', (e) => errors.push(`${label} page error: ${e.message}`));
  return { context, page };
}

async function register(page, email, name) {
  await page.goto('/register');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByLabel('Name (optional)').fill(name);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { level: 1, name: 'Live' }).waitFor();
}

async function nav(page, label) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label }).click();
  await page.getByRole('heading', { level: 1, name: label }).waitFor();
}

const switcher = (page) => page.getByRole('combobox', { name: 'Subject', exact: true });
const shownSubject = (page) => switcher(page).evaluate((s) => s.options[s.selectedIndex].textContent);

describe('care circles in the web UI', () => {
  const errors = [];
  const stamp = Date.now();
  let a; // parent A (desktop)
  let b; // parent B (phone), a second browser context
  let link; // the invitation link
  let subjectId;
  const noErrors = (expected = []) =>
    assert.deepEqual(
      errors.splice(0).filter((e) => !expected.some((re) => re.test(e))),
      [],
    );

  before(async () => {
    a = await person('A', DESKTOP, errors);
    b = await person('B', PHONE, errors);
  });
  after(async () => {
    if (a) await a.context.close();
    if (b) await b.context.close();
  });

  it('A registers, and the switcher shows their default subject', async () => {
    await register(a.page, `circle-a-${stamp}@example.com`, 'Ann');
    await waitFor(async () => (await switcher(a.page).locator('option').count()) === 1);
    assert.equal(await shownSubject(a.page), 'Ann');
    noErrors();
  });

  it('A creates a subject and shows its records', async () => {
    const { page } = a;
    await nav(page, 'Subjects');
    const form = page.locator('form', { has: page.getByRole('heading', { name: 'New subject' }) });
    await form.getByLabel('Name').fill('Mia');
    await form.getByLabel('Kind').selectOption('baby');
    await form.getByLabel('Daily target (ml)').fill('600');
    await form.getByRole('button', { name: 'Add subject' }).click();
    await page.getByRole('heading', { level: 1, name: 'Mia' }).waitFor();
    subjectId = new URL(page.url()).pathname.split('/').pop();
    assert.match(subjectId, /^[0-9a-f-]{36}$/);
    await page.getByText('you are owner').waitFor();
    // the switcher lists it; choosing it shows its records on every page
    await waitFor(async () => (await switcher(page).locator('option').count()) === 2);
    await switcher(page).selectOption({ label: 'Mia' });
    await nav(page, 'Feedings');
    await page.locator('.subject-line', { hasText: 'For Mia' }).waitFor();
    await waitFor(async () => /0 ml of 600 ml/.test(await page.locator('.today-summary').textContent()));
    noErrors();
  });

  it('A invites a caregiver: a link, shown once, and its QR code', async () => {
    const { page } = a;
    await page.locator('.subject-line').getByRole('link', { name: 'Mia' }).click();
    await page.getByRole('heading', { level: 1, name: 'Mia' }).waitFor();
    await page.getByLabel('Role', { exact: true }).selectOption('caregiver');
    await page.getByRole('button', { name: 'Create invitation link' }).click();
    const shown = page.locator('.invite-shown');
    await shown.waitFor();
    link = (await shown.locator('code').textContent()).trim();
    assert.match(link, new RegExp(`^${origin}/#/invite/[A-Za-z0-9_-]{22,}$`));
    const qr = shown.getByRole('img', { name: /QR code of the invitation link/ });
    await waitFor(async () => /^data:image\/png;base64,/.test((await qr.getAttribute('src')) || ''));
    assert.ok(await qr.evaluate((img) => img.complete && img.naturalWidth >= 200), 'the QR image is drawn');
    await page.locator('.invitations-list .item', { hasText: 'as caregiver' }).waitFor();
    await fullShot(page, 'circles-invite-desktop.png');
    noErrors();
  });

  it('B opens the link before signing in, registers, and accepts', async () => {
    const { page } = b;
    await page.goto(link);
    await page.waitForURL('**/login');
    await page.getByText('Sign in or create an account to accept the invitation.').waitFor();
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByLabel('Email').fill(`circle-b-${stamp}@example.com`);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('Name (optional)').fill('Ben');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { level: 1, name: 'Invitation' }).waitFor();
    await page.getByRole('button', { name: 'Accept invitation' }).click();
    await page.getByRole('heading', { level: 1, name: 'Mia' }).waitFor();
    await page.getByText("You joined Mia's circle as caregiver.").waitFor();
    assert.equal(new URL(page.url()).pathname, `/subjects/${subjectId}`);
    assert.equal(await shownSubject(page), 'Mia');
    // both members listed, for B and (live) for A
    await page.locator('.members-list .item', { hasText: 'Ann' }).waitFor();
    await a.page.locator('.members-list .item', { hasText: 'Ben' }).waitFor({ timeout: 5000 });
    await a.page.locator('.member-count', { hasText: '2 members' }).waitFor();
    await page.locator('.member-count', { hasText: '2 members' }).waitFor();
    // a caregiver does not manage the circle
    assert.equal(await page.getByRole('button', { name: 'Create invitation link' }).count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Remove Ann' }).count(), 0);
    noErrors();
  });

  it('the link works once', async () => {
    const other = await person('C', DESKTOP, errors);
    try {
      await register(other.page, `circle-c-${stamp}@example.com`, 'Cy');
      await other.page.goto(link);
      await other.page.getByRole('button', { name: 'Accept invitation' }).click();
      await other.page.getByText(/This invitation is not valid/).waitFor();
      assert.equal(await shownSubject(other.page), 'Cy');
    } finally {
      await other.context.close();
    }
    noErrors([/^C console: Failed to load resource: the server responded with a status of 404\b/]);
  });

  it('an invitation opened by a member says so, and a revoked one is gone from the list', async () => {
    const { page } = a;
    await page.getByLabel('Role', { exact: true }).selectOption('viewer');
    await page.getByRole('button', { name: 'Create invitation link' }).click();
    await page.locator('.invite-shown', { hasText: 'as viewer' }).waitFor();
    const own = (await page.locator('.invite-shown code').textContent()).trim();
    await page.locator('.invitations-list .item', { hasText: 'as viewer' }).waitFor();
    const mia = page.url();
    await page.goto(own);
    await page.getByRole('button', { name: 'Accept invitation' }).click();
    await page.getByText('You are already a member of this circle.').waitFor();
    await page.getByRole('link', { name: 'Not now' }).click();
    await page.getByRole('heading', { level: 1, name: 'Live' }).waitFor();
    assert.equal(new URL(page.url()).hash, '');
    await page.goto(mia);
    await page.getByRole('button', { name: /^Revoke invitation as viewer/ }).click();
    await waitFor(async () => (await page.locator('.invitations-list .item', { hasText: 'as viewer' }).count()) === 0);
    // the revoked code is refused like an unknown one
    await page.goto(own);
    await page.getByRole('button', { name: 'Accept invitation' }).click();
    await page.getByText(/This invitation is not valid/).waitFor();
    noErrors([/^A console: Failed to load resource: the server responded with a status of (409|404)\b/]);
  });

  it("B logs a feeding and A's open page shows it, with who logged it, without a reload", async () => {
    const pa = a.page;
    await nav(pa, 'Feedings');
    await pa.locator('.live-status[data-status="open"]').waitFor();
    const pb = b.page;
    await nav(pb, 'Feedings');
    await pb.locator('.subject-line', { hasText: 'For Mia' }).waitFor();
    await pb.getByRole('button', { name: '90', exact: true }).click();
    await pb.getByRole('button', { name: 'Log feeding' }).click();
    await pb.getByText('Logged 90 ml of').waitFor();
    await pb.locator('.feedings-list .item', { hasText: 'by you' }).waitFor();
    const item = pa.locator('.feedings-list .item', { hasText: '90 ml' });
    await item.waitFor({ timeout: 5000 });
    assert.match(await item.textContent(), /by Ben/);
    await waitFor(async () => /90 ml of 600 ml/.test(await pa.locator('.today-summary').textContent()), {
      timeout: 5000,
    });
    // the dashboard's "Today" is Mia's too
    await nav(pa, 'Live');
    await waitFor(async () => /90 ml of 600 ml/.test(await pa.locator('.today-summary').textContent()));
    noErrors();
  });

  it('the chosen subject is remembered on the device, and the other subject has its own log', async () => {
    const pb = b.page;
    await pb.reload();
    await pb.getByRole('heading', { level: 1, name: 'Feedings' }).waitFor();
    assert.equal(await shownSubject(pb), 'Mia');
    await switcher(pb).selectOption({ label: 'Ben' });
    await pb.locator('.subject-line', { hasText: 'For Ben' }).waitFor();
    await pb.getByText('No feedings yet.').waitFor();
    await switcher(pb).selectOption({ label: 'Mia' });
    await pb.locator('.feedings-list .item', { hasText: '90 ml' }).waitFor();
    noErrors();
  });

  it("A demotes B to viewer and B's write controls go, without a reload", async () => {
    const pb = b.page;
    await pb.getByRole('button', { name: 'Log feeding' }).waitFor();
    assert.ok((await pb.getByRole('button', { name: /^Edit 90 ml/ }).count()) > 0);
    const pa = a.page;
    await nav(pa, 'Subjects');
    await pa.getByRole('link', { name: 'Mia' }).click();
    await pa.getByRole('heading', { level: 1, name: 'Mia' }).waitFor();
    await pa.getByLabel('Role of Ben').selectOption('viewer');
    await waitFor(async () => (await pb.getByRole('button', { name: 'Log feeding' }).count()) === 0, {
      timeout: 5000,
    });
    await pb.locator('.subject-line .badge', { hasText: 'view only' }).waitFor();
    assert.equal(await pb.getByRole('button', { name: /^(Edit|Delete) / }).count(), 0);
    await pb.locator('.feedings-list .item', { hasText: '90 ml' }).waitFor();
    await nav(pb, 'Notes');
    assert.equal(await pb.getByRole('button', { name: 'Add note' }).count(), 0);
    await nav(pb, 'Live');
    await pb.locator('.today-summary', { hasText: '90 ml' }).waitFor();
    assert.equal(await pb.getByRole('link', { name: 'Log a feeding' }).count(), 0);
    assert.match(await shownSubject(pb), /Mia \(view only\)/);
    noErrors();
  });

  it('screenshots of the switcher at 375 and 1280 px', async () => {
    const pb = b.page;
    await nav(pb, 'Feedings');
    await pb.locator('.feedings-list .item', { hasText: 'by you' }).waitFor();
    await fullShot(pb, 'circles-switcher-phone.png');
    const pa = a.page;
    await nav(pa, 'Feedings');
    await pa.locator('.feedings-list .item', { hasText: 'by Ben' }).waitFor();
    await shot(pa, 'circles-switcher-desktop.png');
    // The switcher fits the header at both sizes (no horizontal overflow).
    for (const page of [pa, pb]) {
      const fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
      assert.ok(fits, 'no horizontal scrolling');
    }
    noErrors();
  });

  it("A's profile offers the default subject and warns that deleting the account takes Mia from B", async () => {
    const pa = a.page;
    await nav(pa, 'Profile');
    const def = pa.getByLabel('Default subject');
    await def.waitFor();
    assert.equal(await def.evaluate((s) => s.options[s.selectedIndex].textContent), 'Ann (owner)');
    await pa.locator('.shared-warning', { hasText: 'lose Mia' }).waitFor();
    // an access token restricted to Mia
    await pa.getByRole('textbox', { name: 'Name', exact: true }).last().fill('nursery tablet');
    await pa.locator('.token-subjects').getByLabel('Mia').check();
    await pa.getByRole('button', { name: 'Create token' }).click();
    await pa.locator('.item', { hasText: 'nursery tablet' }).getByText('only Mia').waitFor();
    const secret = (await pa.locator('.token-shown code').textContent()).trim();
    const r = await fetch(`${origin}/api/v1/subjects`, { headers: { Authorization: `Bearer ${secret}` } });
    assert.equal(r.status, 200);
    assert.deepEqual(
      (await r.json()).items.map((x) => x.name),
      ['Mia'],
    );
    await pa.getByRole('button', { name: 'Revoke token nursery tablet' }).click();
    await pa.getByText('No access tokens.').waitFor();
    // B, who owns only their own subject, gets no such warning
    const pb = b.page;
    await nav(pb, 'Profile');
    await pb.getByRole('heading', { name: 'Delete account' }).waitFor();
    assert.equal(await pb.locator('.shared-warning').isVisible(), false);
    noErrors();
  });

  it("A renames Mia (If-Match) and B's switcher and page follow live", async () => {
    const pa = a.page;
    await nav(pa, 'Subjects');
    await pa.getByRole('link', { name: 'Mia' }).click();
    await pa.getByRole('heading', { level: 1, name: 'Mia' }).waitFor();
    const details = pa.locator('form', { has: pa.getByRole('heading', { name: 'Details' }) });
    await details.getByLabel('Name').fill('Mia Rose');
    await details.getByRole('button', { name: 'Save' }).click();
    await details.getByText('Saved.').waitFor();
    await pa.getByRole('heading', { level: 1, name: 'Mia Rose' }).waitFor();
    const pb = b.page;
    await waitFor(async () => (await shownSubject(pb)) === 'Mia Rose (view only)', { timeout: 5000 });
    // a viewer reads the details without a form
    await nav(pb, 'Feedings');
    await pb.locator('.subject-line').getByRole('link', { name: 'Mia Rose' }).click();
    await pb.getByRole('heading', { level: 1, name: 'Mia Rose' }).waitFor();
    await pb.getByText('Only its owners can change these.').waitFor();
    assert.equal(await pb.getByRole('button', { name: 'Save' }).count(), 0);
    noErrors();
  });

  it('B leaves the circle; A sees it, and B is back on their own subject', async () => {
    const pb = b.page;
    await pb.getByRole('button', { name: 'Leave Mia Rose' }).click();
    await pb.getByRole('heading', { level: 1, name: 'Subjects' }).waitFor();
    await waitFor(async () => (await switcher(pb).locator('option').count()) === 1);
    assert.equal(await shownSubject(pb), 'Ben');
    const pa = a.page;
    await nav(pa, 'Subjects');
    await pa.getByRole('link', { name: 'Mia' }).click();
    await waitFor(async () => (await pa.locator('.members-list .item').count()) === 1, { timeout: 5000 });
    noErrors();
  });
});
