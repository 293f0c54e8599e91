// Security review, driven by the route table the server publishes (/api/v1/openapi.json), so
// that a route added there is covered here without anyone remembering to: every path and
// method under /api/v1 (HEAD wherever GET is) except the OpenAPI document, register and
// login (which take no credential).
//
//  1. authentication: no or bogus credentials are 401 (WWW-Authenticate: Bearer,
//     problem+json) on every route; an unknown path under /api/v1 is 404 with or without them;
//  2. tenant isolation: user B on every {id} route with each of user A's real ids (note,
//     feeding, token, session), with and without If-Match, with valid bodies, by session and
//     by token: 404 everywhere, and A's resources unchanged; B's lists never show A's data;
//  3. scopes: a read-only token on every non-GET route and a write-only token on every GET
//     route are 403 (also before a malformed body); any token on /auth/*, /tokens* and
//     DELETE /me is 403; nothing changes;
//  4. injection: SQL metacharacters, format strings, control characters, astral characters,
//     RTL overrides, combining marks and values at the code-point limits in every writable
//     string field (and Idempotency-Key) are stored and answered byte for byte (also checked
//     in Postgres by SHA-256); tags refuse them with 422; ?q= and every other query parameter
//     abused: never 5xx; every table still exists;
//  5. login timing, known vs unknown email, at the test Argon2 cost and a realistic one;
//  6. response hygiene on every response of this file: the contract's security headers, and
//     no SQL text, file paths or stack traces in any problem body.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { before, describe, it } from 'node:test';

import {
  API_ENV, PASSWORD,
  api, createToken, expect401, expect403, expect404, expect422, expectProblem, expectStatus, login, median, psql, register, rowsOf,
  uniqueEmail,
} from './api.mjs';
import { middayZone, raw, serverFor, useServer } from './helpers.mjs';

const RANDOM_UUID = '5f0c2a4e-8d1b-4c7e-9f3a-2b6d8e1c0a97';
// Routes that take no user credential (or are the route table itself; the scaling advisor is
// guarded like /metrics, tested in live.test.mjs).
const SKIP = new Set(['/api/v1/openapi.json', '/api/v1/auth/register', '/api/v1/auth/login', '/api/v1/health/scaling']);

// A valid body for each writing route, so that a refusal is about who asks, not what they send.
// Every /api/v1 route of the OpenAPI document must be listed in KNOWN (checked below), so a new
// route forces a decision here.
const BODIES = {
  'POST /api/v1/auth/password': () => ({ current_password: PASSWORD, new_password: 'a brand new password 42' }),
  'POST /api/v1/tokens': () => ({ name: 'sneaky', scopes: ['read', 'write'] }),
  'PATCH /api/v1/me': () => ({ display_name: 'hijacked', daily_target_ml: 1234 }),
  'DELETE /api/v1/me': () => ({ password: PASSWORD }),
  'POST /api/v1/notes': () => ({ title: 'sneaky note' }),
  'PATCH /api/v1/notes/{id}': () => ({ title: 'hijacked', body: 'pwned', tags: ['pwned'], pinned: true }),
  'POST /api/v1/feedings': () => ({ amount_ml: 321 }),
  'PATCH /api/v1/feedings/{id}': () => ({ amount_ml: 999, note: 'hijacked', kind: 'other' }),
  'POST /api/v1/subjects': () => ({ name: 'sneaky subject' }),
  'PATCH /api/v1/subjects/{id}': () => ({ name: 'hijacked', daily_target_ml: 999 }),
  'PATCH /api/v1/subjects/{id}/members/{user_id}': () => ({ role: 'owner' }),
  'POST /api/v1/subjects/{id}/invitations': () => ({ role: 'viewer' }),
  'POST /api/v1/invitations/accept': () => ({ code: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }),
};
const KNOWN = [
  'POST /api/v1/auth/logout', 'GET /api/v1/auth/sessions', 'HEAD /api/v1/auth/sessions', 'DELETE /api/v1/auth/sessions/{id}',
  'POST /api/v1/auth/password', 'POST /api/v1/tokens', 'GET /api/v1/tokens', 'HEAD /api/v1/tokens', 'DELETE /api/v1/tokens/{id}',
  'GET /api/v1/me', 'HEAD /api/v1/me', 'PATCH /api/v1/me', 'DELETE /api/v1/me', 'GET /api/v1/me/export', 'HEAD /api/v1/me/export',
  'GET /api/v1/notes', 'HEAD /api/v1/notes', 'POST /api/v1/notes', 'GET /api/v1/notes/{id}', 'HEAD /api/v1/notes/{id}',
  'PATCH /api/v1/notes/{id}', 'DELETE /api/v1/notes/{id}', 'GET /api/v1/tags', 'HEAD /api/v1/tags',
  'GET /api/v1/feedings', 'HEAD /api/v1/feedings', 'POST /api/v1/feedings', 'GET /api/v1/feedings/today', 'HEAD /api/v1/feedings/today',
  'GET /api/v1/feedings/timeline', 'HEAD /api/v1/feedings/timeline',
  'GET /api/v1/feedings/{id}', 'HEAD /api/v1/feedings/{id}', 'PATCH /api/v1/feedings/{id}', 'DELETE /api/v1/feedings/{id}',
  'GET /api/v1/stats/feedings', 'HEAD /api/v1/stats/feedings',
  'GET /api/v1/live', 'HEAD /api/v1/live', // without an upgrade: 426 (GET) or 400 (HEAD) once authorised
  'POST /api/v1/live/ticket', // session only (tested in live.test.mjs)
  'GET /api/v1/subjects', 'HEAD /api/v1/subjects', 'POST /api/v1/subjects', 'GET /api/v1/subjects/{id}', 'HEAD /api/v1/subjects/{id}',
  'PATCH /api/v1/subjects/{id}', 'DELETE /api/v1/subjects/{id}', 'GET /api/v1/subjects/{id}/members', 'HEAD /api/v1/subjects/{id}/members',
  'PATCH /api/v1/subjects/{id}/members/{user_id}', 'DELETE /api/v1/subjects/{id}/members/{user_id}',
  'POST /api/v1/subjects/{id}/invitations', 'GET /api/v1/subjects/{id}/invitations', 'HEAD /api/v1/subjects/{id}/invitations',
  'DELETE /api/v1/subjects/{id}/invitations/{inv_id}',
  'POST /api/v1/invitations/accept', // one user-wide route, no id (tested in circles.test.mjs)
];

const keyOf = (r) => `${r.method} ${r.path}`;
const bodyFor = (r) => (BODIES[keyOf(r)] ? BODIES[keyOf(r)]() : undefined);
// The path with `id` for {id}, and `userId` (default: the same) for a member's {user_id} and
// an invitation's {inv_id}.
const fill = (p, id, userId = id) => p.replace('{id}', encodeURIComponent(id))
  .replace('{user_id}', encodeURIComponent(userId)).replace('{inv_id}', encodeURIComponent(id));
const isRead = (r) => r.method === 'GET' || r.method === 'HEAD';
const hasId = (r) => r.path.includes('{id}');
// The WebSocket route answers a plain authorised GET with 426 (HEAD: 400); its isolation
// (one user's events never reach another's socket) is tested in live.test.mjs.
const okStatus = (r) => (r.path === '/api/v1/live' ? (r.method === 'GET' ? 426 : 400) : 200);
// The contract: a token gets 403 on /tokens*, /auth/*, DELETE /me and the session-only POST /live/ticket.
const tokenForbidden = (r) => r.path.startsWith('/api/v1/auth/') || r.path === '/api/v1/tokens' || r.path.startsWith('/api/v1/tokens/')
  || (r.method === 'DELETE' && r.path === '/api/v1/me') || r.path === '/api/v1/live/ticket';

// ---- 6. response hygiene, applied to every response this file receives ----

const PAYLOADS = [
  "'; DROP TABLE users; --",
  '" OR 1=1 --',
  "' OR '1'='1",
  "admin'--",
  '%00',
  '\\',
  "\\'",
  '$1',
  '$$ || $$',
  '$tag$ x $tag$',
  "E'\\x00'",
  "'); SELECT pg_sleep(3); --",
  '1; SELECT pg_sleep(3)',
  '%s%s%s%n%x%p',
  '{{7*7}} ${7*7} <script>alert(1)</script> &amp; &#0;',
  '🍼😀𝕳𝖊𝖑𝖑𝖔 👨‍👩‍👧‍👦 🏳️‍🌈 \u{10FFFD}\u{1F9EC}',
  '\u202Eevil\u202C.txt \u202Dltr\u202C \u200F\u200E',
  'Z\u0351\u0300\u0301\u0302\u0303a\u0336\u0337l\u0338\u0360g\u0489o',
  '\uFEFFbom\u200Bzw\u200Dj\u2028ls\u2029ps\u00A0nbsp',
  'line1\r\nline2\ttab\u0001\u001F\u007F\u0085\u009F',
  '"quoted" and \'single\' and `back`',
  ':* & | ! <-> ( ) \\\\ websearch:"x"',
  'Ω≈ç√∫ 日本語 עברית العربية',
];

const LEAKS = [
  [/\bSELECT\b[\s\S]{0,200}\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b|\bRETURNING\b|\$\d+::/i, 'SQL text'],
  [/syntax error|relation "|column "|violates [\w ]*constraint|duplicate key|SQLSTATE|\bERROR:|PGRES_|libpq|postgres|tsquery|invalid byte sequence|encoding "UTF8"|server closed the connection/i, 'database error text'],
  [/\/work\/|\/home\/|\/root\/|\/usr\/|\/tmp\/|\/build[\w-]*\/|\b[\w-]+\.[ch](:\d+)?\b(?![\w.])/, 'a file path'],
  [/\bat \S+ \(|#\d+\s+0x[0-9a-f]+|0x[0-9a-f]{8,}|Traceback|backtrace|AddressSanitizer|runtime error|Segmentation|assert(ion)? failed/i, 'a stack trace'],
];

const stats = { responses: 0, problems: 0, combos: {} };
const tally = (what, n = 1) => { stats.combos[what] = (stats.combos[what] || 0) + n; };

function hygiene(r) {
  stats.responses++;
  const where = `${r.method} ${r.path.slice(0, 200)} -> ${r.status}`;
  assert.equal(r.headers['x-content-type-options'], 'nosniff', `X-Content-Type-Options: ${where}`);
  assert.equal(r.headers['referrer-policy'], 'no-referrer', `Referrer-Policy: ${where}`);
  assert.equal(r.headers['x-frame-options'], 'DENY', `X-Frame-Options: ${where}`);
  if (/^application\/problem\+json/.test(r.headers['content-type'] || '') && r.text) {
    stats.problems++;
    // What the client sent may be echoed (a 422 naming a value): that is not a leak.
    let text = r.text;
    for (const p of PAYLOADS) {
      for (const form of [p, JSON.stringify(p).slice(1, -1)]) text = text.split(form).join('');
    }
    for (const [re, what] of LEAKS) {
      const m = re.exec(text);
      assert.ok(!m, `problem body leaks ${what} (${JSON.stringify(m && m[0])}): ${where} ${r.text.slice(0, 500)}`);
    }
  }
  return r;
}

// api() + the hygiene checks.
const call = async (srv, method, path, opts) => hygiene(await api(srv, method, path, opts));

const sha = (s) => createHash('sha256').update(Buffer.from(s, 'utf8')).digest('hex');
const cp = (s) => [...s].length;
const ASTRAL = '\u{1D573}'; // MATHEMATICAL BOLD FRAKTUR CAPITAL H: 4 bytes in UTF-8, 2 UTF-16 units

function publicTables() {
  return psql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'").split(',');
}

describe('security', () => {
  const srv = useServer({ ...API_ENV });
  let routes; // [{method, path}] from the server's OpenAPI document
  let tablesBefore;
  before(async () => { // the server is ready: migrations applied
    tablesBefore = publicTables();
    const doc = expectStatus(await call(srv, 'GET', '/api/v1/openapi.json'), 200).json;
    const seen = new Set();
    routes = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      if (!path.startsWith('/api/v1/') || SKIP.has(path)) continue;
      for (const m of ['get', 'head', 'post', 'put', 'patch', 'delete']) {
        if (!item[m]) continue;
        for (const method of m === 'get' ? ['GET', 'HEAD'] : [m.toUpperCase()]) {
          const r = { method, path };
          if (!seen.has(keyOf(r))) { seen.add(keyOf(r)); routes.push(r); }
        }
      }
    }
  });

  it('the route table is the one this file knows (a new route must be given a body and an id here)', () => {
    const have = routes.map(keyOf).sort();
    assert.deepEqual(have, [...KNOWN].sort(), 'OpenAPI /api/v1 routes vs KNOWN');
    console.log(`# security: ${routes.length} route-methods under /api/v1 from /api/v1/openapi.json`);
  });

  // ---------------------------------------------------------------- 1. authentication
  describe('1. authentication', () => {
    const CREDS = [
      ['no credentials', {}],
      ['a bogus bearer', { headers: { Authorization: `Bearer ${randomBytes(24).toString('base64url')}` } }],
      ['a bogus token', { headers: { Authorization: `Bearer pat_${randomBytes(24).toString('base64url')}` } }],
      ['a bogus cookie', { cookie: randomBytes(24).toString('base64url') }],
      ['Basic credentials', { headers: { Authorization: `Basic ${Buffer.from('a@b.c:password').toString('base64')}` }, origin: null }],
    ];

    it('every route: 401 with WWW-Authenticate: Bearer and problem+json, with a valid body and a valid-looking id', async () => {
      for (const r of routes) {
        for (const [what, opts] of CREDS) {
          const res = await call(srv, r.method, fill(r.path, RANDOM_UUID), { body: bodyFor(r), ...opts });
          const ctx = `${keyOf(r)} with ${what}`;
          expect401(res);
          assert.match(res.headers['www-authenticate'] || '', /^Bearer\b/, ctx);
          assert.match(res.headers['content-type'] || '', /^application\/problem\+json/, `${ctx}: content-type`);
          assert.equal(res.headers['set-cookie'], undefined, `${ctx}: no cookie set`);
          tally('1. no/bad credentials x route');
        }
      }
    });

    it('an unknown path under /api/v1 is 404, with or without credentials, whatever the method', async () => {
      const a = await register(srv);
      const paths = ['/api/v1', '/api/v1/', '/api/v1/nope', '/api/v1/admin', '/api/v1/users', `/api/v1/users/${a.user.id}`,
        `/api/v1/notes/${RANDOM_UUID}/extra`, '/api/v1/feedings/today/extra', '/api/v1/me/nope', `/api/v1/tokens/${RANDOM_UUID}/x`,
        '/api/v1/auth/sessions/a/b', '/api/v1/auth', '/api/v1/auth/nope', '/api/v1/stats', '/api/v1/stats/notes',
        '/api/v1/NOTES', '/api/v1/Me', '/api/v1/openapi.yaml', '/api/v1/notes.json', '/api/v1/%6eotes', '/api/v2/notes', '/api/v1/notes;x'];
      for (const p of paths) {
        for (const method of ['GET', 'POST', 'PATCH', 'DELETE']) {
          for (const token of [undefined, a.token]) {
            const res = await call(srv, method, p, { token, body: method === 'GET' ? undefined : { title: 'x' } });
            expect404(res);
            tally('1. unknown path x method x with/without credentials');
          }
        }
      }
    });
  });

  // ---------------------------------------------------------------- 2. isolation
  describe('2. tenant isolation', () => {
    let A;
    let B;
    before(async () => {
      A = await register(srv, { display_name: 'Alice Secret' });
      const pat = await createToken(srv, A.token, { name: 'alice-token' });
      const note = expectStatus(await call(srv, 'POST', '/api/v1/notes', { token: A.token, body: { title: 'alice-secret-title', body: 'alice secret body', tags: ['alice'] } }), 201).json;
      const feeding = expectStatus(await call(srv, 'POST', '/api/v1/feedings', { token: A.token, body: { amount_ml: 123, note: 'alice-secret-feeding' } }), 201).json;
      const sessions = expectStatus(await call(srv, 'GET', '/api/v1/auth/sessions', { token: A.token }), 200).json.items;
      assert.equal(sessions.length, 1);
      A.pat = pat;
      A.note = note;
      A.feeding = feeding;
      A.ids = { note: note.id, feeding: feeding.id, token: pat.id, session: sessions[0].id, subject: A.user.default_subject_id };
      B = await register(srv, { timezone: middayZone() }); // its "today" holds for 11 h
      B.pat = await createToken(srv, B.token, { name: 'bob-rw', scopes: ['read', 'write'] });
      // B owns resources of every kind too, so an id lookup that forgot the user would have rows to find
      await createToken(srv, B.token, { name: 'bob-other' });
      expectStatus(await call(srv, 'POST', '/api/v1/notes', { token: B.token, body: { title: 'bob note' } }), 201);
      expectStatus(await call(srv, 'POST', '/api/v1/feedings', { token: B.token, body: { amount_ml: 5 } }), 201);
    });

    async function snapshotA() {
      const g = (p, token = A.token) => call(srv, 'GET', p, { token });
      return {
        note: expectStatus(await g(`/api/v1/notes/${A.note.id}`), 200).json,
        feeding: expectStatus(await g(`/api/v1/feedings/${A.feeding.id}`), 200).json,
        me: expectStatus(await g('/api/v1/me'), 200).json,
        tokens: expectStatus(await g('/api/v1/tokens'), 200).json.items.map(({ last_used_at: _, ...t }) => t),
        sessions: expectStatus(await g('/api/v1/auth/sessions'), 200).json.items.map((s) => s.id),
        rows: rowsOf(A.user.id),
        db: psql(`SELECT string_agg(x, ';') FROM (SELECT version || ':' || title || ':' || body AS x FROM notes WHERE created_by = '${A.user.id}'
                  UNION ALL SELECT version || ':' || amount_ml || ':' || coalesce(note, '') FROM feedings WHERE created_by = '${A.user.id}') s`),
      };
    }

    it('B on every {id} route with each of A\'s ids, by session and by token, with and without If-Match: 404; A unchanged', async () => {
      const before = await snapshotA();
      assert.equal(before.note.version, 1);
      const idRoutes = routes.filter(hasId);
      assert.ok(idRoutes.length >= 10, `{id} routes: ${idRoutes.map(keyOf)}`);
      for (const r of idRoutes) {
        for (const [kind, id] of Object.entries(A.ids)) {
          for (const ifMatch of [undefined, '*', '"1"', 'W/"1"']) {
            for (const [who, token] of [['B session', B.token], ['B token', B.pat.token]]) {
              const headers = ifMatch === undefined ? {} : { 'If-Match': ifMatch };
              const res = await call(srv, r.method, fill(r.path, id), { token, body: bodyFor(r), headers, origin: null });
              const ctx = `${keyOf(r)} with A's ${kind} id, If-Match ${ifMatch}, as ${who}`;
              if (who === 'B token' && tokenForbidden(r)) expect403(res);
              else {
                assert.equal(res.status, 404, `${ctx}: ${res.status} ${res.text.slice(0, 300)}`);
                expect404(res);
              }
              tally('2. B x {id} route x A id x If-Match x credential');
            }
          }
        }
      }
      // also by cookie with the right Origin (the browser's way)
      for (const r of idRoutes.filter((x) => !isRead(x))) {
        for (const [kind, id] of Object.entries(A.ids)) {
          const res = await call(srv, r.method, fill(r.path, id), { cookie: B.token, body: bodyFor(r), headers: { 'If-Match': '*' } });
          assert.equal(res.status, 404, `${keyOf(r)} with A's ${kind} id by B's cookie: ${res.status}`);
          tally('2. B x {id} route x A id x If-Match x credential');
        }
      }
      const afterSnap = await snapshotA();
      assert.deepEqual(afterSnap, before, 'A\'s note, feeding, profile, tokens, sessions and rows are unchanged');
      // A's credentials all still work
      expectStatus(await call(srv, 'GET', '/api/v1/me', { token: A.pat.token }), 200);
      expectStatus(await call(srv, 'GET', '/api/v1/me', { token: A.token }), 200);
    });

    it('none of B\'s GET routes (lists, tags, today, stats, export, tokens, sessions) shows anything of A\'s', async () => {
      const secrets = [...Object.values(A.ids), A.user.id, A.email, 'Alice Secret', 'alice-secret', 'alice-token', A.token, A.pat.token];
      const lists = routes.filter((r) => r.method === 'GET' && !hasId(r));
      const queries = { '/api/v1/notes': ['', '?q=alice', '?q=secret', '?tag=alice', '?pinned=false'], '/api/v1/feedings': ['', '?kind=food', '?from=2000-01-01T00:00:00Z'], '/api/v1/stats/feedings': ['', '?days=365'], '/api/v1/feedings/timeline': ['', '?date=2000-01-01'] };
      for (const r of lists) {
        for (const q of queries[r.path] || ['']) {
          for (const token of [B.token, B.pat.token]) {
            const res = await call(srv, 'GET', r.path + q, { token });
            if (tokenForbidden(r) && token === B.pat.token) { expect403(res); continue; }
            expectStatus(res, okStatus(r));
            for (const s of secrets) assert.ok(!res.text.includes(s), `GET ${r.path}${q} as B shows A's ${s}`);
            tally('2. B x GET list route x query x credential');
          }
        }
      }
      const tags = expectStatus(await call(srv, 'GET', '/api/v1/tags', { token: B.token }), 200).json.items.map((t) => t.tag);
      assert.ok(!tags.includes('alice'));
      const today = expectStatus(await call(srv, 'GET', '/api/v1/feedings/today', { token: B.token }), 200).json;
      assert.equal(today.total_ml, 5, 'B\'s today counts only B\'s feeding');
    });
  });

  // ---------------------------------------------------------------- 3. scopes
  describe('3. token scopes', () => {
    let C;
    let tok;
    before(async () => {
      C = await register(srv);
      tok = {
        ro: await createToken(srv, C.token, { name: 'ro', scopes: ['read'] }),
        wo: await createToken(srv, C.token, { name: 'wo', scopes: ['write'] }),
        rw: await createToken(srv, C.token, { name: 'rw', scopes: ['read', 'write'] }),
      };
      C.victim = await createToken(srv, C.token, { name: 'victim' });
      C.note = expectStatus(await call(srv, 'POST', '/api/v1/notes', { token: C.token, body: { title: 'c note', tags: ['c'] } }), 201).json;
      C.feeding = expectStatus(await call(srv, 'POST', '/api/v1/feedings', { token: C.token, body: { amount_ml: 77 } }), 201).json;
      C.session = expectStatus(await call(srv, 'GET', '/api/v1/auth/sessions', { token: C.token }), 200).json.items[0].id;
    });
    const ownId = (r) => {
      if (r.path.startsWith('/api/v1/notes/')) return C.note.id;
      if (r.path.startsWith('/api/v1/feedings/')) return C.feeding.id;
      if (r.path.startsWith('/api/v1/tokens/')) return C.victim.id;
      if (r.path.startsWith('/api/v1/auth/sessions/')) return C.session;
      if (r.path.startsWith('/api/v1/subjects/')) return C.user.default_subject_id;
      return RANDOM_UUID;
    };
    async function snapshotC() {
      const g = async (p) => expectStatus(await call(srv, 'GET', p, { token: C.token }), 200).json;
      return {
        me: await g('/api/v1/me'),
        note: await g(`/api/v1/notes/${C.note.id}`),
        feeding: await g(`/api/v1/feedings/${C.feeding.id}`),
        notes: (await g('/api/v1/notes')).items,
        feedings: (await g('/api/v1/feedings')).items,
        tokens: (await g('/api/v1/tokens')).items.map(({ last_used_at: _, ...t }) => t),
        sessions: (await g('/api/v1/auth/sessions')).items.map((s) => s.id),
        rows: rowsOf(C.user.id),
      };
    }

    it('read-only on every non-GET route, write-only on every GET route, any token on /auth/*, /tokens*, DELETE /me: 403; nothing changes', async () => {
      const before = await snapshotC();
      for (const r of routes) {
        const cases = [];
        if (tokenForbidden(r)) cases.push('ro', 'wo', 'rw');
        else if (isRead(r)) cases.push('wo');
        else cases.push('ro');
        for (const scope of cases) {
          for (const [what, opts] of [
            ['a valid body', { body: bodyFor(r) }],
            ['a malformed body', { body: '{"bad', contentType: 'text/plain' }],
            ['If-Match: *', { body: bodyFor(r), headers: { 'If-Match': '*' } }],
          ]) {
            if (isRead(r) && what === 'a malformed body') continue;
            const res = await call(srv, r.method, fill(r.path, ownId(r)), { token: tok[scope].token, origin: null, ...opts });
            assert.equal(res.status, 403, `${keyOf(r)} with a ${scope} token and ${what}: ${res.status} ${res.text.slice(0, 300)}`);
            expect403(res);
            assert.equal(res.headers['ratelimit-remaining'], undefined, `${keyOf(r)}: a 403 carries no RateLimit-*`);
            tally('3. token scope x route x body variant (403)');
          }
        }
      }
      assert.deepEqual(await snapshotC(), before, 'nothing changed');
      // the tokens work for what they may do: read-only reads every GET route it may, and the
      // victim token is alive
      for (const r of routes.filter((x) => isRead(x) && !tokenForbidden(x))) {
        const res = await call(srv, r.method, fill(r.path, ownId(r)), { token: tok.ro.token });
        expectStatus(res, okStatus(r));
        tally('3. read-only token x GET route (200)');
      }
      expectStatus(await call(srv, 'GET', '/api/v1/me', { token: C.victim.token }), 200);
      // the password did not change, the session was not logged out
      expectStatus(await call(srv, 'GET', '/api/v1/me', { token: C.token }), 200);
      await login(srv, C.email, PASSWORD);
    });
  });

  // ---------------------------------------------------------------- 3b. write-only answers
  describe('3b. a token without read sees no data through its writes', () => {
    let C;
    let tok;
    before(async () => {
      C = await register(srv);
      tok = {
        wo: await createToken(srv, C.token, { name: 'wo', scopes: ['write'] }),
        rw: await createToken(srv, C.token, { name: 'rw', scopes: ['read', 'write'] }),
      };
      C.note = expectStatus(await call(srv, 'POST', '/api/v1/notes', { token: C.token, body: { title: 'secret note', body: 'secret body', tags: ['secret'] } }), 201).json;
      C.feeding = expectStatus(await call(srv, 'POST', '/api/v1/feedings', { token: C.token, body: { amount_ml: 77, note: 'secret feeding' } }), 201).json;
      expectStatus(await call(srv, 'PATCH', '/api/v1/me', { token: C.token, body: { display_name: 'secret name' } }), 200);
    });
    const target = (r) => fill(r.path, r.path.startsWith('/api/v1/notes/') ? C.note.id : r.path.startsWith('/api/v1/feedings/') ? C.feeding.id
      : r.path.startsWith('/api/v1/subjects/') ? C.user.default_subject_id : RANDOM_UUID, C.user.id);
    const SECRETS = ['secret'];

    it('every PATCH route: 204 and no body for a write-only token ({} included), the change made, ETag kept; 412 shows no data', async () => {
      const patches = routes.filter((r) => r.method === 'PATCH' && !tokenForbidden(r));
      assert.ok(patches.length >= 3, `PATCH routes: ${patches.map(keyOf)}`);
      for (const r of patches) {
        const path = target(r);
        // ({} is no body for a member's role, which is required: 422 like any client)
        for (const body of r.path.endsWith('{user_id}') ? [bodyFor(r)] : [bodyFor(r), {}]) {
          const res = await call(srv, 'PATCH', path, { token: tok.wo.token, origin: null, body });
          assert.equal(res.status, 204, `${keyOf(r)} ${JSON.stringify(body)} by a write-only token: ${res.status} ${res.text.slice(0, 200)}`);
          assert.equal(res.text, '', `${keyOf(r)}: no body`);
          assert.equal(res.headers['content-type'], undefined, `${keyOf(r)}: no Content-Type`);
          for (const x of [...SECRETS, C.email, C.user.id]) assert.ok(!JSON.stringify(res.headers).includes(x), `${keyOf(r)}: headers leak ${x}`);
          tally('3b. write-only token x PATCH route x body (204)');
        }
        // the change was made (read back with the session), where the route can be read
        // (a member's role has no GET of its own: owner to owner, it is the same anyway)
        if (!routes.some((x) => x.method === 'GET' && x.path === r.path)) continue;
        const now = expectStatus(await call(srv, 'GET', path, { token: C.token }), 200);
        for (const [k, v] of Object.entries(bodyFor(r))) assert.deepEqual(now.json[k], v, `${keyOf(r)}: ${k} changed`);
        if (now.headers.etag) {
          // records: the ETag is kept (the version is not data: If-Match would tell it anyway)
          const res = await call(srv, 'PATCH', path, { token: tok.wo.token, origin: null, body: {} });
          assert.equal(res.headers.etag, now.headers.etag, `${keyOf(r)}: ETag of the 204`);
          // a stale If-Match is a plain problem, without the record
          const stale = await call(srv, 'PATCH', path, { token: tok.wo.token, origin: null, body: bodyFor(r), headers: { 'If-Match': '"99999"' } });
          expectProblem(stale, 412, 'precondition-failed');
          for (const x of [now.json.id, ...Object.values(bodyFor(r)).filter((v) => typeof v === 'string')]) assert.ok(!stale.text.includes(x), `${keyOf(r)}: the 412 shows ${x}`);
        }
        // read and write: the record, as before
        const rw = expectStatus(await call(srv, 'PATCH', path, { token: tok.rw.token, origin: null, body: {} }), 200);
        assert.equal(rw.json.id, now.json.id, keyOf(r));
      }
    });

    it('DELETE answers no body, and POST still answers the created resource, to a write-only token', async () => {
      // (POST routes that create something at a path of their own: not those under an {id},
      // nor accepting an invitation, which needs a code of a real invitation)
      for (const r of routes.filter((x) => x.method === 'POST' && BODIES[keyOf(x)] && !tokenForbidden(x) && !x.path.includes('{')
        && x.path !== '/api/v1/invitations/accept')) {
        const res = expectStatus(await call(srv, 'POST', r.path, { token: tok.wo.token, origin: null, body: bodyFor(r) }), 201);
        assert.match(res.json.id, /^[0-9a-f-]{36}$/, keyOf(r));
        const del = routes.find((x) => x.method === 'DELETE' && x.path === `${r.path}/{id}`);
        if (del) {
          const d = expectStatus(await call(srv, 'DELETE', fill(del.path, res.json.id), { token: tok.wo.token, origin: null }), 204);
          assert.equal(d.text, '', keyOf(del));
        }
        tally('3b. write-only token x POST/DELETE route');
      }
    });
  });

  // ---------------------------------------------------------------- 4. injection
  describe('4. metacharacters and Unicode in every writable string', () => {
    let D;
    before(async () => { D = await register(srv); });

    it('register display_name: stored and answered byte for byte', async () => {
      for (const p of PAYLOADS) {
        const u = await register(srv, { display_name: p });
        assert.equal(u.user.display_name, p, `register echo of ${JSON.stringify(p)}`);
        const me = expectStatus(await call(srv, 'GET', '/api/v1/me', { token: u.token }), 200).json;
        assert.equal(me.display_name, p, `GET /me of ${JSON.stringify(p)}`);
        assert.equal(psql(`SELECT encode(sha256(convert_to(display_name, 'UTF8')), 'hex') FROM users WHERE id = '${u.user.id}'`), sha(p));
        tally('4. payload x writable field');
      }
      const max = ASTRAL.repeat(100);
      const u = await register(srv, { display_name: max });
      assert.equal(u.user.display_name, max, '100 astral code points fit a 100-code-point display_name');
      expect422(await call(srv, 'POST', '/api/v1/auth/register', { body: { email: uniqueEmail(), password: PASSWORD, display_name: max + ASTRAL } }), 'display_name');
    });

    it('PATCH /me display_name: stored and answered byte for byte', async () => {
      for (const p of [...PAYLOADS, ASTRAL.repeat(100), `${'e\u0301'.repeat(50)}`]) {
        const r = expectStatus(await call(srv, 'PATCH', '/api/v1/me', { token: D.token, body: { display_name: p } }), 200);
        assert.equal(r.json.display_name, p);
        assert.equal(expectStatus(await call(srv, 'GET', '/api/v1/me', { token: D.token }), 200).json.display_name, p);
        assert.equal(psql(`SELECT encode(sha256(convert_to(display_name, 'UTF8')), 'hex') FROM users WHERE id = '${D.user.id}'`), sha(p));
        tally('4. payload x writable field');
      }
      expect422(await call(srv, 'PATCH', '/api/v1/me', { token: D.token, body: { display_name: ASTRAL.repeat(101) } }), 'display_name');
    });

    it('token name: stored and listed byte for byte', async () => {
      const created = [];
      for (const p of [...PAYLOADS, ASTRAL.repeat(100)]) {
        const t = await createToken(srv, D.token, { name: p, scopes: ['read'] });
        assert.equal(t.name, p);
        created.push(t);
        tally('4. payload x writable field');
      }
      const listed = expectStatus(await call(srv, 'GET', '/api/v1/tokens', { token: D.token }), 200).json.items;
      for (const t of created) {
        assert.equal(listed.find((x) => x.id === t.id)?.name, t.name);
        assert.equal(psql(`SELECT encode(sha256(convert_to(name, 'UTF8')), 'hex') FROM api_tokens WHERE id = '${t.id}'`), sha(t.name));
      }
      expect422(await call(srv, 'POST', '/api/v1/tokens', { token: D.token, body: { name: ASTRAL.repeat(101), scopes: ['read'] } }), 'name');
    });

    it('note title and body (POST and PATCH): stored and answered byte for byte; tags refuse metacharacters (422)', async () => {
      for (const p of PAYLOADS) {
        const t0 = Date.now();
        const c = expectStatus(await call(srv, 'POST', '/api/v1/notes', { token: D.token, body: { title: p, body: p } }), 201);
        assert.ok(Date.now() - t0 < 2500, `POST took ${Date.now() - t0} ms (pg_sleep ran?)`);
        assert.equal(c.json.title, p);
        assert.equal(c.json.body, p);
        const path = `/api/v1/notes/${c.json.id}`;
        assert.equal(c.headers.location, path);
        let g = expectStatus(await call(srv, 'GET', path, { token: D.token }), 200).json;
        assert.equal(g.title, p);
        assert.equal(g.body, p);
        const p2 = `${p}${p}`;
        const u = expectStatus(await call(srv, 'PATCH', path, { token: D.token, body: { title: p2, body: `x${p}` }, headers: { 'If-Match': '"1"' } }), 200);
        assert.equal(u.json.title, p2);
        assert.equal(u.json.version, 2);
        g = expectStatus(await call(srv, 'GET', path, { token: D.token }), 200).json;
        assert.equal(g.title, p2);
        assert.equal(g.body, `x${p}`);
        assert.equal(psql(`SELECT encode(sha256(convert_to(title, 'UTF8')), 'hex') || ' ' || encode(sha256(convert_to(body, 'UTF8')), 'hex') FROM notes WHERE id = '${c.json.id}'`),
          `${sha(p2)} ${sha(`x${p}`)}`);
        tally('4. payload x writable field', 4);
        // tags: only [a-z0-9_-]
        expect422(await call(srv, 'POST', '/api/v1/notes', { token: D.token, body: { title: 'tagged', tags: [p] } }), 'tags');
        expect422(await call(srv, 'POST', '/api/v1/notes', { token: D.token, body: { title: 'tagged', tags: ['ok', p] } }), 'tags');
        expect422(await call(srv, 'PATCH', path, { token: D.token, body: { tags: [p] } }), 'tags');
        tally('4. payload x writable field', 3);
      }
      for (const t of ["a'b", 'a;b', 'a--b;', 'a b', 'A', 'é', '🍼', 'a\u0000', '%', '$1', 'a"b', '\\', 'a/b', 'a.b']) {
        expect422(await call(srv, 'POST', '/api/v1/notes', { token: D.token, body: { title: 'tagged', tags: [t] } }), 'tags');
      }
      // a search finds the note holding SQL as text (it was stored as data, not run)
      const found = expectStatus(await call(srv, 'GET', '/api/v1/notes?q=drop%20table%20users', { token: D.token }), 200).json.items;
      assert.ok(found.some((n) => n.title === `${PAYLOADS[0]}${PAYLOADS[0]}`), 'the DROP TABLE note is found by search');
    });

    it('a 100,000-code-point body of 4-byte characters and a 200-code-point astral title round-trip; one more is 422', async () => {
      const body = ASTRAL.repeat(99_990) + '🍼👨‍👩‍👧'; // 99,990 + 1 + 5 (ZWJ sequence: 3 emoji + 2 joiners) = 99,996
      const full = body + '\u{10FFFF}\u{E0001}𝟘\u{1F3F4}'; // 100,000 code points
      assert.equal(cp(full), 100_000);
      const title = '\u{1F600}'.repeat(199) + '\u{10FFFF}';
      const c = expectStatus(await call(srv, 'POST', '/api/v1/notes', { token: D.token, body: { title, body: full } }), 201);
      assert.ok(c.json.body === full, 'POST echo of the 100,000-code-point body');
      const g = expectStatus(await call(srv, 'GET', `/api/v1/notes/${c.json.id}`, { token: D.token }), 200).json;
      assert.ok(g.body === full, 'GET of the 100,000-code-point body is byte for byte');
      assert.equal(g.title, title);
      assert.equal(psql(`SELECT char_length(body) || ' ' || octet_length(body) || ' ' || encode(sha256(convert_to(body, 'UTF8')), 'hex') FROM notes WHERE id = '${c.json.id}'`),
        `100000 ${Buffer.byteLength(full)} ${sha(full)}`);
      // PATCH at the limit too
      const rev = [...full].reverse().join('');
      expectStatus(await call(srv, 'PATCH', `/api/v1/notes/${c.json.id}`, { token: D.token, body: { body: rev } }), 200);
      assert.ok(expectStatus(await call(srv, 'GET', `/api/v1/notes/${c.json.id}`, { token: D.token }), 200).json.body === rev);
      expect422(await call(srv, 'POST', '/api/v1/notes', { token: D.token, body: { title: 'x', body: full + ASTRAL } }), 'body');
      expect422(await call(srv, 'POST', '/api/v1/notes', { token: D.token, body: { title: title + ASTRAL } }), 'title');
      expect422(await call(srv, 'PATCH', `/api/v1/notes/${c.json.id}`, { token: D.token, body: { body: full + 'x' } }), 'body');
      tally('4. payload x writable field', 5);
    });

    it('feeding note (POST and PATCH): stored and answered byte for byte, 1000 astral code points fit', async () => {
      for (const p of [...PAYLOADS, ASTRAL.repeat(1000)]) {
        const c = expectStatus(await call(srv, 'POST', '/api/v1/feedings', { token: D.token, body: { amount_ml: 10, note: p } }), 201);
        assert.equal(c.json.note, p);
        const path = `/api/v1/feedings/${c.json.id}`;
        assert.equal(expectStatus(await call(srv, 'GET', path, { token: D.token }), 200).json.note, p);
        const p2 = p.length < 400 ? `${p}|${p}` : [...p].reverse().join('');
        expectStatus(await call(srv, 'PATCH', path, { token: D.token, body: { note: p2 }, headers: { 'If-Match': '*' } }), 200);
        assert.equal(expectStatus(await call(srv, 'GET', path, { token: D.token }), 200).json.note, p2);
        assert.equal(psql(`SELECT encode(sha256(convert_to(note, 'UTF8')), 'hex') FROM feedings WHERE id = '${c.json.id}'`), sha(p2));
        tally('4. payload x writable field', 2);
      }
      expect422(await call(srv, 'POST', '/api/v1/feedings', { token: D.token, body: { amount_ml: 10, note: ASTRAL.repeat(1001) } }), 'note');
    });

    it('Idempotency-Key with metacharacters: works as an opaque key (201, then the replay); non-ASCII is 400', async () => {
      const keys = PAYLOADS.filter((p) => /^[\x21-\x7e][\x20-\x7e]*[\x21-\x7e]$/.test(p));
      assert.ok(keys.length >= 10, `printable-ASCII payloads: ${keys.length}`);
      keys.push("'".repeat(255), `${'\\'.repeat(127)}'${'\\'.repeat(127)}`);
      for (const key of keys) {
        for (const [path, body] of [['/api/v1/notes', { title: `idem ${key.slice(0, 50)}` }], ['/api/v1/feedings', { amount_ml: 42, note: key }]]) {
          const raw = JSON.stringify(body);
          const first = expectStatus(await call(srv, 'POST', path, { token: D.token, body: raw, headers: { 'Idempotency-Key': key } }), 201);
          assert.notEqual(first.headers['idempotent-replayed'], 'true', `first use of ${key}`);
          const again = expectStatus(await call(srv, 'POST', path, { token: D.token, body: raw, headers: { 'Idempotency-Key': key } }), 201);
          assert.equal(again.headers['idempotent-replayed'], 'true', `replay of ${key} on ${path}`);
          assert.deepEqual(again.json, first.json);
          expectProblem(await call(srv, 'POST', path, { token: D.token, body: `${raw} `, headers: { 'Idempotency-Key': key } }), 422, 'validation');
          tally('4. Idempotency-Key payload x route', 1);
        }
      }
      // keys differing only by a quote or a backslash are different keys
      const a = expectStatus(await call(srv, 'POST', '/api/v1/notes', { token: D.token, body: '{"title":"q"}', headers: { 'Idempotency-Key': "k'" } }), 201);
      const b = expectStatus(await call(srv, 'POST', '/api/v1/notes', { token: D.token, body: '{"title":"q"}', headers: { 'Idempotency-Key': "k''" } }), 201);
      const c = expectStatus(await call(srv, 'POST', '/api/v1/notes', { token: D.token, body: '{"title":"q"}', headers: { 'Idempotency-Key': 'k\\' } }), 201);
      assert.equal(new Set([a.json.id, b.json.id, c.json.id]).size, 3, 'three keys, three notes');
      // non-ASCII (sent as UTF-8 bytes): 400, nothing stored
      const before = Number(psql(`SELECT count(*) FROM notes WHERE created_by = '${D.user.id}'`));
      for (const p of PAYLOADS.filter((x) => /[^\x00-\x7f]/.test(x) && !/[\x00-\x1f\x7f]/.test(x))) {
        const res = await call(srv, 'POST', '/api/v1/notes', { token: D.token, body: { title: 'nonascii key' }, headers: { 'Idempotency-Key': Buffer.from(p, 'utf8').toString('latin1') } });
        expectProblem(res, 400, 'malformed');
        tally('4. Idempotency-Key payload x route', 1);
      }
      assert.equal(Number(psql(`SELECT count(*) FROM notes WHERE created_by = '${D.user.id}'`)), before);
    });

    it('?q= with metacharacters and websearch abuse is 200 (own notes only) or 400, never 5xx; other parameters 400', async () => {
      const mine = new Set((await (async () => {
        const out = [];
        let cursor = null;
        do {
          const j = expectStatus(await call(srv, 'GET', `/api/v1/notes?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token: D.token }), 200).json;
          out.push(...j.items.map((n) => n.id));
          cursor = j.next_cursor;
        } while (cursor);
        return out;
      })()));
      const Q = [...PAYLOADS, '"unterminated', '"', '-', '--', '- -', '-"', '"-"', '""""', 'OR', 'OR OR', 'or or or', 'a OR', 'OR a', '-OR',
        '!', '!!', '&', '|', '&&', '||', '(', ')', '((((', ':*', 'a:*', '<->', '<2>', 'a <-> b', '*', '%', '_', "'", "''", "'''",
        '\\', 'a\\', 'a & b | !c', 'x'.repeat(10_000), 'OR '.repeat(3000), '-'.repeat(10_000), '"a" '.repeat(1000), '"'.repeat(4000),
        '-'.repeat(32), '-'.repeat(33), '- '.repeat(40), `a ${'-'.repeat(40)} b`, '!'.repeat(100), '-a'.repeat(200), '🍼'.repeat(1000), ASTRAL.repeat(1000), 'a'.repeat(2048), 'a'.repeat(2049), `${'a '.repeat(2999)}b`, '\u0000', 'a\u0000b', ' ', '\t\n'];
      const bad = []; // every failing input is listed, not only the first
      for (const q of Q) {
        for (const extra of ['', '&pinned=true&limit=1']) {
          const t0 = Date.now();
          const res = await call(srv, 'GET', `/api/v1/notes?q=${encodeURIComponent(q)}${extra}`, { token: D.token });
          const ms = Date.now() - t0;
          tally('4. ?q= abuse');
          if (res.status !== 200 && res.status !== 400) {
            bad.push(`?q=${JSON.stringify(q.length > 40 ? `${q.slice(0, 20)}...` : q)}${extra} (${cp(q)} code points): ${res.status} ${res.json?.type}`);
            continue;
          }
          if (res.status === 400) expectProblem(res, 400, 'malformed');
          else for (const n of res.json.items) assert.ok(mine.has(n.id), 'search answers only the caller\'s notes');
          if (/pg_sleep/.test(q)) assert.ok(ms < 2500, `?q= with pg_sleep took ${ms} ms`);
        }
      }
      // raw, unencoded metacharacters in the query string (what a sloppy client sends)
      for (const rawq of ["q='", 'q="', "q=%27%3B", 'q=%', 'q=%zz', 'q=%00', 'q=%c3%28', 'q=%ed%a0%80', 'q=%f4%90%80%80', 'q=a+OR+OR', "tag='", 'tag=%00', 'tag=%ff']) {
        const res = await call(srv, 'GET', `/api/v1/notes?${rawq}`, { token: D.token });
        if (res.status !== 200 && res.status !== 400) bad.push(`?${rawq}: ${res.status} ${res.json?.type}`);
        tally('4. ?q= abuse');
      }
      // ?tag= may match nothing (200) or be refused (400)
      for (const t of PAYLOADS) {
        const res = await call(srv, 'GET', `/api/v1/notes?tag=${encodeURIComponent(t)}`, { token: D.token });
        if (res.status !== 200 && res.status !== 400) bad.push(`?tag=${JSON.stringify(t)}: ${res.status} ${res.json?.type}`);
        if (res.status === 200) assert.deepEqual(res.json.items, []);
        tally('4. ?tag= abuse');
      }
      // every other documented parameter has a form: metacharacters in it are 400
      const params = [['/api/v1/notes', 'limit'], ['/api/v1/notes', 'cursor'], ['/api/v1/notes', 'pinned'], ['/api/v1/feedings', 'limit'],
        ['/api/v1/feedings', 'cursor'], ['/api/v1/feedings', 'kind'], ['/api/v1/feedings', 'from'], ['/api/v1/feedings', 'to'], ['/api/v1/stats/feedings', 'days']];
      for (const [path, name] of params) {
        for (const v of [...PAYLOADS, '1 OR 1=1', '1)--', '-1', '1e2', '0x10', 'x'.repeat(5000)]) {
          const res = await call(srv, 'GET', `${path}?${name}=${encodeURIComponent(v)}`, { token: D.token });
          if (res.status !== 400) bad.push(`${path}?${name}=${JSON.stringify(v.slice(0, 40))}: ${res.status} (want 400)`);
          else expectProblem(res, 400, 'malformed');
          tally('4. other query parameter x payload (400)');
        }
      }
      assert.deepEqual(bad, [], `never 5xx; ?q= and ?tag= 200 or 400, other parameters 400:\n${bad.join('\n')}`);
    });

    it('User-Agent is data: every session is listed with its User-Agent, whatever the bytes', async () => {
      const owner = await register(srv);
      // [what, the header value as bytes (latin1 string), the user_agent expected back or null]
      const cases = PAYLOADS.filter((p) => !/[\x00-\x08\x0a-\x1f\x7f-\x9f]/.test(p)).map((p) => [JSON.stringify(p), Buffer.from(p, 'utf8').toString('latin1'), p]);
      cases.push(['a lone 0xFF byte', 'agent \xff\xfe', null], ['a truncated sequence', 'agent \xc3\x28', null],
        ['an encoded surrogate', 'agent \xed\xa0\x80', null], ['a code point over U+10FFFF', 'agent \xf4\x90\x80\x80', null],
        ['an overlong encoding', 'agent \xc0\xaf', null]);
      for (const [what, ua] of cases) {
        const body = JSON.stringify({ email: owner.email, password: PASSWORD });
        const res = await raw(srv.port, [`POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: ${ua}\r\n`
          + `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`], { responses: 1 });
        assert.equal(res.responses[0]?.status, 200, `login with a User-Agent of ${what}`);
        tally('4. payload x writable field');
      }
      const list = expectStatus(await call(srv, 'GET', '/api/v1/auth/sessions', { token: owner.token }), 200).json.items;
      const missing = [];
      for (const [what, , expected] of cases) {
        if (expected !== null && !list.some((s) => s.user_agent === expected)) missing.push(what);
      }
      assert.equal(list.length, 1 + cases.length,
        `every session is listed (a session the owner cannot see, they cannot revoke): ${list.length} of ${1 + cases.length}; UAs listed: ${JSON.stringify(list.map((s) => s.user_agent))}`);
      for (const s of list) assert.equal(typeof s.user_agent, 'string');
      assert.deepEqual(missing, [], 'valid UTF-8 User-Agents are answered byte for byte');
    });

    it('afterwards every table still exists and holds its rows', () => {
      assert.deepEqual(publicTables(), tablesBefore, 'public tables unchanged');
      for (const t of tablesBefore) assert.match(psql(`SELECT count(*) FROM "${t}"`), /^\d+$/);
      assert.ok(Number(psql('SELECT count(*) FROM users')) > 0);
      assert.ok(Number(psql(`SELECT count(*) FROM notes WHERE created_by = '${D.user.id}'`)) > PAYLOADS.length);
    });
  });

  it('6. hygiene held on every response above (headers; no SQL, paths or traces in problem bodies)', () => {
    const total = Object.values(stats.combos).reduce((a, b) => a + b, 0);
    for (const [k, v] of Object.entries(stats.combos)) console.log(`# security: ${k}: ${v}`);
    console.log(`# security: ${total} route x case combinations; ${stats.responses} responses checked for hygiene, ${stats.problems} of them problem+json`);
    assert.ok(stats.responses > 1000, `responses checked: ${stats.responses}`);
    assert.ok(stats.problems > 500, `problem bodies checked: ${stats.problems}`);
  });
});

// ---------------------------------------------------------------- 5. login timing
// Known email + wrong password vs unknown email: 15 alternating attempts each after a warm-up;
// the medians must differ by less than max(50 ms, 50% of the larger). At the test cost
// (libsodium's minimum) and at a realistic one (2 passes, 16 MiB), where skipping the hash
// for an unknown email would show as tens of milliseconds.
describe('5. login timing, known vs unknown email', () => {
  for (const [label, env] of [
    ['test cost (OPSLIMIT=1, MEMLIMIT=8 KiB)', {}],
    ['realistic cost (OPSLIMIT=2, MEMLIMIT=16 MiB)', { PULSE_ARGON2_OPSLIMIT: '2', PULSE_ARGON2_MEMLIMIT: '16777216' }],
  ]) {
    it(`answers in about the same time at the ${label}`, async (t) => {
      const srv = await serverFor(t, { ...API_ENV, ...env });
      const reg = await register(srv); // hashed at this server's cost
      const attempt = async (email) => {
        const t0 = process.hrtime.bigint();
        const r = await call(srv, 'POST', '/api/v1/auth/login', { body: { email, password: 'not the password 123' } });
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        expect401(r);
        return ms;
      };
      for (let i = 0; i < 3; i++) { await attempt(reg.email); await attempt(uniqueEmail('ghost')); }
      const known = [];
      const unknown = [];
      for (let i = 0; i < 15; i++) {
        known.push(await attempt(reg.email));
        unknown.push(await attempt(uniqueEmail('ghost')));
      }
      const mk = median(known);
      const mu = median(unknown);
      const bound = Math.max(50, 0.5 * Math.max(mk, mu));
      console.log(`# login timing at the ${label}: median known ${mk.toFixed(2)} ms, unknown ${mu.toFixed(2)} ms, |diff| ${Math.abs(mk - mu).toFixed(2)} ms, bound ${bound.toFixed(2)} ms`);
      assert.ok(Math.abs(mk - mu) < bound, `known ${mk.toFixed(2)} ms vs unknown ${mu.toFixed(2)} ms (bound ${bound.toFixed(2)} ms)`);
    });
  }
});
