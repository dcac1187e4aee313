/* SPDX-License-Identifier: Apache-2.0 */
/*
 * watch.c: see watch.h. One thread, poll(2) over the inotify descriptor and a pipe used
 * to stop it.
 */
#include "engine/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/wd.h"

struct ident {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    int present;
};

struct wd_watch {
    char *path;
    int debounce_ms;
    void (*fn)(void *);
    void *ctx;
    int ifd;
    int stop[2];
    pthread_t th;
    struct ident last;
};

static struct ident identify(const char *path)
{
    struct ident id;
    memset(&id, 0, sizeof id);
    struct stat st;
    if (stat(path, &st) == 0) {
        id.dev = st.st_dev;
        id.ino = st.st_ino;
        id.size = st.st_size;
        id.mtime = st.st_mtim;
        id.present = 1;
    }
    return id;
}

static int same(const struct ident *a, const struct ident *b)
{
    return a->present == b->present && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void drain(int fd)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

static void *watch_main(void *arg)
{
    struct wd_watch *w = arg;
    struct pollfd pf[2] = {{w->ifd, POLLIN, 0}, {w->stop[0], POLLIN, 0}};
    for (;;) {
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[1].revents)
            break;
        if (!(pf[0].revents & POLLIN))
            continue;
        drain(w->ifd);
        /* let a burst of events (write, rename, chmod) settle */
        for (;;) {
            int r = poll(pf, 2, w->debounce_ms);
            if (r > 0 && pf[1].revents)
                return NULL;
            if (r > 0 && (pf[0].revents & POLLIN)) {
                drain(w->ifd);
                continue;
            }
            break;
        }
        struct ident now = identify(w->path);
        if (!now.present || same(&now, &w->last))
            continue; /* deleted (keep serving) or unrelated file in the directory */
        w->last = now;
        w->fn(w->ctx);
    }
    return NULL;
}

struct wd_watch *wd_watch_start(const char *path, int debounce_ms, void (*fn)(void *ctx), void *ctx,
                                char *err, size_t errcap)
{
    struct wd_watch *w = wd_calloc(1, sizeof *w);
    w->path = wd_strdup(path);
    w->debounce_ms = debounce_ms;
    w->fn = fn;
    w->ctx = ctx;
    w->stop[0] = w->stop[1] = -1;
    w->last = identify(path);
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->ifd < 0 ||
        inotify_add_watch(w->ifd, dir,
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB) < 0 ||
        pipe2(w->stop, O_CLOEXEC) != 0) {
        snprintf(err, errcap, "cannot watch %s: %s", dir, strerror(errno));
        if (w->ifd >= 0)
            close(w->ifd);
        if (w->stop[0] >= 0) {
            close(w->stop[0]);
            close(w->stop[1]);
        }
        free(w->path);
        free(w);
        return NULL;
    }
    if (pthread_create(&w->th, NULL, watch_main, w) != 0) {
        snprintf(err, errcap, "cannot start the watcher thread");
        close(w->ifd);
        close(w->stop[0]);
        close(w->stop[1]);
        free(w->path);
        free(w);
        return NULL;
    }
    return w;
}

void wd_watch_stop(struct wd_watch *w)
{
    if (!w)
        return;
    ssize_t n = write(w->stop[1], "x", 1);
    (void)n;
    pthread_join(w->th, NULL);
    close(w->ifd);
    close(w->stop[0]);
    close(w->stop[1]);
    free(w->path);
    free(w);
}
