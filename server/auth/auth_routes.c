/* Authentication routes: register, login, logout, sessions, password change. HTTP glue:
 * validation, then the stores (sessions in Redis, users in Postgres) and password hashing
 * on the thread pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../guards.h"
#include "auth.h"
#include "auth_store.h"
#include "passwords.h"
#include "pl/json.h"
#include "pl/log.h"
#include "pl/time.h"
#include "sessions.h"

/* ---- shared by the routes of this folder ---- */

/* Behind TLS the cookie is __Host-pulse_session: browsers accept that name only with Secure,
 * Path=/ and no Domain, so neither a sibling subdomain nor a plain-HTTP page can plant one. */
void set_session_cookie(struct pl_http_request *req, const char *token)
{
    const struct pulse_config *cfg = &req_worker(req)->app->cfg;
    pl_resp_header(req, "Set-Cookie",
                   pl_req_printf(req, "%s=%s; HttpOnly; SameSite=Lax; Path=/; Max-Age=%lld%s",
                                 session_cookie(cfg), token, cfg->session_absolute_s,
                                 cfg->cookie_secure ? "; Secure" : ""));
}

void clear_session_cookie(struct pl_http_request *req)
{
    const struct pulse_config *cfg = &req_worker(req)->app->cfg;
    pl_resp_header(req, "Set-Cookie",
                   pl_req_printf(req, "%s=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0%s",
                                 session_cookie(cfg), cfg->cookie_secure ? "; Secure" : ""));
}

static void no_store(struct pl_http_request *req)
{
    pl_resp_header(req, "Cache-Control", "no-store");
}

/* A new session for user, answered as {user, token, expires_at} with the cookie. */
struct new_session {
    struct pl_http_request *req;
    int status;
    json_t *user;
    char token[SESSION_TOKEN_LEN + 1];
    char hash[SESSION_HASH_HEX + 1];
};

static void on_session_created(int status, int64_t created_ms, int64_t expires_ms, void *ctx)
{
    struct new_session *ns = ctx;
    struct pl_http_request *req = ns->req;
    if (status) {
        json_decref(ns->user);
        reply_failure(req, status, "session create");
        return;
    }
    char exp[32];
    pl_time_format_rfc3339(expires_ms * 1000, exp);
    set_session_cookie(req, ns->token);
    no_store(req);
    pl_respond_json(
        req, ns->status,
        json_pack("{s:o, s:s, s:s}", "user", ns->user, "token", ns->token, "expires_at", exp));
}

static void start_session(struct pl_http_request *req, int http_status, json_t *user)
{
    struct new_session *ns = pl_req_alloc(req, sizeof *ns);
    ns->req = req;
    ns->status = http_status;
    ns->user = user;
    session_token_new(ns->token, ns->hash);
    const char *ua = pl_req_header(req, "user-agent");
    sessions_create(req_worker(req), ns->hash, json_string_value(json_object_get(user, "id")),
                    ua ? ua : "", req_client_ip(req), on_session_created, ns);
}

/* ---- register ---- */

static const char *tz_check(const char *v);

static const char *const user_read_only[] = {"id", "created_at", "updated_at", "daily_target_ml",
                                             NULL};
static const struct pl_jfield register_fields[] = {
    {.name = "email", .type = PL_J_STRING, .flags = PL_JF_REQUIRED, .min = 1, .max = 254},
    {.name = "password", .type = PL_J_STRING, .flags = PL_JF_REQUIRED, .min = 12, .max = 128},
    {.name = "display_name", .type = PL_J_STRING, .flags = PL_JF_NULLABLE, .min = 1, .max = 100},
    {.name = "timezone", .type = PL_J_STRING, .min = 1, .max = 64, .check = tz_check},
};
static const struct pl_jschema register_schema = {register_fields, 4, user_read_only};

static struct app *the_app;
static const char *tz_check(const char *v)
{
    return app_timezone_valid(the_app, v) ? NULL : "must be an IANA time zone such as Europe/Paris";
}
void auth_routes_init(struct app *app)
{
    the_app = app;
}

struct reg {
    struct pl_http_request *req;
    char email[256];
    const char *display_name, *timezone;
};

static void on_user_inserted(int status, PGresult **results, int n, void *ctx)
{
    struct reg *r = ctx;
    if (status == PL_E_DB && strcmp(pl_pg_error_sqlstate(results[0]), "23505") == 0) {
        pl_respond_problem(r->req, 409, "an account with this email already exists", NULL);
        return;
    }
    if (status) {
        reply_failure(r->req, status, "user insert");
        return;
    }
    start_session(r->req, 201, user_json(results[0], 0));
}

static void on_register_hashed(int status, const char *hash, void *ctx)
{
    struct reg *r = ctx;
    if (status) {
        passwords_reply_failure(r->req, status);
        return;
    }
    const char *v[] = {r->email, hash, r->display_name, r->timezone};
    if (pl_pg_exec1(req_worker(r->req)->pg, "auth_user_insert", 4, v, on_user_inserted, r))
        reply_failure(r->req, PL_E_UNAVAILABLE, "user insert");
}

/* Appends {field, message} to *errors (creating the array). */
static void add_error(json_t **errors, const char *field, const char *message)
{
    if (!*errors) *errors = json_array();
    json_array_append_new(*errors, json_pack("{s:s, s:s}", "field", field, "message", message));
}

static bool has_error_for(json_t *errors, const char *field)
{
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e) if (strcmp(json_string_value(json_object_get(e, "field")),
                                                field) == 0) return true;
    return false;
}

static void do_register(struct pl_http_request *req)
{
    json_t *body = req_json(req);
    json_t *errors = pl_json_validate(body, &register_schema);
    struct reg *r = pl_req_alloc(req, sizeof *r);
    memset(r, 0, sizeof *r);
    r->req = req;
    const char *email = json_string_value(json_object_get(body, "email"));
    if (email && !has_error_for(errors, "email")) {
        snprintf(r->email, sizeof r->email, "%s", email);
        pl_email_normalize(r->email);
        const char *why = pl_email_check(r->email);
        if (why) add_error(&errors, "email", why);
    }
    if (errors) {
        pl_respond_problem(req, 422, "the request body is invalid", errors);
        return;
    }
    if (!atomic_load(&req_worker(req)->app->timezones_loaded) &&
        json_is_string(json_object_get(body, "timezone"))) {
        reply_failure(req, PL_E_UNAVAILABLE, "time zones not loaded");
        return;
    }
    /* The session goes to Redis last: without it, answer now rather than create an account
     * the client is told nothing about. */
    if (!pl_redis_connected(req_worker(req)->redis)) {
        reply_failure(req, PL_E_UNAVAILABLE, "session store");
        return;
    }
    r->display_name = json_string_value(json_object_get(body, "display_name"));
    r->timezone = json_string_value(json_object_get(body, "timezone"));
    passwords_hash(req_worker(req), req, json_string_value(json_object_get(body, "password")),
                   on_register_hashed, r);
}

/* ---- login ---- */

static const struct pl_jfield login_fields[] = {
    {.name = "email", .type = PL_J_STRING, .flags = PL_JF_REQUIRED, .min = 0, .max = 1024},
    {.name = "password", .type = PL_J_STRING, .flags = PL_JF_REQUIRED, .min = 0, .max = 1024},
};
static const struct pl_jschema login_schema = {login_fields, 2, NULL};

struct login {
    struct pl_http_request *req;
    char user_id[40];
    json_t *user; /* the row read with the hash (request cleanup decrefs it) */
};

/* A wrong password (or an unknown email) is 401 only when a right one would have got its
 * session: the same Redis must answer, so that the status never tells the password. */
static void on_login_refused_ping(int status, redisReply *reply, void *ctx)
{
    struct login *l = ctx;
    if (status) {
        reply_failure(l->req, status, "session store");
        return;
    }
    pl_respond_problem(l->req, 401, "invalid email or password", NULL);
}

static void on_login_verified(int status, bool ok, bool needs_rehash, void *ctx)
{
    struct login *l = ctx;
    struct pl_http_request *req = l->req;
    if (status) {
        passwords_reply_failure(req, status);
        return;
    }
    if (!ok || !l->user) {
        const char *argv[] = {"PING"};
        if (pl_redis_command(req_worker(req)->redis, 1, argv, NULL, on_login_refused_ping, l))
            reply_failure(req, PL_E_UNAVAILABLE, "session store");
        return;
    }
    if (needs_rehash)
        login_rehash(req_worker(req), l->user_id,
                     json_string_value(json_object_get(req_json(req), "password")));
    start_session(req, 200, json_incref(l->user));
}

static void on_login_user(int status, PGresult **results, int n, void *ctx)
{
    struct login *l = ctx;
    struct pl_http_request *req = l->req;
    if (status) {
        reply_failure(req, status, "login lookup");
        return;
    }
    const char *hash = NULL;
    if (PQntuples(results[0]) == 1) {
        l->user = user_json(results[0], 0);
        pl_req_on_cleanup(req, (void (*)(void *))json_decref, l->user);
        snprintf(l->user_id, sizeof l->user_id, "%s", PQgetvalue(results[0], 0, 0));
        hash = pl_req_strdup(req, PQgetvalue(results[0], 0, USER_NCOLS));
    }
    /* An unknown email is verified against the dummy hash: the same work, the same answer. */
    passwords_verify(req_worker(req), req,
                     json_string_value(json_object_get(req_json(req), "password")), hash,
                     on_login_verified, l);
}

static void do_login(struct pl_http_request *req)
{
    json_t *errors = pl_json_validate(req_json(req), &login_schema);
    if (errors) {
        pl_respond_problem(req, 422, "the request body is invalid", errors);
        return;
    }
    /* No session can be made without Redis: say so before any password work, whatever the
     * password (a right one must not be told from a wrong one by a 503). */
    if (!pl_redis_connected(req_worker(req)->redis)) {
        reply_failure(req, PL_E_UNAVAILABLE, "session store");
        return;
    }
    struct login *l = pl_req_alloc(req, sizeof *l);
    memset(l, 0, sizeof *l);
    l->req = req;
    char *email = pl_req_strdup(req, json_string_value(json_object_get(req_json(req), "email")));
    pl_email_normalize(email);
    const char *v[] = {email};
    if (pl_pg_exec1(req_worker(req)->pg, "auth_user_by_email", 1, v, on_login_user, l))
        reply_failure(req, PL_E_UNAVAILABLE, "login lookup");
}

/* ---- logout, sessions ---- */

static void on_logged_out(int status, int count, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (status) {
        reply_failure(req, status, "logout");
        return;
    }
    auth_publish_revocation(req_worker(req), req_principal(req)->user_id, "session",
                            req_principal(req)->session_id);
    clear_session_cookie(req);
    pl_respond(req, 204, NULL, NULL, 0);
}

static const struct pl_jschema empty_schema = {NULL, 0, NULL};

static void do_logout(struct pl_http_request *req)
{
    json_t *errors = pl_json_validate(req_json(req), &empty_schema);
    if (errors) {
        pl_respond_problem(req, 422, "logout takes no body", errors);
        return;
    }
    const struct principal *p = req_principal(req);
    sessions_revoke(req_worker(req), p->user_id, REVOKE_ONE, p->session_id, on_logged_out, req);
}

static int by_created_desc(const void *a, const void *b)
{
    const struct session_info *x = a, *y = b;
    if (x->created_ms != y->created_ms) return x->created_ms < y->created_ms ? 1 : -1;
    return strcmp(x->id, y->id);
}

static void on_sessions(int status, const struct session_info *items, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (status) {
        reply_failure(req, status, "sessions list");
        return;
    }
    struct session_info *sorted = pl_req_alloc(req, sizeof *sorted * (size_t)(n ? n : 1));
    memcpy(sorted, items, sizeof *sorted * (size_t)n);
    qsort(sorted, (size_t)n, sizeof *sorted, by_created_desc);
    json_t *list = json_array();
    const char *current = req_principal(req)->session_id;
    for (int i = 0; i < n; i++) {
        char created[32], seen[32];
        pl_time_format_rfc3339(sorted[i].created_ms * 1000, created);
        pl_time_format_rfc3339(sorted[i].last_seen_ms * 1000, seen);
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "id", sorted[i].id, "created_at",
                            created, "last_seen_at", seen, "user_agent", sorted[i].user_agent, "ip",
                            sorted[i].ip, "current", strcmp(sorted[i].id, current) == 0));
    }
    no_store(req);
    pl_respond_json(req, 200, json_pack("{s:o}", "items", list));
}

static void do_sessions(struct pl_http_request *req)
{
    sessions_list(req_worker(req), req_principal(req)->user_id, on_sessions, req);
}

static void on_session_revoked(int status, int count, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (status) {
        reply_failure(req, status, "session revoke");
        return;
    }
    if (count == 0) {
        pl_respond_problem(req, 404, "no such session", NULL);
        return;
    }
    auth_publish_revocation(req_worker(req), req_principal(req)->user_id, "session",
                            pl_req_param(req, "id"));
    pl_respond(req, 204, NULL, NULL, 0);
}

static void do_session_delete(struct pl_http_request *req)
{
    const char *id = pl_req_param(req, "id");
    bool hex = strlen(id) == SESSION_HASH_HEX;
    for (size_t i = 0; hex && id[i]; i++)
        hex = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
    if (!hex) {
        pl_respond_problem(req, 404, "no such session", NULL);
        return;
    }
    sessions_revoke(req_worker(req), req_principal(req)->user_id, REVOKE_ONE, id,
                    on_session_revoked, req);
}

/* ---- password change ---- */

static const struct pl_jfield password_fields[] = {
    {.name = "current_password",
     .type = PL_J_STRING,
     .flags = PL_JF_REQUIRED,
     .min = 0,
     .max = 1024},
    {.name = "new_password", .type = PL_J_STRING, .flags = PL_JF_REQUIRED, .min = 12, .max = 128},
    {.name = "revoke_tokens", .type = PL_J_BOOL},
};
static const struct pl_jschema password_schema = {password_fields, 3, NULL};

static void on_others_revoked(int status, int count, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (status) {
        reply_failure(req, status, "revoke other sessions");
        return;
    }
    auth_publish_revocation(req_worker(req), req_principal(req)->user_id, "others",
                            req_principal(req)->session_id);
    pl_respond(req, 204, NULL, NULL, 0);
}

static void on_password_stored(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (status) {
        reply_failure(req, status, "password update");
        return;
    }
    const struct principal *p = req_principal(req);
    /* revoke_tokens: the rows are gone; live sockets opened with them close (4401) as for
     * DELETE /tokens/{id}. */
    for (int i = 0; i < PQntuples(results[0]); i++)
        auth_publish_revocation(req_worker(req), p->user_id, "token", PQgetvalue(results[0], i, 0));
    sessions_revoke(req_worker(req), p->user_id, REVOKE_OTHERS, p->session_id, on_others_revoked,
                    req);
}

static void on_new_hash(int status, const char *hash, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (status) {
        passwords_reply_failure(req, status);
        return;
    }
    bool revoke_tokens = json_is_true(json_object_get(req_json(req), "revoke_tokens"));
    const char *v[] = {req_principal(req)->user_id, hash, revoke_tokens ? "true" : "false"};
    if (pl_pg_exec1(req_worker(req)->pg, "auth_user_change_password", 3, v, on_password_stored,
                    req))
        reply_failure(req, PL_E_UNAVAILABLE, "password update");
}

static void on_current_verified(int status, bool ok, bool needs_rehash, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (status) {
        passwords_reply_failure(req, status);
        return;
    }
    if (!ok) {
        pl_respond_problem(req, 403, "the current password is wrong", NULL);
        return;
    }
    passwords_hash(req_worker(req), req,
                   json_string_value(json_object_get(req_json(req), "new_password")), on_new_hash,
                   req);
}

static void do_password(struct pl_http_request *req)
{
    json_t *errors = pl_json_validate(req_json(req), &password_schema);
    if (errors) {
        pl_respond_problem(req, 422, "the request body is invalid", errors);
        return;
    }
    auth_verify_own_password(req,
                             json_string_value(json_object_get(req_json(req), "current_password")),
                             on_current_verified);
}

/* ---- verifying the caller's own password (password change, account deletion) ---- */

struct own_pw {
    struct pl_http_request *req;
    const char *password;
    passwords_verify_cb cb;
};

static void on_own_hash(int status, PGresult **results, int n, void *ctx)
{
    struct own_pw *o = ctx;
    if (status) {
        reply_failure(o->req, status, "password load");
        return;
    }
    const char *hash = PQntuples(results[0]) == 1 ? PQgetvalue(results[0], 0, 0) : NULL;
    passwords_verify(req_worker(o->req), o->req, o->password, hash, o->cb, o->req);
}

void auth_verify_own_password(struct pl_http_request *req, const char *password,
                              passwords_verify_cb cb)
{
    struct own_pw *o = pl_req_alloc(req, sizeof *o);
    o->req = req;
    o->password = password;
    o->cb = cb;
    const char *v[] = {req_principal(req)->user_id};
    if (pl_pg_exec1(req_worker(req)->pg, "auth_user_hash", 1, v, on_own_hash, o))
        reply_failure(req, PL_E_UNAVAILABLE, "password load");
}

/* ---- rehash after login (parameters changed since the hash was made) ---- */

struct rehash {
    struct worker *w;
    char user_id[40];
};

static void on_rehash_stored(int status, PGresult **results, int n, void *ctx)
{
    free(ctx);
}

static void on_rehashed(int status, const char *hash, void *ctx)
{
    struct rehash *r = ctx;
    const char *v[] = {r->user_id, hash};
    if (status || pl_pg_exec1(r->w->pg, "auth_user_set_hash", 2, v, on_rehash_stored, r)) free(r);
}

void login_rehash(struct worker *w, const char *user_id, const char *password)
{
    struct rehash *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->w = w;
    snprintf(r->user_id, sizeof r->user_id, "%s", user_id);
    passwords_hash(w, NULL, password, on_rehashed, r); /* nobody waits for it */
}

struct pl_route auth_routes[] = {
    {.method = PL_M_POST,
     .pattern = "/api/v1/auth/register",
     .handler = do_register,
     .flags = ROUTE_JSON | ROUTE_RATE_REGISTER},
    {.method = PL_M_POST,
     .pattern = "/api/v1/auth/login",
     .handler = do_login,
     .flags = ROUTE_JSON | ROUTE_RATE_LOGIN},
    {.method = PL_M_POST,
     .pattern = "/api/v1/auth/logout",
     .handler = do_logout,
     .flags = ROUTE_AUTH | ROUTE_SESSION_ONLY | ROUTE_JSON},
    {.method = PL_M_GET,
     .pattern = "/api/v1/auth/sessions",
     .handler = do_sessions,
     .flags = ROUTE_AUTH | ROUTE_SESSION_ONLY},
    {.method = PL_M_DELETE,
     .pattern = "/api/v1/auth/sessions/{id}",
     .handler = do_session_delete,
     .flags = ROUTE_AUTH | ROUTE_SESSION_ONLY},
    {.method = PL_M_POST,
     .pattern = "/api/v1/auth/password",
     .handler = do_password,
     .flags = ROUTE_AUTH | ROUTE_SESSION_ONLY | ROUTE_JSON},
    {0},
};
