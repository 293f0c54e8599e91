/* router: route tables and matching, for pl/http.h's server.
 *
 * The application declares its routes as data: `const struct pl_route x_routes[]` tables of
 * method, pattern, handler and the application's own flags, each ended by a zeroed entry.
 * pl_router_create compiles them once into segment lists; pl_router_match finds the route
 * of a method and path, literal segments winning over {param} segments, and tells 404
 * (no such path) from 405 (the path exists, not the method) with the methods allowed. A
 * router is read-only once built: every worker thread shares one. HTTP methods are bits
 * (PL_M_*) so that a set of them (Allow) is one unsigned. */
#ifndef PL_ROUTER_H
#define PL_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "pl/error.h"

enum pl_method {
    PL_M_GET = 1u << 0,
    PL_M_HEAD = 1u << 1,
    PL_M_POST = 1u << 2,
    PL_M_PUT = 1u << 3,
    PL_M_PATCH = 1u << 4,
    PL_M_DELETE = 1u << 5,
    PL_M_OPTIONS = 1u << 6,
    PL_M_OTHER = 1u << 7,
};
#define PL_METHOD_COUNT 8
/* "GET", "HEAD", ... for one method bit. */
const char *pl_method_name(unsigned method);
/* Index 0..7 of a method bit (for metric arrays). */
int pl_method_index(unsigned method);

struct pl_http_request;

/* A route's handler (see pl/http.h): it answers the request, now or later. */
typedef void (*pl_handler)(struct pl_http_request *req);

/* One route. Tables are `const struct pl_route x_routes[]` ended by {0}. `flags` and
 * `data` belong to the application (guards read them); the router only matches. */
struct pl_route {
    unsigned method;     /* one PL_M_* bit; GET routes also answer HEAD */
    const char *pattern; /* "/api/v1/notes/{id}": literal segments and {name} segments */
    pl_handler handler;
    unsigned flags;
    intptr_t data;
    /* set by pl_router_create: */
    int index;
};

#define PL_MAX_PARAMS 4

struct pl_router;

/* Builds a router over the routes of all tables (each ended by a zeroed entry), in order.
 * Routes are indexed 0..n-1 (pl_route.index is written). Returns 0 or PL_E_INVALID with a
 * reason (bad pattern, duplicate). Read-only afterwards: share it between threads. */
PL_MUST_USE int pl_router_create(struct pl_route *const *tables, size_t ntables,
                                 struct pl_router **out, char *err, size_t errlen);
void pl_router_destroy(struct pl_router *r);
size_t pl_router_count(const struct pl_router *r);
const struct pl_route *pl_router_at(const struct pl_router *r, size_t i);

struct pl_match {
    const struct pl_route *route;
    int nparams;
    struct {
        const char *name; /* borrowed from the route pattern (not NUL-terminated) */
        size_t name_len;
        const char *value; /* points into the matched path (not NUL-terminated) */
        size_t value_len;
    } params[PL_MAX_PARAMS];
    unsigned allow; /* methods allowed on this path (for 405 / OPTIONS), HEAD with GET */
};
/* Matches method + path (without query). Literal segments win over {param} segments.
 * Returns 0 (m->route set), PL_E_NOTFOUND (no pattern matches the path) or PL_E_CONFLICT
 * (the path matches but not the method: m->allow lists what would). */
int pl_router_match(const struct pl_router *r, unsigned method, const char *path, size_t len,
                    struct pl_match *m);

#endif
