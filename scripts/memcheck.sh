#!/usr/bin/env bash
# `make memcheck`: a plain build (no sanitizers) with the tests, the private test Postgres
# and Redis, and every unit and integration test under valgrind memcheck. Definite and
# indirect leaks and memory errors fail the run; suppressions (tests/valgrind.supp) cover
# third-party libraries only, each with its reason.
set -uo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)
cd "$ROOT" || exit 1
bash scripts/deps.sh build services test
apt_valgrind() { command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }; }
apt_valgrind
cmake -S . -B build-memcheck --log-level=WARNING -DCMAKE_BUILD_TYPE=Debug -DPULSE_SANITIZE=OFF -DPULSE_TESTS=ON
cmake --build build-memcheck -j"$(nproc)" || exit 1
SERVICES=$ROOT/scripts/services.sh
bash "$SERVICES" test start || exit 1
trap 'bash "$SERVICES" test stop || true' EXIT
eval "$(bash "$SERVICES" test env)"
passed=0
failed=0
for t in build-memcheck/tests/unit_* build-memcheck/tests/integration_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    log=build-memcheck/$name.valgrind.txt
    if valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
        --suppressions=tests/valgrind.supp "$t" > "$log" 2>&1; then
        echo "memcheck: $name clean"
        passed=$((passed + 1))
    else
        echo "memcheck: $name FAILED (see $log)"
        grep -E "definitely lost|indirectly lost|Invalid|uninitialised|FAIL" "$log" | head -5
        failed=$((failed + 1))
    fi
done
echo "memcheck: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
