// The process as an operator sees it: CLI, configuration errors, migrations, graceful
// shutdown, and Postgres and Redis going away under a running server.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';

import {
  BIN, ROOT, dropDatabase, freshDatabase, psqlAs, raw, requireEnv, serverFor, startServer, waitFor, waitReady,
} from './helpers.mjs';

const run = (args, env = {}) => spawnSync(BIN, args, {
  env: { ...process.env, ...env }, cwd: '/tmp', encoding: 'utf8', timeout: 30000,
});

const MIGRATIONS = path.join(ROOT, 'migrations');
const MIGRATION_COUNT = readdirSync(MIGRATIONS).filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f)).length;
const PENDING_LINE = `pulsed: ${MIGRATION_COUNT} migration(s) pending: run \`pulsed migrate\` first\n`;
// What a sanitizer, an assertion or a crash leaves on stderr.
const CRASH = /Sanitizer|runtime error|Assertion|k5_mutex|Aborted|Segmentation/;

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
    ['PULSE_WORKERS', '-3'], ['PULSE_RATE_LOGIN', '5 per minute'], ['PULSE_ACCESS_LOG', 'sometimes'],
    ['DATABASE_URL', 'postgresql://pulse_app:s3cr%zzet@127.0.0.1/pulse'],
    ['PULSE_MIGRATE_DATABASE_URL', 'host=127.0.0.1 password']]) {
    it(`stops with one line naming an invalid ${name}`, () => {
      const r = run(['serve'], { [name]: value });
      assert.equal(r.status, 2);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], new RegExp(name));
      assert.doesNotMatch(r.stderr + r.stdout, /s3cr|password/, 'the URL (and its password) is not quoted');
    });
  }

  it('requires DATABASE_URL', () => {
    const r = run(['serve'], { DATABASE_URL: '' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /DATABASE_URL/);
  });
});

describe('migrations', () => {
  // Issue 12, item 7: serve used to find pending migrations only after its worker threads had
  // started, and exit() under them (SIGABRT in libkrb5 in about one run of three).
  it('serve refuses to start while migrations are pending: exit 1 and one line, every time', () => {
    const db = freshDatabase('pulse_e2e_pending');
    try {
      const env = { ...db, PULSE_AUTO_MIGRATE: '0', PULSE_LISTEN: '127.0.0.1:0', PULSE_WORKERS: '4', PULSE_MIGRATIONS_DIR: MIGRATIONS };
      const failures = [];
      for (let i = 0; i < 20; i++) {
        const r = run(['serve'], env);
        if (r.status !== 1 || r.signal !== null || r.stderr !== PENDING_LINE || /"msg":"listening"/.test(r.stdout))
          failures.push(`run ${i}: status ${r.status}, signal ${r.signal}, stderr ${JSON.stringify(r.stderr.slice(0, 300))}`);
      }
      assert.deepEqual(failures, []);
    } finally {
      dropDatabase('pulse_e2e_pending');
    }
  });

  it('found pending after Postgres became reachable: the workers stop, exit 1, nothing crashes', async () => {
    // The database does not exist yet: to serve, that is Postgres unreachable (ready = starting).
    dropDatabase('pulse_e2e_late');
    const u = (name) => { const x = new URL(requireEnv(name)); x.pathname = '/pulse_e2e_late'; return x.toString(); };
    const srv = await startServer({
      DATABASE_URL: u('DATABASE_URL'), PULSE_MIGRATE_DATABASE_URL: u('PULSE_MIGRATE_DATABASE_URL'), PULSE_AUTO_MIGRATE: '0', PULSE_WORKERS: '4',
    });
    try {
      const ready = await fetch(srv.url('/health/ready'));
      assert.equal(ready.status, 503);
      assert.equal((await ready.json()).status, 'starting');
      freshDatabase('pulse_e2e_late'); // checked again within 2 s
      const { code, signal } = await srv.exited;
      assert.equal(signal, null, srv.stderr);
      assert.equal(code, 1, srv.stderr);
      assert.equal(srv.stderr, PENDING_LINE);
      const stopped = srv.logs.find((l) => l.msg === 'stopped');
      assert.ok(stopped, 'the workers were stopped and joined before the exit');
      assert.equal(stopped.status, 1);
    } finally {
      await srv.stop('SIGKILL');
      dropDatabase('pulse_e2e_late');
    }
  });

  // A time zone cannot be checked before the zone list is loaded (with the migrations check,
  // once Postgres answers): registration answers 503 then, as PATCH /me does, instead of
  // calling a real zone invalid (422). A body naming no zone is still validated (422).
  it('registration naming a time zone while Postgres was unreachable at start-up is 503, not 422', async () => {
    dropDatabase('pulse_e2e_zones');
    const u = (name) => { const x = new URL(requireEnv(name)); x.pathname = '/pulse_e2e_zones'; return x.toString(); };
    const srv = await startServer({
      DATABASE_URL: u('DATABASE_URL'), PULSE_MIGRATE_DATABASE_URL: u('PULSE_MIGRATE_DATABASE_URL'), PULSE_AUTO_MIGRATE: '0',
    });
    try {
      assert.equal((await (await fetch(srv.url('/health/ready'))).json()).status, 'starting');
      const register = (body) => fetch(srv.url('/api/v1/auth/register'), {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
      });
      const zoned = await register({ email: 'zones@example.com', password: 'correct horse battery', timezone: 'Europe/Paris' });
      const problem = await zoned.json();
      assert.equal(zoned.status, 503, JSON.stringify(problem));
      assert.equal(problem.type, '/problems/unavailable');
      assert.ok(zoned.headers.get('retry-after'));
      const invalid = await register({ email: 'zones@example.com', password: 'short' });
      assert.equal(invalid.status, 422);
      assert.deepEqual((await invalid.json()).errors.map((e) => e.field), ['password']);
    } finally {
      await srv.stop();
      dropDatabase('pulse_e2e_zones');
    }
  });

  it('applies once as the owner, grants the service role only data rights, re-runs as a no-op', async () => {
    const db = freshDatabase('pulse_e2e_migrate');
    const app = db.DATABASE_URL;
    const owner = db.PULSE_MIGRATE_DATABASE_URL;
    const appRole = decodeURIComponent(new URL(app).username);
    const ownerRole = decodeURIComponent(new URL(owner).username);
    assert.notEqual(appRole, ownerRole);
    const env = { ...db, PULSE_MIGRATIONS_DIR: MIGRATIONS };
    const migrated = (r) => r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((j) => j.msg === 'migrated');
    try {
      // the service's role cannot migrate: it may not create anything
      let r = run(['migrate'], { ...env, PULSE_MIGRATE_DATABASE_URL: app });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /permission denied/);
      r = run(['migrate'], env);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(migrated(r).applied, MIGRATION_COUNT);
      assert.equal(migrated(r).granted_to, appRole);
      r = run(['migrate'], env);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(migrated(r).applied, 0);
      assert.equal(migrated(r).granted_to, appRole);
      assert.equal(psqlAs(owner, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'users'"), '1');

      // the owner owns every table; the service's role owns nothing and may only read and write
      assert.equal(psqlAs(owner, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner <> current_user"), '0');
      assert.equal(psqlAs(owner, `SELECT count(*) FROM pg_class WHERE relowner = '${appRole}'::regrole`), '0');
      assert.equal(psqlAs(app, "INSERT INTO users (email, password_hash) VALUES ('roles@example.com', 'x') RETURNING email"), 'roles@example.com');
      assert.equal(psqlAs(app, "UPDATE users SET display_name = 'r' WHERE email = 'roles@example.com' RETURNING display_name"), 'r');
      assert.equal(psqlAs(app, "DELETE FROM users WHERE email = 'roles@example.com' RETURNING email"), 'roles@example.com');
      assert.match(psqlAs(app, 'SELECT count(*) FROM schema_migrations'), /^\d+$/);
      for (const sql of ['CREATE TABLE evil (id int)', 'DROP TABLE notes', 'ALTER TABLE users ADD COLUMN evil int',
        'TRUNCATE users', 'CREATE INDEX evil ON users (email)', 'CREATE SCHEMA evil', `ALTER TABLE users OWNER TO ${appRole}`,
        'CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS $$SELECT 1$$',
        "INSERT INTO schema_migrations (version, name) VALUES (999, '999_evil.sql')", 'DELETE FROM schema_migrations'])
        assert.throws(() => psqlAs(app, sql), /permission denied|must be owner/, sql);

      // and the service works end to end as that role
      const srv = await startServer({ ...db, PULSE_AUTO_MIGRATE: '0' });
      try {
        await waitReady(srv);
        const reg = await fetch(srv.url('/api/v1/auth/register'), {
          method: 'POST', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ email: 'roles-e2e@example.com', password: 'correct horse battery', timezone: 'Europe/Paris' }),
        });
        assert.equal(reg.status, 201);
        const auth = { Authorization: `Bearer ${(await reg.json()).token}`, 'Content-Type': 'application/json' };
        const note = await fetch(srv.url('/api/v1/notes'), { method: 'POST', headers: auth, body: JSON.stringify({ title: 'as pulse_app' }) });
        assert.equal(note.status, 201);
        const list = await (await fetch(srv.url('/api/v1/notes'), { headers: auth })).json();
        assert.deepEqual(list.items.map((n) => n.title), ['as pulse_app']);
      } finally {
        assert.equal((await srv.stop()).code, 0);
      }
    } finally {
      dropDatabase('pulse_e2e_migrate');
    }
  });

  it('a worker that cannot start stops the others: exit 1, no crash, every time', () => {
    // REDIS_URL passes the settings check (redis://...) but not the client's parser: every
    // worker fails in its own thread while the others run.
    const failures = [];
    for (let i = 0; i < 8; i++) {
      const r = run(['serve'], {
        REDIS_URL: 'redis://127.0.0.1:99999/0', PULSE_LISTEN: '127.0.0.1:0', PULSE_WORKERS: '4', PULSE_MIGRATIONS_DIR: MIGRATIONS, PULSE_AUTO_MIGRATE: '1',
      });
      const stopped = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).find((j) => j.msg === 'stopped');
      if (r.status !== 1 || r.signal !== null || CRASH.test(r.stderr) || !/worker \d failed to start/.test(r.stderr) || stopped?.status !== 1)
        failures.push(`run ${i}: status ${r.status}, signal ${r.signal}, stopped ${JSON.stringify(stopped)}, stderr ${JSON.stringify(r.stderr.slice(0, 400))}`);
    }
    assert.deepEqual(failures, []);
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

describe('second signal', () => {
  it('exits at once with status 1 while draining, without a crash', async () => {
    const srv = await startServer({ PULSE_SHUTDOWN_DELAY_MS: '20000', PULSE_WORKERS: '4' });
    await waitReady(srv);
    srv.child.kill('SIGTERM');
    await waitFor(async () => (await fetch(srv.url('/health/ready'))).status === 503);
    const t0 = Date.now();
    srv.child.kill('SIGTERM');
    const { code, signal } = await srv.exited;
    assert.equal(signal, null, srv.stderr);
    assert.equal(code, 1);
    assert.ok(Date.now() - t0 < 5000, 'not after the shutdown delay');
    assert.doesNotMatch(srv.stderr, CRASH);
    assert.ok(srv.logs.some((l) => l.msg === 'second signal: exiting now'));
  });
});

describe('dependencies going away', () => {
  it('reports degraded while Postgres is down and recovers after it restarts', async (t) => {
    const srv = await serverFor(t, {});
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
  });

  it('reports degraded while Redis is down and recovers after it restarts', async (t) => {
    // Low per-user read limit so the in-process fallback limit is visible during the outage.
    const srv = await serverFor(t, { PULSE_RATE_LIMITS: 'on', PULSE_RATE_READ: '5/60' });
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
  });
});
