/* struct pl_http_request, shared by the lib/http files. */
#ifndef PL_REQUEST_INTERNAL_H
#define PL_REQUEST_INTERNAL_H

#include "pl/buf.h"
#include "pl/http.h"

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

void pl_http_request_free(struct pl_http_request *req);

#endif
