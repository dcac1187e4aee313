#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench/inval_probe.py: how long after a write in Redis every warden replica answers the
new decision (cache_invalidation tracking). Run by bench/invalidation.sh, which starts the
replicas and Redis; results in bench/stores-results.md.

One poller thread per replica, each with its own gRPC channel (grpcio, raw bytes in and out:
the requests are serialized once), calls the replica in a tight closed loop and records the
decision of every reply. The main thread flips one user's state in Redis, in two series:

  password  HSET mqtt_user:USER password_hash sha256(salt || pw) or sha256(salt || other):
            the pollers authenticate USER with pw: ALLOW, DENY, ALLOW, ...
  acl       HSET / HDEL mqtt_acl:USER inv/topic publish (another rule stays, so the key
            stays): the pollers authorize publish inv/topic: ALLOW, DENY, ...

Before each flip every poller must have had WARM consecutive replies with the current
decision (so each replica answers it from its cache: check the cache hit counters the
script prints). t0 is taken just before the write is sent; a replica's latency is the
receive time of its first reply with the new decision, minus t0; the iteration's latency is
the slowest replica's. The resolution is one poll call (its median duration is printed).
A replica that does not change within TIMEOUT s counts as a miss (cache_ttl is 1 h in the
script, so only an invalidation can change the answer).

Output: one TSV line per flip in --tsv (iteration, series, direction, one column per
replica, all, in ms) and a summary on stdout.
"""
import argparse
import hashlib
import os
import socket
import sys
import threading
import time

ALLOW = b"\x08\x02\x18\x01"  # STOP_AND_RETURN + bool_result=true
DENY = b"\x08\x02\x18\x00"  # STOP_AND_RETURN + bool_result=false


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Redis:
    """A minimal RESP client: one command at a time; replies read as lines (simple types
    and integers only, which is all this script sends for)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")

    def send(self, *args):
        self.s.sendall(resp(*args))

    def reply(self):
        line = self.f.readline()
        if line[:1] == b"-":
            raise RuntimeError(line.decode().strip())
        return line.strip()

    def cmd(self, *args):
        self.send(*args)
        return self.reply()


class Poller(threading.Thread):
    def __init__(self, addr, pb):
        super().__init__(daemon=True)
        import grpc
        self.ch = grpc.insecure_channel(addr, options=[("grpc.use_local_subchannel_pool", 1)])
        self.calls = {
            "password": self.ch.unary_unary("/emqx.exhook.v2.HookProvider/OnClientAuthenticate"),
            "acl": self.ch.unary_unary("/emqx.exhook.v2.HookProvider/OnClientAuthorize"),
        }
        self.pb = pb
        self.cv = threading.Condition()
        self.series = None
        self.req = None
        self.last = None  # decision of the last reply
        self.run_len = 0  # consecutive replies with that decision
        self.want = None  # decision awaited after a flip
        self.t0 = 0.0
        self.seen = None  # receive time of the first reply == want after t0
        self.durations = []
        self.errors = 0
        self.stop = False

    def set_series(self, series, req):
        with self.cv:
            self.series, self.req = series, req
            self.last, self.run_len = None, 0

    def run(self):
        while not self.stop:
            with self.cv:
                call, req = self.calls.get(self.series), self.req
            if call is None:
                time.sleep(0.001)
                continue
            a = time.perf_counter()
            try:
                raw = call(req, timeout=5)
            except Exception:  # counted; a bench never hides failed calls
                raw = None
                self.errors += 1
            b = time.perf_counter()
            if len(self.durations) < 200000:
                self.durations.append(b - a)
            with self.cv:
                if raw == self.last:
                    self.run_len += 1
                else:
                    self.last, self.run_len = raw, 1
                if self.want is not None and self.seen is None and raw == self.want and b > self.t0:
                    self.seen = b
                self.cv.notify_all()

    def wait(self, pred, timeout):
        end = time.perf_counter() + timeout
        with self.cv:
            while not pred():
                left = end - time.perf_counter()
                if left <= 0:
                    return False
                self.cv.wait(left)
        return True


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def summary(label, xs):
    if not xs:
        return "%-28s n=0" % label
    return "%-28s n=%-4d p50=%7.3f p90=%7.3f p99=%7.3f max=%7.3f ms" % (
        label, len(xs), pct(xs, 50), pct(xs, 90), pct(xs, 99), max(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gen", required=True, help="directory of exhook_pb2.py")
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--replicas", required=True, help="host:port,host:port,...")
    ap.add_argument("--iter", type=int, default=200, help="flips in all (half per series)")
    ap.add_argument("--warm", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--user", default="inv-user")
    ap.add_argument("--tsv", required=True)
    a = ap.parse_args()
    sys.path.insert(0, a.gen)
    import exhook_pb2 as pb

    r = Redis(a.redis_port)
    salt, pw = "inv-salt", "inv-pw"
    good = hashlib.sha256((salt + pw).encode()).hexdigest()
    bad = hashlib.sha256((salt + "not-" + pw).encode()).hexdigest()
    ukey, akey = "mqtt_user:" + a.user, "mqtt_acl:" + a.user
    r.cmd("DEL", ukey, akey)
    r.cmd("HSET", ukey, "password_hash", good, "salt", salt)
    r.cmd("HSET", akey, "inv/other", "publish", "inv/topic", "publish")

    meta = pb.RequestMeta(node="emqx@bench", version="5.8.11", sysdescr="EMQX",
                          cluster_name="bench")

    def ci(pwd=""):
        return pb.ClientInfo(node="emqx@bench", clientid="inv-client", username=a.user,
                             password=pwd, peerhost="127.0.0.1", sockport=1883,
                             protocol="mqtt", mountpoint="", peerport=40000)
    reqs = {
        "password": pb.ClientAuthenticateRequest(clientinfo=ci(pw), result=False,
                                                 meta=meta).SerializeToString(),
        "acl": pb.ClientAuthorizeRequest(clientinfo=ci(), type=pb.ClientAuthorizeRequest.PUBLISH,
                                         topic="inv/topic", result=True,
                                         meta=meta).SerializeToString(),
    }
    writes = {  # (series, new decision) -> the Redis command
        ("password", DENY): ("HSET", ukey, "password_hash", bad),
        ("password", ALLOW): ("HSET", ukey, "password_hash", good),
        ("acl", DENY): ("HDEL", akey, "inv/topic"),
        ("acl", ALLOW): ("HSET", akey, "inv/topic", "publish"),
    }
    pollers = [Poller(x, pb) for x in a.replicas.split(",")]
    for p in pollers:
        p.start()

    rows, lat, misses = [], {}, 0
    half = a.iter // 2
    with open(a.tsv, "w") as out:
        out.write("iter\tseries\tdirection\t%s\tall_ms\n" % "\t".join(
            "r%d_ms" % (i + 1) for i in range(len(pollers))))
        n = 0
        for series in ("password", "acl"):
            cur = ALLOW
            for p in pollers:
                p.set_series(series, reqs[series])
            for _ in range(half if series == "password" else a.iter - half):
                for p in pollers:
                    if not p.wait(lambda p=p: p.last == cur and p.run_len >= a.warm, a.timeout):
                        sys.exit("replica %s never answered %s (%s series): is it up?" % (
                            p.ch, "ALLOW" if cur == ALLOW else "DENY", series))
                new = DENY if cur == ALLOW else ALLOW
                for p in pollers:
                    with p.cv:
                        p.want, p.seen = new, None
                t0 = time.perf_counter()
                for p in pollers:
                    with p.cv:
                        p.t0 = t0
                r.send(*writes[(series, new)])
                r.reply()
                per = []
                for p in pollers:
                    ok = p.wait(lambda p=p: p.seen is not None, a.timeout)
                    per.append((p.seen - t0) * 1000 if ok else float("inf"))
                    misses += 0 if ok else 1
                for p in pollers:
                    with p.cv:
                        p.want = None
                direction = "revoke" if new == DENY else "grant"
                n += 1
                out.write("%d\t%s\t%s\t%s\t%.3f\n" % (n, series, direction,
                                                      "\t".join("%.3f" % x for x in per), max(per)))
                lat.setdefault((series, direction), []).append(max(per))
                lat.setdefault(("all", ""), []).append(max(per))
                for i, x in enumerate(per):
                    lat.setdefault(("replica", i), []).append(x)
                rows.append(per)
                cur = new
    for p in pollers:
        p.stop = True
    for p in pollers:
        p.join(10)
    print(summary("every replica, all flips", lat[("all", "")]))
    for d in ("revoke", "grant"):
        print(summary("  %s (both series)" % d,
                      lat.get(("password", d), []) + lat.get(("acl", d), [])))
    for s in ("password", "acl"):
        for d in ("revoke", "grant"):
            print(summary("  %s %s" % (s, d), lat.get((s, d), [])))
    for i in range(len(pollers)):
        print(summary("  replica %d alone" % (i + 1), lat[("replica", i)]))
    polls = [x * 1000 for p in pollers for x in p.durations]
    print("poll call (resolution): p50=%.3f p90=%.3f ms over %d calls; failed calls %d; "
          "replicas that missed a flip (%gs): %d" % (
              pct(polls, 50), pct(polls, 90), len(polls), sum(p.errors for p in pollers),
              a.timeout, misses))
    os._exit(0 if misses == 0 else 1)  # grpc's threads: no slow interpreter teardown


if __name__ == "__main__":
    main()
