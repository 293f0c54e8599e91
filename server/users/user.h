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

/* SELECT list of a user, in the order user_json() reads it. */
#define USER_COLS                                                                                  \
    "id, email, display_name, timezone, daily_target_ml, " TS("created_at") ", " TS("updated_at")
#define USER_NCOLS 7

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
