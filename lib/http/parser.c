/* llhttp glue: bytes in, a request out.
 *
 * Before llhttp sees head bytes, our own scanner counts them (llhttp has no size limit) and
 * refuses bare LF line ends, obs-fold continuation lines and whitespace runs in the request
 * line, which llhttp 8.1 accepts. The callbacks copy the URL and header fields into one
 * buffer of NUL-separated strings that becomes the request's head. llhttp pauses
 * (HPE_PAUSED from on_message_complete) at every message boundary, so one request is
 * dispatched at a time and the bytes after it wait in the connection's pending buffer. A
 * callback that finds an error records a status and detail and returns HPE_USER; the
 * request is then answered with it and the connection closes after. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "pl/mem.h"

/* Chunked framing (size lines, extensions, trailers) between two pieces of body may not
 * exceed this: llhttp accepts any number of leading zeros or extensions. */
#define MAX_FRAMING_BYTES 16384

static int fail(struct conn *c, int status, const char *detail)
{
    c->error_status = status;
    c->error_detail = detail;
    return HPE_USER;
}

void http_conn_fail(struct conn *c, int status, const char *detail)
{
    if (!c->req) c->req = http_request_new(c);
    struct pl_http_request *req = c->req;
    req->close_after = true;
    c->state = CS_HANDLING;
    pl_respond_problem(req, status, detail, NULL);
}

/* ---- llhttp callbacks: the head ---- */

static int on_message_begin(llhttp_t *p)
{
    struct conn *c = p->data;
    if (!c->req) c->req = http_request_new(c);
    c->state = CS_HEAD;
    c->head.len = 0;
    c->error_status = 0;
    c->msg_wire = 0;
    c->url_len = 0;
    c->nhdr = 0;
    c->hstate = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    pl_buf_append(&c->head, at, len);
    c->url_len += len;
    return 0;
}

/* Ends the URL or a field name: one NUL-separated string of the head. */
static int end_string(llhttp_t *p)
{
    struct conn *c = p->data;
    pl_buf_append(&c->head, "", 1);
    return 0;
}

/* RFC 9110 token characters: a field name with anything else (a space before the colon,
 * which llhttp 8.1 lets through) is refused. */
static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)at[i])) return fail(c, 400, "invalid header field name");
    if (c->hstate != 1) {
        if (c->nhdr == HTTP_MAX_HEADERS) return fail(c, 431, "too many header fields");
        c->hdr_off[c->nhdr][0] = c->head.len;
        c->hstate = 1;
        c->value_started = false;
    }
    pl_buf_append(&c->head, at, len);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (!c->value_started) {
        c->hdr_off[c->nhdr][1] = c->head.len;
        c->value_started = true;
    }
    c->hstate = 2;
    pl_buf_append(&c->head, at, len);
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    if (!c->value_started) c->hdr_off[c->nhdr][1] = c->head.len;
    /* llhttp leaves trailing whitespace in values (OWS): trim it. */
    while (c->head.len > c->hdr_off[c->nhdr][1] &&
           (c->head.data[c->head.len - 1] == ' ' || c->head.data[c->head.len - 1] == '\t'))
        c->head.len--;
    pl_buf_append(&c->head, "", 1);
    c->nhdr++;
    c->hstate = 2;
    c->value_started = false;
    return 0;
}

/* ---- the complete head ---- */

/* host [":" port] of RFC 3986 reg-name or IP literal characters; empty is allowed in 1.0. */
static bool host_ok(const char *h)
{
    size_t n = strlen(h);
    if (n > 255) return false;
    return strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:[]") == n;
}

static unsigned method_bit(int m)
{
    switch (m) {
    case HTTP_GET:
        return PL_M_GET;
    case HTTP_HEAD:
        return PL_M_HEAD;
    case HTTP_POST:
        return PL_M_POST;
    case HTTP_PUT:
        return PL_M_PUT;
    case HTTP_PATCH:
        return PL_M_PATCH;
    case HTTP_DELETE:
        return PL_M_DELETE;
    case HTTP_OPTIONS:
        return PL_M_OPTIONS;
    default:
        return PL_M_OTHER;
    }
}

/* Hands the head's strings to the request: the buffer no longer grows, so pointers hold. */
static void take_head(struct conn *c, struct pl_http_request *req)
{
    size_t headlen;
    req->head = pl_buf_steal(&c->head, &headlen);
    req->headers = pl_req_alloc(req, sizeof *req->headers * (c->nhdr ? c->nhdr : 1));
    for (size_t i = 0; i < c->nhdr; i++) {
        req->headers[i].name = req->head + c->hdr_off[i][0];
        req->headers[i].value = req->head + c->hdr_off[i][1];
    }
    req->nheaders = c->nhdr;
}

/* RFC 9112 section 3.2: exactly one valid Host in HTTP/1.1, at most one in 1.0. Returns the
 * Host (NULL when absent) in *host. */
static bool host_valid(const struct pl_http_request *req, const char **host)
{
    int nhost = 0;
    *host = NULL;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].name, "host") != 0) continue;
        *host = req->headers[i].value;
        nhost++;
    }
    return !(nhost > 1 || (nhost == 0 && req->http_minor >= 1) || (*host && !host_ok(*host)));
}

/* Splits the request target into path and query (a fragment is dropped). The absolute form
 * of proxies, scheme://authority/path, is taken when the authority agrees with Host. */
static bool split_target(struct pl_http_request *req, const char *host)
{
    char *url = req->head;
    if (url[0] != '/' && url[0] != '*') {
        char *sch = strstr(url, "://");
        char *slash = sch ? strchr(sch + 3, '/') : NULL;
        size_t alen = slash ? (size_t)(slash - (sch + 3)) : 0;
        if (!slash || !host || strlen(host) != alen || strncasecmp(sch + 3, host, alen) != 0)
            return false;
        url = slash;
    }
    char *q = strchr(url, '?');
    if (q) {
        *q = 0;
        req->query = q + 1;
    }
    char *hash = strchr(q ? req->query : url, '#');
    if (hash) *hash = 0;
    req->path = url;
    return true;
}

static int on_headers_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    struct pl_http_request *req = c->req;
    if (!c->url_len) return HPE_USER;
    req->method = method_bit(llhttp_get_method(p));
    req->http_minor = llhttp_get_http_minor(p);
    if (llhttp_get_http_major(p) != 1)
        return fail(c, 400, "only HTTP/1.0 and HTTP/1.1 are spoken here");
    take_head(c, req);
    const char *host;
    if (!host_valid(req, &host)) return fail(c, 400, "one valid Host header is required");
    if (!split_target(req, host))
        return fail(c, 400, "request target must be a path (or name the Host)");
    http_request_adopt_id(req);
    c->state = CS_BODY;
    c->body_end_off = c->scan.count;
    if (p->upgrade) c->upgrade = true;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->srv->cfg.max_body_bytes)
        return fail(c, 413, "request body too large");
    const char *expect = pl_req_header(req, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && req->http_minor == 1) {
        char *cont = pl_xstrdup("HTTP/1.1 100 Continue\r\n\r\n");
        http_conn_write(c, cont, strlen(cont));
    }
    return 0;
}

/* ---- the body ---- */

static bool framing_over(const struct conn *c, uint64_t off)
{
    return off > c->body_end_off && off - c->body_end_off > MAX_FRAMING_BYTES;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    struct pl_http_request *req = c->req;
    uint64_t off = c->msg_wire + (uint64_t)(at - c->buf_base);
    if (framing_over(c, off)) return fail(c, 400, "chunk framing too long");
    c->body_end_off = off + len;
    if (req->body.len + len > c->srv->cfg.max_body_bytes)
        return fail(c, 413, "request body too large");
    pl_buf_append(&req->body, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->state = CS_HANDLING;
    return HPE_PAUSED;
}

void http_parser_settings(llhttp_settings_t *s)
{
    llhttp_settings_init(s);
    s->on_message_begin = on_message_begin;
    s->on_url = on_url;
    s->on_url_complete = end_string;
    s->on_header_field = on_header_field;
    s->on_header_field_complete = end_string;
    s->on_header_value = on_header_value;
    s->on_header_value_complete = on_header_value_complete;
    s->on_headers_complete = on_headers_complete;
    s->on_body = on_body;
    s->on_message_complete = on_message_complete;
}

/* ---- our own head scanner ---- */

/* One byte of a line: obs-fold and whitespace runs in the request line are refused. */
static bool scan_line_byte(const struct scanner *sc, char b)
{
    if (sc->line_len == 0 && sc->lines > 0 && (b == ' ' || b == '\t')) return false; /* fold */
    /* The request line is "METHOD SP target SP version": one space each, as RFC 9112 writes
     * it; whitespace runs are refused rather than guessed at. */
    return !(sc->lines == 0 && (b == '\t' || (b == ' ' && (sc->line_len == 0 || sc->prev == ' '))));
}

/* Scans head bytes for our own limits. Returns how many bytes of data belong to the head
 * (all of them when the head goes on), or sets *status on an error. */
static size_t scan_head(struct conn *c, const char *data, size_t len, int *status)
{
    struct scanner *sc = &c->scan;
    size_t max = c->srv->cfg.max_head_bytes;
    size_t i = 0;
    for (; i < len && !sc->done; i++) {
        char b = data[i];
        if (sc->count == 0) {
            if (!c->req) c->req = http_request_new(c);
            if (c->state == CS_IDLE) c->state = CS_HEAD;
        }
        if (++sc->count > max) {
            *status = 431;
            return i;
        }
        if (b == '\n') {
            if (sc->prev != '\r') {
                *status = 400;
                return i;
            }
            if (sc->line_len == 1) { /* "\r\n": an empty line */
                if (sc->lines > 0) sc->done = true;
            } else {
                sc->lines++;
            }
            sc->line_len = 0;
        } else {
            if (!scan_line_byte(sc, b)) {
                *status = 400;
                return i;
            }
            sc->line_len++;
        }
        sc->prev = b;
    }
    return i;
}

size_t http_conn_parse(struct conn *c, const char *data, size_t len)
{
    if (!c->scan.done) {
        bool fresh = c->scan.count == 0;
        int status = 0;
        scan_head(c, data, len, &status);
        if (fresh && c->scan.count > 0) http_conn_start_head_timer(c);
        if (status) {
            http_conn_fail(c, status,
                           status == 431 ? "request head too large"
                                         : "malformed request (bare LF or folded header line)");
            return len;
        }
    }
    c->buf_base = data;
    llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
    if (err == HPE_OK) {
        c->msg_wire += len;
        if (c->state == CS_BODY && framing_over(c, c->msg_wire))
            http_conn_fail(c, 400, "chunk framing too long");
        return len;
    }
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
        if (err == HPE_PAUSED) llhttp_resume(&c->parser);
        memset(&c->scan, 0, sizeof c->scan);
        http_dispatch(c);
        return used;
    }
    if (c->error_status) {
        http_conn_fail(c, c->error_status, c->error_detail);
    } else {
        http_conn_fail(c, 400, llhttp_get_error_reason(&c->parser));
    }
    return len;
}
