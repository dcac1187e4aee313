/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis_acl.c: EMQX Redis ACL pairs (field, value) into struct wd_acl_entry (see
 * redis_acl.h). Only the Redis shape is here: the three plain values, and a JSON value read
 * as a rule object by emqx_acl.c. JSON is parsed with jansson only after the size check, so
 * a hostile megabyte value costs a length comparison. Duplicate keys are refused (which of
 * two "action"s EMQX would take depends on its JSON library; a JWT payload refuses them too).
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

/* The value into e's action, qos, retain (emqx_authz_redis.erl parse_rule/1). */
static int parse_value(const char *val, size_t n, struct wd_acl_entry *e, const char **reason)
{
    json_t *root;
    json_error_t jerr;
    int rc;

    e->allow = true;
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
    root = json_loadb(val, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        *reason = "value is neither publish, subscribe, all nor valid JSON";
        return WD_EINVAL;
    }
    if (!json_is_object(root)) {
        *reason = "JSON rule is not an object";
        rc = WD_EINVAL;
    } else {
        rc = wd_emqx_acl_rule_fields(root, 0, e, reason);
    }
    json_decref(root);
    return rc;
}

int wd_redis_acl_parse_entry(const struct wd_redis_acl_pair *p, struct wd_acl_entry *out,
                             const char **reason)
{
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
    if (wd_emqx_acl_topic(p->field ? p->field : "", p->field_len, &e, reason) != WD_OK)
        return WD_EINVAL;
    if (parse_value(p->value ? p->value : "", p->value_len, &e, reason) != WD_OK) {
        wd_acl_entry_cleanup(&e);
        return WD_EINVAL;
    }
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
