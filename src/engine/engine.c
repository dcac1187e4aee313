/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine.c: see engine.h.
 *
 * Swapping: `current` is protected by a mutex that only reloads and the (rare) refresh of
 * a worker's local reference take. `generation` is bumped after the swap; a worker whose
 * local generation differs takes the mutex once, gets a reference to the new policy and
 * drops its old one. The old policy is freed by whichever thread drops the last reference.
 */
#include "engine/engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "engine/backends.h"
#include "store/passwd.h"

const char wd_engine_embedded_policy[] =
    "# warden's embedded default policy, served when the configuration names no `policy`.\n"
    "# One demo user (password \"demo\"); every user gets its own subtree, nothing else.\n"
    "user \"demo\" \"sha256:warden-demo:"
    "44f3dd4642ca067bdff293d64c019364f50121992d7b98abec84b98ba8477685\"\n"
    "\n"
    "authn users\n"
    "authn default deny\n"
    "\n"
    "allow all \"users/${username}/#\"\n"
    "authz default deny\n";

struct wd_engine {
    char *path;
    struct wd_backends *backends;
    pthread_mutex_t reload_lock; /* one reload at a time (SIGHUP and the file watcher) */
    pthread_mutex_t lock;
    struct wd_policy *current;
    atomic_ulong generation;
};

struct wd_engine_local {
    struct wd_engine *e;
    struct wd_policy *p;
    unsigned long generation;
    bool needs_session; /* of p: it reads what authenticate learned */
    bool has_sources;
    struct wd_backends_local *bl;
};

/* Secrets are checked with the store's knowledge of password schemes, but reported by
 * the policy compiler with the user's position, in the same pass as everything else. */
static int check_secret(const char *secret, char *why, size_t cap)
{
    if (wd_passwd_check_format(secret, why, cap) != WD_OK)
        return -1;
    if (wd_passwd_is_plaintext(secret)) {
        snprintf(why, cap, "a plain: password; store a hash instead");
        return 1;
    }
    return 0;
}

int wd_engine_load_policy(const char *path, struct wd_policy **out, char **report)
{
    *out = NULL;
    *report = NULL;
    struct wd_diags d;
    struct wd_policy *p = NULL;
    char *src = NULL;
    int rc;
    if (path) {
        rc = wd_policy_load_file(path, &d, check_secret, &p, &src);
    } else {
        wd_diags_init(&d, "<embedded policy>", wd_engine_embedded_policy,
                      strlen(wd_engine_embedded_policy));
        rc = wd_policy_compile_ex(wd_engine_embedded_policy, strlen(wd_engine_embedded_policy), &d,
                                  check_secret, &p);
    }
    if (d.n || d.truncated)
        *report = wd_diags_render(&d);
    wd_diags_cleanup(&d);
    free(src);
    *out = p;
    return rc;
}

/* What the configured backends cannot provide for p, appended to *report (errors: the
 * return value counts them), and what is likely a mistake (warnings). */
static int check_backends(const struct wd_backends *b, const struct wd_policy *p, char **report)
{
    struct wd_buf errs = {0};
    int n = wd_backends_check_policy(b, p, &errs);
    if ((wd_policy_has_authn_step(p, WD_STEP_REDIS) || wd_policy_has_authn_step(p, WD_STEP_JWT)) &&
        !wd_policy_uses_superuser(p))
        wd_buf_puts(&errs, "warning: no rule tests `superuser`, so Redis is_superuser and the JWT "
                           "is_superuser claim grant nothing; for EMQX's behaviour put "
                           "`allow all [\"#\", \"$SYS/#\"] when superuser` first "
                           "(docs/sessions.md)\n");
    if (errs.len) {
        struct wd_buf all = {0};
        if (*report)
            wd_buf_puts(&all, *report);
        wd_buf_puts(&all, errs.s);
        free(*report);
        *report = all.s;
    }
    wd_buf_free(&errs);
    return n;
}

struct wd_engine *wd_engine_new(const struct wd_config *cfg, char **report)
{
    return wd_engine_new_clock(cfg, NULL, report);
}

struct wd_engine *wd_engine_new_clock(const struct wd_config *cfg, const struct wd_clock *clock,
                                      char **report)
{
    struct wd_policy *p;
    struct wd_backends *b;
    *report = NULL;
    if (wd_backends_new(cfg, clock, &b, report) != WD_OK)
        return NULL;
    if (wd_engine_load_policy(cfg->policy, &p, report) != WD_OK) {
        wd_backends_free(b);
        return NULL;
    }
    if (check_backends(b, p, report)) {
        wd_policy_release(p);
        wd_backends_free(b);
        return NULL;
    }
    struct wd_engine *e = wd_calloc(1, sizeof *e);
    e->path = cfg->policy ? wd_strdup(cfg->policy) : NULL;
    e->backends = b;
    pthread_mutex_init(&e->lock, NULL);
    pthread_mutex_init(&e->reload_lock, NULL);
    e->current = p;
    atomic_init(&e->generation, wd_policy_generation(p));
    return e;
}

void wd_engine_free(struct wd_engine *e)
{
    if (!e)
        return;
    wd_policy_release(e->current);
    wd_backends_free(e->backends);
    pthread_mutex_destroy(&e->lock);
    pthread_mutex_destroy(&e->reload_lock);
    free(e->path);
    free(e);
}

int wd_engine_reload(struct wd_engine *e, char **report)
{
    struct wd_policy *p;
    pthread_mutex_lock(&e->reload_lock);
    int rc = wd_engine_load_policy(e->path, &p, report);
    if (rc == WD_OK && check_backends(e->backends, p, report)) {
        wd_policy_release(p);
        rc = WD_EINVAL;
    }
    if (rc != WD_OK) {
        pthread_mutex_unlock(&e->reload_lock);
        return rc;
    }
    pthread_mutex_lock(&e->lock);
    struct wd_policy *old = e->current;
    e->current = p;
    atomic_store(&e->generation, wd_policy_generation(p));
    pthread_mutex_unlock(&e->lock);
    pthread_mutex_unlock(&e->reload_lock);
    wd_policy_release(old); /* freed now, or when the last worker lets go of it */
    return WD_OK;
}

const char *wd_engine_policy_path(const struct wd_engine *e)
{
    return e->path;
}

unsigned long wd_engine_generation(const struct wd_engine *e)
{
    return atomic_load(&((struct wd_engine *)e)->generation);
}

static void note_policy(struct wd_engine_local *l)
{
    const struct wd_policy *p = l->p;
    l->has_sources =
        wd_policy_has_source(p, WD_SOURCE_REDIS) || wd_policy_has_source(p, WD_SOURCE_JWT);
    /* a session is needed when something reads what authenticate learned: the JWT ACL,
     * claims, or the superuser flag, which only the step that authenticated a connection
     * can give (a static user's password, Redis, a JWT), never its username */
    l->needs_session = wd_policy_has_source(p, WD_SOURCE_JWT) || wd_policy_uses_claims(p) ||
                       wd_policy_uses_superuser(p);
}

struct wd_engine_local *wd_engine_local_new(struct wd_engine *e)
{
    return wd_engine_local_new_on(e, NULL);
}

struct wd_engine_local *wd_engine_local_new_on(struct wd_engine *e, const struct wd_evops *ev)
{
    struct wd_engine_local *l = wd_calloc(1, sizeof *l);
    l->e = e;
    pthread_mutex_lock(&e->lock);
    l->p = wd_policy_get(e->current);
    l->generation = wd_policy_generation(l->p);
    pthread_mutex_unlock(&e->lock);
    note_policy(l);
    l->bl = wd_backends_local_new(e->backends, ev);
    return l;
}

void wd_engine_local_free(struct wd_engine_local *l)
{
    if (!l)
        return;
    wd_policy_release(l->p);
    wd_backends_local_free(l->bl);
    free(l);
}

/* The policy this thread should use now. */
static const struct wd_policy *policy_of(struct wd_engine_local *l)
{
    unsigned long g = atomic_load_explicit(&l->e->generation, memory_order_acquire);
    if (g != l->generation) {
        pthread_mutex_lock(&l->e->lock);
        struct wd_policy *p = wd_policy_get(l->e->current);
        pthread_mutex_unlock(&l->e->lock);
        wd_policy_release(l->p);
        l->p = p;
        l->generation = wd_policy_generation(p);
        note_policy(l);
    }
    return l->p;
}

static void count(enum wd_decision d, enum wd_metric allow, enum wd_metric deny,
                  enum wd_metric nomatch)
{
    wd_metrics_inc(d == WD_DECISION_ALLOW ? allow : d == WD_DECISION_DENY ? deny : nomatch);
}

/* Runs the chain. bl may be NULL (tools): then `authn redis|jwt` steps never answer, except
 * the one a stand-in si (may be NULL) names, which allows as si says. On an
 * ALLOW, *src and *sr say what the session should remember. WD_EAGAIN: a step waits (w;
 * *out is meaningless). */
static int authn_run(const struct wd_policy *p, struct wd_backends_local *bl,
                     const struct wd_authn_standin *si, const struct wd_authn_req *req,
                     struct wd_waiter *w, struct wd_verdict *out, enum wd_session_source *src,
                     struct wd_step_result *sr)
{
    const struct wd_client *c = &req->client;
    bool anonymous = c->username[0] == '\0';
    out->generation = wd_policy_generation(p);
    out->step = "when";
    memset(sr, 0, sizeof *sr);
    *src = WD_SESSION_OTHER;
    for (size_t i = 0; i < wd_policy_nsteps(p); i++) {
        const struct wd_policy_step *s = wd_policy_step(p, i);
        out->line = s->line;
        int t = wd_policy_step_when(p, s, c);
        if (t < 0) {
            out->decision = WD_DECISION_DENY;
            out->reason = "condition could not be evaluated (regex limit): denied";
            return WD_EINVAL;
        }
        if (t == 0)
            continue;
        bool deny_only = t == WD_POLICY_WHEN_DENY_ONLY; /* unknown: only a refusal applies */
        switch (s->kind) {
        case WD_STEP_USERS: {
            if (anonymous)
                continue;
            const struct wd_policy_user *u = wd_policy_user_find(p, c->username);
            if (!u)
                continue;
            bool ok = false;
            int vr =
                bl ? wd_backends_check_static(bl, wd_policy_generation(p), c->username, u->secret,
                                              req->password, req->password_len, w, &ok)
                   : wd_passwd_verify(u->secret, req->password, req->password_len, &ok);
            if (vr == WD_EAGAIN)
                return WD_EAGAIN;
            out->step = "users";
            if (vr == WD_EBUSY) {
                out->decision = WD_DECISION_DENY;
                out->reason = "static user: password check refused (hash threads busy): denied";
                return WD_EBUSY;
            }
            if (vr != WD_OK) {
                out->decision = WD_DECISION_DENY; /* checked at load: not reached */
                out->reason = "stored secret unusable";
                return WD_EINVAL;
            }
            if (ok && deny_only)
                continue;
            out->decision = ok ? WD_DECISION_ALLOW : WD_DECISION_DENY;
            out->reason = ok ? "static user: password matches" : "static user: wrong password";
            out->step = "users";
            *src = WD_SESSION_STATIC;
            sr->superuser = ok && u->superuser;
            return WD_OK;
        }
        case WD_STEP_ANONYMOUS:
            if (!anonymous)
                continue;
            out->decision = s->decision;
            out->reason = "anonymous client";
            out->step = "anonymous";
            return WD_OK;
        case WD_STEP_DECIDE:
            out->decision = s->decision;
            out->reason = "authn step condition holds";
            return WD_OK;
        case WD_STEP_REDIS:
        case WD_STEP_JWT: {
            if (!bl && si && si->step == s->kind) {
                if (deny_only)
                    continue; /* the stand-in only ever admits */
                out->decision = WD_DECISION_ALLOW;
                out->reason = s->kind == WD_STEP_REDIS ? "redis: allowed (stated, no store)"
                                                       : "jwt: allowed (stated, no store)";
                out->step = s->kind == WD_STEP_REDIS ? "redis" : "jwt";
                *src = s->kind == WD_STEP_REDIS ? WD_SESSION_REDIS : WD_SESSION_JWT;
                sr->superuser = si->superuser;
                return WD_OK;
            }
            if (!bl)
                continue;
            int d = s->kind == WD_STEP_REDIS ? wd_backends_authn_redis(bl, req, w, sr)
                                             : wd_backends_authn_jwt(bl, req, sr);
            if (d == WD_EAGAIN)
                return WD_EAGAIN;
            if (!d)
                continue;
            if (deny_only && sr->decision == WD_DECISION_ALLOW) {
                wd_jwt_ident_release(sr->jwt);
                memset(sr, 0, sizeof *sr);
                continue;
            }
            out->decision = sr->decision;
            out->reason = sr->reason;
            out->step = s->kind == WD_STEP_REDIS ? "redis" : "jwt";
            *src = s->kind == WD_STEP_REDIS ? WD_SESSION_REDIS : WD_SESSION_JWT;
            return WD_OK;
        }
        case WD_STEP_DEFAULT:
            continue; /* handled below */
        }
    }
    out->decision = wd_policy_authn_default(p, &out->line);
    out->reason = "no authn step answered: authn default";
    out->step = "default";
    return WD_OK;
}

int wd_engine_authn_with(const struct wd_policy *p, const struct wd_authn_req *req,
                         const struct wd_authn_standin *si, struct wd_verdict *out, bool *superuser)
{
    enum wd_session_source src;
    struct wd_step_result sr;
    int rc = authn_run(p, NULL, si, req, NULL, out, &src, &sr);
    if (superuser)
        *superuser = out->decision == WD_DECISION_ALLOW && sr.superuser;
    return rc;
}

int wd_engine_authenticate(struct wd_engine_local *l, const struct wd_authn_req *req,
                           struct wd_verdict *out)
{
    return wd_engine_authenticate_w(l, req, NULL, out);
}

int wd_engine_authenticate_w(struct wd_engine_local *l, const struct wd_authn_req *req,
                             struct wd_waiter *w, struct wd_verdict *out)
{
    enum wd_session_source src;
    struct wd_step_result sr;
    const struct wd_policy *p = policy_of(l);
    int rc = authn_run(p, l->bl, NULL, req, w, out, &src, &sr);
    if (rc == WD_EAGAIN)
        return WD_EAGAIN;
    if (out->decision == WD_DECISION_ALLOW && l->needs_session)
        wd_backends_session_put(l->bl, req, src, &sr); /* takes sr.jwt */
    else
        wd_jwt_ident_release(sr.jwt);
    count(out->decision, WD_M_AUTHN_ALLOW, WD_M_AUTHN_DENY, WD_M_AUTHN_NOMATCH);
    return rc;
}

int wd_engine_authorize(struct wd_engine_local *l, const struct wd_authz_req *req,
                        struct wd_verdict *out)
{
    return wd_engine_authorize_w(l, req, NULL, out);
}

int wd_engine_authorize_w(struct wd_engine_local *l, const struct wd_authz_req *req,
                          struct wd_waiter *w, struct wd_verdict *out)
{
    const struct wd_policy *p = policy_of(l);
    struct wd_policy_result r;
    if (!l->needs_session && !l->has_sources) {
        wd_policy_authorize(p, req, &r); /* the static-policy fast path */
        out->reason = r.by_default ? "no rule matched: authz default" : "rule matched";
        out->step = r.by_default ? "default" : "rules";
    } else {
        struct wd_authz_req rq = *req;
        struct wd_session *s = NULL;
        if (l->needs_session) {
            if (wd_backends_session_get(l->bl, &req->client, w, &s) == WD_EAGAIN)
                return WD_EAGAIN;
            if (s) {
                rq.client.is_superuser = rq.client.is_superuser || wd_session_superuser(s);
                wd_session_bind_claims(s, &rq.client);
            }
        }
        struct wd_source_ctx sc = {
            .l = l->bl, .session = s, .reason = NULL, .step = NULL, .waiter = w};
        struct wd_policy_sources srcs = {.eval = wd_backends_source_eval, .ctx = &sc};
        wd_policy_authorize_src(p, &rq, &srcs, &r);
        wd_session_release(s);
        if (sc.waiting)
            return WD_EAGAIN;
        if (r.by_source && sc.reason)
            out->reason = sc.reason;
        else
            out->reason = r.by_default ? "no rule matched: authz default" : "rule matched";
        out->step = r.by_source && sc.step ? sc.step : r.by_default ? "default" : "rules";
    }
    if (r.bad_topic) {
        out->reason = "invalid topic name or filter";
        out->step = "topic";
    }
    out->decision = r.decision;
    out->line = r.line;
    out->generation = wd_policy_generation(p);
    count(out->decision, WD_M_AUTHZ_ALLOW, WD_M_AUTHZ_DENY, WD_M_AUTHZ_NOMATCH);
    return WD_OK;
}

void wd_engine_waiter_end(struct wd_waiter *w)
{
    if (w) {
        wd_backends_pending_end(w->pending);
        w->pending = NULL;
    }
}

unsigned wd_engine_local_waiting(const struct wd_engine_local *l)
{
    return wd_backends_local_hashing(l->bl);
}

void wd_engine_client_disconnected(struct wd_engine_local *l, const struct wd_client *c)
{
    wd_backends_session_drop(l->bl, c);
}

size_t wd_engine_flush(struct wd_engine *e, const char *user, size_t len)
{
    return user ? wd_backends_flush_user(e->backends, user, len)
                : wd_backends_flush_all(e->backends);
}

void wd_engine_stats(struct wd_engine *e, struct wd_buf *out)
{
    wd_buf_printf(out, "policy: %s generation %lu\n", e->path ? e->path : "<embedded>",
                  wd_engine_generation(e));
    wd_backends_stats(e->backends, out);
}

size_t wd_engine_metrics(struct wd_engine *e, struct wd_metrics_sample *s, size_t cap)
{
    size_t n = 0;
    if (cap > 0) {
        s[0] = (struct wd_metrics_sample){
            .family = "warden_policy_generation",
            .type = WD_METRICS_GAUGE,
            .help = "generation of the policy serving (+1 per successful reload)",
            .value = (double)wd_engine_generation(e),
        };
        n = 1;
    }
    return n + wd_backends_metrics(e->backends, s + n, cap - n);
}

size_t wd_engine_probe_sentinels(struct wd_engine *e)
{
    return wd_backends_probe_sentinels(e->backends);
}

bool wd_engine_ready(struct wd_engine *e, struct wd_buf *out)
{
    pthread_mutex_lock(&e->lock);
    struct wd_policy *p = wd_policy_get(e->current);
    pthread_mutex_unlock(&e->lock);
    wd_buf_printf(out, "policy: ok (%s, generation %lu)\n", e->path ? e->path : "<embedded>",
                  wd_policy_generation(p));
    bool redis =
        wd_policy_has_authn_step(p, WD_STEP_REDIS) || wd_policy_has_source(p, WD_SOURCE_REDIS);
    bool jwt = wd_policy_has_authn_step(p, WD_STEP_JWT) || wd_policy_has_source(p, WD_SOURCE_JWT);
    wd_policy_release(p);
    return wd_backends_ready(e->backends, redis, jwt, out);
}
