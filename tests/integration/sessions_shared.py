# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, shared sessions (issue 11, `session_store redis`, the default
when Redis is configured; docs/sessions.md "Shared sessions").

Three warden replicas on warden's own HTTP/2 transport (`--set transport=h2`, where a
session read waits instead of blocking) and one real redis-server, all on loopback:

- a client authenticates with a JWT (an ACL claim, a claim used by a `${claim.NAME}` rule,
  a superuser claim) on replica 1 and is authorized on replicas 2 and 3: the same decisions
  as on replica 1;
- replica 1 restarts (an empty session table): its decisions are unchanged;
- a session in Redis that is not this connection's (another peer port, another username
  written there by hand) or not warden's (garbage) is never used, and the replica serves on;
- client.disconnected on replica 2 from another connection leaves the session; from the
  same connection it deletes it in Redis, so a replica without a local copy has nothing.

Loaded by run.py (`sessions_shared.register(scenario)`); scenarios are named sessions_*.
Redis, JWTs and the gRPC helpers come from stores.py. Nothing waits by a fixed sleep: the
asynchronous writes and deletes are polled in Redis with deadlines.
"""
import json
import re
import time

import harness as H
from harness import PUBLISH, SUBSCRIBE, Warden, ensure
import stores as S

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`
H2 = ["--set", "transport=h2"]
POLL_TIMEOUT = 10.0
PREFIX = "warden:session:"

POLICY = ("authn jwt\n"
          "authn default deny\n"
          'allow all ["#", "$SYS/#"] when superuser\n'
          'allow publish "t/${claim.tenant}/#"\n'
          "rules jwt\n"
          "authz default deny\n")


def replica(env, name, *lines):
    """A warden on transport h2 with the scenario's policy; counted by env (exit 0, no secret
    in its log)."""
    p = H.write_file(env.h, "warden.policy", POLICY)
    cfg = "".join(ln + "\n" for ln in ["policy " + p, "log_level debug", "workers 2"]
                  + list(lines))
    w = Warden(env.h, cfg, args=H2, name=name)
    env.wardens.append(w)
    return w.start()


def wait_key(r, key, present, what):
    deadline = time.monotonic() + POLL_TIMEOUT
    while (r.cmd("EXISTS", key) == 1) != present:
        if time.monotonic() > deadline:
            raise H.CheckFailed("%s: %s still %s in Redis after %gs" % (
                what, key, "absent" if present else "present", POLL_TIMEOUT))
        time.sleep(0.01)


def script_calls(r):
    """Calls of EVALSHA and EVAL Redis has run (INFO commandstats)."""
    info = r.cmd("INFO", "commandstats").decode()
    return sum(int(n) for n in re.findall(r"cmdstat_eval(?:sha)?:calls=(\d+)", info))


def wait_script(r, before, what):
    """Polls until Redis ran one more script than `before` (a disconnect's delete)."""
    deadline = time.monotonic() + POLL_TIMEOUT
    while script_calls(r) <= before:
        if time.monotonic() > deadline:
            raise H.CheckFailed("%s: no delete script ran within %gs" % (what, POLL_TIMEOUT))
        time.sleep(0.01)


# (topic, type, allowed) for client S1 (ACL claim, tenant acme) and SU (superuser claim)
S1_CASES = [("devices/S1/up", PUBLISH, True),
            ("devices/S1/down", PUBLISH, False),  # v1: what it does not allow is denied
            ("devices/S1/down", SUBSCRIBE, True),
            ("devices/S2/up", PUBLISH, False),
            ("t/acme/x", PUBLISH, True),          # ${claim.tenant}
            ("t/other/x", PUBLISH, False),
            ("$SYS/brokers", SUBSCRIBE, False)]
SU_CASES = [("$SYS/brokers", SUBSCRIBE, True), ("any/thing", PUBLISH, True)]
PORT = 40001


def expect_cases(e, ch, who, user, cid, cases, tag, port=PORT):
    for topic, rtype, allowed in cases:
        e.want(allowed, lambda: S.authz(ch, topic, rtype, user, cid, peerport=port),
               "%s: %s %s %s" % (tag, who, "sub" if rtype == SUBSCRIBE else "pub", topic))


@_scenario
def sessions_shared_replicas(s, h):
    with S.Env(s, h, "sessions_shared_replicas") as env:
        r = env.redis()
        secret = env.secret("shsecret")
        lines = S.redis_lines(r, "jwt_secret " + secret)
        w1 = replica(env, "replica-1", *lines)
        w2 = replica(env, "replica-2", *lines)
        w3 = replica(env, "replica-3", *lines)
        t = S.now()

        def tk(**claims):
            v = S.jwt_hs(dict({"exp": t + 600}, **claims), secret)
            env.hide(v.rsplit(".", 1)[-1])
            return v

        v1 = tk(tenant="acme", acl={"pub": ["devices/${clientid}/up"],
                                    "sub": ["devices/${clientid}/down"]})
        vsu = tk(is_superuser=True)

        with s.check("sessions_shared_same_decisions_on_every_replica"):
            e = S.Errs()
            with H.channel(w1.addr) as ch:
                e.want(True, lambda: S.authn(ch, "u1", v1, clientid="S1", peerport=PORT),
                       "authenticate S1 on replica 1")
                e.want(True, lambda: S.authn(ch, "root", vsu, clientid="SU", peerport=PORT),
                       "authenticate SU on replica 1")
                e.done()
                # the write is not waited for by authenticate: see it land
                wait_key(r, PREFIX + "S1", True, "S1's session written")
                wait_key(r, PREFIX + "SU", True, "SU's session written")
                stored = r.cmd("GET", PREFIX + "S1").decode()
                ensure(v1 not in stored and v1.rsplit(".", 1)[-1] not in stored
                       and secret not in stored, "the token reached Redis: %s" % stored)
                expect_cases(e, ch, "S1", "u1", "S1", S1_CASES, "replica 1")
                expect_cases(e, ch, "SU", "root", "SU", SU_CASES, "replica 1")
            for name, w in (("replica 2", w2), ("replica 3", w3)):
                with H.channel(w.addr) as ch:
                    expect_cases(e, ch, "S1", "u1", "S1", S1_CASES, name)
                    expect_cases(e, ch, "SU", "root", "SU", SU_CASES, name)
            e.done()

        with s.check("sessions_shared_restart_keeps_decisions"):
            rc = w1.stop()
            ensure(rc == 0, "replica 1: exit %s after SIGTERM" % rc)
            w1b = replica(env, "replica-1b", *lines)
            e = S.Errs()
            with H.channel(w1b.addr) as ch:
                expect_cases(e, ch, "S1", "u1", "S1", S1_CASES, "replica 1 restarted")
                expect_cases(e, ch, "SU", "root", "SU", SU_CASES, "replica 1 restarted")
            e.done()

        with s.check("sessions_shared_binding_mismatch_not_used"):
            e = S.Errs()
            with H.channel(w3.addr) as ch:
                # another connection (peer port) under the same clientid and username
                e.want(False, lambda: S.authz(ch, "$SYS/brokers", SUBSCRIBE, "root", "SU",
                                              peerport=PORT + 1),
                       "SU's superuser session from another connection")
                e.want(False, lambda: S.authz(ch, "devices/S1/up", PUBLISH, "u1", "S1",
                                              peerport=PORT + 1),
                       "S1's ACL from another connection")
                # SU's own record copied under another clientid: not that client's
                val = json.loads(r.cmd("GET", PREFIX + "SU").decode())
                r.cmd("SET", PREFIX + "SX", json.dumps(val), "PX", "600000")
                e.want(False, lambda: S.authz(ch, "$SYS/brokers", SUBSCRIBE, "eve", "SX",
                                              peerport=PORT),
                       "a copy of SU's session under clientid SX, for user eve")
                # the same record rebound to eve by whoever can write Redis is hers: Redis is
                # trusted like the user records it holds; one that is not warden's is not
                val["user"] = "eve"
                val["src"] = "other"  # a superuser only from a credential step: refused
                r.cmd("SET", PREFIX + "SY", json.dumps(val), "PX", "600000")
                e.want(False, lambda: S.authz(ch, "$SYS/brokers", SUBSCRIBE, "eve", "SY",
                                              peerport=PORT),
                       "a forged superuser session without a credential step")
                r.cmd("SET", PREFIX + "SZ", "{" * 100000, "PX", "600000")
                e.want(False, lambda: S.authz(ch, "$SYS/brokers", SUBSCRIBE, "eve", "SZ",
                                              peerport=PORT),
                       "a nesting bomb under a session key")
                expect_cases(e, ch, "SU", "root", "SU", SU_CASES, "replica 3 after them")
            ensure(w3.alive(), "replica 3 died\n%s" % H.tail(w3.log()))
            e.done()
            ensure(w3.count(r"shared session of .* is refused") >= 1,
                   "no refusal logged\n%s" % H.tail(w3.log()))

        with s.check("sessions_shared_disconnect_of_another_connection_keeps_it"):
            before = script_calls(r)
            with H.channel(w2.addr) as ch:
                S.disconnect(ch, "S1", "u1", peerport=PORT + 1)
            wait_script(r, before, "disconnect of another connection")
            ensure(r.cmd("EXISTS", PREFIX + "S1") == 1, "S1's session was deleted")
            w4 = replica(env, "replica-4", *lines)  # no local copy: reads Redis
            e = S.Errs()
            with H.channel(w4.addr) as ch:
                expect_cases(e, ch, "S1", "u1", "S1", S1_CASES, "replica 4")
            e.done()

        with s.check("sessions_shared_disconnect_of_the_connection_deletes_it"):
            with H.channel(w2.addr) as ch:
                S.disconnect(ch, "S1", "u1", peerport=PORT)
            wait_key(r, PREFIX + "S1", False, "disconnect of S1's connection")
            e = S.Errs()
            with H.channel(w2.addr) as ch:
                e.want(False, lambda: S.authz(ch, "devices/S1/up", PUBLISH, "u1", "S1",
                                              peerport=PORT),
                       "replica 2 after the disconnect")
            w5 = replica(env, "replica-5", *lines)
            with H.channel(w5.addr) as ch:
                e.want(False, lambda: S.authz(ch, "devices/S1/up", PUBLISH, "u1", "S1",
                                              peerport=PORT),
                       "a replica without a local copy after the disconnect")
                expect_cases(e, ch, "SU", "root", "SU", SU_CASES, "replica 5, SU untouched")
            e.done()
