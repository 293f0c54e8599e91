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

/* Reports what the query and header accessors make of a request ("n" answers 400 itself). */
static void query_probe(struct pl_http_request *req)
{
    const char *one, *all[4];
    int rc_one = pl_req_query_one(req, "one", &one);
    int n_all = pl_req_query_all(req, "all", all, 4);
    long n;
    if (!pl_req_query_int(req, "n", 1, 100, 50, &n)) return;
    const char *list = pl_req_header_list(req, "x-list");
    char *body = pl_req_printf(req, "one=%d:%s all=%d:%s n=%ld list=%s|", rc_one, one ? one : "-",
                               n_all, n_all > 0 ? all[0] : "-", n, list ? list : "-");
    pl_respond(req, 200, "text/plain", body, strlen(body));
}

static void param_probe(struct pl_http_request *req)
{
    const char *p;
    if (!pl_req_query_param(req, "p", &p)) return;
    char *body = pl_req_printf(req, "p=%s|", p ? p : "-");
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

/* Holds its response twice, answers at once, and releases the holds 30 ms and 60 ms later;
 * before each release the client must not have received anything yet. */
static _Atomic int held_fd = -1;
static atomic_bool held_early; /* the response reached the client before the last release */
struct held {
    uv_timer_t t;
    struct pl_http_request *req;
    int left;
};

static void held_fire(uv_timer_t *t)
{
    struct held *h = (struct held *)t;
    struct pollfd p = {.fd = held_fd, .events = POLLIN};
    if (held_fd >= 0 && poll(&p, 1, 0) > 0) held_early = true;
    pl_req_release(h->req);
    if (--h->left == 0) uv_close((uv_handle_t *)t, on_later_closed);
}

static void held(struct pl_http_request *req)
{
    struct held *h = calloc(1, sizeof *h);
    h->req = req;
    h->left = 2;
    pl_req_hold(req);
    pl_req_hold(req);
    pl_respond(req, 200, "text/plain", "held", 4);
    uv_timer_init(&http_loop, &h->t);
    uv_timer_start(&h->t, held_fire, 30, 30);
}

static struct pl_route routes[] = {
    {.method = PL_M_GET, .pattern = "/held", .handler = held},
    {.method = PL_M_GET, .pattern = "/echo/{id}", .handler = echo},
    {.method = PL_M_POST, .pattern = "/slow", .handler = slow},
    {.method = PL_M_GET, .pattern = "/query", .handler = query_probe},
    {.method = PL_M_GET, .pattern = "/param", .handler = param_probe},
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

TEST(held_response_waits_for_the_last_release)
{
    int fd = client();
    held_fd = fd;
    const char *req = "GET /held HTTP/1.1\r\nHost: t\r\n\r\n";
    CHECK(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
    char buf[4096];
    read_responses(fd, buf, sizeof buf, 1);
    CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(buf, "\r\n\r\nheld") != NULL);
    CHECK(!held_early);
    held_fd = -1;
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

/* One request on a fresh connection; the whole response into buf. */
static void get(const char *target, const char *headers, char *buf, size_t cap)
{
    int fd = client();
    char req[2048];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", target, headers);
    (void)!write(fd, req, strlen(req));
    read_responses(fd, buf, cap, 1);
    close(fd);
}

/* Query values decode strictly: a bad escape or %00 is malformed, never "absent"; a repeated
 * single parameter is a conflict; an integer has one spelling. */
TEST(query_strict)
{
    static const struct {
        const char *query, *want; /* want: a substring of the body, or a status line */
    } cases[] = {
        {"", "one=0:- all=0:- n=50 "},
        {"one=a%20b", "one=0:a b "},
        {"one=a+b", "one=0:a b "},
        {"one=%41%62", "one=0:Ab "},
        {"one=", "one=0: "},
        {"one", "one=0: "},
        {"one=%zz", "one=-10001:- "},
        {"one=%4", "one=-10001:- "},
        {"one=%", "one=-10001:- "},
        {"one=%%%", "one=-10001:- "},
        {"one=%00", "one=-10001:- "},
        {"one=%00garbage", "one=-10001:- "},
        {"one=x%00", "one=-10001:- "},
        {"one=%g0", "one=-10001:- "},
        {"one=1&one=2", "one=-10010:- "},
        {"one=%zz&one=2", "one=-10001:- "},
        {"one=1&one=%zz", "one=-10001:- "},
        {"%6Fne=k", "one=0:k "},
        {"o%zzne=k&one=v", "one=0:v "}, /* a name that does not decode is nobody's */
        {"one%00=k&one=v", "one=0:v "}, /* "one\0" is not "one" */
        {"one%zz=k&%zz&one=v", "one=0:v "},
        {"x=%zz&one=v", "one=0:v "}, /* an unknown parameter may be anything */
        {"all=a&all=b&all=%41", "all=3:a "},
        {"all=a&all=%zz", "all=-10001:- "},
        {"all=%00&one=v", "one=0:v all=-10001:- "},
        {"n=1", "n=1 "},
        {"n=100", "n=100 "},
        {"n=42", "n=42 "},
        {"n=0", "HTTP/1.1 400 "},
        {"n=101", "HTTP/1.1 400 "},
        {"n=+5", "HTTP/1.1 400 "},
        {"n=%2B5", "HTTP/1.1 400 "},
        {"n=%205", "HTTP/1.1 400 "},
        {"n=5%20", "HTTP/1.1 400 "},
        {"n=05", "HTTP/1.1 400 "},
        {"n=5.0", "HTTP/1.1 400 "},
        {"n=1e1", "HTTP/1.1 400 "},
        {"n=0x5", "HTTP/1.1 400 "},
        {"n=-1", "HTTP/1.1 400 "},
        {"n=", "HTTP/1.1 400 "},
        {"n", "HTTP/1.1 400 "},
        {"n=5&n=5", "HTTP/1.1 400 "},
        {"n=%35", "n=5 "},
        {"n=%zz", "HTTP/1.1 400 "},
        {"n=5%00", "HTTP/1.1 400 "},
        {"n=99999999999999999999", "HTTP/1.1 400 "},
        {"n=%D9%A5", "HTTP/1.1 400 "}, /* ARABIC-INDIC DIGIT FIVE */
    };
    char target[256], buf[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(target, sizeof target, "/query?%s", cases[i].query);
        get(target, "", buf, sizeof buf);
        if (!strstr(buf, cases[i].want)) {
            fprintf(stderr, "  ?%s: want \"%s\" in\n%.600s\n", cases[i].query, cases[i].want, buf);
            CHECK(false);
        }
        if (strstr(cases[i].want, " 400 ")) {
            CHECK(strstr(buf, "application/problem+json") != NULL);
            CHECK(strstr(buf, "\"/problems/malformed\"") != NULL);
            CHECK(strstr(buf, "\"detail\":\"n ") != NULL); /* names the parameter */
        }
    }
}

TEST(query_param_answers_400)
{
    static const struct {
        const char *query, *want;
    } cases[] = {
        {"p=ok", "p=ok|"},
        {"", "p=-|"},
        {"p=%zz", "p is malformed"},
        {"p=%00", "p is malformed"},
        {"p=a&p=b", "p may be given only once"},
        {"p=a&p=%zz", "p is malformed"},
    };
    char target[256], buf[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(target, sizeof target, "/param?%s", cases[i].query);
        get(target, "", buf, sizeof buf);
        CHECK(strstr(buf, cases[i].want) != NULL);
        if (strncmp(cases[i].want, "p=", 2) != 0) {
            CHECK(strncmp(buf, "HTTP/1.1 400 ", 13) == 0);
            CHECK(strstr(buf, "\"/problems/malformed\"") != NULL);
        }
    }
}

/* A list header sent as several lines is one list (RFC 9110 5.3), in order. */
TEST(header_list_joins_lines)
{
    char buf[4096];
    get("/query", "", buf, sizeof buf);
    CHECK(strstr(buf, "list=-|") != NULL);
    get("/query", "X-List: a\r\n", buf, sizeof buf);
    CHECK(strstr(buf, "list=a|") != NULL);
    get("/query", "X-List: a, b\r\nX-Other: z\r\nx-list: c\r\nX-LIST: d\r\n", buf, sizeof buf);
    CHECK(strstr(buf, "list=a, b, c, d|") != NULL);
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
    RUN(held_response_waits_for_the_last_release);
    RUN(head_limit_and_line_ends);
    RUN(not_found_and_method);
    RUN(query_strict);
    RUN(query_param_answers_400);
    RUN(header_list_joins_lines);
    RUN(loop_closes_clean);
    pl_router_destroy(router);
    return TEST_REPORT();
}
