// Helpers for end-to-end tests: start the real pulsed binary on an ephemeral port against
// the Postgres and Redis that `make test` started, and talk raw HTTP to it.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
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
