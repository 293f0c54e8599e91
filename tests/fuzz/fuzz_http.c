/* libFuzzer harness for lib/http/server.c: bytes from a TCP client through the real server.
 *
 * One loop, one router and one pl_http_server (listening on 127.0.0.1, an ephemeral port)
 * live for the whole process; each input is one connection. The loop runs on this thread,
 * driven by hand: poll() on the loop's backend fd and the client socket, then
 * uv_run(UV_RUN_NOWAIT). The limits are small so they are reached: head 1024 bytes, body
 * 4096, head and idle timeouts 20 ms, at most 4 connections.
 *
 * Input: byte 0 picks the mode, bytes 1..3 the three points where the rest is cut into four
 * writes (each piece is read by the server before the next is sent), the rest is what the
 * client sends.
 *   mode % 8 == 0  hold: wait (up to 60 ms) for the server to time out or close first,
 *                  then half-close;
 *   mode % 8 == 1  reset: close with RST right after sending (answers go nowhere);
 *   otherwise      half-close at once and read until the server closes.
 *
 * Routes: GET /items/{id} (param, query, a header built from the decoded param), PUT
 * /items/{id} (JSON body via lib/json), DELETE /items/{id} (204), POST /echo (the body back),
 * GET and POST /async/{ms} (answered from a uv timer after 0..3 ms), GET /stream/{n}
 * (chunked, one part per drained callback); GET/HEAD of any other path reach the fallback.
 *
 * Checked after each input: the connection is gone (the server's count, in-flight requests
 * and our own timers and streams all back to 0, within 5 s: longer is a hang); what the
 * client received parses as a stream of HTTP/1.1 responses (unless the input holds "HEAD",
 * whose answers have no body a response parser could know of) with no 5xx status; every
 * line the server logged (access log on) is a JSON object. Leaks are ASan's to find. */
#include <errno.h>
#include <jansson.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pl/http.h"
#include "pl/json.h"
#include "pl/log.h"
#include "pl/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http: %s:%d: %s\n", __FILE__, __LINE__, #cond);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define HOLD_MS     60
#define DEADLINE_MS 5000
#define RECV_CAP    (1 << 20)

static uv_loop_t loop;
static struct pl_http_server *server;
static struct pl_router *router;
static struct pl_metrics *registry;
static struct pl_http_metrics *metrics;
static _Atomic int conn_count;
static int port;
static int pending_work; /* our timers and streams not yet finished */

/* ---- handlers ---- */

static void h_item(struct pl_http_request *req)
{
    const char *id = pl_req_param(req, "id");
    const char *vals[4];
    int n = pl_req_query_all(req, "q", vals, 4);
    if (n < 0) {
        pl_respond_problem(req, 400, "malformed query string", NULL);
        return;
    }
    /* A decoded parameter may hold CR or LF: the header must then be dropped, not sent. */
    pl_resp_header(req, "X-Item", id);
    const char *name, *value;
    size_t nh = 0;
    while (pl_req_header_at(req, nh, &name, &value))
        nh++;
    const char *host = pl_req_header(req, "host");
    char *body = pl_req_printf(req, "id=%s q=%d:%s headers=%zu host=%s", id, n,
                               n > 0 ? vals[0] : "-", nh, host ? host : "-");
    pl_respond(req, 200, "text/plain", body, strlen(body));
}

static void h_item_put(struct pl_http_request *req)
{
    size_t len;
    const char *body = pl_req_body(req, &len);
    json_t *obj;
    char detail[128];
    if (pl_json_parse_object(body, len, &obj, detail, sizeof detail) != 0) {
        pl_respond_problem(req, 400, detail, NULL);
        return;
    }
    pl_respond_json(req, 200, obj);
}

static void h_item_delete(struct pl_http_request *req)
{
    pl_respond(req, 204, NULL, NULL, 0);
}

static void h_echo(struct pl_http_request *req)
{
    size_t len;
    const char *body = pl_req_body(req, &len);
    pl_respond(req, 200, "application/octet-stream", body, len);
}

struct later {
    uv_timer_t timer;
    struct pl_http_request *req;
};

static void on_later_closed(uv_handle_t *h)
{
    free(h);
    pending_work--;
}

static void later_fire(uv_timer_t *t)
{
    struct later *l = (struct later *)t;
    size_t len;
    const char *body = pl_req_body(l->req, &len);
    pl_resp_header(l->req, "X-Alive", pl_req_alive(l->req) ? "1" : "0");
    pl_respond(l->req, 201, "application/octet-stream", body, len);
    uv_close((uv_handle_t *)t, on_later_closed);
}

/* Answers later, as a handler waiting on Postgres or Redis does. */
static void h_async(struct pl_http_request *req)
{
    const char *ms = pl_req_param(req, "ms");
    struct later *l = calloc(1, sizeof *l);
    REQUIRE(l);
    l->req = req;
    pending_work++;
    uv_timer_init(&loop, &l->timer);
    uv_timer_start(&l->timer, later_fire, (uint64_t)((unsigned char)ms[0] % 4), 0);
}

struct stream {
    int left;
};

static void stream_more(struct pl_http_request *req, bool alive, void *arg)
{
    struct stream *s = arg;
    if (!alive || s->left == 0) {
        if (alive)
            pl_respond_stream_end(req);
        else
            pl_respond_stream_abort(req);
        free(s);
        pending_work--;
        return;
    }
    char part[32];
    int n = snprintf(part, sizeof part, "part %d\n", s->left--);
    pl_respond_stream_write(req, part, (size_t)n);
    pl_respond_stream_on_drain(req, stream_more, s);
}

static void h_stream(struct pl_http_request *req)
{
    struct stream *s = calloc(1, sizeof *s);
    REQUIRE(s);
    s->left = (unsigned char)pl_req_param(req, "n")[0] % 5;
    pending_work++;
    pl_respond_stream_start(req, 200, "text/plain");
    pl_respond_stream_on_drain(req, stream_more, s);
}

static struct pl_route routes[] = {
    {.method = PL_M_GET, .pattern = "/items/{id}", .handler = h_item},
    {.method = PL_M_PUT, .pattern = "/items/{id}", .handler = h_item_put},
    {.method = PL_M_DELETE, .pattern = "/items/{id}", .handler = h_item_delete},
    {.method = PL_M_POST, .pattern = "/echo", .handler = h_echo},
    {.method = PL_M_GET, .pattern = "/async/{ms}", .handler = h_async},
    {.method = PL_M_POST, .pattern = "/async/{ms}", .handler = h_async},
    {.method = PL_M_GET, .pattern = "/stream/{n}", .handler = h_stream},
    {0},
};

static void dispatch(struct pl_http_request *req, void *ctx)
{
    (void)ctx;
    pl_req_set_log_user(req, pl_req_header(req, "x-user"));
    pl_req_route(req)->handler(req);
}

static void fallback(struct pl_http_request *req, void *ctx)
{
    (void)ctx;
    const char *path = pl_req_path(req);
    if (strncmp(path, "/static/", 8) == 0)
        pl_respond(req, 200, "text/html", "<p>static</p>", 13);
    else
        pl_respond_problem(req, 404, "no such resource", NULL);
}

/* ---- the client ---- */

static int client = -1;
static bool client_eof;
static char *recv_buf;
static size_t recv_len;
static bool recv_overflow;

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void drain_client(void)
{
    if (client < 0 || client_eof) return;
    for (;;) {
        char tmp[16384];
        ssize_t n = recv(client, tmp, sizeof tmp, MSG_DONTWAIT);
        if (n > 0) {
            if (recv_len + (size_t)n <= RECV_CAP) {
                memcpy(recv_buf + recv_len, tmp, (size_t)n);
                recv_len += (size_t)n;
            } else {
                recv_overflow = true;
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        client_eof = true; /* 0: the server closed; ECONNRESET: it closed with input unread */
        return;
    }
}

/* One turn: wait (at most timeout_ms) for the loop or the client, then run the loop once. */
static void pump(int timeout_ms)
{
    struct pollfd p[2] = {{.fd = uv_backend_fd(&loop), .events = POLLIN},
                          {.fd = client, .events = POLLIN}};
    int t = uv_backend_timeout(&loop);
    if (t < 0 || t > timeout_ms) t = timeout_ms;
    (void)poll(p, client >= 0 && !client_eof ? 2 : 1, t);
    uv_run(&loop, UV_RUN_NOWAIT);
    drain_client();
}

static void send_all(const uint8_t *p, size_t n)
{
    uint64_t give_up = now_ms() + DEADLINE_MS;
    while (n > 0 && now_ms() < give_up) {
        ssize_t w = send(client, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            pump(5); /* the server reads, we read its answers, then try again */
        } else {
            return; /* the server closed: the rest has nowhere to go */
        }
    }
}

static bool finished(void)
{
    return (client < 0 || client_eof) && atomic_load(&conn_count) == 0 &&
           pl_http_server_connections(server) == 0 && pl_http_server_inflight(server) == 0 &&
           pending_work == 0;
}

/* ---- checks ---- */

static int on_response_head(llhttp_t *p)
{
    int status = llhttp_get_status_code(p);
    if (status < 100 || status >= 500) {
        fprintf(stderr, "fuzz_http: response status %d\n", status);
        abort();
    }
    return 0;
}

static void check_responses(void)
{
    if (recv_len == 0 || recv_overflow) return;
    llhttp_settings_t settings;
    llhttp_settings_init(&settings);
    settings.on_headers_complete = on_response_head;
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &settings);
    llhttp_errno_t err = llhttp_execute(&p, recv_buf, recv_len);
    if (err != HPE_OK) {
        fprintf(stderr, "fuzz_http: the server's output is not HTTP/1.1 responses: %s (%s)\n",
                llhttp_errno_name(err), llhttp_get_error_reason(&p));
        fwrite(recv_buf, 1, recv_len < 4096 ? recv_len : 4096, stderr);
        abort();
    }
}

/* stdout is a memfd: every line logged during the input must be a JSON object. */
static void check_log(void)
{
    pl_log_flush();
    off_t len = lseek(STDOUT_FILENO, 0, SEEK_CUR);
    REQUIRE(len >= 0);
    if (len == 0) return;
    char *text = malloc((size_t)len);
    REQUIRE(text);
    REQUIRE(pread(STDOUT_FILENO, text, (size_t)len, 0) == len);
    for (char *line = text; line < text + len;) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        REQUIRE(nl);
        json_error_t jerr;
        json_t *j = json_loadb(line, (size_t)(nl - line), 0, &jerr);
        if (!j || !json_is_object(j)) {
            fprintf(stderr, "fuzz_http: log line is not a JSON object (%s): %.*s\n", jerr.text,
                    (int)(nl - line), line);
            abort();
        }
        json_decref(j);
        line = nl + 1;
    }
    free(text);
    REQUIRE(ftruncate(STDOUT_FILENO, 0) == 0);
    REQUIRE(lseek(STDOUT_FILENO, 0, SEEK_SET) == 0);
}

/* ---- set-up, once per process ---- */

static void init(void)
{
    signal(SIGPIPE, SIG_IGN);
    REQUIRE(sodium_init() >= 0);
    int logfd = memfd_create("fuzz-http-log", MFD_CLOEXEC);
    REQUIRE(logfd >= 0 && dup2(logfd, STDOUT_FILENO) == STDOUT_FILENO);
    close(logfd);
    recv_buf = malloc(RECV_CAP);
    REQUIRE(recv_buf);
    REQUIRE(uv_loop_init(&loop) == 0);
    struct pl_route *const tables[] = {routes};
    char err[128];
    REQUIRE(pl_router_create(tables, 1, &router, err, sizeof err) == 0);
    REQUIRE(pl_metrics_create("fuzz_", &registry) == 0);
    metrics = pl_http_metrics_create(registry, router);
    REQUIRE(metrics);
    int fd = pl_http_listen_socket("127.0.0.1", &port, 64);
    REQUIRE(fd >= 0);
    struct pl_http_config cfg = {
        .max_head_bytes = 1024,
        .max_body_bytes = 4096,
        .head_timeout_ms = 20,
        .idle_timeout_ms = 20,
        .max_connections = 4,
        .conn_count = &conn_count,
        .access_log = true,
        .hsts = true,
        .public_origin = "http://127.0.0.1:8080",
        .cors_origins = "http://a.test, https://b.test:8443",
        .router = router,
        .metrics = metrics,
        .dispatch = dispatch,
        .fallback = fallback,
    };
    REQUIRE(pl_http_server_create(&loop, &cfg, fd, &server) == 0);
}

static int connect_client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    REQUIRE(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server) init();
    unsigned mode = size > 0 ? data[0] : 2;
    const uint8_t *msg = size > 4 ? data + 4 : data + size;
    size_t len = size > 4 ? size - 4 : 0;
    size_t cut[5] = {0, 0, 0, 0, len};
    for (int i = 1; i <= 3; i++)
        cut[i] = (size_t)i < size ? len * data[i] / 255 : len;
    for (int i = 1; i <= 3; i++) /* sort the three cuts */
        for (int j = i + 1; j <= 3; j++)
            if (cut[j] < cut[i]) {
                size_t t = cut[i];
                cut[i] = cut[j];
                cut[j] = t;
            }

    client = connect_client();
    client_eof = false;
    recv_len = 0;
    recv_overflow = false;
    uint64_t deadline = now_ms() + DEADLINE_MS;
    while (atomic_load(&conn_count) == 0 && now_ms() < deadline)
        pump(10); /* accepted */
    REQUIRE(atomic_load(&conn_count) == 1);

    for (int i = 0; i < 4; i++) {
        if (cut[i + 1] > cut[i]) send_all(msg + cut[i], cut[i + 1] - cut[i]);
        pump(0); /* the server reads this piece on its own */
    }
    if (mode % 8 == 0) {
        uint64_t hold = now_ms() + HOLD_MS;
        while (!client_eof && now_ms() < hold)
            pump(5);
        shutdown(client, SHUT_WR);
    } else if (mode % 8 == 1) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(client, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(client);
        client = -1;
    } else {
        shutdown(client, SHUT_WR);
    }
    while (!finished() && now_ms() < deadline)
        pump(50);
    if (!finished()) {
        fprintf(stderr,
                "fuzz_http: connection not finished after %d ms: conns=%d inflight=%d "
                "pending=%d client_eof=%d\n",
                DEADLINE_MS, pl_http_server_connections(server), pl_http_server_inflight(server),
                pending_work, client_eof);
        abort();
    }
    if (client >= 0) close(client);
    client = -1;

    if (mode % 8 != 1 && !memmem(msg, len, "HEAD", 4)) check_responses();
    check_log();
    return 0;
}
