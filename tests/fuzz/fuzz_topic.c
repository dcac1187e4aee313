/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_topic: MQTT topic validity and the covers / overlaps relations (src/policy/topic.c),
 * differential against a brute-force reference.
 *
 * Input: two topics A and B separated by the first '\n' (no '\n': B = A). Both go through
 * every validity check and both relations whatever they are (no crash, no read outside the
 * bytes given: they are copied into exactly sized buffers). When both are valid filters of
 * at most MAXD levels, the relations are checked against their meaning, over every topic
 * name of 1..MAXD+1 levels drawn from the literal levels of A and B plus one fresh level:
 *   overlaps(A, B) <=> some name matches both (exactly, both ways round);
 *   covers(A, B) => every name B matches, A matches (sound; see below for why not <=>);
 * with MQTT matching written out here (a first-level wildcard never matches a name whose
 * first level starts with '$'). The one-level empty name "" counts as a name, as it does for
 * warden's level-by-level relations (`+` overlaps `/#` through it: erring towards a deny). A
 * fresh level stands for every level absent from A and B,
 * and one level more than either filter is enough to see what '#' and '+' reach. The
 * validity checks are compared with a reference too.
 */
#include <stdbool.h>

#include "fuzz.h"
#include "policy/topic.h"

enum { MAXD = 4, MAXALPHA = 6, MAXLV = MAXD + 1 };

struct lv {
    const char *s;
    size_t n;
};

static bool is1(struct lv l, char c)
{
    return l.n == 1 && l.s[0] == c;
}

static int split(const char *s, size_t len, struct lv *out, int max)
{
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            if (n == max)
                return -1;
            out[n].s = s + start;
            out[n].n = i - start;
            n++;
            start = i + 1;
        }
    }
    return n;
}

/* Reference validity of a filter (name: no wildcard at all). */
static bool ref_valid(const char *s, size_t len, bool name)
{
    if (len == 0 || len > WD_TOPIC_MAX_LEN || memchr(s, '\0', len))
        return false;
    int levels = 1;
    for (size_t i = 0; i < len; i++)
        levels += s[i] == '/';
    if (levels > WD_TOPIC_MAX_LEVELS)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '/')
            continue;
        for (size_t k = start; k < i; k++) {
            if (s[k] != '+' && s[k] != '#')
                continue;
            if (name || i - start != 1 || (s[k] == '#' && i != len))
                return false;
        }
        start = i + 1;
    }
    return true;
}

/* MQTT matching of a topic name (levels nm) by a filter (levels f). */
static bool ref_match(const struct lv *f, int nf, const struct lv *nm, int nn)
{
    if (nn > 0 && nm[0].n > 0 && nm[0].s[0] == '$' && (is1(f[0], '+') || is1(f[0], '#')))
        return false;
    for (int i = 0; i < nf; i++) {
        if (is1(f[i], '#'))
            return true; /* the rest, including nothing */
        if (i >= nn)
            return false;
        if (is1(f[i], '+'))
            continue;
        if (f[i].n != nm[i].n || memcmp(f[i].s, nm[i].s, nm[i].n) != 0)
            return false;
    }
    return nf == nn;
}

static void brute_force(const char *a, size_t alen, const char *b, size_t blen)
{
    struct lv fa[MAXD], fb[MAXD], alpha[MAXALPHA];
    int na = split(a, alen, fa, MAXD), nb = split(b, blen, fb, MAXD);
    if (na < 0 || nb < 0)
        return;
    int nalpha = 0;
    const struct lv *all[2] = {fa, fb};
    int counts[2] = {na, nb};
    for (int w = 0; w < 2; w++) {
        for (int i = 0; i < counts[w]; i++) {
            struct lv l = all[w][i];
            if (is1(l, '+') || is1(l, '#'))
                continue;
            bool seen = false;
            for (int k = 0; k < nalpha && !seen; k++)
                seen = alpha[k].n == l.n && memcmp(alpha[k].s, l.s, l.n) == 0;
            if (seen)
                continue;
            if (nalpha == MAXALPHA - 1)
                return; /* too many distinct levels for a quick enumeration */
            alpha[nalpha++] = l;
        }
    }
    /* a fresh level: "~" followed by as many '~' as needed to differ from every literal */
    static const char tildes[] = "~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~";
    size_t fresh = 1;
    for (int k = 0; k < nalpha; k++)
        if (alpha[k].n >= fresh && memchr(alpha[k].s, '~', alpha[k].n))
            fresh = alpha[k].n + 1;
    if (fresh >= sizeof tildes)
        return;
    alpha[nalpha++] = (struct lv){tildes, fresh};

    bool overlap = false, covers = true;
    int maxd = (na > nb ? na : nb) + 1;
    struct lv nm[MAXLV];
    for (int d = 1; d <= maxd; d++) {
        int total = 1;
        for (int i = 0; i < d; i++)
            total *= nalpha;
        for (int k = 0; k < total; k++) {
            for (int i = 0, x = k; i < d; i++, x /= nalpha)
                nm[i] = alpha[x % nalpha];
            bool ma = ref_match(fa, na, nm, d), mb = ref_match(fb, nb, nm, d);
            overlap = overlap || (ma && mb);
            covers = covers && (!mb || ma);
        }
    }
    FUZZ_CHECK(wd_topic_overlaps(a, alen, b, blen) == overlap, "overlaps(%.*s, %.*s) != %d",
               (int)alen, a, (int)blen, b, overlap);
    FUZZ_CHECK(wd_topic_overlaps(b, blen, a, alen) == overlap, "overlaps(%.*s, %.*s) != %d",
               (int)blen, b, (int)alen, a, overlap);
    /* covers is sound, not complete: the level-by-level table refuses `+` against `#` even
     * where the rest of the rule makes up for it (`+/#` covers `#` as sets of names, but
     * warden says no). An allow rule never reaches further than this check allows. */
    if (wd_topic_covers(a, alen, b, blen))
        FUZZ_CHECK(covers, "covers(%.*s, %.*s) but %.*s matches a name %.*s does not", (int)alen, a,
                   (int)blen, b, (int)blen, b, (int)alen, a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t alen = nl ? (size_t)(nl - data) : size;
    size_t blen = nl ? size - alen - 1 : size;
    /* exactly sized copies: ASan sees any read past the end */
    char *a = malloc(alen ? alen : 1), *b = malloc(blen ? blen : 1);
    if (!a || !b)
        abort();
    if (alen)
        memcpy(a, data, alen);
    if (blen)
        memcpy(b, nl ? nl + 1 : data, blen);

    bool afv = wd_topic_filter_valid(a, alen), bfv = wd_topic_filter_valid(b, blen);
    FUZZ_CHECK(afv == ref_valid(a, alen, false), "filter_valid(%.*s)", (int)alen, a);
    FUZZ_CHECK(wd_topic_name_valid(a, alen) == ref_valid(a, alen, true), "name_valid(%.*s)",
               (int)alen, a);
    /* a request is checked as MQTT does: no level limit, otherwise the same as above */
    if (afv)
        FUZZ_CHECK(wd_topic_request_valid(a, alen, true), "request_valid(%.*s)", (int)alen, a);
    if (wd_topic_request_valid(a, alen, false))
        FUZZ_CHECK(wd_topic_request_valid(a, alen, true), "a valid name is a valid filter");
    (void)wd_topic_request_valid(b, blen, false);

    if (afv && bfv) {
        bool c = wd_topic_covers(a, alen, b, blen);
        if (c)
            FUZZ_CHECK(wd_topic_overlaps(a, alen, b, blen), "covers but does not overlap");
        FUZZ_CHECK(wd_topic_covers(a, alen, a, alen), "a valid filter covers itself");
        brute_force(a, alen, b, blen);
    }
    free(a);
    free(b);
    return 0;
}
