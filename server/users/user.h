/* user: the account as the contract shows it, shared by registration and login (auth) and
 * the profile: its JSON shape, read from a USER_COLS row, and the rules of the fields a
 * client may set (display name, time zone). The IANA zone names a time zone is checked
 * against are loaded once per process (timezones.c) into the app. */
#ifndef PULSE_USER_H
#define PULSE_USER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "../store.h"
#include "pl/json.h"
#include "pl/pg.h"

struct app;

/* SELECT list of a user (table or alias u), in the order user_json() reads it; `target` is
 * the SQL of its daily_target_ml, which is its default subject's. */
#define USER_COLS_OF(u, target)                                                                    \
    u ".id, " u ".email, " u ".display_name, " u ".timezone, " target                              \
      ", " TS(u ".created_at") ", " TS(u ".updated_at") ", " u ".default_subject_id, " u           \
                                                        ".volume_unit"
/* The default subject's target, read from the users row `u` (0 without one). */
#define USER_TARGET_OF(u)                                                                          \
    "COALESCE((SELECT ds.daily_target_ml FROM subjects ds WHERE ds.id = " u                        \
    ".default_subject_id), 0)"
#define USER_COLS  USER_COLS_OF("users", USER_TARGET_OF("users"))
#define USER_NCOLS 9

/* The name of a user's default subject, from their display name (SQL, users row `u`). */
#define USER_SUBJECT_NAME(u) "COALESCE(NULLIF(left(btrim(" u ".display_name), 80), ''), 'My log')"

/* volume_unit: how the UI shows volumes, "ml" or "oz" (the API is always in ml). */
#define USER_FIELD_VOLUME_UNIT                                                                     \
    {                                                                                              \
        .name = "volume_unit", .type = PL_J_STRING, .one_of = user_volume_units                    \
    }
extern const char *const user_volume_units[];

/* The user object of the contract from row `row` of a USER_COLS result (new reference). */
json_t *user_json(const PGresult *res, int row);

/* Schema fields (struct pl_jfield initialisers) of what both registration and PATCH /me
 * accept. The time zone's check needs the app as the validation context. */
#define USER_FIELD_DISPLAY_NAME                                                                    \
    {                                                                                              \
        .name = "display_name", .type = PL_J_STRING, .flags = PL_JF_NULLABLE, .min = 1, .max = 100 \
    }
#define USER_FIELD_TIMEZONE                                                                        \
    {                                                                                              \
        .name = "timezone", .type = PL_J_STRING, .min = 1, .max = 64,                              \
        .check_ctx = user_timezone_check                                                           \
    }

/* check_ctx of a time zone field: NULL when `zone` is an IANA zone Postgres knows, else the
 * message. `app` is the struct app (const). */
const char *user_timezone_check(const char *zone, const void *app);
/* false when `body` names a time zone while the zone list is not loaded yet (Postgres was
 * unreachable at start-up): it cannot be checked, so the request answers 503. */
bool user_zones_ready(json_t *body, const struct app *app);

/* The zone list (timezones.c). Loads the IANA zone names from Postgres once (blocking:
 * thread pool or start-up only); 0, or -1 with the reason in err. */
int timezones_load(struct app *app, char *err, size_t errlen);
void timezones_free(struct app *app);
/* true when `name` is an IANA time zone Postgres knows (false until the list is loaded). */
bool app_timezone_valid(const struct app *app, const char *name);

#endif
