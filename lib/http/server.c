/* The server: the listener and accepting (one 503 over the connection cap), routing a
 * parsed request, drain and destroy, and the listening sockets.
 *
 * A connection's own life is conn.c's, parsing is parser.c's, answers are response.c's
 * (see http_internal.h). The server object goes last: it is freed once its own handles
 * and every connection are closed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_internal.h"
#include "pl/mem.h"

/* ---- routing ---- */

/* The route's path parameters, percent-decoded into the arena; false after a 404 when one
 * does not decode. */
static bool decode_params(struct pl_http_request *req)
{
    for (int i = 0; i < req->match.nparams; i++) {
        size_t n = req->match.params[i].value_len;
        char *v = pl_req_alloc(req, n + 1);
        if (pl_http_percent_decode(req->match.params[i].value, n, v, 0) < 0) {
            pl_respond_problem(req, 404, "no such resource", NULL);
            return false;
        }
        req->param_values[i] = v;
    }
    return true;
}

void http_dispatch(struct conn *c)
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
        http_respond_options(req, req->match.allow);
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
        http_respond_405(req, req->match.allow);
        return;
    }
    req->route = req->match.route;
    req->route_index = req->route->index;
    if (!decode_params(req)) return;
    if (s->cfg.dispatch)
        s->cfg.dispatch(req, s->cfg.ctx);
    else
        req->route->handler(req);
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
        uv_tcp_t *t = pl_xmalloc(sizeof *t);
        uv_tcp_init(s->loop, t);
        if (uv_accept(ls, (uv_stream_t *)t) == 0)
            refuse(s, t);
        else
            uv_close((uv_handle_t *)t, on_refused_closed);
        return;
    }
    struct conn *c = http_conn_new(s);
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
        http_conn_close(c);
        return;
    }
    http_conn_begin(c);
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
        struct conn *c = http_conn_new(s);
        if (uv_tcp_open(&c->tcp, fd) != 0) {
            close(fd);
            http_conn_close(c);
            continue;
        }
        http_conn_begin(c);
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

void http_server_conn_gone(struct pl_http_server *s)
{
    if (s->draining && s->nconns == 0 && s->drain_done) {
        void (*done)(struct pl_http_server *, void *) = s->drain_done;
        s->drain_done = NULL;
        done(s, s->drain_arg);
        return;
    }
    server_maybe_free(s);
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
    struct pl_http_server *s = pl_xcalloc(1, sizeof *s);
    s->loop = loop;
    s->cfg = *cfg;
    s->public_origin = pl_xstrdup(cfg->public_origin ? cfg->public_origin : "");
    s->cors_origins = pl_xstrdup(cfg->cors_origins ? cfg->cors_origins : "");
    http_parser_settings(&s->settings);
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
    struct conn *c;
    LIST_FOREACH(c, &s->conns, link)
        http_conn_close(c);
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
    for (struct conn *c = LIST_FIRST(&s->conns); c; c = next) {
        next = LIST_NEXT(c, link);
        /* Idle keep-alive connections go now. A connection that has not yet sent its first
         * request (just accepted), or has bytes waiting in the socket, or has a request
         * under way, is served, with Connection: close; the drain timer bounds it all. */
        if (!c->req && c->scan.count == 0 && c->pending.len == 0 && c->served > 0 &&
            !bytes_waiting(c))
            http_conn_close(c);
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
    struct conn *c;
    LIST_FOREACH(c, &s->conns, link)
        http_conn_close(c);
    s->destroying = true;
    uv_close((uv_handle_t *)&s->drain_timer, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->stream_idle, on_server_handle_closed);
}

int pl_http_server_connections(const struct pl_http_server *s)
{
    return s->nconns;
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
