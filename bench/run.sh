#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench/run.sh: warden against the bare gRPC baseline (bench/bare_server), side by side.
#
#   bench/run.sh                         # everything: ~6 min + the RSS run (4-7 min here)
#   RSS_CALLS=0 bench/run.sh             # skip the long RSS run
#   DUR=2 WARM=1 ROUNDS=1 RSS_CALLS=300000 bench/run.sh     # quick smoke run, ~1 min
#   bench/run.sh --report build/bench/results.tsv           # reprint an earlier run's summary
#
# What it does:
#   1. `make bench` (warden, bare_server, wd_load), then runs copies of the three binaries
#      from $OUT/bin (a rebuild in the shared tree must not change them mid-run);
#   2. refuses to run if BARE_PORT or WD_PORT is already listening; measures the machine's
#      background load for 2 s and warns if it is busy;
#   3. starts bare_server and warden (--set policy=$POLICY --log-level warn) with the same
#      number of worker threads, waits until both listen;
#   4. ROUNDS rounds; each round runs every client setting against bare and warden back
#      to back (order flipped every round), so both see the same machine state:
#        tput   wd_load -t 1 -c 8 -n 64   OnClientAuthorize, throughput (EMQX pool: 8 conns)
#        lat1   wd_load -t 1 -c 1 -n 1    latency, 1 call in flight
#        lat32  wd_load -t 1 -c 8 -n 32   latency, 32 calls in flight
#        authn  wd_load -t 1 -c 8 -n 64 -m authenticate (demo/demo)
#        h2sat  h2load -c 8 -m 32 (cheap client: the server is the bottleneck; h2load does
#               not check grpc-status, wd_load's err=0 on the same servers covers that)
#      (each pair waits up to QUIET_WAIT s for an idle machine first) and reports medians
#      over the rounds where nothing else ran ("clean"), plus the median of the per-round
#      warden/bare ratios of calls/s and of server CPU per call;
#   5. RSS: warden's VmRSS before and during RSS_CALLS calls (-c 8 -n 64), every ~1M calls.
#
# Env knobs (defaults): DUR=4 (s per measurement) WARM=1 (s warm-up) ROUNDS=5
#   RSS_CALLS=10000000 (0 = skip) PIN=1 THREADS (1 if PIN=1, else nproc) H2LOAD=1
#   BARE_PORT=9100 WD_PORT=9101 OUT=build/bench (logs, results.tsv, report.txt)
#   OTHER_MAX=0.3 (rounds where something else used more cores than this are left out)
#   QUIET_WAIT=20 (s to wait for an idle machine before each pair; 0 = don't wait)
#   SETTINGS="tput lat1 lat32 authn h2sat" (a subset runs only those)
#   POLICY=file (default: a small realistic policy written to $OUT/bench.policy)
#   WARDEN_ARGS="--set k=v ..." (extra warden flags)
# PIN=1: servers on cpu0 (taskset -c 0), clients on cpu1 (taskset -c 1), so neither side
#   steals the other's core; PIN=0: no pinning, everything shares both cores.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh

DUR=${DUR:-4}
WARM=${WARM:-1}
ROUNDS=${ROUNDS:-5}
RSS_CALLS=${RSS_CALLS:-10000000}
H2LOAD=${H2LOAD:-1}
OTHER_MAX=${OTHER_MAX:-0.3}
QUIET_WAIT=${QUIET_WAIT:-20}
BARE_PORT=${BARE_PORT:-9100}
WD_PORT=${WD_PORT:-9101}
OUT=${OUT:-build/bench}
bench_pin "servers pinned to cpu0, clients to cpu1 (taskset)"
BIN=build/release/bench
WARDEN=build/warden
HOST=127.0.0.1

log() { printf '%s\n' "$*" >&2; }
die() { log "run.sh: $*"; exit 1; }

# ---- report (a function: `bench/run.sh --report results.tsv` reprints an old run) -------
# A round of a setting is "clean" when neither of its two measurements saw more than
# OTHER_MAX cores of foreign load. Medians and ratios use the clean rounds only (all rounds,
# flagged, when none is clean). Ratio: the median over rounds of warden/bare in the same
# round; cpu ratio: bare server CPU per call / warden's (1.0 = warden costs no more).
report() {
awk -F'\t' -v omax="$OTHER_MAX" "$BENCH_AWK_MEDIAN"'
function ms(us) { return us == "" ? "-" : sprintf("%.3f", us / 1000) }
NR == 1 { next }
{
    k = $1 SUBSEP $2 SUBSEP $3
    rps[k] = $4; p50[k] = $5; p99[k] = $6; p999[k] = $7; srv[k] = $11; oth[k] = $13
    bad[$2] += ($9 ~ /^[0-9]+$/ ? $9 : 0) + ($10 ~ /^[0-9]+$/ ? $10 : 0)
    seen[$2] = 1; if ($1 > maxr) maxr = $1
}
END {
    printf "%-6s %-7s %9s %8s %8s %9s %8s %6s   %s\n", "set", "server", "calls/s", "p50_ms", "p99_ms", "p99.9_ms", "srv_us", "other", "warden/bare"
    n = split("tput lat1 lat32 authn h2sat", order, " ")
    for (i = 1; i <= n; i++) {
        s = order[i]; if (!(s in seen)) continue
        nclean = 0; npairs = 0; roundlist = ""
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
            roundlist = roundlist sprintf(" %.2f%s", ratio, clean[r] ? "" : "*")
            if (nclean > 0 && !clean[r]) continue
            L["bare", "rps"] = L["bare", "rps"] " " rps[kb]; L["warden", "rps"] = L["warden", "rps"] " " rps[kw]
            L["bare", "p50"] = L["bare", "p50"] " " p50[kb]; L["warden", "p50"] = L["warden", "p50"] " " p50[kw]
            if (p99[kb] != "-") { L["bare", "p99"] = L["bare", "p99"] " " p99[kb]; L["warden", "p99"] = L["warden", "p99"] " " p99[kw] }
            if (p999[kb] != "-") { L["bare", "p999"] = L["bare", "p999"] " " p999[kb]; L["warden", "p999"] = L["warden", "p999"] " " p999[kw] }
            L["bare", "srv"] = L["bare", "srv"] " " srv[kb]; L["warden", "srv"] = L["warden", "srv"] " " srv[kw]
            if (oth[kb] != "-") { L["bare", "oth"] = L["bare", "oth"] " " oth[kb]; L["warden", "oth"] = L["warden", "oth"] " " oth[kw] }
            ratios = ratios " " ratio
            if (srv[kw] > 0) cratios = cratios " " srv[kb] / srv[kw]
        }
        for (j = 1; j <= 2; j++) {
            sv = j == 1 ? "bare" : "warden"
            o = median(L[sv, "oth"])
            extra = ""
            if (j == 2)
                extra = sprintf("calls/s %.3f, cpu %.3f  (%d/%d clean rounds; per round:%s)",
                    median(ratios), median(cratios), nclean, npairs, roundlist)
            printf "%-6s %-7s %9.0f %8s %8s %9s %8.2f %6s   %s\n", s, sv, median(L[sv, "rps"]),
                ms(median(L[sv, "p50"])) (s == "h2sat" ? "*" : ""), ms(median(L[sv, "p99"])),
                ms(median(L[sv, "p999"])), median(L[sv, "srv"]), (o == "" ? "-" : sprintf("%.2f", o)), extra
        }
        if (bad[s]) printf "       !! %d failed calls (err+mismatch) in this setting\n", bad[s]
        delete L; ratios = ""; cratios = ""; delete clean
    }
    print "medians over the clean rounds (other <= " omax " cores for both servers; all rounds when none is"
    print "clean, * marks a noisy round). srv_us: server CPU per call, all threads. other: cores busy"
    print "with neither client nor server (approx., +-0.2). h2sat p50*: h2load mean latency."
}' "$1"
}
if [ "${1:-}" = --report ]; then
    [ -f "${2:-}" ] || die "usage: bench/run.sh --report results.tsv"
    report "$2"
    exit 0
fi

# ---- build, preflight -------------------------------------------------------------------
mkdir -p "$OUT"
# run private copies (bench_make)
bench_make "$OUT" "$BIN/wd_load" "$BIN/bare_server" "$WARDEN"
BIN=$OUT/bin
WARDEN=$OUT/bin/warden
command -v ss >/dev/null || die "ss (iproute2) is needed"
if [ "$PIN" = 1 ]; then command -v taskset >/dev/null || die "taskset is needed (or PIN=0)"; fi
if [ "$H2LOAD" = 1 ] && ! command -v h2load >/dev/null; then
    log "h2load not found (apt-get install nghttp2-client): skipping the h2sat setting"
    H2LOAD=0
fi
bench_refuse_listening "$BARE_PORT" "$WD_PORT"

# Something else busy on this small box skews everything: measure the idle load first.
if bench_idle_busy; then
    log "WARNING: the machine is already busy ($IDLE_LOAD cores) before the benchmark starts;"
    log "         results will be noisy (see the 'other' column)"
fi

# ---- servers ----------------------------------------------------------------------------
BARE_PID=
WD_PID=
stop_servers() {
    local rc=0
    for pid in $BARE_PID $WD_PID; do kill -TERM "$pid" 2>/dev/null || true; done
    if [ -n "$BARE_PID" ]; then wait "$BARE_PID" 2>/dev/null || rc=$?; fi
    if [ -n "$WD_PID" ]; then wait "$WD_PID" 2>/dev/null || rc=$?; fi
    BARE_PID='' WD_PID=''
    return $rc
}
trap 'stop_servers || true' EXIT
trap 'exit 130' INT TERM

"${PIN_SRV[@]}" "$BIN/bare_server" -a "$HOST:$BARE_PORT" -t "$THREADS" >"$OUT/bare.log" 2>&1 &
BARE_PID=$!
# warden's policy: POLICY, else a realistic small rule set (bench_policy)
if [ -z "${POLICY:-}" ]; then
    POLICY="$OUT/bench.policy"
    bench_policy run.sh >"$POLICY"
fi
# shellcheck disable=SC2086
"${PIN_SRV[@]}" "$WARDEN" --listen "$HOST:$WD_PORT" --workers "$THREADS" \
    --set policy="$POLICY" --log-level warn ${WARDEN_ARGS:-} >"$OUT/warden.log" 2>&1 &
WD_PID=$!
bench_wait_listen "$BARE_PID" "$BARE_PORT" bare
bench_wait_listen "$WD_PID" "$WD_PORT" warden

CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
{
    echo "# warden vs bare_server, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "# machine: $(nproc) CPUs, $CPU_MODEL, $(uname -r)"
    echo "# warden $($WARDEN --version 2>&1 | head -1), bare_server on grpc $(pkg-config --modversion grpc 2>/dev/null) (core soname)"
    echo "# $PIN_DESC; server worker threads: $THREADS each; DUR=${DUR}s WARM=${WARM}s ROUNDS=$ROUNDS"
    echo "# background load before the run: $IDLE_LOAD cores; warden policy: $POLICY"
} | tee "$OUT/report.txt" >&2
log "   warden RSS at start: $(bench_rss_kb "$WD_PID") kB, bare: $(bench_rss_kb "$BARE_PID") kB"

# ---- measurements -----------------------------------------------------------------------
read -r -a SETTINGS <<<"${SETTINGS:-tput lat1 lat32 authn h2sat}"
bench_settings "${SETTINGS[@]}"
if [ "$H2LOAD" != 1 ]; then
    keep=(); for s in "${SETTINGS[@]}"; do [ "$s" = h2sat ] || keep+=("$s"); done
    SETTINGS=("${keep[@]}")
fi

measure() { # round setting server
    local round=$1 setting=$2 server=$3 port pid
    if [ "$server" = bare ]; then port=$BARE_PORT pid=$BARE_PID; else port=$WD_PORT pid=$WD_PID; fi
    kill -0 "$pid" 2>/dev/null || die "$server (pid $pid) died (see $OUT/$server.log)"
    if [ "$setting" = h2sat ]; then
        local n out
        out=$(bench_h2load_sampled "$pid" "http://$HOST:$port$H2PATH")
        local rps failed srv_us other
        rps=$(awk '/^finished in/{gsub(",", "", $4); printf "%.0f", $4}' <<<"$out")
        failed=$(awk '/^requests:/{print $10 + $12 + $14}' <<<"$out")
        # server CPU over the measured window / the requests h2load completed in it
        n=$(awk '/^requests:/{print $8}' <<<"$out")
        # server CPU per second of the window / h2load's calls per second
        srv_us=$(awk -v n="$n" -v d="$DUR" '/^SRVCPU/{ w = $9 - $8
            if (n > 0 && w > 0) printf "%.2f", ($3 - $2) / w / (n / d) * 1e6; else print -1 }' <<<"$out")
        other=$(awk '/^SRVCPU/{ w = $9 - $8; if (w > 0) printf "%.2f", (($7 - $6) - ($3 - $2) - ($5 - $4)) / w; else print "-" }' <<<"$out")
        local mean
        mean=$(bench_h2load_mean "$out")
        [ -n "$rps" ] || { echo "$out" | tail -5 >&2; die "h2load against $server failed"; }
        printf '%s\th2sat\t%s\t%s\t%s\t-\t-\t-\t%s\t-\t%s\t-\t%s\n' "$round" "$server" "$rps" \
            "${mean:--}" "${failed:-?}" "$srv_us" "$other" >>"$RES"
        log "   $(printf '%-6s %-6s' "$setting" "$server") calls/s=$rps mean=${mean}us failed=${failed} srv=${srv_us}us/call other_load=$other (h2load)"
        return
    fi
    # shellcheck disable=SC2086
    bench_wd_load_row "$round" "$setting" "$server" "$HOST:$port" "$pid" 6 ${SETTING_ARGS[$setting]}
}

# On a shared box, each bare/warden pair starts in a quiet moment (bench_wait_quiet).
for ((r = 1; r <= ROUNDS; r++)); do
    log "== round $r/$ROUNDS"
    for s in "${SETTINGS[@]}"; do
        [ "$QUIET_WAIT" -gt 0 ] && bench_wait_quiet
        if ((r % 2)); then order="bare warden"; else order="warden bare"; fi
        for srv in $order; do measure "$r" "$s" "$srv"; done
    done
done

# ---- report ---------------------------------------------------------------------------
report "$RES" | tee -a "$OUT/report.txt"

# ---- RSS over a long run ----------------------------------------------------------------
if [ "$RSS_CALLS" -gt 0 ]; then
    every=1000000
    ((RSS_CALLS < 10 * every)) && every=$(((RSS_CALLS + 9) / 10))
    log "== RSS: $RSS_CALLS OnClientAuthorize calls on warden (-c 8 -n 64), VmRSS every $every calls"
    {
        echo
        echo "warden VmRSS (kB) during $RSS_CALLS OnClientAuthorize calls (wd_load -t 1 -c 8 -n 64):"
        printf '%12s %9s %10s\n' calls elapsed_s VmRSS_kB
        printf '%12s %9s %10s\n' before - "$(bench_rss_kb "$WD_PID")"
    } | tee -a "$OUT/report.txt"
    bench_rss_run "$WD_PID" "$HOST:$WD_PORT" "$every"
fi

# ---- shutdown ---------------------------------------------------------------------------
bare_pid=$BARE_PID wd_pid=$WD_PID
kill -TERM "$bare_pid" "$wd_pid"
wait "$bare_pid" && bare_rc=0 || bare_rc=$?
wait "$wd_pid" && wd_rc=0 || wd_rc=$?
BARE_PID='' WD_PID=''
{
    echo
    echo "bare_server exit $bare_rc: $(tail -1 "$OUT/bare.log")"
    echo "warden exit $wd_rc (SIGTERM), its log: $(grep -c . "$OUT/warden.log") lines, $OUT/warden.log"
} | tee -a "$OUT/report.txt"
log "results: $RES, report: $OUT/report.txt"
