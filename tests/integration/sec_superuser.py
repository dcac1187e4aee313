# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, issue 8: a client is a superuser only when the step that
authenticated *this* connection says so (a static user whose password matched, Redis
is_superuser, the JWT is_superuser claim), never because of its username
(docs/policy.md "Conditions", docs/sessions.md).

Loaded by run.py (`sec_superuser.register(scenario)`); `run.py --only sec_superuser` runs
it. The attacks of the issue go through the real daemon with a real gRPC client, against a
real redis-server and HS256 tokens minted by stores.py's helpers, for every order of the
steps `authn users`, `authn jwt`, `authn redis`, `authn allow when clientid ~ ...` and
`authn anonymous allow` (120 orders, one policy reload each; every order uses its own
client ids and peer ports, so no session of one order can help another).
"""
import itertools
import signal

import harness as H
from harness import SUBSCRIBE, ensure, pb
from stores import Env, Errs, jwt_hs, now, redis_lines, sha_hex

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`


STEPS = {
    "users": "authn users",
    "jwt": "authn jwt",
    "redis": "authn redis",
    "allow_when": 'authn allow when clientid ~ "sensor-[0-9]+"',
    "anonymous": "authn anonymous allow",
}


def order_policy(ops_secret, order, extra_user):
    """The issue's policy with the authn steps in this order; returns (text, {step: line})."""
    lines = ['user "ops" "%s" superuser' % ops_secret, extra_user]
    where = {}
    for name in order:
        lines.append(STEPS[name])
        where[name] = len(lines)
    lines += ["authn default deny",
              'allow all ["#", "$SYS/#"] when superuser',
              "authz default deny"]
    return "".join(ln + "\n" for ln in lines), where


def authn(ch, user, pw, clientid, peerport, **ci):
    """OnClientAuthenticate from the connection 127.0.0.1:peerport (or ci's peerhost)."""
    info = dict(clientid=clientid, username=user, password=pw, peerport=peerport)
    info.update(ci)
    req = pb.ClientAuthenticateRequest(clientinfo=H.clientinfo(**info), result=False,
                                       meta=H.meta())
    return H.raw_call(ch, H.path("OnClientAuthenticate"), req.SerializeToString())


def sub_all(ch, user, clientid, peerport, topic="#", **ci):
    """SUBSCRIBE topic (default "#") from that connection."""
    req = H.authz_req(topic, SUBSCRIBE, "v2", True, user, clientid)
    req.clientinfo.peerport = peerport
    for k, v in ci.items():
        setattr(req.clientinfo, k, v)
    return H.raw_call(ch, H.path("OnClientAuthorize"), req.SerializeToString())


def reload_to(w, text, what):
    before = w.count(H.SIGHUP_OK)
    H.replace_file(w.policy_path, text)
    w.signal(signal.SIGHUP)
    w.wait_count(H.SIGHUP_OK + "|" + H.SIGHUP_FAIL, before + 1, what)
    ensure(w.count(H.SIGHUP_OK) >= before + 1, "%s: reload failed\n%s" % (what, H.tail(w.log())))


@_scenario
def sec_superuser_every_authn_order(s, h):
    with Env(s, h, "sec_superuser_every_authn_order") as env:
        r = env.redis()
        ops_pw = env.secret("ops-pw")
        ops_secret = "sha256:s4lt:" + sha_hex("sha256", "s4lt" + ops_pw)
        root_pw = env.secret("root-pw")
        r.hset("mqtt_user:rootr", {"password_hash": root_pw, "is_superuser": "1"})
        ops2_pw, redis_ops2_pw = env.secret("ops2-pw"), env.secret("ops2-redis-pw")
        r.hset("mqtt_user:ops2", {"password_hash": redis_ops2_pw, "is_superuser": "0"})
        ops2 = 'user "ops2" "sha256:s4lt:%s" superuser' % sha_hex("sha256", "s4lt" + ops2_pw)
        jwt_secret = env.secret("jwt-secret-of-at-least-32-bytes")
        t = now()

        def tk(**claims):
            v = jwt_hs(dict({"exp": t + 3600}, **claims), jwt_secret)
            env.hide(v.rsplit(".", 1)[-1])
            return v

        jwt_ops = tk(sub="ops")  # a token of its own, no is_superuser claim
        jwt_su = tk(sub="jsu", is_superuser=True)
        orders = list(itertools.permutations(STEPS))
        first, _ = order_policy(ops_secret, orders[0], ops2)
        w = env.warden(first, "jwt_secret " + jwt_secret, "jwt_on_invalid next",
                       "redis_password_hash plain", *redis_lines(r))
        with H.channel(w.addr) as ch:
            with s.check("sec_superuser_every_authn_order"):
                e = Errs()
                for i, order in enumerate(orders):
                    text, _ = order_policy(ops_secret, order, ops2)
                    if i:
                        reload_to(w, text, "order %d" % i)
                    tag = "order %s:" % ",".join(order)
                    port = 20000 + 40 * i
                    n = 100 * (i + 1)  # sensor-<n+k>: this order's own client ids

                    def cid(x):
                        return "o%d-%s" % (i, x)

                    def sensor(k):
                        return "sensor-%d" % (n + k)

                    # the legitimate static superuser, with its password: everything
                    e.want(True, lambda: authn(ch, "ops", ops_pw, cid("console"), port),
                           tag + " ops logs in with its password")
                    e.want(True, lambda: sub_all(ch, "ops", cid("console"), port),
                           tag + " ops with its password subscribes to #")
                    e.want(True, lambda: sub_all(ch, "ops", cid("console"), port, "$SYS/#"),
                           tag + " ops with its password subscribes to $SYS/#")
                    # attack 1: its own JWT (no superuser claim), username ops
                    authn(ch, "ops", jwt_ops, cid("jwt"), port + 1)
                    e.want(False, lambda: sub_all(ch, "ops", cid("jwt"), port + 1),
                           tag + " a JWT login named ops subscribes to #")
                    # attack 2: `authn allow when clientid ~` lets sensor-N in; name ops,
                    # wrong password
                    authn(ch, "ops", "wrong", sensor(1), port + 2)
                    e.want(False, lambda: sub_all(ch, "ops", sensor(1), port + 2),
                           tag + " sensor-N named ops with a wrong password subscribes to #")
                    # anonymous, and the name with no password
                    authn(ch, "", "", sensor(2), port + 3)
                    e.want(False, lambda: sub_all(ch, "", sensor(2), port + 3),
                           tag + " an anonymous client subscribes to #")
                    authn(ch, "ops", "", cid("nopw"), port + 4)
                    e.want(False, lambda: sub_all(ch, "ops", cid("nopw"), port + 4),
                           tag + " ops without a password subscribes to #")
                    # ops2, a static superuser, is also a Redis user (not a superuser there)
                    authn(ch, "ops2", redis_ops2_pw, cid("redis"), port + 5)
                    e.want(False, lambda: sub_all(ch, "ops2", cid("redis"), port + 5),
                           tag + " ops2 let in by its Redis record subscribes to #")
                    # the stores' superusers are superusers; their names are not
                    e.want(True, lambda: authn(ch, "rootr", root_pw, cid("rootr"), port + 6),
                           tag + " a Redis superuser logs in")
                    e.want(True, lambda: sub_all(ch, "rootr", cid("rootr"), port + 6),
                           tag + " a Redis superuser subscribes to #")
                    authn(ch, "rootr", "wrong", sensor(3), port + 7)
                    e.want(False, lambda: sub_all(ch, "rootr", sensor(3), port + 7),
                           tag + " sensor-N named like the Redis superuser subscribes to #")
                    e.want(True, lambda: authn(ch, "jsu", jwt_su, cid("jsu"), port + 8),
                           tag + " a JWT superuser logs in")
                    e.want(True, lambda: sub_all(ch, "jsu", cid("jsu"), port + 8),
                           tag + " a JWT superuser subscribes to #")
                    authn(ch, "jsu", "wrong", sensor(4), port + 9)
                    e.want(False, lambda: sub_all(ch, "jsu", sensor(4), port + 9),
                           tag + " sensor-N named like the JWT superuser subscribes to #")
                    # ops is logged in on a clientid; someone else logs in on it under
                    # ops's name from another connection: never a superuser there, and the
                    # first connection keeps its rights only if warden refused the second
                    users_first = order.index("users") < order.index("allow_when")
                    authn(ch, "ops", ops_pw, sensor(5), port + 10)
                    e.want(users_first, lambda: sub_all(ch, "ops", sensor(5), port + 10),
                           tag + " ops on sensor-N, let in by " +
                           ("its password" if users_first else "`authn allow when`"))
                    second = authn(ch, "ops", "wrong", sensor(5), port + 11)
                    e.want(False, lambda: sub_all(ch, "ops", sensor(5), port + 11),
                           tag + " a second login on ops's clientid subscribes to #")
                    e.want(users_first and second != H.ALLOW_RAW,
                           lambda: sub_all(ch, "ops", sensor(5), port + 10),
                           tag + " ops's first connection after the second login")
                    jwt_first = order.index("jwt") < order.index("users")
                    authn(ch, "ops", ops_pw, cid("shared"), port + 12)
                    second = authn(ch, "ops", jwt_ops, cid("shared"), port + 13)
                    e.want(jwt_first, lambda: second,
                           tag + " the JWT login on ops's clientid (allowed when authn jwt "
                           "comes before authn users)")
                    e.want(False, lambda: sub_all(ch, "ops", cid("shared"), port + 13),
                           tag + " a JWT login on ops's clientid subscribes to #")
                    e.want(not jwt_first, lambda: sub_all(ch, "ops", cid("shared"), port + 12),
                           tag + " ops's first connection after a JWT login on its clientid")
                    ensure(len(e.e) < 40, "stopping early:\n%s" % "\n".join(e.e))
                e.done()
                ensure(len(orders) == 120 and w.count(H.SIGHUP_OK) >= 119,
                       "%d orders, %d reloads" % (len(orders), w.count(H.SIGHUP_OK)))


@_scenario
def sec_superuser_sessions_belong_to_a_connection(s, h):
    """A connection warden did not allow (NOMATCH, which EMQX may admit; a DENY whose answer
    EMQX did not hear) never uses the session another connection made under the same
    clientid and username; a replica (or a restart) that did not authenticate ops does not
    make it a superuser until it logs in there."""
    with Env(s, h, "sec_superuser_sessions_belong_to_a_connection") as env:
        ops_pw = env.secret("ops-pw")
        pol = ('user "ops" "sha256:s4lt:%s" superuser\n' % sha_hex("sha256", "s4lt" + ops_pw)
               + 'authn users when peer in ["10.0.0.0/8"]\n'
               + "authn default nomatch\n"
               + 'allow all ["#", "$SYS/#"] when superuser\n'
               + "authz default deny\n")
        w = env.warden(pol, "nomatch_reply continue")
        lan = dict(peerhost="10.1.2.3")
        with H.channel(w.addr) as ch:
            with s.check("sec_superuser_nomatch_connection_gets_no_session"):
                e = Errs()
                e.want(True, lambda: authn(ch, "ops", ops_pw, "ops-1", 5000, **lan),
                       "ops logs in from 10.1.2.3:5000")
                e.want(True, lambda: sub_all(ch, "ops", "ops-1", 5000, **lan), "ops: #")
                raw = authn(ch, "ops", "guess", "ops-1", 6000, peerhost="192.0.2.7")
                ensure(raw not in (H.ALLOW_RAW, H.DENY_RAW),
                       "the chain answers no-match outside 10/8: %s" % H.describe_valued(raw))
                e.want(False, lambda: sub_all(ch, "ops", "ops-1", 6000, peerhost="192.0.2.7"),
                       "a no-match login on ops's clientid and name (EMQX may admit it): #")
                e.want(False, lambda: sub_all(ch, "ops", "ops-1", 5001, **lan),
                       "another port of ops's host, never authenticated: #")
                e.want(False, lambda: authn(ch, "ops", "guess", "ops-1", 5002, **lan),
                       "a wrong password from the LAN")
                e.want(False, lambda: sub_all(ch, "ops", "ops-1", 5002, **lan),
                       "the denied connection (had EMQX not heard the deny): #")
                e.want(True, lambda: sub_all(ch, "ops", "ops-1", 5000, **lan),
                       "a refused login did not take ops's rights away")
                e.done()
        with s.check("sec_superuser_no_session_on_another_replica"):
            w2 = env.warden(pol, "nomatch_reply continue", name="replica")
            with H.channel(w2.addr) as ch2:
                e = Errs()
                e.want(False, lambda: sub_all(ch2, "ops", "ops-1", 5000, **lan),
                       "a replica (or a restarted warden) that did not authenticate ops: #")
                e.want(True, lambda: authn(ch2, "ops", ops_pw, "ops-1", 5000, **lan),
                       "ops logs in there")
                e.want(True, lambda: sub_all(ch2, "ops", "ops-1", 5000, **lan),
                       "ops after logging in there: #")
                e.done()


@_scenario
def sec_superuser_tools_and_compile_errors(s, h):
    """`authn ... when superuser` does not compile (a reload keeps the old policy), and
    `warden test` makes no superuser of a name."""
    with Env(s, h, "sec_superuser_tools_and_compile_errors") as env:
        ops_pw = env.secret("ops-pw")
        user = 'user "ops" "sha256:s4lt:%s" superuser\n' % sha_hex("sha256", "s4lt" + ops_pw)
        good = (user + "authn users\nauthn default deny\n"
                + 'allow all ["#", "$SYS/#"] when superuser\nauthz default deny\n')
        with s.check("sec_superuser_in_authn_condition_is_an_error"):
            bad = (user + "authn allow when superuser\n"
                   + "authn deny when not (anonymous or superuser)\n" + "authn users\n")
            p = H.write_file(h, "bad.policy", bad)
            rc, out, err = H.run_warden(h, ["check", p])
            ensure(rc == 1, "warden check: exit %s, want 1\n%s" % (rc, err))
            for pos in (":2:18: error: 'superuser' is unknown while authenticating",
                        ":3:35: error: 'superuser' is unknown while authenticating"):
                ensure(pos in err, "no %r in:\n%s" % (pos, err))
            w = env.warden(good)
            with H.channel(w.addr) as ch:
                before = w.count(H.SIGHUP_FAIL)
                H.replace_file(w.policy_path, bad)
                w.signal(signal.SIGHUP)
                w.wait_count(H.SIGHUP_FAIL, before + 1, "reload to `authn allow when superuser`")
                e = Errs()
                e.want(False, lambda: authn(ch, "ops", "any", "c-1", 5000),
                       "the old policy still serves: ops with any password")
                e.want(False, lambda: sub_all(ch, "ops", "c-1", 5000), "nor gets #")
                e.done()
        with s.check("sec_superuser_warden_test_needs_the_password"):
            pdir = H.write_file(h, "p.policy", good)
            tests = pdir[:-len("p.policy")] + "p.tests"

            def run(cases):
                with open(tests, "w") as f:
                    f.write('policy "p.policy"\n' + cases)
                return H.run_warden(h, ["test", tests])

            rc, out, err = run('allow subscribe "#" username "ops" password "%s"\n'
                               'deny  subscribe "#" username "ops"\n'
                               'allow subscribe "#" username "x" superuser true\n' % ops_pw)
            ensure(rc == 0 and "3 passed, 0 failed" in out, "rc %s\n%s%s" % (rc, out, err))
            rc, out, err = run('allow subscribe "#" username "ops"\n')
            ensure(rc == 1 and "0 passed, 1 failed" in out,
                   "a name alone must not be a superuser: rc %s\n%s%s" % (rc, out, err))
            rc, out, err = run('allow subscribe "#" username "ops" password "guess"\n')
            ensure(rc == 1 and "never gets to subscribe" in out, "rc %s\n%s%s" % (rc, out, err))
            rc, out, err = run('allow subscribe "#" username "ops" password "x" superuser true\n')
            ensure(rc == 2 and "not both" in err, "rc %s\n%s%s" % (rc, out, err))
            rc, out, err = H.run_warden(h, ["explain", pdir, "--action", "subscribe",
                                            "--topic", "#", "--username", "ops"])
            ensure(rc == 0 and "decision: deny" in out, "explain, no password: %s%s" % (out, err))
            rc, out, err = H.run_warden(h, ["explain", pdir, "--action", "subscribe",
                                            "--topic", "#", "--username", "ops",
                                            "--password", ops_pw])
            ensure(rc == 0 and "a superuser" in out and "decision: allow" in out,
                   "explain with the password: %s%s" % (out, err))
