/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/store/emqx_acl.c: the EMQX rule parser the Redis ACL and the JWT ACL
 * claim share, and the cases where their two former parsers disagreed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/wd.h"
#include "store/emqx_acl.h"
#include "store/redis_acl.h"

#define PUB WD_ACL_PUBLISH
#define SUB WD_ACL_SUBSCRIBE
#define ALL (WD_ACL_PUBLISH | WD_ACL_SUBSCRIBE)

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, e.text);
    return j;
}

/* parses a whole rule object; returns rc, entries in *out (caller frees) */
static int rule(const char *text, struct wd_acl_entry **out, size_t *n, const char **reason)
{
    json_t *j = load(text);
    size_t nt = 0;
    *reason = NULL;
    int rc = wd_emqx_acl_rule_parse(j, 64, out, n, &nt, reason);
    if (rc == WD_OK)
        assert_int_equal(nt, *n);
    json_decref(j);
    return rc;
}

static void expect_rule(const char *text, bool allow, unsigned actions, const char *topic, bool eq,
                        unsigned qos, int retain)
{
    struct wd_acl_entry *e = NULL;
    size_t n = 0;
    const char *reason;
    if (rule(text, &e, &n, &reason) != WD_OK)
        fail_msg("%s: %s", text, reason);
    assert_int_equal(n, 1);
    assert_int_equal(e[0].allow, allow);
    assert_int_equal(e[0].actions, actions);
    assert_string_equal(e[0].topic, topic);
    assert_int_equal(e[0].eq, eq);
    assert_int_equal(e[0].qos_mask, qos);
    assert_int_equal(e[0].retain, retain);
    wd_acl_entries_free(e, n);
}

static void expect_refused(const char *text, const char *want)
{
    struct wd_acl_entry *e = (void *)1;
    size_t n = 99;
    const char *reason;
    assert_int_equal(rule(text, &e, &n, &reason), WD_EINVAL);
    assert_null(e);
    assert_int_equal(n, 0);
    assert_non_null(reason);
    if (strcmp(reason, want) != 0)
        fail_msg("%s: reason '%s', want '%s'", text, reason, want);
}

static void a_rule_object_gives_permission_action_topic_qos_retain(void **state)
{
    expect_rule("{\"permission\":\"allow\",\"action\":\"publish\",\"topic\":\"t/${clientid}\"}",
                true, PUB, "t/${clientid}", false, 7, -1);
    expect_rule("{\"permission\":\"deny\",\"action\":\"sub\",\"topic\":\"eq t/#\",\"qos\":[1]}",
                false, SUB, "t/#", true, 2, -1);
    expect_rule("{\"permission\":\"deny\",\"action\":\"pub\",\"topic\":\"t\",\"qos\":\"0,2\","
                "\"retain\":\"1\"}",
                false, PUB, "t", false, 5, 1);
    expect_rule("{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"t\",\"qos\":null,"
                "\"retain\":\"all\",\"other\":[1]}",
                true, ALL, "t", false, 7, -1);
    /* subscribe rules do not read retain at all (EMQX t_parse_ok) */
    expect_rule("{\"permission\":\"allow\",\"action\":\"subscribe\",\"topic\":\"t\","
                "\"retain\":\"bogus\"}",
                true, SUB, "t", false, 7, -1);
}

static void topics_give_one_entry_each_in_order(void **state)
{
    struct wd_acl_entry *e = NULL;
    size_t n = 0, nt = 0;
    const char *reason;
    assert_int_equal(rule("{\"permission\":\"deny\",\"action\":\"all\",\"topics\":[\"a\",\"eq b\","
                          "\"c/#\"],\"qos\":2,\"retain\":false}",
                          &e, &n, &reason),
                     WD_OK);
    assert_int_equal(n, 3);
    assert_string_equal(e[0].topic, "a");
    assert_string_equal(e[1].topic, "b");
    assert_true(e[1].eq);
    assert_string_equal(e[2].topic, "c/#");
    for (size_t i = 0; i < n; i++) {
        assert_false(e[i].allow);
        assert_int_equal(e[i].actions, ALL);
        assert_int_equal(e[i].qos_mask, 4);
        assert_int_equal(e[i].retain, 0);
    }
    wd_acl_entries_free(e, n);

    /* room for two: two kept, the count says three */
    json_t *j =
        load("{\"permission\":\"allow\",\"action\":\"all\",\"topics\":[\"a\",\"b\",\"c\"]}");
    assert_int_equal(wd_emqx_acl_rule_parse(j, 2, &e, &n, &nt, &reason), WD_OK);
    assert_int_equal(n, 2);
    assert_int_equal(nt, 3);
    assert_string_equal(e[1].topic, "b");
    wd_acl_entries_free(e, n);
    assert_int_equal(wd_emqx_acl_rule_parse(j, 0, &e, &n, &nt, &reason), WD_OK);
    assert_null(e);
    assert_int_equal(n, 0);
    assert_int_equal(nt, 3);
    json_decref(j);
}

static void a_string_topic_wins_over_topics_as_in_emqx(void **state)
{
    /* emqx_authz_rule_raw: validate_rule_topics reads a binary "topic" first */
    expect_rule("{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"a\",\"topics\":[\"#\"]}",
                true, ALL, "a", false, 7, -1);
    expect_rule("{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"a\",\"topics\":7}", true,
                ALL, "a", false, 7, -1);
    /* a topic that is not a string leaves "topics" to decide */
    expect_rule("{\"permission\":\"allow\",\"action\":\"all\",\"topic\":7,\"topics\":[\"b\"]}",
                true, ALL, "b", false, 7, -1);
}

static void invalid_rules_are_refused_with_the_first_reason(void **state)
{
    expect_refused("[]", "not an object");
    expect_refused("\"publish\"", "not an object");
    expect_refused("{\"action\":\"publish\",\"topic\":\"t\"}",
                   "invalid rule (needs permission and action)");
    expect_refused("{\"permission\":\"allow\",\"topic\":\"t\"}",
                   "invalid rule (needs permission and action)");
    expect_refused("{\"permission\":\"Allow\",\"action\":\"publish\",\"topic\":\"t\"}",
                   "invalid permission");
    expect_refused("{\"permission\":\"allow\",\"action\":\"unsubscribe\",\"topic\":\"t\"}",
                   "invalid action");
    expect_refused("{\"permission\":\"allow\",\"action\":\"PUB\",\"topic\":\"t\"}",
                   "invalid action");
    expect_refused("{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"t\",\"qos\":3}",
                   "invalid qos");
    expect_refused("{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"t\",\"qos\":\"1, 2\"}",
                   "invalid qos");
    expect_refused("{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"t\",\"qos\":\"1,\"}",
                   "invalid qos");
    expect_refused("{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"t\",\"qos\":[\"12\"]}",
                   "invalid qos");
    expect_refused("{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"t\",\"qos\":[]}",
                   "empty qos list matches nothing");
    expect_refused("{\"permission\":\"allow\",\"action\":\"pub\",\"topic\":\"t\",\"retain\":2}",
                   "invalid retain");
    expect_refused("{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"t\","
                   "\"retain\":\"TRUE\"}",
                   "invalid retain");
    expect_refused("{\"permission\":\"allow\",\"action\":\"all\"}", "missing topic or topics");
    expect_refused("{\"permission\":\"allow\",\"action\":\"all\",\"topic\":7}",
                   "topic is not a string");
    expect_refused("{\"permission\":\"allow\",\"action\":\"all\",\"topics\":[]}",
                   "topics is not a non-empty list");
    expect_refused("{\"permission\":\"allow\",\"action\":\"all\",\"topics\":\"a\"}",
                   "topics is not a non-empty list");
    /* one bad topic refuses the whole rule: nothing of it is kept */
    expect_refused("{\"permission\":\"allow\",\"action\":\"all\",\"topics\":[\"ok\",\"eq \"]}",
                   "empty topic");
    expect_refused("{\"permission\":\"allow\",\"action\":\"all\",\"topics\":[\"ok\",1]}",
                   "topic is not a string");
}

static void keywords_compare_by_length_so_a_nul_byte_is_never_a_keyword(void **state)
{
    /* jansson keeps \u0000 only with JSON_ALLOW_NUL; the parser must not rely on that */
    expect_refused("{\"permission\":\"allow\\u0000x\",\"action\":\"all\",\"topic\":\"t\"}",
                   "invalid permission");
    expect_refused("{\"permission\":\"allow\",\"action\":\"pub\\u0000\",\"topic\":\"t\"}",
                   "invalid action");
    expect_refused("{\"permission\":\"allow\",\"action\":\"pub\",\"topic\":\"t\","
                   "\"retain\":\"1\\u0000x\"}",
                   "invalid retain");
    expect_refused(
        "{\"permission\":\"allow\",\"action\":\"pub\",\"topic\":\"t\",\"qos\":\"1\\u0000\"}",
        "invalid qos");
    expect_refused("{\"permission\":\"allow\",\"action\":\"pub\",\"topic\":\"t\\u0000x\"}",
                   "topic contains a NUL byte");
}

static void topic_strings_eq_prefix_empty_and_limit(void **state)
{
    struct wd_acl_entry e = {0};
    const char *reason = NULL;
    assert_int_equal(wd_emqx_acl_topic("eq a/+", 6, &e, &reason), WD_OK);
    assert_string_equal(e.topic, "a/+");
    assert_true(e.eq);
    wd_acl_entry_cleanup(&e);
    assert_int_equal(wd_emqx_acl_topic("eqa", 3, &e, &reason), WD_OK);
    assert_string_equal(e.topic, "eqa");
    assert_false(e.eq);
    wd_acl_entry_cleanup(&e);
    assert_int_equal(wd_emqx_acl_topic("eq ", 3, &e, &reason), WD_EINVAL);
    assert_string_equal(reason, "empty topic");
    assert_int_equal(wd_emqx_acl_topic("", 0, &e, &reason), WD_EINVAL);
    assert_null(e.topic);

    /* the limit counts the topic, after the prefix: 65535 bytes behind "eq " is fine */
    size_t n = 3 + WD_ACL_TOPIC_MAX;
    char *t = malloc(n + 1);
    memset(t, 'a', n + 1);
    memcpy(t, "eq ", 3);
    assert_int_equal(wd_emqx_acl_topic(t, n, &e, &reason), WD_OK);
    assert_int_equal(strlen(e.topic), WD_ACL_TOPIC_MAX);
    wd_acl_entry_cleanup(&e);
    assert_int_equal(wd_emqx_acl_topic(t, n + 1, &e, &reason), WD_EINVAL);
    assert_string_equal(reason, "topic longer than 65535 bytes");
    assert_int_equal(wd_emqx_acl_topic(t + 3, WD_ACL_TOPIC_MAX + 1, &e, &reason), WD_EINVAL);
    free(t);
}

static void fields_without_permission_allow_and_leave_the_topic_alone(void **state)
{
    struct wd_acl_entry e = {0};
    const char *reason = NULL;
    json_t *j = load("{\"permission\":\"deny\",\"action\":\"pub\",\"topic\":\"x\",\"qos\":1}");
    assert_int_equal(wd_emqx_acl_rule_fields(j, 0, &e, &reason), WD_OK);
    assert_true(e.allow);
    assert_int_equal(e.actions, PUB);
    assert_int_equal(e.qos_mask, 2);
    assert_null(e.topic);
    assert_int_equal(wd_emqx_acl_rule_fields(j, WD_EMQX_ACL_PERMISSION, &e, &reason), WD_OK);
    assert_false(e.allow);
    json_decref(j);
    j = load("{\"qos\":1}");
    assert_int_equal(wd_emqx_acl_rule_fields(j, 0, &e, &reason), WD_EINVAL);
    assert_string_equal(reason, "JSON rule has no \"action\"");
    json_decref(j);
}

/* The Redis form (field, JSON value) and the JWT form (the same object with "permission":
 * "allow" and the field as "topic", which is what EMQX merges in for Redis) give one and the
 * same entry, or are both refused. */
static void redis_pair_and_jwt_rule_of_the_same_rule_agree(void **state)
{
    static const char *values[] = {
        "{\"action\":\"publish\"}",
        "{\"action\":\"sub\",\"qos\":[0,\"2\"]}",
        "{\"action\":\"all\",\"qos\":\"1,2\",\"retain\":\"true\"}",
        "{\"action\":\"pub\",\"retain\":0}",
        "{\"action\":\"subscribe\",\"retain\":\"x\"}",
        "{\"action\":\"all\",\"qos\":[]}",
        "{\"action\":\"pub\",\"qos\":3}",
        "{\"action\":\"pub\",\"retain\":\"maybe\"}",
        "{\"action\":\"unsubscribe\"}",
    };
    static const char *fields[] = {"t/1", "eq t/+", "a/${username}/#"};
    for (size_t f = 0; f < WD_ARRAY_LEN(fields); f++) {
        for (size_t v = 0; v < WD_ARRAY_LEN(values); v++) {
            struct wd_redis_acl_pair p = {fields[f], strlen(fields[f]), values[v],
                                          strlen(values[v])};
            struct wd_acl_entry re;
            const char *rr = NULL, *jr = NULL;
            int rrc = wd_redis_acl_parse_entry(&p, &re, &rr);

            json_t *j = load(values[v]);
            json_object_set_new(j, "permission", json_string("allow"));
            json_object_set_new(j, "topic", json_string(fields[f]));
            struct wd_acl_entry *je = NULL;
            size_t n = 0, nt = 0;
            int jrc = wd_emqx_acl_rule_parse(j, 8, &je, &n, &nt, &jr);
            json_decref(j);

            if (rrc != jrc)
                fail_msg("%s => %s: redis %d (%s), jwt %d (%s)", fields[f], values[v], rrc,
                         rr ? rr : "-", jrc, jr ? jr : "-");
            if (rrc != WD_OK) {
                assert_string_equal(rr, jr);
                continue;
            }
            assert_int_equal(n, 1);
            assert_string_equal(re.topic, je[0].topic);
            assert_int_equal(re.eq, je[0].eq);
            assert_int_equal(re.allow, je[0].allow);
            assert_int_equal(re.actions, je[0].actions);
            assert_int_equal(re.qos_mask, je[0].qos_mask);
            assert_int_equal(re.retain, je[0].retain);
            wd_acl_entry_cleanup(&re);
            wd_acl_entries_free(je, n);
        }
    }
}

static void freeing_nothing_is_fine(void **state)
{
    wd_acl_entries_free(NULL, 3);
    wd_acl_entry_cleanup(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_rule_object_gives_permission_action_topic_qos_retain),
        cmocka_unit_test(topics_give_one_entry_each_in_order),
        cmocka_unit_test(a_string_topic_wins_over_topics_as_in_emqx),
        cmocka_unit_test(invalid_rules_are_refused_with_the_first_reason),
        cmocka_unit_test(keywords_compare_by_length_so_a_nul_byte_is_never_a_keyword),
        cmocka_unit_test(topic_strings_eq_prefix_empty_and_limit),
        cmocka_unit_test(fields_without_permission_allow_and_leave_the_topic_alone),
        cmocka_unit_test(redis_pair_and_jwt_rule_of_the_same_rule_agree),
        cmocka_unit_test(freeing_nothing_is_fine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
