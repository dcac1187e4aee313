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
#include <time.h>

#include "core/file.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/wd.h"
#include "store/cache.h"
#include "store/jwks_http.h"
#include "store/jwt.h"
#include "store/passwd.h"
#include "store/redis.h"

#define WD_CACHE_KIND_SESSION 5

/* ---- single-flight ---- */

struct flight {
    uint8_t d[WD_CACHE_DIGEST_LEN];
    struct flight *next;
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
        struct flight *n = wd_malloc(sizeof *n);
        memcpy(n->d, d, WD_CACHE_DIGEST_LEN);
        n->next = f->head;
        f->head = n;
    }
    pthread_mutex_unlock(&f->mu);
    if (waited)
        wd_metrics_inc(WD_M_AUTHN_COALESCED);
    return !waited;
}

static void flight_end(struct flights *f, const uint8_t *d)
{
    pthread_mutex_lock(&f->mu);
    for (struct flight **pp = &f->head; *pp; pp = &(*pp)->next) {
        if (memcmp((*pp)->d, d, WD_CACHE_DIGEST_LEN) == 0) {
            struct flight *x = *pp;
            *pp = x->next;
            free(x);
            break;
        }
    }
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
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

    /* JWT */
    bool jwt_on;
    struct wd_jwt_verifier *verifier;
    struct wd_jwks_refresher *refresher;
    bool jwt_from_username;
    bool jwt_invalid_next;
    int64_t jwt_leeway_s;

    /* caches */
    struct wd_cache *cache; /* NULL: `cache off` */
    struct wd_cache *sessions;
    int64_t session_ttl_ms;
    int64_t cache_ttl_ms;
    struct flights flights;
};

struct wd_backends_local {
    struct wd_backends *b;
    struct wd_redis *redis; /* created on first use */
};

/* A verified token, shared by the cache and the sessions that used it. */
struct wd_jwt_ident {
    atomic_uint refs;
    struct wd_jwt_result res;
    struct wd_policy *acl; /* compiled ACL claim; NULL when absent or invalid */
    size_t bytes;
};

struct wd_session {
    char *username; /* the clientid is the key: not kept twice */
    char *peerhost;
    uint32_t peerport;
    enum wd_session_source source;
    bool superuser;
    int64_t exp; /* Unix seconds; 0: no token expiry */
    struct wd_jwt_ident *jwt;
};

static int64_t unix_now(void)
{
    return (int64_t)time(NULL);
}

/* Backend failure warnings: the first at once, then at most one per interval with the
 * number suppressed meanwhile, so an outage under load does not flood the log. */
#define WARN_INTERVAL_S 5
static atomic_llong g_warn_last;
static atomic_ulong g_warn_suppressed;

static bool warn_allowed(unsigned long *suppressed)
{
    int64_t now = unix_now();
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

static void setup_redis(struct wd_backends *b, const struct wd_config *cfg, struct wd_buf *e,
                        int *n)
{
    b->redis_on = cfg->redis_host || cfg->redis_socket;
    b->redis_fail_next = strcmp(cfg->redis_on_error, "next") == 0;
    char err[256];
    if (wd_redis_tmpl_compile(cfg->redis_authn_key, &b->authn_key, err, sizeof err) != WD_OK)
        append_err(e, n, "redis_authn_key: %s", err);
    if (wd_redis_tmpl_compile(cfg->redis_acl_key, &b->acl_key, err, sizeof err) != WD_OK)
        append_err(e, n, "redis_acl_key: %s", err);
    if (wd_passwd_algo_from_name(cfg->redis_password_hash, &b->spec.algo) != WD_OK)
        append_err(e, n, "redis_password_hash: unknown algorithm %s", cfg->redis_password_hash);
    if (wd_passwd_salt_pos_from_name(cfg->redis_salt_position, &b->spec.salt_pos) != WD_OK)
        append_err(e, n, "redis_salt_position: unknown position %s", cfg->redis_salt_position);
    if (wd_passwd_mac_from_name(cfg->redis_pbkdf2_mac, &b->spec.pbkdf2.mac) != WD_OK)
        append_err(e, n, "redis_pbkdf2_mac: unknown mac %s", cfg->redis_pbkdf2_mac);
    b->spec.pbkdf2.iterations = (unsigned long)cfg->redis_pbkdf2_iterations;
    b->spec.pbkdf2.dk_length = (size_t)cfg->redis_pbkdf2_dk_length;
    /* EMQX 5.x compares plain passwords case-insensitively; that is its bug, not ours */
    b->spec.plain_case_sensitive = true;
    if (b->spec.algo == WD_PASSWD_PBKDF2 &&
        (unsigned long)cfg->redis_pbkdf2_iterations > WD_PASSWD_PBKDF2_WORK_MAX)
        append_err(e, n, "redis_pbkdf2_iterations: above the work limit");

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
        append_err(e, n, "redis_password is set but neither redis_host nor redis_socket");
    if (b->redis_on && *n == 0) {
        /* a start-up probe: an unreachable Redis is reported, never fatal */
        struct wd_redis *r;
        if (wd_redis_new(&b->ropts, &r) != WD_OK) {
            append_err(e, n, "redis: invalid connection settings");
        } else {
            if (wd_redis_connect(r) != WD_OK)
                wd_log_warn("redis",
                            "cannot reach %s:%d now (%s); requests that need Redis get "
                            "redis_on_error (%s) until it answers",
                            b->rsocket ? b->rsocket : b->rhost, b->rsocket ? 0 : b->ropts.port,
                            wd_redis_last_error(r), cfg->redis_on_error);
            else
                wd_log_info("redis", "connected to %s", b->rsocket ? b->rsocket : b->rhost);
            wd_redis_free(r);
        }
    }
}

static void setup_jwt(struct wd_backends *b, const struct wd_config *cfg, struct wd_buf *e, int *n)
{
    int sources = (cfg->jwt_secret != NULL) + (cfg->jwt_public_key != NULL) +
                  (cfg->jwt_jwks_file != NULL) + (cfg->jwt_jwks_url != NULL);
    b->jwt_from_username = strcmp(cfg->jwt_from, "username") == 0;
    b->jwt_invalid_next = strcmp(cfg->jwt_on_invalid, "next") == 0;
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
            append_err(e, n, "jwt_secret: %s", err);
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
            append_err(e, n, "jwt_public_key %s", err);
        } else {
            if (wd_jwt_keyset_from_pem(pem, len, &ks, err, sizeof err) != WD_OK)
                append_err(e, n, "jwt_public_key %s: %s", cfg->jwt_public_key, err);
            free(pem);
        }
    } else if (cfg->jwt_jwks_file) {
        err[0] = '\0';
        if (wd_jwt_keyset_load_jwks_file(cfg->jwt_jwks_file, &ks, err, sizeof err) != WD_OK)
            append_err(e, n, "jwt_jwks_file %s: %s", cfg->jwt_jwks_file, err);
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
            append_err(e, n, "jwt_jwks_url: %s", err);
    }
    b->jwt_on = true;
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

int wd_backends_new(const struct wd_config *cfg, struct wd_backends **out, char **errors)
{
    *out = NULL;
    *errors = NULL;
    struct wd_backends *b = wd_calloc(1, sizeof *b);
    pthread_mutex_init(&b->flights.mu, NULL);
    pthread_cond_init(&b->flights.cv, NULL);
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
        };
        b->cache = wd_cache_new(&cc);
        if (!b->cache)
            append_err(&e, &n,
                       "cache: invalid settings (cache_entries at least 16, "
                       "cache_memory at least 64KiB)");
    }
    b->session_ttl_ms = cfg->session_ttl_ms;
    struct wd_cache_config sc = {
        .shards = shards_for((size_t)cfg->session_max),
        .max_entries = (size_t)cfg->session_max,
        .max_bytes = (size_t)cfg->session_memory,
        .ttl_ms = cfg->session_ttl_ms ? cfg->session_ttl_ms : (int64_t)3650 * 86400 * 1000,
        .negative_ttl_ms = 1,
    };
    b->sessions = wd_cache_new(&sc);
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
    wd_jwks_refresher_stop(b->refresher);
    wd_jwt_verifier_free(b->verifier);
    wd_cache_free(b->sessions);
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
                          "configuration sets neither redis_host nor redis_socket\n");
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

struct wd_backends_local *wd_backends_local_new(struct wd_backends *b)
{
    struct wd_backends_local *l = wd_calloc(1, sizeof *l);
    l->b = b;
    return l;
}

void wd_backends_local_free(struct wd_backends_local *l)
{
    if (!l)
        return;
    wd_redis_free(l->redis);
    free(l);
}

static struct wd_redis *redis_of(struct wd_backends_local *l)
{
    if (!l->redis && wd_redis_new(&l->b->ropts, &l->redis) != WD_OK)
        l->redis = NULL;
    return l->redis;
}

/* ---- Redis authentication ---- */

enum { V_ALLOW = 1, V_DENY, V_NOUSER };

struct verdict {
    int v;
    bool superuser;
    const char *reason;
};

static void free_plain(void *p)
{
    free(p);
}

/* A credential verdict through the cache: looked up under ck; on a miss computed once by
 * compute() (identical concurrent misses wait for it: single-flight) and cached unless
 * compute() returns false (a backend failure, never cached: then *failed is true). */
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
    int g = r ? wd_redis_user_get(r, x->key, x->keylen, &u) : WD_EBACKEND;
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
        if (vr != WD_OK) {
            vd->v = V_DENY;
            vd->reason = vr == WD_ERANGE ? "redis: stored hash over the work limits: denied"
                                         : "redis: stored hash unusable: denied";
        } else {
            vd->v = match ? V_ALLOW : V_DENY;
            vd->superuser = match && u.is_superuser;
            vd->reason = match ? "redis: password matches" : "redis: wrong password";
        }
    } else {
        vd->v = V_DENY;
        vd->reason = "redis: lookup failed: denied";
    }
    wd_redis_user_cleanup(&u);
    return true;
}

int wd_backends_authn_redis(struct wd_backends_local *l, const struct wd_authn_req *req,
                            struct wd_step_result *out)
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
    struct wd_cache_key ck;
    wd_cache_key_init(&ck, WD_CACHE_KIND_AUTHN_VERDICT);
    wd_cache_key_add_str(&ck, "redis");
    wd_cache_key_add(&ck, key, keylen);
    wd_cache_key_add(&ck, req->password, req->password_len);
    struct redis_lookup x = {l, req, key, keylen};
    struct verdict vd;
    bool failed;
    cached_verdict(b, &ck, req->client.username, redis_verdict, &x, &vd, &failed);
    wd_cache_key_cleanup(&ck);
    free(key);
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

int wd_backends_check_static(struct wd_backends_local *l, unsigned long generation,
                             const char *user, const char *secret, const char *pw, size_t pwlen,
                             bool *ok)
{
    struct wd_backends *b = l->b;
    struct static_check x = {secret, pw, pwlen};
    struct verdict vd;
    *ok = false;
    /* digests cost less than a cache key: only the slow schemes go through the cache */
    bool slow = strncmp(secret, "bcrypt:", 7) == 0 || strncmp(secret, "pbkdf2:", 7) == 0 ||
                strncmp(secret, "argon2id:", 9) == 0;
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

static void jwt_ident_free(struct wd_jwt_ident *j)
{
    wd_jwt_result_cleanup(&j->res);
    wd_policy_release(j->acl);
    free(j);
}

void wd_jwt_ident_release(struct wd_jwt_ident *j)
{
    if (j && atomic_fetch_sub(&j->refs, 1) == 1)
        jwt_ident_free(j);
}

static struct wd_jwt_ident *jwt_ident_get(struct wd_jwt_ident *j)
{
    if (j)
        atomic_fetch_add(&j->refs, 1);
    return j;
}

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

/* Compiles the token's ACL claim. *skipped counts the rules that could not be used. who:
 * client_label(). */
static struct wd_policy *compile_jwt_acl(const struct wd_jwt_result *r, const char *who,
                                         size_t *skipped)
{
    *skipped = r->n_acl_skipped;
    if (r->acl_format != WD_JWT_ACL_V1_OBJECT && r->acl_format != WD_JWT_ACL_V2_LIST)
        return NULL;
    struct wd_policy_rule_in *in = wd_calloc(r->n_acl ? r->n_acl : 1, sizeof *in);
    for (size_t i = 0; i < r->n_acl; i++) {
        const struct wd_jwt_acl_rule *a = &r->acl[i];
        in[i].perm = a->allow ? WD_DECISION_ALLOW : WD_DECISION_DENY;
        in[i].actions = a->actions;
        in[i].topics = (const char *const *)&a->topic;
        in[i].ntopics = 1;
        in[i].eq = a->eq;
        in[i].qos_mask = a->qos_mask;
        in[i].retain = a->retain;
    }
    for (size_t i = 0; i < r->n_acl_errors; i++)
        wd_log_warn("acl", "JWT ACL of %s: %s (entry skipped)", who, r->acl_errors[i]);
    struct skip_ctx sk = {"JWT ACL", who, 0};
    struct wd_policy *p = NULL;
    if (wd_policy_compile_rules(in, r->n_acl, log_skip, &sk, &p) != WD_OK)
        p = NULL;
    free(in);
    *skipped += sk.skipped;
    return p;
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
    int64_t now = unix_now();
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
            j = jwt_ident_get(v);
            wd_cache_release(ref);
            wd_metrics_inc(WD_M_AUTHN_CACHE_HITS);
            /* cached no longer than the token's exp, but check: clocks move */
            if (j->res.exp && now >= j->res.exp + b->jwt_leeway_s) {
                wd_jwt_ident_release(j);
                wd_cache_remove(b->cache, &ck);
                j = NULL;
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
            wd_metrics_inc(WD_M_JWT_REFUSED);
            enum wd_jwt_status st = res.status;
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
        j = wd_calloc(1, sizeof *j);
        atomic_init(&j->refs, 1);
        j->res = res;
        size_t skipped = 0;
        char who[200];
        j->acl = compile_jwt_acl(&j->res, client_label(b, &req->client, who, sizeof who), &skipped);
        if (skipped && j->res.acl_format == WD_JWT_ACL_V2_LIST) {
            /* a skipped rule of the ordered list may have been a deny: using the rest
             * could allow what the issuer meant to refuse. EMQX refuses such a token. */
            jwt_ident_free(j);
            wd_cache_key_cleanup(&ck);
            out->decision = WD_DECISION_DENY;
            out->reason = "jwt: invalid rule in the ACL claim (list form): denied";
            return 1;
        }
        j->bytes = sizeof *j + toklen + (j->acl ? wd_policy_memory(j->acl) : 0);
        if (b->cache) {
            int64_t ttl = b->cache_ttl_ms;
            if (j->res.exp) {
                int64_t left = (j->res.exp + b->jwt_leeway_s - now) * 1000;
                if (left < ttl)
                    ttl = left;
            }
            if (ttl > 0 && wd_cache_put(b->cache, &ck, jwt_ident_get(j), j->bytes, false, ttl,
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

/* ---- sessions ---- */

static void session_free(void *p)
{
    struct wd_session *s = p;
    wd_jwt_ident_release(s->jwt);
    free(s->username);
    free(s->peerhost);
    free(s);
}

static void session_key(struct wd_cache_key *k, const char *clientid)
{
    wd_cache_key_init(k, WD_CACHE_KIND_SESSION);
    wd_cache_key_add_str(k, clientid);
}

void wd_backends_session_put(struct wd_backends *b, const struct wd_authn_req *req,
                             enum wd_session_source src, const struct wd_step_result *r)
{
    const struct wd_client *c = &req->client;
    struct wd_session *s = wd_calloc(1, sizeof *s);
    s->username = wd_strdup(c->username);
    s->peerhost = wd_strdup(c->peerhost);
    s->peerport = c->peerport;
    s->source = src;
    /* only a step that checked a credential can make a superuser (belt and braces: the
     * chain sets it for no other step) */
    s->superuser = src != WD_SESSION_OTHER && r->superuser;
    s->jwt = r->jwt;
    s->exp = r->jwt ? r->jwt->res.exp : 0;
    size_t bytes =
        sizeof *s + strlen(c->username) + strlen(c->peerhost) + (r->jwt ? r->jwt->bytes : 0);
    int64_t ttl = 0;
    if (s->exp) {
        ttl = (s->exp + b->jwt_leeway_s - unix_now()) * 1000;
        if (ttl <= 0)
            ttl = 1;
        if (b->session_ttl_ms && b->session_ttl_ms < ttl)
            ttl = b->session_ttl_ms;
    }
    struct wd_cache_key k;
    session_key(&k, c->clientid);
    if (wd_cache_put(b->sessions, &k, s, bytes, false, ttl, session_free, c->username,
                     strlen(c->username), NULL) != WD_OK) {
        wd_log_warn("session", "cannot record the session of client %s (too large)", c->clientid);
        session_free(s);
        /* an earlier login's session under this clientid must not outlive this one */
        wd_cache_remove(b->sessions, &k);
    } else {
        wd_metrics_inc(WD_M_SESSIONS_CREATED);
    }
    wd_cache_key_cleanup(&k);
}

/* The session s was recorded by the connection c is on: same username and peer (a port of 0
 * is unknown and not compared). */
static bool same_connection(const void *value, void *ctx)
{
    const struct wd_session *s = value;
    const struct wd_client *c = ctx;
    if (strcmp(s->username, c->username) != 0 || strcmp(s->peerhost, c->peerhost) != 0)
        return false;
    return s->peerport == 0 || c->peerport == 0 || s->peerport == c->peerport;
}

const struct wd_session *wd_backends_session_get(struct wd_backends *b, const struct wd_client *c)
{
    struct wd_cache_key k;
    session_key(&k, c->clientid);
    void *v;
    struct wd_cache_ref *ref = wd_cache_get(b->sessions, &k, &v, NULL);
    wd_cache_key_cleanup(&k);
    if (!ref)
        return NULL;
    struct wd_session *s = v;
    if (!same_connection(s, (void *)c)) {
        /* another login under this clientid (another username, or another connection that
         * warden did not allow: a denied or unanswered CONNECT, another replica): not this
         * client's, and never its superuser flag */
        wd_cache_release(ref);
        return NULL;
    }
    if (s->exp && unix_now() >= s->exp + b->jwt_leeway_s) {
        wd_cache_release(ref);
        return NULL; /* the token expired: the session's rights went with it */
    }
    /* the handle is the cache reference: it keeps the session alive until released */
    return (const struct wd_session *)ref;
}

/* The handle given out by session_get is the cache reference itself. */
static const struct wd_session *sess_of(const struct wd_session *h)
{
    return h ? wd_cache_ref_value((const struct wd_cache_ref *)h) : NULL;
}

void wd_backends_session_release(struct wd_backends *b, const struct wd_session *s)
{
    (void)b;
    wd_cache_release((struct wd_cache_ref *)s);
}

bool wd_session_superuser(const struct wd_session *h)
{
    const struct wd_session *s = sess_of(h);
    return s && s->superuser;
}

void wd_backends_session_drop(struct wd_backends *b, const struct wd_client *c)
{
    struct wd_cache_key k;
    session_key(&k, c->clientid);
    if (wd_cache_remove_if(b->sessions, &k, same_connection, (void *)c) == WD_OK)
        wd_metrics_inc(WD_M_SESSIONS_DROPPED);
    wd_cache_key_cleanup(&k);
}

static const char *session_claim(const void *ctx, const char *name, size_t len)
{
    const struct wd_session *s = ctx;
    char buf[256];
    if (!s->jwt || len >= sizeof buf)
        return NULL;
    memcpy(buf, name, len);
    buf[len] = '\0';
    return wd_jwt_result_claim(&s->jwt->res, buf);
}

void wd_session_bind_claims(const struct wd_session *h, struct wd_client *c)
{
    const struct wd_session *s = sess_of(h);
    if (s && s->jwt) {
        c->claim = session_claim;
        c->claim_ctx = s;
    }
}

/* ---- authorization sources ---- */

static void policy_release_cb(void *p)
{
    wd_policy_release(p);
}

/* The client's Redis ACL, compiled, from the cache or Redis. WD_OK with *out (a reference
 * in *ref, or an uncached policy in *own), WD_ENOENT when the key template has no value for
 * this client (no lookup), or WD_EBACKEND. */
static int redis_acl(struct wd_backends_local *l, const struct wd_client *c,
                     const struct wd_policy **out, struct wd_cache_ref **ref,
                     struct wd_policy **own)
{
    struct wd_backends *b = l->b;
    *ref = NULL;
    *own = NULL;
    char *key = NULL;
    size_t keylen = 0;
    int kr = wd_redis_tmpl_render(b->acl_key, c, &key, &keylen);
    if (kr != WD_OK)
        return kr == WD_ENOENT ? WD_ENOENT : WD_EBACKEND; /* ENOENT: no key, no entries */
    struct wd_cache_key ck;
    wd_cache_key_init(&ck, WD_CACHE_KIND_REDIS_ACL);
    wd_cache_key_add(&ck, key, keylen);
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
    struct wd_redis *r = redis_of(l);
    struct wd_acl_entry *ents = NULL;
    size_t n = 0;
    char who[200];
    struct skip_ctx sk = {"Redis ACL", client_label(b, c, who, sizeof who), 0};
    wd_metrics_inc(WD_M_REDIS_LOOKUPS);
    if (!r || wd_redis_acl_get(r, key, keylen, &ents, &n, log_acl_skip, &sk) != WD_OK) {
        wd_metrics_inc(WD_M_REDIS_ERRORS);
        backend_warn("ACL lookup", r ? wd_redis_last_error(r) : "no client");
        rc = WD_EBACKEND;
        goto done;
    }
    struct wd_policy_rule_in *in = wd_calloc(n ? n : 1, sizeof *in);
    for (size_t i = 0; i < n; i++) {
        in[i].perm = WD_DECISION_ALLOW;
        in[i].actions = ents[i].actions;
        in[i].topics = (const char *const *)&ents[i].topic;
        in[i].ntopics = 1;
        in[i].eq = ents[i].eq;
        in[i].qos_mask = ents[i].qos_mask;
        in[i].retain = ents[i].retain;
    }
    struct wd_policy *p = NULL;
    if (wd_policy_compile_rules(in, n, log_skip, &sk, &p) != WD_OK)
        p = NULL;
    free(in);
    wd_acl_entries_free(ents, n);
    if (!p) {
        rc = WD_EBACKEND;
        goto done;
    }
    if (b->cache) {
        size_t bytes = wd_policy_memory(p);
        if (wd_cache_put(b->cache, &ck, p, bytes, n == 0, 0, policy_release_cb, c->username,
                         strlen(c->username), ref) == WD_OK) {
            *out = p;
            goto done;
        }
    }
    *own = p;
    *out = p;
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
    if (src == WD_SOURCE_REDIS) {
        if (!b->redis_on)
            return 0;
        const struct wd_policy *acl;
        struct wd_cache_ref *ref;
        struct wd_policy *own;
        int ar = redis_acl(sc->l, &req->client, &acl, &ref, &own);
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
    const struct wd_session *s = sess_of(sc->session);
    if (!s) {
        /* authenticated elsewhere (another replica, before a restart) or expired: the
         * token and so its ACL are unknown here. Fail closed. */
        out->decision = WD_DECISION_DENY;
        sc->reason = "jwt: no session for this client (token expired or unknown here): denied";
        return 1;
    }
    if (!s->jwt)
        return 0; /* authenticated without a token: this source has nothing to say */
    switch (s->jwt->res.acl_format) {
    case WD_JWT_ACL_ABSENT:
        return 0;
    case WD_JWT_ACL_INVALID:
        out->decision = WD_DECISION_DENY;
        sc->reason = "jwt: ACL claim is neither an object nor a list: denied";
        return 1;
    case WD_JWT_ACL_V1_OBJECT:
    case WD_JWT_ACL_V2_LIST:
        break;
    }
    if (!s->jwt->acl) {
        out->decision = WD_DECISION_DENY;
        sc->reason = "jwt: ACL could not be compiled: denied";
        return 1;
    }
    wd_policy_authorize(s->jwt->acl, req, &r);
    if (r.decision == WD_DECISION_NOMATCH) {
        if (s->jwt->res.acl_format == WD_JWT_ACL_V2_LIST)
            return 0;
        /* EMQX: the v1 object form denies what it does not allow */
        out->decision = WD_DECISION_DENY;
        sc->reason = "jwt: ACL claim (pub/sub/all) does not allow it";
        return 1;
    }
    out->decision = r.decision;
    sc->reason = "jwt ACL rule matched";
    return 1;
}

/* ---- operations ---- */

size_t wd_backends_flush_all(struct wd_backends *b)
{
    size_t n = wd_cache_flush_all(b->sessions);
    if (b->cache)
        n += wd_cache_flush_all(b->cache);
    return n;
}

size_t wd_backends_flush_user(struct wd_backends *b, const char *user, size_t len)
{
    size_t n = wd_cache_flush_tag(b->sessions, user, len);
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
    stats_of(out, "sessions", b->sessions);
    wd_buf_printf(out, "redis: %s\n", b->redis_on ? "configured" : "not configured");
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
