/* The SQL of feedings: every statement is scoped by the caller's memberships
 * (records_store.h): a feeding is seen by the members of its subject. Day boundaries are the
 * subject's local midnights converted to instants by Postgres (23- and 25-hour days around
 * DST changes come out right). */
#include "../records/records_store.h"
#include "feedings.h"

/* given_at arrives as microseconds since the epoch, parsed by pl_time_parse_rfc3339: the
 * text would meet Postgres's own parser, which refuses offsets of 16 hours and more that
 * RFC 3339 allows (a 500), and rounds digits past the microsecond that we truncate. */
#define FEEDING_INSERT                                                                             \
    "INSERT INTO feedings (subject_id, created_by, amount_ml, kind, given_at, note, method, "      \
    "duration_s)"
/* kind defaults to breast_milk for a breast method, else to food */
#define FEEDING_VALUES                                                                             \
    "$4::int, COALESCE($5, CASE WHEN $8::text IN ('breast_left', 'breast_right', 'breast_both') "  \
    "THEN 'breast_milk' ELSE 'food' END), COALESCE(" FROM_EPOCH_US(                                \
        "$6") ", now()), $7, $8, $9::int"
/* Lists (RECORD_PAGE_SQL): newest given_at first; the cursor is (given_at, id). The page walks
 * feedings_subject_given_idx in order; the time range ($4, $5) is always an index condition
 * (open ends are -infinity/infinity); the kind filter has statements of its own so the plain
 * list keeps a clean generic plan. */
/* clang-format off */
#define FEEDING_PAGE                                                                               \
    "SELECT r.id, r.subject_id, r.amount_ml, r.kind, r.method, r.duration_s, r.given_at, "       \
        "r.note, r.created_by, r.version, r.created_at, r.updated_at FROM feedings r WHERE r.subject_id = a.sid "        \
        "AND r.given_at >= COALESCE(" FROM_EPOCH_US("$4") ", '-infinity') "                        \
        "AND r.given_at < COALESCE(" FROM_EPOCH_US("$5") ", 'infinity') "
#define FEEDING_PAGE_END "ORDER BY r.given_at DESC, r.id DESC LIMIT $6"
#define FEEDING_LIST(page)                                                                         \
    RECORD_PAGE_SQL(page, FEEDING_JSON_OF("p.", "w.j"),                                            \
        EPOCH_US("p.given_at") "::text AS c1, p.id::text AS c2", "p.given_at DESC, p.id DESC")
/* clang-format on */
#define FEEDING_AFTER(a, b) "AND (r.given_at, r.id) < (" FROM_EPOCH_US(a) ", " b "::uuid) "
/* The subject's zone, target and today ($1 user, $2 subject, $3 token's subjects). */
#define FEEDING_DAY                                                                                \
    "WITH a AS (" RECORD_SUBJECT(                                                                  \
        "$1", "$2",                                                                                \
        "$3") "), "                                                                                \
              "r AS (SELECT a.sid, s.timezone AS tz, s.daily_target_ml AS target, "                \
              "(now() AT TIME ZONE s.timezone)::date AS today FROM a JOIN subjects s ON s.id = a.sid)"

static const struct stmt_def statements[] = {
    {"feedings_create", RECORD_CREATE_SQL("feedings", FEEDING_INSERT, FEEDING_VALUES, FEEDING_JSON),
     9},
    {"feedings_create_idem",
     RECORD_CREATE_IDEM_SQL("feedings", FEEDING_INSERT, FEEDING_VALUES, "/api/v1/feedings",
                            FEEDING_JSON, "$10", "$11"),
     11},
    {"feedings_get", RECORD_GET_SQL("feedings", FEEDING_JSON), 3},
    /* $5/$9/$11/$13: whether amount_ml, note, method, duration_s were sent (null clears) */
    {"feedings_update",
     RECORD_UPDATE_SQL("feedings",
                       "amount_ml = CASE WHEN $5::bool THEN $6::int ELSE feedings.amount_ml END, "
                       "kind = COALESCE($7, feedings.kind), "
                       "given_at = COALESCE(" FROM_EPOCH_US(
                           "$8") ", feedings.given_at), "
                                 "note = CASE WHEN $9::bool THEN $10 ELSE feedings.note END, "
                                 "method = CASE WHEN $11::bool THEN $12 ELSE feedings.method END, "
                                 "duration_s = CASE WHEN $13::bool THEN $14::int "
                                 "ELSE feedings.duration_s END",
                       FEEDING_JSON),
     14},
    {"feedings_delete", RECORD_DELETE_SQL("feedings"), 4},
    {"feedings_list", FEEDING_LIST(FEEDING_PAGE FEEDING_PAGE_END), 6},
    {"feedings_list_after", FEEDING_LIST(FEEDING_PAGE FEEDING_AFTER("$7", "$8") FEEDING_PAGE_END),
     8},
    {"feedings_kind", FEEDING_LIST(FEEDING_PAGE "AND r.kind = $7 " FEEDING_PAGE_END), 7},
    {"feedings_kind_after",
     FEEDING_LIST(FEEDING_PAGE "AND r.kind = $7 " FEEDING_AFTER("$8", "$9") FEEDING_PAGE_END), 9},
    {"feedings_today",
     FEEDING_DAY ", b AS (SELECT r.*, r.today::timestamp AT TIME ZONE r.tz AS lo, "
                 "(r.today + 1)::timestamp AT TIME ZONE r.tz AS hi FROM r), "
                 "t AS (SELECT b.today AS day, b.tz, b.target, COALESCE(sum(f.amount_ml), 0) AS "
                 "total, count(f.id) AS n, max(f.given_at) AS last FROM b LEFT JOIN feedings f ON "
                 "f.subject_id = b.sid AND f.given_at >= b.lo AND f.given_at < b.hi "
                 "GROUP BY b.today, b.tz, b.target, b.lo, b.hi) "
                 "SELECT json_build_object('date', day, 'timezone', tz, 'target_ml', target, "
                 "'total_ml', total, 'count', n, 'remaining_ml', GREATEST(target - total, 0), "
                 "'progress', CASE WHEN target = 0 THEN 0 ELSE total::float8 / target END, "
                 "'last_given_at', " TS("last") ")::text FROM t",
     3},
    /* The window's feedings (w) with the gap to the one before (real elapsed time: a DST
     * change does not stretch it); days are the subject's local days. Totals count the
     * amounts present, counts every feeding. since_last_s is from the last feeding ever (the
     * first row of the subject's index, not an aggregate over its history). */
    {"feedings_stats",
     FEEDING_DAY
     ", days AS (SELECT (r.today - g)::date AS day FROM r, "
     "generate_series(0, $4::int - 1) AS g), "
     "w AS (SELECT f.id, f.amount_ml, f.method, (f.given_at AT TIME ZONE r.tz)::date "
     "AS day, f.given_at - lag(f.given_at) OVER (ORDER BY f.given_at, f.id) AS gap "
     "FROM r JOIN feedings f ON f.subject_id = r.sid "
     "AND f.given_at >= (r.today - ($4::int - 1))::timestamp AT TIME ZONE r.tz "
     "AND f.given_at < (r.today + 1)::timestamp AT TIME ZONE r.tz), "
     "agg AS (SELECT w.day, count(*) AS n, count(w.amount_ml) AS nml, "
     "sum(w.amount_ml) AS ml FROM w GROUP BY 1), "
     "gaps AS (SELECT round(avg(extract(epoch FROM w.gap)))::bigint AS avg_s, "
     "round(max(extract(epoch FROM w.gap)))::bigint AS max_s FROM w), "
     "last AS (SELECT (SELECT f.given_at FROM feedings f WHERE f.subject_id = r.sid "
     "ORDER BY f.given_at DESC LIMIT 1) AS at FROM r), "
     "bm AS (SELECT json_agg(json_build_object('method', x.method, 'count', x.n, "
     "'total_ml', x.ml) ORDER BY x.method NULLS LAST) AS j FROM (SELECT w.method, "
     "count(*) AS n, COALESCE(sum(w.amount_ml), 0) AS ml FROM w GROUP BY 1) x) "
     "SELECT json_build_object('days', $4::int, 'from', min(days.day), 'to', "
     "max(days.day), 'total_count', COALESCE(sum(agg.n), 0), 'total_ml', "
     "COALESCE(sum(agg.ml), 0), 'avg_ml', CASE WHEN COALESCE(sum(agg.nml), 0) = 0 "
     "THEN 0 ELSE round(sum(agg.ml)::numeric / sum(agg.nml), 1) END, "
     "'avg_daily_ml', round(COALESCE(sum(agg.ml), 0)::numeric / $4::int, 1), "
     "'per_day', json_agg(json_build_object('date', days.day, 'count', "
     "COALESCE(agg.n, 0), 'total_ml', COALESCE(agg.ml, 0), 'target_met', "
     "(SELECT r.target FROM r) > 0 AND COALESCE(agg.ml, 0) >= (SELECT r.target FROM r)) "
     "ORDER BY days.day), "
     "'intervals', (SELECT json_build_object('since_last_s', "
     "CASE WHEN last.at IS NOT NULL THEN GREATEST(round(extract(epoch FROM now() - last.at)), "
     "0)::bigint END, "
     "'avg_gap_s', gaps.avg_s, 'longest_gap_s', gaps.max_s) FROM gaps, last), "
     "'by_method', COALESCE((SELECT bm.j FROM bm), '[]'::json))::text "
     "FROM days LEFT JOIN agg ON agg.day = days.day HAVING EXISTS (SELECT 1 FROM r)",
     4},
    /* A day's feedings, oldest first ($4: the local date, NULL for today): one range scan of
     * feedings_subject_given_idx between the day's local midnights. */
    {"feedings_timeline",
     FEEDING_DAY ", b AS (SELECT r.sid, r.tz, d.day, d.day::timestamp AT TIME ZONE r.tz AS lo, "
                 "(d.day + 1)::timestamp AT TIME ZONE r.tz AS hi FROM r, "
                 "LATERAL (SELECT COALESCE($4::date, r.today) AS day) d) "
                 "SELECT json_build_object('date', b.day, 'timezone', b.tz, 'items', "
                 "COALESCE((SELECT json_agg(json_build_object('id', f.id, 'given_at', " TS(
                     "f.given_at") ", 'duration_s', f.duration_s, 'method', f.method, "
                                   "'kind', f.kind, 'amount_ml', f.amount_ml) "
                                   "ORDER BY f.given_at, f.id) FROM feedings f "
                                   "WHERE f.subject_id = b.sid AND f.given_at >= b.lo "
                                   "AND f.given_at < b.hi), '[]'::json))::text FROM b",
     4},
};

int feedings_prepare(struct pl_pg_pool *pool)
{
    return STORE_PREPARE(pool, statements);
}
