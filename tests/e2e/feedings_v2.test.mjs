// Feedings v2 (issue 15; contract "Feedings: method, duration, units, intervals"): the
// validation matrix of method × amount × duration (table-driven), v1 bodies keeping their
// meaning, PATCH validated on the merged row, stats intervals (real elapsed gaps across a DST
// change in the subject's zone), by_method, target_met, the day timeline (date, zone,
// ordering, 400/404), volume_unit on the profile, and a Baby Buddy feeding stored as ours.
// Nothing depends on the date: explicit past instants, or days computed from the server's
// own today (GET /feedings/today).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { API_ENV, api, expect404, expect422, expectProblem, expectStatus, psql, register } from './api.mjs';
import { createSubject } from './circle_fixtures.mjs';
import { useServer } from './helpers.mjs';

const FEEDINGS = '/api/v1/feedings';
const STATS = '/api/v1/stats/feedings';
const TIMELINE = '/api/v1/feedings/timeline';
const METHODS = ['breast_left', 'breast_right', 'breast_both', 'bottle', 'parent_fed', 'self_fed', 'tube'];
const BREAST = new Set(['breast_left', 'breast_right', 'breast_both']);
const ITEM_KEYS = ['amount_ml', 'duration_s', 'given_at', 'id', 'kind', 'method'];
const HOUR = 3600 * 1000;

const iso = (ms) => new Date(ms).toISOString();
const addDays = (date, k) => {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + k);
  return d.toISOString().slice(0, 10);
};
const daysBetween = (a, b) => Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / (24 * HOUR));
const offsetMin = (ms, tz) => {
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-US', {
    timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  return (Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(ms / 1000) * 1000) / 60000;
};
const localDate = (ms, tz) => new Intl.DateTimeFormat('en-CA', { timeZone: tz }).format(new Date(ms));

const post = (srv, token, body) => api(srv, 'POST', FEEDINGS, { token, body });
const countOf = (subjectId) => Number(psql(`SELECT count(*) FROM feedings WHERE subject_id = '${subjectId}'`));

async function created(srv, token, body) {
  return expectStatus(await post(srv, token, body), 201).json;
}

async function serverToday(srv, token, subjectId) {
  return expectStatus(await api(srv, 'GET', `${FEEDINGS}/today?subject_id=${subjectId}`, { token }), 200).json.date;
}

async function stats(srv, token, subjectId, days) {
  return expectStatus(await api(srv, 'GET', `${STATS}?subject_id=${subjectId}&days=${days}`, { token }), 200).json;
}

describe('feedings v2', () => {
  const srv = useServer({ ...API_ENV });

  describe('validation matrix: method × amount × duration', () => {
    // absent (undefined) and null mean "not said" for all three
    const methods = [undefined, null, ...METHODS];
    const amounts = [undefined, null, 120];
    const durations = [undefined, null, 0, 900, 21600];
    const cases = [];
    for (const method of methods) for (const amount of amounts) for (const duration of durations) cases.push({ method, amount, duration });

    it(`accepts exactly the rows the contract allows (${cases.length} cases), with the stored values and default kind`, async () => {
      const a = await register(srv);
      const sid = a.user.default_subject_id;
      for (const { method, amount, duration } of cases) {
        const body = {};
        if (method !== undefined) body.method = method;
        if (amount !== undefined) body.amount_ml = amount;
        if (duration !== undefined) body.duration_s = duration;
        const label = JSON.stringify(body);
        const ok = amount === 120 || BREAST.has(method);
        const before = countOf(sid);
        const r = await post(srv, a.token, body);
        if (!ok) {
          expect422(r, 'amount_ml');
          assert.equal(countOf(sid), before, `no row on a 422: ${label}`);
          continue;
        }
        expectStatus(r, 201);
        assert.equal(r.json.method, method ?? null, label);
        assert.equal(r.json.amount_ml, amount ?? null, label);
        assert.equal(r.json.duration_s, duration ?? null, label);
        assert.equal(r.json.kind, BREAST.has(method) ? 'breast_milk' : 'food', `default kind: ${label}`);
        const g = expectStatus(await api(srv, 'GET', `${FEEDINGS}/${r.json.id}`, { token: a.token }), 200);
        assert.deepEqual(g.json, r.json, label);
      }
    });

    it('refuses bad values of the new fields (422 naming them, nothing stored); takes the new kinds', async () => {
      const a = await register(srv);
      const sid = a.user.default_subject_id;
      const bad = [
        [{ amount_ml: 10, duration_s: -1 }, 'duration_s'],
        [{ amount_ml: 10, duration_s: 21601 }, 'duration_s'],
        [{ amount_ml: 10, duration_s: 1.5 }, 'duration_s'],
        [{ amount_ml: 10, duration_s: '60' }, 'duration_s'],
        [{ amount_ml: 10, method: 'breast' }, 'method'],
        [{ amount_ml: 10, method: '' }, 'method'],
        [{ amount_ml: 10, method: 5 }, 'method'],
        [{ amount_ml: 10, method: 'BOTTLE' }, 'method'],
        [{ method: 'breast_left', amount_ml: 0 }, 'amount_ml'],
        [{ method: 'breast_left', amount_ml: 2001 }, 'amount_ml'],
        [{ method: 'breast_left', kind: 'breastmilk' }, 'kind'],
        [{ method: 'breast_left', kind: null }, 'kind'],
      ];
      for (const [body, field] of bad) {
        expect422(await post(srv, a.token, body), field);
      }
      assert.equal(countOf(sid), 0);
      for (const kind of ['breast_milk', 'fortified_breast_milk']) {
        assert.equal((await created(srv, a.token, { amount_ml: 60, kind, method: 'bottle' })).kind, kind);
      }
      // an explicit kind wins over the breast default
      assert.equal((await created(srv, a.token, { method: 'breast_both', kind: 'other' })).kind, 'other');
      // the list's kind filter knows the new kinds
      const l = expectStatus(await api(srv, 'GET', `${FEEDINGS}?kind=fortified_breast_milk`, { token: a.token }), 200);
      assert.equal(l.json.items.length, 1);
    });

    it('keeps the meaning of v1 bodies', async () => {
      const a = await register(srv);
      const f = await created(srv, a.token, { amount_ml: 100 });
      assert.deepEqual([f.amount_ml, f.kind, f.method, f.duration_s], [100, 'food', null, null]);
      const g = await created(srv, a.token, { amount_ml: 30, kind: 'formula', note: 'v1', given_at: '2026-01-02T03:04:05Z' });
      assert.deepEqual([g.amount_ml, g.kind, g.method, g.duration_s, g.note, g.given_at], [30, 'formula', null, null, 'v1', '2026-01-02T03:04:05.000Z']);
      expect422(await post(srv, a.token, {}), 'amount_ml');
      expect422(await post(srv, a.token, { kind: 'milk' }), 'amount_ml');
    });
  });

  describe('PATCH is validated on the merged row', () => {
    const patch = (token, id, body, headers) => api(srv, 'PATCH', `${FEEDINGS}/${id}`, { token, body, headers });
    const get = async (token, id) => expectStatus(await api(srv, 'GET', `${FEEDINGS}/${id}`, { token }), 200).json;

    it('switching to bottle without an amount is 422 and changes nothing; the valid merges apply', async () => {
      const a = await register(srv);
      const f = await created(srv, a.token, { method: 'breast_left', duration_s: 600 });
      assert.equal(f.amount_ml, null);
      const steps = [
        // [body, expected status, expected (method, amount_ml, duration_s, kind) after]
        [{ method: 'bottle' }, 422, ['breast_left', null, 600, 'breast_milk']],
        [{ method: 'tube', note: 'x' }, 422, ['breast_left', null, 600, 'breast_milk']],
        [{ method: null }, 422, ['breast_left', null, 600, 'breast_milk']],
        [{ method: 'bottle', amount_ml: null }, 422, ['breast_left', null, 600, 'breast_milk']],
        [{ method: 'breast_right' }, 200, ['breast_right', null, 600, 'breast_milk']],
        [{ method: 'bottle', amount_ml: 90, kind: 'formula' }, 200, ['bottle', 90, 600, 'formula']],
        [{ amount_ml: null }, 422, ['bottle', 90, 600, 'formula']],
        [{ duration_s: null }, 200, ['bottle', 90, null, 'formula']],
        [{ method: null }, 200, [null, 90, null, 'formula']],
        [{ amount_ml: null }, 422, [null, 90, null, 'formula']],
        [{ method: 'breast_both', amount_ml: null }, 200, ['breast_both', null, null, 'formula']],
        [{ duration_s: 21600 }, 200, ['breast_both', null, 21600, 'formula']],
        [{ duration_s: 21601 }, 422, ['breast_both', null, 21600, 'formula']],
      ];
      let version = f.version;
      for (const [body, status, [method, amount, duration, kind]] of steps) {
        const label = JSON.stringify(body);
        const r = await patch(a.token, f.id, body);
        if (status === 422) {
          expect422(r, Object.hasOwn(body, 'duration_s') ? 'duration_s' : 'amount_ml');
        } else {
          expectStatus(r, 200);
          version += 1;
        }
        const now = await get(a.token, f.id);
        assert.deepEqual([now.method, now.amount_ml, now.duration_s, now.kind, now.version], [method, amount, duration, kind, version], label);
      }
    });

    it('a v1 feeding cannot lose its amount; a stale If-Match is 412 before the merged rule', async () => {
      const a = await register(srv);
      const f = await created(srv, a.token, { amount_ml: 50 });
      expect422(await patch(a.token, f.id, { amount_ml: null }), 'amount_ml');
      expectProblem(await patch(a.token, f.id, { amount_ml: null }, { 'If-Match': '"99"' }), 412, 'precondition-failed');
      assert.equal((await get(a.token, f.id)).amount_ml, 50);
      const r = expectStatus(await patch(a.token, f.id, { amount_ml: null, method: 'breast_left' }), 200);
      assert.deepEqual([r.json.amount_ml, r.json.method, r.json.kind], [null, 'breast_left', 'food']);
    });
  });

  describe('stats', () => {
    it('intervals are real elapsed gaps across a DST change in the subject\'s zone', async () => {
      const tz = 'America/New_York';
      const a = await register(srv);
      const s = await createSubject(srv, a, { timezone: tz });
      const today = await serverToday(srv, a.token, s.id);
      // The latest offset change of the zone at least two local days before the server's
      // today (there are two a year): on the hour in UTC, found hour by hour.
      let change = null;
      const todayMs = Date.parse(`${today}T12:00:00Z`);
      for (let t = todayMs - 2 * 24 * HOUR; t > todayMs - 364 * 24 * HOUR; t -= HOUR) {
        if (offsetMin(t, tz) !== offsetMin(t - HOUR, tz) && localDate(t, tz) <= addDays(today, -2)) { change = t; break; }
      }
      assert.ok(change, 'an offset change in the last year');
      const wallShift = offsetMin(change, tz) - offsetMin(change - HOUR, tz); // +60 in spring, -60 in autumn
      // 90 minutes before the change and 30 after: 2 real hours (3 or 1 on the wall clock);
      // then 3 hours later, and one more 30 minutes after that.
      const t0 = change - 90 * 60000;
      const t1 = change + 30 * 60000;
      const t2 = t1 + 3 * HOUR;
      const t3 = t2 + 30 * 60000;
      for (const [t, body] of [[t0, { amount_ml: 100 }], [t1, { method: 'breast_left', duration_s: 600 }], [t2, { amount_ml: 80, method: 'bottle' }], [t3, { method: 'breast_right' }]]) {
        await created(srv, a.token, { subject_id: s.id, given_at: iso(t), ...body });
      }
      assert.equal(Math.abs(wallShift), 60);
      const days = daysBetween(localDate(t0, tz), today) + 1;
      const before = Date.now();
      const st = await stats(srv, a.token, s.id, days);
      const after = Date.now();
      // gaps: 7200, 10800, 1800 seconds
      assert.equal(st.intervals.avg_gap_s, 6600);
      assert.equal(st.intervals.longest_gap_s, 10800);
      assert.ok(st.intervals.since_last_s >= Math.floor((before - t3) / 1000) - 1 && st.intervals.since_last_s <= Math.ceil((after - t3) / 1000) + 1,
        `since_last_s ${st.intervals.since_last_s}`);
      assert.equal(st.total_count, 4);
      assert.equal(st.total_ml, 180);
      assert.equal(st.avg_ml, 90); // over the two feedings with an amount
      const byDay = Object.fromEntries(st.per_day.map((d) => [d.date, d]));
      let n = 0;
      for (const t of [t0, t1, t2, t3]) n += localDate(t, tz) in byDay ? 1 : 0;
      assert.equal(n, 4);
      assert.equal(st.per_day.reduce((x, d) => x + d.count, 0), 4);
      // a window without feedings: no gaps, but since_last_s is from the last feeding ever
      const st1 = await stats(srv, a.token, s.id, 1);
      assert.equal(st1.intervals.avg_gap_s, null);
      assert.equal(st1.intervals.longest_gap_s, null);
      assert.ok(st1.intervals.since_last_s >= st.intervals.since_last_s);
      assert.deepEqual(st1.by_method, []);
      // one feeding: since_last_s, but no gap
      const b = await register(srv);
      await created(srv, b.token, { amount_ml: 10, given_at: iso(Date.now() - 60000) });
      const one = await stats(srv, b.token, b.user.default_subject_id, 2);
      assert.equal(one.intervals.avg_gap_s, null);
      assert.equal(one.intervals.longest_gap_s, null);
      assert.ok(one.intervals.since_last_s >= 59 && one.intervals.since_last_s < 120, JSON.stringify(one.intervals));
      // none at all: every figure null
      const c = await register(srv);
      assert.deepEqual((await stats(srv, c.token, c.user.default_subject_id, 7)).intervals, { since_last_s: null, avg_gap_s: null, longest_gap_s: null });
    });

    it('by_method counts every feeding and totals the amounts present; today too', async () => {
      const a = await register(srv);
      const sid = a.user.default_subject_id;
      const now = Date.now();
      const rows = [
        { method: 'breast_left', duration_s: 300 },
        { method: 'breast_left', amount_ml: 30 },
        { method: 'bottle', amount_ml: 120 },
        { method: 'bottle', amount_ml: 90 },
        { amount_ml: 50 },
        { method: 'tube', amount_ml: 20 },
        { method: 'breast_both' },
      ];
      for (let i = 0; i < rows.length; i++) await created(srv, a.token, { given_at: iso(now - (i + 1) * 1000), ...rows[i] });
      const st = await stats(srv, a.token, sid, 2); // today and yesterday: the feedings are in, whatever the hour
      assert.deepEqual(st.by_method, [
        { method: 'bottle', count: 2, total_ml: 210 },
        { method: 'breast_both', count: 1, total_ml: 0 },
        { method: 'breast_left', count: 2, total_ml: 30 },
        { method: 'tube', count: 1, total_ml: 20 },
        { method: null, count: 1, total_ml: 50 },
      ]);
      assert.equal(st.total_count, 7);
      assert.equal(st.total_ml, 310);
      assert.equal(st.avg_ml, 62); // 310 / 5 amounts
    });

    it('target_met per day: total ≥ target > 0', async () => {
      const a = await register(srv);
      const s = await createSubject(srv, a, { timezone: 'UTC', daily_target_ml: 100 });
      const z = await createSubject(srv, a, { timezone: 'UTC', daily_target_ml: 0 });
      const today = await serverToday(srv, a.token, s.id);
      const at = (k, h) => `${addDays(today, -k)}T${String(h).padStart(2, '0')}:00:00Z`;
      const logs = [
        [s, 3, 1, 99],
        [s, 2, 1, 60], [s, 2, 23, 40],
        [s, 1, 1, 150], [s, 1, 2, null],
        [z, 2, 1, 500],
      ];
      for (const [sub, k, h, ml] of logs) {
        await created(srv, a.token, ml === null ? { subject_id: sub.id, method: 'breast_left', given_at: at(k, h) } : { subject_id: sub.id, amount_ml: ml, given_at: at(k, h) });
      }
      const met = (st) => Object.fromEntries(st.per_day.slice(0, 4).map((d) => [d.date, d.target_met]));
      assert.deepEqual(met(await stats(srv, a.token, s.id, 5)), {
        [addDays(today, -4)]: false, [addDays(today, -3)]: false, [addDays(today, -2)]: true, [addDays(today, -1)]: true,
      });
      assert.ok((await stats(srv, a.token, z.id, 5)).per_day.every((d) => d.target_met === false), 'no target: never met');
    });
  });

  describe('timeline', () => {
    const timeline = (token, q) => api(srv, 'GET', `${TIMELINE}?${new URLSearchParams(q)}`, { token });

    it('returns the local day\'s feedings oldest first, on 23- and 25-hour days of the subject\'s zone', async () => {
      const a = await register(srv);
      const s = await createSubject(srv, a, { timezone: 'America/New_York' });
      // 2026-03-08 (23 hours: 05:00Z to 04:00Z next day) and 2026-11-01 (25 hours: 04:00Z to 05:00Z)
      const days = [
        { date: '2026-03-08', lo: '2026-03-08T05:00:00.000Z', hi: '2026-03-09T04:00:00.000Z' },
        { date: '2026-11-01', lo: '2026-11-01T04:00:00.000Z', hi: '2026-11-02T05:00:00.000Z' },
      ];
      for (const { date, lo, hi } of days) {
        const L = Date.parse(lo);
        const H = Date.parse(hi);
        const inside = [iso(H - 1), iso(L), iso(L + 7 * HOUR), iso(L + 7 * HOUR)]; // posted out of order, a tie
        const made = [];
        await created(srv, a.token, { subject_id: s.id, amount_ml: 5, given_at: iso(L - 1) });
        await created(srv, a.token, { subject_id: s.id, amount_ml: 5, given_at: iso(H) });
        for (const [i, t] of inside.entries()) {
          made.push(await created(srv, a.token, { subject_id: s.id, given_at: t, ...(i % 2 ? { method: 'breast_left', duration_s: 420 } : { amount_ml: 60 + i, method: 'bottle' }) }));
        }
        const r = expectStatus(await timeline(a.token, { subject_id: s.id, date }), 200);
        assert.deepEqual(Object.keys(r.json).sort(), ['date', 'items', 'timezone']);
        assert.equal(r.json.date, date);
        assert.equal(r.json.timezone, 'America/New_York');
        for (const it of r.json.items) assert.deepEqual(Object.keys(it).sort(), ITEM_KEYS);
        const want = made.map((f) => ({ id: f.id, given_at: f.given_at, duration_s: f.duration_s, method: f.method, kind: f.kind, amount_ml: f.amount_ml }))
          .sort((x, y) => (x.given_at < y.given_at ? -1 : x.given_at > y.given_at ? 1 : x.id < y.id ? -1 : 1));
        assert.deepEqual(r.json.items, want, date);
        assert.equal((H - L) / HOUR, date.endsWith('03-08') ? 23 : 25);
      }
    });

    it('defaults to the subject\'s today; an empty day has no items', async () => {
      const a = await register(srv, { timezone: 'Pacific/Kiritimati' });
      const today = await serverToday(srv, a.token, a.user.default_subject_id);
      const r = expectStatus(await api(srv, 'GET', TIMELINE, { token: a.token }), 200);
      assert.deepEqual(r.json, { date: today, timezone: 'Pacific/Kiritimati', items: [] });
      const e = expectStatus(await timeline(a.token, { date: '2024-02-29' }), 200);
      assert.deepEqual(e.json, { date: '2024-02-29', timezone: 'Pacific/Kiritimati', items: [] });
    });

    it('a malformed date is 400, another member\'s subject 404', async () => {
      const a = await register(srv);
      const b = await register(srv);
      for (const date of ['2026-02-30', '2026-02-29', '2026-13-01', '2026-00-10', '2026-2-01', '26-02-01', '2026-02-01T00:00', 'today', '', '0000-01-01']) {
        expectProblem(await timeline(a.token, { date }), 400, 'malformed');
      }
      expectProblem(await timeline(a.token, { subject_id: 'nope' }), 400, 'malformed');
      expect404(await timeline(a.token, { subject_id: b.user.default_subject_id }));
      expect404(await timeline(a.token, { subject_id: b.user.default_subject_id, date: '2026-01-01' }));
    });
  });

  describe('volume_unit', () => {
    it('is ml by default; PATCH /me sets ml or oz, anything else 422 and no change', async () => {
      const a = await register(srv);
      assert.equal(a.user.volume_unit, 'ml');
      const me = () => api(srv, 'GET', '/api/v1/me', { token: a.token });
      assert.equal(expectStatus(await me(), 200).json.volume_unit, 'ml');
      assert.equal(expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { volume_unit: 'oz' } }), 200).json.volume_unit, 'oz');
      assert.equal(expectStatus(await me(), 200).json.volume_unit, 'oz');
      for (const bad of ['floz', 'OZ', '', null, 1]) {
        expect422(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { volume_unit: bad } }), 'volume_unit');
      }
      assert.equal(expectStatus(await me(), 200).json.volume_unit, 'oz');
      // other fields leave it alone
      assert.equal(expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { display_name: 'Ada' } }), 200).json.volume_unit, 'oz');
      assert.equal(expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { volume_unit: 'ml' } }), 200).json.volume_unit, 'ml');
    });
  });

  describe('a Baby Buddy feeding', () => {
    // Baby Buddy's feeding: type, method, amount (ml here), start and end.
    const TYPE = { 'breast milk': 'breast_milk', formula: 'formula', 'fortified breast milk': 'fortified_breast_milk', 'solid food': 'food' };
    const METHOD = {
      bottle: 'bottle', 'left breast': 'breast_left', 'right breast': 'breast_right', 'both breasts': 'breast_both', 'parent fed': 'parent_fed', 'self fed': 'self_fed',
    };
    const bb = [
      { type: 'breast milk', method: 'left breast', amount: null, start: '2026-05-01T02:10:00Z', end: '2026-05-01T02:32:30Z' },
      { type: 'formula', method: 'bottle', amount: 120, start: '2026-05-01T05:00:00Z', end: '2026-05-01T05:15:00Z' },
      { type: 'fortified breast milk', method: 'bottle', amount: 90, start: '2026-05-01T08:00:00Z', end: '2026-05-01T08:10:00Z' },
      { type: 'solid food', method: 'self fed', amount: null, start: '2026-05-01T12:00:00Z', end: '2026-05-01T12:20:00Z' },
      { type: 'breast milk', method: 'both breasts', amount: 40, start: '2026-05-01T15:00:00Z', end: '2026-05-01T21:00:00Z' },
    ];

    it('is stored as given_at = start, duration_s = end - start, with its type, method and amount', async () => {
      const a = await register(srv);
      for (const f of bb) {
        const body = { kind: TYPE[f.type], method: METHOD[f.method], given_at: f.start, duration_s: (Date.parse(f.end) - Date.parse(f.start)) / 1000 };
        if (f.amount !== null) body.amount_ml = f.amount;
        const r = await post(srv, a.token, body);
        if (f.amount === null && !BREAST.has(body.method)) {
          // a self-fed solid without an amount is not a feeding our model can hold without one
          expect422(r, 'amount_ml');
          continue;
        }
        expectStatus(r, 201);
        assert.deepEqual([r.json.kind, r.json.method, r.json.amount_ml, r.json.given_at, r.json.duration_s],
          [body.kind, body.method, f.amount, iso(Date.parse(f.start)), body.duration_s], JSON.stringify(f));
      }
      const t = expectStatus(await api(srv, 'GET', `${TIMELINE}?date=2026-05-01`, { token: a.token }), 200).json;
      assert.deepEqual(t.items.map((x) => x.duration_s), [1350, 900, 600, 21600]);
    });
  });
});
