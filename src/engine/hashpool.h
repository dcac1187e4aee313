/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hashpool.h: a small pool of threads for slow password checks (bcrypt, argon2id, pbkdf2:
 * milliseconds to seconds of CPU each), so that no worker loop ever runs one. A loop
 * submits a check with a completion; a hash thread runs wd_passwd_verify_spec() or
 * wd_passwd_verify() (passwd.h) and posts the result back to the submitting loop's thread
 * (struct wd_evops post), where the completion runs.
 *
 * The queue is bounded: over queue_max checks accepted and not yet finished, a submit fails
 * at once with WD_EBUSY (counted), so a login storm costs failed logins, not memory and
 * unbounded latency for everyone. Single-flight (one hash per user however many callers
 * wait for it) stays in the cache, in front of this pool: the pool runs what it is given.
 *
 * Inputs are copied at submit (the password and the stored hash and salt are wiped when
 * the check is done), so the caller's buffers may go at once. Layer: engine (it runs a
 * store's function on behalf of the orchestration; it includes no server header).
 */
#ifndef WD_ENGINE_HASHPOOL_H
#define WD_ENGINE_HASHPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/evops.h"
#include "store/passwd.h"

struct wd_hashpool_opts {
    unsigned threads;   /* default 2 */
    unsigned queue_max; /* checks accepted and not finished (queued or running); default 256 */
};

struct wd_hashpool;

/* A completion, on the submitting loop's thread: rc and match as the verify function
 * returned them, or rc WD_EBUSY (match false) for a check dropped by wd_hashpool_free()
 * before it started. */
typedef void (*wd_hashpool_cb)(void *ctx, int rc, bool match);

/* Starts the threads. WD_OK, WD_EINVAL (NULL out), or WD_EIO when no thread could start
 * (*out NULL). */
int wd_hashpool_new(const struct wd_hashpool_opts *opts, struct wd_hashpool **out);

/* Stops accepting, lets running checks finish (their completions are posted as usual),
 * posts WD_EBUSY for checks that never started, joins the threads, frees. The loops must
 * run (or outlive this call and run later) to deliver those completions. NULL is fine. */
void wd_hashpool_free(struct wd_hashpool *p);

/*
 * Submits wd_passwd_verify_spec(spec, pw, pwlen). ev is the submitting loop's (only
 * ev->post and ev->loop are used; copied). Returns WD_OK: cb(ctx, rc, match) runs exactly
 * once, on that loop, never inside this call; WD_EBUSY: queue full or shutting down, cb
 * never runs; WD_EINVAL: NULL arguments.
 */
int wd_hashpool_verify_spec(struct wd_hashpool *p, const struct wd_evops *ev,
                            const struct wd_passwd_spec *spec, const char *pw, size_t pwlen,
                            wd_hashpool_cb cb, void *ctx);

/* The same for a policy secret string (`bcrypt:$2b$...`, wd_passwd_verify()). */
int wd_hashpool_verify(struct wd_hashpool *p, const struct wd_evops *ev, const char *stored,
                       const char *pw, size_t pwlen, wd_hashpool_cb cb, void *ctx);

struct wd_hashpool_stats {
    uint64_t submitted, rejected, completed;
    unsigned queued, running;
};

/* Thread-safe snapshot. */
void wd_hashpool_stats(struct wd_hashpool *p, struct wd_hashpool_stats *out);

/* Tests only: while paused, the threads start no new check. */
void wd_hashpool__pause(struct wd_hashpool *p, bool paused);

#endif
