# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, warden's own HTTP/2 transport (`transport h2`, issue 9): what
the wire can carry that EMQX never sends, checked with clients warden did not write.

- raw h2c requests through nghttp (nghttp2-client): missing te, wrong content-type, the
  compressed flag without grpc-encoding, an oversize length prefix, an unknown path, two
  messages in a unary call, an empty or truncated body, grpc-timeout garbage: each gets the
  status gRPC gives it, and the server keeps serving;
- h2load drives many unary calls over multiplexed streams;
- a hand-framed client (below: a few HTTP/2 frames, HPACK literals only) for what nghttp
  cannot send: a call whose request never ends is answered at its grpc-timeout, a burst
  of streams over the in-flight budget is answered RESOURCE_EXHAUSTED per stream without
  losing the connection;
- idle connections past max_connections under a low RLIMIT_NOFILE: the listener keeps
  accepting once they are gone (gRPC core 1.51 stopped accepting for good, CVE-2023-4785).

Every warden here says `transport h2` (the only transport since 0.2.0, spelled out as
configurations from the two-transport stage do). Loaded by run.py
(`sec_transport.register(scenario)`); scenarios are named transport_*. Nothing waits by a
fixed sleep: reads have deadlines, and conditions are polled.
"""
import os
import re
import socket
import struct
import subprocess
import tempfile
import time

import harness as H
from harness import ALLOW_RAW, SC, Warden, ensure

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`
NGHTTP = "/usr/bin/nghttp"
H2LOAD = "/usr/bin/h2load"
H2 = ["--set", "transport=h2"]


def grpc_frame(flag, data):
    return struct.pack(">BI", flag, len(data)) + data


def authn_demo(ch, what):
    H.expect_raw(H.raw_call(ch, H.path("OnClientAuthenticate"),
                            H.authn_req("demo", "demo").SerializeToString()), ALLOW_RAW, what)


def nghttp(port, path, body, d, headers=None):
    """One raw h2c request; returns (HTTP status, grpc-status or None, grpc-message)."""
    f = os.path.join(d, "body")
    with open(f, "wb") as fh:
        fh.write(body)
    if headers is None:
        headers = ["content-type: application/grpc", "te: trailers"]
    cmd = [NGHTTP, "-v", "-d", f]
    for hd in headers:
        cmd += ["-H", hd]
    cmd.append("http://127.0.0.1:%d%s" % (port, path))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=H.CALL_TIMEOUT)
    out = r.stdout.decode("utf-8", "replace")
    hs = re.search(r"recv \(stream_id=\d+\) :status: (\d+)", out)
    st = re.search(r"recv \(stream_id=\d+\) grpc-status: (\d+)", out)
    msg = re.search(r"recv \(stream_id=\d+\) grpc-message: (.*)", out)
    ensure(hs, "nghttp: no :status in the reply (exit %d):\n%s" % (r.returncode, H.tail(out)))
    return (int(hs.group(1)), int(st.group(1)) if st else None,
            msg.group(1).strip() if msg else "")


# ---------------------------------------------------------------- a hand-framed h2 client

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0, 1, 3, 4, 6, 7
END_STREAM, END_HEADERS, ACK = 1, 4, 1


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def hpack_literal(name, value):
    """Literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    def s(x):
        x = x.encode()
        assert len(x) < 127
        return bytes([len(x)]) + x
    return b"\x00" + s(name) + s(value)


def request_block(path, extra=()):
    hs = [(":method", "POST"), (":scheme", "http"), (":path", path),
          (":authority", "127.0.0.1"), ("content-type", "application/grpc"),
          ("te", "trailers")] + list(extra)
    return b"".join(hpack_literal(n, v) for n, v in hs)


class RawH2:
    """A TCP connection speaking just enough HTTP/2 to send odd requests and watch the
    frames that come back (their headers are not decoded: type, flags, stream, payload)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=H.CALL_TIMEOUT)
        self.buf = b""
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0))

    def send(self, data):
        self.sock.sendall(data)

    def next_frame(self, deadline):
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                return "eof"
            self.buf += chunk
        n = int.from_bytes(self.buf[:3], "big")
        f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF,
             self.buf[9:9 + n])
        self.buf = self.buf[9 + n:]
        if f[0] == SETTINGS and not f[1] & ACK:
            self.send(frame(SETTINGS, ACK, 0))
        return f

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------- scenarios

@_scenario
def transport_raw_requests(s, h):
    authn = H.path("OnClientAuthenticate")
    good = H.authn_req("demo", "demo").SerializeToString()
    with Warden(h, args=H2, name="tr-raw") as w, H.channel(w.addr) as ch:
        d = tempfile.mkdtemp(prefix="nghttp.", dir=h.tmp)
        with s.check("transport_raw_good_call_answered"):
            ensure(os.access(NGHTTP, os.X_OK), "%s is missing (nghttp2-client)" % NGHTTP)
            hs, st, msg = nghttp(w.port, authn, grpc_frame(0, good), d)
            ensure((hs, st) == (200, 0), "good call: :status %s grpc-status %s (%s)" % (
                hs, st, msg))
        cases = [
            ("missing te", authn, grpc_frame(0, good),
             ["content-type: application/grpc"], 200, 13),
            ("content-type text/plain", authn, grpc_frame(0, good),
             ["content-type: text/plain", "te: trailers"], 415, 13),
            ("compressed flag without grpc-encoding", authn, grpc_frame(1, good), None, 200, 13),
            ("length prefix of 4 GiB - 1", authn, b"\x00\xff\xff\xff\xff", None, 200, 8),
            ("unknown path", "/emqx.exhook.v2.HookProvider/OnNothing", grpc_frame(0, good),
             None, 200, 12),
            ("two messages in a unary call", authn, grpc_frame(0, good) * 2, None, 200, 13),
            ("no message", authn, b"", None, 200, 13),
            ("truncated message", authn, grpc_frame(0, good)[:-3], None, 200, 13),
            ("invalid flags byte", authn, grpc_frame(2, good), None, 200, 13),
        ] + [("grpc-timeout %r" % t, authn, grpc_frame(0, good),
              ["content-type: application/grpc", "te: trailers", "grpc-timeout: " + t], 200, 13)
             for t in ("1x", "123456789S", "+5S", "5", "S", "1.5S")]
        with s.check("transport_raw_bad_requests_get_grpc_statuses"):
            bad = []
            for what, p, body, headers, want_hs, want_st in cases:
                hs, st, msg = nghttp(w.port, p, body, d, headers)
                if (hs, st) != (want_hs, want_st):
                    bad.append("%s: :status %s grpc-status %s (%s), want %s/%s" % (
                        what, hs, st, msg, want_hs, want_st))
            ensure(not bad, "\n".join(bad))
        with s.check("transport_raw_valid_grpc_timeout_honoured_not_refused"):
            for t in ("5S", "1500m", "99999999H", "1000000u"):
                hs, st, msg = nghttp(w.port, authn, grpc_frame(0, good), d, [
                    "content-type: application/grpc+proto", "te: trailers", "grpc-timeout: " + t])
                ensure((hs, st) == (200, 0), "grpc-timeout %s: %s/%s (%s)" % (t, hs, st, msg))
        with s.check("transport_raw_server_keeps_serving"):
            ensure(w.alive(), "warden exited:\n%s" % H.tail(w.log()))
            authn_demo(ch, "grpcio call after the raw requests")


@_scenario
def transport_h2load(s, h):
    with Warden(h, args=H2 + ["--workers", "2"], name="tr-h2load") as w:
        with s.check("transport_h2load_multiplexed_calls_all_succeed"):
            ensure(os.access(H2LOAD, os.X_OK), "%s is missing (nghttp2-client)" % H2LOAD)
            d = tempfile.mkdtemp(prefix="h2load.", dir=h.tmp)
            f = os.path.join(d, "body")
            with open(f, "wb") as fh:
                fh.write(grpc_frame(0, H.authz_req("users/demo/x").SerializeToString()))
            r = subprocess.run([H2LOAD, "-n", "4000", "-c", "4", "-m", "16", "-d", f,
                                "-H", "content-type: application/grpc", "-H", "te: trailers",
                                "http://127.0.0.1:%d%s" % (w.port, H.path("OnClientAuthorize"))],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            out = r.stdout.decode("utf-8", "replace")
            ensure(re.search(r"requests: 4000 total, 4000 started, 4000 done, 4000 succeeded",
                             out), "h2load:\n%s" % H.tail(out))
            ensure(re.search(r"status codes: 4000 2xx", out), "h2load:\n%s" % H.tail(out))


@_scenario
def transport_deadlines_and_budget(s, h):
    authn = H.path("OnClientAuthenticate")
    with Warden(h, args=H2 + ["--set", "max_concurrent_streams=10"], name="tr-budget") as w, \
            H.channel(w.addr) as ch:
        with s.check("transport_unfinished_request_answered_at_its_grpc_timeout"):
            c = RawH2(w.port)
            try:
                t0 = time.monotonic()
                c.send(frame(HEADERS, END_HEADERS, 1,
                             request_block(authn, [("grpc-timeout", "300m")])))
                c.send(frame(DATA, 0, 1, b"\x00\x00\x00\x01\x00" + b"x" * 10))  # 256 B announced
                got = None
                deadline = t0 + H.CALL_TIMEOUT
                while got is None:
                    f = c.next_frame(deadline)
                    ensure(f not in (None, "eof"), "no RST_STREAM within %gs (%r)" % (
                        H.CALL_TIMEOUT, f))
                    if f[0] == RST_STREAM and f[2] == 1:
                        got = f
                waited = time.monotonic() - t0
                code = int.from_bytes(got[3], "big")
                ensure(code == 8, "RST_STREAM code %d, want CANCEL (8)" % code)
                ensure(waited >= 0.25, "answered after %.3fs, before the 300 ms deadline" %
                       waited)
            finally:
                c.close()
        with s.check("transport_streams_over_the_budget_refused_connection_kept"):
            c = RawH2(w.port)
            try:
                n = 50
                # 50 requests that never send their message: 10 fit the budget
                c.send(b"".join(frame(HEADERS, END_HEADERS, 2 * i + 1, request_block(authn))
                                for i in range(n)))
                refused, deadline = set(), time.monotonic() + H.CALL_TIMEOUT
                while len(refused) < n - 10:
                    f = c.next_frame(deadline)
                    ensure(f not in (None, "eof"), "%d streams answered, want %d (%r)" % (
                        len(refused), n - 10, f))
                    ensure(f[0] != GOAWAY, "GOAWAY: the connection was lost")
                    if f[0] == HEADERS and f[1] & END_STREAM:
                        refused.add(f[2])
                ensure(max(refused) > 21, "refused streams %s" % sorted(refused))
                # the connection still carries calls: a PING is answered
                c.send(frame(PING, 0, 0, b"12345678"))
                while True:
                    f = c.next_frame(deadline)
                    ensure(f not in (None, "eof"), "no PING ack (%r)" % (f,))
                    ensure(f[0] != GOAWAY, "GOAWAY after the burst")
                    if f[0] == PING and f[1] & ACK:
                        break
            finally:
                c.close()
            authn_demo(ch, "grpcio call after the burst")


def warden_nofile(limit):
    class _Limited(Warden):
        def cmd(self):
            return ["prlimit", "--nofile=%d:%d" % (limit, limit)] + super().cmd()
    return _Limited


@_scenario
def transport_fd_exhaustion(s, h):
    """300 idle connections against a warden allowed 128 fds: the excess is closed at once,
    and once the idle connections are gone the listener accepts again."""
    W = warden_nofile(128)
    with W(h, args=H2, name="tr-nofile") as w:
        socks = []
        try:
            with s.check("transport_idle_flood_beyond_the_fd_limit_survived"):
                for _ in range(300):
                    try:
                        socks.append(socket.create_connection(("127.0.0.1", w.port), timeout=5))
                    except OSError:
                        break
                ensure(w.alive(), "warden exited:\n%s" % H.tail(w.log()))
                w.wait_count(r"max_connections \(\d+\) reached", 1, "cap logged")
        finally:
            for sk in socks:
                sk.close()
        with s.check("transport_listener_accepts_again_after_the_flood"):
            deadline = time.monotonic() + 20
            while True:
                try:
                    with H.channel(w.addr) as ch:
                        authn_demo(ch, "call after the idle connections closed")
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)


@_scenario
def transport_h2_says_which_directives_it_ignores(s, h):
    # no silent fallback: the one directive left without effect is `prepost` (it tuned gRPC
    # core; one_transport.py checks its warning from a file, with file:line); the connection
    # timers (h2_keepalive.py) are honoured, so they are not warned about
    args = H2 + ["--set", "max_connection_idle=30s", "--set", "keepalive_time=30s",
                 "--set", "prepost=10"]
    with s.check("transport_h2_warns_about_directives_it_does_not_honour"):
        with Warden(h, args=args, name="tr-unused") as w:
            log = w.log()
            ensure(re.search(r"WARN  config: command line: --set prepost: 'prepost' has no "
                             r"effect", log), "no warning for prepost:\n%s" % H.tail(log))
            for d in ("max_connection_idle", "keepalive_time"):
                ensure("`%s`" % d not in log and "'%s'" % d not in log,
                       "%s is honoured, yet warned about:\n%s" % (d, H.tail(log)))
