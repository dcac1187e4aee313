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

DUR=${DUR:-4}
WARM=${WARM:-1}
ROUNDS=${ROUNDS:-5}
RSS_CALLS=${RSS_CALLS:-10000000}
PIN=${PIN:-1}
H2LOAD=${H2LOAD:-1}
OTHER_MAX=${OTHER_MAX:-0.3}
QUIET_WAIT=${QUIET_WAIT:-20}
BARE_PORT=${BARE_PORT:-9100}
WD_PORT=${WD_PORT:-9101}
OUT=${OUT:-build/bench}
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

log() { printf '%s\n' "$*" >&2; }
die() { log "run.sh: $*"; exit 1; }

# ---- report (a function: `bench/run.sh --report results.tsv` reprints an old run) -------
# A round of a setting is "clean" when neither of its two measurements saw more than
# OTHER_MAX cores of foreign load. Medians and ratios use the clean rounds only (all rounds,
# flagged, when none is clean). Ratio: the median over rounds of warden/bare in the same
# round; cpu ratio: bare server CPU per call / warden's (1.0 = warden costs no more).
report() {
awk -F'\t' -v omax="$OTHER_MAX" '
function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
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

listening() { [ -n "$(ss -Hltn "( sport = :$1 )" 2>/dev/null)" ]; }

# ---- build, preflight -------------------------------------------------------------------
mkdir -p "$OUT"
log "== make bench"
make bench >"$OUT/make.log" 2>&1 || { tail -20 "$OUT/make.log" >&2; die "make bench failed"; }
for b in "$BIN/wd_load" "$BIN/bare_server" "$WARDEN"; do [ -x "$b" ] || die "missing $b"; done
# run private copies: a `make` or `make clean` in the tree during the run (the build dir is
# shared) must neither remove a tool nor swap warden's binary half-way
mkdir -p "$OUT/bin"
cp "$BIN/wd_load" "$BIN/bare_server" "$WARDEN" "$OUT/bin/"
BIN=$OUT/bin
WARDEN=$OUT/bin/warden
command -v ss >/dev/null || die "ss (iproute2) is needed"
if [ "$PIN" = 1 ]; then command -v taskset >/dev/null || die "taskset is needed (or PIN=0)"; fi
if [ "$H2LOAD" = 1 ] && ! command -v h2load >/dev/null; then
    log "h2load not found (apt-get install nghttp2-client): skipping the h2sat setting"
    H2LOAD=0
fi
for p in "$BARE_PORT" "$WD_PORT"; do
    # gRPC servers bind with SO_REUSEADDR; a stale server on the port would take the traffic
    listening "$p" && die "port $p is busy (a stale server?): $(ss -Hltnp "( sport = :$p )")"
done

# Something else busy on this small box skews everything: measure the idle load first.
busy_jiffies() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
b0=$(busy_jiffies); sleep 2; b1=$(busy_jiffies)
IDLE_LOAD=$(awk -v a="$b0" -v b="$b1" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b - a) / hz / 2}')
if awk -v l="$IDLE_LOAD" 'BEGIN{exit !(l > 0.15)}'; then
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

wait_listen() { # pid port name
    for _ in $(seq 100); do
        listening "$2" && return 0
        kill -0 "$1" 2>/dev/null || die "$3 exited during start-up (see $OUT/$3.log)"
        sleep 0.1
    done
    die "$3 does not listen on port $2 after 10 s (see $OUT/$3.log)"
}

"${PIN_SRV[@]}" "$BIN/bare_server" -a "$HOST:$BARE_PORT" -t "$THREADS" >"$OUT/bare.log" 2>&1 &
BARE_PID=$!
# warden's policy: a realistic small rule set. The load's requests (clientid dev-NNNN,
# PUBLISH devices/dev-NNNN/telemetry; authenticate demo/demo) are allowed by the third
# rule and by the users step; wd_load's deny= count would show it otherwise.
if [ -z "${POLICY:-}" ]; then
    POLICY="$OUT/bench.policy"
    cat >"$POLICY" <<'EOF'
# warden benchmark policy (written by bench/run.sh)
user "demo" "sha256:warden-demo:44f3dd4642ca067bdff293d64c019364f50121992d7b98abec84b98ba8477685"

authn users
authn default deny

allow all       "#"                               when superuser
deny  subscribe "$SYS/#"
allow publish   "devices/${clientid}/telemetry"
allow subscribe "devices/${clientid}/commands/#"
authz default deny
EOF
fi
# shellcheck disable=SC2086
"${PIN_SRV[@]}" "$WARDEN" --listen "$HOST:$WD_PORT" --workers "$THREADS" \
    --set policy="$POLICY" --log-level warn ${WARDEN_ARGS:-} >"$OUT/warden.log" 2>&1 &
WD_PID=$!
wait_listen "$BARE_PID" "$BARE_PORT" bare
wait_listen "$WD_PID" "$WD_PORT" warden

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
cpu_s() { # CPU seconds of all threads of pid (schedstat: ns on cpu)
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.4f", s / 1e9}'
}
box_s() { # non-idle CPU seconds of the whole machine
    awk -v hz="$(getconf CLK_TCK)" '/^cpu /{printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz}' /proc/stat
}

CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
{
    echo "# warden vs bare_server, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "# machine: $(nproc) CPUs, $CPU_MODEL, $(uname -r)"
    echo "# warden $($WARDEN --version 2>&1 | head -1), bare_server on grpc $(pkg-config --modversion grpc 2>/dev/null) (core soname)"
    echo "# $PIN_DESC; server worker threads: $THREADS each; DUR=${DUR}s WARM=${WARM}s ROUNDS=$ROUNDS"
    echo "# background load before the run: $IDLE_LOAD cores; warden policy: $POLICY"
} | tee "$OUT/report.txt" >&2
log "   warden RSS at start: $(rss_kb "$WD_PID") kB, bare: $(rss_kb "$BARE_PID") kB"

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
read -r -a SETTINGS <<<"${SETTINGS:-tput lat1 lat32 authn h2sat}"
for s in "${SETTINGS[@]}"; do
    [ "$s" = h2sat ] || [ -n "${SETTING_ARGS[$s]:-}" ] || die "unknown setting '$s' in SETTINGS"
done
if [ "$H2LOAD" != 1 ]; then
    keep=(); for s in "${SETTINGS[@]}"; do [ "$s" = h2sat ] || keep+=("$s"); done
    SETTINGS=("${keep[@]}")
fi

ms() { awk -v s="$1" 'BEGIN{printf "%dms", s * 1000}'; } # h2load wants integers with units
kv() { sed -n "s/.*\<$1=\([^ ]*\).*/\1/p" <<<"$2"; }

measure() { # round setting server
    local round=$1 setting=$2 server=$3 port pid out
    if [ "$server" = bare ]; then port=$BARE_PORT pid=$BARE_PID; else port=$WD_PORT pid=$WD_PID; fi
    kill -0 "$pid" 2>/dev/null || die "$server (pid $pid) died (see $OUT/$server.log)"
    if [ "$setting" = h2sat ]; then
        local n
        # taskset execs h2load, so $! is h2load itself. Sample server, h2load and machine
        # CPU inside h2load's measured window (which ends when h2load exits: stop early).
        out=$("${PIN_CLI[@]}" h2load -t 1 -c 8 -m 32 -D "$(ms "$DUR")" --warm-up-time "$(ms "$WARM")" \
            -d "$H2BODY" -H content-type:application/grpc -H te:trailers \
            "http://$HOST:$port$H2PATH" 2>&1 &
            hp=$!
            sleep "$WARM"; sleep 0.2
            c0=$(cpu_s "$pid") h0=$(cpu_s "$hp") b0=$(box_s) t0=$(date +%s.%N)
            sleep "$(awk -v d="$DUR" 'BEGIN{print (d > 1 ? d - 0.6 : d / 2)}')"
            c1=$(cpu_s "$pid") h1=$(cpu_s "$hp") b1=$(box_s) t1=$(date +%s.%N)
            wait "$hp"; echo "SRVCPU $c0 $c1 $h0 $h1 $b0 $b1 $t0 $t1")
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
        mean=$(awk '/^time for request:/{ v = $6; if (v ~ /ms$/) { sub("ms", "", v); v *= 1000 }
                   else if (v ~ /us$/) sub("us", "", v); else if (v ~ /s$/) { sub("s", "", v); v *= 1e6 }
                   printf "%.0f", v }' <<<"$out")
        [ -n "$rps" ] || { echo "$out" | tail -5 >&2; die "h2load against $server failed"; }
        printf '%s\th2sat\t%s\t%s\t%s\t-\t-\t-\t%s\t-\t%s\t-\t%s\n' "$round" "$server" "$rps" \
            "${mean:--}" "${failed:-?}" "$srv_us" "$other" >>"$RES"
        log "   $(printf '%-6s %-6s' "$setting" "$server") calls/s=$rps mean=${mean}us failed=${failed} srv=${srv_us}us/call other_load=$other (h2load)"
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
    log "   $(printf '%-6s %-6s' "$setting" "$server") calls/s=$(kv rps "$out") p50=$(kv p50_us "$out")us p99=$(kv p99_us "$out")us err=$(kv err "$out") mismatch=$(kv mismatch "$out") srv=$(kv srv_us_per_call "$out")us/call other_load=$(kv other_cores "$out")"
}

# On a shared box, start each bare/warden pair in a quiet moment: wait (up to QUIET_WAIT s)
# until the machine is idle over half a second.
wait_quiet() {
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
    log "== round $r/$ROUNDS"
    for s in "${SETTINGS[@]}"; do
        [ "$QUIET_WAIT" -gt 0 ] && wait_quiet
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
        printf '%12s %9s %10s\n' before - "$(rss_kb "$WD_PID")"
    } | tee -a "$OUT/report.txt"
    "${PIN_CLI[@]}" "$BIN/wd_load" -q -a "$HOST:$WD_PORT" -t 1 -c 8 -n 64 -N "$RSS_CALLS" \
        -i "$every" -S "$WD_PID" 2>"$OUT/wd_load.err" >"$OUT/rss_load.out" &
    LOAD_PID=$!
    # progress lines arrive as the run goes; sample warden's RSS as each one appears
    seen=0
    while :; do
        while IFS= read -r line; do
            calls=$(kv calls "$line")
            el=$(sed -n 's/.*elapsed=\([0-9.]*\)s.*/\1/p' <<<"$line")
            printf '%12s %9s %10s\n' "$calls" "$el" "$(rss_kb "$WD_PID")" | tee -a "$OUT/report.txt"
        done < <(grep '^progress' "$OUT/rss_load.out" | tail -n +$((seen + 1)))
        seen=$(grep -c '^progress' "$OUT/rss_load.out" || true)
        kill -0 "$LOAD_PID" 2>/dev/null || break
        sleep 0.2
    done
    wait "$LOAD_PID" || true
    sleep 1
    final=$(grep -v '^progress' "$OUT/rss_load.out" || true)
    {
        printf '%12s %9s %10s\n' after "$(kv elapsed "$final")" "$(rss_kb "$WD_PID")"
        echo "RSS run: calls/s=$(kv rps "$final") ok=$(kv ok "$final") err=$(kv err "$final") mismatch=$(kv mismatch "$final") p99=$(kv p99_us "$final")us srv=$(kv srv_us_per_call "$final")us/call"
    } | tee -a "$OUT/report.txt"
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
