/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for calls that wait (engine.h wd_engine_*_w, core/evops.h struct wd_waiter):
 * an engine handle on a real event loop (server/loop.c) reaches a real redis-server
 * (tests/unit/redis_fixture.h) through the asynchronous client and runs slow hashes on the
 * hash threads. Each test checks that the call returns WD_EAGAIN instead of blocking, that
 * it is resumed on the loop, that the second run gives the blocking path's decision, and
 * that a call ended while it waits is never resumed and leaks nothing (ASan runs these).
 * Nothing measures time: the loop runs until a condition holds, with a bound on turns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "engine/engine.h"
#include "engine_fixture.h"
#include "server/loop.h"
#include "server/loop_evops.h"
#include "store/passwd.h"

static int setup(void **state)
{
    (void)state;
    return fixture_setup("wd_test_async");
}

static int teardown(void **state)
{
    (void)state;
    return fixture_teardown();
}

/* redis_timeout 20s: the deadline only turns a hang into a failure, and a loaded machine
 * must not make a Redis reply late (then the call is answered with redis_on_error, a DENY);
 * cache_invalidation off: these tests count what is cached right after start, and with
 * tracking (the default) nothing from Redis is until the invalidation stream is up
 * (docs/cache.md) */
/* An engine on this policy with Redis at the fixture, plus `extra` directives (KEY=VALUE;
 * separated by ';'). */
static struct wd_engine *engine_with(const char *policy, const char *extra)
{
    return fixture_engine(policy, "redis_timeout=20s;cache_invalidation=off", extra);
}

/* ---- a worker: a loop and an engine handle on it ---- */

struct worker {
    struct wd_loop *loop;
    struct wd_engine *e;
    struct wd_engine_local *l;
};

static void worker_open(struct worker *w, struct wd_engine *e)
{
    w->e = e;
    w->loop = wd_loop_new(NULL, NULL);
    assert_non_null(w->loop);
    struct wd_evops ev;
    wd_loop_evops(w->loop, &ev);
    w->l = wd_engine_local_new_on(e, &ev);
}

/* Runs the loop until every hash check came back, then frees in the documented order. */
static void worker_close(struct worker *w)
{
    for (int i = 0; i < 2000 && wd_engine_local_waiting(w->l) > 0; i++)
        wd_loop_run_once(w->loop, 10);
    assert_int_equal(wd_engine_local_waiting(w->l), 0);
    wd_engine_local_free(w->l);
    wd_loop_free(w->loop);
    wd_engine_free(w->e);
}

/* One call of a test: its request, its waiter, how often it was resumed. */
struct call {
    struct wd_waiter w;
    int resumed;
    struct wd_authn_req an;
    struct wd_authz_req az;
    struct wd_verdict v;
};

static void on_resume(void *ctx)
{
    struct call *c = ctx;
    c->resumed++;
}

static void call_init(struct call *c, const char *user, const char *pw)
{
    memset(c, 0, sizeof *c);
    c->w.resume = on_resume;
    c->w.ctx = c;
    struct wd_client cl = {.node = "n",
                           .clientid = user,
                           .username = user,
                           .peerhost = "10.0.0.7",
                           .peerport = 5000,
                           .protocol = "mqtt",
                           .mountpoint = "",
                           .cn = "",
                           .dn = ""};
    c->an.client = cl;
    c->an.password = pw;
    c->an.password_len = strlen(pw);
    c->az.client = cl;
    c->az.action = WD_ACTION_PUBLISH;
    c->az.qos = -1;
    c->az.retain = -1;
}

/* Runs the loop until c was resumed (bounded: a lost completion fails, never hangs). */
static void run_until_resumed(struct worker *w, struct call *c, int want)
{
    for (int i = 0; i < 3000 && c->resumed < want; i++)
        wd_loop_run_once(w->loop, 10);
    assert_int_equal(c->resumed, want);
}

static const char REDIS_POLICY[] = "authn redis\n"
                                   "authn default deny\n"
                                   "rules redis\n"
                                   "authz default deny\n";

static void redis_authn_waits_then_answers_as_the_blocking_path(void **state)
{
    (void)state;
    redis_cmd("HSET mqtt_user:ana password_hash %s", "anapw"); /* plain */
    struct worker w;
    worker_open(&w, engine_with(REDIS_POLICY, "redis_password_hash=plain;cache=off"));
    struct call c, bad;
    call_init(&c, "ana", "anapw");
    call_init(&bad, "ana", "nope");
    assert_int_equal(wd_engine_authenticate_w(w.l, &c.an, &c.w, &c.v), WD_EAGAIN);
    assert_int_equal(wd_engine_authenticate_w(w.l, &bad.an, &bad.w, &bad.v), WD_EAGAIN);
    assert_int_equal(c.resumed, 0); /* never from inside the call */
    run_until_resumed(&w, &c, 1);
    run_until_resumed(&w, &bad, 1);
    assert_int_equal(wd_engine_authenticate_w(w.l, &c.an, &c.w, &c.v), WD_OK);
    assert_int_equal(c.v.decision, WD_DECISION_ALLOW);
    assert_int_equal(wd_engine_authenticate_w(w.l, &bad.an, &bad.w, &bad.v), WD_OK);
    assert_int_equal(bad.v.decision, WD_DECISION_DENY);
    wd_engine_waiter_end(&c.w);
    wd_engine_waiter_end(&bad.w);

    /* the blocking handle agrees */
    struct wd_engine_local *bl = wd_engine_local_new(w.e);
    struct wd_verdict v;
    wd_engine_authenticate(bl, &c.an, &v);
    assert_int_equal(v.decision, WD_DECISION_ALLOW);
    wd_engine_local_free(bl);
    worker_close(&w);
}

static void redis_acl_waits_then_decides(void **state)
{
    (void)state;
    redis_cmd("HSET mqtt_acl:ana t/ana publish");
    struct worker w;
    worker_open(&w, engine_with(REDIS_POLICY, NULL));
    struct call c, no;
    call_init(&c, "ana", "");
    c.az.topic = "t/ana";
    c.az.topic_len = 5;
    assert_int_equal(wd_engine_authorize_w(w.l, &c.az, &c.w, &c.v), WD_EAGAIN);
    run_until_resumed(&w, &c, 1);
    assert_int_equal(wd_engine_authorize_w(w.l, &c.az, &c.w, &c.v), WD_OK);
    assert_int_equal(c.v.decision, WD_DECISION_ALLOW);
    wd_engine_waiter_end(&c.w);
    /* the compiled ACL is cached now: a new call answers at once */
    call_init(&no, "ana", "");
    no.az.topic = "t/other";
    no.az.topic_len = 7;
    assert_int_equal(wd_engine_authorize_w(w.l, &no.az, &no.w, &no.v), WD_OK);
    assert_int_equal(no.v.decision, WD_DECISION_DENY);
    assert_null(no.w.pending);
    worker_close(&w);
}

/* A call ended while Redis has its request: never resumed, nothing leaks (ASan), and the
 * answer still fills the cache for the next caller. */
static void a_call_ended_while_waiting_is_never_resumed(void **state)
{
    (void)state;
    redis_cmd("HSET mqtt_user:bo password_hash %s", "bopw");
    struct worker w;
    worker_open(&w, engine_with(REDIS_POLICY, "redis_password_hash=plain"));
    struct call c;
    call_init(&c, "bo", "bopw");
    uint64_t lookups = wd_metrics_get(WD_M_REDIS_LOOKUPS);
    assert_int_equal(wd_engine_authenticate_w(w.l, &c.an, &c.w, &c.v), WD_EAGAIN);
    wd_engine_waiter_end(&c.w);
    assert_null(c.w.pending);
    /* a second caller joins the lookup still in flight (single flight), is woken when its
     * reply fills the cache, and finds the answer there */
    struct call d;
    call_init(&d, "bo", "bopw");
    assert_int_equal(wd_engine_authenticate_w(w.l, &d.an, &d.w, &d.v), WD_EAGAIN);
    run_until_resumed(&w, &d, 1);
    int rc = wd_engine_authenticate_w(w.l, &d.an, &d.w, &d.v);
    assert_int_equal(rc, WD_OK);
    assert_int_equal(d.v.decision, WD_DECISION_ALLOW);
    assert_int_equal(c.resumed, 0);
    assert_int_equal(wd_metrics_get(WD_M_REDIS_LOOKUPS), lookups + 1);
    wd_engine_waiter_end(&d.w);
    worker_close(&w);
}

/* bcrypt runs on the hash threads; identical concurrent checks cost one hash (single
 * flight across waiting calls), and the answer is the blocking path's. */
static void bcrypt_runs_on_the_hash_threads_once_for_identical_calls(void **state)
{
    (void)state;
    char *hash = NULL;
    assert_int_equal(wd_passwd_hash("bcrypt:8", "carl-pw", 7, &hash), WD_OK);
    char policy[512];
    snprintf(policy, sizeof policy,
             "user \"carl\" \"%s\"\nauthn users\nauthn default deny\nauthz default deny\n", hash);
    wd_passwd_secret_free(hash);
    struct worker w;
    worker_open(&w, engine_with(policy, NULL));
    enum { N = 5 };
    struct call c[N], wrong;
    uint64_t checks = wd_metrics_get(WD_M_PASSWD_CHECKS);
    for (int i = 0; i < N; i++) {
        call_init(&c[i], "carl", "carl-pw");
        assert_int_equal(wd_engine_authenticate_w(w.l, &c[i].an, &c[i].w, &c[i].v), WD_EAGAIN);
    }
    call_init(&wrong, "carl", "guess");
    assert_int_equal(wd_engine_authenticate_w(w.l, &wrong.an, &wrong.w, &wrong.v), WD_EAGAIN);
    for (int i = 0; i < N; i++) {
        run_until_resumed(&w, &c[i], 1);
        assert_int_equal(wd_engine_authenticate_w(w.l, &c[i].an, &c[i].w, &c[i].v), WD_OK);
        assert_int_equal(c[i].v.decision, WD_DECISION_ALLOW);
        wd_engine_waiter_end(&c[i].w);
    }
    run_until_resumed(&w, &wrong, 1);
    assert_int_equal(wd_engine_authenticate_w(w.l, &wrong.an, &wrong.w, &wrong.v), WD_OK);
    assert_int_equal(wrong.v.decision, WD_DECISION_DENY);
    wd_engine_waiter_end(&wrong.w);
    assert_int_equal(wd_metrics_get(WD_M_PASSWD_CHECKS), checks + 2); /* right and wrong */
    worker_close(&w);
}

/* With the cache off there is no flight: each call hashes, still off the loop. And a call
 * ended while its hash runs: the worker still waits for the completion before it frees. */
static void bcrypt_without_cache_and_a_call_that_went_away(void **state)
{
    (void)state;
    char *hash = NULL;
    assert_int_equal(wd_passwd_hash("bcrypt:10", "dora-pw", 7, &hash), WD_OK);
    char policy[512];
    snprintf(policy, sizeof policy,
             "user \"dora\" \"%s\"\nauthn users\nauthn default deny\nauthz default deny\n", hash);
    wd_passwd_secret_free(hash);
    struct worker w;
    worker_open(&w, engine_with(policy, "cache=off"));
    struct call gone, c;
    call_init(&gone, "dora", "dora-pw");
    call_init(&c, "dora", "dora-pw");
    assert_int_equal(wd_engine_authenticate_w(w.l, &gone.an, &gone.w, &gone.v), WD_EAGAIN);
    assert_int_equal(wd_engine_local_waiting(w.l), 1);
    wd_engine_waiter_end(&gone.w);
    assert_int_equal(wd_engine_authenticate_w(w.l, &c.an, &c.w, &c.v), WD_EAGAIN);
    run_until_resumed(&w, &c, 1);
    assert_int_equal(wd_engine_authenticate_w(w.l, &c.an, &c.w, &c.v), WD_OK);
    assert_int_equal(c.v.decision, WD_DECISION_ALLOW);
    wd_engine_waiter_end(&c.w);
    assert_int_equal(gone.resumed, 0);
    worker_close(&w); /* runs the loop until the abandoned hash came back */
}

/* Redis down: the call is answered with the failure decision (redis_on_error), at once or
 * after its wait, never blocked and never lost. */
static void redis_down_gives_the_failure_decision(void **state)
{
    (void)state;
    struct worker w;
    char extra[128];
    /* a port nothing listens on: the fixture's port + 1 is not ours */
    snprintf(extra, sizeof extra, "redis_port=%d;redis_password_hash=plain", g_srv->port + 1);
    worker_open(&w, engine_with(REDIS_POLICY, extra));
    struct call c;
    call_init(&c, "ana", "anapw");
    int rc = wd_engine_authenticate_w(w.l, &c.an, &c.w, &c.v);
    if (rc == WD_EAGAIN) {
        run_until_resumed(&w, &c, 1);
        rc = wd_engine_authenticate_w(w.l, &c.an, &c.w, &c.v);
    }
    assert_int_equal(rc, WD_OK);
    assert_int_equal(c.v.decision, WD_DECISION_DENY);
    assert_string_equal(c.v.reason, "redis unavailable: redis_on_error deny");
    wd_engine_waiter_end(&c.w);
    worker_close(&w);
}

/* ---- shared sessions (session_store redis) ---- */

static const char SU_POLICY[] = "user \"ops\" \"plain:ops-pw\" superuser\n"
                                "authn users\n"
                                "authn default deny\n"
                                "allow all \"#\" when superuser\n"
                                "authz default deny\n";

static bool key_exists(const char *key)
{
    redisContext *c = admin(g_srv);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "EXISTS %s", key);
    assert_non_null(r);
    bool yes = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    redisFree(c);
    return yes;
}

/* Runs w's loop until the key exists (or not), bounded. */
static void run_until_key(struct worker *w, const char *key, bool want)
{
    for (int i = 0; i < 3000 && key_exists(key) != want; i++)
        wd_loop_run_once(w->loop, 10);
    assert_true(key_exists(key) == want);
}

/* ops subscribing "#" as clientid cid from peer port */
static void su_call(struct call *c, const char *cid, uint32_t port)
{
    call_init(c, "ops", "ops-pw");
    c->an.client.clientid = cid;
    c->az.client.clientid = cid;
    c->an.client.peerport = port;
    c->az.client.peerport = port;
    c->az.action = WD_ACTION_SUBSCRIBE;
    c->az.topic = "#";
    c->az.topic_len = 1;
}

/* Replica A authenticates; its write reaches Redis without the call waiting for it.
 * Replica B, which never saw the login, waits for one Redis read (never blocks), decides
 * as A would, and keeps the session: the next call does not leave the process. Another
 * connection of the clientid gets nothing, and its miss is remembered. B's disconnect of
 * the same connection deletes the session in Redis. */
static void a_shared_session_miss_waits_for_redis_then_stays_local(void **state)
{
    (void)state;
    redis_cmd("DEL warden:session:as-1 warden:session:as-2");
    struct worker a, b;
    worker_open(&a, engine_with(SU_POLICY, NULL));
    worker_open(&b, engine_with(SU_POLICY, NULL));
    struct call c, d, e, f, g, h;
    su_call(&c, "as-1", 5000);
    assert_int_equal(wd_engine_authenticate_w(a.l, &c.an, &c.w, &c.v), WD_OK);
    assert_int_equal(c.v.decision, WD_DECISION_ALLOW);
    assert_null(c.w.pending);                       /* the write is not waited for */
    run_until_key(&a, "warden:session:as-1", true); /* it is sent from A's loop */

    uint64_t reads = wd_metrics_get(WD_M_SESSIONS_SHARED_READS);
    su_call(&d, "as-1", 5000);
    assert_int_equal(wd_engine_authorize_w(b.l, &d.az, &d.w, &d.v), WD_EAGAIN);
    assert_int_equal(d.resumed, 0);
    run_until_resumed(&b, &d, 1);
    assert_int_equal(wd_engine_authorize_w(b.l, &d.az, &d.w, &d.v), WD_OK);
    assert_int_equal(d.v.decision, WD_DECISION_ALLOW);
    wd_engine_waiter_end(&d.w);
    assert_true(wd_metrics_get(WD_M_SESSIONS_SHARED_READS) == reads + 1);

    su_call(&e, "as-1", 5000); /* warm: answered from B's table */
    assert_int_equal(wd_engine_authorize_w(b.l, &e.az, &e.w, &e.v), WD_OK);
    assert_int_equal(e.v.decision, WD_DECISION_ALLOW);
    assert_null(e.w.pending);
    assert_true(wd_metrics_get(WD_M_SESSIONS_SHARED_READS) == reads + 1);

    su_call(&f, "as-1", 5001); /* another connection under the same clientid */
    assert_int_equal(wd_engine_authorize_w(b.l, &f.az, &f.w, &f.v), WD_EAGAIN);
    run_until_resumed(&b, &f, 1);
    assert_int_equal(wd_engine_authorize_w(b.l, &f.az, &f.w, &f.v), WD_OK);
    assert_int_equal(f.v.decision, WD_DECISION_DENY);
    wd_engine_waiter_end(&f.w);
    su_call(&g, "as-1", 5000); /* ... which did not push the session out of B */
    assert_int_equal(wd_engine_authorize_w(b.l, &g.az, &g.w, &g.v), WD_OK);
    assert_int_equal(g.v.decision, WD_DECISION_ALLOW);
    assert_true(wd_metrics_get(WD_M_SESSIONS_SHARED_READS) == reads + 2);

    wd_engine_client_disconnected(b.l, &c.az.client);
    run_until_key(&b, "warden:session:as-1", false);

    su_call(&h, "as-2", 5000); /* a call that goes away while its read is in flight */
    assert_int_equal(wd_engine_authorize_w(b.l, &h.az, &h.w, &h.v), WD_EAGAIN);
    wd_engine_waiter_end(&h.w);
    for (int i = 0; i < 20; i++)
        wd_loop_run_once(b.loop, 5);
    assert_int_equal(h.resumed, 0);
    worker_close(&a);
    worker_close(&b);
}

/* The shared-session delete runs before a read pipelined behind it on the worker's one
 * connection, whatever Redis' script cache holds. The bug fixed by cf47e30: the delete was
 * an EVALSHA; a Redis that did not know the script (SCRIPT FLUSH, a restart, a failover)
 * answered NOSCRIPT and the EVAL went out only then, after the GET of the connection's next
 * authorize (its local session gone, it asks Redis), which found the record and put the
 * dropped session back into the local table: an ALLOW after client.disconnected. Here the
 * delete and the authorize are both queued before the loop runs once (one pipeline, in
 * that order) after SCRIPT FLUSH: the authorize must find nothing and deny, and so must the
 * next one. */
static void a_session_delete_runs_before_the_read_pipelined_behind_it(void **state)
{
    (void)state;
    redis_cmd("DEL warden:session:ev-1");
    struct worker w;
    worker_open(&w, engine_with(SU_POLICY, NULL));
    struct call c, d, e, f;
    su_call(&c, "ev-1", 5000);
    assert_int_equal(wd_engine_authenticate_w(w.l, &c.an, &c.w, &c.v), WD_OK);
    assert_int_equal(c.v.decision, WD_DECISION_ALLOW);
    run_until_key(&w, "warden:session:ev-1", true);
    su_call(&d, "ev-1", 5000); /* warm: the local session */
    assert_int_equal(wd_engine_authorize_w(w.l, &d.az, &d.w, &d.v), WD_OK);
    assert_int_equal(d.v.decision, WD_DECISION_ALLOW);

    redis_cmd("SCRIPT FLUSH");
    wd_engine_client_disconnected(w.l, &c.az.client); /* the delete, queued */
    su_call(&e, "ev-1", 5000);
    assert_int_equal(wd_engine_authorize_w(w.l, &e.az, &e.w, &e.v), WD_EAGAIN); /* the GET */
    run_until_resumed(&w, &e, 1);
    assert_int_equal(wd_engine_authorize_w(w.l, &e.az, &e.w, &e.v), WD_OK);
    assert_int_equal(e.v.decision, WD_DECISION_DENY);
    wd_engine_waiter_end(&e.w);
    assert_false(key_exists("warden:session:ev-1"));
    su_call(&f, "ev-1", 5000); /* nothing came back into the local table */
    int rc = wd_engine_authorize_w(w.l, &f.az, &f.w, &f.v);
    if (rc == WD_EAGAIN) {
        run_until_resumed(&w, &f, 1);
        rc = wd_engine_authorize_w(w.l, &f.az, &f.w, &f.v);
    }
    assert_int_equal(rc, WD_OK);
    assert_int_equal(f.v.decision, WD_DECISION_DENY);
    wd_engine_waiter_end(&f.w);
    worker_close(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(redis_authn_waits_then_answers_as_the_blocking_path),
        cmocka_unit_test(redis_acl_waits_then_decides),
        cmocka_unit_test(a_call_ended_while_waiting_is_never_resumed),
        cmocka_unit_test(bcrypt_runs_on_the_hash_threads_once_for_identical_calls),
        cmocka_unit_test(bcrypt_without_cache_and_a_call_that_went_away),
        cmocka_unit_test(redis_down_gives_the_failure_decision),
        cmocka_unit_test(a_shared_session_miss_waits_for_redis_then_stays_local),
        cmocka_unit_test(a_session_delete_runs_before_the_read_pipelined_behind_it),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
