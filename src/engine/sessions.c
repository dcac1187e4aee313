/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sessions.c: see sessions.h. The table is a wd_cache keyed by (SESSION, clientid) whose
 * values are session references (the cache holds one; its free function drops it), so a
 * handle given out is the session itself, never a cache reference.
 */
#include "engine/sessions.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/wd.h"
#include "engine/jwtident.h"
#include "store/cache.h"

#define WD_CACHE_KIND_SESSION 5
#define FOREVER_MS ((int64_t)3650 * 86400 * 1000)

struct wd_session {
    atomic_uint refs;
    char *username; /* the clientid is the key: not kept twice */
    char *peerhost;
    uint32_t peerport;
    enum wd_session_source source;
    bool superuser;
    int64_t exp; /* Unix seconds; 0: no token expiry */
    struct wd_jwt_ident *jwt;
};

struct wd_sessions {
    struct wd_cache *cache;
    int64_t ttl_ms;
    int64_t leeway_s;
    struct wd_sessions_clock clock;
};

static int64_t real_mono_ms(void *ctx)
{
    return wd_cache_clock_monotonic(ctx);
}

static int64_t real_unix_s(void *ctx)
{
    (void)ctx;
    return (int64_t)time(NULL);
}

static int64_t cache_clock(void *ctx)
{
    const struct wd_sessions_clock *c = ctx;
    return c->mono_ms(c->ctx);
}

static int64_t unix_now(const struct wd_sessions *t)
{
    return t->clock.unix_s(t->clock.ctx);
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

struct wd_sessions *wd_sessions_new(const struct wd_sessions_config *cfg)
{
    struct wd_sessions *t = wd_calloc(1, sizeof *t);
    if (cfg->clock) {
        t->clock = *cfg->clock;
    } else {
        t->clock.mono_ms = real_mono_ms;
        t->clock.unix_s = real_unix_s;
    }
    t->ttl_ms = cfg->ttl_ms;
    t->leeway_s = cfg->leeway_s;
    struct wd_cache_config sc = {
        .shards = shards_for(cfg->max_entries),
        .max_entries = cfg->max_entries,
        .max_bytes = cfg->max_bytes,
        .ttl_ms = cfg->ttl_ms ? cfg->ttl_ms : FOREVER_MS,
        .negative_ttl_ms = 1,
        .now_ms = cache_clock,
        .clock_ctx = &t->clock,
    };
    if (cfg->max_entries < 16 || cfg->max_bytes < 65536 || !(t->cache = wd_cache_new(&sc))) {
        free(t);
        return NULL;
    }
    return t;
}

void wd_sessions_free(struct wd_sessions *t)
{
    if (!t)
        return;
    wd_cache_free(t->cache);
    free(t);
}

struct wd_session *wd_session_get(struct wd_session *s)
{
    if (s)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

void wd_session_release(struct wd_session *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    wd_jwt_ident_release(s->jwt);
    free(s->username);
    free(s->peerhost);
    free(s);
}

static void session_release_cb(void *p)
{
    wd_session_release(p);
}

static void session_key(struct wd_cache_key *k, const char *clientid)
{
    wd_cache_key_init(k, WD_CACHE_KIND_SESSION);
    wd_cache_key_add_str(k, clientid);
}

int wd_sessions_put(struct wd_sessions *t, const struct wd_client *c, enum wd_session_source src,
                    bool superuser, struct wd_jwt_ident *jwt, struct wd_session **out,
                    int64_t *end_ms)
{
    if (out)
        *out = NULL;
    if (end_ms)
        *end_ms = 0;
    struct wd_session *s = wd_calloc(1, sizeof *s);
    atomic_init(&s->refs, 1);
    s->username = wd_strdup(c->username);
    s->peerhost = wd_strdup(c->peerhost);
    s->peerport = c->peerport;
    s->source = src;
    /* only a step that checked a credential can make a superuser (belt and braces: the
     * chain sets it for no other step) */
    s->superuser = src != WD_SESSION_OTHER && superuser;
    s->jwt = jwt;
    s->exp = jwt ? jwt->res.exp : 0;
    size_t bytes = sizeof *s + strlen(c->username) + strlen(c->peerhost) + (jwt ? jwt->bytes : 0);
    int64_t now = unix_now(t);
    int64_t ttl = t->ttl_ms; /* 0: the table's default (session_ttl, or none) */
    if (s->exp) {
        int64_t left = (s->exp + t->leeway_s - now) * 1000;
        if (left <= 0)
            left = 1;
        if (!ttl || left < ttl)
            ttl = left;
    }
    struct wd_cache_key k;
    session_key(&k, c->clientid);
    int rc = wd_cache_put(t->cache, &k, s, bytes, false, ttl, session_release_cb, c->username,
                          strlen(c->username), NULL);
    if (rc != WD_OK) {
        wd_log_warn("session", "cannot record the session of client %s (too large)", c->clientid);
        wd_session_release(s);
        /* an earlier login's session under this clientid must not outlive this one */
        wd_cache_remove(t->cache, &k);
        rc = WD_ETOOBIG;
    } else {
        wd_metrics_inc(WD_M_SESSIONS_CREATED);
        if (out)
            *out = wd_session_get(s);
        if (end_ms && ttl)
            *end_ms = now * 1000 + ttl;
    }
    wd_cache_key_cleanup(&k);
    return rc;
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

bool wd_session_usable(const struct wd_sessions *t, const struct wd_session *s,
                       const struct wd_client *c)
{
    if (!s || !same_connection(s, (void *)c)) {
        /* another login under this clientid (another username, or another connection that
         * warden did not allow: a denied or unanswered CONNECT, another replica): not this
         * client's, and never its superuser flag */
        return false;
    }
    /* the token expired: the session's rights went with it */
    return !s->exp || unix_now(t) < s->exp + t->leeway_s;
}

enum wd_sessions_found wd_sessions_lookup(struct wd_sessions *t, const struct wd_client *c,
                                          struct wd_session **out)
{
    *out = NULL;
    struct wd_cache_key k;
    session_key(&k, c->clientid);
    void *v;
    struct wd_cache_ref *ref = wd_cache_get(t->cache, &k, &v, NULL);
    wd_cache_key_cleanup(&k);
    if (!ref)
        return WD_SESSIONS_MISS;
    struct wd_session *s = v;
    enum wd_sessions_found f = WD_SESSIONS_MISS;
    if (wd_session_usable(t, s, c)) {
        *out = wd_session_get(s);
        f = WD_SESSIONS_HIT;
    }
    wd_cache_release(ref);
    return f;
}

bool wd_sessions_drop(struct wd_sessions *t, const struct wd_client *c)
{
    struct wd_cache_key k;
    session_key(&k, c->clientid);
    bool dropped = wd_cache_remove_if(t->cache, &k, same_connection, (void *)c) == WD_OK;
    wd_cache_key_cleanup(&k);
    if (dropped)
        wd_metrics_inc(WD_M_SESSIONS_DROPPED);
    return dropped;
}

size_t wd_sessions_flush_all(struct wd_sessions *t)
{
    return wd_cache_flush_all(t->cache);
}

size_t wd_sessions_flush_user(struct wd_sessions *t, const char *user, size_t len)
{
    return wd_cache_flush_tag(t->cache, user, len);
}

void wd_sessions_stats(struct wd_sessions *t, struct wd_buf *out)
{
    struct wd_cache_stats st;
    wd_cache_stats(t->cache, &st);
    wd_buf_printf(out,
                  "sessions: entries %llu/%llu bytes %llu/%llu hits %llu misses %llu insertions "
                  "%llu evictions %llu expirations %llu\n",
                  (unsigned long long)st.entries, (unsigned long long)st.max_entries,
                  (unsigned long long)st.bytes, (unsigned long long)st.max_bytes,
                  (unsigned long long)st.hits, (unsigned long long)st.misses,
                  (unsigned long long)st.insertions, (unsigned long long)st.evictions,
                  (unsigned long long)st.expirations);
}

bool wd_session_superuser(const struct wd_session *s)
{
    return s && s->superuser;
}

const struct wd_jwt_ident *wd_session_jwt(const struct wd_session *s)
{
    return s ? s->jwt : NULL;
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

void wd_session_bind_claims(const struct wd_session *s, struct wd_client *c)
{
    if (s && s->jwt) {
        c->claim = session_claim;
        c->claim_ctx = s;
    }
}
