# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# bench/lib.sh: shell helpers shared by the benchmark scripts that run several wardens and
# a redis-server of their own on fixed loopback ports (bench/sessions.sh,
# bench/invalidation.sh). Sourced, never run: `. "$ROOT/bench/lib.sh"` after `set -euo
# pipefail`. Every process started through it is recorded in BENCH_PIDS and stopped by PID
# (never by name) by bench_cleanup, which the scripts trap on EXIT.

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

# `make bench`, then copies warden and wd_load to OUT/bin (a rebuild while the benchmark
# runs does not change what it measures); prints OUT/bin
bench_build() {
    make -s bench >/dev/null
    mkdir -p "$1/bin"
    cp build/warden build/release/bench/wd_load "$1/bin/"
    echo "$1/bin"
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
