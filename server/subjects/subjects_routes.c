/* Care circles: subjects, their members and invitations. HTTP glue over subjects_store.c:
 * each request is one statement that checks the caller's membership and role itself, and
 * answers, in the contract's order, 404 (not a member) → 403 (role) → 412/409. */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../app.h"
#include "../events.h"
#include "../guards.h"
#include "../ids.h"
#include "../problems.h"
#include "../records/records.h"
#include "../users/user.h"
#include "pl/buf.h"
#include "pl/json.h"
#include "subjects.h"

/* ---- bodies ---- */

static const char *const kinds[] = {"baby", "child", "adult", "cat", "dog", "pet", "other", NULL};
static const char *const invite_roles[] = {"caregiver", "viewer", NULL};
static const char *const member_roles[] = {"owner", "caregiver", "viewer", NULL};
static const char *const subject_read_only[] = {
    "id", "role", "member_count", "version", "created_at", "updated_at", NULL};

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

const char *subjects_date_check(const char *s)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *msg = "must be a date YYYY-MM-DD";
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return msg;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return msg;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    if (y < 1 || m < 1 || m > 12 || d < 1) return msg;
    int max = mdays[m - 1] + (m == 2 && leap(y));
    return d > max ? msg : NULL;
}

#define SUBJECT_FIELDS_RULES(required)                                                             \
    {.name = "name", .type = PL_J_STRING, .flags = (required), .min = 1, .max = 80},               \
        {.name = "kind", .type = PL_J_STRING, .min = 1, .max = 10, .one_of = kinds},               \
        {.name = "birth_date",                                                                     \
         .type = PL_J_STRING,                                                                      \
         .flags = PL_JF_NULLABLE,                                                                  \
         .min = 10,                                                                                \
         .max = 10,                                                                                \
         .check = subjects_date_check},                                                            \
        USER_FIELD_TIMEZONE,                                                                       \
    {                                                                                              \
        .name = "daily_target_ml", .type = PL_J_INT, .min = 0, .max = 10000                        \
    }

static const struct pl_jfield create_fields[] = {SUBJECT_FIELDS_RULES(PL_JF_REQUIRED)};
static const struct pl_jfield patch_fields[] = {SUBJECT_FIELDS_RULES(0)};
static const struct pl_jschema create_schema = {create_fields, 5, subject_read_only};
static const struct pl_jschema patch_schema = {patch_fields, 5, subject_read_only};
static const struct body_rules create_rules = {.schema = &create_schema, .ready = user_zones_ready};
static const struct body_rules patch_rules = {.schema = &patch_schema, .ready = user_zones_ready};

static const struct pl_jfield member_fields[] = {
    {.name = "role",
     .type = PL_J_STRING,
     .flags = PL_JF_REQUIRED,
     .one_of = member_roles,
     .max = 10},
};
static const char *const member_read_only[] = {"user_id", "display_name", "email", "joined_at",
                                               NULL};
static const struct pl_jschema member_schema = {member_fields, 1, member_read_only};
static const struct body_rules member_rules = {.schema = &member_schema};

static const char *const invitation_read_only[] = {"id",         "code",       "expires_at",
                                                   "created_at", "created_by", NULL};
static const struct pl_jfield invitation_fields[] = {
    {.name = "role",
     .type = PL_J_STRING,
     .flags = PL_JF_REQUIRED,
     .one_of = invite_roles,
     .max = 10},
    {.name = "expires_in_hours", .type = PL_J_INT, .min = 1, .max = 168},
};
static const struct pl_jschema invitation_schema = {invitation_fields, 2, invitation_read_only};
static const struct body_rules invitation_rules = {.schema = &invitation_schema};

static const struct pl_jfield accept_fields[] = {
    {.name = "code", .type = PL_J_STRING, .flags = PL_JF_REQUIRED, .min = 1, .max = 200},
};
static const struct pl_jschema accept_schema = {accept_fields, 1, NULL};
static const struct body_rules accept_rules = {.schema = &accept_schema};

/* ---- shared ---- */

static const char *int_text(struct pl_http_request *req, json_t *v)
{
    return json_is_integer(v) ? pl_req_printf(req, "%lld", (long long)json_integer_value(v)) : NULL;
}

static void no_subject(struct pl_http_request *req)
{
    pl_respond_problem(req, 404, "no such subject", NULL);
}

static void not_owner(struct pl_http_request *req)
{
    pl_respond_problem(req, 403, "only an owner of the subject can do this", NULL);
}

/* The subject id of the path, checked for its shape (answered 404 when it is no UUID). */
static const char *subject_param(struct pl_http_request *req)
{
    const char *id = pl_req_param(req, "id");
    if (ids_is_uuid(id)) return id;
    no_subject(req);
    return NULL;
}

/* $1 the caller, $2 the token's subjects, $3 the subject: the fixed parameters. */
static void fixed_params(struct pl_http_request *req, const char *subject_id, const char **v)
{
    const struct principal *p = req_principal(req);
    v[0] = p->user_id;
    v[1] = p->subject_ids;
    v[2] = subject_id;
}

static bool is_owner(const PGresult *r)
{
    return strcmp(PQgetvalue(r, 0, 0), "owner") == 0;
}

static void set_etag(struct pl_http_request *req, const char *version)
{
    pl_resp_header(req, "ETag", pl_req_printf(req, "\"%s\"", version));
}

static void respond_text(struct pl_http_request *req, int status, const PGresult *r, int row,
                         int col)
{
    pl_respond(req, status, "application/json", PQgetvalue(r, row, col),
               (size_t)PQgetlength(r, row, col));
}

/* Rows of JSON text in column `col` as {"items": [...]} (rows whose column is NULL skipped). */
static void respond_items(struct pl_http_request *req, const PGresult *r, int col)
{
    struct pl_buf b;
    pl_buf_init(&b);
    pl_buf_puts(&b, "{\"items\":[");
    bool first = true;
    for (int i = 0; i < PQntuples(r); i++) {
        if (PQgetisnull(r, i, col)) continue;
        if (!first) pl_buf_append(&b, ",", 1);
        first = false;
        pl_buf_append(&b, PQgetvalue(r, i, col), (size_t)PQgetlength(r, i, col));
    }
    pl_buf_puts(&b, "]}");
    pl_respond(req, 200, "application/json", b.data, b.len);
    pl_buf_dispose(&b);
}

static void publish(struct pl_http_request *req, const char *subject_id, const PGresult *r,
                    int members_col, const char *event, const char *data)
{
    if (PQgetisnull(r, 0, members_col)) return;
    /* the statement's last column: the event's outbox row */
    events_publish_for(req, PQgetvalue(r, 0, PQnfields(r) - 1), subject_id,
                       PQgetvalue(r, 0, members_col), event, data);
}

/* ---- GET/POST /subjects ---- */

static void on_list(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "subjects list")) return;
    respond_items(req, results[0], 0);
}

static void do_list(struct pl_http_request *req)
{
    const struct principal *p = req_principal(req);
    const char *v[] = {p->user_id, p->subject_ids};
    store_query(req, "subjects_list", 2, v, on_list, req);
}

static void on_created(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "subject create")) return;
    const PGresult *r = results[0];
    if (PQntuples(r) != 1) {
        reply_account_gone(req);
        return;
    }
    if (PQgetisnull(r, 0, 0)) {
        pl_respond_problem(req, 409, "you belong to as many subjects as allowed", NULL);
        return;
    }
    pl_resp_header(req, "Location", pl_req_printf(req, "/api/v1/subjects/%s", PQgetvalue(r, 0, 0)));
    set_etag(req, PQgetvalue(r, 0, 1));
    respond_text(req, 201, r, 0, 2);
}

static void do_create(struct pl_http_request *req)
{
    json_t *body = req_json(req);
    const struct pulse_config *cfg = &req_worker(req)->app->cfg;
    const char *v[] = {req_principal(req)->user_id,
                       json_string_value(json_object_get(body, "name")),
                       json_string_value(json_object_get(body, "kind")),
                       json_string_value(json_object_get(body, "birth_date")),
                       json_string_value(json_object_get(body, "timezone")),
                       int_text(req, json_object_get(body, "daily_target_ml")),
                       pl_req_printf(req, "%lld", cfg->quota_subjects)};
    store_query(req, "subjects_create", 7, v, on_created, req);
}

/* ---- GET/PATCH/DELETE /subjects/{id} ---- */

struct change {
    struct pl_http_request *req;
    const char *id;
    const char *expect; /* If-Match version, or NULL */
};

static struct change *change_new(struct pl_http_request *req)
{
    const char *id = subject_param(req);
    if (!id) return NULL;
    struct change *c = pl_req_alloc(req, sizeof *c);
    c->req = req;
    c->id = id;
    c->expect =
        record_if_match(pl_req_header(req, "if-match"), pl_req_alloc(req, RECORD_VERSION_MAX));
    return c;
}

/* The subject as it is (GET, and PATCH {} after its checks). */
static void on_get(int status, PGresult **results, int n, void *ctx)
{
    struct change *c = ctx;
    struct pl_http_request *req = c->req;
    if (reply_failed(req, status, "subject get")) return;
    const PGresult *r = results[0];
    if (PQntuples(r) != 1) {
        no_subject(req);
        return;
    }
    if (pl_req_method(req) != PL_M_GET && pl_req_method(req) != PL_M_HEAD) {
        /* PATCH {}: the owner's, with If-Match, like any change */
        if (strcmp(PQgetvalue(r, 0, 2), "owner") != 0) {
            not_owner(req);
            return;
        }
        if (c->expect && strcmp(c->expect, PQgetvalue(r, 0, 0)) != 0) {
            pl_respond_problem(req, 412, "If-Match does not match the current version", NULL);
            return;
        }
    }
    set_etag(req, PQgetvalue(r, 0, 0));
    if (!(req_principal(req)->scopes & SCOPE_READ)) {
        pl_respond(req, 204, NULL, NULL, 0);
        return;
    }
    respond_text(req, 200, r, 0, 1);
}

static void do_get(struct pl_http_request *req)
{
    struct change *c = change_new(req);
    if (!c) return;
    const char *v[3];
    fixed_params(req, c->id, v);
    store_query(req, "subjects_get", 3, v, on_get, c);
}

static void on_patched(int status, PGresult **results, int n, void *ctx)
{
    struct change *c = ctx;
    struct pl_http_request *req = c->req;
    if (reply_failed(req, status, "subject update")) return;
    const PGresult *r = results[0];
    if (PQntuples(r) != 1) {
        no_subject(req);
        return;
    }
    if (!is_owner(r)) {
        not_owner(req);
        return;
    }
    if (PQgetisnull(r, 0, 1)) {
        pl_respond_problem(req, 412, "If-Match does not match the current version", NULL);
        return;
    }
    publish(req, c->id, r, 4, "subject.updated", PQgetvalue(r, 0, 3));
    set_etag(req, PQgetvalue(r, 0, 1));
    if (!(req_principal(req)->scopes & SCOPE_READ)) {
        pl_respond(req, 204, NULL, NULL, 0);
        return;
    }
    respond_text(req, 200, r, 0, 2);
}

static void do_patch(struct pl_http_request *req)
{
    struct change *c = change_new(req);
    if (!c) return;
    json_t *body = req_json(req);
    const char *v[10];
    fixed_params(req, c->id, v);
    if (json_object_size(body) == 0) {
        store_query(req, "subjects_get", 3, v, on_get, c);
        return;
    }
    json_t *bd = json_object_get(body, "birth_date");
    v[3] = c->expect;
    v[4] = json_string_value(json_object_get(body, "name"));
    v[5] = json_string_value(json_object_get(body, "kind"));
    v[6] = bd ? "true" : "false";
    v[7] = json_string_value(bd);
    v[8] = json_string_value(json_object_get(body, "timezone"));
    v[9] = int_text(req, json_object_get(body, "daily_target_ml"));
    store_query(req, "subjects_update", 10, v, on_patched, c);
}

static void on_deleted(int status, PGresult **results, int n, void *ctx)
{
    struct change *c = ctx;
    struct pl_http_request *req = c->req;
    if (reply_failed(req, status, "subject delete")) return;
    const PGresult *r = results[0];
    if (PQntuples(r) != 1) {
        no_subject(req);
        return;
    }
    if (!is_owner(r)) {
        not_owner(req);
        return;
    }
    if (PQgetvalue(r, 0, 1)[0] != 't') {
        pl_respond_problem(req, 412, "If-Match does not match the current version", NULL);
        return;
    }
    publish(req, c->id, r, 3, "subject.deleted", PQgetvalue(r, 0, 2));
    pl_respond(req, 204, NULL, NULL, 0);
}

static void do_delete(struct pl_http_request *req)
{
    struct change *c = change_new(req);
    if (!c) return;
    const char *v[4];
    fixed_params(req, c->id, v);
    v[3] = c->expect;
    store_query(req, "subjects_delete", 4, v, on_deleted, c);
}

/* ---- members ---- */

static void on_members(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "members list")) return;
    if (PQntuples(results[0]) == 0) {
        no_subject(req);
        return;
    }
    respond_items(req, results[0], 0);
}

static void do_members(struct pl_http_request *req)
{
    const char *id = subject_param(req);
    if (!id) return;
    const char *v[3];
    fixed_params(req, id, v);
    store_query(req, "members_list", 3, v, on_members, req);
}

/* The member of the path: a UUID, else 404 (after the subject's own shape check). */
static const char *member_param(struct pl_http_request *req)
{
    const char *uid = pl_req_param(req, "user_id");
    if (ids_is_uuid(uid)) return uid;
    pl_respond_problem(req, 404, "no such member", NULL);
    return NULL;
}

static void on_member_updated(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "member update")) return;
    const PGresult *r = results[0];
    if (PQntuples(r) != 1) {
        no_subject(req);
        return;
    }
    if (!is_owner(r)) {
        not_owner(req);
        return;
    }
    if (PQgetisnull(r, 0, 1)) {
        pl_respond_problem(req, 404, "no such member", NULL);
        return;
    }
    if (PQgetisnull(r, 0, 2)) {
        pl_respond_problem(
            req, 409, "the last owner cannot be demoted: make another member owner first", NULL);
        return;
    }
    publish(req, pl_req_param(req, "id"), r, 3, "member.updated", PQgetvalue(r, 0, 2));
    if (!(req_principal(req)->scopes & SCOPE_READ)) {
        pl_respond(req, 204, NULL, NULL, 0);
        return;
    }
    respond_text(req, 200, r, 0, 2);
}

static void do_member_patch(struct pl_http_request *req)
{
    const char *id = subject_param(req);
    if (!id) return;
    const char *uid = member_param(req);
    if (!uid) return;
    const char *v[5];
    fixed_params(req, id, v);
    v[3] = uid;
    v[4] = json_string_value(json_object_get(req_json(req), "role"));
    store_query(req, "members_update", 5, v, on_member_updated, req);
}

static void on_member_deleted(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "member delete")) return;
    const PGresult *r = results[0];
    const char *uid = pl_req_param(req, "user_id");
    if (PQntuples(r) != 1) {
        no_subject(req);
        return;
    }
    if (!is_owner(r) && strcasecmp(uid, req_principal(req)->user_id) != 0) {
        not_owner(req);
        return;
    }
    if (PQgetisnull(r, 0, 1)) {
        pl_respond_problem(req, 404, "no such member", NULL);
        return;
    }
    if (PQgetvalue(r, 0, 2)[0] != 't') {
        pl_respond_problem(req, 409, "the last owner cannot leave: make another member owner first",
                           NULL);
        return;
    }
    /* as the outbox row has it: the id in lower case */
    char *lower = pl_req_printf(req, "{\"user_id\":\"%s\"}", uid);
    for (char *p = lower; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    publish(req, pl_req_param(req, "id"), r, 3, "member.left", lower);
    pl_respond(req, 204, NULL, NULL, 0);
}

static void do_member_delete(struct pl_http_request *req)
{
    const char *id = subject_param(req);
    if (!id) return;
    const char *uid = member_param(req);
    if (!uid) return;
    const char *v[4];
    fixed_params(req, id, v);
    v[3] = uid;
    store_query(req, "members_delete", 4, v, on_member_deleted, req);
}

/* ---- invitations ---- */

#define CODE_BYTES 24 /* 192 random bits */
#define CODE_LEN   32 /* base64url of them, no padding */

static void code_hash_hex(const char *code, char hex[crypto_hash_sha256_BYTES * 2 + 1])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)code, strlen(code));
    sodium_bin2hex(hex, crypto_hash_sha256_BYTES * 2 + 1, h, sizeof h);
}

struct invite {
    struct pl_http_request *req;
    char code[CODE_LEN + 1];
};

static void on_invited(int status, PGresult **results, int n, void *ctx)
{
    struct invite *iv = ctx;
    struct pl_http_request *req = iv->req;
    if (reply_failed(req, status, "invitation create")) return;
    const PGresult *r = results[0];
    if (PQntuples(r) != 1) {
        no_subject(req);
        return;
    }
    if (!is_owner(r)) {
        not_owner(req);
        return;
    }
    if (PQgetisnull(r, 0, 1)) {
        pl_respond_problem(req, 409, "this subject has as many pending invitations as allowed",
                           NULL);
        return;
    }
    json_t *inv = json_loads(PQgetvalue(r, 0, 2), 0, NULL);
    if (!inv) {
        reply_failure(req, PL_E_INVALID, "invitation json");
        return;
    }
    json_object_set_new(inv, "code", json_string(iv->code));
    pl_resp_header(req, "Cache-Control", "no-store");
    pl_resp_header(req, "Location",
                   pl_req_printf(req, "/api/v1/subjects/%s/invitations/%s", pl_req_param(req, "id"),
                                 PQgetvalue(r, 0, 1)));
    pl_respond_json(req, 201, inv);
}

static void do_invite(struct pl_http_request *req)
{
    const char *id = subject_param(req);
    if (!id) return;
    json_t *body = req_json(req);
    struct invite *iv = pl_req_alloc(req, sizeof *iv);
    iv->req = req;
    unsigned char raw[CODE_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(iv->code, sizeof iv->code, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *hash = pl_req_alloc(req, crypto_hash_sha256_BYTES * 2 + 1);
    code_hash_hex(iv->code, hash);
    json_t *hours = json_object_get(body, "expires_in_hours");
    const char *v[7];
    fixed_params(req, id, v);
    v[3] = json_string_value(json_object_get(body, "role"));
    v[4] = json_is_integer(hours) ? int_text(req, hours) : "72";
    v[5] = hash;
    v[6] = pl_req_printf(req, "%lld", req_worker(req)->app->cfg.quota_invitations);
    store_query(req, "invitations_create", 7, v, on_invited, iv);
}

static void on_invitations(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "invitations list")) return;
    const PGresult *r = results[0];
    if (PQntuples(r) == 0) {
        no_subject(req);
        return;
    }
    if (!is_owner(r)) {
        not_owner(req);
        return;
    }
    pl_resp_header(req, "Cache-Control", "no-store");
    respond_items(req, r, 1);
}

static void do_invitations(struct pl_http_request *req)
{
    const char *id = subject_param(req);
    if (!id) return;
    const char *v[3];
    fixed_params(req, id, v);
    store_query(req, "invitations_list", 3, v, on_invitations, req);
}

static void on_uninvited(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "invitation delete")) return;
    const PGresult *r = results[0];
    if (PQntuples(r) != 1) {
        no_subject(req);
        return;
    }
    if (!is_owner(r)) {
        not_owner(req);
        return;
    }
    if (PQgetvalue(r, 0, 1)[0] != 't') {
        pl_respond_problem(req, 404, "no such invitation", NULL);
        return;
    }
    pl_respond(req, 204, NULL, NULL, 0);
}

static void do_uninvite(struct pl_http_request *req)
{
    const char *id = subject_param(req);
    if (!id) return;
    const char *inv = pl_req_param(req, "inv_id");
    if (!ids_is_uuid(inv)) {
        pl_respond_problem(req, 404, "no such invitation", NULL);
        return;
    }
    const char *v[4];
    fixed_params(req, id, v);
    v[3] = inv;
    store_query(req, "invitations_delete", 4, v, on_uninvited, req);
}

static void no_invitation(struct pl_http_request *req)
{
    pl_respond_problem(req, 404, "no such invitation: unknown, used, expired or revoked", NULL);
}

static void on_accepted(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (db_fault(status, results, n) == DB_FAULT_UNIQUE) { /* joined at the same moment */
        pl_respond_problem(req, 409, "you are already a member of this subject", NULL);
        return;
    }
    if (reply_failed(req, status, "invitation accept")) return;
    const PGresult *r = results[0];
    if (PQntuples(r) != 1) {
        no_invitation(req);
        return;
    }
    if (PQgetvalue(r, 0, 0)[0] == 't') {
        pl_respond_problem(req, 409, "you are already a member of this subject", NULL);
        return;
    }
    if (PQgetvalue(r, 0, 1)[0] == 't' || PQgetisnull(r, 0, 2)) {
        pl_respond_problem(req, 409,
                           "the subject, or you, reached the most members or subjects "
                           "allowed",
                           NULL);
        return;
    }
    const char *subject_id = PQgetvalue(r, 0, 2);
    publish(req, subject_id, r, 6, "member.joined", PQgetvalue(r, 0, 5));
    respond_text(req, 200, r, 0, 3);
}

static void do_accept(struct pl_http_request *req)
{
    const char *code = json_string_value(json_object_get(req_json(req), "code"));
    if (strlen(code) != CODE_LEN || !ids_is_base64url(code, CODE_LEN)) {
        no_invitation(req);
        return;
    }
    char *hash = pl_req_alloc(req, crypto_hash_sha256_BYTES * 2 + 1);
    code_hash_hex(code, hash);
    const struct pulse_config *cfg = &req_worker(req)->app->cfg;
    const char *v[] = {req_principal(req)->user_id, hash,
                       pl_req_printf(req, "%lld", cfg->quota_subjects),
                       pl_req_printf(req, "%lld", cfg->quota_members)};
    store_query(req, "invitations_accept", 4, v, on_accepted, req);
}

struct pl_route subjects_routes[] = {
    {.method = PL_M_GET, .pattern = "/api/v1/subjects", .handler = do_list, .flags = ROUTE_AUTH},
    {.method = PL_M_POST,
     .pattern = "/api/v1/subjects",
     .handler = do_create,
     .flags = ROUTE_AUTH | ROUTE_JSON | ROUTE_USER_WIDE,
     .data = ROUTE_BODY(&create_rules)},
    {.method = PL_M_GET,
     .pattern = "/api/v1/subjects/{id}",
     .handler = do_get,
     .flags = ROUTE_AUTH},
    {.method = PL_M_PATCH,
     .pattern = "/api/v1/subjects/{id}",
     .handler = do_patch,
     .flags = ROUTE_AUTH | ROUTE_JSON,
     .data = ROUTE_BODY(&patch_rules)},
    {.method = PL_M_DELETE,
     .pattern = "/api/v1/subjects/{id}",
     .handler = do_delete,
     .flags = ROUTE_AUTH},
    {.method = PL_M_GET,
     .pattern = "/api/v1/subjects/{id}/members",
     .handler = do_members,
     .flags = ROUTE_AUTH},
    {.method = PL_M_PATCH,
     .pattern = "/api/v1/subjects/{id}/members/{user_id}",
     .handler = do_member_patch,
     .flags = ROUTE_AUTH | ROUTE_JSON,
     .data = ROUTE_BODY(&member_rules)},
    {.method = PL_M_DELETE,
     .pattern = "/api/v1/subjects/{id}/members/{user_id}",
     .handler = do_member_delete,
     .flags = ROUTE_AUTH},
    {.method = PL_M_POST,
     .pattern = "/api/v1/subjects/{id}/invitations",
     .handler = do_invite,
     .flags = ROUTE_AUTH | ROUTE_JSON,
     .data = ROUTE_BODY(&invitation_rules)},
    {.method = PL_M_GET,
     .pattern = "/api/v1/subjects/{id}/invitations",
     .handler = do_invitations,
     .flags = ROUTE_AUTH},
    {.method = PL_M_DELETE,
     .pattern = "/api/v1/subjects/{id}/invitations/{inv_id}",
     .handler = do_uninvite,
     .flags = ROUTE_AUTH},
    {.method = PL_M_POST,
     .pattern = "/api/v1/invitations/accept",
     .handler = do_accept,
     .flags = ROUTE_AUTH | ROUTE_JSON | ROUTE_USER_WIDE | ROUTE_RATE_INVITATION,
     .data = ROUTE_BODY(&accept_rules)},
    {0},
};
