/* redis: an asynchronous Redis client for one libuv loop (hiredis async + adapters/libuv.h).
 *
 * One command connection per client. Commands are pipelined by hiredis. hiredis has no
 * timeouts: we add a connect timer and a per-command timer; a command unanswered within
 * command_timeout_ms completes with PL_E_TIMEOUT and marks the connection dead (it is
 * reconnected; late replies are dropped). Reconnects from a timer with exponential backoff
 * (100 ms .. 2 s); the context is never freed inside its own callback.
 *
 * Scripts are sent with EVALSHA (the SHA1 is computed locally); on NOSCRIPT the client
 * loads the script with SCRIPT LOAD pipelined before a retry, invisibly to the caller.
 *
 * Pub/sub runs on its own connection (struct pl_redis_sub): subscriptions are remembered
 * and re-sent after a reconnect.
 *
 * Threading: a client belongs to one loop; call everything from that loop's thread. */
#ifndef PL_REDIS_H
#define PL_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pl/error.h"

struct pl_redis;
struct pl_redis_script;
struct pl_redis_sub;

struct pl_redis_config {
    const char *url;        /* redis://[:password@]host:port/db (db optional); copied */
    int connect_timeout_ms; /* e.g. 2000 */
    int command_timeout_ms; /* e.g. 2000 */
};

/* Fires exactly once per accepted command, on the loop, never from inside the call that
 * queued it. status 0: `reply` is the server's reply (which may be a REDIS_REPLY_ERROR:
 * check reply->type). PL_E_UNAVAILABLE: not connected or the connection dropped.
 * PL_E_TIMEOUT: no answer in time. PL_E_CANCELLED: client destroyed. `reply` is NULL unless
 * status is 0, and borrowed for the duration of the callback. */
typedef void (*pl_redis_cb)(int status, redisReply *reply, void *ctx);

/* Parses the URL (PL_E_CONFIG on a bad one) and starts connecting. */
PL_MUST_USE int pl_redis_create(uv_loop_t *loop, const struct pl_redis_config *cfg,
                                struct pl_redis **out);
/* Fails pending commands with PL_E_CANCELLED, closes, frees once handles are closed. */
void pl_redis_destroy(struct pl_redis *r);
bool pl_redis_connected(const struct pl_redis *r);

/* Sends one command given as argv (binary safe; copied). Returns 0 (cb will fire) or
 * PL_E_UNAVAILABLE when not connected (cb will not fire). */
PL_MUST_USE int pl_redis_command(struct pl_redis *r, int argc, const char **argv,
                                 const size_t *argvlen, pl_redis_cb cb, void *ctx);

/* Registers a Lua script (copied); the handle lives as long as the client. */
PL_MUST_USE int pl_redis_script_create(struct pl_redis *r, const char *lua,
                                       struct pl_redis_script **out);
/* EVALSHA sha nkeys keys... args...; falls back to SCRIPT LOAD + EVALSHA on NOSCRIPT. */
PL_MUST_USE int pl_redis_eval(struct pl_redis *r, struct pl_redis_script *s, int nkeys,
                              const char **keys, const size_t *keylens, int nargs,
                              const char **args, const size_t *arglens, pl_redis_cb cb, void *ctx);

struct pl_redis_stats {
    bool connected;
    int pending;     /* commands sent, not answered */
    uint64_t errors; /* connection failures and timeouts, cumulative */
};
void pl_redis_stats(const struct pl_redis *r, struct pl_redis_stats *out);

/* Pub/sub. on_message fires for each message on a subscribed channel or pattern:
 * channel and payload are borrowed for the call. on_state (may be NULL) fires with
 * connected=true after every (re)subscribe and false when the connection drops. */
struct pl_redis_sub_config {
    const char *url;
    int connect_timeout_ms;
    void (*on_message)(const char *channel, size_t channel_len, const char *payload,
                       size_t payload_len, void *ctx);
    void (*on_state)(bool connected, void *ctx);
    /* May be NULL: fires when Redis confirms the SUBSCRIBE of a channel (also after every
     * reconnect); from then on every message published on it is delivered. */
    void (*on_subscribed)(const char *channel, size_t channel_len, void *ctx);
    void *ctx;
};
PL_MUST_USE int pl_redis_sub_create(uv_loop_t *loop, const struct pl_redis_sub_config *cfg,
                                    struct pl_redis_sub **out);
/* Idempotent; remembered across reconnects. Returns 0 or PL_E_INVALID. */
int pl_redis_subscribe(struct pl_redis_sub *s, const char *channel);
int pl_redis_unsubscribe(struct pl_redis_sub *s, const char *channel);
int pl_redis_psubscribe(struct pl_redis_sub *s, const char *pattern);
void pl_redis_sub_destroy(struct pl_redis_sub *s);
bool pl_redis_sub_connected(const struct pl_redis_sub *s);

#endif
