/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for src/policy/import.c (`warden import-acl`): EMQX's default acl.conf and the
 * golden samples in tests/policy/import/ (run from the repository root; set
 * WD_UPDATE_GOLDEN=1 to rewrite the expected files), each who/action/topic form, each
 * error with its position, the warnings, what the translated rules decide, and random
 * input. Every translation that succeeds must compile without errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/import.h"
#include "policy/policy.h"

/* ---- helpers ---- */

static void compiles_cleanly(const char *policy)
{
    struct wd_diags d;
    wd_diags_init(&d, "out.policy", policy, strlen(policy));
    struct wd_policy *p = NULL;
    int rc = wd_policy_compile(policy, strlen(policy), &d, &p);
    if (rc != WD_OK) {
        char *r = wd_diags_render(&d);
        fprintf(stderr, "%s---\n%s", policy, r);
        free(r);
    }
    assert_int_equal(rc, WD_OK);
    wd_policy_release(p);
    wd_diags_cleanup(&d);
}

/* Translates src (as file `name`); checks the return code; returns the policy (NULL on
 * failure) and, if wanted, the rendered diagnostics. */
static char *import_as(const char *name, const char *src, size_t len, int want_rc, char **diags)
{
    struct wd_diags d;
    wd_diags_init(&d, name, src, len);
    char *out = (char *)1;
    int rc = wd_import_acl(src, len, &d, &out);
    char *r = wd_diags_render(&d);
    if (rc != want_rc)
        fprintf(stderr, "rc %d, want %d:\n%s", rc, want_rc, r);
    assert_int_equal(rc, want_rc);
    if (rc == WD_OK) {
        assert_non_null(out);
        compiles_cleanly(out);
    } else {
        assert_null(out);
    }
    if (diags)
        *diags = r;
    else
        free(r);
    wd_diags_cleanup(&d);
    return out;
}

static char *import_ok(const char *src, char **diags)
{
    return import_as("acl.conf", src, strlen(src), WD_OK, diags);
}

static char *diags_of(const char *src, int want_rc)
{
    char *r = NULL;
    free(import_as("acl.conf", src, strlen(src), want_rc, &r));
    return r;
}

static void contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("expected to find\n  %s\nin\n%s", needle, hay);
}

static void lacks(const char *hay, const char *needle)
{
    if (strstr(hay, needle))
        fail_msg("did not expect\n  %s\nin\n%s", needle, hay);
}

/* The first line of the translation that is not a comment or blank, without its
 * `  # acl.conf:N` marker; NULL if there is none before `authz default`. */
static char *first_rule_line(const char *policy)
{
    for (const char *p = policy; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n && p[0] != '#') {
            if (strncmp(p, "authz default", 13) == 0)
                return NULL;
            const char *mark = strstr(p, "  # acl.conf:");
            if (mark && mark < p + n)
                n = (size_t)(mark - p);
            char *r = malloc(n + 1);
            memcpy(r, p, n);
            r[n] = '\0';
            return r;
        }
        p += n + (nl ? 1 : 0);
    }
    return NULL;
}

/* Translates one acl.conf rule and checks its translation. */
static void translates(const char *acl, const char *want)
{
    char *out = import_ok(acl, NULL);
    char *rule = first_rule_line(out);
    if (!rule || strcmp(rule, want) != 0)
        fail_msg("%s\n  became: %s\n  wanted: %s", acl, rule ? rule : "(nothing)", want);
    free(rule);
    free(out);
}

/* The translation of acl, which must have no rule, only a left-out comment. */
static char *left_out(const char *acl, char **diags)
{
    char *out = import_ok(acl, diags);
    char *rule = first_rule_line(out);
    if (rule)
        fail_msg("%s\n  should be left out, became: %s", acl, rule);
    contains(out, "# left out, it never matches in EMQX");
    return out;
}

/* Appends s to the NUL-terminated text in b (capacity cap), truncating. */
static void append(char *b, size_t cap, const char *s)
{
    size_t n = strlen(b);
    snprintf(b + n, cap - n, "%s", s);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Compares text with the golden file (or rewrites it under WD_UPDATE_GOLDEN=1). */
static void matches_golden(const char *path, const char *text)
{
    if (getenv("WD_UPDATE_GOLDEN")) {
        spit(path, text);
        return;
    }
    char *want = slurp(path, NULL);
    if (!want)
        fail_msg("cannot read %s (run the tests from the repository root)", path);
    if (strcmp(want, text) != 0)
        fail_msg("%s differs; got:\n%s", path, text);
    free(want);
}

/* What the translated policy decides for one request. */
static enum wd_decision decide(const char *policy, const char *user, const char *cid,
                               const char *peer, enum wd_action a, const char *topic)
{
    struct wd_diags d;
    wd_diags_init(&d, "out.policy", policy, strlen(policy));
    struct wd_policy *p = NULL;
    assert_int_equal(wd_policy_compile(policy, strlen(policy), &d, &p), WD_OK);
    wd_diags_cleanup(&d);
    struct wd_authz_req r = {
        .client = {.node = "",
                   .clientid = cid,
                   .username = user,
                   .peerhost = peer,
                   .sockport = 1883,
                   .protocol = "mqtt",
                   .mountpoint = "",
                   .cn = "",
                   .dn = "",
                   .anonymous = user[0] == '\0'},
        .action = a,
        .topic = topic,
        .topic_len = strlen(topic),
        .qos = -1,
        .retain = -1,
    };
    struct wd_policy_result res;
    wd_policy_authorize(p, &r, &res);
    wd_policy_release(p);
    return res.decision;
}

#define PUB WD_ACTION_PUBLISH
#define SUB WD_ACTION_SUBSCRIBE
#define ALLOW WD_DECISION_ALLOW
#define DENY WD_DECISION_DENY

/* ---- EMQX's default acl.conf and the golden samples ---- */

static void emqx_default_acl_conf_translates_exactly(void **state)
{
    /* the spec's section 4.7, verbatim (v5.8.9) */
    const char *acl = "{allow, {username, {re, \"^dashboard$\"}}, subscribe, [\"$SYS/#\"]}.\n"
                      "{allow, {ipaddr, \"127.0.0.1\"}, all, [\"$SYS/#\", \"#\"]}.\n"
                      "{deny, all, subscribe, [\"$SYS/#\", {eq, \"#\"}, {eq, \"+/#\"}]}.\n"
                      "{allow, all}.\n";
    const char *want =
        "# Generated by `warden import-acl` from acl.conf.\n"
        "# The rules keep acl.conf's order: in EMQX and in warden the first rule that matches "
        "decides.\n"
        "# Each rule names the acl.conf line it comes from; the warnings printed by the import "
        "say\n"
        "# where warden deliberately behaves differently from EMQX.\n"
        "\n"
        "allow subscribe \"$SYS/#\" when username ~ \"(?s:.*)(?:^dashboard$)(?s:.*)\"  # "
        "acl.conf:1\n"
        "allow all [\"$SYS/#\", \"#\"] when peer in [\"127.0.0.1\"]  # acl.conf:2\n"
        "deny subscribe [\"$SYS/#\", eq \"#\", eq \"+/#\"]  # acl.conf:3\n"
        "allow all [\"#\", \"$SYS/#\"]  # acl.conf:4\n"
        "\n"
        "# acl.conf ends with {allow, all}, which decides every request that reaches it, so "
        "EMQX's\n"
        "# `authorization.no_match` never applies. The default repeats allow for the "
        "'$'-topics\n"
        "# that the last rule cannot name (warden's \"#\" skips them).\n"
        "# Review it: the default acl.conf itself recommends ending with {deny, all} and "
        "setting\n"
        "# no_match = deny in production.\n"
        "authz default allow\n";
    char *diags;
    char *out = import_ok(acl, &diags);
    assert_string_equal(out, want);
    /* one warning: the regex; the final {allow, all} is exact thanks to the default */
    contains(diags, "acl.conf:1:20: warning: EMQX regexes are unanchored");
    lacks(diags, "'all' topics");
    lacks(diags, "error");
    /* and it decides as EMQX does */
    assert_int_equal(decide(out, "dashboard", "c", "10.0.0.1", SUB, "$SYS/brokers"), ALLOW);
    assert_int_equal(decide(out, "bob", "c", "10.0.0.1", SUB, "$SYS/brokers"), DENY);
    assert_int_equal(decide(out, "bob", "c", "127.0.0.1", SUB, "$SYS/brokers"), ALLOW);
    assert_int_equal(decide(out, "bob", "c", "10.0.0.1", SUB, "#"), DENY);
    assert_int_equal(decide(out, "bob", "c", "10.0.0.1", SUB, "+/#"), DENY);
    assert_int_equal(decide(out, "bob", "c", "10.0.0.1", SUB, "a/#"), ALLOW);
    assert_int_equal(decide(out, "bob", "c", "10.0.0.1", PUB, "$events/x"), ALLOW);
    free(diags);
    free(out);
}

static void golden_samples_translate_to_their_expected_files(void **state)
{
    static const char *const samples[] = {"default", "devices", "errors", "overlap"};
    for (size_t i = 0; i < sizeof samples / sizeof *samples; i++) {
        char in[256], pol[256], dg[256], name[64];
        snprintf(in, sizeof in, "tests/policy/import/%s.acl.conf", samples[i]);
        snprintf(pol, sizeof pol, "tests/policy/import/%s.policy", samples[i]);
        snprintf(dg, sizeof dg, "tests/policy/import/%s.diags", samples[i]);
        snprintf(name, sizeof name, "%s.acl.conf", samples[i]);
        size_t len;
        char *src = slurp(in, &len);
        if (!src)
            fail_msg("cannot read %s (run the tests from the repository root)", in);
        bool fails = strcmp(samples[i], "errors") == 0;
        char *diags;
        char *out = import_as(name, src, len, fails ? WD_ESYNTAX : WD_OK, &diags);
        if (!fails)
            matches_golden(pol, out);
        matches_golden(dg, diags);
        free(diags);
        free(out);
        free(src);
    }
}

/* deny rules decide the subscriptions they overlap in warden, not in EMQX (issue 8) */
static void deny_rules_that_now_stop_wider_subscriptions_are_warned_about(void **state)
{
    const char *src = "{deny, all, subscribe, [\"$SYS/#\"]}.\n"
                      "{deny, all, all, [\"a/b\"]}.\n"
                      "{deny, all, publish, [\"p/#\"]}.\n";
    char *diags;
    char *out = import_as("acl.conf", src, strlen(src), WD_OK, &diags);
    /* no_match (allow) lets "#" through in EMQX; "$SYS/#" has nothing wider to let through */
    assert_non_null(strstr(diags, "acl.conf:2: warning: in EMQX this deny rule does not stop a "
                                  "wider subscription such as \"#\", which the no_match "
                                  "default (allow) may then allow"));
    assert_null(strstr(diags, "acl.conf:1:"));
    assert_null(strstr(diags, "acl.conf:3:"));
    free(diags);
    free(out);
}

/* ---- who ---- */

static void who_forms_become_conditions(void **state)
{
    translates("{allow, all, publish, [\"t\"]}.", "allow publish \"t\"");
    translates("{allow, {user, \"a\"}, publish, [\"t\"]}.",
               "allow publish \"t\" when username = \"a\"");
    translates("{allow, {username, \"a\\\"b\"}, publish, [\"t\"]}.",
               "allow publish \"t\" when username = \"a\\\"b\"");
    translates("{allow, {client, \"c\"}, publish, [\"t\"]}.",
               "allow publish \"t\" when clientid = \"c\"");
    translates("{allow, {clientid, {re, \"^c\\\\d\"}}, publish, [\"t\"]}.",
               "allow publish \"t\" when clientid ~ \"(?s:.*)(?:^c\\\\d)(?s:.*)\"");
    translates("{allow, {user, {re, \"u\"}}, publish, [\"t\"]}.",
               "allow publish \"t\" when username ~ \"(?s:.*)(?:u)(?s:.*)\"");
    translates("{allow, {ipaddr, \"10.0.0.0/8\"}, publish, [\"t\"]}.",
               "allow publish \"t\" when peer in [\"10.0.0.0/8\"]");
    translates("{allow, {ipaddrs, [\"10.0.0.1\", \"::1\", \"fd00::/8\"]}, publish, [\"t\"]}.",
               "allow publish \"t\" when peer in [\"10.0.0.1\", \"::1\", \"fd00::/8\"]");
    translates("{allow, {'and', [{user, \"a\"}, {client, \"c\"}]}, publish, [\"t\"]}.",
               "allow publish \"t\" when username = \"a\" and clientid = \"c\"");
    translates("{allow, {'or', [{user, \"a\"}, {client, \"c\"}]}, publish, [\"t\"]}.",
               "allow publish \"t\" when username = \"a\" or clientid = \"c\"");
    /* nesting keeps its meaning: groups are parenthesized, same operators flattened */
    translates("{allow, {'and', [{'or', [{user, \"a\"}, {user, \"b\"}]}, {client, \"c\"}]}, "
               "publish, [\"t\"]}.",
               "allow publish \"t\" when (username = \"a\" or username = \"b\") and clientid = "
               "\"c\"");
    translates("{allow, {'or', [{'and', [{user, \"a\"}, {client, \"c\"}]}, {user, \"b\"}]}, "
               "publish, [\"t\"]}.",
               "allow publish \"t\" when (username = \"a\" and clientid = \"c\") or username = "
               "\"b\"");
    translates("{allow, {'and', [{'and', [{user, \"a\"}, {client, \"c\"}]}, {ipaddr, \"::1\"}]}, "
               "publish, [\"t\"]}.",
               "allow publish \"t\" when username = \"a\" and clientid = \"c\" and peer in "
               "[\"::1\"]");
    /* true and false fold away: {'and', []} and all are true, {'or', []} and
     * {ipaddrs, []} false */
    translates("{allow, {'and', []}, publish, [\"t\"]}.", "allow publish \"t\"");
    translates("{allow, {'and', [all, {user, \"a\"}]}, publish, [\"t\"]}.",
               "allow publish \"t\" when username = \"a\"");
    translates("{allow, {'or', [{'or', []}, {user, \"a\"}]}, publish, [\"t\"]}.",
               "allow publish \"t\" when username = \"a\"");
    translates("{allow, {'or', [{ipaddrs, []}, all]}, publish, [\"t\"]}.", "allow publish \"t\"");
    char *diags;
    char *out = left_out("{deny, {'or', []}, publish, [\"t\"]}.", &diags);
    contains(out, "# left out, it never matches in EMQX ({'or', []} is never true): deny publish "
                  "\"t\"  # acl.conf:1\n");
    contains(diags, "acl.conf:1:8: warning: this rule never matches in EMQX ({'or', []} is never "
                    "true): it is left out, as a comment");
    free(out);
    free(diags);
    out = left_out("{deny, {'and', [{user, \"a\"}, {ipaddrs, []}]}, publish, [\"t\"]}.", &diags);
    contains(diags, "1:30: warning: this rule never matches in EMQX ({ipaddrs, []} matches no "
                    "client)");
    free(out);
    free(diags);
    out = left_out("{deny, {'or', [{'or', []}, {ipaddrs, []}]}, publish, [\"t\"]}.", &diags);
    contains(diags, "1:8: warning: this rule never matches in EMQX (none of the conditions of "
                    "this 'or' can be true)");
    free(out);
    free(diags);
}

static void regexes_stay_unanchored_as_in_emqx(void **state)
{
    char *diags;
    char *out =
        import_ok("{allow, {user, {re, \"dev\"}}, publish, [\"t\"]}.\n{deny, all}.\n", &diags);
    contains(diags, "acl.conf:1:16: warning: EMQX regexes are unanchored and warden's must match "
                    "the whole username");
    assert_int_equal(decide(out, "dev", "c", "1.2.3.4", PUB, "t"), ALLOW);
    assert_int_equal(decide(out, "xdevy", "c", "1.2.3.4", PUB, "t"), ALLOW);
    assert_int_equal(decide(out, "a\nxdev", "c", "1.2.3.4", PUB, "t"), ALLOW);
    assert_int_equal(decide(out, "de-v", "c", "1.2.3.4", PUB, "t"), DENY);
    free(out);
    free(diags);
    /* an anchored one keeps PCRE's '$', which also matches before a final newline */
    out = import_ok("{allow, {user, {re, \"^op-[0-9]+$\"}}, publish, [\"t\"]}.\n{deny, all}.\n",
                    NULL);
    assert_int_equal(decide(out, "op-12", "c", "1.2.3.4", PUB, "t"), ALLOW);
    assert_int_equal(decide(out, "op-12\n", "c", "1.2.3.4", PUB, "t"), ALLOW);
    assert_int_equal(decide(out, "xop-12", "c", "1.2.3.4", PUB, "t"), DENY);
    assert_int_equal(decide(out, "op-12x", "c", "1.2.3.4", PUB, "t"), DENY);
    free(out);
    /* alternation stays inside the group; \Q...\E cannot swallow the wrapper */
    translates("{allow, {user, {re, \"^a|b$\"}}, publish, [\"t\"]}.",
               "allow publish \"t\" when username ~ \"(?s:.*)(?:^a|b$)(?s:.*)\"");
    out = import_ok("{allow, {user, {re, \"\\\\Qa.b\"}}, publish, [\"t\"]}.\n{deny, all}.\n", NULL);
    contains(out, "username ~ \"(?s:.*)(?:\\\\Qa.b\\\\E)(?s:.*)\"");
    assert_int_equal(decide(out, "xa.by", "c", "1.2.3.4", PUB, "t"), ALLOW);
    assert_int_equal(decide(out, "xaxby", "c", "1.2.3.4", PUB, "t"), DENY);
    free(out);
}

static void addresses_and_conditions_decide_as_in_emqx(void **state)
{
    char *out = import_ok("{allow, {'and', [{ipaddrs, [\"10.0.0.0/8\", \"fd00::/8\"]},\n"
                          "                 {'or', [{user, \"a\"}, {client, \"c\"}]}]},\n"
                          "        publish, [\"t\"]}.\n"
                          "{deny, all}.\n",
                          NULL);
    assert_int_equal(decide(out, "a", "x", "10.1.2.3", PUB, "t"), ALLOW);
    assert_int_equal(decide(out, "b", "c", "fd00::5", PUB, "t"), ALLOW);
    assert_int_equal(decide(out, "b", "x", "10.1.2.3", PUB, "t"), DENY);
    assert_int_equal(decide(out, "a", "x", "11.1.2.3", PUB, "t"), DENY);
    free(out);
    char *diags = NULL;
    out = import_ok("{allow, {ipaddr, \"::ffff:10.0.0.1\"}, publish, [\"t\"]}.", &diags);
    contains(diags, "1:18: warning: warden tests an IPv4-mapped IPv6 address as IPv4");
    free(out);
    free(diags);
    out = import_ok("{allow, {username, \"\"}, publish, [\"t\"]}.", &diags);
    contains(diags, "1:20: warning: warden treats an empty username as no username");
    free(out);
    free(diags);
}

/* ---- action ---- */

/* The reason in the first `bad address "X": REASON` error of rendered diagnostics ("" if
 * none): each tool shortens a long X its own way. */
static const char *error_text(const char *diags, char *buf, size_t cap)
{
    const char *e = strstr(diags, ": error: bad address \"");
    buf[0] = '\0';
    if (e)
        e = strstr(e, "\": ");
    if (e) {
        e += 3;
        size_t n = strcspn(e, "\n");
        snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), e);
    }
    return buf;
}

/* `peer in [...]` in a policy and {ipaddr, ...} in acl.conf go through one parser: the
 * same strings are refused with the same message, and the accepted ones mean the same
 * network, never a different one (issue 8: "::ffff:10.0.0.0/8" silently became a /32). */
static void check_and_import_acl_read_every_address_form_the_same_way(void **state)
{
    static const struct {
        const char *addr;
        const char *error;    /* NULL: accepted */
        const char *in, *out; /* accepted: a peer inside and one outside */
    } cases[] = {
        {"10.0.0.0/8", NULL, "10.255.0.1", "11.0.0.1"},
        {"10.1.2.3/8", NULL, "10.200.0.1", "11.0.0.1"}, /* host bits are ignored, as in EMQX */
        {"10.0.0.1", NULL, "::ffff:10.0.0.1", "10.0.0.2"},
        {"::ffff:10.0.0.0/104", NULL, "10.9.9.9", "11.0.0.1"},
        {"::ffff:10.0.0.0/104", NULL, "::ffff:10.9.9.9", "::10.9.9.9"},
        {"::FFFF:0a00:0001", NULL, "10.0.0.1", "10.0.0.2"},
        {"::ffff:0.0.0.0/96", NULL, "192.0.2.1", "fd00::1"},
        {"0.0.0.0/0", NULL, "::ffff:192.0.2.1", "fd00::1"},
        {"::/0", NULL, "fd00::1", "192.0.2.1"},
        {"fd00::/8", NULL, "fd12::1", "fe80::1"},
        {"::ffff:10.0.0.0/8", "an IPv4-mapped IPv6 prefix must be /96 or longer", NULL, NULL},
        {"::ffff:0:0/95", "an IPv4-mapped IPv6 prefix must be /96 or longer", NULL, NULL},
        {"10.0.0.0/33", "prefix length 33 above 32 for an IPv4 address", NULL, NULL},
        {"::ffff:10.0.0.0/129", "prefix length 129 above 128 for an IPv6 address", NULL, NULL},
        {"fd00::/1000", "the prefix length is out of range", NULL, NULL},
        {"10.0.0.0/08", "the prefix length has a leading zero", NULL, NULL},
        {"10.0.0.0/", "no prefix length after '/'", NULL, NULL},
        {"10.0.0.0/+8", "the prefix length is not a decimal number", NULL, NULL},
        {"10.0.0.0/8/8", "the prefix length is not a decimal number", NULL, NULL},
        {"10.0.0.0/ 8", "the prefix length is not a decimal number", NULL, NULL},
        {"010.0.0.1", "not an IPv4 address (four decimal numbers 0-255, no leading zeros)", NULL,
         NULL},
        {"127.1", "not an IPv4 address (four decimal numbers 0-255", NULL, NULL},
        {"300.1.1.1", "not an IPv4 address (four decimal numbers 0-255", NULL, NULL},
        {" 10.0.0.1", "not an IPv4 or IPv6 address", NULL, NULL},
        {"fe80::1%eth0", "not an IPv4 or IPv6 address", NULL, NULL},
        {"", "empty address", NULL, NULL},
        {"1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd/1", "too long", NULL,
         NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char acl[256], pol[256], e1[512], e2[512];
        snprintf(acl, sizeof acl, "{allow, {ipaddr, \"%s\"}, publish, [\"t\"]}.\n{deny, all}.\n",
                 cases[i].addr);
        snprintf(pol, sizeof pol, "allow publish \"t\" when peer in [\"%s\"]\nauthz default deny\n",
                 cases[i].addr);
        struct wd_diags d;
        wd_diags_init(&d, "p.policy", pol, strlen(pol));
        struct wd_policy *p = NULL;
        int rc = wd_policy_compile(pol, strlen(pol), &d, &p);
        char *cdiags = wd_diags_render(&d);
        wd_policy_release(p);
        wd_diags_cleanup(&d);
        char *idiags = NULL;
        char *out =
            import_as("acl.conf", acl, strlen(acl), cases[i].error ? WD_ESYNTAX : WD_OK, &idiags);
        if (cases[i].error) {
            if (rc != WD_ESYNTAX || !strstr(cdiags, cases[i].error))
                fail_msg("check: \"%s\": want error \"%s\", got:\n%s", cases[i].addr,
                         cases[i].error, cdiags);
            /* the same message, word for word */
            if (strcmp(error_text(cdiags, e1, sizeof e1), error_text(idiags, e2, sizeof e2)))
                fail_msg("check and import-acl disagree on \"%s\":\n  %s\n  %s", cases[i].addr, e1,
                         e2);
        } else {
            if (rc != WD_OK)
                fail_msg("check refused \"%s\":\n%s", cases[i].addr, cdiags);
            assert_int_equal(decide(pol, "u", "c", cases[i].in, WD_ACTION_PUBLISH, "t"),
                             WD_DECISION_ALLOW);
            assert_int_equal(decide(pol, "u", "c", cases[i].out, WD_ACTION_PUBLISH, "t"),
                             WD_DECISION_DENY);
            assert_int_equal(decide(out, "u", "c", cases[i].in, WD_ACTION_PUBLISH, "t"),
                             WD_DECISION_ALLOW);
            assert_int_equal(decide(out, "u", "c", cases[i].out, WD_ACTION_PUBLISH, "t"),
                             WD_DECISION_DENY);
        }
        free(out);
        free(idiags);
        free(cdiags);
    }
}

static void action_forms_become_actions_qos_and_retain(void **state)
{
    translates("{allow, all, publish, [\"t\"]}.", "allow publish \"t\"");
    translates("{allow, all, subscribe, [\"t\"]}.", "allow subscribe \"t\"");
    translates("{allow, all, all, [\"t\"]}.", "allow all \"t\"");
    translates("{allow, all, {publish, []}, [\"t\"]}.", "allow publish \"t\"");
    translates("{allow, all, {publish, [{qos, 1}]}, [\"t\"]}.", "allow publish \"t\" qos 1");
    translates("{allow, all, {publish, [{qos, [0, 2]}]}, [\"t\"]}.",
               "allow publish \"t\" qos [0, 2]");
    /* repeated qos options accumulate; all three levels is no condition at all */
    translates("{allow, all, {subscribe, [{qos, 1}, {qos, 2}]}, [\"t\"]}.",
               "allow subscribe \"t\" qos [1, 2]");
    translates("{allow, all, {all, [{qos, [0, 1, 2]}, {retain, all}]}, [\"t\"]}.",
               "allow all \"t\"");
    translates("{deny, all, {publish, [{retain, true}]}, [\"t\"]}.",
               "deny publish \"t\" retain true");
    translates("{deny, all, {all, [{qos, 0}, {retain, false}]}, [\"t\"]}.",
               "deny all \"t\" qos 0 retain false");
    /* proplists: a bare atom is {atom, true}; the first retain wins */
    translates("{deny, all, {publish, [retain]}, [\"t\"]}.", "deny publish \"t\" retain true");
    char *diags;
    char *out =
        import_ok("{deny, all, {publish, [{retain, false}, {retain, true}]}, [\"t\"]}.", &diags);
    contains(out, "deny publish \"t\" retain false");
    contains(diags, "1:41: warning: EMQX uses the first retain option: this one is ignored");
    contains(diags, "1:13: warning: EMQX does not send QoS or retain through ExHook, so warden "
                    "cannot test them on EMQX's requests: this deny rule matches them whatever "
                    "their QoS and retain flag");
    free(out);
    free(diags);
    out = import_ok("{allow, all, {subscribe, [{qos, 1}, {retain, true}, {foo, 1}]}, [\"t\"]}.",
                    &diags);
    contains(out, "allow subscribe \"t\" qos 1  # acl.conf:1");
    contains(diags, "1:37: warning: EMQX ignores retain on subscribe rules: dropped");
    contains(diags, "1:53: warning: option a tuple of 2 elements is ignored");
    contains(diags, "this allow rule never matches them");
    free(out);
    free(diags);
    out = left_out("{allow, all, {publish, [{qos, []}]}, [\"t\"]}.", &diags);
    contains(diags, "1:25: warning: this rule never matches in EMQX (an empty QoS list matches "
                    "nothing)");
    free(out);
    free(diags);
}

/* ---- topics ---- */

static void topic_forms_become_topics(void **state)
{
    translates("{allow, all, publish, [\"a/+\", \"b/#\"]}.", "allow publish [\"a/+\", \"b/#\"]");
    translates("{allow, all, publish, [\"eq a/#\"]}.", "allow publish eq \"a/#\"");
    translates("{allow, all, publish, [{eq, \"a/#\"}]}.", "allow publish eq \"a/#\"");
    /* eq topics never render placeholders, in either */
    translates("{allow, all, publish, [{eq, \"t/${username}\"}]}.",
               "allow publish eq \"t/${username}\"");
    translates("{allow, all, publish, [\"a/${username}/${clientid}\"]}.",
               "allow publish \"a/${username}/${clientid}\"");
    translates("{allow, all, publish, [\"a/${cert_common_name}\", \"b/${cn}\"]}.",
               "allow publish [\"a/${cn}\", \"b/${cn}\"]");
    translates("{allow, all, publish, [\"a/${.username}\"]}.", "allow publish \"a/${username}\"");
    /* literal text: ${$} is '$', a '${' that is not a placeholder stays text */
    translates("{allow, all, publish, [\"a/${$}{username}\"]}.",
               "allow publish \"a/$${username}\"");
    translates("{allow, all, publish, [\"a/${x-y}/${\"]}.", "allow publish \"a/$${x-y}/$${\"");
    translates("{allow, all, publish, [\"a/$${x-y}\"]}.", "allow publish \"a/$$${x-y}\"");
    translates("{allow, all, publish, [\"$SYS/x\", \"a/$\"]}.",
               "allow publish [\"$SYS/x\", \"a/$\"]");
    char *out = import_ok("{allow, all, publish, [\"a/${$}{username}\", \"b/${username}\"]}.\n"
                          "{deny, all}.\n",
                          NULL);
    assert_int_equal(decide(out, "u", "c", "1.2.3.4", PUB, "a/${username}"), ALLOW);
    assert_int_equal(decide(out, "u", "c", "1.2.3.4", PUB, "a/u"), DENY);
    assert_int_equal(decide(out, "u", "c", "1.2.3.4", PUB, "b/u"), ALLOW);
    free(out);
    /* the empty list matches nothing */
    char *diags;
    out = left_out("{allow, all, publish, []}.", &diags);
    contains(diags, "1:23: warning: this rule never matches in EMQX (an empty topic list matches "
                    "nothing)");
    free(out);
    free(diags);
}

static void all_topics_cover_dollar_topics_only_at_the_end(void **state)
{
    char *diags;
    /* in the middle: ["#", "$SYS/#"] and a warning that other $-topics are not covered */
    char *out = import_ok("{deny, {user, \"x\"}, all, all}.\n{allow, all}.\n", &diags);
    contains(out, "deny all [\"#\", \"$SYS/#\"] when username = \"x\"  # acl.conf:1\n");
    contains(diags, "acl.conf:1:26: warning: 'all' topics: EMQX's 'all' matches every topic, "
                    "'$'-topics included, and warden's \"#\" no '$'-topic: translated as "
                    "[\"#\", \"$SYS/#\"], so other '$'-topics (such as $events/... or $foo/...) "
                    "are not denied by this rule");
    lacks(diags, "acl.conf:2");
    assert_int_equal(decide(out, "x", "c", "1.2.3.4", PUB, "$SYS/a"), DENY);
    assert_int_equal(decide(out, "x", "c", "1.2.3.4", PUB, "$events/a"), ALLOW); /* differs */
    free(out);
    free(diags);
    /* a catch-all that something follows: warned */
    out = import_ok("{deny, all}.\n{allow, all, publish, [\"$events/#\"]}.\n", &diags);
    contains(diags, "acl.conf:1:8: warning: 'all' topics");
    contains(out, "When no rule matches, EMQX applies `authorization.no_match`");
    contains(out, "\nauthz default allow\n");
    free(out);
    free(diags);
    /* the last rule: the default repeats it, so nothing differs */
    out = import_ok("{allow, {user, \"a\"}, publish, [\"t\"]}.\n{deny, all, all, all}.\n"
                    "{deny, {'or', []}, all, [\"x\"]}.\n",
                    &diags);
    contains(out, "acl.conf ends with {deny, all}");
    contains(out, "\nauthz default deny\n");
    lacks(diags, "'all' topics");
    assert_int_equal(decide(out, "b", "c", "1.2.3.4", PUB, "$events/x"), DENY);
    assert_int_equal(decide(out, "a", "c", "1.2.3.4", PUB, "t"), ALLOW);
    free(out);
    free(diags);
    /* no rules at all */
    out = import_ok("% nothing here\n", NULL);
    contains(out, "\nauthz default allow\n");
    free(out);
}

static void pitfall_warnings_are_given_once_or_per_rule(void **state)
{
    char *diags;
    char *out = import_ok("{allow, all, subscribe, [\"a/+\"]}.\n"
                          "{allow, all, subscribe, [\"b/+/#\"]}.\n"
                          "{allow, all, publish, [\"p/${clientid}\"]}.\n"
                          "{allow, all, publish, [\"q/${clientid}\"]}.\n"
                          "{allow, all, subscribe, [\"u/${username}\", \"v/${username}\"]}.\n"
                          "{allow, all, publish, [\"w/${cn}\"]}.\n"
                          "{deny, all}.\n",
                          &diags);
    /* '+' covering '#' in EMQX: once for the file, at the first rule */
    contains(diags, "acl.conf:1:26: warning: in EMQX a rule filter like \"a/+\" also allows "
                    "subscribing to \"a/#\"");
    lacks(diags, "acl.conf:2:");
    /* placeholders that widen rules: once */
    contains(diags, "acl.conf:3:24: warning: in EMQX a placeholder value containing '/', '+' or "
                    "'#'");
    lacks(diags, "acl.conf:4:");
    /* "undefined": once per rule that could render it */
    contains(diags, "acl.conf:5:26: warning: EMQX renders a missing username or certificate name "
                    "as \"undefined\" here");
    lacks(diags, "acl.conf:5:44:");
    contains(diags, "acl.conf:6:24: warning: EMQX renders a missing username");
    assert_int_equal(decide(out, "", "c", "1.2.3.4", SUB, "u/undefined"), DENY);
    assert_int_equal(decide(out, "u", "c", "1.2.3.4", SUB, "u/u"), ALLOW);
    assert_int_equal(decide(out, "u", "c", "1.2.3.4", SUB, "a/#"), DENY); /* EMQX: allow */
    free(out);
    free(diags);
    /* '+' in a publish-only rule, or not in a last position: no warning */
    diags =
        diags_of("{allow, all, publish, [\"a/+\"]}.\n{allow, all, subscribe, [\"+/b\"]}.\n", WD_OK);
    lacks(diags, "also allows subscribing");
    free(diags);
}

/* ---- Erlang syntax ---- */

static void erlang_escapes_comments_and_atoms_are_understood(void **state)
{
    /* comments, quoted atoms, adjacent strings, escapes (\x41 \101 \x{e9} \s \^I), bases */
    translates("% comment {deny, all}.\n"
               "{'allow', {'username', \"a\" \"b\"}, {publish, [{qos, 2#1}]},\n"
               "  [\"t/\\x41\\101\\x{e9}\\s\\$x\"]}. % trailing\n",
               "allow publish \"t/AA\xc3\xa9 $x\" qos 1 when username = \"ab\"");
    translates("{allow, {user, \"tab\\^Ihere\\n\"}, publish, [\"t\"]}.",
               "allow publish \"t\" when username = \"tab\\there\\n\"");
    translates("{allow,{user,\"a\"},publish,[\"t\"]}.\t",
               "allow publish \"t\" when username = \"a\"");
    translates("{allow, all, {publish, [{qos, $\\001}]}, [\"t\"]}.", "allow publish \"t\" qos 1");
    /* strings may span lines: the rule keeps the line it starts on */
    char *out = import_ok("\n\n{allow, {user, \"a\nb\"},\n publish, [\"t\"]}.\n", NULL);
    contains(out, "allow publish \"t\" when username = \"a\\nb\"  # acl.conf:3\n");
    free(out);
}

static void each_error_is_reported_at_its_position(void **state)
{
    static const struct {
        const char *acl, *want;
    } cases[] = {
        {"{allow, {client_attr, \"g\", \"a\"}, publish, [\"t\"]}.",
         "acl.conf:1:9: error: client_attr has no warden equivalent"},
        {"{allow, {client_attr, \"g\", {re, \"a\"}}, publish, [\"t\"]}.",
         "acl.conf:1:9: error: client_attr has no warden equivalent"},
        {"{allow, {zone, default}, publish, [\"t\"]}.",
         "1:9: error: {zone, ...} (an EMQX 6 condition) has no warden equivalent"},
        {"{allow, {group, \"a\"}, publish, [\"t\"]}.", "1:9: error: unknown who-condition"},
        {"{allow, {username, 1}, publish, [\"t\"]}.",
         "1:20: error: expected a username string or {re, \"regex\"}, got the integer 1"},
        {"{allow, {username, \"a\", \"b\"}, publish, [\"t\"]}.",
         "1:9: error: {username, ...} has 2 elements, not 3"},
        {"{allow, {'and', {user, \"a\"}}, publish, [\"t\"]}.",
         "1:17: error: expected a list of who-conditions"},
        {"{allow, {user, {re, \"a(\"}}, publish, [\"t\"]}.",
         "1:21: error: bad regular expression at offset 2"},
        {"{allow, {user, {re, \"(*UTF)a\"}}, publish, [\"t\"]}.",
         "1:21: error: this regular expression cannot be kept unanchored for warden"},
        {"{allow, {ipaddr, \"10.0.0.0/33\"}, publish, [\"t\"]}.",
         "1:18: error: bad address \"10.0.0.0/33\": prefix length 33 above 32 for an IPv4 "
         "address"},
        {"{allow, {ipaddrs, [\"10.0.0.1\", \"x\"]}, publish, [\"t\"]}.",
         "1:32: error: bad address \"x\": not an IPv4 or IPv6 address"},
        {"{allow, {ipaddr, \"::ffff:0:0/64\"}, publish, [\"t\"]}.",
         "1:18: error: bad address \"::ffff:0:0/64\": an IPv4-mapped IPv6 prefix must be /96 "
         "or longer"},
        {"{allow, {ipaddr, \"::ffff:10.0.0.0/8\"}, publish, [\"t\"]}.",
         "1:18: error: bad address \"::ffff:10.0.0.0/8\": an IPv4-mapped IPv6 prefix must be "
         "/96 or longer"},
        {"{allow, all, pub, [\"t\"]}.", "1:14: error: unknown action 'pub'"},
        {"{allow, all, {publish, {retain, true}}, [\"t\"]}.",
         "1:24: error: action options must be a list"},
        {"{allow, all, {publish, [{qos, 3}]}, [\"t\"]}.",
         "1:31: error: QoS must be 0, 1 or 2 (or a list of them), got the integer 3"},
        {"{allow, all, {publish, [{qos, [1, [2]]}]}, [\"t\"]}.",
         "1:35: error: QoS must be 0, 1 or 2 (or a list of them), got a list"},
        {"{allow, all, {publish, [qos]}, [\"t\"]}.",
         "1:25: error: QoS must be 0, 1 or 2 (or a list of them), got 'true'"},
        {"{allow, all, {publish, [{retain, maybe_not}]}, [\"t\"]}.",
         "1:34: error: retain must be true, false or all, got 'maybe_not'"},
        {"{allow, all, publish, \"t\"}.",
         "1:23: error: the topics must be a list, as in [\"t\"], or all (EMQX rejects a bare "
         "string)"},
        {"{allow, all, publish, [\"a/b#\"]}.", "1:24: error: invalid topic filter \"a/b#\""},
        {"{allow, all, publish, [\"eq \"]}.", "1:24: error: empty topic"},
        {"{allow, all, publish, [{eq, 1}]}.",
         "1:24: error: a topic is a string, \"eq TOPIC\" or {eq, TOPIC}"},
        {"{allow, all, publish, [\"t/${zone}\"]}.",
         "1:24: error: placeholder ${zone} has no warden equivalent"},
        {"{allow, all, publish, [\"t/${client_attrs.group}\"]}.",
         "1:24: error: placeholder ${client_attrs.group} has no warden equivalent"},
        {"{allow, all, publish, [\"t/${peerhost}\"]}.",
         "1:24: error: ${peerhost} is not a placeholder in EMQX ACL topics"},
        {"{allow, all, publish, [\"t/$${username}\"]}.",
         "1:24: error: a literal '$' right before a placeholder cannot be written in warden"},
        {"{permit, all}.", "1:2: error: the permission must be allow or deny, got 'permit'"},
        {"{allow, everyone}.",
         "1:9: error: a 2-element rule is {allow, all} or {deny, all}; got 'everyone'"},
        {"{allow, all, publish}.",
         "1:1: error: a rule is {Perm, Who, Action, Topics} or {Perm, all}; got a tuple of 3 "
         "elements"},
        {"allow.", "1:1: error: a rule is {Perm, Who, Action, Topics} or {Perm, all}; got "
                   "'allow'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *diags = diags_of(cases[i].acl, WD_ESYNTAX);
        if (!strstr(diags, cases[i].want))
            fail_msg("%s\n  expected: %s\n  got: %s", cases[i].acl, cases[i].want, diags);
        free(diags);
    }
}

static void syntax_errors_are_all_reported_in_one_pass(void **state)
{
    static const struct {
        const char *acl, *want;
    } cases[] = {
        {"{allow, all", "1:1: error: unterminated tuple: this '{' has no closing '}'"},
        {"{allow, all, publish, [\"t\"}.", "1:27: error: expected ',' or ']', got '}'"},
        {"{allow, all}", "1:13: error: missing '.' after the last term"},
        {"{allow, all}\n{deny, all}.",
         "1:13: error: missing '.' after the term (each rule ends with '.'; found '{' on line 2)"},
        {"{allow, all, publish, [\"t]}.\n", "1:24: error: unterminated string"},
        {"{'allow, all}.\n", "1:2: error: unterminated quoted atom"},
        {"{allow, all, publish, [\"a\\x{zz}\"]}.",
         "1:26: error: bad \\x{...} escape (hexadecimal digits then '}')"},
        {"{allow, all, publish, [\"a\\xg0\"]}.", "1:26: error: bad \\x escape"},
        {"{allow, all, publish, [\"a\\x{110000}\"]}.",
         "1:26: error: \\x{...} is not a Unicode code point"},
        {"{allow, all, publish, [\"a\\0\"]}.",
         "1:24: error: a NUL character in a string cannot be translated"},
        {"{allow, all, publish, [\"\xff\"]}.", "1:24: error: string is not valid UTF-8"},
        {"{allow, {and, []}, publish, [\"t\"]}.",
         "1:10: error: 'and' is an Erlang keyword: write the atom quoted, as 'and'"},
        {"{allow, Who, publish, [\"t\"]}.", "1:9: error: 'Who' is an Erlang variable"},
        {"{allow, all, {publish, [{qos, 1.0}]}, [\"t\"]}.",
         "1:31: error: floating-point numbers have no meaning"},
        {"{allow, all, {publish, [{qos, 1x}]}, [\"t\"]}.", "1:31: error: malformed number"},
        {"{allow, all, {publish, [{qos, 99#1}]}, [\"t\"]}.", "1:31: error: bad number base 99"},
        {"{allow, all, publish, [<<\"t\">>]}.", "1:24: error: binaries (<<...>>) are not"},
        {"{allow, all, publish, [\"t\" | []]}.", "1:28: error: unexpected character '|'"},
        {"{allow, all}.{deny, all}.", "1:13: error: unexpected '.' (a term ends with '.'"},
        {"{allow, all}}.", "1:13: error: missing '.' after the term"},
        {"}.", "1:1: error: expected a term, got '}'"},
        {"{allow, all, publish, [\"t\"]}.\n\xc3\xa9.", "2:1: error: unexpected byte 0xc3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *diags = diags_of(cases[i].acl, WD_ESYNTAX);
        if (!strstr(diags, cases[i].want))
            fail_msg("%s\n  expected: %s\n  got: %s", cases[i].acl, cases[i].want, diags);
        free(diags);
    }
    /* one pass: every broken rule is reported, the good ones in between are translated */
    char *diags = diags_of("{allow, Who, publish, [\"t\"]}.\n"
                           "{allow, all, publish, [\"ok\"]}.\n"
                           "{allow, all, publish, [\"t/${zone}\"], extra}.\n"
                           "{deny, {client_attr, \"a\", \"b\"}, all, [\"x\", \"a/#/b\"]}.\n"
                           "{allow, all",
                           WD_ESYNTAX);
    contains(diags, "acl.conf:1:9: error: 'Who' is an Erlang variable");
    contains(diags, "acl.conf:3:1: error: a rule is {Perm, Who, Action, Topics}");
    contains(diags, "acl.conf:4:8: error: client_attr has no warden equivalent");
    contains(diags, "acl.conf:4:44: error: invalid topic filter \"a/#/b\"");
    contains(diags, "acl.conf:5:1: error: unterminated tuple");
    lacks(diags, "acl.conf:2:");
    free(diags);
}

static void nesting_and_size_limits_are_errors_not_crashes(void **state)
{
    /* 65 levels of lists */
    char deep[400] = "{allow, all, publish, ";
    for (int i = 0; i < 70; i++)
        append(deep, sizeof deep, "[");
    char *diags = diags_of(deep, WD_ESYNTAX);
    contains(diags, "error: terms nested deeper than 64 levels");
    free(diags);
    /* a deep but legal who-condition */
    char ok[4096] = "{allow, ";
    for (int i = 0; i < 30; i++)
        append(ok, sizeof ok, i % 2 ? "{'and', [{user, \"a\"}, " : "{'or', [{client, \"c\"}, ");
    append(ok, sizeof ok, "all");
    for (int i = 0; i < 30; i++)
        append(ok, sizeof ok, "]}");
    append(ok, sizeof ok, ", publish, [\"t\"]}.");
    free(import_ok(ok, NULL));
    /* a million open brackets: still one diagnostic */
    size_t n = 1u << 20;
    char *big = malloc(n + 1);
    memset(big, '[', n);
    big[n] = '\0';
    diags = diags_of(big, WD_ESYNTAX);
    contains(diags, "nested deeper than 64");
    free(diags);
    /* a term with too many elements */
    size_t m = 250000;
    char *wide = malloc(m * 4 + 64);
    snprintf(wide, 64, "{allow, all, publish, [");
    size_t len = strlen(wide);
    for (size_t i = 0; i < m; i++) {
        memcpy(wide + len, "\"a\",", 4);
        len += 4;
    }
    memcpy(wide + len, "\"a\"]}.", 7);
    diags = diags_of(wide, WD_ESYNTAX);
    contains(diags, "1:1: error: term too large (more than 200000 elements)");
    free(diags);
    /* too many topics for a warden list */
    snprintf(wide, 64, "{allow, all, publish, [");
    len = strlen(wide);
    for (size_t i = 0; i < 100001; i++) {
        memcpy(wide + len, "\"a\",", 4);
        len += 4;
    }
    memcpy(wide + len, "\"a\"]}.", 7);
    diags = diags_of(wide, WD_ESYNTAX);
    contains(diags, "1:23: error: list longer than 100000 items");
    free(diags);
    free(wide);
    /* an oversized file is refused before it is read */
    free(big);
    n = WD_IMPORT_MAX_BYTES + 1;
    big = malloc(n);
    memset(big, ' ', n);
    struct wd_diags d;
    wd_diags_init(&d, "acl.conf", big, n);
    char *out = (char *)1;
    assert_int_equal(wd_import_acl(big, n, &d, &out), WD_ETOOBIG);
    assert_null(out);
    wd_diags_cleanup(&d);
    free(big);
}

static void many_rules_translate_in_one_pass(void **state)
{
    size_t n = 20000;
    char *src = malloc(n * 80);
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(
            src + len, 80, "{allow, {user, \"u%zu\"}, publish, [\"d/${username}/%zu\"]}.\n", i, i);
    char *diags;
    char *out = import_as("acl.conf", src, len, WD_OK, &diags);
    contains(out, "allow publish \"d/${username}/19999\" when username = \"u19999\"  # "
                  "acl.conf:20000\n");
    /* repeated warnings are listed a few times, then counted: errors stay visible */
    contains(diags, "acl.conf:10:");
    lacks(diags, "acl.conf:11:");
    contains(diags, "acl.conf: warning: 19990 more warnings like the ones above about "
                    "\"undefined\" were not listed");
    free(out);
    free(diags);
    free(src);
}

/* ---- random input ---- */

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

static void gen_who(unsigned *s, char *b, size_t cap, int depth)
{
    static const char *const leaves[] = {
        "all",
        "{user, \"a\"}",
        "{username, {re, \"^a.*\"}}",
        "{client, \"c$\"}",
        "{clientid, {re, \"(x|y)+\"}}",
        "{ipaddr, \"10.0.0.0/8\"}",
        "{ipaddrs, [\"::1\"]}",
        "{ipaddrs, []}",
        "{'and', []}",
        "{'or', []}",
        "{user, \"\\x{e9}\\n\"}",
        "{username, {re, \"\\\\Q(\"}}",
    };
    if (depth > 3 || rnd(s) % 3) {
        strncat(b, leaves[rnd(s) % (sizeof leaves / sizeof *leaves)], cap - strlen(b) - 1);
        return;
    }
    strncat(b, rnd(s) % 2 ? "{'and', [" : "{'or', [", cap - strlen(b) - 1);
    int k = (int)(rnd(s) % 4);
    for (int i = 0; i < k; i++) {
        if (i)
            strncat(b, ", ", cap - strlen(b) - 1);
        gen_who(s, b, cap, depth + 1);
    }
    strncat(b, "]}", cap - strlen(b) - 1);
}

static void gen_rule(unsigned *s, char *b, size_t cap)
{
    static const char *const actions[] = {
        "publish",
        "subscribe",
        "all",
        "{publish, [{qos, 1}]}",
        "{all, [{retain, true}]}",
        "{subscribe, [{qos, [0, 2]}, {retain, false}]}",
        "{publish, [{qos, []}]}",
    };
    static const char *const parts[] = {
        "a",    "b",    "+",  "#", "${username}", "${clientid}", "${cn}", "${cert_common_name}",
        "$SYS", "${$}", "${", "}", "$",           "x${y}",       "\\\"",  "\\x{e9}",
        "",     "eq ",
    };
    if (rnd(s) % 8 == 0) {
        strncat(b, rnd(s) % 2 ? "{allow, all}.\n" : "{deny, all}.\n", cap - strlen(b) - 1);
        return;
    }
    strncat(b, rnd(s) % 2 ? "{allow, " : "{deny, ", cap - strlen(b) - 1);
    gen_who(s, b, cap, 0);
    strncat(b, ", ", cap - strlen(b) - 1);
    strncat(b, actions[rnd(s) % (sizeof actions / sizeof *actions)], cap - strlen(b) - 1);
    if (rnd(s) % 10 == 0) {
        strncat(b, ", all}.\n", cap - strlen(b) - 1);
        return;
    }
    strncat(b, ", [", cap - strlen(b) - 1);
    int nt = (int)(rnd(s) % 3) + (rnd(s) % 10 == 0 ? 0 : 1);
    for (int t = 0; t < nt; t++) {
        if (t)
            strncat(b, ", ", cap - strlen(b) - 1);
        bool eq = rnd(s) % 6 == 0;
        strncat(b, eq ? "{eq, \"" : "\"", cap - strlen(b) - 1);
        int nl = (int)(rnd(s) % 4) + 1;
        for (int l = 0; l < nl; l++) {
            if (l)
                strncat(b, "/", cap - strlen(b) - 1);
            strncat(b, parts[rnd(s) % (sizeof parts / sizeof *parts)], cap - strlen(b) - 1);
        }
        strncat(b, eq ? "\"}" : "\"", cap - strlen(b) - 1);
    }
    strncat(b, "]}.\n", cap - strlen(b) - 1);
}

static void random_input_never_crashes_and_every_success_compiles(void **state)
{
    /* WD_FUZZ_ROUNDS=N runs longer; WD_FUZZ_SEED=N another sequence */
    int rounds = getenv("WD_FUZZ_ROUNDS") ? (int)strtol(getenv("WD_FUZZ_ROUNDS"), NULL, 10) : 3000;
    unsigned seed =
        getenv("WD_FUZZ_SEED") ? (unsigned)strtoul(getenv("WD_FUZZ_SEED"), NULL, 10) : 12345;
    int ok = 0, failed = 0;
    /* byte soup from Erlang-ish pieces */
    static const char *const soup[] = {
        "{",
        "}",
        "[",
        "]",
        ",",
        ".",
        ". ",
        ".\n",
        " ",
        "\n",
        "%",
        "\"",
        "'",
        "\\",
        "$",
        "#",
        "+",
        "/",
        "allow",
        "deny",
        "all",
        "publish",
        "subscribe",
        "user",
        "username",
        "client",
        "clientid",
        "ipaddr",
        "ipaddrs",
        "re",
        "eq",
        "qos",
        "retain",
        "true",
        "'and'",
        "'or'",
        "and",
        "Var",
        "0",
        "1",
        "2",
        "16#",
        "1.5",
        "\"a/+\"",
        "\"#\"",
        "\"${username}\"",
        "\"10.0.0.1\"",
        "\\x{",
        "\\^",
        "<<",
        "|",
        "-",
        "\xc3",
        "\xa9",
        "\x01",
    };
    char buf[2048];
    for (int round = 0; round < rounds; round++) {
        size_t n = 0;
        int pieces = (int)(rnd(&seed) % 120);
        buf[0] = '\0';
        for (int i = 0; i < pieces; i++) {
            const char *p = soup[rnd(&seed) % (sizeof soup / sizeof *soup)];
            size_t k = strlen(p);
            if (n + k >= sizeof buf)
                break;
            memcpy(buf + n, p, k);
            n += k;
        }
        if (rnd(&seed) % 4 == 0 && n) /* sometimes an arbitrary byte, NUL included */
            buf[rnd(&seed) % n] = (char)rnd(&seed);
        char *diags = NULL;
        struct wd_diags d;
        wd_diags_init(&d, "fuzz.acl.conf", buf, n);
        char *out = NULL;
        int rc = wd_import_acl(buf, n, &d, &out);
        if (rc == WD_OK) {
            compiles_cleanly(out);
            ok++;
        } else {
            assert_null(out);
            assert_true(d.nerrors > 0);
            failed++;
        }
        diags = wd_diags_render(&d);
        lacks(diags, "please report this"); /* the self-check never fails */
        free(diags);
        free(out);
        wd_diags_cleanup(&d);
    }
    /* random rules from the grammar, sometimes with a byte changed */
    char *rules = malloc(1 << 16);
    int rule_ok = 0;
    for (int round = 0; round < rounds; round++) {
        rules[0] = '\0';
        int nr = (int)(rnd(&seed) % 6) + 1;
        for (int i = 0; i < nr; i++)
            gen_rule(&seed, rules, 1 << 16);
        size_t n = strlen(rules);
        int mutations = rnd(&seed) % 3 == 0 ? (int)(rnd(&seed) % 3) + 1 : 0;
        for (int i = 0; i < mutations && n; i++)
            rules[rnd(&seed) % n] = "{}[],.\"'\\$/+# a\n"[rnd(&seed) % 16];
        struct wd_diags d;
        wd_diags_init(&d, "gen.acl.conf", rules, n);
        char *out = NULL;
        int rc = wd_import_acl(rules, n, &d, &out);
        if (rc == WD_OK) {
            compiles_cleanly(out);
            rule_ok++;
        } else {
            assert_null(out);
        }
        char *r = wd_diags_render(&d);
        lacks(r, "please report this");
        free(r);
        free(out);
        wd_diags_cleanup(&d);
    }
    free(rules);
    /* the generator must exercise the success path, not only the errors */
    assert_true(rule_ok > rounds / 6);
    assert_true(ok + failed == rounds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(emqx_default_acl_conf_translates_exactly),
        cmocka_unit_test(golden_samples_translate_to_their_expected_files),
        cmocka_unit_test(deny_rules_that_now_stop_wider_subscriptions_are_warned_about),
        cmocka_unit_test(who_forms_become_conditions),
        cmocka_unit_test(regexes_stay_unanchored_as_in_emqx),
        cmocka_unit_test(addresses_and_conditions_decide_as_in_emqx),
        cmocka_unit_test(check_and_import_acl_read_every_address_form_the_same_way),
        cmocka_unit_test(action_forms_become_actions_qos_and_retain),
        cmocka_unit_test(topic_forms_become_topics),
        cmocka_unit_test(all_topics_cover_dollar_topics_only_at_the_end),
        cmocka_unit_test(pitfall_warnings_are_given_once_or_per_rule),
        cmocka_unit_test(erlang_escapes_comments_and_atoms_are_understood),
        cmocka_unit_test(each_error_is_reported_at_its_position),
        cmocka_unit_test(syntax_errors_are_all_reported_in_one_pass),
        cmocka_unit_test(nesting_and_size_limits_are_errors_not_crashes),
        cmocka_unit_test(many_rules_translate_in_one_pass),
        cmocka_unit_test(random_input_never_crashes_and_every_success_compiles),
    };
    return cmocka_run_group_tests_name("import", tests, NULL, NULL);
}
