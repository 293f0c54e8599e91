// The process as an operator sees it: CLI, configuration errors, migrations, graceful
// shutdown, and Postgres and Redis going away under a running server.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';

import { BIN, ROOT, raw, requireEnv, startServer, waitFor, waitReady } from './helpers.mjs';

const run = (args, env = {}) => spawnSync(BIN, args, {
  env: { ...process.env, ...env }, cwd: '/tmp', encoding: 'utf8', timeout: 30000,
});

function psql(sql, url = requireEnv('DATABASE_URL')) {
  return execFileSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-tAc', sql], { encoding: 'utf8' }).trim();
}

function freshDatabase(name) {
  psql(`DROP DATABASE IF EXISTS ${name}`);
  psql(`CREATE DATABASE ${name}`);
  const u = new URL(requireEnv('DATABASE_URL'));
  u.pathname = `/${name}`;
  return u.toString();
}

function services(...args) {
  execFileSync(requireEnv('PULSE_SERVICES'), ['test', ...args], { stdio: 'inherit', timeout: 120000 });
}

describe('command line', () => {
  it('prints its version and help', () => {
    let r = run(['--version']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^pulsed \d+\.\d+\.\d+\n$/);
    r = run(['--help']);
    assert.equal(r.status, 0);
    for (const s of ['PULSE_LISTEN', 'DATABASE_URL', 'REDIS_URL', 'PULSE_DRAIN_MS', 'PULSE_RATE_EXPORT']) assert.match(r.stdout, new RegExp(s));
    r = run(['frobnicate']);
    assert.equal(r.status, 2);
    r = run([]);
    assert.equal(r.status, 2);
  });

  for (const [name, value] of [['PULSE_MAX_HEAD_BYTES', 'lots'], ['PULSE_LISTEN', 'localhost'],
    ['PULSE_WORKERS', '-3'], ['PULSE_RATE_LOGIN', '5 per minute'], ['PULSE_ACCESS_LOG', 'sometimes']]) {
    it(`stops with one line naming an invalid ${name}`, () => {
      const r = run(['serve'], { [name]: value });
      assert.equal(r.status, 2);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], new RegExp(name));
    });
  }

  it('requires DATABASE_URL', () => {
    const r = run(['serve'], { DATABASE_URL: '' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /DATABASE_URL/);
  });
});

describe('migrations', () => {
  it('applies once, re-runs as a no-op, and serve refuses to start while some are pending', async () => {
    const url = freshDatabase('pulse_e2e_migrate');
    const env = { DATABASE_URL: url, PULSE_MIGRATIONS_DIR: path.join(ROOT, 'migrations') };
    // serve without auto-migrate on an empty database: refuses (exit 1) once it sees them
    const srv = await startServer({ DATABASE_URL: url, PULSE_AUTO_MIGRATE: '0' });
    const { code } = await srv.exited;
    assert.equal(code, 1);
    assert.match(srv.stderr, /pending/);
    let r = run(['migrate'], env);
    assert.equal(r.status, 0, r.stderr);
    const first = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((j) => j.msg === 'migrated');
    assert.ok(first.applied >= 1);
    r = run(['migrate'], env);
    assert.equal(r.status, 0);
    const again = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((j) => j.msg === 'migrated');
    assert.equal(again.applied, 0);
    assert.equal(psql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'users'", url), '1');
  });
});

describe('graceful shutdown', () => {
  it('turns ready to draining, closes the listener after the delay, finishes in-flight requests, exits 0', async () => {
    const srv = await startServer({ PULSE_SHUTDOWN_DELAY_MS: '800', PULSE_DRAIN_MS: '5000' });
    await waitReady(srv);
    // A: a request half sent when SIGTERM arrives; B: an idle keep-alive connection.
    const a = net.connect(srv.port, '127.0.0.1');
    let aData = '';
    let aClosed = false;
    a.setEncoding('latin1');
    a.on('data', (d) => { aData += d; });
    a.on('close', () => { aClosed = true; });
    await new Promise((r) => a.on('connect', r));
    a.write('POST /health/live HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nabc');
    const b = await raw(srv.port, `GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n`, { responses: 1 });
    assert.equal(b.responses[0].status, 200);
    await new Promise((r) => setTimeout(r, 100));
    srv.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 150));
    // during the delay: still accepting, ready says draining
    const ready = await fetch(srv.url('/health/ready'));
    assert.equal(ready.status, 503);
    assert.deepEqual(await ready.json(), { status: 'draining' });
    assert.equal(ready.headers.get('connection'), 'close');
    // after the delay: the listener is closed
    await new Promise((r) => setTimeout(r, 1200));
    await assert.rejects(fetch(srv.url('/health/live')));
    assert.equal(aClosed, false, 'a connection with a request in flight stays open');
    a.write('def');
    const { code } = await srv.exited;
    assert.equal(code, 0, srv.stderr.slice(-2000));
    await waitFor(() => aClosed);
    assert.match(aData, /^HTTP\/1\.1 405 /);
    assert.match(aData, /Connection: close\r\n/);
    assert.ok(srv.logs.some((l) => l.msg === 'stopped'));
  });
});

describe('dependencies going away', () => {
  it('reports degraded while Postgres is down and recovers after it restarts', async () => {
    const srv = await startServer({});
    try {
      await waitReady(srv);
      services('stop-pg');
      const down = await waitFor(async () => {
        const res = await fetch(srv.url('/health/ready'));
        const j = await res.json();
        return res.status === 200 && j.status === 'degraded' && j.checks.postgres.ok === false ? j : null;
      });
      assert.equal(down.checks.redis.ok, true);
      assert.equal((await fetch(srv.url('/health/live'))).status, 200);
      services('start-pg');
      const t0 = Date.now();
      await waitFor(async () => (await (await fetch(srv.url('/health/ready'))).json()).status === 'ok', { timeout: 30000 });
      console.log(`# postgres recovery: ready ok ${Date.now() - t0} ms after the server came back`);
      // and a restart (not just a start) is survived too
      services('restart-pg');
      await waitFor(async () => (await (await fetch(srv.url('/health/ready'))).json()).status === 'ok', { timeout: 30000 });
    } finally {
      const { code } = await srv.stop();
      assert.equal(code, 0);
    }
  });

  it('reports degraded while Redis is down and recovers after it restarts', async () => {
    // Low per-user read limit so the in-process fallback limit is visible during the outage.
    const srv = await startServer({ PULSE_RATE_LIMITS: 'on', PULSE_RATE_READ: '5/60' });
    try {
      await waitReady(srv);
      const json = { 'Content-Type': 'application/json' };
      const email = `outage-${Date.now()}@example.com`;
      const reg = await fetch(srv.url('/api/v1/auth/register'), {
        method: 'POST', headers: json, body: JSON.stringify({ email, password: 'correct horse battery' }),
      });
      assert.equal(reg.status, 201);
      const session = (await reg.json()).token;
      const tok = await fetch(srv.url('/api/v1/tokens'), {
        method: 'POST', headers: { ...json, Authorization: `Bearer ${session}` },
        body: JSON.stringify({ name: 'outage', scopes: ['read'] }),
      });
      assert.equal(tok.status, 201);
      const pat = (await tok.json()).token;
      services('stop-redis');
      await waitFor(async () => {
        const res = await fetch(srv.url('/health/ready'));
        const j = await res.json();
        return res.status === 200 && j.status === 'degraded' && j.checks.redis.ok === false;
      });
      // Sessions live in Redis: 503, never 500. Tokens live in Postgres: they keep working,
      // limited per replica (5 reads here), then 429.
      const s503 = await fetch(srv.url('/api/v1/me'), { headers: { Authorization: `Bearer ${session}` } });
      assert.equal(s503.status, 503);
      assert.equal((await s503.json()).type, '/problems/unavailable');
      assert.ok(s503.headers.get('retry-after'));
      const statuses = [];
      for (let i = 0; i < 7; i++) {
        statuses.push((await fetch(srv.url('/api/v1/me'), { headers: { Authorization: `Bearer ${pat}` } })).status);
      }
      assert.deepEqual(statuses.slice(0, 5), [200, 200, 200, 200, 200]);
      assert.equal(statuses[6], 429);
      services('start-redis');
      const t0 = Date.now();
      await waitFor(async () => (await (await fetch(srv.url('/health/ready'))).json()).status === 'ok', { timeout: 30000 });
      console.log(`# redis recovery: ready ok ${Date.now() - t0} ms after the server came back`);
      // The test Redis keeps nothing on disk, so sessions died with it; logging in works
      // again without restarting pulsed.
      const login = await fetch(srv.url('/api/v1/auth/login'), {
        method: 'POST', headers: json, body: JSON.stringify({ email, password: 'correct horse battery' }),
      });
      assert.equal(login.status, 200);
      const back = await fetch(srv.url('/api/v1/me'), { headers: { Authorization: `Bearer ${(await login.json()).token}` } });
      assert.equal(back.status, 200);
    } finally {
      const { code } = await srv.stop();
      assert.equal(code, 0);
    }
  });
});
