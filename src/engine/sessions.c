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
    bool absent; /* a remembered miss of this connection, not a session */
    int64_t exp; /* Unix seconds; 0: no token expiry */
    struct wd_jwt_ident *jwt;
};

struct wd_sessions {
    struct wd_cache *cache;
    int64_t ttl_ms;
    int64_t leeway_s;
    int64_t miss_ttl_ms;
    struct wd_clock clock;
};

static int64_t unix_now(const struct wd_sessions *t)
{
    return wd_clock_unix_s(&t->clock);
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
    t->clock = *wd_clock_or_real(cfg->clock);
    t->ttl_ms = cfg->ttl_ms;
    t->leeway_s = cfg->leeway_s;
    t->miss_ttl_ms = cfg->miss_ttl_ms > 0 ? cfg->miss_ttl_ms : 1000;
    struct wd_cache_config sc = {
        .shards = shards_for(cfg->max_entries),
        .max_entries = cfg->max_entries,
        .max_bytes = cfg->max_bytes,
        .ttl_ms = cfg->ttl_ms ? cfg->ttl_ms : FOREVER_MS,
        .negative_ttl_ms = 1,
        .clock = &t->clock,
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
    /* the caller's reference is taken before the cache has the session: once put, another
     * thread's login may replace it and drop the cache's reference at any moment */
    struct wd_session *mine = out ? wd_session_get(s) : NULL;
    int rc = wd_cache_put(t->cache, &k, s, bytes, false, ttl, session_release_cb, c->username,
                          strlen(c->username), NULL);
    if (rc != WD_OK) {
        wd_log_warn("session", "cannot record the session of client %s (too large)", c->clientid);
        wd_session_release(mine);
        wd_session_release(s);
        /* an earlier login's session under this clientid must not outlive this one */
        wd_cache_remove(t->cache, &k);
        rc = WD_ETOOBIG;
    } else {
        wd_metrics_inc(WD_M_SESSIONS_CREATED);
        if (out)
            *out = mine;
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
    if (!s || s->absent || !same_connection(s, (void *)c)) {
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
    if (s->absent) {
        if (same_connection(s, (void *)c))
            f = WD_SESSIONS_ABSENT;
    } else if (wd_session_usable(t, s, c)) {
        *out = wd_session_get(s);
        f = WD_SESSIONS_HIT;
    }
    wd_cache_release(ref);
    return f;
}

static struct wd_session *session_new(const char *user, const char *host, uint32_t port)
{
    struct wd_session *s = wd_calloc(1, sizeof *s);
    atomic_init(&s->refs, 1);
    s->username = wd_strdup(user);
    s->peerhost = wd_strdup(host);
    s->peerport = port;
    return s;
}

static size_t session_bytes(const struct wd_session *s)
{
    return sizeof *s + strlen(s->username) + strlen(s->peerhost) + (s->jwt ? s->jwt->bytes : 0);
}

void wd_sessions_note_miss(struct wd_sessions *t, const struct wd_client *c)
{
    struct wd_cache_key k;
    session_key(&k, c->clientid);
    void *v;
    struct wd_cache_ref *ref = wd_cache_get(t->cache, &k, &v, NULL);
    if (ref) {
        const struct wd_session *old = v;
        bool keep = !old->absent && !same_connection(old, (void *)c) &&
                    (!old->exp || unix_now(t) < old->exp + t->leeway_s);
        wd_cache_release(ref);
        if (keep) {
            wd_cache_key_cleanup(&k);
            return;
        }
    }
    struct wd_session *m = session_new(c->username, c->peerhost, c->peerport);
    m->absent = true;
    m->source = WD_SESSION_OTHER;
    if (wd_cache_put(t->cache, &k, m, session_bytes(m), true, t->miss_ttl_ms, session_release_cb,
                     c->username, strlen(c->username), NULL) != WD_OK)
        wd_session_release(m);
    wd_cache_key_cleanup(&k);
}

struct wd_session *wd_sessions_adopt(struct wd_sessions *t, const struct wd_client *c,
                                     struct wd_session_rec *rec, const char *who)
{
    struct wd_session *s = session_new(rec->username, rec->peerhost, rec->peerport);
    s->source = rec->source;
    s->superuser = rec->source != WD_SESSION_OTHER && rec->superuser;
    s->exp = rec->exp;
    if (rec->has_jwt) {
        rec->jwt.exp = rec->exp;
        rec->jwt.is_superuser = s->superuser;
        rec->has_jwt = false;
        /* the rules were checked when the token was; a v2 list stored by warden has none
         * skipped, so this fails only for a record warden did not write */
        if (wd_jwt_ident_new(&rec->jwt, who, 0, &s->jwt) != WD_OK) {
            memset(&rec->jwt, 0, sizeof rec->jwt);
            wd_session_rec_cleanup(rec);
            wd_session_release(s);
            return NULL;
        }
        memset(&rec->jwt, 0, sizeof rec->jwt); /* taken by the ident */
    }
    int64_t ttl = rec->end_ms - unix_now(t) * 1000;
    wd_session_rec_cleanup(rec);
    if (ttl <= 0 || !wd_session_usable(t, s, c)) {
        wd_session_release(s);
        return NULL;
    }
    if (t->ttl_ms && t->ttl_ms < ttl)
        ttl = t->ttl_ms; /* this replica's session_ttl holds too */
    struct wd_cache_key k;
    session_key(&k, c->clientid);
    if (wd_cache_put(t->cache, &k, wd_session_get(s), session_bytes(s), false, ttl,
                     session_release_cb, s->username, strlen(s->username), NULL) != WD_OK)
        wd_session_release(s); /* too large here: used for this call, not kept */
    wd_cache_key_cleanup(&k);
    return s;
}

void wd_session_rec_view(const struct wd_session *s, int64_t end_ms, struct wd_session_rec *r)
{
    memset(r, 0, sizeof *r);
    r->username = s->username;
    r->peerhost = s->peerhost;
    r->peerport = s->peerport;
    r->source = s->source;
    r->superuser = s->superuser;
    r->end_ms = end_ms;
    r->exp = s->exp;
    if (s->jwt) {
        r->has_jwt = true;
        r->jwt = s->jwt->res; /* a shallow copy: borrowed */
    }
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

int64_t wd_sessions_now_ms(const struct wd_sessions *t)
{
    return unix_now(t) * 1000;
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

void wd_sessions_cache_stats(struct wd_sessions *t, struct wd_cache_stats *out)
{
    wd_cache_stats(t->cache, out);
}

bool wd_session_superuser(const struct wd_session *s)
{
    return s && s->superuser;
}

const struct wd_jwt_ident *wd_session_jwt(const struct wd_session *s)
{
    return s ? s->jwt : NULL;
}

void wd_session_bind_claims(const struct wd_session *s, struct wd_client *c)
{
    if (s)
        wd_jwt_ident_bind_claims(s->jwt, c);
}
