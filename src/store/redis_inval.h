/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis_inval.h: the invalidation stream of Redis server-assisted client-side caching
 * (`cache_invalidation tracking`, docs/cache.md "Coherence with Redis"). One connection per
 * process, on a thread of its own, never on a worker's loop.
 *
 * The connection turns tracking on for itself in broadcasting mode and redirects the
 * invalidations to itself, then subscribes to them (RESP2, which hiredis 0.14 speaks):
 *   CLIENT TRACKING on REDIRECT <its own id> BCAST [PREFIX p ...]
 *   SUBSCRIBE __redis__:invalidate
 * In BCAST mode Redis announces every write to a key under the prefixes, whoever read it, so
 * the workers' data connections need no tracking of their own (and nothing to re-issue when
 * this connection is replaced).
 *
 * Callbacks run on this module's thread, one at a time:
 * - lost: the stream is not (or no longer) up; called before the first connect and after
 *   every failure (connect refused, AUTH refused, reset, killed, no answer to a keepalive
 *   PING), before anything else happens. Invalidations may have been missed from then on;
 * - armed: subscribed again: invalidations are delivered from now on;
 * - keys: these keys were written (or expired, or evicted); keys == NULL, n == 0: the whole
 *   database was flushed (FLUSHALL/FLUSHDB), or a message could not be read.
 * After a failure the thread reconnects with the configured backoff (redis_backoff_*).
 */
#ifndef WD_STORE_REDIS_INVAL_H
#define WD_STORE_REDIS_INVAL_H

#include <stddef.h>
#include <stdint.h>

#include "store/redis.h"

struct wd_redis_inval_ops {
    void (*lost)(void *ctx);
    void (*armed)(void *ctx);
    void (*keys)(void *ctx, const char *const *keys, const size_t *lens, size_t n);
};

struct wd_redis_inval;

/* Starts the thread. conn: as the blocking client (strings copied). prefixes: the key
 * prefixes to track (copied); none, or an empty one: every key. ops is copied; ctx is
 * borrowed until wd_redis_inval_stop(). WD_OK, WD_EINVAL (bad options, overlapping
 * prefixes: one may not start another), WD_ENOMEM (no thread). */
int wd_redis_inval_start(const struct wd_redis_opts *conn, const char *const *prefixes,
                         size_t nprefixes, const struct wd_redis_inval_ops *ops, void *ctx,
                         struct wd_redis_inval **out);

/* Stops the thread (no callback runs after it returns), closes the connection, frees.
 * NULL is fine. */
void wd_redis_inval_stop(struct wd_redis_inval *v);

struct wd_redis_inval_stats {
    uint64_t arms;     /* subscriptions that succeeded */
    uint64_t losses;   /* lost callbacks after an arm */
    uint64_t messages; /* invalidation messages */
    uint64_t keys;     /* keys named by them */
};
/* A snapshot (each field read atomically). */
void wd_redis_inval_stats(struct wd_redis_inval *v, struct wd_redis_inval_stats *out);

/* Reduces prefixes in place to a set Redis accepts (no prefix starting another: the shorter
 * one covers both; duplicates dropped). Returns the new count, 0 when an empty prefix (every
 * key) is among them. */
size_t wd_redis_inval_prefixes(const char **prefixes, size_t n);

#endif
