/* A connection's lifetime: start, reading, pipelining, writing, timeouts, close and reap.
 *
 * A connection handles one request at a time. Bytes that arrive while a request is handled
 * (or after a complete request in the same read) wait in `pending` and are parsed once the
 * request is answered, which keeps pipelined responses in order with no reorder queue. One
 * timer serves in turn as the head timeout (408), the idle keep-alive timeout and the
 * linger timeout after a half-close. A connection is never freed inside its own callbacks:
 * http_conn_close starts closing the handles, and the connection is reaped (conn_free_if_done)
 * once both are closed and no request points at it. */
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "pl/mem.h"

#define LINGER_MS       2000
#define MAX_WRITE_QUEUE (256 * 1024) /* stop parsing pipelined requests above this */

static void conn_process(struct conn *c);

/* ---- start ---- */

struct conn *http_conn_new(struct pl_http_server *s)
{
    struct conn *c = pl_xcalloc(1, sizeof *c);
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    LIST_INSERT_HEAD(&s->conns, c, link);
    s->nconns++;
    return c;
}

static void peer_name(struct conn *c)
{
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    strcpy(c->peer, "-");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) != 0) return;
    if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
    else if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void conn_read_start(struct conn *c)
{
    if (c->reading || c->closing) return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = true;
}

void http_conn_read_stop(struct conn *c)
{
    if (!c->reading) return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

void http_conn_begin(struct conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c);
    llhttp_init(&c->parser, HTTP_REQUEST, &c->srv->settings);
    c->parser.data = c;
    http_conn_start_head_timer(c);
    conn_read_start(c);
}

/* ---- close and reap ---- */

static void conn_free_if_done(struct conn *c)
{
    if (c->open_handles > 0 || c->req) return;
    struct pl_http_server *s = c->srv;
    LIST_REMOVE(c, link);
    s->nconns--;
    atomic_fetch_sub(s->cfg.conn_count, 1);
    pl_buf_dispose(&c->head);
    pl_buf_dispose(&c->pending);
    free(c);
    http_server_conn_gone(s);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    c->open_handles--;
    conn_free_if_done(c);
}

void http_conn_close(struct conn *c)
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
    if (c->req && c->req->streaming && c->req->drained) http_stream_drain_soon(c->req);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_linger_timeout(uv_timer_t *t)
{
    http_conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *sr, int status)
{
    struct conn *c = sr->data;
    free(sr);
    if (c->closing) return;
    if (status < 0 || c->read_eof) {
        http_conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_linger_timeout, LINGER_MS, 0);
}

/* Half-close after the final response so that a client still sending (say, the rest of an
 * oversized body) reads our answer instead of a reset; input is discarded until EOF. */
void http_conn_linger(struct conn *c)
{
    if (c->closing || c->lingering) return;
    c->lingering = true;
    uv_shutdown_t *sr = pl_xmalloc(sizeof *sr);
    sr->data = c;
    if (uv_shutdown(sr, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        free(sr);
        http_conn_close(c);
    }
}

/* ---- writing ---- */

struct write_req {
    uv_write_t w;
    struct conn *c;
    char *data;
};

static size_t write_queue(const struct conn *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

static void on_write(uv_write_t *w, int status)
{
    struct write_req *wr = (struct write_req *)w;
    struct conn *c = wr->c;
    free(wr->data);
    free(wr);
    if (c->closing) return;
    if (status < 0) {
        http_conn_close(c);
        return;
    }
    struct pl_http_request *req = c->req;
    if (req && req->streaming && req->drained && write_queue(c) < HTTP_STREAM_LOW_WATER) {
        void (*fn)(struct pl_http_request *, bool, void *) = req->drained;
        req->drained = NULL;
        fn(req, true, req->drained_arg);
        return;
    }
    if (write_queue(c) == 0) {
        if (c->lingering) return;
        conn_process(c); /* resume pipelined requests held back by the write queue */
    }
}

/* Tries a direct write first: most responses leave in one syscall with no request object
 * or copy. */
void http_conn_write(struct conn *c, char *data, size_t len)
{
    if (c->closing || c->lingering) {
        free(data);
        return;
    }
    size_t off = 0;
    if (write_queue(c) == 0) {
        uv_buf_t b = uv_buf_init(data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n > 0)
            off = (size_t)n;
        else if (n != UV_EAGAIN && n < 0) {
            free(data);
            http_conn_close(c);
            return;
        }
    }
    if (off == len) {
        free(data);
        return;
    }
    struct write_req *wr = pl_xmalloc(sizeof *wr);
    wr->c = c;
    wr->data = data;
    uv_buf_t b = uv_buf_init(data + off, (unsigned)(len - off));
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        free(data);
        free(wr);
        http_conn_close(c);
    }
}

/* ---- timeouts ---- */

static void on_idle_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->state == CS_IDLE && !c->req) http_conn_close(c);
}

static void on_head_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->state == CS_HANDLING || c->closing) return;
    if (c->scan.count == 0 && c->state == CS_IDLE) {
        http_conn_close(c); /* sent nothing: close silently */
        return;
    }
    http_conn_fail(c, 408, "request not received in time");
}

void http_conn_start_head_timer(struct conn *c)
{
    uv_timer_start(&c->timer, on_head_timeout, c->srv->cfg.head_timeout_ms, 0);
}

/* ---- requests, one at a time ---- */

void http_conn_request_done(struct pl_http_request *req)
{
    struct conn *c = req->conn;
    req->srv->inflight--;
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

/* With no request in flight: whether the connection ends here, or waits (idle timer). */
static bool conn_ends_between_requests(struct conn *c)
{
    /* A drained server serves what a client already sent, nothing after. After an upgrade
     * request that was not taken over, the bytes that follow are not HTTP. */
    if (c->read_eof || c->upgrade ||
        (c->srv->draining && c->pending.len == 0 && c->scan.count == 0)) {
        http_conn_close(c);
        return true;
    }
    if (c->scan.count == 0 && c->pending.len == 0)
        uv_timer_start(&c->timer, on_idle_timeout, c->srv->cfg.idle_timeout_ms, 0);
    return false;
}

/* Parses pending bytes while no request is in flight. */
static void conn_process(struct conn *c)
{
    if (c->processing) return;
    c->processing = true;
    while (!c->closing && !c->lingering && !c->req && c->pending.len > 0) {
        if (write_queue(c) > MAX_WRITE_QUEUE) break;
        size_t used = http_conn_parse(c, c->pending.data, c->pending.len);
        memmove(c->pending.data, c->pending.data + used, c->pending.len - used);
        c->pending.len -= used;
    }
    c->processing = false;
    if (c->closing || c->lingering) return;
    if (!c->req && conn_ends_between_requests(c)) return;
    /* Bound what a client can make us hold: stop reading while a request is handled and
     * enough is buffered. */
    size_t cap = c->srv->cfg.max_head_bytes + c->srv->cfg.max_body_bytes;
    if (c->pending.len > cap)
        http_conn_read_stop(c);
    else if (!c->read_eof)
        conn_read_start(c);
}

/* ---- reading ---- */

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
        if (nread < 0) http_conn_close(c);
        return;
    }
    if (nread < 0) {
        c->read_eof = true;
        http_conn_read_stop(c);
        /* With a request in flight, its answer still goes out (a half-close is legal);
         * a partial request or an idle connection just closes. */
        if (!c->req || c->state != CS_HANDLING) http_conn_close(c);
        return;
    }
    const char *data = buf->base;
    size_t len = (size_t)nread;
    if ((c->req && c->state == CS_HANDLING) || c->pending.len > 0) {
        pl_buf_append(&c->pending, data, len);
        conn_process(c);
        return;
    }
    /* Fast path: parse straight from the loop's read buffer; keep only what is left after
     * a complete request. */
    c->processing = true;
    size_t used = http_conn_parse(c, data, len);
    c->processing = false;
    if (used < len && !c->closing && !c->lingering)
        pl_buf_append(&c->pending, data + used, len - used);
    if (!c->closing) conn_process(c);
}
