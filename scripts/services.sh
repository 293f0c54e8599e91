#!/usr/bin/env bash
# Private PostgreSQL and Redis servers on 127.0.0.1 for this checkout, one pair per profile:
# `dev` (make run: durable) and `test` (make test: fsync off, no Redis persistence, database
# re-created on every start).
#
#   scripts/services.sh PROFILE COMMAND
#     start        start both (idempotent) and prepare the database
#     stop         stop both
#     status       print what runs; exit 0 only if both run
#     env          print `export VAR=value` lines for the shell (eval "$(... env)")
#     restart-pg | stop-pg | start-pg | stop-redis | start-redis
#                  for tests of reconnection: the ports stay the same
#
# State lives in /var/tmp/pulse-<sha1 of the checkout path, 12 hex>/PROFILE/ (override the
# /var/tmp part with PULSE_STATE_ROOT): the postgres user must be able to traverse it, which a
# checkout under /root is not. The cluster is created once and reused; each port is picked
# free on first start, stored next to the data and reused while it stays free.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
ROOT=$(cd "$(dirname "$SELF")/.." && pwd -P)

usage() {
    sed -n '2,13p' "$SELF" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[ $# -eq 2 ] || usage
PROFILE=$1
CMD=$2
case "$PROFILE" in
    dev) DB=pulse ;;
    test) DB=pulse_test ;;
    *) usage ;;
esac

KEY=$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)
STATE_ROOT=$(readlink -f "${PULSE_STATE_ROOT:-/var/tmp}")
BASE=$STATE_ROOT/pulse-$KEY
STATE=$BASE/$PROFILE
PGDIR=$STATE/pg # owned by postgres: data/, the socket, logs
PGDATA=$PGDIR/data
PG_LOG=$PGDIR/postgres.log
RDIR=$STATE/redis
REDIS_PIDFILE=$RDIR/redis.pid
REDIS_LOG=$RDIR/redis.log
PG_PORT_FILE=$STATE/pg.port
REDIS_PORT_FILE=$STATE/redis.port

log() { echo "services($PROFILE): $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

if [ -n "${PG_BINDIR:-}" ]; then
    PGBIN=$PG_BINDIR
elif [ -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
    PGBIN=/usr/lib/postgresql/15/bin
else
    PGBIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)
fi

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

# Runs a PostgreSQL server program as the postgres user (initdb and postgres refuse root),
# from / because the caller's directory may not be readable by postgres.
as_pg() {
    if [ $IS_ROOT -eq 1 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

need_tools() {
    if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/pg_ctl" ]; then
        die "PostgreSQL server not found in /usr/lib/postgresql/*/bin: run scripts/deps.sh services"
    fi
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        die "redis-server not found: run scripts/deps.sh services"
    fi
    if [ $IS_ROOT -eq 1 ]; then
        id postgres >/dev/null 2>&1 || die "no postgres user: run scripts/deps.sh services"
    fi
}

make_dirs() {
    mkdir -p "$BASE" "$STATE" "$PGDIR" "$RDIR"
    chmod 755 "$BASE" "$STATE" "$PGDIR" "$RDIR"
    [ -f "$BASE/checkout" ] || echo "$ROOT" >"$BASE/checkout"
    if [ $IS_ROOT -eq 1 ]; then
        chown postgres:postgres "$PGDIR"
    fi
}

# Serialises commands that change state, per profile. Daemons must not inherit fd 9 (they
# would hold the lock forever): every start closes it with 9>&-.
lock() {
    exec 9>"$STATE/.lock"
    flock -w 300 9 || die "another services.sh holds $STATE/.lock"
}

# ---- ports -------------------------------------------------------------------------------

valid_port() { [[ ${1:-} =~ ^[0-9]+$ ]] && [ "$1" -ge 1024 ] && [ "$1" -le 65535 ]; }

# True if a TCP socket (IPv4 or IPv6) other than a TIME_WAIT one uses the local port: the
# servers set SO_REUSEADDR, so only those do not stop them binding it.
port_in_use() {
    local hex f files=()
    hex=$(printf ':%04X' "$1")
    for f in /proc/net/tcp /proc/net/tcp6; do
        [ -r "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 1
    awk -v h="$hex" 'FNR > 1 && $4 != "06" && substr($2, length($2) - 4) == h { found = 1 }
                     END { exit !found }' "${files[@]}"
}

# Ports stored by any profile of this checkout, so dev and test do not collide.
stored_ports() { cat "$BASE"/*/*.port 2>/dev/null || true; }

pick_port() {
    local p i taken
    taken=" $(stored_ports | tr '\n' ' ') "
    for i in $(seq 1 500); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 10000))
        [[ $taken == *" $p "* ]] && continue
        port_in_use "$p" && continue
        echo "$p"
        return 0
    done
    die "no free port found in 20000-29999"
}

# Prints the port stored in $1 if it is still free, else picks, stores and prints a new one.
choose_port() {
    local file=$1 p=""
    [ -f "$file" ] && p=$(cat "$file")
    if valid_port "$p" && ! port_in_use "$p"; then
        echo "$p"
        return 0
    fi
    p=$(pick_port)
    echo "$p" >"$file"
    echo "$p"
}

stored_port() {
    local p=""
    [ -f "$1" ] && p=$(cat "$1")
    valid_port "$p" || return 1
    echo "$p"
}

# ---- processes ---------------------------------------------------------------------------

# Prints $1 if it is a live process whose working directory is $2. Both servers chdir to
# their data directory, which tells ours from a stale pid file whose pid was reused.
live_in_dir() {
    [[ ${1:-} =~ ^[0-9]+$ ]] || return 1
    [ "$(readlink "/proc/$1/cwd" 2>/dev/null)" = "$2" ] || return 1
    echo "$1"
}

procs_in_dir() {
    local d
    for d in /proc/[0-9]*; do
        if [ "$(readlink "$d/cwd" 2>/dev/null)" = "$1" ]; then
            echo "${d#/proc/}"
        fi
    done
}

alive() { # PID: true while it runs (a zombie waiting for its parent to reap it does not)
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat:0:1}" != Z ]
}

wait_gone() { # PID SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        alive "$1" || return 0
        sleep 0.1
    done
    return 1
}

# ---- logs --------------------------------------------------------------------------------

log_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# True if the part of log $1 written after byte $2 matches the grep pattern $3.
new_log_has() { grep -q "$3" < <(tail -c +"$(($2 + 1))" "$1" 2>/dev/null); }

rotate() { # keeps a durable profile's log under 10 MiB
    if [ "$(log_size "$1")" -gt 10485760 ]; then
        mv -f "$1" "$1.1"
    fi
}

# ---- PostgreSQL ----------------------------------------------------------------------------

pg_pid() {
    local pid=""
    [ -r "$PGDATA/postmaster.pid" ] || return 1
    read -r pid <"$PGDATA/postmaster.pid" || true
    live_in_dir "$pid" "$PGDATA"
}

# After a hard kill or a reboot: end any orphaned backends still attached to the data
# directory, then drop the stale lock files so the postmaster does not mistake a reused pid
# for a running server.
pg_clear_stale() {
    local pids p
    pids=$(procs_in_dir "$PGDATA")
    if [ -n "$pids" ]; then
        log "ending orphaned postgres processes: $(echo "$pids" | tr '\n' ' ')"
        for p in $pids; do kill -QUIT "$p" 2>/dev/null || true; done
        for p in $pids; do wait_gone "$p" 5 || kill -KILL "$p" 2>/dev/null || true; done
        for p in $pids; do wait_gone "$p" 5 || die "postgres process $p will not exit"; done
    fi
    if [ -e "$PGDATA/postmaster.pid" ]; then
        log "removing stale postmaster.pid"
        rm -f "$PGDATA/postmaster.pid"
    fi
    rm -f "$PGDIR"/.s.PGSQL.*
}

pg_major() { "$PGBIN/pg_ctl" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/'; }

pg_init() {
    if [ -f "$PGDATA/PG_VERSION" ]; then
        local have want
        have=$(cat "$PGDATA/PG_VERSION")
        want=$(pg_major)
        [ "$have" = "$want" ] && return 0
        if [ "$PROFILE" = dev ]; then
            die "$PGDATA is a PostgreSQL $have cluster, the server is $want: move it away to start afresh"
        fi
        log "PostgreSQL $have cluster, server is $want: re-creating the test cluster"
    fi
    rm -rf "$PGDATA"
    log "initdb $PGDATA"
    local args=(-D "$PGDATA" -A trust -U postgres --encoding=UTF8)
    if ! as_pg "$PGBIN/initdb" "${args[@]}" --locale=C.UTF-8 >"$PGDIR/initdb.log" 2>&1; then
        rm -rf "$PGDATA"
        log "initdb with C.UTF-8 failed, trying locale C"
        if ! as_pg "$PGBIN/initdb" "${args[@]}" --locale=C >"$PGDIR/initdb.log" 2>&1; then
            tail -n 20 "$PGDIR/initdb.log" >&2
            rm -rf "$PGDATA"
            die "initdb failed (log: $PGDIR/initdb.log)"
        fi
    fi
}

pg_start_on() { # PORT; returns 1 if the server did not come up
    local fsync=on
    [ "$PROFILE" = test ] && fsync=off
    local opts="-p $1 -c listen_addresses=127.0.0.1 -k $PGDIR -c max_connections=200"
    opts+=" -c fsync=$fsync -c shared_buffers=128MB"
    if [ "$PROFILE" = test ]; then
        : >"$PG_LOG"
    else
        rotate "$PG_LOG"
    fi
    PG_LOG_FROM=$(log_size "$PG_LOG")
    [ $IS_ROOT -eq 1 ] && touch "$PG_LOG" && chown postgres:postgres "$PG_LOG"
    as_pg "$PGBIN/pg_ctl" start -w -t 120 -D "$PGDATA" -l "$PG_LOG" -o "$opts" \
        </dev/null >/dev/null 2>&1 9>&-
}

# $1 = "keep": reuse the stored port or fail (restart of a running test setup); else the
# stored port is reused if free and a new one picked if not.
pg_start() {
    local mode=${1:-}
    local pid port _
    if pid=$(pg_pid); then
        port=$(sed -n 4p "$PGDATA/postmaster.pid")
        valid_port "$port" && echo "$port" >"$PG_PORT_FILE"
        return 0
    fi
    pg_clear_stale
    pg_init
    for _ in 1 2 3; do
        if [ "$mode" = keep ]; then
            port=$(stored_port "$PG_PORT_FILE") || die "no stored postgres port: run '$0 $PROFILE start'"
        else
            port=$(choose_port "$PG_PORT_FILE")
        fi
        if pg_start_on "$port"; then
            return 0
        fi
        if [ "$mode" != keep ] && new_log_has "$PG_LOG" "$PG_LOG_FROM" 'could not bind\|could not create any TCP/IP sockets'; then
            log "postgres port $port was taken, picking another"
            rm -f "$PG_PORT_FILE"
            pg_clear_stale
            continue
        fi
        break
    done
    tail -n 20 "$PG_LOG" >&2 || true
    die "postgres did not start (log: $PG_LOG)"
}

pg_stop() {
    if ! pg_pid >/dev/null; then
        [ -e "$PGDATA/postmaster.pid" ] && pg_clear_stale
        return 0
    fi
    if ! as_pg "$PGBIN/pg_ctl" stop -D "$PGDATA" -m fast -w -t 60 >/dev/null 2>&1; then
        log "fast shutdown timed out, using immediate"
        as_pg "$PGBIN/pg_ctl" stop -D "$PGDATA" -m immediate -w -t 30 >/dev/null 2>&1 || true
    fi
    if pg_pid >/dev/null; then
        die "postgres would not stop (log: $PG_LOG)"
    fi
}

psql_admin() {
    local port
    port=$(stored_port "$PG_PORT_FILE")
    PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGDIR" -p "$port" -U postgres -d postgres "$@"
}

# The database, then the roles of deploy/postgres/init-roles.sql as in production: the owner
# (pulse_owner, migrations: PULSE_MIGRATE_DATABASE_URL) and the service's role (pulse_app,
# DATABASE_URL), which owns nothing. Trust authentication on loopback: no passwords.
pg_prepare_db() {
    if [ "$PROFILE" = test ]; then
        psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
    elif [ -z "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]; then
        psql_admin -c "CREATE DATABASE $DB" >/dev/null
    fi
    local port
    port=$(stored_port "$PG_PORT_FILE")
    env -u POSTGRES_OWNER_PASSWORD -u POSTGRES_APP_PASSWORD PGOPTIONS="-c client_min_messages=warning" \
        "$PGBIN/psql" -X -q -h "$PGDIR" -p "$port" -U postgres -d "$DB" \
        -f "$ROOT/deploy/postgres/init-roles.sql" >/dev/null
}

# ---- Redis -------------------------------------------------------------------------------

redis_pid() {
    local pid=""
    [ -r "$REDIS_PIDFILE" ] || return 1
    read -r pid <"$REDIS_PIDFILE" || true
    live_in_dir "$pid" "$RDIR"
}

redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }

redis_start_on() { # PORT; returns 1 if the server did not come up
    local args=(--port "$1" --bind 127.0.0.1 --dir "$RDIR" --daemonize yes
        --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG")
    if [ "$PROFILE" = test ]; then
        args+=(--save '' --appendonly no)
        : >"$REDIS_LOG"
    else
        args+=(--appendonly yes)
        rotate "$REDIS_LOG"
    fi
    rm -f "$REDIS_PIDFILE"
    local from i
    from=$(log_size "$REDIS_LOG")
    (cd "$RDIR" && redis-server "${args[@]}" </dev/null >/dev/null 2>&1 9>&-) || return 1
    # Daemonised: the pid file appears once the port is bound; a failed bind only shows in
    # the log.
    for ((i = 0; i < 150; i++)); do
        if redis_pid >/dev/null && redis_ping "$1"; then
            return 0
        fi
        if new_log_has "$REDIS_LOG" "$from" 'Failed listening\|aborting\|FATAL'; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

redis_start() {
    local mode=${1:-}
    local pid port _
    if pid=$(redis_pid); then
        if port=$(stored_port "$REDIS_PORT_FILE") && redis_ping "$port"; then
            return 0
        fi
        log "redis (pid $pid) does not answer on its stored port: restarting it"
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
    fi
    for _ in 1 2 3; do
        if [ "$mode" = keep ]; then
            port=$(stored_port "$REDIS_PORT_FILE") || die "no stored redis port: run '$0 $PROFILE start'"
        else
            port=$(choose_port "$REDIS_PORT_FILE")
        fi
        if redis_start_on "$port"; then
            return 0
        fi
        if pid=$(redis_pid); then # up but not answering: do not leave it behind
            kill -KILL "$pid" 2>/dev/null || true
        fi
        if [ "$mode" != keep ] && grep -q 'Address already in use' <(tail -n 20 "$REDIS_LOG"); then
            log "redis port $port was taken, picking another"
            rm -f "$REDIS_PORT_FILE"
            continue
        fi
        break
    done
    tail -n 20 "$REDIS_LOG" >&2 || true
    die "redis did not start (log: $REDIS_LOG)"
}

redis_stop() {
    local pid port how=NOSAVE
    pid=$(redis_pid) || { rm -f "$REDIS_PIDFILE"; return 0; }
    [ "$PROFILE" = dev ] && how=SAVE
    if port=$(stored_port "$REDIS_PORT_FILE"); then
        redis-cli -h 127.0.0.1 -p "$port" shutdown "$how" >/dev/null 2>&1 || true
    fi
    if ! wait_gone "$pid" 30; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || die "redis (pid $pid) would not stop"
    fi
    rm -f "$REDIS_PIDFILE"
}

redis_prepare() {
    if [ "$PROFILE" = test ]; then
        redis-cli -h 127.0.0.1 -p "$(stored_port "$REDIS_PORT_FILE")" flushall >/dev/null
    fi
}

# ---- pruning -----------------------------------------------------------------------------

# Removes the test state of checkouts that no longer exist (CI clones come and go), unless
# something still runs in it. Dev state is kept: its database may matter to someone.
prune() {
    local d checkout
    for d in "$STATE_ROOT"/pulse-*/; do
        d=${d%/}
        if [ "$d" = "$BASE" ] || [ ! -f "$d/checkout" ] || [ ! -d "$d/test" ]; then
            continue
        fi
        checkout=$(cat "$d/checkout")
        if [ -z "$checkout" ] || [ -e "$checkout/scripts/services.sh" ] || [ -n "$(procs_under "$d/test")" ]; then
            continue
        fi
        log "removing the test state of a checkout that is gone ($checkout): $d/test"
        rm -rf "$d/test"
        if [ ! -d "$d/dev" ]; then
            rm -rf "$d"
        fi
    done
}

procs_under() {
    local p
    for p in /proc/[0-9]*; do
        case "$(readlink "$p/cwd" 2>/dev/null)" in
            "$1"/*) echo "${p#/proc/}" ;;
        esac
    done
}

# ---- commands ----------------------------------------------------------------------------

describe() {
    local pg redis pid
    if pid=$(pg_pid); then
        pg="postgres 127.0.0.1:$(stored_port "$PG_PORT_FILE" || echo '?') (pid $pid)"
    else
        pg="postgres stopped"
    fi
    if pid=$(redis_pid); then
        redis="redis 127.0.0.1:$(stored_port "$REDIS_PORT_FILE" || echo '?') (pid $pid)"
    else
        redis="redis stopped"
    fi
    echo "$pg, $redis"
}

print_env() {
    local pg_port redis_port
    if ! pg_port=$(stored_port "$PG_PORT_FILE") || ! redis_port=$(stored_port "$REDIS_PORT_FILE"); then
        die "not started yet: run '$0 $PROFILE start'"
    fi
    # DATABASE_URL: the service's role; PULSE_MIGRATE_DATABASE_URL: the owner, for migrations
    # and for tests that change the schema; PULSE_TEST_ADMIN_URL: the superuser, for tests that
    # create databases or take every connection slot.
    printf 'export %s=%q\n' \
        DATABASE_URL "postgresql://pulse_app@127.0.0.1:$pg_port/$DB" \
        PULSE_MIGRATE_DATABASE_URL "postgresql://pulse_owner@127.0.0.1:$pg_port/$DB" \
        PULSE_TEST_ADMIN_URL "postgresql://postgres@127.0.0.1:$pg_port/$DB" \
        REDIS_URL "redis://127.0.0.1:$redis_port/0" \
        PULSE_TEST_PGDATA "$PGDATA" \
        PULSE_TEST_PG_PORT "$pg_port" \
        PULSE_TEST_REDIS_PORT "$redis_port" \
        PULSE_STATE_DIR "$STATE" \
        PULSE_SERVICES "$SELF"
}

case "$CMD" in
    start)
        need_tools
        make_dirs
        lock
        prune
        pg_start
        redis_start
        pg_prepare_db
        redis_prepare
        log "$(describe), database $DB"
        ;;
    stop)
        [ -d "$STATE" ] || exit 0
        lock
        redis_stop
        pg_stop
        log "stopped"
        ;;
    status)
        echo "services($PROFILE): $(describe) [$STATE]"
        pg_pid >/dev/null && redis_pid >/dev/null || exit 3
        ;;
    env) print_env ;;
    restart-pg)
        need_tools
        make_dirs
        lock
        pg_stop
        pg_start keep
        ;;
    stop-pg)
        [ -d "$STATE" ] || exit 0
        lock
        pg_stop
        ;;
    start-pg)
        need_tools
        make_dirs
        lock
        pg_start keep
        ;;
    stop-redis)
        [ -d "$STATE" ] || exit 0
        lock
        redis_stop
        ;;
    start-redis)
        need_tools
        make_dirs
        lock
        redis_start keep
        ;;
    *) usage ;;
esac
