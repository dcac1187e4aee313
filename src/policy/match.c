/* SPDX-License-Identifier: Apache-2.0 */
/*
 * match.c: evaluating a compiled policy.
 *
 * Conditions evaluate to true, false or error (a regex that hit its match limit). An
 * error anywhere on the way to a decision makes the decision DENY: a broken condition
 * must not turn a deny rule into a no-match that lets a later allow rule through.
 *
 * wd_policy_authorize() collects candidate rules from the trie (only rules whose topic
 * covers the request) and evaluates them in rule order; wd_policy_authorize_linear()
 * scans all rules and is the reference the trie must agree with. Rule sources
 * (`rules redis|jwt`) are splice points in the rule order: they are not in the trie (a
 * source's rules are the engine's, per user), so the trie evaluator visits each one
 * when the candidate merge passes its index, and the linear scan when it gets there.
 *
 * A deny rule decides a subscription its topic overlaps (topic.h: the subscription can
 * receive a topic the rule denies), an allow rule only one it covers. Overlap differs from
 * coverage only for a filter with '+' or '#', so only such subscriptions also collect
 * candidates from the overlap trie of deny rules; publish requests never look at it.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/wd.h"
#include "policy/policy_int.h"
#include "policy/topic.h"

#define MAX_CANDS 512
#define RE_MATCH_LIMIT 100000
#define RE_DEPTH_LIMIT 5000

/* A condition's value. UNK: a placeholder it compares with has no value for this client
 * (no username, no certificate, a claim the token lacks): neither true nor false, as in
 * Kleene's three-valued logic (`not` keeps it). A rule decides what UNK means by its
 * effect, so that a missing value can never make an allow apply nor keep a deny from
 * applying (rule_applies). ERR: the condition could not be evaluated (the caller denies). */
enum tri {
    NO = 0,
    YES = 1,
    ERR = -1,
    UNK = 2,
};

/* ---- regex match data: one per thread, freed when the thread exits ---- */

static pthread_once_t re_once = PTHREAD_ONCE_INIT;
static pthread_key_t re_key;
static pcre2_match_context *re_mctx;

static void md_free(void *p)
{
    pcre2_match_data_free(p);
}

static void re_init(void)
{
    pthread_key_create(&re_key, md_free);
    re_mctx = pcre2_match_context_create(NULL);
    pcre2_set_match_limit(re_mctx, RE_MATCH_LIMIT);
    pcre2_set_depth_limit(re_mctx, RE_DEPTH_LIMIT);
}

static pcre2_match_data *match_data(void)
{
    pthread_once(&re_once, re_init);
    pcre2_match_data *md = pthread_getspecific(re_key);
    if (!md) {
        md = pcre2_match_data_create(1, NULL);
        if (!md)
            abort();
        pthread_setspecific(re_key, md);
    }
    return md;
}

/* ---- values ---- */

static const char *field_value(const struct wd_client *c, enum wd_field f)
{
    switch (f) {
    case WD_FIELD_USERNAME:
        return c->username;
    case WD_FIELD_CLIENTID:
        return c->clientid;
    case WD_FIELD_CN:
        return c->cn;
    case WD_FIELD_PROTOCOL:
        return c->protocol;
    default:
        return "";
    }
}

static const char *var_value(const struct wd_client *c, const struct wd_tmpl_part *p)
{
    switch (p->v) {
    case WD_VAR_USERNAME:
        return c->username;
    case WD_VAR_CLIENTID:
        return c->clientid;
    case WD_VAR_CN:
        return c->cn;
    case WD_VAR_CLAIM:
        return c->claim ? c->claim(c->claim_ctx, p->s, p->len) : NULL;
    }
    return NULL;
}

/* Whether template t rendered for client c is exactly s (len bytes): YES or NO, or UNK
 * when a placeholder whose value is absent or empty is reached (the comparison cannot be
 * made: a missing value never equals anything, not even "" another missing one). For a
 * topic level (level), a value containing '/', '+' or '#' is NO (it would widen the rule). */
static enum tri tmpl_match(const struct wd_tmpl *t, const struct wd_client *c, const char *s,
                           size_t len, bool level)
{
    size_t pos = 0;
    for (size_t i = 0; i < t->nparts; i++) {
        const struct wd_tmpl_part *p = &t->parts[i];
        if (!p->var) {
            if (len - pos < p->len || memcmp(s + pos, p->s, p->len) != 0)
                return NO;
            pos += p->len;
            continue;
        }
        const char *v = var_value(c, p);
        if (!v || !*v)
            return UNK; /* absent or empty */
        size_t vl = strlen(v);
        if (level && strpbrk(v, "/+#"))
            return NO; /* a value may never widen the rule */
        if (len - pos < vl || memcmp(s + pos, v, vl) != 0)
            return NO;
        pos += vl;
    }
    return pos == len ? YES : NO;
}

bool wd_policy__tmpl_render_eq(const struct wd_tmpl *t, const struct wd_client *c,
                               const char *level, size_t len)
{
    return tmpl_match(t, c, level, len, true) == YES; /* a topic level: UNK never matches */
}

static bool peer_in(const struct wd_cond *k, const char *peer)
{
    uint8_t a[16] = {0};
    int fam;
    if (inet_pton(AF_INET, peer, a) == 1) {
        fam = 4;
    } else if (inet_pton(AF_INET6, peer, a) == 1) {
        fam = 6;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) {
            memmove(a, a + 12, 4);
            memset(a + 4, 0, 12);
            fam = 4;
        }
    } else {
        return false;
    }
    size_t n = fam == 4 ? 4 : 16;
    for (size_t i = 0; i < k->ncidrs; i++) {
        const struct wd_cidr *c = &k->cidrs[i];
        if (c->family != fam)
            continue;
        size_t j = 0;
        while (j < n && (a[j] & c->mask[j]) == c->addr[j])
            j++;
        if (j == n)
            return true;
    }
    return false;
}

static int cmp_key(const void *key, const void *elem)
{
    return strcmp((const char *)key, *(const char *const *)elem);
}

static enum tri cond_eval(const struct wd_policy *p, const struct wd_cond *k,
                          const struct wd_client *c)
{
    switch (k->kind) {
    case WD_AC_OR: {
        enum tri a = cond_eval(p, k->l, c);
        if (a == YES)
            return YES;
        enum tri b = cond_eval(p, k->r, c);
        if (b == YES)
            return YES;
        if (a == ERR || b == ERR)
            return ERR;
        return (a == UNK || b == UNK) ? UNK : NO;
    }
    case WD_AC_AND: {
        enum tri a = cond_eval(p, k->l, c);
        if (a == NO)
            return NO;
        enum tri b = cond_eval(p, k->r, c);
        if (b == NO)
            return NO;
        if (a == ERR || b == ERR)
            return ERR;
        return (a == UNK || b == UNK) ? UNK : YES;
    }
    case WD_AC_NOT: {
        enum tri a = cond_eval(p, k->l, c);
        if (a == ERR || a == UNK)
            return a;
        return a == YES ? NO : YES;
    }
    case WD_AC_SUPERUSER:
        /* what authenticated this connection said (the engine sets it from the session, or
         * EMQX's own authenticator did), never a property of the username */
        return c->is_superuser ? YES : NO;
    case WD_AC_ANONYMOUS:
        return c->username[0] == '\0' ? YES : NO;
    case WD_AC_EQ:
    case WD_AC_IN:
        if (k->field == WD_FIELD_PORT) {
            for (size_t i = 0; i < k->nnums; i++)
                if ((long)c->sockport == k->nums[i])
                    return YES;
            return NO;
        }
        if (k->field == WD_FIELD_PEER)
            return c->peerhost[0] && peer_in(k, c->peerhost) ? YES : NO;
        {
            const char *v = field_value(c, k->field);
            if (!v[0]) /* a field the client does not have: false against literals, unknown
                        * against another of its values (a missing value equals nothing) */
                return k->ntmpls ? UNK : NO;
            if (k->nstrs && bsearch(v, k->strs, k->nstrs, sizeof *k->strs, cmp_key))
                return YES;
            /* a placeholder value: the field equals another of the client's values; one
             * that is absent or empty makes the comparison unknown (UNK), so "" never
             * equals "" and `not` cannot turn a missing value into true */
            size_t vl = k->ntmpls ? strlen(v) : 0;
            enum tri r = NO;
            for (size_t i = 0; i < k->ntmpls; i++) {
                enum tri t = tmpl_match(k->tmpls[i], c, v, vl, false);
                if (t == YES)
                    return YES;
                if (t == UNK)
                    r = UNK;
            }
            return r;
        }
    case WD_AC_RE: {
        const char *v = field_value(c, k->field);
        if (!v[0])
            return NO;
        int rc = pcre2_match(k->re, (PCRE2_SPTR)v, strlen(v), 0, 0, match_data(), re_mctx);
        if (rc >= 0)
            return YES;
        return rc == PCRE2_ERROR_NOMATCH ? NO : ERR;
    }
    }
    return ERR;
}

int wd_policy_step_when(const struct wd_policy *p, const struct wd_policy_step *s,
                        const struct wd_client *c)
{
    if (!s->when)
        return 1;
    enum tri t = cond_eval(p, s->when, c);
    if (t != UNK)
        return (int)t;
    bool denies = (s->kind == WD_STEP_DECIDE || s->kind == WD_STEP_ANONYMOUS) &&
                  s->decision == WD_DECISION_DENY;
    if (denies)
        return 1;
    /* a credential check can refuse as well as admit: it runs, and only a refusal applies */
    bool checks = s->kind == WD_STEP_USERS || s->kind == WD_STEP_REDIS || s->kind == WD_STEP_JWT;
    return checks ? WD_POLICY_WHEN_DENY_ONLY : 0;
}

/* ---- topics ---- */

static bool render_eq(const struct wd_tmpl *t, const char *level, size_t len, const void *client)
{
    return wd_policy__tmpl_render_eq(t, client, level, len);
}

/* Does compiled rule topic t cover the request topic q (with templates rendered for c)? */
static bool topic_covers(const struct wd_ctopic *t, const char *q, size_t qlen,
                         const struct wd_client *c)
{
    if (t->eq)
        return t->len == qlen && memcmp(t->text, q, qlen) == 0;
    return wd_topic_covers_levels(t->lv, t->nlv, q, qlen, render_eq, c);
}

/* Does compiled deny rule topic t overlap the subscription q? An eq topic is literal. */
static bool topic_overlaps(const struct wd_ctopic *t, const char *q, size_t qlen,
                           const struct wd_client *c)
{
    if (t->eq)
        return t->len == qlen && memcmp(t->text, q, qlen) == 0;
    return wd_topic_overlaps_levels(t->lv, t->nlv, q, qlen, render_eq, c);
}

/* ---- rules ---- */

/* Everything but the topic. */
static enum tri rule_applies(const struct wd_policy *p, const struct wd_rule *r,
                             const struct wd_authz_req *req, const char **why)
{
    unsigned act = req->action == WD_ACTION_PUBLISH ? WD_ACT_PUBLISH : WD_ACT_SUBSCRIBE;
    if (!(r->actions & act)) {
        *why = req->action == WD_ACTION_PUBLISH ? "rule is for subscribe, request is a publish"
                                                : "rule is for publish, request is a subscribe";
        return NO;
    }
    if (r->has_qos) {
        if (req->qos < 0) {
            if (r->perm == WD_DECISION_ALLOW) {
                *why = "the request's QoS is unknown and an allow rule needs it";
                return NO;
            }
        } else if (!(r->qos_mask & (1u << req->qos))) {
            *why = "QoS not in the rule's list";
            return NO;
        }
    }
    if (r->retain != -1 && req->action == WD_ACTION_PUBLISH) {
        if (req->retain < 0) {
            if (r->perm == WD_DECISION_ALLOW) {
                *why = "the request's retain flag is unknown and an allow rule needs it";
                return NO;
            }
        } else if (req->retain != r->retain) {
            *why = "retain flag differs";
            return NO;
        }
    }
    if (r->when) {
        enum tri t = cond_eval(p, r->when, &req->client);
        if (t == NO) {
            *why = "condition is false";
            return NO;
        }
        if (t == ERR) {
            *why = "condition could not be evaluated (regex limit): denied";
            return ERR;
        }
        /* as for an unknown QoS: a missing value never makes an allow apply, and never
         * keeps a deny from applying */
        if (t == UNK && r->perm == WD_DECISION_ALLOW) {
            *why = "condition compares a value the client does not have: an allow rule does "
                   "not apply";
            return NO;
        }
        if (t == UNK)
            *why = "condition compares a value the client does not have: a deny rule applies";
    }
    return YES;
}

/* Sets every field of out: callers pass uninitialized results. */
static void decide(struct wd_policy_result *out, enum wd_decision d, unsigned line, bool dflt)
{
    out->decision = d;
    out->line = line;
    out->by_default = dflt;
    out->by_source = false;
    out->bad_topic = false;
}

/* A rule source at its splice point: YES when it decided (out set), NO when it has
 * nothing to say, ERR when its condition cannot be evaluated (the caller denies). */
static enum tri source_decides(const struct wd_policy *p, const struct wd_rule *r,
                               const struct wd_authz_req *req, const struct wd_policy_sources *src,
                               struct wd_policy_result *out, const char **why)
{
    if (!src || !src->eval) {
        *why = "rule source not consulted (no credential store here)";
        return NO;
    }
    enum tri t = YES;
    if (r->when) {
        t = cond_eval(p, r->when, &req->client);
        if (t == NO) {
            *why = "condition is false";
            return NO;
        }
        if (t == ERR) {
            *why = "condition could not be evaluated (regex limit): denied";
            return ERR;
        }
    }
    struct wd_policy_result got = {.decision = WD_DECISION_DENY, .line = r->line};
    int rc = src->eval(src->ctx, r->source, req, &got);
    if (rc == 0) {
        *why = "source has no matching entry";
        return NO;
    }
    /* fail closed: only an explicit 1 with ALLOW allows */
    bool allow = rc == 1 && got.decision == WD_DECISION_ALLOW;
    /* unknown (a value the client does not have): a source can allow and deny, so it is
     * consulted and only its deny applies, as for an allow rule and a deny rule. Skipping it
     * would let a client that drops a value (its certificate, its username) escape a deny
     * that a client with a wrong value gets. */
    if (t == UNK && allow) {
        *why = "condition compares a value the client does not have: the source allows, "
               "which does not apply";
        return NO;
    }
    decide(out, allow ? WD_DECISION_ALLOW : WD_DECISION_DENY, r->line, false);
    out->by_source = true;
    *why = allow      ? "the source allows"
           : t == UNK ? "condition compares a value the client does not have: the source denies, "
                        "which applies"
                      : "the source denies";
    return YES;
}

static enum tri rule_matches(const struct wd_policy *p, const struct wd_rule *r,
                             const struct wd_authz_req *req, const char **why)
{
    unsigned act = req->action == WD_ACTION_PUBLISH ? WD_ACT_PUBLISH : WD_ACT_SUBSCRIBE;
    if (!(r->actions & act))
        return rule_applies(p, r, req, why);
    bool covered = false;
    for (size_t i = 0; i < r->ntopics && !covered; i++)
        covered = topic_covers(&r->topics[i], req->topic, req->topic_len, &req->client);
    *why = "matches";
    if (!covered && req->action == WD_ACTION_SUBSCRIBE && r->perm == WD_DECISION_DENY) {
        for (size_t i = 0; i < r->ntopics && !covered; i++)
            covered = topic_overlaps(&r->topics[i], req->topic, req->topic_len, &req->client);
        *why = "overlaps: the subscription can receive topics this deny rule denies";
    }
    if (!covered) {
        *why = req->action == WD_ACTION_SUBSCRIBE
                   ? (r->perm == WD_DECISION_DENY ? "topic does not overlap the subscription"
                                                  : "topic does not cover the subscription")
                   : "topic does not match";
        return NO;
    }
    return rule_applies(p, r, req, why);
}

/* A request whose topic is no valid MQTT topic name (publish) or filter (subscribe) is
 * denied before any rule is tried: what "covers" and "overlaps" mean is defined for valid
 * topics only, so a malformed one ("a/#/b", "#/", "a+", "") must not reach a rule that
 * could read it more widely. EMQX refuses such packets itself; this is defence in depth
 * for any other caller. */
static bool refuse_bad_topic(const struct wd_authz_req *req, struct wd_policy_result *out)
{
    if (wd_topic_request_valid(req->topic, req->topic_len, req->action == WD_ACTION_SUBSCRIBE))
        return false;
    decide(out, WD_DECISION_DENY, 0, false);
    out->bad_topic = true;
    return true;
}

#define WD_BAD_TOPIC_WHY "the topic is not a valid MQTT topic name or filter: denied"

/* Rule i, source or not: YES (out set), NO or ERR (out set to DENY at its line). */
static enum tri rule_decides(const struct wd_policy *p, size_t i, const struct wd_authz_req *req,
                             const struct wd_policy_sources *src, struct wd_policy_result *out,
                             const char **why)
{
    const struct wd_rule *r = &p->rules[i];
    enum tri t =
        r->is_source ? source_decides(p, r, req, src, out, why) : rule_matches(p, r, req, why);
    if (t == YES && !r->is_source)
        decide(out, r->perm, r->line, false);
    else if (t == ERR)
        decide(out, WD_DECISION_DENY, r->line, false);
    return t;
}

void wd_policy_authorize_linear_src(const struct wd_policy *p, const struct wd_authz_req *req,
                                    const struct wd_policy_sources *src,
                                    struct wd_policy_result *out)
{
    if (refuse_bad_topic(req, out))
        return;
    for (size_t i = 0; i < p->nrules; i++) {
        const char *why;
        if (rule_decides(p, i, req, src, out, &why) != NO)
            return;
    }
    decide(out, p->authz_default, p->authz_default_line, true);
}

void wd_policy_authorize_linear(const struct wd_policy *p, const struct wd_authz_req *req,
                                struct wd_policy_result *out)
{
    wd_policy_authorize_linear_src(p, req, NULL, out);
}

static bool has_wildcard(const struct wd_req_level *lv, int nlv)
{
    for (int i = 0; i < nlv; i++)
        if (lv[i].len == 1 && (lv[i].s[0] == '+' || lv[i].s[0] == '#'))
            return true;
    return false;
}

void wd_policy_authorize_src(const struct wd_policy *p, const struct wd_authz_req *req,
                             const struct wd_policy_sources *src, struct wd_policy_result *out)
{
    if (p->linear) {
        wd_policy_authorize_linear_src(p, req, src, out); /* refuses a bad topic itself */
        return;
    }
    if (refuse_bad_topic(req, out))
        return;
    struct wd_req_level lv[WD_TOPIC_MAX_LEVELS];
    int nlv = wd_trie__split(req->topic, req->topic_len, lv, WD_TOPIC_MAX_LEVELS);
    if (nlv < 0) {
        /* deeper than any rule topic can be: the linear scan handles it exactly */
        wd_policy_authorize_linear_src(p, req, src, out);
        return;
    }
    struct wd_cand cands[MAX_CANDS];
    int nc = wd_trie__collect(&p->trie, lv, nlv, req->topic, req->topic_len, &req->client, cands,
                              MAX_CANDS);
    if (nc >= 0 && req->action == WD_ACTION_SUBSCRIBE && p->has_deny_sub && has_wildcard(lv, nlv)) {
        int no = wd_trie__collect_overlap(&p->deny_sub, lv, nlv, &req->client, cands + nc,
                                          MAX_CANDS - nc);
        nc = no < 0 ? -1 : nc + no;
    }
    if (nc < 0) {
        wd_policy_authorize_linear_src(p, req, src, out);
        return;
    }
    /* the splice points still ahead, ascending (none to visit without src: they never
     * match then, and their conditions are not evaluated) */
    const uint32_t *sp = NULL, *se = NULL;
    if (src) {
        sp = p->sources;
        se = sp + p->nsources;
    }
    /* merge the ascending candidate lists; the first rule that applies decides */
    for (;;) {
        uint32_t best = UINT32_MAX;
        for (int i = 0; i < nc; i++)
            if (cands[i].pos < cands[i].n && cands[i].rules[cands[i].pos] < best)
                best = cands[i].rules[cands[i].pos];
        /* sources before the next candidate (all that remain once candidates run out) */
        for (; sp != se && *sp < best; sp++) {
            const char *why;
            if (rule_decides(p, *sp, req, src, out, &why) != NO)
                return;
        }
        if (best == UINT32_MAX)
            break;
        for (int i = 0; i < nc; i++)
            if (cands[i].pos < cands[i].n && cands[i].rules[cands[i].pos] == best)
                cands[i].pos++;
        const struct wd_rule *r = &p->rules[best];
        const char *why;
        enum tri t = rule_applies(p, r, req, &why);
        if (t == YES) {
            decide(out, r->perm, r->line, false);
            return;
        }
        if (t == ERR) {
            decide(out, WD_DECISION_DENY, r->line, false);
            return;
        }
    }
    decide(out, p->authz_default, p->authz_default_line, true);
}

void wd_policy_authorize(const struct wd_policy *p, const struct wd_authz_req *req,
                         struct wd_policy_result *out)
{
    wd_policy_authorize_src(p, req, NULL, out);
}

void wd_policy_explain_authorize_src(const struct wd_policy *p, const struct wd_authz_req *req,
                                     const struct wd_policy_sources *src, wd_policy_explain_fn fn,
                                     void *ctx, struct wd_policy_result *out)
{
    if (refuse_bad_topic(req, out)) {
        fn(ctx, 0, true, WD_BAD_TOPIC_WHY);
        return;
    }
    for (size_t i = 0; i < p->nrules; i++) {
        const char *why = "";
        enum tri t = rule_decides(p, i, req, src, out, &why);
        if (t != NO) {
            fn(ctx, p->rules[i].line, true, why);
            return;
        }
        fn(ctx, p->rules[i].line, false, why);
    }
    decide(out, p->authz_default, p->authz_default_line, true);
    fn(ctx, p->authz_default_line, true,
       p->authz_default == WD_DECISION_NOMATCH && !p->authz_default_line
           ? "no rule matched (no default: no match)"
           : "no rule matched: the default decides");
}

void wd_policy_explain_authorize(const struct wd_policy *p, const struct wd_authz_req *req,
                                 wd_policy_explain_fn fn, void *ctx, struct wd_policy_result *out)
{
    wd_policy_explain_authorize_src(p, req, NULL, fn, ctx, out);
}
