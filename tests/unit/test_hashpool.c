/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for src/engine/hashpool.c: checks run on the hash threads and complete on the
 * submitting loop's thread, never inside the submit; the bounded queue fails fast (made
 * deterministic with the test-only pause, never with sleeps); shutdown answers every
 * accepted check exactly once; two loops each get their own completions.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/wd.h"
#include "engine/hashpool.h"
#include "server/loop_evops.h"

/* a bcrypt (cost 4) secret for "secret", made at setup */
static const char *bcrypt_secret;

struct done {
    int n;
    int rc;
    bool match;
    pthread_t thread;
};

static void on_done(void *ctx, int rc, bool match)
{
    struct done *d = ctx;
    d->n++;
    d->rc = rc;
    d->match = match;
    d->thread = pthread_self();
}

static uint64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#define POLL_UNTIL(l, cond)                                                                        \
    do {                                                                                           \
        uint64_t end_ = mono() + 20000;                                                            \
        while (!(cond)) {                                                                          \
            assert_true(mono() < end_);                                                            \
            wd_loop_run_once(l, 10);                                                               \
        }                                                                                          \
    } while (0)

static int setup(void **state)
{
    char *s = NULL;
    (void)state;
    assert_int_equal(wd_passwd_hash("bcrypt:4", "secret", 6, &s), WD_OK);
    bcrypt_secret = s;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    wd_passwd_secret_free((char *)bcrypt_secret);
    return 0;
}

static void checks_complete_on_the_submitting_loop_not_inside_the_submit(void **state)
{
    struct wd_loop *l = wd_loop_new(NULL, NULL);
    struct wd_evops ev;
    struct wd_hashpool *p = NULL;
    struct done ok = {0}, bad = {0}, spec = {0};
    struct wd_passwd_spec sp = {.algo = WD_PASSWD_SHA256, .salt_pos = WD_PASSWD_SALT_PREFIX};
    /* sha256("s1" || "pw") */
    static const char hex[] = "e373efb171ad06e220365955a33186d884bc73ba34da65770fa4c07d155bdcb8";
    char pw[8] = "secret";

    wd_loop_evops(l, &ev);
    assert_int_equal(wd_hashpool_new(&(struct wd_hashpool_opts){.threads = 2}, &p), WD_OK);
    assert_int_equal(wd_hashpool_verify(p, &ev, bcrypt_secret, pw, 6, on_done, &ok), WD_OK);
    memset(pw, 'x', sizeof pw); /* the pool copied it */
    assert_int_equal(wd_hashpool_verify(p, &ev, bcrypt_secret, "wrong", 5, on_done, &bad), WD_OK);
    sp.salt = "s1";
    sp.salt_len = 2;
    sp.hash = hex;
    sp.hash_len = 64;
    assert_int_equal(wd_hashpool_verify_spec(p, &ev, &sp, "pw", 2, on_done, &spec), WD_OK);
    assert_int_equal(ok.n + bad.n + spec.n, 0); /* completions come through the loop */
    POLL_UNTIL(l, ok.n && bad.n && spec.n);
    assert_int_equal(ok.rc, WD_OK);
    assert_true(ok.match);
    assert_int_equal(bad.rc, WD_OK);
    assert_false(bad.match);
    assert_int_equal(spec.rc, WD_OK);
    assert_true(spec.match);
    assert_true(pthread_equal(ok.thread, pthread_self()));
    assert_true(pthread_equal(spec.thread, pthread_self()));
    wd_hashpool_free(p);
    wd_loop_free(l);
    assert_int_equal(ok.n + bad.n + spec.n, 3);
}

static void a_full_queue_fails_fast_and_is_counted(void **state)
{
    struct wd_loop *l = wd_loop_new(NULL, NULL);
    struct wd_evops ev;
    struct wd_hashpool *p = NULL;
    struct done d[4] = {{0}};
    struct wd_hashpool_stats st;

    wd_loop_evops(l, &ev);
    assert_int_equal(wd_hashpool_new(&(struct wd_hashpool_opts){.threads = 1, .queue_max = 3}, &p),
                     WD_OK);
    wd_hashpool__pause(p, true);
    for (int i = 0; i < 3; i++)
        assert_int_equal(wd_hashpool_verify(p, &ev, bcrypt_secret, "secret", 6, on_done, &d[i]),
                         WD_OK);
    assert_int_equal(wd_hashpool_verify(p, &ev, bcrypt_secret, "secret", 6, on_done, &d[3]),
                     WD_EBUSY);
    wd_hashpool_stats(p, &st);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.queued, 3);
    wd_hashpool__pause(p, false);
    POLL_UNTIL(l, d[0].n && d[1].n && d[2].n);
    for (int i = 0; i < 3; i++)
        assert_true(d[i].match);
    assert_int_equal(d[3].n, 0);
    /* room again */
    assert_int_equal(wd_hashpool_verify(p, &ev, bcrypt_secret, "secret", 6, on_done, &d[3]), WD_OK);
    POLL_UNTIL(l, d[3].n);
    wd_hashpool_free(p);
    wd_loop_free(l);
}

static void shutdown_answers_every_accepted_check_once(void **state)
{
    struct wd_loop *l = wd_loop_new(NULL, NULL);
    struct wd_evops ev;
    struct wd_hashpool *p = NULL;
    struct done d[5] = {{0}}, late = {0};

    wd_loop_evops(l, &ev);
    assert_int_equal(wd_hashpool_new(&(struct wd_hashpool_opts){.threads = 2}, &p), WD_OK);
    wd_hashpool__pause(p, true);
    for (int i = 0; i < 5; i++)
        assert_int_equal(wd_hashpool_verify(p, &ev, bcrypt_secret, "secret", 6, on_done, &d[i]),
                         WD_OK);
    wd_hashpool_free(p);
    POLL_UNTIL(l, d[0].n && d[1].n && d[2].n && d[3].n && d[4].n);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(d[i].n, 1);
        assert_int_equal(d[i].rc, WD_EBUSY);
        assert_false(d[i].match);
    }
    (void)late;
    wd_loop_free(l);
}

struct side {
    struct wd_loop *l;
    struct wd_hashpool *p;
    struct done d[8];
    bool ok;
};

static void *side_loop(void *arg)
{
    struct side *s = arg;
    struct wd_evops ev;
    wd_loop_evops(s->l, &ev);
    for (int i = 0; i < 8; i++)
        if (wd_hashpool_verify(s->p, &ev, bcrypt_secret, "secret", 6, on_done, &s->d[i]) != WD_OK)
            return NULL;
    uint64_t end = mono() + 20000;
    int n = 0;
    while (n < 8 && mono() < end) {
        wd_loop_run_once(s->l, 10);
        n = 0;
        for (int i = 0; i < 8; i++)
            n += s->d[i].n;
    }
    s->ok = n == 8;
    for (int i = 0; i < 8; i++)
        s->ok = s->ok && s->d[i].n == 1 && s->d[i].match &&
                pthread_equal(s->d[i].thread, pthread_self());
    return NULL;
}

static void two_loops_each_get_their_own_completions(void **state)
{
    struct wd_hashpool *p = NULL;
    struct side a = {0}, b = {0};
    pthread_t ta, tb;

    assert_int_equal(wd_hashpool_new(&(struct wd_hashpool_opts){.threads = 2}, &p), WD_OK);
    a.l = wd_loop_new(NULL, NULL);
    b.l = wd_loop_new(NULL, NULL);
    a.p = b.p = p;
    pthread_create(&ta, NULL, side_loop, &a);
    pthread_create(&tb, NULL, side_loop, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_true(a.ok);
    assert_true(b.ok);
    wd_hashpool_free(p);
    wd_loop_free(a.l);
    wd_loop_free(b.l);
}

static void bad_arguments_are_refused(void **state)
{
    struct wd_hashpool *p = NULL;
    struct wd_evops ev = {0};
    assert_int_equal(wd_hashpool_new(NULL, NULL), WD_EINVAL);
    assert_int_equal(wd_hashpool_new(NULL, &p), WD_OK);
    assert_int_equal(wd_hashpool_verify(p, &ev, "plain:x", "x", 1, on_done, NULL), WD_EINVAL);
    wd_hashpool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(checks_complete_on_the_submitting_loop_not_inside_the_submit),
        cmocka_unit_test(a_full_queue_fails_fast_and_is_counted),
        cmocka_unit_test(shutdown_answers_every_accepted_check_once),
        cmocka_unit_test(two_loops_each_get_their_own_completions),
        cmocka_unit_test(bad_arguments_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
