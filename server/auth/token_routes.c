/* Personal access tokens: create (the secret is shown once), list, revoke. Session only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../guards.h"
#include "../ids.h"
#include "../problems.h"
#include "auth.h"
#include "auth_store.h"
#include "pl/json.h"

static const char *const scope_names[] = {"read", "write", NULL};
static const char *const token_read_only[] = {"id",         "token",        "created_at",
                                              "expires_at", "last_used_at", NULL};
static const struct pl_jfield token_fields[] = {
    {.name = "name", .type = PL_J_STRING, .flags = PL_JF_REQUIRED, .min = 1, .max = 100},
    {.name = "scopes",
     .type = PL_J_STRING_ARRAY,
     .flags = PL_JF_REQUIRED,
     .min = 1,
     .max = 2,
     .item_min = 1,
     .item_max = 5,
     .one_of = scope_names},
    {.name = "expires_in_days", .type = PL_J_INT, .min = 1, .max = 365},
    {.name = "subject_ids",
     .type = PL_J_STRING_ARRAY,
     .min = 1,
     .max = 50,
     .item_min = 36,
     .item_max = 36,
     .charset = "0123456789abcdefABCDEF-"},
};
static const struct pl_jschema token_schema = {token_fields, 4, token_read_only};

/* Every subject id a UUID (the schema checked the characters and lengths). */
static void check_subject_ids(json_t *body, json_t **errors)
{
    json_t *ids = json_object_get(body, "subject_ids");
    if (!json_is_array(ids) || problems_has(*errors, "subject_ids")) return;
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        if (!ids_is_uuid(json_string_value(id))) {
            problems_add(errors, "subject_ids", "must be subject ids (UUIDs)");
            return;
        }
    }
}
static const struct body_rules token_rules = {.schema = &token_schema, .check = check_subject_ids};

struct create {
    struct pl_http_request *req;
    char token[PAT_LEN + 1];
};

static void on_token_inserted(int status, PGresult **results, int n, void *ctx)
{
    struct create *c = ctx;
    if (reply_failed(c->req, status, "token insert")) return;
    if (PQntuples(results[0]) != 1) {
        reply_invalid(c->req, "subject_ids", "must be subjects you belong to");
        return;
    }
    json_t *t = token_json(results[0], 0);
    json_object_set_new(t, "token", json_string(c->token));
    pl_resp_header(c->req, "Cache-Control", "no-store");
    pl_respond_json(c->req, 201, t);
}

static void do_create(struct pl_http_request *req)
{
    json_t *body = req_json(req);
    unsigned scopes = 0;
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(body, "scopes"), i, s)
    {
        scopes |= strcmp(json_string_value(s), "read") == 0 ? SCOPE_READ : SCOPE_WRITE;
    }
    struct create *c = pl_req_alloc(req, sizeof *c);
    c->req = req;
    char hash[65];
    token_new(c->token, hash);
    json_t *days = json_object_get(body, "expires_in_days");
    json_t *subjects = json_object_get(body, "subject_ids");
    const char *subject_lit = NULL;
    if (json_is_array(subjects)) {
        char *lit = pl_req_alloc(req, json_array_size(subjects) * 37 + 3);
        char *p = lit;
        *p++ = '{';
        size_t k;
        json_t *id;
        json_array_foreach(subjects, k, id)
        {
            if (k) *p++ = ',';
            memcpy(p, json_string_value(id), 36);
            p += 36;
        }
        *p++ = '}';
        *p = 0;
        subject_lit = lit;
    }
    const char *v[] = {req_principal(req)->user_id,
                       json_string_value(json_object_get(body, "name")),
                       hash,
                       pl_req_printf(req, "%u", scopes),
                       json_is_integer(days)
                           ? pl_req_printf(req, "%lld", (long long)json_integer_value(days))
                           : NULL,
                       subject_lit};
    store_query(req, "auth_token_insert", 6, v, on_token_inserted, c);
}

static void on_tokens(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "token list")) return;
    json_t *items = json_array();
    for (int r = 0; r < PQntuples(results[0]); r++)
        json_array_append_new(items, token_json(results[0], r));
    pl_resp_header(req, "Cache-Control", "no-store");
    pl_respond_json(req, 200, json_pack("{s:o}", "items", items));
}

static void do_list(struct pl_http_request *req)
{
    const char *v[] = {req_principal(req)->user_id};
    store_query(req, "auth_token_list", 1, v, on_tokens, req);
}

static void on_deleted(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "token delete")) return;
    if (PQntuples(results[0]) != 1) {
        pl_respond_problem(req, 404, "no such token", NULL);
        return;
    }
    auth_publish_revocation(req, AUTH_REVOKE_TOKEN, pl_req_param(req, "id"));
    pl_respond(req, 204, NULL, NULL, 0);
}

static void do_delete(struct pl_http_request *req)
{
    const char *id = pl_req_param(req, "id");
    if (!ids_is_uuid(id)) {
        pl_respond_problem(req, 404, "no such token", NULL);
        return;
    }
    const char *v[] = {id, req_principal(req)->user_id};
    store_query(req, "auth_token_delete", 2, v, on_deleted, req);
}

struct pl_route token_routes[] = {
    {.method = PL_M_POST,
     .pattern = "/api/v1/tokens",
     .handler = do_create,
     .flags = ROUTE_AUTH | ROUTE_SESSION_ONLY | ROUTE_JSON,
     .data = ROUTE_BODY(&token_rules)},
    {.method = PL_M_GET,
     .pattern = "/api/v1/tokens",
     .handler = do_list,
     .flags = ROUTE_AUTH | ROUTE_SESSION_ONLY},
    {.method = PL_M_DELETE,
     .pattern = "/api/v1/tokens/{id}",
     .handler = do_delete,
     .flags = ROUTE_AUTH | ROUTE_SESSION_ONLY},
    {0},
};
