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

#include "core/buf.h"
#include "core/utf8.h"
#include "policy/lex.h"
#include "policy/policy.h"
#include "policy/policy_int.h"
#include "policy/topic.h"

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
    struct wd_client c = {.node = "",
                          .clientid = cid,
                          .username = user,
                          .peerhost = "10.1.2.3",
                          .sockport = 1883,
                          .protocol = "mqtt",
                          .mountpoint = "",
                          .cn = "",
                          .dn = ""};
    return c;
}

/* Decides with both evaluators and checks they agree. */
static enum wd_decision az(const struct wd_policy *p, const struct wd_client *c, enum wd_action a,
                           const char *topic, unsigned *line)
{
    struct wd_authz_req r = {.client = *c,
                             .action = a,
                             .topic = topic,
                             .topic_len = strlen(topic),
                             .qos = -1,
                             .retain = -1};
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
    /* `superuser` is what authenticated the connection said (the engine's session), never
     * the name of a static superuser */
    struct wd_client root = client("root", "r");
    assert_int_equal(az(p, &root, PUB, "s", NULL), WD_DECISION_DENY);
    root.is_superuser = true;
    assert_int_equal(az(p, &root, PUB, "s", NULL), WD_DECISION_ALLOW);
    wd_policy_release(p);
}

static void superuser_in_an_authn_condition_is_an_error_even_nested(void **state)
{
    static const char *bad[] = {
        "authn allow when superuser\n",
        "authn deny when not superuser\n",
        "authn users when clientid = \"c\" and (port = 1 or superuser)\n",
        "authn redis when not (anonymous or not superuser)\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct wd_diags d;
        wd_diags_init(&d, "t.policy", bad[i], strlen(bad[i]));
        struct wd_policy *p = NULL;
        assert_int_equal(wd_policy_compile(bad[i], strlen(bad[i]), &d, &p), WD_ESYNTAX);
        assert_null(p);
        char *txt = wd_diags_render(&d);
        if (!strstr(txt, "error: 'superuser' is unknown while authenticating"))
            fail_msg("%s: %s", bad[i], txt);
        free(txt);
        wd_diags_cleanup(&d);
    }
    /* in authorization rules it stays what it was */
    struct wd_policy *p = compile_ok("authn allow when anonymous\n"
                                     "allow all \"#\" when superuser\n");
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
    struct wd_authz_req r = {
        .client = c, .action = PUB, .topic = "x", .topic_len = 1, .qos = 1, .retain = 0};
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
    assert_non_null(strstr(r,
                           "t.policy:1:7: error: expected publish, subscribe or all, got 'publsh'\n"
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
    assert_non_null(
        strstr(r, "t.policy:5:33: error: bad address \"1.2.3.4/33\": prefix length 33"));
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
    free(r); /* a deny rule also decides the wider subscriptions it overlaps: an earlier allow rule
              * covering its topic does not hide it, an earlier deny rule does */
    r = diags_of("allow subscribe \"s/#\"\n"
                 "deny subscribe \"s/x\"\n"
                 "deny subscribe \"d/#\"\n"
                 "deny subscribe \"d/x\"\n"
                 "deny subscribe eq \"e/x\"\n"
                 "deny subscribe \"e/x\"\n",
                 WD_OK);
    assert_null(strstr(r, "t.policy:2:"));
    assert_non_null(strstr(r, "t.policy:4:1: warning: rule can never match"));
    assert_null(strstr(r, "t.policy:6:"));
    free(r);
    /* an eq rule covers only the request that is its text: a later rule with the same text
     * but a wildcard or placeholder still decides other requests (a false "can never match"
     * before) */
    r = diags_of("allow all eq \"a/+\"\n"
                 "allow all \"a/+\"\n"
                 "allow all eq \"u/${username}\"\n"
                 "allow all \"u/${username}\"\n"
                 "allow all eq \"l/x\"\n"
                 "allow all \"l/x\"\n",
                 WD_OK);
    assert_null(strstr(r, "t.policy:2:"));
    assert_null(strstr(r, "t.policy:4:"));
    assert_non_null(strstr(r, "t.policy:6:1: warning: rule can never match"));
    free(r);
}

/* ---- the shadow check against the quadratic reference it replaced ---- */

/* The shadow check as it was before issue 8 (quadratic: every earlier rule at every trie
 * node the topic reaches), kept as the reference: `t` holds the topics of the rules
 * before r, conditional or not. One fix since: an eq topic no longer counts as covering a
 * topic with the same text and a wildcard or placeholder. */
static bool ref_options_cover(const struct wd_rule *e, const struct wd_rule *r)
{
    if ((e->actions & r->actions) != r->actions)
        return false;
    if (e->has_qos && (!r->has_qos || (e->qos_mask & r->qos_mask) != r->qos_mask))
        return false;
    if (e->retain != -1 && e->retain != r->retain)
        return false;
    return true;
}

static unsigned ref_shadowed_by(const struct wd_policy *p, const struct wd_trie *trie,
                                const struct wd_rule *r)
{
    unsigned by = 0;
    for (size_t ti = 0; ti < r->ntopics; ti++) {
        const struct wd_ctopic *t = &r->topics[ti];
        struct wd_req_level lv[WD_TOPIC_MAX_LEVELS];
        int nlv = 0;
        if (t->eq) {
            const char *ls[WD_TOPIC_MAX_LEVELS];
            size_t ln[WD_TOPIC_MAX_LEVELS];
            nlv = wd_topic_split(t->text, t->len, ls, ln, WD_TOPIC_MAX_LEVELS);
            if (nlv < 0)
                return 0;
            for (int i = 0; i < nlv; i++)
                lv[i] =
                    (struct wd_req_level){ls[i], ln[i], NULL, wd_trie__level_hash(ls[i], ln[i])};
        } else {
            nlv = t->nlv;
            for (int i = 0; i < nlv; i++)
                lv[i] = (struct wd_req_level){t->lv[i].s, t->lv[i].len,
                                              t->lv[i].kind == WD_LV_TMPL ? t->lv[i].t : NULL,
                                              wd_trie__level_hash(t->lv[i].s, t->lv[i].len)};
        }
        bool overlaps = r->perm == WD_DECISION_DENY && (r->actions & WD_ACT_SUBSCRIBE) && !t->eq;
        struct wd_cand cands[256];
        /* an eq topic covers a request that is its text, not what a wildcard or placeholder
         * in r's topic reaches */
        bool literal = t->eq;
        if (!literal) {
            literal = true;
            for (int i = 0; i < t->nlv; i++)
                literal = literal && t->lv[i].kind == WD_LV_LITERAL;
        }
        int nc =
            wd_trie__collect(trie, lv, nlv, literal ? t->text : NULL, t->len, NULL, cands, 256);
        unsigned best = 0;
        for (int c = 0; c < nc && nc > 0; c++) {
            for (uint32_t k = 0; k < cands[c].n; k++) {
                const struct wd_rule *e = &p->rules[cands[c].rules[k]];
                if (e->idx >= r->idx || e->when || !ref_options_cover(e, r))
                    continue;
                bool e_eq = false;
                for (size_t i = 0; i < e->ntopics; i++)
                    e_eq = e_eq || e->topics[i].eq;
                if (overlaps && (e->perm != WD_DECISION_DENY || e_eq))
                    continue;
                bool source_before = false;
                for (size_t s = 0; s < p->nsources; s++)
                    if (p->sources[s] < e->idx)
                        source_before = true;
                if (source_before)
                    continue;
                if (!best || e->line < best)
                    best = e->line;
            }
        }
        if (!best)
            return 0;
        if (best > by)
            by = best;
    }
    return by;
}

/* Compiles src and checks that each rule's shadow warning (or its absence) is the
 * reference's. Returns the number of shadow warnings. */
static int shadow_warnings_match_the_reference(const char *src)
{
    struct wd_diags d;
    wd_diags_init(&d, "t.policy", src, strlen(src));
    struct wd_policy *p = NULL;
    if (wd_policy_compile(src, strlen(src), &d, &p) != WD_OK) {
        char *r = wd_diags_render(&d);
        fail_msg("does not compile:\n%s%s", src, r);
    }
    assert_false(d.truncated);
    struct wd_trie trie;
    wd_trie__init(&trie);
    int n = 0;
    for (size_t i = 0; i < p->nrules; i++) {
        const struct wd_rule *r = &p->rules[i];
        if (r->is_source)
            continue;
        /* what the compiler said about this rule's line */
        unsigned got = 0;
        bool dup = false;
        for (size_t k = 0; k < d.n; k++) {
            if (d.v[k].line != r->line)
                continue;
            unsigned by;
            if (sscanf(d.v[k].msg,
                       "rule can never match: every request it covers is decided first by the "
                       "rule at line %u",
                       &by) == 1)
                got = by;
            dup = dup || strncmp(d.v[k].msg, "duplicate of", 12) == 0;
        }
        unsigned want = dup ? 0 : ref_shadowed_by(p, &trie, r);
        if (got != want)
            fail_msg("line %u: shadowed by line %u, the reference says %u, in:\n%s", r->line, got,
                     want, src);
        n += got != 0;
        for (size_t t = 0; t < r->ntopics; t++)
            wd_trie__insert(&trie, &r->topics[t], r->idx);
    }
    wd_trie__free(&trie);
    wd_policy_release(p);
    wd_diags_cleanup(&d);
    return n;
}

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static const char *pick(uint64_t *x, const char *const *v, size_t n)
{
    return v[rng_next(x) % n];
}

/* One random rule (or rule source) line, valid, from a small vocabulary so that rules
 * often cover each other. */
static void random_rule(uint64_t *x, struct wd_buf *b)
{
    static const char *const levels[] = {"a", "b", "+", "${username}", "$SYS", "c", "+", "a"};
    static const char *const eqlevels[] = {"a", "b", "+", "#", "$SYS"};
    static const char *const qos[] = {"qos 0", "qos 1", "qos [0, 1]", "qos [1, 2]",
                                      "qos [0, 1, 2]"};
    if (rng_next(x) % 20 == 0) {
        wd_buf_puts(b, rng_next(x) % 2 ? "rules redis\n" : "rules jwt when username = \"s\"\n");
        return;
    }
    unsigned act = (unsigned)(rng_next(x) % 3);
    wd_buf_puts(b, rng_next(x) % 2 ? "allow " : "deny ");
    wd_buf_puts(b, act == 0 ? "publish" : act == 1 ? "subscribe" : "all");
    size_t ntopics = 1 + rng_next(x) % 3;
    wd_buf_puts(b, ntopics > 1 ? " [" : " ");
    for (size_t t = 0; t < ntopics; t++) {
        if (t)
            wd_buf_puts(b, ", ");
        bool eq = rng_next(x) % 6 == 0;
        wd_buf_puts(b, eq ? "eq \"" : "\"");
        size_t nl = 1 + rng_next(x) % 4;
        for (size_t l = 0; l < nl; l++) {
            if (l)
                wd_buf_puts(b, "/");
            if (eq)
                wd_buf_puts(b, pick(x, eqlevels, WD_ARRAY_LEN(eqlevels)));
            else if (l == nl - 1 && rng_next(x) % 3 == 0)
                wd_buf_puts(b, "#");
            else
                wd_buf_puts(b, pick(x, levels, WD_ARRAY_LEN(levels)));
        }
        wd_buf_puts(b, "\"");
    }
    if (ntopics > 1)
        wd_buf_puts(b, "]");
    if (rng_next(x) % 5 == 0) {
        wd_buf_puts(b, " ");
        wd_buf_puts(b, pick(x, qos, WD_ARRAY_LEN(qos)));
    }
    if (act != 1 && rng_next(x) % 6 == 0)
        wd_buf_puts(b, rng_next(x) % 2 ? " retain true" : " retain false");
    if (rng_next(x) % 3 == 0)
        wd_buf_puts(b, rng_next(x) % 2 ? " when username = \"u\"" : " when not anonymous");
    wd_buf_puts(b, "\n");
}

static void shadow_check_finds_what_the_quadratic_reference_finds(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    int warned = 0;
    for (int round = 0; round < 20000; round++) {
        struct wd_buf b = {0};
        wd_buf_put(&b, "", 0);
        size_t n = 1 + rng_next(&x) % 14;
        size_t starts[16];
        for (size_t i = 0; i < n; i++) {
            starts[i] = b.len;
            if (i && rng_next(&x) % 8 == 0) {
                /* repeat an earlier line: a duplicate, which is not also reported shadowed */
                size_t j = rng_next(&x) % i;
                const char *l = b.s + starts[j];
                size_t ll = (size_t)(strchr(l, '\n') - l) + 1;
                char line[512];
                memcpy(line, l, ll);
                wd_buf_put(&b, line, ll);
            } else {
                random_rule(&x, &b);
            }
        }
        warned += shadow_warnings_match_the_reference(b.s);
        wd_buf_free(&b);
    }
    /* the vocabulary makes shadowing common: the comparison is not vacuous */
    assert_true(warned > 2000);

    /* more than 256 candidate lists for one topic: no warning, as before (line 515) */
    struct wd_buf b = {0};
    wd_buf_puts(&b, "allow all \"q\"\ndeny all \"x/x/x/x/x/x/x/x/x\"\n");
    for (unsigned m = 0; m < 512; m++) {
        wd_buf_puts(&b, "allow all \"");
        for (unsigned l = 0; l < 9; l++)
            wd_buf_puts(&b, l ? (m >> l & 1 ? "/+" : "/x") : (m & 1 ? "+" : "x"));
        wd_buf_puts(&b, "\" when username = \"u\"\n");
    }
    wd_buf_puts(&b, "deny subscribe \"x/x/x/x/x/x/x/x/x\"\nallow publish \"q\"\n");
    /* lines 3 (the all-x rule of the 512) and 516 */
    assert_int_equal(shadow_warnings_match_the_reference(b.s), 2);
    wd_buf_free(&b);
}

/* Issue 8: a `user` line that does not lex or parse must not show its secret, in the
 * source line or in the message, whatever is wrong with it. */
static void broken_user_statements_never_show_their_secret(void **state)
{
    (void)state;
    static const char *const forms[] = {
        "user \"a\" \"plain:Zq9Secret\\q\"\n",                    /* bad escape */
        "user \"a\" \"plain:Zq9Secret\\xZZ\"\n",                  /* bad \x escape */
        "user \"a\" plain:Zq9Secret\n",                           /* unquoted */
        "user \"a\" Zq9Secret\n",                                 /* unquoted word */
        "usr \"a\" \"plain:Zq9Secret\"\n",                        /* typo */
        "uesr \"a\" \"plain:Zq9Secret\"\n",                       /* typo */
        "User \"a\" \"plain:Zq9Secret\"\n",                       /* case */
        "\"user\" \"a\" \"plain:Zq9Secret\"\n",                   /* quoted keyword */
        "user \"a\"\n  \"plain:Zq9Secret\"\n",                    /* on the next line */
        "user \"a\"\n\t\"plain:Zq9Secret\" superuser\n",          /* on the next line */
        "user \"a\" \"plain:Zq9Secret\n",                         /* unterminated */
        "user \"a\" \"plain:Zq9Secret",                           /* unterminated at the end */
        "user \"plain:Zq9Secret\"\n",                             /* no name */
        "user \"plain:Zq9Secret\" # no name\n",                   /* no name */
        "user \"a\" \"plain:Zq9Secret\" extra\n",                 /* extra tokens */
        "user \"a\" \"plain:x\" \"Zq9Secret\"\n",                 /* extra string */
        "user \"a\" \"plain:x\" superuser Zq9Secret\n",           /* extra word */
        "user \"a \"plain:Zq9Secret\"\n",                         /* unterminated name */
        "user \"a\" 99887766\n",                                  /* a number */
        "user \"a\" 99887766Zq9Secret\n",                         /* a malformed number */
        "user \"a\" \"plain:Zq9\\\"Secret\" x\n",                 /* an escaped quote */
        "user \"a\" [\"plain:Zq9Secret\",\n    \"Zq9Secret\"]\n", /* a list */
        "user \"a\" \"plain:Zq9Secret\xff\"\n",                   /* invalid UTF-8 */
        "user \"a\" plain:Zq9Secret\x01x\n",                      /* a control byte */
        "user \"a\" = \"plain:Zq9Secret\"\n",                     /* stray '=' */
    };
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        char src[256];
        snprintf(src, sizeof src, "authn users\n%sauthn default deny\n", forms[i]);
        struct wd_diags d;
        wd_diags_init(&d, "t.policy", src, strlen(src));
        struct wd_policy *p = NULL;
        int rc = wd_policy_compile(src, strlen(src), &d, &p);
        wd_policy_release(p);
        char *r = wd_diags_render(&d);
        wd_diags_cleanup(&d);
        if (rc == WD_OK || strstr(r, "Zq9") || strstr(r, "Secret") || strstr(r, "99887766"))
            fail_msg("form %zu (rc %d):\n%s\nrenders as:\n%s", i, rc, src, r);
        free(r);
    }
    /* other statements are shown as they are */
    char *r = diags_of("allow publish \"topic/a\" when username = \"x\" oops\n", WD_ESYNTAX);
    assert_non_null(strstr(r, "got 'oops'"));
    assert_non_null(strstr(r, "| allow publish \"topic/a\" when username = \"x\" oops"));
    free(r);
}

/* Tests files (WD_LEX_JSON): a '{' starts a raw JSON object token, to its matching '}' with
 * strings and nesting followed; policy files have no such token. */
static void json_tokens_only_where_asked_for(void **state)
{
    static const char src[] = "a {\"k\": \"}{\\\"\", \"l\": [1, {\"m\": 2}]} b\n"
                              "c {\"x\":\n   1} d\n"
                              "e {\"open\": 1\n"
                              "f";
    struct wd_diags d;
    wd_diags_init(&d, "t.tests", src, strlen(src));
    struct wd_arena a;
    wd_arena_init(&a);
    struct wd_tokens t;
    wd_lex_ex(src, strlen(src), &d, &a, &t, WD_LEX_JSON);
    assert_int_equal(t.v[1].kind, WD_TOK_JSON);
    assert_string_equal(t.v[1].text, "{\"k\": \"}{\\\"\", \"l\": [1, {\"m\": 2}]}");
    assert_int_equal(t.v[1].col, 3);
    assert_string_equal(t.v[2].text, "b");
    assert_int_equal(t.v[3].kind, WD_TOK_NEWLINE);
    assert_int_equal(t.v[5].kind, WD_TOK_JSON); /* continues on an indented line */
    assert_int_equal(t.v[5].line, 2);
    assert_string_equal(t.v[5].text, "{\"x\":\n   1}");
    assert_string_equal(t.v[6].text, "d");
    assert_int_equal(t.v[6].line, 3);
    /* a line starting with a word ends an unterminated object */
    assert_int_equal(t.v[9].kind, WD_TOK_ERROR);
    assert_int_equal(d.nerrors, 1);
    char *r = wd_diags_render(&d);
    assert_non_null(strstr(r, "t.tests:4:3: error: unterminated JSON object"));
    free(r);
    assert_string_equal(t.v[11].text, "f");
    wd_tokens_free(&t);
    wd_diags_cleanup(&d);
    wd_arena_free(&a);
    /* a policy file: '{' is an unexpected character, as before */
    r = diags_of("allow publish {\"a\": 1}\n", WD_ESYNTAX);
    assert_non_null(strstr(r, "t.policy:1:15: error: unexpected character '{'"));
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
    /* a line that starts with no keyword may be a broken `user` line: masked */
    assert_non_null(strstr(r, "unexpected character '***'"));
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

/* ---- claims ---- */

struct claims {
    const char *names[4];
    const char *values[4];
};

static const char *claim_of(const void *ctx, const char *name, size_t len)
{
    const struct claims *cl = ctx;
    for (int i = 0; i < 4 && cl->names[i]; i++)
        if (strlen(cl->names[i]) == len && memcmp(cl->names[i], name, len) == 0)
            return cl->values[i];
    return NULL;
}

static void claims_render_through_the_client_callback(void **state)
{
    struct wd_policy *p = compile_ok("allow all \"t/${claim.tenant}/${clientid}/#\"\n"
                                     "allow subscribe \"g/${claim.group}-x\"\n"
                                     "allow publish \"${claim.tenant}/+\"\n");
    assert_true(wd_policy_uses_claims(p));
    struct wd_client c = client("u", "dev1");
    /* no claim function: a claim has no value */
    assert_int_equal(az(p, &c, PUB, "t/acme/dev1/x", NULL), WD_DECISION_DENY);
    struct claims cl = {{"tenant", "group"}, {"acme", "blue"}};
    c.claim = claim_of;
    c.claim_ctx = &cl;
    unsigned line;
    assert_int_equal(az(p, &c, PUB, "t/acme/dev1/x", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 1);
    assert_int_equal(az(p, &c, SUB, "t/acme/dev1/#", NULL), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, PUB, "t/other/dev1/x", NULL), WD_DECISION_DENY);
    assert_int_equal(az(p, &c, SUB, "g/blue-x", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 2);
    assert_int_equal(az(p, &c, SUB, "g/blue", NULL), WD_DECISION_DENY);
    assert_int_equal(az(p, &c, PUB, "acme/z", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 3);
    /* an absent claim, an empty one, or one that would widen the rule never matches */
    const char *bad[] = {NULL, "", "a/b", "+", "#", "x#"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct claims b = {{"tenant"}, {bad[i]}};
        c.claim_ctx = &b;
        assert_int_equal(az(p, &c, PUB, "t/a/b/dev1/x", NULL), WD_DECISION_DENY);
        assert_int_equal(az(p, &c, SUB, "t/+/dev1/x", NULL), WD_DECISION_DENY);
        assert_int_equal(az(p, &c, SUB, "t/#", NULL), WD_DECISION_DENY);
        assert_int_equal(az(p, &c, PUB, "t//dev1/x", NULL), WD_DECISION_DENY);
        assert_int_equal(az(p, &c, PUB, "t/x#/dev1/x", NULL), WD_DECISION_DENY);
    }
    /* a first-level placeholder never reaches a $-topic, whatever the claim */
    struct claims dollar = {{"tenant"}, {"$SYS"}};
    c.claim_ctx = &dollar;
    assert_int_equal(az(p, &c, PUB, "$SYS/x", NULL), WD_DECISION_DENY);
    wd_policy_release(p);

    p = compile_ok("allow all \"t/${username}/#\"\nallow publish eq \"${claim.x}\"\n");
    assert_false(wd_policy_uses_claims(p)); /* eq topics have no placeholders */
    wd_policy_release(p);
}

/* A client that leaves out a value (no username, no certificate, a claim its token lacks)
 * must not gain by it: `not` of a comparison with the missing value is unknown, not true,
 * so an allow rule never applies and a deny rule always does, in both evaluators and in
 * the authentication chain. Before, `not cn = "${clientid}"` was true without a
 * certificate and the allow below let such a client publish. */
static void a_missing_value_never_makes_an_allow_apply_nor_keeps_a_deny_from_applying(void **state)
{
    (void)state;
    struct wd_policy *p = compile_ok("allow publish \"a/#\" when not cn = \"${clientid}\"\n"
                                     "deny  all \"b/#\" when clientid = \"${username}-x\"\n"
                                     "deny  all \"c/#\" when not (cn = \"${username}\" or "
                                     "clientid = \"gw\")\n"
                                     "allow all \"#\"\n");
    unsigned line;
    struct wd_client c = client("alice", "dev-1"); /* no certificate: cn is "" */
    assert_int_equal(az(p, &c, PUB, "a/1", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 4); /* rule 1 does not apply: the cn is missing */
    c.cn = "other";
    assert_int_equal(az(p, &c, PUB, "a/1", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 1); /* a cn that differs: not equal, the allow applies */
    c.cn = "dev-1";
    assert_int_equal(az(p, &c, PUB, "a/1", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 4);
    /* a deny rule whose comparison lacks the username applies (fail closed) */
    c = client("", "-x");
    assert_int_equal(az(p, &c, SUB, "b/1", &line), WD_DECISION_DENY);
    assert_int_equal(line, 2);
    c = client("bob", "bob-y");
    assert_int_equal(az(p, &c, SUB, "b/1", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 4);
    /* or with a true side is true whatever the other; not (unknown or false) is unknown:
     * the deny applies */
    c = client("bob", "gw");
    assert_int_equal(az(p, &c, PUB, "c/1", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 4);
    c = client("bob", "dev-2");
    assert_int_equal(az(p, &c, PUB, "c/1", &line), WD_DECISION_DENY);
    assert_int_equal(line, 3);
    wd_policy_release(p);

    /* the authentication chain: a step that admits does not run on an unknown condition,
     * one that denies does */
    p = compile_ok("authn deny  when clientid = \"evil-${username}\"\n"
                   "authn allow when not cn = \"${clientid}\"\n"
                   "authn default allow\n");
    c = client("", "evil-");
    assert_int_equal(wd_policy_step_when(p, wd_policy_step(p, 0), &c), 1);
    c = client("alice", "dev-1");
    assert_int_equal(wd_policy_step_when(p, wd_policy_step(p, 0), &c), 0);
    assert_int_equal(wd_policy_step_when(p, wd_policy_step(p, 1), &c), 0); /* no cn */
    c.cn = "x";
    assert_int_equal(wd_policy_step_when(p, wd_policy_step(p, 1), &c), 1);
    assert_int_equal(wd_policy_nsteps(p), 2); /* `authn default` is not a step */
    wd_policy_release(p);
    /* a step that checks a credential runs, and only its refusal applies */
    p = compile_ok("authn users when not cn = \"${clientid}\"\n"
                   "authn jwt when not cn = \"${clientid}\"\n"
                   "authn redis when not cn = \"${clientid}\"\n");
    c = client("alice", "dev-1");
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(wd_policy_step_when(p, wd_policy_step(p, i), &c),
                         WD_POLICY_WHEN_DENY_ONLY);
    c.cn = "dev-1";
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(wd_policy_step_when(p, wd_policy_step(p, i), &c), 0);
    wd_policy_release(p);
}

static void conditions_compare_a_field_with_a_placeholder(void **state)
{
    struct wd_policy *p =
        compile_ok("allow publish \"a\" when clientid = \"${username}\"\n"
                   "allow publish \"b\" when username in [\"x\", \"t-${claim.t}\"]\n"
                   "allow publish \"c\" when cn = \"${username}\"\n"
                   "allow publish \"d\" when username = \"$${username}\"\n"
                   "deny  publish \"e\" when not clientid = \"${username}\"\n"
                   "allow publish \"e\"\n");
    assert_true(wd_policy_uses_claims(p)); /* a claim in a condition binds claims too */
    unsigned line;
    struct wd_client c = client("alice", "alice");
    assert_int_equal(az(p, &c, PUB, "a", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 1);
    assert_int_equal(az(p, &c, PUB, "e", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 6);
    c = client("alice", "alice2");
    assert_int_equal(az(p, &c, PUB, "a", NULL), WD_DECISION_DENY);
    assert_int_equal(az(p, &c, PUB, "e", &line), WD_DECISION_DENY);
    assert_int_equal(line, 5);
    /* empty values never equal each other: an anonymous client without a certificate */
    c = client("", "");
    assert_int_equal(az(p, &c, PUB, "a", NULL), WD_DECISION_DENY);
    assert_int_equal(az(p, &c, PUB, "c", NULL), WD_DECISION_DENY);
    /* the values are text: a wildcard in them means nothing, a prefix must match */
    c = client("#", "#");
    assert_int_equal(az(p, &c, PUB, "a", NULL), WD_DECISION_ALLOW);
    c = client("alice", "#");
    assert_int_equal(az(p, &c, PUB, "a", NULL), WD_DECISION_DENY);
    /* claims: absent, empty, or different never match */
    c = client("t-acme", "c");
    assert_int_equal(az(p, &c, PUB, "b", NULL), WD_DECISION_DENY);
    struct claims cl = {{"t"}, {"acme"}};
    c.claim = claim_of;
    c.claim_ctx = &cl;
    assert_int_equal(az(p, &c, PUB, "b", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 2);
    struct claims empty = {{"t"}, {""}};
    c = client("t-", "c");
    c.claim = claim_of;
    c.claim_ctx = &empty;
    assert_int_equal(az(p, &c, PUB, "b", NULL), WD_DECISION_DENY);
    /* $${ is a literal ${ */
    c = client("${username}", "c");
    assert_int_equal(az(p, &c, PUB, "d", NULL), WD_DECISION_ALLOW);
    c = client("alice", "c");
    assert_int_equal(az(p, &c, PUB, "d", NULL), WD_DECISION_DENY);
    wd_policy_release(p);

    /* refused: a placeholder in a regex, an unknown one, a claim while authenticating */
    char *r = diags_of("allow publish \"a\" when username ~ \"x${clientid}\"\n", WD_ESYNTAX);
    assert_non_null(strstr(r, "t.policy:1:35: error: a regular expression cannot hold a "
                              "placeholder"));
    free(r);
    r = diags_of("allow publish \"a\" when username = \"${peer}\"\n", WD_ESYNTAX);
    assert_non_null(strstr(r, "t.policy:1:35: error: unknown placeholder '${peer}'"));
    free(r);
    r = diags_of("authn allow when username in [\"a\", \"${claim.sub}\"]\n", WD_ESYNTAX);
    assert_non_null(strstr(r, "t.policy:1:36: error: '${claim.sub}' is unknown while "
                              "authenticating"));
    free(r);
}

static void cert_common_name_is_an_alias_of_cn(void **state)
{
    struct wd_policy *p = compile_ok("allow publish \"a/${cert_common_name}\"\n"
                                     "allow publish \"b/${cn}-${cert_common_name}\"\n");
    struct wd_client c = client("u", "c");
    assert_int_equal(az(p, &c, PUB, "a/", NULL), WD_DECISION_DENY);
    c.cn = "gw1";
    assert_int_equal(az(p, &c, PUB, "a/gw1", NULL), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, PUB, "b/gw1-gw1", NULL), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, PUB, "a/gw2", NULL), WD_DECISION_DENY);
    wd_policy_release(p);
}

/* ---- rule sources ---- */

/* A stand-in for the engine. Mode TOPIC decides by the topic's last level; mode HASH by a
 * hash of the request and the source. Every call is counted and folded into a trace, so
 * two evaluators can be checked to ask the same sources in the same order. */
enum fake_mode { FAKE_TOPIC, FAKE_HASH };

struct fake {
    enum fake_mode mode;
    unsigned calls;
    unsigned per_source[2];
    uint64_t trace;
};

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static int fake_eval(void *ctx, enum wd_source s, const struct wd_authz_req *req,
                     struct wd_policy_result *out)
{
    struct fake *f = ctx;
    assert_int_equal(out->decision, WD_DECISION_DENY); /* fail closed until told otherwise */
    f->calls++;
    f->per_source[s]++;
    f->trace = f->trace * 1000003u + (uint64_t)s + 1;
    if (f->mode == FAKE_HASH) {
        uint64_t h = fnv(1469598103934665603ULL, req->topic, req->topic_len);
        h = fnv(h, req->client.username, strlen(req->client.username));
        h = (h ^ (uint64_t)s ^ ((uint64_t)req->action << 8)) * 0x9e3779b97f4a7c15ULL;
        switch ((h >> 40) % 6) {
        case 0:
            out->decision = WD_DECISION_ALLOW;
            return 1;
        case 1:
            out->decision = WD_DECISION_DENY;
            return 1;
        default:
            return 0;
        }
    }
    const char *last = strrchr(req->topic, '/');
    last = last ? last + 1 : req->topic;
    if (strcmp(last, "allow") == 0) {
        out->decision = WD_DECISION_ALLOW;
        return 1;
    }
    if (strcmp(last, "deny") == 0) {
        out->decision = WD_DECISION_DENY;
        return 1;
    }
    if (strcmp(last, "down") == 0)
        return 1; /* a backend failure: out left as DENY */
    if (strcmp(last, "weird") == 0) {
        out->decision = WD_DECISION_ALLOW;
        return -5; /* not 0 or 1: denied whatever out says */
    }
    if (strcmp(last, "nomatch") == 0) {
        out->decision = WD_DECISION_NOMATCH;
        return 1; /* decided, but neither allow nor deny: denied */
    }
    return 0;
}

struct trail {
    char text[2048];
};

static void on_explain(void *ctx, unsigned line, bool decided, const char *why)
{
    struct trail *t = ctx;
    size_t n = strlen(t->text);
    snprintf(t->text + n, sizeof t->text - n, "%u%s %s\n", line, decided ? "!" : "", why);
}

/* Decides with the trie, the linear scan and explain, all with sources; checks they agree
 * on everything, including which sources they asked, in which order. */
static struct wd_policy_result az_src(const struct wd_policy *p, const struct wd_client *c,
                                      enum wd_action a, const char *topic, enum fake_mode mode,
                                      struct fake *calls, struct trail *trail)
{
    struct wd_authz_req r = {.client = *c,
                             .action = a,
                             .topic = topic,
                             .topic_len = strlen(topic),
                             .qos = -1,
                             .retain = -1};
    struct fake ft = {.mode = mode}, fl = {.mode = mode}, fe = {.mode = mode};
    struct wd_policy_sources st = {fake_eval, &ft}, sl = {fake_eval, &fl}, se = {fake_eval, &fe};
    struct wd_policy_result t, l, e;
    memset(&t, 0x5a, sizeof t);
    memset(&l, 0xa5, sizeof l);
    wd_policy_authorize_src(p, &r, &st, &t);
    wd_policy_authorize_linear_src(p, &r, &sl, &l);
    struct trail local = {""};
    wd_policy_explain_authorize_src(p, &r, &se, on_explain, trail ? trail : &local, &e);
    assert_int_equal(t.decision, l.decision);
    assert_int_equal(t.line, l.line);
    assert_int_equal(t.by_default, l.by_default);
    assert_int_equal(t.by_source, l.by_source);
    assert_int_equal(e.decision, l.decision);
    assert_int_equal(e.line, l.line);
    assert_int_equal(e.by_default, l.by_default);
    assert_int_equal(e.by_source, l.by_source);
    assert_int_equal(ft.calls, fl.calls);
    assert_true(ft.trace == fl.trace);
    assert_true(fe.trace == fl.trace);
    if (calls)
        *calls = ft;
    return t;
}

/* Found by tests/fuzz/fuzz_policy (UBSan: a bool holding 110): a source's decision left
 * bad_topic as the caller's uninitialized stack, and the engine reads it for the reason. */
static void a_source_decision_sets_every_result_field(void **state)
{
    struct wd_policy *p = compile_ok("rules redis\n");
    struct wd_client c = client("u", "c");
    struct wd_authz_req r = {
        .client = c, .action = PUB, .topic = "t/allow", .topic_len = 7, .qos = -1, .retain = -1};
    struct fake f = {.mode = FAKE_TOPIC};
    struct wd_policy_sources src = {fake_eval, &f};
    struct wd_policy_result t, l;
    memset(&t, 1, sizeof t); /* every bool true: what stale stack could hold */
    memset(&l, 1, sizeof l);
    wd_policy_authorize_src(p, &r, &src, &t);
    wd_policy_authorize_linear_src(p, &r, &src, &l);
    assert_int_equal(t.decision, WD_DECISION_ALLOW);
    assert_true(t.by_source);
    assert_false(t.by_default);
    assert_false(t.bad_topic);
    assert_int_equal(l.decision, WD_DECISION_ALLOW);
    assert_false(l.bad_topic);
    wd_policy_release(p);
}

static void sources_are_consulted_in_rule_order(void **state)
{
    struct wd_policy *p = compile_ok("allow publish \"a/#\"\n"
                                     "rules redis\n"
                                     "deny all \"#\"\n");
    assert_true(wd_policy_has_source(p, WD_SOURCE_REDIS));
    assert_false(wd_policy_has_source(p, WD_SOURCE_JWT));
    struct wd_client c = client("u", "c");
    struct fake f;
    /* the rule before the splice point decides without asking the source */
    struct wd_policy_result r = az_src(p, &c, PUB, "a/deny", FAKE_TOPIC, &f, NULL);
    assert_int_equal(r.decision, WD_DECISION_ALLOW);
    assert_int_equal(r.line, 1);
    assert_false(r.by_source);
    assert_int_equal(f.calls, 0);
    /* then the source */
    r = az_src(p, &c, SUB, "a/allow", FAKE_TOPIC, &f, NULL);
    assert_int_equal(r.decision, WD_DECISION_ALLOW);
    assert_int_equal(r.line, 2);
    assert_true(r.by_source);
    assert_false(r.by_default);
    assert_int_equal(f.per_source[WD_SOURCE_REDIS], 1);
    r = az_src(p, &c, PUB, "b/deny", FAKE_TOPIC, &f, NULL);
    assert_int_equal(r.decision, WD_DECISION_DENY);
    assert_int_equal(r.line, 2);
    assert_true(r.by_source);
    /* nothing to say: the next rule */
    r = az_src(p, &c, PUB, "b/other", FAKE_TOPIC, &f, NULL);
    assert_int_equal(r.decision, WD_DECISION_DENY);
    assert_int_equal(r.line, 3);
    assert_false(r.by_source);
    assert_int_equal(f.calls, 1);
    /* fail closed: a backend failure, a strange return value, a strange decision */
    const char *closed[] = {"b/down", "b/weird", "b/nomatch"};
    for (int i = 0; i < 3; i++) {
        r = az_src(p, &c, PUB, closed[i], FAKE_TOPIC, &f, NULL);
        assert_int_equal(r.decision, WD_DECISION_DENY);
        assert_int_equal(r.line, 2);
        assert_true(r.by_source);
    }
    /* without sources (the tools): the splice point never matches */
    struct wd_authz_req q = {
        .client = c, .action = PUB, .topic = "b/allow", .topic_len = 7, .qos = -1, .retain = -1};
    struct wd_policy_result t, l;
    wd_policy_authorize(p, &q, &t);
    wd_policy_authorize_linear(p, &q, &l);
    assert_int_equal(t.line, 3);
    assert_int_equal(l.line, 3);
    assert_false(t.by_source);
    wd_policy_release(p);

    /* only sources, no rules: the sources run out, then the default */
    p = compile_ok("rules jwt\nrules redis\nauthz default nomatch\n");
    r = az_src(p, &c, PUB, "x", FAKE_TOPIC, &f, NULL);
    assert_int_equal(r.decision, WD_DECISION_NOMATCH);
    assert_true(r.by_default);
    assert_int_equal(r.line, 3);
    assert_true(f.trace == ((uint64_t)WD_SOURCE_JWT + 1) * 1000003u + WD_SOURCE_REDIS + 1);
    r = az_src(p, &c, PUB, "x/allow", FAKE_TOPIC, &f, NULL);
    assert_int_equal(r.line, 1);
    assert_int_equal(f.calls, 1);
    wd_policy_release(p);
}

static void source_conditions_are_evaluated_first(void **state)
{
    struct wd_policy *p = compile_ok("rules redis when username = \"u1\"\n"
                                     "rules jwt when username ~ \"(a|a)*(b|c)\"\n"
                                     "allow all \"#\"\n");
    struct wd_client c = client("u2", "c");
    struct fake f;
    struct trail tr = {""};
    struct wd_policy_result r = az_src(p, &c, PUB, "x/deny", FAKE_TOPIC, &f, &tr);
    assert_int_equal(r.decision, WD_DECISION_ALLOW);
    assert_int_equal(r.line, 3);
    assert_int_equal(f.calls, 0); /* neither condition held: no source asked */
    assert_string_equal(tr.text, "1 condition is false\n2 condition is false\n3! matches\n");
    c = client("u1", "c");
    memset(&tr, 0, sizeof tr);
    r = az_src(p, &c, PUB, "x/deny", FAKE_TOPIC, &f, &tr);
    assert_int_equal(r.decision, WD_DECISION_DENY);
    assert_int_equal(r.line, 1);
    assert_string_equal(tr.text, "1! the source denies\n");
    memset(&tr, 0, sizeof tr);
    r = az_src(p, &c, PUB, "x/allow", FAKE_TOPIC, &f, &tr);
    assert_string_equal(tr.text, "1! the source allows\n");
    memset(&tr, 0, sizeof tr);
    r = az_src(p, &c, PUB, "x/y", FAKE_TOPIC, &f, &tr);
    assert_string_equal(tr.text, "1 source has no matching entry\n2 condition is false\n"
                                 "3! matches\n");
    /* a condition that cannot be evaluated denies at the splice point, source not asked */
    char user[64];
    memset(user, 'a', 40);
    strcpy(user + 40, "d");
    c.username = user;
    memset(&tr, 0, sizeof tr);
    r = az_src(p, &c, PUB, "x/allow", FAKE_TOPIC, &f, &tr);
    assert_int_equal(r.decision, WD_DECISION_DENY);
    assert_int_equal(r.line, 2);
    assert_false(r.by_source);
    assert_int_equal(f.calls, 0);
    assert_non_null(strstr(tr.text, "2! condition could not be evaluated"));
    /* explain without sources says none was consulted */
    struct wd_authz_req q = {.client = client("u1", "c"),
                             .action = PUB,
                             .topic = "x",
                             .topic_len = 1,
                             .qos = -1,
                             .retain = -1};
    memset(&tr, 0, sizeof tr);
    wd_policy_explain_authorize(p, &q, on_explain, &tr, &r);
    assert_non_null(strstr(tr.text, "1 rule source not consulted"));
    wd_policy_release(p);
}

/* A source's condition that compares a value the client does not have (unknown): the source
 * is consulted and only its deny applies, never its allow. Skipped (before), a client that
 * dropped its certificate escaped what the source denies a client with another's certificate:
 * a missing value kept a deny from applying. */
static void an_unknown_source_condition_lets_only_a_deny_apply(void **state)
{
    struct wd_policy *p = compile_ok("rules jwt when not cn = \"${clientid}\"\n"
                                     "allow all \"#\"\n");
    struct wd_client c = client("u", "c1");
    struct fake f;
    struct trail tr = {""};
    /* another's certificate: the condition holds, the source denies */
    c.cn = "c2";
    struct wd_policy_result r = az_src(p, &c, PUB, "x/deny", FAKE_TOPIC, &f, NULL);
    assert_int_equal(r.decision, WD_DECISION_DENY);
    assert_int_equal(r.line, 1);
    /* no certificate: unknown; the deny applies all the same */
    c.cn = "";
    r = az_src(p, &c, PUB, "x/deny", FAKE_TOPIC, &f, &tr);
    assert_int_equal(r.decision, WD_DECISION_DENY);
    assert_int_equal(r.line, 1);
    assert_true(r.by_source);
    assert_int_equal(f.calls, 1);
    assert_non_null(strstr(tr.text, "1! condition compares a value the client does not have: "
                                    "the source denies"));
    /* fail closed stays closed: a backend failure, a strange return or decision */
    const char *closed[] = {"x/down", "x/weird", "x/nomatch"};
    for (int i = 0; i < 3; i++) {
        r = az_src(p, &c, PUB, closed[i], FAKE_TOPIC, &f, NULL);
        assert_int_equal(r.decision, WD_DECISION_DENY);
        assert_int_equal(r.line, 1);
    }
    /* its allow does not apply: the next rule decides (here: allows anyway, line 2) */
    memset(&tr, 0, sizeof tr);
    r = az_src(p, &c, PUB, "x/allow", FAKE_TOPIC, &f, &tr);
    assert_int_equal(r.line, 2);
    assert_false(r.by_source);
    assert_non_null(strstr(tr.text, "1 condition compares a value the client does not have: "
                                    "the source allows, which does not apply"));
    wd_policy_release(p);
    /* an allow after a deny-all: the source's allow must not admit an unknown client */
    p = compile_ok("rules jwt when not cn = \"${clientid}\"\ndeny all \"#\"\n");
    r = az_src(p, &c, PUB, "x/allow", FAKE_TOPIC, &f, NULL);
    assert_int_equal(r.decision, WD_DECISION_DENY);
    assert_int_equal(r.line, 2);
    c.cn = "c2";
    r = az_src(p, &c, PUB, "x/allow", FAKE_TOPIC, &f, NULL);
    assert_int_equal(r.decision, WD_DECISION_ALLOW);
    assert_int_equal(r.line, 1);
    wd_policy_release(p);
}

static void has_source_and_authn_steps(void **state)
{
    struct wd_policy *p = compile_ok("authn users\nauthn jwt when not anonymous\n"
                                     "allow all \"a\"\nrules jwt\n");
    assert_true(wd_policy_has_authn_step(p, WD_STEP_USERS));
    assert_true(wd_policy_has_authn_step(p, WD_STEP_JWT));
    assert_false(wd_policy_has_authn_step(p, WD_STEP_REDIS));
    assert_false(wd_policy_has_authn_step(p, WD_STEP_DEFAULT));
    assert_true(wd_policy_has_source(p, WD_SOURCE_JWT));
    assert_false(wd_policy_has_source(p, WD_SOURCE_REDIS));
    assert_false(wd_policy_uses_claims(p));
    wd_policy_release(p);
    p = compile_ok("authn redis\nauthn default nomatch\n");
    assert_true(wd_policy_has_authn_step(p, WD_STEP_REDIS));
    assert_true(wd_policy_has_authn_step(p, WD_STEP_DEFAULT));
    assert_false(wd_policy_has_source(p, WD_SOURCE_REDIS));
    wd_policy_release(p);
}

static void credential_store_hooks_compile_without_warnings(void **state)
{
    char *r = diags_of("authn redis\nauthn jwt when not anonymous\nauthn default deny\n"
                       "rules redis\nrules jwt when clientid ~ \"dev-.*\"\n"
                       "allow all \"t/${claim.tenant}/#\"\n",
                       WD_OK);
    assert_string_equal(r, "");
    free(r);
}

static void trie_agrees_with_linear_scan_with_random_sources(void **state)
{
    struct wd_policy *p = compile_ok("deny publish \"a/b/c\"\n"
                                     "rules redis\n"
                                     "allow subscribe \"a/+/c\"\n"
                                     "allow publish \"a/#\" when username = \"u1\"\n"
                                     "rules jwt when clientid = \"c1\"\n"
                                     "deny all \"+/b/#\"\n"
                                     "allow all \"${username}/+/x\"\n"
                                     "rules redis when username ~ \"u[0-9]\"\n"
                                     "allow subscribe eq \"a/#\"\n"
                                     "allow all \"b/${clientid}\"\n"
                                     "allow all \"c/${claim.t}/#\"\n"
                                     "deny all \"#\" when clientid = \"c2\"\n"
                                     "allow publish \"$SYS/+\"\n"
                                     "rules jwt\n"
                                     "allow all \"+\"\n"
                                     "rules redis\n"
                                     "authz default nomatch\n");
    const char *levels[] = {"a", "b", "c", "x", "u1", "c1", "+", "#", "$SYS", ""};
    const char *users[] = {"u1", "u2", "a", ""};
    const char *cids[] = {"c1", "c2", "b"};
    struct claims cl = {{"t"}, {"x"}};
    unsigned seed = 3, by_source = 0, decided[3] = {0};
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
        if (seed & 2) {
            c.claim = claim_of;
            c.claim_ctx = &cl;
        }
        struct wd_policy_result r =
            az_src(p, &c, (seed & 1) ? PUB : SUB, topic, FAKE_HASH, NULL, NULL);
        by_source += r.by_source;
        decided[r.decision]++;
    }
    /* the sample exercised sources deciding and not, and every outcome */
    assert_true(by_source > 1000 && by_source < 15000);
    assert_true(decided[WD_DECISION_NOMATCH] > 100);
    assert_true(decided[WD_DECISION_ALLOW] > 1000 && decided[WD_DECISION_DENY] > 1000);
    wd_policy_release(p);
}

/* ---- deny rules and wider subscriptions (issue 8) ---- */

static void deny_rules_stop_subscriptions_that_overlap_them(void **state)
{
    struct wd_policy *p = compile_ok("deny subscribe \"secrets/#\"\n"
                                     "allow subscribe \"#\"\n"
                                     "authz default deny\n");
    struct wd_client c = client("u", "c");
    unsigned line;
    const char *denied[] = {"#", "+/db-password", "secrets/#", "+", "+/+", "secrets", "+/#"};
    for (size_t i = 0; i < sizeof denied / sizeof *denied; i++) {
        assert_int_equal(az(p, &c, SUB, denied[i], &line), WD_DECISION_DENY);
        assert_int_equal(line, 1);
    }
    assert_int_equal(az(p, &c, SUB, "other/x", &line), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, SUB, "other/#", &line), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, SUB, "+/x/y", &line), WD_DECISION_DENY); /* secrets/x/y */
    assert_int_equal(line, 1);
    wd_policy_release(p);

    /* placeholders: alice's own topic is denied through any wildcard that reaches it; a
     * client whose value cannot render is denied the wildcards too (fail closed), and a
     * publish (a topic name) is unchanged */
    p = compile_ok("deny subscribe \"users/${username}/private\"\n"
                   "allow all \"users/#\"\n");
    c = client("alice", "c");
    assert_int_equal(az(p, &c, SUB, "users/+/private", &line), WD_DECISION_DENY);
    assert_int_equal(az(p, &c, SUB, "users/#", &line), WD_DECISION_DENY);
    assert_int_equal(az(p, &c, SUB, "users/bob/private", &line), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, SUB, "users/+/public", &line), WD_DECISION_ALLOW);
    const char *unrenderable[] = {"", "a/b", "+", "#"};
    for (size_t i = 0; i < 4; i++) {
        c = client(unrenderable[i], "c");
        assert_int_equal(az(p, &c, SUB, "users/+/private", &line), WD_DECISION_DENY);
        assert_int_equal(az(p, &c, SUB, "users/bob/private", &line), WD_DECISION_ALLOW);
    }
    wd_policy_release(p);

    /* allow rules still need coverage; deny publish rules are unchanged; eq is literal;
     * '#' does not receive $-topics */
    p = compile_ok("deny publish \"p/#\"\n"
                   "deny subscribe eq \"e/#\"\n"
                   "deny subscribe \"$SYS/#\"\n"
                   "allow subscribe \"a/+\"\n"
                   "allow subscribe [\"#\", \"$SYS/#\"]\n");
    c = client("u", "c");
    assert_int_equal(az(p, &c, SUB, "#", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 5);
    assert_int_equal(az(p, &c, SUB, "e/#", &line), WD_DECISION_DENY);
    assert_int_equal(az(p, &c, SUB, "e/+", &line), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, SUB, "$SYS/+", &line), WD_DECISION_DENY);
    assert_int_equal(line, 3);
    assert_int_equal(az(p, &c, SUB, "a/#", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 5);
    wd_policy_release(p);
}

/* A malformed topic is what an attacker would send to find a reading of "covers" wider than
 * the rule's author meant: "secrets/#/x" is no filter, "a/+" no topic name. Denied before any
 * rule, by every evaluator, even under `allow all "#"`. */
static void malformed_request_topics_are_denied_before_any_rule(void **state)
{
    struct wd_policy *p = compile_ok("deny subscribe \"secrets/#\"\n"
                                     "allow all \"#\"\n"
                                     "authz default allow\n");
    struct wd_client c = client("u", "c");
    unsigned line = 99;
    const char *bad_filters[] = {"#/", "a/#/b", "secrets/#/x", "a+", "a/b#", "+a/b", "", "#/#"};
    for (size_t i = 0; i < sizeof bad_filters / sizeof *bad_filters; i++) {
        assert_int_equal(az(p, &c, SUB, bad_filters[i], &line), WD_DECISION_DENY);
        assert_int_equal(line, 0);
    }
    const char *bad_names[] = {"a/+", "#", "a/#", "+", "a/b+", ""};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        assert_int_equal(az(p, &c, PUB, bad_names[i], &line), WD_DECISION_DENY);
        assert_int_equal(line, 0);
    }
    /* valid ones still reach the rules, including empty levels */
    assert_int_equal(az(p, &c, SUB, "a//b", &line), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, SUB, "/", &line), WD_DECISION_ALLOW);
    assert_int_equal(az(p, &c, PUB, "a/b", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 2);

    struct wd_authz_req r = {
        .client = c, .action = SUB, .topic = "a/#/b", .topic_len = 5, .qos = -1, .retain = -1};
    struct wd_policy_result res;
    wd_policy_authorize(p, &r, &res);
    assert_true(res.bad_topic);
    struct trail tr = {""};
    wd_policy_explain_authorize(p, &r, on_explain, &tr, &res);
    assert_int_equal(res.decision, WD_DECISION_DENY);
    assert_true(res.bad_topic);
    assert_non_null(strstr(tr.text, "not a valid MQTT topic"));
    r.topic = "a/b";
    r.topic_len = 3;
    wd_policy_authorize(p, &r, &res);
    assert_false(res.bad_topic);
    wd_policy_release(p);
}

static void explain_says_a_deny_rule_overlaps(void **state)
{
    struct wd_policy *p = compile_ok("deny subscribe \"secrets/#\"\n"
                                     "allow subscribe \"#\"\n");
    struct wd_client c = client("u", "c");
    struct wd_authz_req q = {
        .client = c, .action = SUB, .topic = "+/db-password", .topic_len = 13, .qos = -1};
    struct trail tr = {""};
    struct wd_policy_result r;
    wd_policy_explain_authorize(p, &q, on_explain, &tr, &r);
    assert_int_equal(r.decision, WD_DECISION_DENY);
    assert_non_null(strstr(tr.text, "1! overlaps: the subscription can receive topics this deny "
                                    "rule denies"));
    q.topic = "other/x";
    q.topic_len = 7;
    tr.text[0] = '\0';
    wd_policy_explain_authorize(p, &q, on_explain, &tr, &r);
    assert_non_null(strstr(tr.text, "1 topic does not overlap the subscription"));
    assert_non_null(strstr(tr.text, "2! matches"));
    wd_policy_release(p);
}

static void trie_agrees_with_linear_scan_on_overlapping_deny_rules(void **state)
{
    struct wd_policy *p = compile_ok("deny subscribe \"a/b/#\"\n"
                                     "rules redis\n"
                                     "allow subscribe \"a/+/c\"\n"
                                     "deny all \"x/${username}/+\" when clientid = \"c1\"\n"
                                     "deny subscribe \"$SYS/x\"\n"
                                     "deny subscribe eq \"b/#\"\n"
                                     "allow all \"${username}/+/x\"\n"
                                     "deny subscribe [\"+/c\", \"c/${clientid}/#\"]\n"
                                     "deny subscribe \"#\" when username = \"u2\"\n"
                                     "allow subscribe \"$SYS/#\"\n"
                                     "deny subscribe \"${username}\"\n"
                                     "allow all \"#\"\n"
                                     "authz default nomatch\n");
    const char *levels[] = {"a", "b", "c", "x", "u1", "c1", "+", "#", "$SYS", ""};
    const char *users[] = {"u1", "u2", "a", "", "a/b", "+"};
    const char *cids[] = {"c1", "c2", "b"};
    unsigned seed = 5, decided[3] = {0};
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
        struct wd_client c = client(users[(seed >> 8) % 6], cids[(seed >> 4) % 3]);
        struct wd_policy_result r =
            az_src(p, &c, (seed & 1) ? PUB : SUB, topic, FAKE_TOPIC, NULL, NULL);
        unsigned line;
        assert_int_equal(az(p, &c, (seed & 1) ? PUB : SUB, topic, &line), r.decision);
        decided[r.decision]++;
    }
    assert_true(decided[WD_DECISION_ALLOW] > 1000 && decided[WD_DECISION_DENY] > 1000);
    wd_policy_release(p);
}

/* ---- store rules ---- */

#define ALLOW WD_DECISION_ALLOW
#define DENY WD_DECISION_DENY
#define PUBA WD_ACT_PUBLISH
#define SUBA WD_ACT_SUBSCRIBE
#define ALLA (WD_ACT_PUBLISH | WD_ACT_SUBSCRIBE)
#define T1(s) (const char *const[]){s}, 1

struct skips {
    size_t n;
    size_t idx[64];
    char why[64][256];
};

static void on_skip(void *ud, size_t index, const char *why)
{
    struct skips *k = ud;
    /* reasons are short, valid UTF-8, one line */
    assert_true(strlen(why) < 256);
    assert_true(wd_utf8_valid_nonul(why, strlen(why)));
    for (const char *c = why; *c; c++)
        assert_true((unsigned char)*c >= 0x20 && *c != 0x7f);
    if (k->n > 0)
        assert_true(index > k->idx[(k->n - 1) % 64]); /* in input order */
    k->idx[k->n % 64] = index;
    snprintf(k->why[k->n % 64], sizeof k->why[0], "%s", why);
    k->n++;
}

static struct wd_policy *store_ok(const struct wd_policy_rule_in *in, size_t n, struct skips *k)
{
    struct wd_policy *p = NULL;
    assert_int_equal(wd_policy_compile_rules(in, n, k ? on_skip : NULL, k, &p), WD_OK);
    assert_non_null(p);
    return p;
}

static struct wd_policy_result az_res(const struct wd_policy *p, const struct wd_client *c,
                                      enum wd_action a, const char *topic)
{
    struct wd_policy_result r = az_src(p, c, a, topic, FAKE_TOPIC, NULL, NULL);
    unsigned line;
    assert_int_equal(az(p, c, a, topic, &line), r.decision);
    assert_int_equal(line, r.line);
    return r;
}

static void store_rules_first_match_then_nomatch(void **state)
{
    const struct wd_policy_rule_in in[] = {
        {DENY, PUBA, T1("a/secret"), false, 0, -1},
        {ALLOW, ALLA, T1("a/#"), false, 7, -1},
        {ALLOW, SUBA, (const char *const[]){"s/+", "t/#"}, 2, false, 0, -1},
        {DENY, ALLA, T1("#"), false, 0, -1}, /* JWT v2 lists end with deny rules */
    };
    struct wd_policy *p = store_ok(in, 3, NULL);
    assert_int_equal(wd_policy_nrules(p), 3);
    assert_int_equal(wd_policy_nusers(p), 0);
    assert_int_equal(wd_policy_nsteps(p), 0);
    assert_false(wd_policy_uses_claims(p));
    struct wd_client c = client("u", "c");
    struct wd_policy_result r = az_res(p, &c, PUB, "a/secret");
    assert_int_equal(r.decision, WD_DECISION_DENY);
    assert_int_equal(r.line, 1);
    assert_false(r.by_default);
    r = az_res(p, &c, SUB, "a/x/#");
    assert_int_equal(r.decision, WD_DECISION_ALLOW);
    assert_int_equal(r.line, 2);
    r = az_res(p, &c, SUB, "t/x");
    assert_int_equal(r.decision, WD_DECISION_ALLOW);
    assert_int_equal(r.line, 3);
    r = az_res(p, &c, PUB, "t/x");
    assert_int_equal(r.decision, WD_DECISION_NOMATCH);
    assert_true(r.by_default);
    assert_int_equal(r.line, 0);
    r = az_res(p, &c, SUB, "s/#");
    assert_int_equal(r.decision, WD_DECISION_NOMATCH);
    struct trail tr = {""};
    struct wd_authz_req q = {
        .client = c, .action = PUB, .topic = "zz", .topic_len = 2, .qos = -1, .retain = -1};
    wd_policy_explain_authorize(p, &q, on_explain, &tr, &r);
    assert_string_equal(tr.text, "1 topic does not match\n2 topic does not match\n"
                                 "3 rule is for subscribe, request is a publish\n"
                                 "0! no rule matched (no default: no match)\n");
    wd_policy_release(p);

    p = store_ok(in, 4, NULL);
    r = az_res(p, &c, PUB, "t/x");
    assert_int_equal(r.decision, WD_DECISION_DENY);
    assert_int_equal(r.line, 4);
    r = az_res(p, &c, PUB, "$SYS/x");
    assert_int_equal(r.decision, WD_DECISION_NOMATCH);
    wd_policy_release(p);

    /* no rules at all: an empty policy that answers nomatch */
    p = store_ok(NULL, 0, NULL);
    r = az_res(p, &c, SUB, "#");
    assert_int_equal(r.decision, WD_DECISION_NOMATCH);
    assert_true(r.by_default);
    wd_policy_release(p);
}

static void store_rules_render_placeholders(void **state)
{
    const struct wd_policy_rule_in in[] = {
        {ALLOW, ALLA, T1("devices/${clientid}/#"), false, 0, -1},
        {ALLOW, PUBA, T1("users/${username}/${cert_common_name}"), false, 0, -1},
        {ALLOW, SUBA, T1("tenants/${claim.tenant}/+"), false, 0, -1},
        {ALLOW, PUBA, T1("lit/${clientid}"), true, 0, -1}, /* eq: never rendered */
        {ALLOW, PUBA, T1("esc/$${clientid}"), false, 0, -1},
    };
    struct wd_policy *p = store_ok(in, 5, NULL);
    assert_true(wd_policy_uses_claims(p));
    struct wd_client c = client("alice", "dev-1");
    c.cn = "gw";
    struct claims cl = {{"tenant"}, {"acme"}};
    c.claim = claim_of;
    c.claim_ctx = &cl;
    struct {
        enum wd_action a;
        const char *topic;
        enum wd_decision want;
        unsigned line;
    } cases[] = {
        {PUB, "devices/dev-1/telemetry", ALLOW, 1},
        {SUB, "devices/dev-1/#", ALLOW, 1},
        {PUB, "devices/dev-2/telemetry", WD_DECISION_NOMATCH, 0},
        {SUB, "devices/+/telemetry", WD_DECISION_NOMATCH, 0},
        {PUB, "users/alice/gw", ALLOW, 2},
        {PUB, "users/bob/gw", WD_DECISION_NOMATCH, 0},
        {SUB, "tenants/acme/x", ALLOW, 3},
        {SUB, "tenants/other/x", WD_DECISION_NOMATCH, 0},
        {PUB, "lit/${clientid}", ALLOW, 4},
        {PUB, "lit/dev-1", WD_DECISION_NOMATCH, 0},
        {PUB, "esc/${clientid}", ALLOW, 5},
        {PUB, "esc/dev-1", WD_DECISION_NOMATCH, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct wd_policy_result r = az_res(p, &c, cases[i].a, cases[i].topic);
        assert_int_equal(r.decision, cases[i].want);
        assert_int_equal(r.line, cases[i].line);
    }
    /* values that would widen a rule never match */
    struct wd_client w = client("alice", "#");
    assert_int_equal(az_res(p, &w, SUB, "devices/#").decision, WD_DECISION_NOMATCH);
    /* not a topic name at all: denied before any rule, in a store's rules too */
    assert_int_equal(az_res(p, &w, PUB, "devices/#/x").decision, WD_DECISION_DENY);
    wd_policy_release(p);
}

static void store_rules_qos_and_retain_as_in_policies(void **state)
{
    const struct wd_policy_rule_in in[] = {
        {ALLOW, PUBA, T1("q"), false, 3, -1}, /* QoS 0 or 1: never for EMQX */
        {DENY, PUBA, T1("r"), false, 0, 1},   /* retained only: always for EMQX */
        {ALLOW, PUBA, T1("r"), false, 7, -1}, /* any QoS: no restriction */
        {ALLOW, SUBA, T1("s"), false, 0, 1},  /* retain on subscribe: ignored */
        {ALLOW, ALLA, T1("q"), false, 0, -1}, /* the fallback for "q" */
        {DENY, ALLA, T1("d"), false, 4, -1},  /* QoS 2 only, deny: always for EMQX */
    };
    struct wd_policy *p = store_ok(in, 6, NULL);
    assert_int_equal(wd_policy_nrules(p), 6);
    struct wd_client c = client("u", "c");
    struct wd_policy_result r = az_res(p, &c, PUB, "q");
    assert_int_equal(r.line, 5);
    r = az_res(p, &c, PUB, "r");
    assert_int_equal(r.decision, WD_DECISION_DENY);
    assert_int_equal(r.line, 2);
    r = az_res(p, &c, SUB, "s");
    assert_int_equal(r.decision, WD_DECISION_ALLOW);
    assert_int_equal(r.line, 4);
    r = az_res(p, &c, SUB, "d");
    assert_int_equal(r.decision, WD_DECISION_DENY);
    assert_int_equal(r.line, 6);
    /* known QoS and retain (warden test, explain) are checked */
    struct wd_authz_req q = {
        .client = c, .action = PUB, .topic = "q", .topic_len = 1, .qos = 1, .retain = 0};
    wd_policy_authorize(p, &q, &r);
    assert_int_equal(r.line, 1);
    q.qos = 2;
    wd_policy_authorize(p, &q, &r);
    assert_int_equal(r.line, 5);
    q.topic = "r";
    wd_policy_authorize(p, &q, &r);
    assert_int_equal(r.line, 3);
    q.retain = 1;
    wd_policy_authorize(p, &q, &r);
    assert_int_equal(r.line, 2);
    wd_policy_release(p);
}

static void store_rules_that_do_not_compile_are_skipped_and_reported(void **state)
{
    static char deep[600];
    for (int i = 0; i < 200; i++)
        memcpy(deep + 2 * i, "x/", 2);
    deep[399] = '\0'; /* 200 levels */
    const struct wd_policy_rule_in in[] = {
        {ALLOW, PUBA, T1("ok/0"), false, 0, -1},
        {ALLOW, PUBA, T1("a/#/b"), false, 0, -1},
        {ALLOW, PUBA, T1("a/${nope}"), false, 0, -1},
        {ALLOW, PUBA, T1(""), false, 0, -1},
        {ALLOW, PUBA, T1("a/\xff"), false, 0, -1},
        {ALLOW, PUBA, T1("a/\xc0\xaf"), true, 0, -1},      /* overlong '/' (eq too) */
        {ALLOW, PUBA, T1("a/\xed\xa0\x80"), false, 0, -1}, /* surrogate */
        {ALLOW, PUBA, T1(deep), false, 0, -1},
        {ALLOW, PUBA, T1("a/${username"), false, 0, -1},
        {ALLOW, PUBA, (const char *const[]){"ok/x", "b+"}, 2, false, 0, -1},
        {WD_DECISION_NOMATCH, PUBA, T1("ok/y"), false, 0, -1},
        {ALLOW, 0, T1("ok/y"), false, 0, -1},
        {ALLOW, 4, T1("ok/y"), false, 0, -1},
        {ALLOW, PUBA, NULL, 0, false, 0, -1},
        {ALLOW, PUBA, (const char *const[]){NULL}, 1, false, 0, -1},
        {ALLOW, PUBA, T1("ok/y"), false, 8, -1},
        {ALLOW, PUBA, T1("ok/y"), false, 0, 2},
        {ALLOW, PUBA, T1(""), true, 0, -1},
        {ALLOW, PUBA, T1("ok/1"), false, 0, -1},
        {ALLOW, PUBA, T1("a/\x01\n"), false, 0, -1}, /* valid UTF-8: compiles */
    };
    size_t n = sizeof in / sizeof *in;
    struct skips k = {0};
    struct wd_policy *p = store_ok(in, n, &k);
    const struct {
        size_t idx;
        const char *why;
    } want[] = {
        {1, "invalid topic filter \"a/#/b\""},
        {2, "unknown placeholder '${nope}'"},
        {3, "empty topic"},
        {4, "topic is not valid UTF-8"},
        {5, "topic is not valid UTF-8"},
        {6, "topic is not valid UTF-8"},
        {7, "at most 128 levels"},
        {8, "unterminated placeholder"},
        {9, "invalid topic filter \"b+\""},
        {10, "permission is neither allow nor deny"},
        {11, "action is not publish, subscribe or both"},
        {12, "action is not publish, subscribe or both"},
        {13, "no topic"},
        {14, "no topic"},
        {15, "QoS is not 0, 1 or 2"},
        {16, "retain is not true, false or any"},
        {17, "empty topic"},
    };
    size_t nwant = sizeof want / sizeof *want;
    assert_int_equal(k.n, nwant);
    for (size_t i = 0; i < nwant; i++) {
        assert_int_equal(k.idx[i], want[i].idx);
        if (!strstr(k.why[i], want[i].why))
            fail_msg("rule %zu: \"%s\" does not say \"%s\"", want[i].idx, k.why[i], want[i].why);
    }
    /* a 200-level topic is quoted by at most 64 of its bytes */
    char quoted[80] = "\"";
    for (int i = 0; i < 32; i++)
        strcat(quoted, "x/");
    strcat(quoted, "\" ");
    assert_non_null(strstr(k.why[6], quoted));
    /* the rest compiled, at their own lines */
    assert_int_equal(wd_policy_nrules(p), n - nwant);
    struct wd_client c = client("u", "c");
    assert_int_equal(az_res(p, &c, PUB, "ok/0").line, 1);
    assert_int_equal(az_res(p, &c, PUB, "ok/1").line, 19);
    assert_int_equal(az_res(p, &c, PUB, "a/\x01\n").line, 20);
    assert_int_equal(az_res(p, &c, PUB, "ok/x").decision, WD_DECISION_NOMATCH);
    assert_int_equal(az_res(p, &c, PUB, "ok/y").decision, WD_DECISION_NOMATCH);
    wd_policy_release(p);

    /* every rule skipped: an empty policy; no callback: skipped silently */
    p = store_ok(in + 1, 3, NULL);
    assert_int_equal(wd_policy_nrules(p), 0);
    assert_int_equal(az_res(p, &c, PUB, "a/b").decision, WD_DECISION_NOMATCH);
    wd_policy_release(p);

    /* too many rules: refused before reading them */
    p = (struct wd_policy *)&k;
    assert_int_equal(wd_policy_compile_rules(in, (size_t)WD_POLICY_MAX_RULES + 1, NULL, NULL, &p),
                     WD_ETOOBIG);
    assert_null(p);
}

static void store_rule_messages_quote_at_most_64_bytes_cut_on_a_character(void **state)
{
    /* 'é' is two bytes: 64 bytes would end in the middle of the 33rd */
    char topic[256] = "x";
    for (int i = 0; i < 60; i++)
        strcat(topic, "\xc3\xa9");
    strcat(topic, "/a#");
    const struct wd_policy_rule_in in[] = {{ALLOW, PUBA, T1(topic), false, 0, -1}};
    struct skips k = {0};
    struct wd_policy *p = store_ok(in, 1, &k);
    assert_int_equal(k.n, 1);
    const char *q = strchr(k.why[0], '"');
    assert_non_null(q);
    const char *end = strchr(q + 1, '"');
    assert_non_null(end);
    assert_true(end - q - 1 <= 64);
    assert_int_equal(end - q - 1, 63); /* "x" and 31 whole characters */
    wd_policy_release(p);
}

/* Appends f to the string of length len in dst (cap bytes) if it fits; the new length. */
static size_t append(char *dst, size_t cap, size_t len, const char *f)
{
    size_t n = strlen(f);
    if (len + n < cap) {
        memcpy(dst + len, f, n);
        len += n;
    }
    dst[len] = '\0';
    return len;
}

static void store_rules_survive_hostile_input(void **state)
{
    /* 64 KiB topics: the largest valid one compiles and matches itself; one byte more is
     * skipped; templates and eq topics of that size too */
    const size_t max = 65535;
    char *lit = malloc(max + 2), *tmpl = malloc(max + 1), *eq = malloc(max + 1),
         *dollars = malloc(max + 1), *req = malloc(max + 1);
    memset(lit, 'l', max + 1);
    lit[max + 1] = '\0';
    size_t tn = 0;
    while (tn + 11 <= max) {
        memcpy(tmpl + tn, "${clientid}", 11);
        tn += 11;
    }
    tmpl[tn] = '\0';
    for (size_t i = 0; i < max; i++)
        eq[i] = i % 2 ? '/' : 'e'; /* 32768 levels */
    eq[max] = '\0';
    memset(dollars, '$', max);
    dollars[max] = '\0';
    const struct wd_policy_rule_in in[] = {
        {ALLOW, PUBA, T1(lit), false, 0, -1},     /* 65536 bytes: too long */
        {ALLOW, PUBA, T1(lit + 1), false, 0, -1}, /* 65535 */
        {ALLOW, PUBA, T1(tmpl), false, 0, -1},    {DENY, PUBA, T1(eq), true, 0, -1},
        {ALLOW, PUBA, T1(dollars), false, 0, -1},
    };
    struct skips k = {0};
    struct wd_policy *p = store_ok(in, 5, &k);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.idx[0], 0);
    assert_string_equal(k.why[0], "topic longer than 65535 bytes");
    struct wd_client c = client("u", "c");
    assert_int_equal(az_res(p, &c, PUB, lit + 1).line, 2);
    memset(req, 'c', tn / 11);
    req[tn / 11] = '\0';
    assert_int_equal(az_res(p, &c, PUB, req).line, 3);
    req[0] = 'd';
    assert_int_equal(az_res(p, &c, PUB, req).decision, WD_DECISION_NOMATCH);
    assert_int_equal(az_res(p, &c, PUB, eq).line, 4);
    assert_int_equal(az_res(p, &c, PUB, dollars).line, 5);
    wd_policy_release(p);
    free(lit);
    free(tmpl);
    free(eq);
    free(dollars);
    free(req);

    /* 4096 rules of random bytes (never NUL) and wildcard/placeholder fragments: each one
     * compiles or is reported; the trie and the linear scan agree on what compiled */
    enum { N = 4096 };
    static char topics[N][48];
    static const char *ptrs[N];
    static struct wd_policy_rule_in many[N];
    static const char *frags[] = {"a",
                                  "b",
                                  "/",
                                  "+",
                                  "#",
                                  "$",
                                  "${username}",
                                  "${clientid}",
                                  "${claim.t}",
                                  "${",
                                  "}",
                                  "$${",
                                  "\xc3\xa9",
                                  "\xff",
                                  "\x80",
                                  "\x01",
                                  "${cert_common_name}"};
    unsigned seed = 11;
    for (int i = 0; i < N; i++) {
        size_t len = append(topics[i], sizeof topics[i], 0, "");
        seed = seed * 1103515245u + 12345u;
        int parts = (int)((seed >> 16) % 8);
        for (int j = 0; j < parts; j++) {
            seed = seed * 1103515245u + 12345u;
            const char *f;
            char raw[2] = {(char)(1 + (seed >> 8) % 255), 0};
            f = (seed >> 16) % 5 ? frags[(seed >> 20) % (sizeof frags / sizeof *frags)] : raw;
            len = append(topics[i], sizeof topics[i], len, f);
        }
        ptrs[i] = topics[i];
        many[i] = (struct wd_policy_rule_in){.perm = (seed & 1) ? ALLOW : DENY,
                                             .actions = 1 + (seed >> 4) % 3,
                                             .topics = &ptrs[i],
                                             .ntopics = 1,
                                             .eq = (seed >> 6) % 8 == 0,
                                             .qos_mask = (seed >> 9) % 9 == 0 ? 1 : 7,
                                             .retain = -1};
    }
    k = (struct skips){0};
    p = store_ok(many, N, &k);
    assert_true(k.n > 100 && k.n < N - 100);
    assert_int_equal(wd_policy_nrules(p) + k.n, N);
    const char *users[] = {"a", "b", "", "\xc3\xa9"};
    struct claims cl = {{"t"}, {"a"}};
    for (int i = 0; i < 20000; i++) {
        seed = seed * 1103515245u + 12345u;
        struct wd_client cc = client(users[(seed >> 8) % 4], users[(seed >> 12) % 4]);
        cc.claim = claim_of;
        cc.claim_ctx = &cl;
        /* half the requests are rule topics themselves, half random */
        const char *topic = topics[(seed >> 14) % N];
        char rnd[32];
        if (seed & 4) {
            size_t len = append(rnd, sizeof rnd, 0, "");
            int parts = 1 + (int)((seed >> 16) % 5);
            for (int j = 0; j < parts; j++) {
                seed = seed * 1103515245u + 12345u;
                const char *f = frags[(seed >> 20) % 6];
                len = append(rnd, sizeof rnd, len, f);
            }
            topic = rnd;
        }
        (void)az_res(p, &cc, (seed & 1) ? PUB : SUB, topic);
    }
    wd_policy_release(p);
}

/* Only policy files take generation numbers: the Redis and JWT ACLs compiled for the cache
 * (thousands between two reloads) do not make the served generation jump. */
static void store_rules_take_no_generation(void **state)
{
    (void)state;
    struct wd_policy *a = compile_ok("authz default deny\n");
    const char *topic = "t/1";
    struct wd_policy_rule_in in = {.perm = WD_DECISION_ALLOW,
                                   .actions = WD_ACT_PUBLISH,
                                   .topics = &topic,
                                   .ntopics = 1,
                                   .qos_mask = 0x7,
                                   .retain = -1};
    for (int i = 0; i < 5; i++) {
        struct wd_policy *r = NULL;
        assert_int_equal(wd_policy_compile_rules(&in, 1, NULL, NULL, &r), WD_OK);
        assert_int_equal(wd_policy_generation(r), 0);
        wd_policy_release(r);
    }
    struct wd_policy *b = compile_ok("authz default deny\n");
    assert_int_equal(wd_policy_generation(b), wd_policy_generation(a) + 1);
    wd_policy_release(a);
    wd_policy_release(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_match_wins_and_default_applies),
        cmocka_unit_test(store_rules_take_no_generation),
        cmocka_unit_test(subscription_must_be_covered_entirely),
        cmocka_unit_test(hash_does_not_reach_dollar_topics),
        cmocka_unit_test(placeholder_values_never_widen_a_rule),
        cmocka_unit_test(eq_matches_the_literal_string_only),
        cmocka_unit_test(conditions_regex_anchored_cidr_port_lists),
        cmocka_unit_test(superuser_in_an_authn_condition_is_an_error_even_nested),
        cmocka_unit_test(qos_and_retain_unknown_fail_closed),
        cmocka_unit_test(every_syntax_error_reported_with_position_and_caret),
        cmocka_unit_test(meaning_errors),
        cmocka_unit_test(shadowed_and_duplicate_rules_warn),
        cmocka_unit_test(shadow_check_finds_what_the_quadratic_reference_finds),
        cmocka_unit_test(broken_user_statements_never_show_their_secret),
        cmocka_unit_test(lexical_errors_and_hostile_input_never_crash),
        cmocka_unit_test(json_tokens_only_where_asked_for),
        cmocka_unit_test(trie_agrees_with_linear_scan_on_random_requests),
        cmocka_unit_test(claims_render_through_the_client_callback),
        cmocka_unit_test(conditions_compare_a_field_with_a_placeholder),
        cmocka_unit_test(a_missing_value_never_makes_an_allow_apply_nor_keeps_a_deny_from_applying),
        cmocka_unit_test(cert_common_name_is_an_alias_of_cn),
        cmocka_unit_test(sources_are_consulted_in_rule_order),
        cmocka_unit_test(a_source_decision_sets_every_result_field),
        cmocka_unit_test(source_conditions_are_evaluated_first),
        cmocka_unit_test(an_unknown_source_condition_lets_only_a_deny_apply),
        cmocka_unit_test(has_source_and_authn_steps),
        cmocka_unit_test(credential_store_hooks_compile_without_warnings),
        cmocka_unit_test(trie_agrees_with_linear_scan_with_random_sources),
        cmocka_unit_test(deny_rules_stop_subscriptions_that_overlap_them),
        cmocka_unit_test(explain_says_a_deny_rule_overlaps),
        cmocka_unit_test(malformed_request_topics_are_denied_before_any_rule),
        cmocka_unit_test(trie_agrees_with_linear_scan_on_overlapping_deny_rules),
        cmocka_unit_test(store_rules_first_match_then_nomatch),
        cmocka_unit_test(store_rules_render_placeholders),
        cmocka_unit_test(store_rules_qos_and_retain_as_in_policies),
        cmocka_unit_test(store_rules_that_do_not_compile_are_skipped_and_reported),
        cmocka_unit_test(store_rule_messages_quote_at_most_64_bytes_cut_on_a_character),
        cmocka_unit_test(store_rules_survive_hostile_input),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
