/* The idempotency records of creates (see records_store.h): kept 24 h, scoped by the
 * caller's id, the method and the path. */
#include "records_store.h"

static const struct stmt_def statements[] = {
    {"records_idem_get",
     "SELECT status, location, body, request_hash = decode($4, 'hex') FROM idempotency_keys "
     "WHERE user_id = $1 AND method = 'POST' AND path = $2 AND key = $3 "
     "AND created_at > now() - interval '24 hours'",
     4},
    {"records_idem_expire",
     "DELETE FROM idempotency_keys WHERE user_id = $1 AND method = 'POST' AND path = $2 "
     "AND key = $3 AND created_at <= now() - interval '24 hours'",
     3},
    {"records_idem_cleanup",
     "DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'", 0},
};

int records_prepare(struct pl_pg_pool *pool)
{
    return STORE_PREPARE(pool, statements);
}

static void on_cleanup(int status, PGresult **results, int n, void *ctx) {}

void records_cleanup(struct pl_pg_pool *pool)
{
    /* Best effort: a pool that cannot take it now gets another chance next time. */
    if (pl_pg_exec1(pool, "records_idem_cleanup", 0, NULL, on_cleanup, NULL) != 0) return;
}
