/* ws: the libwebsockets bridge. See pl/ws.h.
 *
 * One lws context per loop, created with LWS_SERVER_OPTION_LIBUV and the loop as its foreign
 * loop, and one vhost without a listening port. An upgrade request arrives authenticated
 * from the HTTP server; its head is rebuilt with only the headers the handshake needs
 * (credentials never reach lws) and fed with the socket to lws_adopt_socket_vhost_readbuf,
 * which runs the handshake inside the call. */
#include "pl/ws.h"

#include <libwebsockets.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pl/buf.h"
#include "pl/http.h"
#include "pl/json.h"
#include "pl/log.h"

/* lws takes at most this much already-read data with an adopted socket. */
#define ADOPT_READBUF_MAX 2048
/* Bytes lws hands over per RECEIVE callback (and holds per connection). */
#define RX_CHUNK 128
/* How long a close may wait for a peer that does not read. */
#define CLOSE_GRACE_MS 5000

struct pl_ws_frame {
    int refs;
    size_t len;
    unsigned char data[]; /* LWS_PRE bytes for lws's frame header, then the payload */
};

struct queued {
    struct queued *next;
    struct pl_ws_frame *frame;
};

struct pl_ws_conn {
    struct pl_ws_server *srv;
    struct lws *wsi;
    void *user;
    LIST_ENTRY(pl_ws_conn) link; /* in the server's list */
    struct queued *head, *tail;
    struct pl_ws_frame *latest;
    size_t queued_bytes;
    uint64_t pending_since; /* ms (uv_now) since undelivered frames wait, 0 when none */
    struct pl_buf rx;       /* a message being reassembled */
    bool rx_binary;
    int close_code;          /* a close we asked for, sent from the writeable callback */
    uint64_t close_deadline; /* ms: past it, a close that could not be sent is forced */
    bool hard_closed;
    const char *close_reason; /* a string that outlives the connection (a literal) */
};

struct pl_ws_server {
    uv_loop_t *loop;
    struct pl_ws_config cfg;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    struct lws_protocols protocols[2];
    lws_retry_bo_t idle_policy;
    LIST_HEAD(, pl_ws_conn) conns;
    int nconns;
    bool closed; /* close_all was called: no new connections */
    bool destroying;
    /* set around lws_adopt_socket_vhost_readbuf: the handshake completes inside it */
    void *adopting_user;
    struct pl_ws_conn *adopted;
    uv_timer_t stall_timer;
};

/* ---- frames ---- */

struct pl_ws_frame *pl_ws_frame_new(const char *text, size_t len)
{
    struct pl_ws_frame *f = malloc(sizeof *f + LWS_PRE + len);
    if (!f) abort();
    f->refs = 1;
    f->len = len;
    memcpy(f->data + LWS_PRE, text, len);
    return f;
}

void pl_ws_frame_unref(struct pl_ws_frame *f)
{
    if (f && --f->refs == 0) free(f);
}

static struct pl_ws_frame *frame_ref(struct pl_ws_frame *f)
{
    f->refs++;
    return f;
}

/* ---- connections ---- */

void *pl_ws_user(const struct pl_ws_conn *c)
{
    return c->user;
}

size_t pl_ws_queued_bytes(const struct pl_ws_conn *c)
{
    return c->queued_bytes + (c->latest ? c->latest->len : 0);
}

static void conn_mark_pending(struct pl_ws_conn *c)
{
    if (!c->pending_since) c->pending_since = uv_now(c->srv->loop);
    lws_callback_on_writable(c->wsi);
}

/* Whether nothing more may be sent: a close we asked for, the peer's, or one lws sent itself.
 * lws answers a protocol error (bad opcode, RSV bits, a fragmented control frame...) with a
 * close frame of its own and then waits up to 5 s for the peer's, still delivering writeable
 * callbacks; only the close payload it keeps tells. (Call while the connection is open: lws
 * reads it from the ws part of the wsi without a check.) */
static bool conn_closing(struct pl_ws_conn *c)
{
    return c->close_code || lws_get_close_length(c->wsi) > 0;
}

void pl_ws_close(struct pl_ws_conn *c, int code, const char *reason)
{
    if (c->close_code) return;
    c->close_code = code;
    c->close_reason = reason ? reason : "";
    lws_callback_on_writable(c->wsi);
    /* A peer that does not read never lets the close frame out: the stall timer drops the
     * connection after CLOSE_GRACE_MS. */
    c->close_deadline = uv_now(c->srv->loop) + CLOSE_GRACE_MS;
}

/* Ends a connection whose peer does not read: lws would wait for its buffered output to
 * drain before closing, for ever. Shut the socket down (and make the close reset it, which
 * frees the kernel's buffers at once): lws then sees the hang-up and closes. */
static void conn_hard_close(struct pl_ws_conn *c)
{
    if (c->hard_closed) return;
    c->hard_closed = true;
    int fd = lws_get_socket_fd(c->wsi);
    if (fd >= 0) {
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        (void)shutdown(fd, SHUT_RDWR);
    }
    lws_callback_on_writable(c->wsi);
}

/* Closes a reader that fell too far behind. Its socket is full, so the close frame would
 * only wait: drop it now (1008 is what on_close and the log say). */
static void conn_too_slow(struct pl_ws_conn *c)
{
    if (c->close_code) return;
    pl_ws_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow a reader");
    conn_hard_close(c);
}

int pl_ws_send(struct pl_ws_conn *c, struct pl_ws_frame *f)
{
    if (conn_closing(c)) return 0;
    if (c->queued_bytes + f->len > c->srv->cfg.max_queue_bytes) {
        if (c->srv->cfg.frames_dropped) atomic_fetch_add(c->srv->cfg.frames_dropped, 1);
        conn_too_slow(c);
        return PL_E_BUSY;
    }
    struct queued *q = malloc(sizeof *q);
    if (!q) abort();
    q->next = NULL;
    q->frame = frame_ref(f);
    if (c->tail)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    c->queued_bytes += f->len;
    conn_mark_pending(c);
    return 0;
}

int pl_ws_send_text(struct pl_ws_conn *c, const char *text, size_t len)
{
    struct pl_ws_frame *f = pl_ws_frame_new(text, len);
    int rc = pl_ws_send(c, f);
    pl_ws_frame_unref(f);
    return rc;
}

void pl_ws_send_latest(struct pl_ws_conn *c, struct pl_ws_frame *f)
{
    if (conn_closing(c)) return;
    if (c->latest) {
        pl_ws_frame_unref(c->latest);
        if (c->srv->cfg.frames_dropped) atomic_fetch_add(c->srv->cfg.frames_dropped, 1);
    }
    c->latest = frame_ref(f);
    conn_mark_pending(c);
}

static void conn_free(struct pl_ws_conn *c)
{
    struct pl_ws_server *s = c->srv;
    while (c->head) {
        struct queued *q = c->head;
        c->head = q->next;
        pl_ws_frame_unref(q->frame);
        free(q);
    }
    pl_ws_frame_unref(c->latest);
    pl_buf_dispose(&c->rx);
    LIST_REMOVE(c, link);
    s->nconns--;
    if (s->cfg.conn_count) atomic_fetch_sub(s->cfg.conn_count, 1);
    free(c);
}

/* Sends one frame (lws allows one write per writeable callback). Returns -1 to close. */
static int conn_writeable(struct pl_ws_conn *c)
{
    if (lws_get_close_length(c->wsi) > 0) {
        /* lws sent its own close frame (see conn_closing): nothing may follow it, not even
         * ours. A close asked for since ends the connection now. */
        c->pending_since = 0;
        return c->close_code ? -1 : 0;
    }
    if (c->close_code) {
        /* lws 4.1 on a foreign loop drops the connection without the close frame that
         * lws_close_reason prepares, so write the frame ourselves (opcode 8; lws's write
         * type for it is 4, which its header leaves out), then let lws close. */
        unsigned char buf[LWS_PRE + 2 + 123];
        unsigned char *p = buf + LWS_PRE;
        size_t n = strlen(c->close_reason);
        if (n > 123) n = 123; /* a control frame's payload is at most 125 bytes */
        p[0] = (unsigned char)(c->close_code >> 8);
        p[1] = (unsigned char)c->close_code;
        memcpy(p + 2, c->close_reason, n);
        lws_write(c->wsi, p, 2 + n, (enum lws_write_protocol)4);
        return -1;
    }
    struct pl_ws_frame *f = NULL;
    if (c->head) {
        struct queued *q = c->head;
        c->head = q->next;
        if (!c->head) c->tail = NULL;
        f = q->frame;
        c->queued_bytes -= f->len;
        free(q);
    } else if (c->latest) {
        f = c->latest;
        c->latest = NULL;
    }
    if (!f) {
        c->pending_since = 0;
        return 0;
    }
    int n = lws_write(c->wsi, f->data + LWS_PRE, f->len, LWS_WRITE_TEXT);
    pl_ws_frame_unref(f);
    if (n < 0) return -1;
    if (c->head || c->latest)
        lws_callback_on_writable(c->wsi);
    else
        c->pending_since = 0;
    return 0;
}

/* Reassembles a message from lws's pieces. Returns -1 to close. */
static int conn_receive(struct pl_ws_conn *c, const void *in, size_t len)
{
    struct pl_ws_server *s = c->srv;
    if (conn_closing(c)) return 0;
    size_t more = lws_remaining_packet_payload(c->wsi);
    if (c->rx.len + len + more > s->cfg.max_message) {
        /* the rest of the message is ignored (close_code is set) */
        pl_ws_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big");
        return 0;
    }
    if (lws_is_first_fragment(c->wsi)) c->rx_binary = lws_frame_is_binary(c->wsi);
    pl_buf_append(&c->rx, in, len);
    if (more == 0 && lws_is_final_fragment(c->wsi)) {
        size_t n = c->rx.len;
        c->rx.len = 0;
        if (!c->rx_binary && !pl_utf8_valid(c->rx.data ? c->rx.data : "", n)) {
            pl_ws_close(c, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "invalid UTF-8");
            return 0;
        }
        if (s->cfg.on_message) s->cfg.on_message(c, c->rx.data ? c->rx.data : "", n, c->rx_binary);
        /* Keep small buffers for the next message; give large ones back. */
        if (c->rx.cap > 4096) {
            pl_buf_dispose(&c->rx);
            pl_buf_init(&c->rx);
        }
    }
    return 0;
}

/* The end of a connection, whichever way it ends. A connection still being adopted was
 * never handed to the caller: pl_ws_accept reports the failure instead of on_close. */
static void conn_gone(struct pl_ws_server *s, struct pl_ws_conn *c, int code)
{
    lws_set_opaque_user_data(c->wsi, NULL);
    if (s->adopted == c)
        s->adopted = NULL;
    else if (s->cfg.on_close)
        s->cfg.on_close(c, c->close_code ? c->close_code : code);
    conn_free(c);
}

/* A close frame's payload: empty, or a code a peer may send and an optional UTF-8 reason. */
static bool close_payload_valid(const void *in, size_t len)
{
    if (len == 0) return true;
    if (len == 1 || len > 125) return false;
    const unsigned char *p = in;
    int code = (p[0] << 8) | p[1];
    bool known = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
    if (!known && !(code >= 3000 && code <= 4999)) return false;
    return pl_utf8_valid((const char *)p + 2, len - 2);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct pl_ws_conn *c = lws_get_opaque_user_data(wsi);
    struct lws_vhost *vh = lws_get_vhost(wsi);
    struct pl_ws_server *s = vh ? lws_get_vhost_user(vh) : NULL;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
        if (!s || !s->adopting_user || s->closed) return -1;
        c = calloc(1, sizeof *c);
        if (!c) abort();
        c->srv = s;
        c->wsi = wsi;
        c->user = s->adopting_user;
        pl_buf_init(&c->rx);
        s->adopting_user = NULL;
        s->adopted = c;
        lws_set_opaque_user_data(wsi, c);
        LIST_INSERT_HEAD(&s->conns, c, link);
        s->nconns++;
        if (s->cfg.conn_count) atomic_fetch_add(s->cfg.conn_count, 1);
        return 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c ? conn_writeable(c) : -1;
    case LWS_CALLBACK_RECEIVE:
        return c ? conn_receive(c, in, len) : -1;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* lws echoes the peer's close payload as it is; a malformed one (a single byte, a
         * code no endpoint may send, a reason that is not UTF-8) must not go back out:
         * returning non-zero drops the connection without the echo (RFC 6455 7.4, 5.5.1). */
        if (!close_payload_valid(in, len)) return -1;
        if (c && !c->close_code && len >= 2) {
            const unsigned char *p = in;
            c->close_code = (p[0] << 8) | p[1];
        }
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (c && s) conn_gone(s, c, 1000);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        /* dropped without CLOSED (a timeout, the context going away) */
        if (c && s) conn_gone(s, c, 1006);
        return 0;
    default:
        return 0;
    }
}

/* A reader whose frames have waited stall_ms is closed. */
static void on_stall_timer(uv_timer_t *t)
{
    struct pl_ws_server *s = t->data;
    uint64_t now = uv_now(s->loop);
    for (struct pl_ws_conn *c = LIST_FIRST(&s->conns), *next; c; c = next) {
        next = LIST_NEXT(c, link);
        if (c->close_code && now >= c->close_deadline)
            conn_hard_close(c);
        else if (c->pending_since && now - c->pending_since >= s->cfg.stall_ms)
            conn_too_slow(c);
    }
}

/* ---- the server ---- */

int pl_ws_server_create(uv_loop_t *loop, const struct pl_ws_config *cfg, struct pl_ws_server **out)
{
    struct pl_ws_server *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->loop = loop;
    s->cfg = *cfg;
    if (!s->cfg.max_message) s->cfg.max_message = 65536;
    if (!s->cfg.max_queue_bytes) s->cfg.max_queue_bytes = 262144;
    if (!s->cfg.stall_ms) s->cfg.stall_ms = 10000;
    if (s->cfg.ping_interval_s <= 0) s->cfg.ping_interval_s = 30;
    s->protocols[0] = (struct lws_protocols){
        .name = "pulse",
        .callback = callback,
        /* lws allocates this per connection: small, since messages are reassembled here */
        .rx_buffer_size = RX_CHUNK,
    };
    s->idle_policy = (lws_retry_bo_t){
        .secs_since_valid_ping = (uint16_t)s->cfg.ping_interval_s,
        .secs_since_valid_hangup = (uint16_t)(2 * s->cfg.ping_interval_s),
    };

    void *loops[1] = {loop};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                   LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN;
    info.foreign_loops = loops;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.gid = -1;
    info.uid = -1;
    info.pcontext = &s->ctx; /* lws writes NULL there once the context is wholly gone */
    s->ctx = lws_create_context(&info);
    if (!s->ctx) {
        pl_error("libwebsockets context failed");
        free(s);
        return PL_E_UNAVAILABLE;
    }
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = s->protocols;
    info.vhost_name = "pulse";
    info.user = s;
    info.retry_and_idle_policy = &s->idle_policy;
    info.timeout_secs = 10;
    s->vhost = lws_create_vhost(s->ctx, &info);
    if (!s->vhost) {
        pl_error("libwebsockets vhost failed");
        lws_context_destroy(s->ctx);
        free(s);
        return PL_E_UNAVAILABLE;
    }
    uv_timer_init(loop, &s->stall_timer);
    s->stall_timer.data = s;
    uint64_t every = s->cfg.stall_ms / 4;
    if (every > 1000) every = 1000;
    if (every < 1) every = 1;
    uv_timer_start(&s->stall_timer, on_stall_timer, every, every);
    *out = s;
    return 0;
}

void pl_ws_server_close_all(struct pl_ws_server *s, int code, const char *reason)
{
    s->closed = true;
    struct pl_ws_conn *c;
    LIST_FOREACH(c, &s->conns, link)
        pl_ws_close(c, code, reason);
}

void pl_ws_server_destroy(struct pl_ws_server *s)
{
    if (!s || s->destroying) return;
    s->closed = true;
    s->destroying = true;
    uv_timer_stop(&s->stall_timer);
    uv_close((uv_handle_t *)&s->stall_timer, NULL);
    /* With a foreign loop this starts the teardown; lws closes its handles as the loop runs
     * on, and pl_ws_server_free completes it. */
    if (s->ctx) lws_context_destroy(s->ctx);
}

void pl_ws_server_free(struct pl_ws_server *s)
{
    if (!s) return;
    if (!s->destroying) pl_ws_server_destroy(s);
    if (s->ctx) lws_context_destroy(s->ctx);
    free(s);
}

int pl_ws_server_count(const struct pl_ws_server *s)
{
    return s ? s->nconns : 0;
}

/* ---- the upgrade ---- */

const char *pl_ws_upgrade_problem(const struct pl_http_request *req, int *status)
{
    *status = 426;
    if (pl_req_method(req) != PL_M_GET) {
        *status = 400;
        return "a WebSocket handshake is a GET";
    }
    const char *up = pl_req_header(req, "upgrade");
    const char *conn = pl_req_header(req, "connection");
    if (!up || !pl_http_list_has(up, "websocket", true) || !conn ||
        !pl_http_list_has(conn, "upgrade", true))
        return "this resource is a WebSocket: send Upgrade: websocket";
    const char *ver = pl_req_header(req, "sec-websocket-version");
    if (!ver || strcmp(ver, "13") != 0) return "Sec-WebSocket-Version must be 13";
    const char *key = pl_req_header(req, "sec-websocket-key");
    unsigned char raw[32];
    size_t raw_len = 0;
    *status = 400;
    if (!key || strlen(key) != 24 ||
        sodium_base642bin(raw, sizeof raw, key, 24, NULL, &raw_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        raw_len != 16)
        return "Sec-WebSocket-Key must be 16 bytes in base64";
    return NULL;
}

int pl_ws_accept(struct pl_ws_server *s, struct pl_http_request *req, void *user,
                 struct pl_ws_conn **out)
{
    *out = NULL;
    if (s->closed) {
        pl_resp_header(req, "Retry-After", "1");
        pl_respond_problem(req, 503, "the server is shutting down", NULL);
        return PL_E_BUSY;
    }
    /* Only what the handshake needs: no cookie, token or query string reaches lws. */
    struct pl_buf head;
    pl_buf_init(&head);
    const char *host = pl_req_header(req, "host");
    pl_buf_printf(&head,
                  "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                  host ? host : "localhost", pl_req_header(req, "sec-websocket-key"));
    if (head.len > ADOPT_READBUF_MAX) {
        pl_buf_dispose(&head);
        pl_respond_problem(req, 431, "the Host header is too long for a WebSocket handshake", NULL);
        return PL_E_BUSY;
    }
    int fd = -1;
    int rc = pl_http_takeover(req, 101, &fd, &head);
    if (rc) {
        pl_buf_dispose(&head);
        pl_resp_header(req, "Retry-After", "1");
        pl_respond_problem(req, 503, "could not take over the connection", NULL);
        return rc == PL_E_BUSY ? PL_E_BUSY : PL_E_UNAVAILABLE;
    }
    rc = pl_ws_adopt(s, fd, head.data, head.len, user, out);
    pl_buf_dispose(&head);
    return rc;
}

int pl_ws_adopt(struct pl_ws_server *s, int fd, const char *bytes, size_t len, void *user,
                struct pl_ws_conn **out)
{
    *out = NULL;
    if (s->closed || len > ADOPT_READBUF_MAX) {
        /* e.g. a client that sent frames before the handshake answer, more than lws takes */
        close(fd);
        return PL_E_UNAVAILABLE;
    }
    if (s->cfg.sndbuf_bytes > 0) {
        /* A fixed send buffer (no autotuning to megabytes): a reader that stops reading
         * fills it soon, and then our queue and stall timer see it. */
        int v = s->cfg.sndbuf_bytes;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v) != 0)
            pl_debug("ws: SO_SNDBUF refused");
    }
    s->adopting_user = user;
    s->adopted = NULL;
    struct lws *wsi = lws_adopt_socket_vhost_readbuf(s->vhost, fd, bytes, len);
    struct pl_ws_conn *c = s->adopted;
    s->adopting_user = NULL;
    s->adopted = NULL;
    if (!wsi || !c) {
        /* lws answered the handshake with an error and closes the socket itself (or had
         * closed it already when wsi is NULL). */
        return PL_E_UNAVAILABLE;
    }
    *out = c;
    return 0;
}

/* ---- logging ---- */

static void lws_log_emit(int level, const char *line)
{
    /* lws 4.1 logs an error on every adopted socket with read-ahead data: not one. */
    if (strstr(line, "adopt_socket_readbuf: calling service")) return;
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    if (n > 400) n = 400;
    if (level & LLL_ERR)
        pl_warn("libwebsockets", PL_STRN("detail", line, n));
    else
        pl_debug("libwebsockets", PL_STRN("detail", line, n));
}

void pl_ws_log_init(void)
{
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
}
