// Feedings and notes of care circles (contract: "Care circles", records and access): the
// members of a subject share its records, each naming who logged it; whoever is not a member
// gets 404 on every id and list; a viewer reads but never writes (403); ?subject_id= picks
// the subject of lists, today, stats and tags; "today" is the subject's day; a token
// restricted to subjects sees only those.
//
// Circles are seeded here with SQL (seedSubject, below): the routes that manage subjects,
// members and invitations are tested in circles.test.mjs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  API_ENV, UUID_RE,
  api, createToken, expect403, expect404, expect422, expectProblem, expectStatus, psql, register, sleep, subscribeRecordEvents,
} from './api.mjs';
import { useServer } from './helpers.mjs';

const FEEDINGS = '/api/v1/feedings';
const NOTES = '/api/v1/notes';
const q = (s) => `'${String(s).replace(/'/g, "''")}'`;

// A subject with members [[user, role], ...]; returns its id.
function seedSubject({ name = 'Twin A', timezone = 'UTC', target = 0, members }) {
  const rows = members.map(([u, role]) => `(${q(u.user.id)}::uuid, ${q(role)})`).join(', ');
  return psql(`WITH s AS (INSERT INTO subjects (name, timezone, daily_target_ml)
                 VALUES (${q(name)}, ${q(timezone)}, ${target}) RETURNING id),
               m AS (INSERT INTO subject_members (subject_id, user_id, role)
                 SELECT s.id, x.u, x.r FROM s, (VALUES ${rows}) AS x(u, r))
               SELECT id FROM s`);
}
const defaultSubject = (u) => psql(`SELECT default_subject_id FROM users WHERE id = ${q(u.user.id)}`);
const removeMember = (sid, u) => psql(`DELETE FROM subject_members WHERE subject_id = ${q(sid)} AND user_id = ${q(u.user.id)}`);
const setRole = (sid, u, role) => psql(`UPDATE subject_members SET role = ${q(role)} WHERE subject_id = ${q(sid)} AND user_id = ${q(u.user.id)}`);
const rowOf = (table, id) => psql(`SELECT version || ' ' || subject_id || ' ' || coalesce(created_by::text, '-') FROM ${table} WHERE id = ${q(id)}`);

async function post(srv, who, path, body) {
  return api(srv, 'POST', path, { token: who.token, body });
}
async function created(srv, who, path, body) {
  return expectStatus(await post(srv, who, path, body), 201).json;
}
const get = (srv, who, path) => api(srv, 'GET', path, { token: who.token });
const items = async (srv, who, path) => expectStatus(await get(srv, who, path), 200).json.items;

describe('records of care circles', () => {
  const srv = useServer({ ...API_ENV });

  async function circle(tz = 'UTC', target = 0) {
    const a = await register(srv, { display_name: 'Parent A' });
    const b = await register(srv, { display_name: 'Parent B' });
    const v = await register(srv, { display_name: 'Grandma' });
    const c = await register(srv, { display_name: 'Stranger' });
    const sid = seedSubject({ timezone: tz, target, members: [[a, 'owner'], [b, 'caregiver'], [v, 'viewer']] });
    return { a, b, v, c, sid };
  }

  it('members see each other\'s feedings and notes, each with subject_id and created_by', async () => {
    const { a, b, v, sid } = await circle();
    const fa = await created(srv, a, FEEDINGS, { amount_ml: 100, subject_id: sid });
    const fb = await created(srv, b, FEEDINGS, { amount_ml: 120, kind: 'milk', subject_id: sid });
    const nb = await created(srv, b, NOTES, { title: 'slept 3h', tags: ['sleep'], subject_id: sid });
    assert.equal(fb.subject_id, sid);
    assert.deepEqual(fb.created_by, { id: b.user.id, display_name: 'Parent B' });
    assert.deepEqual(fa.created_by, { id: a.user.id, display_name: 'Parent A' });
    assert.deepEqual(nb.created_by, { id: b.user.id, display_name: 'Parent B' });
    assert.equal(nb.subject_id, sid);
    assert.equal(rowOf('feedings', fb.id), `1 ${sid} ${b.user.id}`);
    for (const who of [a, b, v]) {
      const g = expectStatus(await get(srv, who, `${FEEDINGS}/${fb.id}`), 200);
      assert.deepEqual(g.json, fb);
      assert.equal(g.headers.etag, '"1"');
      assert.deepEqual(expectStatus(await get(srv, who, `${NOTES}/${nb.id}`), 200).json, nb);
      const list = await items(srv, who, `${FEEDINGS}?subject_id=${sid}`);
      assert.deepEqual(list.map((f) => f.id).sort(), [fa.id, fb.id].sort());
      assert.deepEqual(list.find((f) => f.id === fb.id), fb);
      assert.deepEqual((await items(srv, who, `${NOTES}?subject_id=${sid}`)).map((n) => n.id), [nb.id]);
      assert.deepEqual(await items(srv, who, `/api/v1/tags?subject_id=${sid}`), [{ tag: 'sleep', count: 1 }]);
      const today = expectStatus(await get(srv, who, `${FEEDINGS}/today?subject_id=${sid}`), 200).json;
      assert.equal(today.total_ml, 220);
      assert.equal(today.count, 2);
    }
    // a caregiver edits and deletes the owner's records too
    const p = expectStatus(await api(srv, 'PATCH', `${FEEDINGS}/${fa.id}`, { token: b.token, body: { amount_ml: 90 } }), 200);
    assert.equal(p.json.amount_ml, 90);
    assert.deepEqual(p.json.created_by, fa.created_by, 'created_by stays the author');
    expectStatus(await api(srv, 'DELETE', `${NOTES}/${nb.id}`, { token: a.token, headers: { 'If-Match': '"1"' } }), 204);
    expect404(await get(srv, b, `${NOTES}/${nb.id}`));
  });

  it('without subject_id, records go to and lists show the default subject only', async () => {
    const { a, sid } = await circle();
    const dflt = defaultSubject(a);
    assert.match(dflt, UUID_RE);
    const mine = await created(srv, a, FEEDINGS, { amount_ml: 50 });
    const note = await created(srv, a, NOTES, { title: 'mine', tags: ['own'] });
    assert.equal(mine.subject_id, dflt);
    assert.equal(note.subject_id, dflt);
    const shared = await created(srv, a, FEEDINGS, { amount_ml: 70, subject_id: sid });
    assert.deepEqual((await items(srv, a, FEEDINGS)).map((f) => f.id), [mine.id]);
    assert.deepEqual((await items(srv, a, `${FEEDINGS}?subject_id=${dflt}`)).map((f) => f.id), [mine.id]);
    assert.deepEqual((await items(srv, a, `${FEEDINGS}?subject_id=${sid}`)).map((f) => f.id), [shared.id]);
    assert.deepEqual((await items(srv, a, NOTES)).map((n) => n.id), [note.id]);
    assert.deepEqual(await items(srv, a, `${NOTES}?subject_id=${sid}`), []);
    assert.deepEqual(await items(srv, a, '/api/v1/tags'), [{ tag: 'own', count: 1 }]);
    assert.deepEqual(await items(srv, a, `/api/v1/tags?subject_id=${sid}`), []);
    assert.equal(expectStatus(await get(srv, a, `${FEEDINGS}/today`), 200).json.total_ml, 50);
    assert.equal(expectStatus(await get(srv, a, `/api/v1/stats/feedings?days=1`), 200).json.total_ml, 50);
    assert.equal(expectStatus(await get(srv, a, `/api/v1/stats/feedings?days=1&subject_id=${sid}`), 200).json.total_ml, 70);
  });

  it('someone outside the circle gets 404 on every id and list, and 422 naming subject_id on a create', async () => {
    const { a, c, sid } = await circle();
    const f = await created(srv, a, FEEDINGS, { amount_ml: 100, subject_id: sid });
    const n = await created(srv, a, NOTES, { title: 'private', subject_id: sid });
    for (const [path, table] of [[`${FEEDINGS}/${f.id}`, 'feedings'], [`${NOTES}/${n.id}`, 'notes']]) {
      const id = path.split('/').pop();
      const before = rowOf(table, id);
      expect404(await get(srv, c, path));
      expect404(await api(srv, 'PATCH', path, { token: c.token, body: table === 'notes' ? { title: 'x' } : { amount_ml: 5 } }));
      expect404(await api(srv, 'PATCH', path, { token: c.token, body: {} }));
      expect404(await api(srv, 'PATCH', path, { token: c.token, body: table === 'notes' ? { title: 'x' } : { amount_ml: 5 }, headers: { 'If-Match': '"9"' } }));
      expect404(await api(srv, 'DELETE', path, { token: c.token }));
      expect404(await api(srv, 'DELETE', path, { token: c.token, headers: { 'If-Match': '"1"' } }));
      assert.equal(rowOf(table, id), before, 'nothing changed');
    }
    for (const path of [FEEDINGS, NOTES, '/api/v1/tags', `${FEEDINGS}/today`, '/api/v1/stats/feedings']) {
      const r = await get(srv, c, `${path}?subject_id=${sid}`);
      expect404(r);
      assert.doesNotMatch(r.text, new RegExp(f.id));
    }
    const count = psql(`SELECT count(*) FROM feedings WHERE subject_id = ${q(sid)}`);
    expect422(await post(srv, c, FEEDINGS, { amount_ml: 10, subject_id: sid }), 'subject_id');
    expect422(await post(srv, c, NOTES, { title: 'x', subject_id: sid }), 'subject_id');
    // an id that names no subject at all looks the same
    expect422(await post(srv, c, FEEDINGS, { amount_ml: 10, subject_id: '00000000-0000-4000-8000-000000000000' }), 'subject_id');
    expect404(await get(srv, c, `${FEEDINGS}?subject_id=00000000-0000-4000-8000-000000000000`));
    assert.equal(psql(`SELECT count(*) FROM feedings WHERE subject_id = ${q(sid)}`), count);
  });

  it('a viewer reads but every write is 403, after the 422 of a bad body and before 412', async () => {
    const { a, v, sid } = await circle();
    const f = await created(srv, a, FEEDINGS, { amount_ml: 100, subject_id: sid });
    const n = await created(srv, a, NOTES, { title: 'read me', subject_id: sid });
    expectStatus(await get(srv, v, `${FEEDINGS}/${f.id}`), 200);
    const count = psql(`SELECT count(*) FROM feedings WHERE subject_id = ${q(sid)}`) + psql(`SELECT count(*) FROM notes WHERE subject_id = ${q(sid)}`);
    expect403(await post(srv, v, FEEDINGS, { amount_ml: 10, subject_id: sid }));
    expect403(await post(srv, v, NOTES, { title: 'x', subject_id: sid }));
    expect403(await api(srv, 'POST', FEEDINGS, { token: v.token, body: { amount_ml: 10, subject_id: sid }, headers: { 'Idempotency-Key': 'viewer-1' } }));
    expect422(await post(srv, v, FEEDINGS, { amount_ml: 0, subject_id: sid }), 'amount_ml');
    for (const [path, table, body] of [[`${FEEDINGS}/${f.id}`, 'feedings', { amount_ml: 5 }], [`${NOTES}/${n.id}`, 'notes', { pinned: true }]]) {
      const id = path.split('/').pop();
      const before = rowOf(table, id);
      expect403(await api(srv, 'PATCH', path, { token: v.token, body }));
      expect403(await api(srv, 'PATCH', path, { token: v.token, body: {} }));
      expect403(await api(srv, 'PATCH', path, { token: v.token, body, headers: { 'If-Match': '"7"' } }));
      expect422(await api(srv, 'PATCH', path, { token: v.token, body: { subject_id: sid } }), 'subject_id');
      expect403(await api(srv, 'DELETE', path, { token: v.token }));
      expect403(await api(srv, 'DELETE', path, { token: v.token, headers: { 'If-Match': '"7"' } }));
      assert.equal(rowOf(table, id), before, 'nothing changed');
    }
    assert.equal(psql(`SELECT count(*) FROM feedings WHERE subject_id = ${q(sid)}`) + psql(`SELECT count(*) FROM notes WHERE subject_id = ${q(sid)}`), count);
    assert.equal(psql(`SELECT count(*) FROM idempotency_keys WHERE user_id = ${q(v.user.id)}`), '0', 'a refused create stores no response');
    // promoted, the same requests pass; demoted again, they stop at once
    setRole(sid, v, 'caregiver');
    const mine = await created(srv, v, FEEDINGS, { amount_ml: 10, subject_id: sid });
    setRole(sid, v, 'viewer');
    expect403(await api(srv, 'DELETE', `${FEEDINGS}/${mine.id}`, { token: v.token }));
  });

  it('subject_id and created_by are read-only; a malformed subject_id is 422 in a body and 400 in a query', async () => {
    const { a, b, sid } = await circle();
    const f = await created(srv, a, FEEDINGS, { amount_ml: 100 });
    const before = rowOf('feedings', f.id);
    expect422(await api(srv, 'PATCH', `${FEEDINGS}/${f.id}`, { token: a.token, body: { subject_id: sid } }), 'subject_id');
    expect422(await api(srv, 'PATCH', `${FEEDINGS}/${f.id}`, { token: a.token, body: { created_by: { id: b.user.id } } }), 'created_by');
    expect422(await post(srv, a, FEEDINGS, { amount_ml: 1, created_by: b.user.id }), 'created_by');
    expect422(await post(srv, a, NOTES, { title: 'x', subject_id: 'not-a-uuid' }), 'subject_id');
    expect422(await post(srv, a, NOTES, { title: 'x', subject_id: 42 }), 'subject_id');
    assert.equal(rowOf('feedings', f.id), before);
    for (const path of [FEEDINGS, NOTES, '/api/v1/tags', `${FEEDINGS}/today`, '/api/v1/stats/feedings']) {
      for (const bad of ['nope', '%zz', '', `${sid}x`]) {
        expectProblem(await get(srv, a, `${path}?subject_id=${bad}`), 400, 'malformed');
      }
    }
  });

  it('today and stats follow the subject\'s time zone and target, not the caller\'s', async () => {
    const tz = 'Pacific/Kiritimati'; // UTC+14: its day differs from UTC's for 14 hours of 24
    const { a, sid } = await circle(tz, 900);
    const lo = psql(`SELECT to_char(date_trunc('day', now() AT TIME ZONE '${tz}') AT TIME ZONE '${tz}' AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`);
    const localDay = psql(`SELECT (now() AT TIME ZONE '${tz}')::date`);
    const prevDay = psql(`SELECT (now() AT TIME ZONE '${tz}')::date - 1`);
    // at the subject's local midnight (counted today) and a microsecond before (yesterday)
    psql(`INSERT INTO feedings (subject_id, created_by, amount_ml, given_at) VALUES
          (${q(sid)}, ${q(a.user.id)}, 300, ${q(lo)}), (${q(sid)}, ${q(a.user.id)}, 77, ${q(lo)}::timestamptz - interval '1 microsecond')`);
    const t = expectStatus(await get(srv, a, `${FEEDINGS}/today?subject_id=${sid}`), 200).json;
    assert.equal(t.timezone, tz);
    assert.equal(t.date, localDay);
    assert.equal(t.target_ml, 900);
    assert.equal(t.total_ml, 300);
    assert.equal(t.count, 1);
    assert.equal(t.remaining_ml, 600);
    const s = expectStatus(await get(srv, a, `/api/v1/stats/feedings?days=2&subject_id=${sid}`), 200).json;
    // feedings v2: each day also says whether the subject's target (900) was met
    assert.deepEqual(s.per_day, [{ date: prevDay, count: 1, total_ml: 77, target_met: false }, { date: localDay, count: 1, total_ml: 300, target_met: false }]);
    // the caller's own default subject keeps the caller's zone
    const own = expectStatus(await get(srv, a, `${FEEDINGS}/today`), 200).json;
    assert.equal(own.timezone, 'UTC');
    assert.equal(own.total_ml, 0);
  });

  it('leaving or removal holds at the next request', async () => {
    const { a, b, sid } = await circle();
    const f = await created(srv, a, FEEDINGS, { amount_ml: 100, subject_id: sid });
    expectStatus(await get(srv, b, `${FEEDINGS}/${f.id}`), 200);
    removeMember(sid, b);
    expect404(await get(srv, b, `${FEEDINGS}/${f.id}`));
    expect404(await get(srv, b, `${FEEDINGS}?subject_id=${sid}`));
    expect404(await api(srv, 'DELETE', `${FEEDINGS}/${f.id}`, { token: b.token }));
    expect422(await post(srv, b, FEEDINGS, { amount_ml: 1, subject_id: sid }), 'subject_id');
    // their records stay with the subject and keep naming them
    const g = expectStatus(await get(srv, a, `${FEEDINGS}/${f.id}`), 200).json;
    assert.deepEqual(g, f);
  });

  it('changes reach every member\'s channel with the subject, and no one else\'s', async () => {
    const { a, b, v, c, sid } = await circle();
    const sub = await subscribeRecordEvents('feedings', [a, b, v, c]);
    try {
      const r = await created(srv, b, FEEDINGS, { amount_ml: 33, subject_id: sid });
      await sleep(300);
      const got = sub.messages.filter((m) => m.data.event === 'feeding.created');
      assert.deepEqual(got.map((m) => m.channel).sort(), [a, b, v].map((u) => `pulse:user:${u.user.id}`).sort());
      // issue 16: one event, one seq, the same on every member's channel
      assert.equal(new Set(got.map((m) => m.data.seq)).size, 1, `seqs ${got.map((m) => m.data.seq)}`);
      for (const m of got) {
        assert.deepEqual(m.data, { type: 'event', event: 'feeding.created', subject_id: sid, seq: m.data.seq, data: r });
        assert.equal(m.row, '1', 'published after the commit');
      }
      removeMember(sid, v);
      expectStatus(await api(srv, 'DELETE', `${FEEDINGS}/${r.id}`, { token: a.token }), 204);
      await sleep(300);
      const del = sub.messages.filter((m) => m.data.event === 'feeding.deleted');
      assert.deepEqual(del.map((m) => m.channel).sort(), [a, b].map((u) => `pulse:user:${u.user.id}`).sort(), 'a removed member gets nothing');
      assert.ok(!sub.messages.some((m) => m.channel === `pulse:user:${c.user.id}`));
    } finally {
      sub.close();
    }
  });

  it('members racing: one change wins; a write losing to a delete is 404, to an update 412', async () => {
    const { a, b, sid } = await circle();
    for (const headers of [{}, { 'If-Match': '"1"' }]) {
      const f = await created(srv, a, FEEDINGS, { amount_ml: 10, subject_id: sid });
      const rs = await Promise.all(Array.from({ length: 6 }, (_, i) => api(srv, 'DELETE', `${FEEDINGS}/${f.id}`, { token: (i % 2 ? a : b).token, headers })));
      assert.equal(rs.filter((r) => r.status === 204).length, 1, `one 204, got ${rs.map((r) => r.status)}`);
      for (const r of rs.filter((x) => x.status !== 204)) expect404(r);
    }
    const n = await created(srv, a, NOTES, { title: 'race', subject_id: sid });
    const rs = await Promise.all(Array.from({ length: 6 }, (_, i) => api(srv, 'PATCH', `${NOTES}/${n.id}`, { token: (i % 2 ? a : b).token, body: { title: `t${i}` }, headers: { 'If-Match': '"1"' } })));
    assert.equal(rs.filter((r) => r.status === 200).length, 1, `one 200, got ${rs.map((r) => r.status)}`);
    for (const r of rs.filter((x) => x.status !== 200)) expectProblem(r, 412, 'precondition-failed');
  });

  it('an Idempotency-Key replays a create in a shared subject', async () => {
    const { b, sid } = await circle();
    const body = { amount_ml: 60, subject_id: sid };
    const headers = { 'Idempotency-Key': 'circle-1' };
    const r1 = expectStatus(await api(srv, 'POST', FEEDINGS, { token: b.token, body, headers }), 201);
    const r2 = expectStatus(await api(srv, 'POST', FEEDINGS, { token: b.token, body, headers }), 201);
    assert.equal(r2.headers['idempotent-replayed'], 'true');
    assert.deepEqual(r2.json, r1.json);
    assert.equal(psql(`SELECT count(*) FROM feedings WHERE subject_id = ${q(sid)}`), '1');
    expectProblem(await api(srv, 'POST', FEEDINGS, { token: b.token, body: { amount_ml: 60 }, headers }), 422, 'validation');
  });

  describe('a token restricted to subject_ids', () => {
    it('sees only its subjects; a create without subject_id uses its only one', async () => {
      const { a, sid } = await circle();
      const dflt = defaultSubject(a);
      const outside = await created(srv, a, FEEDINGS, { amount_ml: 11 });
      const inside = await created(srv, a, FEEDINGS, { amount_ml: 22, subject_id: sid });
      const tok = await createToken(srv, a.token, { subject_ids: [sid] });
      const t = { token: tok.token };
      const f = await created(srv, t, FEEDINGS, { amount_ml: 33 });
      assert.equal(f.subject_id, sid);
      assert.deepEqual(f.created_by, { id: a.user.id, display_name: 'Parent A' });
      expectStatus(await get(srv, t, `${FEEDINGS}/${inside.id}`), 200);
      expect404(await get(srv, t, `${FEEDINGS}/${outside.id}`));
      expect404(await api(srv, 'DELETE', `${FEEDINGS}/${outside.id}`, { token: tok.token }));
      expect404(await get(srv, t, `${FEEDINGS}?subject_id=${dflt}`));
      expect404(await get(srv, t, `${FEEDINGS}/today?subject_id=${dflt}`));
      expect422(await post(srv, t, FEEDINGS, { amount_ml: 1, subject_id: dflt }), 'subject_id');
      // its lists default to its only subject
      assert.deepEqual((await items(srv, t, FEEDINGS)).map((x) => x.id).sort(), [inside.id, f.id].sort());
      assert.equal(expectStatus(await get(srv, t, `${FEEDINGS}/today`), 200).json.total_ml, 55);
      expectStatus(await get(srv, a, `${FEEDINGS}/${outside.id}`), 200, 'the session still sees both');
    });

    it('with several subjects, a create must name one (422)', async () => {
      const { a, sid } = await circle();
      const dflt = defaultSubject(a);
      const tok = await createToken(srv, a.token, { subject_ids: [sid, dflt] });
      const t = { token: tok.token };
      const n = psql(`SELECT count(*) FROM feedings WHERE created_by = ${q(a.user.id)}`);
      expect422(await post(srv, t, FEEDINGS, { amount_ml: 5 }), 'subject_id');
      expect422(await post(srv, t, NOTES, { title: 'x' }), 'subject_id');
      assert.equal(psql(`SELECT count(*) FROM feedings WHERE created_by = ${q(a.user.id)}`), n);
      assert.equal((await created(srv, t, FEEDINGS, { amount_ml: 5, subject_id: dflt })).subject_id, dflt);
      assert.equal((await created(srv, t, NOTES, { title: 'y', subject_id: sid })).subject_id, sid);
    });
  });
});
