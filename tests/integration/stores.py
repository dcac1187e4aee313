# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, credential stores: Redis (EMQX's layout), JWT, the cache and the
sessions, end to end through the real daemon (docs/redis.md, docs/jwt.md, docs/cache.md,
docs/sessions.md, docs/configuration.md).

Loaded by run.py (`stores.register(scenario)`); every scenario is named stores_*, so
`run.py --only stores` runs them all. Each scenario starts its own redis-server
(/usr/bin/redis-server, a random loopback port 21000-31999, a temp dir, no persistence,
stopped by PID) and its own wardens, and ends with one check that every warden exits 0 on
SIGTERM and that no password, stored hash, token signature or secret reached its log.

No third-party Python packages: Redis is spoken through a small RESP client over a socket,
JWTs are minted here (HS* with hmac, RS*/ES* by `openssl dgst -sign`, the ES DER signature
converted to r||s). Nothing waits by a fixed sleep: state changes are polled with deadlines
that only turn a hang into a failure.
"""
import atexit
import base64
import collections
import ctypes
import hashlib
import hmac
import json
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

import grpc

import harness as H
from harness import ALLOW_RAW, DENY_RAW, PUBLISH, SUBSCRIBE, CheckFailed, Warden, ensure, pb

REDIS_SERVER = "/usr/bin/redis-server"
PORT_RANGE = (21000, 31999)  # below Linux's ephemeral range (32768-60999)
REDIS_START_TIMEOUT = 10.0
RECOVER_TIMEOUT = 30.0  # Redis back: warden reconnects by itself (backoff capped at 5 s)
FAIL_TIMEOUT = 10.0  # Redis gone: requests that need it are refused
OPENSSL = "openssl"

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`


# ====================================================================== Redis

class RedisError(Exception):
    pass


class Resp:
    """A minimal RESP2 client: one blocking socket, argv commands, binary-safe."""

    def __init__(self, port, password=None, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        if password is not None:
            self.cmd("AUTH", password)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode("utf-8")
            elif isinstance(a, int):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RedisError("connection closed by redis")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RedisError(rest.decode("utf-8", "replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n + 2)[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RedisError("bad RESP reply %r" % line[:60])

    def cmd(self, *args):
        self.sock.sendall(self.encode(args))
        return self._reply()


_REDISES = []
_REDISES_LOCK = threading.Lock()


def _kill_redises():
    with _REDISES_LOCK:
        procs = [r.proc for r in _REDISES if r.proc is not None]
    for p in procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
                p.wait(5)
            except Exception:
                pass


atexit.register(_kill_redises)


def _pdeathsig():
    # the redis-server child dies with this test process, whatever happens to it
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Redis:
    """One redis-server child on a random loopback port, in its own temp dir."""

    def __init__(self, h, password=None, unixsocket=False):
        self.h = h
        self.password = password
        self.dir = tempfile.mkdtemp(prefix="redis.", dir=h.tmp)
        self.socket = os.path.join(self.dir, "redis.sock") if unixsocket else None
        self.port = None
        self.proc = None
        self.conn = None
        self.paused = False
        with _REDISES_LOCK:
            _REDISES.append(self)

    def _argv(self, port):
        a = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""]
        if self.password:
            a += ["--requirepass", self.password]
        if self.socket:
            a += ["--unixsocket", self.socket, "--unixsocketperm", "700"]
        return a

    def log(self):
        try:
            with open(os.path.join(self.dir, "redis.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _try(self, port, deadline):
        """Spawns on `port`; True when it answers PING as our own child, False when it
        exited (port taken)."""
        with open(os.path.join(self.dir, "redis.log"), "ab") as lf:
            self.proc = subprocess.Popen(self._argv(port), stdin=subprocess.DEVNULL, stdout=lf,
                                         stderr=subprocess.STDOUT, close_fds=True,
                                         preexec_fn=_pdeathsig)
        while True:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            try:
                c = Resp(port, self.password, timeout=2.0)
                try:
                    if c.cmd("PING") == "PONG":
                        info = c.cmd("INFO", "server").decode()
                        m = re.search(r"process_id:(\d+)", info)
                        if m and int(m.group(1)) == self.proc.pid:
                            self.port = port
                            self.conn = c
                            return True
                        # another server answers on this port: ours will fail to bind
                finally:
                    if self.conn is not c:
                        c.close()
            except (OSError, RedisError):
                pass
            if time.monotonic() > deadline:
                self._kill()
                raise CheckFailed("redis-server on port %d did not answer PING within %gs\n%s"
                                  % (port, REDIS_START_TIMEOUT, H.tail(self.log())))
            time.sleep(0.01)

    def start(self):
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        for _ in range(40):
            if self._try(random.randint(*PORT_RANGE), deadline):
                return self
            if time.monotonic() > deadline:
                break
        raise CheckFailed("could not start redis-server on a free port\n%s" % H.tail(self.log()))

    def restart(self):
        """Stops the server and starts a new one on the same port (empty: no persistence)."""
        self.stop()
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while not self._try(self.port, deadline):
            if time.monotonic() > deadline:
                raise CheckFailed("redis-server could not bind its old port %d again\n%s" % (
                    self.port, H.tail(self.log())))
            time.sleep(0.05)
        return self

    def cmd(self, *args):
        if self.conn is None:
            self.conn = Resp(self.port, self.password)
        try:
            return self.conn.cmd(*args)
        except OSError:
            self.conn.close()
            self.conn = None
            raise

    def hset(self, key, mapping):
        args = ["HSET", key]
        for k, v in mapping.items():
            args += [k, v]
        return self.cmd(*args)

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)  # a paused server cannot handle SIGTERM
            self.paused = False
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        self.proc = None


# ====================================================================== JWT minting

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jdump(o):
    return json.dumps(o, separators=(",", ":")).encode()


_HS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_DGST = {"256": "-sha256", "384": "-sha384", "512": "-sha512"}


def signing_input(header, claims):
    """header/claims: dicts, or bytes used verbatim (for malformed JSON)."""
    hb = header if isinstance(header, bytes) else jdump(header)
    cb = claims if isinstance(claims, bytes) else jdump(claims)
    return b64u(hb) + "." + b64u(cb)


def jwt_hs(claims, secret, alg="HS256", kid=None, header=None, mac_alg=None):
    hd = header if header is not None else dict({"alg": alg, "typ": "JWT"},
                                                **({"kid": kid} if kid else {}))
    si = signing_input(hd, claims)
    key = secret if isinstance(secret, bytes) else secret.encode()
    sig = hmac.new(key, si.encode(), _HS[mac_alg or alg]).digest()
    return si + "." + b64u(sig)


def openssl_sign(keyfile, alg, data):
    r = subprocess.run([OPENSSL, "dgst", _DGST[alg[2:]], "-sign", keyfile], input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if r.returncode != 0:
        raise CheckFailed("openssl dgst -sign failed: %s" % r.stderr.decode(errors="replace"))
    return r.stdout


def der_to_raw(der, n):
    """An ECDSA DER signature SEQUENCE{INTEGER r, INTEGER s} to JOSE's r||s."""
    ensure(der[0] == 0x30, "not a DER sequence")
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        ensure(der[i] == 0x02, "not a DER integer")
        ln = der[i + 1]
        v = der[i + 2:i + 2 + ln]
        i += 2 + ln
        out += v.lstrip(b"\x00").rjust(n, b"\x00")
    return out


def jwt_pk(claims, keyfile, alg, kid=None, header=None, der=False):
    hd = header if header is not None else dict({"alg": alg, "typ": "JWT"},
                                                **({"kid": kid} if kid else {}))
    si = signing_input(hd, claims)
    sig = openssl_sign(keyfile, alg, si.encode())
    if alg.startswith("ES") and not der:
        sig = der_to_raw(sig, {"256": 32, "384": 48, "512": 66}[alg[2:]])
    return si + "." + b64u(sig)


def _run(argv, what):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise CheckFailed("%s failed (%d): %s" % (what, r.returncode,
                                                   r.stderr.decode(errors="replace")))
    return r.stdout


class Keys:
    """Test key pairs, made once per run with the openssl CLI."""

    _cache = {}

    def __init__(self, h):
        self.d = tempfile.mkdtemp(prefix="keys.", dir=h.tmp)
        self.rsa = os.path.join(self.d, "rsa.pem")
        self.rsa_pub = os.path.join(self.d, "rsa.pub.pem")
        self.rsa2 = os.path.join(self.d, "rsa2.pem")
        self.ec = os.path.join(self.d, "ec.pem")
        self.ec_pub = os.path.join(self.d, "ec.pub.pem")
        for k in (self.rsa, self.rsa2):
            _run([OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                  "-out", k], "openssl genpkey RSA")
        _run([OPENSSL, "pkey", "-in", self.rsa, "-pubout", "-out", self.rsa_pub], "openssl pkey")
        _run([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-out", self.ec], "openssl genpkey EC")
        _run([OPENSSL, "pkey", "-in", self.ec, "-pubout", "-out", self.ec_pub], "openssl pkey")
        with open(self.rsa_pub, "rb") as f:
            self.rsa_pub_pem = f.read()
        mod = _run([OPENSSL, "rsa", "-in", self.rsa, "-noout", "-modulus"], "openssl rsa")
        self.rsa_n = b64u(bytes.fromhex(mod.decode().strip().split("=", 1)[1]))
        spki = _run([OPENSSL, "pkey", "-pubin", "-in", self.ec_pub, "-outform", "DER"],
                    "openssl pkey DER")
        pt = spki[-65:]
        ensure(pt[0] == 4, "EC point not uncompressed")
        self.ec_x, self.ec_y = b64u(pt[1:33]), b64u(pt[33:65])
        self.small = os.path.join(self.d, "rsa1024.pem")
        self.small_pub = os.path.join(self.d, "rsa1024.pub.pem")
        _run([OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
              "-out", self.small], "openssl genpkey RSA 1024")
        _run([OPENSSL, "pkey", "-in", self.small, "-pubout", "-out", self.small_pub],
             "openssl pkey")
        mod = _run([OPENSSL, "rsa", "-in", self.small, "-noout", "-modulus"], "openssl rsa")
        self.small_n = b64u(bytes.fromhex(mod.decode().strip().split("=", 1)[1]))

    @classmethod
    def get(cls, h):
        if h.tmp not in cls._cache:
            cls._cache[h.tmp] = Keys(h)
        return cls._cache[h.tmp]


# ====================================================================== requests

def authn(ch, user, pw, clientid="client-1", peerport=54321, version="v2"):
    req = pb.ClientAuthenticateRequest(
        clientinfo=H.clientinfo(clientid=clientid, username=user, password=pw,
                                peerport=peerport),
        result=False, meta=H.meta(version))
    return H.raw_call(ch, H.path("OnClientAuthenticate", version), req.SerializeToString())


def authz(ch, topic, rtype=PUBLISH, username="demo", clientid="client-1", version="v2", **ci):
    req = H.authz_req(topic, rtype, version, True, username, clientid)
    for k, v in ci.items():
        setattr(req.clientinfo, k, v)
    return H.raw_call(ch, H.path("OnClientAuthorize", version), req.SerializeToString())


def disconnect(ch, clientid, username, peerport=54321, version="v2"):
    req = pb.ClientDisconnectedRequest(
        clientinfo=H.clientinfo(clientid=clientid, username=username, peerport=peerport),
        reason="normal", meta=H.meta(version))
    raw = H.raw_call(ch, H.path("OnClientDisconnected", version), req.SerializeToString())
    ensure(raw == b"", "OnClientDisconnected: reply %r, want EmptySuccess" % (raw,))


def short(v, n=40):
    r = repr(v)
    return r if len(r) <= n else r[:n] + "...(%d chars)" % len(v)


class Errs:
    """Collects every wrong answer of a check, then fails once with all of them."""

    def __init__(self):
        self.e = []

    def _got(self, fn):
        try:
            return fn()
        except grpc.RpcError as e:
            return "RPC error %s %r" % (H._code(e), H._details(e))

    def want(self, allow, fn, what):
        raw = self._got(fn)
        want = ALLOW_RAW if allow else DENY_RAW
        if raw != want:
            got = H.describe_valued(raw) if isinstance(raw, bytes) else raw
            self.e.append("%s: got %s, want %s" % (what, got, "ALLOW" if allow else "DENY"))

    def done(self):
        ensure(not self.e, "%d wrong answer(s):\n%s" % (len(self.e), "\n".join(self.e)))


def decision(raw):
    return "ALLOW" if raw == ALLOW_RAW else "DENY" if raw == DENY_RAW else \
        (H.describe_valued(raw) if isinstance(raw, bytes) else str(raw))


def poll_until(fn, want, timeout, what, consecutive=1):
    """Calls fn() (returns reply bytes) until it returns `want` `consecutive` times in a
    row; the deadline only turns a hang into a failure."""
    deadline = time.monotonic() + timeout
    streak, last = 0, None
    while True:
        try:
            last = fn()
        except grpc.RpcError as e:
            last = "RPC error %s %r" % (H._code(e), H._details(e))
        streak = streak + 1 if last == want else 0
        if streak >= consecutive:
            return
        if time.monotonic() > deadline:
            raise CheckFailed("%s: no %d x %s in a row within %gs (last reply: %s)" % (
                what, consecutive, decision(want), timeout, decision(last)))
        time.sleep(0.05)


# ====================================================================== scenario environment

class Env:
    """Wardens, Redis servers and secrets of one scenario. On exit: stops the wardens (one
    check: SIGTERM exits 0, no secret in any log), then the Redis servers."""

    def __init__(self, s, h, name):
        self.s, self.h, self.name = s, h, name
        self.wardens = []
        self.redises = []
        self.secrets = set()

    def secret(self, tag):
        v = "%s-%s" % (tag, os.urandom(6).hex())
        self.secrets.add(v)
        return v

    def hide(self, *values):
        """Values that must never appear in a log (hashes, token signatures)."""
        for v in values:
            if v and len(v) >= 8:
                self.secrets.add(v)

    def redis(self, password=None, unixsocket=False):
        r = Redis(self.h, password, unixsocket)
        self.redises.append(r)
        r.start()
        return r

    def warden(self, policy_text, *lines, name="warden", start=True):
        p = H.write_file(self.h, "warden.policy", policy_text)
        base = ["policy " + p, "log_level debug"]
        if not any(ln.startswith("workers ") for ln in lines):
            base.append("workers 2")
        cfg = "".join(ln + "\n" for ln in base + list(lines))
        w = Warden(self.h, cfg, name=name)
        w.policy_path = p
        self.wardens.append(w)
        if start:
            w.start()
        return w

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        try:
            with self.s.check(self.name + "_exit_0_and_no_secret_in_log"):
                problems = []
                for w in self.wardens:
                    alive = w.alive()
                    rc = w.stop()
                    if w.proc is not None and rc != 0:
                        problems.append("%s: exit status %s after SIGTERM%s\n%s" % (
                            w.dir, rc, "" if alive else " (it had died before)",
                            H.tail(w.log())))
                    log = w.log_bytes()
                    for sec in sorted(self.secrets):
                        if sec.encode() in log:
                            problems.append("%s: the log contains the secret %s" % (
                                w.dir, short(sec)))
                ensure(not problems, "\n".join(problems))
        finally:
            for r in self.redises:
                r.stop()
        return False


def redis_lines(r, *extra):
    out = ["redis_host 127.0.0.1", "redis_port %d" % r.port]
    if r.password:
        out.append("redis_password %s" % r.password)
    return out + list(extra)


def admin(h, sock, *args):
    """Runs `warden admin --socket SOCK ARGS`; returns (rc, stdout, stderr)."""
    return H.run_warden(h, ["admin", "--socket", sock] + list(args))


def admin_ok(h, sock, *args):
    rc, out, err = admin(h, sock, *args)
    ensure(rc == 0, "`warden admin --socket %s %s`: exit %s, want 0\nstdout: %s\nstderr: %s" % (
        sock, " ".join(args), rc, out.strip()[:300], err.strip()[:300]))
    return out


def sha_hex(alg, data):
    return hashlib.new(alg, data.encode()).hexdigest()


def warden_passwd(h, scheme, pw):
    p = subprocess.run([h.warden, "passwd", "--scheme", scheme], input=(pw + "\n").encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    ensure(p.returncode == 0, "warden passwd --scheme %s: exit %d: %s" % (
        scheme, p.returncode, p.stderr.decode(errors="replace")))
    out = p.stdout.decode().strip()
    prefix = scheme.split(":", 1)[0] + ":"
    ensure(out.startswith(prefix), "warden passwd printed %r" % out)
    return out[len(prefix):]


def bcrypt_hash(h, pw):
    if os.path.exists("/usr/bin/htpasswd"):
        p = subprocess.run(["/usr/bin/htpasswd", "-nbBC", "4", "u", pw], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if p.returncode == 0:
            return p.stdout.decode().strip().split(":", 1)[1]
    return warden_passwd(h, "bcrypt:4", pw)


REDIS_POLICY = ("authn redis\n"
                "authn users\n"
                "authn default deny\n"
                'allow all ["#", "$SYS/#"] when superuser\n'
                "rules redis\n"
                "authz default deny\n")


# ====================================================================== 1. password formats

@_scenario
def stores_redis_formats(s, h):
    with Env(s, h, "stores_redis_formats") as env:
        r = env.redis(password=env.secret("redispass"))
        static_pw = env.secret("static")
        pol = ('user "static-only" "plain:%s"\n' % static_pw
               + 'user "nopw" "plain:%s"\n' % static_pw + REDIS_POLICY)
        env.secrets.add("plain:" + static_pw)

        def pbkdf2(pw, salt):
            return hashlib.pbkdf2_hmac("sha512", pw.encode(), salt.encode(), 1000, 24).hex()

        # name, config lines, hash(pw, salt) -> password_hash, salt field used
        fmts = [
            ("sha256_prefix", [], lambda pw, salt: sha_hex("sha256", salt + pw)),
            ("sha256_suffix", ["redis_salt_position suffix"],
             lambda pw, salt: sha_hex("sha256", pw + salt)),
            ("md5", ["redis_password_hash md5"], lambda pw, salt: sha_hex("md5", salt + pw)),
            ("sha1", ["redis_password_hash sha"], lambda pw, salt: sha_hex("sha1", salt + pw)),
            ("sha512", ["redis_password_hash sha512"],
             lambda pw, salt: sha_hex("sha512", salt + pw)),
            ("plain", ["redis_password_hash plain", "redis_salt_position disable"],
             lambda pw, salt: pw),
            ("bcrypt", ["redis_password_hash bcrypt"], lambda pw, salt: bcrypt_hash(h, pw)),
            ("pbkdf2", ["redis_password_hash pbkdf2", "redis_pbkdf2_mac sha512",
                        "redis_pbkdf2_iterations 1000", "redis_pbkdf2_dk_length 24"], pbkdf2),
            ("argon2id", ["redis_password_hash argon2id"],
             lambda pw, salt: warden_passwd(h, "argon2id:m=1024,t=1,p=1", pw)),
        ]
        for name, lines, mk in fmts:
            pfx = "f_%s:" % name
            pw, pw_old, other = env.secret("Pw1"), env.secret("Pw2"), env.secret("Pw3")
            salt = "NaCl-%s" % name
            hv, hv_old, hv_other = mk(pw, salt), mk(pw_old, salt), mk(other, salt)
            if name != "plain":
                env.hide(hv, hv_old, hv_other)
            r.hset(pfx + "alice", {"password_hash": hv, "salt": salt, "is_superuser": "0"})
            r.hset(pfx + "nopw", {"salt": salt, "is_superuser": "1"})
            r.hset(pfx + "emqx4", {"password": hv_old, "salt": salt})
            r.hset(pfx + "both", {"password_hash": hv, "password": hv_other, "salt": salt})
            w = env.warden(pol, *redis_lines(r, "redis_authn_key f_%s:${username}" % name,
                                             *lines), name="formats-" + name)
            with s.check("stores_redis_format_%s" % name), H.channel(w.addr) as ch:
                e = Errs()
                e.want(True, lambda: authn(ch, "alice", pw), "alice, right password")
                e.want(False, lambda: authn(ch, "alice", pw + "x"), "alice, wrong password")
                e.want(False, lambda: authn(ch, "alice", ""), "alice, empty password")
                e.want(False, lambda: authn(ch, "alice", static_pw),
                       "alice with the static user's password")
                e.want(False, lambda: authn(ch, "nobody", pw),
                       "unknown user (chain goes on to `authn default deny`)")
                e.want(True, lambda: authn(ch, "static-only", static_pw),
                       "unknown in Redis, static user: the chain goes on to `authn users`")
                e.want(False, lambda: authn(ch, "nopw", static_pw),
                       "Redis hash with salt/is_superuser but no password field: Redis denies "
                       "before the static user 'nopw' is tried")
                e.want(True, lambda: authn(ch, "emqx4", pw_old),
                       "only the EMQX 4 field `password`")
                e.want(False, lambda: authn(ch, "emqx4", pw), "`password` field, wrong password")
                e.want(True, lambda: authn(ch, "both", pw),
                       "password_hash and password: password_hash wins")
                e.want(False, lambda: authn(ch, "both", other),
                       "password_hash and password: the `password` field is not used")
                if name == "plain":
                    r.hset(pfx + "caps", {"password_hash": "PassWord-" + pw})
                    e.want(True, lambda: authn(ch, "caps", "PassWord-" + pw), "plain, same case")
                    e.want(False, lambda: authn(ch, "caps", "password-" + pw),
                           "plain is case-sensitive: 'password' vs stored 'PassWord'")
                    e.want(False, lambda: authn(ch, "caps", "PASSWORD-" + pw.upper()),
                           "plain is case-sensitive: upper case")
                if name == "bcrypt":
                    r.hset(pfx + "bsalt", {"password_hash": hv, "salt": "ignored-salt"})
                    e.want(True, lambda: authn(ch, "bsalt", pw), "bcrypt ignores the salt field")
                if name == "sha256_prefix":
                    r.hset(pfx + "nosalt", {"password_hash": sha_hex("sha256", pw)})
                    e.want(True, lambda: authn(ch, "nosalt", pw), "no salt field: salt is ''")
                e.done()
        # `authn default allow`: an unknown Redis user is let through by the default
        w = env.warden("authn redis\nauthn default allow\nauthz default deny\n",
                       *redis_lines(r, "redis_authn_key f_sha256_prefix:${username}"),
                       name="formats-default-allow")
        with s.check("stores_redis_unknown_user_default_allow"), H.channel(w.addr) as ch:
            e = Errs()
            e.want(True, lambda: authn(ch, "nobody-at-all", "whatever-pw"),
                   "unknown user with `authn default allow`")
            e.want(False, lambda: authn(ch, "alice", "definitely-wrong"),
                   "known user, wrong password: Redis denies, the default is not reached")
            e.want(False, lambda: authn(ch, "nopw", "x"),
                   "hash without a password field: denied, the default is not reached")
            e.done()


# ====================================================================== 2. is_superuser

SUPERUSER_VALUES = [("true", True), ("1", True), ("007", True), ("2", True), ("+1", True),
                    ("false", False), ("0", False), ("yes", False), ("TRUE", False),
                    ("True", False), ("", False), ("-1", False), ("1.0", False), (" 1", False),
                    ("00", False), (None, False)]


@_scenario
def stores_redis_superuser(s, h):
    with Env(s, h, "stores_redis_superuser") as env:
        r = env.redis()
        pw = env.secret("supw")
        w = env.warden(REDIS_POLICY, *redis_lines(r))
        with H.channel(w.addr) as ch:
            with s.check("stores_redis_is_superuser_truthiness"):
                e = Errs()
                for i, (val, su) in enumerate(SUPERUSER_VALUES):
                    user, cid = "su-%d" % i, "su-c-%d" % i
                    fields = {"password_hash": sha_hex("sha256", "s" + pw), "salt": "s"}
                    if val is not None:
                        fields["is_superuser"] = val
                    r.hset("mqtt_user:" + user, fields)
                    e.want(True, lambda: authn(ch, user, pw, clientid=cid),
                           "is_superuser %r: authenticate" % (val,))
                    e.want(su, lambda: authz(ch, "$SYS/x", PUBLISH, user, cid),
                           "is_superuser %r: publish $SYS/x" % (val,))
                    e.want(su, lambda: authz(ch, "any/topic", SUBSCRIBE, user, cid),
                           "is_superuser %r: subscribe any/topic" % (val,))
                e.done()
            with s.check("stores_redis_superuser_needs_session"):
                e = Errs()
                e.want(False, lambda: authz(ch, "$SYS/x", PUBLISH, "su-0", "never-connected"),
                       "superuser in Redis, but this clientid never authenticated")
                e.want(False, lambda: authz(ch, "$SYS/x", PUBLISH, "other-user", "su-c-0"),
                       "session of su-0 used with another username")
                e.want(False, lambda: authn(ch, "su-0", pw + "-wrong", clientid="su-c-9"),
                       "superuser, wrong password")
                e.want(False, lambda: authz(ch, "$SYS/x", PUBLISH, "su-0", "su-c-9"),
                       "after a failed authentication no superuser session")
                disconnect(ch, "su-c-0", "su-0")
                e.want(False, lambda: authz(ch, "$SYS/x", PUBLISH, "su-0", "su-c-0"),
                       "superuser session dropped by client.disconnected")
                e.done()


# ====================================================================== 3. Redis ACL

@_scenario
def stores_redis_acl(s, h):
    with Env(s, h, "stores_redis_acl") as env:
        r = env.redis()
        pw = env.secret("aclpw")
        r.hset("mqtt_user:acl-u", {"password_hash": sha_hex("sha256", pw)})
        r.hset("mqtt_acl:acl-u", {
            "pub/1": "publish",
            "sub/1": "subscribe",
            "all/1": "all",
            "json/pub": '{"action": "publish"}',
            "json/sub": '{"action": "sub"}',
            "json/all": '{"action":"all","qos":null}',
            "json/perm": '{"action": "publish", "permission": "deny"}',
            "wild/+/x": "subscribe",
            "a/+": "all",
            "tree/#": "publish",
            "eq lit/#": "subscribe",
            "eq raw/${username}": "all",
            "devices/${clientid}/#": "publish",
            "users/${username}/inbox": "subscribe",
            "certs/${cert_common_name}/#": "publish",
            # invalid entries: skipped, the rest stands
            "bad/1": "PUBLISH",
            "bad/2": "pub",
            "bad/3": "{not json",
            "bad/4": '{"qos": 1}',
            "bad/5": "[]",
            "bad/6": '{"action": "publish", "qos": 3}',
            "bad/7": "2",
            "bad/8": '{"action": "delete"}',
            "bad/9": '{"action": "publish", "qos": []}',
            "bad/10": '"publish"',
            "bad/11": '{"action": "publish", "pad": "%s"}' % ("x" * 5000),
            # restrictions EMQX cannot describe through ExHook (no QoS, no retain)
            "q/1": '{"action": "publish", "qos": [1]}',
            "q/2": '{"action": "all", "qos": "0,1"}',
            "q/3": '{"action": "subscribe", "qos": 2}',
            "ret/1": '{"action": "publish", "retain": false}',
            "ret/2": '{"action": "publish", "retain": "all"}',
            "ret/3": '{"action": "subscribe", "retain": true}',
        })
        r.hset("mqtt_acl:other-u", {"other/1": "all"})
        w = env.warden(REDIS_POLICY, *redis_lines(r))
        U, C = "acl-u", "dev-9"
        P, S = PUBLISH, SUBSCRIBE
        cases = [
            (True, P, "pub/1", "plain publish"), (False, S, "pub/1", "publish entry, subscribe"),
            (True, S, "sub/1", "plain subscribe"), (False, P, "sub/1", "subscribe entry, pub"),
            (True, P, "all/1", "all, publish"), (True, S, "all/1", "all, subscribe"),
            (True, P, "json/pub", "JSON publish"), (False, S, "json/pub", "JSON publish, sub"),
            (True, S, "json/sub", "JSON sub"), (False, P, "json/sub", "JSON sub, publish"),
            (True, P, "json/all", "JSON all qos null"), (True, S, "json/all", "JSON all, sub"),
            (True, P, "json/perm", "JSON permission deny is dropped: still an allow"),
            (True, S, "wild/a/x", "wild/+/x covers wild/a/x"),
            (True, S, "wild/+/x", "wild/+/x covers the filter wild/+/x"),
            (False, S, "wild/a/b/x", "wild/+/x, two levels"),
            (False, S, "wild/#", "wild/+/x does not cover wild/#"),
            (True, P, "a/b", "a/+ publish a/b"), (True, S, "a/+", "a/+ subscribe a/+"),
            (False, S, "a/#", "a/+ does not allow subscribing a/# (warden, unlike EMQX)"),
            (False, P, "a/b/c", "a/+ publish a/b/c"),
            (True, P, "tree", "tree/# covers its parent"), (True, P, "tree/x/y", "tree/#"),
            (True, S, "lit/#", "eq lit/#: the literal filter"),
            (False, S, "lit/x", "eq lit/#: no wildcard meaning"),
            (True, P, "raw/${username}", "eq raw/${username}: literal placeholder text"),
            (False, P, "raw/acl-u", "eq raw/${username}: not rendered"),
            (True, P, "devices/dev-9/up", "devices/${clientid}/#"),
            (False, P, "devices/dev-8/up", "devices/${clientid}/#, another clientid"),
            (True, S, "users/acl-u/inbox", "users/${username}/inbox"),
            (False, S, "users/other-u/inbox", "users/${username}/inbox, another user"),
            (False, P, "other/1", "another user's ACL"),
            (False, P, "nothing/here", "no entry"),
            (False, S, "$SYS/x", "no entry for $SYS"),
        ]
        cases += [(False, a, "bad/%d" % i, "invalid entry bad/%d skipped" % i)
                  for i in range(1, 12) for a in (P, S)]
        qos_cases = [
            (False, P, "q/1", "qos [1]: EMQX sends no QoS, an allow with qos never matches"),
            (False, P, "q/2", "all qos \"0,1\", publish"),
            (False, S, "q/2", "all qos \"0,1\", subscribe"),
            (False, S, "q/3", "subscribe qos 2"),
            (False, P, "ret/1", "retain false: EMQX sends no retain flag, never matches"),
            (True, P, "ret/2", "retain \"all\" = any"),
            (True, S, "ret/3", "a subscribe entry does not read retain"),
        ]
        with H.channel(w.addr) as ch:
            with s.check("stores_redis_acl_entries"):
                e = Errs()
                for allow, act, topic, what in cases:
                    e.want(allow, lambda: authz(ch, topic, act, U, C),
                           "%s %s %r (%s)" % (U, "pub" if act == P else "sub", topic, what))
                e.done()
            with s.check("stores_redis_acl_qos_retain_never_allow"):
                e = Errs()
                for allow, act, topic, what in qos_cases:
                    e.want(allow, lambda: authz(ch, topic, act, U, C),
                           "%s %r (%s)" % ("pub" if act == P else "sub", topic, what))
                e.done()
            with s.check("stores_redis_acl_other_users"):
                e = Errs()
                e.want(True, lambda: authz(ch, "other/1", P, "other-u", "c-o"), "other-u's ACL")
                e.want(False, lambda: authz(ch, "pub/1", P, "other-u", "c-o"),
                       "other-u using acl-u's entry")
                e.want(False, lambda: authz(ch, "pub/1", P, "no-acl-user", "c-n"),
                       "user without an ACL key")
                e.want(False, lambda: authz(ch, "pub/1", P, "", "c-anon"), "anonymous client")
                e.want(False, lambda: authz(ch, "devices/+/up", S, U, "+"),
                       "clientid '+' does not widen devices/${clientid}/#")
                e.want(False, lambda: authz(ch, "devices/a/b/up", P, U, "a/b"),
                       "clientid 'a/b' does not widen devices/${clientid}/#")
                e.want(True, lambda: authz(ch, "certs/dev-cn/x", P, U, C, cn="dev-cn"),
                       "certs/${cert_common_name}/# with cn dev-cn")
                e.want(False, lambda: authz(ch, "certs/dev-cn/x", P, U, C, cn="other-cn"),
                       "certs/${cert_common_name}/# with another cn")
                e.want(False, lambda: authz(ch, "certs//x", P, U, C),
                       "certs/${cert_common_name}/# without a certificate")
                e.want(True, lambda: authn(ch, U, pw, clientid=C), "acl-u still authenticates")
                e.want(True, lambda: authz(ch, "pub/1", P, U, C), "after authn")
                ensure(w.alive(), "warden died")
                e.done()
            with s.check("stores_redis_acl_invalid_entries_reported"):
                # docs/redis.md: invalid values are "skipped and reported", never fatal
                lines = [ln for ln in w.log().splitlines()
                         if re.search(r"(?i)skip", ln) and ("acl-u" in ln or "bad/" in ln)]
                ensure(lines, "no log line reports the 11 skipped entries of mqtt_acl:acl-u "
                       "(bad/1 .. bad/11); warnings in the log:\n%s" % H.tail("\n".join(
                           ln for ln in w.log().splitlines() if " WARN " in ln), 8))


# ====================================================================== 4. hostile usernames

@_scenario
def stores_redis_hostile_usernames(s, h):
    with Env(s, h, "stores_redis_hostile_usernames") as env:
        r = env.redis()
        pw = env.secret("hpw")
        static_pw = env.secret("hstatic")
        env.secrets.add("plain:" + static_pw)
        big = "U" * 61440
        big_unknown = "V" * 61440
        crlf = "x\r\ny"
        stored = ["a b", crlf, big, "${clientid}", "mqtt_user:nested", "\u00e9t\u00e9-\u2603"]
        for u in stored:
            r.hset("mqtt_user:" + u, {"password_hash": sha_hex("sha256", "salt" + pw),
                                      "salt": "salt"})
            r.hset("mqtt_acl:" + u, {"hostile/ok": "publish"})
        pol = 'user "*" "plain:%s"\nuser "KEYS *" "plain:%s"\n' % (static_pw, static_pw) \
            + REDIS_POLICY
        w = env.warden(pol, *redis_lines(r))
        with H.channel(w.addr) as ch:
            with s.check("stores_redis_hostile_usernames_are_keys"):
                e = Errs()
                for u in stored:
                    e.want(True, lambda: authn(ch, u, pw, clientid="h1"),
                           "stored user %s, right password" % short(u))
                    e.want(False, lambda: authn(ch, u, pw + "!", clientid="h1"),
                           "stored user %s, wrong password" % short(u))
                    e.want(True, lambda: authz(ch, "hostile/ok", PUBLISH, u, "h1"),
                           "stored user %s, its ACL" % short(u))
                e.want(True, lambda: authn(ch, "*", static_pw),
                       "'*' is no Redis key (not a glob): chain goes on to the static user")
                e.want(True, lambda: authn(ch, "KEYS *", static_pw),
                       "'KEYS *' is just a key name: chain goes on to the static user")
                e.want(False, lambda: authn(ch, "*", pw), "'*' with a Redis user's password")
                for u in ("a", "a b c", "x\r\n", "\r\ny", "x\ny", big_unknown, "mqtt_user:*",
                          "a b\r\nPING"):
                    e.want(False, lambda: authn(ch, u, pw),
                           "unknown user %s: default deny" % short(u))
                    e.want(False, lambda: authz(ch, "hostile/ok", PUBLISH, u, "h1"),
                           "unknown user %s has no ACL" % short(u))
                e.done()
            with s.check("stores_redis_hostile_usernames_still_serving"):
                ensure(w.alive(), "warden died\n%s" % H.tail(w.log()))
                e = Errs()
                e.want(True, lambda: authn(ch, "a b", pw), "'a b' again")
                e.want(True, lambda: authn(ch, "*", static_pw), "static '*' again")
                e.done()
                ensure(r.cmd("PING") == "PONG", "redis no longer answers")
                # the only keys warden writes are shared sessions (session_store redis, the
                # default with Redis: docs/sessions.md); anything else came from a request
                keys = [k for k in r.cmd("KEYS", "*") if not k.startswith(b"warden:session:")]
                ensure(len(keys) == 2 * len(stored), "Redis has %d keys besides sessions, want "
                       "%d: a request wrote to Redis?" % (len(keys), 2 * len(stored)))
            with s.check("stores_redis_hostile_usernames_log_escaped"):
                log = w.log_bytes()
                ensure(b"x\r\ny" not in log and b"x\ny" not in log and b"b\r\nPING" not in log,
                       "a username's CR/LF reached the log unescaped")


# ====================================================================== 5. Redis failure

@_scenario
def stores_redis_failure(s, h):
    with Env(s, h, "stores_redis_failure") as env:
        r = env.redis()
        rpw, spw = env.secret("redispw"), env.secret("staticpw")
        env.secrets.add("plain:" + spw)

        def populate():
            r.hset("mqtt_user:bob", {"password_hash": sha_hex("sha256", "s" + rpw), "salt": "s"})
            r.hset("mqtt_acl:bob", {"acl/1": "publish"})

        populate()
        pol = ('user "bob" "plain:%s"\nuser "carol" "plain:%s"\n' % (spw, spw)
               + "authn redis\nauthn users\nauthn default deny\n"
               + 'allow all ["#", "$SYS/#"] when superuser\n'
               + "rules redis\n" + 'allow publish "fallback/#"\n' + "authz default deny\n")
        common = ("cache off", "redis_timeout 200ms", "redis_connect_timeout 500ms")
        wd = env.warden(pol, *redis_lines(r, *common), name="fail-deny")
        wn = env.warden(pol, *redis_lines(r, "redis_on_error next", *common), name="fail-next")
        with H.channel(wd.addr) as cd, H.channel(wn.addr) as cn:
            def healthy(what):
                e = Errs()
                for nm, ch in (("deny", cd), ("next", cn)):
                    e.want(True, lambda: authn(ch, "bob", rpw), "%s: %s: bob, Redis password" % (
                        what, nm))
                    e.want(False, lambda: authn(ch, "bob", spw),
                           "%s: %s: bob, static password (Redis decides)" % (what, nm))
                    e.want(True, lambda: authz(ch, "acl/1", PUBLISH, "bob", "b1"),
                           "%s: %s: bob's Redis ACL" % (what, nm))
                    e.want(True, lambda: authz(ch, "fallback/1", PUBLISH, "bob", "b1"),
                           "%s: %s: rule after `rules redis`" % (what, nm))
                e.done()

            def failing(what):
                # deny: fails closed, everything that needs Redis is refused
                poll_until(lambda: authn(cd, "bob", rpw), DENY_RAW, FAIL_TIMEOUT,
                           "%s, redis_on_error deny: bob with the Redis password" % what)
                e = Errs()
                e.want(False, lambda: authn(cd, "bob", spw),
                       "%s, deny: bob with the static password (no chain)" % what)
                e.want(False, lambda: authz(cd, "acl/1", PUBLISH, "bob", "b1"),
                       "%s, deny: bob's Redis ACL" % what)
                e.want(False, lambda: authz(cd, "fallback/1", PUBLISH, "bob", "b1"),
                       "%s, deny: the rule after `rules redis` is not reached" % what)
                # next: the chain and the rules go on as if Redis had nothing
                e.want(True, lambda: authn(cn, "bob", spw),
                       "%s, redis_on_error next: chain goes on to the static user" % what)
                e.want(False, lambda: authn(cn, "bob", rpw),
                       "%s, next: the Redis password is not the static one" % what)
                e.want(False, lambda: authz(cn, "acl/1", PUBLISH, "bob", "b1"),
                       "%s, next: bob's Redis ACL unknown" % what)
                e.want(True, lambda: authz(cn, "fallback/1", PUBLISH, "bob", "b1"),
                       "%s, next: the rule after `rules redis`" % what)
                e.done()

            def recovered(what):
                for nm, ch in (("deny", cd), ("next", cn)):
                    poll_until(lambda: authn(ch, "bob", rpw), ALLOW_RAW, RECOVER_TIMEOUT,
                               "%s: %s warden recovers" % (what, nm), consecutive=10)
                    poll_until(lambda: authz(ch, "acl/1", PUBLISH, "bob", "b1"), ALLOW_RAW,
                               RECOVER_TIMEOUT, "%s: %s warden reads the ACL" % (what, nm),
                               consecutive=10)
                healthy(what)

            with s.check("stores_redis_failure_baseline"):
                healthy("redis up")
            with s.check("stores_redis_failure_stopped"):
                r.stop()
                failing("redis stopped")
                ensure(wd.alive() and wn.alive(), "a warden died")
            with s.check("stores_redis_failure_restart_recovers"):
                r.restart()
                populate()
                recovered("redis restarted")
            with s.check("stores_redis_failure_paused"):
                r.pause()
                try:
                    t0 = time.monotonic()
                    req = pb.ClientAuthenticateRequest(
                        clientinfo=H.clientinfo(clientid="c", username="bob", password=rpw),
                        meta=H.meta())
                    raw = H.raw_call(cd, H.path("OnClientAuthenticate"), req.SerializeToString(),
                                     timeout=10.0)
                    H.expect_raw(raw, DENY_RAW, "paused redis, deny: first request (answered "
                                 "after %.1fs)" % (time.monotonic() - t0))
                    failing("redis paused")
                finally:
                    r.resume()
            with s.check("stores_redis_failure_resume_recovers"):
                recovered("redis resumed")
            with s.check("stores_redis_failure_wrong_type"):
                r.cmd("SET", "mqtt_user:carol", "x")
                r.cmd("SET", "mqtt_acl:dan", "x")
                r.cmd("RPUSH", "mqtt_user:erin", "x")
                e = Errs()
                e.want(False, lambda: authn(cd, "carol", spw),
                       "deny: mqtt_user:carol is a string (WRONGTYPE)")
                e.want(False, lambda: authn(cd, "erin", "x"), "deny: mqtt_user:erin is a list")
                e.want(True, lambda: authn(cn, "carol", spw),
                       "next: WRONGTYPE lets the chain go on to the static user")
                e.want(False, lambda: authz(cd, "fallback/1", PUBLISH, "dan", "d1"),
                       "deny: mqtt_acl:dan is a string")
                e.want(True, lambda: authz(cn, "fallback/1", PUBLISH, "dan", "d1"),
                       "next: WRONGTYPE ACL falls through to the next rule")
                e.want(True, lambda: authn(cd, "bob", rpw),
                       "deny warden: error replies keep the connection, bob still works")
                e.done()


# ====================================================================== 6. cache and admin flush

@_scenario
def stores_cache(s, h):
    with Env(s, h, "stores_cache") as env:
        r = env.redis()
        pw1, pw2, other = env.secret("pw1"), env.secret("pw2"), env.secret("other")
        env.hide(sha_hex("sha256", "s" + pw1), sha_hex("sha256", "s" + pw2))

        def populate(pw):
            r.hset("mqtt_user:dave", {"password_hash": sha_hex("sha256", "s" + pw), "salt": "s"})

        populate(pw1)
        r.hset("mqtt_acl:dave", {"acl/1": "publish"})
        sock = os.path.join(tempfile.mkdtemp(prefix="adm.", dir=h.tmp), "admin.sock")
        common = ("redis_timeout 200ms", "redis_connect_timeout 500ms")
        # cache_invalidation off: these checks are about what cache_ttl and the admin flushes
        # do (tracking drops the cache with its stream, and a change without a flush:
        # cache_tracking.py)
        wc = env.warden(REDIS_POLICY, *redis_lines(r, "admin_socket " + sock,
                                                   "cache_invalidation off", *common),
                        name="cache-on")
        wo = env.warden(REDIS_POLICY, *redis_lines(r, "cache off", *common), name="cache-off")
        wt = env.warden(REDIS_POLICY, *redis_lines(r, "cache_ttl 1s", *common), name="cache-1s")
        with H.channel(wc.addr) as cc, H.channel(wo.addr) as co:
            with s.check("stores_cache_warm"):
                e = Errs()
                for nm, ch in (("cache on", cc), ("cache off", co)):
                    e.want(True, lambda: authn(ch, "dave", pw1), "%s: dave" % nm)
                    e.want(True, lambda: authz(ch, "acl/1", PUBLISH, "dave", "d1"),
                           "%s: dave's ACL" % nm)
                e.done()
            with s.check("stores_cache_survives_redis_down"):
                r.stop()
                erin_pw = env.secret("erin")
                poll_until(lambda: authn(co, "dave", pw1), DENY_RAW, FAIL_TIMEOUT,
                           "cache off: dave after Redis stopped")
                e = Errs()
                e.want(True, lambda: authn(cc, "dave", pw1),
                       "cache on, Redis stopped: dave's cached verdict (cache_ttl 1m)")
                e.want(False, lambda: authn(cc, "dave", other),
                       "cache on, Redis stopped: another password is still checked")
                e.want(True, lambda: authz(cc, "acl/1", PUBLISH, "dave", "d1"),
                       "cache on, Redis stopped: dave's cached ACL")
                e.want(False, lambda: authz(co, "acl/1", PUBLISH, "dave", "d1"),
                       "cache off, Redis stopped: dave's ACL is refused (deny)")
                e.want(False, lambda: authn(cc, "erin", erin_pw),
                       "cache on, Redis stopped: erin (never seen) is refused")
                e.done()
            r.restart()
            populate(pw1)
            r.hset("mqtt_acl:dave", {"acl/1": "publish"})
            probe_pw = env.secret("probe")
            r.hset("mqtt_user:probe", {"password_hash": sha_hex("sha256", probe_pw)})
            with s.check("stores_cache_redis_back"):
                # every worker of the cache-on warden reconnected (its backoff is over)
                poll_until(lambda: authn(cc, "probe", probe_pw), ALLOW_RAW, RECOVER_TIMEOUT,
                           "cache on: a user it never saw, after Redis came back",
                           consecutive=10)
            with s.check("stores_cache_backend_failure_not_cached"):
                r.hset("mqtt_user:erin", {"password_hash": sha_hex("sha256", erin_pw)})
                e = Errs()
                e.want(True, lambda: authn(cc, "erin", erin_pw), "erin, refused while Redis was "
                       "down, at once after it is back (a failure is never cached)")
                e.done()
            with s.check("stores_cache_negative_ttl"):
                frank_pw = env.secret("frank")
                e = Errs()
                e.want(False, lambda: authn(cc, "frank", frank_pw), "frank, not in Redis yet")
                e.done()
                r.hset("mqtt_user:frank", {"password_hash": sha_hex("sha256", frank_pw)})
                poll_until(lambda: authn(cc, "frank", frank_pw), ALLOW_RAW, 15.0,
                           "frank, created after a cached 'no such user' (cache_negative_ttl "
                           "5s)")
            with s.check("stores_cache_off_redis_back"):
                poll_until(lambda: authn(co, "dave", pw1), ALLOW_RAW, RECOVER_TIMEOUT,
                           "cache off: dave after Redis came back", consecutive=10)
                poll_until(lambda: authz(co, "acl/1", PUBLISH, "dave", "d1"), ALLOW_RAW,
                           RECOVER_TIMEOUT, "cache off: dave's ACL after Redis came back",
                           consecutive=10)
            with s.check("stores_cache_admin_socket_mode"):
                st = os.stat(sock)
                ensure(st.st_mode & 0o777 == 0o600, "admin socket mode %s, want 0600" % (
                    oct(st.st_mode & 0o777)))
            with s.check("stores_cache_stale_until_flush"):
                populate(pw2)
                r.cmd("DEL", "mqtt_acl:dave")
                r.hset("mqtt_acl:dave", {"acl/2": "publish"})
                e = Errs()
                e.want(True, lambda: authn(cc, "dave", pw1),
                       "cache on, password changed in Redis: the old one is still cached")
                e.want(True, lambda: authz(cc, "acl/1", PUBLISH, "dave", "d1"),
                       "cache on, ACL changed in Redis: the old ACL is still cached")
                e.want(False, lambda: authn(co, "dave", pw1), "cache off: old password refused")
                e.want(True, lambda: authn(co, "dave", pw2), "cache off: new password")
                e.want(True, lambda: authz(co, "acl/2", PUBLISH, "dave", "d1"),
                       "cache off: new ACL")
                e.done()
            with s.check("stores_cache_ttl_expires"):
                with H.channel(wt.addr) as ct:
                    e = Errs()
                    e.want(True, lambda: authn(ct, "dave", pw2), "cache_ttl 1s: new password")
                    e.done()
                    populate(pw1)
                    poll_until(lambda: authn(ct, "dave", pw2), DENY_RAW, 15.0,
                               "cache_ttl 1s: the password changed back in Redis is seen")
                    poll_until(lambda: authn(ct, "dave", pw1), ALLOW_RAW, 15.0,
                               "cache_ttl 1s: the restored password works")
                    populate(pw2)
            with s.check("stores_cache_admin_flush_user"):
                out = admin_ok(h, sock, "flush", "--user", "dave")
                ensure(out.startswith("OK"), "admin flush --user: stdout %r" % out[:200])
                e = Errs()
                e.want(False, lambda: authn(cc, "dave", pw1), "after flush: the old password")
                e.want(True, lambda: authn(cc, "dave", pw2), "after flush: the new password")
                e.want(False, lambda: authz(cc, "acl/1", PUBLISH, "dave", "d1"),
                       "after flush: the old ACL entry")
                e.want(True, lambda: authz(cc, "acl/2", PUBLISH, "dave", "d1"),
                       "after flush: the new ACL entry")
                e.done()
            with s.check("stores_cache_admin_stats_and_flush_all"):
                out = admin_ok(h, sock, "stats")
                ensure(out.startswith("OK"), "admin stats: stdout %r" % out[:200])
                ensure(pw1 not in out and pw2 not in out, "stats print a password")
                out = admin_ok(h, sock, "flush")
                ensure(out.startswith("OK"), "admin flush: stdout %r" % out[:200])
                rc, out, err = admin(h, sock, "bogus")
                ensure(rc == 2, "admin bogus: exit %s, want 2" % rc)
                rc, out, err = admin(h, sock + ".none", "stats")
                ensure(rc not in (0, None), "admin on a missing socket: exit %s" % rc)
                ensure(wc.alive(), "warden died")
                e = Errs()
                e.want(True, lambda: authn(cc, "dave", pw2), "after flush all")
                e.done()


# ====================================================================== JWT helpers

JWT_POLICY = ("authn jwt\n"
              "authn users\n"
              "authn default deny\n"
              'allow all ["#", "$SYS/#"] when superuser\n'
              "rules jwt\n"
              "authz default deny\n")


def now():
    return int(time.time())


# ====================================================================== 7. JWT verification

@_scenario
def stores_jwt_verify(s, h):
    with Env(s, h, "stores_jwt_verify") as env:
        k = Keys.get(h)
        secret = env.secret("jwtsecret")
        legacy_pw = env.secret("legacy")
        env.secrets.add("plain:" + legacy_pw)
        pol = 'user "legacy" "plain:%s"\n' % legacy_pw + JWT_POLICY
        whs = env.warden(pol, "jwt_secret " + secret, "jwt_iss warden-it", "jwt_aud mqtt",
                         "jwt_max_token_len 1KiB", name="jwt-hs")
        wnx = env.warden(pol, "jwt_secret " + secret, "jwt_on_invalid next", name="jwt-next")
        wrs = env.warden(pol, "jwt_public_key " + k.rsa_pub, name="jwt-rsa")
        wes = env.warden(pol, "jwt_public_key " + k.ec_pub, name="jwt-ec")
        jwks = H.write_file(h, "jwks.json", json.dumps({"keys": [
            {"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": k.rsa_n, "e": "AQAB"},
            {"kty": "EC", "kid": "k2", "use": "sig", "crv": "P-256", "x": k.ec_x, "y": k.ec_y},
            {"kty": "RSA", "kid": "k0", "use": "sig", "n": k.small_n, "e": "AQAB"},
            {"kty": "RSA", "kid": "k3", "use": "enc", "n": k.rsa_n, "e": "AQAB"},
            {"kty": "OKP", "kid": "k4", "crv": "Ed25519", "x": k.ec_x},
        ]}))
        wjk = env.warden(pol, "jwt_jwks_file " + jwks, name="jwt-jwks")
        wvc = env.warden(pol, "jwt_secret " + secret, "jwt_verify_claim clientid ${clientid}",
                         name="jwt-claim")
        t = now()
        base = {"iss": "warden-it", "aud": "mqtt", "exp": t + 600, "sub": "dev"}

        def c(**kw):
            d = dict(base)
            for key, v in kw.items():
                if v is None:
                    d.pop(key, None)
                else:
                    d[key] = v
            return d

        def tok(tk):
            env.hide(tk.rsplit(".", 1)[-1])
            return tk

        hs = lambda cl, **kw: tok(jwt_hs(cl, secret, **kw))  # noqa: E731
        si_ok = signing_input({"alg": "HS256", "typ": "JWT"}, c())

        def sized(limit):
            """The longest valid token of at most `limit` bytes, and one just over it."""
            n, prev = 0, None
            while True:
                tk = jwt_hs(c(pad="p" * n), secret)
                if len(tk) > limit:
                    return prev, tk
                prev, n = tk, n + 1

        fits, big = sized(1024)
        tok(fits)
        tok(big)
        dup = signing_input({"alg": "HS256"}, b'{"iss":"warden-it","aud":"mqtt","exp":%d,'
                            b'"exp":%d}' % (t - 100, t + 600))
        dup = dup + "." + b64u(hmac.new(secret.encode(), dup.encode(), hashlib.sha256).digest())
        env.hide(dup.rsplit(".", 1)[-1])
        hs_cases = [
            (True, hs(c()), "HS256, valid"),
            (True, hs(c(), alg="HS384"), "HS384, valid"),
            (True, hs(c(), alg="HS512"), "HS512, valid"),
            (True, hs(c(aud=["other", "mqtt"])), "aud array containing mqtt"),
            (True, hs(c(nbf=t - 60)), "nbf in the past"),
            (True, hs(c(exp=str(t + 600))), "exp as a numeric string"),
            (True, fits, "token of %d bytes (limit 1 KiB)" % len(fits)),
            (False, hs(c(exp=t - 10)), "expired"),
            (False, hs(c(nbf=t + 600)), "nbf in the future"),
            (False, tok(jwt_hs(c(), secret + "x")), "signed with another secret"),
            (False, tok(si_ok + "." + jwt_hs(c(sub="other"), secret).rsplit(".", 1)[1]),
             "signature of another payload"),
            (False, signing_input({"alg": "none", "typ": "JWT"}, c()) + ".", "alg none, unsigned"),
            (False, tok(jwt_hs(c(), secret, header={"alg": "none"}, mac_alg="HS256")),
             "alg none with an HMAC signature"),
            (False, tok(jwt_hs(c(), secret, header={"alg": "None"}, mac_alg="HS256")), "alg None"),
            (False, tok(jwt_hs(c(), secret, header={"alg": "hs256"}, mac_alg="HS256")),
             "alg hs256"),
            (False, tok(jwt_hs(c(), secret, header={"alg": "HS256", "crit": ["x"], "x": 1})),
             "crit header"),
            (False, tok(jwt_hs(c(), secret, header={"typ": "JWT"}, mac_alg="HS256")), "no alg"),
            (False, "not-a-jwt", "no dots"),
            (False, "a.b", "two segments"),
            (False, hs(c()) + ".x", "four segments"),
            (False, "@@@." + si_ok.split(".")[1] + ".AAAA", "header not base64url"),
            (False, tok(jwt_hs(b"{not json", secret)), "payload not JSON"),
            (False, tok(jwt_hs(b"[1,2]", secret)), "payload a JSON array"),
            (False, tok(jwt_hs(c(), secret, header=b"{\"alg\":\"HS256\"")), "header not JSON"),
            (False, si_ok.replace(".", "=.") + "." + b64u(hmac.new(
                secret.encode(), si_ok.encode(), hashlib.sha256).digest()), "padded base64"),
            (False, dup, "duplicate exp in the payload"),
            (False, big, "token of %d bytes over jwt_max_token_len 1KiB" % len(big)),
            (False, hs(c(iss="someone-else")), "wrong iss"),
            (False, hs(c(iss=None)), "no iss"),
            (False, hs(c(aud="other")), "wrong aud"),
            (False, hs(c(aud=["a", "b"])), "aud array without mqtt"),
            (False, hs(c(aud=None)), "no aud"),
            (False, legacy_pw, "a static user's password is not a token (jwt_on_invalid deny)"),
            (False, "", "empty password"),
        ]
        with H.channel(whs.addr) as ch:
            with s.check("stores_jwt_hs256_cases"):
                e = Errs()
                for allow, tk, what in hs_cases:
                    user = "legacy" if tk == legacy_pw else "dev"
                    e.want(allow, lambda: authn(ch, user, tk, clientid="hs-1"), what)
                e.done()
        with H.channel(wnx.addr) as ch:
            with s.check("stores_jwt_on_invalid_next"):
                e = Errs()
                e.want(True, lambda: authn(ch, "legacy", legacy_pw),
                       "jwt_on_invalid next: a non-token goes on to the static user")
                e.want(True, lambda: authn(ch, "dev", hs(c())), "valid token")
                e.want(False, lambda: authn(ch, "dev", hs(c(exp=t - 10))),
                       "expired token always denies")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_hs(c(), secret + "y"))),
                       "bad signature: next, then `authn default deny`")
                e.done()
        with H.channel(wrs.addr) as ch:
            with s.check("stores_jwt_rs256_cases"):
                pem = k.rsa_pub_pem
                e = Errs()
                e.want(True, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.rsa, "RS256"))), "RS256")
                e.want(True, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.rsa, "RS512"))), "RS512")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.rsa2, "RS256"))),
                       "RS256 signed by another key")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_hs(c(), pem))),
                       "algorithm confusion: HS256 keyed with the RSA public key PEM")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_hs(c(), pem.strip()))),
                       "algorithm confusion: HS256 keyed with the PEM without newline")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_hs(c(), pem, alg="HS512"))),
                       "algorithm confusion: HS512 keyed with the PEM")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.ec, "ES256"))),
                       "ES256 against an RSA key")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_pk(c(exp=t - 5), k.rsa, "RS256"))),
                       "RS256 expired")
                e.done()
        with H.channel(wes.addr) as ch:
            with s.check("stores_jwt_es256_cases"):
                e = Errs()
                e.want(True, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.ec, "ES256"))), "ES256")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.ec, "ES256", der=True))),
                       "ES256 with a DER signature instead of r||s")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_pk(
                    c(), k.ec, "ES256", header={"alg": "ES384"}))), "ES256 signature as ES384")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.rsa, "RS256"))),
                       "RS256 against an EC key")
                with open(k.ec_pub, "rb") as f:
                    ec_pem = f.read()
                e.want(False, lambda: authn(ch, "dev", tok(jwt_hs(c(), ec_pem))),
                       "HS256 keyed with the EC public key PEM")
                e.done()
        with H.channel(wjk.addr) as ch:
            with s.check("stores_jwt_jwks_cases"):
                e = Errs()
                e.want(True, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.rsa, "RS256", kid="k1"))),
                       "RS256 kid k1")
                e.want(True, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.ec, "ES256", kid="k2"))),
                       "ES256 kid k2")
                e.want(True, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.rsa, "RS256"))),
                       "RS256 without kid: every key is tried")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.rsa, "RS256", kid="k9"))),
                       "unknown kid")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.rsa, "RS256", kid="k2"))),
                       "RS256 naming the EC key's kid")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.rsa2, "RS256", kid="k1"))),
                       "kid k1, signed by another key")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_hs(c(), secret, kid="k1"))),
                       "HS256 naming an RSA kid")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.small, "RS256",
                                                                  kid="k0"))),
                       "kid k0: an RSA-1024 JWK is skipped at load")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.rsa, "RS256",
                                                                  kid="k3"))),
                       "kid k3: a JWK with use enc is skipped")
                e.want(False, lambda: authn(ch, "dev", tok(jwt_pk(c(), k.small, "RS256"))),
                       "RSA-1024 signature without kid")
                e.done()
                warns = [ln for ln in wjk.log().splitlines()
                         if " WARN " in ln and re.search(r"(?i)skip", ln) and "1024" in ln]
                ensure(warns, "no warning reports the skipped RSA-1024 JWK:\n%s" % H.tail(
                    "\n".join(ln for ln in wjk.log().splitlines() if " WARN " in ln), 6))
        with H.channel(wvc.addr) as ch:
            with s.check("stores_jwt_verify_claim_clientid"):
                e = Errs()
                e.want(True, lambda: authn(ch, "dev", hs(c(clientid="vc-1")), clientid="vc-1"),
                       "clientid claim equals the clientid")
                e.want(False, lambda: authn(ch, "dev", hs(c(clientid="vc-1")), clientid="vc-2"),
                       "clientid claim of another client")
                e.want(False, lambda: authn(ch, "dev", hs(c()), clientid="vc-1"),
                       "no clientid claim")
                e.want(False, lambda: authn(ch, "dev", hs(c(clientid=1)), clientid="1"),
                       "a number 1 does not equal the string \"1\"")
                e.done()


# ====================================================================== 8. sessions and JWT ACLs

SESSION_POLICY = ("authn jwt\n"
                  "authn default deny\n"
                  'allow all ["#", "$SYS/#"] when superuser\n'
                  'allow publish "t/${claim.tenant}/#"\n'
                  'allow publish "o/${claim.org.dept}/#"\n'
                  "rules jwt\n"
                  'allow publish "c/#"\n'
                  "authz default deny\n")


@_scenario
def stores_jwt_sessions(s, h):
    with Env(s, h, "stores_jwt_sessions") as env:
        secret = env.secret("sesssecret")
        sock = os.path.join(tempfile.mkdtemp(prefix="adm.", dir=h.tmp), "admin.sock")
        w = env.warden(SESSION_POLICY, "jwt_secret " + secret, "admin_socket " + sock)
        wmax = env.warden(SESSION_POLICY, "jwt_secret " + secret, "session_max 16",
                          name="session-max")
        t = now()

        def tk(**claims):
            v = jwt_hs(dict({"exp": t + 600}, **claims), secret)
            env.hide(v.rsplit(".", 1)[-1])
            return v

        v1 = tk(acl={"pub": ["devices/${clientid}/up"], "sub": ["devices/${clientid}/down"]})
        v2 = tk(acl=[{"permission": "allow", "action": "publish", "topic": "a/#"},
                     {"permission": "deny", "action": "all", "topic": "b/#"}])
        P, S = PUBLISH, SUBSCRIBE
        with H.channel(w.addr) as ch:
            with s.check("stores_jwt_session_acl_v1"):
                e = Errs()
                c1 = dict(peerport=40001)  # the connection that authenticated
                e.want(True, lambda: authn(ch, "u1", v1, clientid="C1", peerport=40001),
                       "authenticate C1")
                e.want(True, lambda: authz(ch, "devices/C1/up", P, "u1", "C1", **c1),
                       "pub own up")
                e.want(False, lambda: authz(ch, "devices/C1/down", P, "u1", "C1", **c1),
                       "pub own down: v1 denies what it does not allow")
                e.want(True, lambda: authz(ch, "devices/C1/down", S, "u1", "C1", **c1),
                       "sub own down")
                e.want(False, lambda: authz(ch, "devices/C1/up", S, "u1", "C1", **c1),
                       "sub own up")
                e.want(False, lambda: authz(ch, "devices/C2/up", P, "u1", "C1", **c1),
                       "pub another client's up")
                e.want(False, lambda: authz(ch, "c/1", P, "u1", "C1", **c1),
                       "v1: no match denies, the later rule `allow publish c/#` is not reached")
                e.want(False, lambda: authz(ch, "devices/C1/up", P, "other", "C1", **c1),
                       "C1's session with another username")
                e.done()
            with s.check("stores_jwt_session_acl_v2"):
                e = Errs()
                e.want(True, lambda: authn(ch, "u2", v2, clientid="C2"), "authenticate C2")
                e.want(True, lambda: authz(ch, "a/1", P, "u2", "C2"), "v2 allow publish a/#")
                e.want(False, lambda: authz(ch, "b/1", P, "u2", "C2"), "v2 deny all b/#")
                e.want(False, lambda: authz(ch, "b/1", S, "u2", "C2"), "v2 deny all b/#, sub")
                e.want(True, lambda: authz(ch, "c/1", P, "u2", "C2"),
                       "v2 no match falls through to `allow publish c/#`")
                e.want(False, lambda: authz(ch, "a/1", S, "u2", "C2"),
                       "v2 publish-only rule, subscribe falls through to the default")
                e.done()
            with s.check("stores_jwt_no_session_denied"):
                e = Errs()
                e.want(False, lambda: authz(ch, "devices/ghost/up", P, "u1", "ghost"),
                       "clientid that never authenticated: `rules jwt` denies")
                e.want(False, lambda: authz(ch, "c/1", P, "u1", "ghost"),
                       "no session: `rules jwt` denies before `allow publish c/#`")
                e.want(False, lambda: authn(ch, "u9", tk(exp=t - 5), clientid="C9"),
                       "expired token")
                e.want(False, lambda: authz(ch, "c/1", P, "u9", "C9"),
                       "a failed authentication makes no session")
                e.done()
            with s.check("stores_jwt_superuser_claim"):
                e = Errs()
                e.want(True, lambda: authn(ch, "root", tk(is_superuser=True), clientid="SU"),
                       "authenticate SU")
                e.want(True, lambda: authz(ch, "$SYS/x", P, "root", "SU"), "superuser $SYS/x")
                e.want(True, lambda: authz(ch, "any/thing", S, "root", "SU"), "superuser #")
                e.want(True, lambda: authn(ch, "nosu", tk(is_superuser=False), clientid="NSU"),
                       "authenticate NSU")
                e.want(False, lambda: authz(ch, "$SYS/x", P, "nosu", "NSU"),
                       "is_superuser false: $SYS/x")
                e.want(False, lambda: authz(ch, "$SYS/x", P, "root", "SU-other"),
                       "superuser claim does not reach another clientid")
                e.done()
            with s.check("stores_jwt_superuser_claim_truthiness"):
                e = Errs()
                for i, (val, su) in enumerate([("true", True), ("1", True), (2, True),
                                               (1, True), ("007", True), ("TRUE", False),
                                               ("yes", False), (0, False), ("0", False),
                                               (None, False), ("", False)]):
                    cid = "SV%d" % i
                    e.want(True, lambda: authn(ch, "sv", tk(is_superuser=val), clientid=cid),
                           "is_superuser %r: authenticate" % (val,))
                    e.want(su, lambda: authz(ch, "$SYS/x", P, "sv", cid),
                           "is_superuser claim %r: $SYS/x" % (val,))
                e.done()
            with s.check("stores_jwt_claims_in_acl_topics"):
                vg = tk(grp="g1", n=42, acl={"pub": ["g/${claim.grp}/x", "n/${claim.n}",
                                                     "u/${username}/${clientid}"]})
                e = Errs()
                e.want(True, lambda: authn(ch, "ug", vg, clientid="CG"), "authenticate CG")
                e.want(True, lambda: authz(ch, "g/g1/x", P, "ug", "CG"), "${claim.grp} in acl")
                e.want(False, lambda: authz(ch, "g/g2/x", P, "ug", "CG"), "another grp")
                e.want(True, lambda: authz(ch, "n/42", P, "ug", "CG"),
                       "integer claim renders in decimal")
                e.want(True, lambda: authz(ch, "u/ug/CG", P, "ug", "CG"),
                       "${username}/${clientid} in the acl claim")
                e.done()
            with s.check("stores_jwt_claim_placeholder"):
                e = Errs()
                e.want(True, lambda: authn(ch, "ta", tk(tenant="acme"), clientid="T1"), "T1")
                e.want(True, lambda: authn(ch, "tg", tk(tenant="globex"), clientid="T2"), "T2")
                e.want(True, lambda: authn(ch, "tw", tk(tenant="a/#"), clientid="T3"), "T3")
                e.want(True, lambda: authz(ch, "t/acme/x", P, "ta", "T1"), "acme client, acme")
                e.want(False, lambda: authz(ch, "t/globex/x", P, "ta", "T1"),
                       "acme client, globex")
                e.want(True, lambda: authz(ch, "t/globex/x", P, "tg", "T2"), "globex, globex")
                e.want(False, lambda: authz(ch, "t/acme/x", P, "tg", "T2"), "globex, acme")
                e.want(False, lambda: authz(ch, "t/acme/x", P, "ta", "T-none"),
                       "no session: ${claim.tenant} has no value")
                e.want(False, lambda: authz(ch, "t/a/x", P, "tw", "T3"),
                       "claim 'a/#' does not widen t/${claim.tenant}/#")
                e.want(False, lambda: authz(ch, "t/acme/x", P, "u2", "C2"),
                       "C2 has no tenant claim")
                e.done()
            with s.check("stores_jwt_disconnect_drops_session"):
                e = Errs()
                e.want(True, lambda: authn(ch, "u3", v1, clientid="C3", peerport=40010),
                       "authenticate C3 from port 40010")
                e.want(True, lambda: authn(ch, "u3", v1, clientid="C3", peerport=40011),
                       "C3 reconnects from port 40011")
                disconnect(ch, "C3", "u3", peerport=40010)  # the old connection's, late
                e.want(True, lambda: authz(ch, "devices/C3/up", P, "u3", "C3", peerport=40011),
                       "a disconnect of the older connection (port 40010) keeps the new session")
                req = pb.ClientDisconnectedRequest(
                    clientinfo=H.clientinfo(clientid="C3", username="u3", peerport=40011,
                                            peerhost="10.9.9.9"), reason="normal", meta=H.meta())
                H.raw_call(ch, H.path("OnClientDisconnected"), req.SerializeToString())
                e.want(True, lambda: authz(ch, "devices/C3/up", P, "u3", "C3", peerport=40011),
                       "a disconnect from another peer host, same port, keeps the session")
                disconnect(ch, "C3", "u3", peerport=40011)
                e.want(False, lambda: authz(ch, "devices/C3/up", P, "u3", "C3", peerport=40011),
                       "after the current connection's disconnect (port 40011)")
                e.want(True, lambda: authz(ch, "devices/C1/up", P, "u1", "C1", peerport=40001),
                       "C1 untouched by C3's disconnect")
                disconnect(ch, "C1", "u1", peerport=40001)
                e.want(False, lambda: authz(ch, "devices/C1/up", P, "u1", "C1", peerport=40001),
                       "C1 after its disconnect")
                e.want(False, lambda: authz(ch, "devices/C1/down", S, "u1", "C1", peerport=40001),
                       "C1 after its disconnect, sub")
                e.want(True, lambda: authn(ch, "u1", v1, clientid="C1", peerport=40002),
                       "C1 reconnects")
                e.want(True, lambda: authz(ch, "devices/C1/up", P, "u1", "C1", peerport=40002),
                       "C1 after reconnecting")
                e.done()
            with s.check("stores_jwt_acl_forms"):
                va = tk(acl={"pub": ["ok/1", 5, ""], "sub": ["eq e/#"],
                             "all": ["x/${username}/#"], "publish": ["long/form"]},
                        org={"dept": "rnd"})
                vb = tk(acl=[{"permission": "allow", "action": "publish", "topic": "v/2"},
                             {"permission": "allow", "action": "all",
                              "topics": ["v/4", "eq v/+"]},
                             {"permission": "allow", "action": "publish", "topic": "v/5",
                              "qos": [1]},
                             {"permission": "deny", "action": "sub", "topic": "v/#",
                              "retain": True},
                             {"permission": "allow", "action": "all", "topic": "v/x"}])
                e = Errs()
                e.want(True, lambda: authn(ch, "ua", va, clientid="CA"), "authenticate CA")
                e.want(True, lambda: authz(ch, "ok/1", P, "ua", "CA"),
                       "v1 with invalid entries: the valid one stands")
                e.want(True, lambda: authz(ch, "e/#", S, "ua", "CA"), "v1 eq e/#: literal")
                e.want(False, lambda: authz(ch, "e/1", S, "ua", "CA"), "v1 eq e/#: no wildcard")
                e.want(True, lambda: authz(ch, "x/ua/1", P, "ua", "CA"), "v1 all x/${username}")
                e.want(True, lambda: authz(ch, "x/ua/1", S, "ua", "CA"), "v1 all, subscribe")
                e.want(False, lambda: authz(ch, "x/ub/1", P, "ua", "CA"), "v1 all, other user")
                e.want(False, lambda: authz(ch, "long/form", P, "ua", "CA"),
                       "v1 key `publish` is not `pub`")
                e.want(True, lambda: authz(ch, "o/rnd/1", P, "ua", "CA"),
                       "${claim.org.dept} from a nested claim")
                e.want(True, lambda: authn(ch, "ub", vb, clientid="CB"), "authenticate CB")
                e.want(True, lambda: authz(ch, "v/2", P, "ub", "CB"), "v2 topic")
                e.want(True, lambda: authz(ch, "v/4", P, "ub", "CB"), "v2 topics list")
                e.want(True, lambda: authz(ch, "v/+", S, "ub", "CB"), "v2 topics eq v/+")
                e.want(False, lambda: authz(ch, "v/+", P, "ub", "CB"),
                       "publish v/+: no topic name, denied before any rule")
                e.want(False, lambda: authz(ch, "v/6", P, "ub", "CB"), "v2 eq v/+ is literal")
                e.want(False, lambda: authz(ch, "v/5", P, "ub", "CB"),
                       "v2 allow with qos [1]: EMQX sends no QoS, never matches")
                e.want(False, lambda: authz(ch, "v/x", S, "ub", "CB"),
                       "v2 deny sub with retain: a subscribe rule ignores retain, so it denies "
                       "before the later `allow all v/x`")
                e.want(True, lambda: authz(ch, "v/x", P, "ub", "CB"),
                       "v2 publish v/x: the deny is subscribe-only, `allow all v/x` decides")
                e.done()
            with s.check("stores_jwt_acl_v2_invalid_entries_refuse_the_token"):
                # docs/jwt.md: in the list form one invalid entry refuses the token (a skipped
                # entry of an ordered list may have been a deny); the object form keeps the
                # valid entries (the `va` token above).
                vc = tk(acl=[{"permission": "allow", "action": "publish", "topic": "w/1",
                              "qos": 3},
                             {"permission": "allow", "action": "publish", "topic": "w/2"},
                             {"permission": "maybe", "action": "publish", "topic": "w/3"}])
                e = Errs()
                e.want(False, lambda: authn(ch, "uc", vc, clientid="CC"),
                       "authenticate with a v2 ACL holding 2 invalid entries of 3")
                e.want(False, lambda: authz(ch, "w/2", P, "uc", "CC"),
                       "no session: the token was refused")
                e.done()
                w.wait_count(r"invalid rule in the ACL claim", 1, "refusal logged with its reason")
            with s.check("stores_jwt_float_exp"):
                vf = tk(exp=t + 600.5, acl={"pub": ["f/1"]})
                e = Errs()
                e.want(True, lambda: authn(ch, "uf", vf, clientid="CF"), "exp now+600.5")
                e.want(True, lambda: authz(ch, "f/1", P, "uf", "CF"),
                       "float exp: the ACL applies (fractions truncated; EMQX's float-exp quirk "
                       "denied everything)")
                e.done()
            with s.check("stores_jwt_acl_claim_not_a_list_or_object"):
                e = Errs()
                for i, bad in enumerate(("publish c/#", 42, True)):
                    cid = "CX%d" % i
                    try:
                        authn(ch, "ux", tk(acl=bad), clientid=cid)
                    except grpc.RpcError as ex:
                        e.e.append("acl %r: authenticate: RPC error %s" % (bad, H._code(ex)))
                    e.want(False, lambda: authz(ch, "c/1", P, "ux", cid),
                           "acl claim %r: deny everything (even the later `allow publish c/#`)"
                           % (bad,))
                e.done()
            with s.check("stores_jwt_admin_flush_user_drops_session"):
                e = Errs()
                e.want(True, lambda: authn(ch, "u5", v1, clientid="C5"), "authenticate C5")
                e.want(True, lambda: authn(ch, "u6", v1, clientid="C6"), "authenticate C6")
                e.want(True, lambda: authz(ch, "devices/C5/up", P, "u5", "C5"), "C5 before")
                admin_ok(h, sock, "flush", "--user", "u5")
                e.want(False, lambda: authz(ch, "devices/C5/up", P, "u5", "C5"),
                       "C5 after `admin flush --user u5`")
                e.want(True, lambda: authz(ch, "devices/C6/up", P, "u6", "C6"),
                       "C6 after `admin flush --user u5`")
                admin_ok(h, sock, "flush")
                e.want(False, lambda: authz(ch, "devices/C6/up", P, "u6", "C6"),
                       "C6 after `admin flush`")
                e.done()
        with H.channel(wmax.addr) as ch, s.check("stores_jwt_session_max_lru"):
            e = Errs()
            for i in range(10):
                e.want(True, lambda: authn(ch, "m", v1, clientid="M%d" % i), "authn M%d" % i)
            for i in range(10):
                e.want(True, lambda: authz(ch, "devices/M%d/up" % i, P, "m", "M%d" % i),
                       "session_max 16, 10 sessions: M%d still has its session" % i)
            for i in range(10, 60):
                e.want(True, lambda: authn(ch, "m", v1, clientid="M%d" % i), "authn M%d" % i)
            for i in range(44, 60):
                e.want(True, lambda: authz(ch, "devices/M%d/up" % i, P, "m", "M%d" % i),
                       "session_max 16: M%d, one of the 16 most recent" % i)
            for i in range(0, 10):
                e.want(False, lambda: authz(ch, "devices/M%d/up" % i, P, "m", "M%d" % i),
                       "session_max 16: M%d, evicted" % i)
            if e.e:
                e.e.insert(0, "(the first 10 sessions were made before any other; the 50 later "
                           "ones evict, least recently used first)")
            e.done()


# ====================================================================== 9. expiry

@_scenario
def stores_jwt_expiry(s, h):
    with Env(s, h, "stores_jwt_expiry") as env:
        secret = env.secret("expsecret")
        w = env.warden("authn jwt\nauthn default deny\n"
                       'allow all ["#", "$SYS/#"] when superuser\n'
                       "rules jwt\nauthz default deny\n", "jwt_secret " + secret)
        wttl = env.warden("authn jwt\nauthn default deny\nrules jwt\nauthz default deny\n",
                          "jwt_secret " + secret, "session_ttl 2s", name="session-ttl")
        long_tok = jwt_hs({"exp": now() + 600, "acl": {"pub": ["e/1"]}}, secret)
        env.hide(long_tok.rsplit(".", 1)[-1])
        with H.channel(wttl.addr) as ch:
            with s.check("stores_session_ttl"):
                e = Errs()
                e.want(True, lambda: authn(ch, "tt", long_tok, clientid="TT"), "authenticate")
                e.want(True, lambda: authz(ch, "e/1", PUBLISH, "tt", "TT"), "within session_ttl")
                e.done()
                poll_until(lambda: authz(ch, "e/1", PUBLISH, "tt", "TT"), DENY_RAW, 15.0,
                           "session_ttl 2s: the session is forgotten")
        with H.channel(w.addr) as ch:
            with s.check("stores_jwt_expiry_ends_session"):
                # tokens minted here, valid 4 s; the "before exp" answers are asserted only
                # when they were given before exp (a slow machine, e.g. under ASan, must not
                # turn a correct refusal into a failure)
                exp = now() + 4
                acl_tok = jwt_hs({"exp": exp, "acl": {"pub": ["e/1"]}}, secret)
                su_tok = jwt_hs({"exp": exp, "is_superuser": True}, secret)
                env.hide(acl_tok.rsplit(".", 1)[-1], su_tok.rsplit(".", 1)[-1])
                e = Errs()
                for want, fn, what in (
                        (True, lambda: authn(ch, "ex", acl_tok, clientid="EX"), "authenticate EX"),
                        (True, lambda: authn(ch, "exs", su_tok, clientid="EXS"),
                         "authenticate EXS"),
                        (True, lambda: authz(ch, "e/1", PUBLISH, "ex", "EX"), "before exp"),
                        (True, lambda: authz(ch, "$SYS/x", PUBLISH, "exs", "EXS"),
                         "superuser before exp")):
                    got = fn()
                    if time.time() < exp - 0.5:
                        e.want(want, lambda: got, what)
                e.done()
                poll_until(lambda: authz(ch, "e/1", PUBLISH, "ex", "EX"), DENY_RAW, 15.0,
                           "JWT ACL after the token's exp")
                poll_until(lambda: authz(ch, "$SYS/x", PUBLISH, "exs", "EXS"), DENY_RAW, 15.0,
                           "JWT superuser after the token's exp")
                ensure(time.time() >= exp, "a decision changed %.1fs before exp" % (
                    exp - time.time()))
                e = Errs()
                e.want(False, lambda: authn(ch, "ex", acl_tok, clientid="EX"),
                       "the expired token, again (even if cached)")
                e.done()


# ====================================================================== 10. Redis + JWT

MIXED_POLICY = ("authn redis\n"
                "authn jwt\n"
                "authn default deny\n"
                'allow all ["#", "$SYS/#"] when superuser\n'
                "rules redis\n"
                "rules jwt\n"
                'allow publish "after/#"\n'
                "authz default deny\n")


@_scenario
def stores_mixed(s, h):
    with Env(s, h, "stores_mixed") as env:
        r = env.redis()
        secret = env.secret("mixsecret")
        rpw = env.secret("mixpw")
        r.hset("mqtt_user:ruser", {"password_hash": sha_hex("sha256", "s" + rpw), "salt": "s"})
        r.hset("mqtt_acl:ruser", {"r/1": "publish", "shared/#": "subscribe"})
        w = env.warden(MIXED_POLICY, *redis_lines(r, "jwt_secret " + secret))
        exp = now() + 600
        jv2 = jwt_hs({"exp": exp, "acl": [{"permission": "allow", "action": "publish",
                                          "topic": "j/1"}]}, secret)
        jv1 = jwt_hs({"exp": exp, "acl": {"pub": ["k/1"]}}, secret)
        env.hide(jv2.rsplit(".", 1)[-1], jv1.rsplit(".", 1)[-1])
        P = PUBLISH
        with H.channel(w.addr) as ch:
            with s.check("stores_mixed_each_gets_its_own_acl"):
                e = Errs()
                e.want(True, lambda: authn(ch, "ruser", rpw, clientid="RC"), "Redis user")
                e.want(True, lambda: authn(ch, "juser", jv2, clientid="JC"),
                       "JWT client (no Redis key: chain goes on to jwt)")
                e.want(True, lambda: authn(ch, "kuser", jv1, clientid="KC"), "JWT v1 client")
                e.want(True, lambda: authz(ch, "r/1", P, "ruser", "RC"), "Redis user, Redis ACL")
                e.want(False, lambda: authz(ch, "j/1", P, "ruser", "RC"),
                       "Redis user, JWT client's topic")
                e.want(True, lambda: authz(ch, "j/1", P, "juser", "JC"), "JWT client, its ACL")
                e.want(False, lambda: authz(ch, "r/1", P, "juser", "JC"),
                       "JWT client, Redis user's topic")
                e.want(True, lambda: authz(ch, "k/1", P, "kuser", "KC"), "JWT v1 client")
                e.want(False, lambda: authz(ch, "r/1", P, "kuser", "KC"),
                       "JWT v1 client, Redis topic")
                e.want(False, lambda: authz(ch, "j/1", P, "kuser", "KC"),
                       "JWT v1 client, another token's topic")
                e.done()
            with s.check("stores_mixed_rules_jwt_fall_through"):
                e = Errs()
                e.want(True, lambda: authz(ch, "after/1", P, "ruser", "RC"),
                       "Redis session, no ACL claim: `rules jwt` falls through")
                e.want(True, lambda: authz(ch, "after/1", P, "juser", "JC"),
                       "v2 ACL without a match falls through")
                e.want(False, lambda: authz(ch, "after/1", P, "kuser", "KC"),
                       "v1 ACL denies what it does not list")
                e.want(False, lambda: authz(ch, "after/1", P, "ruser", "RC-elsewhere"),
                       "no session here: `rules jwt` denies (docs/sessions.md)")
                e.want(True, lambda: authz(ch, "r/1", P, "ruser", "RC-elsewhere"),
                       "no session here: `rules redis` still reads Redis by username")
                e.done()
            with s.check("stores_mixed_relogin_replaces_session"):
                e = Errs()
                e.want(True, lambda: authn(ch, "juser", jv2, clientid="SW", peerport=41000),
                       "SW logs in with a token (JWT ACL j/1)")
                e.want(True, lambda: authz(ch, "j/1", P, "juser", "SW", peerport=41000),
                       "SW, JWT ACL")
                e.want(True, lambda: authn(ch, "juser", jv1, clientid="SW", peerport=41001),
                       "SW logs in again with another token (ACL k/1)")
                e.want(False, lambda: authz(ch, "j/1", P, "juser", "SW", peerport=41001),
                       "SW's first token's ACL is gone")
                e.want(True, lambda: authz(ch, "k/1", P, "juser", "SW", peerport=41001),
                       "SW's new token's ACL")
                e.want(True, lambda: authn(ch, "ruser", rpw, clientid="SW", peerport=41002),
                       "SW logs in as the Redis user")
                e.want(False, lambda: authz(ch, "k/1", P, "ruser", "SW", peerport=41002),
                       "no JWT ACL left for the Redis login")
                e.want(True, lambda: authz(ch, "after/1", P, "ruser", "SW", peerport=41002),
                       "Redis login: `rules jwt` falls through (no ACL claim)")
                e.done()
            with s.check("stores_mixed_policy_reload_keeps_sessions"):
                before = w.count(H.SIGHUP_OK)
                H.replace_file(w.policy_path, MIXED_POLICY.replace(
                    "authz default deny", 'allow publish "new/#"\nauthz default deny'))
                w.signal(signal.SIGHUP)
                w.wait_count(H.SIGHUP_OK + "|" + H.SIGHUP_FAIL, before + 1, "SIGHUP reload")
                ensure(w.count(H.SIGHUP_OK) == before + 1, "reload failed\n%s" % H.tail(w.log()))
                e = Errs()
                e.want(True, lambda: authz(ch, "new/1", P, "ruser", "RC"), "the new rule")
                e.want(True, lambda: authz(ch, "r/1", P, "ruser", "RC"), "Redis ACL after reload")
                e.want(True, lambda: authz(ch, "j/1", P, "juser", "JC"),
                       "JWT session's ACL after reload")
                e.want(False, lambda: authz(ch, "new/1", P, "kuser", "KC"),
                       "v1 session still denies what it does not list, after reload")
                e.want(True, lambda: authz(ch, "k/1", P, "kuser", "KC"), "v1 session after reload")
                e.done()
            with s.check("stores_mixed_credentials_do_not_cross"):
                e = Errs()
                e.want(False, lambda: authn(ch, "ruser", jv2, clientid="RC2"),
                       "a Redis user with a valid token: Redis decides (wrong password)")
                e.want(False, lambda: authn(ch, "juser", rpw, clientid="JC2"),
                       "a JWT user with the Redis user's password")
                e.want(False, lambda: authn(ch, "nobody", "not-a-token", clientid="N"),
                       "neither")
                e.want(False, lambda: authz(ch, "j/1", P, "juser", "RC"),
                       "JWT client's username on the Redis user's clientid")
                e.done()
            with s.check("stores_mixed_exhook_v3"):
                e = Errs()
                e.want(True, lambda: authn(ch, "ruser", rpw, clientid="RC3", version="v3"),
                       "v3 Redis user")
                e.want(True, lambda: authn(ch, "juser", jv2, clientid="JC3", version="v3"),
                       "v3 JWT client")
                e.want(True, lambda: authz(ch, "r/1", P, "ruser", "RC3", "v3"), "v3 Redis ACL")
                e.want(True, lambda: authz(ch, "j/1", P, "juser", "JC3", "v3"), "v3 JWT ACL")
                e.want(False, lambda: authz(ch, "r/1", P, "juser", "JC3", "v3"), "v3 crossed")
                e.want(False, lambda: authn(ch, "ruser", rpw + "x", clientid="RC3", version="v3"),
                       "v3 wrong password")
                e.done()


# ====================================================================== 11. concurrency

@_scenario
def stores_concurrency(s, h):
    with Env(s, h, "stores_concurrency") as env:
        r = env.redis()
        secret = env.secret("concsecret")
        pws = [env.secret("cpw%d" % i) for i in range(4)]
        for i, pw in enumerate(pws):
            r.hset("mqtt_user:r%d" % i, {"password_hash": sha_hex("sha256", "s" + pw),
                                         "salt": "s"})
            r.hset("mqtt_acl:r%d" % i, {"r/%d" % i: "publish"})
        r.hset("mqtt_acl:flip", {"flip/a": "publish"})
        toks = []
        for i in range(4):
            tk = jwt_hs({"exp": now() + 600, "acl": {"pub": ["j/${clientid}"]}}, secret)
            env.hide(tk.rsplit(".", 1)[-1])
            toks.append(tk)
        sock = os.path.join(tempfile.mkdtemp(prefix="adm.", dir=h.tmp), "admin.sock")
        w = env.warden(MIXED_POLICY, *redis_lines(r, "jwt_secret " + secret,
                                                  "admin_socket " + sock))
        errors = []
        lock = threading.Lock()
        stop = threading.Event()
        counts = collections.Counter()

        def worker(i):
            try:
                with H.channel(w.addr) as ch:
                    for k in range(200):
                        cases = []
                        if k % 2 == 0:
                            cases.append((ALLOW_RAW, lambda: authn(ch, "r%d" % i, pws[i],
                                                                   clientid="rc%d" % i),
                                          "authn r%d" % i))
                            cases.append((ALLOW_RAW, lambda: authz(ch, "r/%d" % i, PUBLISH,
                                                                   "r%d" % i, "rc%d" % i),
                                          "r%d pub r/%d" % (i, i)))
                            cases.append((DENY_RAW, lambda: authz(ch, "r/%d" % ((i + 1) % 4),
                                                                  PUBLISH, "r%d" % i,
                                                                  "rc%d" % i),
                                          "r%d pub another's topic" % i))
                        else:
                            cases.append((ALLOW_RAW, lambda: authn(ch, "j%d" % i, toks[i],
                                                                   clientid="jc%d" % i),
                                          "authn j%d" % i))
                            cases.append((ALLOW_RAW, lambda: authz(ch, "j/jc%d" % i, PUBLISH,
                                                                   "j%d" % i, "jc%d" % i),
                                          "j%d pub own" % i))
                            cases.append((DENY_RAW, lambda: authz(ch, "r/%d" % i, PUBLISH,
                                                                  "j%d" % i, "jc%d" % i),
                                          "j%d pub Redis topic" % i))
                        if k % 10 == 0:
                            cases.append((None, lambda: authz(ch, "flip/a", PUBLISH, "flip",
                                                              "fc%d" % i), "flip/a"))
                        for want, fn, what in cases:
                            try:
                                raw = fn()
                            except grpc.RpcError as e:
                                raw = "RPC error %s %r" % (H._code(e), H._details(e))
                            ok = raw in (ALLOW_RAW, DENY_RAW) if want is None else raw == want
                            with lock:
                                counts["calls"] += 1
                                if not ok and len(errors) < 20:
                                    errors.append("thread %d iteration %d %s: got %s" % (
                                        i, k, what, decision(raw)))
                                elif not ok:
                                    counts["more"] += 1
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append("thread %d: %s: %s" % (i, type(e).__name__, e))

        def flipper():
            c = Resp(r.port)
            try:
                n = 0
                while not stop.is_set():
                    if n % 2 == 0:
                        c.cmd("HSET", "mqtt_acl:flip", "flip/b", "publish")
                        c.cmd("HDEL", "mqtt_acl:flip", "flip/a")
                    else:
                        c.cmd("HSET", "mqtt_acl:flip", "flip/a", "publish")
                        c.cmd("HDEL", "mqtt_acl:flip", "flip/b")
                    n += 1
                    stop.wait(0.005)
                counts["flips"] = n
            finally:
                c.close()

        with s.check("stores_concurrency_4x200_correct"):
            fl = threading.Thread(target=flipper, daemon=True)
            fl.start()
            ths = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(4)]
            for t in ths:
                t.start()
            deadline = time.monotonic() + 120
            for t in ths:
                t.join(max(0.1, deadline - time.monotonic()))
            stop.set()
            fl.join(10)
            ensure(not any(t.is_alive() for t in ths), "worker threads still running after 120s")
            ensure(w.alive(), "warden died\n%s" % H.tail(w.log()))
            ensure(not errors, "%d wrong replies of %d calls (first ones):\n%s" % (
                len(errors) + counts["more"], counts["calls"], "\n".join(errors)))
            ensure(counts["calls"] >= 4 * 200 * 3, "only %d calls made" % counts["calls"])
        with s.check("stores_concurrency_consistent_after_flush"):
            r.cmd("DEL", "mqtt_acl:flip")
            r.hset("mqtt_acl:flip", {"flip/b": "publish"})
            admin_ok(h, sock, "flush", "--user", "flip")
            with H.channel(w.addr) as ch:
                e = Errs()
                for i in range(8):
                    e.want(False, lambda: authz(ch, "flip/a", PUBLISH, "flip", "fc%d" % i),
                           "flip/a after flush (%d)" % i)
                    e.want(True, lambda: authz(ch, "flip/b", PUBLISH, "flip", "fc%d" % i),
                           "flip/b after flush (%d)" % i)
                e.want(True, lambda: authz(ch, "r/0", PUBLISH, "r0", "rc0"), "r0 unaffected")
                e.want(True, lambda: authz(ch, "j/jc0", PUBLISH, "j0", "jc0"), "j0 unaffected")
                e.done()



# ====================================================================== 12. Redis connection

@_scenario
def stores_redis_connection_options(s, h):
    with Env(s, h, "stores_redis_connection_options") as env:
        r = env.redis(password=env.secret("defaultpw"), unixsocket=True)
        acl_pw = env.secret("aclpw")
        pw = env.secret("connpw")
        hv = sha_hex("sha256", pw)
        r.cmd("ACL", "SETUSER", "wuser", "on", ">" + acl_pw, "~*", "+@all")
        r.hset("mqtt_user:u0", {"password_hash": hv})
        r.hset("dev:cl-7", {"password_hash": hv})
        r.cmd("SELECT", "3")
        r.hset("mqtt_user:u3", {"password_hash": hv})
        r.cmd("SELECT", "0")
        pol = "authn redis\nauthn default deny\nauthz default deny\n"
        base = ["redis_host 127.0.0.1", "redis_port %d" % r.port]
        w_acl = env.warden(pol, *base, "redis_username wuser", "redis_password " + acl_pw,
                           name="redis-acl-user")
        w_db = env.warden(pol, *base, "redis_password " + r.password, "redis_database 3",
                          name="redis-db3")
        w_bad = env.warden(pol, *base, "redis_password " + r.password + "-wrong",
                           name="redis-badpw")
        w_none = env.warden(pol, *base, name="redis-nopw")
        w_sock = env.warden(pol, "redis_socket " + r.socket, "redis_password " + r.password,
                            name="redis-socket")
        w_key = env.warden(pol, *base, "redis_password " + r.password,
                           "redis_authn_key dev:${clientid}", name="redis-clientid-key")
        r.hset("a$b:u9", {"password_hash": hv})
        w_dol = env.warden(pol, *base, "redis_password " + r.password,
                           "redis_authn_key a${$}b:${username}", name="redis-dollar-key")
        with s.check("stores_redis_auth_select_socket"):
            e = Errs()
            with H.channel(w_acl.addr) as ch:
                e.want(True, lambda: authn(ch, "u0", pw), "AUTH wuser <password> (ACL user)")
            with H.channel(w_db.addr) as ch:
                e.want(True, lambda: authn(ch, "u3", pw), "redis_database 3: user in db 3")
                e.want(False, lambda: authn(ch, "u0", pw), "redis_database 3: user in db 0")
            with H.channel(w_sock.addr) as ch:
                e.want(True, lambda: authn(ch, "u0", pw), "redis_socket")
            with H.channel(w_key.addr) as ch:
                e.want(True, lambda: authn(ch, "anyone", pw, clientid="cl-7"),
                       "redis_authn_key dev:${clientid}")
                e.want(False, lambda: authn(ch, "anyone", pw, clientid="cl-8"),
                       "redis_authn_key dev:${clientid}, another clientid")
            with H.channel(w_dol.addr) as ch:
                e.want(True, lambda: authn(ch, "u9", pw), "redis_authn_key a${$}b:${username}")
            e.done()
        with s.check("stores_redis_auth_refused_fails_closed"):
            e = Errs()
            with H.channel(w_bad.addr) as ch:
                e.want(False, lambda: authn(ch, "u0", pw), "wrong redis_password (WRONGPASS)")
            with H.channel(w_none.addr) as ch:
                e.want(False, lambda: authn(ch, "u0", pw), "no redis_password (NOAUTH)")
            e.done()
            ensure(w_bad.alive() and w_none.alive(), "a warden died")


# ====================================================================== 13. JWT options

@_scenario
def stores_jwt_options(s, h):
    with Env(s, h, "stores_jwt_options") as env:
        secret = env.secret("optsecret")
        raw_key = os.urandom(32)
        b64_key = base64.b64encode(raw_key).decode()
        env.hide(b64_key)
        pol = "authn jwt\nauthn default deny\nrules jwt\nallow publish \"c/#\"\n" \
              "authz default deny\n"
        w_lee = env.warden(pol, "jwt_secret " + secret, "jwt_leeway 30s", name="jwt-leeway")
        w_iat = env.warden(pol, "jwt_secret " + secret, "jwt_check_iat on", name="jwt-iat")
        w_def = env.warden(pol, "jwt_secret " + secret, name="jwt-default")
        w_usr = env.warden(pol, "jwt_secret " + secret, "jwt_from username", name="jwt-from-user")
        w_b64 = env.warden(pol, "jwt_secret " + b64_key, "jwt_secret_base64 on", name="jwt-b64")
        w_cl = env.warden(pol, "jwt_secret " + secret, "jwt_acl_claim perms", name="jwt-aclclaim")
        t = now()

        def tk(claims, key=secret):
            v = jwt_hs(claims, key)
            env.hide(v.rsplit(".", 1)[-1])
            return v

        with s.check("stores_jwt_time_claims_options"):
            e = Errs()
            with H.channel(w_lee.addr) as ch:
                e.want(True, lambda: authn(ch, "d", tk({"exp": t - 5})), "leeway 30s, exp now-5")
                e.want(False, lambda: authn(ch, "d", tk({"exp": t - 300})),
                       "leeway 30s, exp now-300")
                e.want(True, lambda: authn(ch, "d", tk({"exp": t + 600, "nbf": t + 5})),
                       "leeway 30s, nbf now+5")
                e.want(False, lambda: authn(ch, "d", tk({"exp": t + 600, "nbf": t + 600})),
                       "leeway 30s, nbf now+600")
            with H.channel(w_def.addr) as ch:
                e.want(False, lambda: authn(ch, "d", tk({"exp": t - 5})), "no leeway, exp now-5")
                e.want(True, lambda: authn(ch, "d", tk({"exp": t + 600, "iat": t + 600})),
                       "jwt_check_iat off (default): iat in the future is accepted (EMQX)")
                e.want(True, lambda: authn(ch, "d", tk({"iat": t})), "no exp at all")
            with H.channel(w_iat.addr) as ch:
                e.want(False, lambda: authn(ch, "d", tk({"exp": t + 600, "iat": t + 600})),
                       "jwt_check_iat on: iat in the future")
                e.want(True, lambda: authn(ch, "d", tk({"exp": t + 600, "iat": t - 5})),
                       "jwt_check_iat on: iat in the past")
            e.done()
        with s.check("stores_jwt_from_username_and_base64_secret"):
            e = Errs()
            good = jwt_hs({"exp": t + 600, "acl": {"pub": ["u/1"]}}, secret)
            with H.channel(w_usr.addr) as ch:
                e.want(True, lambda: authn(ch, good, "anything", clientid="FU"),
                       "jwt_from username: token in the username")
                e.want(False, lambda: authn(ch, "someone", good, clientid="FU2"),
                       "jwt_from username: token in the password is not read")
                e.want(True, lambda: authz(ch, "u/1", PUBLISH, good, "FU"),
                       "jwt_from username: the session's ACL")
                e.want(False, lambda: authz(ch, "u/1", PUBLISH, "someone", "FU"),
                       "jwt_from username: another username on the same clientid")
            with H.channel(w_b64.addr) as ch:
                e.want(True, lambda: authn(ch, "d", tk({"exp": t + 600}, raw_key)),
                       "jwt_secret_base64: HMAC keyed with the decoded bytes")
                e.want(False, lambda: authn(ch, "d", tk({"exp": t + 600}, b64_key)),
                       "jwt_secret_base64: HMAC keyed with the base64 text")
            with H.channel(w_cl.addr) as ch:
                e.want(True, lambda: authn(ch, "d", tk({"exp": t + 600, "perms": {"pub": ["p/1"]},
                                                        "acl": {"pub": ["q/1"]}}), clientid="CL"),
                       "jwt_acl_claim perms")
                e.want(True, lambda: authz(ch, "p/1", PUBLISH, "d", "CL"), "ACL from `perms`")
                e.want(False, lambda: authz(ch, "q/1", PUBLISH, "d", "CL"),
                       "the `acl` claim is not the ACL claim here")
            e.done()

        with s.check("stores_reload_refuses_redis_policy_without_redis"):
            before = w_def.count(H.SIGHUP_FAIL)
            H.replace_file(w_def.policy_path, "authn redis\nauthn default allow\n"
                           "authz default allow\n")
            w_def.signal(signal.SIGHUP)
            w_def.wait_count(H.SIGHUP_FAIL + "|" + H.SIGHUP_OK, before + 1,
                             "SIGHUP with `authn redis` and no Redis configured")
            ensure(w_def.count(H.SIGHUP_OK) == 0, "the policy with `authn redis` was loaded "
                   "although no Redis is configured\n%s" % H.tail(w_def.log(), 5))
            with H.channel(w_def.addr) as ch:
                e = Errs()
                e.want(False, lambda: authn(ch, "d", "not-a-token"),
                       "the old policy (authn jwt, default deny) still serves")
                e.want(True, lambda: authn(ch, "d", tk({"exp": t + 600})), "old policy: token")
                e.done()
        with s.check("stores_jwt_from_username_token_not_logged"):
            # docs/operations.md: "Passwords, tokens and stored secrets are never logged, at
            # any level." With jwt_from username the token is the MQTT username.
            sig = good.rsplit(".", 1)[1]
            n = w_usr.log().count(sig)
            ensure(n == 0, "the token's signature appears %d times in the log (debug lines "
                   "quote username=\"<token>\"):\n%s" % (n, H.tail("\n".join(
                       ln[:160] + "..." for ln in w_usr.log().splitlines() if sig in ln), 2)))
        k = Keys.get(h)
        with s.check("stores_config_refusals"):
            problems = []

            def refused(name, why, codes, policy_text, *lines):
                w = env.warden(policy_text, *lines, name="refuse-" + name, start=False)
                w.spawn()
                rc = w.wait(10)
                if rc is None:
                    problems.append("%s: warden still running after 10s (want a refusal)\n%s" % (
                        name, H.tail(w.log(), 5)))
                    w.stop()
                elif rc not in codes:
                    problems.append("%s: exit %s, want %s\n%s" % (name, rc, codes,
                                                                 H.tail(w.log(), 5)))
                elif not re.search(why, w.log()):
                    problems.append("%s: refused, but no message matching %r\n%s" % (
                        name, why, H.tail(w.log(), 5)))
                w.proc = None  # refused (or killed): not a clean-exit candidate
            small_pub = k.small_pub
            refused("authn_redis_without_redis", r"(?i)redis", (3,),
                    "authn redis\nauthn default deny\n")
            refused("rules_redis_without_redis", r"(?i)redis", (3,),
                    "rules redis\nauthz default deny\n")
            refused("redis_key_unknown_placeholder", r"\$\{password\}", (3,),
                    "authn redis\nauthn default deny\n",
                    "redis_host 127.0.0.1", "redis_authn_key mqtt_user:${password}")
            refused("jwt_secret_is_pem", r"(?i)PEM", (1, 3), pol,
                    'jwt_secret "-----BEGIN PUBLIC KEY-----MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIB"')
            refused("two_jwt_key_sources", r"(?i)one JWT key source", (1, 3), pol,
                    "jwt_secret " + secret, "jwt_public_key " + k.rsa_pub)
            refused("rsa_1024_public_key", r"1024", (1, 3), pol, "jwt_public_key " + small_pub)
            refused("jwt_public_key_missing_file", r"none\.pem", (1, 3), pol,
                    "jwt_public_key " + os.path.join(k.d, "none.pem"))
            ensure(not problems, "\n".join(problems))
        with s.check("stores_print_config_redacts"):
            rpw = env.secret("printredis")
            cfg = H.write_file(h, "p.conf", "redis_host 127.0.0.1\nredis_password %s\n"
                               "jwt_secret %s\n" % (rpw, secret))
            rc, out, err = H.run_warden(h, ["--config", cfg, "--print-config"])
            ensure(rc == 0, "--print-config: exit %s\n%s" % (rc, H.tail(err)))
            ensure(rpw not in out + err and secret not in out + err,
                   "--print-config prints a secret:\n%s" % out)
            ensure(out.count("<redacted>") >= 2, "no <redacted> for redis_password and "
                   "jwt_secret:\n%s" % "\n".join(ln for ln in out.splitlines()
                                                  if "redis_password" in ln or "jwt_secret" in ln))


# ====================================================================== 14. reconnection

@_scenario
def stores_redis_reconnect(s, h):
    """docs/redis.md: when the server closed the connection (Redis restarted, or its
    `timeout` closed an idle connection) the command is retried once at once on a fresh
    connection: no request fails."""
    with Env(s, h, "stores_redis_reconnect") as env:
        r = env.redis()
        pw = env.secret("recpw")

        def populate():
            r.hset("mqtt_user:rc", {"password_hash": sha_hex("sha256", pw)})

        populate()
        w = env.warden("authn redis\nauthn default deny\nauthz default deny\n",
                       *redis_lines(r, "cache off"))
        with H.channel(w.addr) as ch:
            def burst(what, n=12):
                e = Errs()
                for i in range(n):
                    e.want(True, lambda: authn(ch, "rc", pw), "%s: request %d" % (what, i + 1))
                e.done()

            with s.check("stores_redis_reconnect_after_server_closed_idle"):
                burst("warm-up")
                killed = r.cmd("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
                ensure(killed >= 1, "CLIENT KILL closed %r connections, want warden's" % killed)
                burst("after Redis closed warden's connections (CLIENT KILL)")
            with s.check("stores_redis_reconnect_after_restart"):
                burst("warm-up")
                r.restart()
                populate()
                burst("first requests after Redis restarted on the same port")


def _redis_rx_queued(port):
    """True when a TCP socket of the Redis server on `port` holds unread bytes: a command
    warden sent that the (paused) server has not read. Read from /proc/net/tcp*, so the test
    knows a call is in flight without guessing from time."""
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    cols = line.split()
                    local, queues = cols[1], cols[4]
                    if int(local.rsplit(":", 1)[1], 16) != port:
                        continue
                    if int(queues.split(":")[1], 16) > 0:
                        return True
        except OSError:
            continue
    return False


@_scenario
def stores_shutdown_grace_finishes_inflight_calls(s, h):
    """SIGTERM while a call waits on a paused Redis: the call still gets its real answer
    once Redis resumes within the grace period, and warden exits 0 (operations.md)."""
    with Env(s, h, "stores_shutdown_grace") as env:
        r = env.redis()
        pw = env.secret("gracepw")
        r.hset("mqtt_user:gina", {"password_hash": sha_hex("sha256", "s" + pw), "salt": "s"})
        w = env.warden("authn redis\nauthn default deny\n",
                       *redis_lines(r, "cache off", "redis_timeout 20s", "shutdown_grace 30s"),
                       name="grace")
        with s.check("stores_grace_inflight_call_answered_after_sigterm"):
            with H.channel(w.addr) as ch:
                ensure(authn(ch, "gina", pw) == ALLOW_RAW, "warm-up: gina is allowed")
                r.pause()
                got = {}

                def call():
                    try:
                        got["raw"] = authn(ch, "gina", pw)
                    except Exception as e:  # noqa: BLE001 (reported below)
                        got["err"] = e

                t = threading.Thread(target=call)
                t.start()
                poll_until(lambda: _redis_rx_queued(r.port), True, 10,
                           "warden's HMGET waiting in the paused Redis")
                w.signal(signal.SIGTERM)
                w.wait_count(r"shutting down: no new calls", 1, "shutdown started")
                ensure(t.is_alive(), "the call finished before Redis resumed: %r" % got)
                r.resume()
                t.join(20)
                ensure(not t.is_alive(), "the in-flight call never finished")
                ensure("err" not in got, "in-flight call failed: %r" % got.get("err"))
                ensure(got["raw"] == ALLOW_RAW,
                       "in-flight call answered %s, want ALLOW" % decision(got.get("raw")))
                rc = w.wait()
                ensure(rc == 0, "exit status %s after the grace shutdown" % rc)
        # The grace period expires while a handler is blocked on the paused Redis: the call is
        # cancelled, the worker finishes its handler when Redis times out, and warden exits 0
        # (it used to abort: the reply was started on a completion queue already shut down).
        w2 = env.warden("authn redis\nauthn default deny\n",
                        *redis_lines(r, "cache off", "redis_timeout 2s", "shutdown_grace 100ms"),
                        name="grace-expired")
        with s.check("stores_grace_expired_while_blocked_on_redis_exits_0"):
            with H.channel(w2.addr) as ch:
                got = {}

                def call2():
                    try:
                        got["raw"] = authn(ch, "gina", pw)
                    except grpc.RpcError as e:
                        got["code"] = H._code(e)

                r.pause()
                t = threading.Thread(target=call2)
                t.start()
                poll_until(lambda: _redis_rx_queued(r.port), True, 10,
                           "warden's HMGET waiting in the paused Redis")
                w2.signal(signal.SIGTERM)
                rc = w2.wait(30)
                t.join(20)
                ensure(rc == 0, "exit status %s (want 0)\n%s" % (rc, H.tail(w2.log())))
                ensure(got.get("code") in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE),
                       "in-flight call after the grace expired: %r (want CANCELLED)" % got)
                ensure(w2.count(r"grace of 100 ms expired") == 1, "grace expiry logged")
        r.resume()


_HTTPS_SERVER = r"""
import http.server, os, ssl, sys
root, cert, key, portfile = sys.argv[1:5]
class H(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=root, **kw)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
"""


@_scenario
def stores_jwt_jwks_url_rotation(s, h):
    """jwt_jwks_url end to end: keys fetched over HTTPS (server verified with jwt_jwks_ca),
    a token with a kid the set does not have yet kicks a refresh, and after the issuer
    rotates its JWKS the new key verifies; an unreachable JWKS keeps the last good set."""
    k = Keys.get(h)
    pki = h.pki()
    d = tempfile.mkdtemp(prefix="jwks-https.", dir=h.tmp)
    doc = os.path.join(d, "jwks.json")

    def publish(keys):
        with open(doc + ".new", "w") as f:
            json.dump({"keys": keys}, f)
        os.rename(doc + ".new", doc)

    rsa_k1 = {"kty": "RSA", "kid": "k1", "use": "sig", "n": k.rsa_n, "e": "AQAB"}
    ec_k2 = {"kty": "EC", "kid": "k2", "use": "sig", "crv": "P-256", "x": k.ec_x, "y": k.ec_y}
    publish([rsa_k1])
    portfile = os.path.join(d, "port")
    srv = subprocess.Popen(["/usr/bin/python3", "-c", _HTTPS_SERVER, d,
                            os.path.join(pki, "server.pem"), os.path.join(pki, "server.key"),
                            portfile], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, preexec_fn=_pdeathsig)
    try:
        deadline = time.monotonic() + 15
        while not os.path.exists(portfile):
            ensure(srv.poll() is None and time.monotonic() < deadline,
                   "the test HTTPS server did not start")
            time.sleep(0.02)
        with open(portfile) as f:
            port = int(f.read())
        url = "https://localhost:%d/jwks.json" % port
        with Env(s, h, "stores_jwt_jwks_url") as env:
            w = env.warden("authn jwt\nauthn default deny\nallow all \"#\"\n",
                           "jwt_jwks_url " + url, "jwt_jwks_ca " + os.path.join(pki, "ca.pem"),
                           "jwt_jwks_refresh 1h", name="jwks-url")
            exp = now() + 600
            t1 = jwt_pk({"exp": exp}, k.rsa, "RS256", kid="k1")
            t2 = jwt_pk({"exp": exp}, k.ec, "ES256", kid="k2")
            env.hide(t1.rsplit(".", 1)[-1], t2.rsplit(".", 1)[-1])
            with H.channel(w.addr) as ch:
                with s.check("stores_jwks_url_first_fetch_verifies"):
                    ensure(authn(ch, "d1", t1, clientid="J1") == ALLOW_RAW,
                           "RS256 token with kid k1 from the fetched set")
                    ensure(authn(ch, "d2", t2, clientid="J2") == DENY_RAW,
                           "kid k2 is not published yet")
                with s.check("stores_jwks_url_rotation_picked_up_by_unknown_kid"):
                    publish([rsa_k1, ec_k2])
                    # each unknown-kid refusal kicks a (rate-limited) refresh: poll
                    poll_until(lambda: authn(ch, "d2", t2, clientid="J2"), ALLOW_RAW, 60,
                               "ES256 token with kid k2 after the rotation")
                with s.check("stores_jwks_url_outage_keeps_the_last_good_set"):
                    srv.kill()
                    srv.wait()
                    ensure(authn(ch, "d3", jwt_pk({"exp": exp, "n": 3}, k.ec, "ES256",
                                                  kid="k2"), clientid="J3") == ALLOW_RAW,
                           "k2 still verifies with the JWKS server gone")
                    ensure(authn(ch, "d4", jwt_pk({"exp": exp}, k.rsa2, "RS256", kid="k9"),
                                 clientid="J4") == DENY_RAW, "an unknown kid is refused")
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()

