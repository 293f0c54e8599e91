// Query parameters are decoded strictly (Hardening II, finding 6): every parameter of every
// route, in every malformed form (a bad escape, an encoded NUL, given twice where it may be
// given once, an integer spelled another way), answers 400 /problems/malformed and changes
// nothing; the same parameters well formed (also percent-encoded) answer 200, and unknown
// parameters are ignored whatever they hold. Before, `?cursor=%00garbage` and the like read as
// "no cursor" and answered the first page.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import {
  API_ENV, api, createToken, expectProblem, expectStatus, register, rowsOf,
} from './api.mjs';
import { useServer } from './helpers.mjs';

// Malformed spellings of any value: bad escapes and encoded NULs, alone and around text.
const MALFORMED = ['%zz', '%4', '%', '%%%', '%%', '%0', '%g1', '%4g', 'ok%', 'ok%2', '%00', '%00garbage', 'x%00', 'x%00y', '%2500%00'];
// Integers have one spelling: these are not it (well formed as far as escapes go).
const NOT_INTEGERS = ['+5', '%2B5', '%205', '5%20', '05', '005', '5.0', '1e1', '0x5', '-5', '', '%D9%A5', '5%0A', '%095'];

// Every character percent-encoded: what a careful client may send, and it means the same.
const encodeAll = (s) => [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('');

describe('query parameters: strict decoding on every route', () => {
  const srv = useServer({ ...API_ENV });
  let user;
  let pat;
  let cursors;
  let before_;
  before(async () => {
    user = await register(srv);
    pat = (await createToken(srv, user.token, { scopes: ['read', 'write'] })).token;
    for (let i = 0; i < 3; i++) {
      expectStatus(await api(srv, 'POST', '/api/v1/notes', { token: user.token, body: { title: `n${i}`, tags: ['a'] } }), 201);
      expectStatus(await api(srv, 'POST', '/api/v1/feedings', { token: user.token, body: { amount_ml: 10 + i } }), 201);
    }
    const next = async (p) => expectStatus(await api(srv, 'GET', `${p}?limit=1`, { token: user.token }), 200).json.next_cursor;
    cursors = { notes: await next('/api/v1/notes'), feedings: await next('/api/v1/feedings') };
    assert.ok(cursors.notes && cursors.feedings);
    before_ = rowsOf(user.user.id);
  });

  // [path, parameter, a valid value, status of the valid request, options]. live answers
  // 426 to a valid request without Upgrade (authenticated by ?access_token=: the parameter
  // was read and believed); its other credentials are left out so the parameter is read.
  const table = () => [
    ['/api/v1/notes', 'limit', '5', 200],
    ['/api/v1/notes', 'cursor', cursors.notes, 200],
    ['/api/v1/notes', 'pinned', 'true', 200],
    ['/api/v1/notes', 'q', 'n1', 200],
    ['/api/v1/notes', 'tag', 'a', 200, { repeatable: true }],
    ['/api/v1/feedings', 'limit', '5', 200],
    ['/api/v1/feedings', 'cursor', cursors.feedings, 200],
    ['/api/v1/feedings', 'kind', 'food', 200],
    ['/api/v1/feedings', 'from', '2020-01-01T00:00:00Z', 200],
    ['/api/v1/feedings', 'to', '2030-01-01T00:00:00+01:00', 200],
    ['/api/v1/stats/feedings', 'days', '7', 200],
    ['/api/v1/live', 'access_token', pat, 426, { anonymous: true }],
  ];
  const get = (path, query, opts = {}) => api(srv, 'GET', `${path}?${query}`, opts.anonymous ? {} : { token: user.token });

  it('each parameter, well formed, plain or percent-encoded, and beside malformed unknown ones: accepted', async () => {
    const bad = [];
    for (const [path, name, valid, status, opts = {}] of table()) {
      const enc = encodeURIComponent(valid);
      for (const q of [`${name}=${enc}`, `${encodeAll(name)}=${encodeAll(valid)}`, `zz=%zz&${name}=${enc}&%00=%00&x%zz=1&${name}%00=x`]) {
        const r = await get(path, q, opts);
        if (r.status !== status) bad.push(`${path}?${q.slice(0, 80)}: ${r.status} (want ${status})`);
      }
      if (opts.repeatable) {
        const r = await get(path, `${name}=${enc}&${name}=${enc}`, opts);
        if (r.status !== status) bad.push(`${path}?${name} twice: ${r.status} (want ${status})`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it('each parameter malformed (bad escape, %00), alone or after a valid one, or given twice: 400 /problems/malformed', async () => {
    const bad = [];
    let n = 0;
    for (const [path, name, valid, , opts = {}] of table()) {
      const enc = encodeURIComponent(valid);
      const queries = [];
      for (const m of MALFORMED) queries.push(`${name}=${m}`, `${name}=${enc}&${name}=${m}`, `${name}=${m}&${name}=${enc}`, `limit=5&${name}=${m}&zz=1`);
      if (!opts.repeatable) queries.push(`${name}=${enc}&${name}=${enc}`, `${name}=${enc}&${encodeAll(name)}=${enc}`);
      for (const q of queries) {
        const r = await get(path, q, opts);
        n++;
        if (r.status !== 400 || r.json?.type !== '/problems/malformed') {
          bad.push(`${path}?${q.slice(0, 80)}: ${r.status} ${r.json?.type ?? ''}`);
        } else {
          assert.equal(r.headers['content-type'], 'application/problem+json');
          assert.equal(typeof r.json.detail, 'string');
        }
      }
    }
    assert.deepEqual(bad, [], `${bad.length} of ${n} malformed queries were not refused with 400`);
  });

  it('limit and days take one spelling of an integer in range: +5, %205, 05, 5.0, 1e1 ... are 400', async () => {
    const bad = [];
    for (const [path, name, ok] of [['/api/v1/notes', 'limit', '5'], ['/api/v1/feedings', 'limit', '5'], ['/api/v1/stats/feedings', 'days', '7']]) {
      expectStatus(await get(path, `${name}=${ok}`), 200);
      expectStatus(await get(path, `${name}=%3${ok}`), 200); // an encoded digit is still that digit
      for (const v of [...NOT_INTEGERS, '0', name === 'days' ? '366' : '101', '99999999999999999999']) {
        const r = await get(path, `${name}=${v}`);
        if (r.status !== 400) bad.push(`${path}?${name}=${v}: ${r.status}`);
        else expectProblem(r, 400, 'malformed');
      }
    }
    assert.deepEqual(bad, []);
  });

  it('routes that read no parameter ignore them, malformed or not', async () => {
    for (const path of ['/api/v1/me', '/api/v1/feedings/today', '/api/v1/tags', '/api/v1/tokens', '/api/v1/auth/sessions']) {
      expectStatus(await get(path, 'x=%zz&%00=%00&limit=%zz&cursor=%00garbage'), 200);
    }
  });

  it('nothing changed', () => {
    assert.deepEqual(rowsOf(user.user.id), before_);
  });
});
