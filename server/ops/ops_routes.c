/* Operations routes: liveness, readiness (Postgres and Redis checked with latency),
 * Prometheus metrics and the OpenAPI document. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../auth/passwords.h"
#include "../guards.h"
#include "../live/live.h"
#include "ops.h"
#include "pl/buf.h"
#include "pl/process.h"

static void live(struct pl_http_request *req)
{
    static const char body[] = "{\"status\":\"ok\"}";
    pl_respond(req, 200, "application/json", body, sizeof body - 1);
}

/* ---- readiness ---- */

struct ready_check {
    struct pl_http_request *req;
    int pending;
    uint64_t start_ns;
    bool pg_ok, redis_ok;
    double pg_ms, redis_ms;
    const char *pg_error, *redis_error;
};

static json_t *check_json(bool ok, double ms, const char *error)
{
    json_t *o = json_pack("{s:b, s:f}", "ok", ok, "latency_ms", (double)(long)(ms * 1000) / 1000);
    if (!ok && error) json_object_set_new(o, "error", json_string(error));
    return o;
}

static void ready_finish(struct ready_check *rc)
{
    if (--rc->pending > 0) return;
    struct pl_http_request *req = rc->req;
    struct worker *w = req_worker(req);
    int state = atomic_load(&w->app->state);
    const char *status;
    int code;
    if (state == APP_DRAINING) {
        status = "draining";
        code = 503;
    } else if (state == APP_STARTING || !atomic_load(&w->app->migrated)) {
        status = "starting";
        code = 503;
    } else if (rc->pg_ok && rc->redis_ok) {
        status = "ok";
        code = 200;
    } else {
        status = "degraded";
        code = 200;
    }
    json_t *body = json_pack("{s:s, s:{s:o, s:o}}", "status", status, "checks", "postgres",
                             check_json(rc->pg_ok, rc->pg_ms, rc->pg_error), "redis",
                             check_json(rc->redis_ok, rc->redis_ms, rc->redis_error));
    if (code == 503) pl_resp_header(req, "Retry-After", "1");
    pl_resp_header(req, "Cache-Control", "no-store");
    pl_respond_json(req, code, body);
}

static void ready_pg_done(int status, PGresult **results, int n, void *ctx)
{
    struct ready_check *rc = ctx;
    rc->pg_ms = (double)(uv_hrtime() - rc->start_ns) / 1e6;
    rc->pg_ok = status == 0;
    if (!rc->pg_ok) rc->pg_error = pl_strerror(status);
    ready_finish(rc);
}

static void ready_redis_done(int status, redisReply *reply, void *ctx)
{
    struct ready_check *rc = ctx;
    rc->redis_ms = (double)(uv_hrtime() - rc->start_ns) / 1e6;
    rc->redis_ok = status == 0 && reply && reply->type == REDIS_REPLY_STATUS;
    if (!rc->redis_ok) rc->redis_error = status ? pl_strerror(status) : "unexpected reply";
    ready_finish(rc);
}

static void ready(struct pl_http_request *req)
{
    struct worker *w = req_worker(req);
    if (atomic_load(&w->app->state) == APP_DRAINING) {
        pl_resp_header(req, "Retry-After", "1");
        pl_respond(req, 503, "application/json", "{\"status\":\"draining\"}", 21);
        return;
    }
    struct ready_check *rc = pl_req_alloc(req, sizeof *rc);
    memset(rc, 0, sizeof *rc);
    rc->req = req;
    rc->start_ns = uv_hrtime();
    rc->pending = 3; /* the two checks, and this function until both are started */
    /* A dependency that is down right now answers at once rather than after the pool's
     * wait: readiness probes must be quick. */
    if (pl_pg_pool_ready(w->pg) &&
        pl_pg_exec1(w->pg, "ops_ping", 0, NULL, ready_pg_done, rc) == 0) {
    } else {
        rc->pg_error = "no connection";
        rc->pending--;
    }
    static const char *const ping[] = {"PING"};
    if (pl_redis_connected(w->redis) &&
        pl_redis_command(w->redis, 1, (const char **)ping, NULL, ready_redis_done, rc) == 0) {
    } else {
        rc->redis_error = "no connection";
        rc->pending--;
    }
    ready_finish(rc);
}

/* ---- Prometheus ---- */

static const double pg_wait_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 2.5};

static void metrics(struct pl_http_request *req)
{
    struct worker *self = req_worker(req);
    struct app *app = self->app;
    struct pl_buf b;
    pl_buf_init(&b);
    pl_http_metrics_render(app->metrics, &b);
    int conns = 0, size = 0, busy = 0, connected = 0, waiting = 0, redis_up = 0;
    uint64_t wait_count = 0, wait_us = 0, redis_errors = 0, pg_errors = 0;
    uint64_t hist[8] = {0};
    for (int i = 0; i < app->nworkers; i++) {
        struct worker_stats *s = &app->workers[i].stats;
        conns += atomic_load(&s->connections);
        size += atomic_load(&s->pg_size);
        busy += atomic_load(&s->pg_busy);
        connected += atomic_load(&s->pg_connected);
        waiting += atomic_load(&s->pg_waiting);
        wait_count += atomic_load(&s->pg_wait_count);
        wait_us += atomic_load(&s->pg_wait_us_sum);
        pg_errors += atomic_load(&s->pg_errors);
        redis_up += atomic_load(&s->redis_connected);
        redis_errors += atomic_load(&s->redis_errors);
        for (int k = 0; k < 8; k++)
            hist[k] += atomic_load(&s->pg_wait_hist[k]);
    }
    pl_buf_printf(&b,
                  "# HELP pulse_connections Open client connections (HTTP and WebSocket).\n"
                  "# TYPE pulse_connections gauge\npulse_connections %d\n"
                  "# HELP pulse_pg_pool_connections Postgres pool connections by state.\n"
                  "# TYPE pulse_pg_pool_connections gauge\n"
                  "pulse_pg_pool_connections{state=\"size\"} %d\n"
                  "pulse_pg_pool_connections{state=\"connected\"} %d\n"
                  "pulse_pg_pool_connections{state=\"busy\"} %d\n"
                  "pulse_pg_pool_connections{state=\"idle\"} %d\n"
                  "# HELP pulse_pg_waiting Queries waiting for a Postgres connection.\n"
                  "# TYPE pulse_pg_waiting gauge\npulse_pg_waiting %d\n"
                  "# HELP pulse_pg_errors_total Postgres connection failures.\n"
                  "# TYPE pulse_pg_errors_total counter\npulse_pg_errors_total %llu\n",
                  atomic_load(&app->conn_count) > conns ? atomic_load(&app->conn_count) : conns,
                  size, connected, busy, connected - busy > 0 ? connected - busy : 0, waiting,
                  (unsigned long long)pg_errors);
    pl_buf_puts(&b, "# HELP pulse_pg_wait_seconds Time queries waited for a Postgres connection.\n"
                    "# TYPE pulse_pg_wait_seconds histogram\n");
    uint64_t cum = 0;
    for (int k = 0; k < 7; k++) {
        cum += hist[k];
        pl_buf_printf(&b, "pulse_pg_wait_seconds_bucket{le=\"%g\"} %llu\n", pg_wait_bounds[k],
                      (unsigned long long)cum);
    }
    cum += hist[7];
    pl_buf_printf(&b,
                  "pulse_pg_wait_seconds_bucket{le=\"+Inf\"} %llu\n"
                  "pulse_pg_wait_seconds_sum %.6f\npulse_pg_wait_seconds_count %llu\n",
                  (unsigned long long)cum, (double)wait_us / 1e6, (unsigned long long)wait_count);
    pl_buf_printf(&b,
                  "# HELP pulse_redis_up Workers whose Redis connection is up.\n"
                  "# TYPE pulse_redis_up gauge\npulse_redis_up %d\n"
                  "# HELP pulse_redis_errors_total Redis connection failures and timeouts.\n"
                  "# TYPE pulse_redis_errors_total counter\npulse_redis_errors_total %llu\n"
                  "# HELP pulse_workers Worker threads.\n# TYPE pulse_workers gauge\n"
                  "pulse_workers %d\n"
                  "# HELP pulse_ws_clients Open WebSocket connections (/api/v1/live).\n"
                  "# TYPE pulse_ws_clients gauge\npulse_ws_clients %d\n"
                  "# HELP pulse_ws_frames_dropped_total Outbound WebSocket frames dropped: "
                  "metrics frames replaced by a newer one before a slow reader took them, and "
                  "frames refused by a full queue.\n"
                  "# TYPE pulse_ws_frames_dropped_total counter\npulse_ws_frames_dropped_total "
                  "%llu\n",
                  redis_up, (unsigned long long)redis_errors, app->nworkers,
                  atomic_load(&app->ws_clients),
                  (unsigned long long)atomic_load(&app->ws_frames_dropped));
    pl_buf_puts(&b, "# HELP pulse_ratelimit_rejections_total Requests refused by a rate limit.\n"
                    "# TYPE pulse_ratelimit_rejections_total counter\n");
    for (int c = 0; c < RATE_CLASSES; c++)
        pl_buf_printf(&b, "pulse_ratelimit_rejections_total{class=\"%s\"} %llu\n",
                      rate_class_names[c],
                      (unsigned long long)atomic_load(&app->ratelimit_rejections[c]));
    pl_buf_printf(&b,
                  "# HELP pulse_argon2_running Password hashes running on the thread pool.\n"
                  "# TYPE pulse_argon2_running gauge\npulse_argon2_running %d\n"
                  "# HELP pulse_argon2_queued Password hashes waiting for a slot.\n"
                  "# TYPE pulse_argon2_queued gauge\npulse_argon2_queued %d\n"
                  "# HELP pulse_argon2_jobs_total Password hash jobs by outcome: hashed, or "
                  "refused without hashing (queue full, waited too long, client gone).\n"
                  "# TYPE pulse_argon2_jobs_total counter\n",
                  atomic_load(&app->pw_running), atomic_load(&app->pw_queued));
    for (int o = 0; o < PW_OUTCOMES; o++)
        pl_buf_printf(&b, "pulse_argon2_jobs_total{outcome=\"%s\"} %llu\n",
                      passwords_outcome_names[o],
                      (unsigned long long)atomic_load(&app->pw_jobs[o]));
    pl_process_metrics_render(&b);
    pl_resp_header(req, "Cache-Control", "no-store");
    pl_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    pl_buf_dispose(&b);
}

static void scaling(struct pl_http_request *req)
{
    pl_resp_header(req, "Cache-Control", "no-store");
    pl_respond_json(req, 200, live_scaling_report(req_worker(req)->app));
}

static void openapi(struct pl_http_request *req)
{
    pl_resp_header(req, "Cache-Control", "no-cache");
    pl_respond(req, 200, "application/json", pulse_openapi_json, pulse_openapi_json_len);
}

struct pl_route ops_routes[] = {
    {.method = PL_M_GET, .pattern = "/health/live", .handler = live},
    {.method = PL_M_GET, .pattern = "/health/ready", .handler = ready},
    {.method = PL_M_GET, .pattern = "/metrics", .handler = metrics, .flags = ROUTE_METRICS_TOKEN},
    {.method = PL_M_GET,
     .pattern = "/api/v1/health/scaling",
     .handler = scaling,
     .flags = ROUTE_METRICS_TOKEN},
    {.method = PL_M_GET, .pattern = "/api/v1/openapi.json", .handler = openapi},
    {0},
};

int ops_prepare(struct pl_pg_pool *pool)
{
    return pl_pg_pool_prepare(pool, "ops_ping", "SELECT 1", 0);
}
