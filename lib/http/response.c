/* Responses: status line and headers (the standard, security and CORS headers every
 * response carries), pl_respond and problem+json, chunked streaming, the WebSocket takeover,
 * and the bookkeeping of a finished request (metrics, access log).
 *
 * A response is built into one buffer and handed to the connection, which tries a direct
 * write first; after the client went away the answer is still counted and logged, and
 * discarded. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "pl/mem.h"
#include "pl/log.h"
#include "pl/time.h"

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

/* ---- heads ---- */

/* The Date header's text, formatted once a second per thread. */
static _Thread_local struct {
    int64_t sec;
    char text[32];
} date_cache;

static const char *http_date(void)
{
    int64_t now = pl_time_now_us() / 1000000;
    if (now != date_cache.sec) {
        pl_time_format_http(now, date_cache.text);
        date_cache.sec = now;
    }
    return date_cache.text;
}

static bool cors_allowed(const struct pl_http_server *s, const char *origin)
{
    return origin && *origin && pl_http_list_has(s->cors_origins, origin, false);
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

static bool response_closes(const struct pl_http_request *req)
{
    const struct pl_http_server *s = req->srv;
    const struct conn *c = req->conn;
    return req->close_after || !req->keep_alive || s->draining || s->closing_responses || !c ||
           c->read_eof;
}

/* What every response says about itself and its request, and the security headers. */
static void put_standard_headers(const struct pl_http_request *req, struct pl_buf *b, uint64_t dur)
{
    pl_buf_printf(b,
                  "X-Request-Id: %s\r\nX-Response-Time: %.3fms\r\n"
                  "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"
                  "X-Frame-Options: DENY\r\n",
                  req->request_id, (double)dur / 1e6);
    if (req->srv->cfg.hsts)
        pl_buf_puts(b, "Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n");
}

/* For an allowed Origin: the CORS headers of an actual (not preflight) response. */
static void put_cors_headers(const struct pl_http_request *req, struct pl_buf *b)
{
    const char *origin = pl_req_header(req, "origin");
    if (!cors_allowed(req->srv, origin)) return;
    pl_buf_printf(b,
                  "Access-Control-Allow-Origin: %s\r\n"
                  "Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n"
                  "Access-Control-Expose-Headers: ETag, Location, Retry-After, "
                  "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, X-Request-Id, "
                  "Idempotent-Replayed\r\n",
                  origin);
}

/* Status line and headers; `len` < 0 means chunked. */
static void build_head(const struct pl_http_request *req, struct pl_buf *b, int status,
                       const char *content_type, long long len, bool closing, uint64_t dur)
{
    pl_buf_printf(b, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, pl_http_status_text(status),
                  http_date());
    if (content_type && status != 204 && status != 304)
        pl_buf_printf(b, "Content-Type: %s\r\n", content_type);
    if (len < 0)
        pl_buf_puts(b, "Transfer-Encoding: chunked\r\n");
    else if (status != 204 && status != 304 && status >= 200)
        pl_buf_printf(b, "Content-Length: %lld\r\n", len);
    put_standard_headers(req, b, dur);
    put_cors_headers(req, b);
    if (closing)
        pl_buf_puts(b, "Connection: close\r\n");
    else if (req->http_minor == 0)
        pl_buf_puts(b, "Connection: keep-alive\r\n");
    if (req->resp_headers.len) pl_buf_append(b, req->resp_headers.data, req->resp_headers.len);
    pl_buf_append(b, "\r\n", 2);
}

/* ---- finishing ---- */

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

/* The request is answered (or its answer discarded): counted, logged, freed. */
static void finish(struct pl_http_request *req, int status, size_t bytes)
{
    struct pl_http_server *s = req->srv;
    uint64_t dur = uv_hrtime() - req->start_ns;
    if (s->cfg.metrics)
        pl_http_metrics_record(s->cfg.metrics, req->route_index, req->method, status, dur);
    if (s->cfg.access_log) access_log(req, status, bytes, (double)dur / 1e6);
    http_stream_forget(req);
    http_conn_request_done(req);
}

static void send_response(struct pl_http_request *req, int status, const char *content_type,
                          const void *body, size_t len);

void pl_respond(struct pl_http_request *req, int status, const char *content_type, const void *body,
                size_t len)
{
    if (req->responded || req->streaming) {
        pl_error("double response", PL_STR("request_id", req->request_id));
        return;
    }
    req->responded = true;
    if (req->holds > 0) {
        req->held = true;
        req->held_status = status;
        req->held_type = content_type ? pl_req_strdup(req, content_type) : NULL;
        req->held_body = pl_req_alloc(req, len + 1);
        if (len) memcpy(req->held_body, body, len);
        req->held_len = len;
        return;
    }
    send_response(req, status, content_type, body, len);
}

void pl_req_hold(struct pl_http_request *req)
{
    req->holds++;
}

void pl_req_release(struct pl_http_request *req)
{
    if (req->holds <= 0 || --req->holds > 0 || !req->held) return;
    req->held = false;
    send_response(req, req->held_status, req->held_type, req->held_body, req->held_len);
}

static void send_response(struct pl_http_request *req, int status, const char *content_type,
                          const void *body, size_t len)
{
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
        http_conn_write(c, data, total);
        if (closing) http_conn_linger(c);
    }
    finish(req, status, no_body ? 0 : len);
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

/* ---- the router's own answers: OPTIONS and 405 ---- */

/* "GET, HEAD, POST" for a set of method bits (OPTIONS included when it is in the set). */
static void allow_list(unsigned allow, char out[96])
{
    out[0] = 0;
    for (int i = 0; i < PL_METHOD_COUNT - 1; i++) {
        if (!(allow & (1u << i))) continue;
        if (out[0]) strcat(out, ", ");
        strcat(out, pl_method_name(1u << i));
    }
}

void http_respond_options(struct pl_http_request *req, unsigned allow)
{
    char methods[96];
    allow_list(allow, methods);
    strcat(methods, methods[0] ? ", OPTIONS" : "OPTIONS");
    const char *origin = pl_req_header(req, "origin");
    if (origin && pl_req_header(req, "access-control-request-method") &&
        cors_allowed(req->srv, origin)) {
        pl_resp_header(req, "Access-Control-Allow-Methods", methods);
        pl_resp_header(req, "Access-Control-Allow-Headers",
                       "Authorization, Content-Type, Idempotency-Key, If-Match, X-Request-Id");
        pl_resp_header(req, "Access-Control-Max-Age", "600");
    }
    pl_resp_header(req, "Allow", methods);
    pl_respond(req, 204, NULL, NULL, 0);
}

void http_respond_405(struct pl_http_request *req, unsigned allow)
{
    char methods[96];
    allow_list(allow, methods);
    pl_resp_header(req, "Allow", methods);
    pl_respond_problem(req, 405, "method not allowed on this resource", NULL);
}

/* ---- streaming ---- */

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
    http_conn_write(req->conn, data, n);
}

void pl_respond_stream_write(struct pl_http_request *req, const void *data, size_t len)
{
    if (!req->streaming || req->responded || len == 0 || req->method == PL_M_HEAD) return;
    req->stream_bytes += len;
    if (!stream_open(req)) return;
    char *chunk = pl_xmalloc(len + 32);
    int h = snprintf(chunk, 32, "%zx\r\n", len);
    memcpy(chunk + h, data, len);
    memcpy(chunk + h + len, "\r\n", 2);
    http_conn_write(req->conn, chunk, (size_t)h + len + 2);
}

bool pl_respond_stream_ready(const struct pl_http_request *req)
{
    return !stream_open(req) ||
           uv_stream_get_write_queue_size((uv_stream_t *)&req->conn->tcp) < HTTP_STREAM_LOW_WATER;
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

void http_stream_drain_soon(struct pl_http_request *req)
{
    struct pl_http_server *s = req->srv;
    if (req->drain_queued) return;
    req->drain_queued = true;
    req->drain_next = s->drain_list;
    s->drain_list = req;
    uv_idle_start(&s->stream_idle, on_stream_idle);
}

void http_stream_forget(struct pl_http_request *req)
{
    if (!req->drain_queued) return;
    for (struct pl_http_request **p = &req->srv->drain_list; *p; p = &(*p)->drain_next) {
        if (*p == req) {
            *p = req->drain_next;
            break;
        }
    }
}

void pl_respond_stream_on_drain(struct pl_http_request *req,
                                void (*drained)(struct pl_http_request *req, bool alive, void *arg),
                                void *arg)
{
    req->drained = drained;
    req->drained_arg = arg;
    if (pl_respond_stream_ready(req)) http_stream_drain_soon(req);
}

void pl_respond_stream_abort(struct pl_http_request *req)
{
    if (!req->streaming || req->responded) return;
    req->responded = true;
    if (req->conn && !req->conn->closing) http_conn_close(req->conn);
    finish(req, req->stream_status, req->stream_bytes);
}

void pl_respond_stream_end(struct pl_http_request *req)
{
    if (!req->streaming || req->responded) return;
    req->responded = true;
    if (stream_open(req)) {
        if (req->method != PL_M_HEAD) {
            char *last = pl_xstrdup("0\r\n\r\n");
            http_conn_write(req->conn, last, 5);
        }
        if (response_closes(req)) http_conn_linger(req->conn);
    }
    finish(req, req->stream_status, req->stream_bytes);
}

/* ---- takeover ---- */

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
    if (c->pending.len) pl_buf_append(extra, c->pending.data, c->pending.len);
    c->pending.len = 0;
    req->responded = true;
    http_conn_read_stop(c);
    /* uv_close only closes our descriptor: the socket lives on in the duplicate. */
    http_conn_close(c);
    finish(req, status, 0);
    return 0;
}
