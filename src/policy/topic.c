/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topic.c: see topic.h. No allocation: levels are walked in place.
 */
#include "policy/topic.h"

#include <string.h>

static bool level_is(const char *s, size_t n, char c)
{
    return n == 1 && s[0] == c;
}

bool wd_topic_filter_valid(const char *f, size_t len)
{
    if (len == 0 || len > WD_TOPIC_MAX_LEN || memchr(f, '\0', len))
        return false;
    size_t start = 0;
    int levels = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || f[i] == '/') {
            size_t n = i - start;
            const char *lv = f + start;
            if (++levels > WD_TOPIC_MAX_LEVELS)
                return false;
            for (size_t k = 0; k < n; k++) {
                if ((lv[k] == '+' || lv[k] == '#') && n != 1)
                    return false; /* wildcards occupy a whole level */
            }
            if (level_is(lv, n, '#') && i != len)
                return false; /* '#' only last */
            start = i + 1;
        }
    }
    return true;
}

bool wd_topic_name_valid(const char *t, size_t len)
{
    if (!wd_topic_filter_valid(t, len))
        return false;
    return memchr(t, '+', len) == NULL && memchr(t, '#', len) == NULL;
}

bool wd_topic_request_valid(const char *t, size_t len, bool filter)
{
    if (len == 0 || len > WD_TOPIC_MAX_LEN || memchr(t, '\0', len))
        return false;
    if (!memchr(t, '+', len) && !memchr(t, '#', len))
        return true; /* no wildcard: any name, and any filter, is well formed */
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i != len && t[i] != '/')
            continue;
        for (size_t k = start; k < i; k++) {
            if (t[k] != '+' && t[k] != '#')
                continue;
            if (!filter || i - start != 1)
                return false; /* no wildcard in a name; a wildcard is a whole level */
            if (t[k] == '#' && i != len)
                return false; /* '#' only last */
        }
        start = i + 1;
    }
    return true;
}

int wd_topic_split(const char *s, size_t len, const char **lv, size_t *lvlen, int max)
{
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            if (n == max)
                return -1;
            lv[n] = s + start;
            lvlen[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    return n;
}

bool wd_topic_covers_levels(const struct wd_level *lv, int nlv, const char *req, size_t qlen,
                            wd_topic_tmpl_fn fn, const void *ctx)
{
    size_t qi = 0;
    for (int i = 0; i < nlv; i++) {
        const struct wd_level *l = &lv[i];
        bool dollar_first = i == 0 && qlen > 0 && req[0] == '$';
        if (l->kind == WD_LV_HASH)
            return !dollar_first; /* the rest, including none: a/# covers a */
        if (qi > qlen)
            return false; /* the request ended and the rule goes on */
        size_t qe = qi;
        while (qe < qlen && req[qe] != '/')
            qe++;
        const char *ql = req + qi;
        size_t qn = qe - qi;
        bool wild = level_is(ql, qn, '+') || level_is(ql, qn, '#');
        switch (l->kind) {
        case WD_LV_PLUS:
            if (level_is(ql, qn, '#') || dollar_first)
                return false;
            break;
        case WD_LV_LITERAL:
            if (wild || qn != l->len || memcmp(ql, l->s, qn) != 0)
                return false;
            break;
        case WD_LV_TMPL:
            if (wild || dollar_first || !fn || !fn(l->t, ql, qn, ctx))
                return false;
            break;
        default:
            return false;
        }
        qi = qe + 1; /* qlen + 1 once the request is used up */
    }
    /* the rule ran out of levels: covered only if the request did too */
    return qi == qlen + 1;
}

bool wd_topic_overlaps_levels(const struct wd_level *lv, int nlv, const char *req, size_t qlen,
                              wd_topic_tmpl_fn fn, const void *ctx)
{
    size_t qi = 0;
    for (int i = 0; i < nlv; i++) {
        const struct wd_level *l = &lv[i];
        if (qi > qlen)
            return l->kind == WD_LV_HASH; /* the request ended: a/# overlaps a */
        size_t qe = qi;
        while (qe < qlen && req[qe] != '/')
            qe++;
        const char *ql = req + qi;
        size_t qn = qe - qi;
        bool qplus = level_is(ql, qn, '+'), qhash = level_is(ql, qn, '#');
        /* a '$' first level is reached only by the same literal, never by a wildcard */
        bool req_dollar = i == 0 && qn > 0 && ql[0] == '$';
        bool rule_dollar = i == 0 && l->kind == WD_LV_LITERAL && l->len > 0 && l->s[0] == '$';
        if (l->kind == WD_LV_HASH)
            return !req_dollar;
        if (qhash)
            return !rule_dollar;
        switch (l->kind) {
        case WD_LV_PLUS:
            if (req_dollar)
                return false;
            break;
        case WD_LV_LITERAL:
            if (qplus ? rule_dollar : qn != l->len || memcmp(ql, l->s, qn) != 0)
                return false;
            break;
        case WD_LV_TMPL:
            /* against a wildcard, whatever the value (fail closed); else as covers */
            if (!qplus && (req_dollar || !fn || !fn(l->t, ql, qn, ctx)))
                return false;
            break;
        default:
            return false;
        }
        qi = qe + 1;
    }
    /* the rule ran out of levels: the request must too, or go on with a '#' (a overlaps
     * a/#; a '#' ends the request wherever it is, as it does in the trie) */
    return qi == qlen + 1 ||
           (qi < qlen && req[qi] == '#' && (qi + 1 == qlen || req[qi + 1] == '/'));
}

static int split_text(const char *f, size_t len, struct wd_level *lv)
{
    const char *ls[WD_TOPIC_MAX_LEVELS];
    size_t ln[WD_TOPIC_MAX_LEVELS];
    int n = wd_topic_split(f, len, ls, ln, WD_TOPIC_MAX_LEVELS);
    for (int i = 0; i < n; i++) {
        lv[i].s = ls[i];
        lv[i].len = ln[i];
        lv[i].t = NULL;
        lv[i].kind = level_is(ls[i], ln[i], '+')   ? WD_LV_PLUS
                     : level_is(ls[i], ln[i], '#') ? WD_LV_HASH
                                                   : WD_LV_LITERAL;
    }
    return n;
}

bool wd_topic_covers(const char *rule, size_t rlen, const char *req, size_t qlen)
{
    struct wd_level lv[WD_TOPIC_MAX_LEVELS];
    int n = split_text(rule, rlen, lv);
    return n >= 0 && wd_topic_covers_levels(lv, n, req, qlen, NULL, NULL);
}

bool wd_topic_overlaps(const char *rule, size_t rlen, const char *req, size_t qlen)
{
    struct wd_level lv[WD_TOPIC_MAX_LEVELS];
    int n = split_text(rule, rlen, lv);
    return n >= 0 && wd_topic_overlaps_levels(lv, n, req, qlen, NULL, NULL);
}
