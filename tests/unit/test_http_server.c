/* The HTTP server on its own loop (in a thread), driven by blocking client sockets:
 * byte-split input, pipelining with handlers that answer later, query and parameter
 * decoding, limits, and a loop that closes clean (no leaked handle). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pl/http.h"
#include "test.h"
#include "http_test.h"

static void echo(struct pl_http_request *req)
{
    const char *vals[4];
    int n = pl_req_query_all(req, "q", vals, 4);
    char *body = pl_req_printf(req, "id=%s q=%d:%s,%s", pl_req_param(req, "id"), n,
                               n > 0 ? vals[0] : "-", n > 1 ? vals[1] : "-");
    pl_respond(req, 200, "text/plain", body, strlen(body));
}

struct later {
    uv_timer_t t;
    struct pl_http_request *req;
};

static void on_later_closed(uv_handle_t *h)
{
    free(h);
}

static void later_fire(uv_timer_t *t)
{
    struct later *l = (struct later *)t;
    size_t len;
    const char *body = pl_req_body(l->req, &len);
    pl_respond(l->req, 201, "text/plain", body, len);
    uv_close((uv_handle_t *)t, on_later_closed);
}

/* Answers after a delay that shrinks with each request, so later requests would finish
 * first if the server did not keep them in order. */
static int slow_calls;
static void slow(struct pl_http_request *req)
{
    struct later *l = calloc(1, sizeof *l);
    l->req = req;
    uv_timer_init(&http_loop, &l->t);
    int delay = 60 - 20 * (slow_calls++ % 3);
    uv_timer_start(&l->t, later_fire, (uint64_t)delay, 0);
}

static struct pl_route routes[] = {
    {.method = PL_M_GET, .pattern = "/echo/{id}", .handler = echo},
    {.method = PL_M_POST, .pattern = "/slow", .handler = slow},
    {0},
};

static int client(void)
{
    return http_test_connect();
}

/* Reads until `want` responses ("HTTP/1.1 " count) fully arrived, EOF, or 5 s. */
static size_t read_responses(int fd, char *buf, size_t cap, int want)
{
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0) break;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = 0;
        int seen = 0;
        const char *last = NULL;
        for (const char *s = buf; (s = strstr(s, "HTTP/1.1 ")); s++) {
            seen++;
            last = s;
        }
        if (seen >= want && last) {
            const char *end = strstr(last, "\r\n\r\n");
            const char *cl = strstr(last, "Content-Length: ");
            if (end && cl && (size_t)(buf + len - (end + 4)) >= (size_t)atoi(cl + 16)) break;
        }
    }
    buf[len] = 0;
    return len;
}

TEST(byte_by_byte)
{
    int fd = client();
    const char *req = "GET /echo/a%20b?q=1&q=x+y HTTP/1.1\r\nHost: t\r\n\r\n";
    for (size_t i = 0; req[i]; i++)
        CHECK(write(fd, req + i, 1) == 1);
    char buf[4096];
    read_responses(fd, buf, sizeof buf, 1);
    CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(buf, "id=a b q=2:1,x y") != NULL);
    CHECK(strstr(buf, "X-Request-Id: ") != NULL);
    close(fd);
}

TEST(pipelined_async_in_order)
{
    int fd = client();
    const char *reqs = "POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nfirst"
                       "POST /slow HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nsec\r\n3\r\nond\r\n0\r\n\r\n"
                       "POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nthird";
    CHECK(write(fd, reqs, strlen(reqs)) == (ssize_t)strlen(reqs));
    char buf[8192];
    read_responses(fd, buf, sizeof buf, 3);
    const char *a = strstr(buf, "first"), *b = strstr(buf, "second"), *c = strstr(buf, "third");
    CHECK(a && b && c && a < b && b < c);
    close(fd);
}

TEST(head_limit_and_line_ends)
{
    char big[20000];
    int n = snprintf(big, sizeof big, "GET /echo/1 HTTP/1.1\r\nX-Big: ");
    memset(big + n, 'a', 17000);
    strcpy(big + n + 17000, "\r\n\r\n");
    int fd = client();
    (void)!write(fd, big, strlen(big));
    char buf[4096];
    read_responses(fd, buf, sizeof buf, 1);
    CHECK(strncmp(buf, "HTTP/1.1 431 ", 13) == 0);
    CHECK(strstr(buf, "application/problem+json") != NULL);
    close(fd);

    const char *bad[] = {"GET /echo/1 HTTP/1.1\nHost: t\r\n\r\n",
                         "GET /echo/1 HTTP/1.1\r\nX-A: 1\r\n  folded\r\n\r\n",
                         "GET /echo/1 HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
                         "GET /echo/1 HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: "
                         "chunked\r\n\r\n0\r\n\r\n",
                         "GARBAGE\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fd = client();
        (void)!write(fd, bad[i], strlen(bad[i]));
        read_responses(fd, buf, sizeof buf, 1);
        if (strncmp(buf, "HTTP/1.1 400 ", 13) != 0) fprintf(stderr, "case %zu: %.40s\n", i, buf);
        CHECK(strncmp(buf, "HTTP/1.1 400 ", 13) == 0);
        close(fd);
    }
}

TEST(not_found_and_method)
{
    int fd = client();
    const char *r =
        "GET /nope HTTP/1.1\r\nHost: t\r\n\r\nDELETE /echo/1 HTTP/1.1\r\nHost: t\r\n\r\n";
    (void)!write(fd, r, strlen(r));
    char buf[8192];
    read_responses(fd, buf, sizeof buf, 2);
    CHECK(strstr(buf, "HTTP/1.1 404 ") != NULL);
    CHECK(strstr(buf, "\"type\":\"/problems/not-found\"") != NULL);
    CHECK(strstr(buf, "HTTP/1.1 405 ") != NULL);
    CHECK(strstr(buf, "Allow: GET, HEAD\r\n") != NULL);
    close(fd);
}

TEST(list_has)
{
    CHECK(pl_http_list_has("keep-alive, Upgrade", "upgrade", true));
    CHECK(!pl_http_list_has("keep-alive, Upgrade", "upgrade", false));
    CHECK(pl_http_list_has(" \tWebSocket\t ", "websocket", true));
    CHECK(pl_http_list_has("https://a.example,https://b.example", "https://b.example", false));
    CHECK(!pl_http_list_has("https://a.example", "https://a.example.evil", false));
    CHECK(!pl_http_list_has("https://a.example.evil", "https://a.example", false));
    CHECK(!pl_http_list_has("", "x", false));
    CHECK(!pl_http_list_has(NULL, "x", false));
    CHECK(!pl_http_list_has("a,,b", "", false));
}

TEST(loop_closes_clean)
{
    http_test_stop();
}

int main(void)
{
    struct pl_route *const tables[] = {routes};
    struct pl_router *router;
    char err[128];
    if (pl_router_create(tables, 1, &router, err, sizeof err)) return 1;
    CHECK_EQ_INT(http_test_start(router, NULL), 0);
    RUN(list_has);
    RUN(byte_by_byte);
    RUN(pipelined_async_in_order);
    RUN(head_limit_and_line_ends);
    RUN(not_found_and_method);
    RUN(loop_closes_clean);
    pl_router_destroy(router);
    return TEST_REPORT();
}
