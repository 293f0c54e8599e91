/* HTTP/1.1 server: connections, llhttp glue, limits, timeouts, responses, drain.
 *
 * A connection handles one request at a time. llhttp pauses (HPE_PAUSED from
 * on_message_complete) at every message boundary; bytes after it wait in `pending` until
 * the request is answered, which keeps pipelined responses in order with no reorder queue.
 * Before llhttp sees head bytes, our own scanner counts them (llhttp has no size limit) and
 * refuses bare LF line ends and obs-fold continuation lines, which llhttp 8.1 accepts. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_internal.h"
#include "pl/buf.h"
#include "pl/log.h"
#include "request_internal.h"

#define MAX_HEADERS      100
#define LINGER_MS        2000
#define MAX_WRITE_QUEUE  (256 * 1024) /* stop parsing pipelined requests above this */
#define STREAM_LOW_WATER (64 * 1024)  /* a streaming producer may write below this */

enum conn_state {
    CS_IDLE,     /* waiting for the first byte of a request */
    CS_HEAD,     /* receiving a head */
    CS_BODY,     /* head done, receiving the body */
    CS_HANDLING, /* a request is dispatched */
};

struct scanner {
    size_t count; /* head bytes so far */
    size_t line_len;
    int lines; /* complete non-empty lines */
    char prev;
    bool done;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    llhttp_t parser;
    struct pl_http_server *srv;
    struct conn *prev, *next;
    enum conn_state state;
    struct scanner scan;
    /* head under construction */
    struct pl_buf head;
    size_t url_len;
    size_t hdr_off[MAX_HEADERS][2];
    size_t nhdr;
    int hstate; /* 0 none, 1 in field, 2 in value */
    bool value_started;
    int error_status; /* set by a callback that returned HPE_USER */
    const char *error_detail;
    struct pl_http_request *req; /* being received or handled */
    char *pending;               /* unparsed bytes waiting for the current request */
    size_t pending_len, pending_cap;
    bool closing;    /* uv_close called */
    bool read_eof;   /* the peer half-closed or went away */
    bool lingering;  /* final response written, discarding input until EOF */
    bool processing; /* inside conn_process: respond must not recurse */
    bool reading;
    bool upgrade;
    unsigned served;       /* responses sent on this connection */
    uint64_t msg_wire;     /* bytes of the current message before the buffer being parsed */
    const char *buf_base;  /* start of the buffer being parsed */
    uint64_t body_end_off; /* message offset just past the last body byte (or the head) */
    int open_handles;
    char peer[48];
};

struct pl_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listening;
    struct pl_http_config cfg;
    char *public_origin;
    char *cors_origins;
    llhttp_settings_t settings;
    struct conn *conns; /* intrusive list */
    int nconns;
    int inflight;
    bool draining;
    bool closing_responses; /* shutting down: every response says Connection: close */
    bool destroying;
    uv_timer_t drain_timer;
    uv_idle_t stream_idle; /* runs streaming producers' drained callbacks */
    struct pl_http_request *drain_list;
    void (*drain_done)(struct pl_http_server *s, void *arg);
    void *drain_arg;
    int open_handles;
    char read_buf[65536];
};

/* ---- per-thread helpers: Date header, request ids ---- */

static _Thread_local struct {
    time_t sec;
    char text[40];
} date_cache;

static const char *http_date(void)
{
    time_t now = time(NULL);
    if (now != date_cache.sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(date_cache.text, sizeof date_cache.text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        date_cache.sec = now;
    }
    return date_cache.text;
}

static _Thread_local struct {
    char prefix[17];
    uint64_t counter;
} rid;

static void make_request_id(char *out, size_t cap)
{
    if (!rid.prefix[0]) {
        unsigned char r[8];
        randombytes_buf(r, sizeof r);
        sodium_bin2hex(rid.prefix, sizeof rid.prefix, r, sizeof r);
    }
    snprintf(out, cap, "%s-%llx", rid.prefix, (unsigned long long)++rid.counter);
}

static bool sane_request_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
        if (n >= 128) return false;
    }
    return n >= 1;
}

/* ---- status texts and problem slugs ---- */

static const struct {
    int status;
    const char *text;
    const char *slug;
} statuses[] = {
    {100, "Continue", NULL},
    {101, "Switching Protocols", NULL},
    {200, "OK", NULL},
    {201, "Created", NULL},
    {202, "Accepted", NULL},
    {204, "No Content", NULL},
    {206, "Partial Content", NULL},
    {301, "Moved Permanently", NULL},
    {302, "Found", NULL},
    {304, "Not Modified", NULL},
    {400, "Bad Request", "malformed"},
    {401, "Unauthorized", "unauthorized"},
    {403, "Forbidden", "forbidden"},
    {404, "Not Found", "not-found"},
    {405, "Method Not Allowed", "method-not-allowed"},
    {408, "Request Timeout", "timeout"},
    {409, "Conflict", "conflict"},
    {411, "Length Required", "malformed"},
    {412, "Precondition Failed", "precondition-failed"},
    {413, "Payload Too Large", "payload-too-large"},
    {415, "Unsupported Media Type", "unsupported-media-type"},
    {422, "Unprocessable Content", "validation"},
    {429, "Too Many Requests", "rate-limited"},
    {431, "Request Header Fields Too Large", "headers-too-large"},
    {500, "Internal Server Error", "internal"},
    {501, "Not Implemented", "internal"},
    {503, "Service Unavailable", "unavailable"},
};

const char *pl_http_status_text(int status)
{
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (statuses[i].status == status) return statuses[i].text;
    return "Unknown";
}

const char *pl_http_problem_slug(int status)
{
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (statuses[i].status == status && statuses[i].slug) return statuses[i].slug;
    return status >= 500 ? "internal" : "malformed";
}

/* ---- origins ---- */

static bool cors_allowed(const struct pl_http_server *s, const char *origin)
{
    return origin && *origin && pl_http_list_has(s->cors_origins, origin, false);
}

/* ---- connection lifetime ---- */

static void conn_process(struct conn *c);
static void conn_close(struct conn *c);
static void conn_read_stop(struct conn *c);
static void drain_soon(struct pl_http_request *req);
static void server_maybe_free(struct pl_http_server *s);

static void conn_free_if_done(struct conn *c)
{
    if (c->open_handles > 0 || c->req) return;
    struct pl_http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    atomic_fetch_sub(s->cfg.conn_count, 1);
    pl_buf_dispose(&c->head);
    free(c->pending);
    free(c);
    if (s->draining && s->nconns == 0 && s->drain_done) {
        void (*done)(struct pl_http_server *, void *) = s->drain_done;
        s->drain_done = NULL;
        done(s, s->drain_arg);
        return;
    }
    server_maybe_free(s);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    c->open_handles--;
    conn_free_if_done(c);
}

static void conn_close(struct conn *c)
{
    if (c->closing) return;
    c->closing = true;
    if (c->req && c->state != CS_HANDLING) {
        /* A request still being received dies with its connection; one being handled
         * lives on until answered, and its answer is discarded. */
        c->srv->inflight--;
        pl_http_request_free(c->req);
        c->req = NULL;
    }
    if (c->req && c->req->streaming && c->req->drained) drain_soon(c->req);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_linger_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *sr, int status)
{
    struct conn *c = sr->data;
    free(sr);
    if (c->closing) return;
    if (status < 0 || c->read_eof) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_linger_timeout, LINGER_MS, 0);
}

/* Half-close after the final response so that a client still sending (say, the rest of an
 * oversized body) reads our answer instead of a reset; input is discarded until EOF. */
static void conn_linger(struct conn *c)
{
    if (c->closing || c->lingering) return;
    c->lingering = true;
    uv_shutdown_t *sr = malloc(sizeof *sr);
    if (!sr) abort();
    sr->data = c;
    if (uv_shutdown(sr, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        free(sr);
        conn_close(c);
    }
}

/* ---- writing ---- */

struct write_req {
    uv_write_t w;
    struct conn *c;
    char *data;
};

static void on_write(uv_write_t *w, int status)
{
    struct write_req *wr = (struct write_req *)w;
    struct conn *c = wr->c;
    free(wr->data);
    free(wr);
    if (c->closing) return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    struct pl_http_request *req = c->req;
    if (req && req->streaming && req->drained &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < STREAM_LOW_WATER) {
        void (*fn)(struct pl_http_request *, bool, void *) = req->drained;
        req->drained = NULL;
        fn(req, true, req->drained_arg);
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
        if (c->lingering) return;
        conn_process(c); /* resume pipelined requests held back by the write queue */
    }
}

/* Writes `data` (taken). Tries a direct write first: most responses leave in one syscall
 * with no request object or copy. */
static void conn_write(struct conn *c, char *data, size_t len)
{
    if (c->closing || c->lingering) {
        free(data);
        return;
    }
    size_t off = 0;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
        uv_buf_t b = uv_buf_init(data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n > 0)
            off = (size_t)n;
        else if (n != UV_EAGAIN && n < 0) {
            free(data);
            conn_close(c);
            return;
        }
    }
    if (off == len) {
        free(data);
        return;
    }
    struct write_req *wr = malloc(sizeof *wr);
    if (!wr) abort();
    wr->c = c;
    wr->data = data;
    uv_buf_t b = uv_buf_init(data + off, (unsigned)(len - off));
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        free(data);
        free(wr);
        conn_close(c);
    }
}

/* ---- responses ---- */

static void access_log(struct pl_http_request *req, int status, size_t bytes, double ms)
{
    const char *route = req->route                            ? req->route->pattern
                        : req->route_index == PL_ROUTE_STATIC ? "static"
                                                              : "unmatched";
    /* The path only: a query may carry ?access_token=, which must never reach a log. */
    const struct pl_log_field fields[] = {
        PL_STR("request_id", req->request_id),
        PL_STR("method", req->method ? pl_method_name(req->method) : "-"),
        PL_STR("route", route),
        PL_STR("path", req->path ? req->path : "-"),
        PL_INT("status", status),
        PL_FIXED("duration_ms", ms, 3),
        PL_UINT("bytes", bytes),
        PL_STR("ip", req->peer_ip),
        req->log_user ? PL_STR("user_id", req->log_user) : PL_LOG_END,
        PL_LOG_END,
    };
    /* PULSE_ACCESS_LOG switches these lines, not the log level. */
    pl_log_emit_always(PL_LOG_INFO, "request", fields);
}

void pl_resp_header(struct pl_http_request *req, const char *name, const char *value)
{
    /* A control byte would split or corrupt the response head: drop such a header. */
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == ':') return;
    for (const char *p = value; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) return;
    pl_buf_printf(&req->resp_headers, "%s: %s\r\n", name, value);
}

static void request_done(struct pl_http_request *req)
{
    struct conn *c = req->conn;
    struct pl_http_server *s = req->srv;
    s->inflight--;
    if (req->drain_queued) {
        for (struct pl_http_request **p = &s->drain_list; *p; p = &(*p)->drain_next) {
            if (*p == req) {
                *p = req->drain_next;
                break;
            }
        }
    }
    if (c) c->req = NULL;
    pl_http_request_free(req);
    if (!c) return;
    c->served++;
    if (c->closing) {
        conn_free_if_done(c);
        return;
    }
    c->state = CS_IDLE;
    if (!c->processing) conn_process(c);
}

static bool response_closes(const struct pl_http_request *req)
{
    const struct pl_http_server *s = req->srv;
    const struct conn *c = req->conn;
    return req->close_after || !req->keep_alive || s->draining || s->closing_responses || !c ||
           c->read_eof;
}

/* Status line and headers; `len` < 0 means chunked. */
static void build_head(struct pl_http_request *req, struct pl_buf *b, int status,
                       const char *content_type, long long len, bool closing, uint64_t dur)
{
    struct pl_http_server *s = req->srv;
    {
        pl_buf_printf(b, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, pl_http_status_text(status),
                      http_date());
        if (content_type && status != 204 && status != 304)
            pl_buf_printf(b, "Content-Type: %s\r\n", content_type);
        if (len < 0)
            pl_buf_puts(b, "Transfer-Encoding: chunked\r\n");
        else if (status != 204 && status != 304 && status >= 200)
            pl_buf_printf(b, "Content-Length: %lld\r\n", len);
        pl_buf_printf(b,
                      "X-Request-Id: %s\r\nX-Response-Time: %.3fms\r\n"
                      "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"
                      "X-Frame-Options: DENY\r\n",
                      req->request_id, (double)dur / 1e6);
        if (s->cfg.hsts)
            pl_buf_puts(b, "Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n");
        const char *origin = pl_req_header(req, "origin");
        if (cors_allowed(s, origin)) {
            pl_buf_printf(b,
                          "Access-Control-Allow-Origin: %s\r\n"
                          "Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n"
                          "Access-Control-Expose-Headers: ETag, Location, Retry-After, "
                          "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, X-Request-Id, "
                          "Idempotent-Replayed\r\n",
                          origin);
        }
        if (closing)
            pl_buf_puts(b, "Connection: close\r\n");
        else if (req->http_minor == 0)
            pl_buf_puts(b, "Connection: keep-alive\r\n");
        if (req->resp_headers.len) pl_buf_append(b, req->resp_headers.data, req->resp_headers.len);
        pl_buf_append(b, "\r\n", 2);
    }
}

static void finish(struct pl_http_request *req, int status, size_t bytes)
{
    struct pl_http_server *s = req->srv;
    uint64_t dur = uv_hrtime() - req->start_ns;
    if (s->cfg.metrics)
        pl_http_metrics_record(s->cfg.metrics, req->route_index, req->method, status, dur);
    if (s->cfg.access_log) access_log(req, status, bytes, (double)dur / 1e6);
    request_done(req);
}

void pl_respond(struct pl_http_request *req, int status, const char *content_type, const void *body,
                size_t len)
{
    if (req->responded || req->streaming) {
        pl_error("double response", PL_STR("request_id", req->request_id));
        return;
    }
    req->responded = true;
    struct conn *c = req->conn;
    uint64_t dur = uv_hrtime() - req->start_ns;
    bool closing = response_closes(req);
    bool no_body = req->method == PL_M_HEAD || status == 204 || status == 304;
    if (c && !c->closing) {
        struct pl_buf b;
        pl_buf_init(&b);
        pl_buf_reserve(&b, 512 + req->resp_headers.len + (no_body ? 0 : len));
        build_head(req, &b, status, content_type, (long long)len, closing, dur);
        if (!no_body && len) pl_buf_append(&b, body, len);
        size_t total;
        char *data = pl_buf_steal(&b, &total);
        conn_write(c, data, total);
        if (closing) conn_linger(c);
    }
    finish(req, status, no_body ? 0 : len);
}

int pl_http_takeover(struct pl_http_request *req, int status, int *fd, struct pl_buf *extra)
{
    struct conn *c = req->conn;
    if (req->responded || req->streaming) return PL_E_INVALID;
    if (!c || c->closing || c->lingering || c->read_eof) return PL_E_UNAVAILABLE;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > 0) return PL_E_BUSY;
    uv_os_fd_t own;
    if (uv_fileno((uv_handle_t *)&c->tcp, &own) != 0) return PL_E_UNAVAILABLE;
    int dup_fd = fcntl(own, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return PL_E_BUSY;
    *fd = dup_fd;
    if (c->pending_len) pl_buf_append(extra, c->pending, c->pending_len);
    c->pending_len = 0;
    req->responded = true;
    conn_read_stop(c);
    /* uv_close only closes our descriptor: the socket lives on in the duplicate. */
    conn_close(c);
    finish(req, status, 0);
    return 0;
}

static bool stream_open(const struct pl_http_request *req)
{
    return req->conn && !req->conn->closing && !req->conn->lingering;
}

void pl_respond_stream_start(struct pl_http_request *req, int status, const char *content_type)
{
    if (req->responded || req->streaming) return;
    req->streaming = true;
    req->stream_status = status;
    if (!stream_open(req)) return;
    struct pl_buf b;
    pl_buf_init(&b);
    build_head(req, &b, status, content_type, -1, response_closes(req),
               uv_hrtime() - req->start_ns);
    size_t n;
    char *data = pl_buf_steal(&b, &n);
    conn_write(req->conn, data, n);
}

void pl_respond_stream_write(struct pl_http_request *req, const void *data, size_t len)
{
    if (!req->streaming || req->responded || len == 0 || req->method == PL_M_HEAD) return;
    req->stream_bytes += len;
    if (!stream_open(req)) return;
    char *chunk = malloc(len + 32);
    if (!chunk) abort();
    int h = snprintf(chunk, 32, "%zx\r\n", len);
    memcpy(chunk + h, data, len);
    memcpy(chunk + h + len, "\r\n", 2);
    conn_write(req->conn, chunk, (size_t)h + len + 2);
}

bool pl_respond_stream_ready(const struct pl_http_request *req)
{
    return !stream_open(req) ||
           uv_stream_get_write_queue_size((uv_stream_t *)&req->conn->tcp) < STREAM_LOW_WATER;
}

static void on_stream_idle(uv_idle_t *h)
{
    struct pl_http_server *s = h->data;
    uv_idle_stop(h);
    struct pl_http_request *list = s->drain_list;
    s->drain_list = NULL;
    while (list) {
        struct pl_http_request *req = list;
        list = req->drain_next;
        req->drain_next = NULL;
        req->drain_queued = false;
        if (req->drained) {
            void (*fn)(struct pl_http_request *, bool, void *) = req->drained;
            req->drained = NULL;
            fn(req, stream_open(req), req->drained_arg);
        }
    }
}

/* Runs the request's drained callback on the next loop turn. */
static void drain_soon(struct pl_http_request *req)
{
    struct pl_http_server *s = req->srv;
    if (req->drain_queued) return;
    req->drain_queued = true;
    req->drain_next = s->drain_list;
    s->drain_list = req;
    uv_idle_start(&s->stream_idle, on_stream_idle);
}

void pl_respond_stream_on_drain(struct pl_http_request *req,
                                void (*drained)(struct pl_http_request *req, bool alive, void *arg),
                                void *arg)
{
    req->drained = drained;
    req->drained_arg = arg;
    if (pl_respond_stream_ready(req)) drain_soon(req);
}

void pl_respond_stream_abort(struct pl_http_request *req)
{
    if (!req->streaming || req->responded) return;
    req->responded = true;
    if (req->conn && !req->conn->closing) conn_close(req->conn);
    finish(req, req->stream_status, req->stream_bytes);
}

void pl_respond_stream_end(struct pl_http_request *req)
{
    if (!req->streaming || req->responded) return;
    req->responded = true;
    if (stream_open(req)) {
        if (req->method != PL_M_HEAD) {
            char *last = strdup("0\r\n\r\n");
            if (!last) abort();
            conn_write(req->conn, last, 5);
        }
        if (response_closes(req)) conn_linger(req->conn);
    }
    finish(req, req->stream_status, req->stream_bytes);
}

void pl_respond_json(struct pl_http_request *req, int status, json_t *json)
{
    char *text = json_dumps(json, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(12));
    json_decref(json);
    if (!text) {
        pl_respond_problem(req, 500, NULL, NULL);
        return;
    }
    pl_respond(req, status, "application/json", text, strlen(text));
    free(text);
}

void pl_respond_problem(struct pl_http_request *req, int status, const char *detail, json_t *errors)
{
    json_t *p = json_object();
    char type[64];
    snprintf(type, sizeof type, "/problems/%s", pl_http_problem_slug(status));
    json_object_set_new(p, "type", json_string(type));
    json_object_set_new(p, "title", json_string(pl_http_status_text(status)));
    json_object_set_new(p, "status", json_integer(status));
    if (detail) json_object_set_new(p, "detail", json_string(detail));
    json_object_set_new(p, "request_id", json_string(req->request_id));
    if (errors) json_object_set_new(p, "errors", errors);
    char *text = json_dumps(p, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(p);
    if (status == 401 &&
        !strstr(req->resp_headers.data ? req->resp_headers.data : "", "WWW-Authenticate"))
        pl_resp_header(req, "WWW-Authenticate", "Bearer");
    pl_respond(req, status, "application/problem+json", text, text ? strlen(text) : 0);
    free(text);
}

/* ---- request construction ---- */

static struct pl_http_request *request_new(struct conn *c)
{
    struct pl_http_request *req = calloc(1, sizeof *req);
    if (!req) abort();
    req->conn = c;
    req->srv = c->srv;
    req->route_index = PL_ROUTE_UNMATCHED;
    req->start_ns = uv_hrtime();
    req->query = "";
    memcpy(req->peer_ip, c->peer, sizeof req->peer_ip);
    make_request_id(req->request_id, sizeof req->request_id);
    c->srv->inflight++;
    return req;
}

/* Fails the request being received with `status` and closes the connection after. */
static void conn_fail(struct conn *c, int status, const char *detail)
{
    if (!c->req) c->req = request_new(c);
    struct pl_http_request *req = c->req;
    req->close_after = true;
    c->state = CS_HANDLING;
    pl_respond_problem(req, status, detail, NULL);
}

/* ---- llhttp callbacks ---- */

static int on_message_begin(llhttp_t *p)
{
    struct conn *c = p->data;
    if (!c->req) c->req = request_new(c);
    c->state = CS_HEAD;
    c->head.len = 0;
    c->error_status = 0;
    c->msg_wire = 0;
    c->url_len = 0;
    c->nhdr = 0;
    c->hstate = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    pl_buf_append(&c->head, at, len);
    c->url_len += len;
    return 0;
}

static int on_url_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    pl_buf_append(&c->head, "", 1);
    return 0;
}

/* RFC 9110 token characters: a field name with anything else (a space before the colon,
 * which llhttp 8.1 lets through) is refused. */
static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    for (size_t i = 0; i < len; i++) {
        if (!is_tchar((unsigned char)at[i])) {
            c->error_status = 400;
            c->error_detail = "invalid header field name";
            return HPE_USER;
        }
    }
    if (c->hstate != 1) {
        if (c->nhdr == MAX_HEADERS) {
            c->error_status = 431;
            c->error_detail = "too many header fields";
            return HPE_USER;
        }
        c->hdr_off[c->nhdr][0] = c->head.len;
        c->hstate = 1;
        c->value_started = false;
    }
    pl_buf_append(&c->head, at, len);
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    pl_buf_append(&c->head, "", 1);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (!c->value_started) {
        c->hdr_off[c->nhdr][1] = c->head.len;
        c->value_started = true;
    }
    c->hstate = 2;
    pl_buf_append(&c->head, at, len);
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    if (!c->value_started) c->hdr_off[c->nhdr][1] = c->head.len;
    /* llhttp leaves trailing whitespace in values (OWS): trim it. */
    while (c->head.len > c->hdr_off[c->nhdr][1] &&
           (c->head.data[c->head.len - 1] == ' ' || c->head.data[c->head.len - 1] == '\t'))
        c->head.len--;
    pl_buf_append(&c->head, "", 1);
    c->nhdr++;
    c->hstate = 2;
    c->value_started = false;
    return 0;
}

/* host [":" port] of RFC 3986 reg-name or IP literal characters; empty is allowed in 1.0. */
static bool host_ok(const char *h)
{
    size_t n = strlen(h);
    if (n > 255) return false;
    return strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:[]") == n;
}

static unsigned method_bit(int m)
{
    switch (m) {
    case HTTP_GET:
        return PL_M_GET;
    case HTTP_HEAD:
        return PL_M_HEAD;
    case HTTP_POST:
        return PL_M_POST;
    case HTTP_PUT:
        return PL_M_PUT;
    case HTTP_PATCH:
        return PL_M_PATCH;
    case HTTP_DELETE:
        return PL_M_DELETE;
    case HTTP_OPTIONS:
        return PL_M_OPTIONS;
    default:
        return PL_M_OTHER;
    }
}

static int on_headers_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    struct pl_http_request *req = c->req;
    struct pl_http_server *s = c->srv;
    if (!c->url_len) return HPE_USER;
    req->method = method_bit(llhttp_get_method(p));
    req->http_minor = llhttp_get_http_minor(p);
    if (llhttp_get_http_major(p) != 1) {
        c->error_status = 400;
        c->error_detail = "only HTTP/1.0 and HTTP/1.1 are spoken here";
        return HPE_USER;
    }
    /* Hand the strings to the request: the buffer no longer grows, so pointers hold. */
    size_t headlen;
    req->head = pl_buf_steal(&c->head, &headlen);
    req->headers = pl_req_alloc(req, sizeof *req->headers * (c->nhdr ? c->nhdr : 1));
    for (size_t i = 0; i < c->nhdr; i++) {
        req->headers[i].name = req->head + c->hdr_off[i][0];
        req->headers[i].value = req->head + c->hdr_off[i][1];
    }
    req->nheaders = c->nhdr;
    /* RFC 9112 section 3.2: exactly one valid Host in HTTP/1.1, at most one in 1.0. */
    const char *host = NULL;
    int nhost = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].name, "host") != 0) continue;
        host = req->headers[i].value;
        nhost++;
    }
    if (nhost > 1 || (nhost == 0 && req->http_minor >= 1) || (host && !host_ok(host))) {
        c->error_status = 400;
        c->error_detail = "one valid Host header is required";
        return HPE_USER;
    }
    char *url = req->head;
    /* absolute-form (proxies): scheme://authority/path, the authority agreeing with Host */
    if (url[0] != '/' && url[0] != '*') {
        char *sch = strstr(url, "://");
        char *slash = sch ? strchr(sch + 3, '/') : NULL;
        size_t alen = slash ? (size_t)(slash - (sch + 3)) : 0;
        if (!slash || !host || strlen(host) != alen || strncasecmp(sch + 3, host, alen) != 0) {
            c->error_status = 400;
            c->error_detail = "request target must be a path (or name the Host)";
            return HPE_USER;
        }
        url = slash;
    }
    char *q = strchr(url, '?');
    if (q) {
        *q = 0;
        req->query = q + 1;
    }
    char *hash = strchr(q ? req->query : url, '#');
    if (hash) *hash = 0;
    req->path = url;
    const char *id = pl_req_header(req, "x-request-id");
    if (id && sane_request_id(id)) snprintf(req->request_id, sizeof req->request_id, "%s", id);
    c->state = CS_BODY;
    c->body_end_off = c->scan.count;
    if (p->upgrade) c->upgrade = true;
    uint64_t cl = p->content_length;
    if ((p->flags & F_CONTENT_LENGTH) && cl > s->cfg.max_body_bytes) {
        c->error_status = 413;
        c->error_detail = "request body too large";
        return HPE_USER;
    }
    const char *expect = pl_req_header(req, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && req->http_minor == 1) {
        char *cont = strdup("HTTP/1.1 100 Continue\r\n\r\n");
        if (!cont) abort();
        conn_write(c, cont, strlen(cont));
    }
    return 0;
}

#define MAX_FRAMING_BYTES 16384

/* Chunked framing (size lines, extensions, trailers) between two pieces of body may not
 * exceed MAX_FRAMING_BYTES: llhttp accepts any number of leading zeros or extensions. */
static bool framing_over(const struct conn *c, uint64_t off)
{
    return off > c->body_end_off && off - c->body_end_off > MAX_FRAMING_BYTES;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    struct pl_http_request *req = c->req;
    uint64_t off = c->msg_wire + (uint64_t)(at - c->buf_base);
    if (framing_over(c, off)) {
        c->error_status = 400;
        c->error_detail = "chunk framing too long";
        return HPE_USER;
    }
    c->body_end_off = off + len;
    if (req->body.len + len > c->srv->cfg.max_body_bytes) {
        c->error_status = 413;
        c->error_detail = "request body too large";
        return HPE_USER;
    }
    pl_buf_append(&req->body, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->state = CS_HANDLING;
    return HPE_PAUSED;
}

/* ---- dispatch ---- */

static void answer_options(struct pl_http_request *req, unsigned allow)
{
    struct pl_http_server *s = req->srv;
    char methods[96] = "";
    for (int i = 0; i < PL_METHOD_COUNT - 1; i++) {
        if (!(allow & (1u << i))) continue;
        if (methods[0]) strcat(methods, ", ");
        strcat(methods, pl_method_name(1u << i));
    }
    strcat(methods, methods[0] ? ", OPTIONS" : "OPTIONS");
    const char *origin = pl_req_header(req, "origin");
    if (origin && pl_req_header(req, "access-control-request-method") && cors_allowed(s, origin)) {
        pl_resp_header(req, "Access-Control-Allow-Methods", methods);
        pl_resp_header(req, "Access-Control-Allow-Headers",
                       "Authorization, Content-Type, Idempotency-Key, If-Match, X-Request-Id");
        pl_resp_header(req, "Access-Control-Max-Age", "600");
    }
    pl_resp_header(req, "Allow", methods);
    pl_respond(req, 204, NULL, NULL, 0);
}

static void dispatch(struct conn *c)
{
    struct pl_http_request *req = c->req;
    struct pl_http_server *s = c->srv;
    req->keep_alive = llhttp_should_keep_alive(&c->parser) && !c->upgrade;
    if (c->upgrade) req->close_after = true;
    uv_timer_stop(&c->timer);
    const char *path = req->path;
    int rc = PL_E_NOTFOUND;
    if (strcmp(path, "*") != 0)
        rc = pl_router_match(s->cfg.router, req->method, path, strlen(path), &req->match);
    if (req->method == PL_M_OPTIONS && rc != PL_E_NOTFOUND) {
        answer_options(req, req->match.allow);
        return;
    }
    if (rc == PL_E_NOTFOUND) {
        if (s->cfg.fallback && (req->method == PL_M_GET || req->method == PL_M_HEAD)) {
            req->route_index = PL_ROUTE_STATIC;
            s->cfg.fallback(req, s->cfg.ctx);
            return;
        }
        pl_respond_problem(req, 404, "no such resource", NULL);
        return;
    }
    if (rc == PL_E_CONFLICT) {
        char allow[96] = "";
        for (int i = 0; i < PL_METHOD_COUNT - 1; i++) {
            if (!(req->match.allow & (1u << i))) continue;
            if (allow[0]) strcat(allow, ", ");
            strcat(allow, pl_method_name(1u << i));
        }
        pl_resp_header(req, "Allow", allow);
        pl_respond_problem(req, 405, "method not allowed on this resource", NULL);
        return;
    }
    req->route = req->match.route;
    req->route_index = req->route->index;
    for (int i = 0; i < req->match.nparams; i++) {
        size_t n = req->match.params[i].value_len;
        char *v = pl_req_alloc(req, n + 1);
        if (pl_http_percent_decode(req->match.params[i].value, n, v, 0) < 0) {
            pl_respond_problem(req, 404, "no such resource", NULL);
            return;
        }
        req->param_values[i] = v;
    }
    if (s->cfg.dispatch)
        s->cfg.dispatch(req, s->cfg.ctx);
    else
        req->route->handler(req);
}

/* Scans head bytes for our own limits. Returns how many bytes of data belong to the head
 * (all of them when the head goes on), or sets *status on an error. */
static size_t scan_head(struct conn *c, const char *data, size_t len, int *status)
{
    struct scanner *sc = &c->scan;
    size_t max = c->srv->cfg.max_head_bytes;
    size_t i = 0;
    for (; i < len && !sc->done; i++) {
        char b = data[i];
        if (sc->count == 0) {
            if (!c->req) c->req = request_new(c);
            if (c->state == CS_IDLE) c->state = CS_HEAD;
        }
        if (++sc->count > max) {
            *status = 431;
            return i;
        }
        if (b == '\n') {
            if (sc->prev != '\r') {
                *status = 400;
                return i;
            }
            if (sc->line_len == 1) { /* "\r\n": an empty line */
                if (sc->lines > 0) sc->done = true;
            } else {
                sc->lines++;
            }
            sc->line_len = 0;
        } else {
            if (sc->line_len == 0 && sc->lines > 0 && (b == ' ' || b == '\t')) {
                *status = 400; /* obs-fold */
                return i;
            }
            /* The request line is "METHOD SP target SP version": one space each, as RFC
             * 9112 writes it; whitespace runs are refused rather than guessed at. */
            if (sc->lines == 0 &&
                (b == '\t' || (b == ' ' && (sc->line_len == 0 || sc->prev == ' ')))) {
                *status = 400;
                return i;
            }
            sc->line_len++;
        }
        sc->prev = b;
    }
    return i;
}

static void on_head_timeout(uv_timer_t *t);

/* Feeds bytes to the parser. Returns how many were consumed; stops after a complete request
 * (dispatched) or an error (answered). */
static size_t conn_parse(struct conn *c, const char *data, size_t len)
{
    if (!c->scan.done) {
        bool fresh = c->scan.count == 0;
        int status = 0;
        scan_head(c, data, len, &status);
        if (fresh && c->scan.count > 0)
            uv_timer_start(&c->timer, on_head_timeout, c->srv->cfg.head_timeout_ms, 0);
        if (status) {
            conn_fail(c, status,
                      status == 431 ? "request head too large"
                                    : "malformed request (bare LF or folded header line)");
            return len;
        }
    }
    c->buf_base = data;
    llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
    if (err == HPE_OK) {
        c->msg_wire += len;
        if (c->state == CS_BODY && framing_over(c, c->msg_wire))
            conn_fail(c, 400, "chunk framing too long");
        return len;
    }
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
        if (err == HPE_PAUSED) llhttp_resume(&c->parser);
        memset(&c->scan, 0, sizeof c->scan);
        dispatch(c);
        return used;
    }
    if (c->error_status) {
        conn_fail(c, c->error_status, c->error_detail);
    } else {
        conn_fail(c, 400, llhttp_get_error_reason(&c->parser));
    }
    return len;
}

static void pending_take(struct conn *c, const char *data, size_t len)
{
    if (c->pending_len + len > c->pending_cap) {
        size_t cap = c->pending_cap ? c->pending_cap : 4096;
        while (cap < c->pending_len + len)
            cap *= 2;
        char *p = realloc(c->pending, cap);
        if (!p) abort();
        c->pending = p;
        c->pending_cap = cap;
    }
    memcpy(c->pending + c->pending_len, data, len);
    c->pending_len += len;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void conn_read_start(struct conn *c)
{
    if (c->reading || c->closing) return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = true;
}

static void conn_read_stop(struct conn *c)
{
    if (!c->reading) return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

static void on_idle_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->state == CS_IDLE && !c->req) conn_close(c);
}

static void on_head_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->state == CS_HANDLING || c->closing) return;
    if (c->scan.count == 0 && c->state == CS_IDLE) {
        conn_close(c); /* sent nothing: close silently */
        return;
    }
    conn_fail(c, 408, "request not received in time");
}

/* Parses pending bytes while no request is in flight. */
static void conn_process(struct conn *c)
{
    if (c->processing) return;
    c->processing = true;
    while (!c->closing && !c->lingering && !c->req && c->pending_len > 0) {
        if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > MAX_WRITE_QUEUE) break;
        size_t used = conn_parse(c, c->pending, c->pending_len);
        memmove(c->pending, c->pending + used, c->pending_len - used);
        c->pending_len -= used;
    }
    c->processing = false;
    if (c->closing || c->lingering) return;
    if (!c->req) {
        if (c->read_eof) {
            conn_close(c);
            return;
        }
        if (c->srv->draining && c->pending_len == 0 && c->scan.count == 0) {
            conn_close(c);
            return;
        }
        if (c->upgrade) {
            conn_close(c);
            return;
        }
        if (c->scan.count == 0 && c->pending_len == 0)
            uv_timer_start(&c->timer, on_idle_timeout, c->srv->cfg.idle_timeout_ms, 0);
    }
    /* Bound what a client can make us hold: stop reading while a request is handled and
     * enough is buffered. */
    size_t cap = c->srv->cfg.max_head_bytes + c->srv->cfg.max_body_bytes;
    if (c->pending_len > cap)
        conn_read_stop(c);
    else if (!c->read_eof)
        conn_read_start(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    buf->base = c->srv->read_buf;
    buf->len = sizeof c->srv->read_buf;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    if (nread == 0) return;
    if (c->lingering) {
        if (nread < 0) conn_close(c);
        return;
    }
    if (nread < 0) {
        c->read_eof = true;
        conn_read_stop(c);
        /* With a request in flight, its answer still goes out (a half-close is legal);
         * a partial request or an idle connection just closes. */
        if (!c->req || c->state != CS_HANDLING) conn_close(c);
        return;
    }
    const char *data = buf->base;
    size_t len = (size_t)nread;
    if (c->req && c->state == CS_HANDLING) {
        pending_take(c, data, len);
        conn_process(c);
        return;
    }
    if (c->pending_len > 0) {
        pending_take(c, data, len);
        conn_process(c);
        return;
    }
    /* Fast path: parse straight from the loop's read buffer; keep only what is left after
     * a complete request. */
    c->processing = true;
    size_t used = conn_parse(c, data, len);
    c->processing = false;
    if (used < len && !c->closing && !c->lingering) pending_take(c, data + used, len - used);
    if (!c->closing) conn_process(c);
}

/* ---- accepting ---- */

#define OVER_CAP_BODY                                                                              \
    "{\"type\":\"/problems/unavailable\",\"title\":\"Service Unavailable\",\"status\":503,"        \
    "\"detail\":\"too many connections\"}"

static void on_refused_closed(uv_handle_t *h)
{
    free(h);
}

/* Over the connection cap: one 503 written without reading the request, then close. */
static void refuse(struct pl_http_server *s, uv_tcp_t *t)
{
    char resp[512];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                     "application/problem+json\r\nContent-Length: %zu\r\nRetry-After: 1\r\n"
                     "Connection: close\r\n\r\n%s",
                     sizeof OVER_CAP_BODY - 1, OVER_CAP_BODY);
    uv_buf_t b = uv_buf_init(resp, (unsigned)n);
    (void)uv_try_write((uv_stream_t *)t, &b, 1);
    uv_close((uv_handle_t *)t, on_refused_closed);
}

static struct conn *conn_new(struct pl_http_server *s)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    return c;
}

/* An accepted connection starts: peer address, parser, head timer, reading. */
static void conn_begin(struct conn *c)
{
    struct pl_http_server *s = c->srv;
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    strcpy(c->peer, "-");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
        else if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;
    uv_timer_start(&c->timer, on_head_timeout, s->cfg.head_timeout_ms, 0);
    conn_read_start(c);
}

static bool over_cap(struct pl_http_server *s)
{
    if (atomic_fetch_add(s->cfg.conn_count, 1) < s->cfg.max_connections) return false;
    atomic_fetch_sub(s->cfg.conn_count, 1);
    return true;
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct pl_http_server *s = ls->data;
    if (status < 0) return;
    if (over_cap(s)) {
        uv_tcp_t *t = malloc(sizeof *t);
        if (!t) abort();
        uv_tcp_init(s->loop, t);
        if (uv_accept(ls, (uv_stream_t *)t) == 0)
            refuse(s, t);
        else
            uv_close((uv_handle_t *)t, on_refused_closed);
        return;
    }
    struct conn *c = conn_new(s);
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    conn_begin(c);
}

/* Before the listener closes, takes every connection the kernel already completed: closing
 * the listener would reset them, and their clients have done nothing wrong. */
static void accept_backlog(struct pl_http_server *s)
{
    uv_os_fd_t lfd;
    if (uv_fileno((uv_handle_t *)&s->listener, &lfd) != 0) return;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (over_cap(s)) {
            close(fd);
            continue;
        }
        struct conn *c = conn_new(s);
        if (uv_tcp_open(&c->tcp, fd) != 0) {
            close(fd);
            conn_close(c);
            continue;
        }
        conn_begin(c);
    }
}

/* The server goes last: after its own handles and after every connection. */
static void server_maybe_free(struct pl_http_server *s)
{
    if (!s->destroying || s->open_handles > 0 || s->nconns > 0) return;
    free(s->public_origin);
    free(s->cors_origins);
    free(s);
}

static void on_server_handle_closed(uv_handle_t *h)
{
    struct pl_http_server *s = h->data;
    s->open_handles--;
    server_maybe_free(s);
}

int pl_http_server_create(uv_loop_t *loop, const struct pl_http_config *cfg, int fd,
                          struct pl_http_server **out)
{
    if (!cfg->router || !cfg->conn_count) return PL_E_INVALID;
    struct pl_http_server *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->loop = loop;
    s->cfg = *cfg;
    s->public_origin = strdup(cfg->public_origin ? cfg->public_origin : "");
    s->cors_origins = strdup(cfg->cors_origins ? cfg->cors_origins : "");
    if (!s->public_origin || !s->cors_origins) abort();
    llhttp_settings_init(&s->settings);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_url_complete = on_url_complete;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_field_complete = on_header_field_complete;
    s->settings.on_header_value = on_header_value;
    s->settings.on_header_value_complete = on_header_value_complete;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    uv_timer_init(loop, &s->drain_timer);
    s->drain_timer.data = s;
    uv_idle_init(loop, &s->stream_idle);
    s->stream_idle.data = s;
    s->open_handles = 3;
    int rc = uv_tcp_open(&s->listener, fd);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 4096, on_connection);
    if (rc < 0) {
        s->destroying = true;
        uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
        uv_close((uv_handle_t *)&s->drain_timer, on_server_handle_closed);
        uv_close((uv_handle_t *)&s->stream_idle, on_server_handle_closed);
        return rc;
    }
    s->listening = true;
    *out = s;
    return 0;
}

void pl_http_server_close_responses(struct pl_http_server *s)
{
    s->closing_responses = true;
}

void pl_http_server_stop_accepting(struct pl_http_server *s)
{
    if (!s->listening) return;
    s->listening = false;
    accept_backlog(s);
    uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct pl_http_server *s = t->data;
    for (struct conn *c = s->conns; c; c = c->next)
        conn_close(c);
}

static bool bytes_waiting(struct conn *c)
{
    uv_os_fd_t fd;
    char b;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) return false;
    return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

void pl_http_server_drain(struct pl_http_server *s, uint64_t drain_ms,
                          void (*done)(struct pl_http_server *s, void *arg), void *arg)
{
    s->draining = true;
    s->drain_done = done;
    s->drain_arg = arg;
    struct conn *next;
    for (struct conn *c = s->conns; c; c = next) {
        next = c->next;
        /* Idle keep-alive connections go now. A connection that has not yet sent its first
         * request (just accepted), or has bytes waiting in the socket, or has a request
         * under way, is served, with Connection: close; the drain timer bounds it all. */
        if (!c->req && c->scan.count == 0 && c->pending_len == 0 && c->served > 0 &&
            !bytes_waiting(c))
            conn_close(c);
    }
    if (s->nconns == 0) {
        s->drain_done = NULL;
        if (done) done(s, arg);
        return;
    }
    uv_timer_start(&s->drain_timer, on_drain_timeout, drain_ms, 0);
}

void pl_http_server_destroy(struct pl_http_server *s)
{
    if (!s) return;
    s->drain_done = NULL;
    pl_http_server_stop_accepting(s);
    for (struct conn *c = s->conns; c; c = c->next)
        conn_close(c);
    s->destroying = true;
    uv_close((uv_handle_t *)&s->drain_timer, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->stream_idle, on_server_handle_closed);
}

int pl_http_server_connections(const struct pl_http_server *s)
{
    return s->nconns;
}

void *pl_req_ctx(const struct pl_http_request *req)
{
    return req->srv->cfg.ctx;
}

bool pl_req_alive(const struct pl_http_request *req)
{
    return req->conn && !req->conn->closing && !req->conn->read_eof;
}
int pl_http_server_inflight(const struct pl_http_server *s)
{
    return s->inflight;
}

/* ---- listening sockets ---- */

int pl_http_parse_listen(const char *s, char *host, size_t hostcap, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hlen;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':') return PL_E_INVALID;
        h = s + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return PL_E_INVALID;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= hostcap) return PL_E_INVALID;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || colon[1] == 0 || p < 0 || p > 65535) return PL_E_INVALID;
    memcpy(host, h, hlen);
    host[hlen] = 0;
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    if (uv_ip4_addr(host, 0, &a4) != 0 && uv_ip6_addr(host, 0, &a6) != 0) return PL_E_INVALID;
    *port = (int)p;
    return 0;
}

int pl_http_listen_socket(const char *host, int *port, int backlog)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    int family;
    if (uv_ip4_addr(host, *port, (struct sockaddr_in *)&ss) == 0) {
        family = AF_INET;
        sl = sizeof(struct sockaddr_in);
    } else if (uv_ip6_addr(host, *port, (struct sockaddr_in6 *)&ss) == 0) {
        family = AF_INET6;
        sl = sizeof(struct sockaddr_in6);
    } else {
        return PL_E_INVALID;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) goto fail;
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) goto fail;
    if (listen(fd, backlog) < 0) goto fail;
    if (*port == 0) {
        sl = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) goto fail;
        *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                        : ((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return fd;
fail:;
    int e = -errno;
    close(fd);
    return e;
}
