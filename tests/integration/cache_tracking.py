# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, coherent caches (issue 11 item 2, `cache_invalidation tracking`,
docs/cache.md "Coherence with Redis").

Wardens on warden's own HTTP/2 transport (`--set transport=h2`) and one real redis-server,
all on loopback, with `cache_ttl 1h` so that only an invalidation can explain a new answer:

- a user's password and ACL changed in Redis: every replica with a warm cache answers the new
  decision (polled with a deadline; the time from the write to the last replica's new answer
  is printed as `measure:`). With `cache_invalidation off` the old answer is still served;
- the invalidation connection killed (CLIENT KILL TYPE pubsub): the warm entries are dropped
  before the cache serves again (the next authenticate reads Redis), the stream is re-armed
  (a new subscriber), and a password changed right after the kill is never answered by the
  old one once the new one has been seen;
- Redis stopped: the warm answers are dropped with the stream (redis_on_error decides), the
  price of coherence (`cache_invalidation off` keeps serving them until cache_ttl).

"Warm" is checked, not assumed: a second authenticate must not reach Redis (INFO
commandstats, HMGET calls unchanged). Nothing waits by a fixed sleep.
"""
import re
import time

import harness as H
from harness import ALLOW_RAW, DENY_RAW, PUBLISH, Warden, ensure
import stores as S

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`
H2 = ["--set", "transport=h2"]
POLL_TIMEOUT = 10.0
USER = "tk-u"

POLICY = ("authn redis\n"
          "authn default deny\n"
          "rules redis\n"
          "authz default deny\n")


def replica(env, name, *lines):
    p = H.write_file(env.h, "warden.policy", POLICY)
    cfg = "".join(ln + "\n" for ln in ["policy " + p, "log_level debug", "workers 2",
                                       "cache_ttl 1h", "cache_negative_ttl 1h"] + list(lines))
    w = Warden(env.h, cfg, args=H2, name=name)
    env.wardens.append(w)
    return w.start()


def calls(r, cmd):
    info = r.cmd("INFO", "commandstats").decode()
    m = re.search(r"cmdstat_%s:calls=(\d+)" % cmd, info)
    return int(m.group(1)) if m else 0


def subscribers(r):
    """Ids of the clients subscribed to the invalidation channel."""
    out = r.cmd("CLIENT", "LIST", "TYPE", "pubsub").decode()
    return set(re.findall(r"id=(\d+)", out))


def wait_subscribers(r, pred, what):
    deadline = time.monotonic() + POLL_TIMEOUT
    while True:
        ids = subscribers(r)
        if pred(ids):
            return ids
        if time.monotonic() > deadline:
            raise H.CheckFailed("%s: subscribers %s after %gs" % (what, ids, POLL_TIMEOUT))
        time.sleep(0.01)


def set_user(r, pw, topic):
    r.hset("mqtt_user:" + USER, {"password_hash": S.sha_hex("sha256", pw)})
    r.cmd("DEL", "mqtt_acl:" + USER)
    r.hset("mqtt_acl:" + USER, {topic: "publish"})


def warm(w, r, pw, topic, what):
    """Authenticates and authorizes twice; the second round must not reach Redis."""
    e = S.Errs()
    with H.channel(w.addr) as ch:
        e.want(True, lambda: S.authn(ch, USER, pw), "%s: authenticate" % what)
        e.want(True, lambda: S.authz(ch, topic, PUBLISH, USER), "%s: authorize" % what)
        e.done()
        before = (calls(r, "hmget"), calls(r, "hgetall"))
        e.want(True, lambda: S.authn(ch, USER, pw), "%s: authenticate again" % what)
        e.want(True, lambda: S.authz(ch, topic, PUBLISH, USER), "%s: authorize again" % what)
        e.done()
        after = (calls(r, "hmget"), calls(r, "hgetall"))
    ensure(before == after, "%s: the second round reached Redis (HMGET, HGETALL %s -> %s): "
           "the cache is not warm" % (what, before, after))


def poll_new(w, pw_old, topic_old, t0):
    """Polls until the old password and the old topic are denied; returns the seconds since
    t0 when both were."""
    with H.channel(w.addr) as ch:
        S.poll_until(lambda: S.authn(ch, USER, pw_old), DENY_RAW, POLL_TIMEOUT,
                     "%s: old password" % w.dir)
        S.poll_until(lambda: S.authz(ch, topic_old, PUBLISH, USER), DENY_RAW, POLL_TIMEOUT,
                     "%s: old ACL" % w.dir)
    return time.monotonic() - t0


@_scenario
def cache_tracking_replicas(s, h):
    with S.Env(s, h, "cache_tracking_replicas") as env:
        r = env.redis()
        pa, pb_ = env.secret("pwa"), env.secret("pwb")
        set_user(r, pa, "old/t")
        lines = S.redis_lines(r)
        ws = [replica(env, "replica-%d" % i, *lines) for i in (1, 2, 3)]
        off = replica(env, "replica-off", *(lines + ["cache_invalidation off"]))

        with s.check("cache_tracking_write_in_redis_reaches_every_replica"):
            wait_subscribers(r, lambda ids: len(ids) == 3, "three subscribers")
            for w in ws + [off]:
                warm(w, r, pa, "old/t", w.dir)
            t0 = time.monotonic()
            set_user(r, pb_, "new/t")
            lat = [poll_new(w, pa, "old/t", t0) for w in ws]
            e = S.Errs()
            for w in ws:
                with H.channel(w.addr) as ch:
                    e.want(True, lambda: S.authn(ch, USER, pb_), "%s: new password" % w.dir)
                    e.want(True, lambda: S.authz(ch, "new/t", PUBLISH, USER),
                           "%s: new ACL" % w.dir)
            e.done()
            print("  measure: write in Redis -> old password and ACL denied on 3 replicas "
                  "(polled in turn): %.1f ms (per replica, cumulative: %s)" % (
                      max(lat) * 1000, ", ".join("%.1f" % (x * 1000) for x in lat)))

        with s.check("cache_tracking_off_serves_the_old_answer_until_cache_ttl"):
            with H.channel(off.addr) as ch:
                got = S.authn(ch, USER, pa)
                ensure(got == ALLOW_RAW, "cache_invalidation off: old password %s, want the "
                       "cached ALLOW (the behaviour tracking fixes)" % S.decision(got))


@_scenario
def cache_tracking_stream_lost(s, h):
    with S.Env(s, h, "cache_tracking_stream_lost") as env:
        r = env.redis()
        pa, pb_, pc = env.secret("pwa"), env.secret("pwb"), env.secret("pwc")
        set_user(r, pa, "old/t")
        w = replica(env, "replica", *S.redis_lines(r))

        with s.check("cache_tracking_killed_stream_drops_the_cache_and_rearms"):
            first = wait_subscribers(r, lambda ids: len(ids) == 1, "one subscriber")
            warm(w, r, pa, "old/t", "before the kill")
            r.cmd("CLIENT", "KILL", "TYPE", "pubsub")
            wait_subscribers(r, lambda ids: len(ids) == 1 and ids != first, "a new subscriber")
            before = calls(r, "hmget")
            with H.channel(w.addr) as ch:
                got = S.authn(ch, USER, pa)
            ensure(got == ALLOW_RAW, "after the re-arm: %s" % S.decision(got))
            ensure(calls(r, "hmget") == before + 1,
                   "the warm verdict was served from the cache after the stream was lost")
            warm(w, r, pa, "old/t", "after the re-arm")
            t0 = time.monotonic()
            set_user(r, pb_, "new/t")
            lat = poll_new(w, pa, "old/t", t0)
            print("  measure: after a re-arm, write -> old answers denied: %.1f ms"
                  % (lat * 1000))

        with s.check("cache_tracking_write_during_the_outage_is_never_stale"):
            warm(w, r, pb_, "new/t", "before the second kill")
            now = subscribers(r)
            r.cmd("CLIENT", "KILL", "TYPE", "pubsub")
            set_user(r, pc, "newer/t")  # its invalidation may be lost with the stream
            poll_new(w, pb_, "new/t", time.monotonic())
            wait_subscribers(r, lambda ids: len(ids) == 1 and ids != now, "a new subscriber")
            e = S.Errs()
            with H.channel(w.addr) as ch:
                for i in range(20):
                    e.want(False, lambda: S.authn(ch, USER, pb_), "old password, call %d" % i)
                    e.want(False, lambda: S.authz(ch, "new/t", PUBLISH, USER),
                           "old ACL, call %d" % i)
                e.want(True, lambda: S.authn(ch, USER, pc), "new password")
                e.want(True, lambda: S.authz(ch, "newer/t", PUBLISH, USER), "new ACL")
            e.done()

        with s.check("cache_tracking_redis_down_serves_nothing_cached_from_it"):
            # the trade-off of coherence: with the stream gone the warm answers are dropped,
            # so a Redis outage is decided by redis_on_error (deny), not by the cache
            warm(w, r, pc, "newer/t", "before Redis stops")
            r.stop()
            with H.channel(w.addr) as ch:
                S.poll_until(lambda: S.authn(ch, USER, pc), DENY_RAW, POLL_TIMEOUT,
                             "Redis stopped: the cached verdict")
                S.poll_until(lambda: S.authz(ch, "newer/t", PUBLISH, USER), DENY_RAW,
                             POLL_TIMEOUT, "Redis stopped: the cached ACL")
