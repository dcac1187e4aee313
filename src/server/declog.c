/* SPDX-License-Identifier: Apache-2.0 */
/*
 * declog.c: see declog.h.
 *
 * The queue is a ring of malloc'd lines under one mutex; the writer takes everything
 * queued at once (swapping the ring's contents into its own array), writes it with one
 * writev-like loop of write(2) calls and goes back to sleep. A line is built by the worker
 * before the lock is taken, so the lock covers a pointer store. Strings are cut at
 * FIELD_MAX bytes (a character boundary) and the line then says "truncated":true: a client
 * id of 64 KiB must not make the log a way to fill a disk ten times faster.
 */
#include "server/declog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"

#define FIELD_MAX 1024u

struct declog {
    char *path; /* NULL: stderr */
    char *policy;
    bool all; /* decision_log_events all */
    int fd;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    char **ring;
    size_t cap, head, count;
    bool stop;
    bool reopen; /* wd_declog_reopen() asked */
    pthread_t thread;
};

static struct declog *_Atomic g_log;

bool wd_declog_wants(enum wd_decision d)
{
    struct declog *l = atomic_load_explicit(&g_log, memory_order_acquire);
    return l && (l->all || d == WD_DECISION_DENY);
}

static void put_field(struct wd_buf *b, bool *cut, const char *name, const char *s, size_t n)
{
    wd_buf_printf(b, ",\"%s\":", name);
    if (wd_json_str(b, s, n, FIELD_MAX))
        *cut = true;
}

void wd_declog_format(struct wd_buf *out, const struct wd_declog_event *ev, const char *policy,
                      const struct timespec *now)
{
    const struct wd_client *c = ev->client;
    const struct wd_verdict *v = ev->verdict;
    bool cut = false;
    struct tm tm;
    time_t t = now->tv_sec;
    gmtime_r(&t, &tm);
    char ts[40];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    wd_buf_printf(out, "{\"time\":\"%s.%03ldZ\",\"hook\":", ts, now->tv_nsec / 1000000);
    wd_json_str(out, ev->hook, strlen(ev->hook), 0);
    put_field(out, &cut, "clientid", c->clientid, strlen(c->clientid));
    if (!ev->username_is_token)
        put_field(out, &cut, "username", c->username, strlen(c->username));
    /* peer: HOST:PORT, [V6]:PORT */
    struct wd_buf peer = {0};
    bool v6 = strchr(c->peerhost, ':') != NULL;
    wd_buf_printf(&peer, "%s%s%s:%u", v6 ? "[" : "", c->peerhost, v6 ? "]" : "",
                  (unsigned)c->peerport);
    put_field(out, &cut, "peer", peer.s, peer.len);
    wd_buf_free(&peer);
    if (ev->action) {
        wd_buf_printf(out, ",\"action\":\"%s\"", ev->action);
        put_field(out, &cut, "topic", ev->topic, ev->topic_len);
    }
    wd_buf_printf(out, ",\"decision\":\"%s\",\"reason\":", wd_decision_str(v->decision));
    wd_json_str(out, v->reason ? v->reason : "", v->reason ? strlen(v->reason) : 0, 0);
    wd_buf_puts(out, ",\"rule\":");
    if (v->line) {
        struct wd_buf r = {0};
        wd_buf_printf(&r, "%s:%u", policy ? policy : "<embedded>", v->line);
        wd_json_str(out, r.s, r.len, 0);
        wd_buf_free(&r);
    } else {
        wd_buf_puts(out, "null");
    }
    wd_buf_printf(out, ",\"generation\":%lu,\"step\":", v->generation);
    wd_json_str(out, v->step ? v->step : "", v->step ? strlen(v->step) : 0, 0);
    if (cut)
        wd_buf_puts(out, ",\"truncated\":true");
    wd_buf_puts(out, "}\n");
}

void wd_declog_emit(const struct wd_declog_event *ev)
{
    struct declog *l = atomic_load_explicit(&g_log, memory_order_acquire);
    if (!l || !(l->all || ev->verdict->decision == WD_DECISION_DENY))
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct wd_buf b = {0};
    wd_declog_format(&b, ev, l->policy, &now);
    char *line = b.s;
    pthread_mutex_lock(&l->mu);
    bool queued = l->count < l->cap;
    if (queued) {
        l->ring[(l->head + l->count) % l->cap] = line;
        l->count++;
        pthread_cond_signal(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    if (!queued) {
        free(line);
        wd_metrics_inc(WD_M_DLOG_DROPPED);
    }
}

static int open_log(const char *path, char *err, size_t errcap)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0)
        snprintf(err, errcap, "decision_log %s: %s", path, strerror(errno));
    return fd;
}

static void reopen(struct declog *l)
{
    char err[512];
    int fd = open_log(l->path, err, sizeof err);
    if (fd < 0) {
        wd_metrics_inc(WD_M_DLOG_ERRORS);
        wd_log_error("declog", "%s (still writing to the file open before)", err);
        return;
    }
    close(l->fd);
    l->fd = fd;
    wd_log_info("declog", "decision log %s reopened", l->path);
}

static bool write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        s += w;
        n -= (size_t)w;
    }
    return true;
}

static void *writer_main(void *arg)
{
    struct declog *l = arg;
    char **batch = wd_calloc(l->cap, sizeof *batch);
    for (;;) {
        pthread_mutex_lock(&l->mu);
        while (l->count == 0 && !l->stop && !l->reopen)
            pthread_cond_wait(&l->cv, &l->mu);
        size_t n = l->count;
        for (size_t i = 0; i < n; i++)
            batch[i] = l->ring[(l->head + i) % l->cap];
        l->head = (l->head + n) % l->cap;
        l->count = 0;
        bool stop = l->stop, again = l->reopen;
        l->reopen = false;
        pthread_mutex_unlock(&l->mu);
        /* the lines taken with the reopen request go to the new file: they were queued
         * after the rename, or so close to it that either file is right */
        if (again && l->path)
            reopen(l);
        for (size_t i = 0; i < n; i++) {
            if (write_all(l->fd, batch[i], strlen(batch[i])))
                wd_metrics_inc(WD_M_DLOG_LINES);
            else
                wd_metrics_inc(WD_M_DLOG_ERRORS);
            free(batch[i]);
        }
        if (stop && n == 0)
            break;
    }
    free(batch);
    return NULL;
}

int wd_declog_start(const struct wd_config *cfg, const char *policy, char *err, size_t errcap)
{
    if (cfg->decision_log.to == WD_CONFIG_OUTPUT_OFF)
        return WD_OK;
    struct declog *l = wd_calloc(1, sizeof *l);
    l->all = cfg->decision_log_events == WD_CONFIG_EVENTS_ALL;
    l->policy = wd_strdup(policy ? policy : "<embedded>");
    if (cfg->decision_log.to == WD_CONFIG_OUTPUT_STDERR) {
        l->fd = STDERR_FILENO;
    } else {
        l->path = wd_strdup(cfg->decision_log.file);
        l->fd = open_log(l->path, err, errcap);
        if (l->fd < 0) {
            free(l->path);
            free(l->policy);
            free(l);
            return WD_EIO;
        }
    }
    l->cap = cfg->decision_log_queue > 0 ? (size_t)cfg->decision_log_queue : 4096;
    l->ring = wd_calloc(l->cap, sizeof *l->ring);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (pthread_create(&l->thread, NULL, writer_main, l) != 0) {
        snprintf(err, errcap, "decision_log: cannot start the writer thread");
        if (l->path)
            close(l->fd);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        free(l->ring);
        free(l->path);
        free(l->policy);
        free(l);
        return WD_EIO;
    }
    atomic_store_explicit(&g_log, l, memory_order_release);
    return WD_OK;
}

void wd_declog_stop(void)
{
    struct declog *l = atomic_exchange(&g_log, NULL);
    if (!l)
        return;
    /* workers have stopped (the transport is stopped first), so no emit is in flight */
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    if (l->path)
        close(l->fd);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->ring);
    free(l->path);
    free(l->policy);
    free(l);
}

void wd_declog_reopen(void)
{
    struct declog *l = atomic_load_explicit(&g_log, memory_order_acquire);
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->reopen = true;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}
