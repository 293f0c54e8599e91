#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "pl/sysmetrics.h"
#include "test.h"

#define NEAR(a, b) (fabs((double)(a) - (double)(b)) < 1e-9)

/* A fixture proc root: <tmp>/stat, loadavg, meminfo, net/dev, written per test. */
static char root[64];

static void fixture_open(void)
{
    snprintf(root, sizeof root, "/tmp/pulse-sysmetrics-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        exit(1);
    }
    char net[128];
    snprintf(net, sizeof net, "%s/net", root);
    if (mkdir(net, 0700) != 0) {
        perror("mkdir");
        exit(1);
    }
}

static void put(const char *name, const char *text, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", root, name);
    FILE *f = fopen(path, "w");
    if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void put_str(const char *name, const char *text)
{
    put(name, text, strlen(text));
}

static void fixture_close(void)
{
    static const char *const names[] = {"stat", "loadavg", "meminfo", "net/dev"};
    char path[128];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", root, names[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/net", root);
    rmdir(path);
    rmdir(root);
}

static const char netdev_head[] =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n";

static void put_netdev(unsigned long long lo, unsigned long long eth_rx, unsigned long long eth_tx,
                       unsigned long long wl_rx, unsigned long long wl_tx)
{
    char text[1024];
    snprintf(text, sizeof text,
             "%s    lo: %llu 10 0 0 0 0 0 0 %llu 10 0 0 0 0 0 0\n"
             "  eth0: %llu 20 0 0 0 0 0 0 %llu 20 0 0 0 0 0 0\n"
             " wlan0: %llu 30 0 0 0 0 0 0 %llu 30 0 0 0 0 0 0\n",
             netdev_head, lo, lo, eth_rx, eth_tx, wl_rx, wl_tx);
    put_str("net/dev", text);
}

static const char meminfo[] = "MemTotal:        1000 kB\n"
                              "MemFree:          100 kB\n"
                              "MemAvailable:     250 kB\n"
                              "Buffers:           50 kB\n"
                              "Cached:           100 kB\n";

static bool all_zero(const struct pl_sys_sample *o)
{
    return o->cpu_percent == 0 && o->load1 == 0 && o->mem_used_bytes == 0 &&
           o->mem_total_bytes == 0 && o->disk_used_bytes == 0 && o->disk_total_bytes == 0 &&
           o->net_rx_bytes_per_s == 0 && o->net_tx_bytes_per_s == 0;
}

TEST(fixture_exact_values)
{
    fixture_open();
    put_str("stat", "cpu  100 0 100 800 0 0 0 0 0 0\n"
                    "cpu0 50 0 50 400 0 0 0 0 0 0\n"
                    "intr 12345 0 0\n");
    put_str("loadavg", "1.25 0.50 0.25 2/300 1234\n");
    put_str("meminfo", meminfo);
    put_netdev(5000, 1000, 2000, 500, 0);

    struct pl_sysmetrics *s;
    CHECK_EQ_INT(pl_sysmetrics_create(root, root, &s), 0);
    struct pl_sys_sample o;
    CHECK_EQ_INT(pl_sysmetrics_sample(s, 1000000, &o), 0);
    CHECK(o.cpu_percent == 0); /* no previous sample */
    CHECK(o.net_rx_bytes_per_s == 0 && o.net_tx_bytes_per_s == 0);
    CHECK(NEAR(o.load1, 1.25));
    CHECK_EQ_INT(o.mem_total_bytes, 1000 * 1024);
    CHECK_EQ_INT(o.mem_used_bytes, 750 * 1024);
    CHECK_EQ_INT(o.ts_us, 1000000);

    /* +25 user, +25 system, +100 idle, +50 iowait: busy 50 of 200 = 25 %; guest (the last
     * two columns) is inside user and must not count twice. cpu0 must be ignored. */
    put_str("stat", "cpu  125 0 125 900 50 0 0 0 99 99\n"
                    "cpu0 125 0 125 0 0 0 0 0 0 0\n");
    /* Two seconds later: rx +1500 on eth0 and +500 on wlan0 = 1000 B/s; tx +1000 = 500 B/s;
     * lo moves a lot and must not count. */
    put_netdev(9000000, 2500, 3000, 1000, 0);
    CHECK_EQ_INT(pl_sysmetrics_sample(s, 3000000, &o), 0);
    CHECK(NEAR(o.cpu_percent, 25.0));
    CHECK(NEAR(o.net_rx_bytes_per_s, 1000.0));
    CHECK(NEAR(o.net_tx_bytes_per_s, 500.0));
    CHECK_EQ_INT(o.ts_us, 3000000);

    struct statvfs v;
    CHECK(statvfs(root, &v) == 0);
    CHECK_EQ_INT(o.disk_total_bytes, (uint64_t)v.f_blocks * v.f_frsize);
    CHECK(o.disk_total_bytes > 0 && o.disk_used_bytes <= o.disk_total_bytes);

    pl_sysmetrics_destroy(s);
    fixture_close();
}

TEST(meminfo_without_memavailable)
{
    fixture_open();
    put_str("meminfo", "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 100 kB\n");
    struct pl_sysmetrics *s;
    CHECK_EQ_INT(pl_sysmetrics_create(root, "/nonexistent/disk", &s), 0);
    struct pl_sys_sample o;
    CHECK_EQ_INT(pl_sysmetrics_sample(s, 1, &o), 0); /* one source is enough */
    CHECK_EQ_INT(o.mem_total_bytes, 1000 * 1024);
    CHECK_EQ_INT(o.mem_used_bytes, 750 * 1024);
    CHECK(o.cpu_percent == 0 && o.load1 == 0 && o.disk_total_bytes == 0);
    pl_sysmetrics_destroy(s);
    fixture_close();
}

TEST(missing_files)
{
    struct pl_sysmetrics *s;
    CHECK_EQ_INT(pl_sysmetrics_create("/nonexistent/proc", "/nonexistent/disk", &s), 0);
    struct pl_sys_sample o;
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(pl_sysmetrics_sample(s, 1000000 * (i + 1), &o), PL_E_UNAVAILABLE);
        CHECK(all_zero(&o));
        CHECK_EQ_INT(o.ts_us, 1000000 * (i + 1));
    }
    pl_sysmetrics_destroy(s);

    /* The disk alone still makes a sample. */
    CHECK_EQ_INT(pl_sysmetrics_create("/nonexistent/proc", "/", &s), 0);
    CHECK_EQ_INT(pl_sysmetrics_sample(s, 1, &o), 0);
    CHECK(o.disk_total_bytes > 0);
    CHECK(o.cpu_percent == 0 && o.load1 == 0 && o.mem_total_bytes == 0);
    CHECK(o.net_rx_bytes_per_s == 0 && o.net_tx_bytes_per_s == 0);
    pl_sysmetrics_destroy(s);

    CHECK_EQ_INT(pl_sysmetrics_create(NULL, "/", &s), PL_E_INVALID);
    CHECK(s == NULL);
    static char longpath[5000];
    memset(longpath, 'a', sizeof longpath - 1);
    CHECK_EQ_INT(pl_sysmetrics_create(longpath, "/", &s), PL_E_INVALID);
    CHECK(s == NULL);
}

TEST(garbage_content)
{
    fixture_open();
    struct pl_sysmetrics *s;
    CHECK_EQ_INT(pl_sysmetrics_create(root, "/nonexistent/disk", &s), 0);
    struct pl_sys_sample o;
    static const char *const stats[] = {
        "cpu abc def\n",
        "cpu  1 2\n", /* too few fields */
        "cpu  -5 0 0 0\n",
        "cpu  99999999999999999999999 0 0 0\n", /* overflows u64 */
        "cpu  18446744073709551615 1 0 0\n",    /* sum overflows */
        "cpu0 1 2 3 4\n",                       /* no aggregate line */
        "",
    };
    static const char *const loads[] = {"abc\n",       "nan 1 1\n",  "inf 1 1\n", "-1.0 0 0\n",
                                        "1e300 0 0\n", "1.5x 0 0\n", ""};
    static const char *const mems[] = {"MemTotal: x kB\nMemAvailable: 1 kB\n",
                                       "MemTotal: 0 kB\nMemAvailable: 0 kB\n",
                                       "MemTotal: 18446744073709551615 kB\nMemAvailable: 1 kB\n",
                                       "MemTotal: 10 MB\nMemAvailable: 1 kB\n",
                                       "MemAvailable: 1 kB\n",
                                       ""};
    static const char *const nets[] = {
        "garbage\n",
        "  eth0: foo bar\n",
        "  eth0: 1 2 3\n",
        "  eth0: 1 2 3 4 5 6 7 8 -9 0\n",
    };
    for (int round = 0; round < 7; round++) {
        put_str("stat", stats[round % 7]);
        put_str("loadavg", loads[round % 7]);
        put_str("meminfo", mems[round % 6]);
        put_str("net/dev", nets[round % 4]);
        int rc = pl_sysmetrics_sample(s, 1000000 * (round + 1), &o);
        /* "garbage\n" alone is a valid net/dev with no interfaces (rate 0): either way the
         * figures must be zero. */
        CHECK(rc == 0 || rc == PL_E_UNAVAILABLE);
        if (!all_zero(&o)) fprintf(stderr, "garbage round %d gave a non-zero field\n", round);
        CHECK(all_zero(&o));
    }
    /* Binary junk with NUL bytes and an over-long line everywhere. */
    static char junk[3 * 4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)((i * 7919u) % 251u);
    put("stat", junk, sizeof junk);
    put("loadavg", junk, sizeof junk);
    put("meminfo", junk, sizeof junk);
    put("net/dev", junk, sizeof junk);
    for (int i = 0; i < 2; i++) {
        int rc = pl_sysmetrics_sample(s, 20000000 + i, &o);
        CHECK(rc == 0 || rc == PL_E_UNAVAILABLE);
        CHECK(all_zero(&o));
    }
    pl_sysmetrics_destroy(s);
    fixture_close();
}

TEST(counters_backwards)
{
    fixture_open();
    struct pl_sysmetrics *s;
    CHECK_EQ_INT(pl_sysmetrics_create(root, "/nonexistent/disk", &s), 0);
    struct pl_sys_sample o;
    put_str("stat", "cpu  1000 0 1000 1000 0 0 0 0 0 0\n");
    put_netdev(0, 5000, 5000, 0, 0);
    CHECK_EQ_INT(pl_sysmetrics_sample(s, 1000000, &o), 0);

    /* Reset (reboot of the counters, interface re-created): 0 for that sample. */
    put_str("stat", "cpu  10 0 10 10 0 0 0 0 0 0\n");
    put_netdev(0, 1000, 6000, 0, 0);
    CHECK_EQ_INT(pl_sysmetrics_sample(s, 2000000, &o), 0);
    CHECK(o.cpu_percent == 0);
    CHECK(o.net_rx_bytes_per_s == 0);
    CHECK(NEAR(o.net_tx_bytes_per_s, 1000.0)); /* tx did not go backwards */

    /* And the next sample measures from the reset values again. */
    put_str("stat", "cpu  60 0 10 60 0 0 0 0 0 0\n");
    put_netdev(0, 2000, 6000, 0, 0);
    CHECK_EQ_INT(pl_sysmetrics_sample(s, 3000000, &o), 0);
    CHECK(NEAR(o.cpu_percent, 50.0));
    CHECK(NEAR(o.net_rx_bytes_per_s, 1000.0));
    CHECK(o.net_tx_bytes_per_s == 0);

    /* No time elapsed, or time going backwards: no rate rather than a division by zero. */
    put_netdev(0, 3000, 7000, 0, 0);
    CHECK_EQ_INT(pl_sysmetrics_sample(s, 3000000, &o), 0);
    CHECK(o.net_rx_bytes_per_s == 0 && o.net_tx_bytes_per_s == 0);
    put_netdev(0, 4000, 8000, 0, 0);
    CHECK_EQ_INT(pl_sysmetrics_sample(s, 2000000, &o), 0);
    CHECK(o.net_rx_bytes_per_s == 0 && o.net_tx_bytes_per_s == 0);

    /* A file that disappears and comes back starts over like a first sample. */
    fixture_close();
    CHECK_EQ_INT(pl_sysmetrics_sample(s, 4000000, &o), PL_E_UNAVAILABLE);
    char net[128];
    snprintf(net, sizeof net, "%s/net", root);
    CHECK(mkdir(root, 0700) == 0 && mkdir(net, 0700) == 0);
    put_netdev(0, 9000, 9000, 0, 0);
    CHECK_EQ_INT(pl_sysmetrics_sample(s, 5000000, &o), 0);
    CHECK(o.net_rx_bytes_per_s == 0);
    pl_sysmetrics_destroy(s);
    fixture_close();
}

TEST(many_interfaces)
{
    /* Larger than the sampler's line buffer, so it must stream. */
    fixture_open();
    static char text[400 * 100 + sizeof netdev_head];
    size_t len = (size_t)snprintf(text, sizeof text, "%s", netdev_head);
    put_str("net/dev", text);
    struct pl_sysmetrics *s;
    CHECK_EQ_INT(pl_sysmetrics_create(root, "/nonexistent/disk", &s), 0);
    struct pl_sys_sample o;
    CHECK_EQ_INT(pl_sysmetrics_sample(s, 1000000, &o), 0);
    for (int i = 0; i < 400; i++)
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "veth%04d: %d 1 0 0 0 0 0 0 %d 1 0 0 0 0 0 0\n", i, 10, 20);
    CHECK(len > 4096);
    put("net/dev", text, len);
    CHECK_EQ_INT(pl_sysmetrics_sample(s, 2000000, &o), 0);
    CHECK(NEAR(o.net_rx_bytes_per_s, 4000.0));
    CHECK(NEAR(o.net_tx_bytes_per_s, 8000.0));
    pl_sysmetrics_destroy(s);
    fixture_close();
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The first number of /proc/loadavg, or -1. */
static double proc_load1(void)
{
    double v = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &v) != 1) v = -1;
        fclose(f);
    }
    return v;
}

/* MemTotal of /proc/meminfo in bytes, or 0. */
static uint64_t proc_mem_total(void)
{
    unsigned long long kb = 0;
    char line[256];
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

/* The real /proc and /: each figure agrees with what the test reads itself. */
TEST(real_proc)
{
    struct pl_sysmetrics *s;
    CHECK_EQ_INT(pl_sysmetrics_create("/proc", "/", &s), 0);
    struct pl_sys_sample o;
    CHECK_EQ_INT(pl_sysmetrics_sample(s, mono_us(), &o), 0);
    CHECK(o.cpu_percent == 0); /* no interval yet */
    /* Keep one core busy for 100 ms (10 ticks of /proc/stat): the interval is not idle. */
    volatile double x = 0;
    int64_t until = mono_us() + 100000;
    while (mono_us() < until)
        x += 1;
    double load_before = proc_load1();
    CHECK_EQ_INT(pl_sysmetrics_sample(s, mono_us(), &o), 0);
    double load_after = proc_load1();
    CHECK(o.cpu_percent > 0 && o.cpu_percent <= 100);
    /* the kernel updates the load average every 5 s: one of the two readings around it */
    CHECK(load_before >= 0 && load_after >= 0);
    CHECK(NEAR(o.load1, load_before) || NEAR(o.load1, load_after));
    CHECK(o.mem_total_bytes == proc_mem_total());
    CHECK(o.mem_used_bytes > 0 && o.mem_used_bytes < o.mem_total_bytes);
    struct statvfs v;
    CHECK_EQ_INT(statvfs("/", &v), 0);
    CHECK(o.disk_total_bytes == (uint64_t)v.f_blocks * (v.f_frsize ? v.f_frsize : v.f_bsize));
    CHECK(o.disk_used_bytes <= o.disk_total_bytes);
    char json[512];
    int n = pl_sys_sample_json(&o, json, sizeof json);
    CHECK(n > 0 && (size_t)n == strlen(json));
    printf("     %s\n", json);
    pl_sysmetrics_destroy(s);
}

TEST(json_shape)
{
    struct pl_sys_sample o = {
        .cpu_percent = 25.0,
        .load1 = 1.256,
        .mem_used_bytes = 768000,
        .mem_total_bytes = 1024000,
        .disk_used_bytes = UINT64_C(5000000000000),
        .disk_total_bytes = UINT64_C(10000000000000),
        .net_rx_bytes_per_s = 1000.0,
        .net_tx_bytes_per_s = 1.0 / 3.0,
        .ts_us = 42,
    };
    char buf[512];
    int n = pl_sys_sample_json(&o, buf, sizeof buf);
    CHECK(n > 0 && (size_t)n == strlen(buf));
    CHECK_STR(buf, "{\"cpu_percent\":25.00,\"load1\":1.26,\"mem_used_bytes\":768000,"
                   "\"mem_total_bytes\":1024000,\"disk_used_bytes\":5000000000000,"
                   "\"disk_total_bytes\":10000000000000,\"net_rx_bytes_per_s\":1000.00,"
                   "\"net_tx_bytes_per_s\":0.33}");

    json_error_t err;
    json_t *j = json_loads(buf, JSON_REJECT_DUPLICATES, &err);
    CHECK(j && json_is_object(j));
    CHECK_EQ_INT(json_object_size(j), 8);
    static const char *const keys[] = {"cpu_percent",        "load1",
                                       "mem_used_bytes",     "mem_total_bytes",
                                       "disk_used_bytes",    "disk_total_bytes",
                                       "net_rx_bytes_per_s", "net_tx_bytes_per_s"};
    for (size_t i = 0; i < 8; i++)
        CHECK(json_is_number(json_object_get(j, keys[i])));
    CHECK(NEAR(json_number_value(json_object_get(j, "cpu_percent")), 25.0));
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "disk_total_bytes")), 10000000000000LL);
    json_decref(j);

    /* Exactly fitting needs room for the NUL. */
    CHECK_EQ_INT(pl_sys_sample_json(&o, buf, (size_t)n), -1);
    CHECK_EQ_INT(pl_sys_sample_json(&o, buf, (size_t)n + 1), n);
    CHECK_EQ_INT(pl_sys_sample_json(&o, buf, 10), -1);
    CHECK_EQ_INT(pl_sys_sample_json(&o, NULL, 0), -1);

    /* Nothing JSON cannot hold: NaN, infinity, negatives, over 100 %. */
    struct pl_sys_sample bad = {.cpu_percent = 250,
                                .load1 = NAN,
                                .net_rx_bytes_per_s = INFINITY,
                                .net_tx_bytes_per_s = -0.0};
    n = pl_sys_sample_json(&bad, buf, sizeof buf);
    CHECK(n > 0);
    j = json_loads(buf, 0, &err);
    CHECK(j != NULL);
    CHECK(NEAR(json_number_value(json_object_get(j, "cpu_percent")), 100.0));
    CHECK(json_number_value(json_object_get(j, "load1")) == 0);
    CHECK(strstr(buf, "-") == NULL);
    json_decref(j);
}

int main(void)
{
    RUN(fixture_exact_values);
    RUN(meminfo_without_memavailable);
    RUN(missing_files);
    RUN(garbage_content);
    RUN(counters_backwards);
    RUN(many_interfaces);
    RUN(real_proc);
    RUN(json_shape);
    return TEST_REPORT();
}
