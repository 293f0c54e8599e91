// The project's own nginx config (deploy/nginx/pulse.conf, what docker-compose.prod.yml runs)
// on loopback: the upstream servers rewritten to 127.0.0.1 ports, the TLS server turned into
// a plain HTTP one on a free port, the port-80 redirect server dropped, logs, pid and temp
// files in a temp dir. Everything else (least_conn, upstream keep-alive, proxy_next_upstream,
// headers, timeouts, locations) is the file as deployed. Every rewrite asserts that it matched,
// so a change to pulse.conf that breaks it fails loudly instead of testing something else.
//
// Used by tests/e2e/replicas.mjs (the replica tests) and, as a command, by
// tests/bench/replicas.sh:
//   node tests/e2e/nginx.mjs conf DIR LISTEN_PORT HOST:PORT[,HOST:PORT...]
// writes DIR/nginx.conf (daemon off) and DIR/pulse.conf and prints the nginx.conf path.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PULSE_CONF = path.join(ROOT, 'deploy/nginx/pulse.conf');
// Added to every proxied response in the test config only: which replica answered.
export const UPSTREAM_HEADER = 'X-Pulse-Upstream';

// Top-level `name ... { ... }` blocks of an nginx config: [{ head, start, end }] where
// text.slice(start, end) is the whole block (head to closing brace). Skips comments and
// quoted strings (log_format holds braces inside quotes).
export function topLevelBlocks(text) {
  const out = [];
  let depth = 0;
  let stmtStart = 0; // where the current top-level statement began
  let blockStart = -1;
  let head = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '#') {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? text.length : nl;
      if (depth === 0 && text.slice(stmtStart, i + 1).trim().startsWith('#')) stmtStart = i + 1;
      continue;
    }
    if (c === '"' || c === "'") {
      for (i++; i < text.length && text[i] !== c; i++) if (text[i] === '\\') i++;
      continue;
    }
    if (c === '{') {
      if (depth === 0) {
        blockStart = stmtStart + (text.slice(stmtStart).length - text.slice(stmtStart).trimStart().length);
        head = text.slice(blockStart, i).trim().replace(/\s+/g, ' ');
      }
      depth++;
    } else if (c === '}') {
      depth--;
      assert.ok(depth >= 0, 'nginx config: unbalanced }');
      if (depth === 0) {
        out.push({ head, start: blockStart, end: i + 1 });
        stmtStart = i + 1;
      }
    } else if (c === ';' && depth === 0) {
      stmtStart = i + 1;
    }
  }
  assert.equal(depth, 0, 'nginx config: unbalanced {');
  return out;
}

const splice = (text, start, end, insert) => text.slice(0, start) + insert + text.slice(end);

// pulse.conf rewritten for loopback. upstreams: ['127.0.0.1:port', ...] (at least one);
// listenPort: the plain-HTTP port the app server listens on (127.0.0.1); dir: where the
// access log goes; upstreamHeader: add `X-Pulse-Upstream: $upstream_addr` to responses.
export function loopbackConf(conf, { upstreams, listenPort, dir, upstreamHeader = true }) {
  assert.ok(upstreams.length >= 1, 'at least one upstream');
  for (const u of upstreams) assert.match(u, /^127\.0\.0\.1:\d+$/);
  let text = conf;

  // 1. the upstream block: its `server pulseN:8080 params;` lines become our ports
  let blocks = topLevelBlocks(text);
  const ups = blocks.filter((b) => /^upstream \w+$/.test(b.head));
  assert.equal(ups.length, 1, 'pulse.conf: exactly one upstream block');
  const upName = ups[0].head.split(' ')[1];
  assert.ok(text.includes(`proxy_pass http://${upName};`), `pulse.conf: proxy_pass http://${upName}`);
  const upText = text.slice(ups[0].start, ups[0].end);
  const serverLine = /^([ \t]*)server[ \t]+(pulse\d+):8080\b([^;\n]*);[^\n]*\n/gm;
  const found = [...upText.matchAll(serverLine)];
  assert.ok(found.length >= 1, 'pulse.conf: upstream lists `server pulseN:8080 ...;` lines');
  assert.equal([...upText.matchAll(/^\s*server\s/gm)].length, found.length, 'pulse.conf: every upstream server line is pulseN:8080');
  const [, indent, , params] = found[0];
  let first = true;
  const newUp = upText.replace(serverLine, () => {
    if (!first) return '';
    first = false;
    return upstreams.map((u) => `${indent}server ${u}${params};\n`).join('');
  });
  text = splice(text, ups[0].start, ups[0].end, newUp);

  // 2. the server blocks: drop the port-80 redirect, turn the TLS one into plain HTTP
  blocks = topLevelBlocks(text);
  const servers = blocks.filter((b) => b.head === 'server');
  assert.equal(servers.length, 2, 'pulse.conf: two server blocks (80 redirect, 443 app)');
  const http80 = servers.find((b) => /^\s*listen\s+80\b/m.test(text.slice(b.start, b.end)));
  const app = servers.find((b) => /^\s*listen\s+443\s+ssl\b/m.test(text.slice(b.start, b.end)));
  assert.ok(http80 && app && http80 !== app, 'pulse.conf: a `listen 80` server and a `listen 443 ssl` server');
  assert.match(text.slice(http80.start, http80.end), /return 301 https:\/\//, 'pulse.conf: the port-80 server only redirects');
  let appText = text.slice(app.start, app.end);
  const listens = [...appText.matchAll(/^[ \t]*listen[ \t][^;]*;[^\n]*\n/gm)];
  assert.ok(listens.length >= 1 && listens.every((m) => /\b443\b/.test(m[0])), 'pulse.conf: the app server listens on 443 only');
  const listenIndent = /^[ \t]*/.exec(listens[0][0])[0];
  let firstListen = true;
  appText = appText.replace(/^[ \t]*listen[ \t][^;]*;[^\n]*\n/gm, () => {
    if (!firstListen) return '';
    firstListen = false;
    const hdr = upstreamHeader ? `${listenIndent}add_header ${UPSTREAM_HEADER} $upstream_addr always;\n` : '';
    return `${listenIndent}listen 127.0.0.1:${listenPort} default_server;\n${hdr}`;
  });
  const sslLines = /^[ \t]*ssl_\w+[ \t][^;]*;[^\n]*\n/gm;
  assert.match(appText, /^\s*ssl_certificate\s/m, 'pulse.conf: ssl_certificate in the app server');
  appText = appText.replace(sslLines, '');
  if (upstreamHeader) {
    // add_header in a location would hide the server-level one there
    for (const loc of appText.matchAll(/location [^{]*\{([^}]*)\}/g)) {
      assert.doesNotMatch(loc[1], /add_header/, 'a location with add_header would drop X-Pulse-Upstream');
    }
  }
  text = splice(text, app.start, app.end, appText);
  blocks = topLevelBlocks(text);
  const http80Again = blocks.filter((b) => b.head === 'server').find((b) => /^\s*listen\s+80\b/m.test(text.slice(b.start, b.end)));
  text = splice(text, http80Again.start, http80Again.end, '# (port-80 redirect server removed for the loopback test)');

  // 3. file paths
  assert.ok(text.includes('/var/log/nginx/'), 'pulse.conf: logs under /var/log/nginx/');
  text = text.replaceAll('/var/log/nginx/', `${dir}/`);

  const directives = text.split('\n').map((l) => l.replace(/#.*$/, '')).join('\n');
  assert.doesNotMatch(directives, /\bssl\b|ssl_|\bhttp2\b/, 'no TLS left');
  assert.doesNotMatch(directives, /\/etc\/nginx\/|\/var\//, 'no system paths left');
  assert.doesNotMatch(directives, /pulse\d+:8080/, 'no compose service names left');
  assert.equal([...directives.matchAll(/^\s*listen\s/gm)].length, 1, 'one listen directive');
  return text;
}

// The nginx.conf around pulse.conf for a run from DIR: pid, error log and temp files in DIR,
// the mime types of Debian's nginx, DIR/pulse.conf included. `workers` null: the test-only
// form (nginx -t) without daemon/worker settings.
export function mainConf(dir, { workers = null } = {}) {
  return [
    ...(workers ? ['daemon off;', 'master_process on;', `worker_processes ${workers};`] : []),
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log notice;`,
    `events { worker_connections ${workers ? 4096 : 512}; }`,
    'http {',
    '    include /etc/nginx/mime.types;',
    `    client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;`,
    `    fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`,
    `    include ${dir}/pulse.conf;`,
    '}',
    '',
  ].join('\n');
}

// Writes DIR/pulse.conf (see loopbackConf) and DIR/nginx.conf that includes it, with pid,
// error log and temp paths in DIR, `daemon off` (the caller owns the process). Returns the
// nginx.conf path.
export function writeNginxConf(dir, { upstreams, listenPort, workers = 2, upstreamHeader = true }) {
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o755); // workers drop to an unprivileged user when started as root
  const conf = fs.readFileSync(PULSE_CONF, 'utf8');
  fs.writeFileSync(path.join(dir, 'pulse.conf'), loopbackConf(conf, { upstreams, listenPort, dir, upstreamHeader }));
  const main = path.join(dir, 'nginx.conf');
  fs.writeFileSync(main, mainConf(dir, { workers }));
  return main;
}

// `nginx -t` on a written config; throws with nginx's message when it is refused.
export function checkNginxConf(dir) {
  const r = spawnSync('nginx', ['-t', '-q', '-p', `${dir}/`, '-c', path.join(dir, 'nginx.conf')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nginx -t refused the generated config: ${r.stderr}${r.error ?? ''}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

// Pids whose parent is `pid` (nginx's workers), from /proc.
export function childPids(pid) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat;
    try { stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8'); } catch { continue; }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[1]) === pid && f[0] !== 'Z') out.push(Number(d));
  }
  return out;
}

// Starts nginx (master + workers) as a child process on the generated config and resolves
// once it accepts on listenPort. Returns { port, dir, child, exited, setUpstreams(list),
// stop() }.
export async function startNginx({ dir, upstreams, listenPort, workers = 2, upstreamHeader = true }) {
  writeNginxConf(dir, { upstreams, listenPort, workers, upstreamHeader });
  checkNginxConf(dir);
  const child = spawn('nginx', ['-p', `${dir}/`, '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const errorLog = () => { try { return fs.readFileSync(path.join(dir, 'error.log'), 'utf8').slice(-3000); } catch { return ''; } };
  const end = Date.now() + 10000;
  while (!(await canConnect(listenPort))) {
    if (child.exitCode !== null || Date.now() > end) {
      child.kill('SIGTERM');
      throw new Error(`nginx did not start: ${stderr} ${errorLog()}`);
    }
    await sleep(20);
  }
  const ngx = {
    port: listenPort, dir, child, exited, errorLog,
    get stderr() { return stderr; },
    workers: () => childPids(child.pid),
    // Rewrites the upstream list and reloads (SIGHUP) the way an operator does; resolves
    // once a new generation of workers runs the new config and the old ones have finished
    // their requests and exited (or after `oldTimeout` ms, for workers held by WebSockets).
    async setUpstreams(list, { oldTimeout = 5000 } = {}) {
      writeNginxConf(dir, { upstreams: list, listenPort, workers, upstreamHeader });
      checkNginxConf(dir);
      const old = new Set(ngx.workers());
      const t0 = Date.now();
      child.kill('SIGHUP');
      for (;;) {
        const now = ngx.workers();
        if (now.filter((p) => !old.has(p)).length >= workers) break;
        if (Date.now() - t0 > 10000) throw new Error(`nginx reload: no new workers in 10 s: ${errorLog()}`);
        await sleep(10);
      }
      while (ngx.workers().some((p) => old.has(p)) && Date.now() - t0 < oldTimeout) await sleep(10);
      return { ms: Date.now() - t0, oldLeft: ngx.workers().filter((p) => old.has(p)).length };
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGQUIT'); // graceful
        const t = setTimeout(() => { // workers first: they outlive a killed master
          for (const p of ngx.workers()) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
          child.kill('SIGKILL');
        }, 5000);
        await exited;
        clearTimeout(t);
      }
      return exited;
    },
  };
  return ngx;
}

// Command line for the benchmarks (see the header).
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const [cmd, dir, port, list] = process.argv.slice(2);
  if (cmd !== 'conf' || !dir || !/^\d+$/.test(port ?? '') || !list) {
    console.error('usage: node tests/e2e/nginx.mjs conf DIR LISTEN_PORT HOST:PORT[,HOST:PORT...]');
    process.exit(2);
  }
  const absDir = path.resolve(dir);
  const main = writeNginxConf(absDir, {
    upstreams: list.split(','), listenPort: Number(port),
    workers: Number(process.env.NGINX_WORKERS || 2), upstreamHeader: false,
  });
  checkNginxConf(absDir);
  console.log(main);
}
