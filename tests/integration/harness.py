# SPDX-License-Identifier: Apache-2.0
"""Helpers for warden's integration suite (run.py): the check runner, warden process
management, gRPC channels and calls, EMQX-like request builders and a tiny hand-rolled
protobuf encoder (for requests python-protobuf refuses to build).

Runs on Debian's /usr/bin/python3 with python3-grpcio 1.51 and python3-protobuf 4.21. No
grpc_tools: calls go through channel.unary_unary(path) with bytes in and bytes out, and
the replies are parsed with the protoc-generated exhook_pb2 / health_pb2 modules, whose
directory run.py puts on sys.path before importing this module.
"""
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

# The python client's own gRPC core logs TLS handshake failures at ERROR; those are
# expected in the negative TLS checks. Keep the caller's setting for warden itself.
WARDEN_ENV = dict(os.environ)
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
# The harness starts servers with subprocess and a preexec_fn (PR_SET_PDEATHSIG), a fork in
# a process whose gRPC threads are busy; gRPC Python's fork handlers then can abort the
# whole suite (grpc/grpc#31885, #22624: "Aborted" with no test failing, seen once under
# `make tsan`). The children only exec, so the handlers have nothing to do: off.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

import grpc  # noqa: E402  (after GRPC_VERBOSITY and GRPC_ENABLE_FORK_SUPPORT)

import exhook_pb2 as pb  # noqa: E402
import health_pb2 as hpb  # noqa: E402,F401  (re-exported to run.py)

SC = grpc.StatusCode
NODE = "emqx@127.0.0.1"
CALL_TIMEOUT = 10.0  # only to turn a hang into a failure, never a latency assertion
FAST_TIMEOUT = 3.0  # for replies that must come "immediately" (UNIMPLEMENTED)
START_TIMEOUT = 10.0
EXIT_TIMEOUT = 15.0
RELOAD_TIMEOUT = 20.0  # a policy reload (SIGHUP, or a file change after its 200 ms debounce)

# ValuedResponse on the wire: field 1 (type) varint, field 3 (bool_result) varint
ALLOW_RAW = b"\x08\x02\x18\x01"  # STOP_AND_RETURN + bool_result=true
DENY_RAW = b"\x08\x02\x18\x00"  # STOP_AND_RETURN + bool_result=false, explicitly present
IGNORE_RAW = b"\x08\x01"  # IGNORE, no value

CONTINUE = pb.ValuedResponse.CONTINUE
IGNORE = pb.ValuedResponse.IGNORE
STOP = pb.ValuedResponse.STOP_AND_RETURN
PUBLISH = pb.ClientAuthorizeRequest.PUBLISH
SUBSCRIBE = pb.ClientAuthorizeRequest.SUBSCRIBE

# (RPC, request message, hook name, reply kind) -- the 21 RPCs of HookProvider
METHODS = [
    ("OnProviderLoaded", "ProviderLoadedRequest", None, "loaded"),
    ("OnProviderUnloaded", "ProviderUnloadedRequest", None, "empty"),
    ("OnClientConnect", "ClientConnectRequest", "client.connect", "empty"),
    ("OnClientConnack", "ClientConnackRequest", "client.connack", "empty"),
    ("OnClientConnected", "ClientConnectedRequest", "client.connected", "empty"),
    ("OnClientDisconnected", "ClientDisconnectedRequest", "client.disconnected", "empty"),
    ("OnClientAuthenticate", "ClientAuthenticateRequest", "client.authenticate", "authn"),
    ("OnClientAuthorize", "ClientAuthorizeRequest", "client.authorize", "authz"),
    ("OnClientSubscribe", "ClientSubscribeRequest", "client.subscribe", "empty"),
    ("OnClientUnsubscribe", "ClientUnsubscribeRequest", "client.unsubscribe", "empty"),
    ("OnSessionCreated", "SessionCreatedRequest", "session.created", "empty"),
    ("OnSessionSubscribed", "SessionSubscribedRequest", "session.subscribed", "empty"),
    ("OnSessionUnsubscribed", "SessionUnsubscribedRequest", "session.unsubscribed", "empty"),
    ("OnSessionResumed", "SessionResumedRequest", "session.resumed", "empty"),
    ("OnSessionDiscarded", "SessionDiscardedRequest", "session.discarded", "empty"),
    ("OnSessionTakenover", "SessionTakenoverRequest", "session.takenover", "empty"),
    ("OnSessionTerminated", "SessionTerminatedRequest", "session.terminated", "empty"),
    ("OnMessagePublish", "MessagePublishRequest", "message.publish", "publish"),
    ("OnMessageDelivered", "MessageDeliveredRequest", "message.delivered", "empty"),
    ("OnMessageDropped", "MessageDroppedRequest", "message.dropped", "empty"),
    ("OnMessageAcked", "MessageAckedRequest", "message.acked", "empty"),
]
ALL_HOOKS = [m[2] for m in METHODS if m[2]]
MESSAGE_HOOKS = {"message.publish", "message.delivered", "message.acked", "message.dropped"}
DEFAULT_HOOKS = ["client.authenticate", "client.authorize", "client.disconnected"]


def path(method, version="v2"):
    return "/emqx.exhook.%s.HookProvider/%s" % (version, method)


HEALTH_PATH = "/grpc.health.v1.Health/Check"


class Scenarios:
    """A module's list of scenarios: decorate each with `add`; run.py calls `register` with
    its own `scenario` decorator (so `--only`/`--list` see them in registration order)."""

    def __init__(self):
        self.fns = []

    def add(self, fn):
        self.fns.append(fn)
        return fn

    def register(self, scenario):
        for fn in self.fns:
            scenario(fn)


class CheckFailed(Exception):
    pass


def ensure(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def hexb(b):
    return b.hex(" ") if isinstance(b, (bytes, bytearray)) else repr(b)


# ---------------------------------------------------------------- check runner

class Suite:
    """Records named checks. `with suite.check("name"):` runs a block as one check: any
    exception inside fails that check (with its message) and the run goes on."""

    def __init__(self, verbose=False, only=None):
        self.verbose = verbose
        self.only = only
        self.passed = 0
        self.failed = 0
        self.failures = []

    def wanted(self, name):
        return not self.only or any(o in name for o in self.only)

    def record(self, name, ok, reason="", secs=None):
        tm = " (%.2fs)" % secs if (self.verbose and secs is not None) else ""
        if ok:
            self.passed += 1
            print("PASS %s%s" % (name, tm), flush=True)
        else:
            self.failed += 1
            self.failures.append(name)
            lines = str(reason).rstrip().splitlines() or ["(no reason)"]
            print("FAIL %s: %s%s" % (name, lines[0], tm), flush=True)
            for ln in lines[1:]:
                print("    " + ln, flush=True)

    def check(self, name):
        return _Check(self, name)


class _Check:
    def __init__(self, suite, name):
        self.suite, self.name = suite, name

    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __exit__(self, et, ev, tb):
        secs = time.monotonic() - self.t0
        if et is None:
            self.suite.record(self.name, True, secs=secs)
        elif issubclass(et, (CheckFailed, AssertionError)):
            self.suite.record(self.name, False, str(ev), secs)
        elif issubclass(et, grpc.RpcError):
            self.suite.record(self.name, False, "unexpected RPC error %s: %r" % (
                _code(ev), _details(ev)), secs)
        elif issubclass(et, Exception):
            self.suite.record(self.name, False, "%s: %s" % (et.__name__, ev), secs)
        else:
            return False  # KeyboardInterrupt, SystemExit
        return True


# ---------------------------------------------------------------- warden processes

_LISTEN_RE = re.compile(r"listening on (\S+) \((h2c|tls|mtls)\)")
_ALL_PROCS = []
_ALL_PROCS_LOCK = threading.Lock()


def kill_all():
    """Last-resort cleanup: SIGKILL every warden this run started that is still alive."""
    with _ALL_PROCS_LOCK:
        procs = list(_ALL_PROCS)
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except Exception:
                pass


def tail(text, n=15):
    lines = text.rstrip().splitlines()
    return "\n".join(("| " + ln) for ln in lines[-n:]) if lines else "| (empty)"


class Warden:
    """One warden process. stderr goes to <dir>/warden.log, stdout to <dir>/stdout.

    w = Warden(h, config="...", args=[...]); w.start() waits for the "listening on" line
    and sets w.port / w.mode. Use as a context manager: on exit it sends SIGTERM, waits,
    SIGKILLs if needed, and (if the block raised nothing) fails when the exit code is not
    0, since a clean SIGTERM shutdown must exit 0."""

    def __init__(self, h, config=None, args=(), listen="127.0.0.1:0", name="warden"):
        self.h = h
        self.dir = tempfile.mkdtemp(prefix=name + ".", dir=h.tmp)
        self.config = config
        self.args = list(args)
        self.listen = listen
        self.proc = None
        self.port = None
        self.host = None
        self.mode = None
        self.rc = None
        self.log_path = os.path.join(self.dir, "warden.log")
        self.out_path = os.path.join(self.dir, "stdout")
        self.config_path = None
        if config is not None:
            self.config_path = os.path.join(self.dir, "warden.conf")
            with open(self.config_path, "w") as f:
                f.write(config)

    def cmd(self):
        c = [self.h.warden]
        if self.config_path:
            c += ["--config", self.config_path]
        if self.listen:
            c += ["--listen", self.listen]
        return c + self.args

    def spawn(self):
        with open(self.log_path, "wb") as err, open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(self.cmd(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, env=WARDEN_ENV, close_fds=True)
        with _ALL_PROCS_LOCK:
            _ALL_PROCS.append(self.proc)
        return self

    def start(self, timeout=START_TIMEOUT):
        self.spawn()
        deadline = time.monotonic() + timeout
        while True:
            m = _LISTEN_RE.search(self.log())
            if m:
                addr, self.mode = m.group(1), m.group(2)
                self.host, _, port = addr.rpartition(":")
                self.port = int(port)
                return self
            rc = self.proc.poll()
            if rc is not None:
                self.rc = rc
                raise CheckFailed("warden exited with %s before listening\n  cmd: %s\n%s" % (
                    rc, " ".join(self.cmd()), tail(self.log())))
            if time.monotonic() > deadline:
                raise CheckFailed("no 'listening on' log line within %gs\n  cmd: %s\n%s" % (
                    timeout, " ".join(self.cmd()), tail(self.log())))
            time.sleep(0.02)

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def log_bytes(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def log(self):
        return self.log_bytes().decode("utf-8", "replace")

    def count(self, pattern):
        """How many log lines match the regex `pattern`."""
        return len(re.findall(pattern, self.log(), re.M))

    def wait_count(self, pattern, n, what, timeout=RELOAD_TIMEOUT):
        """Polls the log until at least n lines match `pattern` (never a fixed sleep: the
        timeout only turns a reload that never happens into a failure). Returns the count."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.count(pattern)
            if c >= n:
                return c
            if not self.alive():
                raise CheckFailed("%s: warden exited (%s) while waiting\n%s" % (
                    what, self.proc.poll(), tail(self.log())))
            if time.monotonic() > deadline:
                raise CheckFailed("%s: %d log lines match %r within %gs, want %d\n%s" % (
                    what, c, pattern, timeout, n, tail(self.log())))
            time.sleep(0.01)

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig=signal.SIGTERM):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout=EXIT_TIMEOUT):
        """Waits for exit; returns the exit code, or None on timeout."""
        try:
            self.rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.rc

    def stop(self, timeout=EXIT_TIMEOUT):
        """SIGTERM, wait, SIGKILL if still alive. Returns the exit code ("killed" if it had
        to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self.rc = self.proc.returncode
            return self.rc
        self.proc.send_signal(signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is None:
            self.proc.kill()
            self.proc.wait()
            self.rc = "killed (no exit within %gs of SIGTERM)" % timeout
        return self.rc

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, et, ev, tb):
        rc = self.stop()
        if et is None and rc != 0 and self.proc is not None:
            raise CheckFailed("warden exit status after SIGTERM: %s (want 0)\n%s" % (
                rc, tail(self.log())))
        return False


def run_warden(h, args, timeout=EXIT_TIMEOUT):
    """Runs warden to completion (for --help, --check-config, failing starts). Returns
    (rc, stdout, stderr); rc is None if it did not exit within the timeout (then killed)."""
    p = subprocess.Popen([h.warden] + list(args), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=WARDEN_ENV)
    with _ALL_PROCS_LOCK:
        _ALL_PROCS.append(p)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        rc = None
    err = err.decode("utf-8", "replace")
    note_output(" ".join([os.path.basename(h.warden)] + list(args)), err)
    return rc, out.decode("utf-8", "replace"), err


# ---------------------------------------------------------------- sanitizer reports

# The first line of a report by each sanitizer the suite runs under: `make sanitize` (ASan,
# LeakSanitizer, UBSan) and `make tsan` (ThreadSanitizer)
_SAN_RE = re.compile(r"^(WARNING: ThreadSanitizer: .*|==\d+==ERROR: \w+Sanitizer: .*|"
                     r"\S+:\d+:\d+: runtime error: .*)$", re.M)
SAN_REPORTS = []  # (who, excerpt) found in output held in memory (run_warden, ops.run)


def sanitizer_report(text, lines=40):
    """The first sanitizer report in text (its first `lines` lines), or None."""
    m = _SAN_RE.search(text)
    if not m:
        return None
    return "\n".join(text[m.start():].splitlines()[:lines])


def note_output(who, text):
    """Remembers a sanitizer report in the stderr of a warden run to completion."""
    r = sanitizer_report(text)
    if r:
        SAN_REPORTS.append((who, r))


class SanitizerWatch:
    """Finds sanitizer reports in every warden.log under the run's temp dir (each file read
    on from where the last look stopped) and in the output noted by note_output. run.py
    looks after every scenario: a report fails the run even when the check that started
    that warden passed, because warden went on running (a sanitizer that does not halt),
    was killed, or was expected to exit non-zero (TSan's exitcode 66 is not 0, but neither
    is a refused configuration's)."""

    def __init__(self, root):
        self.root = root
        self.seen = {}

    def new_reports(self):
        found = []
        for dirpath, _, files in os.walk(self.root):
            if "warden.log" not in files:
                continue
            p = os.path.join(dirpath, "warden.log")
            off = self.seen.get(p, 0)
            try:
                with open(p, "rb") as f:
                    f.seek(off)
                    data = f.read()
            except OSError:
                continue
            end = data.rfind(b"\n") + 1  # a line still being written: read it next time
            self.seen[p] = off + end
            r = sanitizer_report(data[:end].decode("utf-8", "replace"))
            if r:
                found.append((p, r))
        while SAN_REPORTS:
            found.append(SAN_REPORTS.pop(0))
        return found


def write_file(h, name, text, subdir=None):
    """Writes text to a new file in a directory of its own (so a policy watcher of one
    check never sees another check's files); returns its absolute path."""
    d = tempfile.mkdtemp(prefix="cfg.", dir=h.tmp)
    if subdir:
        d = os.path.join(d, subdir)
        os.mkdir(d)
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def replace_file(p, text):
    """Replaces a file atomically, the way deployment tools do: write a temporary file in
    the same directory, then rename it over the old one."""
    tmp = os.path.join(os.path.dirname(p), ".%s.tmp" % os.path.basename(p))
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, p)


# warden's reload log lines (src/main.c): "<why>: policy PATH reloaded (generation N)" and
# "<why>: policy reload failed (REASON); still serving generation N", <why> being
# "SIGHUP" or "policy file changed"
SIGHUP_OK = r"INFO +main: SIGHUP: policy .* reloaded \(generation \d+\)$"
SIGHUP_FAIL = r"ERROR +main: SIGHUP: policy reload failed \(.*\); still serving generation \d+$"
CHANGE_OK = r"INFO +main: policy file changed: policy .* reloaded \(generation \d+\)$"
CHANGE_FAIL = (r"ERROR +main: policy file changed: policy reload failed \(.*\); "
               r"still serving generation \d+$")
ANY_CHANGE = r"main: policy file changed: "


# ---------------------------------------------------------------- channels and calls

def channel(addr, creds=None, override=None, options=()):
    # each channel gets its own subchannel pool, i.e. its own TCP connection, like the
    # workers of EMQX's pool; nothing is shared between checks
    opts = [("grpc.use_local_subchannel_pool", 1)] + list(options)
    if override:
        opts.append(("grpc.ssl_target_name_override", override))
    if creds is None:
        return grpc.insecure_channel(addr, options=opts)
    return grpc.secure_channel(addr, creds, options=opts)


def raw_call(ch, p, data, timeout=CALL_TIMEOUT):
    """Unary call with bytes in, bytes out (no (de)serializer): returns the reply message
    exactly as it was on the wire (b"" for an empty message)."""
    return ch.unary_unary(p)(data, timeout=timeout)


def call_status(ch, p, data, timeout=CALL_TIMEOUT):
    """Returns (StatusCode, reply bytes or None, details)."""
    try:
        return SC.OK, raw_call(ch, p, data, timeout), ""
    except grpc.RpcError as e:
        return _code(e), None, _details(e)


def _code(e):
    try:
        return e.code()
    except Exception:
        return None


def _details(e):
    try:
        return e.details()
    except Exception:
        return ""


def parse_valued(raw):
    ensure(isinstance(raw, bytes), "reply is %r, not a message" % (raw,))
    return pb.ValuedResponse.FromString(raw)


def describe_valued(raw):
    try:
        r = parse_valued(raw)
    except Exception as e:
        return "unparsable (%s) raw=%s" % (e, hexb(raw))
    name = pb.ValuedResponse.ResponsedType.Name(r.type) if r.type in (0, 1, 2) else r.type
    which = r.WhichOneof("value")
    v = getattr(r, which) if which else None
    if which == "message":
        v = "<message topic=%r>" % r.message.topic
    return "type=%s %s=%r raw=%s" % (name, which or "value", v, hexb(raw))


def expect_raw(raw, want, what):
    ensure(raw == want, "%s: reply %s, want %s" % (what, describe_valued(raw), hexb(want)))


def expect_bool(raw, rtype, value, what):
    """ValuedResponse with this type and bool_result == value, present on the wire."""
    r = parse_valued(raw)
    ok = (r.type == rtype and r.WhichOneof("value") == "bool_result"
          and r.HasField("bool_result") and r.bool_result == value)
    ensure(ok, "%s: reply %s, want type=%s bool_result=%r" % (
        what, describe_valued(raw), pb.ValuedResponse.ResponsedType.Name(rtype), value))


def expect_ignore(raw, what):
    r = parse_valued(raw)
    ensure(r.type == IGNORE and r.WhichOneof("value") is None,
           "%s: reply %s, want type=IGNORE and no value" % (what, describe_valued(raw)))
    expect_raw(raw, IGNORE_RAW, what)


def expect_code(ch, p, data, want, what, timeout=CALL_TIMEOUT):
    code, reply, details = call_status(ch, p, data, timeout)
    ensure(code == want, "%s: got %s%s, want %s" % (
        what, code, (" reply=" + hexb(reply)) if code == SC.OK else " (%s)" % details, want))


# ---------------------------------------------------------------- requests, as EMQX fills them

def meta(version="v2"):
    return pb.RequestMeta(node=NODE, version="5.8.11" if version == "v2" else "6.0.0",
                          sysdescr="EMQX", cluster_name="emqxcl")


def clientinfo(clientid="client-1", username="demo", password="", **kw):
    ci = dict(node=NODE, clientid=clientid, username=username, password=password,
              peerhost="127.0.0.1", sockport=1883, protocol="mqtt", mountpoint="",
              is_superuser=False, anonymous=False, peerport=54321)
    ci.update(kw)
    return pb.ClientInfo(**ci)


def conninfo(clientid="client-1", username="demo"):
    return pb.ConnInfo(node=NODE, clientid=clientid, username=username, peerhost="127.0.0.1",
                       sockport=1883, proto_name="MQTT", proto_ver="5", keepalive=60,
                       peerport=54321)


def message(topic="t/1", payload=b"hello", qos=1, **kw):
    m = dict(node=NODE, id="0006263B5E4A6F0AF44200000B4E0002", qos=qos, topic=topic,
             payload=payload, timestamp=1764000000123,
             headers={"peerhost": "127.0.0.1", "username": "demo", "protocol": "mqtt",
                      "proto_ver": "5"})
    m["from"] = "client-1"
    m.update(kw)
    return pb.Message(**m)


def props():
    return [pb.Property(name="Session-Expiry-Interval", value="0"),
            pb.Property(name="Receive-Maximum", value="32")]


def user_props():
    return [pb.Property(name="tenant", value="acme"), pb.Property(name="zone", value="eu-1")]


def authn_req(username, password, version="v2", result=False, clientid="client-1"):
    return pb.ClientAuthenticateRequest(
        clientinfo=clientinfo(clientid=clientid, username=username, password=password),
        result=result, meta=meta(version))


def authz_req(topic="t/1", rtype=PUBLISH, version="v2", result=True, username="demo",
              clientid="client-1"):
    return pb.ClientAuthorizeRequest(
        clientinfo=clientinfo(clientid=clientid, username=username), type=rtype, topic=topic,
        result=result, meta=meta(version))


def publish_req(msg, version="v2"):
    r = pb.MessagePublishRequest(message=msg, meta=meta(version))
    if version != "v2":
        r.props.extend([pb.Property(name="Message-Expiry-Interval", value="30")])
        r.user_props.extend(user_props())
    return r


def build_request(method, version="v2"):
    """A realistic request for any of the 21 RPCs (v3-only fields only on the v3 path)."""
    v3 = version != "v2"
    M = meta(version)
    ci = clientinfo()
    msg = message()
    if method == "OnProviderLoaded":
        return pb.ProviderLoadedRequest(
            broker=pb.BrokerInfo(version=M.version, sysdescr="EMQX", uptime=123456,
                                 datetime="2026-11-24T10:00:00.000+00:00"), meta=M)
    if method == "OnProviderUnloaded":
        return pb.ProviderUnloadedRequest(meta=M)
    if method == "OnClientConnect":
        r = pb.ClientConnectRequest(conninfo=conninfo(), props=props(), meta=M)
        if v3:
            r.user_props.extend(user_props())
        return r
    if method == "OnClientConnack":
        r = pb.ClientConnackRequest(conninfo=conninfo(), result_code="success",
                                    props=[pb.Property(name="Topic-Alias-Maximum", value="65535")],
                                    meta=M)
        if v3:
            r.user_props.extend(user_props())
        return r
    if method == "OnClientConnected":
        return pb.ClientConnectedRequest(clientinfo=ci, meta=M)
    if method == "OnClientDisconnected":
        return pb.ClientDisconnectedRequest(clientinfo=ci, reason="normal", meta=M)
    if method == "OnClientAuthenticate":
        return authn_req("demo", "demo", version)
    if method == "OnClientAuthorize":
        return authz_req("t/1", PUBLISH, version)
    if method in ("OnClientSubscribe", "OnClientUnsubscribe"):
        tfs = [pb.TopicFilter(name="t/#", subopts=pb.SubOpts(qos=1)),
               pb.TopicFilter(name="sensors/+/temp",
                              subopts=pb.SubOpts(qos=2, rh=2, rap=1, nl=1))]
        cls = pb.ClientSubscribeRequest if method == "OnClientSubscribe" \
            else pb.ClientUnsubscribeRequest
        r = cls(clientinfo=ci, props=[pb.Property(name="Subscription-Identifier", value="7")],
                topic_filters=tfs, meta=M)
        if v3:
            r.user_props.extend(user_props())
        return r
    if method == "OnSessionCreated":
        return pb.SessionCreatedRequest(clientinfo=ci, meta=M)
    if method == "OnSessionSubscribed":
        return pb.SessionSubscribedRequest(clientinfo=ci, topic="t/#",
                                           subopts=pb.SubOpts(qos=1, rh=0, rap=0, nl=0), meta=M)
    if method == "OnSessionUnsubscribed":
        return pb.SessionUnsubscribedRequest(clientinfo=ci, topic="t/#", meta=M)
    if method == "OnSessionResumed":
        return pb.SessionResumedRequest(clientinfo=ci, meta=M)
    if method == "OnSessionDiscarded":
        return pb.SessionDiscardedRequest(clientinfo=ci, meta=M)
    if method == "OnSessionTakenover":
        return pb.SessionTakenoverRequest(clientinfo=ci, meta=M)
    if method == "OnSessionTerminated":
        return pb.SessionTerminatedRequest(clientinfo=ci, reason="takenover", meta=M)
    if method == "OnMessagePublish":
        return publish_req(msg, version)
    if method == "OnMessageDelivered":
        return pb.MessageDeliveredRequest(clientinfo=clientinfo(clientid="client-2"),
                                          message=msg, meta=M)
    if method == "OnMessageDropped":
        return pb.MessageDroppedRequest(message=msg, reason="no_subscribers", meta=M)
    if method == "OnMessageAcked":
        return pb.MessageAckedRequest(clientinfo=clientinfo(clientid="client-2"), message=msg,
                                      meta=M)
    raise ValueError(method)


# ---------------------------------------------------------------- hand-rolled protobuf

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_len(num, data):
    """A length-delimited field (string/bytes/message) with arbitrary bytes."""
    return varint(num << 3 | 2) + varint(len(data)) + bytes(data)


def f_varint(num, v):
    return varint(num << 3) + varint(v)


def authn_req_bytes_with(field_num, value, version="v2"):
    """ClientAuthenticateRequest whose ClientInfo string field `field_num` holds the raw
    bytes `value` (e.g. a NUL or invalid UTF-8), the rest filled like EMQX does."""
    ci = clientinfo(username="demo", password="demo")
    ci.ClearField(pb.ClientInfo.DESCRIPTOR.fields_by_number[field_num].name)
    ci_bytes = ci.SerializeToString() + f_len(field_num, value)
    return f_len(1, ci_bytes) + f_len(3, meta(version).SerializeToString())


def authz_req_bytes_with_topic(topic_bytes, version="v2"):
    r = authz_req("x", PUBLISH, version)
    r.ClearField("topic")
    return r.SerializeToString() + f_len(3, topic_bytes)
