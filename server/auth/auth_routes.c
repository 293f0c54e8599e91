/* Authentication routes: register, login, logout, sessions, password change. HTTP glue:
 * validation, then the stores (sessions in Redis, users in Postgres) and password hashing
 * on the thread pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../guards.h"
#include "../ids.h"
#include "../problems.h"
#include "../users/user.h"
#include "auth.h"
#include "auth_store.h"
#include "passwords.h"
#include "pl/json.h"
#include "pl/log.h"
#include "pl/mem.h"
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

/* false after answering 503 when Redis, where sessions live, is not connected. */
static bool session_store_up(struct pl_http_request *req)
{
    if (pl_redis_connected(req_worker(req)->redis)) return true;
    reply_failure(req, PL_E_UNAVAILABLE, "session store");
    return false;
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

static const char *const user_read_only[] = {"id", "created_at", "updated_at", "daily_target_ml",
                                             NULL};
static const struct pl_jfield register_fields[] = {
    {.name = "email", .type = PL_J_STRING, .flags = PL_JF_REQUIRED, .min = 1, .max = 254},
    {.name = "password", .type = PL_J_STRING, .flags = PL_JF_REQUIRED, .min = 12, .max = 128},
    USER_FIELD_DISPLAY_NAME,
    USER_FIELD_TIMEZONE,
};
static const struct pl_jschema register_schema = {register_fields, 4, user_read_only};

/* The email's form, after the normalisation it is stored with (listed after the schema's
 * errors, and only when the schema found nothing wrong with the field). */
static void check_email(json_t *body, json_t **errors)
{
    const char *email = json_string_value(json_object_get(body, "email"));
    if (!email || problems_has(*errors, "email")) return;
    char normal[256];
    snprintf(normal, sizeof normal, "%s", email);
    const char *why = pl_email_check(pl_email_normalize(normal));
    if (why) problems_add(errors, "email", why);
}
static const struct body_rules register_rules = {
    .schema = &register_schema, .check = check_email, .ready = user_zones_ready};

struct reg {
    struct pl_http_request *req;
    char email[256];
    const char *display_name, *timezone;
};

static void on_user_inserted(int status, PGresult **results, int n, void *ctx)
{
    struct reg *r = ctx;
    if (db_fault(status, results, n) == DB_FAULT_UNIQUE) {
        pl_respond_problem(r->req, 409, "an account with this email already exists", NULL);
        return;
    }
    if (reply_failed(r->req, status, "user insert")) return;
    start_session(r->req, 201, user_json(results[0], 0));
}

static void on_register_hashed(int status, const char *hash, void *ctx)
{
    struct reg *r = ctx;
    if (passwords_failed(r->req, status)) return;
    const char *v[] = {r->email, hash, r->display_name, r->timezone};
    store_query(r->req, "auth_user_insert", 4, v, on_user_inserted, r);
}

static void do_register(struct pl_http_request *req)
{
    json_t *body = req_json(req);
    /* The session goes to Redis last: without it, answer now rather than create an account
     * the client is told nothing about. */
    if (!session_store_up(req)) return;
    struct reg *r = pl_req_alloc(req, sizeof *r);
    memset(r, 0, sizeof *r);
    r->req = req;
    snprintf(r->email, sizeof r->email, "%s", json_string_value(json_object_get(body, "email")));
    pl_email_normalize(r->email);
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
static const struct body_rules login_rules = {.schema = &login_schema};

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
    if (reply_failed(l->req, status, "session store")) return;
    pl_respond_problem(l->req, 401, "invalid email or password", NULL);
}

static void on_login_verified(int status, bool ok, bool needs_rehash, void *ctx)
{
    struct login *l = ctx;
    struct pl_http_request *req = l->req;
    if (passwords_failed(req, status)) return;
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
    if (reply_failed(req, status, "login lookup")) return;
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
    /* No session can be made without Redis: say so before any password work, whatever the
     * password (a right one must not be told from a wrong one by a 503). */
    if (!session_store_up(req)) return;
    struct login *l = pl_req_alloc(req, sizeof *l);
    memset(l, 0, sizeof *l);
    l->req = req;
    char *email = pl_req_strdup(req, json_string_value(json_object_get(req_json(req), "email")));
    pl_email_normalize(email);
    const char *v[] = {email};
    store_query(req, "auth_user_by_email", 1, v, on_login_user, l);
}

/* ---- logout, sessions ---- */

static void on_logged_out(int status, int count, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "logout")) return;
    auth_publish_revocation(req, AUTH_REVOKE_SESSION, req_principal(req)->session_id);
    clear_session_cookie(req);
    pl_respond(req, 204, NULL, NULL, 0);
}

static const struct body_rules logout_rules = {.schema = &empty_body_schema,
                                               .detail = "logout takes no body"};

static void do_logout(struct pl_http_request *req)
{
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
    if (reply_failed(req, status, "sessions list")) return;
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
    if (reply_failed(req, status, "session revoke")) return;
    if (count == 0) {
        pl_respond_problem(req, 404, "no such session", NULL);
        return;
    }
    auth_publish_revocation(req, AUTH_REVOKE_SESSION, pl_req_param(req, "id"));
    pl_respond(req, 204, NULL, NULL, 0);
}

static void do_session_delete(struct pl_http_request *req)
{
    const char *id = pl_req_param(req, "id");
    if (strlen(id) != SESSION_HASH_HEX || !ids_is_hex(id, SESSION_HASH_HEX)) {
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
static const struct body_rules password_rules = {.schema = &password_schema};

static void on_others_revoked(int status, int count, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "revoke other sessions")) return;
    auth_publish_revocation(req, AUTH_REVOKE_OTHERS, req_principal(req)->session_id);
    pl_respond(req, 204, NULL, NULL, 0);
}

static void on_password_stored(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "password update")) return;
    const struct principal *p = req_principal(req);
    /* revoke_tokens: the rows are gone; live sockets opened with them close (4401) as for
     * DELETE /tokens/{id}. */
    for (int i = 0; i < PQntuples(results[0]); i++)
        auth_publish_revocation(req, AUTH_REVOKE_TOKEN, PQgetvalue(results[0], i, 0));
    sessions_revoke(req_worker(req), p->user_id, REVOKE_OTHERS, p->session_id, on_others_revoked,
                    req);
}

static void on_new_hash(int status, const char *hash, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (passwords_failed(req, status)) return;
    bool revoke_tokens = json_is_true(json_object_get(req_json(req), "revoke_tokens"));
    const char *v[] = {req_principal(req)->user_id, hash, revoke_tokens ? "true" : "false"};
    store_query(req, "auth_user_change_password", 3, v, on_password_stored, req);
}

static void change_password(struct pl_http_request *req)
{
    passwords_hash(req_worker(req), req,
                   json_string_value(json_object_get(req_json(req), "new_password")), on_new_hash,
                   req);
}

static void do_password(struct pl_http_request *req)
{
    auth_verify_own_password(req,
                             json_string_value(json_object_get(req_json(req), "current_password")),
                             "the current password is wrong", change_password);
}

/* ---- verifying the caller's own password (password change, account deletion) ---- */

struct own_pw {
    struct pl_http_request *req;
    const char *password, *wrong;
    void (*then)(struct pl_http_request *req);
};

static void on_own_verified(int status, bool ok, bool needs_rehash, void *ctx)
{
    struct own_pw *o = ctx;
    if (passwords_failed(o->req, status)) return;
    if (!ok) {
        pl_respond_problem(o->req, 403, o->wrong, NULL);
        return;
    }
    o->then(o->req);
}

static void on_own_hash(int status, PGresult **results, int n, void *ctx)
{
    struct own_pw *o = ctx;
    if (reply_failed(o->req, status, "password load")) return;
    const char *hash = PQntuples(results[0]) == 1 ? PQgetvalue(results[0], 0, 0) : NULL;
    passwords_verify(req_worker(o->req), o->req, o->password, hash, on_own_verified, o);
}

void auth_verify_own_password(struct pl_http_request *req, const char *password, const char *wrong,
                              void (*then)(struct pl_http_request *req))
{
    struct own_pw *o = pl_req_alloc(req, sizeof *o);
    o->req = req;
    o->password = password;
    o->wrong = wrong;
    o->then = then;
    const char *v[] = {req_principal(req)->user_id};
    store_query(req, "auth_user_hash", 1, v, on_own_hash, o);
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
    struct rehash *r = pl_xcalloc(1, sizeof *r);
    r->w = w;
    snprintf(r->user_id, sizeof r->user_id, "%s", user_id);
    passwords_hash(w, NULL, password, on_rehashed, r); /* nobody waits for it */
}

struct pl_route auth_routes[] = {
    {.method = PL_M_POST,
     .pattern = "/api/v1/auth/register",
     .handler = do_register,
     .flags = ROUTE_JSON | ROUTE_RATE_REGISTER,
     .data = ROUTE_BODY(&register_rules)},
    {.method = PL_M_POST,
     .pattern = "/api/v1/auth/login",
     .handler = do_login,
     .flags = ROUTE_JSON | ROUTE_RATE_LOGIN,
     .data = ROUTE_BODY(&login_rules)},
    {.method = PL_M_POST,
     .pattern = "/api/v1/auth/logout",
     .handler = do_logout,
     .flags = ROUTE_AUTH | ROUTE_SESSION_ONLY | ROUTE_JSON,
     .data = ROUTE_BODY(&logout_rules)},
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
     .flags = ROUTE_AUTH | ROUTE_SESSION_ONLY | ROUTE_JSON,
     .data = ROUTE_BODY(&password_rules)},
    {0},
};
