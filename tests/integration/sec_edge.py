# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, the edge of the process (issue 8): what one request or one
careless configuration could do to the daemon itself.

- compressed requests: a gzip/deflate bomb is refused with UNIMPLEMENTED before anything is
  inflated (warden's peak RSS, VmHWM in /proc/PID/status, stays flat) and the server keeps
  serving;
- the receive limit (`max_message_size`, `auto` by default: derived from the hooks): an
  oversize uncompressed request gets RESOURCE_EXHAUSTED and the server keeps serving;
- core dumps: the daemon is not dumpable and its RLIMIT_CORE is 0 unless
  `allow_core_dumps on`;
- the embedded demo policy (demo/demo) is served only on a loopback `listen`.

Loaded by run.py (`sec_edge.register(scenario)`); every scenario is named edge_*, so
`run.py --only edge_` runs them all. Nothing waits by a fixed sleep.
"""
import gzip
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib

import grpc

import harness as H
from harness import ALLOW_RAW, SC, CheckFailed, Warden, ensure

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`
NOBODY = 65534
NGHTTP = "/usr/bin/nghttp"
# A request that inflates to this many bytes travels as ~65 KB of gzip: below any receive
# limit, so only refusing compression (not the size limit) keeps it out of memory.
BOMB_INFLATED = 64 << 20
# Peak RSS growth allowed while the bombs are refused: far below one inflated bomb, far
# above the noise of a few refused calls.
RSS_SLACK_KB = 16 << 10



def proc_status(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM), as an int."""
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"^%s:\s+(\d+) kB$" % field, f.read(), re.M)
    ensure(m, "no %s in /proc/%d/status" % (field, pid))
    return int(m.group(1))


def core_limit(pid):
    """(soft, hard) of "Max core file size" in /proc/PID/limits, as strings."""
    with open("/proc/%d/limits" % pid) as f:
        m = re.search(r"^Max core file size\s+(\S+)\s+(\S+)", f.read(), re.M)
    ensure(m, "no core size line in /proc/%d/limits" % pid)
    return m.group(1), m.group(2)


def authn_demo(ch, what):
    raw = H.raw_call(ch, H.path("OnClientAuthenticate"),
                     H.authn_req("demo", "demo").SerializeToString())
    H.expect_raw(raw, ALLOW_RAW, what)


def grpc_frame(flag, data):
    """One gRPC length-prefixed message: the compressed flag, the length, the bytes."""
    return struct.pack(">BI", flag, len(data)) + data


def nghttp_call(port, path, encoding, body, d):
    """A raw h2c request (nghttp, prior knowledge) with our own grpc-encoding header and
    message bytes; returns (grpc-status, grpc-message) from the trailers."""
    f = os.path.join(d, "body")
    with open(f, "wb") as fh:
        fh.write(body)
    cmd = [NGHTTP, "-v", "-H", "content-type: application/grpc", "-H", "te: trailers",
           "-H", "grpc-encoding: " + encoding, "-d", f,
           "http://127.0.0.1:%d%s" % (port, path)]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=H.CALL_TIMEOUT)
    out = r.stdout.decode("utf-8", "replace")
    st = re.search(r"recv \(stream_id=\d+\) grpc-status: (\d+)", out)
    msg = re.search(r"recv \(stream_id=\d+\) grpc-message: (.*)", out)
    ensure(st, "nghttp: no grpc-status in the reply (exit %d):\n%s" % (r.returncode,
                                                                        H.tail(out)))
    return int(st.group(1)), (msg.group(1).strip() if msg else "")


# ====================================================================== compressed requests

@_scenario
def edge_compressed_requests(s, h):
    """EMQX never compresses ExHook calls. A gzip bomb (~65 KB on the wire, 64 MiB inflated)
    used to be inflated in full before the size check: gRPC answered RESOURCE_EXHAUSTED
    after warden's RSS had grown by the whole bomb, and kept most of it."""
    big = H.authn_req("demo", "x" * BOMB_INFLATED).SerializeToString()
    small = H.authn_req("demo", "demo").SerializeToString()
    p = H.path("OnClientAuthenticate")
    with Warden(h, name="edge-gzip") as w:
        pid = w.proc.pid
        with H.channel(w.addr) as ch:
            authn_demo(ch, "uncompressed call before the bombs")
            hwm0 = proc_status(pid, "VmHWM")
            with s.check("edge_gzip_request_refused_unimplemented"):
                for what, req in (("64 MiB bomb", big), ("small request", small)):
                    for alg in (grpc.Compression.Gzip, grpc.Compression.Deflate):
                        try:
                            ch.unary_unary(p)(req, timeout=H.CALL_TIMEOUT, compression=alg)
                            raise CheckFailed("%s, %s: answered OK" % (what, alg))
                        except grpc.RpcError as e:
                            ensure(e.code() == SC.UNIMPLEMENTED,
                                   "%s, %s: got %s (%s), want UNIMPLEMENTED" % (
                                       what, alg, e.code(), e.details()))
                            ensure("compression" in (e.details() or "").lower(),
                                   "%s, %s: details do not say why: %r" % (
                                       what, alg, e.details()))
            with s.check("edge_gzip_raw_h2_refused_unimplemented"):
                ensure(os.access(NGHTTP, os.X_OK), "%s is missing (nghttp2-client)" % NGHTTP)
                d = tempfile.mkdtemp(prefix="nghttp.", dir=h.tmp)
                cases = [("gzip", grpc_frame(1, gzip.compress(big))),
                         ("deflate", grpc_frame(1, zlib.compress(big))),
                         # compressed flag clear, gzip declared: still refused
                         ("gzip", grpc_frame(0, small))]
                for enc, body in cases:
                    st, msg = nghttp_call(w.port, p, enc, body, d)
                    ensure(st == 12, "grpc-encoding %s, %d bytes: grpc-status %d (%s), want 12 "
                           "(UNIMPLEMENTED)" % (enc, len(body), st, msg))
                # an unknown encoding is not inflated either: every encoding but identity
                # is refused at the headers (UNIMPLEMENTED, as grpc/doc/compression.md says)
                st, msg = nghttp_call(w.port, p, "snappy",
                                      grpc_frame(1, gzip.compress(big)), d)
                ensure(st == 12, "grpc-encoding snappy: grpc-status %d (%s), want 12 "
                       "(UNIMPLEMENTED)" % (st, msg))
            with s.check("edge_gzip_bombs_leave_memory_flat"):
                hwm1 = proc_status(pid, "VmHWM")
                ensure(hwm1 - hwm0 < RSS_SLACK_KB,
                       "peak RSS grew by %d kB while refusing 64 MiB bombs (allowed %d kB): "
                       "the bomb was inflated" % (hwm1 - hwm0, RSS_SLACK_KB))
            with s.check("edge_gzip_server_keeps_serving"):
                ensure(w.alive(), "warden exited:\n%s" % H.tail(w.log()))
                authn_demo(ch, "uncompressed call after the bombs")


# ====================================================================== receive limit

def limit_line(w):
    m = re.search(r"server: requests up to (\d+) bytes", w.log())
    ensure(m, "no 'requests up to N bytes' line in the log:\n%s" % H.tail(w.log()))
    return int(m.group(1))


@_scenario
def edge_receive_limit(s, h):
    authn = H.path("OnClientAuthenticate")
    authz = H.path("OnClientAuthorize")
    publish = H.path("OnMessagePublish")
    # the default hooks carry no MQTT payloads: 256 KiB, enough for every MQTT string at
    # its 65535-byte maximum
    with Warden(h, name="edge-limit-auth") as w, H.channel(w.addr) as ch:
        with s.check("edge_limit_auto_is_small_for_auth_hooks"):
            ensure(limit_line(w) == 256 << 10, "limit %d, want 262144" % limit_line(w))
        with s.check("edge_limit_oversize_request_resource_exhausted"):
            H.expect_code(ch, authn,
                          H.authn_req("demo", "p" * (300 << 10)).SerializeToString(),
                          SC.RESOURCE_EXHAUSTED, "authenticate with a 300 KiB password")
            H.expect_code(ch, authz, H.authz_req(topic="t/" + "a" * (300 << 10))
                          .SerializeToString(), SC.RESOURCE_EXHAUSTED,
                          "authorize with a 300 KiB topic")
            ensure(w.alive(), "warden exited:\n%s" % H.tail(w.log()))
            authn_demo(ch, "a normal call after the oversize ones")
        with s.check("edge_limit_mqtt_maximum_strings_still_fit"):
            m = 65535
            req = H.authn_req("u" * m, "p" * m, clientid="c" * m).SerializeToString()
            code, _, details = H.call_status(ch, authn, req)
            ensure(code == SC.OK, "clientid, username and password of 65535 bytes each "
                   "(%d bytes): %s (%s), want an answer" % (len(req), code, details))
    # a message hook carries payloads: EMQX's default max_packet_size (1 MB) fits
    with Warden(h, name="edge-limit-msg",
                args=["--hooks", "client.authenticate message.publish"]) as w, \
            H.channel(w.addr) as ch:
        with s.check("edge_limit_auto_is_packet_sized_for_message_hooks"):
            ensure(limit_line(w) == (1 << 20) + (256 << 10), "limit %d" % limit_line(w))
            ok = H.publish_req(H.message(payload=b"m" * (1 << 20))).SerializeToString()
            code, _, details = H.call_status(ch, publish, ok)
            ensure(code == SC.OK, "publish of a 1 MiB payload: %s (%s)" % (code, details))
            H.expect_code(ch, publish, H.publish_req(H.message(payload=b"m" * (3 << 19)))
                          .SerializeToString(), SC.RESOURCE_EXHAUSTED, "1.5 MiB payload")
            authn_demo(ch, "a normal call after the oversize one")
    # set explicitly: wins over the hooks
    with Warden(h, name="edge-limit-set", args=["--set", "max_message_size=64KiB",
                                                "--hooks", "message.publish"]) as w, \
            H.channel(w.addr) as ch:
        with s.check("edge_limit_max_message_size_directive"):
            ensure(limit_line(w) == 65536, "limit %d, want 65536" % limit_line(w))
            H.expect_code(ch, publish, H.publish_req(H.message(payload=b"m" * (80 << 10)))
                          .SerializeToString(), SC.RESOURCE_EXHAUSTED, "80 KiB payload")
            code, _, details = H.call_status(ch, publish, H.publish_req(
                H.message(payload=b"m" * (40 << 10))).SerializeToString())
            ensure(code == SC.OK, "40 KiB payload: %s (%s)" % (code, details))


# ====================================================================== core dumps

class _WardenAs(Warden):
    """A warden started as another user (nobody when the suite runs as root), from a copy of
    the binary that user can read: /proc/PID/status belongs to the process's user only while
    the process is dumpable, and to root once it is not (PR_SET_DUMPABLE 0), which is how the
    test sees the flag from outside."""

    def __init__(self, h, exe, uid, **kw):
        super().__init__(h, **kw)
        self.exe, self.uid = exe, uid

    def cmd(self):
        return [self.exe] + super().cmd()[1:]

    def spawn(self):
        kw = {}
        if self.uid != os.getuid():
            kw = dict(user=self.uid, group=self.uid, extra_groups=[])
        with open(self.log_path, "wb") as err, open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(self.cmd(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, env=H.WARDEN_ENV, close_fds=True, **kw)
        with H._ALL_PROCS_LOCK:
            H._ALL_PROCS.append(self.proc)
        return self


@_scenario
def edge_core_dumps(s, h):
    uid = NOBODY if os.getuid() == 0 else os.getuid()
    d = tempfile.mkdtemp(prefix="warden-edge-bin.")  # not under h.tmp: that is 0700
    try:
        os.chmod(d, 0o755)
        exe = os.path.join(d, "warden")
        shutil.copy(h.warden, exe)
        os.chmod(exe, 0o755)
        with s.check("edge_core_dumps_off_by_default"):
            with _WardenAs(h, exe, uid, name="edge-core-off") as w:
                pid = w.proc.pid
                owner = os.stat("/proc/%d/status" % pid).st_uid
                ensure(owner == 0, "/proc/%d/status is owned by uid %d, want 0: the process is "
                       "dumpable (runs as uid %d)" % (pid, owner, uid))
                ensure(core_limit(pid) == ("0", "0"), "RLIMIT_CORE is %s/%s, want 0/0" %
                       core_limit(pid))
                authn_demo_ok(w)
        with s.check("edge_core_dumps_allowed_by_directive"):
            with _WardenAs(h, exe, uid, name="edge-core-on",
                           args=["--set", "allow_core_dumps=on"]) as w:
                pid = w.proc.pid
                owner = os.stat("/proc/%d/status" % pid).st_uid
                ensure(owner == uid, "/proc/%d/status is owned by uid %d, want %d: not dumpable" % (
                    pid, owner, uid))
                with open("/proc/self/limits") as f:
                    mine = re.search(r"^Max core file size\s+(\S+)\s+(\S+)", f.read(), re.M)
                ensure(core_limit(pid) == mine.groups(), "RLIMIT_CORE is %s/%s, want the "
                       "limit it started with, %s/%s" % (core_limit(pid) + mine.groups()))
                ensure(w.count(r"WARN +main: allow_core_dumps is on") == 1,
                       "no warning in the log:\n%s" % H.tail(w.log()))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def authn_demo_ok(w):
    with H.channel(w.addr) as ch:
        authn_demo(ch, "serves while non-dumpable")


# ====================================================================== demo policy

DEMO_MSG = "no `policy` is set"


@_scenario
def edge_demo_policy_loopback_only(s, h):
    policy = H.write_file(h, "p.policy", 'user "alice" "plain:pw"\nauthn users\n'
                          "authn default deny\nauthz default deny\n")
    for listen in ("0.0.0.0:0", "[::]:0", "192.0.2.1:0"):
        with s.check("edge_demo_refused_on_%s" % listen):
            for extra in ([], ["--check-config"]):
                rc, out, err = H.run_warden(h, ["--listen", listen] + extra, timeout=10)
                ensure(rc == 3, "--listen %s %s: exit %s, want 3\n%s" % (
                    listen, " ".join(extra), rc, H.tail(err)))
                ensure(DEMO_MSG in err and "set `policy FILE`" in err,
                       "--listen %s %s: the message does not say to set `policy`:\n%s" % (
                           listen, " ".join(extra), H.tail(err)))
                ensure("configuration ok" not in out, "--check-config said ok")
    with s.check("edge_demo_refused_from_a_config_file"):
        conf = H.write_file(h, "w.conf", "listen 0.0.0.0:0\n")
        for extra in ([], ["--check-config"]):
            rc, out, err = H.run_warden(h, ["--config", conf] + extra, timeout=10)
            ensure(rc == 3 and DEMO_MSG in err, "%s: exit %s\n%s" % (extra, rc, H.tail(err)))
            ensure(conf in err, "the message does not name the file:\n%s" % H.tail(err))
    with s.check("edge_demo_any_listen_with_a_policy"):
        rc, out, err = H.run_warden(h, ["--listen", "0.0.0.0:0", "--set", "policy=" + policy,
                                        "--check-config"])
        ensure(rc == 0 and "configuration ok" in out, "exit %s\n%s" % (rc, H.tail(err)))
    with s.check("edge_demo_loopback_listens_check_ok"):
        for listen in ("127.0.0.1:0", "[::1]:0", "localhost:0"):
            rc, out, err = H.run_warden(h, ["--listen", listen, "--check-config"])
            ensure(rc == 0 and "configuration ok" in out, "--listen %s: exit %s\n%s" % (
                listen, rc, H.tail(err)))
    with s.check("edge_demo_served_on_loopback"):
        with Warden(h, name="edge-demo") as w, H.channel(w.addr) as ch:
            authn_demo(ch, "demo/demo on 127.0.0.1")
