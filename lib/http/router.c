/* Router: route tables compiled into segment lists, matched by a linear scan. With a few
 * dozen routes a scan over pre-split segments costs less than building a trie; specificity
 * (a literal segment beats a {param} at the first place they differ) picks the winner, and
 * every route of the winning shape contributes to Allow. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl/mem.h"
#include "pl/router.h"

#define MAX_SEGS 16

struct seg {
    const char *text; /* literal text or param name, borrowed from the pattern */
    size_t len;
    int is_param;
};

struct compiled {
    struct pl_route *route;
    int nseg;
    struct seg segs[MAX_SEGS];
};

struct pl_router {
    struct compiled *routes;
    size_t n;
};

static const char *const method_names[PL_METHOD_COUNT] = {"GET",   "HEAD",   "POST",    "PUT",
                                                          "PATCH", "DELETE", "OPTIONS", "OTHER"};

int pl_method_index(unsigned method)
{
    for (int i = 0; i < PL_METHOD_COUNT; i++)
        if (method == (1u << i)) return i;
    return PL_METHOD_COUNT - 1;
}

const char *pl_method_name(unsigned method)
{
    return method_names[pl_method_index(method)];
}

static int split(const char *path, size_t len, struct seg *segs, int *nseg)
{
    if (len == 0 || path[0] != '/') return -1;
    int n = 0;
    size_t i = 1;
    for (;;) {
        size_t s = i;
        while (i < len && path[i] != '/')
            i++;
        if (n == MAX_SEGS) return -1;
        segs[n].text = path + s;
        segs[n].len = i - s;
        segs[n].is_param = 0;
        n++;
        if (i >= len) break;
        i++; /* skip '/' */
    }
    *nseg = n;
    return 0;
}

static int compile(struct pl_route *r, struct compiled *c, char *err, size_t errlen)
{
    c->route = r;
    if (split(r->pattern, strlen(r->pattern), c->segs, &c->nseg)) goto bad;
    for (int i = 0; i < c->nseg; i++) {
        struct seg *s = &c->segs[i];
        if (s->len >= 2 && s->text[0] == '{' && s->text[s->len - 1] == '}') {
            s->is_param = 1;
            s->text++;
            s->len -= 2;
            if (s->len == 0) goto bad;
        } else if (memchr(s->text, '{', s->len) || memchr(s->text, '}', s->len)) {
            goto bad;
        }
    }
    return 0;
bad:
    snprintf(err, errlen, "bad route pattern %s", r->pattern);
    return PL_E_INVALID;
}

static int same_shape(const struct compiled *a, const struct compiled *b)
{
    if (a->nseg != b->nseg) return 0;
    for (int i = 0; i < a->nseg; i++) {
        if (a->segs[i].is_param != b->segs[i].is_param) return 0;
        if (!a->segs[i].is_param && (a->segs[i].len != b->segs[i].len ||
                                     memcmp(a->segs[i].text, b->segs[i].text, a->segs[i].len) != 0))
            return 0;
    }
    return 1;
}

int pl_router_create(struct pl_route *const *tables, size_t ntables, struct pl_router **out,
                     char *err, size_t errlen)
{
    size_t n = 0;
    if (errlen) err[0] = 0;
    for (size_t t = 0; t < ntables; t++)
        for (const struct pl_route *r = tables[t]; r->pattern; r++)
            n++;
    struct pl_router *rt = pl_xcalloc(1, sizeof *rt);
    rt->routes = pl_xcalloc(n, sizeof *rt->routes);
    for (size_t t = 0; t < ntables; t++) {
        for (struct pl_route *r = tables[t]; r->pattern; r++) {
            struct compiled *c = &rt->routes[rt->n];
            if (compile(r, c, err, errlen) || !r->handler || !r->method ||
                (r->method & (r->method - 1))) {
                if (!err[0]) snprintf(err, errlen, "bad route %s", r->pattern);
                goto fail;
            }
            for (size_t j = 0; j < rt->n; j++) {
                if (rt->routes[j].route->method == r->method && same_shape(&rt->routes[j], c)) {
                    snprintf(err, errlen, "duplicate route %s %s", pl_method_name(r->method),
                             r->pattern);
                    goto fail;
                }
            }
            r->index = (int)rt->n;
            rt->n++;
        }
    }
    *out = rt;
    return 0;
fail:
    pl_router_destroy(rt);
    return PL_E_INVALID;
}

void pl_router_destroy(struct pl_router *r)
{
    if (!r) return;
    free(r->routes);
    free(r);
}

size_t pl_router_count(const struct pl_router *r)
{
    return r->n;
}
const struct pl_route *pl_router_at(const struct pl_router *r, size_t i)
{
    return i < r->n ? r->routes[i].route : NULL;
}

/* >0 when a is more specific than b. */
static int specificity(const struct compiled *a, const struct compiled *b)
{
    for (int i = 0; i < a->nseg; i++) {
        if (a->segs[i].is_param != b->segs[i].is_param) return a->segs[i].is_param ? -1 : 1;
    }
    return 0;
}

int pl_router_match(const struct pl_router *r, unsigned method, const char *path, size_t len,
                    struct pl_match *m)
{
    struct seg segs[MAX_SEGS];
    int nseg;
    memset(m, 0, sizeof *m);
    if (split(path, len, segs, &nseg)) return PL_E_NOTFOUND;
    const struct compiled *best = NULL;
    for (size_t i = 0; i < r->n; i++) {
        const struct compiled *c = &r->routes[i];
        if (c->nseg != nseg) continue;
        int ok = 1;
        for (int k = 0; k < nseg && ok; k++) {
            if (c->segs[k].is_param)
                ok = segs[k].len > 0;
            else
                ok = c->segs[k].len == segs[k].len &&
                     memcmp(c->segs[k].text, segs[k].text, segs[k].len) == 0;
        }
        if (ok && (!best || specificity(c, best) > 0)) best = c;
    }
    if (!best) return PL_E_NOTFOUND;
    const struct compiled *hit = NULL;
    unsigned want = method == PL_M_HEAD ? PL_M_GET : method;
    for (size_t i = 0; i < r->n; i++) {
        const struct compiled *c = &r->routes[i];
        if (!same_shape(c, best)) continue;
        m->allow |= c->route->method;
        if (c->route->method == PL_M_GET) m->allow |= PL_M_HEAD;
        if (c->route->method == want) hit = c;
    }
    if (!hit) return PL_E_CONFLICT;
    m->route = hit->route;
    for (int k = 0; k < nseg; k++) {
        if (!hit->segs[k].is_param || m->nparams == PL_MAX_PARAMS) continue;
        m->params[m->nparams].name = hit->segs[k].text;
        m->params[m->nparams].name_len = hit->segs[k].len;
        m->params[m->nparams].value = segs[k].text;
        m->params[m->nparams].value_len = segs[k].len;
        m->nparams++;
    }
    return 0;
}
