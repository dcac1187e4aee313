/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hashpool.c: the hash threads (hashpool.h). One mutex, one condition variable and a FIFO
 * of jobs; each job owns copies of its inputs, its completion and the loop to post it to.
 * The thread runs the check with the lock released, wipes the inputs, and posts the job to
 * the loop, whose post function runs the completion and frees the job: after the post the
 * pool never touches the job again, so a pool freed with completions still queued on a
 * loop leaves them valid.
 */
#include "engine/hashpool.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/wd.h"

struct job {
    struct job *next;
    bool is_spec;
    struct wd_passwd_spec spec; /* hash and salt point to owned copies */
    char *hash, *salt;
    char *stored; /* policy secret (!is_spec) */
    char *pw;
    size_t pwlen;
    void *loop;
    void (*post)(void *loop, void (*fn)(void *arg), void *arg);
    wd_hashpool_cb cb;
    void *ctx;
    int rc;
    bool match;
};

struct wd_hashpool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *head, *tail;
    bool stopping, paused;
    unsigned queue_max;
    unsigned queued, running;
    uint64_t submitted, rejected, completed;
    pthread_t *threads;
    unsigned nthreads;
};

static char *copy(const char *s, size_t n)
{
    char *p = wd_malloc(n + 1);
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void wipe_free(char *s, size_t n)
{
    if (s) {
        OPENSSL_cleanse(s, n);
        free(s);
    }
}

static void job_wipe(struct job *j)
{
    wipe_free(j->pw, j->pwlen);
    wipe_free(j->hash, j->spec.hash_len);
    wipe_free(j->salt, j->spec.salt_len);
    wipe_free(j->stored, j->stored ? strlen(j->stored) : 0);
    j->pw = j->hash = j->salt = j->stored = NULL;
}

/* on the submitting loop */
static void complete(void *arg)
{
    struct job *j = arg;
    j->cb(j->ctx, j->rc, j->match);
    free(j);
}

static void *worker(void *arg)
{
    struct wd_hashpool *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stopping && (p->paused || !p->head))
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->stopping)
            break;
        struct job *j = p->head;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        p->running++;
        pthread_mutex_unlock(&p->lock);

        j->match = false;
        j->rc = j->is_spec ? wd_passwd_verify_spec(&j->spec, j->pw, j->pwlen, &j->match)
                           : wd_passwd_verify(j->stored, j->pw, j->pwlen, &j->match);
        job_wipe(j);
        j->post(j->loop, complete, j);

        pthread_mutex_lock(&p->lock);
        p->running--;
        p->completed++;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int wd_hashpool_new(const struct wd_hashpool_opts *o, struct wd_hashpool **out)
{
    struct wd_hashpool *p;

    if (!out)
        return WD_EINVAL;
    *out = NULL;
    p = wd_calloc(1, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->queue_max = o && o->queue_max ? o->queue_max : 256;
    unsigned n = o && o->threads ? o->threads : 2;
    p->threads = wd_calloc(n, sizeof *p->threads);
    for (unsigned i = 0; i < n; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0)
            break;
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        wd_hashpool_free(p);
        return WD_EIO;
    }
    *out = p;
    return WD_OK;
}

void wd_hashpool_free(struct wd_hashpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    struct job *j = p->head;
    p->head = p->tail = NULL;
    p->queued = 0;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    while (j) { /* never started: answered, so every completion runs once */
        struct job *next = j->next;
        job_wipe(j);
        j->rc = WD_EBUSY;
        j->match = false;
        j->post(j->loop, complete, j);
        j = next;
    }
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}

static int enqueue(struct wd_hashpool *p, struct job *j)
{
    pthread_mutex_lock(&p->lock);
    if (p->stopping || p->queued + p->running >= p->queue_max) {
        p->rejected++;
        pthread_mutex_unlock(&p->lock);
        job_wipe(j);
        free(j);
        return WD_EBUSY;
    }
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->queued++;
    p->submitted++;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return WD_OK;
}

static struct job *job_new(const struct wd_evops *ev, const char *pw, size_t pwlen,
                           wd_hashpool_cb cb, void *ctx)
{
    struct job *j = wd_calloc(1, sizeof *j);
    j->pw = copy(pw, pwlen);
    j->pwlen = pwlen;
    j->loop = ev->loop;
    j->post = ev->post;
    j->cb = cb;
    j->ctx = ctx;
    return j;
}

int wd_hashpool_verify_spec(struct wd_hashpool *p, const struct wd_evops *ev,
                            const struct wd_passwd_spec *spec, const char *pw, size_t pwlen,
                            wd_hashpool_cb cb, void *ctx)
{
    if (!p || !ev || !ev->post || !spec || !cb || (!pw && pwlen) ||
        (!spec->hash && spec->hash_len) || (!spec->salt && spec->salt_len))
        return WD_EINVAL;
    struct job *j = job_new(ev, pw, pwlen, cb, ctx);
    j->is_spec = true;
    j->spec = *spec;
    j->hash = copy(spec->hash, spec->hash_len);
    j->salt = copy(spec->salt, spec->salt_len);
    j->spec.hash = j->hash;
    j->spec.salt = j->salt;
    return enqueue(p, j);
}

int wd_hashpool_verify(struct wd_hashpool *p, const struct wd_evops *ev, const char *stored,
                       const char *pw, size_t pwlen, wd_hashpool_cb cb, void *ctx)
{
    if (!p || !ev || !ev->post || !stored || !cb || (!pw && pwlen))
        return WD_EINVAL;
    struct job *j = job_new(ev, pw, pwlen, cb, ctx);
    j->stored = copy(stored, strlen(stored));
    return enqueue(p, j);
}

void wd_hashpool_stats(struct wd_hashpool *p, struct wd_hashpool_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    out->submitted = p->submitted;
    out->rejected = p->rejected;
    out->completed = p->completed;
    out->queued = p->queued;
    out->running = p->running;
    pthread_mutex_unlock(&p->lock);
}

void wd_hashpool__pause(struct wd_hashpool *p, bool paused)
{
    pthread_mutex_lock(&p->lock);
    p->paused = paused;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}
