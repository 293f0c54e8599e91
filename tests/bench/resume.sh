#!/usr/bin/env bash
# Resume benchmark: SOCKETS (default 1000) live sockets of USERS (10) users, each socket
# resuming EVENTS (1000) events at once (tests/bench/resume_client.mjs, node + ws): the events
# are published into each user's Redis stream in server/events.c's format (frames the size of
# a feeding.created), every socket opens and gets its hello, then after IDLE seconds all send
# {"type":"resume","after":<the event before those>} together. Measured: the time from the
# resumes to each socket's "resumed" (p50, p99, max; every socket must get exactly EVENTS
# events and resumed.count = EVENTS), and the live event lag of another user's socket (POST a
# feeding every 100 ms through the API, time to its feeding.created) while idle and during the
# resumes; the probe runs in its own node process, so the resuming client's load does not
# delay its clock.
# Needs DATABASE_URL and REDIS_URL (run through `make bench BENCH=resume`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SOCKETS=${SOCKETS:-1000}
USERS=${USERS:-10}
EVENTS=${EVENTS:-1000}
IDLE=${IDLE:-5}
PROBE_PID=
cleanup() {
  if [ -n "$PROBE_PID" ]; then
    kill -TERM "$PROBE_PID" 2> /dev/null || true
    wait "$PROBE_PID" 2> /dev/null || true
  fi
  stop_pulsed
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
[ -d "$ROOT/tests/e2e/node_modules/ws" ] || (cd "$ROOT/tests/e2e" && npm ci --no-audit --no-fund --loglevel=error)

start_pulsed resume PULSE_MAX_CONNECTIONS=5000 PULSE_METRICS_INTERVAL_MS=1000 \
  PULSE_WS_PER_USER="$SOCKETS" PULSE_WS_PER_IP="$((SOCKETS + 10))" \
  PULSE_EVENTS_RETAIN_COUNT="$((EVENTS + 10))" \
  PULSE_ARGON2_OPSLIMIT=1 PULSE_ARGON2_MEMLIMIT=8192
TOKENS=$OUT/resume-tokens.txt
PROBE_TOKEN=$OUT/resume-probe-token.txt
register_users "$PULSE_PORT" resume "$USERS" "$TOKENS"
register_users "$PULSE_PORT" resumeprobe 1 "$PROBE_TOKEN"
CLIENT=$ROOT/tests/bench/resume_client.mjs

node "$CLIENT" resume --port "$PULSE_PORT" --tokens "$TOKENS" --sockets "$SOCKETS" \
  --events "$EVENTS" --idle "$IDLE" > "$OUT/resume-client.json" 2> "$OUT/resume-client.log" &
CLIENT_PID=$!
# the probe starts once the client has seeded and is connecting; it runs through the resumes
sleep 2
node "$CLIENT" probe --port "$PULSE_PORT" --token "$(cat "$PROBE_TOKEN")" \
  --seconds "$((IDLE + 40))" --post-ms 100 > "$OUT/resume-probe.jsonl" 2> "$OUT/resume-probe.log" &
PROBE_PID=$!
wait "$CLIENT_PID" || { echo "resume: the client failed (log: $OUT/resume-client.log)" >&2; tail -n 20 "$OUT/resume-client.log" >&2; exit 1; }
kill -TERM "$PROBE_PID" 2> /dev/null || true
wait "$PROBE_PID" 2> /dev/null || true
PROBE_PID=
node "$CLIENT" summary --resume "$OUT/resume-client.json" --probe "$OUT/resume-probe.jsonl" > "$OUT/resume.json"
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const f = (x) => (x === null ? "-" : x);
console.log(`${r.sockets} sockets (${r.users} users) each resuming ${r.events_per_socket} events at once; ${r.complete} of ${r.sockets} got exactly all of them`);
console.log("");
console.log("| measure | p50 | p99 | max |");
console.log("|---|---|---|---|");
console.log(`| time to caught up (ms) | ${f(r.caught_up_ms.p50)} | ${f(r.caught_up_ms.p99)} | ${f(r.caught_up_ms.max)} |`);
console.log(`| live event lag, idle (ms, n=${r.live_lag_idle_ms.n}) | ${f(r.live_lag_idle_ms.p50)} | ${f(r.live_lag_idle_ms.p99)} | ${f(r.live_lag_idle_ms.max)} |`);
console.log(`| live event lag during the resumes (ms, n=${r.live_lag_during_ms.n}) | ${f(r.live_lag_during_ms.p50)} | ${f(r.live_lag_during_ms.p99)} | ${f(r.live_lag_during_ms.max)} |`);
console.log("");
console.log(`replayed ${r.frames} frames at ${r.frames_per_s}/s`);
if (r.complete !== r.sockets) process.exit(1);
' "$OUT/resume.json"
