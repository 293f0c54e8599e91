#!/usr/bin/env bash
# HTTP benchmark: pulsed's /health/live and /health/ready against nginx serving a small
# static file, same machine, same run, same wrk settings:
#     wrk -t2 -c64 -d10s --latency URL
# Needs DATABASE_URL and REDIS_URL (run through `make bench`, which starts the services).
# Prints a Markdown table; raw wrk output goes to $OUT (default build/bench).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NGINX_PORT=$(free_port)
NGINX_DIR=$(mktemp -d)
cleanup() {
  stop_pulsed
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

start_pulsed http
IDLE_RSS=$(rss_kb "$PULSE_PID")

run() { # name url
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$2" > "$OUT/$1.txt"
  wrk_row "$1" "$OUT/$1.txt"
}

echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| target | requests/s | p50 | p99 | errors |"
echo "|---|---|---|---|---|"
run nginx-static "http://127.0.0.1:$NGINX_PORT/live.json"
run pulsed-live "http://127.0.0.1:$PULSE_PORT/health/live"
run pulsed-ready "http://127.0.0.1:$PULSE_PORT/health/ready"
echo
echo "pulsed RSS: idle ${IDLE_RSS} KiB after start-up, $(rss_kb "$PULSE_PID") KiB after the runs"
