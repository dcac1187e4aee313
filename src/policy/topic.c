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

bool wd_topic_covers(const char *rule, size_t rlen, const char *req, size_t qlen)
{
    size_t ri = 0, qi = 0;
    bool first = true;
    for (;;) {
        /* current rule level [ri, re) and request level [qi, qe) */
        size_t re = ri;
        while (re < rlen && rule[re] != '/')
            re++;
        const char *rl = rule + ri;
        size_t rn = re - ri;

        if (level_is(rl, rn, '#')) {
            /* covers the rest, unless a first-level wildcard meets a $-topic */
            return !(first && qi < qlen && req[qi] == '$');
        }
        size_t qe = qi;
        while (qe < qlen && req[qe] != '/')
            qe++;
        const char *ql = req + qi;
        size_t qn = qe - qi;

        if (level_is(rl, rn, '+')) {
            if (level_is(ql, qn, '#'))
                return false;
            if (first && qn > 0 && ql[0] == '$')
                return false;
        } else {
            if (level_is(ql, qn, '+') || level_is(ql, qn, '#'))
                return false;
            if (rn != qn || memcmp(rl, ql, rn) != 0)
                return false;
        }
        first = false;
        bool rule_done = re >= rlen, req_done = qe >= qlen;
        if (rule_done && req_done)
            return true;
        if (rule_done)
            return false; /* request is deeper than the rule */
        ri = re + 1;
        qi = qe + 1;
        if (req_done) {
            /* request ended: only a trailing '#' in the rule still covers it (a/# covers a) */
            return rlen - ri == 1 && rule[ri] == '#';
        }
    }
}
