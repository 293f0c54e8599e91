/* lib/ratelimit against a real Redis (REDIS_URL), shared with other tests running in
 * parallel: every key carries a random test id. Replicas are simulated by limiters on
 * separate loops with separate clients; a dead Redis by a closed local port, a hung one by a
 * listener that never answers. */
#include <ctype.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "pl/ratelimit.h"
#include "pl/redis.h"
#include "ratelimit/ratelimit_internal.h"
#include "redis/redis_internal.h"
#include "test.h"
#include "loop_test.h"

static const char *redis_url;
static char tid[64];

static struct pl_redis *client(uv_loop_t *loop, const char *url, int command_ms)
{
    struct pl_redis_config cfg = {
        .url = url, .connect_timeout_ms = 2000, .command_timeout_ms = command_ms};
    struct pl_redis *r = NULL;
    CHECK_EQ_INT(pl_redis_create(loop, &cfg, &r), 0);
    return r;
}

static bool connected(uv_loop_t *loop, struct pl_redis *r)
{
    return WAIT_UNTIL(loop, pl_redis_connected(r), 5000);
}

/* ---- plain Redis commands, for looking at what the limiter stored ---- */

struct reply {
    int calls;
    int status;
    int type;
    long long integer;
    char str[256];
    size_t elements;
    long long ints[16];
};

static void capture(int status, redisReply *r, void *ctx)
{
    struct reply *out = ctx;
    out->calls++;
    out->status = status;
    if (!r) return;
    out->type = r->type;
    out->integer = r->integer;
    if (r->str) snprintf(out->str, sizeof out->str, "%s", r->str);
    out->elements = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    for (size_t i = 0; i < out->elements && i < 16; i++)
        out->ints[i] = r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer : -999;
}

#define ARGV(...)  ((const char *[]){__VA_ARGS__})
#define NARGS(...) ((int)(sizeof(ARGV(__VA_ARGS__)) / sizeof(const char *)))

static bool call(uv_loop_t *loop, struct pl_redis *r, struct reply *out, int argc,
                 const char **argv)
{
    memset(out, 0, sizeof *out);
    if (pl_redis_command(r, argc, argv, NULL, capture, out) != 0) return false;
    return WAIT_UNTIL(loop, out->calls > 0, 5000) && out->status == 0;
}
#define CALL(loop, r, out, ...) call(loop, r, out, NARGS(__VA_ARGS__), ARGV(__VA_ARGS__))

/* ---- checks ---- */

struct outcome {
    int calls;
    bool allowed;
    bool fallback;
    int n;
    struct pl_rate_result results[PL_RATE_MAX_KEYS];
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
}

/* One check, waited for; the callback must not have fired inside pl_ratelimit_check. */
static struct outcome check_n(uv_loop_t *loop, struct pl_ratelimit *rl, int n,
                              const char *const *keys, const struct pl_rate_rule *rules)
{
    struct outcome o = {0};
    CHECK_EQ_INT(pl_ratelimit_check(rl, n, keys, rules, on_rate, &o), 0);
    CHECK_EQ_INT(o.calls, 0);
    CHECK(WAIT_UNTIL(loop, o.calls > 0, 5000));
    CHECK_EQ_INT(o.calls, 1);
    CHECK_EQ_INT(o.n, n);
    return o;
}

static struct outcome check1(uv_loop_t *loop, struct pl_ratelimit *rl, const char *key, int count,
                             int period_s)
{
    struct pl_rate_rule rule = {count, period_s};
    return check_n(loop, rl, 1, (const char *[]){key}, &rule);
}

static struct pl_ratelimit *limiter(uv_loop_t *loop, struct pl_redis *r, const char *name)
{
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s:%s:", tid, name);
    struct pl_ratelimit *rl = NULL;
    CHECK_EQ_INT(pl_ratelimit_create(loop, r, prefix, &rl), 0);
    return rl;
}

/* A local port nothing listens on. */
static int closed_port(uv_loop_t *loop)
{
    uv_tcp_t tcp;
    struct sockaddr_in addr;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &tcp);
    CHECK_EQ_INT(uv_tcp_bind(&tcp, (const struct sockaddr *)&addr, 0), 0);
    CHECK_EQ_INT(uv_tcp_getsockname(&tcp, (struct sockaddr *)&ss, &len), 0);
    uv_close((uv_handle_t *)&tcp, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ---- tests ---- */

TEST(n_plus_one_refused)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *r = client(&loop, redis_url, 2000);
    CHECK(connected(&loop, r));
    struct pl_ratelimit *rl = limiter(&loop, r, "basic");

    for (int i = 0; i < 5; i++) {
        struct outcome o = check1(&loop, rl, "user:1", 5, 60);
        CHECK(o.allowed);
        CHECK(!o.fallback);
        CHECK(o.results[0].allowed);
        CHECK_EQ_INT(o.results[0].limit, 5);
        CHECK_EQ_INT(o.results[0].remaining, 4 - i);
        CHECK_EQ_INT(o.results[0].reset_s, 12 * (i + 1)); /* rounded up: exact or a µs less */
        CHECK_EQ_INT(o.results[0].retry_after_s, 0);
    }
    struct outcome o = check1(&loop, rl, "user:1", 5, 60);
    CHECK(!o.allowed);
    CHECK(!o.fallback);
    CHECK(!o.results[0].allowed);
    CHECK_EQ_INT(o.results[0].remaining, 0);
    CHECK(o.results[0].retry_after_s >= 1 && o.results[0].retry_after_s <= 12);
    CHECK(o.results[0].reset_s >= 55 && o.results[0].reset_s <= 60);
    /* Another key has its own budget. */
    o = check1(&loop, rl, "user:2", 5, 60);
    CHECK(o.allowed);
    CHECK_EQ_INT(o.results[0].remaining, 4);

    /* What is stored: the TAT as integer microseconds, expiring just after it. */
    char k[160];
    snprintf(k, sizeof k, "%s:basic:user:1", tid);
    struct reply rep;
    CHECK(CALL(&loop, r, &rep, "GET", k));
    CHECK_EQ_INT(rep.type, REDIS_REPLY_STRING);
    bool digits = strlen(rep.str) >= 16;
    for (const char *p = rep.str; *p; p++)
        digits = digits && isdigit((unsigned char)*p);
    CHECK(digits);
    CHECK(CALL(&loop, r, &rep, "PTTL", k));
    CHECK(rep.integer > 50000 && rep.integer <= 60001);

    pl_ratelimit_destroy(rl);
    pl_redis_destroy(r);
    finish(&loop);
}

/* Two replicas: their own loop, client and limiter each, one budget between them. */
TEST(replicas_share_budget)
{
    uv_loop_t a, b;
    uv_loop_init(&a);
    uv_loop_init(&b);
    struct pl_redis *ra = client(&a, redis_url, 2000);
    struct pl_redis *rb = client(&b, redis_url, 2000);
    CHECK(connected(&a, ra));
    CHECK(connected(&b, rb));
    struct pl_ratelimit *la = limiter(&a, ra, "shared");
    struct pl_ratelimit *lb = limiter(&b, rb, "shared");

    int allowed_a = 0, allowed_b = 0, fallbacks = 0;
    for (int i = 0; i < 20; i++) {
        bool on_a = i % 2 == 0;
        struct outcome o =
            on_a ? check1(&a, la, "ip:10.0.0.1", 10, 60) : check1(&b, lb, "ip:10.0.0.1", 10, 60);
        fallbacks += o.fallback;
        if (o.allowed) {
            if (on_a)
                allowed_a++;
            else
                allowed_b++;
        } else {
            CHECK(o.results[0].retry_after_s >= 1);
        }
    }
    CHECK_EQ_INT(fallbacks, 0);
    CHECK_EQ_INT(allowed_a + allowed_b, 10);
    CHECK_EQ_INT(allowed_a, 5);
    CHECK_EQ_INT(allowed_b, 5);

    /* Concurrent: both replicas fire a burst at once; still 10 in all. */
    enum { N = 15 };
    struct outcome oa[N], ob[N];
    memset(oa, 0, sizeof oa);
    memset(ob, 0, sizeof ob);
    struct pl_rate_rule rule = {10, 60};
    const char *key[] = {"ip:10.0.0.2"};
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(pl_ratelimit_check(la, 1, key, &rule, on_rate, &oa[i]), 0);
        CHECK_EQ_INT(pl_ratelimit_check(lb, 1, key, &rule, on_rate, &ob[i]), 0);
    }
    CHECK(WAIT_UNTIL(&a, oa[N - 1].calls == 1, 5000));
    CHECK(WAIT_UNTIL(&b, ob[N - 1].calls == 1, 5000));
    int total = 0;
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(oa[i].calls, 1);
        CHECK_EQ_INT(ob[i].calls, 1);
        CHECK(!oa[i].fallback && !ob[i].fallback);
        total += oa[i].allowed + ob[i].allowed;
    }
    CHECK_EQ_INT(total, 10);

    pl_ratelimit_destroy(la);
    pl_ratelimit_destroy(lb);
    pl_redis_destroy(ra);
    pl_redis_destroy(rb);
    finish(&a);
    finish(&b);
}

TEST(login_multi_key)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *r = client(&loop, redis_url, 2000);
    CHECK(connected(&loop, r));
    struct pl_ratelimit *rl = limiter(&loop, r, "login");
    const char *pair[] = {"ip+email:1.2.3.4:a@example.com", "ip:1.2.3.4"};
    struct pl_rate_rule rules[] = {{2, 60}, {5, 60}};

    for (int i = 0; i < 2; i++) {
        struct outcome o = check_n(&loop, rl, 2, pair, rules);
        CHECK(o.allowed && !o.fallback);
        CHECK_EQ_INT(o.results[0].remaining, 1 - i);
        CHECK_EQ_INT(o.results[1].remaining, 4 - i);
    }
    /* The email's limit refuses; the IP is not charged for the refused attempts. */
    for (int i = 0; i < 3; i++) {
        struct outcome o = check_n(&loop, rl, 2, pair, rules);
        CHECK(!o.allowed && !o.fallback);
        CHECK(!o.results[0].allowed);
        CHECK(o.results[0].retry_after_s >= 1 && o.results[0].retry_after_s <= 30);
        CHECK(o.results[1].allowed);
        CHECK_EQ_INT(o.results[1].remaining, 3);
        CHECK_EQ_INT(o.results[1].retry_after_s, 0);
    }
    /* Other emails from the same IP: exactly the 3 left on the IP. */
    int allowed = 0;
    for (int i = 0; i < 6; i++) {
        char email[64];
        snprintf(email, sizeof email, "ip+email:1.2.3.4:u%d@example.com", i);
        struct outcome o = check_n(&loop, rl, 2, (const char *[]){email, "ip:1.2.3.4"}, rules);
        allowed += o.allowed;
        if (!o.allowed) {
            CHECK(o.results[0].allowed); /* fresh email, refused by the IP */
            CHECK_EQ_INT(o.results[0].remaining, 2);
            CHECK(!o.results[1].allowed);
        }
    }
    CHECK_EQ_INT(allowed, 3);
    /* The refused emails were not charged: each still has its full 2. */
    struct outcome o = check1(&loop, rl, "ip+email:1.2.3.4:u5@example.com", 2, 60);
    CHECK(o.allowed);
    CHECK_EQ_INT(o.results[0].remaining, 1);

    pl_ratelimit_destroy(rl);
    pl_redis_destroy(r);
    finish(&loop);
}

TEST(after_script_flush)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *r = client(&loop, redis_url, 2000);
    CHECK(connected(&loop, r));
    struct pl_ratelimit *rl = limiter(&loop, r, "flush");
    char sha[41];
    pl_redis_sha1_hex(rl_check_lua, strlen(rl_check_lua), sha);

    struct outcome o = check1(&loop, rl, "k", 3, 60);
    CHECK(o.allowed && !o.fallback);
    struct reply rep;
    CHECK(CALL(&loop, r, &rep, "SCRIPT", "FLUSH"));
    CHECK(CALL(&loop, r, &rep, "SCRIPT", "EXISTS", sha));
    CHECK_EQ_INT(rep.ints[0], 0);
    o = check1(&loop, rl, "k", 3, 60);
    CHECK(o.allowed && !o.fallback);
    CHECK_EQ_INT(o.results[0].remaining, 1); /* the count survived */
    CHECK(CALL(&loop, r, &rep, "SCRIPT", "EXISTS", sha));
    CHECK_EQ_INT(rep.ints[0], 1);
    o = check1(&loop, rl, "k", 3, 60);
    CHECK(o.allowed && !o.fallback);
    o = check1(&loop, rl, "k", 3, 60);
    CHECK(!o.allowed && !o.fallback);

    pl_ratelimit_destroy(rl);
    pl_redis_destroy(r);
    finish(&loop);
}

/* The library text runs inside another script, as the session check will use it. */
TEST(lua_embeddable)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *r = client(&loop, redis_url, 2000);
    CHECK(connected(&loop, r));
    char k[160];
    snprintf(k, sizeof k, "%s:embedded", tid);
    size_t cap = strlen(pl_ratelimit_lua) + 256;
    char *gcra = malloc(cap), *peek = malloc(cap);
    snprintf(gcra, cap, "%s\nreturn pl_gcra(KEYS[1], pl_gcra_now(), 2, 60)", pl_ratelimit_lua);
    snprintf(peek, cap, "%s\nreturn pl_gcra_peek(KEYS[1], pl_gcra_now(), 2, 60)", pl_ratelimit_lua);
    struct reply rep;

    /* The text alone compiles, defines only locals and returns nothing. */
    CHECK(CALL(&loop, r, &rep, "EVAL", pl_ratelimit_lua, "0"));
    CHECK_EQ_INT(rep.type, REDIS_REPLY_NIL);

    /* Peeking twice stores nothing. */
    for (int i = 0; i < 2; i++) {
        CHECK(CALL(&loop, r, &rep, "EVAL", peek, "1", k));
        CHECK_EQ_INT(rep.elements, 4);
        CHECK(rep.ints[0] == 1 && rep.ints[1] == 1 && rep.ints[2] == 30 && rep.ints[3] == 0);
    }
    CHECK(CALL(&loop, r, &rep, "EXISTS", k));
    CHECK_EQ_INT(rep.integer, 0);

    CHECK(CALL(&loop, r, &rep, "EVAL", gcra, "1", k));
    CHECK(rep.ints[0] == 1 && rep.ints[1] == 1 && rep.ints[2] == 30 && rep.ints[3] == 0);
    CHECK(CALL(&loop, r, &rep, "EVAL", gcra, "1", k));
    CHECK(rep.ints[0] == 1 && rep.ints[1] == 0 && rep.ints[2] == 60 && rep.ints[3] == 0);
    CHECK(CALL(&loop, r, &rep, "EVAL", peek, "1", k));
    CHECK(rep.ints[0] == 0 && rep.ints[1] == 0 && rep.ints[2] == 60 && rep.ints[3] == 30);
    CHECK(CALL(&loop, r, &rep, "EVAL", gcra, "1", k));
    CHECK(rep.ints[0] == 0 && rep.ints[1] == 0 && rep.ints[2] == 60 && rep.ints[3] == 30);

    CHECK(CALL(&loop, r, &rep, "DEL", k));
    free(gcra);
    free(peek);
    pl_redis_destroy(r);
    finish(&loop);
}

TEST(redis_unreachable_falls_back)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", closed_port(&loop));
    struct pl_redis *r = client(&loop, url, 500);
    SLEEP(&loop, 200);
    CHECK(!pl_redis_connected(r));
    struct pl_ratelimit *rl = limiter(&loop, r, "down");

    for (int i = 0; i < 3; i++) {
        struct outcome o = check1(&loop, rl, "user:9", 3, 60);
        CHECK(o.allowed);
        CHECK(o.fallback);
        CHECK_EQ_INT(o.results[0].remaining, 2 - i);
    }
    struct outcome o = check1(&loop, rl, "user:9", 3, 60);
    CHECK(!o.allowed);
    CHECK(o.fallback);
    CHECK(o.results[0].retry_after_s >= 1 && o.results[0].retry_after_s <= 20);

    /* Multi-key in the fallback: all or nothing too. */
    struct pl_rate_rule rules[] = {{1, 60}, {3, 60}};
    o = check_n(&loop, rl, 2, (const char *[]){"pair", "user:9"}, rules);
    CHECK(!o.allowed && o.fallback);
    CHECK(o.results[0].allowed && !o.results[1].allowed);
    o = check1(&loop, rl, "pair", 1, 60);
    CHECK(o.allowed && o.fallback); /* "pair" was not charged above */

    pl_ratelimit_destroy(rl);
    pl_redis_destroy(r);
    finish(&loop);
}

/* A Redis that accepts and never answers: the command times out and the check falls back;
 * destroying the limiter with checks in flight answers them at once. */
struct silent {
    uv_tcp_t listener;
    uv_tcp_t peers[8];
    int npeers;
};

static void on_silent_conn(uv_stream_t *srv, int status)
{
    struct silent *s = srv->data;
    if (status < 0 || s->npeers == 8) return;
    uv_tcp_t *peer = &s->peers[s->npeers];
    uv_tcp_init(srv->loop, peer);
    if (uv_accept(srv, (uv_stream_t *)peer) == 0)
        s->npeers++;
    else
        uv_close((uv_handle_t *)peer, NULL);
}

TEST(redis_silent_falls_back)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct silent s = {.npeers = 0};
    struct sockaddr_in addr;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(&loop, &s.listener);
    s.listener.data = &s;
    CHECK_EQ_INT(uv_tcp_bind(&s.listener, (const struct sockaddr *)&addr, 0), 0);
    CHECK_EQ_INT(uv_listen((uv_stream_t *)&s.listener, 8, on_silent_conn), 0);
    CHECK_EQ_INT(uv_tcp_getsockname(&s.listener, (struct sockaddr *)&ss, &len), 0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(((struct sockaddr_in *)&ss)->sin_port));

    struct pl_redis *r = client(&loop, url, 300);
    CHECK(connected(&loop, r)); /* no AUTH or SELECT: usable once TCP is up */
    struct pl_ratelimit *rl = limiter(&loop, r, "silent");
    struct outcome o = check1(&loop, rl, "k", 1, 60);
    CHECK(o.allowed && o.fallback);

    /* In flight at destroy: answered inside destroy, exactly once, even when Redis (here the
     * client's destruction) calls back later. */
    CHECK(connected(&loop, r)); /* reconnected after the timeout */
    struct outcome pending[3];
    memset(pending, 0, sizeof pending);
    struct pl_rate_rule rule = {1, 60};
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(pl_ratelimit_check(rl, 1, (const char *[]){"k2"}, &rule, on_rate, &pending[i]),
                     0);
    CHECK_EQ_INT(pending[0].calls, 0);
    pl_ratelimit_destroy(rl);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(pending[i].calls, 1);
        CHECK(pending[i].fallback);
        CHECK_EQ_INT(pending[i].allowed, i == 0);
    }
    pl_redis_destroy(r);
    SLEEP(&loop, 50);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(pending[i].calls, 1);
    for (int i = 0; i < s.npeers; i++)
        uv_close((uv_handle_t *)&s.peers[i], NULL);
    uv_close((uv_handle_t *)&s.listener, NULL);
    finish(&loop);
}

/* Redis comes back: answers come from Redis again, whose count never saw the outage. */
TEST(back_on_redis)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *r = client(&loop, redis_url, 2000);
    CHECK(connected(&loop, r));
    struct pl_ratelimit *rl = limiter(&loop, r, "back");
    struct outcome o = check1(&loop, rl, "k", 4, 60);
    CHECK(o.allowed && !o.fallback);
    CHECK_EQ_INT(o.results[0].remaining, 3);
    /* Our own connection killed (by id: nobody else's), one check meanwhile. */
    struct reply rep;
    CHECK(CALL(&loop, r, &rep, "CLIENT", "ID"));
    char id[32];
    snprintf(id, sizeof id, "%lld", rep.integer);
    struct pl_redis *admin = client(&loop, redis_url, 2000);
    CHECK(connected(&loop, admin));
    CHECK(CALL(&loop, admin, &rep, "CLIENT", "KILL", "ID", id));
    CHECK(WAIT_UNTIL(&loop, !pl_redis_connected(r), 5000));
    o = check1(&loop, rl, "k", 4, 60);
    CHECK(o.allowed);
    CHECK(o.fallback);
    CHECK(connected(&loop, r));
    o = check1(&loop, rl, "k", 4, 60);
    CHECK(o.allowed && !o.fallback);
    CHECK_EQ_INT(o.results[0].remaining, 2);

    pl_ratelimit_destroy(rl);
    pl_redis_destroy(admin);
    pl_redis_destroy(r);
    finish(&loop);
}

/* Replicas as the server runs them: worker threads, each with its own loop, client and
 * limiter, all firing at once. With Redis the budget is global; with Redis unreachable the
 * fallback table is per process, so the threads of one process still share it. */
struct worker {
    const char *url;
    const char *key;
    int count;
    int attempts;
    int allowed;
    int fallbacks;
    int answered;
    bool ok;
};

static void on_worker_rate(bool allowed, const struct pl_rate_result *results, int n, bool fallback,
                           void *ctx)
{
    struct worker *w = ctx;
    w->answered++;
    w->allowed += allowed;
    w->fallbacks += fallback;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis_config cfg = {
        .url = w->url, .connect_timeout_ms = 2000, .command_timeout_ms = 2000};
    struct pl_redis *r = NULL;
    struct pl_ratelimit *rl = NULL;
    w->ok = pl_redis_create(&loop, &cfg, &r) == 0 && pl_ratelimit_create(&loop, r, tid, &rl) == 0;
    if (w->ok) {
        (void)WAIT_UNTIL(&loop, pl_redis_connected(r), 1000);
        struct pl_rate_rule rule = {w->count, 60};
        for (int i = 0; i < w->attempts; i++)
            w->ok = w->ok && pl_ratelimit_check(rl, 1, &w->key, &rule, on_worker_rate, w) == 0;
        w->ok = w->ok && WAIT_UNTIL(&loop, w->answered == w->attempts, 10000);
    }
    pl_ratelimit_destroy(rl);
    pl_redis_destroy(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    w->ok = w->ok && uv_loop_close(&loop) == 0;
    return NULL;
}

static void run_workers(const char *url, const char *key, int *allowed, int *fallbacks)
{
    enum { W = 4 };
    struct worker w[W];
    pthread_t th[W];
    for (int i = 0; i < W; i++) {
        w[i] = (struct worker){.url = url, .key = key, .count = 25, .attempts = 40};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    *allowed = *fallbacks = 0;
    for (int i = 0; i < W; i++) {
        pthread_join(th[i], NULL);
        CHECK(w[i].ok);
        CHECK_EQ_INT(w[i].answered, 40);
        *allowed += w[i].allowed;
        *fallbacks += w[i].fallbacks;
    }
}

TEST(threads_share_budget)
{
    int allowed, fallbacks;
    run_workers(redis_url, "threads:redis", &allowed, &fallbacks);
    CHECK_EQ_INT(allowed, 25);
    CHECK_EQ_INT(fallbacks, 0);

    uv_loop_t loop;
    uv_loop_init(&loop);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", closed_port(&loop));
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    run_workers(url, "threads:local", &allowed, &fallbacks);
    CHECK_EQ_INT(allowed, 25);
    CHECK_EQ_INT(fallbacks, 160);
}

int main(void)
{
    redis_url = test_env("REDIS_URL");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(tid, sizeof tid, "pltest-rl-%d-%lx", (int)getpid(), (unsigned long)ts.tv_nsec);

    RUN(n_plus_one_refused);
    RUN(replicas_share_budget);
    RUN(login_multi_key);
    RUN(after_script_flush);
    RUN(lua_embeddable);
    RUN(redis_unreachable_falls_back);
    RUN(redis_silent_falls_back);
    RUN(back_on_redis);
    RUN(threads_share_budget);
    return TEST_REPORT();
}
