#!/usr/bin/env bash
# `make test`: installs what is missing, builds with ASan/UBSan, starts the private test
# Postgres and Redis (stopped again on exit, whatever happens), then runs every stage:
# ctest (unit + integration), the libFuzzer harnesses for a few seconds each (tests/fuzz), the
# deployment files (tests/deploy, offline), the documentation (tests/docs: docs/api.md up to
# date, Markdown links), the web front end's lint, build and tests, the e2e tests with node.
# Every stage runs even if an earlier one failed; a summary line per stage closes the run,
# then one total line. Exits non-zero if anything failed.
set -uo pipefail
# Hostile-load tests hold ~10,000 client sockets: raise this shell's fd limit (root may).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)
cd "$ROOT" || exit 1
SERVICES=$ROOT/scripts/services.sh
LOGDIR=$(mktemp -d /tmp/pulse-test.XXXXXX)

summary=()    # one line per stage
any_failed=0
n_passed=0
n_failed=0
n_skipped=0

record() { # STAGE STATUS DETAIL
    summary+=("$(printf '%-12s %s%s' "$1:" "$2" "${3:+, $3}")")
    [ "$2" = FAILED ] && any_failed=1
    return 0
}

banner() { printf '\n==> %s\n' "$*"; }

# record_node STAGE LOG RC: records a node --test stage from its own summary lines
# (# pass, # fail, # cancelled, # skipped, # todo) and its exit status.
record_node() {
    local stage=$1 log=$2 rc=$3 p f c s todo detail
    p=$(sed -nE 's/^# pass ([0-9]+)$/\1/p' "$log" | tail -n 1)
    f=$(sed -nE 's/^# fail ([0-9]+)$/\1/p' "$log" | tail -n 1)
    c=$(sed -nE 's/^# cancelled ([0-9]+)$/\1/p' "$log" | tail -n 1)
    s=$(sed -nE 's/^# skipped ([0-9]+)$/\1/p' "$log" | tail -n 1)
    todo=$(sed -nE 's/^# todo ([0-9]+)$/\1/p' "$log" | tail -n 1)
    if [ -n "$p" ]; then
        f=$((${f:-0} + ${c:-0}))
        n_passed=$((n_passed + p))
        n_failed=$((n_failed + f))
        n_skipped=$((n_skipped + ${s:-0}))
        detail="$p ok, $f failing, ${s:-0} skipped"
        [ "${todo:-0}" -gt 0 ] && detail+=", $todo todo"
    else
        detail="no summary line"
    fi
    if [ "$rc" -eq 0 ]; then
        record "$stage" ok "$detail"
    else
        [ -n "$p" ] || n_failed=$((n_failed + 1))
        record "$stage" FAILED "exit $rc, $detail"
    fi
}

services_started=0
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    if [ "$services_started" -eq 1 ]; then
        bash "$SERVICES" test stop || true
    fi
    rm -rf "$LOGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

shopt -s nullglob
e2e_tests=(tests/e2e/*.test.mjs)
shopt -u nullglob
have_web=0
[ -f web/package.json ] && have_web=1
have_deploy=0
[ -f tests/deploy/validate.sh ] && have_deploy=1
shopt -s nullglob
docs_tests=(tests/docs/*.test.mjs)
shopt -u nullglob

npm_install() { # DIR: npm ci with a lock file, npm install without
    local flags=(--no-audit --no-fund --loglevel=error)
    if [ -f "$1/package-lock.json" ]; then
        (cd "$1" && npm ci "${flags[@]}")
    else
        (cd "$1" && npm install "${flags[@]}")
    fi
}

# ---- deps --------------------------------------------------------------------------------
banner deps
groups=(build services test format)
if [ ${#e2e_tests[@]} -gt 0 ] || [ ${#docs_tests[@]} -gt 0 ] || [ $have_web -eq 1 ] || [ $have_deploy -eq 1 ]; then
    groups+=(node)
fi
[ $have_deploy -eq 1 ] && groups+=(deploy)
if bash scripts/deps.sh "${groups[@]}"; then
    record deps ok
else
    record deps FAILED
    n_failed=$((n_failed + 1))
fi

# ---- build -------------------------------------------------------------------------------
banner build-asan
built=0
if make --no-print-directory build-asan; then
    built=1
    record build-asan ok
else
    record build-asan FAILED
    n_failed=$((n_failed + 1))
fi

# The release build (what `make run` uses) too: -O2 enables warnings -O0 cannot see.
banner build
if make --no-print-directory build; then
    record build ok
else
    record build FAILED
    n_failed=$((n_failed + 1))
fi

# ---- services ----------------------------------------------------------------------------
banner "services (test profile)"
services_started=1 # also stops a half-started pair
if bash "$SERVICES" test start && env_lines=$(bash "$SERVICES" test env); then
    eval "$env_lines"
    record services ok "postgres :$PULSE_TEST_PG_PORT, redis :$PULSE_TEST_REDIS_PORT"
else
    record services FAILED
    n_failed=$((n_failed + 1))
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export CI=${CI:-}

# ---- ctest -------------------------------------------------------------------------------
banner ctest
if [ $built -eq 1 ]; then
    ctest --test-dir build-asan --output-on-failure --no-tests=error -j2 --timeout 600 2>&1 | tee "$LOGDIR/ctest.log"
    rc=${PIPESTATUS[0]}
    # "100% tests passed, 0 tests failed out of 12" (skipped ones count as passed there)
    line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$LOGDIR/ctest.log" | tail -n 1)
    if [ -n "$line" ]; then
        f=$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$line")
        t=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
        s=$(grep -cE '^[[:space:]]*[0-9]+ - .*\((Skipped|Disabled)\)$' "$LOGDIR/ctest.log")
        p=$((t - f - s))
        n_passed=$((n_passed + p))
        n_failed=$((n_failed + f))
        n_skipped=$((n_skipped + s))
        detail="$t tests: $p ok, $f failing"
        [ "$s" -gt 0 ] && detail+=", $s skipped"
    elif grep -q 'No tests were found' "$LOGDIR/ctest.log"; then
        detail="no tests found"
    else
        detail="no summary line"
    fi
    if [ "$rc" -eq 0 ]; then
        record ctest ok "$detail"
    else
        [ -n "$line" ] || n_failed=$((n_failed + 1))
        record ctest FAILED "exit $rc, $detail"
    fi
else
    echo "skipped: the build failed"
    record ctest FAILED "not run: the build failed"
    n_failed=$((n_failed + 1))
fi

# ---- fuzz --------------------------------------------------------------------------------
# Every harness of tests/fuzz: its regression inputs, then 8 s of fuzzing (scripts/fuzz.sh).
banner "fuzz (scripts/fuzz.sh, 8 s per harness)"
FUZZ_SECONDS=8 timeout --kill-after=30 600 bash scripts/fuzz.sh 2>&1 | tee "$LOGDIR/fuzz.log"
rc=${PIPESTATUS[0]}
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOGDIR/fuzz.log" | tail -n 1)
if [ -n "$line" ]; then
    p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")
    f=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")
    n_passed=$((n_passed + p))
    n_failed=$((n_failed + f))
    detail="$p harnesses ok, $f failing"
else
    detail="no summary line"
fi
if [ "$rc" -eq 0 ]; then
    record fuzz ok "$detail"
else
    [ -n "$line" ] || n_failed=$((n_failed + 1))
    record fuzz FAILED "exit $rc, $detail"
fi

# ---- deploy ------------------------------------------------------------------------------
# Dockerfile, compose, nginx, Prometheus, Grafana and Kubernetes files, checked offline.
if [ $have_deploy -eq 1 ]; then
    banner "deploy (tests/deploy/validate.sh)"
    timeout --kill-after=10 300 bash tests/deploy/validate.sh 2>&1 | tee "$LOGDIR/deploy.log"
    rc=${PIPESTATUS[0]}
    record_node deploy "$LOGDIR/deploy.log" "$rc"
else
    record deploy skipped "no tests/deploy/validate.sh"
fi

# ---- docs --------------------------------------------------------------------------------
# docs/api.md is what scripts/api-docs.mjs renders from the OpenAPI document, .env.example and
# docs/api.template.md; every relative link of the Markdown files resolves. No services.
if [ ${#docs_tests[@]} -gt 0 ]; then
    banner "docs (node --test tests/docs)"
    timeout --kill-after=10 120 node --test "${docs_tests[@]}" 2>&1 | tee "$LOGDIR/docs.log"
    rc=${PIPESTATUS[0]}
    record_node docs "$LOGDIR/docs.log" "$rc"
else
    record docs skipped "no tests/docs/*.test.mjs"
fi

# ---- web ---------------------------------------------------------------------------------
# npm ci, ESLint and Prettier on web/src (a stage line of their own: web-lint), the Vite build
# (web/dist with .gz siblings), then web/tests with node's test runner: the first-load
# budget, and Playwright in Debian's Chromium against build-asan/pulsed.
if [ $have_web -eq 1 ]; then
    banner "web (npm ci, eslint, prettier --check, vite build, node --test with Playwright)"
    web_installed=0
    if ! npm_install web; then
        record web FAILED "npm install failed in web/"
        n_failed=$((n_failed + 1))
    else
        web_installed=1
        lint_failed=()
        (cd web && npm run lint) || lint_failed+=("eslint")
        (cd web && npm run format:check) || lint_failed+=("prettier --check: run npm run format in web/")
        if [ ${#lint_failed[@]} -eq 0 ]; then
            n_passed=$((n_passed + 2))
            record web-lint ok "eslint and prettier --check on web/src"
        else
            n_failed=$((n_failed + ${#lint_failed[@]}))
            record web-lint FAILED "$(IFS=';'; echo "${lint_failed[*]}")"
        fi
    fi
    if [ $web_installed -eq 0 ]; then
        : # recorded above
    elif ! (cd web && npm run build); then
        record web FAILED "the build failed"
        n_failed=$((n_failed + 1))
    elif [ ! -x build-asan/pulsed ]; then
        echo "skipped: build-asan/pulsed was not built"
        record web FAILED "not run: no build-asan/pulsed"
        n_failed=$((n_failed + 1))
    else
        (cd web && PULSE_BIN=$ROOT/build-asan/pulsed timeout --kill-after=30 1800 npm test) 2>&1 |
            tee "$LOGDIR/web.log"
        rc=${PIPESTATUS[0]}
        record_node web "$LOGDIR/web.log" "$rc"
    fi
else
    record web skipped "no web/package.json"
fi

# ---- e2e ---------------------------------------------------------------------------------
if [ ${#e2e_tests[@]} -gt 0 ]; then
    banner "e2e (node --test)"
    if [ ! -x build-asan/pulsed ]; then
        echo "skipped: build-asan/pulsed was not built"
        record e2e FAILED "not run: no build-asan/pulsed"
        n_failed=$((n_failed + 1))
    elif [ -f tests/e2e/package.json ] && ! npm_install tests/e2e; then
        record e2e FAILED "npm install failed in tests/e2e"
        n_failed=$((n_failed + 1))
    else
        node_args=(--test)
        # --test-concurrency arrived in node 20.10 (Debian's 18 runs files one per core less one)
        if node --test-concurrency=1 -e 0 >/dev/null 2>&1; then
            node_args+=(--test-concurrency=1)
        fi
        PULSE_BIN=$ROOT/build-asan/pulsed timeout --kill-after=30 2400 \
            node "${node_args[@]}" "${e2e_tests[@]}" 2>&1 | tee "$LOGDIR/e2e.log"
        rc=${PIPESTATUS[0]}
        record_node e2e "$LOGDIR/e2e.log" "$rc"
    fi
else
    record e2e skipped "no tests/e2e/*.test.mjs"
fi

# ---- summary -----------------------------------------------------------------------------
# Stop the services now, not in the EXIT trap, so the total line is the run's last line.
if [ $services_started -eq 1 ]; then
    banner "stopping services"
    bash "$SERVICES" test stop || true
    services_started=0
fi
banner summary
printf '%s\n' "${summary[@]}"
total="total: $n_passed passed, $n_failed failed"
[ $n_skipped -gt 0 ] && total+=", $n_skipped skipped"
echo "$total"
exit $any_failed
