# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, issue 8 item 4: a deny rule is not bypassed by a wider
subscription. A subscription receives every topic its filter matches, so a deny rule
decides every subscription that overlaps it (docs/policy.md, "Deny rules and wider
subscriptions"). Through the real daemon and a gRPC client, on both ExHook versions.

Loaded by run.py (`sec_overlap.register(scenario)`); every scenario is named
sec_overlap_*, so `run.py --only sec_overlap` runs them all.
"""
import harness as H
from harness import ALLOW_RAW, DENY_RAW, PUBLISH, SUBSCRIBE, STOP, Warden, ensure

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`

# the policy from the issue
POLICY = ('user "demo" "plain:demo"\n'
          "authn users\n"
          'deny  subscribe "secrets/#"\n'
          'allow subscribe "#"\n'
          'allow publish   "other/#"\n'
          "authz default deny\n")



def _authz(ch, topic, rtype, version):
    return H.raw_call(ch, H.path("OnClientAuthorize", version),
                      H.authz_req(topic, rtype, version).SerializeToString())


@_scenario
def sec_overlap_deny_is_not_bypassed_by_a_wider_subscription(s, h):
    pol = H.write_file(h, "overlap.policy", POLICY, "sec_overlap")
    cfg = "policy %s\n" % pol
    with s.check("sec_overlap_wider_subscriptions_denied"):
        with Warden(h, cfg) as w, H.channel(w.addr) as ch:
            for v in ("v2", "v3"):
                # what an attacker sends: filters that receive secrets/db-password
                for topic in ("#", "+/db-password", "+/+", "+", "secrets/#", "+/#",
                              "secrets/db-password"):
                    raw = _authz(ch, topic, SUBSCRIBE, v)
                    H.expect_raw(raw, DENY_RAW, "%s SUBSCRIBE %s" % (v, topic))
                    H.expect_bool(raw, STOP, False, "%s SUBSCRIBE %s" % (v, topic))
                for topic in ("other/x", "other/#", "other/+/y"):
                    H.expect_raw(_authz(ch, topic, SUBSCRIBE, v), ALLOW_RAW,
                                 "%s SUBSCRIBE %s" % (v, topic))
                H.expect_raw(_authz(ch, "other/x", PUBLISH, v), ALLOW_RAW, "%s PUBLISH" % v)
                H.expect_raw(_authz(ch, "secrets/x", PUBLISH, v), DENY_RAW,
                             "%s PUBLISH secrets/x" % v)
    with s.check("sec_overlap_explain_says_overlaps"):
        rc, out, err = H.run_warden(h, ["explain", pol, "--action", "subscribe", "--topic",
                                        "+/db-password", "--username", "demo"])
        ensure(rc == 0, "explain: exit %s\n%s%s" % (rc, out, H.tail(err)))
        ensure("decided by %s:3 (overlaps: the subscription can receive topics this deny rule "
               "denies)" % pol in out and "decision: deny" in out, "explain:\n%s" % out)


@_scenario
def sec_overlap_malformed_topics_are_denied(s, h):
    # what an attacker sends to look for a wider reading of "covers": filters and names that
    # are not MQTT topics at all (EMQX refuses them itself; warden must not depend on it)
    pol = H.write_file(h, "malformed.policy",
                       'deny subscribe "secrets/#"\nallow all "#"\nauthz default allow\n',
                       "sec_overlap")
    with s.check("sec_overlap_malformed_topics_denied"):
        with Warden(h, "policy %s\n" % pol) as w, H.channel(w.addr) as ch:
            for v in ("v2", "v3"):
                for topic in ("secrets/#/x", "#/", "a/#/b", "a+", "+a/b", "#/#"):
                    H.expect_raw(_authz(ch, topic, SUBSCRIBE, v), DENY_RAW,
                                 "%s SUBSCRIBE %r" % (v, topic))
                for topic in ("a/+", "#", "a/b#", "+"):
                    H.expect_raw(_authz(ch, topic, PUBLISH, v), DENY_RAW,
                                 "%s PUBLISH %r" % (v, topic))
                H.expect_raw(_authz(ch, "a//b", SUBSCRIBE, v), ALLOW_RAW, "%s SUBSCRIBE a//b" % v)
                H.expect_raw(_authz(ch, "a/b", PUBLISH, v), ALLOW_RAW, "%s PUBLISH a/b" % v)
