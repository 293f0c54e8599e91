// Fault injection against the real binary: Redis and Postgres going away under load, the
// Postgres connection limit exhausted, SIGTERM and SIGKILL under load. What must hold
// (docs/api.md, "Rate limits" with Redis unavailable, "HTTP details": shutdown and readiness,
// "Idempotency"): dependency failures are 503 with Retry-After, never 500 and never a
// dropped connection; the process recovers without a restart; no write acknowledged with a
// 201 is ever lost, and a retry with the same Idempotency-Key never writes a second row.
//
// Every loop is bounded; recovery times are printed as `# ...` lines.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { describe, it } from 'node:test';

import { API_ENV, PUBLIC_ORIGIN, api, createToken, expectStatus, register, sleep } from './api.mjs';
import { requireEnv, serverFor, startServer, stopServer, waitFor, waitReady } from './helpers.mjs';

const FEEDINGS = '/api/v1/feedings';
const UNAVAILABLE = '/problems/unavailable';

// ---- services, psql ---------------------------------------------------------------------

// Same command as lifecycle.test.mjs, but asynchronous: the load keeps running meanwhile.
function services(...args) {
  return new Promise((resolve, reject) => {
    execFile(requireEnv('PULSE_SERVICES'), ['test', ...args], { timeout: 120000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`services ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve();
    });
  });
}

// SQL through stdin: lists of thousands of ids do not fit in an argument.
function psqlIn(sql) {
  return execFileSync('psql', [requireEnv('DATABASE_URL'), '-X', '-v', 'ON_ERROR_STOP=1', '-tA'], {
    input: sql, encoding: 'utf8', maxBuffer: 64 << 20,
  }).trim();
}

// { id: note } of the feedings that exist among `ids`.
function existingFeedings(ids) {
  if (!ids.length) return new Map();
  const out = psqlIn(`SELECT id || ' ' || coalesce(note, '') FROM feedings WHERE id = ANY('{${ids.join(',')}}'::uuid[]);`);
  return new Map(out.split('\n').filter(Boolean).map((l) => [l.slice(0, 36), l.slice(37)]));
}

// { note: count } of the feedings whose note is among `notes`.
function countByNote(notes) {
  if (!notes.length) return new Map();
  const lit = notes.map((n) => `'${n.replace(/'/g, "''")}'`).join(',');
  const out = psqlIn(`SELECT note || ' ' || count(*) FROM feedings WHERE note IN (${lit}) GROUP BY note;`);
  return new Map(out.split('\n').filter(Boolean).map((l) => { const i = l.lastIndexOf(' '); return [l.slice(0, i), Number(l.slice(i + 1))]; }));
}

// ---- a raw keep-alive HTTP/1.1 client that tells every way a request can fail ----------

// One complete response at the start of `buf`, or null while incomplete; `bad` when the
// framing is not Content-Length (the server never sends anything else).
function parseOne(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(lines[0].split(' ')[1]);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  if (headers['transfer-encoding'] || headers['content-length'] === undefined) return { bad: `framing: ${lines.join(' | ')}` };
  const len = Number(headers['content-length']);
  if (buf.length < end + 4 + len) return null;
  return { status, headers, body: buf.subarray(end + 4, end + 4 + len).toString('utf8'), extra: buf.length - (end + 4 + len) };
}

// One client connection, reused while the server keeps it alive; a new one after
// `Connection: close` or a close. request() never rejects: it resolves
//   { ok: true, status, headers, body, json, connClose, fresh, t0, t1 }  or
//   { ok: false, kind: refused|reset|closed|truncated|timeout|bad, bytes, fresh, t0, t1 }
// where `fresh` says the request opened the connection (false: a reused keep-alive one).
class Conn {
  constructor(port) { this.port = port; this.sock = null; }

  open() {
    const s = net.connect(this.port, '127.0.0.1');
    s.setNoDelay(true);
    s.on('error', (e) => { s.err = e; });
    s.on('close', () => { s.gone = true; if (this.sock === s) this.sock = null; if (s.onclose) s.onclose(); });
    s.on('data', (d) => { if (s.ondata) s.ondata(d); else s.stray = (s.stray || 0) + d.length; });
    this.sock = s;
    return s;
  }

  close() { if (this.sock) this.sock.destroy(); this.sock = null; }

  request(method, path, { headers = {}, body, timeout = 30000 } = {}) {
    return new Promise((resolve) => {
      let s = this.sock;
      const fresh = !s || s.gone || s.destroyed;
      if (fresh) s = this.open();
      const t0 = Date.now();
      let buf = Buffer.alloc(0);
      let done = false;
      const finish = (r) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        s.ondata = null;
        s.onclose = null;
        resolve({ fresh, t0, t1: Date.now(), method, path, ...r });
      };
      const timer = setTimeout(() => { s.destroy(); finish({ ok: false, kind: 'timeout', bytes: buf.length }); }, timeout);
      s.ondata = (d) => {
        buf = Buffer.concat([buf, d]);
        const r = parseOne(buf);
        if (!r) return;
        if (r.bad) { s.destroy(); finish({ ok: false, kind: 'bad', bytes: buf.length, detail: r.bad }); return; }
        let json;
        if (/json/.test(r.headers['content-type'] || '')) {
          try { json = JSON.parse(r.body); } catch {
            s.destroy();
            finish({ ok: false, kind: 'bad', bytes: buf.length, detail: `unparsable JSON: ${r.body.slice(0, 200)}` });
            return;
          }
        }
        const connClose = /\bclose\b/i.test(r.headers.connection || '');
        if (connClose || r.extra) { s.destroy(); if (this.sock === s) this.sock = null; }
        finish({ ok: true, status: r.status, headers: r.headers, body: r.body, json, connClose, extra: r.extra });
      };
      s.onclose = () => {
        const code = s.err && s.err.code;
        let kind = 'closed';
        if (buf.length) kind = 'truncated';
        else if (code === 'ECONNREFUSED') kind = 'refused';
        else if (code === 'ECONNRESET' || code === 'EPIPE') kind = 'reset';
        finish({ ok: false, kind, code, bytes: buf.length, partial: buf.toString('latin1').slice(0, 300) });
      };
      const payload = body === undefined ? null : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      const h = { Host: `127.0.0.1:${this.port}`, ...headers };
      if (payload) { h['Content-Type'] = 'application/json'; h['Content-Length'] = String(payload.length); }
      else if (method !== 'GET' && method !== 'HEAD') h['Content-Length'] = '0';
      const head = `${method} ${path} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
      s.write(payload ? Buffer.concat([Buffer.from(head, 'latin1'), payload]) : Buffer.from(head, 'latin1'));
    });
  }
}

const describeResult = (r) => (r.ok
  ? `${r.method} ${r.path} -> ${r.status} ${String(r.body).slice(0, 200)}`
  : `${r.method} ${r.path} -> ${r.kind}${r.code ? ` (${r.code})` : ''} after ${r.bytes} bytes, ${r.fresh ? 'fresh' : 'reused'} connection ${r.partial || r.detail || ''}`);

// Runs `workers` loops, each with its own connection, until `stop()` returns true or
// `maxMs` passes. `next(worker, iteration)` returns { method, path, headers, body, meta }
// or null to skip (a short pause). Every result goes to the returned `results` array.
function runLoad(port, workers, next, { stop, maxMs = 120000, pauseAfterFailure = 20 } = {}) {
  const results = [];
  const t0 = Date.now();
  const loops = [];
  for (let w = 0; w < workers; w++) {
    loops.push((async () => {
      const conn = new Conn(port);
      for (let i = 0; i < 1e6 && !stop() && Date.now() - t0 < maxMs; i++) {
        const req = await next(w, i, conn);
        if (!req) { await sleep(20); continue; }
        const r = await conn.request(req.method, req.path, { headers: req.headers, body: req.body });
        r.worker = w;
        r.meta = req.meta || {};
        results.push(r);
        if (!r.ok) await sleep(pauseAfterFailure);
      }
      conn.close();
    })());
  }
  return { results, done: Promise.all(loops) };
}

const tally = (rs, key) => {
  const m = {};
  for (const r of rs) { const k = key(r); m[k] = (m[k] || 0) + 1; }
  return JSON.stringify(m);
};

function pct(xs, p) {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

// A user with a session token and a read+write personal access token.
async function account(srv, tag) {
  const u = await register(srv, { email: `${tag}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}@example.com` });
  const pat = await createToken(srv, u.token, { name: tag, scopes: ['read', 'write'] });
  return { email: u.email, password: u.password, session: u.token, pat: pat.token, id: u.user.id };
}

let seq = 0;
// A POST /feedings with a note and an Idempotency-Key unique to this run.
function feedingRequest(auth, tag) {
  const note = `${tag}-${process.pid}-${Date.now().toString(36)}-${++seq}-${randomBytes(3).toString('hex')}`;
  const body = JSON.stringify({ amount_ml: 1 + (seq % 300), kind: 'milk', note });
  return { method: 'POST', path: FEEDINGS, headers: { ...auth, 'Idempotency-Key': `k-${note}` }, body, meta: { note, key: `k-${note}`, body } };
}

const bearer = (t) => ({ Authorization: `Bearer ${t}` });
const cookieAuth = (t) => ({ Cookie: `pulse_session=${t}`, Origin: PUBLIC_ORIGIN });

// Every 201 of POST /feedings in `rs` as [{ id, note }], checked for shape.
function acknowledged(rs) {
  return rs.filter((r) => r.ok && r.status === 201 && r.method === 'POST').map((r) => {
    assert.match(r.json && r.json.id, /^[0-9a-f-]{36}$/, describeResult(r));
    assert.equal(r.json.note, r.meta.note, describeResult(r));
    return { id: r.json.id, note: r.meta.note };
  });
}

// Every acknowledged feeding exists with its note; prints and returns the figures.
function assertNoAcknowledgedWriteLost(acks, label) {
  const found = existingFeedings(acks.map((a) => a.id));
  const lost = acks.filter((a) => found.get(a.id) !== a.note);
  console.log(`# ${label}: ${acks.length} writes acknowledged with 201, ${acks.length - lost.length} found in the database`);
  assert.deepEqual(lost, [], `acknowledged writes missing from the database (${lost.length} of ${acks.length})`);
}

// Retries each unacknowledged POST with its Idempotency-Key and body: 201 (a replay when
// the first attempt had committed after all), then exactly one row per note.
async function retryAndCheckOnce(port, unacked, allNotes, label) {
  const conn = new Conn(port);
  let replayed = 0;
  try {
    for (const r of unacked) {
      const res = await conn.request('POST', FEEDINGS, { headers: { ...r.auth, 'Idempotency-Key': r.key }, body: r.body });
      assert.ok(res.ok && res.status === 201, `retry of ${r.key}: ${describeResult(res)}`);
      if (res.headers['idempotent-replayed'] === 'true') replayed++;
    }
  } finally { conn.close(); }
  const counts = countByNote(allNotes);
  const wrong = allNotes.filter((n) => counts.get(n) !== 1).map((n) => `${n}: ${counts.get(n) || 0}`);
  console.log(`# ${label}: ${unacked.length} unacknowledged POSTs retried with their Idempotency-Key, ${replayed} of them replayed (had committed); rows per note all 1: ${wrong.length === 0}`);
  assert.deepEqual(wrong, [], 'each request must leave exactly one row');
}

// ---- a minimal Postgres wire client (trust authentication), for the connection hogs ----

function pgConnect({ port, user, database, appName, timeout = 10000 }) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let ready = false;
    let pending = null; // { rows, resolve, reject, error }
    const timer = setTimeout(() => { s.destroy(); reject(new Error('pg connect timed out')); }, timeout);
    const client = {
      sock: s,
      closed: false,
      query(sql) {
        return new Promise((res, rej) => {
          pending = { rows: [], resolve: res, reject: rej, error: null };
          const q = Buffer.from(`${sql}\0`, 'utf8');
          const m = Buffer.alloc(5);
          m.write('Q', 0, 'latin1');
          m.writeInt32BE(4 + q.length, 1);
          s.write(Buffer.concat([m, q]));
        });
      },
      close() { if (!s.destroyed) s.destroy(); },
    };
    const errorFields = (body) => {
      const f = {};
      let i = 0;
      while (i < body.length && body[i] !== 0) {
        const t = String.fromCharCode(body[i]);
        const e = body.indexOf(0, i + 1);
        f[t] = body.subarray(i + 1, e).toString('utf8');
        i = e + 1;
      }
      return f;
    };
    s.on('connect', () => {
      const params = Buffer.from(`user\0${user}\0database\0${database}\0application_name\0${appName}\0\0`, 'utf8');
      const m = Buffer.alloc(8);
      m.writeInt32BE(8 + params.length, 0);
      m.writeInt32BE(196608, 4);
      s.write(Buffer.concat([m, params]));
    });
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 5) {
        const type = String.fromCharCode(buf[0]);
        const len = buf.readInt32BE(1);
        if (buf.length < 1 + len) break;
        const body = buf.subarray(5, 1 + len);
        buf = buf.subarray(1 + len);
        if (type === 'R' && body.readInt32BE(0) !== 0) {
          clearTimeout(timer);
          s.destroy();
          reject(new Error(`pg auth method ${body.readInt32BE(0)} not supported (trust expected)`));
          return;
        }
        if (type === 'E') {
          const f = errorFields(body);
          if (!ready) {
            clearTimeout(timer);
            s.destroy();
            const e = new Error(`pg: ${f.M}`);
            e.sqlstate = f.C;
            reject(e);
            return;
          }
          if (pending) pending.error = new Error(`pg: ${f.M} (${f.C})`);
        } else if (type === 'D' && pending) {
          const n = body.readInt16BE(0);
          const row = [];
          let i = 2;
          for (let k = 0; k < n; k++) {
            const l = body.readInt32BE(i);
            i += 4;
            if (l < 0) row.push(null);
            else { row.push(body.subarray(i, i + l).toString('utf8')); i += l; }
          }
          pending.rows.push(row);
        } else if (type === 'Z') {
          if (!ready) { ready = true; clearTimeout(timer); resolve(client); } else if (pending) {
            const p = pending;
            pending = null;
            if (p.error) p.reject(p.error); else p.resolve(p.rows);
          }
        }
      }
    });
    s.on('error', (e) => { if (!ready) { clearTimeout(timer); reject(e); } else if (pending) { pending.reject(e); pending = null; } });
    s.on('close', () => { client.closed = true; if (pending) { pending.reject(new Error('pg connection closed')); pending = null; } });
  });
}

// ============================================================================================

describe('Redis stopped under load', () => {
  it('sessions get 503 unavailable, tokens keep working, everything recovers without a restart', async (t) => {
    const srv = await serverFor(t, { ...API_ENV });
    let redisDown = false;
    try {
      const users = [];
      for (let i = 0; i < 4; i++) users.push(await account(srv, `redis-load-${i}`));

      // Six kinds of worker: session by bearer and by cookie, token; GETs and POSTs mixed.
      const marks = { stop: Infinity, stopped: Infinity, start: Infinity, started: Infinity };
      const sessions = users.map((u) => u.session);
      const relogins = [];
      let stopping = false;
      const creds = ['session-bearer', 'session-cookie', 'token'];
      const load = runLoad(srv.port, 12, async (w, i) => {
        const cred = creds[w % 3];
        const ui = w % users.length;
        const u = users[ui];
        const auth = cred === 'token' ? bearer(u.pat) : cred === 'session-bearer' ? bearer(sessions[ui]) : cookieAuth(sessions[ui]);
        const what = (w + i) % 3;
        const req = what === 0 ? { method: 'GET', path: '/api/v1/me', headers: auth }
          : what === 1 ? { method: 'GET', path: '/api/v1/feedings/today', headers: auth }
            : feedingRequest(auth, 'redis');
        req.meta = { ...(req.meta || {}), cred, ui, session: cred === 'token' ? null : sessions[ui] };
        return req;
      }, { stop: () => stopping, maxMs: 90000 });

      // Session workers whose session died with Redis log in again (once it is back).
      const reloginLoop = (async () => {
        for (let k = 0; k < 2000 && !stopping; k++) {
          await sleep(100);
          if (Date.now() < marks.started) continue;
          for (let ui = 0; ui < users.length; ui++) {
            const dead = load.results.some((r) => r.ok && r.status === 401 && r.meta.ui === ui && r.meta.session === sessions[ui]);
            if (!dead) continue;
            const t0 = Date.now();
            const res = await api(srv, 'POST', '/api/v1/auth/login', { body: { email: users[ui].email, password: users[ui].password }, check: false });
            relogins.push({ t: t0, status: res.status });
            if (res.status === 200) sessions[ui] = res.json.token;
          }
        }
      })();

      // Readiness, polled on fresh connections throughout.
      const ready = [];
      const readyLoop = (async () => {
        for (let k = 0; k < 2000 && !stopping; k++) {
          const t0 = Date.now();
          const c = new Conn(srv.port);
          const r = await c.request('GET', '/health/ready', { timeout: 10000 });
          c.close();
          ready.push({ t0, r });
          await sleep(150);
        }
      })();

      await sleep(1500);
      marks.stop = Date.now();
      redisDown = true;
      await services('stop-redis');
      marks.stopped = Date.now();
      await waitFor(() => ready.some((x) => x.t0 > marks.stopped && x.r.ok && x.r.json && x.r.json.status === 'degraded'), { timeout: 15000 });
      const firstDegraded = ready.find((x) => x.r.ok && x.r.json && x.r.json.status === 'degraded').t0;
      const first503 = Math.min(...load.results.filter((r) => r.ok && r.status === 503).map((r) => r.t1));
      await sleep(Math.max(0, marks.stop + 10000 - Date.now()));
      const outageSamples = load.results.filter((r) => r.t0 >= marks.stopped).length;

      marks.start = Date.now();
      await services('start-redis');
      marks.started = Date.now();
      redisDown = false;
      // Recovery: ready ok, a new login, and that session reading and writing.
      const rec = await waitFor(async () => {
        const c = new Conn(srv.port);
        try {
          const rr = await c.request('GET', '/health/ready', { timeout: 5000 });
          if (!(rr.ok && rr.status === 200 && rr.json.status === 'ok')) return null;
          const li = await api(srv, 'POST', '/api/v1/auth/login', { body: { email: users[0].email, password: users[0].password }, check: false });
          if (li.status !== 200) return null;
          const me = await c.request('GET', '/api/v1/me', { headers: bearer(li.json.token), timeout: 5000 });
          if (!(me.ok && me.status === 200)) return null;
          const post = feedingRequest(cookieAuth(li.json.token), 'redis-recovered');
          const pr = await c.request('POST', FEEDINGS, { headers: post.headers, body: post.body, timeout: 5000 });
          if (!(pr.ok && pr.status === 201)) return null;
          const tok = await c.request('GET', '/api/v1/me', { headers: bearer(users[0].pat), timeout: 5000 });
          return tok.ok && tok.status === 200 ? Date.now() : null;
        } finally { c.close(); }
      }, { timeout: 30000, interval: 100 });
      marks.recovered = rec;
      console.log(`# redis outage: stop-redis took ${marks.stopped - marks.stop} ms; first session 503 ${first503 - marks.stop} ms and readiness degraded ${firstDegraded - marks.stop} ms after it began`);
      console.log(`# redis recovery: ready ok + new login + session GET/POST + token GET ${rec - marks.started} ms after start-redis returned (start-redis took ${marks.started - marks.start} ms)`);
      await sleep(3000);
      stopping = true;
      await Promise.all([load.done, reloginLoop, readyLoop]);

      const rs = load.results;
      console.log(`# redis load: ${rs.length} requests (${outageSamples} during the outage); by credential/status: ${tally(rs, (r) => `${r.meta.cred}:${r.ok ? r.status : r.kind}`)}; relogins ${tally(relogins, (x) => x.status)}`);
      const lat503 = rs.filter((r) => r.ok && r.status === 503).map((r) => r.t1 - r.t0);
      console.log(`# redis outage: session 503 latency p50 ${pct(lat503, 0.5)} ms, p99 ${pct(lat503, 0.99)} ms, max ${Math.max(0, ...lat503)} ms`);

      // Never a broken connection, never a 500.
      const broken = rs.filter((r) => !r.ok);
      assert.deepEqual(broken.map(describeResult), [], 'connection failures during a Redis outage');
      const fives = rs.filter((r) => r.status >= 500 && r.status !== 503);
      assert.deepEqual(fives.map(describeResult), [], '5xx other than 503');
      for (const r of rs.filter((x) => x.status === 503)) {
        assert.equal(r.json.type, UNAVAILABLE, describeResult(r));
        assert.match(r.headers['retry-after'] || '', /^\d+$/, `503 without Retry-After: ${describeResult(r)}`);
      }
      // Tokens live in Postgres: 2xx all along.
      const tokenBad = rs.filter((r) => r.meta.cred === 'token' && !(r.status === 200 || r.status === 201));
      assert.deepEqual(tokenBad.map(describeResult), [], 'token requests must keep working while Redis is down');
      // Sessions: 2xx before; 503 for every request sent while Redis was stopped; after it is
      // back, 2xx or a 401 for a session that died with it (or a 503 until reconnected).
      for (const r of rs.filter((x) => x.meta.cred !== 'token')) {
        const ctx = `${describeResult(r)} at +${r.t0 - marks.stop} ms from stop-redis`;
        if (r.t1 < marks.stop) assert.ok(r.status === 200 || r.status === 201, ctx);
        else if (r.t0 >= marks.stopped && r.t1 < marks.start) assert.equal(r.status, 503, ctx);
        else if (r.t0 >= marks.recovered + 1000 && r.meta.session !== users[r.meta.ui].session) assert.ok(r.status === 200 || r.status === 201, ctx);
        else assert.ok([200, 201, 503].includes(r.status) || (r.status === 401 && r.t1 >= marks.start), ctx);
      }
      assert.ok(rs.some((r) => r.meta.cred !== 'token' && r.t0 >= marks.stopped && r.status === 503), 'no session request was sent during the outage');
      assert.ok(rs.some((r) => r.meta.cred !== 'token' && r.t0 >= marks.recovered + 1000 && r.status < 300), 'the session workers never recovered');
      // Readiness: degraded (200, redis false, postgres true) while Redis was down.
      for (const { t0, r } of ready) {
        assert.ok(r.ok, `readiness: ${describeResult(r)}`);
        if (t0 > firstDegraded && t0 < marks.start) {
          assert.equal(r.status, 200, describeResult(r));
          assert.equal(r.json.status, 'degraded', describeResult(r));
          assert.equal(r.json.checks.redis.ok, false, describeResult(r));
          assert.equal(r.json.checks.postgres.ok, true, describeResult(r));
        }
      }
      assertNoAcknowledgedWriteLost(acknowledged(rs), 'redis outage');
    } finally {
      if (redisDown) await services('start-redis');
    }
  });
});

describe('Postgres stopped under a write load', () => {
  it('answers 201 or 503 with Retry-After, recovers, and loses no acknowledged write', async (t) => {
    const srv = await serverFor(t, { PULSE_PG_WAIT_MS: '1000' });
    let pgDown = false;
    try {
      const users = [];
      for (let i = 0; i < 2; i++) users.push(await account(srv, `pg-load-${i}`));
      let stopping = false;
      const marks = { stop: Infinity, stopped: Infinity, start: Infinity, started: Infinity };
      const load = runLoad(srv.port, 8, async (w) => {
        const auth = bearer(users[w % users.length].pat);
        const req = feedingRequest(auth, 'pg');
        req.meta.auth = auth;
        return req;
      }, { stop: () => stopping, maxMs: 90000 });

      await sleep(1500);
      marks.stop = Date.now();
      pgDown = true;
      await services('stop-pg');
      marks.stopped = Date.now();
      await sleep(Math.max(0, marks.stop + 10000 - Date.now()));
      marks.start = Date.now();
      await services('start-pg');
      marks.started = Date.now();
      pgDown = false;
      // Recovered once every worker got a 201 for a request sent after start-pg returned.
      const recovered = await waitFor(() => {
        const per = new Map();
        for (const r of load.results) if (r.t0 >= marks.started && r.status === 201 && !per.has(r.worker)) per.set(r.worker, r.t1);
        return per.size === 8 ? Math.max(...per.values()) : null;
      }, { timeout: 30000 });
      const firstOk = Math.min(...load.results.filter((r) => r.t0 >= marks.started && r.status === 201).map((r) => r.t1));
      console.log(`# postgres outage: stop-pg took ${marks.stopped - marks.stop} ms, start-pg ${marks.started - marks.start} ms`);
      console.log(`# postgres recovery: first 201 ${firstOk - marks.started} ms, every worker 201 ${recovered - marks.started} ms after start-pg returned`);
      await sleep(2000);
      stopping = true;
      await load.done;
      const tail = load.results.filter((r) => r.t0 >= recovered + 500);

      const rs = load.results;
      const lat503 = rs.filter((r) => r.status === 503).map((r) => r.t1 - r.t0);
      console.log(`# postgres load: ${rs.length} POSTs: ${tally(rs, (r) => (r.ok ? r.status : r.kind))}; 503 latency p50 ${pct(lat503, 0.5)} ms, max ${Math.max(0, ...lat503)} ms`);
      const broken = rs.filter((r) => !r.ok);
      assert.deepEqual(broken.map(describeResult), [], 'connection failures during a Postgres outage');
      const other = rs.filter((r) => r.status !== 201 && r.status !== 503);
      assert.deepEqual(other.map((r) => `${describeResult(r)} at +${r.t0 - marks.stop} ms`), [], 'only 201 or 503 (never 500, never a 401 for a valid token)');
      for (const r of rs.filter((x) => x.status === 503)) {
        assert.equal(r.json.type, UNAVAILABLE, describeResult(r));
        assert.match(r.headers['retry-after'] || '', /^\d+$/, `503 without Retry-After: ${describeResult(r)}`);
      }
      assert.ok(rs.some((r) => r.status === 503 && r.t0 >= marks.stopped), 'no request was refused while Postgres was down');
      assert.ok(tail.length > 0 && tail.every((r) => r.status === 201), `after recovery: ${tally(tail, (r) => r.status)}`);

      assertNoAcknowledgedWriteLost(acknowledged(rs), 'postgres outage');
      const unacked = rs.filter((r) => r.status === 503).map((r) => ({ key: r.meta.key, body: r.meta.body, auth: r.meta.auth, note: r.meta.note }));
      await retryAndCheckOnce(srv.port, unacked, rs.map((r) => r.meta.note), 'postgres outage');
    } finally {
      if (pgDown) await services('start-pg');
    }
  });
});

describe('Postgres connection limit exhausted', () => {
  it('waits PULSE_PG_WAIT_MS then answers 503 with Retry-After, and recovers when the slots free up', async (t) => {
    const WAIT_MS = 1000;
    const srv = await serverFor(t, { PULSE_PG_WAIT_MS: String(WAIT_MS) });
    const hogs = [];
    let filling = false;
    // the superuser: it may take the reserved slots too and end pulsed's backends
    const u = new URL(requireEnv('PULSE_TEST_ADMIN_URL'));
    const pgOpts = { port: Number(u.port), user: decodeURIComponent(u.username || 'postgres'), database: u.pathname.slice(1), appName: 'pulse-faults-hog' };
    try {
      const user = await account(srv, 'pg-exhaust');
      const ctrl = await pgConnect(pgOpts);
      hogs.push(ctrl);
      const max = Number((await ctrl.query('SHOW max_connections'))[0][0]);
      const pulsedBackends = async () => Number((await ctrl.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pulsed'"))[0][0]);
      assert.ok(await pulsedBackends() >= 1, 'pulsed holds connections');

      // Take every slot (we connect as a superuser, so the reserved ones too), then keep
      // trying so that any slot freed later is ours, not pulsed's.
      let rejected = 0;
      const tryHog = async () => {
        try { hogs.push(await pgConnect(pgOpts)); return true; } catch (e) {
          if (e.sqlstate !== '53300') throw e;
          rejected++;
          return false;
        }
      };
      for (let k = 0; k < 60; k++) {
        const got = await Promise.all(Array.from({ length: 8 }, tryHog));
        if (!got.some(Boolean)) break;
      }
      const clientBackends = Number((await ctrl.query("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"))[0][0]);
      console.log(`# pg exhaustion: max_connections ${max}, ${hogs.length} hog connections, ${clientBackends} client backends, ${rejected} attempts refused (53300)`);
      assert.equal(clientBackends, max, 'every connection slot is taken');
      filling = true;
      // Eager for a second after each termination (pulsed retries after 100 ms at the
      // earliest), lazy otherwise: rejected attempts cost Postgres a fork each.
      let lastTerminate = 0;
      const filler = (async () => {
        for (let k = 0; k < 10000 && filling; k++) {
          const eager = Date.now() - lastTerminate < 1000;
          await Promise.all(Array.from({ length: eager ? 4 : 1 }, tryHog));
          await sleep(eager ? 5 : 200);
        }
      })();
      // Cut pulsed's connections: it must reconnect, and there is no slot left for it.
      let gone = false;
      for (let k = 0; k < 5 && !gone; k++) {
        lastTerminate = Date.now();
        const n = Number((await ctrl.query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pulsed'"))[0][0]);
        await sleep(500);
        gone = await pulsedBackends() === 0;
        console.log(`# pg exhaustion: terminated ${n} pulsed backends; pulsed backends left after 500 ms: ${gone ? 0 : 'some'}`);
      }
      assert.ok(gone, 'pulsed kept a connection');
      const tSaturated = Date.now();

      // Token requests need Postgres: each waits for a connection, then 503.
      const one = async (req) => {
        const c = new Conn(srv.port);
        try { return await c.request(req.method, req.path, { headers: req.headers, body: req.body, timeout: 20000 }); } finally { c.close(); }
      };
      const reqs = [];
      for (let k = 0; k < 12; k++) {
        reqs.push(k % 2 ? { method: 'GET', path: '/api/v1/me', headers: bearer(user.pat) } : feedingRequest(bearer(user.pat), 'exhaust'));
      }
      const rs = [...await Promise.all(reqs.slice(0, 10).map(one)), await one(reqs[10]), await one(reqs[11])];
      const lat = rs.map((r) => r.t1 - r.t0);
      console.log(`# pg exhaustion: ${rs.length} token requests -> ${tally(rs, (r) => (r.ok ? r.status : r.kind))}, latency min ${Math.min(...lat)} ms, max ${Math.max(...lat)} ms (PULSE_PG_WAIT_MS=${WAIT_MS})`);
      for (const r of rs) {
        assert.ok(r.ok, describeResult(r));
        assert.equal(r.status, 503, describeResult(r));
        assert.equal(r.json.type, UNAVAILABLE, describeResult(r));
        assert.match(r.headers['retry-after'] || '', /^\d+$/, `503 without Retry-After: ${describeResult(r)}`);
        assert.ok(r.t1 - r.t0 < WAIT_MS + 5000, `answered after ${r.t1 - r.t0} ms`);
      }
      const live = await one({ method: 'GET', path: '/health/live' });
      assert.equal(live.status, 200, describeResult(live));
      const rd = await one({ method: 'GET', path: '/health/ready' });
      console.log(`# pg exhaustion: /health/ready -> ${rd.status} ${rd.body}`);
      assert.equal(rd.status, 200, describeResult(rd));
      assert.equal(rd.json.status, 'degraded', describeResult(rd));
      assert.equal(rd.json.checks.postgres.ok, false, describeResult(rd));
      assert.equal(await pulsedBackends(), 0, 'pulsed got a slot during the test');

      // Release every slot: pulsed reconnects on its own.
      filling = false;
      await filler;
      const held = Date.now() - tSaturated;
      for (const h of hogs) h.close();
      const tRelease = Date.now();
      await waitFor(async () => {
        const r = await one({ method: 'GET', path: '/api/v1/me', headers: bearer(user.pat) });
        return r.ok && r.status === 200;
      }, { timeout: 30000, interval: 100 });
      const tMe = Date.now();
      const post = feedingRequest(bearer(user.pat), 'exhaust-after');
      const pr = await one(post);
      assert.equal(pr.status, 201, describeResult(pr));
      await waitFor(async () => (await one({ method: 'GET', path: '/health/ready' })).json.status === 'ok', { timeout: 30000 });
      console.log(`# pg exhaustion recovery: token GET /me 200 ${tMe - tRelease} ms and ready ok ${Date.now() - tRelease} ms after the ${hogs.length} hogs closed (slots held ${held} ms)`);
    } finally {
      filling = false;
      for (const h of hogs) h.close();
      // The hogs' backends exit as their sockets close.
      await waitFor(() => psqlIn("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pulse-faults-hog'") === '0', { timeout: 20000, interval: 200 });
    }
  });
});

// One SIGTERM under load: 20 clients with two keep-alive connections each, GET /me and
// POST /feedings alternating. Returns what the checks below need.
async function sigtermRound(round, DELAY, DRAIN) {
  const srv = await startServer({ PULSE_SHUTDOWN_DELAY_MS: String(DELAY), PULSE_DRAIN_MS: String(DRAIN) });
  await waitReady(srv);
  const users = [];
  for (let i = 0; i < 4; i++) users.push(await account(srv, `term-${round}-${i}`));
  let exited = false;
  let giveUp = Infinity;
  srv.exited.then(() => { exited = true; });
  const CLIENTS = 20;
  let rid = 0;
  const load = runLoad(srv.port, CLIENTS * 2, async (w, i) => {
    const us = users[(w >> 1) % users.length];
    const auth = bearer((w >> 1) % 2 ? us.session : us.pat);
    const req = i % 2 ? { method: 'GET', path: '/api/v1/me', headers: auth } : feedingRequest(auth, 'term');
    req.headers = { ...req.headers, 'X-Request-Id': `term-${process.pid}-${round}-${++rid}` };
    req.meta = { ...(req.meta || {}), rid: req.headers['X-Request-Id'] };
    return req;
  }, { stop: () => exited || Date.now() > giveUp, maxMs: 60000, pauseAfterFailure: 10 });
  await sleep(1500);
  const before = load.results.length;
  const tTerm = Date.now();
  giveUp = tTerm + DELAY + DRAIN + 10000;
  srv.child.kill('SIGTERM');
  await Promise.race([srv.exited, sleep(DELAY + DRAIN + 10000)]);
  const tExit = Date.now();
  await load.done;
  if (!exited) srv.child.kill('SIGKILL');
  assert.ok(exited, 'pulsed did not exit');
  await stopServer(srv); // exited by itself already: status 0, no signal, clean stderr
  assert.ok(srv.logs.some((l) => l.msg === 'stopped'));
  const rs = load.results;
  const fail = rs.filter((r) => !r.ok);
  const firstRefused = Math.min(...fail.filter((r) => r.kind === 'refused').map((r) => r.t0));
  console.log(`# sigterm round ${round}: ${before} requests before the signal, ${rs.length - before} after; exit 0 ${tExit - tTerm} ms after SIGTERM (delay ${DELAY} ms); first refused connection +${firstRefused - tTerm} ms`);
  console.log(`# sigterm round ${round}: responses ${tally(rs.filter((r) => r.ok), (r) => `${r.method}:${r.status}`)}; failures ${tally(fail, (r) => `${r.kind}/${r.fresh ? 'fresh' : 'reused'}`)}`);
  const logged = new Map(srv.logs.filter((l) => l.msg === 'request').map((l) => [l.request_id, l.status]));
  for (const r of rs) { r.round = round; r.tTerm = tTerm; r.firstRefused = firstRefused; r.logged = logged.get(r.meta.rid); }
  return rs;
}

describe('SIGTERM under load', () => {
  it('answers every request it took completely, refuses new connections after the delay, exits 0, loses no write', async () => {
    const DELAY = 500;
    const DRAIN = 5000;
    // Two rounds: the drop at listener close below is a race, and one round catches it
    // about four times in five.
    const rs = [...await sigtermRound(1, DELAY, DRAIN), ...await sigtermRound(2, DELAY, DRAIN)];
    const ok = rs.filter((r) => r.ok);
    const fail = rs.filter((r) => !r.ok);
    const at = (r) => `round ${r.round}, sent +${r.t0 - r.tTerm} ms after SIGTERM (first refusal +${r.firstRefused - r.tTerm} ms)`;

    // Every response complete (the client parses Content-Length and JSON), never 5xx.
    assert.deepEqual(fail.filter((r) => !['refused', 'reset', 'closed'].includes(r.kind) || r.bytes > 0).map(describeResult), [], 'truncated or malformed responses');
    assert.deepEqual(ok.filter((r) => !(r.method === 'GET' ? r.status === 200 : r.status === 201)).map(describeResult), [], 'unexpected statuses during shutdown');
    // Once draining, every response says Connection: close (100 ms for the signal to land).
    const late = ok.filter((r) => r.t0 > r.tTerm + 100 && !r.connClose);
    assert.deepEqual(late.map((r) => `${describeResult(r)} ${at(r)}`), [], 'responses after SIGTERM without Connection: close');
    // Refused only once the listener is closed, i.e. after the delay.
    const early = fail.filter((r) => r.kind === 'refused' && r.t0 < r.tTerm + DELAY - 50);
    assert.deepEqual(early.map((r) => `${describeResult(r)} ${at(r)}`), [], 'connections refused during the shutdown delay');
    // A request dropped without any answer must not be one the server handled.
    const droppedButHandled = fail.filter((r) => r.logged !== undefined);
    assert.deepEqual(droppedButHandled.map((r) => `${describeResult(r)} (server logged ${r.logged}) ${at(r)}`), [], 'the server handled these requests but the client never got the answer');
    // Only a connection attempted after the listener closed may fail, and then it is
    // refused. A request sent on a connection the kernel had already established must be
    // answered: "requests in flight (including half-received ones) finish", "a connection
    // is never closed with a request in flight".
    // The one exception is the instant of the close itself: a connection the kernel completes
    // between the server's last accept of its backlog and close() of that worker's listener
    // is reset by the kernel (each SO_REUSEPORT listener has its own queue). The server never
    // saw it (no access-log line: checked above), so the client may safely retry; such a
    // fresh connection, sent within 5 ms of the first refusal, is counted as refused.
    const atClose = (r) => r.kind === 'reset' && r.fresh && r.bytes === 0 && r.logged === undefined
      && Math.abs(r.t0 - r.firstRefused) <= 5;
    const silent = fail.filter((r) => r.kind !== 'refused' && !atClose(r));
    console.log(`# sigterm: ${silent.length} requests dropped with no byte of answer (and no access-log line) on established connections${silent.length ? `: ${silent.slice(0, 6).map((r) => `${r.kind}/${r.fresh ? 'fresh' : 'reused'} round ${r.round} sent +${r.t0 - r.tTerm} ms`).join(', ')}` : ''}`);

    assertNoAcknowledgedWriteLost(acknowledged(rs), 'sigterm');
    assert.deepEqual(silent.map((r) => `${describeResult(r)} ${at(r)}`), [],
      'requests on established connections dropped without an answer at listener close');
  });
});

describe('SIGKILL under a write load, then a restart', () => {
  it('keeps every acknowledged write and serves normally after the restart', async () => {
    let srv = await startServer({});
    const port = srv.port;
    await waitReady(srv);
    const users = [];
    for (let i = 0; i < 2; i++) users.push(await account(srv, `kill-${i}`));
    let stopping = false;
    let tKill = Infinity;
    let tUp = Infinity;
    const load = runLoad(port, 8, async (w) => {
      const auth = bearer(users[w % users.length].pat);
      const req = feedingRequest(auth, 'kill');
      req.meta.auth = auth;
      return req;
    }, { stop: () => stopping, maxMs: 60000, pauseAfterFailure: 25 });
    let srv2;
    try {
      await sleep(1500);
      tKill = Date.now();
      srv.child.kill('SIGKILL');
      const ex = await srv.exited;
      assert.equal(ex.signal, 'SIGKILL');
      const tDead = Date.now();
      srv2 = await startServer({ PULSE_LISTEN: `127.0.0.1:${port}` });
      assert.equal(srv2.port, port);
      tUp = Date.now();
      await waitReady(srv2);
      const tReady = Date.now();
      await sleep(1500);
      stopping = true;
      await load.done;
      const rs = load.results;
      const firstAfter = Math.min(...rs.filter((r) => r.ok && r.t0 >= tUp).map((r) => r.t1));
      console.log(`# sigkill: restarted pulsed listening ${tUp - tDead} ms after the kill, ready ${tReady - tDead} ms, first 201 from the load ${firstAfter - tDead} ms`);
      console.log(`# sigkill: ${rs.length} POSTs: ${tally(rs, (r) => (r.ok ? r.status : `${r.kind}${r.t0 < tKill ? '-inflight' : ''}`))}`);

      // Before the kill and after the restart, every answer is a 201; in between, failed
      // connections only (a request in flight at the kill may lose its answer).
      const bad = rs.filter((r) => (r.ok ? r.status !== 201 : (r.t0 >= tUp || r.bytes > 0 && r.t0 >= tKill)));
      assert.deepEqual(bad.map((r) => `${describeResult(r)} at ${r.t0 - tKill} ms from the kill`), [], 'unexpected results');
      assert.ok(rs.some((r) => r.ok && r.t0 >= tUp), 'the load never got through to the restarted server');

      assertNoAcknowledgedWriteLost(acknowledged(rs), 'sigkill');
      const unacked = rs.filter((r) => !r.ok).map((r) => ({ key: r.meta.key, body: r.meta.body, auth: r.meta.auth, note: r.meta.note }));
      await retryAndCheckOnce(port, unacked, rs.map((r) => r.meta.note), 'sigkill');

      // The restarted server serves normally: login, session and token reads and writes.
      const li = await api(srv2, 'POST', '/api/v1/auth/login', { body: { email: users[0].email, password: users[0].password } });
      expectStatus(li, 200);
      expectStatus(await api(srv2, 'GET', '/api/v1/me', { token: li.json.token }), 200);
      expectStatus(await api(srv2, 'GET', '/api/v1/me', { token: users[1].pat }), 200);
      expectStatus(await api(srv2, 'POST', FEEDINGS, { token: users[1].pat, body: { amount_ml: 10 } }), 201);
      const list = await api(srv2, 'GET', `${FEEDINGS}?limit=5`, { token: users[0].session });
      expectStatus(list, 200);
    } finally {
      stopping = true;
      await load.done;
      if (srv.child.exitCode === null && srv.child.signalCode === null) srv.child.kill('SIGKILL');
      if (srv2) await stopServer(srv2);
    }
  });
});
