# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, issue 12 "Observability": the Prometheus endpoint
(`metrics_listen`), /healthz and /readyz, the decision log (`decision_log`), and the Grafana
dashboard in deploy/.

- /metrics scraped with urllib from a warden doing real calls over grpcio: decision counters
  move by exactly the calls made, the latency histograms count them, buckets are cumulative
  and end at _count; Redis commands, errors and latency move with Redis lookups;
- /readyz is 503 while Redis, which the policy needs, is stopped (and calls are still
  answered), and 200 again once it is back; /healthz stays 200;
- the endpoint under a slowloris and a connection flood: per-address and total connection
  limits hold, idle connections are closed, scrapes from another address and gRPC calls go
  on;
- the decision log: one JSON line per decision with its fields, hostile client ids and
  topics round-trip, planted passwords, secrets, hashes and tokens never appear, SIGUSR1
  reopens the file after a rename, a full queue drops lines (counted) and calls never wait;
- deploy/grafana-dashboard.json parses and every metric it reads is exported.

Scenarios are named observe_*. Nothing waits by a fixed sleep:
conditions are polled with deadlines. Loaded by run.py (`observe.register(scenario)`).
"""
import json
import os
import re
import select
import signal
import socket
import stat
import time
import urllib.error
import urllib.request

import harness as H
import stores as S
from harness import ALLOW_RAW, DENY_RAW, PUBLISH, SUBSCRIBE, ensure

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(REPO, "deploy", "grafana-dashboard.json")
HTTP_TIMEOUT = 10.0  # turns a hang into a failure; never a latency assertion
POLL = 20.0


# ====================================================================== helpers

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http(port, path, method="GET", host="127.0.0.1"):
    """(status, body text) of one request."""
    req = urllib.request.Request("http://%s:%d%s" % (host, port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels)): value}, and {family: type}; fails on a malformed line."""
    samples, types = {}, {}
    for ln in text.splitlines():
        if ln.startswith("# TYPE "):
            _, _, fam, typ = ln.split(" ", 3)
            ensure(fam not in types, "TYPE of %s given twice" % fam)
            types[fam] = typ
            continue
        if ln.startswith("#") or not ln:
            continue
        m = _SAMPLE.match(ln)
        ensure(m, "malformed exposition line %r" % ln)
        labels = frozenset(_LABEL.findall(m.group(3) or ""))
        key = (m.group(1), labels)
        ensure(key not in samples, "sample %r given twice" % ln)
        samples[key] = float(m.group(4))
    return samples, types


def scrape(port):
    st, body = http(port, "/metrics")
    ensure(st == 200, "/metrics: HTTP %d" % st)
    return parse_metrics(body)[0]


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def hist(samples, name, **labels):
    """(buckets [(le, cumulative)], count, sum) of one histogram series."""
    want = set(labels.items())
    b = []
    for (n, ls), v in samples.items():
        if n == name + "_bucket" and want <= set(ls) and len(ls) == len(want) + 1:
            le = dict(ls)["le"]
            b.append((float("inf") if le == "+Inf" else float(le), v))
    b.sort()
    return b, val(samples, name + "_count", **labels), val(samples, name + "_sum", **labels)


def check_hist(samples, name, **labels):
    b, count, _ = hist(samples, name, **labels)
    ensure(len(b) >= 2 and b[-1][0] == float("inf"), "%s%s: no +Inf bucket" % (name, labels))
    for i in range(1, len(b)):
        ensure(b[i][1] >= b[i - 1][1], "%s%s: buckets not cumulative at le=%g: %s" % (
            name, labels, b[i][0], b))
    ensure(b[-1][1] == count, "%s%s: +Inf bucket %d != _count %d" % (
        name, labels, b[-1][1], count))
    return count


def poll(fn, what, timeout=POLL):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last is True or (last and not isinstance(last, str)):
            return last
        if time.monotonic() > deadline:
            raise H.CheckFailed("%s: not within %gs (last: %s)" % (what, timeout, last))
        time.sleep(0.05)


def sha256_user(h, name, pw):
    return 'user "%s" "sha256:%s"\n' % (name, S.warden_passwd(h, "sha256", pw))


def log_lines(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    ensure(not data or data.endswith(b"\n"), "%s: last line not terminated" % path)
    out = []
    for ln in data.splitlines():
        try:
            out.append(json.loads(ln.decode("utf-8")))
        except (ValueError, UnicodeDecodeError) as e:
            raise H.CheckFailed("%s: a line is not JSON (%s): %r" % (path, e, ln[:300]))
    return out


def wait_lines(path, n, what):
    return poll(lambda: (lambda ls: ls if len(ls) >= n else "%d lines" % len(ls))(
        log_lines(path)), "%s: %d decision log lines" % (what, n))


# ====================================================================== /metrics

@_scenario
def observe_metrics_move_with_calls(s, h):
    mport = free_port()
    pw = "obs-pw-" + os.urandom(4).hex()
    pol = H.write_file(h, "obs.policy", sha256_user(h, "alice", pw) +
                       "authn users\nauthn default deny\n"
                       'allow publish "ok/#"\ndeny all "no/#"\nauthz default deny\n')
    cfg = "policy %s\nworkers 2\nmetrics_listen 127.0.0.1:%d\n" % (pol, mport)
    with H.Warden(h, cfg) as w:
        with s.check("observe_metrics_exposition_parses_with_build_info_and_process"):
            st, body = http(mport, "/metrics")
            ensure(st == 200, "HTTP %d" % st)
            samples, types = parse_metrics(body)
            ensure(types.get("warden_decisions_total") == "counter", "types: %s" % types)
            ensure(types.get("warden_call_duration_seconds") == "histogram", "no histogram")
            ensure(any(n == "warden_build_info" for n, _ in samples), "no warden_build_info")
            ensure(val(samples, "process_open_fds") > 0, "process_open_fds missing")
            ensure(val(samples, "process_resident_memory_bytes") > 1 << 20, "RSS missing")
            ensure(val(samples, "warden_policy_generation") == 1, "policy generation")
        before = scrape(mport)
        NA, ND, ZA, ZD = 5, 3, 4, 2
        with H.channel(w.addr) as ch:
            for i in range(NA):
                ensure(S.authn(ch, "alice", pw, clientid="c%d" % i) == ALLOW_RAW, "allow")
            for i in range(ND):
                ensure(S.authn(ch, "alice", "wrong", clientid="d%d" % i) == DENY_RAW, "deny")
            for i in range(ZA):
                ensure(S.authz(ch, "ok/%d" % i, username="alice") == ALLOW_RAW, "authz allow")
            for i in range(ZD):
                ensure(S.authz(ch, "no/%d" % i, username="alice") == DENY_RAW, "authz deny")
            after = scrape(mport)  # while the connection is open
        with s.check("observe_metrics_decision_counters_move_by_the_calls_made"):
            d = lambda hook, dec: (val(after, "warden_decisions_total", hook=hook, decision=dec)
                                   - val(before, "warden_decisions_total", hook=hook,
                                         decision=dec))
            got = (d("client.authenticate", "allow"), d("client.authenticate", "deny"),
                   d("client.authorize", "allow"), d("client.authorize", "deny"))
            ensure(got == (NA, ND, ZA, ZD), "decision deltas %s, want %s" % (
                got, (NA, ND, ZA, ZD)))
            calls = val(after, "warden_rpc_calls_total") - val(before, "warden_rpc_calls_total")
            ensure(calls == NA + ND + ZA + ZD, "rpc_calls delta %d" % calls)
            ensure(val(after, "warden_connections_accepted_total") >= 1, "no connection counted")
            ensure(val(after, "warden_connections") >= 1, "no connection open")
        with s.check("observe_metrics_latency_histograms_count_each_call_cumulatively"):
            ca0 = check_hist(before, "warden_call_duration_seconds", hook="client.authenticate")
            ca1 = check_hist(after, "warden_call_duration_seconds", hook="client.authenticate")
            cz0 = check_hist(before, "warden_call_duration_seconds", hook="client.authorize")
            cz1 = check_hist(after, "warden_call_duration_seconds", hook="client.authorize")
            ensure(ca1 - ca0 == NA + ND, "authenticate histogram +%d, want %d" % (
                ca1 - ca0, NA + ND))
            ensure(cz1 - cz0 == ZA + ZD, "authorize histogram +%d, want %d" % (cz1 - cz0,
                                                                             ZA + ZD))
            _, _, sm = hist(after, "warden_call_duration_seconds", hook="client.authorize")
            ensure(0 < sm < 60, "authorize _sum %g s" % sm)
        with s.check("observe_metrics_only_get_on_three_paths"):
            ensure(http(mport, "/healthz")[0] == 200, "/healthz")
            st, body = http(mport, "/readyz")
            ensure(st == 200 and body.startswith("ready"), "/readyz %d %r" % (st, body))
            ensure(http(mport, "/metrics", method="POST")[0] == 405, "POST not refused")
            ensure(http(mport, "/nope")[0] == 404, "unknown path not 404")
        with s.check("observe_metrics_reload_outcomes_and_generation"):
            w.signal(signal.SIGHUP)
            poll(lambda: val(scrape(mport), "warden_policy_reloads_total", outcome="ok") == 1,
                 "reload counted")
            ensure(val(scrape(mport), "warden_policy_generation") == 2, "generation not 2")
            H.replace_file(pol, "this does not compile\n")
            w.signal(signal.SIGHUP)
            poll(lambda: val(scrape(mport), "warden_policy_reloads_total",
                             outcome="failed") >= 1, "failed reload counted")
            ensure(val(scrape(mport), "warden_policy_generation") == 2, "generation moved")


# ====================================================================== /readyz and Redis

@_scenario
def observe_readyz_follows_the_stores_the_policy_needs(s, h):
    with S.Env(s, h, "observe_readyz") as env:
        r = env.redis(password=env.secret("redispass"))
        upw = env.secret("userpw")
        r.hset("mqtt_user:bob", {"password_hash": S.sha_hex("sha256", "salt" + upw),
                                 "salt": "salt"})
        mport = free_port()
        w = env.warden("authn redis\nauthn default deny\nauthz default allow\n",
                       *S.redis_lines(r, "metrics_listen 127.0.0.1:%d" % mport,
                                      "cache off"))
        with H.channel(w.addr) as ch:
            m0 = scrape(mport)
            with s.check("observe_readyz_ready_with_redis_up_and_redis_metrics_move"):
                st, body = http(mport, "/readyz")
                ensure(st == 200 and "redis: ok" in body, "/readyz %d %r" % (st, body))
                for i in range(3):
                    ensure(S.authn(ch, "bob", upw, clientid="b%d" % i) == ALLOW_RAW, "bob")
                m1 = scrape(mport)
                dc = val(m1, "warden_redis_commands_total") - val(m0, "warden_redis_commands_total")
                ensure(dc == 3, "redis commands +%d, want 3" % dc)
                n0 = check_hist(m0, "warden_redis_duration_seconds")
                n1 = check_hist(m1, "warden_redis_duration_seconds")
                ensure(n1 - n0 == 3, "redis latency histogram +%d, want 3" % (n1 - n0))
            r.stop()
            with s.check("observe_readyz_503_while_redis_is_down_calls_still_answered"):
                body = poll(lambda: (lambda sb: [sb[1]] if sb[0] == 503 else "HTTP %d" % sb[0])(
                    http(mport, "/readyz")), "/readyz turns 503")[0]
                ensure("redis: not answering" in body, "body %r" % body)
                ensure(http(mport, "/healthz")[0] == 200, "/healthz must stay 200")
                e0 = val(scrape(mport), "warden_redis_errors_total")
                ensure(S.authn(ch, "bob", upw, clientid="down") == DENY_RAW,
                       "redis_on_error deny: the call is answered (deny)")
                e1 = val(scrape(mport), "warden_redis_errors_total")
                ensure(e1 > e0, "redis errors did not move (%g -> %g)" % (e0, e1))
            r.restart()
            r.hset("mqtt_user:bob", {"password_hash": S.sha_hex("sha256", "salt" + upw),
                                     "salt": "salt"})
            with s.check("observe_readyz_200_again_once_redis_is_back"):
                poll(lambda: http(mport, "/readyz")[0] == 200, "/readyz back to 200")
                S.poll_until(lambda: S.authn(ch, "bob", upw, clientid="up"), ALLOW_RAW,
                             POLL, "bob allowed again")


# ====================================================================== the endpoint as a target

def _connect_from(src, port, head=b"GET /metrics HTTP/1.1\r\nHost: x\r\n"):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.bind((src, 0))
    c.settimeout(5)
    c.connect(("127.0.0.1", port))
    c.setblocking(False)
    try:
        c.send(head)  # an unfinished header block, never completed
    except OSError:
        pass
    return c


def _closed(c):
    """True once the server closed c (EOF or reset)."""
    r, _, _ = select.select([c], [], [], 0)
    if not r:
        return False
    try:
        return c.recv(4096) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def _fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


@_scenario
def observe_endpoint_bounds_slowloris_and_floods(s, h):
    mport = free_port()
    cfg = "workers 2\nmetrics_listen 127.0.0.1:%d\n" % mport
    held = []
    with H.Warden(h, cfg) as w:
        base = _fds(w.proc.pid)
        try:
            with s.check("observe_endpoint_slowloris_from_one_address_is_capped_per_address"):
                for _ in range(20):
                    held.append(_connect_from("127.0.0.2", mport))
                # the connections over the per-address cap are closed at once
                open_ = poll(lambda: (lambda n: n if n <= 8 else False)(
                    sum(1 for c in held if not _closed(c))), "at most 8 held from 127.0.0.2",
                    timeout=5)
                ensure(open_ >= 1, "every slow connection closed at once")
                st, _ = http(mport, "/metrics")
                ensure(st == 200, "a scrape from another address during the attack: %d" % st)
                with H.channel(w.addr) as ch:
                    H.expect_raw(H.raw_call(ch, H.path("OnClientAuthenticate"),
                                            H.authn_req("demo", "demo").SerializeToString()),
                                 ALLOW_RAW, "gRPC during the attack")
            with s.check("observe_endpoint_idle_connections_are_closed_by_the_timeout"):
                poll(lambda: all(_closed(c) for c in held) or "some still open",
                     "every slow connection closed (timeout 5 s)", timeout=20)
            for c in held:
                c.close()
            held = []
            with s.check("observe_endpoint_flood_from_many_addresses_is_capped_in_total"):
                for a in range(10):
                    for _ in range(8):
                        try:
                            held.append(_connect_from("127.0.1.%d" % (a + 1), mport))
                        except OSError:
                            pass
                open_ = poll(lambda: (lambda n: n if n <= 32 else False)(
                    sum(1 for c in held if not _closed(c))), "at most 32 held in total",
                    timeout=5)
                fds = _fds(w.proc.pid)
                ensure(fds <= base + 32 + 8, "warden holds %d fds (base %d)" % (fds, base))
            for c in held:
                c.close()
            held = []
            with s.check("observe_endpoint_answers_again_after_the_flood"):
                poll(lambda: http(mport, "/healthz")[0] == 200, "/healthz after the flood")
                st, _ = http(mport, "/metrics")
                ensure(st == 200, "/metrics after the flood: %d" % st)
        finally:
            for c in held:
                c.close()


# ====================================================================== decision log

HOSTILE_CID = 'ev"il\\id\n\x01\x1f\x7f\t€'
HOSTILE_TOPIC = 'no/"q"/\\b/\x02/\u2028/é'


@_scenario
def observe_decision_log_lines_fields_and_secrets(s, h):
    mport = free_port()
    pw = "planted-pw-" + os.urandom(6).hex()
    wrong = "planted-wrong-" + os.urandom(6).hex()
    jsecret = "planted-jwt-secret-" + os.urandom(8).hex()
    userline = sha256_user(h, "alice", pw)
    hashv = userline.split('"')[3].split(":", 2)[2]  # the hash digest itself
    pol = H.write_file(h, "dl.policy", userline + "authn users\nauthn default deny\n"
                       'allow publish "ok/#"\nauthz default deny\n')
    d = os.path.join(h.tmp, "dl-%s" % os.urandom(3).hex())
    os.mkdir(d)
    logf = os.path.join(d, "decisions.log")
    cfg = ("policy %s\nworkers 2\nmetrics_listen 127.0.0.1:%d\ndecision_log %s\n"
           "decision_log_events all\njwt_secret %s\n" % (pol, mport, logf, jsecret))
    with H.Warden(h, cfg) as w:
        with H.channel(w.addr) as ch:
            ensure(S.authn(ch, "alice", pw, clientid="c-ok") == ALLOW_RAW, "alice allowed")
            ensure(S.authn(ch, "alice", wrong, clientid=HOSTILE_CID) == DENY_RAW, "denied")
            ensure(S.authz(ch, "ok/1", username="alice", clientid="c-ok") == ALLOW_RAW, "pub")
            ensure(S.authz(ch, HOSTILE_TOPIC, rtype=SUBSCRIBE, username="alice",
                           clientid=HOSTILE_CID) == DENY_RAW, "sub denied")
        lines = wait_lines(logf, 4, "events all")
        with s.check("observe_decision_log_one_json_line_per_decision_with_its_fields"):
            ensure(len(lines) == 4, "%d lines, want 4" % len(lines))
            a_ok, a_no, z_ok, z_no = lines
            for ln in lines:
                for k in ("time", "hook", "clientid", "username", "peer", "decision",
                          "reason", "rule", "generation", "step"):
                    ensure(k in ln, "field %s missing in %s" % (k, ln))
                ensure(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", ln["time"]),
                       "time %r" % ln["time"])
                ensure(ln["peer"] == "127.0.0.1:54321", "peer %r" % ln["peer"])
                ensure(ln["generation"] == 1, "generation %r" % ln["generation"])
            ensure(a_ok["hook"] == "client.authenticate" and a_ok["decision"] == "allow" and
                   a_ok["step"] == "users" and a_ok["rule"] == pol + ":2", "authn allow %s" % a_ok)
            ensure(a_no["decision"] == "deny" and a_no["clientid"] == HOSTILE_CID,
                   "hostile clientid round trip: %r" % a_no.get("clientid"))
            ensure("action" not in a_ok and "topic" not in a_ok, "authn has no action/topic")
            ensure(z_ok["hook"] == "client.authorize" and z_ok["action"] == "publish" and
                   z_ok["topic"] == "ok/1" and z_ok["step"] == "rules" and
                   z_ok["rule"] == pol + ":4", "authz allow %s" % z_ok)
            ensure(z_no["action"] == "subscribe" and z_no["topic"] == HOSTILE_TOPIC and
                   z_no["step"] == "default" and z_no["rule"] == pol + ":5",
                   "authz deny %s" % z_no)
            with open(logf, "rb") as f:
                raw = f.read()
            ensure(all(b >= 0x20 or b == 0x0a for b in raw), "a raw control byte in the log")
        with s.check("observe_decision_log_never_holds_a_password_secret_or_hash"):
            with open(logf, "rb") as f:
                raw = f.read()
            for planted in (pw, wrong, jsecret, hashv):
                ensure(planted.encode() not in raw, "the decision log holds %r" % planted)
                ensure(planted.encode() not in w.log_bytes(), "the log holds %r" % planted)
        with s.check("observe_decision_log_lines_counted"):
            ensure(val(scrape(mport), "warden_decision_log_lines_total") == 4, "lines metric")


@_scenario
def observe_decision_log_token_username_never_written(s, h):
    secret = "planted-hs-" + os.urandom(8).hex()
    d = os.path.join(h.tmp, "dlj-%s" % os.urandom(3).hex())
    os.mkdir(d)
    logf = os.path.join(d, "decisions.log")
    pol = H.write_file(h, "dlj.policy", "authn jwt\nauthn default deny\nauthz default deny\n")
    cfg = ("policy %s\nworkers 2\ndecision_log %s\njwt_secret %s\njwt_from username\n"
           % (pol, logf, secret))
    now = int(time.time())
    good = S.jwt_hs({"sub": "x", "exp": now + 600}, secret)
    bad = S.jwt_hs({"sub": "x", "exp": now + 600}, "another-secret-" + os.urandom(4).hex())
    with H.Warden(h, cfg) as w:
        with H.channel(w.addr) as ch:
            ensure(S.authn(ch, good, "", clientid="t-ok") == ALLOW_RAW, "good token allowed")
            ensure(S.authn(ch, bad, "", clientid="t-bad") == DENY_RAW, "bad token denied")
            # a decision after both, so that the first two are surely written when it is
            ensure(S.authn(ch, bad, "", clientid="t-last") == DENY_RAW, "bad token denied")
        lines = wait_lines(logf, 2, "events deny")
        with s.check("observe_decision_log_default_events_are_denials_only"):
            ensure([ln["clientid"] for ln in lines] == ["t-bad", "t-last"],
                   "lines for %s" % [ln["clientid"] for ln in lines])
            ensure(lines[0]["step"] == "jwt", "step %r" % lines[0]["step"])
        with s.check("observe_decision_log_jwt_from_username_leaves_the_username_out"):
            with open(logf, "rb") as f:
                raw = f.read()
            ensure(all("username" not in ln for ln in lines), "a username field was written")
            for planted in (good, bad, good.split(".")[2], secret):
                ensure(planted.encode() not in raw, "the decision log holds %r" % planted[:30])


@_scenario
def observe_decision_log_reopens_on_sigusr1(s, h):
    d = os.path.join(h.tmp, "dlr-%s" % os.urandom(3).hex())
    os.mkdir(d)
    logf = os.path.join(d, "decisions.log")
    cfg = "workers 2\ndecision_log %s\n" % logf
    with H.Warden(h, cfg) as w:
        with H.channel(w.addr) as ch:
            deny = lambda cid: S.authn(ch, "demo", "nope", clientid=cid)
            ensure(deny("before-1") == DENY_RAW, "deny")
            wait_lines(logf, 1, "before rotation")
            os.rename(logf, logf + ".1")
            ensure(deny("before-2") == DENY_RAW, "deny")  # still into the renamed file
            wait_lines(logf + ".1", 2, "renamed file")
            w.signal(signal.SIGUSR1)
            poll(lambda: os.path.exists(logf), "the log reopened at its path")
            ensure(deny("after-1") == DENY_RAW, "deny")
            new = wait_lines(logf, 1, "after rotation")
        with s.check("observe_decision_log_sigusr1_moves_next_decisions_to_the_new_file"):
            old = log_lines(logf + ".1")
            ensure([ln["clientid"] for ln in old] == ["before-1", "before-2"],
                   "old file %s" % [ln["clientid"] for ln in old])
            ensure([ln["clientid"] for ln in new] == ["after-1"],
                   "new file %s" % [ln["clientid"] for ln in new])
            mode = stat.S_IMODE(os.stat(logf).st_mode)
            ensure(mode & 0o007 == 0, "new log is world-accessible: %o" % mode)


@_scenario
def observe_decision_log_full_queue_drops_and_calls_go_on(s, h):
    """The log is a FIFO nobody reads: the pipe fills, then the 16-line queue; each further
    decision is dropped and counted, and every call is still answered."""
    mport = free_port()
    d = os.path.join(h.tmp, "dlq-%s" % os.urandom(3).hex())
    os.mkdir(d)
    fifo = os.path.join(d, "decisions.fifo")
    os.mkfifo(fifo, 0o600)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so that warden's open does not block
    N = 400
    cfg = ("workers 2\nmetrics_listen 127.0.0.1:%d\ndecision_log %s\n"
           "decision_log_events all\ndecision_log_queue 16\n" % (mport, fifo))
    try:
        with H.Warden(h, cfg) as w:
            topic = "users/demo/" + "x" * 1000  # ~1.3 KB lines: the pipe holds ~50
            with s.check("observe_decision_log_full_queue_calls_are_all_answered"):
                with H.channel(w.addr) as ch:
                    for i in range(N):
                        ensure(S.authz(ch, topic, username="demo", clientid="q%d" % i)
                               == ALLOW_RAW, "call %d" % i)
            with s.check("observe_decision_log_full_queue_drops_are_counted"):
                m = scrape(mport)
                dropped = val(m, "warden_decision_log_dropped_total")
                ensure(dropped >= N - 16 - 200, "dropped %d of %d" % (dropped, N))
            with s.check("observe_decision_log_drained_lines_plus_drops_are_every_decision"):
                got = bytearray()

                def drained():
                    while True:
                        try:
                            chunk = os.read(rfd, 65536)
                        except BlockingIOError:
                            break
                        if not chunk:
                            break
                        got.extend(chunk)
                    m = scrape(mport)
                    lines = val(m, "warden_decision_log_lines_total")
                    drop = val(m, "warden_decision_log_dropped_total")
                    n = got.count(b"\n")
                    return (lines + drop == N and n == lines) or \
                        "lines %d dropped %d read %d" % (lines, drop, n)
                poll(drained, "every decision written or dropped")
                for ln in bytes(got).splitlines():
                    ensure(json.loads(ln)["hook"] == "client.authorize", "line %r" % ln[:80])
    finally:
        os.close(rfd)


# ====================================================================== the Grafana dashboard

@_scenario
def observe_dashboard_reads_only_exported_metrics(s, h):
    with s.check("observe_dashboard_json_parses"):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        exprs = []

        def walk(o):
            if isinstance(o, dict):
                for k, v in o.items():
                    if k == "expr" and isinstance(v, str):
                        exprs.append(v)
                    else:
                        walk(v)
            elif isinstance(o, list):
                for v in o:
                    walk(v)
        walk(dash)
        ensure(len(exprs) >= 8, "only %d queries in the dashboard" % len(exprs))
    names = set()
    for e in exprs:
        names.update(re.findall(r"\b((?:warden|process)_[a-z0-9_]+)", e))
    mport = free_port()
    with H.Warden(h, "workers 2\nmetrics_listen 127.0.0.1:%d\n" % mport) as w:
        with s.check("observe_dashboard_every_metric_is_exported"):
            exported = {n for n, _ in scrape(mport)}
            missing = sorted(n for n in names if n not in exported)
            ensure(not missing, "the dashboard reads metrics warden does not export: %s" %
                   missing)
