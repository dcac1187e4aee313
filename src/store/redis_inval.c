/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis_inval.c: the invalidation subscriber (contract in redis_inval.h).
 *
 * A thread of its own with hiredis' blocking API, rather than one more connection on a
 * worker's loop: connecting resolves the host and AUTH/SELECT/CLIENT/SUBSCRIBE wait for
 * their replies, which would block a loop, and the work it does on a message (dropping
 * cache entries, a scan under each shard's lock) belongs to no worker in particular. The
 * thread sleeps in poll(2) on the socket and on a pipe that wd_redis_inval_stop() writes to,
 * so stopping never waits for Redis.
 *
 * A silent peer (a host gone without a FIN) is found by a keepalive: after a second with no
 * byte from Redis a PING is sent (allowed in RESP2 subscribed mode, answered ["pong", ""]),
 * and two more seconds without an answer count as a lost connection.
 */
#include "store/redis_inval.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/wd.h"
#include "core/clock.h"
#include "store/redis_int.h"
#include "store/redis_sentinel.h"

#define CHANNEL "__redis__:invalidate"
#define MAX_PREFIXES 8
#define IDLE_PING_MS 1000
#define PONG_WAIT_MS 2000

struct wd_redis_inval {
    struct wd_redis_opts o; /* resolved; strings owned below */
    char *host, *unix_path, *username, *password;
    char *prefix[MAX_PREFIXES];
    size_t nprefix;
    struct wd_redis_inval_ops ops;
    void *ctx;
    bool quiet;   /* a failure was logged: the next ones in a row are not */
    uint64_t gen; /* with Sentinel: the generation of the master this stream is armed on */
    int stop_pipe[2];
    pthread_t thread;
    atomic_uint_fast64_t arms, losses, messages, keys;
};

static char *dup_or_null(const char *s)
{
    return s ? wd_strdup(s) : NULL;
}

size_t wd_redis_inval_prefixes(const char **p, size_t n)
{
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == NULL || p[i][0] == '\0')
            return 0;
        bool covered = false;
        for (size_t j = 0; j < n && !covered; j++) {
            if (j == i || p[j] == NULL || p[j][0] == '\0')
                continue;
            size_t li = strlen(p[i]), lj = strlen(p[j]);
            /* p[j] starts p[i] and is shorter, or equal and earlier */
            if (lj <= li && memcmp(p[i], p[j], lj) == 0 && (lj < li || j < i))
                covered = true;
        }
        if (!covered)
            p[out++] = p[i];
    }
    return out;
}

/* true when the thread should stop (the pipe is readable) within ms. */
static bool wait_stop(struct wd_redis_inval *v, int ms)
{
    struct pollfd pf = {.fd = v->stop_pipe[0], .events = POLLIN};
    return poll(&pf, 1, ms) > 0;
}

/* Logs the first of consecutive failures. */
#define FAIL_LOG(v, ...)                                                                           \
    do {                                                                                           \
        if (!(v)->quiet)                                                                           \
            wd_log_warn("redis", __VA_ARGS__);                                                     \
        (v)->quiet = true;                                                                         \
    } while (0)

/* A set-up step that failed: logged with its reason (the error reply, or the connection's
 * error: a timeout, a reset) once per streak of failed attempts, like a failed connect, so
 * a wrong password or a missing permission is one line, not one per retry. */
static void setup_failed(struct wd_redis_inval *v, const redisContext *c, const redisReply *r,
                         const char *what)
{
    const char *why = r && r->type == REDIS_REPLY_ERROR && r->str ? r->str
                      : !r && c->err                              ? c->errstr
                                                                  : "unexpected reply";
    FAIL_LOG(v, "cache invalidation: %s failed: %.200s (retrying quietly)", what, why);
}

static bool reply_ok(struct wd_redis_inval *v, const redisContext *c, const redisReply *r,
                     const char *what)
{
    bool ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
    if (!ok)
        setup_failed(v, c, r, what);
    return ok;
}

/* Connects, sets up and subscribes. The context on success, NULL (logged) otherwise. */
static redisContext *arm(struct wd_redis_inval *v)
{
    struct timeval ctv = wd_redis__ms_tv(v->o.connect_timeout_ms);
    char maddr[64];
    int mport = 0;
    if (v->o.sentinel &&
        !wd_redis_sentinel_master(v->o.sentinel, maddr, sizeof maddr, &mport, &v->gen)) {
        FAIL_LOG(v, "cache invalidation: no Redis master known (Sentinel) (retrying quietly)");
        return NULL;
    }
    redisContext *c = v->o.sentinel    ? redisConnectWithTimeout(maddr, mport, ctv)
                      : v->o.unix_path ? redisConnectUnixWithTimeout(v->o.unix_path, ctv)
                                       : redisConnectWithTimeout(v->o.host, v->o.port, ctv);
    redisReply *r = NULL;
    if (!c || c->err) {
        FAIL_LOG(v, "cache invalidation: connect: %s (retrying quietly)",
                 c ? c->errstr : "no memory");
        goto fail;
    }
    if (redisSetTimeout(c, wd_redis__ms_tv(v->o.command_timeout_ms)) != REDIS_OK)
        goto fail;
    const char *argv[4 + 2 * MAX_PREFIXES];
    size_t lens[4 + 2 * MAX_PREFIXES];
    char buf[32];
    int argc = wd_redis__auth_argv(v->o.username, v->o.password, argv, lens);
    if (argc) {
        r = redisCommandArgv(c, argc, argv, lens);
        if (!reply_ok(v, c, r, "AUTH"))
            goto fail;
        freeReplyObject(r);
        r = NULL;
    }
    if (v->o.sentinel) { /* the Sentinel client guidelines: check ROLE on a new connection */
        char why[120];
        const char *rargv[1];
        size_t rlens[1];
        wd_redis__role_argv(rargv, rlens);
        r = redisCommandArgv(c, 1, rargv, rlens);
        if (!r || wd_redis__role_from_reply(r, why, sizeof why) != WD_OK) {
            FAIL_LOG(v, "cache invalidation: %s", r ? why : c->errstr);
            goto fail;
        }
        freeReplyObject(r);
        r = NULL;
    }
    /* no SELECT: invalidations are not per database, and this connection reads no key */
    r = redisCommand(c, "CLIENT ID");
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        setup_failed(v, c, r, "CLIENT ID");
        goto fail;
    }
    snprintf(buf, sizeof buf, "%lld", r->integer);
    freeReplyObject(r);
    argc = 0;
    argv[argc++] = "CLIENT";
    argv[argc++] = "TRACKING";
    argv[argc++] = "on";
    argv[argc++] = "REDIRECT";
    argv[argc++] = buf;
    argv[argc++] = "BCAST";
    for (size_t i = 0; i < v->nprefix; i++) {
        argv[argc++] = "PREFIX";
        argv[argc++] = v->prefix[i];
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    r = redisCommandArgv(c, argc, argv, lens);
    if (!reply_ok(v, c, r, "CLIENT TRACKING (Redis 6 or later is needed)"))
        goto fail;
    freeReplyObject(r);
    r = redisCommand(c, "SUBSCRIBE " CHANNEL);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        setup_failed(v, c, r, "SUBSCRIBE");
        goto fail;
    }
    freeReplyObject(r);
    return c;
fail:
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    if (v->o.sentinel)
        wd_redis_sentinel_suspect(v->o.sentinel);
    return NULL;
}

static bool is_str(const redisReply *r, const char *s)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

/* One pushed reply: an invalidation message, or the pong of our keepalive. */
static void on_push(struct wd_redis_inval *v, redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2)
        return;
    if (is_str(r->element[0], "pong"))
        return;
    if (r->elements != 3 || !is_str(r->element[0], "message"))
        return;
    redisReply *payload = r->element[2];
    atomic_fetch_add(&v->messages, 1);
    if (payload->type != REDIS_REPLY_ARRAY || payload->elements == 0) {
        v->ops.keys(v->ctx, NULL, NULL, 0); /* nil: the database was flushed */
        return;
    }
    size_t n = payload->elements;
    const char **keys = wd_calloc(n, sizeof *keys);
    size_t *lens = wd_calloc(n, sizeof *lens);
    size_t m = 0;
    bool odd = false;
    for (size_t i = 0; i < n; i++) {
        redisReply *k = payload->element[i];
        if (k->type != REDIS_REPLY_STRING) {
            odd = true;
            break;
        }
        keys[m] = k->str;
        lens[m++] = k->len;
    }
    atomic_fetch_add(&v->keys, m);
    if (odd)
        v->ops.keys(v->ctx, NULL, NULL, 0); /* cannot tell which: drop them all */
    else
        v->ops.keys(v->ctx, keys, lens, m);
    free(keys);
    free(lens);
}

/* Reads from c until it fails or stop is asked. Returns true when asked to stop. */
static bool serve(struct wd_redis_inval *v, redisContext *c)
{
    int64_t last_rx = wd_clock_mono_ms(&wd_clock_real), ping_at = 0;
    void *rep;
    /* what came in with the SUBSCRIBE reply is already in the reader: poll will not say */
    while (redisGetReplyFromReader(c, &rep) == REDIS_OK && rep) {
        on_push(v, rep);
        freeReplyObject(rep);
    }
    for (;;) {
        /* checked first: right after armed(), a move published meanwhile is caught at once */
        if (v->o.sentinel && wd_redis_sentinel_generation(v->o.sentinel) != v->gen) {
            wd_log_info("redis", "cache invalidation: the Redis master changed: subscribing on "
                                 "the new one");
            return false;
        }
        struct pollfd pf[2] = {{.fd = c->fd, .events = POLLIN},
                               {.fd = v->stop_pipe[0], .events = POLLIN}};
        int pr = poll(pf, 2, IDLE_PING_MS / 2);
        if (pr < 0 && errno != EINTR)
            return false;
        if (pf[1].revents)
            return true;
        int64_t now = wd_clock_mono_ms(&wd_clock_real);
        if (pr > 0 && pf[0].revents) {
            if (redisBufferRead(c) != REDIS_OK) {
                wd_log_warn("redis", "cache invalidation: connection lost: %s",
                            c->errstr[0] ? c->errstr : "closed");
                return false;
            }
            last_rx = now;
            ping_at = 0;
            while (redisGetReplyFromReader(c, &rep) == REDIS_OK && rep) {
                on_push(v, rep);
                freeReplyObject(rep);
            }
            if (c->err) {
                wd_log_warn("redis", "cache invalidation: unreadable reply: %s", c->errstr);
                return false;
            }
            continue;
        }
        if (ping_at && now - ping_at > PONG_WAIT_MS) {
            wd_log_warn("redis", "cache invalidation: no answer to PING in %d ms", PONG_WAIT_MS);
            return false;
        }
        if (!ping_at && now - last_rx >= IDLE_PING_MS) {
            int done = 0;
            if (redisAppendCommand(c, "PING") != REDIS_OK)
                return false;
            while (!done)
                if (redisBufferWrite(c, &done) != REDIS_OK)
                    return false;
            ping_at = now;
        }
    }
}

static void *run(void *arg)
{
    struct wd_redis_inval *v = arg;
    unsigned backoff = v->o.backoff_initial_ms;
    bool was_armed = false;
    v->ops.lost(v->ctx);
    for (;;) {
        redisContext *c = arm(v);
        if (c) {
            atomic_fetch_add(&v->arms, 1);
            if (was_armed)
                wd_log_info("redis", "cache invalidation: subscribed again");
            was_armed = true;
            v->quiet = false;
            backoff = v->o.backoff_initial_ms;
            v->ops.armed(v->ctx);
            bool stop = serve(v, c);
            /* first forget what the stream protected, then anything else */
            v->ops.lost(v->ctx);
            atomic_fetch_add(&v->losses, 1);
            redisFree(c);
            if (stop)
                return NULL;
            continue; /* a connection that worked: reconnect at once */
        }
        if (wait_stop(v, (int)backoff))
            return NULL;
        backoff = backoff * 2 > v->o.backoff_max_ms ? v->o.backoff_max_ms : backoff * 2;
    }
}

static void inval_free(struct wd_redis_inval *v)
{
    if (v->password) {
        explicit_bzero(v->password, strlen(v->password));
        free(v->password);
    }
    free(v->host);
    free(v->unix_path);
    free(v->username);
    for (size_t i = 0; i < v->nprefix; i++)
        free(v->prefix[i]);
    if (v->stop_pipe[0] >= 0)
        close(v->stop_pipe[0]);
    if (v->stop_pipe[1] >= 0)
        close(v->stop_pipe[1]);
    free(v);
}

int wd_redis_inval_start(const struct wd_redis_opts *conn, const char *const *prefixes,
                         size_t nprefixes, const struct wd_redis_inval_ops *ops, void *ctx,
                         struct wd_redis_inval **out)
{
    *out = NULL;
    struct wd_redis_opts o;
    if (!conn || !ops || !ops->lost || !ops->armed || !ops->keys || nprefixes > MAX_PREFIXES ||
        wd_redis__opts_resolve(conn, &o) != WD_OK)
        return WD_EINVAL;
    const char *p[MAX_PREFIXES] = {0};
    for (size_t i = 0; i < nprefixes; i++)
        p[i] = prefixes[i];
    size_t np = wd_redis_inval_prefixes(p, nprefixes);
    struct wd_redis_inval *v = wd_calloc(1, sizeof *v);
    v->stop_pipe[0] = v->stop_pipe[1] = -1;
    v->host = dup_or_null(o.host);
    v->unix_path = dup_or_null(o.unix_path);
    v->username = dup_or_null(o.username);
    v->password = dup_or_null(o.password);
    o.host = v->host;
    o.unix_path = v->unix_path;
    o.username = v->username;
    o.password = v->password;
    v->o = o;
    for (size_t i = 0; i < np; i++)
        v->prefix[v->nprefix++] = wd_strdup(p[i]);
    v->ops = *ops;
    v->ctx = ctx;
    if (pipe2(v->stop_pipe, O_CLOEXEC) != 0 || pthread_create(&v->thread, NULL, run, v) != 0) {
        inval_free(v);
        return WD_ENOMEM;
    }
    *out = v;
    return WD_OK;
}

void wd_redis_inval_stop(struct wd_redis_inval *v)
{
    if (!v)
        return;
    ssize_t w;
    do
        w = write(v->stop_pipe[1], "x", 1);
    while (w < 0 && errno == EINTR);
    pthread_join(v->thread, NULL);
    inval_free(v);
}

void wd_redis_inval_stats(struct wd_redis_inval *v, struct wd_redis_inval_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!v)
        return;
    out->arms = atomic_load(&v->arms);
    out->losses = atomic_load(&v->losses);
    out->messages = atomic_load(&v->messages);
    out->keys = atomic_load(&v->keys);
}
