/* live: the worker side of /api/v1/live (see live.h). */
#include "live.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "guards.h"
#include "pl/json.h"
#include "pl/log.h"
#include "pl/mem.h"
#include "pl/time.h"
#include "pl/ws.h"
#include "auth/auth.h"
#include "events.h"
#include "tickets.h"

#define USER_BUCKETS  1024
#define CLOSE_REVOKED 4401
#define STOP_WAIT_MS  1000

struct live_user;

struct live_client {
    struct live_worker *lw;
    struct pl_ws_conn *ws;
    struct live_user *user;
    struct live_client *prev, *next;   /* every client of the worker */
    struct live_client *uprev, *unext; /* the user's clients */
    unsigned topics;
    unsigned checked; /* the recheck round that covered this socket's credential */
    enum principal_kind kind;
    bool hello_sent;
    char credential[72];       /* sessions: the token's hash; tokens: the token's id */
    struct live_cap_slot slot; /* its place under the per-user and per-IP caps */
    char *subject_ids; /* a token restricted to subjects: their ids ("{id,...}"), else NULL */
};

struct live_user {
    struct live_user *next; /* bucket chain */
    struct live_client *clients;
    char id[40];
};

struct live_worker {
    struct worker *w;
    struct pl_ws_server *ws;
    struct pl_redis_sub *sub;
    struct live_client *clients;
    struct live_user *users[USER_BUCKETS];
    struct pl_ws_frame *metrics;     /* the latest metrics frame, sent to new sockets at once */
    uv_idle_t fanout;                /* sends the metrics frame a chunk of sockets per turn */
    struct live_client *fanout_next; /* the next socket to get it */
    int open_handles;
    int pending_checks; /* credential checks in flight (they hold lw) */
    unsigned round;
    uv_timer_t recheck;
    uv_timer_t stop_timer;
    uint64_t stop_started;
    bool closing; /* live_worker_close ran: sockets closing now only free themselves */
    void (*stop_done)(struct worker *w);
};

void live_blob_unref(struct live_blob *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) free(b);
}

/* ---- users ---- */

static unsigned user_bucket(const char *id)
{
    return live_hash(id) % USER_BUCKETS;
}

static struct live_user *user_find(struct live_worker *lw, const char *id)
{
    for (struct live_user *u = lw->users[user_bucket(id)]; u; u = u->next)
        if (strcmp(u->id, id) == 0) return u;
    return NULL;
}

static struct live_user *user_get(struct live_worker *lw, const char *id)
{
    struct live_user *u = user_find(lw, id);
    if (u) return u;
    u = pl_xcalloc(1, sizeof *u);
    snprintf(u->id, sizeof u->id, "%s", id);
    unsigned b = user_bucket(id);
    u->next = lw->users[b];
    lw->users[b] = u;
    char channel[80];
    events_user_channel(id, channel, sizeof channel);
    if (pl_redis_subscribe(lw->sub, channel) != 0)
        pl_warn("live: subscribe failed", PL_STR("user_id", u->id));
    return u;
}

static void user_release(struct live_worker *lw, struct live_user *u)
{
    if (u->clients) return;
    char channel[80];
    events_user_channel(u->id, channel, sizeof channel);
    pl_redis_unsubscribe(lw->sub, channel);
    for (struct live_user **p = &lw->users[user_bucket(u->id)]; *p; p = &(*p)->next) {
        if (*p == u) {
            *p = u->next;
            break;
        }
    }
    free(u);
}

/* ---- messages to one client ---- */

/* Replies go through the socket the callback was given, never c->ws: a message that came
 * with the handshake (in the bytes read before the upgrade) is delivered while
 * pl_ws_accept is still adopting the socket, before it has returned the pointer. */
static void send_json(struct pl_ws_conn *ws, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!text) return;
    pl_ws_send_text(ws, text, strlen(text));
    free(text);
}

static void send_error(struct pl_ws_conn *ws, const char *detail)
{
    send_json(ws, json_pack("{s:s, s:s}", "type", "error", "detail", detail));
}

static json_t *topics_json(unsigned topics)
{
    json_t *a = json_array();
    if (topics & TOPIC_METRICS) json_array_append_new(a, json_string("metrics"));
    if (topics & TOPIC_EVENTS) json_array_append_new(a, json_string("events"));
    return a;
}

/* Once, before anything else the socket gets (a reply to a message that came with the
 * handshake included). */
static void send_hello(struct live_client *c, struct pl_ws_conn *ws)
{
    if (c->hello_sent) return;
    c->hello_sent = true;
    char now[32];
    pl_time_format_rfc3339(pl_time_now_us(), now);
    send_json(ws, json_pack("{s:s, s:s, s:s, s:s, s:o}", "type", "hello", "user_id", c->user->id,
                            "instance", c->lw->w->app->cfg.instance, "server_time", now, "topics",
                            topics_json(c->topics)));
}

static void on_ws_message(struct pl_ws_conn *ws, const char *data, size_t len, bool binary)
{
    struct live_client *c = pl_ws_user(ws);
    send_hello(c, ws);
    char detail[160];
    unsigned topics = 0;
    enum live_msg kind = live_message_parse(data, len, binary, &topics, detail, sizeof detail);
    if (kind == LIVE_MSG_PING) {
        pl_ws_send_text(ws, "{\"type\":\"pong\"}", 15);
    } else if (kind == LIVE_MSG_ERROR) {
        send_error(ws, detail);
    } else {
        c->topics = kind == LIVE_MSG_SUBSCRIBE ? (c->topics | topics) : (c->topics & ~topics);
        send_json(ws,
                  json_pack("{s:s, s:o}", "type", "subscribed", "topics", topics_json(c->topics)));
    }
}

static void on_ws_close(struct pl_ws_conn *ws, int code)
{
    struct live_client *c = pl_ws_user(ws);
    struct live_worker *lw = c->lw;
    atomic_fetch_sub(&lw->w->app->ws_clients, 1);
    live_caps_release(lw->w->app->live_caps, &c->slot);
    if (lw->closing) {
        free(c->subject_ids);
        free(c);
        return;
    }
    if (lw->fanout_next == c) lw->fanout_next = c->next;
    if (c->prev)
        c->prev->next = c->next;
    else
        lw->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    struct live_user *u = c->user;
    if (c->uprev)
        c->uprev->unext = c->unext;
    else
        u->clients = c->unext;
    if (c->unext) c->unext->uprev = c->uprev;
    if (code == 1008)
        pl_warn("live: slow reader closed", PL_STR("user_id", u->id),
                PL_UINT("queued_bytes", pl_ws_queued_bytes(ws)));
    else
        pl_debug("live: socket closed", PL_STR("user_id", u->id), PL_INT("code", code));
    user_release(lw, u);
    free(c->subject_ids);
    free(c);
}

/* ---- the route ---- */

/* A place under the per-user and per-IP caps into *slot; false after answering 429. */
static bool take_cap(struct pl_http_request *req, struct live_cap_slot *slot)
{
    struct app *app = req_worker(req)->app;
    enum live_cap cap =
        live_caps_take(app->live_caps, req_principal(req)->user_id, req_client_ip(req),
                       app->cfg.ws_per_user, app->cfg.ws_per_ip, slot);
    if (cap == LIVE_CAP_OK) return true;
    pl_resp_header(req, "Retry-After", "5");
    pl_respond_problem(req, 429,
                       cap == LIVE_CAP_USER
                           ? "too many live sockets open for this user: close one first"
                           : "too many live sockets open from this address: close one first",
                       NULL);
    return false;
}

/* An adopted socket joins its user's list and the worker's. */
static void client_link(struct live_worker *lw, struct live_client *c)
{
    struct live_user *u = c->user;
    c->unext = u->clients;
    if (u->clients) u->clients->uprev = c;
    u->clients = c;
    c->next = lw->clients;
    if (lw->clients) lw->clients->prev = c;
    lw->clients = c;
}

static void live_handler(struct pl_http_request *req)
{
    struct worker *w = req_worker(req);
    struct live_worker *lw = w->live;
    int status;
    const char *problem = pl_ws_upgrade_problem(req, &status);
    if (problem) {
        if (status == 426) pl_resp_header(req, "Upgrade", "websocket");
        pl_respond_problem(req, status, problem, NULL);
        return;
    }
    if (!lw || !lw->ws) {
        pl_resp_header(req, "Retry-After", "1");
        pl_respond_problem(req, 503, "live updates are unavailable", NULL);
        return;
    }
    const struct principal *p = req_principal(req);
    struct live_cap_slot slot;
    if (!take_cap(req, &slot)) return;
    struct live_client *c = pl_xcalloc(1, sizeof *c);
    c->lw = lw;
    c->topics = ALL_TOPICS;
    c->kind = p->kind;
    c->slot = slot;
    snprintf(c->credential, sizeof c->credential, "%s",
             p->kind == PRINCIPAL_TOKEN ? p->token_id : p->session_id);
    if (p->subject_ids) c->subject_ids = pl_xstrdup(p->subject_ids);
    /* Set before the adoption: a message may arrive inside it (see send_json). */
    struct live_user *u = user_get(lw, p->user_id);
    c->user = u;
    /* The request is finished inside pl_ws_accept: read what it holds first. */
    struct pl_ws_conn *ws = NULL;
    if (pl_ws_accept(lw->ws, req, c, &ws) != 0) {
        live_caps_release(w->app->live_caps, &c->slot);
        user_release(lw, u);
        free(c->subject_ids);
        free(c);
        return;
    }
    c->ws = ws;
    client_link(lw, c);
    atomic_fetch_add(&w->app->ws_clients, 1);
    send_hello(c, ws);
    if (lw->metrics) pl_ws_send_latest(ws, lw->metrics);
}

struct pl_route live_routes[] = {
    {.method = PL_M_GET,
     .pattern = "/api/v1/live",
     .handler = live_handler,
     .flags = ROUTE_AUTH | ROUTE_LIVE},
    {.method = PL_M_POST,
     .pattern = "/api/v1/live/ticket",
     .handler = live_ticket_create,
     .flags = ROUTE_AUTH | ROUTE_SESSION_ONLY | ROUTE_JSON,
     .data = ROUTE_BODY(&live_ticket_rules)},
    {0},
};

/* ---- from Redis: events and revocations ---- */

/* Whether an event frame reaches a socket: a token restricted to subjects hears only the
 * events of those subjects (and the user-level ones, "subject_id":null). The frame's own
 * subject_id comes before its data (events.c writes it so). */
static bool event_reaches(const struct live_client *c, const char *payload, size_t len)
{
    if (!c->subject_ids) return true;
    static const char key[] = "\"subject_id\":";
    const char *p = memmem(payload, len, key, sizeof key - 1);
    if (!p) return true;
    p += sizeof key - 1;
    if ((size_t)(payload + len - p) < 38 || *p != '"') return true; /* null */
    char id[37];
    memcpy(id, p + 1, 36);
    id[36] = 0;
    return strstr(c->subject_ids, id) != NULL;
}

static void deliver_event(struct live_worker *lw, const char *user_id, const char *payload,
                          size_t len)
{
    struct live_user *u = user_find(lw, user_id);
    if (!u) return;
    struct pl_ws_frame *f = NULL;
    for (struct live_client *c = u->clients, *next; c; c = next) {
        next = c->unext; /* a send over the cap closes, but on_close comes later */
        if (!(c->topics & TOPIC_EVENTS) || !event_reaches(c, payload, len)) continue;
        if (!f) f = pl_ws_frame_new(payload, len);
        pl_ws_send(c->ws, f);
    }
    pl_ws_frame_unref(f);
}

static void apply_revocation(struct live_worker *lw, const char *payload, size_t len)
{
    struct auth_revocation r;
    if (auth_revocation_parse(payload, len, &r) != 0) return;
    struct live_user *u = user_find(lw, r.user_id);
    for (struct live_client *c = u ? u->clients : NULL; c; c = c->unext)
        if (auth_revocation_covers(&r, c->kind, c->credential))
            pl_ws_close(c->ws, CLOSE_REVOKED, "credential revoked");
}

static void on_sub_message(const char *channel, size_t channel_len, const char *payload,
                           size_t payload_len, void *ctx)
{
    struct live_worker *lw = ctx;
    char id[40];
    if (events_channel_user(channel, channel_len, id, sizeof id)) {
        deliver_event(lw, id, payload, payload_len);
    } else if (channel_len == strlen(AUTH_REVOKE_CHANNEL) &&
               memcmp(channel, AUTH_REVOKE_CHANNEL, channel_len) == 0) {
        apply_revocation(lw, payload, payload_len);
    }
}

/* ---- metrics from the sampler ---- */

/* A worker with thousands of sockets hands the frame to FANOUT_CHUNK of them per loop turn,
 * so that requests and events arriving meanwhile wait for one chunk of writes, not for all.
 * Measured with 10,000 sockets (tests/bench/live.sh): event lag p99 450 ms when all at once,
 * 287 ms at 256 per turn, 66 ms at 64, 54 ms at 16; the whole fan-out still ends within
 * ~0.3-0.5 s of the 1 s interval. */
#define FANOUT_CHUNK 16

static void on_fanout(uv_idle_t *h)
{
    struct live_worker *lw = h->data;
    int n = 0;
    while (lw->fanout_next && n < FANOUT_CHUNK) {
        struct live_client *c = lw->fanout_next;
        lw->fanout_next = c->next;
        if (c->topics & TOPIC_METRICS) {
            pl_ws_send_latest(c->ws, lw->metrics);
            n++;
        }
    }
    if (!lw->fanout_next) uv_idle_stop(h);
}

static void on_live_async(uv_async_t *a)
{
    struct worker *w = a->data;
    struct live_blob *b = atomic_exchange(&w->live_pending, NULL);
    struct live_worker *lw = w->live;
    if (!b) return;
    if (!lw || !lw->ws) {
        live_blob_unref(b);
        return;
    }
    pl_ws_frame_unref(lw->metrics);
    lw->metrics = pl_ws_frame_new(b->text, b->len);
    live_blob_unref(b);
    /* A fan-out still running restarts from the top with the newer frame (latest wins). */
    lw->fanout_next = lw->clients;
    if (lw->fanout_next) uv_idle_start(&lw->fanout, on_fanout);
}

/* ---- credentials that expire while their sockets are open ---- */

static void live_worker_maybe_free(struct live_worker *lw)
{
    if (lw->open_handles == 0 && lw->pending_checks == 0) free(lw);
}

/* Revocations arrive on auth's channel; expiry does not, so every PULSE_WS_RECHECK_S each
 * distinct credential of the worker's sockets is checked once (auth_credential_alive) and
 * the sockets of one that is gone are closed with 4401. */

struct recheck {
    struct live_worker *lw;
    char user_id[40];
    char credential[72];
};

static void close_credential(struct recheck *r)
{
    struct live_user *u = user_find(r->lw, r->user_id);
    if (!u) return;
    for (struct live_client *c = u->clients; c; c = c->unext)
        if (strcmp(c->credential, r->credential) == 0)
            pl_ws_close(c->ws, CLOSE_REVOKED, "credential expired");
}

static void recheck_done(struct recheck *r, bool gone)
{
    struct live_worker *lw = r->lw;
    lw->pending_checks--;
    if (gone && !lw->closing) close_credential(r);
    free(r);
    if (lw->closing) live_worker_maybe_free(lw);
}

static void on_rechecked(int status, bool alive, void *ctx)
{
    recheck_done(ctx, status == 0 && !alive);
}

static void on_recheck(uv_timer_t *t)
{
    struct live_worker *lw = t->data;
    struct worker *w = lw->w;
    unsigned round = ++lw->round;
    for (int b = 0; b < USER_BUCKETS; b++) {
        for (struct live_user *u = lw->users[b]; u; u = u->next) {
            for (struct live_client *c = u->clients; c; c = c->unext) {
                if (c->checked == round) continue;
                for (struct live_client *d = c; d; d = d->unext)
                    if (strcmp(d->credential, c->credential) == 0) d->checked = round;
                struct recheck *r = pl_xcalloc(1, sizeof *r);
                r->lw = lw;
                snprintf(r->user_id, sizeof r->user_id, "%s", u->id);
                snprintf(r->credential, sizeof r->credential, "%s", c->credential);
                lw->pending_checks++;
                auth_credential_alive(w, c->kind, r->user_id, r->credential, on_rechecked, r);
            }
        }
    }
}

void live_worker_async_init(struct worker *w)
{
    uv_async_init(&w->loop, &w->live_async, on_live_async);
    w->live_async.data = w;
    atomic_store(&w->live_pending, NULL);
}

int live_worker_init(struct worker *w)
{
    struct pulse_config *cfg = &w->app->cfg;
    struct live_worker *lw = pl_xcalloc(1, sizeof *lw);
    lw->w = w;
    struct pl_ws_config wc = {
        .max_message = 65536,
        .max_queue_bytes = (size_t)cfg->ws_queue_bytes,
        .stall_ms = (uint64_t)cfg->ws_stall_ms,
        .ping_interval_s = (int)cfg->ws_ping_s,
        .sndbuf_bytes = 16384,
        .conn_count = &w->app->conn_count,
        .frames_dropped = &w->app->ws_frames_dropped,
        .on_message = on_ws_message,
        .on_close = on_ws_close,
    };
    int rc = pl_ws_server_create(&w->loop, &wc, &lw->ws);
    if (rc) {
        free(lw);
        return rc;
    }
    struct pl_redis_sub_config sc = {
        .url = cfg->redis_url,
        .connect_timeout_ms = 2000,
        .on_message = on_sub_message,
        .ctx = lw,
    };
    rc = pl_redis_sub_create(&w->loop, &sc, &lw->sub);
    if (rc == 0) rc = pl_redis_subscribe(lw->sub, AUTH_REVOKE_CHANNEL);
    if (rc) {
        pl_ws_server_destroy(lw->ws);
        pl_redis_sub_destroy(lw->sub);
        free(lw);
        return rc;
    }
    uv_timer_init(&w->loop, &lw->stop_timer);
    lw->stop_timer.data = lw;
    uv_idle_init(&w->loop, &lw->fanout);
    lw->fanout.data = lw;
    uv_timer_init(&w->loop, &lw->recheck);
    lw->recheck.data = lw;
    uint64_t every = (uint64_t)cfg->ws_recheck_s * 1000;
    uv_timer_start(&lw->recheck, on_recheck, every, every);
    lw->open_handles = 3;
    w->live = lw;
    return 0;
}

static void on_stop_timer(uv_timer_t *t)
{
    struct live_worker *lw = t->data;
    if (pl_ws_server_count(lw->ws) > 0 && uv_now(t->loop) - lw->stop_started < STOP_WAIT_MS) return;
    uv_timer_stop(t);
    void (*done)(struct worker *) = lw->stop_done;
    lw->stop_done = NULL;
    if (done) done(lw->w);
}

void live_worker_stop(struct worker *w, void (*done)(struct worker *w))
{
    struct live_worker *lw = w->live;
    if (!lw) {
        done(w);
        return;
    }
    pl_ws_server_close_all(lw->ws, 1001, "server shutting down");
    lw->stop_done = done;
    lw->stop_started = uv_now(&w->loop);
    uv_timer_start(&lw->stop_timer, on_stop_timer, 0, 20);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct live_worker *lw = h->data;
    lw->open_handles--;
    live_worker_maybe_free(lw);
}

void live_worker_close(struct worker *w)
{
    struct live_worker *lw = w->live;
    uv_close((uv_handle_t *)&w->live_async, NULL);
    live_blob_unref(atomic_exchange(&w->live_pending, NULL));
    if (!lw) return;
    w->live = NULL;
    lw->closing = true;
    /* Destroying the context closes what is left: on_close frees those clients. */
    pl_ws_server_destroy(lw->ws);
    w->ws_done = lw->ws;
    lw->ws = NULL;
    pl_redis_sub_destroy(lw->sub);
    pl_ws_frame_unref(lw->metrics);
    for (int i = 0; i < USER_BUCKETS; i++) {
        while (lw->users[i]) {
            struct live_user *u = lw->users[i];
            lw->users[i] = u->next;
            free(u);
        }
    }
    lw->fanout_next = NULL;
    uv_close((uv_handle_t *)&lw->fanout, on_handle_closed);
    uv_close((uv_handle_t *)&lw->recheck, on_handle_closed);
    uv_close((uv_handle_t *)&lw->stop_timer, on_handle_closed);
}

void live_worker_finish(struct worker *w)
{
    pl_ws_server_free(w->ws_done);
    w->ws_done = NULL;
}
