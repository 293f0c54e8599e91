/* lib/metrics: the registry (counters, gauges, histograms, labels) and its Prometheus text
 * exposition; lib/http's request metrics on top of it. */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "http/http_internal.h"
#include "pl/buf.h"
#include "pl/metrics.h"
#include "pl/process.h"
#include "test.h"

static struct pl_metrics *registry(const char *prefix)
{
    struct pl_metrics *reg = NULL;
    CHECK_EQ_INT(pl_metrics_create(prefix, &reg), 0);
    return reg;
}

/* The exposition as a NUL-terminated string (caller frees). */
static char *render(struct pl_metrics *reg)
{
    struct pl_buf b;
    pl_buf_init(&b);
    pl_metrics_render(reg, &b);
    pl_buf_append(&b, "", 1);
    return pl_buf_steal(&b, NULL);
}

TEST(counters_and_gauges)
{
    struct pl_metrics *reg = registry("app_");
    static const char *const states[] = {"idle", "busy"};
    const struct pl_metric_label state = {"state", states, 2};
    struct pl_metric *c = pl_metrics_add(
        reg,
        &(struct pl_metric_def){.type = PL_METRIC_COUNTER, .name = "jobs_total", .help = "Jobs."});
    struct pl_metric *g = pl_metrics_add(reg, &(struct pl_metric_def){.type = PL_METRIC_GAUGE,
                                                                      .name = "conns",
                                                                      .help = "Connections.",
                                                                      .labels = &state,
                                                                      .nlabels = 1});
    struct pl_metric *f = pl_metrics_add(reg, &(struct pl_metric_def){.type = PL_METRIC_GAUGE,
                                                                      .name = "temp",
                                                                      .help = "Temperature.",
                                                                      .flags = PL_METRIC_FLOAT});
    CHECK(c && g && f);
    pl_metric_add(c, 0, 2);
    pl_metric_add(c, 0, 3);
    CHECK_EQ_INT(pl_metric_get(c, 0), 5);
    pl_metric_set(g, 0, 7);
    pl_metric_add(g, 1, 4);
    pl_metric_add(g, 1, -6);
    CHECK_EQ_INT(pl_metric_get(g, 1), -2);
    pl_metric_set_double(f, 0, 21.5);
    CHECK(pl_metric_get_double(f, 0) == 21.5);
    char *text = render(reg);
    CHECK_STR(text, "# HELP app_jobs_total Jobs.\n"
                    "# TYPE app_jobs_total counter\n"
                    "app_jobs_total 5\n"
                    "# HELP app_conns Connections.\n"
                    "# TYPE app_conns gauge\n"
                    "app_conns{state=\"idle\"} 7\n"
                    "app_conns{state=\"busy\"} -2\n"
                    "# HELP app_temp Temperature.\n"
                    "# TYPE app_temp gauge\n"
                    "app_temp 21.500000\n");
    free(text);
    pl_metrics_destroy(reg);
}

TEST(histogram_buckets_sum_and_count)
{
    struct pl_metrics *reg = registry("app_");
    static const double bounds[] = {0.001, 0.01, 0.1};
    struct pl_metric *h = pl_metrics_add(reg, &(struct pl_metric_def){.type = PL_METRIC_HISTOGRAM,
                                                                      .name = "wait_seconds",
                                                                      .help = "Waits.",
                                                                      .bounds = bounds,
                                                                      .nbounds = 3,
                                                                      .scale = 1e-9});
    CHECK(h != NULL);
    if (!h) return;
    /* Observed in nanoseconds: 0 and exactly 1 ms fall in le=0.001 (bounds are inclusive),
     * 5 ms in 0.01, 2 s past every bound. */
    pl_metric_observe(h, 0, 0);
    pl_metric_observe(h, 0, 1000000);
    pl_metric_observe(h, 0, 5000000);
    pl_metric_observe(h, 0, 2000000000);
    uint64_t count, sum, buckets[4];
    pl_metric_histogram(h, 0, &count, &sum, buckets);
    CHECK_EQ_INT(count, 4);
    CHECK_EQ_INT(sum, 2006000000);
    CHECK(buckets[0] == 2 && buckets[1] == 1 && buckets[2] == 0 && buckets[3] == 1);
    char *text = render(reg);
    CHECK_STR(text, "# HELP app_wait_seconds Waits.\n"
                    "# TYPE app_wait_seconds histogram\n"
                    "app_wait_seconds_bucket{le=\"0.001\"} 2\n"
                    "app_wait_seconds_bucket{le=\"0.01\"} 3\n"
                    "app_wait_seconds_bucket{le=\"0.1\"} 3\n"
                    "app_wait_seconds_bucket{le=\"+Inf\"} 4\n"
                    "app_wait_seconds_sum 2.006000\n"
                    "app_wait_seconds_count 4\n");
    free(text);
    pl_metrics_destroy(reg);
}

TEST(labelled_histogram_hides_unobserved_series)
{
    struct pl_metrics *reg = registry("");
    static const char *const routes[] = {"/a", "/b"};
    static const double bounds[] = {1, 2};
    const struct pl_metric_label route = {"route", routes, 2};
    struct pl_metric *h = pl_metrics_add(reg, &(struct pl_metric_def){.type = PL_METRIC_HISTOGRAM,
                                                                      .name = "size",
                                                                      .help = "Sizes.",
                                                                      .flags = PL_METRIC_HIDE_ZERO,
                                                                      .labels = &route,
                                                                      .nlabels = 1,
                                                                      .bounds = bounds,
                                                                      .nbounds = 2});
    CHECK(h != NULL);
    pl_metric_observe(h, 1, 2);
    pl_metric_observe(h, 1, 3);
    char *text = render(reg);
    CHECK_STR(text, "# HELP size Sizes.\n"
                    "# TYPE size histogram\n"
                    "size_bucket{route=\"/b\",le=\"1\"} 0\n"
                    "size_bucket{route=\"/b\",le=\"2\"} 1\n"
                    "size_bucket{route=\"/b\",le=\"+Inf\"} 2\n"
                    "size_sum{route=\"/b\"} 5\n"
                    "size_count{route=\"/b\"} 2\n");
    free(text);
    pl_metrics_destroy(reg);
}

TEST(label_values_and_help_are_escaped)
{
    struct pl_metrics *reg = registry("x_");
    static const char *const values[] = {"a\"b", "c\\d", "e\nf", "{g}"};
    const struct pl_metric_label l = {"v", values, 4};
    struct pl_metric *c = pl_metrics_add(reg, &(struct pl_metric_def){.type = PL_METRIC_COUNTER,
                                                                      .name = "t",
                                                                      .help = "back\\slash\nline",
                                                                      .labels = &l,
                                                                      .nlabels = 1});
    CHECK(c != NULL);
    char *text = render(reg);
    CHECK_STR(text, "# HELP x_t back\\\\slash\\nline\n"
                    "# TYPE x_t counter\n"
                    "x_t{v=\"a\\\"b\"} 0\n"
                    "x_t{v=\"c\\\\d\"} 0\n"
                    "x_t{v=\"e\\nf\"} 0\n"
                    "x_t{v=\"{g}\"} 0\n");
    free(text);
    char out[8];
    CHECK_EQ_INT(pl_metrics_escape_label(out, sizeof out, "q\"\\\n"), 7);
    CHECK_STR(out, "q\\\"\\\\\\n");
    pl_metrics_destroy(reg);
}

TEST(series_index_across_labels)
{
    struct pl_metrics *reg = registry("");
    static const char *const a[] = {"a0", "a1", "a2"}, *const b[] = {"b0", "b1"};
    const struct pl_metric_label labels[] = {{"a", a, 3}, {"b", b, 2}};
    struct pl_metric *c = pl_metrics_add(reg, &(struct pl_metric_def){.type = PL_METRIC_COUNTER,
                                                                      .name = "n",
                                                                      .help = "N.",
                                                                      .flags = PL_METRIC_HIDE_ZERO,
                                                                      .labels = labels,
                                                                      .nlabels = 2});
    CHECK(c != NULL);
    if (!c) return;
    CHECK_EQ_INT(pl_metric_series_count(c), 6);
    CHECK_EQ_INT(pl_metric_series(c, (size_t[]){2, 1}), 5);
    /* Out of range: the label's last value. */
    CHECK_EQ_INT(pl_metric_series(c, (size_t[]){9, 0}), 4);
    pl_metric_add(c, pl_metric_series(c, (size_t[]){1, 0}), 3);
    char *text = render(reg);
    CHECK_STR(text, "# HELP n N.\n# TYPE n counter\nn{a=\"a1\",b=\"b0\"} 3\n");
    free(text);
    pl_metrics_destroy(reg);
}

TEST(invalid_definitions_are_refused)
{
    struct pl_metrics *reg = registry("p_");
    static const double up[] = {1, 2}, down[] = {2, 1};
    static const char *const v[] = {"x"};
    const struct pl_metric_label le = {"le", v, 1}, empty = {"e", v, 0}, bad = {"a-b", v, 1};
    const struct pl_metric_def ok = {.type = PL_METRIC_COUNTER, .name = "ok", .help = "."};
    CHECK(pl_metrics_add(reg, &ok) != NULL);
    CHECK(pl_metrics_add(reg, &ok) == NULL); /* taken */
    CHECK(pl_metrics_add(
              reg, &(struct pl_metric_def){.type = PL_METRIC_COUNTER, .name = "9lives"}) == NULL);
    CHECK(pl_metrics_add(reg, &(struct pl_metric_def){.type = PL_METRIC_COUNTER, .name = "a b"}) ==
          NULL);
    CHECK(pl_metrics_add(reg, &(struct pl_metric_def){.type = PL_METRIC_HISTOGRAM, .name = "h1"}) ==
          NULL); /* no bounds */
    CHECK(pl_metrics_add(reg, &(struct pl_metric_def){.type = PL_METRIC_HISTOGRAM,
                                                      .name = "h2",
                                                      .bounds = down,
                                                      .nbounds = 2}) == NULL);
    CHECK(pl_metrics_add(reg, &(struct pl_metric_def){.type = PL_METRIC_HISTOGRAM,
                                                      .name = "h3",
                                                      .bounds = up,
                                                      .nbounds = 2,
                                                      .labels = &le,
                                                      .nlabels = 1}) == NULL);
    CHECK(pl_metrics_add(reg, &(struct pl_metric_def){.type = PL_METRIC_GAUGE,
                                                      .name = "g1",
                                                      .labels = &empty,
                                                      .nlabels = 1}) == NULL);
    CHECK(pl_metrics_add(reg, &(struct pl_metric_def){.type = PL_METRIC_GAUGE,
                                                      .name = "g2",
                                                      .labels = &bad,
                                                      .nlabels = 1}) == NULL);
    struct pl_metrics *bad_prefix = NULL;
    CHECK_EQ_INT(pl_metrics_create("no-dash_", &bad_prefix), PL_E_INVALID);
    CHECK(bad_prefix == NULL);
    pl_metrics_destroy(reg);
}

static int collected;

static void collector(struct pl_metrics *reg, void *ctx)
{
    collected++;
    pl_metric_set(pl_metrics_find(reg, "p_seen"), 0, *(int *)ctx);
}

TEST(collectors_run_at_each_render_and_prefix_is_optional)
{
    struct pl_metrics *reg = registry("p_");
    CHECK(pl_metrics_add(
        reg, &(struct pl_metric_def){.type = PL_METRIC_GAUGE, .name = "seen", .help = "Seen."}));
    int value = 42;
    CHECK_EQ_INT(pl_metrics_on_collect(reg, collector, &value), 0);
    CHECK_EQ_INT(pl_process_metrics_register(reg), 0);
    CHECK(pl_process_metrics_register(reg) != 0); /* once */
    char *text = render(reg);
    CHECK_EQ_INT(collected, 1);
    CHECK(strstr(text, "\np_seen 42\n") != NULL);
    CHECK(strstr(text, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ") !=
          NULL);
    CHECK(strstr(text, "p_process") == NULL);
    /* The process reads itself: some memory and a few fds. */
    CHECK(pl_metric_get(pl_metrics_find(reg, "process_resident_memory_bytes"), 0) > 0);
    CHECK(pl_metric_get(pl_metrics_find(reg, "process_open_fds"), 0) > 0);
    free(text);
    pl_metrics_destroy(reg);
}

struct adder {
    struct pl_metric *c, *h;
};

static void *add_many(void *arg)
{
    struct adder *a = arg;
    for (int i = 0; i < 100000; i++) {
        pl_metric_add(a->c, 0, 1);
        pl_metric_observe(a->h, 0, (uint64_t)(i % 3));
    }
    return NULL;
}

TEST(updates_from_threads_are_not_lost)
{
    struct pl_metrics *reg = registry("");
    static const double bounds[] = {0, 1};
    struct adder a = {
        pl_metrics_add(reg, &(struct pl_metric_def){.type = PL_METRIC_COUNTER, .name = "c"}),
        pl_metrics_add(reg, &(struct pl_metric_def){.type = PL_METRIC_HISTOGRAM,
                                                    .name = "h",
                                                    .bounds = bounds,
                                                    .nbounds = 2}),
    };
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, add_many, &a);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(pl_metric_get(a.c, 0), 400000);
    uint64_t count, sum, buckets[3];
    pl_metric_histogram(a.h, 0, &count, &sum, buckets);
    CHECK_EQ_INT(count, 400000);
    CHECK_EQ_INT(buckets[0], 4 * 33334);
    CHECK_EQ_INT(buckets[1], 4 * 33333);
    CHECK_EQ_INT(buckets[2], 4 * 33333);
    CHECK_EQ_INT(sum, 4 * (33333 * 1 + 33333 * 2));
    pl_metrics_destroy(reg);
}

static void h(struct pl_http_request *req)
{
    (void)req;
}

static struct pl_route routes[] = {
    {.method = PL_M_GET, .pattern = "/a", .handler = h},
    {.method = PL_M_POST, .pattern = "/b/{id}", .handler = h},
    {0},
};

TEST(http_request_metrics)
{
    struct pl_metrics *reg = registry("srv_");
    struct pl_router *router;
    struct pl_route *const tables[] = {routes};
    char err[128];
    CHECK_EQ_INT(pl_router_create(tables, 1, &router, err, sizeof err), 0);
    struct pl_http_metrics *m = pl_http_metrics_create(reg, router);
    CHECK(m != NULL);
    CHECK(pl_http_metrics_create(reg, router) == NULL);              /* its names are taken */
    pl_http_metrics_record(m, 0, PL_M_GET, 200, 300000);             /* 0.3 ms */
    pl_http_metrics_record(m, 0, PL_M_GET, 200, 3000000);            /* 3 ms */
    pl_http_metrics_record(m, 1, PL_M_POST, 503, 4000000000);        /* 4 s */
    pl_http_metrics_record(m, -1, PL_M_GET, 404, 1000);              /* unmatched */
    pl_http_metrics_record(m, PL_ROUTE_STATIC, PL_M_GET, 299, 1000); /* an "other" status */
    char *text = render(reg);
    CHECK(strstr(text, "srv_http_requests_total{route=\"/a\",method=\"GET\",status=\"200\"} 2\n"));
    CHECK(strstr(text, "srv_http_requests_total{route=\"/b/{id}\",method=\"POST\",status=\"503\"} "
                       "1\n"));
    CHECK(strstr(text, "{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n"));
    CHECK(strstr(text, "{route=\"static\",method=\"GET\",status=\"other\"} 1\n"));
    CHECK(strstr(text, "srv_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.0005\"} 1\n"));
    CHECK(strstr(text, "srv_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.005\"} 2\n"));
    CHECK(
        strstr(text, "srv_http_request_duration_seconds_bucket{route=\"/b/{id}\",le=\"2.5\"} 0\n"));
    CHECK(strstr(text,
                 "srv_http_request_duration_seconds_bucket{route=\"/b/{id}\",le=\"+Inf\"} 1\n"));
    CHECK(strstr(text, "srv_http_request_duration_seconds_sum{route=\"/a\"} 0.003300\n"));
    CHECK(strstr(text, "srv_http_request_duration_seconds_count{route=\"/a\"} 2\n"));
    /* Never-seen combinations are left out. */
    CHECK(strstr(text, "status=\"201\"") == NULL);
    free(text);
    /* What the live sampler and the scaling advisor read. */
    struct pl_http_snapshot zero = {0}, s;
    pl_http_metrics_snapshot(m, &s);
    CHECK_EQ_INT(s.requests, 5);
    CHECK_EQ_INT(s.errors, 1);
    CHECK_EQ_INT(s.duration_ns, 300000 + 3000000 + 4000000000ULL + 2000);
    double p50 = pl_http_snapshot_quantile(&zero, &s, 0.5);
    double p99 = pl_http_snapshot_quantile(&zero, &s, 0.99);
    CHECK(p50 > 0.1 && p50 < 1.0);       /* ms: the 0.3 ms request */
    CHECK(p99 > 2000.0 && p99 < 9000.0); /* past the histogram's top bucket */
    pl_http_metrics_destroy(m);
    pl_router_destroy(router);
    pl_metrics_destroy(reg);
}

int main(void)
{
    RUN(counters_and_gauges);
    RUN(histogram_buckets_sum_and_count);
    RUN(labelled_histogram_hides_unobserved_series);
    RUN(label_values_and_help_are_escaped);
    RUN(series_index_across_labels);
    RUN(invalid_definitions_are_refused);
    RUN(collectors_run_at_each_render_and_prefix_is_optional);
    RUN(updates_from_threads_are_not_lost);
    RUN(http_request_metrics);
    return TEST_REPORT();
}
