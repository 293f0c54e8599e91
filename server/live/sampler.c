/* live: the process side. One timer on the main loop samples the host and the server every
 * PULSE_METRICS_INTERVAL_MS, builds the metrics message once and hands it to each worker;
 * the last minute of samples feeds the scaling advisor. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "live.h"
#include "pl/json.h"
#include "pl/log.h"
#include "pl/mem.h"
#include "pl/process.h"
#include "pl/sysmetrics.h"
#include "pl/time.h"

#define HISTORY_MS  60000
#define HISTORY_MAX 1200 /* 60 s at the fastest 50 ms interval */

struct sample {
    uint64_t at_ms; /* monotonic */
    struct pl_http_snapshot http;
    int inflight_peak;
    uint64_t rss_bytes;
};

/* The process's sampler (app->sampler): written by the main loop, its history read by any
 * worker answering /api/v1/health/scaling. */
struct live_sampler {
    struct app *app;
    struct pl_sysmetrics *sys;
    uv_timer_t timer;
    bool running;
    struct pl_http_snapshot prev;
    uint64_t prev_ns;
    pthread_mutex_t lock; /* guards the history for live_scaling_report */
    struct sample history[HISTORY_MAX];
    size_t head, count; /* ring: oldest at head */
};

static void history_push(struct live_sampler *S, const struct sample *s)
{
    pthread_mutex_lock(&S->lock);
    size_t i = (S->head + S->count) % HISTORY_MAX;
    S->history[i] = *s;
    if (S->count < HISTORY_MAX)
        S->count++;
    else
        S->head = (S->head + 1) % HISTORY_MAX;
    while (S->count > 1 && s->at_ms - S->history[S->head].at_ms > HISTORY_MS) {
        S->head = (S->head + 1) % HISTORY_MAX;
        S->count--;
    }
    pthread_mutex_unlock(&S->lock);
}

static double round2(double v)
{
    return round(v * 100.0) / 100.0;
}

static void publish(struct app *app, struct live_blob *b)
{
    for (int i = 0; i < app->nworkers; i++) {
        struct worker *w = &app->workers[i];
        if (atomic_load(&w->exited)) continue;
        atomic_fetch_add(&b->refs, 1);
        live_blob_unref(atomic_exchange(&w->live_pending, b));
        uv_async_send(&w->live_async);
    }
    live_blob_unref(b);
}

static void on_sample(uv_timer_t *t)
{
    struct live_sampler *S = t->data;
    struct app *app = S->app;
    uint64_t now_ns = uv_hrtime();
    struct pl_sys_sample sys;
    if (pl_sysmetrics_sample(S->sys, (int64_t)(now_ns / 1000), &sys) != 0)
        pl_debug("sysmetrics: no source readable");
    struct pl_http_snapshot snap;
    pl_http_metrics_snapshot(app->metrics, &snap);
    double secs = S->prev_ns ? (double)(now_ns - S->prev_ns) / 1e9 : 0;
    double rps = secs > 0 ? (double)(snap.requests - S->prev.requests) / secs : 0;
    double eps = secs > 0 ? (double)(snap.errors - S->prev.errors) / secs : 0;
    int busy = 0, size = 0, peak = 0;
    for (int i = 0; i < app->nworkers; i++) {
        busy += atomic_load(&app->workers[i].stats.pg_busy);
        size += atomic_load(&app->workers[i].stats.pg_size);
        peak += atomic_exchange(&app->workers[i].stats.inflight_peak, 0);
    }
    char system[512];
    if (pl_sys_sample_json(&sys, system, sizeof system) < 0) strcpy(system, "{}");
    char now[32];
    pl_time_format_rfc3339(pl_time_now_us(), now);
    char text[1024];
    int n =
        snprintf(text, sizeof text,
                 "{\"type\":\"metrics\",\"ts\":\"%s\","
                 "\"system\":%s,\"server\":{\"requests_per_s\":%.2f,\"p50_ms\":%.3f,"
                 "\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"connections\":%d,\"ws_clients\":%d,"
                 "\"db_pool_busy\":%d,\"db_pool_size\":%d,\"errors_per_s\":%.2f}}",
                 now, system, round2(rps), pl_http_snapshot_quantile(&S->prev, &snap, 0.50),
                 pl_http_snapshot_quantile(&S->prev, &snap, 0.95),
                 pl_http_snapshot_quantile(&S->prev, &snap, 0.99), atomic_load(&app->conn_count),
                 atomic_load(&app->ws_clients), busy, size, round2(eps));
    S->prev = snap;
    S->prev_ns = now_ns;
    if (n > 0 && (size_t)n < sizeof text) {
        struct live_blob *b = pl_xmalloc(sizeof *b + (size_t)n + 1);
        atomic_init(&b->refs, 1);
        b->len = (size_t)n;
        memcpy(b->text, text, (size_t)n + 1);
        publish(app, b);
    }
    struct pl_process_stats ps;
    pl_process_stats(&ps);
    struct sample s = {
        .at_ms = now_ns / 1000000, .http = snap, .inflight_peak = peak, .rss_bytes = ps.rss_bytes};
    history_push(S, &s);
}

int live_sampler_start(struct app *app, uv_loop_t *loop)
{
    struct live_sampler *S = pl_xcalloc(1, sizeof *S);
    S->app = app;
    pthread_mutex_init(&S->lock, NULL);
    int rc = pl_sysmetrics_create("/proc", "/", &S->sys);
    if (rc) {
        pthread_mutex_destroy(&S->lock);
        free(S);
        return rc;
    }
    uv_timer_init(loop, &S->timer);
    S->timer.data = S;
    uint64_t every = (uint64_t)app->cfg.metrics_interval_ms;
    uv_timer_start(&S->timer, on_sample, every, every);
    S->running = true;
    app->sampler = S;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct live_sampler *S = h->data;
    pl_sysmetrics_destroy(S->sys);
    S->sys = NULL;
}

void live_sampler_stop(struct app *app)
{
    struct live_sampler *S = app->sampler;
    if (!S || !S->running) return;
    S->running = false;
    uv_close((uv_handle_t *)&S->timer, on_timer_closed);
}

void live_sampler_destroy(struct app *app)
{
    struct live_sampler *S = app->sampler;
    if (!S) return;
    pthread_mutex_destroy(&S->lock);
    free(S);
    app->sampler = NULL;
}

/* ---- the scaling advisor ---- */

static void trigger(json_t *triggers, const char *name, const char *level, double value,
                    double threshold, const char *message)
{
    json_array_append_new(triggers, json_pack("{s:s, s:s, s:f, s:f, s:s}", "name", name, "level",
                                              level, "value", round2(value), "threshold", threshold,
                                              "message", message));
}

/* What the last minute of samples says. */
struct window {
    size_t count;              /* samples */
    struct sample first, last; /* the oldest and the newest */
    int peak;                  /* most requests in flight at once */
    size_t busy_samples;       /* samples whose peak passed PULSE_SCALE_CONCURRENCY */
    double rss_sum;
};

static void window_read(struct live_sampler *S, long long concurrency, struct window *w)
{
    memset(w, 0, sizeof *w);
    if (!S) return;
    pthread_mutex_lock(&S->lock);
    w->count = S->count;
    for (size_t k = 0; k < w->count; k++) {
        const struct sample *s = &S->history[(S->head + k) % HISTORY_MAX];
        if (k == 0) w->first = *s;
        w->last = *s;
        if (s->inflight_peak > w->peak) w->peak = s->inflight_peak;
        if (s->inflight_peak > concurrency) w->busy_samples++;
        w->rss_sum += (double)s->rss_bytes;
    }
    pthread_mutex_unlock(&S->lock);
}

struct figures {
    uint64_t requests;
    double avg_ms, p95, error_rate, rss_mb;
};

static void figures_of(const struct window *w, struct figures *f)
{
    f->requests = w->last.http.requests - w->first.http.requests;
    uint64_t errors = w->last.http.errors - w->first.http.errors;
    f->avg_ms = f->requests ? (double)(w->last.http.duration_ns - w->first.http.duration_ns) / 1e6 /
                                  (double)f->requests
                            : 0;
    f->p95 = w->count > 1 ? pl_http_snapshot_quantile(&w->first.http, &w->last.http, 0.95) : 0;
    f->error_rate = f->requests ? (double)errors / (double)f->requests : 0;
    f->rss_mb = w->count ? w->rss_sum / (double)w->count / 1048576.0 : 0;
    if (!w->count) {
        struct pl_process_stats ps;
        pl_process_stats(&ps);
        f->rss_mb = (double)ps.rss_bytes / 1048576.0;
    }
}

/* Appends the thresholds crossed to triggers; true when one asks for more capacity. */
static bool add_triggers(json_t *triggers, const struct pulse_config *cfg, const struct window *w,
                         const struct figures *f)
{
    bool scale = false;
    if (f->p95 > (double)cfg->scale_p95_ms) {
        scale = true;
        trigger(triggers, "p95_latency", "scale", f->p95, (double)cfg->scale_p95_ms,
                "p95 response time is over the scaling threshold");
    } else if (f->p95 > (double)cfg->scale_p95_warn_ms) {
        trigger(triggers, "p95_latency", "warn", f->p95, (double)cfg->scale_p95_warn_ms,
                "p95 response time is over the warning threshold");
    }
    /* Sustained: over the threshold in at least half of the last minute's samples. */
    if (w->count && w->busy_samples * 2 >= w->count) {
        scale = true;
        trigger(triggers, "concurrency", "scale", w->peak, (double)cfg->scale_concurrency,
                "requests in flight stayed over the threshold");
    }
    if (f->rss_mb > (double)cfg->scale_rss_mb) {
        scale = true;
        trigger(triggers, "memory", "scale", f->rss_mb, (double)cfg->scale_rss_mb,
                "resident memory is over the threshold");
    }
    if (f->requests >= 20 && f->error_rate * 100.0 > (double)cfg->scale_error_percent) {
        scale = true;
        trigger(triggers, "error_rate", "scale", f->error_rate, cfg->scale_error_percent / 100.0,
                "the share of 5xx answers is over the threshold");
    }
    return scale;
}

json_t *live_scaling_report(struct app *app)
{
    const struct pulse_config *cfg = &app->cfg;
    struct window w;
    window_read(app->sampler, cfg->scale_concurrency, &w);
    struct figures f;
    figures_of(&w, &f);
    json_t *triggers = json_array();
    bool scale = add_triggers(triggers, cfg, &w, &f);
    char profile[160];
    if (cfg->scale_profile[0]) {
        snprintf(profile, sizeof profile, "%s", cfg->scale_profile);
    } else {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        snprintf(profile, sizeof profile, "%d workers on %ld cores", app->nworkers, cores);
    }
    const char *recommendation = scale ? "add a replica (or more CPU) and check the triggers"
                                 : json_array_size(triggers)
                                     ? "watch: a warning threshold is crossed"
                                     : "no change";
    double window_s = w.count > 1 ? (double)(w.last.at_ms - w.first.at_ms) / 1000.0 : 0;
    return json_pack("{s:s, s:b, s:o, s:s, s:f, s:{s:f, s:f, s:i, s:f, s:f, s:I}}", "profile",
                     profile, "should_scale", scale, "triggers", triggers, "recommendation",
                     recommendation, "window_s", round2(window_s), "metrics", "avg_response_ms",
                     round2(f.avg_ms), "p95_ms", round2(f.p95), "peak_concurrent", w.peak, "rss_mb",
                     round2(f.rss_mb), "error_rate", round(f.error_rate * 10000.0) / 10000.0,
                     "requests", (json_int_t)f.requests);
}
