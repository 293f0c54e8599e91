/* The GCRA maths of pl_ratelimit_local_check with a fake clock, the fallback table's
 * bounds, and the limiter's callback rules without Redis. */
#include <uv.h>

#include "pl/ratelimit.h"
#include "ratelimit/ratelimit_internal.h"
#include "test.h"

#define S  1000000LL /* µs per second */
#define T0 (1000 * S)

static struct pl_rate_result res[PL_RATE_MAX_KEYS];

static bool hit1(const char *key, int count, int period_s, int64_t now)
{
    struct pl_rate_rule rule = {count, period_s};
    const char *keys[] = {key};
    return pl_ratelimit_local_check(1, keys, &rule, now, res);
}

TEST(burst_then_refused)
{
    rl_local_clear();
    /* 5 per 60 s: t = 12 s. A full burst from empty, each request taking one slot. */
    for (int i = 0; i < 5; i++) {
        CHECK(hit1("burst", 5, 60, T0));
        CHECK(res[0].allowed);
        CHECK_EQ_INT(res[0].limit, 5);
        CHECK_EQ_INT(res[0].remaining, 4 - i);
        CHECK_EQ_INT(res[0].reset_s, 12 * (i + 1));
        CHECK_EQ_INT(res[0].retry_after_s, 0);
    }
    CHECK(!hit1("burst", 5, 60, T0));
    CHECK(!res[0].allowed);
    CHECK_EQ_INT(res[0].remaining, 0);
    CHECK_EQ_INT(res[0].reset_s, 60);
    CHECK_EQ_INT(res[0].retry_after_s, 12);
    /* A refusal is not counted: the answer stays the same. */
    CHECK(!hit1("burst", 5, 60, T0));
    CHECK_EQ_INT(res[0].retry_after_s, 12);
    CHECK_EQ_INT(res[0].reset_s, 60);
    /* Other keys are untouched. */
    CHECK(hit1("burst-other", 5, 60, T0));
    CHECK_EQ_INT(res[0].remaining, 4);
}

TEST(refill)
{
    rl_local_clear();
    for (int i = 0; i < 5; i++)
        CHECK(hit1("refill", 5, 60, T0));
    /* One microsecond short of one interval: still refused, and Retry-After is at least 1. */
    CHECK(!hit1("refill", 5, 60, T0 + 12 * S - 1));
    CHECK_EQ_INT(res[0].retry_after_s, 1);
    CHECK_EQ_INT(res[0].remaining, 0);
    /* 12 s later exactly one more. */
    CHECK(hit1("refill", 5, 60, T0 + 12 * S));
    CHECK_EQ_INT(res[0].remaining, 0);
    CHECK_EQ_INT(res[0].reset_s, 60);
    CHECK(!hit1("refill", 5, 60, T0 + 12 * S));
    CHECK_EQ_INT(res[0].retry_after_s, 12);
    /* Half refilled after 30 more seconds: 2 slots (24 s) and a half. */
    CHECK(hit1("refill", 5, 60, T0 + 42 * S));
    CHECK_EQ_INT(res[0].remaining, 1);
    CHECK_EQ_INT(res[0].reset_s, 42);
    CHECK(hit1("refill", 5, 60, T0 + 42 * S));
    CHECK_EQ_INT(res[0].remaining, 0);
    CHECK(!hit1("refill", 5, 60, T0 + 42 * S));
    CHECK_EQ_INT(res[0].retry_after_s, 6);
    /* Long idle: a full burst again, never more. */
    int allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += hit1("refill", 5, 60, T0 + 1000 * S);
    CHECK_EQ_INT(allowed, 5);
}

TEST(sustained_rate)
{
    rl_local_clear();
    /* At exactly the rate (one per t) every request passes, forever. */
    int64_t now = T0;
    for (int i = 0; i < 5; i++)
        CHECK(hit1("steady", 5, 60, now));
    int refused = 0;
    for (int i = 0; i < 100; i++) {
        now += 12 * S;
        refused += !hit1("steady", 5, 60, now);
    }
    CHECK_EQ_INT(refused, 0);
    /* Slightly faster than the rate: the empty bucket refuses at once. */
    CHECK(!hit1("steady", 5, 60, now + 12 * S - 1000));

    /* Over a long window the count allowed is the rate times the window plus one burst. */
    rl_local_clear();
    int allowed = 0;
    for (int64_t t = T0; t < T0 + 600 * S; t += S / 4)
        allowed += hit1("window", 5, 60, t);
    CHECK_EQ_INT(allowed, 5 + 49); /* the burst, then one per 12 s (t = 12 .. 588) */
}

TEST(rounded_interval)
{
    rl_local_clear();
    /* 7 per 60 s: t is not a whole number of microseconds; a burst is still exactly 7. */
    int allowed = 0;
    for (int i = 0; i < 20; i++)
        allowed += hit1("seven", 7, 60, T0);
    CHECK_EQ_INT(allowed, 7);
    /* 999999 per second: t rounds from 1.000001 µs to 2 µs; exactly count in a burst. */
    allowed = 0;
    for (int i = 0; i < 1000001; i++)
        allowed += hit1("fast", 999999, 1, T0);
    CHECK_EQ_INT(allowed, 999999);
    /* count == 1. */
    CHECK(hit1("one", 1, 3600, T0));
    CHECK_EQ_INT(res[0].remaining, 0);
    CHECK_EQ_INT(res[0].reset_s, 3600);
    CHECK(!hit1("one", 1, 3600, T0 + 1800 * S));
    CHECK_EQ_INT(res[0].retry_after_s, 1800);
    CHECK_EQ_INT(res[0].reset_s, 1800);
    CHECK(hit1("one", 1, 3600, T0 + 3600 * S));
}

TEST(multi_key_all_or_nothing)
{
    rl_local_clear();
    /* Login style: IP+email 2/60 and IP 5/60. */
    const char *keys[] = {"login:ip:e", "login:ip"};
    struct pl_rate_rule rules[] = {{2, 60}, {5, 60}};
    CHECK(pl_ratelimit_local_check(2, keys, rules, T0, res));
    CHECK(res[0].allowed && res[1].allowed);
    CHECK_EQ_INT(res[0].remaining, 1);
    CHECK_EQ_INT(res[1].remaining, 4);
    CHECK(pl_ratelimit_local_check(2, keys, rules, T0, res));
    CHECK_EQ_INT(res[0].remaining, 0);
    CHECK_EQ_INT(res[1].remaining, 3);
    /* The pair is refused by its first key; the second is not charged. */
    for (int i = 0; i < 3; i++) {
        CHECK(!pl_ratelimit_local_check(2, keys, rules, T0, res));
        CHECK(!res[0].allowed);
        CHECK_EQ_INT(res[0].remaining, 0);
        CHECK_EQ_INT(res[0].retry_after_s, 30);
        CHECK(res[1].allowed);
        CHECK_EQ_INT(res[1].remaining, 3); /* as it stands, without this request */
        CHECK_EQ_INT(res[1].reset_s, 24);
        CHECK_EQ_INT(res[1].retry_after_s, 0);
    }
    /* So the IP alone still has exactly 3. */
    int allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += hit1("login:ip", 5, 60, T0);
    CHECK_EQ_INT(allowed, 3);
    /* Now the IP refuses a fresh email, which is not charged either. */
    const char *keys2[] = {"login:ip:f", "login:ip"};
    CHECK(!pl_ratelimit_local_check(2, keys2, rules, T0, res));
    CHECK(res[0].allowed);
    CHECK_EQ_INT(res[0].remaining, 2);
    CHECK_EQ_INT(res[0].reset_s, 0);
    CHECK(!res[1].allowed);
    CHECK_EQ_INT(res[1].retry_after_s, 12);
    CHECK(hit1("login:ip:f", 2, 60, T0));
    CHECK_EQ_INT(res[0].remaining, 1);

    /* Four keys, the last refusing: nothing is stored for the other three. */
    const char *four[] = {"m:a", "m:b", "m:c", "m:d"};
    struct pl_rate_rule r4[] = {{1, 60}, {1, 60}, {1, 60}, {1, 60}};
    CHECK(hit1("m:d", 1, 60, T0));
    CHECK(!pl_ratelimit_local_check(4, four, r4, T0, res));
    CHECK(res[0].allowed && res[1].allowed && res[2].allowed && !res[3].allowed);
    CHECK(pl_ratelimit_local_check(3, four, r4, T0, res));
}

TEST(tightened_rule)
{
    rl_local_clear();
    /* A key filled under 10/3600 then read under 5/60 (configuration changed): its TAT lies
     * an hour out, beyond the new tolerance. Refused, with sane numbers. */
    for (int i = 0; i < 10; i++)
        CHECK(hit1("tight", 10, 3600, T0));
    CHECK(!hit1("tight", 5, 60, T0));
    CHECK_EQ_INT(res[0].remaining, 0);
    CHECK_EQ_INT(res[0].reset_s, 3600);
    CHECK_EQ_INT(res[0].retry_after_s, 3600 + 12 - 60);
}

TEST(table_expiry_and_cap)
{
    rl_local_clear();
    rl_local_set_cap(10);
    for (int i = 0; i < 10; i++) {
        char k[32];
        snprintf(k, sizeof k, "cap:%d", i);
        CHECK(hit1(k, 2, 60, T0));
    }
    CHECK_EQ_INT(rl_local_size(), 10);
    /* Full of live entries: a new key is answered as fresh and not remembered. */
    int allowed = 0;
    for (int i = 0; i < 5; i++)
        allowed += hit1("cap:new", 2, 60, T0 + S);
    CHECK_EQ_INT(allowed, 5);
    CHECK_EQ_INT(rl_local_size(), 10);
    /* Keys already in keep their limit. */
    CHECK(hit1("cap:3", 2, 60, T0 + S));
    CHECK(!hit1("cap:3", 2, 60, T0 + S));
    /* Once the others expire, the new key is stored and limited. */
    int64_t later = T0 + 31 * S; /* cap:0..9 held one slot (30 s); cap:3 two */
    allowed = 0;
    for (int i = 0; i < 5; i++)
        allowed += hit1("cap:new", 2, 60, later);
    CHECK_EQ_INT(allowed, 2);
    CHECK(rl_local_size() <= 10);
    /* cap:3 survived the sweep (TAT T0 + 60 s): one slot refilled, not two. */
    CHECK(hit1("cap:3", 2, 60, later));
    CHECK(!hit1("cap:3", 2, 60, later));

    /* Churn: expired keys make room, so every new key is remembered and limited, and the
     * table never passes its cap. */
    rl_local_clear();
    rl_local_set_cap(1000);
    int unlimited = 0;
    for (int round = 0; round < 20; round++)
        for (int i = 0; i < 1000; i++) {
            char k[32];
            snprintf(k, sizeof k, "churn:%d:%d", round, i);
            CHECK(hit1(k, 1, 1, T0 + round * 2 * S));
            unlimited += hit1(k, 1, 1, T0 + round * 2 * S);
        }
    CHECK_EQ_INT(unlimited, 0);
    CHECK(rl_local_size() <= 1000);
    rl_local_set_cap(RL_LOCAL_DEFAULT_CAP);
    rl_local_clear();
}

/* ---- the limiter without Redis: the callback rules ---- */

struct outcome {
    int calls;
    bool allowed;
    bool fallback;
    int n;
    struct pl_rate_result results[PL_RATE_MAX_KEYS];
    struct pl_ratelimit *destroy;
};

static void on_rate(bool allowed, const struct pl_rate_result *results, int n, bool fallback,
                    void *ctx)
{
    struct outcome *o = ctx;
    o->calls++;
    o->allowed = allowed;
    o->fallback = fallback;
    o->n = n;
    memcpy(o->results, results, (size_t)n * sizeof *results);
    if (o->destroy) pl_ratelimit_destroy(o->destroy);
}

TEST(limiter_without_redis)
{
    rl_local_clear();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_ratelimit *rl = NULL;
    CHECK_EQ_INT(pl_ratelimit_create(&loop, NULL, "u:", &rl), 0);
    const char *keys[] = {"k"};
    struct pl_rate_rule rule = {3, 60};
    struct outcome o[5];
    memset(o, 0, sizeof o);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(pl_ratelimit_check(rl, 1, keys, &rule, on_rate, &o[i]), 0);
        CHECK_EQ_INT(o[i].calls, 0); /* never inside the call */
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(o[i].calls, 1);
        CHECK(o[i].fallback);
        CHECK_EQ_INT(o[i].n, 1);
        CHECK_EQ_INT(o[i].allowed, i < 3);
    }
    CHECK_EQ_INT(o[3].results[0].retry_after_s, 20);
    /* The fallback's clock is CLOCK_MONOTONIC (as uv_hrtime) and its keys carry the prefix. */
    struct pl_rate_result r;
    int64_t now_us = (int64_t)(uv_hrtime() / 1000);
    CHECK(!pl_ratelimit_local_check(1, (const char *[]){"u:k"}, &rule, now_us, &r));
    CHECK(pl_ratelimit_local_check(1, (const char *[]){"k"}, &rule, now_us, &r));

    /* Invalid calls fire nothing. */
    struct pl_rate_rule bad = {0, 60};
    CHECK_EQ_INT(pl_ratelimit_check(rl, 0, keys, &rule, on_rate, &o[4]), PL_E_INVALID);
    CHECK_EQ_INT(pl_ratelimit_check(rl, 5, keys, &rule, on_rate, &o[4]), PL_E_INVALID);
    CHECK_EQ_INT(pl_ratelimit_check(rl, 1, keys, &bad, on_rate, &o[4]), PL_E_INVALID);
    CHECK_EQ_INT(pl_ratelimit_check(rl, 1, keys, &rule, NULL, &o[4]), PL_E_INVALID);
    CHECK_EQ_INT(pl_ratelimit_check(rl, 1, (const char *[]){NULL}, &rule, on_rate, &o[4]),
                 PL_E_INVALID);
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK_EQ_INT(o[4].calls, 0);

    /* Destroy with queued checks: they fire inside destroy, once. */
    memset(o, 0, sizeof o);
    CHECK_EQ_INT(pl_ratelimit_check(rl, 1, (const char *[]){"d"}, &rule, on_rate, &o[0]), 0);
    CHECK_EQ_INT(pl_ratelimit_check(rl, 1, (const char *[]){"d"}, &rule, on_rate, &o[1]), 0);
    pl_ratelimit_destroy(rl);
    CHECK_EQ_INT(o[0].calls, 1);
    CHECK_EQ_INT(o[1].calls, 1);

    /* Destroy from inside a callback with another still queued behind it. */
    CHECK_EQ_INT(pl_ratelimit_create(&loop, NULL, "v:", &rl), 0);
    memset(o, 0, sizeof o);
    o[0].destroy = rl;
    CHECK_EQ_INT(pl_ratelimit_check(rl, 1, (const char *[]){"d"}, &rule, on_rate, &o[0]), 0);
    CHECK_EQ_INT(pl_ratelimit_check(rl, 1, (const char *[]){"d"}, &rule, on_rate, &o[1]), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(o[0].calls, 1);
    CHECK_EQ_INT(o[1].calls, 1);

    CHECK_EQ_INT(pl_ratelimit_create(&loop, NULL, NULL, &rl), PL_E_INVALID);
    CHECK(rl == NULL);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    rl_local_clear();
}

int main(void)
{
    RUN(burst_then_refused);
    RUN(refill);
    RUN(sustained_rate);
    RUN(rounded_interval);
    RUN(multi_key_all_or_nothing);
    RUN(tightened_rule);
    RUN(table_expiry_and_cap);
    RUN(limiter_without_redis);
    return TEST_REPORT();
}
