/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/store/redis_acl.c: EMQX Redis ACL values into allow entries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/wd.h"
#include "store/redis_acl.h"

static int parse1(const char *topic, const char *value, struct wd_acl_entry *e, const char **reason)
{
    struct wd_redis_acl_pair p = {topic, strlen(topic), value, strlen(value)};
    return wd_redis_acl_parse_entry(&p, e, reason);
}

static void expect_ok(const char *topic, const char *value, const char *want_topic, bool eq,
                      unsigned actions, unsigned qos, int retain)
{
    struct wd_acl_entry e;
    const char *reason = NULL;
    int rc = parse1(topic, value, &e, &reason);
    if (rc != WD_OK)
        fail_msg("%s => %s: %s", topic, value, reason);
    assert_string_equal(e.topic, want_topic);
    assert_int_equal(e.eq, eq);
    assert_int_equal(e.actions, actions);
    assert_int_equal(e.qos_mask, qos);
    assert_int_equal(e.retain, retain);
    wd_acl_entry_cleanup(&e);
}

static void expect_skip(const char *value, const char *reason_part)
{
    struct wd_acl_entry e;
    const char *reason = NULL;
    assert_int_equal(parse1("t/1", value, &e, &reason), WD_EINVAL);
    assert_non_null(reason);
    assert_null(e.topic);
    if (reason_part && !strstr(reason, reason_part))
        fail_msg("value %s: reason '%s' lacks '%s'", value, reason, reason_part);
}

#define PUB WD_ACL_PUBLISH
#define SUB WD_ACL_SUBSCRIBE
#define ALL (WD_ACL_PUBLISH | WD_ACL_SUBSCRIBE)

static void plain_values_are_exactly_publish_subscribe_all(void **state)
{
    expect_ok("t/1", "publish", "t/1", false, PUB, 7, -1);
    expect_ok("t/#", "subscribe", "t/#", false, SUB, 7, -1);
    expect_ok("a/+/b", "all", "a/+/b", false, ALL, 7, -1);
    expect_skip("pub", "neither");
    expect_skip("sub", NULL);
    expect_skip("1", NULL);
    expect_skip("2", NULL);
    expect_skip("3", NULL);
    expect_skip("Publish", NULL);
    expect_skip("ALL", NULL);
    expect_skip("", NULL);
    expect_skip("publish ", NULL);
}

static void json_action_forms(void **state)
{
    expect_ok("t", "{\"action\":\"publish\"}", "t", false, PUB, 7, -1);
    expect_ok("t", "{\"action\":\"pub\"}", "t", false, PUB, 7, -1);
    expect_ok("t", "{\"action\":\"subscribe\"}", "t", false, SUB, 7, -1);
    expect_ok("t", "{\"action\":\"sub\"}", "t", false, SUB, 7, -1);
    expect_ok("t", " { \"action\" : \"all\" } ", "t", false, ALL, 7, -1);
    expect_skip("{\"qos\":1,\"retain\":true}", "no \"action\"");
    expect_skip("{\"action\":\"unsubscribe\"}", "invalid action");
    expect_skip("{\"action\":\"PUBLISH\"}", "invalid action");
    expect_skip("{\"action\":1}", "invalid action");
    expect_skip("{\"action\":null}", "invalid action");
}

static void json_permission_is_ignored_every_entry_is_allow(void **state)
{
    /* the struct has no permission: a deny in Redis is still an allow (EMQX drops it) */
    expect_ok("t", "{\"action\":\"publish\",\"permission\":\"deny\",\"topic\":\"x\"}", "t", false,
              PUB, 7, -1);
}

static void json_qos_as_int_string_list_null(void **state)
{
    expect_ok("t", "{\"action\":\"all\",\"qos\":0}", "t", false, ALL, 1, -1);
    expect_ok("t", "{\"action\":\"all\",\"qos\":2}", "t", false, ALL, 4, -1);
    expect_ok("t", "{\"action\":\"all\",\"qos\":\"1\"}", "t", false, ALL, 2, -1);
    expect_ok("t", "{\"action\":\"all\",\"qos\":\"0,2\"}", "t", false, ALL, 5, -1);
    expect_ok("t", "{\"action\":\"all\",\"qos\":\"1,1\"}", "t", false, ALL, 2, -1);
    expect_ok("t", "{\"action\":\"subscribe\",\"qos\":[1,2]}", "t", false, SUB, 6, -1);
    expect_ok("t", "{\"action\":\"all\",\"qos\":[\"0\",\"2\"]}", "t", false, ALL, 5, -1);
    expect_ok("t", "{\"action\":\"all\",\"qos\":[0,\"1\"]}", "t", false, ALL, 3, -1);
    expect_ok("t", "{\"action\":\"all\",\"qos\":null}", "t", false, ALL, 7, -1);
    expect_skip("{\"action\":\"all\",\"qos\":3}", "invalid qos");
    expect_skip("{\"action\":\"all\",\"qos\":-1}", "invalid qos");
    expect_skip("{\"action\":\"all\",\"qos\":1.0}", "invalid qos");
    expect_skip("{\"action\":\"all\",\"qos\":true}", "invalid qos");
    expect_skip("{\"action\":\"all\",\"qos\":\"1, 2\"}", "invalid qos");
    expect_skip("{\"action\":\"all\",\"qos\":\"\"}", "invalid qos");
    expect_skip("{\"action\":\"all\",\"qos\":\"1,\"}", "invalid qos");
    expect_skip("{\"action\":\"all\",\"qos\":\"3\"}", "invalid qos");
    expect_skip("{\"action\":\"all\",\"qos\":[1,3]}", "invalid qos");
    expect_skip("{\"action\":\"all\",\"qos\":[[1]]}", "invalid qos");
    expect_skip("{\"action\":\"all\",\"qos\":{}}", "invalid qos");
    expect_skip("{\"action\":\"all\",\"qos\":[]}", "empty qos");
}

static void json_retain_forms(void **state)
{
    expect_ok("t", "{\"action\":\"publish\",\"retain\":true}", "t", false, PUB, 7, 1);
    expect_ok("t", "{\"action\":\"publish\",\"retain\":false}", "t", false, PUB, 7, 0);
    expect_ok("t", "{\"action\":\"publish\",\"retain\":\"true\"}", "t", false, PUB, 7, 1);
    expect_ok("t", "{\"action\":\"publish\",\"retain\":\"false\"}", "t", false, PUB, 7, 0);
    expect_ok("t", "{\"action\":\"publish\",\"retain\":1}", "t", false, PUB, 7, 1);
    expect_ok("t", "{\"action\":\"publish\",\"retain\":0}", "t", false, PUB, 7, 0);
    expect_ok("t", "{\"action\":\"all\",\"retain\":\"1\"}", "t", false, ALL, 7, 1);
    expect_ok("t", "{\"action\":\"all\",\"retain\":\"0\"}", "t", false, ALL, 7, 0);
    expect_ok("t", "{\"action\":\"all\",\"retain\":\"all\"}", "t", false, ALL, 7, -1);
    expect_ok("t", "{\"action\":\"all\",\"retain\":null}", "t", false, ALL, 7, -1);
    expect_ok("t", "{\"action\":\"publish\",\"qos\":[0,1],\"retain\":false}", "t", false, PUB, 3,
              0);
    expect_skip("{\"action\":\"publish\",\"retain\":2}", "invalid retain");
    expect_skip("{\"action\":\"publish\",\"retain\":\"yes\"}", "invalid retain");
    expect_skip("{\"action\":\"publish\",\"retain\":\"TRUE\"}", "invalid retain");
    expect_skip("{\"action\":\"all\",\"retain\":[]}", "invalid retain");
    /* subscribe rules do not read retain at all (EMQX t_parse_ok) */
    expect_ok("t", "{\"action\":\"subscribe\",\"retain\":\"true\"}", "t", false, SUB, 7, -1);
    expect_ok("t", "{\"action\":\"sub\",\"retain\":\"bogus\"}", "t", false, SUB, 7, -1);
}

static void invalid_json_and_non_objects_are_skipped(void **state)
{
    expect_skip("{\"action\":\"publish\"", "valid JSON");
    expect_skip("{action:publish}", "valid JSON");
    expect_skip("[]", "not an object");
    expect_skip("[\"publish\"]", "not an object");
    expect_skip("\"publish\"", NULL);
    expect_skip("null", NULL);
    expect_skip("{\"action\":\"publish\"} trailing", NULL);
}

static void json_value_with_duplicate_keys_is_skipped(void **state)
{
    /* which "action" would EMQX take? A JWT payload refuses duplicate keys; so does Redis */
    expect_skip("{\"action\":\"subscribe\",\"action\":\"all\"}", "valid JSON");
    expect_skip("{\"action\":\"publish\",\"retain\":false,\"retain\":true}", NULL);
}

static void eq_prefix_makes_the_topic_literal(void **state)
{
    expect_ok("eq t/${username}/#", "publish", "t/${username}/#", true, PUB, 7, -1);
    expect_ok("eq  two spaces", "all", " two spaces", true, ALL, 7, -1);
    expect_ok("eq", "all", "eq", false, ALL, 7, -1);     /* no space: a normal topic */
    expect_ok("EQ t", "all", "EQ t", false, ALL, 7, -1); /* only lowercase */
    expect_ok("eqt/1", "all", "eqt/1", false, ALL, 7, -1);
    expect_ok("x/${clientid}", "all", "x/${clientid}", false, ALL, 7, -1);
}

static void empty_topics_and_nul_bytes_are_refused(void **state)
{
    struct wd_acl_entry e;
    const char *reason = NULL;
    struct wd_redis_acl_pair p = {"", 0, "all", 3};
    assert_int_equal(wd_redis_acl_parse_entry(&p, &e, &reason), WD_EINVAL);
    assert_string_equal(reason, "empty topic");
    p = (struct wd_redis_acl_pair){"eq ", 3, "all", 3};
    assert_int_equal(wd_redis_acl_parse_entry(&p, &e, &reason), WD_EINVAL);
    assert_string_equal(reason, "empty topic");
    p = (struct wd_redis_acl_pair){"a\0b", 3, "all", 3};
    assert_int_equal(wd_redis_acl_parse_entry(&p, &e, &reason), WD_EINVAL);
    assert_non_null(strstr(reason, "NUL"));
    /* a NUL inside a JSON value is invalid JSON for jansson */
    p = (struct wd_redis_acl_pair){"t", 1, "{\"action\":\"all\"}\0", 17};
    assert_int_equal(wd_redis_acl_parse_entry(&p, &e, &reason), WD_EINVAL);
    p = (struct wd_redis_acl_pair){"t", 1, "all\0", 4};
    assert_int_equal(wd_redis_acl_parse_entry(&p, &e, &reason), WD_EINVAL);
}

static void topic_and_value_sizes_are_bounded(void **state)
{
    struct wd_acl_entry e;
    const char *reason = NULL;
    size_t big = WD_REDIS_ACL_TOPIC_MAX + 1;
    char *t = malloc(big + 3);
    memset(t, 'a', big + 3);
    memcpy(t, "eq ", 3);
    struct wd_redis_acl_pair p = {t, big + 3, "all", 3};
    assert_int_equal(wd_redis_acl_parse_entry(&p, &e, &reason), WD_EINVAL);
    assert_non_null(strstr(reason, "65535"));
    p.field_len = big - 1 + 3; /* exactly the limit after "eq " */
    assert_int_equal(wd_redis_acl_parse_entry(&p, &e, &reason), WD_OK);
    assert_int_equal(strlen(e.topic), WD_REDIS_ACL_TOPIC_MAX);
    assert_true(e.eq);
    wd_acl_entry_cleanup(&e);
    free(t);

    /* a JSON value over the limit is refused before parsing */
    size_t vn = WD_REDIS_ACL_VALUE_MAX + 1;
    char *v = malloc(vn);
    const char *head = "{\"action\":\"all\",\"x\":\"";
    memset(v, 'x', vn);
    memcpy(v, head, strlen(head));
    memcpy(v + vn - 2, "\"}", 2);
    p = (struct wd_redis_acl_pair){"t", 1, v, vn};
    assert_int_equal(wd_redis_acl_parse_entry(&p, &e, &reason), WD_EINVAL);
    assert_non_null(strstr(reason, "too large"));
    p.value_len = vn - 1; /* the same shape within the limit parses */
    memcpy(v + vn - 3, "\"}", 2);
    assert_int_equal(wd_redis_acl_parse_entry(&p, &e, &reason), WD_OK);
    wd_acl_entry_cleanup(&e);
    free(v);
}

struct skips {
    int n;
    char topics[8][32];
    const char *reasons[8];
    bool limit;
};

static void on_skip(void *ud, const char *topic, size_t len, const char *reason)
{
    struct skips *s = ud;
    if (!topic) {
        s->limit = true;
        return;
    }
    if (s->n < 8) {
        snprintf(s->topics[s->n], sizeof s->topics[0], "%.*s", (int)len, topic);
        s->reasons[s->n] = reason;
    }
    s->n++;
}

#define PAIR(t, v)                                                                                 \
    {                                                                                              \
        t, sizeof(t) - 1, v, sizeof(v) - 1                                                         \
    }

static void list_keeps_valid_entries_in_order_and_reports_skipped_ones(void **state)
{
    struct wd_redis_acl_pair pairs[] = {
        PAIR("t/1", "subscribe"),     PAIR("t/2", "{ \"action\": \"subscribe\", \"qos\": [1, 2] }"),
        PAIR("bad/1", "pub"),         PAIR("t/3", "{ \"action\": \"publish\", \"retain\": false }"),
        PAIR("bad/2", "{\"qos\":1}"), PAIR("eq t/4", "all"),
    };
    struct wd_acl_entry *e = NULL;
    size_t n = 99;
    struct skips s = {0};
    assert_int_equal(wd_redis_acl_parse(pairs, WD_ARRAY_LEN(pairs), &e, &n, on_skip, &s), WD_OK);
    assert_int_equal(n, 4);
    assert_string_equal(e[0].topic, "t/1");
    assert_string_equal(e[1].topic, "t/2");
    assert_int_equal(e[1].qos_mask, 6);
    assert_string_equal(e[2].topic, "t/3");
    assert_int_equal(e[2].retain, 0);
    assert_string_equal(e[3].topic, "t/4");
    assert_true(e[3].eq);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.topics[0], "bad/1");
    assert_string_equal(s.topics[1], "bad/2");
    assert_non_null(strstr(s.reasons[1], "action"));
    assert_false(s.limit);
    wd_acl_entries_free(e, n);
}

static void all_skipped_or_empty_gives_no_entries(void **state)
{
    struct wd_redis_acl_pair pairs[] = {PAIR("t", "nope")};
    struct wd_acl_entry *e = (void *)1;
    size_t n = 99;
    assert_int_equal(wd_redis_acl_parse(pairs, 1, &e, &n, NULL, NULL), WD_OK);
    assert_null(e);
    assert_int_equal(n, 0);
    assert_int_equal(wd_redis_acl_parse(NULL, 0, &e, &n, NULL, NULL), WD_OK);
    assert_null(e);
    assert_int_equal(n, 0);
    assert_int_equal(wd_redis_acl_parse(pairs, 1, NULL, &n, NULL, NULL), WD_EINVAL);
    wd_acl_entries_free(NULL, 0);
    wd_acl_entry_cleanup(NULL);
}

static void entry_count_is_bounded_and_the_rest_reported_once(void **state)
{
    size_t total = WD_REDIS_ACL_MAX_ENTRIES + 10;
    struct wd_redis_acl_pair *pairs = calloc(total, sizeof *pairs);
    struct wd_acl_entry *e = NULL;
    size_t n = 0;
    struct skips s = {0};
    for (size_t i = 0; i < total; i++)
        pairs[i] = (struct wd_redis_acl_pair){"t/x", 3, "all", 3};
    assert_int_equal(wd_redis_acl_parse(pairs, total, &e, &n, on_skip, &s), WD_OK);
    assert_int_equal(n, WD_REDIS_ACL_MAX_ENTRIES);
    assert_int_equal(s.n, 0);
    assert_true(s.limit);
    wd_acl_entries_free(e, n);
    free(pairs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_values_are_exactly_publish_subscribe_all),
        cmocka_unit_test(json_action_forms),
        cmocka_unit_test(json_permission_is_ignored_every_entry_is_allow),
        cmocka_unit_test(json_qos_as_int_string_list_null),
        cmocka_unit_test(json_retain_forms),
        cmocka_unit_test(invalid_json_and_non_objects_are_skipped),
        cmocka_unit_test(json_value_with_duplicate_keys_is_skipped),
        cmocka_unit_test(eq_prefix_makes_the_topic_literal),
        cmocka_unit_test(empty_topics_and_nul_bytes_are_refused),
        cmocka_unit_test(topic_and_value_sizes_are_bounded),
        cmocka_unit_test(list_keeps_valid_entries_in_order_and_reports_skipped_ones),
        cmocka_unit_test(all_skipped_or_empty_gives_no_entries),
        cmocka_unit_test(entry_count_is_bounded_and_the_rest_reported_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
