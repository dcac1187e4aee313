#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench/sessions.sh: authorize through JWT sessions with `session_store local` and
# `session_store redis` (warm: the local table in front, no Redis), and the cost of a
# session miss (one Redis GET per call, the call waits on the h2 transport). Results:
# bench/stores-results.md ("Shared sessions").
#
#   bench/sessions.sh                  # ~2 min
#   DUR=2 ROUNDS=1 bench/sessions.sh   # smoke run
#
# Three wardens on `transport h2`, one worker each, pinned to cpu0; wd_load and
# redis-server on cpu1. Policy: authn jwt / authn default deny / rules jwt / authz default
# deny; every client dev-NNNN logs in once as user-NNNN with an HS256 token whose ACL allows
# devices/${clientid}/# (wd_load -U -J), on wd-local (session_store local) and on wd-redis
# (session_store redis: each login also SETs its session in Redis). wd-miss shares wd-redis'
# Redis and never sees a login. Settings, medians over ROUNDS:
#   warm-local  wd_load -m authorize -z 1.0 -k K -d DUR against wd-local
#   warm-redis  the same against wd-redis: must be the same (no Redis on a local hit)
#   pass-warm   wd_load -m authorize -k K -N K (each client once) against wd-redis
#   pass-miss   the same against wd-miss after `warden admin flush`: every call misses
#               locally, waits for one GET, decodes and adopts the session
# shellcheck disable=SC2154 # PID_wd_*: set by start_warden (eval)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh
DUR=${DUR:-4}
WARM=${WARM:-1}
ROUNDS=${ROUNDS:-3}
K=${K:-10000}
OUT=${OUT:-build/bench/sessions}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SECRET=${SECRET:-bench-secret-0123456789abcdef0123456789}
PORTS=(19320 19321 19322)
RPORT=${RPORT:-19329}

BIN=$(bench_build "$OUT")
bench_refuse_busy_ports "${PORTS[@]}" "$RPORT"
trap bench_cleanup EXIT

bench_redis_start "$RPORT" "$OUT/redis" taskset -c 1
printf 'authn jwt\nauthn default deny\nrules jwt\nauthz default deny\n' >"$OUT/s.policy"
start_warden() { # name port extra...
    local name=$1 port=$2
    shift 2
    {
        echo "listen 127.0.0.1:$port"
        echo "transport h2"
        echo "workers 1"
        echo "log_level warn"
        echo "policy $OUT/s.policy"
        echo "jwt_secret \"$SECRET\""
        echo "redis_host 127.0.0.1"
        echo "redis_port $RPORT"
        echo "admin_socket $OUT/$name.sock"
        for l in "$@"; do echo "$l"; done
    } >"$OUT/$name.conf"
    rm -f "$OUT/$name.sock"
    taskset -c 0 "$BIN/warden" -c "$OUT/$name.conf" >"$OUT/$name.log" 2>&1 &
    BENCH_PIDS+=($!)
    eval "PID_${name//-/_}=$!"
}
start_warden wd-local "${PORTS[0]}" "session_store local"
start_warden wd-redis "${PORTS[1]}" "session_store redis"
start_warden wd-miss "${PORTS[2]}" "session_store redis"
for p in "${PORTS[@]}"; do bench_wait_port "$p"; done

load() { # port pid extra... -> "rps p50_us p99_us srv_us"
    local port=$1 pid=$2
    shift 2
    taskset -c 1 "$BIN/wd_load" -a "127.0.0.1:$port" -t 1 -c 8 -n 64 -q -S "$pid" "$@" |
        tee -a "$OUT/runs.txt" |
        sed -n 's/.*rps=\([0-9.]*\).* err=\([0-9]*\).* deny=\([0-9]*\).* p50_us=\([0-9]*\).* p99_us=\([0-9]*\).*srv_us_per_call=\([0-9.-]*\).*/\1 \4 \5 \6 err=\2 deny=\3/p'
}
for p in "${PORTS[0]}" "${PORTS[1]}"; do
    taskset -c 1 "$BIN/wd_load" -a "127.0.0.1:$p" -m authenticate -U -J "$SECRET" \
        -k "$K" -N "$K" -c 8 -n 64 -q >/dev/null
done
keys=$(redis-cli -p "$RPORT" DBSIZE)
echo "sessions in Redis: $keys (want $K)"

declare -A RES
SETTINGS="warm-local warm-redis pass-warm pass-miss"
for r in $(seq "$ROUNDS"); do
    for s in $SETTINGS; do
        case $s in
        warm-local) res=$(load "${PORTS[0]}" "$PID_wd_local" -m authorize -k "$K" -z 1.0 -d "$DUR" -w "$WARM") ;;
        warm-redis) res=$(load "${PORTS[1]}" "$PID_wd_redis" -m authorize -k "$K" -z 1.0 -d "$DUR" -w "$WARM") ;;
        pass-warm) res=$(load "${PORTS[1]}" "$PID_wd_redis" -m authorize -k "$K" -N "$K") ;;
        pass-miss)
            "$BIN/warden" admin --socket "$OUT/wd-miss.sock" flush >/dev/null
            res=$(load "${PORTS[2]}" "$PID_wd_miss" -m authorize -k "$K" -N "$K")
            ;;
        esac
        echo "round $r $s: $res"
        case "$res" in *err=[1-9]* | *deny=[1-9]*) echo "  ^ failed or denied calls: see $OUT/runs.txt" ;; esac
        RES[$s]+="$res;"
    done
done
"$BIN/warden" admin --socket "$OUT/wd-miss.sock" stats | grep -E '^sessions' || true

echo
printf '%-11s %10s %9s %9s %9s\n' setting calls/s p50 p99 srv_us
for s in $SETTINGS; do
    echo "${RES[$s]}" | tr ';' '\n' | sed '/^$/d' |
        awk -v s="$s" "$BENCH_AWK_MED"'
            {w[NR]=$1; p5[NR]=$2; p9[NR]=$3; u[NR]=$4}
            END { n = NR; printf "%-11s %10.0f %8.3fms %8.3fms %9.2f\n", s, med(w, n),
                  med(p5, n) / 1000, med(p9, n) / 1000, med(u, n) }'
done
echo "(medians over $ROUNDS rounds; srv_us = warden CPU per call, all its threads)"
