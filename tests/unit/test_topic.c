/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/policy/topic.c: MQTT validity and the covers relation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "policy/topic.h"

static bool cov(const char *rule, const char *req)
{
    return wd_topic_covers(rule, strlen(rule), req, strlen(req));
}

static bool fv(const char *f)
{
    return wd_topic_filter_valid(f, strlen(f));
}

static void filter_validity(void **state)
{
    assert_true(fv("a/b"));
    assert_true(fv("#"));
    assert_true(fv("+"));
    assert_true(fv("a/+/c/#"));
    assert_true(fv("/"));
    assert_true(fv("$SYS/#"));
    assert_false(fv(""));
    assert_false(fv("a/#/c"));
    assert_false(fv("a#"));
    assert_false(fv("a/b+"));
    assert_false(fv("++"));
    assert_false(wd_topic_filter_valid("a\0b", 3));
    assert_false(wd_topic_name_valid("a/+", 3));
    assert_true(wd_topic_name_valid("a/b", 3));
}

static void too_many_levels_is_invalid(void **state)
{
    char buf[1024];
    size_t n = 0;
    for (int i = 0; i < 200; i++) {
        buf[n++] = 'a';
        buf[n++] = '/';
    }
    buf[n - 1] = '\0';
    assert_false(fv(buf));
}

static void literal_rules_cover_only_themselves(void **state)
{
    assert_true(cov("a/b", "a/b"));
    assert_false(cov("a/b", "a/c"));
    assert_false(cov("a/b", "a/b/c"));
    assert_false(cov("a/b", "a"));
    assert_false(cov("a/b", "a/+"));
    assert_false(cov("a/b", "a/#"));
    assert_false(cov("a/b", "a/bb"));
}

static void plus_covers_one_level_but_not_hash(void **state)
{
    assert_true(cov("a/+", "a/b"));
    assert_true(cov("a/+", "a/+"));
    assert_true(cov("a/+", "a/"));
    assert_false(cov("a/+", "a"));
    assert_false(cov("a/+", "a/b/c"));
    /* the EMQX quirk, fixed: a/+ does not allow subscribing a/# */
    assert_false(cov("a/+", "a/#"));
    assert_true(cov("+/+", "a/b"));
}

static void hash_covers_the_rest_including_the_parent(void **state)
{
    assert_true(cov("a/#", "a"));
    assert_true(cov("a/#", "a/b/c"));
    assert_true(cov("a/#", "a/#"));
    assert_true(cov("a/#", "a/+/c"));
    assert_false(cov("a/#", "b"));
    assert_false(cov("a/b/#", "a/#"));
    assert_false(cov("a/b/#", "a/+"));
    assert_true(cov("#", "#"));
    assert_true(cov("#", "+/x"));
}

static void wildcards_at_first_level_do_not_cover_dollar_topics(void **state)
{
    assert_false(cov("#", "$SYS/broker/uptime"));
    assert_false(cov("+/broker/uptime", "$SYS/broker/uptime"));
    assert_false(cov("#", "$SYS"));
    assert_true(cov("$SYS/#", "$SYS/broker/uptime"));
    assert_true(cov("$SYS/+/uptime", "$SYS/broker/uptime"));
    /* deeper wildcards are fine */
    assert_true(cov("a/#", "a/$b"));
    assert_true(cov("a/+", "a/$b"));
}

static void split_levels(void **state)
{
    const char *lv[8];
    size_t ln[8];
    assert_int_equal(wd_topic_split("a//b/", 5, lv, ln, 8), 4);
    assert_int_equal(ln[1], 0);
    assert_int_equal(ln[3], 0);
    assert_int_equal(wd_topic_split("a/b/c", 5, lv, ln, 2), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(filter_validity),
        cmocka_unit_test(too_many_levels_is_invalid),
        cmocka_unit_test(literal_rules_cover_only_themselves),
        cmocka_unit_test(plus_covers_one_level_but_not_hash),
        cmocka_unit_test(hash_covers_the_rest_including_the_parent),
        cmocka_unit_test(wildcards_at_first_level_do_not_cover_dollar_topics),
        cmocka_unit_test(split_levels),
    };
    return cmocka_run_group_tests_name("topic", tests, NULL, NULL);
}
