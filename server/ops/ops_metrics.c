/* The process's metrics registry: the prefix, the families the application adds on top of
 * lib/http's and the process ones, and the collector that sums the figures workers publish
 * (server/main.c, every 100 ms) when /metrics is read. The exposition itself is written by
 * lib/metrics. */
#include <stdlib.h>

#include "../app.h"
#include "../auth/passwords.h"
#include "ops.h"
#include "pl/mem.h"
#include "pl/metrics.h"
#include "pl/process.h"

enum { POOL_SIZE, POOL_CONNECTED, POOL_BUSY, POOL_IDLE, POOL_STATES };

/* The families whose values the collector sets. */
struct ops_metrics {
    struct pl_metric *connections, *pool, *waiting, *pg_errors, *redis_up, *redis_errors, *workers,
        *ws_clients, *ws_dropped, *argon2_running, *argon2_queued;
};

static const char *const pool_states[POOL_STATES] = {"size", "connected", "busy", "idle"};
static const struct pl_metric_label pool_label = {"state", pool_states, POOL_STATES};
static const struct pl_metric_label class_label = {"class", rate_class_names, RATE_CLASSES};
static const struct pl_metric_label outcome_label = {"outcome", passwords_outcome_names,
                                                     PW_OUTCOMES};
static const double pg_wait_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 2.5};

static const struct pl_metric_def defs[] = {
    {.type = PL_METRIC_GAUGE,
     .name = "connections",
     .help = "Open client connections (HTTP and WebSocket)."},
    {.type = PL_METRIC_GAUGE,
     .name = "pg_pool_connections",
     .help = "Postgres pool connections by state.",
     .labels = &pool_label,
     .nlabels = 1},
    {.type = PL_METRIC_GAUGE,
     .name = "pg_waiting",
     .help = "Queries waiting for a Postgres connection."},
    {.type = PL_METRIC_COUNTER, .name = "pg_errors_total", .help = "Postgres connection failures."},
    {.type = PL_METRIC_HISTOGRAM,
     .name = "pg_wait_seconds",
     .help = "Time each query batch waited for a Postgres connection (0 when it did not queue).",
     .bounds = pg_wait_bounds,
     .nbounds = sizeof pg_wait_bounds / sizeof pg_wait_bounds[0],
     .scale = 1e-9},
    {.type = PL_METRIC_GAUGE, .name = "redis_up", .help = "Workers whose Redis connection is up."},
    {.type = PL_METRIC_COUNTER,
     .name = "redis_errors_total",
     .help = "Redis connection failures and timeouts."},
    {.type = PL_METRIC_GAUGE, .name = "workers", .help = "Worker threads."},
    {.type = PL_METRIC_GAUGE,
     .name = "ws_clients",
     .help = "Open WebSocket connections (/api/v1/live)."},
    {.type = PL_METRIC_COUNTER,
     .name = "ws_frames_dropped_total",
     .help = "Outbound WebSocket frames dropped: metrics frames replaced by a newer one before "
             "a slow reader took them, and frames refused by a full queue."},
    {.type = PL_METRIC_COUNTER,
     .name = "ratelimit_rejections_total",
     .help = "Requests refused by a rate limit.",
     .labels = &class_label,
     .nlabels = 1},
    {.type = PL_METRIC_GAUGE,
     .name = "argon2_running",
     .help = "Password hashes running on the thread pool."},
    {.type = PL_METRIC_GAUGE,
     .name = "argon2_queued",
     .help = "Password hashes waiting for a slot."},
    {.type = PL_METRIC_COUNTER,
     .name = "argon2_jobs_total",
     .help = "Password hash jobs by outcome: hashed, or refused without hashing (queue full, "
             "waited too long, client gone).",
     .labels = &outcome_label,
     .nlabels = 1},
};
enum {
    D_CONNECTIONS,
    D_POOL,
    D_WAITING,
    D_PG_ERRORS,
    D_PG_WAIT,
    D_REDIS_UP,
    D_REDIS_ERRORS,
    D_WORKERS,
    D_WS_CLIENTS,
    D_WS_DROPPED,
    D_RATELIMIT,
    D_ARGON2_RUNNING,
    D_ARGON2_QUEUED,
    D_ARGON2_JOBS,
    NDEFS
};
_Static_assert(NDEFS == sizeof defs / sizeof defs[0], "one enum entry per family");

static void collect(struct pl_metrics *reg, void *ctx)
{
    const struct app *app = ctx;
    const struct ops_metrics *m = app->ops_metrics;
    int conns = 0, size = 0, busy = 0, connected = 0, waiting = 0, redis_up = 0;
    uint64_t redis_errors = 0, pg_errors = 0;
    for (int i = 0; app->workers && i < app->nworkers; i++) {
        const struct worker_stats *s = &app->workers[i].stats;
        conns += atomic_load(&s->connections);
        size += atomic_load(&s->pg_size);
        busy += atomic_load(&s->pg_busy);
        connected += atomic_load(&s->pg_connected);
        waiting += atomic_load(&s->pg_waiting);
        pg_errors += atomic_load(&s->pg_errors);
        redis_up += atomic_load(&s->redis_connected);
        redis_errors += atomic_load(&s->redis_errors);
    }
    int open = atomic_load(&app->conn_count);
    pl_metric_set(m->connections, 0, open > conns ? open : conns);
    pl_metric_set(m->pool, POOL_SIZE, size);
    pl_metric_set(m->pool, POOL_CONNECTED, connected);
    pl_metric_set(m->pool, POOL_BUSY, busy);
    pl_metric_set(m->pool, POOL_IDLE, connected - busy > 0 ? connected - busy : 0);
    pl_metric_set(m->waiting, 0, waiting);
    pl_metric_set(m->pg_errors, 0, (int64_t)pg_errors);
    pl_metric_set(m->redis_up, 0, redis_up);
    pl_metric_set(m->redis_errors, 0, (int64_t)redis_errors);
    pl_metric_set(m->workers, 0, app->nworkers);
    pl_metric_set(m->ws_clients, 0, atomic_load(&app->ws_clients));
    pl_metric_set(m->ws_dropped, 0, (int64_t)atomic_load(&app->ws_frames_dropped));
    pl_metric_set(m->argon2_running, 0, atomic_load(&app->pw_running));
    pl_metric_set(m->argon2_queued, 0, atomic_load(&app->pw_queued));
    (void)reg;
}

int ops_metrics_init(struct app *app)
{
    int rc = pl_metrics_create("pulse_", &app->registry);
    if (rc) return rc;
    app->metrics = pl_http_metrics_create(app->registry, app->router);
    if (!app->metrics) return PL_E_INVALID;
    struct pl_metric *f[NDEFS];
    for (int i = 0; i < NDEFS; i++)
        if (!(f[i] = pl_metrics_add(app->registry, &defs[i]))) return PL_E_INVALID;
    struct ops_metrics *m = pl_xcalloc(1, sizeof *m);
    *m = (struct ops_metrics){
        .connections = f[D_CONNECTIONS],
        .pool = f[D_POOL],
        .waiting = f[D_WAITING],
        .pg_errors = f[D_PG_ERRORS],
        .redis_up = f[D_REDIS_UP],
        .redis_errors = f[D_REDIS_ERRORS],
        .workers = f[D_WORKERS],
        .ws_clients = f[D_WS_CLIENTS],
        .ws_dropped = f[D_WS_DROPPED],
        .argon2_running = f[D_ARGON2_RUNNING],
        .argon2_queued = f[D_ARGON2_QUEUED],
    };
    app->ops_metrics = m;
    app->pg_wait = f[D_PG_WAIT];
    app->ratelimit_rejections = f[D_RATELIMIT];
    app->argon2_jobs = f[D_ARGON2_JOBS];
    rc = pl_process_metrics_register(app->registry);
    if (rc == 0) rc = pl_metrics_on_collect(app->registry, collect, app);
    return rc;
}

void ops_metrics_dispose(struct app *app)
{
    pl_http_metrics_destroy(app->metrics);
    pl_metrics_destroy(app->registry);
    free(app->ops_metrics);
    app->metrics = NULL;
    app->registry = NULL;
    app->ops_metrics = NULL;
    app->pg_wait = app->ratelimit_rejections = app->argon2_jobs = NULL;
}
