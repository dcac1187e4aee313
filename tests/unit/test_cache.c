/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for src/store/cache.c: hits and misses, TTLs under a fake clock, LRU eviction
 * by entries and by bytes, replacement, references outliving eviction and flushes, the key
 * encoding and its keyed hash, admin flushes, counters, and a bounded multi-threaded stress
 * run. Values are test-owned structs whose free_fn only counts calls, so every test can
 * check that each value was freed exactly once and never while referenced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "core/wd.h"
#include "store/cache.h"

/* ---- helpers ---- */

struct fake_clock {
    int64_t now;
};

static int64_t fake_now(void *ctx)
{
    return ((struct fake_clock *)ctx)->now;
}

/* the cache reads only mono_ms */
static int64_t no_unix_s(void *ctx)
{
    (void)ctx;
    return 0;
}

struct tval {
    int id;
    atomic_int freed;
};

static void tval_free(void *p)
{
    atomic_fetch_add(&((struct tval *)p)->freed, 1);
}

static void tval_init(struct tval *v, int id)
{
    v->id = id;
    atomic_init(&v->freed, 0);
}

static struct wd_cache *new_cache(struct fake_clock *clk, unsigned shards, size_t max_entries,
                                  size_t max_bytes)
{
    struct wd_clock wc = {fake_now, no_unix_s, clk};
    struct wd_cache_config cfg = {
        .shards = shards,
        .max_entries = max_entries,
        .max_bytes = max_bytes,
        .ttl_ms = 1000,
        .negative_ttl_ms = 100,
        .clock = &wc,
    };
    struct wd_cache *c = wd_cache_new(&cfg);
    assert_non_null(c);
    return c;
}

/* A key (kind 1, one string part). */
static void key_str(struct wd_cache_key *k, const char *s)
{
    wd_cache_key_init(k, WD_CACHE_KIND_AUTHN_VERDICT);
    assert_int_equal(wd_cache_key_add_str(k, s), WD_OK);
}

static int put_str(struct wd_cache *c, const char *key, struct tval *v, size_t bytes, bool negative,
                   int64_t ttl_ms, const char *tag)
{
    struct wd_cache_key k;
    key_str(&k, key);
    int rc = wd_cache_put(c, &k, v, bytes, negative, ttl_ms, tval_free, tag, tag ? strlen(tag) : 0,
                          NULL);
    wd_cache_key_cleanup(&k);
    return rc;
}

/* The id of the value cached under key, or -1 on a miss. */
static int get_str(struct wd_cache *c, const char *key, bool *negative)
{
    struct wd_cache_key k;
    void *v = (void *)1;
    key_str(&k, key);
    struct wd_cache_ref *r = wd_cache_get(c, &k, &v, negative);
    wd_cache_key_cleanup(&k);
    if (r == NULL) {
        assert_null(v);
        return -1;
    }
    assert_ptr_equal(v, wd_cache_ref_value(r));
    int id = ((struct tval *)v)->id;
    assert_int_equal(atomic_load(&((struct tval *)v)->freed), 0);
    wd_cache_release(r);
    return id;
}

/* ---- hits, misses, TTLs ---- */

static void get_misses_on_an_empty_cache_and_hits_after_put(void **state)
{
    struct fake_clock clk = {.now = 5000};
    struct wd_cache *c = new_cache(&clk, 4, 64, 1 << 20);
    struct tval a;
    tval_init(&a, 7);
    bool neg = true;

    assert_int_equal(get_str(c, "alice", &neg), -1);
    assert_false(neg);
    assert_int_equal(put_str(c, "alice", &a, 10, false, 0, NULL), WD_OK);
    assert_int_equal(get_str(c, "alice", &neg), 7);
    assert_false(neg);
    assert_int_equal(get_str(c, "bob", NULL), -1);
    wd_cache_free(c);
    assert_int_equal(atomic_load(&a.freed), 1);
}

static void positive_entries_expire_after_the_default_ttl(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 1, 8, 1000);
    struct tval a;
    tval_init(&a, 1);
    struct wd_cache_stats st;

    assert_int_equal(put_str(c, "k", &a, 1, false, 0, NULL), WD_OK);
    clk.now = 999;
    assert_int_equal(get_str(c, "k", NULL), 1);
    clk.now = 1000; /* put at 0 + ttl 1000: gone */
    assert_int_equal(get_str(c, "k", NULL), -1);
    assert_int_equal(atomic_load(&a.freed), 1); /* an expired entry is dropped on lookup */
    wd_cache_stats(c, &st);
    assert_int_equal(st.expirations, 1);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    wd_cache_free(c);
    assert_int_equal(atomic_load(&a.freed), 1);
}

static void negative_entries_expire_after_the_shorter_negative_ttl(void **state)
{
    struct fake_clock clk = {.now = 100};
    struct wd_cache *c = new_cache(&clk, 1, 8, 1000);
    struct tval a;
    tval_init(&a, 1);
    bool neg = false;

    assert_int_equal(put_str(c, "nouser", &a, 1, true, 0, NULL), WD_OK);
    clk.now = 199;
    assert_int_equal(get_str(c, "nouser", &neg), 1);
    assert_true(neg);
    clk.now = 200;
    assert_int_equal(get_str(c, "nouser", &neg), -1);
    assert_false(neg);
    wd_cache_free(c);
    assert_int_equal(atomic_load(&a.freed), 1);
}

static void an_explicit_ttl_overrides_the_defaults(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 1, 8, 1000);
    struct tval a, b;
    tval_init(&a, 1);
    tval_init(&b, 2);

    assert_int_equal(put_str(c, "short", &a, 1, false, 10, NULL), WD_OK);
    assert_int_equal(put_str(c, "long-negative", &b, 1, true, 5000, NULL), WD_OK);
    clk.now = 10;
    assert_int_equal(get_str(c, "short", NULL), -1);
    clk.now = 4999;
    assert_int_equal(get_str(c, "long-negative", NULL), 2);
    clk.now = 5000;
    assert_int_equal(get_str(c, "long-negative", NULL), -1);
    assert_int_equal(put_str(c, "bad", &a, 1, false, -1, NULL), WD_EINVAL);
    wd_cache_free(c);
    assert_int_equal(atomic_load(&a.freed), 1);
    assert_int_equal(atomic_load(&b.freed), 1);
}

static void sweep_drops_expired_entries_without_lookups(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 2, 8, 1000);
    struct tval v[3];
    struct wd_cache_stats st;
    for (int i = 0; i < 3; i++)
        tval_init(&v[i], i);

    assert_int_equal(put_str(c, "a", &v[0], 1, false, 10, NULL), WD_OK);
    assert_int_equal(put_str(c, "b", &v[1], 1, true, 0, NULL), WD_OK);  /* 100 ms */
    assert_int_equal(put_str(c, "c", &v[2], 1, false, 0, NULL), WD_OK); /* 1000 ms */
    clk.now = 150;
    assert_int_equal(wd_cache_sweep(c), 2);
    assert_int_equal(atomic_load(&v[0].freed), 1);
    assert_int_equal(atomic_load(&v[1].freed), 1);
    assert_int_equal(atomic_load(&v[2].freed), 0);
    wd_cache_stats(c, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.expirations, 2);
    wd_cache_free(c);
    assert_int_equal(atomic_load(&v[2].freed), 1);
}

/* ---- eviction ---- */

static void lru_evicts_the_least_recently_used_entry_when_over_max_entries(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 1, 3, 1000);
    struct tval v[5];
    struct wd_cache_stats st;
    for (int i = 0; i < 5; i++)
        tval_init(&v[i], i);

    assert_int_equal(put_str(c, "a", &v[0], 1, false, 0, NULL), WD_OK);
    assert_int_equal(put_str(c, "b", &v[1], 1, false, 0, NULL), WD_OK);
    assert_int_equal(put_str(c, "c", &v[2], 1, false, 0, NULL), WD_OK);
    assert_int_equal(get_str(c, "a", NULL), 0); /* a is now the most recent; b the least */
    assert_int_equal(put_str(c, "d", &v[3], 1, false, 0, NULL), WD_OK);
    assert_int_equal(atomic_load(&v[1].freed), 1);
    assert_int_equal(get_str(c, "b", NULL), -1);
    assert_int_equal(get_str(c, "c", NULL), 2); /* order now: c d a (most recent first) */
    assert_int_equal(put_str(c, "e", &v[4], 1, false, 0, NULL), WD_OK);
    assert_int_equal(get_str(c, "a", NULL), -1);
    assert_int_equal(get_str(c, "c", NULL), 2);
    assert_int_equal(get_str(c, "d", NULL), 3);
    assert_int_equal(get_str(c, "e", NULL), 4);
    wd_cache_stats(c, &st);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.entries, 3);
    wd_cache_free(c);
    for (int i = 0; i < 5; i++)
        assert_int_equal(atomic_load(&v[i].freed), 1);
}

static void lru_evicts_by_bytes_until_the_new_value_fits(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 1, 100, 100);
    struct tval v[5];
    struct wd_cache_stats st;
    for (int i = 0; i < 5; i++)
        tval_init(&v[i], i);

    assert_int_equal(put_str(c, "a", &v[0], 30, false, 0, NULL), WD_OK);
    assert_int_equal(put_str(c, "b", &v[1], 30, false, 0, NULL), WD_OK);
    assert_int_equal(put_str(c, "c", &v[2], 30, false, 0, NULL), WD_OK);
    assert_int_equal(get_str(c, "a", NULL), 0); /* LRU: b c a */
    /* 90 + 50 > 100: b and c must go (30 + 50 fits), a stays */
    assert_int_equal(put_str(c, "d", &v[3], 50, false, 0, NULL), WD_OK);
    assert_int_equal(get_str(c, "b", NULL), -1);
    assert_int_equal(get_str(c, "c", NULL), -1);
    assert_int_equal(get_str(c, "a", NULL), 0);
    assert_int_equal(get_str(c, "d", NULL), 3);
    wd_cache_stats(c, &st);
    assert_int_equal(st.bytes, 80);
    assert_int_equal(st.evictions, 2);
    /* exactly the budget is allowed */
    assert_int_equal(put_str(c, "e", &v[4], 100, false, 0, NULL), WD_OK);
    wd_cache_stats(c, &st);
    assert_int_equal(st.bytes, 100);
    assert_int_equal(st.entries, 1);
    wd_cache_free(c);
    for (int i = 0; i < 5; i++)
        assert_int_equal(atomic_load(&v[i].freed), 1);
}

static void a_value_over_the_shard_budget_is_refused_and_stays_the_callers(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 2, 8, 100); /* 50 bytes per shard */
    struct tval a;
    tval_init(&a, 1);
    assert_int_equal(put_str(c, "big", &a, 51, false, 0, NULL), WD_ETOOBIG);
    assert_int_equal(get_str(c, "big", NULL), -1);
    wd_cache_free(c);
    assert_int_equal(atomic_load(&a.freed), 0);
}

static void an_expired_tail_counts_as_an_expiration_not_an_eviction(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 1, 1, 100);
    struct tval a, b;
    struct wd_cache_stats st;
    tval_init(&a, 1);
    tval_init(&b, 2);
    assert_int_equal(put_str(c, "a", &a, 1, false, 10, NULL), WD_OK);
    clk.now = 20;
    assert_int_equal(put_str(c, "b", &b, 1, false, 0, NULL), WD_OK);
    wd_cache_stats(c, &st);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.expirations, 1);
    wd_cache_free(c);
}

/* ---- replacement and references ---- */

static void putting_an_existing_key_replaces_its_value(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 1, 8, 100);
    struct tval a, b;
    struct wd_cache_stats st;
    bool neg = false;
    tval_init(&a, 1);
    tval_init(&b, 2);

    assert_int_equal(put_str(c, "k", &a, 40, true, 0, NULL), WD_OK);
    assert_int_equal(put_str(c, "k", &b, 30, false, 0, NULL), WD_OK);
    assert_int_equal(atomic_load(&a.freed), 1);
    assert_int_equal(get_str(c, "k", &neg), 2);
    assert_false(neg);
    wd_cache_stats(c, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, 30);
    assert_int_equal(st.insertions, 2);
    assert_int_equal(st.evictions, 0);
    wd_cache_free(c);
    assert_int_equal(atomic_load(&b.freed), 1);
}

static void a_reference_keeps_its_value_alive_across_eviction_until_release(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 1, 1, 100);
    struct tval a, b, d;
    struct wd_cache_key k;
    void *v = NULL;
    tval_init(&a, 1);
    tval_init(&b, 2);
    tval_init(&d, 3);

    assert_int_equal(put_str(c, "a", &a, 1, false, 0, NULL), WD_OK);
    key_str(&k, "a");
    struct wd_cache_ref *r = wd_cache_get(c, &k, &v, NULL);
    wd_cache_key_cleanup(&k);
    assert_non_null(r);
    assert_ptr_equal(v, &a);

    assert_int_equal(put_str(c, "b", &b, 1, false, 0, NULL), WD_OK); /* evicts a */
    assert_int_equal(get_str(c, "a", NULL), -1);
    assert_int_equal(atomic_load(&a.freed), 0);
    assert_ptr_equal(wd_cache_ref_value(r), &a);
    wd_cache_release(r);
    assert_int_equal(atomic_load(&a.freed), 1);

    /* the same through a reference handed out by put, and replacement */
    assert_int_equal(put_str(c, "b", &d, 1, false, 0, NULL), WD_OK);
    assert_int_equal(atomic_load(&b.freed), 1);
    wd_cache_free(c);
    assert_int_equal(atomic_load(&d.freed), 1);
}

static void a_reference_outlives_flush_and_the_cache_itself(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 4, 8, 100);
    struct tval a, b;
    struct wd_cache_key k;
    struct wd_cache_ref *ra = NULL, *rb = NULL;
    tval_init(&a, 1);
    tval_init(&b, 2);

    key_str(&k, "a");
    assert_int_equal(wd_cache_put(c, &k, &a, 1, true, 0, tval_free, NULL, 0, &ra), WD_OK);
    wd_cache_key_cleanup(&k);
    assert_non_null(ra);
    assert_true(wd_cache_ref_negative(ra));
    assert_int_equal(wd_cache_flush_all(c), 1);
    assert_int_equal(atomic_load(&a.freed), 0);
    assert_ptr_equal(wd_cache_ref_value(ra), &a);

    key_str(&k, "b");
    assert_int_equal(wd_cache_put(c, &k, &b, 1, false, 0, tval_free, NULL, 0, &rb), WD_OK);
    wd_cache_key_cleanup(&k);
    wd_cache_free(c);
    assert_int_equal(atomic_load(&b.freed), 0);
    wd_cache_release(ra);
    wd_cache_release(rb);
    wd_cache_release(NULL);
    assert_int_equal(atomic_load(&a.freed), 1);
    assert_int_equal(atomic_load(&b.freed), 1);
}

static void remove_drops_one_key(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 1, 8, 100);
    struct tval a;
    struct wd_cache_key k;
    tval_init(&a, 1);
    assert_int_equal(put_str(c, "a", &a, 1, false, 0, NULL), WD_OK);
    key_str(&k, "a");
    assert_int_equal(wd_cache_remove(c, &k), WD_OK);
    assert_int_equal(atomic_load(&a.freed), 1);
    assert_int_equal(wd_cache_remove(c, &k), WD_ENOENT);
    wd_cache_key_cleanup(&k);
    wd_cache_free(c);
    assert_int_equal(atomic_load(&a.freed), 1);
}

static bool is_value(const void *value, void *ctx)
{
    return value == ctx;
}

/* remove_if drops the entry only while it still holds the value the caller saw: a session
 * replaced by a reconnect is not dropped by the old connection's disconnect. */
static void remove_if_drops_only_the_matching_value(void **state)
{
    (void)state;
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 1, 8, 100);
    struct tval a, b;
    struct wd_cache_key k;
    tval_init(&a, 1);
    tval_init(&b, 1);
    assert_int_equal(put_str(c, "a", &a, 1, false, 0, NULL), WD_OK);
    assert_int_equal(put_str(c, "a", &b, 1, false, 0, NULL), WD_OK); /* replaced */
    key_str(&k, "a");
    assert_int_equal(wd_cache_remove_if(c, &k, is_value, &a), WD_ENOENT);
    assert_int_equal(atomic_load(&b.freed), 0);
    assert_int_equal(wd_cache_remove_if(c, &k, is_value, &b), WD_OK);
    assert_int_equal(atomic_load(&b.freed), 1);
    assert_int_equal(wd_cache_remove_if(c, &k, is_value, &b), WD_ENOENT);
    wd_cache_key_cleanup(&k);
    wd_cache_free(c);
}

/* ---- keys ---- */

/* Each key is a list of parts; every list must reach its own entry. */
struct part {
    const char *p;
    size_t len;
    int is_u64;
    uint64_t u;
};

#define B(s, n)                                                                                    \
    {                                                                                              \
        (s), (n), 0, 0                                                                             \
    }
#define U(v)                                                                                       \
    {                                                                                              \
        NULL, 0, 1, (v)                                                                            \
    }

static void build_key(struct wd_cache_key *k, uint32_t kind, const struct part *parts, int n)
{
    wd_cache_key_init(k, kind);
    for (int i = 0; i < n; i++) {
        if (parts[i].is_u64)
            assert_int_equal(wd_cache_key_add_u64(k, parts[i].u), WD_OK);
        else
            assert_int_equal(wd_cache_key_add(k, parts[i].p, parts[i].len), WD_OK);
    }
}

static void keys_with_the_same_bytes_in_different_parts_are_different(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 4, 64, 1000);
    static const uint8_t be7[8] = {0, 0, 0, 0, 0, 0, 0, 7};
    const struct part cases[][3] = {
        {B("ab", 2), B("c", 1)},
        {B("a", 1), B("bc", 2)},
        {B("abc", 3)},
        {B("a\0b", 3)},
        {B("a", 1), B("b", 1)},
        {B("a\0", 2), B("b", 1)},
        {B("a", 1)},
        {B("a", 1), B("", 0)},
        {B("", 0), B("a", 1)},
        {B("", 0)},
        {B(NULL, 0), B(NULL, 0)},
        {B((const char *)be7, 8)},
        {U(7)},
        {B("", 0), U(7)},
        /* a part that embeds what a separator-based encoding would put between parts */
        {B("a\x01\0\0\0\0\0\0\0\x01b", 11)},
        {B("a\x02\0\0\0\0\0\0\0\x07", 10)},
        {B("a", 1), U(7)},
    };
    const int ncases = (int)WD_ARRAY_LEN(cases);
    const int nparts[] = {2, 2, 1, 1, 2, 2, 1, 2, 2, 1, 2, 1, 1, 2, 1, 1, 2};
    struct tval v[WD_ARRAY_LEN(cases) + 2];
    struct wd_cache_key k;
    assert_int_equal(WD_ARRAY_LEN(nparts), ncases);

    for (int i = 0; i < ncases; i++) {
        tval_init(&v[i], i);
        build_key(&k, 1, cases[i], nparts[i]);
        assert_int_equal(wd_cache_put(c, &k, &v[i], 1, false, 0, tval_free, NULL, 0, NULL), WD_OK);
        wd_cache_key_cleanup(&k);
    }
    /* the empty key of another kind, and a key with no parts at all */
    tval_init(&v[ncases], ncases);
    wd_cache_key_init(&k, 2);
    assert_int_equal(wd_cache_key_add(&k, "", 0), WD_OK);
    assert_int_equal(wd_cache_put(c, &k, &v[ncases], 1, false, 0, tval_free, NULL, 0, NULL), WD_OK);
    wd_cache_key_cleanup(&k);
    tval_init(&v[ncases + 1], ncases + 1);
    wd_cache_key_init(&k, 1);
    assert_int_equal(wd_cache_put(c, &k, &v[ncases + 1], 1, false, 0, tval_free, NULL, 0, NULL),
                     WD_OK);
    wd_cache_key_cleanup(&k);

    for (int i = 0; i < ncases; i++) {
        void *got = NULL;
        build_key(&k, 1, cases[i], nparts[i]);
        struct wd_cache_ref *r = wd_cache_get(c, &k, &got, NULL);
        wd_cache_key_cleanup(&k);
        assert_non_null(r);
        assert_int_equal(((struct tval *)got)->id, i);
        wd_cache_release(r);
    }
    for (int i = 0; i < ncases + 2; i++)
        assert_int_equal(atomic_load(&v[i].freed), 0); /* nothing replaced anything */
    wd_cache_free(c);
    for (int i = 0; i < ncases + 2; i++)
        assert_int_equal(atomic_load(&v[i].freed), 1);
}

static void a_key_reaches_the_same_entry_when_rebuilt_or_reused(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 8, 64, 1000);
    struct tval a;
    struct wd_cache_key k;
    char big[1000];
    tval_init(&a, 1);
    memset(big, 'x', sizeof(big)); /* grows the key past its inline buffer */

    wd_cache_key_init(&k, 3);
    assert_int_equal(wd_cache_key_add(&k, big, sizeof(big)), WD_OK);
    assert_int_equal(wd_cache_key_add_u64(&k, 42), WD_OK);
    assert_null(wd_cache_get(c, &k, NULL, NULL)); /* memoizes the digest ... */
    assert_int_equal(wd_cache_put(c, &k, &a, 1, false, 0, tval_free, NULL, 0, NULL), WD_OK);
    wd_cache_key_cleanup(&k);

    wd_cache_key_init(&k, 3);
    assert_int_equal(wd_cache_key_add(&k, big, sizeof(big)), WD_OK);
    assert_int_equal(wd_cache_key_add_u64(&k, 42), WD_OK);
    struct wd_cache_ref *r = wd_cache_get(c, &k, NULL, NULL);
    assert_non_null(r);
    wd_cache_release(r);
    /* ... and adding a part after a lookup must not reuse the stale digest */
    assert_int_equal(wd_cache_key_add_u64(&k, 1), WD_OK);
    assert_null(wd_cache_get(c, &k, NULL, NULL));
    wd_cache_key_cleanup(&k);
    wd_cache_key_cleanup(&k); /* idempotent */
    wd_cache_free(c);
    assert_int_equal(atomic_load(&a.freed), 1);
}

static struct wd_cache *new_keyed_cache(const uint8_t *secret, size_t len)
{
    struct wd_cache_config cfg = {.shards = 1, .secret = secret, .secret_len = len};
    struct wd_cache *c = wd_cache_new(&cfg);
    assert_non_null(c);
    return c;
}

static void the_secret_key_changes_every_digest(void **state)
{
    uint8_t s1[32], s2[32];
    uint8_t d1[WD_CACHE_DIGEST_LEN], d2[WD_CACHE_DIGEST_LEN], d3[WD_CACHE_DIGEST_LEN];
    memset(s1, 0x11, sizeof(s1));
    memcpy(s2, s1, sizeof(s2));
    s2[31] ^= 1;
    struct wd_cache *a = new_keyed_cache(s1, 32);
    struct wd_cache *a2 = new_keyed_cache(s1, 32);
    struct wd_cache *b = new_keyed_cache(s2, 32);
    struct wd_cache *r = new_keyed_cache(NULL, 0);
    struct wd_cache_key k;

    key_str(&k, "hunter2");
    assert_null(wd_cache_get(a, &k, NULL, NULL));
    memcpy(d1, k.digest, sizeof(d1));
    assert_null(wd_cache_get(a2, &k, NULL, NULL)); /* same secret: same digest */
    assert_memory_equal(d1, k.digest, sizeof(d1));
    assert_null(wd_cache_get(b, &k, NULL, NULL)); /* one bit of secret: another digest */
    memcpy(d2, k.digest, sizeof(d2));
    assert_memory_not_equal(d1, d2, sizeof(d1));
    assert_null(wd_cache_get(r, &k, NULL, NULL)); /* a random secret: another one */
    memcpy(d3, k.digest, sizeof(d3));
    assert_memory_not_equal(d1, d3, sizeof(d1));
    assert_memory_not_equal(d2, d3, sizeof(d2));
    wd_cache_key_cleanup(&k);

    /* a 16-byte secret is accepted too */
    struct wd_cache *s16 = new_keyed_cache(s1, 16);
    wd_cache_free(s16);
    wd_cache_free(a);
    wd_cache_free(a2);
    wd_cache_free(b);
    wd_cache_free(r);
}

static int contains(const void *hay, size_t n, const char *needle)
{
    return memmem(hay, n, needle, strlen(needle)) != NULL;
}

static void key_cleanup_wipes_the_encoded_parts(void **state)
{
    struct wd_cache_key k;
    wd_cache_key_init(&k, 1);
    assert_int_equal(wd_cache_key_add_str(&k, "correct-horse-battery"), WD_OK);
    assert_true(contains(k.inline_buf, sizeof(k.inline_buf), "correct-horse-battery"));
    wd_cache_key_cleanup(&k);
    assert_false(contains(k.inline_buf, sizeof(k.inline_buf), "correct-horse-battery"));
    /* a cleaned-up key is refused, not silently hashed as empty */
    assert_int_equal(wd_cache_key_add_str(&k, "x"), WD_EINVAL);
    wd_cache_key_cleanup(&k);
}

static void an_oversized_or_invalid_key_is_refused(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 1, 8, 100);
    struct wd_cache_key k;
    struct tval a;
    char *big = calloc(1, WD_CACHE_KEY_MAX);
    assert_non_null(big);
    tval_init(&a, 1);

    wd_cache_key_init(&k, 1);
    assert_int_equal(wd_cache_key_add(&k, big, WD_CACHE_KEY_MAX - 100), WD_OK);
    assert_int_equal(wd_cache_key_add(&k, big, 100), WD_ETOOBIG);
    assert_int_equal(wd_cache_key_add_u64(&k, 1), WD_ETOOBIG); /* stays in error */
    assert_int_equal(wd_cache_put(c, &k, &a, 1, false, 0, tval_free, NULL, 0, NULL), WD_ETOOBIG);
    assert_null(wd_cache_get(c, &k, NULL, NULL));
    wd_cache_key_cleanup(&k);

    wd_cache_key_init(&k, 1);
    assert_int_equal(wd_cache_key_add(&k, NULL, 3), WD_EINVAL);
    assert_int_equal(wd_cache_put(c, &k, &a, 1, false, 0, tval_free, NULL, 0, NULL), WD_EINVAL);
    wd_cache_key_cleanup(&k);
    free(big);
    wd_cache_free(c);
    assert_int_equal(atomic_load(&a.freed), 0);
}

/* ---- flushes and counters ---- */

static void flush_all_drops_every_entry(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 4, 64, 1000);
    struct tval v[10];
    struct wd_cache_stats st;
    char key[16];
    for (int i = 0; i < 10; i++) {
        tval_init(&v[i], i);
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(put_str(c, key, &v[i], 1, false, 0, NULL), WD_OK);
    }
    assert_int_equal(wd_cache_flush_all(c), 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(atomic_load(&v[i].freed), 1);
    wd_cache_stats(c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(get_str(c, "k3", NULL), -1);
    assert_int_equal(wd_cache_flush_all(c), 0);
    wd_cache_free(c);
}

static void flush_tag_drops_only_the_entries_put_with_that_tag(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 4, 64, 1000);
    struct tval v[6];
    for (int i = 0; i < 6; i++)
        tval_init(&v[i], i);
    assert_int_equal(put_str(c, "alice/authn", &v[0], 1, false, 0, "alice"), WD_OK);
    assert_int_equal(put_str(c, "alice/acl", &v[1], 1, false, 0, "alice"), WD_OK);
    assert_int_equal(put_str(c, "alice/authz", &v[2], 1, true, 0, "alice"), WD_OK);
    assert_int_equal(put_str(c, "alicex", &v[3], 1, false, 0, "alicex"), WD_OK);
    assert_int_equal(put_str(c, "bob", &v[4], 1, false, 0, "bob"), WD_OK);
    assert_int_equal(put_str(c, "untagged", &v[5], 1, false, 0, NULL), WD_OK);

    assert_int_equal(wd_cache_flush_tag(c, "alice", 5), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&v[i].freed), 1);
    assert_int_equal(get_str(c, "alice/authn", NULL), -1);
    assert_int_equal(get_str(c, "alicex", NULL), 3);
    assert_int_equal(get_str(c, "bob", NULL), 4);
    assert_int_equal(get_str(c, "untagged", NULL), 5);
    assert_int_equal(wd_cache_flush_tag(c, "alice", 5), 0);
    assert_int_equal(wd_cache_flush_tag(c, "", 0), 0); /* the empty tag is not "no tag" */
    assert_int_equal(wd_cache_flush_tag(c, "bob", 3), 1);
    wd_cache_free(c);
    for (int i = 0; i < 6; i++)
        assert_int_equal(atomic_load(&v[i].freed), 1);
}

static void stats_count_hits_misses_insertions_evictions_and_expirations(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 1, 2, 1000);
    struct tval v[3];
    struct wd_cache_stats st;
    for (int i = 0; i < 3; i++)
        tval_init(&v[i], i);

    wd_cache_stats(c, &st);
    assert_int_equal(st.hits + st.misses + st.insertions + st.entries, 0);
    assert_int_equal(st.max_entries, 2);
    assert_int_equal(st.max_bytes, 1000);
    assert_int_equal(get_str(c, "a", NULL), -1);                        /* miss */
    assert_int_equal(put_str(c, "a", &v[0], 5, false, 0, NULL), WD_OK); /* insertion */
    assert_int_equal(get_str(c, "a", NULL), 0);                         /* hit */
    assert_int_equal(get_str(c, "a", NULL), 0);                         /* hit */
    assert_int_equal(put_str(c, "b", &v[1], 6, true, 0, NULL), WD_OK);
    assert_int_equal(put_str(c, "c", &v[2], 7, false, 0, NULL), WD_OK); /* evicts a */
    clk.now = 100;
    assert_int_equal(get_str(c, "b", NULL), -1); /* negative TTL over: expiration + miss */
    wd_cache_stats(c, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.insertions, 3);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.expirations, 1);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, 7);
    wd_cache_free(c);
}

static void invalid_configurations_are_rejected(void **state)
{
    uint8_t secret[65] = {0};
    struct wd_cache_config cfg;

    assert_null(wd_cache_new(NULL));
    cfg = (struct wd_cache_config){.shards = 3};
    assert_null(wd_cache_new(&cfg));
    cfg = (struct wd_cache_config){.shards = 2048};
    assert_null(wd_cache_new(&cfg));
    cfg = (struct wd_cache_config){.shards = 8, .max_entries = 4};
    assert_null(wd_cache_new(&cfg));
    cfg = (struct wd_cache_config){.shards = 8, .max_bytes = 7};
    assert_null(wd_cache_new(&cfg));
    cfg = (struct wd_cache_config){.ttl_ms = -1};
    assert_null(wd_cache_new(&cfg));
    cfg = (struct wd_cache_config){.negative_ttl_ms = -5};
    assert_null(wd_cache_new(&cfg));
    cfg = (struct wd_cache_config){.secret = secret, .secret_len = 15};
    assert_null(wd_cache_new(&cfg));
    cfg = (struct wd_cache_config){.secret = secret, .secret_len = 65};
    assert_null(wd_cache_new(&cfg));
    cfg = (struct wd_cache_config){.secret_len = 32};
    assert_null(wd_cache_new(&cfg));

    /* all defaults, with the real clock */
    cfg = (struct wd_cache_config){0};
    struct wd_cache *c = wd_cache_new(&cfg);
    assert_non_null(c);
    struct wd_cache_stats st;
    wd_cache_stats(c, &st);
    assert_int_equal(st.max_entries, WD_CACHE_DEFAULT_MAX_ENTRIES);
    assert_int_equal(st.max_bytes, WD_CACHE_DEFAULT_MAX_BYTES);
    wd_cache_free(c);
    wd_cache_free(NULL);
    int64_t t0 = wd_clock_mono_ms(&wd_clock_real);
    assert_true(t0 >= 0);
    assert_true(wd_clock_mono_ms(&wd_clock_real) >= t0);
    assert_true(wd_clock_unix_s(&wd_clock_real) > 1600000000); /* after September 2020 */
}

/* ---- concurrency ---- */

#define STRESS_THREADS 4
#define STRESS_OPS 20000
#define STRESS_KEYS 300
#define STRESS_HELD 8

struct slot {
    int key;
    atomic_int freed;
    atomic_int put_ok;
};

struct stress {
    struct wd_cache *c;
    atomic_llong clock;
    struct slot *slots; /* STRESS_THREADS * STRESS_OPS, one fresh value per put */
    atomic_int violations;
};

struct stress_thread {
    struct stress *st;
    int tid;
};

static int64_t stress_now(void *ctx)
{
    return atomic_load_explicit(&((struct stress *)ctx)->clock, memory_order_relaxed);
}

static void slot_free(void *p)
{
    atomic_fetch_add(&((struct slot *)p)->freed, 1);
}

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void *stress_run(void *arg)
{
    struct stress_thread *t = arg;
    struct stress *st = t->st;
    uint32_t rng = 0x9e3779b9u * (uint32_t)(t->tid + 1);
    struct wd_cache_ref *held[STRESS_HELD] = {0};
    int held_key[STRESS_HELD] = {0};
    char tag[16];

    for (int i = 0; i < STRESS_OPS; i++) {
        uint32_t r = xorshift(&rng);
        int key = (int)(xorshift(&rng) % STRESS_KEYS);
        int op = (int)(r % 1000);
        struct wd_cache_key k;
        struct wd_cache_ref *ref = NULL;
        void *v = NULL;

        atomic_fetch_add_explicit(&st->clock, 1, memory_order_relaxed);
        snprintf(tag, sizeof(tag), "user%d", key % 16);
        wd_cache_key_init(&k, WD_CACHE_KIND_AUTHZ_DECISION);
        wd_cache_key_add_str(&k, tag);
        wd_cache_key_add_u64(&k, (uint64_t)key);
        if (op < 550) {
            ref = wd_cache_get(st->c, &k, &v, NULL);
            if (ref != NULL) {
                struct slot *s = v;
                if (s->key != key || atomic_load(&s->freed) != 0)
                    atomic_fetch_add(&st->violations, 1);
            }
        } else if (op < 950) {
            struct slot *s = &st->slots[t->tid * STRESS_OPS + i];
            s->key = key;
            size_t bytes = 1 + xorshift(&rng) % 200;
            struct wd_cache_ref **out = (r & 0x100000) ? &ref : NULL;
            if (wd_cache_put(st->c, &k, s, bytes, (r & 1) != 0, (int64_t)(r % 3) * 500, slot_free,
                             tag, strlen(tag), out) == WD_OK)
                atomic_store(&s->put_ok, 1);
            else
                atomic_fetch_add(&st->violations, 1);
        } else if (op < 975) {
            (void)wd_cache_remove(st->c, &k);
        } else if (op < 990) {
            wd_cache_flush_tag(st->c, tag, strlen(tag));
        } else if (op < 993) {
            wd_cache_flush_all(st->c);
        } else if (op < 996) {
            wd_cache_sweep(st->c);
        } else {
            struct wd_cache_stats s;
            wd_cache_stats(st->c, &s);
            if (s.entries > s.max_entries || s.bytes > s.max_bytes)
                atomic_fetch_add(&st->violations, 1);
        }
        wd_cache_key_cleanup(&k);

        if (ref != NULL) {
            /* hold some references for a while, across other threads' evictions */
            int h = (int)(xorshift(&rng) % STRESS_HELD);
            if (held[h] != NULL) {
                struct slot *s = wd_cache_ref_value(held[h]);
                if (s->key != held_key[h] || atomic_load(&s->freed) != 0)
                    atomic_fetch_add(&st->violations, 1);
                wd_cache_release(held[h]);
            }
            held[h] = ref;
            held_key[h] = key;
        }
    }
    for (int h = 0; h < STRESS_HELD; h++)
        wd_cache_release(held[h]);
    return NULL;
}

static void concurrent_get_put_release_and_flush_keep_every_invariant(void **state)
{
    struct stress st = {0};
    pthread_t th[STRESS_THREADS];
    struct stress_thread args[STRESS_THREADS];
    struct wd_cache_stats s;
    struct wd_clock wc = {stress_now, no_unix_s, &st};
    struct wd_cache_config cfg = {
        .shards = 4,
        .max_entries = 64,
        .max_bytes = 4000,
        .ttl_ms = 2000,
        .negative_ttl_ms = 300,
        .clock = &wc,
    };
    const size_t nslots = (size_t)STRESS_THREADS * STRESS_OPS;

    atomic_init(&st.clock, 0);
    atomic_init(&st.violations, 0);
    st.slots = calloc(nslots, sizeof(*st.slots));
    assert_non_null(st.slots);
    st.c = wd_cache_new(&cfg);
    assert_non_null(st.c);

    for (int i = 0; i < STRESS_THREADS; i++) {
        args[i] = (struct stress_thread){.st = &st, .tid = i};
        assert_int_equal(pthread_create(&th[i], NULL, stress_run, &args[i]), 0);
    }
    for (int i = 0; i < STRESS_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);

    assert_int_equal(atomic_load(&st.violations), 0);
    wd_cache_stats(st.c, &s);
    assert_true(s.entries <= 64);
    assert_true(s.bytes <= 4000);
    assert_true(s.hits > 0);
    assert_true(s.misses > 0);
    assert_true(s.evictions > 0);
    assert_true(s.expirations > 0);
    /* every value put is either still cached or already freed, exactly once */
    size_t cached = 0, freed = 0, put = 0;
    for (size_t i = 0; i < nslots; i++) {
        int f = atomic_load(&st.slots[i].freed);
        assert_true(f <= 1);
        put += (size_t)atomic_load(&st.slots[i].put_ok);
        freed += (size_t)f;
        if (atomic_load(&st.slots[i].put_ok) && f == 0)
            cached++;
    }
    assert_int_equal(cached, s.entries);
    assert_int_equal(put, s.insertions);
    assert_int_equal(freed + cached, put);

    wd_cache_free(st.c);
    for (size_t i = 0; i < nslots; i++)
        assert_int_equal(atomic_load(&st.slots[i].freed), atomic_load(&st.slots[i].put_ok));
    free(st.slots);
}

/* The digest is RFC 2104 HMAC-SHA256 under the configured secret over the domain byte 'K'
 * and the key's encoding: checked against OpenSSL's own EVP_MAC HMAC on random secrets
 * (every allowed length) and random keys, so the midstate shortcut in cache.c is HMAC. */
static void digests_are_hmac_sha256_as_computed_by_evp_mac(void **state)
{
    (void)state;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    assert_non_null(mac);
    for (int round = 0; round < 200; round++) {
        uint8_t secret[WD_CACHE_SECRET_MAX];
        size_t slen = 16 + (size_t)(round % (WD_CACHE_SECRET_MAX - 15));
        assert_int_equal(RAND_bytes(secret, (int)slen), 1);
        struct wd_cache_config cfg = {.secret = secret, .secret_len = slen};
        struct wd_cache *c = wd_cache_new(&cfg);
        assert_non_null(c);

        struct wd_cache_key k;
        wd_cache_key_init(&k, (uint32_t)round);
        uint8_t part[300];
        size_t plen = (size_t)(round * 7) % sizeof part;
        assert_int_equal(RAND_bytes(part, (int)sizeof part), 1);
        assert_int_equal(wd_cache_key_add(&k, part, plen), WD_OK);
        assert_int_equal(wd_cache_key_add_u64(&k, (uint64_t)round * 0x9e3779b97f4a7c15ull), WD_OK);
        assert_null(wd_cache_get(c, &k, NULL, NULL)); /* computes and memoizes the digest */

        uint8_t want[32];
        size_t wl = 0;
        EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
        OSSL_PARAM params[2] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
            OSSL_PARAM_construct_end()};
        uint8_t domain = 0x4b;
        assert_true(EVP_MAC_init(ctx, secret, slen, params));
        assert_true(EVP_MAC_update(ctx, &domain, 1));
        assert_true(EVP_MAC_update(ctx, k.buf, k.len));
        assert_true(EVP_MAC_final(ctx, want, &wl, sizeof want));
        EVP_MAC_CTX_free(ctx);
        assert_int_equal(wl, 32);
        assert_memory_equal(k.digest, want, 32);
        wd_cache_key_cleanup(&k);
        wd_cache_free(c);
    }
    EVP_MAC_free(mac);
}

/* ---- origins (cache_invalidation tracking) ---- */

static int put_origin(struct wd_cache *c, const char *key, struct tval *v, const char *origin)
{
    struct wd_cache_key k;
    key_str(&k, key);
    assert_int_equal(wd_cache_key_origin(c, &k, origin, strlen(origin)), WD_OK);
    int rc = wd_cache_put(c, &k, v, 1, false, 0, tval_free, NULL, 0, NULL);
    wd_cache_key_cleanup(&k);
    return rc;
}

static void flush_origin_drops_only_the_entries_derived_from_that_origin(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 4, 64, 1000);
    struct tval a, a2, b, n;
    tval_init(&a, 1);
    tval_init(&a2, 2);
    tval_init(&b, 3);
    tval_init(&n, 4);
    assert_int_equal(put_origin(c, "alice-pw1", &a, "mqtt_user:alice"), WD_OK);
    assert_int_equal(put_origin(c, "alice-pw2", &a2, "mqtt_user:alice"), WD_OK);
    assert_int_equal(put_origin(c, "bob-pw", &b, "mqtt_user:bob"), WD_OK);
    assert_int_equal(put_str(c, "static", &n, 1, false, 0, NULL), WD_OK);
    assert_int_equal(wd_cache_flush_origin(c, "mqtt_user:alice", 15), 2);
    assert_int_equal(get_str(c, "alice-pw1", NULL), -1);
    assert_int_equal(get_str(c, "alice-pw2", NULL), -1);
    assert_int_equal(get_str(c, "bob-pw", NULL), 3);
    assert_int_equal(wd_cache_flush_origins(c), 1);
    assert_int_equal(get_str(c, "bob-pw", NULL), -1);
    assert_int_equal(get_str(c, "static", NULL), 4); /* no origin: not Redis's to drop */
    assert_int_equal(atomic_load(&a.freed) + atomic_load(&a2.freed) + atomic_load(&b.freed), 3);
    wd_cache_free(c);
}

static void a_put_read_before_an_invalidation_is_refused(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 4, 64, 1000);
    struct tval a;
    tval_init(&a, 1);
    struct wd_cache_key k;
    key_str(&k, "alice-pw");
    assert_int_equal(wd_cache_key_origin(c, &k, "mqtt_user:alice", 15), WD_OK);
    /* the read is in flight; a write's invalidation is processed before its reply */
    wd_cache_flush_origin(c, "mqtt_user:alice", 15);
    assert_int_equal(wd_cache_put(c, &k, &a, 1, false, 0, tval_free, NULL, 0, NULL), WD_EAGAIN);
    wd_cache_key_cleanup(&k);
    assert_int_equal(atomic_load(&a.freed), 0); /* still the caller's */
    assert_int_equal(get_str(c, "alice-pw", NULL), -1);
    /* a read that starts after it is cached */
    assert_int_equal(put_origin(c, "alice-pw", &a, "mqtt_user:alice"), WD_OK);
    assert_int_equal(get_str(c, "alice-pw", NULL), 1);
    wd_cache_free(c);
}

static void suspended_origins_are_flushed_and_not_cached_until_resumed(void **state)
{
    struct fake_clock clk = {.now = 0};
    struct wd_cache *c = new_cache(&clk, 4, 64, 1000);
    struct tval a, b, n;
    tval_init(&a, 1);
    tval_init(&b, 2);
    tval_init(&n, 3);
    assert_int_equal(put_origin(c, "alice-pw", &a, "mqtt_user:alice"), WD_OK);
    assert_int_equal(wd_cache_origins_suspend(c), 1);
    assert_int_equal(get_str(c, "alice-pw", NULL), -1);
    assert_int_equal(put_origin(c, "bob-pw", &b, "mqtt_user:bob"), WD_EAGAIN);
    assert_int_equal(put_str(c, "static", &n, 1, false, 0, NULL), WD_OK);
    /* a read sent while suspended is not cached after the resume either */
    struct wd_cache_key k;
    key_str(&k, "bob-pw");
    assert_int_equal(wd_cache_key_origin(c, &k, "mqtt_user:bob", 13), WD_OK);
    wd_cache_origins_resume(c);
    assert_int_equal(wd_cache_put(c, &k, &b, 1, false, 0, tval_free, NULL, 0, NULL), WD_EAGAIN);
    wd_cache_key_cleanup(&k);
    assert_int_equal(put_origin(c, "bob-pw", &b, "mqtt_user:bob"), WD_OK);
    assert_int_equal(get_str(c, "bob-pw", NULL), 2);
    assert_int_equal(get_str(c, "static", NULL), 3);
    wd_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_misses_on_an_empty_cache_and_hits_after_put),
        cmocka_unit_test(flush_origin_drops_only_the_entries_derived_from_that_origin),
        cmocka_unit_test(a_put_read_before_an_invalidation_is_refused),
        cmocka_unit_test(suspended_origins_are_flushed_and_not_cached_until_resumed),
        cmocka_unit_test(positive_entries_expire_after_the_default_ttl),
        cmocka_unit_test(negative_entries_expire_after_the_shorter_negative_ttl),
        cmocka_unit_test(an_explicit_ttl_overrides_the_defaults),
        cmocka_unit_test(sweep_drops_expired_entries_without_lookups),
        cmocka_unit_test(lru_evicts_the_least_recently_used_entry_when_over_max_entries),
        cmocka_unit_test(lru_evicts_by_bytes_until_the_new_value_fits),
        cmocka_unit_test(a_value_over_the_shard_budget_is_refused_and_stays_the_callers),
        cmocka_unit_test(an_expired_tail_counts_as_an_expiration_not_an_eviction),
        cmocka_unit_test(putting_an_existing_key_replaces_its_value),
        cmocka_unit_test(a_reference_keeps_its_value_alive_across_eviction_until_release),
        cmocka_unit_test(a_reference_outlives_flush_and_the_cache_itself),
        cmocka_unit_test(remove_drops_one_key),
        cmocka_unit_test(remove_if_drops_only_the_matching_value),
        cmocka_unit_test(keys_with_the_same_bytes_in_different_parts_are_different),
        cmocka_unit_test(a_key_reaches_the_same_entry_when_rebuilt_or_reused),
        cmocka_unit_test(the_secret_key_changes_every_digest),
        cmocka_unit_test(digests_are_hmac_sha256_as_computed_by_evp_mac),
        cmocka_unit_test(key_cleanup_wipes_the_encoded_parts),
        cmocka_unit_test(an_oversized_or_invalid_key_is_refused),
        cmocka_unit_test(flush_all_drops_every_entry),
        cmocka_unit_test(flush_tag_drops_only_the_entries_put_with_that_tag),
        cmocka_unit_test(stats_count_hits_misses_insertions_evictions_and_expirations),
        cmocka_unit_test(invalid_configurations_are_rejected),
        cmocka_unit_test(concurrent_get_put_release_and_flush_keep_every_invariant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
