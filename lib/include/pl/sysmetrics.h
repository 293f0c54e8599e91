/* sysmetrics: the host's CPU, load, memory, disk and network figures for the live dashboard.
 *
 * One sampler per process, called from one thread once per interval (a timer on one loop);
 * it is not thread-safe. Each sample reads <proc_root>/stat (aggregate "cpu" line),
 * <proc_root>/loadavg, <proc_root>/meminfo, <proc_root>/net/dev and statvfs(disk_path)
 * with plain open/read into a buffer held by the sampler: no allocation after create.
 * CPU percent and network rates are deltas against the previous successful read of the
 * same source, so the first sample reports 0 for them, and so does a sample where a
 * counter went backwards (wrap, reset, an interface gone). A source that is missing or
 * unparsable leaves its fields 0 and the others are still filled. */
#ifndef PL_SYSMETRICS_H
#define PL_SYSMETRICS_H

#include <stddef.h>
#include <stdint.h>

#include "pl/error.h"

struct pl_sys_sample {
    double cpu_percent;      /* 0..100 over all cores: (total - idle - iowait) share of the delta */
    double load1;            /* 1-minute load average */
    uint64_t mem_used_bytes; /* MemTotal - MemAvailable */
    uint64_t mem_total_bytes;
    uint64_t disk_used_bytes; /* (f_blocks - f_bfree) * f_frsize */
    uint64_t disk_total_bytes;
    double net_rx_bytes_per_s; /* summed over every interface but lo */
    double net_tx_bytes_per_s;
    int64_t ts_us; /* the now_us given to pl_sysmetrics_sample */
};

struct pl_sysmetrics;

/* Creates a sampler. proc_root is "/proc" or a directory laid out like it (tests);
 * disk_path is any path on the filesystem to report (e.g. "/"). Both are copied (borrowed
 * for the call only). On success *out is the caller's, freed with pl_sysmetrics_destroy.
 * Returns 0, or PL_E_INVALID for a NULL or over-long path. Files are not checked here. */
PL_MUST_USE int pl_sysmetrics_create(const char *proc_root, const char *disk_path,
                                     struct pl_sysmetrics **out);
/* Frees the sampler; NULL is a no-op. */
void pl_sysmetrics_destroy(struct pl_sysmetrics *s);

/* Fills *out (every field, zeroed first) with a sample taken at now_us, a monotonic clock
 * in microseconds (e.g. uv_hrtime() / 1000) that the rates are computed against. Returns 0
 * when at least one source could be read, PL_E_UNAVAILABLE when none could (*out is then
 * zero but for ts_us). */
PL_MUST_USE int pl_sysmetrics_sample(struct pl_sysmetrics *s, int64_t now_us,
                                     struct pl_sys_sample *out);

/* Writes the live message's "system" object as compact JSON with exactly the eight keys
 * (ts_us is not one of them; percent, load and rates with two decimals) and a terminating
 * NUL. Returns the length without the NUL, or -1 if it does not fit in cap bytes. */
PL_MUST_USE int pl_sys_sample_json(const struct pl_sys_sample *s, char *buf, size_t cap);

#endif
