/* redis_internal: what the files of lib/redis share, and what its unit test reaches.
 *
 *   url.c         redis:// URL parsing
 *   sha1.c        SHA1 of Lua scripts (EVALSHA needs it; libsodium has none)
 *   uv_adapter.c  hiredis' libuv adapter, plus the poll-error handling it lacks
 *   conn.c        one self-healing connection: resolve, connect, AUTH/SELECT, timers, backoff
 *   client.c      the command client on top of conn: pending queue, timeouts, stats
 *   script.c      EVALSHA with the NOSCRIPT fallback
 *   pubsub.c      the subscriber on top of conn
 *
 * Re-entrancy rule of the module: a redisAsyncContext is freed only when none of our hiredis
 * callbacks is on the stack (conn.depth == 0); otherwise the free waits for a 0 ms timer. Our
 * own structs are freed only from uv_close callbacks, so code unwinding after a user callback
 * (which may have called a destroy function) never touches freed memory. */
#ifndef PL_REDIS_INTERNAL_H
#define PL_REDIS_INTERNAL_H

#include <hiredis/async.h>
#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <uv.h>

#include "pl/redis.h"

/* Out of memory is not a condition this server recovers from (design: OOM aborts). */
static inline void *rd_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

#define rd_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void *rd_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) abort();
    return p;
}

/* ---- url.c ---- */

struct pl_redis_url {
    char *host;     /* without IPv6 brackets */
    int port;       /* 6379 when absent */
    char *user;     /* NULL when absent: AUTH password alone */
    char *password; /* NULL when absent or empty: no AUTH */
    int db;         /* 0 when absent */
};

/* Parses redis://[[user]:password@]host[:port][/db]; user and password are percent-decoded.
 * Returns 0 (dispose `out` with pl_redis_url_dispose) or PL_E_CONFIG (nothing to dispose). */
int pl_redis_url_parse(const char *url, struct pl_redis_url *out);
void pl_redis_url_dispose(struct pl_redis_url *u);

/* ---- sha1.c ---- */

/* Writes the 40 lowercase hex digits of SHA1(data) and a NUL into hex. */
void pl_redis_sha1_hex(const void *data, size_t len, char hex[41]);

/* ---- uv_adapter.c ---- */

/* Attaches `ac` to `loop` (hiredis' libuv adapter with poll errors routed to the read
 * handler). Returns 0 or PL_E_UNAVAILABLE. */
int pl_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

/* ---- conn.c ---- */

struct rconn;
struct rconn_resolve;

/* How a connection reports to its owner. Every hook may be NULL. */
struct rconn_ops {
    /* TCP is up and AUTH/SELECT are queued: the owner may pipeline its own commands on c->ac
     * and, to delay readiness until one of their replies, call rconn_expect(). */
    void (*on_connected)(struct rconn *c);
    /* The handshake succeeded: the connection is usable. */
    void (*on_ready)(struct rconn *c);
    /* A connection that had been ready is gone; hiredis has already failed its pending
     * commands. Not called after rconn_close(). */
    void (*on_down)(struct rconn *c);
    /* After rconn_close(): every handle is closed; the owner may free itself. */
    void (*on_closed)(struct rconn *c);
};

struct rconn {
    uv_loop_t *loop;
    const struct rconn_ops *ops;
    const char *what; /* "redis" or "redis-sub", for logs */
    struct pl_redis_url url;
    int connect_timeout_ms;
    bool select_db; /* pub/sub ignores the db: no SELECT there */

    redisAsyncContext *ac;              /* NULL between attempts */
    uv_timer_t timer;                   /* connect deadline, backoff, or a deferred free (0 ms) */
    struct rconn_resolve *resolve;      /* in-flight uv_getaddrinfo, or NULL */
    struct addrinfo *addrs, *next_addr; /* addresses of the current attempt */

    int depth;          /* > 0 while one of our hiredis callbacks runs */
    int handshake_left; /* replies still needed before ready */
    int backoff_ms;
    bool tcp_up;       /* on_connected ran for c->ac */
    bool ready;        /* usable: handshake done, not dropping */
    bool was_ready;    /* ready was reached on c->ac */
    bool drop_pending; /* c->ac is to be freed from the timer */
    char reason[128];  /* why c->ac is being dropped, for the log line */
    bool closing;
    bool handles_closed;
    unsigned failures; /* consecutive failed attempts, to log only the first */
    uint64_t errors;   /* failed attempts and lost connections */
};

/* Takes `url` (moved in). Starts the first attempt; nothing fires from inside this call. */
void rconn_init(struct rconn *c, uv_loop_t *loop, const struct rconn_ops *ops, const char *what,
                struct pl_redis_url *url, int connect_timeout_ms, bool select_db);
/* Frees c->ac (now if possible, else from the timer): pending hiredis callbacks then fire
 * with NULL replies. Ends with ops->on_closed. */
void rconn_close(struct rconn *c);
/* Drops the current connection (e.g. after a command timeout) and reconnects with backoff. */
void rconn_drop(struct rconn *c, const char *why);
/* The connection may carry commands: TCP is up, AUTH/SELECT were queued, not dropping. */
bool rconn_sendable(const struct rconn *c);
/* Readiness waits for n more rconn_step() calls (used from on_connected). */
void rconn_expect(struct rconn *c, int n);
/* One awaited handshake reply arrived fine. */
void rconn_step(struct rconn *c);

/* Every hiredis callback of the module brackets its body with these. */
static inline void rconn_enter(struct rconn *c)
{
    c->depth++;
}
static inline void rconn_leave(struct rconn *c)
{
    c->depth--;
}

/* ---- client.c, script.c ---- */

/* One command sent on the client's connection. hiredis holds it as privdata until it calls
 * back (with a reply, or NULL when the context goes away), and frees it then; the caller's
 * callback may have fired earlier (timeout, destroy), which `done` records. */
struct rd_cmd {
    struct rd_cmd *prev, *next; /* the client's pending list while !done, oldest first */
    struct pl_redis *r;
    pl_redis_cb cb;
    void *ctx;
    uint64_t deadline; /* uv_now() + command_timeout_ms */
    bool done;
    bool timed_out;
    bool retried;                   /* NOSCRIPT fallback already used */
    struct pl_redis_script *script; /* EVALSHA only */
    char *formatted;                /* EVALSHA as sent, for the retry; redisFreeCommand */
    size_t formatted_len;
};

struct pl_redis_script {
    struct pl_redis_script *next;
    char *lua;
    size_t len;
    char sha[41];
};

struct pl_redis {
    struct rconn conn; /* first: conn callbacks find the client with rd_container_of */
    int command_timeout_ms;
    uv_timer_t cmd_timer; /* repeating while commands are pending; checks the oldest */
    struct rd_cmd *head, *tail;
    int pending;
    uint64_t timeouts;
    struct pl_redis_script *scripts;
    bool destroying;
    int handles_open;
};

/* The hiredis reply callback of every client command (privdata: struct rd_cmd). */
void pl_redis_on_reply(redisAsyncContext *ac, void *reply, void *privdata);
/* Allocates a command; the caller sends it with pl_redis_submit or frees it. */
struct rd_cmd *pl_redis_cmd_new(struct pl_redis *r, pl_redis_cb cb, void *ctx);
/* Sends cmd->formatted and tracks it. Returns 0, or PL_E_UNAVAILABLE (cmd freed). */
int pl_redis_submit(struct pl_redis *r, struct rd_cmd *cmd);
/* On NOSCRIPT: queues SCRIPT LOAD and the same EVALSHA again, re-tracking cmd. Returns 0, or
 * PL_E_UNAVAILABLE (cmd untouched). */
int pl_redis_script_retry(struct pl_redis *r, redisAsyncContext *ac, struct rd_cmd *cmd);
void pl_redis_scripts_free(struct pl_redis *r);

#endif
