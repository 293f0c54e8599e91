/* The list queries are index-backed: EXPLAIN of the exact prepared SQL, under the generic
 * plan that prepared statements settle on, walks the (subject_id, sort key, id) index in
 * order and never sorts the subject's rows; the membership check of the same statement is a
 * lookup on subject_members' primary key, never a scan. The plans are printed for the
 * record. */
#include <libpq-fe.h>
#include <stdbool.h>
#include <string.h>

#include "app.h"
#include "store.h"
#include "test.h"

static PGconn *db;
static char user_id[64], subject_id[64];

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

/* No table is read whole, and the caller's membership is an index lookup (of the pair, or of
 * the caller's own memberships: at most the quota of subjects). */
static void check_access(const char *p)
{
    CHECK(strstr(p, "Seq Scan") == NULL);
    CHECK(strstr(p, "Scan using subject_members_") != NULL);
}

/* The subject's rows are never sorted: the page (CTE p of RECORD_PAGE_SQL) is an index walk
 * that a Limit stops; sorts elsewhere only order that page's rows (its authors, its output). */
static bool page_sorted_only(const char *p)
{
    const char *page = strstr(p, "CTE p\n"), *next = page ? strstr(page, "CTE w") : NULL;
    if (!page || !next) return false;
    const char *limit = strstr(page, "Limit"), *sort = strstr(page, "Sort");
    return limit && limit < next && (!sort || sort > next);
}

/* The parameters of a subject's list: the user, then the subject named (variant 0), the
 * default subject (1: NULL), or the subject through a token restricted to it (2), then
 * `rest`. */
static const char *subject_args(char *buf, size_t cap, int variant, const char *rest)
{
    if (variant == 1)
        snprintf(buf, cap, "'%s', NULL, NULL, %s", user_id, rest);
    else if (variant == 2)
        snprintf(buf, cap, "'%s', '%s', '{%s}', %s", user_id, subject_id, subject_id, rest);
    else
        snprintf(buf, cap, "'%s', '%s', NULL, %s", user_id, subject_id, rest);
    return buf;
}

TEST(notes_list_walks_the_index)
{
    char args[512];
    for (int v = 0; v < 3; v++) {
        const char *p = plan("notes_list", subject_args(args, sizeof args, v, "21"));
        CHECK(strstr(p, "notes_subject_order_idx") != NULL);
        CHECK(page_sorted_only(p));
        check_access(p);
    }
    const char *p =
        plan("notes_list_after",
             subject_args(args, sizeof args, 0,
                          "21, true, 1795436364977068, '86eabbe3-9568-432f-aa17-245c26b9e201'"));
    CHECK(strstr(p, "notes_subject_order_idx") != NULL);
    CHECK(page_sorted_only(p));
    check_access(p);
}

/* Filtered lists (search, tags, pinned) read only the subject's rows through an index; they
 * sort the matches, never the table. */
TEST(notes_find_reads_through_an_index)
{
    char args[512];
    const char *p =
        plan("notes_find", subject_args(args, sizeof args, 0, "NULL, NULL, 'note', 21"));
    CHECK(strstr(p, "notes_search_idx") != NULL || strstr(p, "notes_subject_order_idx") != NULL);
    check_access(p);
}

TEST(feedings_list_walks_the_index)
{
    char args[512];
    for (int v = 0; v < 3; v++) {
        const char *p = plan("feedings_list", subject_args(args, sizeof args, v, "NULL, NULL, 21"));
        CHECK(strstr(p, "feedings_subject_given_idx") != NULL);
        CHECK(page_sorted_only(p));
        check_access(p);
    }
    const char *p = plan(
        "feedings_list_after",
        subject_args(args, sizeof args, 0,
                     "NULL, NULL, 21, 1795436364977068, '86eabbe3-9568-432f-aa17-245c26b9e201'"));
    CHECK(strstr(p, "feedings_subject_given_idx") != NULL);
    /* the cursor bound is an index condition, not a filter over the subject's earlier rows */
    CHECK(strstr(p, "Index Cond") != NULL && strstr(p, "given_at") != NULL);
    CHECK(page_sorted_only(p));
    check_access(p);
    /* a from/to range is an index condition too */
    p = plan("feedings_list",
             subject_args(args, sizeof args, 0, "1795000000000000, 1795436364977068, 21"));
    CHECK(strstr(p, "feedings_subject_given_idx") != NULL);
    CHECK(page_sorted_only(p));
}

TEST(today_is_a_range_scan)
{
    char args[512];
    snprintf(args, sizeof args, "'%s', '%s', NULL", user_id, subject_id);
    const char *p = plan("feedings_today", args);
    CHECK(strstr(p, "feedings_subject_given_idx") != NULL);
    check_access(p);
    snprintf(args, sizeof args, "'%s', NULL, NULL, 30", user_id);
    p = plan("feedings_stats", args);
    CHECK(strstr(p, "feedings_subject_given_idx") != NULL);
    check_access(p);
}

/* A day's timeline: one range scan of the subject's index between the day's local midnights
 * (the given_at bounds are index conditions), for a named date and for today. */
TEST(timeline_is_a_range_scan)
{
    char args[512];
    const char *dates[] = {"'2026-03-08'", "NULL"};
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "'%s', '%s', NULL, %s", user_id, subject_id, dates[i]);
        const char *p = plan("feedings_timeline", args);
        const char *idx = strstr(p, "feedings_subject_given_idx");
        CHECK(idx != NULL);
        const char *cond = idx ? strstr(idx, "Index Cond") : NULL;
        CHECK(cond != NULL && strstr(cond, "given_at >=") != NULL &&
              strstr(cond, "given_at <") != NULL);
        check_access(p);
    }
}

/* A record by id: its primary key, then the caller's membership of its subject. */
TEST(records_by_id_are_lookups)
{
    char args[256];
    snprintf(args, sizeof args, "'86eabbe3-9568-432f-aa17-245c26b9e201', '%s', NULL", user_id);
    const char *p = plan("feedings_get", args);
    CHECK(strstr(p, "feedings_pkey") != NULL);
    check_access(p);
    p = plan("notes_get", args);
    CHECK(strstr(p, "notes_pkey") != NULL);
    check_access(p);
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
    /* A user whose default subject has enough rows that the planner's choice matters, among
     * other subjects' rows. */
    PGresult *r = q("WITH s AS (INSERT INTO subjects (name) VALUES ('plans') RETURNING id), "
                    "u AS (INSERT INTO users (email, password_hash, default_subject_id) SELECT "
                    "'plans-' || gen_random_uuid() || '@example.com', 'x', s.id FROM s "
                    "RETURNING id, default_subject_id), "
                    "m AS (INSERT INTO subject_members (subject_id, user_id, role) SELECT "
                    "default_subject_id, id, 'owner' FROM u) SELECT id, default_subject_id FROM u");
    snprintf(user_id, sizeof user_id, "%s", PQgetvalue(r, 0, 0));
    snprintf(subject_id, sizeof subject_id, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO notes (subject_id, created_by, title, body, tags, pinned, updated_at) "
             "SELECT '%s', '%s', 'note ' || g, 'body ' || g, ARRAY['t' || (g %% 7)], "
             "g %% 10 = 0, now() - g * interval '1 minute' FROM generate_series(1, 5000) g",
             subject_id, user_id);
    run(sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO feedings (subject_id, created_by, amount_ml, given_at) SELECT '%s', "
             "'%s', 100, now() - g * interval '5 minutes' FROM generate_series(1, 5000) g",
             subject_id, user_id);
    run(sql);
    /* ... and 300 other users with a subject of 20 rows each: as in production, one subject
     * is a small share of the table, which is what the generic plan's estimate of
     * subject_id = $n is based on. */
    run("WITH s AS (INSERT INTO subjects (name) SELECT 'plans-other' FROM generate_series(1, "
        "300) RETURNING id), u AS (INSERT INTO users (email, password_hash, default_subject_id) "
        "SELECT 'plans-other-' || gen_random_uuid() || '@example.com', 'x', s.id FROM s "
        "RETURNING id, default_subject_id), m AS (INSERT INTO subject_members (subject_id, "
        "user_id, role) SELECT default_subject_id, id, 'owner' FROM u) "
        "INSERT INTO notes (subject_id, created_by, title) SELECT u.default_subject_id, u.id, "
        "'other ' || g FROM u, generate_series(1, 20) g");
    run("INSERT INTO feedings (subject_id, created_by, amount_ml) SELECT n.subject_id, "
        "n.created_by, 50 FROM notes n JOIN users u ON u.id = n.created_by WHERE u.email LIKE "
        "'plans-other-%'");
    run("ANALYZE subjects");
    run("ANALYZE subject_members");
    run("ANALYZE users");
    run("ANALYZE notes");
    run("ANALYZE feedings");
    run("SET plan_cache_mode = force_generic_plan");
    /* A table of a few hundred rows is cheaper to scan than to look up in, whatever indexes
     * it has, and how many rows the other tests left decides it: with sequential scans priced
     * out, a Seq Scan in a plan means that no index can serve that access. */
    run("SET enable_seqscan = off");
    RUN(notes_list_walks_the_index);
    RUN(notes_find_reads_through_an_index);
    RUN(feedings_list_walks_the_index);
    RUN(today_is_a_range_scan);
    RUN(timeline_is_a_range_scan);
    RUN(records_by_id_are_lookups);
    snprintf(sql, sizeof sql, "DELETE FROM users WHERE id = '%s'", user_id);
    run(sql);
    run("DELETE FROM users WHERE email LIKE 'plans-other-%'");
    run("DELETE FROM subjects WHERE name IN ('plans', 'plans-other')");
    PQfinish(db);
    return TEST_REPORT();
}
