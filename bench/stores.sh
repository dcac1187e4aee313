#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench/stores.sh: warden with its credential store (Redis) and cache, against the bare
# gRPC baseline (bench/bare_server), side by side. Results: bench/stores-results.md.
#
#   bench/stores.sh                                  # everything, ~10 min on an idle box
#   DUR=2 WARM=1 ROUNDS=1 STEADY=0 bench/stores.sh   # smoke run, ~1 min
#   SETTINGS="authz-warm authz-cold" ROUNDS=7 STEADY=0 STORM=0 OUT=/tmp/ws bench/stores.sh
#   bench/stores.sh --report build/bench/stores/results.tsv    # reprint an earlier summary
#
# What it does:
#   1. `make bench`, then runs copies of wd_load, bare_server and warden from $OUT/bin;
#      refuses to run if one of its ports is listening; measures the background load;
#   2. starts its own redis-server (127.0.0.1, a free port in 16000-20999, data in a temp
#      dir, no persistence; stopped by PID at exit) and loads K users with redis-cli --pipe:
#        HSET mqtt_user:user-NNNN password_hash sha256(salt||pw-NNNN) salt NaCl-NNNN is_superuser 0
#        HSET mqtt_acl:user-NNNN devices/${clientid}/# all  users/${username}/inbox/# subscribe
#             "eq fleet/announcements" {"action":"subscribe","qos":[0,1]}
#      and B bcrypt users (cost 10) with `warden passwd --scheme bcrypt:10`, cached between
#      runs in BCRYPT_CACHE:
#        HSET mqtt_user_bc:bcuser-NNNN password_hash $2b$10$... is_superuser 0
#   3. starts bare_server and five wardens with the same worker threads, on the policy
#        authn redis / authn default deny / rules redis / authz default deny
#      wd-warm (cache on), wd-cold (cache off), wd-bc (cache on, redis_password_hash
#      bcrypt, redis_authn_key mqtt_user_bc:${username}), wd-bcoff (wd-bc, cache off),
#      and wd-su (cache on, the policy plus the superuser rule, see authz-su);
#      each has an admin socket for `warden admin stats` (counters) and `flush`;
#   4. ROUNDS rounds; in each, every setting runs bare and its warden back to back (order
#      flipped every round, ABBA); each pair first waits up to QUIET_WAIT s for an idle
#      machine; rounds where something else ran (other > OTHER_MAX cores) are "unclean"
#      and left out of the medians:
#        authz-warm  wd_load -m authorize -z ZIPF -k K -c 8 -n 64      wd-warm, after a pass
#                    that authenticates and authorizes every user once (cache + sessions)
#        authz-su    the same against wd-su, whose policy also has EMQX's superuser rule
#                    (`allow all ["#", "$SYS/#"] when superuser` before `rules redis`):
#                    reading `superuser` adds a session lookup to every authorize
#        authz-cold  the same against wd-cold: every decision is a Redis HGETALL
#        authn-warm  wd_load -m authenticate -U -z ZIPF -k K -c 8 -n 64 (sha256), wd-warm
#        authn-cold  the same against wd-cold: a Redis HMGET and a sha256 per call
#        bc-cold     wd_load -m authenticate -U -u bcuser -k B -N B -c 8 -n 64 after
#                    `warden admin flush` on wd-bc: every user once, one bcrypt each
#        bc-warm     the same storm again for DUR s, round-robin over the B users, warm
#      Warden's counters are read before and after each measurement: Redis round trips per
#      decision = delta redis_lookups_total / delta decisions (the run's warm-up included);
#   5. STEADY s (0 = skip): a continuous mixed run on wd-warm from a flushed cache,
#      authorize (-c 6 -n 56) and authenticate (-c 2 -n 8) at once, both Zipf; counters in
#      two windows: the first half (fill), the second half (steady state, TTL refreshes);
#   6. STORM=1: 64 concurrent authenticates of one bcrypt user on a cold cache, against
#      wd-bc, wd-bcoff and a wd-bc twin with STORM_WORKERS workers: counters and wall time;
#   7. PROFILE=auto|1|0: perf record (5 s, dwarf call graphs) of wd-warm under the
#      authz-warm load and of wd-su under authz-su, when that setting's calls/s ratio is
#      below 0.9 (auto), always (1) or never (0): $OUT/profile-SETTING.txt.
#
# Env knobs (defaults): DUR=4 WARM=1 ROUNDS=5 PIN=1 THREADS (1 if PIN=1, else nproc)
#   K=10000 B=200 ZIPF=1.0 STEADY=130 STORM=1 STORM_WORKERS=64 PROFILE=auto
#   CACHE_CONF="directive value; ..." (extra configuration for the wardens with `cache on`,
#   e.g. CACHE_CONF="cache_memory 256MiB"; default: warden's defaults)
#   OTHER_MAX=0.3 QUIET_WAIT=20 BARE_PORT=9200 WD_PORT=9201 (wardens: WD_PORT..WD_PORT+5)
#   OUT=build/bench/stores BCRYPT_CACHE=build/bench/bcrypt-users.txt
#   SETTINGS="authz-warm authz-su authz-cold authn-warm authn-cold bc-cold bc-warm"
# PIN=1: servers on cpu0, clients AND redis-server on cpu1 (taskset): in the cold settings
#   Redis competes with the load generator for its core, not with warden.
# shellcheck disable=SC2016 # ${username}, ${clientid}: warden's placeholders, not the shell's
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh

DUR=${DUR:-4}
WARM=${WARM:-1}
ROUNDS=${ROUNDS:-5}
K=${K:-10000}
B=${B:-200}
ZIPF=${ZIPF:-1.0}
STEADY=${STEADY:-130}
STORM=${STORM:-1}
STORM_WORKERS=${STORM_WORKERS:-64}
PROFILE=${PROFILE:-auto}
OTHER_MAX=${OTHER_MAX:-0.3}
QUIET_WAIT=${QUIET_WAIT:-20}
BARE_PORT=${BARE_PORT:-9200}
WD_PORT=${WD_PORT:-9201}
OUT=${OUT:-build/bench/stores}
BCRYPT_CACHE=${BCRYPT_CACHE:-build/bench/bcrypt-users.txt}
PYTHON=${PYTHON:-/usr/bin/python3}
CACHE_CONF=${CACHE_CONF:-}
IFS=';' read -r -a CACHE_LINES <<<"$CACHE_CONF"
bench_pin "servers pinned to cpu0; clients and redis-server to cpu1 (taskset)" \
    "no pinning (servers, redis-server and clients share all cores)"
BIN=build/release/bench
WARDEN=build/warden
HOST=127.0.0.1
ALL_SETTINGS="authz-warm authz-su authz-cold authn-warm authn-cold bc-cold bc-warm"

log() { printf '%s\n' "$*" >&2; }
die() { log "stores.sh: $*"; exit 1; }

# ---- report (a function: --report reprints an earlier run) ------------------------------
# results.tsv columns: round setting server rps p50_us p99_us p999_us max_us err mismatch
#   deny srv_us other elapsed decisions lookups hits coalesced redis_us
# A round is clean when neither measurement of the pair saw more than OTHER_MAX cores of
# foreign load ("other" already has redis-server's CPU taken out; "-" = window too short
# to judge). Medians use the clean rounds (all rounds, flagged, when none is clean).
# Ratios: the median over rounds of warden/bare in the same round. Round trips per
# decision: summed over all rounds (a counter, not a timing).
report() {
awk -F'\t' -v omax="$OTHER_MAX" "$BENCH_AWK_MEDIAN"'
function ms(us) { return us == "" ? "-" : sprintf("%.3f", us / 1000) }
NR == 1 { next }
{
    k = $1 SUBSEP $2 SUBSEP $3
    rps[k] = $4; p50[k] = $5; p99[k] = $6; srv[k] = $12; oth[k] = $13
    dec[k] = $15; lk[k] = $16; hit[k] = $17; coal[k] = $18; rus[k] = $19
    bad[$2] += ($9 ~ /^[0-9]+$/ ? $9 : 0) + ($10 ~ /^[0-9]+$/ ? $10 : 0)
    den[$2] += ($11 ~ /^[0-9]+$/ ? $11 : 0)
    seen[$2] = 1; if ($1 > maxr) maxr = $1
}
END {
    printf "%-10s %-6s %9s %8s %8s %7s %6s  %-6s %-6s %-6s %-9s %s\n", "setting", "server", "calls/s", "p50_ms", "p99_ms", "srv_us", "other", "rps", "cpu", "p99", "redis/dec", "clean rounds; per-round calls/s ratio (* unclean)"
    n = split("authz-warm authz-su authz-cold authn-warm authn-cold bc-cold bc-warm", order, " ")
    for (i = 1; i <= n; i++) {
        s = order[i]; if (!(s in seen)) continue
        nclean = 0; npairs = 0; roundlist = ""; sdec = 0; slk = 0; shit = 0; scoal = 0
        for (r = 1; r <= maxr; r++) {
            kb = r SUBSEP s SUBSEP "bare"; kw = r SUBSEP s SUBSEP "warden"
            if (!(kb in rps) || !(kw in rps)) continue
            npairs++
            clean[r] = (oth[kb] == "-" || oth[kb] + 0 <= omax) && (oth[kw] == "-" || oth[kw] + 0 <= omax)
            nclean += clean[r]
        }
        for (r = 1; r <= maxr; r++) {
            kb = r SUBSEP s SUBSEP "bare"; kw = r SUBSEP s SUBSEP "warden"
            if (!(kb in rps) || !(kw in rps)) continue
            ratio = rps[kb] > 0 ? rps[kw] / rps[kb] : 0
            roundlist = roundlist sprintf(" %.3g%s", ratio, clean[r] ? "" : "*")
            sdec += dec[kw]; slk += lk[kw]; shit += hit[kw]; scoal += coal[kw]
            if (nclean > 0 && !clean[r]) continue
            L["bare", "rps"] = L["bare", "rps"] " " rps[kb]; L["warden", "rps"] = L["warden", "rps"] " " rps[kw]
            L["bare", "p50"] = L["bare", "p50"] " " p50[kb]; L["warden", "p50"] = L["warden", "p50"] " " p50[kw]
            L["bare", "p99"] = L["bare", "p99"] " " p99[kb]; L["warden", "p99"] = L["warden", "p99"] " " p99[kw]
            L["bare", "srv"] = L["bare", "srv"] " " srv[kb]; L["warden", "srv"] = L["warden", "srv"] " " srv[kw]
            if (oth[kb] != "-") L["bare", "oth"] = L["bare", "oth"] " " oth[kb]
            if (oth[kw] != "-") L["warden", "oth"] = L["warden", "oth"] " " oth[kw]
            if (rus[kw] != "-") L["warden", "rus"] = L["warden", "rus"] " " rus[kw]
            ratios = ratios " " ratio
            if (p99[kb] > 0) p99r = p99r " " p99[kw] / p99[kb]
            if (srv[kw] > 0) cpur = cpur " " srv[kb] / srv[kw]
        }
        for (j = 1; j <= 2; j++) {
            sv = j == 1 ? "bare" : "warden"
            o = median(L[sv, "oth"])
            if (j == 1)
                extra = ""
            else
                extra = sprintf("%-6.3g %-6.3g %-6.3g %-9s %d/%d;%s", median(ratios), median(cpur), median(p99r),
                    sdec > 0 ? sprintf("%.4f", slk / sdec) : "-", nclean, npairs, roundlist)
            printf "%-10s %-6s %9.0f %8s %8s %7.2f %6s  %s\n", s, sv, median(L[sv, "rps"]),
                ms(median(L[sv, "p50"])), ms(median(L[sv, "p99"])), median(L[sv, "srv"]),
                (o == "" ? "-" : sprintf("%.2f", o)), extra
        }
        r_us = median(L["warden", "rus"])
        printf "%-10s        decisions %d, redis lookups %d, cache hits %d, coalesced %d%s\n", "", sdec, slk, shit, scoal,
            (r_us == "" ? "" : sprintf(", redis-server CPU %.2f us/decision", r_us))
        if (bad[s]) printf "           !! %d failed calls (err+mismatch) in this setting\n", bad[s]
        if (den[s]) printf "           !! %d calls answered bool_result=false (deny) in this setting\n", den[s]
        delete L; ratios = ""; p99r = ""; cpur = ""; delete clean
    }
    print "medians over the clean rounds (other <= " omax " cores for both servers; all rounds when none"
    print "is clean, * marks an unclean round). rps, p99: warden/bare ratios (median of per-round ratios);"
    print "cpu: bare server CPU per call / warden\x27s (1.0 = warden costs no more; per-round median)."
    print "redis/dec: Redis round trips per decision, summed over all rounds (warm-up calls included)."
    print "srv_us: server CPU per call. other: cores busy with neither client, server nor redis-server."
}' "$1"
}
if [ "${1:-}" = --report ]; then
    [ -f "${2:-}" ] || die "usage: bench/stores.sh --report results.tsv"
    report "$2"
    exit 0
fi

now() { date +%s.%N; }

# ---- build, preflight -------------------------------------------------------------------
read -r -a SETTINGS <<<"${SETTINGS:-$ALL_SETTINGS}"
for s in "${SETTINGS[@]}"; do
    [[ " $ALL_SETTINGS " == *" $s "* ]] || die "unknown setting '$s' in SETTINGS ($ALL_SETTINGS)"
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
bench_make "$OUT" "$BIN/wd_load" "$BIN/bare_server" "$WARDEN"
BIN=$OUT/bin
WARDEN=$OUT/bin/warden
for c in ss redis-server redis-cli "$PYTHON"; do command -v "$c" >/dev/null || die "$c is needed"; done
if [ "$PIN" = 1 ]; then command -v taskset >/dev/null || die "taskset is needed (or PIN=0)"; fi
WD_PORTS=("$WD_PORT" $((WD_PORT + 1)) $((WD_PORT + 2)) $((WD_PORT + 3)) $((WD_PORT + 4)) $((WD_PORT + 5)))
bench_refuse_listening "$BARE_PORT" "${WD_PORTS[@]}"
if bench_idle_busy; then
    log "WARNING: the machine is already busy ($IDLE_LOAD cores) before the benchmark starts"
fi

# ---- processes (all stopped by PID at exit) ---------------------------------------------
TMP=$(mktemp -d /tmp/wd-stores.XXXXXX)
declare -A PID=()
stop_all() {
    local n
    for n in "${!PID[@]}"; do kill -TERM "${PID[$n]}" 2>/dev/null || true; done
    for n in "${!PID[@]}"; do wait "${PID[$n]}" 2>/dev/null || true; done
    PID=()
    rm -rf "$TMP"
}
trap 'stop_all' EXIT
trap 'exit 130' INT TERM

# redis-server: a free port below the ephemeral range and away from the unit tests' ports
bench_redis_start_free "$TMP" "$OUT/redis.log" 'PID[redis]' "${PIN_CLI[@]}"
RPORT=$BENCH_RPORT
RCLI=(redis-cli -p "$RPORT")
log "== redis-server $(redis-server --version | awk '{print $3}') pid ${PID[redis]} on 127.0.0.1:$RPORT (data in $TMP)"

# bcrypt hashes: slow (cost 10), so cached between runs
mkdir -p "$(dirname "$BCRYPT_CACHE")"
touch "$BCRYPT_CACHE"
have=$(grep -c $'^bcuser-[0-9]*\t\$2b\$10\$' "$BCRYPT_CACHE" || true)
if [ "$have" -lt "$B" ]; then
    log "== hashing $((B - have)) bcrypt (cost 10) passwords into $BCRYPT_CACHE (~70 ms each)"
    seq "$have" $((B - 1)) | xargs -P "$(nproc)" -I{} sh -c \
        'n=$(printf %04d "$1"); h=$(printf "pw-%s\n" "$n" | "$2" passwd --scheme bcrypt:10) &&
         printf "bcuser-%s\t%s\n" "$n" "${h#bcrypt:}"' _ {} "$WARDEN" >"$TMP/bc.new"
    sort -u "$BCRYPT_CACHE" "$TMP/bc.new" >"$TMP/bc.all"
    cp "$TMP/bc.all" "$BCRYPT_CACHE"
fi
# the users, the ACLs and the bcrypt users as one RESP stream
"$PYTHON" - "$K" "$B" "$BCRYPT_CACHE" >"$TMP/load.resp" <<'EOF'
import hashlib, sys
k, b, bcfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
out = sys.stdout.buffer
def cmd(*args):
    a = [x.encode() if isinstance(x, str) else x for x in args]
    out.write(b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a))
cmd("FLUSHALL")
for i in range(k):
    n = f"{i:04d}"
    salt = f"NaCl-{n}"
    h = hashlib.sha256((salt + f"pw-{n}").encode()).hexdigest()
    cmd("HSET", f"mqtt_user:user-{n}", "password_hash", h, "salt", salt, "is_superuser", "0")
    cmd("HSET", f"mqtt_acl:user-{n}", "devices/${clientid}/#", "all",
        "users/${username}/inbox/#", "subscribe",
        "eq fleet/announcements", '{"action": "subscribe", "qos": [0, 1]}')
bc = {}
for line in open(bcfile):
    user, _, h = line.rstrip("\n").partition("\t")
    bc[user] = h
for i in range(b):
    u = f"bcuser-{i:04d}"
    cmd("HSET", f"mqtt_user_bc:{u}", "password_hash", bc[u], "is_superuser", "0")
EOF
"${RCLI[@]}" --pipe <"$TMP/load.resp" >"$OUT/redis-load.log" 2>&1 || { cat "$OUT/redis-load.log" >&2; die "loading Redis failed"; }
nkeys=$("${RCLI[@]}" dbsize)
[ "$nkeys" = $((2 * K + B)) ] || die "Redis has $nkeys keys, expected $((2 * K + B))"
log "   loaded $K sha256 users with ACLs and $B bcrypt users ($nkeys keys)"

# ---- servers ----------------------------------------------------------------------------
cat >"$OUT/stores.policy" <<'EOF'
# warden store benchmark policy (written by bench/stores.sh)
authn redis
authn default deny
rules redis
authz default deny
EOF
cat >"$OUT/stores-su.policy" <<'EOF'
# warden store benchmark policy with EMQX's superuser rule (written by bench/stores.sh):
# reading `superuser` makes authorize look up the client's session
authn redis
authn default deny
allow all ["#", "$SYS/#"] when superuser
rules redis
authz default deny
EOF
start_warden() { # name port workers policy extra-config-lines...
    local name=$1 port=$2 workers=$3 policy=$4
    shift 4
    {
        echo "# written by bench/stores.sh"
        echo "listen $HOST:$port"
        echo "workers $workers"
        echo "policy $OUT/$policy"
        echo "policy_watch off"
        echo "log_level warn"
        echo "redis_host 127.0.0.1"
        echo "redis_port $RPORT"
        echo "admin_socket $TMP/$name.sock"
        printf '%s\n' "$@"
    } >"$OUT/$name.conf"
    "$WARDEN" --config "$OUT/$name.conf" --check-config >/dev/null || die "$OUT/$name.conf is refused"
    "${PIN_SRV[@]}" "$WARDEN" --config "$OUT/$name.conf" >"$OUT/$name.log" 2>&1 &
    PID[$name]=$!
    PORT[$name]=$port
}
declare -A PORT=()
"${PIN_SRV[@]}" "$BIN/bare_server" -a "$HOST:$BARE_PORT" -t "$THREADS" >"$OUT/bare.log" 2>&1 &
PID[bare]=$!
PORT[bare]=$BARE_PORT
P=stores.policy
start_warden wd-warm "${WD_PORTS[0]}" "$THREADS" $P "cache on" "${CACHE_LINES[@]}"
start_warden wd-cold "${WD_PORTS[1]}" "$THREADS" $P "cache off"
start_warden wd-bc "${WD_PORTS[2]}" "$THREADS" $P "cache on" "redis_password_hash bcrypt" \
    'redis_authn_key "mqtt_user_bc:${username}"' "${CACHE_LINES[@]}"
start_warden wd-bcoff "${WD_PORTS[3]}" "$THREADS" $P "cache off" "redis_password_hash bcrypt" \
    'redis_authn_key "mqtt_user_bc:${username}"'
start_warden wd-su "${WD_PORTS[4]}" "$THREADS" stores-su.policy "cache on" "${CACHE_LINES[@]}"
for n in bare wd-warm wd-cold wd-bc wd-bcoff wd-su; do bench_wait_listen "${PID[$n]}" "${PORT[$n]}" "$n"; done

admin() { "$WARDEN" admin --socket "$TMP/$1.sock" "${@:2}"; }
# counters of a warden as "name value" lines, plus the cache and sessions lines
stats() { admin "$1" stats 2>/dev/null | tr -d '\r'; echo; }
ctr() { awk -v k="$1" '$1 == k {print $2; f = 1} END {if (!f) print 0}' <<<"$2"; }
cache_line() { grep -E '^(cache|sessions):' <<<"$1" | paste -sd';' | sed 's/;/; /'; }
dctr() { # counter stats_before stats_after -> delta
    echo $(($(ctr "$1" "$3") - $(ctr "$1" "$2")))
}
decisions() { # kind before after
    local s=0 x
    for x in allow deny nomatch; do s=$((s + $(dctr "${1}_${x}_total" "$2" "$3"))); done
    echo "$s"
}

CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
{
    echo "# warden stores vs bare_server, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "# machine: $(nproc) CPUs, $CPU_MODEL, $(uname -r)"
    echo "# warden $($WARDEN --version 2>&1 | head -1), bare_server on grpc $(pkg-config --modversion grpc 2>/dev/null) (core soname), redis $(redis-server --version | awk '{print $3}')"
    echo "# $PIN_DESC; server worker threads: $THREADS each"
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# DUR=${DUR}s WARM=${WARM}s ROUNDS=$ROUNDS K=$K B=$B ZIPF=$ZIPF STEADY=$STEADY"
    echo "# background load before the run: $IDLE_LOAD cores"
    [ -z "$CACHE_CONF" ] || echo "# CACHE_CONF (wardens with cache on): $CACHE_CONF"
} | tee "$OUT/report.txt" >&2

# ---- measurements -----------------------------------------------------------------------
RES="$OUT/results.tsv"
printf 'round\tsetting\tserver\trps\tp50_us\tp99_us\tp999_us\tmax_us\terr\tmismatch\tdeny\tsrv_us\tother_cores\telapsed\tdecisions\tlookups\tcache_hits\tcoalesced\tredis_us\n' >"$RES"

declare -A S_ARGS=(
    [authz-warm]="-m authorize -z $ZIPF -k $K -c 8 -n 64"
    [authz-su]="-m authorize -z $ZIPF -k $K -c 8 -n 64"
    [authz-cold]="-m authorize -z $ZIPF -k $K -c 8 -n 64"
    [authn-warm]="-m authenticate -U -z $ZIPF -k $K -c 8 -n 64"
    [authn-cold]="-m authenticate -U -z $ZIPF -k $K -c 8 -n 64"
    [bc-cold]="-m authenticate -U -u bcuser -k $B -N $B -c 8 -n 64"
    [bc-warm]="-m authenticate -U -u bcuser -k $B -c 8 -n 64"
)
declare -A S_WD=([authz-warm]=wd-warm [authz-su]=wd-su [authz-cold]=wd-cold [authn-warm]=wd-warm
    [authn-cold]=wd-cold [bc-cold]=wd-bc [bc-warm]=wd-bc)

load() { # addr args... (pinned client; -q output on stdout)
    local addr=$1
    shift
    "${PIN_CLI[@]}" "$BIN/wd_load" -q -a "$addr" "$@"
}
# every user once, round-robin: fills the cache (and, authenticating, the sessions)
warm_pass() { # setting
    local wd=${S_WD[$1]} out
    case $1 in
    authz-warm | authz-su | authn-warm)
        out=$(load "$HOST:${PORT[$wd]}" -m authenticate -U -k "$K" -N "$K" -c 8 -n 64 2>>"$OUT/wd_load.err") ||
            die "warm-up pass (authenticate) on $wd failed: $out"
        out=$(load "$HOST:${PORT[$wd]}" -m authorize -k "$K" -N "$K" -c 8 -n 64 2>>"$OUT/wd_load.err") ||
            die "warm-up pass (authorize) on $wd failed: $out"
        ;;
    bc-warm)
        out=$(load "$HOST:${PORT[$wd]}" -m authenticate -U -u bcuser -k "$B" -N "$B" -c 8 -n 64 2>>"$OUT/wd_load.err") ||
            die "warm-up pass (bcrypt) on $wd failed: $out"
        ;;
    bc-cold) admin "$wd" flush >/dev/null ;;
    esac
}

measure() { # round setting server(bare|warden)
    local round=$1 setting=$2 server=$3 name pid out st0 st1 r0 r1 t0 t1 extra=()
    if [ "$server" = bare ]; then name=bare; else name=${S_WD[$setting]}; fi
    pid=${PID[$name]}
    kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) died (see $OUT/$name.log)"
    [ "$server" = warden ] && warm_pass "$setting"
    [ "$setting" = bc-cold ] || extra=(-d "$DUR" -w "$WARM")
    [ "$server" = warden ] && st0=$(stats "$name")
    r0=$(bench_cpu_s "${PID[redis]}" 6) t0=$(now)
    # shellcheck disable=SC2086
    out=$(load "$HOST:${PORT[$name]}" ${S_ARGS[$setting]} "${extra[@]}" -S "$pid" 2>"$OUT/wd_load.err") || true
    r1=$(bench_cpu_s "${PID[redis]}" 6) t1=$(now)
    [ -n "$(bench_kv rps "$out")" ] || { cat "$OUT/wd_load.err" >&2; die "wd_load against $name failed"; }
    local dec=- lk=- hit=- coal=- rus=- other el
    if [ "$server" = warden ]; then
        st1=$(stats "$name")
        if [[ $setting == authz-* ]]; then
            dec=$(decisions authz "$st0" "$st1") hit=$(dctr authz_cache_hits_total "$st0" "$st1")
        else
            dec=$(decisions authn "$st0" "$st1") hit=$(dctr authn_cache_hits_total "$st0" "$st1")
        fi
        lk=$(dctr redis_lookups_total "$st0" "$st1")
        coal=$(dctr authn_coalesced_total "$st0" "$st1")
        rus=$(awk -v a="$r0" -v b="$r1" -v n="$dec" 'BEGIN{ if (n > 0) printf "%.2f", (b - a) * 1e6 / n; else print "-" }')
    fi
    # foreign load: wd_load's other_cores minus redis-server's cores; "-" when the window is
    # too short for /proc/stat's 10 ms ticks
    el=$(bench_kv elapsed "$out")
    other=$(awk -v o="$(bench_kv other_cores "$out")" -v a="$r0" -v b="$r1" -v t0="$t0" -v t1="$t1" -v el="$el" \
        'BEGIN{ if (el < 1 || o == -1) { print "-"; exit } printf "%.2f", o - (b - a) / (t1 - t0) }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$setting" "$server" \
        "$(bench_kv rps "$out")" "$(bench_kv p50_us "$out")" "$(bench_kv p99_us "$out")" "$(bench_kv p999_us "$out")" \
        "$(bench_kv max_us "$out")" "$(bench_kv err "$out")" "$(bench_kv mismatch "$out")" "$(bench_kv deny "$out")" \
        "$(bench_kv srv_us_per_call "$out")" "$other" "$el" "$dec" "$lk" "$hit" "$coal" "$rus" >>"$RES"
    local line
    line="$(printf '%-10s %-6s' "$setting" "$server") calls/s=$(bench_kv rps "$out") p50=$(bench_kv p50_us "$out")us p99=$(bench_kv p99_us "$out")us err=$(bench_kv err "$out") deny=$(bench_kv deny "$out") srv=$(bench_kv srv_us_per_call "$out")us/call other=$other"
    [ "$server" = warden ] && line="$line decisions=$dec redis_lookups=$lk hits=$hit coalesced=$coal redis_cpu=${rus}us/dec"
    log "   $line"
    if [ "$server" = warden ] && [[ $setting == *-warm || $setting == authz-su ]]; then
        log "      $name $(cache_line "$st1")"
        echo "round $round $setting $name: $(cache_line "$st1")" >>"$OUT/cache-stats.txt"
    fi
}


: >"$OUT/cache-stats.txt"
for ((r = 1; r <= ROUNDS; r++)); do
    log "== round $r/$ROUNDS"
    for s in "${SETTINGS[@]}"; do
        [ "$QUIET_WAIT" -gt 0 ] && bench_wait_quiet
        if ((r % 2)); then order="bare warden"; else order="warden bare"; fi
        for srv in $order; do measure "$r" "$s" "$srv"; done
    done
done
report "$RES" | tee -a "$OUT/report.txt"

# ---- steady state: a mixed, skewed load on wd-warm from a flushed cache ------------------
if [ "$STEADY" -gt 0 ]; then
    half=$((STEADY / 2))
    log "== steady state: ${STEADY}s of authorize (-c 6 -n 56) + authenticate (-c 2 -n 8), Zipf $ZIPF over $K users, wd-warm flushed first"
    [ "$QUIET_WAIT" -gt 0 ] && bench_wait_quiet
    admin wd-warm flush >/dev/null
    rinfo() { "${RCLI[@]}" info commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_(hgetall|hmget):/{s += $3} END {print s + 0}'; }
    q0=$(rinfo); s0=$(stats wd-warm)
    load "$HOST:${PORT[wd-warm]}" -m authorize -z "$ZIPF" -k "$K" -c 6 -n 56 -d "$STEADY" -w 0 -S "${PID[wd-warm]}" \
        >"$OUT/steady-authz.out" 2>"$OUT/steady-authz.err" &
    lz=$!
    load "$HOST:${PORT[wd-warm]}" -m authenticate -U -z "$ZIPF" -k "$K" -c 2 -n 8 -d "$STEADY" -w 0 \
        >"$OUT/steady-authn.out" 2>"$OUT/steady-authn.err" &
    ln=$!
    sleep "$half"
    q1=$(rinfo); s1=$(stats wd-warm)
    wait "$lz" || true
    wait "$ln" || true
    q2=$(rinfo); s2=$(stats wd-warm)
    window() { # label before after redis_before redis_after
        local az an lk hz hn
        az=$(decisions authz "$2" "$3") an=$(decisions authn "$2" "$3")
        lk=$(dctr redis_lookups_total "$2" "$3")
        hz=$(dctr authz_cache_hits_total "$2" "$3") hn=$(dctr authn_cache_hits_total "$2" "$3")
        awk -v l="$1" -v az="$az" -v an="$an" -v lk="$lk" -v hz="$hz" -v hn="$hn" -v rq=$(($5 - $4)) 'BEGIN{
            printf "%-22s authorize %9d (Redis %6d = %.4f/dec)  authenticate %8d (Redis %6d = %.4f/dec)  all: %.4f round trips/decision (redis_lookups %d, Redis saw %d)\n",
                l, az, az - hz, az ? (az - hz) / az : 0, an, an - hn, an ? (an - hn) / an : 0, (az + an) ? lk / (az + an) : 0, lk, rq }'
    }
    {
        echo
        echo "steady state on wd-warm (cache_ttl 1m, flushed at t=0), Zipf $ZIPF over $K users, ${STEADY}s:"
        echo "  authorize:    $(cat "$OUT/steady-authz.out")"
        echo "  authenticate: $(cat "$OUT/steady-authn.out")"
        window "  t=0..${half}s (fill):" "$s0" "$s1" "$q0" "$q1"
        window "  t=${half}..${STEADY}s (steady):" "$s1" "$s2" "$q1" "$q2"
        window "  t=0..${STEADY}s (all):" "$s0" "$s2" "$q0" "$q2"
        echo "  wd-warm at the end: $(cache_line "$s2")"
    } | tee -a "$OUT/report.txt"
fi

# ---- same-user storm: 64 concurrent authenticates of one bcrypt user, cold cache ----------
if [ "$STORM" = 1 ]; then
    start_warden wd-bcstorm "${WD_PORTS[5]}" "$STORM_WORKERS" $P "cache on" "redis_password_hash bcrypt" \
        'redis_authn_key "mqtt_user_bc:${username}"' "${CACHE_LINES[@]}"
    bench_wait_listen "${PID[wd-bcstorm]}" "${PORT[wd-bcstorm]}" wd-bcstorm
    {
        echo
        echo "same-user storm: 64 concurrent OnClientAuthenticate of bcuser-0000 (bcrypt cost 10), cache flushed first"
        echo "  (wd_load -m authenticate -U -u bcuser -k 1 -N 64 -c 8 -n 64)"
    } | tee -a "$OUT/report.txt"
    for name in wd-bc wd-bcoff wd-bcstorm; do
        [ "$QUIET_WAIT" -gt 0 ] && bench_wait_quiet
        admin "$name" flush >/dev/null
        st0=$(stats "$name")
        out=$(load "$HOST:${PORT[$name]}" -m authenticate -U -u bcuser -k 1 -N 64 -c 8 -n 64 -S "${PID[$name]}" 2>"$OUT/wd_load.err") || true
        st1=$(stats "$name")
        w=$(sed -n 's/^workers //p' "$OUT/$name.conf")
        c=$(sed -n 's/^cache //p' "$OUT/$name.conf" | tail -1)
        printf '  %-10s cache %-3s workers %-3s wall %6.3fs  p50 %7.1fms max %7.1fms  decisions %d allow %d  redis_lookups %d  cache_hits %d  coalesced %d  server CPU %.1f ms total\n' \
            "$name" "$c" "$w" "$(bench_kv elapsed "$out")" "$(awk -v v="$(bench_kv p50_us "$out")" 'BEGIN{print v / 1000}')" \
            "$(awk -v v="$(bench_kv max_us "$out")" 'BEGIN{print v / 1000}')" "$(decisions authn "$st0" "$st1")" \
            "$(dctr authn_allow_total "$st0" "$st1")" "$(dctr redis_lookups_total "$st0" "$st1")" \
            "$(dctr authn_cache_hits_total "$st0" "$st1")" "$(dctr authn_coalesced_total "$st0" "$st1")" \
            "$(awk -v v="$(bench_kv srv_us_per_call "$out")" 'BEGIN{print v * 64 / 1000}')" | tee -a "$OUT/report.txt"
    done
fi

# ---- profile of warm authorize ------------------------------------------------------------
median_ratio() { # setting: median over rounds of warden/bare calls/s
    awk -F'\t' -v s="$1" '$2 == s { r[$1, $3] = $4; n[$1] = 1 }
        END { m = ""; for (k in n) if (r[k, "bare"] > 0) m = m " " r[k, "warden"] / r[k, "bare"]
              c = split(m, a, " "); if (!c) { print ""; exit }
              for (i = 2; i <= c; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
              print (c % 2) ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2 }' "$RES"
}
profile() { # setting
    local s=$1 wd=${S_WD[$1]} lp pd="$OUT/perf-$1.data" pt="$OUT/profile-$1.txt"
    log "== profile: perf record (5 s) of $wd under the $s load"
    warm_pass "$s"
    # shellcheck disable=SC2086
    load "$HOST:${PORT[$wd]}" ${S_ARGS[$s]} -d 9 -w 1 >"$OUT/profile-$s.load" 2>&1 &
    lp=$!
    sleep 2
    perf record -F 999 --call-graph dwarf,16384 -p "${PID[$wd]}" -o "$pd" -- sleep 5 \
        >"$OUT/perf-record.log" 2>&1 || log "   perf record failed (see $OUT/perf-record.log)"
    wait "$lp" || true
    [ -s "$pd" ] || return 0
    # (|| true: head closes the pipe early, which pipefail would count as a failure)
    perf_rep() {
        perf report -i "$pd" --stdio -g none "$@" 2>/dev/null | grep -v '^#' | grep -v '^$' |
            sed -E 's/[[:space:]]+(-[[:space:]]+)*$//' || true
    }
    {
        echo "# $wd under: wd_load ${S_ARGS[$s]} (perf record -F 999 --call-graph dwarf, 5 s)"
        echo "# load: $(cat "$OUT/profile-$s.load")"
        echo "# self time by shared object"
        perf_rep --no-children --sort dso | head -15 || true
        echo
        echo "# self time by symbol (top 50)"
        perf_rep --no-children --sort dso,symbol | head -50 || true
        echo
        echo "# inclusive time (self + callees) of warden's functions"
        perf_rep --children --sort symbol |
            grep -E ' (wd_|redis_acl|session_|flight_|hmac|cache_|policy_|hook_|authz|authn|handle_|on_)' | head -45 || true
    } >"$pt"
    log "   profile: $pt"
}
for s in authz-warm authz-su; do
    [[ " ${SETTINGS[*]} " == *" $s "* ]] || continue
    ratio=$(median_ratio "$s")
    if [ "$PROFILE" = 1 ] || { [ "$PROFILE" = auto ] && [ -n "$ratio" ] && awk -v r="$ratio" 'BEGIN{exit !(r < 0.9)}'; }; then
        if command -v perf >/dev/null; then
            log "   ($s calls/s ratio ${ratio:-n/a})"
            profile "$s"
        else
            log "== profile skipped: perf is not installed"
        fi
    fi
done

# ---- shutdown ---------------------------------------------------------------------------
log "results: $RES, report: $OUT/report.txt, cache lines: $OUT/cache-stats.txt"
