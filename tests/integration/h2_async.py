# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, issue 9: a worker never blocks on a back end.

On the h2 transport a call that needs Redis (or a slow password hash) is suspended: its
worker's loop keeps serving every other call, and the call is resumed when the reply comes
(docs/internals.md "Calls that wait"). Each scenario runs ONE worker (`workers 1`), so a
worker that blocked would stall everything, and freezes Redis with SIGSTOP so the waiting
call provably cannot finish while the others are checked:

- a cold authentication waits on a frozen Redis while other clients' authorizations and
  health checks on the same worker are answered; the cold call gets its real answer once
  Redis resumes;
- calls that go away while they wait (their grpc-timeout passes, their connection closes)
  cost nothing: the late replies are dropped and the worker goes on;
- SIGTERM while a bcrypt check of a call runs on the hash threads: warden exits 0.

Loaded by run.py (`h2_async.register(scenario)`); scenarios are named h2_async_*. Nothing
waits by a fixed sleep: Redis holding warden's command is read from /proc/net/tcp, and
conditions are polled with deadlines that only turn a hang into a failure.
"""
import os
import re
import threading
import time

import grpc

import harness as H
import stores
from harness import ALLOW_RAW, CheckFailed, ensure, pb
from stores import Env, admin_ok, authn, authz, redis_lines, sha_hex

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`
ONE_WORKER = ("transport h2", "workers 1", "cache off", "redis_timeout 30s")
POLICY = ("authn redis\nauthn default deny\n"
          "allow publish [\"free/#\"]\n"
          "rules redis\n"
          "authz default deny\n")


def _poll(fn, timeout, what):
    """Polls fn() until true; the deadline only turns a hang into a failure."""
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise CheckFailed("%s: not within %gs" % (what, timeout))
        time.sleep(0.01)


def _authn_bytes(user, pw):
    return pb.ClientAuthenticateRequest(
        clientinfo=H.clientinfo(clientid="client-1", username=user, password=pw,
                                peerport=54321),
        result=False, meta=H.meta("v2")).SerializeToString()


def _in_thread(fn):
    got = {}

    def run():
        try:
            got["raw"] = fn()
        except Exception as e:  # noqa: BLE001 (reported by the caller)
            got["err"] = e
    t = threading.Thread(target=run)
    t.start()
    return t, got


@_scenario
def h2_async_frozen_redis_stalls_only_the_call_that_needs_it(s, h):
    with Env(s, h, "h2_async_frozen") as env:
        r = env.redis()
        pw = env.secret("coldpw")
        r.hset("mqtt_user:cold", {"password_hash": sha_hex("sha256", pw)})
        w = env.warden(POLICY, *redis_lines(r, *ONE_WORKER), name="frozen")
        with s.check("h2_async_other_calls_answered_while_one_waits_on_frozen_redis"):
            with H.channel(w.addr) as ch, H.channel(w.addr) as other:
                ensure(authn(ch, "cold", pw) == ALLOW_RAW, "warm-up: cold is allowed")
                r.pause()
                try:
                    t, got = _in_thread(lambda: authn(ch, "cold", pw))
                    _poll(lambda: stores._redis_rx_queued(r.port), 10,
                                           "warden's HMGET held by the frozen Redis")
                    answered = 0
                    for i in range(20):
                        raw = authz(other, "free/%d" % i, username="warm", clientid="warm")
                        ensure(raw == ALLOW_RAW, "authorize free/%d: %s" % (
                            i, stores.decision(raw)))
                        answered += 1
                    ensure(t.is_alive(), "the cold call finished while Redis was frozen: %r"
                           % got)
                finally:
                    r.resume()
                t.join(H.CALL_TIMEOUT)
                ensure(not t.is_alive(), "the cold call never finished after Redis resumed")
                ensure("err" not in got, "cold call failed: %r" % got.get("err"))
                ensure(got["raw"] == ALLOW_RAW, "cold call: %s" % stores.decision(got["raw"]))
                print("  [h2_async_frozen] %d authorizations answered on the same worker "
                      "while one call waited on the frozen Redis" % answered, flush=True)


@_scenario
def h2_async_calls_gone_while_waiting(s, h):
    with Env(s, h, "h2_async_gone") as env:
        r = env.redis()
        pw = env.secret("gonepw")
        r.hset("mqtt_user:gone", {"password_hash": sha_hex("sha256", pw)})
        r.hset("mqtt_acl:gone", {"t/1": "publish"})
        w = env.warden(POLICY, *redis_lines(r, *ONE_WORKER), name="gone")
        with s.check("h2_async_deadline_and_closed_connection_while_waiting"):
            with H.channel(w.addr) as ch:
                ensure(authn(ch, "gone", pw) == ALLOW_RAW, "warm-up")
                r.pause()
                try:
                    # a call whose deadline passes while Redis holds its command
                    try:
                        H.raw_call(ch, H.path("OnClientAuthenticate"), _authn_bytes("gone", pw),
                                   timeout=0.5)
                        raise CheckFailed("answered although Redis is frozen")
                    except grpc.RpcError as e:
                        ensure(H._code(e) == grpc.StatusCode.DEADLINE_EXCEEDED,
                               "want DEADLINE_EXCEEDED, got %s" % H._code(e))
                    # calls whose connection closes while they wait (authn and the ACL)
                    for _ in range(5):
                        c2 = H.channel(w.addr)
                        t1, _g1 = _in_thread(lambda: authn(c2, "gone", pw))
                        t2, _g2 = _in_thread(lambda: authz(c2, "t/1", username="gone",
                                                           clientid="gone"))
                        _poll(lambda: stores._redis_rx_queued(r.port), 10,
                                               "the commands held by the frozen Redis")
                        c2.close()
                        t1.join(H.CALL_TIMEOUT)
                        t2.join(H.CALL_TIMEOUT)
                finally:
                    r.resume()
                # the late replies are dropped; the worker serves on
                ensure(authn(ch, "gone", pw) == ALLOW_RAW, "after the abandoned calls")
                ensure(authz(ch, "t/1", username="gone", clientid="gone") == ALLOW_RAW,
                       "ACL after the abandoned calls")
                ensure(w.alive(), "warden died")


@_scenario
def h2_async_sigterm_while_a_hash_runs(s, h):
    with Env(s, h, "h2_async_sigterm_hash") as env:
        pw = env.secret("slowpw")
        secret = "bcrypt:" + stores.warden_passwd(h, "bcrypt:14", pw)
        env.hide(secret)
        sock = os.path.join(h.tmp, "admin-%d.sock" % os.getpid())
        w = env.warden('user "slow" "%s"\nauthn users\nauthn default deny\n' % secret,
                       "transport h2", "workers 1", "hash_threads 1", "shutdown_grace 0s",
                       "admin_socket " + sock, name="sigterm_hash")
        with s.check("h2_async_warm_calls_answered_while_a_hash_runs"):
            ch = H.channel(w.addr)
            t, got = _in_thread(lambda: authn(ch, "slow", pw))
            _poll(lambda: re.search(r"hash threads: 1, running 1",
                                    admin_ok(h, sock, "stats")), 10,
                  "the bcrypt check running on the hash thread")
            with H.channel(w.addr) as other:
                for i in range(5):
                    raw = authn(other, "nobody%d" % i, "x")
                    ensure(raw == stores.DENY_RAW, "a client that needs no hash: %s" %
                           stores.decision(raw))
            still = re.search(r"running 1", admin_ok(h, sock, "stats")) is not None
        with s.check("h2_async_sigterm_with_a_hash_running_exits_0"):
            rc = w.stop()
            ensure(rc == 0, "exit status %s after SIGTERM with a hash running\n%s" % (
                rc, H.tail(w.log())))
            t.join(H.CALL_TIMEOUT)
            ch.close()
            print("  [h2_async_sigterm_hash] hash still running when SIGTERM came: %s" % still,
                  flush=True)
