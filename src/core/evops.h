/* SPDX-License-Identifier: Apache-2.0 */
/*
 * evops.h: the event loop as the layers below the server see it, a small table of
 * functions. The loop itself (server/loop.c, one epoll loop per worker) belongs to the
 * server layer, and includes point downward only (CONVENTIONS: core <- store <- engine <-
 * server), so the store's asynchronous Redis client and the engine's hash pool cannot
 * include server/loop.h. They take a struct wd_evops instead, which the server layer fills
 * for its loop (server/loop_evops.h) and a test may fill with fakes. The loop stays where
 * the house layout puts it and nothing moves under the transport.
 *
 * Handles (io, timer) are allocated by the table's owner and opaque here. Everything runs
 * on the loop's thread, except post(), which may be called from any thread.
 */
#ifndef WD_CORE_EVOPS_H
#define WD_CORE_EVOPS_H

#include <stdint.h>

/* interest and readiness bits; an error or hang-up on the fd is reported as both */
#define WD_EV_READ 1u
#define WD_EV_WRITE 2u

struct wd_evops {
    void *loop; /* the first argument of every function below */

    /* The loop's clock in milliseconds (the same clock timers run on; tests pass a fake). */
    uint64_t (*now)(void *loop);

    /* fd readiness, level-triggered, one registration per fd. io_new registers nothing
     * yet; io_set sets the whole interest mask (0: registered but silent) and returns
     * WD_OK or an error; io_free unregisters (before the fd is closed), drops events of
     * the current batch not yet delivered, and frees the handle (allowed inside its own
     * callback: the loop touches nothing after cb returns). */
    void *(*io_new)(void *loop, int fd, void (*cb)(void *arg, unsigned events), void *arg);
    int (*io_set)(void *loop, void *io, unsigned mask);
    void (*io_free)(void *loop, void *io);

    /* One-shot timers on now()'s clock: start (re-)arms for `at`, stop disarms, free
     * disarms and frees. */
    void *(*timer_new)(void *loop, void (*cb)(void *arg), void *arg);
    void (*timer_start)(void *loop, void *timer, uint64_t at);
    void (*timer_stop)(void *loop, void *timer);
    void (*timer_free)(void *loop, void *timer);

    /* Thread-safe: runs fn(arg) on the loop's thread soon, in post order. Never fails. */
    void (*post)(void *loop, void (*fn)(void *arg), void *arg);
};

/*
 * A call that can wait instead of blocking its loop. The caller (the transport) owns the
 * struct, sets resume and ctx, and leaves pending NULL. A layer that must wait for I/O (a
 * Redis reply, a password hash) records what it needs in *pending (its own type, opaque
 * here) and returns WD_EAGAIN; later resume(ctx) runs once on the caller's loop thread, and
 * the caller calls again with the same struct and the same request: what the wait learned
 * is in *pending, so the second run goes further (and usually finishes). Whether the call
 * finished or its caller went away (stream reset, deadline, connection closed), the caller
 * ends it with the layer's end function (wd_engine_waiter_end), after which resume never
 * runs. Work already started finishes in the background and is then dropped.
 */
struct wd_pending;
struct wd_waiter {
    void (*resume)(void *ctx);
    void *ctx;
    struct wd_pending *pending;
};

#endif
