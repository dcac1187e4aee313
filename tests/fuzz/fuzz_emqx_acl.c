/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_emqx_acl: the EMQX ACL rule parser (src/store/emqx_acl.c) through both of its users'
 * shapes: a Redis ACL pair (src/store/redis_acl.c) and a JWT rule object.
 *
 * Input: "FIELD\nVALUE" (split at the first newline; no newline: the whole input is the
 * value and the field is "t/1"). The last byte of the input also sets the room given to a
 * rule's topics (0..7), to reach the truncation path.
 *   1. wd_redis_acl_parse_entry(FIELD, VALUE).
 *   2. VALUE as JSON (the flags redis_acl.c uses), when it is: the whole-rule parser on it
 *      as a JWT v2 element would be, and the field alone as a topic (the v1 lists).
 *   3. Differential, when VALUE is a JSON object of at most WD_REDIS_ACL_VALUE_MAX bytes and
 *      FIELD is UTF-8 (a JSON string can hold it): the object with "permission":"allow" and
 *      "topic":FIELD set (what EMQX merges in for Redis) parses as a JWT rule to exactly the
 *      Redis entry, or both are refused; with the same reason when the field is a valid
 *      topic (Redis checks the topic first, the rule parser last).
 * Invariants on every entry: a topic of 1..65535 bytes without NUL, equal to the input topic
 * minus an "eq " prefix exactly when eq is set; actions within pub|sub and non-zero; qos
 * mask 1..7; retain -1, 0 or 1, and -1 for a subscribe-only rule; Redis entries allow.
 * A parsed rule keeps at most the room, and reports at least as many topics as it kept.
 */
#include <jansson.h>
#include <stdbool.h>

#include "core/log.h"
#include "core/wd.h"
#include "fuzz.h"
#include "store/emqx_acl.h"
#include "store/redis_acl.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    wd_log_set_level(WD_LOG_ERROR);
    json_object_seed(1); /* jansson's hash order fixed: a fixed -seed replays the same run */
    return 0;
}

static void check_topic(const struct wd_acl_entry *e, const char *src, size_t srclen)
{
    FUZZ_CHECK(e->topic != NULL, "no topic");
    size_t n = strlen(e->topic);
    FUZZ_CHECK(n >= 1 && n <= WD_ACL_TOPIC_MAX, "topic of %zu bytes", n);
    if (src) {
        bool pre = srclen >= 3 && memcmp(src, "eq ", 3) == 0;
        FUZZ_CHECK(e->eq == pre, "eq %d for a topic %s with the prefix", e->eq,
                   pre ? "starting" : "not starting");
        size_t off = pre ? 3 : 0;
        FUZZ_CHECK(n == srclen - off && memcmp(e->topic, src + off, n) == 0,
                   "topic is not the input topic");
    }
}

static void check_entry(const struct wd_acl_entry *e, const char *src, size_t srclen)
{
    check_topic(e, src, srclen);
    FUZZ_CHECK(e->actions && !(e->actions & ~(WD_ACL_PUBLISH | WD_ACL_SUBSCRIBE)), "actions %u",
               e->actions);
    FUZZ_CHECK(e->qos_mask >= 1 && e->qos_mask <= WD_ACL_QOS_ALL, "qos %u", e->qos_mask);
    FUZZ_CHECK(e->retain >= -1 && e->retain <= 1, "retain %d", e->retain);
    if (e->actions == WD_ACL_SUBSCRIBE)
        FUZZ_CHECK(e->retain == -1, "subscribe rule with retain %d", e->retain);
}

static bool same_entry(const struct wd_acl_entry *a, const struct wd_acl_entry *b)
{
    return strcmp(a->topic, b->topic) == 0 && a->eq == b->eq && a->allow == b->allow &&
           a->actions == b->actions && a->qos_mask == b->qos_mask && a->retain == b->retain;
}

/* the topic a JWT rule object names (the first, or the string "topic") for check_entry */
static const json_t *rule_topic(const json_t *obj, size_t i)
{
    const json_t *t = json_object_get(obj, "topic");
    if (json_is_string(t))
        return t;
    return json_array_get(json_object_get(obj, "topics"), i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 70 * 1024)
        return 0;
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    const char *field = "t/1", *value = in;
    size_t flen = 3, vlen = size;
    if (nl) {
        field = in;
        flen = (size_t)(nl - in);
        value = nl + 1;
        vlen = size - flen - 1;
    }
    size_t room = size ? data[size - 1] % 8 : 1;

    /* 1. the Redis pair */
    struct wd_redis_acl_pair p = {field, flen, value, vlen};
    struct wd_acl_entry re;
    const char *rreason = NULL;
    int rrc = wd_redis_acl_parse_entry(&p, &re, &rreason);
    FUZZ_CHECK(rrc == WD_OK || rrc == WD_EINVAL, "redis rc %d", rrc);
    if (rrc == WD_OK) {
        check_entry(&re, field, flen);
        FUZZ_CHECK(re.allow, "a Redis entry that denies");
    } else {
        FUZZ_CHECK(rreason != NULL && re.topic == NULL, "refused without a reason or with a topic");
    }

    /* the field alone as a topic (the JWT v1 lists, the Redis field) */
    struct wd_acl_entry te = {0};
    const char *treason = NULL;
    int trc = wd_emqx_acl_topic(field, flen, &te, &treason);
    if (trc == WD_OK)
        check_topic(&te, field, flen);
    wd_acl_entry_cleanup(&te);

    /* 2. the value as a rule object (a JWT v2 element) */
    json_t *j = json_loadb(value, vlen, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    if (j) {
        struct wd_acl_entry *v = NULL;
        size_t n = 0, nt = 0;
        const char *why = NULL;
        if (wd_emqx_acl_rule_parse(j, room, &v, &n, &nt, &why) == WD_OK) {
            FUZZ_CHECK(n <= room && n <= nt && nt >= 1 && (n == nt || n == room),
                       "kept %zu of %zu topics with room %zu", n, nt, room);
            FUZZ_CHECK((n == 0) == (v == NULL), "entries %p for %zu", (void *)v, n);
            for (size_t i = 0; i < n; i++) {
                const json_t *t = rule_topic(j, i);
                check_entry(&v[i], json_string_value(t), json_string_length(t));
                FUZZ_CHECK(v[i].allow == v[0].allow && v[i].actions == v[0].actions &&
                               v[i].qos_mask == v[0].qos_mask && v[i].retain == v[0].retain,
                           "entries of one rule differ beyond their topic");
            }
        } else {
            FUZZ_CHECK(why && !v && !n && !nt, "refused rule left something behind");
        }
        wd_acl_entries_free(v, n);
    }

    /* 3. the differential: Redis pair == JWT rule object with permission and topic merged */
    json_t *ft = flen ? json_stringn(field, flen) : json_string("");
    if (json_is_object(j) && vlen <= WD_REDIS_ACL_VALUE_MAX && ft) {
        json_object_set_new(j, "permission", json_string("allow"));
        json_object_set(j, "topic", ft);
        struct wd_acl_entry *v = NULL;
        size_t n = 0, nt = 0;
        const char *why = NULL;
        int jrc = wd_emqx_acl_rule_parse(j, 1, &v, &n, &nt, &why);
        FUZZ_CHECK(jrc == rrc, "redis %d (%s), rule %d (%s)", rrc, rreason ? rreason : "-", jrc,
                   why ? why : "-");
        if (jrc == WD_OK) {
            FUZZ_CHECK(n == 1 && nt == 1, "%zu entries", n);
            FUZZ_CHECK(same_entry(&re, &v[0]), "redis and rule entries differ");
        } else if (trc == WD_OK) {
            /* the one reason worded for its shape: Redis has no permission to ask for */
            const char *want = strcmp(rreason, "JSON rule has no \"action\"") == 0
                                   ? "invalid rule (needs permission and action)"
                                   : rreason;
            FUZZ_CHECK(strcmp(want, why) == 0, "reasons: redis '%s', rule '%s'", rreason, why);
        }
        wd_acl_entries_free(v, n);
    }
    json_decref(ft);
    json_decref(j);
    if (rrc == WD_OK)
        wd_acl_entry_cleanup(&re);
    return 0;
}
