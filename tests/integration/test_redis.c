/* lib/redis against a real Redis (REDIS_URL), shared with other tests running in parallel:
 * keys, channels and ACL users carry a random test id, no test stops or pauses the server, and
 * connections are killed only by ID or by a user of our own. A dead server is simulated with
 * a closed local port, a silent one with a listener that never answers. */
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#include "pl/redis.h"
#include "redis/redis_internal.h"
#include "test.h"
#include "loop_test.h"

static const char *redis_url;
static char tid[48];

/* ---- replies ---- */

struct result {
    int calls;
    int status;
    int type;
    long long integer;
    char str[512];
    size_t len;
    size_t elements;
    long long first_int;
    char first_str[128];
};

static void capture(int status, redisReply *reply, void *ctx)
{
    struct result *res = ctx;
    res->calls++;
    res->status = status;
    if (!reply) return;
    res->type = reply->type;
    res->integer = reply->integer;
    if (reply->str) {
        res->len = reply->len;
        size_t n = reply->len < sizeof res->str - 1 ? reply->len : sizeof res->str - 1;
        memcpy(res->str, reply->str, n);
        res->str[n] = 0;
    }
    res->elements = reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0;
    if (res->elements > 0) {
        redisReply *e = reply->element[0];
        res->first_int = e->integer;
        if (e->str) snprintf(res->first_str, sizeof res->first_str, "%s", e->str);
    }
}

#define ARGV(...)  ((const char *[]){__VA_ARGS__})
#define NARGS(...) ((int)(sizeof(ARGV(__VA_ARGS__)) / sizeof(const char *)))

/* Sends one command and waits for its callback; false when refused or unanswered. */
static bool call(uv_loop_t *loop, struct pl_redis *r, struct result *res, int argc,
                 const char **argv)
{
    memset(res, 0, sizeof *res);
    if (pl_redis_command(r, argc, argv, NULL, capture, res) != 0) return false;
    return WAIT_UNTIL(loop, res->calls > 0, 5000) && res->calls == 1;
}
#define CALL(loop, r, res, ...) call(loop, r, res, NARGS(__VA_ARGS__), ARGV(__VA_ARGS__))

static const char *key(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s:%s", tid, name);
    return buf;
}

static struct pl_redis *client(uv_loop_t *loop, const char *url, int connect_ms, int command_ms)
{
    struct pl_redis_config cfg = {
        .url = url, .connect_timeout_ms = connect_ms, .command_timeout_ms = command_ms};
    struct pl_redis *r = NULL;
    CHECK_EQ_INT(pl_redis_create(loop, &cfg, &r), 0);
    CHECK(r != NULL);
    return r;
}

static bool connected(uv_loop_t *loop, struct pl_redis *r)
{
    return WAIT_UNTIL(loop, pl_redis_connected(r), 5000);
}

/* REDIS_URL with other credentials and db, for the ACL and SELECT tests. */
static void url_with(char *out, size_t cap, const char *user, const char *password, int db)
{
    struct pl_redis_url u;
    if (pl_redis_url_parse(redis_url, &u) != 0) {
        fprintf(stderr, "bad REDIS_URL\n");
        exit(1);
    }
    bool v6 = strchr(u.host, ':') != NULL;
    snprintf(out, cap, "redis://%s%s%s%s%s%s%s:%d/%d", user ? user : "", password ? ":" : "",
             password ? password : "", password ? "@" : "", v6 ? "[" : "", u.host, v6 ? "]" : "",
             u.port, db);
    pl_redis_url_dispose(&u);
}

/* ---- a fake server: a port that accepts and never answers ---- */

struct fake_server {
    uv_tcp_t listener;
    uv_tcp_t *peers[64];
    int npeers;
    int accepted;
    int port;
};

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void on_fake_conn(uv_stream_t *srv, int status)
{
    struct fake_server *fs = srv->data;
    if (status < 0) return;
    uv_tcp_t *peer = malloc(sizeof *peer);
    uv_tcp_init(srv->loop, peer);
    if (uv_accept(srv, (uv_stream_t *)peer) == 0 && fs->npeers < 64) {
        fs->peers[fs->npeers++] = peer;
        fs->accepted++;
    } else {
        uv_close((uv_handle_t *)peer, free_handle);
    }
}

static int fake_server_start(struct fake_server *fs, uv_loop_t *loop, int port)
{
    memset(fs, 0, sizeof *fs);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_init(loop, &fs->listener);
    fs->listener.data = fs;
    int rc = uv_tcp_bind(&fs->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&fs->listener, 64, on_fake_conn);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (rc == 0) rc = uv_tcp_getsockname(&fs->listener, (struct sockaddr *)&ss, &len);
    if (rc == 0) fs->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return rc;
}

static void fake_server_stop(struct fake_server *fs)
{
    for (int i = 0; i < fs->npeers; i++)
        uv_close((uv_handle_t *)fs->peers[i], free_handle);
    fs->npeers = 0;
    uv_close((uv_handle_t *)&fs->listener, NULL);
}

/* A local port nothing listens on (bound once, then closed). */
static int closed_port(uv_loop_t *loop)
{
    struct fake_server fs;
    CHECK_EQ_INT(fake_server_start(&fs, loop, 0), 0);
    int port = fs.port;
    fake_server_stop(&fs);
    uv_run(loop, UV_RUN_NOWAIT);
    return port;
}

/* ---- commands ---- */

TEST(create_invalid)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *r = (struct pl_redis *)&loop;
    struct pl_redis_config cfg = {.url = "http://localhost"};
    CHECK_EQ_INT(pl_redis_create(&loop, &cfg, &r), PL_E_CONFIG);
    CHECK(r == NULL);
    cfg.url = NULL;
    CHECK_EQ_INT(pl_redis_create(&loop, &cfg, &r), PL_E_CONFIG);
    struct pl_redis_sub *s = (struct pl_redis_sub *)&loop;
    struct pl_redis_sub_config scfg = {.url = "redis://host:99999", .on_message = NULL};
    CHECK_EQ_INT(pl_redis_sub_create(&loop, &scfg, &s), PL_E_INVALID); /* no on_message */
    CHECK(s == NULL);
    finish(&loop);
}

TEST(set_get)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *r = client(&loop, redis_url, 2000, 2000);
    CHECK(connected(&loop, r));
    char k[128];
    struct result res;
    CHECK(CALL(&loop, r, &res, "SET", key(k, sizeof k, "greeting"), "hello", "EX", "60"));
    CHECK_EQ_INT(res.status, 0);
    CHECK_EQ_INT(res.type, REDIS_REPLY_STATUS);
    CHECK_STR(res.str, "OK");
    CHECK(CALL(&loop, r, &res, "GET", k));
    CHECK_EQ_INT(res.status, 0);
    CHECK_EQ_INT(res.type, REDIS_REPLY_STRING);
    CHECK_STR(res.str, "hello");
    CHECK(CALL(&loop, r, &res, "GET", key(k, sizeof k, "missing")));
    CHECK_EQ_INT(res.type, REDIS_REPLY_NIL);

    struct pl_redis_stats st;
    pl_redis_stats(r, &st);
    CHECK(st.connected);
    CHECK_EQ_INT(st.pending, 0);
    CHECK_EQ_INT(st.errors, 0);
    pl_redis_destroy(r);
    finish(&loop);
}

struct incr_state {
    int calls;
    long long expected;
    bool in_order;
};

static void on_incr(int status, redisReply *reply, void *ctx)
{
    struct incr_state *st = ctx;
    st->calls++;
    st->expected++;
    if (status != 0 || !reply || reply->type != REDIS_REPLY_INTEGER ||
        reply->integer != st->expected)
        st->in_order = false;
}

TEST(pipeline_in_order)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *r = client(&loop, redis_url, 2000, 5000);
    CHECK(connected(&loop, r));
    char k[128];
    key(k, sizeof k, "counter");
    struct result res;
    CHECK(CALL(&loop, r, &res, "DEL", k));

    enum { N = 10000 };
    struct incr_state st = {.in_order = true};
    int refused = 0;
    for (int i = 0; i < N; i++)
        refused += pl_redis_command(r, 2, ARGV("INCR", k), NULL, on_incr, &st) != 0;
    CHECK_EQ_INT(refused, 0);
    CHECK_EQ_INT(st.calls, 0); /* never from inside the call that queued them */
    struct pl_redis_stats stats;
    pl_redis_stats(r, &stats);
    CHECK_EQ_INT(stats.pending, N);

    CHECK(WAIT_UNTIL(&loop, st.calls == N, 20000));
    CHECK_EQ_INT(st.calls, N);
    CHECK(st.in_order);
    pl_redis_stats(r, &stats);
    CHECK_EQ_INT(stats.pending, 0);
    CHECK(CALL(&loop, r, &res, "GET", k));
    CHECK_STR(res.str, "10000");
    CHECK(CALL(&loop, r, &res, "DEL", k));
    pl_redis_destroy(r);
    finish(&loop);
}

TEST(binary_safe)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *r = client(&loop, redis_url, 2000, 2000);
    CHECK(connected(&loop, r));

    char k[160];
    int klen = snprintf(k, sizeof k, "%s:bin", tid);
    memcpy(k + klen, "\0\r\n$3\r\n", 8); /* a key with NUL and protocol-looking bytes */
    size_t key_len = (size_t)klen + 7;
    char value[256];
    for (int i = 0; i < 256; i++)
        value[i] = (char)i;

    struct result res = {0};
    const char *set_argv[] = {"SET", k, value};
    size_t set_lens[] = {3, key_len, sizeof value};
    CHECK_EQ_INT(pl_redis_command(r, 3, set_argv, set_lens, capture, &res), 0);
    CHECK(WAIT_UNTIL(&loop, res.calls == 1, 5000));
    CHECK_STR(res.str, "OK");

    memset(&res, 0, sizeof res);
    const char *get_argv[] = {"GET", k};
    size_t get_lens[] = {3, key_len};
    CHECK_EQ_INT(pl_redis_command(r, 2, get_argv, get_lens, capture, &res), 0);
    CHECK(WAIT_UNTIL(&loop, res.calls == 1, 5000));
    CHECK_EQ_INT(res.type, REDIS_REPLY_STRING);
    CHECK_EQ_INT(res.len, sizeof value);
    CHECK(memcmp(res.str, value, sizeof value) == 0);

    /* The same key given without lengths (strlen) stops at the NUL: a different key. */
    memset(&res, 0, sizeof res);
    CHECK_EQ_INT(pl_redis_command(r, 2, get_argv, NULL, capture, &res), 0);
    CHECK(WAIT_UNTIL(&loop, res.calls == 1, 5000));
    CHECK_EQ_INT(res.type, REDIS_REPLY_NIL);

    memset(&res, 0, sizeof res);
    const char *del_argv[] = {"DEL", k};
    CHECK_EQ_INT(pl_redis_command(r, 2, del_argv, get_lens, capture, &res), 0);
    CHECK(WAIT_UNTIL(&loop, res.calls == 1, 5000));
    CHECK_EQ_INT(res.integer, 1);
    pl_redis_destroy(r);
    finish(&loop);
}

TEST(error_reply)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *r = client(&loop, redis_url, 2000, 2000);
    CHECK(connected(&loop, r));
    char k[128];
    key(k, sizeof k, "text");
    struct result res;
    CHECK(CALL(&loop, r, &res, "SET", k, "not a number", "EX", "60"));
    CHECK(CALL(&loop, r, &res, "INCR", k));
    CHECK_EQ_INT(res.status, 0); /* an error reply is a reply */
    CHECK_EQ_INT(res.type, REDIS_REPLY_ERROR);
    CHECK(strncmp(res.str, "ERR", 3) == 0);
    CHECK(CALL(&loop, r, &res, "NO-SUCH-COMMAND", "x"));
    CHECK_EQ_INT(res.status, 0);
    CHECK_EQ_INT(res.type, REDIS_REPLY_ERROR);
    /* The connection is still fine afterwards. */
    CHECK(CALL(&loop, r, &res, "PING"));
    CHECK_STR(res.str, "PONG");
    /* Push-mode commands would wreck the request/response pipeline: refused up front. */
    memset(&res, 0, sizeof res);
    CHECK_EQ_INT(pl_redis_command(r, 2, ARGV("subscribe", "x"), NULL, capture, &res), PL_E_INVALID);
    CHECK_EQ_INT(pl_redis_command(r, 1, ARGV("MONITOR"), NULL, capture, &res), PL_E_INVALID);
    SLEEP(&loop, 50);
    CHECK_EQ_INT(res.calls, 0);
    CHECK(CALL(&loop, r, &res, "DEL", k));
    pl_redis_destroy(r);
    finish(&loop);
}

/* ---- scripts ---- */

static bool eval(uv_loop_t *loop, struct pl_redis *r, struct pl_redis_script *s, int nkeys,
                 const char **keys, int nargs, const char **args, struct result *res)
{
    memset(res, 0, sizeof *res);
    if (pl_redis_eval(r, s, nkeys, keys, NULL, nargs, args, NULL, capture, res) != 0) return false;
    return WAIT_UNTIL(loop, res->calls > 0, 5000) && res->calls == 1;
}

TEST(eval_and_noscript)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *r = client(&loop, redis_url, 2000, 2000);
    CHECK(connected(&loop, r));
    const char *lua = "redis.call('SET', KEYS[1], ARGV[1], 'EX', 60) "
                      "return redis.call('GET', KEYS[1]) .. ':' .. ARGV[2]";
    struct pl_redis_script *s = NULL;
    CHECK_EQ_INT(pl_redis_script_create(r, lua, &s), 0);
    char sha[41];
    pl_redis_sha1_hex(lua, strlen(lua), sha);
    char k[128];
    key(k, sizeof k, "scripted");
    struct result res;

    /* First call: Redis may or may not know the script yet; either way it answers. */
    CHECK(eval(&loop, r, s, 1, ARGV(k), 2, ARGV("v1", "tail"), &res));
    CHECK_EQ_INT(res.status, 0);
    CHECK_EQ_INT(res.type, REDIS_REPLY_STRING);
    CHECK_STR(res.str, "v1:tail");
    /* Our SHA1 is the one Redis uses. */
    CHECK(CALL(&loop, r, &res, "SCRIPT", "EXISTS", sha));
    CHECK_EQ_INT(res.elements, 1);
    CHECK_EQ_INT(res.first_int, 1);

    /* NOSCRIPT path: after a flush the eval still succeeds, and has loaded the script. */
    CHECK(CALL(&loop, r, &res, "SCRIPT", "FLUSH"));
    CHECK(CALL(&loop, r, &res, "SCRIPT", "EXISTS", sha));
    CHECK_EQ_INT(res.first_int, 0);
    CHECK(eval(&loop, r, s, 1, ARGV(k), 2, ARGV("v2", "again"), &res));
    CHECK_EQ_INT(res.status, 0);
    CHECK_STR(res.str, "v2:again");
    CHECK(CALL(&loop, r, &res, "SCRIPT", "EXISTS", sha));
    CHECK_EQ_INT(res.first_int, 1);

    /* Integers, no keys, many pipelined evals across a flush. */
    struct pl_redis_script *dbl = NULL;
    CHECK_EQ_INT(pl_redis_script_create(r, "return tonumber(ARGV[1]) * 2", &dbl), 0);
    CHECK(eval(&loop, r, dbl, 0, NULL, 1, ARGV("21"), &res));
    CHECK_EQ_INT(res.type, REDIS_REPLY_INTEGER);
    CHECK_EQ_INT(res.integer, 42);
    CHECK(CALL(&loop, r, &res, "SCRIPT", "FLUSH"));
    struct result many[20];
    memset(many, 0, sizeof many);
    char nums[20][8];
    for (int i = 0; i < 20; i++) {
        snprintf(nums[i], sizeof nums[i], "%d", i);
        const char *arg = nums[i];
        CHECK_EQ_INT(pl_redis_eval(r, dbl, 0, NULL, NULL, 1, &arg, NULL, capture, &many[i]), 0);
    }
    CHECK(WAIT_UNTIL(&loop, many[19].calls == 1, 5000));
    for (int i = 0; i < 20; i++) {
        CHECK_EQ_INT(many[i].calls, 1);
        CHECK_EQ_INT(many[i].type, REDIS_REPLY_INTEGER);
        CHECK_EQ_INT(many[i].integer, 2 * i);
    }

    /* A script Redis cannot compile: an error reply, exactly once, not a hang. */
    struct pl_redis_script *broken = NULL;
    CHECK_EQ_INT(pl_redis_script_create(r, "return +", &broken), 0);
    CHECK(eval(&loop, r, broken, 0, NULL, 0, NULL, &res));
    CHECK_EQ_INT(res.status, 0);
    CHECK_EQ_INT(res.type, REDIS_REPLY_ERROR);
    SLEEP(&loop, 50);
    CHECK_EQ_INT(res.calls, 1);

    CHECK(CALL(&loop, r, &res, "DEL", k));
    pl_redis_destroy(r);
    finish(&loop);
}

/* ---- failures ---- */

TEST(unreachable_then_retry)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int port = closed_port(&loop);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    struct pl_redis *r = client(&loop, url, 500, 500);
    SLEEP(&loop, 1000);

    struct result res = {0};
    CHECK_EQ_INT(pl_redis_command(r, 1, ARGV("PING"), NULL, capture, &res), PL_E_UNAVAILABLE);
    struct pl_redis_script *s = NULL;
    CHECK_EQ_INT(pl_redis_script_create(r, "return 1", &s), 0);
    CHECK_EQ_INT(pl_redis_eval(r, s, 0, NULL, NULL, 0, NULL, NULL, capture, &res),
                 PL_E_UNAVAILABLE);
    SLEEP(&loop, 20);
    CHECK_EQ_INT(res.calls, 0); /* refused commands never call back */
    struct pl_redis_stats st;
    pl_redis_stats(r, &st);
    CHECK(!st.connected);
    CHECK(!pl_redis_connected(r));
    CHECK(st.errors >= 2); /* it kept retrying */

    /* Something starts listening: the retries find it. */
    struct fake_server fs;
    CHECK_EQ_INT(fake_server_start(&fs, &loop, port), 0);
    CHECK(WAIT_UNTIL(&loop, pl_redis_connected(r), 5000));
    CHECK(fs.accepted >= 1);
    pl_redis_destroy(r);
    fake_server_stop(&fs);
    finish(&loop);
}

TEST(silent_server_connect_timeout)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct fake_server fs;
    CHECK_EQ_INT(fake_server_start(&fs, &loop, 0), 0);
    char url[80];
    snprintf(url, sizeof url, "redis://:pw@127.0.0.1:%d", fs.port);
    /* TCP connects, AUTH never gets an answer: the connect timer must cover the handshake. */
    struct pl_redis *r = client(&loop, url, 300, 300);
    CHECK(WAIT_UNTIL(&loop, fs.accepted >= 3, 5000));
    struct pl_redis_stats st;
    pl_redis_stats(r, &st);
    CHECK(!st.connected);
    CHECK(st.errors >= 2);
    pl_redis_destroy(r);
    fake_server_stop(&fs);
    finish(&loop);
}

/* A reset connection makes libuv report a poll error, which hiredis' own adapter ignores:
 * without our handling the client would sit on a dead socket until a command timed out. */
TEST(reset_by_peer_detected)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct fake_server fs;
    CHECK_EQ_INT(fake_server_start(&fs, &loop, 0), 0);
    char url[80];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", fs.port);
    struct pl_redis *r = client(&loop, url, 2000, 60000);
    CHECK(connected(&loop, r)); /* no AUTH or SELECT: ready once TCP is up */
    CHECK(WAIT_UNTIL(&loop, fs.npeers == 1, 5000));
    uv_tcp_close_reset(fs.peers[0], free_handle);
    fs.npeers = 0;
    CHECK(WAIT_UNTIL(&loop, !pl_redis_connected(r), 5000));
    struct pl_redis_stats st;
    pl_redis_stats(r, &st);
    CHECK_EQ_INT(st.errors, 1);
    CHECK(WAIT_UNTIL(&loop, pl_redis_connected(r) && fs.accepted == 2, 5000));
    pl_redis_destroy(r);
    fake_server_stop(&fs);
    finish(&loop);
}

TEST(command_timeout)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *r = client(&loop, redis_url, 2000, 300);
    CHECK(connected(&loop, r));
    char k[128];
    key(k, sizeof k, "never-filled");
    struct result blocked = {0}, behind = {0}, res;
    /* BLPOP blocks only this connection, so nobody else sharing the server notices. */
    CHECK_EQ_INT(pl_redis_command(r, 3, ARGV("BLPOP", k, "10"), NULL, capture, &blocked), 0);
    CHECK_EQ_INT(pl_redis_command(r, 1, ARGV("PING"), NULL, capture, &behind), 0);
    CHECK(WAIT_UNTIL(&loop, blocked.calls == 1 && behind.calls == 1, 5000));
    CHECK_EQ_INT(blocked.status, PL_E_TIMEOUT);
    CHECK(behind.status == PL_E_UNAVAILABLE || behind.status == PL_E_TIMEOUT);
    struct pl_redis_stats st;
    pl_redis_stats(r, &st);
    CHECK(st.errors >= 1);
    CHECK_EQ_INT(st.pending, 0);

    /* Recovery: a new connection, and the dead one's late answers never surface. */
    CHECK(connected(&loop, r));
    CHECK(CALL(&loop, r, &res, "RPUSH", k, "late"));
    CHECK(CALL(&loop, r, &res, "PING"));
    CHECK_STR(res.str, "PONG");
    SLEEP(&loop, 100);
    CHECK_EQ_INT(blocked.calls, 1);
    CHECK_EQ_INT(behind.calls, 1);
    CHECK(CALL(&loop, r, &res, "DEL", k));
    pl_redis_destroy(r);
    finish(&loop);
}

TEST(reconnect_after_kill)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *r = client(&loop, redis_url, 2000, 10000);
    struct pl_redis *admin = client(&loop, redis_url, 2000, 2000);
    CHECK(connected(&loop, r) && connected(&loop, admin));
    struct result res, inflight = {0};
    CHECK(CALL(&loop, r, &res, "CLIENT", "ID"));
    long long id = res.integer;
    char k[128], idbuf[32];
    snprintf(idbuf, sizeof idbuf, "%lld", id);
    struct pl_redis_stats before;
    pl_redis_stats(r, &before);

    /* A command in flight when the server closes the connection fails with UNAVAILABLE. */
    CHECK_EQ_INT(pl_redis_command(r, 3, ARGV("BLPOP", key(k, sizeof k, "kill"), "5"), NULL, capture,
                                  &inflight),
                 0);
    SLEEP(&loop, 50);
    CHECK(CALL(&loop, admin, &res, "CLIENT", "KILL", "ID", idbuf));
    CHECK_EQ_INT(res.integer, 1);
    CHECK(WAIT_UNTIL(&loop, inflight.calls == 1, 5000));
    CHECK_EQ_INT(inflight.status, PL_E_UNAVAILABLE);

    CHECK(WAIT_UNTIL(&loop, pl_redis_connected(r), 5000));
    struct pl_redis_stats after;
    pl_redis_stats(r, &after);
    CHECK(after.errors > before.errors);
    CHECK(CALL(&loop, r, &res, "CLIENT", "ID"));
    CHECK_EQ_INT(res.status, 0);
    CHECK(res.integer != id); /* really a new connection */
    pl_redis_destroy(r);
    pl_redis_destroy(admin);
    finish(&loop);
}

/* AUTH with a user (Redis 6 ACL) and SELECT, pipelined before the first command. */
TEST(auth_and_select)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *admin = client(&loop, redis_url, 2000, 2000);
    CHECK(connected(&loop, admin));
    char user[96], url[256], bad_url[256], k[128];
    snprintf(user, sizeof user, "%s-app", tid);
    struct result res;
    CHECK(
        CALL(&loop, admin, &res, "ACL", "SETUSER", user, "on", ">s3cr3t:@/x", "~*", "&*", "+@all"));
    CHECK_STR(res.str, "OK");
    /* A db other than REDIS_URL's, to see SELECT at work. */
    struct pl_redis_url base;
    CHECK_EQ_INT(pl_redis_url_parse(redis_url, &base), 0);
    int other_db = base.db == 5 ? 6 : 5;
    pl_redis_url_dispose(&base);
    char db[8];
    snprintf(db, sizeof db, "%d", other_db);
    url_with(url, sizeof url, user, "s3cr3t%3A%40%2Fx", other_db);
    url_with(bad_url, sizeof bad_url, user, "wrong", 0);

    struct pl_redis *r = client(&loop, url, 2000, 2000);
    struct pl_redis *bad = client(&loop, bad_url, 2000, 2000);
    CHECK(connected(&loop, r));
    CHECK(CALL(&loop, r, &res, "ACL", "WHOAMI"));
    CHECK_STR(res.str, user);
    CHECK(CALL(&loop, r, &res, "SET", key(k, sizeof k, "in-other-db"), "five", "EX", "60"));
    CHECK(CALL(&loop, admin, &res, "GET", k)); /* admin is on REDIS_URL's db */
    CHECK_EQ_INT(res.type, REDIS_REPLY_NIL);
    CHECK(CALL(&loop, admin, &res, "SELECT", db));
    CHECK(CALL(&loop, admin, &res, "GET", k));
    CHECK_STR(res.str, "five");
    CHECK(CALL(&loop, admin, &res, "DEL", k));

    /* Wrong password: never usable, failures counted, commands refused. */
    struct pl_redis_stats st;
    /* The refused AUTH arrives in its own time on a loaded machine: wait for it. */
    CHECK(WAIT_UNTIL(&loop, (pl_redis_stats(bad, &st), st.errors >= 1), 10000));
    pl_redis_stats(bad, &st);
    CHECK(!st.connected);
    CHECK(st.errors >= 1);
    CHECK_EQ_INT(pl_redis_command(bad, 1, ARGV("PING"), NULL, capture, &res), PL_E_UNAVAILABLE);

    pl_redis_destroy(bad);
    pl_redis_destroy(r);
    CHECK(CALL(&loop, admin, &res, "ACL", "DELUSER", user));
    pl_redis_destroy(admin);
    finish(&loop);
}

/* ---- destroy ---- */

TEST(destroy_with_pending)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *r = client(&loop, redis_url, 2000, 2000);
    CHECK(connected(&loop, r));
    char k[128];
    key(k, sizeof k, "destroy");
    enum { N = 50 };
    struct result res[N];
    memset(res, 0, sizeof res);
    CHECK_EQ_INT(pl_redis_command(r, 3, ARGV("BLPOP", k, "5"), NULL, capture, &res[0]), 0);
    for (int i = 1; i < N; i++)
        CHECK_EQ_INT(pl_redis_command(r, 2, ARGV("GET", k), NULL, capture, &res[i]), 0);
    pl_redis_destroy(r);
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(res[i].calls, 1);
        CHECK_EQ_INT(res[i].status, PL_E_CANCELLED);
    }
    finish(&loop);
    for (int i = 0; i < N; i++)
        CHECK_EQ_INT(res[i].calls, 1);
}

struct self_destroy {
    struct pl_redis *r;
    int calls;
    int status;
};

static void destroy_from_callback(int status, redisReply *reply, void *ctx)
{
    struct self_destroy *sd = ctx;
    (void)reply;
    sd->calls++;
    sd->status = status;
    pl_redis_destroy(sd->r);
}

TEST(destroy_inside_callbacks)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* From a reply callback, with more replies of the same read still to dispatch. */
    struct pl_redis *r = client(&loop, redis_url, 2000, 2000);
    CHECK(connected(&loop, r));
    struct self_destroy sd = {.r = r};
    struct result after[5];
    memset(after, 0, sizeof after);
    CHECK_EQ_INT(pl_redis_command(r, 1, ARGV("PING"), NULL, destroy_from_callback, &sd), 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(pl_redis_command(r, 1, ARGV("PING"), NULL, capture, &after[i]), 0);
    CHECK(WAIT_UNTIL(&loop, sd.calls == 1, 5000));
    CHECK_EQ_INT(sd.status, 0);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ_INT(after[i].calls, 1);
        CHECK_EQ_INT(after[i].status, PL_E_CANCELLED);
    }

    /* From a callback failed by a dropped connection (inside hiredis' own free). */
    struct pl_redis *r2 = client(&loop, redis_url, 2000, 200);
    CHECK(connected(&loop, r2));
    struct self_destroy sd2 = {.r = r2};
    CHECK_EQ_INT(
        pl_redis_command(r2, 3, ARGV("BLPOP", tid, "5"), NULL, destroy_from_callback, &sd2), 0);
    CHECK(WAIT_UNTIL(&loop, sd2.calls == 1, 5000));
    CHECK_EQ_INT(sd2.status, PL_E_TIMEOUT);

    /* While resolving or connecting, and while waiting out a backoff. */
    struct pl_redis *r3 = client(&loop, redis_url, 2000, 2000);
    pl_redis_destroy(r3);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", closed_port(&loop));
    struct pl_redis *r4 = client(&loop, url, 2000, 2000);
    SLEEP(&loop, 150);
    pl_redis_destroy(r4);
    finish(&loop);
}

/* ---- pub/sub ---- */

struct inbox {
    int messages;
    char channel[128];
    char payload[256];
    size_t payload_len;
    int up, down;
    struct pl_redis_sub *destroy_on_message;
};

static void on_message(const char *channel, size_t channel_len, const char *payload,
                       size_t payload_len, void *ctx)
{
    struct inbox *in = ctx;
    in->messages++;
    snprintf(in->channel, sizeof in->channel, "%.*s", (int)channel_len, channel);
    in->payload_len = payload_len < sizeof in->payload ? payload_len : sizeof in->payload;
    memcpy(in->payload, payload, in->payload_len);
    if (in->destroy_on_message) pl_redis_sub_destroy(in->destroy_on_message);
}

static void on_state(bool up, void *ctx)
{
    struct inbox *in = ctx;
    if (up)
        in->up++;
    else
        in->down++;
}

static struct pl_redis_sub *subscriber(uv_loop_t *loop, const char *url, struct inbox *in)
{
    struct pl_redis_sub_config cfg = {.url = url,
                                      .connect_timeout_ms = 2000,
                                      .on_message = on_message,
                                      .on_state = on_state,
                                      .ctx = in};
    struct pl_redis_sub *s = NULL;
    CHECK_EQ_INT(pl_redis_sub_create(loop, &cfg, &s), 0);
    return s;
}

/* PUBLISH; returns the number of receivers, or -1. */
static long long publish(uv_loop_t *loop, struct pl_redis *r, const char *channel,
                         const char *payload)
{
    struct result res;
    if (!CALL(loop, r, &res, "PUBLISH", channel, payload) || res.type != REDIS_REPLY_INTEGER)
        return -1;
    return res.integer;
}

/* After a subscribe on a live connection (no confirmation in the API): publish until a
 * subscriber exists, or give up. */
static long long publish_until_heard(uv_loop_t *loop, struct pl_redis *r, const char *channel,
                                     const char *payload)
{
    long long n = -1;
    for (int i = 0; i < 100 && n < 1; i++) {
        n = publish(loop, r, channel, payload);
        if (n < 1) SLEEP(loop, 20);
    }
    return n;
}

TEST(pubsub_basic)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct inbox in = {0};
    struct pl_redis *r = client(&loop, redis_url, 2000, 2000);
    struct pl_redis_sub *s = subscriber(&loop, redis_url, &in);
    char ch[128];
    snprintf(ch, sizeof ch, "%s:news", tid);
    CHECK_EQ_INT(pl_redis_subscribe(s, ch), 0); /* before the connection is up */
    CHECK_EQ_INT(pl_redis_subscribe(s, NULL), PL_E_INVALID);
    CHECK(connected(&loop, r));
    CHECK(WAIT_UNTIL(&loop, in.up == 1, 5000));
    CHECK(pl_redis_sub_connected(s));

    /* on_state(true) came after the SUBSCRIBE took effect: no polling needed. */
    CHECK_EQ_INT(publish(&loop, r, ch, "hello"), 1);
    CHECK(WAIT_UNTIL(&loop, in.messages == 1, 5000));
    CHECK_STR(in.channel, ch);
    CHECK(in.payload_len == 5 && memcmp(in.payload, "hello", 5) == 0);

    /* Binary payload, and subscribing twice delivers once. */
    CHECK_EQ_INT(pl_redis_subscribe(s, ch), 0);
    struct result res = {0};
    const char *argv[] = {"PUBLISH", ch, "a\0b\r\n"};
    size_t lens[] = {7, strlen(ch), 5};
    CHECK_EQ_INT(pl_redis_command(r, 3, argv, lens, capture, &res), 0);
    CHECK(WAIT_UNTIL(&loop, in.messages == 2 && res.calls == 1, 5000));
    CHECK_EQ_INT(res.integer, 1);
    CHECK(in.payload_len == 5 && memcmp(in.payload, "a\0b\r\n", 5) == 0);
    SLEEP(&loop, 50);
    CHECK_EQ_INT(in.messages, 2);

    /* Unsubscribe from everything, then subscribe again at once (hiredis 0.14 trips on the
     * subscription count reaching zero), and to a second channel. */
    CHECK_EQ_INT(pl_redis_unsubscribe(s, ch), 0);
    CHECK_EQ_INT(pl_redis_unsubscribe(s, ch), 0);
    char other[128];
    snprintf(other, sizeof other, "%s:other", tid);
    CHECK_EQ_INT(pl_redis_subscribe(s, other), 0);
    CHECK(publish_until_heard(&loop, r, other, "o") == 1);
    CHECK(WAIT_UNTIL(&loop, in.messages == 3, 5000));
    CHECK_STR(in.channel, other);
    CHECK_EQ_INT(publish(&loop, r, ch, "gone"), 0);
    CHECK_EQ_INT(pl_redis_subscribe(s, ch), 0);
    CHECK(publish_until_heard(&loop, r, ch, "back") == 1);
    CHECK(WAIT_UNTIL(&loop, in.messages == 4, 5000));
    CHECK(in.payload_len == 4 && memcmp(in.payload, "back", 4) == 0);

    /* Unsubscribe and subscribe again within one round trip: the unsubscribe confirmation
     * arrives after the new SUBSCRIBE was sent and must not cancel it. */
    CHECK_EQ_INT(pl_redis_unsubscribe(s, other), 0);
    CHECK_EQ_INT(pl_redis_subscribe(s, other), 0);
    CHECK(publish_until_heard(&loop, r, other, "again") == 1);
    CHECK(WAIT_UNTIL(&loop, in.messages == 5, 5000));
    CHECK(in.payload_len == 5 && memcmp(in.payload, "again", 5) == 0);

    CHECK_EQ_INT(in.down, 0);
    pl_redis_sub_destroy(s);
    pl_redis_destroy(r);
    finish(&loop);
    CHECK_EQ_INT(in.up, 1);
}

TEST(psubscribe)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct inbox in = {0};
    struct pl_redis *r = client(&loop, redis_url, 2000, 2000);
    struct pl_redis_sub *s = subscriber(&loop, redis_url, &in);
    CHECK(connected(&loop, r));
    CHECK(WAIT_UNTIL(&loop, in.up == 1, 5000));
    char pattern[128], ch[128];
    snprintf(pattern, sizeof pattern, "%s:room.*", tid);
    snprintf(ch, sizeof ch, "%s:room.42", tid);
    CHECK_EQ_INT(pl_redis_psubscribe(s, pattern), 0); /* on a live connection */
    CHECK(publish_until_heard(&loop, r, ch, "hi") == 1);
    CHECK(WAIT_UNTIL(&loop, in.messages >= 1, 5000));
    CHECK_STR(in.channel, ch); /* the channel, not the pattern */
    CHECK(in.payload_len == 2 && memcmp(in.payload, "hi", 2) == 0);
    pl_redis_sub_destroy(s);
    pl_redis_destroy(r);
    finish(&loop);
}

TEST(resubscribe_after_kill)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_redis *admin = client(&loop, redis_url, 2000, 2000);
    CHECK(connected(&loop, admin));
    /* The subscriber logs in as a user of its own, so the kill hits nobody else's. */
    char user[96], url[256];
    snprintf(user, sizeof user, "%s-sub", tid);
    struct result res;
    CHECK(CALL(&loop, admin, &res, "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all"));
    url_with(url, sizeof url, user, "pw", 0);

    struct inbox in = {0};
    struct pl_redis_sub *s = subscriber(&loop, url, &in);
    char ch[128], pattern[128], pch[128];
    snprintf(ch, sizeof ch, "%s:live", tid);
    snprintf(pattern, sizeof pattern, "%s:p:*", tid);
    snprintf(pch, sizeof pch, "%s:p:1", tid);
    CHECK_EQ_INT(pl_redis_subscribe(s, ch), 0);
    CHECK_EQ_INT(pl_redis_psubscribe(s, pattern), 0);
    CHECK(WAIT_UNTIL(&loop, in.up == 1, 5000));
    CHECK_EQ_INT(publish(&loop, admin, ch, "one"), 1);
    CHECK(WAIT_UNTIL(&loop, in.messages == 1, 5000));

    CHECK(CALL(&loop, admin, &res, "CLIENT", "KILL", "USER", user));
    CHECK_EQ_INT(res.integer, 1);
    CHECK(WAIT_UNTIL(&loop, in.down == 1, 5000));
    CHECK(WAIT_UNTIL(&loop, in.up == 2, 5000));
    /* on_state(true) means subscribed again: the first publish is heard. */
    CHECK_EQ_INT(publish(&loop, admin, ch, "two"), 1);
    CHECK(WAIT_UNTIL(&loop, in.messages == 2, 5000));
    CHECK(in.payload_len == 3 && memcmp(in.payload, "two", 3) == 0);
    CHECK_EQ_INT(publish(&loop, admin, pch, "three"), 1);
    CHECK(WAIT_UNTIL(&loop, in.messages == 3, 5000));
    CHECK_STR(in.channel, pch);

    /* Destroy from inside on_message, with a second message right behind the first. */
    in.destroy_on_message = s;
    struct result p4 = {0}, p5 = {0};
    CHECK_EQ_INT(pl_redis_command(admin, 3, ARGV("PUBLISH", ch, "four"), NULL, capture, &p4), 0);
    CHECK_EQ_INT(pl_redis_command(admin, 3, ARGV("PUBLISH", ch, "five"), NULL, capture, &p5), 0);
    CHECK(WAIT_UNTIL(&loop, p4.calls == 1 && p5.calls == 1, 5000));
    CHECK(p4.integer == 1 && p5.integer == 1); /* both reached the subscriber's socket */
    CHECK(WAIT_UNTIL(&loop, in.messages >= 4, 5000));
    SLEEP(&loop, 50);
    CHECK_EQ_INT(in.messages, 4);

    CHECK(CALL(&loop, admin, &res, "ACL", "DELUSER", user));
    pl_redis_destroy(admin);
    finish(&loop);
}

int main(void)
{
    redis_url = test_env("REDIS_URL");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(tid, sizeof tid, "pltest-%d-%lx", (int)getpid(), (unsigned long)ts.tv_nsec);

    RUN(create_invalid);
    RUN(set_get);
    RUN(pipeline_in_order);
    RUN(binary_safe);
    RUN(error_reply);
    RUN(eval_and_noscript);
    RUN(unreachable_then_retry);
    RUN(silent_server_connect_timeout);
    RUN(reset_by_peer_detected);
    RUN(command_timeout);
    RUN(reconnect_after_kill);
    RUN(auth_and_select);
    RUN(destroy_with_pending);
    RUN(destroy_inside_callbacks);
    RUN(pubsub_basic);
    RUN(psubscribe);
    RUN(resubscribe_after_kill);
    return TEST_REPORT();
}
