# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, configuration errors in one pass and subcommands over several
files (issue 12).

- a configuration file with line errors (a bad value, an unknown directive) and errors of the
  rules that involve several directives (tls_key without tls_cert, keepalive_timeout not
  shorter than keepalive_time, redis_host with redis_socket, two JWT key sources) is refused
  with every one of them in the same run, each naming the file:line of the directive
  involved, at start and under --check-config (exit 3);
- a bad flag and a rule broken by another flag are reported together, each naming its flag
  (exit 2: a command-line error);
- a directive whose line was refused is not also reported by a rule it takes part in;
- `warden test` takes several tests files: each file's failures, its own count, the totals,
  and the worst exit status; `warden explain` takes several policies and explains the same
  request with each (an old and a new policy side by side).

Loaded by run.py (`config_cli.register(scenario)`); scenarios are named config_errors_* and
cli_several_*.
Every warden here runs to completion (H.run_warden, bounded by its timeout).
"""
import os

import harness as H
from harness import ensure

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`

POLICY = ('user "u" "plain:pw"\n'
          "authn users\n"
          "authn default deny\n"
          'allow all "t/#"\n'
          "authz default deny\n")


def lines_with(err, needles):
    """The needles that are not in err (each must be on a line of its own)."""
    return [n for n in needles if not any(n in ln for ln in err.splitlines())]


@_scenario
def config_errors_lines_and_rules_in_one_pass(s, h):
    policy = H.write_file(h, "p.policy", POLICY)
    conf = H.write_file(h, "w.conf",
                        "policy %s\n"                      # 1
                        "workers many\n"                   # 2
                        "tls_key k.pem\n"                  # 3
                        "bogus_directive 1\n"              # 4
                        "keepalive_time 20s\n"             # 5
                        "keepalive_timeout 30s\n"          # 6
                        "redis_host 127.0.0.1\n"           # 7
                        "redis_socket /run/redis.sock\n"   # 8
                        "jwt_secret 0123456789abcdef0123456789abcdef\n"  # 9
                        "jwt_public_key pub.pem\n"         # 10
                        % policy)
    want = [
        "%s:2: 'workers' must be an integer" % conf,
        "%s:4: unknown directive 'bogus_directive'" % conf,
        "%s:3: tls_key is set but tls_cert is not" % conf,
        "%s:6: keepalive_timeout (30s) must be shorter than keepalive_time (20s, %s:5)"
        % (conf, conf),
        "%s:8: redis_host and redis_socket are both set (redis_host: %s:7)" % (conf, conf),
        "%s:10: set exactly one JWT key source" % conf,
    ]
    for extra in ([], ["--check-config"]):
        with s.check("config_errors_lines_and_rules_in_one_pass%s" % (
                "_check_config" if extra else "")):
            rc, out, err = H.run_warden(h, ["--config", conf] + extra, timeout=10)
            ensure(rc == 3, "exit %s, want 3\n%s" % (rc, H.tail(err)))
            missing = lines_with(err, want)
            ensure(not missing, "not reported in the same run: %r\n%s" % (missing, H.tail(err)))
            ensure("configuration ok" not in out, "--check-config said ok")


@_scenario
def config_errors_flags_and_rules_together(s, h):
    policy = H.write_file(h, "p.policy", POLICY)
    with s.check("config_errors_flags_and_rules_together"):
        rc, out, err = H.run_warden(h, ["--set", "policy=" + policy, "--tls-cert", "c.pem",
                                        "--workers", "x", "--check-config"], timeout=10)
        ensure(rc == 2, "exit %s, want 2 (a bad flag)\n%s" % (rc, H.tail(err)))
        missing = lines_with(err, [
            "command line: --workers: 'workers' must be an integer",
            "command line: --tls-cert: tls_cert is set but tls_key is not"])
        ensure(not missing, "not reported in the same run: %r\n%s" % (missing, H.tail(err)))
    with s.check("config_errors_refused_line_is_not_reported_twice"):
        conf = H.write_file(h, "w.conf", "policy %s\ntls_cert c.pem\ntls_key a b\n" % policy)
        rc, out, err = H.run_warden(h, ["--config", conf, "--check-config"], timeout=10)
        ensure(rc == 3, "exit %s, want 3\n%s" % (rc, H.tail(err)))
        ensure("%s:3: 'tls_key' takes exactly one value" % conf in err, H.tail(err))
        ensure("tls_cert is set but tls_key is not" not in err,
               "a rule reported a directive whose line was refused:\n%s" % H.tail(err))


TESTS_OK = 'policy "p.policy"\nallow publish "t/1" username "u"\ndeny publish "x" username "u"\n'
TESTS_FAIL = 'policy "p.policy"\ndeny publish "t/1" username "u"\n'


@_scenario
def cli_several_tests_files(s, h):
    ok = H.write_file(h, "ok.tests", TESTS_OK)
    with open(os.path.join(os.path.dirname(ok), "p.policy"), "w") as f:
        f.write(POLICY)
    bad = H.write_file(h, "fail.tests", TESTS_FAIL)
    with open(os.path.join(os.path.dirname(bad), "p.policy"), "w") as f:
        f.write(POLICY)
    with s.check("cli_several_tests_files_all_pass"):
        rc, out, err = H.run_warden(h, ["test", ok, ok], timeout=10)
        ensure(rc == 0, "exit %s, want 0\n%s%s" % (rc, out, H.tail(err)))
        ensure(out.splitlines() == ["%s: 2 passed, 0 failed" % ok, "%s: 2 passed, 0 failed" % ok,
                                    "4 passed, 0 failed"], "stdout:\n%s" % out)
    with s.check("cli_several_tests_files_each_counted_worst_status"):
        rc, out, err = H.run_warden(h, ["test", ok, bad], timeout=10)
        ensure(rc == 1, "exit %s, want 1\n%s%s" % (rc, out, H.tail(err)))
        lines = out.splitlines()
        ensure(lines[-1] == "2 passed, 1 failed" and "%s: 0 passed, 1 failed" % bad in lines
               and any(ln.startswith("FAIL %s:2:" % bad) for ln in lines), "stdout:\n%s" % out)
    with s.check("cli_one_tests_file_prints_as_before"):
        rc, out, err = H.run_warden(h, ["test", ok], timeout=10)
        ensure(rc == 0 and out == "2 passed, 0 failed\n", "exit %s\n%s" % (rc, out))


@_scenario
def cli_several_policies_explained(s, h):
    old = H.write_file(h, "old.policy", POLICY)
    new = H.write_file(h, "new.policy", POLICY.replace('allow all "t/#"', 'allow subscribe "t/#"'))
    with s.check("cli_several_policies_explained_side_by_side"):
        rc, out, err = H.run_warden(h, ["explain", old, new, "--action", "publish", "--topic",
                                        "t/1", "--username", "u"], timeout=10)
        ensure(rc == 0, "exit %s, want 0\n%s%s" % (rc, out, H.tail(err)))
        ensure(out.startswith("== %s\n" % old) and "\n== %s\n" % new in out,
               "no section per policy:\n%s" % out)
        first, second = out.split("\n== %s\n" % new)
        ensure("decision: allow" in first and "decision: deny" in second,
               "each policy's decision is not shown:\n%s" % out)
    with s.check("cli_several_policies_one_missing_exit_1"):
        rc, out, err = H.run_warden(h, ["explain", os.path.join(h.tmp, "missing.policy"), old,
                                        "--action", "publish", "--topic", "t/1"], timeout=10)
        ensure(rc == 1 and "decision: " in out, "exit %s\n%s%s" % (rc, out, H.tail(err)))
