#!/usr/bin/env bash
# Replicas benchmark: capacity of one pulsed and of three behind nginx, on this machine.
# nginx runs the project's own config (deploy/nginx/pulse.conf: least_conn, upstream
# keep-alive, JSON access log) rewritten for loopback by tests/e2e/nginx.mjs, TLS off.
#   1. one replica, direct (no nginx), PULSE_WORKERS=$WORKERS (default 2 = cores)
#   2. nginx -> one replica, PULSE_WORKERS=$WORKERS
#   3. nginx -> three replicas, PULSE_WORKERS=$REPLICA_WORKERS each (default 1, as in
#      docker-compose.prod.yml)
# each against GET /health/live and an authenticated GET /api/v1/feedings/today ($USERS users
# with 300 feedings each; 64 connections rotate over their session tokens):
#     wrk -t2 -c64 -d10s --latency [-s rotate.lua] URL
# Release build (build/pulsed, or $PULSE_BIN); pulsed's access log and rate limits off as in
# the other benchmarks. Needs DATABASE_URL and REDIS_URL (run through `make bench
# BENCH=replicas`). Prints a Markdown table; raw wrk output goes to $OUT (default build/bench).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
USERS=${USERS:-50}
WORKERS=${WORKERS:-2}
REPLICA_WORKERS=${REPLICA_WORKERS:-1}
# Low Argon2 cost for the setup's registrations; the GETs measured never hash.
PULSE_ENV=(PULSE_ARGON2_OPSLIMIT=1 PULSE_ARGON2_MEMLIMIT=8192)

REPLICA_PIDS=()
REPLICA_PORTS=()
NGINX_PID=
NGINX_PORT=
NGINX_DIR=$(mktemp -d /tmp/pulse-bench-nginx.XXXXXX)

stop_replicas() {
  local pid
  for pid in "${REPLICA_PIDS[@]}"; do kill -TERM "$pid" 2> /dev/null || true; done
  for pid in "${REPLICA_PIDS[@]}"; do wait "$pid" 2> /dev/null || true; done
  REPLICA_PIDS=()
  REPLICA_PORTS=()
}

stop_nginx() {
  if [ -n "$NGINX_PID" ]; then
    kill -QUIT "$NGINX_PID" 2> /dev/null || true
    wait "$NGINX_PID" 2> /dev/null || true
  fi
  NGINX_PID=
  rm -f "$NGINX_DIR/access.log"
}

cleanup() {
  stop_nginx
  stop_replicas
  rm -rf "$NGINX_DIR"
}
trap cleanup EXIT

# start_replicas N WORKERS: N pulsed processes on free ports (see lib.sh start_pulsed)
start_replicas() {
  local i
  for i in $(seq "$1"); do
    start_pulsed "replicas-$i" "${PULSE_ENV[@]}" PULSE_WORKERS="$2" PULSE_INSTANCE="pulse$i"
    REPLICA_PIDS+=("$PULSE_PID")
    REPLICA_PORTS+=("$PULSE_PORT")
    PULSE_PID= # owned by REPLICA_PIDS now
  done
}

# start_nginx: nginx on a free port, upstream = the running replicas
start_nginx() {
  local list _
  NGINX_PORT=$(free_port)
  list=$(printf '127.0.0.1:%s,' "${REPLICA_PORTS[@]}")
  NGINX_WORKERS=$(nproc) node "$ROOT/tests/e2e/nginx.mjs" conf "$NGINX_DIR" "$NGINX_PORT" "${list%,}" > /dev/null
  nginx -p "$NGINX_DIR/" -c "$NGINX_DIR/nginx.conf" &
  NGINX_PID=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$NGINX_PORT/health/ready" > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "nginx did not start: $(tail -n 5 "$NGINX_DIR/error.log" 2> /dev/null)" >&2
  return 1
}

# requests_per_replica: each replica's share of the requests it counted (its /metrics)
requests_per_replica() {
  local port out=()
  for port in "${REPLICA_PORTS[@]}"; do
    out+=("$(curl -fs "http://127.0.0.1:$port/metrics" | awk '/^pulse_http_requests_total/ {s += $NF} END {printf "%.0f", s}')")
  done
  echo "${out[*]}"
}

# run NAME BASE_URL: wrk on /health/live and /api/v1/feedings/today, one table row each
run() {
  local name=$1 base=$2
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$base/health/live" > "$OUT/replicas-$name-live.txt"
  TOKENS=$TOKENS METHOD=GET wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency \
    -s "$ROOT/tests/bench/rotate.lua" "$base/api/v1/feedings/today" > "$OUT/replicas-$name-today.txt"
}

# ---- setup: users with a history of feedings, their session tokens ----------------------
start_replicas 1 "$WORKERS"
TOKENS=$OUT/replicas-tokens.txt
register_users "${REPLICA_PORTS[0]}" rep "$USERS" "$TOKENS"
seed_feedings rep
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- 1. direct, 2. nginx -> 1 ---------------------------------------------------------------
run direct-1 "http://127.0.0.1:${REPLICA_PORTS[0]}"
start_nginx
run nginx-1 "http://127.0.0.1:$NGINX_PORT"
stop_nginx
stop_replicas

# ---- 3. nginx -> 3 ------------------------------------------------------------------------
start_replicas 3 "$REPLICA_WORKERS"
start_nginx
before=$(requests_per_replica)
run nginx-3 "http://127.0.0.1:$NGINX_PORT"
after=$(requests_per_replica)
read -r -a b <<< "$before"
read -r -a a <<< "$after"
SHARE=$(for i in "${!a[@]}"; do printf '%s ' "$((a[i] - b[i]))"; done)
stop_nginx
stop_replicas

echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency; $(nproc) cores shared by wrk, nginx, pulsed, Postgres and Redis;" \
  "$USERS users; load average before: $LOAD_BEFORE; $(date -u +%Y-%m-%d)"
echo
echo "| setup | target | requests/s | p50 | p99 | errors |"
echo "|---|---|---|---|---|---|"
row() { # SETUP TARGET FILE
  wrk_row "$1 | $2" "$3"
}
row "1 replica, direct ($WORKERS workers)" "GET /health/live" "$OUT/replicas-direct-1-live.txt"
row "1 replica, direct ($WORKERS workers)" "GET /api/v1/feedings/today" "$OUT/replicas-direct-1-today.txt"
row "nginx → 1 replica ($WORKERS workers)" "GET /health/live" "$OUT/replicas-nginx-1-live.txt"
row "nginx → 1 replica ($WORKERS workers)" "GET /api/v1/feedings/today" "$OUT/replicas-nginx-1-today.txt"
row "nginx → 3 replicas ($REPLICA_WORKERS worker each)" "GET /health/live" "$OUT/replicas-nginx-3-live.txt"
row "nginx → 3 replicas ($REPLICA_WORKERS worker each)" "GET /api/v1/feedings/today" "$OUT/replicas-nginx-3-today.txt"
echo
echo "requests counted by each of the 3 replicas during their runs: $SHARE"
