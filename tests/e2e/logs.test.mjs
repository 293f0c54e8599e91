// Every line pulsed writes on stdout is one JSON object, whatever bytes its inputs hold.
// Each logging path gets a quote, a backslash, a newline, a control byte and invalid UTF-8
// (plus valid UTF-8 that must survive): settings (the config line, "listening"), config
// errors, static file paths, the access log (path, request id, user agent), libpq errors
// (migrations and the pool), Redis errors and the live socket. The whole of stdout must
// decode as UTF-8 and every line must parse.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';

import WebSocket from 'ws';

import { API_ENV, register } from './api.mjs';
import { BIN, ROOT, raw, requireEnv, waitFor } from './helpers.mjs';

// The hostile bytes: " \ newline, tab, 0x01, DEL, a lone continuation byte, 0xff, é.
const HOSTILE = Buffer.concat([Buffer.from('q"b\\c\nd\te'), Buffer.from([0x01, 0x7f, 0x80, 0xff]), Buffer.from('é')]);
// How a correct encoder shows it: invalid bytes as U+FFFD, the rest unchanged.
const DECODED = 'q"b\\c\nd\te\x01\x7f\ufffd\ufffdé';

// `KEY="value"` for a .env file, raw bytes kept (only " \ and newline escaped).
function dotenvLine(key, buf) {
  const parts = [];
  for (const b of buf) {
    if (b === 0x22) parts.push(Buffer.from('\\"'));
    else if (b === 0x5c) parts.push(Buffer.from('\\\\'));
    else if (b === 0x0a) parts.push(Buffer.from('\\n'));
    else parts.push(Buffer.from([b]));
  }
  return Buffer.concat([Buffer.from(`${key}="`), ...parts, Buffer.from('"\n')]);
}

// Runs pulsed with `env` on top of the test services, in `cwd` (whose .env it reads), until
// it exits or `until(lines)` holds (then SIGTERM). Resolves { lines, stdout, stderr, code }.
function run(args, { env = {}, cwd, until, timeout = 20000 } = {}) {
  const dir = cwd || mkdtempSync(path.join(tmpdir(), 'pulse-logs-'));
  const fullEnv = {
    ...process.env,
    DATABASE_URL: requireEnv('DATABASE_URL'),
    REDIS_URL: requireEnv('REDIS_URL'),
    PULSE_LISTEN: '127.0.0.1:0',
    PULSE_WORKERS: '2',
    PULSE_MIGRATIONS_DIR: path.join(ROOT, 'migrations'),
    PULSE_AUTO_MIGRATE: '1',
    PULSE_WEB_ROOT: path.join(ROOT, 'web/dist'),
    PULSE_ARGON2_OPSLIMIT: '1',
    PULSE_ARGON2_MEMLIMIT: '8192',
    PULSE_RATE_LIMITS: 'off',
    PULSE_LOG_LEVEL: 'debug',
    PULSE_SHUTDOWN_DELAY_MS: '0',
    ...API_ENV,
    ...env,
  };
  for (const [k, v] of Object.entries(fullEnv)) if (v === undefined) delete fullEnv[k];
  const child = spawn(BIN, args, { env: fullEnv, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks = [];
  let stderr = '';
  const state = { lines: [], port: null, child };
  let pending = Buffer.alloc(0);
  let stopped = false;
  const check = () => {
    if (!stopped && until && until(state.lines)) {
      stopped = true;
      child.kill('SIGTERM');
    }
  };
  child.stdout.on('data', (d) => {
    chunks.push(d);
    pending = Buffer.concat([pending, d]);
    let i;
    while ((i = pending.indexOf(0x0a)) >= 0) {
      const line = pending.subarray(0, i).toString('utf8');
      pending = pending.subarray(i + 1);
      try {
        const j = JSON.parse(line);
        state.lines.push(j);
        if (j.msg === 'listening') state.port = j.port;
      } catch { state.lines.push({ unparsed: line }); }
    }
    check();
  });
  child.stderr.on('data', (d) => { stderr += d; });
  state.done = new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout: Buffer.concat(chunks), stderr, code, signal, lines: state.lines });
    });
  });
  state.recheck = check;
  return state;
}

// The whole contract of stdout: valid UTF-8, newline-terminated lines, each a JSON object
// with ts, level and msg. Returns the parsed lines.
function parseStdout(stdout) {
  const text = new TextDecoder('utf-8', { fatal: true }).decode(stdout);
  assert.ok(text.length > 0, 'nothing on stdout');
  assert.ok(text.endsWith('\n'), 'stdout ends mid-line');
  return text.slice(0, -1).split('\n').map((line) => {
    let j;
    assert.doesNotThrow(() => { j = JSON.parse(line); }, `not JSON: ${line}`);
    assert.equal(typeof j, 'object', line);
    assert.match(j.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, line);
    assert.ok(['debug', 'info', 'warn', 'error'].includes(j.level), line);
    assert.equal(typeof j.msg, 'string', line);
    return j;
  });
}

function find(lines, msg, pred = () => true) {
  return lines.find((l) => l.msg === msg && pred(l));
}

// A web root whose own name and whose files' names are hostile.
function hostileWebRoot() {
  const base = mkdtempSync(path.join(tmpdir(), 'pulse-logs-web-'));
  const root = Buffer.concat([Buffer.from(`${base}/root`), HOSTILE]);
  mkdirSync(root);
  const sub = (name) => Buffer.concat([root, Buffer.from('/'), name]);
  writeFileSync(sub(Buffer.from('index.html')), '<!doctype html><title>x</title>');
  // File names cannot hold control bytes or backslashes the server would serve: quote,
  // 0xff and é it is.
  const name = Buffer.concat([Buffer.from('we"ird'), Buffer.from([0xff]), Buffer.from('é')]);
  writeFileSync(sub(Buffer.concat([name, Buffer.from('.txt')])), 'hello');
  // A link out of the root: skipped with a warning naming it.
  symlinkSync('/etc/hostname', sub(Buffer.concat([Buffer.from('out'), name])));
  // A .gz older than its file: ignored with a warning.
  const js = sub(Buffer.concat([name, Buffer.from('.js')]));
  writeFileSync(js, 'console.log(1);'.repeat(50));
  writeFileSync(Buffer.concat([js, Buffer.from('.gz')]), 'x');
  utimesSync(Buffer.concat([js, Buffer.from('.gz')]), 1000, 1000);
  // Folders deeper than the walk goes.
  let deep = root;
  for (let i = 0; i < 18; i++) {
    deep = Buffer.concat([deep, Buffer.from('/'), name]);
    mkdirSync(deep);
  }
  return { base, root };
}

// A peer on a Redis port that answers every command with an error of hostile bytes (real
// Redis never echoes bytes of ours in its errors).
function hostileRedisPeer() {
  const err = Buffer.concat([Buffer.from('-ERR q"b\\c'), Buffer.from([0x01, 0x7f, 0xff]), Buffer.from('é\r\n')]);
  const server = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      // One error per complete RESP array of bulk strings.
      for (;;) {
        let at = 0;
        const readLine = () => {
          const e = buf.indexOf('\r\n', at);
          if (e < 0) return null;
          const l = buf.subarray(at, e).toString('latin1');
          at = e + 2;
          return l;
        };
        const head = readLine();
        if (head === null) return;
        const n = Number(head.slice(1));
        let complete = true;
        for (let k = 0; k < n && complete; k++) {
          const len = readLine();
          if (len === null || buf.length < at + Number(len.slice(1)) + 2) complete = false;
          else at += Number(len.slice(1)) + 2;
        }
        if (!complete) return;
        buf = buf.subarray(at);
        sock.write(err);
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function hostileDatabaseUrl(name = 'DATABASE_URL') {
  const u = new URL(process.env[name] || requireEnv('DATABASE_URL'));
  u.pathname = `/${[...HOSTILE].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')}`;
  return u.toString();
}

describe('every stdout line is JSON', () => {
  it('settings, static paths, access log and live socket with hostile bytes', async () => {
    const { base, root } = hostileWebRoot();
    const cwd = mkdtempSync(path.join(tmpdir(), 'pulse-logs-'));
    // Settings with raw bytes go through .env (the environment cannot carry invalid UTF-8
    // from here); the environment must not override them.
    writeFileSync(path.join(cwd, '.env'), Buffer.concat([dotenvLine('PULSE_INSTANCE', HOSTILE), dotenvLine('PULSE_WEB_ROOT', root)]));
    const p = run(['serve'], { cwd, env: { PULSE_INSTANCE: undefined, PULSE_WEB_ROOT: undefined } });
    try {
      await waitFor(() => p.port, { timeout: 20000 });
      const srv = { port: p.port };
      await waitFor(async () => (await fetch(`http://127.0.0.1:${p.port}/health/ready`)).status === 200);
      // The access log: a hostile path, request id and user agent (a backslash or a control
      // byte in the target is refused before routing: that request logs no path).
      const target = Buffer.concat([Buffer.from('/api/v1/q"b%5C%0A'), Buffer.from([0x80, 0xff]), Buffer.from('é')]).toString('latin1');
      // Header values may not hold control bytes (400): quote, backslash, tab, 0x80-0xff.
      const value = Buffer.concat([Buffer.from('q"b\\c\td'), Buffer.from([0x80, 0xff]), Buffer.from('é')]).toString('latin1');
      const hdrs = `Host: t\r\nX-Request-Id: ${value}\r\nUser-Agent: ${value}\r\n`;
      await raw(p.port, `GET ${target} HTTP/1.1\r\n${hdrs}\r\n`, { responses: 1, timeout: 3000 });
      await raw(p.port, `GET /x\\\x01y HTTP/1.1\r\nUser-Agent: ${HOSTILE.toString('latin1')}\r\n\r\n`, { responses: 1, timeout: 3000 });
      const staticUrl = `/we%22ird%FF${encodeURIComponent('é')}.txt`;
      const r = await fetch(`http://127.0.0.1:${p.port}${staticUrl}`);
      assert.equal(r.status, 200);
      // The live socket: opened and closed by the client with a hostile reason.
      const u = await register(srv);
      const ws = new WebSocket(`ws://127.0.0.1:${p.port}/api/v1/live`, { headers: { Authorization: `Bearer ${u.token}` } });
      await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
      ws.close(4000, 'q"b\\c\n\x01é');
      await new Promise((resolve) => ws.on('close', resolve));
      await waitFor(() => find(p.lines, 'live: socket closed') && find(p.lines, 'request', (l) => l.path?.startsWith('/api/v1/q"b')));
    } finally {
      p.child.kill('SIGTERM');
    }
    const { stdout, code } = await p.done;
    rmSync(base, { recursive: true, force: true });
    const lines = parseStdout(stdout);
    assert.equal(code, 0);
    const decodedRoot = new TextDecoder().decode(root);
    assert.equal(find(lines, 'config')?.PULSE_INSTANCE, DECODED);
    assert.equal(find(lines, 'config')?.PULSE_WEB_ROOT, decodedRoot);
    assert.equal(find(lines, 'listening')?.instance, DECODED);
    assert.equal(find(lines, 'web UI loaded')?.root, decodedRoot);
    assert.ok(find(lines, 'static: path leaves the web root, skipped', (l) => l.path === '/outwe"ird\ufffdé'), 'symlink warning');
    assert.ok(find(lines, 'static: .gz older than its file, ignored', (l) => l.path === '/we"ird\ufffdé.js'), '.gz warning');
    assert.ok(find(lines, 'static: folder too deep, skipped', (l) => l.path.startsWith('/we"ird\ufffdé/')), 'depth warning');
    const access = find(lines, 'request', (l) => l.path.startsWith('/api/v1/q"b'));
    assert.equal(access.path, '/api/v1/q"b%5C%0A\ufffd\ufffdé');
    assert.equal(access.status, 400); // %5C and %0A: a malformed path, logged as sent
    assert.ok(find(lines, 'request', (l) => l.path === '/we%22ird%FF%C3%A9.txt' && l.status === 200), 'static access line');
    assert.ok(find(lines, 'live: socket closed', (l) => l.code === 4000));
    assert.ok(find(lines, 'stopped'));
  });

  it('config errors', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'pulse-logs-'));
    writeFileSync(path.join(cwd, '.env'), dotenvLine('PULSE_LOG_LEVEL', HOSTILE));
    const { stdout, stderr, code } = await run(['serve'], { cwd, env: { PULSE_LOG_LEVEL: undefined } }).done;
    assert.equal(code, 2, stderr);
    const lines = parseStdout(stdout);
    const e = find(lines, 'config invalid');
    assert.ok(e, 'the config error is logged');
    assert.equal(e.level, 'error');
    assert.ok(e.error.startsWith(`invalid PULSE_LOG_LEVEL=${DECODED}`), e.error);
  });

  it('libpq errors from migrations and the pool', async () => {
    // Both roles' URLs name a database that does not exist; libpq's error quotes its name.
    const env = { DATABASE_URL: hostileDatabaseUrl(), PULSE_MIGRATE_DATABASE_URL: hostileDatabaseUrl('PULSE_MIGRATE_DATABASE_URL') };
    // `pulsed migrate`: the error ends the command.
    let res = await run(['migrate'], { env }).done;
    assert.equal(res.code, 1, res.stderr);
    let lines = parseStdout(res.stdout);
    const failed = find(lines, 'migrate failed');
    assert.ok(failed?.error.includes('q"b\\c'), JSON.stringify(failed));
    // `pulsed serve`: the migration check retries and the pool reports its failures.
    const p = run(['serve'], {
      env,
      until: (ls) => find(ls, 'migration check failed, retrying') && find(ls, 'pg connect failed'),
    });
    res = await p.done;
    lines = parseStdout(res.stdout);
    assert.ok(find(lines, 'postgres unreachable: serving, not ready, checking again every 2 s', (l) => l.error.includes('q"b\\c')));
    assert.ok(find(lines, 'migration check failed, retrying', (l) => l.error.includes('q"b\\c')));
    assert.ok(find(lines, 'pg connect failed', (l) => l.error.includes('q"b\\c')));
  });

  it('Redis errors', async () => {
    const peer = await hostileRedisPeer();
    const port = peer.address().port;
    try {
      for (const REDIS_URL of [`redis://127.0.0.1:${port}/0`, `redis://:pw@127.0.0.1:${port}/0`]) {
        const p = run(['serve'], {
          env: { REDIS_URL },
          until: (ls) => ls.some((l) => l.msg?.startsWith('redis') && String(l.error).includes('q"b\\c')),
        });
        const res = await p.done;
        const lines = parseStdout(res.stdout);
        const e = lines.find((l) => l.msg.startsWith('redis') && String(l.error).includes('q"b\\c'));
        assert.ok(e, `no Redis error line for ${REDIS_URL}`);
        assert.ok(e.error.includes('q"b\\c\x01\x7f\ufffdé'), e.error);
      }
    } finally {
      peer.close();
    }
  });
});
