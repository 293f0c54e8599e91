// The live WebSocket (/api/v1/live): handshake authentication, hello, metrics cadence and
// shape, events across two server processes sharing Postgres and Redis, topics, ping/pong,
// size limits, revocation (4401), the slow reader (1008) and shutdown (1001).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import WebSocket from 'ws';

import {
  API_ENV, PUBLIC_ORIGIN, api, createToken, expect401, expect403, expectProblem, expectStatus, login, redisCommands, register, sleep,
} from './api.mjs';
import { ROOT, serverFor, useServer, waitFor } from './helpers.mjs';

const REDIS_URL = () => process.env.REDIS_URL;

const INTERVAL_MS = 100;
const ENV = { ...API_ENV, PULSE_METRICS_INTERVAL_MS: String(INTERVAL_MS) };

// Opens a socket and collects its messages; resolves once open (or rejects with the HTTP
// status of a refused handshake).
function connect(srv, { token, cookie, origin, query = '', headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  if (cookie) h.Cookie = `pulse_session=${cookie}`;
  const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/api/v1/live${query}`, {
    headers: h, origin, handshakeTimeout: 10000,
  });
  const client = { ws, messages: [], closed: null, waiters: [] };
  ws.on('message', (data, isBinary) => {
    const m = isBinary ? { binary: true } : JSON.parse(String(data));
    m.at = performance.now();
    client.messages.push(m);
    for (const w of client.waiters.splice(0)) w();
  });
  ws.on('close', (code, reason) => {
    client.closed = { code, reason: String(reason), at: performance.now() };
    for (const w of client.waiters.splice(0)) w();
  });
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve(client));
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        const e = new Error(`handshake refused: ${res.statusCode}`);
        e.status = res.statusCode;
        e.headers = res.headers;
        e.body = body;
        reject(e);
      });
    });
    ws.on('error', (e) => reject(e));
  });
}

// Waits until `pred(message)` matches a message received after index `from`.
async function next(client, pred, { from = 0, timeout = 5000 } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const m = client.messages.slice(from).find(pred);
    if (m) return m;
    if (client.closed) throw new Error(`socket closed (${client.closed.code}) while waiting`);
    const left = end - Date.now();
    if (left <= 0) throw new Error(`no matching message in ${timeout} ms; got ${JSON.stringify(client.messages.slice(-3))}`);
    await new Promise((r) => { client.waiters.push(r); setTimeout(r, left); });
  }
}

async function closedWith(client, timeout = 5000) {
  await waitFor(() => client.closed, { timeout, interval: 10 });
  return client.closed;
}

function refused(promise) {
  return promise.then(() => { throw new Error('the handshake was accepted'); }, (e) => e);
}

async function metricValue(srv, name) {
  const r = await api(srv, 'GET', '/metrics', { origin: null });
  const line = r.text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

describe('live WebSocket', () => {
  // two processes sharing Postgres and Redis
  const a = useServer(ENV);
  const b = useServer(ENV);

  test('the handshake needs a credential, a known Origin with the cookie, and an upgrade', async () => {
    let e = await refused(connect(a));
    assert.equal(e.status, 401);
    assert.equal(JSON.parse(e.body).type, '/problems/unauthorized');
    e = await refused(connect(a, { token: 'not-a-token' }));
    assert.equal(e.status, 401);

    const u = await register(a);
    // cookie + foreign Origin: 403; cookie without Origin: 403 (browsers always send one, so
    // such a handshake did not come from our pages); cookie + our Origin: accepted
    e = await refused(connect(a, { cookie: u.cookie.value, origin: 'https://evil.example' }));
    assert.equal(e.status, 403);
    e = await refused(connect(a, { cookie: u.cookie.value }));
    assert.equal(e.status, 403, 'a cookie handshake without Origin was not refused');
    assert.equal(JSON.parse(e.body).type, '/problems/forbidden');
    // a bearer handshake needs no Origin
    (await connect(a, { token: u.token })).ws.close();
    const ok = await connect(a, { cookie: u.cookie.value, origin: PUBLIC_ORIGIN });
    ok.ws.close();

    // a plain GET (no upgrade) is authenticated first, then told to upgrade
    expect401(await api(a, 'GET', '/api/v1/live', { origin: null }));
    const r = await api(a, 'GET', '/api/v1/live', { token: u.token, origin: null });
    expectStatus(r, 426);
    assert.equal(r.headers.upgrade, 'websocket');
  });

  test('hello first, then metrics every interval with the contract fields and types', async () => {
    const u = await register(a);
    const c = await connect(a, { token: u.token });
    const hello = await next(c, (m) => m.type === 'hello');
    assert.equal(c.messages[0].type, 'hello');
    assert.equal(hello.user_id, u.user.id);
    assert.equal(typeof hello.instance, 'string');
    assert.match(hello.server_time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    assert.deepEqual(hello.topics, ['metrics', 'events']);

    const first = c.messages.length;
    await sleep(INTERVAL_MS * 12);
    const metrics = c.messages.slice(first).filter((m) => m.type === 'metrics');
    // 12 intervals: expect about 12 frames; allow a loaded machine its jitter
    assert.ok(metrics.length >= 5 && metrics.length <= 14, `${metrics.length} metrics frames in ${INTERVAL_MS * 12} ms`);
    const m = metrics.at(-1);
    assert.deepEqual(Object.keys(m).sort(), ['at', 'server', 'system', 'ts', 'type']);
    assert.deepEqual(Object.keys(m.system).sort(), ['cpu_percent', 'disk_total_bytes', 'disk_used_bytes', 'load1',
      'mem_total_bytes', 'mem_used_bytes', 'net_rx_bytes_per_s', 'net_tx_bytes_per_s']);
    assert.deepEqual(Object.keys(m.server).sort(), ['connections', 'db_pool_busy', 'db_pool_size', 'errors_per_s',
      'p50_ms', 'p95_ms', 'p99_ms', 'requests_per_s', 'ws_clients']);
    for (const [k, v] of Object.entries({ ...m.system, ...m.server })) assert.equal(typeof v, 'number', k);
    assert.ok(m.system.cpu_percent >= 0 && m.system.cpu_percent <= 100);
    assert.ok(m.system.mem_total_bytes > m.system.mem_used_bytes && m.system.mem_used_bytes > 0);
    assert.ok(m.system.disk_total_bytes > 0);
    assert.ok(Number.isInteger(m.server.ws_clients) && m.server.ws_clients >= 1);
    assert.ok(m.server.connections >= m.server.ws_clients);
    assert.ok(m.server.db_pool_size >= 1);
    // timestamps advance by about one interval
    const gaps = metrics.slice(1).map((x, i) => Date.parse(x.ts) - Date.parse(metrics[i].ts));
    assert.ok(gaps.every((g) => g > 0 && g < INTERVAL_MS * 10), `gaps ${gaps}`);
    c.ws.close();
  });

  test('an event made through one process reaches the user\'s socket on the other, and nobody else\'s', async () => {
    const u = await register(a);
    const other = await register(a);
    const pat = await createToken(a, u.token, { scopes: ['read'] });
    const mine = await connect(b, { token: u.token });
    const theirs = await connect(b, { token: other.token });
    const viaToken = await connect(b, { query: `?access_token=${encodeURIComponent(pat.token)}` });
    await next(mine, (m) => m.type === 'hello');
    await next(viaToken, (m) => m.type === 'hello');
    await sleep(200); // the SUBSCRIBE of a new user's channel is asynchronous
    const lags = [];
    for (let i = 0; i < 5; i++) {
      const from = mine.messages.length;
      const t0 = performance.now();
      const r = await api(a, 'POST', '/api/v1/feedings', { token: u.token, body: { amount_ml: 100 + i, kind: 'milk' } });
      expectStatus(r, 201);
      const ev = await next(mine, (m) => m.type === 'event', { from, timeout: 1000 });
      lags.push(ev.at - t0);
      assert.equal(ev.event, 'feeding.created');
      assert.deepEqual(ev.data, r.json);
    }
    await next(viaToken, (m) => m.type === 'event' && m.data.amount_ml === 104, { timeout: 1000 });
    // a change of another kind, and a delete: {id} only
    const n = await api(a, 'POST', '/api/v1/notes', { token: u.token, body: { title: 'live', body: 'x' } });
    expectStatus(n, 201);
    await next(mine, (m) => m.event === 'note.created' && m.data.id === n.json.id, { timeout: 1000 });
    const d = await api(a, 'DELETE', `/api/v1/notes/${n.json.id}`, { token: u.token, headers: { 'If-Match': `"${n.json.version}"` } });
    expectStatus(d, 204);
    const del = await next(mine, (m) => m.event === 'note.deleted', { timeout: 1000 });
    assert.deepEqual(del.data, { id: n.json.id });

    await sleep(300);
    assert.equal(theirs.messages.filter((m) => m.type === 'event').length, 0, 'another user received an event');
    lags.sort((x, y) => x - y);
    console.log(`# event lag across processes (POST sent → event received), ms: median ${lags[2].toFixed(1)}, max ${lags[4].toFixed(1)}`);
    // ?access_token= never reaches a log line (nor does the bearer token)
    const logged = b.logs.find((l) => l.msg === 'request' && l.route === '/api/v1/live' && l.status === 101);
    assert.ok(logged, 'the handshake is logged');
    for (const t of [u.token, pat.token]) {
      assert.ok(!JSON.stringify(b.logs).includes(t), 'a token was logged');
      assert.ok(!b.stderr.includes(t), 'a token reached stderr');
    }
    for (const c of [mine, theirs, viaToken]) c.ws.close();
  });

  test('subscribe and unsubscribe change the topics; bad messages get an error and the socket stays', async () => {
    const u = await register(a);
    const c = await connect(a, { token: u.token });
    await next(c, (m) => m.type === 'hello');
    let from = c.messages.length;
    c.ws.send(JSON.stringify({ type: 'unsubscribe', topics: ['events', 'metrics'] }));
    const s = await next(c, (m) => m.type === 'subscribed', { from });
    assert.deepEqual(s.topics, []);
    await sleep(INTERVAL_MS * 2);
    from = c.messages.length;
    expectStatus(await api(a, 'POST', '/api/v1/feedings', { token: u.token, body: { amount_ml: 50 } }), 201);
    await sleep(INTERVAL_MS * 5);
    assert.deepEqual(c.messages.slice(from).map((m) => m.type), [], 'messages arrived after unsubscribing from both topics');

    c.ws.send(JSON.stringify({ type: 'subscribe', topics: ['events'] }));
    assert.deepEqual((await next(c, (m) => m.type === 'subscribed', { from })).topics, ['events']);
    from = c.messages.length;
    expectStatus(await api(a, 'POST', '/api/v1/feedings', { token: u.token, body: { amount_ml: 51 } }), 201);
    await next(c, (m) => m.type === 'event' && m.data.amount_ml === 51, { from, timeout: 1000 });
    assert.equal(c.messages.slice(from).filter((m) => m.type === 'metrics').length, 0);

    for (const [msg, re] of [
      ['not json', /JSON|malformed|parse/i],
      ['[1,2]', /object/i],
      [JSON.stringify({ type: 'dance' }), /unknown message type/],
      [JSON.stringify({ topics: ['events'] }), /type/],
      [JSON.stringify({ type: 'subscribe', topics: ['weather'] }), /unknown topic/],
      [JSON.stringify({ type: 'subscribe', topics: 'events' }), /topics/],
      [JSON.stringify({ type: 'subscribe', topics: [] }), /topics/],
    ]) {
      from = c.messages.length;
      c.ws.send(msg);
      const e = await next(c, (m) => m.type === 'error', { from });
      assert.match(e.detail, re, msg);
    }
    from = c.messages.length;
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    assert.match((await next(c, (m) => m.type === 'error', { from })).detail, /text/);
    // topics unchanged by the refused messages
    c.ws.send(JSON.stringify({ type: 'subscribe', topics: ['metrics'] }));
    assert.deepEqual((await next(c, (m) => m.type === 'subscribed', { from })).topics, ['metrics', 'events']);
    assert.equal(c.closed, null);
    c.ws.close();
  });

  test('ping is answered by pong, at the JSON and the WebSocket level', async () => {
    const u = await register(a);
    const c = await connect(a, { token: u.token });
    const from = c.messages.length;
    c.ws.send('{"type":"ping"}');
    await next(c, (m) => m.type === 'pong', { from });
    const pong = new Promise((resolve) => c.ws.once('pong', (data) => resolve(String(data))));
    c.ws.ping('are-you-there');
    assert.equal(await pong, 'are-you-there');
    c.ws.close();
  });

  test('idle sockets are pinged; one that never answers is dropped', async (t) => {
    const srv = await serverFor(t, { ...ENV, PULSE_METRICS_INTERVAL_MS: '60000', PULSE_WS_PING_S: '1' });
    const u = await register(srv);
    // ws answers pings by itself: it stays
    const good = await connect(srv, { token: u.token });
    const pinged = new Promise((resolve) => good.ws.once('ping', resolve));
    // a raw socket that reads but never answers a ping
    const silent = net.connect(srv.port, '127.0.0.1');
    let raw = Buffer.alloc(0);
    const silentEnd = new Promise((resolve) => silent.on('close', () => resolve(performance.now())));
    silent.on('data', (d) => { raw = Buffer.concat([raw, d]); });
    silent.write(`GET /api/v1/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
      + `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${u.token}\r\n\r\n`);
    const t0 = performance.now();
    await pinged;
    const droppedAt = await Promise.race([silentEnd, sleep(10000).then(() => null)]);
    assert.ok(droppedAt, 'the silent socket was not dropped within 10 s');
    assert.ok(raw.includes(Buffer.from([0x89])), 'the silent socket never saw a ping frame');
    await sleep(500);
    assert.equal(good.closed, null, 'the socket that answers pings was dropped');
    console.log(`# ping 1 s: silent socket dropped after ${((droppedAt - t0) / 1000).toFixed(1)} s`);
    good.ws.close();
  });

  test('an inbound message of 64 KiB is read; one byte more closes with 1009', async () => {
    const u = await register(a);
    const c = await connect(a, { token: u.token });
    const base = '{"type":"ping","pad":""}';
    const fits = base.replace('""', `"${'x'.repeat(65536 - base.length)}"`);
    assert.equal(Buffer.byteLength(fits), 65536);
    let from = c.messages.length;
    c.ws.send(fits);
    await next(c, (m) => m.type === 'pong', { from });
    // fragmented: the limit is on the message, not the frame
    from = c.messages.length;
    const half = fits.length / 2;
    c.ws.send(fits.slice(0, half), { fin: false });
    c.ws.send(fits.slice(half), { fin: true });
    await next(c, (m) => m.type === 'pong', { from });
    c.ws.send(base.replace('""', `"${'x'.repeat(65537 - base.length)}"`));
    assert.equal((await closedWith(c)).code, 1009);
    // and the server is fine
    expectStatus(await api(a, 'GET', '/health/live', { origin: null }), 200);
  });

  test('invalid UTF-8 in a text frame closes with 1007', async () => {
    const u = await register(a);
    const c = await connect(a, { token: u.token });
    // ws refuses to send invalid UTF-8 as text itself: write the frame on the raw socket
    const payload = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
    const mask = Buffer.from([1, 2, 3, 4]);
    const masked = Buffer.from(payload.map((x, i) => x ^ mask[i % 4]));
    c.ws._socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
    assert.equal((await closedWith(c)).code, 1007);
  });

  test('logout, session revocation, token deletion, password change and account deletion close their sockets with 4401', async () => {
    const u = await register(a);
    const second = await login(a, u.email);
    const pat = await createToken(a, u.token, { scopes: ['read'] });
    const s1 = await connect(b, { token: u.token });
    const s2 = await connect(b, { token: second.token });
    const t1 = await connect(a, { token: pat.token });
    for (const c of [s1, s2, t1]) await next(c, (m) => m.type === 'hello');

    // deleting the token closes the socket opened with it, on the other process
    let t0 = performance.now();
    expectStatus(await api(a, 'DELETE', `/api/v1/tokens/${pat.id}`, { token: u.token }), 204);
    let closed = await closedWith(t1, 2000);
    assert.equal(closed.code, 4401);
    const tokenMs = closed.at - t0;
    assert.equal(s1.closed, null);

    // logout of the second session closes only its socket
    t0 = performance.now();
    expectStatus(await api(a, 'POST', '/api/v1/auth/logout', { token: second.token }), 204);
    closed = await closedWith(s2, 2000);
    assert.equal(closed.code, 4401);
    const logoutMs = closed.at - t0;
    await sleep(100);
    assert.equal(s1.closed, null, 'logout of one session closed another session\'s socket');

    // a revoked session cannot open a new socket
    const e = await refused(connect(b, { token: second.token }));
    assert.equal(e.status, 401);

    // a password change closes the other sessions' sockets, not the caller's own
    const third = await login(a, u.email);
    const s3 = await connect(b, { token: third.token });
    await next(s3, (m) => m.type === 'hello');
    expectStatus(await api(a, 'POST', '/api/v1/auth/password', {
      token: u.token, body: { current_password: u.password, new_password: 'another long passphrase' },
    }), 204);
    assert.equal((await closedWith(s3, 2000)).code, 4401);
    await sleep(100);
    assert.equal(s1.closed, null, 'the password change closed the caller\'s own socket');

    // account deletion closes every socket of the user
    const s4 = await connect(a, { token: u.token });
    await next(s4, (m) => m.type === 'hello');
    expectStatus(await api(a, 'DELETE', '/api/v1/me', { token: u.token, body: { password: 'another long passphrase' } }), 204);
    assert.equal((await closedWith(s1, 2000)).code, 4401);
    assert.equal((await closedWith(s4, 2000)).code, 4401);
    console.log(`# revocation → socket closed, ms: token ${tokenMs.toFixed(1)}, logout ${logoutMs.toFixed(1)}`);
  });

  test('a password change with revoke_tokens closes the sockets of every token of the user with 4401', async () => {
    const u = await register(a);
    const other = await register(a);
    const pats = [await createToken(a, u.token, { scopes: ['read'] }), await createToken(a, u.token)];
    const otherPat = await createToken(a, other.token, { scopes: ['read'] });
    const byToken = [await connect(b, { token: pats[0].token }), await connect(a, { token: pats[1].token })];
    const own = await connect(b, { token: u.token });
    const others = await connect(b, { token: otherPat.token });
    for (const c of [...byToken, own, others]) await next(c, (m) => m.type === 'hello');
    expectStatus(await api(a, 'POST', '/api/v1/auth/password', {
      token: u.token, body: { current_password: u.password, new_password: 'another long passphrase', revoke_tokens: true },
    }), 204);
    for (const c of byToken) assert.equal((await closedWith(c, 2000)).code, 4401);
    await sleep(100);
    assert.equal(own.closed, null, 'the caller\'s own session socket stays');
    assert.equal(others.closed, null, 'another user\'s token socket stays');
    own.ws.close();
    others.ws.close();
  });

  test('a session or token that expires while its socket is open closes it with 4401', async (t) => {
    const { psql, redisCommands } = await import('./api.mjs');
    const srv = await serverFor(t, { ...ENV, PULSE_WS_RECHECK_S: '1' });
    const u = await register(srv);
    const other = await login(srv, u.email);
    const pat = await createToken(srv, u.token, { scopes: ['read'] });
    const bySession = await connect(srv, { token: other.token });
    const byToken = await connect(srv, { token: pat.token });
    const keeper = await connect(srv, { token: u.token });
    for (const c of [bySession, byToken, keeper]) await next(c, (m) => m.type === 'hello');
    // the session ends in Redis as expiry would end it (its key gone), not through logout
    const sessions = (await api(srv, 'GET', '/api/v1/auth/sessions', { token: u.token })).json.items;
    const victim = sessions.find((s) => !s.current && s.id);
    await redisCommands(process.env.REDIS_URL, [['DEL', `pulse:sess:${victim.id}`]]);
    // the token expires in Postgres
    psql(`UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = '${pat.id}'`);
    assert.equal((await closedWith(bySession, 5000)).code, 4401);
    assert.equal((await closedWith(byToken, 5000)).code, 4401);
    await sleep(1500); // another round: the live session's socket stays
    assert.equal(keeper.closed, null);
    keeper.ws.close();
  });

  test('a client that never reads is closed and the server\'s memory stays bounded', async (t) => {
    const probe = path.join(path.dirname(process.env.PULSE_BIN || path.join(ROOT, 'build-asan/pulsed')), 'tests/wsprobe');
    if (!existsSync(probe)) {
      assert.fail(`${probe} is missing: the test build makes it`);
    }
    const srv = await serverFor(t, { ...ENV, PULSE_METRICS_INTERVAL_MS: '50', PULSE_WS_QUEUE_BYTES: '2048', PULSE_WS_STALL_MS: '500' });
    const u = await register(srv);
    const rss0 = await metricValue(srv, 'process_resident_memory_bytes');
    const dropped0 = await metricValue(srv, 'pulse_ws_frames_dropped_total');
    const child = spawn(probe, ['stall', '--port', String(srv.port), '--token', u.token, '--rcvbuf', '4096', '--seconds', '60', '--wait', '20'],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    const exited = new Promise((r) => child.on('exit', r));
    await waitFor(() => out.includes('"established"'), { timeout: 10000 });
    // events pile up too: a burst of feedings for the stalled user
    for (let i = 0; i < 80 && (await metricValue(srv, 'pulse_ws_clients')) > 0; i++) {
      expectStatus(await api(srv, 'POST', '/api/v1/feedings', { token: u.token, body: { amount_ml: 10 + i, note: 'x'.repeat(900) } }), 201);
    }
    // the server drops it: no WebSocket client left
    await waitFor(async () => (await metricValue(srv, 'pulse_ws_clients')) === 0, { timeout: 15000, interval: 100 });
    const dropped = await metricValue(srv, 'pulse_ws_frames_dropped_total');
    assert.ok(dropped > dropped0, `frames dropped ${dropped0} → ${dropped}`);
    const rss1 = await metricValue(srv, 'process_resident_memory_bytes');
    assert.ok(rss1 - rss0 < 32 * 1024 * 1024, `RSS grew by ${rss1 - rss0} bytes`);
    child.kill('SIGUSR1');
    await exited;
    const last = JSON.parse(out.trim().split('\n').at(-1));
    assert.equal(last.closed, true);
    // the close frame reaches the client only if the socket drained in time; if it did, it says 1008
    if (last.close_code !== null) assert.equal(last.close_code, 1008);
    assert.ok(srv.logs.some((l) => l.msg === 'live: slow reader closed'), 'no log line for the slow reader');
  });

  test('shutdown closes sockets with 1001 and exits 0', async (t) => {
    const srv = await serverFor(t, ENV);
    const u = await register(srv);
    const c = await connect(srv, { token: u.token });
    await next(c, (m) => m.type === 'hello');
    const exited = srv.stop('SIGTERM');
    assert.equal((await closedWith(c, 10000)).code, 1001);
    assert.equal((await exited).code, 0);
  });

  test('/metrics has the WebSocket figures; the scaling advisor answers, guarded like /metrics', async (t) => {
    const u = await register(a);
    const c = await connect(a, { token: u.token });
    await next(c, (m) => m.type === 'hello');
    assert.ok((await metricValue(a, 'pulse_ws_clients')) >= 1);
    assert.ok(Number.isInteger(await metricValue(a, 'pulse_ws_frames_dropped_total')));
    c.ws.close();
    await sleep(INTERVAL_MS * 3); // a few samples
    const r = await api(a, 'GET', '/api/v1/health/scaling', { origin: null });
    expectStatus(r, 200);
    assert.deepEqual(Object.keys(r.json).sort(), ['metrics', 'profile', 'recommendation', 'should_scale', 'triggers', 'window_s']);
    assert.deepEqual(Object.keys(r.json.metrics).sort(), ['avg_response_ms', 'error_rate', 'p95_ms', 'peak_concurrent', 'requests', 'rss_mb']);
    assert.equal(typeof r.json.should_scale, 'boolean');
    assert.ok(Array.isArray(r.json.triggers));
    assert.ok(r.json.metrics.rss_mb > 1 && r.json.metrics.error_rate >= 0 && r.json.metrics.error_rate <= 1);

    // a tiny RSS threshold fires the memory trigger; a metrics token guards the route
    const srv = await serverFor(t, { ...ENV, PULSE_SCALE_RSS_MB: '1', PULSE_METRICS_TOKEN: 'sekret-metrics' });
    expect401(await api(srv, 'GET', '/api/v1/health/scaling', { origin: null }));
    const ok = await api(srv, 'GET', '/api/v1/health/scaling', { origin: null, headers: { Authorization: 'Bearer sekret-metrics' } });
    expectStatus(ok, 200);
    assert.equal(ok.json.should_scale, true);
    const mem = ok.json.triggers.find((x) => x.name === 'memory');
    assert.ok(mem && mem.level === 'scale' && mem.threshold === 1 && mem.value > 1, JSON.stringify(ok.json.triggers));
  });

  // The tickets in Redis (pulse:ticket:<hash of the ticket>) of one session: their value is
  // the session's id, the hash that GET /auth/sessions shows.
  async function ticketKeysOf(sessionId) {
    const [keys] = await redisCommands(REDIS_URL(), [['KEYS', 'pulse:ticket:*']]);
    if (!keys.length) return [];
    const [vals] = await redisCommands(REDIS_URL(), [['MGET', ...keys]]);
    return keys.filter((k, i) => vals[i] === sessionId);
  }
  async function currentSessionId(srv, token) {
    const r = expectStatus(await api(srv, 'GET', '/api/v1/auth/sessions', { token }), 200);
    return r.json.items.find((x) => x.current).id;
  }
  const ticketOf = async (srv, opts) => expectStatus(await api(srv, 'POST', '/api/v1/live/ticket', opts), 201).json.ticket;

  test('?access_token= takes a personal access token or a single-use live ticket, never a session token', async () => {
    const u = await register(a);
    // a session token in the URL: 401, though the same token works as a bearer
    let e = await refused(connect(a, { query: `?access_token=${encodeURIComponent(u.token)}` }));
    assert.equal(e.status, 401, 'a session token in ?access_token= was accepted');
    assert.equal(JSON.parse(e.body).type, '/problems/unauthorized');
    assert.match(e.headers['www-authenticate'] || '', /^Bearer/);
    (await connect(a, { token: u.token })).ws.close();

    // POST /live/ticket: 201 {ticket, expires_at} valid 60 s, not cached
    const t0 = Date.now();
    const r = expectStatus(await api(a, 'POST', '/api/v1/live/ticket', { token: u.token }), 201);
    assert.deepEqual(Object.keys(r.json).sort(), ['expires_at', 'ticket']);
    assert.match(r.json.ticket, /^lt_[A-Za-z0-9_-]{43}$/);
    assert.match(r.json.expires_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    const ahead = Date.parse(r.json.expires_at) - t0;
    assert.ok(ahead > 55000 && ahead < 65000, `expires_at is ${ahead} ms ahead`);
    assert.equal(r.headers['cache-control'], 'no-store');
    // stored hashed under the session, with a 60 s TTL
    const sid = await currentSessionId(a, u.token);
    const keys = await ticketKeysOf(sid);
    assert.equal(keys.length, 1, 'one ticket in Redis for the session');
    assert.ok(!keys[0].includes(r.json.ticket.slice(3)), 'the raw ticket is not the key');
    const [ttl] = await redisCommands(REDIS_URL(), [['TTL', keys[0]]]);
    assert.ok(ttl > 50 && ttl <= 60, `TTL ${ttl}`);

    // used once, on the other process; then gone from Redis and refused on both
    const q = `?access_token=${r.json.ticket}`;
    const c = await connect(b, { query: q });
    const hello = await next(c, (m) => m.type === 'hello');
    assert.equal(hello.user_id, u.user.id);
    assert.deepEqual(await ticketKeysOf(sid), [], 'the ticket is still in Redis after its use');
    for (const srv of [a, b]) {
      e = await refused(connect(srv, { query: q }));
      assert.equal(e.status, 401, 'a used ticket opened a second socket');
    }
    // one ticket, two handshakes at once on two processes: exactly one socket
    const q2 = `?access_token=${await ticketOf(a, { token: u.token })}`;
    const race = await Promise.allSettled([connect(a, { query: q2 }), connect(b, { query: q2 })]);
    assert.equal(race.filter((x) => x.status === 'fulfilled').length, 1, 'a ticket opened two sockets');
    assert.equal(race.find((x) => x.status === 'rejected').reason.status, 401);
    for (const x of race) if (x.status === 'fulfilled') x.value.ws.close();

    // expired (its TTL run out in Redis, as 60 s would): 401
    const expiring = await ticketOf(a, { token: u.token });
    const [key] = await ticketKeysOf(sid);
    await redisCommands(REDIS_URL(), [['PEXPIRE', key, '1']]);
    await sleep(20);
    e = await refused(connect(a, { query: `?access_token=${expiring}` }));
    assert.equal(e.status, 401, 'an expired ticket was accepted');

    // not a credential anywhere else, and a made-up one is refused
    const spare = await ticketOf(a, { token: u.token });
    e = await refused(connect(a, { token: spare }));
    assert.equal(e.status, 401, 'a ticket worked as a bearer');
    e = await refused(connect(a, { query: `?access_token=lt_${'A'.repeat(43)}` }));
    assert.equal(e.status, 401);
    // a personal access token in the URL still works (the PAT test above), and none of these
    // reached a log
    for (const srv of [a, b]) {
      for (const t of [r.json.ticket, spare, u.token]) assert.ok(!JSON.stringify(srv.logs).includes(t.slice(3)), 'a credential was logged');
    }
    c.ws.close();
  });

  test('a ticket is asked for with a session (cookie with an allowed Origin, or bearer), never a token', async () => {
    const u = await register(a);
    const pat = await createToken(a, u.token, { scopes: ['read', 'write'] });
    expect401(await api(a, 'POST', '/api/v1/live/ticket', { origin: null }));
    expect403(await api(a, 'POST', '/api/v1/live/ticket', { token: pat.token, origin: null }));
    expect403(await api(a, 'POST', '/api/v1/live/ticket', { cookie: u.cookie.value, origin: null }));
    expect403(await api(a, 'POST', '/api/v1/live/ticket', { cookie: u.cookie.value, origin: 'https://evil.example' }));
    expectProblem(await api(a, 'POST', '/api/v1/live/ticket', { token: u.token, body: { user_id: u.user.id } }), 422, 'validation', ['user_id']);
    const viaCookie = await ticketOf(a, { cookie: u.cookie.value });
    const c = await connect(a, { query: `?access_token=${viaCookie}` });
    assert.equal((await next(c, (m) => m.type === 'hello')).user_id, u.user.id);
    c.ws.close();
  });

  test('a ticket belongs to its session: refused once the session is revoked, and its socket closes with 4401', async () => {
    const u = await register(a);
    const other = await login(a, u.email);
    const unused = await ticketOf(a, { token: other.token });
    const c = await connect(b, { query: `?access_token=${await ticketOf(a, { token: other.token })}` });
    const keeper = await connect(b, { query: `?access_token=${await ticketOf(a, { token: u.token })}` });
    for (const x of [c, keeper]) await next(x, (m) => m.type === 'hello');
    const sid = await currentSessionId(a, other.token);
    expectStatus(await api(a, 'DELETE', `/api/v1/auth/sessions/${sid}`, { token: u.token }), 204);
    assert.equal((await closedWith(c, 2000)).code, 4401, 'the ticket socket of a revoked session stayed open');
    const e = await refused(connect(a, { query: `?access_token=${unused}` }));
    assert.equal(e.status, 401, 'a ticket of a revoked session was accepted');
    await sleep(100);
    assert.equal(keeper.closed, null, 'another session\'s ticket socket was closed');
    keeper.ws.close();
  });

  test('live sockets are capped per user and per client IP: 429 at the handshake; a closed socket frees its place', async (t) => {
    const srv = await serverFor(t, { ...ENV, PULSE_WS_PER_USER: '3', PULSE_WS_PER_IP: '5', PULSE_TRUSTED_PROXIES: '127.0.0.1' });
    const from = (ip) => ({ 'X-Forwarded-For': ip });
    const u = await register(srv);
    const v = await register(srv);
    const w = await register(srv);
    const x = await register(srv);
    const pat = await createToken(srv, u.token, { scopes: ['read'] });
    const tooMany = async (opts, what) => {
      const e = await refused(connect(srv, opts));
      assert.equal(e.status, 429, `${what}: ${e.status} ${e.body}`);
      assert.equal(JSON.parse(e.body).type, '/problems/rate-limited');
      assert.match(e.headers['content-type'], /^application\/problem\+json/);
      assert.ok(Number(e.headers['retry-after']) >= 1, 'Retry-After');
    };
    // opens once the server has counted a closed socket out (its close is asynchronous)
    const opensSoon = (opts) => waitFor(async () => {
      try { return await connect(srv, opts); } catch (err) { if (err.status === 429) return null; throw err; }
    }, { timeout: 5000, interval: 50 });

    // per user: every credential counts (session, token, cookie), from any address
    const mine = [
      await connect(srv, { token: u.token, headers: from('198.51.100.1') }),
      await connect(srv, { token: pat.token, headers: from('198.51.100.1') }),
      await connect(srv, { cookie: u.cookie.value, origin: PUBLIC_ORIGIN, headers: from('198.51.100.1') }),
    ];
    await tooMany({ token: u.token, headers: from('198.51.100.1') }, 'user over 3');
    await tooMany({ token: pat.token, headers: from('198.51.100.9') }, 'user over 3 from another address');
    mine[0].ws.close();
    mine[0] = await opensSoon({ token: u.token, headers: from('198.51.100.1') });
    await tooMany({ token: u.token, headers: from('198.51.100.1') }, 'user over 3 again');

    // per IP: two users under their own cap fill one address
    const fromTwo = [
      await connect(srv, { token: v.token, headers: from('198.51.100.2') }),
      await connect(srv, { token: v.token, headers: from('198.51.100.2') }),
      await connect(srv, { token: v.token, headers: from('198.51.100.2') }),
      await connect(srv, { token: w.token, headers: from('198.51.100.2') }),
      await connect(srv, { token: w.token, headers: from('198.51.100.2') }),
    ];
    await tooMany({ token: w.token, headers: from('198.51.100.2') }, 'address over 5');
    const elsewhere = await connect(srv, { token: x.token, headers: from('198.51.100.3') }); // another address
    fromTwo[0].ws.close();
    fromTwo[0] = await opensSoon({ token: w.token, headers: from('198.51.100.2') });
    await tooMany({ token: v.token, headers: from('198.51.100.2') }, 'address over 5 again');
    for (const c of [...mine, ...fromTwo, elsewhere]) await next(c, (m) => m.type === 'hello');
    for (const c of [...mine, ...fromTwo, elsewhere]) c.ws.close();
    // every place is given back: the caps hold the full count again
    const again = [];
    for (let i = 0; i < 3; i++) again.push(await opensSoon({ token: u.token, headers: from('198.51.100.4') }));
    for (const c of again) c.ws.close();
  });

  test('messages sent with the handshake, before its answer, are answered after hello', async (t) => {
    // They reach the live handler while the socket is still being adopted (lws reads them
    // with the handshake); the replies must go through the socket the callback names.
    const srv = await serverFor(t, ENV);
    const u = await register(srv);
    const frame = (text) => {
      const payload = Buffer.from(text);
      const mask = Buffer.from([7, 1, 9, 3]);
      return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, Buffer.from(payload.map((x, i) => x ^ mask[i % 4]))]);
    };
    const sock = net.connect(srv.port, '127.0.0.1');
    await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); });
    sock.on('error', () => {});
    sock.write(Buffer.concat([
      Buffer.from(`GET /api/v1/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
        + `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${u.token}\r\n\r\n`),
      frame('{"type":"unsubscribe","topics":["metrics"]}'), frame('{"type":"ping"}'), frame('nonsense'),
    ]));
    // server frames: unmasked text frames after the 101 head
    const messages = () => {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return [];
      const out = [];
      let i = end + 4;
      while (i + 2 <= buf.length) {
        let len = buf[i + 1] & 0x7f;
        let at = i + 2;
        if (len === 126) { if (at + 2 > buf.length) break; len = buf.readUInt16BE(at); at += 2; }
        if (at + len > buf.length) break;
        if ((buf[i] & 0x0f) === 1) out.push(JSON.parse(buf.subarray(at, at + len).toString()));
        i = at + len;
      }
      return out;
    };
    await waitFor(() => messages().filter((m) => m.type !== 'metrics').length >= 4, { timeout: 5000, interval: 20 })
      .catch(() => assert.fail(`got ${buf.toString('latin1').slice(0, 600)}; server stderr: ${srv.stderr.slice(-2000)}`));
    assert.match(buf.toString('latin1'), /^HTTP\/1\.1 101 /);
    const got = messages().filter((m) => m.type !== 'metrics');
    assert.deepEqual(got.map((m) => m.type), ['hello', 'subscribed', 'pong', 'error']);
    assert.equal(got[0].user_id, u.user.id);
    assert.deepEqual(got[1].topics, ['events']);
    sock.destroy();
    expectStatus(await api(srv, 'GET', '/health/live', { origin: null }), 200);
  });

  test('a malformed handshake gets a problem, not a socket', async () => {
    const u = await register(a);
    const rawReq = (headers) => new Promise((resolve, reject) => {
      const s = net.connect(a.port, '127.0.0.1');
      let buf = '';
      s.on('data', (d) => { buf += d; if (buf.includes('\r\n\r\n')) { s.destroy(); resolve(buf); } });
      s.on('error', reject);
      s.write(`GET /api/v1/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${u.token}\r\n${headers}\r\n`);
    });
    assert.match(await rawReq('Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await rawReq('Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'), /^HTTP\/1\.1 426 /);
    assert.match(await rawReq('Upgrade: h2c\r\nConnection: Upgrade\r\n'), /^HTTP\/1\.1 426 /);
    assert.match(await rawReq('Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'), /^HTTP\/1\.1 101 /);
  });
});

// Replicas behind the project's nginx config (tests/e2e/replicas.mjs): the WebSocket upgrade
// passes through nginx, and an event posted through any replica reaches a socket another
// replica holds.
describe('live WebSocket across replicas behind nginx', () => {
  let cluster;
  before(async () => {
    const { startCluster } = await import('./replicas.mjs');
    cluster = await startCluster({ env: { PULSE_METRICS_INTERVAL_MS: '200' } });
  });
  after(async () => { await cluster?.stop(); });

  test('nginx logs the path of a request without its query string', async () => {
    const nginx = { port: Number(new URL(cluster.origin).port) };
    const secret = `pat_${'S3cret'.repeat(7)}x`;
    const r = await api(nginx, 'GET', `/api/v1/live?access_token=${secret}&after=1`, { origin: null });
    expect401(r);
    const id = r.headers['x-request-id'];
    const file = path.join(cluster.nginx.dir, 'access.log');
    const line = await waitFor(() => readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
      .find((l) => l.request_id === id), { timeout: 5000 });
    assert.equal(line.path, '/api/v1/live');
    assert.equal(line.status, 401);
    const log = readFileSync(file, 'utf8');
    assert.ok(!log.includes(secret) && !log.includes('access_token'), 'a query string reached nginx\'s access log');
  });

  test('a feeding posted through one replica reaches the sockets held by the others within 1 s', async () => {
    const nginx = { port: Number(new URL(cluster.origin).port) };
    const u = await register(nginx, { headers: { Origin: cluster.origin } });
    // one socket per replica, opened directly, and one through nginx (cookie + its Origin)
    const direct = await Promise.all(cluster.replicas.map((srv) => connect(srv, { token: u.token })));
    const viaNginx = await connect(nginx, { cookie: u.cookie.value, origin: cluster.origin });
    const sockets = [...direct, viaNginx];
    for (const c of sockets) await next(c, (m) => m.type === 'hello');
    const instances = new Set(direct.map((c) => c.messages[0].instance));
    assert.equal(instances.size, cluster.replicas.length, 'each replica names itself in hello');
    await sleep(200);
    const lags = [];
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < cluster.replicas.length; i++) {
        const from = sockets.map((c) => c.messages.length);
        const t0 = performance.now();
        const r = await api(cluster.replicas[i], 'POST', '/api/v1/feedings', { token: u.token, body: { amount_ml: 10 * (i + 1) + round } });
        expectStatus(r, 201);
        for (const [k, c] of sockets.entries()) {
          const ev = await next(c, (m) => m.type === 'event' && m.data.id === r.json.id, { from: from[k], timeout: 1000 });
          if (k !== i) lags.push(ev.at - t0); // held by another replica (or behind nginx)
        }
      }
    }
    lags.sort((x, y) => x - y);
    const q = (p) => lags[Math.min(lags.length - 1, Math.floor(p * lags.length))].toFixed(1);
    console.log(`# event lag to sockets on other replicas (${lags.length} deliveries), ms: p50 ${q(0.5)}, p99 ${q(0.99)}, max ${lags.at(-1).toFixed(1)}`);
    // the metrics frames flow through nginx too
    await next(viaNginx, (m) => m.type === 'metrics', { from: viaNginx.messages.length, timeout: 2000 });
    for (const c of sockets) c.ws.close();
  });
});
