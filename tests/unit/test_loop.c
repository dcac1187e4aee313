/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/server/loop.c: timers on a test clock, fd readiness, cross-thread posts
 * and stop, and events of an io removed earlier in the same batch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/loop.h"

static uint64_t fake_now;
static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static int fired[16];
static int nfired;
static void record_timer(struct wd_loop_timer *t)
{
    fired[nfired++] = (int)(intptr_t)t->data;
}

static void timers_fire_in_expiry_order_on_the_given_clock(void **state)
{
    fake_now = 1000;
    nfired = 0;
    struct wd_loop *l = wd_loop_new(fake_clock, NULL);
    struct wd_loop_timer t[5];
    uint64_t at[5] = {1300, 1100, 1500, 1200, 1400};
    for (int i = 0; i < 5; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].cb = record_timer;
        t[i].data = (void *)(intptr_t)i;
        wd_loop_timer_start(l, &t[i], at[i]);
    }
    wd_loop_timer_stop(l, &t[4]); /* 1400 never fires */
    assert_false(wd_loop_timer_armed(&t[4]));
    assert_int_equal(wd_loop_timers(l), 4);
    fake_now = 1250;
    assert_true(wd_loop_run_once(l, 0));
    assert_int_equal(nfired, 2);
    assert_int_equal(fired[0], 1);
    assert_int_equal(fired[1], 3);
    wd_loop_timer_start(l, &t[0], 2000); /* re-armed later */
    fake_now = 1600;
    assert_true(wd_loop_run_once(l, 0));
    assert_int_equal(nfired, 3);
    assert_int_equal(fired[2], 2);
    fake_now = 2000;
    assert_true(wd_loop_run_once(l, 0));
    assert_int_equal(nfired, 4);
    assert_int_equal(fired[3], 0);
    assert_int_equal(wd_loop_timers(l), 0);
    wd_loop_free(l);
}

static void many_timers_keep_the_heap_ordered(void **state)
{
    fake_now = 0;
    struct wd_loop *l = wd_loop_new(fake_clock, NULL);
    enum { N = 1000 };
    struct wd_loop_timer *t = calloc(N, sizeof *t);
    for (int i = 0; i < N; i++) {
        t[i].cb = record_timer;
        t[i].data = (void *)0;
        wd_loop_timer_start(l, &t[i], (uint64_t)((i * 7919) % N) + 1);
    }
    for (int i = 0; i < N; i += 3)
        wd_loop_timer_stop(l, &t[i]);
    uint64_t last = 0;
    while (wd_loop_timers(l)) {
        /* find the earliest by stepping the clock one tick at a time */
        fake_now++;
        nfired = 0;
        size_t before = wd_loop_timers(l);
        wd_loop_run_once(l, 0);
        assert_true(nfired <= 1);
        assert_true(wd_loop_timers(l) == before - (size_t)nfired);
        if (nfired)
            last = fake_now;
    }
    assert_true(last > 0);
    free(t);
    wd_loop_free(l);
}

struct pipe_io {
    struct wd_loop_io io;
    int calls;
    struct pipe_io *victim; /* removed and closed by the first callback */
};

static struct wd_loop *victim_loop;
static void on_pipe_kill(struct wd_loop_io *io, unsigned events)
{
    struct pipe_io *p = io->data;
    p->calls++;
    char buf[16];
    ssize_t n = read(io->fd, buf, sizeof buf);
    (void)n;
    if (p->victim && p->victim->io.mask)
        wd_loop_io_del(victim_loop, &p->victim->io);
}

static void readable_fd_calls_back_and_removed_io_gets_no_stale_event(void **state)
{
    struct wd_loop *l = wd_loop_new(NULL, NULL);
    victim_loop = l;
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    struct pipe_io pa = {.io = {.fd = a[0], .cb = on_pipe_kill}}, pb = pa;
    pa.io.data = &pa;
    pb.io.fd = b[0];
    pb.io.data = &pb;
    /* each kills the other: whichever the batch delivers first, the second must not run */
    pa.victim = &pb;
    pb.victim = &pa;
    assert_int_equal(wd_loop_io_set(l, &pa.io, WD_LOOP_READ), 0);
    assert_int_equal(wd_loop_io_set(l, &pb.io, WD_LOOP_READ), 0);
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "y", 1), 1);
    assert_true(wd_loop_run_once(l, 1000));
    assert_int_equal(pa.calls + pb.calls, 1);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
    }
    wd_loop_free(l);
}

static int posted_sum;
static void add_post(void *arg)
{
    posted_sum += (int)(intptr_t)arg;
}

static void stop_post(void *arg)
{
    wd_loop_stop(arg);
}

static void *poster(void *arg)
{
    struct wd_loop *l = arg;
    for (int i = 1; i <= 100; i++)
        wd_loop_post(l, add_post, (void *)(intptr_t)i);
    wd_loop_post(l, stop_post, l);
    return NULL;
}

static void posts_from_another_thread_run_on_the_loop_then_stop_ends_run(void **state)
{
    struct wd_loop *l = wd_loop_new(NULL, NULL);
    posted_sum = 0;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, poster, l), 0);
    wd_loop_run(l); /* returns only through the posted stop */
    pthread_join(th, NULL);
    assert_int_equal(posted_sum, 5050);
    assert_false(wd_loop_run_once(l, 0));
    wd_loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(timers_fire_in_expiry_order_on_the_given_clock),
        cmocka_unit_test(many_timers_keep_the_heap_ordered),
        cmocka_unit_test(readable_fd_calls_back_and_removed_io_gets_no_stale_event),
        cmocka_unit_test(posts_from_another_thread_run_on_the_loop_then_stop_ends_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
