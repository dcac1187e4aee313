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
# shellcheck source=bench/lib.sh
. bench/lib.sh

DUR=${DUR:-4}
WARM=${WARM:-1}
ROUNDS=${ROUNDS:-5}
RSS_CALLS=${RSS_CALLS:-10000000}
OTHER_MAX=${OTHER_MAX:-0.3}
QUIET_WAIT=${QUIET_WAIT:-20}
PORT0=${PORT0:-9300}
OUT=${OUT:-build/bench/h2}
bench_pin "servers pinned to cpu0, clients to cpu1 (taskset)"
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
awk -F'\t' -v omax="$OTHER_MAX" "$BENCH_AWK_MEDIAN"'
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

# ---- build, preflight -------------------------------------------------------------------
mkdir -p "$OUT"
# private copies: a rebuild in the shared tree during the run must not change them
bench_make "$OUT" "$BIN/wd_load" "$BIN/bare_server" "$BIN/bare_h2" "$WARDEN"
BIN=$OUT/bin
WARDEN=$OUT/bin/warden
command -v ss >/dev/null || die "ss (iproute2) is needed"
command -v h2load >/dev/null || die "h2load is needed (apt-get install nghttp2-client)"
if [ "$PIN" = 1 ]; then command -v taskset >/dev/null || die "taskset is needed (or PIN=0)"; fi
for s in "${SERVERS[@]}"; do
    [ -n "${PORT[$s]:-}" ] || die "unknown server '$s' in SERVERS"
    bench_listening "${PORT[$s]}" && die "port ${PORT[$s]} is busy (a stale server?)"
done

if bench_idle_busy; then
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

POLICY="$OUT/bench.policy"
bench_policy h2.sh >"$POLICY"

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
for s in "${SERVERS[@]}"; do bench_wait_listen "${PID[$s]}" "${PORT[$s]}" "$s"; done

CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
{
    echo "# bare gRPC core vs warden's h2 transport, bare and warden, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "# machine: $(nproc) CPUs, $CPU_MODEL, $(uname -r); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# warden $($WARDEN --version 2>&1 | head -1), grpc $(pkg-config --modversion grpc 2>/dev/null) (core soname), nghttp2 $(pkg-config --modversion libnghttp2 2>/dev/null)"
    echo "# $PIN_DESC; server worker threads: $THREADS each; DUR=${DUR}s WARM=${WARM}s ROUNDS=$ROUNDS"
    echo "# background load before the run: $IDLE_LOAD cores"
} | tee "$OUT/report.txt" >&2
for s in "${SERVERS[@]}"; do log "   $s RSS at start: $(bench_rss_kb "${PID[$s]}") kB"; done

# ---- measurements -----------------------------------------------------------------------
read -r -a SETTINGS <<<"${SETTINGS:-h2sat tput lat1 lat32 authn}"
bench_settings "${SETTINGS[@]}"

measure() { # round setting server
    local round=$1 setting=$2 server=$3 port=${PORT[$3]} pid=${PID[$3]} out
    kill -0 "$pid" 2>/dev/null || die "$server (pid $pid) died (see $OUT/$server.log)"
    if [ "$setting" = h2sat ]; then
        out=$(bench_h2load_sampled "$pid" "http://$HOST:$port$H2PATH")
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
        mean=$(bench_h2load_mean "$out")
        printf '%s\th2sat\t%s\t%s\t%s\t-\t-\t-\t%s\t-\t%s\t%s\t%s\n' "$round" "$server" "$rps" \
            "${mean:--}" "${failed:-?}" "$srv_us" "$cli_us" "$other" >>"$RES"
        log "   $(printf '%-6s %-9s' "$setting" "$server") calls/s=$rps mean=${mean}us failed=$failed srv=${srv_us}us/call cli=${cli_us}us/call other_load=$other (h2load)"
        return
    fi
    # shellcheck disable=SC2086
    bench_wd_load_row "$round" "$setting" "$server" "$HOST:$port" "$pid" 9 ${SETTING_ARGS[$setting]}
}

for ((r = 1; r <= ROUNDS; r++)); do
    log "== round $r/$ROUNDS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    for s in "${SETTINGS[@]}"; do
        [ "$QUIET_WAIT" -gt 0 ] && bench_wait_quiet
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
        printf '%12s %9s %10s\n' before - "$(bench_rss_kb "$wpid")"
    } | tee -a "$OUT/report.txt"
    bench_rss_run "$wpid" "$HOST:${PORT[h2-wd]}" "$every"
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
