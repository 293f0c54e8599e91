/* tickets: see tickets.h. */
#include "tickets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "guards.h"
#include "ids.h"
#include "problems.h"
#include "live.h"
#include "pl/json.h"
#include "pl/mem.h"
#include "pl/time.h"

#define TICKET_KEY_PREFIX "pulse:ticket:"

int ticket_hash(const char *ticket, char hash[SESSION_HASH_HEX + 1])
{
    size_t n = strlen(ticket);
    size_t p = strlen(TICKET_PREFIX);
    if (n != TICKET_LEN || strncmp(ticket, TICKET_PREFIX, p) != 0 ||
        !ids_is_base64url(ticket + p, n - p))
        return -1;
    ids_hash_hex(ticket, n, hash);
    return 0;
}

/* ---- redeem ---- */

struct redeem {
    ticket_redeem_cb cb;
    void *ctx;
};

static void on_getdel(int status, redisReply *r, void *arg)
{
    struct redeem *d = arg;
    if (status || !r || r->type == REDIS_REPLY_ERROR) {
        d->cb(PL_E_UNAVAILABLE, NULL, d->ctx);
    } else if (r->type == REDIS_REPLY_STRING && r->len == SESSION_HASH_HEX &&
               ids_is_hex(r->str, r->len)) {
        char session[SESSION_HASH_HEX + 1];
        memcpy(session, r->str, SESSION_HASH_HEX);
        session[SESSION_HASH_HEX] = 0;
        d->cb(0, session, d->ctx);
    } else {
        d->cb(PL_E_NOTFOUND, NULL, d->ctx); /* nil: unknown, used or expired */
    }
    free(d);
}

int tickets_redeem(struct worker *w, const char *hash, ticket_redeem_cb cb, void *ctx)
{
    char key[96];
    snprintf(key, sizeof key, TICKET_KEY_PREFIX "%s", hash);
    struct redeem *d = pl_xmalloc(sizeof *d);
    d->cb = cb;
    d->ctx = ctx;
    const char *argv[] = {"GETDEL", key};
    if (pl_redis_command(w->redis, 2, argv, NULL, on_getdel, d) != 0) {
        free(d);
        return PL_E_UNAVAILABLE;
    }
    return 0;
}

/* ---- POST /api/v1/live/ticket ---- */

struct issue {
    struct pl_http_request *req;
    char ticket[TICKET_LEN + 1];
    int64_t expires_us;
};

static void on_stored(int status, redisReply *r, void *arg)
{
    struct issue *t = arg;
    if (status || !r || r->type == REDIS_REPLY_ERROR ||
        !(r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0)) {
        reply_failure(t->req, PL_E_UNAVAILABLE, "ticket store");
        return;
    }
    char exp[32];
    pl_time_format_rfc3339(t->expires_us, exp);
    pl_resp_header(t->req, "Cache-Control", "no-store");
    pl_respond_json(t->req, 201, json_pack("{s:s, s:s}", "ticket", t->ticket, "expires_at", exp));
}

const struct body_rules live_ticket_rules = {.schema = &empty_body_schema,
                                             .detail = "a ticket request takes no body"};

void live_ticket_create(struct pl_http_request *req)
{
    const struct principal *p = req_principal(req);
    struct issue *t = pl_req_alloc(req, sizeof *t);
    t->req = req;
    ids_new_secret(TICKET_PREFIX, t->ticket, sizeof t->ticket);
    char hash[SESSION_HASH_HEX + 1], key[96], ttl[16];
    if (ticket_hash(t->ticket, hash) != 0) abort(); /* our own ticket has the right shape */
    snprintf(key, sizeof key, TICKET_KEY_PREFIX "%s", hash);
    snprintf(ttl, sizeof ttl, "%d", TICKET_TTL_S);
    t->expires_us = pl_time_now_us() + (int64_t)TICKET_TTL_S * 1000000;
    /* NX: a collision of 256 random bits does not happen, but never overwrite a ticket. */
    const char *argv[] = {"SET", key, p->session_id, "EX", ttl, "NX"};
    if (pl_redis_command(req_worker(req)->redis, 6, argv, NULL, on_stored, t) != 0)
        reply_failure(req, PL_E_UNAVAILABLE, "ticket store");
}
