#!/usr/bin/env bash
# HTTP benchmark: pulsed's /health/live and /health/ready against nginx serving a small
# static file, same machine, same run, same wrk settings:
#     wrk -t2 -c64 -d10s --latency URL
# Needs DATABASE_URL and REDIS_URL (run through `make bench`, which starts the services).
# Prints a Markdown table; raw wrk output goes to $OUT (default build/bench).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${PULSE_BIN:-$ROOT/build/pulsed}
OUT=${OUT:-$ROOT/build/bench}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
mkdir -p "$OUT"
: "${DATABASE_URL:?run through make bench}" "${REDIS_URL:?run through make bench}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
  || node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

PULSE_PORT=$(free_port)
NGINX_PORT=$(free_port)
NGINX_DIR=$(mktemp -d)
cleanup() {
  [ -n "${PULSE_PID:-}" ] && kill -TERM "$PULSE_PID" 2>/dev/null && wait "$PULSE_PID" 2>/dev/null || true
  [ -f "$NGINX_DIR/nginx.pid" ] && kill -QUIT "$(cat "$NGINX_DIR/nginx.pid")" 2>/dev/null || true
  rm -rf "$NGINX_DIR"
}
trap cleanup EXIT

# nginx: the ceiling for this box. Two workers (= cores), no access log, keep-alive without
# a request cap, the same small JSON body as /health/live.
mkdir -p "$NGINX_DIR/html" "$NGINX_DIR/tmp"
chmod 755 "$NGINX_DIR" "$NGINX_DIR/html"   # nginx workers run as www-data
printf '{"status":"ok"}' > "$NGINX_DIR/html/live.json"
chmod 644 "$NGINX_DIR/html/live.json"
cat > "$NGINX_DIR/nginx.conf" <<CONF
worker_processes 2;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $NGINX_DIR/tmp; proxy_temp_path $NGINX_DIR/tmp;
  fastcgi_temp_path $NGINX_DIR/tmp; uwsgi_temp_path $NGINX_DIR/tmp; scgi_temp_path $NGINX_DIR/tmp;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT reuseport;
    root $NGINX_DIR/html;
    location / { default_type application/json; }
  }
}
CONF
nginx -c "$NGINX_DIR/nginx.conf" -p "$NGINX_DIR"

PULSE_LISTEN=127.0.0.1:$PULSE_PORT PULSE_ACCESS_LOG=off PULSE_RATE_LIMITS=off PULSE_AUTO_MIGRATE=1 \
  PULSE_MIGRATIONS_DIR=$ROOT/migrations PULSE_WORKERS=${PULSE_WORKERS:-2} \
  "$BIN" serve > "$OUT/pulsed.log" 2>&1 &
PULSE_PID=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$PULSE_PORT/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$PULSE_PORT/health/ready" >/dev/null

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$PULSE_PID/status"; }
IDLE_RSS=$(rss_kb)

bench() { # name url
  local name=$1 url=$2
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$url" > "$OUT/$name.txt"
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/$name.txt")
  p50=$(awk '$1=="50%" {print $2}' "$OUT/$name.txt")
  p99=$(awk '$1=="99%" {print $2}' "$OUT/$name.txt")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' "$OUT/$name.txt" | tr '\n' ' ')
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$rps" "$p50" "$p99" "${errs:-none}"
}

echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| target | requests/s | p50 | p99 | errors |"
echo "|---|---|---|---|---|"
bench nginx-static "http://127.0.0.1:$NGINX_PORT/live.json"
bench pulsed-live "http://127.0.0.1:$PULSE_PORT/health/live"
bench pulsed-ready "http://127.0.0.1:$PULSE_PORT/health/ready"
LOADED_RSS=$(rss_kb)
echo
echo "pulsed RSS: idle ${IDLE_RSS} KiB after start-up, ${LOADED_RSS} KiB after the runs"
