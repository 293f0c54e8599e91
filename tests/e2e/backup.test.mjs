// Backup and restore as deploy/README.md describes it: pg_dump -Fc of a database with real
// data written through the API, pg_restore into a fresh database, and a pulsed pointed at
// the restored copy serving the same user, notes and feedings.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';

import { requireEnv, startServer, waitReady } from './helpers.mjs';

function dbUrl(name) {
  const u = new URL(requireEnv('DATABASE_URL'));
  u.pathname = `/${name}`;
  return u.toString();
}

const psql = (url, sql) => execFileSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-tAc', sql], { encoding: 'utf8' }).trim();

async function call(srv, method, p, token, body) {
  const res = await fetch(srv.url(p), {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

describe('backup and restore', () => {
  it('pg_dump -Fc and pg_restore into a fresh database keep every row and the service works on it', async () => {
    const src = 'pulse_backup_src';
    const dst = 'pulse_backup_dst';
    const admin = dbUrl('postgres');
    for (const db of [src, dst]) {
      psql(admin, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      psql(admin, `CREATE DATABASE ${db}`);
    }
    const dir = mkdtempSync(path.join(tmpdir(), 'pulse-backup-'));
    const dump = path.join(dir, 'pulse.dump');
    let srv = await startServer({ DATABASE_URL: dbUrl(src) });
    const email = `backup-${Date.now()}@example.com`;
    let token;
    try {
      await waitReady(srv);
      const reg = await call(srv, 'POST', '/api/v1/auth/register', null, { email, password: 'correct horse battery', timezone: 'Europe/Paris' });
      assert.equal(reg.status, 201);
      token = reg.json.token;
      for (let i = 0; i < 5; i++) {
        assert.equal((await call(srv, 'POST', '/api/v1/notes', token, { title: `note ${i}`, tags: ['backup'] })).status, 201);
        assert.equal((await call(srv, 'POST', '/api/v1/feedings', token, { amount_ml: 100 + i, kind: 'milk' })).status, 201);
      }
    } finally {
      assert.equal((await srv.stop()).code, 0);
    }
    try {
      execFileSync('pg_dump', ['-Fc', '-f', dump, dbUrl(src)]);
      execFileSync('pg_restore', ['--no-owner', '-d', dbUrl(dst), dump]);
      for (const table of ['users', 'notes', 'feedings', 'api_tokens', 'schema_migrations']) {
        assert.equal(psql(dbUrl(dst), `SELECT count(*) FROM ${table}`), psql(dbUrl(src), `SELECT count(*) FROM ${table}`), table);
      }
      // The restored copy is complete enough to serve: the same password logs in (sessions
      // live in Redis and survive), the same rows come back, no migration is pending.
      srv = await startServer({ DATABASE_URL: dbUrl(dst), PULSE_AUTO_MIGRATE: '0' });
      try {
        await waitReady(srv);
        const login = await call(srv, 'POST', '/api/v1/auth/login', null, { email, password: 'correct horse battery' });
        assert.equal(login.status, 200);
        const notes = await call(srv, 'GET', '/api/v1/notes?tag=backup', login.json.token);
        assert.equal(notes.json.items.length, 5);
        const feedings = await call(srv, 'GET', '/api/v1/feedings', login.json.token);
        assert.equal(feedings.json.items.length, 5);
        assert.equal(feedings.json.items.reduce((s, f) => s + f.amount_ml, 0), 510);
      } finally {
        assert.equal((await srv.stop()).code, 0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      for (const db of [src, dst]) psql(admin, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    }
  });
});
