# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, security scenarios for the stores and the policy watcher
(issue 8): what an attacker or a careless writer does, and proof that warden refuses it.

Loaded by run.py (`sec_stores.register(scenario)`); every scenario is named sec_stores_*,
so `run.py --only sec_stores` runs them all. Redis, JWT minting, the request helpers and
the scenario environment (one check at the end that no secret reached a log) come from
stores.py, imported, not copied. Nothing waits by a fixed sleep: state changes are polled
with deadlines that only turn a hang into a failure.
"""
import os
import subprocess
import time

import harness as H
import stores as S
from harness import ALLOW_RAW, DENY_RAW, PUBLISH, CheckFailed, Warden, ensure

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`


WRITER_TIMEOUT = 20.0  # the slow writer sleeps 1.5 s; this only turns a hang into a failure


# ====================================================================== policy watcher

WATCH_START = 'allow publish "start/#"\n'
WATCH_FINAL = 'allow all "#" when username = "admin"\n'
# issue 8 item 5, the exact sequence: the file is recreated and held open for 1.5 s with
# only its first half (a policy that allows everything) written
SLOW_WRITER = ("rm {p}; { printf 'allow all \"#\"'; sleep 1.5; "
               "printf ' when username = \"admin\"\\n'; } > {p}")


def _slow_write(pol):
    return subprocess.Popen(["sh", "-c", SLOW_WRITER.replace("{p}", "'%s'" % pol)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


@_scenario
def sec_stores_watch_half_written_policy(s, h):
    with s.check("sec_stores_watch_never_loads_a_file_still_being_written"):
        pol = H.write_file(h, "warden.policy", WATCH_START)
        cfg = "policy %s\nlog_level debug\n" % pol  # policy_watch is on by default
        with Warden(h, cfg, name="watch-half") as w, H.channel(w.addr) as ch:
            H.expect_raw(S.authz(ch, "start/1", username="eve"), ALLOW_RAW, "at start")
            H.expect_raw(S.authz(ch, "t/1", username="eve"), DENY_RAW, "at start: t/1")
            writer = _slow_write(pol)
            deadline = time.monotonic() + WRITER_TIMEOUT
            asked = 0
            # while the writer holds the file open, a non-admin user must never be allowed
            while writer.poll() is None:
                if time.monotonic() > deadline:
                    writer.kill()
                    raise CheckFailed("the writer did not finish within %gs" % WRITER_TIMEOUT)
                raw = S.authz(ch, "t/1", username="eve")
                asked += 1
                ensure(raw == DENY_RAW,
                       "eve publish t/1 while the policy file was still being written: %s "
                       "(a half-written policy was loaded)\n%s" % (S.decision(raw),
                                                                   H.tail(w.log())))
            err = writer.stderr.read().decode(errors="replace")
            writer.stderr.close()
            ensure(writer.returncode == 0, "writer failed (%s): %s" % (writer.returncode, err))
            ensure(asked >= 5, "only %d requests while the writer slept" % asked)
            # closed: now it is loaded, once, and it is the complete file
            w.wait_count(H.CHANGE_OK, 1, "reload after the writer closed the file")
            e = S.Errs()
            e.want(True, lambda: S.authz(ch, "t/1", username="admin"), "admin publish t/1")
            e.want(True, lambda: S.authz(ch, "start/1", username="admin"), "admin start/1")
            e.want(False, lambda: S.authz(ch, "t/1", username="eve"), "eve publish t/1")
            e.want(False, lambda: S.authz(ch, "start/1", username="eve"),
                   "eve start/1 (the old policy is gone)")
            e.done()
            ensure(w.count(H.ANY_CHANGE) == 1, "%d reloads, want exactly 1:\n%s" % (
                w.count(H.ANY_CHANGE), H.tail(w.log())))

    with s.check("sec_stores_watch_still_sees_finished_writes"):
        # the ways a file is legitimately replaced keep working: rename over it (mv), write
        # in place and close, and a Kubernetes ConfigMap `..data` symlink swap
        d = os.path.dirname(H.write_file(h, "unused", ""))
        os.mkdir(os.path.join(d, "..v1"))
        os.mkdir(os.path.join(d, "..v2"))
        with open(os.path.join(d, "..v1", "warden.policy"), "w") as f:
            f.write(WATCH_START)
        with open(os.path.join(d, "..v2", "warden.policy"), "w") as f:
            f.write(WATCH_FINAL)
        os.symlink("..v1", os.path.join(d, "..data"))
        pol = os.path.join(d, "warden.policy")
        os.symlink("..data/warden.policy", pol)
        cfg = "policy %s\nlog_level debug\n" % pol
        with Warden(h, cfg, name="watch-kube") as w, H.channel(w.addr) as ch:
            H.expect_raw(S.authz(ch, "start/1", username="eve"), ALLOW_RAW, "at start")
            # kubelet's atomic writer: a new symlink, renamed over ..data
            os.symlink("..v2", os.path.join(d, "..data_tmp"))
            os.rename(os.path.join(d, "..data_tmp"), os.path.join(d, "..data"))
            w.wait_count(H.CHANGE_OK, 1, "reload after the ..data symlink swap")
            H.expect_raw(S.authz(ch, "t/1", username="admin"), ALLOW_RAW, "after the swap")
            H.expect_raw(S.authz(ch, "start/1", username="eve"), DENY_RAW, "after the swap")
            # mv into place (the symlink is replaced by a regular file)
            tmp = os.path.join(d, "new.tmp")
            with open(tmp, "w") as f:
                f.write(WATCH_START)
            os.rename(tmp, pol)
            w.wait_count(H.CHANGE_OK, 2, "reload after mv into place")
            H.expect_raw(S.authz(ch, "start/1", username="eve"), ALLOW_RAW, "after mv")
            # an editor writing in place, then closing
            with open(pol, "w") as f:
                f.write(WATCH_FINAL)
            w.wait_count(H.CHANGE_OK, 3, "reload after an in-place write")
            H.expect_raw(S.authz(ch, "start/1", username="eve"), DENY_RAW, "after the write")


# ====================================================================== tokens never logged

TOKEN_POLICY = ("authn jwt\n"
                "authn default deny\n"
                "rules redis\n"
                "rules jwt\n"
                "authz default deny\n")


@_scenario
def sec_stores_token_as_username_never_logged(s, h):
    # issue 8 item 6: with `jwt_from username` the username IS the bearer token. A skipped
    # Redis ACL entry (rules redis, key mqtt_acl:${username}) logged it at WARN.
    with S.Env(s, h, "sec_stores_token_as_username_never_logged") as env:
        r = env.redis()
        secret = env.secret("tokensecret")
        claims = {"exp": S.now() + 600, "sub": "dev",
                  # the JWT ACL (object form) with an invalid entry: skipped and reported
                  "acl": {"pub": ["jwt/ok", 7]}}
        token = S.jwt_hs(claims, secret)
        sig = token.rsplit(".", 1)[1]
        env.hide(token, sig)
        r.hset("mqtt_acl:" + token, {"redis/ok": "publish", "redis/bad": "PUBLISH",
                                     "redis/bad2": "{not json"})
        w = env.warden(TOKEN_POLICY, "jwt_secret " + secret, "jwt_from username",
                       *S.redis_lines(r))
        cid = "dev-17"
        with H.channel(w.addr) as ch:
            with s.check("sec_stores_token_as_username_authorizes"):
                e = S.Errs()
                e.want(True, lambda: S.authn(ch, token, "", clientid=cid), "token as username")
                e.want(True, lambda: S.authz(ch, "redis/ok", PUBLISH, token, cid),
                       "the Redis ACL of the token-named key")
                e.want(True, lambda: S.authz(ch, "jwt/ok", PUBLISH, token, cid), "the JWT ACL")
                e.want(False, lambda: S.authz(ch, "redis/bad", PUBLISH, token, cid),
                       "an invalid Redis entry is skipped")
                e.done()
            with s.check("sec_stores_token_as_username_not_in_the_log"):
                w.wait_count(r'WARN +acl: Redis ACL of .*"redis/bad" skipped', 1,
                             "the skipped Redis entry's warning")
                w.wait_count(r"WARN +acl: JWT ACL of ", 1, "the skipped JWT ACL entry's warning")
                # the whole log, every level: no token, nor any piece of one (log lines
                # truncate long values, so the pieces are searched too)
                log = w.log_bytes()
                for what, v in (("token", token), ("signature", sig),
                                ("start of the signature", sig[:16]),
                                ("header.payload", token.rsplit(".", 1)[0]),
                                ("payload", token.split(".")[1])):
                    ensure(v.encode() not in log, "the %s is in the log:\n%s" % (
                        what, H.tail("\n".join(ln for ln in w.log().splitlines()
                                               if v in ln), 5)))
                # the skips are still reported, naming the client by its clientid
                w.wait_count(r'WARN +acl: Redis ACL of clientid "%s": entry "redis/bad" '
                             r'skipped' % cid, 1, "the Redis warning names the clientid")
                w.wait_count(r'WARN +acl: JWT ACL of clientid "%s": ' % cid, 1,
                             "the JWT warning names the clientid")


# ====================================================================== key placeholders

CERT_POLICY = ("authn redis\n"
               "authn default deny\n"
               "rules redis\n"
               "authz default deny\n")


def authn_ci(ch, user, pw, **ci):
    """OnClientAuthenticate with extra ClientInfo fields (dn, cn, peerhost)."""
    req = H.pb.ClientAuthenticateRequest(
        clientinfo=H.clientinfo(clientid=ci.pop("clientid", "client-1"), username=user,
                                password=pw, **ci),
        result=False, meta=H.meta("v2"))
    return H.raw_call(ch, H.path("OnClientAuthenticate", "v2"), req.SerializeToString())


@_scenario
def sec_stores_redis_cert_subject_and_peerhost_keys(s, h):
    # issue 8 item 11: EMQX's Redis authenticator and authorizer accept ${cert_subject}
    # (ClientInfo.dn) and ${peerhost}; warden refused the configuration. Hostile values
    # stay one key; a client without a certificate (empty dn) gets no lookup at all.
    with S.Env(s, h, "sec_stores_redis_cert_subject_and_peerhost_keys") as env:
        r = env.redis()
        pw = env.secret("dnpw")
        other_pw = env.secret("dnother")
        empty_pw = env.secret("dnempty")
        subjects = ["CN=dev-1,O=Acme", "CN=a b,O=x y", "CN=x\r\nKEYS *\r\n", "CN=*",
                    "CN={tag},O=*", "CN=\u00e9t\u00e9"]
        for dn in subjects:
            r.hset("mqtt_user:" + dn, {"password_hash": S.sha_hex("sha256", pw)})
        r.hset("mqtt_user:CN=other", {"password_hash": S.sha_hex("sha256", other_pw)})
        # EMQX would render an absent certificate as "" and read these keys
        r.hset("mqtt_user:", {"password_hash": S.sha_hex("sha256", empty_pw)})
        r.hset("mqtt_acl:", {"#": "all"})
        peers = ["10.0.0.7", "::1", "1.2.3.4 *", "x\r\ny", "{h}"]
        for ph in peers:
            r.hset("mqtt_acl:" + ph, {"peer/ok": "publish"})
        w = env.warden(CERT_POLICY, *S.redis_lines(
            r, "redis_authn_key mqtt_user:${cert_subject}",
            "redis_acl_key mqtt_acl:${peerhost}"))
        with H.channel(w.addr) as ch:
            with s.check("sec_stores_redis_cert_subject_key"):
                e = S.Errs()
                for dn in subjects:
                    e.want(True, lambda: authn_ci(ch, "u", pw, dn=dn), "dn %s" % S.short(dn))
                    e.want(False, lambda: authn_ci(ch, "u", pw + "x", dn=dn),
                           "dn %s, wrong password" % S.short(dn))
                for dn in ("CN=dev-1", "CN=dev-1,O=Acme ", "CN=a", "*", "CN=?", "CN=other"):
                    e.want(False, lambda: authn_ci(ch, "u", pw, dn=dn),
                           "dn %s is no other dn's key" % S.short(dn))
                e.want(True, lambda: authn_ci(ch, "u", other_pw, dn="CN=other"), "CN=other")
                e.done()
            with s.check("sec_stores_redis_no_certificate_no_lookup"):
                e = S.Errs()
                e.want(False, lambda: authn_ci(ch, "u", empty_pw, dn=""),
                       "no certificate, the password of key 'mqtt_user:'")
                e.want(False, lambda: authn_ci(ch, "u", empty_pw), "no dn field at all")
                e.want(False, lambda: authn_ci(ch, "", empty_pw, dn="", clientid=""),
                       "nothing at all")
                e.done()
            with s.check("sec_stores_redis_peerhost_key"):
                e = S.Errs()
                for ph in peers:
                    e.want(True, lambda: S.authz(ch, "peer/ok", PUBLISH, "u", "c", peerhost=ph),
                           "peerhost %s" % S.short(ph))
                    e.want(False, lambda: S.authz(ch, "peer/no", PUBLISH, "u", "c",
                                                  peerhost=ph),
                           "peerhost %s, another topic" % S.short(ph))
                e.want(False, lambda: S.authz(ch, "peer/ok", PUBLISH, "u", "c",
                                              peerhost="10.0.0.8"), "another peer")
                e.want(False, lambda: S.authz(ch, "any/topic", PUBLISH, "u", "c", peerhost=""),
                       "no peer address: the 'mqtt_acl:' key is not read")
                e.done()
                ensure(w.alive(), "warden died\n%s" % H.tail(w.log()))
                ensure(r.cmd("DBSIZE") == len(subjects) + len(peers) + 3,
                       "Redis key count changed: a request wrote to Redis?")


# ====================================================================== unknown conditions

UNKNOWN_POLICY = ('authn jwt       when not cn = "${username}"\n'
                  'authn allow     when clientid ~ "^sensor-[0-9]+$"\n'
                  'authn default deny\n'
                  'rules jwt       when not clientid = "${claim.device}"\n'
                  'allow all       "#"\n'
                  'authz default deny\n')


@_scenario
def sec_stores_unknown_condition_never_skips_a_check(s, h):
    # A condition that compares a value the client does not have (here: no certificate) is
    # unknown. A step or source that can both admit and refuse must still refuse: before,
    # it was skipped, so a client that simply sent no certificate got past the token check
    # (a forged token admitted by the `authn allow` after it) and out of the token's deny
    # rules (the `allow all` after them), both of which a client with another's
    # certificate was refused.
    with S.Env(s, h, "sec_stores_unknown_condition_never_skips_a_check") as env:
        secret = env.secret("unknownsecret")
        w = env.warden(UNKNOWN_POLICY, "jwt_secret " + secret)
        forged = S.jwt_hs({"exp": S.now() + 600, "sub": "dev"}, "not-" + secret)
        env.hide(forged.rsplit(".", 1)[1])
        deny_secret = S.jwt_hs({"exp": S.now() + 600, "sub": "dev",
                                "acl": [{"permission": "deny", "action": "all",
                                         "topic": "secret/#"}]}, secret)
        env.hide(deny_secret.rsplit(".", 1)[1])
        deny_other = S.jwt_hs({"exp": S.now() + 600, "sub": "dev", "device": "d-9",
                               "acl": [{"permission": "deny", "action": "all",
                                        "topic": "secret/#"}]}, secret)
        env.hide(deny_other.rsplit(".", 1)[1])
        with H.channel(w.addr) as ch:
            with s.check("sec_stores_unknown_condition_forged_token_refused"):
                e = S.Errs()
                e.want(False, lambda: authn_ci(ch, "dev", forged, clientid="sensor-1",
                                               cn="other"), "forged token, another's cn")
                e.want(False, lambda: authn_ci(ch, "dev", forged, clientid="sensor-1"),
                       "forged token, no certificate")
                e.want(True, lambda: authn_ci(ch, "dev", forged, clientid="sensor-1",
                                              cn="dev"), "its own cn: the step is skipped")
                e.done()
            with s.check("sec_stores_unknown_condition_token_deny_applies"):
                # `rules jwt when not clientid = "${claim.device}"`: the token's ACL binds
                # clients that are not its device. A token without the claim is unknown
                # there: its deny rules apply all the same (before: the source was skipped
                # and `allow all "#"` after it allowed what the token denies)
                e = S.Errs()
                for cid, port, tok in (("c-1", 41001, deny_other), ("c-2", 41002, deny_secret)):
                    e.want(True, lambda: authn_ci(ch, "dev", tok, clientid=cid, cn="other",
                                                  peerport=port), "valid token " + cid)
                e.want(False, lambda: S.authz(ch, "secret/x", PUBLISH, "dev", "c-1",
                                              cn="other", peerport=41001),
                       "the token (device d-9) denies secret/#")
                e.want(False, lambda: S.authz(ch, "secret/x", PUBLISH, "dev", "c-2",
                                              cn="other", peerport=41002),
                       "the token (no device claim) denies secret/#")
                e.want(True, lambda: S.authz(ch, "open/x", PUBLISH, "dev", "c-2",
                                             cn="other", peerport=41002),
                       "what the token does not deny (allow all after the source)")
                e.done()
            ensure(w.alive(), "warden died\n%s" % H.tail(w.log()))
