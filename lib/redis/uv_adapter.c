/* The only file that includes hiredis' libuv adapter: it defines static helpers with generic
 * names (on_close, ...) that clash with ours.
 *
 * The adapter has one flaw we must fix: when libuv reports a poll error (status < 0, e.g.
 * POLLERR on a refused connect or a reset socket) it returns without telling hiredis, and
 * libuv has already stopped the handle. The connection then hangs until some timer notices.
 * We wrap the adapter's hooks so that every uv_poll_start uses our callback, which hands
 * errors to redisAsyncHandleRead: for a pending connect that checks SO_ERROR, for an open
 * socket read() returns the error or EOF, and either way hiredis disconnects and calls our
 * connect or disconnect callback. */
#include <hiredis/adapters/libuv.h>

#include "pl/error.h"
#include "redis/redis_internal.h"

static void poll_cb(uv_poll_t *handle, int status, int events)
{
    redisLibuvEvents *p = handle->data;
    if (status == 0) {
        redisLibuvPoll(handle, status, events);
        return;
    }
    if (p->context == NULL) return;
    redisAsyncHandleRead(p->context);
    /* Still alive (the error was transient, or data came first): libuv stopped the handle on
     * the error, so start it again with the events hiredis asked for. p itself is freed only
     * in the adapter's close callback, so reading it here is safe even if the context died. */
    if (p->context != NULL && p->events) uv_poll_start(&p->handle, p->events, poll_cb);
}

/* Each hook lets the adapter keep its event mask, then swaps in our poll callback. */
static void reroute(redisLibuvEvents *p)
{
    if (p->events) uv_poll_start(&p->handle, p->events, poll_cb);
}

static void add_read(void *privdata)
{
    redisLibuvAddRead(privdata);
    reroute(privdata);
}

static void del_read(void *privdata)
{
    redisLibuvDelRead(privdata);
    reroute(privdata);
}

static void add_write(void *privdata)
{
    redisLibuvAddWrite(privdata);
    reroute(privdata);
}

static void del_write(void *privdata)
{
    redisLibuvDelWrite(privdata);
    reroute(privdata);
}

int pl_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (redisLibuvAttach(ac, loop) != REDIS_OK) {
        /* The adapter sets its hooks before it can fail, leaving ev.data NULL: hiredis would
         * call cleanup(NULL) when the context is freed. */
        memset(&ac->ev, 0, sizeof ac->ev);
        return PL_E_UNAVAILABLE;
    }
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    return 0;
}
