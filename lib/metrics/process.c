#include "pl/process.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "pl/buf.h"

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

void pl_process_metrics_render(struct pl_buf *out)
{
    struct pl_process_stats st;
    pl_process_stats(&st);
    pl_buf_printf(out,
                  "# HELP process_cpu_seconds_total Total user and system CPU time in seconds.\n"
                  "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n"
                  "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                  "# TYPE process_resident_memory_bytes gauge\n"
                  "process_resident_memory_bytes %llu\n"
                  "# HELP process_open_fds Number of open file descriptors.\n"
                  "# TYPE process_open_fds gauge\nprocess_open_fds %d\n"
                  "# HELP process_max_fds Maximum number of open file descriptors.\n"
                  "# TYPE process_max_fds gauge\nprocess_max_fds %d\n"
                  "# HELP process_start_time_seconds Start time of the process since the epoch.\n"
                  "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n",
                  st.cpu_seconds, (unsigned long long)st.rss_bytes, st.open_fds, st.max_fds,
                  st.start_time_seconds);
}
