/* The request: construction and ids, accessors, headers, path parameters, query strings
 * and the request arena. */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "pl/mem.h"

/* ---- construction and request ids ---- */

static _Thread_local struct {
    char prefix[17];
    uint64_t counter;
} rid;

/* "<16 random hex digits of this thread>-<counter>": unique without coordination. */
static void make_request_id(char *out, size_t cap)
{
    if (!rid.prefix[0]) {
        unsigned char r[8];
        randombytes_buf(r, sizeof r);
        sodium_bin2hex(rid.prefix, sizeof rid.prefix, r, sizeof r);
    }
    snprintf(out, cap, "%s-%llx", rid.prefix, (unsigned long long)++rid.counter);
}

static bool sane_request_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
        if (n >= 128) return false;
    }
    return n >= 1;
}

struct pl_http_request *http_request_new(struct conn *c)
{
    struct pl_http_request *req = pl_xcalloc(1, sizeof *req);
    req->conn = c;
    req->srv = c->srv;
    req->route_index = PL_ROUTE_UNMATCHED;
    req->start_ns = uv_hrtime();
    req->query = "";
    memcpy(req->peer_ip, c->peer, sizeof req->peer_ip);
    make_request_id(req->request_id, sizeof req->request_id);
    c->srv->inflight++;
    return req;
}

void http_request_adopt_id(struct pl_http_request *req)
{
    const char *id = pl_req_header(req, "x-request-id");
    if (id && sane_request_id(id)) snprintf(req->request_id, sizeof req->request_id, "%s", id);
}

/* ---- percent-decoding ---- */

int pl_http_hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long pl_http_percent_decode(const char *src, size_t len, char *dst, int plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len) return -1;
            int h = pl_http_hexval(src[i + 1]), l = pl_http_hexval(src[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = (char)(h * 16 + l);
            i += 2;
            if (c == 0) return -1;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        dst[o++] = c;
    }
    dst[o] = 0;
    return (long)o;
}

/* ---- the arena ---- */

void *pl_req_alloc(struct pl_http_request *req, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    struct arena_block *b = req->arena;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > 3072 ? size : 3072;
        b = pl_xmalloc(sizeof *b + cap);
        b->cap = cap;
        b->used = 0;
        b->next = req->arena;
        req->arena = b;
    }
    void *p = b->data + b->used;
    b->used += size;
    return p;
}

char *pl_req_strdup(struct pl_http_request *req, const char *s)
{
    size_t n = strlen(s);
    char *p = pl_req_alloc(req, n + 1);
    memcpy(p, s, n + 1);
    return p;
}

char *pl_req_printf(struct pl_http_request *req, const char *fmt, ...)
{
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    int n = vsnprintf(NULL, 0, fmt, ap);
    char *p = pl_req_alloc(req, n < 0 ? 1 : (size_t)n + 1);
    if (n < 0)
        p[0] = 0;
    else
        vsnprintf(p, (size_t)n + 1, fmt, again);
#pragma GCC diagnostic pop
    va_end(again);
    va_end(ap);
    return p;
}

void pl_req_on_cleanup(struct pl_http_request *req, void (*fn)(void *), void *arg)
{
    struct cleanup *c = pl_req_alloc(req, sizeof *c);
    c->fn = fn;
    c->arg = arg;
    c->next = req->cleanups;
    req->cleanups = c;
}

void pl_http_request_free(struct pl_http_request *req)
{
    for (struct cleanup *c = req->cleanups; c; c = c->next)
        c->fn(c->arg);
    req->cleanups = NULL;
    free(req->head);
    free(req->body.data);
    free(req->resp_headers.data);
    struct arena_block *b = req->arena;
    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(req);
}

/* ---- accessors ---- */

void *pl_req_ctx(const struct pl_http_request *req)
{
    return req->srv->cfg.ctx;
}

bool pl_req_alive(const struct pl_http_request *req)
{
    return req->conn && !req->conn->closing && !req->conn->read_eof;
}

unsigned pl_req_method(const struct pl_http_request *req)
{
    return req->method;
}
const char *pl_req_path(const struct pl_http_request *req)
{
    return req->path;
}
const char *pl_req_query(const struct pl_http_request *req)
{
    return req->query;
}
const char *pl_req_id(const struct pl_http_request *req)
{
    return req->request_id;
}
const char *pl_req_peer_ip(const struct pl_http_request *req)
{
    return req->peer_ip;
}
const struct pl_route *pl_req_route(const struct pl_http_request *req)
{
    return req->route;
}
void pl_req_set_user_data(struct pl_http_request *req, void *data)
{
    req->user_data = data;
}
void *pl_req_user_data(const struct pl_http_request *req)
{
    return req->user_data;
}

void pl_req_set_log_user(struct pl_http_request *req, const char *user_id)
{
    req->log_user = user_id ? pl_req_strdup(req, user_id) : NULL;
}

/* ---- headers, parameters, body ---- */

const char *pl_req_header(const struct pl_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0) return req->headers[i].value;
    return NULL;
}

const char *pl_req_header_list(struct pl_http_request *req, const char *name)
{
    const char *first = NULL;
    int lines = 0;
    struct pl_buf b;
    pl_buf_init(&b);
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].name, name) != 0) continue;
        if (++lines == 1) {
            first = req->headers[i].value;
            continue;
        }
        pl_buf_printf(&b, "%s, %s", lines == 2 ? first : "", req->headers[i].value);
    }
    if (lines < 2) return first;
    char *joined = pl_req_strdup(req, b.data);
    pl_buf_dispose(&b);
    return joined;
}

bool pl_req_header_at(const struct pl_http_request *req, size_t i, const char **name,
                      const char **value)
{
    if (i >= req->nheaders) return false;
    *name = req->headers[i].name;
    *value = req->headers[i].value;
    return true;
}

const char *pl_req_param(const struct pl_http_request *req, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < req->match.nparams; i++) {
        if (req->match.params[i].name_len == n && memcmp(req->match.params[i].name, name, n) == 0)
            return req->param_values[i];
    }
    return NULL;
}

const char *pl_req_body(const struct pl_http_request *req, size_t *len)
{
    if (len) *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

/* ---- query strings ---- */

/* Calls fn(value, vlen, arg) with the raw (still encoded) value of every parameter whose
 * strictly decoded name is `name`; a name that does not decode names no parameter. */
static void query_each(struct pl_http_request *req, const char *name,
                       void (*fn)(const char *v, size_t vlen, void *arg), void *arg)
{
    const char *q = req->query;
    size_t nlen = strlen(name);
    char small[64];
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t plen = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', plen);
        size_t klen = eq ? (size_t)(eq - q) : plen;
        /* Each byte of a decoded name takes 1 to 3 bytes encoded: only a name written in
         * nlen..3*nlen bytes can be `name`, and the others need no decoding. */
        if (klen >= nlen && klen <= 3 * nlen) {
            char *key = klen < sizeof small ? small : pl_req_alloc(req, klen + 1);
            long kd = pl_http_percent_decode(q, klen, key, 1);
            if (kd == (long)nlen && memcmp(key, name, nlen) == 0)
                fn(eq ? eq + 1 : q + plen, eq ? plen - klen - 1 : 0, arg);
        }
        if (!amp) break;
        q = amp + 1;
    }
}

struct query_values {
    struct pl_http_request *req;
    const char **out;
    int cap, count;
    bool malformed;
};

static void collect(const char *v, size_t vlen, void *arg)
{
    struct query_values *qv = arg;
    char *val = pl_req_alloc(qv->req, vlen + 1);
    if (pl_http_percent_decode(v, vlen, val, 1) < 0) qv->malformed = true;
    if (qv->count < qv->cap) qv->out[qv->count] = val;
    qv->count++;
}

int pl_req_query_all(struct pl_http_request *req, const char *name, const char **out, int cap)
{
    struct query_values qv = {.req = req, .out = out, .cap = out ? cap : 0};
    query_each(req, name, collect, &qv);
    return qv.malformed ? PL_E_INVALID : qv.count;
}

int pl_req_query_one(struct pl_http_request *req, const char *name, const char **out)
{
    const char *v = NULL;
    int n = pl_req_query_all(req, name, &v, 1);
    *out = n == 1 ? v : NULL;
    return n < 0 ? n : n > 1 ? PL_E_CONFLICT : 0;
}

bool pl_req_query_param(struct pl_http_request *req, const char *name, const char **out)
{
    int rc = pl_req_query_one(req, name, out);
    if (rc == 0) return true;
    pl_respond_problem(req, 400,
                       pl_req_printf(req,
                                     rc == PL_E_CONFLICT
                                         ? "%.40s may be given only once"
                                         : "%.40s is malformed: bad percent-encoding or %%00",
                                     name),
                       NULL);
    return false;
}

bool pl_req_query_int(struct pl_http_request *req, const char *name, long min, long max, long dflt,
                      long *out)
{
    const char *v;
    if (!pl_req_query_param(req, name, &v)) return false;
    *out = dflt;
    if (!v) return true;
    /* One spelling per number: ASCII digits only, no sign, space or leading zero. */
    size_t n = strlen(v);
    long x = 0;
    bool ok = n >= 1 && n <= 18 && strspn(v, "0123456789") == n && (v[0] != '0' || n == 1);
    for (size_t i = 0; ok && i < n; i++)
        x = x * 10 + (v[i] - '0');
    if (!ok || x < min || x > max) {
        pl_respond_problem(
            req, 400,
            pl_req_printf(req, "%.40s must be an integer from %ld to %ld", name, min, max), NULL);
        return false;
    }
    *out = x;
    return true;
}

bool pl_http_list_has(const char *list, const char *item, bool nocase)
{
    size_t n = strlen(item);
    if (n == 0) return false;
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == n &&
            (nocase ? strncasecmp(p, item, n) == 0 : memcmp(p, item, n) == 0))
            return true;
        p = e;
    }
    return false;
}
