#include "pl/process.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "pl/metrics.h"

void pl_process_stats(struct pl_process_stats *out)
{
    memset(out, 0, sizeof *out);
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        /* Fields after the parenthesised command name, which may itself hold spaces. */
        char *p = strrchr(buf, ')');
        unsigned long utime = 0, stime = 0;
        unsigned long long starttime = 0;
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d "
                        "%*d %llu",
                        &utime, &stime, &starttime) == 3) {
            out->cpu_seconds = (double)(utime + stime) / (double)tck;
            struct sysinfo si;
            if (sysinfo(&si) == 0) {
                double boot = (double)time(NULL) - (double)si.uptime;
                out->start_time_seconds = boot + (double)starttime / (double)tck;
            }
        }
    }
    f = fopen("/proc/self/statm", "r");
    if (f) {
        unsigned long size, rss;
        if (fscanf(f, "%lu %lu", &size, &rss) == 2) out->rss_bytes = (uint64_t)rss * (uint64_t)page;
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int n = 0;
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') n++;
        closedir(d);
        out->open_fds = n - 1; /* not counting the directory's own fd */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) out->max_fds = (int)rl.rlim_cur;
}

static const struct pl_metric_def process_defs[] = {
    {.type = PL_METRIC_COUNTER,
     .name = "process_cpu_seconds_total",
     .help = "Total user and system CPU time in seconds.",
     .flags = PL_METRIC_NO_PREFIX | PL_METRIC_FLOAT},
    {.type = PL_METRIC_GAUGE,
     .name = "process_resident_memory_bytes",
     .help = "Resident memory size in bytes.",
     .flags = PL_METRIC_NO_PREFIX},
    {.type = PL_METRIC_GAUGE,
     .name = "process_open_fds",
     .help = "Number of open file descriptors.",
     .flags = PL_METRIC_NO_PREFIX},
    {.type = PL_METRIC_GAUGE,
     .name = "process_max_fds",
     .help = "Maximum number of open file descriptors.",
     .flags = PL_METRIC_NO_PREFIX},
    {.type = PL_METRIC_GAUGE,
     .name = "process_start_time_seconds",
     .help = "Start time of the process since the epoch.",
     .flags = PL_METRIC_NO_PREFIX | PL_METRIC_FLOAT},
};
#define NDEFS (sizeof process_defs / sizeof process_defs[0])

static void collect(struct pl_metrics *reg, void *ctx)
{
    struct pl_metric *m[NDEFS];
    for (size_t i = 0; i < NDEFS; i++)
        if (!(m[i] = pl_metrics_find(reg, process_defs[i].name))) return;
    struct pl_process_stats st;
    pl_process_stats(&st);
    pl_metric_set_double(m[0], 0, st.cpu_seconds);
    pl_metric_set(m[1], 0, (int64_t)st.rss_bytes);
    pl_metric_set(m[2], 0, st.open_fds);
    pl_metric_set(m[3], 0, st.max_fds);
    pl_metric_set_double(m[4], 0, st.start_time_seconds);
}

int pl_process_metrics_register(struct pl_metrics *reg)
{
    for (size_t i = 0; i < NDEFS; i++)
        if (!pl_metrics_add(reg, &process_defs[i])) return PL_E_INVALID;
    return pl_metrics_on_collect(reg, collect, NULL);
}
