/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_policy: the policy compiler (lex, parse, compile, diagnostics) on arbitrary text, and
 * a differential check of the two evaluators on the policies that compile.
 *
 * Input: policy text, as a file would hold it. It is compiled; the diagnostics are always
 * rendered (source line and caret for any byte). When it compiles, requests are derived from
 * the text itself: every string literal of the input (up to MAXLIT, e.g. the topics of its
 * rules and the values of its conditions) is a topic as written, with its wildcards made
 * literal, and with its placeholders rendered for the client; the clients take their
 * username and client id from the literals too (so `${username}` rules and `when username =`
 * conditions match), one of them a superuser with claims. Each request, publish and
 * subscribe, is decided by the trie (wd_policy_authorize_src) and by the linear reference
 * (wd_policy_authorize_linear_src), with a rule source that answers from a hash of the topic
 * (so `rules redis|jwt` splice points decide sometimes); the two results must be identical
 * (decision, deciding line, by_default, by_source, bad_topic), and the explanation
 * (wd_policy_explain_authorize_src) must reach the same decision. The authentication side
 * is walked too: every step's condition evaluated, every user looked up by name.
 */
#include <stdbool.h>

#include "core/request.h"
#include "fuzz.h"
#include "policy/diag.h"
#include "policy/policy.h"

enum { MAXLIT = 8, MAXLITLEN = 256 };

struct lits {
    char s[MAXLIT][MAXLITLEN];
    int n;
};

/* The contents of "..." literals (escapes kept as written: close enough for requests). */
static void literals(const char *src, size_t len, struct lits *out)
{
    out->n = 0;
    for (size_t i = 0; i < len && out->n < MAXLIT; i++) {
        if (src[i] != '"')
            continue;
        size_t j = i + 1;
        while (j < len && src[j] != '"' && src[j] != '\n')
            j++;
        if (j >= len || src[j] != '"')
            break;
        size_t n = j - i - 1;
        if (n < MAXLITLEN) {
            memcpy(out->s[out->n], src + i + 1, n);
            out->s[out->n][n] = '\0';
            out->n++;
        }
        i = j;
    }
}

/* t with every "${...}" replaced by `with`, into out (cap bytes). */
static void render(const char *t, const char *with, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; t[i] && o + 1 < cap;) {
        const char *end;
        if (t[i] == '$' && t[i + 1] == '{' && (end = strchr(t + i, '}')) != NULL) {
            for (size_t k = 0; with[k] && o + 1 < cap; k++)
                out[o++] = with[k];
            i = (size_t)(end - t) + 1;
        } else {
            out[o++] = t[i++];
        }
    }
    out[o] = '\0';
}

static const char *claim_of(const void *ctx, const char *name, size_t len)
{
    const struct lits *l = ctx;
    if (len == 3 && memcmp(name, "sub", 3) == 0)
        return NULL;
    return l->n ? l->s[l->n - 1] : "x";
}

static unsigned hash(const char *s, size_t n)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* A rule source that decides from the topic's hash: nothing, allow, deny, or a failure
 * (an out-of-range return, which both evaluators must treat as deny). */
static int source_eval(void *ctx, enum wd_source src, const struct wd_authz_req *req,
                       struct wd_policy_result *out)
{
    switch ((hash(req->topic, req->topic_len) + (unsigned)src) % 5) {
    case 0:
    case 1:
        return 0;
    case 2:
        out->decision = WD_DECISION_ALLOW;
        return 1;
    case 3:
        out->decision = WD_DECISION_DENY;
        return 1;
    default:
        return 7;
    }
}

static void explain_cb(void *ctx, unsigned line, bool decided, const char *why)
{
    FUZZ_CHECK(why != NULL, "explanation without a reason at line %u", line);
}

static void decide(const struct wd_policy *p, const struct wd_client *c, enum wd_action a,
                   const char *topic)
{
    struct wd_authz_req r = {.client = *c,
                             .action = a,
                             .topic = topic,
                             .topic_len = strlen(topic),
                             .qos = (int)(hash(topic, strlen(topic)) % 4) - 1,
                             .retain = (int)(hash(topic, strlen(topic)) % 3) - 1};
    struct wd_policy_sources src = {source_eval, NULL};
    struct wd_policy_result t, l, e;
    wd_policy_authorize_src(p, &r, &src, &t);
    wd_policy_authorize_linear_src(p, &r, &src, &l);
    FUZZ_CHECK(t.decision == l.decision && t.line == l.line && t.by_default == l.by_default &&
                   t.by_source == l.by_source && t.bad_topic == l.bad_topic,
               "trie %d@%u (default %d source %d bad %d) != linear %d@%u (default %d source %d "
               "bad %d) for %s %s user %s",
               t.decision, t.line, t.by_default, t.by_source, t.bad_topic, l.decision, l.line,
               l.by_default, l.by_source, l.bad_topic, a == WD_ACTION_PUBLISH ? "pub" : "sub",
               topic, c->username);
    FUZZ_CHECK(t.decision == WD_DECISION_ALLOW || t.decision == WD_DECISION_DENY ||
                   t.decision == WD_DECISION_NOMATCH,
               "decision %d", t.decision);
    wd_policy_explain_authorize_src(p, &r, &src, explain_cb, NULL, &e);
    FUZZ_CHECK(e.decision == t.decision && e.line == t.line, "explain %d@%u != %d@%u", e.decision,
               e.line, t.decision, t.line);
    /* no source at all: the two evaluators agree as well */
    wd_policy_authorize(p, &r, &t);
    wd_policy_authorize_linear(p, &r, &l);
    FUZZ_CHECK(t.decision == l.decision && t.line == l.line, "without sources: %d@%u != %d@%u",
               t.decision, t.line, l.decision, l.line);
}

static void exercise(const struct wd_policy *p, const struct lits *lits)
{
    struct wd_client cl[2] = {
        {.node = "n",
         .clientid = lits->n > 1 ? lits->s[1] : "c1",
         .username = lits->n > 0 ? lits->s[0] : "",
         .peerhost = "10.1.2.3",
         .sockport = 1883,
         .protocol = "mqtt",
         .mountpoint = "",
         .cn = "",
         .dn = ""},
        {.node = "n",
         .clientid = lits->n > 2 ? lits->s[2] : "dev-7",
         .username = lits->n > 3 ? lits->s[3] : "alice",
         .peerhost = "fd00::1",
         .sockport = 8883,
         .protocol = "mqtt-sn",
         .mountpoint = "m/",
         .cn = lits->n > 4 ? lits->s[4] : "dev.example",
         .dn = "CN=dev",
         .is_superuser = true,
         .claim = claim_of,
         .claim_ctx = lits},
    };
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < wd_policy_nsteps(p); i++) {
            const struct wd_policy_step *st = wd_policy_step(p, i);
            int v = wd_policy_step_when(p, st, &cl[k]);
            FUZZ_CHECK(v >= -1 && v <= WD_POLICY_WHEN_DENY_ONLY, "step_when %d", v);
            FUZZ_CHECK(v != WD_POLICY_WHEN_DENY_ONLY || st->kind == WD_STEP_USERS ||
                           st->kind == WD_STEP_REDIS || st->kind == WD_STEP_JWT,
                       "deny-only for a step that checks no credential (kind %d)", (int)st->kind);
            FUZZ_CHECK(st->when || v == 1, "a step without a condition holds, got %d", v);
        }
        (void)wd_policy_user_find(p, cl[k].username);
    }
    for (size_t i = 0; i < wd_policy_nusers(p); i++)
        FUZZ_CHECK(wd_policy_user_find(p, wd_policy_user_at(p, i)->name) != NULL, "user %zu", i);

    char buf[2 * MAXLITLEN + 16];
    for (int i = 0; i < lits->n; i++) {
        for (int k = 0; k < 2; k++) {
            const struct wd_client *c = &cl[k];
            decide(p, c, WD_ACTION_PUBLISH, lits->s[i]);
            decide(p, c, WD_ACTION_SUBSCRIBE, lits->s[i]);
            render(lits->s[i], c->username, buf, sizeof buf);
            decide(p, c, WD_ACTION_PUBLISH, buf);
            decide(p, c, WD_ACTION_SUBSCRIBE, buf);
            for (char *q = buf; *q; q++)
                if (*q == '+' || *q == '#')
                    *q = 'x';
            decide(p, c, WD_ACTION_PUBLISH, buf);
            snprintf(buf, sizeof buf, "%s/#", lits->s[i]);
            decide(p, c, WD_ACTION_SUBSCRIBE, buf);
        }
    }
    static const char *const fixed[] = {"#", "+", "a/b", "$SYS/x", "users/demo/x", "/"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        decide(p, &cl[1], WD_ACTION_PUBLISH, fixed[i]);
        decide(p, &cl[0], WD_ACTION_SUBSCRIBE, fixed[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0; /* the evaluation below is per literal; big inputs only slow the search */
    char *src = fuzz_strndup(data, size);
    struct wd_diags d;
    wd_diags_init(&d, "fuzz.policy", src, size);
    struct wd_policy *p = NULL;
    int rc = wd_policy_compile(src, size, &d, &p);
    FUZZ_CHECK((rc == WD_OK) == (p != NULL), "rc %d with policy %p", rc, (void *)p);
    free(wd_diags_render(&d));
    wd_diags_cleanup(&d);
    if (p) {
        struct lits lits;
        literals(src, size, &lits);
        exercise(p, &lits);
        wd_policy_release(p);
    }
    free(src);
    return 0;
}
