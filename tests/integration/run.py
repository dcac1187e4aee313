#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""warden integration suite: starts real warden processes and talks gRPC to them the way
EMQX's ExHook client does.

usage: /usr/bin/python3 tests/integration/run.py --warden build/warden --gen build/gen/py
       [--only SUBSTR]... [--verbose] [--keep] [--list]

  --gen     directory holding exhook_pb2.py and health_pb2.py (protoc --python_out)
  --only    run only the scenarios whose name contains SUBSTR (repeatable)
  --verbose print timings and the temp dir; --keep leaves the temp dir (logs) behind

Each scenario starts its own warden(s) on 127.0.0.1:0 (the port is read from the
"listening on" log line), with stderr in a temp dir, and runs one or more named checks.
Users and decisions live in policy files (docs/policy.md) that the checks write into
directories of their own in the temp dir and name with `policy PATH` in the configuration;
a configuration without `policy` serves the embedded default policy (demo/demo). Reloads
(SIGHUP, or the file watcher after a change) are waited for by polling the log for
warden's "reloaded (generation N)" / "reload failed" lines, never by a fixed sleep.
After every scenario, a sanitizer report (ASan, LeakSanitizer, UBSan, TSan) in any warden's
log or captured stderr fails "sanitizer_report_in_<scenario>" (harness.SanitizerWatch), so
`make sanitize` and `make tsan` fail on a report even where no exit status shows it.
Output: "PASS name" / "FAIL name: reason" per check, then "N passed, N failed"; exit
status 1 if anything failed. Needs Debian's /usr/bin/python3 (python3-grpcio,
python3-protobuf) and openssl (certs/gen.sh) for the TLS checks.
"""
import sys
sys.dont_write_bytecode = True  # keep tests/ and build/gen/py free of __pycache__
import argparse
import collections
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--warden", default=os.path.join(ROOT, "build", "warden"))
ap.add_argument("--gen", default=os.path.join(ROOT, "build", "gen", "py"))
ap.add_argument("--only", action="append", default=[])
ap.add_argument("--verbose", "-v", action="store_true")
ap.add_argument("--keep", action="store_true")
ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
# warden has one transport since gRPC core was removed (0.2.0); `--transport h2` is still
# accepted so that command lines from the two-transport stage keep working
ap.add_argument("--transport", choices=("h2",), default="h2",
                help="accepted for old command lines: h2 is the only transport")
ARGS = ap.parse_args()

sys.path.insert(0, os.path.abspath(ARGS.gen))
sys.path.insert(0, HERE)
try:
    import harness as H  # first: it sets gRPC's environment before grpc is imported
    import grpc  # noqa: F401
    from harness import (ALLOW_RAW, DENY_RAW, CONTINUE, STOP, PUBLISH, SUBSCRIBE, SC,
                         CheckFailed, Warden, ensure, pb, hpb)
except ImportError as e:
    print("FAIL setup: cannot import the test dependencies: %s\n"
          "    (run with /usr/bin/python3; --gen must hold exhook_pb2.py and health_pb2.py)" % e)
    print("0 passed, 1 failed")
    sys.exit(1)


class Ctx:
    """What every scenario gets: paths and a lazily generated test PKI."""

    def __init__(self, warden, tmp):
        self.warden = warden
        self.tmp = tmp
        self._pki = None
        self._pki_err = None

    def pki(self):
        if self._pki is None and self._pki_err is None:
            d = os.path.join(self.tmp, "pki")
            r = subprocess.run(["sh", os.path.join(ROOT, "certs", "gen.sh"), d],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            if r.returncode != 0:
                self._pki_err = "certs/gen.sh failed (%d): %s" % (
                    r.returncode, r.stdout.decode(errors="replace"))
            else:
                self._pki = d
        if self._pki_err:
            raise CheckFailed(self._pki_err)
        return self._pki

    def pem(self, name):
        with open(os.path.join(self.pki(), name), "rb") as f:
            return f.read()


SCENARIOS = []


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


def sha(alg, salt, password):
    return hashlib.new(alg, (salt + password).encode()).hexdigest()


def config(*lines):
    return "".join(line + "\n" for line in lines)


policy = config  # a policy file is lines too (docs/policy.md)


def policy_file(h, text, name="warden.policy", subdir=None):
    """Writes a policy into a directory of its own in the temp dir; returns its path."""
    return H.write_file(h, name, text, subdir)


def with_policy(h, policy_text, *lines):
    """A configuration whose `policy` is a new file holding policy_text, plus lines."""
    return config("policy " + policy_file(h, policy_text), *lines)


def auth(ch, user, pw, version="v2", result=False, clientid="client-1"):
    return H.raw_call(ch, H.path("OnClientAuthenticate", version),
                      H.authn_req(user, pw, version, result, clientid).SerializeToString())


def authz(ch, topic, rtype=PUBLISH, version="v2", result=True, username="demo",
          clientid="client-1"):
    return H.raw_call(ch, H.path("OnClientAuthorize", version),
                      H.authz_req(topic, rtype, version, result, username,
                                  clientid).SerializeToString())


def loaded(ch, version="v2"):
    raw = H.raw_call(ch, H.path("OnProviderLoaded", version),
                     H.build_request("OnProviderLoaded", version).SerializeToString())
    ensure(isinstance(raw, bytes), "OnProviderLoaded returned no message")
    return pb.LoadedResponse.FromString(raw)


def expect_hooks(resp, want_names, topics=(), what="OnProviderLoaded"):
    got = [(h.name, list(h.topics)) for h in resp.hooks]
    want = [(n, list(topics) if n in H.MESSAGE_HOOKS else []) for n in want_names]
    ensure(got == want, "%s: hooks %r, want %r" % (what, got, want))


VERSIONS = ("v2", "v3")

# ====================================================================== 1. all 21 RPCs

def all_hooks_config(h):
    return with_policy(
        h, policy('user "demo" "plain:demo"', "authn users", "authn default deny",
                  "authz default allow"),
        "# every hook EMQX knows, so every RPC has a defined reply",
        "hooks " + " ".join(H.ALL_HOOKS),
        "nomatch_reply continue")


@scenario
def rpc_all_methods(s, h):
    with Warden(h, all_hooks_config(h)) as w, H.channel(w.addr) as ch:
        for version in VERSIONS:
            with s.check("rpc_all_21_methods_%s" % version):
                errors = []
                for method, _req, _hook, kind in H.METHODS:
                    req = H.build_request(method, version)
                    code, raw, details = H.call_status(ch, H.path(method, version),
                                                       req.SerializeToString())
                    if code != SC.OK:
                        errors.append("%s: %s %r" % (method, code, details))
                        continue
                    try:
                        if kind == "empty":
                            ensure(raw == b"", "%s: EmptySuccess expected (b''), got %r" % (
                                method, raw))
                        elif kind == "loaded":
                            expect_hooks(pb.LoadedResponse.FromString(raw), H.ALL_HOOKS,
                                         what=method)
                        elif kind in ("authn", "authz"):
                            H.expect_raw(raw, ALLOW_RAW, method)
                        elif kind == "publish":
                            r = H.parse_valued(raw)
                            ensure(r.type == CONTINUE and r.WhichOneof("value") == "message"
                                   and r.message == req.message,
                                   "%s: not an unchanged echo: %s" % (method,
                                                                     H.describe_valued(raw)))
                    except CheckFailed as e:
                        errors.append(str(e))
                ensure(not errors, "%d of 21 RPCs wrong:\n%s" % (len(errors), "\n".join(errors)))


# ====================================================================== 2. OnProviderLoaded

@scenario
def provider_loaded(s, h):
    with s.check("loaded_default_hooks_embedded"):
        with Warden(h) as w, H.channel(w.addr) as ch:
            for v in VERSIONS:
                expect_hooks(loaded(ch, v), H.DEFAULT_HOOKS, what="%s OnProviderLoaded" % v)

    with s.check("loaded_custom_hooks_and_topics"):
        hooks = ["client.connect", "client.authenticate", "message.publish",
                 "client.authorize", "message.delivered", "session.terminated"]
        topics = ["t/#", "sensors/+/temp", "$SYS"]
        # no `policy` line: the embedded default policy (demo/demo) decides
        cfg = config("hooks " + " ".join(hooks),
                     'message_topics "t/#" sensors/+/temp "$SYS"   # "#" needs quotes')
        with Warden(h, cfg) as w, H.channel(w.addr) as ch:
            for v in VERSIONS:
                expect_hooks(loaded(ch, v), hooks, topics, what="%s OnProviderLoaded" % v)
            H.expect_raw(auth(ch, "demo", "demo"), ALLOW_RAW, "embedded policy demo/demo")

    with s.check("loaded_hooks_flag"):
        hooks = ["client.authorize", "message.publish", "client.authenticate"]
        with Warden(h, args=["--hooks", " ".join(hooks)]) as w, H.channel(w.addr) as ch:
            for v in VERSIONS:
                expect_hooks(loaded(ch, v), hooks, what="%s OnProviderLoaded" % v)

    with s.check("config_file_defaults"):
        # a config file that sets nothing but a policy, and a policy with a user and its
        # authn step only: default hooks, no `authn default` / `authz default` = deny, no
        # demo user
        cfg = with_policy(h, policy('user "alice" "plain:alice-pw"', "authn users"))
        with Warden(h, cfg) as w, H.channel(w.addr) as ch:
            expect_hooks(loaded(ch), H.DEFAULT_HOOKS)
            H.expect_raw(auth(ch, "alice", "alice-pw"), ALLOW_RAW, "alice right password")
            H.expect_raw(auth(ch, "demo", "demo"), DENY_RAW, "demo (not in this policy)")
            H.expect_raw(auth(ch, "nobody", "x", result=True), DENY_RAW, "unknown user")
            H.expect_raw(auth(ch, "", "", result=True), DENY_RAW, "anonymous")
            for rt in (PUBLISH, SUBSCRIBE):
                for topic in ("t/1", "users/alice/x", "#"):
                    H.expect_raw(authz(ch, topic, rt, username="alice"), DENY_RAW,
                                 "authorize %r (no authz default: deny)" % topic)


# ====================================================================== 3. authenticate

@scenario
def authn_embedded(s, h):
    with Warden(h) as w, H.channel(w.addr) as ch:
        with s.check("authn_demo_allow"):
            for v in VERSIONS:
                raw = auth(ch, "demo", "demo", v)
                H.expect_raw(raw, ALLOW_RAW, "%s demo/demo" % v)
                H.expect_bool(raw, STOP, True, "%s demo/demo" % v)
        with s.check("authn_wrong_password_deny"):
            for v in VERSIONS:
                for pw in ("wrong", "Demo", "demo ", "", "demodemo", "dem"):
                    raw = auth(ch, "demo", pw, v, result=True)
                    H.expect_raw(raw, DENY_RAW, "%s demo/%r" % (v, pw))
                    H.expect_bool(raw, STOP, False, "%s demo/%r" % (v, pw))
        with s.check("authn_unknown_user_deny"):
            for v in VERSIONS:
                for user in ("nobody", "Demo", "demo2", ""):
                    for result in (False, True):
                        raw = auth(ch, user, "demo", v, result=result)
                        H.expect_raw(raw, DENY_RAW, "%s user %r result=%s" % (v, user, result))
        with s.check("authz_embedded_default_policy"):
            # embedded: allow all "users/${username}/#", authz default deny
            allowed = [("users/demo/t/1", "demo"), ("users/demo", "demo"),
                       ("users/bob/x", "bob")]
            denied = [("t/1", "demo"), ("users/bob/x", "demo"), ("users", "demo"),
                      ("users/demo2/x", "demo"), ("users//x", ""), ("#", "demo"),
                      ("$SYS/brokers", "demo")]
            for v in VERSIONS:
                for rt in (PUBLISH, SUBSCRIBE):
                    for result in (True, False):
                        what = "%s type=%d result=%s" % (v, rt, result)
                        for topic, user in allowed:
                            H.expect_raw(authz(ch, topic, rt, v, result, user), ALLOW_RAW,
                                         "%s %r as %r" % (what, topic, user))
                        for topic, user in denied:
                            H.expect_raw(authz(ch, topic, rt, v, result, user), DENY_RAW,
                                         "%s %r as %r" % (what, topic, user))
                H.expect_raw(authz(ch, "users/demo/#", SUBSCRIBE, v), ALLOW_RAW,
                             "%s subscribe users/demo/#" % v)
                H.expect_raw(authz(ch, "users/+/x", SUBSCRIBE, v), DENY_RAW,
                             "%s subscribe users/+/x" % v)


@scenario
def authn_nomatch(s, h):
    base = policy('user "alice" "plain:alice-pw"', "authn users", "authn default nomatch",
                  "authz default deny")
    with s.check("authn_nomatch_continue"):
        with Warden(h, with_policy(h, base, "nomatch_reply continue")) as w, \
                H.channel(w.addr) as ch:
            for v in VERSIONS:
                for user in ("nobody", ""):
                    for result in (True, False):
                        H.expect_bool(auth(ch, user, "pw", v, result), CONTINUE, result,
                                      "%s unknown user %r result=%s" % (v, user, result))
                # users in the table still get a definite answer
                H.expect_raw(auth(ch, "alice", "alice-pw", v), ALLOW_RAW, "alice right")
                H.expect_raw(auth(ch, "alice", "nope", v, True), DENY_RAW, "alice wrong")
    with s.check("authn_nomatch_ignore"):
        with Warden(h, with_policy(h, base, "nomatch_reply ignore")) as w, \
                H.channel(w.addr) as ch:
            for v in VERSIONS:
                for result in (True, False):
                    H.expect_ignore(auth(ch, "nobody", "pw", v, result),
                                    "%s unknown user result=%s" % (v, result))
                H.expect_raw(auth(ch, "alice", "alice-pw", v), ALLOW_RAW, "alice right")
                H.expect_raw(auth(ch, "alice", "nope", v), DENY_RAW, "alice wrong")


@scenario
def authn_secret_formats(s, h):
    users = {
        "alice": ("plain:alice-pw", "alice-pw"),
        "bob": ("sha256:NaCl:" + sha("sha256", "NaCl", "bob-pw"), "bob-pw"),
        "carol": ("sha512:pepper:" + sha("sha512", "pepper", "carol-pw"), "carol-pw"),
        "dave": ("sha256:s4lt:" + sha("sha256", "s4lt", "pässwörd 🙂"), "pässwörd 🙂"),
        "erin": ("sha256::" + sha("sha256", "", "erin-pw"), "erin-pw"),  # empty salt
    }
    cfg = with_policy(h, policy(*['user "%s" "%s"' % (u, sec) for u, (sec, _) in users.items()],
                                "authn users"))
    with s.check("authn_secret_formats"):
        with Warden(h, cfg) as w, H.channel(w.addr) as ch:
            for v in VERSIONS:
                for u, (sec, pw) in users.items():
                    H.expect_raw(auth(ch, u, pw, v), ALLOW_RAW, "%s %s (%s)" % (
                        v, u, sec.split(":")[0]))
                    H.expect_raw(auth(ch, u, pw + "x", v), DENY_RAW, "%s %s wrong" % (v, u))
                    H.expect_raw(auth(ch, u, pw[:-1], v), DENY_RAW, "%s %s prefix" % (v, u))
                # someone else's password, the stored hash, the salt: all deny
                H.expect_raw(auth(ch, "alice", "bob-pw", v), DENY_RAW, "alice with bob-pw")
                H.expect_raw(auth(ch, "bob", users["bob"][0], v), DENY_RAW, "bob w/ hash")
                H.expect_raw(auth(ch, "bob", users["bob"][0].split(":")[2], v), DENY_RAW,
                             "bob with hex")
                H.expect_raw(auth(ch, "carol", "pepper", v), DENY_RAW, "carol with salt")

    with s.check("cli_set_overrides"):
        # the file names policy A (authn default deny, authz default allow); --set names
        # policy B (authn default allow, authz default deny) and B decides
        pa = policy_file(h, policy('user "demo" "plain:demo"', "authn users",
                                   "authn default deny", "authz default allow"))
        pb_ = policy_file(h, policy('user "demo" "plain:demo"', "authn users",
                                    "authn default allow", "authz default deny"))
        args = ["--set", "policy=" + pb_, "--set", "nomatch_reply=ignore"]
        with Warden(h, config("policy " + pa), args) as w, H.channel(w.addr) as ch:
            H.expect_raw(auth(ch, "nobody", "x"), ALLOW_RAW, "unknown user, authn default allow")
            H.expect_raw(auth(ch, "demo", "wrong"), DENY_RAW, "demo wrong password")
            H.expect_raw(authz(ch, "t/1"), DENY_RAW, "authorize, authz default deny")
    with s.check("cli_set_removed_directive_exit_2"):
        for kv in ("authn_default=allow", "authz_default=deny", "user=demo plain:demo"):
            rc, out, err = H.run_warden(h, ["--set", kv, "--listen", "127.0.0.1:0"])
            ensure(rc == 2, "--set %s: exit %s, want 2\n%s" % (kv, rc, H.tail(err)))
            ensure("unknown directive '%s'" % kv.split("=")[0] in err,
                   "--set %s: no 'unknown directive' message:\n%s" % (kv, H.tail(err)))


# ====================================================================== 4. authorize

@scenario
def authz_defaults(s, h):
    topics = ["t/1", "sensors/ü/temp", "$SYS/brokers", "a/b/c/d/e/f", "x" * 300]
    for setting, reply in (("allow", "allow"), ("deny", "deny"),
                           ("nomatch", "continue"), ("nomatch", "ignore")):
        name = "authz_default_%s" % setting + ("_%s" % reply if setting == "nomatch" else "")
        with s.check(name):
            cfg = with_policy(h, policy('user "demo" "plain:demo"', "authn users",
                                        "authz default " + setting),
                              "nomatch_reply " + ("ignore" if reply == "ignore" else "continue"))
            with Warden(h, cfg) as w, H.channel(w.addr) as ch:
                for v in VERSIONS:
                    for rt in (PUBLISH, SUBSCRIBE):
                        for topic in topics:
                            for result in (True, False):
                                what = "%s %s %r result=%s" % (
                                    v, "PUBLISH" if rt == PUBLISH else "SUBSCRIBE", topic[:20],
                                    result)
                                raw = authz(ch, topic, rt, v, result)
                                if reply == "allow":
                                    H.expect_raw(raw, ALLOW_RAW, what)
                                elif reply == "deny":
                                    H.expect_raw(raw, DENY_RAW, what)
                                    H.expect_bool(raw, STOP, False, what)
                                elif reply == "continue":
                                    H.expect_bool(raw, CONTINUE, result, what)
                                else:
                                    H.expect_ignore(raw, what)


# ====================================================================== 5. message.publish

@scenario
def publish_echo(s, h):
    cfg = config("hooks client.authenticate client.authorize message.publish")
    with Warden(h, cfg) as w, H.channel(w.addr) as ch:
        def echo(msg, v):
            req = H.publish_req(msg, v)
            raw = H.raw_call(ch, H.path("OnMessagePublish", v), req.SerializeToString())
            r = H.parse_valued(raw)
            ensure(r.type == CONTINUE and r.WhichOneof("value") == "message",
                   "%s: reply %s, want CONTINUE + message" % (v, H.describe_valued(raw)))
            if r.message != msg:
                diff = [f.name for f in pb.Message.DESCRIPTOR.fields
                        if getattr(r.message, f.name) != getattr(msg, f.name)]
                raise CheckFailed("%s: message changed, fields differ: %s (got %r)" % (
                    v, diff, str(r.message)[:300]))

        with s.check("publish_echo_unchanged"):
            headers = {"peerhost": "127.0.0.1", "username": "demo", "protocol": "mqtt",
                       "proto_ver": "5", "allow_publish": "true", "ünï": "cödé 🙂",
                       "empty": ""}
            for v in VERSIONS:
                echo(H.message("sensors/ü/temp", bytes(range(256)) * 4, qos=2,
                               headers=headers), v)
                echo(H.message("t/0", b"\x00", qos=0, id="id-0"), v)
                echo(H.message("t/1", b"", qos=1, headers={}), v)  # empty payload, no headers
                echo(H.message("$SYS", b"\xff" * 17, qos=1, timestamp=2 ** 64 - 1), v)
        with s.check("publish_echo_large_payload"):
            big = bytes((i * 7919) & 0xFF for i in range(1 << 20))  # 1 MiB
            echo(H.message("big/1", big, qos=1), "v3")


# ====================================================================== 6. errors

UNKNOWN_PATHS = [
    "/emqx.exhook.v2.HookProvider/Nope",
    "/emqx.exhook.v3.HookProvider/Nope",
    "/emqx.exhook.v2.HookProvider/onClientAuthenticate",
    "/emqx.exhook.v2.HookProvider/OnClientAuthenticateX",
    "/emqx.exhook.v4.HookProvider/OnClientAuthenticate",
    "/emqx.exhook.HookProvider/OnClientAuthenticate",
    "/emqx.exhook.v2.HookProvider/",
    "/foo.Bar/Baz",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
]
GARBAGE = [b"\xff\xff\xff", b"\x0a\x7f\x01", b"\x0a"]  # truncated varint/length/tag


@scenario
def errors(s, h):
    with Warden(h) as w, H.channel(w.addr) as ch:
        good = H.authn_req("demo", "demo").SerializeToString()

        with s.check("unknown_method_unimplemented"):
            for p in UNKNOWN_PATHS:
                for data in (b"", good):
                    H.expect_code(ch, p, data, SC.UNIMPLEMENTED, p, timeout=H.FAST_TIMEOUT)

        with s.check("garbage_invalid_argument"):
            targets = [H.path(m, v) for v in VERSIONS for m in
                       ("OnClientAuthenticate", "OnClientAuthorize", "OnProviderLoaded",
                        "OnMessagePublish")] + [H.HEALTH_PATH]
            for p in targets:
                for g in GARBAGE:
                    H.expect_code(ch, p, g, SC.INVALID_ARGUMENT, "%s %s" % (p, H.hexb(g)))
            # and the server keeps serving, on this connection and on a new one
            H.expect_raw(H.raw_call(ch, H.path("OnClientAuthenticate"), good), ALLOW_RAW,
                         "good call after garbage")
            with H.channel(w.addr) as ch2:
                H.expect_raw(H.raw_call(ch2, H.path("OnClientAuthenticate", "v3"), good),
                             ALLOW_RAW, "good call on a new connection")

        with s.check("garbage_invalid_argument_notification"):
            for m in ("OnClientConnected", "OnSessionCreated", "OnMessageDelivered",
                      "OnProviderUnloaded"):
                for g in GARBAGE:
                    H.expect_code(ch, H.path(m), g, SC.INVALID_ARGUMENT, "%s %s" % (
                        m, H.hexb(g)))

        bad_strings = [("NUL", b"alice\x00x"), ("NUL only", b"\x00"),
                       ("invalid UTF-8", b"\xc3\x28"), ("0xff", b"al\xffice"),
                       ("overlong", b"\xc0\xaf"), ("surrogate", b"\xed\xa0\x80"),
                       ("truncated", b"abc\xe2\x82")]
        with s.check("bad_string_username_invalid_argument"):
            for v in VERSIONS:
                for label, value in bad_strings:
                    H.expect_code(ch, H.path("OnClientAuthenticate", v),
                                  H.authn_req_bytes_with(3, value, v), SC.INVALID_ARGUMENT,
                                  "%s username %s %r" % (v, label, value))
        with s.check("bad_string_other_fields_invalid_argument"):
            for label, value in bad_strings[:3]:
                H.expect_code(ch, H.path("OnClientAuthenticate"),
                              H.authn_req_bytes_with(2, value), SC.INVALID_ARGUMENT,
                              "clientid %s" % label)
                H.expect_code(ch, H.path("OnClientAuthorize"),
                              H.authz_req_bytes_with_topic(b"t/" + value), SC.INVALID_ARGUMENT,
                              "authorize topic %s" % label)
        with s.check("bad_string_password_invalid_argument"):
            for label, value in bad_strings[:3]:
                H.expect_code(ch, H.path("OnClientAuthenticate"),
                              H.authn_req_bytes_with(4, value), SC.INVALID_ARGUMENT,
                              "password %s %r" % (label, value))
            # NUL cannot be a way to truncate into the right password
            H.expect_code(ch, H.path("OnClientAuthenticate"),
                          H.authn_req_bytes_with(4, b"demo\x00junk"), SC.INVALID_ARGUMENT,
                          "password 'demo\\x00junk'")

        with s.check("valid_utf8_strings_ok"):
            for user in ("Ünïcödé", "用户", "emoji 🙂", "tab\there"):
                H.expect_raw(auth(ch, user, "pässwörd"), DENY_RAW, "username %r" % user)
            H.expect_raw(authz(ch, "t/ü/🙂/#", SUBSCRIBE, result=True), DENY_RAW,
                         "unicode topic (embedded policy: authz default deny)")
            H.expect_raw(authz(ch, "users/demo/ü/🙂/#", SUBSCRIBE, result=False), ALLOW_RAW,
                         "unicode topic under users/demo")
            H.expect_raw(authz(ch, "users/Ünïcödé/🙂", PUBLISH, username="Ünïcödé"),
                         ALLOW_RAW, "unicode username in ${username}")

        with s.check("empty_payload_ok"):
            # b"" is a valid, empty proto3 message for every request type
            raw = H.raw_call(ch, H.path("OnClientAuthorize"), b"")
            H.expect_raw(raw, DENY_RAW, "empty OnClientAuthorize (embedded: authz default deny)")
            H.expect_raw(H.raw_call(ch, H.path("OnClientAuthenticate", "v3"), b""), DENY_RAW,
                         "empty OnClientAuthenticate (no username: authn default deny)")
            expect_hooks(pb.LoadedResponse.FromString(
                H.raw_call(ch, H.path("OnProviderLoaded"), b"")), H.DEFAULT_HOOKS)
            for m in ("OnClientConnected", "OnSessionTerminated", "OnMessageAcked"):
                raw = H.raw_call(ch, H.path(m), b"")
                ensure(raw == b"", "empty %s: reply %r, want EmptySuccess" % (m, raw))

        with s.check("unknown_fields_ignored"):
            # a newer EMQX may add fields: unknown field numbers of every wire type are
            # skipped, not rejected
            extra = (H.f_varint(99, 12345) + H.f_len(100, b"future") +
                     b"\xa5\x06\x01\x02\x03\x04" + b"\xa9\x06" + b"\x00" * 8)
            req = H.authn_req("demo", "demo").SerializeToString() + extra
            H.expect_raw(H.raw_call(ch, H.path("OnClientAuthenticate"), req), ALLOW_RAW,
                         "authenticate with unknown fields")

        with s.check("alive_after_bad_requests"):
            H.expect_raw(H.raw_call(ch, H.path("OnClientAuthenticate"), good), ALLOW_RAW,
                         "good call at the end")
            ensure(w.alive(), "warden is no longer running")


# ====================================================================== 7. health

@scenario
def health(s, h):
    with Warden(h) as w, H.channel(w.addr) as ch:
        with s.check("health_serving"):
            for svc in ("", "emqx.exhook.v2.HookProvider", "emqx.exhook.v3.HookProvider"):
                raw = H.raw_call(ch, H.HEALTH_PATH,
                                 hpb.HealthCheckRequest(service=svc).SerializeToString())
                r = hpb.HealthCheckResponse.FromString(raw)
                ensure(r.status == hpb.HealthCheckResponse.SERVING,
                       "service %r: status %s, want SERVING" % (svc, r.status))
                ensure(raw == b"\x08\x01", "service %r: raw %s" % (svc, H.hexb(raw)))
        with s.check("health_unknown_service_not_found"):
            for svc in ("foo.Bar", "emqx.exhook.v4.HookProvider", "grpc.health.v1.Health",
                        "emqx.exhook.v2.HookProvider/"):
                H.expect_code(ch, H.HEALTH_PATH,
                              hpb.HealthCheckRequest(service=svc).SerializeToString(),
                              SC.NOT_FOUND, "service %r" % svc)


# ====================================================================== 8. TLS, mTLS

def tls_creds(h, root="ca.pem", cert=None):
    key = h.pem(cert.replace(".pem", ".key")) if cert else None
    return H.grpc.ssl_channel_credentials(h.pem(root), key, h.pem(cert) if cert else None)


def tls_ok(w, creds, what):
    for target, override in (("127.0.0.1:%d" % w.port, None),
                             ("127.0.0.1:%d" % w.port, "localhost")):
        with H.channel(target, creds, override) as ch:
            H.expect_raw(auth(ch, "demo", "demo", "v3"), ALLOW_RAW, "%s via %s%s" % (
                what, target, " (SNI localhost)" if override else ""))
            H.expect_raw(auth(ch, "demo", "nope"), DENY_RAW, what + " deny")


def tls_refused(w, creds, what):
    with H.channel(w.addr, creds, "localhost" if creds else None) as ch:
        data = H.authn_req("demo", "demo").SerializeToString()
        H.expect_code(ch, H.path("OnClientAuthenticate"), data, SC.UNAVAILABLE, what)


@scenario
def tls(s, h):
    cfg = None
    with s.check("tls_setup_certs"):
        d = h.pki()
        cfg = config("tls_cert " + os.path.join(d, "server.pem"),
                     "tls_key " + os.path.join(d, "server.key"))  # embedded policy: demo
    if cfg is None:
        return
    with Warden(h, cfg) as w:
        with s.check("tls_listening_mode"):
            ensure(w.mode == "tls", "mode %r in the listening line, want tls" % w.mode)
        with s.check("tls_server_auth_ok"):
            tls_ok(w, tls_creds(h), "TLS")
        with s.check("tls_plaintext_client_refused"):
            tls_refused(w, None, "plaintext client on a TLS port")
        with s.check("tls_untrusted_server_refused"):
            tls_refused(w, tls_creds(h, "other-ca.pem"), "client trusting only other-ca")
        with s.check("tls_alive_after_refusals"):
            tls_ok(w, tls_creds(h), "TLS after refused handshakes")

    mcfg = cfg + config("tls_client_ca " + os.path.join(h.pki(), "ca.pem"))
    with Warden(h, mcfg) as w:
        with s.check("mtls_listening_mode"):
            ensure(w.mode == "mtls", "mode %r in the listening line, want mtls" % w.mode)
        with s.check("mtls_client_cert_ok"):
            tls_ok(w, tls_creds(h, cert="client.pem"), "mTLS with client-1 cert")
        with s.check("mtls_no_client_cert_refused"):
            tls_refused(w, tls_creds(h), "mTLS client without a certificate")
        with s.check("mtls_other_ca_client_refused"):
            tls_refused(w, tls_creds(h, cert="other-client.pem"), "client cert from other-ca")
        with s.check("mtls_plaintext_client_refused"):
            tls_refused(w, None, "plaintext client on an mTLS port")
        with s.check("mtls_alive_after_refusals"):
            tls_ok(w, tls_creds(h, cert="client.pem"), "mTLS after refused handshakes")

    with s.check("tls_flags"):
        # the same through --tls-cert/--tls-key/--tls-client-ca
        d = h.pki()
        args = ["--tls-cert", os.path.join(d, "server.pem"), "--tls-key",
                os.path.join(d, "server.key"), "--tls-client-ca", os.path.join(d, "ca.pem")]
        cfg = with_policy(h, policy('user "demo" "plain:demo"', "authn users"))
        with Warden(h, cfg, args) as w:
            ensure(w.mode == "mtls", "mode %r, want mtls" % w.mode)
            tls_ok(w, tls_creds(h, cert="client.pem"), "mTLS (flags)")
            tls_refused(w, tls_creds(h), "no client cert (flags)")


# ====================================================================== 9. concurrency

def make_load_requests(nusers):
    """(path, request bytes, expected reply bytes) covering allow/deny on both paths."""
    reqs = []
    for i in range(nusers):
        user, pw = "user%d" % i, "pw-%d" % i
        for v in VERSIONS:
            cid = "client-%d-%s" % (i, v)
            reqs += [
                (H.path("OnClientAuthenticate", v),
                 H.authn_req(user, pw, v, clientid=cid).SerializeToString(), ALLOW_RAW),
                (H.path("OnClientAuthenticate", v),
                 H.authn_req(user, pw + "!", v, clientid=cid).SerializeToString(), DENY_RAW),
                (H.path("OnClientAuthorize", v),
                 H.authz_req("t/%d" % i, PUBLISH, v, username=user).SerializeToString(),
                 ALLOW_RAW),
                (H.path("OnClientAuthenticate", v),
                 H.authn_req("ghost%d" % i, pw, v, clientid=cid).SerializeToString(), DENY_RAW),
                (H.path("OnClientAuthorize", v),
                 H.authz_req("t/%d/#" % i, SUBSCRIBE, v, username=user).SerializeToString(),
                 ALLOW_RAW),
            ]
    return reqs


def load_config(h, nusers, extra=()):
    lines = []
    for i in range(nusers):
        lines.append('user "user%d" "sha256:salt%d:%s"' % (i, i, sha("sha256", "salt%d" % i,
                                                                     "pw-%d" % i)))
    lines += ["authn users", "authn default deny", "authz default allow"]
    return with_policy(h, policy(*lines), *extra)


@scenario
def concurrency(s, h):
    nch, per_ch, window, nusers = 8, 2000, 16, 8
    with s.check("concurrency_8_channels"):
        reqs = make_load_requests(nusers)
        with Warden(h, load_config(h, nusers), ["--workers", "2"]) as w:
            chans = [H.channel(w.addr) for _ in range(nch)]
            stats = collections.Counter()
            bad = []
            lock = threading.Lock()

            def worker(ci):
                ch = chans[ci]
                stubs = {}
                inflight = collections.deque()
                local = collections.Counter()
                mine = []

                def settle(fut, exp, desc):
                    try:
                        raw = fut.result()
                    except H.grpc.RpcError as e:
                        local["error %s" % e.code()] += 1
                        if len(mine) < 5:
                            mine.append("%s: %s %r" % (desc, e.code(), e.details()))
                        return
                    if raw == exp:
                        local["ok"] += 1
                    else:
                        local["wrong"] += 1
                        if len(mine) < 5:
                            mine.append("%s: got %s want %s" % (desc, H.hexb(raw), H.hexb(exp)))

                for i in range(per_ch):
                    p, data, exp = reqs[(i * 7 + ci * 13) % len(reqs)]
                    stub = stubs.get(p) or stubs.setdefault(p, ch.unary_unary(p))
                    inflight.append((stub.future(data, timeout=30), exp, "%s#%d" % (p, i)))
                    if len(inflight) >= window:
                        settle(*inflight.popleft())
                while inflight:
                    settle(*inflight.popleft())
                with lock:
                    stats.update(local)
                    bad.extend(mine)

            try:
                threads = [threading.Thread(target=worker, args=(c,)) for c in range(nch)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(120)
                ensure(not any(t.is_alive() for t in threads), "load threads hung")
            finally:
                for c in chans:
                    c.close()
            total = nch * per_ch
            ensure(stats["ok"] == total and not bad,
                   "%d/%d correct replies, counts %s\n%s" % (stats["ok"], total, dict(stats),
                                                             "\n".join(bad[:10])))
            ensure(w.alive(), "warden died under load")
            if s.verbose:
                print("    concurrency: %d calls over %d connections ok" % (total, nch))


# ====================================================================== 10. SIGTERM

@scenario
def sigterm(s, h):
    grace_s, nthreads, window = 2, 6, 8
    reqs = make_load_requests(4)
    w = Warden(h, load_config(h, 4, ["shutdown_grace %ds" % grace_s]), name="sigterm")
    stop = threading.Event()
    stats = collections.Counter()
    bad = []
    lock = threading.Lock()
    rc = None
    try:
        w.start()
        chans = [H.channel(w.addr) for _ in range(nthreads)]

        def worker(ci):
            ch = chans[ci]
            inflight = collections.deque()
            local = collections.Counter()
            mine = []
            i = 0

            def settle(fut, exp):
                try:
                    raw = fut.result()
                except H.grpc.RpcError as e:
                    code = e.code()
                    local[str(code)] += 1
                    if code not in (SC.UNAVAILABLE, SC.CANCELLED) and len(mine) < 5:
                        mine.append("error %s: %r" % (code, e.details()))
                    return
                if raw == exp:
                    local["ok"] += 1
                else:
                    local["wrong"] += 1
                    mine.append("wrong reply %s, want %s" % (H.hexb(raw), H.hexb(exp)))

            while not stop.is_set():
                p, data, exp = reqs[(i * 5 + ci) % len(reqs)]
                i += 1
                inflight.append((ch.unary_unary(p).future(data, timeout=30), exp))
                if len(inflight) >= window:
                    settle(*inflight.popleft())
                    with lock:
                        stats["settled"] += 1
            while inflight:
                settle(*inflight.popleft())
            with lock:
                stats.update(local)
                bad.extend(mine)

        threads = [threading.Thread(target=worker, args=(c,), daemon=True)
                   for c in range(nthreads)]
        for t in threads:
            t.start()
        # let the load run for real before the signal (a count, not a sleep)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                if stats["settled"] >= 600:
                    break
            time.sleep(0.02)
        w.signal(signal.SIGTERM)
        rc = w.wait(grace_s + 8)
        time.sleep(0.3)  # a few more calls against the dead port
        stop.set()
        for t in threads:
            t.join(60)
        hung = any(t.is_alive() for t in threads)
        for c in chans:
            c.close()

        with s.check("sigterm_under_load_exit_0"):
            ensure(rc is not None, "no exit within shutdown_grace (%ds) + 8s of SIGTERM\n%s" % (
                grace_s, H.tail(w.log())))
            ensure(rc == 0, "exit status %s, want 0\n%s" % (rc, H.tail(w.log())))
        with s.check("sigterm_inflight_outcomes"):
            ensure(not hung, "client threads hung after SIGTERM")
            others = {k: n for k, n in stats.items()
                      if k not in ("ok", "settled", str(SC.UNAVAILABLE), str(SC.CANCELLED))}
            ensure(not others and not bad, "unexpected outcomes %s\n%s" % (
                others, "\n".join(bad[:10])))
            ensure(stats["ok"] >= 600, "only %d successful calls before SIGTERM" % stats["ok"])
            if s.verbose:
                print("    sigterm outcomes: %s" % dict(stats))
        with s.check("sigterm_refuses_after_exit"):
            with H.channel(w.addr) as ch:
                H.expect_code(ch, H.path("OnClientAuthenticate"),
                              H.authn_req("user0", "pw-0").SerializeToString(),
                              SC.UNAVAILABLE, "new connection after exit", timeout=5)
    finally:
        stop.set()
        w.stop()

    with s.check("sigint_idle_exit_0"):
        w2 = Warden(h, name="sigint")
        try:
            w2.start()
            w2.signal(signal.SIGINT)
            rc2 = w2.wait(10)
            ensure(rc2 == 0, "exit status after SIGINT: %s, want 0\n%s" % (rc2, H.tail(w2.log())))
        finally:
            w2.stop()


# ====================================================================== 11. command line, config

@scenario
def cli(s, h):
    with s.check("cli_help"):
        rc, out, err = H.run_warden(h, ["--help"])
        ensure(rc == 0, "--help: exit %s, want 0 (stderr: %s)" % (rc, err.strip()[:200]))
        ensure("usage" in out.lower() and "--listen" in out and "--config" in out,
               "--help: no usage text on stdout: %r" % out[:200])
    with s.check("cli_version"):
        rc, out, err = H.run_warden(h, ["--version"])
        ensure(rc == 0, "--version: exit %s, want 0" % rc)
        with open(os.path.join(ROOT, "VERSION")) as f:
            version = f.read().strip()
        ensure(out.startswith("warden " + version), "--version printed %r, VERSION says %r" % (
            out[:100], version))
    with s.check("cli_bad_flag_exit_2"):
        for args in (["--bogus-flag"], ["--listen"], ["--workers"], ["-Z"]):
            rc, out, err = H.run_warden(h, args)
            ensure(rc == 2, "%s: exit %s, want 2 (stderr: %s)" % (args, rc, err.strip()[:200]))

    good_policy = policy_file(h, policy(
        'user "alice" "sha256:abc:%s"' % sha("sha256", "abc", "pw"),
        'user "bob" "plain:bob-pw"', "authn users", "authn default deny",
        "authz default nomatch"))
    good = H.write_file(h, "good.conf", config(
        "# a good configuration", "", "listen 127.0.0.1:0", "workers 2", "shutdown_grace 5s",
        "hooks client.authenticate client.authorize message.publish",
        'message_topics "t/#"', "nomatch_reply ignore", "policy " + good_policy,
        "policy_watch off", "log_level warn"))
    with s.check("cli_check_config_good_exit_0"):
        rc, out, err = H.run_warden(h, ["--config", good, "--check-config"])
        ensure(rc == 0, "exit %s, want 0\nstdout: %s\nstderr: %s" % (rc, out[:300], err[:500]))
        ensure("configuration ok" in out, "no 'configuration ok' on stdout: %r" % out[:300])

    # every line but the comments is an error: the removed directives (user,
    # authn_default, authz_default) are unknown directives now
    bad_lines = ["# two lines before the errors", "", "bogus_directive 1", "workers abc",
                 "user demo plain:demo", "shutdown_grace 5", "authn_default maybe",
                 "nomatch_reply stop", "authz_default allow", "policy_watch maybe"]
    bad = H.write_file(h, "bad.conf", config(*bad_lines))
    bad_at = [i + 1 for i, ln in enumerate(bad_lines) if ln and not ln.startswith("#")]

    def expect_errors(rc, err, path, lines, what):
        ensure(rc == 3, "%s: exit %s, want 3\nstderr: %s" % (what, rc, err.strip()[:800]))
        missing = ["%s:%d:" % (path, n) for n in lines if "%s:%d:" % (path, n) not in err]
        ensure(not missing, "%s: stderr lacks %s\nstderr: %s" % (what, missing,
                                                                 err.strip()[:800]))

    with s.check("config_errors_exit_3_all_reported"):
        rc, out, err = H.run_warden(h, ["--config", bad, "--listen", "127.0.0.1:0"])
        expect_errors(rc, err, bad, bad_at, "start with bad config")
    with s.check("cli_check_config_bad_exit_3"):
        rc, out, err = H.run_warden(h, ["--config", bad, "--check-config"])
        expect_errors(rc, out + err, bad, bad_at, "--check-config")
    with s.check("config_unknown_hook_exit_3"):
        p = H.write_file(h, "hook.conf", config("workers 2",
                                                "hooks client.authenticate client.check_acl"))
        rc, out, err = H.run_warden(h, ["--config", p, "--listen", "127.0.0.1:0"])
        expect_errors(rc, err, p, [2], "unknown hook")
        ensure("client.check_acl" in err, "the bad hook name is not named: %r" % err[:300])
    with s.check("config_removed_directives_exit_3"):
        # well-formed lines of the old model: each one is an "unknown directive" now
        old = ["user demo plain:demo", "authn_default allow", "authz_default allow"]
        p = H.write_file(h, "old.conf", config("hooks client.authenticate", *old))
        for args in (["--listen", "127.0.0.1:0"], ["--check-config"]):
            rc, out, err = H.run_warden(h, ["--config", p] + args)
            expect_errors(rc, out + err, p, [2, 3, 4], "old directives %s" % args)
            for n, ln in enumerate(old, 2):
                want = "%s:%d: unknown directive '%s'" % (p, n, ln.split()[0])
                ensure(want in err, "%s: stderr lacks %r\n%s" % (args, want, H.tail(err)))
    with s.check("policy_bad_secret_exit_3"):
        # secrets are checked when the policy is loaded: errors name the policy file, the
        # user's line and the user; warden does not start
        digest = sha("sha256", "s", "x")
        pol = policy_file(h, policy(
            'user "ok" "plain:fine"', 'user "x" "sha256:salt:NOTHEX-%s"' % digest[:20],
            'user "y" "md5:abcdef0123"', 'user "z" "sha512:salt:%s"' % digest,  # too short
            'user "w" "sha256:%s"' % digest,  # no salt part
            "authn users"))
        cfg = H.write_file(h, "sec.conf", config("policy " + pol))
        rc, out, err = H.run_warden(h, ["--config", cfg, "--listen", "127.0.0.1:0"])
        ensure(rc == 3, "exit %s, want 3\n%s" % (rc, H.tail(err)))
        for n, user in ((2, "x"), (3, "y"), (4, "z"), (5, "w")):
            pat = r"(?m)^%s:%d(:\d+)?: error: user \"%s\": " % (re.escape(pol), n, user)
            ensure(re.search(pat, err), "no error line for user %r (%s:%d) on stderr:\n%s" % (
                user, pol, n, H.tail(err, 30)))
        ensure(not re.search(r"(?m)^%s:1(:\d+)?: error:" % re.escape(pol), err),
               "the good user is reported as an error:\n%s" % H.tail(err, 30))
        ensure("listening on" not in err, "warden started serving:\n%s" % H.tail(err))
    with s.check("config_quoting"):
        # quotes, escapes and trailing comments work; '#' inside quotes is not a comment:
        # in the configuration (a quoted policy path with a blank, a quoted value) and in
        # the policy (escapes and '#' inside strings)
        pol = policy_file(h, policy(
            'user "al ice" "plain:p#w \\"q\\" \\\\"   # comment after a string',
            "authn users", "authn default nomatch",
            'allow publish "t"   # "u" is not allowed', "authz default deny"),
            name="q.policy", subdir="with blank")
        p = H.write_file(h, "q.conf", config(
            'policy "%s"   # comment after a quoted word' % pol,
            "hooks client.authenticate   client.authorize # trailing comment",
            '  nomatch_reply\t"ignore"'))
        with Warden(h, None, ["--config", p]) as w, H.channel(w.addr) as ch:
            H.expect_raw(auth(ch, "al ice", 'p#w "q" \\'), ALLOW_RAW, "quoted user/password")
            H.expect_raw(auth(ch, "al ice", "p"), DENY_RAW, "truncated at '#'")
            H.expect_ignore(auth(ch, "nobody", "x"), "nomatch_reply \"ignore\"")
            H.expect_raw(authz(ch, "t"), ALLOW_RAW, "allow publish \"t\"")
            H.expect_raw(authz(ch, "u"), DENY_RAW, "publish \"u\" (in a comment)")
    with s.check("cli_print_config_redacts"):
        pol = policy_file(h, policy('user "alice" "plain:s3cr3t-Pa55"',
                                    'user "bob" "sha256:NaCl:%s"' % sha(
                                        "sha256", "NaCl", "s3cr3t-Pa55"), "authn users"))
        p = H.write_file(h, "pc.conf", config("policy " + pol, "policy_watch off"))
        rc, out, err = H.run_warden(h, ["--config", p, "--print-config"])
        ensure(rc == 0, "--print-config: exit %s\n%s" % (rc, err[:300]))
        ensure(re.search(r"(?m)^policy \"?%s\"?$" % re.escape(pol), out) and
               re.search(r"(?m)^policy_watch off$", out),
               "--print-config does not show the policy settings: %r" % out[-500:])
        ensure("s3cr3t-Pa55" not in out + err and sha("sha256", "NaCl", "s3cr3t-Pa55")
               not in out + err, "--print-config shows a secret:\n%s" % out)

    with s.check("port_clash_exit_1"):
        with Warden(h, name="first") as first:
            rc, out, err = H.run_warden(h, ["--listen", first.addr])
            ensure(rc == 1, "second warden on %s: exit %s, want 1\n%s" % (
                first.addr, rc, H.tail(err)))
            ensure(first.addr in err, "no log line mentions %s:\n%s" % (first.addr, H.tail(err)))
            # the first one is untouched (no SO_REUSEPORT sharing)
            with H.channel(first.addr) as ch:
                H.expect_raw(auth(ch, "demo", "demo"), ALLOW_RAW, "first warden after clash")

    with s.check("tls_unreadable_file_exit_1"):
        missing = os.path.join(h.tmp, "no-such-dir", "server.pem")
        p = H.write_file(h, "tls.conf", config("tls_cert " + missing, "tls_key " + missing))
        rc, out, err = H.run_warden(h, ["--config", p, "--listen", "127.0.0.1:0"])
        ensure(rc == 1, "exit %s, want 1\n%s" % (rc, H.tail(err)))


# ====================================================================== 12. log hygiene

@scenario
def log_hygiene(s, h):
    secret = "s3cr3t-Pa55"
    cfg = with_policy(h, policy('user "alice" "sha256:NaCl:%s"' % sha("sha256", "NaCl", secret),
                                'user "bob" "plain:%s-bob"' % secret, "authn users",
                                "authz default nomatch"),
                      "nomatch_reply continue", "log_level debug")
    w = Warden(h, cfg, ["--log-level", "debug"], name="loghyg")
    try:
        with s.check("log_hygiene_setup"):
            w.start()
            with H.channel(w.addr) as ch:
                for v in VERSIONS:
                    H.expect_raw(auth(ch, "alice", secret, v), ALLOW_RAW, "alice right")
                    H.expect_raw(auth(ch, "alice", secret + "-wrong", v), DENY_RAW, "alice bad")
                    H.expect_raw(auth(ch, "bob", secret + "-bob", v), ALLOW_RAW, "bob right")
                    H.expect_raw(auth(ch, "nobody", secret, v), DENY_RAW, "unknown user")
                    H.expect_raw(auth(ch, "evil\nINJECTED fake line", secret, v), DENY_RAW,
                                 "newline username")
                    H.expect_raw(auth(ch, "evil\r\nINJECTED crlf", "x", v), DENY_RAW, "crlf")
                    H.expect_raw(auth(ch, "demo", "x", v, clientid="c\nINJECTED cid"),
                                 DENY_RAW, "newline clientid")
                    authz(ch, "t/\nINJECTED topic", SUBSCRIBE, v, username="evil\nINJECTED u")
                    # every string EMQX sends may be logged: peerhost, node names, versions
                    r = H.authn_req("evil", "x", v)
                    r.clientinfo.peerhost = "127.0.0.1\nINJECTED peerhost"
                    r.clientinfo.node = "emqx@host\nINJECTED node"
                    r.clientinfo.protocol = "mqtt\nINJECTED protocol"
                    H.expect_raw(H.raw_call(ch, H.path("OnClientAuthenticate", v),
                                            r.SerializeToString()), DENY_RAW, "newline peerhost")
                    r = H.build_request("OnProviderLoaded", v)
                    r.meta.node = "emqx@host\nINJECTED meta.node"
                    r.meta.cluster_name = "cl\nINJECTED cluster"
                    r.broker.version = "5.8\nINJECTED version"
                    r.broker.sysdescr = "EMQX\nINJECTED sysdescr"
                    H.raw_call(ch, H.path("OnProviderLoaded", v), r.SerializeToString())
                    r = H.build_request("OnProviderUnloaded", v)
                    r.meta.node = "emqx@host\nINJECTED unload node"
                    H.raw_call(ch, H.path("OnProviderUnloaded", v), r.SerializeToString())
                # a password inside an authorize request (EMQX never sends one) and in a
                # request that fails to decode
                authz_with_pw = H.authz_req("t", PUBLISH)
                authz_with_pw.clientinfo.password = secret
                H.raw_call(ch, H.path("OnClientAuthorize"), authz_with_pw.SerializeToString())
                H.call_status(ch, H.path("OnClientAuthenticate"),
                              H.authn_req("alice", secret).SerializeToString()[:-3])
                H.call_status(ch, H.path("Nope"), H.authn_req("alice", secret)
                              .SerializeToString())
        rc = w.stop()
        log = w.log_bytes()
        with s.check("log_no_password"):
            ensure(log, "empty log")
            ensure(secret.encode() not in log,
                   "the password appears in the log:\n%s" % "\n".join(
                       "| " + ln for ln in log.decode("utf-8", "replace").splitlines()
                       if secret in ln)[:1500])
            ensure(rc == 0, "exit status %s after SIGTERM" % rc)
        with s.check("log_no_line_injection"):
            lines = log.split(b"\n")
            forged = [ln for ln in lines if ln.lstrip(b"\r").startswith(b"INJECTED")]
            ensure(not forged, "forged log lines: %r" % forged[:3])
            ensure(b"\r" not in log, "raw CR in the log")
        with s.check("log_lines_well_formed"):
            # one event per line, every line "TIMESTAMP LEVEL module: message" (at debug
            # level, where the transport logs the most)
            pat = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                             rb"(ERROR|WARN|INFO|DEBUG) +[\w.-]+: ")
            odd = [ln for ln in log.split(b"\n")[:-1] if not pat.match(ln)]
            ensure(log.endswith(b"\n"), "the log does not end with a newline")
            ensure(not odd, "%d malformed log lines, e.g.:\n%s" % (
                len(odd), "\n".join("| %r" % ln[:200] for ln in odd[:5])))
    finally:
        w.stop()


# ====================================================================== 13. policy rules

RULES_POLICY = policy(
    'user "root" "plain:root-pw" superuser',                    # 1
    'user "alice" "sha256:NaCl:%s"' % sha("sha256", "NaCl", "alice-pw"),  # 2
    "authn deny when username ~ \"blocked-[0-9]+\"",             # 3
    "authn users",                                               # 4
    "authn anonymous allow",                                     # 5
    "authn default nomatch",                                     # 6
    "",                                                          # 7
    'deny  publish   "secret/#"',                                # 8
    'allow all       "#"                        when superuser',  # 9
    'allow all       "users/${username}/#"',                     # 10
    'allow publish   "devices/${clientid}/telemetry"',           # 11
    'allow subscribe "devices/${username}/#"',                   # 12
    'allow subscribe "a/+"',                                     # 13
    'allow subscribe ["b/+", eq "c/#"]',                         # 14
    'deny  all       "b/#"',                                     # 15
    'allow publish   "p/${username}/${clientid}"',               # 16
    "authz default deny",                                        # 17
)

# (action, topic, username, clientid, allowed?) -- clientid "client-1" unless given
RULE_CASES = [
    # first matching rule decides: the deny for secret/# comes before the superuser's "#"
    (PUBLISH, "secret/x", "root", None, False),
    (PUBLISH, "anything/at/all", "root", None, True),
    (SUBSCRIBE, "#", "root", None, True),
    (SUBSCRIBE, "+/+", "root", None, True),
    # "#" does not cover $-topics, even for a superuser
    (SUBSCRIBE, "$SYS/x", "root", None, False),
    (PUBLISH, "$SYS/x", "root", None, False),
    (SUBSCRIBE, "$SYS/#", "root", None, False),
    (PUBLISH, "anything/at/all", "alice", None, False),  # not a superuser
    (PUBLISH, "anything/at/all", "nobody", None, False),
    # ${username}
    (PUBLISH, "users/alice/inbox", "alice", None, True),
    (SUBSCRIBE, "users/alice/#", "alice", None, True),
    (SUBSCRIBE, "users/alice", "alice", None, True),
    (PUBLISH, "users/bob/inbox", "alice", None, False),
    (SUBSCRIBE, "users/+/inbox", "alice", None, False),
    (SUBSCRIBE, "users/#", "alice", None, False),
    (PUBLISH, "users//inbox", "", None, False),  # anonymous: no ${username}
    # ${clientid}
    (PUBLISH, "devices/c-7/telemetry", "alice", "c-7", True),
    (PUBLISH, "devices/c-8/telemetry", "alice", "c-7", False),
    (SUBSCRIBE, "devices/c-7/telemetry", "nobody", "c-7", False),  # publish-only rule
    (PUBLISH, "devices/+/telemetry", "alice", "+", False),
    (PUBLISH, "devices/a/b/telemetry", "alice", "a/b", False),
    (PUBLISH, "p/alice/c-7", "alice", "c-7", True),
    (PUBLISH, "p/alice/c-8", "alice", "c-7", False),
    (PUBLISH, "p//c-7", "", "c-7", False),
    # a user named "#" (or "+", or with a "/") gets nothing from devices/${username}/#
    (SUBSCRIBE, "devices/dev-1/#", "dev-1", None, True),
    (SUBSCRIBE, "devices/dev-1/x/y", "dev-1", None, True),
    (SUBSCRIBE, "devices/#", "#", None, False),
    (SUBSCRIBE, "devices/x", "#", None, False),
    (SUBSCRIBE, "devices/x/y", "#", None, False),
    (SUBSCRIBE, "devices/+/x", "+", None, False),
    (SUBSCRIBE, "devices/x/#", "+", None, False),
    (SUBSCRIBE, "devices/a/b/c", "a/b", None, False),
    (SUBSCRIBE, "devices/+/x", "dev-1", None, False),  # a wider filter than the rule
    # subscribe a/# is refused by the rule a/+
    (SUBSCRIBE, "a/b", "nobody", None, True),
    (SUBSCRIBE, "a/+", "nobody", None, True),
    (SUBSCRIBE, "a/#", "nobody", None, False),
    (SUBSCRIBE, "a/b/c", "nobody", None, False),
    (SUBSCRIBE, "a", "nobody", None, False),
    (PUBLISH, "a/b", "nobody", None, False),  # subscribe-only rule
    # allow b/+ before deny b/#: first match wins; eq "c/#" is that exact filter only
    (SUBSCRIBE, "b/x", "nobody", None, True),
    (SUBSCRIBE, "b/#", "nobody", None, False),
    (SUBSCRIBE, "b/x/y", "nobody", None, False),
    (PUBLISH, "b/x", "nobody", None, False),
    (PUBLISH, "b/x", "root", None, True),  # the superuser's rule (line 9) comes first
    (SUBSCRIBE, "c/#", "nobody", None, True),
    (SUBSCRIBE, "c/x", "nobody", None, False),
    (SUBSCRIBE, "c/+", "nobody", None, False),
]


@scenario
def policy_rules(s, h):
    with Warden(h, with_policy(h, RULES_POLICY, "nomatch_reply continue")) as w, \
            H.channel(w.addr) as ch:
        with s.check("policy_authz_rules_v2_v3"):
            # root is a superuser because its password let this connection in (the session
            # warden records), not because of its name
            H.expect_raw(auth(ch, "root", "root-pw"), ALLOW_RAW, "root logs in on client-1")
            wrong = []
            for v in VERSIONS:
                for rt, topic, user, cid, ok in RULE_CASES:
                    for result in (True, False):
                        raw = authz(ch, topic, rt, v, result, user, cid or "client-1")
                        want = ALLOW_RAW if ok else DENY_RAW
                        if raw != want:
                            wrong.append("%s %s %r username=%r clientid=%r result=%s: got %s, "
                                         "want %s" % (v, "publish" if rt == PUBLISH else
                                                      "subscribe", topic, user, cid, result,
                                                      H.describe_valued(raw), H.hexb(want)))
            ensure(not wrong, "%d of %d wrong:\n%s" % (len(wrong), 4 * len(RULE_CASES),
                                                        "\n".join(wrong[:20])))
        with s.check("policy_authn_chain"):
            for v in VERSIONS:
                H.expect_raw(auth(ch, "root", "root-pw", v), ALLOW_RAW, "%s root" % v)
                H.expect_raw(auth(ch, "alice", "alice-pw", v), ALLOW_RAW, "%s alice" % v)
                H.expect_raw(auth(ch, "alice", "root-pw", v, True), DENY_RAW, "%s alice bad" % v)
                H.expect_raw(auth(ch, "", "", v), ALLOW_RAW, "%s anonymous allow" % v)
                H.expect_raw(auth(ch, "blocked-12", "x", v, True), DENY_RAW, "%s blocked-12" % v)
                for user in ("nobody", "blocked-12x", "xblocked-1"):  # ~ is anchored
                    for result in (True, False):
                        H.expect_bool(auth(ch, user, "x", v, result), CONTINUE, result,
                                      "%s %r (authn default nomatch)" % (v, user))


# ====================================================================== 14. policy files

POLICY_T1 = policy(  # allows t/1, denies t/2
    "# generation one",
    'user "demo" "sha256:s:%s"' % sha("sha256", "s", "demo"),
    "authn users",
    "authn default deny",
    'allow publish "t/1"',
    "authz default deny")
POLICY_T2 = policy(  # allows t/2, denies t/1, no users (demo is denied)
    "# generation two",
    "authn default deny",
    'allow publish "t/2"',
    'deny  publish "t/1"',
    "authz default deny")
BROKEN_POLICY = policy(
    "# a broken policy",
    "authn default deny",
    'allow publsh "t/1"',
    'allow publish "t/2" when usrname = "x"',
    "authz default deny")
BROKEN_ERRORS = [  # (line, col, message) of BROKEN_POLICY's errors
    (3, 7, "expected publish, subscribe or all, got 'publsh'"),
    (4, 26, "unknown field 'usrname'"),
]


def serves(ch, want, what, version="v2"):
    """Checks the decisions that tell POLICY_T1 from POLICY_T2 apart."""
    t1 = want == "T1"
    H.expect_raw(authz(ch, "t/1", version=version), ALLOW_RAW if t1 else DENY_RAW,
                 "%s: publish t/1" % what)
    H.expect_raw(authz(ch, "t/2", version=version), DENY_RAW if t1 else ALLOW_RAW,
                 "%s: publish t/2" % what)
    H.expect_raw(auth(ch, "demo", "demo", version), ALLOW_RAW if t1 else DENY_RAW,
                 "%s: authenticate demo" % what)


def gen_of(line):
    m = re.search(r"generation (\d+)", line)
    return int(m.group(1)) if m else None


def last_line(w, pattern):
    lines = re.findall("(?m)^.*(?:%s).*$" % pattern, w.log())
    return lines[-1] if lines else ""


@scenario
def policy_files(s, h):
    with s.check("policy_broken_at_start_exit_3"):
        pol = policy_file(h, BROKEN_POLICY)
        cfg = H.write_file(h, "w.conf", config("policy " + pol))
        rc, out, err = H.run_warden(h, ["--config", cfg, "--listen", "127.0.0.1:0"])
        ensure(rc == 3, "exit %s, want 3\n%s" % (rc, H.tail(err)))
        for line, col, msg in BROKEN_ERRORS:
            want = "%s:%d:%d: error: %s" % (pol, line, col, msg)
            ensure(any(ln.startswith(want) for ln in err.splitlines()),
                   "stderr lacks a line starting %r:\n%s" % (want, H.tail(err, 30)))
        ensure("listening on" not in err, "warden started serving:\n%s" % H.tail(err))
        rc, out, err = H.run_warden(h, ["--config", cfg, "--check-config"])
        ensure(rc == 3, "--check-config: exit %s, want 3\n%s" % (rc, H.tail(err)))

    with s.check("policy_missing_at_start_exit_3"):
        missing = os.path.join(h.tmp, "no-such-dir", "none.policy")
        cfg = H.write_file(h, "w.conf", config("policy " + missing))
        rc, out, err = H.run_warden(h, ["--config", cfg, "--listen", "127.0.0.1:0"])
        ensure(rc == 3, "exit %s, want 3\n%s" % (rc, H.tail(err)))
        ensure(missing in err, "stderr does not name %s:\n%s" % (missing, H.tail(err)))

    # policy_watch off in these: every reload is the SIGHUP the check sent
    def sighup_warden(name):
        pol = policy_file(h, POLICY_T1)
        return pol, Warden(h, config("policy " + pol, "policy_watch off"), name=name)

    with s.check("policy_reload_broken_keeps_serving"):
        pol, w = sighup_warden("reload-broken")
        with w, H.channel(w.addr) as ch:
            serves(ch, "T1", "at start")
            H.replace_file(pol, BROKEN_POLICY)
            w.signal(signal.SIGHUP)
            w.wait_count(H.SIGHUP_FAIL, 1, "reload of a broken policy")
            for v in VERSIONS:
                serves(ch, "T1", "after a failed reload (%s)" % v, v)
            log = w.log()
            for line, col, msg in BROKEN_ERRORS:
                want = "%s:%d:%d: error: %s" % (pol, line, col, msg)
                ensure(re.search(r"ERROR +policy: " + re.escape(want), log),
                       "no ERROR log line with %r\n%s" % (want, H.tail(log)))
            ensure(not re.search(H.SIGHUP_OK, log, re.M), "a reload succeeded:\n%s" %
                   H.tail(log))
            # fixed: the next SIGHUP loads it, with a higher generation
            before = gen_of(last_line(w, H.SIGHUP_FAIL))
            H.replace_file(pol, POLICY_T2)
            w.signal(signal.SIGHUP)
            w.wait_count(H.SIGHUP_OK, 1, "reload of the fixed policy")
            after = gen_of(last_line(w, H.SIGHUP_OK))
            ensure(after is not None and before is not None and after > before,
                   "generation %s after the reload, %s before" % (after, before))
            for v in VERSIONS:
                serves(ch, "T2", "after the fixed policy (%s)" % v, v)

    with s.check("policy_reload_bad_secret_and_missing_keep_serving"):
        pol, w = sighup_warden("reload-secret")
        with w, H.channel(w.addr) as ch:
            serves(ch, "T1", "at start")
            H.replace_file(pol, POLICY_T2 + 'user "x" "md5:abcdef"\n')
            w.signal(signal.SIGHUP)
            w.wait_count(H.SIGHUP_FAIL, 1, "reload with a malformed secret")
            ensure(re.search(r'ERROR +policy: %s:6(:\d+)?: error: user "x": ' %
                             re.escape(pol), w.log()),
                   "no error for user \"x\" at line 6 in the log\n%s" % H.tail(w.log()))
            serves(ch, "T1", "after a reload with a malformed secret")
            os.unlink(pol)
            w.signal(signal.SIGHUP)
            w.wait_count(H.SIGHUP_FAIL, 2, "reload of a missing policy")
            serves(ch, "T1", "after a reload of a missing file")
            fails = re.findall("(?m)^.*(?:%s).*$" % H.SIGHUP_FAIL, w.log())
            ensure(len({gen_of(ln) for ln in fails}) == 1,
                   "the failed reloads name different generations:\n%s" % "\n".join(fails))
            H.replace_file(pol, POLICY_T2)
            w.signal(signal.SIGHUP)
            w.wait_count(H.SIGHUP_OK, 1, "reload of the restored policy")
            serves(ch, "T2", "after the policy is back")

    with s.check("policy_watch_off_ignores_file_changes"):
        pol, w = sighup_warden("watch-off")
        with w, H.channel(w.addr) as ch:
            serves(ch, "T1", "at start")
            H.replace_file(pol, POLICY_T2)  # rename
            with open(pol, "a") as f:  # and an in-place write
                f.write("# appended\n")
            time.sleep(1.0)  # 5x the debounce: long enough for a watcher to have reloaded
            ensure(w.count(H.ANY_CHANGE) == 0, "policy_watch off, but a file change "
                   "reloaded:\n%s" % H.tail(w.log()))
            serves(ch, "T1", "policy_watch off, file changed, no SIGHUP")
            w.signal(signal.SIGHUP)
            w.wait_count(H.SIGHUP_OK, 1, "SIGHUP with policy_watch off")
            serves(ch, "T2", "policy_watch off, after SIGHUP")
            # SIGHUP again, same file: reloads again (a new generation), same decisions
            w.signal(signal.SIGHUP)
            w.wait_count(H.SIGHUP_OK, 2, "second SIGHUP")
            serves(ch, "T2", "after the second SIGHUP")
            ensure(w.count(H.ANY_CHANGE) == 0, "a file-change reload with policy_watch off")

    with s.check("policy_watch_on_reloads_on_change"):
        pol = policy_file(h, POLICY_T1)
        # policy_watch is on by default
        with Warden(h, config("policy " + pol)) as w, H.channel(w.addr) as ch:
            serves(ch, "T1", "at start")
            # an unrelated file in the same directory does not reload (5x the debounce)
            with open(os.path.join(os.path.dirname(pol), "unrelated.txt"), "w") as f:
                f.write("x\n")
            time.sleep(1.0)
            ensure(w.count(H.ANY_CHANGE) == 0, "an unrelated file reloaded the policy\n%s" %
                   H.tail(w.log()))
            # atomic replace (rename)
            H.replace_file(pol, POLICY_T2)
            w.wait_count(H.CHANGE_OK, 1, "reload after a rename over the policy")
            serves(ch, "T2", "after the rename")
            # in-place rewrite (truncate + write)
            with open(pol, "w") as f:
                f.write(POLICY_T1)
            w.wait_count(H.CHANGE_OK, 2, "reload after an in-place rewrite")
            serves(ch, "T1", "after the in-place rewrite")
            # a broken file: a failed reload, the old policy keeps serving
            H.replace_file(pol, BROKEN_POLICY)
            w.wait_count(H.CHANGE_FAIL, 1, "failed reload after a broken file")
            serves(ch, "T1", "after a broken file")
            # deleted: keeps serving; a new file is picked up
            os.unlink(pol)
            H.replace_file(pol, POLICY_T2)
            w.wait_count(H.CHANGE_OK, 3, "reload after delete and re-create")
            serves(ch, "T2", "after delete and re-create")
            # SIGHUP works too with the watcher on
            n = w.count(H.SIGHUP_OK)
            w.signal(signal.SIGHUP)
            w.wait_count(H.SIGHUP_OK, n + 1, "SIGHUP with policy_watch on")
            serves(ch, "T2", "after SIGHUP")


# ====================================================================== 15. reload under load

LOAD_USER = 'user "u" "sha256:salt-u:%s"' % sha("sha256", "salt-u", "pw-u")
RELOAD_A = policy(  # x and a allowed; b denied (by default)
    "# rule set A",
    LOAD_USER,
    "authn users",
    "authn default deny",
    'allow publish "x"',
    'allow publish "a"',
    "authz default deny")
RELOAD_B = policy(  # x and b allowed; a denied (by a rule)
    "# rule set B",
    LOAD_USER,
    "authn users",
    "authn default deny",
    'allow publish "x"',
    'deny  publish "a"',
    'allow publish "b"',
    "authz default deny")
RELOAD_BROKEN = [  # each fails to compile; the previous good policy keeps serving
    policy(LOAD_USER, "authn users", 'allow publsh "a"', "authz default deny"),
    policy(LOAD_USER, "authn users", 'allow publish "a', "authz default deny"),
    policy(LOAD_USER, "authn users", 'allow publish "a" when usrname = "u"'),
    policy('user "u" "md5:0123"', "authn users", 'allow publish "x"'),
    policy(LOAD_USER, "authn users", "authz default maybe"),
    policy(LOAD_USER, "authn frobnicate", 'allow publish ["a", "b"'),
]
ALLOWED_BY = {"A": {"x", "a"}, "B": {"x", "b"}}


@scenario
def reload_under_load(s, h):
    nch, window, iterations = 8, 8, 60
    pol = policy_file(h, RELOAD_A)
    w = Warden(h, config("policy " + pol, "workers 4"), name="reload-load")
    stop = threading.Event()
    lock = threading.Lock()
    stats = collections.Counter()
    bad = []
    probe_errors = []
    chans = []
    threads = []
    steps = collections.Counter()
    serving = "A"

    def load_requests():
        reqs = []
        for v in VERSIONS:
            for topic in ("x", "a", "b"):
                for rt in (PUBLISH,):
                    reqs.append((H.path("OnClientAuthorize", v), topic,
                                 H.authz_req(topic, rt, v, result=(topic != "x"),
                                             username="u").SerializeToString()))
            reqs.append((H.path("OnClientAuthenticate", v), "authn",
                         H.authn_req("u", "pw-u", v).SerializeToString()))
        return reqs

    reqs = load_requests()

    def worker(ci):
        ch = chans[ci]
        stubs = {}
        inflight = collections.deque()
        local = collections.Counter()
        mine = []
        i = ci

        def settle(fut, topic, p):
            try:
                raw = fut.result()
            except H.grpc.RpcError as e:
                local["rpc error"] += 1
                if len(mine) < 5:
                    mine.append("%s %s: RPC error %s %r" % (p, topic, e.code(), e.details()))
                return
            local["calls"] += 1
            if raw == ALLOW_RAW:
                local["%s allow" % topic] += 1
            elif raw == DENY_RAW:
                local["%s deny" % topic] += 1
            else:
                local["%s other" % topic] += 1
            if topic in ("x", "authn") and raw != ALLOW_RAW:
                local["wrong"] += 1
                if len(mine) < 5:
                    mine.append("%s %s: got %s, want allow" % (p, topic, H.describe_valued(raw)))
            elif raw not in (ALLOW_RAW, DENY_RAW):
                local["wrong"] += 1
                if len(mine) < 5:
                    mine.append("%s %s: got %s, want allow or deny" % (
                        p, topic, H.describe_valued(raw)))

        while not stop.is_set():
            p, topic, data = reqs[i % len(reqs)]
            i += 1
            stub = stubs.get(p) or stubs.setdefault(p, ch.unary_unary(p))
            inflight.append((stub.future(data, timeout=30), topic, p))
            if len(inflight) >= window:
                settle(*inflight.popleft())
        while inflight:
            settle(*inflight.popleft())
        with lock:
            stats.update(local)
            bad.extend(mine)

    def probe(ch, want, what):
        """The decisions of rule set `want` on one connection, both paths; a mismatch is
        recorded (the load goes on)."""
        for v in VERSIONS:
            for topic in ("x", "a", "b"):
                exp = ALLOW_RAW if topic in ALLOWED_BY[want] else DENY_RAW
                raw = authz(ch, topic, version=v, username="u")
                if raw != exp:
                    probe_errors.append("%s: %s publish %r: got %s, want %s (rule set %s)" % (
                        what, v, topic, H.describe_valued(raw), H.hexb(exp), want))
                    return False
        return True

    def wait_probe(ch, want, what, timeout=H.RELOAD_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            n = len(probe_errors)
            if probe(ch, want, what):
                return
            if time.monotonic() > deadline:
                return  # the last mismatch stays recorded
            del probe_errors[n:]
            time.sleep(0.02)

    def version(name, i):
        text = RELOAD_A if name == "A" else RELOAD_B
        return text + "# iteration %d%s\n" % (i, " " * (i % 5))

    try:
        with s.check("reload_under_load_setup"):
            w.start()
            chans = [H.channel(w.addr) for _ in range(nch)]
            threads = [threading.Thread(target=worker, args=(c,), daemon=True)
                       for c in range(nch)]
            for t in threads:
                t.start()
        if not threads:
            return
        pch = H.channel(w.addr)
        try:
            with s.check("reload_under_load_reloads"):
                probe(pch, "A", "before any reload")
                nbroken = 0
                for i in range(iterations):
                    if i % 10 == 7:
                        # a broken version: the reload fails and rule set `serving` stays
                        H.replace_file(pol, RELOAD_BROKEN[nbroken % len(RELOAD_BROKEN)] +
                                       "# broken %d\n" % i)
                        if nbroken % 2:
                            steps["sighup_fail"] += 1
                            w.signal(signal.SIGHUP)
                            w.wait_count(H.SIGHUP_FAIL, steps["sighup_fail"],
                                         "broken reload %d" % i)
                        else:
                            steps["change_fail"] += 1
                            w.wait_count(H.CHANGE_FAIL, steps["change_fail"],
                                         "broken change %d" % i)
                        nbroken += 1
                        # every reload from now on reads this broken file: deterministic
                        probe(pch, serving, "after broken version %d" % i)
                    serving = "B" if serving == "A" else "A"
                    H.replace_file(pol, version(serving, i))
                    if i % 3 == 0:
                        # the file watcher alone
                        steps["change_ok"] += 1
                        w.wait_count(H.CHANGE_OK, steps["change_ok"],
                                     "file-change reload %d" % i)
                        # the count may include a late watcher reload of an earlier SIGHUP
                        # step: wait for this version's decisions (bounded)
                        wait_probe(pch, serving, "after file-change reload %d" % i)
                    else:
                        # SIGHUP right after the rename: it races the watcher, which reloads
                        # the same file ~200 ms later
                        steps["sighup_ok"] += 1
                        w.signal(signal.SIGHUP)
                        w.wait_count(H.SIGHUP_OK, steps["sighup_ok"], "SIGHUP reload %d" % i)
                        # the SIGHUP reload read this version and reloads are serialized: any
                        # later one reads the same file, so this is exact
                        probe(pch, serving, "after SIGHUP reload %d" % i)
                steps["broken"] = nbroken
                # the last good version is on disk: whatever reload comes later reads it too
                wait_probe(pch, serving, "after the last reload")
        finally:
            stop.set()
            for t in threads:
                t.join(60)
            pch.close()
        hung = [t for t in threads if t.is_alive()]

        with s.check("reload_under_load_no_failed_rpcs"):
            ensure(not hung, "%d load threads hung" % len(hung))
            ensure(stats["rpc error"] == 0, "%d failed RPCs of %d\n%s" % (
                stats["rpc error"], stats["calls"] + stats["rpc error"], "\n".join(bad[:10])))
            ensure(stats["calls"] >= 2000, "only %d calls during %d reloads" % (
                stats["calls"], iterations))
            if s.verbose:
                print("    reload under load: %s, reload steps %s" % (
                    dict(sorted(stats.items())), dict(steps)))
        with s.check("reload_under_load_x_always_allowed"):
            ensure(stats["x deny"] == 0 and stats["x other"] == 0 and
                   stats["authn deny"] == 0 and stats["authn other"] == 0,
                   "x or authn not always allowed: %s\n%s" % (dict(stats), "\n".join(bad[:10])))
            ensure(stats["x allow"] > 0 and stats["authn allow"] > 0, "no x/authn calls")
        with s.check("reload_under_load_a_b_allow_or_deny"):
            ensure(stats["a other"] == 0 and stats["b other"] == 0 and stats["wrong"] == 0,
                   "replies other than allow/deny: %s\n%s" % (dict(stats), "\n".join(bad[:10])))
        with s.check("reload_under_load_decisions_follow_reloads"):
            ensure(not probe_errors, "%d probes wrong:\n%s" % (len(probe_errors),
                                                                "\n".join(probe_errors[:10])))
        with s.check("reload_under_load_final_decisions"):
            # every connection (each may be served by a different worker thread)
            for ci, ch in enumerate(chans):
                for v in VERSIONS:
                    for topic in ("x", "a", "b"):
                        exp = ALLOW_RAW if topic in ALLOWED_BY[serving] else DENY_RAW
                        H.expect_raw(authz(ch, topic, version=v, username="u"), exp,
                                     "connection %d %s publish %r (last good: rule set %s)" % (
                                         ci, v, topic, serving))
        with s.check("reload_under_load_failed_reloads_logged"):
            log = w.log()
            fails = re.findall(H.SIGHUP_FAIL, log, re.M) + re.findall(H.CHANGE_FAIL, log, re.M)
            ensure(len(fails) >= steps["broken"], "%d 'reload failed ...; still serving' lines "
                   "for %d broken versions\n%s" % (len(fails), steps["broken"], H.tail(log)))
            errs = re.findall(r"(?m)^\S+ ERROR +policy: %s:\d+:\d+: error: " % re.escape(pol), log)
            ensure(len(errs) >= steps["broken"], "%d ERROR diagnostics lines for %d broken "
                   "versions" % (len(errs), steps["broken"]))
            oks = re.findall(H.SIGHUP_OK, log, re.M) + re.findall(H.CHANGE_OK, log, re.M)
            ensure(len(oks) >= iterations, "%d successful reloads logged, want >= %d" % (
                len(oks), iterations))
            ensure(w.alive(), "warden died")
    finally:
        stop.set()
        for c in chans:
            c.close()
        rc = w.stop()
    with s.check("reload_under_load_exit_0"):
        ensure(rc == 0, "exit status %s after SIGTERM\n%s" % (rc, H.tail(w.log())))


# ====================================================================== 16. policy subcommands

TOOLS_POLICY = policy(
    "# for warden check / explain / test",                    # 1
    'user "demo" "sha256:s:%s"' % sha("sha256", "s", "demo"),  # 2
    "authn users",                                             # 3
    "authn default deny",                                      # 4
    'allow all       "users/${username}/#"',                   # 5
    'allow subscribe "a/+"',                                   # 6
    'deny  publish   "q/#"',                                   # 7
    "authz default deny",                                      # 8
)
TOOLS_BROKEN = policy(
    "authn users",                              # 1
    'allow publish "a" when usrname = "x"',     # 2
    'allow subscribe "b/+"',                    # 3
)


@scenario
def policy_tools(s, h):
    good = policy_file(h, TOOLS_POLICY, name="tools.policy")
    with s.check("tool_check_good"):
        rc, out, err = H.run_warden(h, ["check", good])
        ensure(rc == 0, "exit %s, want 0\n%s" % (rc, H.tail(err)))
        ensure(out == "%s: ok (3 rules, 1 users)\n" % good, "stdout %r" % out)
        ensure("error" not in err, "diagnostics for a good file:\n%s" % H.tail(err))
    with s.check("tool_check_bad"):
        bad = policy_file(h, TOOLS_BROKEN, name="broken.policy")
        rc, out, err = H.run_warden(h, ["check", bad])
        ensure(rc == 1, "exit %s, want 1\n%s" % (rc, H.tail(err)))
        ensure(" ok " not in out, "stdout says ok: %r" % out)
        lines = err.splitlines()
        want = ("%s:2:24: error: unknown field 'usrname' (expected username, clientid, cn, "
                "protocol, peer, port, superuser or anonymous)" % bad)
        ensure(want in lines, "no line %r on stderr:\n%s" % (want, H.tail(err)))
        i = lines.index(want)
        ensure(lines[i + 1:i + 3] == ['    2 | allow publish "a" when usrname = "x"',
                                      "      | " + " " * 23 + "^"],
               "source and caret lines after the error:\n%s" % "\n".join(lines[i:i + 3]))
    with s.check("tool_check_usage"):
        rc, out, err = H.run_warden(h, ["check"])
        ensure(rc == 2, "no FILE: exit %s, want 2" % rc)
        rc, out, err = H.run_warden(h, ["check", "--nosuch-option", good])
        ensure(rc == 2, "unknown option: exit %s, want 2" % rc)
        missing = os.path.join(h.tmp, "none.policy")
        rc, out, err = H.run_warden(h, ["check", missing])
        ensure(rc == 1, "missing file: exit %s, want 1\n%s" % (rc, H.tail(err)))
        ensure(missing in err, "the missing file is not named:\n%s" % H.tail(err))

    with s.check("tool_explain_allow"):
        rc, out, err = H.run_warden(h, ["explain", good, "--action", "publish", "--topic",
                                        "users/demo/x", "--username", "demo"])
        ensure(rc == 0, "exit %s, want 0\n%s" % (rc, H.tail(err)))
        ensure("decided by %s:5 (" % good in out, "no 'decided by %s:5':\n%s" % (good, out))
        ensure('    5 | allow all       "users/${username}/#"' in out.splitlines(),
               "the deciding line is not shown:\n%s" % out)
        ensure(out.splitlines()[-1] == "decision: allow", "last line:\n%s" % out)
    with s.check("tool_explain_deny_reasons"):
        rc, out, err = H.run_warden(h, ["explain", good, "--action", "subscribe", "--topic",
                                        "a/#", "--username", "demo", "--clientid", "c1"])
        ensure(rc == 0, "exit %s, want 0\n%s" % (rc, H.tail(err)))
        for n in (5, 6, 7):
            ensure(re.search(r"(?m)^  %s:%d: no: " % (re.escape(good), n), out),
                   "no 'no:' reason for line %d:\n%s" % (n, out))
        ensure("decided by %s:8 (" % good in out, "not decided by the default (8):\n%s" % out)
        ensure(out.splitlines()[-1] == "decision: deny", "last line:\n%s" % out)
        rc, out, err = H.run_warden(h, ["explain", good, "--action", "authn", "--username",
                                        "demo", "--password", "demo"])
        ensure(rc == 0 and "decided by %s:3" % good in out and "allow" in out,
               "explain authn: exit %s\n%s%s" % (rc, out, err))
    with s.check("tool_explain_usage_exit_2"):
        for args in (["explain", good, "--action", "publish"],  # no --topic
                     ["explain", good, "--topic", "t"],  # no --action
                     ["explain", good, "--action", "publish", "--topic", "t", "--bogus", "1"],
                     ["explain", good, "--action", "delete", "--topic", "t"],
                     ["explain"]):
            rc, out, err = H.run_warden(h, args)
            ensure(rc == 2, "%s: exit %s, want 2\n%s" % (args[2:], rc, H.tail(err)))

    tdir = os.path.dirname(good)

    def tests_file(name, *lines):
        p = os.path.join(tdir, name)
        with open(p, "w") as f:
            f.write(config(*lines))
        return p

    with s.check("tool_test_pass"):
        t = tests_file("pass.tests",
                       'policy "tools.policy"   # relative to this file',
                       'allow authn     username "demo" password "demo"  rule 3',
                       'deny  authn     username "demo" password "nope"',
                       'deny  authn     username "eve"  password "demo"  rule 4',
                       'allow publish   "users/demo/x" username "demo"   rule 5',
                       'allow subscribe "a/b"',
                       'deny  subscribe "a/#"                            rule 8',
                       'deny  publish   "q/1" username "demo"            rule 7',
                       'deny  subscribe "devices/#" username "#"')
        rc, out, err = H.run_warden(h, ["test", t])
        ensure(rc == 0, "exit %s, want 0\n%s%s" % (rc, out, H.tail(err)))
        ensure(out.splitlines()[-1:] == ["8 passed, 0 failed"], "stdout:\n%s" % out)
    with s.check("tool_test_fail"):
        t = tests_file("fail.tests",
                       'policy "tools.policy"',
                       'allow publish   "users/demo/x" username "demo"',
                       'allow subscribe "a/#" username "demo"',             # 3: deny
                       'deny  publish   "q/1" username "demo"  rule 5')     # 4: line 7
        rc, out, err = H.run_warden(h, ["test", t])
        ensure(rc == 1, "exit %s, want 1\n%s%s" % (rc, out, H.tail(err)))
        ensure(out.splitlines()[-1:] == ["1 passed, 2 failed"], "stdout:\n%s" % out)
        for n in (3, 4):
            ensure(re.search(r"(?m)^FAIL %s:%d: " % (re.escape(t), n), out),
                   "no FAIL line for case %d:\n%s" % (n, out))
    with s.check("tool_test_malformed_exit_2"):
        t = tests_file("mal.tests", 'policy "tools.policy"', 'maybe publish "x"')
        rc, out, err = H.run_warden(h, ["test", t])
        ensure(rc == 2, "exit %s, want 2\n%s%s" % (rc, out, H.tail(err)))
        ensure("%s:2:1: error:" % t in err, "no error at %s:2:1:\n%s" % (t, H.tail(err)))
        t = tests_file("none.tests", 'policy "tools.policy"')
        rc, out, err = H.run_warden(h, ["test", t])
        ensure(rc == 1, "no cases: exit %s, want 1\n%s%s" % (rc, out, H.tail(err)))
        ensure(out.splitlines()[-1:] == ["0 passed, 0 failed"], "no cases, stdout:\n%s" % out)
    with s.check("tool_unknown_subcommand_exit_2"):
        for args in (["frobnicate"], ["chek", good], ["policy"]):
            rc, out, err = H.run_warden(h, args)
            ensure(rc == 2, "%s: exit %s, want 2\n%s" % (args, rc, H.tail(err)))
            ensure(args[0] in err, "%s: the command is not named:\n%s" % (args, H.tail(err)))


# ====================================================================== credential stores

import stores  # noqa: E402  (tests/integration/stores.py: Redis, JWT, cache, sessions)
stores.register(scenario)
import sec_edge  # noqa: E402  (tests/integration/sec_edge.py: issue 8, the process's edge)
sec_edge.register(scenario)
import sec_overlap  # noqa: E402  (tests/integration/sec_overlap.py: deny rules and overlap)
sec_overlap.register(scenario)
import sec_stores  # noqa: E402  (tests/integration/sec_stores.py: issue 8, stores and watcher)
sec_stores.register(scenario)
import sec_compiler  # noqa: E402  (tests/integration/sec_compiler.py: issue 8, policy compiler)
sec_compiler.register(scenario)
import sec_superuser  # noqa: E402  (issue 8: superuser only from the authenticating step)
sec_superuser.register(scenario)
import sec_transport  # noqa: E402  (tests/integration/sec_transport.py: issue 9, transport h2)
sec_transport.register(scenario)
import h2_async  # noqa: E402  (tests/integration/h2_async.py: issue 9, calls that wait)
h2_async.register(scenario)
import h2_tls  # noqa: E402  (tests/integration/h2_tls.py: issue 9, TLS on transport h2)
h2_tls.register(scenario)
import h2_attacks  # noqa: E402  (tests/integration/h2_attacks.py: issue 9, attacks on transport h2)
h2_attacks.register(scenario)
import cli  # noqa: E402  (tests/integration/cli.py: issue 12, subcommands and flags)
cli.register(scenario)
import ops  # noqa: E402  (tests/integration/ops.py: issue 12, running warden as an operator)
ops.register(scenario)
import h2_keepalive  # noqa: E402  (tests/integration/h2_keepalive.py: issue 9, h2 connection timers)
h2_keepalive.register(scenario)
import one_transport  # noqa: E402  (tests/integration/one_transport.py: issue 9, gRPC core removed)
one_transport.register(scenario)
import faults  # noqa: E402  (tests/integration/faults.py: issue 10, fault injection)
faults.register(scenario)
import observe  # noqa: E402  (tests/integration/observe.py: issue 12, metrics, readiness, decision log)
observe.register(scenario)
import sessions_shared  # noqa: E402  (tests/integration/sessions_shared.py: issue 11, shared sessions)
sessions_shared.register(scenario)
import cache_tracking  # noqa: E402  (tests/integration/cache_tracking.py: issue 11, coherent caches)
cache_tracking.register(scenario)
import config_cli  # noqa: E402  (tests/integration/config_cli.py: issue 12, errors in one pass, several files)
config_cli.register(scenario)
import threads  # noqa: E402  (tests/integration/threads.py: issue 10, every thread at once)
threads.register(scenario)
import redis_ha  # noqa: E402  (tests/integration/redis_ha.py: issue 11, Redis Sentinel)
redis_ha.register(scenario)

# ====================================================================== main

def main():
    if ARGS.list:
        for fn in SCENARIOS:
            print(fn.__name__)
        return 0
    s = H.Suite(verbose=ARGS.verbose)
    warden = os.path.abspath(ARGS.warden)
    if not (os.path.isfile(warden) and os.access(warden, os.X_OK)):
        s.record("warden_binary", False, "%s is not an executable file (run make)" % warden)
        print("%d passed, %d failed" % (s.passed, s.failed))
        return 1
    tmp = tempfile.mkdtemp(prefix="warden-it.")
    h = Ctx(warden, tmp)
    if ARGS.verbose:
        print("temp dir: %s" % tmp)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    t0 = time.monotonic()
    san = H.SanitizerWatch(tmp)

    def sanitizer_check(name):
        for who, report in san.new_reports():
            s.record("sanitizer_report_in_" + name, False, "%s:\n%s" % (who, report))
    try:
        for fn in SCENARIOS:
            if ARGS.only and not any(o in fn.__name__ for o in ARGS.only):
                continue
            t1 = time.monotonic()
            try:
                fn(s, h)
            except (CheckFailed, Exception) as e:  # a failure outside any check
                s.record(fn.__name__, False, "%s: %s" % (type(e).__name__, e))
            sanitizer_check(fn.__name__)
            if ARGS.verbose:
                print("  [%s: %.1fs]" % (fn.__name__, time.monotonic() - t1))
    except KeyboardInterrupt:
        print("interrupted")
        s.failed += 1
    finally:
        H.kill_all()
        sanitizer_check("the_run")  # wardens that were still running until kill_all
        if ARGS.keep or (ARGS.verbose and s.failed):
            print("logs kept in %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if ARGS.verbose:
        print("total %.1fs" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (s.passed, s.failed))
    return 1 if s.failed else 0


if __name__ == "__main__":
    sys.exit(main())
