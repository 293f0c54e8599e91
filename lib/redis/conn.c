/* One Redis connection that heals itself; the command client and the subscriber both sit on
 * it.
 *
 * An attempt: resolve the host on the libuv thread pool (hiredis would call getaddrinfo on the
 * loop), connect to each address in turn, then pipeline AUTH and SELECT plus whatever the
 * owner adds; the connection is ready once those replies came back fine. One timer serves
 * three purposes, never two at once: the deadline of an attempt (hiredis 0.14 has no connect
 * timeout), the backoff before the next one (100 ms doubling to 2 s), and a 0 ms hop to free
 * a context from outside its own callbacks. */
#include <stdio.h>
#include <string.h>

#include "pl/error.h"
#include "pl/log.h"
#include "redis/redis_internal.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

struct rconn_resolve {
    uv_getaddrinfo_t req;
    struct rconn *c; /* NULL once abandoned: the callback then only frees */
};

static void on_timer(uv_timer_t *t);
static void lost(struct rconn *c, const char *why);

static void log_event(struct rconn *c, enum pl_log_level level, const char *msg, const char *why)
{
    pl_log(level, msg, PL_STR("conn", c->what), PL_STR("host", c->url.host),
           PL_INT("port", c->url.port), PL_STR("error", why ? why : ""));
}

static void free_addrs(struct rconn *c)
{
    if (c->addrs) uv_freeaddrinfo(c->addrs);
    c->addrs = c->next_addr = NULL;
}

static void abandon_resolve(struct rconn *c)
{
    if (!c->resolve) return;
    c->resolve->c = NULL;
    /* Fails harmlessly when the lookup already runs; the callback still frees the request. */
    uv_cancel((uv_req_t *)&c->resolve->req);
    c->resolve = NULL;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct rconn *c = h->data;
    free_addrs(c);
    pl_redis_url_dispose(&c->url);
    if (c->ops->on_closed) c->ops->on_closed(c);
}

static void close_handles(struct rconn *c)
{
    if (c->handles_closed) return;
    c->handles_closed = true;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

/* After a failure: the next address of this attempt at once, else a new attempt after the
 * backoff. */
static void next_attempt(struct rconn *c)
{
    if (c->closing) return;
    if (c->next_addr) {
        uv_timer_start(&c->timer, on_timer, 0, 0);
        return;
    }
    free_addrs(c);
    uv_timer_start(&c->timer, on_timer, (uint64_t)c->backoff_ms, 0);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/* An attempt failed before any context existed (resolve error, immediate connect error). */
static void attempt_failed(struct rconn *c, const char *why)
{
    c->errors++;
    /* While Redis is down this repeats every 2 s: log the first failure of a streak only. */
    if (++c->failures == 1) log_event(c, PL_LOG_WARN, "redis connect failed", why);
    next_attempt(c);
}

/* c->ac is gone, or hiredis frees it as soon as the current callback returns. */
static void lost(struct rconn *c, const char *why)
{
    bool was_ready = c->was_ready;
    c->ac = NULL;
    c->tcp_up = c->ready = c->was_ready = c->drop_pending = false;
    c->handshake_left = 0;
    if (c->closing) {
        close_handles(c);
        return;
    }
    if (!was_ready) {
        attempt_failed(c, why);
    } else {
        c->errors++;
        c->failures = 1; /* the reconnect attempts that follow belong to this streak */
        log_event(c, PL_LOG_WARN, "redis connection lost", why);
        if (c->ops->on_down) c->ops->on_down(c);
        next_attempt(c);
    }
    c->reason[0] = 0;
}

/* Frees c->ac now. Only with none of our hiredis callbacks on the stack (depth == 0):
 * hiredis 0.14 frees a context inside a callback and then keeps using it. */
static void drop_now(struct rconn *c, const char *why)
{
    redisAsyncContext *ac = c->ac;
    c->ready = false;
    if (why && why != c->reason) snprintf(c->reason, sizeof c->reason, "%s", why);
    /* Pending callbacks fire with NULL replies, then our disconnect callback calls lost(),
     * but only if hiredis had finished connecting. */
    redisAsyncFree(ac);
    if (c->ac == ac) lost(c, c->reason);
}

static void become_ready(struct rconn *c)
{
    uv_timer_stop(&c->timer);
    free_addrs(c);
    if (c->failures > 0) log_event(c, PL_LOG_INFO, "redis connected", NULL);
    c->failures = 0;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->ready = c->was_ready = true;
    if (c->ops->on_ready) c->ops->on_ready(c);
}

static void on_handshake_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rconn *c = privdata;
    redisReply *reply = r;
    (void)ac;
    if (!reply) return; /* the context is going away; the disconnect callback follows */
    rconn_enter(c);
    if (reply->type == REDIS_REPLY_ERROR) {
        /* e.g. WRONGPASS: never contains the password itself. */
        char why[sizeof c->reason];
        snprintf(why, sizeof why, "handshake refused: %s", reply->str);
        rconn_drop(c, why);
    } else {
        rconn_step(c);
    }
    rconn_leave(c);
}

static void send_handshake(struct rconn *c, int argc, const char **argv)
{
    if (redisAsyncCommandArgv(c->ac, on_handshake_reply, c, argc, argv, NULL) == REDIS_OK)
        c->handshake_left++;
    else
        rconn_drop(c, "cannot queue the handshake");
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct rconn *c = ac->data;
    rconn_enter(c);
    if (status != REDIS_OK) {
        lost(c, ac->c.errstr); /* hiredis frees the context when we return */
        rconn_leave(c);
        return;
    }
    if (c->closing || c->drop_pending) { /* a close or drop is already on its way */
        rconn_leave(c);
        return;
    }
    c->tcp_up = true;
    /* Detects a peer that vanished without a FIN (a partition), which matters most for an
     * idle subscriber: it would otherwise wait forever for messages. */
    redisEnableKeepAlive(&c->ac->c);
    if (c->url.password) {
        const char *argv[3];
        int argc = 0;
        argv[argc++] = "AUTH";
        if (c->url.user) argv[argc++] = c->url.user;
        argv[argc++] = c->url.password;
        send_handshake(c, argc, argv);
    }
    if (c->select_db && c->url.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", c->url.db);
        send_handshake(c, 2, (const char *[]){"SELECT", db});
    }
    if (c->ops->on_connected && !c->drop_pending) c->ops->on_connected(c);
    if (c->handshake_left == 0 && !c->drop_pending && !c->closing && c->ac) become_ready(c);
    rconn_leave(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rconn *c = ac->data;
    (void)status;
    rconn_enter(c);
    lost(c, c->reason[0] ? c->reason : ac->errstr ? ac->errstr : "connection closed");
    rconn_leave(c);
}

static void connect_next(struct rconn *c)
{
    struct addrinfo *ai = c->next_addr;
    c->next_addr = ai->ai_next;
    char ip[64] = "";
    if (ai->ai_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)(void *)ai->ai_addr, ip, sizeof ip);
    else
        uv_ip4_name((const struct sockaddr_in *)(void *)ai->ai_addr, ip, sizeof ip);

    uv_timer_start(&c->timer, on_timer, (uint64_t)c->connect_timeout_ms, 0);
    /* A numeric address: hiredis' own getaddrinfo returns at once. */
    redisAsyncContext *ac = redisAsyncConnect(ip, c->url.port);
    if (!ac) abort(); /* hiredis returns NULL only when out of memory */
    if (ac->err) {
        /* e.g. refused at once, as connects to a closed local port are */
        char why[sizeof c->reason];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        attempt_failed(c, why);
        return;
    }
    if (pl_redis_uv_attach(ac, c->loop) != 0) {
        redisAsyncFree(ac);
        attempt_failed(c, "cannot watch the socket");
        return;
    }
    ac->data = c;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    struct rconn_resolve *res = rd_container_of(req, struct rconn_resolve, req);
    struct rconn *c = res->c;
    free(res);
    if (!c) {
        if (ai) uv_freeaddrinfo(ai);
        return;
    }
    c->resolve = NULL;
    if (status < 0) {
        attempt_failed(c, uv_strerror(status));
        return;
    }
    free_addrs(c);
    c->addrs = c->next_addr = ai;
    if (!ai) {
        attempt_failed(c, "no address");
        return;
    }
    connect_next(c);
}

static void start_resolve(struct rconn *c)
{
    struct rconn_resolve *res = rd_xmalloc(sizeof *res);
    res->c = c;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    uv_timer_start(&c->timer, on_timer, (uint64_t)c->connect_timeout_ms, 0);
    int rc = uv_getaddrinfo(c->loop, &res->req, on_resolved, c->url.host, NULL, &hints);
    if (rc < 0) {
        free(res);
        attempt_failed(c, uv_strerror(rc));
        return;
    }
    c->resolve = res;
}

static void on_timer(uv_timer_t *t)
{
    struct rconn *c = t->data;
    if (c->ac) {
        /* A deferred drop or close, or the deadline of an attempt. */
        drop_now(c, c->drop_pending || c->closing ? c->reason : "connect timeout");
        if (c->closing) close_handles(c);
        return;
    }
    if (c->closing) {
        close_handles(c);
    } else if (c->resolve) {
        abandon_resolve(c);
        attempt_failed(c, "resolve timeout");
    } else if (c->next_addr) {
        connect_next(c);
    } else {
        start_resolve(c);
    }
}

void rconn_init(struct rconn *c, uv_loop_t *loop, const struct rconn_ops *ops, const char *what,
                struct pl_redis_url *url, int connect_timeout_ms, bool select_db)
{
    memset(c, 0, sizeof *c);
    c->loop = loop;
    c->ops = ops;
    c->what = what;
    c->url = *url;
    memset(url, 0, sizeof *url);
    c->connect_timeout_ms = connect_timeout_ms;
    c->select_db = select_db;
    c->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    start_resolve(c);
}

void rconn_close(struct rconn *c)
{
    if (c->closing) return;
    c->closing = true;
    c->ready = false;
    abandon_resolve(c);
    free_addrs(c);
    if (c->ac && c->depth > 0) {
        uv_timer_start(&c->timer, on_timer, 0, 0); /* frees c->ac, then closes the timer */
        return;
    }
    if (c->ac) drop_now(c, NULL);
    close_handles(c);
}

void rconn_drop(struct rconn *c, const char *why)
{
    if (!c->ac || c->drop_pending || c->closing) return;
    c->ready = false;
    snprintf(c->reason, sizeof c->reason, "%s", why);
    if (c->depth > 0) {
        c->drop_pending = true;
        uv_timer_start(&c->timer, on_timer, 0, 0);
        return;
    }
    drop_now(c, c->reason);
}

bool rconn_sendable(const struct rconn *c)
{
    return c->ac && c->tcp_up && !c->drop_pending && !c->closing;
}

void rconn_expect(struct rconn *c, int n)
{
    c->handshake_left += n;
}

void rconn_step(struct rconn *c)
{
    if (!c->ac || c->ready || c->drop_pending || c->closing) return;
    if (--c->handshake_left <= 0) become_ready(c);
}
