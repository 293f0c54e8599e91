// Fixture for the replica tests: N real `pulsed` processes (startServer: $PULSE_BIN or
// build-asan/pulsed, the Postgres and Redis of the environment) behind a real nginx running
// the project's own config (tests/e2e/nginx.mjs), plus a paced keep-alive load generator.
// Used by replicas.test.mjs; the WebSocket-across-replicas test (live.test.mjs) uses it too.
//
//   const cluster = await startCluster({ env: { ... } });
//   cluster.url('/api/v1/me')           through nginx;  cluster.origin is its origin
//   cluster.replicas[i]                 the startServer handles (port, child, logs, url(), ...)
//   cluster.upstreamOf(res)             index of the replica that answered a response via nginx
//   await cluster.setUpstreams([0, 2])  nginx upstream = those replicas, then reload
//   await cluster.restartReplica(i)     SIGTERM (exit 0 expected), start again on the same port
//   await cluster.stop()                everything down (safe to call twice; also on exit)
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { freePort, startServer } from './helpers.mjs';
import { UPSTREAM_HEADER, startNginx } from './nginx.mjs';

export { UPSTREAM_HEADER, freePort };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// GET on a fresh connection (no pooled socket left behind); resolves the status, 0 when
// the connection failed.
export function statusOf(url, timeout = 2000) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
  });
}

export async function waitReadyAt(url, timeout = 20000) {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    if (await statusOf(url) === 200) return;
    await sleep(50);
  }
  throw new Error(`not ready in ${timeout} ms: ${url}`);
}

// Every child process this module started, ended if node exits without stop() (a failed
// hook, or the test runner's timeout): pulsed with SIGKILL, nginx's master with SIGTERM (it
// then stops its workers itself; killing it outright would leave them holding the port).
const live = new Map();
function killAll() {
  for (const [c, sig] of live) if (c.exitCode === null && c.signalCode === null) c.kill(sig);
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => { killAll(); process.exit(sig === 'SIGINT' ? 130 : 143); });
}
const track = (child, sig = 'SIGKILL') => { live.set(child, sig); child.on('exit', () => live.delete(child)); };

// Settings every replica gets (on top of startServer's): nginx (127.0.0.1) is a trusted
// proxy, the public origin is nginx's, one worker each (as in docker-compose.prod.yml), a
// short shutdown delay and drain so that restarts are quick, no access log.
export function replicaEnv(origin) {
  return {
    PULSE_TRUSTED_PROXIES: '127.0.0.1',
    PULSE_PUBLIC_ORIGIN: origin,
    PULSE_WORKERS: '1',
    PULSE_SHUTDOWN_DELAY_MS: '300',
    PULSE_DRAIN_MS: '5000',
    PULSE_ACCESS_LOG: 'off',
  };
}

export async function startCluster({ replicas = 3, env = {}, nginxWorkers = 2 } = {}) {
  const nginxPort = await freePort();
  const origin = `http://127.0.0.1:${nginxPort}`;
  const fullEnv = { ...replicaEnv(origin), ...env };
  const dir = mkdtempSync(path.join(tmpdir(), 'pulse-replicas-'));
  const cluster = {
    origin, dir, env: fullEnv,
    replicas: new Array(replicas).fill(null),
    ports: [],
    nginx: null,
    url: (p) => `${origin}${p}`,
    replicaUrl: (i, p) => `http://127.0.0.1:${cluster.ports[i]}${p}`,
    // which replica answered (index), from the test-only X-Pulse-Upstream header; with a
    // retry nginx lists every upstream tried ("a:1, b:2"), the last one answered.
    upstreamOf(res) {
      const h = res.headers[UPSTREAM_HEADER.toLowerCase()];
      if (!h) return -1;
      const last = h.split(',').pop().trim();
      return cluster.ports.indexOf(Number(last.split(':').pop()));
    },
    async startReplica(i) {
      const env2 = { ...fullEnv, PULSE_INSTANCE: `pulse${i + 1}` };
      if (cluster.ports[i]) env2.PULSE_LISTEN = `127.0.0.1:${cluster.ports[i]}`;
      const srv = await startServer(env2);
      track(srv.child);
      cluster.replicas[i] = srv;
      cluster.ports[i] = srv.port;
      await waitReadyAt(srv.url('/health/ready'));
      return srv;
    },
    // nginx's upstream = these replicas (indices), reloaded; see nginx.mjs setUpstreams.
    setUpstreams(indices) {
      return cluster.nginx.setUpstreams(indices.map((i) => `127.0.0.1:${cluster.ports[i]}`));
    },
    // SIGTERM (or `signal`), wait for the exit, start again on the same port; resolves
    // { exit: {code, signal}, downMs, startMs }.
    async restartReplica(i, { signal = 'SIGTERM' } = {}) {
      const t0 = Date.now();
      const exit = await cluster.replicas[i].stop(signal);
      const t1 = Date.now();
      await cluster.startReplica(i);
      return { exit, downMs: t1 - t0, startMs: Date.now() - t1 };
    },
    async stop() {
      const out = {};
      if (cluster.nginx) out.nginx = await cluster.nginx.stop();
      out.replicas = await Promise.all(cluster.replicas.map((s) => (s ? s.stop() : null)));
      rmSync(dir, { recursive: true, force: true });
      return out;
    },
  };
  try {
    // in parallel: migrations run under an advisory lock, so concurrent starts are safe
    await Promise.all(cluster.replicas.map((_, i) => cluster.startReplica(i)));
    cluster.nginx = await startNginx({
      dir: path.join(dir, 'nginx'), listenPort: nginxPort, workers: nginxWorkers,
      upstreams: cluster.ports.map((p) => `127.0.0.1:${p}`),
    });
    track(cluster.nginx.child, 'SIGTERM');
    await waitReadyAt(cluster.url('/health/ready'));
  } catch (e) {
    await cluster.stop().catch(() => {});
    throw e;
  }
  return cluster;
}

// A paced load of GETs through keep-alive connections: `rate` requests/s spread over at most
// `concurrency` connections, until stop(). A request counts as failed on a non-2xx status, a
// socket error or a timeout. One exception, as HTTP allows for idempotent requests (RFC 9110
// 9.2.2) and node's docs recommend for reused sockets: a request whose connection the server
// closed before any byte of a response is sent again, once, on a fresh connection; those are
// counted apart (stats.retried, of which stats.retriedFresh were on a new connection). Only
// nginx closes client connections like that: when it reloads, an old worker closes its idle
// keep-alive connections and the ones it accepted but has not read yet. A replica that fails a
// request shows as a 502 from nginx (or a retry on another replica), never as a reset here.
// Returns { stats, inFlight(), stop() -> stats }; stats.failures lists each failure with the
// time it started and ended.
export function startLoad({ url, headers = {}, rate = 300, concurrency = 16, timeout = 10000, agent } = {}) {
  const ag = agent ?? new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const stats = { total: 0, ok: 0, failed: 0, retried: 0, retriedFresh: 0, statuses: {}, errors: {}, failures: [], byUpstream: {}, responses: [] };
  let inFlight = 0;
  let stopping = false;
  const t0 = Date.now();
  const interval = 1000 / rate;
  let seq = 0;

  const once = (fresh) => new Promise((resolve) => {
    const req = http.get(url, { agent: fresh ? false : ag, headers, timeout }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, upstream: res.headers[UPSTREAM_HEADER.toLowerCase()] }));
      res.on('error', (e) => resolve({ error: e.code || e.message, phase: 'body', status: res.statusCode }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (e) => resolve({ error: e.code || e.message, phase: 'request', reused: req.reusedSocket }));
  });

  async function one() {
    const started = Date.now();
    inFlight++;
    let r = await once(false);
    let first;
    if (r.phase === 'request' && ['ECONNRESET', 'EPIPE'].includes(r.error)) {
      stats.retried++;
      if (!r.reused) stats.retriedFresh++;
      first = r;
      r = await once(true);
    }
    inFlight--;
    const ended = Date.now();
    stats.total++;
    if (r.status) stats.statuses[r.status] = (stats.statuses[r.status] || 0) + 1;
    if (r.upstream) stats.byUpstream[r.upstream] = (stats.byUpstream[r.upstream] || 0) + 1;
    stats.responses.push({ started, ended, upstream: r.upstream, status: r.status });
    if (!r.error && r.status >= 200 && r.status < 300) {
      stats.ok++;
    } else {
      stats.failed++;
      if (r.error) stats.errors[r.error] = (stats.errors[r.error] || 0) + 1;
      stats.failures.push({ started, ended, status: r.status, error: r.error, phase: r.phase, reused: r.reused, first });
    }
  }

  const workers = Array.from({ length: concurrency }, async () => {
    while (!stopping) {
      const k = seq++;
      const due = t0 + k * interval;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      if (stopping) break;
      await one();
    }
  });

  return {
    stats,
    inFlight: () => inFlight,
    elapsedMs: () => Date.now() - t0,
    async stop() {
      stopping = true;
      await Promise.all(workers);
      stats.ms = Date.now() - t0;
      if (!agent) ag.destroy();
      return stats;
    },
  };
}
