// Client of tests/bench/resume.sh (node, `ws` from tests/e2e/node_modules).
//
//   node resume_client.mjs resume --port P --tokens FILE --sockets N --events E --idle S
//     Per user of FILE (one session token a line): a cursor event, then E events, published
//     into the user's stream in the format of server/events.c (the Lua below: INCR pulse:seq,
//     XADD pulse:stream:<id> <seq>-0 f <frame> t <ms>, PUBLISH; frames padded to the size of a
//     feeding.created frame). Opens N sockets (socket i: user i % users), waits for every
//     hello, stays idle S seconds, then sends {"type":"resume","after":<cursor>} on every
//     socket at once and times each socket to its "resumed" (which must count E, with E
//     event frames before it). Prints one JSON line: {t0, t1, caught_up_ms: {p50,p99,max}, ...}
//     (t0, t1: Date.now() at the resume and when the last socket caught up).
//   node resume_client.mjs probe --port P --token T --seconds S --post-ms M
//     One socket of its own user; POSTs a feeding every M ms for S seconds and times each
//     feeding.created from the POST's start to its arrival. Prints one JSON line per sample:
//     {t, lag_ms}.
//   node resume_client.mjs summary --resume FILE --probe FILE
//     The live lag of the probe's samples before the resume (idle) and during it.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const WebSocket = createRequire(path.join(here, '../e2e/package.json'))('ws');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const args = {};
for (let i = 3; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const mode = process.argv[2];

const pct = (xs, p) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] * 10) / 10;
};

async function http(port, method, p, token, body) {
  const r = await fetch(`http://127.0.0.1:${port}${p}`, {
    method, headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`);
  return r.json();
}

// RESP: commands pipelined on one connection; resolves the replies (bulk strings as text).
function redis(cmds) {
  const u = new URL(process.env.REDIS_URL);
  const enc = (a) => `*${a.length}\r\n${a.map((x) => `$${Buffer.byteLength(String(x))}\r\n${x}\r\n`).join('')}`;
  const all = [['SELECT', (u.pathname || '/0').slice(1) || '0'], ...cmds];
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port || 6379), u.hostname);
    let buf = Buffer.alloc(0);
    const out = [];
    let i = 0;
    s.on('connect', () => s.write(all.map(enc).join('')));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const nl = buf.indexOf('\r\n', i);
        if (nl < 0) break;
        const t = String.fromCharCode(buf[i]);
        const line = buf.toString('utf8', i + 1, nl);
        if (t === '$') {
          const n = Number(line);
          if (n < 0) { out.push(null); i = nl + 2; continue; }
          if (buf.length < nl + 2 + n + 2) break;
          out.push(buf.toString('utf8', nl + 2, nl + 2 + n));
          i = nl + 2 + n + 2;
        } else if (t === '-') {
          reject(new Error(line));
          s.destroy();
          return;
        } else {
          out.push(line);
          i = nl + 2;
        }
      }
      if (out.length >= all.length) { s.destroy(); resolve(out.slice(1)); }
    });
    s.on('error', reject);
  });
}

const PUBLISH_LUA = `
local n = redis.call('INCR', KEYS[1])
local frame = '{"type":"event","event":"feeding.created","subject_id":"' .. ARGV[3] .. '","seq":"' .. n .. '","data":' .. ARGV[1] .. '}'
local t = redis.call('TIME')
redis.call('XADD', KEYS[2], n .. '-0', 'f', frame, 't', t[1] * 1000 + math.floor(t[2] / 1000))
redis.call('PUBLISH', ARGV[2], frame)
return tostring(n)`;

function openSocket(port, token, onMessage) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/live`, { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false });
    let hello = null;
    ws.on('message', (data) => {
      const text = String(data);
      if (!hello) {
        hello = JSON.parse(text);
        ws.send('{"type":"unsubscribe","topics":["metrics"]}');
        resolve({ ws, hello });
        return;
      }
      onMessage(text);
    });
    ws.on('error', reject);
    ws.on('unexpected-response', (req, res) => reject(new Error(`handshake ${res.statusCode}`)));
  });
}

async function resume() {
  const port = Number(args.port);
  const tokens = readFileSync(args.tokens, 'utf8').split('\n').filter(Boolean);
  const sockets = Number(args.sockets);
  const events = Number(args.events);
  const idle = Number(args.idle || 5);
  const users = [];
  for (const token of tokens) {
    const me = await http(port, 'GET', '/api/v1/me', token);
    const id = me.id ?? me.user?.id;
    const subject = me.default_subject_id ?? id;
    const data = JSON.stringify({ id: '00000000-0000-4000-8000-000000000000', subject_id: subject, created_by: id, amount_ml: 120, kind: 'milk', method: 'bottle', duration_s: null, given_at: '2026-01-01T03:00:00.000Z', note: null, created_at: '2026-01-01T03:00:01.000Z', updated_at: '2026-01-01T03:00:01.000Z', version: 1, pad: 'x'.repeat(60) });
    const cmds = [];
    for (let i = 0; i <= events; i++) cmds.push(['EVAL', PUBLISH_LUA, '2', 'pulse:seq', `pulse:stream:${id}`, data, `pulse:user:${id}`, subject]);
    const seqs = [];
    for (let i = 0; i < cmds.length; i += 1000) seqs.push(...(await redis(cmds.slice(i, i + 1000))));
    users.push({ token, id, cursor: seqs[0], last: seqs[seqs.length - 1], frameBytes: data.length + 120 });
  }
  const clients = [];
  for (let i = 0; i < sockets; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(sockets, i + 50); j++) {
      const u = users[j % users.length];
      const c = { u, events: 0, done: null, count: null, bad: 0 };
      batch.push(openSocket(port, u.token, (text) => {
        if (text.startsWith('{"type":"event"')) c.events++;
        else if (text.startsWith('{"type":"resumed"')) { c.done = performance.now(); c.count = JSON.parse(text).count; }
        else if (!text.startsWith('{"type":"subscribed"')) c.bad++;
      }).then((s) => { c.ws = s.ws; if (s.hello.last_seq !== u.last) c.bad++; clients.push(c); }));
    }
    await Promise.all(batch);
  }
  await sleep(idle * 1000);
  const t0 = Date.now();
  const p0 = performance.now();
  for (const c of clients) c.ws.send(JSON.stringify({ type: 'resume', after: c.u.cursor }));
  const deadline = Date.now() + 600000;
  while (clients.some((c) => c.done === null) && Date.now() < deadline) await sleep(20);
  const t1 = Date.now();
  const times = clients.filter((c) => c.done !== null).map((c) => c.done - p0);
  const ok = clients.filter((c) => c.count === events && c.events === events && c.bad === 0).length;
  console.log(JSON.stringify({
    t0, t1, sockets: clients.length, users: users.length, events_per_socket: events,
    frames: clients.reduce((n, c) => n + c.events, 0), complete: ok,
    caught_up_ms: { p50: pct(times, 50), p99: pct(times, 99), max: pct(times, 100) },
    frames_per_s: Math.round(clients.reduce((n, c) => n + c.events, 0) / ((t1 - t0) / 1000)),
  }));
  await sleep(Number(args.after || 3) * 1000);
  for (const c of clients) c.ws.close();
}

async function probe() {
  const port = Number(args.port);
  const token = args.token;
  const me = await http(port, 'GET', '/api/v1/me', token);
  const subject = me.default_subject_id;
  const pending = new Map(); // feeding id -> the POST's start, once the POST answered
  const arrived = new Map(); // feeding id -> arrival, for an event that beat the answer
  const record = (start, at) => console.log(JSON.stringify({ t: Date.now(), lag_ms: Math.round((at - start) * 10) / 10 }));
  const { ws } = await openSocket(port, token, (text) => {
    if (!text.startsWith('{"type":"event"')) return;
    const m = JSON.parse(text);
    const start = pending.get(m.data.id);
    if (start === undefined) {
      arrived.set(m.data.id, performance.now());
      return;
    }
    pending.delete(m.data.id);
    record(start, performance.now());
  });
  const end = Date.now() + Number(args.seconds) * 1000;
  const every = Number(args['post-ms'] || 100);
  while (Date.now() < end) {
    const start = performance.now();
    const f = await http(port, 'POST', '/api/v1/feedings', token, { subject_id: subject, amount_ml: 100 });
    if (arrived.has(f.id)) {
      record(start, arrived.get(f.id));
      arrived.delete(f.id);
    } else {
      pending.set(f.id, start);
    }
    await sleep(every);
  }
  await sleep(1000);
  ws.close();
}

function summary() {
  const r = JSON.parse(readFileSync(args.resume, 'utf8').trim().split('\n').pop());
  const samples = readFileSync(args.probe, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const idle = samples.filter((s) => s.t < r.t0).map((s) => s.lag_ms);
  const during = samples.filter((s) => s.t >= r.t0 && s.t <= r.t1 + 50).map((s) => s.lag_ms);
  console.log(JSON.stringify({ ...r, live_lag_idle_ms: { n: idle.length, p50: pct(idle, 50), p99: pct(idle, 99), max: pct(idle, 100) }, live_lag_during_ms: { n: during.length, p50: pct(during, 50), p99: pct(during, 99), max: pct(during, 100) } }));
}

const modes = { resume, probe, summary };
if (!modes[mode]) {
  console.error('usage: resume_client.mjs resume|probe|summary --...');
  process.exit(2);
}
await modes[mode]();
