#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench/jwt.sh: JWT authentication and JWT-ACL authorization against the bare server,
# side by side. Results: bench/stores-results.md ("JWT").
#
#   bench/jwt.sh                       # ~3 min
#   DUR=2 ROUNDS=1 bench/jwt.sh        # smoke run
#
# Servers pinned to cpu0 with one worker thread each, wd_load on cpu1 (as bench/run.sh).
# Policy: authn jwt / authn default deny / rules jwt / authz default deny; every client
# dev-NNNN logs in as user-NNNN with an HS256 token (wd_load -U -J) whose acl claim allows
# publishing to devices/${clientid}/#, the topic wd_load's authorize requests use.
# Settings, each as warden then bare (order flipped every round), Zipf 1.0 over K clients:
#   authn-warm  verified tokens cached (warden's defaults)
#   authn-cold  `cache off`: every login verifies the signature and parses the claims
#   authz       authorize through each client's session (JWT ACL compiled at login)
# shellcheck disable=SC2154 # PID_wd_*: set by start_warden (eval)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh
DUR=${DUR:-4}
WARM=${WARM:-1}
ROUNDS=${ROUNDS:-5}
K=${K:-10000}
OUT=${OUT:-build/bench/jwt}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SECRET=${SECRET:-bench-secret-0123456789abcdef0123456789}
PORTS=(19310 19311 19312)

BIN=$(bench_build "$OUT" bare_server)
bench_refuse_busy_ports "${PORTS[@]}"

printf 'authn jwt\nauthn default deny\nrules jwt\nauthz default deny\n' >"$OUT/jwt.policy"
trap bench_cleanup EXIT

taskset -c 0 "$BIN/bare_server" -a "127.0.0.1:${PORTS[0]}" -t 1 >"$OUT/bare.log" 2>&1 &
BENCH_PIDS+=($!)
BARE_PID=$!
start_warden() { # name port extra...
    local name=$1 port=$2
    shift 2
    {
        echo "listen 127.0.0.1:$port"
        echo "workers 1"
        echo "log_level warn"
        echo "policy $OUT/jwt.policy"
        echo "jwt_secret \"$SECRET\""
        for l in "$@"; do echo "$l"; done
    } >"$OUT/$name.conf"
    taskset -c 0 "$BIN/warden" -c "$OUT/$name.conf" >"$OUT/$name.log" 2>&1 &
    BENCH_PIDS+=($!)
    eval "PID_${name//-/_}=$!"
}
start_warden wd-warm "${PORTS[1]}"
start_warden wd-cold "${PORTS[2]}" "cache off"
for p in "${PORTS[@]}"; do bench_wait_port "$p"; done

load() { # port pid extra... -> "rps p99_us"
    local port=$1 pid=$2
    shift 2
    taskset -c 1 "$BIN/wd_load" -a "127.0.0.1:$port" -t 1 -c 8 -n 64 -d "$DUR" -w "$WARM" \
        -k "$K" -z 1.0 -q -S "$pid" "$@" |
        tee -a "$OUT/runs.txt" |
        sed -n 's/.*rps=\([0-9.]*\).* err=\([0-9]*\).* deny=\([0-9]*\).* p99_us=\([0-9]*\).*srv_us_per_call=\([0-9.-]*\).*/\1 \4 \5 err=\2 deny=\3/p'
}
# log every client in once on the warm warden: sessions for the authorize setting
taskset -c 1 "$BIN/wd_load" -a "127.0.0.1:${PORTS[1]}" -m authenticate -U -J "$SECRET" \
    -k "$K" -N "$K" -c 8 -n 64 -q >/dev/null

declare -A RES
for r in $(seq "$ROUNDS"); do
    for s in authn-warm authn-cold authz; do
        case $s in
        authn-warm) port=${PORTS[1]} pid=$PID_wd_warm args=(-m authenticate -U -J "$SECRET") ;;
        authn-cold) port=${PORTS[2]} pid=$PID_wd_cold args=(-m authenticate -U -J "$SECRET") ;;
        authz) port=${PORTS[1]} pid=$PID_wd_warm args=(-m authorize) ;;
        esac
        if [ $((r % 2)) = 1 ]; then
            w=$(load "$port" "$pid" "${args[@]}")
            b=$(load "${PORTS[0]}" "$BARE_PID" "${args[@]}")
        else
            b=$(load "${PORTS[0]}" "$BARE_PID" "${args[@]}")
            w=$(load "$port" "$pid" "${args[@]}")
        fi
        echo "round $r $s warden: $w  bare: $b"
        case "$w $b" in *err=[1-9]* | *deny=[1-9]*) echo "  ^ failed or denied calls: see $OUT/runs.txt" ;; esac
        RES[$s]+="$w $b;"
    done
done

echo
printf '%-11s %10s %10s %7s %9s %9s %8s %8s\n' setting bare_rps warden_rps ratio bare_p99 wd_p99 bare_us wd_us
for s in authn-warm authn-cold authz; do
    echo "${RES[$s]}" | tr ';' '\n' | sed '/^$/d' |
        awk -v s="$s" "$BENCH_AWK_MED"'
            {w[NR]=$1; wp[NR]=$2; wu[NR]=$3; b[NR]=$6; bp[NR]=$7; bu[NR]=$8; r[NR]=$1/$6}
            END { n = NR; printf "%-11s %10.0f %10.0f %7.3f %8.2fms %8.2fms %8.2f %8.2f\n", s,
                  med(b, n), med(w, n), med(r, n), med(bp, n) / 1000, med(wp, n) / 1000,
                  med(bu, n), med(wu, n) }'
done
echo "(medians over $ROUNDS rounds; ratio = median of per-round warden/bare calls/s; *_us = server CPU per call)"
