// Care circles (contract "Care circles"): subjects, members and roles, invitations, the default
// subject, tokens restricted to subjects, quotas, events, export and account deletion.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import {
  API_ENV, PASSWORD, TS_RE, UUID_RE, api, createToken, expect403, expect404, expect422, expectProblem,
  expectStatus, flushRedisDb, psql, redisSubscribe, redisUrlWithDb, register, uniqueEmail,
} from './api.mjs';
import WebSocket from 'ws';

import { requireEnv, useServer } from './helpers.mjs';

const SUBJECT_KEYS = ['birth_date', 'created_at', 'daily_target_ml', 'id', 'kind', 'member_count', 'name', 'role',
  'timezone', 'updated_at', 'version'];
const MEMBER_KEYS = ['display_name', 'email', 'joined_at', 'role', 'user_id'];
const INVITATION_KEYS = ['created_at', 'created_by', 'expires_at', 'id', 'role'];
const CODE_RE = /^[A-Za-z0-9_-]{22,}$/;

const subjects = (srv, u) => api(srv, 'GET', '/api/v1/subjects', { token: u.token });
async function createSubject(srv, u, body = {}) {
  const r = await api(srv, 'POST', '/api/v1/subjects', { token: u.token, body: { name: 'Twin A', ...body } });
  expectStatus(r, 201);
  return r.json;
}
async function invite(srv, u, subjectId, body = { role: 'caregiver' }) {
  const r = await api(srv, 'POST', `/api/v1/subjects/${subjectId}/invitations`, { token: u.token, body });
  expectStatus(r, 201);
  return r.json;
}
const accept = (srv, u, code) => api(srv, 'POST', '/api/v1/invitations/accept', { token: u.token, body: { code } });
async function join(srv, owner, subjectId, u, role = 'caregiver') {
  const inv = await invite(srv, owner, subjectId, { role });
  expectStatus(await accept(srv, u, inv.code), 200);
}
// psql's answer to INSERT ... RETURNING id: the id (its first line)
const insert = (sql) => psql(sql).split('\n')[0];
const me = async (srv, u) => expectStatus(await api(srv, 'GET', '/api/v1/me', { token: u.token }), 200).json;

describe('care circles', () => {
  const srv = useServer({ ...API_ENV });

  test('registration creates an owned default subject; the user shows it and its target', async () => {
    const a = await register(srv, { display_name: 'Ann', timezone: 'Europe/Paris' });
    assert.match(a.user.default_subject_id, UUID_RE);
    assert.equal(a.user.daily_target_ml, 0);
    const l = expectStatus(await subjects(srv, a), 200).json.items;
    assert.equal(l.length, 1);
    assert.deepEqual(Object.keys(l[0]).sort(), SUBJECT_KEYS);
    assert.equal(l[0].id, a.user.default_subject_id);
    assert.equal(l[0].name, 'Ann');
    assert.equal(l[0].kind, 'other');
    assert.equal(l[0].timezone, 'Europe/Paris');
    assert.equal(l[0].role, 'owner');
    assert.equal(l[0].member_count, 1);
    assert.equal(l[0].birth_date, null);
    const anon = await register(srv);
    const l2 = (await subjects(srv, anon)).json.items;
    assert.equal(l2[0].name, 'My log');
    assert.equal(l2[0].timezone, 'UTC');
    // GET /me and login show the same
    assert.equal((await me(srv, a)).default_subject_id, a.user.default_subject_id);
    const li = expectStatus(await api(srv, 'POST', '/api/v1/auth/login', { body: { email: a.email, password: PASSWORD } }), 200);
    assert.equal(li.json.user.default_subject_id, a.user.default_subject_id);
  });

  test('POST /subjects: 201 with Location and ETag, defaults, 422s; GET and the list, oldest first', async () => {
    const a = await register(srv, { timezone: 'Asia/Tokyo' });
    const r = await api(srv, 'POST', '/api/v1/subjects', { token: a.token, body: { name: 'Milo', kind: 'cat', birth_date: '2024-02-29' } });
    expectStatus(r, 201);
    assert.equal(r.headers.location, `/api/v1/subjects/${r.json.id}`);
    assert.equal(r.headers.etag, '"1"');
    assert.deepEqual(Object.keys(r.json).sort(), SUBJECT_KEYS);
    assert.equal(r.json.timezone, 'Asia/Tokyo');
    assert.equal(r.json.daily_target_ml, 0);
    assert.equal(r.json.birth_date, '2024-02-29');
    assert.equal(r.json.role, 'owner');
    assert.equal(r.json.member_count, 1);
    assert.match(r.json.created_at, TS_RE);
    const d = await createSubject(srv, a, { name: 'Rex', kind: 'dog', timezone: 'Europe/Paris', daily_target_ml: 500 });
    assert.equal(d.kind, 'dog');
    assert.equal(d.timezone, 'Europe/Paris');
    assert.equal(d.daily_target_ml, 500);
    assert.equal((await createSubject(srv, a, { name: 'x' })).kind, 'other');
    const g = expectStatus(await api(srv, 'GET', `/api/v1/subjects/${r.json.id}`, { token: a.token }), 200);
    assert.deepEqual(g.json, r.json);
    assert.equal(g.headers.etag, '"1"');
    const list = (await subjects(srv, a)).json.items.map((s) => s.id);
    assert.deepEqual(list, [a.user.default_subject_id, r.json.id, d.id, list[3]]);
    const bad = [
      [{}, 'name'], [{ name: '' }, 'name'], [{ name: 'x'.repeat(81) }, 'name'], [{ name: 'a', kind: 'fish' }, 'kind'],
      [{ name: 'a', birth_date: '2023-02-29' }, 'birth_date'], [{ name: 'a', birth_date: '2023-1-01' }, 'birth_date'],
      [{ name: 'a', timezone: 'Mars/Base' }, 'timezone'], [{ name: 'a', daily_target_ml: 10001 }, 'daily_target_ml'],
      [{ name: 'a', role: 'owner' }, 'role'], [{ name: 'a', id: r.json.id }, 'id'], [{ name: 'a', color: 'red' }, 'color'],
    ];
    for (const [body, field] of bad) expect422(await api(srv, 'POST', '/api/v1/subjects', { token: a.token, body }), field);
    assert.equal((await subjects(srv, a)).json.items.length, 4, 'a refused create changed nothing');
    expect404(await api(srv, 'GET', '/api/v1/subjects/not-a-uuid', { token: a.token }));
    expect404(await api(srv, 'GET', '/api/v1/subjects/00000000-0000-4000-8000-000000000000', { token: a.token }));
    expectProblem(await api(srv, 'GET', '/api/v1/subjects'), 401, 'unauthorized');
  });

  test('PATCH and DELETE /subjects/{id}: owner only, If-Match, ETag; other circles get 404', async () => {
    const a = await register(srv);
    const b = await register(srv);
    const c = await register(srv);
    const s = await createSubject(srv, a);
    await join(srv, a, s.id, b, 'caregiver');
    const p = expectStatus(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}`, { token: a.token, body: { name: 'Twin B', birth_date: '2025-01-02' }, headers: { 'If-Match': '"1"' } }), 200);
    assert.equal(p.json.name, 'Twin B');
    assert.equal(p.json.birth_date, '2025-01-02');
    assert.equal(p.json.version, 2);
    assert.equal(p.json.member_count, 2);
    assert.equal(p.headers.etag, '"2"');
    expectProblem(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}`, { token: a.token, body: { name: 'x' }, headers: { 'If-Match': '"1"' } }), 412, 'precondition-failed');
    const cleared = expectStatus(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}`, { token: a.token, body: { birth_date: null } }), 200);
    assert.equal(cleared.json.birth_date, null);
    assert.equal(cleared.json.name, 'Twin B');
    const noop = expectStatus(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}`, { token: a.token, body: {} }), 200);
    assert.equal(noop.json.version, 3);
    expect422(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}`, { token: a.token, body: { version: 9 } }), 'version');
    expect422(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}`, { token: a.token, body: { name: null } }), 'name');
    // a caregiver reads but cannot edit or delete; an outsider sees nothing
    const bg = expectStatus(await api(srv, 'GET', `/api/v1/subjects/${s.id}`, { token: b.token }), 200);
    assert.equal(bg.json.role, 'caregiver');
    expect403(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}`, { token: b.token, body: { name: 'mine' } }));
    expect403(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}`, { token: b.token, body: {} }));
    expect403(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}`, { token: b.token }));
    expect404(await api(srv, 'GET', `/api/v1/subjects/${s.id}`, { token: c.token }));
    expect404(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}`, { token: c.token, body: { name: 'x' } }));
    expect404(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}`, { token: c.token }));
    // 422 before 404: a bad body to a subject one cannot see
    expect422(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}`, { token: c.token, body: { kind: 'fish' } }), 'kind');
    assert.equal(psql(`SELECT name FROM subjects WHERE id = '${s.id}'`), 'Twin B');
    // its records go with it
    psql(`INSERT INTO notes (subject_id, created_by, title) VALUES ('${s.id}', '${b.user.id}', 'n')`);
    psql(`INSERT INTO feedings (subject_id, created_by, amount_ml) VALUES ('${s.id}', '${a.user.id}', 90)`);
    expectProblem(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}`, { token: a.token, headers: { 'If-Match': '"1"' } }), 412, 'precondition-failed');
    expectStatus(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}`, { token: a.token, headers: { 'If-Match': '"3"' } }), 204);
    expect404(await api(srv, 'GET', `/api/v1/subjects/${s.id}`, { token: a.token }));
    expect404(await api(srv, 'GET', `/api/v1/subjects/${s.id}`, { token: b.token }));
    assert.equal(psql(`SELECT (SELECT count(*) FROM notes WHERE subject_id = '${s.id}') + (SELECT count(*) FROM feedings WHERE subject_id = '${s.id}') + (SELECT count(*) FROM subject_members WHERE subject_id = '${s.id}') + (SELECT count(*) FROM invitations WHERE subject_id = '${s.id}')`), '0');
    expect404(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}`, { token: a.token }));
  });

  test('invitations: create (owner, code shown once), list, accept once, reuse, expiry, revocation', async () => {
    const a = await register(srv, { display_name: 'Ann' });
    const b = await register(srv, { display_name: 'Bob' });
    const c = await register(srv);
    const s = await createSubject(srv, a, { name: 'Twins' });
    const r = await api(srv, 'POST', `/api/v1/subjects/${s.id}/invitations`, { token: a.token, body: { role: 'viewer', expires_in_hours: 2 } });
    expectStatus(r, 201);
    assert.deepEqual(Object.keys(r.json).sort(), [...INVITATION_KEYS, 'code'].sort());
    assert.match(r.json.code, CODE_RE);
    assert.equal(r.json.role, 'viewer');
    assert.deepEqual(r.json.created_by, { id: a.user.id, display_name: 'Ann' });
    const hours = (Date.parse(r.json.expires_at) - Date.parse(r.json.created_at)) / 3600e3;
    assert.ok(Math.abs(hours - 2) < 0.01, `expires in ${hours} h`);
    assert.equal(r.headers['cache-control'], 'no-store');
    // only the SHA-256 of the code is stored
    assert.equal(psql(`SELECT count(*) FROM invitations WHERE code_hash = sha256(convert_to('${r.json.code}', 'UTF8'))`), '1');
    assert.equal(psql(`SELECT count(*) FROM invitations WHERE encode(code_hash, 'escape') LIKE '%${r.json.code}%'`), '0');
    const def = await invite(srv, a, s.id, { role: 'caregiver' });
    assert.ok(Math.abs((Date.parse(def.expires_at) - Date.parse(def.created_at)) / 3600e3 - 72) < 0.01, 'default 72 h');
    assert.notEqual(def.code, r.json.code);
    for (const [body, field] of [[{ role: 'owner' }, 'role'], [{}, 'role'], [{ role: 'viewer', expires_in_hours: 0 }, 'expires_in_hours'],
      [{ role: 'viewer', expires_in_hours: 169 }, 'expires_in_hours'], [{ role: 'viewer', code: 'x' }, 'code']]) {
      expect422(await api(srv, 'POST', `/api/v1/subjects/${s.id}/invitations`, { token: a.token, body }), field);
    }
    const list = expectStatus(await api(srv, 'GET', `/api/v1/subjects/${s.id}/invitations`, { token: a.token }), 200).json.items;
    assert.deepEqual(list.map((i) => i.id), [r.json.id, def.id]);
    for (const i of list) assert.deepEqual(Object.keys(i).sort(), INVITATION_KEYS);
    // not the owner: 404 outside the circle, 403 inside
    expect404(await api(srv, 'GET', `/api/v1/subjects/${s.id}/invitations`, { token: b.token }));
    expect404(await api(srv, 'POST', `/api/v1/subjects/${s.id}/invitations`, { token: b.token, body: { role: 'viewer' } }));
    // accept: 200 subject with the invitation's role; the list shows it
    const ok = expectStatus(await accept(srv, b, r.json.code), 200);
    assert.deepEqual(Object.keys(ok.json).sort(), SUBJECT_KEYS);
    assert.equal(ok.json.id, s.id);
    assert.equal(ok.json.role, 'viewer');
    assert.equal(ok.json.member_count, 2);
    assert.deepEqual((await subjects(srv, b)).json.items.map((x) => x.id), [b.user.default_subject_id, s.id]);
    expect403(await api(srv, 'GET', `/api/v1/subjects/${s.id}/invitations`, { token: b.token }));
    expect403(await api(srv, 'POST', `/api/v1/subjects/${s.id}/invitations`, { token: b.token, body: { role: 'viewer' } }));
    expect403(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}/invitations/${def.id}`, { token: b.token }));
    // used: gone from the list, and 404 for anyone; already a member: 409 (the code stays usable)
    assert.deepEqual((await api(srv, 'GET', `/api/v1/subjects/${s.id}/invitations`, { token: a.token })).json.items.map((i) => i.id), [def.id]);
    expect404(await accept(srv, c, r.json.code));
    expect404(await accept(srv, b, r.json.code));
    expectProblem(await accept(srv, b, def.code), 409, 'conflict');
    expectProblem(await accept(srv, a, def.code), 409, 'conflict');
    // expired: 404 like unknown
    psql(`UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = '${def.id}'`);
    expect404(await accept(srv, c, def.code));
    assert.deepEqual((await api(srv, 'GET', `/api/v1/subjects/${s.id}/invitations`, { token: a.token })).json.items, []);
    // revoked: 204, then 404 to accept and to delete again
    const third = await invite(srv, a, s.id);
    expectStatus(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}/invitations/${third.id}`, { token: a.token }), 204);
    expect404(await accept(srv, c, third.code));
    expect404(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}/invitations/${third.id}`, { token: a.token }));
    expect404(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}/invitations/nope`, { token: a.token }));
    // unknown codes, of any shape
    for (const code of ['x', 'A'.repeat(32), third.code.slice(1), `${third.code}=`]) expect404(await accept(srv, c, code));
    expect422(await accept(srv, c, ''), 'code');
    expect422(await api(srv, 'POST', '/api/v1/invitations/accept', { token: c.token, body: {} }), 'code');
    assert.equal((await subjects(srv, c)).json.items.length, 1);
  });

  test('two accepts of one code at once: one joins, the other gets 404', async () => {
    const a = await register(srv);
    const s = await createSubject(srv, a);
    const inv = await invite(srv, a, s.id);
    const us = await Promise.all([register(srv), register(srv), register(srv)]);
    const rs = await Promise.all(us.map((u) => accept(srv, u, inv.code)));
    assert.deepEqual(rs.map((r) => r.status).sort(), [200, 404, 404]);
    assert.equal(psql(`SELECT count(*) FROM subject_members WHERE subject_id = '${s.id}'`), '2');
  });

  test('members: list, roles, the last owner, leaving and removal', async () => {
    const a = await register(srv, { display_name: 'Ann' });
    const b = await register(srv, { display_name: 'Bob' });
    const c = await register(srv);
    const s = await createSubject(srv, a);
    await join(srv, a, s.id, b, 'caregiver');
    const l = expectStatus(await api(srv, 'GET', `/api/v1/subjects/${s.id}/members`, { token: b.token }), 200).json.items;
    assert.deepEqual(l.map((m) => [m.user_id, m.role, m.email, m.display_name]),
      [[a.user.id, 'owner', a.email, 'Ann'], [b.user.id, 'caregiver', b.email, 'Bob']]);
    for (const m of l) assert.deepEqual(Object.keys(m).sort(), MEMBER_KEYS);
    expect404(await api(srv, 'GET', `/api/v1/subjects/${s.id}/members`, { token: c.token }));
    const mb = `/api/v1/subjects/${s.id}/members/${b.user.id}`;
    const ma = `/api/v1/subjects/${s.id}/members/${a.user.id}`;
    // caregivers cannot manage members
    expect403(await api(srv, 'PATCH', ma, { token: b.token, body: { role: 'viewer' } }));
    expect403(await api(srv, 'DELETE', ma, { token: b.token }));
    expect404(await api(srv, 'PATCH', mb, { token: c.token, body: { role: 'viewer' } }));
    expect422(await api(srv, 'PATCH', mb, { token: a.token, body: { role: 'boss' } }), 'role');
    expect422(await api(srv, 'PATCH', mb, { token: a.token, body: {} }), 'role');
    expect404(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}/members/${c.user.id}`, { token: a.token, body: { role: 'viewer' } }));
    expect404(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}/members/zzz`, { token: a.token, body: { role: 'viewer' } }));
    const v = expectStatus(await api(srv, 'PATCH', mb, { token: a.token, body: { role: 'viewer' } }), 200);
    assert.equal(v.json.role, 'viewer');
    assert.equal(v.json.user_id, b.user.id);
    // the last owner can neither be demoted nor leave
    expectProblem(await api(srv, 'PATCH', ma, { token: a.token, body: { role: 'caregiver' } }), 409, 'conflict');
    expectProblem(await api(srv, 'DELETE', ma, { token: a.token }), 409, 'conflict');
    // ownership moves by making another member owner
    expectStatus(await api(srv, 'PATCH', mb, { token: a.token, body: { role: 'owner' } }), 200);
    expectStatus(await api(srv, 'PATCH', ma, { token: a.token, body: { role: 'caregiver' } }), 200);
    expect403(await api(srv, 'PATCH', mb, { token: a.token, body: { role: 'viewer' } }));
    expectProblem(await api(srv, 'DELETE', mb, { token: b.token }), 409, 'conflict');
    // a member may leave; then they are an outsider
    expectStatus(await api(srv, 'DELETE', ma, { token: a.token }), 204);
    expect404(await api(srv, 'GET', `/api/v1/subjects/${s.id}`, { token: a.token }));
    expect404(await api(srv, 'DELETE', ma, { token: a.token }));
    // the owner removes anyone
    await join(srv, b, s.id, c, 'viewer');
    expectStatus(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}/members/${c.user.id}`, { token: b.token }), 204);
    expect404(await api(srv, 'GET', `/api/v1/subjects/${s.id}/members`, { token: c.token }));
    expect404(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}/members/${c.user.id}`, { token: b.token }));
  });

  test('two owners demoting each other at once: one of them stays owner', async () => {
    const a = await register(srv);
    const b = await register(srv);
    const s = await createSubject(srv, a);
    await join(srv, a, s.id, b);
    expectStatus(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}/members/${b.user.id}`, { token: a.token, body: { role: 'owner' } }), 200);
    const rs = await Promise.all([
      api(srv, 'DELETE', `/api/v1/subjects/${s.id}/members/${a.user.id}`, { token: a.token }),
      api(srv, 'PATCH', `/api/v1/subjects/${s.id}/members/${a.user.id}`, { token: b.token, body: { role: 'viewer' } }),
      api(srv, 'DELETE', `/api/v1/subjects/${s.id}/members/${b.user.id}`, { token: b.token }),
    ]);
    assert.ok(rs.some((r) => r.status === 409), rs.map((r) => r.status).join());
    assert.equal(psql(`SELECT count(*) FROM subject_members WHERE subject_id = '${s.id}' AND role = 'owner'`), '1');
  });

  test('default subject: PATCH /me rules, and the repair when it is deleted, left or removed', async () => {
    const a = await register(srv, { timezone: 'Europe/Paris' });
    const b = await register(srv, { display_name: 'Bea', timezone: 'America/New_York' });
    const outsider = await register(srv);
    const s = await createSubject(srv, a, { daily_target_ml: 300 });
    await join(srv, a, s.id, b, 'caregiver');
    // v1 behaviour on the owned default subject: target and zone go to the subject too
    const t = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: b.token, body: { daily_target_ml: 650, timezone: 'Asia/Tokyo' } }), 200);
    assert.equal(t.json.daily_target_ml, 650);
    assert.equal(t.json.timezone, 'Asia/Tokyo');
    const own = (await api(srv, 'GET', `/api/v1/subjects/${b.user.default_subject_id}`, { token: b.token })).json;
    assert.equal(own.daily_target_ml, 650);
    assert.equal(own.timezone, 'Asia/Tokyo');
    // default_subject_id: only a subject one belongs to
    expect422(await api(srv, 'PATCH', '/api/v1/me', { token: b.token, body: { default_subject_id: outsider.user.default_subject_id } }), 'default_subject_id');
    expect422(await api(srv, 'PATCH', '/api/v1/me', { token: b.token, body: { default_subject_id: 'nope' } }), 'default_subject_id');
    expect422(await api(srv, 'PATCH', '/api/v1/me', { token: b.token, body: { default_subject_id: null } }), 'default_subject_id');
    const d = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: b.token, body: { default_subject_id: s.id } }), 200);
    assert.equal(d.json.default_subject_id, s.id);
    assert.equal(d.json.daily_target_ml, 300, "the default subject's target");
    // not an owner of the default subject: the target is 403, the zone changes the user only
    expect403(await api(srv, 'PATCH', '/api/v1/me', { token: b.token, body: { daily_target_ml: 1 } }));
    expect403(await api(srv, 'PATCH', '/api/v1/me', { token: b.token, body: { default_subject_id: s.id, daily_target_ml: 1, display_name: 'no' } }));
    const z = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: b.token, body: { timezone: 'Europe/Berlin' } }), 200);
    assert.equal(z.json.timezone, 'Europe/Berlin');
    assert.equal(z.json.display_name, 'Bea');
    assert.equal(psql(`SELECT timezone || daily_target_ml FROM subjects WHERE id = '${s.id}'`), 'Europe/Paris300');
    // removed: B's default becomes their oldest remaining subject
    expectStatus(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}/members/${b.user.id}`, { token: a.token }), 204);
    assert.equal((await me(srv, b)).default_subject_id, b.user.default_subject_id);
    // left: the same
    await join(srv, a, s.id, b);
    expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: b.token, body: { default_subject_id: s.id } }), 200);
    expectStatus(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}/members/${b.user.id}`, { token: b.token }), 204);
    assert.equal((await me(srv, b)).default_subject_id, b.user.default_subject_id);
    // deleted: B deletes their own default subject, so the shared one (the only one left)
    // becomes it; then A deletes that one, and B gets a new subject of their own
    await join(srv, a, s.id, b);
    expectStatus(await api(srv, 'DELETE', `/api/v1/subjects/${b.user.default_subject_id}`, { token: b.token }), 204);
    assert.equal((await me(srv, b)).default_subject_id, s.id);
    expectStatus(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}`, { token: a.token }), 204);
    const after = await me(srv, b);
    assert.match(after.default_subject_id, UUID_RE);
    assert.ok(![s.id, b.user.default_subject_id].includes(after.default_subject_id));
    const mine = (await subjects(srv, b)).json.items;
    assert.equal(mine.length, 1);
    assert.deepEqual([mine[0].id, mine[0].role, mine[0].name, mine[0].timezone, mine[0].kind],
      [after.default_subject_id, 'owner', 'Bea', 'Europe/Berlin', 'other']);
    assert.equal(psql("SELECT count(*) FROM users WHERE default_subject_id IS NULL"), '0');
  });

  test('tokens restricted to subject_ids: 422 for foreign subjects, lists, 404s, 403 on user-wide routes', async () => {
    const a = await register(srv);
    const other = await register(srv);
    const s1 = await createSubject(srv, a, { name: 'one' });
    const s2 = await createSubject(srv, a, { name: 'two' });
    for (const subject_ids of [[other.user.default_subject_id], [s1.id, other.user.default_subject_id], ['nope'], [], 'x']) {
      expect422(await api(srv, 'POST', '/api/v1/tokens', { token: a.token, body: { name: 't', scopes: ['read', 'write'], subject_ids } }), 'subject_ids');
    }
    const plain = await createToken(srv, a.token);
    assert.equal(plain.subject_ids, null);
    const t = await createToken(srv, a.token, { subject_ids: [s1.id] });
    assert.deepEqual(t.subject_ids, [s1.id]);
    const listed = (await api(srv, 'GET', '/api/v1/tokens', { token: a.token })).json.items;
    assert.deepEqual(listed.find((x) => x.id === t.id).subject_ids, [s1.id]);
    assert.equal(listed.find((x) => x.id === plain.id).subject_ids, null);
    const rt = { token: t.token };
    assert.deepEqual((await api(srv, 'GET', '/api/v1/subjects', rt)).json.items.map((x) => x.id), [s1.id]);
    expectStatus(await api(srv, 'GET', `/api/v1/subjects/${s1.id}`, rt), 200);
    expectStatus(await api(srv, 'PATCH', `/api/v1/subjects/${s1.id}`, { ...rt, body: { name: 'uno' } }), 200);
    expectStatus(await api(srv, 'GET', `/api/v1/subjects/${s1.id}/members`, rt), 200);
    for (const [m, p, body] of [['GET', `/api/v1/subjects/${s2.id}`], ['PATCH', `/api/v1/subjects/${s2.id}`, { name: 'x' }],
      ['DELETE', `/api/v1/subjects/${s2.id}`], ['GET', `/api/v1/subjects/${s2.id}/members`],
      ['GET', `/api/v1/subjects/${a.user.default_subject_id}`], ['POST', `/api/v1/subjects/${s2.id}/invitations`, { role: 'viewer' }],
      ['GET', `/api/v1/subjects/${s2.id}/invitations`], ['DELETE', `/api/v1/subjects/${s2.id}/members/${a.user.id}`]]) {
      expect404(await api(srv, m, p, { ...rt, body }));
    }
    expect403(await api(srv, 'POST', '/api/v1/subjects', { ...rt, body: { name: 'x' } }));
    expect403(await api(srv, 'POST', '/api/v1/invitations/accept', { ...rt, body: { code: 'x' } }));
    expect403(await api(srv, 'GET', '/api/v1/me/export', rt));
    expect422(await api(srv, 'PATCH', '/api/v1/me', { ...rt, body: { default_subject_id: s2.id } }), 'default_subject_id');
    // the unrestricted token sees everything
    assert.equal((await api(srv, 'GET', '/api/v1/subjects', { token: plain.token })).json.items.length, 3);
    expectStatus(await api(srv, 'POST', '/api/v1/subjects', { token: plain.token, body: { name: 'x' } }), 201);
    // once the user leaves a subject, the token restricted to it reaches nothing there
    const b = await register(srv);
    await join(srv, a, s2.id, b);
    const bt = await createToken(srv, b.token, { subject_ids: [s2.id] });
    expectStatus(await api(srv, 'GET', `/api/v1/subjects/${s2.id}`, { token: bt.token }), 200);
    expectStatus(await api(srv, 'DELETE', `/api/v1/subjects/${s2.id}/members/${b.user.id}`, { token: a.token }), 204);
    expect404(await api(srv, 'GET', `/api/v1/subjects/${s2.id}`, { token: bt.token }));
    assert.deepEqual((await api(srv, 'GET', '/api/v1/subjects', { token: bt.token })).json.items, []);
  });

  test('a live socket of a token restricted to subject_ids hears only its subjects (and user-level events)', async () => {
    const a = await register(srv);
    const s1 = await createSubject(srv, a, { name: 'heard' });
    const s2 = await createSubject(srv, a, { name: 'not heard' });
    const t = await createToken(srv, a.token, { subject_ids: [s1.id] });
    const got = [];
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/api/v1/live?access_token=${t.token}`, { handshakeTimeout: 10000 });
    ws.on('message', (d) => got.push(JSON.parse(String(d))));
    await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
    try {
      const seen = async (pred) => {
        for (let i = 0; i < 100 && !got.some(pred); i++) await new Promise((r) => setTimeout(r, 50));
        return got.some(pred);
      };
      expectStatus(await api(srv, 'PATCH', `/api/v1/subjects/${s2.id}`, { token: a.token, body: { name: 'x2' } }), 200);
      expectStatus(await api(srv, 'PATCH', `/api/v1/subjects/${s1.id}`, { token: a.token, body: { name: 'x1' } }), 200);
      expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { display_name: 'Al' } }), 200);
      assert.ok(await seen((m) => m.event === 'subject.updated' && m.subject_id === s1.id), 'its subject');
      assert.ok(await seen((m) => m.event === 'profile.updated' && m.subject_id === null), 'user-level events');
      assert.ok(!got.some((m) => m.subject_id === s2.id), 'never another subject');
    } finally {
      ws.close();
    }
  });

  test('events: subject.updated, member.joined/updated/left and subject.deleted reach every member', async () => {
    const a = await register(srv);
    const b = await register(srv);
    const c = await register(srv);
    const s = await createSubject(srv, a);
    const sub = await redisSubscribe(requireEnv('REDIS_URL'), [a, b, c].map((u) => `pulse:user:${u.user.id}`));
    try {
      const of = (u, event) => (m) => m.channel === `pulse:user:${u.user.id}` && m.data.event === event && m.data.subject_id === s.id;
      await join(srv, a, s.id, b);
      for (const u of [a, b]) {
        const m = await sub.waitFor(of(u, 'member.joined'));
        assert.equal(m.data.type, 'event');
        assert.equal(m.data.data.user_id, b.user.id);
        assert.equal(m.data.data.role, 'caregiver');
      }
      expectStatus(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}`, { token: a.token, body: { name: 'Renamed' } }), 200);
      for (const u of [a, b]) {
        const m = await sub.waitFor(of(u, 'subject.updated'));
        assert.equal(m.data.data.name, 'Renamed');
        assert.equal(m.data.data.role, undefined, 'subject events carry no role');
        assert.equal(m.data.data.member_count, 2);
      }
      expectStatus(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}/members/${b.user.id}`, { token: a.token, body: { role: 'viewer' } }), 200);
      for (const u of [a, b]) assert.equal((await sub.waitFor(of(u, 'member.updated'))).data.data.role, 'viewer');
      expectStatus(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}/members/${b.user.id}`, { token: a.token }), 204);
      for (const u of [a, b]) assert.deepEqual((await sub.waitFor(of(u, 'member.left'))).data.data, { user_id: b.user.id });
      const nB = sub.messages.filter((m) => m.channel === `pulse:user:${b.user.id}`).length;
      expectStatus(await api(srv, 'PATCH', `/api/v1/subjects/${s.id}`, { token: a.token, body: { name: 'Again' } }), 200);
      expectStatus(await api(srv, 'DELETE', `/api/v1/subjects/${s.id}`, { token: a.token }), 204);
      const del = await sub.waitFor(of(a, 'subject.deleted'));
      assert.equal(del.data.data.id, s.id);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(sub.messages.filter((m) => m.channel === `pulse:user:${b.user.id}`).length, nB, 'nothing after member.left');
      assert.equal(sub.messages.filter((m) => m.channel === `pulse:user:${c.user.id}`).length, 0, 'outsiders hear nothing');
    } finally {
      sub.close();
    }
  });

  test('export: every subject with role and members, records of owned subjects, own records elsewhere', async () => {
    const a = await register(srv);
    const b = await register(srv);
    const owned = await createSubject(srv, a, { name: 'owned' });
    const theirs = b.user.default_subject_id;
    await join(srv, a, owned.id, b);
    await join(srv, b, theirs, a);
    const note = (sid, uid, title) => insert(`INSERT INTO notes (subject_id, created_by, title) VALUES ('${sid}', '${uid}', '${title}') RETURNING id`);
    const n1 = note(owned.id, b.user.id, 'by b in owned');
    const n2 = note(theirs, a.user.id, 'by a in theirs');
    const n3 = note(theirs, b.user.id, 'by b in theirs');
    psql(`INSERT INTO feedings (subject_id, created_by, amount_ml) VALUES ('${theirs}', '${b.user.id}', 70)`);
    const f1 = insert(`INSERT INTO feedings (subject_id, created_by, amount_ml) VALUES ('${owned.id}', '${b.user.id}', 80) RETURNING id`);
    const r = expectStatus(await api(srv, 'GET', '/api/v1/me/export', { token: a.token }), 200);
    const ex = JSON.parse(r.text);
    assert.deepEqual(ex.subjects.map((x) => [x.id, x.role]), [[a.user.default_subject_id, 'owner'], [owned.id, 'owner'], [theirs, 'caregiver']]);
    const o = ex.subjects.find((x) => x.id === owned.id);
    assert.deepEqual(o.members.map((m) => [m.user_id, m.role]), [[a.user.id, 'owner'], [b.user.id, 'caregiver']]);
    assert.deepEqual(ex.notes.map((n) => n.id).sort(), [n1, n2].sort());
    assert.ok(!ex.notes.some((n) => n.id === n3));
    assert.deepEqual(ex.feedings.map((f) => f.id), [f1]);
    assert.equal(ex.user.default_subject_id, a.user.default_subject_id);
  });

  test('account deletion: sole-owned subjects go with their records; shared ones keep records, created_by null', async () => {
    const a = await register(srv);
    const b = await register(srv);
    const sole = await createSubject(srv, a, { name: 'sole' });
    const shared = await createSubject(srv, a, { name: 'shared' });
    await join(srv, a, sole.id, b);
    await join(srv, a, shared.id, b);
    expectStatus(await api(srv, 'PATCH', `/api/v1/subjects/${shared.id}/members/${b.user.id}`, { token: a.token, body: { role: 'owner' } }), 200);
    // B's default subject is the one that goes
    expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: b.token, body: { default_subject_id: sole.id } }), 200);
    const kept = insert(`INSERT INTO notes (subject_id, created_by, title) VALUES ('${shared.id}', '${a.user.id}', 'kept') RETURNING id`);
    psql(`INSERT INTO notes (subject_id, created_by, title) VALUES ('${sole.id}', '${b.user.id}', 'gone')`);
    const sub = await redisSubscribe(requireEnv('REDIS_URL'), [`pulse:user:${b.user.id}`]);
    try {
      expectStatus(await api(srv, 'DELETE', '/api/v1/me', { token: a.token, body: { password: PASSWORD } }), 204);
      assert.equal((await sub.waitFor((m) => m.data.event === 'subject.deleted')).data.subject_id, sole.id);
      const left = (await sub.waitFor((m) => m.data.event === 'member.left')).data;
      assert.match(left.seq, /^[1-9][0-9]*$/);
      assert.deepEqual(left, { type: 'event', event: 'member.left', subject_id: shared.id, seq: left.seq, data: { user_id: a.user.id } });
    } finally {
      sub.close();
    }
    assert.equal(psql(`SELECT count(*) FROM subjects WHERE id IN ('${sole.id}', '${a.user.default_subject_id}')`), '0');
    assert.equal(psql(`SELECT count(*) FROM notes WHERE subject_id = '${sole.id}'`), '0');
    assert.equal(psql(`SELECT coalesce(created_by::text, 'null') FROM notes WHERE id = '${kept}'`), 'null');
    expectStatus(await api(srv, 'GET', `/api/v1/subjects/${shared.id}`, { token: b.token }), 200);
    assert.equal((await me(srv, b)).default_subject_id, b.user.default_subject_id, 'B got their oldest remaining subject');
  });
});

describe('care circles: quotas and the accept rate limit', () => {
  const REDIS_URL = redisUrlWithDb(7); // fresh rate-limit counters every run
  before(() => flushRedisDb(REDIS_URL));
  const srv = useServer({
    ...API_ENV, REDIS_URL, PULSE_QUOTA_SUBJECTS: '3', PULSE_QUOTA_MEMBERS: '2', PULSE_QUOTA_INVITATIONS: '2',
    PULSE_RATE_LIMITS: 'on', PULSE_RATE_INVITATION_ACCEPT: '4/3600', PULSE_RATE_REGISTER: '1000/60',
  });

  test('50 subjects, 50 members and 20 invitations by default are settings; one more is 409', async () => {
    const a = await register(srv);
    await createSubject(srv, a);
    await createSubject(srv, a);
    expectProblem(await api(srv, 'POST', '/api/v1/subjects', { token: a.token, body: { name: 'x' } }), 409, 'conflict');
    assert.equal((await subjects(srv, a)).json.items.length, 3);
    const s = (await subjects(srv, a)).json.items[1];
    const i1 = await invite(srv, a, s.id);
    const i2 = await invite(srv, a, s.id);
    expectProblem(await api(srv, 'POST', `/api/v1/subjects/${s.id}/invitations`, { token: a.token, body: { role: 'viewer' } }), 409, 'conflict');
    const b = await register(srv);
    expectStatus(await accept(srv, b, i1.code), 200);
    await invite(srv, a, s.id); // the used one no longer counts
    const c = await register(srv);
    expectProblem(await accept(srv, c, i2.code), 409, 'conflict'); // two members already
    // a user at their quota cannot join either
    const full = await register(srv);
    await createSubject(srv, full);
    await createSubject(srv, full);
    const d = await register(srv);
    const inv = await invite(srv, d, d.user.default_subject_id);
    expectProblem(await accept(srv, full, inv.code), 409, 'conflict');
  });

  test('accepting is limited per user (PULSE_RATE_INVITATION_ACCEPT), wrong codes included', async () => {
    const u = await register(srv);
    for (let i = 0; i < 4; i++) {
      const r = await api(srv, 'POST', '/api/v1/invitations/accept', { token: u.token, body: { code: `guess${i}` } });
      expect404(r);
      assert.equal(r.headers['ratelimit-limit'], '4');
    }
    const r = await api(srv, 'POST', '/api/v1/invitations/accept', { token: u.token, body: { code: 'guess' } });
    expectProblem(r, 429, 'rate-limited');
    assert.ok(Number(r.headers['retry-after']) > 0);
    // other writes keep their own budget
    expectStatus(await api(srv, 'POST', '/api/v1/subjects', { token: u.token, body: { name: 'ok' } }), 201);
  });
});

// keep the import used when a test above is skipped
void uniqueEmail;
