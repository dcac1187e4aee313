/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/policy: diagnostics, semantics, and trie == linear agreement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/policy.h"

static struct wd_policy *compile_ok(const char *src)
{
    struct wd_diags d;
    wd_diags_init(&d, "t.policy", src, strlen(src));
    struct wd_policy *p = NULL;
    int rc = wd_policy_compile(src, strlen(src), &d, &p);
    if (rc != WD_OK) {
        char *r = wd_diags_render(&d);
        fprintf(stderr, "%s", r);
        free(r);
    }
    assert_int_equal(rc, WD_OK);
    wd_diags_cleanup(&d);
    return p;
}

/* Compiles src expecting failure or warnings; returns the rendered diagnostics. */
static char *diags_of(const char *src, int want_rc)
{
    struct wd_diags d;
    wd_diags_init(&d, "t.policy", src, strlen(src));
    struct wd_policy *p = NULL;
    assert_int_equal(wd_policy_compile(src, strlen(src), &d, &p), want_rc);
    wd_policy_release(p);
    char *r = wd_diags_render(&d);
    wd_diags_cleanup(&d);
    return r;
}

static struct wd_client client(const char *user, const char *cid)
{
    struct wd_client c = {.node = "", .clientid = cid, .username = user, .peerhost = "10.1.2.3",
                          .sockport = 1883, .protocol = "mqtt", .mountpoint = "", .cn = "",
                          .dn = ""};
    return c;
}

/* Decides with both evaluators and checks they agree. */
static enum wd_decision az(const struct wd_policy *p, const struct wd_client *c, enum wd_action a,
                           const char *topic, unsigned *line)
{
    struct wd_authz_req r = {.client = *c, .action = a, .topic = topic,
                             .topic_len = strlen(topic), .qos = -1, .retain = -1};
    struct wd_policy_result t, l;
    wd_policy_authorize(p, &r, &t);
    wd_policy_authorize_linear(p, &r, &l);
    assert_int_equal(t.decision, l.decision);
    assert_int_equal(t.line, l.line);
    if (line)
        *line = t.line;
    return t.decision;
}

#define PUB WD_ACTION_PUBLISH
#define SUB WD_ACTION_SUBSCRIBE

static void first_match_wins_and_default_applies(void **state)
{
    struct wd_policy *p = compile_ok("deny  publish \"a/secret\"\n"
                                     "allow publish \"a/#\"\n"
                                     "authz default deny\n");
    struct wd_client c = client("u", "c");
    unsigned line;
    assert_int_equal(az(p, &c, PUB, "a/secret", &line), WD_DECISION_DENY);
    assert_int_equal(line, 1);
    assert_int_equal(az(p, &c, PUB, "a/other", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 2);
    assert_int_equal(az(p, &c, PUB, "b", &line), WD_DECISION_DENY);
    assert_int_equal(line, 3);
    wd_policy_release(p);
}

static void subscription_must_be_covered_entirely(void **state)
{
    struct wd_policy *p = compile_ok("allow subscribe \"a/+\"\nallow subscribe \"t/#\"\n");
    struct wd_client c = client("u", "c");
    assert_int_equal(az(p, &c, SUB, "a/b", NULL), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, SUB, "a/+", NULL), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, SUB, "a/#", NULL), WD_DECISION_DENY);
    assert_int_equal(az(p, &c, SUB, "t/#", NULL), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, SUB, "t/+/x", NULL), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, SUB, "t", NULL), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, SUB, "#", NULL), WD_DECISION_DENY);
    wd_policy_release(p);
}

static void hash_does_not_reach_dollar_topics(void **state)
{
    struct wd_policy *p = compile_ok("allow all \"#\"\nallow subscribe \"${username}/#\"\n");
    struct wd_client c = client("$SYS", "c");
    assert_int_equal(az(p, &c, SUB, "$SYS/broker", NULL), WD_DECISION_DENY);
    assert_int_equal(az(p, &c, PUB, "$SYS", NULL), WD_DECISION_DENY);
    assert_int_equal(az(p, &c, PUB, "x/$SYS", NULL), WD_DECISION_ALLOW);
    wd_policy_release(p);
}

static void placeholder_values_never_widen_a_rule(void **state)
{
    struct wd_policy *p = compile_ok("allow all \"devices/${username}/#\"\n"
                                     "allow publish \"c/${clientid}-x/in\"\n");
    struct wd_client hash = client("#", "c");
    assert_int_equal(az(p, &hash, SUB, "devices/#", NULL), WD_DECISION_DENY);
    assert_int_equal(az(p, &hash, PUB, "devices/x/y", NULL), WD_DECISION_DENY);
    struct wd_client plus = client("+", "c");
    assert_int_equal(az(p, &plus, SUB, "devices/+/y", NULL), WD_DECISION_DENY);
    struct wd_client slash = client("a/b", "c");
    assert_int_equal(az(p, &slash, PUB, "devices/a/b/z", NULL), WD_DECISION_DENY);
    struct wd_client anon = client("", "c");
    assert_int_equal(az(p, &anon, PUB, "devices//x", NULL), WD_DECISION_DENY);
    assert_int_equal(az(p, &anon, PUB, "devices/undefined/x", NULL), WD_DECISION_DENY);
    struct wd_client ok = client("alice", "dev1");
    assert_int_equal(az(p, &ok, PUB, "devices/alice/x", NULL), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &ok, SUB, "devices/alice/#", NULL), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &ok, PUB, "devices/bob/x", NULL), WD_DECISION_DENY);
    assert_int_equal(az(p, &ok, PUB, "c/dev1-x/in", NULL), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &ok, PUB, "c/dev2-x/in", NULL), WD_DECISION_DENY);
    assert_int_equal(az(p, &ok, PUB, "c/dev1-/in", NULL), WD_DECISION_DENY);
    wd_policy_release(p);
}

static void eq_matches_the_literal_string_only(void **state)
{
    struct wd_policy *p = compile_ok("deny subscribe eq \"#\"\nallow subscribe \"#\"\n"
                                     "allow publish eq \"t/${username}\"\n");
    struct wd_client c = client("u", "c");
    assert_int_equal(az(p, &c, SUB, "#", NULL), WD_DECISION_DENY);
    assert_int_equal(az(p, &c, SUB, "a/#", NULL), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, PUB, "t/${username}", NULL), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, PUB, "t/u", NULL), WD_DECISION_DENY);
    wd_policy_release(p);
}

static void conditions_regex_anchored_cidr_port_lists(void **state)
{
    struct wd_policy *p = compile_ok(
        "allow publish \"r\" when username ~ \"dev-[0-9]+\"\n"
        "allow publish \"p\" when peer in [\"10.0.0.0/8\", \"fd00::/8\"] and port = 1883\n"
        "allow publish \"l\" when clientid in [\"a\", \"b\"] or not protocol = \"mqtt\"\n"
        "allow publish \"s\" when superuser\n"
        "user \"root\" \"plain:x\" superuser\n"
        "authn users\n");
    struct wd_client c = client("dev-12", "a");
    assert_int_equal(az(p, &c, PUB, "r", NULL), WD_DECISION_ALLOW);
    struct wd_client partial = client("xdev-12y", "z");
    assert_int_equal(az(p, &partial, PUB, "r", NULL), WD_DECISION_DENY);
    assert_int_equal(az(p, &c, PUB, "p", NULL), WD_DECISION_ALLOW);
    c.peerhost = "::ffff:10.9.9.9";
    assert_int_equal(az(p, &c, PUB, "p", NULL), WD_DECISION_ALLOW);
    c.peerhost = "fd00::1";
    assert_int_equal(az(p, &c, PUB, "p", NULL), WD_DECISION_ALLOW);
    c.peerhost = "11.0.0.1";
    assert_int_equal(az(p, &c, PUB, "p", NULL), WD_DECISION_DENY);
    c.peerhost = "10.0.0.1";
    c.sockport = 8883;
    assert_int_equal(az(p, &c, PUB, "p", NULL), WD_DECISION_DENY);
    assert_int_equal(az(p, &c, PUB, "l", NULL), WD_DECISION_ALLOW);
    struct wd_client z = client("u", "z");
    assert_int_equal(az(p, &z, PUB, "l", NULL), WD_DECISION_DENY);
    z.protocol = "mqtt-sn";
    assert_int_equal(az(p, &z, PUB, "l", NULL), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &z, PUB, "s", NULL), WD_DECISION_DENY);
    struct wd_client root = client("root", "r");
    assert_int_equal(az(p, &root, PUB, "s", NULL), WD_DECISION_ALLOW);
    wd_policy_release(p);
}

static void qos_and_retain_unknown_fail_closed(void **state)
{
    struct wd_policy *p = compile_ok("deny publish \"d\" retain true\n"
                                     "allow publish \"#\" qos [0, 1]\n");
    struct wd_client c = client("u", "c");
    /* EMQX sends neither: the deny matches, the allow does not */
    assert_int_equal(az(p, &c, PUB, "d", NULL), WD_DECISION_DENY);
    assert_int_equal(az(p, &c, PUB, "x", NULL), WD_DECISION_DENY);
    struct wd_authz_req r = {.client = c, .action = PUB, .topic = "x", .topic_len = 1, .qos = 1,
                             .retain = 0};
    struct wd_policy_result res;
    wd_policy_authorize(p, &r, &res);
    assert_int_equal(res.decision, WD_DECISION_ALLOW);
    r.qos = 2;
    wd_policy_authorize(p, &r, &res);
    assert_int_equal(res.decision, WD_DECISION_DENY);
    wd_policy_release(p);
}

static void every_syntax_error_reported_with_position_and_caret(void **state)
{
    char *r = diags_of("allow publsh \"a\"\n"
                       "deny subscribe \"a/#/b\"\n"
                       "allow publish \"x\" when usrname = \"u\"\n"
                       "frobnicate\n"
                       "allow publish \"y\" when username ~ \"(\"\n",
                       WD_ESYNTAX);
    assert_non_null(strstr(r, "t.policy:1:7: error: expected publish, subscribe or all, got 'publsh'\n"
                              "    1 | allow publsh \"a\"\n"
                              "      |       ^\n"));
    assert_non_null(strstr(r, "t.policy:2:16: error: invalid topic filter \"a/#/b\""));
    assert_non_null(strstr(r, "t.policy:3:24: error: unknown field 'usrname'"));
    assert_non_null(strstr(r, "t.policy:4:1: error: unknown statement 'frobnicate'"));
    assert_non_null(strstr(r, "t.policy:5:35: error: bad regular expression at offset 1"));
    free(r);
}

static void meaning_errors(void **state)
{
    char *r = diags_of("authn default deny\nauthn users\n"
                       "allow subscribe \"a\" retain true\n"
                       "allow publish \"a\" when peer = \"1.2.3.4\"\n"
                       "allow publish \"a\" when peer in [\"1.2.3.4/33\"]\n"
                       "allow publish \"a\" when port = \"80\"\n"
                       "allow publish \"a/${nope}\"\n"
                       "user \"a\" \"plain:x\"\nuser \"a\" \"plain:y\"\n"
                       "authz default deny\nauthz default allow\n",
                       WD_ESYNTAX);
    assert_non_null(strstr(r, "t.policy:2:1: error: step after 'authn default' (line 1)"));
    assert_non_null(strstr(r, "t.policy:3:"));
    assert_non_null(strstr(r, "'retain' applies to publish rules only"));
    assert_non_null(strstr(r, "t.policy:4:24: error: 'peer' takes a list"));
    assert_non_null(strstr(r, "t.policy:5:33: error: not an IPv4 or IPv6 address or CIDR"));
    assert_non_null(strstr(r, "t.policy:6:31: error: a port is a number"));
    assert_non_null(strstr(r, "t.policy:7:15: error: unknown placeholder '${nope}'"));
    assert_non_null(strstr(r, "t.policy:9: error: user \"a\" already defined at line 8"));
    assert_non_null(strstr(r, "t.policy:11:1: error: 'authz default' already given at line 10"));
    free(r);
}

static void shadowed_and_duplicate_rules_warn(void **state)
{
    char *r = diags_of("allow all \"a/#\"\n"
                       "deny publish \"a/b\"\n"
                       "allow all \"a/#\"\n"
                       "deny publish \"a/${username}\"\n"
                       "allow publish \"z\" when username = \"q\"\n"
                       "allow publish \"z\" when username = \"q\"\n"
                       "deny subscribe \"b/+\"\nallow subscribe \"b/#\"\n",
                       WD_OK);
    assert_non_null(strstr(r, "t.policy:2:1: warning: rule can never match: every request it "
                              "covers is decided first by the rule at line 1"));
    assert_non_null(strstr(r, "t.policy:3:1: warning: duplicate of the rule at line 1"));
    assert_non_null(strstr(r, "t.policy:4:1: warning: rule can never match"));
    assert_non_null(strstr(r, "t.policy:6:1: warning: duplicate of the rule at line 5"));
    assert_null(strstr(r, "t.policy:8:"));
    free(r);
}

static void lexical_errors_and_hostile_input_never_crash(void **state)
{
    char *r = diags_of("allow publish \"unterminated\nallow publish \"\\q\"\n"
                       "allow publish \"\\xff\"\nallow publish 12abc\n@\n",
                       WD_ESYNTAX);
    assert_non_null(strstr(r, "t.policy:1:15: error: unterminated string"));
    assert_non_null(strstr(r, "unknown escape '\\q'"));
    assert_non_null(strstr(r, "string is not valid UTF-8"));
    assert_non_null(strstr(r, "malformed number '12abc'"));
    assert_non_null(strstr(r, "unexpected character '@'"));
    free(r);
    /* random bytes and deep nesting: diagnostics, never a crash */
    char buf[4096];
    unsigned seed = 7;
    for (int round = 0; round < 3000; round++) {
        size_t n = seed % (sizeof buf - 1);
        static const char alphabet[] = "allow deny publish \"#+/${}[](),=~ when and or not "
                                       "username in \n\t\\x0a19";
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = (seed >> 24) % 5 ? alphabet[(seed >> 16) % (sizeof alphabet - 1)]
                                      : (char)(seed >> 16);
        }
        buf[n] = '\0';
        struct wd_diags d;
        wd_diags_init(&d, "f", buf, n);
        struct wd_policy *p = NULL;
        wd_policy_compile(buf, n, &d, &p);
        char *s = wd_diags_render(&d);
        free(s);
        wd_diags_cleanup(&d);
        wd_policy_release(p);
    }
    char deep[600];
    strcpy(deep, "allow publish \"a\" when ");
    for (int i = 0; i < 100; i++)
        strcat(deep, "(");
    r = diags_of(deep, WD_ESYNTAX);
    assert_non_null(strstr(r, "nested deeper than 64"));
    free(r);
}

static void trie_agrees_with_linear_scan_on_random_requests(void **state)
{
    struct wd_policy *p = compile_ok("deny publish \"a/b/c\"\n"
                                     "allow subscribe \"a/+/c\"\n"
                                     "allow publish \"a/#\" when username = \"u1\"\n"
                                     "deny all \"+/b/#\"\n"
                                     "allow all \"${username}/+/x\"\n"
                                     "allow subscribe eq \"a/#\"\n"
                                     "allow all \"b/${clientid}\"\n"
                                     "deny all \"#\" when clientid = \"c2\"\n"
                                     "allow publish \"$SYS/+\"\n"
                                     "allow all \"+\"\n"
                                     "authz default nomatch\n");
    const char *levels[] = {"a", "b", "c", "x", "u1", "c1", "+", "#", "$SYS", ""};
    const char *users[] = {"u1", "u2", "a", ""};
    const char *cids[] = {"c1", "c2", "b"};
    unsigned seed = 1;
    for (int i = 0; i < 20000; i++) {
        char topic[64] = "";
        seed = seed * 1103515245u + 12345u;
        int depth = 1 + (int)((seed >> 16) % 4);
        for (int d = 0; d < depth; d++) {
            seed = seed * 1103515245u + 12345u;
            if (d)
                strcat(topic, "/");
            strcat(topic, levels[(seed >> 16) % 10]);
        }
        struct wd_client c = client(users[(seed >> 8) % 4], cids[(seed >> 4) % 3]);
        (void)az(p, &c, (seed & 1) ? PUB : SUB, topic, NULL);
    }
    wd_policy_release(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_match_wins_and_default_applies),
        cmocka_unit_test(subscription_must_be_covered_entirely),
        cmocka_unit_test(hash_does_not_reach_dollar_topics),
        cmocka_unit_test(placeholder_values_never_widen_a_rule),
        cmocka_unit_test(eq_matches_the_literal_string_only),
        cmocka_unit_test(conditions_regex_anchored_cidr_port_lists),
        cmocka_unit_test(qos_and_retain_unknown_fail_closed),
        cmocka_unit_test(every_syntax_error_reported_with_position_and_caret),
        cmocka_unit_test(meaning_errors),
        cmocka_unit_test(shadowed_and_duplicate_rules_warn),
        cmocka_unit_test(lexical_errors_and_hostile_input_never_crash),
        cmocka_unit_test(trie_agrees_with_linear_scan_on_random_requests),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
