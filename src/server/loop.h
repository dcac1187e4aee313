/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loop.h: a small epoll event loop, one per worker thread.
 *
 * Three kinds of events, all delivered on the loop's own thread:
 * - fd readiness (level-triggered): struct wd_loop_io, embedded in its owner;
 * - timers on a millisecond clock: struct wd_loop_timer, embedded in its owner, kept in a
 *   binary heap (start, stop and restart are O(log n), so one timer per stream is cheap);
 * - posts from other threads (wd_loop_post), which wake the loop through an eventfd; a
 *   stop request (wd_loop_stop) is a post too.
 *
 * The clock is passed in (CONVENTIONS: tests control time): wd_loop_new takes a function
 * returning milliseconds, NULL for CLOCK_MONOTONIC. The loop reads it once per iteration
 * (wd_loop_now returns that cached value).
 *
 * Freed-while-pending: one epoll_wait batch may hold an event for an io that an earlier
 * callback of the same batch removed (and the kernel may have given its fd number to a new
 * socket already). wd_loop_io_del clears such pending events, so its owner may free the io
 * right after the call, even from inside a callback.
 *
 * Only wd_loop_post and wd_loop_stop may be called from another thread; everything else
 * belongs to the loop's thread (or to the creating thread before wd_loop_run starts).
 */
#ifndef WD_LOOP_H
#define WD_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wd_loop;

/* Readiness bits for wd_loop_io (EPOLLERR/EPOLLHUP are reported as both). */
#define WD_LOOP_READ 1u
#define WD_LOOP_WRITE 2u

struct wd_loop_io;
/* `events` holds WD_LOOP_READ and/or WD_LOOP_WRITE. */
typedef void (*wd_loop_io_cb)(struct wd_loop_io *io, unsigned events);

struct wd_loop_io {
    int fd;
    unsigned mask; /* registered interest; 0: not registered */
    wd_loop_io_cb cb;
    void *data; /* the owner's, untouched by the loop */
};

struct wd_loop_timer;
typedef void (*wd_loop_timer_cb)(struct wd_loop_timer *t);

struct wd_loop_timer {
    uint64_t at; /* expiry, on the loop's clock */
    size_t slot; /* index in the heap + 1; 0: not armed */
    wd_loop_timer_cb cb;
    void *data;
};

typedef uint64_t (*wd_loop_clock_fn)(void *ctx);

/* A new loop, or NULL with errno set (epoll/eventfd creation failed). clock may be NULL
 * (CLOCK_MONOTONIC in milliseconds). */
struct wd_loop *wd_loop_new(wd_loop_clock_fn clock, void *clock_ctx);
/* Frees the loop. Registered ios and armed timers are forgotten (their owners free them);
 * posts never run are dropped without calling them. */
void wd_loop_free(struct wd_loop *l);

/* Runs until wd_loop_stop. */
void wd_loop_run(struct wd_loop *l);
/* One iteration: waits up to max_wait_ms (-1: until the next timer or event), runs what is
 * ready. Returns false once the loop was stopped. For tests and for wd_loop_run. */
bool wd_loop_run_once(struct wd_loop *l, int max_wait_ms);

/* Thread-safe: the loop returns from wd_loop_run at its next iteration. */
void wd_loop_stop(struct wd_loop *l);

/* Thread-safe: runs fn(arg) on the loop's thread, in post order. Never fails (the
 * allocation aborts on OOM). */
void wd_loop_post(struct wd_loop *l, void (*fn)(void *arg), void *arg);

/* The loop's clock as read at the start of this iteration (ms). */
uint64_t wd_loop_now(const struct wd_loop *l);
/* Reads the clock again and updates wd_loop_now. */
uint64_t wd_loop_update_now(struct wd_loop *l);

/* fd interest. io->fd, io->cb (and io->data) are set by the caller first. Setting mask 0
 * keeps the fd registered but silent. Returns WD_OK or WD_EIO (epoll_ctl failed). */
int wd_loop_io_set(struct wd_loop *l, struct wd_loop_io *io, unsigned mask);
/* Unregisters the fd (before it is closed) and clears its pending events. */
void wd_loop_io_del(struct wd_loop *l, struct wd_loop_io *io);

/* Arms (or re-arms) a timer to fire at `at` on the loop's clock; t->cb set first. */
void wd_loop_timer_start(struct wd_loop *l, struct wd_loop_timer *t, uint64_t at);
void wd_loop_timer_stop(struct wd_loop *l, struct wd_loop_timer *t);
static inline bool wd_loop_timer_armed(const struct wd_loop_timer *t)
{
    return t->slot != 0;
}

/* Number of armed timers (tests). */
size_t wd_loop_timers(const struct wd_loop *l);

#endif
