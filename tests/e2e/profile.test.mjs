// Profile and privacy against the contract (docs/api.md: the profile routes,
// "Conventions"): GET/PATCH /me, DELETE /me (everything of the user gone, every
// credential revoked, nobody else touched) and the streamed export.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  API_ENV, FEEDING_KEYS_V2_ADDED, PASSWORD, PUBLIC_ORIGIN, TOKEN_KEYS, TOKEN_KEYS_ADDED, TS_RE, USER_KEYS, USER_KEYS_ADDED, withAdded,
  api, createToken, expect401, expect403, expect422, expectProblem, expectStatus, login, psql, redisDump, register, rowsOf, sleep,
} from './api.mjs';
import { requireEnv, useServer } from './helpers.mjs';

const NOTE_KEYS = ['body', 'created_at', 'id', 'pinned', 'tags', 'title', 'updated_at', 'version'];
const FEEDING_KEYS = ['amount_ml', 'created_at', 'given_at', 'id', 'kind', 'note', 'updated_at', 'version'];

const ids = (out) => out.split('\n').filter(Boolean);

// Rows written straight into Postgres (the notes and feedings routes are not what these
// tests are about), created by the user in their default subject; resolves the new ids.
const defaultSubject = (userId) => `(SELECT default_subject_id FROM users WHERE id = '${userId}')`;
function seedNotes(userId, n, { body = 'some text' } = {}) {
  return ids(psql(`WITH x AS (INSERT INTO notes (created_by, subject_id, title, body, tags, pinned)
    SELECT '${userId}', ${defaultSubject(userId)}, 'note ' || g, repeat('${body}', 1), ARRAY['tag' || (g % 3)], g % 2 = 0 FROM generate_series(1, ${n}) g
    RETURNING id) SELECT id FROM x`));
}
function seedFeedings(userId, n) {
  return ids(psql(`WITH x AS (INSERT INTO feedings (created_by, subject_id, amount_ml, kind, given_at, note)
    SELECT '${userId}', ${defaultSubject(userId)}, 10 + g % 500, 'milk', now() - g * interval '1 minute', CASE WHEN g % 2 = 0 THEN 'n' || g END
    FROM generate_series(1, ${n}) g RETURNING id) SELECT id FROM x`));
}
function seedIdempotency(userId) {
  psql(`INSERT INTO idempotency_keys (user_id, method, path, key, request_hash, status, location, body)
    VALUES ('${userId}', 'POST', '/api/v1/notes', 'k-${Date.now()}', '\\x00', 201, '/api/v1/notes/x', '{}')`);
}

describe('profile', () => {
  const srv = useServer({ ...API_ENV });

  describe('GET /me', () => {
    it('answers the caller\'s user, by bearer or cookie, and HEAD without a body', async () => {
      const a = await register(srv);
      const b = await register(srv);
      const r = expectStatus(await api(srv, 'GET', '/api/v1/me', { token: a.token }), 200);
      assert.match(r.headers['content-type'], /^application\/json/);
      assert.deepEqual(Object.keys(r.json).sort(), withAdded(USER_KEYS, USER_KEYS_ADDED));
      assert.deepEqual(r.json, a.user);
      assert.deepEqual(expectStatus(await api(srv, 'GET', '/api/v1/me', { cookie: b.token, origin: null }), 200).json, b.user);
      const h = expectStatus(await api(srv, 'HEAD', '/api/v1/me', { token: a.token }), 200);
      assert.equal(h.text, '');
      expect401(await api(srv, 'GET', '/api/v1/me'));
    });
  });

  describe('PATCH /me', () => {
    it('updates display_name, timezone and daily_target_ml (200 user)', async () => {
      const a = await register(srv);
      await sleep(20);
      const r = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { display_name: 'Ada', timezone: 'Europe/Paris', daily_target_ml: 750 } }), 200);
      assert.deepEqual(Object.keys(r.json).sort(), withAdded(USER_KEYS, USER_KEYS_ADDED));
      assert.equal(r.json.display_name, 'Ada');
      assert.equal(r.json.timezone, 'Europe/Paris');
      assert.equal(r.json.daily_target_ml, 750);
      assert.equal(r.json.id, a.user.id);
      assert.equal(r.json.email, a.user.email);
      assert.equal(r.json.created_at, a.user.created_at);
      assert.match(r.json.updated_at, TS_RE);
      assert.ok(Date.parse(r.json.updated_at) > Date.parse(a.user.updated_at), 'updated_at moves on a change');
      assert.deepEqual(expectStatus(await api(srv, 'GET', '/api/v1/me', { token: a.token }), 200).json, r.json);
      // partial: one field leaves the others alone
      const r2 = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { daily_target_ml: 0 } }), 200);
      assert.equal(r2.json.display_name, 'Ada');
      assert.equal(r2.json.timezone, 'Europe/Paris');
      assert.equal(r2.json.daily_target_ml, 0);
    });

    it('clears display_name with null', async () => {
      const a = await register(srv, { display_name: 'Someone' });
      const r = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { display_name: null } }), 200);
      assert.equal(r.json.display_name, null);
      assert.equal(expectStatus(await api(srv, 'GET', '/api/v1/me', { token: a.token }), 200).json.display_name, null);
    });

    it('treats {} and an empty body as a 200 no-op (updated_at unchanged)', async () => {
      const a = await register(srv, { display_name: 'Same' });
      await sleep(20);
      for (const o of [{ body: {} }, {}, { body: {}, contentType: 'application/json; charset=utf-8' }]) {
        const r = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, ...o }), 200);
        assert.deepEqual(r.json, a.user);
      }
      assert.deepEqual(expectStatus(await api(srv, 'GET', '/api/v1/me', { token: a.token }), 200).json, a.user);
    });

    for (const tz of ['Europe/Paris', 'America/Argentina/Buenos_Aires', 'Asia/Kolkata', 'UTC', 'Pacific/Chatham']) {
      it(`accepts the time zone ${tz}`, async () => {
        const a = await register(srv);
        const r = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { timezone: tz } }), 200);
        assert.equal(r.json.timezone, tz);
      });
    }

    it('refuses time zones that are not real IANA zones (422 naming timezone)', async () => {
      const a = await register(srv);
      for (const tz of ['Mars/Olympus', '', ' ', 'Europe/Paris ', '../../../../etc/passwd', '/etc/localtime', 'Europe/', 'Europe',
        'x'.repeat(300), null, 5, ['UTC']]) {
        expect422(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { timezone: tz } }), 'timezone');
      }
      assert.equal(expectStatus(await api(srv, 'GET', '/api/v1/me', { token: a.token }), 200).json.timezone, 'UTC');
    });

    it('validates daily_target_ml: an integer 0..10000', async () => {
      const a = await register(srv);
      for (const v of [-1, 10001, 1.5, '5', null, true, [5], 1e10]) {
        expect422(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { daily_target_ml: v } }), 'daily_target_ml');
      }
      for (const v of [0, 10000, 1]) {
        const r = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { daily_target_ml: v } }), 200);
        assert.equal(r.json.daily_target_ml, v);
      }
    });

    it('validates display_name: 1..100 code points or null', async () => {
      const a = await register(srv);
      for (const v of ['', 'x'.repeat(101), 'é'.repeat(101), 7, ['x'], { a: 1 }]) {
        expect422(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { display_name: v } }), 'display_name');
      }
      for (const v of ['x', 'x'.repeat(100), '🍼'.repeat(100), 'é'.repeat(100)]) {
        const r = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { display_name: v } }), 200);
        assert.equal(r.json.display_name, v);
      }
    });

    it('refuses unknown and read-only fields, naming each, and changes nothing', async () => {
      const a = await register(srv);
      const p = (body) => api(srv, 'PATCH', '/api/v1/me', { token: a.token, body });
      expect422(await p({ foo: 1, bar: 'x' }), 'foo', 'bar');
      expect422(await p({ id: a.user.id, email: 'new@example.com', created_at: a.user.created_at, updated_at: a.user.updated_at }),
        'id', 'email', 'created_at', 'updated_at');
      expect422(await p({ password: 'another good passphrase' }), 'password');
      expect422(await p({ display_name: 'ok name', version: 2 }), 'version');
      // every invalid field is named, and a valid one next to them is not applied
      expect422(await p({ timezone: 'Mars/Olympus', daily_target_ml: -1, display_name: '' }), 'timezone', 'daily_target_ml', 'display_name');
      expect422(await p({ display_name: 'half applied?', daily_target_ml: 1.5 }), 'daily_target_ml');
      assert.deepEqual(expectStatus(await api(srv, 'GET', '/api/v1/me', { token: a.token }), 200).json, a.user);
      await login(srv, a.email, PASSWORD);
    });

    it('answers 400 to malformed JSON and 415 to a body without application/json', async () => {
      const a = await register(srv);
      for (const body of ['{"display_name": ', '{display_name: "x"}', '[]', '"x"', 'null', 'true', '{"display_name": "a", "display_name": "b"}']) {
        expectProblem(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body }), 400, 'malformed');
      }
      for (const contentType of [null, 'text/plain', 'application/xml', 'multipart/form-data; boundary=x']) {
        expectProblem(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { display_name: 'x' }, contentType }), 415, 'unsupported-media-type');
      }
      // 415 comes before the JSON parse
      expectProblem(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: '{bad', contentType: null }), 415, 'unsupported-media-type');
      assert.deepEqual(expectStatus(await api(srv, 'GET', '/api/v1/me', { token: a.token }), 200).json, a.user);
    });

    it('needs credentials (401) and, with a cookie, the Origin (403)', async () => {
      const a = await register(srv);
      expect401(await api(srv, 'PATCH', '/api/v1/me', { body: { display_name: 'x' } }));
      expect401(await api(srv, 'PATCH', '/api/v1/me', { body: '{bad', contentType: null }));
      expect403(await api(srv, 'PATCH', '/api/v1/me', { cookie: a.token, origin: null, body: { display_name: 'x' } }));
      expectStatus(await api(srv, 'PATCH', '/api/v1/me', { cookie: a.token, origin: PUBLIC_ORIGIN, body: { display_name: 'x' } }), 200);
    });

    it('takes a NUL character in a string as data: stored, or refused with 422 (valid JSON, so not 400)', async () => {
      const a = await register(srv);
      const r = await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { display_name: 'a\u0000b' } });
      assert.ok([200, 422].includes(r.status), `NUL in display_name: ${r.status} ${r.text}`);
      if (r.status === 200) assert.equal(r.json.display_name, 'a\u0000b');
      else expect422(r, 'display_name');
      expect422(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { timezone: 'UTC\u0000' } }), 'timezone');
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: a.token }), 200);
    });

    // A number no 64-bit integer or double holds is refused while parsing (RFC 8259 section 6
    // lets a parser limit the range): 400, documented in the OpenAPI description. One that
    // parses but is not an integer, or is out of the field's bounds, is a 422.
    it('refuses numbers beyond 64 bits with 400 and other wrong numbers with 422', async () => {
      const a = await register(srv);
      for (const n of ['1e400', '-1e400', '99999999999999999999999']) {
        const r = await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: `{"daily_target_ml": ${n}}` });
        assert.equal(r.status, 400, `${n}: ${r.text}`);
        assert.equal(r.json.type, '/problems/malformed');
        assert.match(r.json.detail, /number out of range/);
      }
      for (const n of ['1e-400', '1.5', '10001', '-1']) {
        expect422(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: `{"daily_target_ml": ${n}}` }), 'daily_target_ml');
      }
    });

    it('survives a lone surrogate and deep nesting (400 or 422, never 5xx)', async () => {
      const a = await register(srv);
      const p = (body) => api(srv, 'PATCH', '/api/v1/me', { token: a.token, body });
      let r = await p('{"display_name": "\\ud800"}');
      assert.ok([400, 422].includes(r.status), `lone surrogate: ${r.status}`);
      r = await p(`{"display_name": ${'['.repeat(100000)}${']'.repeat(100000)}}`);
      assert.ok([400, 422].includes(r.status), `deep nesting: ${r.status}`);
      r = await p(`${'{"a":'.repeat(50000)}1${'}'.repeat(50000)}`);
      assert.ok([400, 422].includes(r.status), `deep nesting: ${r.status}`);
      assert.deepEqual(expectStatus(await api(srv, 'GET', '/api/v1/me', { token: a.token }), 200).json, a.user);
    });

    it('changes only the caller', async () => {
      const a = await register(srv);
      const b = await register(srv);
      expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { display_name: 'A', timezone: 'Asia/Tokyo', daily_target_ml: 5 } }), 200);
      assert.deepEqual(expectStatus(await api(srv, 'GET', '/api/v1/me', { token: b.token }), 200).json, b.user);
    });
  });

  describe('DELETE /me', () => {
    it('needs a JSON body with the right password (422, 415, 403), changing nothing', async () => {
      const a = await register(srv);
      const d = (o) => api(srv, 'DELETE', '/api/v1/me', { token: a.token, ...o });
      expect422(await d({}), 'password');
      expect422(await d({ body: {} }), 'password');
      expect422(await d({ body: { password: 12345678901234 } }), 'password');
      expect422(await d({ body: { password: null } }), 'password');
      expect422(await d({ body: { password: PASSWORD, confirm: true } }), 'confirm');
      expectProblem(await d({ body: { password: PASSWORD }, contentType: null }), 415, 'unsupported-media-type');
      expectProblem(await d({ body: { password: PASSWORD }, contentType: 'text/plain' }), 415, 'unsupported-media-type');
      expectProblem(await d({ body: '{"password": ' }), 400, 'malformed');
      expect403(await d({ body: { password: `${PASSWORD}?` } }));
      expect403(await api(srv, 'DELETE', '/api/v1/me', { cookie: a.token, origin: null, body: { password: PASSWORD } }));
      expect403(await api(srv, 'DELETE', '/api/v1/me', { cookie: a.token, origin: 'https://evil.example', body: { password: PASSWORD } }));
      expect401(await api(srv, 'DELETE', '/api/v1/me', { body: { password: PASSWORD } }));
      assert.deepEqual(expectStatus(await api(srv, 'GET', '/api/v1/me', { token: a.token }), 200).json, a.user);
      assert.equal(rowsOf(a.user.id).users, 1);
    });

    it('204: the user and all their data gone, every session and token revoked, others untouched', async () => {
      const a = await register(srv);
      const a2 = await login(srv, a.email);
      const a3 = await login(srv, a.email);
      const ta = await createToken(srv, a.token, { scopes: ['read'] });
      const ta2 = await createToken(srv, a.token, { scopes: ['read', 'write'], expires_in_days: 3 });
      seedNotes(a.user.id, 3);
      seedFeedings(a.user.id, 4);
      seedIdempotency(a.user.id);
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: ta.token }), 200);

      const b = await register(srv);
      const tb = await createToken(srv, b.token, { scopes: ['read'] });
      seedNotes(b.user.id, 2);
      seedFeedings(b.user.id, 2);
      seedIdempotency(b.user.id);
      const before = rowsOf(a.user.id);
      assert.ok(before.users === 1 && before.api_tokens === 2 && before.notes === 3 && before.feedings === 4, JSON.stringify(before));
      const bBefore = rowsOf(b.user.id);

      const r = expectStatus(await api(srv, 'DELETE', '/api/v1/me', { cookie: a2.token, origin: PUBLIC_ORIGIN, body: { password: PASSWORD } }), 204);
      assert.equal(r.text, '');

      for (const t of [a.token, a2.token, a3.token]) {
        expect401(await api(srv, 'GET', '/api/v1/me', { token: t }));
        expect401(await api(srv, 'GET', '/api/v1/me', { cookie: t }));
      }
      for (const t of [ta.token, ta2.token]) expect401(await api(srv, 'GET', '/api/v1/me', { token: t }));
      const left = rowsOf(a.user.id);
      assert.ok(Object.keys(left).length >= 5, `tables checked: ${Object.keys(left)}`);
      assert.deepEqual(Object.entries(left).filter(([, n]) => n !== 0), [], `rows left for the deleted user: ${JSON.stringify(left)}`);
      assert.equal(psql(`SELECT count(*) FROM users WHERE lower(email) = lower('${a.email}')`), '0');
      expect401(await api(srv, 'POST', '/api/v1/auth/login', { body: { email: a.email, password: PASSWORD } }));
      // nor anything in Redis (session records hold the IP and user agent)
      const leftInRedis = (await redisDump(requireEnv('REDIS_URL'))).filter((k) => k.key.includes(a.user.id) || k.value.includes(a.user.id));
      assert.deepEqual(leftInRedis, [], 'Redis keys left for the deleted user');

      // the other user is untouched
      assert.deepEqual(rowsOf(b.user.id), bBefore);
      assert.deepEqual(expectStatus(await api(srv, 'GET', '/api/v1/me', { token: b.token }), 200).json, b.user);
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: tb.token }), 200);
      assert.equal(expectStatus(await api(srv, 'GET', '/api/v1/auth/sessions', { token: b.token }), 200).json.items.length, 1);

      // the email is free again
      const again = await register(srv, { email: a.email });
      assert.notEqual(again.user.id, a.user.id);
    });

    it('works by bearer session token without Origin', async () => {
      const a = await register(srv);
      expectStatus(await api(srv, 'DELETE', '/api/v1/me', { token: a.token, origin: null, body: { password: PASSWORD } }), 204);
      expect401(await api(srv, 'GET', '/api/v1/me', { token: a.token }));
      assert.equal(rowsOf(a.user.id).users, 0);
    });
  });

  describe('GET /me/export', () => {
    it('streams the caller\'s data as a JSON attachment, tokens as metadata only', async () => {
      const a = await register(srv, { display_name: 'Exporter', timezone: 'Europe/Paris' });
      const b = await register(srv);
      const ta1 = await createToken(srv, a.token, { name: 'a one', scopes: ['read'] });
      const ta2 = await createToken(srv, a.token, { name: 'a two', scopes: ['write'], expires_in_days: 7 });
      const tb = await createToken(srv, b.token, { name: 'b one', scopes: ['read'] });
      const notesA = seedNotes(a.user.id, 3);
      const feedA = seedFeedings(a.user.id, 5);
      const notesB = seedNotes(b.user.id, 2);
      const feedB = seedFeedings(b.user.id, 2);
      const t0 = Date.now();
      const r = expectStatus(await api(srv, 'GET', '/api/v1/me/export', { token: a.token }), 200);
      assert.match(r.headers['content-type'], /^application\/json(;\s*charset=utf-8)?$/i);
      assert.equal(r.headers['content-disposition'], 'attachment; filename="pulse-export.json"');
      assert.equal(r.headers['transfer-encoding'], 'chunked', 'streamed');
      assert.equal(r.headers['content-length'], undefined);
      const x = r.json;
      for (const k of ['exported_at', 'user', 'notes', 'feedings', 'tokens']) assert.ok(k in x, `export has ${k}`);
      assert.match(x.exported_at, TS_RE);
      assert.ok(Math.abs(Date.parse(x.exported_at) - t0) < 60000);
      assert.deepEqual(x.user, expectStatus(await api(srv, 'GET', '/api/v1/me', { token: a.token }), 200).json);
      assert.deepEqual(x.notes.map((n) => n.id).sort(), [...notesA].sort());
      assert.deepEqual(x.feedings.map((f) => f.id).sort(), [...feedA].sort());
      for (const n of x.notes) {
        // care circles: a record also names its subject and author (v1 keys unchanged)
        assert.deepEqual(Object.keys(n).sort(), withAdded(NOTE_KEYS, ['created_by', 'subject_id']));
        assert.match(n.title, /^note \d$/);
        assert.ok(Array.isArray(n.tags));
        assert.equal(n.version, 1);
        assert.match(n.created_at, TS_RE);
      }
      for (const f of x.feedings) {
        assert.deepEqual(Object.keys(f).sort(), withAdded(FEEDING_KEYS, ['created_by', 'subject_id', ...FEEDING_KEYS_V2_ADDED]));
        assert.equal(f.kind, 'milk');
        assert.equal(typeof f.amount_ml, 'number');
        assert.match(f.given_at, TS_RE);
      }
      assert.deepEqual(x.tokens.map((t) => t.id).sort(), [ta1.id, ta2.id].sort());
      for (const t of x.tokens) assert.deepEqual(Object.keys(t).sort(), withAdded(TOKEN_KEYS, TOKEN_KEYS_ADDED));
      assert.deepEqual(x.tokens.find((t) => t.id === ta2.id).scopes, ['write']);
      for (const secret of [ta1.token, ta2.token, tb.token, a.token, b.token, PASSWORD]) {
        assert.ok(!r.text.includes(secret), 'no secret in the export');
      }
      assert.ok(!/token_hash|password_hash|\$argon2/.test(r.text), 'no hash in the export');
      for (const id of [...notesB, ...feedB, tb.id, b.user.id]) assert.ok(!r.text.includes(id), `another user's ${id} in the export`);

      // b's export holds exactly b's
      const rb = expectStatus(await api(srv, 'GET', '/api/v1/me/export', { cookie: b.token, origin: null }), 200);
      assert.deepEqual(rb.json.tokens.map((t) => t.id), [tb.id]);
      assert.deepEqual(rb.json.notes.map((n) => n.id).sort(), [...notesB].sort());
      assert.deepEqual(rb.json.feedings.map((n) => n.id).sort(), [...feedB].sort());
      assert.equal(rb.json.user.id, b.user.id);
    });

    it('exports an empty account with empty arrays', async () => {
      const a = await register(srv);
      const r = expectStatus(await api(srv, 'GET', '/api/v1/me/export', { token: a.token }), 200);
      assert.deepEqual(r.json.notes, []);
      assert.deepEqual(r.json.feedings, []);
      assert.deepEqual(r.json.tokens, []);
      assert.deepEqual(r.json.user, a.user);
    });

    it('is complete for a large account (several MB)', async () => {
      const a = await register(srv);
      const notes = seedNotes(a.user.id, 150, { body: 'x'.repeat(20000) });
      const feed = seedFeedings(a.user.id, 5000);
      const r = expectStatus(await api(srv, 'GET', '/api/v1/me/export', { token: a.token }), 200);
      assert.ok(r.text.length > 3_000_000, `${r.text.length} bytes`);
      assert.equal(r.json.notes.length, notes.length);
      assert.equal(r.json.feedings.length, feed.length);
      assert.equal(new Set(r.json.feedings.map((f) => f.id)).size, feed.length);
      assert.ok(r.json.notes.every((n) => n.body.length === 20000));
      // still serving afterwards
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: a.token }), 200);
    });

    it('needs credentials, and read scope for a token', async () => {
      const a = await register(srv);
      expect401(await api(srv, 'GET', '/api/v1/me/export'));
      const ro = await createToken(srv, a.token, { scopes: ['read'] });
      const wo = await createToken(srv, a.token, { scopes: ['write'] });
      const r = expectStatus(await api(srv, 'GET', '/api/v1/me/export', { token: ro.token }), 200);
      assert.deepEqual(r.json.tokens.map((t) => t.id).sort(), [ro.id, wo.id].sort());
      expect403(await api(srv, 'GET', '/api/v1/me/export', { token: wo.token }));
      expectStatus(await api(srv, 'HEAD', '/api/v1/me/export', { token: a.token }), 200);
    });
  });
});
