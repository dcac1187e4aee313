/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis_acl.c: EMQX Redis ACL values (plain or JSON) into struct wd_acl_entry (see
 * redis_acl.h). JSON is parsed with jansson only after the size check, so a hostile
 * megabyte value costs a length comparison. The parsing follows emqx_authz_redis.erl
 * parse_rule/1 and emqx_authz_rule_raw.erl: exact lowercase keywords, qos strings split on
 * ',' with no trimming, retain accepted as bool, 0/1, their strings, "all" or null.
 */
#include "store/redis_acl.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/wd.h"

static bool bytes_eq(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && memcmp(s, lit, l) == 0;
}

static int qos_atom(json_t *v, unsigned *mask)
{
    if (json_is_integer(v)) {
        json_int_t q = json_integer_value(v);
        if (q < 0 || q > 2)
            return WD_EINVAL;
        *mask |= 1u << q;
        return WD_OK;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (n == 1 && s[0] >= '0' && s[0] <= '2') {
            *mask |= 1u << (s[0] - '0');
            return WD_OK;
        }
    }
    return WD_EINVAL;
}

/* "0,2": each part exactly "0", "1" or "2" */
static int qos_string(const char *s, size_t n, unsigned *mask)
{
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < n && s[j] != ',')
            j++;
        if (j - i != 1 || s[i] < '0' || s[i] > '2')
            return WD_EINVAL;
        *mask |= 1u << (s[i] - '0');
        if (j == n)
            return WD_OK;
        i = j + 1;
    }
}

static int parse_qos(json_t *v, unsigned *mask, const char **reason)
{
    *mask = 0;
    if (!v || json_is_null(v)) {
        *mask = WD_ACL_QOS_ALL;
        return WD_OK;
    }
    if (json_is_string(v)) {
        if (qos_string(json_string_value(v), json_string_length(v), mask) == WD_OK)
            return WD_OK;
    } else if (json_is_array(v)) {
        size_t i;
        json_t *q;
        json_array_foreach(v, i, q)
        {
            if (qos_atom(q, mask) != WD_OK)
                goto bad;
        }
        if (*mask == 0) {
            *reason = "empty qos list matches nothing";
            return WD_EINVAL;
        }
        return WD_OK;
    } else if (qos_atom(v, mask) == WD_OK) {
        return WD_OK;
    }
bad:
    *reason = "invalid qos (0, 1, 2, \"0,1\", a list of them, or null)";
    return WD_EINVAL;
}

static int parse_retain(json_t *v, int *retain, const char **reason)
{
    if (!v || json_is_null(v)) {
        *retain = -1;
        return WD_OK;
    }
    if (json_is_boolean(v)) {
        *retain = json_is_true(v) ? 1 : 0;
        return WD_OK;
    }
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
        *retain = (int)json_integer_value(v);
        return WD_OK;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (bytes_eq(s, n, "true") || bytes_eq(s, n, "1")) {
            *retain = 1;
            return WD_OK;
        }
        if (bytes_eq(s, n, "false") || bytes_eq(s, n, "0")) {
            *retain = 0;
            return WD_OK;
        }
        if (bytes_eq(s, n, "all")) {
            *retain = -1;
            return WD_OK;
        }
    }
    *reason = "invalid retain (true, false, 0, 1, their strings, \"all\" or null)";
    return WD_EINVAL;
}

static int parse_action(json_t *v, unsigned *actions, const char **reason)
{
    if (!v) {
        *reason = "JSON rule has no \"action\"";
        return WD_EINVAL;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (bytes_eq(s, n, "publish") || bytes_eq(s, n, "pub")) {
            *actions = WD_ACL_PUBLISH;
            return WD_OK;
        }
        if (bytes_eq(s, n, "subscribe") || bytes_eq(s, n, "sub")) {
            *actions = WD_ACL_SUBSCRIBE;
            return WD_OK;
        }
        if (bytes_eq(s, n, "all")) {
            *actions = WD_ACL_PUBLISH | WD_ACL_SUBSCRIBE;
            return WD_OK;
        }
    }
    *reason = "invalid action (publish, pub, subscribe, sub or all)";
    return WD_EINVAL;
}

static int parse_value(const char *val, size_t n, struct wd_acl_entry *e, const char **reason)
{
    json_t *root = NULL;
    json_error_t jerr;
    int rc = WD_EINVAL;

    e->qos_mask = WD_ACL_QOS_ALL;
    e->retain = -1;
    if (bytes_eq(val, n, "publish")) {
        e->actions = WD_ACL_PUBLISH;
        return WD_OK;
    }
    if (bytes_eq(val, n, "subscribe")) {
        e->actions = WD_ACL_SUBSCRIBE;
        return WD_OK;
    }
    if (bytes_eq(val, n, "all")) {
        e->actions = WD_ACL_PUBLISH | WD_ACL_SUBSCRIBE;
        return WD_OK;
    }
    if (n > WD_REDIS_ACL_VALUE_MAX) {
        *reason = "rule value too large";
        return WD_EINVAL;
    }
    root = json_loadb(val, n, 0, &jerr);
    if (!root) {
        *reason = "value is neither publish, subscribe, all nor valid JSON";
        goto out;
    }
    if (!json_is_object(root)) {
        *reason = "JSON rule is not an object";
        goto out;
    }
    if (parse_action(json_object_get(root, "action"), &e->actions, reason) != WD_OK)
        goto out;
    if (parse_qos(json_object_get(root, "qos"), &e->qos_mask, reason) != WD_OK)
        goto out;
    if (e->actions == WD_ACL_SUBSCRIBE)
        e->retain = -1; /* EMQX: subscribe rules do not read retain at all */
    else if (parse_retain(json_object_get(root, "retain"), &e->retain, reason) != WD_OK)
        goto out;
    rc = WD_OK;
out:
    json_decref(root);
    return rc;
}

int wd_redis_acl_parse_entry(const struct wd_redis_acl_pair *p, struct wd_acl_entry *out,
                             const char **reason)
{
    const char *t;
    size_t tlen;
    struct wd_acl_entry e = {0};

    memset(out, 0, sizeof *out);
    *reason = NULL;
    if (!p->field && p->field_len) {
        *reason = "invalid field";
        return WD_EINVAL;
    }
    if (!p->value && p->value_len) {
        *reason = "invalid value";
        return WD_EINVAL;
    }
    t = p->field;
    tlen = p->field_len;
    if (tlen >= 3 && memcmp(t, "eq ", 3) == 0) {
        e.eq = true;
        t += 3;
        tlen -= 3;
    }
    if (tlen == 0) {
        *reason = "empty topic";
        return WD_EINVAL;
    }
    if (tlen > WD_REDIS_ACL_TOPIC_MAX) {
        *reason = "topic longer than 65535 bytes";
        return WD_EINVAL;
    }
    if (memchr(t, '\0', tlen)) {
        *reason = "topic contains a NUL byte";
        return WD_EINVAL;
    }
    if (parse_value(p->value ? p->value : "", p->value_len, &e, reason) != WD_OK)
        return WD_EINVAL;
    e.topic = wd_strndup(t, tlen);
    *out = e;
    return WD_OK;
}

int wd_redis_acl_parse(const struct wd_redis_acl_pair *pairs, size_t n, struct wd_acl_entry **out,
                       size_t *nout, wd_redis_acl_skip_fn skip, void *ud)
{
    struct wd_acl_entry *v = NULL;
    size_t cnt = 0, lim;

    if (!out || !nout)
        return WD_EINVAL;
    *out = NULL;
    *nout = 0;
    if (n && !pairs)
        return WD_EINVAL;
    lim = n < WD_REDIS_ACL_MAX_ENTRIES ? n : WD_REDIS_ACL_MAX_ENTRIES;
    if (lim)
        v = wd_calloc(lim, sizeof *v);
    for (size_t i = 0; i < lim; i++) {
        const char *reason = NULL;
        if (wd_redis_acl_parse_entry(&pairs[i], &v[cnt], &reason) == WD_OK)
            cnt++;
        else if (skip)
            skip(ud, pairs[i].field, pairs[i].field ? pairs[i].field_len : 0, reason);
    }
    if (n > lim && skip)
        skip(ud, NULL, 0, "entry limit reached: remaining entries ignored");
    if (cnt == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    *nout = cnt;
    return WD_OK;
}

void wd_acl_entry_cleanup(struct wd_acl_entry *e)
{
    if (!e)
        return;
    free(e->topic);
    memset(e, 0, sizeof *e);
}

void wd_acl_entries_free(struct wd_acl_entry *e, size_t n)
{
    if (!e)
        return;
    for (size_t i = 0; i < n; i++)
        free(e[i].topic);
    free(e);
}
