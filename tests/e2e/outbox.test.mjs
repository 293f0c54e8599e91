// Event seq, per-user streams and the outbox (issue 16, server/events.c): every event gets a
// seq (the same on every member's socket, increasing); each recipient's frame is kept in the
// Redis stream pulse:stream:<user_id> under the id <seq>-0, trimmed by age and count
// (PULSE_EVENTS_RETAIN_S / PULSE_EVENTS_RETAIN_COUNT, whichever keeps more); a change whose
// process dies right after its commit (PULSE_TEST_SKIP_PUBLISH=1 makes a replica publish
// nothing after its commits, then it is SIGKILLed) is delivered by another replica's outbox
// sweeper, exactly once; a row whose dedupe key (pulse:outbox:<id>.<token>) is there already
// is not published again, and a row with the id of an old one but another token is.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';

import { API_ENV, api, expectStatus, psql, redisCommands, redisUrlWithDb, register, sleep } from './api.mjs';
import { circle, closeSockets, nextFrame, openSocket } from './circle_fixtures.mjs';
import { requireEnv, serverFor, startServer, waitFor, waitReadyRaw } from './helpers.mjs';

const SEQ_RE = /^[1-9][0-9]*$/;

async function postFeeding(srv, user, subjectId, amount) {
  const r = await api(srv, 'POST', '/api/v1/feedings', { token: user.token, body: { subject_id: subjectId, amount_ml: amount } });
  expectStatus(r, 201);
  return r.json;
}

// The entries of a user's stream: [{ id, frame (parsed f), t }].
async function stream(url, userId) {
  const [entries] = await redisCommands(url, [['XRANGE', `pulse:stream:${userId}`, '-', '+']]);
  return entries.map(([id, fields]) => {
    const f = {};
    for (let i = 0; i < fields.length; i += 2) f[fields[i]] = fields[i + 1];
    return { id, frame: JSON.parse(f.f), text: f.f, t: Number(f.t) };
  });
}

const events = (client, from = 0) => client.messages.slice(from).filter((m) => m.type === 'event');

describe('event seq and streams', () => {
  it('one seq per event, the same on every member\'s sockets, increasing, and in each member\'s stream as <seq>-0', async (t) => {
    const srv = await serverFor(t, { ...API_ENV });
    const url = requireEnv('REDIS_URL');
    const { owner: a, subject, members } = await circle(srv, ['caregiver', 'viewer']);
    const b = members.caregiver;
    const v = members.viewer;
    const sockets = [await openSocket(srv, a.token), await openSocket(srv, a.token), await openSocket(srv, b.token), await openSocket(srv, v.token)];
    const from = sockets.map((s) => s.messages.length);
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await postFeeding(srv, i % 2 ? a : b, subject.id, 50 + i)).id);
    expectStatus(await api(srv, 'PATCH', `/api/v1/feedings/${ids[0]}`, { token: a.token, body: { amount_ml: 99 } }), 200);
    expectStatus(await api(srv, 'DELETE', `/api/v1/feedings/${ids[1]}`, { token: b.token }), 204);
    expectStatus(await api(srv, 'PATCH', `/api/v1/subjects/${subject.id}`, { token: a.token, body: { name: 'Renamed' } }), 200);
    for (let i = 0; i < sockets.length; i++) {
      await nextFrame(sockets[i], (m) => m.type === 'event' && m.event === 'subject.updated', { from: from[i] });
    }
    const seen = sockets.map((s, i) => events(s, from[i]).map((m) => `${m.seq} ${m.event} ${m.data.id ?? ''}`));
    assert.equal(seen[0].length, 8, seen[0].join('\n'));
    for (const s of seen.slice(1)) assert.deepEqual(s, seen[0], 'every socket of every member: the same events with the same seqs');
    const seqs = events(sockets[0], from[0]).map((m) => m.seq);
    for (const s of seqs) assert.match(s, SEQ_RE);
    for (let i = 1; i < seqs.length; i++) assert.ok(BigInt(seqs[i]) > BigInt(seqs[i - 1]), `increasing: ${seqs}`);
    assert.deepEqual(events(sockets[0], from[0]).map((m) => m.event), [
      'feeding.created', 'feeding.created', 'feeding.created', 'feeding.created', 'feeding.created',
      'feeding.updated', 'feeding.deleted', 'subject.updated',
    ]);
    // each member's stream holds exactly the frames sent, under <seq>-0
    const sent = events(sockets[0], from[0]).map(({ at, ...m }) => m);
    for (const u of [a, b, v]) {
      const st = (await stream(url, u.user.id)).filter((e) => BigInt(e.frame.seq) >= BigInt(seqs[0]));
      assert.deepEqual(st.map((e) => e.id), seqs.map((s) => `${s}-0`));
      assert.deepEqual(st.map((e) => e.frame), sent);
      // the frame text as the contract spells it (OS2 replays it as is)
      for (const e of st) assert.match(e.text, /^\{"type":"event","event":"[a-z.]+","subject_id":"[0-9a-f-]{36}","seq":"[0-9]+","data":\{/);
    }
    // a user's own event (no subject) gets a seq too
    const before = sockets[0].messages.length;
    expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { display_name: 'A2' } }), 200);
    const p = await nextFrame(sockets[0], (m) => m.type === 'event' && m.event === 'profile.updated', { from: before });
    assert.equal(p.subject_id, null);
    assert.ok(BigInt(p.seq) > BigInt(seqs.at(-1)));
    const [ttl] = await redisCommands(url, [['TTL', `pulse:stream:${a.user.id}`]]);
    assert.ok(ttl > 86000 && ttl <= 86400, `the stream expires PULSE_EVENTS_RETAIN_S after its last event (ttl ${ttl})`);
    closeSockets(...sockets);
  });

  it('retention: entries older than PULSE_EVENTS_RETAIN_S go, but never the newest PULSE_EVENTS_RETAIN_COUNT; young ones stay past the count', async (t) => {
    // a Redis database of its own: its own seq counter and streams
    const url = redisUrlWithDb(14);
    await redisCommands(url, [['FLUSHDB']]);
    const srv = await serverFor(t, { ...API_ENV, REDIS_URL: url, PULSE_EVENTS_RETAIN_S: '2', PULSE_EVENTS_RETAIN_COUNT: '3' });
    const a = await register(srv);
    const subject = (await api(srv, 'GET', '/api/v1/me', { token: a.token })).json.default_subject_id;
    const ids = [];
    const t0 = Date.now();
    for (let i = 0; i < 6; i++) ids.push((await postFeeding(srv, a, subject, 10 + i)).id);
    const burstMs = Date.now() - t0;
    await waitFor(async () => (await stream(url, a.user.id)).length === 6);
    assert.ok(burstMs < 1000, `burst took ${burstMs} ms`);
    // all six are younger than 2 s: the age keeps more than the count
    let st = await stream(url, a.user.id);
    assert.deepEqual(st.map((e) => e.frame.data.id), ids);
    await sleep(1200);
    ids.push((await postFeeding(srv, a, subject, 20)).id);
    await waitFor(async () => (await stream(url, a.user.id)).length === 7);
    st = await stream(url, a.user.id);
    assert.deepEqual(st.map((e) => e.frame.data.id), ids, 'nothing is 2 s old yet: seven kept');
    const t7 = st[6].t;
    // past 2 s after the burst (the 7th is still younger): the 8th trims the burst down to
    // what the count keeps (the newest three: burst's last, 7th, 8th)
    await sleep(Math.max(0, st[5].t + 2100 - Date.now()));
    ids.push((await postFeeding(srv, a, subject, 21)).id);
    await waitFor(async () => (await stream(url, a.user.id)).some((e) => e.frame.data.id === ids[7]));
    st = await stream(url, a.user.id);
    assert.ok(Date.now() - t7 < 2000, 'the 7th entry was still young when the 8th came (timing of this test)');
    assert.deepEqual(st.map((e) => e.frame.data.id), [ids[5], ids[6], ids[7]], 'old ones beyond the newest three are gone; the count kept an old one');
    // ids are <seq>-0, and the seqs of the kept ones are still increasing
    const seqs = st.map((e) => BigInt(e.frame.seq));
    assert.ok(seqs[0] < seqs[1] && seqs[1] < seqs[2]);
    assert.deepEqual(st.map((e) => e.id), st.map((e) => `${e.frame.seq}-0`));
    const [ttl] = await redisCommands(url, [['TTL', `pulse:stream:${a.user.id}`]]);
    assert.ok(ttl >= 1 && ttl <= 2, `an idle user's stream expires after PULSE_EVENTS_RETAIN_S (ttl ${ttl})`);
    await waitFor(async () => (await redisCommands(url, [['EXISTS', `pulse:stream:${a.user.id}`]]))[0] === 0, { timeout: 5000 });
    await redisCommands(url, [['FLUSHDB']]);
  });
});

describe('the outbox', () => {
  it('changes committed by a replica that dies before publishing are delivered by other replicas\' sweepers, once each', async (t) => {
    // rows are swept once 2 s old: the dead replica's rows are all still there when it dies
    const sweep = { PULSE_EVENTS_SWEEP_MS: '100', PULSE_EVENTS_SWEEP_AGE_MS: '2000' };
    // two sweeping replicas (they race for the rows) and one that publishes nothing
    const r1 = await serverFor(t, { ...API_ENV, ...sweep, PULSE_WORKERS: '1' });
    const r2 = await serverFor(t, { ...API_ENV, ...sweep, PULSE_WORKERS: '1' });
    const dying = await startServer({ ...API_ENV, ...sweep, PULSE_WORKERS: '1', PULSE_TEST_SKIP_PUBLISH: '1' });
    t.after(() => dying.stop('SIGKILL'));
    await waitReadyRaw(dying);
    const { owner: a, subject, members } = await circle(r1, ['caregiver']);
    const b = members.caregiver;
    const sa = await openSocket(r1, a.token);
    const sb = await openSocket(r2, b.token);
    const from = [sa.messages.length, sb.messages.length];
    const ids = [];
    const t0 = Date.now();
    for (let i = 0; i < 10; i++) ids.push((await postFeeding(dying, b, subject.id, 30 + i)).id);
    expectStatus(await api(dying, 'PATCH', `/api/v1/feedings/${ids[0]}`, { token: b.token, body: { amount_ml: 77 } }), 200);
    // a subject's change and a user's own one go through the outbox too
    expectStatus(await api(dying, 'PATCH', `/api/v1/subjects/${subject.id}`, { token: a.token, body: { name: 'Swept' } }), 200);
    expectStatus(await api(dying, 'PATCH', '/api/v1/me', { token: b.token, body: { display_name: 'B swept' } }), 200);
    // right after its last commit: no drain, no chance to publish
    const exit = await dying.stop('SIGKILL');
    assert.equal(exit.signal, 'SIGKILL');
    assert.ok(Date.now() - t0 < 1500, `the writes took ${Date.now() - t0} ms (this test needs them under the sweep age)`);
    const left = () => Number(psql(`SELECT count(*) FROM event_outbox WHERE subject_id = '${subject.id}' OR user_ids = '{${b.user.id}}'`));
    assert.equal(left(), 13, 'the dead replica left its 13 events in the outbox');
    for (const [s, f] of [[sa, from[0]], [sb, from[1]]]) {
      await nextFrame(s, (m) => m.type === 'event' && m.event === 'subject.updated' && m.data.name === 'Swept', { from: f, timeout: 10000 });
    }
    await nextFrame(sb, (m) => m.type === 'event' && m.event === 'profile.updated' && m.data.display_name === 'B swept', { from: from[1], timeout: 10000 });
    await waitFor(() => left() === 0, { timeout: 5000 });
    await sleep(800); // several more sweeps of both replicas: nothing comes twice
    const got = [events(sa, from[0]), events(sb, from[1]).filter((m) => m.event !== 'profile.updated')];
    for (const g of got) {
      assert.deepEqual(g.filter((m) => m.event === 'feeding.created').map((m) => m.data.id).sort(), [...ids].sort(), 'each created feeding once');
      assert.deepEqual(g.filter((m) => m.event === 'feeding.updated').map((m) => m.data.amount_ml), [77], 'the update once');
      assert.deepEqual(g.filter((m) => m.event === 'subject.updated').map((m) => m.data.name), ['Swept'], 'the subject\'s change once');
      assert.equal(g.length, 12, g.map((m) => m.event).join(','));
      assert.equal(new Set(g.map((m) => m.seq)).size, 12, 'twelve seqs');
    }
    assert.deepEqual(got[0].map((m) => m.seq), got[1].map((m) => m.seq), 'the same seqs on both members\' sockets');
    const own = events(sb, from[1]).filter((m) => m.event === 'profile.updated');
    assert.equal(own.length, 1, 'B\'s profile.updated once');
    assert.equal(own[0].subject_id, null);
    assert.equal(own[0].data.id, b.user.id);
    // the row's JSON (built by SQL) is the user as GET /me answers it
    assert.deepEqual(own[0].data, expectStatus(await api(r1, 'GET', '/api/v1/me', { token: b.token }), 200).json);
    assert.equal(events(sa, from[0]).filter((m) => m.event === 'profile.updated').length, 0, 'A does not get B\'s profile');
    const url = requireEnv('REDIS_URL');
    for (const u of [a, b]) {
      const st = await stream(url, u.user.id);
      const mine = st.filter((e) => e.frame.subject_id === subject.id && got[0].some((m) => m.seq === e.frame.seq));
      assert.equal(mine.length, 12, 'each event once in each stream');
    }
    closeSockets(sa, sb);
  });

  it('a row whose dedupe key is in Redis (published already) is deleted by the sweeper without a second publication', async (t) => {
    const srv = await serverFor(t, { ...API_ENV, PULSE_EVENTS_SWEEP_MS: '100', PULSE_EVENTS_SWEEP_AGE_MS: '200', PULSE_WORKERS: '1' });
    const a = await register(srv);
    const s = await openSocket(srv, a.token);
    const from = s.messages.length;
    const url = requireEnv('REDIS_URL');
    // two rows as a change's statement writes them; the first one counts as published (its
    // dedupe key is set before the row exists)
    const [done, fresh] = psql("SELECT nextval('event_outbox_id_seq') UNION ALL SELECT nextval('event_outbox_id_seq')").split('\n');
    const [doneToken, freshToken] = [randomUUID(), randomUUID()];
    // the second row's id was published before, by a row of another database (a restore, a
    // test's fresh database) sharing this Redis: another token, so it is published all the same
    await redisCommands(url, [
      ['SET', `pulse:outbox:${done}.${doneToken}`, '1', 'EX', '60'],
      ['SET', `pulse:outbox:${fresh}.${randomUUID()}`, '1', 'EX', '60'],
    ]);
    psql(`INSERT INTO event_outbox (id, token, user_ids, subject_id, event, data) VALUES
      (${done}, '${doneToken}', '{${a.user.id}}', NULL, 'profile.updated', '{"n":1}'),
      (${fresh}, '${freshToken}', '{${a.user.id}}', NULL, 'profile.updated', '{"n":2}')`);
    // and a row for nobody: deleted, nothing sent
    const nobody = psql(`INSERT INTO event_outbox (user_ids, subject_id, event, data) VALUES ('{}', NULL, 'profile.updated', '{"n":3}') RETURNING id`).split('\n')[0];
    const m = await nextFrame(s, (x) => x.type === 'event' && x.data.n === 2, { from, timeout: 5000 });
    assert.match(m.seq, SEQ_RE);
    await waitFor(() => psql(`SELECT count(*) FROM event_outbox WHERE id IN (${done}, ${fresh}, ${nobody})`) === '0', { timeout: 5000 });
    await sleep(400);
    assert.deepEqual(events(s, from).map((x) => x.data.n), [2], 'the row already published went without a frame');
    const [ttl] = await redisCommands(url, [['TTL', `pulse:outbox:${fresh}.${freshToken}`]]);
    assert.ok(ttl > 86400, `the dedupe key outlives the retention (ttl ${ttl})`);
    closeSockets(s);
  });
});
