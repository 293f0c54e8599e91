/* One pooled connection: non-blocking connect driven by uv_poll, then pipeline mode where
 * batches go out back to back and their results come back in the same order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"
#include "pl/log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static void conn_poll_cb(uv_poll_t *h, int status, int events);
static void conn_timer_cb(uv_timer_t *t);

/* Copies the first line of a libpq message: they end in '\n' and may carry DETAIL lines. */
static void first_line(char *out, size_t cap, const char *msg)
{
    if (!msg || !*msg) msg = "unknown error";
    size_t n = strcspn(msg, "\n");
    if (n >= cap) n = cap - 1;
    memcpy(out, msg, n);
    out[n] = '\0';
}

static void notice_cb(void *arg, const PGresult *res)
{
    struct pg_conn *c = arg;
    char line[256];
    first_line(line, sizeof line, PQresultErrorMessage(res));
    pl_debug("pg notice", PL_INT("conn", c->id), PL_STR("detail", line));
}

void pg_conn_init(struct pl_pg_pool *pool, struct pg_conn *c, int id)
{
    c->pool = pool;
    c->id = id;
    c->state = PG_CONN_DOWN;
    c->poll_fd = -1;
    uv_timer_init(pool->loop, &c->timer);
    c->timer.data = c;
    pool->open_handles++;
}

static void poll_closed(uv_handle_t *h)
{
    struct pg_conn *c = h->data;
    free(h);
    pg_pool_handle_gone(c->pool);
}

static void timer_closed(uv_handle_t *h)
{
    struct pg_conn *c = h->data;
    pg_pool_handle_gone(c->pool);
}

static void close_poll(struct pg_conn *c)
{
    if (!c->poll) return;
    /* uv_close takes the fd out of epoll right away, which is why this must come before
     * PQfinish closes the socket (and the number may be reused at once). */
    uv_close((uv_handle_t *)c->poll, poll_closed);
    c->poll = NULL;
    c->poll_fd = -1;
    c->poll_events = 0;
}

static int open_poll(struct pg_conn *c, int fd)
{
    uv_poll_t *p = malloc(sizeof *p);
    if (!p) abort();
    int rc = uv_poll_init_socket(c->pool->loop, p, fd);
    if (rc) {
        free(p);
        return rc;
    }
    p->data = c;
    c->pool->open_handles++;
    c->poll = p;
    c->poll_fd = fd;
    c->poll_events = 0;
    return 0;
}

static void watch(struct pg_conn *c, int events)
{
    if (events == c->poll_events) return;
    uv_poll_start(c->poll, events, conn_poll_cb);
    c->poll_events = events;
}

/* Closes handle and socket; the caller decides what happens to the batches. */
static void teardown(struct pg_conn *c)
{
    uv_timer_stop(&c->timer);
    close_poll(c);
    if (c->pg) PQfinish(c->pg);
    c->pg = NULL;
}

void pg_conn_lost(struct pg_conn *c, const char *why)
{
    struct pl_pg_pool *pool = c->pool;
    char line[256];
    /* `why` usually points into the PGconn: copy it before PQfinish frees it. */
    first_line(line, sizeof line, why);
    pool->errors++;
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS) c->backoff_ms = BACKOFF_MAX_MS;
    pl_warn(c->state == PG_CONN_READY ? "pg connection lost" : "pg connect failed",
            PL_INT("conn", c->id), PL_STR("error", line), PL_INT("retry_ms", c->backoff_ms),
            PL_INT("inflight", c->user_inflight));

    teardown(c);
    c->state = PG_CONN_DOWN;
    uv_timer_start(&c->timer, conn_timer_cb, (uint64_t)c->backoff_ms, 0);

    /* They may or may not have run: the header tells callers so. */
    struct pg_batch *b;
    while ((b = pg_fifo_pop(&c->inflight))) {
        if (b->cb) c->user_inflight--;
        pg_batch_finish(b, PL_E_UNAVAILABLE);
        if (pool->destroying) return;
    }
}

void pg_conn_close(struct pg_conn *c)
{
    teardown(c);
    free(c->unprepared);
    c->unprepared = NULL;
    c->unprepared_cap = 0;
    c->state = PG_CONN_CLOSED;
    uv_close((uv_handle_t *)&c->timer, timer_closed);
}

static void connect_wait(struct pg_conn *c, PostgresPollingStatusType want)
{
    int fd = PQsocket(c->pg);
    if (fd < 0) {
        pg_conn_lost(c, "no socket");
        return;
    }
    if (fd != c->poll_fd) {
        close_poll(c);
        int rc = open_poll(c, fd);
        if (rc) {
            pg_conn_lost(c, uv_strerror(rc));
            return;
        }
    }
    /* Always restart, even for the same events on the same fd number: libpq closes the
     * socket and opens a new one (often with the same number) when it moves on to the next
     * address or retries without SSL, and uv_poll_start re-registers from scratch. */
    int events = want == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE;
    uv_poll_start(c->poll, events, conn_poll_cb);
    c->poll_events = events;
}

static void connected(struct pg_conn *c)
{
    uv_timer_stop(&c->timer);
    if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
        pg_conn_lost(c, PQerrorMessage(c->pg));
        return;
    }
    if (c->backoff_ms) pl_info("pg reconnected", PL_INT("conn", c->id));
    c->backoff_ms = 0;
    c->state = PG_CONN_READY;
    c->nprepared = 0;
    if (c->unprepared) memset(c->unprepared, 0, (size_t)c->unprepared_cap);
    watch(c, UV_READABLE);
    /* The kick prepares every statement here before giving it any batch. */
    pg_pool_kick(c->pool);
}

static void connect_step(struct pg_conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        connect_wait(c, PGRES_POLLING_READING);
        break;
    case PGRES_POLLING_WRITING:
        connect_wait(c, PGRES_POLLING_WRITING);
        break;
    case PGRES_POLLING_OK:
        connected(c);
        break;
    default:
        pg_conn_lost(c, PQerrorMessage(c->pg));
        break;
    }
}

void pg_connect_params(const char *conninfo, const char *app_name, const char *connect_timeout,
                       const char *keys[PG_CONNECT_PARAMS], const char *values[PG_CONNECT_PARAMS])
{
    int n = 0;
    keys[n] = "fallback_application_name";
    values[n++] = app_name;
    if (connect_timeout) {
        keys[n] = "connect_timeout";
        values[n++] = connect_timeout;
    }
    if (!getenv("PGGSSENCMODE")) {
        keys[n] = "gssencmode";
        values[n++] = "disable";
    }
    /* expand_dbname: the conninfo (URI or key=value) is expanded in place of dbname. */
    keys[n] = "dbname";
    values[n++] = conninfo;
    keys[n] = values[n] = NULL;
}

void pg_conn_connect(struct pg_conn *c)
{
    struct pl_pg_pool *pool = c->pool;
    const char *keys[PG_CONNECT_PARAMS], *values[PG_CONNECT_PARAMS];
    pg_connect_params(pool->conninfo, "pulsed", NULL, keys, values);

    /* Host names are resolved synchronously inside libpq; deployments give an address or
     * a local name that resolves from /etc/hosts. */
    c->pg = PQconnectStartParams(keys, values, 1);
    if (!c->pg) abort();
    c->state = PG_CONN_CONNECTING;
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        pg_conn_lost(c, PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeReceiver(c->pg, notice_cb, c);
    /* libpq ignores connect_timeout in this API: our own timer bounds the attempt. */
    uv_timer_start(&c->timer, conn_timer_cb, (uint64_t)pool->cfg.connect_timeout_ms, 0);
    /* libpq's documented first step: wait until the socket is writable. */
    connect_wait(c, PGRES_POLLING_WRITING);
}

static void arm_query_timer(struct pg_conn *c, uint64_t delay_ms)
{
    uv_timer_start(&c->timer, conn_timer_cb, delay_ms, 0);
}

static void conn_timer_cb(uv_timer_t *t)
{
    struct pg_conn *c = t->data;
    switch (c->state) {
    case PG_CONN_DOWN:
        pg_conn_connect(c);
        break;
    case PG_CONN_CONNECTING:
        pg_conn_lost(c, "connect timeout");
        break;
    case PG_CONN_READY: {
        /* Armed once when the pipeline goes from empty to busy and re-armed for the head
         * from here, so steady traffic costs no timer updates per batch. */
        struct pg_batch *head = c->inflight.head;
        if (!head) break;
        uint64_t timeout = (uint64_t)c->pool->cfg.query_timeout_ms;
        uint64_t age = uv_now(c->pool->loop) - head->sent_ms;
        if (age >= timeout)
            pg_conn_lost(c, "query timeout");
        else
            arm_query_timer(c, timeout - age);
        break;
    }
    case PG_CONN_CLOSED:
        break;
    }
}

bool pg_conn_send(struct pg_conn *c, struct pg_batch *b)
{

    if (b->cb) {
        /* Statements whose PREPARE failed here are prepared again first (see report_prepare). */
        for (int i = 0; i < b->n; i++) {
            int idx = b->items[i].def->index;
            if (idx < c->unprepared_cap && c->unprepared[idx]) {
                c->unprepared[idx] = 0;
                if (!pg_conn_send(c, pg_batch_new_prepare(b->items[i].def))) return false;
            }
        }
    }
    b->sent_ms = uv_now(c->pool->loop);
    if (c->pool->cfg.query_timeout_ms > 0 && !c->inflight.head)
        arm_query_timer(c, (uint64_t)c->pool->cfg.query_timeout_ms);
    pg_fifo_push(&c->inflight, b);
    int ok;
    if (!b->cb) {
        const struct pg_def *d = b->items[0].def;
        ok = PQsendPrepare(c->pg, d->name, d->sql, 0, NULL);
    } else {
        c->user_inflight++;
        ok = 1;
        for (int i = 0; ok && i < b->n; i++) {
            const struct pg_item *it = &b->items[i];
            ok = PQsendQueryPrepared(c->pg, it->def->name, it->def->nparams, it->values, NULL, NULL,
                                     0);
        }
    }
    /* Every batch gets its own sync: an error aborts the pipeline only up to it. In libpq 15
     * the sync also flushes, so batches leave one write each; PQflush below only matters when
     * the socket buffer is full. */
    return ok && PQpipelineSync(c->pg);
}

bool pg_conn_flush(struct pg_conn *c)
{
    int r = PQflush(c->pg);
    if (r < 0) return false;
    watch(c, r ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    return true;
}

static void report_prepare(struct pg_conn *c, const struct pg_batch *b)
{
    const PGresult *res = b->results[0];
    if (res && PQresultStatus(res) == PGRES_COMMAND_OK) return;
    /* Usually the schema was not migrated yet (a replica that started before the migration
     * job finished): prepare it again before the next batch that uses it on this connection,
     * which then either works or fails alone with 26000. */
    const struct pg_def *d = b->items[0].def;
    if (d->index >= c->unprepared_cap) {
        int cap = d->index + 64;
        c->unprepared = realloc(c->unprepared, (size_t)cap);
        if (!c->unprepared) abort();
        memset(c->unprepared + c->unprepared_cap, 0, (size_t)(cap - c->unprepared_cap));
        c->unprepared_cap = cap;
    }
    c->unprepared[d->index] = 1;
    char line[256];
    first_line(line, sizeof line, res ? PQresultErrorMessage(res) : NULL);
    pl_warn("pg prepare failed", PL_INT("conn", c->id), PL_STR("stmt", b->items[0].def->name),
            PL_STR("error", line));
}

/* Completes the head batch. False when a callback destroyed the pool. */
static bool complete(struct pg_conn *c, struct pg_batch *b)
{
    if (!b->cb) {
        report_prepare(c, b);
        pg_batch_finish(b, 0);
        return true;
    }
    c->user_inflight--;
    int status = 0;
    for (int i = 0; i < b->n; i++) {
        if (status) {
            /* PGRES_PIPELINE_ABORTED placeholders: the header promises NULL after the
             * failed statement. */
            PQclear(b->results[i]);
            b->results[i] = NULL;
            continue;
        }
        ExecStatusType st = b->results[i] ? PQresultStatus(b->results[i]) : PGRES_FATAL_ERROR;
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) status = PL_E_DB;
    }
    pg_batch_finish(b, status);
    return !c->pool->destroying;
}

/* Reads every complete result. False when the connection is gone (lost, or the pool was
 * destroyed by a callback): the caller must not touch it then. */
static bool drain(struct pg_conn *c)
{
    struct pl_pg_pool *pool = c->pool;
    bool completed = false;
    /* In pipeline mode each statement's result is followed by a NULL, and each sync by a
     * PGRES_PIPELINE_SYNC result; a NULL with nothing pending means we have read it all. */
    while (!PQisBusy(c->pg)) {
        PGresult *res = PQgetResult(c->pg);
        struct pg_batch *b = c->inflight.head;
        if (!res) {
            if (!b || !b->have_res) break;
            b->have_res = false;
            b->got++;
            continue;
        }
        if (!b) {
            PQclear(res);
            pg_conn_lost(c, "result with no batch in flight");
            return false;
        }
        if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            if (b->have_res) b->got++;
            if (b->got != b->n) {
                pg_conn_lost(c, "pipeline out of step");
                return false;
            }
            pg_fifo_pop(&c->inflight);
            completed = true;
            if (!complete(c, b)) return false;
            continue;
        }
        if (b->have_res || b->got >= b->n) {
            PQclear(res);
            pg_conn_lost(c, "pipeline out of step");
            return false;
        }
        b->results[b->got] = res;
        b->have_res = true;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        pg_conn_lost(c, PQerrorMessage(c->pg));
        return false;
    }
    if (completed && pool->waitq.head) pg_pool_kick(pool);
    return true;
}

static void conn_poll_cb(uv_poll_t *h, int status, int events)
{
    struct pg_conn *c = h->data;
    if (status < 0) {
        /* libuv reports POLLERR as UV_EBADF and stops the handle. libpq reads the real
         * error (and, while connecting, moves on to the next address), so let it. */
        c->poll_events = 0;
        events = UV_READABLE | UV_WRITABLE;
    }
    if (c->state == PG_CONN_CONNECTING) {
        connect_step(c);
        return;
    }
    if (c->state != PG_CONN_READY) return;
    if (events & UV_READABLE) {
        if (!PQconsumeInput(c->pg)) {
            pg_conn_lost(c, PQerrorMessage(c->pg));
            return;
        }
        if (!drain(c)) return;
    }
    /* Flushing after reading too is what libpq asks for: the server may have been blocked
     * writing to us while we were blocked writing to it. This also restarts the handle. */
    if (!pg_conn_flush(c)) pg_conn_lost(c, PQerrorMessage(c->pg));
}
