/* metrics: one registry of counters, gauges and histograms, and their Prometheus text
 * exposition (format 0.0.4), written here and nowhere else.
 *
 * A registry is created with the prefix of its metric names ("app_"): modules add their
 * families with names relative to it ("http_requests_total" → "app_http_requests_total");
 * standard names that take no prefix (process_*) say so with PL_METRIC_NO_PREFIX.
 *
 * Labels are dimensions with a fixed list of values, known when the family is added
 * (routes, methods, status codes, states, classes). A series is one combination of label
 * values, addressed by its index (pl_metric_series), so an update on the hot path is one
 * relaxed atomic add with no lookup, no lock and no allocation: as cheap as a bare atomic.
 *
 * Values are 64-bit integers; a histogram observes integers in a unit of its own (e.g.
 * nanoseconds) and renders bounds and sums multiplied by `scale` (1e-9: seconds), so that
 * buckets are integer compares and sums exact. Gauges flagged PL_METRIC_FLOAT hold doubles.
 *
 * Threads: add families, collectors and render hooks before the registry is shared; after
 * that every update, read and render is safe from any thread. Collectors run at the start
 * of each render, on the rendering thread, to set values kept elsewhere (pool sizes,
 * /proc figures). */
#ifndef PL_METRICS_H
#define PL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "pl/error.h"

struct pl_buf;
struct pl_metrics;
struct pl_metric;

enum pl_metric_type { PL_METRIC_COUNTER, PL_METRIC_GAUGE, PL_METRIC_HISTOGRAM };

enum {
    PL_METRIC_NO_PREFIX = 1u << 0, /* the name is complete: the registry's prefix is not added */
    PL_METRIC_HIDE_ZERO = 1u << 1, /* series that are 0 (histograms: never observed) are left
                                    * out; HELP and TYPE are always written */
    PL_METRIC_FLOAT = 1u << 2,     /* counter or gauge holding a double (pl_metric_set_double) */
};

#define PL_METRIC_MAX_LABELS 4
#define PL_METRIC_MAX_BOUNDS 32

/* One label dimension: its name and every value it takes (index i = values[i]). Both are
 * copied by pl_metrics_add. */
struct pl_metric_label {
    const char *name;
    const char *const *values;
    size_t count;
};

struct pl_metric_def {
    enum pl_metric_type type;
    const char *name; /* [a-zA-Z_:][a-zA-Z0-9_:]*, relative to the prefix */
    const char *help; /* one line */
    unsigned flags;
    const struct pl_metric_label *labels; /* nlabels dimensions, first = most significant */
    size_t nlabels;
    /* histograms: upper bounds in rendered units, ascending, at most PL_METRIC_MAX_BOUNDS;
     * +Inf is implied */
    const double *bounds;
    size_t nbounds;
    double scale; /* histograms: rendered = observed * scale; 0 means 1 */
};

/* Creates an empty registry whose names start with `prefix` (copied; may be ""). */
PL_MUST_USE int pl_metrics_create(const char *prefix, struct pl_metrics **out);
/* Frees the registry and every family in it; NULL is a no-op. */
void pl_metrics_destroy(struct pl_metrics *reg);

/* Adds a family; returns it (owned by the registry, valid until pl_metrics_destroy), or NULL
 * when the definition is invalid (bad name, a name taken, too many labels, unsorted or
 * missing bounds, a label without values). Families render in the order they were added. */
struct pl_metric *pl_metrics_add(struct pl_metrics *reg, const struct pl_metric_def *def);

/* The family named `name` (complete, prefix included), or NULL. */
struct pl_metric *pl_metrics_find(const struct pl_metrics *reg, const char *name);

/* Runs fn(reg, ctx) at the start of every render (ctx borrowed until destroy). At most 8. */
PL_MUST_USE int pl_metrics_on_collect(struct pl_metrics *reg,
                                      void (*fn)(struct pl_metrics *reg, void *ctx), void *ctx);

/* The series index of one value per label (idx[nlabels], each < its label's count; NULL
 * for a family without labels, whose only series is 0). An index out of range gives the
 * label's last value: families reserve it for "other" where that can happen. */
size_t pl_metric_series(const struct pl_metric *m, const size_t *idx);
size_t pl_metric_series_count(const struct pl_metric *m);

/* Counters: add n. Gauges: add n (negative to decrease). Relaxed atomic, any thread. */
void pl_metric_add(struct pl_metric *m, size_t series, int64_t n);
/* Gauges, and counters mirrored from a count kept elsewhere: replace the value. */
void pl_metric_set(struct pl_metric *m, size_t series, int64_t v);
void pl_metric_set_double(struct pl_metric *m, size_t series, double v); /* PL_METRIC_FLOAT */
/* Histograms: counts one observation of `v` (in observed units) in its bucket and sum. */
void pl_metric_observe(struct pl_metric *m, size_t series, uint64_t v);

int64_t pl_metric_get(const struct pl_metric *m, size_t series);
double pl_metric_get_double(const struct pl_metric *m, size_t series);
/* Histograms: observations and their sum (observed units) of one series; `buckets` (may be
 * NULL) receives nbounds + 1 non-cumulative counts, the last one past every bound. */
void pl_metric_histogram(const struct pl_metric *m, size_t series, uint64_t *count, uint64_t *sum,
                         uint64_t *buckets);

/* Appends the text exposition of every family to `out`, after running the collectors. */
void pl_metrics_render(struct pl_metrics *reg, struct pl_buf *out);

/* Writes `s` as a Prometheus label value (without the quotes) into out[cap]: backslash,
 * double quote and newline escaped. Returns the length it needed (a snprintf contract). */
size_t pl_metrics_escape_label(char *out, size_t cap, const char *s);

#endif
