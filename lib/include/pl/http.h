/* http: an HTTP/1.1 server for one libuv loop (uv_tcp + llhttp): the server, the request
 * and the response. Routes and their matching are pl/router.h's.
 *
 * Each worker thread runs one pl_http_server on its own loop, accepting on its own
 * SO_REUSEPORT socket of a shared port. A connection parses one request at a time: the
 * parser pauses at each message boundary, the request is dispatched, and parsing of
 * pipelined bytes resumes once its response is queued, so responses leave in order without
 * a reorder queue. Limits are ours, since llhttp has none: the head is counted byte by byte
 * (431), bare LF line ends and obs-fold lines are refused (400), bodies are capped (413 as
 * soon as Content-Length says so), a slow head or body gets 408, an idle keep-alive
 * connection is closed after idle_timeout_ms.
 *
 * Every response gets X-Request-Id, X-Response-Time, Date, the security headers and, for an
 * allowed Origin, the CORS headers. HEAD is answered by the GET route without a body.
 *
 * Lifetime: a request is created when its head is complete and freed after its response is
 * queued. A handler may answer at once or later (from a callback) with one of the
 * pl_respond* calls, exactly once. If the client goes away first the request stays valid
 * until answered; the answer is then discarded. Call everything from the loop's thread. */
#ifndef PL_HTTP_H
#define PL_HTTP_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pl/error.h"
#include "pl/router.h"

struct pl_http_request;
struct pl_http_server;

/* Per-route request metrics, shared by all workers. */
struct pl_http_metrics;

struct pl_http_config {
    size_t max_head_bytes;    /* 16384 */
    size_t max_body_bytes;    /* 1048576 */
    uint64_t head_timeout_ms; /* 10000 */
    uint64_t idle_timeout_ms; /* 60000 */
    int max_connections;      /* per process, counted in *conn_count */
    _Atomic int *conn_count;  /* shared by all workers of the process */
    bool access_log;
    bool hsts;
    const char *public_origin; /* "http://127.0.0.1:8080" */
    const char *cors_origins;  /* comma-separated extra origins, may be "" */
    const struct pl_router *router;
    struct pl_http_metrics *metrics; /* may be NULL */
    /* Called for each routed request (route found, method allowed). The application runs
     * its guards and then m->route->handler. Must answer the request eventually. */
    void (*dispatch)(struct pl_http_request *req, void *ctx);
    /* Called for a path no route matches (GET/HEAD only); may be NULL (404). Used for the
     * static UI. */
    void (*fallback)(struct pl_http_request *req, void *ctx);
    void *ctx;
};

/* Creates a server on `loop` that accepts on `fd` (a bound, listening socket the caller
 * made, e.g. with pl_http_listen_socket). The config is copied; the router and metrics are
 * borrowed for the server's life. */
PL_MUST_USE int pl_http_server_create(uv_loop_t *loop, const struct pl_http_config *cfg, int fd,
                                      struct pl_http_server **out);
/* From now on every response carries Connection: close (shutdown has begun, the listener
 * still accepts). */
void pl_http_server_close_responses(struct pl_http_server *s);
/* Stops accepting (closes the listener). Idempotent. */
void pl_http_server_stop_accepting(struct pl_http_server *s);
/* Starts draining: idle connections are closed now, responses carry Connection: close and
 * each connection closes after its in-flight request; after drain_ms the rest are closed.
 * `done` fires once every connection is closed. */
void pl_http_server_drain(struct pl_http_server *s, uint64_t drain_ms,
                          void (*done)(struct pl_http_server *s, void *arg), void *arg);
/* Closes everything; frees once the handles are closed. */
void pl_http_server_destroy(struct pl_http_server *s);
int pl_http_server_connections(const struct pl_http_server *s);
int pl_http_server_inflight(const struct pl_http_server *s);

/* Creates a TCP socket with SO_REUSEADDR and SO_REUSEPORT, bound to host:port and
 * listening. `*port` 0 picks a free port and receives the chosen one. Returns the fd or a
 * negative code. */
int pl_http_listen_socket(const char *host, int *port, int backlog);
/* Parses "host:port" ("127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0"). Returns 0 or
 * PL_E_INVALID. */
int pl_http_parse_listen(const char *s, char *host, size_t hostcap, int *port);

/* ---- the request ---- */

unsigned pl_req_method(const struct pl_http_request *req);
const char *pl_req_path(const struct pl_http_request *req);  /* raw path, NUL-terminated */
const char *pl_req_query(const struct pl_http_request *req); /* raw query without '?', or "" */
const char *pl_req_id(const struct pl_http_request *req);
const char *pl_req_peer_ip(const struct pl_http_request *req); /* socket peer, text */
const struct pl_route *pl_req_route(const struct pl_http_request *req);
/* Header value (case-insensitive name), NULL when absent. With repeated headers, the first:
 * for a list header whose every line counts (X-Forwarded-For), use pl_req_header_list. */
const char *pl_req_header(const struct pl_http_request *req, const char *name);
/* Every line of a list header, in order, joined with ", " (RFC 9110 5.3: the same field
 * value as one line); NULL when absent. Arena string (or the header itself when there is
 * one line). */
const char *pl_req_header_list(struct pl_http_request *req, const char *name);
/* Iterates headers: returns false at the end. */
bool pl_req_header_at(const struct pl_http_request *req, size_t i, const char **name,
                      const char **value);
/* Path parameter by name, NUL-terminated and percent-decoded, or NULL. */
const char *pl_req_param(const struct pl_http_request *req, const char *name);
/* Body (may be empty, never NULL) and its length. */
const char *pl_req_body(const struct pl_http_request *req, size_t *len);
/* Query parameters. A value is percent-decoded strictly ('+' is a space): a '%' without two
 * hex digits after it, or an encoded NUL (%00), makes it malformed. A name is decoded the
 * same way before it is compared; a name that does not decode is nobody's parameter (it is
 * ignored, like any unknown parameter). There is deliberately no accessor that answers
 * "absent" for a malformed or repeated parameter: handlers use pl_req_query_param and
 * pl_req_query_int, which answer the 400 themselves.
 *
 * Every value of `name`, in order: returns how many there are, filling up to `cap` of them
 * into out (arena strings; out may be NULL), or PL_E_INVALID when any of them is malformed. */
PL_MUST_USE int pl_req_query_all(struct pl_http_request *req, const char *name, const char **out,
                                 int cap);
/* A parameter that may be given once: 0 with *out = its value, or NULL when absent;
 * PL_E_INVALID when it is malformed, PL_E_CONFLICT when it is given more than once (*out is
 * then NULL). */
PL_MUST_USE int pl_req_query_one(struct pl_http_request *req, const char *name, const char **out);
/* pl_req_query_one for a handler: true with *out = the value or NULL when absent; false
 * after answering 400 (/problems/malformed, naming the parameter) when it is malformed or
 * repeated. */
PL_MUST_USE bool pl_req_query_param(struct pl_http_request *req, const char *name,
                                    const char **out);
/* An integer parameter given at most once, in its one decimal spelling (ASCII digits, no
 * sign, space, leading zero, fraction or exponent), within min..max (min >= 0): true with
 * *out = the value, or `dflt` when absent; false after answering 400 ("<name> must be an
 * integer from <min> to <max>"). */
PL_MUST_USE bool pl_req_query_int(struct pl_http_request *req, const char *name, long min, long max,
                                  long dflt, long *out);
/* The `ctx` of the server's config (the worker that owns the request). */
void *pl_req_ctx(const struct pl_http_request *req);
/* true while the client is still connected. */
bool pl_req_alive(const struct pl_http_request *req);

/* Request-scoped memory, freed with the request. Never fails (aborts on OOM). */
void *pl_req_alloc(struct pl_http_request *req, size_t size);
char *pl_req_strdup(struct pl_http_request *req, const char *s);
char *pl_req_printf(struct pl_http_request *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Runs fn(arg) when the request is freed (e.g. json_decref). */
void pl_req_on_cleanup(struct pl_http_request *req, void (*fn)(void *), void *arg);

/* Application slot: guards store the authenticated principal here. */
void pl_req_set_user_data(struct pl_http_request *req, void *data);
void *pl_req_user_data(const struct pl_http_request *req);
/* Extra label for the access log line ("user_id"), copied; may be NULL. */
void pl_req_set_log_user(struct pl_http_request *req, const char *user_id);

/* ---- the response ---- */

/* Adds a response header (both copied). Content-Length, Date, Connection and the standard
 * headers are added by the server. */
void pl_resp_header(struct pl_http_request *req, const char *name, const char *value);
/* Answers with status and body (copied); content_type may be NULL when len is 0. */
void pl_respond(struct pl_http_request *req, int status, const char *content_type, const void *body,
                size_t len);
/* Holds the request's response back until a matching pl_req_release(): a pl_respond()
 * meanwhile is kept (copied) and sent at the last release. For work that must be done
 * before the client hears the answer (the change's events queued ahead of its next request)
 * but need not delay building it. Holds nest. */
void pl_req_hold(struct pl_http_request *req);
void pl_req_release(struct pl_http_request *req);
/* Answers with a JSON body (serialised compactly); takes the reference to `json`. */
void pl_respond_json(struct pl_http_request *req, int status, json_t *json);
/* Answers with application/problem+json: type from the status ("/problems/not-found"),
 * title from the status, `detail` (may be NULL), request_id, and `errors` (taken; may be
 * NULL) for validation failures. */
void pl_respond_problem(struct pl_http_request *req, int status, const char *detail,
                        json_t *errors);
/* Streaming: a chunked response of unknown length, for large documents. Start sends the
 * head (with the headers added so far); each write sends one chunk (copied); end sends the
 * last chunk and finishes the request. Writes after the client went away are dropped. For
 * HEAD only the head is sent. Produce the next part when pl_respond_stream_ready() says the
 * connection's send queue is short, or from the `drained` callback, which fires once when it
 * becomes short (or at once, with alive=false, if the client is gone). */
void pl_respond_stream_start(struct pl_http_request *req, int status, const char *content_type);
void pl_respond_stream_write(struct pl_http_request *req, const void *data, size_t len);
bool pl_respond_stream_ready(const struct pl_http_request *req);
void pl_respond_stream_on_drain(struct pl_http_request *req,
                                void (*drained)(struct pl_http_request *req, bool alive, void *arg),
                                void *arg);
void pl_respond_stream_end(struct pl_http_request *req);
/* Ends a stream that failed half-way: the connection is closed without the last chunk, so
 * the client sees an incomplete response rather than a truncated document that parses. */
void pl_respond_stream_abort(struct pl_http_request *req);

/* Takes the connection of `req` away from the server for a protocol upgrade (WebSocket):
 * the request is finished with `status` (counted and logged; nothing is written), the
 * connection leaves the server without a FIN, and *fd receives a duplicate of its socket
 * (close-on-exec, the caller's to close). Bytes the client sent after the head are appended
 * to `extra`. Returns 0; PL_E_UNAVAILABLE when the client is gone; PL_E_BUSY when output is
 * still queued (the request is then not answered). */
struct pl_buf;
PL_MUST_USE int pl_http_takeover(struct pl_http_request *req, int status, int *fd,
                                 struct pl_buf *extra);

/* Whether a comma-separated list (an HTTP list header such as "keep-alive, Upgrade", or a
 * setting such as PULSE_CORS_ORIGINS) has `item` as one of its elements, spaces and tabs
 * around elements ignored; `nocase` compares case-insensitively (tokens), otherwise
 * exactly (origins). An empty item never matches. */
bool pl_http_list_has(const char *list, const char *item, bool nocase);

/* The problem slug of a status ("not-found"). */
const char *pl_http_problem_slug(int status);
const char *pl_http_status_text(int status);

/* ---- metrics ---- */

/* Adds the request metrics of the router's routes (+ "unmatched" and "static") to the
 * registry: `http_requests_total{route,method,status}` (counter) and
 * `http_request_duration_seconds{route}` (histogram, 0.0005 .. 2.5 s), after its prefix.
 * Returns NULL when the registry has them already. The registry and router are borrowed and
 * must outlive the result; pl_http_metrics_destroy frees only the handle. */
struct pl_metrics;
struct pl_http_metrics *pl_http_metrics_create(struct pl_metrics *reg,
                                               const struct pl_router *router);
void pl_http_metrics_destroy(struct pl_http_metrics *m);
/* Requests and latency of a recent window, for live metrics and the scaling advisor:
 * snapshot counts every request so far; the caller diffs two snapshots. */
struct pl_http_snapshot {
    uint64_t requests;
    uint64_t errors;      /* 5xx */
    uint64_t duration_ns; /* summed over the requests */
    uint64_t buckets[64]; /* log2 buckets of microseconds */
};
void pl_http_metrics_snapshot(const struct pl_http_metrics *m, struct pl_http_snapshot *out);
/* Quantile (0..1) in milliseconds of the requests between two snapshots. */
double pl_http_snapshot_quantile(const struct pl_http_snapshot *a, const struct pl_http_snapshot *b,
                                 double q);

#endif
