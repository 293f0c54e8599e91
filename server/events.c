#include "events.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "pl/log.h"
#include "pl/mem.h"

/* KEYS[1] the seq counter, KEYS[2] the outbox row's dedupe key or ''.
 * ARGV: retain_s, retain_count, the frame's text before the seq, after it, the user ids.
 * Returns N, or 0 when the outbox row was published already. */
static const char publish_lua[] =
    "if KEYS[2] ~= '' then\n"
    "  if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[1]) + 3600) then\n"
    "    return 0\n"
    "  end\n"
    "end\n"
    "local n = redis.call('INCR', KEYS[1])\n"
    "local seq = string.format('%d', n)\n"
    "local frame = ARGV[3] .. seq .. ARGV[4]\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local retain_s = tonumber(ARGV[1])\n"
    "local cutoff = now - retain_s * 1000\n"
    "local count = tonumber(ARGV[2])\n"
    "for i = 5, #ARGV do\n"
    "  local key = 'pulse:stream:' .. ARGV[i]\n"
    "  redis.call('XADD', key, seq .. '-0', 'f', frame, 't', now)\n"
    /* drop the oldest entries while more than `count` remain and they are older than the
     * cutoff (publication times grow with the ids) */
    "  local len = redis.call('XLEN', key)\n"
    "  while len > count do\n"
    /* the common case, a busy user's young stream: one entry read */
    "    local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)\n"
    "    if #first == 0 or tonumber(first[1][2][4]) >= cutoff then break end\n"
    "    local batch = redis.call('XRANGE', key, '-', '+', 'COUNT', math.min(len - count, 100))\n"
    "    local gone = {}\n"
    "    for _, e in ipairs(batch) do\n"
    "      if tonumber(e[2][4]) >= cutoff then break end\n"
    "      gone[#gone + 1] = e[1]\n"
    "    end\n"
    "    if #gone == 0 then break end\n"
    "    redis.call('XDEL', key, unpack(gone))\n"
    "    len = len - #gone\n"
    "    if #gone < #batch then break end\n"
    "  end\n"
    "  redis.call('EXPIRE', key, retain_s)\n"
    "  redis.call('PUBLISH', 'pulse:user:' .. ARGV[i], frame)\n"
    "end\n"
    "return n\n";

#define USER_CHANNEL   "pulse:user:"
#define MAX_RECIPIENTS 1024
#define SWEEP_BATCH    "200"

void events_user_channel(const char *user_id, char *out, size_t cap)
{
    snprintf(out, cap, USER_CHANNEL "%s", user_id);
}

void events_user_stream(const char *user_id, char *out, size_t cap)
{
    snprintf(out, cap, "pulse:stream:%s", user_id);
}

bool events_channel_user(const char *channel, size_t len, char *out, size_t cap)
{
    size_t n = strlen(USER_CHANNEL);
    if (len <= n || len - n >= cap || memcmp(channel, USER_CHANNEL, n) != 0) return false;
    memcpy(out, channel + n, len - n);
    out[len - n] = 0;
    return true;
}

static void on_published(int status, redisReply *reply, void *ctx)
{
    free(ctx);
}

void events_publish_text(struct worker *w, const char *channel, char *payload)
{
    const char *argv[] = {"PUBLISH", channel, payload};
    if (pl_redis_command(w->redis, 3, argv, NULL, on_published, payload) != 0) free(payload);
}

/* ---- the publish script ---- */

struct publish {
    struct worker *w;
    struct pl_http_request *req; /* held until Redis answers (NULL: none) */
    char outbox_id[64];          /* the row's "<id>.<token>", "" without an outbox row */
};

static void on_outbox_deleted(int status, PGresult **results, int n, void *ctx)
{
    if (status && status != PL_E_CANCELLED)
        pl_log(PL_LOG_WARN, "event outbox row not deleted (the sweeper will retry)",
               PL_INT("status", status));
}

static void delete_row(struct worker *w, const char *ref)
{
    const char *v[] = {ref};
    if (w->pg && pl_pg_exec1(w->pg, "events_outbox_delete", 1, v, on_outbox_deleted, NULL) != 0)
        pl_log(PL_LOG_WARN, "event outbox row not deleted", PL_STR("id", ref));
}

static void on_script(int status, redisReply *reply, void *ctx)
{
    struct publish *p = ctx;
    struct worker *w = p->w;
    bool ok = status == 0 && reply && reply->type == REDIS_REPLY_INTEGER;
    if (!ok && status != PL_E_CANCELLED)
        pl_log(PL_LOG_WARN, "event not published",
               PL_STR("error", status == 0 && reply && reply->type == REDIS_REPLY_ERROR
                                   ? reply->str
                                   : "redis unavailable"),
               PL_STR("outbox_id", p->outbox_id));
    /* Published now or before (0: the dedupe key was there): the row has done its job. */
    if (ok && p->outbox_id[0]) delete_row(w, p->outbox_id);
    if (p->req) pl_req_release(p->req);
    free(p);
}

/* Whether s (an id or an event name) goes into the frame's JSON as is: nothing to escape. */
static bool plain(const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) return false;
    return true;
}

static void publish(struct worker *w, struct pl_http_request *req, const char *outbox_id,
                    const char *subject_id, const char **users, int nusers, const char *event,
                    const char *data_json)
{
    if (nusers == 0 || !plain(event) || (subject_id && !plain(subject_id))) {
        /* nobody to tell (or nothing a frame can carry): the row has nothing to deliver */
        if (outbox_id && outbox_id[0]) delete_row(w, outbox_id);
        return;
    }
    if (!w->events_script) return;
    size_t hn = strlen(event) + (subject_id ? strlen(subject_id) : 0) + 80;
    char *head = pl_xmalloc(hn);
    if (subject_id) {
        /* in lower case, as Postgres writes it (a path's id may have come in upper case) */
        char *lower = pl_xstrdup(subject_id);
        for (char *c = lower; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        snprintf(head, hn, "{\"type\":\"event\",\"event\":\"%s\",\"subject_id\":\"%s\",\"seq\":\"",
                 event, lower);
        free(lower);
    } else
        snprintf(head, hn, "{\"type\":\"event\",\"event\":\"%s\",\"subject_id\":null,\"seq\":\"",
                 event);
    size_t tn = strlen(data_json) + 16;
    char *tail = pl_xmalloc(tn);
    snprintf(tail, tn, "\",\"data\":%s}", data_json);
    char retain_s[24], retain_count[24], dedupe[96] = "";
    snprintf(retain_s, sizeof retain_s, "%lld", w->app->cfg.events_retain_s);
    snprintf(retain_count, sizeof retain_count, "%lld", w->app->cfg.events_retain_count);
    struct publish *p = pl_xcalloc(1, sizeof *p);
    p->w = w;
    p->req = req;
    if (outbox_id && outbox_id[0]) {
        snprintf(p->outbox_id, sizeof p->outbox_id, "%s", outbox_id);
        snprintf(dedupe, sizeof dedupe, "pulse:outbox:%s", p->outbox_id);
    }
    const char *keys[] = {"pulse:seq", dedupe};
    const char **args = pl_xcalloc((size_t)nusers + 4, sizeof *args);
    args[0] = retain_s;
    args[1] = retain_count;
    args[2] = head;
    args[3] = tail;
    for (int i = 0; i < nusers; i++)
        args[4 + i] = users[i];
    if (pl_redis_eval(w->redis, w->events_script, 2, keys, NULL, nusers + 4, args, NULL, on_script,
                      p) != 0) {
        /* Redis is down: the outbox row (if any) stays for the sweeper. */
        pl_log(PL_LOG_WARN, "event not published", PL_STR("error", "redis unavailable"),
               PL_STR("event", event));
        free(p);
    } else if (req) {
        pl_req_hold(req);
    }
    free(args);
    free(head);
    free(tail);
}

/* The user ids of a Postgres array literal "{a,b}" (each under 40 bytes) into ids[] (pointers
 * into buf, a copy). Returns how many. */
static int parse_members(const char *members, char *buf, size_t cap, const char **ids, int max)
{
    if (!members || members[0] != '{') return 0;
    snprintf(buf, cap, "%s", members + 1);
    int n = 0;
    char *p = buf;
    while (*p && *p != '}' && n < max) {
        size_t len = strcspn(p, ",}");
        char end = p[len];
        p[len] = 0;
        if (len > 0 && len < 40 && plain(p)) ids[n++] = p;
        p += len;
        if (end == 0 || end == '}') break;
        p++;
    }
    return n;
}

static void publish_members(struct worker *w, struct pl_http_request *req, const char *outbox_id,
                            const char *subject_id, const char *members, const char *event,
                            const char *data_json)
{
    if (outbox_id && outbox_id[0] && w->app->cfg.test_skip_publish) return;
    if (!members) return;
    size_t cap = strlen(members) + 1;
    char *buf = pl_xmalloc(cap);
    const char **ids = pl_xcalloc(MAX_RECIPIENTS, sizeof *ids);
    int n = parse_members(members, buf, cap, ids, MAX_RECIPIENTS);
    publish(w, req, outbox_id, subject_id, ids, n, event, data_json);
    free(ids);
    free(buf);
}

void events_publish_outbox(struct worker *w, const char *outbox_id, const char *subject_id,
                           const char *members, const char *event, const char *data_json)
{
    publish_members(w, NULL, outbox_id, subject_id, members, event, data_json);
}

void events_publish_for(struct pl_http_request *req, const char *outbox_id, const char *subject_id,
                        const char *members, const char *event, const char *data_json)
{
    publish_members(req_worker(req), req, outbox_id, subject_id, members, event, data_json);
}

void events_publish_members(struct worker *w, const char *subject_id, const char *members,
                            const char *event, const char *data_json)
{
    events_publish_outbox(w, NULL, subject_id, members, event, data_json);
}

void events_publish_raw(struct worker *w, const char *user_id, const char *event,
                        const char *data_json)
{
    const char *ids[] = {user_id};
    if (!plain(user_id)) return;
    publish(w, NULL, NULL, NULL, ids, 1, event, data_json);
}

void events_publish(struct worker *w, const char *user_id, const char *event, json_t *data)
{
    char *text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(data);
    if (!text) return;
    events_publish_raw(w, user_id, event, text);
    free(text);
}

static void on_forgotten(int status, redisReply *reply, void *ctx) {}

void events_forget_user(struct worker *w, const char *user_id)
{
    char key[80];
    events_user_stream(user_id, key, sizeof key);
    const char *argv[] = {"DEL", key};
    if (pl_redis_command(w->redis, 2, argv, NULL, on_forgotten, NULL) != 0)
        pl_log(PL_LOG_WARN, "event stream of a deleted user left to expire");
}

/* ---- the outbox sweeper ---- */

int events_prepare(struct pl_pg_pool *pool)
{
    int rc =
        pl_pg_pool_prepare(pool, "events_outbox_delete",
                           "DELETE FROM event_outbox WHERE id = split_part($1, '.', 1)::bigint "
                           "AND token = split_part($1, '.', 2)::uuid",
                           1);
    /* $1: the age in ms after which a row is swept, and after which a claim by a sweeper
     * that died is taken over */
    if (rc == 0)
        rc = pl_pg_pool_prepare(
            pool, "events_outbox_claim",
            "WITH c AS (UPDATE event_outbox SET claimed_at = now() WHERE id IN (SELECT id FROM "
            "event_outbox WHERE created_at < now() - $1::int * interval '1 millisecond' AND "
            "(claimed_at IS NULL OR claimed_at < now() - $1::int * interval '1 millisecond') "
            "ORDER BY id LIMIT " SWEEP_BATCH " FOR UPDATE SKIP LOCKED) "
            "RETURNING id, " EVENTS_OUTBOX_REF " AS ref, user_ids, subject_id, event, data) "
            "SELECT ref, user_ids, subject_id, event, data FROM c ORDER BY id",
            1);
    return rc;
}

static void on_claimed(int status, PGresult **results, int n, void *ctx)
{
    struct worker *w = ctx;
    w->events_sweeping = false;
    if (status) {
        if (status != PL_E_CANCELLED)
            pl_log(PL_LOG_WARN, "event outbox sweep failed", PL_INT("status", status));
        return;
    }
    const PGresult *r = results[0];
    int rows = PQntuples(r);
    if (rows > 0)
        pl_log(PL_LOG_INFO, "event outbox: publishing rows left behind", PL_INT("rows", rows));
    for (int i = 0; i < rows; i++)
        events_publish_outbox(w, PQgetvalue(r, i, 0),
                              PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2),
                              PQgetvalue(r, i, 1), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
}

static void on_sweep(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (w->events_sweeping || !w->pg || !w->redis || !pl_redis_connected(w->redis) ||
        !atomic_load(&w->app->migrated))
        return;
    char age[24];
    snprintf(age, sizeof age, "%lld", w->app->cfg.events_sweep_age_ms);
    const char *v[] = {age};
    if (pl_pg_exec1(w->pg, "events_outbox_claim", 1, v, on_claimed, w) == 0)
        w->events_sweeping = true;
}

int events_worker_start(struct worker *w)
{
    int rc = pl_redis_script_create(w->redis, publish_lua, &w->events_script);
    if (rc) return rc;
    if (w->id == 0 && !w->app->cfg.test_skip_publish) {
        uv_timer_init(&w->loop, &w->events_sweep);
        w->events_sweep.data = w;
        uint64_t every = (uint64_t)w->app->cfg.events_sweep_ms;
        uv_timer_start(&w->events_sweep, on_sweep, every, every);
        w->events_sweep_on = true;
    }
    return 0;
}

void events_worker_close(struct worker *w)
{
    if (w->events_sweep_on) {
        uv_timer_stop(&w->events_sweep);
        uv_close((uv_handle_t *)&w->events_sweep, NULL);
        w->events_sweep_on = false;
    }
}
