# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# bench/lib.sh: shell helpers shared by the benchmark scripts: starting and stopping
# servers by PID, waiting for ports, a redis-server of their own, pinning, machine load,
# CPU and RSS samples, medians. Sourced, never run: `. bench/lib.sh` after `set -euo
# pipefail`, from the repository root. Every process started through bench_redis_start is
# recorded in BENCH_PIDS and stopped by PID (never by name) by bench_cleanup, which the
# scripts that use it trap on EXIT; the others keep their own PID tables and stop them
# themselves. Errors end the script with "SCRIPT.sh: message" on stderr (bench_die), the
# form the scripts' own `die` prints.

BENCH_PIDS=()

bench_cleanup() {
    local p
    for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

# true when something accepts connections on 127.0.0.1:PORT
bench_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# exits when one of the ports is taken (a stale server, another engineer's run)
bench_refuse_busy_ports() {
    local p
    for p in "$@"; do
        if bench_port_open "$p"; then
            echo "port $p is in use" >&2
            exit 1
        fi
    done
}

# waits (polling, up to 5 s) until 127.0.0.1:PORT accepts connections; exits otherwise
bench_wait_port() {
    local _
    for _ in $(seq 100); do
        bench_port_open "$1" && return 0
        sleep 0.05
    done
    echo "nothing listens on port $1 after 5 s" >&2
    exit 1
}

# bench_build OUT [BENCH_TOOL ...]: `make bench`, then copies warden, wd_load and the named
# tools of build/release/bench to OUT/bin (a rebuild while the benchmark runs does not
# change what it measures); prints OUT/bin
bench_build() {
    local out=$1 t
    shift
    make -s bench >/dev/null
    mkdir -p "$out/bin"
    cp build/warden build/release/bench/wd_load "$out/bin/"
    for t in "$@"; do cp "build/release/bench/$t" "$out/bin/"; done
    echo "$out/bin"
}

# bench_redis_start PORT DIR [COMMAND PREFIX ...]: a redis-server of the benchmark's own
# (no persistence, log in DIR/redis.log), e.g. with `taskset -c 1` as the prefix; waits
# until it answers. Sets BENCH_REDIS_PID.
bench_redis_start() {
    local port=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    "$@" redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" \
        --appendonly no --daemonize no --logfile "$dir/redis.log" &
    BENCH_REDIS_PID=$!
    BENCH_PIDS+=("$BENCH_REDIS_PID")
    bench_wait_port "$port"
}

# the median of the numbers on stdin, one per line
bench_median() {
    sort -g | awk '{a[NR] = $1} END {if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

# The awk function med(a, n): the middle of a[1..n] once sorted (the lower of the two middle
# values when n is even); sorts a in place. For awk programs: awk "$BENCH_AWK_MED"'...'.
# shellcheck disable=SC2034 # used by the scripts that source this file
BENCH_AWK_MED='
            function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return a[int((n + 1) / 2)] }'

# The awk function median(list): the median of the numbers in a space-separated string ("" for
# none; the mean of the two middle values when their number is even).
# shellcheck disable=SC2034
BENCH_AWK_MEDIAN='
function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}'

# ---- the scripts that measure warden against the bare servers (run.sh, h2.sh, stores.sh,
# soak.sh): processes in their own PID tables, ports checked with ss ----

bench_die() {
    printf '%s: %s\n' "$(basename "$0")" "$*" >&2
    exit 1
}

# bench_pin SERVERS_DESC: PIN=1 (the default) puts the servers on cpu0 and the clients on cpu1
# (taskset); PIN=0 pins nothing. Sets PIN, THREADS (unless set: 1 pinned, else nproc),
# PIN_SRV and PIN_CLI (command prefixes) and PIN_DESC (SERVERS_DESC when pinned).
# shellcheck disable=SC2034 # the variables are the caller's
bench_pin() {
    PIN=${PIN:-1}
    if [ "$PIN" = 1 ]; then
        THREADS=${THREADS:-1}
        PIN_SRV=(taskset -c 0)
        PIN_CLI=(taskset -c 1)
        PIN_DESC=$1
    else
        THREADS=${THREADS:-$(nproc)}
        PIN_SRV=()
        PIN_CLI=()
        PIN_DESC=${2:-"no pinning (servers and clients share all cores)"}
    fi
}

# true when something listens on TCP PORT (any address)
bench_listening() { [ -n "$(ss -Hltn "( sport = :$1 )" 2>/dev/null)" ]; }

# dies when one of the ports is listening (gRPC servers bind with SO_REUSEADDR: a stale server
# on the port would take the traffic)
bench_refuse_listening() {
    local p
    for p in "$@"; do
        if bench_listening "$p"; then
            bench_die "port $p is busy (a stale server?): $(ss -Hltnp "( sport = :$p )")"
        fi
    done
}

# bench_make OUT FILE...: `make bench` (log in OUT/make.log), then copies FILE... to OUT/bin:
# a `make` or `make clean` in the tree during the run (the build dir is shared) must neither
# remove a tool nor swap warden's binary half-way
bench_make() {
    local out=$1 b
    shift
    printf '%s\n' "== make bench" >&2
    make bench >"$out/make.log" 2>&1 || {
        tail -20 "$out/make.log" >&2
        bench_die "make bench failed"
    }
    for b in "$@"; do [ -x "$b" ] || bench_die "missing $b"; done
    mkdir -p "$out/bin"
    cp "$@" "$out/bin/"
}

# bench_wait_listen PID PORT NAME: waits (up to 10 s) until PORT listens; dies if PID exits
# first (its log: OUT/NAME.log)
bench_wait_listen() {
    local _
    for _ in $(seq 100); do
        bench_listening "$2" && return 0
        kill -0 "$1" 2>/dev/null || bench_die "$3 exited during start-up (see $OUT/$3.log)"
        sleep 0.1
    done
    bench_die "$3 does not listen on port $2 after 10 s (see $OUT/$3.log)"
}

# bench_redis_start_free DIR LOG PIDVAR [COMMAND PREFIX ...]: a redis-server of the
# benchmark's own (no persistence, data in DIR, output in LOG) on a free port in 16000-20999,
# below the ephemeral range and away from the unit tests' ports; tries up to 8 ports. Its PID
# is in the variable named PIDVAR (e.g. 'PID[redis]', the caller's table of what it stops at
# exit) from the moment it starts; unset again after an attempt that failed. Sets BENCH_RPORT;
# dies when no port works.
# shellcheck disable=SC2034 # BENCH_RPORT: the caller's
bench_redis_start_free() {
    local dir=$1 log=$2 pidvar=$3 p _ pid
    shift 3
    BENCH_RPORT=
    for _ in 1 2 3 4 5 6 7 8; do
        p=$((16000 + RANDOM % 5000))
        bench_listening "$p" && continue
        "$@" redis-server --bind 127.0.0.1 --port "$p" --dir "$dir" --save '' --appendonly no \
            --protected-mode yes --daemonize no --loglevel warning >"$log" 2>&1 &
        pid=$!
        printf -v "$pidvar" '%s' "$pid"
        for _ in $(seq 50); do
            [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ] && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        # is the server answering on this port our child? (taskset and nice exec: $! is redis)
        if [ "$(redis-cli -p "$p" info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')" = "$pid" ]; then
            BENCH_RPORT=$p
            return 0
        fi
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        unset "$pidvar"
    done
    bench_die "could not start redis-server on a free port (see $log)"
}

# non-idle jiffies of the whole machine since boot
bench_busy_jiffies() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

# Measures the machine's load over 2 s into IDLE_LOAD (cores); true when it is busy (more than
# 0.15 cores): something else on this small box skews everything.
bench_idle_busy() {
    local b0 b1
    b0=$(bench_busy_jiffies)
    sleep 2
    b1=$(bench_busy_jiffies)
    IDLE_LOAD=$(awk -v a="$b0" -v b="$b1" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b - a) / hz / 2}')
    awk -v l="$IDLE_LOAD" 'BEGIN{exit !(l > 0.15)}'
}

# On a shared box, start each measurement in a quiet moment: waits (up to QUIET_WAIT s) until
# the machine is idle over half a second.
bench_wait_quiet() {
    local waited=0 a b
    while :; do
        a=$(bench_busy_jiffies); sleep 0.5; b=$(bench_busy_jiffies)
        awk -v a="$a" -v b="$b" -v hz="$(getconf CLK_TCK)" 'BEGIN{exit !((b - a) / hz / 0.5 <= 0.15)}' && return 0
        waited=$((waited + 1))
        if ((waited >= QUIET_WAIT * 2)); then
            printf '%s\n' "   (machine still busy after ${QUIET_WAIT}s, measuring anyway)" >&2
            return 0
        fi
    done
}

# VmRSS of PID in kB
bench_rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

# bench_cpu_s PID [DECIMALS]: CPU seconds of all threads of PID (schedstat: ns on cpu),
# with DECIMALS (default 4) decimals
bench_cpu_s() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk -v f="%.${2:-4}f" '{s += $1} END {printf f, s / 1e9}'
}

# non-idle CPU seconds of the whole machine
bench_box_s() {
    awk -v hz="$(getconf CLK_TCK)" '/^cpu /{printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz}' /proc/stat
}

# seconds as h2load wants them: integer milliseconds with the unit
bench_ms() { awk -v s="$1" 'BEGIN{printf "%dms", s * 1000}'; }

# bench_kv KEY LINE: the value of KEY=VALUE in wd_load's output line
bench_kv() { sed -n "s/.*\<$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# ---- run.sh and h2.sh: the same measurements on several servers ----
# These read the caller's PIN_CLI, BIN (wd_load), DUR, WARM (s), OUT, RSS_CALLS, and
# H2BODY and RES as bench_settings sets them.

# bench_policy SCRIPT: prints the policy run.sh and h2.sh give warden: a realistic small rule
# set. The load's requests (clientid dev-NNNN, PUBLISH devices/dev-NNNN/telemetry;
# authenticate demo/demo) are allowed by the third rule and by the users step; wd_load's
# deny= count would show it otherwise.
bench_policy() {
    echo "# warden benchmark policy (written by bench/$1)"
    cat <<'EOF'
user "demo" "sha256:warden-demo:44f3dd4642ca067bdff293d64c019364f50121992d7b98abec84b98ba8477685"

authn users
authn default deny

allow all       "#"                               when superuser
deny  subscribe "$SYS/#"
allow publish   "devices/${clientid}/telemetry"
allow subscribe "devices/${clientid}/commands/#"
authz default deny
EOF
}

# bench_settings SETTING...: what the measurements of run.sh and h2.sh need: H2BODY (the
# OnClientAuthorize request h2load posts, made by wd_load -B) and its H2PATH, RES
# (results.tsv) with its header line, SETTING_ARGS (wd_load's arguments for each setting but
# h2sat); dies when one of the SETTINGs is none of them.
# shellcheck disable=SC2034 # the variables are the caller's
bench_settings() {
    local s
    H2BODY="$OUT/authorize.grpc"
    "$BIN/wd_load" -m authorize -B "$H2BODY" 2>/dev/null
    H2PATH=/emqx.exhook.v2.HookProvider/OnClientAuthorize

    RES="$OUT/results.tsv"
    printf 'round\tsetting\tserver\trps\tp50_us\tp99_us\tp999_us\tmax_us\terr\tmismatch\tsrv_us\tcli_us\tother_cores\n' >"$RES"

    declare -gA SETTING_ARGS=(
        [tput]="-t 1 -c 8 -n 64"
        [lat1]="-t 1 -c 1 -n 1"
        [lat32]="-t 1 -c 8 -n 32"
        [authn]="-t 1 -c 8 -n 64 -m authenticate"
    )
    for s in "$@"; do
        [ "$s" = h2sat ] || [ -n "${SETTING_ARGS[$s]:-}" ] || bench_die "unknown setting '$s' in SETTINGS"
    done
}

# bench_h2load_sampled SERVER_PID URL: h2load -t 1 -c 8 -m 32 for DUR s after WARM s of
# warm-up, posting H2BODY to URL; prints its output, then a line "SRVCPU c0 c1 h0 h1 b0 b1 t0
# t1": the server's, h2load's and the machine's CPU seconds and the time, sampled inside
# h2load's measured window (which ends when h2load exits: stop early). taskset execs h2load,
# so $! is h2load itself.
bench_h2load_sampled() {
    local pid=$1 url=$2 hp c0 c1 h0 h1 b0 b1 t0 t1
    "${PIN_CLI[@]}" h2load -t 1 -c 8 -m 32 -D "$(bench_ms "$DUR")" --warm-up-time "$(bench_ms "$WARM")" \
        -d "$H2BODY" -H content-type:application/grpc -H te:trailers "$url" 2>&1 &
    hp=$!
    sleep "$WARM"; sleep 0.2
    c0=$(bench_cpu_s "$pid") h0=$(bench_cpu_s "$hp") b0=$(bench_box_s) t0=$(date +%s.%N)
    sleep "$(awk -v d="$DUR" 'BEGIN{print (d > 1 ? d - 0.6 : d / 2)}')"
    c1=$(bench_cpu_s "$pid") h1=$(bench_cpu_s "$hp") b1=$(bench_box_s) t1=$(date +%s.%N)
    wait "$hp"; echo "SRVCPU $c0 $c1 $h0 $h1 $b0 $b1 $t0 $t1"
}

# h2load's mean latency in us, from its output
bench_h2load_mean() {
    awk '/^time for request:/{ v = $6; if (v ~ /ms$/) { sub("ms", "", v); v *= 1000 }
         else if (v ~ /us$/) sub("us", "", v); else if (v ~ /s$/) { sub("s", "", v); v *= 1e6 }
         printf "%.0f", v }' <<<"$1"
}

# bench_wd_load_row ROUND SETTING SERVER ADDR PID WIDTH WD_LOAD_ARGS...: one wd_load
# measurement (DUR s after WARM s, server CPU from PID) appended to RES as a row, and logged
# with SERVER in a column WIDTH wide
bench_wd_load_row() {
    local round=$1 setting=$2 server=$3 addr=$4 pid=$5 width=$6 out
    shift 6
    out=$("${PIN_CLI[@]}" "$BIN/wd_load" -q -a "$addr" "$@" \
        -d "$DUR" -w "$WARM" -S "$pid" 2>"$OUT/wd_load.err") || true
    [ -n "$(bench_kv rps "$out")" ] || { cat "$OUT/wd_load.err" >&2; bench_die "wd_load against $server failed"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$setting" "$server" \
        "$(bench_kv rps "$out")" "$(bench_kv p50_us "$out")" "$(bench_kv p99_us "$out")" "$(bench_kv p999_us "$out")" \
        "$(bench_kv max_us "$out")" "$(bench_kv err "$out")" "$(bench_kv mismatch "$out")" \
        "$(bench_kv srv_us_per_call "$out")" "$(bench_kv cli_us_per_call "$out")" "$(bench_kv other_cores "$out")" >>"$RES"
    printf '%s\n' "   $(printf "%-6s %-${width}s" "$setting" "$server") calls/s=$(bench_kv rps "$out") p50=$(bench_kv p50_us "$out")us p99=$(bench_kv p99_us "$out")us err=$(bench_kv err "$out") mismatch=$(bench_kv mismatch "$out") srv=$(bench_kv srv_us_per_call "$out")us/call other_load=$(bench_kv other_cores "$out")" >&2
}

# bench_rss_run PID ADDR EVERY: RSS_CALLS OnClientAuthorize calls (wd_load -t 1 -c 8 -n 64)
# on the warden PID listening at ADDR; appends to OUT/report.txt (and prints) its VmRSS each
# time wd_load reports EVERY calls, then after the run, and the run's figures.
bench_rss_run() {
    local wpid=$1 addr=$2 every=$3 seen=0 line calls el final load_pid
    "${PIN_CLI[@]}" "$BIN/wd_load" -q -a "$addr" -t 1 -c 8 -n 64 -N "$RSS_CALLS" \
        -i "$every" -S "$wpid" 2>"$OUT/wd_load.err" >"$OUT/rss_load.out" &
    load_pid=$!
    # progress lines arrive as the run goes; sample warden's RSS as each one appears
    while :; do
        while IFS= read -r line; do
            calls=$(bench_kv calls "$line")
            el=$(sed -n 's/.*elapsed=\([0-9.]*\)s.*/\1/p' <<<"$line")
            printf '%12s %9s %10s\n' "$calls" "$el" "$(bench_rss_kb "$wpid")" | tee -a "$OUT/report.txt"
        done < <(grep '^progress' "$OUT/rss_load.out" | tail -n +$((seen + 1)))
        seen=$(grep -c '^progress' "$OUT/rss_load.out" || true)
        kill -0 "$load_pid" 2>/dev/null || break
        sleep 0.2
    done
    wait "$load_pid" || true
    sleep 1
    final=$(grep -v '^progress' "$OUT/rss_load.out" || true)
    {
        printf '%12s %9s %10s\n' after "$(bench_kv elapsed "$final")" "$(bench_rss_kb "$wpid")"
        echo "RSS run: calls/s=$(bench_kv rps "$final") ok=$(bench_kv ok "$final") err=$(bench_kv err "$final") mismatch=$(bench_kv mismatch "$final") p99=$(bench_kv p99_us "$final")us srv=$(bench_kv srv_us_per_call "$final")us/call"
    } | tee -a "$OUT/report.txt"
}
