/* ws: WebSocket connections on a worker's own libuv loop, framed by libwebsockets.
 *
 * The HTTP server (lib/http) parses the upgrade request and the application authenticates it
 * like any other request; pl_ws_accept then takes the connection away from the HTTP server
 * and adopts its socket into a libwebsockets context that runs on the same loop (one context
 * per loop, no listening socket of its own). lws answers the handshake and does framing,
 * fragmentation, ping/pong, close codes and UTF-8 checks; this module adds what a server
 * pushing to many clients needs on top:
 *
 * - a bounded send queue per connection: frames are queued in order (pl_ws_send) and a
 *   connection whose queue grows past max_queue_bytes, or that has had undelivered frames
 *   for stall_ms, is closed with 1008; one extra slot holds the latest frame of a periodic
 *   stream (pl_ws_send_latest): a newer one replaces an unsent one (counted as dropped), so
 *   a slow reader never grows memory;
 * - shared frames: a message serialised once is sent to every connection of the loop
 *   (pl_ws_frame, reference counted, single thread);
 * - inbound messages reassembled up to max_message bytes; a longer one closes with 1009;
 * - idle connections pinged every ping_interval_s and dropped when they stay silent.
 *
 * Everything runs on the loop's thread. */
#ifndef PL_WS_H
#define PL_WS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pl/error.h"

struct pl_http_request;
struct pl_ws_server;
struct pl_ws_conn;
struct pl_ws_frame;

struct pl_ws_config {
    size_t max_message;     /* inbound message limit in bytes; more closes with 1009 */
    size_t max_queue_bytes; /* queued outbound bytes per connection; more closes with 1008 */
    uint64_t stall_ms;      /* undelivered frames for this long close with 1008 */
    int ping_interval_s;    /* silence before a ping; as long again without an answer: dropped */
    int sndbuf_bytes;       /* SO_SNDBUF of each socket (0: the kernel's autotuned default) */
    _Atomic int
        *conn_count; /* shared with the HTTP server (it counts WebSockets too); may be NULL */
    _Atomic uint64_t *frames_dropped; /* coalesced-away frames; may be NULL */
    /* A text message (binary ones are passed with binary=true), borrowed for the call. */
    void (*on_message)(struct pl_ws_conn *c, const char *data, size_t len, bool binary);
    /* The connection is gone (closed by either side or dropped); it is freed after this. */
    void (*on_close)(struct pl_ws_conn *c, int code);
};

/* Creates the lws context for `loop`. Call on the loop's thread. */
PL_MUST_USE int pl_ws_server_create(uv_loop_t *loop, const struct pl_ws_config *cfg,
                                    struct pl_ws_server **out);
/* Closes every connection with `code` (1001 on shutdown) and stops accepting new ones. */
void pl_ws_server_close_all(struct pl_ws_server *s, int code, const char *reason);
/* Starts destroying the context: connections still open are dropped (on_close fires for
 * each) and lws's handles close as the loop runs on. Call on the loop's thread. */
void pl_ws_server_destroy(struct pl_ws_server *s);
/* Completes the destruction and frees `s`, once the loop has run until its handles closed
 * (with a foreign loop lws finishes its teardown in a second lws_context_destroy). Run the
 * loop once more afterwards before uv_loop_close. */
void pl_ws_server_free(struct pl_ws_server *s);
/* Open connections on this loop. */
int pl_ws_server_count(const struct pl_ws_server *s);

/* Why `req` cannot be upgraded (not a GET, no "Upgrade: websocket", no "Connection:
 * upgrade", version not 13, no or bad key), with the status to answer (400 or 426), or NULL
 * when it can. */
const char *pl_ws_upgrade_problem(const struct pl_http_request *req, int *status);

/* Hands the connection of `req` (an upgrade request that passed pl_ws_upgrade_problem) to
 * lws, which answers the handshake. On success the request is finished (logged as 101),
 * *out is the new connection carrying `user`, and on_close will fire for it exactly once.
 * Otherwise the request has been answered or its client is gone, `user` is not kept, and the
 * result is PL_E_UNAVAILABLE (client gone, or lws refused the handshake) or PL_E_BUSY. */
PL_MUST_USE int pl_ws_accept(struct pl_ws_server *s, struct pl_http_request *req, void *user,
                             struct pl_ws_conn **out);

/* The lower half of pl_ws_accept, for a socket that is already ours: `bytes` (at most 2048)
 * are what the client sent so far, starting with its handshake head. Takes `fd` (closed on
 * failure). Returns 0 with *out set, or PL_E_UNAVAILABLE. Tests and fuzzers use it. */
PL_MUST_USE int pl_ws_adopt(struct pl_ws_server *s, int fd, const char *bytes, size_t len,
                            void *user, struct pl_ws_conn **out);

void *pl_ws_user(const struct pl_ws_conn *c);
/* Outbound bytes waiting on this connection (its queue and latest slot). */
size_t pl_ws_queued_bytes(const struct pl_ws_conn *c);

/* A text message to send to one or many connections of one loop. Starts with one
 * reference, the caller's. */
struct pl_ws_frame *pl_ws_frame_new(const char *text, size_t len);
void pl_ws_frame_unref(struct pl_ws_frame *f);

/* Queues a frame (taking a reference of its own). Returns 0, or PL_E_BUSY when the queue
 * was over its cap: the connection is then closing with 1008. Ignored while closing. */
int pl_ws_send(struct pl_ws_conn *c, struct pl_ws_frame *f);
/* Copies `text` into a new frame and queues it. */
int pl_ws_send_text(struct pl_ws_conn *c, const char *text, size_t len);
/* Puts `f` in the latest slot, replacing (and dropping) an unsent one. */
void pl_ws_send_latest(struct pl_ws_conn *c, struct pl_ws_frame *f);
/* Closes with `code` and a short reason (up to 123 bytes; kept by pointer, so a string
 * literal). on_close fires later. */
void pl_ws_close(struct pl_ws_conn *c, int code, const char *reason);

/* Routes libwebsockets' own log lines (errors and warnings only) to pl_log. Call once. */
void pl_ws_log_init(void);

#endif
