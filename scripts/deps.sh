#!/usr/bin/env bash
# Installs the Debian packages Pulse needs, only those missing, so it is cheap to run often.
# (chromium, in `test`, is what the Playwright tests of web/ drive.)
#   scripts/deps.sh GROUP...     groups: build services test node format deploy
# apt runs only when something is missing: `apt-get update` once, then one install.
set -euo pipefail

usage() {
    echo "usage: $0 GROUP... (groups: build services test node format deploy)" >&2
    exit 2
}

pkgs_build=(build-essential cmake pkg-config libuv1-dev node-llhttp libwebsockets-dev
    libwebsockets-evlib-uv libjansson-dev libpq-dev libhiredis-dev libsodium-dev)
pkgs_services=(postgresql postgresql-contrib redis-server)
pkgs_test=(curl wrk nginx clang libclang-rt-14-dev procps chromium)
pkgs_format=(clang-format)
# tests/deploy: `docker-compose config`, `nginx -t`, promtool (from prometheus), a self-signed cert
pkgs_deploy=(docker-compose nginx prometheus openssl)

[ $# -gt 0 ] || usage

wanted=()
for group in "$@"; do
    case "$group" in
        build) wanted+=("${pkgs_build[@]}") ;;
        services) wanted+=("${pkgs_services[@]}") ;;
        test) wanted+=("${pkgs_test[@]}") ;;
        format) wanted+=("${pkgs_format[@]}") ;;
        deploy) wanted+=("${pkgs_deploy[@]}") ;;
        node)
            # Any node >= 18 will do (this machine's may come from outside Debian, whose npm
            # package conflicts with it): install Debian's nodejs and npm only without one.
            major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
            if [ "${major:-0}" -ge 18 ] 2>/dev/null; then
                if ! command -v npm >/dev/null 2>&1; then
                    wanted+=(npm)
                fi
            else
                wanted+=(nodejs npm)
            fi
            ;;
        *) usage ;;
    esac
done

# One dpkg-query for all (packages it does not know are simply absent from its output).
declare -A seen=() ok=()
unique=()
for p in "${wanted[@]}"; do
    [ -z "${seen[$p]:-}" ] || continue
    seen[$p]=1
    unique+=("$p")
done
while read -r name status; do
    [ "$status" = "install ok installed" ] && ok[${name%%:*}]=1
done < <(dpkg-query -W -f='${Package} ${Status}\n' "${unique[@]}" 2>/dev/null || true)
missing=()
for p in "${unique[@]}"; do
    [ -n "${ok[$p]:-}" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: ${#unique[@]} packages present ($*)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: run this as root (or install them yourself): apt-get install ${missing[*]}" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"
log=$(mktemp /tmp/pulse-deps.XXXXXX.log)
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0)
if ! apt-get "${apt_opts[@]}" update >"$log" 2>&1 ||
    ! apt-get "${apt_opts[@]}" install -y -q --no-install-recommends "${missing[@]}" \
        </dev/null >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "deps: apt-get failed (full log: $log)" >&2
    exit 1
fi
rm -f "$log"
