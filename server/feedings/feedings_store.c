/* The SQL of feedings: every statement is scoped by the caller's user id. Day boundaries
 * are the user's local midnights converted to instants by Postgres (23- and 25-hour days
 * around DST changes come out right). */
#include "../records/records_store.h"
#include "feedings.h"

/* given_at arrives as microseconds since the epoch, parsed by pl_time_parse_rfc3339: the
 * text would meet Postgres's own parser, which refuses offsets of 16 hours and more that
 * RFC 3339 allows (a 500), and rounds digits past the microsecond that we truncate. */
#define FEEDING_INSERT                                                                             \
    "INSERT INTO feedings (created_by, subject_id, amount_ml, kind, given_at, note)"
#define FEEDING_VALUES                                                                                                        \
    "$1, (SELECT default_subject_id FROM users WHERE id = $1::uuid), $2::int, COALESCE($3, 'food'), COALESCE(" FROM_EPOCH_US( \
        "$4") ", now()), $5"
/* The time range is always an index condition (open ends are -infinity/infinity); the kind
 * filter has statements of its own so the plain list keeps a clean generic plan. */
#define FEEDING_LIST                                                                               \
    "SELECT " FEEDING_JSON ", " EPOCH_US(                                                          \
        "given_at") "::text AS c1, id::text AS c2 FROM feedings "                                  \
                    "WHERE created_by = $1 AND given_at >= COALESCE(" FROM_EPOCH_US(               \
                        "$2") ", '-infinity') "                                                    \
                              "AND given_at < COALESCE(" FROM_EPOCH_US("$3") ", 'infinity') "
#define FEEDING_ORDER       "ORDER BY given_at DESC, id DESC "
#define FEEDING_AFTER(a, b) "AND (given_at, id) < (" FROM_EPOCH_US(a) ", " b "::uuid) "

static const struct stmt_def statements[] = {
    {"feedings_create",
     FEEDING_INSERT " VALUES (" FEEDING_VALUES ") RETURNING id, version, " FEEDING_JSON, 5},
    {"feedings_create_idem",
     RECORD_CREATE_IDEM_SQL(FEEDING_INSERT " SELECT " FEEDING_VALUES, "/api/v1/feedings",
                            FEEDING_JSON, "$6", "$7"),
     7},
    {"feedings_get", RECORD_GET_SQL("feedings", FEEDING_JSON), 2},
    {"feedings_update",
     "UPDATE feedings SET amount_ml = COALESCE($4::int, amount_ml), kind = COALESCE($5, kind), "
     "given_at = COALESCE(" FROM_EPOCH_US(
         "$6") ", given_at), "
               "note = CASE WHEN $7::bool THEN $8 ELSE note END, "
               "version = version + 1, updated_at = now() " RECORD_MATCH
               "RETURNING id, version, " FEEDING_JSON,
     8},
    {"feedings_delete", RECORD_DELETE_SQL("feedings"), 3},
    {"feedings_version", RECORD_VERSION_SQL("feedings"), 2},
    {"feedings_list", FEEDING_LIST FEEDING_ORDER "LIMIT $4", 4},
    {"feedings_list_after", FEEDING_LIST FEEDING_AFTER("$5", "$6") FEEDING_ORDER "LIMIT $4", 6},
    {"feedings_kind", FEEDING_LIST "AND kind = $5 " FEEDING_ORDER "LIMIT $4", 5},
    {"feedings_kind_after",
     FEEDING_LIST "AND kind = $5 " FEEDING_AFTER("$6", "$7") FEEDING_ORDER "LIMIT $4", 7},
    {"feedings_today",
     "WITH b AS (SELECT d.day, u.timezone AS tz, COALESCE((SELECT daily_target_ml FROM subjects WHERE id = u.default_subject_id), 0) AS target, "
     "d.day::timestamp AT TIME ZONE u.timezone AS lo, "
     "(d.day + 1)::timestamp AT TIME ZONE u.timezone AS hi "
     "FROM users u, LATERAL (SELECT (now() AT TIME ZONE u.timezone)::date AS day) d "
     "WHERE u.id = $1), "
     "t AS (SELECT b.*, COALESCE(sum(f.amount_ml), 0) AS total, count(f.id) AS n, "
     "max(f.given_at) AS last FROM b LEFT JOIN feedings f ON f.created_by = $1 "
     "AND f.given_at >= b.lo AND f.given_at < b.hi GROUP BY b.day, b.tz, b.target, b.lo, b.hi) "
     "SELECT json_build_object('date', day, 'timezone', tz, 'target_ml', target, "
     "'total_ml', total, 'count', n, 'remaining_ml', GREATEST(target - total, 0), "
     "'progress', CASE WHEN target = 0 THEN 0 ELSE total::float8 / target END, "
     "'last_given_at', " TS("last") ")::text FROM t",
     1},
    {"feedings_stats",
     "WITH r AS (SELECT u.timezone AS tz, (now() AT TIME ZONE u.timezone)::date AS today "
     "FROM users u WHERE u.id = $1), "
     "days AS (SELECT (r.today - g)::date AS day FROM r, generate_series(0, $2::int - 1) AS g), "
     "agg AS (SELECT (f.given_at AT TIME ZONE r.tz)::date AS day, count(*) AS n, "
     "sum(f.amount_ml) AS ml FROM r JOIN feedings f ON f.created_by = $1 "
     "AND f.given_at >= (r.today - ($2::int - 1))::timestamp AT TIME ZONE r.tz "
     "AND f.given_at < (r.today + 1)::timestamp AT TIME ZONE r.tz GROUP BY 1) "
     "SELECT json_build_object('days', $2::int, 'from', min(days.day), 'to', max(days.day), "
     "'total_count', COALESCE(sum(agg.n), 0), 'total_ml', COALESCE(sum(agg.ml), 0), "
     "'avg_ml', CASE WHEN COALESCE(sum(agg.n), 0) = 0 THEN 0 "
     "ELSE round(sum(agg.ml)::numeric / sum(agg.n), 1) END, "
     "'avg_daily_ml', round(COALESCE(sum(agg.ml), 0)::numeric / $2::int, 1), "
     "'per_day', json_agg(json_build_object('date', days.day, 'count', COALESCE(agg.n, 0), "
     "'total_ml', COALESCE(agg.ml, 0)) ORDER BY days.day))::text "
     "FROM days LEFT JOIN agg ON agg.day = days.day",
     2},
};

int feedings_prepare(struct pl_pg_pool *pool)
{
    return STORE_PREPARE(pool, statements);
}
