#include "store.h"

#include <pthread.h>
#include <string.h>

#include "app.h"
#include "problems.h"

/* Every statement prepared so far, by name, for tests that EXPLAIN the exact SQL. Workers
 * prepare the same tables concurrently at start-up, hence the lock. */
#define MAX_DEFS 256
static const struct stmt_def *known[MAX_DEFS];
static size_t nknown;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void remember(const struct stmt_def *d)
{
    pthread_mutex_lock(&lock);
    bool seen = false;
    for (size_t i = 0; i < nknown && !seen; i++)
        seen = strcmp(known[i]->name, d->name) == 0;
    if (!seen && nknown < MAX_DEFS) known[nknown++] = d;
    pthread_mutex_unlock(&lock);
}

int store_prepare(struct pl_pg_pool *pool, const struct stmt_def *defs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = pl_pg_pool_prepare(pool, defs[i].name, defs[i].sql, defs[i].nparams);
        if (rc) return rc;
        remember(&defs[i]);
    }
    return 0;
}

void store_query(struct pl_http_request *req, const char *name, int n, const char *const *values,
                 pl_pg_cb cb, void *ctx)
{
    if (pl_pg_exec1(req_worker(req)->pg, name, n, values, cb, ctx) != 0)
        reply_failure(req, PL_E_UNAVAILABLE, name);
}

void store_batch(struct pl_http_request *req, const struct pl_pg_stmt *stmts, int n, pl_pg_cb cb,
                 void *ctx)
{
    if (pl_pg_exec(req_worker(req)->pg, stmts, n, cb, ctx) != 0)
        reply_failure(req, PL_E_UNAVAILABLE, stmts[0].name);
}

json_t *store_json_text(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

const struct stmt_def *store_lookup(const char *name)
{
    const struct stmt_def *d = NULL;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nknown && !d; i++)
        if (strcmp(known[i]->name, name) == 0) d = known[i];
    pthread_mutex_unlock(&lock);
    return d;
}
