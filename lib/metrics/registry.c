/* The metrics registry and the only Prometheus text writer.
 *
 * Every value is a relaxed 64-bit atomic: each one is independent and a scrape may see one
 * a little ahead of another, as Prometheus allows. A histogram series is stored as its
 * non-cumulative buckets followed by its sum, next to each other so one observation touches
 * one or two cache lines; the count is the buckets' total, so a render never shows a count
 * that disagrees with its buckets. */
#include "pl/metrics.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl/buf.h"
#include "pl/mem.h"

#define MAX_COLLECTORS 8

struct label {
    char *name;
    char **values; /* escaped for the exposition */
    size_t count;
};

struct pl_metric {
    struct pl_metric *next;
    enum pl_metric_type type;
    unsigned flags;
    char *name; /* with the prefix */
    char *help; /* escaped */
    struct label labels[PL_METRIC_MAX_LABELS];
    size_t nlabels;
    size_t nseries;
    size_t nbounds;
    uint64_t *bounds; /* observed units */
    char **bound_text;
    double scale;
    size_t stride; /* cells per series */
    _Atomic uint64_t *cells;
};

struct pl_metrics {
    char *prefix;
    struct pl_metric *head, *tail;
    struct {
        void (*fn)(struct pl_metrics *reg, void *ctx);
        void *ctx;
    } collectors[MAX_COLLECTORS];
    int ncollectors;
};

int pl_metrics_create(const char *prefix, struct pl_metrics **out)
{
    *out = NULL;
    if (!prefix) return PL_E_INVALID;
    for (const char *p = prefix; *p; p++)
        if (!(*p == '_' || *p == ':' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (p > prefix && *p >= '0' && *p <= '9')))
            return PL_E_INVALID;
    struct pl_metrics *reg = pl_xcalloc(1, sizeof *reg);
    reg->prefix = pl_xstrdup(prefix);
    *out = reg;
    return 0;
}

static void metric_free(struct pl_metric *m)
{
    for (size_t i = 0; i < m->nlabels; i++) {
        for (size_t k = 0; k < m->labels[i].count; k++)
            free(m->labels[i].values[k]);
        free(m->labels[i].values);
        free(m->labels[i].name);
    }
    for (size_t b = 0; b < m->nbounds; b++)
        free(m->bound_text[b]);
    free(m->bound_text);
    free(m->bounds);
    free(m->cells);
    free(m->name);
    free(m->help);
    free(m);
}

void pl_metrics_destroy(struct pl_metrics *reg)
{
    if (!reg) return;
    struct pl_metric *m = reg->head;
    while (m) {
        struct pl_metric *next = m->next;
        metric_free(m);
        m = next;
    }
    free(reg->prefix);
    free(reg);
}

int pl_metrics_on_collect(struct pl_metrics *reg, void (*fn)(struct pl_metrics *reg, void *ctx),
                          void *ctx)
{
    if (!fn || reg->ncollectors == MAX_COLLECTORS) return PL_E_INVALID;
    reg->collectors[reg->ncollectors].fn = fn;
    reg->collectors[reg->ncollectors].ctx = ctx;
    reg->ncollectors++;
    return 0;
}

/* ---- escaping ---- */

/* Escapes backslash and newline, and the double quote when `quote`; returns the length
 * needed. */
static size_t escape(char *out, size_t cap, const char *s, bool quote)
{
    size_t n = 0;
    for (; *s; s++) {
        char e = 0;
        if (*s == '\\')
            e = '\\';
        else if (*s == '\n')
            e = 'n';
        else if (*s == '"' && quote)
            e = '"';
        if (e) {
            if (n + 1 < cap) out[n] = '\\';
            n++;
            if (n + 1 < cap) out[n] = e;
        } else if (n + 1 < cap) {
            out[n] = *s;
        }
        n++;
    }
    if (cap) out[n < cap ? n : cap - 1] = 0;
    return n;
}

size_t pl_metrics_escape_label(char *out, size_t cap, const char *s)
{
    return escape(out, cap, s, true);
}

static char *escaped_dup(const char *s, bool quote)
{
    size_t n = escape(NULL, 0, s, quote);
    char *p = pl_xcalloc(1, n + 1);
    escape(p, n + 1, s, quote);
    return p;
}

/* ---- families ---- */

static bool valid_name(const char *s, bool colon)
{
    if (!s || !*s) return false;
    for (const char *p = s; *p; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_';
        bool digit = *p >= '0' && *p <= '9';
        if (!(alpha || (colon && *p == ':') || (digit && p > s))) return false;
    }
    return true;
}

static struct pl_metric *find(const struct pl_metrics *reg, const char *name)
{
    for (struct pl_metric *m = reg->head; m; m = m->next)
        if (strcmp(m->name, name) == 0) return m;
    return NULL;
}

struct pl_metric *pl_metrics_find(const struct pl_metrics *reg, const char *name)
{
    return find(reg, name);
}

static bool def_valid(const struct pl_metrics *reg, const struct pl_metric_def *d)
{
    if (!valid_name(d->name, true) || d->nlabels > PL_METRIC_MAX_LABELS) return false;
    if (d->nlabels && !d->labels) return false;
    if (d->type != PL_METRIC_COUNTER && d->type != PL_METRIC_GAUGE &&
        d->type != PL_METRIC_HISTOGRAM)
        return false;
    for (size_t i = 0; i < d->nlabels; i++) {
        const struct pl_metric_label *l = &d->labels[i];
        if (!valid_name(l->name, false) || strncmp(l->name, "__", 2) == 0) return false;
        if (d->type == PL_METRIC_HISTOGRAM && strcmp(l->name, "le") == 0) return false;
        if (l->count == 0 || !l->values) return false;
        for (size_t k = 0; k < l->count; k++)
            if (!l->values[k]) return false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(d->labels[j].name, l->name) == 0) return false;
    }
    if (d->type == PL_METRIC_HISTOGRAM) {
        if (!d->bounds || d->nbounds == 0 || d->nbounds > PL_METRIC_MAX_BOUNDS) return false;
        if (d->flags & PL_METRIC_FLOAT) return false;
        if (d->scale < 0 || !isfinite(d->scale)) return false;
        for (size_t b = 0; b < d->nbounds; b++)
            if (!isfinite(d->bounds[b]) || d->bounds[b] < 0 ||
                (b && d->bounds[b] <= d->bounds[b - 1]))
                return false;
    }
    (void)reg;
    return true;
}

struct pl_metric *pl_metrics_add(struct pl_metrics *reg, const struct pl_metric_def *d)
{
    if (!reg || !d || !def_valid(reg, d)) return NULL;
    bool prefixed = !(d->flags & PL_METRIC_NO_PREFIX);
    size_t len = (prefixed ? strlen(reg->prefix) : 0) + strlen(d->name) + 1;
    char *name = pl_xcalloc(1, len);
    strcpy(name, prefixed ? reg->prefix : "");
    strcat(name, d->name);
    if (find(reg, name)) {
        free(name);
        return NULL;
    }
    struct pl_metric *m = pl_xcalloc(1, sizeof *m);
    m->type = d->type;
    m->flags = d->flags;
    m->name = name;
    m->help = escaped_dup(d->help ? d->help : "", false);
    m->nlabels = d->nlabels;
    m->nseries = 1;
    for (size_t i = 0; i < d->nlabels; i++) {
        struct label *l = &m->labels[i];
        l->name = pl_xstrdup(d->labels[i].name);
        l->count = d->labels[i].count;
        l->values = pl_xcalloc(l->count, sizeof *l->values);
        for (size_t k = 0; k < l->count; k++)
            l->values[k] = escaped_dup(d->labels[i].values[k], true);
        m->nseries *= l->count;
    }
    m->stride = 1;
    if (d->type == PL_METRIC_HISTOGRAM) {
        m->scale = d->scale > 0 ? d->scale : 1;
        m->nbounds = d->nbounds;
        m->bounds = pl_xcalloc(d->nbounds, sizeof *m->bounds);
        m->bound_text = pl_xcalloc(d->nbounds, sizeof *m->bound_text);
        for (size_t b = 0; b < d->nbounds; b++) {
            m->bounds[b] = (uint64_t)llround(d->bounds[b] / m->scale);
            char text[40];
            snprintf(text, sizeof text, "%g", d->bounds[b]);
            m->bound_text[b] = pl_xstrdup(text);
        }
        m->stride = d->nbounds + 2; /* buckets, +Inf, sum */
    }
    m->cells = pl_xcalloc(m->nseries * m->stride, sizeof *m->cells);
    if (reg->tail)
        reg->tail->next = m;
    else
        reg->head = m;
    reg->tail = m;
    return m;
}

size_t pl_metric_series(const struct pl_metric *m, const size_t *idx)
{
    size_t s = 0;
    for (size_t i = 0; i < m->nlabels; i++) {
        size_t k = idx[i] < m->labels[i].count ? idx[i] : m->labels[i].count - 1;
        s = s * m->labels[i].count + k;
    }
    return s;
}

size_t pl_metric_series_count(const struct pl_metric *m)
{
    return m->nseries;
}

/* ---- updates ---- */

static _Atomic uint64_t *cell(const struct pl_metric *m, size_t series)
{
    if (series >= m->nseries) series = m->nseries - 1;
    return &m->cells[series * m->stride];
}

void pl_metric_add(struct pl_metric *m, size_t series, int64_t n)
{
    atomic_fetch_add_explicit(cell(m, series), (uint64_t)n, memory_order_relaxed);
}

void pl_metric_set(struct pl_metric *m, size_t series, int64_t v)
{
    atomic_store_explicit(cell(m, series), (uint64_t)v, memory_order_relaxed);
}

void pl_metric_set_double(struct pl_metric *m, size_t series, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    atomic_store_explicit(cell(m, series), bits, memory_order_relaxed);
}

void pl_metric_observe(struct pl_metric *m, size_t series, uint64_t v)
{
    _Atomic uint64_t *c = cell(m, series);
    size_t b = 0;
    while (b < m->nbounds && v > m->bounds[b])
        b++;
    atomic_fetch_add_explicit(&c[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c[m->nbounds + 1], v, memory_order_relaxed);
}

int64_t pl_metric_get(const struct pl_metric *m, size_t series)
{
    return (int64_t)atomic_load_explicit(cell(m, series), memory_order_relaxed);
}

double pl_metric_get_double(const struct pl_metric *m, size_t series)
{
    uint64_t bits = atomic_load_explicit(cell(m, series), memory_order_relaxed);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

void pl_metric_histogram(const struct pl_metric *m, size_t series, uint64_t *count, uint64_t *sum,
                         uint64_t *buckets)
{
    _Atomic uint64_t *c = cell(m, series);
    uint64_t total = 0;
    for (size_t b = 0; b <= m->nbounds; b++) {
        uint64_t n = atomic_load_explicit(&c[b], memory_order_relaxed);
        if (buckets) buckets[b] = n;
        total += n;
    }
    if (count) *count = total;
    if (sum) *sum = atomic_load_explicit(&c[m->nbounds + 1], memory_order_relaxed);
}

/* ---- exposition ---- */

static const char *const type_names[] = {"counter", "gauge", "histogram"};

/* `label="value",...` of a series (no braces), into the buffer. */
static void put_labels(struct pl_buf *out, const struct pl_metric *m, size_t series)
{
    size_t idx[PL_METRIC_MAX_LABELS];
    for (size_t i = m->nlabels; i-- > 0;) {
        idx[i] = series % m->labels[i].count;
        series /= m->labels[i].count;
    }
    for (size_t i = 0; i < m->nlabels; i++) {
        if (i) pl_buf_puts(out, ",");
        pl_buf_puts(out, m->labels[i].name);
        pl_buf_puts(out, "=\"");
        pl_buf_puts(out, m->labels[i].values[idx[i]]);
        pl_buf_puts(out, "\"");
    }
}

static void put_value(struct pl_buf *out, const struct pl_metric *m, size_t series)
{
    if (m->flags & PL_METRIC_FLOAT) {
        double v = pl_metric_get_double(m, series);
        if (isnan(v))
            pl_buf_puts(out, "NaN");
        else if (isinf(v))
            pl_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
        else
            pl_buf_printf(out, "%.6f", v);
    } else if (m->type == PL_METRIC_COUNTER) {
        pl_buf_printf(out, "%llu", (unsigned long long)pl_metric_get(m, series));
    } else {
        pl_buf_printf(out, "%lld", (long long)pl_metric_get(m, series));
    }
}

static void render_simple(struct pl_buf *out, const struct pl_metric *m, size_t series)
{
    if ((m->flags & PL_METRIC_HIDE_ZERO) && pl_metric_get(m, series) == 0) return;
    pl_buf_puts(out, m->name);
    if (m->nlabels) {
        pl_buf_puts(out, "{");
        put_labels(out, m, series);
        pl_buf_puts(out, "}");
    }
    pl_buf_puts(out, " ");
    put_value(out, m, series);
    pl_buf_puts(out, "\n");
}

/* name_suffix{labels[,extra]} */
static void series_head(struct pl_buf *out, const struct pl_metric *m, size_t series,
                        const char *suffix, const char *le)
{
    pl_buf_puts(out, m->name);
    pl_buf_puts(out, suffix);
    if (!m->nlabels && !le) return;
    pl_buf_puts(out, "{");
    put_labels(out, m, series);
    if (le) {
        pl_buf_puts(out, m->nlabels ? ",le=\"" : "le=\"");
        pl_buf_puts(out, le);
        pl_buf_puts(out, "\"");
    }
    pl_buf_puts(out, "}");
}

static void render_histogram(struct pl_buf *out, const struct pl_metric *m, size_t series)
{
    uint64_t buckets[PL_METRIC_MAX_BOUNDS + 1];
    uint64_t count, sum;
    pl_metric_histogram(m, series, &count, &sum, buckets);
    if ((m->flags & PL_METRIC_HIDE_ZERO) && count == 0) return;
    uint64_t cum = 0;
    for (size_t b = 0; b <= m->nbounds; b++) {
        cum += buckets[b];
        series_head(out, m, series, "_bucket", b < m->nbounds ? m->bound_text[b] : "+Inf");
        pl_buf_printf(out, " %llu\n", (unsigned long long)cum);
    }
    series_head(out, m, series, "_sum", NULL);
    if (m->scale == 1)
        pl_buf_printf(out, " %llu\n", (unsigned long long)sum);
    else
        pl_buf_printf(out, " %.6f\n", (double)sum * m->scale);
    series_head(out, m, series, "_count", NULL);
    pl_buf_printf(out, " %llu\n", (unsigned long long)cum);
}

void pl_metrics_render(struct pl_metrics *reg, struct pl_buf *out)
{
    for (int i = 0; i < reg->ncollectors; i++)
        reg->collectors[i].fn(reg, reg->collectors[i].ctx);
    for (const struct pl_metric *m = reg->head; m; m = m->next) {
        pl_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
                      type_names[m->type]);
        for (size_t s = 0; s < m->nseries; s++) {
            if (m->type == PL_METRIC_HISTOGRAM)
                render_histogram(out, m, s);
            else
                render_simple(out, m, s);
        }
    }
}
