// Event resume on the live socket ("Offline clients and event resume" in the API contract):
// hello.last_seq; {"type":"resume","after"} and ?after= replay the user's retained events
// after the cursor, in order, end with {"type":"resumed","count"} and go on live with no gap
// and no duplicate, while a concurrent writer keeps publishing; an unknown, trimmed-away or
// future cursor gets {"type":"resync_required"}.
//
// Two replicas (tests/e2e/replicas.mjs): the socket is on replica 1, the events it misses
// are published by replica 2's side. Two publishers:
// - `streamWriter`: the test publishes in the documented format itself (one Lua script: INCR
//   pulse:seq, XADD pulse:stream:<user> <seq>-0 f <frame> t <ms>, PUBLISH pulse:user:<user>),
//   which is exactly what server/events.c does after a commit; this checks the socket side
//   alone, including cursors the server's own writes cannot produce (a trimmed stream).
// - feedings created through replica 2's HTTP API (the server numbers and streams its own
//   events, server/events.c), with a short retention for the "older than retained" case.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';

import WebSocket from 'ws';

import { API_ENV, api, expectStatus, redisCommands, register, sleep } from './api.mjs';
import { createSubject } from './circle_fixtures.mjs';
import { requireEnv } from './helpers.mjs';

const MISSED = 50;
const WAIT_MS = 15000;
const redisUrl = () => requireEnv('REDIS_URL');

// Publishes one event for `userId` as server/events.c does; resolves its seq (a string).
const PUBLISH_LUA = `
local n = redis.call('INCR', KEYS[1])
local frame = '{"type":"event","event":"' .. ARGV[1] .. '","subject_id":null,"seq":"' .. n .. '","data":' .. ARGV[2] .. '}'
local t = redis.call('TIME')
redis.call('XADD', KEYS[2], n .. '-0', 'f', frame, 't', t[1] * 1000 + math.floor(t[2] / 1000))
redis.call('PUBLISH', ARGV[3], frame)
return tostring(n)`;
function streamWriter(userId) {
  return {
    async publish(count, tag = 'x') {
      const cmds = [];
      for (let i = 0; i < count; i++) {
        cmds.push(['EVAL', PUBLISH_LUA, '2', 'pulse:seq', `pulse:stream:${userId}`, 'note.created',
          JSON.stringify({ tag, i }), `pulse:user:${userId}`]);
      }
      return redisCommands(redisUrl(), cmds);
    },
  };
}

// Opens /api/v1/live on `srv` (optionally with ?after=) and collects every frame; resolves
// once the hello has arrived.
async function openLive(srv, token, { after: cursor } = {}) {
  const q = cursor === undefined ? '' : `?after=${encodeURIComponent(cursor)}`;
  const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/api/v1/live${q}`, { headers: { Authorization: `Bearer ${token}` }, handshakeTimeout: 10000 });
  const c = { ws, frames: [], closed: null, waiters: [] };
  ws.on('message', (data) => {
    const m = JSON.parse(String(data));
    if (m.type !== 'metrics') c.frames.push(m);
    for (const w of c.waiters.splice(0)) w();
  });
  ws.on('close', (code) => { c.closed = code; for (const w of c.waiters.splice(0)) w(); });
  await new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('unexpected-response', (req, res) => reject(new Error(`handshake refused: ${res.statusCode}`)));
    ws.on('error', reject);
  });
  c.hello = await waitFrame(c, (m) => m.type === 'hello');
  assert.equal(c.frames[0], c.hello, 'hello is the first frame');
  return c;
}

async function waitFrame(c, pred, timeout = WAIT_MS) {
  const end = Date.now() + timeout;
  for (;;) {
    const m = c.frames.find(pred);
    if (m) return m;
    if (c.closed !== null) throw new Error(`socket closed (${c.closed}) while waiting`);
    const left = end - Date.now();
    if (left <= 0) throw new Error(`no matching frame in ${timeout} ms; last frames ${JSON.stringify(c.frames.slice(-3))}`);
    await new Promise((r) => { c.waiters.push(r); setTimeout(r, left); });
  }
}

const events = (c) => c.frames.filter((m) => m.type === 'event');
const seqs = (c) => events(c).map((m) => m.seq);
const big = (s) => BigInt(s);

// A writer that keeps publishing until stopped; resolves every seq it published.
function concurrentWriter(publishOne) {
  let stop = false;
  const published = [];
  const done = (async () => {
    while (!stop) {
      published.push(...(await publishOne()));
      await sleep(3);
    }
    return published;
  })();
  return { stop: () => { stop = true; return done; } };
}

// The whole scenario, for either publisher: a socket on replica 1 sees some events, drops,
// misses MISSED, comes back (resume by message, or ?after=) while a concurrent writer runs:
// it gets exactly every event after its cursor, once each, in seq order, the missed ones
// first (the replay, up to hello.last_seq, then `resumed`), then the live ones.
async function dropAndResume({ r1, user, publish, publishOne, byQuery }) {
  const s1 = await openLive(r1, user.token);
  const first = await publish(3);
  await waitFrame(s1, (m) => m.type === 'event' && m.seq === first[2]);
  assert.deepEqual(seqs(s1), first, 'live events carry the seq Redis gave them');
  const cursor = first[2];
  s1.ws.close();

  const missed = await publish(MISSED);
  assert.equal(missed.length, MISSED);
  const writer = concurrentWriter(publishOne);
  await sleep(30); // the writer is running when the socket comes back
  let s2;
  let resumed;
  if (byQuery) {
    s2 = await openLive(r1, user.token, { after: cursor });
  } else {
    s2 = await openLive(r1, user.token);
    s2.ws.send(JSON.stringify({ type: 'resume', after: cursor }));
  }
  resumed = await waitFrame(s2, (m) => m.type === 'resumed');
  await sleep(50); // a few live ones after the switch
  const during = await writer.stop();
  const tail = await publish(2); // and live ones after the writer
  await waitFrame(s2, (m) => m.type === 'event' && m.seq === tail[1]);
  s2.ws.close();

  const last = s2.hello.last_seq;
  assert.equal(typeof last, 'string');
  const expected = [...missed, ...during, ...tail].sort((a, b) => (big(a) < big(b) ? -1 : 1));
  const got = seqs(s2);
  assert.equal(new Set(got).size, got.length, 'no event twice');
  assert.deepEqual(got, expected, 'every event after the cursor, in seq order, nothing else');
  assert.deepEqual(got.slice(0, MISSED), missed, 'the missed ones first');
  // the replay covers (cursor, last_seq] and ends with `resumed`; everything after it is live
  const at = s2.frames.indexOf(resumed);
  const replayed = s2.frames.slice(0, at).filter((m) => m.type === 'event');
  const live = s2.frames.slice(at).filter((m) => m.type === 'event');
  assert.equal(resumed.count, replayed.length);
  assert.ok(replayed.length >= MISSED);
  assert.ok(replayed.every((m) => big(m.seq) <= big(last)), 'the replay stops at last_seq');
  assert.ok(live.every((m) => big(m.seq) > big(last)), 'live frames after resumed are newer than last_seq');
  assert.ok(live.length >= 2, 'live events follow the replay');
  return { during: during.length, replayed: replayed.length, live: live.length };
}

describe('live resume across two replicas (events published in the stream format)', () => {
  let cluster;
  before(async () => {
    const { startCluster } = await import('./replicas.mjs');
    cluster = await startCluster({ replicas: 2, env: { ...API_ENV, PULSE_METRICS_INTERVAL_MS: '200' } });
  });
  after(async () => { await stopChecked(cluster); });

  it('hello.last_seq is null for a user with no events, then the newest seq', async () => {
    const [r1, r2] = cluster.replicas;
    const u = await register(r2);
    const s = await openLive(r1, u.token);
    assert.equal(s.hello.last_seq, null);
    s.ws.close();
    const w = streamWriter(u.user.id);
    const published = await w.publish(2);
    const s2 = await openLive(r1, u.token);
    assert.equal(s2.hello.last_seq, published[1]);
    // the events before the hello are history: none comes live
    const more = await w.publish(1);
    await waitFrame(s2, (m) => m.type === 'event');
    assert.deepEqual(seqs(s2), more);
    s2.ws.close();
  });

  for (const byQuery of [false, true]) {
    it(`a socket that drops misses ${MISSED} events and resumes ${byQuery ? 'with ?after=' : 'by message'}: exactly those, in order, then live ones, no duplicate, under a concurrent writer`, async () => {
      const [r1, r2] = cluster.replicas;
      const u = await register(r2);
      const w = streamWriter(u.user.id);
      const out = await dropAndResume({ r1, user: u, publish: (n) => w.publish(n, 'main'), publishOne: () => w.publish(1, 'writer'), byQuery });
      console.log(`# ${byQuery ? '?after=' : 'resume'}: ${out.replayed} replayed (${out.during} by the concurrent writer in all), ${out.live} live after`);
    });
  }

  it('a replay longer than the socket\'s queue cap is paced, not cut off (1,000 events of ~1 KiB)', async () => {
    const [r1, r2] = cluster.replicas;
    const u = await register(r2);
    const w = streamWriter(u.user.id);
    const pad = 'p'.repeat(1000);
    const cmds = [];
    for (let i = 0; i < 1000; i++) {
      cmds.push(['EVAL', PUBLISH_LUA, '2', 'pulse:seq', `pulse:stream:${u.user.id}`, 'note.created', JSON.stringify({ i, pad }), `pulse:user:${u.user.id}`]);
    }
    const first = await w.publish(1);
    const all = await redisCommands(redisUrl(), cmds);
    const s = await openLive(r1, u.token, { after: first[0] });
    const done = await waitFrame(s, (m) => m.type === 'resumed');
    assert.equal(done.count, 1000);
    assert.deepEqual(seqs(s), all);
    s.ws.close();
    // sockets that go away in the middle of a replay (Redis replies still pending) are freed
    // once those arrive (ASan checks it at exit); the replica serves on
    for (let i = 0; i < 5; i++) {
      const gone = await openLive(r1, u.token, { after: first[0] });
      if (i % 2) gone.ws.send(JSON.stringify({ type: 'resume', after: first[0] }));
      gone.ws.terminate();
    }
    const s2 = await openLive(r1, u.token, { after: all[998] });
    assert.equal((await waitFrame(s2, (m) => m.type === 'resumed')).count, 1);
    s2.ws.close();
  });

  it('cursors that are unknown, trimmed away, in the future or not ours get resync_required; a bad message an error', async () => {
    const [r1, r2] = cluster.replicas;
    const u = await register(r2);
    const other = await register(r2);
    const w = streamWriter(u.user.id);
    const mine = await w.publish(5);
    const theirs = await streamWriter(other.user.id).publish(1);
    // drop the oldest two, as retention does
    await redisCommands(redisUrl(), [['XTRIM', `pulse:stream:${u.user.id}`, 'MINID', `${mine[2]}-0`]]);
    const s = await openLive(r1, u.token);
    assert.equal(s.hello.last_seq, mine[4]);
    const ask = async (after) => {
      const from = s.frames.length;
      s.ws.send(JSON.stringify({ type: 'resume', after }));
      const m = await waitFrame(s, (f, i) => s.frames.indexOf(f) >= from && ['resync_required', 'resumed', 'error'].includes(f.type));
      return m;
    };
    assert.equal((await ask(mine[0])).type, 'resync_required', 'older than the retained ones');
    assert.equal((await ask(mine[1])).type, 'resync_required', 'trimmed away');
    assert.equal((await ask(theirs[0])).type, 'resync_required', 'another user\'s seq is unknown here');
    assert.equal((await ask(String(big(mine[4]) + 1000n))).type, 'resync_required', 'in the future');
    for (const junk of ['0', '', 'abc', '-1', '18446744073709551616', ' 5']) {
      assert.equal((await ask(junk)).type, 'resync_required', `not a seq of ours: ${JSON.stringify(junk)}`);
    }
    const ok = await ask(mine[2]);
    assert.deepEqual({ type: ok.type, count: ok.count }, { type: 'resumed', count: 2 });
    const none = await ask(mine[4]);
    assert.deepEqual({ type: none.type, count: none.count }, { type: 'resumed', count: 0 });
    const bad = await ask(5);
    assert.equal(bad.type, 'error');
    assert.match(bad.detail, /after/);
    assert.deepEqual(seqs(s), [mine[3], mine[4]], 'only the one good resume replayed anything');
    // ?after= with a trimmed cursor: resync_required right after the hello, then live as usual
    const s2 = await openLive(r1, u.token, { after: mine[0] });
    await waitFrame(s2, (m) => m.type === 'resync_required');
    const more = await w.publish(1);
    await waitFrame(s2, (m) => m.type === 'event');
    assert.deepEqual(seqs(s2), more);
    assert.equal(s.closed, null);
    s.ws.close();
    s2.ws.close();
  });

  it('a resume while one runs gets an error; ?after= with a repeated parameter is a 400', async () => {
    const [r1, r2] = cluster.replicas;
    const u = await register(r2);
    const w = streamWriter(u.user.id);
    const p = await w.publish(300);
    const s = await openLive(r1, u.token);
    s.ws.send(JSON.stringify({ type: 'resume', after: p[0] }));
    s.ws.send(JSON.stringify({ type: 'resume', after: p[0] }));
    const done = await waitFrame(s, (m) => m.type === 'resumed');
    assert.equal(done.count, 299);
    const err = await waitFrame(s, (m) => m.type === 'error');
    assert.match(err.detail, /already running/);
    assert.deepEqual(seqs(s), p.slice(1), 'one replay only');
    s.ws.close();
    const status = await new Promise((resolve, reject) => {
      const req = http.get(`http://127.0.0.1:${r1.port}/api/v1/live?after=1&after=2`, {
        agent: false,
        headers: { Authorization: `Bearer ${u.token}`, Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' },
      }, (res) => { res.resume(); resolve(res.statusCode); });
      req.on('upgrade', (res, socket) => { socket.destroy(); resolve(res.statusCode); });
      req.on('error', reject);
    });
    assert.equal(status, 400);
  });
});

// With the server's own events: feedings created through replica 2 while the socket on
// replica 1 is away (server/events.c numbers and streams them). Retention is short here
// (100 events or 1 s, whichever keeps more) so that a cursor older than it is reachable.
const RETAIN_COUNT = 100;
describe('live resume across two replicas (feedings created through the API)', () => {
  let cluster;
  before(async () => {
    const { startCluster } = await import('./replicas.mjs');
    cluster = await startCluster({
      replicas: 2,
      env: { ...API_ENV, PULSE_METRICS_INTERVAL_MS: '200', PULSE_EVENTS_RETAIN_S: '1', PULSE_EVENTS_RETAIN_COUNT: String(RETAIN_COUNT) },
    });
  });
  after(async () => { await stopChecked(cluster); });

  const postFeedings = async (srv, u, subjectId, n) => {
    const before = await streamLast(u.user.id);
    for (let i = 0; i < n; i++) {
      expectStatus(await api(srv, 'POST', '/api/v1/feedings', { token: u.token, body: { subject_id: subjectId, amount_ml: 10 + (i % 50) } }), 201);
    }
    return streamAfter(u.user.id, before, n);
  };

  it('a cursor older than the retention gets resync_required; one still retained resumes', async () => {
    const [r1, r2] = cluster.replicas;
    const u = await register(r2);
    const subject = await createSubject(r2, u);
    const [old] = await postFeedings(r2, u, subject.id, 1);
    await sleep(1100); // older than PULSE_EVENTS_RETAIN_S
    const newer = await postFeedings(r2, u, subject.id, RETAIN_COUNT + 1);
    const s = await openLive(r1, u.token);
    assert.equal(s.hello.last_seq, newer[RETAIN_COUNT]);
    s.ws.send(JSON.stringify({ type: 'resume', after: old }));
    await waitFrame(s, (m) => m.type === 'resync_required');
    s.ws.send(JSON.stringify({ type: 'resume', after: newer[1] }));
    const done = await waitFrame(s, (m) => m.type === 'resumed');
    assert.equal(done.count, RETAIN_COUNT - 1);
    assert.deepEqual(seqs(s), newer.slice(2));
    assert.ok(events(s).every((m) => m.event === 'feeding.created' && m.subject_id === subject.id));
    s.ws.close();
  });

  for (const byQuery of [false, true]) {
    it(`missed feedings created through replica 2 come back ${byQuery ? 'with ?after=' : 'by message'}, exactly once, in order`, async () => {
      const [r1, r2] = cluster.replicas;
      const u = await register(r2);
      const subject = await createSubject(r2, u);
      // the seqs of the feedings created, read from the stream (the API answers the resource)
      const post = (n) => postFeedings(r2, u, subject.id, n);
      const out = await dropAndResume({ r1, user: u, publish: post, publishOne: () => post(1), byQuery });
      console.log(`# API ${byQuery ? '?after=' : 'resume'}: ${out.replayed} replayed, ${out.live} live after`);
    });
  }
});

// Stops the cluster and checks that every replica exited cleanly: status 0, nothing from a
// sanitizer (leaks are reported at exit).
async function stopChecked(cluster) {
  if (!cluster) return;
  const out = await cluster.stop();
  cluster.replicas.forEach((r, i) => {
    assert.doesNotMatch(r.stderr, /Sanitizer|runtime error:/, `replica ${i + 1}: ${r.stderr.slice(0, 4000)}`);
    assert.equal(out.replicas[i].code, 0, `replica ${i + 1} exit`);
  });
}

async function streamLast(userId) {
  const [r] = await redisCommands(redisUrl(), [['XREVRANGE', `pulse:stream:${userId}`, '+', '-', 'COUNT', '1']]);
  return r.length ? r[0][0] : '0-0';
}

// The seqs of the `n` entries after `id` (waiting for the publication after the reply).
async function streamAfter(userId, id, n) {
  const end = Date.now() + WAIT_MS;
  for (;;) {
    const [r] = await redisCommands(redisUrl(), [['XRANGE', `pulse:stream:${userId}`, `(${id}`, '+']]);
    if (r.length >= n) return r.slice(0, n).map((e) => e[0].split('-')[0]);
    if (Date.now() > end) throw new Error(`only ${r.length} of ${n} events in the stream`);
    await sleep(10);
  }
}
