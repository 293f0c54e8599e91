/* http_test.h: a lib/http server on its own loop and thread, for unit tests that talk to it
 * over loopback sockets.
 *
 *   CHECK_EQ_INT(http_test_start(router, fallback), 0);   listens on 127.0.0.1:http_port
 *   int fd = http_test_connect();                          a connected client socket, or -1
 *   http_test_stop();   destroys the server on its loop, joins the thread, and checks that
 *                       every handle closed and every connection was counted out
 *
 * The server's loop (http_loop) is only touched from its own thread while it runs. Include
 * after test.h. */
#ifndef PULSE_HTTP_TEST_H
#define PULSE_HTTP_TEST_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "pl/http.h"

static uv_loop_t http_loop;
static struct pl_http_server *http_server;
static uv_async_t http_stop_async;
static _Atomic int http_conn_count;
static int http_port;
static pthread_t http_thread;

static void http_test_on_stop(uv_async_t *a)
{
    pl_http_server_destroy(http_server);
    uv_close((uv_handle_t *)a, NULL);
}

static void *http_test_thread(void *arg)
{
    (void)arg;
    uv_run(&http_loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Starts the server with generous limits (16 KiB head, 1 MiB body, 5 s timeouts, 100
 * connections) and `fallback` (may be NULL) for unrouted GET/HEAD paths. */
static int http_test_start(const struct pl_router *router,
                           void (*fallback)(struct pl_http_request *req, void *ctx))
{
    uv_loop_init(&http_loop);
    http_port = 0;
    int fd = pl_http_listen_socket("127.0.0.1", &http_port, 128);
    if (fd < 0) return fd;
    struct pl_http_config cfg = {
        .max_head_bytes = 16384,
        .max_body_bytes = 1 << 20,
        .head_timeout_ms = 5000,
        .idle_timeout_ms = 5000,
        .max_connections = 100,
        .conn_count = &http_conn_count,
        .router = router,
        .fallback = fallback,
    };
    int rc = pl_http_server_create(&http_loop, &cfg, fd, &http_server);
    if (rc) return rc;
    uv_async_init(&http_loop, &http_stop_async, http_test_on_stop);
    return pthread_create(&http_thread, NULL, http_test_thread, NULL);
}

static int http_test_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void http_test_stop(void)
{
    uv_async_send(&http_stop_async);
    pthread_join(http_thread, NULL);
    CHECK_EQ_INT(uv_loop_close(&http_loop), 0); /* every handle closed */
    CHECK_EQ_INT(atomic_load(&http_conn_count), 0);
}

#endif
