/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loop_evops.c: struct wd_evops over struct wd_loop. Each io and timer handle is a small
 * heap object embedding the loop's own struct; wd_loop_io_del already clears the pending
 * events of the batch, so freeing an io from inside its callback is safe.
 */
#include "server/loop_evops.h"

#include <stdlib.h>

#include "core/wd.h"

struct io {
    struct wd_loop_io io;
    void (*cb)(void *arg, unsigned events);
    void *arg;
};

struct timer {
    struct wd_loop_timer t;
    void (*cb)(void *arg);
    void *arg;
};

static uint64_t ev_now(void *loop)
{
    return wd_loop_now(loop);
}

static void io_cb(struct wd_loop_io *lio, unsigned events)
{
    struct io *io = lio->data;
    io->cb(io->arg,
           (events & WD_LOOP_READ ? WD_EV_READ : 0u) | (events & WD_LOOP_WRITE ? WD_EV_WRITE : 0u));
}

static void *ev_io_new(void *loop, int fd, void (*cb)(void *arg, unsigned events), void *arg)
{
    (void)loop;
    struct io *io = wd_calloc(1, sizeof *io);
    io->io.fd = fd;
    io->io.cb = io_cb;
    io->io.data = io;
    io->cb = cb;
    io->arg = arg;
    return io;
}

static int ev_io_set(void *loop, void *h, unsigned mask)
{
    struct io *io = h;
    return wd_loop_io_set(loop, &io->io,
                          (mask & WD_EV_READ ? WD_LOOP_READ : 0u) |
                              (mask & WD_EV_WRITE ? WD_LOOP_WRITE : 0u));
}

static void ev_io_free(void *loop, void *h)
{
    struct io *io = h;
    if (!io)
        return;
    wd_loop_io_del(loop, &io->io);
    free(io);
}

static void timer_cb(struct wd_loop_timer *lt)
{
    struct timer *t = lt->data;
    t->cb(t->arg);
}

static void *ev_timer_new(void *loop, void (*cb)(void *arg), void *arg)
{
    (void)loop;
    struct timer *t = wd_calloc(1, sizeof *t);
    t->t.cb = timer_cb;
    t->t.data = t;
    t->cb = cb;
    t->arg = arg;
    return t;
}

static void ev_timer_start(void *loop, void *h, uint64_t at)
{
    struct timer *t = h;
    wd_loop_timer_start(loop, &t->t, at);
}

static void ev_timer_stop(void *loop, void *h)
{
    struct timer *t = h;
    wd_loop_timer_stop(loop, &t->t);
}

static void ev_timer_free(void *loop, void *h)
{
    struct timer *t = h;
    if (!t)
        return;
    wd_loop_timer_stop(loop, &t->t);
    free(t);
}

static void ev_post(void *loop, void (*fn)(void *arg), void *arg)
{
    wd_loop_post(loop, fn, arg);
}

void wd_loop_evops(struct wd_loop *l, struct wd_evops *out)
{
    *out = (struct wd_evops){
        .loop = l,
        .now = ev_now,
        .io_new = ev_io_new,
        .io_set = ev_io_set,
        .io_free = ev_io_free,
        .timer_new = ev_timer_new,
        .timer_start = ev_timer_start,
        .timer_stop = ev_timer_stop,
        .timer_free = ev_timer_free,
        .post = ev_post,
    };
}
