/* ratelimit_internal: what the files of lib/ratelimit share, and what its tests reach.
 *
 *   gcra.c       the GCRA arithmetic, in integer microseconds (the Lua mirrors it)
 *   local.c      the process-wide in-memory table: pl_ratelimit_local_check
 *   script.c     the Lua source: pl_ratelimit_lua and the limiter's own script
 *   ratelimit.c  the limiter: one EVALSHA per check, fallback, deferred callbacks */
#ifndef PL_RATELIMIT_INTERNAL_H
#define PL_RATELIMIT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pl/ratelimit.h"

/* ---- gcra.c ---- */

/* One key's state at `now_us`, before anything is stored. */
struct gcra_step {
    bool ok;         /* this key allows one more request */
    int64_t tat;     /* theoretical arrival time now: max(stored TAT, now) */
    int64_t new_tat; /* the TAT to store if the request is counted */
    int64_t t;       /* emission interval */
    int64_t tau;     /* tolerance: count * t */
};

/* `stored_tat` is the stored TAT, or any value <= now_us for a key without state. */
void gcra_compute(int64_t stored_tat, int64_t now_us, const struct pl_rate_rule *rule,
                  struct gcra_step *out);
/* The numbers reported for one key; `counted` when the request was stored against it. */
void gcra_result(const struct gcra_step *s, int64_t now_us, int limit, bool counted,
                 struct pl_rate_result *out);
bool gcra_rule_valid(const struct pl_rate_rule *rule);

/* ---- local.c ---- */

/* The table holds at most this many keys by default (see local.c for what happens beyond). */
#define RL_LOCAL_DEFAULT_CAP 100000

/* Tests only: empty the table, change its cap, read its size. */
void rl_local_clear(void);
void rl_local_set_cap(size_t cap);
size_t rl_local_size(void);

/* ---- script.c ---- */

/* The limiter's script: pl_ratelimit_lua plus a main part. KEYS are the n keys, ARGV holds
 * count and period_s for each; the reply is {allowed, then allowed, remaining, reset_s,
 * retry_after_s for each key}, all integers. */
extern const char rl_check_lua[];

#endif
