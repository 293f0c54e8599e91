/* The list queries are index-backed: EXPLAIN of the exact prepared SQL, under the generic
 * plan that prepared statements settle on, walks the (user_id, sort key, id) index in order
 * and never sorts the user's rows. The plans are printed for the record. */
#include <libpq-fe.h>
#include <string.h>

#include "app.h"
#include "store.h"
#include "test.h"

static PGconn *db;
static char user_id[64];

static PGresult *q(const char *sql)
{
    PGresult *r = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        fprintf(stderr, "%s\n%s\n", sql, PQresultErrorMessage(r));
    return r;
}

static void run(const char *sql)
{
    PQclear(q(sql));
}

/* EXPLAIN EXECUTE of statement `name` with `args`; returns the plan text (static). */
static const char *plan(const char *name, const char *args)
{
    static char text[8192];
    const struct stmt_def *d = store_lookup(name);
    if (!d) return "";
    char sql[8192];
    snprintf(sql, sizeof sql, "DEALLOCATE ALL");
    run(sql);
    PGresult *r = PQprepare(db, "p", d->sql, 0, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) fprintf(stderr, "%s\n", PQresultErrorMessage(r));
    PQclear(r);
    snprintf(sql, sizeof sql, "EXPLAIN EXECUTE p(%s)", args);
    r = q(sql);
    size_t o = 0;
    text[0] = 0;
    for (int i = 0; i < PQntuples(r) && o < sizeof text - 200; i++)
        o += (size_t)snprintf(text + o, sizeof text - o, "%s\n", PQgetvalue(r, i, 0));
    PQclear(r);
    printf("-- %s (%s)\n%s", name, args, text);
    return text;
}

TEST(notes_list_walks_the_index)
{
    char args[256];
    snprintf(args, sizeof args, "'%s', 21", user_id);
    const char *p = plan("notes_list", args);
    CHECK(strstr(p, "notes_user_order_idx") != NULL);
    CHECK(strstr(p, "Sort") == NULL);
    snprintf(args, sizeof args,
             "'%s', 21, true, 1795436364977068, '86eabbe3-9568-432f-aa17-245c26b9e201'", user_id);
    p = plan("notes_list_after", args);
    CHECK(strstr(p, "notes_user_order_idx") != NULL);
    CHECK(strstr(p, "Sort") == NULL);
}

/* Filtered lists (search, tags, pinned) read only the caller's rows through an index; they
 * sort the matches, never the table. */
TEST(notes_find_reads_through_an_index)
{
    char args[256];
    snprintf(args, sizeof args, "'%s', NULL, NULL, 'note', 21", user_id);
    const char *p = plan("notes_find", args);
    CHECK(strstr(p, "notes_search_idx") != NULL || strstr(p, "notes_user_order_idx") != NULL);
}

TEST(feedings_list_walks_the_index)
{
    char args[256];
    snprintf(args, sizeof args, "'%s', NULL, NULL, 21", user_id);
    const char *p = plan("feedings_list", args);
    CHECK(strstr(p, "feedings_user_given_idx") != NULL);
    CHECK(strstr(p, "Sort") == NULL);
    snprintf(args, sizeof args,
             "'%s', NULL, NULL, 21, 1795436364977068, '86eabbe3-9568-432f-aa17-245c26b9e201'",
             user_id);
    p = plan("feedings_list_after", args);
    CHECK(strstr(p, "feedings_user_given_idx") != NULL);
    /* the cursor bound is an index condition, not a filter over the user's earlier rows */
    CHECK(strstr(p, "Index Cond") != NULL && strstr(p, "given_at") != NULL);
    CHECK(strstr(p, "Sort") == NULL);
    /* a from/to range is an index condition too */
    snprintf(args, sizeof args, "'%s', 1795000000000000, 1795436364977068, 21", user_id);
    p = plan("feedings_list", args);
    CHECK(strstr(p, "feedings_user_given_idx") != NULL);
    CHECK(strstr(p, "Sort") == NULL);
}

TEST(today_is_a_range_scan)
{
    char args[128];
    snprintf(args, sizeof args, "'%s'", user_id);
    const char *p = plan("feedings_today", args);
    CHECK(strstr(p, "feedings_user_given_idx") != NULL);
}

int main(void)
{
    char err[256];
    /* As the owner, as `pulsed migrate` does: seeding and ANALYZE need the owner too. */
    const char *url = test_env("PULSE_MIGRATE_DATABASE_URL");
    char app[128];
    if (pl_pg_migrate(url, PULSE_SOURCE_DIR "/migrations", NULL, err, sizeof err) != 0 ||
        pl_pg_conninfo_user(test_env("DATABASE_URL"), app, sizeof app) != 0 ||
        pl_pg_grant_service_role(url, app, err, sizeof err) < 0) {
        fprintf(stderr, "migrate: %s\n", err);
        return 1;
    }
    /* Registers the statements (and their texts) without needing a server. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pl_pg_config cfg = {.conninfo = url,
                               .size = 1,
                               .max_inflight = 1,
                               .max_waiters = 1,
                               .wait_timeout_ms = 1000,
                               .connect_timeout_ms = 1000};
    struct pl_pg_pool *pool;
    if (pl_pg_pool_create(&loop, &cfg, &pool) || app_prepare_statements(pool)) return 1;
    pl_pg_pool_destroy(pool);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);

    db = PQconnectdb(url);
    if (PQstatus(db) != CONNECTION_OK) return 1;
    /* A user with enough rows that the planner's choice matters, among other users' rows. */
    PGresult *r = q("INSERT INTO users (email, password_hash) VALUES "
                    "('plans-' || gen_random_uuid() || '@example.com', 'x') RETURNING id");
    snprintf(user_id, sizeof user_id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO notes (user_id, title, body, tags, pinned, updated_at) SELECT '%s', "
             "'note ' || g, 'body ' || g, ARRAY['t' || (g %% 7)], g %% 10 = 0, "
             "now() - g * interval '1 minute' FROM generate_series(1, 5000) g",
             user_id);
    run(sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO feedings (user_id, amount_ml, given_at) SELECT '%s', 100, "
             "now() - g * interval '5 minutes' FROM generate_series(1, 5000) g",
             user_id);
    run(sql);
    /* ... and 300 other users with 20 rows each: as in production, one user is a small share
     * of the table, which is what the generic plan's estimate of user_id = $1 is based on. */
    run("WITH u AS (INSERT INTO users (email, password_hash) SELECT 'plans-other-' || "
        "gen_random_uuid() || '@example.com', 'x' FROM generate_series(1, 300) RETURNING id) "
        "INSERT INTO notes (user_id, title) SELECT u.id, 'other ' || g FROM u, "
        "generate_series(1, 20) g");
    run("INSERT INTO feedings (user_id, amount_ml) SELECT n.user_id, 50 FROM notes n "
        "JOIN users u ON u.id = n.user_id WHERE u.email LIKE 'plans-other-%'");
    run("ANALYZE notes");
    run("ANALYZE feedings");
    run("SET plan_cache_mode = force_generic_plan");
    RUN(notes_list_walks_the_index);
    RUN(notes_find_reads_through_an_index);
    RUN(feedings_list_walks_the_index);
    RUN(today_is_a_range_scan);
    snprintf(sql, sizeof sql, "DELETE FROM users WHERE id = '%s'", user_id);
    run(sql);
    run("DELETE FROM users WHERE email LIKE 'plans-other-%'");
    PQfinish(db);
    return TEST_REPORT();
}
