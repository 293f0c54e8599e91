/* records_store: the SQL that every record kind shares, written once: the idempotency
 * records of creates (records_store.c), and the shapes of each kind's own statements, which
 * notes_store.c and feedings_store.c build from the macros below (the conventions of each
 * statement's parameters and rows are in records.h). */
#ifndef PULSE_RECORDS_STORE_H
#define PULSE_RECORDS_STORE_H

#include "../events.h"
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

/* Who may see what: a record belongs to a subject, and the caller sees it while they are a
 * member of that subject and, for a token restricted to some subjects, while the subject is
 * one of them. Each statement checks this itself, in the same statement as its query (no
 * extra round trip, and a removal holds for the very next request on every replica).
 *
 * RECORD_SUBJECT(u, s, t): the subject a list, a create or a summary is about, as one row
 * (sid, srole) when the user u may see it, none otherwise: subject s, or when s is NULL the
 * user's default subject; t is the token's subjects (uuid[]) or NULL. */
#define RECORD_SUBJECT(u, s, t)                                                                    \
    "SELECT m.subject_id AS sid, m.role AS srole FROM subject_members m WHERE m.user_id = " u      \
    "::uuid AND m.subject_id = COALESCE(" s "::uuid, (SELECT du.default_subject_id FROM users du " \
    "WHERE du.id = " u "::uuid)) AND (" t "::uuid[] IS NULL OR m.subject_id = ANY(" t "::uuid[]))"
/* The change's event into the outbox, as the CTE `ob` (its id: "(SELECT id FROM ob)"): the
 * event "<kind>.<what>" of `table` ("notes": "note.created"), for the rows of `from`. */
#define RECORD_OUTBOX(table, what, members, sid, data, from)                                       \
    EVENTS_OUTBOX_CTE("ob", "left('" table "', -1) || '." what "'", members, sid, data, from)
/* The members of subject `sid` as a Postgres array literal, for events_publish_members. */
#define RECORD_MEMBERS(sid)                                                                        \
    "(SELECT array_agg(mm.user_id)::text FROM subject_members mm WHERE mm.subject_id = " sid ")"
/* A record's author as {id, display_name}, or null once the account is gone. In a list it is
 * evaluated for the rows of the page only (after the index walk's early stop): a join would
 * let a generic plan hash the subject's rows and sort them. */
#define RECORD_CREATED_BY                                                                          \
    "(SELECT json_build_object('id', cb.id, 'display_name', cb.display_name) FROM users cb "       \
    "WHERE cb.id = created_by)"
/* clang-format off: these SQL macros read best as the statements they spell */
/* A page of a list: the subject's row (RECORD_SUBJECT of $1 user, $2 subject, $3 token's
 * subjects), then `page` ("SELECT <cols> FROM t r WHERE r.subject_id = a.sid ... ORDER BY
 * ... LIMIT n": the index walk that stops at the page's end) as p, each distinct author
 * looked up once (w: a page is mostly one or two authors), then the rows: `json` (from p's
 * columns, with w.j as created_by), then `cursor` (the cursor fields), in `order`. No row at all
 * when the subject is not visible, one row of NULLs when it has no records. The final sort
 * is of the page's rows only. */
#define RECORD_PAGE_SQL(page, json, cursor, order)                                                 \
    "WITH a AS (" RECORD_SUBJECT(                                                                  \
        "$1", "$2",                                                                                \
        "$3") "), "                                                                                \
              "p AS (SELECT r.* FROM a, LATERAL (" page ") r), "                                   \
              "w AS MATERIALIZED (SELECT cb.id, json_build_object('id', cb.id, 'display_name', "   \
              "cb.display_name) AS j FROM users cb WHERE cb.id IN (SELECT p.created_by FROM p)) "  \
              "SELECT CASE WHEN p.id IS NOT NULL THEN " json " END, " cursor " "                   \
              "FROM a LEFT JOIN (p LEFT JOIN w ON w.id = p.created_by) ON true "                   \
              "ORDER BY " order

/* The record `id` of `table` with the caller's role and its version (aid, arole, aversion)
 * when user u may see it. */
#define RECORD_ACCESS(table, id, u, t)                                                             \
    "SELECT x.id AS aid, m.role AS arole, x.version AS aversion FROM " table " x "                 \
    "JOIN subject_members m ON m.subject_id = x.subject_id AND m.user_id = " u "::uuid "           \
    "WHERE x.id = " id "::uuid AND (" t "::uuid[] IS NULL OR x.subject_id = ANY(" t "::uuid[]))"
#define RECORD_WRITER(role) role " IN ('owner', 'caregiver')"

/* A kind's statements, for its rows in `table` whose JSON (text) is the SQL `json`. */
#define RECORD_GET_SQL(table, json)                                                                \
    "WITH a AS (" RECORD_ACCESS(table, "$1", "$2", "$3") ") "                                      \
                                                         "SELECT id, version, " json               \
                                                         ", arole FROM a JOIN " table " ON " table \
                                                         ".id = a.aid"
/* An update: `set` is the SET list; the row (role, id, version, json, subject_id, members,
 * the version read): none when the record is not visible, id NULL when the role or If-Match
 * refused it, or when a concurrent delete committed first. */
#define RECORD_UPDATE_SQL(table, set, json)                                                                                        \
    "WITH a AS (" RECORD_ACCESS(                                                                                                   \
        table, "$1", "$2",                                                                                                         \
        "$4") "), "                                                                                                                \
              "c AS (UPDATE " table " SET " set ", version = " table                                                               \
              ".version + 1, updated_at = now() "                                                                                  \
              "FROM a WHERE " table ".id = a.aid AND " RECORD_WRITER(                                                              \
                  "a.arole") " "                                                                                                   \
                             "AND ($3::int IS NULL OR " table ".version = $3::int) "                                               \
                             "RETURNING " table ".id, " table ".version, " json " AS json, " table                                 \
                             ".subject_id AS sid, " RECORD_MEMBERS(                                                                \
                                 table                                                                                             \
                                 ".subject_id") " AS members) "                                                                    \
                                                ", " RECORD_OUTBOX(                                                                \
                                                    table, "updated", "c.members", "c.sid",                                        \
                                                    "c.json",                                                                      \
                                                    "c") " "                                                                       \
                                                         "SELECT a.arole, c.id, c.version, c.json, c.sid, c.members, a.aversion, " \
                                                         "(SELECT id FROM ob) FROM a LEFT JOIN c ON true"
/* A delete: the row as for an update (version and json NULL). */
#define RECORD_DELETE_SQL(table)                                                                                          \
    "WITH a AS (" RECORD_ACCESS(                                                                                          \
        table, "$1", "$2",                                                                                                \
        "$4") "), "                                                                                                       \
              "c AS (DELETE FROM " table " USING a WHERE " table ".id = a.aid AND " RECORD_WRITER(                        \
                  "a.arole") " AND ($3::int IS NULL OR " table ".version = $3::int) "                                     \
                             "RETURNING " table ".id, " table ".subject_id AS sid), "                                     \
                             "cm AS (SELECT c.id, c.sid, " RECORD_MEMBERS(                                                \
                                 "c.sid") " AS members, "                                                                 \
                                          "'{\"id\":\"' || c.id || '\"}' AS data FROM c), " RECORD_OUTBOX(                \
                                              table, "deleted", "cm.members", "cm.sid", "cm.data",                        \
                                              "cm") " "                                                                   \
                                                    "SELECT a.arole, cm.id, NULL, NULL, cm.sid, cm.members, a.aversion, " \
                                                    "(SELECT id FROM ob) FROM a LEFT JOIN cm ON true"
/* A create: `insert` is the kind's "INSERT INTO t (subject_id, created_by, ...)" and
 * `values` its values after those two; the row (role, id, version, json, subject_id,
 * members), whose role is NULL when the subject is not one the caller may see and id NULL
 * when nothing was inserted (a viewer, or an Idempotency-Key already used). With a key, the
 * row and its idempotency record are written in one statement (`key` and `hash` are its last
 * two parameters); a concurrent twin fails on the key's primary key (unique_violation) and
 * rolls its row back. */
#define RECORD_CREATE_HEAD(insert, values)                                                         \
    "WITH a AS (SELECT w.want AS sid, m.role AS arole FROM (SELECT COALESCE($2::uuid, "            \
    "(SELECT du.default_subject_id FROM users du WHERE du.id = $1::uuid)) AS want) w "             \
    "LEFT JOIN subject_members m ON m.subject_id = w.want AND m.user_id = $1::uuid "               \
    "AND ($3::uuid[] IS NULL OR w.want = ANY($3::uuid[]))), "                                      \
    "ins AS (" insert " SELECT a.sid, $1::uuid, " values " FROM a WHERE " RECORD_WRITER("a.arole")
#define RECORD_CREATE_TAIL(table, json)                                                            \
    " RETURNING *), "                                                                              \
    "j AS (SELECT id, version, " json " AS json, subject_id AS sid, " RECORD_MEMBERS(              \
        "ins.subject_id") " AS members FROM ins), " RECORD_OUTBOX(table, "created", "j.members",   \
                                                                  "j.sid", "j.json", "j") " "
#define RECORD_CREATE_ROW                                                                          \
    "SELECT a.arole, j.id, j.version, j.json, j.sid, j.members, (SELECT id FROM ob) "              \
    "FROM a LEFT JOIN j ON true"
#define RECORD_CREATE_SQL(table, insert, values, json)                                             \
    RECORD_CREATE_HEAD(insert, values) RECORD_CREATE_TAIL(table, json) RECORD_CREATE_ROW
#define RECORD_CREATE_IDEM_SQL(table, insert, values, path, json, key, hash)                                 \
    RECORD_CREATE_HEAD(insert, values)                                                                       \
    " AND NOT EXISTS (SELECT 1 FROM idempotency_keys "                                                       \
    "WHERE user_id = $1 AND method = 'POST' AND path = '" path "' AND key = " key " "                        \
    "AND created_at > now() - interval '24 hours')" RECORD_CREATE_TAIL(                                      \
        table,                                                                                               \
        json) ", claim AS (INSERT INTO idempotency_keys (user_id, method, path, key, request_hash, status, " \
              "location, body) SELECT $1, 'POST', '" path "', " key ", decode(" hash                         \
              ", 'hex'), 201, '" path "/' || j.id, j.json FROM j RETURNING 1) " RECORD_CREATE_ROW
/* clang-format on */

/* The statement names of a kind whose statements are named <prefix>_create, ... (struct
 * record_kind initialisers). */
#define RECORD_STATEMENTS(prefix)                                                                  \
    .stmt_create = prefix "_create", .stmt_create_idem = prefix "_create_idem",                    \
    .stmt_get = prefix "_get", .stmt_update = prefix "_update", .stmt_delete = prefix "_delete"

#endif
