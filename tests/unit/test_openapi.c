/* The embedded OpenAPI document parses, is 3.1, and documents every route the router
 * serves (path with the same {param} names, and method), and nothing the router lacks. */
#include <ctype.h>
#include <string.h>

#include "app.h"
#include "ops/ops.h"
#include "test.h"

static json_t *doc;

TEST(parses_as_openapi_31)
{
    json_error_t e;
    doc = json_loadb((const char *)pulse_openapi_json, pulse_openapi_json_len, 0, &e);
    CHECK(doc != NULL);
    if (!doc) {
        fprintf(stderr, "openapi.json: %s at line %d\n", e.text, e.line);
        return;
    }
    CHECK_STR(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    CHECK(json_is_object(json_object_get(doc, "paths")));
}

static void lower(const char *in, char *out)
{
    for (; *in; in++)
        *out++ = (char)tolower((unsigned char)*in);
    *out = 0;
}

TEST(every_route_documented)
{
    if (!doc) return;
    json_t *paths = json_object_get(doc, "paths");
    size_t n;
    struct pl_route *const *tables = app_route_tables(&n);
    int routes = 0;
    for (size_t t = 0; t < n; t++) {
        for (const struct pl_route *r = tables[t]; r->pattern; r++) {
            routes++;
            char m[16];
            lower(pl_method_name(r->method), m);
            json_t *op = json_object_get(json_object_get(paths, r->pattern), m);
            if (!op) fprintf(stderr, "undocumented: %s %s\n", m, r->pattern);
            CHECK(op != NULL);
        }
    }
    CHECK(routes > 10);
}

TEST(nothing_documented_that_is_not_routed)
{
    if (!doc) return;
    size_t n;
    struct pl_route *const *tables = app_route_tables(&n);
    const char *path;
    json_t *item;
    json_object_foreach(json_object_get(doc, "paths"), path, item)
    {
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op)
        {
            if (strcmp(method, "parameters") == 0 || strcmp(method, "summary") == 0 ||
                strcmp(method, "description") == 0 || strcmp(method, "head") == 0)
                continue;
            bool found = false;
            for (size_t t = 0; t < n && !found; t++)
                for (const struct pl_route *r = tables[t]; r->pattern && !found; r++) {
                    char m[16];
                    lower(pl_method_name(r->method), m);
                    found = strcmp(r->pattern, path) == 0 && strcmp(m, method) == 0;
                }
            if (!found) fprintf(stderr, "documented but not routed: %s %s\n", method, path);
            CHECK(found);
        }
    }
}

int main(void)
{
    RUN(parses_as_openapi_31);
    RUN(every_route_documented);
    RUN(nothing_documented_that_is_not_routed);
    json_decref(doc);
    return TEST_REPORT();
}
