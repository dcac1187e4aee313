/* SPDX-License-Identifier: Apache-2.0 */
/*
 * watch.c: see watch.h. One thread, poll(2) over the inotify descriptor and a pipe used
 * to stop it. Each event is read and judged (classify()): only a writer that is done with
 * the file starts the debounce and the identity check, and a writer that starts again
 * during the debounce cancels it, so a file that is still being written is never loaded
 * half-way.
 */
#include "engine/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
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
    char *dir;  /* the directory watched */
    char *base; /* the file's name in it */
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

static bool is_symlink(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0 && S_ISLNK(st.st_mode);
}

/* true when dir/name is (now) the file the watched path resolves to */
static bool is_target(const struct wd_watch *w, const char *entry)
{
    struct stat a, b;
    return stat(entry, &a) == 0 && stat(w->path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

enum ev_kind { EV_NONE, EV_STARTED, EV_FINISHED };

/*
 * What one event says about the policy file. Finished: a file closed after writing
 * (IN_CLOSE_WRITE), a file renamed into place (IN_MOVED_TO), or a symlink created or
 * renamed into place (ln -s, Kubernetes' `..data` swap), which is atomic. Started: the file
 * was created, truncated or written (IN_CREATE of a regular file, IN_MODIFY) or deleted: a
 * writer is at work, and only its close (or a rename) makes the file loadable again.
 * Events on other names matter only when the policy path is a symlink that may now
 * resolve through them.
 */
static enum ev_kind classify(const struct wd_watch *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW)
        return EV_FINISHED; /* events were lost: look at the file (its identity decides) */
    if (ev->len == 0)
        return EV_NONE;
    char entry[PATH_MAX];
    if (snprintf(entry, sizeof entry, "%s/%s", w->dir, ev->name) >= (int)sizeof entry)
        return EV_NONE;
    bool mine = strcmp(ev->name, w->base) == 0;
    if (ev->mask & IN_DELETE)
        return mine ? EV_STARTED : EV_NONE;
    if (ev->mask & (IN_MODIFY | IN_CLOSE_WRITE)) {
        if (!mine && !is_target(w, entry))
            return EV_NONE;
        return ev->mask & IN_CLOSE_WRITE ? EV_FINISHED : EV_STARTED;
    }
    if (ev->mask & IN_CREATE) {
        if (!is_symlink(entry))
            return mine || is_target(w, entry) ? EV_STARTED : EV_NONE; /* open for writing */
        if (mine)
            return EV_FINISHED;
    } else if (ev->mask & IN_MOVED_TO) {
        if (mine)
            return EV_FINISHED;
    } else {
        return EV_NONE;
    }
    /* another name renamed or linked into the directory: only a symlinked path can change
     * through it */
    return is_symlink(w->path) && (is_symlink(entry) || is_target(w, entry)) ? EV_FINISHED
                                                                             : EV_NONE;
}

/* Reads the pending events in order and updates *ready: true after a finished write, false
 * again when a writer starts on the file (see classify()). Returns false when nothing was
 * read. */
static bool read_events(const struct wd_watch *w, bool *ready)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    ssize_t n;
    while ((n = read(w->ifd, buf, sizeof buf)) > 0) {
        any = true;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            enum ev_kind k = classify(w, ev);
            if (k != EV_NONE)
                *ready = k == EV_FINISHED;
            p += sizeof *ev + ev->len;
        }
    }
    return any;
}

static void *watch_main(void *arg)
{
    struct wd_watch *w = arg;
    struct pollfd pf[2] = {{w->ifd, POLLIN, 0}, {w->stop[0], POLLIN, 0}};
    bool ready = false; /* a writer finished with the file since the last look */
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
        read_events(w, &ready);
        if (!ready)
            continue; /* a file being written, or an unrelated file */
        /* let a burst of events (rename, chmod, a second save) settle */
        for (;;) {
            int r = poll(pf, 2, w->debounce_ms);
            if (r > 0 && pf[1].revents)
                return NULL;
            if (r > 0 && (pf[0].revents & POLLIN)) {
                read_events(w, &ready);
                continue;
            }
            break;
        }
        if (!ready)
            continue; /* a writer started again meanwhile: wait for its close */
        ready = false;
        struct ident now = identify(w->path);
        if (!now.present || same(&now, &w->last))
            continue; /* deleted (keep serving), or the same file as last time */
        w->last = now;
        w->fn(w->ctx);
    }
    return NULL;
}

static void watch_free(struct wd_watch *w)
{
    free(w->path);
    free(w->dir);
    free(w->base);
    free(w);
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
    const char *slash = strrchr(path, '/');
    w->base = wd_strdup(slash ? slash + 1 : path);
    if (!slash)
        w->dir = wd_strdup(".");
    else if (slash == path)
        w->dir = wd_strdup("/");
    else
        w->dir = wd_strndup(path, (size_t)(slash - path));
    const char *dir = w->dir;
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->ifd < 0 ||
        inotify_add_watch(w->ifd, dir,
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_MODIFY | IN_DELETE |
                              IN_ONLYDIR) < 0 ||
        pipe2(w->stop, O_CLOEXEC) != 0) {
        snprintf(err, errcap, "cannot watch %s: %s", dir, strerror(errno));
        if (w->ifd >= 0)
            close(w->ifd);
        if (w->stop[0] >= 0) {
            close(w->stop[0]);
            close(w->stop[1]);
        }
        watch_free(w);
        return NULL;
    }
    if (pthread_create(&w->th, NULL, watch_main, w) != 0) {
        snprintf(err, errcap, "cannot start the watcher thread");
        close(w->ifd);
        close(w->stop[0]);
        close(w->stop[1]);
        watch_free(w);
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
    watch_free(w);
}
