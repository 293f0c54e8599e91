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

TEST(literal_route)
{
    struct pl_match m;
    CHECK_EQ_INT(match(PL_M_GET, "/health/live", &m), 0);
    CHECK(m.route == &table[7]);
    CHECK_EQ_INT(m.nparams, 0);
}

TEST(head_uses_get)
{
    struct pl_match m;
    CHECK_EQ_INT(match(PL_M_HEAD, "/health/live", &m), 0);
    CHECK(m.route == &table[7]);
}

TEST(literal_segment_beats_param)
{
    struct pl_match m;
    CHECK_EQ_INT(match(PL_M_GET, "/api/v1/feedings/today", &m), 0);
    CHECK(m.route == &table[2]);
    /* PATCH on the literal path is 405, not a PATCH of a feeding called "today" */
    CHECK_EQ_INT(match(PL_M_PATCH, "/api/v1/feedings/today", &m), PL_E_CONFLICT);
    CHECK_EQ_INT(m.allow, PL_M_GET | PL_M_HEAD);
}

TEST(params_captured)
{
    struct pl_match m;
    CHECK_EQ_INT(match(PL_M_PATCH, "/api/v1/feedings/abc-123", &m), 0);
    CHECK(m.route == &table[4]);
    CHECK_EQ_INT(m.nparams, 1);
    CHECK(m.params[0].name_len == 2 && memcmp(m.params[0].name, "id", 2) == 0);
    CHECK(m.params[0].value_len == 7 && memcmp(m.params[0].value, "abc-123", 7) == 0);
    CHECK_EQ_INT(match(PL_M_DELETE, "/api/v1/tokens/t1/x/n2", &m), 0);
    CHECK_EQ_INT(m.nparams, 2);
    CHECK(m.params[1].value_len == 2 && memcmp(m.params[1].value, "n2", 2) == 0);
}

TEST(method_not_allowed_lists_allow)
{
    struct pl_match m;
    CHECK_EQ_INT(match(PL_M_PUT, "/api/v1/feedings/1", &m), PL_E_CONFLICT);
    CHECK_EQ_INT(m.allow, PL_M_GET | PL_M_HEAD | PL_M_PATCH | PL_M_DELETE);
    CHECK_EQ_INT(match(PL_M_DELETE, "/api/v1/feedings", &m), PL_E_CONFLICT);
    CHECK_EQ_INT(m.allow, PL_M_GET | PL_M_HEAD | PL_M_POST);
}

TEST(not_found)
{
    struct pl_match m;
    CHECK_EQ_INT(match(PL_M_GET, "/api/v1/feedings/", &m), PL_E_NOTFOUND); /* empty param */
    CHECK_EQ_INT(match(PL_M_GET, "/api/v1/feeding", &m), PL_E_NOTFOUND);
    CHECK_EQ_INT(match(PL_M_GET, "/health/live/", &m), PL_E_NOTFOUND);
    CHECK_EQ_INT(match(PL_M_GET, "health/live", &m), PL_E_NOTFOUND);
    CHECK_EQ_INT(match(PL_M_GET, "", &m), PL_E_NOTFOUND);
    CHECK_EQ_INT(match(PL_M_GET, "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s", &m), PL_E_NOTFOUND);
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
    RUN(literal_route);
    RUN(head_uses_get);
    RUN(literal_segment_beats_param);
    RUN(params_captured);
    RUN(method_not_allowed_lists_allow);
    RUN(not_found);
    RUN(indexes_assigned);
    RUN(bad_tables_refused);
    RUN(method_names);
    pl_router_destroy(router);
    return TEST_REPORT();
}
