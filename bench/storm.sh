#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench/storm.sh: a reconnect storm (issue 9). USERS distinct users, each with its own
# bcrypt hash in Redis, all log in at once on a cold cache, while another client keeps
# making warm authorize calls. What it shows:
#   - one bcrypt check per user (the hash threads' "checks submitted" counter, before and
#     after), however the logins are spread over connections and workers;
#   - the warm client's latency during the storm next to its latency before it: the hashes
#     run on the hash threads (`hash_threads`), never on a worker's loop.
#
#   bench/storm.sh                         # 10,000 users, bcrypt cost 6 (~1 min)
#   USERS=2000 COST=4 bench/storm.sh       # smoke run
#
# Knobs (defaults): USERS=10000 COST=6 WORKERS=2 HASH_THREADS=1 WINDOW=8 (seconds of warm
# latency measured during the storm; the storm must outlast it: the report says whether
# it did) PORT=9390 OUT=build/bench/storm. Redis: its own redis-server on a free port in a
# temp dir, stopped by PID at exit. Hashes: made once with Python's crypt (libxcrypt, the
# same $2b$ format warden checks) and cached in $OUT/users-$USERS-$COST.txt.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh
USERS=${USERS:-10000}
COST=${COST:-6}
WORKERS=${WORKERS:-2}
HASH_THREADS=${HASH_THREADS:-1}
WINDOW=${WINDOW:-8}
PORT=${PORT:-9390}
OUT=${OUT:-build/bench/storm}
mkdir -p "$OUT"

make -s build/warden bench >/dev/null
WARDEN=$ROOT/build/warden
LOAD=$ROOT/build/release/bench/wd_load
TMP=$(mktemp -d /tmp/wd-storm.XXXXXX)
RPID=
WPID=
cleanup() {
    if [ -n "$WPID" ] && kill "$WPID" 2>/dev/null; then wait "$WPID" 2>/dev/null || true; fi
    if [ -n "${RPID:-}" ] && kill "$RPID" 2>/dev/null; then wait "$RPID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# ---- users: user-NNNN / pw-NNNN (wd_load -U), one bcrypt hash each
USERS_FILE=$OUT/users-$USERS-$COST.txt
if [ ! -s "$USERS_FILE" ]; then
    echo "making $USERS bcrypt hashes (cost $COST) into $USERS_FILE ..."
    /usr/bin/python3 - "$USERS" "$COST" >"$USERS_FILE.tmp" <<'EOF'
import sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)
import crypt
n, cost = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    pw = "pw-%04d" % i
    print("user-%04d %s" % (i, crypt.crypt(pw, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << cost))))
EOF
    mv "$USERS_FILE.tmp" "$USERS_FILE"
fi

# ---- redis
bench_redis_start_free "$TMP" "$TMP/redis.log" RPID
RPORT=$BENCH_RPORT
awk '{ printf "*4\r\n$4\r\nHSET\r\n$%d\r\nmqtt_user:%s\r\n$13\r\npassword_hash\r\n$%d\r\n%s\r\n",
       length($1) + 10, $1, length($2), $2 }' "$USERS_FILE" | redis-cli -p "$RPORT" --pipe >/dev/null
echo "redis on $RPORT: $(redis-cli -p "$RPORT" dbsize) users"

# ---- warden
cat >"$TMP/warden.policy" <<'EOF'
authn redis
authn default deny
allow all ["#"]
authz default deny
EOF
cat >"$TMP/warden.conf" <<EOF
policy $TMP/warden.policy
listen 127.0.0.1:$PORT
transport h2
workers $WORKERS
hash_threads $HASH_THREADS
redis_host 127.0.0.1
redis_port $RPORT
redis_password_hash bcrypt
cache_entries $((USERS * 2 + 1000))
admin_socket $TMP/admin.sock
log_level warn
EOF
"$WARDEN" --config "$TMP/warden.conf" >"$TMP/warden.log" 2>&1 &
WPID=$!
for _ in $(seq 1 100); do [ -S "$TMP/admin.sock" ] && break; sleep 0.05; done
checks() { "$WARDEN" admin --socket "$TMP/admin.sock" stats | sed -n 's/.*checks submitted \([0-9]*\).*/\1/p'; }

lat() { # seconds -> wd_load -q line (warm authorize, 1 in flight)
    "$LOAD" -a "127.0.0.1:$PORT" -t 1 -c 1 -n 1 -w 1 -d "$1" -k 16 -q -S "$WPID"
}
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p"; }

echo "warm latency before the storm ($WINDOW s) ..."
# shellcheck disable=SC2034 # before, during, after: read as ${!w} below
before=$(lat "$WINDOW")
c0=$(checks)
"$LOAD" -a "127.0.0.1:$PORT" -t 1 -c 8 -n 64 -m authenticate -U -k "$USERS" -N "$USERS" -q \
    >"$TMP/storm.out" 2>&1 &
SPID=$!
# shellcheck disable=SC2034
during=$(lat "$WINDOW")
storm_alive=no
kill -0 "$SPID" 2>/dev/null && storm_alive=yes
wait "$SPID" || true
c1=$(checks)
storm=$(cat "$TMP/storm.out")
# shellcheck disable=SC2034
after=$(lat "$WINDOW")
wall=$(echo "$storm" | field elapsed)

{
    echo "# bench/storm.sh $(date -u +%FT%TZ): USERS=$USERS COST=$COST WORKERS=$WORKERS HASH_THREADS=$HASH_THREADS WINDOW=$WINDOW"
    echo "storm: $USERS logins in $wall s ($(echo "$storm" | field rps) /s, p50 $(echo "$storm" | field p50_us) us, p99 $(echo "$storm" | field p99_us) us): ok=$(echo "$storm" | field ok) err=$(echo "$storm" | field err) deny=$(echo "$storm" | field deny)"
    echo "bcrypt checks run: $((c1 - c0)) for $USERS users"
    echo "storm still running at the end of the latency window: $storm_alive"
    printf "%-8s %8s %8s %8s %8s %10s\n" window calls/s p50_us p99_us max_us srv_us/call
    for w in before during after; do
        l=${!w}
        printf "%-8s %8s %8s %8s %8s %10s\n" "$w" "$(echo "$l" | field rps)" \
            "$(echo "$l" | field p50_us)" "$(echo "$l" | field p99_us)" \
            "$(echo "$l" | field max_us)" "$(echo "$l" | field srv_us_per_call)"
    done
} | tee "$OUT/storm-$(date -u +%Y%m%dT%H%M%SZ).txt"
