/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backends.c: see backends.h. The store modules do the I/O and the cryptography; this file
 * decides what their answers mean for a policy step, what is cached and for how long, and
 * what a client's session remembers.
 *
 * Cache keys (docs/cache.md), every part length-prefixed and HMAC'd by the cache:
 *   credential verdict   (AUTHN_VERDICT, "redis", rendered key, password)
 *   Redis ACL, compiled  (REDIS_ACL, rendered key)
 *   verified JWT         (JWT_CLAIMS, key-set generation, token, username, clientid)
 *   session              (SESSION, clientid)            in the separate session table
 * Credential verdicts are cached whatever they are (allow with the superuser flag, deny,
 * no such user); deny and "no such user" with the shorter negative TTL. Backend failures
 * are never cached. A verified JWT is cached no longer than it is valid.
 *
 * Single-flight: concurrent misses on the same credential key (a reconnect storm of one
 * device fleet sharing a user) wait for the first one's answer instead of each running
 * bcrypt and a Redis round trip; see flight_begin().
 */
#include "engine/backends.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/clock.h"
#include "core/file.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/wd.h"
#include "engine/aclrules.h"
#include "engine/hashpool.h"
#include "engine/jwtident.h"
#include "engine/session_share.h"
#include "engine/sessions.h"
#include "store/cache.h"
#include "store/jwks_http.h"
#include "store/jwt.h"
#include "store/passwd.h"
#include "store/redis.h"
#include "store/redis_async.h"
#include "store/redis_inval.h"
#include "store/redis_sentinel.h"
#include "store/session_rec.h"

/* the JWT refusal counters follow enum wd_jwt_status (core/metrics.h) */
_Static_assert(WD_M_JWT_REFUSED_NO_KEYS - WD_M_JWT_REFUSED_TOO_BIG ==
                   WD_JWT_NO_KEYS - WD_JWT_TOO_BIG,
               "metrics.h JWT refusal reasons out of step with enum wd_jwt_status");
_Static_assert(WD_M_JWT_REFUSED_EXPIRED - WD_M_JWT_REFUSED_TOO_BIG ==
                   WD_JWT_EXPIRED - WD_JWT_TOO_BIG,
               "metrics.h JWT refusal reasons out of step with enum wd_jwt_status");

/* ---- single-flight ---- */

/* A call waiting on its loop for another caller's computation (an asynchronous follower). */
struct flight_waiter {
    struct wd_pending *p;
    struct flight_waiter *next;
};

struct flight {
    uint8_t d[WD_CACHE_DIGEST_LEN];
    struct flight *next;
    struct flight_waiter *waiters;
};

struct flights {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct flight *head;
};

/* true: the caller leads (computes, then calls flight_end). false: another thread was
 * computing the same key and has finished; the caller looks in the cache again. */
static bool flight_begin(struct flights *f, const uint8_t *d)
{
    bool waited = false;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        struct flight *x = f->head;
        while (x && memcmp(x->d, d, WD_CACHE_DIGEST_LEN) != 0)
            x = x->next;
        if (!x)
            break;
        waited = true;
        pthread_cond_wait(&f->cv, &f->mu);
    }
    if (!waited) {
        struct flight *n = wd_calloc(1, sizeof *n);
        memcpy(n->d, d, WD_CACHE_DIGEST_LEN);
        n->next = f->head;
        f->head = n;
    }
    pthread_mutex_unlock(&f->mu);
    if (waited)
        wd_metrics_inc(WD_M_AUTHN_COALESCED);
    return !waited;
}

/* The asynchronous flight_begin: never waits. true: the caller leads. false: another caller
 * computes the same key; p is queued and woken (flight_wake on its loop) when that ends. */
static bool flight_join(struct flights *f, const uint8_t *d, struct wd_pending *p)
{
    struct flight_waiter *w = wd_malloc(sizeof *w);
    bool lead;
    pthread_mutex_lock(&f->mu);
    struct flight *x = f->head;
    while (x && memcmp(x->d, d, WD_CACHE_DIGEST_LEN) != 0)
        x = x->next;
    lead = x == NULL;
    if (!lead) {
        w->p = p;
        w->next = x->waiters;
        x->waiters = w;
    } else {
        x = wd_calloc(1, sizeof *x);
        memcpy(x->d, d, WD_CACHE_DIGEST_LEN);
        x->next = f->head;
        f->head = x;
    }
    pthread_mutex_unlock(&f->mu);
    if (lead)
        free(w);
    else
        wd_metrics_inc(WD_M_AUTHN_COALESCED);
    return lead;
}

static void flight_wake_post(struct wd_pending *p);

static void flight_end(struct flights *f, const uint8_t *d)
{
    struct flight_waiter *ws = NULL;
    pthread_mutex_lock(&f->mu);
    for (struct flight **pp = &f->head; *pp; pp = &(*pp)->next) {
        if (memcmp((*pp)->d, d, WD_CACHE_DIGEST_LEN) == 0) {
            struct flight *x = *pp;
            *pp = x->next;
            ws = x->waiters;
            free(x);
            break;
        }
    }
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    while (ws) {
        struct flight_waiter *n = ws->next;
        flight_wake_post(ws->p);
        free(ws);
        ws = n;
    }
}

/* ---- the shared object ---- */

struct wd_backends {
    /* Redis */
    bool redis_on;
    struct wd_redis_opts ropts;
    char *rhost, *rsocket, *ruser, *rpass;
    struct wd_redis_tmpl *authn_key, *acl_key;
    struct wd_passwd_spec spec; /* algo, salt position, pbkdf2; hash and salt per user */
    bool redis_fail_next;
    /* redis_sentinel: the current master, shared by every client (ropts.sentinel) */
    struct wd_redis_sentinel *sentinel;
    /* the cache the invalidation stream protects, for the sentinel thread's `changed` (set
     * once by setup_tracking, read from that thread) */
    _Atomic(struct wd_cache *) track_cache;

    /* JWT */
    bool jwt_on;
    struct wd_jwt_verifier *verifier;
    struct wd_jwks_refresher *refresher;
    bool jwt_from_username;
    bool jwt_invalid_next;
    int64_t jwt_leeway_s;

    /* the cache's and the session table's clock, and the time a token is checked at */
    struct wd_clock clock;

    /* caches */
    struct wd_cache *cache; /* NULL: `cache off` */
    /* cache_invalidation tracking: entries derived from Redis carry their Redis key as their
     * origin; the subscriber (started by the first local with a loop) drops them */
    bool tracking;
    char *track_prefix[2];
    struct wd_redis_inval *inval;
    struct wd_sessions *sessions;
    struct wd_session_share *share; /* session_store redis; NULL: local only */
    int64_t cache_ttl_ms;
    struct flights flights;

    /* hash threads, started by the first local with a loop */
    pthread_mutex_t pool_mu;
    struct wd_hashpool *pool;
    unsigned hash_threads;

    /* the readiness probe's own blocking Redis connection (metrics endpoint's thread) */
    pthread_mutex_t probe_mu;
    struct wd_redis *probe;
};

struct wd_backends_local {
    struct wd_backends *b;
    struct wd_redis *redis; /* blocking client, created on first use */
    /* with a loop: */
    bool async;
    struct wd_evops ev;
    struct wd_redis_async *ra; /* NULL: Redis not configured, or its host did not resolve */
    unsigned hashing;          /* hash checks submitted, completion not yet run */
};

/* ---- calls that wait (backends.h) ---- */

enum { SLOT_NONE = 0, SLOT_WAITING, SLOT_DONE };

enum { V_ALLOW = 1, V_DENY, V_NOUSER };

/* A credential verdict, as cached. */
struct verdict {
    int v; /* V_ALLOW, V_DENY, V_NOUSER */
    bool superuser;
    const char *reason;
};

/* One credential verdict a call waits for, and where it is cached. */
struct vslot {
    int state;
    bool failed; /* done with a backend failure: decided by redis_on_error, never cached */
    struct verdict vd;
    bool leader; /* holds the flight of ck */
    bool has_ck;
    struct wd_cache_key ck; /* built in place: a cache key must not be copied */
    char *tag;              /* cache tag (the username) */
    unsigned long gen;      /* static users: the policy generation it was computed for */
    bool superuser;         /* Redis: the record's is_superuser, for the hash completion */
};

struct wd_pending {
    struct wd_backends_local *l;
    unsigned refs; /* the waiter's (until wd_backends_pending_end), one per completion due */
    bool ended;
    void (*resume)(void *ctx);
    void *ctx;
    char *pw;          /* the password, for a hash check after the lookup (wiped) */
    uint64_t redis_t0; /* when the user lookup was sent (ns, the Redis latency histogram) */
    size_t pwlen;
    struct vslot user;       /* authn redis */
    struct vslot stat;       /* a static user's slow hash */
    int acl_state;           /* rules redis */
    int acl_rc;              /* WD_OK or WD_EBACKEND once done */
    struct wd_policy *acl;   /* a reference, once done */
    int sess_state;          /* a shared session read from Redis (session_store redis) */
    struct wd_session *sess; /* a reference once done; NULL: none usable */
};

/* Backend failure warnings: the first at once, then at most one per interval with the
 * number suppressed meanwhile, so an outage under load does not flood the log. The state
 * is process-wide and so is its clock: the real one, never an engine's injected clock. */
#define WARN_INTERVAL_S 5
static atomic_llong g_warn_last;
static atomic_ulong g_warn_suppressed;

static bool warn_allowed(unsigned long *suppressed)
{
    int64_t now = wd_clock_unix_s(&wd_clock_real);
    long long last = atomic_load_explicit(&g_warn_last, memory_order_relaxed);
    if (now - last >= WARN_INTERVAL_S &&
        atomic_compare_exchange_strong(&g_warn_last, &last, (long long)now)) {
        *suppressed = atomic_exchange(&g_warn_suppressed, 0);
        return true;
    }
    atomic_fetch_add_explicit(&g_warn_suppressed, 1, memory_order_relaxed);
    return false;
}

static void backend_warn(const char *what, const char *err)
{
    unsigned long sup;
    if (warn_allowed(&sup))
        wd_log_warn("redis", "%s failed: %s (%lu similar failures in the last %ds not logged)",
                    what, err, sup, WARN_INTERVAL_S);
}

/* One configuration problem: a line in e, counted in *n. */
static void append_err(struct wd_buf *e, int *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append_err(struct wd_buf *e, int *n, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    wd_buf_puts(e, line);
    wd_buf_putc(e, '\n');
    (*n)++;
}

/* append_err for a directive's value: prefixed with the file:line that set it (or the flag),
 * as the configuration's own errors are, so an operator finds the line to fix. */
static void append_at(struct wd_buf *e, int *n, const struct wd_config *cfg, const char *directive,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void append_at(struct wd_buf *e, int *n, const struct wd_config *cfg, const char *directive,
                      const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    const char *at = wd_config_where(cfg, directive);
    if (at)
        append_err(e, n, "%s: %s", at, line);
    else
        append_err(e, n, "%s", line);
}

/* The configuration's choices (core) as the password module's enums (store). */
static enum wd_passwd_algo passwd_algo(enum wd_config_hash h)
{
    switch (h) {
    case WD_CONFIG_HASH_PLAIN:
        return WD_PASSWD_PLAIN;
    case WD_CONFIG_HASH_MD5:
        return WD_PASSWD_MD5;
    case WD_CONFIG_HASH_SHA1:
        return WD_PASSWD_SHA1;
    case WD_CONFIG_HASH_SHA256:
        return WD_PASSWD_SHA256;
    case WD_CONFIG_HASH_SHA512:
        return WD_PASSWD_SHA512;
    case WD_CONFIG_HASH_BCRYPT:
        return WD_PASSWD_BCRYPT;
    case WD_CONFIG_HASH_PBKDF2:
        return WD_PASSWD_PBKDF2;
    case WD_CONFIG_HASH_ARGON2ID:
        return WD_PASSWD_ARGON2ID;
    }
    return WD_PASSWD_SHA256;
}

static enum wd_passwd_salt_pos passwd_salt_pos(enum wd_config_salt s)
{
    return s == WD_CONFIG_SALT_SUFFIX    ? WD_PASSWD_SALT_SUFFIX
           : s == WD_CONFIG_SALT_DISABLE ? WD_PASSWD_SALT_DISABLE
                                         : WD_PASSWD_SALT_PREFIX;
}

static enum wd_passwd_mac passwd_mac(enum wd_config_mac m)
{
    switch (m) {
    case WD_CONFIG_MAC_SHA1:
        return WD_PASSWD_MAC_SHA1;
    case WD_CONFIG_MAC_SHA224:
        return WD_PASSWD_MAC_SHA224;
    case WD_CONFIG_MAC_SHA256:
        return WD_PASSWD_MAC_SHA256;
    case WD_CONFIG_MAC_SHA384:
        return WD_PASSWD_MAC_SHA384;
    case WD_CONFIG_MAC_SHA512:
        return WD_PASSWD_MAC_SHA512;
    }
    return WD_PASSWD_MAC_SHA256;
}

/* The sentinel thread, just before the master changes: what the invalidation stream of the
 * old master protected is dropped now, before a client reaches the new one (the stream
 * re-arms on the new master and resumes caching, redis_inval.c). */
static void on_master_changed(void *ctx)
{
    struct wd_backends *b = ctx;
    struct wd_cache *c = atomic_load(&b->track_cache);
    size_t n = c ? wd_cache_origins_suspend(c) : 0;
    if (n)
        wd_log_info("redis", "master change: %zu cached entries from Redis dropped", n);
}

/* redis_sentinel: finds the master now (a name no sentinel knows is refused here). */
static void setup_sentinel(struct wd_backends *b, const struct wd_config *cfg, struct wd_buf *e,
                           int *n)
{
    struct wd_redis_sentinel_opts so = {
        .addrs = (const char *const *)cfg->redis_sentinels,
        .naddrs = cfg->nredis_sentinels,
        .master_name = cfg->redis_sentinel_master,
        .username = cfg->redis_sentinel_username,
        .password = cfg->redis_sentinel_password,
        .data = b->ropts,
        .changed = on_master_changed,
        .ctx = b,
    };
    char err[256] = "";
    int rc = wd_redis_sentinel_start(&so, &b->sentinel, err, sizeof err);
    if (rc != WD_OK) {
        b->sentinel = NULL;
        append_at(e, n, cfg, "redis_sentinel_master", "redis_sentinel_master %s: %s",
                  cfg->redis_sentinel_master, err[0] ? err : "cannot start the Sentinel thread");
        return;
    }
    b->ropts.sentinel = b->sentinel;
}

static void setup_redis(struct wd_backends *b, const struct wd_config *cfg, struct wd_buf *e,
                        int *n)
{
    b->redis_on = cfg->redis_host || cfg->redis_socket || cfg->nredis_sentinels;
    b->redis_fail_next = cfg->redis_on_error == WD_CONFIG_FAIL_NEXT;
    char err[256];
    if (wd_redis_tmpl_compile(cfg->redis_authn_key, &b->authn_key, err, sizeof err) != WD_OK)
        append_at(e, n, cfg, "redis_authn_key", "redis_authn_key: %s", err);
    if (wd_redis_tmpl_compile(cfg->redis_acl_key, &b->acl_key, err, sizeof err) != WD_OK)
        append_at(e, n, cfg, "redis_acl_key", "redis_acl_key: %s", err);
    b->spec.algo = passwd_algo(cfg->redis_password_hash);
    b->spec.salt_pos = passwd_salt_pos(cfg->redis_salt_position);
    b->spec.pbkdf2.mac = passwd_mac(cfg->redis_pbkdf2_mac);
    b->spec.pbkdf2.iterations = (unsigned long)cfg->redis_pbkdf2_iterations;
    b->spec.pbkdf2.dk_length = (size_t)cfg->redis_pbkdf2_dk_length;
    /* EMQX 5.x compares plain passwords case-insensitively; that is its bug, not ours */
    b->spec.plain_case_sensitive = true;
    if (b->spec.algo == WD_PASSWD_PBKDF2 &&
        (unsigned long)cfg->redis_pbkdf2_iterations > WD_PASSWD_PBKDF2_WORK_MAX)
        append_at(e, n, cfg, "redis_pbkdf2_iterations",
                  "redis_pbkdf2_iterations: above the work limit");

    b->rhost = cfg->redis_host ? wd_strdup(cfg->redis_host) : NULL;
    b->rsocket = cfg->redis_socket ? wd_strdup(cfg->redis_socket) : NULL;
    b->ruser = cfg->redis_username ? wd_strdup(cfg->redis_username) : NULL;
    b->rpass = cfg->redis_password ? wd_strdup(cfg->redis_password) : NULL;
    b->ropts.host = b->rhost;
    b->ropts.port = cfg->redis_port;
    b->ropts.unix_path = b->rsocket;
    b->ropts.username = b->ruser;
    b->ropts.password = b->rpass;
    b->ropts.database = cfg->redis_database;
    b->ropts.connect_timeout_ms = (unsigned)cfg->redis_connect_timeout_ms;
    b->ropts.command_timeout_ms = (unsigned)cfg->redis_timeout_ms;
    if (cfg->redis_host && cfg->redis_socket)
        append_err(e, n, "redis_host and redis_socket are both set: choose one");
    if (cfg->redis_password && !b->redis_on)
        append_err(e, n,
                   "redis_password is set but none of redis_host, redis_socket, "
                   "redis_sentinel");
    if (cfg->nredis_sentinels && (cfg->redis_host || cfg->redis_socket))
        append_err(e, n, "redis_sentinel and redis_host/redis_socket are both set: choose one");
    if (cfg->nredis_sentinels && *n == 0)
        setup_sentinel(b, cfg, e, n);
    if (b->redis_on && *n == 0) {
        /* a start-up probe: an unreachable Redis is reported, never fatal */
        struct wd_redis *r;
        if (wd_redis_new(&b->ropts, &r) != WD_OK) {
            append_err(e, n, "redis: invalid connection settings");
        } else {
            /* what was reached: the socket, host:port, or the master Sentinel named (when
             * it named none, the Sentinel thread has already said why: not said twice) */
            char target[300], maddr[64];
            int mport = 0;
            bool known = !b->sentinel ||
                         wd_redis_sentinel_master(b->sentinel, maddr, sizeof maddr, &mport, NULL);
            if (b->rsocket)
                snprintf(target, sizeof target, "%s", b->rsocket);
            else if (b->sentinel && known)
                snprintf(target, sizeof target, "%s%s%s:%d (master '%s', from Sentinel)",
                         strchr(maddr, ':') ? "[" : "", maddr, strchr(maddr, ':') ? "]" : "", mport,
                         cfg->redis_sentinel_master);
            else
                snprintf(target, sizeof target, "%s:%d", b->rhost ? b->rhost : "?", b->ropts.port);
            if (wd_redis_connect(r) != WD_OK) {
                if (known)
                    wd_log_warn("redis",
                                "cannot reach %s now (%s); requests that need Redis get "
                                "redis_on_error (%s) until it answers",
                                target, wd_redis_last_error(r),
                                wd_config_choice_name("redis_on_error", (int)cfg->redis_on_error));
            } else {
                wd_log_info("redis", "connected to %s", target);
            }
            wd_redis_free(r);
        }
    }
}

static void setup_jwt(struct wd_backends *b, const struct wd_config *cfg, struct wd_buf *e, int *n)
{
    int sources = (cfg->jwt_secret != NULL) + (cfg->jwt_public_key != NULL) +
                  (cfg->jwt_jwks_file != NULL) + (cfg->jwt_jwks_url != NULL);
    b->jwt_from_username = cfg->jwt_from == WD_CONFIG_TOKEN_USERNAME;
    b->jwt_invalid_next = cfg->jwt_on_invalid == WD_CONFIG_FAIL_NEXT;
    b->jwt_leeway_s = cfg->jwt_leeway_ms / 1000;
    if (sources == 0) {
        if (cfg->jwt_jwks_ca)
            append_err(e, n, "jwt_jwks_ca is set but jwt_jwks_url is not");
        return;
    }
    if (sources > 1) {
        append_err(e, n,
                   "set exactly one JWT key source: jwt_secret, jwt_public_key, jwt_jwks_file or "
                   "jwt_jwks_url");
        return;
    }
    char err[512] = "";
    struct wd_jwt_keyset *ks = NULL;
    if (cfg->jwt_secret) {
        if (wd_jwt_keyset_from_secret(cfg->jwt_secret, strlen(cfg->jwt_secret),
                                      cfg->jwt_secret_base64, &ks, err, sizeof err) != WD_OK)
            append_at(e, n, cfg, "jwt_secret", "jwt_secret: %s", err);
        else if (!cfg->jwt_secret_base64 && strlen(cfg->jwt_secret) < 32)
            /* RFC 7518 3.2: an HS256 key must be at least 256 bits; EMQX accepts any */
            wd_log_warn("jwt",
                        "jwt_secret is %zu bytes: shorter than the 32 RFC 7518 requires for "
                        "HS256, it can be brute-forced from one token",
                        strlen(cfg->jwt_secret));
    } else if (cfg->jwt_public_key) {
        size_t len;
        char *pem;
        if (wd_file_read(cfg->jwt_public_key, 64 * 1024, &pem, &len, err, sizeof err) != WD_OK) {
            append_at(e, n, cfg, "jwt_public_key", "jwt_public_key %s", err);
        } else {
            if (wd_jwt_keyset_from_pem(pem, len, &ks, err, sizeof err) != WD_OK)
                append_at(e, n, cfg, "jwt_public_key", "jwt_public_key %s: %s", cfg->jwt_public_key,
                          err);
            free(pem);
        }
    } else if (cfg->jwt_jwks_file) {
        err[0] = '\0';
        if (wd_jwt_keyset_load_jwks_file(cfg->jwt_jwks_file, &ks, err, sizeof err) != WD_OK)
            append_at(e, n, cfg, "jwt_jwks_file", "jwt_jwks_file %s: %s", cfg->jwt_jwks_file, err);
        else if (err[0])
            wd_log_warn("jwt", "%s: %s", cfg->jwt_jwks_file, err);
    }
    if (cfg->jwt_jwks_ca && !cfg->jwt_jwks_url)
        append_err(e, n, "jwt_jwks_ca is set but jwt_jwks_url is not");
    if (!ks && !cfg->jwt_jwks_url)
        return;

    size_t nclaims = cfg->njwt_verify_claims / 2;
    struct wd_jwt_claim_check *checks = wd_calloc(nclaims ? nclaims : 1, sizeof *checks);
    for (size_t i = 0; i < nclaims; i++) {
        checks[i].name = cfg->jwt_verify_claims[2 * i];
        checks[i].tmpl = cfg->jwt_verify_claims[2 * i + 1];
    }
    struct wd_jwt_config jc = {
        .leeway = cfg->jwt_leeway_ms / 1000,
        .check_iat = cfg->jwt_check_iat,
        .iss = cfg->jwt_iss,
        .aud = cfg->jwt_aud,
        .verify_claims = checks,
        .n_verify_claims = nclaims,
        .max_token_len = (size_t)cfg->jwt_max_token_len,
        .acl_claim = cfg->jwt_acl_claim,
    };
    if (wd_jwt_verifier_new(&jc, ks, &b->verifier, err, sizeof err) != WD_OK)
        append_err(e, n, "jwt: %s", err);
    free(checks);
    wd_jwt_keyset_release(ks);
    if (!b->verifier)
        return;
    if (cfg->jwt_jwks_url) {
        struct wd_jwks_http_opts ho = {
            .url = cfg->jwt_jwks_url,
            .ca_file = cfg->jwt_jwks_ca,
            .refresh_ms = (unsigned)cfg->jwt_jwks_refresh_ms,
        };
        if (wd_jwks_refresher_start(&ho, b->verifier, &b->refresher, err, sizeof err) != WD_OK)
            append_at(e, n, cfg, "jwt_jwks_url", "jwt_jwks_url: %s", err);
    }
    b->jwt_on = true;
}

/* ---- cache_invalidation tracking (docs/cache.md "Coherence with Redis") ---- */

static void setup_tracking(struct wd_backends *b, const struct wd_config *cfg, struct wd_buf *e,
                           int *n)
{
    if (cfg->cache_invalidation == WD_CONFIG_CACHE_INVAL_TRACKING && !b->redis_on) {
        append_err(e, n,
                   "cache_invalidation tracking: set redis_host, redis_socket or "
                   "redis_sentinel");
        return;
    }
    if (cfg->cache_invalidation == WD_CONFIG_CACHE_INVAL_OFF || !b->redis_on || !b->cache)
        return;
    b->tracking = true;
    /* the fixed heads of the key templates: every key a template renders starts with one */
    const char *t[2] = {cfg->redis_authn_key, cfg->redis_acl_key};
    for (int i = 0; i < 2; i++)
        b->track_prefix[i] = wd_strndup(t[i], wd_redis_tmpl_head(t[i]));
    /* nothing derived from Redis is cached until the subscriber is up */
    wd_cache_origins_suspend(b->cache);
    atomic_store(&b->track_cache, b->cache);
}

static void on_inval_lost(void *ctx)
{
    struct wd_backends *b = ctx;
    size_t n = wd_cache_origins_suspend(b->cache);
    if (n)
        wd_log_info("redis", "cache invalidation down: %zu cached entries dropped", n);
}

static void on_inval_armed(void *ctx)
{
    struct wd_backends *b = ctx;
    wd_cache_origins_resume(b->cache);
}

static void on_inval_keys(void *ctx, const char *const *keys, const size_t *lens, size_t n)
{
    struct wd_backends *b = ctx;
    if (n == 0)
        wd_cache_flush_origins(b->cache);
    for (size_t i = 0; i < n; i++)
        wd_cache_flush_origin(b->cache, keys[i], lens[i]);
}

/* Starts the subscriber once, with the first local (a server's worker, or a caller of the
 * blocking path): `warden test` and `explain`, which make none, never connect. */
static void tracking_start(struct wd_backends *b)
{
    pthread_mutex_lock(&b->pool_mu);
    if (b->tracking && !b->inval) {
        static const struct wd_redis_inval_ops ops = {on_inval_lost, on_inval_armed, on_inval_keys};
        const char *p[2] = {b->track_prefix[0], b->track_prefix[1]};
        if (wd_redis_inval_start(&b->ropts, p, 2, &ops, b, &b->inval) != WD_OK) {
            b->inval = NULL;
            wd_log_error("redis", "cannot start the cache invalidation thread: answers from "
                                  "Redis are not cached");
        }
    }
    pthread_mutex_unlock(&b->pool_mu);
}

/* Marks ck as derived from the Redis key `key` (before the key is read). */
static void track_origin(struct wd_backends *b, struct wd_cache_key *ck, const char *key,
                         size_t keylen)
{
    if (b->tracking)
        wd_cache_key_origin(b->cache, ck, key, keylen);
}

/* LRU order and the limits hold per shard: keep shards big enough (>= 4096 entries) that
 * a small configured limit still evicts the least recently used of the whole table. */
static unsigned shards_for(size_t entries)
{
    unsigned n = 16;
    while (n > 1 && entries / n < 4096)
        n /= 2;
    return n;
}

int wd_backends_new(const struct wd_config *cfg, const struct wd_clock *clock,
                    struct wd_backends **out, char **errors)
{
    *out = NULL;
    *errors = NULL;
    struct wd_backends *b = wd_calloc(1, sizeof *b);
    b->clock = *wd_clock_or_real(clock);
    pthread_mutex_init(&b->flights.mu, NULL);
    pthread_cond_init(&b->flights.cv, NULL);
    pthread_mutex_init(&b->pool_mu, NULL);
    pthread_mutex_init(&b->probe_mu, NULL);
    b->hash_threads = cfg->hash_threads > 0 ? (unsigned)cfg->hash_threads : 2;
    struct wd_buf e = {0};
    int n = 0;
    setup_redis(b, cfg, &e, &n);
    setup_jwt(b, cfg, &e, &n);

    b->cache_ttl_ms = cfg->cache_ttl_ms;
    if (cfg->cache) {
        struct wd_cache_config cc = {
            .shards = shards_for((size_t)cfg->cache_entries),
            .max_entries = (size_t)cfg->cache_entries,
            .max_bytes = (size_t)cfg->cache_memory,
            .ttl_ms = cfg->cache_ttl_ms,
            .negative_ttl_ms = cfg->cache_negative_ttl_ms,
            .clock = &b->clock,
        };
        b->cache = wd_cache_new(&cc);
        if (!b->cache)
            append_err(&e, &n,
                       "cache: invalid settings (cache_entries at least 16, "
                       "cache_memory at least 64KiB)");
    }
    setup_tracking(b, cfg, &e, &n);
    struct wd_sessions_config sc = {
        .max_entries = (size_t)cfg->session_max,
        .max_bytes = (size_t)cfg->session_memory,
        .ttl_ms = cfg->session_ttl_ms,
        .leeway_s = cfg->jwt_leeway_ms / 1000,
        .miss_ttl_ms = WD_SESSION_SHARE_MISS_TTL_MS,
        .clock = &b->clock,
    };
    wd_session_share_new(cfg, b->redis_on, &b->share, &e, &n);
    b->sessions = wd_sessions_new(&sc);
    if (!b->sessions)
        append_err(&e, &n,
                   "sessions: invalid settings (session_max at least 16, "
                   "session_memory at least 64KiB)");
    if (n) {
        *errors = e.s;
        wd_backends_free(b);
        return WD_EINVAL;
    }
    wd_buf_free(&e);
    *out = b;
    return WD_OK;
}

void wd_backends_free(struct wd_backends *b)
{
    if (!b)
        return;
    wd_hashpool_free(b->pool);     /* every local is gone: no completion is due to a loop */
    wd_redis_inval_stop(b->inval); /* before the cache its callbacks use */
    free(b->track_prefix[0]);
    free(b->track_prefix[1]);
    pthread_mutex_destroy(&b->pool_mu);
    wd_redis_free(b->probe);
    pthread_mutex_destroy(&b->probe_mu);
    wd_redis_sentinel_stop(b->sentinel); /* after every client that reads it */
    wd_jwks_refresher_stop(b->refresher);
    wd_jwt_verifier_free(b->verifier);
    wd_sessions_free(b->sessions);
    wd_session_share_free(b->share);
    wd_cache_free(b->cache);
    wd_redis_tmpl_free(b->authn_key);
    wd_redis_tmpl_free(b->acl_key);
    if (b->rpass) {
        explicit_bzero(b->rpass, strlen(b->rpass));
        free(b->rpass);
    }
    free(b->rhost);
    free(b->rsocket);
    free(b->ruser);
    pthread_mutex_destroy(&b->flights.mu);
    pthread_cond_destroy(&b->flights.cv);
    free(b);
}

int wd_backends_check_policy(const struct wd_backends *b, const struct wd_policy *p,
                             struct wd_buf *errs)
{
    int n = 0;
    bool need_redis =
        wd_policy_has_authn_step(p, WD_STEP_REDIS) || wd_policy_has_source(p, WD_SOURCE_REDIS);
    bool need_jwt =
        wd_policy_has_authn_step(p, WD_STEP_JWT) || wd_policy_has_source(p, WD_SOURCE_JWT);
    if (need_redis && !b->redis_on) {
        wd_buf_puts(errs, "error: the policy uses Redis (authn redis / rules redis) but the "
                          "configuration sets none of redis_host, redis_socket, redis_sentinel\n");
        n++;
    }
    if (need_jwt && !b->jwt_on) {
        wd_buf_puts(errs, "error: the policy uses JWT (authn jwt / rules jwt) but the "
                          "configuration sets no key (jwt_secret, jwt_public_key, jwt_jwks_file "
                          "or jwt_jwks_url)\n");
        n++;
    }
    return n;
}

struct wd_backends_local *wd_backends_local_new(struct wd_backends *b, const struct wd_evops *ev)
{
    struct wd_backends_local *l = wd_calloc(1, sizeof *l);
    l->b = b;
    tracking_start(b);
    if (!ev)
        return l;
    l->async = true;
    l->ev = *ev;
    pthread_mutex_lock(&b->pool_mu);
    if (!b->pool) {
        struct wd_hashpool_opts o = {.threads = b->hash_threads};
        if (wd_hashpool_new(&o, &b->pool) != WD_OK)
            wd_log_error("backends", "cannot start the hash threads: slow password hashes "
                                     "are refused (denied)");
    }
    pthread_mutex_unlock(&b->pool_mu);
    if (b->redis_on) {
        struct wd_redis_async_opts o = {.conn = b->ropts};
        char err[256] = "";
        if (wd_redis_async_new(&o, &l->ev, &l->ra, err, sizeof err) != WD_OK) {
            l->ra = NULL;
            wd_log_error("redis", "%s: Redis lookups fail (redis_on_error) until a restart", err);
        }
    }
    return l;
}

void wd_backends_local_free(struct wd_backends_local *l)
{
    if (!l)
        return;
    wd_redis_async_free(l->ra);
    wd_redis_free(l->redis);
    free(l);
}

unsigned wd_backends_local_hashing(const struct wd_backends_local *l)
{
    return l ? l->hashing : 0;
}

static struct wd_redis *redis_of(struct wd_backends_local *l)
{
    if (!l->redis && wd_redis_new(&l->b->ropts, &l->redis) != WD_OK)
        l->redis = NULL;
    return l->redis;
}

/* ---- calls that wait ---- */

static bool slow_secret(const char *secret)
{
    return strncmp(secret, "bcrypt:", 7) == 0 || strncmp(secret, "pbkdf2:", 7) == 0 ||
           strncmp(secret, "argon2id:", 9) == 0;
}

static bool slow_algo(enum wd_passwd_algo a)
{
    return a == WD_PASSWD_BCRYPT || a == WD_PASSWD_PBKDF2 || a == WD_PASSWD_ARGON2ID;
}

/* The call's pending state, made at its first wait. */
static struct wd_pending *pending_of(struct wd_backends_local *l, struct wd_waiter *w)
{
    if (!w->pending) {
        struct wd_pending *p = wd_calloc(1, sizeof *p);
        p->l = l;
        p->refs = 1;
        p->resume = w->resume;
        p->ctx = w->ctx;
        w->pending = p;
    }
    return w->pending;
}

static void slot_cleanup(struct wd_backends *b, struct vslot *s)
{
    if (s->leader) /* never computed (the call ended first): let a follower lead */
        flight_end(&b->flights, s->ck.digest);
    s->leader = false;
    if (s->has_ck)
        wd_cache_key_cleanup(&s->ck);
    s->has_ck = false;
    free(s->tag);
    s->tag = NULL;
}

static void pending_unref(struct wd_pending *p)
{
    if (--p->refs)
        return;
    struct wd_backends *b = p->l->b;
    slot_cleanup(b, &p->user);
    slot_cleanup(b, &p->stat);
    wd_policy_release(p->acl);
    wd_session_release(p->sess);
    if (p->pw) {
        explicit_bzero(p->pw, p->pwlen);
        free(p->pw);
    }
    free(p);
}

void wd_backends_pending_end(struct wd_pending *p)
{
    if (!p)
        return;
    p->ended = true;
    pending_unref(p);
}

/* A wait is over: the call runs again (unless it ended). The caller holds a reference. */
static void pending_resume(struct wd_pending *p)
{
    if (!p->ended)
        p->resume(p->ctx);
}

static void flight_wake(void *arg)
{
    struct wd_pending *p = arg;
    pending_resume(p);
    pending_unref(p);
}

/* From any thread: p waited on another caller's flight, which ended. */
static void flight_wake_post(struct wd_pending *p)
{
    p->l->ev.post(p->l->ev.loop, flight_wake, p);
}

/* Keeps the password for a check that runs after the lookup. */
static void pending_keep_pw(struct wd_pending *p, const char *pw, size_t pwlen)
{
    if (p->pw)
        return;
    p->pw = wd_malloc(pwlen + 1);
    if (pwlen)
        memcpy(p->pw, pw, pwlen);
    p->pw[pwlen] = '\0';
    p->pwlen = pwlen;
}

static void free_plain(void *p)
{
    free(p);
}

/* The slot's verdict is known: cache it (not a failure), end its flight, resume the call.
 * The caller holds a reference to p. */
static void slot_done(struct wd_pending *p, struct vslot *s, const struct verdict *vd)
{
    struct wd_backends *b = p->l->b;
    s->state = SLOT_DONE;
    s->failed = vd == NULL;
    if (vd)
        s->vd = *vd;
    if (vd && b->cache && s->has_ck) {
        struct verdict *cv = wd_malloc(sizeof *cv);
        *cv = *vd;
        const char *tag = s->tag ? s->tag : "";
        if (wd_cache_put(b->cache, &s->ck, cv, sizeof *cv, vd->v != V_ALLOW, 0, free_plain, tag,
                         strlen(tag), NULL) != WD_OK)
            free(cv);
    }
    if (s->leader) {
        s->leader = false;
        flight_end(&b->flights, s->ck.digest);
    }
    pending_resume(p);
}

/* Looks ck up in the cache. NULL-cache safe. */
static bool cache_verdict(struct wd_backends *b, struct wd_cache_key *ck, struct verdict *vd)
{
    if (!b->cache)
        return false;
    void *v;
    struct wd_cache_ref *ref = wd_cache_get(b->cache, ck, &v, NULL);
    if (!ref)
        return false;
    *vd = *(struct verdict *)v;
    wd_cache_release(ref);
    wd_metrics_inc(WD_M_AUTHN_CACHE_HITS);
    return true;
}

/* Starts a slot's wait: the answer may be cached (true: *vd set), another caller may be
 * computing it (p joins that flight: the slot stays empty, WD_EAGAIN with *joined), or this
 * call leads. */
static bool slot_begin(struct wd_pending *p, struct vslot *s, struct verdict *vd, bool *joined)
{
    struct wd_backends *b = p->l->b;
    *joined = false;
    if (cache_verdict(b, &s->ck, vd))
        return true;
    if (b->cache && s->ck.digest_cache_id != 0) {
        p->refs++; /* the flight's, until flight_wake */
        if (!flight_join(&b->flights, s->ck.digest, p)) {
            *joined = true;
            return false;
        }
        p->refs--;
        s->leader = true;
        /* the answer may have landed between the miss and the join */
        if (cache_verdict(b, &s->ck, vd)) {
            s->leader = false;
            flight_end(&b->flights, s->ck.digest);
            return true;
        }
    }
    return false;
}

/* ---- Redis authentication ---- */

/* The verdict of a password check against a Redis user record. */
static void user_check_verdict(int vr, bool match, bool is_superuser, struct verdict *vd)
{
    if (vr != WD_OK) {
        vd->v = V_DENY;
        vd->reason = vr == WD_ERANGE ? "redis: stored hash over the work limits: denied"
                                     : "redis: stored hash unusable: denied";
    } else {
        vd->v = match ? V_ALLOW : V_DENY;
        vd->superuser = match && is_superuser;
        vd->reason = match ? "redis: password matches" : "redis: wrong password";
    }
}

/* A credential verdict through the cache: looked up under ck; on a miss computed once by
 * compute() (identical concurrent misses wait for it: single-flight) and cached unless
 * compute() returns false (a backend failure, never cached: then *failed is true). The
 * blocking path. */
typedef bool (*verdict_fn)(void *ctx, struct verdict *vd);

static void cached_verdict(struct wd_backends *b, struct wd_cache_key *ck, const char *user,
                           verdict_fn compute, void *ctx, struct verdict *vd, bool *failed)
{
    bool leader = false;
    *failed = false;
    memset(vd, 0, sizeof *vd);
    if (b->cache) {
        void *v;
        struct wd_cache_ref *ref = wd_cache_get(b->cache, ck, &v, NULL);
        if (!ref && ck->digest_cache_id != 0) {
            /* leader or not, look again: the answer may have landed between the miss and
             * flight_begin (then a new leader must not compute it a second time) */
            leader = flight_begin(&b->flights, ck->digest);
            ref = wd_cache_get(b->cache, ck, &v, NULL);
        }
        if (ref) {
            *vd = *(struct verdict *)v;
            wd_cache_release(ref);
            wd_metrics_inc(WD_M_AUTHN_CACHE_HITS);
            if (leader)
                flight_end(&b->flights, ck->digest);
            return;
        }
    }
    if (!compute(ctx, vd)) {
        *failed = true;
    } else if (b->cache) {
        struct verdict *cv = wd_malloc(sizeof *cv);
        *cv = *vd;
        if (wd_cache_put(b->cache, ck, cv, sizeof *cv, vd->v != V_ALLOW, 0, free_plain, user,
                         strlen(user), NULL) != WD_OK)
            free(cv);
    }
    if (leader)
        flight_end(&b->flights, ck->digest);
}

struct redis_lookup {
    struct wd_backends_local *l;
    const struct wd_authn_req *req;
    const char *key;
    size_t keylen;
};

static bool redis_verdict(void *ctx, struct verdict *vd)
{
    struct redis_lookup *x = ctx;
    struct wd_backends *b = x->l->b;
    struct wd_redis *r = redis_of(x->l);
    struct wd_redis_user u;
    uint64_t t0 = wd_metrics_now_ns();
    int g = r ? wd_redis_user_get(r, x->key, x->keylen, &u) : WD_EBACKEND;
    wd_metrics_observe(WD_H_REDIS, wd_metrics_now_ns() - t0);
    wd_metrics_inc(WD_M_REDIS_LOOKUPS);
    if (g == WD_EBACKEND) {
        wd_metrics_inc(WD_M_REDIS_ERRORS);
        backend_warn("user lookup", r ? wd_redis_last_error(r) : "no client");
        wd_redis_user_cleanup(&u);
        return false;
    }
    if (g == WD_ENOENT) {
        vd->v = u.has_fields ? V_DENY : V_NOUSER;
        vd->reason =
            u.has_fields ? "redis: user has no password field: denied" : "redis: no such user";
    } else if (g == WD_OK) {
        struct wd_passwd_spec spec = b->spec;
        wd_redis_user_spec(&u, &spec);
        bool match = false;
        wd_metrics_inc(WD_M_PASSWD_CHECKS);
        int vr = wd_passwd_verify_spec(&spec, x->req->password, x->req->password_len, &match);
        user_check_verdict(vr, match, u.is_superuser, vd);
    } else {
        vd->v = V_DENY;
        vd->reason = "redis: lookup failed: denied";
    }
    wd_redis_user_cleanup(&u);
    return true;
}

static void on_user_hash(void *ctx, int rc, bool match)
{
    struct wd_pending *p = ctx;
    p->l->hashing--;
    if (rc == WD_EBUSY) {
        backend_warn("password check", "hash threads stopped");
        slot_done(p, &p->user, NULL);
    } else {
        struct verdict vd = {0};
        user_check_verdict(rc, match, p->user.superuser, &vd);
        slot_done(p, &p->user, &vd);
    }
    pending_unref(p);
}

static void on_user_reply(void *ctx, struct wd_redis_async_result *res)
{
    struct wd_pending *p = ctx;
    struct wd_backends_local *l = p->l;
    struct verdict vd = {0};
    wd_metrics_observe(WD_H_REDIS, wd_metrics_now_ns() - p->redis_t0);
    if (res->rc == WD_EBACKEND || res->rc == WD_ETIMEDOUT) {
        wd_metrics_inc(WD_M_REDIS_ERRORS);
        backend_warn("user lookup", res->err[0] ? res->err : wd_rc_str(res->rc));
        slot_done(p, &p->user, NULL);
    } else if (res->rc == WD_ENOENT) {
        vd.v = res->user.has_fields ? V_DENY : V_NOUSER;
        vd.reason = res->user.has_fields ? "redis: user has no password field: denied"
                                         : "redis: no such user";
        slot_done(p, &p->user, &vd);
    } else {
        struct wd_passwd_spec spec = l->b->spec;
        wd_redis_user_spec(&res->user, &spec);
        wd_metrics_inc(WD_M_PASSWD_CHECKS);
        p->user.superuser = res->user.is_superuser;
        int hr = WD_EBUSY;
        if (slow_algo(spec.algo) && l->b->pool)
            hr = wd_hashpool_verify_spec(l->b->pool, &l->ev, &spec, p->pw, p->pwlen, on_user_hash,
                                         p);
        if (hr == WD_OK) {
            p->refs++;
            l->hashing++;
        } else if (slow_algo(spec.algo)) {
            backend_warn("password check", "hash threads busy");
            slot_done(p, &p->user, NULL);
        } else {
            bool match = false;
            int vr = wd_passwd_verify_spec(&spec, p->pw, p->pwlen, &match);
            user_check_verdict(vr, match, res->user.is_superuser, &vd);
            slot_done(p, &p->user, &vd);
        }
    }
    pending_unref(p);
}

/* The asynchronous path of wd_backends_authn_redis: WD_OK with *vd / *failed, or WD_EAGAIN. */
static int authn_redis_wait(struct wd_backends_local *l, const struct wd_authn_req *req,
                            struct wd_waiter *w, const char *key, size_t keylen, struct verdict *vd,
                            bool *failed)
{
    struct wd_backends *b = l->b;
    *failed = false;
    if (!w->pending || !w->pending->user.has_ck) {
        /* the warm path: a cache hit needs no pending state */
        struct wd_cache_key ck;
        wd_cache_key_init(&ck, WD_CACHE_KIND_AUTHN_VERDICT);
        wd_cache_key_add_str(&ck, "redis");
        wd_cache_key_add(&ck, key, keylen);
        wd_cache_key_add(&ck, req->password, req->password_len);
        bool hit = cache_verdict(b, &ck, vd);
        wd_cache_key_cleanup(&ck);
        if (hit)
            return WD_OK;
    }
    struct wd_pending *p = pending_of(l, w);
    struct vslot *s = &p->user;
    if (s->state == SLOT_DONE) {
        *vd = s->vd;
        *failed = s->failed;
        return WD_OK;
    }
    if (s->state == SLOT_WAITING)
        return WD_EAGAIN;
    if (!s->has_ck) {
        wd_cache_key_init(&s->ck, WD_CACHE_KIND_AUTHN_VERDICT);
        wd_cache_key_add_str(&s->ck, "redis");
        wd_cache_key_add(&s->ck, key, keylen);
        wd_cache_key_add(&s->ck, req->password, req->password_len);
        track_origin(b, &s->ck, key, keylen);
        s->has_ck = true;
        s->tag = wd_strdup(req->client.username);
    }
    bool joined;
    if (slot_begin(p, s, vd, &joined))
        return WD_OK;
    if (joined)
        return WD_EAGAIN;
    wd_metrics_inc(WD_M_REDIS_LOOKUPS);
    p->redis_t0 = wd_metrics_now_ns();
    int rc = l->ra ? wd_redis_async_user_get(l->ra, key, keylen, 0, on_user_reply, p) : WD_EBACKEND;
    if (rc != WD_OK) {
        wd_metrics_inc(WD_M_REDIS_ERRORS);
        backend_warn("user lookup", l->ra ? wd_redis_async_last_error(l->ra) : "no client");
        if (s->leader) {
            s->leader = false;
            flight_end(&b->flights, s->ck.digest);
        }
        *failed = true;
        return WD_OK;
    }
    pending_keep_pw(p, req->password, req->password_len);
    p->refs++;
    s->state = SLOT_WAITING;
    return WD_EAGAIN;
}

int wd_backends_authn_redis(struct wd_backends_local *l, const struct wd_authn_req *req,
                            struct wd_waiter *w, struct wd_step_result *out)
{
    struct wd_backends *b = l->b;
    memset(out, 0, sizeof *out);
    if (!b->redis_on)
        return 0;
    char *key = NULL;
    size_t keylen = 0;
    int kr = wd_redis_tmpl_render(b->authn_key, &req->client, &key, &keylen);
    if (kr == WD_ENOENT)
        return 0; /* no certificate / peer address for the key: no such user, no lookup */
    if (kr != WD_OK) {
        out->decision = WD_DECISION_DENY;
        out->reason = "redis: rendered key too long: denied";
        return 1;
    }
    struct verdict vd = {0};
    bool failed;
    if (l->async && w) {
        int rc = authn_redis_wait(l, req, w, key, keylen, &vd, &failed);
        free(key);
        if (rc == WD_EAGAIN)
            return WD_EAGAIN;
    } else {
        struct wd_cache_key ck;
        wd_cache_key_init(&ck, WD_CACHE_KIND_AUTHN_VERDICT);
        wd_cache_key_add_str(&ck, "redis");
        wd_cache_key_add(&ck, key, keylen);
        wd_cache_key_add(&ck, req->password, req->password_len);
        track_origin(b, &ck, key, keylen);
        struct redis_lookup x = {l, req, key, keylen};
        cached_verdict(b, &ck, req->client.username, redis_verdict, &x, &vd, &failed);
        wd_cache_key_cleanup(&ck);
        free(key);
    }
    if (failed) {
        if (b->redis_fail_next)
            return 0;
        out->decision = WD_DECISION_DENY;
        out->reason = "redis unavailable: redis_on_error deny";
        return 1;
    }
    if (vd.v == V_NOUSER)
        return 0;
    out->decision = vd.v == V_ALLOW ? WD_DECISION_ALLOW : WD_DECISION_DENY;
    out->superuser = vd.superuser;
    out->reason = vd.reason;
    return 1;
}

/* ---- static users with expensive hashes ---- */

struct static_check {
    const char *secret;
    const char *pw;
    size_t pwlen;
};

static bool static_verdict(void *ctx, struct verdict *vd)
{
    struct static_check *x = ctx;
    bool ok = false;
    wd_metrics_inc(WD_M_PASSWD_CHECKS);
    if (wd_passwd_verify(x->secret, x->pw, x->pwlen, &ok) != WD_OK)
        return false; /* checked at load: not reached; never cached */
    vd->v = ok ? V_ALLOW : V_DENY;
    return true;
}

static void on_static_hash(void *ctx, int rc, bool match)
{
    struct wd_pending *p = ctx;
    p->l->hashing--;
    if (rc != WD_OK) { /* EBUSY: the hash threads stopped; else checked at load */
        slot_done(p, &p->stat, NULL);
    } else {
        struct verdict vd = {.v = match ? V_ALLOW : V_DENY};
        slot_done(p, &p->stat, &vd);
    }
    pending_unref(p);
}

/* The asynchronous path of wd_backends_check_static: WD_OK, WD_EAGAIN, or an error. */
static int check_static_wait(struct wd_backends_local *l, unsigned long generation,
                             const char *user, const char *secret, const char *pw, size_t pwlen,
                             struct wd_waiter *w, bool *ok)
{
    struct wd_backends *b = l->b;
    struct verdict vd;
    if (b->cache && (!w->pending || !w->pending->stat.has_ck)) {
        /* the warm path: a cache hit needs no pending state */
        struct wd_cache_key ck;
        wd_cache_key_init(&ck, WD_CACHE_KIND_AUTHN_VERDICT);
        wd_cache_key_add_str(&ck, "users");
        wd_cache_key_add_u64(&ck, generation);
        wd_cache_key_add_str(&ck, user);
        wd_cache_key_add(&ck, pw, pwlen);
        bool hit = cache_verdict(b, &ck, &vd);
        wd_cache_key_cleanup(&ck);
        if (hit) {
            *ok = vd.v == V_ALLOW;
            return WD_OK;
        }
    }
    struct wd_pending *p = pending_of(l, w);
    struct vslot *s = &p->stat;
    if (s->state == SLOT_DONE && s->gen != generation) { /* a reload in between */
        slot_cleanup(b, s);
        memset(s, 0, sizeof *s);
    }
    if (s->state == SLOT_DONE) {
        *ok = !s->failed && s->vd.v == V_ALLOW;
        return s->failed ? WD_EBUSY : WD_OK;
    }
    if (s->state == SLOT_WAITING)
        return WD_EAGAIN;
    s->gen = generation;
    if (!s->has_ck && b->cache) {
        wd_cache_key_init(&s->ck, WD_CACHE_KIND_AUTHN_VERDICT);
        wd_cache_key_add_str(&s->ck, "users");
        wd_cache_key_add_u64(&s->ck, generation); /* a reload may change the secret */
        wd_cache_key_add_str(&s->ck, user);
        wd_cache_key_add(&s->ck, pw, pwlen);
        s->has_ck = true;
        s->tag = wd_strdup(user);
    }
    bool joined = false;
    if (s->has_ck && slot_begin(p, s, &vd, &joined)) {
        *ok = vd.v == V_ALLOW;
        return WD_OK;
    }
    if (joined)
        return WD_EAGAIN;
    wd_metrics_inc(WD_M_PASSWD_CHECKS);
    int rc = b->pool ? wd_hashpool_verify(b->pool, &l->ev, secret, pw, pwlen, on_static_hash, p)
                     : WD_EBUSY;
    if (rc != WD_OK) {
        backend_warn("password check", "hash threads busy");
        if (s->leader) {
            s->leader = false;
            flight_end(&b->flights, s->ck.digest);
        }
        return WD_EBUSY;
    }
    p->refs++;
    l->hashing++;
    s->state = SLOT_WAITING;
    return WD_EAGAIN;
}

int wd_backends_check_static(struct wd_backends_local *l, unsigned long generation,
                             const char *user, const char *secret, const char *pw, size_t pwlen,
                             struct wd_waiter *w, bool *ok)
{
    struct wd_backends *b = l->b;
    struct static_check x = {secret, pw, pwlen};
    struct verdict vd;
    *ok = false;
    /* digests cost less than a cache key: only the slow schemes go through the cache, and
     * only they go to the hash threads */
    bool slow = slow_secret(secret);
    if (slow && l->async && w)
        return check_static_wait(l, generation, user, secret, pw, pwlen, w, ok);
    if (!slow || !b->cache) {
        if (!static_verdict(&x, &vd))
            return WD_EINVAL;
        *ok = vd.v == V_ALLOW;
        return WD_OK;
    }
    struct wd_cache_key ck;
    wd_cache_key_init(&ck, WD_CACHE_KIND_AUTHN_VERDICT);
    wd_cache_key_add_str(&ck, "users");
    wd_cache_key_add_u64(&ck, generation); /* a reload may change the secret */
    wd_cache_key_add_str(&ck, user);
    wd_cache_key_add(&ck, pw, pwlen);
    bool failed;
    cached_verdict(b, &ck, user, static_verdict, &x, &vd, &failed);
    wd_cache_key_cleanup(&ck);
    if (failed)
        return WD_EINVAL;
    *ok = vd.v == V_ALLOW;
    return WD_OK;
}

/* ---- JWT authentication ---- */

static void jwt_ident_release_cb(void *p)
{
    wd_jwt_ident_release(p);
}

/* How log lines name a client: `user "NAME"`, or `clientid "ID"` when there is no
 * username or when the username is a bearer token (`jwt_from username`), which is never
 * logged (CONVENTIONS: secrets are never logged). Quoted and escaped into buf. */
static const char *client_label(const struct wd_backends *b, const struct wd_client *c, char *buf,
                                size_t cap)
{
    bool user = c->username[0] && !b->jwt_from_username;
    const char *v = user ? c->username : c->clientid;
    char q[160];
    snprintf(buf, cap, "%s %s", user ? "user" : "clientid",
             wd_log_quote(q, sizeof q, v, strlen(v)));
    return buf;
}

struct skip_ctx {
    const char *what;
    const char *who; /* client_label() */
    size_t skipped;
};

static void log_skip(void *ud, size_t index, const char *why)
{
    struct skip_ctx *s = ud;
    s->skipped++;
    wd_log_warn("acl", "%s of %s: entry %zu skipped: %s", s->what, s->who, index + 1, why);
}

/* redis_acl.c's report of an entry it could not parse */
static void log_acl_skip(void *ud, const char *topic, size_t topic_len, const char *reason)
{
    struct skip_ctx *s = ud;
    char t[160];
    s->skipped++;
    wd_log_warn("acl", "%s of %s: entry %s skipped: %s", s->what, s->who,
                topic ? wd_log_quote(t, sizeof t, topic, topic_len) : "(beyond the limit)", reason);
}

int wd_backends_authn_jwt(struct wd_backends_local *l, const struct wd_authn_req *req,
                          struct wd_step_result *out)
{
    struct wd_backends *b = l->b;
    memset(out, 0, sizeof *out);
    if (!b->jwt_on)
        return 0;
    const char *tok = b->jwt_from_username ? req->client.username : req->password;
    size_t toklen = b->jwt_from_username ? strlen(req->client.username) : req->password_len;
    if (toklen == 0)
        return 0; /* no token: this step has nothing to check (EMQX: ignore) */
    int64_t now = wd_clock_unix_s(&b->clock);
    uint64_t gen = wd_jwt_verifier_generation(b->verifier);
    struct wd_cache_key ck;
    wd_cache_key_init(&ck, WD_CACHE_KIND_JWT_CLAIMS);
    wd_cache_key_add_u64(&ck, gen);
    wd_cache_key_add(&ck, tok, toklen);
    wd_cache_key_add_str(&ck, req->client.username);
    wd_cache_key_add_str(&ck, req->client.clientid);

    struct wd_jwt_ident *j = NULL;
    if (b->cache) {
        void *v;
        struct wd_cache_ref *ref = wd_cache_get(b->cache, &ck, &v, NULL);
        if (ref) {
            j = wd_jwt_ident_get(v);
            wd_cache_release(ref);
            wd_metrics_inc(WD_M_AUTHN_CACHE_HITS);
            /* cached no longer than the token's exp, but check: clocks move */
            if (j->res.exp && now >= j->res.exp + b->jwt_leeway_s) {
                wd_jwt_ident_release(j);
                wd_cache_remove(b->cache, &ck);
                j = NULL;
                wd_metrics_inc(WD_M_JWT_REFUSED_EXPIRED);
                out->decision = WD_DECISION_DENY;
                out->reason = "jwt: token expired";
                wd_cache_key_cleanup(&ck);
                return 1;
            }
        }
    }
    if (!j) {
        struct wd_jwt_result res;
        int vr = wd_jwt_verify(b->verifier, tok, toklen, &req->client, now, &res);
        if (vr != WD_OK) {
            enum wd_jwt_status st = res.status;
            if (st >= WD_JWT_TOO_BIG && st <= WD_JWT_NO_KEYS)
                wd_metrics_inc(WD_M_JWT_REFUSED_TOO_BIG + (st - WD_JWT_TOO_BIG));
            wd_jwt_result_cleanup(&res);
            if (st == WD_JWT_UNKNOWN_KID || st == WD_JWT_NO_KEYS)
                wd_jwks_refresher_kick(b->refresher); /* rotated keys? (rate-limited) */
            wd_cache_key_cleanup(&ck);
            if (b->jwt_invalid_next && wd_jwt_status_emqx_ignores(st))
                return 0;
            out->decision = WD_DECISION_DENY;
            out->reason = wd_jwt_status_str(st);
            return 1;
        }
        wd_metrics_inc(WD_M_JWT_VERIFIED);
        char who[200];
        if (wd_jwt_ident_new(&res, client_label(b, &req->client, who, sizeof who), toklen, &j) !=
            WD_OK) {
            /* a skipped rule of the ordered list may have been a deny: using the rest
             * could allow what the issuer meant to refuse. EMQX refuses such a token. */
            wd_cache_key_cleanup(&ck);
            out->decision = WD_DECISION_DENY;
            out->reason = "jwt: invalid rule in the ACL claim (list form): denied";
            return 1;
        }
        if (b->cache) {
            int64_t ttl = b->cache_ttl_ms;
            if (j->res.exp) {
                int64_t left = (j->res.exp + b->jwt_leeway_s - now) * 1000;
                if (left < ttl)
                    ttl = left;
            }
            if (ttl > 0 && wd_cache_put(b->cache, &ck, wd_jwt_ident_get(j), j->bytes, false, ttl,
                                        jwt_ident_release_cb, req->client.username,
                                        strlen(req->client.username), NULL) != WD_OK)
                wd_jwt_ident_release(j); /* the reference given to the cache */
        }
    }
    wd_cache_key_cleanup(&ck);
    out->decision = WD_DECISION_ALLOW;
    out->reason = "jwt: token verified";
    out->superuser = j->res.is_superuser;
    out->jwt = j; /* the caller's reference */
    return 1;
}

/* ---- sessions (the Redis side of session_store redis: engine/session_share.h) ---- */

/* What the completion of a fire-and-forget write or delete has to report. */
static void on_shared_write(void *ctx, struct wd_redis_async_result *res)
{
    (void)ctx;
    if (res->rc != WD_OK) {
        wd_metrics_inc(WD_M_SESSIONS_SHARED_ERRORS);
        backend_warn("shared session write", res->err[0] ? res->err : wd_rc_str(res->rc));
    }
}

/* Sends a command whose answer nobody waits for: on the worker's asynchronous connection
 * (never blocks), or on the blocking client for a local without a loop. Cleans cmd up. */
static void shared_send(struct wd_backends_local *l, const char *what, struct wd_share_cmd *cmd)
{
    int rc;
    const char *err;
    if (l->async) {
        rc = l->ra ? wd_redis_async_command(l->ra, cmd->argc, cmd->argv, cmd->lens, 0, 0,
                                            on_shared_write, NULL)
                   : WD_EBACKEND;
        err = l->ra ? wd_redis_async_last_error(l->ra) : "no client";
    } else {
        struct wd_redis *r = redis_of(l);
        struct wd_redis_raw raw;
        memset(&raw, 0, sizeof raw);
        rc = r ? wd_redis_command(r, cmd->argc, cmd->argv, cmd->lens, 0, &raw) : WD_EBACKEND;
        err = r ? wd_redis_last_error(r) : "no client";
        wd_redis_raw_cleanup(&raw);
    }
    if (rc != WD_OK) {
        wd_metrics_inc(WD_M_SESSIONS_SHARED_ERRORS);
        backend_warn(what, err[0] ? err : wd_rc_str(rc));
    }
    wd_share_cmd_cleanup(cmd);
}

void wd_backends_session_put(struct wd_backends_local *l, const struct wd_authn_req *req,
                             enum wd_session_source src, const struct wd_step_result *r)
{
    struct wd_backends *b = l->b;
    struct wd_session *s = NULL;
    int64_t end_ms = 0;
    int rc = wd_sessions_put(b->sessions, &req->client, src, r->superuser, r->jwt,
                             b->share ? &s : NULL, &end_ms);
    if (!b->share)
        return;
    /* not recorded here: the clientid's older session in Redis must not outlive this login */
    struct wd_share_cmd cmd;
    wd_session_share_put(b->share, b->sessions, req->client.clientid, rc == WD_OK ? s : NULL,
                         end_ms, &cmd);
    shared_send(l, "shared session write", &cmd);
    wd_session_release(s);
}

/* A shared session read for the connection c came back (rc and raw as wd_redis_command
 * gives them): the session to use, or NULL (none, not c's, refused, Redis failed: fail
 * closed). */
static struct wd_session *shared_found(struct wd_backends *b, const struct wd_client *c, int rc,
                                       const struct wd_redis_raw *raw, const char *err)
{
    char who[200], why[160];
    unsigned long sup;
    struct wd_session *s;
    client_label(b, c, who, sizeof who);
    switch (wd_session_share_found(b->sessions, c, rc, raw, who, &s, why, sizeof why)) {
    case WD_SHARE_FOUND:
        wd_metrics_inc(WD_M_SESSIONS_SHARED_FOUND);
        break;
    case WD_SHARE_NONE:
        break;
    case WD_SHARE_REFUSED:
        wd_metrics_inc(WD_M_SESSIONS_SHARED_REFUSED);
        if (warn_allowed(&sup))
            wd_log_warn("session",
                        "the shared session of %s is refused: %s (%lu similar in the "
                        "last %ds not logged)",
                        who, why, sup, WARN_INTERVAL_S);
        break;
    case WD_SHARE_FAILED:
        wd_metrics_inc(WD_M_SESSIONS_SHARED_ERRORS);
        backend_warn("shared session read", err && err[0] ? err : wd_rc_str(rc));
        break;
    }
    return s;
}

/* A waiting call's shared-session read: what the completion needs after the request is
 * gone. */
struct sess_wait {
    struct wd_pending *p;
    char *clientid, *username, *peerhost;
    uint32_t peerport;
};

static void on_sess_reply(void *ctx, struct wd_redis_async_result *res)
{
    struct sess_wait *sw = ctx;
    struct wd_pending *p = sw->p;
    struct wd_client c = {.node = "",
                          .clientid = sw->clientid,
                          .username = sw->username,
                          .peerhost = sw->peerhost,
                          .peerport = sw->peerport,
                          .protocol = "",
                          .mountpoint = "",
                          .cn = "",
                          .dn = ""};
    p->sess = shared_found(p->l->b, &c, res->rc, &res->raw, res->err);
    p->sess_state = SLOT_DONE;
    free(sw->clientid);
    free(sw->username);
    free(sw->peerhost);
    free(sw);
    pending_resume(p);
    pending_unref(p);
}

int wd_backends_session_get(struct wd_backends_local *l, const struct wd_client *c,
                            struct wd_waiter *w, struct wd_session **out)
{
    struct wd_backends *b = l->b;
    *out = NULL;
    struct wd_pending *p = l->async && w ? w->pending : NULL;
    if (p && p->sess_state == SLOT_WAITING)
        return WD_EAGAIN;
    if (p && p->sess_state == SLOT_DONE) {
        if (wd_session_usable(b->sessions, p->sess, c))
            *out = wd_session_get(p->sess);
        return WD_OK;
    }
    /* the local table first: a warm authorize never leaves the process */
    if (wd_sessions_lookup(b->sessions, c, out) != WD_SESSIONS_MISS || !b->share)
        return WD_OK;
    struct wd_share_cmd cmd;
    wd_session_share_get(b->share, c->clientid, &cmd);
    wd_metrics_inc(WD_M_SESSIONS_SHARED_READS);
    if (l->async && w) {
        p = pending_of(l, w);
        struct sess_wait *sw = wd_calloc(1, sizeof *sw);
        sw->p = p;
        sw->clientid = wd_strdup(c->clientid);
        sw->username = wd_strdup(c->username);
        sw->peerhost = wd_strdup(c->peerhost);
        sw->peerport = c->peerport;
        int rc = l->ra ? wd_redis_async_command(l->ra, cmd.argc, cmd.argv, cmd.lens, 0, cmd.max_len,
                                                on_sess_reply, sw)
                       : WD_EBACKEND;
        wd_share_cmd_cleanup(&cmd);
        if (rc == WD_OK) {
            p->refs++;
            p->sess_state = SLOT_WAITING;
            return WD_EAGAIN;
        }
        wd_metrics_inc(WD_M_SESSIONS_SHARED_ERRORS);
        backend_warn("shared session read", l->ra ? wd_redis_async_last_error(l->ra) : "no client");
        free(sw->clientid);
        free(sw->username);
        free(sw->peerhost);
        free(sw);
        return WD_OK; /* no session: fail closed */
    }
    struct wd_redis *r = redis_of(l);
    struct wd_redis_raw raw;
    memset(&raw, 0, sizeof raw);
    int rc = r ? wd_redis_command(r, cmd.argc, cmd.argv, cmd.lens, cmd.max_len, &raw) : WD_EBACKEND;
    wd_share_cmd_cleanup(&cmd);
    *out = shared_found(b, c, rc, &raw, r ? wd_redis_last_error(r) : "no client");
    wd_redis_raw_cleanup(&raw);
    return WD_OK;
}

void wd_backends_session_drop(struct wd_backends_local *l, const struct wd_client *c)
{
    struct wd_backends *b = l->b;
    wd_sessions_drop(b->sessions, c);
    if (!b->share)
        return;
    struct wd_share_cmd cmd;
    wd_session_share_drop(b->share, c, &cmd);
    shared_send(l, "shared session delete", &cmd);
}

/* ---- authorization sources ---- */

static void policy_release_cb(void *p)
{
    wd_policy_release(p);
}

/* Caches a compiled ACL (empty ones as negative entries). Returns a reference in *ref, or
 * false when the cache is off or refused it. Takes over p either way on success. */
static bool cache_acl(struct wd_backends *b, struct wd_cache_key *ck, struct wd_policy *p, size_t n,
                      const char *user, struct wd_cache_ref **ref)
{
    if (!b->cache)
        return false;
    return wd_cache_put(b->cache, ck, p, wd_policy_memory(p), n == 0, 0, policy_release_cb, user,
                        strlen(user), ref) == WD_OK;
}

/* What an asynchronous ACL lookup needs after the call's request is gone. */
struct acl_wait {
    struct wd_pending *p;
    struct wd_cache_key ck;
    char *user;
    char who[200];
    struct skip_ctx sk;
    uint64_t t0; /* when the lookup was sent (ns) */
};

static void on_acl_reply(void *ctx, struct wd_redis_async_result *res)
{
    struct acl_wait *aw = ctx;
    struct wd_pending *p = aw->p;
    struct wd_backends *b = p->l->b;
    p->acl_state = SLOT_DONE;
    p->acl_rc = WD_EBACKEND;
    wd_metrics_observe(WD_H_REDIS, wd_metrics_now_ns() - aw->t0);
    if (res->rc != WD_OK) {
        wd_metrics_inc(WD_M_REDIS_ERRORS);
        backend_warn("ACL lookup", res->err[0] ? res->err : wd_rc_str(res->rc));
    } else {
        struct wd_policy *acl = wd_acl_rules_compile(res->acl, res->nacl, log_skip, &aw->sk);
        if (acl) {
            p->acl_rc = WD_OK;
            p->acl = acl;
            wd_policy_get(acl); /* the cache's reference */
            if (!cache_acl(b, &aw->ck, acl, res->nacl, aw->user, NULL))
                wd_policy_release(acl);
        }
    }
    wd_cache_key_cleanup(&aw->ck);
    free(aw->user);
    free(aw);
    pending_resume(p);
    pending_unref(p);
}

/* The client's Redis ACL, compiled, from the cache or Redis. WD_OK with *out (a reference
 * in *ref, or an uncached policy in *own), WD_ENOENT when the key template has no value for
 * this client (no lookup), WD_EBACKEND, or WD_EAGAIN (waits: only with a waiter w on a
 * local with a loop). */
static int redis_acl(struct wd_backends_local *l, const struct wd_client *c, struct wd_waiter *w,
                     const struct wd_policy **out, struct wd_cache_ref **ref,
                     struct wd_policy **own)
{
    struct wd_backends *b = l->b;
    *ref = NULL;
    *own = NULL;
    struct wd_pending *p = l->async && w ? w->pending : NULL;
    if (p && p->acl_state == SLOT_WAITING)
        return WD_EAGAIN;
    if (p && p->acl_state == SLOT_DONE) {
        if (p->acl_rc != WD_OK)
            return p->acl_rc;
        *own = wd_policy_get(p->acl);
        *out = *own;
        return WD_OK;
    }
    char *key = NULL;
    size_t keylen = 0;
    int kr = wd_redis_tmpl_render(b->acl_key, c, &key, &keylen);
    if (kr != WD_OK)
        return kr == WD_ENOENT ? WD_ENOENT : WD_EBACKEND; /* ENOENT: no key, no entries */
    struct wd_cache_key ck;
    wd_cache_key_init(&ck, WD_CACHE_KIND_REDIS_ACL);
    wd_cache_key_add(&ck, key, keylen);
    track_origin(b, &ck, key, keylen);
    int rc = WD_OK;
    if (b->cache) {
        void *v;
        *ref = wd_cache_get(b->cache, &ck, &v, NULL);
        if (*ref) {
            *out = v;
            wd_metrics_inc(WD_M_AUTHZ_CACHE_HITS);
            goto done;
        }
    }
    wd_metrics_inc(WD_M_REDIS_LOOKUPS);
    if (l->async && w) {
        p = pending_of(l, w);
        struct acl_wait *aw = wd_calloc(1, sizeof *aw);
        aw->p = p;
        wd_cache_key_init(&aw->ck, WD_CACHE_KIND_REDIS_ACL);
        wd_cache_key_add(&aw->ck, key, keylen);
        track_origin(b, &aw->ck, key, keylen);
        aw->user = wd_strdup(c->username);
        aw->sk = (struct skip_ctx){"Redis ACL", aw->who, 0};
        client_label(b, c, aw->who, sizeof aw->who);
        aw->t0 = wd_metrics_now_ns();
        int sr = l->ra ? wd_redis_async_acl_get(l->ra, key, keylen, 0, log_acl_skip, &aw->sk,
                                                on_acl_reply, aw)
                       : WD_EBACKEND;
        if (sr == WD_OK) {
            p->refs++;
            p->acl_state = SLOT_WAITING;
            rc = WD_EAGAIN;
        } else {
            wd_metrics_inc(WD_M_REDIS_ERRORS);
            backend_warn("ACL lookup", l->ra ? wd_redis_async_last_error(l->ra) : "no client");
            wd_cache_key_cleanup(&aw->ck);
            free(aw->user);
            free(aw);
            rc = WD_EBACKEND;
        }
        goto done;
    }
    struct wd_redis *r = redis_of(l);
    struct wd_acl_entry *ents = NULL;
    size_t n = 0;
    char who[200];
    struct skip_ctx sk = {"Redis ACL", client_label(b, c, who, sizeof who), 0};
    uint64_t t0 = wd_metrics_now_ns();
    int gr = r ? wd_redis_acl_get(r, key, keylen, &ents, &n, log_acl_skip, &sk) : WD_EBACKEND;
    wd_metrics_observe(WD_H_REDIS, wd_metrics_now_ns() - t0);
    if (gr != WD_OK) {
        wd_metrics_inc(WD_M_REDIS_ERRORS);
        backend_warn("ACL lookup", r ? wd_redis_last_error(r) : "no client");
        rc = WD_EBACKEND;
        goto done;
    }
    struct wd_policy *acl = wd_acl_rules_compile(ents, n, log_skip, &sk);
    wd_acl_entries_free(ents, n);
    if (!acl) {
        rc = WD_EBACKEND;
        goto done;
    }
    if (cache_acl(b, &ck, acl, n, c->username, ref)) {
        *out = acl;
        goto done;
    }
    *own = acl;
    *out = acl;
done:
    wd_cache_key_cleanup(&ck);
    free(key);
    return rc;
}

int wd_backends_source_eval(void *ctx, enum wd_source src, const struct wd_authz_req *req,
                            struct wd_policy_result *out)
{
    struct wd_source_ctx *sc = ctx;
    struct wd_backends *b = sc->l->b;
    struct wd_policy_result r;
    sc->step = src == WD_SOURCE_REDIS ? "redis" : "jwt";
    if (src == WD_SOURCE_REDIS) {
        if (!b->redis_on)
            return 0;
        const struct wd_policy *acl;
        struct wd_cache_ref *ref;
        struct wd_policy *own;
        int ar = redis_acl(sc->l, &req->client, sc->waiter, &acl, &ref, &own);
        if (ar == WD_EAGAIN) {
            sc->waiting = true;
            out->decision = WD_DECISION_DENY; /* stops the evaluation; never answered */
            sc->reason = "waiting for Redis";
            return 1;
        }
        if (ar == WD_ENOENT)
            return 0; /* no certificate / peer address for the key: no entries (nomatch) */
        if (ar != WD_OK) {
            if (b->redis_fail_next)
                return 0;
            out->decision = WD_DECISION_DENY;
            sc->reason = "redis unavailable: redis_on_error deny";
            return 1;
        }
        wd_policy_authorize(acl, req, &r);
        wd_cache_release(ref);
        wd_policy_release(own);
        if (r.decision == WD_DECISION_NOMATCH)
            return 0;
        out->decision = r.decision;
        sc->reason = "redis ACL entry matched";
        return 1;
    }
    /* JWT */
    if (!sc->session) {
        /* authenticated elsewhere (another replica, before a restart) or expired: the
         * token and so its ACL are unknown here. Fail closed. */
        out->decision = WD_DECISION_DENY;
        sc->reason = "jwt: no session for this client (token expired or unknown here): denied";
        return 1;
    }
    return wd_jwt_ident_authorize(wd_session_jwt(sc->session), req, out, &sc->reason);
}

/* ---- operations ---- */

size_t wd_backends_flush_all(struct wd_backends *b)
{
    size_t n = wd_sessions_flush_all(b->sessions);
    if (b->cache)
        n += wd_cache_flush_all(b->cache);
    return n;
}

size_t wd_backends_flush_user(struct wd_backends *b, const char *user, size_t len)
{
    size_t n = wd_sessions_flush_user(b->sessions, user, len);
    if (b->cache)
        n += wd_cache_flush_tag(b->cache, user, len);
    return n;
}

static void stats_of(struct wd_buf *out, const char *name, struct wd_cache *c)
{
    struct wd_cache_stats st;
    wd_cache_stats(c, &st);
    wd_buf_printf(out,
                  "%s: entries %llu/%llu bytes %llu/%llu hits %llu misses %llu insertions %llu "
                  "evictions %llu expirations %llu\n",
                  name, (unsigned long long)st.entries, (unsigned long long)st.max_entries,
                  (unsigned long long)st.bytes, (unsigned long long)st.max_bytes,
                  (unsigned long long)st.hits, (unsigned long long)st.misses,
                  (unsigned long long)st.insertions, (unsigned long long)st.evictions,
                  (unsigned long long)st.expirations);
}

void wd_backends_stats(struct wd_backends *b, struct wd_buf *out)
{
    if (b->cache)
        stats_of(out, "cache", b->cache);
    else
        wd_buf_puts(out, "cache: off\n");
    wd_sessions_stats(b->sessions, out);
    wd_buf_printf(out, "redis: %s\n", b->redis_on ? "configured" : "not configured");
    pthread_mutex_lock(&b->pool_mu);
    if (b->pool) {
        struct wd_hashpool_stats hs;
        wd_hashpool_stats(b->pool, &hs);
        wd_buf_printf(out,
                      "hash threads: %u, running %u queued %u, checks submitted %llu completed "
                      "%llu refused %llu\n",
                      b->hash_threads, hs.running, hs.queued, (unsigned long long)hs.submitted,
                      (unsigned long long)hs.completed, (unsigned long long)hs.rejected);
    }
    pthread_mutex_unlock(&b->pool_mu);
    if (b->jwt_on) {
        wd_buf_printf(out, "jwt: key set generation %llu",
                      (unsigned long long)wd_jwt_verifier_generation(b->verifier));
        if (b->refresher) {
            uint64_t ok = 0, failed = 0;
            wd_jwks_refresher_stats(b->refresher, &ok, &failed);
            wd_buf_printf(out, ", JWKS fetches ok %llu failed %llu", (unsigned long long)ok,
                          (unsigned long long)failed);
        }
        wd_buf_putc(out, '\n');
    } else {
        wd_buf_puts(out, "jwt: not configured\n");
    }
}

/* ---- metrics and readiness ---- */

static size_t sample(struct wd_metrics_sample *s, size_t i, size_t cap, const char *family,
                     enum wd_metrics_type type, const char *help, const char *labels, double v)
{
    if (i >= cap)
        return i;
    s[i].family = family;
    s[i].type = type;
    s[i].help = help;
    snprintf(s[i].labels, sizeof s[i].labels, "%s", labels);
    s[i].value = v;
    return i + 1;
}

size_t wd_backends_metrics(struct wd_backends *b, struct wd_metrics_sample *s, size_t cap)
{
    size_t i = 0;
    struct wd_cache_stats c = {0}, se;
    if (b->cache)
        wd_cache_stats(b->cache, &c);
    wd_sessions_cache_stats(b->sessions, &se);
    const enum wd_metrics_type C = WD_METRICS_COUNTER, G = WD_METRICS_GAUGE;
    i = sample(s, i, cap, "warden_cache_hits_total", C,
               "cache lookups answered (credential verdicts, Redis ACLs, tokens)", "", c.hits);
    i = sample(s, i, cap, "warden_cache_misses_total", C, "cache lookups not answered", "",
               c.misses);
    i = sample(s, i, cap, "warden_cache_evictions_total", C,
               "cache entries evicted for room (entries or memory limit)", "", c.evictions);
    i = sample(s, i, cap, "warden_cache_expirations_total", C, "cache entries expired (TTL)", "",
               c.expirations);
    i = sample(s, i, cap, "warden_cache_entries", G, "cache entries now (0 with cache off)", "",
               c.entries);
    i = sample(s, i, cap, "warden_cache_bytes", G, "cache memory accounted now", "", c.bytes);
    i = sample(s, i, cap, "warden_sessions", G, "sessions held now", "", se.entries);
    i = sample(s, i, cap, "warden_sessions_bytes", G, "session memory accounted now", "", se.bytes);
    i = sample(s, i, cap, "warden_sessions_evictions_total", C,
               "sessions evicted for room (session_max, session_memory)", "", se.evictions);
    struct wd_hashpool_stats hs = {0};
    pthread_mutex_lock(&b->pool_mu);
    if (b->pool)
        wd_hashpool_stats(b->pool, &hs);
    pthread_mutex_unlock(&b->pool_mu);
    i = sample(s, i, cap, "warden_hash_threads", G, "password hash threads configured", "",
               b->hash_threads);
    i = sample(s, i, cap, "warden_hash_running", G, "password checks running on hash threads", "",
               hs.running);
    i = sample(s, i, cap, "warden_hash_queued", G, "password checks waiting for a hash thread", "",
               hs.queued);
    i = sample(s, i, cap, "warden_hash_completed_total", C, "password checks done on hash threads",
               "", (double)hs.completed);
    i = sample(s, i, cap, "warden_hash_refused_total", C,
               "password checks refused: hash threads busy (the call is denied)", "",
               (double)hs.rejected);
    struct wd_redis_sentinel_stats ss;
    wd_redis_sentinel_stats(b->sentinel, &ss);
    i = sample(s, i, cap, "warden_redis_sentinel_master_known", G,
               "1 while Sentinel names a master that answered ROLE master (0 without Sentinel)", "",
               ss.known);
    i = sample(s, i, cap, "warden_redis_sentinel_failovers_total", C,
               "Redis master changes followed (every connection moved to the new master)", "",
               (double)ss.failovers);
    i = sample(s, i, cap, "warden_redis_sentinel_errors_total", C,
               "Sentinel failures: unreachable, timed out, error replies, subscription lost, "
               "announced master failing warden's check",
               "", (double)ss.errors);
    i = sample(s, i, cap, "warden_jwt_keyset_generation", G,
               "JWT key set generation (+1 per JWKS swap; 0: JWT not configured)", "",
               b->jwt_on ? (double)wd_jwt_verifier_generation(b->verifier) : 0);
    return i;
}

size_t wd_backends_probe_sentinels(struct wd_backends *b)
{
    return wd_redis_sentinel_probe(b->sentinel);
}

bool wd_backends_ready(struct wd_backends *b, bool need_redis, bool need_jwt, struct wd_buf *out)
{
    bool ok = true;
    char st[320];
    if (need_redis && b->sentinel &&
        !wd_redis_sentinel_master(b->sentinel, st, 64, &(int){0}, NULL)) {
        wd_redis_sentinel_status(b->sentinel, st, sizeof st);
        wd_buf_printf(out, "redis: no master known (Sentinel: %s)\n", st);
        ok = false;
        need_redis = false;
    }
    if (need_redis) {
        pthread_mutex_lock(&b->probe_mu);
        if (!b->probe && b->redis_on && wd_redis_new(&b->ropts, &b->probe) != WD_OK)
            b->probe = NULL;
        int rc = b->probe ? wd_redis_ping(b->probe) : WD_EBACKEND;
        if (rc == WD_OK && b->sentinel) {
            wd_redis_sentinel_status(b->sentinel, st, sizeof st);
            wd_buf_printf(out, "redis: ok (Sentinel: %s)\n", st);
        } else if (rc == WD_OK) {
            wd_buf_puts(out, "redis: ok\n");
        } else {
            ok = false;
            wd_buf_printf(out, "redis: not answering (%s)\n",
                          b->probe ? wd_redis_last_error(b->probe) : "not configured");
        }
        pthread_mutex_unlock(&b->probe_mu);
    }
    if (need_jwt) {
        if (b->jwt_on && wd_jwt_verifier_has_keys(b->verifier)) {
            wd_buf_puts(out, "jwt: ok\n");
        } else {
            ok = false;
            wd_buf_puts(out, b->jwt_on ? "jwt: no key set yet (JWKS not fetched)\n"
                                       : "jwt: not configured\n");
        }
    }
    return ok;
}
