# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, the command line (issue 12): what a new operator types first.

- every subcommand prints its usage on stdout and exits 0 for --help (and -h), and prints
  the version for --version, instead of taking the flag for a file;
- `warden check` takes several files: each is reported, the exit status is the worst;
- a bad --listen value is blamed on --listen (not on `<embedded>`) and is a usage error
  (exit 2), a bad `listen` line in a file is blamed on its file:line (exit 3);
- `--set unknown=1` names the directive `unknown`, not a `--unknown` flag.

Loaded by run.py (`cli.register(scenario)`); scenarios are named cli_*. Every warden here
runs to completion (H.run_warden, bounded by its timeout).
"""
import os

import harness as H
from harness import ensure

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`

SUBCOMMANDS = ("check", "explain", "test", "import-acl", "passwd", "admin")
GOOD = ('user "u" "plain:pw"\n'
        "authn users\n"
        "authn default deny\n"
        'allow all "t/#"\n'
        "authz default deny\n")
BAD = ("authn users\n"
       'allow publish "a" when usrname = "x"\n')


def version():
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), "VERSION")) as f:
        return f.read().strip()


@_scenario
def cli_subcommands_help_and_version(s, h):
    for sub in SUBCOMMANDS:
        with s.check("cli_%s_help_exit_0_on_stdout" % sub):
            for flag in ("--help", "-h"):
                rc, out, err = H.run_warden(h, [sub, flag], timeout=10)
                ensure(rc == 0, "warden %s %s: exit %s, want 0\n%s" % (sub, flag, rc,
                                                                      H.tail(err)))
                ensure(out.startswith("usage: warden %s" % sub),
                       "warden %s %s: stdout does not start with its usage:\n%s" % (
                           sub, flag, H.tail(out)))
                ensure(err == "", "warden %s %s: stderr:\n%s" % (sub, flag, H.tail(err)))
        with s.check("cli_%s_version" % sub):
            rc, out, err = H.run_warden(h, [sub, "--version"], timeout=10)
            ensure(rc == 0 and out == "warden %s\n" % version(),
                   "warden %s --version: exit %s, stdout %r\n%s" % (sub, rc, out, H.tail(err)))
    with s.check("cli_help_after_a_file_operand"):
        # `warden check FILE --help`: still the usage, not a file named --help
        p = H.write_file(h, "g.policy", GOOD)
        for args in (["check", p, "--help"], ["explain", p, "--help"],
                     ["explain", p, "--action", "publish", "--help"]):
            rc, out, err = H.run_warden(h, args, timeout=10)
            ensure(rc == 0 and out.startswith("usage: warden %s" % args[0]),
                   "%s: exit %s\n%s%s" % (args, rc, out, H.tail(err)))
    with s.check("cli_subcommand_unknown_option_exit_2"):
        for sub in ("check", "test", "import-acl"):
            rc, out, err = H.run_warden(h, [sub, "--bogus"], timeout=10)
            ensure(rc == 2, "warden %s --bogus: exit %s, want 2\n%s" % (sub, rc, H.tail(err)))
            ensure("--bogus" in err and "usage: warden %s" % sub in err,
                   "warden %s --bogus: the option and the usage are not on stderr:\n%s" % (
                       sub, H.tail(err)))


@_scenario
def cli_check_several_files(s, h):
    good1 = H.write_file(h, "a.policy", GOOD)
    good2 = H.write_file(h, "b.policy", GOOD)
    bad = H.write_file(h, "bad.policy", BAD)
    missing = os.path.join(h.tmp, "missing.policy")
    with s.check("cli_check_two_good_files_exit_0"):
        rc, out, err = H.run_warden(h, ["check", good1, good2], timeout=10)
        ensure(rc == 0, "exit %s, want 0\n%s" % (rc, H.tail(err)))
        ensure(out.splitlines() == ["%s: ok (1 rules, 1 users)" % good1,
                                    "%s: ok (1 rules, 1 users)" % good2], "stdout:\n%s" % out)
    with s.check("cli_check_each_file_reported_worst_status"):
        rc, out, err = H.run_warden(h, ["check", good1, bad, missing, good2], timeout=10)
        ensure(rc == 1, "exit %s, want 1\n%s" % (rc, H.tail(err)))
        ensure(out.splitlines() == ["%s: ok (1 rules, 1 users)" % good1,
                                    "%s: ok (1 rules, 1 users)" % good2], "stdout:\n%s" % out)
        ensure("%s:2:24: error: unknown field 'usrname'" % bad in err,
               "the bad file's diagnostic is missing:\n%s" % H.tail(err))
        ensure(missing in err, "the missing file is not named:\n%s" % H.tail(err))
    with s.check("cli_check_dash_dash_ends_options"):
        rc, out, err = H.run_warden(h, ["check", "--", good1], timeout=10)
        ensure(rc == 0 and out.startswith(good1 + ": ok"), "exit %s\n%s%s" % (rc, out, err))


@_scenario
def cli_flag_errors_name_the_flag(s, h):
    with s.check("cli_bad_listen_flag_exit_2_blames_listen"):
        for value in ("bogus", "127.0.0.1:99999", ":9000", "127.0.0.1:"):
            for extra in ([], ["--check-config"]):
                args = ["--listen", value] + extra
                rc, out, err = H.run_warden(h, args, timeout=10)
                ensure(rc == 2, "%s: exit %s, want 2 (usage error)\n%s" % (args, rc, H.tail(err)))
                ensure("command line: --listen: 'listen' expects HOST:PORT" in err,
                       "%s: the error does not blame --listen:\n%s" % (args, H.tail(err)))
                ensure("<embedded>" not in err, "%s: blames <embedded>:\n%s" % (args,
                                                                              H.tail(err)))
        rc, out, err = H.run_warden(h, ["-l", "nocolon"], timeout=10)
        ensure(rc == 2 and "--listen" in err, "-l nocolon: exit %s\n%s" % (rc, H.tail(err)))
    with s.check("cli_bad_listen_in_file_exit_3_with_file_line"):
        conf = H.write_file(h, "l.conf", "workers 1\nlisten 127.0.0.1\n")
        rc, out, err = H.run_warden(h, ["--config", conf, "--check-config"], timeout=10)
        ensure(rc == 3, "exit %s, want 3\n%s" % (rc, H.tail(err)))
        ensure("%s:2: 'listen' expects HOST:PORT" % conf in err,
               "no %s:2 error:\n%s" % (conf, H.tail(err)))
    with s.check("cli_set_unknown_names_the_directive"):
        rc, out, err = H.run_warden(h, ["--set", "unknown=1", "--check-config"], timeout=10)
        ensure(rc == 2, "exit %s, want 2\n%s" % (rc, H.tail(err)))
        ensure("command line: --set unknown: unknown directive 'unknown'" in err,
               "stderr:\n%s" % H.tail(err))
        ensure("--unknown" not in err, "names a --unknown flag:\n%s" % H.tail(err))
    with s.check("cli_set_bad_value_names_set"):
        rc, out, err = H.run_warden(h, ["--set", "workers=x", "--check-config"], timeout=10)
        ensure(rc == 2 and "command line: --set workers: 'workers' must be" in err,
               "exit %s\n%s" % (rc, H.tail(err)))


STORES = ("authn jwt when username ~ \"dev-.*\"\n"            # 1
          "authn redis\n"                                       # 2
          "authn default deny\n"                                # 3
          "allow all [\"#\", \"$SYS/#\"] when superuser\n"      # 4
          "allow publish \"t/${claim.tenant}/#\"\n"             # 5
          "allow publish \"own/#\" when clientid = \"${claim.owner}\"\n"  # 6
          "rules jwt\n"                                         # 7
          "rules redis\n"                                       # 8
          "authz default deny\n")                               # 9


@_scenario
def cli_test_and_explain_state_a_store(s, h):
    """`warden test` and `explain` describe a client that Redis or a JWT admitted (issue 12):
    the authenticating step, the token's claims, is_superuser, the Redis ACL; bad input is
    an error with its position (test) or a usage error (explain), exit 2."""
    pol = H.write_file(h, "s.policy", STORES)
    d = os.path.dirname(pol)

    def tests(name, text):
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write('policy "s.policy"\n' + text)
        return path

    with s.check("cli_test_cases_state_claims_superuser_and_acls"):
        t = tests("good.tests",
                  'allow publish "t/acme/x" username "dev-1" authn jwt claims {"tenant": "acme"} rule 5\n'
                  'deny  publish "t/acme/x" username "dev-1" authn jwt claims {"tenant": "b"}   rule 9\n'
                  'deny  publish "t/acme/x" username "dev-1"                                    rule 9\n'
                  'allow publish "own/x" username "dev-1" clientid "c1"\n'
                  '      authn jwt claims {"owner": "c1"}                                       rule 6\n'
                  'deny  publish "own/x" username "dev-1" clientid "c1" authn jwt claims {}     rule 9\n'
                  'allow subscribe "$SYS/x" username "dev-1" authn jwt claims {"is_superuser": true} rule 4\n'
                  'allow subscribe "$SYS/x" username "u" authn redis superuser true             rule 4\n'
                  'deny  subscribe "$SYS/x" username "u" authn redis                            rule 9\n'
                  'allow publish "a/1" username "dev-1" authn jwt\n'
                  '      claims {"acl": [{"permission": "allow", "action": "publish", "topic": "a/#"}]} rule 7\n'
                  'allow publish "r/1" username "u" authn redis redis_acl {"r/#": "publish"}    rule 8\n'
                  'allow authn username "dev-1" authn jwt                                       rule 1\n'
                  'allow authn username "u" authn redis                                         rule 2\n')
        rc, out, err = H.run_warden(h, ["test", t], timeout=20)
        ensure(rc == 0 and out == "12 passed, 0 failed\n", "exit %s\n%s%s" % (rc, out, H.tail(err)))
    with s.check("cli_test_stated_step_that_never_admits_fails"):
        t = tests("fail.tests", 'allow publish "t/a/x" username "u" authn jwt claims {"tenant": "a"}\n')
        rc, out, err = H.run_warden(h, ["test", t], timeout=20)
        ensure(rc == 1, "exit %s, want 1\n%s%s" % (rc, out, H.tail(err)))
        ensure("FAIL %s:2: authn jwt does not admit the client: deny by %s:3" % (t, pol) in out,
               "stdout:\n%s" % out)
    with s.check("cli_test_bad_store_input_exit_2_with_position"):
        t = tests("bad.tests",
                  'allow publish "t/a" username "dev-1" authn jwt claims {"tenant": acme}\n'
                  'allow publish "t/a" username "dev-1" authn ldap\n'
                  'allow publish "t/a" username "dev-1" claims {"tenant": "a"}\n'
                  'allow publish "t/a" username "u" redis_acl {"a/#": "pub"}\n'
                  'allow publish "t/a" username "dev-1" authn jwt\n'
                  '      claims {"acl": [{"permission": "allow", "action": "publish", "qos": 7, "topic": "a"}]}\n')
        rc, out, err = H.run_warden(h, ["test", t], timeout=20)
        ensure(rc == 2, "exit %s, want 2\n%s%s" % (rc, out, H.tail(err)))
        for want in ("%s:2:69: error: claims: invalid JSON: invalid token near 'acme'" % t,
                     "%s:3:38: error: authn takes redis or jwt" % t,
                     "%s:4:1: error: claims need authn jwt" % t,
                     "%s:5:44: error: redis_acl: entry \"a/#\" would be skipped" % t,
                     "%s:7:14: error: claims: warden would skip (part of) the ACL claim: "
                     "acl[0]: invalid qos" % t):
            ensure(want in err, "missing %r in:\n%s" % (want, H.tail(err, 40)))
    with s.check("cli_explain_states_a_store"):
        rc, out, err = H.run_warden(h, ["explain", pol, "--action", "publish", "--topic",
                                        "t/acme/x", "--username", "dev-1", "--authn", "jwt",
                                        "--claims", '{"tenant": "acme"}'], timeout=20)
        ensure(rc == 0 and "decided by %s:5" % pol in out and out.endswith("decision: allow\n"),
               "exit %s\n%s%s" % (rc, out, H.tail(err)))
        ensure(out.startswith('authn username="dev-1": allow (jwt: allowed (stated, no store), '
                              '%s:1): not a superuser\n' % pol), "stdout:\n%s" % out)
        rc, out, err = H.run_warden(h, ["explain", pol, "--action", "subscribe", "--topic",
                                        "r/1", "--username", "u", "--authn", "redis",
                                        "--redis-acl", '{"r/+": "subscribe"}'], timeout=20)
        ensure(rc == 0 and "decided by %s:8 (the source allows)" % pol in out,
               "exit %s\n%s%s" % (rc, out, H.tail(err)))
        rc, out, err = H.run_warden(h, ["explain", pol, "--action", "publish", "--topic", "t/a",
                                        "--username", "u", "--authn", "jwt"], timeout=20)
        ensure(rc == 1 and "not admitted by authn jwt" in out, "exit %s\n%s%s" % (rc, out, err))
    with s.check("cli_explain_bad_store_flags_exit_2"):
        for args, want in (
                (["--authn", "ldap"], "authn takes redis or jwt"),
                (["--authn", "jwt", "--claims", '{"a": 1,\n"b": x}'],
                 "--claims: claims: invalid JSON: invalid token near 'x' (at line 2, column 6"),
                (["--claims", '{"a": 1}'], "claims need authn jwt"),
                (["--authn", "jwt", "--superuser", "true"], "put \"is_superuser\": true in claims"),
                (["--redis-acl", '["a"]'], "redis_acl: a JSON object"),
                (["--authn", "redis", "--authn", "jwt"], "--authn given twice"),
                (["--username", "dev-2"], "--username given twice")):
            rc, out, err = H.run_warden(h, ["explain", pol, "--action", "publish", "--topic", "t",
                                            "--username", "dev-1"] + args, timeout=20)
            ensure(rc == 2 and want in err and out == "",
                   "%s: exit %s, want 2 and %r\n%s%s" % (args, rc, want, out, H.tail(err)))
    with s.check("cli_test_and_explain_help_document_the_store_fields"):
        for sub, words in (("test", ("authn redis|jwt", "claims {JSON}", "redis_acl {JSON}")),
                           ("explain", ("--authn redis|jwt", "--claims JSON", "--redis-acl JSON"))):
            rc, out, err = H.run_warden(h, [sub, "--help"], timeout=10)
            for w in words:
                ensure(rc == 0 and w in out, "warden %s --help lacks %r:\n%s" % (sub, w, out))
    with s.check("cli_condition_placeholders_work_or_are_refused"):
        p = H.write_file(h, "c.policy",
                         'allow publish "a" when clientid = "${username}"\nauthz default deny\n')
        for cid, want in (("alice", "decision: allow"), ("bob", "decision: deny")):
            rc, out, err = H.run_warden(h, ["explain", p, "--action", "publish", "--topic", "a",
                                            "--username", "alice", "--clientid", cid], timeout=20)
            ensure(rc == 0 and out.endswith(want + "\n"), "%s: exit %s\n%s%s" % (cid, rc, out, err))
        p = H.write_file(h, "r.policy", 'allow publish "a" when username ~ "x${clientid}"\n')
        rc, out, err = H.run_warden(h, ["check", p], timeout=10)
        ensure(rc == 1 and "%s:1:35: error: a regular expression cannot hold a placeholder" % p
               in err, "exit %s\n%s" % (rc, H.tail(err)))
