/* tickets: see tickets.h. */
#include "tickets.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "guards.h"
#include "live.h"
#include "pl/json.h"
#include "pl/time.h"

#define TICKET_KEY_PREFIX "pulse:ticket:"

static bool base64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

int ticket_hash(const char *ticket, char hash[SESSION_HASH_HEX + 1])
{
    size_t n = strlen(ticket);
    size_t p = strlen(TICKET_PREFIX);
    if (n != TICKET_LEN || strncmp(ticket, TICKET_PREFIX, p) != 0) return -1;
    for (size_t i = p; i < n; i++)
        if (!base64url_char(ticket[i])) return -1;
    unsigned char h[32];
    crypto_generichash(h, sizeof h, (const unsigned char *)ticket, n, NULL, 0);
    sodium_bin2hex(hash, SESSION_HASH_HEX + 1, h, sizeof h);
    return 0;
}

static bool hex_hash(const char *s, size_t len)
{
    if (len != SESSION_HASH_HEX) return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
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
    } else if (r->type == REDIS_REPLY_STRING && hex_hash(r->str, r->len)) {
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
    struct redeem *d = malloc(sizeof *d);
    if (!d) abort();
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

static const struct pl_jschema empty_schema = {NULL, 0, NULL};

void live_ticket_create(struct pl_http_request *req)
{
    json_t *errors = pl_json_validate(req_json(req), &empty_schema);
    if (errors) {
        pl_respond_problem(req, 422, "a ticket request takes no body", errors);
        return;
    }
    const struct principal *p = req_principal(req);
    struct issue *t = pl_req_alloc(req, sizeof *t);
    t->req = req;
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    memcpy(t->ticket, TICKET_PREFIX, strlen(TICKET_PREFIX));
    sodium_bin2base64(t->ticket + strlen(TICKET_PREFIX), sizeof t->ticket - strlen(TICKET_PREFIX),
                      raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
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
