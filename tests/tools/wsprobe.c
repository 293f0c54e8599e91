/* wsprobe: a WebSocket client for pulsed's /api/v1/live, built on libwebsockets' client API
 * (lws 4.1, on a libuv loop of its own: epoll scales to thousands of sockets where lws's
 * default poll() loop would scan every fd on every turn).
 *
 *   wsprobe stall --port P --token T [--rcvbuf 4096] [--seconds 5] [--wait 30]
 *       One socket. Once established: shrinks SO_RCVBUF, stops reading, prints
 *       {"established":true}; after --seconds (or on SIGTERM/SIGUSR1) reads again until the
 *       connection ends (at most --wait seconds more) and prints
 *       {"closed":bool,"close_code":N|null,"close_reason":...,"frames":N,"bytes":N}.
 *       "closed" is true when the server ended the connection, false when wsprobe gave up
 *       waiting (it then closes it itself). close_code is null when the connection ended
 *       without a close frame. --wait defaults to max(30, 3 x --seconds): a receive window
 *       shrunk below the loopback MSS is not reopened by reading (Linux sends no window
 *       update while rcv_ssthresh is that small), so the backlog only flows once the server's
 *       zero-window probe comes, after an exponential back-off about as long as the stall.
 *
 *   wsprobe fanout --port P --tokens FILE --sockets N [--seconds 20] [--ramp 256]
 *                  [--post-ms 200] [--settle 2] [--grace 3] [--hold 0] [--url-token]
 *       N sockets, socket i authenticated with token i % ntokens (one bearer token a line).
 *       At most --ramp handshakes in flight. Once every socket is established or failed, and
 *       --settle seconds on, a measuring window of --seconds: metrics frames are counted per
 *       socket (by the frame's "ts": every socket should get every frame), and every --post-ms
 *       a feeding is POSTed (lws client HTTP, same loop) for the next user, its note carrying
 *       a sequence number; each of that user's open sockets should receive the
 *       feeding.created event: the lag from the POST's body leaving to the event's arrival is
 *       recorded per (socket, event). After --grace seconds for stragglers, one JSON summary
 *       line goes to stdout; the sockets are then held open --hold seconds (or until
 *       SIGTERM/SIGUSR1) so a caller can measure the server with them connected.
 *       --url-token sends the token as ?access_token= instead of Authorization; the tokens
 *       must then be personal access tokens (pat_..., read and write: the POSTs use them
 *       too), since the server refuses a session token in a URL (401).
 *       --server-pid PID adds the server's CPU use over the window and its RSS (/proc).
 *       Progress goes to stderr.
 *
 * Exit status: 0 when it ran to the end (whatever it measured), 1 when it could not connect
 * (stall) or nothing connected (fanout), 2 on bad usage. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define MAX_FAIL_REASONS 8
#define MAX_PART         (1u << 20)

enum mode { MODE_STALL, MODE_FANOUT };
enum sstate { S_IDLE, S_CONNECTING, S_OPEN, S_FAILED, S_CLOSED };
enum phase { PH_RAMP, PH_SETTLE, PH_WINDOW, PH_GRACE, PH_HOLD, PH_DONE };

struct sock {
    struct lws *wsi;
    int idx;
    int token;
    int user; /* index in P.users, -1 until the hello */
    uint8_t state;
    bool we_close;
    bool open_at_window; /* open when the window started */
    int close_code;      /* -1: none received */
    char close_reason[64];
    uint32_t frames;
    uint32_t mwin; /* metrics frames of the window */
    uint64_t bytes;
    char *part; /* a message arriving in pieces */
    size_t part_len, part_cap;
};

struct post {
    struct lws *wsi;
    unsigned seq;
    int token, user;
    uint64_t t_start, t_sent, t_done; /* uv_hrtime ns */
    int status;
    bool done, failed;
    int nexp;
    int *exp;
    uint8_t *got;
    size_t body_len;
    unsigned char body[LWS_PRE + 160];
};

struct tsent {
    char ts[32];
    uint64_t first, last; /* arrival ns */
    uint32_t count;
};

struct fail_reason {
    char text[96];
    int count;
};

static struct {
    enum mode mode;
    const char *host;
    int port;
    char hostport[80];
    /* options */
    const char *token;
    const char *tokens_file;
    int nsockets;
    double seconds;
    int rcvbuf, rcvbuf_orig;
    double wait_s;
    int ramp;
    int post_ms;
    double settle_s, grace_s, hold_s;
    bool url_token;
    int server_pid;
    /* CPU seconds (and the server's RSS) at the window's start and end */
    double ccpu[2], scpu[2];
    long srss[2];
    /* lws, uv */
    uv_loop_t loop;
    struct lws_context *ctx;
    uv_timer_t t_main, t_phase, t_post, t_progress;
    uv_signal_t sig_term, sig_usr1, sig_int;
    /* tokens and users */
    char **tokens;
    char **auth; /* "Bearer <token>" */
    char **paths;
    int *token_user;
    int ntokens;
    char (*users)[40];
    int nusers, users_cap;
    /* sockets */
    struct sock *socks;
    int next_connect, inflight, established, failed, closed_by_server;
    int codes[5000];
    int closed_no_code;
    struct fail_reason fails[MAX_FAIL_REASONS];
    int fails_other;
    enum phase phase;
    uint64_t t0, t_ramp_done, t_win_start, t_win_end;
    /* metrics */
    struct tsent *ts;
    int nts, ts_cap;
    int win_first, win_last; /* ts indices of the window, -1 before */
    uint64_t metrics_total, metrics_in_window, other_frames, bytes_total;
    /* events */
    struct post **posts; /* each allocated once: lws holds their addresses */
    unsigned nposts, posts_cap;
    int next_post_token;
    unsigned long long run_id;
    uint64_t delivered, unexpected, foreign_events, events_total;
    double *lags;
    size_t nlags, lags_cap;
    int posts_ok, posts_failed;
    /* stall */
    bool stalled, resumed, reported;
    bool stop_requested;
    int exit_code;
} P = {.host = "127.0.0.1",
       .seconds = -1,
       .rcvbuf = 4096,
       .wait_s = -1,
       .ramp = 256,
       .post_ms = 200,
       .settle_s = 2,
       .grace_s = 3,
       .win_first = -1,
       .win_last = -1};

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

static double ms_since(uint64_t from, uint64_t to)
{
    return (double)(to - from) / 1e6;
}

static void die_usage(const char *msg)
{
    fprintf(stderr,
            "wsprobe: %s\n"
            "usage: wsprobe stall --port P --token T [--host H] [--rcvbuf B] [--seconds S]"
            " [--wait S]\n"
            "       wsprobe fanout --port P --tokens FILE --sockets N [--host H] [--seconds S]"
            " [--ramp N] [--post-ms MS] [--settle S] [--grace S] [--hold S] [--url-token]\n",
            msg);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q && n) {
        fprintf(stderr, "wsprobe: out of memory\n");
        exit(1);
    }
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

/* ---- output ---- */

static void emit(json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(j);
    if (text) {
        fputs(text, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        free(text);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double q)
{
    if (!n) return 0;
    size_t k = (size_t)ceil(q * (double)n);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return v[k - 1];
}

static json_t *num_or_null(bool have, double v)
{
    return have ? json_real(round(v * 1000) / 1000) : json_null();
}

/* ---- users (from each socket's hello) ---- */

static int user_index(const char *id)
{
    for (int i = 0; i < P.nusers; i++)
        if (strcmp(P.users[i], id) == 0) return i;
    if (P.nusers == P.users_cap) {
        P.users_cap = P.users_cap ? 2 * P.users_cap : 64;
        P.users = xrealloc(P.users, (size_t)P.users_cap * sizeof *P.users);
    }
    snprintf(P.users[P.nusers], sizeof P.users[0], "%s", id);
    return P.nusers++;
}

/* ---- metrics frames ---- */

static int ts_index(const char *ts, size_t n, uint64_t now)
{
    for (int i = P.nts - 1; i >= 0 && i >= P.nts - 16; i--)
        if (strlen(P.ts[i].ts) == n && memcmp(P.ts[i].ts, ts, n) == 0) return i;
    for (int i = P.nts - 17; i >= 0; i--)
        if (strlen(P.ts[i].ts) == n && memcmp(P.ts[i].ts, ts, n) == 0) return i;
    if (P.nts == P.ts_cap) {
        P.ts_cap = P.ts_cap ? 2 * P.ts_cap : 64;
        P.ts = xrealloc(P.ts, (size_t)P.ts_cap * sizeof *P.ts);
    }
    struct tsent *e = &P.ts[P.nts];
    memset(e, 0, sizeof *e);
    snprintf(e->ts, sizeof e->ts, "%.*s", (int)(n < 31 ? n : 31), ts);
    e->first = now;
    return P.nts++;
}

static void on_metrics(struct sock *s, const char *msg, size_t len, uint64_t now)
{
    static const char prefix[] = "{\"type\":\"metrics\",\"ts\":\"";
    size_t n = sizeof prefix - 1;
    P.metrics_total++;
    const char *ts = msg + n;
    const char *end = memchr(ts, '"', len - n);
    if (!end) return;
    int i = ts_index(ts, (size_t)(end - ts), now);
    P.ts[i].last = now;
    P.ts[i].count++;
    if (P.win_first >= 0 && i >= P.win_first && (P.phase == PH_WINDOW || i <= P.win_last)) {
        s->mwin++;
        P.metrics_in_window++;
    }
}

/* ---- events ---- */

static void on_event(struct sock *s, const char *msg, size_t len, uint64_t now)
{
    P.events_total++;
    json_t *j = json_loadb(msg, len, 0, NULL);
    const char *note = json_string_value(json_object_get(json_object_get(j, "data"), "note"));
    unsigned long long run = 0;
    unsigned seq = 0;
    if (!note || sscanf(note, "wsprobe:%llx:%u", &run, &seq) != 2 || run != P.run_id ||
        seq >= P.nposts) {
        P.foreign_events++;
        json_decref(j);
        return;
    }
    json_decref(j);
    struct post *p = P.posts[seq];
    for (int k = 0; k < p->nexp; k++) {
        if (p->exp[k] != s->idx) continue;
        if (p->got[k]) break; /* a duplicate */
        p->got[k] = 1;
        uint64_t from = p->t_sent ? p->t_sent : p->t_start;
        if (P.nlags == P.lags_cap) {
            P.lags_cap = P.lags_cap ? 2 * P.lags_cap : 4096;
            P.lags = xrealloc(P.lags, P.lags_cap * sizeof *P.lags);
        }
        P.lags[P.nlags++] = ms_since(from, now);
        P.delivered++;
        return;
    }
    P.unexpected++;
}

static void on_hello(struct sock *s, const char *msg, size_t len)
{
    json_t *j = json_loadb(msg, len, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "user_id"));
    if (id) {
        s->user = user_index(id);
        if (P.token_user && P.token_user[s->token] < 0) P.token_user[s->token] = s->user;
    }
    json_decref(j);
}

static bool starts_with(const char *msg, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(msg, prefix, n) == 0;
}

static void on_message(struct sock *s, const char *msg, size_t len)
{
    s->frames++;
    if (P.mode == MODE_STALL) return;
    uint64_t now = now_ns();
    if (starts_with(msg, len, "{\"type\":\"metrics\",\"ts\":\""))
        on_metrics(s, msg, len, now);
    else if (starts_with(msg, len, "{\"type\":\"event\""))
        on_event(s, msg, len, now);
    else if (starts_with(msg, len, "{\"type\":\"hello\""))
        on_hello(s, msg, len);
    else
        P.other_frames++;
}

static void on_receive(struct sock *s, struct lws *wsi, const char *in, size_t len)
{
    s->bytes += len;
    P.bytes_total += len;
    bool whole = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
    if (whole && !s->part_len) {
        on_message(s, in, len);
        return;
    }
    if (s->part_len + len > MAX_PART) {
        s->part_len = 0; /* not ours to reassemble: count it and move on */
    } else {
        if (s->part_len + len > s->part_cap) {
            s->part_cap = s->part_len + len + 1024;
            s->part = xrealloc(s->part, s->part_cap);
        }
        memcpy(s->part + s->part_len, in, len);
        s->part_len += len;
    }
    if (!whole) return;
    on_message(s, s->part, s->part_len);
    free(s->part);
    s->part = NULL;
    s->part_len = s->part_cap = 0;
}

/* ---- connection failures and closes ---- */

static void note_failure(const char *why)
{
    for (int i = 0; i < MAX_FAIL_REASONS; i++) {
        if (!P.fails[i].count) {
            snprintf(P.fails[i].text, sizeof P.fails[i].text, "%s", why);
            P.fails[i].count = 1;
            return;
        }
        if (strcmp(P.fails[i].text, why) == 0) {
            P.fails[i].count++;
            return;
        }
    }
    P.fails_other++;
}

static void stall_report(bool closed);
static void fanout_top_up(void);

static void sock_ended(struct sock *s)
{
    free(s->part);
    s->part = NULL;
    s->part_len = s->part_cap = 0;
    if (s->state == S_CONNECTING) {
        s->state = S_FAILED;
        P.inflight--;
        P.failed++;
    } else if (s->state == S_OPEN) {
        s->state = S_CLOSED;
        if (!s->we_close) {
            P.closed_by_server++;
            if (s->close_code >= 0 && s->close_code < 5000)
                P.codes[s->close_code]++;
            else
                P.closed_no_code++;
        }
    }
    if (P.mode == MODE_STALL) {
        if (P.stalled) stall_report(!s->we_close);
        uv_stop(&P.loop);
    }
}

/* ---- the WebSocket protocol ---- */

static void stall_established(struct sock *s, struct lws *wsi);

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct sock *s = lws_get_opaque_user_data(wsi);
    if (!s) return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        if (P.url_token) return 0;
        unsigned char **p = (unsigned char **)in, *end = *p + len;
        const char *a = P.auth[s->token];
        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                         (const unsigned char *)a, (int)strlen(a), p, end))
            return -1;
        return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (s->state == S_CONNECTING) {
            s->state = S_OPEN;
            P.inflight--;
            P.established++;
        }
        if (P.mode == MODE_STALL) stall_established(s, wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        on_receive(s, wsi, in, len);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const unsigned char *b = in;
            s->close_code = (b[0] << 8) | b[1];
            size_t n = len - 2 < sizeof s->close_reason - 1 ? len - 2 : sizeof s->close_reason - 1;
            memcpy(s->close_reason, b + 2, n);
            s->close_reason[n] = 0;
        } else {
            s->close_code = 1005; /* a close frame without a code */
        }
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (s->we_close) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
            return -1;
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        char why[96];
        snprintf(why, sizeof why, "%s", in ? (const char *)in : "connection error");
        if (s->state == S_CONNECTING) note_failure(why);
        if (P.mode == MODE_STALL) fprintf(stderr, "wsprobe: %s\n", why);
        sock_ended(s);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
        sock_ended(s);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (s->state == S_CONNECTING || s->state == S_OPEN) sock_ended(s);
        s->wsi = NULL;
        lws_set_opaque_user_data(wsi, NULL);
        return 0;
    default:
        return 0;
    }
}

/* ---- the HTTP client (POST /api/v1/feedings) ---- */

static void post_finished(struct post *p, bool ok)
{
    if (p->done) return;
    p->done = true;
    p->failed = !ok;
    p->t_done = now_ns();
    if (ok)
        P.posts_ok++;
    else
        P.posts_failed++;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    struct post *p = lws_get_opaque_user_data(wsi);
    if (!p) return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **b = (unsigned char **)in, *end = *b + len;
        const char *a = P.auth[p->token];
        static const char ct[] = "application/json";
        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                         (const unsigned char *)a, (int)strlen(a), b, end) ||
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                         (const unsigned char *)ct, (int)sizeof ct - 1, b, end) ||
            lws_add_http_header_content_length(wsi, p->body_len, b, end))
            return -1;
        lws_client_http_body_pending(wsi, 1);
        lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE:
        if (p->t_sent) return 0;
        if (lws_write(wsi, p->body + LWS_PRE, p->body_len, LWS_WRITE_HTTP_FINAL) !=
            (int)p->body_len)
            return -1;
        p->t_sent = now_ns();
        lws_client_http_body_pending(wsi, 0);
        return 0;
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        p->status = (int)lws_http_client_http_response(wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
        char buf[LWS_PRE + 2048];
        char *px = buf + LWS_PRE;
        int n = (int)sizeof buf - LWS_PRE;
        return lws_http_client_read(wsi, &px, &n) < 0 ? -1 : 0;
    }
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        return 0;
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
        post_finished(p, p->status == 201);
        /* one request per connection: do not leave it idle on the server */
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (!p->done)
            fprintf(stderr, "wsprobe: POST %u failed: %s\n", p->seq,
                    in ? (const char *)in : "connection error");
        post_finished(p, false);
        return 0;
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        post_finished(p, p->status == 201 && p->t_sent);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        post_finished(p, p->status == 201 && p->t_sent);
        p->wsi = NULL;
        lws_set_opaque_user_data(wsi, NULL);
        return 0;
    default:
        return 0;
    }
}

static struct lws_protocols protocols[] = {
    {"wsprobe", ws_callback, 0, 4096, 0, NULL, 0},
    {"wsprobe-http", http_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- connecting ---- */

static void connect_sock(struct sock *s)
{
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = P.ctx;
    ci.address = P.host;
    ci.port = P.port;
    ci.path = P.paths[s->token];
    ci.host = P.hostport;
    ci.origin = NULL;
    ci.protocol = NULL;
    ci.local_protocol_name = "wsprobe";
    ci.ietf_version_or_minus_one = -1;
    ci.opaque_user_data = s;
    ci.pwsi = &s->wsi;
    s->state = S_CONNECTING;
    s->user = -1;
    s->close_code = -1;
    P.inflight++;
    if (!lws_client_connect_via_info(&ci) && s->state == S_CONNECTING) {
        note_failure("lws_client_connect_via_info failed");
        sock_ended(s);
    }
}

static void post_one(void)
{
    /* the next token whose user is known (from a hello) */
    int tok = -1;
    for (int k = 0; k < P.ntokens; k++) {
        int t = (P.next_post_token + k) % P.ntokens;
        if (P.token_user[t] >= 0) {
            tok = t;
            break;
        }
    }
    if (tok < 0) return;
    P.next_post_token = (tok + 1) % P.ntokens;
    if (P.nposts == P.posts_cap) {
        P.posts_cap = P.posts_cap ? 2 * P.posts_cap : 256;
        P.posts = xrealloc(P.posts, P.posts_cap * sizeof *P.posts);
    }
    struct post *p = calloc(1, sizeof *p);
    if (!p) exit(1);
    P.posts[P.nposts] = p;
    p->seq = P.nposts++;
    p->token = tok;
    p->user = P.token_user[tok];
    p->exp = xrealloc(NULL, (size_t)P.nsockets * sizeof *p->exp);
    for (int i = 0; i < P.nsockets; i++)
        if (P.socks[i].state == S_OPEN && P.socks[i].user == p->user) p->exp[p->nexp++] = i;
    p->got = calloc((size_t)p->nexp + 1, 1);
    int n = snprintf((char *)p->body + LWS_PRE, sizeof p->body - LWS_PRE,
                     "{\"amount_ml\":100,\"kind\":\"milk\",\"note\":\"wsprobe:%llx:%u\"}", P.run_id,
                     p->seq);
    p->body_len = (size_t)n;
    p->t_start = now_ns();
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = P.ctx;
    ci.address = P.host;
    ci.port = P.port;
    ci.path = "/api/v1/feedings";
    ci.host = P.hostport;
    ci.method = "POST";
    ci.alpn = "http/1.1";
    ci.local_protocol_name = "wsprobe-http";
    ci.opaque_user_data = p;
    ci.pwsi = &p->wsi;
    if (!lws_client_connect_via_info(&ci)) post_finished(p, false);
}

/* ---- CPU and memory ---- */

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of a process (all its threads) in seconds, and its VmRSS in KiB */
static bool proc_sample(int pid, double *cpu, long *rss_kb)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return false;
    *cpu = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (!f) return false;
    *rss_kb = -1;
    while (fgets(buf, sizeof buf, f))
        if (sscanf(buf, "VmRSS: %ld", rss_kb) == 1) break;
    fclose(f);
    return true;
}

static void sample(int k)
{
    P.ccpu[k] = self_cpu();
    if (P.server_pid > 0 && !proc_sample(P.server_pid, &P.scpu[k], &P.srss[k])) P.server_pid = 0;
}

/* ---- fanout phases ---- */

static void fanout_summary(void);
static void start_window(void);

static void on_phase_timer(uv_timer_t *t)
{
    switch (P.phase) {
    case PH_SETTLE:
        start_window();
        break;
    case PH_WINDOW:
        P.phase = PH_GRACE;
        P.t_win_end = now_ns();
        P.win_last = P.nts - 1;
        sample(1);
        uv_timer_stop(&P.t_post);
        fprintf(stderr, "wsprobe: window over, %g s grace\n", P.grace_s);
        uv_timer_start(&P.t_phase, on_phase_timer, (uint64_t)(P.grace_s * 1000), 0);
        break;
    case PH_GRACE:
        fanout_summary();
        if (P.hold_s > 0 && !P.stop_requested) {
            P.phase = PH_HOLD;
            fprintf(stderr, "wsprobe: holding %d sockets for %g s (SIGTERM ends it)\n",
                    P.established - P.closed_by_server, P.hold_s);
            uv_timer_start(&P.t_phase, on_phase_timer, (uint64_t)(P.hold_s * 1000), 0);
        } else {
            P.phase = PH_DONE;
            uv_stop(&P.loop);
        }
        break;
    case PH_HOLD:
        P.phase = PH_DONE;
        uv_stop(&P.loop);
        break;
    default:
        break;
    }
}

static void on_post_timer(uv_timer_t *t)
{
    post_one();
}

static void start_window(void)
{
    P.phase = PH_WINDOW;
    P.t_win_start = now_ns();
    P.win_first = P.nts; /* the first metrics frame stamped after now */
    sample(0);
    for (int i = 0; i < P.nsockets; i++)
        P.socks[i].open_at_window = P.socks[i].state == S_OPEN;
    fprintf(stderr, "wsprobe: measuring %g s with %d open sockets, %d users\n", P.seconds,
            P.established - P.closed_by_server, P.nusers);
    uv_timer_start(&P.t_phase, on_phase_timer, (uint64_t)(P.seconds * 1000), 0);
    if (P.post_ms > 0) uv_timer_start(&P.t_post, on_post_timer, 0, (uint64_t)P.post_ms);
}

static void fanout_top_up(void)
{
    if (P.phase != PH_RAMP) return;
    while (P.next_connect < P.nsockets && P.inflight < P.ramp)
        connect_sock(&P.socks[P.next_connect++]);
    if (P.next_connect == P.nsockets && P.inflight == 0) {
        P.t_ramp_done = now_ns();
        P.phase = PH_SETTLE;
        fprintf(stderr, "wsprobe: %d established, %d failed in %.2f s; settling %g s\n",
                P.established, P.failed, ms_since(P.t0, P.t_ramp_done) / 1000, P.settle_s);
        uv_timer_start(&P.t_phase, on_phase_timer, (uint64_t)(P.settle_s * 1000), 0);
    }
}

static void on_ramp_timer(uv_timer_t *t)
{
    fanout_top_up();
    if (P.phase != PH_RAMP) uv_timer_stop(t);
}

static void on_progress(uv_timer_t *t)
{
    fprintf(stderr,
            "wsprobe: +%.0fs established %d failed %d inflight %d closed %d metrics %llu "
            "events %llu\n",
            ms_since(P.t0, now_ns()) / 1000, P.established, P.failed, P.inflight,
            P.closed_by_server, (unsigned long long)P.metrics_total,
            (unsigned long long)P.events_total);
}

static json_t *close_codes_json(void)
{
    json_t *o = json_object();
    for (int c = 0; c < 5000; c++) {
        if (!P.codes[c]) continue;
        char k[8];
        snprintf(k, sizeof k, "%d", c);
        json_object_set_new(o, k, json_integer(P.codes[c]));
    }
    if (P.closed_no_code) json_object_set_new(o, "none", json_integer(P.closed_no_code));
    return o;
}

static void fanout_summary(void)
{
    double win_s = (double)(P.t_win_end - P.t_win_start) / 1e9;
    int expected = P.win_first >= 0 && P.win_last >= P.win_first ? P.win_last - P.win_first + 1 : 0;
    /* metrics per socket, over the sockets open through the whole window */
    int held = 0, missed = 0, closed_in_window = 0;
    uint32_t mn = UINT32_MAX;
    uint64_t sum = 0;
    for (int i = 0; i < P.nsockets; i++) {
        struct sock *s = &P.socks[i];
        if (!s->open_at_window) continue;
        if (s->state != S_OPEN) {
            closed_in_window++;
            continue;
        }
        held++;
        sum += s->mwin;
        if (s->mwin < mn) mn = s->mwin;
        if ((int)s->mwin < expected) missed++;
    }
    if (!held) mn = 0;
    /* fan-out spread: first to last arrival of one metrics frame */
    double spreads[4096];
    size_t ns = 0;
    for (int i = P.win_first; i >= 0 && i <= P.win_last && ns < 4096; i++)
        spreads[ns++] = ms_since(P.ts[i].first, P.ts[i].last);
    qsort(spreads, ns, sizeof *spreads, cmp_double);
    /* events */
    uint64_t exp_total = 0;
    double post_ms[8192];
    size_t npost_ms = 0;
    for (unsigned k = 0; k < P.nposts; k++) {
        struct post *p = P.posts[k];
        if (!p->failed) exp_total += (uint64_t)p->nexp;
        if (p->done && !p->failed && p->t_sent && npost_ms < 8192)
            post_ms[npost_ms++] = ms_since(p->t_sent, p->t_done);
    }
    qsort(post_ms, npost_ms, sizeof *post_ms, cmp_double);
    qsort(P.lags, P.nlags, sizeof *P.lags, cmp_double);
    json_t *res = json_pack("{s:o, s:o}", "client_cpu_s", num_or_null(true, self_cpu()),
                            "client_cpu_window_percent",
                            num_or_null(win_s > 0, (P.ccpu[1] - P.ccpu[0]) / win_s * 100));
    if (P.server_pid > 0) {
        json_object_set_new(res, "server_cpu_window_percent",
                            num_or_null(win_s > 0, (P.scpu[1] - P.scpu[0]) / win_s * 100));
        json_object_set_new(res, "server_rss_kb_window_start", json_integer(P.srss[0]));
        json_object_set_new(res, "server_rss_kb_window_end", json_integer(P.srss[1]));
    }
    json_t *fails = json_object();
    for (int i = 0; i < MAX_FAIL_REASONS && P.fails[i].count; i++)
        json_object_set_new(fails, P.fails[i].text, json_integer(P.fails[i].count));
    if (P.fails_other) json_object_set_new(fails, "other", json_integer(P.fails_other));
    int open_now = 0;
    for (int i = 0; i < P.nsockets; i++)
        open_now += P.socks[i].state == S_OPEN;

    json_t *metrics =
        json_pack("{s:i, s:I, s:I, s:o, s:i, s:o, s:o, s:i, s:o, s:o}",
                  "frames_expected_per_socket", expected, "frames_received",
                  (json_int_t)P.metrics_in_window, "frames_total", (json_int_t)P.metrics_total,
                  "frames_per_s", num_or_null(win_s > 0, P.metrics_in_window / win_s),
                  "per_socket_min", (int)mn, "per_socket_avg",
                  num_or_null(held > 0, (double)sum / (held ? held : 1)), "per_socket_per_s",
                  num_or_null(held > 0 && win_s > 0, (double)sum / (held ? held : 1) / win_s),
                  "sockets_missed_frames", missed, "fanout_spread_ms_p50",
                  num_or_null(ns > 0, pct(spreads, ns, 0.5)), "fanout_spread_ms_max",
                  num_or_null(ns > 0, ns ? spreads[ns - 1] : 0));
    json_t *events = json_pack(
        "{s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o}", "posts", (int)P.nposts,
        "posts_ok", P.posts_ok, "posts_failed", P.posts_failed, "deliveries_expected",
        (json_int_t)exp_total, "deliveries_received", (json_int_t)P.delivered, "unexpected",
        (json_int_t)P.unexpected, "foreign", (json_int_t)P.foreign_events, "lag_ms_p50",
        num_or_null(P.nlags > 0, pct(P.lags, P.nlags, 0.5)), "lag_ms_p99",
        num_or_null(P.nlags > 0, pct(P.lags, P.nlags, 0.99)), "lag_ms_max",
        num_or_null(P.nlags > 0, P.nlags ? P.lags[P.nlags - 1] : 0), "post_ms_p50",
        num_or_null(npost_ms > 0, pct(post_ms, npost_ms, 0.5)), "post_ms_p99",
        num_or_null(npost_ms > 0, pct(post_ms, npost_ms, 0.99)));
    emit(json_pack("{s:s, s:i, s:i, s:i, s:o, s:o, s:i, s:i, s:i, s:i, s:o, s:o, s:o, s:o, "
                   "s:o, s:o}",
                   "mode", "fanout", "sockets", P.nsockets, "established", P.established, "failed",
                   P.failed, "fail_reasons", fails, "connect_s",
                   num_or_null(P.t_ramp_done > 0, ms_since(P.t0, P.t_ramp_done) / 1000),
                   "open_through_window", held, "closed_in_window", closed_in_window, "open_at_end",
                   open_now, "closed_by_server", P.closed_by_server, "close_codes",
                   close_codes_json(), "window_s", num_or_null(true, win_s), "metrics", metrics,
                   "events", events, "users", json_integer(P.nusers), "resources", res));
}

/* ---- stall ---- */

static void on_stall_deadline(uv_timer_t *t);

static void stall_report(bool closed)
{
    if (P.reported) return;
    P.reported = true;
    struct sock *s = &P.socks[0];
    json_t *code = s->close_code >= 0 ? json_integer(s->close_code) : json_null();
    json_t *why = s->close_code >= 0 ? json_string(s->close_reason) : json_null();
    if (!why) why = json_null();
    emit(json_pack("{s:b, s:o, s:o, s:i, s:I}", "closed", closed, "close_code", code,
                   "close_reason", why, "frames", (int)s->frames, "bytes", (json_int_t)s->bytes));
}

static void stall_resume(void)
{
    struct sock *s = &P.socks[0];
    if (P.resumed || !s->wsi || s->state != S_OPEN) return;
    P.resumed = true;
    fprintf(stderr, "wsprobe: reading again\n");
    /* Give the socket its buffer back: a window smaller than the loopback MSS leaves the
     * sender probing a zero window with back-off, and the backlog would trickle in. */
    int fd = (int)lws_get_socket_fd(s->wsi);
    int v = P.rcvbuf_orig > 262144 ? P.rcvbuf_orig : 262144;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    lws_rx_flow_control(s->wsi, 1);
    uv_timer_start(&P.t_phase, on_stall_deadline, (uint64_t)(P.wait_s * 1000), 0);
}

static void on_stall_timer(uv_timer_t *t)
{
    stall_resume();
}

static void on_stall_deadline(uv_timer_t *t)
{
    /* the server never closed it: report, then close it ourselves */
    struct sock *s = &P.socks[0];
    stall_report(false);
    if (s->wsi && s->state == S_OPEN) {
        s->we_close = true;
        lws_callback_on_writable(s->wsi);
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, 2);
    } else {
        uv_stop(&P.loop);
    }
}

static void stall_established(struct sock *s, struct lws *wsi)
{
    if (P.stalled) return;
    P.stalled = true;
    int fd = (int)lws_get_socket_fd(wsi);
    int v = P.rcvbuf;
    socklen_t vl = sizeof P.rcvbuf_orig;
    if (fd >= 0) getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &P.rcvbuf_orig, &vl);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) != 0)
        fprintf(stderr, "wsprobe: SO_RCVBUF: %s\n", strerror(errno));
    lws_rx_flow_control(wsi, 0);
    emit(json_pack("{s:b}", "established", 1));
    if (P.stop_requested)
        stall_resume();
    else
        uv_timer_start(&P.t_main, on_stall_timer, (uint64_t)(P.seconds * 1000), 0);
}

/* ---- signals ---- */

static void on_signal(uv_signal_t *h, int signum)
{
    P.stop_requested = true;
    if (P.mode == MODE_STALL) {
        if (P.stalled) stall_resume();
        return;
    }
    switch (P.phase) {
    case PH_RAMP:
    case PH_SETTLE:
        /* report what there is */
        P.phase = PH_GRACE;
        P.win_first = -1;
        P.t_win_start = P.t_win_end = now_ns();
        uv_timer_start(&P.t_phase, on_phase_timer, 0, 0);
        break;
    case PH_WINDOW:
        uv_timer_start(&P.t_phase, on_phase_timer, 0, 0);
        break;
    case PH_HOLD:
        uv_timer_start(&P.t_phase, on_phase_timer, 0, 0);
        break;
    default:
        break;
    }
}

/* ---- set-up ---- */

static void lws_log(int level, const char *line)
{
    static int n;
    if (++n <= 20) fprintf(stderr, "lws: %s", line);
    if (n == 20) fprintf(stderr, "lws: (further lws log lines are not shown)\n");
}

static void raise_fd_limit(int want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        fprintf(stderr, "wsprobe: setrlimit: %s\n", strerror(errno));
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)want > rl.rlim_cur)
        fprintf(stderr, "wsprobe: RLIMIT_NOFILE is %llu (hard), %d sockets need more\n",
                (unsigned long long)rl.rlim_cur, want);
}

static void read_tokens(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "wsprobe: %s: %s\n", file, strerror(errno));
        exit(2);
    }
    char line[1024];
    int cap = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n \t");
        line[n] = 0;
        if (!n) continue;
        if (P.ntokens == cap) {
            cap = cap ? 2 * cap : 128;
            P.tokens = xrealloc(P.tokens, (size_t)cap * sizeof *P.tokens);
        }
        P.tokens[P.ntokens++] = xstrdup(line);
    }
    fclose(f);
    if (!P.ntokens) die_usage("no tokens in the tokens file");
}

static void prepare_tokens(void)
{
    P.auth = xrealloc(NULL, (size_t)P.ntokens * sizeof *P.auth);
    P.paths = xrealloc(NULL, (size_t)P.ntokens * sizeof *P.paths);
    P.token_user = xrealloc(NULL, (size_t)P.ntokens * sizeof *P.token_user);
    for (int i = 0; i < P.ntokens; i++) {
        size_t n = strlen(P.tokens[i]) + 64;
        P.auth[i] = xrealloc(NULL, n);
        snprintf(P.auth[i], n, "Bearer %s", P.tokens[i]);
        P.paths[i] = xrealloc(NULL, n);
        if (P.url_token)
            snprintf(P.paths[i], n, "/api/v1/live?access_token=%s", P.tokens[i]);
        else
            snprintf(P.paths[i], n, "/api/v1/live");
        P.token_user[i] = -1;
    }
}

static void parse_args(int argc, char **argv)
{
    if (argc < 2) die_usage("a mode is needed: stall or fanout");
    if (strcmp(argv[1], "stall") == 0)
        P.mode = MODE_STALL;
    else if (strcmp(argv[1], "fanout") == 0)
        P.mode = MODE_FANOUT;
    else
        die_usage("unknown mode");
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},       {"host", required_argument, NULL, 'H'},
        {"token", required_argument, NULL, 't'},      {"tokens", required_argument, NULL, 'T'},
        {"sockets", required_argument, NULL, 'n'},    {"seconds", required_argument, NULL, 's'},
        {"rcvbuf", required_argument, NULL, 'r'},     {"wait", required_argument, NULL, 'w'},
        {"ramp", required_argument, NULL, 'R'},       {"post-ms", required_argument, NULL, 'P'},
        {"settle", required_argument, NULL, 'S'},     {"grace", required_argument, NULL, 'g'},
        {"hold", required_argument, NULL, 'h'},       {"url-token", no_argument, NULL, 'u'},
        {"server-pid", required_argument, NULL, 'X'}, {NULL, 0, NULL, 0},
    };
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            P.port = atoi(optarg);
            break;
        case 'H':
            P.host = optarg;
            break;
        case 't':
            P.token = optarg;
            break;
        case 'T':
            P.tokens_file = optarg;
            break;
        case 'n':
            P.nsockets = atoi(optarg);
            break;
        case 's':
            P.seconds = atof(optarg);
            break;
        case 'r':
            P.rcvbuf = atoi(optarg);
            break;
        case 'w':
            P.wait_s = atof(optarg);
            break;
        case 'R':
            P.ramp = atoi(optarg);
            break;
        case 'P':
            P.post_ms = atoi(optarg);
            break;
        case 'S':
            P.settle_s = atof(optarg);
            break;
        case 'g':
            P.grace_s = atof(optarg);
            break;
        case 'h':
            P.hold_s = atof(optarg);
            break;
        case 'u':
            P.url_token = true;
            break;
        case 'X':
            P.server_pid = atoi(optarg);
            break;
        default:
            die_usage("bad option");
        }
    }
    if (optind != argc) die_usage("unexpected argument");
    if (P.port <= 0 || P.port > 65535) die_usage("--port is needed");
    if (P.mode == MODE_STALL) {
        if (!P.token) die_usage("stall needs --token");
        if (P.seconds < 0) P.seconds = 5;
        if (P.wait_s < 0) P.wait_s = P.seconds * 3 > 30 ? P.seconds * 3 : 30;
        P.nsockets = 1;
        P.tokens = xrealloc(NULL, sizeof *P.tokens);
        P.tokens[0] = xstrdup(P.token);
        P.ntokens = 1;
    } else {
        if (!P.tokens_file) die_usage("fanout needs --tokens FILE");
        if (P.nsockets <= 0) die_usage("fanout needs --sockets N");
        if (P.seconds < 0) P.seconds = 20;
        if (P.ramp <= 0) P.ramp = 1;
        read_tokens(P.tokens_file);
    }
    snprintf(P.hostport, sizeof P.hostport, "%s:%d", P.host, P.port);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(P.nsockets + 64);
    prepare_tokens();
    P.socks = calloc((size_t)P.nsockets, sizeof *P.socks);
    if (!P.socks) return 1;
    for (int i = 0; i < P.nsockets; i++) {
        P.socks[i].idx = i;
        P.socks[i].token = i % P.ntokens;
        P.socks[i].user = -1;
        P.socks[i].close_code = -1;
    }
    P.run_id = (unsigned long long)now_ns() ^ ((unsigned long long)getpid() << 32);

    lws_set_log_level(LLL_ERR, lws_log);
    uv_loop_init(&P.loop);
    void *loops[1] = {&P.loop};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN;
    info.foreign_loops = loops;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.timeout_secs = 60;
    info.connect_timeout_secs = 60;
    P.ctx = lws_create_context(&info);
    if (!P.ctx) {
        fprintf(stderr, "wsprobe: lws_create_context failed (is libwebsockets-evlib-uv "
                        "installed?)\n");
        return 1;
    }
    uv_timer_init(&P.loop, &P.t_main);
    uv_timer_init(&P.loop, &P.t_phase);
    uv_timer_init(&P.loop, &P.t_post);
    uv_timer_init(&P.loop, &P.t_progress);
    uv_signal_init(&P.loop, &P.sig_term);
    uv_signal_init(&P.loop, &P.sig_usr1);
    uv_signal_init(&P.loop, &P.sig_int);
    uv_signal_start(&P.sig_term, on_signal, SIGTERM);
    uv_signal_start(&P.sig_usr1, on_signal, SIGUSR1);
    uv_signal_start(&P.sig_int, on_signal, SIGINT);
    P.t0 = now_ns();

    if (P.mode == MODE_STALL) {
        connect_sock(&P.socks[0]);
        if (P.socks[0].state == S_OPEN || P.socks[0].state == S_CONNECTING)
            uv_run(&P.loop, UV_RUN_DEFAULT);
        P.exit_code = P.stalled ? 0 : 1;
        if (!P.stalled && !P.reported) emit(json_pack("{s:b}", "established", 0));
    } else {
        P.phase = PH_RAMP;
        uv_timer_start(&P.t_main, on_ramp_timer, 0, 5);
        uv_timer_start(&P.t_progress, on_progress, 1000, 1000);
        uv_run(&P.loop, UV_RUN_DEFAULT);
        P.exit_code = P.established > 0 ? 0 : 1;
    }
    /* The process ends here: the kernel closes what is left. */
    fflush(stdout);
    _exit(P.exit_code);
}
