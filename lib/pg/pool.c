/* The pool: statement registry, the bounded wait queue, dispatch to the least loaded
 * connection, and lifetime. All writing to connections happens in one place, the kick (a
 * uv_idle run once after something changed), so no callback can ever fire from inside
 * pl_pg_exec() and every batch queued during one loop iteration goes out together. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"
#include "pl/log.h"
#include "pl/mem.h"
#include "pl/metrics.h"

void pg_fifo_push(struct pg_fifo *q, struct pg_batch *b)
{
    b->next = NULL;
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    q->len++;
}

struct pg_batch *pg_fifo_pop(struct pg_fifo *q)
{
    struct pg_batch *b = q->head;
    if (!b) return NULL;
    q->head = b->next;
    if (!q->head) q->tail = NULL;
    q->len--;
    b->next = NULL;
    return b;
}

/* One allocation: the batch, its items, its result slots, the parameter pointer arrays and
 * finally the parameter bytes (pointer-sized parts first keeps them aligned). */
static struct pg_batch *batch_alloc(const struct pl_pg_stmt *stmts, const struct pg_def **defs,
                                    int n)
{
    size_t nptrs = 0, nbytes = 0;
    for (int i = 0; i < n; i++) {
        nptrs += (size_t)defs[i]->nparams;
        for (int j = 0; j < defs[i]->nparams; j++) {
            const char *v = stmts[i].values[j];
            if (!v) continue;
            nbytes += (stmts[i].lengths ? (size_t)stmts[i].lengths[j] : strlen(v)) + 1;
        }
    }
    size_t size = sizeof(struct pg_batch) + (size_t)n * sizeof(struct pg_item) +
                  (size_t)n * sizeof(PGresult *) + nptrs * sizeof(char *) + nbytes;
    struct pg_batch *b = pl_xcalloc(1, size);
    b->n = n;
    b->results = (PGresult **)(void *)&b->items[n];
    const char **ptrs = (const char **)(void *)&b->results[n];
    char *bytes = (char *)&ptrs[nptrs];
    for (int i = 0; i < n; i++) {
        b->items[i].def = defs[i];
        b->items[i].values = ptrs;
        for (int j = 0; j < defs[i]->nparams; j++) {
            const char *v = stmts[i].values[j];
            if (!v) {
                ptrs[j] = NULL;
                continue;
            }
            /* Text-format parameters must be NUL-terminated for libpq, lengths or not. */
            size_t len = stmts[i].lengths ? (size_t)stmts[i].lengths[j] : strlen(v);
            memcpy(bytes, v, len);
            bytes[len] = '\0';
            ptrs[j] = bytes;
            bytes += len + 1;
        }
        ptrs += defs[i]->nparams;
    }
    return b;
}

struct pg_batch *pg_batch_new_prepare(const struct pg_def *def)
{
    struct pg_batch *b =
        pl_xcalloc(1, sizeof(struct pg_batch) + sizeof(struct pg_item) + sizeof(PGresult *));
    b->n = 1;
    b->results = (PGresult **)(void *)&b->items[1];
    b->items[0].def = def;
    return b;
}

void pg_batch_finish(struct pg_batch *b, int status)
{
    /* Only a database error comes with results; anything else gives the caller nothing
     * half-arrived to misread. */
    if (status != 0 && status != PL_E_DB) {
        for (int i = 0; i < b->n; i++) {
            PQclear(b->results[i]);
            b->results[i] = NULL;
        }
    }
    if (b->cb) b->cb(status, b->results, b->n, b->ctx);
    for (int i = 0; i < b->n; i++)
        PQclear(b->results[i]);
    free(b);
}

static void pool_free(struct pl_pg_pool *pool)
{
    for (int i = 0; i < pool->ndefs; i++) {
        free(pool->defs[i]->name);
        free(pool->defs[i]->sql);
        free(pool->defs[i]);
    }
    free(pool->defs);
    free(pool->conns);
    free(pool->conninfo);
    free(pool);
}

void pg_pool_handle_gone(struct pl_pg_pool *pool)
{
    pool->open_handles--;
    if (pool->destroying && pool->open_handles == 0) pool_free(pool);
}

static void pool_handle_closed(uv_handle_t *h)
{
    pg_pool_handle_gone(h->data);
}

/* Every batch that leaves the wait queue for a connection or a timeout: 0 when it got one at
 * the first dispatch after pl_pg_exec(), its time queued otherwise. */
static void record_wait(struct pl_pg_pool *pool, const struct pg_batch *b, uint64_t now_ns,
                        bool timed_out)
{
    bool waited = timed_out || pool->kicks > b->kick_gen + 1;
    uint64_t ns = waited && now_ns > b->queued_ns ? now_ns - b->queued_ns : 0;
    pool->wait_count++;
    pool->wait_seconds_sum += (double)ns / 1e9;
    if (pool->cfg.wait_seconds) pl_metric_observe(pool->cfg.wait_seconds, 0, ns);
}

static void wait_timer_cb(uv_timer_t *t)
{
    struct pl_pg_pool *pool = t->data;
    uint64_t now = uv_now(pool->loop);
    uint64_t timeout = (uint64_t)pool->cfg.wait_timeout_ms;
    struct pg_batch *b;
    while ((b = pool->waitq.head) && now - b->queued_ms >= timeout) {
        pg_fifo_pop(&pool->waitq);
        record_wait(pool, b, uv_hrtime(), true);
        pg_batch_finish(b, PL_E_UNAVAILABLE);
        if (pool->destroying) return;
    }
    if (b) uv_timer_start(t, wait_timer_cb, b->queued_ms + timeout - now, 0);
}

static struct pg_conn *least_loaded(struct pl_pg_pool *pool)
{
    struct pg_conn *best = NULL;
    for (int i = 0; i < pool->cfg.size; i++) {
        struct pg_conn *c = &pool->conns[i];
        if (c->state != PG_CONN_READY || c->broken) continue;
        if (c->inflight.len >= pool->cfg.max_inflight) continue;
        /* Balanced on user batches: a connection still busy with its PREPAREs is not
         * really loaded, they are answered at once. */
        if (!best || c->user_inflight < best->user_inflight) best = c;
    }
    return best;
}

static void send_on(struct pg_conn *c, struct pg_batch *b)
{
    c->dirty = true;
    if (!pg_conn_send(c, b)) c->broken = true;
}

static void kick_cb(uv_idle_t *h)
{
    struct pl_pg_pool *pool = h->data;
    uv_idle_stop(h);
    pool->kicks++;

    struct pg_batch *b;
    while ((b = pg_fifo_pop(&pool->failq))) {
        pg_batch_finish(b, b->status);
        if (pool->destroying) return;
    }

    /* Statements first, so batches behind them in the pipeline find them prepared. Each
     * PREPARE gets its own sync so that one bad statement does not abort the others. */
    for (int i = 0; i < pool->cfg.size; i++) {
        struct pg_conn *c = &pool->conns[i];
        while (c->state == PG_CONN_READY && !c->broken && c->nprepared < pool->ndefs)
            send_on(c, pg_batch_new_prepare(pool->defs[c->nprepared++]));
    }

    uint64_t now = uv_now(pool->loop), now_ns = uv_hrtime();
    struct pg_conn *c;
    while (pool->waitq.head && (c = least_loaded(pool))) {
        b = pg_fifo_pop(&pool->waitq);
        record_wait(pool, b, now_ns, false);
        send_on(c, b);
    }

    bool lost = false;
    for (int i = 0; i < pool->cfg.size; i++) {
        c = &pool->conns[i];
        if (c->dirty && !c->broken && !pg_conn_flush(c)) c->broken = true;
        c->dirty = false;
    }
    for (int i = 0; i < pool->cfg.size; i++) {
        c = &pool->conns[i];
        if (!c->broken) continue;
        c->broken = false;
        lost = true;
        pg_conn_lost(c, PQerrorMessage(c->pg));
        if (pool->destroying) return;
    }
    /* Waiters may fit on the connections still up. */
    if (lost && pool->waitq.head) pg_pool_kick(pool);

    if (pool->waitq.head && !uv_is_active((uv_handle_t *)&pool->wait_timer)) {
        uint64_t deadline = pool->waitq.head->queued_ms + (uint64_t)pool->cfg.wait_timeout_ms;
        uv_timer_start(&pool->wait_timer, wait_timer_cb, deadline > now ? deadline - now : 0, 0);
    }
}

void pg_pool_kick(struct pl_pg_pool *pool)
{
    if (!pool->destroying) uv_idle_start(&pool->kick, kick_cb);
}

static bool config_valid(const struct pl_pg_config *cfg)
{
    if (!cfg || !cfg->conninfo) return false;
    if (cfg->size < 1 || cfg->max_inflight < 1 || cfg->max_waiters < 1) return false;
    if (cfg->wait_timeout_ms < 1 || cfg->connect_timeout_ms < 1 || cfg->query_timeout_ms < 0)
        return false;
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(cfg->conninfo, &errmsg);
    if (!opts) {
        /* Not libpq's message: it quotes the token it could not parse, which may be part of
         * the password ("invalid percent-encoded token: ..."). */
        pl_error("pg conninfo invalid");
        PQfreemem(errmsg);
        return false;
    }
    PQconninfoFree(opts);
    return true;
}

int pl_pg_pool_create(uv_loop_t *loop, const struct pl_pg_config *cfg, struct pl_pg_pool **out)
{
    *out = NULL;
    if (!loop || !config_valid(cfg)) return PL_E_INVALID;

    struct pl_pg_pool *pool = pl_xcalloc(1, sizeof *pool);
    pool->loop = loop;
    pool->cfg = *cfg;
    pool->conninfo = pl_xstrdup(cfg->conninfo);
    pool->cfg.conninfo = pool->conninfo;
    pool->conns = pl_xcalloc((size_t)cfg->size, sizeof *pool->conns);

    /* Neither init can fail for idle handles and timers on a live loop. */
    uv_idle_init(loop, &pool->kick);
    pool->kick.data = pool;
    uv_timer_init(loop, &pool->wait_timer);
    pool->wait_timer.data = pool;
    pool->open_handles = 2;
    for (int i = 0; i < cfg->size; i++)
        pg_conn_init(pool, &pool->conns[i], i);
    for (int i = 0; i < cfg->size; i++)
        pg_conn_connect(&pool->conns[i]);
    *out = pool;
    return 0;
}

static const struct pg_def *find_def(const struct pl_pg_pool *pool, const char *name)
{
    /* A linear scan: a few dozen statements, compared once per statement per batch, costs
     * nothing next to the round trip. */
    for (int i = 0; i < pool->ndefs; i++)
        if (strcmp(pool->defs[i]->name, name) == 0) return pool->defs[i];
    return NULL;
}

int pl_pg_pool_prepare(struct pl_pg_pool *pool, const char *name, const char *sql, int nparams)
{
    if (!pool || !name || !*name || !sql || nparams < 0 || nparams > 65535) return PL_E_INVALID;
    if (pool->destroying || find_def(pool, name)) return PL_E_INVALID;
    if (pool->ndefs == pool->capdefs) {
        pool->capdefs = pool->capdefs ? pool->capdefs * 2 : 16;
        pool->defs = realloc(pool->defs, (size_t)pool->capdefs * sizeof(struct pg_def *));
        if (!pool->defs) abort();
    }
    struct pg_def *d = pl_xcalloc(1, sizeof *d);
    d->name = pl_xstrdup(name);
    d->sql = pl_xstrdup(sql);
    d->nparams = nparams;
    d->index = pool->ndefs;
    pool->defs[pool->ndefs++] = d;
    /* Connections already up prepare it from the kick, ahead of any batch that uses it. */
    pg_pool_kick(pool);
    return 0;
}

int pl_pg_exec(struct pl_pg_pool *pool, const struct pl_pg_stmt *stmts, int n, pl_pg_cb cb,
               void *ctx)
{
    if (!pool || !stmts || !cb || n < 1 || n > PG_MAX_STMTS) return PL_E_INVALID;
    const struct pg_def *defs[PG_MAX_STMTS];
    for (int i = 0; i < n; i++) {
        if (!stmts[i].name || !(defs[i] = find_def(pool, stmts[i].name))) return PL_E_INVALID;
        if (stmts[i].nparams != defs[i]->nparams) return PL_E_INVALID;
        if (stmts[i].nparams > 0 && !stmts[i].values) return PL_E_INVALID;
        for (int j = 0; stmts[i].lengths && j < stmts[i].nparams; j++)
            if (stmts[i].values[j] && stmts[i].lengths[j] < 0) return PL_E_INVALID;
    }
    /* A callback run by pl_pg_pool_destroy() may try to queue more work; there is no loop
     * turn left to answer it, so refuse without a callback. */
    if (pool->destroying) return PL_E_CANCELLED;

    struct pg_batch *b = batch_alloc(stmts, defs, n);
    b->cb = cb;
    b->ctx = ctx;
    b->queued_ms = uv_now(pool->loop);
    b->queued_ns = uv_hrtime();
    b->kick_gen = pool->kicks;
    if (pool->waitq.len >= pool->cfg.max_waiters) {
        b->status = PL_E_UNAVAILABLE;
        pg_fifo_push(&pool->failq, b);
    } else {
        pg_fifo_push(&pool->waitq, b);
    }
    pg_pool_kick(pool);
    return 0;
}

int pl_pg_exec1(struct pl_pg_pool *pool, const char *name, int nparams, const char *const *values,
                pl_pg_cb cb, void *ctx)
{
    struct pl_pg_stmt s = {.name = name, .nparams = nparams, .values = values};
    return pl_pg_exec(pool, &s, 1, cb, ctx);
}

static void cancel_all(struct pg_fifo *q)
{
    struct pg_batch *b;
    while ((b = pg_fifo_pop(q)))
        pg_batch_finish(b, PL_E_CANCELLED);
}

void pl_pg_pool_destroy(struct pl_pg_pool *pool)
{
    if (!pool || pool->destroying) return;
    pool->destroying = true;
    uv_close((uv_handle_t *)&pool->kick, pool_handle_closed);
    uv_close((uv_handle_t *)&pool->wait_timer, pool_handle_closed);
    for (int i = 0; i < pool->cfg.size; i++)
        pg_conn_close(&pool->conns[i]);
    /* Callbacks run last so they see a pool that is already shut: pl_pg_exec() refuses and a
     * nested destroy returns at once. */
    cancel_all(&pool->failq);
    for (int i = 0; i < pool->cfg.size; i++) {
        cancel_all(&pool->conns[i].inflight);
        pool->conns[i].user_inflight = 0;
    }
    cancel_all(&pool->waitq);
}

void pl_pg_pool_stats(const struct pl_pg_pool *pool, struct pl_pg_stats *out)
{
    memset(out, 0, sizeof *out);
    out->size = pool->cfg.size;
    for (int i = 0; i < pool->cfg.size; i++) {
        const struct pg_conn *c = &pool->conns[i];
        if (c->state == PG_CONN_READY) out->connected++;
        if (c->user_inflight > 0) out->busy++;
        out->inflight += c->user_inflight;
    }
    out->waiting = pool->waitq.len;
    out->wait_count = pool->wait_count;
    out->wait_seconds_sum = pool->wait_seconds_sum;
    out->errors = pool->errors;
}

bool pl_pg_pool_ready(const struct pl_pg_pool *pool)
{
    for (int i = 0; i < pool->cfg.size; i++)
        if (pool->conns[i].state == PG_CONN_READY) return true;
    return false;
}
