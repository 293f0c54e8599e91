// Offline validation of the deployment files: Dockerfile (dockerfile-utils), compose
// (`docker-compose config`), nginx (`nginx -t` on a rewritten copy), Prometheus (promtool),
// the Grafana dashboard (metric names pulsed exposes) and the Kubernetes manifests (the
// Kubernetes OpenAPI schemas bundled in kubernetes-models). Run by tests/deploy/validate.sh.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { validate as validateDockerfile } from 'dockerfile-utils';
import { DockerfileParser } from 'dockerfile-ast';

import { mainConf } from '../e2e/nginx.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const DEPLOY = path.join(ROOT, 'deploy');
const read = (rel) => fs.readFileSync(path.join(ROOT, rel), 'utf8');

let TMP;
before(() => {
    TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-deploy-'));
});
after(() => {
    if (TMP) fs.rmSync(TMP, { recursive: true, force: true });
});

function run(cmd, args, opts = {}) {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, ...opts });
    if (r.error) throw new Error(`${cmd}: ${r.error.message} (run scripts/deps.sh deploy)`);
    return r;
}
function assertOk(r, what) {
    assert.equal(r.status, 0, `${what} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
}

// ---- what pulsed itself defines --------------------------------------------------------

// Settings: every assignment of .env.example (tests/unit/test_config.c keeps it exact).
const SETTINGS = new Set(
    read('.env.example')
        .split('\n')
        .filter((l) => /^[A-Z_][A-Z0-9_]*=/.test(l))
        .map((l) => l.slice(0, l.indexOf('='))),
);
const settingDefault = (name) => {
    const line = read('.env.example')
        .split('\n')
        .find((l) => l.startsWith(name + '='));
    return line === undefined ? undefined : line.slice(name.length + 1);
};

// Metrics: every family pulsed's C sources add to the metrics registry (lib/metrics): each
// `{.type = PL_METRIC_<KIND>, .name = "..."...}` definition, its name after the prefix the
// registry is created with (`pl_metrics_create("pulse_", ...)`) unless PL_METRIC_NO_PREFIX.
function sourceFiles(dir) {
    const out = [];
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) out.push(...sourceFiles(p));
        else if (e.name.endsWith('.c')) out.push(p);
    }
    return out;
}
const SOURCES = [...sourceFiles(path.join(ROOT, 'lib')), ...sourceFiles(path.join(ROOT, 'server'))]
    .map((f) => fs.readFileSync(f, 'utf8'));
const PREFIXES = new Set(SOURCES.flatMap((src) => [...src.matchAll(/pl_metrics_create\("([^"]*)"/g)].map((m) => m[1])));
const METRIC_TYPES = new Map();
for (const src of SOURCES) {
    for (const m of src.matchAll(/\{\s*\.type = PL_METRIC_(COUNTER|GAUGE|HISTOGRAM),\s*\.name = "([a-zA-Z_:][a-zA-Z0-9_:]*)"([^{}]*)\}/g)) {
        const names = /PL_METRIC_NO_PREFIX/.test(m[3]) ? [m[2]] : [...PREFIXES].map((p) => p + m[2]);
        for (const n of names) METRIC_TYPES.set(n, m[1].toLowerCase());
    }
}
const EXPOSED = new Set();
for (const [name, type] of METRIC_TYPES) {
    EXPOSED.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) EXPOSED.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) EXPOSED.add(name + s);
}
// Series Prometheus adds to every scrape target.
const PROMETHEUS_SERIES = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);
// Names the contract (docs/api.md, "Operations") promises: one pulsed does not print yet
// is reported as a todo, not a failure, until its feature lands.
const CONTRACT_METRICS = new Set([
    'pulse_http_requests_total', 'pulse_http_request_duration_seconds_bucket',
    'pulse_http_request_duration_seconds_sum', 'pulse_http_request_duration_seconds_count',
    'pulse_connections', 'pulse_ws_clients', 'pulse_ws_frames_dropped_total',
    'pulse_pg_pool_connections', 'pulse_pg_wait_seconds_bucket', 'pulse_pg_wait_seconds_sum',
    'pulse_pg_wait_seconds_count', 'pulse_redis_errors_total', 'pulse_ratelimit_rejections_total',
    'process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds',
]);

// Metric names in a PromQL expression: drop strings, label matchers, ranges, grouping
// clauses and Grafana variables; what is left and not followed by "(" nor a keyword is one.
const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring',
    'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan']);
function metricNames(expr) {
    const s = expr
        .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
        .replace(/\{[^}]*\}/g, ' ')
        .replace(/\[[^\]]*\]/g, ' ')
        .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
        .replace(/\$\{?\w+\}?/g, ' ');
    const names = new Set();
    for (const m of s.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?/g)) {
        if (m[2] || PROMQL_KEYWORDS.has(m[1].toLowerCase())) continue;
        if (/\d[eE]$/.test(s.slice(Math.max(0, m.index - 2), m.index + 1))) continue; // 1e3
        names.add(m[1]);
    }
    return names;
}

test('pulsed metric names are found in its sources', () => {
    for (const n of ['pulse_http_requests_total', 'pulse_http_request_duration_seconds',
        'pulse_connections', 'pulse_pg_pool_connections', 'pulse_redis_up', 'process_open_fds'])
        assert.ok(METRIC_TYPES.has(n), `no definition of ${n} in lib/ or server/`);
    assert.deepEqual([...metricNames('histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{x=~"5.."}[5m]))) / on (i) b > 1e3')].sort(), ['a_bucket', 'b']);
});

// Metric names of an expression: pulsed's, Prometheus', or (todo) the contract's.
function checkMetrics(t, where, exprs) {
    const pending = new Set();
    for (const expr of exprs) {
        const names = metricNames(expr);
        assert.ok(names.size > 0, `${where}: no metric in ${expr}`);
        for (const n of names) {
            if (EXPOSED.has(n) || PROMETHEUS_SERIES.has(n)) continue;
            assert.ok(CONTRACT_METRICS.has(n), `${where}: ${n} is neither exposed by pulsed nor in the contract (in ${expr})`);
            pending.add(n);
        }
    }
    return pending;
}

// ---- Dockerfile --------------------------------------------------------------------------

describe('Dockerfile', () => {
    const text = read('Dockerfile');
    const df = DockerfileParser.parse(text);
    const instrs = df.getInstructions();
    const froms = df.getFROMs();
    const runtimeStart = froms[froms.length - 1].getRange().start.line;
    const runtime = instrs.filter((i) => i.getRange().start.line >= runtimeStart);
    const build = instrs.filter((i) => i.getRange().start.line < runtimeStart);
    const args = (i) => i.getArgumentsContent() ?? '';
    const one = (list, kw) => {
        const found = list.filter((i) => i.getKeyword() === kw);
        assert.equal(found.length, 1, `expected one ${kw} in the runtime stage, found ${found.length}`);
        return args(found[0]);
    };

    test('dockerfile-utils finds no error', (t) => {
        const diags = validateDockerfile(text, {});
        for (const d of diags) t.diagnostic(`line ${d.range.start.line + 1}: ${d.message} (severity ${d.severity})`);
        const errors = diags.filter((d) => d.severity === 1);
        assert.deepEqual(errors.map((d) => `line ${d.range.start.line + 1}: ${d.message}`), []);
    });

    test('multi-stage: builds on debian:12 with the build packages of deps.sh, runs on debian:12-slim', () => {
        assert.ok(froms.length >= 2, 'one build stage and one runtime stage');
        assert.equal(`${froms[0].getImageName()}:${froms[0].getImageTag()}`, 'debian:12');
        assert.equal(`${froms.at(-1).getImageName()}:${froms.at(-1).getImageTag()}`, 'debian:12-slim');
        const deps = read('scripts/deps.sh').match(/pkgs_build=\(([^)]*)\)/);
        assert.ok(deps, 'pkgs_build in scripts/deps.sh');
        const buildRun = build.filter((i) => i.getKeyword() === 'RUN').map(args).join(' ');
        for (const p of deps[1].split(/\s+/).filter(Boolean))
            assert.match(buildRun, new RegExp(`(^|\\s)${p.replace(/[.+]/g, '\\$&')}(\\s|$)`), `build stage lacks ${p}`);
        assert.match(buildRun, /CMAKE_BUILD_TYPE=Release/);
        // the web UI is built in the image (Debian's node 18 runs its pinned tools)
        assert.match(buildRun, /(^|\s)nodejs(\s|$)/);
        assert.match(buildRun, /npm ci\b.*npm run build/);
    });

    test('runtime: runtime libraries only, non-root, the contract settings', () => {
        const runtimeRun = runtime.filter((i) => i.getKeyword() === 'RUN').map(args).join(' ');
        for (const p of ['libuv1', 'libjansson4', 'libpq5', 'libhiredis0.14', 'libsodium23',
            'libwebsockets17', 'libwebsockets-evlib-uv', 'ca-certificates', 'curl'])
            assert.match(runtimeRun, new RegExp(`\\s${p.replace(/[.]/g, '\\.')}(\\s|$)`), `runtime lacks ${p}`);
        assert.doesNotMatch(runtimeRun, /-dev\b|build-essential|cmake/, 'no build packages at run time');
        const user = one(runtime, 'USER');
        assert.ok(!/^(root|0)(:|$)/.test(user), `USER ${user} is root`);
        assert.match(user, /^\d+(:\d+)?$/, 'numeric USER, so that runAsNonRoot can check it');
        assert.equal(one(runtime, 'WORKDIR'), '/app');
        const env = runtime.filter((i) => i.getKeyword() === 'ENV').map(args).join(' ');
        assert.match(env, /PULSE_LISTEN=0\.0\.0\.0:8080/);
        assert.match(env, /PULSE_MIGRATIONS_DIR=\/app\/migrations/);
        assert.match(env, /PULSE_WEB_ROOT=\/app\/web\/dist/);
        assert.equal(one(runtime, 'EXPOSE'), '8080');
        assert.match(one(runtime, 'HEALTHCHECK'), /curl.*http:\/\/127\.0\.0\.1:8080\/health\/live/);
        assert.equal(one(runtime, 'STOPSIGNAL'), 'SIGTERM');
        assert.deepEqual(JSON.parse(one(runtime, 'ENTRYPOINT')), ['pulsed']);
        assert.deepEqual(JSON.parse(one(runtime, 'CMD')), ['serve']);
        const copies = runtime.filter((i) => i.getKeyword() === 'COPY').map(args).join('\n');
        for (const p of ['/src/build/pulsed', '/src/migrations', '/src/web/dist']) assert.ok(copies.includes(p), `COPY ${p}`);
        // the web COPY must not fail when web/dist was never built
        assert.match(build.map(args).join(' '), /mkdir -p web\/dist/);
    });

    test('.dockerignore keeps out git, builds, node_modules, test artifacts and .env', () => {
        const lines = read('.dockerignore').split('\n').map((l) => l.trim());
        for (const p of ['.git', '.env', '**/node_modules', 'build', 'build-*', 'tests'])
            assert.ok(lines.includes(p), `.dockerignore lacks ${p}`);
        assert.ok(!lines.includes('web') && !lines.includes('web/dist'), 'web/dist must reach the build');
    });
});

// ---- docker-compose.prod.yml ------------------------------------------------------------

const COMPOSE_FILE = path.join(ROOT, 'docker-compose.prod.yml');
const COMPOSE_ENV = path.join(HERE, 'compose.test.env');
// a clean environment: the caller's PULSE_*, DATABASE_URL... must not leak into the check
const cleanEnv = () => ({ PATH: process.env.PATH, HOME: process.env.HOME ?? os.tmpdir() });
function composeConfig(envFile) {
    return run('docker-compose', ['-f', COMPOSE_FILE, '--project-directory', ROOT, '--env-file', envFile, 'config'],
        { env: cleanEnv(), cwd: ROOT });
}
const msOf = (d) => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(String(d));
    assert.ok(m, `duration ${d}`);
    return Number(m[1]) * { ms: 1, s: 1000, m: 60000 }[m[2]];
};
const PULSE_SERVICES = ['pulse1', 'pulse2', 'pulse3'];

describe('docker-compose.prod.yml', () => {
    let cfg;
    before(() => {
        const r = composeConfig(COMPOSE_ENV);
        assertOk(r, 'docker-compose config');
        cfg = YAML.parse(r.stdout);
    });

    test('docker-compose config accepts it with the test env file', () => {
        assert.ok(cfg.services, 'services');
        for (const s of ['nginx', ...PULSE_SERVICES, 'migrate', 'postgres', 'redis', 'prometheus', 'grafana'])
            assert.ok(cfg.services[s], `service ${s}`);
    });

    test('secrets come from .env only: without them compose refuses', () => {
        const empty = path.join(TMP, 'empty.env');
        fs.writeFileSync(empty, '');
        const r = composeConfig(empty);
        assert.notEqual(r.status, 0, 'config must fail without the secrets');
        assert.match(r.stderr, /set [A-Z_]+ in \.env/);
        const raw = fs.readFileSync(COMPOSE_FILE, 'utf8');
        for (const key of ['POSTGRES_PASSWORD', 'POSTGRES_OWNER_PASSWORD', 'POSTGRES_APP_PASSWORD', 'GF_SECURITY_ADMIN_PASSWORD', 'PULSE_METRICS_TOKEN', 'REDISCLI_AUTH']) {
            for (const m of raw.matchAll(new RegExp(`^\\s*${key}:\\s*(.*)$`, 'gm')))
                assert.match(m[1], /^\$\{[A-Z_]+:\?/, `${key} must be a required \${...} from .env`);
        }
    });

    test('every variable compose reads is documented in .env.example', () => {
        const raw = fs.readFileSync(COMPOSE_FILE, 'utf8').replace(/^\s*#.*$/gm, '');
        const example = read('.env.example');
        const used = new Set([...raw.matchAll(/(?<!\$)\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]));
        for (const v of used)
            assert.match(example, new RegExp(`^(# )?${v}=`, 'm'), `${v} is not in .env.example`);
        // compose-only ones are comments, so test_config.c still sees only pulsed settings
        for (const v of used) if (!SETTINGS.has(v)) assert.match(example, new RegExp(`^# ${v}=`, 'm'));
    });

    test('replicas: distinct instances, known settings, after migrate, graceful stop', () => {
        const instances = new Set();
        const subnet = cfg.networks.pulse.ipam.config[0].subnet;
        for (const name of PULSE_SERVICES) {
            const s = cfg.services[name];
            const env = s.environment;
            for (const k of Object.keys(env)) assert.ok(SETTINGS.has(k), `${name}: ${k} is not a pulsed setting`);
            instances.add(env.PULSE_INSTANCE);
            assert.equal(env.PULSE_LISTEN, '0.0.0.0:8080');
            assert.equal(env.PULSE_TRUSTED_PROXIES, subnet, 'trust the compose network');
            assert.equal(s.depends_on.migrate.condition, 'service_completed_successfully');
            assert.equal(s.depends_on.postgres.condition, 'service_healthy');
            assert.equal(s.depends_on.redis.condition, 'service_healthy');
            const budget = Number(env.PULSE_SHUTDOWN_DELAY_MS) + Number(env.PULSE_DRAIN_MS);
            assert.ok(msOf(s.stop_grace_period) > budget, `${name}: stop_grace_period ${s.stop_grace_period} <= delay + drain (${budget} ms)`);
            assert.ok(s.networks.pulse !== undefined);
            assert.ok(s.read_only, 'read-only root file system');
        }
        assert.equal(instances.size, PULSE_SERVICES.length, 'PULSE_INSTANCE distinct');
        assert.deepEqual(cfg.services.migrate.command, ['migrate']);
        for (const k of Object.keys(cfg.services.migrate.environment)) assert.ok(SETTINGS.has(k), `migrate: ${k}`);
    });

    // Issue 12: the service never connects as the superuser nor as the owner of its schema.
    test('Postgres roles: replicas as the service role, migrate as the owner, neither the superuser', () => {
        const userOf = (url) => decodeURIComponent(new URL(url).username);
        const passwordOf = (url) => decodeURIComponent(new URL(url).password);
        const pg = cfg.services.postgres;
        const superuser = pg.environment.POSTGRES_USER ?? 'postgres';
        const sql = fs.readFileSync(path.join(DEPLOY, 'postgres/init-roles.sql'), 'utf8');
        const testEnv = Object.fromEntries(fs.readFileSync(COMPOSE_ENV, 'utf8').split('\n')
            .filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
        const migrateEnv = cfg.services.migrate.environment;
        const owner = userOf(migrateEnv.PULSE_MIGRATE_DATABASE_URL);
        for (const name of [...PULSE_SERVICES, 'migrate']) {
            const env = cfg.services[name].environment;
            const app = userOf(env.DATABASE_URL);
            assert.notEqual(app, superuser, `${name}: DATABASE_URL is the superuser`);
            assert.notEqual(app, owner, `${name}: DATABASE_URL is the schema owner`);
            assert.equal(passwordOf(env.DATABASE_URL), testEnv.POSTGRES_APP_PASSWORD, `${name}: the service role's own password`);
            assert.match(sql, new RegExp(`CREATE ROLE ${app}\\b`), `init-roles.sql creates ${app}`);
            if (name !== 'migrate') assert.equal(env.PULSE_MIGRATE_DATABASE_URL, undefined, `${name} must not hold the owner's URL`);
        }
        assert.notEqual(owner, superuser, 'migrations do not run as the superuser');
        assert.equal(passwordOf(migrateEnv.PULSE_MIGRATE_DATABASE_URL), testEnv.POSTGRES_OWNER_PASSWORD);
        assert.match(sql, new RegExp(`CREATE ROLE ${owner}\\b`));
        assert.match(sql, new RegExp(`ALTER ROLE ${owner} WITH LOGIN NOSUPERUSER`));
        assert.match(sql, new RegExp(`ALTER DATABASE :"DBNAME" OWNER TO ${owner}`));
        // the image runs the roles script on a fresh volume, with the passwords from .env
        const init = pg.volumes.find((v) => (v.target ?? String(v).split(':')[1]) === '/docker-entrypoint-initdb.d/10-pulse-roles.sql');
        assert.ok(init, 'init-roles.sql mounted into /docker-entrypoint-initdb.d');
        assert.match(init.source ?? String(init).split(':')[0], /deploy\/postgres\/init-roles\.sql$/);
        assert.equal(pg.environment.POSTGRES_OWNER_PASSWORD, testEnv.POSTGRES_OWNER_PASSWORD);
        assert.equal(pg.environment.POSTGRES_APP_PASSWORD, testEnv.POSTGRES_APP_PASSWORD);
        assert.match(sql, /\\getenv owner_password POSTGRES_OWNER_PASSWORD/);
        assert.match(sql, /\\getenv app_password POSTGRES_APP_PASSWORD/);
    });

    test('no secret on a command line (ps shows commands, entrypoints and health checks)', () => {
        const secrets = fs.readFileSync(COMPOSE_ENV, 'utf8').split('\n').filter((l) => /^[A-Z_]*(PASSWORD|TOKEN)=/.test(l))
            .map((l) => l.slice(l.indexOf('=') + 1));
        assert.ok(secrets.length >= 6);
        for (const [name, svc] of Object.entries(cfg.services)) {
            const argv = JSON.stringify([svc.command, svc.entrypoint, svc.healthcheck?.test]);
            for (const secret of secrets) assert.ok(!argv.includes(secret), `${name}: a secret on its command line: ${argv}`);
        }
        // redis: the password reaches it through a config file written from the environment
        const redis = cfg.services.redis;
        assert.doesNotMatch(JSON.stringify(redis.command), /--requirepass/);
        assert.match(redis.command.join(' '), /requirepass[^>]*\$\$?REDISCLI_AUTH[^>]*> \/tmp\/redis\.conf/);
        assert.match(redis.command.join(' '), /umask 077/);
        assert.match(redis.command.join(' '), /exec docker-entrypoint\.sh redis-server \/tmp\/redis\.conf/);
    });

    test('postgres 15 and redis 7 with persistence and health checks', () => {
        const pg = cfg.services.postgres;
        assert.match(pg.image, /^postgres:15/);
        assert.ok(pg.volumes.some((v) => v.type === 'volume' ? v.source === 'pgdata' : /^pgdata:/.test(v)), 'named pgdata volume');
        assert.match(JSON.stringify(pg.healthcheck.test), /pg_isready/);
        const redis = cfg.services.redis;
        assert.match(redis.image, /^redis:7/);
        assert.match(JSON.stringify(redis.command), /--appendonly(","| )yes/);
        assert.match(JSON.stringify(redis.healthcheck.test), /redis-cli ping/);
        assert.ok(cfg.volumes.pgdata !== undefined && cfg.volumes.redisdata !== undefined);
    });

    test('nginx upstream and Prometheus targets list exactly the replicas', () => {
        const conf = fs.readFileSync(path.join(DEPLOY, 'nginx/pulse.conf'), 'utf8');
        const upstream = [...conf.matchAll(/^\s*server\s+([\w.-]+):8080\b/gm)].map((m) => m[1]);
        assert.deepEqual(upstream.sort(), PULSE_SERVICES);
        const prom = YAML.parse(fs.readFileSync(path.join(DEPLOY, 'prometheus/prometheus.yml'), 'utf8'));
        const job = prom.scrape_configs.find((j) => j.job_name === 'pulse');
        const targets = job.static_configs.flatMap((c) => c.targets).map((t) => t.replace(/:8080$/, ''));
        assert.deepEqual(targets.sort(), PULSE_SERVICES);
        const mounts = JSON.stringify(cfg.services.nginx.volumes);
        assert.match(mounts, /deploy\/nginx\/pulse\.conf/);
        assert.match(mounts, /\/etc\/nginx\/certs/);
    });
});

// ---- nginx ----------------------------------------------------------------------------------

describe('nginx (deploy/nginx/pulse.conf)', () => {
    const conf = fs.readFileSync(path.join(DEPLOY, 'nginx/pulse.conf'), 'utf8');

    test('nginx -t accepts it (upstreams on 127.0.0.1, a self-signed certificate)', () => {
        const dir = path.join(TMP, 'nginx');
        fs.mkdirSync(path.join(dir, 'logs'), { recursive: true });
        assertOk(run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
            '-subj', '/CN=localhost', '-keyout', path.join(dir, 'privkey.pem'), '-out', path.join(dir, 'fullchain.pem')]), 'openssl req');
        let port = 18081;
        const rewritten = conf
            .replace(/^(\s*server\s+)pulse\d+:8080/gm, (_, p) => `${p}127.0.0.1:${port++}`)
            .replaceAll('/etc/nginx/certs/', dir + '/')
            .replaceAll('/var/log/nginx/', dir + '/logs/');
        assert.equal(port, 18084, 'three upstream servers rewritten');
        fs.writeFileSync(path.join(dir, 'pulse.conf'), rewritten);
        fs.writeFileSync(path.join(dir, 'nginx.conf'), mainConf(dir));
        const r = run('nginx', ['-t', '-p', dir + '/', '-c', path.join(dir, 'nginx.conf')]);
        assertOk(r, 'nginx -t');
        assert.match(r.stderr, /test is successful/);
    });

    test('proxying: HTTP/1.1 keep-alive, least_conn, WebSocket upgrade, forwarded headers', () => {
        const upstream = /upstream\s+\w+\s*\{([^}]*)\}/.exec(conf);
        assert.ok(upstream, 'an upstream block');
        assert.match(upstream[1], /^\s*least_conn;/m);
        assert.match(upstream[1], /^\s*keepalive\s+\d+;/m);
        assert.match(conf, /proxy_http_version 1\.1;/);
        assert.match(conf, /map \$http_upgrade \$(\w+)\s*\{[^}]*default\s+upgrade;[^}]*""\s+"";/);
        assert.match(conf, /location = \/api\/v1\/live\s*\{/);
        assert.match(conf, /proxy_set_header Upgrade \$http_upgrade;/);
        assert.match(conf, /proxy_set_header Connection \$\w+;/);
        assert.match(conf, /proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;/);
        assert.match(conf, /proxy_set_header X-Forwarded-Proto \$scheme;/);
        assert.match(conf, /proxy_set_header X-Request-Id \$\w+;/);
        // a location with its own proxy_set_header would drop every inherited one
        for (const loc of conf.matchAll(/location [^{]*\{([^}]*)\}/g))
            assert.doesNotMatch(loc[1], /proxy_set_header/, 'proxy_set_header only at server level');
    });

    test('TLS server, body limit of pulsed, gzip, timeouts above the WebSocket ping', () => {
        assert.match(conf, /listen 443 ssl/);
        assert.match(conf, /ssl_certificate\s+\/etc\/nginx\/certs\//);
        assert.equal(Number(settingDefault('PULSE_MAX_BODY_BYTES')), 1048576);
        assert.match(conf, /client_max_body_size 1m;/);
        assert.match(conf, /^\s*gzip on;/m);
        const types = /gzip_types([^;]*);/.exec(conf)[1].split(/\s+/);
        for (const t of ['application/json', 'application/javascript', 'text/css']) assert.ok(types.includes(t), `gzip_types ${t}`);
        const reads = [...conf.matchAll(/proxy_read_timeout (\d+)s;/g)].map((m) => Number(m[1]));
        assert.ok(reads.length > 0 && reads.every((s) => s >= 60), 'proxy_read_timeout >= 60 s');
        // upstream keep-alive closes before pulsed's idle timeout
        const ka = /keepalive_timeout (\d+)s;/.exec(/upstream\s+\w+\s*\{([^}]*)\}/.exec(conf)[1]);
        assert.ok(ka && Number(ka[1]) * 1000 < Number(settingDefault('PULSE_IDLE_TIMEOUT_MS')));
    });
});

// ---- Prometheus ---------------------------------------------------------------------------

describe('Prometheus (deploy/prometheus)', () => {
    const rulesFile = path.join(DEPLOY, 'prometheus/alerts.yml');
    const configFile = path.join(DEPLOY, 'prometheus/prometheus.yml');

    test('promtool check rules', () => {
        const r = run('promtool', ['check', 'rules', rulesFile]);
        assertOk(r, 'promtool check rules');
        assert.match(r.stdout, /SUCCESS: \d+ rules found/);
    });

    test('promtool check config (rules and token file in a temp dir)', () => {
        const dir = path.join(TMP, 'prometheus');
        fs.mkdirSync(dir, { recursive: true });
        fs.copyFileSync(rulesFile, path.join(dir, 'alerts.yml'));
        fs.writeFileSync(path.join(dir, 'metrics_token'), 'test-token', { mode: 0o600 });
        const text = fs.readFileSync(configFile, 'utf8');
        assert.ok(text.includes('/etc/prometheus/alerts.yml') && text.includes('/prometheus/metrics_token'));
        fs.writeFileSync(path.join(dir, 'prometheus.yml'), text
            .replaceAll('/etc/prometheus/alerts.yml', path.join(dir, 'alerts.yml'))
            .replaceAll('/prometheus/metrics_token', path.join(dir, 'metrics_token')));
        const r = run('promtool', ['check', 'config', path.join(dir, 'prometheus.yml')]);
        assertOk(r, 'promtool check config');
        assert.match(r.stdout, /SUCCESS/);
    });

    test('promtool test rules: the alerts fire on synthetic series', () => {
        const r = run('promtool', ['test', 'rules', path.join(HERE, 'alerts.test.yml')], { cwd: HERE });
        assertOk(r, 'promtool test rules');
    });

    test('scrapes /metrics with the bearer token; alerts use real metric names', (t) => {
        const prom = YAML.parse(fs.readFileSync(configFile, 'utf8'));
        const job = prom.scrape_configs.find((j) => j.job_name === 'pulse');
        assert.equal(job.metrics_path ?? '/metrics', '/metrics');
        assert.equal(job.authorization.type ?? 'Bearer', 'Bearer');
        assert.ok(job.authorization.credentials_file);
        const rules = YAML.parse(fs.readFileSync(rulesFile, 'utf8')).groups.flatMap((g) => g.rules);
        const alerts = new Map(rules.map((r) => [r.alert, r]));
        for (const a of ['PulseInstanceDown', 'PulseHighLatencyP95', 'PulseHigh5xxRate', 'PulseDbPoolSaturated', 'PulseRedisDown'])
            assert.ok(alerts.has(a), `alert ${a}`);
        assert.match(alerts.get('PulseHighLatencyP95').expr, /pulse_http_request_duration_seconds_bucket/);
        assert.match(alerts.get('PulseHighLatencyP95').expr, /> 0\.5/);
        assert.equal(alerts.get('PulseHighLatencyP95').for, '5m');
        assert.match(alerts.get('PulseHigh5xxRate').expr, /status=~"5\.\."/);
        assert.match(alerts.get('PulseHigh5xxRate').expr, /> 0\.01/);
        assert.match(alerts.get('PulseDbPoolSaturated').expr, /state="busy"/);
        assert.match(alerts.get('PulseDbPoolSaturated').expr, /pulse_pg_waiting/);
        assert.match(alerts.get('PulseRedisDown').expr, /pulse_redis_up\b.*== 0/);
        const pending = checkMetrics(t, 'alerts.yml', rules.map((r) => r.expr));
        assert.deepEqual([...pending], [], 'alerts only on metrics pulsed already exposes');
    });
});

// ---- Grafana ------------------------------------------------------------------------------

describe('Grafana (deploy/grafana)', () => {
    const dash = JSON.parse(fs.readFileSync(path.join(DEPLOY, 'grafana/dashboards/pulse.json'), 'utf8'));
    const panels = dash.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    const ds = YAML.parse(fs.readFileSync(path.join(DEPLOY, 'grafana/provisioning/datasources/prometheus.yml'), 'utf8'));
    const pendingMetrics = new Set();

    test('provisioning: Prometheus datasource and a file provider for the dashboards folder', () => {
        assert.equal(ds.datasources.length, 1);
        assert.equal(ds.datasources[0].type, 'prometheus');
        assert.equal(ds.datasources[0].url, 'http://prometheus:9090');
        const prov = YAML.parse(fs.readFileSync(path.join(DEPLOY, 'grafana/provisioning/dashboards/pulse.yml'), 'utf8'));
        assert.equal(prov.providers[0].type, 'file');
        const compose = fs.readFileSync(COMPOSE_FILE, 'utf8');
        assert.ok(compose.includes(`./deploy/grafana/dashboards:${prov.providers[0].options.path}`), 'the provider reads the mounted folder');
    });

    test('dashboard: panels with queries on the provisioned datasource', () => {
        assert.ok(dash.uid && dash.title && Number.isInteger(dash.schemaVersion));
        assert.ok(panels.length >= 10, `${panels.length} panels`);
        const ids = panels.map((p) => p.id);
        assert.equal(new Set(ids).size, ids.length, 'panel ids unique');
        for (const p of panels) {
            assert.ok(p.targets?.length > 0, `panel "${p.title}" has queries`);
            assert.equal(p.datasource?.uid, ds.datasources[0].uid, `panel "${p.title}" datasource`);
            assert.ok(p.gridPos && p.gridPos.w > 0 && p.gridPos.h > 0);
            for (const t of p.targets) assert.ok(t.expr?.trim(), `panel "${p.title}" target ${t.refId}`);
        }
    });

    test('dashboard queries reference only metrics pulsed exposes (or the contract promises)', (t) => {
        for (const n of checkMetrics(t, 'pulse.json', exprs)) pendingMetrics.add(n);
        const all = new Set(exprs.flatMap((e) => [...metricNames(e)]));
        for (const n of ['pulse_http_requests_total', 'pulse_http_request_duration_seconds_bucket', 'pulse_connections',
            'pulse_ws_clients', 'pulse_pg_pool_connections', 'pulse_pg_waiting', 'pulse_pg_wait_seconds_bucket',
            'pulse_redis_up', 'pulse_redis_errors_total', 'pulse_ratelimit_rejections_total',
            'process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds'])
            assert.ok(all.has(n), `no panel shows ${n}`);
        const text = exprs.join('\n');
        for (const q of ['0.5', '0.95', '0.99']) assert.ok(text.includes(`histogram_quantile(${q},`), `p${q * 100}`);
    });

    // Every metric the contract names is printed by pulsed (the WebSocket ones included).
    test('pulsed exposes every metric the contract names', () => {
        const missing = [...CONTRACT_METRICS].filter((m) => !EXPOSED.has(m)).sort();
        assert.deepEqual(missing, [], 'promised by the contract, not printed by lib/ or server/');
    });
});

// ---- Kubernetes -------------------------------------------------------------------------

const K8S = path.join(DEPLOY, 'k8s');
function k8sDocs() {
    const out = [];
    for (const f of fs.readdirSync(K8S).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort()) {
        for (const doc of YAML.parseAllDocuments(fs.readFileSync(path.join(K8S, f), 'utf8'))) {
            assert.deepEqual(doc.errors, [], `${f}: YAML errors`);
            const obj = doc.toJS();
            if (obj) out.push({ file: f, obj });
        }
    }
    return out;
}
// kubernetes-models/<group>/<version>/<Kind>; the core group is just "v1"
async function modelClass(apiVersion, kind) {
    const mod = await import(`kubernetes-models/${apiVersion}/${kind}`);
    const cls = mod[kind] ?? mod.default;
    assert.equal(typeof cls, 'function', `no model for ${apiVersion} ${kind}`);
    return cls;
}

describe('Kubernetes (deploy/k8s)', () => {
    const docs = k8sDocs();
    const byKind = (kind) => docs.filter((d) => d.obj.kind === kind).map((d) => d.obj);
    const secretNamed = (name) => {
        const s = byKind('Secret').find((x) => x.metadata.name === name);
        assert.ok(s, `Secret ${name}`);
        return s;
    };

    test('every manifest validates against the Kubernetes schemas (kubernetes-models)', async (t) => {
        assert.ok(docs.length >= 9);
        for (const { file, obj } of docs) {
            assert.ok(obj.apiVersion && obj.kind, `${file}: apiVersion and kind`);
            let Cls;
            try {
                Cls = await modelClass(obj.apiVersion, obj.kind);
            } catch (e) {
                assert.fail(`${file}: ${obj.apiVersion} ${obj.kind} is not a known Kubernetes kind (${e.message})`);
            }
            try {
                new Cls(obj).validate();
            } catch (e) {
                assert.fail(`${file} (${obj.kind} ${obj.metadata?.name}): ${e.message}`);
            }
            t.diagnostic(`${file}: ${obj.apiVersion} ${obj.kind} ${obj.metadata?.name} valid`);
        }
    });

    test('a broken manifest is refused (the validator is not a no-op)', async () => {
        const dep = structuredClone(byKind('Deployment')[0]);
        dep.spec.template.spec.containers[0].ports[0].containerPort = 'eighty';
        dep.spec.replicas = '3';
        const Cls = await modelClass('apps/v1', 'Deployment');
        assert.throws(() => new Cls(dep).validate(), /must be integer/);
    });

    test('the kinds asked for are all there, in one namespace, and kustomization lists them', () => {
        for (const k of ['Namespace', 'ConfigMap', 'Deployment', 'Service', 'Ingress',
            'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Job'])
            assert.equal(byKind(k).length, 1, `one ${k}`);
        assert.deepEqual(byKind('Secret').map((x) => x.metadata.name).sort(), ['pulse-migrate-secrets', 'pulse-secrets']);
        assert.ok(byKind('NetworkPolicy').length >= 1, 'NetworkPolicy');
        const ns = byKind('Namespace')[0].metadata.name;
        for (const { file, obj } of docs) if (obj.kind !== 'Namespace') assert.equal(obj.metadata.namespace, ns, `${file} namespace`);
        const kust = YAML.parse(fs.readFileSync(path.join(K8S, 'kustomization.yaml'), 'utf8'));
        assert.equal(kust.kind, 'Kustomization');
        for (const r of kust.resources) assert.ok(fs.existsSync(path.join(K8S, r)), `kustomization lists missing ${r}`);
        const files = [...new Set(docs.map((d) => d.file))];
        for (const f of files) {
            if (f.includes('template')) assert.ok(!kust.resources.includes(f), `${f} must not be applied`);
            else assert.ok(kust.resources.includes(f), `kustomization lacks ${f}`);
        }
        assert.equal(byKind('HorizontalPodAutoscaler')[0].apiVersion, 'autoscaling/v2');
        const pdb = byKind('PodDisruptionBudget')[0].spec;
        assert.ok(pdb.minAvailable === 2 || pdb.maxUnavailable === 1);
    });

    test('ConfigMap and Secrets hold pulsed settings; the Secrets only placeholders', () => {
        const cm = byKind('ConfigMap')[0].data;
        for (const k of Object.keys(cm)) assert.ok(SETTINGS.has(k), `ConfigMap: ${k} is not a pulsed setting`);
        for (const secret of byKind('Secret')) {
            assert.ok(secret.stringData, 'stringData');
            for (const [k, v] of Object.entries(secret.stringData)) {
                assert.ok(SETTINGS.has(k), `Secret: ${k} is not a pulsed setting`);
                assert.match(v, /CHANGE-ME/, `Secret ${k} must be a placeholder`);
            }
        }
        for (const k of ['DATABASE_URL', 'REDIS_URL', 'PULSE_METRICS_TOKEN']) assert.ok(k in secretNamed('pulse-secrets').stringData);
        assert.deepEqual(Object.keys(secretNamed('pulse-migrate-secrets').stringData), ['PULSE_MIGRATE_DATABASE_URL']);
    });

    // Issue 12: the pods connect as a role that owns nothing; only the Job has the owner's URL.
    test('Postgres roles: the pods as the service role, the migration Job as the owner', () => {
        const userOf = (url) => decodeURIComponent(new URL(url).username);
        const app = userOf(secretNamed('pulse-secrets').stringData.DATABASE_URL);
        const owner = userOf(secretNamed('pulse-migrate-secrets').stringData.PULSE_MIGRATE_DATABASE_URL);
        assert.notEqual(app, owner);
        for (const u of [app, owner]) assert.ok(!['postgres', 'root', 'admin'].includes(u), `${u} looks like a superuser`);
        const sql = fs.readFileSync(path.join(DEPLOY, 'postgres/init-roles.sql'), 'utf8');
        for (const u of [app, owner]) assert.match(sql, new RegExp(`CREATE ROLE ${u}\\b`), `init-roles.sql creates ${u}`);
        const secretRefs = (pod) => pod.containers.flatMap((c) => [
            ...(c.envFrom ?? []).map((e) => e.secretRef?.name),
            ...(c.env ?? []).map((e) => e.valueFrom?.secretKeyRef?.name)]).filter(Boolean);
        const dep = byKind('Deployment')[0].spec.template.spec;
        assert.ok(!secretRefs(dep).includes('pulse-migrate-secrets'), 'the pods must not get the owner URL');
        assert.ok(!JSON.stringify(dep).includes('PULSE_MIGRATE_DATABASE_URL'));
        const job = byKind('Job')[0].spec.template.spec;
        assert.ok(secretRefs(job).includes('pulse-migrate-secrets'), 'the Job migrates with PULSE_MIGRATE_DATABASE_URL');
        assert.ok(secretRefs(job).includes('pulse-secrets'), 'the Job reads DATABASE_URL: the role it grants to');
        assert.ok(!('PULSE_MIGRATE_DATABASE_URL' in byKind('ConfigMap')[0].data));
    });

    test('X-Forwarded-For is believed from the ingress controller only, not the whole pod network', () => {
        const cidrs = byKind('ConfigMap')[0].data.PULSE_TRUSTED_PROXIES.split(',').map((c) => c.trim()).filter(Boolean);
        assert.ok(cidrs.length > 0);
        for (const c of cidrs) {
            const [addr, bits] = c.split('/');
            const v6 = addr.includes(':');
            assert.ok(net.isIP(addr), `${c}: an address`);
            const prefix = bits === undefined ? (v6 ? 128 : 32) : Number(bits);
            assert.ok(prefix >= (v6 ? 48 : 16), `${c} trusts too many addresses`);
        }
    });

    test('NetworkPolicy: default deny; pods reachable from the ingress controller and Prometheus only, out to Postgres, Redis and DNS only', () => {
        const pols = byKind('NetworkPolicy');
        const deny = pols.find((p) => Object.keys(p.spec.podSelector).length === 0 || Object.keys(p.spec.podSelector.matchLabels ?? {}).length === 0);
        assert.ok(deny, 'a default-deny policy for the namespace');
        assert.deepEqual([...deny.spec.policyTypes].sort(), ['Egress', 'Ingress']);
        assert.equal(deny.spec.ingress, undefined);
        assert.equal(deny.spec.egress, undefined);
        const selects = (pol, labels) => Object.entries(pol.spec.podSelector.matchLabels ?? {}).every(([k, v]) => labels[k] === v)
            && Object.keys(pol.spec.podSelector.matchLabels ?? {}).length > 0;
        const dep = byKind('Deployment')[0];
        const podLabels = dep.spec.template.metadata.labels;
        const server = pols.filter((p) => selects(p, podLabels));
        assert.equal(server.length, 1, 'one policy for the pods');
        const sp = server[0].spec;
        assert.deepEqual([...sp.policyTypes].sort(), ['Egress', 'Ingress']);
        // in: two peers (ingress controller, Prometheus), each a namespace and pod pair, the HTTP port only
        assert.equal(sp.ingress.length, 1);
        const peers = sp.ingress[0].from;
        assert.equal(peers.length, 2);
        for (const p of peers) {
            assert.ok(p.namespaceSelector?.matchLabels && p.podSelector?.matchLabels, 'namespace and pod selectors together');
            assert.equal(p.ipBlock, undefined);
        }
        const names = peers.map((p) => `${p.namespaceSelector.matchLabels['kubernetes.io/metadata.name']}/${p.podSelector.matchLabels['app.kubernetes.io/name']}`);
        assert.ok(names.some((n) => /ingress/.test(n)), 'the ingress controller');
        assert.ok(names.some((n) => /prometheus/.test(n)), 'Prometheus');
        const port = dep.spec.template.spec.containers[0].ports[0].containerPort;
        assert.deepEqual(sp.ingress[0].ports, [{ protocol: 'TCP', port }]);
        // out: exactly Postgres (5432), Redis (6379) and DNS (53)
        const egressPorts = (spec) => spec.egress.flatMap((r) => {
            assert.ok(r.to?.length > 0 && r.ports?.length > 0, 'every egress rule names its peers and ports');
            return r.ports.map((p) => `${p.protocol}/${p.port}`);
        }).sort();
        assert.deepEqual(egressPorts(sp), ['TCP/53', 'TCP/5432', 'TCP/6379', 'UDP/53']);
        // the Job: nothing in, Postgres and DNS out
        const jobLabels = byKind('Job')[0].spec.template.metadata.labels;
        const job = pols.filter((p) => selects(p, jobLabels));
        assert.equal(job.length, 1, 'one policy for the migration Job');
        assert.deepEqual(job[0].spec.ingress ?? [], []);
        assert.deepEqual(egressPorts(job[0].spec), ['TCP/53', 'TCP/5432', 'UDP/53']);
    });

    test('Deployment: probes, graceful shutdown budget, hardening, resources', () => {
        const dep = byKind('Deployment')[0];
        const cm = byKind('ConfigMap')[0].data;
        assert.equal(dep.spec.replicas, 3);
        const pod = dep.spec.template.spec;
        const c = pod.containers[0];
        assert.equal(c.readinessProbe.httpGet.path, '/health/ready');
        assert.equal(c.livenessProbe.httpGet.path, '/health/live');
        assert.ok(c.startupProbe?.httpGet?.path);
        const sleep = Number(c.lifecycle.preStop.exec.command.at(-1));
        const delayS = Number(cm.PULSE_SHUTDOWN_DELAY_MS) / 1000;
        const drainS = Number(cm.PULSE_DRAIN_MS) / 1000;
        assert.ok(Math.abs(sleep - delayS) <= 1, `preStop sleep ${sleep} s ≈ PULSE_SHUTDOWN_DELAY_MS ${delayS} s`);
        assert.ok(pod.terminationGracePeriodSeconds > sleep + delayS + drainS,
            `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} > preStop + delay + drain (${sleep + delayS + drainS})`);
        assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.cpu && c.resources.limits.memory);
        assert.equal(pod.securityContext.runAsNonRoot, true);
        assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
        assert.equal(c.securityContext.readOnlyRootFilesystem, true);
        assert.equal(c.securityContext.allowPrivilegeEscalation, false);
        assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
        const tmp = c.volumeMounts.find((m) => m.mountPath === '/tmp');
        assert.ok(tmp && pod.volumes.find((v) => v.name === tmp.name)?.emptyDir, 'emptyDir on /tmp');
        assert.equal(c.ports[0].containerPort, Number(cm.PULSE_LISTEN.split(':')[1]));
        const refs = c.envFrom.map((e) => e.configMapRef?.name ?? e.secretRef?.name);
        assert.deepEqual(refs.sort(), [byKind('ConfigMap')[0].metadata.name, 'pulse-secrets'].sort());
        // the Service and the PDB select these pods
        const labels = dep.spec.template.metadata.labels;
        const matches = (sel) => Object.entries(sel).every(([k, v]) => labels[k] === v);
        assert.ok(matches(byKind('Service')[0].spec.selector));
        assert.ok(matches(byKind('PodDisruptionBudget')[0].spec.selector.matchLabels));
        assert.equal(byKind('HorizontalPodAutoscaler')[0].spec.scaleTargetRef.name, dep.metadata.name);
    });

    test('Ingress: WebSocket timeouts and body size; Job runs pulsed migrate', () => {
        const ann = byKind('Ingress')[0].metadata.annotations;
        assert.ok(Number(ann['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 60);
        assert.ok(Number(ann['nginx.ingress.kubernetes.io/proxy-send-timeout']) >= 60);
        assert.equal(ann['nginx.ingress.kubernetes.io/proxy-body-size'], '1m');
        const job = byKind('Job')[0].spec.template.spec;
        assert.deepEqual(job.containers[0].args, ['migrate']);
        assert.equal(job.securityContext.runAsNonRoot, true);
        assert.equal(job.containers[0].securityContext.readOnlyRootFilesystem, true);
    });
});
