/* pg_internal: what pool.c (queueing, dispatch, lifetime) and conn.c (one libpq connection
 * driven by uv_poll) share. Never included outside lib/pg. */
#ifndef PL_PG_INTERNAL_H
#define PL_PG_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "pl/pg.h"

#define PG_MAX_STMTS 16

/* A registered statement. Never freed or moved before the pool, so batches point at it. */
struct pg_def {
    char *name;
    char *sql;
    int nparams;
    int index; /* in pool->defs */
};

struct pg_item {
    const struct pg_def *def;
    const char *const *values; /* def->nparams entries inside the batch's allocation */
};

/* One pl_pg_exec() call, or (cb == NULL) an internal PREPARE of items[0].def. The parameter
 * values, the results array and the items live in this same allocation. */
struct pg_batch {
    struct pg_batch *next;
    pl_pg_cb cb;
    void *ctx;
    uint64_t queued_ms; /* uv_now() when pl_pg_exec() was called */
    uint64_t queued_ns; /* uv_hrtime() then, for the wait metric */
    uint64_t sent_ms;   /* uv_now() when written to a connection */
    uint64_t kick_gen;  /* pool->kicks at pl_pg_exec(): tells a batch that really waited */
    int n;              /* statements */
    int got;            /* statements whose results are complete */
    bool have_res;      /* results[got] is set and its terminating NULL has not come yet */
    int status;         /* for batches failed before dispatch (queue full) */
    PGresult **results; /* n slots */
    struct pg_item items[];
};

struct pg_fifo {
    struct pg_batch *head, *tail;
    int len;
};

enum pg_conn_state {
    PG_CONN_DOWN,       /* waiting for the reconnect timer */
    PG_CONN_CONNECTING, /* PQconnectPoll in progress, connect timer running */
    PG_CONN_READY,      /* pipeline mode, accepting batches */
    PG_CONN_CLOSED,     /* pool destroyed */
};

struct pg_conn {
    struct pl_pg_pool *pool;
    int id;
    enum pg_conn_state state;
    PGconn *pg;
    /* Heap-allocated so a new one can be opened while the old one is still closing: the
     * socket may change during connect. */
    uv_poll_t *poll;
    int poll_fd;
    int poll_events;
    uv_timer_t timer; /* connect timeout, reconnect backoff, or query timeout by state */
    struct pg_fifo inflight;
    int user_inflight;         /* inflight minus internal PREPAREs, for stats */
    int nprepared;             /* pool->defs[0..nprepared) have been sent to PREPARE here */
    int backoff_ms;            /* last reconnect delay; 0 after a successful connect */
    bool broken;               /* a send failed during this kick: declare it lost afterwards */
    bool dirty;                /* written to during this kick: flush afterwards */
    unsigned char *unprepared; /* [def index]: its PREPARE failed here, redo before use */
    int unprepared_cap;
};

struct pl_pg_pool {
    uv_loop_t *loop;
    struct pl_pg_config cfg; /* cfg.conninfo points at `conninfo` */
    char *conninfo;
    struct pg_def **defs;
    int ndefs, capdefs;
    struct pg_conn *conns;
    struct pg_fifo waitq; /* waiting for a connection (includes those not yet tried) */
    struct pg_fifo failq; /* refused at pl_pg_exec() time, completed from the kick */
    uv_idle_t kick;       /* dispatch runs here, never inside pl_pg_exec() */
    uv_timer_t wait_timer;
    uint64_t kicks; /* kick runs so far */
    int open_handles;
    bool destroying;
    uint64_t wait_count;
    double wait_seconds_sum;
    uint64_t errors;
};

/* pool.c */
void pg_fifo_push(struct pg_fifo *q, struct pg_batch *b);
struct pg_batch *pg_fifo_pop(struct pg_fifo *q);
/* Runs the batch's callback (if any), clears its results and frees it. */
void pg_batch_finish(struct pg_batch *b, int status);
struct pg_batch *pg_batch_new_prepare(const struct pg_def *def);
void pg_pool_kick(struct pl_pg_pool *pool);
/* A handle the pool counted has closed; frees a destroyed pool after its last one. */
void pg_pool_handle_gone(struct pl_pg_pool *pool);

/* conn.c */
/* The keyword/value arrays (NULL-terminated, PG_CONNECT_PARAMS slots) every connection of
 * lib/pg passes to PQconnect*Params with expand_dbname = 1. Keywords apply in order and the
 * expanded conninfo comes last, so whatever it sets wins over these defaults:
 * fallback_application_name = app_name, connect_timeout (seconds, when not NULL: only the
 * blocking API honours it), and gssencmode = disable unless PGGSSENCMODE is set. libpq's
 * default (prefer) first probes for a Kerberos credential cache on every TCP connect, which
 * loads and initialises libkrb5 from whichever thread connects, for servers that hardly ever
 * offer GSSAPI encryption; a conninfo that asks for gssencmode keeps its own. */
#define PG_CONNECT_PARAMS 5
void pg_connect_params(const char *conninfo, const char *app_name, const char *connect_timeout,
                       const char *keys[PG_CONNECT_PARAMS], const char *values[PG_CONNECT_PARAMS]);
void pg_conn_init(struct pl_pg_pool *pool, struct pg_conn *c, int id);
void pg_conn_connect(struct pg_conn *c);
/* Queues b in flight and writes it; false when the connection broke (call pg_conn_lost). */
bool pg_conn_send(struct pg_conn *c, struct pg_batch *b);
/* Pushes buffered output; false when the connection broke. */
bool pg_conn_flush(struct pg_conn *c);
/* Closes the connection, fails its in-flight batches with PL_E_UNAVAILABLE and schedules a
 * reconnect. Runs callbacks: the caller must not touch the pool if it is destroying after. */
void pg_conn_lost(struct pg_conn *c, const char *why);
/* For pool destruction: closes handles and the connection; in-flight batches stay queued. */
void pg_conn_close(struct pg_conn *c);

#endif
