/* app: the one context of a pulsed process: its config, router, metrics and workers.
 *
 * One worker per thread, each with its own loop, HTTP server, Postgres pool and Redis
 * client. Handlers find their worker with pl_req_ctx(req). State shared between threads is
 * atomic (app->state, counters) or read-only after start (config, router). */
#ifndef PULSE_APP_H
#define PULSE_APP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "pl/http.h"
#include "pl/pg.h"
#include "pl/redis.h"
#include "pl/router.h"

enum app_state { APP_STARTING = 0, APP_READY, APP_DRAINING };

/* The limits of the contract's "Rate limits" table, for metrics labels. */
enum rate_class {
    RATE_LOGIN,
    RATE_REGISTER,
    RATE_READ,
    RATE_WRITE,
    RATE_EXPORT,
    RATE_INVITATION,
    RATE_CLASSES
};
extern const char *const rate_class_names[RATE_CLASSES];

struct worker;
struct ops_metrics;
struct pl_metrics;
struct pl_metric;

/* Statistics each worker publishes for /metrics (read by any thread). */
struct worker_stats {
    _Atomic int pg_size, pg_connected, pg_busy, pg_inflight, pg_waiting;
    _Atomic uint64_t pg_errors;
    _Atomic int redis_connected;
    _Atomic uint64_t redis_errors;
    _Atomic int connections;
    _Atomic int inflight_peak; /* most requests in flight at once since the sampler last looked */
};

struct app {
    struct pulse_config cfg;
    struct pl_router *router;
    struct pl_metrics *registry;     /* every metric of /metrics (server/ops/ops_metrics.c) */
    struct pl_http_metrics *metrics; /* lib/http's, in the registry */
    struct ops_metrics *ops_metrics; /* the families the collector sets */
    struct pl_metric *pg_wait;       /* pulse_pg_wait_seconds, observed by every pool */
    struct pl_metric *ratelimit_rejections; /* pulse_ratelimit_rejections_total{class} */
    struct pl_metric *argon2_jobs; /* pulse_argon2_jobs_total{outcome}, by passwords_outcome */
    _Atomic int conn_count;
    _Atomic int state;
    _Atomic bool migrated; /* no migration pending */
    int nworkers;
    struct worker *workers;
    int port;
    /* passwords: a hash of a random password with the configured cost, verified against
     * for unknown emails so that login takes the same time either way */
    char dummy_hash[128];
    _Atomic int pw_running; /* hashes running now, capped by PULSE_ARGON2_CONCURRENCY */
    _Atomic int pw_queued;  /* jobs waiting for a slot, capped by PULSE_ARGON2_QUEUE */
    /* IANA zone names known to Postgres (sorted), loaded once (server/users/timezones.c) */
    char **timezones;
    size_t ntimezones;
    _Atomic bool timezones_loaded;
    /* live */
    _Atomic int ws_clients;
    _Atomic uint64_t ws_frames_dropped;
    struct live_caps *live_caps;  /* open sockets per user and IP (server/live/caps.c) */
    struct live_sampler *sampler; /* the metrics sampler (server/live/sampler.c) */
};

struct auth_worker;
struct live_caps;
struct live_sampler;
struct live_worker;
struct pl_ws_server;
struct live_blob;

struct worker {
    struct app *app;
    int id;
    uv_loop_t loop;
    uv_thread_t thread;
    int listen_fd;
    struct pl_http_server *http;
    struct pl_pg_pool *pg;
    struct pl_redis *redis;
    struct pl_ratelimit *ratelimit;
    struct auth_worker *auth; /* sessions and password hashing (server/auth) */
    uv_async_t wakeup;
    _Atomic int command; /* 0 none, 1 responses close connections, 2 stop accepting and drain */
    uv_timer_t tick;     /* log flush and stats publishing */
    uint64_t ticks;
    struct worker_stats stats;
    struct live_worker *live;                 /* the WebSocket side (server/live) */
    struct pl_ws_server *ws_done;             /* its lws context, being torn down */
    uv_async_t live_async;                    /* the sampler has a new metrics message */
    _Atomic(struct live_blob *) live_pending; /* that message (latest wins) */
    struct pl_redis_script *events_script;    /* the publish script (server/events.c) */
    uv_timer_t events_sweep;                  /* the outbox sweeper (worker 0) */
    bool events_sweep_on, events_sweeping;
    bool stopping;
    int stop_parts;      /* shutdown steps still running (HTTP drain, WebSocket closes) */
    _Atomic bool exited; /* the worker's loop has returned */
};

/* The worker that owns a request. */
static inline struct worker *req_worker(const struct pl_http_request *req)
{
    return pl_req_ctx(req);
}

/* The feature route tables, in router order (server/routes.c). */
struct pl_route *const *app_route_tables(size_t *n);
/* Builds the router and metrics from the feature route tables, and what features need before
 * any worker starts (server/app.c). Returns 0, or PL_E_CONFIG (a bad setting) or another code
 * with the reason in err. app_dispose undoes it. */
int app_init(struct app *app, char *err, size_t errlen);
void app_dispose(struct app *app);
/* Starts the worker's loop objects: pool, redis, HTTP server. Called on the worker thread. */
int worker_start(struct worker *w);
/* Registers every feature's prepared statements on a new pool. */
int app_prepare_statements(struct pl_pg_pool *pool);
/* The dispatch hook of the HTTP server: guards, then the route's handler. */
void app_dispatch(struct pl_http_request *req, void *ctx);

#endif
