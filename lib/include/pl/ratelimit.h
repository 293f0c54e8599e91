/* ratelimit: GCRA limits shared by every replica through one Redis script per check, with
 * an in-process fallback while Redis is unavailable.
 *
 * A rule allows `count` requests per `period_s` seconds with bursts up to `count` (GCRA
 * with emission interval period/count and tolerance period). One check may cover several
 * keys at once (login: IP+email and IP); the request is allowed only if every key allows
 * it, and only then is it counted against each key. Time comes from Redis (TIME inside the
 * script), so replicas with skewed clocks agree.
 *
 * When the Redis call fails (not connected, timeout), the same check runs against a
 * process-wide in-memory table (mutex-protected, entries expire), so limits keep holding
 * per replica; results say fallback=true.
 *
 * Threading: a pl_ratelimit belongs to one loop (it uses that loop's pl_redis); the fallback
 * table is shared by all of them. */
#ifndef PL_RATELIMIT_H
#define PL_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "pl/error.h"
#include "pl/redis.h"
#include <uv.h>

struct pl_ratelimit;

struct pl_rate_rule {
    int count;    /* >= 1 */
    int period_s; /* >= 1 */
};

struct pl_rate_result {
    bool allowed;
    int limit;         /* rule.count */
    int remaining;     /* requests left now (after this one when allowed) */
    int reset_s;       /* seconds until the bucket is full again (RateLimit-Reset) */
    int retry_after_s; /* when refused: seconds until one request is allowed (>= 1) */
};

#define PL_RATE_MAX_KEYS 4

/* Fires once, on the loop, never inside pl_ratelimit_check. status 0 always (a Redis
 * failure falls back), results[i] for keys[i]; *allowed is the verdict for the request;
 * `fallback` tells whether the in-process table answered. `results` is borrowed. */
typedef void (*pl_rate_cb)(bool allowed, const struct pl_rate_result *results, int n, bool fallback,
                           void *ctx);

/* `prefix` (copied) is prepended to every key ("pulse:rl:"). `loop` is the loop the limiter
 * runs on (callbacks answered by the fallback are deferred on it); `redis` is a client of that
 * loop, borrowed: it must outlive the limiter. redis may be NULL: in-process limits only.
 * Returns 0 or PL_E_INVALID. */
PL_MUST_USE int pl_ratelimit_create(uv_loop_t *loop, struct pl_redis *redis, const char *prefix,
                                    struct pl_ratelimit **out);
/* Callbacks of checks still pending fire from inside this call (answered by the fallback);
 * the memory is released once the loop has closed the limiter's handle, so run the loop
 * before uv_loop_close(). May be called from one of the limiter's callbacks; once only. */
void pl_ratelimit_destroy(struct pl_ratelimit *rl);

/* Checks and counts one request against n (1..4) keys (copied). Returns 0 (cb fires) or
 * PL_E_INVALID. A refused request counts against no key: results[i].allowed is then key i's
 * own verdict, and remaining/reset_s describe key i without this request. */
PL_MUST_USE int pl_ratelimit_check(struct pl_ratelimit *rl, int n, const char *const *keys,
                                   const struct pl_rate_rule *rules, pl_rate_cb cb, void *ctx);

/* The GCRA step as Lua source defining `local function pl_gcra(key, now_us, count, period_s)`
 * that returns {allowed (0/1), remaining, reset_s, retry_after_s} and stores the new TAT with
 * a TTL when allowed. Other scripts (the session check) embed it to apply a limit in the same
 * round trip. `pl_gcra_peek(key, now_us, count, period_s)` does the same without storing, and
 * `pl_gcra_now()` returns Redis' TIME in microseconds. Everything is a top-level `local
 * function` and nothing is returned, so the text can be prepended to another script. */
extern const char pl_ratelimit_lua[];

/* The in-process GCRA (also used as the fallback), exposed for unit tests. now_us is any
 * monotonic microsecond clock. Returns the verdict and fills results. */
bool pl_ratelimit_local_check(int n, const char *const *keys, const struct pl_rate_rule *rules,
                              int64_t now_us, struct pl_rate_result *results);

#endif
