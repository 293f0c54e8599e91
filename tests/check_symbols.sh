#!/usr/bin/env bash
# Fails when a global symbol of pulsed is also defined by one of the shared libraries it
# loads: the dynamic linker would bind the library's calls to ours (libkrb5, loaded by libpq,
# calls its own profile_init(); a function of ours by that name once received its calls).
set -euo pipefail
bin=$1
ours=$(nm "$bin" | awk '$2 ~ /^[TDBR]$/ {print $3}' | grep -v '^_' | sort -u)
theirs=$(for l in $(ldd "$bin" | awk '/=>/ {print $3}'); do nm -D --defined-only "$l" 2>/dev/null | awk '{print $3}'; done | sed 's/@.*//' | sort -u)
clash=$(comm -12 <(echo "$ours") <(echo "$theirs") || true)
if [ -n "$clash" ]; then
    echo "pulsed defines symbols that shared libraries also define:"
    echo "$clash"
    exit 1
fi
echo "no symbol clashes ($(echo "$ours" | wc -l) globals checked)"
