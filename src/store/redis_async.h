/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis_async.h: one non-blocking Redis connection per worker, driven by the worker's
 * event loop (the only user of hiredis' async API; redis.h is the blocking client).
 *
 * Requests from concurrent calls are pipelined on the one connection; replies come back
 * in order, each to its completion callback on the loop's thread. The lookups are the
 * blocking client's (HMGET for authentication, HGETALL for ACLs), sent as argv, with the
 * same reply checks and the same results (the reply parsing is shared, redis_int.h); any
 * other command (GET, SET, EVAL: the shared sessions) goes through
 * wd_redis_async_command() with its reply as plain data (struct wd_redis_raw).
 *
 * Failure behaviour (the blocking client's decisions, made without blocking):
 * - every request has a deadline: the command timeout, or the caller's earlier one. At the
 *   deadline the caller is answered WD_ETIMEDOUT; the reply, when it comes, is dropped;
 * - a watchdog frees the connection when its oldest request (answered or not) has waited
 *   longer than stall_ms for its reply: a frozen or hung Redis (hiredis 0.14 has no
 *   timeouts of its own) costs one reconnect, not a stuck pipeline. Connecting, AUTH and
 *   SELECT included, is bounded by the connect timeout;
 * - a failure (refused, reset, timed out connect, stalled, AUTH or SELECT refused) starts
 *   an exponential backoff (initial, doubling, capped, with up to a quarter of jitter)
 *   after which the client reconnects by itself, from a timer; while it runs, requests
 *   fail at once with WD_EBACKEND. The cap is short (500 ms by default: a retry holds no
 *   thread), so a server back from a long outage is used within 625 ms. The backoff resets only
 * after a reply. A connection that had answered and is then closed by the server (restart, idle
 * timeout) is reconnected at once;
 * - requests in flight when the server closes or resets the connection (EOF, ECONNRESET: a
 *   restart, CLIENT KILL, a failover behind a proxy) that got no reply are re-sent once, in
 *   their order, on the next connection, ahead of anything submitted after the loss: at once
 *   when the lost connection had answered, after the backoff otherwise, and again after each
 *   connect that fails before it is ready (a restarting server refuses), until their deadline
 *   (then WD_ETIMEDOUT). Lost a second time, or lost by a timeout, the watchdog, a connect
 *   timeout or a refused AUTH, a request fails (WD_EBACKEND). Every command given to this
 *   client must therefore be safe to run twice (lookups, GET, SET with a TTL, warden's
 *   compare-and-delete script). Counted in stats.retried and warden_redis_retried_total;
 * - over max_inflight requests on the connection (answered-but-unreplied ones count: they
 *   still hold their place in Redis' pipeline), a request fails at once with WD_EBUSY.
 * Error replies (WRONGTYPE, NOAUTH, LOADING, READONLY, BUSY ...) are failures of that
 * request (WD_EBACKEND), as in the blocking client.
 *
 * Addresses: hiredis resolves names with a blocking getaddrinfo inside its connect, which
 * must not run on a loop. wd_redis_async_new() (called at start, off the loops) resolves
 * `host` once to a numeric address; every connect after that uses the IP literal (a DNS
 * change needs a restart). Unix sockets are used as they are.
 *
 * Completions always run from the loop (an fd event, a timer, or wd_redis_async_free),
 * never from inside hiredis and never from inside a submit call, so a completion may
 * submit, cancel and even free the client. Threading: everything belongs to the loop's
 * thread. The process must ignore SIGPIPE (hiredis writes with write(2)).
 */
#ifndef WD_STORE_REDIS_ASYNC_H
#define WD_STORE_REDIS_ASYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/evops.h"
#include "store/redis.h"
#include "store/redis_acl.h"

/* The default cap of the reconnect backoff (the blocking client's is 5000 ms) */
#define WD_REDIS_ASYNC_BACKOFF_MAX_MS 500

struct wd_redis_async_opts {
    /* host, port, unix_path, username, password, database, connect_timeout_ms,
     * command_timeout_ms, backoff_initial_ms, backoff_max_ms: as the blocking client
     * (the same configuration directives, docs/configuration.md), same defaults, except
     * backoff_max_ms: WD_REDIS_ASYNC_BACKOFF_MAX_MS when 0 */
    struct wd_redis_opts conn;
    unsigned max_inflight; /* default 1024 requests on the connection */
    unsigned stall_ms;     /* watchdog; default 2 x command timeout */
    uint64_t seed;         /* jitter; 0: from the clock and the object's address */
};

struct wd_redis_async;

/* The outcome of one request, handed to its completion. */
struct wd_redis_async_result {
    /* WD_OK; WD_ENOENT (user lookup only: no password field, see user.has_fields);
     * WD_EBACKEND (connection lost or not up, error reply, unexpected reply, shutting
     * down); WD_ETIMEDOUT (the deadline passed first). */
    int rc;
    struct wd_redis_user user; /* user lookup: as wd_redis_user_get() fills it */
    struct wd_acl_entry *acl;  /* ACL lookup: as wd_redis_acl_get() */
    size_t nacl;
    struct wd_redis_raw raw; /* any command: as wd_redis_command() (rc too) */
    char err[128];           /* failure text for logs (never a key or a password); "" on success */
};

/* A completion. res is borrowed: the callee may move user.hash/salt or acl out (setting
 * the fields to NULL/0); whatever is left is released after the callback returns. */
typedef void (*wd_redis_async_cb)(void *ctx, struct wd_redis_async_result *res);

/* Creates the client and starts connecting (the first connect is already on the loop).
 * ev is copied; its loop must outlive the client. Returns WD_OK; WD_EINVAL for bad options
 * (as wd_redis_new) or a host that does not resolve (message in err, errcap may be 0).
 * Call off the loop or at start: resolving a host name blocks. */
int wd_redis_async_new(const struct wd_redis_async_opts *opts, const struct wd_evops *ev,
                       struct wd_redis_async **out, char *err, size_t errcap);

/* Frees the connection (from the loop's thread), answers every request still waiting
 * with WD_EBACKEND ("shutting down"), wipes the password, frees. Callers that went away
 * cancel first. From inside a completion the free is finished when it returns. NULL is
 * fine. */
void wd_redis_async_free(struct wd_redis_async *r);

/*
 * Submits `HMGET key password_hash password salt is_superuser` (key: keylen bytes,
 * copied). deadline is an absolute time on the loop's clock, 0 for the command timeout
 * (an earlier one than now + command timeout wins). Returns:
 *   WD_OK        cb(ctx, res) will run exactly once, on the loop, unless cancelled;
 *   WD_EBACKEND  not connected and backing off, or hiredis refused the command: answered
 *                on the spot, cb never runs;
 *   WD_EBUSY     max_inflight reached: cb never runs;
 *   WD_EINVAL    NULL client or cb, NULL key with a length.
 */
int wd_redis_async_user_get(struct wd_redis_async *r, const char *key, size_t keylen,
                            uint64_t deadline, wd_redis_async_cb cb, void *ctx);

/* Submits `HGETALL key`: the same contract. The reply is parsed with wd_redis_acl_parse();
 * skip(ud, ...) (may be NULL) is called for skipped entries while parsing, on the loop,
 * before the completion; it must not call into this client. */
int wd_redis_async_acl_get(struct wd_redis_async *r, const char *key, size_t keylen,
                           uint64_t deadline, wd_redis_acl_skip_fn skip, void *ud,
                           wd_redis_async_cb cb, void *ctx);

/* Submits any command (argv: argc elements of any bytes, copied now), the same contract;
 * the reply is delivered as wd_redis_command() returns it: res->rc WD_OK for any reply that
 * is not an error (nil included) with res->raw, WD_EBACKEND for an error reply (res->raw
 * type ERROR with its text: NOSCRIPT tells an EVALSHA to send EVAL) or a failure,
 * WD_ETOOBIG for a string reply over max_len (0: no limit; not copied). For GET, SET,
 * DEL, EVALSHA and the like; a command that answers an array gets WD_REDIS_RAW_OTHER. */
int wd_redis_async_command(struct wd_redis_async *r, int argc, const char **argv,
                           const size_t *lens, uint64_t deadline, size_t max_len,
                           wd_redis_async_cb cb, void *ctx);

/* Every request submitted with this ctx (a call that went away) is forgotten: its
 * completion never runs (its reply is dropped when it comes). Returns how many. */
size_t wd_redis_async_cancel(struct wd_redis_async *r, void *ctx);

struct wd_redis_async_stats {
    uint64_t submitted;        /* accepted by a submit */
    uint64_t replied;          /* completions with a reply (OK, ENOENT, or an error reply) */
    uint64_t failed;           /* completions without one: connection lost, shutting down */
    uint64_t timeouts;         /* completions at the deadline */
    uint64_t late;             /* replies dropped because the caller had been answered */
    uint64_t cancelled;        /* requests forgotten by wd_redis_async_cancel */
    uint64_t rejected_down;    /* submits refused: backing off or hiredis refused */
    uint64_t rejected_busy;    /* submits refused: max_inflight */
    uint64_t connects;         /* connections that became ready */
    uint64_t connect_failures; /* refused, connect timeout, AUTH/SELECT refused */
    uint64_t disconnects;      /* ready connections lost (server closed, error) */
    uint64_t stalls;           /* connections freed by the watchdog */
    uint64_t retried;          /* requests re-sent after the server closed their connection */
    uint64_t waited;           /* with Sentinel: submitted while no master was reachable,
                                * held (within the deadline) for the next connection */
    size_t inflight;           /* requests on the connection now (answered ones included) and
                                * waiting to be re-sent */
    bool ready;                /* connected, AUTH and SELECT done */
};

void wd_redis_async_stats(const struct wd_redis_async *r, struct wd_redis_async_stats *out);

/* Text of the last connection failure ("Connection refused", "stalled: no reply for 1000
 * ms", "AUTH: WRONGPASS ..."), never a password or key; "" when none. */
const char *wd_redis_async_last_error(const struct wd_redis_async *r);

#endif
