/* records_store: the SQL that every record kind shares, written once: the idempotency
 * records of creates (records_store.c), and the shapes of each kind's own statements, which
 * notes_store.c and feedings_store.c build from the macros below (the conventions of each
 * statement's parameters and rows are in records.h). */
#ifndef PULSE_RECORDS_STORE_H
#define PULSE_RECORDS_STORE_H

#include "../store.h"
#include "pl/pg.h"

/* Statements of records_store.c:
 *   records_idem_expire  $1 user_id, $2 path, $3 key: drops the key's record if it is older
 *                        than 24 h, so that the key can be used again
 *   records_idem_get     the same, $4 request hash (hex): status, location, body, and whether
 *                        the hash matches, of the key's live record */
int records_prepare(struct pl_pg_pool *pool);
/* Deletes idempotency records older than 24 h (call from a timer now and then). */
void records_cleanup(struct pl_pg_pool *pool);

/* microseconds since the epoch, exact both ways (cursors, ?from=/?to=, given_at). An
 * interval times a number is computed in float8: whole seconds (|s| < 2^38, which covers
 * years 0001..9999) times 1 s, and the microseconds left over, are exact; microseconds times
 * 1 µs are not past 2^53 µs (before 1685 or after 2255) and could even cross a year. */
#define EPOCH_US(col) "(extract(epoch FROM " col ")::numeric * 1000000)::bigint"
#define FROM_EPOCH_US(p)                                                                           \
    "('epoch'::timestamptz + (" p "::bigint / 1000000) * interval '1 second' + (" p                \
    "::bigint % 1000000) * interval '1 microsecond')"

/* A kind's statements, for its rows in `table` whose JSON (text) is the SQL `json`. */
#define RECORD_MATCH "WHERE id = $1 AND created_by = $2 AND ($3::int IS NULL OR version = $3::int) "
#define RECORD_GET_SQL(table, json)                                                                \
    "SELECT id, version, " json " FROM " table " WHERE id = $1 AND created_by = $2"
#define RECORD_DELETE_SQL(table)  "DELETE FROM " table " " RECORD_MATCH "RETURNING id"
#define RECORD_VERSION_SQL(table) "SELECT version FROM " table " WHERE id = $1 AND created_by = $2"
/* The row and its idempotency record in one statement: `insert` is the kind's
 * "INSERT INTO t (...) SELECT ..." ($1 the user), `key` and `hash` its last two parameters.
 * Inserts nothing when the key is live; a concurrent twin fails on the key's primary key
 * (unique_violation) and rolls its row back. */
#define RECORD_CREATE_IDEM_SQL(insert, path, json, key, hash)                                      \
    "WITH ins AS (" insert " WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys WHERE "              \
    "user_id = $1 AND method = 'POST' AND path = '" path "' AND key = " key                        \
    " AND created_at > now() - interval '24 hours') RETURNING *), "                                \
    "j AS (SELECT id, version, " json " AS json FROM ins), "                                       \
    "claim AS (INSERT INTO idempotency_keys (user_id, method, path, key, request_hash, status, "   \
    "location, body) SELECT $1, 'POST', '" path "', " key ", decode(" hash ", 'hex'), 201, '" path \
    "/' || j.id, j.json FROM j RETURNING 1) "                                                      \
    "SELECT j.id, j.version, j.json FROM j"

/* The statement names of a kind whose statements are named <prefix>_create, ... (struct
 * record_kind initialisers). */
#define RECORD_STATEMENTS(prefix)                                                                  \
    .stmt_create = prefix "_create", .stmt_create_idem = prefix "_create_idem",                    \
    .stmt_get = prefix "_get", .stmt_update = prefix "_update", .stmt_delete = prefix "_delete",   \
    .stmt_version = prefix "_version"

#endif
