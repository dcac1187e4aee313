#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench/h2.sh: the two serving stacks side by side (issue 9): gRPC core, as the bare server a
# C user would otherwise write (bench/bare_server), and warden's own HTTP/2 transport, bare
# and as warden. (Until 0.2.0 warden could also serve on gRPC core: the `core-wd` column of
# bench/h2-results.md; `--report` still reprints such results.)
#
#   bench/h2.sh                                   # everything: ~5 min + the RSS run
#   RSS_CALLS=0 bench/h2.sh                       # skip the long RSS run
#   DUR=2 WARM=1 ROUNDS=1 RSS_CALLS=300000 bench/h2.sh        # smoke run, ~1 min
#   bench/h2.sh --report build/bench/h2/results.tsv           # reprint an earlier summary
#
# Three servers, all pinned to cpu0 with one worker thread (PIN=1), all running for the
# whole run, only the measured one getting traffic:
#   core-bare  bench/bare_server: gRPC core, a pre-packed reply, no decoding
#   h2-bare    bench/bare_h2: warden's own transport (h2server, h2, loop) with handlers
#              that return the same pre-packed reply: the ceiling of the stack
#   h2-wd      warden
# warden runs bench/run.sh's policy (users + a ${clientid} rule; cache on).
#
# Settings (clients on cpu1):
#   h2sat  h2load -t 1 -c 8 -m 32  OnClientAuthorize; a cheap client, so the server is the
#          limit (h2load does not check grpc-status: wd_load's err=0 covers that)
#   tput   wd_load -t 1 -c 8 -n 64 OnClientAuthorize; every reply decoded and checked. The
#          gRPC-core client costs ~15-25 us a call, so this client is the limit for the h2
#          servers: read srv_us (server CPU per call) there, not calls/s
#   lat1   wd_load -t 1 -c 1 -n 1  latency, 1 call in flight
#   lat32  wd_load -t 1 -c 8 -n 32 latency, 32 calls in flight
#   authn  wd_load -t 1 -c 8 -n 64 -m authenticate (demo/demo, salted sha256)
# Each round measures every setting on the three servers back to back; the order rotates
# every round. Before each setting it waits up to QUIET_WAIT s for an idle machine.
# Report: medians over rounds, and for each pair of servers the median of the per-round
# ratios of calls/s and of server CPU per call, over the rounds where neither measurement
# saw more than OTHER_MAX cores of foreign load (all rounds, flagged, when none is clean).
#
# RSS: warden on h2 (h2-wd): VmRSS before, every ~RSS_CALLS/10 calls and after RSS_CALLS
# OnClientAuthorize calls (wd_load -c 8 -n 64 -N RSS_CALLS, every reply checked).
#
# The cold path (cache off, a Redis round trip per call) is measured by bench/stores.sh,
# (see bench/h2-results.md).
#
# Env knobs (defaults): DUR=4 WARM=1 ROUNDS=5 RSS_CALLS=10000000 PIN=1 THREADS (1 if PIN=1,
#   else nproc) OTHER_MAX=0.3 QUIET_WAIT=20 PORT0=9300 (core-bare; h2-bare and h2-wd on
#   PORT0+2 and PORT0+3) OUT=build/bench/h2 SETTINGS="h2sat tput lat1 lat32 authn"
#   SERVERS="core-bare h2-bare h2-wd" WARDEN_ARGS="--set k=v ..." (warden)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DUR=${DUR:-4}
WARM=${WARM:-1}
ROUNDS=${ROUNDS:-5}
RSS_CALLS=${RSS_CALLS:-10000000}
PIN=${PIN:-1}
OTHER_MAX=${OTHER_MAX:-0.3}
QUIET_WAIT=${QUIET_WAIT:-20}
PORT0=${PORT0:-9300}
OUT=${OUT:-build/bench/h2}
if [ "$PIN" = 1 ]; then
    THREADS=${THREADS:-1}
    PIN_SRV=(taskset -c 0)
    PIN_CLI=(taskset -c 1)
    PIN_DESC="servers pinned to cpu0, clients to cpu1 (taskset)"
else
    THREADS=${THREADS:-$(nproc)}
    PIN_SRV=()
    PIN_CLI=()
    PIN_DESC="no pinning (servers and clients share all cores)"
fi
BIN=build/release/bench
WARDEN=build/warden
HOST=127.0.0.1
ALL_SERVERS=(core-bare h2-bare h2-wd)
read -r -a SERVERS <<<"${SERVERS:-${ALL_SERVERS[*]}}"
declare -A PORT=([core-bare]=$PORT0 [h2-bare]=$((PORT0 + 2)) [h2-wd]=$((PORT0 + 3)))
declare -A PID=()

log() { printf '%s\n' "$*" >&2; }
die() { log "h2.sh: $*"; exit 1; }

# ---- report -----------------------------------------------------------------------------
report() {
awk -F'\t' -v omax="$OTHER_MAX" '
function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function ms(us) { return us == "" ? "-" : sprintf("%.3f", us / 1000) }
function clean(k) { return oth[k] == "-" || oth[k] + 0 <= omax }
NR == 1 { next }
{
    k = $1 SUBSEP $2 SUBSEP $3
    rps[k] = $4; p50[k] = $5; p99[k] = $6; p999[k] = $7; srv[k] = $11; cli[k] = $12; oth[k] = $13
    bad[$2] += ($9 ~ /^[0-9]+$/ ? $9 : 0) + ($10 ~ /^[0-9]+$/ ? $10 : 0)
    seen[$2] = 1; has[$3] = 1; if ($1 > maxr) maxr = $1
}
END {
    ns = split("core-bare core-wd h2-bare h2-wd", sv, " ")
    np = split("h2-wd/core-bare h2-wd/h2-bare h2-bare/core-bare core-wd/core-bare", pair, " ")
    printf "%-6s %-9s %9s %8s %8s %9s %7s %7s %6s\n", "set", "server", "calls/s", "p50_ms", "p99_ms", "p99.9_ms", "srv_us", "cli_us", "other"
    n = split("h2sat tput lat1 lat32 authn", order, " ")
    for (i = 1; i <= n; i++) {
        s = order[i]; if (!(s in seen)) continue
        for (j = 1; j <= ns; j++) {
            v = sv[j]; if (!(v in has)) continue
            # medians over the rounds where this server was measured cleanly (all if none)
            nc = 0
            for (r = 1; r <= maxr; r++) { k = r SUBSEP s SUBSEP v; if ((k in rps) && clean(k)) nc++ }
            R = ""; P5 = ""; P9 = ""; P99 = ""; S = ""; C = ""; O = ""; tot = 0
            for (r = 1; r <= maxr; r++) {
                k = r SUBSEP s SUBSEP v
                if (!(k in rps)) continue
                tot++
                if (nc > 0 && !clean(k)) continue
                R = R " " rps[k]; P5 = P5 " " p50[k]; S = S " " srv[k]
                if (p99[k] != "-") P9 = P9 " " p99[k]
                if (p999[k] != "-") P99 = P99 " " p999[k]
                if (cli[k] != "-") C = C " " cli[k]
                if (oth[k] != "-") O = O " " oth[k]
            }
            if (!tot) continue
            c = median(C); o = median(O)
            printf "%-6s %-9s %9.0f %8s %8s %9s %7.2f %7s %6s   %d/%d clean\n", s, v, median(R),
                ms(median(P5)) (s == "h2sat" ? "*" : ""), ms(median(P9)), ms(median(P99)), median(S),
                (c == "" ? "-" : sprintf("%.2f", c)), (o == "" ? "-" : sprintf("%.2f", o)), nc, tot
        }
        for (q = 1; q <= np; q++) {
            split(pair[q], ab, "/"); a = ab[1]; b = ab[2]
            if (!(a in has) || !(b in has)) continue
            nc = 0; npairs = 0; rl = ""; RA = ""; CA = ""
            for (r = 1; r <= maxr; r++) {
                ka = r SUBSEP s SUBSEP a; kb = r SUBSEP s SUBSEP b
                if ((ka in rps) && (kb in rps) && clean(ka) && clean(kb)) nc++
            }
            for (r = 1; r <= maxr; r++) {
                ka = r SUBSEP s SUBSEP a; kb = r SUBSEP s SUBSEP b
                if (!(ka in rps) || !(kb in rps) || rps[kb] <= 0) continue
                npairs++; cl = clean(ka) && clean(kb)
                rl = rl sprintf(" %.2f%s", rps[ka] / rps[kb], cl ? "" : "*")
                if (nc > 0 && !cl) continue
                RA = RA " " rps[ka] / rps[kb]
                if (srv[ka] > 0) CA = CA " " srv[kb] / srv[ka]
            }
            if (npairs)
                printf "       %-20s calls/s %.2fx  cpu/call %.2fx less  (%d/%d clean; per round:%s)\n",
                    pair[q], median(RA), median(CA), nc, npairs, rl
        }
        if (bad[s]) printf "       !! %d failed calls (err+mismatch) in this setting\n", bad[s]
    }
    print "medians over clean measurements (other <= " omax " cores; all when none is clean; * marks a"
    print "noisy round). srv_us/cli_us: server/client CPU per call (all threads). other: cores busy with"
    print "neither (approx., +-0.2). h2sat p50*: h2load mean latency. a/b calls/s: median of per-round"
    print "ratios; cpu/call: b server CPU per call / a server CPU per call (higher: a is cheaper)."
}' "$1"
}
if [ "${1:-}" = --report ]; then
    [ -f "${2:-}" ] || die "usage: bench/h2.sh --report results.tsv"
    report "$2"
    exit 0
fi

listening() { [ -n "$(ss -Hltn "( sport = :$1 )" 2>/dev/null)" ]; }

# ---- build, preflight -------------------------------------------------------------------
mkdir -p "$OUT"
log "== make bench"
make bench >"$OUT/make.log" 2>&1 || { tail -20 "$OUT/make.log" >&2; die "make bench failed"; }
for b in "$BIN/wd_load" "$BIN/bare_server" "$BIN/bare_h2" "$WARDEN"; do [ -x "$b" ] || die "missing $b"; done
# private copies: a rebuild in the shared tree during the run must not change them
mkdir -p "$OUT/bin"
cp "$BIN/wd_load" "$BIN/bare_server" "$BIN/bare_h2" "$WARDEN" "$OUT/bin/"
BIN=$OUT/bin
WARDEN=$OUT/bin/warden
command -v ss >/dev/null || die "ss (iproute2) is needed"
command -v h2load >/dev/null || die "h2load is needed (apt-get install nghttp2-client)"
if [ "$PIN" = 1 ]; then command -v taskset >/dev/null || die "taskset is needed (or PIN=0)"; fi
for s in "${SERVERS[@]}"; do
    [ -n "${PORT[$s]:-}" ] || die "unknown server '$s' in SERVERS"
    listening "${PORT[$s]}" && die "port ${PORT[$s]} is busy (a stale server?)"
done

busy_jiffies() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
b0=$(busy_jiffies); sleep 2; b1=$(busy_jiffies)
IDLE_LOAD=$(awk -v a="$b0" -v b="$b1" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b - a) / hz / 2}')
if awk -v l="$IDLE_LOAD" 'BEGIN{exit !(l > 0.15)}'; then
    log "WARNING: the machine is already busy ($IDLE_LOAD cores) before the benchmark starts"
fi

# ---- servers ----------------------------------------------------------------------------
stop_servers() {
    local rc=0 p
    for p in "${PID[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PID[@]}"; do wait "$p" 2>/dev/null || rc=$?; done
    PID=()
    return $rc
}
trap 'stop_servers || true' EXIT
trap 'exit 130' INT TERM

wait_listen() { # name
    for _ in $(seq 100); do
        listening "${PORT[$1]}" && return 0
        kill -0 "${PID[$1]}" 2>/dev/null || die "$1 exited during start-up (see $OUT/$1.log)"
        sleep 0.1
    done
    die "$1 does not listen on port ${PORT[$1]} after 10 s (see $OUT/$1.log)"
}

POLICY="$OUT/bench.policy"
cat >"$POLICY" <<'EOF'
# warden benchmark policy (written by bench/h2.sh, the same as bench/run.sh's)
user "demo" "sha256:warden-demo:44f3dd4642ca067bdff293d64c019364f50121992d7b98abec84b98ba8477685"

authn users
authn default deny

allow all       "#"                               when superuser
deny  subscribe "$SYS/#"
allow publish   "devices/${clientid}/telemetry"
allow subscribe "devices/${clientid}/commands/#"
authz default deny
EOF

start_server() { # name
    local n=$1 addr="$HOST:${PORT[$1]}"
    case $n in
    core-bare) "${PIN_SRV[@]}" "$BIN/bare_server" -a "$addr" -t "$THREADS" >"$OUT/$n.log" 2>&1 & ;;
    h2-bare) "${PIN_SRV[@]}" "$BIN/bare_h2" -a "$addr" -t "$THREADS" >"$OUT/$n.log" 2>&1 & ;;
    h2-wd)
        # shellcheck disable=SC2086
        "${PIN_SRV[@]}" "$WARDEN" --listen "$addr" --workers "$THREADS" \
            --set policy="$POLICY" --log-level warn ${WARDEN_ARGS:-} >"$OUT/$n.log" 2>&1 &
        ;;
    esac
    PID[$n]=$!
}
for s in "${SERVERS[@]}"; do start_server "$s"; done
for s in "${SERVERS[@]}"; do wait_listen "$s"; done

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
cpu_s() { # CPU seconds of all threads of pid (schedstat: ns on cpu)
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.4f", s / 1e9}'
}
box_s() { # non-idle CPU seconds of the whole machine
    awk -v hz="$(getconf CLK_TCK)" '/^cpu /{printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz}' /proc/stat
}

CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
{
    echo "# bare gRPC core vs warden's h2 transport, bare and warden, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "# machine: $(nproc) CPUs, $CPU_MODEL, $(uname -r); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# warden $($WARDEN --version 2>&1 | head -1), grpc $(pkg-config --modversion grpc 2>/dev/null) (core soname), nghttp2 $(pkg-config --modversion libnghttp2 2>/dev/null)"
    echo "# $PIN_DESC; server worker threads: $THREADS each; DUR=${DUR}s WARM=${WARM}s ROUNDS=$ROUNDS"
    echo "# background load before the run: $IDLE_LOAD cores"
} | tee "$OUT/report.txt" >&2
for s in "${SERVERS[@]}"; do log "   $s RSS at start: $(rss_kb "${PID[$s]}") kB"; done

# ---- measurements -----------------------------------------------------------------------
H2BODY="$OUT/authorize.grpc"
"$BIN/wd_load" -m authorize -B "$H2BODY" 2>/dev/null
H2PATH=/emqx.exhook.v2.HookProvider/OnClientAuthorize

RES="$OUT/results.tsv"
printf 'round\tsetting\tserver\trps\tp50_us\tp99_us\tp999_us\tmax_us\terr\tmismatch\tsrv_us\tcli_us\tother_cores\n' >"$RES"

declare -A SETTING_ARGS=(
    [tput]="-t 1 -c 8 -n 64"
    [lat1]="-t 1 -c 1 -n 1"
    [lat32]="-t 1 -c 8 -n 32"
    [authn]="-t 1 -c 8 -n 64 -m authenticate"
)
read -r -a SETTINGS <<<"${SETTINGS:-h2sat tput lat1 lat32 authn}"
for s in "${SETTINGS[@]}"; do
    [ "$s" = h2sat ] || [ -n "${SETTING_ARGS[$s]:-}" ] || die "unknown setting '$s' in SETTINGS"
done

ms() { awk -v s="$1" 'BEGIN{printf "%dms", s * 1000}'; } # h2load wants integers with units
kv() { sed -n "s/.*\<$1=\([^ ]*\).*/\1/p" <<<"$2"; }

measure() { # round setting server
    local round=$1 setting=$2 server=$3 port=${PORT[$3]} pid=${PID[$3]} out
    kill -0 "$pid" 2>/dev/null || die "$server (pid $pid) died (see $OUT/$server.log)"
    if [ "$setting" = h2sat ]; then
        # taskset execs h2load, so $! is h2load itself. Server, h2load and machine CPU are
        # sampled inside h2load's measured window.
        out=$("${PIN_CLI[@]}" h2load -t 1 -c 8 -m 32 -D "$(ms "$DUR")" --warm-up-time "$(ms "$WARM")" \
            -d "$H2BODY" -H content-type:application/grpc -H te:trailers \
            "http://$HOST:$port$H2PATH" 2>&1 &
            hp=$!
            sleep "$WARM"; sleep 0.2
            c0=$(cpu_s "$pid") h0=$(cpu_s "$hp") b0=$(box_s) t0=$(date +%s.%N)
            sleep "$(awk -v d="$DUR" 'BEGIN{print (d > 1 ? d - 0.6 : d / 2)}')"
            c1=$(cpu_s "$pid") h1=$(cpu_s "$hp") b1=$(box_s) t1=$(date +%s.%N)
            wait "$hp"; echo "SRVCPU $c0 $c1 $h0 $h1 $b0 $b1 $t0 $t1")
        local rps failed n srv_us cli_us other mean
        rps=$(awk '/^finished in/{gsub(",", "", $4); printf "%.0f", $4}' <<<"$out")
        [ -n "$rps" ] || { echo "$out" | tail -5 >&2; die "h2load against $server failed"; }
        failed=$(awk '/^requests:/{print $10 + $12 + $14}' <<<"$out")
        n=$(awk '/^requests:/{print $8}' <<<"$out")
        # CPU per second of the sampling window / h2load's calls per second
        srv_us=$(awk -v n="$n" -v d="$DUR" '/^SRVCPU/{ w = $9 - $8
            if (n > 0 && w > 0) printf "%.2f", ($3 - $2) / w / (n / d) * 1e6; else print -1 }' <<<"$out")
        cli_us=$(awk -v n="$n" -v d="$DUR" '/^SRVCPU/{ w = $9 - $8
            if (n > 0 && w > 0) printf "%.2f", ($5 - $4) / w / (n / d) * 1e6; else print -1 }' <<<"$out")
        other=$(awk '/^SRVCPU/{ w = $9 - $8; if (w > 0) printf "%.2f", (($7 - $6) - ($3 - $2) - ($5 - $4)) / w; else print "-" }' <<<"$out")
        mean=$(awk '/^time for request:/{ v = $6; if (v ~ /ms$/) { sub("ms", "", v); v *= 1000 }
                   else if (v ~ /us$/) sub("us", "", v); else if (v ~ /s$/) { sub("s", "", v); v *= 1e6 }
                   printf "%.0f", v }' <<<"$out")
        printf '%s\th2sat\t%s\t%s\t%s\t-\t-\t-\t%s\t-\t%s\t%s\t%s\n' "$round" "$server" "$rps" \
            "${mean:--}" "${failed:-?}" "$srv_us" "$cli_us" "$other" >>"$RES"
        log "   $(printf '%-6s %-9s' "$setting" "$server") calls/s=$rps mean=${mean}us failed=$failed srv=${srv_us}us/call cli=${cli_us}us/call other_load=$other (h2load)"
        return
    fi
    # shellcheck disable=SC2086
    out=$("${PIN_CLI[@]}" "$BIN/wd_load" -q -a "$HOST:$port" ${SETTING_ARGS[$setting]} \
        -d "$DUR" -w "$WARM" -S "$pid" 2>"$OUT/wd_load.err") || true
    [ -n "$(kv rps "$out")" ] || { cat "$OUT/wd_load.err" >&2; die "wd_load against $server failed"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$setting" "$server" \
        "$(kv rps "$out")" "$(kv p50_us "$out")" "$(kv p99_us "$out")" "$(kv p999_us "$out")" \
        "$(kv max_us "$out")" "$(kv err "$out")" "$(kv mismatch "$out")" \
        "$(kv srv_us_per_call "$out")" "$(kv cli_us_per_call "$out")" "$(kv other_cores "$out")" >>"$RES"
    log "   $(printf '%-6s %-9s' "$setting" "$server") calls/s=$(kv rps "$out") p50=$(kv p50_us "$out")us p99=$(kv p99_us "$out")us err=$(kv err "$out") mismatch=$(kv mismatch "$out") srv=$(kv srv_us_per_call "$out")us/call other_load=$(kv other_cores "$out")"
}

wait_quiet() { # up to QUIET_WAIT s until the machine is idle over half a second
    local waited=0 a b
    while :; do
        a=$(busy_jiffies); sleep 0.5; b=$(busy_jiffies)
        awk -v a="$a" -v b="$b" -v hz="$(getconf CLK_TCK)" 'BEGIN{exit !((b - a) / hz / 0.5 <= 0.15)}' && return 0
        waited=$((waited + 1))
        if ((waited >= QUIET_WAIT * 2)); then
            log "   (machine still busy after ${QUIET_WAIT}s, measuring anyway)"
            return 0
        fi
    done
}

for ((r = 1; r <= ROUNDS; r++)); do
    log "== round $r/$ROUNDS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    for s in "${SETTINGS[@]}"; do
        [ "$QUIET_WAIT" -gt 0 ] && wait_quiet
        nsrv=${#SERVERS[@]}
        for ((i = 0; i < nsrv; i++)); do
            measure "$r" "$s" "${SERVERS[$(((i + r - 1) % nsrv))]}"
        done
    done
done

report "$RES" | tee -a "$OUT/report.txt"
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/report.txt"

# ---- RSS over a long run on warden/h2 ------------------------------------------------------
if [ "$RSS_CALLS" -gt 0 ] && [ -n "${PID[h2-wd]:-}" ]; then
    wpid=${PID[h2-wd]}
    every=1000000
    ((RSS_CALLS < 10 * every)) && every=$(((RSS_CALLS + 9) / 10))
    log "== RSS: $RSS_CALLS OnClientAuthorize calls on warden/h2 (-c 8 -n 64), VmRSS every $every calls"
    {
        echo
        echo "warden (transport h2) VmRSS (kB) during $RSS_CALLS OnClientAuthorize calls (wd_load -t 1 -c 8 -n 64):"
        printf '%12s %9s %10s\n' calls elapsed_s VmRSS_kB
        printf '%12s %9s %10s\n' before - "$(rss_kb "$wpid")"
    } | tee -a "$OUT/report.txt"
    "${PIN_CLI[@]}" "$BIN/wd_load" -q -a "$HOST:${PORT[h2-wd]}" -t 1 -c 8 -n 64 -N "$RSS_CALLS" \
        -i "$every" -S "$wpid" 2>"$OUT/wd_load.err" >"$OUT/rss_load.out" &
    LOAD_PID=$!
    seen=0
    while :; do
        while IFS= read -r line; do
            calls=$(kv calls "$line")
            el=$(sed -n 's/.*elapsed=\([0-9.]*\)s.*/\1/p' <<<"$line")
            printf '%12s %9s %10s\n' "$calls" "$el" "$(rss_kb "$wpid")" | tee -a "$OUT/report.txt"
        done < <(grep '^progress' "$OUT/rss_load.out" | tail -n +$((seen + 1)))
        seen=$(grep -c '^progress' "$OUT/rss_load.out" || true)
        kill -0 "$LOAD_PID" 2>/dev/null || break
        sleep 0.2
    done
    wait "$LOAD_PID" || true
    sleep 1
    final=$(grep -v '^progress' "$OUT/rss_load.out" || true)
    {
        printf '%12s %9s %10s\n' after "$(kv elapsed "$final")" "$(rss_kb "$wpid")"
        echo "RSS run: calls/s=$(kv rps "$final") ok=$(kv ok "$final") err=$(kv err "$final") mismatch=$(kv mismatch "$final") p99=$(kv p99_us "$final")us srv=$(kv srv_us_per_call "$final")us/call"
    } | tee -a "$OUT/report.txt"
fi

# ---- shutdown ---------------------------------------------------------------------------
echo | tee -a "$OUT/report.txt"
for s in "${SERVERS[@]}"; do
    p=${PID[$s]}
    kill -TERM "$p"
    wait "$p" && rc=0 || rc=$?
    unset "PID[$s]"
    case $s in
    *-bare) msg="$s exit $rc: $(tail -1 "$OUT/$s.log")" ;;
    *) msg="$s exit $rc (SIGTERM), its log: $(grep -c . "$OUT/$s.log" || true) lines, $OUT/$s.log" ;;
    esac
    echo "$msg" | tee -a "$OUT/report.txt"
done
PID=()
log "results: $RES, report: $OUT/report.txt"
