/* The SQL of notes: every statement is scoped by the caller's memberships (records_store.h):
 * a note is seen by the members of its subject. */
#include "../records/records_store.h"
#include "notes.h"

#define NOTE_INSERT "INSERT INTO notes (subject_id, created_by, title, body, tags, pinned)"
#define NOTE_VALUES "$4, COALESCE($5, ''), COALESCE($6::text[], '{}'), COALESCE($7::bool, false)"
/* Lists (RECORD_PAGE_SQL): pinned first, then newest updated_at; the cursor is (pinned,
 * updated_at, id). The page walks notes_subject_order_idx in order. */
/* clang-format off */
#define NOTE_PAGE                                                                                  \
    "SELECT r.id, r.subject_id, r.title, r.body, r.tags, r.pinned, r.created_by, r.version, "      \
        "r.created_at, r.updated_at FROM notes r WHERE r.subject_id = a.sid "
#define NOTE_PAGE_END(limit)                                                                       \
    "ORDER BY r.pinned DESC, r.updated_at DESC, r.id DESC LIMIT " limit
#define NOTE_LIST(page)                                                                            \
    RECORD_PAGE_SQL(page, NOTE_JSON_OF("p.", "w.j"), "p.pinned::int::text AS c1, "                 \
        EPOCH_US("p.updated_at") "::text AS c2, p.id::text AS c3",                                 \
        "p.pinned DESC, p.updated_at DESC, p.id DESC")
/* clang-format on */
#define NOTE_FILTERS                                                                               \
    "AND ($4::bool IS NULL OR r.pinned = $4::bool) "                                               \
    "AND ($5::text[] IS NULL OR r.tags @> $5::text[]) "                                            \
    "AND ($6::text IS NULL OR r.search @@ websearch_to_tsquery('english', $6)) "
#define NOTE_AFTER(a, b, c)                                                                        \
    "AND (r.pinned, r.updated_at, r.id) < (" a "::bool, " FROM_EPOCH_US(b) ", " c "::uuid) "

static const struct stmt_def statements[] = {
    {"notes_create", RECORD_CREATE_SQL("notes", NOTE_INSERT, NOTE_VALUES, NOTE_JSON), 7},
    {"notes_create_idem",
     RECORD_CREATE_IDEM_SQL("notes", NOTE_INSERT, NOTE_VALUES, "/api/v1/notes", NOTE_JSON, "$8",
                            "$9"),
     9},
    {"notes_get", RECORD_GET_SQL("notes", NOTE_JSON), 3},
    {"notes_update",
     RECORD_UPDATE_SQL("notes",
                       "title = COALESCE($5, notes.title), body = COALESCE($6, notes.body), "
                       "tags = COALESCE($7::text[], notes.tags), "
                       "pinned = COALESCE($8::bool, notes.pinned)",
                       NOTE_JSON),
     8},
    {"notes_delete", RECORD_DELETE_SQL("notes"), 4},
    /* Lists: pinned first, then newest updated_at; the cursor is (pinned, updated_at, id).
     * The plain list (the hot path) has statements of its own so that its generic plan walks
     * notes_subject_order_idx in order; optional filters would blur the planner's estimates. */
    {"notes_list", NOTE_LIST(NOTE_PAGE NOTE_PAGE_END("$4")), 4},
    {"notes_list_after", NOTE_LIST(NOTE_PAGE NOTE_AFTER("$5", "$6", "$7") NOTE_PAGE_END("$4")), 7},
    {"notes_find", NOTE_LIST(NOTE_PAGE NOTE_FILTERS NOTE_PAGE_END("$7")), 7},
    {"notes_find_after",
     NOTE_LIST(NOTE_PAGE NOTE_FILTERS NOTE_AFTER("$8", "$9", "$10") NOTE_PAGE_END("$7")), 10},
    {"notes_tags",
     "WITH a AS (" RECORD_SUBJECT(
         "$1", "$2",
         "$3") ") SELECT l.json FROM a LEFT JOIN LATERAL "
               "(SELECT json_build_object('tag', tag, 'count', count(*))::text AS json FROM notes, "
               "unnest(tags) AS tag WHERE subject_id = a.sid GROUP BY tag ORDER BY count(*) DESC, tag "
               "LIMIT 1000) l ON true",
     3},
};

int notes_prepare(struct pl_pg_pool *pool)
{
    return STORE_PREPARE(pool, statements);
}
