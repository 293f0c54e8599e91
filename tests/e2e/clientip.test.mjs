// The client IP behind trusted proxies (Hardening II, finding 1): X-Forwarded-For is walked
// from the right over every hop, all its header lines count, and an IPv6 client is rate
// limited by its /64. The client never picks the address it is limited under.
//
// Through the shipped nginx (deploy/nginx/pulse.conf: $proxy_add_x_forwarded_for appends the
// real peer), the test client connects from 127.0.0.2 while nginx reaches pulsed from the one
// trusted proxy address, 127.0.0.1, so the real client is an address the server does not
// trust, as on a real network.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import {
  API_ENV, PASSWORD, api, expectProblem, expectStatus, uniqueEmail,
} from './api.mjs';
import { useServer } from './helpers.mjs';
import { startCluster } from './replicas.mjs';

const CLIENT = '127.0.0.2'; // the real client, through nginx
// What a client invents: n documentation addresses, fresh for every request.
const spoofed = (n) => Array.from({ length: n }, () => `198.51.100.${randomInt(1, 255)}`).join(', ');
const hex4 = () => randomInt(0, 0x10000).toString(16);
// A client address unlikely to have been used by an earlier run within the limits' windows.
const someClient = () => `100.${randomInt(64, 128)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;

const LIMITS = {
  PULSE_RATE_LIMITS: 'on',
  PULSE_RATE_LOGIN: '3/60',
  PULSE_RATE_LOGIN_IP: '1000/60',
  PULSE_RATE_REGISTER: '3/3600',
};

function loginAttempt(srv, email, opts = {}) {
  return api(srv, 'POST', '/api/v1/auth/login', { body: { email, password: 'not the password' }, ...opts });
}

async function currentSessionIp(srv, token, opts = {}) {
  const r = expectStatus(await api(srv, 'GET', '/api/v1/auth/sessions', { token, ...opts }), 200);
  return r.json.items.find((s) => s.current).ip;
}

describe('client IP behind the shipped nginx (PULSE_TRUSTED_PROXIES=127.0.0.1)', () => {
  let cluster;
  let via;
  before(async () => {
    cluster = await startCluster({ replicas: 1, env: { ...LIMITS, PULSE_RATE_REGISTER: '1000/3600' } });
    via = { port: cluster.nginx.port };
  });
  after(async () => { if (cluster) await cluster.stop(); });

  it('40 addresses of the client\'s choice in X-Forwarded-For: the login limit still holds for the real client', async () => {
    const email = uniqueEmail('xff40');
    const statuses = [];
    for (let i = 0; i < 5; i++) {
      const r = await loginAttempt(via, email, { localAddress: CLIENT, origin: cluster.origin, headers: { 'X-Forwarded-For': spoofed(40) } });
      statuses.push(r.status);
      if (r.status === 429) expectProblem(r, 429, 'rate-limited');
    }
    assert.deepEqual(statuses, [401, 401, 401, 429, 429], 'keyed by 127.0.0.2 + email, whatever the header says');
    // and several X-Forwarded-For lines of the client's are no way around it either
    const r = await loginAttempt(via, email, { localAddress: CLIENT, origin: cluster.origin, headers: { 'X-Forwarded-For': [spoofed(40), spoofed(3)] } });
    expectProblem(r, 429, 'rate-limited');
  });

  it('the session records the real client, not a hop it sent', async () => {
    const reg = expectStatus(await api(via, 'POST', '/api/v1/auth/register', {
      body: { email: uniqueEmail('xffreg'), password: PASSWORD }, localAddress: CLIENT, origin: cluster.origin,
      headers: { 'X-Forwarded-For': spoofed(40) },
    }), 201);
    assert.equal(await currentSessionIp(via, reg.json.token, { localAddress: CLIENT }), CLIENT);
  });
});

describe('client IP from a trusted peer (PULSE_TRUSTED_PROXIES=127.0.0.1)', () => {
  const srv = useServer({ ...API_ENV, ...LIMITS, PULSE_TRUSTED_PROXIES: '127.0.0.1' });

  it('several X-Forwarded-For lines are one list: the rightmost hop of the last line is the client', async () => {
    const client = someClient();
    const xff = () => [spoofed(2), client]; // the proxy added its own line after the client's
    const reg = expectStatus(await api(srv, 'POST', '/api/v1/auth/register', {
      body: { email: uniqueEmail('xfflines'), password: PASSWORD }, headers: { 'X-Forwarded-For': xff() },
    }), 201);
    assert.equal(await currentSessionIp(srv, reg.json.token), client);
    const email = uniqueEmail('xfflines');
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await loginAttempt(srv, email, { headers: { 'X-Forwarded-For': xff() } })).status);
    assert.deepEqual(statuses, [401, 401, 401, 429]);
  });

  it('more hops than any fixed limit: 40 spoofed, the client, then 40 trusted proxies', async () => {
    const client = someClient();
    const proxies = Array.from({ length: 40 }, () => '127.0.0.1').join(', ');
    const email = uniqueEmail('xffdeep');
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await loginAttempt(srv, email, { headers: { 'X-Forwarded-For': `${spoofed(40)}, ${client}, ${proxies}` } })).status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 429]);
  });

  it('IPv6 clients in one /64 share the login and register limits; another /64 has its own', async () => {
    const net = `2001:db8:${hex4()}:${hex4()}`;
    const other = `2001:db8:${hex4()}:${hex4()}`;
    const hosts = ['::1', '::2', ':ffff:1:2:3', '::abcd'].map((h) => `${net}${h}`);
    // login: IP (by /64) + email
    const email = uniqueEmail('v6');
    const statuses = [];
    for (const h of hosts) statuses.push((await loginAttempt(srv, email, { headers: { 'X-Forwarded-For': h } })).status);
    assert.deepEqual(statuses, [401, 401, 401, 429]);
    const fresh = await loginAttempt(srv, email, { headers: { 'X-Forwarded-For': `${other}::1` } });
    assert.equal(fresh.status, 401);
    assert.equal(fresh.headers['ratelimit-remaining'], '2');
    // register: 3 per hour per /64
    const reg = [];
    let first;
    for (const h of hosts) {
      const r = await api(srv, 'POST', '/api/v1/auth/register', { body: { email: uniqueEmail('v6reg'), password: PASSWORD }, headers: { 'X-Forwarded-For': h } });
      reg.push(r.status);
      if (!first) first = r;
    }
    assert.deepEqual(reg, [201, 201, 201, 429]);
    expectStatus(await api(srv, 'POST', '/api/v1/auth/register', { body: { email: uniqueEmail('v6reg'), password: PASSWORD }, headers: { 'X-Forwarded-For': `${other}::9` } }), 201);
    // the session keeps the whole address: only the limit is by /64
    assert.equal(await currentSessionIp(srv, first.json.token), hosts[0]);
  });
});
