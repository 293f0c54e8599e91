/* Feedings routes: HTTP glue over records/ and feedings_store.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../guards.h"
#include "../ids.h"
#include "../problems.h"
#include "../records/records.h"
#include "../records/records_store.h"
#include "feedings.h"
#include "pl/cursor.h"
#include "pl/time.h"

#define FUTURE_SLACK_US (5LL * 60 * 1000000) /* given_at may be at most 5 minutes ahead */

static const char *const kinds[] = {"formula",    "milk",  "water",       "food",
                                    "medication", "other", "breast_milk", "fortified_breast_milk",
                                    NULL};
static const char *const methods[] = {"breast_left", "breast_right", "breast_both", "bottle",
                                      "parent_fed",  "self_fed",     "tube",        NULL};
#define AMOUNT_RULE "is required unless method is breast_left, breast_right or breast_both"
static const char *const feeding_read_only[] = {"id",         "version",    "created_by",
                                                "created_at", "updated_at", NULL};
/* A feeding stays with its subject: subject_id is set at creation only. */
static const char *const feeding_patch_read_only[] = {
    "id", "subject_id", "version", "created_by", "created_at", "updated_at", NULL};

/* amount_ml may be null (or absent) for breast methods only: checked after the schema on a
 * create, and on the merged row of a PATCH by the table's CHECK (feedings_amount_required)
 * in the update statement itself. */
#define FEEDING_FIELDS                                                                             \
    {.name = "amount_ml", .type = PL_J_INT, .flags = PL_JF_NULLABLE, .min = 1, .max = 2000},       \
        {.name = "kind", .type = PL_J_STRING, .one_of = kinds},                                    \
        {.name = "given_at", .type = PL_J_TIMESTAMP},                                              \
        {.name = "note", .type = PL_J_STRING, .flags = PL_JF_NULLABLE, .min = 0, .max = 1000},     \
        {.name = "method", .type = PL_J_STRING, .flags = PL_JF_NULLABLE, .one_of = methods},       \
    {                                                                                              \
        .name = "duration_s", .type = PL_J_INT, .flags = PL_JF_NULLABLE, .min = 0, .max = 21600    \
    }

static const struct pl_jfield create_fields[] = {
    FEEDING_FIELDS, {.name = "subject_id", .type = PL_J_STRING, .check = record_subject_id_check}};
static const struct pl_jfield patch_fields[] = {FEEDING_FIELDS};
static const struct pl_jschema create_schema = {create_fields, 7, feeding_read_only};
static const struct pl_jschema patch_schema = {patch_fields, 6, feeding_patch_read_only};
static const struct body_rules create_rules = {.schema = &create_schema};
static const struct body_rules patch_rules = {.schema = &patch_schema};

/* amount, kind, given_at (+ the note as the caller wants it). The schema has checked the
 * shapes; what is left is the clock: not more than 5 minutes in the future. given_at goes
 * to SQL as the microseconds we parsed, never as the client's text. */
static bool is_breast(const char *method)
{
    return method && strncmp(method, "breast_", 7) == 0;
}

/* An integer member as text, NULL when absent or null. */
static const char *int_param(struct pl_http_request *req, json_t *body, const char *name)
{
    json_t *v = json_object_get(body, name);
    return json_is_integer(v) ? pl_req_printf(req, "%lld", (long long)json_integer_value(v)) : NULL;
}

static json_t *common_params(struct pl_http_request *req, json_t *body, const char **v)
{
    v[0] = int_param(req, body, "amount_ml");
    v[1] = json_string_value(json_object_get(body, "kind"));
    const char *given_at = json_string_value(json_object_get(body, "given_at"));
    int64_t at;
    v[2] = NULL;
    if (!given_at) return NULL;
    if (pl_time_parse_rfc3339(given_at, &at) != 0) /* the schema checked it: not reached */
        return json_pack("[{s:s, s:s}]", "field", "given_at", "message", "not a timestamp");
    if (at > pl_time_now_us() + FUTURE_SLACK_US)
        return json_pack("[{s:s, s:s}]", "field", "given_at", "message",
                         "must not be more than 5 minutes in the future");
    v[2] = pl_req_printf(req, "%lld", (long long)at);
    return NULL;
}

/* $4 amount, $5 kind (NULL: breast_milk for a breast method, else food), $6 given_at,
 * $7 note, $8 method, $9 duration_s. */
static json_t *create_params(struct pl_http_request *req, json_t *body, const char **v)
{
    json_t *errors = common_params(req, body, v);
    v[3] = json_string_value(json_object_get(body, "note")); /* null = absent */
    v[4] = json_string_value(json_object_get(body, "method"));
    v[5] = int_param(req, body, "duration_s");
    if (!v[0] && !is_breast(v[4])) problems_add(&errors, "amount_ml", AMOUNT_RULE);
    return errors;
}

/* $5 amount_ml sent, $6 amount, $7 kind, $8 given_at, $9 note sent, $10 note, $11 method
 * sent, $12 method, $13 duration_s sent, $14 duration_s: null clears a nullable field. The
 * amount rule on the merged row is the table's CHECK, raised by the update itself. */
static json_t *update_params(struct pl_http_request *req, json_t *body, const char **v)
{
    json_t *amount = json_object_get(body, "amount_ml");
    json_t *errors = common_params(req, body, v + 1);
    v[0] = amount ? "true" : "false";
    json_t *note = json_object_get(body, "note");
    v[4] = note ? "true" : "false";
    v[5] = json_string_value(note);
    json_t *method = json_object_get(body, "method");
    v[6] = method ? "true" : "false";
    v[7] = json_string_value(method);
    v[8] = json_object_get(body, "duration_s") ? "true" : "false";
    v[9] = int_param(req, body, "duration_s");
    /* what the body alone shows is refused before the statement */
    if (json_is_null(amount) && method && !is_breast(v[7]))
        problems_add(&errors, "amount_ml", AMOUNT_RULE);
    return errors;
}

static const struct record_kind feeding_kind = {
    .name = "feeding",
    .path = "/api/v1/feedings",
    RECORD_STATEMENTS("feedings"),
    .ncreate = 6,
    .nupdate = 10,
    .check_field = "amount_ml",
    .check_message = AMOUNT_RULE,
    .create_params = create_params,
    .update_params = update_params,
};

RECORD_HANDLERS(feeding_kind)

/* ---- list ---- */

/* An RFC 3339 query parameter as microseconds text, NULL when absent; false after a 400. */
static bool time_param(struct pl_http_request *req, const char *name, const char **out)
{
    const char *v;
    *out = NULL;
    if (!pl_req_query_param(req, name, &v)) return false;
    if (!v) return true;
    int64_t us;
    if (pl_time_parse_rfc3339(v, &us) != 0) {
        pl_respond_problem(
            req, 400, pl_req_printf(req, "%s must be an RFC 3339 timestamp with an offset", name),
            NULL);
        return false;
    }
    *out = pl_req_printf(req, "%lld", (long long)us);
    return true;
}

static void do_list(struct pl_http_request *req)
{
    int limit = record_limit(req); /* answered (and freed) the request when < 0 */
    if (limit < 0) return;
    const char *from, *to;
    if (!time_param(req, "from", &from) || !time_param(req, "to", &to)) return;
    const char *kind, *cursor;
    if (!pl_req_query_param(req, "kind", &kind) || !pl_req_query_param(req, "cursor", &cursor))
        return;
    bool kind_ok = !kind;
    for (int i = 0; kind && kinds[i]; i++)
        kind_ok |= strcmp(kind, kinds[i]) == 0;
    if (!kind_ok) {
        pl_respond_problem(req, 400,
                           "kind must be one of formula, milk, water, food, medication, other, "
                           "breast_milk, fortified_breast_milk",
                           NULL);
        return;
    }
    char *f[2];
    char buf[PL_CURSOR_MAX + 1];
    if (cursor) {
        if (pl_cursor_decode(cursor, f, 2, buf, sizeof buf) != 0 || !record_cursor_us_ok(f[0]) ||
            !ids_is_uuid(f[1])) {
            pl_respond_problem(req, 400, "cursor is not valid", NULL);
            return;
        }
    }
    const char *subject;
    if (!record_subject_param(req, &subject)) return;
    /* $1 user, $2 subject, $3 token's subjects, $4 from, $5 to, $6 limit, then the kind and
     * the cursor when given */
    const char *v[9] = {
        req_principal(req)->user_id,        subject, record_token_subjects(req), from, to,
        pl_req_printf(req, "%d", limit + 1)};
    int n = 6;
    if (kind) v[n++] = kind;
    if (cursor) {
        v[n++] = f[0];
        v[n++] = f[1];
    }
    static const char *const names[2][2] = {{"feedings_list", "feedings_list_after"},
                                            {"feedings_kind", "feedings_kind_after"}};
    record_list_exec(req, limit, 2, names[kind != NULL][cursor != NULL], n, v);
}

/* ---- today and stats: one row of JSON built by Postgres ---- */

static void on_json_row(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "feedings summary")) return;
    if (PQntuples(results[0]) != 1) {
        record_no_subject(req);
        return;
    }
    pl_resp_header(req, "Cache-Control", "no-store");
    pl_respond(req, 200, "application/json", PQgetvalue(results[0], 0, 0),
               (size_t)PQgetlength(results[0], 0, 0));
}

static void do_today(struct pl_http_request *req)
{
    const char *subject;
    if (!record_subject_param(req, &subject)) return;
    const char *v[] = {req_principal(req)->user_id, subject, record_token_subjects(req)};
    store_query(req, "feedings_today", 3, v, on_json_row, req);
}

static void do_stats(struct pl_http_request *req)
{
    long days;
    const char *subject;
    if (!pl_req_query_int(req, "days", 1, 365, 30, &days) || !record_subject_param(req, &subject))
        return;
    const char *v[] = {req_principal(req)->user_id, subject, record_token_subjects(req),
                       pl_req_printf(req, "%ld", days)};
    store_query(req, "feedings_stats", 4, v, on_json_row, req);
}

/* ?date=YYYY-MM-DD, a real calendar date (years 1..9999), into *out (NULL when absent: the
 * subject's today); false after answering 400. */
static bool date_param(struct pl_http_request *req, const char **out)
{
    const char *v;
    *out = NULL;
    if (!pl_req_query_param(req, "date", &v)) return false;
    if (!v) return true;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool ok = strlen(v) == 10 && v[4] == '-' && v[7] == '-';
    for (int i = 0; ok && i < 10; i++)
        ok = i == 4 || i == 7 || (v[i] >= '0' && v[i] <= '9');
    if (ok) {
        int y = atoi(v), m = atoi(v + 5), d = atoi(v + 8);
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        ok = y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= mdays[m - 1] &&
             (m != 2 || d < 29 || leap);
    }
    if (!ok) {
        pl_respond_problem(req, 400, "date must be a calendar date YYYY-MM-DD", NULL);
        return false;
    }
    *out = v;
    return true;
}

static void do_timeline(struct pl_http_request *req)
{
    const char *subject, *date;
    if (!record_subject_param(req, &subject) || !date_param(req, &date)) return;
    const char *v[] = {req_principal(req)->user_id, subject, record_token_subjects(req), date};
    store_query(req, "feedings_timeline", 4, v, on_json_row, req);
}

struct pl_route feedings_routes[] = {
    {.method = PL_M_GET, .pattern = "/api/v1/feedings", .handler = do_list, .flags = ROUTE_AUTH},
    RECORD_CREATE_ROUTE("/api/v1/feedings", &create_rules),
    {.method = PL_M_GET,
     .pattern = "/api/v1/feedings/today",
     .handler = do_today,
     .flags = ROUTE_AUTH},
    {.method = PL_M_GET,
     .pattern = "/api/v1/feedings/timeline",
     .handler = do_timeline,
     .flags = ROUTE_AUTH},
    RECORD_ID_ROUTES("/api/v1/feedings", &patch_rules),
    {.method = PL_M_GET,
     .pattern = "/api/v1/stats/feedings",
     .handler = do_stats,
     .flags = ROUTE_AUTH},
    {0},
};
