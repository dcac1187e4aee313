/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine.h: the decision seam. The server unpacks ExHook requests into the structs of
 * core/request.h (no protobuf or gRPC type crosses this line) and the engine answers
 * allow / deny / nomatch with a reason and the line of the policy that decided.
 *
 * The engine holds the current compiled policy. Reloading compiles the file off to the
 * side and swaps it in only if it compiled cleanly; a failed reload leaves the old policy
 * serving. Each worker thread evaluates through its own struct wd_engine_local, which
 * holds a reference to the policy it last saw and checks one atomic generation counter
 * per call: the common path takes no lock and writes no shared memory, and a reload
 * never leaves a request looking at a half-built or freed policy.
 *
 * Error policy, decided here and only here: an internal error on the auth path (a
 * condition that cannot be evaluated, an unusable stored secret) is a DENY, with the
 * error as the reason.
 */
#ifndef WD_ENGINE_H
#define WD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/evops.h"
#include "core/metrics.h"
#include "core/request.h"
#include "core/wd.h"
#include "policy/policy.h"

/* Why a decision was made: static text, safe to log, never a secret. */
struct wd_verdict {
    enum wd_decision decision;
    const char *reason;
    unsigned line;            /* policy line that decided; 0: implicit default */
    unsigned long generation; /* which policy answered */
    /* the step or source that answered, static: authn "users", "anonymous", "when",
     * "redis", "jwt", "default"; authz "rules", "redis", "jwt", "default", "topic" (an
     * invalid topic). For the decision log. */
    const char *step;
};

struct wd_engine;
struct wd_engine_local;

/* The policy warden serves when the configuration names none. */
extern const char wd_engine_embedded_policy[];

/* Loads and compiles a policy: `path`, or the embedded policy when path is NULL. Checks
 * what only the engine can (stored secrets) as part of the same diagnostics. Returns
 * WD_OK with *out set; otherwise an error code. *report is set (malloc'd) to the
 * rendered diagnostics (warnings included) whenever there are any, else NULL. */
int wd_engine_load_policy(const char *path, struct wd_policy **out, char **report);

/* Builds an engine serving cfg->policy (or the embedded policy). On error returns NULL
 * and sets *report. Warnings are in *report too on success (caller frees; may be NULL). */
struct wd_engine *wd_engine_new(const struct wd_config *cfg, char **report);
/* The same on the clocks of `clock` (core/clock.h, copied; NULL: the real ones): what the
 * cache's and the session table's TTLs run on and what a token's exp, nbf and iat are
 * compared with, so that tests expire entries without waiting. wd_engine_new passes NULL. */
struct wd_engine *wd_engine_new_clock(const struct wd_config *cfg, const struct wd_clock *clock,
                                      char **report);
void wd_engine_free(struct wd_engine *e);

/* Recompiles the policy file and swaps it in if it compiled cleanly. Returns WD_OK (new
 * policy serving) or an error (old policy still serving); *report as above. */
int wd_engine_reload(struct wd_engine *e, char **report);

/* The configured policy path, or NULL for the embedded policy. */
const char *wd_engine_policy_path(const struct wd_engine *e);
unsigned long wd_engine_generation(const struct wd_engine *e);

/* Per-thread evaluation handle. wd_engine_local_new: Redis and slow hashes block the
 * calling thread (tools, tests). wd_engine_local_new_on: for a worker that runs the event
 * loop ev (copied): its calls never block (see the _w functions); call it before the loop
 * runs (it resolves redis_host). */
struct wd_engine_local *wd_engine_local_new(struct wd_engine *e);
struct wd_engine_local *wd_engine_local_new_on(struct wd_engine *e, const struct wd_evops *ev);
/* Frees the handle. With a loop: only once wd_engine_local_waiting() is 0 (a hash check
 * still running posts its completion to the loop), on the loop's thread or after it ended
 * and before the loop is freed. */
void wd_engine_local_free(struct wd_engine_local *l);
/* Work this handle submitted whose completion has not run on its loop yet (hash checks;
 * Redis requests are answered by wd_engine_local_free itself). */
unsigned wd_engine_local_waiting(const struct wd_engine_local *l);

/* Both return WD_OK with *out set; on an internal error they still set *out (DENY) and
 * return the error code for the caller's logs. */
int wd_engine_authenticate(struct wd_engine_local *l, const struct wd_authn_req *req,
                           struct wd_verdict *out);
int wd_engine_authorize(struct wd_engine_local *l, const struct wd_authz_req *req,
                        struct wd_verdict *out);

/* The same, for a call that may wait (core/evops.h struct wd_waiter; w NULL: as above). On
 * a handle with a loop, a call that needs Redis or a slow hash not in the cache returns
 * WD_EAGAIN without blocking; w->resume runs later on the loop's thread and the caller
 * calls again with the same request and w. Whatever the outcome, the caller ends the call
 * with wd_engine_waiter_end(w) once it is answered or abandoned. The decisions are those of
 * the blocking calls (docs/internals.md "Calls that wait"). */
int wd_engine_authenticate_w(struct wd_engine_local *l, const struct wd_authn_req *req,
                             struct wd_waiter *w, struct wd_verdict *out);
int wd_engine_authorize_w(struct wd_engine_local *l, const struct wd_authz_req *req,
                          struct wd_waiter *w, struct wd_verdict *out);
/* The call is answered or its caller gone: resume never runs again (NULL is fine). */
void wd_engine_waiter_end(struct wd_waiter *w);

/* client.disconnected: drops the client's session if this connection created it. */
void wd_engine_client_disconnected(struct wd_engine_local *l, const struct wd_client *c);

/* Admin: drops cached credentials, ACLs, tokens and sessions: all (user NULL) or those of
 * one user (len bytes). Returns how many entries were dropped. */
size_t wd_engine_flush(struct wd_engine *e, const char *user, size_t len);
/* Metrics endpoint: snapshot samples of the engine's state (policy generation, caches,
 * sessions, hash threads, JWT key set) into s (cap entries). Returns how many. */
size_t wd_engine_metrics(struct wd_engine *e, struct wd_metrics_sample *s, size_t cap);

/* Readiness (/readyz): a policy is loaded and each store the current policy needs answers
 * now (Redis: a PING on a connection of the caller's, bounded by redis_timeout; a JWKS URL:
 * a key set fetched). One line per check is appended to out. Blocking: never call it on a
 * worker's loop. Thread-safe (the probe's connection is under a lock). */
bool wd_engine_ready(struct wd_engine *e, struct wd_buf *out);

/* --check-config: wd_backends_probe_sentinels (a warning per sentinel that does not answer or
 * does not know the master; how many). Blocking. */
size_t wd_engine_probe_sentinels(struct wd_engine *e);

/* Admin: human-readable state (policy, caches, sessions, backends) appended to out. */
void wd_engine_stats(struct wd_engine *e, struct wd_buf *out);

/* What a store said, for tools that run the chain without one (`warden test`, `explain`):
 * the `authn redis` or `authn jwt` step named by `step` answers ALLOW when it is reached
 * and its `when` holds, and the client is a superuser if `superuser` (Redis is_superuser,
 * the token's is_superuser claim). */
struct wd_authn_standin {
    enum wd_authn_step step; /* WD_STEP_REDIS or WD_STEP_JWT */
    bool superuser;
};

/* Runs the authentication chain of a given policy (tools use this without an engine: the
 * `authn redis` and `authn jwt` steps never answer there, except the one si names; si may
 * be NULL). *superuser (may be NULL) is set to whether the step that allowed the client
 * made it a superuser (a static superuser whose password matched, or si's): what a session
 * would record for authorize. out->step names that step ("users", "redis", "jwt", ...). */
int wd_engine_authn_with(const struct wd_policy *p, const struct wd_authn_req *req,
                         const struct wd_authn_standin *si, struct wd_verdict *out,
                         bool *superuser);

#endif
