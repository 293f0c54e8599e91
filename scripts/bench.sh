#!/usr/bin/env bash
# `make bench`: release build, private Postgres and Redis (test profile), then every
# benchmark in tests/bench (or the ones named: scripts/bench.sh http). Results are printed
# as Markdown tables; raw tool output goes to build/bench/. PULSE_BIN overrides the binary
# measured (default build/pulsed, built here; not built when PULSE_BIN is set).
# PULSE_STATE_ROOT moves the services' state (scripts/services.sh) so that a parallel session
# gets its own Postgres and Redis.
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)
cd "$ROOT"
bash scripts/deps.sh build services test
[ -n "${PULSE_BIN:-}" ] || make --no-print-directory build
SERVICES=$ROOT/scripts/services.sh
bash "$SERVICES" test start
trap 'bash "$SERVICES" test stop || true' EXIT
eval "$(bash "$SERVICES" test env)"
export PULSE_BIN=${PULSE_BIN:-$ROOT/build/pulsed}
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(http accounts records feedings replicas live resume)
for b in "${benches[@]}"; do
    echo "### $b"
    bash "tests/bench/$b.sh"
    echo
done
