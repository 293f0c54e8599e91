#!/usr/bin/env bash
# Live fan-out benchmark: SOCKETS (default 10000) WebSockets on /api/v1/live held by one
# wsprobe process (tests/tools/wsprobe.c, libwebsockets client on libuv), USERS (100) users,
# socket i authenticated with user i % USERS's session token (Authorization: Bearer, never in
# the URL):
#     wsprobe fanout --sockets 10000 --seconds 20 --post-ms 200
# Over the window it counts the metrics frames every socket receives (one a second each:
# PULSE_METRICS_INTERVAL_MS=1000) and POSTs a feeding every 200 ms for the next user, timing
# the feeding.created event to each of that user's sockets. pulsed's RSS is read before the
# sockets connect and again with all of them idle-connected after the window; the difference
# over SOCKETS is the memory of one idle connection (lws wsi, our per-socket state, socket
# buffers that count in RSS).
# Setup only: users register and log in at the lowest Argon2 cost
# (PULSE_ARGON2_OPSLIMIT=1 PULSE_ARGON2_MEMLIMIT=8192); logins are not what is measured.
# Needs DATABASE_URL and REDIS_URL (run through `make bench BENCH=live`), a hard
# RLIMIT_NOFILE above SOCKETS + 1100 (both pulsed and wsprobe raise their soft limit to it).
# WSPROBE overrides the client binary (default: built here, release, in build-bench/).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SOCKETS=${SOCKETS:-10000}
USERS=${USERS:-100}
WINDOW=${LIVE_SECONDS:-20}
WSPROBE_PID=
cleanup() {
  if [ -n "$WSPROBE_PID" ]; then
    kill -TERM "$WSPROBE_PID" 2> /dev/null || true
    wait "$WSPROBE_PID" 2> /dev/null || true
  fi
  stop_pulsed
}
trap cleanup EXIT

hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((SOCKETS + 1100)) ]; then
  echo "live: the hard RLIMIT_NOFILE is $hard; $SOCKETS sockets need $((SOCKETS + 1100)) (raise it, or set SOCKETS)" >&2
  exit 1
fi
ulimit -n "$hard"

if [ -z "${WSPROBE:-}" ]; then
  cmake -S "$ROOT" -B "$ROOT/build-bench" --log-level=WARNING -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPULSE_TESTS=ON > /dev/null
  cmake --build "$ROOT/build-bench" --target wsprobe -j"$(nproc)" > /dev/null
  WSPROBE=$ROOT/build-bench/tests/wsprobe
fi

# SOCKETS / USERS sockets per user and all of them from 127.0.0.1: above the default caps
# (PULSE_WS_PER_USER 32, PULSE_WS_PER_IP 256), which are not what is measured here.
start_pulsed live PULSE_MAX_CONNECTIONS=20000 PULSE_METRICS_INTERVAL_MS=1000 \
  PULSE_WS_PER_USER="$SOCKETS" PULSE_WS_PER_IP="$SOCKETS" \
  PULSE_ARGON2_OPSLIMIT=1 PULSE_ARGON2_MEMLIMIT=8192
BASE=http://127.0.0.1:$PULSE_PORT
TOKENS=$OUT/live-tokens.txt
register_users "$PULSE_PORT" live "$USERS" "$TOKENS"
sleep 1
RSS_BEFORE=$(rss_kb "$PULSE_PID")
FDS_BEFORE=$(find "/proc/$PULSE_PID/fd" -mindepth 1 | wc -l)

# wsprobe prints its summary after the window and a grace period, then holds the sockets
# (at most 120 s) until we have read the server's RSS and stop it.
SUMMARY=$OUT/live-wsprobe.json
: > "$SUMMARY"
"$WSPROBE" fanout --port "$PULSE_PORT" --tokens "$TOKENS" --sockets "$SOCKETS" --seconds "$WINDOW" \
  --post-ms 200 --ramp 256 --settle 2 --grace 3 --hold 120 --server-pid "$PULSE_PID" \
  > "$SUMMARY" 2> "$OUT/live-wsprobe.log" &
WSPROBE_PID=$!
for _ in $(seq 600); do
  grep -q '"mode"' "$SUMMARY" && break
  kill -0 "$WSPROBE_PID" 2> /dev/null || break
  sleep 0.5
done
if ! grep -q '"mode"' "$SUMMARY"; then
  echo "live: wsprobe gave no summary (log: $OUT/live-wsprobe.log)" >&2
  tail -n 20 "$OUT/live-wsprobe.log" >&2
  exit 1
fi
sleep 2 # idle: only the metrics frame each second
RSS_AFTER=$(rss_kb "$PULSE_PID")
FDS_AFTER=$(find "/proc/$PULSE_PID/fd" -mindepth 1 | wc -l)
kill -TERM "$WSPROBE_PID" 2> /dev/null || true
wait "$WSPROBE_PID" 2> /dev/null || true
WSPROBE_PID=

# shellcheck disable=SC2016 # the JavaScript's own ${...}
RSS_BEFORE=$RSS_BEFORE RSS_AFTER=$RSS_AFTER FDS_BEFORE=$FDS_BEFORE FDS_AFTER=$FDS_AFTER \
  SOCKETS=$SOCKETS USERS=$USERS CORES=$(nproc) node -e '
const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").pop());
const e = process.env, m = d.metrics, ev = d.events, r = d.resources;
const held = d.open_at_end, before = +e.RSS_BEFORE, after = +e.RSS_AFTER;
const f = (x, n = 1) => (x === null || x === undefined ? "-" : Number(x).toFixed(n));
const codes = Object.entries(d.close_codes).map(([k, v]) => `${k}: ${v}`).join(", ") || "none";
const fails = Object.entries(d.fail_reasons).map(([k, v]) => `${k}: ${v}`).join("; ") || "none";
console.log(`wsprobe fanout --sockets ${e.SOCKETS} --seconds ${f(d.window_s, 0)} --post-ms 200; ${e.USERS} users; PULSE_WORKERS=2; ${e.CORES} cores; ${new Date().toISOString().slice(0, 10)}`);
console.log();
console.log("| figure | value |");
console.log("|---|---|");
console.log(`| connections held | ${held} of ${d.sockets} (established ${d.established} in ${f(d.connect_s, 2)} s, failed ${d.failed}: ${fails}; closed by the server: ${d.closed_by_server}, codes ${codes}) |`);
console.log(`| metrics frames/s delivered | ${f(m.frames_per_s, 0)} (${m.frames_received} in the window) |`);
console.log(`| frames per socket per second | ${f(m.per_socket_per_s, 3)} (per socket over the window: min ${m.per_socket_min}, avg ${f(m.per_socket_avg, 2)}, expected ${m.frames_expected_per_socket}; sockets that missed a frame: ${m.sockets_missed_frames}) |`);
console.log(`| metrics fan-out, first to last socket | p50 ${f(m.fanout_spread_ms_p50)} ms, max ${f(m.fanout_spread_ms_max)} ms |`);
console.log(`| event lag (POST sent → event on each socket of that user) | p50 ${f(ev.lag_ms_p50)} ms, p99 ${f(ev.lag_ms_p99)} ms, max ${f(ev.lag_ms_max)} ms; ${ev.deliveries_received} of ${ev.deliveries_expected} deliveries, ${ev.posts_ok}/${ev.posts} POSTs ok (POST p50 ${f(ev.post_ms_p50)} ms, p99 ${f(ev.post_ms_p99)} ms) |`);
console.log(`| CPU over the window (% of one core) | pulsed ${f(r.server_cpu_window_percent)}, wsprobe ${f(r.client_cpu_window_percent)} |`);
console.log(`| pulsed RSS | ${before} KiB before, ${after} KiB with ${held} idle connections: ${held ? f((after - before) * 1024 / held, 0) : "-"} bytes per connection; fds ${e.FDS_BEFORE} → ${e.FDS_AFTER} |`);
' "$SUMMARY"
