// HTTP conformance over raw sockets against the real binary: keep-alive, pipelining,
// chunked bodies, limits, timeouts, smuggling attempts, headers of the contract, CORS.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { raw, serverFor, useServer } from './helpers.mjs';

const GET = (path, extra = '') => `GET ${path} HTTP/1.1\r\nHost: t\r\n${extra}\r\n`;

describe('HTTP server', () => {
  const srv = useServer({
    PULSE_HEAD_TIMEOUT_MS: '1000',
    PULSE_IDLE_TIMEOUT_MS: '1500',
    PULSE_CORS_ORIGINS: 'https://app.example, https://other.example',
    PULSE_MAX_BODY_BYTES: '4096',
  });

  it('answers /health/live with the contract headers', async () => {
    const r = await raw(srv.port, GET('/health/live'), { responses: 1 });
    const [res] = r.responses;
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { status: 'ok' });
    assert.equal(res.headers['content-type'], 'application/json');
    assert.match(res.headers['x-request-id'], /^[0-9a-f]{16}-[0-9a-f]+$/);
    assert.match(res.headers['x-response-time'], /^\d+\.\d{3}ms$/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['referrer-policy'], 'no-referrer');
    assert.equal(res.headers['x-frame-options'], 'DENY');
    assert.ok(res.headers.date);
    assert.equal(res.headers['strict-transport-security'], undefined);
  });

  it('echoes a sane X-Request-Id and replaces an insane one', async () => {
    let r = await raw(srv.port, GET('/health/live', 'X-Request-Id: abc.DEF_1-2\r\n'), { responses: 1 });
    assert.equal(r.responses[0].headers['x-request-id'], 'abc.DEF_1-2');
    r = await raw(srv.port, GET('/health/live', 'X-Request-Id: bad id!\r\n'), { responses: 1 });
    assert.notEqual(r.responses[0].headers['x-request-id'], 'bad id!');
    r = await raw(srv.port, GET('/health/live', `X-Request-Id: ${'a'.repeat(129)}\r\n`), { responses: 1 });
    assert.notEqual(r.responses[0].headers['x-request-id'], 'a'.repeat(129));
  });

  it('answers HEAD like GET without a body', async () => {
    const r = await raw(srv.port, [`HEAD /health/live HTTP/1.1\r\nHost: t\r\n\r\n`, GET('/health/live')], { responses: 1, timeout: 1500 });
    // The HEAD response has Content-Length 15 but no body, so the next bytes are the GET's.
    const text = r.text;
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /Content-Length: 15\r\n/);
    const second = text.indexOf('HTTP/1.1 200', 10);
    assert.ok(second > 0, 'second response follows directly');
    assert.equal(text.slice(text.indexOf('\r\n\r\n') + 4, second), '');
  });

  it('keeps a connection alive across requests', async () => {
    const r = await raw(srv.port, [GET('/health/live'), 100, GET('/health/live'), 100, GET('/metrics')], { responses: 3 });
    assert.deepEqual(r.responses.map((x) => x.status), [200, 200, 200]);
    assert.equal(r.closed, false);
  });

  it('answers pipelined requests in order', async () => {
    const reqs = ['a1', 'b2', 'c3', 'd4', 'e5'].map((id) => GET('/health/live', `X-Request-Id: ${id}\r\n`)).join('');
    const r = await raw(srv.port, reqs + GET('/api/v1/nope', 'X-Request-Id: f6\r\n'), { responses: 6 });
    assert.deepEqual(r.responses.map((x) => x.headers['x-request-id']), ['a1', 'b2', 'c3', 'd4', 'e5', 'f6']);
    assert.deepEqual(r.responses.map((x) => x.status), [200, 200, 200, 200, 200, 404]);
  });

  it('reads chunked bodies and keeps the connection in sync', async () => {
    const chunked = 'POST /health/live HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n' +
      '5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n';
    const r = await raw(srv.port, [chunked, GET('/health/live')], { responses: 2 });
    assert.deepEqual(r.responses.map((x) => x.status), [405, 200]);
    assert.equal(r.responses[0].headers.allow, 'GET, HEAD');
    assert.equal(r.responses[0].headers['content-type'], 'application/problem+json');
  });

  it('refuses a chunked body over the limit with 413', async () => {
    const big = 'x'.repeat(3000);
    const chunked = 'POST /health/live HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n' +
      `bb8\r\n${big}\r\nbb8\r\n${big}\r\n0\r\n\r\n`;
    const r = await raw(srv.port, chunked, { responses: 1 });
    assert.equal(r.responses[0].status, 413);
    assert.equal(JSON.parse(r.responses[0].body).type, '/problems/payload-too-large');
  });

  it('refuses a declared body over the limit before reading it', async () => {
    const r = await raw(srv.port, 'POST /health/live HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\nabc', { responses: 1 });
    assert.equal(r.responses[0].status, 413);
    assert.equal(r.responses[0].headers.connection, 'close');
  });

  it('refuses an oversized head with 431', async () => {
    const r = await raw(srv.port, `GET /health/live HTTP/1.1\r\nHost: t\r\nX-Big: ${'a'.repeat(17000)}\r\n\r\n`, { responses: 1 });
    assert.equal(r.responses[0].status, 431);
    assert.equal(JSON.parse(r.responses[0].body).type, '/problems/headers-too-large');
  });

  it('refuses too many header fields with 431', async () => {
    const many = Array.from({ length: 150 }, (_, i) => `X-H${i}: v\r\n`).join('');
    const r = await raw(srv.port, `GET /health/live HTTP/1.1\r\n${many}\r\n`, { responses: 1 });
    assert.equal(r.responses[0].status, 431);
  });

  for (const [name, bytes] of [
    ['a malformed request line', 'GET\r\n\r\n'],
    ['garbage', '\x00\x01\x02 garbage\r\n\r\n'],
    ['Transfer-Encoding with Content-Length', 'POST /health/live HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['duplicate Content-Length', 'POST /health/live HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'],
    ['an obs-fold header line', 'GET /health/live HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n folded\r\n\r\n'],
    ['a bare LF line end', 'GET /health/live HTTP/1.1\nHost: t\r\n\r\n'],
    ['a bad chunk size', 'POST /health/live HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ['a space before the colon', 'GET /health/live HTTP/1.1\r\nHost : t\r\n\r\n'],
    ['an unknown HTTP version', 'GET /health/live HTTP/7.1\r\nHost: t\r\n\r\n'],
  ]) {
    it(`answers ${name} with 400 and closes`, async () => {
      const r = await raw(srv.port, bytes, { timeout: 3000 });
      assert.equal(r.responses.length, 1, r.text);
      assert.equal(r.responses[0].status, 400);
      assert.equal(JSON.parse(r.responses[0].body).type, '/problems/malformed');
      assert.equal(r.closed, true);
    });
  }

  it('answers a slow head with 408 at the head timeout', async () => {
    const r = await raw(srv.port, 'GET /health/live HTTP/1.1\r\nHost:', { timeout: 5000 });
    assert.equal(r.responses[0]?.status, 408);
    assert.equal(r.closed, true);
    assert.ok(r.ms >= 900 && r.ms < 4000, `closed after ${r.ms} ms`);
  });

  it('closes a connection that sent nothing at the head timeout, silently', async () => {
    const r = await raw(srv.port, [], { timeout: 5000 });
    assert.equal(r.text, '');
    assert.equal(r.closed, true);
    assert.ok(r.ms >= 900 && r.ms < 4000, `closed after ${r.ms} ms`);
  });

  it('closes an idle keep-alive connection silently', async () => {
    const r = await raw(srv.port, GET('/health/live'), { timeout: 6000 });
    assert.equal(r.responses.length, 1);
    assert.equal(r.closed, true);
    assert.ok(r.ms >= 1400 && r.ms < 5000, `closed after ${r.ms} ms`);
  });

  it('survives connections closed mid-request', async () => {
    const partials = ['GET /health/li', 'POST /health/live HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc',
      'POST /health/live HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab'];
    await Promise.all(partials.map((p) => raw(srv.port, p, { timeout: 100 })));
    const r = await raw(srv.port, GET('/health/live'), { responses: 1 });
    assert.equal(r.responses[0].status, 200);
  });

  it('answers 404 and 405 as problem+json', async () => {
    let r = await raw(srv.port, GET('/api/v1/nothing-here'), { responses: 1 });
    assert.equal(r.responses[0].status, 404);
    const p = JSON.parse(r.responses[0].body);
    assert.equal(p.type, '/problems/not-found');
    assert.equal(p.status, 404);
    assert.equal(p.title, 'Not Found');
    assert.equal(p.request_id, r.responses[0].headers['x-request-id']);
    r = await raw(srv.port, 'DELETE /metrics HTTP/1.1\r\nHost: t\r\n\r\n', { responses: 1 });
    assert.equal(r.responses[0].status, 405);
    assert.equal(r.responses[0].headers.allow, 'GET, HEAD');
  });

  it('answers CORS preflights for allowed origins only', async () => {
    const pre = (origin) => `OPTIONS /health/ready HTTP/1.1\r\nHost: t\r\nOrigin: ${origin}\r\nAccess-Control-Request-Method: GET\r\n\r\n`;
    let r = await raw(srv.port, pre('https://app.example'), { responses: 1 });
    let h = r.responses[0].headers;
    assert.equal(r.responses[0].status, 204);
    assert.equal(h['access-control-allow-origin'], 'https://app.example');
    assert.equal(h['access-control-allow-credentials'], 'true');
    assert.equal(h['access-control-max-age'], '600');
    assert.equal(h['access-control-allow-headers'], 'Authorization, Content-Type, Idempotency-Key, If-Match, X-Request-Id');
    assert.match(h.vary, /Origin/);
    r = await raw(srv.port, pre('https://evil.example'), { responses: 1 });
    h = r.responses[0].headers;
    assert.equal(r.responses[0].status, 204);
    assert.deepEqual(Object.keys(h).filter((k) => k.startsWith('access-control-')), []);
    r = await raw(srv.port, GET('/health/live', 'Origin: https://other.example\r\n'), { responses: 1 });
    h = r.responses[0].headers;
    assert.equal(h['access-control-allow-origin'], 'https://other.example');
    assert.match(h['access-control-expose-headers'], /RateLimit-Remaining/);
  });

  it('reports readiness with both checks', async () => {
    const res = await fetch(srv.url('/health/ready'));
    assert.equal(res.status, 200);
    const j = await res.json();
    assert.equal(j.status, 'ok');
    assert.equal(j.checks.postgres.ok, true);
    assert.equal(j.checks.redis.ok, true);
    assert.equal(typeof j.checks.postgres.latency_ms, 'number');
  });

  it('exposes Prometheus metrics with the contract names', async () => {
    await fetch(srv.url('/health/live'));
    const text = await (await fetch(srv.url('/metrics'))).text();
    for (const name of ['pulse_http_requests_total{route="/health/live",method="GET",status="200"}',
      'pulse_http_request_duration_seconds_bucket{route="/health/live",le="0.0005"}',
      'pulse_connections ', 'pulse_pg_pool_connections{state="busy"}', 'pulse_pg_wait_seconds_bucket',
      'pulse_redis_errors_total ', 'pulse_ratelimit_rejections_total{class="login"} ', 'process_cpu_seconds_total ',
      'process_resident_memory_bytes ', 'process_open_fds ']) {
      assert.ok(text.includes(name), `missing ${name}`);
    }
  });

  it('serves the OpenAPI 3.1 document', async () => {
    const res = await fetch(srv.url('/api/v1/openapi.json'));
    assert.equal(res.status, 200);
    const doc = await res.json();
    assert.equal(doc.openapi, '3.1.0');
    for (const p of ['/health/live', '/health/ready', '/metrics', '/api/v1/openapi.json']) assert.ok(doc.paths[p], p);
  });

  it('writes one JSON access-log line per request, without query strings', async () => {
    await fetch(srv.url('/health/live?access_token=secret123'), { headers: { 'X-Request-Id': 'logcheck-1' } });
    const line = await (async () => {
      for (let i = 0; i < 50; i++) {
        const l = srv.logs.find((x) => x.request_id === 'logcheck-1');
        if (l) return l;
        await new Promise((r) => setTimeout(r, 50));
      }
      return null;
    })();
    assert.ok(line, 'access log line');
    assert.equal(line.msg, 'request');
    assert.equal(line.route, '/health/live');
    assert.equal(line.status, 200);
    assert.equal(typeof line.duration_ms, 'number');
    assert.ok(!JSON.stringify(srv.logs).includes('secret123'));
  });
});

describe('connection cap and metrics token', () => {
  it('refuses connections beyond the cap with 503 and recovers', async (t) => {
    const srv = await serverFor(t, { PULSE_MAX_CONNECTIONS: '4', PULSE_WORKERS: '1', PULSE_METRICS_TOKEN: 'tok-123' });
    const { default: net } = await import('node:net');
    const held = await Promise.all(Array.from({ length: 4 }, () => new Promise((res) => {
      const s = net.connect(srv.port, '127.0.0.1', () => res(s));
    })));
    await new Promise((r) => setTimeout(r, 200));
    const r = await raw(srv.port, GET('/health/live'), { timeout: 3000 });
    assert.equal(r.responses[0]?.status, 503);
    assert.equal(r.responses[0].headers.connection, 'close');
    held.forEach((s) => s.destroy());
    await new Promise((r2) => setTimeout(r2, 300));
    let res = await fetch(srv.url('/metrics'));
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer');
    res = await fetch(srv.url('/metrics'), { headers: { Authorization: 'Bearer tok-124' } });
    assert.equal(res.status, 401);
    res = await fetch(srv.url('/metrics'), { headers: { Authorization: 'Bearer tok-123' } });
    assert.equal(res.status, 200);
  });
});
