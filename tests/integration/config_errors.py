# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, configuration errors in one pass (issue 12).

- a configuration file with line errors (a bad value, an unknown directive) and errors of the
  rules that involve several directives (tls_key without tls_cert, keepalive_timeout not
  shorter than keepalive_time, redis_host with redis_socket, two JWT key sources) is refused
  with every one of them in the same run, each naming the file:line of the directive
  involved, at start and under --check-config (exit 3);
- a bad flag and a rule broken by another flag are reported together, each naming its flag
  (exit 2: a command-line error);
- a directive whose line was refused is not also reported by a rule it takes part in.

Loaded by run.py (`config_errors.register(scenario)`); scenarios are named config_errors_*.
Every warden here runs to completion (H.run_warden, bounded by its timeout).
"""
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
