/* Guards: the steps every routed request passes before its handler, chosen by route flags,
 * in the contract's order of checks. Each step either answers (and the chain stops) or
 * moves on; the asynchronous ones (session in Redis, token in Postgres, rate limit in
 * Redis) continue from their callbacks. */
#include "guards.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "problems.h"
#include "auth/auth_store.h"
#include "auth/sessions.h"
#include "live/tickets.h"
#include "pl/json.h"
#include "pl/metrics.h"
#include "pl/log.h"
#include "pl/ratelimit.h"

struct guard {
    struct pl_http_request *req;
    struct worker *w;
    struct principal p;
    json_t *body;
    bool origin_ok;
    char token_hash[SESSION_HASH_HEX + 1];
};

static struct guard *guard_of(const struct pl_http_request *req)
{
    return pl_req_user_data(req);
}

const struct principal *req_principal(const struct pl_http_request *req)
{
    return &guard_of(req)->p;
}

json_t *req_json(const struct pl_http_request *req)
{
    return guard_of(req)->body;
}

/* ---- small checks ---- */

static bool unsafe_method(unsigned m)
{
    return m != PL_M_GET && m != PL_M_HEAD && m != PL_M_OPTIONS;
}

static bool origin_allowed(const struct pulse_config *cfg, const char *origin)
{
    if (!origin || !*origin) return false;
    return strcmp(origin, cfg->public_origin) == 0 ||
           pl_http_list_has(cfg->cors_origins, origin, false);
}

bool cookie_value(const char *header, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    for (const char *p = header; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *eq = strchr(p, '=');
        const char *semi = strchr(p, ';');
        if (!eq || (semi && semi < eq)) {
            p = semi;
            continue;
        }
        if ((size_t)(eq - p) == n && memcmp(p, name, n) == 0) {
            const char *v = eq + 1;
            size_t len = semi ? (size_t)(semi - v) : strlen(v);
            if (len >= cap) return false;
            memcpy(out, v, len);
            out[len] = 0;
            return true;
        }
        p = semi;
    }
    return false;
}

static const struct pl_rate_rule *rule_for(const struct pulse_config *cfg, const char *cls)
{
    static _Thread_local struct pl_rate_rule r;
    const struct pl_rate *src = strcmp(cls, "read") == 0     ? &cfg->rate_read
                                : strcmp(cls, "write") == 0  ? &cfg->rate_write
                                : strcmp(cls, "export") == 0 ? &cfg->rate_export
                                : strcmp(cls, "invitation_accept") == 0
                                    ? &cfg->rate_invitation_accept
                                    : NULL;
    if (!src) return NULL;
    r.count = src->count;
    r.period_s = src->seconds;
    return &r;
}

static enum rate_class class_of(const struct pl_http_request *req);

static const char *rate_class(const struct pl_http_request *req)
{
    return rate_class_names[class_of(req)];
}

static void add_rate_headers(struct pl_http_request *req, const struct pl_rate_result *r)
{
    char v[24];
    snprintf(v, sizeof v, "%d", r->limit);
    pl_resp_header(req, "RateLimit-Limit", v);
    snprintf(v, sizeof v, "%d", r->remaining < 0 ? 0 : r->remaining);
    pl_resp_header(req, "RateLimit-Remaining", v);
    snprintf(v, sizeof v, "%d", r->reset_s < 0 ? 0 : r->reset_s);
    pl_resp_header(req, "RateLimit-Reset", v);
}

const char *const rate_class_names[RATE_CLASSES] = {"login", "register", "read",
                                                    "write", "export",   "invitation_accept"};

static enum rate_class class_of(const struct pl_http_request *req)
{
    unsigned flags = pl_req_route(req)->flags;
    if (flags & ROUTE_RATE_LOGIN) return RATE_LOGIN;
    if (flags & ROUTE_RATE_REGISTER) return RATE_REGISTER;
    if (flags & ROUTE_RATE_EXPORT) return RATE_EXPORT;
    if (flags & ROUTE_RATE_INVITATION) return RATE_INVITATION;
    return unsafe_method(pl_req_method(req)) ? RATE_WRITE : RATE_READ;
}

/* Returns true when the request may go on; otherwise it has been answered with 429. */
static bool apply_rate(struct guard *g, bool allowed, const struct pl_rate_result *results, int n)
{
    const struct pl_rate_result *show = &results[0];
    for (int i = 1; i < n; i++)
        if (results[i].remaining < show->remaining || !results[i].allowed) show = &results[i];
    add_rate_headers(g->req, show);
    if (allowed) return true;
    char v[24];
    snprintf(v, sizeof v, "%d", show->retry_after_s < 1 ? 1 : show->retry_after_s);
    pl_resp_header(g->req, "Retry-After", v);
    pl_metric_add(g->w->app->ratelimit_rejections, (size_t)class_of(g->req), 1);
    pl_respond_problem(g->req, 429, "too many requests, retry later", NULL);
    return false;
}

/* ---- the chain ---- */

static void step_body(struct guard *g);

static void on_rate(bool allowed, const struct pl_rate_result *results, int n, bool fallback,
                    void *ctx)
{
    struct guard *g = ctx;
    if (apply_rate(g, allowed, results, n)) step_body(g);
}

/* Rate limit through lib/ratelimit (tokens, login, register). */
static void step_rate_separate(struct guard *g)
{
    struct pulse_config *cfg = &g->w->app->cfg;
    unsigned flags = pl_req_route(g->req)->flags;
    if (!cfg->rate_limits) {
        step_body(g);
        return;
    }
    const char *keys[2];
    struct pl_rate_rule rules[2];
    int n = 0;
    const char *ip = req_client_rate_key(g->req); /* an IPv6 client's /64 */
    if (flags & ROUTE_RATE_LOGIN) {
        /* The email is part of the key, so peek at the body leniently here; the strict
         * Content-Type and JSON checks come after the limit, as the contract orders them. */
        char email[256] = "";
        size_t len;
        const char *body = pl_req_body(g->req, &len);
        json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
        const char *e =
            j && json_is_object(j) ? json_string_value(json_object_get(j, "email")) : NULL;
        if (e) {
            snprintf(email, sizeof email, "%s", e);
            pl_email_normalize(email);
        }
        json_decref(j);
        keys[n] = pl_req_printf(g->req, "login:%s:%s", ip, email);
        rules[n++] = (struct pl_rate_rule){cfg->rate_login.count, cfg->rate_login.seconds};
        keys[n] = pl_req_printf(g->req, "loginip:%s", ip);
        rules[n++] = (struct pl_rate_rule){cfg->rate_login_ip.count, cfg->rate_login_ip.seconds};
    } else if (flags & ROUTE_RATE_REGISTER) {
        keys[n] = pl_req_printf(g->req, "register:%s", ip);
        rules[n++] = (struct pl_rate_rule){cfg->rate_register.count, cfg->rate_register.seconds};
    } else if (g->p.kind != PRINCIPAL_NONE) {
        const char *cls = rate_class(g->req);
        keys[n] = pl_req_printf(g->req, "%s:%s", cls, g->p.user_id);
        rules[n++] = *rule_for(cfg, cls);
    }
    if (n == 0 || pl_ratelimit_check(g->w->ratelimit, n, keys, rules, on_rate, g) != 0) {
        step_body(g);
    }
}

const struct pl_jschema empty_body_schema = {NULL, 0, NULL};

bool idempotency_key_ok(const char *key)
{
    size_t n = strlen(key);
    if (n < 1 || n > 255) return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x20 || key[i] > 0x7e) return false;
    return true;
}

/* 415, then 400: the body as a JSON object in g->body. false when answered. */
static bool parse_body(struct guard *g)
{
    struct pl_http_request *req = g->req;
    size_t len;
    const char *body = pl_req_body(req, &len);
    if (len > 0) {
        const char *ct = pl_req_header(req, "content-type");
        size_t n = strlen("application/json");
        if (!ct || strncasecmp(ct, "application/json", n) != 0 ||
            (ct[n] && ct[n] != ';' && ct[n] != ' ')) {
            pl_respond_problem(req, 415, "send the body as application/json", NULL);
            return false;
        }
    }
    char detail[160];
    if (pl_json_parse_object(body, len, &g->body, detail, sizeof detail) != 0) {
        pl_respond_problem(req, 400, detail, NULL);
        return false;
    }
    pl_req_on_cleanup(req, (void (*)(void *))json_decref, g->body);
    return true;
}

/* The route's body rules: 503 while they cannot be checked, else 422 with every error at
 * once. false when answered. */
static bool check_body(struct guard *g)
{
    const struct body_rules *rules = (const struct body_rules *)pl_req_route(g->req)->data;
    const struct app *app = g->w->app;
    if (rules->ready && !rules->ready(g->body, app)) {
        reply_failure(g->req, PL_E_UNAVAILABLE, "body rules not ready");
        return false;
    }
    json_t *errors = pl_json_validate_ctx(g->body, rules->schema, app);
    if (rules->check) rules->check(g->body, &errors);
    if (!errors) return true;
    pl_respond_problem(g->req, 422, rules->detail ? rules->detail : "the request body is invalid",
                       errors);
    return false;
}

static void step_body(struct guard *g)
{
    struct pl_http_request *req = g->req;
    const struct pl_route *route = pl_req_route(req);
    if (route->flags & ROUTE_JSON) {
        if (!parse_body(g)) return;
        const char *key = pl_req_header(req, "idempotency-key");
        if ((route->flags & ROUTE_IDEMPOTENT) && key && !idempotency_key_ok(key)) {
            pl_respond_problem(req, 400,
                               "Idempotency-Key must be 1 to 255 printable ASCII characters", NULL);
            return;
        }
        if (!check_body(g)) return;
    }
    route->handler(req);
}

/* A cookie-authenticated request without an allowed Origin that changes something, or that
 * opens the WebSocket: the handshake is a GET, but browsers always send Origin with it, so
 * a cookie handshake without one (or with a foreign one) did not come from our pages. */
static bool cross_origin_refused(const struct guard *g)
{
    if (!g->p.cookie || g->origin_ok) return false;
    return unsafe_method(pl_req_method(g->req)) || (pl_req_route(g->req)->flags & ROUTE_LIVE);
}

/* After authentication: 403s (scope, Origin), then the rate limit. */
static void step_authorized(struct guard *g, const struct pl_rate_result *session_rate)
{
    struct pl_http_request *req = g->req;
    const struct pl_route *route = pl_req_route(req);
    if (g->p.kind == PRINCIPAL_TOKEN) {
        if (route->flags & ROUTE_SESSION_ONLY) {
            pl_respond_problem(req, 403, "personal access tokens cannot use this route", NULL);
            return;
        }
        if ((route->flags & ROUTE_USER_WIDE) && g->p.subject_ids) {
            pl_respond_problem(req, 403,
                               "this token is restricted to some subjects: user-wide routes "
                               "need a session or an unrestricted token",
                               NULL);
            return;
        }
        unsigned need = unsafe_method(pl_req_method(req)) ? SCOPE_WRITE : SCOPE_READ;
        if (!(g->p.scopes & need)) {
            pl_respond_problem(req, 403,
                               need == SCOPE_READ ? "this token lacks the read scope"
                                                  : "this token lacks the write scope",
                               NULL);
            return;
        }
        step_rate_separate(g);
        return;
    }
    if (cross_origin_refused(g)) {
        pl_respond_problem(req, 403,
                           "cross-origin request refused: Origin is missing or not allowed", NULL);
        return;
    }
    if (session_rate) {
        if (apply_rate(g, session_rate->allowed, session_rate, 1)) step_body(g);
        return;
    }
    step_body(g);
}

static void unauthorized(struct pl_http_request *req, const char *detail)
{
    pl_respond_problem(req, 401, detail, NULL);
}

/* A lookup in Redis (session, ticket) that did not succeed: NOTFOUND is the client's 401
 * with `detail`, anything else 503. false when status is 0. */
static bool lookup_failed(struct guard *g, int status, const char *detail, const char *what)
{
    if (status == 0) return false;
    if (status == PL_E_NOTFOUND)
        unauthorized(g->req, detail);
    else
        reply_failure(g->req, PL_E_UNAVAILABLE, what);
    return true;
}

static void on_session(int status, const char *user_id, const struct pl_rate_result *rate,
                       void *ctx)
{
    struct guard *g = ctx;
    if (lookup_failed(g, status, "the session is invalid or has expired", "session check")) return;
    g->p.kind = PRINCIPAL_SESSION;
    g->p.scopes = SCOPE_READ | SCOPE_WRITE;
    snprintf(g->p.user_id, sizeof g->p.user_id, "%s", user_id);
    snprintf(g->p.session_id, sizeof g->p.session_id, "%s", g->token_hash);
    pl_req_set_log_user(g->req, g->p.user_id);
    step_authorized(g, rate);
}

static void on_token(int status, const struct token_auth *t, void *ctx)
{
    struct guard *g = ctx;
    if (reply_failed(g->req, status, "token check")) return;
    if (!t || t->expired) {
        unauthorized(g->req, "the token is invalid, revoked or expired");
        return;
    }
    g->p.kind = PRINCIPAL_TOKEN;
    g->p.scopes = (unsigned)t->scopes;
    snprintf(g->p.user_id, sizeof g->p.user_id, "%s", t->user_id);
    snprintf(g->p.token_id, sizeof g->p.token_id, "%s", t->id);
    if (t->subject_ids) {
        g->p.subject_ids = pl_req_strdup(g->req, t->subject_ids);
        g->p.n_subject_ids = t->n_subject_ids;
    }
    pl_req_set_log_user(g->req, g->p.user_id);
    step_authorized(g, NULL);
}

/* A live ticket from ?access_token=: taken out of Redis (single use), then its session is
 * checked like a cookie's (expiry, sliding, the rate limit), and the socket belongs to that
 * session. No Origin check: the ticket is no ambient credential, and asking for it was a
 * cookie POST that passed one. */
static void on_ticket(int status, const char *session_hash, void *ctx)
{
    struct guard *g = ctx;
    if (lookup_failed(g, status, "the ticket is invalid, used or expired", "ticket check")) return;
    struct pulse_config *cfg = &g->w->app->cfg;
    snprintf(g->token_hash, sizeof g->token_hash, "%s", session_hash);
    const char *cls = rate_class(g->req);
    sessions_check(g->w, g->token_hash, cls, cfg->rate_limits ? rule_for(cfg, cls) : NULL,
                   on_session, g);
}

static void step_ticket(struct guard *g, const char *ticket)
{
    if (ticket_hash(ticket, g->token_hash) != 0) {
        unauthorized(g->req, "the ticket is invalid, used or expired");
        return;
    }
    if (tickets_redeem(g->w, g->token_hash, on_ticket, g) != 0)
        reply_failure(g->req, PL_E_UNAVAILABLE, "ticket check");
}

/* The request's credential into token (cap bytes): the Bearer header, else the session
 * cookie, else on the live route ?access_token=. false when the request has been answered
 * or handed to the ticket check. */
static bool read_credential(struct guard *g, char *token, size_t cap)
{
    struct pl_http_request *req = g->req;
    struct pulse_config *cfg = &g->w->app->cfg;
    const char *auth = pl_req_header(req, "authorization");
    if (auth) {
        if (strncasecmp(auth, "Bearer ", 7) != 0 || strlen(auth + 7) >= cap) {
            unauthorized(req, "use Authorization: Bearer <token>");
            return false;
        }
        snprintf(token, cap, "%s", auth + 7);
        return true;
    }
    const char *cookie = pl_req_header(req, "cookie");
    const char *query_token = NULL;
    if (cookie && cookie_value(cookie, session_cookie(cfg), token, cap) && *token) {
        g->p.cookie = true;
        g->origin_ok = origin_allowed(cfg, pl_req_header(req, "origin"));
        return true;
    }
    if ((pl_req_route(req)->flags & ROUTE_LIVE) &&
        !pl_req_query_param(req, "access_token", &query_token))
        return false; /* malformed or repeated: answered 400 */
    if (!query_token || !*query_token || strlen(query_token) >= cap) {
        unauthorized(req, "authentication required");
        return false;
    }
    /* For clients that cannot set headers on a WebSocket: a personal access token or a
     * single-use ticket, never a session token (URLs end up in proxy logs and browser
     * history; our own access log writes the path only). */
    if (strncmp(query_token, TICKET_PREFIX, strlen(TICKET_PREFIX)) == 0) {
        step_ticket(g, query_token);
        return false;
    }
    if (strncmp(query_token, "pat_", 4) != 0) {
        unauthorized(req, "?access_token= takes a personal access token or a ticket from "
                          "POST /api/v1/live/ticket, never a session token");
        return false;
    }
    snprintf(token, cap, "%s", query_token);
    return true;
}

static void step_authenticate(struct guard *g)
{
    struct pl_http_request *req = g->req;
    struct pulse_config *cfg = &g->w->app->cfg;
    char token[160] = "";
    if (!read_credential(g, token, sizeof token)) return;
    if (strncmp(token, "pat_", 4) == 0) {
        if (g->p.cookie || token_hash_of(token, g->token_hash) != 0) {
            unauthorized(req, "the token is invalid, revoked or expired");
            return;
        }
        auth_store_token_auth(g->w, g->token_hash, on_token, g);
        return;
    }
    if (session_hash(token, g->token_hash) != 0) {
        unauthorized(req, "the session is invalid or has expired");
        return;
    }
    /* The rate limit rides on the session check (one round trip), unless an Origin failure
     * will refuse the request anyway: refused requests are not counted. */
    const struct pl_rate_rule *rule = NULL;
    const char *cls = rate_class(req);
    bool will_403 = cross_origin_refused(g);
    if (cfg->rate_limits && !will_403) rule = rule_for(cfg, cls);
    sessions_check(g->w, g->token_hash, cls, rule, on_session, g);
}

/* Compares in constant time so the token cannot be guessed byte by byte from timings. */
static bool metrics_token_ok(struct pl_http_request *req, const char *token)
{
    if (!token || !*token) return true;
    const char *auth = pl_req_header(req, "authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return false;
    const char *given = auth + 7;
    size_t n = strlen(token);
    if (strlen(given) != n) return false;
    return sodium_memcmp(given, token, n) == 0;
}

void app_dispatch(struct pl_http_request *req, void *ctx)
{
    struct worker *w = ctx;
    const struct pl_route *route = pl_req_route(req);
    struct guard *g = pl_req_alloc(req, sizeof *g);
    memset(g, 0, sizeof *g);
    g->req = req;
    g->w = w;
    pl_req_set_user_data(req, g);
    if ((route->flags & ROUTE_METRICS_TOKEN) && !metrics_token_ok(req, w->app->cfg.metrics_token)) {
        pl_respond_problem(req, 401, "a valid metrics token is required", NULL);
        return;
    }
    if (route->flags & ROUTE_AUTH) {
        step_authenticate(g);
        return;
    }
    if (route->flags & (ROUTE_RATE_LOGIN | ROUTE_RATE_REGISTER)) {
        step_rate_separate(g);
        return;
    }
    step_body(g);
}
