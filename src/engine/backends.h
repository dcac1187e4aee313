/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backends.h: the credential stores as the engine uses them (internal to src/engine/).
 *
 * The store modules (src/store/) know Redis, JWT, password hashes and the cache; this layer
 * knows what a policy step or splice point means and turns the stores' answers into
 * decisions, with the caching, single-flight, failure decisions and per-client sessions
 * described in docs/redis.md, docs/jwt.md, docs/cache.md and docs/sessions.md.
 *
 * Objects:
 *   struct wd_backends        shared by every worker: configuration, the JWT verifier (and
 *                             its JWKS refresher), the cache, the session table, the hash
 *                             threads.
 *   struct wd_backends_local  one per worker thread: its Redis connection.
 *   struct wd_pending         one per call that waits (core/evops.h struct wd_waiter): what
 *                             its waits learned, kept for the call's next run.
 *
 * Two ways to reach Redis and the slow hashes. A local made with an event loop (the h2
 * transport's workers) never blocks: a call that needs Redis or a bcrypt/argon2id/pbkdf2
 * check and has a waiter submits the work (the worker's one pipelined asynchronous Redis
 * connection, store/redis_async.h; the shared hash threads, engine/hashpool.h) and returns
 * WD_EAGAIN; the completion records the answer in the call's struct wd_pending (and the
 * cache), then resumes the call, whose next run finds it there. A local without a loop, or
 * a call without a waiter (tools, tests), uses the blocking Redis client and hashes on the
 * calling thread, as before. Both paths make the same decisions.
 *
 * Error policy: a backend failure (Redis down, slow, wrong type) answers with the configured
 * failure decision (`redis_on_error`, default deny) and is never cached; an invalid token
 * denies unless `jwt_on_invalid next`; anything that cannot be evaluated denies.
 */
#ifndef WD_ENGINE_BACKENDS_H
#define WD_ENGINE_BACKENDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/clock.h"
#include "core/evops.h"
#include "core/metrics.h"
#include "core/request.h"
#include "engine/jwtident.h"
#include "engine/sessions.h"
#include "policy/policy.h"

struct wd_backends;
struct wd_backends_local;
struct wd_jwt_ident;

/* Builds the backends the configuration describes (nothing is configured: an object that
 * reports Redis and JWT as unavailable). Returns WD_OK, or an error with *errors set
 * (malloc'd, one message per line). Connects to nothing that could make start-up fail
 * while a backend is briefly down: an unreachable Redis or JWKS URL is logged, not fatal.
 * clock (copied; NULL: wd_clock_real) is what the cache, the session table and a token's
 * expiry are measured on. */
int wd_backends_new(const struct wd_config *cfg, const struct wd_clock *clock,
                    struct wd_backends **out, char **errors);
void wd_backends_free(struct wd_backends *b);

/* Appends to errs (one line each) what the policy needs that the configuration does not
 * provide (`authn redis` without redis_host, ...). Returns the number of problems. */
int wd_backends_check_policy(const struct wd_backends *b, const struct wd_policy *p,
                             struct wd_buf *errs);

/* ev: the worker's event loop (copied), or NULL for the blocking clients. With a loop the
 * local opens its asynchronous Redis connection at once (resolving redis_host, which may
 * block: call it before the loop runs) and shares the process's hash threads (started by
 * the first such local). */
struct wd_backends_local *wd_backends_local_new(struct wd_backends *b, const struct wd_evops *ev);
/* Frees the local (on its loop's thread, or after that thread ended, before the loop is
 * freed): its Redis connection answers what is still waiting as failed. Call only once
 * wd_backends_local_hashing() is 0: a hash check in flight posts to the loop. */
void wd_backends_local_free(struct wd_backends_local *l);
/* Hash checks this local submitted whose completion has not run yet. */
unsigned wd_backends_local_hashing(const struct wd_backends_local *l);

/* Ends a waiting call (wd_waiter.pending; NULL is fine): its resume never runs again; its
 * work still in flight finishes and is dropped (the cache keeps what it learned). */
void wd_backends_pending_end(struct wd_pending *p);

/* One authentication step. Returns 1 when the step decided (*decision, *reason, and
 * *superuser for an ALLOW), 0 when the chain goes on, WD_EAGAIN when it waits (only with a
 * waiter w; see above). */
struct wd_step_result {
    enum wd_decision decision;
    const char *reason; /* static text */
    bool superuser;
    struct wd_jwt_ident *jwt; /* JWT steps on ALLOW: a reference for the session (or NULL) */
};
int wd_backends_authn_redis(struct wd_backends_local *l, const struct wd_authn_req *req,
                            struct wd_waiter *w, struct wd_step_result *out);
int wd_backends_authn_jwt(struct wd_backends_local *l, const struct wd_authn_req *req,
                          struct wd_step_result *out);

/* A static policy user's password check. bcrypt, pbkdf2 and argon2id verdicts go through
 * the cache (keyed by the policy generation, the user and the password) with
 * single-flight, so a reconnect storm costs one slow hash per user; the cheap digests are
 * computed every time. Returns WD_OK with *ok, WD_EAGAIN (waits: w given and the check
 * runs on the hash threads), or an error (an unusable secret, the hash threads full). */
int wd_backends_check_static(struct wd_backends_local *l, unsigned long generation,
                             const char *user, const char *secret, const char *pw, size_t pwlen,
                             struct wd_waiter *w, bool *ok);

/* ---- sessions (docs/sessions.md; the table is engine/sessions.h) ---- */

/* Records a session after an ALLOW (takes over the jwt reference in r). */
void wd_backends_session_put(struct wd_backends_local *l, const struct wd_authn_req *req,
                             enum wd_session_source src, const struct wd_step_result *r);
/* The session of the connection c is on: WD_OK with *out a reference (release it with
 * wd_session_release()) or NULL (none, expired, or another connection's). */
int wd_backends_session_get(struct wd_backends_local *l, const struct wd_client *c,
                            struct wd_waiter *w, struct wd_session **out);
/* Drops the client's session if it is the one this connection created (same peer). */
void wd_backends_session_drop(struct wd_backends_local *l, const struct wd_client *c);

/* ---- authorization sources ---- */

struct wd_source_ctx {
    struct wd_backends_local *l;
    const struct wd_session *session; /* may be NULL */
    const char *reason;               /* set by the source that decided */
    const char *step;                 /* "redis" or "jwt": the source that decided */
    struct wd_waiter *waiter;         /* may be NULL: block */
    bool waiting; /* a source waits: the result is meaningless, the call returns WD_EAGAIN */
};
/* The policy's wd_policy_sources.eval (ctx is a struct wd_source_ctx). A source that has to
 * wait sets ctx->waiting and answers DENY so that the evaluation stops there. */
int wd_backends_source_eval(void *ctx, enum wd_source src, const struct wd_authz_req *req,
                            struct wd_policy_result *out);

/* ---- operations ---- */

/* Admin flushes: every cached entry and session, or those of one user. Return how many
 * entries were dropped. */
size_t wd_backends_flush_all(struct wd_backends *b);
size_t wd_backends_flush_user(struct wd_backends *b, const char *user, size_t len);
/* Human-readable statistics (cache counters, sessions, Redis and JWT state). */
void wd_backends_stats(struct wd_backends *b, struct wd_buf *out);
/* Metrics snapshot (caches, sessions, hash threads, JWT key set) into s; returns how many
 * samples (at most cap). */
size_t wd_backends_metrics(struct wd_backends *b, struct wd_metrics_sample *s, size_t cap);
/* Readiness of the stores a policy needs (need_redis, need_jwt): one line per check into
 * out; false if one does not answer. Blocking (a Redis PING on the probe's own connection,
 * under a lock). */
bool wd_backends_ready(struct wd_backends *b, bool need_redis, bool need_jwt, struct wd_buf *out);
/* --check-config: every sentinel of redis_sentinel asked, a warning logged for each that does
 * not answer or does not know the master (wd_redis_sentinel_probe). Returns how many; 0
 * without Sentinel. Blocking. */
size_t wd_backends_probe_sentinels(struct wd_backends *b);

#endif
