# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, issue 8 (policy compiler): a broken `user` statement must not
show its secret, neither in `warden check` / `warden test` / `warden explain` output nor in
the daemon's log when a reload of such a file fails (docs/policy.md, Diagnostics).

Loaded by run.py (`sec_compiler.register(scenario)`); every scenario is named
sec_compiler_*. Each secret planted here is unique (a random token), and the check searches
all output for it and for its longest pieces. Nothing waits by a fixed sleep: the reload
is awaited by polling the log with a deadline.
"""
import os
import re
import secrets
import signal

import harness as H
from harness import Warden, ensure

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`


GOOD_POLICY = ('authn anonymous deny\nauthn default allow\n'
               'allow all "t/#"\nauthz default deny\n')

# each form of a broken user line; {s} is the planted secret (a token of letters and digits)
BROKEN_FORMS = [
    'user "a" "plain:{s}\\q"',                # bad escape
    'user "a" "plain:{s}\\xZZ"',              # bad \x escape
    'user "a" plain:{s}',                     # unquoted
    'user "a" {s}',                           # unquoted word
    'usr "a" "plain:{s}"',                    # a typo in `user`
    'uesr "a" "plain:{s}"',                   # a typo in `user`
    'User "a" "plain:{s}"',                   # case
    '"user" "a" "plain:{s}"',                 # a quoted keyword
    'user "a"\n    "plain:{s}"',              # the secret on a continuation line
    'user "a"\n\t"plain:{s}" superuser',      # the secret on a continuation line
    'user "a" "plain:{s}',                    # unterminated string
    'user "plain:{s}"',                       # a missing name
    'user "plain:{s}" # comment',             # a missing name
    'user "a" "plain:{s}" extra',             # extra tokens
    'user "a" "plain:x" "{s}"',               # an extra string
    'user "a" "plain:x" superuser {s}',       # an extra word
    'user "a "plain:{s}"',                    # an unterminated name
    'user "a" 9{s}',                          # a malformed number
    'user "a" "plain:{s}\\"x" y',             # an escaped quote
    'user "a" ["plain:{s}",\n    "{s}"]',     # a list
    'user "a" = "plain:{s}"',                 # a stray '='
]


def _secret():
    return "Zk" + secrets.token_hex(8)


def _leaks(text, secret):
    """The planted secret, or a piece of it of 6 characters or more, in text."""
    for n in range(len(secret), 5, -1):
        for i in range(0, len(secret) - n + 1):
            if secret[i:i + n] in text:
                return secret[i:i + n]
    return None


@_scenario
def sec_compiler_broken_user_lines_never_show_the_secret(s, h):
    forms = [(f, _secret()) for f in BROKEN_FORMS]
    body = "".join(f.format(s=sec) + "\n" for f, sec in forms)
    bad = ("authn users\n" + body + GOOD_POLICY)

    with s.check("sec_compiler_check_masks_every_broken_user_line"):
        pol = H.write_file(h, "bad.policy", bad)
        rc, out, err = H.run_warden(h, ["check", pol])
        ensure(rc == 1, "check exit %s, want 1\n%s" % (rc, H.tail(err)))
        for f, sec in forms:
            piece = _leaks(out + err, sec)
            ensure(piece is None, "form %r: %r shows in warden check:\n%s" % (f, piece, out + err))
        # and it still says what is wrong, where
        ensure(re.search(r"bad\.policy:\d+:\d+: error: ", err), "no positioned error:\n%s" % err)

    with s.check("sec_compiler_test_and_explain_mask_every_broken_user_line"):
        pol = H.write_file(h, "bad.policy", bad)
        tests = os.path.join(os.path.dirname(pol), "bad.tests")
        with open(tests, "w") as f:
            f.write('policy "bad.policy"\nallow publish "t/1" username "u"\n')
        outs = []
        for args in (["test", tests],
                     ["explain", pol, "--action", "publish", "--topic", "t/1"],
                     ["explain", pol, "--action", "authn", "--username", "a"]):
            rc, out, err = H.run_warden(h, args)
            ensure(rc not in (0, None), "%s: exit %s, want a failure" % (args, rc))
            outs.append(out + err)
        for f, sec in forms:
            for o in outs:
                piece = _leaks(o, sec)
                ensure(piece is None, "form %r: %r shows:\n%s" % (f, piece, o))

    with s.check("sec_compiler_failed_reload_log_masks_every_broken_user_line"):
        pol = H.write_file(h, "w.policy", GOOD_POLICY)
        conf = "policy %s\npolicy_watch off\n" % pol
        w = Warden(h, conf, name="sec-compiler-reload")
        with w, H.channel(w.addr) as ch:
            H.replace_file(pol, bad)
            w.signal(signal.SIGHUP)
            w.wait_count(H.SIGHUP_FAIL, 1, "reload of a policy with broken user lines")
            log = w.log()
            ensure(re.search(r"ERROR +policy: .*w\.policy:\d+:\d+: error: ", log),
                   "no positioned policy error in the log:\n%s" % H.tail(log))
            for f, sec in forms:
                piece = _leaks(log, sec)
                ensure(piece is None, "form %r: %r shows in the log:\n%s" % (f, piece, log))
            # still serving the old policy
            raw = H.raw_call(ch, H.path("OnClientAuthorize", "v2"),
                             H.authz_req("t/1", H.PUBLISH, "v2", True, "u",
                                         "c").SerializeToString())
            ensure(raw == H.ALLOW_RAW, "after the failed reload: %r" % raw)
