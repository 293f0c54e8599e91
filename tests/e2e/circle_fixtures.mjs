// Fixtures for the cross-cutting care-circle tests (access, live_circles, migration_v1):
// circles built through the HTTP routes of the contract ("Care circles" in the API
// contract), live sockets that collect their frames, and the waits on them.
import assert from 'node:assert/strict';

import WebSocket from 'ws';

import { api, expectStatus, register } from './api.mjs';

// A subject created by `owner` (a register() result); resolves the subject JSON.
export async function createSubject(srv, owner, body = {}) {
  const r = await api(srv, 'POST', '/api/v1/subjects', { token: owner.token, body: { name: 'Twin A', kind: 'baby', ...body } });
  expectStatus(r, 201);
  assert.equal(r.json.role, 'owner');
  return r.json;
}

// An invitation to `subjectId` made by its owner; resolves the 201 body (with `code`).
export async function invite(srv, owner, subjectId, role = 'caregiver', extra = {}) {
  const r = await api(srv, 'POST', `/api/v1/subjects/${subjectId}/invitations`, { token: owner.token, body: { role, ...extra } });
  expectStatus(r, 201);
  assert.equal(typeof r.json.code, 'string');
  return r.json;
}

// `user` joins `subjectId` with `role` through an invitation of `owner`; resolves the
// accepted subject (with the joiner's role).
export async function join(srv, owner, subjectId, user, role = 'caregiver') {
  const inv = await invite(srv, owner, subjectId, role);
  const r = await api(srv, 'POST', '/api/v1/invitations/accept', { token: user.token, body: { code: inv.code } });
  expectStatus(r, 200);
  assert.equal(r.json.id, subjectId);
  assert.equal(r.json.role, role);
  return r.json;
}

// A circle: an owner with a new subject, and one registered member per role given;
// resolves { owner, subject, members: { role: user } } (users are register() results).
export async function circle(srv, roles = ['caregiver', 'viewer'], { registerOpts = {} } = {}) {
  const owner = await register(srv, { display_name: 'Owner', ...registerOpts });
  const subject = await createSubject(srv, owner);
  const members = {};
  for (const role of roles) {
    const u = await register(srv, { display_name: `A ${role}`, ...registerOpts });
    await join(srv, owner, subject.id, u, role);
    members[role] = u;
  }
  return { owner, subject, members };
}

// ---- live sockets -------------------------------------------------------------------------

// Opens /api/v1/live with a bearer token (or, with `query`, a personal access token in
// ?access_token=) and collects every frame (JSON, with `at` = performance.now() on arrival);
// resolves once the hello frame has arrived.
export async function openSocket(srv, token, { query = false } = {}) {
  const url = `ws://127.0.0.1:${srv.port}/api/v1/live${query ? `?access_token=${encodeURIComponent(token)}` : ''}`;
  const ws = new WebSocket(url, { headers: query ? {} : { Authorization: `Bearer ${token}` }, handshakeTimeout: 10000 });
  const client = { ws, messages: [], closed: null, waiters: [] };
  ws.on('message', (data, isBinary) => {
    const m = isBinary ? { binary: true } : JSON.parse(String(data));
    m.at = performance.now();
    client.messages.push(m);
    for (const w of client.waiters.splice(0)) w();
  });
  ws.on('close', (code, reason) => {
    client.closed = { code, reason: String(reason) };
    for (const w of client.waiters.splice(0)) w();
  });
  await new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('unexpected-response', (req, res) => reject(new Error(`handshake refused: ${res.statusCode}`)));
    ws.on('error', reject);
  });
  await nextFrame(client, (m) => m.type === 'hello');
  // no metrics frames: only events matter here
  ws.send(JSON.stringify({ type: 'unsubscribe', topics: ['metrics'] }));
  return client;
}

// The first frame after index `from` that matches `pred`, waiting up to `timeout` ms.
export async function nextFrame(client, pred, { from = 0, timeout = 5000 } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const m = client.messages.slice(from).find(pred);
    if (m) return m;
    if (client.closed) throw new Error(`socket closed (${client.closed.code}) while waiting`);
    const left = end - Date.now();
    if (left <= 0) throw new Error(`no matching frame in ${timeout} ms; last frames ${JSON.stringify(client.messages.slice(-4))}`);
    await new Promise((r) => { client.waiters.push(r); setTimeout(r, left); });
  }
}

// The event frames received after index `from`.
export const eventsSince = (client, from = 0) => client.messages.slice(from).filter((m) => m.type === 'event');

export function closeSockets(...clients) {
  for (const c of clients) if (c && !c.closed) c.ws.close();
}
