# Shared by the benchmarks: free ports, starting pulsed, wrk summaries. Sourced, not run.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${PULSE_BIN:-$ROOT/build/pulsed}
OUT=${OUT:-$ROOT/build/bench}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
mkdir -p "$OUT"
: "${DATABASE_URL:?run through make bench}" "${REDIS_URL:?run through make bench}"
: "${PULSE_MIGRATE_DATABASE_URL:?run through make bench}" "${PULSE_TEST_ADMIN_URL:?run through make bench}"

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# start_pulsed NAME [VAR=value...]: starts pulsed on a free port with benchmark settings
# (no access log, limits off); sets PULSE_PORT and PULSE_PID.
start_pulsed() {
  local name=$1
  shift
  PULSE_PORT=$(free_port)
  env PULSE_LISTEN=127.0.0.1:$PULSE_PORT PULSE_ACCESS_LOG=off PULSE_RATE_LIMITS=off \
    PULSE_AUTO_MIGRATE=1 PULSE_MIGRATIONS_DIR="$ROOT/migrations" PULSE_WORKERS="${PULSE_WORKERS:-2}" \
    "$@" "$BIN" serve > "$OUT/$name-pulsed.log" 2>&1 &
  PULSE_PID=$!
  for _ in $(seq 200); do
    curl -fs "http://127.0.0.1:$PULSE_PORT/health/ready" > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "pulsed did not become ready" >&2
  return 1
}

stop_pulsed() {
  [ -n "${PULSE_PID:-}" ] && kill -TERM "$PULSE_PID" 2> /dev/null && wait "$PULSE_PID" 2> /dev/null || true
  PULSE_PID=
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# wrk_row NAME FILE: one Markdown row from wrk --latency output
wrk_row() {
  local name=$1 f=$2 rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' "$f")
  p50=$(awk '$1=="50%" {print $2}' "$f")
  p99=$(awk '$1=="99%" {print $2}' "$f")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' "$f" | tr '\n' ' ')
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$rps" "$p50" "$p99" "${errs:-none}"
}

# pgbench_select: the database's read ceiling in this run (tps of -S -M prepared -c64 -j2 -T10)
pgbench_select() {
  # the superuser of the test Postgres (scripts/services.sh): the service's role creates nothing
  local base=${PULSE_TEST_ADMIN_URL%/*}
  psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS pulse_pgbench" -c "CREATE DATABASE pulse_pgbench" > /dev/null
  pgbench -i -q -s 10 "$base/pulse_pgbench" > "$OUT/pgbench-init.txt" 2>&1
  pgbench -S -M prepared -c 64 -j 2 -T 10 "$base/pulse_pgbench" > "$OUT/pgbench.txt" 2>&1
  awk '/^tps = / {printf "%.0f", $3}' "$OUT/pgbench.txt"
}

# register_users PORT PREFIX COUNT TOKENS_FILE [PARALLEL]: registers COUNT users
# (PREFIX<i>-<RUN_ID>@example.com, time zone Europe/Paris) and appends their session tokens
# to TOKENS_FILE, PARALLEL (default 1) registrations at a time. Sets RUN_ID, so that
# "email LIKE '${PREFIX}%-${RUN_ID}@example.com'" selects exactly these users.
register_users() {
  local port=$1 prefix=$2 count=$3 tokens=$4 parallel=${5:-1} i pids=()
  RUN_ID=$(date +%s)
  : > "$tokens"
  for i in $(seq "$count"); do
    curl -fs -X POST "http://127.0.0.1:$port/api/v1/auth/register" -H 'Content-Type: application/json' \
      -d "{\"email\":\"$prefix$i-$RUN_ID@example.com\",\"password\":\"correct horse battery\",\"timezone\":\"Europe/Paris\"}" \
      | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).token))' >> "$tokens" &
    pids+=($!)
    if (( ${#pids[@]} >= parallel )); then wait "${pids[@]}"; pids=(); fi
  done
  # only these: a bare `wait` would also wait for the pulsed this shell started
  if (( ${#pids[@]} > 0 )); then wait "${pids[@]}"; fi
  [ "$(wc -l < "$tokens")" -eq "$count" ] || { echo "register_users: only $(wc -l < "$tokens") of $count registered" >&2; return 1; }
}

# seed_feedings PREFIX: 300 feedings over the last ~20 days and a daily target of 800 ml in
# the default subject of each user register_users made with PREFIX.
seed_feedings() {
  local who="email LIKE '$1%-$RUN_ID@example.com'"
  # as the owner: only it may ANALYZE the tables
  psql -q "$PULSE_MIGRATE_DATABASE_URL" -c "UPDATE subjects s SET daily_target_ml = 800 FROM users u WHERE s.id = u.default_subject_id AND u.$who" \
    -c "INSERT INTO feedings (subject_id, created_by, amount_ml, kind, given_at) SELECT u.default_subject_id, u.id, 50 + g % 150, 'milk', now() - g * interval '97 minutes' FROM users u, generate_series(1, 300) g WHERE u.$who" \
    -c "ANALYZE"
}
