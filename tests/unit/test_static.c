/* lib/http/static.c: the static UI served from memory through the real HTTP server (its
 * fallback hook), on a temporary web root with a hashed asset and its .gz, a dot file, and
 * symlinks inside and outside the root. Covers ETag/Last-Modified/MIME, 304 both ways, gzip
 * negotiation, immutable vs no-cache, the SPA fallback and its exclusions, HEAD, traversal
 * attempts, and a missing root. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl/http.h"
#include "pl/static.h"
#include "test.h"
#include "http_test.h"

static struct pl_static *_Atomic web; /* swapped by no_root while the server runs */
static char base_dir[64], root[256], outside[256];

static const char *const no_fallback[] = {"/api", "/health", NULL};

static void thing(struct pl_http_request *req)
{
    pl_respond(req, 200, "text/plain", "thing", 5);
}

static struct pl_route routes[] = {
    {.method = PL_M_GET, .pattern = "/api/v1/thing", .handler = thing},
    {0},
};

static void serve_static(struct pl_http_request *req, void *ctx)
{
    pl_static_serve(web, req);
}

/* One request on its own connection (Connection: close); returns the whole response. */
static char *request(const char *method, const char *path, const char *headers)
{
    static char buf[65536];
    buf[0] = 0;
    int fd = http_test_connect();
    if (fd < 0) return buf;
    char req[4096];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n",
                     method, path, headers ? headers : "");
    CHECK(write(fd, req, (size_t)n) == n);
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0) break;
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r <= 0) break;
        len += (size_t)r;
    }
    buf[len] = 0;
    close(fd);
    return buf;
}

static bool status_is(const char *resp, int status)
{
    char want[32];
    snprintf(want, sizeof want, "HTTP/1.1 %d ", status);
    return strncmp(resp, want, strlen(want)) == 0;
}

static const char *body_of(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    return p ? p + 4 : "";
}

/* The value of a response header (copied), or "" when absent. */
static const char *header_of(const char *resp, const char *name)
{
    static char out[1024];
    char key[128];
    snprintf(key, sizeof key, "\r\n%s: ", name);
    const char *end = strstr(resp, "\r\n\r\n");
    const char *p = strstr(resp, key);
    out[0] = 0;
    if (!p || (end && p > end)) return out;
    p += strlen(key);
    const char *e = strstr(p, "\r\n");
    snprintf(out, sizeof out, "%.*s", (int)(e - p), p);
    return out;
}

static void write_file(const char *dir, const char *name, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(content, f);
    fclose(f);
}

#define JS "console.log('the application, long enough that its gzip is smaller');\n"
#define INDEX                                                                                      \
    "<!doctype html><title>Pulse</title><script type=module src=/assets/index-AbCd_123.js></script>"
#define SECRET "TOP-SECRET-OUTSIDE-THE-ROOT"

static void make_root(void)
{
    char tmpl[] = "/tmp/pulse-static-XXXXXX";
    char *base = mkdtemp(tmpl);
    CHECK(base != NULL);
    snprintf(base_dir, sizeof base_dir, "%s", base);
    snprintf(root, sizeof root, "%s/dist", base);
    snprintf(outside, sizeof outside, "%s/outside", base);
    mkdir(root, 0755);
    mkdir(outside, 0755);
    char assets[300];
    snprintf(assets, sizeof assets, "%s/assets", root);
    mkdir(assets, 0755);
    write_file(root, "index.html", INDEX);
    write_file(assets, "index-AbCd_123.js", JS);
    write_file(assets, "index-AbCd_123.js.gz", "GZ-BYTES");
    write_file(assets, "app.css", "body{margin:0}");
    write_file(assets, "logo-x.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>");
    write_file(root, "robots.txt", "User-agent: *\n");
    write_file(root, ".env", SECRET);
    write_file(outside, "secret.txt", SECRET);
    char link[512], target[512];
    snprintf(link, sizeof link, "%s/leak.txt", root);
    snprintf(target, sizeof target, "%s/secret.txt", outside);
    CHECK(symlink(target, link) == 0);
    snprintf(link, sizeof link, "%s/leakdir", root);
    CHECK(symlink(outside, link) == 0);
    snprintf(link, sizeof link, "%s/relative-leak.txt", root);
    CHECK(symlink("../outside/secret.txt", link) == 0);
    snprintf(link, sizeof link, "%s/inside.txt", root);
    CHECK(symlink("robots.txt", link) == 0);
}

TEST(normalize)
{
    char out[64];
    struct {
        const char *in;
        const char *want; /* NULL: refused */
    } cases[] = {
        {"/", "/"},
        {"/a/b", "/a/b"},
        {"//a///b", "/a/b"},
        {"/a/./b", "/a/b"},
        {"/a/.", "/a/"},
        {"/a/b/", "/a/b/"},
        {"/%61%2Eb", "/a.b"},
        {"/a%20b", "/a b"},
        {"/...", "/..."},
        {"/..", NULL},
        {"/../etc/passwd", NULL},
        {"/a/../b", NULL},
        {"/%2e%2e/etc/passwd", NULL},
        {"/%2E%2e", NULL},
        {"/.%2e/x", NULL},
        {"/assets/..%2f..%2fetc/passwd", NULL},
        {"/a%2fb", NULL},
        {"/a%00b", NULL},
        {"/a%5c..%5cb", NULL},
        {"/a\\b", NULL},
        {"/a%", NULL},
        {"/a%4", NULL},
        {"/a%zz", NULL},
        {"/a%0a", NULL},
        {"a", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        long n = pl_static_normalize(cases[i].in, strlen(cases[i].in), out, sizeof out);
        if (cases[i].want) {
            CHECK(n >= 0);
            if (n >= 0) CHECK_STR(out, cases[i].want);
        } else {
            if (n >= 0) fprintf(stderr, "accepted %s as %s\n", cases[i].in, out);
            CHECK(n < 0);
        }
    }
    /* An embedded NUL in the raw bytes is a control byte too. */
    CHECK(pl_static_normalize("/a\0b", 4, out, sizeof out) < 0);
    /* Too small an output buffer is refused, never overrun. */
    CHECK(pl_static_normalize("/abcdef", 7, out, 4) < 0);
}

TEST(accept_encoding)
{
    static const struct {
        const char *header; /* NULL = absent */
        bool gzip;
    } cases[] = {
        {"gzip", true},
        {"gzip, deflate, br", true},
        {"br;q=1.0, GZIP;q=0.5", true},
        {"x-gzip", true},
        {"*", true},
        {"br, *;q=0.1", true},
        {NULL, false},
        {"", false},
        {"br, deflate", false},
        {"gzip;q=0", false},
        {"gzip; q=0.000", false},
        {"gzip;q=0, *", false},
        {"*;q=0", false},
        {"identity", false},
        {"gzipped", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = pl_static_accepts_gzip(cases[i].header);
        if (got != cases[i].gzip)
            fprintf(stderr, "  Accept-Encoding \"%s\": gzip %s\n",
                    cases[i].header ? cases[i].header : "(absent)", got ? "yes" : "no");
        CHECK(got == cases[i].gzip);
    }
}

TEST(ok_with_validators_and_mime)
{
    char *r = request("GET", "/assets/index-AbCd_123.js", NULL);
    CHECK(status_is(r, 200));
    CHECK_STR(header_of(r, "Content-Type"), "text/javascript; charset=utf-8");
    CHECK_STR(header_of(r, "Cache-Control"), "public, max-age=31536000, immutable");
    CHECK_STR(header_of(r, "Vary"), "Accept-Encoding");
    CHECK(strlen(header_of(r, "ETag")) == 22 && header_of(r, "ETag")[0] == '"');
    CHECK(strstr(header_of(r, "Last-Modified"), " GMT") != NULL);
    CHECK(strstr(r, "Content-Encoding") == NULL);
    CHECK(strstr(r, "Content-Security-Policy") == NULL); /* HTML only */
    CHECK_STR(body_of(r), JS);

    r = request("GET", "/assets/app.css", NULL);
    CHECK(status_is(r, 200));
    CHECK_STR(header_of(r, "Content-Type"), "text/css; charset=utf-8");
    CHECK_STR(header_of(r, "Cache-Control"), "no-cache"); /* not content-hashed */
    CHECK(strstr(r, "Vary:") == NULL);                    /* no .gz variant */
    r = request("GET", "/assets/logo-x.svg", NULL);
    CHECK_STR(header_of(r, "Content-Type"), "image/svg+xml");
    CHECK_STR(header_of(r, "Cache-Control"), "no-cache"); /* "-x" is no hash */
    r = request("GET", "/robots.txt", NULL);
    CHECK_STR(header_of(r, "Content-Type"), "text/plain; charset=utf-8");

    const char *paths[] = {"/", "/index.html", "//", "/./"};
    for (size_t i = 0; i < 4; i++) {
        r = request("GET", paths[i], NULL);
        CHECK(status_is(r, 200));
        CHECK_STR(header_of(r, "Content-Type"), "text/html; charset=utf-8");
        CHECK_STR(header_of(r, "Cache-Control"), "no-cache");
        CHECK_STR(header_of(r, "Content-Security-Policy"), PL_STATIC_DEFAULT_CSP);
        CHECK_STR(header_of(r, "X-Frame-Options"), "DENY");
        CHECK_STR(body_of(r), INDEX);
    }
}

TEST(not_modified)
{
    char *r = request("GET", "/assets/index-AbCd_123.js", NULL);
    char etag[64], lm[64], h[256];
    snprintf(etag, sizeof etag, "%s", header_of(r, "ETag"));
    snprintf(lm, sizeof lm, "%s", header_of(r, "Last-Modified"));

    snprintf(h, sizeof h, "If-None-Match: %s\r\n", etag);
    r = request("GET", "/assets/index-AbCd_123.js", h);
    CHECK(status_is(r, 304));
    CHECK_STR(header_of(r, "ETag"), etag);
    CHECK_STR(header_of(r, "Cache-Control"), "public, max-age=31536000, immutable");
    CHECK_STR(body_of(r), "");
    CHECK(strstr(r, "Content-Length") == NULL);

    snprintf(h, sizeof h, "If-None-Match: \"nope\", W/%s\r\n", etag); /* weak comparison */
    CHECK(status_is(request("GET", "/assets/index-AbCd_123.js", h), 304));
    CHECK(status_is(request("GET", "/assets/index-AbCd_123.js", "If-None-Match: *\r\n"), 304));
    CHECK(status_is(request("GET", "/assets/index-AbCd_123.js", "If-None-Match: \"x\"\r\n"), 200));

    snprintf(h, sizeof h, "If-Modified-Since: %s\r\n", lm);
    r = request("GET", "/assets/index-AbCd_123.js", h);
    CHECK(status_is(r, 304));
    CHECK(status_is(request("GET", "/", "If-Modified-Since: Sun, 06 Nov 2033 08:49:37 GMT\r\n"),
                    304));
    CHECK(status_is(request("GET", "/", "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"),
                    200));
    CHECK(status_is(request("GET", "/", "If-Modified-Since: yesterday\r\n"), 200));
    /* If-None-Match wins over If-Modified-Since. */
    snprintf(h, sizeof h, "If-None-Match: \"other\"\r\nIf-Modified-Since: %s\r\n", lm);
    CHECK(status_is(request("GET", "/assets/index-AbCd_123.js", h), 200));

    /* The gzip variant has a tag of its own, and a 304 for it says gzip's tag. */
    r = request("GET", "/assets/index-AbCd_123.js", "Accept-Encoding: gzip\r\n");
    char gz_etag[64];
    snprintf(gz_etag, sizeof gz_etag, "%s", header_of(r, "ETag"));
    CHECK(strcmp(gz_etag, etag) != 0);
    snprintf(h, sizeof h, "Accept-Encoding: gzip\r\nIf-None-Match: %s\r\n", gz_etag);
    r = request("GET", "/assets/index-AbCd_123.js", h);
    CHECK(status_is(r, 304));
    CHECK_STR(header_of(r, "Vary"), "Accept-Encoding");
    snprintf(h, sizeof h, "If-None-Match: %s\r\n", gz_etag); /* identity now: changed */
    CHECK(status_is(request("GET", "/assets/index-AbCd_123.js", h), 200));
}

TEST(gzip_negotiation)
{
    const char *yes[] = {"gzip", "gzip, deflate, br", "br;q=1, gzip;q=0.4", "*", "x-gzip"};
    const char *no[] = {"gzip;q=0", "br", "identity", "gzip;q=0, *", "*;q=0"};
    char h[128];
    for (size_t i = 0; i < 5; i++) {
        snprintf(h, sizeof h, "Accept-Encoding: %s\r\n", yes[i]);
        char *r = request("GET", "/assets/index-AbCd_123.js", h);
        CHECK(status_is(r, 200));
        CHECK_STR(header_of(r, "Content-Encoding"), "gzip");
        CHECK_STR(header_of(r, "Vary"), "Accept-Encoding");
        CHECK_STR(header_of(r, "Content-Type"), "text/javascript; charset=utf-8");
        CHECK_STR(header_of(r, "Content-Length"), "8");
        CHECK_STR(body_of(r), "GZ-BYTES");
    }
    for (size_t i = 0; i < 5; i++) {
        snprintf(h, sizeof h, "Accept-Encoding: %s\r\n", no[i]);
        char *r = request("GET", "/assets/index-AbCd_123.js", h);
        CHECK(status_is(r, 200));
        CHECK(strstr(r, "Content-Encoding") == NULL);
        CHECK_STR(header_of(r, "Vary"), "Accept-Encoding");
        CHECK_STR(body_of(r), JS);
    }
    /* The .gz sibling is a variant, not a file of its own... */
    CHECK(status_is(request("GET", "/assets/index-AbCd_123.js.gz", NULL), 404));
    /* ...and a file without one is sent as it is. */
    CHECK(strstr(request("GET", "/robots.txt", "Accept-Encoding: gzip\r\n"), "Content-Encoding") ==
          NULL);
}

TEST(head)
{
    char *r = request("HEAD", "/assets/index-AbCd_123.js", NULL);
    CHECK(status_is(r, 200));
    char len[16];
    snprintf(len, sizeof len, "%zu", strlen(JS));
    CHECK_STR(header_of(r, "Content-Length"), len);
    CHECK(strlen(header_of(r, "ETag")) == 22);
    CHECK_STR(body_of(r), "");
    r = request("HEAD", "/notes/123", NULL);
    CHECK(status_is(r, 200));
    CHECK_STR(header_of(r, "Content-Type"), "text/html; charset=utf-8");
    CHECK_STR(body_of(r), "");
}

TEST(spa_fallback)
{
    const char *spa[] = {"/login", "/feedings/today", "/notes/", "/apix", "/healthy/x", "/a/b/c/"};
    for (size_t i = 0; i < sizeof spa / sizeof *spa; i++) {
        char *r = request("GET", spa[i], NULL);
        if (!status_is(r, 200)) fprintf(stderr, "%s: %.20s\n", spa[i], r);
        CHECK(status_is(r, 200));
        CHECK_STR(header_of(r, "Cache-Control"), "no-cache");
        CHECK_STR(header_of(r, "Content-Security-Policy"), PL_STATIC_DEFAULT_CSP);
        CHECK_STR(body_of(r), INDEX);
    }
    /* With an extension: a missing file, not a page. Under /api and /health: the API's 404. */
    const char *missing[] = {"/missing.png",  "/assets/gone-12345678.js", "/api",    "/api/",
                             "/api/unknown",  "/api/v1/nothing/here",     "/health", "/health/nope",
                             "//api//unknown"};
    for (size_t i = 0; i < sizeof missing / sizeof *missing; i++) {
        char *r = request("GET", missing[i], NULL);
        if (!status_is(r, 404)) fprintf(stderr, "%s: %.20s\n", missing[i], r);
        CHECK(status_is(r, 404));
        CHECK_STR(header_of(r, "Content-Type"), "application/problem+json");
        CHECK(strstr(body_of(r), "\"type\":\"/problems/not-found\"") != NULL);
    }
    /* Routes still win, and other methods never reach the files. */
    CHECK_STR(body_of(request("GET", "/api/v1/thing", NULL)), "thing");
    CHECK(status_is(request("POST", "/index.html", "Content-Length: 0\r\n"), 404));
    CHECK(status_is(request("DELETE", "/login", NULL), 404));
    /* The query string does not matter. */
    CHECK_STR(body_of(request("GET", "/robots.txt?x=../../etc/passwd", NULL)), "User-agent: *\n");
}

TEST(traversal)
{
    const char *refused[] = {"/../etc/passwd",
                             "/..",
                             "/%2e%2e/etc/passwd",
                             "/%2E%2E/%2E%2E/etc/passwd",
                             "/assets/..%2f..%2fetc/passwd",
                             "/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                             "/assets/../../outside/secret.txt",
                             "/.%2e/outside/secret.txt",
                             "/index.html%00.png",
                             "/assets%5c..%5c..%5cetc%5cpasswd",
                             "/%ZZ"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        char *r = request("GET", refused[i], NULL);
        if (!status_is(r, 400)) fprintf(stderr, "%s: %.20s\n", refused[i], r);
        CHECK(status_is(r, 400));
        CHECK(strstr(r, "application/problem+json") != NULL);
        CHECK(strstr(r, SECRET) == NULL);
    }
    /* Symlinks leaving the root and dot files are not in the table at all. */
    const char *absent[] = {"/leak.txt", "/relative-leak.txt", "/leakdir/secret.txt", "/.env",
                            "/%2eenv"};
    for (size_t i = 0; i < sizeof absent / sizeof *absent; i++) {
        char *r = request("GET", absent[i], NULL);
        if (!status_is(r, 404)) fprintf(stderr, "%s: %.20s\n", absent[i], r);
        CHECK(status_is(r, 404));
        CHECK(strstr(r, SECRET) == NULL);
    }
    /* A symlink that stays inside the root is served. */
    CHECK_STR(body_of(request("GET", "/inside.txt", NULL)), "User-agent: *\n");
}

TEST(table)
{
    /* index.html, robots.txt, inside.txt, and three assets; the .gz counts with its file. */
    CHECK_EQ_INT(pl_static_count(web), 6);
    struct pl_static *st = NULL;
    char err[256];
    struct pl_static_config c = {.root = "/nonexistent/pulse-web"};
    CHECK_EQ_INT(pl_static_load(&c, &st, err, sizeof err), PL_E_NOTFOUND);
    CHECK(st == NULL);
    CHECK(strstr(err, "/nonexistent/pulse-web") != NULL);
    char file[300];
    snprintf(file, sizeof file, "%s/robots.txt", root);
    c.root = file; /* a file is no folder */
    CHECK_EQ_INT(pl_static_load(&c, &st, err, sizeof err), PL_E_NOTFOUND);
    c.root = root;
    c.max_total_bytes = 10;
    CHECK_EQ_INT(pl_static_load(&c, &st, err, sizeof err), PL_E_TOOBIG);
    CHECK(st == NULL);
}

/* A missing web root: the server keeps answering, every UI path is a 404. */
TEST(no_root)
{
    struct pl_static *saved = web;
    web = NULL;
    CHECK(status_is(request("GET", "/", NULL), 404));
    CHECK(status_is(request("GET", "/login", NULL), 404));
    CHECK(status_is(request("GET", "/../x", NULL), 400));
    CHECK_STR(body_of(request("GET", "/api/v1/thing", NULL)), "thing");
    web = saved;
}

/* The UI may open WebSockets to its own origin only: `connect-src 'self'` and the public
 * origin's ws:// or wss:// form, never `ws:`/`wss:` to any host. */
TEST(csp_for_origin)
{
    char csp[512];
    CHECK(pl_static_csp("https://pulse.example.com", csp, sizeof csp) > 0);
    CHECK(strstr(csp, "; connect-src 'self' wss://pulse.example.com; ") != NULL);
    CHECK(pl_static_csp("http://127.0.0.1:8080", csp, sizeof csp) > 0);
    CHECK(strstr(csp, "; connect-src 'self' ws://127.0.0.1:8080; ") != NULL);
    CHECK(strstr(csp, " ws: ") == NULL && strstr(csp, " wss:") == NULL);
    CHECK(strncmp(csp, "default-src 'self'; script-src 'self';", 38) == 0);
    CHECK(strstr(csp, "frame-ancestors 'none'") != NULL);
    CHECK(strstr(PL_STATIC_DEFAULT_CSP, "connect-src 'self';") != NULL);
    CHECK(strstr(PL_STATIC_DEFAULT_CSP, "ws:") == NULL);
    /* nothing that could add a source or end the directive, and only http(s) */
    const char *bad[] = {"ftp://x",          "http://",
                         "http://a b",       "http://a;script-src *",
                         "http://a,b",       "http://a'",
                         "http://a/path",    "https://a\"b",
                         "http://a\tb",      "http://\xc3\xa9t\xc3\xa9",
                         "pulse.example.com"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(pl_static_csp(bad[i], csp, sizeof csp) == -1);
    CHECK(pl_static_csp("https://pulse.example.com", csp, 40) == -1); /* does not fit */

    /* served on HTML as configured */
    char err[256];
    CHECK(pl_static_csp("https://pulse.example.com", csp, sizeof csp) > 0);
    struct pl_static_config sc = {.root = root, .csp = csp, .no_fallback = no_fallback};
    struct pl_static *with_csp = NULL;
    CHECK_EQ_INT(pl_static_load(&sc, &with_csp, err, sizeof err), 0);
    struct pl_static *saved = web;
    web = with_csp;
    char *r = request("GET", "/", NULL);
    CHECK(status_is(r, 200));
    CHECK_STR(header_of(r, "Content-Security-Policy"), csp);
    web = saved;
    pl_static_destroy(with_csp);
}

TEST(loop_closes_clean)
{
    http_test_stop();
}

int main(void)
{
    make_root();
    char err[256];
    struct pl_static_config sc = {.root = root, .no_fallback = no_fallback};
    struct pl_static *loaded;
    int rc = pl_static_load(&sc, &loaded, err, sizeof err);
    web = loaded;
    if (rc) {
        fprintf(stderr, "pl_static_load: %s\n", err);
        return 1;
    }
    struct pl_route *const tables[] = {routes};
    struct pl_router *router;
    if (pl_router_create(tables, 1, &router, err, sizeof err)) return 1;
    CHECK_EQ_INT(http_test_start(router, serve_static), 0);
    RUN(normalize);
    RUN(accept_encoding);
    RUN(ok_with_validators_and_mime);
    RUN(not_modified);
    RUN(gzip_negotiation);
    RUN(head);
    RUN(spa_fallback);
    RUN(traversal);
    RUN(table);
    RUN(no_root);
    RUN(csp_for_origin);
    RUN(loop_closes_clean);
    pl_router_destroy(router);
    pl_static_destroy(web);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", base_dir);
    return TEST_REPORT();
}
