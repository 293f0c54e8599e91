/* Profile routes: read and change the user, delete the account, export everything. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../auth/auth.h"
#include "../auth/auth_store.h"
#include "../auth/sessions.h"
#include "../events.h"
#include "../guards.h"
#include "../ids.h"
#include "../problems.h"
#include "../users/user.h"
#include "pl/buf.h"
#include "pl/json.h"
#include "pl/log.h"
#include "pl/time.h"
#include "profile.h"

/* ---- GET /me ---- */

/* The user, or for a caller without the read scope (a write-only token's PATCH, {}
 * included) 204 and no body. */
static void answer_user(struct pl_http_request *req, json_t *user)
{
    pl_resp_header(req, "Cache-Control", "no-store");
    if (!(req_principal(req)->scopes & SCOPE_READ)) {
        json_decref(user);
        pl_respond(req, 204, NULL, NULL, 0);
        return;
    }
    pl_respond_json(req, 200, user);
}

static void on_user(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "user load")) return;
    if (PQntuples(results[0]) != 1) { /* deleted while the credential was checked */
        reply_account_gone(req);
        return;
    }
    answer_user(req, user_json(results[0], 0));
}

static void do_get(struct pl_http_request *req)
{
    const char *v[] = {req_principal(req)->user_id};
    store_query(req, "profile_get", 1, v, on_user, req);
}

/* ---- PATCH /me ---- */

static const char *const me_read_only[] = {"id", "email", "created_at", "updated_at", NULL};
static const char *uuid_check(const char *value)
{
    return ids_is_uuid(value) ? NULL : "must be a subject id (UUID)";
}
static const struct pl_jfield patch_fields[] = {
    USER_FIELD_DISPLAY_NAME,
    USER_FIELD_TIMEZONE,
    {.name = "daily_target_ml", .type = PL_J_INT, .min = 0, .max = 10000},
    {.name = "default_subject_id", .type = PL_J_STRING, .min = 36, .max = 36, .check = uuid_check},
    USER_FIELD_VOLUME_UNIT,
};
static const struct pl_jschema patch_schema = {patch_fields, 5, me_read_only};
static const struct body_rules patch_rules = {.schema = &patch_schema, .ready = user_zones_ready};

/* Row of profile_patch: the user (USER_NCOLS columns), then these. */
enum {
    P_ROLE = USER_NCOLS,
    P_REACH,
    P_DONE,
    P_SUBJECT,
    P_MEMBERS,
    P_OUTBOX_USER,
    P_OUTBOX_SUBJECT
};

static void on_patched(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "user update")) return;
    const PGresult *r = results[0];
    if (PQntuples(r) != 1) {
        reply_account_gone(req);
        return;
    }
    if (PQgetvalue(r, 0, P_DONE)[0] != 't') {
        json_t *body = req_json(req);
        if (json_object_get(body, "default_subject_id") &&
            (PQgetisnull(r, 0, P_ROLE) || PQgetvalue(r, 0, P_REACH)[0] != 't'))
            reply_invalid(req, "default_subject_id", "must be a subject you belong to");
        else
            pl_respond_problem(req, 403,
                               "daily_target_ml is the default subject's: only its owners can "
                               "change it",
                               NULL);
        return;
    }
    json_t *user = user_json(r, 0);
    char *text = json_dumps(user, JSON_COMPACT);
    if (text) {
        const char *uid = req_principal(req)->user_id;
        events_publish_for(req, PQgetvalue(r, 0, P_OUTBOX_USER), NULL,
                           pl_req_printf(req, "{%s}", uid), "profile.updated", text);
        free(text);
    }
    if (!PQgetisnull(r, 0, P_MEMBERS))
        events_publish_for(req, PQgetvalue(r, 0, P_OUTBOX_SUBJECT), PQgetvalue(r, 0, 7),
                           PQgetvalue(r, 0, P_MEMBERS), "subject.updated",
                           PQgetvalue(r, 0, P_SUBJECT));
    answer_user(req, user);
}

static void do_patch(struct pl_http_request *req)
{
    json_t *body = req_json(req);
    if (json_object_size(body) == 0) { /* PATCH {}: a no-op that leaves updated_at alone */
        do_get(req);
        return;
    }
    json_t *dn = json_object_get(body, "display_name");
    json_t *tz = json_object_get(body, "timezone");
    json_t *target = json_object_get(body, "daily_target_ml");
    json_t *def = json_object_get(body, "default_subject_id");
    json_t *unit = json_object_get(body, "volume_unit");
    const char *v[] = {
        req_principal(req)->user_id,
        dn ? "true" : "false",
        json_string_value(dn),
        tz ? "true" : "false",
        json_string_value(tz),
        target ? "true" : "false",
        target ? pl_req_printf(req, "%lld", (long long)json_integer_value(target)) : NULL,
        def ? "true" : "false",
        json_string_value(def),
        req_principal(req)->subject_ids,
        unit ? "true" : "false",
        json_string_value(unit),
    };
    store_query(req, "profile_patch", 12, v, on_patched, req);
}

/* ---- DELETE /me ---- */

static const struct pl_jfield delete_fields[] = {
    {.name = "password", .type = PL_J_STRING, .flags = PL_JF_REQUIRED, .min = 0, .max = 1024},
};
static const struct pl_jschema delete_schema = {delete_fields, 1, NULL};
static const struct body_rules delete_rules = {.schema = &delete_schema};

static void on_all_revoked(int status, int count, void *ctx)
{
    struct pl_http_request *req = ctx;
    /* The rows are gone already: a Redis failure here leaves sessions that point at no
     * user, which fail on their next use (the user lookup finds nothing). */
    auth_publish_revocation(req, AUTH_REVOKE_ALL, NULL);
    clear_session_cookie(req);
    pl_respond(req, 204, NULL, NULL, 0);
}

static void on_deleted(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "account delete")) return;
    /* the circles hear of it: subjects deleted with the account, and members leaving */
    const PGresult *r = results[0];
    const char *uid = req_principal(req)->user_id;
    for (int i = 0; i < PQntuples(r); i++) {
        if (PQgetisnull(r, i, 3)) continue;
        bool deleted = PQgetvalue(r, i, 0)[0] == 't';
        events_publish_for(req, PQgetvalue(r, i, 4), PQgetvalue(r, i, 1), PQgetvalue(r, i, 3),
                           deleted ? "subject.deleted" : "member.left",
                           deleted ? PQgetvalue(r, i, 2)
                                   : pl_req_printf(req, "{\"user_id\":\"%s\"}", uid));
    }
    events_forget_user(req_worker(req), uid);
    sessions_revoke(req_worker(req), req_principal(req)->user_id, REVOKE_ALL, NULL, on_all_revoked,
                    req);
}

static void delete_account(struct pl_http_request *req)
{
    /* One statement: the user and, by ON DELETE CASCADE, everything they own. */
    const char *v[] = {req_principal(req)->user_id};
    store_query(req, "profile_delete", 1, v, on_deleted, req);
}

static void do_delete(struct pl_http_request *req)
{
    auth_verify_own_password(req, json_string_value(json_object_get(req_json(req), "password")),
                             "the password is wrong", delete_account);
}

/* ---- GET /me/export: streamed page by page, never the whole document in memory ---- */

enum export_phase { EX_NOTES, EX_FEEDINGS, EX_DONE };

struct export
{
    struct pl_http_request *req;
    enum export_phase phase;
    bool first; /* no comma before the first item of an array */
    char c1[64], c2[64], c3[64];
    bool have_cursor;
};

static void export_next(struct export *ex);

static void export_fail(struct export *ex, int status)
{
    pl_warn("export failed half-way", PL_STR("request_id", pl_req_id(ex->req)),
            PL_STR("error", pl_strerror(status)));
    pl_respond_stream_abort(ex->req);
}

static void on_drained(struct pl_http_request *req, bool alive, void *arg)
{
    struct export *ex = arg;
    if (!alive) {
        pl_respond_stream_abort(req);
        return;
    }
    export_next(ex);
}

static void on_page(int status, PGresult **results, int n, void *ctx)
{
    struct export *ex = ctx;
    struct pl_http_request *req = ex->req;
    if (status) {
        export_fail(ex, status);
        return;
    }
    const PGresult *r = results[0];
    int rows = PQntuples(r);
    struct pl_buf b;
    pl_buf_init(&b);
    for (int i = 0; i < rows; i++) {
        if (!ex->first) pl_buf_append(&b, ",", 1);
        ex->first = false;
        pl_buf_append(&b, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0));
    }
    if (rows > 0) {
        int last = rows - 1;
        if (ex->phase == EX_NOTES) {
            snprintf(ex->c1, sizeof ex->c1, "%s", PQgetvalue(r, last, 1));
            snprintf(ex->c2, sizeof ex->c2, "%s", PQgetvalue(r, last, 2));
            snprintf(ex->c3, sizeof ex->c3, "%s", PQgetvalue(r, last, 3));
        } else {
            snprintf(ex->c1, sizeof ex->c1, "%s", PQgetvalue(r, last, 1));
            snprintf(ex->c2, sizeof ex->c2, "%s", PQgetvalue(r, last, 2));
        }
        ex->have_cursor = true;
    }
    if (rows < EXPORT_PAGE) {
        pl_buf_puts(&b, ex->phase == EX_NOTES ? "],\"feedings\":[" : "]}");
        ex->phase = ex->phase == EX_NOTES ? EX_FEEDINGS : EX_DONE;
        ex->first = true;
        ex->have_cursor = false;
    }
    pl_respond_stream_write(req, b.data, b.len);
    pl_buf_dispose(&b);
    if (ex->phase == EX_DONE) {
        pl_respond_stream_end(req);
        return;
    }
    pl_respond_stream_on_drain(req, on_drained, ex);
}

static void export_next(struct export *ex)
{
    struct pl_http_request *req = ex->req;
    const char *uid = req_principal(req)->user_id;
    int rc;
    if (ex->phase == EX_NOTES) {
        const char *v[] = {uid, ex->have_cursor ? ex->c1 : NULL, ex->have_cursor ? ex->c2 : NULL,
                           ex->have_cursor ? ex->c3 : NULL};
        rc = pl_pg_exec1(req_worker(req)->pg, "export_notes", 4, v, on_page, ex);
    } else {
        const char *v[] = {uid, ex->have_cursor ? ex->c1 : NULL, ex->have_cursor ? ex->c2 : NULL};
        rc = pl_pg_exec1(req_worker(req)->pg, "export_feedings", 3, v, on_page, ex);
    }
    if (rc) export_fail(ex, PL_E_UNAVAILABLE);
}

static void on_export_head(int status, PGresult **results, int n, void *ctx)
{
    struct export *ex = ctx;
    struct pl_http_request *req = ex->req;
    if (reply_failed(req, status, "export")) return;
    if (PQntuples(results[0]) != 1) {
        reply_account_gone(req);
        return;
    }
    char now[32];
    pl_time_format_rfc3339(pl_time_now_us(), now);
    json_t *tokens = json_array();
    for (int i = 0; i < PQntuples(results[1]); i++)
        json_array_append_new(tokens, token_json(results[1], i));
    json_t *user = user_json(results[0], 0);
    char *user_text = json_dumps(user, JSON_COMPACT | JSON_ENSURE_ASCII);
    char *tokens_text = json_dumps(tokens, JSON_COMPACT | JSON_ENSURE_ASCII);
    struct pl_buf subjects;
    pl_buf_init(&subjects);
    for (int i = 0; i < PQntuples(results[2]); i++) {
        if (i) pl_buf_append(&subjects, ",", 1);
        pl_buf_append(&subjects, PQgetvalue(results[2], i, 0),
                      (size_t)PQgetlength(results[2], i, 0));
    }
    pl_buf_append(&subjects, "", 1);
    json_decref(user);
    json_decref(tokens);
    pl_resp_header(req, "Content-Disposition", "attachment; filename=\"pulse-export.json\"");
    pl_resp_header(req, "Cache-Control", "no-store");
    pl_respond_stream_start(req, 200, "application/json");
    if (pl_req_method(req) == PL_M_HEAD) {
        free(user_text);
        free(tokens_text);
        pl_buf_dispose(&subjects);
        pl_respond_stream_end(req);
        return;
    }
    char *head = pl_req_printf(
        req, "{\"exported_at\":\"%s\",\"user\":%s,\"tokens\":%s,\"subjects\":[%s],\"notes\":[", now,
        user_text, tokens_text, subjects.data);
    free(user_text);
    free(tokens_text);
    pl_buf_dispose(&subjects);
    pl_respond_stream_write(req, head, strlen(head));
    ex->phase = EX_NOTES;
    ex->first = true;
    export_next(ex);
}

static void do_export(struct pl_http_request *req)
{
    struct export *ex = pl_req_alloc(req, sizeof *ex);
    memset(ex, 0, sizeof *ex);
    ex->req = req;
    const char *v[] = {req_principal(req)->user_id};
    struct pl_pg_stmt stmts[] = {{"profile_get", 1, v, NULL},
                                 {"auth_token_list", 1, v, NULL},
                                 {"export_subjects", 1, v, NULL}};
    store_batch(req, stmts, 3, on_export_head, ex);
}

struct pl_route profile_routes[] = {
    {.method = PL_M_GET, .pattern = "/api/v1/me", .handler = do_get, .flags = ROUTE_AUTH},
    {.method = PL_M_PATCH,
     .pattern = "/api/v1/me",
     .handler = do_patch,
     .flags = ROUTE_AUTH | ROUTE_JSON,
     .data = ROUTE_BODY(&patch_rules)},
    {.method = PL_M_DELETE,
     .pattern = "/api/v1/me",
     .handler = do_delete,
     .flags = ROUTE_AUTH | ROUTE_SESSION_ONLY | ROUTE_JSON,
     .data = ROUTE_BODY(&delete_rules)},
    {.method = PL_M_GET,
     .pattern = "/api/v1/me/export",
     .handler = do_export,
     .flags = ROUTE_AUTH | ROUTE_RATE_EXPORT | ROUTE_USER_WIDE},
    {0},
};
