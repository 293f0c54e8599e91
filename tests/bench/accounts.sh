#!/usr/bin/env bash
# Accounts benchmark:
#  1. authenticated GET /api/v1/me, 64 connections over 100 users' sessions:
#       wrk -t2 -c64 -d10s --latency -s me.lua URL
#     beside `pgbench -S -M prepared -c 64 -j 2 -T 10` on the same Postgres (the ceiling);
#  2. a login storm (POST /auth/login, 16 connections, real Argon2id cost) while a second wrk
#     probes /health/live with 4 connections: logins/s and the probe's p99 (the loop must
#     not stall while hashes run on the thread pool).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
USERS=${USERS:-100}
trap stop_pulsed EXIT

PG_TPS=$(pgbench_select)

start_pulsed accounts PULSE_ARGON2_CONCURRENCY=2
TOKENS=$OUT/tokens.txt
register_users "$PULSE_PORT" bench "$USERS" "$TOKENS" 8
stop_pulsed

# GET /me: fresh server, default Argon2 settings do not matter here
start_pulsed accounts
IDLE=$(rss_kb "$PULSE_PID")
TOKENS=$TOKENS wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$ROOT/tests/bench/rotate.lua" \
  "http://127.0.0.1:$PULSE_PORT/api/v1/me" > "$OUT/me.txt"
stop_pulsed

# login storm: libsodium INTERACTIVE cost (the default), PULSE_ARGON2_CONCURRENCY=2
start_pulsed logins PULSE_ARGON2_CONCURRENCY=2
USERS=$USERS RUN_ID=$RUN_ID wrk -t1 -c16 -d"$DURATION" --latency -s "$ROOT/tests/bench/login.lua" \
  "http://127.0.0.1:$PULSE_PORT/api/v1/auth/login" > "$OUT/login.txt" &
STORM=$!
sleep 1
wrk -t1 -c4 -d"$(( ${DURATION%s} - 2 ))s" --latency "http://127.0.0.1:$PULSE_PORT/health/live" > "$OUT/live-during-logins.txt"
wait $STORM

echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency; $(nproc) cores; $(date -u +%Y-%m-%d)"
echo
echo "| target | requests/s | p50 | p99 | errors |"
echo "|---|---|---|---|---|"
printf '| pgbench -S -M prepared -c 64 -j 2 -T 10 (same Postgres) | %s tps | | | |\n' "$PG_TPS"
wrk_row "GET /api/v1/me ($USERS users, 64 conns)" "$OUT/me.txt"
wrk_row "POST /api/v1/auth/login (16 conns, Argon2id INTERACTIVE, concurrency 2)" "$OUT/login.txt"
wrk_row "GET /health/live during the login storm (4 conns)" "$OUT/live-during-logins.txt"
ME=$(awk '/Requests\/sec/ {print $2}' "$OUT/me.txt")
echo
echo "GET /me / pgbench -S: $(node -e "console.log(($ME/$PG_TPS).toFixed(2))")x; pulsed idle RSS ${IDLE} KiB"
