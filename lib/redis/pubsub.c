/* The subscriber: its own connection (a subscribed connection accepts no other commands),
 * the set of channels and patterns to restore after every reconnect, and message dispatch.
 *
 * Each connection also subscribes to a private sentinel channel, last in the pipeline after
 * AUTH and the restored subscriptions. Its confirmation means every earlier SUBSCRIBE has
 * taken effect (Redis answers in order), so that is when on_state(true) fires, and with no
 * subscriptions at all it still proves a working, authenticated connection. */
#include <string.h>

#include "pl/error.h"
#include "redis/redis_internal.h"

#define SENTINEL "__pl_redis_sub_ready"

struct name {
    struct name *next;
    bool pattern;
    size_t len;
    char s[];
};

struct pl_redis_sub {
    struct rconn conn; /* first: conn callbacks find the sub with rd_container_of */
    void (*on_message)(const char *channel, size_t channel_len, const char *payload,
                       size_t payload_len, void *ctx);
    void (*on_state)(bool connected, void *ctx);
    void (*on_subscribed)(const char *channel, size_t channel_len, void *ctx);
    void *ctx;
    struct name *names;
    bool destroying;
};

static bool is_str(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING;
}

static bool str_is(const redisReply *r, const char *s)
{
    return is_str(r) && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

/* The hiredis callback of every SUBSCRIBE and PSUBSCRIBE; hiredis routes confirmations and
 * messages of those channels and patterns here. */
static void on_sub_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct pl_redis_sub *s = privdata;
    redisReply *reply = reply_;
    (void)ac;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    redisReply **e = reply->element;
    if (!is_str(e[0])) return;
    rconn_enter(&s->conn);
    if (str_is(e[0], "message") && is_str(e[1]) && is_str(e[2])) {
        if (!s->destroying && !str_is(e[1], SENTINEL))
            s->on_message(e[1]->str, e[1]->len, e[2]->str, e[2]->len, s->ctx);
    } else if (str_is(e[0], "pmessage") && reply->elements == 4 && is_str(e[2]) && is_str(e[3])) {
        if (!s->destroying) s->on_message(e[2]->str, e[2]->len, e[3]->str, e[3]->len, s->ctx);
    } else if (str_is(e[0], "subscribe") && str_is(e[1], SENTINEL)) {
        rconn_step(&s->conn);
    } else if (str_is(e[0], "subscribe") && is_str(e[1])) {
        if (s->on_subscribed && !s->destroying) s->on_subscribed(e[1]->str, e[1]->len, s->ctx);
    }
    rconn_leave(&s->conn);
}

static void send_names(struct pl_redis_sub *s, bool pattern)
{
    int n = 0;
    for (struct name *nm = s->names; nm; nm = nm->next)
        n += nm->pattern == pattern;
    if (n == 0) return;
    const char **argv = rd_xmalloc((size_t)(n + 1) * sizeof *argv);
    size_t *lens = rd_xmalloc((size_t)(n + 1) * sizeof *lens);
    argv[0] = pattern ? "PSUBSCRIBE" : "SUBSCRIBE";
    lens[0] = strlen(argv[0]);
    int i = 1;
    for (struct name *nm = s->names; nm; nm = nm->next) {
        if (nm->pattern != pattern) continue;
        argv[i] = nm->s;
        lens[i++] = nm->len;
    }
    /* A failure means the context is closing: the next connection sends the set again. */
    (void)redisAsyncCommandArgv(s->conn.ac, on_sub_reply, s, n + 1, argv, lens);
    free(argv);
    free(lens);
}

static void on_connected(struct rconn *c)
{
    struct pl_redis_sub *s = rd_container_of(c, struct pl_redis_sub, conn);
    send_names(s, false);
    send_names(s, true);
    if (redisAsyncCommand(c->ac, on_sub_reply, s, "SUBSCRIBE %s", SENTINEL) == REDIS_OK)
        rconn_expect(c, 1);
    else
        rconn_drop(c, "cannot queue SUBSCRIBE");
}

static void on_ready(struct rconn *c)
{
    struct pl_redis_sub *s = rd_container_of(c, struct pl_redis_sub, conn);
    if (s->on_state && !s->destroying) s->on_state(true, s->ctx);
}

static void on_down(struct rconn *c)
{
    struct pl_redis_sub *s = rd_container_of(c, struct pl_redis_sub, conn);
    if (s->on_state && !s->destroying) s->on_state(false, s->ctx);
}

static void on_closed(struct rconn *c)
{
    struct pl_redis_sub *s = rd_container_of(c, struct pl_redis_sub, conn);
    while (s->names) {
        struct name *nm = s->names;
        s->names = nm->next;
        free(nm);
    }
    free(s);
}

static const struct rconn_ops sub_ops = {
    .on_connected = on_connected, .on_ready = on_ready, .on_down = on_down, .on_closed = on_closed};

int pl_redis_sub_create(uv_loop_t *loop, const struct pl_redis_sub_config *cfg,
                        struct pl_redis_sub **out)
{
    if (!out) return PL_E_INVALID;
    *out = NULL;
    if (!loop || !cfg || !cfg->on_message) return PL_E_INVALID;
    struct pl_redis_url url;
    int rc = pl_redis_url_parse(cfg->url, &url);
    if (rc < 0) return rc;

    struct pl_redis_sub *s = rd_xcalloc(1, sizeof *s);
    s->on_message = cfg->on_message;
    s->on_state = cfg->on_state;
    s->on_subscribed = cfg->on_subscribed;
    s->ctx = cfg->ctx;
    int connect_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 2000;
    rconn_init(&s->conn, loop, &sub_ops, "redis-sub", &url, connect_ms, false);
    *out = s;
    return 0;
}

static struct name **find(struct pl_redis_sub *s, const char *str, size_t len, bool pattern)
{
    for (struct name **p = &s->names; *p; p = &(*p)->next)
        if ((*p)->pattern == pattern && (*p)->len == len && memcmp((*p)->s, str, len) == 0)
            return p;
    return NULL;
}

static int add(struct pl_redis_sub *s, const char *str, bool pattern)
{
    if (!s || !str || s->destroying) return PL_E_INVALID;
    size_t len = strlen(str);
    if (find(s, str, len, pattern)) return 0;
    struct name *nm = rd_xmalloc(sizeof *nm + len + 1);
    nm->pattern = pattern;
    nm->len = len;
    memcpy(nm->s, str, len + 1);
    nm->next = s->names;
    s->names = nm;
    /* Before the connection is up, on_connected sends the whole set anyway. */
    if (rconn_sendable(&s->conn)) {
        const char *argv[] = {pattern ? "PSUBSCRIBE" : "SUBSCRIBE", str};
        (void)redisAsyncCommandArgv(s->conn.ac, on_sub_reply, s, 2, argv, NULL);
    }
    return 0;
}

int pl_redis_subscribe(struct pl_redis_sub *s, const char *channel)
{
    return add(s, channel, false);
}

int pl_redis_psubscribe(struct pl_redis_sub *s, const char *pattern)
{
    return add(s, pattern, true);
}

int pl_redis_unsubscribe(struct pl_redis_sub *s, const char *channel)
{
    if (!s || !channel || s->destroying) return PL_E_INVALID;
    struct name **p = find(s, channel, strlen(channel), false);
    if (!p) return 0;
    struct name *nm = *p;
    *p = nm->next;
    free(nm);
    if (rconn_sendable(&s->conn)) {
        const char *argv[] = {"UNSUBSCRIBE", channel};
        (void)redisAsyncCommandArgv(s->conn.ac, NULL, NULL, 2, argv, NULL);
    }
    return 0;
}

void pl_redis_sub_destroy(struct pl_redis_sub *s)
{
    if (!s || s->destroying) return;
    s->destroying = true;
    rconn_close(&s->conn);
}

bool pl_redis_sub_connected(const struct pl_redis_sub *s)
{
    return s->conn.ready;
}
