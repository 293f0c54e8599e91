// Helpers for end-to-end tests: start the real pulsed binary on an ephemeral port against
// the Postgres and Redis that `make test` started, and talk raw HTTP to it.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = process.env.PULSE_BIN || path.join(ROOT, 'build-asan/pulsed');

export function requireEnv(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run through \`make test\``);
  return v;
}

// The test Postgres has the roles of a deployment (scripts/services.sh): DATABASE_URL is the
// service's role (reads and writes the tables, owns nothing), PULSE_MIGRATE_DATABASE_URL the
// owner (migrations, schema changes), PULSE_TEST_ADMIN_URL the superuser (databases,
// connection slots).
export function psqlAs(url, sql) {
  return execFileSync('psql', [url, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-tAc', sql], { encoding: 'utf8' }).trim();
}

// The URL of setting `name` (one of the three above) with another database.
export function dbUrl(name, database) {
  const u = new URL(requireEnv(name));
  u.pathname = `/${database}`;
  return u.toString();
}

// An empty database owned by the owner role, as a deployment creates it; returns the
// environment of a server on it.
export function freshDatabase(database) {
  const admin = requireEnv('PULSE_TEST_ADMIN_URL');
  const owner = decodeURIComponent(new URL(requireEnv('PULSE_MIGRATE_DATABASE_URL')).username);
  psqlAs(admin, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  psqlAs(admin, `CREATE DATABASE ${database} OWNER ${owner}`);
  return { DATABASE_URL: dbUrl('DATABASE_URL', database), PULSE_MIGRATE_DATABASE_URL: dbUrl('PULSE_MIGRATE_DATABASE_URL', database) };
}

export function dropDatabase(database) {
  psqlAs(requireEnv('PULSE_TEST_ADMIN_URL'), `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
}

// Starts `pulsed serve` and resolves once it logged "listening". cwd is an empty temp dir
// so no stray .env is read. A DATABASE_URL given without PULSE_MIGRATE_DATABASE_URL also
// migrates with it (pulsed's own default), never with the test database's owner.
export async function startServer(env = {}, { args = ['serve'] } = {}) {
  const cwd = mkdtempSync(path.join(tmpdir(), 'pulse-e2e-'));
  const fullEnv = {
    ...process.env,
    DATABASE_URL: requireEnv('DATABASE_URL'),
    PULSE_MIGRATE_DATABASE_URL: env.DATABASE_URL ?? requireEnv('PULSE_MIGRATE_DATABASE_URL'),
    REDIS_URL: requireEnv('REDIS_URL'),
    PULSE_LISTEN: '127.0.0.1:0',
    PULSE_WORKERS: '2',
    PULSE_MIGRATIONS_DIR: path.join(ROOT, 'migrations'),
    PULSE_AUTO_MIGRATE: '1',
    PULSE_WEB_ROOT: path.join(ROOT, 'web/dist'),
    PULSE_ARGON2_OPSLIMIT: '1',
    PULSE_ARGON2_MEMLIMIT: '8192',
    PULSE_RATE_LIMITS: 'off',
    ...env,
  };
  const child = spawn(BIN, args, { env: fullEnv, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs = [];
  let stderr = '';
  // 'close', not 'exit': once stdout and stderr are read to the end too.
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  child.stderr.on('data', (d) => { stderr += d; });
  let buf = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pulsed did not start: ${stderr}`)), 20000);
    child.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const j = JSON.parse(line);
          logs.push(j);
          if (j.msg === 'listening') { clearTimeout(timer); resolve(j.port); }
        } catch { logs.push({ raw: line }); }
      }
    });
    exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`pulsed exited ${code}: ${stderr}`)); });
  });
  const srv = {
    port, child, logs, exited,
    get stderr() { return stderr; },
    url: (p) => `http://127.0.0.1:${port}${p}`,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  return srv;
}

// ---- the server of a describe, or of a test ---------------------------------------------

// What a sanitizer or a crash leaves on stderr.
const SANITIZER_RE = /AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|SUMMARY:/;

// Stops a server and checks how it ended: by its own exit, status 0, nothing from a
// sanitizer on stderr.
export async function stopServer(srv) {
  const { code, signal } = await srv.stop();
  assert.equal(signal, null, `pulsed died of ${signal} (stderr: ${srv.stderr.slice(-3000)})`);
  assert.equal(code, 0, `pulsed exit status (stderr: ${srv.stderr.slice(-3000)})`);
  assert.doesNotMatch(srv.stderr, SANITIZER_RE, srv.stderr.slice(-4000));
}

// Starts pulsed with `env` (an object, or a function returning one, called at start) and
// waits until /health/ready answers 200 (ready: false skips the wait).
async function startReady(env, { ready = true, args } = {}) {
  const srv = await startServer(typeof env === 'function' ? await env() : env, args ? { args } : {});
  try {
    if (ready) await waitReadyRaw(srv);
  } catch (e) {
    await srv.stop();
    throw e;
  }
  return srv;
}

// One server for the enclosing describe: started in a `before` hook registered now (so
// hooks registered earlier in the describe run first), stopped in `after` with
// stopServer's checks. Call it inside a describe: node 20 runs root-level hooks without
// waiting for one before starting the next. Returns a handle that reads through to the running server
// (srv.port, srv.url(), srv.logs, srv.stderr, srv.child, srv.stop()), to use inside the
// tests and hooks of that describe.
//   const srv = useServer({ ...API_ENV });
//   it('...', async () => { await api(srv, 'GET', '/api/v1/me'); });
export function useServer(env = {}, opts = {}) {
  let current = null;
  before(async () => { current = await startReady(env, opts); });
  after(async () => {
    const srv = current;
    current = null;
    if (srv) await stopServer(srv);
  });
  return new Proxy({}, {
    get(_, key) {
      if (!current) throw new Error(`useServer: no server running (read .${String(key)} outside its describe's tests?)`);
      return current[key];
    },
  });
}

// A server for one test: started now, ready, stopped with stopServer's checks after the test
// (node:test's t.after), whatever the test did.
//   it('...', async (t) => { const srv = await serverFor(t, { PULSE_WS_PING_S: '1' }); ... });
export async function serverFor(t, env = {}, opts = {}) {
  const srv = await startReady(env, opts);
  t.after(() => stopServer(srv));
  return srv;
}

export async function waitFor(fn, { timeout = 15000, interval = 50 } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, interval));
  }
  throw new Error(`condition not met in ${timeout} ms: ${last}`);
}

export async function waitReady(srv) {
  return waitFor(async () => (await fetch(srv.url('/health/ready'))).status === 200);
}

// waitReady over one-shot connections (fetch keeps a pooled keep-alive connection open,
// which takes a slot of a server with a connection cap).
export async function waitReadyRaw(srv, timeout = 15000) {
  const end = Date.now() + timeout;
  for (;;) {
    const r = await raw(srv.port, 'GET /health/ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n', { responses: 1, timeout: 2000 });
    if (r.responses[0]?.status === 200) return;
    if (Date.now() > end) throw new Error(`pulsed not ready in ${timeout} ms (last: ${r.responses[0]?.status ?? 'no answer'})`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

// A TCP port of 127.0.0.1 that nothing listened on a moment ago.
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// ---- time ----------------------------------------------------------------------------

// A fixed-offset zone (Etc/GMT±N) where it is about noon now: its day has at least 11 h
// left either side, so a test that counts "today" in it does not cross a midnight, whenever
// it runs.
export function middayZone(now = Date.now()) {
  const utcHours = (now % 86400000) / 3600000;
  const offset = Math.round(12 - utcHours); // -12..12 hours east of UTC
  if (offset === 0) return 'Etc/GMT';
  return offset > 0 ? `Etc/GMT-${offset}` : `Etc/GMT+${-offset}`; // POSIX signs: GMT-3 is UTC+3
}

// Parses as many complete HTTP/1.1 responses as `text` holds (Content-Length bodies).
export function parseResponses(text) {
  const out = [];
  let rest = text;
  while (rest.startsWith('HTTP/1.')) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const lines = rest.slice(0, end).split('\r\n');
    const status = Number(lines[0].split(' ')[1]);
    const headers = {};
    for (const l of lines.slice(1)) {
      const k = l.slice(0, l.indexOf(':')).toLowerCase();
      const v = l.slice(l.indexOf(':') + 1).trim();
      headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
    }
    const len = headers['content-length'] ? Number(headers['content-length']) : 0;
    if (rest.length < end + 4 + len) break;
    out.push({ status, headers, body: rest.slice(end + 4, end + 4 + len) });
    rest = rest.slice(end + 4 + len);
  }
  return out;
}

// Opens a connection, writes the parts (strings; numbers are pauses in ms), and resolves
// with everything read when the server closes or `timeout` passes, or as soon as
// `responses` complete responses arrived.
export function raw(port, parts, { timeout = 5000, responses = 0 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    let closed = false;
    const t0 = Date.now();
    const done = (how) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ text: data, responses: parseResponses(data), closed: how === 'close', ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => done('timeout'), timeout);
    sock.setEncoding('latin1');
    sock.on('data', (d) => {
      data += d;
      if (responses && parseResponses(data).length >= responses) done('count');
    });
    sock.on('close', () => { closed = true; done('close'); });
    sock.on('error', (e) => { if (!closed) { if (e.code === 'ECONNRESET') done('close'); else reject(e); } });
    sock.on('connect', async () => {
      for (const p of [].concat(parts)) {
        if (typeof p === 'number') await new Promise((r) => setTimeout(r, p));
        else if (!sock.destroyed) sock.write(p, 'latin1');
      }
    });
  });
}
