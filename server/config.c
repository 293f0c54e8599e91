#include "config.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pl/http.h"
#include "pl/log.h"
#include "pl/mem.h"
#include "pl/pg.h"
#include "pl/static.h"

#define OFF(f) offsetof(struct pulse_config, f)
#define STR(name, field, def, help)                                                                \
    {                                                                                              \
        name, PL_SET_STRING, def, OFF(field), 0, 0, false, false, help                             \
    }
#define INT(name, field, def, lo, hi, help)                                                        \
    {                                                                                              \
        name, PL_SET_INT, def, OFF(field), lo, hi, false, false, help                              \
    }
#define BOOL(name, field, def, help)                                                               \
    {                                                                                              \
        name, PL_SET_BOOL, def, OFF(field), 0, 0, false, false, help                               \
    }
#define RATE(name, field, def, help)                                                               \
    {                                                                                              \
        name, PL_SET_RATE, def, OFF(field), 0, 0, false, false, help                               \
    }

/* Argon2 defaults are libsodium's INTERACTIVE limits (opslimit 2, memlimit 64 MiB). */
const struct pl_setting pulse_settings[] = {
    STR("PULSE_LISTEN", listen, "127.0.0.1:8080", "address and port to accept on"),
    INT("PULSE_WORKERS", workers, "0", 0, 256,
        "worker threads, each with its own loop (0 = cores)"),
    {"DATABASE_URL", PL_SET_STRING, NULL, OFF(database_url), 0, 0, false, true,
     "libpq connection URI"},
    {"PULSE_MIGRATE_DATABASE_URL", PL_SET_STRING, "", OFF(migrate_database_url), 0, 0, false, true,
     "libpq URI of the schema owner, for migrations (empty = DATABASE_URL)"},
    {"REDIS_URL", PL_SET_STRING, NULL, OFF(redis_url), 0, 0, false, true,
     "redis://[:password@]host:port/db"},
    INT("PULSE_PG_POOL", pg_pool, "2", 1, 64, "Postgres connections per worker"),
    INT("PULSE_PG_WAIT_MS", pg_wait_ms, "5000", 1, 60000,
        "longest a query waits for a free connection before 503"),
    INT("PULSE_PG_MAX_WAITERS", pg_max_waiters, "4096", 1, 1000000,
        "queries queued per worker before 503"),
    STR("PULSE_WEB_ROOT", web_root, "web/dist", "folder of the static UI"),
    STR("PULSE_PUBLIC_ORIGIN", public_origin, "http://127.0.0.1:8080",
        "the origin browsers use, for Origin checks"),
    STR("PULSE_CORS_ORIGINS", cors_origins, "", "extra allowed origins, comma-separated"),
    BOOL("PULSE_COOKIE_SECURE", cookie_secure, "0", "add Secure to cookies"),
    STR("PULSE_TRUSTED_PROXIES", trusted_proxies, "", "CIDRs whose X-Forwarded-For is believed"),
    INT("PULSE_METRICS_INTERVAL_MS", metrics_interval_ms, "1000", 50, 60000,
        "live metrics cadence"),
    {"PULSE_METRICS_TOKEN", PL_SET_STRING, "", OFF(metrics_token), 0, 0, false, true,
     "bearer token required for /metrics when set"},
    BOOL("PULSE_RATE_LIMITS", rate_limits, "on", "off disables every limit (benchmarks only)"),
    STR("PULSE_LOG_LEVEL", log_level, "info", "debug, info, warn, error"),
    INT("PULSE_DRAIN_MS", drain_ms, "10000", 0, 600000,
        "how long SIGTERM waits for in-flight requests"),
    INT("PULSE_MAX_CONNECTIONS", max_connections, "16384", 1, 1000000,
        "open connections per process"),
    INT("PULSE_MAX_HEAD_BYTES", max_head_bytes, "16384", 1024, 1048576, "request head limit"),
    INT("PULSE_MAX_BODY_BYTES", max_body_bytes, "1048576", 1024, 1073741824, "request body limit"),
    INT("PULSE_HEAD_TIMEOUT_MS", head_timeout_ms, "10000", 100, 3600000, "slow head timeout"),
    INT("PULSE_IDLE_TIMEOUT_MS", idle_timeout_ms, "60000", 100, 86400000,
        "idle keep-alive timeout"),
    INT("PULSE_SHUTDOWN_DELAY_MS", shutdown_delay_ms, "0", 0, 600000,
        "after SIGTERM keep accepting this long before closing the listener"),
    BOOL("PULSE_AUTO_MIGRATE", auto_migrate, "0", "serve applies pending migrations itself"),
    STR("PULSE_MIGRATIONS_DIR", migrations_dir, "migrations", "folder of the numbered SQL files"),
    INT("PULSE_ARGON2_OPSLIMIT", argon2_opslimit, "2", 1, 4294967295LL, "Argon2id passes"),
    INT("PULSE_ARGON2_MEMLIMIT", argon2_memlimit, "67108864", 8192, 4398046510080LL,
        "Argon2id memory in bytes"),
    INT("PULSE_ARGON2_CONCURRENCY", argon2_concurrency, "1", 1, 64, "hashes at once per process"),
    INT("PULSE_ARGON2_QUEUE", argon2_queue, "64", 0, 100000,
        "password hashes waiting for a slot per process before 503"),
    INT("PULSE_ARGON2_WAIT_MS", argon2_wait_ms, "10000", 10, 600000,
        "longest a password hash waits for a slot before 503"),
    INT("PULSE_SESSION_IDLE_S", session_idle_s, "604800", 60, 31536000, "session idle timeout"),
    INT("PULSE_SESSION_ABSOLUTE_S", session_absolute_s, "2592000", 60, 315360000,
        "session absolute lifetime"),
    RATE("PULSE_RATE_LOGIN", rate_login, "5/60", "logins per IP and email"),
    RATE("PULSE_RATE_LOGIN_IP", rate_login_ip, "30/60", "logins per IP"),
    RATE("PULSE_RATE_REGISTER", rate_register, "10/3600", "registrations per IP"),
    RATE("PULSE_RATE_READ", rate_read, "200/60", "reads per user"),
    RATE("PULSE_RATE_WRITE", rate_write, "60/60", "writes per user"),
    RATE("PULSE_RATE_EXPORT", rate_export, "10/3600", "exports per user"),
    RATE("PULSE_RATE_INVITATION_ACCEPT", rate_invitation_accept, "20/3600",
         "invitations accepted (or tried) per user"),
    INT("PULSE_QUOTA_SUBJECTS", quota_subjects, "50", 1, 100000, "subjects a user belongs to"),
    INT("PULSE_QUOTA_MEMBERS", quota_members, "50", 1, 100000, "members of a subject"),
    INT("PULSE_QUOTA_INVITATIONS", quota_invitations, "20", 1, 100000,
        "pending invitations of a subject"),
    BOOL("PULSE_HSTS", hsts, "0", "send Strict-Transport-Security"),
    BOOL("PULSE_ACCESS_LOG", access_log, "on", "one JSON line per request on stdout"),
    INT("PULSE_WS_QUEUE_BYTES", ws_queue_bytes, "262144", 1024, 67108864,
        "outbound bytes queued per WebSocket before it closes with 1008"),
    INT("PULSE_WS_STALL_MS", ws_stall_ms, "10000", 10, 3600000,
        "a WebSocket whose frames wait this long closes with 1008"),
    INT("PULSE_WS_RECHECK_S", ws_recheck_s, "60", 1, 86400,
        "how often open WebSockets check that their session or token is still valid"),
    INT("PULSE_WS_PING_S", ws_ping_s, "30", 1, 3600,
        "WebSocket idle seconds before a ping (no answer as long again: dropped)"),
    INT("PULSE_WS_PER_USER", ws_per_user, "32", 1, 1000000,
        "open WebSockets per user and process; the next handshake gets 429"),
    INT("PULSE_WS_PER_IP", ws_per_ip, "256", 1, 1000000,
        "open WebSockets per client IP and process; the next handshake gets 429"),
    STR("PULSE_SCALE_PROFILE", scale_profile, "",
        "scaling advisor: this instance's size (default: workers and cores)"),
    INT("PULSE_SCALE_P95_WARN_MS", scale_p95_warn_ms, "5000", 1, 600000,
        "scaling advisor: p95 over this warns"),
    INT("PULSE_SCALE_P95_MS", scale_p95_ms, "8000", 1, 600000,
        "scaling advisor: p95 over this asks for more capacity"),
    INT("PULSE_SCALE_CONCURRENCY", scale_concurrency, "256", 1, 1000000,
        "scaling advisor: requests in flight at once, sustained"),
    INT("PULSE_SCALE_RSS_MB", scale_rss_mb, "400", 1, 1048576, "scaling advisor: resident memory"),
    INT("PULSE_SCALE_ERROR_PERCENT", scale_error_percent, "5", 1, 100,
        "scaling advisor: share of 5xx answers"),
    STR("PULSE_INSTANCE", instance, "", "instance name in logs and live hello (default: hostname)"),
    INT("PULSE_EVENTS_RETAIN_S", events_retain_s, "86400", 1, 31536000,
        "live events kept per user for resume: at least this many seconds"),
    INT("PULSE_EVENTS_RETAIN_COUNT", events_retain_count, "1000", 1, 1000000,
        "live events kept per user for resume: at least the newest this many"),
    INT("PULSE_EVENTS_SWEEP_MS", events_sweep_ms, "1000", 10, 600000,
        "how often the event outbox sweeper runs"),
    INT("PULSE_EVENTS_SWEEP_AGE_MS", events_sweep_age_ms, "5000", 10, 3600000,
        "outbox rows older than this are published by the sweeper"),
    BOOL("PULSE_TEST_SKIP_PUBLISH", test_skip_publish, "0",
         "test only: publish no outbox event after commit, and sweep nothing"),
};
const size_t pulse_settings_count = sizeof pulse_settings / sizeof pulse_settings[0];

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return PL_E_CONFIG;
}

static bool is_origin(const char *s)
{
    const char *rest = strncmp(s, "http://", 7) == 0    ? s + 7
                       : strncmp(s, "https://", 8) == 0 ? s + 8
                                                        : NULL;
    return rest && *rest && !strchr(rest, '/') && !strpbrk(rest, " \t,");
}

int pulse_config_load(struct pulse_config *cfg, const char *env_file, bool need_services, char *err,
                      size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    int rc = pl_config_load(pulse_settings, pulse_settings_count, cfg, env_file, err, errlen);
    if (rc) return rc;
    char host[256];
    int port;
    if (pl_http_parse_listen(cfg->listen, host, sizeof host, &port))
        return fail(err, errlen, "invalid PULSE_LISTEN=%.100s: expected HOST:PORT", cfg->listen);
    if (pl_log_level_parse(cfg->log_level) < 0)
        return fail(err, errlen,
                    "invalid PULSE_LOG_LEVEL=%.50s: expected debug, info, warn or error",
                    cfg->log_level);
    char csp[512];
    if (!is_origin(cfg->public_origin) || pl_static_csp(cfg->public_origin, csp, sizeof csp) < 0)
        return fail(err, errlen,
                    "invalid PULSE_PUBLIC_ORIGIN=%.100s: expected http(s)://host[:port]",
                    cfg->public_origin);
    if (need_services && (!cfg->database_url || !*cfg->database_url))
        return fail(err, errlen, "missing %s: set it in the environment or .env", "DATABASE_URL");
    /* Here rather than at the first connection: a URL libpq cannot parse would otherwise look
     * like an unreachable server, which `serve` waits for. libpq's reason is not shown: it may
     * quote part of the password. */
    char user[128];
    if (cfg->database_url && *cfg->database_url &&
        pl_pg_conninfo_user(cfg->database_url, user, sizeof user) != 0)
        return fail(err, errlen,
                    "invalid %s: libpq cannot parse it (postgresql://... or key=value)",
                    "DATABASE_URL");
    if (*cfg->migrate_database_url &&
        pl_pg_conninfo_user(cfg->migrate_database_url, user, sizeof user) != 0)
        return fail(err, errlen,
                    "invalid %s: libpq cannot parse it (postgresql://... or key=value)",
                    "PULSE_MIGRATE_DATABASE_URL");
    if (!*cfg->migrate_database_url && cfg->database_url) {
        free(cfg->migrate_database_url);
        cfg->migrate_database_url = pl_xstrdup(cfg->database_url);
    }
    if (need_services && (!cfg->redis_url || !*cfg->redis_url))
        return fail(err, errlen, "missing %s: set it in the environment or .env", "REDIS_URL");
    if (need_services && strncmp(cfg->redis_url, "redis://", 8) != 0)
        return fail(err, errlen, "invalid %s: expected redis://[:password@]host:port/db",
                    "REDIS_URL");
    if ((unsigned long long)cfg->argon2_opslimit < crypto_pwhash_OPSLIMIT_MIN)
        return fail(err, errlen, "invalid %s: below libsodium's minimum", "PULSE_ARGON2_OPSLIMIT");
    if (cfg->session_absolute_s < cfg->session_idle_s)
        return fail(err, errlen, "invalid %s: shorter than PULSE_SESSION_IDLE_S",
                    "PULSE_SESSION_ABSOLUTE_S");
    if (!cfg->instance[0]) {
        char hn[128];
        if (gethostname(hn, sizeof hn) != 0) strcpy(hn, "pulsed");
        hn[sizeof hn - 1] = 0;
        free(cfg->instance);
        cfg->instance = strdup(hn);
    }
    return 0;
}

void pulse_config_dispose(struct pulse_config *cfg)
{
    pl_config_dispose(pulse_settings, pulse_settings_count, cfg);
}
