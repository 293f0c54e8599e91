// /metrics against the real binary: the exposition is well formed (every sample belongs to
// a family declared by HELP and TYPE), the contract's names and labels are there, and the
// histograms move: pulse_pg_wait_seconds observes every batch (0 included, so a batch that
// did not queue lands in the first bucket), and a route's latency histogram counts what its
// request counter counts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { API_ENV, api, expectStatus, register } from './api.mjs';
import { useServer } from './helpers.mjs';

// { families: Map(name → type), samples: Map('name{labels}' → number) }
function parseExposition(text) {
  const families = new Map();
  const helps = new Set();
  const samples = new Map();
  assert.ok(text.endsWith('\n'));
  for (const line of text.slice(0, -1).split('\n')) {
    let m;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line))) {
      helps.add(m[1]);
    } else if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line))) {
      assert.ok(helps.has(m[1]), `TYPE before HELP: ${line}`);
      assert.ok(!families.has(m[1]), `declared twice: ${m[1]}`);
      families.set(m[1], m[2]);
    } else {
      m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.]+(?:e[+-]?\d+)?|[+-]Inf|NaN)$/.exec(line);
      assert.ok(m, `not a sample: ${JSON.stringify(line)}`);
      const family = families.has(m[1]) ? m[1] : m[1].replace(/_(bucket|sum|count)$/, '');
      assert.ok(families.has(family), `no TYPE for ${m[1]}`);
      if (family !== m[1]) assert.equal(families.get(family), 'histogram', line);
      const key = m[1] + (m[2] || '');
      assert.ok(!samples.has(key), `repeated sample ${key}`);
      samples.set(key, Number(m[3]));
    }
  }
  return { families, samples };
}

describe('/metrics', () => {
  const srv = useServer({ ...API_ENV, PULSE_WORKERS: '1' });

  const scrape = async () => {
    const res = await fetch(srv.url('/metrics'));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    return parseExposition(await res.text());
  };

  it('is well formed and has the contract families with their labels', async () => {
    const { families, samples } = await scrape();
    for (const [name, type] of Object.entries({
      pulse_http_requests_total: 'counter', pulse_http_request_duration_seconds: 'histogram',
      pulse_connections: 'gauge', pulse_ws_clients: 'gauge', pulse_ws_frames_dropped_total: 'counter',
      pulse_pg_pool_connections: 'gauge', pulse_pg_waiting: 'gauge', pulse_pg_errors_total: 'counter',
      pulse_pg_wait_seconds: 'histogram', pulse_redis_up: 'gauge', pulse_redis_errors_total: 'counter',
      pulse_workers: 'gauge', pulse_ratelimit_rejections_total: 'counter',
      process_cpu_seconds_total: 'counter', process_resident_memory_bytes: 'gauge', process_open_fds: 'gauge',
      process_max_fds: 'gauge', process_start_time_seconds: 'gauge',
    })) assert.equal(families.get(name), type, name);
    for (const s of ['size', 'connected', 'busy', 'idle']) assert.ok(samples.has(`pulse_pg_pool_connections{state="${s}"}`), s);
    for (const c of ['login', 'register', 'read', 'write', 'export']) assert.ok(samples.has(`pulse_ratelimit_rejections_total{class="${c}"}`), c);
    const les = [...samples.keys()].filter((k) => k.startsWith('pulse_pg_wait_seconds_bucket')).map((k) => /le="([^"]+)"/.exec(k)[1]);
    assert.deepEqual(les, ['0.001', '0.005', '0.01', '0.05', '0.1', '0.5', '2.5', '+Inf']);
    assert.equal(samples.get('pulse_workers'), 1);
    assert.ok(samples.get('process_resident_memory_bytes') > 0);
  });

  it('pulse_pg_wait_seconds observes every batch: its buckets move with its count', async () => {
    const u = await register(srv);
    const before = (await scrape()).samples;
    for (let i = 0; i < 5; i++) expectStatus(await api(srv, 'GET', '/api/v1/notes', { token: u.token }), 200);
    const now = (await scrape()).samples;
    const delta = (k) => now.get(k) - (before.get(k) || 0);
    const batches = delta('pulse_pg_wait_seconds_count');
    assert.ok(batches >= 5, `only ${batches} batches for 5 queries`);
    assert.equal(delta('pulse_pg_wait_seconds_bucket{le="+Inf"}'), batches);
    // An idle pool sends every batch at once: waits of 0, in the first bucket.
    assert.ok(delta('pulse_pg_wait_seconds_bucket{le="0.001"}') >= 1, 'the first bucket did not move');
    let prev = 0;
    for (const le of ['0.001', '0.005', '0.01', '0.05', '0.1', '0.5', '2.5', '+Inf']) {
      const v = now.get(`pulse_pg_wait_seconds_bucket{le="${le}"}`);
      assert.ok(v >= prev, `buckets must be cumulative at le=${le}`);
      prev = v;
    }
    assert.equal(prev, now.get('pulse_pg_wait_seconds_count'));
  });

  it('a route\'s latency histogram counts what its request counter counts', async () => {
    const before = (await scrape()).samples;
    for (let i = 0; i < 7; i++) assert.equal((await fetch(srv.url('/health/live'))).status, 200);
    const now = (await scrape()).samples;
    const delta = (k) => now.get(k) - (before.get(k) || 0);
    assert.equal(delta('pulse_http_requests_total{route="/health/live",method="GET",status="200"}'), 7);
    assert.equal(delta('pulse_http_request_duration_seconds_count{route="/health/live"}'), 7);
    assert.equal(delta('pulse_http_request_duration_seconds_bucket{route="/health/live",le="+Inf"}'), 7);
    const les = [...now.keys()].filter((k) => k.startsWith('pulse_http_request_duration_seconds_bucket{route="/health/live"'))
      .map((k) => /le="([^"]+)"/.exec(k)[1]);
    assert.deepEqual(les, ['0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '+Inf']);
  });
});
