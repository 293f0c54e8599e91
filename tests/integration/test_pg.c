/* lib/pg against a real Postgres: pipelining, errors and atomicity of batches, the wait
 * queue, reconnects, destruction, migrations and the service role's rights. Connects as the
 * superuser (PULSE_TEST_ADMIN_URL: it creates databases and kills backends); the rights are
 * tested with the owner (PULSE_MIGRATE_DATABASE_URL) and service (DATABASE_URL) roles. */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl/metrics.h"
#include "pl/pg.h"
#include "test.h"

#ifndef PULSE_SOURCE_DIR
#define PULSE_SOURCE_DIR "."
#endif

static const char *db_url;

/* ---- helpers ---------------------------------------------------------------------------- */

typedef bool (*pred_fn)(void *arg);

struct until {
    uv_loop_t *loop;
    pred_fn pred;
    void *arg;
    uint64_t deadline;
};

static void until_tick(uv_timer_t *t)
{
    struct until *u = t->data;
    if (u->pred(u->arg) || uv_now(u->loop) >= u->deadline) uv_stop(u->loop);
}

/* Runs the loop until pred(arg) holds or timeout_ms pass; returns pred(arg). */
static bool run_until(uv_loop_t *loop, pred_fn pred, void *arg, int timeout_ms)
{
    uv_update_time(loop);
    struct until u = {loop, pred, arg, uv_now(loop) + (uint64_t)timeout_ms};
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    tick.data = &u;
    uv_timer_start(&tick, until_tick, 2, 2);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return pred(arg);
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void run_for(uv_loop_t *loop, int ms)
{
    run_until(loop, never, NULL, ms);
}

struct count_target {
    const int *count;
    int target;
};

static bool count_reached(void *arg)
{
    struct count_target *ct = arg;
    return *ct->count >= ct->target;
}

static bool wait_count(uv_loop_t *loop, const int *count, int target, int timeout_ms)
{
    struct count_target ct = {count, target};
    return run_until(loop, count_reached, &ct, timeout_ms);
}

struct conn_target {
    struct pl_pg_pool *pool;
    int connected;
};

static bool pool_connected(void *arg)
{
    struct conn_target *ct = arg;
    struct pl_pg_stats st;
    pl_pg_pool_stats(ct->pool, &st);
    return st.connected >= ct->connected;
}

static bool wait_connected(uv_loop_t *loop, struct pl_pg_pool *pool, int n, int timeout_ms)
{
    struct conn_target ct = {pool, n};
    return run_until(loop, pool_connected, &ct, timeout_ms);
}

/* Destroys the pool, lets its handles close, and checks nothing was left behind. */
static void finish(uv_loop_t *loop, struct pl_pg_pool *pool)
{
    if (pool) pl_pg_pool_destroy(pool);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(loop), 0);
}

static struct pl_pg_config config(const char *conninfo, int size)
{
    return (struct pl_pg_config){
        .conninfo = conninfo,
        .size = size,
        .max_inflight = 128,
        .max_waiters = 4096,
        .wait_timeout_ms = 10000,
        .connect_timeout_ms = 5000,
        .query_timeout_ms = 0,
    };
}

static struct pl_pg_pool *make_pool(uv_loop_t *loop, const struct pl_pg_config *cfg)
{
    struct pl_pg_pool *pool = NULL;
    int rc = pl_pg_pool_create(loop, cfg, &pool);
    CHECK_EQ_INT(rc, 0);
    if (rc) abort();
    return pool;
}

static void prepare(struct pl_pg_pool *pool, const char *name, const char *sql, int nparams)
{
    CHECK_EQ_INT(pl_pg_pool_prepare(pool, name, sql, nparams), 0);
}

/* The conninfo as key=value pairs with `key` replaced: works for URIs and key=value input. */
static char *conninfo_with(const char *url, const char *key, const char *val)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &errmsg);
    if (!opts) {
        fprintf(stderr, "bad DATABASE_URL: %s\n", errmsg ? errmsg : "?");
        exit(1);
    }
    size_t cap = 4096, len = 0;
    char *out = calloc(1, cap);
    for (PQconninfoOption *o = opts;; o++) {
        const char *k = o->keyword ? o->keyword : key;
        const char *v = o->keyword ? o->val : val;
        if (o->keyword && (!v || strcmp(k, key) == 0)) continue;
        len += (size_t)snprintf(out + len, cap - len, "%s='", k);
        for (const char *p = v; *p && len + 4 < cap; p++) {
            if (*p == '\'' || *p == '\\') out[len++] = '\\';
            out[len++] = *p;
        }
        len += (size_t)snprintf(out + len, cap - len, "' ");
        if (!o->keyword) break;
    }
    PQconninfoFree(opts);
    return out;
}

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static PGconn *admin_connect(const char *conninfo)
{
    PGconn *pg = PQconnectdb(conninfo);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "admin connect failed: %s", PQerrorMessage(pg));
        exit(1);
    }
    PQsetNoticeProcessor(pg, quiet, NULL);
    return pg;
}

/* Runs sql on its own connection; returns the first cell (static) or NULL on error. */
static const char *admin_query(const char *conninfo, const char *sql)
{
    static char cell[256];
    PGconn *pg = admin_connect(conninfo);
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    const char *out = NULL;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        snprintf(cell, sizeof cell, "%s",
                 PQntuples(res) > 0 && PQnfields(res) > 0 ? PQgetvalue(res, 0, 0) : "");
        out = cell;
    } else {
        fprintf(stderr, "admin query failed: %s: %s", sql, PQresultErrorMessage(res));
    }
    PQclear(res);
    PQfinish(pg);
    return out;
}

/* A TCP port on 127.0.0.1 with nothing listening. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
        abort();
    close(fd);
    return ntohs(a.sin_port);
}

/* What a callback saw. */
struct res {
    int calls;
    int status;
    int n;
    int rstatus[16]; /* ExecStatusType, -1 for a NULL result */
    char sqlstate[16][6];
    char value[16][64]; /* first cell */
    bool inside_exec;
};

static bool in_exec; /* set around pl_pg_exec calls to catch callbacks fired from inside */

static void res_cb(int status, PGresult **results, int n, void *ctx)
{
    struct res *r = ctx;
    r->calls++;
    r->status = status;
    r->n = n;
    r->inside_exec = r->inside_exec || in_exec;
    for (int i = 0; i < n && i < 16; i++) {
        const PGresult *pr = results[i];
        r->rstatus[i] = pr ? (int)PQresultStatus(pr) : -1;
        snprintf(r->sqlstate[i], sizeof r->sqlstate[i], "%s", pl_pg_error_sqlstate(pr));
        r->value[i][0] = '\0';
        if (pr && PQresultStatus(pr) == PGRES_TUPLES_OK && PQntuples(pr) > 0)
            snprintf(r->value[i], sizeof r->value[i], "%s", PQgetvalue(pr, 0, 0));
    }
}

static int exec1(struct pl_pg_pool *pool, const char *name, int nparams, const char *const *values,
                 struct res *r)
{
    in_exec = true;
    int rc = pl_pg_exec1(pool, name, nparams, values, res_cb, r);
    in_exec = false;
    return rc;
}

static int exec_n(struct pl_pg_pool *pool, const struct pl_pg_stmt *stmts, int n, struct res *r)
{
    in_exec = true;
    int rc = pl_pg_exec(pool, stmts, n, res_cb, r);
    in_exec = false;
    return rc;
}

/* ---- tests ------------------------------------------------------------------------------ */

TEST(single_query)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_pg_config cfg = config(db_url, 2);
    struct pl_pg_pool *pool = make_pool(&loop, &cfg);
    prepare(pool, "add", "SELECT $1::int + $2::int", 2);
    prepare(pool, "nulls", "SELECT $1::text IS NULL, length($2::text)", 2);
    CHECK_EQ_INT(pl_pg_pool_prepare(pool, "add", "SELECT 1", 0), PL_E_INVALID);

    struct res r = {0};
    char a[8] = "40";
    const char *v[] = {a, "2"};
    CHECK_EQ_INT(exec1(pool, "add", 2, v, &r), 0);
    strcpy(a, "1000"); /* the pool copied the parameters */
    CHECK_EQ_INT(r.calls, 0);
    CHECK(wait_count(&loop, &r.calls, 1, 10000));
    CHECK_EQ_INT(r.calls, 1);
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_INT(r.rstatus[0], PGRES_TUPLES_OK);
    CHECK_STR(r.value[0], "42");
    CHECK(!r.inside_exec);
    CHECK(pl_pg_pool_ready(pool));

    /* SQL NULL and explicit lengths (not NUL-terminated input). */
    struct res rn = {0};
    const char *nv[] = {NULL, "abcdef"};
    const int lens[] = {0, 3};
    struct pl_pg_stmt s = {.name = "nulls", .nparams = 2, .values = nv, .lengths = lens};
    CHECK_EQ_INT(exec_n(pool, &s, 1, &rn), 0);
    CHECK(wait_count(&loop, &rn.calls, 1, 10000));
    CHECK_EQ_INT(rn.status, 0);
    CHECK_STR(rn.value[0], "t");

    /* Misuse is refused up front, without a callback. */
    struct res bad = {0};
    CHECK_EQ_INT(exec1(pool, "nope", 0, NULL, &bad), PL_E_INVALID);
    CHECK_EQ_INT(exec1(pool, "add", 1, v, &bad), PL_E_INVALID);
    CHECK_EQ_INT(exec_n(pool, &s, 0, &bad), PL_E_INVALID);
    struct pl_pg_stmt many[17];
    for (int i = 0; i < 17; i++)
        many[i] = (struct pl_pg_stmt){.name = "add", .nparams = 2, .values = v};
    CHECK_EQ_INT(exec_n(pool, many, 17, &bad), PL_E_INVALID);
    CHECK_EQ_INT(pl_pg_exec1(pool, "add", 2, v, NULL, NULL), PL_E_INVALID);
    run_for(&loop, 50);
    CHECK_EQ_INT(bad.calls, 0);

    /* 16 statements is the maximum and all come back in order. */
    struct res r16 = {0};
    char nums[16][8];
    const char *vals16[16][2];
    for (int i = 0; i < 16; i++) {
        snprintf(nums[i], sizeof nums[i], "%d", i);
        vals16[i][0] = nums[i];
        vals16[i][1] = "100";
        many[i].values = vals16[i];
    }
    CHECK_EQ_INT(exec_n(pool, many, 16, &r16), 0);
    CHECK(wait_count(&loop, &r16.calls, 1, 10000));
    CHECK_EQ_INT(r16.status, 0);
    CHECK_EQ_INT(r16.n, 16);
    for (int i = 0; i < 16; i++) {
        char want[8];
        snprintf(want, sizeof want, "%d", 100 + i);
        CHECK_STR(r16.value[i], want);
    }

    struct pl_pg_stats st;
    pl_pg_pool_stats(pool, &st);
    CHECK_EQ_INT(st.size, 2);
    CHECK_EQ_INT(st.inflight, 0);
    CHECK_EQ_INT(st.waiting, 0);
    CHECK_EQ_INT((int)st.errors, 0);
    finish(&loop, pool);
}

TEST(invalid_config)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_pg_pool *pool = (struct pl_pg_pool *)&loop; /* must be overwritten */
    struct pl_pg_config cfg = config(db_url, 0);
    CHECK_EQ_INT(pl_pg_pool_create(&loop, &cfg, &pool), PL_E_INVALID);
    CHECK(pool == NULL);
    cfg = config("host='unterminated", 1);
    CHECK_EQ_INT(pl_pg_pool_create(&loop, &cfg, &pool), PL_E_INVALID);
    cfg = config(db_url, 1);
    cfg.max_inflight = 0;
    CHECK_EQ_INT(pl_pg_pool_create(&loop, &cfg, &pool), PL_E_INVALID);
    finish(&loop, NULL);
}

struct pipe_state {
    struct pl_pg_pool *pool;
    int calls;
    int next_seq;
    bool in_order;
    bool values_ok;
    int max_inflight_seen;
    int failures;
};

struct pipe_slot {
    struct pipe_state *ps;
    int i;
};

static void pipe_cb(int status, PGresult **results, int n, void *ctx)
{
    struct pipe_slot *slot = ctx;
    struct pipe_state *ps = slot->ps;
    ps->calls++;
    if (slot->i != ps->next_seq) ps->in_order = false;
    ps->next_seq = slot->i + 1;
    if (status != 0 || n != 1) {
        ps->failures++;
        return;
    }
    if (strtol(PQgetvalue(results[0], 0, 0), NULL, 10) != 2L * slot->i) ps->values_ok = false;
    struct pl_pg_stats st;
    pl_pg_pool_stats(ps->pool, &st);
    if (st.inflight > ps->max_inflight_seen) ps->max_inflight_seen = st.inflight;
}

static void run_pipelined(int size, bool check_order)
{
    enum { N = 1000 };
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_pg_config cfg = config(db_url, size);
    cfg.max_inflight = 128;
    cfg.max_waiters = 2 * N;
    struct pl_pg_pool *pool = make_pool(&loop, &cfg);
    prepare(pool, "double", "SELECT $1::int * 2", 1);

    static struct pipe_slot slots[N];
    struct pipe_state ps = {.pool = pool, .in_order = true, .values_ok = true};
    uint64_t t0_ms = uv_now(&loop);
    char buf[16]; /* one buffer for every call: each batch must have copied it */
    const char *v[] = {buf};
    in_exec = true;
    for (int i = 0; i < N; i++) {
        slots[i] = (struct pipe_slot){&ps, i};
        snprintf(buf, sizeof buf, "%d", i);
        CHECK_EQ_INT(pl_pg_exec1(pool, "double", 1, v, pipe_cb, &slots[i]), 0);
    }
    in_exec = false;
    /* All 1000 are queued before the loop has run once. */
    CHECK_EQ_INT(ps.calls, 0);
    struct pl_pg_stats st;
    pl_pg_pool_stats(pool, &st);
    CHECK_EQ_INT(st.waiting, N);

    CHECK(wait_count(&loop, &ps.calls, N, 60000));
    CHECK_EQ_INT(ps.calls, N);
    CHECK_EQ_INT(ps.failures, 0);
    CHECK(ps.values_ok);
    if (check_order) CHECK(ps.in_order);
    /* Many batches shared the wire at once: they were pipelined, not sent one by one. */
    CHECK(ps.max_inflight_seen > 1);
    pl_pg_pool_stats(pool, &st);
    CHECK_EQ_INT(st.inflight, 0);
    CHECK_EQ_INT(st.waiting, 0);
    CHECK(st.wait_count > 0); /* more than size * max_inflight had to wait */
    /* Seconds, not milliseconds: no batch waited longer than the whole run (uv_now counts
     * whole milliseconds: one more for the rounding). */
    uv_update_time(&loop);
    double run_s = (double)(uv_now(&loop) - t0_ms + 1) / 1000.0;
    CHECK(st.wait_seconds_sum <= (double)st.wait_count * run_s);
    finish(&loop, pool);
}

TEST(pipelined_1000_in_order)
{
    run_pipelined(1, true);
}
TEST(pipelined_1000_four_connections)
{
    run_pipelined(4, false);
}

TEST(failing_statement_isolated)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_pg_config cfg = config(db_url, 1);
    struct pl_pg_pool *pool = make_pool(&loop, &cfg);
    prepare(pool, "div", "SELECT 10 / $1::int", 1);

    struct res r[3] = {{0}};
    const char *two[] = {"2"}, *zero[] = {"0"}, *five[] = {"5"};
    CHECK_EQ_INT(exec1(pool, "div", 1, two, &r[0]), 0);
    CHECK_EQ_INT(exec1(pool, "div", 1, zero, &r[1]), 0);
    CHECK_EQ_INT(exec1(pool, "div", 1, five, &r[2]), 0);

    /* In one batch: ok, failing, ok. */
    struct res rb = {0};
    struct pl_pg_stmt b[3] = {
        {.name = "div", .nparams = 1, .values = two},
        {.name = "div", .nparams = 1, .values = zero},
        {.name = "div", .nparams = 1, .values = five},
    };
    CHECK_EQ_INT(exec_n(pool, b, 3, &rb), 0);
    struct res after = {0};
    CHECK_EQ_INT(exec1(pool, "div", 1, five, &after), 0);

    CHECK(wait_count(&loop, &after.calls, 1, 10000));
    CHECK_EQ_INT(r[0].status, 0);
    CHECK_STR(r[0].value[0], "5");
    CHECK_EQ_INT(r[1].status, PL_E_DB);
    CHECK_EQ_INT(r[1].rstatus[0], PGRES_FATAL_ERROR);
    CHECK_STR(r[1].sqlstate[0], "22012");
    CHECK_EQ_INT(r[2].status, 0);
    CHECK_STR(r[2].value[0], "2");

    CHECK_EQ_INT(rb.status, PL_E_DB);
    CHECK_EQ_INT(rb.n, 3);
    CHECK_EQ_INT(rb.rstatus[0], PGRES_TUPLES_OK);
    CHECK_STR(rb.value[0], "5");
    CHECK_EQ_INT(rb.rstatus[1], PGRES_FATAL_ERROR);
    CHECK_STR(rb.sqlstate[1], "22012");
    CHECK_EQ_INT(rb.rstatus[2], -1);

    CHECK_EQ_INT(after.status, 0);
    CHECK_STR(after.value[0], "2");
    CHECK_STR(pl_pg_error_sqlstate(NULL), "");

    struct pl_pg_stats st;
    pl_pg_pool_stats(pool, &st);
    CHECK_EQ_INT((int)st.errors, 0); /* SQL errors are not connection failures */
    CHECK_EQ_INT(st.connected, 1);
    finish(&loop, pool);
}

TEST(bad_statement_does_not_spoil_others)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_pg_config cfg = config(db_url, 1);
    struct pl_pg_pool *pool = make_pool(&loop, &cfg);
    prepare(pool, "first", "SELECT 1", 0);
    prepare(pool, "broken", "SELEC 1", 0);
    prepare(pool, "last", "SELECT 3", 0);
    struct res r[3] = {{0}};
    CHECK_EQ_INT(exec1(pool, "first", 0, NULL, &r[0]), 0);
    CHECK_EQ_INT(exec1(pool, "broken", 0, NULL, &r[1]), 0);
    CHECK_EQ_INT(exec1(pool, "last", 0, NULL, &r[2]), 0);
    CHECK(wait_count(&loop, &r[2].calls, 1, 10000));
    CHECK_EQ_INT(r[0].status, 0);
    CHECK_EQ_INT(r[1].status, PL_E_DB);
    CHECK_STR(r[1].sqlstate[0], "26000"); /* prepared statement does not exist */
    CHECK_EQ_INT(r[2].status, 0);
    CHECK_STR(r[2].value[0], "3");

    /* Registered after the connection is up: prepared there before first use. */
    prepare(pool, "late", "SELECT 'late'::text", 0);
    struct res rl = {0};
    CHECK_EQ_INT(exec1(pool, "late", 0, NULL, &rl), 0);
    CHECK(wait_count(&loop, &rl.calls, 1, 10000));
    CHECK_EQ_INT(rl.status, 0);
    CHECK_STR(rl.value[0], "late");
    finish(&loop, pool);
}

/* A statement prepared before its table exists (a replica started before the migration
 * job) works once the table is there: it is prepared again before its next use. */
TEST(statement_prepared_again_after_schema_appears)
{
    char table[64], sql[256];
    snprintf(table, sizeof table, "pl_test_late_%d", (int)getpid());
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", table);
    CHECK(admin_query(db_url, sql) != NULL);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_pg_config cfg = config(db_url, 1);
    struct pl_pg_pool *pool = make_pool(&loop, &cfg);
    snprintf(sql, sizeof sql, "SELECT count(*)::text FROM %s", table);
    prepare(pool, "late_table", sql, 0);
    struct res r1 = {0};
    CHECK_EQ_INT(exec1(pool, "late_table", 0, NULL, &r1), 0);
    CHECK(wait_count(&loop, &r1.calls, 1, 10000));
    CHECK_EQ_INT(r1.status, PL_E_DB);
    snprintf(sql, sizeof sql, "CREATE TABLE %s (id int)", table);
    CHECK(admin_query(db_url, sql) != NULL);
    struct res r2 = {0};
    CHECK_EQ_INT(exec1(pool, "late_table", 0, NULL, &r2), 0);
    CHECK(wait_count(&loop, &r2.calls, 1, 10000));
    CHECK_EQ_INT(r2.status, 0);
    CHECK_STR(r2.value[0], "0");
    finish(&loop, pool);
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", table);
    CHECK(admin_query(db_url, sql) != NULL);
}

TEST(batch_is_atomic)
{
    char table[64], sql[256];
    snprintf(table, sizeof table, "pl_test_atomic_%d", (int)getpid());
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s; CREATE TABLE %s (id int PRIMARY KEY)",
             table, table);
    CHECK(admin_query(db_url, sql) != NULL);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_pg_config cfg = config(db_url, 2);
    struct pl_pg_pool *pool = make_pool(&loop, &cfg);
    snprintf(sql, sizeof sql, "INSERT INTO %s (id) VALUES ($1::int)", table);
    prepare(pool, "ins", sql, 1);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    prepare(pool, "count", sql, 0);
    prepare(pool, "div", "SELECT 1 / $1::int", 1);

    const char *one[] = {"1"}, *two[] = {"2"}, *zero[] = {"0"};
    struct pl_pg_stmt failing[2] = {
        {.name = "ins", .nparams = 1, .values = one},
        {.name = "div", .nparams = 1, .values = zero},
    };
    struct res rf = {0};
    CHECK_EQ_INT(exec_n(pool, failing, 2, &rf), 0);
    CHECK(wait_count(&loop, &rf.calls, 1, 10000));
    CHECK_EQ_INT(rf.status, PL_E_DB);
    CHECK_EQ_INT(rf.rstatus[0], PGRES_COMMAND_OK); /* the insert ran... */
    CHECK_STR(rf.sqlstate[1], "22012");

    struct res rc = {0};
    CHECK_EQ_INT(exec1(pool, "count", 0, NULL, &rc), 0);
    CHECK(wait_count(&loop, &rc.calls, 1, 10000));
    CHECK_EQ_INT(rc.status, 0);
    CHECK_STR(rc.value[0], "0"); /* ...and was rolled back with its batch */

    struct pl_pg_stmt ok[2] = {
        {.name = "ins", .nparams = 1, .values = one},
        {.name = "ins", .nparams = 1, .values = two},
    };
    struct res ro = {0};
    CHECK_EQ_INT(exec_n(pool, ok, 2, &ro), 0);
    CHECK(wait_count(&loop, &ro.calls, 1, 10000));
    CHECK_EQ_INT(ro.status, 0);

    /* A unique violation in the second statement takes the first one's row with it. */
    const char *three[] = {"3"};
    struct pl_pg_stmt dup[2] = {
        {.name = "ins", .nparams = 1, .values = three},
        {.name = "ins", .nparams = 1, .values = one},
    };
    struct res rd = {0};
    CHECK_EQ_INT(exec_n(pool, dup, 2, &rd), 0);
    CHECK(wait_count(&loop, &rd.calls, 1, 10000));
    CHECK_EQ_INT(rd.status, PL_E_DB);
    CHECK_STR(rd.sqlstate[1], "23505");

    struct res rc2 = {0};
    CHECK_EQ_INT(exec1(pool, "count", 0, NULL, &rc2), 0);
    CHECK(wait_count(&loop, &rc2.calls, 1, 10000));
    CHECK_STR(rc2.value[0], "2");
    finish(&loop, pool);

    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    CHECK(admin_query(db_url, sql) != NULL);
}

TEST(unreachable_server_queue)
{
    char conninfo[128];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d dbname=x user=x", closed_port());
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_pg_config cfg = config(conninfo, 1);
    cfg.max_waiters = 3;
    cfg.wait_timeout_ms = 300;
    struct pl_pg_pool *pool = make_pool(&loop, &cfg);
    prepare(pool, "one", "SELECT 1", 0);

    struct res r[5] = {{0}};
    uint64_t start = uv_hrtime();
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(exec1(pool, "one", 0, NULL, &r[i]), 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(r[i].calls, 0); /* never from inside pl_pg_exec */
    struct pl_pg_stats st;
    pl_pg_pool_stats(pool, &st);
    CHECK_EQ_INT(st.waiting, 3);

    /* The two over max_waiters are refused on the next loop turn, long before the wait
     * timeout: by the time they are answered, the three waiters are still waiting. */
    CHECK(wait_count(&loop, &r[4].calls, 1, 5000));
    CHECK_EQ_INT(r[3].calls, 1);
    CHECK_EQ_INT(r[3].status, PL_E_UNAVAILABLE);
    CHECK_EQ_INT(r[4].status, PL_E_UNAVAILABLE);
    CHECK_EQ_INT(r[0].calls, 0);

    CHECK(wait_count(&loop, &r[2].calls, 1, 10000));
    uint64_t elapsed_ms = (uv_hrtime() - start) / 1000000;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(r[i].calls, 1);
        CHECK_EQ_INT(r[i].status, PL_E_UNAVAILABLE);
        CHECK_EQ_INT(r[i].n, 1);
        CHECK_EQ_INT(r[i].rstatus[0], -1);
        CHECK(!r[i].inside_exec);
    }
    CHECK(elapsed_ms >= 250); /* they waited for the timeout, not refused outright */
    pl_pg_pool_stats(pool, &st);
    CHECK_EQ_INT(st.connected, 0);
    CHECK_EQ_INT(st.waiting, 0);
    CHECK(st.errors >= 1);
    CHECK(st.wait_count >= 3);
    CHECK(!pl_pg_pool_ready(pool));
    finish(&loop, pool);
}

static void on_silent_connection(uv_stream_t *server, int status)
{
    (void)server;
    (void)status; /* never accepted, never answered */
}

TEST(connect_timeout)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_tcp_t server;
    uv_tcp_init(&loop, &server);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    CHECK_EQ_INT(uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0), 0);
    CHECK_EQ_INT(uv_listen((uv_stream_t *)&server, 16, on_silent_connection), 0);
    int alen = sizeof addr;
    uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &alen);
    char conninfo[128];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d dbname=x user=x",
             ntohs(addr.sin_port));

    struct pl_pg_config cfg = config(conninfo, 1);
    cfg.connect_timeout_ms = 200;
    cfg.wait_timeout_ms = 1000;
    struct pl_pg_pool *pool = make_pool(&loop, &cfg);
    prepare(pool, "one", "SELECT 1", 0);
    struct res r = {0};
    CHECK_EQ_INT(exec1(pool, "one", 0, NULL, &r), 0);
    CHECK(wait_count(&loop, &r.calls, 1, 10000));
    CHECK_EQ_INT(r.status, PL_E_UNAVAILABLE);
    struct pl_pg_stats st;
    pl_pg_pool_stats(pool, &st);
    CHECK(st.errors >= 1); /* the silent server timed the attempt out */
    CHECK_EQ_INT(st.connected, 0);
    pl_pg_pool_destroy(pool);
    uv_close((uv_handle_t *)&server, NULL);
    finish(&loop, NULL);
}

TEST(reconnect_after_backend_killed)
{
    char *conninfo = conninfo_with(db_url, "application_name", "pulse-test-victim");
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_pg_config cfg = config(conninfo, 2);
    struct pl_pg_pool *pool = make_pool(&loop, &cfg);
    prepare(pool, "one", "SELECT 1", 0);
    prepare(pool, "sleep", "SELECT pg_sleep($1::float8)", 1);
    CHECK(wait_connected(&loop, pool, 2, 10000));

    /* Two long queries, one on each connection (dispatch picks the least loaded). */
    struct res sl[2] = {{0}};
    const char *thirty[] = {"30"};
    CHECK_EQ_INT(exec1(pool, "sleep", 1, thirty, &sl[0]), 0);
    CHECK_EQ_INT(exec1(pool, "sleep", 1, thirty, &sl[1]), 0);
    run_for(&loop, 300);
    struct pl_pg_stats st;
    pl_pg_pool_stats(pool, &st);
    CHECK_EQ_INT(st.inflight, 2);
    CHECK_EQ_INT(st.busy, 2);

    const char *killed = admin_query(db_url, "SELECT count(*) FROM ("
                                             "SELECT pg_terminate_backend(pid) FROM "
                                             "pg_stat_activity WHERE application_name = "
                                             "'pulse-test-victim') t");
    CHECK(killed && strcmp(killed, "2") == 0);

    /* The in-flight ones fail... */
    uint64_t start = uv_hrtime();
    CHECK(wait_count(&loop, &sl[1].calls, 1, 10000));
    CHECK(wait_count(&loop, &sl[0].calls, 1, 10000));
    CHECK((uv_hrtime() - start) / 1000000 < 20000); /* not by waiting out the 30 s sleep */
    CHECK_EQ_INT(sl[0].status, PL_E_UNAVAILABLE);
    CHECK_EQ_INT(sl[1].status, PL_E_UNAVAILABLE);

    /* ...and new work waits for the reconnect and succeeds. */
    struct res r[5] = {{0}};
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(exec1(pool, "one", 0, NULL, &r[i]), 0);
    for (int i = 0; i < 5; i++) {
        CHECK(wait_count(&loop, &r[i].calls, 1, 15000));
        CHECK_EQ_INT(r[i].status, 0);
        CHECK_STR(r[i].value[0], "1");
    }
    CHECK(wait_connected(&loop, pool, 2, 15000));
    pl_pg_pool_stats(pool, &st);
    CHECK(st.errors >= 2);
    CHECK_EQ_INT(st.connected, 2);
    const char *back = admin_query(db_url, "SELECT count(*) FROM pg_stat_activity WHERE "
                                           "application_name = 'pulse-test-victim'");
    CHECK(back && strcmp(back, "2") == 0);
    finish(&loop, pool);
    free(conninfo);
}

TEST(query_timeout_fails_connection)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_pg_config cfg = config(db_url, 1);
    cfg.query_timeout_ms = 300;
    struct pl_pg_pool *pool = make_pool(&loop, &cfg);
    prepare(pool, "sleep", "SELECT pg_sleep($1::float8)", 1);
    prepare(pool, "one", "SELECT 1", 0);
    const char *secs[] = {"3"};
    struct res slow = {0}, quick = {0};
    CHECK_EQ_INT(exec1(pool, "sleep", 1, secs, &slow), 0);
    CHECK(wait_count(&loop, &slow.calls, 1, 10000));
    CHECK_EQ_INT(slow.status, PL_E_UNAVAILABLE);
    CHECK_EQ_INT(exec1(pool, "one", 0, NULL, &quick), 0);
    CHECK(wait_count(&loop, &quick.calls, 1, 10000));
    CHECK_EQ_INT(quick.status, 0);
    struct pl_pg_stats st;
    pl_pg_pool_stats(pool, &st);
    CHECK(st.errors >= 1);
    finish(&loop, pool);
}

struct destroy_ctx {
    struct pl_pg_pool *pool;
    int calls;
    int cancelled;
    int exec_during_destroy;
    bool destroy_in_cb;
};

static void destroy_cb(int status, PGresult **results, int n, void *ctx)
{
    (void)results;
    (void)n;
    struct destroy_ctx *d = ctx;
    d->calls++;
    if (status == PL_E_CANCELLED) {
        d->cancelled++;
        /* Work queued while the pool shuts is refused, not lost silently. */
        d->exec_during_destroy = pl_pg_exec1(d->pool, "one", 0, NULL, destroy_cb, d);
    }
    if (d->destroy_in_cb && status == 0) pl_pg_pool_destroy(d->pool);
}

TEST(destroy_cancels_queued)
{
    char conninfo[128];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d dbname=x user=x", closed_port());
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_pg_config cfg = config(conninfo, 2);
    struct pl_pg_pool *pool = make_pool(&loop, &cfg);
    prepare(pool, "one", "SELECT 1", 0);
    struct destroy_ctx d = {.pool = pool};
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(pl_pg_exec1(pool, "one", 0, NULL, destroy_cb, &d), 0);
    run_for(&loop, 150); /* let it fail to connect at least once */
    CHECK_EQ_INT(d.calls, 0);
    pl_pg_pool_destroy(pool);
    CHECK_EQ_INT(d.calls, 10);
    CHECK_EQ_INT(d.cancelled, 10);
    CHECK_EQ_INT(d.exec_during_destroy, PL_E_CANCELLED);
    finish(&loop, NULL);
}

TEST(destroy_cancels_inflight)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_pg_config cfg = config(db_url, 1);
    cfg.max_inflight = 2;
    struct pl_pg_pool *pool = make_pool(&loop, &cfg);
    prepare(pool, "one", "SELECT 1", 0);
    prepare(pool, "sleep", "SELECT pg_sleep($1::float8)", 1);
    CHECK(wait_connected(&loop, pool, 1, 10000));
    struct destroy_ctx d = {.pool = pool};
    const char *ten[] = {"10"};
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(pl_pg_exec1(pool, "sleep", 1, ten, destroy_cb, &d), 0);
    run_for(&loop, 200);
    struct pl_pg_stats st;
    pl_pg_pool_stats(pool, &st);
    CHECK_EQ_INT(st.inflight, 2);
    CHECK_EQ_INT(st.waiting, 3);
    uint64_t start = uv_hrtime();
    pl_pg_pool_destroy(pool);
    CHECK_EQ_INT(d.cancelled, 5);
    finish(&loop, NULL);
    CHECK((uv_hrtime() - start) / 1000000 < 8000); /* did not wait for the sleeps */
}

TEST(destroy_from_callback)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_pg_config cfg = config(db_url, 1);
    struct pl_pg_pool *pool = make_pool(&loop, &cfg);
    prepare(pool, "one", "SELECT 1", 0);
    prepare(pool, "sleep", "SELECT pg_sleep($1::float8)", 1);
    struct destroy_ctx d = {.pool = pool, .destroy_in_cb = true};
    const char *ten[] = {"10"};
    /* Sent together: the first answer destroys the pool while the others are in flight. */
    CHECK_EQ_INT(pl_pg_exec1(pool, "one", 0, NULL, destroy_cb, &d), 0);
    CHECK_EQ_INT(pl_pg_exec1(pool, "sleep", 1, ten, destroy_cb, &d), 0);
    CHECK_EQ_INT(pl_pg_exec1(pool, "sleep", 1, ten, destroy_cb, &d), 0);
    CHECK(wait_count(&loop, &d.calls, 3, 10000));
    CHECK_EQ_INT(d.calls, 3);
    CHECK_EQ_INT(d.cancelled, 2);
    finish(&loop, NULL);
}

/* ---- migrations ------------------------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) abort();
}

static void remove_file(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

struct scratch_db {
    char name[64];
    char *conninfo;
};

static void scratch_db_create(struct scratch_db *db, const char *tag)
{
    char sql[160];
    snprintf(db->name, sizeof db->name, "pl_test_%s_%d", tag, (int)getpid());
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", db->name);
    CHECK(admin_query(db_url, sql) != NULL);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db->name);
    CHECK(admin_query(db_url, sql) != NULL);
    db->conninfo = conninfo_with(db_url, "dbname", db->name);
}

static void scratch_db_drop(struct scratch_db *db)
{
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    CHECK(admin_query(db_url, sql) != NULL);
    free(db->conninfo);
}

/* The wait histogram observes every batch that gets a connection: 0 for one sent at the
 * first dispatch, its time queued for one that waited behind a full pipeline. */
TEST(wait_histogram_counts_every_batch)
{
    struct pl_metrics *reg = NULL;
    CHECK_EQ_INT(pl_metrics_create("t_", &reg), 0);
    static const double bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 2.5};
    struct pl_metric *h = pl_metrics_add(reg, &(struct pl_metric_def){.type = PL_METRIC_HISTOGRAM,
                                                                      .name = "pg_wait_seconds",
                                                                      .bounds = bounds,
                                                                      .nbounds = 7,
                                                                      .scale = 1e-9});
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_pg_config cfg = config(db_url, 1);
    cfg.max_inflight = 1; /* one batch on the wire: the next ones queue */
    cfg.wait_seconds = h;
    struct pl_pg_pool *pool = make_pool(&loop, &cfg);
    prepare(pool, "one", "SELECT 1", 0);
    prepare(pool, "nap", "SELECT pg_sleep(0.02)", 0);
    /* A first query behind the PREPAREs, so that the connection is idle afterwards. */
    struct res warm = {0};
    CHECK_EQ_INT(exec1(pool, "one", 0, NULL, &warm), 0);
    CHECK(wait_count(&loop, &warm.calls, 1, 10000));
    uint64_t count0, sum0, b0[8];
    pl_metric_histogram(h, 0, &count0, &sum0, b0);
    CHECK_EQ_INT(count0, 1);

    /* One at a time on an idle connection: five waits of exactly 0. */
    for (int i = 0; i < 5; i++) {
        struct res r = {0};
        CHECK_EQ_INT(exec1(pool, "one", 0, NULL, &r), 0);
        CHECK(wait_count(&loop, &r.calls, 1, 10000));
        CHECK_EQ_INT(r.status, 0);
    }
    uint64_t count1, sum1, b1[8];
    pl_metric_histogram(h, 0, &count1, &sum1, b1);
    CHECK_EQ_INT(count1 - count0, 5);
    CHECK_EQ_INT(b1[0] - b0[0], 5);
    CHECK_EQ_INT(sum1, sum0);

    /* Ten at once, each holding the connection 20 ms: the first goes at once, the k-th waits
     * for the k-1 before it, so at least 20 * (1 + ... + 9) ms are spent queued. */
    struct res r[10] = {{0}};
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(exec1(pool, "nap", 0, NULL, &r[i]), 0);
    CHECK(wait_count(&loop, &r[9].calls, 1, 30000));
    uint64_t count2, sum2, b2[8];
    pl_metric_histogram(h, 0, &count2, &sum2, b2);
    CHECK_EQ_INT(count2 - count1, 10);
    CHECK_EQ_INT(b2[0] - b1[0], 1);
    CHECK_EQ_INT(b2[1] + b2[2] - b1[1] - b1[2], 0); /* nothing queued for less than 20 ms */
    CHECK(sum2 - sum1 >= 900000000ULL);
    struct pl_pg_stats st;
    pl_pg_pool_stats(pool, &st);
    CHECK_EQ_INT(st.wait_count, count2);
    finish(&loop, pool);
    pl_metrics_destroy(reg);
}

TEST(migrate)
{
    struct scratch_db db;
    scratch_db_create(&db, "mig");
    char dir[] = "/tmp/pl_test_mig_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    write_file(dir, "001_first.sql",
               "CREATE TABLE a (id int PRIMARY KEY);\n"
               "INSERT INTO a VALUES (1);\n");
    write_file(dir, "002_second.sql",
               "CREATE TABLE b (x text NOT NULL);\n"
               "-- a comment\nINSERT INTO b VALUES ('hello');\n");
    /* Not migrations: wrong names are ignored. */
    write_file(dir, "README.md", "not sql");
    write_file(dir, "4_short.sql", "SELECT 1/0;");
    write_file(dir, "005_Upper.sql", "SELECT 1/0;");
    write_file(dir, "006_x.sql.bak", "SELECT 1/0;");

    char err[512] = "untouched";
    CHECK_EQ_INT(pl_pg_migrations_pending(db.conninfo, dir, err, sizeof err), 2);
    int applied = -1;
    CHECK_EQ_INT(pl_pg_migrate(db.conninfo, dir, &applied, err, sizeof err), 0);
    CHECK_EQ_INT(applied, 2);
    CHECK_STR(err, "");
    CHECK_EQ_INT(pl_pg_migrations_pending(db.conninfo, dir, err, sizeof err), 0);
    CHECK_STR(admin_query(db.conninfo, "SELECT string_agg(version || ':' || name, ',' ORDER BY "
                                       "version) FROM schema_migrations"),
              "1:001_first.sql,2:002_second.sql");
    CHECK_STR(admin_query(db.conninfo, "SELECT x FROM b"), "hello");

    /* Re-running is a no-op. */
    applied = -1;
    CHECK_EQ_INT(pl_pg_migrate(db.conninfo, dir, &applied, err, sizeof err), 0);
    CHECK_EQ_INT(applied, 0);
    CHECK_STR(admin_query(db.conninfo, "SELECT count(*) FROM a"), "1");

    /* A broken migration rolls back entirely and names itself. */
    write_file(dir, "003_broken.sql",
               "CREATE TABLE c (id int);\nINSERT INTO c VALUES (1);\n"
               "SELECT 1/0;\n");
    write_file(dir, "004_after.sql", "CREATE TABLE d (id int);\n");
    applied = -1;
    CHECK_EQ_INT(pl_pg_migrate(db.conninfo, dir, &applied, err, sizeof err), PL_E_DB);
    CHECK_EQ_INT(applied, 0);
    CHECK(strstr(err, "003_broken.sql") != NULL);
    CHECK(strstr(err, "division by zero") != NULL);
    CHECK(strchr(err, '\n') == NULL);
    CHECK_STR(admin_query(db.conninfo, "SELECT to_regclass('c') IS NULL"), "t");
    CHECK_STR(admin_query(db.conninfo, "SELECT to_regclass('d') IS NULL"), "t");
    CHECK_STR(admin_query(db.conninfo, "SELECT count(*) FROM schema_migrations"), "2");
    CHECK_EQ_INT(pl_pg_migrations_pending(db.conninfo, dir, err, sizeof err), 2);

    /* Fixed, it applies along with the one after it. */
    write_file(dir, "003_broken.sql", "CREATE TABLE c (id int);\n");
    CHECK_EQ_INT(pl_pg_migrate(db.conninfo, dir, &applied, err, sizeof err), 0);
    CHECK_EQ_INT(applied, 2);
    CHECK_EQ_INT(pl_pg_migrations_pending(db.conninfo, dir, err, sizeof err), 0);

    /* Two files with one version are refused before touching the database. */
    write_file(dir, "004_again.sql", "SELECT 1;");
    CHECK_EQ_INT(pl_pg_migrate(db.conninfo, dir, &applied, err, sizeof err), PL_E_CONFIG);
    CHECK(strstr(err, "004_after.sql") != NULL && strstr(err, "004_again.sql") != NULL);
    remove_file(dir, "004_again.sql");

    /* Missing dir, unreachable server. */
    CHECK_EQ_INT(pl_pg_migrate(db.conninfo, "/nonexistent/pl", &applied, err, sizeof err),
                 PL_E_CONFIG);
    CHECK(strstr(err, "/nonexistent/pl") != NULL);
    char down[128];
    snprintf(down, sizeof down, "host=127.0.0.1 port=%d dbname=x user=x", closed_port());
    CHECK_EQ_INT(pl_pg_migrate(down, dir, &applied, err, sizeof err), PL_E_UNAVAILABLE);
    CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
    CHECK(pl_pg_migrations_pending(down, dir, err, sizeof err) < 0);

    const char *names[] = {"001_first.sql", "002_second.sql", "003_broken.sql", "004_after.sql",
                           "README.md",     "4_short.sql",    "005_Upper.sql",  "006_x.sql.bak"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        remove_file(dir, names[i]);
    CHECK_EQ_INT(rmdir(dir), 0);
    scratch_db_drop(&db);
}

/* The *.sql files of a directory. */
static int count_sql_files(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".sql") == 0) n++;
    }
    closedir(d);
    return n;
}

TEST(repo_migrations_apply)
{
    /* The project's own migrations apply cleanly to an empty database, twice. */
    struct scratch_db db;
    scratch_db_create(&db, "repo");
    char err[512];
    int applied = -1;
    const char *dir = PULSE_SOURCE_DIR "/migrations";
    int pending = pl_pg_migrations_pending(db.conninfo, dir, err, sizeof err);
    CHECK(count_sql_files(dir) > 0);
    CHECK_EQ_INT(pending, count_sql_files(dir)); /* every one, on an empty database */
    CHECK_EQ_INT(pl_pg_migrate(db.conninfo, dir, &applied, err, sizeof err), 0);
    if (err[0]) fprintf(stderr, "migrate: %s\n", err);
    CHECK_EQ_INT(applied, pending);
    CHECK_EQ_INT(pl_pg_migrate(db.conninfo, dir, &applied, err, sizeof err), 0);
    CHECK_EQ_INT(applied, 0);
    CHECK_EQ_INT(pl_pg_migrations_pending(db.conninfo, dir, err, sizeof err), 0);
    scratch_db_drop(&db);
}

/* The SQLSTATE a statement fails with on its own connection ("" when it succeeds). */
static const char *sqlstate_of(const char *conninfo, const char *sql)
{
    static char state[8];
    PGconn *pg = admin_connect(conninfo);
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    snprintf(state, sizeof state, "%s",
             st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK ? "" : pl_pg_error_sqlstate(res));
    PQclear(res);
    PQfinish(pg);
    return state;
}

/* Issue 12: the migrations run as the owner; the service's role reads and writes the tables
 * and can change nothing else. */
TEST(grant_service_role)
{
    const char *owner_url = test_env("PULSE_MIGRATE_DATABASE_URL");
    const char *app_url = test_env("DATABASE_URL");
    char owner[128], app[128], admin[128], err[512], sql[256];
    CHECK_EQ_INT(pl_pg_conninfo_user(owner_url, owner, sizeof owner), 0);
    CHECK_EQ_INT(pl_pg_conninfo_user(app_url, app, sizeof app), 0);
    CHECK_EQ_INT(pl_pg_conninfo_user(db_url, admin, sizeof admin), 0);
    CHECK(strcmp(owner, app) != 0);
    CHECK_EQ_INT(pl_pg_conninfo_user("postgresql://%zz", app, sizeof app), PL_E_CONFIG);
    CHECK_EQ_INT(pl_pg_conninfo_user(app_url, app, sizeof app), 0);

    struct scratch_db db;
    scratch_db_create(&db, "grant");
    snprintf(sql, sizeof sql, "ALTER DATABASE %s OWNER TO \"%s\"", db.name, owner);
    CHECK(admin_query(db_url, sql) != NULL);
    char *as_owner = conninfo_with(owner_url, "dbname", db.name);
    char *as_app = conninfo_with(app_url, "dbname", db.name);
    char *as_admin = db.conninfo;
    char dir[] = "/tmp/pl_test_grant_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    write_file(dir, "001_t.sql",
               "CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, x text);\n"
               "CREATE TABLE s (id serial PRIMARY KEY);\n");
    int applied = -1;
    CHECK_EQ_INT(pl_pg_migrate(as_owner, dir, &applied, err, sizeof err), 0);
    CHECK_EQ_INT(applied, 1);
    CHECK_EQ_INT(pl_pg_grant_service_role(as_owner, app, err, sizeof err), 1);
    CHECK_STR(err, "");
    /* To nobody, or to the connected role itself: nothing to give. */
    CHECK_EQ_INT(pl_pg_grant_service_role(as_owner, owner, err, sizeof err), 0);
    CHECK_EQ_INT(pl_pg_grant_service_role(as_owner, "", err, sizeof err), 0);

    /* Data: yes (a serial column needs its sequence too). */
    CHECK_STR(admin_query(as_app, "INSERT INTO t (x) VALUES ('a') RETURNING x"), "a");
    CHECK_STR(admin_query(as_app, "INSERT INTO s DEFAULT VALUES RETURNING id"), "1");
    CHECK_STR(admin_query(as_app, "UPDATE t SET x = 'b' RETURNING x"), "b");
    CHECK_STR(admin_query(as_app, "DELETE FROM t RETURNING x"), "b");
    CHECK_STR(admin_query(as_app, "SELECT count(*) FROM schema_migrations"), "1");
    /* Anything else: insufficient_privilege. */
    const char *refused[] = {
        "CREATE TABLE evil (id int)",
        "DROP TABLE t",
        "ALTER TABLE t ADD COLUMN y int",
        "TRUNCATE t",
        "CREATE INDEX evil ON t (x)",
        "CREATE SCHEMA evil",
        "CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "DELETE FROM schema_migrations",
        "INSERT INTO schema_migrations (version, name) VALUES (9, '009_x.sql')"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        const char *state = sqlstate_of(as_app, refused[i]);
        if (strcmp(state, "42501") != 0) fprintf(stderr, "%s: \"%s\"\n", refused[i], state);
        CHECK_STR(state, "42501");
    }

    /* A later migration's table is the service's to use at once (default privileges). */
    write_file(dir, "002_u.sql", "CREATE TABLE u (id int);\n");
    CHECK_EQ_INT(pl_pg_migrate(as_owner, dir, &applied, err, sizeof err), 0);
    CHECK_EQ_INT(applied, 1);
    CHECK_STR(sqlstate_of(as_app, "INSERT INTO u VALUES (1)"), "");
    CHECK_STR(sqlstate_of(as_app, "DROP TABLE u"), "42501");
    CHECK_EQ_INT(pl_pg_grant_service_role(as_owner, app, err, sizeof err), 1);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_class WHERE relowner = '%s'::regrole", app);
    CHECK_STR(admin_query(as_admin, sql), "0");

    /* Refused: a service role that owns something, can create, is a superuser or is missing. */
    snprintf(sql, sizeof sql, "ALTER TABLE u OWNER TO \"%s\"", app);
    CHECK(admin_query(as_admin, sql) != NULL);
    CHECK_EQ_INT(pl_pg_grant_service_role(as_owner, app, err, sizeof err), PL_E_DB);
    CHECK(strstr(err, "owns 1 object") != NULL);
    snprintf(sql, sizeof sql, "ALTER TABLE u OWNER TO \"%s\"", owner);
    CHECK(admin_query(as_admin, sql) != NULL);
    snprintf(sql, sizeof sql, "GRANT CREATE ON SCHEMA public TO \"%s\"", app);
    CHECK(admin_query(as_admin, sql) != NULL);
    CHECK_EQ_INT(pl_pg_grant_service_role(as_owner, app, err, sizeof err), PL_E_DB);
    CHECK(strstr(err, "may create") != NULL);
    snprintf(sql, sizeof sql, "REVOKE CREATE ON SCHEMA public FROM \"%s\"", app);
    CHECK(admin_query(as_admin, sql) != NULL);
    CHECK_EQ_INT(pl_pg_grant_service_role(as_owner, admin, err, sizeof err), PL_E_DB);
    CHECK(strstr(err, "superuser") != NULL);
    CHECK_EQ_INT(pl_pg_grant_service_role(as_owner, "pl_no_such_role", err, sizeof err), PL_E_DB);
    CHECK(strstr(err, "does not exist") != NULL);
    CHECK_EQ_INT(pl_pg_grant_service_role(as_owner, app, err, sizeof err), 1);

    remove_file(dir, "001_t.sql");
    remove_file(dir, "002_u.sql");
    CHECK_EQ_INT(rmdir(dir), 0);
    free(as_owner);
    free(as_app);
    scratch_db_drop(&db);
}

static const char *conn_option(PGconn *pg, const char *key)
{
    static char val[64];
    val[0] = '\0';
    PQconninfoOption *opts = PQconninfo(pg);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, key) == 0 && o->val) snprintf(val, sizeof val, "%s", o->val);
    PQconninfoFree(opts);
    return val;
}

/* Issue 12: no GSSAPI probe (libkrb5) on every connect, unless the conninfo asks for it. */
TEST(connections_skip_gssapi_unless_asked)
{
    char err[256];
    unsetenv("PGGSSENCMODE");
    PGconn *pg = pl_pg_connect_blocking(db_url, "pl-test", err, sizeof err);
    CHECK(pg != NULL);
    CHECK_STR(conn_option(pg, "gssencmode"), "disable");
    CHECK_STR(conn_option(pg, "fallback_application_name"), "pl-test");
    PQfinish(pg);
    char *asked = conninfo_with(db_url, "gssencmode", "prefer");
    pg = pl_pg_connect_blocking(asked, "pl-test", err, sizeof err);
    CHECK(pg != NULL);
    CHECK_STR(conn_option(pg, "gssencmode"), "prefer");
    PQfinish(pg);
    free(asked);
    setenv("PGGSSENCMODE", "prefer", 1);
    pg = pl_pg_connect_blocking(db_url, "pl-test", err, sizeof err);
    CHECK(pg != NULL);
    CHECK_STR(conn_option(pg, "gssencmode"), "prefer");
    PQfinish(pg);
    unsetenv("PGGSSENCMODE");
}

int main(void)
{
    db_url = test_env("PULSE_TEST_ADMIN_URL");
    RUN(single_query);
    RUN(invalid_config);
    RUN(pipelined_1000_in_order);
    RUN(pipelined_1000_four_connections);
    RUN(failing_statement_isolated);
    RUN(bad_statement_does_not_spoil_others);
    RUN(statement_prepared_again_after_schema_appears);
    RUN(batch_is_atomic);
    RUN(unreachable_server_queue);
    RUN(connect_timeout);
    RUN(reconnect_after_backend_killed);
    RUN(query_timeout_fails_connection);
    RUN(destroy_cancels_queued);
    RUN(destroy_cancels_inflight);
    RUN(destroy_from_callback);
    RUN(wait_histogram_counts_every_batch);
    RUN(migrate);
    RUN(repo_migrations_apply);
    RUN(grant_service_role);
    RUN(connections_skip_gssapi_unless_asked);
    return TEST_REPORT();
}
