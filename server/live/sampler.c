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
#include "pl/process.h"
#include "pl/sysmetrics.h"

#define HISTORY_MS  60000
#define HISTORY_MAX 1200 /* 60 s at the fastest 50 ms interval */

struct sample {
    uint64_t at_ms; /* monotonic */
    struct pl_http_snapshot http;
    int inflight_peak;
    uint64_t rss_bytes;
};

static struct {
    struct app *app;
    struct pl_sysmetrics *sys;
    uv_timer_t timer;
    bool running;
    struct pl_http_snapshot prev;
    uint64_t prev_ns;
    pthread_mutex_t lock; /* guards the history for live_scaling_report */
    struct sample history[HISTORY_MAX];
    size_t head, count; /* ring: oldest at head */
} S = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void history_push(const struct sample *s)
{
    pthread_mutex_lock(&S.lock);
    size_t i = (S.head + S.count) % HISTORY_MAX;
    S.history[i] = *s;
    if (S.count < HISTORY_MAX)
        S.count++;
    else
        S.head = (S.head + 1) % HISTORY_MAX;
    while (S.count > 1 && s->at_ms - S.history[S.head].at_ms > HISTORY_MS) {
        S.head = (S.head + 1) % HISTORY_MAX;
        S.count--;
    }
    pthread_mutex_unlock(&S.lock);
}

static double round2(double v)
{
    return round(v * 100.0) / 100.0;
}

static void publish(struct live_blob *b)
{
    struct app *app = S.app;
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
    struct app *app = S.app;
    uint64_t now_ns = uv_hrtime();
    struct pl_sys_sample sys;
    if (pl_sysmetrics_sample(S.sys, (int64_t)(now_ns / 1000), &sys) != 0)
        pl_debug("sysmetrics: no source readable");
    struct pl_http_snapshot snap;
    pl_http_metrics_snapshot(app->metrics, &snap);
    double secs = S.prev_ns ? (double)(now_ns - S.prev_ns) / 1e9 : 0;
    double rps = secs > 0 ? (double)(snap.requests - S.prev.requests) / secs : 0;
    double eps = secs > 0 ? (double)(snap.errors - S.prev.errors) / secs : 0;
    int busy = 0, size = 0, peak = 0;
    for (int i = 0; i < app->nworkers; i++) {
        busy += atomic_load(&app->workers[i].stats.pg_busy);
        size += atomic_load(&app->workers[i].stats.pg_size);
        peak += atomic_exchange(&app->workers[i].stats.inflight_peak, 0);
    }
    char system[512];
    if (pl_sys_sample_json(&sys, system, sizeof system) < 0) strcpy(system, "{}");
    char now[32];
    pl_time_format_rfc3339(live_now_us(), now);
    char text[1024];
    int n = snprintf(text, sizeof text,
                     "{\"type\":\"metrics\",\"ts\":\"%s\","
                     "\"system\":%s,\"server\":{\"requests_per_s\":%.2f,\"p50_ms\":%.3f,"
                     "\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"connections\":%d,\"ws_clients\":%d,"
                     "\"db_pool_busy\":%d,\"db_pool_size\":%d,\"errors_per_s\":%.2f}}",
                     now, system, round2(rps), pl_http_snapshot_quantile(&S.prev, &snap, 0.50),
                     pl_http_snapshot_quantile(&S.prev, &snap, 0.95),
                     pl_http_snapshot_quantile(&S.prev, &snap, 0.99), atomic_load(&app->conn_count),
                     atomic_load(&app->ws_clients), busy, size, round2(eps));
    S.prev = snap;
    S.prev_ns = now_ns;
    if (n > 0 && (size_t)n < sizeof text) {
        struct live_blob *b = malloc(sizeof *b + (size_t)n + 1);
        if (!b) abort();
        atomic_init(&b->refs, 1);
        b->len = (size_t)n;
        memcpy(b->text, text, (size_t)n + 1);
        publish(b);
    }
    struct pl_process_stats ps;
    pl_process_stats(&ps);
    struct sample s = {
        .at_ms = now_ns / 1000000, .http = snap, .inflight_peak = peak, .rss_bytes = ps.rss_bytes};
    history_push(&s);
}

int live_sampler_start(struct app *app, uv_loop_t *loop)
{
    S.app = app;
    int rc = pl_sysmetrics_create("/proc", "/", &S.sys);
    if (rc) return rc;
    uv_timer_init(loop, &S.timer);
    uint64_t every = (uint64_t)app->cfg.metrics_interval_ms;
    uv_timer_start(&S.timer, on_sample, every, every);
    S.running = true;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    pl_sysmetrics_destroy(S.sys);
    S.sys = NULL;
}

void live_sampler_stop(void)
{
    if (!S.running) return;
    S.running = false;
    uv_close((uv_handle_t *)&S.timer, on_timer_closed);
}

/* ---- the scaling advisor ---- */

static void trigger(json_t *triggers, const char *name, const char *level, double value,
                    double threshold, const char *message)
{
    json_array_append_new(triggers, json_pack("{s:s, s:s, s:f, s:f, s:s}", "name", name, "level",
                                              level, "value", round2(value), "threshold", threshold,
                                              "message", message));
}

json_t *live_scaling_report(struct app *app)
{
    const struct pulse_config *cfg = &app->cfg;
    pthread_mutex_lock(&S.lock);
    size_t count = S.count;
    struct sample first = {0}, last = {0};
    int peak = 0;
    size_t busy_samples = 0;
    double rss_sum = 0;
    for (size_t k = 0; k < count; k++) {
        const struct sample *s = &S.history[(S.head + k) % HISTORY_MAX];
        if (k == 0) first = *s;
        last = *s;
        if (s->inflight_peak > peak) peak = s->inflight_peak;
        if (s->inflight_peak > cfg->scale_concurrency) busy_samples++;
        rss_sum += (double)s->rss_bytes;
    }
    pthread_mutex_unlock(&S.lock);

    uint64_t requests = last.http.requests - first.http.requests;
    uint64_t errors = last.http.errors - first.http.errors;
    double avg_ms =
        requests ? (double)(last.http.duration_ns - first.http.duration_ns) / 1e6 / (double)requests
                 : 0;
    double p95 = count > 1 ? pl_http_snapshot_quantile(&first.http, &last.http, 0.95) : 0;
    double error_rate = requests ? (double)errors / (double)requests : 0;
    double rss_mb = count ? rss_sum / (double)count / 1048576.0 : 0;
    if (!count) {
        struct pl_process_stats ps;
        pl_process_stats(&ps);
        rss_mb = (double)ps.rss_bytes / 1048576.0;
    }

    json_t *triggers = json_array();
    bool scale = false;
    if (p95 > (double)cfg->scale_p95_ms) {
        scale = true;
        trigger(triggers, "p95_latency", "scale", p95, (double)cfg->scale_p95_ms,
                "p95 response time is over the scaling threshold");
    } else if (p95 > (double)cfg->scale_p95_warn_ms) {
        trigger(triggers, "p95_latency", "warn", p95, (double)cfg->scale_p95_warn_ms,
                "p95 response time is over the warning threshold");
    }
    /* Sustained: over the threshold in at least half of the last minute's samples. */
    if (count && busy_samples * 2 >= count) {
        scale = true;
        trigger(triggers, "concurrency", "scale", peak, (double)cfg->scale_concurrency,
                "requests in flight stayed over the threshold");
    }
    if (rss_mb > (double)cfg->scale_rss_mb) {
        scale = true;
        trigger(triggers, "memory", "scale", rss_mb, (double)cfg->scale_rss_mb,
                "resident memory is over the threshold");
    }
    if (requests >= 20 && error_rate * 100.0 > (double)cfg->scale_error_percent) {
        scale = true;
        trigger(triggers, "error_rate", "scale", error_rate, cfg->scale_error_percent / 100.0,
                "the share of 5xx answers is over the threshold");
    }
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
    double window_s = count > 1 ? (double)(last.at_ms - first.at_ms) / 1000.0 : 0;
    return json_pack("{s:s, s:b, s:o, s:s, s:f, s:{s:f, s:f, s:i, s:f, s:f, s:I}}", "profile",
                     profile, "should_scale", scale, "triggers", triggers, "recommendation",
                     recommendation, "window_s", round2(window_s), "metrics", "avg_response_ms",
                     round2(avg_ms), "p95_ms", round2(p95), "peak_concurrent", peak, "rss_mb",
                     round2(rss_mb), "error_rate", round(error_rate * 10000.0) / 10000.0,
                     "requests", (json_int_t)requests);
}
