#include <stdbool.h>
#include <string.h>

#include "pl/router.h"
#include "test.h"

static void h(struct pl_http_request *req)
{
    (void)req;
}
static void h2(struct pl_http_request *req)
{
    (void)req;
}

static struct pl_route table[] = {
    {.method = PL_M_GET, .pattern = "/api/v1/feedings", .handler = h},
    {.method = PL_M_POST, .pattern = "/api/v1/feedings", .handler = h},
    {.method = PL_M_GET, .pattern = "/api/v1/feedings/today", .handler = h2},
    {.method = PL_M_GET, .pattern = "/api/v1/feedings/{id}", .handler = h},
    {.method = PL_M_PATCH, .pattern = "/api/v1/feedings/{id}", .handler = h},
    {.method = PL_M_DELETE, .pattern = "/api/v1/feedings/{id}", .handler = h},
    {.method = PL_M_DELETE, .pattern = "/api/v1/tokens/{id}/x/{name}", .handler = h},
    {.method = PL_M_GET, .pattern = "/health/live", .handler = h},
    {0},
};

static struct pl_router *router;

static int match(unsigned m, const char *path, struct pl_match *out)
{
    return pl_router_match(router, m, path, strlen(path), out);
}

/* What each method and path find: a route (its index in table), 405 with the methods
 * allowed, or 404. */
TEST(matching)
{
    enum { NONE = -1 };
    static const struct {
        unsigned method;
        const char *path;
        int rc, route;
        unsigned allow;
    } cases[] = {
        {PL_M_GET, "/health/live", 0, 7, 0},
        {PL_M_HEAD, "/health/live", 0, 7, 0}, /* HEAD uses GET */
        /* a literal segment beats a parameter; PATCH on it is 405, not a feeding "today" */
        {PL_M_GET, "/api/v1/feedings/today", 0, 2, 0},
        {PL_M_PATCH, "/api/v1/feedings/today", PL_E_CONFLICT, NONE, PL_M_GET | PL_M_HEAD},
        {PL_M_GET, "/api/v1/feedings/abc", 0, 3, 0},
        {PL_M_PATCH, "/api/v1/feedings/abc-123", 0, 4, 0},
        {PL_M_DELETE, "/api/v1/feedings/abc", 0, 5, 0},
        {PL_M_DELETE, "/api/v1/tokens/t1/x/n2", 0, 6, 0},
        {PL_M_POST, "/api/v1/feedings", 0, 1, 0},
        /* 405 lists every method of the path */
        {PL_M_PUT, "/api/v1/feedings/1", PL_E_CONFLICT, NONE,
         PL_M_GET | PL_M_HEAD | PL_M_PATCH | PL_M_DELETE},
        {PL_M_DELETE, "/api/v1/feedings", PL_E_CONFLICT, NONE, PL_M_GET | PL_M_HEAD | PL_M_POST},
        {PL_M_POST, "/health/live", PL_E_CONFLICT, NONE, PL_M_GET | PL_M_HEAD},
        /* 404 */
        {PL_M_GET, "/api/v1/feedings/", PL_E_NOTFOUND, NONE, 0}, /* empty parameter */
        {PL_M_GET, "/api/v1/feeding", PL_E_NOTFOUND, NONE, 0},
        {PL_M_GET, "/health/live/", PL_E_NOTFOUND, NONE, 0},
        {PL_M_GET, "health/live", PL_E_NOTFOUND, NONE, 0},
        {PL_M_GET, "", PL_E_NOTFOUND, NONE, 0},
        {PL_M_GET, "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s", PL_E_NOTFOUND, NONE, 0},
        {PL_M_GET, "/api/v1/tokens/t1/x", PL_E_NOTFOUND, NONE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pl_match m;
        memset(&m, 0, sizeof m);
        int rc = match(cases[i].method, cases[i].path, &m);
        bool ok = rc == cases[i].rc;
        if (ok && rc == 0) ok = m.route == &table[cases[i].route];
        if (ok && rc == PL_E_CONFLICT) ok = m.allow == cases[i].allow;
        if (!ok)
            fprintf(stderr, "  %s %s: rc %d, route %td, allow %#x\n",
                    pl_method_name(cases[i].method), cases[i].path, rc,
                    m.route ? m.route - table : -1, rc == PL_E_CONFLICT ? m.allow : 0);
        CHECK(ok);
    }
}

TEST(params_captured)
{
    struct pl_match m;
    CHECK_EQ_INT(match(PL_M_GET, "/health/live", &m), 0);
    CHECK_EQ_INT(m.nparams, 0);
    CHECK_EQ_INT(match(PL_M_PATCH, "/api/v1/feedings/abc-123", &m), 0);
    CHECK(m.route == &table[4]);
    CHECK_EQ_INT(m.nparams, 1);
    CHECK(m.params[0].name_len == 2 && memcmp(m.params[0].name, "id", 2) == 0);
    CHECK(m.params[0].value_len == 7 && memcmp(m.params[0].value, "abc-123", 7) == 0);
    CHECK_EQ_INT(match(PL_M_DELETE, "/api/v1/tokens/t1/x/n2", &m), 0);
    CHECK_EQ_INT(m.nparams, 2);
    CHECK(m.params[1].value_len == 2 && memcmp(m.params[1].value, "n2", 2) == 0);
}

TEST(indexes_assigned)
{
    CHECK_EQ_INT(pl_router_count(router), 8);
    for (int i = 0; i < 8; i++)
        CHECK_EQ_INT(table[i].index, i);
    CHECK(pl_router_at(router, 3) == &table[3]);
    CHECK(pl_router_at(router, 8) == NULL);
}

TEST(bad_tables_refused)
{
    struct pl_route dup[] = {
        {.method = PL_M_GET, .pattern = "/a/{x}", .handler = h},
        {.method = PL_M_GET, .pattern = "/a/{y}", .handler = h},
        {0},
    };
    struct pl_route bad[] = {{.method = PL_M_GET, .pattern = "/a/{x", .handler = h}, {0}};
    struct pl_route two[] = {{.method = PL_M_GET | PL_M_POST, .pattern = "/a", .handler = h}, {0}};
    struct pl_route *const t1[] = {dup}, *const t2[] = {bad}, *const t3[] = {two};
    struct pl_router *r = NULL;
    char err[128];
    CHECK_EQ_INT(pl_router_create(t1, 1, &r, err, sizeof err), PL_E_INVALID);
    CHECK(strstr(err, "duplicate") != NULL);
    CHECK_EQ_INT(pl_router_create(t2, 1, &r, err, sizeof err), PL_E_INVALID);
    CHECK_EQ_INT(pl_router_create(t3, 1, &r, err, sizeof err), PL_E_INVALID);
}

TEST(method_names)
{
    CHECK_STR(pl_method_name(PL_M_PATCH), "PATCH");
    CHECK_EQ_INT(pl_method_index(PL_M_OPTIONS), 6);
}

int main(void)
{
    struct pl_route *const tables[] = {table};
    char err[128];
    if (pl_router_create(tables, 1, &router, err, sizeof err)) {
        fprintf(stderr, "router: %s\n", err);
        return 1;
    }
    RUN(matching);
    RUN(params_captured);
    RUN(indexes_assigned);
    RUN(bad_tables_refused);
    RUN(method_names);
    pl_router_destroy(router);
    return TEST_REPORT();
}
