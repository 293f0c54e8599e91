/* Operations routes: liveness, readiness (Postgres and Redis checked with latency),
 * Prometheus metrics and the OpenAPI document. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../guards.h"
#include "../live/live.h"
#include "ops.h"
#include "pl/buf.h"
#include "pl/metrics.h"

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

static void metrics(struct pl_http_request *req)
{
    struct pl_buf b;
    pl_buf_init(&b);
    pl_metrics_render(req_worker(req)->app->registry, &b);
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
