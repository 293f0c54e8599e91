/* The command client: commands ride the connection of conn.c, pipelined by hiredis.
 *
 * Every sent command sits in a FIFO until its callback fires. Replies on one connection come
 * in order, so only the oldest command can be the first to be late: a single repeating timer
 * looks at the head of the list instead of one timer per command. A late command fails with
 * PL_E_TIMEOUT and takes the connection down with it, since its reply would otherwise still
 * arrive and shift every later reply onto the wrong command. */
#include <assert.h>
#include <string.h>
#include <strings.h>

#include "pl/error.h"
#include "redis/redis_internal.h"

#define DEFAULT_TIMEOUT_MS 2000

static void on_cmd_timer(uv_timer_t *t);

static void track(struct pl_redis *r, struct rd_cmd *cmd)
{
    cmd->deadline = uv_now(r->conn.loop) + (uint64_t)r->command_timeout_ms;
    cmd->prev = r->tail;
    cmd->next = NULL;
    if (r->tail)
        r->tail->next = cmd;
    else
        r->head = cmd;
    r->tail = cmd;
    r->pending++;
    if (!uv_is_active((uv_handle_t *)&r->cmd_timer)) {
        /* A tenth of the timeout keeps the overshoot small without waking up often. */
        uint64_t tick = (uint64_t)r->command_timeout_ms / 10;
        tick = tick < 10 ? 10 : tick > 100 ? 100 : tick;
        uv_timer_start(&r->cmd_timer, on_cmd_timer, tick, tick);
    }
}

static void untrack(struct pl_redis *r, struct rd_cmd *cmd)
{
    if (cmd->prev)
        cmd->prev->next = cmd->next;
    else
        r->head = cmd->next;
    if (cmd->next)
        cmd->next->prev = cmd->prev;
    else
        r->tail = cmd->prev;
    cmd->prev = cmd->next = NULL;
    r->pending--;
}

/* Fires the caller's callback; the struct stays until hiredis lets go of it. */
static void complete(struct pl_redis *r, struct rd_cmd *cmd, int status, redisReply *reply)
{
    untrack(r, cmd);
    cmd->done = true;
    if (cmd->formatted) {
        redisFreeCommand(cmd->formatted);
        cmd->formatted = NULL;
    }
    if (cmd->cb) cmd->cb(status, reply, cmd->ctx);
}

void pl_redis_on_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct rd_cmd *cmd = privdata;
    struct pl_redis *r = cmd->r;
    redisReply *reply = reply_;
    rconn_enter(&r->conn);
    if (!cmd->done) {
        if (!reply) {
            /* The context is being freed: refuse new commands at once, even from this
             * callback, rather than queue them on a dying context. */
            r->conn.ready = false;
            complete(r, cmd, cmd->timed_out ? PL_E_TIMEOUT : PL_E_UNAVAILABLE, NULL);
        } else if (cmd->script && !cmd->retried && reply->type == REDIS_REPLY_ERROR &&
                   strncmp(reply->str, "NOSCRIPT", 8) == 0 &&
                   pl_redis_script_retry(r, ac, cmd) == 0) {
            /* hiredis holds cmd again for the retry, which gets a fresh deadline. */
            untrack(r, cmd);
            track(r, cmd);
            rconn_leave(&r->conn);
            return;
        } else {
            complete(r, cmd, 0, reply);
        }
    }
    if (cmd->formatted) redisFreeCommand(cmd->formatted);
    free(cmd);
    rconn_leave(&r->conn);
}

static void on_cmd_timer(uv_timer_t *t)
{
    struct pl_redis *r = t->data;
    if (!r->head) {
        uv_timer_stop(t); /* idle: stop waking the loop until the next command */
        return;
    }
    uint64_t now = uv_now(r->conn.loop);
    if (r->head->deadline > now) return;
    for (struct rd_cmd *cmd = r->head; cmd && cmd->deadline <= now; cmd = cmd->next) {
        cmd->timed_out = true;
        r->timeouts++;
    }
    /* Freeing the context fails every pending command through pl_redis_on_reply: the late
     * ones with PL_E_TIMEOUT, the rest with PL_E_UNAVAILABLE. */
    rconn_drop(&r->conn, "command timeout");
    /* If a drop was already pending, the context still lives: answer the late ones now. */
    while (r->head && r->head->timed_out)
        complete(r, r->head, PL_E_TIMEOUT, NULL);
}

struct rd_cmd *pl_redis_cmd_new(struct pl_redis *r, pl_redis_cb cb, void *ctx)
{
    struct rd_cmd *cmd = rd_xcalloc(1, sizeof *cmd);
    cmd->r = r;
    cmd->cb = cb;
    cmd->ctx = ctx;
    return cmd;
}

int pl_redis_submit(struct pl_redis *r, struct rd_cmd *cmd)
{
    if (r->destroying || !r->conn.ready ||
        redisAsyncFormattedCommand(r->conn.ac, pl_redis_on_reply, cmd, cmd->formatted,
                                   cmd->formatted_len) != REDIS_OK) {
        redisFreeCommand(cmd->formatted);
        free(cmd);
        return PL_E_UNAVAILABLE;
    }
    track(r, cmd);
    return 0;
}

/* Commands that switch the connection into a push mode hiredis 0.14 cannot mix with
 * request/response (it asserts on the first unexpected push). Pub/sub has its own API. */
static bool push_mode_command(const char *name, size_t len)
{
    static const char *const names[] = {"SUBSCRIBE",    "PSUBSCRIBE",   "SSUBSCRIBE", "UNSUBSCRIBE",
                                        "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (len == strlen(names[i]) && strncasecmp(name, names[i], len) == 0) return true;
    return false;
}

int pl_redis_command(struct pl_redis *r, int argc, const char **argv, const size_t *argvlen,
                     pl_redis_cb cb, void *ctx)
{
    assert(argc > 0 && argv && argv[0]);
    if (push_mode_command(argv[0], argvlen ? argvlen[0] : strlen(argv[0]))) return PL_E_INVALID;
    if (r->destroying || !r->conn.ready) return PL_E_UNAVAILABLE;
    struct rd_cmd *cmd = pl_redis_cmd_new(r, cb, ctx);
    if (redisAsyncCommandArgv(r->conn.ac, pl_redis_on_reply, cmd, argc, argv, argvlen) !=
        REDIS_OK) {
        free(cmd);
        return PL_E_UNAVAILABLE;
    }
    track(r, cmd);
    return 0;
}

static void release(struct pl_redis *r)
{
    if (--r->handles_open > 0) return;
    pl_redis_scripts_free(r);
    free(r);
}

static void on_cmd_timer_closed(uv_handle_t *h)
{
    release(h->data);
}

static void on_conn_closed(struct rconn *c)
{
    release(rd_container_of(c, struct pl_redis, conn));
}

static const struct rconn_ops client_ops = {.on_closed = on_conn_closed};

int pl_redis_create(uv_loop_t *loop, const struct pl_redis_config *cfg, struct pl_redis **out)
{
    if (!out) return PL_E_INVALID;
    *out = NULL;
    if (!loop || !cfg) return PL_E_INVALID;
    struct pl_redis_url url;
    int rc = pl_redis_url_parse(cfg->url, &url);
    if (rc < 0) return rc;

    struct pl_redis *r = rd_xcalloc(1, sizeof *r);
    r->command_timeout_ms =
        cfg->command_timeout_ms > 0 ? cfg->command_timeout_ms : DEFAULT_TIMEOUT_MS;
    uv_timer_init(loop, &r->cmd_timer);
    r->cmd_timer.data = r;
    r->handles_open = 2; /* cmd_timer and the connection's timer */
    int connect_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : DEFAULT_TIMEOUT_MS;
    rconn_init(&r->conn, loop, &client_ops, "redis", &url, connect_ms, true);
    *out = r;
    return 0;
}

void pl_redis_destroy(struct pl_redis *r)
{
    if (!r || r->destroying) return; /* also when called again from a cancelled callback */
    r->destroying = true;
    while (r->head)
        complete(r, r->head, PL_E_CANCELLED, NULL);
    uv_close((uv_handle_t *)&r->cmd_timer, on_cmd_timer_closed);
    /* Frees the context: hiredis hands back every command, all already marked done. */
    rconn_close(&r->conn);
}

bool pl_redis_connected(const struct pl_redis *r)
{
    return r->conn.ready;
}

void pl_redis_stats(const struct pl_redis *r, struct pl_redis_stats *out)
{
    out->connected = r->conn.ready;
    out->pending = r->pending;
    out->errors = r->conn.errors + r->timeouts;
}
