#!/usr/bin/env bash
# Policy compile time with many rules at one trie node (the shadow check's worst case).
#
#   [RUNS=3] bench/shadow.sh [WARDEN] [N...]   default: build/warden, 25000 50000 100000 200000
#
# For each N it writes a policy of N rules `allow all "devices/#" when username = "uK"`
# (every rule ends at the same trie node and none is unconditional, so the shadow check
# finds nothing), then a second one where an unconditional rule comes first (every later
# rule is reported as shadowed), and prints the wall time of `warden check` on each, the
# best of RUNS runs. Results: bench/policy-results.md.
set -eu
WARDEN=${1:-build/warden}
shift || true
sizes=${*:-25000 50000 100000 200000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gen() { # N FILE [first line]
    {
        [ -n "${3:-}" ] && echo "$3"
        awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "allow all \"devices/#\" when username = \"u%d\"\n", i }'
    } > "$2"
}
best() { # FILE: best wall time of RUNS `warden check` runs, in seconds
    local b=""
    for _ in $(seq "${RUNS:-3}"); do
        local s e t
        s=$(date +%s.%N)
        "$WARDEN" check "$1" > /dev/null 2>&1 || true
        e=$(date +%s.%N)
        t=$(echo "$e - $s" | bc)
        if [ -z "$b" ] || [ "$(echo "$t < $b" | bc)" = 1 ]; then b=$t; fi
    done
    printf '%.2f' "$b"
}
printf '%8s  %16s  %16s\n' rules "conditional s" "shadowed s"
for n in $sizes; do
    gen "$n" "$tmp/c.policy"
    gen "$n" "$tmp/s.policy" 'deny all "devices/#"'
    printf '%8s  %16s  %16s\n' "$n" "$(best "$tmp/c.policy")" "$(best "$tmp/s.policy")"
done
