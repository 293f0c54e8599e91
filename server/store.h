/* store: what every *_store.c shares: its statements as a table, prepared on each pool. */
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

/* A text column as a JSON string, or null when the column is NULL (new reference). */
json_t *store_json_text(const PGresult *res, int row, int col);

/* A timestamp column as RFC 3339 UTC with milliseconds, formatted by Postgres. */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

#endif
