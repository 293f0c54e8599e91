/* pg: an asynchronous Postgres connection pool for one libuv loop.
 *
 * Each pool owns `size` non-blocking libpq connections (PQconnectStartParams/PQconnectPoll
 * driven by uv_poll, with our own connect timer because libpq ignores connect_timeout there).
 * Every connection runs in pipeline mode: the statements of many concurrent requests are
 * written back to back and share round trips. Each call of pl_pg_exec() is one batch: its
 * statements are sent, then one PQpipelineSync, so the batch runs as one implicit
 * transaction and an error aborts only that batch.
 *
 * Statements are named prepared statements registered once on the pool before or after
 * start; each connection prepares them (pipelined) right after it connects. Reconnects with
 * exponential backoff (100 ms .. 5 s) after the server goes away; batches in flight on a
 * dead connection complete with PL_E_UNAVAILABLE (they may or may not have committed).
 *
 * When no connection is up, or all are at their in-flight cap, batches wait in a bounded
 * FIFO queue (max_waiters); a batch that waits longer than wait_timeout_ms, or finds the
 * queue full, completes with PL_E_UNAVAILABLE (the HTTP layer answers 503 + Retry-After).
 *
 * Threading: a pool belongs to one loop; call everything from that loop's thread. */
#ifndef PL_PG_H
#define PL_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "pl/error.h"

struct pl_pg_pool;
struct pl_metric;

struct pl_pg_config {
    const char *conninfo;   /* libpq URI or key=value string; copied */
    int size;               /* connections, >= 1 */
    int max_inflight;       /* batches in flight per connection (pipeline depth), e.g. 128 */
    int max_waiters;        /* queued batches before PL_E_UNAVAILABLE, e.g. 4096 */
    int wait_timeout_ms;    /* longest a batch may wait for a connection, e.g. 5000 */
    int connect_timeout_ms; /* per attempt, e.g. 5000 */
    int query_timeout_ms;   /* a batch unanswered this long fails the connection; 0 = off */
    /* A histogram (pl/metrics.h, observed in nanoseconds, one series) that observes every
     * batch's wait for a connection: 0 for a batch sent at the first dispatch, the time
     * queued for one that waited or timed out. Borrowed for the pool's life; may be NULL. */
    struct pl_metric *wait_seconds;
};

/* One statement of a batch. `name` is a registered statement; values are text-format
 * parameters (NULL value = SQL NULL); `lengths` may be NULL (NUL-terminated values).
 * Everything is copied by pl_pg_exec(), so it may live on the caller's stack. */
struct pl_pg_stmt {
    const char *name;
    int nparams;
    const char *const *values;
    const int *lengths;
};

/* Fires exactly once per pl_pg_exec() call that returned 0, on the pool's loop, never
 * from inside pl_pg_exec() itself.
 *   status 0: every statement succeeded; results[i] is statement i's result
 *             (PGRES_TUPLES_OK or PGRES_COMMAND_OK).
 *   PL_E_DB: a statement failed; `results` holds what arrived (failed one included, later
 *             ones NULL); pl_pg_error_sqlstate() finds the SQLSTATE. Nothing committed.
 *   PL_E_UNAVAILABLE: no connection in time, queue full, or the connection died.
 *   PL_E_CANCELLED: the pool is being destroyed.
 * `results` and each PGresult are borrowed for the duration of the callback only. */
typedef void (*pl_pg_cb)(int status, PGresult **results, int n, void *ctx);

/* Creates the pool and starts connecting. `out` receives the pool; destroy with
 * pl_pg_pool_destroy(). Returns 0 or PL_E_INVALID. */
PL_MUST_USE int pl_pg_pool_create(uv_loop_t *loop, const struct pl_pg_config *cfg,
                                  struct pl_pg_pool **out);

/* Registers a named statement (name and sql copied). Must be called before the first
 * connection finishes connecting for it to be prepared there, i.e. right after create.
 * Returns 0, PL_E_INVALID (duplicate name) . */
PL_MUST_USE int pl_pg_pool_prepare(struct pl_pg_pool *pool, const char *name, const char *sql,
                                   int nparams);

/* Queues a batch of 1..16 statements. Returns 0 (cb will fire) or PL_E_INVALID (unknown
 * statement name, n out of range; cb will not fire). */
PL_MUST_USE int pl_pg_exec(struct pl_pg_pool *pool, const struct pl_pg_stmt *stmts, int n,
                           pl_pg_cb cb, void *ctx);

/* Convenience for a single statement. */
PL_MUST_USE int pl_pg_exec1(struct pl_pg_pool *pool, const char *name, int nparams,
                            const char *const *values, pl_pg_cb cb, void *ctx);

/* Fails every queued and in-flight batch with PL_E_CANCELLED, closes every connection, and
 * frees the pool once its handles are closed (run the loop until then). */
void pl_pg_pool_destroy(struct pl_pg_pool *pool);

struct pl_pg_stats {
    int size;                /* configured connections */
    int connected;           /* connections up and prepared */
    int busy;                /* connections with at least one batch in flight */
    int inflight;            /* batches sent, not yet answered */
    int waiting;             /* batches queued for a connection */
    uint64_t wait_count;     /* batches that got a connection or timed out, cumulative */
    double wait_seconds_sum; /* their total time spent queued, cumulative */
    uint64_t errors;         /* connection failures, cumulative */
};
void pl_pg_pool_stats(const struct pl_pg_pool *pool, struct pl_pg_stats *out);
bool pl_pg_pool_ready(const struct pl_pg_pool *pool); /* at least one connection up */

/* The SQLSTATE of a failed result ("23505"...), or "" when none. */
const char *pl_pg_error_sqlstate(const PGresult *res);

/* Applies migrations/NNN_name.sql files from `dir` in order, each in its own transaction,
 * under a session advisory lock, recording them in schema_migrations(version, name,
 * applied_at). Blocking (libpq sync API): for `pulsed migrate` and start-up only, never on
 * a loop. Files already applied are skipped. `applied` (may be NULL) receives how many
 * were applied now. On error writes a one-line reason into err. */
PL_MUST_USE int pl_pg_migrate(const char *conninfo, const char *dir, int *applied, char *err,
                              size_t errlen);

/* How many migration files in `dir` are not applied yet (>= 0), or a negative code: PL_E_CONFIG
 * (the folder), PL_E_UNAVAILABLE (no connection), PL_E_DB (schema_migrations unreadable).
 * Blocking. */
int pl_pg_migrations_pending(const char *conninfo, const char *dir, char *err, size_t errlen);

/* The service's role gets what it needs and nothing more, from the role of `conninfo` (the
 * owner of the schema, which runs the migrations): SELECT, INSERT, UPDATE and DELETE on every
 * table of schema public (schema_migrations: SELECT only), USAGE and SELECT on its sequences,
 * and the same by default on what the owner creates later (ALTER DEFAULT PRIVILEGES). Refused
 * (PL_E_DB, reason in err) when `role` does not exist, is a superuser, owns anything in the
 * database, or may create objects in it or in schema public. Idempotent, under the migration
 * lock. Returns 1 when rights were granted, 0 when `role` is empty or the connected role
 * itself (nothing to give), or a negative code. Blocking. */
PL_MUST_USE int pl_pg_grant_service_role(const char *conninfo, const char *role, char *err,
                                         size_t errlen);

/* The user a connection with `conninfo` logs in as: its `user`, else PGUSER, else the
 * operating system user (libpq's defaults). Returns 0, or PL_E_CONFIG when libpq cannot parse
 * the conninfo (the reason is not given: libpq's may quote the password). */
PL_MUST_USE int pl_pg_conninfo_user(const char *conninfo, char *user, size_t userlen);

/* A blocking connection (libpq's sync API) with the defaults of every lib/pg connection
 * (fallback_application_name = app_name, gssencmode = disable unless the conninfo or
 * PGGSSENCMODE says otherwise) and a 5 s connect_timeout unless the conninfo sets one. For
 * start-up and the thread pool, never on a loop. NULL with a one-line reason in err; the
 * caller PQfinish()es it. */
PGconn *pl_pg_connect_blocking(const char *conninfo, const char *app_name, char *err,
                               size_t errlen);

#endif
