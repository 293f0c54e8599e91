/* libFuzzer harness for lib/http/router: the path of every request reaches pl_router_match.
 *
 * The input is a path (not NUL-terminated: a heap buffer of exactly its length, as the
 * server passes a length) matched with each of the 8 method bits against two routers: the
 * application's own route tables (server/routes.c) and a small table of awkward shapes
 * (root, trailing slash, empty segment, five parameters where four are kept, literal vs
 * {param} at different depths). Every answer is compared with a slow reference matcher
 * written from the contract in pl/http.h: the result code, the route, the Allow set, and
 * each parameter's name and value (pointing into the path). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "pl/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_router: %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void h(struct pl_http_request *req)
{
    (void)req;
}

static struct pl_route odd_routes[] = {
    {.method = PL_M_GET, .pattern = "/", .handler = h},
    {.method = PL_M_GET, .pattern = "/a/", .handler = h},
    {.method = PL_M_POST, .pattern = "/a//b", .handler = h},
    {.method = PL_M_GET, .pattern = "/x/{a}/{b}/{c}/{d}/{e}", .handler = h},
    {.method = PL_M_GET, .pattern = "/x/{a}/lit/{c}", .handler = h},
    {.method = PL_M_PUT, .pattern = "/x/{a}/lit/{c}", .handler = h},
    {.method = PL_M_GET, .pattern = "/x/lit/{b}/{c}", .handler = h},
    {.method = PL_M_DELETE, .pattern = "/x/lit/{b}/{c}", .handler = h},
    {.method = PL_M_PATCH, .pattern = "/x/{a}/{b}/{c}", .handler = h},
    {.method = PL_M_OPTIONS, .pattern = "/x/{a}", .handler = h},
    {.method = PL_M_OTHER, .pattern = "/x/{a}", .handler = h},
    {.method = PL_M_HEAD, .pattern = "/only-head", .handler = h},
    {.method = PL_M_GET,
     .pattern = "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/{j}/{k}/{l}/{m}/{n}/{o}/{p}",
     .handler = h},
    {0},
};

#define MAX_SEGS 16 /* the router's limit: deeper paths match nothing */

struct segs {
    int n;
    const char *text[MAX_SEGS];
    size_t len[MAX_SEGS];
};

/* "/a/b" → {"a", "b"}; "/" → {""}; -1 when not a path or deeper than MAX_SEGS. */
static int split(const char *p, size_t len, struct segs *out)
{
    if (len == 0 || p[0] != '/') return -1;
    out->n = 0;
    size_t start = 1;
    for (size_t i = 1; i <= len; i++) {
        if (i == len || p[i] == '/') {
            if (out->n == MAX_SEGS) return -1;
            out->text[out->n] = p + start;
            out->len[out->n] = i - start;
            out->n++;
            start = i + 1;
        }
    }
    return 0;
}

static int is_param(const struct segs *s, int i)
{
    return s->len[i] >= 2 && s->text[i][0] == '{' && s->text[i][s->len[i] - 1] == '}';
}

static int route_matches(const struct pl_route *r, const struct segs *path)
{
    struct segs pat;
    REQUIRE(split(r->pattern, strlen(r->pattern), &pat) == 0);
    if (pat.n != path->n) return 0;
    for (int i = 0; i < pat.n; i++) {
        if (is_param(&pat, i)) {
            if (path->len[i] == 0) return 0;
        } else if (pat.len[i] != path->len[i] || memcmp(pat.text[i], path->text[i], pat.len[i])) {
            return 0;
        }
    }
    return 1;
}

/* >0 when a is more specific than b: a literal beats a parameter at the first difference. */
static int more_specific(const struct pl_route *a, const struct pl_route *b)
{
    struct segs sa, sb;
    REQUIRE(split(a->pattern, strlen(a->pattern), &sa) == 0);
    REQUIRE(split(b->pattern, strlen(b->pattern), &sb) == 0);
    for (int i = 0; i < sa.n && i < sb.n; i++)
        if (is_param(&sa, i) != is_param(&sb, i)) return is_param(&sa, i) ? -1 : 1;
    return 0;
}

static int same_shape(const struct pl_route *a, const struct pl_route *b)
{
    struct segs sa, sb;
    REQUIRE(split(a->pattern, strlen(a->pattern), &sa) == 0);
    REQUIRE(split(b->pattern, strlen(b->pattern), &sb) == 0);
    if (sa.n != sb.n) return 0;
    for (int i = 0; i < sa.n; i++) {
        if (is_param(&sa, i) != is_param(&sb, i)) return 0;
        if (!is_param(&sa, i) &&
            (sa.len[i] != sb.len[i] || memcmp(sa.text[i], sb.text[i], sa.len[i]) != 0))
            return 0;
    }
    return 1;
}

static void check(const struct pl_router *r, unsigned method, const char *path, size_t len)
{
    struct pl_match m;
    int rc = pl_router_match(r, method, path, len, &m);

    struct segs ps;
    const struct pl_route *best = NULL;
    size_t n = pl_router_count(r);
    if (split(path, len, &ps) == 0) {
        for (size_t i = 0; i < n; i++) {
            const struct pl_route *c = pl_router_at(r, i);
            REQUIRE(c && c->index == (int)i);
            if (route_matches(c, &ps) && (!best || more_specific(c, best) > 0)) best = c;
        }
    }
    if (!best) {
        REQUIRE(rc == PL_E_NOTFOUND && m.route == NULL && m.allow == 0);
        return;
    }
    unsigned want = method == PL_M_HEAD ? PL_M_GET : method, allow = 0;
    const struct pl_route *hit = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct pl_route *c = pl_router_at(r, i);
        if (!same_shape(c, best)) continue;
        allow |= c->method | (c->method == PL_M_GET ? PL_M_HEAD : 0);
        if (c->method == want) {
            REQUIRE(!hit); /* pl_router_create refuses duplicates */
            hit = c;
        }
    }
    REQUIRE(m.allow == allow);
    if (!hit) {
        REQUIRE(rc == PL_E_CONFLICT && m.route == NULL);
        return;
    }
    REQUIRE(rc == 0 && m.route == hit);
    struct segs pat;
    REQUIRE(split(hit->pattern, strlen(hit->pattern), &pat) == 0);
    int k = 0;
    for (int i = 0; i < pat.n; i++) {
        if (!is_param(&pat, i) || k == PL_MAX_PARAMS) continue;
        REQUIRE(m.params[k].name_len == pat.len[i] - 2 &&
                memcmp(m.params[k].name, pat.text[i] + 1, pat.len[i] - 2) == 0);
        REQUIRE(m.params[k].value == ps.text[i] && m.params[k].value_len == ps.len[i]);
        REQUIRE(m.params[k].value >= path &&
                m.params[k].value + m.params[k].value_len <= path + len);
        k++;
    }
    REQUIRE(m.nparams == k);
}

static struct pl_router *app_router, *odd_router;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!app_router) {
        char err[256];
        size_t ntables;
        struct pl_route *const *tables = app_route_tables(&ntables);
        struct pl_route *const odd[] = {odd_routes};
        REQUIRE(pl_router_create(tables, ntables, &app_router, err, sizeof err) == 0);
        REQUIRE(pl_router_create(odd, 1, &odd_router, err, sizeof err) == 0);
    }
    char *path = malloc(size ? size : 1); /* exactly the path: no terminator to lean on */
    REQUIRE(path);
    memcpy(path, data, size);
    for (int i = 0; i < PL_METHOD_COUNT; i++) {
        check(app_router, 1u << i, path, size);
        check(odd_router, 1u << i, path, size);
    }
    free(path);
    return 0;
}
