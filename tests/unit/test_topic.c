/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/policy/topic.c: MQTT validity, the covers and overlap relations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy/topic.h"

static bool cov(const char *rule, const char *req)
{
    return wd_topic_covers(rule, strlen(rule), req, strlen(req));
}

static bool ovl(const char *rule, const char *req)
{
    return wd_topic_overlaps(rule, strlen(rule), req, strlen(req));
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

/* A request topic is checked as MQTT does; the rule layer's level limit does not apply (a
 * broker may allow deeper topics than a rule can have). Agrees with filter/name validity
 * wherever that limit is not reached. */
static void request_topics_follow_mqtt_without_a_level_limit(void **state)
{
    const char *cases[] = {"a/b", "#", "+", "a/+/c/#", "/", "a//b", "$SYS/#", "",
                           "a/#/c", "a#", "a/b+", "++", "#/", "+a", "#/#", "a/+b/c"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = strlen(cases[i]);
        assert_int_equal(wd_topic_request_valid(cases[i], n, true), fv(cases[i]));
        assert_int_equal(wd_topic_request_valid(cases[i], n, false),
                         wd_topic_name_valid(cases[i], n));
    }
    assert_false(wd_topic_request_valid("a\0b", 3, false));
    char buf[1024];
    size_t n = 0;
    for (int i = 0; i < 199; i++) {
        buf[n++] = 'a';
        buf[n++] = '/';
    }
    buf[n++] = '#';
    assert_true(wd_topic_request_valid(buf, n, true)); /* 200 levels, '#' last */
    assert_false(wd_topic_request_valid(buf, n, false));
    buf[n - 1] = 'a';
    assert_true(wd_topic_request_valid(buf, n, false));
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

static void deny_overlap_catches_wider_subscriptions(void **state)
{
    /* issue 8: deny "secrets/#" must stop subscriptions that can receive secrets */
    assert_true(ovl("secrets/#", "#"));
    assert_true(ovl("secrets/#", "+/db-password"));
    assert_true(ovl("secrets/#", "secrets"));
    assert_true(ovl("secrets/#", "+"));
    assert_true(ovl("secrets/db-password", "+/+"));
    assert_true(ovl("secrets/db-password", "secrets/#"));
    assert_false(ovl("secrets/#", "other/x"));
    assert_false(ovl("secrets/+", "+/+/x"));
    assert_false(ovl("a/b", "a/b/+"));
    assert_false(ovl("a/+", "a"));
    /* a/# matches a, so each side's '#' may stand for no level at all */
    assert_true(ovl("a", "a/#"));
    assert_true(ovl("a/#", "a"));
    assert_true(ovl("a/+", "a/#"));
    assert_true(ovl("+/b", "a/+"));
    assert_true(ovl("a/+", "a/"));
    /* for a topic name, overlap is matching */
    assert_true(ovl("a/+/c", "a/b/c"));
    assert_false(ovl("a/+/c", "a/b/d"));
}

static void overlap_never_reaches_dollar_topics_through_a_first_level_wildcard(void **state)
{
    assert_false(ovl("$SYS/#", "#"));
    assert_false(ovl("$SYS/#", "+/broker"));
    assert_false(ovl("#", "$SYS/broker"));
    assert_false(ovl("+/broker", "$SYS/+"));
    assert_true(ovl("$SYS/#", "$SYS/+"));
    assert_true(ovl("$SYS/broker", "$SYS/#"));
    assert_true(ovl("$SYS/#", "$SYS"));
    assert_false(ovl("$SYS/#", "$OTHER/#"));
    /* only the first level is special */
    assert_true(ovl("a/$x", "a/+"));
    assert_true(ovl("a/#", "a/$x/#"));
}

static int tmpl_calls;
static bool tmpl_is_alice(const struct wd_tmpl *t, const char *level, size_t len, const void *ctx)
{
    (void)t;
    (void)ctx;
    tmpl_calls++;
    return len == 5 && memcmp(level, "alice", 5) == 0;
}

static void placeholder_levels_overlap_wildcards_whatever_the_value(void **state)
{
    /* users/${username}/private, as levels */
    struct wd_level lv[3] = {{WD_LV_LITERAL, "users", 5, NULL},
                             {WD_LV_TMPL, "${username}", 11, NULL},
                             {WD_LV_LITERAL, "private", 7, NULL}};
#define OV(req) wd_topic_overlaps_levels(lv, 3, req, strlen(req), tmpl_is_alice, NULL)
    assert_true(OV("users/alice/private"));
    assert_false(OV("users/bob/private"));
    tmpl_calls = 0;
    assert_true(OV("users/+/private"));
    assert_true(OV("users/#"));
    assert_true(OV("#"));
    assert_int_equal(tmpl_calls, 0); /* fails closed: no rendering asked for */
    assert_false(OV("users/+/public"));
    assert_false(OV("+/+/private/x"));
#undef OV
    /* a first-level placeholder overlaps a first-level wildcard, never a literal '$' level */
    struct wd_level first[2] = {{WD_LV_TMPL, "${username}", 11, NULL}, {WD_LV_HASH, "#", 1, NULL}};
    assert_true(wd_topic_overlaps_levels(first, 2, "#", 1, tmpl_is_alice, NULL));
    assert_true(wd_topic_overlaps_levels(first, 2, "+/x", 3, tmpl_is_alice, NULL));
    assert_false(wd_topic_overlaps_levels(first, 2, "$alice/x", 8, tmpl_is_alice, NULL));
    assert_false(wd_topic_overlaps_levels(first, 2, "bob/x", 5, tmpl_is_alice, NULL));
}

/* Brute force: overlap(a, b) is "some topic name matches both", over a small alphabet
 * (a witness never needs more levels than the deeper filter has, plus one). */
static void overlap_equals_a_common_matching_topic_by_brute_force(void **state)
{
    static const char *flv[] = {"a", "b", "$s", "", "+", "#"};
    static const char *nlv[] = {"a", "b", "$s", "", "c"};
    enum { NF = 6, NN = 5, MAXD = 3, MAXF = 300, MAXN = 800, W = (MAXN + 63) / 64 };
    static char filters[MAXF][24], names[MAXN][24]; /* as long as t below */
    static uint64_t matched[MAXF][W]; /* names each filter matches */
    int nf = 0, nn = 0;
    for (int d = 1; d <= MAXD + 1; d++) {
        for (int pass = 0; pass < 2; pass++) {
            int base = pass ? NN : NF, total = 1;
            if (!pass && d > MAXD)
                continue;
            for (int i = 0; i < d; i++)
                total *= base;
            for (int k = 0; k < total; k++) {
                char t[24] = "";
                for (int i = 0, x = k; i < d; i++, x /= base) {
                    if (i)
                        strcat(t, "/");
                    strcat(t, pass ? nlv[x % base] : flv[x % base]);
                }
                if (pass)
                    snprintf(names[nn++], sizeof names[0], "%s", t);
                else if (fv(t))
                    snprintf(filters[nf++], sizeof filters[0], "%s", t);
            }
        }
    }
    assert_true(nf > 100 && nf <= MAXF && nn > 500 && nn <= MAXN);
    memset(matched, 0, sizeof matched);
    for (int i = 0; i < nf; i++)
        for (int k = 0; k < nn; k++)
            if (cov(filters[i], names[k]))
                matched[i][k / 64] |= 1ULL << (k % 64);
    for (int i = 0; i < nf; i++) {
        for (int j = 0; j < nf; j++) {
            bool common = false;
            for (int w = 0; w < W; w++)
                common = common || (matched[i][w] & matched[j][w]);
            if (ovl(filters[i], filters[j]) != common)
                fail_msg("overlap(%s, %s) should be %d", filters[i], filters[j], common);
            if (cov(filters[i], filters[j]))
                assert_true(common); /* covering implies overlapping */
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(filter_validity),
        cmocka_unit_test(too_many_levels_is_invalid),
        cmocka_unit_test(request_topics_follow_mqtt_without_a_level_limit),
        cmocka_unit_test(literal_rules_cover_only_themselves),
        cmocka_unit_test(plus_covers_one_level_but_not_hash),
        cmocka_unit_test(hash_covers_the_rest_including_the_parent),
        cmocka_unit_test(wildcards_at_first_level_do_not_cover_dollar_topics),
        cmocka_unit_test(split_levels),
        cmocka_unit_test(deny_overlap_catches_wider_subscriptions),
        cmocka_unit_test(overlap_never_reaches_dollar_topics_through_a_first_level_wildcard),
        cmocka_unit_test(placeholder_levels_overlap_wildcards_whatever_the_value),
        cmocka_unit_test(overlap_equals_a_common_matching_topic_by_brute_force),
    };
    return cmocka_run_group_tests_name("topic", tests, NULL, NULL);
}
