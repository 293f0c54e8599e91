/* Per-route request counters and latency histograms, in the metrics registry, shared by
 * every worker thread. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "pl/mem.h"
#include "pl/metrics.h"

static const int status_codes[] = {101, 200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405,
                                   408, 409, 411, 412, 413, 415, 422, 429, 431, 500, 501, 503};
#define NSTATUS ((int)(sizeof status_codes / sizeof status_codes[0]) + 1) /* + other */

static const double bucket_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
#define NBUCKETS ((int)(sizeof bucket_bounds / sizeof bucket_bounds[0]))

/* The families live in the registry; this keeps their handles and the whole-server
 * figures of the live sampler and the scaling advisor (not Prometheus metrics: log2
 * buckets of microseconds reach past the histogram's 2.5 s top bucket). */
struct pl_http_metrics {
    struct pl_metric *requests; /* {route, method, status} */
    struct pl_metric *duration; /* {route} */
    size_t nroutes;             /* routes + unmatched + static */
    _Atomic uint64_t errors;
    _Atomic uint64_t log2us[64];
};

struct pl_http_metrics *pl_http_metrics_create(struct pl_metrics *reg,
                                               const struct pl_router *router)
{
    size_t nroutes = pl_router_count(router) + 2;
    const char **routes = pl_xcalloc(nroutes, sizeof *routes);
    const char *methods[PL_METHOD_COUNT];
    const char *statuses[NSTATUS];
    char codes[NSTATUS][8];
    for (size_t i = 0; i < nroutes - 2; i++)
        routes[i] = pl_router_at(router, i)->pattern;
    routes[nroutes - 2] = "unmatched";
    routes[nroutes - 1] = "static";
    for (int i = 0; i < PL_METHOD_COUNT; i++)
        methods[i] = pl_method_name(1u << i);
    for (int i = 0; i < NSTATUS - 1; i++) {
        snprintf(codes[i], sizeof codes[i], "%d", status_codes[i]);
        statuses[i] = codes[i];
    }
    statuses[NSTATUS - 1] = "other";
    const struct pl_metric_label labels[] = {
        {.name = "route", .values = routes, .count = nroutes},
        {.name = "method", .values = methods, .count = PL_METHOD_COUNT},
        {.name = "status", .values = statuses, .count = NSTATUS},
    };
    const struct pl_metric_def requests = {
        .type = PL_METRIC_COUNTER,
        .name = "http_requests_total",
        .help = "HTTP requests by route, method and status.",
        .flags = PL_METRIC_HIDE_ZERO,
        .labels = labels,
        .nlabels = 3,
    };
    const struct pl_metric_def duration = {
        .type = PL_METRIC_HISTOGRAM,
        .name = "http_request_duration_seconds",
        .help = "HTTP request latency by route.",
        .flags = PL_METRIC_HIDE_ZERO,
        .labels = labels,
        .nlabels = 1,
        .bounds = bucket_bounds,
        .nbounds = NBUCKETS,
        .scale = 1e-9, /* observed in nanoseconds */
    };
    struct pl_metric *r = pl_metrics_add(reg, &requests);
    struct pl_metric *d = r ? pl_metrics_add(reg, &duration) : NULL;
    free(routes);
    if (!d) return NULL;
    struct pl_http_metrics *m = pl_xcalloc(1, sizeof *m);
    m->requests = r;
    m->duration = d;
    m->nroutes = nroutes;
    return m;
}

void pl_http_metrics_destroy(struct pl_http_metrics *m)
{
    free(m);
}

static size_t slot_of(const struct pl_http_metrics *m, int route_index)
{
    if (route_index >= 0 && (size_t)route_index < m->nroutes - 2) return (size_t)route_index;
    return route_index == PL_ROUTE_STATIC ? m->nroutes - 1 : m->nroutes - 2;
}

static size_t status_index(int status)
{
    for (int i = 0; i < NSTATUS - 1; i++)
        if (status_codes[i] == status) return (size_t)i;
    return NSTATUS - 1;
}

void pl_http_metrics_record(struct pl_http_metrics *m, int route_index, unsigned method, int status,
                            uint64_t duration_ns)
{
    size_t slot = slot_of(m, route_index);
    size_t mi = (size_t)(method ? pl_method_index(method) : PL_METHOD_COUNT - 1);
    size_t idx[3] = {slot, mi, status_index(status)};
    pl_metric_add(m->requests, pl_metric_series(m->requests, idx), 1);
    pl_metric_observe(m->duration, slot, duration_ns);
    if (status >= 500) atomic_fetch_add_explicit(&m->errors, 1, memory_order_relaxed);
    uint64_t us = duration_ns / 1000;
    int l = us ? 64 - __builtin_clzll(us) : 0;
    if (l > 63) l = 63;
    atomic_fetch_add_explicit(&m->log2us[l], 1, memory_order_relaxed);
}

void pl_http_metrics_snapshot(const struct pl_http_metrics *m, struct pl_http_snapshot *out)
{
    /* Requests and their total time are the duration histogram's counts and sums. */
    out->requests = out->duration_ns = 0;
    for (size_t slot = 0; slot < m->nroutes; slot++) {
        uint64_t count, sum;
        pl_metric_histogram(m->duration, slot, &count, &sum, NULL);
        out->requests += count;
        out->duration_ns += sum;
    }
    out->errors = atomic_load_explicit(&m->errors, memory_order_relaxed);
    for (int i = 0; i < 64; i++)
        out->buckets[i] = atomic_load_explicit(&m->log2us[i], memory_order_relaxed);
}

double pl_http_snapshot_quantile(const struct pl_http_snapshot *a, const struct pl_http_snapshot *b,
                                 double q)
{
    uint64_t total = 0;
    for (int i = 0; i < 64; i++)
        total += b->buckets[i] - a->buckets[i];
    if (!total) return 0;
    uint64_t want = (uint64_t)ceil(q * (double)total), seen = 0;
    if (want == 0) want = 1;
    for (int i = 0; i < 64; i++) {
        uint64_t n = b->buckets[i] - a->buckets[i];
        if (seen + n >= want) {
            /* bucket i holds [2^(i-1), 2^i) µs: interpolate linearly inside it */
            double lo = i ? ldexp(1.0, i - 1) : 0, hi = ldexp(1.0, i);
            double frac = n ? (double)(want - seen) / (double)n : 1;
            return (lo + (hi - lo) * frac) / 1000.0;
        }
        seen += n;
    }
    return 0;
}
