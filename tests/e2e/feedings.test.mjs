// Feeding logs against the contract (docs/api.md: "Notes and feeding logs", "Idempotency",
// "Today and stats", "Lists", tokens, live events): CRUD, every validation
// bound, given_at in any offset and in the future, ETag / If-Match, ordering, from/to/kind
// filters, keyset pagination, /feedings/today and /stats/feedings in several time zones
// (UTC+14, UTC-11, Paris, New York, and the DST changes of the last year in four zones),
// Idempotency-Key (also raced across two replicas), tenant isolation, token scopes and
// change events on Redis. Nothing depends on the date: days are computed from now, and a
// test about "today" waits out a local midnight that is less than a minute away.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import {
  API_ENV, FEEDING_KEYS_V2_ADDED, TS_RE, UUID_RE,
  api, createToken, expect401, expect403, expect404, expect422, expectProblem, expectStatus, psql, register, seedAs, sleep, subscribeRecordEvents,
} from './api.mjs';
import { useServer } from './helpers.mjs';

const FEEDINGS = '/api/v1/feedings';
const TODAY = '/api/v1/feedings/today';
const STATS = '/api/v1/stats/feedings';
const FEEDING_KEYS = ['amount_ml', 'created_at', 'given_at', 'id', 'kind', 'note', 'updated_at', 'version'];
// Care circles add subject_id and created_by; every v1 key stays, with the same values.
const FEEDING_KEYS_V2 = [...FEEDING_KEYS, 'created_by', 'subject_id', ...FEEDING_KEYS_V2_ADDED].sort();
const TODAY_KEYS = ['count', 'date', 'last_given_at', 'progress', 'remaining_ml', 'target_ml', 'timezone', 'total_ml'];
// feedings v2 added by_method and intervals (and target_met to each day)
const STATS_KEYS = ['avg_daily_ml', 'avg_ml', 'by_method', 'days', 'from', 'intervals', 'per_day', 'to', 'total_count', 'total_ml'];
const KINDS = ['formula', 'milk', 'water', 'food', 'medication', 'other'];
const RANDOM_UUID = '7b0e7c3e-5d1f-4c6a-9a57-3f2b8d1e9c44';
const MIN = 60000;
const HOUR = 60 * MIN;

const qs = (params) => {
  const u = new URLSearchParams();
  for (const [k, v] of params) u.append(k, v);
  const s = u.toString();
  return s ? `?${s}` : '';
};

// ---- time helpers -------------------------------------------------------------------

const iso = (ms) => new Date(ms).toISOString();

// RFC 3339 text of an instant written with a UTC offset of `offMin` minutes.
function withOffset(ms, offMin) {
  const local = new Date(ms + offMin * MIN).toISOString().slice(0, 23);
  const sign = offMin < 0 ? '-' : '+';
  const a = Math.abs(offMin);
  return `${local}${sign}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

function zoneParts(ms, tz) {
  const f = new Intl.DateTimeFormat('en-US', {
    timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
  return Object.fromEntries(f.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
}
// The zone's UTC offset at an instant, in ms.
function offsetMs(ms, tz) {
  const p = zoneParts(ms, tz);
  const wall = Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour) % 24, Number(p.minute), Number(p.second));
  return wall - Math.floor(ms / 1000) * 1000;
}
const localDate = (ms, tz) => { const p = zoneParts(ms, tz); return `${p.year}-${p.month}-${p.day}`; };
const addDays = (date, k) => {
  const [y, m, d] = date.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d + k)).toISOString().slice(0, 10);
};
// The instant the local day `date` starts in `tz`.
function midnight(date, tz) {
  const [y, m, d] = date.split('-').map(Number);
  const wall = Date.UTC(y, m - 1, d);
  let t = wall - offsetMs(wall, tz);
  t = wall - offsetMs(t, tz);
  return t;
}
// Waits until "today" in `tz` will not change for the next `margin` ms and at least 10 s
// of it have passed.
async function steadyDay(tz, margin = 60000) {
  for (;;) {
    const now = Date.now();
    const today = localDate(now, tz);
    const start = midnight(today, tz);
    const next = midnight(addDays(today, 1), tz);
    if (next - now > margin && now - start > 10000) return { now, today, start, next };
    await sleep(Math.min(Math.max(next - now + 11000, 1000), 120000));
  }
}

// The local days from `first` to `last` (dates) on which `tz` changes its UTC offset:
// { date, at (the instant of the change), hours (the day's length) }.
function offsetChanges(tz, first, last) {
  const out = [];
  for (let date = first; date <= last; date = addDays(date, 1)) {
    const start = midnight(date, tz);
    const hours = (midnight(addDays(date, 1), tz) - start) / HOUR;
    if (hours === 24) continue;
    const before = offsetMs(start, tz);
    let lo = start; // still the old offset
    let hi = midnight(addDays(date, 1), tz) - 1000; // already the new one
    while (hi - lo > 1000) {
      const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
      if (offsetMs(mid, tz) === before) lo = mid; else hi = mid;
    }
    out.push({ date, at: hi, hours });
  }
  return out;
}

// ---- API helpers --------------------------------------------------------------------

async function createFeeding(srv, token, body = {}) {
  const r = await api(srv, 'POST', FEEDINGS, { token, body: { amount_ml: 100, ...body } });
  expectStatus(r, 201);
  return r.json;
}

function checkFeeding(f) {
  assert.deepEqual(Object.keys(f).sort(), FEEDING_KEYS_V2, JSON.stringify(f));
  assert.match(f.id, UUID_RE);
  assert.ok(Number.isInteger(f.amount_ml));
  assert.ok(KINDS.includes(f.kind), f.kind);
  assert.match(f.given_at, TS_RE);
  assert.ok(f.note === null || typeof f.note === 'string');
  assert.ok(Number.isInteger(f.version) && f.version >= 1);
  assert.match(f.created_at, TS_RE);
  assert.match(f.updated_at, TS_RE);
}

async function page(srv, token, params = []) {
  const r = expectStatus(await api(srv, 'GET', FEEDINGS + qs(params), { token }), 200);
  assert.deepEqual(Object.keys(r.json).sort(), ['items', 'next_cursor'], r.text.slice(0, 300));
  assert.ok(r.json.next_cursor === null || (typeof r.json.next_cursor === 'string' && r.json.next_cursor.length > 0));
  for (const f of r.json.items) checkFeeding(f);
  return r.json;
}

async function walk(srv, token, params = [], limit = 10, between) {
  const items = [];
  const pages = [];
  let cursor = null;
  for (let i = 0; i < 500; i++) {
    const p = await page(srv, token, [...params, ['limit', String(limit)], ...(cursor ? [['cursor', cursor]] : [])]);
    assert.ok(p.items.length <= limit);
    pages.push(p);
    items.push(...p.items);
    if (p.next_cursor === null) return { items, pages };
    assert.ok(p.items.length > 0, 'a page with a next_cursor is not empty');
    cursor = p.next_cursor;
    if (between) await between(i);
  }
  throw new Error('pagination does not end');
}

function assertNewestFirst(items) {
  for (let i = 1; i < items.length; i++) {
    assert.ok(items[i - 1].given_at >= items[i].given_at, `newest given_at first: ${items[i - 1].given_at} then ${items[i].given_at}`);
  }
}

async function today(srv, token) {
  const r = expectStatus(await api(srv, 'GET', TODAY, { token }), 200);
  assert.deepEqual(Object.keys(r.json).sort(), TODAY_KEYS, r.text);
  return r.json;
}

async function stats(srv, token, days) {
  const r = expectStatus(await api(srv, 'GET', STATS + (days === undefined ? '' : `?days=${days}`), { token }), 200);
  const s = r.json;
  assert.deepEqual(Object.keys(s).sort(), STATS_KEYS, r.text.slice(0, 300));
  assert.equal(s.per_day.length, s.days, 'a row for every day');
  for (let i = 0; i < s.per_day.length; i++) {
    assert.deepEqual(Object.keys(s.per_day[i]).sort(), ['count', 'date', 'target_met', 'total_ml']);
    if (i > 0) assert.equal(s.per_day[i].date, addDays(s.per_day[i - 1].date, 1), `consecutive dates at ${i}`);
  }
  assert.equal(s.from, s.per_day[0].date);
  assert.equal(s.to, s.per_day[s.per_day.length - 1].date);
  assert.equal(s.total_count, s.per_day.reduce((a, d) => a + d.count, 0));
  assert.equal(s.total_ml, s.per_day.reduce((a, d) => a + d.total_ml, 0));
  // The v1 shape: what feedings v2 added (by_method, intervals, target_met) is tested in
  // feedings_v2.test.mjs; here the v1 values must stay exactly what they were.
  const v1 = { ...s, per_day: s.per_day.map((d) => ({ date: d.date, count: d.count, total_ml: d.total_ml })) };
  delete v1.by_method;
  delete v1.intervals;
  return v1;
}

const ids = (items) => items.map((f) => f.id);
const count = (userId) => Number(psql(`SELECT count(*) FROM feedings WHERE created_by = '${userId}'`));
const noDuplicates = (list) => assert.equal(new Set(list).size, list.length, 'no duplicates');

describe('feedings', () => {
  const srv = useServer({ ...API_ENV });

  describe('create and read', () => {
    it('POST answers 201 with Location and the whole feeding; GET and HEAD with ETag', async () => {
      const a = await register(srv);
      const at = Date.now() - 2 * HOUR;
      const t0 = Date.now();
      const r = await api(srv, 'POST', FEEDINGS, { token: a.token, body: { amount_ml: 120, kind: 'milk', given_at: withOffset(at, 60), note: 'burped 🍼' } });
      expectStatus(r, 201);
      assert.match(r.headers['content-type'], /^application\/json/);
      const f = r.json;
      checkFeeding(f);
      assert.equal(r.headers.location, `/api/v1/feedings/${f.id}`);
      assert.equal(f.amount_ml, 120);
      assert.equal(f.kind, 'milk');
      assert.equal(f.given_at, iso(at), 'given_at in UTC with milliseconds');
      assert.equal(f.note, 'burped 🍼');
      assert.equal(f.version, 1);
      assert.ok(Math.abs(Date.parse(f.created_at) - t0) < MIN);
      const g = expectStatus(await api(srv, 'GET', r.headers.location, { token: a.token }), 200);
      assert.deepEqual(g.json, f);
      assert.equal(g.headers.etag, '"1"');
      const h = expectStatus(await api(srv, 'HEAD', r.headers.location, { token: a.token }), 200);
      assert.equal(h.text, '');
      assert.equal(h.headers.etag, '"1"');
      assert.deepEqual((await page(srv, a.token)).items, [f]);
      expectStatus(await api(srv, 'HEAD', FEEDINGS, { token: a.token }), 200);
    });

    it('defaults kind to food, note to null and given_at to now', async () => {
      const a = await register(srv);
      const t0 = Date.now();
      const f = await createFeeding(srv, a.token, { amount_ml: 50 });
      checkFeeding(f);
      assert.equal(f.kind, 'food');
      assert.equal(f.note, null);
      assert.ok(Math.abs(Date.parse(f.given_at) - t0) < 30000, `given_at ${f.given_at} is now`);
      const n = await createFeeding(srv, a.token, { amount_ml: 50, note: null });
      assert.equal(n.note, null, 'null equals leaving it out in POST');
    });

    it('accepts given_at in any RFC 3339 offset and answers it in UTC with milliseconds', async () => {
      const a = await register(srv);
      const base = Math.floor((Date.now() - 3 * HOUR) / 1000) * 1000;
      for (const [input, expected] of [
        [withOffset(base, 0).replace('+00:00', 'Z'), iso(base)],
        [withOffset(base, 0), iso(base)],
        [withOffset(base, 14 * 60), iso(base)],
        [withOffset(base, -11 * 60), iso(base)],
        [withOffset(base, 5 * 60 + 30), iso(base)],
        [withOffset(base, -(9 * 60 + 30)), iso(base)],
        [withOffset(base, 60).replace('.000', ''), iso(base)],
        [withOffset(base, 60).replace('.000', '.5'), iso(base + 500)],
        [withOffset(base, 120).replace('.000', '.123456'), iso(base + 123)],
      ]) {
        const f = await createFeeding(srv, a.token, { given_at: input });
        assert.equal(f.given_at, expected, `given_at ${input}`);
      }
    });

    it('answers 404 to unknown and non-UUID ids, 401 without credentials', async () => {
      const a = await register(srv);
      const f = await createFeeding(srv, a.token);
      for (const id of [RANDOM_UUID, 'not-a-uuid', '42', `${f.id}0`]) {
        expect404(await api(srv, 'GET', `${FEEDINGS}/${id}`, { token: a.token }));
        expect404(await api(srv, 'PATCH', `${FEEDINGS}/${id}`, { token: a.token, body: { amount_ml: 5 } }));
        expect404(await api(srv, 'DELETE', `${FEEDINGS}/${id}`, { token: a.token }));
      }
      for (const p of [FEEDINGS, `${FEEDINGS}/${f.id}`, `${FEEDINGS}/not-a-uuid`, TODAY, STATS]) expect401(await api(srv, 'GET', p));
      expect401(await api(srv, 'POST', FEEDINGS, { body: { amount_ml: 5 } }));
      expect401(await api(srv, 'DELETE', `${FEEDINGS}/${f.id}`));
      assert.equal(count(a.user.id), 1);
    });

    it('/feedings/today is a fixed route that wins over {id}: 405 with Allow for other methods', async () => {
      const a = await register(srv);
      await today(srv, a.token);
      expectStatus(await api(srv, 'HEAD', TODAY, { token: a.token }), 200);
      expectStatus(await api(srv, 'HEAD', STATS, { token: a.token }), 200);
      for (const [method, path, allowed] of [
        ['PATCH', TODAY, ['GET', 'HEAD']], ['DELETE', TODAY, ['GET', 'HEAD']], ['POST', TODAY, ['GET', 'HEAD']],
        ['POST', STATS, ['GET', 'HEAD']], ['PUT', `${FEEDINGS}/${RANDOM_UUID}`, ['GET', 'HEAD', 'PATCH', 'DELETE']],
        ['DELETE', FEEDINGS, ['GET', 'HEAD', 'POST']],
      ]) {
        const r = await api(srv, method, path, { token: a.token, body: {} });
        expectProblem(r, 405, 'method-not-allowed');
        const allow = (r.headers.allow || '').split(',').map((s) => s.trim());
        for (const m of allowed) assert.ok(allow.includes(m), `${method} ${path}: Allow ${r.headers.allow} lacks ${m}`);
      }
    });

    it('answers 415 without JSON Content-Type and 400 to malformed JSON', async () => {
      const a = await register(srv);
      expectProblem(await api(srv, 'POST', FEEDINGS, { token: a.token, body: '{"amount_ml":5}', contentType: null }), 415, 'unsupported-media-type');
      for (const body of ['{"amount_ml": ', '[1]', '5', '{"amount_ml":5,"amount_ml":6}']) {
        expectProblem(await api(srv, 'POST', FEEDINGS, { token: a.token, body }), 400, 'malformed');
      }
      assert.equal(count(a.user.id), 0);
    });
  });

  describe('validation', () => {
    let a;
    before(async () => { a = await register(srv); });

    const rows = [
      ['amount_ml 1', { amount_ml: 1 }, true],
      ['amount_ml 2000', { amount_ml: 2000 }, true],
      ['amount_ml 0', { amount_ml: 0 }, false, 'amount_ml'],
      ['amount_ml 2001', { amount_ml: 2001 }, false, 'amount_ml'],
      ['amount_ml -5', { amount_ml: -5 }, false, 'amount_ml'],
      ['amount_ml 1.5', { amount_ml: 1.5 }, false, 'amount_ml'],
      ['amount_ml "5"', { amount_ml: '5' }, false, 'amount_ml'],
      ['amount_ml null', { amount_ml: null }, false, 'amount_ml'],
      ['amount_ml true', { amount_ml: true }, false, 'amount_ml'],
      ['no amount_ml', { kind: 'milk' }, false, 'amount_ml'],
      ...KINDS.map((k) => [`kind ${k}`, { amount_ml: 10, kind: k }, true]),
      ['kind "Milk"', { amount_ml: 10, kind: 'Milk' }, false, 'kind'],
      ['kind "juice"', { amount_ml: 10, kind: 'juice' }, false, 'kind'],
      ['kind ""', { amount_ml: 10, kind: '' }, false, 'kind'],
      ['kind null', { amount_ml: 10, kind: null }, false, 'kind'],
      ['kind 3', { amount_ml: 10, kind: 3 }, false, 'kind'],
      ['note ""', { amount_ml: 10, note: '' }, true],
      ['note of 1000 characters', { amount_ml: 10, note: 'n'.repeat(1000) }, true],
      ['note of 1000 astral code points', { amount_ml: 10, note: '🍼'.repeat(1000) }, true],
      ['note of 1001 characters', { amount_ml: 10, note: 'n'.repeat(1001) }, false, 'note'],
      ['note of 1001 two-byte code points', { amount_ml: 10, note: 'é'.repeat(1001) }, false, 'note'],
      ['numeric note', { amount_ml: 10, note: 5 }, false, 'note'],
      ['given_at "yesterday"', { amount_ml: 10, given_at: 'yesterday' }, false, 'given_at'],
      ['given_at month 13', { amount_ml: 10, given_at: '2026-13-01T00:00:00Z' }, false, 'given_at'],
      ['given_at February 30', { amount_ml: 10, given_at: '2026-02-30T10:00:00Z' }, false, 'given_at'],
      ['given_at hour 25', { amount_ml: 10, given_at: '2026-02-03T25:00:00Z' }, false, 'given_at'],
      ['given_at without offset', { amount_ml: 10, given_at: '2026-02-03T10:00:00' }, false, 'given_at'],
      ['given_at a date', { amount_ml: 10, given_at: '2026-02-03' }, false, 'given_at'],
      ['given_at a number', { amount_ml: 10, given_at: 1767225600 }, false, 'given_at'],
      ['given_at null', { amount_ml: 10, given_at: null }, false, 'given_at'],
      ['given_at ""', { amount_ml: 10, given_at: '' }, false, 'given_at'],
    ];
    // A real in exponent form is a wrong type (422); an integer literal beyond 64 bits is
    // refused while parsing (400, the documented limit of the JSON parser).
    it('refuses amount_ml 1e20 (a real, 422) and 100000000000000000000 (beyond 64 bits, 400)', async () => {
      expect422(await api(srv, 'POST', FEEDINGS, { token: a.token, body: '{"amount_ml": 1e20}' }), 'amount_ml');
      expectProblem(await api(srv, 'POST', FEEDINGS, { token: a.token, body: '{"amount_ml": 100000000000000000000}' }), 400, 'malformed');
    });
    for (const [what, body, ok, field] of rows) {
      it(`${ok ? 'accepts' : 'refuses (422)'} ${what}`, async () => {
        const n = count(a.user.id);
        const r = await api(srv, 'POST', FEEDINGS, { token: a.token, body });
        if (ok) {
          expectStatus(r, 201);
          checkFeeding(r.json);
          for (const k of Object.keys(body)) assert.deepEqual(r.json[k], body[k], k);
          assert.equal(count(a.user.id), n + 1);
        } else {
          expect422(r, field);
          assert.equal(count(a.user.id), n, 'nothing stored');
        }
      });
    }

    it('given_at: 4 minutes ahead is fine, more than 5 minutes ahead is 422', async () => {
      const now = Date.now();
      let f = await createFeeding(srv, a.token, { given_at: iso(now + 4 * MIN) });
      assert.equal(f.given_at, iso(now + 4 * MIN));
      f = await createFeeding(srv, a.token, { given_at: withOffset(now + 4 * MIN, 14 * 60) });
      assert.equal(f.given_at, iso(now + 4 * MIN));
      const n = count(a.user.id);
      expect422(await api(srv, 'POST', FEEDINGS, { token: a.token, body: { amount_ml: 5, given_at: iso(now + 6 * MIN) } }), 'given_at');
      expect422(await api(srv, 'POST', FEEDINGS, { token: a.token, body: { amount_ml: 5, given_at: withOffset(now + 6 * MIN, -11 * 60) } }), 'given_at');
      expect422(await api(srv, 'POST', FEEDINGS, { token: a.token, body: { amount_ml: 5, given_at: '2099-01-01T00:00:00Z' } }), 'given_at');
      assert.equal(count(a.user.id), n);
    });

    // RFC 3339 allows offsets up to ±23:59, which Postgres's own timestamp parser refuses
    // (16 hours and more): given_at reaches SQL as the microseconds we parsed. An instant
    // outside years 0001..9999 (UTC) has no four-digit spelling: 422, never a 500.
    const OUT_OF_RANGE = ['0000-01-01T00:00:00Z', '0000-12-31T23:59:59.999Z', '0001-01-01T00:00:00+00:01',
      '0001-01-01T10:00:00+14:00', '9999-12-31T23:59:59-14:00', '9999-12-31T23:00:00-01:00'];
    const NOT_RFC3339 = ['2026-01-01T00:00:00-24:00', '2026-01-01T00:00:00+24:00', '2026-01-01T00:00:00+99:00', '2026-01-01T00:00:00+16'];
    it('given_at: offsets up to ±23:59 are exact; year 0000, -24:00 and instants past 9999 are 422 on POST and PATCH, never 500', async () => {
      const base = Math.floor((Date.now() - 3 * HOUR) / 1000) * 1000;
      for (const off of [23 * 60 + 59, -(23 * 60 + 59), 16 * 60, -16 * 60, 15 * 60 + 59, -(15 * 60 + 59)]) {
        const f = await createFeeding(srv, a.token, { given_at: withOffset(base, off) });
        assert.equal(f.given_at, iso(base), withOffset(base, off));
      }
      // the ends of the range come back as they went in
      assert.equal((await createFeeding(srv, a.token, { given_at: '0001-01-01T00:00:00Z' })).given_at, '0001-01-01T00:00:00.000Z');
      assert.equal((await createFeeding(srv, a.token, { given_at: '0000-12-31T23:59:59-00:01' })).given_at, '0001-01-01T00:00:59.000Z');
      assert.equal((await createFeeding(srv, a.token, { given_at: '1700-03-01T12:00:00.123456Z' })).given_at, '1700-03-01T12:00:00.123Z');
      const n = count(a.user.id);
      for (const g of [...OUT_OF_RANGE, ...NOT_RFC3339, '9999-12-31T23:59:59+14:00' /* in range, but the future */]) {
        expect422(await api(srv, 'POST', FEEDINGS, { token: a.token, body: { amount_ml: 5, given_at: g } }), 'given_at');
      }
      assert.equal(count(a.user.id), n, 'nothing stored');
      // PATCH: the same rules, and a refused PATCH changes nothing
      const f = await createFeeding(srv, a.token, { given_at: iso(base) });
      let r = expectStatus(await api(srv, 'PATCH', `${FEEDINGS}/${f.id}`, { token: a.token, body: { given_at: withOffset(base - HOUR, 23 * 60 + 59) } }), 200);
      assert.equal(r.json.given_at, iso(base - HOUR));
      const after1 = r.json;
      for (const g of [...OUT_OF_RANGE, ...NOT_RFC3339]) {
        expect422(await api(srv, 'PATCH', `${FEEDINGS}/${f.id}`, { token: a.token, body: { given_at: g } }), 'given_at');
      }
      r = expectStatus(await api(srv, 'GET', `${FEEDINGS}/${f.id}`, { token: a.token }), 200);
      assert.deepEqual(r.json, after1, 'unchanged by the refused PATCHes');
      r = expectStatus(await api(srv, 'PATCH', `${FEEDINGS}/${f.id}`, { token: a.token, body: { given_at: withOffset(base, -(23 * 60 + 59)) } }), 200);
      assert.equal(r.json.given_at, iso(base));
      assert.equal(r.json.version, after1.version + 1);
    });

    it('?from= and ?to= take the same instants: ±23:59 offsets work, year 0000 and past 9999 are 400', async () => {
      const base = Math.floor((Date.now() - 2 * HOUR) / 1000) * 1000;
      const b = await register(srv);
      const f = await createFeeding(srv, b.token, { given_at: iso(base) });
      const l = async (params) => ids((await page(srv, b.token, params)).items);
      assert.deepEqual(await l([['from', withOffset(base, 23 * 60 + 59)]]), [f.id]);
      assert.deepEqual(await l([['from', withOffset(base + 1, -(23 * 60 + 59))]]), []);
      assert.deepEqual(await l([['to', withOffset(base + 1, 20 * 60)]]), [f.id]);
      assert.deepEqual(await l([['from', '0001-01-01T00:00:00Z'], ['to', '9999-12-31T23:59:59.999999Z']]), [f.id]);
      assert.deepEqual(await l([['from', '9999-12-31T23:59:59+14:00']]), []);
      for (const g of [...OUT_OF_RANGE, ...NOT_RFC3339]) {
        for (const name of ['from', 'to']) {
          expectProblem(await api(srv, 'GET', FEEDINGS + qs([[name, g]]), { token: b.token }), 400, 'malformed');
        }
      }
    });

    it('refuses unknown and read-only fields, naming each, and reports several errors at once', async () => {
      const n = count(a.user.id);
      const post = (body) => api(srv, 'POST', FEEDINGS, { token: a.token, body });
      expect422(await post({ amount_ml: 5, volume: 5, unit: 'ml' }), 'volume', 'unit');
      expect422(await post({ amount_ml: 5, id: RANDOM_UUID, version: 1, created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' }),
        'id', 'version', 'created_at', 'updated_at');
      expect422(await post({ amount_ml: 5, user_id: a.user.id }), 'user_id');
      expect422(await post({ amount_ml: 0, kind: 'juice', note: 'n'.repeat(1001), given_at: 'soon' }), 'amount_ml', 'kind', 'note', 'given_at');
      assert.equal(count(a.user.id), n);
    });
  });

  describe('update and delete', () => {
    it('PATCH updates only what is sent, bumps version; null clears note; {} is a no-op', async () => {
      const a = await register(srv);
      const at = Date.now() - HOUR;
      const f = await createFeeding(srv, a.token, { amount_ml: 80, kind: 'formula', given_at: iso(at), note: 'first' });
      await sleep(15);
      const p = (body, headers) => api(srv, 'PATCH', `${FEEDINGS}/${f.id}`, { token: a.token, body, headers });
      const r1 = expectStatus(await p({ amount_ml: 90 }), 200);
      checkFeeding(r1.json);
      assert.deepEqual({ ...r1.json, updated_at: null }, { ...f, amount_ml: 90, version: 2, updated_at: null });
      assert.ok(r1.json.updated_at > f.updated_at);
      const r2 = expectStatus(await p({ note: null }), 200);
      assert.equal(r2.json.note, null, 'null clears note in PATCH');
      assert.equal(r2.json.version, 3);
      const r3 = expectStatus(await p({ given_at: withOffset(at - HOUR, -11 * 60), kind: 'water', note: '' }), 200);
      assert.equal(r3.json.given_at, iso(at - HOUR));
      assert.equal(r3.json.kind, 'water');
      assert.equal(r3.json.note, '');
      assert.equal(r3.json.amount_ml, 90);
      assert.equal(r3.json.version, 4);
      await sleep(15);
      const r4 = expectStatus(await p({}), 200);
      assert.deepEqual(r4.json, r3.json, 'PATCH {} changes nothing');
      const r5 = expectStatus(await api(srv, 'PATCH', `${FEEDINGS}/${f.id}`, { token: a.token }), 200);
      assert.deepEqual(r5.json, r3.json, 'an empty PATCH changes nothing');
      const g = expectStatus(await api(srv, 'GET', `${FEEDINGS}/${f.id}`, { token: a.token }), 200);
      assert.deepEqual(g.json, r3.json);
      assert.equal(g.headers.etag, '"4"');
    });

    it('PATCH validates like POST and changes nothing on a 422', async () => {
      const a = await register(srv);
      const f = await createFeeding(srv, a.token, { amount_ml: 70, note: 'keep' });
      const p = (body) => api(srv, 'PATCH', `${FEEDINGS}/${f.id}`, { token: a.token, body });
      expect422(await p({ amount_ml: 0 }), 'amount_ml');
      expect422(await p({ amount_ml: 2001 }), 'amount_ml');
      expect422(await p({ amount_ml: 1.5 }), 'amount_ml');
      expect422(await p({ amount_ml: '5' }), 'amount_ml');
      expect422(await p({ amount_ml: null }), 'amount_ml');
      expect422(await p({ kind: null }), 'kind');
      expect422(await p({ kind: 'juice' }), 'kind');
      expect422(await p({ given_at: null }), 'given_at');
      expect422(await p({ given_at: iso(Date.now() + 6 * MIN) }), 'given_at');
      expect422(await p({ given_at: 'now' }), 'given_at');
      expect422(await p({ note: 'n'.repeat(1001) }), 'note');
      expect422(await p({ note: 7 }), 'note');
      expect422(await p({ amount_ml: 5, extra: 1 }), 'extra');
      expect422(await p({ id: f.id, version: 1, created_at: f.created_at, updated_at: f.updated_at }), 'id', 'version', 'created_at', 'updated_at');
      const g = expectStatus(await api(srv, 'GET', `${FEEDINGS}/${f.id}`, { token: a.token }), 200);
      assert.deepEqual(g.json, f);
      assert.equal(g.headers.etag, '"1"');
    });

    it('concurrent PATCHes: with the same If-Match exactly one wins, without it no update is lost', async () => {
      const a = await register(srv);
      const f = await createFeeding(srv, a.token);
      const path = `${FEEDINGS}/${f.id}`;
      let rs = await Promise.all(Array.from({ length: 10 }, (_, i) => api(srv, 'PATCH', path, { token: a.token, body: { amount_ml: 200 + i }, headers: { 'If-Match': '"1"' } })));
      const won = rs.filter((r) => r.status === 200);
      assert.equal(won.length, 1, `one 200, got ${rs.map((r) => r.status)}`);
      for (const r of rs.filter((x) => x.status !== 200)) expectProblem(r, 412, 'precondition-failed');
      rs = await Promise.all(Array.from({ length: 10 }, (_, i) => api(srv, 'PATCH', path, { token: a.token, body: { amount_ml: 300 + i } })));
      for (const r of rs) expectStatus(r, 200);
      assert.deepEqual(rs.map((r) => r.json.version).sort((x, y) => x - y), [3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 'every update got its own version');
      const g = expectStatus(await api(srv, 'GET', path, { token: a.token }), 200);
      assert.equal(g.headers.etag, '"12"');
    });

    it('If-Match: current ETag and * match, stale is 412, on PATCH and DELETE; DELETE then 404', async () => {
      const a = await register(srv);
      const f = await createFeeding(srv, a.token);
      const path = `${FEEDINGS}/${f.id}`;
      assert.equal((await api(srv, 'GET', path, { token: a.token })).headers.etag, '"1"');
      expectStatus(await api(srv, 'PATCH', path, { token: a.token, body: { amount_ml: 101 }, headers: { 'If-Match': '"1"' } }), 200);
      expectProblem(await api(srv, 'PATCH', path, { token: a.token, body: { amount_ml: 102 }, headers: { 'If-Match': '"1"' } }), 412, 'precondition-failed');
      expectProblem(await api(srv, 'PATCH', path, { token: a.token, body: { amount_ml: 102 }, headers: { 'If-Match': 'W/"2"' } }), 412, 'precondition-failed');
      let g = expectStatus(await api(srv, 'GET', path, { token: a.token }), 200);
      assert.equal(g.json.amount_ml, 101);
      assert.equal(g.headers.etag, '"2"');
      const w = expectStatus(await api(srv, 'PATCH', path, { token: a.token, body: { amount_ml: 103 }, headers: { 'If-Match': '*' } }), 200);
      assert.equal(w.json.version, 3);
      expect422(await api(srv, 'PATCH', path, { token: a.token, body: { amount_ml: 0 }, headers: { 'If-Match': '"1"' } }), 'amount_ml');
      expectProblem(await api(srv, 'DELETE', path, { token: a.token, headers: { 'If-Match': '"2"' } }), 412, 'precondition-failed');
      g = expectStatus(await api(srv, 'GET', path, { token: a.token }), 200);
      assert.equal(g.json.version, 3);
      const d = expectStatus(await api(srv, 'DELETE', path, { token: a.token, headers: { 'If-Match': '"3"' } }), 204);
      assert.equal(d.text, '');
      expect404(await api(srv, 'GET', path, { token: a.token }));
      expect404(await api(srv, 'PATCH', path, { token: a.token, body: { amount_ml: 5 } }));
      expect404(await api(srv, 'DELETE', path, { token: a.token }));
      const f2 = await createFeeding(srv, a.token);
      expectStatus(await api(srv, 'DELETE', `${FEEDINGS}/${f2.id}`, { token: a.token, headers: { 'If-Match': '*' } }), 204);
      assert.equal(count(a.user.id), 0);
    });
  });

  describe('lists', () => {
    it('newest given_at first; from inclusive, to exclusive; kind filter; bad parameters 400', async () => {
      const a = await register(srv);
      const base = Math.floor((Date.now() - 10 * HOUR) / 1000) * 1000;
      const f2 = await createFeeding(srv, a.token, { given_at: iso(base + 2 * HOUR), kind: 'milk' });
      const f0 = await createFeeding(srv, a.token, { given_at: iso(base), kind: 'milk' });
      const f3 = await createFeeding(srv, a.token, { given_at: iso(base + 3 * HOUR), kind: 'water' });
      const f1 = await createFeeding(srv, a.token, { given_at: iso(base + HOUR), kind: 'formula' });
      const all = (await page(srv, a.token)).items;
      assert.deepEqual(ids(all), [f3.id, f2.id, f1.id, f0.id]);
      const l = async (params) => ids((await page(srv, a.token, params)).items);
      assert.deepEqual(await l([['from', iso(base + HOUR)]]), [f3.id, f2.id, f1.id], 'from is inclusive');
      assert.deepEqual(await l([['to', iso(base + 2 * HOUR)]]), [f1.id, f0.id], 'to is exclusive');
      assert.deepEqual(await l([['from', iso(base + HOUR)], ['to', iso(base + 2 * HOUR)]]), [f1.id]);
      assert.deepEqual(await l([['from', withOffset(base + HOUR, 330)], ['to', withOffset(base + 2 * HOUR, -600)]]), [f1.id], 'any offset');
      assert.deepEqual(await l([['from', iso(base + HOUR + 1)]]), [f3.id, f2.id]);
      assert.deepEqual(await l([['to', iso(base + 1)]]), [f0.id]);
      assert.deepEqual(await l([['kind', 'milk']]), [f2.id, f0.id]);
      assert.deepEqual(await l([['kind', 'milk'], ['from', iso(base + 1)]]), [f2.id]);
      assert.deepEqual(await l([['kind', 'medication']]), []);
      const empty = await api(srv, 'GET', FEEDINGS + qs([['from', iso(base + 3 * HOUR)], ['to', iso(base)]]), { token: a.token });
      assert.ok(empty.status === 200 || empty.status === 400, `from after to: ${empty.status}`);
      if (empty.status === 200) assert.deepEqual(empty.json.items, []);
      for (const bad of [
        [['from', 'abc']], [['to', '2026-13-01T00:00:00Z']], [['from', '2026-11-23T10:00:00']], [['to', 'yesterday']],
        [['kind', 'juice']], [['kind', 'MILK']], [['limit', '0']], [['limit', '101']], [['limit', 'abc']], [['cursor', 'garbage']],
      ]) {
        expectProblem(await api(srv, 'GET', FEEDINGS + qs(bad), { token: a.token }), 400, 'malformed');
      }
      assert.deepEqual(await l([['unknown', 'x']]), ids(all), 'unknown query parameters are ignored');
    });

    it('limit defaults to 50; pages of 10 concatenate to the full list; next_cursor null on the last page', async () => {
      const a = await register(srv);
      psql(`INSERT INTO feedings (subject_id, created_by, amount_ml, given_at) SELECT ${seedAs(a.user.id)}, g, now() - g * interval '1 minute' FROM generate_series(1, 60) g`);
      let p = await page(srv, a.token);
      assert.equal(p.items.length, 50);
      assert.equal(typeof p.next_cursor, 'string');
      p = await page(srv, a.token, [['limit', '100']]);
      assert.equal(p.items.length, 60);
      assert.equal(p.next_cursor, null);
      const b = await register(srv);
      const now = Date.now();
      for (let i = 0; i < 25; i++) await createFeeding(srv, b.token, { amount_ml: i + 1, given_at: iso(now - (i * 37 % 25) * MIN - HOUR) });
      const full = (await page(srv, b.token, [['limit', '100']])).items;
      assert.equal(full.length, 25);
      assertNewestFirst(full);
      const { items, pages } = await walk(srv, b.token, [], 10);
      assert.deepEqual(pages.map((x) => x.items.length), [10, 10, 5]);
      assert.equal(pages[2].next_cursor, null);
      assert.deepEqual(items, full);
      const c = await register(srv);
      for (let i = 0; i < 20; i++) await createFeeding(srv, c.token, { given_at: iso(now - i * MIN - HOUR) });
      assert.deepEqual((await walk(srv, c.token, [], 10)).pages.map((x) => x.items.length), [10, 10], 'no empty page after an exact fit');
      // a filtered walk
      const filtered = (await walk(srv, b.token, [['from', iso(now - HOUR - 10 * MIN)]], 3)).items;
      assert.deepEqual(ids(filtered), ids(full.filter((f) => f.given_at >= iso(now - HOUR - 10 * MIN))));
    });

    it('feedings logged between page fetches cause no duplicates and no gaps among the others', async () => {
      const a = await register(srv);
      const now = Date.now();
      for (let i = 0; i < 25; i++) await createFeeding(srv, a.token, { amount_ml: 10 + i, given_at: iso(now - (i + 1) * 10 * MIN) });
      const full = ids((await page(srv, a.token, [['limit', '100']])).items);
      const originals = new Set(full);
      const { items } = await walk(srv, a.token, [], 10, async (i) => {
        await createFeeding(srv, a.token, { amount_ml: 1, given_at: iso(now - MIN) }); // newer than every original
        await createFeeding(srv, a.token, { amount_ml: 2, given_at: iso(now - 10 * (20 - i) * MIN - 5 * MIN) }); // among them
        await createFeeding(srv, a.token, { amount_ml: 3, given_at: iso(now - 1000 * MIN) }); // older than every original
      });
      const got = ids(items);
      noDuplicates(got);
      assert.deepEqual(got.filter((id) => originals.has(id)), full, 'every original exactly once, in order');
      assertNewestFirst(items);
    });

    it('ties on given_at (equal, or equal to the millisecond) are paged without duplicates or gaps', async () => {
      const a = await register(srv);
      psql(`INSERT INTO feedings (subject_id, created_by, amount_ml, given_at)
            SELECT ${seedAs(a.user.id)}, g, t FROM generate_series(1, 23) g, (SELECT now() - interval '1 hour' AS t) x`);
      psql(`INSERT INTO feedings (subject_id, created_by, amount_ml, given_at)
            SELECT ${seedAs(a.user.id)}, 100 + g, t - g * interval '1 microsecond'
            FROM generate_series(1, 23) g, (SELECT date_trunc('second', now()) - interval '2 hours' AS t) x`);
      const full = (await page(srv, a.token, [['limit', '100']])).items;
      assert.equal(full.length, 46);
      assertNewestFirst(full);
      for (const limit of [1, 5, 10]) {
        const got = ids((await walk(srv, a.token, [], limit)).items);
        noDuplicates(got);
        assert.deepEqual(got, ids(full), `limit=${limit}`);
      }
    });

    it('a garbage or tampered cursor is 400', async () => {
      const a = await register(srv);
      for (let i = 0; i < 3; i++) await createFeeding(srv, a.token, { given_at: iso(Date.now() - (i + 1) * MIN) });
      const c = (await page(srv, a.token, [['limit', '1']])).next_cursor;
      assert.equal(typeof c, 'string');
      for (const bad of ['garbage', c.slice(0, Math.floor(c.length / 2)), `${c}!`, '%%%%', 'x'.repeat(4000),
        Buffer.from('{"a":1}').toString('base64url'), Buffer.from('not a time,not an id').toString('base64')]) {
        expectProblem(await api(srv, 'GET', FEEDINGS + qs([['cursor', bad]]), { token: a.token }), 400, 'malformed');
      }
    });
  });

  describe('today', () => {
    for (const tz of ['Pacific/Kiritimati', 'Pacific/Pago_Pago', 'Europe/Paris', 'America/New_York', 'UTC']) {
      it(`counts the user's calendar day in ${tz}`, async () => {
        const a = await register(srv);
        expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { timezone: tz, daily_target_ml: 1000 } }), 200);
        let t = await today(srv, a.token);
        const { now, today: date, start, next } = await steadyDay(tz);
        t = await today(srv, a.token);
        assert.deepEqual(t, { date, timezone: tz, target_ml: 1000, total_ml: 0, count: 0, remaining_ml: 1000, progress: 0, last_given_at: null });
        const mid = start + Math.min(30000, Math.floor((now - start) / 3));
        const last = now - 2000;
        await createFeeding(srv, a.token, { amount_ml: 500, given_at: iso(start - 1000) }); // yesterday, local
        await createFeeding(srv, a.token, { amount_ml: 7, given_at: iso(start - 1) }); // the last millisecond of yesterday
        await createFeeding(srv, a.token, { amount_ml: 120, given_at: withOffset(start, offsetMs(start, tz) / MIN) }); // local midnight: today
        await createFeeding(srv, a.token, { amount_ml: 250, given_at: withOffset(mid, 14 * 60) });
        await createFeeding(srv, a.token, { amount_ml: 30, given_at: withOffset(last, -11 * 60) });
        // tomorrow's local midnight (written directly: the API refuses the future)
        psql(`INSERT INTO feedings (subject_id, created_by, amount_ml, given_at) VALUES (${seedAs(a.user.id)}, 700, '${iso(next)}')`);
        t = await today(srv, a.token);
        assert.deepEqual(t, { date, timezone: tz, target_ml: 1000, total_ml: 400, count: 3, remaining_ml: 600, progress: 0.4, last_given_at: iso(last) });
        expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { daily_target_ml: 250 } }), 200);
        t = await today(srv, a.token);
        assert.equal(t.remaining_ml, 0, 'remaining is max(target - total, 0)');
        assert.equal(t.progress, 1.6, 'progress is not capped');
        assert.equal(t.target_ml, 250);
        expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { daily_target_ml: 0 } }), 200);
        t = await today(srv, a.token);
        assert.equal(t.progress, 0, 'progress 0 without a target');
        assert.equal(t.remaining_ml, 0);
        assert.equal(t.total_ml, 400);
      });
    }

    it('follows a change of time zone, and is 0/null for a user with nothing today', async () => {
      const K = 'Pacific/Kiritimati';
      const P = 'Pacific/Pago_Pago';
      const a = await register(srv, { timezone: K });
      expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { daily_target_ml: 500 } }), 200);
      await steadyDay(P);
      const { start } = await steadyDay(K);
      // one second into Kiritimati's day: the evening before in Pago Pago (25 h behind), unless it is late there
      const at = start + 1000;
      const inP = localDate(at, P) === localDate(Date.now(), P);
      await createFeeding(srv, a.token, { amount_ml: 90, given_at: iso(at) });
      let t = await today(srv, a.token);
      assert.deepEqual(t, { date: localDate(Date.now(), K), timezone: K, target_ml: 500, total_ml: 90, count: 1, remaining_ml: 410, progress: 0.18, last_given_at: iso(at) });
      expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { timezone: P } }), 200);
      t = await today(srv, a.token);
      assert.deepEqual(t, inP
        ? { date: localDate(Date.now(), P), timezone: P, target_ml: 500, total_ml: 90, count: 1, remaining_ml: 410, progress: 0.18, last_given_at: iso(at) }
        : { date: localDate(Date.now(), P), timezone: P, target_ml: 500, total_ml: 0, count: 0, remaining_ml: 500, progress: 0, last_given_at: null });
      await steadyDay('UTC');
      const fresh = await register(srv);
      assert.deepEqual(await today(srv, fresh.token), {
        date: localDate(Date.now(), 'UTC'), timezone: 'UTC', target_ml: 0, total_ml: 0, count: 0, remaining_ml: 0, progress: 0, last_given_at: null,
      });
    });
  });

  describe('stats', () => {
    for (const tz of ['Europe/Paris', 'Pacific/Kiritimati', 'Pacific/Pago_Pago']) {
      it(`has a row for every day, in ${tz}, with exact totals and averages`, async () => {
        const a = await register(srv, { timezone: tz });
        const { now, today: d0, start } = await steadyDay(tz);
        const d = (k) => addDays(d0, -k);
        await createFeeding(srv, a.token, { amount_ml: 100, given_at: iso(start + 1000) });
        await createFeeding(srv, a.token, { amount_ml: 55, given_at: iso(now - 1000) });
        await createFeeding(srv, a.token, { amount_ml: 30, given_at: iso(start - 1000) });
        const s6 = midnight(d(6), tz);
        await createFeeding(srv, a.token, { amount_ml: 9, given_at: withOffset(s6, 14 * 60) });
        await createFeeding(srv, a.token, { amount_ml: 1001, given_at: iso(s6 - 1) });
        let s = await stats(srv, a.token, 7);
        const zeros = (ks) => ks.map((k) => ({ date: d(k), count: 0, total_ml: 0 }));
        assert.deepEqual(s, {
          days: 7, from: d(6), to: d0, total_count: 4, total_ml: 194, avg_ml: 48.5, avg_daily_ml: 27.7,
          per_day: [{ date: d(6), count: 1, total_ml: 9 }, ...zeros([5, 4, 3, 2]), { date: d(1), count: 1, total_ml: 30 }, { date: d0, count: 2, total_ml: 155 }],
        });
        s = await stats(srv, a.token, 8);
        assert.equal(s.from, d(7));
        assert.deepEqual(s.per_day[0], { date: d(7), count: 1, total_ml: 1001 });
        assert.equal(s.total_count, 5);
        assert.equal(s.total_ml, 1195);
        assert.equal(s.avg_ml, 239);
        assert.equal(s.avg_daily_ml, 149.4);
        s = await stats(srv, a.token, 1);
        assert.deepEqual(s, { days: 1, from: d0, to: d0, total_count: 2, total_ml: 155, avg_ml: 77.5, avg_daily_ml: 155, per_day: [{ date: d0, count: 2, total_ml: 155 }] });
        s = await stats(srv, a.token);
        assert.equal(s.days, 30, 'default 30 days');
        assert.equal(s.from, d(29));
        assert.equal(s.to, d0);
        assert.equal(s.total_count, 5);
        assert.equal(s.avg_daily_ml, 39.8); // 1195 / 30 = 39.83
        s = await stats(srv, a.token, 365);
        assert.equal(s.from, d(364));
        assert.equal(s.total_count, 5);
        // tomorrow (written directly: the API refuses the future) is outside every range
        psql(`INSERT INTO feedings (subject_id, created_by, amount_ml, given_at) VALUES (${seedAs(a.user.id)}, 600, '${iso(midnight(addDays(d0, 1), tz))}')`);
        s = await stats(srv, a.token, 7);
        assert.equal(s.total_count, 4);
        assert.equal(s.to, d0);
        assert.equal((await today(srv, a.token)).total_ml, 155);
      });
    }

    it('is all zeros without feedings; days 1..365, else 400', async () => {
      const a = await register(srv, { timezone: 'America/New_York' });
      const { today: d0 } = await steadyDay('America/New_York');
      const s = await stats(srv, a.token, 3);
      assert.deepEqual(s, {
        days: 3, from: addDays(d0, -2), to: d0, total_count: 0, total_ml: 0, avg_ml: 0, avg_daily_ml: 0,
        per_day: [0, 1, 2].map((k) => ({ date: addDays(d0, k - 2), count: 0, total_ml: 0 })),
      });
      for (const bad of ['0', '366', 'abc', '-1', '1.5', '', '30days', '99999999999999999999']) {
        expectProblem(await api(srv, 'GET', `${STATS}?days=${encodeURIComponent(bad)}`, { token: a.token }), 400, 'malformed');
      }
    });

    // Every local day within the last year on which a zone changes its offset, from
    // d(363) to d(2) so that the days either side are in the 365 too, with feedings around
    // its midnights and around the change itself. Four zones of both hemispheres: any year
    // has at least one 23-hour and one 25-hour day among them in that window.
    it('puts feedings on the right local day across DST changes (days=365)', async () => {
      const cases = [];
      for (const tz of ['Europe/Paris', 'America/New_York', 'Australia/Sydney', 'Pacific/Auckland']) {
        const { today: d0 } = await steadyDay(tz);
        for (const day of offsetChanges(tz, addDays(d0, -363), addDays(d0, -2))) cases.push({ tz, d0, ...day });
      }
      const kinds = new Set(cases.map((c) => c.hours));
      assert.ok(kinds.has(23) && kinds.has(25), `a 23-hour and a 25-hour day in the last year: ${JSON.stringify(cases)}`);
      for (const { tz, d0, date, at, hours } of cases) {
        const u = await register(srv, { timezone: tz });
        const start = midnight(date, tz);
        const end = midnight(addDays(date, 1), tz);
        assert.equal(end - start, hours * HOUR);
        const local = (ms) => withOffset(ms, offsetMs(ms, tz) / MIN); // as the zone's clocks say it
        for (const [ms, ml] of [
          [start - 30 * MIN, 1], // the day before
          [start + 30 * MIN, 2],
          [at - 30 * MIN, 4],
          [at - 1, 8], // the last millisecond before the change
          [at, 16],
          [at + 30 * MIN, 32], // after a fall back: the same wall time as at - 30 min
          [end - 30 * MIN, 64],
          [end + 30 * MIN, 128], // the day after
        ]) await createFeeding(srv, u.token, { amount_ml: ml, given_at: local(ms) });
        const s = await stats(srv, u.token, 365);
        assert.equal(s.to, d0);
        const by = Object.fromEntries(s.per_day.filter((r) => r.count > 0).map((r) => [r.date, { count: r.count, total_ml: r.total_ml }]));
        assert.deepEqual(by, {
          [addDays(date, -1)]: { count: 1, total_ml: 1 },
          [date]: { count: 6, total_ml: 126 },
          [addDays(date, 1)]: { count: 1, total_ml: 128 },
        }, `${tz} ${date}, a ${hours}-hour day changing at ${iso(at)}`);
      }
    });
  });

  describe('idempotency', () => {
    const srv2 = useServer({ ...API_ENV });
    const post = (s, token, body, key) => api(s, 'POST', FEEDINGS, { token, body, headers: { 'Idempotency-Key': key } });

    it('replays the first response for the same key and bytes; different bytes 422; failures are not stored', async () => {
      const a = await register(srv);
      const body = '{"amount_ml":120,"kind":"milk"}';
      const r1 = expectStatus(await post(srv, a.token, body, 'feed-1'), 201);
      assert.notEqual(r1.headers['idempotent-replayed'], 'true');
      await sleep(20);
      const r2 = expectStatus(await post(srv2, a.token, body, 'feed-1'), 201);
      assert.equal(r2.headers['idempotent-replayed'], 'true');
      assert.equal(r2.headers.location, r1.headers.location);
      assert.deepEqual(r2.json, r1.json, 'the same body, given_at included');
      expectProblem(await post(srv, a.token, '{"amount_ml":121,"kind":"milk"}', 'feed-1'), 422, 'validation');
      expectProblem(await post(srv, a.token, '{"kind":"milk","amount_ml":120}', 'feed-1'), 422, 'validation');
      assert.equal(count(a.user.id), 1);
      expect422(await post(srv, a.token, '{"amount_ml":0}', 'feed-2'), 'amount_ml');
      const ok = expectStatus(await post(srv, a.token, '{"amount_ml":10}', 'feed-2'), 201);
      assert.notEqual(ok.headers['idempotent-replayed'], 'true');
      assert.equal(count(a.user.id), 2);
      const b = await register(srv);
      const rb = expectStatus(await post(srv, b.token, body, 'feed-1'), 201);
      assert.notEqual(rb.headers['idempotent-replayed'], 'true', 'keys are per user');
      assert.notEqual(rb.json.id, r1.json.id);
      assert.equal(count(b.user.id), 1);
      const bad = await post(srv, a.token, body, 'k'.repeat(256));
      assert.ok(bad.status === 400 || bad.status === 422, `a 256-character key: ${bad.status}`);
      assert.equal(count(a.user.id), 2);
    });

    it('10 concurrent identical requests on two replicas write exactly one row', async () => {
      for (let round = 0; round < 3; round++) {
        const a = await register(srv);
        const body = JSON.stringify({ amount_ml: 10 + round, kind: 'formula', note: 'race' });
        const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => post(i % 2 ? srv2 : srv, a.token, body, `race-${round}`)));
        for (const r of rs) assert.ok(r.status === 201 || r.status === 409, `201 or 409, got ${r.status} ${r.text.slice(0, 200)}`);
        for (const r of rs.filter((x) => x.status === 409)) expectProblem(r, 409, 'conflict');
        const created = rs.filter((r) => r.status === 201);
        const originals = created.filter((r) => r.headers['idempotent-replayed'] !== 'true');
        assert.equal(originals.length, 1, `exactly one original 201 (statuses ${rs.map((r) => `${r.status}${r.headers['idempotent-replayed'] ? 'R' : ''}`)})`);
        for (const r of created) {
          assert.deepEqual(r.json, originals[0].json);
          assert.equal(r.headers.location, originals[0].headers.location);
        }
        assert.equal(count(a.user.id), 1, 'exactly one row');
      }
    });
  });

  describe('isolation and scopes', () => {
    it('another user gets 404 on GET/PATCH/DELETE and never sees the feeding in lists, today or stats', async () => {
      const tz = 'Europe/Paris';
      const a = await register(srv, { timezone: tz });
      const b = await register(srv, { timezone: tz });
      await steadyDay(tz);
      const f = await createFeeding(srv, a.token, { amount_ml: 333, kind: 'medication' });
      const path = `${FEEDINGS}/${f.id}`;
      expect404(await api(srv, 'GET', path, { token: b.token }));
      expect404(await api(srv, 'HEAD', path, { token: b.token }));
      expect404(await api(srv, 'PATCH', path, { token: b.token, body: { amount_ml: 1 } }));
      expect404(await api(srv, 'PATCH', path, { token: b.token, body: { amount_ml: 1 }, headers: { 'If-Match': '"9"' } }));
      expect404(await api(srv, 'DELETE', path, { token: b.token }));
      assert.deepEqual(expectStatus(await api(srv, 'GET', path, { token: a.token }), 200).json, f);
      assert.deepEqual((await page(srv, b.token)).items, []);
      assert.deepEqual((await page(srv, b.token, [['kind', 'medication']])).items, []);
      const tb = await today(srv, b.token);
      assert.equal(tb.count, 0);
      assert.equal(tb.total_ml, 0);
      assert.equal(tb.last_given_at, null);
      const sb = await stats(srv, b.token, 2);
      assert.equal(sb.total_count, 0);
      assert.equal((await today(srv, a.token)).total_ml, 333);
    });

    it('a read token reads but cannot write; a write-only token logs feedings but cannot read', async () => {
      const a = await register(srv);
      const f = await createFeeding(srv, a.token);
      const ro = await createToken(srv, a.token, { name: 'ro', scopes: ['read'] });
      const wo = await createToken(srv, a.token, { name: 'device', scopes: ['write'] });
      for (const p of [FEEDINGS, `${FEEDINGS}/${f.id}`, TODAY, `${STATS}?days=3`]) {
        expectStatus(await api(srv, 'GET', p, { token: ro.token }), 200);
        expect403(await api(srv, 'GET', p, { token: wo.token }));
      }
      expect403(await api(srv, 'POST', FEEDINGS, { token: ro.token, body: { amount_ml: 5 } }));
      expect403(await api(srv, 'PATCH', `${FEEDINGS}/${f.id}`, { token: ro.token, body: { amount_ml: 5 } }));
      expect403(await api(srv, 'DELETE', `${FEEDINGS}/${f.id}`, { token: ro.token }));
      const w = await api(srv, 'POST', FEEDINGS, { token: wo.token, body: { amount_ml: 60, kind: 'formula' } });
      expectStatus(w, 201);
      checkFeeding(w.json);
      // its PATCH answers 204 without the feeding (the contract: no body without read)
      const p = expectStatus(await api(srv, 'PATCH', `${FEEDINGS}/${w.json.id}`, { token: wo.token, body: { amount_ml: 61 } }), 204);
      assert.equal(p.text, '');
      assert.equal(expectStatus(await api(srv, 'GET', `${FEEDINGS}/${w.json.id}`, { token: a.token }), 200).json.amount_ml, 61);
      expectStatus(await api(srv, 'DELETE', `${FEEDINGS}/${w.json.id}`, { token: wo.token }), 204);
      assert.equal(count(a.user.id), 1);
    });
  });

  describe('order of checks and cookies', () => {
    it('401 before 415/422; 422 before 404 (existence); a write-only token is 403 before 400', async () => {
      const a = await register(srv);
      expect401(await api(srv, 'POST', FEEDINGS, { body: 'x', contentType: 'text/plain' }));
      expect401(await api(srv, 'GET', `${STATS}?days=0`));
      expect401(await api(srv, 'GET', `${FEEDINGS}?limit=0`));
      const wo = await createToken(srv, a.token, { scopes: ['write'] });
      expect403(await api(srv, 'GET', `${STATS}?days=abc`, { token: wo.token }));
      expect403(await api(srv, 'GET', `${FEEDINGS}?kind=juice`, { token: wo.token }));
      expect422(await api(srv, 'PATCH', `${FEEDINGS}/${RANDOM_UUID}`, { token: a.token, body: { amount_ml: 0 } }), 'amount_ml');
      expect422(await api(srv, 'PATCH', `${FEEDINGS}/not-a-uuid`, { token: a.token, body: { kind: 'juice' } }), 'kind');
      expect404(await api(srv, 'PATCH', `${FEEDINGS}/not-a-uuid`, { token: a.token, body: { kind: 'milk' } }));
    });

    it('cookie-authenticated writes need the public Origin', async () => {
      const a = await register(srv);
      const f = await createFeeding(srv, a.token);
      expect403(await api(srv, 'POST', FEEDINGS, { cookie: a.token, origin: null, body: { amount_ml: 5 } }));
      expect403(await api(srv, 'PATCH', `${FEEDINGS}/${f.id}`, { cookie: a.token, origin: 'https://evil.example', body: { amount_ml: 5 } }));
      expect403(await api(srv, 'DELETE', `${FEEDINGS}/${f.id}`, { cookie: a.token, origin: 'null' }));
      assert.equal(count(a.user.id), 1);
      expectStatus(await api(srv, 'GET', TODAY, { cookie: a.token, origin: null }), 200);
      expectStatus(await api(srv, 'POST', FEEDINGS, { cookie: a.token, body: { amount_ml: 5 } }), 201);
      expectStatus(await api(srv, 'DELETE', `${FEEDINGS}/${f.id}`, { cookie: a.token }), 204);
      assert.equal(count(a.user.id), 1);
    });
  });

  describe('change events', () => {
    it('publishes feeding.created/updated/deleted with the whole feeding after the commit, on the owner\'s channel only', async () => {
      const a = await register(srv);
      const b = await register(srv);
      const sub = await subscribeRecordEvents('feedings', [a, b]);
      try {
        const chA = `pulse:user:${a.user.id}`;
        const r = expectStatus(await api(srv, 'POST', FEEDINGS, { token: a.token, body: { amount_ml: 42, kind: 'water', note: 'live' } }), 201);
        const c = await sub.waitFor((m) => m.data.event === 'feeding.created');
        assert.equal(c.channel, chA);
        // care circles: the frame also names the subject (the v1 keys stay, same values)
        assert.deepEqual(c.data, { type: 'event', event: 'feeding.created', subject_id: r.json.subject_id, seq: c.data.seq, data: r.json });
        assert.equal(c.row, '1', 'published after the commit');
        const u = expectStatus(await api(srv, 'PATCH', `${FEEDINGS}/${r.json.id}`, { token: a.token, body: { note: null } }), 200);
        const e = await sub.waitFor((m) => m.data.event === 'feeding.updated');
        assert.deepEqual(e.data, { type: 'event', event: 'feeding.updated', subject_id: r.json.subject_id, seq: e.data.seq, data: u.json });
        assert.equal(e.row, '2');
        expect422(await api(srv, 'PATCH', `${FEEDINGS}/${r.json.id}`, { token: a.token, body: { amount_ml: 0 } }));
        expectProblem(await api(srv, 'DELETE', `${FEEDINGS}/${r.json.id}`, { token: a.token, headers: { 'If-Match': '"1"' } }), 412, 'precondition-failed');
        expect404(await api(srv, 'DELETE', `${FEEDINGS}/${r.json.id}`, { token: b.token }));
        expectStatus(await api(srv, 'DELETE', `${FEEDINGS}/${r.json.id}`, { token: a.token }), 204);
        const d = await sub.waitFor((m) => m.data.event === 'feeding.deleted');
        assert.deepEqual(d.data, { type: 'event', event: 'feeding.deleted', subject_id: r.json.subject_id, seq: d.data.seq, data: { id: r.json.id } });
        assert.equal(d.row, '', 'the row is gone when the delete is published');
        await sleep(300);
        assert.deepEqual(sub.messages.map((m) => m.data.event), ['feeding.created', 'feeding.updated', 'feeding.deleted']);
        assert.ok(sub.messages.every((m) => m.channel === chA), 'nothing on another user\'s channel');
      } finally {
        sub.close();
      }
    });
  });
});
