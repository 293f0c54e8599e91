// Backup and restore as deploy/README.md describes it: pg_dump -Fc of a database with real
// data written through the API, pg_restore into a fresh database, and a pulsed pointed at
// the restored copy serving the same user, notes and feedings.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';

import { dropDatabase, freshDatabase, psqlAs as psql, startServer, waitReady } from './helpers.mjs';

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
    // Owned by the owner role, served by the service's role (scripts/services.sh)
    const srcEnv = freshDatabase(src);
    const dstEnv = freshDatabase(dst);
    const dir = mkdtempSync(path.join(tmpdir(), 'pulse-backup-'));
    const dump = path.join(dir, 'pulse.dump');
    let srv = await startServer(srcEnv);
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
      // dump and restore as the owner: the restore brings back the service role's grants
      execFileSync('pg_dump', ['-Fc', '-f', dump, srcEnv.PULSE_MIGRATE_DATABASE_URL]);
      execFileSync('pg_restore', ['--no-owner', '-d', dstEnv.PULSE_MIGRATE_DATABASE_URL, dump]);
      for (const table of ['users', 'notes', 'feedings', 'api_tokens', 'schema_migrations']) {
        assert.equal(psql(dstEnv.DATABASE_URL, `SELECT count(*) FROM ${table}`), psql(srcEnv.DATABASE_URL, `SELECT count(*) FROM ${table}`), table);
      }
      // The restored copy is complete enough to serve: the same password logs in (sessions
      // live in Redis and survive), the same rows come back, no migration is pending.
      srv = await startServer({ ...dstEnv, PULSE_AUTO_MIGRATE: '0' });
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
      for (const db of [src, dst]) dropDatabase(db);
    }
  });
});
