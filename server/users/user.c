/* user: see user.h. */
#include "user.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "../app.h"

static json_t *str_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

const char *const user_volume_units[] = {"ml", "oz", NULL};

json_t *user_json(const PGresult *res, int row)
{
    return json_pack(
        "{s:s, s:s, s:o, s:s, s:I, s:s, s:s, s:o, s:s}", "id", PQgetvalue(res, row, 0), "email",
        PQgetvalue(res, row, 1), "display_name", str_or_null(res, row, 2), "timezone",
        PQgetvalue(res, row, 3), "daily_target_ml", (json_int_t)atoll(PQgetvalue(res, row, 4)),
        "created_at", PQgetvalue(res, row, 5), "updated_at", PQgetvalue(res, row, 6),
        "default_subject_id", str_or_null(res, row, 7), "volume_unit", PQgetvalue(res, row, 8));
}

const char *user_timezone_check(const char *zone, const void *app)
{
    return app_timezone_valid(app, zone) ? NULL : "must be an IANA time zone such as Europe/Paris";
}

bool user_zones_ready(json_t *body, const struct app *app)
{
    return atomic_load(&app->timezones_loaded) || !json_object_get(body, "timezone");
}
