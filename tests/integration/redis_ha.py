# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, Redis high availability through Sentinel (issue 11 item 3,
`redis_sentinel` / `redis_sentinel_master`, docs/redis.md "High availability, Redis Cluster,
TLS").

Everything real, on loopback high ports, in the suite's temp dir: a Redis master and one
replica (requirepass for the default user, which replication and the sentinels use; a Redis 6
ACL user `warden` with only the commands warden sends, ROLE included), THREE sentinels
(`redis-server CONF --sentinel`, requirepass of their own, `down-after-milliseconds` 1000,
`failover-timeout` 2000), and three warden replicas on transport h2 configured with
`redis_sentinel` (the first one's list starts with an address where no sentinel listens).
Wardens run with `cache off`, so every call reads Redis and a failover shows in the calls.

- warden finds the master (readiness says so, the metric says it is known), authenticates and
  authorizes through the ACL user, and writes its sessions on the master;
- SENTINEL FAILOVER, then (separately) SIGKILL of the master, each under a bounded load (a
  thread calling every replica in turn, for a bounded count): every failed call is counted and
  reported with the window it fell in (`measure:` lines: a benchmark figure, not asserted).
  Asserted is only what is deterministic: no call with a wrong password is ever answered ALLOW;
  every replica moves every connection to the new master (the old one has no `warden` client
  left, the new one has them), answers correctly from it, and its session writes land on it;
- a wrong master name stops the start with a message that names it.

On main (no Sentinel support) the wardens refuse `redis_sentinel` as an unknown directive and
every check fails at the start. Nothing waits by a fixed sleep: every wait polls a condition
with a deadline.
"""
import os
import re
import threading
import time

import grpc

import faults
import harness as H
from harness import ALLOW_RAW, DENY_RAW, PUBLISH, Warden, ensure
import stores as S
from observe import free_port, http, scrape, val

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`
H2 = ["--set", "transport=h2"]
MASTER = "wd-ha"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 2000
# a failover needs down-after + election (+ 2 x failover-timeout after another); a sentinel
# starved of CPU for 2 s enters TILT mode and does nothing for 30 s (a loaded machine, an
# ASan build next door): two TILTs and a failed election fit. Polls end as soon as their
# condition holds: a generous deadline costs nothing when things go well.
POLL = 120.0
PACE = 0.002  # the load's pace: at most one call per 2 ms (a load, not a stress test)
LOAD_CALLS = 1000000  # the load's bounds, whatever happens: calls and seconds
LOAD_SECS = 300.0
USER, TOPIC = "ha-user", "ha/t"
LOAD_USER = "ha-load"  # the load's user: its password never changes
# what warden sends: lookups, sessions (GET/SET/EVALSHA/EVAL), ROLE (Sentinel), PING (probe)
WARDEN_ACL = ["on", "~*", "resetchannels", "-@all", "+hmget", "+hgetall", "+get", "+set",
              "+del", "+evalsha", "+eval", "+role", "+ping", "+client|id", "+client|tracking",
              "+subscribe"]

# `when superuser` makes warden keep sessions (what authenticate learned), shared in Redis
POLICY = ("authn redis\n"
          "authn default deny\n"
          "allow all \"#\" when superuser\n"
          "rules redis\n"
          "authz default deny\n")


class Node(S.Redis):
    """A data node: requirepass for the default user (replication, sentinels), masterauth,
    optionally a replica of `of` (a port)."""

    def __init__(self, h, admin_pw, of=None):
        super().__init__(h, password=admin_pw)
        self.of = of

    def _argv(self, port):
        a = super()._argv(port) + ["--masterauth", self.password]
        if self.of:
            a += ["--replicaof", "127.0.0.1", str(self.of)]
        return a


class Sentinel(S.Redis):
    """One sentinel (`redis-server CONF --sentinel`) monitoring MASTER at master_port."""

    def __init__(self, h, master_port, admin_pw, password):
        super().__init__(h, password=password)
        self.master_port = master_port
        self.admin_pw = admin_pw

    def _argv(self, port):
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\n" % (port, self.dir))
            f.write("requirepass %s\n" % self.password)
            f.write("sentinel monitor %s 127.0.0.1 %d 2\n" % (MASTER, self.master_port))
            f.write("sentinel auth-pass %s %s\n" % (MASTER, self.admin_pw))
            f.write("sentinel down-after-milliseconds %s %d\n" % (MASTER, DOWN_AFTER_MS))
            f.write("sentinel failover-timeout %s %d\n" % (MASTER, FAILOVER_TIMEOUT_MS))
            f.write("sentinel parallel-syncs %s 1\n" % MASTER)
        return [S.REDIS_SERVER, conf, "--sentinel", "--daemonize", "no", "--logfile", ""]

    def master_port_now(self):
        rep = self.cmd("SENTINEL", "get-master-addr-by-name", MASTER)
        return int(rep[1]) if isinstance(rep, list) and len(rep) == 2 else None


def poll(fn, what, timeout=POLL):
    """fn() until true, with a deadline (faults.py's poller)."""
    return faults._poll(fn, timeout, what)


def q(node, *args):
    """A command on a node's admin connection, reconnecting once: Sentinel kills the normal
    clients of a master it demotes, the test's own included."""
    try:
        return node.cmd(*args)
    except (OSError, S.RedisError):
        if node.conn is not None:
            node.conn.close()
            node.conn = None
        return node.cmd(*args)


def warden_clients(node):
    """How many clients of the ACL user `warden` a data node has (0 when it is down)."""
    if node.proc is None or node.proc.poll() is not None:
        return 0
    out = q(node, "CLIENT", "LIST", "TYPE", "normal").decode()
    return len(re.findall(r" user=warden ", out))


class Cluster:
    """The master, its replica and three sentinels, with the warden ACL user on both nodes."""

    def __init__(self, env):
        self.env = env
        self.admin_pw = env.secret("adminpw")
        self.warden_pw = env.secret("wardenpw")
        self.sent_pw = env.secret("sentpw")
        self.user_pw = env.secret("userpw")
        a = Node(env.h, self.admin_pw)
        env.redises.append(a)
        a.start()
        b = Node(env.h, self.admin_pw, of=a.port)
        env.redises.append(b)
        b.start()
        self.nodes = {a.port: a, b.port: b}
        for n in self.nodes.values():
            n.cmd("ACL", "SETUSER", "warden", ">" + self.warden_pw, *WARDEN_ACL)
        self.set_user(a, self.user_pw)
        self.load_pw = env.secret("loadpw")
        q(a, "HSET", "mqtt_user:" + LOAD_USER, "password_hash", S.sha_hex("sha256", self.load_pw))
        poll(lambda: b.cmd("HGET", "mqtt_user:" + USER, "password_hash"), "replica in sync")
        self.sentinels = []
        for _ in range(3):
            s = Sentinel(env.h, a.port, self.admin_pw, self.sent_pw)
            env.redises.append(s)
            s.start()
            self.sentinels.append(s)
        # ready for a failover: every sentinel sees the replica and the two other sentinels
        for s in self.sentinels:
            poll(lambda: len(s.cmd("SENTINEL", "replicas", MASTER)) == 1 and
                 len(s.cmd("SENTINEL", "sentinels", MASTER)) == 2,
                 "sentinel on %d sees the replica and the other sentinels" % s.port)

    def set_user(self, node, pw):
        q(node, "HSET", "mqtt_user:" + USER, "password_hash", S.sha_hex("sha256", pw))
        q(node, "HSET", "mqtt_acl:" + USER, TOPIC, "publish")

    def master(self):
        """The node every sentinel names as the master; None while they disagree."""
        ports = set()
        for s in self.sentinels:
            try:
                ports.add(s.master_port_now())
            except (OSError, S.RedisError):
                ports.add(None)
        return self.nodes.get(ports.pop()) if len(ports) == 1 else None

    def lines(self, first=None):
        addrs = ["127.0.0.1:%d" % s.port for s in self.sentinels]
        if first:
            addrs.insert(0, first)
        return ["redis_sentinel " + " ".join(addrs),
                "redis_sentinel_master " + MASTER,
                "redis_sentinel_password " + self.sent_pw,
                "redis_username warden",
                "redis_password " + self.warden_pw]


def replica(env, name, lines):
    mport = free_port()
    p = H.write_file(env.h, "warden.policy", POLICY)
    cfg = "".join(ln + "\n" for ln in ["policy " + p, "log_level info", "workers 2",
                                       "cache off", "metrics_listen 127.0.0.1:%d" % mport] +
                  lines)
    w = Warden(env.h, cfg, args=H2, name=name)
    w.mport = mport
    env.wardens.append(w)
    return w.start()


def answers_right(ws, pw, what):
    e = S.Errs()
    for w in ws:
        with H.channel(w.addr) as ch:
            e.want(True, lambda: S.authn(ch, USER, pw, clientid="right-" + w.dir[-6:]),
                   "%s %s: right password" % (what, w.dir))
            e.want(False, lambda: S.authn(ch, USER, pw + "x"), "%s %s: wrong password" % (
                what, w.dir))
            e.want(True, lambda: S.authz(ch, TOPIC, PUBLISH, USER), "%s %s: ACL" % (what, w.dir))
            e.want(False, lambda: S.authz(ch, "other/t", PUBLISH, USER),
                   "%s %s: topic outside the ACL" % (what, w.dir))
    e.done()


class Load(threading.Thread):
    """Calls every replica in turn (right password, and every third call a wrong one) until
    stopped or LOAD_CALLS calls; counts what came back."""

    def __init__(self, ws, pw):
        super().__init__(daemon=True)
        self.ws, self.pw = ws, pw
        self.stop_ev = threading.Event()
        self.ok = self.failed = self.wrong_allow = self.calls = 0
        self.fail_times = []
        self.errors = []
        self.slowest = 0.0  # seconds: calls wait (within redis_timeout) for the new master

    def run(self):
        chans = [H.channel(w.addr) for w in self.ws]
        try:
            i = 0
            end = time.monotonic() + LOAD_SECS
            while (not self.stop_ev.is_set() and self.calls < LOAD_CALLS and
                   time.monotonic() < end):
                if self.stop_ev.wait(PACE):
                    break
                ch = chans[i % len(chans)]
                wrong = i % 3 == 2
                i += 1
                t = time.monotonic()
                try:
                    raw = S.authn(ch, LOAD_USER, self.pw + ("x" if wrong else ""),
                                  clientid="load-%d" % (i % 50))
                except grpc.RpcError as e:
                    raw = "RPC %s" % H._code(e)
                self.slowest = max(self.slowest, time.monotonic() - t)
                self.calls += 1
                if wrong:
                    if raw == ALLOW_RAW:
                        self.wrong_allow += 1
                elif raw == ALLOW_RAW:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.fail_times.append(time.monotonic())
                    if raw != DENY_RAW and len(self.errors) < 5:
                        self.errors.append(str(raw))
        finally:
            for c in chans:
                c.close()

    def wait_ok(self, n, what):
        start = self.ok
        poll(lambda: self.ok >= start + n or not self.is_alive(), what)

    def report(self, what, t0):
        win = (self.fail_times[-1] - self.fail_times[0]) * 1000 if self.fail_times else 0.0
        first = (self.fail_times[0] - t0) * 1000 if self.fail_times else 0.0
        print("  measure: %s under load: %d calls, %d right-password calls failed "
              "(redis_on_error deny) in a window of %.0f ms starting %.0f ms after the "
              "trigger; %d answered ALLOW; %d wrong-password calls answered ALLOW; slowest "
              "call %.0f ms (one call at a time: a call that waits delays the next)%s" % (
                  what, self.calls, self.failed, win, first, self.ok, self.wrong_allow,
                  self.slowest * 1000,
                  (" (non-DENY failures: %s)" % self.errors) if self.errors else ""))


def follow(cl, ws, old, n, what):
    """Every replica has moved to the new master (its n-th): metric, connections, answers,
    sessions."""
    new = poll(lambda: (lambda m: m if m is not None and m is not old else None)(cl.master()),
               "%s: the sentinels name a new master" % what)
    for w in ws:
        poll(lambda: val(scrape(w.mport), "warden_redis_sentinel_failovers_total") >= n and
             val(scrape(w.mport), "warden_redis_sentinel_master_known") == 1,
             "%s: %s follows the new master (metrics)" % (what, w.dir))
    answers_right(ws, cl.user_pw, what + ", on the new master")
    poll(lambda: warden_clients(old) == 0, "%s: no warden connection left on the old master"
         % what)
    poll(lambda: warden_clients(new) >= len(ws), "%s: the wardens are connected to the new "
         "master" % what)
    # writes land on the new master: a password changed there, and the sessions warden writes
    pw = cl.env.secret("userpw")
    cl.set_user(new, pw)
    cl.user_pw = pw
    answers_right(ws, pw, what + ", after a write on the new master")
    for w in ws:
        cid = "sess-%s-%s" % (what.split()[0], w.dir[-6:])
        with H.channel(w.addr) as ch:
            ensure(S.authn(ch, USER, pw, clientid=cid) == ALLOW_RAW, "%s: authenticate" % cid)
        poll(lambda: q(new, "EXISTS", "warden:session:" + cid) == 1,
             "%s: %s's session written on the new master" % (what, w.dir))
    return new


def under_load(cl, ws, master, n, what, trigger):
    """trigger() (the n-th failover) under the load; every replica follows; returns the new
    master. Reports the failed calls, asserts no wrong ALLOW."""
    load = Load(ws, cl.load_pw)
    load.start()
    load.wait_ok(30, "the load runs")
    t0 = time.monotonic()
    trigger()
    try:
        new = follow(cl, ws, master, n, what)
        load.wait_ok(30, "calls succeed after the failover")
    finally:
        load.stop_ev.set()
        load.join(30)
    load.report(what, t0)
    ensure(load.wrong_allow == 0, "%d wrong-password calls answered ALLOW" % load.wrong_allow)
    return new


@_scenario
def redis_ha_sentinel(s, h):
    with S.Env(s, h, "redis_ha_sentinel") as env:
        cl = Cluster(env)
        dead = "127.0.0.1:%d" % free_port()  # nobody listens there
        ws = [replica(env, "ha-1", cl.lines(first=dead)),
              replica(env, "ha-2", cl.lines()),
              replica(env, "ha-3", cl.lines())]
        master = poll(cl.master, "the sentinels agree on the master")

        with s.check("redis_ha_finds_the_master_through_the_sentinels"):
            for w in ws:
                st, body = http(w.mport, "/readyz")
                ensure(st == 200 and "redis: ok (Sentinel: 127.0.0.1:%d (master '%s'))" % (
                    master.port, MASTER) in body, "%s: /readyz %d %r" % (w.dir, st, body))
                ensure(val(scrape(w.mport), "warden_redis_sentinel_master_known") == 1,
                       "%s: master not known (metric)" % w.dir)

        with s.check("redis_ha_first_sentinel_down_still_works"):
            answers_right(ws[:1], cl.user_pw, "first sentinel down")
            ensure(val(scrape(ws[0].mport), "warden_redis_sentinel_errors_total") >= 1,
                   "the dead first sentinel was not counted as an error")

        with s.check("redis_ha_redis_acl_user_authenticates_and_authorizes"):
            answers_right(ws, cl.user_pw, "ACL user")
            ensure(warden_clients(master) >= len(ws), "the wardens do not use the ACL user "
                   "`warden` on the master")

        with s.check("redis_ha_sentinel_failover_under_load"):
            master = under_load(cl, ws, master, 1, "SENTINEL FAILOVER",
                                lambda: cl.sentinels[0].cmd("SENTINEL", "FAILOVER", MASTER))

        with s.check("redis_ha_master_killed_under_load"):
            master = poll(cl.master, "the sentinels agree on the master")
            # a write the replica has not received would be lost with the master (Redis
            # replicates asynchronously): the test waits for it, warden cannot
            other = [n for n in cl.nodes.values() if n is not master][0]
            want = S.sha_hex("sha256", cl.user_pw).encode()
            poll(lambda: q(other, "HGET", "mqtt_user:" + USER, "password_hash") == want,
                 "the replica has the last password")
            under_load(cl, ws, master, 2, "master SIGKILLed", master._kill)


@_scenario
def redis_ha_wrong_master_name(s, h):
    with S.Env(s, h, "redis_ha_wrong_master_name") as env:
        cl = Cluster(env)
        with s.check("redis_ha_wrong_master_name_stops_the_start"):
            lines = [ln if not ln.startswith("redis_sentinel_master ") else
                     "redis_sentinel_master no-such-master" for ln in cl.lines()]
            p = H.write_file(h, "warden.policy", POLICY)
            cfg = "".join(ln + "\n" for ln in ["policy " + p, "workers 1"] + lines)
            w = Warden(h, cfg, args=H2, name="ha-wrong")
            w.spawn()
            try:
                rc = w.wait(H.START_TIMEOUT)
            finally:
                w.stop()
            ensure(rc not in (None, 0), "exit status %s, want a failure" % rc)
            ensure("no sentinel knows master 'no-such-master'" in w.log(),
                   "the log does not name the master\n%s" % H.tail(w.log()))


@_scenario
def redis_ha_operator_mistakes(s, h):
    """What `--check-config` says for the set-up mistakes an operator makes with Sentinel: each
    named once, with what to fix (issue: a truncated +role hint, a `master:0` line)."""
    with S.Env(s, h, "redis_ha_operator_mistakes") as env:
        cl = Cluster(env)
        p = H.write_file(h, "warden.policy", POLICY)

        def check_config(name, lines):
            cfg = H.write_file(h, name, "".join(ln + "\n" for ln in ["policy " + p] + lines))
            return H.run_warden(h, ["--config", cfg, "--check-config"], timeout=30)

        with s.check("redis_ha_check_config_names_the_master_it_reached"):
            rc, out, err = check_config("ok.conf", cl.lines())
            master = poll(cl.master, "the sentinels agree on the master")
            want = "connected to 127.0.0.1:%d (master '%s', from Sentinel)" % (master.port, MASTER)
            ensure(rc == 0 and want in err, "exit %s, want 0 and %r\n%s" % (rc, want, H.tail(err)))

        with s.check("redis_ha_user_without_role_is_told_to_add_it"):
            # the set-up's ACL user of docs/redis.md, without +role, on both nodes
            acl = [a for a in WARDEN_ACL if a != "+role"]
            for n in cl.nodes.values():
                q(n, "ACL", "SETUSER", "norole", ">" + cl.warden_pw, *acl)
            lines = [ln if not ln.startswith("redis_username ") else "redis_username norole"
                     for ln in cl.lines()]
            rc, out, err = check_config("norole.conf", lines)
            ensure(rc == 0 and "ROLE refused (the user needs +role): NOPERM" in err,
                   "exit %s; the log does not say the user needs +role\n%s" % (rc, H.tail(err)))

        with s.check("redis_ha_no_sentinel_answering_is_said_once"):
            dead = ["127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port()]
            lines = ["redis_sentinel " + " ".join(dead)] + cl.lines()[1:]
            rc, out, err = check_config("dead.conf", lines)
            ensure(rc == 0 and "no master for '%s' yet" % MASTER in err,
                   "exit %s, want 0 and the Sentinel's reason\n%s" % (rc, H.tail(err)))
            ensure(err.count("requests that need Redis get") == 1 and ":0 now" not in err,
                   "the unreachable master is reported more than once, or as host:0\n%s" %
                   H.tail(err))

        with s.check("redis_ha_check_config_probes_every_sentinel"):
            # a typo in the LAST address: discovery stops at the first sentinel that answers;
            # the check asks every one and warns (exit 0)
            dead = "127.0.0.1:%d" % free_port()
            lines = [cl.lines()[0] + " " + dead] + cl.lines()[1:]
            rc, out, err = check_config("typo.conf", lines)
            ensure(rc == 0 and "sentinel %s does not answer" % dead in err,
                   "exit %s; the dead sentinel %s is not named\n%s" % (rc, dead, H.tail(err)))
            ensure(err.count("knows master '%s'" % MASTER) == 3,
                   "the three live sentinels are not each confirmed\n%s" % H.tail(err))

        with s.check("redis_ha_sentinel_auth_mistakes_name_the_directive"):
            # the sentinels have requirepass: none given, then a wrong one
            rc, out, err = check_config("nosentpw.conf", [
                ln for ln in cl.lines() if not ln.startswith("redis_sentinel_password ")])
            ensure(rc == 0 and "NOAUTH" in err and "(set redis_sentinel_password)" in err,
                   "exit %s; no NOAUTH hint\n%s" % (rc, H.tail(err)))
            rc, out, err = check_config("badsentpw.conf", [
                ln if not ln.startswith("redis_sentinel_password ") else
                "redis_sentinel_password " + cl.env.secret("wrong") for ln in cl.lines()])
            ensure(rc == 0 and "(check redis_sentinel_password" in err,
                   "exit %s; no WRONGPASS hint\n%s" % (rc, H.tail(err)))

        with s.check("redis_ha_promoted_node_refusing_auth_is_named"):
            # last: a failover. The ACL user exists on the master alone (the new-operator
            # mistake of docs/redis.md): the promoted replica refuses warden's AUTH
            old = poll(cl.master, "the sentinels agree on the master")
            pw = cl.env.secret("oldonlypw")
            q(old, "ACL", "SETUSER", "oldonly", ">" + pw, *WARDEN_ACL)
            lines = [ln for ln in cl.lines() if not ln.startswith(("redis_username ",
                                                                   "redis_password "))]
            w = replica(env, "ha-oldonly", lines + ["redis_username oldonly",
                                                    "redis_password " + pw])
            poll(lambda: val(scrape(w.mport), "warden_redis_sentinel_master_known") == 1,
                 "the warden knows the master")
            e0 = val(scrape(w.mport), "warden_redis_sentinel_errors_total")
            cl.sentinels[0].cmd("SENTINEL", "FAILOVER", MASTER)
            new = poll(lambda: (lambda m: m if m is not None and m is not old else None)(
                cl.master()), "the sentinels name a new master")
            want = "announced master 127.0.0.1:%d refused: AUTH: WRONGPASS" % new.port
            poll(lambda: want in http(w.mport, "/readyz")[1],
                 "/readyz names the refused master")
            st, body = http(w.mport, "/readyz")
            ensure(st == 503 and "redis: no master known" in body, "/readyz %d %r" % (st, body))
            m = scrape(w.mport)
            ensure(val(m, "warden_redis_sentinel_master_known") == 0,
                   "master_known is not 0 with no usable master")
            ensure(val(m, "warden_redis_sentinel_errors_total") > e0,
                   "the refused check is not counted as a Sentinel error")
            retry = [ln for ln in w.log().splitlines() if "(retrying quietly)" in ln]
            ensure(any(want in ln for ln in retry) and
                   not any("(master '" in ln for ln in retry),
                   "no retry line gives the reason\n%s" % H.tail(w.log()))
