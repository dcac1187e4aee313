# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, TLS on warden's own HTTP/2 transport (`transport h2`, issue 9):
what is specific to TLS + HTTP/2 there, checked with clients warden did not write (openssl
s_client, h2load, grpcio, Python's ssl module). The general TLS, mTLS and refusal checks
are run.py's `tls` scenario.

- the handshake policy: ALPN `h2` selected; a client offering only http/1.1 gets a fatal
  no_application_protocol alert; a client offering no ALPN speaks HTTP/2 by prior knowledge
  (EMQX's gun does); TLS 1.1 refused with a protocol_version alert; TLS 1.2 only with ECDHE +
  AEAD ciphers (HTTP/2's blocklist), no session ticket; mTLS sends the CA names;
- data: a 200 KB OnMessagePublish echoed through TLS records, and h2load over https;
- TLS slowloris: connections that send nothing or half a ClientHello are closed at the
  handshake deadline (10 s), those over the per-worker cap of handshakes in progress (64)
  at once, oldest first, while an established client and a new one keep getting answers.

Every warden here says `transport h2` (the only transport since 0.2.0, spelled out as
configurations from the two-transport stage do). Loaded by run.py
(`h2_tls.register(scenario)`); scenarios are named h2tls_*. Nothing waits by a fixed sleep:
reads have deadlines, and conditions are polled.
"""
import os
import re
import select
import socket
import ssl
import struct
import subprocess
import tempfile
import time

import harness as H
from harness import ALLOW_RAW, CONTINUE, Warden, ensure, pb, hpb
import sec_transport as T

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`
OPENSSL = "/usr/bin/openssl"
H2 = ["--set", "transport=h2"]
HANDSHAKE_DEADLINE = 10.0  # TLS_HANDSHAKE_MS in src/server/h2server.c
HANDSHAKES_MAX = 64  # TLS_HANDSHAKES_MAX, per worker


def tls_config(h, mutual=False):
    d = h.pki()
    lines = ["tls_cert " + os.path.join(d, "server.pem"),
             "tls_key " + os.path.join(d, "server.key"),
             "hooks client.authenticate client.authorize message.publish"]
    if mutual:
        lines.append("tls_client_ca " + os.path.join(d, "ca.pem"))
    return "".join(x + "\n" for x in lines)  # embedded policy: demo/demo


def s_client(h, w, *opts):
    """One openssl s_client handshake (stdin closed: it sends close_notify and exits after
    the handshake); returns its output."""
    cmd = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % w.port, "-servername",
           "localhost", "-CAfile", os.path.join(h.pki(), "ca.pem")] + list(opts)
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=H.CALL_TIMEOUT)
    return r.stdout.decode("utf-8", "replace")


def creds(h, cert=None):
    key = h.pem(cert.replace(".pem", ".key")) if cert else None
    return H.grpc.ssl_channel_credentials(h.pem("ca.pem"), key, h.pem(cert) if cert else None)


def tls_channel(h, w, cert=None):
    return H.channel("127.0.0.1:%d" % w.port, creds(h, cert), "localhost")


def authn_demo(ch, what):
    H.expect_raw(H.raw_call(ch, H.path("OnClientAuthenticate"),
                            H.authn_req("demo", "demo").SerializeToString()), ALLOW_RAW, what)


class TlsRawH2(T.RawH2):
    """sec_transport's hand-framed HTTP/2 client over TLS, offering no ALPN unless told;
    rcvbuf: a small receive buffer, with 16 MiB flow-control windows (a slow reader)."""

    def __init__(self, h, port, alpn=None, rcvbuf=None):
        ctx = ssl.create_default_context(cafile=os.path.join(h.pki(), "ca.pem"))
        if alpn:
            ctx.set_alpn_protocols(alpn)
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(H.CALL_TIMEOUT)
        raw.connect(("127.0.0.1", port))
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""
        self.alpn = self.sock.selected_alpn_protocol()
        settings = b""
        if rcvbuf:  # SETTINGS_INITIAL_WINDOW_SIZE, then the connection window
            settings = struct.pack(">HI", 4, 1 << 24)
        self.sock.sendall(T.PREFACE + T.frame(T.SETTINGS, 0, 0, settings))
        if rcvbuf:
            self.sock.sendall(T.frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 24)))


WINDOW_UPDATE = 8


def raw_call(c, path, body):
    """One call on stream 1 of a TlsRawH2; returns the response DATA bytes."""
    hs = [(":method", "POST"), (":scheme", "https"), (":path", path),
          (":authority", "localhost"), ("content-type", "application/grpc"),
          ("te", "trailers")]
    block = b"".join(T.hpack_literal(n, v) for n, v in hs)
    msg = T.grpc_frame(0, body)
    c.send(T.frame(T.HEADERS, T.END_HEADERS, 1, block))
    for i in range(0, len(msg), 16384):  # DATA frames of at most SETTINGS_MAX_FRAME_SIZE
        last = i + 16384 >= len(msg)
        c.send(T.frame(T.DATA, T.END_STREAM if last else 0, 1, msg[i:i + 16384]))
    deadline = time.monotonic() + H.CALL_TIMEOUT
    data = b""
    while True:
        f = c.next_frame(deadline)
        ensure(f not in (None, "eof"), "no complete answer on stream 1 (%r)" % (f,))
        ftype, flags, sid, payload = f
        if sid == 1 and ftype == T.DATA:
            data += payload
        if sid == 1 and ftype == T.HEADERS and flags & T.END_STREAM:
            return data
        ensure(not (sid == 1 and ftype == T.RST_STREAM), "stream 1 reset")
        ensure(ftype != T.GOAWAY, "GOAWAY: %r" % payload)


def health_over_prior_knowledge(h, port):
    """A health check over TLS without ALPN; returns the reply message bytes."""
    c = TlsRawH2(h, port)
    try:
        ensure(c.alpn is None, "ALPN %r negotiated, want none" % c.alpn)
        return raw_call(c, H.HEALTH_PATH, hpb.HealthCheckRequest(service="").SerializeToString())
    finally:
        c.close()


def server_send_buffer_full(port, cport):
    """Whether warden's socket towards 127.0.0.1:cport has filled its send buffer (ss -m:
    queued bytes w >= send buffer tb): its next write gets EAGAIN (SSL_ERROR_WANT_WRITE)."""
    out = subprocess.run(["ss", "-tmnH", "state", "established",
                          "( sport = :%d and dport = :%d )" % (port, cport)],
                         stdout=subprocess.PIPE, timeout=H.CALL_TIMEOUT).stdout.decode()
    m = re.search(r"tb(\d+),f\d+,w(\d+)", out)
    return bool(m) and int(m.group(2)) >= int(m.group(1))


def check_stalled_reader(h, w, calls=24, size=250000):
    """calls x size bytes echoed (more than the kernel's 4 MiB send buffer can hold) to a
    client that reads nothing until warden's send buffer is full: warden's TLS writes then
    block, are retried with the same bytes while its output buffer is compacted and grown,
    and its reading pauses and resumes. Single-threaded, non-blocking client."""
    c = TlsRawH2(h, w.port, alpn=["h2"], rcvbuf=4096)
    try:
        ensure(c.alpn == "h2", "ALPN %r, want h2" % c.alpn)
        cport = c.sock.getsockname()[1]
        msg = H.message(payload=os.urandom(size))
        body = T.grpc_frame(0, H.publish_req(msg, "v3").SerializeToString())
        block = b"".join(T.hpack_literal(n, v) for n, v in [
            (":method", "POST"), (":scheme", "https"),
            (":path", H.path("OnMessagePublish", "v3")), (":authority", "localhost"),
            ("content-type", "application/grpc"), ("te", "trailers")])
        out = b""
        for k in range(calls):
            sid = 1 + 2 * k
            out += T.frame(T.HEADERS, T.END_HEADERS, sid, block)
            for i in range(0, len(body), 16384):
                out += T.frame(T.DATA, T.END_STREAM if i + 16384 >= len(body) else 0, sid,
                               body[i:i + 16384])
        c.sock.setblocking(False)
        data, done, buf, reading = {}, set(), b"", False
        deadline = time.monotonic() + 60
        while len(done) < calls:
            ensure(time.monotonic() < deadline, "%d of %d echoes complete after 60 s" % (
                len(done), calls))
            if out:
                try:
                    out = out[c.sock.send(out[:65536]):]
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
            if not reading:
                reading = server_send_buffer_full(w.port, cport)
                if not reading:
                    select.select([], [c.sock] if out else [], [], 0.02)
                    continue
            try:
                chunk = c.sock.recv(1 << 20)
                ensure(chunk, "warden closed the connection")
                buf += chunk
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                select.select([c.sock], [c.sock] if out else [], [], 0.1)
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                n = int.from_bytes(buf[:3], "big")
                ftype, flags = buf[3], buf[4]
                sid = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                payload, buf = buf[9:9 + n], buf[9 + n:]
                if ftype == T.SETTINGS and not flags & T.ACK:
                    out += T.frame(T.SETTINGS, T.ACK, 0)
                elif ftype == T.DATA:
                    data[sid] = data.get(sid, b"") + payload
                elif ftype == T.HEADERS and flags & T.END_STREAM:
                    done.add(sid)
                ensure(ftype not in (T.GOAWAY, T.RST_STREAM), "frame %d on stream %d: %r" % (
                    ftype, sid, payload[:64]))
        want = H.publish_req(msg, "v3")  # the echo carries the message back
        for sid in sorted(done):
            d = data.get(sid, b"")
            ensure(len(d) > 5 and struct.unpack(">I", d[1:5])[0] == len(d) - 5,
                   "stream %d: reply of %d bytes is not one gRPC message" % (sid, len(d)))
            r = H.parse_valued(d[5:])
            ensure(r.WhichOneof("value") == "message" and r.message == want.message,
                   "stream %d: %s" % (sid, H.describe_valued(d[5:])[:200]))
    finally:
        c.close()


# ---------------------------------------------------------------- scenarios

@_scenario
def h2tls_handshake_policy(s, h):
    cfg = None
    with s.check("h2tls_setup"):
        ensure(os.access(OPENSSL, os.X_OK), "%s is missing" % OPENSSL)
        cfg = tls_config(h)
    if cfg is None:
        return
    with Warden(h, cfg, H2, name="h2tls") as w, tls_channel(h, w) as ch:
        with s.check("h2tls_listening_mode_tls"):
            ensure(w.mode == "tls", "mode %r in the listening line, want tls" % w.mode)
            authn_demo(ch, "grpcio over TLS (ALPN h2)")
        with s.check("h2tls_alpn_h2_selected"):
            out = s_client(h, w, "-alpn", "h2")
            ensure("ALPN protocol: h2" in out, "s_client -alpn h2:\n%s" % H.tail(out))
            out = s_client(h, w, "-alpn", "http/1.1,h2")
            ensure("ALPN protocol: h2" in out, "s_client -alpn http/1.1,h2:\n%s" % H.tail(out))
        with s.check("h2tls_alpn_without_h2_refused_with_fatal_alert"):
            out = s_client(h, w, "-alpn", "http/1.1")
            ensure("alert no application protocol" in out and "ALPN protocol:" not in out,
                   "s_client -alpn http/1.1, want alert 120 from the server:\n%s" % H.tail(out))
        with s.check("h2tls_no_alpn_is_h2_by_prior_knowledge"):
            data = health_over_prior_knowledge(h, w.port)
            ensure(data == b"\x00\x00\x00\x00\x02\x08\x01",
                   "health reply %s, want SERVING" % H.hexb(data))
        with s.check("h2tls_tls11_refused"):
            # SECLEVEL=0: the client itself would not offer TLS 1.1 otherwise; the alert
            # proves the server refused it
            out = s_client(h, w, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
            ensure("alert protocol version" in out and "Cipher is (NONE)" in out,
                   "s_client -tls1_1:\n%s" % H.tail(out))
        with s.check("h2tls_tls12_without_ecdhe_aead_refused"):
            for c in ("AES128-SHA", "AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA"):
                out = s_client(h, w, "-tls1_2", "-cipher", c)
                ensure("alert handshake failure" in out and "Cipher is (NONE)" in out,
                       "s_client -tls1_2 -cipher %s, want refused:\n%s" % (c, H.tail(out)))
        with s.check("h2tls_tls12_ecdhe_aead_no_session_ticket"):
            out = s_client(h, w, "-tls1_2", "-alpn", "h2")
            m = re.search(r"Cipher is (\S+)", out)
            ensure(m and m.group(1).startswith("ECDHE-") and
                   ("GCM" in m.group(1) or "CHACHA20" in m.group(1)),
                   "TLS 1.2 cipher %s:\n%s" % (m and m.group(1), H.tail(out)))
            ensure("TLS session ticket:" not in out, "a session ticket was issued:\n%s" %
                   H.tail(out, 40))
        with s.check("h2tls_tls13_ok"):
            out = s_client(h, w, "-tls1_3", "-alpn", "h2")
            ensure("New, TLSv1.3" in out and "ALPN protocol: h2" in out,
                   "s_client -tls1_3:\n%s" % H.tail(out))
        with s.check("h2tls_large_message_echoed"):
            msg = H.message(payload=os.urandom(200000))
            raw = H.raw_call(ch, H.path("OnMessagePublish", "v3"),
                             H.publish_req(msg, "v3").SerializeToString())
            r = H.parse_valued(raw)
            ensure(r.type == CONTINUE and r.WhichOneof("value") == "message" and
                   r.message.payload == msg.payload,
                   "200 KB publish over TLS: reply %s" % H.describe_valued(raw)[:200])
        with s.check("h2tls_large_echoes_to_a_reader_that_stalls"):
            check_stalled_reader(h, w)
        with s.check("h2tls_h2load_calls_over_tls_all_succeed"):
            ensure(os.access(T.H2LOAD, os.X_OK), "%s is missing (nghttp2-client)" % T.H2LOAD)
            d = tempfile.mkdtemp(prefix="h2load.", dir=h.tmp)
            f = os.path.join(d, "body")
            with open(f, "wb") as fh:
                fh.write(T.grpc_frame(0, H.authz_req("users/demo/x").SerializeToString()))
            r = subprocess.run([T.H2LOAD, "-n", "4000", "-c", "4", "-m", "16", "-d", f,
                                "-H", "content-type: application/grpc", "-H", "te: trailers",
                                "https://127.0.0.1:%d%s" % (w.port, H.path("OnClientAuthorize"))],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            out = r.stdout.decode("utf-8", "replace")
            ensure("Application protocol: h2" in out, "h2load:\n%s" % H.tail(out))
            ensure(re.search(r"requests: 4000 total, 4000 started, 4000 done, 4000 succeeded, "
                             r"0 failed, 0 errored", out), "h2load:\n%s" % H.tail(out))
            ensure(re.search(r"status codes: 4000 2xx", out), "h2load:\n%s" % H.tail(out))
        with s.check("h2tls_still_serving"):
            ensure(w.alive(), "warden exited:\n%s" % H.tail(w.log()))
            authn_demo(ch, "grpcio after the refused handshakes")


@_scenario
def h2tls_mtls(s, h):
    cfg = None
    with s.check("h2tls_mtls_setup"):
        cfg = tls_config(h, mutual=True)
    if cfg is None:
        return
    with Warden(h, cfg, H2, name="h2mtls") as w:
        with s.check("h2tls_mtls_ca_names_sent"):
            out = s_client(h, w, "-alpn", "h2")
            m = re.search(r"Acceptable client certificate CA names\n(.*)", out)
            subject = subprocess.run([OPENSSL, "x509", "-noout", "-subject", "-in",
                                      os.path.join(h.pki(), "ca.pem")],
                                     stdout=subprocess.PIPE).stdout.decode().strip()
            subject = subject[len("subject="):]
            ensure(m and m.group(1).strip() == subject,
                   "CA names %r, want %r:\n%s" % (m and m.group(1), subject, H.tail(out, 40)))
        with s.check("h2tls_mtls_client_cert_over_prior_knowledge_refused_without_cert"):
            try:
                health_over_prior_knowledge(h, w.port)
                ok = True
            except (ssl.SSLError, OSError, H.CheckFailed):
                ok = False
            ensure(not ok, "a client without a certificate was served")
        with s.check("h2tls_mtls_client_cert_ok"):
            with tls_channel(h, w, "client.pem") as ch:
                authn_demo(ch, "mTLS with client-1's certificate")


def stalled(port, hello_part=b""):
    sk = socket.create_connection(("127.0.0.1", port), timeout=H.CALL_TIMEOUT)
    if hello_part:
        sk.sendall(hello_part)
    sk.setblocking(False)
    return sk


def is_closed(sk):
    try:
        while True:
            if not sk.recv(4096):
                return True
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


# a TLS record header announcing a 512-byte ClientHello, and its first bytes only
HALF_HELLO = b"\x16\x03\x01\x02\x00" + b"\x01\x00\x01\xfc\x03\x03" + bytes(20)


@_scenario
def h2tls_slowloris(s, h):
    cfg = None
    with s.check("h2tls_slowloris_setup"):
        cfg = tls_config(h)
    if cfg is None:
        return
    n_over, n_last = 3 * HANDSHAKES_MAX, HANDSHAKES_MAX
    with Warden(h, cfg, H2 + ["--workers", "1"], name="h2tls-slow") as w, \
            tls_channel(h, w) as ch:
        socks = []
        try:
            authn_demo(ch, "established client before the stalled handshakes")
            t0 = time.monotonic()
            # the oldest ones send nothing, the newest half a ClientHello
            socks = [stalled(w.port) for _ in range(n_over)]
            socks += [stalled(w.port, HALF_HELLO) for _ in range(n_last)]
            with s.check("h2tls_handshakes_over_the_cap_closed_oldest_first"):
                # before any deadline can fire, all but the newest HANDSHAKES_MAX are closed
                want = len(socks) - HANDSHAKES_MAX
                while True:
                    closed = [is_closed(x) for x in socks]
                    if sum(closed) >= want:
                        break
                    ensure(time.monotonic() - t0 < HANDSHAKE_DEADLINE - 1,
                           "%d of %d stalled handshakes closed, want %d before the deadline"
                           % (sum(closed), len(socks), want))
                    time.sleep(0.05)
                ensure(all(closed[:want]), "a newer handshake was closed before an older one")
                ensure(w.count(r"TLS handshakes in progress on worker 0: closing the oldest"),
                       "no log line about the handshake cap:\n%s" % H.tail(w.log()))
            with s.check("h2tls_clients_served_during_stalled_handshakes"):
                authn_demo(ch, "established client during the stalled handshakes")
                with tls_channel(h, w) as ch2:
                    authn_demo(ch2, "new TLS client during the stalled handshakes")
            with s.check("h2tls_stalled_handshakes_closed_at_deadline"):
                end = t0 + HANDSHAKE_DEADLINE + 10
                while not all(is_closed(x) for x in socks):
                    ensure(time.monotonic() < end, "%d stalled handshakes still open %.0f s "
                           "after they connected" % (sum(not is_closed(x) for x in socks),
                                                     time.monotonic() - t0))
                    authn_demo(ch, "established client while stalled handshakes wait")
                    time.sleep(0.2)
                ensure(time.monotonic() - t0 >= HANDSHAKE_DEADLINE - 0.5,
                       "closed after %.1f s, before the deadline" % (time.monotonic() - t0))
            with s.check("h2tls_served_after_stalled_handshakes"):
                ensure(w.alive(), "warden exited:\n%s" % H.tail(w.log()))
                authn_demo(ch, "established client after the stalled handshakes")
                with tls_channel(h, w) as ch3:
                    authn_demo(ch3, "new TLS client after the stalled handshakes")
        finally:
            for x in socks:
                x.close()
