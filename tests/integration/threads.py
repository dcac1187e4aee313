# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, issue 10: every thread of warden busy at once.

One warden (2 workers, 2 hash threads, the cache and its Redis invalidation thread, Redis,
JWT, sessions shared through Redis, an admin socket, a policy file watcher, the metrics
endpoint's thread, the decision log's writer thread) while, together:

- client threads, each on its own connection, authenticate and authorize Redis users,
  static bcrypt users (checks on the hash threads; a wrong password is a new one each time,
  so it is never a cache hit), JWT users and a Redis superuser (their rights come from the
  session authenticate recorded), and drop those sessions with client.disconnected;
- a churn thread opens a new connection for every call (the acceptor hands each to a
  worker) and closes it;
- a control thread replaces the policy file (the watcher thread reloads it), sends SIGHUP
  (the main thread reloads it), asks the admin socket (its own thread) for stats,
  `flush --user` and `flush`, rewrites Redis users' keys with the same values (the cache
  invalidation thread drops what they cached), scrapes /metrics and /readyz, and rotates
  the decision log (rename, SIGUSR1).

Every answer must be the right one: the two policy versions decide every call the same
way, and a session-dependent call that a `flush` (which drops every session) may have
overlapped is allowed either answer. This is the scenario `make tsan` leans on for the
cross-thread paths (cache, sessions, engine reload, acceptor to worker, hash threads to
worker, admin thread, cache invalidation, metrics and decision log); under the release build it is a stress check of the same paths.

Loaded by run.py (`threads.register(scenario)`); scenarios are named threads_*. Bounded:
the load runs until enough reloads and admin requests have happened and every client has
done enough rounds (polled, at most LOAD_DEADLINE seconds), never for a fixed time.
"""
import os
import re
import signal
import tempfile
import threading
import time

import grpc

import harness as H
import observe
import stores
from harness import ALLOW_RAW, DENY_RAW, PUBLISH, ensure
from stores import (Env, admin_ok, authn, authz, disconnect, jwt_hs, now, redis_lines,
                    sha_hex)

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`

CLIENTS = 4  # client threads, each with its own connection
MIN_ROUNDS = 15  # rounds each client completes at least
MIN_RELOADS = 4  # SIGHUP reloads logged while the load runs
MIN_WATCHED = 2  # reloads by the policy file watcher while the load runs
MIN_ADMIN = 4  # control iterations (stats, flush --user, flush) while the load runs
LOAD_DEADLINE = 120.0  # turns a hang into a failure; never a latency assertion

# Both versions decide every call below the same way; B adds a rule no call tests, so a
# reload really swaps a different policy in.
POLICY = ('{users}'
          "authn users\n"
          "authn redis\n"
          "authn jwt\n"
          "authn default deny\n"
          'allow all ["#", "$SYS/#"] when superuser\n'
          'allow publish "gen/${{username}}/#"\n'
          "rules redis\n"
          "rules jwt\n"
          "{extra}"
          "authz default deny\n")


def _policy(users, version):
    extra = 'allow publish "only/in/version/b"\n' if version else ""
    return POLICY.format(users=users, extra=extra)


@_scenario
def threads_everything_at_once(s, h):
    with Env(s, h, "threads") as env:
        r = env.redis()
        secret = env.secret("thrsecret")
        rpw = [env.secret("rpw%d" % i) for i in range(CLIENTS)]
        bpw = [env.secret("bpw%d" % i) for i in range(CLIENTS)]
        for i in range(CLIENTS):
            r.hset("mqtt_user:r%d" % i, {"password_hash": sha_hex("sha256", "s" + rpw[i]),
                                         "salt": "s"})
            r.hset("mqtt_acl:r%d" % i, {"r/%d" % i: "publish"})
        supw = env.secret("supw")
        r.hset("mqtt_user:su", {"password_hash": sha_hex("sha256", supw), "is_superuser": "1"})
        users = ""
        for i in range(CLIENTS):
            hashed = "bcrypt:" + stores.warden_passwd(h, "bcrypt:4", bpw[i])
            env.hide(hashed)
            users += 'user "b%d" "%s"\n' % (i, hashed)
        toks = []
        for i in range(CLIENTS):
            tk = jwt_hs({"exp": now() + 600, "acl": {"pub": ["j/${clientid}"]}}, secret)
            env.hide(tk.rsplit(".", 1)[-1])
            toks.append(tk)
        d = tempfile.mkdtemp(prefix="thr.", dir=h.tmp)
        sock = os.path.join(d, "admin.sock")
        declog = os.path.join(d, "decisions.log")
        mport = observe.free_port()
        w = env.warden(_policy(users, 0), *redis_lines(
            r, "jwt_secret " + secret, "admin_socket " + sock, "workers 2", "hash_threads 2",
            "cache on", "metrics_listen 127.0.0.1:%d" % mport, "decision_log " + declog,
            "decision_log_events all"), name="threads")

        # Sessions are shared through this Redis (session_store redis, the default with
        # Redis). A disconnect's conditional delete is an EVALSHA; while Redis does not know
        # the script, it answers NOSCRIPT and the EVAL follows only then, behind a read the
        # client may already have pipelined, which finds the session and takes it back into
        # the local table (backends.c; docs/reliability.md "Sanitizers"). One warm-up
        # login and disconnect, with no read behind it, loads the script (polled: Redis
        # counts its cached scripts), so that every later delete is one command and every
        # answer below exact.
        def cached_scripts():
            info = r.cmd("INFO", "memory")
            info = info.decode() if isinstance(info, bytes) else str(info)
            m = re.search(r"^number_of_cached_scripts:(\d+)", info, re.M)
            return int(m.group(1)) if m else 0

        with s.check("threads_warm_up_shared_session_delete"):
            scripts0 = cached_scripts()
            with H.channel(w.addr) as ch:
                ensure(authn(ch, "j0", toks[0], clientid="warm") == ALLOW_RAW, "warm-up login")
                disconnect(ch, "warm", "j0")
            deadline = time.monotonic() + H.CALL_TIMEOUT
            while cached_scripts() <= scripts0 or r.cmd("EXISTS", "warden:session:warm") != 0:
                ensure(time.monotonic() < deadline, "the warm-up session is never deleted")
                time.sleep(0.01)

        stop = threading.Event()
        lock = threading.Lock()
        errors = []
        counts = {"calls": 0, "more": 0, "uncertain": 0, "churn": 0, "admin": 0}
        rounds = [0] * CLIENTS
        # `flush` drops every session: odd while one may be running (the control thread
        # bumps it before and after each), so a client can tell whether one overlapped
        flush_epoch = [0]

        def record(ok, what):
            with lock:
                counts["calls"] += 1
                if not ok:
                    if len(errors) < 20:
                        errors.append(what)
                    else:
                        counts["more"] += 1

        def call(fn):
            try:
                return fn()
            except grpc.RpcError as e:
                return "RPC error %s %r" % (H._code(e), H._details(e))

        def want(raw, exp, what):
            record(raw == exp, "%s: got %s, want %s" % (what, stores.decision(raw),
                                                        stores.decision(exp)))

        def want_session(e0, raw, what):
            """A call allowed by the session authenticate just recorded: ALLOW, or DENY
            when a `flush` may have dropped the session in between."""
            e1 = flush_epoch[0]
            if raw == ALLOW_RAW:
                record(True, what)
            elif raw == DENY_RAW and (e0 != e1 or e0 % 2):
                with lock:
                    counts["uncertain"] += 1
                record(True, what)
            else:
                record(False, "%s: got %s, want ALLOW (no flush overlapped)" % (
                    what, stores.decision(raw)))

        def client(i):
            try:
                with H.channel(w.addr) as ch:
                    k = 0
                    while not stop.is_set():
                        ru, bu, ju = "r%d" % i, "b%d" % i, "j%d" % i
                        rc, bc, jc, sc = "rc%d" % i, "bc%d" % i, "jc%d" % i, "sc%d" % i
                        # Redis user: credential (cache, Redis) and ACL
                        want(call(lambda: authn(ch, ru, rpw[i], clientid=rc)), ALLOW_RAW,
                             "authn %s" % ru)
                        want(call(lambda: authz(ch, "r/%d" % i, PUBLISH, ru, rc)), ALLOW_RAW,
                             "%s pub r/%d" % (ru, i))
                        want(call(lambda: authz(ch, "r/%d" % ((i + 1) % CLIENTS), PUBLISH, ru,
                                                rc)), DENY_RAW, "%s pub another's" % ru)
                        # static bcrypt user: the hash threads
                        want(call(lambda: authn(ch, bu, bpw[i], clientid=bc)), ALLOW_RAW,
                             "authn %s" % bu)
                        want(call(lambda: authn(ch, bu, "wrong-%d-%d" % (i, k), clientid=bc)),
                             DENY_RAW, "authn %s wrong password" % bu)
                        want(call(lambda: authz(ch, "gen/%s/x" % bu, PUBLISH, bu, bc)),
                             ALLOW_RAW, "%s pub gen/%s/x" % (bu, bu))
                        # JWT user: the session holds the token's ACL
                        e0 = flush_epoch[0]
                        want(call(lambda: authn(ch, ju, toks[i], clientid=jc)), ALLOW_RAW,
                             "authn %s" % ju)
                        want_session(e0, call(lambda: authz(ch, "j/" + jc, PUBLISH, ju, jc)),
                                     "%s pub j/%s" % (ju, jc))
                        disconnect(ch, jc, ju)
                        want(call(lambda: authz(ch, "j/" + jc, PUBLISH, ju, jc)), DENY_RAW,
                             "%s pub j/%s after client.disconnected" % (ju, jc))
                        # Redis superuser: the session's superuser flag
                        e0 = flush_epoch[0]
                        want(call(lambda: authn(ch, "su", supw, clientid=sc)), ALLOW_RAW,
                             "authn su")
                        want_session(e0, call(lambda: authz(ch, "any/%d" % k, PUBLISH, "su",
                                                            sc)), "su pub any/%d" % k)
                        disconnect(ch, sc, "su")
                        want(call(lambda: authz(ch, "any/%d" % k, PUBLISH, "su", sc)),
                             DENY_RAW, "su pub after client.disconnected")
                        k += 1
                        with lock:
                            rounds[i] = k
            except Exception as e:  # noqa: BLE001
                record(False, "client %d: %s: %s" % (i, type(e).__name__, e))

        def churn():
            try:
                while not stop.is_set():
                    with H.channel(w.addr) as ch:
                        want(call(lambda: authz(ch, "gen/nobody/x", PUBLISH, "nobody",
                                                "churn")), ALLOW_RAW, "a new connection")
                    with lock:
                        counts["churn"] += 1
            except Exception as e:  # noqa: BLE001
                record(False, "churn: %s: %s" % (type(e).__name__, e))

        def control():
            version = 0
            try:
                while not stop.is_set():
                    version ^= 1
                    changes = w.count(H.CHANGE_OK)
                    H.replace_file(w.policy_path, _policy(users, version))
                    # until the watcher thread reloaded it (after its debounce): SIGHUP
                    # reloads by the main thread and admin requests meanwhile
                    while not stop.is_set():
                        w.signal(signal.SIGHUP)
                        admin_ok(h, sock, "stats")
                        admin_ok(h, sock, "flush", "--user", "r%d" % (version % CLIENTS))
                        admin_ok(h, sock, "flush", "--user", "b%d" % (version % CLIENTS))
                        flush_epoch[0] += 1
                        admin_ok(h, sock, "flush")
                        flush_epoch[0] += 1
                        # the same values again: Redis still sends the invalidation, and the
                        # tracking thread drops what the workers cached from these keys
                        u = version % CLIENTS
                        r.hset("mqtt_acl:r%d" % u, {"r/%d" % u: "publish"})
                        r.hset("mqtt_user:r%d" % u, {"password_hash": sha_hex("sha256", "s" +
                                                                            rpw[u]), "salt": "s"})
                        observe.scrape(mport)  # the endpoint's thread reads every counter
                        st, _ = observe.http(mport, "/readyz")
                        ensure(st == 200, "/readyz: HTTP %d with Redis up" % st)
                        if os.path.exists(declog):  # rotation: the writer thread reopens
                            os.rename(declog, "%s.%d" % (declog, counts["admin"]))
                            w.signal(signal.SIGUSR1)
                        with lock:
                            counts["admin"] += 1
                        if w.count(H.CHANGE_OK) > changes:
                            break
                        stop.wait(0.05)  # pacing: a reload per round, not a storm of them
            except Exception as e:  # noqa: BLE001
                record(False, "control: %s: %s" % (type(e).__name__, e))

        def enough():
            with lock:
                done = min(rounds) >= MIN_ROUNDS and counts["admin"] >= MIN_ADMIN
            return (done and w.count(H.SIGHUP_OK) >= MIN_RELOADS
                    and w.count(H.CHANGE_OK) >= MIN_WATCHED)

        with s.check("threads_every_answer_right_under_reloads_flushes_and_churn"):
            reloads0 = w.count(H.SIGHUP_OK)
            ths = [threading.Thread(target=client, args=(i,), daemon=True)
                   for i in range(CLIENTS)]
            ths += [threading.Thread(target=churn, daemon=True),
                    threading.Thread(target=control, daemon=True)]
            t0 = time.monotonic()
            for t in ths:
                t.start()
            try:
                while not enough() and not errors and w.alive():
                    if time.monotonic() - t0 > LOAD_DEADLINE:
                        break
                    time.sleep(0.05)
            finally:
                stop.set()
                for t in ths:
                    t.join(H.CALL_TIMEOUT + 10)
            secs = time.monotonic() - t0
            ensure(w.alive(), "warden died\n%s" % H.tail(w.log()))
            ensure(not any(t.is_alive() for t in ths), "load threads still running")
            ensure(not errors, "%d wrong answers of %d calls (first ones):\n%s" % (
                len(errors) + counts["more"], counts["calls"], "\n".join(errors)))
            reloads = w.count(H.SIGHUP_OK) - reloads0
            ensure(enough(), "not enough done within %gs: rounds %s, admin %d, SIGHUP "
                   "reloads %d, watcher reloads %d" % (LOAD_DEADLINE, rounds, counts["admin"],
                                                       reloads, w.count(H.CHANGE_OK)))
            ensure(w.count(H.SIGHUP_FAIL) == 0 and w.count(H.CHANGE_FAIL) == 0,
                   "a reload failed\n%s" % H.tail(w.log()))
            print("  [threads] %.1f s: %d calls (%d session calls a flush overlapped), %d "
                  "new connections, %d SIGHUP reloads, %d watcher reloads, %d admin rounds" % (
                      secs, counts["calls"], counts["uncertain"], counts["churn"], reloads,
                      w.count(H.CHANGE_OK), counts["admin"]), flush=True)
