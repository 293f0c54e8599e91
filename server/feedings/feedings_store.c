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
    "INSERT INTO feedings (subject_id, created_by, amount_ml, kind, given_at, note)"
#define FEEDING_VALUES "$4::int, COALESCE($5, 'food'), COALESCE(" FROM_EPOCH_US("$6") ", now()), $7"
/* Lists: the subject's row (RECORD_SUBJECT of $1 user, $2 subject, $3 token's subjects), then
 * its feedings walked in index order (feedings_subject_given_idx), NULLs when none. The time
 * range ($4, $5) is always an index condition (open ends are -infinity/infinity); the kind
 * filter has statements of its own so the plain list keeps a clean generic plan. */
#define FEEDING_LIST                                                                               \
    "WITH a AS (" RECORD_SUBJECT(                                                                  \
        "$1", "$2",                                                                                \
        "$3") ") SELECT l.* FROM a LEFT JOIN LATERAL "                                             \
              "(SELECT " FEEDING_JSON ", " EPOCH_US(                                               \
                  "given_at") "::text AS c1, id::text AS c2 FROM feedings "                        \
                              "WHERE subject_id = a.sid AND given_at >= COALESCE(" FROM_EPOCH_US(  \
                                  "$4") ", '-infinity') "                                          \
                                        "AND given_at < COALESCE(" FROM_EPOCH_US(                  \
                                            "$5") ", 'infinity') "
#define FEEDING_ORDER       "ORDER BY given_at DESC, id DESC LIMIT $6) l ON true"
#define FEEDING_AFTER(a, b) "AND (given_at, id) < (" FROM_EPOCH_US(a) ", " b "::uuid) "
/* The subject's zone, target and today ($1 user, $2 subject, $3 token's subjects). */
#define FEEDING_DAY                                                                                \
    "WITH a AS (" RECORD_SUBJECT(                                                                  \
        "$1", "$2",                                                                                \
        "$3") "), "                                                                                \
              "r AS (SELECT a.sid, s.timezone AS tz, s.daily_target_ml AS target, "                \
              "(now() AT TIME ZONE s.timezone)::date AS today FROM a JOIN subjects s ON s.id = a.sid)"

static const struct stmt_def statements[] = {
    {"feedings_create", RECORD_CREATE_SQL(FEEDING_INSERT, FEEDING_VALUES, FEEDING_JSON), 7},
    {"feedings_create_idem",
     RECORD_CREATE_IDEM_SQL(FEEDING_INSERT, FEEDING_VALUES, "/api/v1/feedings", FEEDING_JSON, "$8",
                            "$9"),
     9},
    {"feedings_get", RECORD_GET_SQL("feedings", FEEDING_JSON), 3},
    {"feedings_update",
     RECORD_UPDATE_SQL("feedings",
                       "amount_ml = COALESCE($5::int, feedings.amount_ml), "
                       "kind = COALESCE($6, feedings.kind), "
                       "given_at = COALESCE(" FROM_EPOCH_US(
                           "$7") ", feedings.given_at), "
                                 "note = CASE WHEN $8::bool THEN $9 ELSE feedings.note END",
                       FEEDING_JSON),
     9},
    {"feedings_delete", RECORD_DELETE_SQL("feedings"), 4},
    {"feedings_list", FEEDING_LIST FEEDING_ORDER, 6},
    {"feedings_list_after", FEEDING_LIST FEEDING_AFTER("$7", "$8") FEEDING_ORDER, 8},
    {"feedings_kind", FEEDING_LIST "AND kind = $7 " FEEDING_ORDER, 7},
    {"feedings_kind_after", FEEDING_LIST "AND kind = $7 " FEEDING_AFTER("$8", "$9") FEEDING_ORDER,
     9},
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
    {"feedings_stats",
     FEEDING_DAY ", days AS (SELECT (r.today - g)::date AS day FROM r, "
                 "generate_series(0, $4::int - 1) AS g), "
                 "agg AS (SELECT (f.given_at AT TIME ZONE r.tz)::date AS day, count(*) AS n, "
                 "sum(f.amount_ml) AS ml FROM r JOIN feedings f ON f.subject_id = r.sid "
                 "AND f.given_at >= (r.today - ($4::int - 1))::timestamp AT TIME ZONE r.tz "
                 "AND f.given_at < (r.today + 1)::timestamp AT TIME ZONE r.tz GROUP BY 1) "
                 "SELECT json_build_object('days', $4::int, 'from', min(days.day), 'to', "
                 "max(days.day), 'total_count', COALESCE(sum(agg.n), 0), 'total_ml', "
                 "COALESCE(sum(agg.ml), 0), 'avg_ml', CASE WHEN COALESCE(sum(agg.n), 0) = 0 "
                 "THEN 0 ELSE round(sum(agg.ml)::numeric / sum(agg.n), 1) END, "
                 "'avg_daily_ml', round(COALESCE(sum(agg.ml), 0)::numeric / $4::int, 1), "
                 "'per_day', json_agg(json_build_object('date', days.day, 'count', "
                 "COALESCE(agg.n, 0), 'total_ml', COALESCE(agg.ml, 0)) ORDER BY days.day))::text "
                 "FROM days LEFT JOIN agg ON agg.day = days.day HAVING EXISTS (SELECT 1 FROM r)",
     4},
};

int feedings_prepare(struct pl_pg_pool *pool)
{
    return STORE_PREPARE(pool, statements);
}
