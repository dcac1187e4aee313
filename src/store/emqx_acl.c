/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emqx_acl.c: EMQX ACL rules (see emqx_acl.h), following emqx_authz_rule_raw.erl: exact
 * lowercase keywords, qos strings split on ',' with no trimming, retain as bool, 0/1, their
 * strings, "all" or null, a string "topic" before "topics". Every string comparison goes by
 * the JSON string's length, so a string holding a NUL byte (jansson keeps them when a
 * caller allows them) is never taken for a keyword it starts with.
 */
#include "store/emqx_acl.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/wd.h"

static bool jstr_is(const json_t *v, const char *lit)
{
    size_t l = strlen(lit);
    return json_is_string(v) && json_string_length(v) == l &&
           memcmp(json_string_value(v), lit, l) == 0;
}

int wd_emqx_acl_topic(const char *s, size_t n, struct wd_acl_entry *e, const char **reason)
{
    bool eq = false;
    if (!s && n) {
        *reason = "invalid topic";
        return WD_EINVAL;
    }
    if (n >= 3 && memcmp(s, "eq ", 3) == 0) {
        eq = true;
        s += 3;
        n -= 3;
    }
    if (n == 0) {
        *reason = "empty topic";
        return WD_EINVAL;
    }
    if (n > WD_ACL_TOPIC_MAX) {
        *reason = "topic longer than 65535 bytes";
        return WD_EINVAL;
    }
    if (memchr(s, '\0', n)) {
        *reason = "topic contains a NUL byte";
        return WD_EINVAL;
    }
    e->topic = wd_strndup(s, n);
    e->eq = eq;
    return WD_OK;
}

int wd_emqx_acl_topic_json(const struct json_t *t, struct wd_acl_entry *e, const char **reason)
{
    if (!json_is_string(t)) {
        *reason = "topic is not a string";
        return WD_EINVAL;
    }
    return wd_emqx_acl_topic(json_string_value(t), json_string_length(t), e, reason);
}

/* One QoS of a list or a string part: 0..2 as an integer or a one-digit string. */
static int qos_atom(const json_t *v, unsigned *mask)
{
    if (json_is_integer(v)) {
        json_int_t q = json_integer_value(v);
        if (q < 0 || q > 2)
            return WD_EINVAL;
        *mask |= 1u << q;
        return WD_OK;
    }
    if (json_is_string(v) && json_string_length(v) == 1) {
        char c = json_string_value(v)[0];
        if (c >= '0' && c <= '2') {
            *mask |= 1u << (c - '0');
            return WD_OK;
        }
    }
    return WD_EINVAL;
}

/* "0,2": each part exactly "0", "1" or "2" (EMQX: binary:split(Qos, <<",">>, [global])) */
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

static int parse_qos(const json_t *v, unsigned *mask, const char **reason)
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
        for (size_t i = 0; i < json_array_size(v); i++)
            if (qos_atom(json_array_get(v, i), mask) != WD_OK)
                goto bad;
        if (*mask == 0) {
            *reason = "empty qos list matches nothing";
            return WD_EINVAL;
        }
        return WD_OK;
    } else if (qos_atom(v, mask) == WD_OK) {
        return WD_OK;
    }
bad:
    *mask = 0;
    *reason = "invalid qos";
    return WD_EINVAL;
}

static int parse_retain(const json_t *v, int *retain, const char **reason)
{
    if (!v || json_is_null(v) || jstr_is(v, "all")) {
        *retain = -1;
        return WD_OK;
    }
    if (json_is_true(v) || jstr_is(v, "true") || jstr_is(v, "1") ||
        (json_is_integer(v) && json_integer_value(v) == 1)) {
        *retain = 1;
        return WD_OK;
    }
    if (json_is_false(v) || jstr_is(v, "false") || jstr_is(v, "0") ||
        (json_is_integer(v) && json_integer_value(v) == 0)) {
        *retain = 0;
        return WD_OK;
    }
    *reason = "invalid retain";
    return WD_EINVAL;
}

static int parse_action(const json_t *v, unsigned *actions, const char **reason)
{
    if (jstr_is(v, "publish") || jstr_is(v, "pub"))
        *actions = WD_ACL_PUBLISH;
    else if (jstr_is(v, "subscribe") || jstr_is(v, "sub"))
        *actions = WD_ACL_SUBSCRIBE;
    else if (jstr_is(v, "all"))
        *actions = WD_ACL_PUBLISH | WD_ACL_SUBSCRIBE;
    else {
        *reason = "invalid action";
        return WD_EINVAL;
    }
    return WD_OK;
}

int wd_emqx_acl_rule_fields(const struct json_t *obj, unsigned flags, struct wd_acl_entry *e,
                            const char **reason)
{
    bool with_perm = flags & WD_EMQX_ACL_PERMISSION;
    if (!json_is_object(obj)) {
        *reason = "not an object";
        return WD_EINVAL;
    }
    const json_t *perm = json_object_get(obj, "permission");
    const json_t *act = json_object_get(obj, "action");
    if (with_perm && (!perm || !act)) {
        *reason = "invalid rule (needs permission and action)";
        return WD_EINVAL;
    }
    if (!act) {
        *reason = "JSON rule has no \"action\"";
        return WD_EINVAL;
    }
    e->allow = true;
    if (with_perm) {
        if (jstr_is(perm, "deny"))
            e->allow = false;
        else if (!jstr_is(perm, "allow")) {
            *reason = "invalid permission";
            return WD_EINVAL;
        }
    }
    if (parse_action(act, &e->actions, reason) != WD_OK)
        return WD_EINVAL;
    if (parse_qos(json_object_get(obj, "qos"), &e->qos_mask, reason) != WD_OK)
        return WD_EINVAL;
    e->retain = -1;
    if (e->actions & WD_ACL_PUBLISH) /* EMQX: subscribe rules do not read retain at all */
        return parse_retain(json_object_get(obj, "retain"), &e->retain, reason);
    return WD_OK;
}

/* The rule's topic values: a string "topic" (EMQX reads it first), else a list "topics". */
static int rule_topics(const json_t *obj, const json_t **one, const json_t **list, size_t *n,
                       const char **reason)
{
    const json_t *topic = json_object_get(obj, "topic"), *topics = json_object_get(obj, "topics");
    *one = NULL;
    *list = NULL;
    if (json_is_string(topic)) {
        *one = topic;
        *n = 1;
        return WD_OK;
    }
    if (topics) {
        if (!json_is_array(topics) || json_array_size(topics) == 0) {
            *reason = "topics is not a non-empty list";
            return WD_EINVAL;
        }
        *list = topics;
        *n = json_array_size(topics);
        return WD_OK;
    }
    *reason = topic ? "topic is not a string" : "missing topic or topics";
    return WD_EINVAL;
}

int wd_emqx_acl_rule_parse(const struct json_t *obj, size_t max, struct wd_acl_entry **out,
                           size_t *nout, size_t *ntopics, const char **reason)
{
    struct wd_acl_entry head = {0}, probe = {0};
    const json_t *one, *list;
    size_t n = 0, keep;

    *out = NULL;
    *nout = 0;
    *ntopics = 0;
    if (wd_emqx_acl_rule_fields(obj, WD_EMQX_ACL_PERMISSION, &head, reason) != WD_OK ||
        rule_topics(obj, &one, &list, &n, reason) != WD_OK)
        return WD_EINVAL;
    /* every topic is checked before any is kept: a rule is taken whole or not at all */
    for (size_t i = 0; i < n; i++) {
        if (wd_emqx_acl_topic_json(one ? one : json_array_get(list, i), &probe, reason) != WD_OK)
            return WD_EINVAL;
        wd_acl_entry_cleanup(&probe);
    }
    keep = n < max ? n : max;
    if (keep) {
        struct wd_acl_entry *v = wd_calloc(keep, sizeof *v);
        for (size_t i = 0; i < keep; i++) {
            v[i] = head;
            (void)wd_emqx_acl_topic_json(one ? one : json_array_get(list, i), &v[i], reason);
        }
        *out = v;
    }
    *nout = keep;
    *ntopics = n;
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
