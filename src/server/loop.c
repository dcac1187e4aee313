/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loop.c: the per-worker epoll loop (see loop.h).
 *
 * One iteration: compute the wait from the earliest timer, epoll_wait, read the clock,
 * dispatch the fd events of the batch in order, then the due timers, then the posts. Level-
 * triggered epoll throughout: a callback that leaves input unread is called again on the
 * next iteration, which is how a connection over its output cap pauses reading without
 * losing anything.
 *
 * The wakeup eventfd is registered with a NULL io pointer; posts are a mutex-protected FIFO
 * swapped out whole, so posting never waits for callbacks to run.
 */
#include "server/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/wd.h"

#define MAX_EVENTS 64

struct post {
    void (*fn)(void *arg);
    void *arg;
    struct post *next;
};

struct wd_loop {
    int epfd;
    int wakefd;
    wd_loop_clock_fn clock;
    void *clock_ctx;
    uint64_t now;

    struct wd_loop_timer **heap; /* min-heap on `at` */
    size_t nheap, capheap;

    /* the batch being dispatched, so wd_loop_io_del can clear events of a freed io */
    struct epoll_event events[MAX_EVENTS];
    int nevents, cur;

    pthread_mutex_t lock; /* guards posts and stopped */
    struct post *posts, *posts_tail;
    bool stopped;
};

static uint64_t monotonic_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct wd_loop *wd_loop_new(wd_loop_clock_fn clock, void *clock_ctx)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return NULL;
    int wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakefd < 0) {
        int e = errno;
        close(epfd);
        errno = e;
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) != 0) {
        int e = errno;
        close(wakefd);
        close(epfd);
        errno = e;
        return NULL;
    }
    struct wd_loop *l = wd_calloc(1, sizeof *l);
    l->epfd = epfd;
    l->wakefd = wakefd;
    l->clock = clock ? clock : monotonic_ms;
    l->clock_ctx = clock_ctx;
    l->now = l->clock(l->clock_ctx);
    pthread_mutex_init(&l->lock, NULL);
    return l;
}

void wd_loop_free(struct wd_loop *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->nheap; i++)
        l->heap[i]->slot = 0;
    free(l->heap);
    struct post *p = l->posts;
    while (p) {
        struct post *next = p->next;
        free(p);
        p = next;
    }
    pthread_mutex_destroy(&l->lock);
    close(l->wakefd);
    close(l->epfd);
    free(l);
}

uint64_t wd_loop_now(const struct wd_loop *l)
{
    return l->now;
}

uint64_t wd_loop_update_now(struct wd_loop *l)
{
    l->now = l->clock(l->clock_ctx);
    return l->now;
}

size_t wd_loop_timers(const struct wd_loop *l)
{
    return l->nheap;
}

/* ---- cross-thread ---- */

static void wake(struct wd_loop *l)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: the loop wakes anyway */
    ssize_t n = write(l->wakefd, &one, sizeof one);
    (void)n;
}

void wd_loop_post(struct wd_loop *l, void (*fn)(void *arg), void *arg)
{
    struct post *p = wd_malloc(sizeof *p);
    p->fn = fn;
    p->arg = arg;
    p->next = NULL;
    pthread_mutex_lock(&l->lock);
    if (l->posts_tail)
        l->posts_tail->next = p;
    else
        l->posts = p;
    l->posts_tail = p;
    pthread_mutex_unlock(&l->lock);
    wake(l);
}

void wd_loop_stop(struct wd_loop *l)
{
    pthread_mutex_lock(&l->lock);
    l->stopped = true;
    pthread_mutex_unlock(&l->lock);
    wake(l);
}

static void run_posts(struct wd_loop *l)
{
    pthread_mutex_lock(&l->lock);
    struct post *p = l->posts;
    l->posts = l->posts_tail = NULL;
    pthread_mutex_unlock(&l->lock);
    while (p) {
        struct post *next = p->next;
        p->fn(p->arg);
        free(p);
        p = next;
    }
}

/* ---- fds ---- */

int wd_loop_io_set(struct wd_loop *l, struct wd_loop_io *io, unsigned mask)
{
    struct epoll_event ev = {.events = 0, .data.ptr = io};
    if (mask & WD_LOOP_READ)
        ev.events |= EPOLLIN | EPOLLRDHUP;
    if (mask & WD_LOOP_WRITE)
        ev.events |= EPOLLOUT;
    int op = io->mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (io->mask == (mask | 0x100u))
        return WD_OK;
    if (epoll_ctl(l->epfd, op, io->fd, &ev) != 0)
        return WD_EIO;
    io->mask = mask | 0x100u; /* bit 8: registered (a zero mask is still registered) */
    return WD_OK;
}

void wd_loop_io_del(struct wd_loop *l, struct wd_loop_io *io)
{
    if (io->mask) {
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
        io->mask = 0;
    }
    for (int i = l->cur + 1; i < l->nevents; i++)
        if (l->events[i].data.ptr == io) {
            l->events[i].data.ptr = NULL;
            l->events[i].events = 0;
        }
}

/* ---- timers: a binary min-heap of pointers, slot = index + 1 ---- */

static void heap_set(struct wd_loop *l, size_t i, struct wd_loop_timer *t)
{
    l->heap[i] = t;
    t->slot = i + 1;
}

static void sift_up(struct wd_loop *l, size_t i)
{
    struct wd_loop_timer *t = l->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (l->heap[parent]->at <= t->at)
            break;
        heap_set(l, i, l->heap[parent]);
        i = parent;
    }
    heap_set(l, i, t);
}

static void sift_down(struct wd_loop *l, size_t i)
{
    struct wd_loop_timer *t = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->nheap)
            break;
        if (c + 1 < l->nheap && l->heap[c + 1]->at < l->heap[c]->at)
            c++;
        if (t->at <= l->heap[c]->at)
            break;
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, t);
}

void wd_loop_timer_stop(struct wd_loop *l, struct wd_loop_timer *t)
{
    if (!t->slot)
        return;
    size_t i = t->slot - 1;
    t->slot = 0;
    struct wd_loop_timer *last = l->heap[--l->nheap];
    if (i == l->nheap)
        return;
    l->heap[i] = last;
    last->slot = i + 1;
    if (i > 0 && last->at < l->heap[(i - 1) / 2]->at)
        sift_up(l, i);
    else
        sift_down(l, i);
}

void wd_loop_timer_start(struct wd_loop *l, struct wd_loop_timer *t, uint64_t at)
{
    wd_loop_timer_stop(l, t);
    if (l->nheap == l->capheap) {
        l->capheap = l->capheap ? 2 * l->capheap : 64;
        l->heap = wd_realloc(l->heap, l->capheap * sizeof *l->heap);
    }
    t->at = at;
    l->heap[l->nheap] = t;
    t->slot = ++l->nheap;
    sift_up(l, l->nheap - 1);
}

static void run_timers(struct wd_loop *l)
{
    /* a callback may re-arm its timer for `now` or earlier: bound the round so that such a
     * timer runs once per iteration instead of spinning here */
    size_t budget = l->nheap;
    while (l->nheap && l->heap[0]->at <= l->now && budget--) {
        struct wd_loop_timer *t = l->heap[0];
        wd_loop_timer_stop(l, t);
        t->cb(t);
    }
}

/* ---- running ---- */

bool wd_loop_run_once(struct wd_loop *l, int max_wait_ms)
{
    pthread_mutex_lock(&l->lock);
    bool stopped = l->stopped;
    bool posted = l->posts != NULL;
    pthread_mutex_unlock(&l->lock);
    if (stopped)
        return false;

    int wait = max_wait_ms;
    if (posted) {
        wait = 0;
    } else if (l->nheap) {
        uint64_t now = l->clock(l->clock_ctx);
        uint64_t at = l->heap[0]->at;
        uint64_t d = at > now ? at - now : 0;
        if (d > 60000)
            d = 60000;
        if (wait < 0 || (uint64_t)wait > d)
            wait = (int)d;
    }
    int n = epoll_wait(l->epfd, l->events, MAX_EVENTS, wait);
    l->now = l->clock(l->clock_ctx);
    l->nevents = n > 0 ? n : 0;
    for (l->cur = 0; l->cur < l->nevents; l->cur++) {
        struct epoll_event *ev = &l->events[l->cur];
        struct wd_loop_io *io = ev->data.ptr;
        if (!io) {
            if (ev->events) { /* the wakeup eventfd */
                uint64_t v;
                ssize_t r = read(l->wakefd, &v, sizeof v);
                (void)r;
            }
            continue;
        }
        unsigned what = 0;
        if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
            what |= WD_LOOP_READ;
        if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            what |= WD_LOOP_WRITE;
        what &= io->mask | ((ev->events & (EPOLLERR | EPOLLHUP)) ? 3u : 0u);
        if (what)
            io->cb(io, what);
    }
    l->nevents = 0;
    l->cur = 0;
    run_timers(l);
    run_posts(l);
    pthread_mutex_lock(&l->lock);
    stopped = l->stopped;
    pthread_mutex_unlock(&l->lock);
    return !stopped;
}

void wd_loop_run(struct wd_loop *l)
{
    while (wd_loop_run_once(l, -1)) {
    }
}
