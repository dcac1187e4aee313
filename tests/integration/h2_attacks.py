# SPDX-License-Identifier: Apache-2.0
"""warden integration suite: attacks on the h2 transport (issue 9, items 2 and 5).

Each scenario starts a warden on `transport h2`, runs one attack from loopback for a bounded
time (attackers connect from 127.0.0.2 and up, so the per-peer limit does not count them
against the legitimate client on 127.0.0.1), and asserts that
- a legitimate client (python grpcio, its own connection) keeps getting correct answers
  during the attack and after it,
- warden's memory stays bounded: peak growth (VmHWM minus the VmRSS before the attack,
  /proc/PID/status) under PEAK_BOUND, and
- the attacker's connections are closed where they should be.

The attacks: Rapid Reset (CVE-2023-44487), a CONTINUATION flood, half-sent streams, idle
connections under a low RLIMIT_NOFILE, a gzip request bomb, slow headers (slowloris),
thousands of idle connections, the per-peer connection limit, and the "glitch" limiter.
The flooders run as child processes (`h2_attacks.py flood ...`, this file) so they get a
core of their own; they stop by themselves after `--seconds`.

The figures each check measured are printed (`--verbose`) and recorded in
docs/reliability.md. `h2_attacks.py compare --warden W --gen G [--as BYTES]` runs the same
attacks once under a low RLIMIT_AS and prints the figures without asserting (with
`--transport grpc-core`, on 0.1.0, it measured gRPC core's column of docs/reliability.md;
gRPC core was removed in 0.2.0).

Loaded by run.py (`h2_attacks.register(scenario)`); scenarios are named h2_attacks_*.
Nothing waits by a fixed sleep to "let it happen": conditions are polled with deadlines;
the slowloris trickle and the legitimate client are paced on purpose.
"""
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------- raw HTTP/2 (no hpack)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0, 1, 3, 4, 6, 7, 8, 9)
END_STREAM, END_HEADERS, ACK = 1, 4, 1
CANCEL, ENHANCE_YOUR_CALM = 8, 11
MAX_FRAME = 16384


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def hpack_int(v, prefix_bits, first=0):
    cap = (1 << prefix_bits) - 1
    if v < cap:
        return bytes([first | v])
    out = [first | cap]
    v -= cap
    while v >= 128:
        out.append((v & 127) | 128)
        v >>= 7
    out.append(v)
    return bytes(out)


def hpack_literal(name, value):
    """Literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    n, v = name.encode(), value.encode()
    return b"\x00" + hpack_int(len(n), 7) + n + hpack_int(len(v), 7) + v


def request_block(path, extra=()):
    hs = [(":method", "POST"), (":scheme", "http"), (":path", path),
          (":authority", "127.0.0.1"), ("content-type", "application/grpc"),
          ("te", "trailers")] + list(extra)
    return b"".join(hpack_literal(n, v) for n, v in hs)


def grpc_frame(flag, data, length=None):
    return struct.pack(">BI", flag, len(data) if length is None else length) + data


def data_frames(sid, body, end=False):
    out = []
    for i in range(0, len(body), MAX_FRAME):
        last = i + MAX_FRAME >= len(body)
        out.append(frame(DATA, END_STREAM if (end and last) else 0, sid, body[i:i + MAX_FRAME]))
    if not body:
        out.append(frame(DATA, END_STREAM if end else 0, sid))
    return b"".join(out)


class RawConn:
    """A TCP connection speaking just enough HTTP/2 to attack: it tracks flow-control
    windows, answers SETTINGS, and records what comes back (GOAWAY codes, RST_STREAMs,
    trailers-only answers) without decoding header blocks."""

    def __init__(self, port, src="127.0.0.1", preface=True, timeout=5.0, quiet=False):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((src, 0))
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.closed = False
        self.goaway = None
        self.goaways = []  # every GOAWAY: (last stream id, error code, debug data, time)
        self.pings = []  # arrival times of PINGs from the server (not ACKs)
        self.data = {}  # stream -> DATA payload bytes received
        self.ended = set()  # streams the server ended (a frame with END_STREAM)
        self.rst = {}
        self.answered = set()  # streams answered trailers-only (HEADERS with END_STREAM)
        self.headers_seen = set()
        self.conn_window = 65535
        self.initial_window = 65535
        self.win = {}
        self.got_settings = False
        self.quiet = quiet  # never write on its own (no SETTINGS or PING ACKs)
        if preface:
            self.send(PREFACE + frame(SETTINGS, 0, 0))

    def send(self, data):
        if self.closed:
            return False
        try:
            self.sock.sendall(data)
            return True
        except (OSError, socket.timeout):
            self.closed = True
            return False

    def _parse(self):
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                break
            t, fl = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            p = self.buf[9:9 + n]
            self.buf = self.buf[9 + n:]
            if t == SETTINGS and not fl & ACK:
                self.got_settings = True
                for i in range(0, len(p) - 5, 6):
                    k, v = struct.unpack(">HI", p[i:i + 6])
                    if k == 4:
                        for s in self.win:
                            self.win[s] += v - self.initial_window
                        self.initial_window = v
                if not self.quiet:
                    self.send(frame(SETTINGS, ACK, 0))
            elif t == WINDOW_UPDATE and len(p) == 4:
                inc = int.from_bytes(p, "big") & 0x7FFFFFFF
                if sid == 0:
                    self.conn_window += inc
                elif sid in self.win:
                    self.win[sid] += inc
            elif t == GOAWAY and len(p) >= 8:
                self.goaway = int.from_bytes(p[4:8], "big")
                self.goaways.append((int.from_bytes(p[:4], "big") & 0x7FFFFFFF, self.goaway,
                                     p[8:], time.monotonic()))
            elif t == RST_STREAM and len(p) == 4:
                self.rst[sid] = int.from_bytes(p, "big")
            if t in (HEADERS, DATA) and fl & END_STREAM:
                self.ended.add(sid)
            if t == HEADERS:
                if sid in self.headers_seen or fl & END_STREAM:
                    if sid not in self.headers_seen:
                        self.answered.add(sid)
                self.headers_seen.add(sid)
            elif t == PING and not fl & ACK:
                self.pings.append(time.monotonic())
                if not self.quiet:
                    self.send(frame(PING, ACK, 0, p))
            elif t == DATA:
                self.data[sid] = self.data.get(sid, b"") + p

    def pump(self, timeout=0.0):
        """Reads what is there (waiting up to `timeout` for the first bytes); returns
        False once the peer closed."""
        if self.closed:
            return False
        deadline = time.monotonic() + timeout
        while True:
            try:
                # a socket with a timeout polls even with MSG_DONTWAIT: 0 = non-blocking
                self.sock.settimeout(max(0.001, deadline - time.monotonic()) if timeout > 0
                                     else 0.0)
                chunk = self.sock.recv(1 << 20)
            except (BlockingIOError, socket.timeout):
                break
            except OSError:
                self.closed = True
                return False
            if not chunk:
                self.closed = True
                return False
            self.buf += chunk
            self._parse()
            timeout = 0
        self.sock.settimeout(5.0)
        return True

    def wait_closed(self, deadline):
        while time.monotonic() < deadline:
            if not self.pump(min(0.2, max(0.001, deadline - time.monotonic()))):
                return True
        return False

    def open_stream(self, sid, block, end=False):
        self.win[sid] = self.initial_window
        return self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid, block))

    def send_data(self, sid, body, end=False):
        """Sends as much of body as the windows allow; returns the bytes sent."""
        sent = 0
        while sent < len(body):
            room = min(self.conn_window, self.win.get(sid, 0), MAX_FRAME, len(body) - sent)
            if room <= 0:
                if not self.pump(0.2) or min(self.conn_window, self.win.get(sid, 0)) <= 0:
                    break
                continue
            last = end and sent + room == len(body)
            if not self.send(frame(DATA, END_STREAM if last else 0, sid,
                                   body[sent:sent + room])):
                break
            self.conn_window -= room
            self.win[sid] -= room
            sent += room
        return sent

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True


def src_addr(i):
    """Attacker source addresses: 127.0.0.2 and up (127/8 is all loopback on Linux)."""
    assert 0 <= i < 250
    return "127.0.0.%d" % (i + 2)


# ---------------------------------------------------------------- flooders (child processes)

def flood_rapid_reset(port, src, seconds, path, req):
    """HEADERS + DATA + RST_STREAM(CANCEL) as fast as possible; reconnects when closed.
    Even streams carry a whole request (END_STREAM: the server does the call's work), odd
    ones half a message."""
    block = request_block(path)
    full = grpc_frame(0, req)
    half = grpc_frame(0, req[: len(req) // 2], len(req))
    end = time.monotonic() + seconds
    r = dict(conns=0, closed=0, streams=0, goaway={}, connect_failed=0)
    while time.monotonic() < end:
        try:
            c = RawConn(port, src, timeout=2.0)
        except OSError:
            r["connect_failed"] += 1
            continue
        r["conns"] += 1
        sid = 1
        while time.monotonic() < end and sid < (1 << 30):
            batch = []
            for _ in range(50):
                d = full if sid % 4 == 1 else half
                batch.append(frame(HEADERS, END_HEADERS, sid, block))
                batch.append(frame(DATA, END_STREAM if sid % 4 == 1 else 0, sid, d))
                batch.append(frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL)))
                sid += 2
            if not c.send(b"".join(batch)) or not c.pump():
                break
            r["streams"] += 50
        if c.closed or c.goaway is not None:
            r["closed"] += 1
        if c.goaway is not None:
            k = str(c.goaway)
            r["goaway"][k] = r["goaway"].get(k, 0) + 1
        c.close()
    return r


def flood_continuation(port, src, seconds, path, req):
    """One stream: HEADERS without END_HEADERS, then CONTINUATION frames without end."""
    filler = b"".join(hpack_literal("x-f%03d" % i, "v" * 100) for i in range(140))
    assert len(filler) <= MAX_FRAME
    end = time.monotonic() + seconds
    r = dict(conns=0, closed=0, bytes=0, max_conn_bytes=0, goaway={}, connect_failed=0)
    while time.monotonic() < end:
        try:
            c = RawConn(port, src, timeout=2.0)
        except OSError:
            r["connect_failed"] += 1
            continue
        r["conns"] += 1
        sent = 0
        c.send(frame(HEADERS, 0, 1, request_block(path)))
        while time.monotonic() < end:
            if not c.send(frame(CONTINUATION, 0, 1, filler) * 4) or not c.pump():
                break
            sent += 4 * (9 + len(filler))
        r["bytes"] += sent
        r["max_conn_bytes"] = max(r["max_conn_bytes"], sent)
        if c.closed or c.goaway is not None:
            r["closed"] += 1
        if c.goaway is not None:
            k = str(c.goaway)
            r["goaway"][k] = r["goaway"].get(k, 0) + 1
        c.close()
    return r


_BOMB = None


def gzip_bomb(inflated=128 << 20):
    """~130 KB of gzip that inflates to 128 MiB of zeros (under the default request limit,
    so only the encoding can refuse it)."""
    global _BOMB
    if _BOMB is None:
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
        z = b"\0" * (1 << 20)
        _BOMB = b"".join(c.compress(z) for _ in range(inflated >> 20)) + c.flush()
    return _BOMB


def flood_bomb(port, src, seconds, path, req):
    """Streams with grpc-encoding gzip carrying the bomb (compressed flag 1)."""
    bomb = gzip_bomb()
    block = request_block(path, [("grpc-encoding", "gzip")])
    body = grpc_frame(1, bomb)
    end = time.monotonic() + seconds
    r = dict(conns=0, closed=0, streams=0, answered=0, sent_bytes=0, connect_failed=0,
             goaway={})
    while time.monotonic() < end:
        try:
            c = RawConn(port, src, timeout=2.0)
        except OSError:
            r["connect_failed"] += 1
            continue
        r["conns"] += 1
        c.pump(1.0)
        sid = 1
        while time.monotonic() < end and not c.closed and sid < 400:
            c.open_stream(sid, block)
            r["sent_bytes"] += c.send_data(sid, body, end=True)
            r["streams"] += 1
            sid += 2
            c.pump()
        c.pump(0.5)
        r["answered"] += len(c.answered)
        if c.closed:
            r["closed"] += 1
        if c.goaway is not None:
            k = str(c.goaway)
            r["goaway"][k] = r["goaway"].get(k, 0) + 1
        c.close()
    return r


FLOODS = {"rapid_reset": flood_rapid_reset, "continuation": flood_continuation,
          "bomb": flood_bomb}


def spawn_flood(name, port, src, seconds, path, req):
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "flood", name, str(port), src,
         str(seconds), path, req.hex()], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def collect_flood(p, timeout):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return {"error": "flooder did not stop in time"}
    try:
        return json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "flooder failed: %s" % err.decode(errors="replace")[-400:]}


# ---------------------------------------------------------------- measurements

def mem_kib(pid):
    """(VmRSS, VmHWM) in KiB, or (0, 0) once the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            d = dict(ln.split(":", 1) for ln in f if ":" in ln)
        return int(d["VmRSS"].split()[0]), int(d["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        return 0, 0


class Legit(threading.Thread):
    """The legitimate client: one grpcio channel (its own connection from 127.0.0.1),
    OnClientAuthenticate demo/demo in a loop, paced, until stopped. Counts answers that
    were exactly right."""

    def __init__(self, H, addr, timeout=5.0):
        super().__init__(daemon=True)
        self.H, self.addr, self.timeout = H, addr, timeout
        self.ok = self.bad = 0
        self.errors = []
        self.max_latency = 0.0
        self.stop_ev = threading.Event()
        self.req = H.authn_req("demo", "demo").SerializeToString()

    def run(self):
        with self.H.channel(self.addr) as ch:
            fn = ch.unary_unary(self.H.path("OnClientAuthenticate"))
            while not self.stop_ev.is_set():
                t0 = time.monotonic()
                try:
                    raw = fn(self.req, timeout=self.timeout)
                    good = raw == self.H.ALLOW_RAW
                except Exception as e:  # grpc.RpcError
                    good = False
                    if len(self.errors) < 5:
                        self.errors.append(str(getattr(e, "code", lambda: e)()))
                self.max_latency = max(self.max_latency, time.monotonic() - t0)
                if good:
                    self.ok += 1
                else:
                    self.bad += 1
                self.stop_ev.wait(0.02)  # pacing: the client is a witness, not a load

    def wait_first(self, deadline=10.0):
        end = time.monotonic() + deadline
        while self.ok == 0 and time.monotonic() < end and self.is_alive():
            time.sleep(0.01)
        return self.ok > 0

    def stop(self):
        self.stop_ev.set()
        self.join(self.timeout + 5)

    def rate(self):
        n = self.ok + self.bad
        return self.ok / n if n else 0.0

    def summary(self):
        return "legit %d/%d ok (%.1f%%), max latency %.0f ms%s" % (
            self.ok, self.ok + self.bad, 100 * self.rate(), 1000 * self.max_latency,
            (", errors %s" % self.errors) if self.errors else "")


def fresh_call(H, addr, timeout=5.0):
    """One call on a NEW connection (the legit client's own is already established)."""
    try:
        with H.channel(addr) as ch:
            return H.raw_call(ch, H.path("OnClientAuthenticate"),
                              H.authn_req("demo", "demo").SerializeToString(),
                              timeout) == H.ALLOW_RAW
    except Exception:
        return False


def under_sanitizer(pid):
    """"asan" or "tsan" when process pid runs an AddressSanitizer or ThreadSanitizer build
    (its runtime mapped), else None."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read()
    except OSError:
        return None
    return "asan" if "libasan" in maps else "tsan" if "libtsan" in maps else None


class Attack:
    """The frame of every attack: a legit client running before, during and after; memory
    sampled; figures collected into `fig`; `problems` lists what failed."""

    def __init__(self, H, w, name, min_during=3):
        self.H, self.w, self.name, self.min_during = H, w, name, min_during
        self.fig = {"attack": name}
        self.bound_kib = PEAK_BOUND_KIB
        self.problems = []
        self.pid = w.proc.pid
        self.sanitizer = under_sanitizer(self.pid)

    def memory_problem(self, msg):
        """A memory bound exceeded: a failure, except on an ASan build, whose allocator keeps
        freed memory in quarantine (256 MiB by default) and returns little to the system, or
        a TSan build, whose shadow memory and per-thread clocks grow RSS several times over:
        there RSS says nothing about warden's bounds, so it is recorded, not asserted; the
        other checks (legit answers, closed attackers, no crash, no sanitizer report) still
        hold."""
        if self.sanitizer:
            self.fig.setdefault("not_asserted_under_" + self.sanitizer, []).append(msg)
        else:
            self.problems.append(msg)

    def __enter__(self):
        self.legit = Legit(self.H, self.w.addr)
        self.legit.start()
        if not self.legit.wait_first():
            self.problems.append("the legit client got no answer before the attack")
        self.base_rss, _ = mem_kib(self.pid)
        self.fig["rss_before_kib"] = self.base_rss
        return self

    def during(self):
        """Marks the end of the attack: figures of the legit client so far."""
        self.fig["legit_during"] = "%d/%d" % (self.legit.ok, self.legit.ok + self.legit.bad)
        self.fig["legit_during_rate"] = round(self.legit.rate(), 4)
        self.fig["legit_max_latency_ms"] = round(1000 * self.legit.max_latency)
        if self.legit.bad:
            self.problems.append("legit client during the attack: %s" % self.legit.summary())
        if self.legit.ok < self.min_during:
            self.problems.append("legit client answered only %d times during the attack" %
                                 self.legit.ok)
        rss, hwm = mem_kib(self.pid)
        self.fig["rss_end_kib"] = rss
        self.fig["peak_growth_kib"] = max(0, hwm - self.base_rss)
        if not self.w.alive():
            self.problems.append("warden died during the attack (exit %s)" % self.w.proc.poll())

    def __exit__(self, et, ev, tb):
        ok0, bad0 = self.legit.ok, self.legit.bad
        # after: a few more answers
        end = time.monotonic() + 10
        while self.legit.ok < ok0 + 3 and time.monotonic() < end and self.w.alive():
            time.sleep(0.01)
        self.legit.stop()
        after_ok, after_bad = self.legit.ok - ok0, self.legit.bad - bad0
        self.fig["legit_after"] = "%d/%d" % (after_ok, after_ok + after_bad)
        if after_ok < 3 or after_bad:
            self.problems.append("legit client after the attack: %d ok, %d bad %s" % (
                after_ok, after_bad, self.legit.errors))
        rss, hwm = mem_kib(self.pid)
        self.fig["rss_after_kib"] = rss
        self.fig["peak_growth_kib"] = max(self.fig.get("peak_growth_kib", 0), hwm - self.base_rss)
        if self.fig["peak_growth_kib"] > self.bound_kib:
            self.memory_problem("peak RSS growth %d KiB over the bound %d KiB" % (
                self.fig["peak_growth_kib"], self.bound_kib))
        return False


PEAK_BOUND_KIB = 64 << 10  # 64 MiB: generous; the measured figures are far below


def report(s, a, verbose):
    print("  [%s] %s" % (a.name, json.dumps(a.fig, sort_keys=True)), flush=True)


# ---------------------------------------------------------------- the attacks

def attack_rapid_reset(H, w, seconds=5.0):
    with Attack(H, w, "rapid_reset") as a:
        req = H.authz_req("users/demo/x").SerializeToString()
        ps = [spawn_flood("rapid_reset", w.port, src_addr(i), seconds,
                          H.path("OnClientAuthorize"), req) for i in range(2)]
        rs = [collect_flood(p, seconds + 30) for p in ps]
        a.during()
        for k in ("conns", "closed", "streams", "connect_failed"):
            a.fig["attacker_" + k] = sum(r.get(k, 0) for r in rs)
        a.fig["attacker_goaway_codes"] = rs[0].get("goaway", {}), rs[1].get("goaway", {})
        for r in rs:
            if "error" in r:
                a.problems.append(r["error"])
        # the reset rate limit (burst 1000, 33/s) ends every attacking connection: the
        # attacker counts what it wrote, ~1000 resets plus what the socket buffers held
        # when the GOAWAY came (unlimited, one connection would carry ~10^5 a second)
        if a.fig["attacker_conns"] < 4 or \
                a.fig["attacker_streams"] > 20000 * a.fig["attacker_conns"]:
            a.problems.append("attackers reset %d streams over %d connections: not limited" %
                              (a.fig["attacker_streams"], a.fig["attacker_conns"]))
        # each flooder's last connection is cut by its own clock, not by warden
        if a.fig["attacker_closed"] < a.fig["attacker_conns"] - 2:
            a.problems.append("only %d of %d attacking connections were closed" % (
                a.fig["attacker_closed"], a.fig["attacker_conns"]))
    return a


def attack_continuation(H, w, seconds=3.0):
    with Attack(H, w, "continuation") as a:
        req = H.authz_req("users/demo/x").SerializeToString()
        r = collect_flood(spawn_flood("continuation", w.port, src_addr(0), seconds,
                                      H.path("OnClientAuthorize"), req), seconds + 30)
        a.during()
        if "error" in r:
            a.problems.append(r["error"])
        for k in ("conns", "closed", "bytes", "max_conn_bytes"):
            a.fig["attacker_" + k] = r.get(k, 0)
        a.fig["attacker_goaway_codes"] = r.get("goaway", {})
        # max_continuations 8: a header block ends after 9 frames of 16 KiB; the attacker
        # sends in batches of 4, and the kernel buffers take a few hundred KiB more
        if r.get("max_conn_bytes", 0) > 8 << 20:
            a.problems.append("one connection took %d bytes of CONTINUATION" %
                              r["max_conn_bytes"])
        if r.get("closed", 0) < r.get("conns", 0) - 1:  # the last one: the flooder's clock
            a.problems.append("%d of %d connections closed" % (r.get("closed"), r.get("conns")))
    return a


def attack_half_sent(H, w, nconns=16, nstreams=64, announce=200_000, part=150_000):
    with Attack(H, w, "half_sent") as a:
        # request_buffer_memory (64 MiB by default) bounds what the streams hold, plus the
        # streams' and connections' own bookkeeping
        a.bound_kib = (64 + 16) << 10
        path = H.path("OnClientAuthenticate")
        block = request_block(path)
        conns, sent, refused = [], 0, 0
        body = grpc_frame(0, b"\x0a" * part, announce)
        try:
            for i in range(nconns):
                c = RawConn(w.port, src_addr(i % 4))
                c.pump(1.0)
                conns.append(c)
                for j in range(nstreams):
                    sid = 2 * j + 1
                    c.open_stream(sid, block)
                    sent += c.send_data(sid, body)
                    c.pump()
            deadline = time.monotonic() + 2
            for c in conns:
                c.pump(max(0.0, min(0.2, deadline - time.monotonic())))
            refused = sum(len(c.answered) for c in conns)
            a.fig["attacker_streams"] = nconns * nstreams
            a.fig["attacker_streams_refused"] = refused
            a.fig["attacker_bytes_sent"] = sent
            rss, hwm = mem_kib(a.pid)
            a.fig["rss_holding_kib"] = rss
            a.during()
            open_before = sum(not c.closed for c in conns)
            a.fig["attacker_conns_open_while_holding"] = open_before
        finally:
            for c in conns:
                c.close()
        # memory returns once they are gone (polled)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            rss, _ = mem_kib(a.pid)
            if rss - a.base_rss < 16 << 10:
                break
            time.sleep(0.05)
        a.fig["rss_after_close_kib"] = rss
        if rss - a.base_rss >= 16 << 10:
            a.memory_problem("RSS %d KiB after the connections closed, %d KiB before" % (
                rss, a.base_rss))
        if refused == 0:
            a.problems.append("no stream was refused: the buffer budgets did not act")
    return a


def attack_bomb(H, w, seconds=3.0):
    with Attack(H, w, "bomb") as a:
        req = H.authz_req("users/demo/x").SerializeToString()
        p = spawn_flood("bomb", w.port, src_addr(0), seconds, H.path("OnClientAuthorize"),
                        req)
        # a real client, compressing with gzip, is refused UNIMPLEMENTED
        import grpc
        with H.channel(w.addr) as ch:
            try:
                ch.unary_unary(H.path("OnClientAuthorize"))(
                    req, timeout=5, compression=grpc.Compression.Gzip)
                a.fig["grpcio_gzip_call"] = "OK"
            except grpc.RpcError as e:
                a.fig["grpcio_gzip_call"] = str(e.code())
        r = collect_flood(p, seconds + 30)
        a.during()
        if "error" in r:
            a.problems.append(r["error"])
        for k in ("conns", "streams", "answered", "sent_bytes", "closed"):
            a.fig["attacker_" + k] = r.get(k, 0)
        a.fig["bomb_compressed_bytes"] = len(gzip_bomb())
        a.fig["bomb_inflated_bytes"] = 128 << 20
        if a.fig["grpcio_gzip_call"] != "StatusCode.UNIMPLEMENTED":
            a.problems.append("gzip call: %s, want UNIMPLEMENTED" % a.fig["grpcio_gzip_call"])
        if r.get("answered", 0) < r.get("streams", 1) * 0.9:
            a.problems.append("%d of %d bomb streams answered trailers-only" % (
                r.get("answered", 0), r.get("streams", 0)))
    return a


def attack_slowloris(H, w, deadline_s, n=20):
    """n connections each: never a byte; the preface then a byte a second (of SETTINGS);
    preface + SETTINGS then a HEADERS frame a byte a second."""
    with Attack(H, w, "slowloris") as a:
        block = frame(HEADERS, END_HEADERS, 1, request_block(H.path("OnClientAuthenticate")))
        kinds = {"silent": b"", "preface_trickle": PREFACE,
                 "headers_trickle": PREFACE + frame(SETTINGS, 0, 0)}
        trickle = {"silent": b"", "preface_trickle": frame(SETTINGS, 0, 0, b"\0\x04" + b"\0" * 4),
                   "headers_trickle": block}
        conns = []  # [kind, conn, sent, closed_at]
        t0 = time.monotonic()
        for i in range(n):
            for k, first in kinds.items():
                c = RawConn(w.port, src_addr(i % 4), preface=False, quiet=True)
                c.send(first)
                conns.append([k, c, 0, None])
        limit = t0 + deadline_s * 2 + 10
        next_byte = time.monotonic()
        while time.monotonic() < limit and any(x[3] is None for x in conns):
            now = time.monotonic()
            if now >= next_byte:
                next_byte = now + 1.0
                for x in conns:
                    k, c = x[0], x[1]
                    if x[3] is None and trickle[k] and x[2] < len(trickle[k]):
                        c.send(trickle[k][x[2]:x[2] + 1])
                        x[2] += 1
            for x in conns:
                if x[3] is None and not x[1].pump():
                    x[3] = time.monotonic() - t0
            time.sleep(0.05)  # the trickle's own pace; closure is polled
        a.during()
        for k in kinds:
            ts = [x[3] for x in conns if x[0] == k]
            done = [t for t in ts if t is not None]
            a.fig[k + "_closed"] = "%d/%d" % (len(done), len(ts))
            a.fig[k + "_max_s"] = round(max(done), 2) if done else None
            if len(done) < len(ts):
                a.problems.append("%s: %d of %d connections still open after %.0f s" % (
                    k, len(ts) - len(done), len(ts), limit - t0))
            elif max(done) > deadline_s + 3:
                a.problems.append("%s: closed after %.1f s, deadline %.1f s" % (
                    k, max(done), deadline_s))
        for x in conns:
            x[1].close()
    return a


def attack_idle_many(H, w, n=2000):
    """n idle connections that did the handshake: memory per connection."""
    with Attack(H, w, "idle_many") as a:
        conns = []
        try:
            for i in range(n):
                c = RawConn(w.port, src_addr(i % 8))
                conns.append(c)
            end = time.monotonic() + 20
            for c in conns:  # every one got warden's SETTINGS: adopted by a worker
                while not c.got_settings and not c.closed and time.monotonic() < end:
                    c.pump(0.2)
            rss, _ = mem_kib(a.pid)
            a.fig["conns"] = n
            a.fig["conns_open"] = sum(not c.closed and c.got_settings for c in conns)
            a.fig["rss_holding_kib"] = rss
            a.fig["kib_per_conn"] = round((rss - a.base_rss) / n, 1)
            if a.fig["conns_open"] != n:
                a.problems.append("%d of %d idle connections were served" % (
                    a.fig["conns_open"], n))
            a.during()
        finally:
            for c in conns:
                c.close()
    return a


def attack_fd_exhaustion(H, w, n=300):
    """n idle connections from one address against a warden allowed 128 fds."""
    with Attack(H, w, "fd_exhaustion") as a:
        socks = []
        try:
            for _ in range(n):
                try:
                    sk = socket.socket()
                    sk.bind((src_addr(0), 0))
                    sk.settimeout(5)
                    sk.connect(("127.0.0.1", w.port))
                    sk.setblocking(False)  # MSG_DONTWAIT alone still polls with a timeout
                    socks.append(sk)
                except OSError:
                    break
            a.fig["attacker_conns"] = len(socks)
            # those over the caps are closed at once: count them (polled)
            end = time.monotonic() + 10
            closed = 0
            while time.monotonic() < end:
                closed = 0
                for sk in socks:
                    try:
                        closed += sk.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed += 1
                if closed >= n - 64:
                    break
                time.sleep(0.05)
            a.fig["attacker_closed_at_once"] = closed
            # a new legit connection is served while they are open (fd headroom, per-peer cap)
            a.fig["new_conn_during"] = fresh_call(H, w.addr)
            if not a.fig["new_conn_during"]:
                a.problems.append("a new connection was not served during the idle flood")
            ok0 = a.legit.ok
            end = time.monotonic() + 10
            while a.legit.ok < ok0 + 3 and time.monotonic() < end:
                time.sleep(0.01)
            a.during()
        finally:
            for sk in socks:
                sk.close()
        end = time.monotonic() + 10  # and after they closed (polled: the listener may pause)
        a.fig["new_conn_after"] = False
        while not a.fig["new_conn_after"] and time.monotonic() < end:
            a.fig["new_conn_after"] = fresh_call(H, w.addr, 2.0)
        if not a.fig["new_conn_after"]:
            a.problems.append("a new connection was not served after the idle flood")
    return a


def attack_per_peer(H, w, limit, n):
    with Attack(H, w, "per_peer", min_during=1) as a:
        conns = []
        try:
            for _ in range(n):
                conns.append(RawConn(w.port, src_addr(5)))
            end = time.monotonic() + 10
            while time.monotonic() < end:
                closed = sum(not c.pump() for c in conns)
                if closed >= n - limit:
                    break
                time.sleep(0.05)
            a.fig["attacker_conns"] = n
            a.fig["attacker_closed_at_once"] = closed
            a.fig["attacker_served"] = sum(c.got_settings and not c.closed for c in conns)
            if closed != n - limit:
                a.problems.append("%d of %d connections from one address closed, want %d" % (
                    closed, n, n - limit))
            a.during()
        finally:
            for c in conns:
                c.close()
        # the address may connect again once its connections are gone (polled)
        end = time.monotonic() + 10
        again = False
        while not again and time.monotonic() < end:
            c = RawConn(w.port, src_addr(5))
            c.pump(0.5)
            again = c.got_settings and not c.closed
            c.close()
        a.fig["reconnect_after_close"] = again
        if not again:
            a.problems.append("the address cannot connect again after closing")
    return a


def attack_glitch(H, w, n=400):
    """Bad requests (no te: trailers) as fast as possible on one connection: the glitch
    limiter ends it with GOAWAY ENHANCE_YOUR_CALM."""
    with Attack(H, w, "glitch", min_during=1) as a:
        bad = b"".join(hpack_literal(k, v) for k, v in [
            (":method", "POST"), (":scheme", "http"),
            (":path", H.path("OnClientAuthenticate")), (":authority", "127.0.0.1"),
            ("content-type", "application/grpc")])
        c = RawConn(w.port, src_addr(0))
        c.pump(1.0)
        c.send(b"".join(frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, bad)
                        for i in range(n)))
        closed = c.wait_closed(time.monotonic() + 10)
        a.fig["bad_requests_sent"] = n
        a.fig["answered_before_goaway"] = len(c.answered)
        a.fig["goaway"] = c.goaway
        a.fig["closed"] = closed
        if c.goaway != ENHANCE_YOUR_CALM or not closed:
            a.problems.append("GOAWAY %s, closed %s: want ENHANCE_YOUR_CALM (11) and a close" % (
                c.goaway, closed))
        # a connection making a few mistakes is not ended
        c2 = RawConn(w.port, src_addr(1))
        c2.pump(1.0)
        c2.send(b"".join(frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, bad)
                         for i in range(20)))
        end = time.monotonic() + 10
        while len(c2.answered) < 20 and c2.pump(0.2) and time.monotonic() < end:
            pass
        a.fig["few_mistakes_answered"] = len(c2.answered)
        if len(c2.answered) < 20 or c2.goaway is not None or c2.closed:
            a.problems.append("20 bad requests: %d answered, GOAWAY %s, closed %s" % (
                len(c2.answered), c2.goaway, c2.closed))
        c.close()
        c2.close()
        a.during()
    return a


# ---------------------------------------------------------------- scenarios

def _scenarios():
    import harness as H
    from harness import Warden

    SCENARIOS = H.Scenarios()
    H2 = ["--set", "transport=h2", "--workers", "2"]

    def warden_nofile(limit):
        class _Limited(Warden):
            def cmd(self):
                return ["prlimit", "--nofile=%d:%d" % (limit, limit)] + super().cmd()
        return _Limited

    def scenario(name, extra=(), nofile=None):
        def deco(fn):
            def wrapped(s, h):
                W = warden_nofile(nofile) if nofile else Warden
                with s.check(name):
                    with W(h, args=H2 + list(extra), name=fn.__name__) as w:
                        a = fn(H, w)
                        report(s, a, True)
                        H.ensure(not a.problems, "\n".join(a.problems))
            wrapped.__name__ = fn.__name__
            SCENARIOS.add(wrapped)
            return wrapped
        return deco

    @scenario("h2_attacks_rapid_reset_served_and_bounded")
    def h2_attacks_rapid_reset(H, w):
        return attack_rapid_reset(H, w)

    @scenario("h2_attacks_continuation_flood_ended_at_max_continuations")
    def h2_attacks_continuation(H, w):
        return attack_continuation(H, w)

    @scenario("h2_attacks_half_sent_streams_held_by_the_buffer_budgets")
    def h2_attacks_half_sent(H, w):
        return attack_half_sent(H, w)

    @scenario("h2_attacks_gzip_bomb_refused_without_inflating")
    def h2_attacks_bomb(H, w):
        return attack_bomb(H, w)

    @scenario("h2_attacks_slow_headers_closed_at_their_deadline",
              ["--set", "handshake_timeout=2s", "--set", "header_timeout=2s"])
    def h2_attacks_slowloris(H, w):
        return attack_slowloris(H, w, 2.0)

    @scenario("h2_attacks_idle_flood_under_128_fds_legit_still_served",
              ["--set", "max_connections_per_peer=32"], nofile=128)
    def h2_attacks_fd_exhaustion(H, w):
        return attack_fd_exhaustion(H, w)

    @scenario("h2_attacks_2000_idle_connections_memory_per_connection")
    def h2_attacks_idle_many(H, w):
        return attack_idle_many(H, w)

    @scenario("h2_attacks_per_peer_limit_closes_the_excess_at_once",
              ["--set", "max_connections_per_peer=16"])
    def h2_attacks_per_peer(H, w):
        a = attack_per_peer(H, w, 16, 40)
        if not w.count(r"max_connections_per_peer \(16\) reached"):
            a.problems.append("no log line for the per-peer limit")
        return a

    @scenario("h2_attacks_glitch_limiter_ends_a_misbehaving_connection")
    def h2_attacks_glitch(H, w):
        return attack_glitch(H, w)

    return SCENARIOS


def register(scenario):
    _scenarios().register(scenario)


# ---------------------------------------------------------------- command line

def _compare(argv):
    """compare --warden W --gen G [--as BYTES]: every attack once, under RLIMIT_AS, figures
    printed, nothing asserted."""
    import argparse
    import tempfile
    import shutil
    ap = argparse.ArgumentParser()
    ap.add_argument("--warden", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--as", dest="as_limit", default=str(2 << 30))
    ap.add_argument("--only", action="append", default=[])
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.abspath(args.gen))
    sys.path.insert(0, HERE)
    import harness as H

    class W(H.Warden):
        def cmd(self):
            return ["prlimit", "--as=%s" % args.as_limit] + \
                (["--nofile=128:128"] if self.nofile else []) + super().cmd()

    class Ctx:
        warden = os.path.abspath(args.warden)
        tmp = tempfile.mkdtemp(prefix="h2-attacks.")

    attacks = [
        ("rapid_reset", attack_rapid_reset, (), [], False),
        ("continuation", attack_continuation, (), [], False),
        ("half_sent", attack_half_sent, (), [], False),
        ("bomb", attack_bomb, (), [], False),
        ("slowloris", attack_slowloris, (10.0,), [], False),
        ("fd_exhaustion", attack_fd_exhaustion, (), [], True),
        ("idle_many", attack_idle_many, (), [], False),
    ]
    try:
        for name, fn, fargs, extra, nofile in attacks:
            if args.only and name not in args.only:
                continue
            w = W(Ctx, args=["--workers", "2"] + extra, name=name)
            w.nofile = nofile
            t0 = time.monotonic()
            try:
                w.start()
                a = fn(H, w, *fargs)
                fig = a.fig
                fig["problems"] = a.problems
            except Exception as e:
                fig = {"attack": name, "error": "%s: %s" % (type(e).__name__, e)}
            fig["alive_after"] = w.alive()
            fig["exit"] = w.proc.poll() if w.proc else None
            t1 = time.monotonic()
            rc = w.stop()
            fig["sigterm_exit"] = rc
            fig["sigterm_s"] = round(time.monotonic() - t1, 2)
            fig["wall_s"] = round(t1 - t0, 1)
            print(json.dumps(fig, sort_keys=True), flush=True)
    finally:
        H.kill_all()
        shutil.rmtree(Ctx.tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "flood":
        name, port, src, seconds, path, req = sys.argv[2:8]
        r = FLOODS[name](int(port), src, float(seconds), path, bytes.fromhex(req))
        print(json.dumps(r))
    elif len(sys.argv) > 1 and sys.argv[1] == "compare":
        _compare(sys.argv[2:])
    else:
        print(__doc__)
        sys.exit(2)
