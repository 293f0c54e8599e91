/* libFuzzer harness for the WebSocket input path: lib/ws/ws.c (the lws bridge: message
 * reassembly up to max_message with 1009, the UTF-8 check with 1007, the send queue with its
 * cap (1008), the latest slot and shared frames, closes from either side) and
 * server/live/message.c, answered the way server/live/live.c answers.
 *
 * One loop and one pl_ws_server live for the whole process (created on the first input,
 * destroyed at exit); each input is one connection: an AF_UNIX socket pair whose server end
 * is adopted with pl_ws_adopt after a valid handshake head, the loop driven by hand
 * (uv_run(UV_RUN_NOWAIT)) while the client end writes. The limits are small so they are
 * reached: max_message 4096, max_queue_bytes 4096, stall_ms 8.
 *
 * Input: byte 0 is the mode, bytes 1 and 2 the points where the client's bytes are cut into
 * three writes (each piece is read by the server before the next is sent), the rest makes
 * the client's bytes.
 *   mode & 1       raw: the rest is sent as it is; otherwise it is a sequence of records
 *                  turned into client frames, masked unless asked not to:
 *                    flags   bits 0-3 opcode, 4 the payload is one byte repeated, 5 RSV1,
 *                            6 unmasked, 7 FIN
 *                    length  one byte 0..253; 254: two bytes follow (big-endian), minimal
 *                            header; 255: two bytes follow, sent as a 64-bit length
 *                    payload `length` bytes of input (fewer when the input ends), or one
 *                            byte repeated `length` times (bit 4)
 *   (mode >> 1) & 3  the end: 0 the server closes (pl_ws_close 1001) if the connection is
 *                  still open; 1 the client half-closes; 2 the client closes; 3 the server
 *                  closes with 4000 + mode right after the first piece, while the client
 *                  goes on writing
 *   mode & 8       slow reader: the server's send buffer is small and the client reads
 *                  nothing until the end, waiting up to 3 * stall_ms for the stall timer
 *   mode & 16      the first piece rides along with the handshake head (the bytes the
 *                  HTTP server had read past it), up to 2048 bytes in all
 *
 * Checked: every message handed to on_message is within max_message and, for text, valid
 * UTF-8; live_message_parse keeps its promises; on_close fires exactly once per adopted
 * connection (never for one whose adoption failed), after which the server counts no
 * connection; what the server sent is a 101 answer, then unmasked final frames (text frames
 * are JSON objects with a "type"), and nothing after a close frame, whether ours or one lws
 * sent itself for a protocol error (regressions/fuzz_ws/data-after-lws-close: ws.c used to
 * go on sending data and a second close after lws's). A connection that does not end within
 * DEADLINE_MS of its client going away is a hang. Leaks are ASan's to find.
 *
 * FUZZ_WS_DUMP=1 fuzz_ws <input> prints what the server sent, in hex. */
#include <errno.h>
#include <jansson.h>
#include <linux/sockios.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "live/live.h"
#include "pl/json.h"
#include "pl/log.h"
#include "pl/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_ws: %s:%d: %s\n", __FILE__, __LINE__, #cond);                    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_MESSAGE 4096
#define MAX_QUEUE   4096
#define STALL_MS    8
#define OUT_CAP     (96 * 1024)  /* the client's bytes */
#define RECV_CAP    (256 * 1024) /* what the server sent, kept for the check */
#define DEADLINE_MS 3000
#define PUMP_MAX    64 /* loop turns per piece while the server has unread bytes */
#define ADOPT_MAX   2048

static const char HEAD[] = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n";

static uv_loop_t loop;
static struct pl_ws_server *server;
static struct pl_ws_frame *metrics_frame; /* the periodic stream: pl_ws_send_latest */
static struct pl_ws_frame *event_frame;   /* a shared message: pl_ws_send */
static _Atomic int conn_count;
static _Atomic uint64_t frames_dropped;

/* the connection of the current input */
struct client {
    unsigned topics;
};
static int closes;         /* on_close calls in this input */
static bool adopting;      /* inside pl_ws_adopt: on_close must not fire */
static int client_fd = -1; /* our end */
static bool draining;      /* read what the server sends (false: a slow reader) */
static uint8_t out[OUT_CAP];
static uint8_t recv_buf[RECV_CAP];
static size_t recv_len;
static bool recv_overflow;

/* ---- the application side, as server/live/live.c does it ---- */

static void check_parse(enum live_msg kind, unsigned topics, const char *detail, size_t cap)
{
    REQUIRE(kind == LIVE_MSG_ERROR || kind == LIVE_MSG_PING || kind == LIVE_MSG_SUBSCRIBE ||
            kind == LIVE_MSG_UNSUBSCRIBE || kind == LIVE_MSG_RESUME);
    if (kind == LIVE_MSG_ERROR) {
        size_t n = strnlen(detail, cap);
        REQUIRE(topics == 0 && n > 0 && n < cap && pl_utf8_valid(detail, n));
    } else if (kind == LIVE_MSG_PING || kind == LIVE_MSG_RESUME) {
        REQUIRE(topics == 0);
    } else {
        REQUIRE(topics != 0 && (topics & ~(unsigned)ALL_TOPICS) == 0);
    }
}

static void send_json(struct pl_ws_conn *ws, json_t *msg)
{
    REQUIRE(msg);
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    REQUIRE(text);
    (void)pl_ws_send_text(ws, text, strlen(text));
    free(text);
}

static json_t *topics_json(unsigned topics)
{
    json_t *a = json_array();
    if (topics & TOPIC_METRICS) json_array_append_new(a, json_string("metrics"));
    if (topics & TOPIC_EVENTS) json_array_append_new(a, json_string("events"));
    return a;
}

static void on_message(struct pl_ws_conn *ws, const char *data, size_t len, bool binary)
{
    struct client *c = pl_ws_user(ws);
    REQUIRE(c && data);
    REQUIRE(len <= MAX_MESSAGE);
    if (!binary) REQUIRE(pl_utf8_valid(data, len));
    char detail[160];
    unsigned topics = 0;
    uint64_t after = 0;
    enum live_msg kind =
        live_message_parse(data, len, binary, &topics, &after, detail, sizeof detail);
    check_parse(kind, topics, detail, sizeof detail);
    switch (kind) {
    case LIVE_MSG_PING:
        (void)pl_ws_send_text(ws, "{\"type\":\"pong\"}", 15);
        /* two pings before the socket is writeable: the second replaces the first */
        pl_ws_send_latest(ws, metrics_frame);
        break;
    case LIVE_MSG_ERROR:
        send_json(ws, json_pack("{s:s, s:s}", "type", "error", "detail", detail));
        break;
    case LIVE_MSG_RESUME:
        /* live.c answers from Redis; here: the answer for an unknown cursor */
        (void)pl_ws_send_text(ws, "{\"type\":\"resync_required\"}", 26);
        break;
    case LIVE_MSG_SUBSCRIBE:
        c->topics |= topics;
        send_json(ws,
                  json_pack("{s:s, s:o}", "type", "subscribed", "topics", topics_json(c->topics)));
        if (topics & TOPIC_EVENTS) (void)pl_ws_send(ws, event_frame);
        if (topics & TOPIC_METRICS) pl_ws_send_latest(ws, metrics_frame);
        break;
    case LIVE_MSG_UNSUBSCRIBE:
        c->topics &= ~topics;
        send_json(ws,
                  json_pack("{s:s, s:o}", "type", "subscribed", "topics", topics_json(c->topics)));
        /* a close from inside a message, with more input behind it (live.c closes with
         * 4401 on revocation, from the Redis callback) */
        if (topics == ALL_TOPICS) pl_ws_close(ws, 4401, "credential revoked");
        break;
    }
}

static void on_close(struct pl_ws_conn *ws, int code)
{
    REQUIRE(!adopting);
    struct client *c = pl_ws_user(ws);
    REQUIRE(c);
    REQUIRE(code >= 0 && code <= 65535);
    closes++;
    free(c);
}

static void destroy_server(void)
{
    if (!server) return;
    pl_ws_server_destroy(server);
    for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT); i++)
        ;
    pl_ws_server_free(server);
    server = NULL;
    for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT); i++)
        ;
    pl_ws_frame_unref(metrics_frame);
    pl_ws_frame_unref(event_frame);
    uv_loop_close(&loop);
}

static void setup(void)
{
    pl_log_set_level(PL_LOG_ERROR);
    pl_ws_log_init();
    REQUIRE(uv_loop_init(&loop) == 0);
    struct pl_ws_config cfg = {
        .max_message = MAX_MESSAGE,
        .max_queue_bytes = MAX_QUEUE,
        .stall_ms = STALL_MS,
        .ping_interval_s = 30,
        .conn_count = &conn_count,
        .frames_dropped = &frames_dropped,
        .on_message = on_message,
        .on_close = on_close,
    };
    REQUIRE(pl_ws_server_create(&loop, &cfg, &server) == 0);
    /* about the size of the real metrics message; four events overflow the queue */
    char text[1200];
    int n = snprintf(text, sizeof text, "{\"type\":\"metrics\",\"cpu\":[");
    while (n < 560)
        n += snprintf(text + n, sizeof text - (size_t)n, "0.25,");
    n += snprintf(text + n, sizeof text - (size_t)n, "1]}");
    metrics_frame = pl_ws_frame_new(text, (size_t)n);
    n = snprintf(text, sizeof text, "{\"type\":\"event\",\"note\":\"");
    while (n < 1100)
        n += snprintf(text + n, sizeof text - (size_t)n, "feeding ");
    n += snprintf(text + n, sizeof text - (size_t)n, "\"}");
    event_frame = pl_ws_frame_new(text, (size_t)n);
    atexit(destroy_server);
}

/* ---- the client ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void drain(void)
{
    if (client_fd < 0) return;
    for (;;) {
        char tmp[16384];
        ssize_t n = recv(client_fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (n <= 0) return;
        if (recv_len + (size_t)n > RECV_CAP) {
            recv_overflow = true;
            continue;
        }
        memcpy(recv_buf + recv_len, tmp, (size_t)n);
        recv_len += (size_t)n;
    }
}

/* Bytes we sent that the server has not read yet. */
static int unread(void)
{
    int n = 0;
    if (client_fd < 0 || ioctl(client_fd, SIOCOUTQ, &n) != 0) return 0;
    return n;
}

/* Turns the loop until the server read what we sent (at most PUMP_MAX turns), then `extra`
 * more for its answers, or until the connection is gone. */
static void pump(int extra)
{
    for (int i = 0; i < PUMP_MAX && !closes; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (draining) drain();
        if (!unread() && --extra < 0) break;
    }
}

static void close_client(void)
{
    if (client_fd < 0) return;
    drain();
    close(client_fd);
    client_fd = -1;
}

static void send_all(const uint8_t *p, size_t n)
{
    /* a server that stopped reading (closing) gets the rest of a piece only so long */
    for (int stuck = 0; n > 0 && client_fd >= 0 && !closes && stuck < 1000;) {
        ssize_t w = send(client_fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            stuck = 0;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            stuck++;
            uv_run(&loop, UV_RUN_NOWAIT);
            drain(); /* even a slow reader reads when both ends are full */
        } else {
            return; /* the server is gone */
        }
    }
}

static size_t build_frames(const uint8_t *in, size_t n)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t i = 0, o = 0;
    unsigned rec = 0;
    while (i < n) {
        uint8_t f = in[i++];
        size_t len = i < n ? in[i++] : 0;
        bool long64 = len == 255;
        if (len >= 254) {
            len = 0;
            if (i < n) len = (size_t)in[i++] << 8;
            if (i < n) len |= in[i++];
        }
        bool masked = !(f & 0x40);
        if (o + 14 + len > OUT_CAP) break;
        out[o++] = (uint8_t)((f & 0x80) | ((f & 0x20) << 1) | (f & 0x0f));
        uint8_t mbit = masked ? 0x80 : 0;
        if (long64) {
            out[o++] = mbit | 127;
            for (int b = 7; b >= 0; b--)
                out[o++] = (uint8_t)((uint64_t)len >> (8 * b));
        } else if (len >= 126) {
            out[o++] = mbit | 126;
            out[o++] = (uint8_t)(len >> 8);
            out[o++] = (uint8_t)len;
        } else {
            out[o++] = mbit | (uint8_t)len;
        }
        uint8_t k[4];
        for (int b = 0; b < 4; b++)
            k[b] = (uint8_t)(key[b] ^ rec);
        if (masked) {
            memcpy(out + o, k, 4);
            o += 4;
        }
        size_t take;
        if (f & 0x10) {
            uint8_t fill = i < n ? in[i++] : 'a';
            memset(out + o, fill, len);
            take = len;
        } else {
            take = len < n - i ? len : n - i;
            memcpy(out + o, in + i, take);
            i += take;
        }
        if (masked)
            for (size_t j = 0; j < take; j++)
                out[o + j] ^= k[j & 3];
        o += take;
        rec++;
    }
    return o;
}

/* What the server sent: the 101 answer, then whole unmasked frames, nothing after a close
 * (a last frame may be cut short when the connection was dropped). */
static void check_output(void)
{
    if (recv_overflow) return;
    if (getenv("FUZZ_WS_DUMP")) { /* FUZZ_WS_DUMP=1 fuzz_ws input: what the server sent */
        fprintf(stderr, "--- %zu bytes\n", recv_len);
        for (size_t i = 0; i < recv_len; i++)
            fprintf(stderr, "%02x%s", recv_buf[i], i % 32 == 31 ? "\n" : " ");
        fprintf(stderr, "\n");
    }
    static const char ok[] = "HTTP/1.1 101 ";
    REQUIRE(recv_len >= sizeof ok - 1 && memcmp(recv_buf, ok, sizeof ok - 1) == 0);
    const uint8_t *end = memmem(recv_buf, recv_len, "\r\n\r\n", 4);
    REQUIRE(end);
    size_t p = (size_t)(end - recv_buf) + 4;
    bool closed = false;
    while (p + 2 <= recv_len) {
        uint8_t b0 = recv_buf[p], b1 = recv_buf[p + 1];
        REQUIRE(!closed); /* nothing after a close frame */
        REQUIRE((b0 & 0x80) && !(b0 & 0x70) && !(b1 & 0x80));
        size_t len = b1 & 0x7f, h = 2;
        if (len == 126) {
            if (p + 4 > recv_len) break;
            len = (size_t)recv_buf[p + 2] << 8 | recv_buf[p + 3];
            h = 4;
        } else if (len == 127) {
            if (p + 10 > recv_len) break;
            len = 0;
            for (int b = 0; b < 8; b++)
                len = len << 8 | recv_buf[p + 2 + b];
            h = 10;
        }
        if (len > recv_len - p - h) break;
        const char *payload = (const char *)recv_buf + p + h;
        switch (b0 & 0x0f) {
        case 1: {
            json_t *j = json_loadb(payload, len, 0, NULL);
            REQUIRE(json_is_object(j) && json_is_string(json_object_get(j, "type")));
            json_decref(j);
            break;
        }
        case 8:
            REQUIRE(len == 0 || (len >= 2 && len <= 125));
            closed = true;
            break;
        case 9:
        case 10:
            REQUIRE(len <= 125);
            break;
        default:
            REQUIRE(!"an unexpected opcode from the server");
        }
        p += h + len;
    }
}

/* Runs the loop until the connection is gone. */
static void finish(void)
{
    uint64_t deadline = client_fd < 0 ? now_ms() + DEADLINE_MS : 0;
    while (!closes) {
        pump(2);
        if (closes) break;
        if (client_fd >= 0) {
            /* whatever state lws is in, a client that goes away ends the connection */
            close_client();
            deadline = now_ms() + DEADLINE_MS;
        }
        REQUIRE(now_ms() < deadline); /* a hang */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server) setup();
    if (size < 3) return 0;
    uint8_t mode = data[0];
    size_t n = (mode & 1) ? size - 3 : build_frames(data + 3, size - 3);
    if (mode & 1) {
        if (n > OUT_CAP) n = OUT_CAP;
        memcpy(out, data + 3, n);
    }
    int endmode = (mode >> 1) & 3;
    bool slow = mode & 8;
    size_t cut1 = n * data[1] / 256, cut2 = n * data[2] / 256;
    if (cut2 < cut1) {
        size_t t = cut1;
        cut1 = cut2;
        cut2 = t;
    }

    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    if (slow) {
        int small = 4096;
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    }
    client_fd = sv[1];
    draining = !slow;
    recv_len = 0;
    recv_overflow = false;
    closes = 0;

    /* the handshake head, and maybe the first piece with it */
    char head[ADOPT_MAX];
    size_t head_len = sizeof HEAD - 1, pre = 0;
    memcpy(head, HEAD, head_len);
    if (mode & 16) {
        pre = cut1 < ADOPT_MAX - head_len ? cut1 : ADOPT_MAX - head_len;
        memcpy(head + head_len, out, pre);
    }
    struct client *c = calloc(1, sizeof *c);
    REQUIRE(c);
    struct pl_ws_conn *conn = NULL;
    /* the loop sat idle since the last input: without this its cached time is stale and the
     * frames queued now would look stalled at once */
    uv_update_time(&loop);
    adopting = true;
    int rc = pl_ws_adopt(server, sv[0], head, head_len + pre, c, &conn);
    adopting = false;
    if (rc != 0) {
        /* the frames that came with the head ended it inside the adoption (only then) */
        REQUIRE(pre > 0 && !conn && closes == 0);
        free(c);
        close_client();
        for (int i = 0; i < 4; i++)
            uv_run(&loop, UV_RUN_NOWAIT);
        REQUIRE(pl_ws_server_count(server) == 0 && conn_count == 0);
        return 0;
    }
    REQUIRE(conn && pl_ws_user(conn) == c && pl_ws_server_count(server) == 1);
    /* what live.c sends a new socket */
    send_json(conn, json_pack("{s:s, s:s}", "type", "hello", "user_id", "fuzz"));
    pl_ws_send_latest(conn, metrics_frame);

    const size_t cuts[4] = {pre, cut1 > pre ? cut1 : pre, cut2 > pre ? cut2 : pre, n};
    for (int k = 0; k < 3 && !closes; k++) {
        send_all(out + cuts[k], cuts[k + 1] - cuts[k]);
        pump(2);
        if (k == 0 && endmode == 3 && !closes) pl_ws_close(conn, 4000 + mode, "fuzz");
    }
    if (slow && !closes && pl_ws_queued_bytes(conn) > 0) {
        /* a reader that never reads: the stall timer closes it */
        uint64_t until = now_ms() + 3 * STALL_MS;
        while (!closes && now_ms() < until)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    draining = true;
    if (endmode == 1 && !closes) shutdown(client_fd, SHUT_WR);
    if (endmode == 2 && !closes) close_client();
    if (endmode == 0 && !closes) {
        pump(2);
        if (!closes) pl_ws_close(conn, 1001, "going away");
    }
    finish();
    REQUIRE(closes == 1);
    /* lws closes its handles on the next turns */
    for (int i = 0; i < 2; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    REQUIRE(pl_ws_server_count(server) == 0 && conn_count == 0);
    close_client();
    check_output();
    return 0;
}
