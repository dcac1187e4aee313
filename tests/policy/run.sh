#!/usr/bin/env bash
# Golden policy cases, run by `make test`:
#   tests/policy/*.tests and policies/*.tests   `warden test` must pass every case
#   tests/policy/fail/X.policy                  `warden check` must print exactly X.err
#                                               (exit 1 if X.err has an error, else 0)
#   tests/policy/fail/X.tests                   `warden test` must print exactly X.err
#                                               (stdout, then stderr; exit 2 if X.err has
#                                               an error, else 1: a case fails)
# Regenerate an .err after an intended change with:  tests/policy/run.sh --update
set -u
cd "$(dirname "$0")/../.." || exit 2
WARDEN=${WARDEN:-build/warden}
update=0
[ "${1:-}" = "--update" ] && update=1
pass=0 fail=0
tmpd=$(mktemp -d)
trap 'rm -rf "$tmpd"' EXIT
for t in tests/policy/*.tests policies/*.tests; do
    if out=$("$WARDEN" test "$t" 2>&1); then
        echo "PASS $t: $(echo "$out" | tail -n 1)"
        pass=$((pass + 1))
    else
        echo "FAIL $t:"
        echo "$out" | sed 's/^/    /'
        fail=$((fail + 1))
    fi
done
for p in tests/policy/fail/*.policy; do
    want=${p%.policy}.err
    got=$("$WARDEN" check "$p" 2>&1 >/dev/null)
    rc=$?
    want_rc=0
    grep -q ': error: ' "$want" 2>/dev/null && want_rc=1
    if [ $update = 1 ]; then
        printf '%s\n' "$got" > "$want"
        echo "UPDATED $want"
        continue
    fi
    if [ "$got" = "$(cat "$want")" ] && [ $rc = $want_rc ]; then
        echo "PASS $p (exit $rc, diagnostics as in $(basename "$want"))"
        pass=$((pass + 1))
    else
        echo "FAIL $p: exit $rc (want $want_rc); diff want got:"
        diff <(cat "$want") <(printf '%s\n' "$got") | sed 's/^/    /'
        fail=$((fail + 1))
    fi
done
for t in tests/policy/fail/*.tests; do
    want=${t%.tests}.err
    "$WARDEN" test "$t" > "$tmpd/out" 2> "$tmpd/err"
    rc=$?
    got=$(cat "$tmpd/out" "$tmpd/err")
    want_rc=1
    grep -q ': error: ' "$want" 2>/dev/null && want_rc=2
    if [ $update = 1 ]; then
        printf '%s\n' "$got" > "$want"
        echo "UPDATED $want"
        continue
    fi
    if [ "$got" = "$(cat "$want")" ] && [ $rc = $want_rc ]; then
        echo "PASS $t (exit $rc, output as in $(basename "$want"))"
        pass=$((pass + 1))
    else
        echo "FAIL $t: exit $rc (want $want_rc); diff want got:"
        diff <(cat "$want") <(printf '%s\n' "$got") | sed 's/^/    /'
        fail=$((fail + 1))
    fi
done
# `warden passwd` end to end: every scheme's secret, put in a policy, verifies the
# password it was made from and refuses another (through the same binary and engine)
tmp=$tmpd
for scheme in bcrypt:4 "argon2id:m=1024,t=1,p=1" pbkdf2:sha512:1000 sha256 sha512-suffix sha1 md5 plain; do
    if ! printf 'pa ss"w\\rd\n' | "$WARDEN" passwd --scheme "$scheme" --user 'u "1"' > "$tmp/p.policy" 2>"$tmp/err"; then
        echo "FAIL passwd --scheme $scheme: $(cat "$tmp/err")"
        fail=$((fail + 1))
        continue
    fi
    echo "authn users" >> "$tmp/p.policy"
    printf '%s\n' 'policy "p.policy"' \
        'allow authn username "u \"1\"" password "pa ss\"w\\rd"' \
        'deny  authn username "u \"1\"" password "pa ss\"w\\rdX"' > "$tmp/p.tests"
    if out=$("$WARDEN" test "$tmp/p.tests" 2>&1); then
        echo "PASS passwd --scheme $scheme: $(echo "$out" | tail -n 1)"
        pass=$((pass + 1))
    else
        echo "FAIL passwd --scheme $scheme:"
        echo "$out" | sed 's/^/    /'
        fail=$((fail + 1))
    fi
done

echo "$pass passed, $fail failed"
[ $fail = 0 ]
