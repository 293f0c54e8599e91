#!/usr/bin/env bash
# Records benchmark: 100 users with 300 feedings and 50 notes each; 64 connections rotate
# over their session tokens:
#     wrk -t2 -c64 -d10s --latency -s rotate.lua URL
# for GET /feedings/today, GET /feedings?limit=20, POST /feedings, GET /notes?q=walk, and the
# first two naming the user's subject (?subject_id=: care circles, the membership checked in
# the same statement as the query),
# beside `pgbench -S -M prepared -c 64 -j 2 -T 10` on the same Postgres (the ceiling).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
USERS=${USERS:-100}
trap stop_pulsed EXIT

PG_TPS=$(pgbench_select)

# Setup at the lowest Argon2 cost: logins are not what is measured here.
start_pulsed records PULSE_ARGON2_OPSLIMIT=1 PULSE_ARGON2_MEMLIMIT=8192
TOKENS=$OUT/records-tokens.txt
register_users "$PULSE_PORT" rec "$USERS" "$TOKENS"
seed_feedings rec
psql -q "$DATABASE_URL" -c "INSERT INTO notes (subject_id, created_by, title, body, tags) SELECT u.default_subject_id, u.id, 'note ' || g, CASE WHEN g % 5 = 0 THEN 'a long walk in the park' ELSE 'slept well' END, ARRAY['t' || g % 4] FROM users u, generate_series(1, 50) g WHERE u.email LIKE 'rec%-$RUN_ID@example.com'" \
  -c "ANALYZE"
IDLE=$(rss_kb "$PULSE_PID")
# "token subject_id" lines: each token's default subject, as a feeding of theirs names it
SUBJECT_TOKENS=$OUT/records-subject-tokens.txt
while read -r t; do
  s=$(curl -fs -H "Authorization: Bearer $t" "http://127.0.0.1:$PULSE_PORT/api/v1/feedings?limit=1" \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).items[0].subject_id))')
  echo "$t $s"
done < "$TOKENS" > "$SUBJECT_TOKENS"

run() { # name path [METHOD BODY]
  local name=$1 path=$2
  TOKENS=${RUN_TOKENS:-$TOKENS} METHOD=${3:-GET} BODY=${4:-} wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency \
    -s "$ROOT/tests/bench/rotate.lua" "http://127.0.0.1:$PULSE_PORT$path" > "$OUT/$name.txt"
}
run today /api/v1/feedings/today
run feedings-page "/api/v1/feedings?limit=20"
RUN_TOKENS=$SUBJECT_TOKENS PATH_TEMPLATE="/api/v1/feedings/today?subject_id={subject}" run today-subject /api/v1/feedings/today
RUN_TOKENS=$SUBJECT_TOKENS PATH_TEMPLATE="/api/v1/feedings?limit=20&subject_id={subject}" run feedings-page-subject /api/v1/feedings
run notes-search "/api/v1/notes?q=walk"
run feedings-post /api/v1/feedings POST '{"amount_ml":120,"kind":"milk"}'

echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency; $USERS users; $(nproc) cores; $(date -u +%Y-%m-%d)"
echo
echo "| target | requests/s | p50 | p99 | errors |"
echo "|---|---|---|---|---|"
printf '| pgbench -S -M prepared -c 64 -j 2 -T 10 (same Postgres) | %s tps | | | |\n' "$PG_TPS"
wrk_row "GET /api/v1/feedings/today" "$OUT/today.txt"
wrk_row "GET /api/v1/feedings?limit=20" "$OUT/feedings-page.txt"
wrk_row "GET /api/v1/feedings/today?subject_id=" "$OUT/today-subject.txt"
wrk_row "GET /api/v1/feedings?limit=20&subject_id=" "$OUT/feedings-page-subject.txt"
wrk_row "GET /api/v1/notes?q=walk" "$OUT/notes-search.txt"
wrk_row "POST /api/v1/feedings" "$OUT/feedings-post.txt"
T=$(awk '/Requests\/sec/ {print $2}' "$OUT/today.txt")
echo
echo "GET /feedings/today / pgbench -S: $(node -e "console.log(($T/$PG_TPS).toFixed(2))")x; pulsed RSS ${IDLE} KiB before, $(rss_kb "$PULSE_PID") KiB after"
