// Helpers for the API end-to-end tests (auth, profile): raw HTTP requests with full control
// over Origin, Content-Type and cookies (node:http adds nothing of its own), accounts and
// tokens, psql, and the checks every response of the contract must pass.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

import { requireEnv } from './helpers.mjs';

export const PUBLIC_ORIGIN = 'http://pulse.test';
export const CORS_ORIGIN = 'https://app.example';
export const PASSWORD = 'correct horse battery staple';
export const SESSION_ABSOLUTE_S = 86400;

// The environment every API test server gets (on top of startServer's own).
export const API_ENV = {
  PULSE_PUBLIC_ORIGIN: PUBLIC_ORIGIN,
  PULSE_CORS_ORIGINS: CORS_ORIGIN,
  PULSE_SESSION_IDLE_S: '3600',
  PULSE_SESSION_ABSOLUTE_S: String(SESSION_ABSOLUTE_S),
};

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const TS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const USER_KEYS = ['created_at', 'daily_target_ml', 'display_name', 'email', 'id', 'timezone', 'updated_at'];
export const SESSION_KEYS = ['created_at', 'current', 'id', 'ip', 'last_seen_at', 'user_agent'];
export const TOKEN_KEYS = ['created_at', 'expires_at', 'id', 'last_used_at', 'name', 'scopes'];
// Care circles added a key to each of these shapes; v1 key-set checks assert the v1 keys and
// exactly these additions (the v1 values are checked where they were).
export const USER_KEYS_ADDED = ['default_subject_id', 'volume_unit'];
// Feedings v2 (issue 15) added these to a feeding.
export const FEEDING_KEYS_V2_ADDED = ['duration_s', 'method'];
export const TOKEN_KEYS_ADDED = ['subject_ids'];
export const withAdded = (v1, added) => [...v1, ...added].sort();

export function uniqueEmail(tag = 'u') {
  return `${tag}-${Date.now().toString(36)}-${randomBytes(5).toString('hex')}@example.com`;
}

// One request on a fresh connection. Options:
//   body: object (JSON-encoded) or string (sent as is); absent = no body, Content-Length: 0
//         on POST/PATCH/PUT/DELETE
//   contentType: default 'application/json' when there is a body; null = no header
//   token: Authorization: Bearer <token>;  cookie: the pulse_session value (Cookie header)
//   origin: default PUBLIC_ORIGIN; null = no Origin header
//   headers: extra headers (an array value is sent as that many header lines)
//   check: false skips the universal response checks
//   localAddress: the client socket's own address (e.g. 127.0.0.2, another loopback host)
// Resolves { status, headers (lower-cased; set-cookie is an array), text, json }.
export function api(srv, method, path, opts = {}) {
  const { body, token, cookie, headers = {}, check = true, localAddress } = opts;
  const origin = opts.origin === undefined ? PUBLIC_ORIGIN : opts.origin;
  const h = { Host: `127.0.0.1:${srv.port}`, ...headers };
  let payload = null;
  if (body !== undefined) {
    payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
    const ct = opts.contentType === undefined ? 'application/json' : opts.contentType;
    if (ct !== null) h['Content-Type'] = ct;
  }
  if (payload || !['GET', 'HEAD'].includes(method)) h['Content-Length'] = String(payload ? payload.length : 0);
  if (token) h.Authorization = `Bearer ${token}`;
  if (cookie) h.Cookie = cookie.includes('=') ? cookie : `pulse_session=${cookie}`;
  if (origin !== null) h.Origin = origin;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, method, path, headers: h, agent: false, localAddress }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        if (/json/.test(res.headers['content-type'] || '') && text) {
          try { json = JSON.parse(text); } catch (e) { reject(new Error(`${method} ${path}: unparsable JSON body ${text.slice(0, 300)}`)); return; }
        }
        const r = { status: res.statusCode, headers: res.headers, text, json, method, path };
        try {
          if (check) checkResponse(r);
        } catch (e) { reject(e); return; }
        resolve(r);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(20000, () => req.destroy(new Error(`${method} ${path}: timed out`)));
    if (payload) req.write(payload);
    req.end();
  });
}

const where = (r) => `${r.method} ${r.path} -> ${r.status} ${r.text.slice(0, 400)}`;

// What the contract says of every response: X-Request-Id, X-Response-Time, nosniff; every 401 has
// WWW-Authenticate: Bearer; every error is problem+json with type/title/status/request_id.
export function checkResponse(r) {
  assert.ok(r.headers['x-request-id'], `X-Request-Id missing: ${where(r)}`);
  assert.match(r.headers['x-response-time'] || '', /^\d+(\.\d+)?ms$/, `X-Response-Time: ${where(r)}`);
  assert.equal(r.headers['x-content-type-options'], 'nosniff', `X-Content-Type-Options: ${where(r)}`);
  if (r.status === 401) {
    assert.match(r.headers['www-authenticate'] || '', /^Bearer(\s|,|$)/, `401 without WWW-Authenticate: Bearer: ${where(r)}`);
  }
  if (r.status >= 400 && r.method !== 'HEAD') {
    assert.match(r.headers['content-type'] || '', /^application\/problem\+json/, `error not problem+json: ${where(r)}`);
    const p = r.json;
    assert.ok(p && typeof p === 'object', `problem body: ${where(r)}`);
    assert.match(p.type, /^\/problems\/[a-z-]+$/, where(r));
    assert.equal(typeof p.title, 'string', where(r));
    assert.equal(p.status, r.status, where(r));
    assert.equal(p.request_id, r.headers['x-request-id'], where(r));
    assert.ok(!/\b(SELECT|INSERT|UPDATE|DELETE)\b.*\b(FROM|INTO|SET)\b|\.c:\d+|\/work\//.test(r.text), `leaks internals: ${where(r)}`);
  }
}

// Asserts status and problem type (slug without /problems/); for 422, that errors[] names
// each of `fields` (a field matches itself or a nested path under it: "scopes[1]").
export function expectProblem(r, status, slug, fields) {
  assert.equal(r.status, status, where(r));
  if (r.method === 'HEAD') return;
  assert.equal(r.json.type, `/problems/${slug}`, where(r));
  if (fields) {
    assert.ok(Array.isArray(r.json.errors) && r.json.errors.length > 0, `errors[] missing: ${where(r)}`);
    for (const e of r.json.errors) {
      assert.equal(typeof e.field, 'string', where(r));
      assert.equal(typeof e.message, 'string', where(r));
    }
    const named = r.json.errors.map((e) => e.field);
    for (const f of fields) {
      assert.ok(named.some((n) => n === f || n.startsWith(`${f}[`) || n.startsWith(`${f}.`) || n.startsWith(`${f}/`)),
        `errors[].field should name ${f}: ${where(r)}`);
    }
  }
}

export const expect401 = (r) => expectProblem(r, 401, 'unauthorized');
export const expect403 = (r) => expectProblem(r, 403, 'forbidden');
export const expect404 = (r) => expectProblem(r, 404, 'not-found');
export const expect422 = (r, ...fields) => expectProblem(r, 422, 'validation', fields);

export function expectStatus(r, status) {
  assert.equal(r.status, status, where(r));
  return r;
}

// Set-Cookie of the session cookie parsed: { value, attrs: {lower-case name: value|true}, raw }.
// `name`: pulse_session, or __Host-pulse_session with PULSE_COOKIE_SECURE=1.
export function sessionCookie(r, name = 'pulse_session') {
  const all = [].concat(r.headers['set-cookie'] || []);
  const raw = all.find((c) => c.startsWith(`${name}=`));
  if (!raw) return null;
  const [first, ...rest] = raw.split(';').map((s) => s.trim());
  const attrs = {};
  for (const a of rest) {
    const i = a.indexOf('=');
    if (i < 0) attrs[a.toLowerCase()] = true;
    else attrs[a.slice(0, i).toLowerCase()] = a.slice(i + 1);
  }
  return { value: first.slice(name.length + 1), attrs, raw };
}

export async function register(srv, { email = uniqueEmail(), password = PASSWORD, headers, ...rest } = {}) {
  const r = await api(srv, 'POST', '/api/v1/auth/register', { body: { email, password, ...rest }, headers });
  expectStatus(r, 201);
  return { email: r.json.user.email, password, token: r.json.token, user: r.json.user, expires_at: r.json.expires_at, cookie: sessionCookie(r), res: r };
}

export async function login(srv, email, password = PASSWORD, { headers } = {}) {
  const r = await api(srv, 'POST', '/api/v1/auth/login', { body: { email, password }, headers });
  expectStatus(r, 200);
  return { token: r.json.token, user: r.json.user, expires_at: r.json.expires_at, cookie: sessionCookie(r), res: r };
}

// Creates a personal access token with a session token; resolves the 201 body.
export async function createToken(srv, session, { name = 'test token', scopes = ['read', 'write'], ...rest } = {}) {
  const r = await api(srv, 'POST', '/api/v1/tokens', { token: session, body: { name, scopes, ...rest } });
  expectStatus(r, 201);
  return r.json;
}

export function psql(sql) {
  return execFileSync('psql', [requireEnv('DATABASE_URL'), '-v', 'ON_ERROR_STOP=1', '-tAc', sql], { encoding: 'utf8' }).trim();
}

// Seeding records with SQL (care circles): the values of (subject_id, created_by) for a row
// logged by `userId` in their default subject, e.g.
//   INSERT INTO feedings (subject_id, created_by, amount_ml) SELECT ${seedAs(id)}, 100
export function seedAs(userId) {
  assert.match(userId, UUID_RE);
  return `(SELECT default_subject_id FROM users WHERE id = '${userId}'), '${userId}'::uuid`;
}

// Every table of the public schema that has a user_id column (or, with `column`, another).
export function userIdTables(column = 'user_id') {
  return psql(`SELECT table_name FROM information_schema.columns
               WHERE table_schema = 'public' AND column_name = '${column}' ORDER BY 1`).split('\n').filter(Boolean);
}

// Rows left for a user: { table: count } over users, every user_id table and every table of
// records that names who created them (created_by: notes and feedings since care circles).
export function rowsOf(userId) {
  assert.match(userId, UUID_RE);
  const out = { users: Number(psql(`SELECT count(*) FROM users WHERE id = '${userId}'`)) };
  for (const t of userIdTables()) out[t] = Number(psql(`SELECT count(*) FROM "${t}" WHERE user_id = '${userId}'`));
  for (const t of userIdTables('created_by')) out[t] = Number(psql(`SELECT count(*) FROM "${t}" WHERE created_by = '${userId}'`));
  return out;
}

// REDIS_URL with another database index.
export function redisUrlWithDb(db) {
  const u = new URL(requireEnv('REDIS_URL'));
  u.pathname = `/${db}`;
  return u.toString();
}

// RESP, the Redis protocol, for the two raw-socket helpers below: a command as an array of
// bulk strings, and one reply parsed from buf at index i -> [value, next index], or null while
// incomplete (an error reply is an Error value; bulk strings are decoded as `encoding`).
const respEncode = (a) => `*${a.length}\r\n${a.map((x) => `$${Buffer.byteLength(String(x))}\r\n${x}\r\n`).join('')}`;
function respParse(buf, i, encoding) {
  const nl = buf.indexOf('\r\n', i);
  if (nl < 0) return null;
  const t = String.fromCharCode(buf[i]);
  const line = buf.subarray(i + 1, nl).toString('utf8');
  if (t === '+') return [line, nl + 2];
  if (t === '-') return [new Error(line), nl + 2];
  if (t === ':') return [Number(line), nl + 2];
  if (t === '$' || t === '*') {
    const n = Number(line);
    if (n < 0) return [null, nl + 2];
    if (t === '$') {
      if (buf.length < nl + 2 + n + 2) return null;
      return [buf.subarray(nl + 2, nl + 2 + n).toString(encoding), nl + 2 + n + 2];
    }
    const arr = [];
    let j = nl + 2;
    for (let k = 0; k < n; k++) {
      const r = respParse(buf, j, encoding);
      if (!r) return null;
      arr.push(r[0]);
      j = r[1];
    }
    return [arr, j];
  }
  throw new Error(`bad RESP: ${buf.toString('latin1', i, i + 40)}`);
}

// Runs commands (arrays of strings) on the test Redis, in the database of `url`, and
// resolves their replies (strings, numbers, arrays, null; an error reply rejects).
export function redisCommands(url, cmds) {
  const u = new URL(url);
  const db = (u.pathname || '/0').slice(1) || '0';
  const all = [...(u.password ? [['AUTH', decodeURIComponent(u.password)]] : []), ['SELECT', db], ...cmds];
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port || 6379), u.hostname);
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => { s.destroy(); reject(new Error('redis timed out')); }, 5000);
    const parse = (i) => respParse(buf, i, 'latin1');
    s.on('connect', () => s.write(all.map(respEncode).join('')));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const out = [];
      let i = 0;
      for (;;) {
        if (i >= buf.length) break;
        const r = parse(i);
        if (!r) return;
        out.push(r[0]);
        i = r[1];
      }
      if (out.length < all.length) return;
      clearTimeout(timer);
      s.destroy();
      const err = out.find((x) => x instanceof Error);
      if (err) reject(err); else resolve(out.slice(all.length - cmds.length));
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

// FLUSHDB on one database of the test Redis (a database only one test server uses).
export async function flushRedisDb(url) {
  await redisCommands(url, [['FLUSHDB']]);
}

// Every key of one Redis database with its value as text (for "what is stored" checks).
export async function redisDump(url) {
  const [keys] = await redisCommands(url, [['KEYS', '*']]);
  if (!keys.length) return [];
  const types = await redisCommands(url, keys.map((k) => ['TYPE', k]));
  const read = { string: (k) => ['GET', k], hash: (k) => ['HGETALL', k], set: (k) => ['SMEMBERS', k], zset: (k) => ['ZRANGE', k, '0', '-1', 'WITHSCORES'], list: (k) => ['LRANGE', k, '0', '-1'] };
  const cmds = keys.map((k, i) => (read[types[i]] || ((x) => ['TYPE', x]))(k));
  const vals = await redisCommands(url, cmds);
  return keys.map((k, i) => ({ key: k, type: types[i], value: JSON.stringify(vals[i]) }));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// SUBSCRIBE to channels of the test Redis (pub/sub ignores the database index). Resolves,
// once every subscription is confirmed, { messages: [{channel, data, at}], waitFor(pred,
// ms), close() }; `onMessage(m)` runs as each message arrives.
export function redisSubscribe(url, channels, { onMessage } = {}) {
  const u = new URL(url);
  const messages = [];
  const waiters = [];
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port || 6379), u.hostname);
    let buf = Buffer.alloc(0);
    let confirmed = 0;
    let authed = !u.password;
    const timer = setTimeout(() => { s.destroy(); reject(new Error('redis SUBSCRIBE timed out')); }, 5000);
    const parse = (i) => respParse(buf, i, 'utf8');
    const handle = {
      messages,
      waitFor(pred, ms = 2000) {
        const found = messages.find(pred);
        if (found) return Promise.resolve(found);
        return new Promise((res, rej) => {
          const w = { pred, res, timer: setTimeout(() => { waiters.splice(waiters.indexOf(w), 1); rej(new Error(`no matching Redis message in ${ms} ms; got ${JSON.stringify(messages.map((m) => m.data))}`)); }, ms) };
          waiters.push(w);
        });
      },
      close() { s.destroy(); },
    };
    s.on('connect', () => s.write((u.password ? respEncode(['AUTH', decodeURIComponent(u.password)]) : '') + respEncode(['SUBSCRIBE', ...channels])));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      let i = 0;
      for (;;) {
        if (i >= buf.length) break;
        const r = parse(i);
        if (!r) break;
        i = r[1];
        const v = r[0];
        if (v instanceof Error) { clearTimeout(timer); reject(v); continue; }
        if (!authed) { authed = true; continue; }
        if (Array.isArray(v) && v[0] === 'subscribe') {
          if (++confirmed === channels.length) { clearTimeout(timer); resolve(handle); }
        } else if (Array.isArray(v) && v[0] === 'message') {
          let data;
          try { data = JSON.parse(v[2]); } catch { data = v[2]; }
          const m = { channel: v[1], data, at: Date.now() };
          if (onMessage) onMessage(m);
          messages.push(m);
          for (const w of [...waiters]) {
            if (w.pred(m)) { clearTimeout(w.timer); waiters.splice(waiters.indexOf(w), 1); w.res(m); }
          }
        }
      }
      buf = buf.subarray(i);
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

// Subscribes to the event channels of `users` (from register) and records, as each event
// arrives, the row's version in `table` at that moment (m.row: '' once deleted), which
// shows whether the event was published after the commit.
export function subscribeRecordEvents(table, users) {
  return redisSubscribe(requireEnv('REDIS_URL'), users.map((u) => `pulse:user:${u.user.id}`), {
    onMessage(m) {
      const id = m.data && m.data.data && m.data.data.id;
      if (id && UUID_RE.test(id)) m.row = psql(`SELECT version FROM ${table} WHERE id = '${id}'`);
    },
  });
}
