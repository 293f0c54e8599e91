/* The SQL of the profile: partial update, deletion, and the pages of the export. */
#include "../store.h"
#include "profile.h"

#include "../users/user.h"
#include "../feedings/feedings.h"
#include "../notes/notes.h"

static const struct stmt_def statements[] = {
    {"profile_get", "SELECT " USER_COLS " FROM users WHERE id = $1", 1},
    /* $2/$4/$6: whether the field was sent; null display_name clears it */
    {"profile_patch",
     "UPDATE users SET display_name = CASE WHEN $2::bool THEN $3 ELSE display_name END, "
     "timezone = CASE WHEN $4::bool THEN $5 ELSE timezone END, "
     "daily_target_ml = CASE WHEN $6::bool THEN $7::int ELSE daily_target_ml END, "
     "updated_at = now() WHERE id = $1 RETURNING " USER_COLS,
     7},
    {"profile_delete", "DELETE FROM users WHERE id = $1", 1},
    /* Export pages in list order, keyset on the sort key (index-backed). */
    {"export_notes",
     "SELECT " NOTE_JSON ", pinned, updated_at::text, id FROM notes WHERE user_id = $1 "
     "AND ($2::bool IS NULL OR (pinned, updated_at, id) < ($2::bool, $3::timestamptz, $4::uuid)) "
     "ORDER BY pinned DESC, updated_at DESC, id DESC LIMIT 500",
     4},
    {"export_feedings",
     "SELECT " FEEDING_JSON ", given_at::text, id FROM feedings WHERE user_id = $1 "
     "AND ($2::timestamptz IS NULL OR (given_at, id) < ($2::timestamptz, $3::uuid)) "
     "ORDER BY given_at DESC, id DESC LIMIT 500",
     3},
};

int profile_store_prepare(struct pl_pg_pool *pool)
{
    return STORE_PREPARE(pool, statements);
}
