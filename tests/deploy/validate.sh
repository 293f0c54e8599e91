#!/usr/bin/env bash
# Validates the deployment files offline: Dockerfile, docker-compose.prod.yml, deploy/nginx,
# deploy/prometheus, deploy/grafana and deploy/k8s (what each check does: deploy.test.mjs).
# Needs the Debian packages of `scripts/deps.sh deploy` and node >= 18 with npm; installs the
# pinned npm tools of package-lock.json. Prints node's test summary (# pass, # fail, ...).
#   bash tests/deploy/validate.sh
set -euo pipefail

HERE=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd -P)
cd "$HERE"

missing=()
for cmd in node npm docker-compose nginx promtool openssl; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "validate: missing ${missing[*]}: run scripts/deps.sh deploy node" >&2
    exit 1
fi

# npm ci only when node_modules is absent or older than the lock file
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi

exec timeout --kill-after=10 110 node --test deploy.test.mjs
