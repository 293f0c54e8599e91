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
/* Resume: stream entries per XRANGE page; the next page is read once the socket's queue is
 * under a quarter of its cap (checked every PUMP_MS); messages a socket may send before its
 * hello (they wait for it). */
#define REPLAY_PAGE   64
#define PUMP_MS       5
#define INBOX_MAX     8
#define STREAM_PREFIX "pulse:stream:"

struct live_user;

/* A live frame held while the socket's hello or a replay is pending. */
struct held {
    struct held *next;
    struct pl_ws_frame *frame;
    uint64_t seq; /* 0: the frame has none */
    size_t len;
};

/* A message the client sent before its hello. */
struct inbound {
    struct inbound *next;
    bool binary;
    size_t len;
    char data[];
};

enum after_kind { AFTER_NONE, AFTER_SEQ };

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
    /* Sequence and resume (see "resume" below). */
    bool lookup;           /* the read of the stream's newest id (for hello) is in flight */
    bool replaying;        /* a resume is replaying the stream */
    bool dead;             /* closed while Redis replies are pending: the last one frees it */
    bool pumping;          /* in the worker's list of replays waiting for the queue to drain */
    enum after_kind after; /* ?after= of the handshake, replayed right after the hello */
    int redis_pending;     /* Redis commands in flight for this socket */
    uint64_t after_seq;    /* its cursor (0: not one of ours) */
    uint64_t last_seq;     /* hello's last_seq (0: null) */
    uint64_t floor;        /* live frames with a seq up to this are not sent (history) */
    uint64_t replay_from;  /* the running resume's cursor */
    uint64_t replay_max;   /* the highest seq it has read */
    unsigned replay_count; /* events it has sent */
    bool replay_first;     /* the next page is the first (it starts at the cursor itself) */
    struct held *held, **held_tail;
    size_t held_bytes;
    struct inbound *inbox, **inbox_tail;
    int inbox_n;
    struct live_client *pnext, *pprev; /* the pump list */
};

struct live_user {
    struct live_user *next; /* bucket chain */
    struct live_client *clients;
    bool subscribed; /* Redis confirmed the SUBSCRIBE of the user's channel */
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
    uv_timer_t pump;             /* replays waiting for their socket's queue to drain */
    struct live_client *pumping; /* those replays */
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

static void client_free(struct live_client *c)
{
    for (struct held *h = c->held, *n; h; h = n) {
        n = h->next;
        pl_ws_frame_unref(h->frame);
        free(h);
    }
    c->held = NULL;
    c->held_tail = &c->held;
    c->held_bytes = 0;
    for (struct inbound *m = c->inbox, *n; m; m = n) {
        n = m->next;
        free(m);
    }
    c->inbox = NULL;
    c->inbox_tail = &c->inbox;
    c->inbox_n = 0;
    if (c->redis_pending > 0) {
        c->dead = true; /* the last Redis reply frees it */
        return;
    }
    free(c->subject_ids);
    free(c);
}

static void handle_message(struct live_client *c, struct pl_ws_conn *ws, const char *data,
                           size_t len, bool binary);
static void start_resume(struct live_client *c, uint64_t after);
static void flush_held(struct live_client *c);

/* Once, before anything else the socket gets: when the newest seq of the user's stream is
 * known (see client_start). Then the ?after= replay, then the messages that came before. */
static void send_hello(struct live_client *c, uint64_t last_seq)
{
    struct pl_ws_conn *ws = c->ws;
    c->hello_sent = true;
    c->last_seq = c->floor = last_seq;
    char now[32], seq[24];
    pl_time_format_rfc3339(pl_time_now_us(), now);
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)last_seq);
    send_json(ws, json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "type", "hello", "user_id",
                            c->user->id, "instance", c->lw->w->app->cfg.instance, "server_time",
                            now, "topics", topics_json(c->topics), "last_seq",
                            last_seq ? json_string(seq) : json_null()));
    if (c->lw->metrics) pl_ws_send_latest(ws, c->lw->metrics);
    if (c->after == AFTER_SEQ) start_resume(c, c->after_seq);
    if (!c->replaying) flush_held(c);
    while (c->inbox && !c->dead) {
        struct inbound *m = c->inbox;
        c->inbox = m->next;
        if (!c->inbox) c->inbox_tail = &c->inbox;
        c->inbox_n--;
        handle_message(c, ws, m->data, m->len, m->binary);
        free(m);
    }
}

static void handle_message(struct live_client *c, struct pl_ws_conn *ws, const char *data,
                           size_t len, bool binary)
{
    char detail[160];
    unsigned topics = 0;
    uint64_t after = 0;
    enum live_msg kind =
        live_message_parse(data, len, binary, &topics, &after, detail, sizeof detail);
    if (kind == LIVE_MSG_PING) {
        pl_ws_send_text(ws, "{\"type\":\"pong\"}", 15);
    } else if (kind == LIVE_MSG_ERROR) {
        send_error(ws, detail);
    } else if (kind == LIVE_MSG_RESUME) {
        if (c->replaying)
            send_error(ws, "a resume is already running: wait for its \"resumed\"");
        else
            start_resume(c, after);
    } else {
        c->topics = kind == LIVE_MSG_SUBSCRIBE ? (c->topics | topics) : (c->topics & ~topics);
        send_json(ws,
                  json_pack("{s:s, s:o}", "type", "subscribed", "topics", topics_json(c->topics)));
    }
}

static void on_ws_message(struct pl_ws_conn *ws, const char *data, size_t len, bool binary)
{
    struct live_client *c = pl_ws_user(ws);
    if (c->hello_sent) {
        handle_message(c, ws, data, len, binary);
        return;
    }
    /* Before the hello (a message that came with the handshake included): kept for it. */
    if (c->inbox_n >= INBOX_MAX) {
        pl_ws_close(ws, 1008, "too many messages before hello");
        return;
    }
    struct inbound *m = pl_xmalloc(sizeof *m + len + 1);
    m->next = NULL;
    m->binary = binary;
    m->len = len;
    memcpy(m->data, data, len);
    m->data[len] = 0;
    *c->inbox_tail = m;
    c->inbox_tail = &m->next;
    c->inbox_n++;
}

static void pump_remove(struct live_client *c);

static void on_ws_close(struct pl_ws_conn *ws, int code)
{
    struct live_client *c = pl_ws_user(ws);
    struct live_worker *lw = c->lw;
    atomic_fetch_sub(&lw->w->app->ws_clients, 1);
    live_caps_release(lw->w->app->live_caps, &c->slot);
    if (lw->closing) {
        client_free(c);
        return;
    }
    pump_remove(c);
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
    client_free(c);
}

/* ---- sequence and resume ----
 *
 * Every event frame carries "seq" (server/events.c): Redis numbers it when it publishes it
 * and keeps it in the user's stream (STREAM_PREFIX<user_id>, entry <seq>-0, field f = the
 * frame's text). A socket's hello waits until Redis has confirmed the worker's SUBSCRIBE of
 * the user's channel; then it reads the stream's newest id: hello.last_seq. Every event
 * published later reaches the socket live, every earlier one is in the stream, and live
 * frames with a seq up to last_seq (published in between) are dropped as history. Live
 * frames arriving before the hello, or during a replay, are held (bounded by the socket's
 * queue cap: more closes with 1008) and sent after it, minus those the replay covered. */

static bool event_reaches(const struct live_client *c, const char *payload, size_t len);
static void live_worker_maybe_free(struct live_worker *lw);
static void on_pump(uv_timer_t *t);

#define RESYNC_REQUIRED       "{\"type\":\"resync_required\"}"
#define send_static(ws, text) pl_ws_send_text((ws), (text), sizeof(text) - 1)

static void stream_key(const char *user_id, char *out, size_t cap)
{
    snprintf(out, cap, STREAM_PREFIX "%s", user_id);
}

/* The seq of a frame (first "seq":"<digits>", which events.c writes before the data), or 0. */
static uint64_t frame_seq(const char *payload, size_t len)
{
    static const char key[] = "\"seq\":\"";
    const char *p = memmem(payload, len, key, sizeof key - 1);
    if (!p) return 0;
    p += sizeof key - 1;
    const char *end = memchr(p, '"', (size_t)(payload + len - p));
    uint64_t seq = 0;
    if (end) (void)live_seq_parse(p, (size_t)(end - p), &seq);
    return seq;
}

/* "<n>-<m>" of a stream entry id: n, or 0. */
static uint64_t entry_seq(const redisReply *id)
{
    if (!id || id->type != REDIS_REPLY_STRING) return 0;
    const char *dash = memchr(id->str, '-', id->len);
    uint64_t seq = 0;
    (void)live_seq_parse(id->str, dash ? (size_t)(dash - id->str) : id->len, &seq);
    return seq;
}

/* A Redis reply for a socket: false when the socket has gone meanwhile (then it is freed
 * here once nothing else is pending). */
static bool redis_reply_wanted(struct live_client *c)
{
    struct live_worker *lw = c->lw;
    c->redis_pending--;
    lw->pending_checks--;
    if (!c->dead) return true;
    if (c->redis_pending == 0) {
        free(c->subject_ids);
        free(c);
    }
    if (lw->closing) live_worker_maybe_free(lw);
    return false;
}

static int client_redis(struct live_client *c, int argc, const char **argv, pl_redis_cb cb)
{
    if (pl_redis_command(c->lw->w->redis, argc, argv, NULL, cb, c) != 0) return -1;
    c->redis_pending++;
    c->lw->pending_checks++;
    return 0;
}

static void on_newest(int status, redisReply *reply, void *ctx)
{
    struct live_client *c = ctx;
    if (!redis_reply_wanted(c)) return;
    c->lookup = false;
    if (c->lw->closing) return;
    uint64_t last = 0;
    if (status == 0 && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements > 0)
        last = entry_seq(reply->element[0]->element[0]);
    else if (status != 0 || reply->type == REDIS_REPLY_ERROR)
        pl_warn("live: reading the newest seq failed", PL_STR("user_id", c->user->id));
    send_hello(c, last);
}

/* Reads last_seq for the hello (the user's channel is subscribed). */
static void read_newest(struct live_client *c)
{
    char key[80];
    stream_key(c->user->id, key, sizeof key);
    const char *argv[] = {"XREVRANGE", key, "+", "-", "COUNT", "1"};
    c->lookup = true;
    if (client_redis(c, 6, argv, on_newest) != 0) {
        c->lookup = false;
        send_hello(c, 0);
    }
}

/* A new socket: its hello once the user's channel is subscribed (at once, with a null
 * last_seq, while Redis is unreachable: nothing is published then either). */
static void client_start(struct live_client *c)
{
    if (!pl_redis_sub_connected(c->lw->sub))
        send_hello(c, 0);
    else if (c->user->subscribed)
        read_newest(c);
}

static void on_subscribed(const char *channel, size_t len, void *ctx)
{
    struct live_worker *lw = ctx;
    char id[40];
    if (!events_channel_user(channel, len, id, sizeof id)) return;
    struct live_user *u = user_find(lw, id);
    if (!u) return;
    u->subscribed = true;
    for (struct live_client *c = u->clients; c; c = c->unext)
        if (!c->hello_sent && !c->lookup) read_newest(c);
}

static void on_sub_state(bool connected, void *ctx)
{
    struct live_worker *lw = ctx;
    if (connected) return;
    for (int b = 0; b < USER_BUCKETS; b++)
        for (struct live_user *u = lw->users[b]; u; u = u->next)
            u->subscribed = false;
    /* Sockets waiting for a subscription that will not come soon get their hello now. */
    for (struct live_client *c = lw->clients; c; c = c->next)
        if (!c->hello_sent && !c->lookup) send_hello(c, 0);
}

/* Sends a live frame to a socket that is not holding, unless it is history. */
static void send_live(struct live_client *c, struct pl_ws_frame *f, uint64_t seq)
{
    if (seq) {
        if (seq <= c->floor) return;
        c->floor = seq;
    }
    pl_ws_send(c->ws, f);
}

static void hold(struct live_client *c, const char *payload, size_t len, uint64_t seq)
{
    if (c->held_bytes + len > (size_t)c->lw->w->app->cfg.ws_queue_bytes) {
        pl_ws_close(c->ws, 1008, "too many events arrived during the replay");
        return;
    }
    struct held *h = pl_xmalloc(sizeof *h);
    h->next = NULL;
    h->frame = pl_ws_frame_new(payload, len);
    h->seq = seq;
    *c->held_tail = h;
    c->held_tail = &h->next;
    c->held_bytes += len;
}

static void flush_held(struct live_client *c)
{
    while (c->held) {
        struct held *h = c->held;
        c->held = h->next;
        send_live(c, h->frame, h->seq);
        pl_ws_frame_unref(h->frame);
        free(h);
    }
    c->held_tail = &c->held;
    c->held_bytes = 0;
}

static void pump_add(struct live_client *c)
{
    struct live_worker *lw = c->lw;
    c->pumping = true;
    c->pprev = NULL;
    c->pnext = lw->pumping;
    if (lw->pumping) lw->pumping->pprev = c;
    lw->pumping = c;
    if (!uv_is_active((uv_handle_t *)&lw->pump))
        uv_timer_start(&lw->pump, on_pump, PUMP_MS, PUMP_MS);
}

static void pump_remove(struct live_client *c)
{
    if (!c->pumping) return;
    struct live_worker *lw = c->lw;
    c->pumping = false;
    if (c->pprev)
        c->pprev->pnext = c->pnext;
    else
        lw->pumping = c->pnext;
    if (c->pnext) c->pnext->pprev = c->pprev;
    if (!lw->pumping) uv_timer_stop(&lw->pump);
}

static void end_replay(struct live_client *c, bool resync)
{
    c->replaying = false;
    if (resync) {
        send_static(c->ws, RESYNC_REQUIRED);
    } else {
        char msg[64];
        int n = snprintf(msg, sizeof msg, "{\"type\":\"resumed\",\"count\":%u}", c->replay_count);
        pl_ws_send_text(c->ws, msg, (size_t)n);
    }
    flush_held(c);
}

static void read_page(struct live_client *c);

static void on_page(int status, redisReply *reply, void *ctx)
{
    struct live_client *c = ctx;
    if (!redis_reply_wanted(c)) return;
    if (c->lw->closing) return;
    if (status != 0 || reply->type != REDIS_REPLY_ARRAY) {
        pl_warn("live: reading the stream for a resume failed", PL_STR("user_id", c->user->id));
        end_replay(c, true);
        return;
    }
    size_t i = 0;
    size_t asked = REPLAY_PAGE + (c->replay_first ? 1 : 0);
    if (c->replay_first) {
        c->replay_first = false;
        /* The cursor must be a retained entry: else it is unknown or trimmed away. */
        if (reply->elements == 0 || reply->element[0]->type != REDIS_REPLY_ARRAY ||
            reply->element[0]->elements < 1 ||
            entry_seq(reply->element[0]->element[0]) != c->replay_from) {
            end_replay(c, true);
            return;
        }
        i = 1;
    }
    struct pl_ws_frame *f = NULL;
    for (; i < reply->elements; i++) {
        redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2) continue;
        uint64_t seq = entry_seq(e->element[0]);
        if (seq <= c->replay_max) continue;
        c->replay_max = seq;
        redisReply *fields = e->element[1];
        if (fields->type != REDIS_REPLY_ARRAY) continue;
        for (size_t k = 0; k + 1 < fields->elements; k += 2) {
            redisReply *name = fields->element[k], *value = fields->element[k + 1];
            if (name->type != REDIS_REPLY_STRING || name->len != 1 || name->str[0] != 'f' ||
                value->type != REDIS_REPLY_STRING)
                continue;
            if (event_reaches(c, value->str, value->len)) {
                f = pl_ws_frame_new(value->str, value->len);
                pl_ws_send(c->ws, f);
                pl_ws_frame_unref(f);
                c->replay_count++;
            }
            break;
        }
    }
    if (c->replay_max >= c->last_seq || reply->elements < asked) {
        end_replay(c, false);
        return;
    }
    size_t cap = (size_t)c->lw->w->app->cfg.ws_queue_bytes;
    if (pl_ws_queued_bytes(c->ws) > cap / 4)
        pump_add(c);
    else
        read_page(c);
}

/* The next page of the replay: from the cursor itself (first) or just after replay_max. */
static void read_page(struct live_client *c)
{
    char key[80], start[32], end[32], count[16];
    stream_key(c->user->id, key, sizeof key);
    if (c->replay_first)
        snprintf(start, sizeof start, "%llu-0", (unsigned long long)c->replay_from);
    else
        snprintf(start, sizeof start, "%llu-1", (unsigned long long)c->replay_max);
    snprintf(end, sizeof end, "%llu-0", (unsigned long long)c->last_seq);
    snprintf(count, sizeof count, "%d", REPLAY_PAGE + (c->replay_first ? 1 : 0));
    const char *argv[] = {"XRANGE", key, start, end, "COUNT", count};
    if (client_redis(c, 6, argv, on_page) != 0) end_replay(c, true);
}

static void on_pump(uv_timer_t *t)
{
    struct live_worker *lw = t->data;
    for (struct live_client *c = lw->pumping, *next; c; c = next) {
        next = c->pnext;
        if (pl_ws_queued_bytes(c->ws) > (size_t)lw->w->app->cfg.ws_queue_bytes / 4) continue;
        pump_remove(c);
        read_page(c);
    }
}

/* {"type":"resume","after":S} (or ?after=S): replays (S, last_seq] from the stream. */
static void start_resume(struct live_client *c, uint64_t after)
{
    c->replay_count = 0;
    if (after == 0 || c->last_seq == 0 || after > c->last_seq) {
        /* Past last_seq: fine only when this socket has had it live (nothing to replay). */
        if (after != 0 && after > c->last_seq && after <= c->floor) {
            c->replaying = true;
            end_replay(c, false);
        } else {
            send_static(c->ws, RESYNC_REQUIRED);
        }
        return;
    }
    c->replaying = true;
    c->replay_from = c->replay_max = after;
    c->replay_first = true;
    read_page(c);
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
    const char *after = NULL;
    if (!pl_req_query_param(req, "after", &after)) return;
    struct live_cap_slot slot;
    if (!take_cap(req, &slot)) return;
    struct live_client *c = pl_xcalloc(1, sizeof *c);
    c->lw = lw;
    c->topics = ALL_TOPICS;
    c->kind = p->kind;
    c->slot = slot;
    c->held_tail = &c->held;
    c->inbox_tail = &c->inbox;
    if (after) {
        c->after = AFTER_SEQ;
        (void)live_seq_parse(after, strlen(after), &c->after_seq);
    }
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
        client_free(c);
        return;
    }
    c->ws = ws;
    client_link(lw, c);
    atomic_fetch_add(&w->app->ws_clients, 1);
    client_start(c);
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
    uint64_t seq = frame_seq(payload, len);
    for (struct live_client *c = u->clients, *next; c; c = next) {
        next = c->unext; /* a send over the cap closes, but on_close comes later */
        if (!(c->topics & TOPIC_EVENTS) || !event_reaches(c, payload, len)) continue;
        if (!c->hello_sent || c->replaying) {
            hold(c, payload, len, seq);
            continue;
        }
        if (!f) f = pl_ws_frame_new(payload, len);
        send_live(c, f, seq);
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
        .on_subscribed = on_subscribed,
        .on_state = on_sub_state,
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
    uv_timer_init(&w->loop, &lw->pump);
    lw->pump.data = lw;
    uint64_t every = (uint64_t)cfg->ws_recheck_s * 1000;
    uv_timer_start(&lw->recheck, on_recheck, every, every);
    lw->open_handles = 4;
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
    lw->pumping = NULL;
    uv_close((uv_handle_t *)&lw->pump, on_handle_closed);
    uv_close((uv_handle_t *)&lw->fanout, on_handle_closed);
    uv_close((uv_handle_t *)&lw->recheck, on_handle_closed);
    uv_close((uv_handle_t *)&lw->stop_timer, on_handle_closed);
}

void live_worker_finish(struct worker *w)
{
    pl_ws_server_free(w->ws_done);
    w->ws_done = NULL;
}
