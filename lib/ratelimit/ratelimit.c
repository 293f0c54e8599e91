/* The limiter: one EVALSHA per check (all keys in one atomic script), and the in-process
 * table whenever Redis cannot answer: not connected, a timeout, a dropped connection, or an
 * error reply (a read-only replica after a failover, OOM). A fallback never fails a request
 * for want of Redis; it only narrows the limit to this replica.
 *
 * A check answered by the fallback at once is queued and its callback fired from a uv_idle
 * on the next loop iteration, so callers never see their callback inside
 * pl_ratelimit_check. The verdict itself is taken at request time.
 *
 * Lifetimes: a check sent to Redis is owned by the Redis command until its callback fires
 * (pl_redis guarantees it does, at the latest when the client is destroyed). Destroying the
 * limiter answers such checks from the fallback at once and orphans them; the Redis callback
 * then only frees them. The limiter itself is freed from the idle handle's close callback,
 * so code unwinding after a user callback that destroyed it touches live memory. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pl/log.h"
#include "pl/mem.h"
#include "ratelimit/ratelimit_internal.h"

struct check {
    struct check *prev, *next; /* in flight: rl->inflight; answered: rl->ready queue */
    struct pl_ratelimit *rl;   /* NULL once orphaned by pl_ratelimit_destroy */
    pl_rate_cb cb;
    void *ctx;
    int n;
    char *keys[PL_RATE_MAX_KEYS]; /* prefixed */
    struct pl_rate_rule rules[PL_RATE_MAX_KEYS];
    bool allowed;
    struct pl_rate_result results[PL_RATE_MAX_KEYS];
};

struct pl_ratelimit {
    uv_loop_t *loop;
    struct pl_redis *redis; /* NULL: in-process only */
    struct pl_redis_script *script;
    char *prefix;
    size_t prefix_len;
    uv_idle_t idle;                         /* fires the ready queue */
    struct check *ready_head, *ready_tail;  /* answered by the fallback, callback not yet fired */
    struct check *inflight, *inflight_tail; /* sent to Redis, oldest first */
    bool degraded;                          /* the last check fell back: log once per episode */
    bool destroying;
};

static char *concat(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    char *s = malloc(alen + blen + 1);
    if (!s) abort();
    memcpy(s, a, alen);
    memcpy(s + alen, b, blen + 1);
    return s;
}

static void check_free(struct check *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->keys[i]);
    free(c);
}

static int64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void answer_locally(struct check *c)
{
    c->allowed = pl_ratelimit_local_check(c->n, (const char *const *)c->keys, c->rules,
                                          monotonic_us(), c->results);
}

static void fire(struct check *c, bool fallback)
{
    c->cb(c->allowed, c->results, c->n, fallback, c->ctx);
}

/* Logs the move to the fallback once, not once per request. */
static void note_failure(struct pl_ratelimit *rl, const char *why)
{
    if (rl->degraded) return;
    rl->degraded = true;
    pl_warn("ratelimit falling back to in-process limits", PL_STR("error", why));
}

static void note_success(struct pl_ratelimit *rl)
{
    if (!rl->degraded) return;
    rl->degraded = false;
    pl_info("ratelimit back on redis");
}

static void inflight_unlink(struct pl_ratelimit *rl, struct check *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        rl->inflight = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        rl->inflight_tail = c->prev;
    c->prev = c->next = NULL;
}

/* ---- the deferred callbacks of fallback answers ---- */

static void on_idle(uv_idle_t *h)
{
    struct pl_ratelimit *rl = h->data;
    /* Detached first: a callback may queue new checks (they wait for the next iteration) or
     * destroy the limiter (the detached ones still fire; rl stays allocated until closed). */
    struct check *c = rl->ready_head;
    rl->ready_head = rl->ready_tail = NULL;
    uv_idle_stop(h);
    while (c) {
        struct check *next = c->next;
        fire(c, true);
        check_free(c);
        c = next;
    }
}

static void enqueue_ready(struct pl_ratelimit *rl, struct check *c)
{
    c->prev = NULL;
    c->next = NULL;
    if (rl->ready_tail)
        rl->ready_tail->next = c;
    else
        rl->ready_head = c;
    rl->ready_tail = c;
    uv_idle_start(&rl->idle, on_idle);
}

/* ---- Redis ---- */

/* Reads {allowed, then 4 integers per key}; false when the reply has another shape. */
static bool parse_reply(struct check *c, const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1 + 4 * (size_t)c->n) return false;
    for (size_t i = 0; i < reply->elements; i++)
        if (reply->element[i]->type != REDIS_REPLY_INTEGER) return false;
    c->allowed = reply->element[0]->integer != 0;
    for (size_t k = 0; k < (size_t)c->n; k++) {
        redisReply **e = reply->element + 1 + 4 * k;
        struct pl_rate_result *r = &c->results[k];
        r->allowed = e[0]->integer != 0;
        r->limit = c->rules[k].count;
        r->remaining = (int)e[1]->integer;
        r->reset_s = (int)e[2]->integer;
        r->retry_after_s = (int)e[3]->integer;
    }
    return true;
}

static void on_reply(int status, redisReply *reply, void *ctx)
{
    struct check *c = ctx;
    struct pl_ratelimit *rl = c->rl;
    if (!rl) { /* answered by pl_ratelimit_destroy already */
        check_free(c);
        return;
    }
    inflight_unlink(rl, c);
    bool fallback = true;
    if (status == 0 && parse_reply(c, reply)) {
        fallback = false;
        note_success(rl);
    } else {
        note_failure(rl, status != 0                        ? pl_strerror(status)
                         : reply->type == REDIS_REPLY_ERROR ? reply->str
                                                            : "unexpected reply");
        answer_locally(c);
    }
    /* Last use of rl above: the callback may destroy it. */
    fire(c, fallback);
    check_free(c);
}

/* Sends the check; false when Redis would not take it. */
static bool send_check(struct pl_ratelimit *rl, struct check *c)
{
    char numbers[2 * PL_RATE_MAX_KEYS][16];
    const char *args[2 * PL_RATE_MAX_KEYS];
    for (size_t i = 0; i < (size_t)c->n; i++) {
        snprintf(numbers[2 * i], sizeof numbers[0], "%d", c->rules[i].count);
        snprintf(numbers[2 * i + 1], sizeof numbers[0], "%d", c->rules[i].period_s);
        args[2 * i] = numbers[2 * i];
        args[2 * i + 1] = numbers[2 * i + 1];
    }
    int rc = pl_redis_eval(rl->redis, rl->script, c->n, (const char **)c->keys, NULL, 2 * c->n,
                           args, NULL, on_reply, c);
    if (rc != 0) {
        note_failure(rl, pl_strerror(rc));
        return false;
    }
    c->next = NULL;
    c->prev = rl->inflight_tail;
    if (rl->inflight_tail)
        rl->inflight_tail->next = c;
    else
        rl->inflight = c;
    rl->inflight_tail = c;
    return true;
}

/* ---- public ---- */

int pl_ratelimit_create(uv_loop_t *loop, struct pl_redis *redis, const char *prefix,
                        struct pl_ratelimit **out)
{
    if (!out) return PL_E_INVALID;
    *out = NULL;
    if (!loop || !prefix) return PL_E_INVALID;
    struct pl_ratelimit *rl = pl_xcalloc(1, sizeof *rl);
    rl->loop = loop;
    rl->redis = redis;
    rl->prefix_len = strlen(prefix);
    rl->prefix = concat(prefix, rl->prefix_len, "");
    if (redis && pl_redis_script_create(redis, rl_check_lua, &rl->script) != 0) goto fail;
    if (uv_idle_init(loop, &rl->idle) != 0) goto fail;
    rl->idle.data = rl;
    *out = rl;
    return 0;
fail:
    free(rl->prefix);
    free(rl);
    return PL_E_INVALID;
}

static void on_closed(uv_handle_t *h)
{
    struct pl_ratelimit *rl = h->data;
    free(rl->prefix);
    free(rl);
}

void pl_ratelimit_destroy(struct pl_ratelimit *rl)
{
    if (!rl) return;
    assert(!rl->destroying);
    rl->destroying = true;
    /* Every pending callback fires now, exactly once and in the order the checks were made
     * (they are judged now, so that order decides who gets the last slots); callbacks find
     * pl_ratelimit_check refusing (destroying). */
    while (rl->inflight) {
        struct check *c = rl->inflight;
        inflight_unlink(rl, c);
        c->rl = NULL; /* the Redis callback will only free it */
        answer_locally(c);
        fire(c, true);
    }
    while (rl->ready_head) {
        struct check *c = rl->ready_head;
        rl->ready_head = c->next;
        if (!rl->ready_head) rl->ready_tail = NULL;
        fire(c, true);
        check_free(c);
    }
    uv_close((uv_handle_t *)&rl->idle, on_closed);
}

int pl_ratelimit_check(struct pl_ratelimit *rl, int n, const char *const *keys,
                       const struct pl_rate_rule *rules, pl_rate_cb cb, void *ctx)
{
    if (!rl || rl->destroying || n < 1 || n > PL_RATE_MAX_KEYS || !keys || !rules || !cb)
        return PL_E_INVALID;
    for (int i = 0; i < n; i++)
        if (!keys[i] || !gcra_rule_valid(&rules[i])) return PL_E_INVALID;

    struct check *c = pl_xcalloc(1, sizeof *c);
    c->rl = rl;
    c->cb = cb;
    c->ctx = ctx;
    c->n = n;
    for (int i = 0; i < n; i++) {
        c->keys[i] = concat(rl->prefix, rl->prefix_len, keys[i]);
        c->rules[i] = rules[i];
    }
    if (rl->redis && send_check(rl, c)) return 0;
    answer_locally(c);
    enqueue_ready(rl, c);
    return 0;
}
