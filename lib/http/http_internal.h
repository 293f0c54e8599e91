/* http_internal: what the files of lib/http share. Never included outside lib/http (the unit
 * tests aside).
 *
 *   server.c    the server: listener, accepting (and refusing over the cap), routing a
 *               parsed request, drain and destroy, listening sockets
 *   conn.c      a connection's lifetime: reading, the pending bytes of pipelined requests,
 *               writing, keep-alive, head and idle timeouts, half-close, close and reap
 *   parser.c    llhttp glue: our own head scanner (size, bare LF, obs-fold), the llhttp
 *               callbacks that build the request, body limits
 *   request.c   the request object: accessors, query strings, the arena
 *   response.c  response heads (security and CORS headers), pl_respond*, problem+json,
 *               streaming, takeover, the access log
 *   router.c, metrics.c, static.c: pl/router.h, the request metrics, pl/static.h
 *
 * Ownership: the server owns its connections (an intrusive list); a connection owns the
 * request it is receiving. A request being handled outlives its connection if the client
 * goes away (req->conn becomes NULL) and is freed once answered. A connection is never
 * freed inside its own callbacks: http_conn_close marks it closing and it is reaped when
 * its handles have closed and no request points at it. */
#ifndef PL_HTTP_INTERNAL_H
#define PL_HTTP_INTERNAL_H

#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

#include "pl/buf.h"
#include "pl/http.h"

#define PL_ROUTE_UNMATCHED (-1)
#define PL_ROUTE_STATIC    (-2)

#define HTTP_MAX_HEADERS      100
#define HTTP_STREAM_LOW_WATER (64 * 1024) /* a streaming producer may write below this */

/* ---- the request ---- */

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(16) char data[];
};

struct cleanup {
    void (*fn)(void *);
    void *arg;
    struct cleanup *next;
};

struct hdr {
    const char *name;
    const char *value;
};

struct conn;

struct pl_http_request {
    struct conn *conn; /* NULL once answered or when the connection was lost */
    struct pl_http_server *srv;
    unsigned method;
    int http_minor;
    bool keep_alive;
    bool responded;
    int holds; /* pl_req_hold()s not yet released: the response waits for them */
    bool held; /* a response is waiting in held_* for the last release */
    int held_status;
    const char *held_type; /* arena copies */
    char *held_body;
    size_t held_len;
    bool close_after; /* the connection closes after this response */
    bool streaming;   /* a chunked response has started */
    int stream_status;
    size_t stream_bytes;
    void (*drained)(struct pl_http_request *req, bool alive, void *arg);
    void *drained_arg;
    bool drain_queued;
    struct pl_http_request *drain_next;
    char *head;  /* url and header strings, NUL-separated; owned */
    char *path;  /* points into head */
    char *query; /* points into head or "" */
    struct hdr *headers;
    size_t nheaders;
    struct pl_buf body;
    const struct pl_route *route;
    int route_index; /* for metrics: route index, PL_ROUTE_UNMATCHED or PL_ROUTE_STATIC */
    struct pl_match match;
    char *param_values[PL_MAX_PARAMS];
    struct arena_block *arena;
    struct cleanup *cleanups;
    struct pl_buf resp_headers; /* "Name: value\r\n" lines added by the handler */
    uint64_t start_ns;
    void *user_data;
    char *log_user;
    char request_id[132];
    char peer_ip[48];
};

/* A request for a connection whose head has begun: a request id, the peer, the clock
 * started; counted in flight until freed. Never fails. */
struct pl_http_request *http_request_new(struct conn *c);
/* Takes the client's X-Request-Id as the request id when it is sane (1..128 characters of
 * [A-Za-z0-9._-]); otherwise ours stays. */
void http_request_adopt_id(struct pl_http_request *req);
/* Runs the cleanups and frees the request with its arena. */
void pl_http_request_free(struct pl_http_request *req);

/* Percent-decodes src[0..len) into dst (capacity >= len + 1); '+' becomes ' ' when
 * plus_is_space. Returns the decoded length or -1 on a malformed escape or a NUL byte. */
long pl_http_percent_decode(const char *src, size_t len, char *dst, int plus_is_space);
/* The value 0..15 of a hex digit, or -1. */
int pl_http_hexval(char c);

/* ---- the connection ---- */

enum conn_state {
    CS_IDLE,     /* waiting for the first byte of a request */
    CS_HEAD,     /* receiving a head */
    CS_BODY,     /* head done, receiving the body */
    CS_HANDLING, /* a request is dispatched */
};

/* Our count of head bytes, ahead of llhttp (see parser.c). */
struct scanner {
    size_t count; /* head bytes so far */
    size_t line_len;
    int lines; /* complete non-empty lines */
    char prev;
    bool done;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* head, idle or linger timeout */
    llhttp_t parser;
    struct pl_http_server *srv;
    LIST_ENTRY(conn) link; /* in the server's list */
    enum conn_state state;
    struct scanner scan;
    /* head under construction */
    struct pl_buf head;
    size_t url_len;
    size_t hdr_off[HTTP_MAX_HEADERS][2];
    size_t nhdr;
    int hstate; /* 0 none, 1 in field, 2 in value */
    bool value_started;
    int error_status; /* set by a callback that returned HPE_USER */
    const char *error_detail;
    struct pl_http_request *req; /* being received or handled */
    struct pl_buf pending;       /* unparsed bytes waiting for the current request */
    bool closing;                /* uv_close called */
    bool read_eof;               /* the peer half-closed or went away */
    bool lingering;              /* final response written, discarding input until EOF */
    bool processing;             /* inside conn_process: respond must not recurse */
    bool reading;
    bool upgrade;
    unsigned served;       /* responses sent on this connection */
    uint64_t msg_wire;     /* bytes of the current message before the buffer being parsed */
    const char *buf_base;  /* start of the buffer being parsed */
    uint64_t body_end_off; /* message offset just past the last body byte (or the head) */
    int open_handles;
    char peer[48];
};

/* conn.c */

/* A connection on the server's loop, in its list, with its handles initialised (the TCP
 * handle not yet accepted into). */
struct conn *http_conn_new(struct pl_http_server *s);
/* An accepted connection starts: peer address, parser, head timer, reading. */
void http_conn_begin(struct conn *c);
/* Closes the handles (idempotent); the connection is reaped once they are closed and no
 * request points at it. A request still being received dies with it. */
void http_conn_close(struct conn *c);
/* Half-closes after the final response; input is discarded until EOF or a timeout. */
void http_conn_linger(struct conn *c);
/* Writes `data` (taken, freed with free()); dropped once the connection is closing. */
void http_conn_write(struct conn *c, char *data, size_t len);
void http_conn_read_stop(struct conn *c);
/* (Re)starts the head timeout: 408 unless the head is in by then. */
void http_conn_start_head_timer(struct conn *c);
/* The request has been answered: frees it, and the connection goes on with the next
 * pipelined request (or is reaped if it is closing). */
void http_conn_request_done(struct pl_http_request *req);

/* parser.c */

void http_parser_settings(llhttp_settings_t *settings);
/* Feeds bytes to the parser. Returns how many were consumed; stops after a complete
 * request (dispatched) or an error (answered). */
size_t http_conn_parse(struct conn *c, const char *data, size_t len);
/* Fails the request being received with `status` and closes the connection after. */
void http_conn_fail(struct conn *c, int status, const char *detail);

/* ---- the server ---- */

struct pl_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listening;
    struct pl_http_config cfg;
    char *public_origin;
    char *cors_origins;
    llhttp_settings_t settings;
    LIST_HEAD(, conn) conns;
    int nconns;
    int inflight;
    bool draining;
    bool closing_responses; /* shutting down: every response says Connection: close */
    bool destroying;
    uv_timer_t drain_timer;
    uv_idle_t stream_idle; /* runs streaming producers' drained callbacks */
    struct pl_http_request *drain_list;
    void (*drain_done)(struct pl_http_server *s, void *arg);
    void *drain_arg;
    int open_handles;
    char read_buf[65536];
};

/* server.c */

/* Routes a complete request: to the application's dispatch, the fallback, or an answer of
 * its own (OPTIONS, 404, 405). */
void http_dispatch(struct conn *c);
/* A connection has left the server's list: finishes a drain, or frees a destroyed server
 * whose last connection this was. */
void http_server_conn_gone(struct pl_http_server *s);

/* response.c */

/* 204 with Allow (and the CORS preflight headers for an allowed Origin). */
void http_respond_options(struct pl_http_request *req, unsigned allow);
/* 405 problem with Allow. */
void http_respond_405(struct pl_http_request *req, unsigned allow);
/* Unlinks the request from the server's list of streams to wake (before it is freed). */
void http_stream_forget(struct pl_http_request *req);
/* Runs a streaming request's drained callback on the next loop turn. */
void http_stream_drain_soon(struct pl_http_request *req);

/* metrics.c */

void pl_http_metrics_record(struct pl_http_metrics *m, int route_index, unsigned method, int status,
                            uint64_t duration_ns);

#endif
