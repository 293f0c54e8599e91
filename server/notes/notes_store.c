/* The SQL of notes: every statement is scoped by the caller's user id. */
#include "../store.h"
#include "../records/records.h"
#include "notes.h"

#define NOTE_VALUES                                                                                \
    "$1, $2, COALESCE($3, ''), COALESCE($4::text[], '{}'), COALESCE($5::bool, false)"
#define NOTE_LIST_COLS                                                                             \
    "SELECT " NOTE_JSON ", pinned::int::text AS c1, " EPOCH_US(                                    \
        "updated_at") "::text AS c2, "                                                             \
                      "id::text AS c3 FROM notes WHERE user_id = $1 "
#define NOTE_FILTERS                                                                               \
    "AND ($2::bool IS NULL OR pinned = $2::bool) AND ($3::text[] IS NULL OR tags @> $3::text[]) "  \
    "AND ($4::text IS NULL OR search @@ websearch_to_tsquery('english', $4)) "
#define NOTE_ORDER "ORDER BY pinned DESC, updated_at DESC, id DESC "
#define NOTE_AFTER(a, b, c)                                                                        \
    "AND (pinned, updated_at, id) < (" a "::bool, " FROM_EPOCH_US(b) ", " c "::uuid) "

static const struct stmt_def statements[] = {
    {"notes_create",
     "INSERT INTO notes (user_id, title, body, tags, pinned) VALUES (" NOTE_VALUES ") "
     "RETURNING id, version, " NOTE_JSON,
     5},
    /* The row and its idempotency record in one statement: nothing when the key is live;
     * a concurrent twin fails on the key's primary key and rolls its row back. */
    {"notes_create_idem",
     "WITH note AS (INSERT INTO notes (user_id, title, body, tags, pinned) SELECT " NOTE_VALUES
     " WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys WHERE user_id = $1 AND method = 'POST' "
     "AND path = '/api/v1/notes' AND key = $6 AND created_at > now() - interval '24 hours') "
     "RETURNING *), "
     "j AS (SELECT id, version, " NOTE_JSON " AS json FROM note), "
     "claim AS (INSERT INTO idempotency_keys (user_id, method, path, key, request_hash, status, "
     "location, body) SELECT $1, 'POST', '/api/v1/notes', $6, decode($7, 'hex'), 201, "
     "'/api/v1/notes/' || j.id, j.json FROM j RETURNING 1) "
     "SELECT j.id, j.version, j.json FROM j",
     7},
    {"notes_get", "SELECT id, version, " NOTE_JSON " FROM notes WHERE id = $1 AND user_id = $2", 2},
    {"notes_update",
     "UPDATE notes SET title = COALESCE($4, title), body = COALESCE($5, body), "
     "tags = COALESCE($6::text[], tags), pinned = COALESCE($7::bool, pinned), "
     "version = version + 1, updated_at = now() "
     "WHERE id = $1 AND user_id = $2 AND ($3::int IS NULL OR version = $3::int) "
     "RETURNING id, version, " NOTE_JSON,
     7},
    {"notes_delete",
     "DELETE FROM notes WHERE id = $1 AND user_id = $2 AND ($3::int IS NULL OR version = $3::int) "
     "RETURNING id",
     3},
    {"notes_version", "SELECT version FROM notes WHERE id = $1 AND user_id = $2", 2},
    /* Lists: pinned first, then newest updated_at; the cursor is (pinned, updated_at, id).
     * The plain list (the hot path) has statements of its own so that its generic plan walks
     * notes_user_order_idx in order; optional filters would blur the planner's estimates. */
    {"notes_list", NOTE_LIST_COLS NOTE_ORDER "LIMIT $2", 2},
    {"notes_list_after", NOTE_LIST_COLS NOTE_AFTER("$3", "$4", "$5") NOTE_ORDER "LIMIT $2", 5},
    {"notes_find", NOTE_LIST_COLS NOTE_FILTERS NOTE_ORDER "LIMIT $5", 5},
    {"notes_find_after",
     NOTE_LIST_COLS NOTE_FILTERS NOTE_AFTER("$6", "$7", "$8") NOTE_ORDER "LIMIT $5", 8},
    {"notes_tags",
     "SELECT json_build_object('tag', tag, 'count', count(*))::text FROM notes, unnest(tags) AS "
     "tag WHERE user_id = $1 GROUP BY tag ORDER BY count(*) DESC, tag LIMIT 1000",
     1},
};

int notes_prepare(struct pl_pg_pool *pool)
{
    return STORE_PREPARE(pool, statements);
}
