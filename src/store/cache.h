/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cache.h: the in-process cache in front of the credential and rule stores. A sharded LRU,
 * bounded by entries and by value bytes, with a TTL per entry (a shorter default for
 * negative answers) and an injected clock, so tests control time.
 *
 * Keys are built from PARTS (kind, username, clientid, password, policy generation, ...) with
 * the wd_cache_key_* helpers. Parts are encoded unambiguously (each one typed and
 * length-prefixed, so ("ab","c") and ("a","bc") differ and NUL bytes are ordinary bytes), and
 * the encoding is put through HMAC-SHA256 under a per-cache secret. The cache stores and
 * compares only that 32-byte digest: plaintext parts (passwords) are never kept in it, and the
 * caller's scratch encoding is wiped by wd_cache_key_cleanup().
 *
 * Values are opaque and refcounted. wd_cache_get() returns a referenced handle that keeps
 * the value alive, even after the entry is evicted, replaced or flushed, until
 * wd_cache_release(); the value's free_fn runs exactly once, when the last reference goes.
 *
 * Thread safety: every function may be called from any thread at the same time, except
 * wd_cache_free() (no call on the same cache may run concurrently with or after it) and the
 * wd_cache_key_* helpers (a key belongs to one thread). There is no global state. See
 * docs/cache.md for the design.
 */
#ifndef WD_STORE_CACHE_H
#define WD_STORE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

#define WD_CACHE_DIGEST_LEN 32
/* Largest encoded key (all parts, with their framing); wd_cache_key_add() beyond it fails
 * with WD_ETOOBIG and the key is unusable until wd_cache_key_init() again. */
#define WD_CACHE_KEY_MAX (1024 * 1024)
#define WD_CACHE_SECRET_MAX 64

/* Defaults used for zero fields of struct wd_cache_config. */
#define WD_CACHE_DEFAULT_SHARDS 16
#define WD_CACHE_DEFAULT_MAX_ENTRIES 65536
#define WD_CACHE_DEFAULT_MAX_BYTES (64u * 1024 * 1024)
#define WD_CACHE_DEFAULT_TTL_MS 60000
#define WD_CACHE_DEFAULT_NEGATIVE_TTL_MS 5000

/* What a key is for: the first part of every key, so the kinds never share an entry. The
 * engine may use other values too; the cache only hashes the number. */
enum wd_cache_kind {
    WD_CACHE_KIND_AUTHN_VERDICT = 1, /* credential verdicts */
    WD_CACHE_KIND_REDIS_ACL = 2,     /* per-user Redis ACLs, compiled */
    WD_CACHE_KIND_JWT_CLAIMS = 3,    /* verified JWT claims, by token hash */
    WD_CACHE_KIND_AUTHZ_DECISION = 4 /* authorize decisions, by policy generation */
};

struct wd_cache_config {
    unsigned shards;         /* a power of two, <= 1024; 0 = WD_CACHE_DEFAULT_SHARDS */
    size_t max_entries;      /* in total, split evenly over shards; 0 = default. Must give
                              * every shard at least one entry (max_entries >= shards). */
    size_t max_bytes;        /* sum of value_bytes in total, split the same way; 0 =
                              * default; must be >= shards */
    int64_t ttl_ms;          /* default TTL of positive entries; 0 = default */
    int64_t negative_ttl_ms; /* default TTL of negative entries; 0 = default */
    const uint8_t *secret;   /* HMAC key, 16..64 bytes (16 or 32 are usual), copied; NULL
                              * = 32 fresh bytes from RAND_bytes (per process, which is
                              * right: the cache does not outlive the process) */
    size_t secret_len;
    const struct wd_clock *clock; /* copied; its mono_ms runs the TTLs. NULL: the real one */
};

struct wd_cache;
/* A referenced entry: keeps its value alive until wd_cache_release(). */
struct wd_cache_ref;

/* A key under construction. Lives on the caller's stack; the fields are private, and the
 * struct must not be copied (buf may point into it). Always pair wd_cache_key_init() with
 * wd_cache_key_cleanup() (which wipes the encoded parts). A key may be used for several
 * calls (get, then put on a miss): its digest is computed once per cache. */
struct wd_cache_key {
    uint8_t *buf; /* points at inline or at a heap copy once it outgrows inline */
    size_t len, cap;
    int rc;                   /* first error while adding parts, or WD_OK */
    uint64_t digest_cache_id; /* id of the cache that computed digest, 0 = none */
    uint8_t digest[WD_CACHE_DIGEST_LEN];
    uint64_t origin_cache_id; /* id of the cache that set origin, 0 = no origin */
    uint64_t origin_epoch;    /* the cache's origin epoch when origin was set */
    uint8_t origin[WD_CACHE_DIGEST_LEN];
    uint8_t inline_buf[192];
};

/* Starts a key of this kind. Never fails. */
void wd_cache_key_init(struct wd_cache_key *k, uint32_t kind);
/* Appends a part: any bytes (NUL included, len 0 allowed; p may be NULL when len is 0).
 * WD_OK, WD_EINVAL (p NULL with len > 0) or WD_ETOOBIG (key over WD_CACHE_KEY_MAX); after an
 * error the key stays in error and wd_cache_get/put refuse it. */
int wd_cache_key_add(struct wd_cache_key *k, const void *p, size_t len);
/* Appends a NUL-terminated string part (same as wd_cache_key_add(k, s, strlen(s))). */
int wd_cache_key_add_str(struct wd_cache_key *k, const char *s);
/* Appends a number as its own typed part: never equal to any byte-string part. */
int wd_cache_key_add_u64(struct wd_cache_key *k, uint64_t v);
/* Origins (cache_invalidation tracking, docs/cache.md "Coherence with Redis"): the entry put
 * under this key is derived from ORIGIN (a Redis key, any bytes, kept as a keyed hash) and is
 * dropped by wd_cache_flush_origin() with the same bytes. Call it BEFORE reading the origin:
 * it also takes the cache's origin epoch, and the put is refused (WD_EAGAIN, the caller keeps
 * its value) if any origin was flushed or the origins were suspended since, because the value
 * read may predate a write whose invalidation was already processed. Only wd_cache_put with
 * cache c honours it. WD_OK, or WD_EINVAL (NULL cache or key, origin NULL with a length). */
int wd_cache_key_origin(struct wd_cache *c, struct wd_cache_key *k, const void *origin, size_t len);
/* Wipes the encoded parts (OPENSSL_cleanse) and frees them. NULL-safe; idempotent. */
void wd_cache_key_cleanup(struct wd_cache_key *k);

/* A new cache, or NULL if cfg is invalid (shards not a power of two or > 1024, fewer
 * entries or bytes than shards, negative TTLs, bad secret length) or OpenSSL fails. */
struct wd_cache *wd_cache_new(const struct wd_cache_config *cfg);
/* Drops every entry (free_fn runs for those no reference holds) and the cache. References
 * still held stay valid: wd_cache_release() does not touch the cache. NULL-safe. */
void wd_cache_free(struct wd_cache *c);

/* Looks the key up. On a hit returns a reference (release it with wd_cache_release()) and
 * sets *value and *negative (either may be NULL); on a miss, an expired entry (which is
 * dropped) or a key in error returns NULL and sets *value = NULL, *negative = false. The key
 * is not const only because its digest is memoized in it. */
struct wd_cache_ref *wd_cache_get(struct wd_cache *c, struct wd_cache_key *key, void **value,
                                  bool *negative);

/* Stores value under key, replacing any entry there (holders of the old one keep it until
 * they release it). value_bytes counts against max_bytes; negative marks a negative answer
 * ("no such user", "deny"); ttl_ms 0 means the configured default for positive or negative
 * entries. free_fn (may be NULL) is called once with value when the entry's last reference
 * goes. tag (tag_len bytes, e.g. the username; NULL for none) is kept only as a keyed hash,
 * for wd_cache_flush_tag(). If ref_out is not NULL it receives a reference to the new entry,
 * so the caller may keep using value safely while other threads evict it.
 *
 * On WD_OK the cache owns value. On error it does not (free_fn is not called): WD_EINVAL
 * (NULL cache/key, ttl_ms < 0), WD_ETOOBIG (key in error, or value_bytes larger than a
 * shard's byte budget), or the key's own error code. */
int wd_cache_put(struct wd_cache *c, struct wd_cache_key *key, void *value, size_t value_bytes,
                 bool negative, int64_t ttl_ms, void (*free_fn)(void *value), const void *tag,
                 size_t tag_len, struct wd_cache_ref **ref_out);

/* Drops a reference; the last one runs free_fn. NULL-safe. */
void wd_cache_release(struct wd_cache_ref *ref);
/* The value and negative flag of a reference. */
void *wd_cache_ref_value(const struct wd_cache_ref *ref);
bool wd_cache_ref_negative(const struct wd_cache_ref *ref);

/* Removes the entry for key, if any. WD_OK or WD_ENOENT (or the key's error). */
int wd_cache_remove(struct wd_cache *c, struct wd_cache_key *key);
/* Removes the entry for key only if pred(value, ctx) is true, deciding under the shard lock
 * (so a concurrent put of a new value for the key is never removed by mistake). pred must
 * be quick and must not call into the cache. WD_OK (removed) or WD_ENOENT. */
int wd_cache_remove_if(struct wd_cache *c, struct wd_cache_key *key,
                       bool (*pred)(const void *value, void *ctx), void *ctx);
/* Admin flushes: drop every entry, or every entry put with this tag. Return how many were
 * dropped. Entries held by references stay alive until released. */
size_t wd_cache_flush_all(struct wd_cache *c);
size_t wd_cache_flush_tag(struct wd_cache *c, const void *tag, size_t tag_len);
/* Origins: drop the entries put with this origin (wd_cache_key_origin), or with any origin;
 * both first advance the origin epoch, so a value read before the flush is never put after
 * it. Return how many were dropped. */
size_t wd_cache_flush_origin(struct wd_cache *c, const void *origin, size_t len);
size_t wd_cache_flush_origins(struct wd_cache *c);
/* While the invalidation stream is down: wd_cache_origins_suspend() flushes every entry with
 * an origin and refuses puts of new ones (WD_EAGAIN) until wd_cache_origins_resume(), which
 * also advances the epoch (a read sent while suspended is never cached). Entries without an
 * origin are not affected. Returns how many were dropped. */
size_t wd_cache_origins_suspend(struct wd_cache *c);
void wd_cache_origins_resume(struct wd_cache *c);

/* Drops expired entries everywhere (lookups and eviction also drop them as they meet them);
 * returns how many. For a periodic housekeeping timer; optional. */
size_t wd_cache_sweep(struct wd_cache *c);

struct wd_cache_stats {
    uint64_t hits, misses, insertions, evictions, expirations;
    uint64_t entries, bytes; /* current totals, in the cache (not counting released-later) */
    uint64_t max_entries, max_bytes; /* the effective limits: per-shard limit * shards */
};
/* Sums the per-shard counters. Each shard is read consistently; the sum is not a snapshot
 * across shards. flush_* and replacement are not counted as evictions. */
void wd_cache_stats(struct wd_cache *c, struct wd_cache_stats *out);

#endif
