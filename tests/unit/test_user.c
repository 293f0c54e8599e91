/* The user fields shared by registration and PATCH /me (server/users): the time zone is
 * checked against the app's zone list, which reaches the check as the validation context
 * (pl_json_validate_ctx), and a body naming a zone waits for that list to be loaded. */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "test.h"
#include "users/user.h"

static const struct pl_jfield fields[] = {USER_FIELD_DISPLAY_NAME, USER_FIELD_TIMEZONE};
static const struct pl_jschema schema = {fields, 2, NULL};

/* "" when the body is valid, else the first error's "field: message". */
static const char *first_error(struct app *app, const char *body)
{
    static char out[160];
    json_t *obj = json_loads(body, 0, NULL);
    json_t *errors = pl_json_validate_ctx(obj, &schema, app);
    json_t *e = json_array_get(errors, 0);
    snprintf(out, sizeof out, "%s%s%s", e ? json_string_value(json_object_get(e, "field")) : "",
             e ? ": " : "", e ? json_string_value(json_object_get(e, "message")) : "");
    json_decref(errors);
    json_decref(obj);
    return out;
}

TEST(timezone_against_the_apps_list)
{
    static char *zones[] = {"America/New_York", "Europe/Paris", "UTC"}; /* sorted */
    struct app app;
    memset(&app, 0, sizeof app);
    app.timezones = zones;
    app.ntimezones = 3;
    atomic_store(&app.timezones_loaded, true);
    static const struct {
        const char *body, *want;
    } cases[] = {
        {"{\"timezone\":\"Europe/Paris\"}", ""},
        {"{\"timezone\":\"UTC\"}", ""},
        {"{\"display_name\":null,\"timezone\":\"America/New_York\"}", ""},
        {"{\"timezone\":\"Europe/Lyon\"}",
         "timezone: must be an IANA time zone such as Europe/Paris"},
        {"{\"timezone\":\"europe/paris\"}",
         "timezone: must be an IANA time zone such as Europe/Paris"},
        {"{\"timezone\":\"\"}", "timezone: must not be empty"},
        {"{\"timezone\":5}", "timezone: must be a string"},
        {"{\"display_name\":\"\"}", "display_name: must not be empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = first_error(&app, cases[i].body);
        if (strcmp(got, cases[i].want) != 0)
            fprintf(stderr, "  %s: got \"%s\"\n", cases[i].body, got);
        CHECK_STR(got, cases[i].want);
    }
    /* Another app, another list: the check reads the one it is given. */
    static char *other[] = {"Europe/Lyon"};
    struct app app2;
    memset(&app2, 0, sizeof app2);
    app2.timezones = other;
    app2.ntimezones = 1;
    atomic_store(&app2.timezones_loaded, true);
    CHECK_STR(first_error(&app2, "{\"timezone\":\"Europe/Lyon\"}"), "");
    CHECK_STR(first_error(&app2, "{\"timezone\":\"Europe/Paris\"}"),
              "timezone: must be an IANA time zone such as Europe/Paris");
}

TEST(zones_not_loaded_yet)
{
    struct app app;
    memset(&app, 0, sizeof app);
    json_t *with = json_pack("{s:s}", "timezone", "UTC");
    json_t *with_null = json_pack("{s:n}", "timezone");
    json_t *without = json_pack("{s:s}", "display_name", "x");
    CHECK(!user_zones_ready(with, &app));
    CHECK(!user_zones_ready(with_null, &app));
    CHECK(user_zones_ready(without, &app));
    atomic_store(&app.timezones_loaded, true);
    CHECK(user_zones_ready(with, &app));
    json_decref(with);
    json_decref(with_null);
    json_decref(without);
}

int main(void)
{
    RUN(timezone_against_the_apps_list);
    RUN(zones_not_loaded_yet);
    return TEST_REPORT();
}
