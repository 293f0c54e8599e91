/* The application's route tables (server/routes.c) as the guards read them: every route
 * that takes a JSON body carries the rules its body is checked against (pl_route.data), and
 * only such routes do. */
#include <stdio.h>

#include "app.h"
#include "guards.h"
#include "test.h"

TEST(json_routes_have_body_rules)
{
    size_t ntables;
    struct pl_route *const *tables = app_route_tables(&ntables);
    int json_routes = 0;
    for (size_t t = 0; t < ntables; t++) {
        for (const struct pl_route *r = tables[t]; r->pattern; r++) {
            const struct body_rules *rules = (const struct body_rules *)r->data;
            bool json = (r->flags & ROUTE_JSON) != 0;
            if (json != (rules != NULL) || (rules && !rules->schema))
                fprintf(stderr, "  %s: ROUTE_JSON %d, rules %p\n", r->pattern, json,
                        (const void *)rules);
            CHECK(json == (rules != NULL));
            CHECK(!rules || rules->schema);
            json_routes += json;
        }
    }
    CHECK(json_routes >= 10);
}

TEST(idempotency_key_form)
{
    char long_key[300];
    memset(long_key, 'k', sizeof long_key);
    long_key[255] = 0;
    CHECK(idempotency_key_ok(long_key));
    long_key[255] = 'k';
    long_key[256] = 0;
    CHECK(!idempotency_key_ok(long_key));
    CHECK(idempotency_key_ok("a"));
    CHECK(idempotency_key_ok("k' OR 1=1; --"));
    CHECK(idempotency_key_ok(" "));
    CHECK(!idempotency_key_ok(""));
    CHECK(!idempotency_key_ok("tab\there"));
    CHECK(!idempotency_key_ok("del\x7f"));
    CHECK(!idempotency_key_ok("caf\xc3\xa9"));
}

int main(void)
{
    RUN(json_routes_have_body_rules);
    RUN(idempotency_key_form);
    return TEST_REPORT();
}
