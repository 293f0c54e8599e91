/* The SQL of notes: every statement is scoped by the caller's user id. */
#include "../records/records_store.h"
#include "notes.h"

#define NOTE_INSERT "INSERT INTO notes (created_by, subject_id, title, body, tags, pinned)"
#define NOTE_VALUES                                                                                \
    "$1, (SELECT default_subject_id FROM users WHERE id = $1::uuid), $2, COALESCE($3, ''), COALESCE($4::text[], '{}'), COALESCE($5::bool, false)"
#define NOTE_LIST_COLS                                                                             \
    "SELECT " NOTE_JSON ", pinned::int::text AS c1, " EPOCH_US(                                    \
        "updated_at") "::text AS c2, "                                                             \
                      "id::text AS c3 FROM notes WHERE created_by = $1 "
#define NOTE_FILTERS                                                                               \
    "AND ($2::bool IS NULL OR pinned = $2::bool) AND ($3::text[] IS NULL OR tags @> $3::text[]) "  \
    "AND ($4::text IS NULL OR search @@ websearch_to_tsquery('english', $4)) "
#define NOTE_ORDER "ORDER BY pinned DESC, updated_at DESC, id DESC "
#define NOTE_AFTER(a, b, c)                                                                        \
    "AND (pinned, updated_at, id) < (" a "::bool, " FROM_EPOCH_US(b) ", " c "::uuid) "

static const struct stmt_def statements[] = {
    {"notes_create", NOTE_INSERT " VALUES (" NOTE_VALUES ") RETURNING id, version, " NOTE_JSON, 5},
    {"notes_create_idem",
     RECORD_CREATE_IDEM_SQL(NOTE_INSERT " SELECT " NOTE_VALUES, "/api/v1/notes", NOTE_JSON, "$6",
                            "$7"),
     7},
    {"notes_get", RECORD_GET_SQL("notes", NOTE_JSON), 2},
    {"notes_update",
     "UPDATE notes SET title = COALESCE($4, title), body = COALESCE($5, body), "
     "tags = COALESCE($6::text[], tags), pinned = COALESCE($7::bool, pinned), "
     "version = version + 1, updated_at = now() " RECORD_MATCH "RETURNING id, version, " NOTE_JSON,
     7},
    {"notes_delete", RECORD_DELETE_SQL("notes"), 3},
    {"notes_version", RECORD_VERSION_SQL("notes"), 2},
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
     "tag WHERE created_by = $1 GROUP BY tag ORDER BY count(*) DESC, tag LIMIT 1000",
     1},
};

int notes_prepare(struct pl_pg_pool *pool)
{
    return STORE_PREPARE(pool, statements);
}
