#include "sessions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../ids.h"
#include "auth_internal.h"
#include "pl/json.h"
#include "pl/mem.h"

#define SESS_PREFIX  "pulse:sess:"
#define USESS_PREFIX "pulse:usess:"
#define RATE_PREFIX  "pulse:rl:"

static const char create_lua[] =
    "local t = redis.call('TIME')\n"
    "local now_s = tonumber(t[1])\n"
    "local now_ms = now_s * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local idle, abs = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "redis.call('HSET', KEYS[1], 'user_id', ARGV[1], 'created_at', now_ms, 'last_seen_at',\n"
    "  now_ms, 'abs_exp', now_s + abs, 'ua', ARGV[4], 'ip', ARGV[5])\n"
    "redis.call('EXPIRE', KEYS[1], math.min(idle, abs))\n"
    "redis.call('SADD', KEYS[2], ARGV[6])\n"
    "if redis.call('TTL', KEYS[2]) < abs then redis.call('EXPIRE', KEYS[2], abs) end\n"
    "return {now_ms, now_ms + abs * 1000}\n";

/* Appended to pl_ratelimit_lua, which defines pl_gcra. */
static const char check_lua_main[] =
    "local t = redis.call('TIME')\n"
    "local now_s = tonumber(t[1])\n"
    "local now_us = now_s * 1000000 + tonumber(t[2])\n"
    "local s = redis.call('HMGET', KEYS[1], 'user_id', 'abs_exp', 'last_seen_at')\n"
    "if not s[1] then return {0} end\n"
    "local abs = tonumber(s[2])\n"
    "if abs <= now_s then redis.call('DEL', KEYS[1]) return {0} end\n"
    "local now_ms = math.floor(now_us / 1000)\n"
    "redis.call('HSET', KEYS[1], 'last_seen_at', now_ms)\n"
    "redis.call('EXPIRE', KEYS[1], math.min(tonumber(ARGV[1]), abs - now_s))\n"
    "if ARGV[2] == '' then return {1, s[1]} end\n"
    "local g = pl_gcra(ARGV[5] .. ARGV[2] .. ':' .. s[1], now_us, tonumber(ARGV[3]),\n"
    "  tonumber(ARGV[4]))\n"
    "return {1, s[1], g[1], g[2], g[3], g[4]}\n";

static const char list_lua[] =
    "local out = {}\n"
    "for _, h in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local v = redis.call('HMGET', ARGV[1] .. h, 'created_at', 'last_seen_at', 'ua', 'ip')\n"
    "  if v[1] then\n"
    "    out[#out + 1] = {h, v[1], v[2], v[3] or '', v[4] or ''}\n"
    "  else\n"
    "    redis.call('SREM', KEYS[1], h)\n"
    "  end\n"
    "end\n"
    "return out\n";

static const char revoke_lua[] = "local mode, target, prefix = ARGV[1], ARGV[2], ARGV[3]\n"
                                 "if mode == 'one' then\n"
                                 "  if redis.call('SREM', KEYS[1], target) == 0 then return 0 end\n"
                                 "  redis.call('DEL', prefix .. target)\n"
                                 "  return 1\n"
                                 "end\n"
                                 "local n = 0\n"
                                 "for _, h in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
                                 "  if mode == 'all' or h ~= target then\n"
                                 "    redis.call('DEL', prefix .. h)\n"
                                 "    redis.call('SREM', KEYS[1], h)\n"
                                 "    n = n + 1\n"
                                 "  end\n"
                                 "end\n"
                                 "return n\n";

void session_token_new(char token[SESSION_TOKEN_LEN + 1], char hash[SESSION_HASH_HEX + 1])
{
    ids_new_secret("", token, SESSION_TOKEN_LEN + 1);
    session_hash(token, hash);
}

int session_hash(const char *token, char hash[SESSION_HASH_HEX + 1])
{
    size_t n = strlen(token);
    if (n != SESSION_TOKEN_LEN || !ids_is_base64url(token, n)) return -1;
    ids_hash_hex(token, n, hash);
    return 0;
}

int sessions_worker_init(struct worker *w)
{
    size_t n = strlen(pl_ratelimit_lua) + sizeof check_lua_main + 2;
    char *check = pl_xmalloc(n);
    snprintf(check, n, "%s\n%s", pl_ratelimit_lua, check_lua_main);
    int rc = pl_redis_script_create(w->redis, check, &w->auth->sess_check);
    free(check);
    if (rc == 0) rc = pl_redis_script_create(w->redis, create_lua, &w->auth->sess_create);
    if (rc == 0) rc = pl_redis_script_create(w->redis, list_lua, &w->auth->sess_list);
    if (rc == 0) rc = pl_redis_script_create(w->redis, revoke_lua, &w->auth->sess_revoke);
    return rc;
}

static long long int_at(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements) return 0;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER) return e->integer;
    if (e->type == REDIS_REPLY_STRING) return strtoll(e->str, NULL, 10);
    return 0;
}

static const char *str_at(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements) return "";
    const redisReply *e = r->element[i];
    return e->type == REDIS_REPLY_STRING ? e->str : "";
}

/* Maps a transport failure or an error reply to PL_E_UNAVAILABLE. */
static int reply_status(int status, const redisReply *r)
{
    if (status) return PL_E_UNAVAILABLE;
    if (!r || r->type == REDIS_REPLY_ERROR) return PL_E_UNAVAILABLE;
    return 0;
}

/* One script call: the caller's callback and what decodes the reply for it. The decoder
 * gets rc = 0 and the reply, or an error code and NULL; it runs exactly once. */
struct call {
    void (*decode)(struct call *c, int rc, const redisReply *r);
    union {
        session_create_cb create;
        session_check_cb check;
        session_list_cb list;
        session_revoke_cb revoke;
    } cb;
    void *ctx;
    int limit; /* check: the rule's count, for the RateLimit-Limit header */
    bool rate; /* check: a rate rule was applied */
};

static struct call *call_new(void (*decode)(struct call *, int, const redisReply *), void *ctx)
{
    struct call *c = pl_xcalloc(1, sizeof *c);
    c->decode = decode;
    c->ctx = ctx;
    return c;
}

static void on_reply(int status, redisReply *r, void *arg)
{
    struct call *c = arg;
    int rc = reply_status(status, r);
    c->decode(c, rc, rc ? NULL : r);
    free(c);
}

/* A failure to even queue the command still answers through the callback, from the loop. */
struct deferred {
    uv_timer_t t;
    struct call *call;
};

static void deferred_closed(uv_handle_t *h)
{
    free(h);
}

static void deferred_run(uv_timer_t *t)
{
    struct deferred *d = (struct deferred *)t;
    on_reply(PL_E_UNAVAILABLE, NULL, d->call);
    uv_close((uv_handle_t *)t, deferred_closed);
}

static void eval_script(struct worker *w, struct pl_redis_script *script, int nkeys,
                        const char **keys, int nargs, const char **args, struct call *c)
{
    if (pl_redis_eval(w->redis, script, nkeys, keys, NULL, nargs, args, NULL, on_reply, c) == 0)
        return;
    struct deferred *d = pl_xcalloc(1, sizeof *d);
    d->call = c;
    uv_timer_init(&w->loop, &d->t);
    uv_timer_start(&d->t, deferred_run, 0, 0);
}

/* ---- create ---- */

static void decode_create(struct call *c, int rc, const redisReply *r)
{
    if (!rc && (r->type != REDIS_REPLY_ARRAY || r->elements != 2)) rc = PL_E_UNAVAILABLE;
    c->cb.create(rc, rc ? 0 : int_at(r, 0), rc ? 0 : int_at(r, 1), c->ctx);
}

void sessions_create(struct worker *w, const char *hash, const char *user_id, const char *ua,
                     const char *ip, session_create_cb cb, void *ctx)
{
    struct call *c = call_new(decode_create, ctx);
    c->cb.create = cb;
    char skey[96], ukey[96], idle[24], abs[24], ua_cut[256];
    snprintf(skey, sizeof skey, SESS_PREFIX "%s", hash);
    snprintf(ukey, sizeof ukey, USESS_PREFIX "%s", user_id);
    snprintf(idle, sizeof idle, "%lld", w->app->cfg.session_idle_s);
    snprintf(abs, sizeof abs, "%lld", w->app->cfg.session_absolute_s);
    /* Stored for display and listed as JSON: keep it valid UTF-8, whatever was sent. */
    pl_utf8_sanitize(ua ? ua : "", ua_cut, sizeof ua_cut);
    const char *keys[] = {skey, ukey};
    const char *args[] = {user_id, idle, abs, ua_cut, ip, hash};
    eval_script(w, w->auth->sess_create, 2, keys, 6, args, c);
}

/* ---- check ---- */

static void decode_check(struct call *c, int rc, const redisReply *r)
{
    if (rc || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        c->cb.check(rc ? rc : PL_E_UNAVAILABLE, NULL, NULL, c->ctx);
        return;
    }
    if (int_at(r, 0) != 1) {
        c->cb.check(PL_E_NOTFOUND, NULL, NULL, c->ctx);
        return;
    }
    struct pl_rate_result res = {0};
    if (c->rate && r->elements >= 6) {
        res.allowed = int_at(r, 2) == 1;
        res.limit = c->limit;
        res.remaining = (int)int_at(r, 3);
        res.reset_s = (int)int_at(r, 4);
        res.retry_after_s = (int)int_at(r, 5);
    }
    c->cb.check(0, str_at(r, 1), c->rate ? &res : NULL, c->ctx);
}

void sessions_check(struct worker *w, const char *hash, const char *rate_class,
                    const struct pl_rate_rule *rule, session_check_cb cb, void *ctx)
{
    struct call *c = call_new(decode_check, ctx);
    c->cb.check = cb;
    c->rate = rule != NULL;
    c->limit = rule ? rule->count : 0;
    char skey[96], idle[24], count[24], period[24];
    snprintf(skey, sizeof skey, SESS_PREFIX "%s", hash);
    snprintf(idle, sizeof idle, "%lld", w->app->cfg.session_idle_s);
    snprintf(count, sizeof count, "%d", rule ? rule->count : 0);
    snprintf(period, sizeof period, "%d", rule ? rule->period_s : 0);
    const char *keys[] = {skey};
    const char *args[] = {idle, rule ? rate_class : "", count, period, RATE_PREFIX};
    eval_script(w, w->auth->sess_check, 1, keys, 5, args, c);
}

/* ---- list ---- */

static void decode_list(struct call *c, int rc, const redisReply *r)
{
    if (rc || r->type != REDIS_REPLY_ARRAY) {
        c->cb.list(rc ? rc : PL_E_UNAVAILABLE, NULL, 0, c->ctx);
        return;
    }
    size_t n = r->elements;
    struct session_info *items = pl_xcalloc(n ? n : 1, sizeof *items);
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 5) continue;
        snprintf(items[k].id, sizeof items[k].id, "%s", str_at(e, 0));
        items[k].created_ms = int_at(e, 1);
        items[k].last_seen_ms = int_at(e, 2);
        items[k].user_agent = str_at(e, 3);
        items[k].ip = str_at(e, 4);
        k++;
    }
    c->cb.list(0, items, k, c->ctx);
    free(items);
}

void sessions_list(struct worker *w, const char *user_id, session_list_cb cb, void *ctx)
{
    struct call *c = call_new(decode_list, ctx);
    c->cb.list = cb;
    char ukey[96];
    snprintf(ukey, sizeof ukey, USESS_PREFIX "%s", user_id);
    const char *keys[] = {ukey};
    const char *args[] = {SESS_PREFIX};
    eval_script(w, w->auth->sess_list, 1, keys, 1, args, c);
}

/* ---- revoke ---- */

static void decode_revoke(struct call *c, int rc, const redisReply *r)
{
    if (!rc && r->type != REDIS_REPLY_INTEGER) rc = PL_E_UNAVAILABLE;
    c->cb.revoke(rc, rc ? 0 : (int)r->integer, c->ctx);
}

void sessions_revoke(struct worker *w, const char *user_id, enum revoke_mode mode, const char *hash,
                     session_revoke_cb cb, void *ctx)
{
    struct call *c = call_new(decode_revoke, ctx);
    c->cb.revoke = cb;
    char ukey[96];
    snprintf(ukey, sizeof ukey, USESS_PREFIX "%s", user_id);
    const char *keys[] = {ukey};
    const char *modes[] = {"one", "others", "all"};
    const char *args[] = {modes[mode], hash ? hash : "", SESS_PREFIX};
    eval_script(w, w->auth->sess_revoke, 1, keys, 3, args, c);
}
