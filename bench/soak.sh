#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench/soak.sh: issue 10's soak. MINUTES of mixed load on two wardens (transport h2) with
# their Redis, a policy reload every RELOAD_EVERY seconds, and warden's resident memory and
# open descriptors sampled at the start of the measurement (after WARM seconds of warm-up),
# every SAMPLE_EVERY seconds and at the end. Not part of `make test`.
#
#   bench/soak.sh                        # 10 minutes (+ 60 s warm-up); figures in docs/reliability.md
#   MINUTES=1 WARM=10 bench/soak.sh      # a smoke run
#
# What it does:
#   1. `make bench`, copies wd_load and warden to $OUT/bin; refuses busy ports;
#   2. starts its own redis-server (127.0.0.1, a free port in 16000-20999, data in a temp
#      dir, no persistence; stopped by PID at exit) and loads K users the way
#      bench/stores.sh does (HSET mqtt_user:user-NNNN password_hash sha256(salt||pw-NNNN)
#      salt NaCl-NNNN; HSET mqtt_acl:user-NNNN devices/${clientid}/# all ...);
#   3. starts two wardens (`transport h2`, WORKERS workers, policy `authn redis / rules
#      redis`, policy_watch on, an admin socket):
#        wd-warm  cache on with the defaults (65536 entries, ttl 1m): a warm cache, entries
#                 refreshed from Redis as they expire;
#        wd-cold  cache_entries 256, cache_ttl 1s, cache_negative_ttl 1s, session_max 512:
#                 K users through a tiny cache: nearly every call goes to Redis, and the
#                 cache and the sessions evict all the time;
#   4. on each warden, two wd_load processes for WARM + MINUTES*60 s: authorize
#      (-m authorize -z ZIPF -k K) and authenticate (-m authenticate -U -z ZIPF -k K), each
#      -c CHANNELS -n INFLIGHT (closed loop: every answer sends the next call);
#   5. every RELOAD_EVERY s each warden's policy is reloaded, alternately by rewriting the
#      file (written aside, renamed over it: the watcher) and by SIGHUP; the two versions
#      differ by a rule that never matches, so answers do not change;
#   6. samples VmRSS (/proc/PID/status) and the open descriptors (/proc/PID/fd) of each
#      warden at the end of the warm-up, every SAMPLE_EVERY s and at the end:
#      $OUT/samples.tsv; then prints, per warden: RSS and fds at start and end, drift %,
#      peak, calls/s, errors (wd_load err + mismatch, warden's ERROR lines), reloads done.
#
# Env knobs (defaults): MINUTES=10 WARM=60 RELOAD_EVERY=10 SAMPLE_EVERY=60 K=2000 ZIPF=1.0
#   WORKERS=2 CHANNELS=2 INFLIGHT=8 WD_PORT=9311 (and WD_PORT+1) OUT=build/bench/soak
#   NICE_LEVEL=10 (every process of the soak runs under nice: the closed-loop generators take
#   whatever CPU is free, and the soak measures drift, not speed, so it yields to other work)
# shellcheck disable=SC2016 # ${clientid}, ${username}: warden's placeholders, not the shell's
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh

MINUTES=${MINUTES:-10}
WARM=${WARM:-60}
RELOAD_EVERY=${RELOAD_EVERY:-10}
SAMPLE_EVERY=${SAMPLE_EVERY:-60}
K=${K:-2000}
ZIPF=${ZIPF:-1.0}
WORKERS=${WORKERS:-2}
CHANNELS=${CHANNELS:-2}
INFLIGHT=${INFLIGHT:-8}
WD_PORT=${WD_PORT:-9311}
OUT=${OUT:-build/bench/soak}
PYTHON=${PYTHON:-/usr/bin/python3}
NICE=(nice -n "${NICE_LEVEL:-10}")
HOST=127.0.0.1
NAMES=(wd-warm wd-cold)

log() { printf '%s\n' "$*" >&2; }
die() { log "soak.sh: $*"; exit 1; }
rss_kib() { awk '/^VmRSS:/ {print $2}' /proc/"$1"/status 2>/dev/null || echo 0; }
fds() { find /proc/"$1"/fd -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
bench_make "$OUT" build/release/bench/wd_load build/warden
BIN=$OUT/bin
WARDEN=$BIN/warden
for c in ss redis-server redis-cli "$PYTHON"; do command -v "$c" >/dev/null || die "$c is needed"; done
PORTS=("$WD_PORT" $((WD_PORT + 1)))
bench_refuse_listening "${PORTS[@]}"

# ---- processes (all stopped by PID at exit) ---------------------------------------------
TMP=$(mktemp -d /tmp/wd-soak.XXXXXX)
declare -A PID=()
LOADS=()
# shellcheck disable=SC2317 # run by the EXIT trap
stop_all() {
    local n p
    for p in "${LOADS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for n in "${!PID[@]}"; do kill -TERM "${PID[$n]}" 2>/dev/null || true; done
    for p in "${LOADS[@]}"; do wait "$p" 2>/dev/null || true; done
    for n in "${!PID[@]}"; do wait "${PID[$n]}" 2>/dev/null || true; done
    PID=()
    LOADS=()
    rm -rf "$TMP"
}
trap 'stop_all' EXIT
trap 'exit 130' INT TERM

bench_redis_start_free "$TMP" "$OUT/redis.log" 'PID[redis]' "${NICE[@]}"
RPORT=$BENCH_RPORT
"$PYTHON" - "$K" >"$TMP/load.resp" <<'EOF'
import hashlib, sys
k = int(sys.argv[1])
out = sys.stdout.buffer
def cmd(*args):
    a = [x.encode() for x in args]
    out.write(b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a))
cmd("FLUSHALL")
for i in range(k):
    n = f"{i:04d}"
    salt = f"NaCl-{n}"
    h = hashlib.sha256((salt + f"pw-{n}").encode()).hexdigest()
    cmd("HSET", f"mqtt_user:user-{n}", "password_hash", h, "salt", salt, "is_superuser", "0")
    cmd("HSET", f"mqtt_acl:user-{n}", "devices/${clientid}/#", "all",
        "users/${username}/inbox/#", "subscribe")
EOF
redis-cli -p "$RPORT" --pipe <"$TMP/load.resp" >"$OUT/redis-load.log" 2>&1 || die "loading Redis failed"
[ "$(redis-cli -p "$RPORT" dbsize)" = $((2 * K)) ] || die "Redis does not hold the $((2 * K)) keys"
log "== redis-server pid ${PID[redis]} on $HOST:$RPORT, $K users with ACLs"

policy_text() { # version
    printf '# soak policy, version %s (written by bench/soak.sh)\n' "$1"
    printf 'authn redis\nauthn default deny\n'
    printf 'deny publish "soak/never/%s"\n' "$1"
    printf 'rules redis\nauthz default deny\n'
}
start_warden() { # name port extra-config-lines...
    local name=$1 port=$2
    shift 2
    mkdir -p "$TMP/$name"
    policy_text 0 >"$TMP/$name/soak.policy"
    {
        echo "# written by bench/soak.sh"
        echo "listen $HOST:$port"
        echo "transport h2"
        echo "workers $WORKERS"
        echo "policy $TMP/$name/soak.policy"
        echo "policy_watch on"
        echo "log_level info"
        echo "redis_host 127.0.0.1"
        echo "redis_port $RPORT"
        echo "admin_socket $TMP/$name.sock"
        printf '%s\n' "$@"
    } >"$OUT/$name.conf"
    "$WARDEN" --config "$OUT/$name.conf" --check-config >"$OUT/$name.check" 2>&1 ||
        die "$OUT/$name.conf is refused (see $OUT/$name.check)"
    "${NICE[@]}" "$WARDEN" --config "$OUT/$name.conf" >"$OUT/$name.log" 2>&1 &
    PID[$name]=$!
    bench_wait_listen "${PID[$name]}" "$port" "$name"
}
start_warden wd-warm "${PORTS[0]}" "cache on"
start_warden wd-cold "${PORTS[1]}" "cache on" "cache_entries 256" "cache_ttl 1s" \
    "cache_negative_ttl 1s" "session_max 512"

DUR=$((MINUTES * 60))
T0=$(date +%s)
log "== load: ${MINUTES} min measured after ${WARM} s of warm-up; reload every ${RELOAD_EVERY} s"
i=0
for name in "${NAMES[@]}"; do
    port=${PORTS[$i]}
    for m in authorize authenticate; do
        extra=()
        [ "$m" = authenticate ] && extra=(-U)
        "${NICE[@]}" "$BIN/wd_load" -a "$HOST:$port" -m "$m" "${extra[@]}" -z "$ZIPF" -k "$K" -c "$CHANNELS" \
            -n "$INFLIGHT" -w "$WARM" -d "$DUR" -T 5000 -q >"$OUT/load-$name-$m.out" \
            2>"$OUT/load-$name-$m.err" &
        LOADS+=($!)
    done
    i=$((i + 1))
done

printf 't_s\twarden\trss_kib\tfds\n' >"$OUT/samples.tsv"
sample() { # t
    local n
    for n in "${NAMES[@]}"; do
        kill -0 "${PID[$n]}" 2>/dev/null || die "$n died (see $OUT/$n.log)"
        printf '%s\t%s\t%s\t%s\n' "$1" "$n" "$(rss_kib "${PID[$n]}")" "$(fds "${PID[$n]}")" >>"$OUT/samples.tsv"
    done
}
reloads=0
reload() {
    local n v=$((reloads % 2 + 1))
    for n in "${NAMES[@]}"; do
        if [ $((reloads % 2)) = 0 ]; then # the watcher sees the rename
            policy_text "$v" >"$TMP/$n/.soak.policy.tmp"
            mv "$TMP/$n/.soak.policy.tmp" "$TMP/$n/soak.policy"
        else # SIGHUP reloads the file as it is
            kill -HUP "${PID[$n]}"
        fi
    done
    reloads=$((reloads + 1))
}

END=$((T0 + WARM + DUR - 2)) # the last sample while the generators still run
next_reload=$((T0 + RELOAD_EVERY))
next_sample=$((T0 + WARM))
while :; do
    now=$(date +%s)
    [ "$now" -ge "$END" ] && break
    if [ "$now" -ge "$next_sample" ]; then
        sample $((now - T0 - WARM))
        next_sample=$((next_sample + SAMPLE_EVERY))
    fi
    if [ "$now" -ge "$next_reload" ]; then
        reload
        next_reload=$((next_reload + RELOAD_EVERY))
    fi
    for p in "${LOADS[@]}"; do kill -0 "$p" 2>/dev/null || die "a load generator exited early (see $OUT/load-*.err)"; done
    sleep 1
done
sample $(($(date +%s) - T0 - WARM))
for n in "${NAMES[@]}"; do
    "$WARDEN" admin --socket "$TMP/$n.sock" stats >"$OUT/$n.stats" 2>&1 || true
done
lrc=0
for p in "${LOADS[@]}"; do wait "$p" || lrc=1; done
LOADS=()

# ---- report ---------------------------------------------------------------------------------
{
    echo "soak: ${MINUTES} min after ${WARM} s warm-up, $K users, Zipf $ZIPF, $WORKERS workers per warden,"
    echo "  wd_load -c $CHANNELS -n $INFLIGHT per generator (authorize + authenticate on each warden),"
    echo "  $reloads policy reloads per warden (every ${RELOAD_EVERY} s, file rewrite and SIGHUP alternately)"
    printf '%-8s %10s %10s %8s %10s %6s %6s %7s %9s %9s %6s %6s %7s\n' warden rss_start rss_end "drift%" \
        rss_peak fds_0 fds_1 "drift%" authz/s authn/s errors denies reloads
    for n in "${NAMES[@]}"; do
        read -r r0 r1 rp f0 f1 < <(awk -F'\t' -v n="$n" '$2 == n {if (!s++) {r0 = $3; f0 = $4}
            r1 = $3; f1 = $4; if ($3 > rp) rp = $3} END {print r0, r1, rp, f0, f1}' "$OUT/samples.tsv")
        az=$(cat "$OUT/load-$n-authorize.out")
        an=$(cat "$OUT/load-$n-authenticate.out")
        errs=$(($(bench_kv err "$az") + $(bench_kv mismatch "$az") + $(bench_kv err "$an") + $(bench_kv mismatch "$an")))
        werr=$(grep -c ' ERROR ' "$OUT/$n.log" || true)
        ok=$(grep -cE 'main: (SIGHUP|policy file changed): policy .* reloaded' "$OUT/$n.log" || true)
        printf '%-8s %10s %10s %8.2f %10s %6s %6s %7.2f %9.0f %9.0f %6s %6s %7s\n' "$n" "$r0" "$r1" \
            "$(awk -v a="$r0" -v b="$r1" 'BEGIN {print (b - a) * 100 / a}')" "$rp" "$f0" "$f1" \
            "$(awk -v a="$f0" -v b="$f1" 'BEGIN {print (b - a) * 100 / a}')" \
            "$(bench_kv rps "$az")" "$(bench_kv rps "$an")" "$((errs + werr))" \
            "$(($(bench_kv deny "$az") + $(bench_kv deny "$an")))" "$ok/$reloads"
    done
    echo "rss in KiB (VmRSS); fds: /proc/PID/fd entries; drift: end vs start of the measurement;"
    echo "errors: wd_load err + mismatch (both generators of the warden) + warden ERROR log lines;"
    echo "denies: calls answered false (every call here should be allowed); calls/s from wd_load (ok calls)"
    for n in "${NAMES[@]}"; do
        st=$(tr -d '\r' <"$OUT/$n.stats")
        c() { awk -v k="$1" '$1 == k {print $2; f = 1} END {if (!f) print 0}' <<<"$st"; }
        d=$(($(c authn_allow_total) + $(c authn_deny_total) + $(c authz_allow_total) + $(c authz_deny_total)))
        printf '%s: %d decisions, %d Redis lookups (%.2f per decision), %d Redis errors\n' "$n" "$d" \
            "$(c redis_lookups_total)" "$(awk -v a="$(c redis_lookups_total)" -v b="$d" 'BEGIN {print b ? a / b : 0}')" \
            "$(c redis_errors_total)"
    done
    echo "samples (t after warm-up, s):"
    awk -F'\t' 'NR > 1 {printf "  %5s %-8s rss %7s KiB  fds %s\n", $1, $2, $3, $4}' "$OUT/samples.tsv"
} | tee "$OUT/summary.txt"
[ "$lrc" = 0 ] || log "soak.sh: a load generator reported failed calls (see $OUT/load-*.out)"
exit "$lrc"
