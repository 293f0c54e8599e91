/* Per-route request counters and latency histograms shared by every worker thread.
 * Relaxed atomics: each value is independent and only ever added to. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "pl/buf.h"

static const int status_codes[] = {101, 200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405,
                                   408, 409, 411, 412, 413, 415, 422, 429, 431, 500, 501, 503};
#define NSTATUS ((int)(sizeof status_codes / sizeof status_codes[0]) + 1) /* + other */

static const double bucket_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
#define NBUCKETS ((int)(sizeof bucket_bounds / sizeof bucket_bounds[0]))

struct pl_http_metrics {
    const struct pl_router *router;
    size_t nslots;            /* routes + unmatched + static */
    _Atomic uint64_t *counts; /* [slot][method][status] */
    _Atomic uint64_t *hist;   /* [slot][NBUCKETS + 1], non-cumulative */
    _Atomic uint64_t *sum_ns; /* [slot] */
    _Atomic uint64_t requests;
    _Atomic uint64_t errors;
    _Atomic uint64_t log2us[64];
    _Atomic uint64_t total_ns;
};

struct pl_http_metrics *pl_http_metrics_create(const struct pl_router *router)
{
    struct pl_http_metrics *m = calloc(1, sizeof *m);
    if (!m) abort();
    m->router = router;
    m->nslots = pl_router_count(router) + 2;
    m->counts = calloc(m->nslots * PL_METHOD_COUNT * NSTATUS, sizeof *m->counts);
    m->hist = calloc(m->nslots * (NBUCKETS + 1), sizeof *m->hist);
    m->sum_ns = calloc(m->nslots, sizeof *m->sum_ns);
    if (!m->counts || !m->hist || !m->sum_ns) abort();
    return m;
}

void pl_http_metrics_destroy(struct pl_http_metrics *m)
{
    if (!m) return;
    free(m->counts);
    free(m->hist);
    free(m->sum_ns);
    free(m);
}

static size_t slot_of(const struct pl_http_metrics *m, int route_index)
{
    if (route_index >= 0 && (size_t)route_index < m->nslots - 2) return (size_t)route_index;
    return route_index == PL_ROUTE_STATIC ? m->nslots - 1 : m->nslots - 2;
}

static int status_index(int status)
{
    for (int i = 0; i < NSTATUS - 1; i++)
        if (status_codes[i] == status) return i;
    return NSTATUS - 1;
}

void pl_http_metrics_record(struct pl_http_metrics *m, int route_index, unsigned method, int status,
                            uint64_t duration_ns)
{
    size_t slot = slot_of(m, route_index);
    int mi = method ? pl_method_index(method) : PL_METHOD_COUNT - 1;
    atomic_fetch_add_explicit(
        &m->counts[(slot * PL_METHOD_COUNT + (size_t)mi) * NSTATUS + (size_t)status_index(status)],
        1, memory_order_relaxed);
    double secs = (double)duration_ns / 1e9;
    int b = 0;
    while (b < NBUCKETS && secs > bucket_bounds[b])
        b++;
    atomic_fetch_add_explicit(&m->hist[slot * (NBUCKETS + 1) + (size_t)b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_ns[slot], duration_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->requests, 1, memory_order_relaxed);
    if (status >= 500) atomic_fetch_add_explicit(&m->errors, 1, memory_order_relaxed);
    uint64_t us = duration_ns / 1000;
    int l = us ? 64 - __builtin_clzll(us) : 0;
    if (l > 63) l = 63;
    atomic_fetch_add_explicit(&m->log2us[l], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->total_ns, duration_ns, memory_order_relaxed);
}

static const char *slot_name(const struct pl_http_metrics *m, size_t slot)
{
    if (slot == m->nslots - 1) return "static";
    if (slot == m->nslots - 2) return "unmatched";
    return pl_router_at(m->router, slot)->pattern;
}

void pl_http_metrics_render(const struct pl_http_metrics *m, struct pl_buf *out)
{
    pl_buf_puts(out, "# HELP pulse_http_requests_total HTTP requests by route, method and status.\n"
                     "# TYPE pulse_http_requests_total counter\n");
    for (size_t slot = 0; slot < m->nslots; slot++) {
        for (int mi = 0; mi < PL_METHOD_COUNT; mi++) {
            for (int si = 0; si < NSTATUS; si++) {
                uint64_t v = atomic_load_explicit(
                    &m->counts[(slot * PL_METHOD_COUNT + (size_t)mi) * NSTATUS + (size_t)si],
                    memory_order_relaxed);
                if (!v) continue;
                char st[16];
                if (si == NSTATUS - 1)
                    strcpy(st, "other");
                else
                    snprintf(st, sizeof st, "%d", status_codes[si]);
                pl_buf_printf(out,
                              "pulse_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"}"
                              " %llu\n",
                              slot_name(m, slot), pl_method_name(1u << mi), st,
                              (unsigned long long)v);
            }
        }
    }
    pl_buf_puts(out, "# HELP pulse_http_request_duration_seconds HTTP request latency by route.\n"
                     "# TYPE pulse_http_request_duration_seconds histogram\n");
    for (size_t slot = 0; slot < m->nslots; slot++) {
        uint64_t total = 0;
        for (int b = 0; b <= NBUCKETS; b++)
            total += atomic_load_explicit(&m->hist[slot * (NBUCKETS + 1) + (size_t)b],
                                          memory_order_relaxed);
        if (!total) continue;
        const char *name = slot_name(m, slot);
        uint64_t cum = 0;
        for (int b = 0; b <= NBUCKETS; b++) {
            cum += atomic_load_explicit(&m->hist[slot * (NBUCKETS + 1) + (size_t)b],
                                        memory_order_relaxed);
            if (b < NBUCKETS)
                pl_buf_printf(out,
                              "pulse_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
                              "%llu\n",
                              name, bucket_bounds[b], (unsigned long long)cum);
            else
                pl_buf_printf(out,
                              "pulse_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"}"
                              " %llu\n",
                              name, (unsigned long long)cum);
        }
        pl_buf_printf(out, "pulse_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name,
                      (double)atomic_load_explicit(&m->sum_ns[slot], memory_order_relaxed) / 1e9);
        pl_buf_printf(out, "pulse_http_request_duration_seconds_count{route=\"%s\"} %llu\n", name,
                      (unsigned long long)total);
    }
}

void pl_http_metrics_snapshot(const struct pl_http_metrics *m, struct pl_http_snapshot *out)
{
    out->requests = atomic_load_explicit(&m->requests, memory_order_relaxed);
    out->errors = atomic_load_explicit(&m->errors, memory_order_relaxed);
    out->duration_ns = atomic_load_explicit(&m->total_ns, memory_order_relaxed);
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
