#!/usr/bin/env bash
# Feedings v2 benchmark: 100 users with 300 feedings each over the last ~20 days (a mix of
# bottles with amounts and breast feeds with durations and no amount); 64 connections rotate
# over their session tokens:
#     wrk -t2 -c64 -d10s --latency -s rotate.lua URL
# for GET /feedings/timeline (today, and a named past day), GET /stats/feedings (7 and 30
# days: per-day totals, by_method and the gaps by window function) and POST /feedings of a
# breast feed without an amount.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
USERS=${USERS:-100}
trap stop_pulsed EXIT

start_pulsed feedings PULSE_ARGON2_OPSLIMIT=1 PULSE_ARGON2_MEMLIMIT=8192
TOKENS=$OUT/feedings-tokens.txt
register_users "$PULSE_PORT" fv2 "$USERS" "$TOKENS"
who="email LIKE 'fv2%-$RUN_ID@example.com'"
psql -q "$PULSE_MIGRATE_DATABASE_URL" \
  -c "UPDATE subjects s SET daily_target_ml = 800, timezone = 'America/New_York' FROM users u WHERE s.id = u.default_subject_id AND u.$who" \
  -c "INSERT INTO feedings (subject_id, created_by, amount_ml, kind, method, duration_s, given_at) SELECT u.default_subject_id, u.id, CASE WHEN g % 3 = 0 THEN NULL ELSE 50 + g % 150 END, CASE WHEN g % 3 = 0 THEN 'breast_milk' ELSE 'formula' END, CASE WHEN g % 3 = 0 THEN 'breast_left' ELSE 'bottle' END, 300 + g % 900, now() - g * interval '97 minutes' FROM users u, generate_series(1, 300) g WHERE u.$who" \
  -c "ANALYZE feedings" -c "ANALYZE subjects"
PAST=$(date -u -d '3 days ago' +%Y-%m-%d)

run() { # name path [METHOD BODY]
  local name=$1 path=$2
  TOKENS=$TOKENS METHOD=${3:-GET} BODY=${4:-} wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency \
    -s "$ROOT/tests/bench/rotate.lua" "http://127.0.0.1:$PULSE_PORT$path" > "$OUT/$name.txt"
}
run timeline /api/v1/feedings/timeline
run timeline-date "/api/v1/feedings/timeline?date=$PAST"
run stats-7 "/api/v1/stats/feedings?days=7"
run stats-30 "/api/v1/stats/feedings?days=30"
run breast-post /api/v1/feedings POST '{"method":"breast_left","duration_s":600}'

echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency; $USERS users, 300 feedings each; $(nproc) cores; $(date -u +%Y-%m-%d)"
echo
echo "| target | requests/s | p50 | p99 | errors |"
echo "|---|---|---|---|---|"
wrk_row "GET /api/v1/feedings/timeline (today)" "$OUT/timeline.txt"
wrk_row "GET /api/v1/feedings/timeline?date= (a past day)" "$OUT/timeline-date.txt"
wrk_row "GET /api/v1/stats/feedings?days=7" "$OUT/stats-7.txt"
wrk_row "GET /api/v1/stats/feedings?days=30" "$OUT/stats-30.txt"
wrk_row "POST /api/v1/feedings (breast, no amount)" "$OUT/breast-post.txt"
