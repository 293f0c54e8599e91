// Accounts against the contract (docs/api.md, "Authentication", the token routes, "Rate
// limits"): register, login, logout, cookies and the Origin check, sessions, password
// change, personal access tokens and their scopes, login timing, robustness, Secure cookies
// and X-Forwarded-For behind a trusted proxy, revocation across two replicas, what is stored
// at rest, Redis being unavailable, and the rate limits (also across replicas).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterEach, before, describe, it } from 'node:test';

import {
  API_ENV, CORS_ORIGIN, PASSWORD, PUBLIC_ORIGIN, SESSION_ABSOLUTE_S, SESSION_KEYS, TOKEN_KEYS, TOKEN_KEYS_ADDED, TS_RE, USER_KEYS, USER_KEYS_ADDED, UUID_RE, withAdded,
  api, createToken, expect401, expect403, expect404, expect422, expectProblem, expectStatus, flushRedisDb, login, median,
  psql, redisDump, redisUrlWithDb, register, sessionCookie, sleep, uniqueEmail,
} from './api.mjs';
import { freePort, raw, requireEnv, useServer, waitFor } from './helpers.mjs';

const near = (iso, expectedMs, slackMs, msg) => {
  const d = Math.abs(Date.parse(iso) - expectedMs);
  assert.ok(d <= slackMs, `${msg}: ${iso} is ${d} ms away from ${new Date(expectedMs).toISOString()}`);
};

describe('accounts', () => {
  const srv = useServer({ ...API_ENV });

  describe('register', () => {
    it('creates a user: 201 {user, token, expires_at} and the session cookie', async () => {
      const email = uniqueEmail('reg');
      const t0 = Date.now();
      const r = await api(srv, 'POST', '/api/v1/auth/register', { body: { email, password: PASSWORD } });
      expectStatus(r, 201);
      assert.match(r.headers['content-type'], /^application\/json/);
      assert.deepEqual(Object.keys(r.json).sort(), ['expires_at', 'token', 'user']);
      const { user, token, expires_at: exp } = r.json;
      assert.deepEqual(Object.keys(user).sort(), withAdded(USER_KEYS, USER_KEYS_ADDED));
      assert.match(user.id, UUID_RE);
      assert.equal(user.email, email);
      assert.equal(user.display_name, null);
      assert.equal(user.timezone, 'UTC');
      assert.equal(user.daily_target_ml, 0);
      assert.match(user.created_at, TS_RE);
      assert.match(user.updated_at, TS_RE);
      near(user.created_at, t0, 60000, 'created_at');
      assert.equal(typeof token, 'string');
      assert.ok(token.length >= 20, 'token long enough to be random');
      assert.ok(!token.startsWith('pat_'), 'a session token is not a pat_');
      assert.match(exp, TS_RE);
      near(exp, t0 + SESSION_ABSOLUTE_S * 1000, 60000, 'expires_at = absolute session expiry');
      const c = sessionCookie(r);
      assert.ok(c, `Set-Cookie pulse_session: ${r.headers['set-cookie']}`);
      assert.equal(c.value, token);
      assert.equal(c.attrs.httponly, true);
      assert.equal(String(c.attrs.samesite).toLowerCase(), 'lax');
      assert.equal(c.attrs.path, '/');
      assert.equal(c.attrs['max-age'], String(SESSION_ABSOLUTE_S));
      assert.equal(c.attrs.secure, undefined, 'no Secure without PULSE_COOKIE_SECURE=1');
      // the password is never echoed, nor its hash
      assert.ok(!r.text.includes(PASSWORD));
      assert.ok(!/argon2|password/i.test(r.text));
      // the token works at once, as a bearer and as the cookie
      const me = expectStatus(await api(srv, 'GET', '/api/v1/me', { token, origin: null }), 200);
      assert.deepEqual(me.json, user);
      expectStatus(await api(srv, 'GET', '/api/v1/me', { cookie: token, origin: null }), 200);
    });

    it('takes display_name and timezone', async () => {
      const { user } = await register(srv, { display_name: 'Zoë 🍼', timezone: 'Europe/Paris' });
      assert.equal(user.display_name, 'Zoë 🍼');
      assert.equal(user.timezone, 'Europe/Paris');
      const n = await register(srv, { display_name: null });
      assert.equal(n.user.display_name, null, 'null equals leaving it out in POST');
    });

    it('stores the email trimmed and lower-cased', async () => {
      const email = uniqueEmail('Case');
      const r = await register(srv, { email: `  ${email.toUpperCase()}   ` });
      assert.equal(r.user.email, email.toLowerCase());
      await login(srv, email.toLowerCase());
      await login(srv, ` ${email.toUpperCase()} `);
    });

    it('lower-cases non-ASCII letters too: ÉLODIE@ logs in as typed and as élodie@, and is one account', async () => {
      // The contract: emails are trimmed, lower-cased and unique case-insensitively. The
      // C normalisation (rate-limit keys) and SQL's lower() (storage, lookup, unique index)
      // must agree on letters beyond ASCII.
      const tag = randomBytes(5).toString('hex');
      const upper = `ÉLODIE.ΣΟΦΙΑ-${tag}@Example.com`;
      const lower = `élodie.σοφια-${tag}@example.com`;
      const r = await register(srv, { email: ` ${upper} ` });
      assert.equal(r.user.email, lower, 'stored and answered lower-cased');
      assert.equal(psql(`SELECT email FROM users WHERE id = '${r.user.id}'`), lower);
      for (const typed of [upper, lower, ` ${upper.toLowerCase()} `, `Élodie.Σοφια-${tag}@EXAMPLE.COM`]) {
        const l = await api(srv, 'POST', '/api/v1/auth/login', { body: { email: typed, password: PASSWORD } });
        expectStatus(l, 200);
        assert.equal(l.json.user.id, r.user.id, `login as ${typed}`);
      }
      for (const again of [upper, lower, `élodie.ΣΟΦΙΑ-${tag}@example.com`]) {
        expectProblem(await api(srv, 'POST', '/api/v1/auth/register', { body: { email: again, password: PASSWORD } }), 409, 'conflict');
      }
      assert.equal(psql(`SELECT count(*) FROM users WHERE lower(email) = '${lower}'`), '1');
    });

    it('answers 409 when the email is taken, case-insensitively and trimmed', async () => {
      const email = uniqueEmail('dup');
      await register(srv, { email });
      for (const again of [email, email.toUpperCase(), `  ${email} `, ` ${email.replace(/^d/, 'D')}`]) {
        const r = await api(srv, 'POST', '/api/v1/auth/register', { body: { email: again, password: PASSWORD } });
        expectProblem(r, 409, 'conflict');
        assert.equal(r.headers['set-cookie'], undefined, 'no cookie on a conflict');
      }
    });

    it('accepts an email of 254 characters', async () => {
      const local = `l${randomHex(20)}`.padEnd(64, 'a');
      const domain = `${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(57)}.com`;
      const email = `${local}@${domain}`;
      assert.equal(email.length, 254);
      const r = await register(srv, { email });
      assert.equal(r.user.email, email);
    });

    for (const [what, email] of [
      ['an empty email', ''],
      ['only spaces', '   '],
      ['no @', 'no-at-sign.example.com'],
      ['nothing after @', 'someone@'],
      ['nothing before @', '@example.com'],
      ['two @', 'a@b@example.com'],
      ['a space inside', 'some one@example.com'],
      ['255 characters', `${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(58)}.com`],
      ['a number', 42],
      ['null', null],
      ['an array', ['a@example.com']],
    ]) {
      it(`refuses ${what} as email with 422 naming email`, async () => {
        const r = await api(srv, 'POST', '/api/v1/auth/register', { body: { email, password: PASSWORD } });
        expect422(r, 'email');
      });
    }

    it('requires email and password (422 naming each)', async () => {
      expect422(await api(srv, 'POST', '/api/v1/auth/register', { body: { password: PASSWORD } }), 'email');
      expect422(await api(srv, 'POST', '/api/v1/auth/register', { body: { email: uniqueEmail() } }), 'password');
      expect422(await api(srv, 'POST', '/api/v1/auth/register', { body: {} }), 'email', 'password');
      // an empty body counts as {}
      expect422(await api(srv, 'POST', '/api/v1/auth/register', {}), 'email', 'password');
    });

    for (const [what, password, ok] of [
      ['11 characters', 'a'.repeat(11), false],
      ['12 characters', 'a'.repeat(12), true],
      ['128 characters', 'p'.repeat(128), true],
      ['129 characters', 'p'.repeat(129), false],
      ['11 two-byte characters (22 bytes)', 'é'.repeat(11), false],
      ['12 two-byte characters', 'é'.repeat(12), true],
      ['12 astral characters (48 bytes, 24 UTF-16 units)', '🍼'.repeat(12), true],
      ['128 astral characters (512 bytes)', '🍼'.repeat(128), true],
      ['129 two-byte characters', 'é'.repeat(129), false],
      ['a number', 123456789012345, false],
      ['null', null, false],
    ]) {
      it(`${ok ? 'accepts' : 'refuses'} a password of ${what}`, async () => {
        const email = uniqueEmail('pw');
        const r = await api(srv, 'POST', '/api/v1/auth/register', { body: { email, password } });
        if (ok) {
          expectStatus(r, 201);
          await login(srv, email, password);
        } else {
          expect422(r, 'password');
        }
      });
    }

    it('validates display_name (1..100 code points) and timezone', async () => {
      const b = (extra) => ({ body: { email: uniqueEmail('dn'), password: PASSWORD, ...extra } });
      expect422(await api(srv, 'POST', '/api/v1/auth/register', b({ display_name: '' })), 'display_name');
      expect422(await api(srv, 'POST', '/api/v1/auth/register', b({ display_name: 'x'.repeat(101) })), 'display_name');
      expect422(await api(srv, 'POST', '/api/v1/auth/register', b({ display_name: 7 })), 'display_name');
      expectStatus(await api(srv, 'POST', '/api/v1/auth/register', b({ display_name: '🍼'.repeat(100) })), 201);
      expect422(await api(srv, 'POST', '/api/v1/auth/register', b({ timezone: 'Mars/Olympus' })), 'timezone');
      expect422(await api(srv, 'POST', '/api/v1/auth/register', b({ timezone: '' })), 'timezone');
      expect422(await api(srv, 'POST', '/api/v1/auth/register', b({ timezone: null })), 'timezone');
    });

    it('refuses unknown and read-only fields, naming each', async () => {
      const email = uniqueEmail('ro');
      let r = await api(srv, 'POST', '/api/v1/auth/register', { body: { email, password: PASSWORD, nickname: 'x', admin: true } });
      expect422(r, 'nickname', 'admin');
      r = await api(srv, 'POST', '/api/v1/auth/register', {
        body: { email, password: PASSWORD, id: '00000000-0000-0000-0000-000000000001', created_at: '2020-01-01T00:00:00Z', updated_at: '2020-01-01T00:00:00Z' },
      });
      expect422(r, 'id', 'created_at', 'updated_at');
      r = await api(srv, 'POST', '/api/v1/auth/register', { body: { email, password: PASSWORD, daily_target_ml: 500 } });
      expect422(r, 'daily_target_ml');
      // nothing was created by the refused attempts
      expectStatus(await api(srv, 'POST', '/api/v1/auth/register', { body: { email, password: PASSWORD } }), 201);
    });

    it('answers 400 to malformed JSON, non-objects and duplicate keys', async () => {
      for (const body of ['{"email": "a@b.c", "password": ', 'not json', '[]', '"a string"', 'null', '42',
        `{"email": "${uniqueEmail()}", "email": "${uniqueEmail()}", "password": "${PASSWORD}"}`]) {
        const r = await api(srv, 'POST', '/api/v1/auth/register', { body });
        expectProblem(r, 400, 'malformed');
      }
      const bad = Buffer.from(`{"email": "x\xff@example.com", "password": "${PASSWORD}"}`, 'latin1').toString('latin1');
      const r = await rawUtf8(srv, 'POST', '/api/v1/auth/register', Buffer.from(bad, 'latin1'));
      assert.equal(r.status, 400, 'invalid UTF-8 is malformed');
    });

    it('answers 415 without Content-Type or with another type, and accepts charset=utf-8', async () => {
      const body = { email: uniqueEmail('ct'), password: PASSWORD };
      expectProblem(await api(srv, 'POST', '/api/v1/auth/register', { body, contentType: null }), 415, 'unsupported-media-type');
      expectProblem(await api(srv, 'POST', '/api/v1/auth/register', { body, contentType: 'text/plain' }), 415, 'unsupported-media-type');
      expectProblem(await api(srv, 'POST', '/api/v1/auth/register', { body, contentType: 'application/x-www-form-urlencoded' }), 415, 'unsupported-media-type');
      expectStatus(await api(srv, 'POST', '/api/v1/auth/register', { body, contentType: 'application/json; charset=utf-8' }), 201);
    });
  });

  describe('login', () => {
    it('answers 200 {user, token, expires_at} with the cookie, a new token every login', async () => {
      const reg = await register(srv);
      const t0 = Date.now();
      const a = await login(srv, reg.email);
      const b = await login(srv, reg.email);
      for (const l of [a, b]) {
        assert.deepEqual(Object.keys(l.res.json).sort(), ['expires_at', 'token', 'user']);
        assert.deepEqual(l.user, reg.user);
        assert.match(l.expires_at, TS_RE);
        near(l.expires_at, t0 + SESSION_ABSOLUTE_S * 1000, 60000, 'expires_at');
        assert.ok(!l.token.startsWith('pat_'));
        assert.equal(l.cookie.value, l.token);
        assert.equal(l.cookie.attrs.httponly, true);
        assert.equal(String(l.cookie.attrs.samesite).toLowerCase(), 'lax');
        assert.equal(l.cookie.attrs.path, '/');
        assert.equal(l.cookie.attrs['max-age'], String(SESSION_ABSOLUTE_S));
        assert.equal(l.cookie.attrs.secure, undefined);
      }
      assert.equal(new Set([reg.token, a.token, b.token]).size, 3, 'a new token every login');
      for (const t of [reg.token, a.token, b.token]) expectStatus(await api(srv, 'GET', '/api/v1/me', { token: t }), 200);
      const s = expectStatus(await api(srv, 'GET', '/api/v1/auth/sessions', { token: b.token }), 200);
      assert.equal(new Set(s.json.items.map((x) => x.id)).size, 3, 'a new session id every login');
    });

    it('answers the same 401 for a wrong password and an unknown email', async () => {
      const reg = await register(srv);
      const wrong = await api(srv, 'POST', '/api/v1/auth/login', { body: { email: reg.email, password: `${PASSWORD}!` } });
      const unknown = await api(srv, 'POST', '/api/v1/auth/login', { body: { email: uniqueEmail('nobody'), password: PASSWORD } });
      for (const r of [wrong, unknown]) {
        expect401(r);
        assert.equal(r.headers['set-cookie'], undefined, 'no cookie on a failed login');
      }
      const strip = ({ request_id: _, ...rest }) => rest;
      assert.deepEqual(strip(wrong.json), strip(unknown.json));
      assert.equal(wrong.headers['www-authenticate'], unknown.headers['www-authenticate']);
      assert.equal(wrong.headers['content-type'], unknown.headers['content-type']);
    });

    it('answers 422 to a login body without password or with unknown fields', async () => {
      expect422(await api(srv, 'POST', '/api/v1/auth/login', { body: { email: uniqueEmail() } }), 'password');
      expect422(await api(srv, 'POST', '/api/v1/auth/login', { body: { password: PASSWORD } }), 'email');
      expect422(await api(srv, 'POST', '/api/v1/auth/login', { body: { email: uniqueEmail(), password: PASSWORD, remember: true } }), 'remember');
      expectProblem(await api(srv, 'POST', '/api/v1/auth/login', { body: '{"email":' }), 400, 'malformed');
      expectProblem(await api(srv, 'POST', '/api/v1/auth/login', { body: { email: uniqueEmail(), password: PASSWORD }, contentType: null }), 415, 'unsupported-media-type');
    });

    it('takes about the same time for an unknown email and a wrong password', async () => {
      const reg = await register(srv);
      const time = async (email) => {
        const t = process.hrtime.bigint();
        const r = await api(srv, 'POST', '/api/v1/auth/login', { body: { email, password: 'wrong password 123' } });
        expect401(r);
        return Number(process.hrtime.bigint() - t) / 1e6;
      };
      const known = [];
      const unknown = [];
      for (let i = 0; i < 5; i++) {
        known.push(await time(reg.email));
        unknown.push(await time(uniqueEmail('ghost')));
      }
      const a = median(known);
      const b = median(unknown);
      const ratio = Math.max(a, b) / Math.max(Math.min(a, b), 0.001);
      assert.ok(ratio <= 5 || Math.abs(a - b) <= 200,
        `medians: wrong password ${a.toFixed(2)} ms, unknown email ${b.toFixed(2)} ms`);
    });

    it('refuses a bad or absent credential with 401 and WWW-Authenticate: Bearer', async () => {
      for (const headers of [{}, { Authorization: 'Bearer' }, { Authorization: 'Bearer ' }, { Authorization: 'Bearer nope' },
        { Authorization: 'Bearer pat_nope' }, { Authorization: 'Basic dXNlcjpwYXNz' }, { Cookie: 'pulse_session=nope' },
        { Cookie: 'other=1' }]) {
        const r = await api(srv, 'GET', '/api/v1/me', { headers, origin: null });
        expect401(r);
      }
      expect401(await api(srv, 'HEAD', '/api/v1/me', { origin: null }));
      expect401(await api(srv, 'GET', '/api/v1/auth/sessions'));
      expect401(await api(srv, 'GET', '/api/v1/tokens'));
      expect401(await api(srv, 'POST', '/api/v1/tokens', { body: { name: 'x', scopes: ['read'] } }));
      expect401(await api(srv, 'POST', '/api/v1/auth/logout'));
      expect401(await api(srv, 'POST', '/api/v1/auth/password', { body: { current_password: PASSWORD, new_password: PASSWORD } }));
    });

    it('checks authentication before Content-Type and the body', async () => {
      expect401(await api(srv, 'POST', '/api/v1/tokens', { body: '{bad', contentType: 'text/plain' }));
      expect401(await api(srv, 'POST', '/api/v1/auth/password', { body: '{bad' }));
    });
  });

  describe('robustness', () => {
    it('registers one account when the same email races in (one 201, the rest 409)', async () => {
      const email = uniqueEmail('race');
      const rs = await Promise.all(Array.from({ length: 8 }, (_, i) =>
        api(srv, 'POST', '/api/v1/auth/register', { body: { email: i % 2 ? email.toUpperCase() : email, password: PASSWORD } })));
      const statuses = rs.map((r) => r.status).sort();
      assert.deepEqual(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
      assert.equal(psql(`SELECT count(*) FROM users WHERE lower(email) = '${email}'`), '1');
    });

    it('keeps quotes and plus signs in emails as data', async () => {
      const email = `o'brien+${uniqueEmail('q')}`;
      const r = await register(srv, { email });
      assert.equal(r.user.email, email);
      await login(srv, email);
    });

    it('does not cut a password at a NUL character (stored whole, or 422: valid JSON, so not 400)', async () => {
      const email = uniqueEmail('nul');
      const pw = `${'x'.repeat(12)}\u0000the-rest-1`;
      const r = await api(srv, 'POST', '/api/v1/auth/register', { body: { email, password: pw } });
      assert.ok([201, 422].includes(r.status), `register: ${r.status}`);
      if (r.status === 201) {
        expect401(await api(srv, 'POST', '/api/v1/auth/login', { body: { email, password: `${'x'.repeat(12)}\u0000the-rest-2` } }));
        expect401(await api(srv, 'POST', '/api/v1/auth/login', { body: { email, password: 'x'.repeat(12) } }));
        await login(srv, email, pw);
      } else {
        expect422(r, 'password');
      }
    });

    it('takes the Bearer scheme case-insensitively', async () => {
      const reg = await register(srv);
      expectStatus(await api(srv, 'GET', '/api/v1/me', { headers: { Authorization: `bearer ${reg.token}` } }), 200);
      expectStatus(await api(srv, 'GET', '/api/v1/me', { headers: { Authorization: `BEARER ${reg.token}` } }), 200);
    });

    it('answers 401 to absurd credentials and keeps serving', async () => {
      const reg = await register(srv);
      for (const tok of ['x'.repeat(8000), `${reg.token}x`, reg.token.slice(0, -1), `pat_${'a'.repeat(4000)}`, '%00', "' OR 1=1 --"]) {
        expect401(await api(srv, 'GET', '/api/v1/me', { token: tok }));
      }
      expect401(await api(srv, 'GET', '/api/v1/me', { cookie: `pulse_session=${'y'.repeat(8000)}` }));
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: reg.token }), 200);
    });
  });

  describe('routes', () => {
    const allow = (r) => (r.headers.allow || '').split(',').map((x) => x.trim()).filter(Boolean).sort();
    for (const [method, path, methods] of [
      ['GET', '/api/v1/auth/register', ['POST']],
      ['GET', '/api/v1/auth/login', ['POST']],
      ['GET', '/api/v1/auth/logout', ['POST']],
      ['POST', '/api/v1/auth/sessions', ['GET', 'HEAD']],
      ['GET', '/api/v1/auth/sessions/abc', ['DELETE']],
      ['PUT', '/api/v1/tokens', ['GET', 'HEAD', 'POST']],
      ['GET', '/api/v1/tokens/00000000-0000-0000-0000-000000000000', ['DELETE']],
      ['PUT', '/api/v1/me', ['DELETE', 'GET', 'HEAD', 'PATCH']],
      ['POST', '/api/v1/me/export', ['GET', 'HEAD']],
    ]) {
      it(`answers ${method} ${path} with 405 and Allow, before authentication`, async () => {
        const r = await api(srv, method, path);
        expectProblem(r, 405, 'method-not-allowed');
        assert.deepEqual(allow(r), methods);
      });
    }

    it('answers unknown paths with 404, with or without credentials', async () => {
      const reg = await register(srv);
      for (const p of ['/api/v1/auth/nope', '/api/v1/me/nope', '/api/v1/tokens/a/b', '/api/v1/auth/sessions/a/b']) {
        expect404(await api(srv, 'GET', p));
        expect404(await api(srv, 'GET', p, { token: reg.token }));
      }
    });

    it('answers HEAD /auth/sessions and /tokens like GET, without a body', async () => {
      const reg = await register(srv);
      for (const p of ['/api/v1/auth/sessions', '/api/v1/tokens']) {
        const r = expectStatus(await api(srv, 'HEAD', p, { token: reg.token }), 200);
        assert.equal(r.text, '');
      }
    });
  });

  describe('logout', () => {
    it('revokes the session at once and clears the cookie (204, no Content-Type needed)', async () => {
      const reg = await register(srv);
      const other = await login(srv, reg.email);
      const r = await api(srv, 'POST', '/api/v1/auth/logout', { token: reg.token });
      expectStatus(r, 204);
      assert.equal(r.text, '');
      const c = sessionCookie(r);
      assert.ok(c, `cookie cleared: ${r.headers['set-cookie']}`);
      assert.equal(c.value, '');
      assert.equal(c.attrs['max-age'], '0');
      assert.equal(c.attrs.path, '/');
      expect401(await api(srv, 'GET', '/api/v1/me', { token: reg.token }));
      expect401(await api(srv, 'GET', '/api/v1/me', { cookie: reg.token }));
      expect401(await api(srv, 'POST', '/api/v1/auth/logout', { token: reg.token }));
      // only that session
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: other.token }), 200);
    });

    it('takes a cookie with the right Origin, and an explicit {} body', async () => {
      const reg = await register(srv);
      expectStatus(await api(srv, 'POST', '/api/v1/auth/logout', { cookie: reg.token, origin: PUBLIC_ORIGIN }), 204);
      expect401(await api(srv, 'GET', '/api/v1/me', { cookie: reg.token }));
      const l = await login(srv, reg.email);
      expectStatus(await api(srv, 'POST', '/api/v1/auth/logout', { token: l.token, body: {} }), 204);
      expect401(await api(srv, 'GET', '/api/v1/me', { token: l.token }));
      const l2 = await login(srv, reg.email);
      expect422(await api(srv, 'POST', '/api/v1/auth/logout', { token: l2.token, body: { all: true } }), 'all');
    });

    it('refuses a cookie logout without or with a foreign Origin (403), session kept', async () => {
      const reg = await register(srv);
      expect403(await api(srv, 'POST', '/api/v1/auth/logout', { cookie: reg.token, origin: null }));
      expect403(await api(srv, 'POST', '/api/v1/auth/logout', { cookie: reg.token, origin: 'https://evil.example' }));
      expectStatus(await api(srv, 'GET', '/api/v1/me', { cookie: reg.token }), 200);
    });
  });

  describe('cookies and Origin', () => {
    it('lets a cookie GET through without Origin', async () => {
      const reg = await register(srv);
      const r = expectStatus(await api(srv, 'GET', '/api/v1/me', { cookie: reg.token, origin: null }), 200);
      assert.equal(r.json.id, reg.user.id);
      expectStatus(await api(srv, 'GET', '/api/v1/me', { cookie: `theme=dark; pulse_session=${reg.token}; x=y`, origin: null }), 200);
      expectStatus(await api(srv, 'GET', '/api/v1/me', { cookie: reg.token, origin: 'https://evil.example' }), 200);
    });

    it('without PULSE_COOKIE_SECURE the cookie is pulse_session (no Secure); __Host-pulse_session is not read', async () => {
      const reg = await register(srv);
      const c = sessionCookie(reg.res);
      assert.ok(c, `Set-Cookie: ${reg.res.headers['set-cookie']}`);
      assert.equal(c.attrs.secure, undefined, c.raw);
      assert.equal(sessionCookie(reg.res, '__Host-pulse_session'), null);
      expect401(await api(srv, 'GET', '/api/v1/me', { cookie: `__Host-pulse_session=${reg.token}`, origin: null }));
      expectStatus(await api(srv, 'GET', '/api/v1/me', { cookie: `pulse_session=${reg.token}`, origin: null }), 200);
    });

    it('refuses a cookie write without Origin or from a foreign origin (403)', async () => {
      const reg = await register(srv);
      for (const origin of [null, 'https://evil.example', 'null', `${PUBLIC_ORIGIN}.evil.example`, 'http://pulse.test:8080', 'https://pulse.test']) {
        expect403(await api(srv, 'PATCH', '/api/v1/me', { cookie: reg.token, origin, body: { display_name: 'hacked' } }));
        expect403(await api(srv, 'POST', '/api/v1/tokens', { cookie: reg.token, origin, body: { name: 'csrf', scopes: ['read'] } }));
      }
      const me = expectStatus(await api(srv, 'GET', '/api/v1/me', { cookie: reg.token }), 200);
      assert.equal(me.json.display_name, null, 'nothing changed');
      const t = expectStatus(await api(srv, 'GET', '/api/v1/tokens', { cookie: reg.token }), 200);
      assert.equal(t.json.items.length, 0, 'no token created');
    });

    it('allows a cookie write from PULSE_PUBLIC_ORIGIN and from PULSE_CORS_ORIGINS', async () => {
      const reg = await register(srv);
      let r = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { cookie: reg.token, origin: PUBLIC_ORIGIN, body: { display_name: 'own' } }), 200);
      assert.equal(r.json.display_name, 'own');
      r = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { cookie: reg.token, origin: CORS_ORIGIN, body: { display_name: 'cors' } }), 200);
      assert.equal(r.json.display_name, 'cors');
      expectStatus(await api(srv, 'POST', '/api/v1/tokens', { cookie: reg.token, origin: CORS_ORIGIN, body: { name: 'ok', scopes: ['read'] } }), 201);
    });

    it('exempts bearer requests from the Origin check', async () => {
      const reg = await register(srv);
      expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: reg.token, origin: null, body: { display_name: 'b1' } }), 200);
      expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: reg.token, origin: 'https://evil.example', body: { display_name: 'b2' } }), 200);
      const pat = await createToken(srv, reg.token, { scopes: ['write'] });
      expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: pat.token, origin: null, body: { display_name: 'b3' } }), 204);
      expectStatus(await api(srv, 'POST', '/api/v1/tokens', { token: reg.token, origin: null, body: { name: 'n', scopes: ['read'] } }), 201);
    });

    it('checks the Origin (403) before Content-Type (415) and the body (400)', async () => {
      const reg = await register(srv);
      expect403(await api(srv, 'PATCH', '/api/v1/me', { cookie: reg.token, origin: null, body: '{bad', contentType: 'text/plain' }));
    });
  });

  describe('sessions', () => {
    it('lists the caller\'s sessions only, with current:true for the caller', async () => {
      const reg = await register(srv, { headers: { 'User-Agent': 'ua-register/1.0' } });
      const b = await login(srv, reg.email, PASSWORD, { headers: { 'User-Agent': 'ua-phone/2.0' } });
      const c = await login(srv, reg.email, PASSWORD, { headers: { 'User-Agent': 'ua-laptop/3.0' } });
      const stranger = await register(srv);
      await login(srv, stranger.email);
      const r = expectStatus(await api(srv, 'GET', '/api/v1/auth/sessions', { token: b.token }), 200);
      assert.deepEqual(Object.keys(r.json), ['items'], 'a bounded list without next_cursor');
      const items = r.json.items;
      assert.equal(items.length, 3);
      for (const s of items) {
        assert.deepEqual(Object.keys(s).sort(), SESSION_KEYS);
        assert.equal(typeof s.id, 'string');
        assert.ok(s.id.length > 0);
        assert.ok(!new Set([reg.token, b.token, c.token]).has(s.id), 'a session id is not its token');
        assert.match(s.created_at, TS_RE);
        assert.match(s.last_seen_at, TS_RE);
        assert.equal(s.ip, '127.0.0.1');
        assert.equal(typeof s.current, 'boolean');
      }
      assert.deepEqual(items.map((s) => s.user_agent).sort(), ['ua-laptop/3.0', 'ua-phone/2.0', 'ua-register/1.0']);
      const cur = items.filter((s) => s.current);
      assert.equal(cur.length, 1);
      assert.equal(cur[0].user_agent, 'ua-phone/2.0');
      // the cookie gives the same view, current moves with the caller
      const viaC = expectStatus(await api(srv, 'GET', '/api/v1/auth/sessions', { cookie: c.token, origin: null }), 200);
      assert.deepEqual(viaC.json.items.filter((s) => s.current).map((s) => s.user_agent), ['ua-laptop/3.0']);
      assert.deepEqual(viaC.json.items.map((s) => s.id).sort(), items.map((s) => s.id).sort());
      // the stranger sees only theirs
      const theirs = expectStatus(await api(srv, 'GET', '/api/v1/auth/sessions', { token: stranger.token }), 200);
      assert.equal(theirs.json.items.length, 2);
      const mine = new Set(items.map((s) => s.id));
      assert.ok(theirs.json.items.every((s) => !mine.has(s.id)));
    });

    it('revokes one session at once with DELETE /auth/sessions/{id}', async () => {
      const reg = await register(srv, { headers: { 'User-Agent': 'keeper' } });
      const victim = await login(srv, reg.email, PASSWORD, { headers: { 'User-Agent': 'victim' } });
      const list = expectStatus(await api(srv, 'GET', '/api/v1/auth/sessions', { token: reg.token }), 200).json.items;
      const id = list.find((s) => s.user_agent === 'victim').id;
      const r = expectStatus(await api(srv, 'DELETE', `/api/v1/auth/sessions/${encodeURIComponent(id)}`, { token: reg.token }), 204);
      assert.equal(r.text, '');
      expect401(await api(srv, 'GET', '/api/v1/me', { token: victim.token }));
      expect401(await api(srv, 'GET', '/api/v1/me', { cookie: victim.token }));
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: reg.token }), 200);
      const after = expectStatus(await api(srv, 'GET', '/api/v1/auth/sessions', { token: reg.token }), 200).json.items;
      assert.deepEqual(after.map((s) => s.user_agent), ['keeper']);
      expect404(await api(srv, 'DELETE', `/api/v1/auth/sessions/${encodeURIComponent(id)}`, { token: reg.token }));
      // by cookie it needs the Origin
      const third = await login(srv, reg.email, PASSWORD, { headers: { 'User-Agent': 'third' } });
      const id3 = expectStatus(await api(srv, 'GET', '/api/v1/auth/sessions', { token: reg.token }), 200).json.items.find((s) => s.user_agent === 'third').id;
      expect403(await api(srv, 'DELETE', `/api/v1/auth/sessions/${encodeURIComponent(id3)}`, { cookie: reg.token, origin: null }));
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: third.token }), 200);
      expectStatus(await api(srv, 'DELETE', `/api/v1/auth/sessions/${encodeURIComponent(id3)}`, { cookie: reg.token, origin: PUBLIC_ORIGIN }), 204);
      expect401(await api(srv, 'GET', '/api/v1/me', { token: third.token }));
    });

    it('answers 404 for another user\'s session id and leaves it working', async () => {
      const me = await register(srv);
      const other = await register(srv);
      const theirId = expectStatus(await api(srv, 'GET', '/api/v1/auth/sessions', { token: other.token }), 200).json.items[0].id;
      expect404(await api(srv, 'DELETE', `/api/v1/auth/sessions/${encodeURIComponent(theirId)}`, { token: me.token }));
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: other.token }), 200);
      expect404(await api(srv, 'DELETE', '/api/v1/auth/sessions/00000000-0000-0000-0000-000000000000', { token: me.token }));
      expect404(await api(srv, 'DELETE', '/api/v1/auth/sessions/not-a-session', { token: me.token }));
      expect401(await api(srv, 'DELETE', `/api/v1/auth/sessions/${encodeURIComponent(theirId)}`));
    });

    it('revoking the current session by id works like logout', async () => {
      const reg = await register(srv);
      const id = expectStatus(await api(srv, 'GET', '/api/v1/auth/sessions', { token: reg.token }), 200).json.items[0].id;
      expectStatus(await api(srv, 'DELETE', `/api/v1/auth/sessions/${encodeURIComponent(id)}`, { token: reg.token }), 204);
      expect401(await api(srv, 'GET', '/api/v1/me', { token: reg.token }));
    });
  });

  describe('password change', () => {
    it('204; other sessions revoked, this one and every token keep working', async () => {
      const reg = await register(srv);
      const b = await login(srv, reg.email);
      const c = await login(srv, reg.email);
      const pat = await createToken(srv, reg.token, { scopes: ['read'] });
      const newPassword = 'a brand new passphrase ✓';
      const r = await api(srv, 'POST', '/api/v1/auth/password', { token: reg.token, body: { current_password: PASSWORD, new_password: newPassword } });
      expectStatus(r, 204);
      assert.equal(r.text, '');
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: reg.token }), 200);
      expect401(await api(srv, 'GET', '/api/v1/me', { token: b.token }));
      expect401(await api(srv, 'GET', '/api/v1/me', { cookie: c.token }));
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: pat.token }), 200);
      const list = expectStatus(await api(srv, 'GET', '/api/v1/auth/sessions', { token: reg.token }), 200).json.items;
      assert.equal(list.length, 1);
      assert.equal(list[0].current, true);
      expect401(await api(srv, 'POST', '/api/v1/auth/login', { body: { email: reg.email, password: PASSWORD } }));
      await login(srv, reg.email, newPassword);
    });

    it('403 for a wrong current_password, nothing changes', async () => {
      const reg = await register(srv);
      const b = await login(srv, reg.email);
      expect403(await api(srv, 'POST', '/api/v1/auth/password', { token: reg.token, body: { current_password: 'not my password!', new_password: 'another good passphrase' } }));
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: b.token }), 200);
      await login(srv, reg.email, PASSWORD);
    });

    it('validates new_password (12..128 code points) and the body with 422', async () => {
      const reg = await register(srv);
      const pw = (body) => api(srv, 'POST', '/api/v1/auth/password', { token: reg.token, body });
      expect422(await pw({ current_password: PASSWORD, new_password: 'x'.repeat(11) }), 'new_password');
      expect422(await pw({ current_password: PASSWORD, new_password: '🍼'.repeat(129) }), 'new_password');
      expect422(await pw({ current_password: PASSWORD, new_password: 12345678901234 }), 'new_password');
      expect422(await pw({ current_password: PASSWORD }), 'new_password');
      expect422(await pw({ new_password: 'another good passphrase' }), 'current_password');
      expect422(await pw({ current_password: PASSWORD, new_password: 'another good passphrase', user_id: reg.user.id }), 'user_id');
      expect422(await api(srv, 'POST', '/api/v1/auth/password', { token: reg.token }), 'current_password', 'new_password');
      expectProblem(await api(srv, 'POST', '/api/v1/auth/password', { token: reg.token, body: { current_password: PASSWORD, new_password: 'another good passphrase' }, contentType: null }), 415, 'unsupported-media-type');
      expectProblem(await pw('{"current_password":'), 400, 'malformed');
      // none of that changed the password
      await login(srv, reg.email, PASSWORD);
      // the bounds themselves are accepted
      expectStatus(await pw({ current_password: PASSWORD, new_password: 'é'.repeat(12) }), 204);
      expectStatus(await pw({ current_password: 'é'.repeat(12), new_password: '🍼'.repeat(128) }), 204);
      await login(srv, reg.email, '🍼'.repeat(128));
    });

    it('needs the Origin with a cookie', async () => {
      const reg = await register(srv);
      expect403(await api(srv, 'POST', '/api/v1/auth/password', { cookie: reg.token, origin: null, body: { current_password: PASSWORD, new_password: 'another good passphrase' } }));
      await login(srv, reg.email, PASSWORD);
      expectStatus(await api(srv, 'POST', '/api/v1/auth/password', { cookie: reg.token, origin: PUBLIC_ORIGIN, body: { current_password: PASSWORD, new_password: 'another good passphrase' } }), 204);
    });

    it('revoke_tokens: true also deletes every access token of the user (and only theirs); false keeps them', async () => {
      const reg = await register(srv);
      const other = await register(srv);
      const otherPat = await createToken(srv, other.token);
      const second = await login(srv, reg.email);
      const pats = [await createToken(srv, reg.token, { scopes: ['read'] }), await createToken(srv, reg.token, { scopes: ['write'] }), await createToken(srv, reg.token)];
      const pw = (body) => api(srv, 'POST', '/api/v1/auth/password', { token: reg.token, body });
      // false (the default) keeps them
      expectStatus(await pw({ current_password: PASSWORD, new_password: 'first new passphrase', revoke_tokens: false }), 204);
      assert.equal(expectStatus(await api(srv, 'GET', '/api/v1/tokens', { token: reg.token }), 200).json.items.length, 3);
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: pats[0].token }), 200);
      expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: pats[1].token, origin: null, body: { display_name: 'kept' } }), 204);
      expect401(await api(srv, 'GET', '/api/v1/me', { token: second.token }));
      // a wrong current password changes nothing, tokens included
      expect403(await pw({ current_password: PASSWORD, new_password: 'never applied passphrase', revoke_tokens: true }));
      assert.equal(expectStatus(await api(srv, 'GET', '/api/v1/tokens', { token: reg.token }), 200).json.items.length, 3);
      // true: every token stops working at once, the list is empty, the caller's session stays
      const third = await login(srv, reg.email, 'first new passphrase');
      const r = await pw({ current_password: 'first new passphrase', new_password: 'second new passphrase', revoke_tokens: true });
      expectStatus(r, 204);
      assert.equal(r.text, '');
      for (const p of pats) expect401(await api(srv, 'GET', '/api/v1/me', { token: p.token, origin: null }));
      expect401(await api(srv, 'PATCH', '/api/v1/me', { token: pats[1].token, origin: null, body: { display_name: 'x' } }));
      assert.deepEqual(expectStatus(await api(srv, 'GET', '/api/v1/tokens', { token: reg.token }), 200).json.items, []);
      assert.equal(psql(`SELECT count(*) FROM api_tokens WHERE user_id = '${reg.user.id}'`), '0');
      expect401(await api(srv, 'GET', '/api/v1/me', { token: third.token }));
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: reg.token }), 200);
      await login(srv, reg.email, 'second new passphrase');
      // another user's token is untouched
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: otherPat.token }), 200);
      // a new token works again afterwards
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: (await createToken(srv, reg.token)).token }), 200);
    });

    it('revoke_tokens must be a boolean (422 naming it), changing nothing', async () => {
      const reg = await register(srv);
      const pat = await createToken(srv, reg.token);
      for (const v of ['true', 1, null, []]) {
        expect422(await api(srv, 'POST', '/api/v1/auth/password', { token: reg.token, body: { current_password: PASSWORD, new_password: 'another good passphrase', revoke_tokens: v } }), 'revoke_tokens');
      }
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: pat.token }), 200);
      await login(srv, reg.email, PASSWORD);
    });
  });

  describe('personal access tokens', () => {
    it('creates a token (201) shown only once, listed without secrets', async () => {
      const reg = await register(srv);
      const t0 = Date.now();
      const r = await api(srv, 'POST', '/api/v1/tokens', { token: reg.token, body: { name: 'my script', scopes: ['read', 'write'] } });
      expectStatus(r, 201);
      const tok = r.json;
      assert.deepEqual(Object.keys(tok).sort(), withAdded(TOKEN_KEYS, [...TOKEN_KEYS_ADDED, 'token']));
      assert.equal(tok.subject_ids, null, 'unrestricted');
      assert.match(tok.id, UUID_RE);
      assert.equal(tok.name, 'my script');
      assert.deepEqual([...tok.scopes].sort(), ['read', 'write']);
      assert.match(tok.token, /^pat_[A-Za-z0-9._~+/=-]{16,}$/);
      assert.match(tok.created_at, TS_RE);
      near(tok.created_at, t0, 60000, 'created_at');
      assert.equal(tok.expires_at, null);
      assert.equal(tok.last_used_at, null);
      const t2 = await createToken(srv, reg.token, { name: 'reader', scopes: ['read'], expires_in_days: 30 });
      assert.match(t2.expires_at, TS_RE);
      near(t2.expires_at, t0 + 30 * 86400e3, 120000, 'expires_at = now + 30 days');
      assert.notEqual(t2.token, tok.token);
      const list = expectStatus(await api(srv, 'GET', '/api/v1/tokens', { token: reg.token }), 200);
      assert.deepEqual(Object.keys(list.json), ['items']);
      assert.equal(list.json.items.length, 2);
      for (const it of list.json.items) assert.deepEqual(Object.keys(it).sort(), withAdded(TOKEN_KEYS, TOKEN_KEYS_ADDED));
      assert.deepEqual(list.json.items.map((x) => x.id).sort(), [tok.id, t2.id].sort());
      assert.ok(!list.text.includes(tok.token) && !list.text.includes(t2.token), 'no secret in the list');
      assert.ok(!list.text.includes(tok.token.slice(4)), 'no secret body in the list');
      const listed = list.json.items.find((x) => x.id === t2.id);
      assert.equal(listed.name, 'reader');
      assert.deepEqual(listed.scopes, ['read']);
      assert.equal(listed.expires_at, t2.expires_at);
      // both work
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: tok.token }), 200);
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: t2.token }), 200);
      // and the cookie may list them too
      expectStatus(await api(srv, 'GET', '/api/v1/tokens', { cookie: reg.token, origin: null }), 200);
    });

    it('validates name, scopes and expires_in_days with 422', async () => {
      const reg = await register(srv);
      const mk = (body) => api(srv, 'POST', '/api/v1/tokens', { token: reg.token, body });
      expect422(await mk({ name: 'x', scopes: [] }), 'scopes');
      expect422(await mk({ name: 'x', scopes: ['admin'] }), 'scopes');
      expect422(await mk({ name: 'x', scopes: ['read', 'read'] }), 'scopes');
      expect422(await mk({ name: 'x', scopes: ['READ'] }), 'scopes');
      expect422(await mk({ name: 'x', scopes: 'read' }), 'scopes');
      expect422(await mk({ name: 'x', scopes: [1] }), 'scopes');
      expect422(await mk({ name: 'x', scopes: null }), 'scopes');
      expect422(await mk({ name: 'x' }), 'scopes');
      expect422(await mk({ scopes: ['read'] }), 'name');
      expect422(await mk({ name: '', scopes: ['read'] }), 'name');
      expect422(await mk({ name: 'n'.repeat(101), scopes: ['read'] }), 'name');
      expect422(await mk({ name: 5, scopes: ['read'] }), 'name');
      expect422(await mk({ name: null, scopes: ['read'] }), 'name');
      for (const d of [0, 366, -1, 1.5, '5', null, true]) expect422(await mk({ name: 'x', scopes: ['read'], expires_in_days: d }), 'expires_in_days');
      expect422(await mk({ name: 'x', scopes: ['read'], token: 'pat_mine' }), 'token');
      expect422(await mk({ name: 'x', scopes: ['read'], id: '00000000-0000-0000-0000-000000000001', last_used_at: null, created_at: '2020-01-01T00:00:00Z' }), 'id', 'last_used_at', 'created_at');
      expect422(await mk({ name: 'x', scopes: ['read'], expires_at: '2030-01-01T00:00:00Z' }), 'expires_at');
      expect422(await mk({ name: '', scopes: [], expires_in_days: 0 }), 'name', 'scopes', 'expires_in_days');
      expectProblem(await mk('{"name": "x", "scopes": ['), 400, 'malformed');
      expectProblem(await api(srv, 'POST', '/api/v1/tokens', { token: reg.token, body: { name: 'x', scopes: ['read'] }, contentType: null }), 415, 'unsupported-media-type');
      // nothing was created
      assert.equal(expectStatus(await api(srv, 'GET', '/api/v1/tokens', { token: reg.token }), 200).json.items.length, 0);
      // the bounds are accepted
      for (const [d, name] of [[1, 'n'], [365, 'n'.repeat(100)], [undefined, '🍼'.repeat(100)]]) {
        const t1 = Date.now();
        const t = await createToken(srv, reg.token, { name, scopes: ['write', 'read'], ...(d === undefined ? {} : { expires_in_days: d }) });
        assert.equal(t.name, name);
        if (d === undefined) assert.equal(t.expires_at, null);
        else near(t.expires_at, t1 + d * 86400e3, 120000, `expires_at for ${d} days`);
      }
    });

    it('read-only token: GET allowed, every write refused with 403', async () => {
      const reg = await register(srv);
      const pat = await createToken(srv, reg.token, { scopes: ['read'] });
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: pat.token, origin: null }), 200);
      expectStatus(await api(srv, 'HEAD', '/api/v1/me', { token: pat.token, origin: null }), 200);
      expectStatus(await api(srv, 'GET', '/api/v1/me/export', { token: pat.token, origin: null }), 200);
      expect403(await api(srv, 'PATCH', '/api/v1/me', { token: pat.token, body: { display_name: 'nope' } }));
      expect403(await api(srv, 'DELETE', '/api/v1/me', { token: pat.token, body: { password: PASSWORD } }));
      expect403(await api(srv, 'POST', '/api/v1/tokens', { token: pat.token, body: { name: 'x', scopes: ['read'] } }));
      expect403(await api(srv, 'DELETE', `/api/v1/tokens/${pat.id}`, { token: pat.token }));
      expect403(await api(srv, 'POST', '/api/v1/auth/logout', { token: pat.token }));
      // scope is checked before the body
      expect403(await api(srv, 'PATCH', '/api/v1/me', { token: pat.token, body: '{bad', contentType: 'text/plain' }));
      const me = expectStatus(await api(srv, 'GET', '/api/v1/me', { token: reg.token }), 200);
      assert.equal(me.json.display_name, null);
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: pat.token }), 200);
    });

    it('write-only token: writes allowed, GET /me and the export refused with 403', async () => {
      const reg = await register(srv);
      const pat = await createToken(srv, reg.token, { scopes: ['write'] });
      expect403(await api(srv, 'GET', '/api/v1/me', { token: pat.token }));
      expect403(await api(srv, 'HEAD', '/api/v1/me', { token: pat.token }));
      expect403(await api(srv, 'GET', '/api/v1/me/export', { token: pat.token }));
      // the change is made, but the answer shows nothing a write-only token may not read
      for (const body of [{ daily_target_ml: 900 }, {}]) {
        const r = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: pat.token, origin: null, body }), 204);
        assert.equal(r.text, '', `PATCH ${JSON.stringify(body)} by a write-only token has no body`);
        assert.equal(r.headers['content-type'], undefined);
      }
      assert.equal(expectStatus(await api(srv, 'GET', '/api/v1/me', { token: reg.token }), 200).json.daily_target_ml, 900);
    });

    it('refuses any token on /tokens*, /auth/* and DELETE /me (403)', async () => {
      const reg = await register(srv);
      const pat = await createToken(srv, reg.token, { scopes: ['read', 'write'] });
      const other = await createToken(srv, reg.token, { scopes: ['read'] });
      const sid = expectStatus(await api(srv, 'GET', '/api/v1/auth/sessions', { token: reg.token }), 200).json.items[0].id;
      const o = { token: pat.token, origin: null };
      expect403(await api(srv, 'GET', '/api/v1/tokens', o));
      expect403(await api(srv, 'POST', '/api/v1/tokens', { ...o, body: { name: 'x', scopes: ['read'] } }));
      expect403(await api(srv, 'DELETE', `/api/v1/tokens/${other.id}`, o));
      expect403(await api(srv, 'DELETE', `/api/v1/tokens/${pat.id}`, o));
      expect403(await api(srv, 'GET', '/api/v1/auth/sessions', o));
      expect403(await api(srv, 'DELETE', `/api/v1/auth/sessions/${encodeURIComponent(sid)}`, o));
      expect403(await api(srv, 'POST', '/api/v1/auth/logout', o));
      expect403(await api(srv, 'POST', '/api/v1/auth/password', { ...o, body: { current_password: PASSWORD, new_password: 'a token cannot do this' } }));
      expect403(await api(srv, 'DELETE', '/api/v1/me', { ...o, body: { password: PASSWORD } }));
      // nothing happened
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: reg.token }), 200);
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: other.token }), 200);
      await login(srv, reg.email, PASSWORD);
      assert.equal(expectStatus(await api(srv, 'GET', '/api/v1/tokens', { token: reg.token }), 200).json.items.length, 2);
    });

    it('revoking a token stops it at once; another user\'s token is 404', async () => {
      const reg = await register(srv);
      const other = await register(srv);
      const pat = await createToken(srv, reg.token);
      const theirs = await createToken(srv, other.token);
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: pat.token }), 200);
      expect404(await api(srv, 'DELETE', `/api/v1/tokens/${theirs.id}`, { token: reg.token }));
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: theirs.token }), 200);
      const r = expectStatus(await api(srv, 'DELETE', `/api/v1/tokens/${pat.id}`, { token: reg.token }), 204);
      assert.equal(r.text, '');
      expect401(await api(srv, 'GET', '/api/v1/me', { token: pat.token }));
      expect401(await api(srv, 'PATCH', '/api/v1/me', { token: pat.token, body: { display_name: 'x' } }));
      expect404(await api(srv, 'DELETE', `/api/v1/tokens/${pat.id}`, { token: reg.token }));
      expect404(await api(srv, 'DELETE', '/api/v1/tokens/not-a-uuid', { token: reg.token }));
      expect401(await api(srv, 'DELETE', '/api/v1/tokens/not-a-uuid'));
      expect404(await api(srv, 'DELETE', '/api/v1/tokens/00000000-0000-0000-0000-000000000000', { token: reg.token }));
      assert.equal(expectStatus(await api(srv, 'GET', '/api/v1/tokens', { token: reg.token }), 200).json.items.length, 0);
      // by cookie it needs the Origin
      const pat2 = await createToken(srv, reg.token);
      expect403(await api(srv, 'DELETE', `/api/v1/tokens/${pat2.id}`, { cookie: reg.token, origin: null }));
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: pat2.token }), 200);
      expectStatus(await api(srv, 'DELETE', `/api/v1/tokens/${pat2.id}`, { cookie: reg.token, origin: CORS_ORIGIN }), 204);
      expect401(await api(srv, 'GET', '/api/v1/me', { token: pat2.token }));
    });

    it('an expired token is 401', async () => {
      const reg = await register(srv);
      const pat = await createToken(srv, reg.token, { expires_in_days: 1 });
      psql(`UPDATE api_tokens SET expires_at = now() - interval '1 minute' WHERE id = '${pat.id}'`);
      expect401(await api(srv, 'GET', '/api/v1/me', { token: pat.token }));
      expect401(await api(srv, 'PATCH', '/api/v1/me', { token: pat.token, body: { display_name: 'x' } }));
    });

    it('records last_used_at after use', async () => {
      const reg = await register(srv);
      const pat = await createToken(srv, reg.token, { scopes: ['read'] });
      const t0 = Date.now();
      expectStatus(await api(srv, 'GET', '/api/v1/me', { token: pat.token }), 200);
      let item;
      for (let i = 0; i < 40; i++) {
        item = expectStatus(await api(srv, 'GET', '/api/v1/tokens', { token: reg.token }), 200).json.items.find((x) => x.id === pat.id);
        if (item.last_used_at !== null) break;
        await sleep(100);
      }
      assert.match(String(item.last_used_at), TS_RE);
      near(item.last_used_at, t0, 60000, 'last_used_at');
    });

    it('two users never see each other\'s tokens', async () => {
      const a = await register(srv);
      const b = await register(srv);
      const ta = await createToken(srv, a.token, { name: 'a-token' });
      const tb = await createToken(srv, b.token, { name: 'b-token' });
      const la = expectStatus(await api(srv, 'GET', '/api/v1/tokens', { token: a.token }), 200).json.items;
      const lb = expectStatus(await api(srv, 'GET', '/api/v1/tokens', { token: b.token }), 200).json.items;
      assert.deepEqual(la.map((x) => x.id), [ta.id]);
      assert.deepEqual(lb.map((x) => x.id), [tb.id]);
      const ma = expectStatus(await api(srv, 'GET', '/api/v1/me', { token: ta.token }), 200);
      assert.equal(ma.json.id, a.user.id);
      const mb = expectStatus(await api(srv, 'GET', '/api/v1/me', { token: tb.token }), 200);
      assert.equal(mb.json.id, b.user.id);
    });
  });
});

describe('behind a TLS proxy (PULSE_COOKIE_SECURE=1, PULSE_TRUSTED_PROXIES)', () => {
  const srv = useServer({ ...API_ENV, PULSE_COOKIE_SECURE: '1', PULSE_TRUSTED_PROXIES: '127.0.0.0/8' });

  it('names the session cookie __Host-pulse_session, with Secure, Path=/ and no Domain; reads only that name', async () => {
    const reg = await register(srv);
    const HOST = '__Host-pulse_session';
    for (const r of [reg.res, (await login(srv, reg.email)).res]) {
      assert.equal(sessionCookie(r), null, 'no plain pulse_session cookie behind TLS');
      const c = sessionCookie(r, HOST);
      assert.ok(c, `Set-Cookie: ${r.headers['set-cookie']}`);
      assert.equal(c.value, r.json.token);
      assert.equal(c.attrs.secure, true, c.raw);
      assert.equal(c.attrs.httponly, true, c.raw);
      assert.equal(String(c.attrs.samesite).toLowerCase(), 'lax', c.raw);
      assert.equal(c.attrs.path, '/', c.raw);
      assert.equal(c.attrs.domain, undefined, c.raw);
    }
    // the browser sends back the __Host- cookie: it authenticates (with the Origin check)
    expectStatus(await api(srv, 'GET', '/api/v1/me', { cookie: `${HOST}=${reg.token}`, origin: null }), 200);
    expectStatus(await api(srv, 'PATCH', '/api/v1/me', { cookie: `${HOST}=${reg.token}`, body: { display_name: 'tls' } }), 200);
    expect403(await api(srv, 'PATCH', '/api/v1/me', { cookie: `${HOST}=${reg.token}`, origin: null, body: { display_name: 'x' } }));
    // a plain pulse_session cookie (which a sibling subdomain or a plain-HTTP page could have
    // planted) is not read
    expect401(await api(srv, 'GET', '/api/v1/me', { cookie: `pulse_session=${reg.token}`, origin: null }));
    const out = expectStatus(await api(srv, 'POST', '/api/v1/auth/logout', { cookie: `${HOST}=${reg.token}` }), 204);
    const c = sessionCookie(out, HOST);
    assert.ok(c, `logout clears ${HOST}: ${out.headers['set-cookie']}`);
    assert.equal(c.value, '');
    assert.equal(c.attrs['max-age'], '0');
    assert.equal(c.attrs.secure, true);
    assert.equal(c.attrs.path, '/');
    expect401(await api(srv, 'GET', '/api/v1/me', { cookie: `${HOST}=${reg.token}`, origin: null }));
  });

  it('takes the client IP from X-Forwarded-For: the rightmost hop that is not a trusted proxy', async () => {
    const reg = await register(srv, { headers: { 'User-Agent': 'direct' } });
    await login(srv, reg.email, PASSWORD, { headers: { 'User-Agent': 'one-hop', 'X-Forwarded-For': '203.0.113.9' } });
    await login(srv, reg.email, PASSWORD, { headers: { 'User-Agent': 'spoofed', 'X-Forwarded-For': '198.51.100.7, 203.0.113.10' } });
    await login(srv, reg.email, PASSWORD, { headers: { 'User-Agent': 'two-proxies', 'X-Forwarded-For': '198.51.100.8, 203.0.113.11, 127.0.0.5' } });
    const items = expectStatus(await api(srv, 'GET', '/api/v1/auth/sessions', { token: reg.token }), 200).json.items;
    const ip = Object.fromEntries(items.map((s) => [s.user_agent, s.ip]));
    assert.deepEqual(ip, { direct: '127.0.0.1', 'one-hop': '203.0.113.9', spoofed: '203.0.113.10', 'two-proxies': '203.0.113.11' });
  });
});

describe('two replicas', () => {
  // Revocation reaches the replica that handled it before it answers, and every other
  // replica within 100 ms.
  const a = useServer({ ...API_ENV });
  const b = useServer({ ...API_ENV });

  const use = async (srv, token, n = 3) => { for (let i = 0; i < n; i++) expectStatus(await api(srv, 'GET', '/api/v1/me', { token }), 200); };

  it('logout and session revocation on one replica reach the other within 100 ms', async () => {
    const reg = await register(a);
    const other = await login(a, reg.email, PASSWORD, { headers: { 'User-Agent': 'other' } });
    await use(b, reg.token);
    await use(b, other.token);
    expectStatus(await api(a, 'POST', '/api/v1/auth/logout', { token: reg.token }), 204);
    await sleep(150);
    expect401(await api(b, 'GET', '/api/v1/me', { token: reg.token }));
    const reg2 = await login(b, reg.email);
    const id = expectStatus(await api(b, 'GET', '/api/v1/auth/sessions', { token: reg2.token }), 200).json.items.find((x) => x.user_agent === 'other').id;
    expectStatus(await api(b, 'DELETE', `/api/v1/auth/sessions/${encodeURIComponent(id)}`, { token: reg2.token }), 204);
    await sleep(150);
    expect401(await api(a, 'GET', '/api/v1/me', { token: other.token }));
    expect401(await api(b, 'GET', '/api/v1/me', { token: other.token }));
  });

  it('token revocation, password change and account deletion reach the other replica within 100 ms', async () => {
    const reg = await register(a);
    const second = await login(a, reg.email);
    const pat = await createToken(a, reg.token);
    const pat2 = await createToken(a, reg.token);
    await use(b, pat.token);
    await use(b, pat2.token);
    await use(b, second.token);
    expectStatus(await api(a, 'DELETE', `/api/v1/tokens/${pat.id}`, { token: reg.token }), 204);
    await sleep(150);
    expect401(await api(b, 'GET', '/api/v1/me', { token: pat.token }));
    expectStatus(await api(a, 'POST', '/api/v1/auth/password', { token: reg.token, body: { current_password: PASSWORD, new_password: 'changed on replica a' } }), 204);
    await sleep(150);
    expect401(await api(b, 'GET', '/api/v1/me', { token: second.token }));
    await use(b, reg.token, 1);
    await use(b, pat2.token, 1);
    // a profile change is visible on the other replica at once
    expectStatus(await api(a, 'PATCH', '/api/v1/me', { token: reg.token, body: { display_name: 'from a' } }), 200);
    assert.equal(expectStatus(await api(b, 'GET', '/api/v1/me', { token: pat2.token }), 200).json.display_name, 'from a');
    expectStatus(await api(a, 'DELETE', '/api/v1/me', { token: reg.token, body: { password: 'changed on replica a' } }), 204);
    await sleep(150);
    expect401(await api(b, 'GET', '/api/v1/me', { token: reg.token }));
    expect401(await api(b, 'GET', '/api/v1/me', { token: pat2.token }));
  });
});

describe('credentials at rest', () => {
  // A Redis database of its own so that every key in it belongs to this server.
  const redisUrl = redisUrlWithDb(12);
  before(() => flushRedisDb(redisUrl));
  const srv = useServer({ ...API_ENV, REDIS_URL: redisUrl });

  it('never stores a raw session token, token secret or password', async () => {
    const reg = await register(srv);
    const l = await login(srv, reg.email);
    const pat = await createToken(srv, reg.token);
    expectStatus(await api(srv, 'GET', '/api/v1/me', { token: l.token }), 200);
    const dump = await redisDump(redisUrl);
    assert.ok(dump.length > 0, 'sessions live in Redis');
    const text = JSON.stringify(dump);
    for (const secret of [reg.token, l.token, pat.token, PASSWORD]) {
      assert.ok(!text.includes(secret), 'a raw secret in Redis');
      assert.ok(!text.includes(Buffer.from(secret).toString('hex')), 'a raw secret (hex) in Redis');
    }
    const rows = psql(`SELECT row_to_json(t)::text FROM api_tokens t WHERE id = '${pat.id}'`);
    assert.ok(rows.length > 0);
    assert.ok(!rows.includes(pat.token.slice(4)), 'the token secret in Postgres');
    assert.ok(!rows.includes(Buffer.from(pat.token).toString('hex')), 'the token secret (hex) in Postgres');
    const user = psql(`SELECT row_to_json(u)::text FROM users u WHERE id = '${reg.user.id}'`);
    assert.ok(!user.includes(PASSWORD), 'the password in Postgres');
    assert.match(psql(`SELECT password_hash FROM users WHERE id = '${reg.user.id}'`), /^\$argon2id\$/);
  });
});

describe('Redis unavailable', () => {
  const main = useServer({ ...API_ENV });
  // Redis on a port where nothing listens.
  const srv = useServer(async () => ({ ...API_ENV, REDIS_URL: `redis://127.0.0.1:${await freePort()}/0`, PULSE_RATE_LIMITS: 'on' }));

  it('answers 503 to sessions and keeps serving tokens (Postgres), rate limits in-process', async () => {
    const reg = await register(main);
    const pat = await createToken(main, reg.token, { scopes: ['read', 'write'] });
    for (const o of [{ token: reg.token }, { cookie: reg.token, origin: null }]) {
      const r = await api(srv, 'GET', '/api/v1/me', o);
      expectProblem(r, 503, 'unavailable');
      assert.match(String(r.headers['retry-after']), /^\d+$/);
    }
    expectProblem(await api(srv, 'POST', '/api/v1/auth/login', { body: { email: reg.email, password: PASSWORD } }), 503, 'unavailable');
    let r = expectStatus(await api(srv, 'GET', '/api/v1/me', { token: pat.token }), 200);
    assert.equal(r.json.id, reg.user.id);
    assert.ok(r.headers['ratelimit-limit'], 'rate limits still apply (in-process)');
    r = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: pat.token, body: { display_name: 'no redis' } }), 200);
    assert.equal(r.json.display_name, 'no redis');
    expectStatus(await api(srv, 'GET', '/api/v1/me/export', { token: pat.token }), 200);
  });

  it('login answers the same 503 for a right password, a wrong one and an unknown email; register creates nothing', async () => {
    const reg = await register(main);
    for (const body of [{ email: reg.email, password: PASSWORD }, { email: reg.email, password: 'not the password!' }, { email: uniqueEmail('nobody'), password: PASSWORD }]) {
      const r = await api(srv, 'POST', '/api/v1/auth/login', { body });
      expectProblem(r, 503, 'unavailable');
      assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/);
      assert.equal(r.headers['set-cookie'], undefined);
    }
    const email = uniqueEmail('no-redis');
    expectProblem(await api(srv, 'POST', '/api/v1/auth/register', { body: { email, password: PASSWORD } }), 503, 'unavailable');
    assert.equal(psql(`SELECT count(*) FROM users WHERE email = '${email}'`), '0', 'no account the client was not told about');
    await register(main, { email }); // and the address is still free
  });
});

// Same as lifecycle.test.mjs: the test services script, asynchronous.
function services(...args) {
  return new Promise((resolve, reject) => {
    execFile(requireEnv('PULSE_SERVICES'), ['test', ...args], { timeout: 120000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`services ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve();
    });
  });
}

// /metrics as { 'name{labels}': value }.
async function metrics(srv) {
  const r = expectStatus(await api(srv, 'GET', '/metrics', { origin: null }), 200);
  const out = {};
  for (const l of r.text.split('\n')) {
    if (!l || l.startsWith('#')) continue;
    const i = l.lastIndexOf(' ');
    out[l.slice(0, i)] = Number(l.slice(i + 1));
  }
  return out;
}
const jobs = (m, outcome) => m[`pulse_argon2_jobs_total{outcome="${outcome}"}`];

// An Argon2id cost that takes a couple of seconds here (about 40 ms per pass over 64 MiB),
// so that a hash is still running while a test acts; nothing asserts its duration.
const SLOW_ARGON2 = { PULSE_ARGON2_OPSLIMIT: '48', PULSE_ARGON2_MEMLIMIT: String(64 << 20), PULSE_ARGON2_CONCURRENCY: '1' };

describe('Redis stopped and restarted (the answer to a login never depends on the password)', () => {
  const srv = useServer({ ...API_ENV, ...SLOW_ARGON2 });
  let redisDown = false;
  const redisUp = async () => (await api(srv, 'GET', '/health/ready', { origin: null, check: false })).json?.checks?.redis?.ok;
  const stopRedis = async () => { redisDown = true; await services('stop-redis'); await waitFor(async () => (await redisUp()) === false); };
  const startRedis = async () => { await services('start-redis'); redisDown = false; await waitFor(async () => (await redisUp()) === true); };
  // Redis runs again after each test, whatever happened in it.
  afterEach(async () => { if (redisDown) await startRedis(); });

  it('while Redis is down: 503 for a right password, a wrong one and an unknown email; register creates nothing', async () => {
    const reg = await register(srv);
    await stopRedis();
    for (const body of [{ email: reg.email, password: PASSWORD }, { email: reg.email, password: 'not the password!' }, { email: uniqueEmail('nobody'), password: 'not the password!' }]) {
      const r = await api(srv, 'POST', '/api/v1/auth/login', { body });
      expectProblem(r, 503, 'unavailable');
      assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/);
    }
    const email = uniqueEmail('redis-down');
    expectProblem(await api(srv, 'POST', '/api/v1/auth/register', { body: { email, password: PASSWORD } }), 503, 'unavailable');
    assert.equal(psql(`SELECT count(*) FROM users WHERE email = '${email}'`), '0');
    await startRedis();
    expect401(await api(srv, 'POST', '/api/v1/auth/login', { body: { email: reg.email, password: 'not the password!' } }));
    await login(srv, reg.email);
  });

  it('Redis going away while the password is being checked: a wrong password is 503 too, not 401', async () => {
    const reg = await register(srv);
    const pending = api(srv, 'POST', '/api/v1/auth/login', { body: { email: reg.email, password: 'not the password!' } });
    await waitFor(async () => (await metrics(srv)).pulse_argon2_running === 1, { interval: 20 });
    await stopRedis();
    const r = await pending;
    expectProblem(r, 503, 'unavailable');
    assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/);
    await startRedis();
  });
});

describe('password hashing queue (PULSE_ARGON2_QUEUE, PULSE_ARGON2_WAIT_MS)', () => {
  // One hash at a time, two waiting, for a second at most; a hash takes several seconds
  // (twice SLOW_ARGON2's cost: on a loaded machine noticing that the first hash has started
  // took 900 ms of a 1.9 s hash, and a second login queued then was hashed within its second).
  // `cheap` shares Postgres and Redis and hashes at the test cost, to make accounts.
  const srv = useServer({ ...API_ENV, ...SLOW_ARGON2, PULSE_ARGON2_OPSLIMIT: '96', PULSE_ARGON2_QUEUE: '2', PULSE_ARGON2_WAIT_MS: '1000' });
  const cheap = useServer({ ...API_ENV });

  const idle = () => waitFor(async () => { const m = await metrics(srv); return m.pulse_argon2_running === 0 && m.pulse_argon2_queued === 0; }, { timeout: 30000 });
  const loginBody = () => ({ email: uniqueEmail('burst'), password: 'not the password!' });
  const expect503 = (r) => {
    expectProblem(r, 503, 'unavailable');
    assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/, 'Retry-After');
    assert.ok(Number(r.headers['retry-after']) >= 1);
  };

  it('a burst of logins beyond the queue gets 503 with Retry-After, and /health/live answers throughout', async () => {
    await idle();
    const m0 = await metrics(srv);
    let done = false;
    const burst = Promise.all(Array.from({ length: 10 }, () => api(srv, 'POST', '/api/v1/auth/login', { body: loginBody() })))
      .finally(() => { done = true; });
    const probes = [];
    while (!done) {
      const t0 = Date.now();
      const r = await api(srv, 'GET', '/health/live', { origin: null });
      probes.push({ status: r.status, ms: Date.now() - t0 });
      await sleep(50);
    }
    const rs = await burst;
    const m1 = await metrics(srv);
    const by = (st) => rs.filter((r) => r.status === st);
    assert.deepEqual(rs.filter((r) => r.status !== 401 && r.status !== 503).map((r) => r.status), [], 'only 401 or 503');
    by(503).forEach(expect503);
    // 1 hashing + 2 waiting at most: the other 7 are refused at once, and the waiting ones
    // give up after PULSE_ARGON2_WAIT_MS (a hash lasts longer here)
    assert.ok(by(503).length >= 7, `503s: ${by(503).length}`);
    assert.ok(by(401).length >= 1, 'the request holding the slot is answered');
    const full = jobs(m1, 'queue_full') - jobs(m0, 'queue_full');
    const timedOut = jobs(m1, 'timed_out') - jobs(m0, 'timed_out');
    assert.ok(full >= 7 && timedOut <= 2, `refused as the queue was full: ${full}, after waiting: ${timedOut}`);
    assert.equal(full + timedOut, by(503).length);
    assert.equal(jobs(m1, 'hashed') - jobs(m0, 'hashed'), by(401).length, 'only the 401s were hashed');
    // the loop never hashes: liveness probes answered all along (a generous bound, not a speed)
    assert.ok(probes.length >= 5, `${probes.length} probes during the burst`);
    assert.deepEqual(probes.filter((p) => p.status !== 200), []);
    assert.ok(Math.max(...probes.map((p) => p.ms)) < 2000, `slowest probe ${Math.max(...probes.map((p) => p.ms))} ms`);
    console.log(`# argon2 burst: ${by(401).length} x 401, ${by(503).length} x 503; ${probes.length} /health/live probes, slowest ${Math.max(...probes.map((p) => p.ms))} ms`);
  });

  it('a login that waited longer than PULSE_ARGON2_WAIT_MS is 503 (without hashing)', async () => {
    await idle();
    const m0 = await metrics(srv);
    const first = api(srv, 'POST', '/api/v1/auth/login', { body: loginBody() });
    await waitFor(async () => (await metrics(srv)).pulse_argon2_running === 1, { interval: 20 });
    const second = await api(srv, 'POST', '/api/v1/auth/login', { body: loginBody() });
    expect503(second);
    expect401(await first);
    const m1 = await metrics(srv);
    assert.equal(jobs(m1, 'timed_out') - jobs(m0, 'timed_out'), 1);
    assert.equal(jobs(m1, 'hashed') - jobs(m0, 'hashed'), 1, 'the second login was never hashed');
  });

  it('a waiting job whose client has gone is dropped without hashing', async () => {
    await idle();
    const m0 = await metrics(srv);
    const first = api(srv, 'POST', '/api/v1/auth/login', { body: loginBody() });
    await waitFor(async () => (await metrics(srv)).pulse_argon2_running === 1, { interval: 20 });
    // a second login, queued behind it; its client hangs up while it waits
    const body = JSON.stringify(loginBody());
    const sock = net.connect(srv.port, '127.0.0.1');
    await new Promise((resolve) => sock.on('connect', resolve));
    sock.write(`POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    await waitFor(async () => (await metrics(srv)).pulse_argon2_queued === 1, { interval: 20 });
    sock.destroy();
    expect401(await first);
    await idle();
    const m1 = await metrics(srv);
    assert.equal(jobs(m1, 'client_gone') - jobs(m0, 'client_gone'), 1, 'the departed client\'s job is counted as gone');
    assert.equal(jobs(m1, 'hashed') - jobs(m0, 'hashed'), 1, 'and was never hashed');
    assert.equal(jobs(m1, 'timed_out') - jobs(m0, 'timed_out'), 0);
    expectStatus(await api(srv, 'GET', '/health/live', { origin: null }), 200);
  });

  it('password change and account deletion wait in the same queue: 503 when it is full, nothing changed', async () => {
    const reg = await register(cheap);
    await idle();
    const blockers = [api(srv, 'POST', '/api/v1/auth/login', { body: loginBody() })];
    await waitFor(async () => (await metrics(srv)).pulse_argon2_running === 1, { interval: 20 });
    for (let i = 0; i < 2; i++) blockers.push(api(srv, 'POST', '/api/v1/auth/login', { body: loginBody() }));
    await waitFor(async () => (await metrics(srv)).pulse_argon2_queued === 2, { interval: 20 });
    expect503(await api(srv, 'POST', '/api/v1/auth/password', { token: reg.token, body: { current_password: PASSWORD, new_password: 'never stored passphrase' } }));
    expect503(await api(srv, 'DELETE', '/api/v1/me', { token: reg.token, body: { password: PASSWORD } }));
    expect503(await api(srv, 'POST', '/api/v1/auth/register', { body: { email: uniqueEmail('full'), password: PASSWORD } }));
    await Promise.all(blockers);
    expectStatus(await api(cheap, 'GET', '/api/v1/me', { token: reg.token }), 200);
    await login(cheap, reg.email, PASSWORD);
  });
});

describe('rate limits', () => {
  // A Redis database of its own, flushed first, so that counters of earlier runs (the
  // register limit lasts an hour) do not leak in; a second server without limits on the
  // same Postgres and Redis makes the accounts the tests need.
  const env = {
    ...API_ENV,
    REDIS_URL: redisUrlWithDb(13),
    PULSE_RATE_LIMITS: 'on',
    PULSE_RATE_LOGIN: '3/60',
    PULSE_RATE_LOGIN_IP: '5/60',
    PULSE_RATE_REGISTER: '3/3600',
    PULSE_RATE_READ: '5/60',
    PULSE_RATE_WRITE: '3/60',
    PULSE_RATE_EXPORT: '2/3600',
    PULSE_TRUSTED_PROXIES: '127.0.0.0/8',
  };
  before(() => flushRedisDb(env.REDIS_URL));
  const srv = useServer(env);
  const srv2 = useServer(env);
  const helper = useServer({ ...env, PULSE_RATE_LIMITS: 'off' });

  const rl = (r) => ({
    limit: r.headers['ratelimit-limit'], remaining: r.headers['ratelimit-remaining'], reset: r.headers['ratelimit-reset'],
  });
  function expectHeaders(r, limit, remaining, window) {
    const h = rl(r);
    assert.equal(h.limit, String(limit), `RateLimit-Limit on ${r.method} ${r.path} (${r.status})`);
    if (remaining !== undefined) assert.equal(h.remaining, String(remaining), `RateLimit-Remaining on ${r.method} ${r.path} (${r.status})`);
    assert.match(String(h.reset), /^\d+$/, 'RateLimit-Reset in seconds');
    assert.ok(Number(h.reset) <= window, `RateLimit-Reset ${h.reset} <= ${window}`);
  }
  function expect429(r, limit, window) {
    expectProblem(r, 429, 'rate-limited');
    assert.match(String(r.headers['retry-after']), /^\d+$/, 'Retry-After');
    assert.ok(Number(r.headers['retry-after']) <= window);
    expectHeaders(r, limit, 0, window);
  }
  function expectNoHeaders(r) {
    assert.deepEqual(Object.keys(r.headers).filter((k) => k.startsWith('ratelimit')), [], `${r.method} ${r.path} ${r.status}`);
  }

  it('register: 3 per hour per IP, then 429', async () => {
    for (let i = 0; i < 3; i++) {
      const r = expectStatus(await api(srv, 'POST', '/api/v1/auth/register', { body: { email: uniqueEmail('rl'), password: PASSWORD } }), 201);
      expectHeaders(r, 3, 2 - i, 3600);
    }
    const r = await api(srv, 'POST', '/api/v1/auth/register', { body: { email: uniqueEmail('rl'), password: PASSWORD } });
    expect429(r, 3, 3600);
    assert.ok(Number(r.headers['retry-after']) >= 1);
  });

  it('login: failed attempts count, keyed by IP + email, and 5 per IP in all', async () => {
    const user = await register(helper);
    // IP + email: 3, whether they fail or succeed
    let r = await api(srv, 'POST', '/api/v1/auth/login', { body: { email: user.email, password: 'wrong password!!' } });
    expect401(r);
    expectHeaders(r, 3, 2, 60);
    r = expectStatus(await api(srv, 'POST', '/api/v1/auth/login', { body: { email: user.email, password: PASSWORD } }), 200);
    expectHeaders(r, 3, 1, 60);
    r = await api(srv, 'POST', '/api/v1/auth/login', { body: { email: user.email, password: 'wrong password!!' } });
    expect401(r);
    expectHeaders(r, 3, 0, 60);
    r = await api(srv, 'POST', '/api/v1/auth/login', { body: { email: user.email, password: PASSWORD } });
    expect429(r, 3, 60);
    assert.ok(Number(r.headers['retry-after']) >= 1);
    // another email from the same IP still has budget, until the per-IP limit (5)
    r = await api(srv, 'POST', '/api/v1/auth/login', { body: { email: uniqueEmail('other'), password: PASSWORD } });
    expect401(r);
    // the per-IP limit now has the fewest remaining (0 or 1, depending on whether the
    // refused attempt counted), so the headers describe it
    expectHeaders(r, 5, undefined, 60);
    assert.ok(['0', '1'].includes(r.headers['ratelimit-remaining']), `remaining ${r.headers['ratelimit-remaining']}`);
    let refused = null;
    for (let i = 0; i < 2 && !refused; i++) {
      r = await api(srv, 'POST', '/api/v1/auth/login', { body: { email: uniqueEmail('other'), password: PASSWORD } });
      if (r.status === 429) refused = r;
      else expect401(r);
    }
    assert.ok(refused, 'per-IP login limit reached after 5 attempts');
    expect429(refused, 5, 60);
    r = await api(srv, 'POST', '/api/v1/auth/login', { body: { email: uniqueEmail('more'), password: PASSWORD } });
    expect429(r, 5, 60);
  });

  it('login: the IP + email key uses the normalised email (case and spaces do not buy attempts)', async () => {
    const email = uniqueEmail('variant');
    const xff = { 'X-Forwarded-For': `198.51.100.${10 + Math.floor(Math.random() * 200)}` };
    for (const variant of [email, email.toUpperCase(), `  ${email}  `]) {
      const r = await api(srv, 'POST', '/api/v1/auth/login', { body: { email: variant, password: PASSWORD }, headers: xff });
      expect401(r);
    }
    expect429(await api(srv, 'POST', '/api/v1/auth/login', { body: { email: ` ${email.toUpperCase()}`, password: PASSWORD }, headers: xff }), 3, 60);
    // the client IP of a trusted proxy's X-Forwarded-For has its own budget
    const r = await api(srv, 'POST', '/api/v1/auth/login', { body: { email, password: PASSWORD }, headers: { 'X-Forwarded-For': '192.0.2.77' } });
    expect401(r);
    expectHeaders(r, 3, 2, 60);
  });

  it('reads: 5 per minute per user, headers on every response, Remaining decreasing', async () => {
    const a = await register(helper);
    const b = await register(helper);
    for (let i = 0; i < 5; i++) {
      const r = expectStatus(await api(srv, 'GET', '/api/v1/me', { token: a.token }), 200);
      expectHeaders(r, 5, 4 - i, 60);
    }
    expect429(await api(srv, 'GET', '/api/v1/me', { token: a.token }), 5, 60);
    expect429(await api(srv, 'GET', '/api/v1/me', { cookie: a.token }), 5, 60);
    // per user: another user is not limited
    expectHeaders(expectStatus(await api(srv, 'GET', '/api/v1/me', { token: b.token }), 200), 5, 4, 60);
  });

  it('holds across replicas (two servers share the budget)', async () => {
    const a = await register(helper);
    for (let i = 0; i < 5; i++) {
      const r = expectStatus(await api(i % 2 ? srv2 : srv, 'GET', '/api/v1/me', { token: a.token }), 200);
      expectHeaders(r, 5, 4 - i, 60);
    }
    expect429(await api(srv2, 'GET', '/api/v1/me', { token: a.token }), 5, 60);
    expect429(await api(srv, 'GET', '/api/v1/me', { token: a.token }), 5, 60);
  });

  it('writes: 3 per minute per user, 422s count too', async () => {
    const a = await register(helper);
    let r = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { daily_target_ml: 100 } }), 200);
    expectHeaders(r, 3, 2, 60);
    r = await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { daily_target_ml: -1 } });
    expect422(r, 'daily_target_ml');
    expectHeaders(r, 3, 1, 60);
    r = expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { daily_target_ml: 200 } }), 200);
    expectHeaders(r, 3, 0, 60);
    expect429(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { daily_target_ml: 300 } }), 3, 60);
    const me = expectStatus(await api(helper, 'GET', '/api/v1/me', { token: a.token }), 200);
    assert.equal(me.json.daily_target_ml, 200, 'the refused write did not happen');
  });

  it('export: 2 per hour per user', async () => {
    const a = await register(helper);
    for (let i = 0; i < 2; i++) {
      const r = expectStatus(await api(srv, 'GET', '/api/v1/me/export', { token: a.token }), 200);
      expectHeaders(r, 2, 1 - i, 3600);
    }
    expect429(await api(srv, 'GET', '/api/v1/me/export', { token: a.token }), 2, 3600);
  });

  it('401 and 403 carry no RateLimit-* headers', async () => {
    const a = await register(helper);
    const pat = await createToken(helper, a.token, { scopes: ['read'] });
    let r = await api(srv, 'GET', '/api/v1/me');
    expect401(r);
    expectNoHeaders(r);
    r = await api(srv, 'PATCH', '/api/v1/me', { body: { display_name: 'x' } });
    expect401(r);
    expectNoHeaders(r);
    r = await api(srv, 'PATCH', '/api/v1/me', { token: pat.token, body: { display_name: 'x' } });
    expect403(r);
    expectNoHeaders(r);
    r = await api(srv, 'PATCH', '/api/v1/me', { cookie: a.token, origin: null, body: { display_name: 'x' } });
    expect403(r);
    expectNoHeaders(r);
    r = await api(srv, 'GET', '/api/v1/tokens', { token: pat.token });
    expect403(r);
    expectNoHeaders(r);
    // none of those used the budget
    expectHeaders(expectStatus(await api(srv, 'PATCH', '/api/v1/me', { token: a.token, body: { display_name: 'y' } }), 200), 3, 2, 60);
  });
});

function randomHex(n) {
  return randomBytes(Math.ceil(n / 2)).toString('hex').slice(0, n);
}

// Sends raw body bytes (for invalid UTF-8), resolving { status }.
async function rawUtf8(srv, method, path, bytes) {
  const head = `${method} ${path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`;
  const r = await raw(srv.port, [head + bytes.toString('latin1')], { responses: 1 });
  return r.responses[0];
}
