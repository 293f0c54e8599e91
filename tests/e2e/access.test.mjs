// Access across care circles, table-driven over the served OpenAPI document (which a unit
// test, tests/unit/test_openapi.c, keeps equal to the route table): every operation of the
// document must have a row in ROUTES below, so a new route cannot skip these checks.
//
// For every path with an id parameter, a user of another circle gets 404 (never 403: no
// leak of ids); for every write on a subject-scoped resource, a viewer of the subject gets
// 403; an operation that is neither is listed with the reason it is exempt. Lists that take
// ?subject_id= answer 404 to an outsider and 200 to a viewer; a body naming a subject the
// caller may not see is 422 naming `subject_id`; owner-only operations are 403 to a
// caregiver too; a token restricted to another subject gets 404 on the subject's ids and
// 403 on user-wide routes; an owner naming, under their own subject, a member or an
// invitation of another circle gets 404; the order of checks holds over the table (422
// before 404 and 403, both before 412). None of the refused requests changes anything.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import {
  API_ENV, api, createToken, expect403, expect404, expect422, expectStatus, register,
} from './api.mjs';
import { circle } from './circle_fixtures.mjs';
import { useServer } from './helpers.mjs';

const WRITE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const METHODS = ['get', 'put', 'post', 'patch', 'delete', 'head', 'options'];
// "/api/v1/subjects/{id}/members/{user_id}" -> "/api/v1/subjects/{}/members/{}": the table
// does not depend on how the document names its parameters.
const shape = (template) => template.replace(/\{[^}]+\}/g, '{}');
const fill = (template, ids) => {
  let i = 0;
  const out = template.replace(/\{[^}]+\}/g, () => ids[i++]);
  assert.equal(i, ids.length, `${template}: ${ids.length} ids for ${i} parameters`);
  return out;
};

// One row per operation ("METHOD shape"). Columns (each optional, checked when present):
//   ids(fx)        the path's ids, in order (rows whose path has parameters)
//   query(fx)      a query string naming the fixture's subject (lists taking ?subject_id=)
//   body(fx)       a valid body (so that 422 does not come first)
//   outsider       404: another circle's user, with ids or query of the fixture;
//                  422: the body names a subject they may not see (errors[] names subject_id)
//   viewer         403 (a write refused) or 200/204 (a read allowed) for a viewer
//   caregiver      403 for an owner-only operation
//   token          404/403/422 for the owner's token restricted to another subject
//   invalid(fx)    a body refused with 422 (validation comes before 404 and 403)
//   ifMatch        takes If-Match: a stale one is 404 to an outsider, 403 to a viewer, 412
//                  to the owner (412 comes after 404 and 403)
//   exempt         why the outsider/viewer checks do not apply (required when they are absent
//                  but the row has path ids, resp. is a write)
const FX_NOTE = (fx) => [fx.note.id];
const FX_FEEDING = (fx) => [fx.feeding.id];
const FX_SUBJECT = (fx) => [fx.subject.id];
const SUBJECT_QUERY = (fx) => `?subject_id=${fx.subject.id}`;
const NOT_SUBJECT = 'user-level: not in any circle';

const ROUTES = {
  // operations and documents: no user data
  'GET /health/live': { exempt: 'operations probe, no user data' },
  'GET /health/ready': { exempt: 'operations probe, no user data' },
  'GET /metrics': { exempt: 'operations metrics, no user data' },
  'GET /api/v1/openapi.json': { exempt: 'public document' },
  'GET /api/v1/health/scaling': { exempt: 'operations probe, no user data' },
  // accounts: the caller's own, user-level
  'POST /api/v1/auth/register': { exempt: 'no caller yet' },
  'POST /api/v1/auth/login': { exempt: 'no caller yet' },
  'POST /api/v1/auth/logout': { exempt: `the caller's own session; ${NOT_SUBJECT}` },
  'GET /api/v1/auth/sessions': { exempt: `the caller's own sessions; ${NOT_SUBJECT}` },
  'DELETE /api/v1/auth/sessions/{}': { ids: (fx) => [fx.ownerSessionId], outsider: 404, exempt: NOT_SUBJECT },
  'POST /api/v1/auth/password': { exempt: `the caller's own password; ${NOT_SUBJECT}` },
  'POST /api/v1/tokens': { exempt: `the caller's own tokens; ${NOT_SUBJECT}` },
  'GET /api/v1/tokens': { exempt: `the caller's own tokens; ${NOT_SUBJECT}` },
  'DELETE /api/v1/tokens/{}': { ids: (fx) => [fx.ownerTokenId], outsider: 404, exempt: NOT_SUBJECT },
  'GET /api/v1/me': { exempt: `the caller's own account; ${NOT_SUBJECT}` },
  'PATCH /api/v1/me': { exempt: `the caller's own account (its default subject is theirs: circles.test.mjs); ${NOT_SUBJECT}` },
  'DELETE /api/v1/me': { exempt: `the caller's own account; ${NOT_SUBJECT}` },
  'GET /api/v1/me/export': { token: 403, exempt: `the caller's own data; ${NOT_SUBJECT}` },
  'GET /api/v1/live': { exempt: 'the caller\'s own socket; circle events: live_circles.test.mjs' },
  'POST /api/v1/live/ticket': { exempt: `the caller's own ticket; ${NOT_SUBJECT}` },
  // notes
  'GET /api/v1/notes': { query: SUBJECT_QUERY, outsider: 404, viewer: 200, token: 404 },
  'POST /api/v1/notes': { body: (fx) => ({ subject_id: fx.subject.id, title: 'not allowed' }), outsider: 422, viewer: 403, token: 422 },
  'GET /api/v1/notes/{}': { ids: FX_NOTE, outsider: 404, viewer: 200, token: 404 },
  'PATCH /api/v1/notes/{}': { ids: FX_NOTE, body: () => ({ title: 'changed' }), invalid: () => ({ title: '' }), ifMatch: true, outsider: 404, viewer: 403, token: 404 },
  'DELETE /api/v1/notes/{}': { ids: FX_NOTE, ifMatch: true, outsider: 404, viewer: 403, token: 404 },
  'GET /api/v1/tags': { query: SUBJECT_QUERY, outsider: 404, viewer: 200, token: 404 },
  // feedings
  'GET /api/v1/feedings': { query: SUBJECT_QUERY, outsider: 404, viewer: 200, token: 404 },
  'POST /api/v1/feedings': { body: (fx) => ({ subject_id: fx.subject.id, amount_ml: 10 }), outsider: 422, viewer: 403, token: 422 },
  'GET /api/v1/feedings/today': { query: SUBJECT_QUERY, outsider: 404, viewer: 200, token: 404 },
  'GET /api/v1/feedings/timeline': { query: SUBJECT_QUERY, outsider: 404, viewer: 200, token: 404 },
  'GET /api/v1/feedings/{}': { ids: FX_FEEDING, outsider: 404, viewer: 200, token: 404 },
  'PATCH /api/v1/feedings/{}': { ids: FX_FEEDING, body: () => ({ amount_ml: 99 }), invalid: () => ({ amount_ml: 0 }), ifMatch: true, outsider: 404, viewer: 403, token: 404 },
  'DELETE /api/v1/feedings/{}': { ids: FX_FEEDING, ifMatch: true, outsider: 404, viewer: 403, token: 404 },
  'GET /api/v1/stats/feedings': { query: SUBJECT_QUERY, outsider: 404, viewer: 200, token: 404 },
  // subjects, members, invitations
  'GET /api/v1/subjects': { exempt: 'lists the caller\'s own subjects (checked below: an outsider\'s list lacks the subject)' },
  'POST /api/v1/subjects': { body: () => ({ name: 'Mine' }), token: 403, exempt: 'creates a new subject owned by the caller' },
  'GET /api/v1/subjects/{}': { ids: FX_SUBJECT, outsider: 404, viewer: 200, token: 404 },
  'PATCH /api/v1/subjects/{}': { ids: FX_SUBJECT, body: () => ({ name: 'Renamed' }), invalid: () => ({ name: '' }), ifMatch: true, outsider: 404, viewer: 403, caregiver: 403, token: 404 },
  'DELETE /api/v1/subjects/{}': { ids: FX_SUBJECT, ifMatch: true, outsider: 404, viewer: 403, caregiver: 403, token: 404 },
  'GET /api/v1/subjects/{}/members': { ids: FX_SUBJECT, outsider: 404, viewer: 200, token: 404 },
  'PATCH /api/v1/subjects/{}/members/{}': {
    ids: (fx) => [fx.subject.id, fx.owner.user.id], body: () => ({ role: 'caregiver' }), invalid: () => ({ role: 'boss' }), outsider: 404, viewer: 403, caregiver: 403, token: 404,
  },
  'DELETE /api/v1/subjects/{}/members/{}': {
    ids: (fx) => [fx.subject.id, fx.owner.user.id], outsider: 404, viewer: 403, caregiver: 403, token: 404,
  },
  'POST /api/v1/subjects/{}/invitations': {
    ids: FX_SUBJECT, body: () => ({ role: 'viewer' }), invalid: () => ({ role: 'owner' }), outsider: 404, viewer: 403, caregiver: 403, token: 404,
  },
  'GET /api/v1/subjects/{}/invitations': { ids: FX_SUBJECT, outsider: 404, viewer: 403, caregiver: 403, token: 404 },
  'DELETE /api/v1/subjects/{}/invitations/{}': {
    ids: (fx) => [fx.subject.id, fx.invitation.id], outsider: 404, viewer: 403, caregiver: 403, token: 404,
  },
  'POST /api/v1/invitations/accept': { body: () => ({ code: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }), token: 403, exempt: 'user-wide: any signed-in user may accept a code (expiry, reuse, revocation: circles.test.mjs)' },
};

// The request of a row for one actor (a token).
function request(srv, op, row, fx, token, { body = row.body, headers } = {}) {
  const [method, template] = [op.method, op.template];
  let path = row.ids ? fill(template, row.ids(fx)) : template;
  if (row.query) path += row.query(fx);
  const opts = { token, headers };
  if (body) opts.body = body(fx);
  return api(srv, method, path, opts);
}

function expectOutcome(r, expected, who) {
  const where = `${who}: ${r.method} ${r.path} -> ${r.status} ${r.text.slice(0, 300)}`;
  if (expected === 404) expect404(r);
  else if (expected === 403) expect403(r);
  else if (expected === 422) expect422(r, 'subject_id');
  else assert.equal(r.status, expected, where);
}

describe('access across circles, over every route of the OpenAPI document', () => {
  const srv = useServer({ ...API_ENV });
  let ops; // [{ method, template, key }] from the served document
  let fx; // the fixture: a circle with a record of each kind, and outsiders

  before(async () => {
    const doc = await api(srv, 'GET', '/api/v1/openapi.json');
    expectStatus(doc, 200);
    ops = [];
    for (const [template, item] of Object.entries(doc.json.paths)) {
      for (const m of METHODS) {
        if (item[m]) ops.push({ method: m.toUpperCase(), template, key: `${m.toUpperCase()} ${shape(template)}` });
      }
    }

    // owner O with subject S; caregiver G and viewer V in it; outsider C in a circle of their own
    const c = await circle(srv, ['caregiver', 'viewer']);
    const outsider = await register(srv, { display_name: 'Outsider' });
    const { owner, subject } = c;
    const note = await api(srv, 'POST', '/api/v1/notes', { token: owner.token, body: { subject_id: subject.id, title: 'in S', tags: ['s'] } });
    expectStatus(note, 201);
    const feeding = await api(srv, 'POST', '/api/v1/feedings', { token: owner.token, body: { subject_id: subject.id, amount_ml: 120 } });
    expectStatus(feeding, 201);
    const inv = await api(srv, 'POST', `/api/v1/subjects/${subject.id}/invitations`, { token: owner.token, body: { role: 'caregiver' } });
    expectStatus(inv, 201);
    const sessions = await api(srv, 'GET', '/api/v1/auth/sessions', { token: owner.token });
    expectStatus(sessions, 200);
    const ownerToken = await createToken(srv, owner.token, { name: 'owner token' });
    // the owner's own token, restricted to their default subject (not S)
    assert.ok(owner.user.default_subject_id, 'register answers user.default_subject_id');
    assert.notEqual(owner.user.default_subject_id, subject.id);
    const restricted = await createToken(srv, owner.token, { name: 'restricted', subject_ids: [owner.user.default_subject_id] });
    fx = {
      owner, subject, outsider, caregiver: c.members.caregiver, viewer: c.members.viewer,
      note: note.json, feeding: feeding.json, invitation: inv.json,
      ownerSessionId: sessions.json.items.find((s) => s.current).id,
      ownerTokenId: ownerToken.id,
      restricted,
    };
  });

  // What the owner sees of everything a refused request could have changed.
  async function snapshot() {
    const { owner, subject } = fx;
    const get = async (path) => {
      const r = await api(srv, 'GET', path, { token: owner.token });
      expectStatus(r, 200);
      return r.json;
    };
    const s = await get(`/api/v1/subjects/${subject.id}`);
    const members = (await get(`/api/v1/subjects/${subject.id}/members`)).items.map((m) => `${m.user_id}:${m.role}`).sort();
    const invitations = (await get(`/api/v1/subjects/${subject.id}/invitations`)).items.map((i) => i.id).sort();
    const note = await get(`/api/v1/notes/${fx.note.id}`);
    const feeding = await get(`/api/v1/feedings/${fx.feeding.id}`);
    const notes = (await get(`/api/v1/notes?subject_id=${subject.id}`)).items.length;
    const feedings = (await get(`/api/v1/feedings?subject_id=${subject.id}`)).items.length;
    const sessions = (await get('/api/v1/auth/sessions')).items.map((x) => x.id).sort();
    const tokens = (await get('/api/v1/tokens')).items.map((x) => x.id).sort();
    const subjects = (await get('/api/v1/subjects')).items.map((x) => x.id).sort();
    return { subject: [s.name, s.version], members, invitations, note: [note.title, note.version], feeding: [feeding.amount_ml, feeding.version], notes, feedings, sessions, tokens, subjects };
  }

  it('every operation of the document has a row, every row an operation; ids and writes are covered or exempt with a reason', () => {
    const keys = new Set(ops.map((o) => o.key));
    const missing = ops.filter((o) => !ROUTES[o.key]).map((o) => o.key);
    assert.deepEqual(missing, [], 'operations of the OpenAPI document without a row in ROUTES (add one: checks, or exempt with a reason)');
    const stale = Object.keys(ROUTES).filter((k) => !keys.has(k));
    assert.deepEqual(stale, [], 'rows of ROUTES for operations the document no longer has');
    for (const o of ops) {
      const row = ROUTES[o.key];
      const hasIds = o.template.includes('{');
      if (hasIds) {
        assert.ok(row.ids, `${o.key}: the path has ids, the row gives none`);
        assert.ok(row.outsider === 404 || (typeof row.exempt === 'string' && row.exempt.length > 10), `${o.key}: a path with ids needs outsider: 404 or an exempt reason`);
      }
      if (WRITE.has(o.method)) {
        assert.ok(row.viewer === 403 || (typeof row.exempt === 'string' && row.exempt.length > 10), `${o.key}: a write needs viewer: 403 or an exempt reason`);
      }
      if (!hasIds && !WRITE.has(o.method) && !row.query) {
        assert.ok(typeof row.exempt === 'string' && row.exempt.length > 10, `${o.key}: needs a check or an exempt reason`);
      }
    }
  });

  it('a user of another circle gets 404 for every id of the circle (422 naming subject_id in a body), and nothing changes', async () => {
    const before0 = await snapshot();
    const done = [];
    for (const o of ops) {
      const row = ROUTES[o.key];
      if (row?.outsider === undefined) continue;
      const r = await request(srv, o, row, fx, fx.outsider.token);
      expectOutcome(r, row.outsider, 'outsider');
      done.push(o.key);
    }
    assert.ok(done.length >= 20, `only ${done.length} operations checked`);
    console.log(`# outsider: ${done.length} operations refused (of ${ops.length} in the document)`);
    // the outsider's own list of subjects does not hold S
    const mine = await api(srv, 'GET', '/api/v1/subjects', { token: fx.outsider.token });
    expectStatus(mine, 200);
    assert.ok(!mine.json.items.some((s) => s.id === fx.subject.id));
    assert.deepEqual(await snapshot(), before0, 'a refused request changed something');
  });

  it('a viewer gets 403 for every write on the subject and its records, reads what members read, and nothing changes', async () => {
    const before0 = await snapshot();
    const done = [];
    for (const o of ops) {
      const row = ROUTES[o.key];
      if (row?.viewer === undefined) continue;
      const r = await request(srv, o, row, fx, fx.viewer.token);
      expectOutcome(r, row.viewer, 'viewer');
      done.push(o.key);
    }
    assert.ok(done.filter((k) => WRITE.has(k.split(' ')[0])).length >= 11, `only ${done.length} operations checked`);
    console.log(`# viewer: ${done.filter((k) => WRITE.has(k.split(' ')[0])).length} writes refused, ${done.filter((k) => !WRITE.has(k.split(' ')[0])).length} reads checked`);
    const list = await api(srv, 'GET', '/api/v1/subjects', { token: fx.viewer.token });
    expectStatus(list, 200);
    assert.equal(list.json.items.find((s) => s.id === fx.subject.id)?.role, 'viewer');
    assert.deepEqual(await snapshot(), before0, 'a refused request changed something');
  });

  it('a caregiver gets 403 for every owner-only operation, and nothing changes', async () => {
    const before0 = await snapshot();
    let n = 0;
    for (const o of ops) {
      const row = ROUTES[o.key];
      if (row?.caregiver === undefined) continue;
      expectOutcome(await request(srv, o, row, fx, fx.caregiver.token), row.caregiver, 'caregiver');
      n++;
    }
    assert.ok(n >= 7, `only ${n} operations checked`);
    assert.deepEqual(await snapshot(), before0, 'a refused request changed something');
  });

  it('the owner\'s token restricted to another subject gets 404 on this one and 403 on user-wide routes, and nothing changes', async () => {
    const before0 = await snapshot();
    let n = 0;
    for (const o of ops) {
      const row = ROUTES[o.key];
      if (row?.token === undefined) continue;
      expectOutcome(await request(srv, o, row, fx, fx.restricted.token), row.token, 'restricted token');
      n++;
    }
    assert.ok(n >= 20, `only ${n} operations checked`);
    // the same token reads its own subject, and lists only it
    const list = await api(srv, 'GET', '/api/v1/subjects', { token: fx.restricted.token });
    expectStatus(list, 200);
    assert.deepEqual(list.json.items.map((s) => s.id), [fx.owner.user.default_subject_id]);
    expectStatus(await api(srv, 'GET', `/api/v1/feedings?subject_id=${fx.owner.user.default_subject_id}`, { token: fx.restricted.token }), 200);
    assert.deepEqual(await snapshot(), before0, 'a refused request changed something');
  });

  it('an owner naming, under their own subject, a member or an invitation of another circle gets 404, and nothing changes', async () => {
    const before0 = await snapshot();
    const own = fx.outsider.user.default_subject_id;
    let n = 0;
    for (const o of ops) {
      const row = ROUTES[o.key];
      if (!row?.ids || !o.template.startsWith('/api/v1/subjects/{')) continue;
      const ids = row.ids(fx);
      if (ids.length < 2) continue;
      const mixed = { ...row, ids: () => [own, ...ids.slice(1)] };
      expectOutcome(await request(srv, o, mixed, fx, fx.outsider.token), 404, 'owner of another subject');
      n++;
    }
    assert.ok(n >= 3, `only ${n} operations checked`);
    assert.deepEqual(await snapshot(), before0, 'a refused request changed something');
  });

  it('the order of checks: 422 before 404 and 403; 404 and 403 before 412; nothing changes', async () => {
    const before0 = await snapshot();
    let n422 = 0;
    let n412 = 0;
    for (const o of ops) {
      const row = ROUTES[o.key];
      if (!row) continue;
      if (row.invalid) {
        for (const [who, token] of [['outsider', fx.outsider.token], ['viewer', fx.viewer.token]]) {
          const r = await request(srv, o, row, fx, token, { body: row.invalid });
          assert.equal(r.status, 422, `${who}, invalid body: ${r.method} ${r.path} -> ${r.status} ${r.text.slice(0, 300)}`);
        }
        n422++;
      }
      if (row.ifMatch) {
        const stale = { headers: { 'If-Match': '"999"' } };
        expectOutcome(await request(srv, o, row, fx, fx.outsider.token, stale), 404, 'outsider, stale If-Match');
        expectOutcome(await request(srv, o, row, fx, fx.viewer.token, stale), 403, 'viewer, stale If-Match');
        const r = await request(srv, o, row, fx, fx.owner.token, stale);
        assert.equal(r.status, 412, `owner, stale If-Match: ${r.method} ${r.path} -> ${r.status} ${r.text.slice(0, 300)}`);
        n412++;
      }
    }
    assert.ok(n422 >= 5 && n412 >= 6, `${n422} validation and ${n412} If-Match rows`);
    assert.deepEqual(await snapshot(), before0, 'a refused request changed something');
  });

  it('the owner may do what the others were refused (the fixture\'s ids are live)', async () => {
    const { owner, subject } = fx;
    for (const path of [`/api/v1/subjects/${subject.id}`, `/api/v1/notes/${fx.note.id}`, `/api/v1/feedings/${fx.feeding.id}`,
      `/api/v1/subjects/${subject.id}/members`, `/api/v1/subjects/${subject.id}/invitations`]) {
      expectStatus(await api(srv, 'GET', path, { token: owner.token }), 200);
    }
    expectStatus(await api(srv, 'DELETE', `/api/v1/subjects/${subject.id}/invitations/${fx.invitation.id}`, { token: owner.token }), 204);
    expectStatus(await api(srv, 'PATCH', `/api/v1/notes/${fx.note.id}`, { token: owner.token, body: { title: 'by the owner' } }), 200);
    // a caregiver may write records (the viewer's 403 is about the role, not records)
    expectStatus(await api(srv, 'PATCH', `/api/v1/feedings/${fx.feeding.id}`, { token: fx.caregiver.token, body: { amount_ml: 130 } }), 200);
    // and deleting the subject takes its records with it
    expectStatus(await api(srv, 'DELETE', `/api/v1/subjects/${subject.id}`, { token: owner.token }), 204);
    for (const path of [`/api/v1/subjects/${subject.id}`, `/api/v1/notes/${fx.note.id}`, `/api/v1/feedings/${fx.feeding.id}`]) {
      expect404(await api(srv, 'GET', path, { token: owner.token }));
      expect404(await api(srv, 'GET', path, { token: fx.viewer.token }));
    }
  });
});
