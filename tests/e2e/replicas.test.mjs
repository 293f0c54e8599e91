// Replicas proven on loopback: three real pulsed processes behind a real nginx running the
// project's own config (deploy/nginx/pulse.conf, upstream rewritten to loopback ports: see
// nginx.mjs), one Postgres, one Redis. Through nginx: a session works on every replica, a
// logout is honoured by all of them at once, a rate limit is global, a rolling restart done
// as Kubernetes does it loses no request under load, and a SIGKILL costs at most the requests
// in flight. Measured figures are printed as `# ...` lines.
//
// The WebSocket-across-replicas test (an event posted through one replica reaching a socket
// held by another) lives in tests/e2e/live.test.mjs, on the same fixture (replicas.mjs).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  PASSWORD, api, expectProblem, expectStatus, flushRedisDb, redisUrlWithDb, sessionCookie, uniqueEmail,
} from './api.mjs';
import { startCluster, startLoad } from './replicas.mjs';

const log = (s) => console.log(`# ${s}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Load for the restart tests: a cheap authenticated GET, paced, over keep-alive connections.
const LOAD_RATE = 300;
const LOAD_CONCURRENCY = 16;

// nginx as a target for api() (which needs only .port)
const via = (cluster) => ({ port: cluster.nginx.port });

async function registerVia(cluster, headers = {}) {
  const email = uniqueEmail('replica');
  const r = await api(via(cluster), 'POST', '/api/v1/auth/register', { body: { email, password: PASSWORD }, origin: cluster.origin, headers });
  expectStatus(r, 201);
  return { email, token: r.json.token, cookie: sessionCookie(r).value, user: r.json.user, res: r };
}

function summary(s) {
  const rate = (s.total / (s.ms / 1000)).toFixed(0);
  return `${s.total} requests in ${(s.ms / 1000).toFixed(1)} s (${rate}/s), ${s.failed} failed, ` +
    `${s.retried} resent after nginx closed the connection unanswered (${s.retriedFresh} of them on a new connection), statuses ${JSON.stringify(s.statuses)}, ` +
    `errors ${JSON.stringify(s.errors)}, per upstream ${JSON.stringify(s.byUpstream)}`;
}

describe('three replicas behind nginx (rate limits off)', () => {
  let cluster;
  before(async () => { cluster = await startCluster(); });
  after(async () => { if (cluster) await cluster.stop(); });

  it('a session created through one replica works on every replica; X-Forwarded-For is believed', async () => {
    const u = await registerVia(cluster, { 'X-Forwarded-For': '203.0.113.7' });
    assert.ok(cluster.upstreamOf(u.res) >= 0, 'X-Pulse-Upstream names a replica');
    // directly on each replica
    for (const srv of cluster.replicas) {
      const r = await api(srv, 'GET', '/api/v1/me', { cookie: u.cookie });
      expectStatus(r, 200);
      assert.equal(r.json.id, u.user.id);
    }
    // through nginx until every replica has answered (least_conn: round robin when idle)
    const seen = new Set();
    for (let i = 0; i < 30 && seen.size < cluster.replicas.length; i++) {
      const r = await api(via(cluster), 'GET', '/api/v1/me', { cookie: u.cookie });
      expectStatus(r, 200);
      assert.equal(r.json.id, u.user.id);
      seen.add(cluster.upstreamOf(r));
    }
    assert.deepEqual([...seen].sort(), [0, 1, 2], 'every replica answered through nginx');
    // the client address came through nginx's X-Forwarded-For
    const s = await api(via(cluster), 'GET', '/api/v1/auth/sessions', { token: u.token });
    expectStatus(s, 200);
    assert.equal(s.json.items.find((x) => x.current).ip, '203.0.113.7');
  });

  it('a logout through one replica is honoured by every replica at once (bound 100 ms)', async () => {
    const u = await registerVia(cluster);
    for (const srv of cluster.replicas) expectStatus(await api(srv, 'GET', '/api/v1/me', { cookie: u.cookie }), 200);
    const out = await api(via(cluster), 'POST', '/api/v1/auth/logout', { cookie: u.cookie, origin: cluster.origin });
    const t0 = performance.now();
    expectStatus(out, 204);
    const handler = cluster.upstreamOf(out);
    assert.ok(handler >= 0);
    // the replica that handled it refuses the cookie before anything else happens
    expectStatus(await api(cluster.replicas[handler], 'GET', '/api/v1/me', { cookie: u.cookie }), 401);
    // every replica, polled in parallel from logout's response on
    const polls = [];
    const ms = await Promise.all(cluster.replicas.map(async (srv, i) => {
      for (polls[i] = 1; ; polls[i]++) {
        const r = await api(srv, 'GET', '/api/v1/me', { cookie: u.cookie });
        if (r.status === 401) return performance.now() - t0;
        expectStatus(r, 200);
        assert.ok(performance.now() - t0 < 1000, 'revoked within 1 s');
        await sleep(2);
      }
    }));
    log(`logout through replica ${handler + 1}: cookie refused by the replicas directly after ${ms.map((x) => x.toFixed(1)).join(', ')} ms, at poll ${polls.join(', ')} (target < 100 ms; a poll is a request on a fresh connection)`);
    // generous bound against a loaded 2-core machine; the figure above is the measurement
    for (const x of ms) assert.ok(x < 1000, `revocation visible on every replica within 1 s (${x} ms)`);
    expectStatus(await api(via(cluster), 'GET', '/api/v1/me', { cookie: u.cookie }), 401);
  });

  it('a rolling restart (out of the upstream, SIGTERM, start, back in), one replica at a time under load, fails no request', async () => {
    const u = await registerVia(cluster);
    const load = startLoad({ url: cluster.url('/api/v1/me'), headers: { Authorization: `Bearer ${u.token}` }, rate: LOAD_RATE, concurrency: LOAD_CONCURRENCY });
    const backAt = [];
    const steps = [];
    const all = cluster.replicas.map((_, i) => i);
    try {
      await sleep(1000);
      for (const i of all) {
        const out = await cluster.setUpstreams(all.filter((j) => j !== i));
        const r = await cluster.restartReplica(i);
        assert.equal(r.exit.code, 0, `replica ${i + 1} exit status after SIGTERM (stderr: ${cluster.replicas[i].stderr.slice(-2000)})`);
        const back = await cluster.setUpstreams(all);
        backAt[i] = Date.now();
        steps.push(`pulse${i + 1}: reload ${out.ms} ms, SIGTERM to exit ${r.downMs} ms, start to ready ${r.startMs} ms, reload ${back.ms} ms`);
        await sleep(700);
      }
      await sleep(800);
    } finally {
      await load.stop();
    }
    const s = load.stats;
    log(`rolling restart: ${steps.join('; ')}`);
    log(`rolling restart under load: ${summary(s)}`);
    assert.ok(s.total >= LOAD_RATE * 3, `the load ran (${s.total} requests)`);
    // resends are bounded: each of the 2 reloads per replica closes at most the client
    // connections open at that moment (the agent's, plus the fresh ones of resends)
    const reloads = 2 * all.length;
    assert.ok(s.retried <= reloads * 2 * LOAD_CONCURRENCY, `resent ${s.retried}`);
    assert.equal(s.failed, 0, `failed requests: ${JSON.stringify(s.failures.slice(0, 20))}\nnginx error log: ${cluster.nginx.errorLog()}`);
    // each restarted replica took traffic again once back in the upstream
    for (const [i, at] of backAt.entries()) {
      const port = cluster.ports[i];
      const n = s.responses.filter((x) => x.started > at && x.upstream && x.upstream.endsWith(`:${port}`)).length;
      assert.ok(n > 0, `pulse${i + 1} answered requests after it was put back`);
    }
  });

  it('a SIGKILL of one replica under load costs at most the requests in flight on it', async () => {
    const u = await registerVia(cluster);
    const load = startLoad({ url: cluster.url('/api/v1/me'), headers: { Authorization: `Bearer ${u.token}` }, rate: LOAD_RATE, concurrency: LOAD_CONCURRENCY });
    let inFlight;
    let deadAt;
    const victim = 1;
    try {
      await sleep(1000);
      inFlight = load.inFlight();
      await cluster.replicas[victim].stop('SIGKILL');
      deadAt = Date.now();
      await sleep(2000);
    } finally {
      await load.stop();
    }
    const s = load.stats;
    const later = s.responses.filter((x) => x.started > deadAt);
    const rerouted = s.responses.filter((x) => x.upstream && x.upstream.includes(',')).length;
    log(`SIGKILL of pulse${victim + 1} with ${inFlight} requests in flight in all: ${s.failed} failed, ${rerouted} retried by nginx on another replica; ${summary(s)}`);
    // in flight on the victim <= in flight in all (sampled in the same tick as the kill) <= the
    // load's connections; a request sent after the kill never fails (nginx skips the dead one)
    assert.ok(s.failed <= LOAD_CONCURRENCY, `failures (${s.failed}) at most the requests in flight (${inFlight} at the kill, ${LOAD_CONCURRENCY} connections)`);
    for (const f of s.failures) assert.ok(f.started <= deadAt, `a request started after the kill failed: ${JSON.stringify(f)}`);
    assert.ok(later.length >= LOAD_RATE, `requests went on after the kill (${later.length})`);
    assert.ok(later.every((x) => x.status === 200));
    assert.ok(!later.some((x) => x.upstream && x.upstream.split(',').pop().trim().endsWith(`:${cluster.ports[victim]}`)), 'nobody answered from the dead replica');
    // it comes back on the same port
    await cluster.startReplica(victim);
    expectStatus(await api(cluster.replicas[victim], 'GET', '/api/v1/me', { token: u.token }), 200);
  });
});

describe('a rate limit is global across replicas', () => {
  let cluster;
  const READ_LIMIT = 5;
  before(async () => {
    const REDIS_URL = redisUrlWithDb(10); // fresh counters every run
    await flushRedisDb(REDIS_URL);
    cluster = await startCluster({ env: { REDIS_URL, PULSE_RATE_LIMITS: 'on', PULSE_RATE_READ: `${READ_LIMIT}/60` }, nginxWorkers: 1 });
  });
  after(async () => { if (cluster) await cluster.stop(); });

  it(`the ${READ_LIMIT + 1}th read is refused whichever replica gets it`, async () => {
    const u = await registerVia(cluster);
    const served = new Set();
    for (let i = 0; i < READ_LIMIT; i++) {
      const r = await api(via(cluster), 'GET', '/api/v1/feedings/today', { token: u.token });
      expectStatus(r, 200);
      assert.equal(r.headers['ratelimit-limit'], String(READ_LIMIT));
      assert.equal(r.headers['ratelimit-remaining'], String(READ_LIMIT - 1 - i));
      served.add(cluster.upstreamOf(r));
    }
    assert.ok(served.size >= 2, `the ${READ_LIMIT} allowed reads were spread over replicas (${[...served]})`);
    const r = await api(via(cluster), 'GET', '/api/v1/feedings/today', { token: u.token });
    expectProblem(r, 429, 'rate-limited');
    assert.ok(Number(r.headers['retry-after']) >= 1);
    for (const srv of cluster.replicas) {
      const d = await api(srv, 'GET', '/api/v1/feedings/today', { token: u.token });
      expectProblem(d, 429, 'rate-limited');
      assert.equal(d.headers['ratelimit-remaining'], '0');
    }
    log(`read limit ${READ_LIMIT}/60: reads 1..${READ_LIMIT} served by replicas ${[...served].map((i) => i + 1).join(', ')}, read ${READ_LIMIT + 1} refused through nginx and by each replica directly`);
  });
});
