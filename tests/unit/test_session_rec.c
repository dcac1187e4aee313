/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for src/store/session_rec.c, the form of a session in Redis: a record survives
 * the round trip (rules, claims in order with duplicate names, UTF-8, every source), and
 * the decoder refuses whatever warden would not have written: wrong types, ranges, unknown
 * fields and versions, duplicate keys, NUL in strings, nesting bombs, too many rules or
 * claims, oversized text, a superuser without a credential step, "jwt" on the wrong source.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/wd.h"
#include "store/session_rec.h"

static void a_jwt_session_survives_the_round_trip(void **state)
{
    (void)state;
    struct wd_jwt_result jr;
    memset(&jr, 0, sizeof jr);
    jr.acl_format = WD_JWT_ACL_V2_LIST;
    struct wd_acl_entry rules[2] = {
        {.allow = true, .actions = 1, .topic = "a/${clientid}/#", .qos_mask = 3, .retain = 0},
        {.allow = false, .actions = 3, .topic = "b/+", .eq = true, .qos_mask = 7, .retain = -1},
    };
    jr.acl = rules;
    jr.n_acl = 2;
    assert_int_equal(wd_jwt_result_add_claim(&jr, "tenant", "t\xc3\xa9"), WD_OK);
    assert_int_equal(wd_jwt_result_add_claim(&jr, "a.b", "first"), WD_OK);
    assert_int_equal(wd_jwt_result_add_claim(&jr, "a.b", "second"), WD_OK);
    assert_int_equal(wd_jwt_result_add_claim(&jr, "empty", ""), WD_OK);
    struct wd_session_rec r = {.username = "u \"x\"\n",
                               .peerhost = "::1",
                               .peerport = 65535,
                               .source = WD_SESSION_JWT,
                               .superuser = true,
                               .end_ms = 1712345678901,
                               .exp = 1712345999,
                               .has_jwt = true,
                               .jwt = jr};
    struct wd_buf b = {0};
    assert_int_equal(wd_session_rec_encode(&r, &b), WD_OK);
    assert_null(strstr(b.s, "password"));
    struct wd_session_rec d;
    char err[160];
    assert_int_equal(wd_session_rec_decode(b.s, b.len, &d, err, sizeof err), WD_OK);
    assert_string_equal(d.username, "u \"x\"\n");
    assert_string_equal(d.peerhost, "::1");
    assert_int_equal(d.peerport, 65535);
    assert_int_equal(d.source, WD_SESSION_JWT);
    assert_true(d.superuser);
    assert_true(d.end_ms == 1712345678901);
    assert_true(d.exp == 1712345999);
    assert_true(d.has_jwt);
    assert_int_equal(d.jwt.acl_format, WD_JWT_ACL_V2_LIST);
    assert_int_equal(d.jwt.n_acl, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(d.jwt.acl[i].allow, rules[i].allow);
        assert_int_equal(d.jwt.acl[i].actions, rules[i].actions);
        assert_int_equal(d.jwt.acl[i].eq, rules[i].eq);
        assert_int_equal(d.jwt.acl[i].qos_mask, rules[i].qos_mask);
        assert_int_equal(d.jwt.acl[i].retain, rules[i].retain);
        assert_string_equal(d.jwt.acl[i].topic, rules[i].topic);
    }
    assert_string_equal(wd_jwt_result_claim(&d.jwt, "tenant"), "t\xc3\xa9");
    assert_string_equal(wd_jwt_result_claim(&d.jwt, "a.b"), "first"); /* first wins, as before */
    assert_int_equal(wd_jwt_result_nclaims(&d.jwt), 4);
    wd_session_rec_cleanup(&d);
    wd_session_rec_cleanup(&d); /* idempotent */
    wd_buf_free(&b);
    jr.acl = NULL;
    jr.n_acl = 0;
    wd_jwt_result_cleanup(&jr);
}

static void every_source_survives_the_round_trip(void **state)
{
    (void)state;
    for (int src = WD_SESSION_STATIC; src <= WD_SESSION_OTHER; src++) {
        struct wd_session_rec r = {.username = "",
                                   .peerhost = "10.0.0.7",
                                   .source = (enum wd_session_source)src,
                                   .superuser = src != WD_SESSION_OTHER,
                                   .end_ms = 1,
                                   .has_jwt = src == WD_SESSION_JWT};
        struct wd_buf b = {0};
        assert_int_equal(wd_session_rec_encode(&r, &b), WD_OK);
        struct wd_session_rec d;
        assert_int_equal(wd_session_rec_decode(b.s, b.len, &d, NULL, 0), WD_OK);
        assert_int_equal(d.source, src);
        assert_int_equal(d.superuser, r.superuser);
        assert_int_equal(d.has_jwt, r.has_jwt);
        assert_int_equal(d.peerport, 0);
        wd_session_rec_cleanup(&d);
        wd_buf_free(&b);
    }
}

static void encoding_refuses_what_it_cannot_write_whole(void **state)
{
    (void)state;
    struct wd_session_rec r = {
        .username = "bad \xff utf8", .peerhost = "h", .source = WD_SESSION_STATIC, .end_ms = 1};
    struct wd_buf b = {0};
    assert_int_equal(wd_session_rec_encode(&r, &b), WD_EINVAL);
    assert_int_equal(b.len, 0);
    /* a record over WD_SESSION_REC_MAX is not shared */
    struct wd_jwt_result jr;
    memset(&jr, 0, sizeof jr);
    jr.acl_format = WD_JWT_ACL_V1_OBJECT;
    jr.n_acl = 8;
    jr.acl = calloc(jr.n_acl, sizeof *jr.acl);
    char *topic = malloc(40000);
    memset(topic, 't', 39999);
    topic[39999] = '\0';
    for (size_t i = 0; i < jr.n_acl; i++)
        jr.acl[i] = (struct wd_acl_entry){
            .allow = true, .actions = 1, .topic = topic, .qos_mask = 7, .retain = -1};
    r = (struct wd_session_rec){.username = "u",
                                .peerhost = "h",
                                .source = WD_SESSION_JWT,
                                .end_ms = 1,
                                .has_jwt = true,
                                .jwt = jr};
    assert_int_equal(wd_session_rec_encode(&r, &b), WD_ETOOBIG);
    free(topic);
    free(jr.acl);
    wd_buf_free(&b);
}

#define BASE "\"v\":1,\"user\":\"u\",\"host\":\"h\",\"port\":1,\"end\":5,\"exp\":0"
#define JWT_OK "\"jwt\":{\"acl\":\"v1\",\"rules\":[[1,1,0,7,-1,\"t\"]],\"claims\":[[\"n\",\"v\"]]}"

static void refused(const char *text)
{
    struct wd_session_rec d;
    char err[160] = "";
    int rc = wd_session_rec_decode(text, strlen(text), &d, err, sizeof err);
    if (rc == WD_OK)
        fail_msg("accepted: %s", text);
    assert_true(rc == WD_EDECODE || rc == WD_ETOOBIG);
    assert_true(err[0] != '\0');
    assert_null(d.username);
    assert_false(d.has_jwt);
}

static void accepted(const char *text)
{
    struct wd_session_rec d;
    char err[160] = "";
    if (wd_session_rec_decode(text, strlen(text), &d, err, sizeof err) != WD_OK)
        fail_msg("refused (%s): %s", err, text);
    wd_session_rec_cleanup(&d);
}

static void hostile_records_are_refused_whole(void **state)
{
    (void)state;
    accepted("{" BASE ",\"src\":\"static\",\"su\":true}");
    accepted("{" BASE ",\"src\":\"jwt\",\"su\":false," JWT_OK "}");
    static const char *const bad[] = {
        "",
        "[]",
        "null",
        "{}",
        "{" BASE ",\"src\":\"static\"}",                        /* su missing */
        "{" BASE ",\"src\":\"root\",\"su\":true}",              /* unknown source */
        "{" BASE ",\"src\":\"other\",\"su\":true}",             /* superuser, no credential */
        "{" BASE ",\"src\":\"static\",\"su\":1}",               /* su not a boolean */
        "{" BASE ",\"src\":\"static\",\"su\":true,\"x\":1}",    /* unknown field */
        "{" BASE ",\"src\":\"static\",\"su\":true,\"v\":1}",    /* duplicate key */
        "{" BASE ",\"src\":\"static\",\"su\":true," JWT_OK "}", /* jwt on another source */
        "{" BASE ",\"src\":\"jwt\",\"su\":true}",               /* jwt source without jwt */
        "{\"v\":2,\"user\":\"u\",\"host\":\"h\",\"port\":1,\"end\":5,\"exp\":0,\"src\":\"static\","
        "\"su\":false}",
        "{\"v\":1,\"user\":\"u\",\"host\":\"h\",\"port\":65536,\"end\":5,\"exp\":0,\"src\":"
        "\"static\",\"su\":false}",
        "{\"v\":1,\"user\":\"u\",\"host\":\"h\",\"port\":-1,\"end\":5,\"exp\":0,\"src\":"
        "\"static\",\"su\":false}",
        "{\"v\":1,\"user\":\"u\",\"host\":\"h\",\"port\":1,\"end\":0,\"exp\":0,\"src\":"
        "\"static\",\"su\":false}",
        "{\"v\":1,\"user\":\"u\",\"host\":\"h\",\"port\":1,\"end\":5,\"exp\":-1,\"src\":"
        "\"static\",\"su\":false}",
        "{\"v\":1,\"user\":\"u\",\"host\":\"h\",\"port\":1.5,\"end\":5,\"exp\":0,\"src\":"
        "\"static\",\"su\":false}",
        "{\"v\":1,\"user\":\"u\\u0000root\",\"host\":\"h\",\"port\":1,\"end\":5,\"exp\":0,"
        "\"src\":\"static\",\"su\":false}", /* NUL inside the username */
        "{\"v\":1,\"user\":7,\"host\":\"h\",\"port\":1,\"end\":5,\"exp\":0,\"src\":\"static\","
        "\"su\":false}",
        "{" BASE ",\"src\":\"jwt\",\"su\":false,\"jwt\":{\"acl\":\"v3\",\"rules\":[],"
        "\"claims\":[]}}",
        "{" BASE ",\"src\":\"jwt\",\"su\":false,\"jwt\":{\"acl\":\"none\",\"rules\":[[1,1,0,7,-1,"
        "\"t\"]],\"claims\":[]}}", /* rules without an ACL */
        "{" BASE ",\"src\":\"jwt\",\"su\":false,\"jwt\":{\"acl\":\"v1\",\"rules\":[[1,4,0,7,-1,"
        "\"t\"]],\"claims\":[]}}", /* actions out of range */
        "{" BASE ",\"src\":\"jwt\",\"su\":false,\"jwt\":{\"acl\":\"v1\",\"rules\":[[1,1,0,0,-1,"
        "\"t\"]],\"claims\":[]}}", /* no QoS */
        "{" BASE ",\"src\":\"jwt\",\"su\":false,\"jwt\":{\"acl\":\"v1\",\"rules\":[[1,1,0,7,2,"
        "\"t\"]],\"claims\":[]}}", /* retain 2 */
        "{" BASE ",\"src\":\"jwt\",\"su\":false,\"jwt\":{\"acl\":\"v1\",\"rules\":[[1,1,0,7,-1,"
        "\"\"]],\"claims\":[]}}", /* empty topic */
        "{" BASE ",\"src\":\"jwt\",\"su\":false,\"jwt\":{\"acl\":\"v1\",\"rules\":[[1,1,0,7,-1]],"
        "\"claims\":[]}}", /* five fields */
        "{" BASE ",\"src\":\"jwt\",\"su\":false,\"jwt\":{\"acl\":\"v1\",\"rules\":[],"
        "\"claims\":[[\"n\"]]}}",
        "{" BASE ",\"src\":\"jwt\",\"su\":false,\"jwt\":{\"acl\":\"v1\",\"rules\":[],"
        "\"claims\":[[\"\",\"v\"]]}}", /* empty claim name */
        "{" BASE ",\"src\":\"jwt\",\"su\":false,\"jwt\":{\"acl\":\"v1\",\"rules\":[],"
        "\"claims\":{\"n\":\"v\"}}}",
        "{" BASE ",\"src\":\"jwt\",\"su\":false,\"jwt\":{\"acl\":\"v1\",\"rules\":[],"
        "\"claims\":[],\"token\":\"x\"}}", /* unknown field inside jwt */
        "{" BASE ",\"src\":\"static\",\"su\":true} trailing",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refused(bad[i]);
}

static void bombs_and_floods_are_refused_before_use(void **state)
{
    (void)state;
    struct wd_buf b = {0};
    /* nesting: refused before jansson parses it */
    for (int i = 0; i < 100000; i++)
        wd_buf_putc(&b, '[');
    refused(b.s);
    wd_buf_free(&b);
    /* brackets inside strings do not count */
    accepted("{\"v\":1,\"user\":\"[[[[[[[[{{{{{{\",\"host\":\"h\",\"port\":1,\"end\":5,\"exp\":0,"
             "\"src\":\"static\",\"su\":false}");
    /* too many rules */
    wd_buf_puts(&b, "{" BASE ",\"src\":\"jwt\",\"su\":false,\"jwt\":{\"acl\":\"v1\",\"rules\":[");
    for (int i = 0; i <= WD_JWT_ACL_RULES_MAX; i++)
        wd_buf_printf(&b, "%s[1,1,0,7,-1,\"t\"]", i ? "," : "");
    wd_buf_puts(&b, "],\"claims\":[]}}");
    refused(b.s);
    wd_buf_free(&b);
    /* too many claims */
    wd_buf_puts(&b, "{" BASE ",\"src\":\"jwt\",\"su\":false,\"jwt\":{\"acl\":\"none\","
                    "\"rules\":[],\"claims\":[");
    for (int i = 0; i <= WD_JWT_CLAIMS_MAX; i++)
        wd_buf_printf(&b, "%s[\"c%d\",\"v\"]", i ? "," : "", i);
    wd_buf_puts(&b, "]}}");
    refused(b.s);
    wd_buf_free(&b);
    /* oversized, whatever it holds */
    wd_buf_puts(&b, "{" BASE ",\"src\":\"static\",\"su\":true}");
    while (b.len <= WD_SESSION_REC_MAX)
        wd_buf_putc(&b, ' ');
    struct wd_session_rec d;
    assert_int_equal(wd_session_rec_decode(b.s, b.len, &d, NULL, 0), WD_ETOOBIG);
    wd_buf_free(&b);
    /* a host name longer than any address */
    wd_buf_puts(&b, "{\"v\":1,\"user\":\"u\",\"host\":\"");
    for (int i = 0; i < 256; i++)
        wd_buf_putc(&b, 'h');
    wd_buf_puts(&b, "\",\"port\":1,\"end\":5,\"exp\":0,\"src\":\"static\",\"su\":false}");
    refused(b.s);
    wd_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_jwt_session_survives_the_round_trip),
        cmocka_unit_test(every_source_survives_the_round_trip),
        cmocka_unit_test(encoding_refuses_what_it_cannot_write_whole),
        cmocka_unit_test(hostile_records_are_refused_whole),
        cmocka_unit_test(bombs_and_floods_are_refused_before_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
