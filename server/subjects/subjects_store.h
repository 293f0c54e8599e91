/* subjects_store: the SQL of care circles (subjects, members, invitations), and the pieces of
 * it that the profile's statements share (a subject's JSON, the repair of default subjects).
 *
 * Every statement checks the caller's membership (and the subjects a restricted token may
 * reach) in the statement itself: $1 is the caller's user id, $2 the token's subject ids
 * (uuid[], NULL when unrestricted), $3 the subject's id. A statement answers a row that tells
 * "not a member" (no row), the caller's role, and what was done, so that a handler answers
 * 404, 403, 409 or success from one round trip. */
#ifndef PULSE_SUBJECTS_STORE_H
#define PULSE_SUBJECTS_STORE_H

#include "../store.h"
#include "../users/user.h"
#include "pl/pg.h"

/* The caller's membership row `m` of subject `sid` (SQL), as far as the token reaches. */
#define SUBJECT_VISIBLE(sid)                                                                       \
    "m.subject_id = " sid " AND m.user_id = $1 AND ($2::uuid[] IS NULL OR " sid                    \
    " = ANY($2::uuid[]))"

/* The subject of row `s` as JSON fields (without role); `count` is the SQL of member_count. */
#define SUBJECT_FIELDS(s, count)                                                                   \
    "'id', " s ".id, 'name', " s ".name, 'kind', " s ".kind, 'birth_date', " s ".birth_date, "     \
    "'timezone', " s ".timezone, 'daily_target_ml', " s ".daily_target_ml, 'member_count', " count \
    ", 'version', " s                                                                              \
    ".version, 'created_at', " TS(s ".created_at") ", 'updated_at', " TS(s ".updated_at")
#define SUBJECT_COUNT(s) "(SELECT count(*) FROM subject_members mc WHERE mc.subject_id = " s ".id)"
/* The subject as the caller sees it (with their role) and as events carry it (without). */
#define SUBJECT_JSON(s, role)                                                                      \
    "json_build_object(" SUBJECT_FIELDS(s, SUBJECT_COUNT(s)) ", 'role', " role ")::text"
#define SUBJECT_EVENT_JSON(s) "json_build_object(" SUBJECT_FIELDS(s, SUBJECT_COUNT(s)) ")::text"

/* A member (membership row sm, users row u), as json and as text. */
#define MEMBER_OBJ(sm, u)                                                                          \
    "json_build_object('user_id', " u ".id, 'display_name', " u ".display_name, 'email', " u       \
    ".email, 'role', " sm ".role, 'joined_at', " TS(sm ".joined_at") ")"
#define MEMBER_JSON(sm, u) MEMBER_OBJ(sm, u) "::text"

/* The members of subject `sid` as a Postgres array literal, for events_publish_members. */
#define SUBJECT_MEMBERS(sid)                                                                       \
    "(SELECT array_agg(ma.user_id)::text FROM subject_members ma WHERE ma.subject_id = " sid ")"

/* Default-subject repair, as CTEs that follow CTEs `aff(user_id)` (users who lose their default
 * subject in this statement) and `gone(id)` (subjects they lose): each gets their oldest
 * remaining subject, or a new one they own, named after them (kind other, their zone). One
 * statement with the change, so no one is ever left without a default subject. */
#define REPAIR_DEFAULTS                                                                             \
    "alt AS (SELECT DISTINCT ON (a.user_id) a.user_id, sm.subject_id FROM aff a "                   \
    "JOIN subject_members sm ON sm.user_id = a.user_id "                                            \
    "WHERE NOT EXISTS (SELECT 1 FROM gone g WHERE g.id = sm.subject_id) "                           \
    "ORDER BY a.user_id, sm.joined_at, sm.subject_id), "                                            \
    "need AS (SELECT a.user_id, gen_random_uuid() AS sid, " USER_SUBJECT_NAME(                      \
        "u") " AS name, u.timezone FROM aff a JOIN users u ON u.id = a.user_id "                    \
             "WHERE NOT EXISTS (SELECT 1 FROM alt WHERE alt.user_id = a.user_id)), "                \
             "ns AS (INSERT INTO subjects (id, name, kind, timezone) "                              \
             "SELECT sid, name, 'other', timezone FROM need), "                                     \
             "nm AS (INSERT INTO subject_members (subject_id, user_id, role) "                      \
             "SELECT sid, user_id, 'owner' FROM need), "                                            \
             "fix AS (UPDATE users fu SET default_subject_id = COALESCE(alt.subject_id, need.sid) " \
             "FROM aff LEFT JOIN alt ON alt.user_id = aff.user_id "                                 \
             "LEFT JOIN need ON need.user_id = aff.user_id WHERE fu.id = aff.user_id) "

int subjects_prepare(struct pl_pg_pool *pool);

#endif
