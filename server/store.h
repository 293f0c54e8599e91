/* store: what every *_store.c shares: its statements as a table, prepared on each pool; and
 * how a handler runs them for its request. */
#ifndef PULSE_STORE_H
#define PULSE_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "pl/pg.h"

struct stmt_def {
    const char *name, *sql;
    int nparams;
};

int store_prepare(struct pl_pg_pool *pool, const struct stmt_def *defs, size_t n);
/* A prepared statement's definition by name (NULL before it was prepared anywhere). */
const struct stmt_def *store_lookup(const char *name);
#define STORE_PREPARE(pool, defs) store_prepare((pool), (defs), sizeof(defs) / sizeof((defs)[0]))

struct pl_http_request;
/* Runs prepared statement `name` with n parameters (copied) on the pool of the request's
 * worker; cb fires later, exactly once, with ctx (see pl_pg_cb). When the pool cannot take it
 * (no connection, queue full), the request is answered 503 at once and cb never fires. */
void store_query(struct pl_http_request *req, const char *name, int n, const char *const *values,
                 pl_pg_cb cb, void *ctx);
/* The same for a batch of statements run as one transaction (pl_pg_exec). */
void store_batch(struct pl_http_request *req, const struct pl_pg_stmt *stmts, int n, pl_pg_cb cb,
                 void *ctx);

/* A text column as a JSON string, or null when the column is NULL (new reference). */
json_t *store_json_text(const PGresult *res, int row, int col);

/* A timestamp column as RFC 3339 UTC with milliseconds, formatted by Postgres. */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

#endif
