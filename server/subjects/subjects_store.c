/* The SQL of care circles: see subjects_store.h for the conventions ($1 the caller, $2 the
 * token's subjects, $3 the subject). */
#include "subjects_store.h"

#include "../events.h"
#include "../users/user.h"

/* the caller's membership of $3, as far as the token reaches */
#define ME       "me AS (SELECT m.role FROM subject_members m WHERE " SUBJECT_VISIBLE("$3::uuid") ")"
#define IS_OWNER "EXISTS (SELECT 1 FROM me WHERE me.role = 'owner')"
/* The owners of $3, locked: two owners demoting or removing each other at once cannot both
 * pass the last-owner check (the second one re-reads the rows the first changed). */
#define OWNERS                                                                                     \
    "owners AS (SELECT o.user_id FROM subject_members o WHERE o.subject_id = $3::uuid "            \
    "AND o.role = 'owner' AND EXISTS (SELECT 1 FROM me) FOR UPDATE)"
#define LAST_OWNER(sm) "(" sm ".role = 'owner' AND (SELECT count(*) FROM owners) <= 1)"

static const struct stmt_def statements[] = {
    /* ---- subjects ---- */
    {"subjects_list",
     "SELECT " SUBJECT_JSON("s",
                            "m.role") " FROM subject_members m "
                                      "JOIN subjects s ON s.id = m.subject_id WHERE m.user_id = $1 "
                                      "AND ($2::uuid[] IS NULL OR m.subject_id = ANY($2::uuid[])) "
                                      "ORDER BY m.joined_at, m.subject_id LIMIT 1000",
     2},
    /* $2 name, $3 kind, $4 birth_date, $5 timezone (default: the creator's), $6 target,
     * $7 the quota of subjects per user. No row: the user is gone; a NULL id: over quota. */
    {"subjects_create",
     "WITH u AS (SELECT id, timezone FROM users WHERE id = $1), "
     "ok AS (SELECT u.* FROM u WHERE (SELECT count(*) FROM subject_members q "
     "WHERE q.user_id = $1) < $7::int), "
     "s AS (INSERT INTO subjects (name, kind, birth_date, timezone, daily_target_ml) "
     "SELECT $2, COALESCE($3, 'other'), $4::date, COALESCE($5, ok.timezone), "
     "COALESCE($6::int, 0) FROM ok RETURNING *), "
     "m AS (INSERT INTO subject_members (subject_id, user_id, role) "
     "SELECT s.id, $1, 'owner' FROM s) "
     "SELECT s.id, s.version, json_build_object(" SUBJECT_FIELDS(
         "s", "1") ", 'role', 'owner')::text FROM u LEFT JOIN s ON true",
     7},
    {"subjects_get",
     "SELECT s.version, " SUBJECT_JSON(
         "s", "m.role") ", m.role FROM subject_members m "
                        "JOIN subjects s ON s.id = m.subject_id WHERE " SUBJECT_VISIBLE("$3::uuid"),
     3},
    /* $4 If-Match version or NULL, $5 name, $6 kind, $7 birth_date sent, $8 birth_date,
     * $9 timezone, $10 target. Row: role (no row: not a member), the new version (NULL: not
     * changed: not the owner, or the version did not match), JSON, event JSON, members. */
    {"subjects_update",
     "WITH " ME ", "
     "u AS (UPDATE subjects s SET name = COALESCE($5, s.name), kind = COALESCE($6, s.kind), "
     "birth_date = CASE WHEN $7::bool THEN $8::date ELSE s.birth_date END, "
     "timezone = COALESCE($9, s.timezone), "
     "daily_target_ml = COALESCE($10::int, s.daily_target_ml), "
     "version = s.version + 1, updated_at = now() "
     "WHERE s.id = $3::uuid AND " IS_OWNER " AND ($4::int IS NULL OR s.version = $4::int) "
     "RETURNING s.*), " EVENTS_OUTBOX_CTE(
         "ob", "'subject.updated'", SUBJECT_MEMBERS("$3::uuid"), "u.id", SUBJECT_EVENT_JSON("u"),
         "u") " "
              "SELECT me.role, u.version, " SUBJECT_JSON("u", "me.role") ", " SUBJECT_EVENT_JSON(
                  "u") ", " SUBJECT_MEMBERS("$3::uuid") ", (SELECT id FROM ob) FROM me LEFT JOIN u ON true",
     10},
    /* $4 If-Match version or NULL. Deletes the subject with its records, members and
     * invitations; members whose default it was get another. Row: role, deleted, event JSON,
     * the members before. */
    {"subjects_delete",
     "WITH " ME ", "
     "d AS (DELETE FROM subjects s WHERE s.id = $3::uuid AND " IS_OWNER
     " AND ($4::int IS NULL OR s.version = $4::int) RETURNING s.*), "
     "gone AS (SELECT id FROM d), "
     "aff AS (SELECT sm.user_id FROM d JOIN subject_members sm ON sm.subject_id = d.id "
     "JOIN users u ON u.id = sm.user_id AND u.default_subject_id = d.id), " REPAIR_DEFAULTS
     ", " EVENTS_OUTBOX_CTE(
         "ob", "'subject.deleted'", SUBJECT_MEMBERS("$3::uuid"), "d.id", SUBJECT_EVENT_JSON("d"),
         "d") " "
              "SELECT me.role, d.id IS NOT NULL, " SUBJECT_EVENT_JSON("d") ", " SUBJECT_MEMBERS(
                  "$3::uuid") ", (SELECT id FROM ob) FROM me LEFT JOIN d ON true",
     4},
    /* The version alone, to tell 412 from the rest after a failed change. */
    {"subjects_version",
     "SELECT s.version FROM subject_members m JOIN subjects s ON s.id = m.subject_id "
     "WHERE " SUBJECT_VISIBLE("$3::uuid"),
     3},

    /* ---- members ---- */
    {"members_list",
     "SELECT " MEMBER_JSON(
         "sm",
         "u") " FROM subject_members m "
              "JOIN subject_members sm ON sm.subject_id = m.subject_id JOIN users u ON u.id = sm.user_id "
              "WHERE " SUBJECT_VISIBLE("$3::uuid") " ORDER BY sm.joined_at, sm.user_id LIMIT 1000",
     3},
    /* $4 the member, $5 the new role. Row: the caller's role, the member's role (NULL: not a
     * member), the member's JSON once changed (NULL: not changed), members. */
    {"members_update",
     "WITH " ME ", t AS (SELECT role FROM subject_members WHERE subject_id = $3::uuid "
     "AND user_id = $4::uuid), " OWNERS ", "
     "u AS (UPDATE subject_members sm SET role = $5 WHERE sm.subject_id = $3::uuid "
     "AND sm.user_id = $4::uuid AND " IS_OWNER " AND NOT ($5 <> 'owner' AND " LAST_OWNER(
         "sm") ") "
               "RETURNING sm.*), " EVENTS_OUTBOX_CTE(
                   "ob", "'member.updated'", SUBJECT_MEMBERS("$3::uuid"), "u.subject_id",
                   "(SELECT " MEMBER_JSON("u", "us") " FROM users us WHERE us.id = u.user_id)",
                   "u") " "
                        "SELECT me.role, t.role, (SELECT " MEMBER_JSON(
                            "u",
                            "us") " FROM users us "
                                  "WHERE us.id = u.user_id), " SUBJECT_MEMBERS(
                                      "$3::uuid") ", (SELECT id FROM ob) FROM me LEFT JOIN t ON true "
                                                  "LEFT JOIN u ON true",
     5},
    /* $4 the member (the caller themself: leaving). Row: the caller's role, the member's
     * role, removed, the members before (the removed one included: they hear of it). */
    {"members_delete",
     "WITH " ME ", t AS (SELECT role FROM subject_members WHERE subject_id = $3::uuid "
     "AND user_id = $4::uuid), " OWNERS ", "
     "d AS (DELETE FROM subject_members sm WHERE sm.subject_id = $3::uuid AND sm.user_id = $4::uuid "
     "AND EXISTS (SELECT 1 FROM me WHERE me.role = 'owner' OR $4::uuid = $1::uuid) "
     "AND NOT " LAST_OWNER(
         "sm") " RETURNING sm.user_id), "
               "gone AS (SELECT $3::uuid AS id), "
               "aff AS (SELECT u.id AS user_id FROM d JOIN users u ON u.id = d.user_id "
               "AND u.default_subject_id = $3::uuid), " REPAIR_DEFAULTS ", " EVENTS_OUTBOX_CTE(
                   "ob", "'member.left'", SUBJECT_MEMBERS("$3::uuid"), "$3::uuid",
                   "'{\"user_id\":\"' || d.user_id || '\"}'",
                   "d") " "
                        "SELECT me.role, t.role, d.user_id IS NOT NULL, " SUBJECT_MEMBERS(
                            "$3::uuid") ", (SELECT id FROM ob) FROM me LEFT JOIN t ON true LEFT JOIN d ON true",
     4},

/* ---- invitations: only the SHA-256 of a code is stored ---- */
#define INVITATION_JSON(i)                                                                         \
    "json_build_object('id', " i ".id, 'role', " i                                                 \
    ".role, 'expires_at', " TS(i ".expires_at") ", 'created_at', " TS(                             \
        i                                                                                          \
        ".created_at") ", 'created_by', "                                                          \
                       "(SELECT json_build_object('id', cu.id, 'display_name', cu.display_name) "  \
                       "FROM users cu WHERE cu.id = " i ".created_by))::text"
#define PENDING(i) i ".used_at IS NULL AND " i ".expires_at > now()"
    /* $4 role, $5 hours, $6 the code's hash (hex), $7 the quota of pending invitations. Row:
     * role, the invitation's id (NULL: over quota, or not the owner), its JSON. */
    {"invitations_create",
     "WITH " ME ", "
     "i AS (INSERT INTO invitations (subject_id, role, code_hash, created_by, expires_at) "
     "SELECT $3::uuid, $4, decode($6, 'hex'), $1, now() + make_interval(hours => $5::int) "
     "WHERE " IS_OWNER " AND (SELECT count(*) FROM invitations p WHERE p.subject_id = $3::uuid "
     "AND " PENDING("p") ") < $7::int RETURNING *) "
                         "SELECT me.role, i.id, " INVITATION_JSON(
                             "i") " FROM me LEFT JOIN i ON true",
     7},
    /* Row per pending invitation (an owner's), or one with NULL JSON. */
    {"invitations_list",
     "WITH " ME " SELECT me.role, CASE WHEN i.id IS NOT NULL THEN " INVITATION_JSON(
         "i") " END FROM me LEFT JOIN invitations i "
              "ON me.role = 'owner' AND i.subject_id = $3::uuid AND " PENDING(
                  "i") " "
                       "ORDER BY i.created_at, i.id LIMIT 1000",
     3},
    /* $4 the invitation. Row: role, deleted. */
    {"invitations_delete",
     "WITH " ME ", d AS (DELETE FROM invitations i WHERE i.id = $4::uuid AND "
     "i.subject_id = $3::uuid AND i.used_at IS NULL AND " IS_OWNER " RETURNING i.id) "
     "SELECT me.role, d.id IS NOT NULL FROM me LEFT JOIN d ON true",
     4},
    /* $1 the user, $2 the code's hash (hex), $3 the quota of subjects per user, $4 of members
     * per subject. One use: the row is locked, and a second acceptance re-reads it used. No
     * row: unknown, used, expired or revoked. Row: already a member, over a quota, the subject
     * joined, its JSON for the joiner, the joiner's member JSON, the members with the joiner. */
    {"invitations_accept",
     "WITH i AS (SELECT id, subject_id, role FROM invitations WHERE code_hash = decode($2, 'hex') "
     "AND " PENDING(
         "invitations") " FOR UPDATE), "
                        "st AS (SELECT i.*, EXISTS (SELECT 1 FROM subject_members a WHERE a.subject_id = i.subject_id "
                        "AND a.user_id = $1) AS already, "
                        "(SELECT count(*) FROM subject_members b WHERE b.user_id = $1) >= $3::int "
                        "OR (SELECT count(*) FROM subject_members c WHERE c.subject_id = i.subject_id) >= $4::int "
                        "AS over_quota FROM i), "
                        "ok AS (SELECT * FROM st WHERE NOT already AND NOT over_quota), "
                        "used AS (UPDATE invitations SET used_at = now(), used_by = $1 FROM ok "
                        "WHERE invitations.id = ok.id), "
                        "j AS (INSERT INTO subject_members (subject_id, user_id, role) "
                        "SELECT subject_id, $1, role FROM ok RETURNING *), " EVENTS_OUTBOX_CTE(
                            "ob", "'member.joined'",
                            "array_append((SELECT array_agg(mo.user_id) FROM subject_members mo "
                            "WHERE mo.subject_id = j.subject_id), $1::uuid)::text",
                            "j.subject_id",
                            "(SELECT " MEMBER_JSON("j", "us") " FROM users us WHERE us.id = $1)",
                            "j") " "
                                 "SELECT st.already, st.over_quota, j.subject_id, json_build_object(" SUBJECT_FIELDS(
                                     "s",
                                     "(" SUBJECT_COUNT(
                                         "s") " + 1)") ", 'role', j.role)::text, "
                                                       "json_build_object(" SUBJECT_FIELDS(
                                                           "s",
                                                           "(" SUBJECT_COUNT(
                                                               "s") " + 1)") ")::text, "
                                                                             "(SELECT " MEMBER_JSON(
                                                                                 "j",
                                                                                 "us") " FROM users us WHERE us.id = $1), "
                                                                                       "array_append((SELECT array_agg(ma.user_id) FROM subject_members ma "
                                                                                       "WHERE ma.subject_id = j.subject_id), $1::uuid)::text, (SELECT id FROM ob) "
                                                                                       "FROM st LEFT JOIN j ON true LEFT JOIN subjects s ON s.id = j.subject_id",
     4},
};

int subjects_prepare(struct pl_pg_pool *pool)
{
    return STORE_PREPARE(pool, statements);
}
