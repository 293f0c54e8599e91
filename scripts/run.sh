#!/usr/bin/env bash
# `make run`: installs what is missing, builds, starts the private dev Postgres and Redis,
# migrates and serves on http://127.0.0.1:8080 until Ctrl-C or SIGTERM, then stops pulsed
# and the services this run started (services that were already running stay up).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)
cd "$ROOT"
SERVICES=$ROOT/scripts/services.sh
# pulsed listens on PULSE_LISTEN (host:port, default 127.0.0.1:8080).
LISTEN=${PULSE_LISTEN:-127.0.0.1:8080}
PORT=${LISTEN##*:}
HOST=${LISTEN%:*}
case "$HOST" in "" | 0.0.0.0 | "[::]" | "*") HOST=127.0.0.1 ;; esac

groups=(build services)
[ -f web/package.json ] && groups+=(node)
bash scripts/deps.sh "${groups[@]}"

if [ -f web/package.json ]; then
    echo "run: building web/"
    npm_flags=(--no-audit --no-fund --loglevel=error)
    if [ -f web/package-lock.json ]; then
        (cd web && npm ci "${npm_flags[@]}")
    else
        (cd web && npm install "${npm_flags[@]}")
    fi
    (cd web && npm run build --if-present)
fi

make --no-print-directory build

services_started=0
pulsed_pid=""
# shellcheck disable=SC2317  # invoked by traps
cleanup() {
    # A second Ctrl-C while pulsed drains kills it; the services are stopped all the same.
    trap 'kill -KILL "$pulsed_pid" 2>/dev/null' INT TERM
    trap - EXIT
    if [ -n "$pulsed_pid" ] && kill -0 "$pulsed_pid" 2>/dev/null; then
        # pulsed drains in-flight requests for up to PULSE_SHUTDOWN_DELAY_MS + PULSE_DRAIN_MS
        local limit=$(((${PULSE_SHUTDOWN_DELAY_MS:-0} + ${PULSE_DRAIN_MS:-10000}) / 100 + 50))
        echo "run: stopping pulsed"
        kill -TERM "$pulsed_pid" 2>/dev/null || true
        for ((i = 0; i < limit; i++)); do
            kill -0 "$pulsed_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pulsed_pid" 2>/dev/null || true
        wait "$pulsed_pid" 2>/dev/null || true
    fi
    if [ "$services_started" -eq 1 ]; then
        bash "$SERVICES" dev stop || true
    fi
}
# shellcheck disable=SC2317
on_signal() {
    cleanup
    exit 0
}
trap cleanup EXIT
trap on_signal INT TERM

if ! bash "$SERVICES" dev status >/dev/null 2>&1; then
    services_started=1
fi
bash "$SERVICES" dev start
eval "$(bash "$SERVICES" dev env)"
export PULSE_AUTO_MIGRATE=1

build/pulsed migrate

# pulsed runs in a session of its own, so that the terminal's Ctrl-C reaches only this
# script, whose trap sends pulsed one SIGTERM (a graceful drain; a second signal would make
# it exit at once). In the background so that a SIGTERM to this script is handled at once.
# setsid execs pulsed in place (this child is no group leader), so $! is pulsed's pid.
setsid build/pulsed serve &
pulsed_pid=$!

ready=0
for _ in $(seq 1 300); do
    kill -0 "$pulsed_pid" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/${HOST//[\[\]]/}/$PORT") 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ $ready -eq 1 ]; then
    echo "Pulse is running on http://$HOST:$PORT (Ctrl-C to stop)"
elif kill -0 "$pulsed_pid" 2>/dev/null; then
    echo "run: pulsed is up but nothing answers on $HOST:$PORT yet (Ctrl-C to stop)"
fi

rc=0
wait "$pulsed_pid" || rc=$?
pulsed_pid=""
echo "run: pulsed exited with status $rc"
exit "$rc"
