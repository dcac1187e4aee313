#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench/invalidation.sh: N warden replicas sharing one redis-server with `cache_invalidation
# tracking` (docs/cache.md "Coherence with Redis"): (1) how long after a user's password or
# ACL is written in Redis every replica answers the new decision; (2) warm authorize calls/s
# with 1, 2 .. N replicas side by side. Results: bench/stores-results.md ("Invalidation
# across replicas").
#
#   bench/invalidation.sh                        # ~1 min 30 s on an idle 2-core box
#   ITER=40 DUR=2 ROUNDS=1 bench/invalidation.sh # smoke run
#
# (1) bench/inval_probe.py (python3 grpcio): one poller thread per replica calls it in a tight
#     closed loop on its own gRPC channel; the probe flips user inv-user's state ITER times
#     (half by its password_hash, half by an ACL rule; ALLOW -> DENY -> ALLOW ...), each flip
#     once every replica answered the current decision WARM times in a row (from its cache),
#     and times each replica's first reply with the new decision from just before the write.
#     cache_ttl is 1h: only an invalidation can change an answer in time.
# (2) for n in 1..N: n wd_load processes at once (-m authorize -k K -z 1.0 -t 1 -c 4 -n 32,
#     DUR s after WARM s), one per replica, after a pass that caches every user's ACL; the
#     sum of their calls/s, medians over ROUNDS. No pinning: wardens, wd_load and Redis share
#     the machine's cores, which is the point: what this machine allows.
#
# Replicas: `transport h2`, `workers 1`, `cache on`, `cache_ttl 1h`, policy authn redis /
# authn default deny / rules redis / authz default deny; each has an admin socket (its
# cache counters are printed). Ports: 19340.. (replicas), 19349 (Redis): refused if taken.
# Env knobs (defaults): N=3 ITER=200 WARM=3 DUR=4 LWARM=1 ROUNDS=2 K=1000
#   OUT=build/bench/invalidation PYTHON=/usr/bin/python3
# shellcheck disable=SC2016 # ${clientid}: warden's placeholder, not the shell's
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh

N=${N:-3}
ITER=${ITER:-200}
WARM=${WARM:-3}
DUR=${DUR:-4}
LWARM=${LWARM:-1}
ROUNDS=${ROUNDS:-2}
K=${K:-1000}
OUT=${OUT:-build/bench/invalidation}
PYTHON=${PYTHON:-/usr/bin/python3}
RPORT=19349
PORTS=()
for ((i = 0; i < N; i++)); do PORTS+=($((19340 + i))); done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

BIN=$(bench_build "$OUT")
make -s build/gen/py/exhook_pb2.py
bench_refuse_busy_ports "${PORTS[@]}" "$RPORT"
trap bench_cleanup EXIT
bench_redis_start "$RPORT" "$OUT/redis"

# K users for the calls/s part (wd_load -m authorize: username user-NNNN, client dev-NNNN,
# topic devices/dev-NNNN/telemetry)
for ((i = 0; i < K; i++)); do
    printf 'HSET mqtt_acl:user-%04d devices/${clientid}/# publish\n' "$i"
done | redis-cli -p "$RPORT" >/dev/null

printf 'authn redis\nauthn default deny\nrules redis\nauthz default deny\n' >"$OUT/i.policy"
WPIDS=()
for ((i = 0; i < N; i++)); do
    name=wd-$((i + 1))
    {
        echo "listen 127.0.0.1:${PORTS[$i]}"
        echo "transport h2"
        echo "workers 1"
        echo "log_level warn"
        echo "policy $OUT/i.policy"
        echo "redis_host 127.0.0.1"
        echo "redis_port $RPORT"
        echo "cache on"
        echo "cache_ttl 1h"
        echo "cache_invalidation tracking"
        echo "admin_socket $OUT/$name.sock"
    } >"$OUT/$name.conf"
    rm -f "$OUT/$name.sock"
    "$BIN/warden" -c "$OUT/$name.conf" >"$OUT/$name.log" 2>&1 &
    BENCH_PIDS+=($!)
    WPIDS+=($!)
done
for p in "${PORTS[@]}"; do bench_wait_port "$p"; done
# the invalidation stream is subscribed when Redis counts one pubsub channel client per
# replica (until then a replica caches nothing from Redis: docs/cache.md)
for _ in $(seq 200); do
    subs=$(redis-cli -p "$RPORT" pubsub numsub __redis__:invalidate | sed -n 2p)
    [ "${subs:-0}" -ge "$N" ] && break
    sleep 0.05
done
[ "${subs:-0}" -ge "$N" ] || { echo "the replicas' invalidation streams are not up ($subs of $N)" >&2; exit 1; }

counters() { # name: "authn_hits authz_hits redis_lookups"
    "$BIN/warden" admin --socket "$OUT/$1.sock" stats |
        awk '$1 == "authn_cache_hits_total" {a = $2} $1 == "authz_cache_hits_total" {z = $2}
             $1 == "redis_lookups_total" {l = $2} END {print a + 0, z + 0, l + 0}'
}

echo "== machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"
echo "== 1. invalidation latency: $N replicas, $ITER flips (python3 grpcio pollers, one per replica)"
declare -A C0
for ((i = 1; i <= N; i++)); do C0[$i]=$(counters "wd-$i"); done
replicas=$(printf '127.0.0.1:%s,' "${PORTS[@]}")
"$PYTHON" bench/inval_probe.py --gen build/gen/py --redis-port "$RPORT" \
    --replicas "${replicas%,}" --iter "$ITER" --warm "$WARM" --tsv "$OUT/flips.tsv" ||
    echo "!! the probe reported failures (see above and $OUT/flips.tsv)"
for ((i = 1; i <= N; i++)); do
    read -r a0 z0 l0 <<<"${C0[$i]}"
    read -r a1 z1 l1 <<<"$(counters "wd-$i")"
    echo "  wd-$i during the flips: authn cache hits $((a1 - a0)), authz cache hits $((z1 - z0)), redis lookups $((l1 - l0))"
done

echo "== 2. warm authorize calls/s with 1..$N replicas (wd_load -m authorize -k $K -z 1.0 -t 1 -c 4 -n 32, ${DUR}s, one per replica)"
for ((i = 0; i < N; i++)); do # cache every user's ACL on every replica
    "$BIN/wd_load" -a "127.0.0.1:${PORTS[$i]}" -m authorize -k "$K" -N "$K" -c 4 -n 32 -q >/dev/null
done
declare -A SUM
for ((r = 1; r <= ROUNDS; r++)); do
    for ((n = 1; n <= N; n++)); do
        lp=()
        for ((i = 0; i < n; i++)); do
            "$BIN/wd_load" -a "127.0.0.1:${PORTS[$i]}" -m authorize -k "$K" -z 1.0 -t 1 -c 4 -n 32 \
                -d "$DUR" -w "$LWARM" -q -S "${WPIDS[$i]}" >"$OUT/load-$r-$n-$i.out" 2>&1 &
            lp+=($!)
        done
        for p in "${lp[@]}"; do wait "$p" || true; done
        line=$(cat "$OUT"/load-"$r"-"$n"-*.out | awk '
            { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
              rps += v["rps"]; err += v["err"] + v["mismatch"]; deny += v["deny"]
              srv += v["srv_us_per_call"]; if (v["p99_us"] > p99) p99 = v["p99_us"]; oth = v["other_cores"]; m++ }
            END { printf "%.0f %.2f %.0f %d %d %s", rps, srv / m, p99, err, deny, oth }')
        read -r rps srv p99 err deny oth <<<"$line"
        echo "  round $r, $n replica(s): calls/s $rps (sum), warden CPU/call ${srv} us (mean), worst p99 ${p99} us, failed $err, denied $deny, other_cores $oth"
        SUM[$n]+="$rps "
    done
done
for ((n = 1; n <= N; n++)); do
    echo "  $n replica(s): median calls/s $(tr ' ' '\n' <<<"${SUM[$n]}" | sed '/^$/d' | bench_median) over $ROUNDS round(s)"
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg); files in $OUT"
