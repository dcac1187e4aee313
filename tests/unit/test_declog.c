/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/server/declog.c: one parseable JSON line per decision, whatever the
 * device sent; a username that is a token is never written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "server/declog.h"

static const struct timespec T = {.tv_sec = 1700000000, .tv_nsec = 123456789};

static json_t *parse_line(const char *s)
{
    size_t n = strlen(s);
    assert_true(n > 0 && s[n - 1] == '\n');
    assert_null(memchr(s, '\n', n - 1)); /* one line */
    json_error_t e;
    json_t *j = json_loadb(s, n - 1, 0, &e);
    if (!j)
        fail_msg("not JSON (%s): %s", e.text, s);
    return j;
}

static void hostile_strings_round_trip_through_json(void **state)
{
    const char *cid = "dev\"ice\\1\n\r\t\x01\x1f\x7f end";
    const char *user = "us\"er\\\x02";
    const char *topic = "a/\"b\"/\\c\n/\xe2\x80\xa8/caf\xc3\xa9";
    struct wd_client c = {
        .clientid = cid, .username = user, .peerhost = "10.0.0.7", .peerport = 51234};
    struct wd_verdict v = {.decision = WD_DECISION_DENY,
                           .reason = "no rule matched: authz default",
                           .line = 12,
                           .generation = 3,
                           .step = "rules"};
    struct wd_declog_event ev = {.hook = "client.authorize",
                                 .client = &c,
                                 .action = "publish",
                                 .topic = topic,
                                 .topic_len = strlen(topic),
                                 .verdict = &v};
    struct wd_buf b = {0};
    wd_declog_format(&b, &ev, "/etc/warden/p \"x\".policy", &T);
    json_t *j = parse_line(b.s);
    assert_string_equal(json_string_value(json_object_get(j, "clientid")), cid);
    assert_string_equal(json_string_value(json_object_get(j, "username")), user);
    assert_string_equal(json_string_value(json_object_get(j, "topic")), topic);
    assert_string_equal(json_string_value(json_object_get(j, "peer")), "10.0.0.7:51234");
    assert_string_equal(json_string_value(json_object_get(j, "hook")), "client.authorize");
    assert_string_equal(json_string_value(json_object_get(j, "action")), "publish");
    assert_string_equal(json_string_value(json_object_get(j, "decision")), "deny");
    assert_string_equal(json_string_value(json_object_get(j, "reason")),
                        "no rule matched: authz default");
    assert_string_equal(json_string_value(json_object_get(j, "rule")),
                        "/etc/warden/p \"x\".policy:12");
    assert_int_equal(json_integer_value(json_object_get(j, "generation")), 3);
    assert_string_equal(json_string_value(json_object_get(j, "step")), "rules");
    assert_string_equal(json_string_value(json_object_get(j, "time")), "2023-11-14T22:13:20.123Z");
    assert_null(json_object_get(j, "truncated"));
    json_decref(j);
    wd_buf_free(&b);
}

static void token_username_is_left_out_and_ipv6_peer_is_bracketed(void **state)
{
    const char *tok = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    struct wd_client c = {.clientid = "c1", .username = tok, .peerhost = "::1", .peerport = 7};
    struct wd_verdict v = {.decision = WD_DECISION_ALLOW,
                           .reason = "jwt: token verified",
                           .line = 0,
                           .generation = 1,
                           .step = "jwt"};
    struct wd_declog_event ev = {
        .hook = "client.authenticate", .client = &c, .username_is_token = true, .verdict = &v};
    struct wd_buf b = {0};
    wd_declog_format(&b, &ev, NULL, &T);
    assert_null(strstr(b.s, "eyJ"));
    json_t *j = parse_line(b.s);
    assert_null(json_object_get(j, "username"));
    assert_null(json_object_get(j, "action"));
    assert_null(json_object_get(j, "topic"));
    assert_true(json_is_null(json_object_get(j, "rule"))); /* line 0: the implicit default */
    assert_string_equal(json_string_value(json_object_get(j, "peer")), "[::1]:7");
    json_decref(j);
    wd_buf_free(&b);
}

static void huge_client_id_is_cut_and_marked(void **state)
{
    size_t n = 70000;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    struct wd_client c = {.clientid = big, .username = "", .peerhost = "", .peerport = 0};
    struct wd_verdict v = {.decision = WD_DECISION_DENY, .reason = "r", .step = "default"};
    struct wd_declog_event ev = {.hook = "client.authenticate", .client = &c, .verdict = &v};
    struct wd_buf b = {0};
    wd_declog_format(&b, &ev, NULL, &T);
    assert_true(b.len < 4096);
    json_t *j = parse_line(b.s);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
    wd_buf_free(&b);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hostile_strings_round_trip_through_json),
        cmocka_unit_test(token_username_is_left_out_and_ipv6_peer_is_bracketed),
        cmocka_unit_test(huge_client_id_is_cut_and_marked),
    };
    return cmocka_run_group_tests_name("declog", tests, NULL, NULL);
}
