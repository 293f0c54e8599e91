// Migration of a v1 database to care circles (004 and whatever follows): a database migrated
// to 003 only (the v1 schema) is filled with v1 data (users with targets and time zones,
// feedings, notes, personal access tokens, idempotency keys), then `pulsed migrate` takes it
// to the latest schema. Checked in SQL: every user owns a default subject with their target
// and zone, every record moved to it with created_by = its user and nothing else changed, the
// counts are equal before and after; then over HTTP: a v1 client (no subject_id anywhere)
// keeps working on that database: login, its token, lists, today, tags, PATCH /me, new
// records, and its stored idempotency keys still replay.
//
// The secrets a v1 server would have stored (an Argon2id password hash, a token hash, the
// hash of an idempotent request's body) are made by the current server on the usual test
// database (the formats did not change in 004), then written into the v1 rows.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';

import {
  API_ENV, PASSWORD, api, createToken, expect404, expectProblem, expectStatus, login, psql, register,
} from './api.mjs';
import {
  BIN, ROOT, dropDatabase, freshDatabase, middayZone, psqlAs, startServer, stopServer, waitReady,
} from './helpers.mjs';
import { nextFrame, openSocket } from './circle_fixtures.mjs';

const DB = 'pulse_e2e_v1_migration';
const MIGRATIONS = path.join(ROOT, 'migrations');
const ALL = readdirSync(MIGRATIONS).filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f)).sort();
const V1 = ALL.filter((f) => Number(f.slice(0, 3)) <= 3);

// The exact bytes of the two idempotent v1 requests that will be retried after the migration.
const FEED_BODY = '{"amount_ml":120,"kind":"formula","note":"v1 retry"}';
const NOTE_BODY = '{"title":"v1 idempotent note","tags":["v1"]}';

const V1_FEEDING_KEYS = ['amount_ml', 'created_at', 'given_at', 'id', 'kind', 'note', 'updated_at', 'version'];
const V1_NOTE_KEYS = ['body', 'created_at', 'id', 'pinned', 'tags', 'title', 'updated_at', 'version'];
const V1_USER_KEYS = ['created_at', 'daily_target_ml', 'display_name', 'email', 'id', 'timezone', 'updated_at'];

function migrate(dir, env) {
  const r = spawnSync(BIN, ['migrate'], { env: { ...process.env, ...env, PULSE_MIGRATIONS_DIR: dir }, cwd: '/tmp', encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, `pulsed migrate: ${r.stderr}`);
  const line = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((j) => j.msg === 'migrated');
  assert.ok(line, r.stdout);
  return line.applied;
}

const iso = (msAgo) => new Date(Math.floor((Date.now() - msAgo) / 1000) * 1000 - 123).toISOString(); // milliseconds, as the server prints them
const q = (s) => (s === null || s === undefined ? 'NULL' : `'${String(s).replace(/'/g, "''")}'`);
const HOUR = 3600e3;
const DAY = 24 * HOUR;

// What a v1 client sees of the rows: the v1 keys and values of each record.
const pick = (o, keys) => Object.fromEntries(keys.map((k) => [k, o[k]]));

describe('migrating a v1 database to care circles', () => {
  let env; // the migrated database's DATABASE_URL and PULSE_MIGRATE_DATABASE_URL
  let app; // psql as the service role on that database
  let secrets; // { passwordHash, patToken, patHash, feedHash, noteHash }
  let users; // the v1 users, with their records
  let before0; // counts and rows before the migration
  let srv; // pulsed on the migrated database

  before(async () => {
    // 1. The secrets, made by the current server on the usual test database.
    const scratch = await startServer({ ...API_ENV });
    try {
      await waitReady(scratch);
      const u = await register(scratch);
      const pat = await createToken(scratch, u.token, { name: 'v1 script' });
      const f = await api(scratch, 'POST', '/api/v1/feedings', { token: u.token, body: FEED_BODY, headers: { 'Idempotency-Key': 'hash-source' } });
      expectStatus(f, 201);
      const n = await api(scratch, 'POST', '/api/v1/notes', { token: u.token, body: NOTE_BODY, headers: { 'Idempotency-Key': 'hash-source' } });
      expectStatus(n, 201);
      const hashOf = (p) => psql(`SELECT encode(request_hash, 'hex') FROM idempotency_keys WHERE user_id = '${u.user.id}' AND path = '${p}' AND key = 'hash-source'`);
      secrets = {
        passwordHash: psql(`SELECT password_hash FROM users WHERE id = '${u.user.id}'`),
        patToken: pat.token,
        patHash: psql(`SELECT encode(token_hash, 'hex') FROM api_tokens WHERE id = '${pat.id}'`),
        feedHash: hashOf('/api/v1/feedings'),
        noteHash: hashOf('/api/v1/notes'),
      };
      for (const [k, v] of Object.entries(secrets)) assert.ok(v && v.length > 20, `secret ${k}: ${v}`);
      // and gone from that database (the token hash is unique per database only, but tidy)
      expectStatus(await api(scratch, 'DELETE', '/api/v1/me', { token: u.token, body: { password: PASSWORD } }), 204);
    } finally {
      await stopServer(scratch);
    }

    // 2. A database at 003.
    env = freshDatabase(DB);
    app = (sql) => psqlAs(env.DATABASE_URL, sql);
    const v1dir = mkdtempSync(path.join(tmpdir(), 'pulse-v1-migrations-'));
    for (const f of V1) symlinkSync(path.join(MIGRATIONS, f), path.join(v1dir, f));
    try {
      assert.equal(migrate(v1dir, env), V1.length);
    } finally {
      rmSync(v1dir, { recursive: true, force: true });
    }
    assert.equal(app("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'daily_target_ml'"), '1', 'a v1 schema');

    // 3. v1 data, as the v1 server wrote it.
    const zone = middayZone();
    users = [
      { key: 'ada', display_name: 'Ada', timezone: zone, target: 750, feedings: 7, notes: 3 },
      { key: 'bo', display_name: null, timezone: 'America/New_York', target: 0, feedings: 4, notes: 2 },
      { key: 'cy', display_name: '   ', timezone: 'Asia/Kolkata', target: 10000, feedings: 2, notes: 1 },
      { key: 'di', display_name: `  ${'Dorothée '.repeat(11)}`.slice(0, 100), timezone: 'UTC', target: 1200, feedings: 3, notes: 0 },
      { key: 'ed', display_name: 'Ed', timezone: 'Europe/Paris', target: 500, feedings: 0, notes: 0 },
    ];
    const sql = [];
    const kinds = ['formula', 'milk', 'water', 'food', 'medication', 'other'];
    users.forEach((u, ui) => {
      u.id = randomUUID();
      u.email = `v1-${u.key}-${Date.now().toString(36)}@example.com`;
      u.created_at = iso(30 * DAY + ui * HOUR);
      u.updated_at = iso(10 * DAY + ui * HOUR);
      sql.push(`INSERT INTO users (id, email, password_hash, display_name, timezone, daily_target_ml, created_at, updated_at) VALUES
        (${q(u.id)}, ${q(u.email)}, ${q(secrets.passwordHash)}, ${q(u.display_name)}, ${q(u.timezone)}, ${u.target}, ${q(u.created_at)}, ${q(u.updated_at)})`);
      u.feedingRows = [];
      for (let i = 0; i < u.feedings; i++) {
        // two within the last hours (today in a midday zone), the rest over the past days
        const given = iso(i < 2 ? (i + 1) * 20 * 60e3 : i * 17 * HOUR);
        const row = {
          id: randomUUID(), amount_ml: 30 + 10 * i + ui, kind: kinds[(i + ui) % kinds.length], given_at: given,
          note: i % 3 === 0 ? null : `v1 note ${i} of ${u.key}`, version: 1 + (i % 3), created_at: given, updated_at: given,
        };
        u.feedingRows.push(row);
        sql.push(`INSERT INTO feedings (id, user_id, amount_ml, kind, given_at, note, version, created_at, updated_at) VALUES
          (${q(row.id)}, ${q(u.id)}, ${row.amount_ml}, ${q(row.kind)}, ${q(row.given_at)}, ${q(row.note)}, ${row.version}, ${q(row.created_at)}, ${q(row.updated_at)})`);
      }
      u.noteRows = [];
      for (let i = 0; i < u.notes; i++) {
        const row = {
          id: randomUUID(), title: `${u.key} note ${i}`, body: i ? `body ${i}\nline two` : '', tags: i === 1 ? [] : ['sleep', `t${i}`],
          pinned: i === 2, version: 1 + i, created_at: iso(5 * DAY + i * HOUR), updated_at: iso(DAY + i * HOUR),
        };
        u.noteRows.push(row);
        sql.push(`INSERT INTO notes (id, user_id, title, body, tags, pinned, version, created_at, updated_at) VALUES
          (${q(row.id)}, ${q(u.id)}, ${q(row.title)}, ${q(row.body)}, ${q(`{${row.tags.join(',')}}`)}::text[], ${row.pinned}, ${row.version}, ${q(row.created_at)}, ${q(row.updated_at)})`);
      }
    });
    // Ada's token and idempotency keys (the stored body: the v1 JSON of the row it created);
    // Bo uses the same key for his own request (keys are per user).
    const ada = users[0];
    const bo = users[1];
    sql.push(`INSERT INTO api_tokens (user_id, name, token_hash, scopes, created_at) VALUES
      (${q(ada.id)}, 'v1 script', decode(${q(secrets.patHash)}, 'hex'), 3, ${q(iso(20 * DAY))})`);
    const idem = (u, p, key, hash, row, keys, createdAgo) => {
      const body = JSON.stringify(pick(row, keys));
      sql.push(`INSERT INTO idempotency_keys (user_id, method, path, key, request_hash, status, location, body, created_at) VALUES
        (${q(u.id)}, 'POST', ${q(p)}, ${q(key)}, decode(${q(hash)}, 'hex'), 201, ${q(`${p}/${row.id}`)}, ${q(body)}, now() - interval '${createdAgo} seconds')`);
      return body;
    };
    ada.feedReplay = idem(ada, '/api/v1/feedings', 'v1-feed-key', secrets.feedHash, ada.feedingRows[0], V1_FEEDING_KEYS, 3600);
    ada.noteReplay = idem(ada, '/api/v1/notes', 'v1-note-key', secrets.noteHash, ada.noteRows[0], V1_NOTE_KEYS, 600);
    idem(ada, '/api/v1/feedings', 'v1-expired-key', secrets.feedHash, ada.feedingRows[1], V1_FEEDING_KEYS, 25 * 3600);
    bo.feedReplay = idem(bo, '/api/v1/feedings', 'v1-feed-key', secrets.feedHash, bo.feedingRows[0], V1_FEEDING_KEYS, 60);
    app(`BEGIN; ${sql.join(';\n')}; COMMIT`);

    before0 = {
      counts: counts(),
      feedings: app("SELECT json_agg(json_build_object('id', id, 'owner', user_id, 'amount_ml', amount_ml, 'kind', kind, 'given_at', given_at, 'note', note, 'version', version, 'created_at', created_at, 'updated_at', updated_at) ORDER BY id) FROM feedings"),
      notes: app("SELECT json_agg(json_build_object('id', id, 'owner', user_id, 'title', title, 'body', body, 'tags', tags, 'pinned', pinned, 'version', version, 'created_at', created_at, 'updated_at', updated_at) ORDER BY id) FROM notes"),
      idem: app('SELECT json_agg(k ORDER BY user_id, path, key) FROM idempotency_keys k'),
      tokens: app('SELECT json_agg(json_build_object(\'id\', id, \'user_id\', user_id, \'name\', name, \'token_hash\', token_hash, \'scopes\', scopes)) FROM api_tokens'),
      users: app('SELECT json_agg(json_build_object(\'id\', id, \'email\', email, \'password_hash\', password_hash, \'display_name\', display_name, \'timezone\', timezone, \'created_at\', created_at, \'updated_at\', updated_at) ORDER BY id) FROM users'),
    };

    // 4. The migration, by `pulsed migrate`.
    assert.equal(migrate(MIGRATIONS, env), ALL.length - V1.length);
  });

  after(async () => {
    if (srv) await stopServer(srv);
    if (env) dropDatabase(DB);
  });

  function counts() {
    return {
      users: Number(app('SELECT count(*) FROM users')),
      feedings: Number(app('SELECT count(*) FROM feedings')),
      notes: Number(app('SELECT count(*) FROM notes')),
      idempotency_keys: Number(app('SELECT count(*) FROM idempotency_keys')),
      api_tokens: Number(app('SELECT count(*) FROM api_tokens')),
    };
  }

  it('the counts are equal before and after; users, tokens and idempotency keys are unchanged', () => {
    assert.deepEqual(before0.counts, {
      users: users.length,
      feedings: users.reduce((s, u) => s + u.feedings, 0),
      notes: users.reduce((s, u) => s + u.notes, 0),
      idempotency_keys: 4,
      api_tokens: 1,
    });
    assert.deepEqual(counts(), before0.counts);
    assert.equal(app('SELECT json_agg(k ORDER BY user_id, path, key) FROM idempotency_keys k'), before0.idem);
    assert.equal(app('SELECT json_agg(json_build_object(\'id\', id, \'user_id\', user_id, \'name\', name, \'token_hash\', token_hash, \'scopes\', scopes)) FROM api_tokens'), before0.tokens);
    assert.equal(app('SELECT count(*) FROM api_tokens WHERE subject_ids IS NOT NULL'), '0', 'a v1 token is unrestricted');
    assert.equal(app('SELECT json_agg(json_build_object(\'id\', id, \'email\', email, \'password_hash\', password_hash, \'display_name\', display_name, \'timezone\', timezone, \'created_at\', created_at, \'updated_at\', updated_at) ORDER BY id) FROM users'), before0.users);
    // nothing pending
    assert.equal(app('SELECT count(*) FROM schema_migrations'), String(ALL.length));
  });

  it('every user owns exactly one subject, their default, with their name, zone and target', () => {
    const rows = JSON.parse(app(`SELECT json_agg(json_build_object('user_id', u.id, 'default_subject_id', u.default_subject_id,
        'name', s.name, 'kind', s.kind, 'timezone', s.timezone, 'target', s.daily_target_ml, 'birth_date', s.birth_date,
        'roles', (SELECT json_agg(json_build_object('user_id', m.user_id, 'role', m.role)) FROM subject_members m WHERE m.subject_id = s.id)))
      FROM users u LEFT JOIN subjects s ON s.id = u.default_subject_id`));
    assert.equal(rows.length, users.length);
    for (const u of users) {
      const r = rows.find((x) => x.user_id === u.id);
      assert.ok(r.default_subject_id, `${u.key} has a default subject`);
      const expectedName = (u.display_name ?? '').replace(/^ +| +$/g, '').slice(0, 80) || 'My log';
      assert.deepEqual(
        { name: r.name, kind: r.kind, timezone: r.timezone, target: r.target, birth_date: r.birth_date, roles: r.roles },
        { name: expectedName, kind: 'other', timezone: u.timezone, target: u.target, birth_date: null, roles: [{ user_id: u.id, role: 'owner' }] },
        u.key,
      );
      u.subjectId = r.default_subject_id;
    }
    assert.equal(app('SELECT count(*) FROM subjects'), String(users.length), 'one subject per user, no more');
    assert.equal(app('SELECT count(*) FROM subject_members'), String(users.length));
    assert.equal(app('SELECT count(DISTINCT default_subject_id) FROM users'), String(users.length));
    assert.equal(app('SELECT count(*) FROM invitations'), '0');
  });

  it('every record moved to its user\'s default subject with created_by = the user, everything else as it was', () => {
    const same = (table, cols) => app(`SELECT json_agg(json_build_object('id', x.id, 'owner', x.created_by, ${cols}) ORDER BY x.id) FROM ${table} x`);
    assert.equal(same('feedings', "'amount_ml', amount_ml, 'kind', kind, 'given_at', given_at, 'note', note, 'version', version, 'created_at', created_at, 'updated_at', updated_at"), before0.feedings);
    assert.equal(same('notes', "'title', title, 'body', body, 'tags', tags, 'pinned', pinned, 'version', version, 'created_at', created_at, 'updated_at', updated_at"), before0.notes);
    for (const t of ['feedings', 'notes']) {
      assert.equal(app(`SELECT count(*) FROM ${t} x JOIN users u ON u.id = x.created_by WHERE x.subject_id IS DISTINCT FROM u.default_subject_id`), '0', `${t} in another subject than their author's default`);
      assert.equal(app(`SELECT count(*) FROM ${t} WHERE created_by IS NULL OR subject_id IS NULL`), '0');
    }
  });

  describe('a v1 client on the migrated database', () => {
    before(async () => {
      // no migration left for serve to run
      srv = await startServer({ ...API_ENV, ...env, PULSE_AUTO_MIGRATE: '0' });
      await waitReady(srv);
    });

    const byKey = (k) => users.find((u) => u.key === k);

    it('logs in; its user is the v1 user, target and zone included', async () => {
      for (const u of users) {
        const s = await login(srv, u.email);
        u.session = s.token;
        assert.deepEqual(pick(s.user, V1_USER_KEYS), {
          id: u.id, email: u.email, display_name: u.display_name, timezone: u.timezone, daily_target_ml: u.target, created_at: u.created_at, updated_at: u.updated_at,
        }, u.key);
        assert.equal(s.user.default_subject_id, u.subjectId);
        const me = await api(srv, 'GET', '/api/v1/me', { token: u.session });
        expectStatus(me, 200);
        assert.deepEqual(pick(me.json, V1_USER_KEYS), pick(s.user, V1_USER_KEYS));
      }
    });

    it('lists its feedings and notes as v1 did (same keys and values, same order), each with its subject and author', async () => {
      for (const u of users) {
        const f = await api(srv, 'GET', '/api/v1/feedings?limit=100', { token: u.session });
        expectStatus(f, 200);
        const expectedF = [...u.feedingRows].sort((a, b) => (b.given_at.localeCompare(a.given_at) || b.id.localeCompare(a.id)));
        assert.deepEqual(f.json.items.map((x) => pick(x, V1_FEEDING_KEYS)), expectedF.map((x) => pick(x, V1_FEEDING_KEYS)), u.key);
        for (const x of f.json.items) {
          assert.equal(x.subject_id, u.subjectId);
          assert.equal(x.created_by?.id, u.id);
        }
        const n = await api(srv, 'GET', '/api/v1/notes?limit=100', { token: u.session });
        expectStatus(n, 200);
        const expectedN = [...u.noteRows].sort((a, b) => (Number(b.pinned) - Number(a.pinned)) || b.updated_at.localeCompare(a.updated_at) || b.id.localeCompare(a.id));
        assert.deepEqual(n.json.items.map((x) => pick(x, V1_NOTE_KEYS)), expectedN.map((x) => pick(x, V1_NOTE_KEYS)), u.key);
        const one = u.feedingRows[0];
        if (one) {
          const g = await api(srv, 'GET', `/api/v1/feedings/${one.id}`, { token: u.session });
          expectStatus(g, 200);
          assert.equal(g.headers.etag, `"${one.version}"`);
          assert.deepEqual(pick(g.json, V1_FEEDING_KEYS), pick(one, V1_FEEDING_KEYS));
        }
      }
      // one user's records stay theirs
      expect404(await api(srv, 'GET', `/api/v1/feedings/${byKey('ada').feedingRows[0].id}`, { token: byKey('bo').session }));
      expect404(await api(srv, 'GET', `/api/v1/notes/${byKey('bo').noteRows[0].id}`, { token: byKey('ada').session }));
    });

    it('today, stats and tags are computed as v1 did, in the user\'s zone with their target', async () => {
      const ada = byKey('ada');
      const t = await api(srv, 'GET', '/api/v1/feedings/today', { token: ada.session });
      expectStatus(t, 200);
      const todays = ada.feedingRows.slice(0, 2);
      const total = todays.reduce((s, x) => s + x.amount_ml, 0);
      assert.equal(t.json.timezone, ada.timezone);
      assert.equal(t.json.target_ml, 750);
      assert.equal(t.json.count, 2);
      assert.equal(t.json.total_ml, total);
      assert.equal(t.json.remaining_ml, 750 - total);
      assert.equal(t.json.last_given_at, todays[0].given_at);
      const s = await api(srv, 'GET', '/api/v1/stats/feedings?days=7', { token: ada.session });
      expectStatus(s, 200);
      assert.equal(s.json.total_count, ada.feedingRows.filter((x) => Date.now() - Date.parse(x.given_at) < 6 * DAY).length);
      const tags = await api(srv, 'GET', '/api/v1/tags', { token: ada.session });
      expectStatus(tags, 200);
      assert.deepEqual(tags.json.items.map((x) => [x.tag, x.count]).sort(), [['sleep', 2], ['t0', 1], ['t2', 1]]);
    });

    it('its stored idempotency keys still replay (and refuse another body); an expired one does not', async () => {
      const ada = byKey('ada');
      const bo = byKey('bo');
      const countF = () => Number(app('SELECT count(*) FROM feedings'));
      const n0 = countF();
      const r = await api(srv, 'POST', '/api/v1/feedings', { token: ada.session, body: FEED_BODY, headers: { 'Idempotency-Key': 'v1-feed-key' } });
      expectStatus(r, 201);
      assert.equal(r.headers['idempotent-replayed'], 'true');
      assert.equal(r.headers.location, `/api/v1/feedings/${ada.feedingRows[0].id}`);
      assert.equal(r.text, ada.feedReplay, 'the stored response body, byte for byte');
      const rn = await api(srv, 'POST', '/api/v1/notes', { token: ada.session, body: NOTE_BODY, headers: { 'Idempotency-Key': 'v1-note-key' } });
      expectStatus(rn, 201);
      assert.equal(rn.headers['idempotent-replayed'], 'true');
      assert.equal(rn.text, ada.noteReplay);
      // the same key is Bo's own too, with his own response
      const rb = await api(srv, 'POST', '/api/v1/feedings', { token: bo.session, body: FEED_BODY, headers: { 'Idempotency-Key': 'v1-feed-key' } });
      expectStatus(rb, 201);
      assert.equal(rb.text, bo.feedReplay);
      // another body under the key: 422, as in v1
      expectProblem(await api(srv, 'POST', '/api/v1/feedings', { token: ada.session, body: '{"amount_ml":121}', headers: { 'Idempotency-Key': 'v1-feed-key' } }), 422, 'validation');
      assert.equal(countF(), n0, 'a replay wrote a row');
      // a key stored more than 24 h ago is gone: the request creates a row, in the default subject
      const e = await api(srv, 'POST', '/api/v1/feedings', { token: ada.session, body: FEED_BODY, headers: { 'Idempotency-Key': 'v1-expired-key' } });
      expectStatus(e, 201);
      assert.equal(e.headers['idempotent-replayed'], undefined);
      assert.notEqual(e.json.id, ada.feedingRows[1].id);
      assert.equal(e.json.subject_id, ada.subjectId);
      assert.equal(countF(), n0 + 1);
      // and that new key replays in turn
      const again = await api(srv, 'POST', '/api/v1/feedings', { token: ada.session, body: FEED_BODY, headers: { 'Idempotency-Key': 'v1-expired-key' } });
      expectStatus(again, 201);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.equal(again.json.id, e.json.id);
      assert.equal(countF(), n0 + 1);
    });

    it('its personal access token works; new records without subject_id go to the default subject; PATCH /me moves the target', async () => {
      const ada = byKey('ada');
      const me = await api(srv, 'GET', '/api/v1/me', { token: secrets.patToken });
      expectStatus(me, 200);
      assert.equal(me.json.id, ada.id);
      const sock = await openSocket(srv, secrets.patToken);
      const from = sock.messages.length;
      const f = await api(srv, 'POST', '/api/v1/feedings', { token: secrets.patToken, body: { amount_ml: 75, kind: 'milk' } });
      expectStatus(f, 201);
      assert.equal(f.json.subject_id, ada.subjectId);
      assert.deepEqual(f.json.created_by, { id: ada.id, display_name: 'Ada' });
      assert.equal(app(`SELECT subject_id || ' ' || created_by FROM feedings WHERE id = '${f.json.id}'`), `${ada.subjectId} ${ada.id}`);
      const ev = await nextFrame(sock, (m) => m.type === 'event' && m.event === 'feeding.created' && m.data.id === f.json.id, { from });
      assert.equal(ev.subject_id, ada.subjectId);
      sock.ws.close();
      const n = await api(srv, 'POST', '/api/v1/notes', { token: ada.session, body: { title: 'after the migration', tags: ['sleep'] } });
      expectStatus(n, 201);
      assert.equal(n.json.subject_id, ada.subjectId);
      const list = await api(srv, 'GET', '/api/v1/feedings?limit=100', { token: ada.session });
      assert.ok(list.json.items.some((x) => x.id === f.json.id));

      const p = await api(srv, 'PATCH', '/api/v1/me', { token: ada.session, body: { daily_target_ml: 900, timezone: 'Europe/Paris' } });
      expectStatus(p, 200);
      assert.equal(p.json.daily_target_ml, 900);
      assert.equal(app(`SELECT daily_target_ml || ' ' || timezone FROM subjects WHERE id = '${ada.subjectId}'`), '900 Europe/Paris');
      const t = await api(srv, 'GET', '/api/v1/feedings/today', { token: ada.session });
      assert.equal(t.json.target_ml, 900);
      assert.equal(t.json.timezone, 'Europe/Paris');
      // Ed, who had nothing, starts logging
      const ed = byKey('ed');
      const fe = await api(srv, 'POST', '/api/v1/feedings', { token: ed.session, body: { amount_ml: 60 } });
      expectStatus(fe, 201);
      assert.equal(fe.json.subject_id, ed.subjectId);
      const te = await api(srv, 'GET', '/api/v1/feedings/today', { token: ed.session });
      assert.equal(te.json.target_ml, 500);
    });

    it('its subjects list shows the default subject it owns', async () => {
      for (const u of users) {
        const r = await api(srv, 'GET', '/api/v1/subjects', { token: u.session });
        expectStatus(r, 200);
        assert.deepEqual(r.json.items.map((s) => [s.id, s.role, s.member_count]), [[u.subjectId, 'owner', 1]], u.key);
      }
    });
  });
});
