/* What becomes of credentials after they were issued: revocations told to every replica (so
 * that live sockets opened with them close), and the liveness checks of credentials that
 * live sockets hold, for expiry, which no message announces.
 *
 *   pulse:revoke   {"user_id":..., "kind":"session"|"others"|"all"|"token", "id":...} */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../events.h"
#include "auth.h"
#include "sessions.h"
#include "pl/mem.h"

static const char *const kinds[AUTH_REVOKE_KINDS] = {"session", "others", "all", "token"};

void auth_publish_revocation(struct pl_http_request *req, enum auth_revoke kind, const char *id)
{
    json_t *msg = json_pack("{s:s, s:s, s:s}", "user_id", req_principal(req)->user_id, "kind",
                            kinds[kind], "id", id ? id : "");
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (text) events_publish_text(req_worker(req), AUTH_REVOKE_CHANNEL, text);
}

int auth_revocation_parse(const char *payload, size_t len, struct auth_revocation *out)
{
    json_t *msg = json_loadb(payload, len, 0, NULL);
    const char *user_id = json_string_value(json_object_get(msg, "user_id"));
    const char *kind = json_string_value(json_object_get(msg, "kind"));
    const char *id = json_string_value(json_object_get(msg, "id"));
    int rc = -1;
    for (int k = 0; user_id && kind && k < AUTH_REVOKE_KINDS; k++) {
        if (strcmp(kind, kinds[k]) != 0) continue;
        if (strlen(user_id) >= sizeof out->user_id || (id && strlen(id) >= sizeof out->id)) break;
        out->kind = (enum auth_revoke)k;
        snprintf(out->user_id, sizeof out->user_id, "%s", user_id);
        snprintf(out->id, sizeof out->id, "%s", id ? id : "");
        rc = 0;
    }
    json_decref(msg);
    return rc;
}

bool auth_revocation_covers(const struct auth_revocation *r, enum principal_kind kind,
                            const char *credential)
{
    switch (r->kind) {
    case AUTH_REVOKE_ALL:
        return true;
    case AUTH_REVOKE_TOKEN:
        return kind == PRINCIPAL_TOKEN && strcmp(credential, r->id) == 0;
    case AUTH_REVOKE_SESSION:
        return kind == PRINCIPAL_SESSION && strcmp(credential, r->id) == 0;
    case AUTH_REVOKE_OTHERS:
        return kind == PRINCIPAL_SESSION && strcmp(credential, r->id) != 0;
    default:
        return false;
    }
}

/* ---- liveness ---- */

struct alive {
    auth_alive_cb cb;
    void *ctx;
};

static struct alive *alive_new(auth_alive_cb cb, void *ctx)
{
    struct alive *a = pl_xmalloc(sizeof *a);
    a->cb = cb;
    a->ctx = ctx;
    return a;
}

static void alive_done(struct alive *a, int status, bool alive)
{
    a->cb(status, alive, a->ctx);
    free(a);
}

static void on_session_alive(int status, const char *user_id, const struct pl_rate_result *rate,
                             void *ctx)
{
    if (status == PL_E_NOTFOUND)
        alive_done(ctx, 0, false);
    else
        alive_done(ctx, status, true);
}

static void on_token_alive(int status, PGresult **results, int n, void *ctx)
{
    alive_done(ctx, status, status != 0 || n != 1 || PQntuples(results[0]) != 0);
}

void auth_credential_alive(struct worker *w, enum principal_kind kind, const char *user_id,
                           const char *credential, auth_alive_cb cb, void *ctx)
{
    struct alive *a = alive_new(cb, ctx);
    if (kind == PRINCIPAL_SESSION) {
        /* Like any use of the session, this slides its idle expiry: an open dashboard is
         * activity. */
        sessions_check(w, credential, "read", NULL, on_session_alive, a);
        return;
    }
    const char *v[] = {credential, user_id};
    if (pl_pg_exec1(w->pg, "auth_token_alive", 2, v, on_token_alive, a) != 0)
        alive_done(a, PL_E_UNAVAILABLE, true);
}
