// Notes against the contract (docs/api.md: "Notes and feeding logs", "Idempotency",
// "Conventions", "Errors" (order of checks), "Lists", tokens, live events): CRUD, every
// validation bound, ETag / If-Match, ordering and filters, full-text search, tags, keyset
// pagination (also with ties and concurrent inserts), Idempotency-Key (also raced across
// two replicas), tenant isolation, token scopes and the change events published on Redis.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import {
  API_ENV, TS_RE, UUID_RE,
  api, createToken, expect401, expect403, expect404, expect422, expectProblem, expectStatus, psql, register, seedAs, sleep, subscribeRecordEvents,
} from './api.mjs';
import { raw, useServer } from './helpers.mjs';

const NOTES = '/api/v1/notes';
const NOTE_KEYS = ['body', 'created_at', 'id', 'pinned', 'tags', 'title', 'updated_at', 'version'];
// Care circles add subject_id and created_by; every v1 key stays, with the same values.
const NOTE_KEYS_V2 = [...NOTE_KEYS, 'created_by', 'subject_id'].sort();
const RANDOM_UUID = '7b0e7c3e-5d1f-4c6a-9a57-3f2b8d1e9c44';

const qs = (params) => {
  const u = new URLSearchParams();
  for (const [k, v] of params) u.append(k, v);
  const s = u.toString();
  return s ? `?${s}` : '';
};

async function createNote(srv, token, body = {}) {
  const r = await api(srv, 'POST', NOTES, { token, body: { title: 'a note', ...body } });
  expectStatus(r, 201);
  return r.json;
}

function checkNote(n) {
  assert.deepEqual(Object.keys(n).sort(), NOTE_KEYS_V2, JSON.stringify(n));
  assert.match(n.id, UUID_RE);
  assert.equal(typeof n.title, 'string');
  assert.equal(typeof n.body, 'string');
  assert.ok(Array.isArray(n.tags));
  assert.equal(typeof n.pinned, 'boolean');
  assert.ok(Number.isInteger(n.version) && n.version >= 1);
  assert.match(n.created_at, TS_RE);
  assert.match(n.updated_at, TS_RE);
}

// One page: asserts 200 and the list shape.
async function page(srv, token, params = []) {
  const r = expectStatus(await api(srv, 'GET', NOTES + qs(params), { token }), 200);
  assert.deepEqual(Object.keys(r.json).sort(), ['items', 'next_cursor'], r.text.slice(0, 300));
  assert.ok(Array.isArray(r.json.items));
  assert.ok(r.json.next_cursor === null || (typeof r.json.next_cursor === 'string' && r.json.next_cursor.length > 0));
  for (const n of r.json.items) checkNote(n);
  return r.json;
}

// Every page of a list, following next_cursor; resolves the items and the pages.
async function walk(srv, token, params = [], limit = 10, between) {
  const items = [];
  const pages = [];
  let cursor = null;
  for (let i = 0; i < 500; i++) {
    const p = await page(srv, token, [...params, ['limit', String(limit)], ...(cursor ? [['cursor', cursor]] : [])]);
    assert.ok(p.items.length <= limit, `page over limit: ${p.items.length}`);
    pages.push(p);
    items.push(...p.items);
    if (p.next_cursor === null) return { items, pages };
    assert.ok(p.items.length > 0, 'a page with a next_cursor is not empty');
    cursor = p.next_cursor;
    if (between) await between(i);
  }
  throw new Error('pagination does not end');
}

// Pinned first, then newest updated_at first.
function assertListOrder(items) {
  for (let i = 1; i < items.length; i++) {
    const a = items[i - 1];
    const b = items[i];
    if (a.pinned !== b.pinned) {
      assert.ok(a.pinned && !b.pinned, `pinned first: ${a.id} before ${b.id}`);
    } else {
      assert.ok(a.updated_at >= b.updated_at, `newest updated_at first: ${a.updated_at} then ${b.updated_at}`);
    }
  }
}

const ids = (items) => items.map((n) => n.id);
const noDuplicates = (list) => assert.equal(new Set(list).size, list.length, 'no duplicates');
const count = (userId) => Number(psql(`SELECT count(*) FROM notes WHERE created_by = '${userId}'`));

describe('notes', () => {
  const srv = useServer({ ...API_ENV });

  describe('create and read', () => {
    it('POST answers 201 with Location and the whole note; GET and HEAD answer it with ETag', async () => {
      const a = await register(srv);
      const t0 = Date.now();
      const r = await api(srv, 'POST', NOTES, { token: a.token, body: { title: 'Hello 🍼', body: 'World\nline two', tags: ['zeta', 'alpha', 'mid_1-2'], pinned: true } });
      expectStatus(r, 201);
      assert.match(r.headers['content-type'], /^application\/json/);
      const n = r.json;
      checkNote(n);
      assert.equal(r.headers.location, `/api/v1/notes/${n.id}`, 'Location is the path of the new note');
      assert.equal(n.title, 'Hello 🍼');
      assert.equal(n.body, 'World\nline two');
      assert.deepEqual(n.tags, ['zeta', 'alpha', 'mid_1-2'], 'tags in the order given');
      assert.equal(n.pinned, true);
      assert.equal(n.version, 1);
      assert.ok(Math.abs(Date.parse(n.created_at) - t0) < 60000, 'created_at is now');
      assert.ok(Math.abs(Date.parse(n.updated_at) - t0) < 60000, 'updated_at is now');
      const g = expectStatus(await api(srv, 'GET', r.headers.location, { token: a.token }), 200);
      assert.deepEqual(g.json, n);
      assert.equal(g.headers.etag, '"1"', 'ETag is the strong tag "<version>"');
      const h = expectStatus(await api(srv, 'HEAD', r.headers.location, { token: a.token }), 200);
      assert.equal(h.text, '');
      assert.equal(h.headers.etag, '"1"');
      const l = await page(srv, a.token);
      assert.deepEqual(l.items, [n]);
      assert.equal(l.next_cursor, null);
      expectStatus(await api(srv, 'HEAD', NOTES, { token: a.token }), 200);
    });

    it('defaults body to "", tags to [] and pinned to false', async () => {
      const a = await register(srv);
      const n = await createNote(srv, a.token, { title: 'just a title' });
      checkNote(n);
      assert.equal(n.body, '');
      assert.deepEqual(n.tags, []);
      assert.equal(n.pinned, false);
      assert.equal(n.version, 1);
    });

    it('answers 404 to an unknown id and to an id that is not a UUID, 401 without credentials', async () => {
      const a = await register(srv);
      const n = await createNote(srv, a.token);
      for (const id of [RANDOM_UUID, 'not-a-uuid', '123', `${n.id}x`, n.id.toUpperCase().replace(/-/g, '').slice(0, 10)]) {
        expect404(await api(srv, 'GET', `${NOTES}/${id}`, { token: a.token }));
        expect404(await api(srv, 'PATCH', `${NOTES}/${id}`, { token: a.token, body: { title: 'x' } }));
        expect404(await api(srv, 'DELETE', `${NOTES}/${id}`, { token: a.token }));
      }
      for (const p of [NOTES, `${NOTES}/${n.id}`, `${NOTES}/not-a-uuid`, `${NOTES}/${RANDOM_UUID}`, '/api/v1/tags']) {
        expect401(await api(srv, 'GET', p));
      }
      expect401(await api(srv, 'POST', NOTES, { body: { title: 'x' } }));
      expect401(await api(srv, 'PATCH', `${NOTES}/not-a-uuid`, { body: { title: 'x' } }));
      expect401(await api(srv, 'DELETE', `${NOTES}/${n.id}`));
      expect401(await api(srv, 'GET', NOTES, { token: 'not-a-real-token' }));
      assert.equal(count(a.user.id), 1);
    });

    it('answers 405 with Allow to methods a route does not take (before authentication)', async () => {
      for (const [method, path, allowed] of [
        ['PUT', `${NOTES}/${RANDOM_UUID}`, ['GET', 'HEAD', 'PATCH', 'DELETE']],
        ['POST', `${NOTES}/${RANDOM_UUID}`, ['GET', 'HEAD', 'PATCH', 'DELETE']],
        ['DELETE', NOTES, ['GET', 'HEAD', 'POST']],
        ['PATCH', NOTES, ['GET', 'HEAD', 'POST']],
        ['POST', '/api/v1/tags', ['GET', 'HEAD']],
      ]) {
        const r = await api(srv, method, path, { body: {} });
        expectProblem(r, 405, 'method-not-allowed');
        const allow = (r.headers.allow || '').split(',').map((s) => s.trim());
        for (const m of allowed) assert.ok(allow.includes(m), `${method} ${path}: Allow ${r.headers.allow} lacks ${m}`);
      }
    });

    it('answers 413 to a body over 1 MiB', async () => {
      const a = await register(srv);
      const r = await api(srv, 'POST', NOTES, { token: a.token, body: { title: 'big', body: 'b'.repeat(1100000) } });
      expectProblem(r, 413, 'payload-too-large');
      assert.equal(count(a.user.id), 0);
    });

    it('answers 415 without JSON Content-Type and 400 to malformed JSON', async () => {
      const a = await register(srv);
      expectProblem(await api(srv, 'POST', NOTES, { token: a.token, body: '{"title":"x"}', contentType: null }), 415, 'unsupported-media-type');
      expectProblem(await api(srv, 'POST', NOTES, { token: a.token, body: '{"title":"x"}', contentType: 'text/plain' }), 415, 'unsupported-media-type');
      expectStatus(await api(srv, 'POST', NOTES, { token: a.token, body: '{"title":"x"}', contentType: 'application/json; charset=utf-8' }), 201);
      for (const body of ['{"title": ', 'nope', '[]', '"x"', '42', 'null', '{"title":"a","title":"b"}']) {
        expectProblem(await api(srv, 'POST', NOTES, { token: a.token, body }), 400, 'malformed');
      }
      const n = await createNote(srv, a.token);
      expectProblem(await api(srv, 'PATCH', `${NOTES}/${n.id}`, { token: a.token, body: '{"title":"x"', }), 400, 'malformed');
      expectProblem(await api(srv, 'PATCH', `${NOTES}/${n.id}`, { token: a.token, body: '{"title":"x"}', contentType: 'text/plain' }), 415, 'unsupported-media-type');
      assert.equal(count(a.user.id), 2);
    });
  });

  describe('validation', () => {
    let a;
    before(async () => { a = await register(srv); });
    const post = (body) => api(srv, 'POST', NOTES, { token: a.token, body });

    for (const [what, body, ok, field] of [
      ['a title of 1 character', { title: 'x' }, true],
      ['a title of 200 ASCII characters', { title: 't'.repeat(200) }, true],
      ['a title of 200 astral code points (800 bytes)', { title: '🍼'.repeat(200) }, true],
      ['a title of 201 characters', { title: 't'.repeat(201) }, false, 'title'],
      ['a title of 201 two-byte code points', { title: 'é'.repeat(201) }, false, 'title'],
      ['an empty title', { title: '' }, false, 'title'],
      ['no title', { body: 'b' }, false, 'title'],
      ['a null title', { title: null }, false, 'title'],
      ['a numeric title', { title: 5 }, false, 'title'],
      ['an array title', { title: ['x'] }, false, 'title'],
      ['an empty body', { title: 'x', body: '' }, true],
      ['a body of 100000 characters', { title: 'x', body: 'b'.repeat(100000) }, true],
      ['a body of 100000 astral code points', { title: 'x', body: '🍼'.repeat(100000) }, true],
      ['a body of 100001 characters', { title: 'x', body: 'b'.repeat(100001) }, false, 'body'],
      ['a body of 100001 astral code points', { title: 'x', body: '🍼'.repeat(100001) }, false, 'body'],
      ['a null body', { title: 'x', body: null }, false, 'body'],
      ['a numeric body', { title: 'x', body: 1 }, false, 'body'],
      ['20 tags', { title: 'x', tags: Array.from({ length: 20 }, (_, i) => `t${i}`) }, true],
      ['21 tags', { title: 'x', tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }, false, 'tags'],
      ['a tag of 32 characters', { title: 'x', tags: ['a'.repeat(32)] }, true],
      ['a tag of every allowed character', { title: 'x', tags: ['abcdefghijklmnopqrstuvwxyz', '0123456789_-', '-', '_'] }, true],
      ['a tag of 33 characters', { title: 'x', tags: ['a'.repeat(33)] }, false, 'tags'],
      ['an empty tag', { title: 'x', tags: ['ok', ''] }, false, 'tags'],
      ['an upper-case tag', { title: 'x', tags: ['Abc'] }, false, 'tags'],
      ['a tag with a space', { title: 'x', tags: ['a b'] }, false, 'tags'],
      ['a tag with a dot', { title: 'x', tags: ['a.b'] }, false, 'tags'],
      ['a tag with a non-ASCII letter', { title: 'x', tags: ['café'] }, false, 'tags'],
      ['a tag with a comma', { title: 'x', tags: ['a,b'] }, false, 'tags'],
      ['a numeric tag', { title: 'x', tags: [5] }, false, 'tags'],
      ['a null tag', { title: 'x', tags: [null] }, false, 'tags'],
      ['duplicate tags', { title: 'x', tags: ['a', 'b', 'a'] }, false, 'tags'],
      ['tags as a string', { title: 'x', tags: 'a' }, false, 'tags'],
      ['null tags', { title: 'x', tags: null }, false, 'tags'],
      ['tags as an object', { title: 'x', tags: { a: 1 } }, false, 'tags'],
      ['pinned as a string', { title: 'x', pinned: 'true' }, false, 'pinned'],
      ['pinned as a number', { title: 'x', pinned: 1 }, false, 'pinned'],
      ['a null pinned', { title: 'x', pinned: null }, false, 'pinned'],
      ['pinned false', { title: 'x', pinned: false }, true],
    ]) {
      it(`${ok ? 'accepts' : 'refuses (422)'} ${what}`, async () => {
        const before = count(a.user.id);
        const r = await post(body);
        if (ok) {
          expectStatus(r, 201);
          checkNote(r.json);
          for (const k of Object.keys(body)) assert.deepEqual(r.json[k], body[k], k);
          assert.equal(count(a.user.id), before + 1);
        } else {
          expect422(r, field);
          assert.equal(count(a.user.id), before, 'nothing stored');
        }
      });
    }

    it('refuses unknown and read-only fields, naming each', async () => {
      const before = count(a.user.id);
      expect422(await post({ title: 'x', colour: 'red', archived: false }), 'colour', 'archived');
      expect422(await post({ title: 'x', id: RANDOM_UUID, version: 3, created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' }),
        'id', 'version', 'created_at', 'updated_at');
      expect422(await post({ title: 'x', user_id: a.user.id }), 'user_id');
      expect422(await post({ title: '', pinned: 'no', tags: ['UP'] }), 'title', 'pinned', 'tags');
      assert.equal(count(a.user.id), before);
    });
  });

  describe('update and delete', () => {
    it('PATCH updates only the fields sent and bumps version by 1', async () => {
      const a = await register(srv);
      const n = await createNote(srv, a.token, { title: 'one', body: 'b', tags: ['x'] });
      await sleep(15);
      const r = expectStatus(await api(srv, 'PATCH', `${NOTES}/${n.id}`, { token: a.token, body: { pinned: true } }), 200);
      checkNote(r.json);
      assert.deepEqual({ ...r.json, updated_at: null }, { ...n, pinned: true, version: 2, updated_at: null });
      assert.ok(r.json.updated_at > n.updated_at, 'updated_at moves on a change');
      assert.equal(r.json.created_at, n.created_at);
      const g = expectStatus(await api(srv, 'GET', `${NOTES}/${n.id}`, { token: a.token }), 200);
      assert.deepEqual(g.json, r.json);
      assert.equal(g.headers.etag, '"2"');
      const r2 = expectStatus(await api(srv, 'PATCH', `${NOTES}/${n.id}`, { token: a.token, body: { title: 'two', body: '', tags: [] } }), 200);
      assert.equal(r2.json.title, 'two');
      assert.equal(r2.json.body, '');
      assert.deepEqual(r2.json.tags, []);
      assert.equal(r2.json.pinned, true);
      assert.equal(r2.json.version, 3);
      const r3 = expectStatus(await api(srv, 'PATCH', `${NOTES}/${n.id}`, { token: a.token, body: { tags: ['b', 'a'] } }), 200);
      assert.deepEqual(r3.json.tags, ['b', 'a']);
      assert.equal(r3.json.version, 4);
      assert.equal(expectStatus(await api(srv, 'GET', `${NOTES}/${n.id}`, { token: a.token }), 200).headers.etag, '"4"');
    });

    it('PATCH {} and an empty PATCH are 200 no-ops that leave version and updated_at alone', async () => {
      const a = await register(srv);
      const n = await createNote(srv, a.token, { title: 'keep', tags: ['k'] });
      await sleep(15);
      const r = expectStatus(await api(srv, 'PATCH', `${NOTES}/${n.id}`, { token: a.token, body: {} }), 200);
      assert.deepEqual(r.json, n);
      const e = expectStatus(await api(srv, 'PATCH', `${NOTES}/${n.id}`, { token: a.token }), 200);
      assert.deepEqual(e.json, n, 'an empty body counts as {} without Content-Type');
      const g = expectStatus(await api(srv, 'GET', `${NOTES}/${n.id}`, { token: a.token }), 200);
      assert.deepEqual(g.json, n);
      assert.equal(g.headers.etag, '"1"');
    });

    it('PATCH validates like POST and changes nothing on a 422', async () => {
      const a = await register(srv);
      const n = await createNote(srv, a.token, { title: 'stay', body: 'same' });
      const p = (body) => api(srv, 'PATCH', `${NOTES}/${n.id}`, { token: a.token, body });
      expect422(await p({ title: '' }), 'title');
      expect422(await p({ title: null }), 'title');
      expect422(await p({ title: 't'.repeat(201) }), 'title');
      expect422(await p({ body: null }), 'body');
      expect422(await p({ body: 'b'.repeat(100001) }), 'body');
      expect422(await p({ tags: null }), 'tags');
      expect422(await p({ tags: ['Bad'] }), 'tags');
      expect422(await p({ tags: ['a', 'a'] }), 'tags');
      expect422(await p({ tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }), 'tags');
      expect422(await p({ pinned: null }), 'pinned');
      expect422(await p({ pinned: 'yes' }), 'pinned');
      expect422(await p({ title: 'ok', nope: 1 }), 'nope');
      expect422(await p({ id: n.id, version: 1, created_at: n.created_at, updated_at: n.updated_at }), 'id', 'version', 'created_at', 'updated_at');
      expect422(await p({ title: 'ok', pinned: 3 }), 'pinned');
      const g = expectStatus(await api(srv, 'GET', `${NOTES}/${n.id}`, { token: a.token }), 200);
      assert.deepEqual(g.json, n);
      assert.equal(g.headers.etag, '"1"');
    });

    it('If-Match: the current ETag and * match, a stale one is 412, on PATCH and DELETE', async () => {
      const a = await register(srv);
      const n = await createNote(srv, a.token, { title: 'v1' });
      const path = `${NOTES}/${n.id}`;
      const etag = (await api(srv, 'GET', path, { token: a.token })).headers.etag;
      assert.equal(etag, '"1"');
      const r = expectStatus(await api(srv, 'PATCH', path, { token: a.token, body: { title: 'v2' }, headers: { 'If-Match': etag } }), 200);
      assert.equal(r.json.version, 2);
      let s = await api(srv, 'PATCH', path, { token: a.token, body: { title: 'v3' }, headers: { 'If-Match': '"1"' } });
      expectProblem(s, 412, 'precondition-failed');
      s = await api(srv, 'PATCH', path, { token: a.token, body: { title: 'v3' }, headers: { 'If-Match': '"3"' } });
      expectProblem(s, 412, 'precondition-failed');
      s = await api(srv, 'PATCH', path, { token: a.token, body: { title: 'v3' }, headers: { 'If-Match': 'W/"2"' } });
      expectProblem(s, 412, 'precondition-failed'); // If-Match compares strongly: a weak tag never matches
      s = await api(srv, 'PATCH', path, { token: a.token, body: {}, headers: { 'If-Match': '"1"' } });
      expectProblem(s, 412, 'precondition-failed');
      let g = expectStatus(await api(srv, 'GET', path, { token: a.token }), 200);
      assert.equal(g.json.title, 'v2');
      assert.equal(g.json.version, 2);
      assert.equal(g.headers.etag, '"2"');
      const w = expectStatus(await api(srv, 'PATCH', path, { token: a.token, body: { title: 'v3' }, headers: { 'If-Match': '*' } }), 200);
      assert.equal(w.json.version, 3);
      expectStatus(await api(srv, 'PATCH', path, { token: a.token, body: { title: 'v4' }, headers: { 'If-Match': '"3"' } }), 200);
      // validation comes before the precondition, existence too
      expect422(await api(srv, 'PATCH', path, { token: a.token, body: { title: '' }, headers: { 'If-Match': '"1"' } }), 'title');
      expect404(await api(srv, 'PATCH', `${NOTES}/${RANDOM_UUID}`, { token: a.token, body: { title: 'x' }, headers: { 'If-Match': '"1"' } }));
      // DELETE alike
      expectProblem(await api(srv, 'DELETE', path, { token: a.token, headers: { 'If-Match': '"3"' } }), 412, 'precondition-failed');
      g = expectStatus(await api(srv, 'GET', path, { token: a.token }), 200);
      assert.equal(g.json.version, 4);
      const d = expectStatus(await api(srv, 'DELETE', path, { token: a.token, headers: { 'If-Match': '"4"' } }), 204);
      assert.equal(d.text, '');
      expect404(await api(srv, 'GET', path, { token: a.token }));
      const m = await createNote(srv, a.token);
      expectStatus(await api(srv, 'DELETE', `${NOTES}/${m.id}`, { token: a.token, headers: { 'If-Match': '*' } }), 204);
      expect404(await api(srv, 'DELETE', `${NOTES}/${m.id}`, { token: a.token, headers: { 'If-Match': '*' } }));
    });

    it('concurrent PATCHes: with the same If-Match exactly one wins, without it no update is lost', async () => {
      const a = await register(srv);
      const n = await createNote(srv, a.token, { title: 'race' });
      const path = `${NOTES}/${n.id}`;
      let rs = await Promise.all(Array.from({ length: 10 }, (_, i) => api(srv, 'PATCH', path, { token: a.token, body: { title: `w${i}` }, headers: { 'If-Match': '"1"' } })));
      const won = rs.filter((r) => r.status === 200);
      assert.equal(won.length, 1, `one 200, got ${rs.map((r) => r.status)}`);
      for (const r of rs.filter((x) => x.status !== 200)) expectProblem(r, 412, 'precondition-failed');
      let g = expectStatus(await api(srv, 'GET', path, { token: a.token }), 200);
      assert.equal(g.json.version, 2);
      assert.equal(g.json.title, won[0].json.title);
      rs = await Promise.all(Array.from({ length: 10 }, (_, i) => api(srv, 'PATCH', path, { token: a.token, body: { body: `b${i}` } })));
      for (const r of rs) expectStatus(r, 200);
      assert.deepEqual(rs.map((r) => r.json.version).sort((x, y) => x - y), [3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 'every update got its own version');
      g = expectStatus(await api(srv, 'GET', path, { token: a.token }), 200);
      assert.equal(g.json.version, 12);
      assert.equal(g.headers.etag, '"12"');
      rs = await Promise.all(Array.from({ length: 5 }, () => api(srv, 'DELETE', path, { token: a.token })));
      assert.equal(rs.filter((r) => r.status === 204).length, 1, `one 204, got ${rs.map((r) => r.status)}`);
      for (const r of rs.filter((x) => x.status !== 204)) expect404(r);
    });

    it('DELETE answers 204, then the note is gone (GET, PATCH, DELETE 404)', async () => {
      const a = await register(srv);
      const n = await createNote(srv, a.token);
      const keep = await createNote(srv, a.token);
      const d = expectStatus(await api(srv, 'DELETE', `${NOTES}/${n.id}`, { token: a.token }), 204);
      assert.equal(d.text, '');
      expect404(await api(srv, 'GET', `${NOTES}/${n.id}`, { token: a.token }));
      expect404(await api(srv, 'HEAD', `${NOTES}/${n.id}`, { token: a.token }));
      expect404(await api(srv, 'PATCH', `${NOTES}/${n.id}`, { token: a.token, body: { title: 'x' } }));
      expect404(await api(srv, 'DELETE', `${NOTES}/${n.id}`, { token: a.token }));
      assert.deepEqual(ids((await page(srv, a.token)).items), [keep.id]);
    });
  });

  describe('lists', () => {
    it('orders pinned first, then newest updated_at; filters on pinned', async () => {
      const a = await register(srv);
      const made = [];
      for (let i = 0; i < 6; i++) {
        made.push(await createNote(srv, a.token, { title: `n${i}` }));
        await sleep(3);
      }
      const [n0, n1, n2, n3, n4, n5] = made;
      // pin n1 and n3 (n3 after n1: newest among the pinned), then touch n0
      await api(srv, 'PATCH', `${NOTES}/${n1.id}`, { token: a.token, body: { pinned: true } });
      await sleep(3);
      await api(srv, 'PATCH', `${NOTES}/${n3.id}`, { token: a.token, body: { pinned: true } });
      await sleep(3);
      await api(srv, 'PATCH', `${NOTES}/${n0.id}`, { token: a.token, body: { title: 'n0 again' } });
      const all = (await page(srv, a.token)).items;
      assertListOrder(all);
      assert.deepEqual(ids(all), [n3.id, n1.id, n0.id, n5.id, n4.id, n2.id]);
      assert.deepEqual(ids((await page(srv, a.token, [['pinned', 'true']])).items), [n3.id, n1.id]);
      assert.deepEqual(ids((await page(srv, a.token, [['pinned', 'false']])).items), [n0.id, n5.id, n4.id, n2.id]);
      for (const bad of ['yes', '1', 'TRUE-ish', 'null']) {
        expectProblem(await api(srv, 'GET', NOTES + qs([['pinned', bad]]), { token: a.token }), 400, 'malformed');
      }
      // unknown query parameters are ignored
      assert.deepEqual(ids((await page(srv, a.token, [['sort', 'title'], ['foo', 'bar']])).items), ids(all));
    });

    it('?tag= filters, repeated ?tag= means all of them; /tags counts the user\'s tags', async () => {
      const a = await register(srv);
      const b = await register(srv);
      const t1 = await createNote(srv, a.token, { title: 't1', tags: ['a'] });
      await sleep(3);
      const t2 = await createNote(srv, a.token, { title: 't2', tags: ['a', 'b'] });
      await sleep(3);
      const t3 = await createNote(srv, a.token, { title: 't3', tags: ['b'] });
      await sleep(3);
      const t4 = await createNote(srv, a.token, { title: 't4', tags: ['c', 'b', 'a'] });
      await sleep(3);
      await createNote(srv, a.token, { title: 't5' });
      await createNote(srv, b.token, { title: 'other', tags: ['a', 'zz-other'] });
      assert.deepEqual(ids((await page(srv, a.token, [['tag', 'a']])).items), [t4.id, t2.id, t1.id]);
      assert.deepEqual(ids((await page(srv, a.token, [['tag', 'b']])).items), [t4.id, t3.id, t2.id]);
      assert.deepEqual(ids((await page(srv, a.token, [['tag', 'a'], ['tag', 'b']])).items), [t4.id, t2.id]);
      assert.deepEqual(ids((await page(srv, a.token, [['tag', 'b'], ['tag', 'a'], ['tag', 'c']])).items), [t4.id]);
      assert.deepEqual(ids((await page(srv, a.token, [['tag', 'zz-other']])).items), []);
      assert.deepEqual(ids((await page(srv, a.token, [['tag', 'nope']])).items), []);
      await api(srv, 'PATCH', `${NOTES}/${t1.id}`, { token: a.token, body: { pinned: true } });
      assert.deepEqual(ids((await page(srv, a.token, [['tag', 'a']])).items), [t1.id, t4.id, t2.id]);
      assert.deepEqual(ids((await page(srv, a.token, [['tag', 'a'], ['pinned', 'false']])).items), [t4.id, t2.id]);

      const tags = async (who) => {
        const r = expectStatus(await api(srv, 'GET', '/api/v1/tags', { token: who.token }), 200);
        assert.deepEqual(Object.keys(r.json), ['items'], 'a bounded list: {items} without a cursor');
        for (const it of r.json.items) assert.deepEqual(Object.keys(it).sort(), ['count', 'tag']);
        return Object.fromEntries(r.json.items.map((x) => [x.tag, x.count]));
      };
      assert.deepEqual(await tags(a), { a: 3, b: 3, c: 1 });
      assert.deepEqual(await tags(b), { a: 1, 'zz-other': 1 });
      expectStatus(await api(srv, 'DELETE', `${NOTES}/${t4.id}`, { token: a.token }), 204);
      assert.deepEqual(await tags(a), { a: 2, b: 2 }, 'a tag no note carries any more is gone');
      await api(srv, 'PATCH', `${NOTES}/${t3.id}`, { token: a.token, body: { tags: ['d'] } });
      assert.deepEqual(await tags(a), { a: 2, b: 1, d: 1 });
      const c = await register(srv);
      assert.deepEqual(await tags(c), {});
      expectStatus(await api(srv, 'HEAD', '/api/v1/tags', { token: a.token }), 200);
    });

    // The tag "null" once reached Postgres as an unquoted array element, that is SQL NULL:
    // the note came back with tags [null] and no filter found it.
    it('the tag "null" is a tag like any other: stored, patched, listed, filtered and counted', async () => {
      const a = await register(srv);
      const n1 = await createNote(srv, a.token, { title: 'only null', tags: ['null'] });
      assert.deepEqual(n1.tags, ['null']);
      await sleep(3);
      const n2 = await createNote(srv, a.token, { title: 'several', tags: ['a', 'null', 'null-', 'nul', '_null'] });
      assert.deepEqual(n2.tags, ['a', 'null', 'null-', 'nul', '_null']);
      await sleep(3);
      const n3 = await createNote(srv, a.token, { title: 'patched', tags: ['x'] });
      const p = expectStatus(await api(srv, 'PATCH', `${NOTES}/${n3.id}`, { token: a.token, body: { tags: ['null', 'x'] } }), 200);
      assert.deepEqual(p.json.tags, ['null', 'x']);
      assert.deepEqual(expectStatus(await api(srv, 'GET', `${NOTES}/${n1.id}`, { token: a.token }), 200).json.tags, ['null']);
      assert.equal(psql(`SELECT count(*) FROM notes WHERE created_by = '${a.user.id}' AND array_position(tags, NULL) IS NOT NULL`), '0',
        'no SQL NULL among the stored tags');
      assert.deepEqual(ids((await page(srv, a.token, [['tag', 'null']])).items), [n3.id, n2.id, n1.id]);
      assert.deepEqual(ids((await page(srv, a.token, [['tag', 'null'], ['tag', 'a']])).items), [n2.id]);
      assert.deepEqual(ids((await page(srv, a.token, [['tag', 'nul']])).items), [n2.id]);
      const counts = Object.fromEntries(expectStatus(await api(srv, 'GET', '/api/v1/tags', { token: a.token }), 200).json.items.map((x) => [x.tag, x.count]));
      assert.deepEqual(counts, { null: 3, a: 1, 'null-': 1, nul: 1, _null: 1, x: 1 });
      // NULL in capitals, and anything an array literal would need quoted, is not a tag at all
      for (const t of ['NULL', 'Null', 'a,b', '{a}', '"a"', 'a b', 'a\\b', "a'b"]) {
        expect422(await api(srv, 'POST', NOTES, { token: a.token, body: { title: 't', tags: [t] } }), 'tags');
        expect422(await api(srv, 'PATCH', `${NOTES}/${n1.id}`, { token: a.token, body: { tags: ['ok', t] } }), 'tags');
        expectProblem(await api(srv, 'GET', NOTES + qs([['tag', t]]), { token: a.token }), 400, 'malformed');
      }
      assert.deepEqual(expectStatus(await api(srv, 'GET', `${NOTES}/${n1.id}`, { token: a.token }), 200).json.tags, ['null']);
    });

    it('?q= searches title and body (english stemming, websearch syntax) in the usual order', async () => {
      const a = await register(srv);
      const b = await register(srv);
      const n1 = await createNote(srv, a.token, { title: 'Morning running', body: 'felt great' });
      await sleep(3);
      const n2 = await createNote(srv, a.token, { title: 'Plan', body: 'Run first, swimming later' });
      await sleep(3);
      const n3 = await createNote(srv, a.token, { title: 'Swimming lessons', body: 'the pool was cold' });
      await sleep(3);
      const n4 = await createNote(srv, a.token, { title: 'Quiet day', body: 'nothing happened at all' });
      await sleep(3);
      const n5 = await createNote(srv, a.token, { title: 'Notes', body: 'the day was quiet' });
      await sleep(3);
      await createNote(srv, b.token, { title: 'running quietly', body: 'a quiet day of swimming' });
      await api(srv, 'PATCH', `${NOTES}/${n1.id}`, { token: a.token, body: { pinned: true } });
      const q = async (text, extra = []) => ids((await page(srv, a.token, [['q', text], ...extra])).items);
      assert.deepEqual(await q('run'), [n1.id, n2.id], '"run" finds "running" and "Run"');
      assert.deepEqual(await q('runs'), [n1.id, n2.id]);
      assert.deepEqual(await q('swim'), [n3.id, n2.id]);
      assert.deepEqual(await q('run -swimming'), [n1.id], '-word excludes');
      assert.deepEqual(await q('"quiet day"'), [n4.id], 'a quoted phrase keeps word order');
      assert.deepEqual(await q('quiet day'), [n5.id, n4.id], 'words without quotes: all of them, any order');
      assert.deepEqual(await q('running or quiet'), [n1.id, n5.id, n4.id, n2.id], 'websearch "or"');
      assert.deepEqual(await q('xyzzy'), []);
      assert.deepEqual(await q('run', [['pinned', 'false']]), [n2.id]);
      await api(srv, 'PATCH', `${NOTES}/${n4.id}`, { token: a.token, body: { tags: ['calm'] } });
      assert.deepEqual(await q('quiet', [['tag', 'calm']]), [n4.id]);
      // paging through a search keeps the order, no gaps or duplicates
      const full = await q('running or quiet');
      assert.deepEqual(full, [n1.id, n4.id, n5.id, n2.id], 'n4 was updated last');
      const walked = await walk(srv, a.token, [['q', 'running or quiet']], 1);
      assert.deepEqual(ids(walked.items), full);
      // odd input is never an error
      for (const odd of ['"', '-', '!!', '(a | b) & c:*', "it's", 'or', '""', '  ', 'é🍼']) {
        const r = await api(srv, 'GET', NOTES + qs([['q', odd]]), { token: a.token });
        expectStatus(r, 200);
      }
      // B's search never sees A's notes, nor A B's
      const bq = expectStatus(await api(srv, 'GET', NOTES + qs([['q', 'running']]), { token: b.token }), 200).json.items;
      assert.equal(bq.length, 1);
      assert.equal(bq[0].title, 'running quietly');
    });

    it('limit is 1..100, default 50; anything else is 400', async () => {
      const a = await register(srv);
      psql(`INSERT INTO notes (subject_id, created_by, title) SELECT ${seedAs(a.user.id)}, 'seed ' || g FROM generate_series(1, 105) g`);
      let p = await page(srv, a.token);
      assert.equal(p.items.length, 50, 'default limit 50');
      assert.equal(typeof p.next_cursor, 'string');
      p = await page(srv, a.token, [['limit', '100']]);
      assert.equal(p.items.length, 100);
      p = await page(srv, a.token, [['limit', '1']]);
      assert.equal(p.items.length, 1);
      for (const bad of ['0', '101', 'abc', '-1', '1.5', '10abc', '', '1e2', '99999999999999999999']) {
        expectProblem(await api(srv, 'GET', `${NOTES}?limit=${encodeURIComponent(bad)}`, { token: a.token }), 400, 'malformed');
      }
    });
  });

  describe('pagination', () => {
    it('pages of 10 over 25 notes concatenate to the full list; next_cursor null on the last page', async () => {
      const a = await register(srv);
      for (let i = 0; i < 25; i++) await createNote(srv, a.token, { title: `p${i}`, pinned: i % 7 === 0 });
      const full = (await page(srv, a.token, [['limit', '100']])).items;
      assert.equal(full.length, 25);
      assertListOrder(full);
      const { items, pages } = await walk(srv, a.token, [], 10);
      assert.deepEqual(pages.map((p) => p.items.length), [10, 10, 5]);
      assert.equal(pages[2].next_cursor, null);
      assert.deepEqual(items, full);
      // exactly two full pages: the second is the last
      const b = await register(srv);
      for (let i = 0; i < 20; i++) await createNote(srv, b.token, { title: `q${i}` });
      const w = await walk(srv, b.token, [], 10);
      assert.deepEqual(w.pages.map((p) => p.items.length), [10, 10], 'no empty page after an exact fit');
    });

    it('notes created between page fetches cause no duplicates and no gaps among the others', async () => {
      const a = await register(srv);
      const originals = [];
      for (let i = 0; i < 25; i++) originals.push(await createNote(srv, a.token, { title: `o${i}`, pinned: i === 3 || i === 17 }));
      const full = ids((await page(srv, a.token, [['limit', '100']])).items);
      const added = [];
      const { items } = await walk(srv, a.token, [], 10, async (i) => {
        added.push((await createNote(srv, a.token, { title: `new${i}` })).id);
        added.push((await createNote(srv, a.token, { title: `newpinned${i}`, pinned: true })).id);
      });
      const got = ids(items);
      noDuplicates(got);
      const origSet = new Set(originals.map((n) => n.id));
      assert.deepEqual(got.filter((id) => origSet.has(id)), full, 'every original exactly once, in order');
      assert.ok(added.length >= 4);
    });

    it('notes deleted between page fetches, the cursor\'s own included, leave no gap among the others', async () => {
      const a = await register(srv);
      for (let i = 0; i < 25; i++) await createNote(srv, a.token, { title: `d${i}`, pinned: i % 6 === 0 });
      const full = ids((await page(srv, a.token, [['limit', '100']])).items);
      const deleted = new Set();
      const seen = [];
      let cursor = null;
      for (let i = 0; i < 20; i++) {
        const p = await page(srv, a.token, [['limit', '6'], ...(cursor ? [['cursor', cursor]] : [])]);
        seen.push(...ids(p.items));
        if (p.next_cursor === null) break;
        cursor = p.next_cursor;
        // the last note seen (the cursor's position) and the next one not yet seen
        const last = p.items[p.items.length - 1].id;
        const ahead = full[full.indexOf(last) + 1];
        for (const id of [last, ahead]) {
          if (id && !deleted.has(id)) {
            expectStatus(await api(srv, 'DELETE', `${NOTES}/${id}`, { token: a.token }), 204);
            deleted.add(id);
          }
        }
      }
      noDuplicates(seen);
      const expected = full.filter((id) => !deleted.has(id) || seen.includes(id));
      assert.deepEqual(seen, expected, 'every note not deleted before its page, in order');
    });

    it('ties on updated_at (equal, or equal to the millisecond) are paged without duplicates or gaps', async () => {
      const a = await register(srv);
      psql(`INSERT INTO notes (subject_id, created_by, title, pinned, created_at, updated_at)
            SELECT ${seedAs(a.user.id)}, 'same ' || g, g % 5 = 0, t, t FROM generate_series(1, 23) g, (SELECT now() - interval '1 hour' AS t) x`);
      psql(`INSERT INTO notes (subject_id, created_by, title, pinned, created_at, updated_at)
            SELECT ${seedAs(a.user.id)}, 'micro ' || g, g % 4 = 0, t - g * interval '1 microsecond', t - g * interval '1 microsecond'
            FROM generate_series(1, 23) g, (SELECT date_trunc('second', now()) - interval '2 hours' AS t) x`);
      const full = (await page(srv, a.token, [['limit', '100']])).items;
      assert.equal(full.length, 46);
      assertListOrder(full);
      for (const limit of [1, 4, 7, 10]) {
        const got = ids((await walk(srv, a.token, [], limit)).items);
        noDuplicates(got);
        assert.deepEqual(got, ids(full), `limit=${limit}`);
      }
      const pinnedOnly = ids((await walk(srv, a.token, [['pinned', 'true']], 3)).items);
      assert.deepEqual(pinnedOnly, ids(full.filter((n) => n.pinned)));
    });

    it('a garbage or tampered cursor is 400', async () => {
      const a = await register(srv);
      for (let i = 0; i < 3; i++) await createNote(srv, a.token, { title: `c${i}` });
      const p = await page(srv, a.token, [['limit', '1']]);
      const c = p.next_cursor;
      assert.equal(typeof c, 'string');
      expectStatus(await api(srv, 'GET', NOTES + qs([['limit', '1'], ['cursor', c]]), { token: a.token }), 200);
      const bads = [
        'garbage', '!!!!', c.slice(0, Math.floor(c.length / 2)), `${c}%%`, `${c}!`, '~'.repeat(40), 'x'.repeat(4000),
        Buffer.from('{"x":1}').toString('base64url'), Buffer.from('hello world').toString('base64'),
        Buffer.from('2026-01-01T00:00:00Z,not-a-uuid').toString('base64url'), Buffer.from('\u0000\u0001\u0002').toString('base64'),
      ];
      for (const bad of bads) {
        const r = await api(srv, 'GET', NOTES + qs([['cursor', bad]]), { token: a.token });
        expectProblem(r, 400, 'malformed');
      }
    });
  });

  describe('idempotency', () => {
    const srv2 = useServer({ ...API_ENV });

    const post = (s, token, body, key, path = NOTES) => api(s, 'POST', path, { token, body, headers: key === undefined ? {} : { 'Idempotency-Key': key } });

    it('a retry with the same key and bytes replays status, Location and body; one row', async () => {
      const a = await register(srv);
      const body = JSON.stringify({ title: 'once', tags: ['x'] });
      const r1 = expectStatus(await post(srv, a.token, body, 'key-1'), 201);
      assert.notEqual(r1.headers['idempotent-replayed'], 'true', 'the first response is not a replay');
      await sleep(10);
      const r2 = expectStatus(await post(srv, a.token, body, 'key-1'), 201);
      assert.equal(r2.headers['idempotent-replayed'], 'true');
      assert.equal(r2.headers.location, r1.headers.location);
      assert.match(r2.headers['content-type'], /^application\/json/);
      assert.deepEqual(r2.json, r1.json);
      const r3 = expectStatus(await post(srv2, a.token, body, 'key-1'), 201);
      assert.equal(r3.headers['idempotent-replayed'], 'true', 'replayed by another replica too');
      assert.deepEqual(r3.json, r1.json);
      // another credential of the same user
      const pat = await createToken(srv, a.token, { scopes: ['read', 'write'] });
      const r4 = expectStatus(await post(srv, pat.token, body, 'key-1'), 201);
      assert.equal(r4.headers['idempotent-replayed'], 'true');
      assert.deepEqual(r4.json, r1.json);
      assert.equal(count(a.user.id), 1);
      assert.equal((await page(srv, a.token)).items.length, 1);
      // still replayed after the note changed or was deleted (kept 24 h)
      expectStatus(await api(srv, 'DELETE', r1.headers.location, { token: a.token }), 204);
      const r5 = expectStatus(await post(srv, a.token, body, 'key-1'), 201);
      assert.equal(r5.headers['idempotent-replayed'], 'true');
      assert.deepEqual(r5.json, r1.json);
      assert.equal(count(a.user.id), 0, 'a replay writes nothing');
      // without a key, every POST creates
      expectStatus(await post(srv, a.token, body), 201);
      expectStatus(await post(srv, a.token, body), 201);
      assert.equal(count(a.user.id), 2);
    });

    it('the same key with different bytes is 422', async () => {
      const a = await register(srv);
      expectStatus(await post(srv, a.token, '{"title":"a"}', 'k'), 201);
      for (const other of ['{"title":"b"}', '{"title": "a"}', '{"title":"a"} ', '{"title":"a","pinned":false}']) {
        const r = await post(srv, a.token, other, 'k');
        expectProblem(r, 422, 'validation');
        assert.notEqual(r.headers['idempotent-replayed'], 'true');
      }
      assert.equal(count(a.user.id), 1);
    });

    it('keys are 1..255 printable ASCII characters', async () => {
      const a = await register(srv);
      const k255 = Array.from({ length: 255 }, (_, i) => String.fromCharCode(33 + (i % 94))).join('');
      expectStatus(await post(srv, a.token, '{"title":"k255"}', k255), 201);
      expectStatus(await post(srv, a.token, '{"title":"k255"}', k255), 201);
      expectStatus(await post(srv, a.token, '{"title":"space"}', 'a key with spaces'), 201);
      assert.equal(count(a.user.id), 2);
      const refused = (r, what) => {
        assert.ok(r.status === 400 || r.status === 422, `${what}: 400 or 422, got ${r.status} ${(r.text ?? r.body ?? "").slice(0, 200)}`);
      };
      refused(await post(srv, a.token, '{"title":"k256"}', `${k255}x`), '256 characters');
      refused(await post(srv, a.token, '{"title":"tab"}', 'a\tb'), 'a tab');
      // bytes node:http refuses to send: written on a raw socket
      for (const [what, key] of [['an empty key', ''], ['a control character', 'a\u0001b'], ['DEL', 'a\u007fb'], ['non-ASCII', 'clé'], ['an escape', '\u001b[31m']]) {
        const body = '{"title":"raw"}';
        const head = `POST ${NOTES} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${a.token}\r\nContent-Type: application/json\r\n`
          + `Content-Length: ${body.length}\r\nIdempotency-Key: ${Buffer.from(key, 'utf8').toString('latin1')}\r\nConnection: close\r\n\r\n`;
        const res = await raw(srv.port, [head + body], { responses: 1 });
        assert.equal(res.responses.length, 1, `${what}: a response`);
        refused(res.responses[0], what);
      }
      assert.equal(count(a.user.id), 2, 'nothing created with a bad key');
    });

    it('a failed first attempt is not stored: the same key then succeeds', async () => {
      const a = await register(srv);
      expect422(await post(srv, a.token, '{"title":""}', 'retry-me'), 'title');
      expect422(await post(srv, a.token, '{"title":""}', 'retry-me'), 'title');
      expectProblem(await post(srv, a.token, '{"title":', 'retry-me'), 400, 'malformed');
      const ok = expectStatus(await post(srv, a.token, '{"title":"fixed"}', 'retry-me'), 201);
      assert.notEqual(ok.headers['idempotent-replayed'], 'true');
      assert.equal(ok.json.title, 'fixed');
      const again = expectStatus(await post(srv, a.token, '{"title":"fixed"}', 'retry-me'), 201);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.deepEqual(again.json, ok.json);
      assert.equal(count(a.user.id), 1);
    });

    it('keys are per user and per path', async () => {
      const a = await register(srv);
      const b = await register(srv);
      const body = '{"title":"shared key"}';
      const ra = expectStatus(await post(srv, a.token, body, 'same-key'), 201);
      const rb = expectStatus(await post(srv, b.token, body, 'same-key'), 201);
      assert.notEqual(rb.headers['idempotent-replayed'], 'true', 'another user is not replayed');
      assert.notEqual(rb.json.id, ra.json.id);
      assert.equal(count(a.user.id), 1);
      assert.equal(count(b.user.id), 1);
      expect404(await api(srv, 'GET', ra.headers.location, { token: b.token }));
      const f = await post(srv, a.token, '{"amount_ml":50}', 'same-key', '/api/v1/feedings');
      expectStatus(f, 201);
      assert.notEqual(f.headers['idempotent-replayed'], 'true', 'another path is not replayed');
      assert.equal(f.headers.location, `/api/v1/feedings/${f.json.id}`);
      const again = expectStatus(await post(srv, a.token, body, 'same-key'), 201);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.deepEqual(again.json, ra.json);
      assert.equal(count(a.user.id), 1);
    });

    it('10 concurrent identical requests on two replicas write exactly one row', async () => {
      for (let round = 0; round < 3; round++) {
        const a = await register(srv);
        const body = JSON.stringify({ title: `race ${round}`, body: 'x'.repeat(2000 * round) });
        const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => post(i % 2 ? srv2 : srv, a.token, body, `race-${round}`)));
        for (const r of rs) assert.ok(r.status === 201 || r.status === 409, `201 or 409, got ${r.status} ${(r.text ?? r.body ?? "").slice(0, 200)}`);
        for (const r of rs.filter((x) => x.status === 409)) expectProblem(r, 409, 'conflict');
        const created = rs.filter((r) => r.status === 201);
        assert.ok(created.length >= 1);
        const originals = created.filter((r) => r.headers['idempotent-replayed'] !== 'true');
        assert.equal(originals.length, 1, `exactly one original 201 (statuses ${rs.map((r) => `${r.status}${r.headers['idempotent-replayed'] ? 'R' : ''}`)})`);
        for (const r of created) {
          assert.deepEqual(r.json, originals[0].json);
          assert.equal(r.headers.location, originals[0].headers.location);
        }
        assert.equal(count(a.user.id), 1, 'exactly one row');
        assert.equal(psql(`SELECT count(*) FROM idempotency_keys WHERE user_id = '${a.user.id}' AND key = 'race-${round}'`), '1', 'one stored response');
        for (const r of rs.filter((x) => x.status === 409)) assert.notEqual(r.headers['idempotent-replayed'], 'true');
        const later = expectStatus(await post(srv2, a.token, body, `race-${round}`), 201);
        assert.equal(later.headers['idempotent-replayed'], 'true');
        assert.deepEqual(later.json, originals[0].json);
      }
    });
  });

  describe('isolation and scopes', () => {
    it('another user gets 404 on GET/PATCH/DELETE and never sees the note in lists', async () => {
      const a = await register(srv);
      const b = await register(srv);
      const n = await createNote(srv, a.token, { title: 'secret alpha', tags: ['private'] });
      const path = `${NOTES}/${n.id}`;
      expect404(await api(srv, 'GET', path, { token: b.token }));
      expect404(await api(srv, 'HEAD', path, { token: b.token }));
      expect404(await api(srv, 'PATCH', path, { token: b.token, body: { title: 'hijacked' } }));
      expect404(await api(srv, 'PATCH', path, { token: b.token, body: { title: 'hijacked' }, headers: { 'If-Match': '"1"' } }));
      expect404(await api(srv, 'DELETE', path, { token: b.token }));
      expect404(await api(srv, 'DELETE', path, { token: b.token, headers: { 'If-Match': '*' } }));
      const g = expectStatus(await api(srv, 'GET', path, { token: a.token }), 200);
      assert.deepEqual(g.json, n, 'untouched');
      assert.deepEqual((await page(srv, b.token)).items, []);
      assert.deepEqual((await page(srv, b.token, [['q', 'secret']])).items, []);
      assert.deepEqual((await page(srv, b.token, [['tag', 'private']])).items, []);
      assert.deepEqual(expectStatus(await api(srv, 'GET', '/api/v1/tags', { token: b.token }), 200).json, { items: [] });
    });

    it('a read token reads but cannot write; a write token writes but cannot read', async () => {
      const a = await register(srv);
      const n = await createNote(srv, a.token, { title: 'scoped' });
      const ro = await createToken(srv, a.token, { name: 'ro', scopes: ['read'] });
      const wo = await createToken(srv, a.token, { name: 'wo', scopes: ['write'] });
      assert.equal((await page(srv, ro.token)).items.length, 1);
      expectStatus(await api(srv, 'GET', `${NOTES}/${n.id}`, { token: ro.token }), 200);
      expectStatus(await api(srv, 'HEAD', `${NOTES}/${n.id}`, { token: ro.token }), 200);
      expectStatus(await api(srv, 'GET', '/api/v1/tags', { token: ro.token }), 200);
      expect403(await api(srv, 'POST', NOTES, { token: ro.token, body: { title: 'no' } }));
      expect403(await api(srv, 'POST', NOTES, { token: ro.token, body: 'not json' }));
      expect403(await api(srv, 'PATCH', `${NOTES}/${n.id}`, { token: ro.token, body: { title: 'no' } }));
      expect403(await api(srv, 'DELETE', `${NOTES}/${n.id}`, { token: ro.token }));
      const w = await api(srv, 'POST', NOTES, { token: wo.token, body: { title: 'from a device' } });
      expectStatus(w, 201);
      expect403(await api(srv, 'GET', NOTES, { token: wo.token }));
      expect403(await api(srv, 'GET', `${NOTES}/${n.id}`, { token: wo.token }));
      expect403(await api(srv, 'GET', '/api/v1/tags', { token: wo.token }));
      // its PATCH answers 204 without the note (the contract: no body without read)
      const p = expectStatus(await api(srv, 'PATCH', `${NOTES}/${w.json.id}`, { token: wo.token, body: { pinned: true } }), 204);
      assert.equal(p.text, '');
      assert.equal(expectStatus(await api(srv, 'GET', `${NOTES}/${w.json.id}`, { token: a.token }), 200).json.pinned, true);
      expectStatus(await api(srv, 'DELETE', `${NOTES}/${w.json.id}`, { token: wo.token }), 204);
      assert.equal(count(a.user.id), 1);
    });
  });

  describe('order of checks and cookies', () => {
    it('401 before 415/400/422; 403 (scope) before 415; 422 before 404 (existence)', async () => {
      const a = await register(srv);
      expect401(await api(srv, 'POST', NOTES, { body: 'not json', contentType: 'text/plain' }));
      expect401(await api(srv, 'PATCH', `${NOTES}/${RANDOM_UUID}`, { body: { title: '' } }));
      const ro = await createToken(srv, a.token, { scopes: ['read'] });
      expect403(await api(srv, 'POST', NOTES, { token: ro.token, body: 'x', contentType: 'text/plain' }));
      expectProblem(await api(srv, 'POST', NOTES, { token: a.token, body: 'not json', contentType: 'text/plain' }), 415, 'unsupported-media-type');
      expectProblem(await api(srv, 'PATCH', `${NOTES}/${RANDOM_UUID}`, { token: a.token, body: '{"title":' }), 400, 'malformed');
      expect422(await api(srv, 'PATCH', `${NOTES}/${RANDOM_UUID}`, { token: a.token, body: { title: '' } }), 'title');
      expect422(await api(srv, 'PATCH', `${NOTES}/not-a-uuid`, { token: a.token, body: { pinned: 'x' } }), 'pinned');
      expect404(await api(srv, 'PATCH', `${NOTES}/not-a-uuid`, { token: a.token, body: { pinned: true } }));
    });

    it('a malformed Idempotency-Key is 400 after the JSON parse (400) and before validation (422)', async () => {
      const a = await register(srv);
      const headers = { 'Idempotency-Key': 'a\tb' };
      const parse = await api(srv, 'POST', NOTES, { token: a.token, body: '{"title":', headers });
      expectProblem(parse, 400, 'malformed');
      assert.doesNotMatch(parse.json.detail, /Idempotency-Key/);
      const key = await api(srv, 'POST', NOTES, { token: a.token, body: { title: '' }, headers });
      expectProblem(key, 400, 'malformed');
      assert.match(key.json.detail, /Idempotency-Key/);
      expect422(await api(srv, 'POST', NOTES, { token: a.token, body: { title: '' }, headers: { 'Idempotency-Key': 'fine' } }), 'title');
      assert.equal(count(a.user.id), 0);
    });

    it('cookie-authenticated writes need the public Origin; bearer writes do not', async () => {
      const a = await register(srv);
      const n = await createNote(srv, a.token);
      const cookie = a.token;
      expect403(await api(srv, 'POST', NOTES, { cookie, origin: null, body: { title: 'no origin' } }));
      expect403(await api(srv, 'POST', NOTES, { cookie, origin: 'https://evil.example', body: { title: 'evil' } }));
      expect403(await api(srv, 'PATCH', `${NOTES}/${n.id}`, { cookie, origin: 'https://evil.example', body: { title: 'evil' } }));
      expect403(await api(srv, 'DELETE', `${NOTES}/${n.id}`, { cookie, origin: null }));
      assert.equal(count(a.user.id), 1);
      expectStatus(await api(srv, 'GET', NOTES, { cookie, origin: null }), 200);
      expectStatus(await api(srv, 'POST', NOTES, { cookie, body: { title: 'same origin' } }), 201);
      expectStatus(await api(srv, 'POST', NOTES, { token: a.token, origin: null, body: { title: 'bearer' } }), 201);
      expectStatus(await api(srv, 'DELETE', `${NOTES}/${n.id}`, { cookie }), 204);
      assert.equal(count(a.user.id), 2);
    });
  });

  describe('change events', () => {
    it('publishes note.created/updated/deleted with the whole note after the commit, on the owner\'s channel only', async () => {
      const a = await register(srv);
      const b = await register(srv);
      const sub = await subscribeRecordEvents('notes', [a, b]);
      try {
        const chA = `pulse:user:${a.user.id}`;
        const r = expectStatus(await api(srv, 'POST', NOTES, { token: a.token, body: { title: 'live', tags: ['t'] } }), 201);
        const tResp = Date.now();
        const c = await sub.waitFor((m) => m.data.event === 'note.created');
        assert.ok(c.at - tResp < 500, `published promptly (${c.at - tResp} ms after the response)`);
        assert.equal(c.channel, chA);
        // care circles: the frame also names the subject (the v1 keys stay, same values)
        // issue 16: and its seq, a decimal string (opaque to clients)
        assert.deepEqual(Object.keys(c.data).sort(), ['data', 'event', 'seq', 'subject_id', 'type']);
        assert.match(c.data.seq, /^[1-9][0-9]*$/);
        assert.equal(c.data.subject_id, r.json.subject_id);
        assert.equal(c.data.type, 'event');
        assert.deepEqual(c.data.data, r.json, 'the whole note');
        assert.equal(c.row, '1', 'published after the commit');
        const u = expectStatus(await api(srv, 'PATCH', `${NOTES}/${r.json.id}`, { token: a.token, body: { title: 'live 2' } }), 200);
        const e = await sub.waitFor((m) => m.data.event === 'note.updated');
        assert.equal(e.channel, chA);
        assert.deepEqual(e.data.data, u.json);
        assert.equal(e.row, '2');
        // refused changes publish nothing
        expect422(await api(srv, 'PATCH', `${NOTES}/${r.json.id}`, { token: a.token, body: { title: '' } }));
        expectProblem(await api(srv, 'PATCH', `${NOTES}/${r.json.id}`, { token: a.token, body: { title: 'x' }, headers: { 'If-Match': '"1"' } }), 412, 'precondition-failed');
        expect404(await api(srv, 'PATCH', `${NOTES}/${r.json.id}`, { token: b.token, body: { title: 'x' } }));
        expect404(await api(srv, 'DELETE', `${NOTES}/${r.json.id}`, { token: b.token }));
        expectStatus(await api(srv, 'DELETE', `${NOTES}/${r.json.id}`, { token: a.token }), 204);
        const d = await sub.waitFor((m) => m.data.event === 'note.deleted');
        assert.equal(d.channel, chA);
        assert.deepEqual(d.data, { type: 'event', event: 'note.deleted', subject_id: r.json.subject_id, seq: d.data.seq, data: { id: r.json.id } });
        assert.equal(d.row, '', 'the row is gone when the delete is published');
        await sleep(300);
        assert.deepEqual(sub.messages.map((m) => m.data.event), ['note.created', 'note.updated', 'note.deleted']);
        assert.ok(sub.messages.every((m) => m.channel === chA), 'nothing on another user\'s channel');
      } finally {
        sub.close();
      }
    });
  });
});
