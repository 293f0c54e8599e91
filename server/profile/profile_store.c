/* The SQL of the profile: partial update, deletion, and the pages of the export. */
#include "../store.h"
#include "profile.h"

#include "../events.h"
#include "../feedings/feedings.h"
#include "../notes/notes.h"
#include "../subjects/subjects_store.h"
#include "../users/user.h"

/* What the export holds of records: every record of the subjects the user owns, and the
 * user's own records elsewhere. */
#define EXPORTED_RECORD                                                                            \
    "(subject_id IN (SELECT eo.subject_id FROM subject_members eo WHERE eo.user_id = $1 "          \
    "AND eo.role = 'owner') OR created_by = $1) "

static const struct stmt_def statements[] = {
    {"profile_get", "SELECT " USER_COLS " FROM users WHERE id = $1", 1},
    /* $2/$4/$6/$8: whether the field was sent; null display_name clears it. The target, and
     * the zone, are also the default subject's ($9 when sent) when the user owns it; the
     * target of one they do not own is refused, and so is a default subject they do not
     * belong to ($10: the token's subjects). Row: the user (NULL when refused), the role in
     * the default subject, the subject's event JSON and members when it changed. $11: whether
     * volume_unit ($12) was sent. */
    {"profile_patch",
     "WITH me AS (SELECT u.id, CASE WHEN $8::bool THEN $9::uuid ELSE u.default_subject_id END "
     "AS sid FROM users u WHERE u.id = $1), "
     "chk AS (SELECT me.id, me.sid, m.role, ($10::uuid[] IS NULL OR me.sid = ANY($10::uuid[])) "
     "AS reach FROM me LEFT JOIN subject_members m ON m.subject_id = me.sid AND m.user_id = me.id), "
     "ok AS (SELECT * FROM chk WHERE (NOT $8::bool OR (role IS NOT NULL AND reach)) "
     "AND (NOT $6::bool OR role = 'owner')), "
     "u AS (UPDATE users SET display_name = CASE WHEN $2::bool THEN $3 ELSE display_name END, "
     "timezone = CASE WHEN $4::bool THEN $5 ELSE timezone END, default_subject_id = ok.sid, "
     "volume_unit = CASE WHEN $11::bool THEN $12 ELSE volume_unit END, "
     "updated_at = now() FROM ok WHERE users.id = ok.id RETURNING users.*), "
     "s AS (UPDATE subjects SET timezone = CASE WHEN $4::bool THEN $5 ELSE timezone END, "
     "daily_target_ml = CASE WHEN $6::bool THEN $7::int ELSE daily_target_ml END, "
     "version = version + 1, updated_at = now() FROM ok WHERE subjects.id = ok.sid "
     "AND ok.role = 'owner' AND ($4::bool OR $6::bool) RETURNING subjects.*), "
     /* the events into the outbox: profile.updated (the user's JSON as user_json() makes it)
      * and subject.updated when the default subject changed */
     EVENTS_OUTBOX_CTE(
         "obu", "'profile.updated'", "'{' || u.id || '}'", "NULL::uuid",
         "json_build_object('id', u.id, 'email', u.email, 'display_name', "
         "u.display_name, 'timezone', u.timezone, 'daily_target_ml', COALESCE("
         "(SELECT s.daily_target_ml FROM s), (SELECT ds.daily_target_ml FROM "
         "subjects ds WHERE ds.id = u.default_subject_id), 0), 'created_at', " TS(
             "u.created_at") ", 'updated_at', " TS("u.updated_at") ", "
                                                                   "'default_subject_id', u.default_subject_id, 'volume_unit', "
                                                                   "u.volume_unit)::text",
         "u") ", " EVENTS_OUTBOX_CTE("obs", "'subject.updated'", SUBJECT_MEMBERS("s.id"), "s.id",
                                     SUBJECT_EVENT_JSON("s"),
                                     "s") " "
                                          "SELECT " USER_COLS_OF(
                                              "u",
                                              "COALESCE(s.daily_target_ml, (SELECT ds.daily_target_ml FROM "
                                              "subjects ds WHERE ds.id = u.default_subject_id), 0)") ", "
                                                                                                     "chk.role, chk.reach, u.id IS NOT NULL, " SUBJECT_EVENT_JSON(
                                                                                                         "s") ", " SUBJECT_MEMBERS("s.id") ", (SELECT id FROM obu), (SELECT id FROM obs) "
                                                                                                                                           "FROM chk LEFT JOIN u ON true LEFT JOIN s ON true",
     12},
    /* The account, with the subjects of which the user is the only owner (and their records);
     * other members who had one of those as their default get another. Elsewhere the user's
     * records stay, created_by null (ON DELETE SET NULL). Rows, for the events: the subjects
     * deleted and those left, with their members (as before), and the event's outbox row. */
    {"profile_delete",
     "WITH sole AS (SELECT m.subject_id AS id FROM subject_members m WHERE m.user_id = $1 "
     "AND m.role = 'owner' AND NOT EXISTS (SELECT 1 FROM subject_members o WHERE "
     "o.subject_id = m.subject_id AND o.role = 'owner' AND o.user_id <> $1)), "
     "gone AS (SELECT id FROM sole), "
     "ds AS (DELETE FROM subjects WHERE id IN (SELECT id FROM sole)), "
     "aff AS (SELECT sm.user_id FROM sole JOIN subject_members sm ON sm.subject_id = sole.id "
     "AND sm.user_id <> $1 JOIN users au ON au.id = sm.user_id "
     "AND au.default_subject_id = sole.id), " REPAIR_DEFAULTS ", "
     "du AS (DELETE FROM users WHERE id = $1), "
     "ev AS (SELECT true AS deleted, s.id AS sid, " SUBJECT_EVENT_JSON("s") " AS data, " SUBJECT_MEMBERS(
         "s.id") " AS members FROM subjects s WHERE s.id IN (SELECT id FROM sole) "
                 "UNION ALL SELECT false, l.subject_id, '{\"user_id\":\"' || $1 || '\"}', " SUBJECT_MEMBERS(
                     "l.subject_id") " FROM subject_members l WHERE l.user_id = $1 "
                                     "AND l.subject_id NOT IN (SELECT id FROM sole)), "
                                     "ob AS (INSERT INTO event_outbox (user_ids, subject_id, event, data) SELECT members, sid, "
                                     "CASE WHEN deleted THEN 'subject.deleted' ELSE 'member.left' END, data FROM ev "
                                     "WHERE members IS NOT NULL RETURNING " EVENTS_OUTBOX_REF
                                     " AS id, subject_id) "
                                     "SELECT ev.deleted, ev.sid, CASE WHEN ev.deleted THEN ev.data END, ev.members, ob.id "
                                     "FROM ev LEFT JOIN ob ON ob.subject_id = ev.sid",
     1},
    /* Every subject the user belongs to, with their role and its members. */
    {"export_subjects",
     "SELECT json_build_object(" SUBJECT_FIELDS(
         "s",
         SUBJECT_COUNT(
             "s")) ", 'role', m.role, "
                   "'members', (SELECT json_agg(" MEMBER_OBJ(
                       "sm",
                       "u") " ORDER BY sm.joined_at, sm.user_id) "
                            "FROM subject_members sm JOIN users u ON u.id = sm.user_id WHERE sm.subject_id = s.id))::text "
                            "FROM subject_members m JOIN subjects s ON s.id = m.subject_id WHERE m.user_id = $1 "
                            "ORDER BY m.joined_at, m.subject_id",
     1},
    /* Export pages in list order, keyset on the sort key. */
    {"export_notes",
     "SELECT " NOTE_JSON ", pinned, updated_at::text, id FROM notes WHERE " EXPORTED_RECORD
     "AND ($2::bool IS NULL OR (pinned, updated_at, id) < ($2::bool, $3::timestamptz, $4::uuid)) "
     "ORDER BY pinned DESC, updated_at DESC, id DESC LIMIT 500",
     4},
    {"export_feedings",
     "SELECT " FEEDING_JSON ", given_at::text, id FROM feedings WHERE " EXPORTED_RECORD
     "AND ($2::timestamptz IS NULL OR (given_at, id) < ($2::timestamptz, $3::uuid)) "
     "ORDER BY given_at DESC, id DESC LIMIT 500",
     3},
};

int profile_store_prepare(struct pl_pg_pool *pool)
{
    return STORE_PREPARE(pool, statements);
}
