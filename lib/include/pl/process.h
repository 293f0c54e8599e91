/* process: the standard Prometheus process metrics, read from /proc/self. */
#ifndef PL_PROCESS_H
#define PL_PROCESS_H

#include <stdint.h>

#include "pl/error.h"

struct pl_metrics;

struct pl_process_stats {
    double cpu_seconds; /* user + system */
    uint64_t rss_bytes;
    int open_fds;
    int max_fds;
    double start_time_seconds; /* since the epoch */
};

/* Fills what it can read; fields it cannot read are left 0. */
void pl_process_stats(struct pl_process_stats *out);
/* Adds process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds,
 * process_max_fds and process_start_time_seconds (standard names: no prefix) to `reg`, read
 * from /proc at each render. Fails when they are there already. */
PL_MUST_USE int pl_process_metrics_register(struct pl_metrics *reg);

#endif
