/* SPDX-License-Identifier: Apache-2.0 */
/*
 * compile.c: AST -> compiled policy (policy_int.h).
 *
 * What compiling does beyond copying: topic filters are validated and split into levels
 * (literal, +, #, template) and inserted into the trie; conditions become sorted string
 * sets, CIDR masks and JIT-compiled PCRE2 patterns anchored at both ends; meaning errors
 * (a default that is not last, `retain` on a subscribe rule, a regex that does not
 * compile, ...) are reported with their position; and rules that can never decide
 * (shadowed by an earlier unconditional rule) or repeat an earlier one are warned about.
 *
 * compile_ast() serves both inputs: a parsed policy file, and rules from a credential
 * store (wd_policy_compile_rules), which are turned into the same AST in memory. In that
 * "store" mode one rule's errors skip that rule only (reported through a callback, and
 * the diagnostics are dropped rule by rule, so any number of bad rules costs nothing),
 * no warnings are made, and there is no default: no match is NOMATCH.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/utf8.h"
#include "core/wd.h"
#include "policy/policy_int.h"
#include "policy/topic.h"

static atomic_ulong g_generation;

/* Store mode (wd_policy_compile_rules): rules that do not compile are skipped and
 * reported one by one instead of failing the whole policy. */
struct store_mode {
    wd_policy_skip_fn skip;
    void *ud;
    const char **why; /* per statement: a problem found while building the AST, or NULL */
};

struct shadow_key {
    uint64_t h;
    const struct wd_ctopic *t; /* NULL: a free slot */
    uint32_t rule;
};

struct cctx {
    struct wd_policy *p;
    struct wd_diags *d;
    struct wd_arena *a;
    const struct store_mode *store; /* NULL: a policy file */
    bool saw_claim;                 /* a ${claim.X} in the topics compiled so far */
    bool in_authn;                  /* compiling an authn step's condition */
    /* the shadow check's index (policy files only; freed after compiling): the topics of
     * the unconditional rules before the first rule source, and the same topics by text
     * (eq flag, text) -> rule, to skip one whose options an earlier rule with the same
     * topic covers. See shadowed_by(). */
    struct wd_trie shadow;
    struct shadow_key *keys;
    size_t nkeys, capkeys; /* capkeys: 0 or a power of two */
};

/* At most max bytes of s for a message: cut at a character boundary (s is UTF-8), control
 * characters shown as '?', so that quoting a topic can neither flood nor break a log line. */
static const char *excerpt(char *buf, size_t cap, const char *s, size_t n, size_t max)
{
    if (max > cap - 1)
        max = cap - 1;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--; /* s[n] continues a character: cut before that character */
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    buf[n] = '\0';
    return buf;
}

/* ---- canonical text (explain output and duplicate detection) ---- */

static void sb_quoted(struct wd_buf *b, const char *s, size_t n)
{
    wd_buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            wd_buf_put(b, e, 2);
        } else if (c < 0x20) {
            char e[5];
            snprintf(e, sizeof e, "\\x%02x", c);
            wd_buf_put(b, e, 4);
        } else {
            wd_buf_put(b, (const char *)&s[i], 1);
        }
    }
    wd_buf_put(b, "\"", 1);
}

static void sb_value(struct wd_buf *b, const struct wd_ast_value *v)
{
    if (v->is_num) {
        char n[32];
        snprintf(n, sizeof n, "%ld", v->num);
        wd_buf_puts(b, n);
    } else {
        sb_quoted(b, v->s, v->len);
    }
}

static void cond_text(struct wd_buf *b, const struct wd_ast_cond *c, int parent_prec)
{
    int prec = c->kind == WD_AC_OR ? 1 : c->kind == WD_AC_AND ? 2 : 3;
    if (prec < parent_prec)
        wd_buf_puts(b, "(");
    switch (c->kind) {
    case WD_AC_OR:
    case WD_AC_AND:
        cond_text(b, c->l, prec);
        wd_buf_puts(b, c->kind == WD_AC_OR ? " or " : " and ");
        cond_text(b, c->r, prec + 1);
        break;
    case WD_AC_NOT:
        wd_buf_puts(b, "not ");
        cond_text(b, c->l, 3);
        break;
    case WD_AC_SUPERUSER:
        wd_buf_puts(b, "superuser");
        break;
    case WD_AC_ANONYMOUS:
        wd_buf_puts(b, "anonymous");
        break;
    case WD_AC_EQ:
    case WD_AC_RE:
        wd_buf_puts(b, wd_field_name(c->field));
        wd_buf_puts(b, c->kind == WD_AC_EQ ? " = " : " ~ ");
        sb_value(b, &c->vals[0]);
        break;
    case WD_AC_IN:
        wd_buf_puts(b, wd_field_name(c->field));
        wd_buf_puts(b, " in [");
        for (size_t i = 0; i < c->nvals; i++) {
            if (i)
                wd_buf_puts(b, ", ");
            sb_value(b, &c->vals[i]);
        }
        wd_buf_puts(b, "]");
        break;
    }
    if (prec < parent_prec)
        wd_buf_puts(b, ")");
}

/* ---- conditions ---- */

static bool is_string_field(enum wd_field f)
{
    return f == WD_FIELD_USERNAME || f == WD_FIELD_CLIENTID || f == WD_FIELD_CN ||
           f == WD_FIELD_PROTOCOL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void keep_re(struct wd_policy *p, pcre2_code *re)
{
    if (p->nres == p->capres) {
        p->capres = p->capres ? p->capres * 2 : 16;
        p->res = wd_realloc(p->res, p->capres * sizeof *p->res);
    }
    p->res[p->nres++] = re;
}

static bool parse_tmpl(struct cctx *cx, const char *lv, size_t n, unsigned line, unsigned col,
                       struct wd_tmpl **out);

static bool has_placeholder(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '$' && s[i + 1] == '{')
            return true;
    return false;
}

/* The string values of an EQ/IN condition: literal ones sorted into k->strs for bsearch,
 * those with a placeholder compiled into k->tmpls (rendered for each request, as a topic's
 * are; `$${` is a literal `${`). A ${claim.NAME} in an authn step's condition is an error:
 * no step has verified a token yet. */
static bool compile_values(struct cctx *cx, const struct wd_ast_cond *c, struct wd_cond *k)
{
    size_t n = c->nvals ? c->nvals : 1;
    k->strs = wd_arena_alloc(cx->a, n * sizeof *k->strs);
    k->tmpls = wd_arena_alloc(cx->a, n * sizeof *k->tmpls);
    bool ok = true;
    for (size_t i = 0; i < c->nvals; i++) {
        const struct wd_ast_value *v = &c->vals[i];
        if (!has_placeholder(v->s, v->len)) {
            k->strs[k->nstrs++] = wd_arena_strndup(cx->a, v->s, v->len);
            continue;
        }
        struct wd_tmpl *t = NULL;
        if (!parse_tmpl(cx, v->s, v->len, v->line, v->col, &t) || !t) {
            ok = false;
            continue;
        }
        if (!t->text) { /* only `$${` escapes: a literal */
            k->strs[k->nstrs++] = t->parts[0].s;
            continue;
        }
        for (size_t j = 0; j < t->nparts; j++) {
            if (!t->parts[j].var || t->parts[j].v != WD_VAR_CLAIM)
                continue;
            if (cx->in_authn) {
                wd_diag_add(cx->d, WD_DIAG_ERROR, v->line, v->col,
                            "'${claim.%s}' is unknown while authenticating (no step has verified "
                            "a token yet): test it in authorization rules only",
                            t->parts[j].s);
                ok = false;
            }
            cx->p->uses_claims = true;
        }
        k->tmpls[k->ntmpls++] = t;
    }
    qsort(k->strs, k->nstrs, sizeof *k->strs, cmp_str);
    return ok;
}

static const struct wd_cond *compile_cond(struct cctx *cx, const struct wd_ast_cond *c)
{
    struct wd_cond *k = wd_arena_alloc(cx->a, sizeof *k);
    k->kind = c->kind;
    k->field = c->field;
    switch (c->kind) {
    case WD_AC_OR:
    case WD_AC_AND:
        k->l = compile_cond(cx, c->l);
        k->r = compile_cond(cx, c->r);
        return (k->l && k->r) ? k : NULL;
    case WD_AC_NOT:
        k->l = compile_cond(cx, c->l);
        return k->l ? k : NULL;
    case WD_AC_SUPERUSER:
        cx->p->uses_superuser = true;
        return k;
    case WD_AC_ANONYMOUS:
        return k;
    default:
        break;
    }
    const char *fname = wd_field_name(c->field);
    bool ok = true;
    if (c->field == WD_FIELD_PORT) {
        if (c->kind == WD_AC_RE) {
            wd_diag_add(cx->d, WD_DIAG_ERROR, c->line, c->col,
                        "'port' is a number: use port = N or port in [N, ...]");
            return NULL;
        }
        k->nums = wd_arena_alloc(cx->a, c->nvals * sizeof *k->nums);
        for (size_t i = 0; i < c->nvals; i++) {
            const struct wd_ast_value *v = &c->vals[i];
            if (!v->is_num || v->num < 0 || v->num > 65535) {
                wd_diag_add(cx->d, WD_DIAG_ERROR, v->line, v->col,
                            "a port is a number from 0 to 65535 (not quoted)");
                ok = false;
            }
            k->nums[i] = v->num;
        }
        k->nnums = c->nvals;
        if (c->kind == WD_AC_IN && c->nvals == 0)
            wd_diag_add(cx->d, WD_DIAG_WARNING, c->line, c->col, "empty list: never true");
        return ok ? k : NULL;
    }
    for (size_t i = 0; i < c->nvals; i++) {
        if (c->vals[i].is_num) {
            wd_diag_add(cx->d, WD_DIAG_ERROR, c->vals[i].line, c->vals[i].col,
                        "'%s' values are strings: quote them", fname);
            ok = false;
        }
    }
    if (!ok)
        return NULL;
    if (c->field == WD_FIELD_PEER) {
        if (c->kind != WD_AC_IN) {
            wd_diag_add(cx->d, WD_DIAG_ERROR, c->line, c->col,
                        "'peer' takes a list of addresses or CIDRs: peer in [\"10.0.0.0/8\"]");
            return NULL;
        }
        k->cidrs = wd_arena_alloc(cx->a, (c->nvals ? c->nvals : 1) * sizeof *k->cidrs);
        for (size_t i = 0; i < c->nvals; i++) {
            const struct wd_ast_value *v = &c->vals[i];
            char why[256], ex[72], net[64];
            bool host_bits;
            if (wd_cidr_parse(v->s, v->len, &k->cidrs[i], &host_bits, why, sizeof why) != WD_OK) {
                wd_diag_add(cx->d, WD_DIAG_ERROR, v->line, v->col, "bad address \"%s\": %s",
                            excerpt(ex, sizeof ex, v->s, v->len, 64), why);
                ok = false;
            } else if (host_bits) {
                wd_diag_add(cx->d, WD_DIAG_WARNING, v->line, v->col,
                            "\"%s\" has bits set past its prefix: it means %s",
                            excerpt(ex, sizeof ex, v->s, v->len, 64),
                            wd_cidr_str(&k->cidrs[i], net, sizeof net));
            }
        }
        k->ncidrs = c->nvals;
        if (c->nvals == 0)
            wd_diag_add(cx->d, WD_DIAG_WARNING, c->line, c->col, "empty list: never true");
        return ok ? k : NULL;
    }
    if (!is_string_field(c->field))
        return NULL;
    if (c->kind == WD_AC_RE) {
        if (has_placeholder(c->vals[0].s, c->vals[0].len)) {
            /* a client's value would be read as a pattern: refused, not escaped, so that a
             * regex never means something else than it reads */
            wd_diag_add(cx->d, WD_DIAG_ERROR, c->vals[0].line, c->vals[0].col,
                        "a regular expression cannot hold a placeholder ('${'): a client's "
                        "value would be read as a pattern; compare with = or in");
            return NULL;
        }
        int err;
        PCRE2_SIZE off;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)c->vals[0].s, c->vals[0].len,
                          PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_NEVER_BACKSLASH_C,
                          &err, &off, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            wd_diag_add(cx->d, WD_DIAG_ERROR, c->vals[0].line, c->vals[0].col,
                        "bad regular expression at offset %zu: %s", (size_t)off, (char *)msg);
            return NULL;
        }
        /* JIT when available; the interpreter otherwise (same results, same limits) */
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
        keep_re(cx->p, re);
        k->re = re;
        return k;
    }
    if (!compile_values(cx, c, k))
        return NULL;
    if (c->kind == WD_AC_IN && c->nvals == 0)
        wd_diag_add(cx->d, WD_DIAG_WARNING, c->line, c->col, "empty list: never true");
    for (size_t i = 0; i < c->nvals; i++)
        if (c->vals[i].len == 0)
            wd_diag_add(cx->d, WD_DIAG_WARNING, c->vals[i].line, c->vals[i].col,
                        "an empty %s never matches (an absent value is not \"\")", fname);
    return k;
}

static const struct wd_cond *compile_when(struct cctx *cx, const struct wd_ast_cond *c, bool *ok)
{
    if (!c)
        return NULL;
    const struct wd_cond *k = compile_cond(cx, c);
    if (!k) {
        *ok = false;
        return NULL;
    }
    struct wd_buf b = {0};
    cond_text(&b, c, 0);
    ((struct wd_cond *)k)->text = wd_arena_strdup(cx->a, b.s);
    wd_buf_free(&b);
    return k;
}

/* `superuser` says what the step that authenticated this connection found out: while the
 * chain runs, nothing has yet. Reports every use in an authn step's condition. */
static void check_authn_cond(struct cctx *cx, const struct wd_ast_cond *c)
{
    if (!c)
        return;
    if (c->kind == WD_AC_SUPERUSER)
        wd_diag_add(cx->d, WD_DIAG_ERROR, c->line, c->col,
                    "'superuser' is unknown while authenticating (the step that allows the "
                    "client decides it): test it in authorization rules only");
    check_authn_cond(cx, c->l);
    check_authn_cond(cx, c->r);
}

/* ---- topics ---- */

static bool parse_tmpl(struct cctx *cx, const char *lv, size_t n, unsigned line, unsigned col,
                       struct wd_tmpl **out)
{
    /* count parts first: a literal and a placeholder per "${", and a final literal (so a
     * long level of '$' from a store does not reserve two parts per byte) */
    size_t maxparts = 1;
    for (size_t i = 0; i + 1 < n; i++)
        if (lv[i] == '$' && lv[i + 1] == '{')
            maxparts += 2;
    struct wd_tmpl_part *parts = wd_arena_alloc(cx->a, maxparts * sizeof *parts);
    size_t np = 0;
    char *lit = wd_arena_alloc(cx->a, n + 1);
    size_t litn = 0;
    bool has_var = false;
    for (size_t i = 0; i < n;) {
        if (i + 2 < n && lv[i] == '$' && lv[i + 1] == '$' && lv[i + 2] == '{') {
            lit[litn++] = '$';
            lit[litn++] = '{';
            i += 3;
            continue;
        }
        if (lv[i] == '$' && i + 1 < n && lv[i + 1] == '{') {
            const char *close = memchr(lv + i, '}', n - i);
            if (!close) {
                wd_diag_add(cx->d, WD_DIAG_ERROR, line, col, "unterminated placeholder '${'");
                return false;
            }
            const char *name = lv + i + 2;
            size_t nl = (size_t)(close - name);
            struct wd_tmpl_part part = {.var = true};
            if (nl == 8 && memcmp(name, "username", 8) == 0)
                part.v = WD_VAR_USERNAME;
            else if (nl == 8 && memcmp(name, "clientid", 8) == 0)
                part.v = WD_VAR_CLIENTID;
            else if ((nl == 2 && memcmp(name, "cn", 2) == 0) ||
                     (nl == 16 && memcmp(name, "cert_common_name", 16) == 0))
                part.v = WD_VAR_CN; /* EMQX's spelling is an alias */
            else if (nl > 6 && memcmp(name, "claim.", 6) == 0) {
                part.v = WD_VAR_CLAIM;
                part.s = wd_arena_strndup(cx->a, name + 6, nl - 6);
                part.len = nl - 6;
                cx->saw_claim = true;
            } else {
                char ex[48];
                wd_diag_add(cx->d, WD_DIAG_ERROR, line, col,
                            "unknown placeholder '${%s}' (expected ${username}, ${clientid}, "
                            "${cn} or ${claim.NAME})",
                            excerpt(ex, sizeof ex, name, nl, 40));
                return false;
            }
            if (litn) {
                parts[np++] =
                    (struct wd_tmpl_part){.s = wd_arena_strndup(cx->a, lit, litn), .len = litn};
                litn = 0;
            }
            parts[np++] = part;
            has_var = true;
            i = (size_t)(close - lv) + 1;
            continue;
        }
        lit[litn++] = lv[i++];
    }
    if (litn)
        parts[np++] = (struct wd_tmpl_part){.s = wd_arena_strndup(cx->a, lit, litn), .len = litn};
    if (!has_var) {
        *out = NULL; /* only $${ escapes: a literal level (text in parts[0]) */
        if (np == 1) {
            struct wd_tmpl *t = wd_arena_alloc(cx->a, sizeof *t);
            t->parts = parts;
            t->nparts = np;
            *out = t;
        }
        return true;
    }
    struct wd_tmpl *t = wd_arena_alloc(cx->a, sizeof *t);
    t->parts = parts;
    t->nparts = np;
    t->text = wd_arena_strndup(cx->a, lv, n);
    t->len = n;
    *out = t;
    return true;
}

static bool compile_topic(struct cctx *cx, const struct wd_ast_topic *at, struct wd_ctopic *out)
{
    out->eq = at->eq;
    /* the AST is freed after compiling: the policy keeps its own copy */
    out->text = wd_arena_strndup(cx->a, at->text, at->len);
    out->len = at->len;
    if (at->len == 0) {
        wd_diag_add(cx->d, WD_DIAG_ERROR, at->line, at->col, "empty topic");
        return false;
    }
    if (at->eq)
        return true;
    if (!wd_topic_filter_valid(out->text, out->len)) {
        char ex[72];
        wd_diag_add(cx->d, WD_DIAG_ERROR, at->line, at->col,
                    "invalid topic filter \"%s\" ('+' and '#' must be whole levels, '#' last, "
                    "at most %d levels)",
                    excerpt(ex, sizeof ex, at->text, at->len, 64), WD_TOPIC_MAX_LEVELS);
        return false;
    }
    const char *lv[WD_TOPIC_MAX_LEVELS];
    size_t ln[WD_TOPIC_MAX_LEVELS];
    int n = wd_topic_split(out->text, out->len, lv, ln, WD_TOPIC_MAX_LEVELS);
    out->lv = wd_arena_alloc(cx->a, (size_t)n * sizeof *out->lv);
    out->nlv = n;
    for (int i = 0; i < n; i++) {
        struct wd_level *l = &out->lv[i];
        l->s = lv[i];
        l->len = ln[i];
        if (ln[i] == 1 && lv[i][0] == '+') {
            l->kind = WD_LV_PLUS;
        } else if (ln[i] == 1 && lv[i][0] == '#') {
            l->kind = WD_LV_HASH;
        } else if (memchr(lv[i], '$', ln[i]) && ln[i] >= 2) {
            struct wd_tmpl *t = NULL;
            if (!parse_tmpl(cx, lv[i], ln[i], at->line, at->col, &t))
                return false;
            if (t && t->text) {
                l->kind = WD_LV_TMPL;
                l->t = t;
            } else if (t) {
                l->kind = WD_LV_LITERAL; /* "$${" escapes resolved */
                l->s = t->parts[0].s;
                l->len = t->parts[0].len;
            } else {
                l->kind = WD_LV_LITERAL;
            }
        } else {
            l->kind = WD_LV_LITERAL;
        }
    }
    return true;
}

/* ---- shadowing: can an earlier unconditional rule decide everything rule r covers? ---- */

static bool options_cover(const struct wd_rule *e, const struct wd_rule *r)
{
    if ((e->actions & r->actions) != r->actions)
        return false;
    if (e->has_qos && (!r->has_qos || (e->qos_mask & r->qos_mask) != r->qos_mask))
        return false;
    if (e->retain != -1 && e->retain != r->retain)
        return false;
    return true;
}

static bool has_eq_topic(const struct wd_rule *e)
{
    for (size_t i = 0; i < e->ntopics; i++)
        if (e->topics[i].eq)
            return true;
    return false;
}

/* e decides every subscription its topics overlap, as a deny rule r does (topic.h) */
static bool decides_overlaps(const struct wd_rule *e)
{
    return e->perm == WD_DECISION_DENY && !has_eq_topic(e);
}

/* The earliest rule of the shadow index, other than r, whose topic covers the request
 * levels lv and whose options cover r's: its line, or 0. overlaps: topic t of r is a deny
 * rule's that decides the subscriptions it overlaps; then only a rule that does too can
 * hide it. */
/* Does compiled topic t stand for its text alone (an eq topic, or one with neither a
 * wildcard nor a placeholder level)? */
static bool topic_is_literal(const struct wd_ctopic *t)
{
    if (t->eq)
        return true;
    for (int i = 0; i < t->nlv; i++)
        if (t->lv[i].kind != WD_LV_LITERAL)
            return false;
    return true;
}

static unsigned index_cover(const struct cctx *cx, const struct wd_rule *r,
                            const struct wd_req_level *lv, int nlv, const struct wd_ctopic *t,
                            bool overlaps)
{
    struct wd_cand cands[256];
    /* an eq topic covers only the request that is its text: all of r's topic only when that
     * topic stands for nothing but its text (no wildcard, no placeholder) */
    int nc = wd_trie__collect(&cx->shadow, lv, nlv, topic_is_literal(t) ? t->text : NULL, t->len,
                              NULL, cands, 256);
    unsigned best = 0;
    for (int c = 0; c < nc; c++) {
        for (uint32_t k = 0; k < cands[c].n; k++) {
            const struct wd_rule *e = &cx->p->rules[cands[c].rules[k]];
            if (e->idx == r->idx || !options_cover(e, r))
                continue;
            if (overlaps && !decides_overlaps(e))
                continue;
            if (!best || e->line < best)
                best = e->line;
        }
    }
    return best;
}

static uint64_t fnv1a(const void *s, size_t n);

/* Adds topic t of rule r to the shadow index, unless an earlier rule with the same topic
 * (same eq flag and text: the same trie node) hides whatever r would: its options cover
 * r's, and it decides overlaps if r does. */
static void index_add(struct cctx *cx, const struct wd_ctopic *t, const struct wd_rule *r)
{
    uint64_t h = fnv1a(t->text, t->len) ^ (uint64_t)t->eq;
    if ((cx->nkeys + 1) * 2 > cx->capkeys) {
        size_t ncap = cx->capkeys ? cx->capkeys * 2 : 64;
        struct shadow_key *nk = wd_calloc(ncap, sizeof *nk);
        for (size_t i = 0; i < cx->capkeys; i++) {
            if (!cx->keys[i].t)
                continue;
            size_t j = cx->keys[i].h & (ncap - 1);
            while (nk[j].t)
                j = (j + 1) & (ncap - 1);
            nk[j] = cx->keys[i];
        }
        free(cx->keys);
        cx->keys = nk;
        cx->capkeys = ncap;
    }
    size_t j = h & (cx->capkeys - 1);
    for (; cx->keys[j].t; j = (j + 1) & (cx->capkeys - 1)) {
        const struct shadow_key *k = &cx->keys[j];
        if (k->h == h && k->t->eq == t->eq && k->t->len == t->len &&
            memcmp(k->t->text, t->text, t->len) == 0 && options_cover(&cx->p->rules[k->rule], r) &&
            (!decides_overlaps(r) || decides_overlaps(&cx->p->rules[k->rule])))
            return;
    }
    cx->keys[j] = (struct shadow_key){h, t, r->idx};
    cx->nkeys++;
    wd_trie__insert(&cx->shadow, t, r->idx);
}

/* Returns the line of an earlier rule that decides every request r's topic covers, and
 * adds r to the shadow index when it can shadow later rules (index_it).
 *
 * The rules that can shadow are the unconditional ones before the first rule source (a
 * source spliced in before e could decide first). Scanning every earlier rule at every
 * trie node a topic reaches was quadratic: N conditional rules on one topic meant N^2/2
 * steps. The shadow index holds only the rules that can shadow, and at each of its nodes
 * only rules that no earlier rule at that node makes redundant (index_add: the earlier
 * one has the smaller line wherever the later one applies, so the smallest covering
 * line, which is what is reported, is the same): a handful per node whatever the
 * policy. The main trie
 * is still walked, only to count the candidate lists: past 256 of them no warning is
 * made, as before. */
static unsigned shadowed_by(struct cctx *cx, const struct wd_rule *r, bool index_it)
{
    const struct wd_policy *p = cx->p;
    unsigned by = 0;
    bool shadowed = true;
    for (size_t ti = 0; ti < r->ntopics; ti++) {
        const struct wd_ctopic *t = &r->topics[ti];
        if (index_it)
            index_add(cx, t, r);
        if (!shadowed)
            continue;
        struct wd_req_level lv[WD_TOPIC_MAX_LEVELS];
        int nlv = 0;
        if (t->eq) {
            const char *ls[WD_TOPIC_MAX_LEVELS];
            size_t ln[WD_TOPIC_MAX_LEVELS];
            nlv = wd_topic_split(t->text, t->len, ls, ln, WD_TOPIC_MAX_LEVELS);
            if (nlv < 0) {
                shadowed = false;
                continue;
            }
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
        /* a deny rule also decides the subscriptions its topic overlaps (topic.h): an
         * earlier rule hides them all only if it is a deny rule without eq topics */
        bool overlaps = r->perm == WD_DECISION_DENY && (r->actions & WD_ACT_SUBSCRIBE) && !t->eq;
        struct wd_cand cands[256];
        unsigned best = index_cover(cx, r, lv, nlv, t, overlaps);
        if (best && wd_trie__collect(&p->trie, lv, nlv, t->text, t->len, NULL, cands, 256) < 0)
            best = 0;
        if (!best)
            shadowed = false;
        else if (best > by)
            by = best;
    }
    return shadowed ? by : 0;
}

/* ---- statements ---- */

/* A deny rule that applies to subscribe also goes into the overlap trie, which finds it
 * for the wildcard subscriptions it overlaps without covering (topic.h). eq topics are
 * literal: the main trie finds them. */
static void index_deny_overlap(struct wd_policy *p, const struct wd_rule *r)
{
    if (r->perm != WD_DECISION_DENY || !(r->actions & WD_ACT_SUBSCRIBE))
        return;
    for (size_t t = 0; t < r->ntopics; t++) {
        if (r->topics[t].eq)
            continue;
        if (!p->has_deny_sub)
            wd_trie__init_overlap(&p->deny_sub);
        p->has_deny_sub = true;
        wd_trie__insert(&p->deny_sub, &r->topics[t], r->idx);
    }
}

static int cmp_user(const void *a, const void *b)
{
    return strcmp(((const struct wd_policy_user *)a)->name,
                  ((const struct wd_policy_user *)b)->name);
}

struct dupslot {
    uint64_t h;
    const char *text;
    unsigned line;
};

static uint64_t fnv1a(const void *s, size_t n)
{
    const unsigned char *p = s;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void rule_canon(struct wd_buf *b, const struct wd_ast_stmt *s)
{
    wd_buf_puts(b, s->decision == WD_DECISION_ALLOW ? "allow " : "deny ");
    wd_buf_puts(b, s->actions == 3 ? "all" : s->actions == 1 ? "publish" : "subscribe");
    for (size_t i = 0; i < s->ntopics; i++) {
        wd_buf_puts(b, s->topics[i].eq ? " eq " : " ");
        sb_quoted(b, s->topics[i].text, s->topics[i].len);
    }
    if (s->has_qos) {
        char q[32];
        snprintf(q, sizeof q, " qos %u", s->qos_mask);
        wd_buf_puts(b, q);
    }
    if (s->retain != -1)
        wd_buf_puts(b, s->retain ? " retain true" : " retain false");
    if (s->when) {
        wd_buf_puts(b, " when ");
        cond_text(b, s->when, 0);
    }
}

/* Compiles the rule statement s into r. False when it has an error (reported). */
static bool compile_rule(struct cctx *cx, const struct wd_ast_stmt *s, struct wd_rule *r)
{
    bool ok = true;
    *r = (struct wd_rule){0};
    r->idx = (uint32_t)cx->p->nrules;
    r->line = s->line;
    r->perm = s->decision;
    r->actions = s->actions;
    r->has_qos = s->has_qos;
    r->qos_mask = s->qos_mask;
    r->retain = s->retain;
    if (s->retain != -1 && !(s->actions & WD_ACT_PUBLISH)) {
        wd_diag_add(cx->d, WD_DIAG_ERROR, s->line, s->retain_col,
                    "'retain' applies to publish rules only");
        ok = false;
    }
    if (!cx->store && (s->has_qos || s->retain != -1))
        wd_diag_add(cx->d, WD_DIAG_WARNING, s->line, s->has_qos ? s->qos_col : s->retain_col,
                    "EMQX does not send QoS or retain through ExHook: for its requests "
                    "this rule %s",
                    s->decision == WD_DECISION_ALLOW ? "never matches"
                                                     : "matches whatever the QoS/retain");
    r->topics = wd_arena_alloc(cx->a, (s->ntopics ? s->ntopics : 1) * sizeof *r->topics);
    r->ntopics = s->ntopics;
    for (size_t t = 0; t < s->ntopics; t++)
        if (!compile_topic(cx, &s->topics[t], &r->topics[t]))
            ok = false;
    r->when = compile_when(cx, s->when, &ok);
    return ok;
}

/* Warns when rule r (compiled from s) repeats an earlier rule or can never match. */
static void rule_warnings(struct cctx *cx, const struct wd_ast_stmt *s, const struct wd_rule *r,
                          struct dupslot *dups, size_t dupcap)
{
    struct wd_buf b = {0};
    rule_canon(&b, s);
    uint64_t h = fnv1a(b.s, b.len);
    size_t slot = h & (dupcap - 1);
    while (dups[slot].text) {
        if (dups[slot].h == h && strcmp(dups[slot].text, b.s) == 0) {
            wd_diag_add(cx->d, WD_DIAG_WARNING, s->line, s->col, "duplicate of the rule at line %u",
                        dups[slot].line);
            wd_buf_free(&b);
            return;
        }
        slot = (slot + 1) & (dupcap - 1);
    }
    dups[slot].h = h;
    dups[slot].text = wd_arena_strdup(cx->a, b.s);
    dups[slot].line = s->line;
    wd_buf_free(&b);
    /* an unconditional rule before any rule source decides what it covers */
    unsigned by = shadowed_by(cx, r, !r->when && cx->p->nsources == 0);
    if (by)
        wd_diag_add(cx->d, WD_DIAG_WARNING, s->line, s->col,
                    "rule can never match: every request it covers is decided "
                    "first by the rule at line %u",
                    by);
}

static const char *first_error(const struct wd_diags *d)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->v[i].sev == WD_DIAG_ERROR)
            return d->v[i].msg;
    return "rule does not compile";
}

/* The statements of a parsed file, or of store rules turned into an AST (store != NULL),
 * into a policy. */
static int compile_ast(const struct wd_ast *ast, struct wd_diags *diags,
                       wd_policy_secret_check_fn check, const struct store_mode *store,
                       struct wd_policy **out)
{
    *out = NULL;
    struct wd_policy *p = wd_calloc(1, sizeof *p);
    atomic_init(&p->refs, 1);
    wd_arena_init(&p->arena);
    /* only policy files count: the per-client store ACLs compiled into the cache would
     * otherwise make the served policy's generation jump by thousands between reloads */
    p->generation = store ? 0 : atomic_fetch_add(&g_generation, 1) + 1;
    p->authn_default = WD_DECISION_DENY;
    p->authz_default = store ? WD_DECISION_NOMATCH : WD_DECISION_DENY;
    /* a per-client store ACL of a few rules is scanned: at that size a scan is as fast as
     * the trie, and thousands of them sit in the cache and the sessions */
    p->linear = store && ast->n <= WD_POLICY_LINEAR_MAX;
    if (!p->linear)
        wd_trie__init(&p->trie);
    struct cctx cx = {.p = p, .d = diags, .a = &p->arena, .store = store};

    size_t nusers = 0, nsteps = 0, nrules = 0, nsources = 0;
    for (size_t i = 0; i < ast->n; i++) {
        switch (ast->stmts[i].kind) {
        case WD_AS_USER:
            nusers++;
            break;
        case WD_AS_AUTHN:
            nsteps++;
            break;
        case WD_AS_RULE:
            nrules++;
            break;
        case WD_AS_SOURCE:
            nrules++;
            nsources++;
            break;
        default:
            break;
        }
    }
    if (nrules > WD_POLICY_MAX_RULES) {
        wd_diag_add(diags, WD_DIAG_ERROR, 0, 0, "more than %d rules", WD_POLICY_MAX_RULES);
        goto fail;
    }
    p->users = wd_arena_alloc(&p->arena, (nusers ? nusers : 1) * sizeof *p->users);
    p->steps = wd_arena_alloc(&p->arena, (nsteps ? nsteps : 1) * sizeof *p->steps);
    p->rules = wd_arena_alloc(&p->arena, (nrules ? nrules : 1) * sizeof *p->rules);
    p->sources = wd_arena_alloc(&p->arena, (nsources ? nsources : 1) * sizeof *p->sources);

    unsigned authn_default_line = 0, authz_default_line = 0;
    size_t dupcap = 16;
    while (!store && dupcap < nrules * 2)
        dupcap *= 2;
    struct dupslot *dups = wd_calloc(dupcap, sizeof *dups);
    if (!store)
        wd_trie__init(&cx.shadow);

    for (size_t i = 0; i < ast->n; i++) {
        const struct wd_ast_stmt *s = &ast->stmts[i];
        bool ok = true;
        switch (s->kind) {
        case WD_AS_USER: {
            struct wd_policy_user *u = &p->users[p->nusers++];
            u->name = wd_arena_strdup(&p->arena, s->name);
            u->secret = wd_arena_strdup(&p->arena, s->secret);
            u->superuser = s->superuser;
            u->line = s->line;
            if (s->name[0] == '\0')
                wd_diag_add(diags, WD_DIAG_ERROR, s->line, s->name_col,
                            "a user name may not be empty");
            if (check) {
                char why[160] = "";
                int c = check(s->secret, why, sizeof why);
                if (c != 0)
                    wd_diag_add(diags, c < 0 ? WD_DIAG_ERROR : WD_DIAG_WARNING, s->line,
                                s->secret_col, "user \"%.64s\": %s", s->name, why);
            }
            break;
        }
        case WD_AS_AUTHN: {
            if (authn_default_line) {
                wd_diag_add(diags, WD_DIAG_ERROR, s->line, s->col,
                            "step after 'authn default' (line %u) can never run",
                            authn_default_line);
                break;
            }
            if (s->step == WD_STEP_DEFAULT) {
                authn_default_line = s->line;
                p->authn_default = s->decision;
                p->authn_default_line = s->line;
                break;
            }
            struct wd_policy_step *st = &p->steps[p->nsteps];
            st->kind = s->step;
            st->decision = s->decision;
            st->line = s->line;
            check_authn_cond(&cx, s->when);
            cx.in_authn = true;
            st->when = compile_when(&cx, s->when, &ok);
            cx.in_authn = false;
            if (ok)
                p->nsteps++;
            break;
        }
        case WD_AS_AUTHZ_DEFAULT:
            if (authz_default_line) {
                wd_diag_add(diags, WD_DIAG_ERROR, s->line, s->col,
                            "'authz default' already given at line %u", authz_default_line);
                break;
            }
            authz_default_line = s->line;
            p->authz_default = s->decision;
            p->authz_default_line = s->line;
            break;
        case WD_AS_SOURCE: {
            struct wd_rule *r = &p->rules[p->nrules];
            *r = (struct wd_rule){0};
            r->idx = (uint32_t)p->nrules;
            r->line = s->line;
            r->is_source = true;
            r->source = s->source;
            r->when = compile_when(&cx, s->when, &ok);
            if (ok) {
                p->sources[p->nsources++] = r->idx;
                p->nrules++;
            }
            break;
        }
        case WD_AS_RULE: {
            struct wd_rule *r = &p->rules[p->nrules];
            if (store && store->why[i]) {
                if (store->skip)
                    store->skip(store->ud, i, store->why[i]);
                break;
            }
            cx.saw_claim = false;
            ok = compile_rule(&cx, s, r);
            if (store) {
                /* one rule's errors skip that rule only; nothing else is reported */
                ok = ok && !diags->nerrors;
                if (!ok && store->skip)
                    store->skip(store->ud, i, first_error(diags));
                wd_diags_clear(diags);
            }
            if (!ok)
                break;
            if (!store)
                rule_warnings(&cx, s, r, dups, dupcap);
            p->uses_claims = p->uses_claims || cx.saw_claim;
            for (size_t t = 0; t < r->ntopics && !p->linear; t++)
                wd_trie__insert(&p->trie, &r->topics[t], r->idx);
            if (!p->linear)
                index_deny_overlap(p, r);
            p->nrules++;
            break;
        }
        }
    }
    free(dups);
    wd_trie__free(&cx.shadow);
    free(cx.keys);

    /* users: sorted for bsearch, names unique */
    qsort(p->users, p->nusers, sizeof *p->users, cmp_user);
    for (size_t i = 1; i < p->nusers; i++) {
        if (strcmp(p->users[i].name, p->users[i - 1].name) == 0) {
            unsigned a = p->users[i - 1].line, b = p->users[i].line;
            wd_diag_add(diags, WD_DIAG_ERROR, a > b ? a : b, 0,
                        "user \"%.64s\" already defined at line %u", p->users[i].name,
                        a < b ? a : b);
        }
    }
    bool has_users_step = false;
    for (size_t i = 0; i < p->nsteps; i++)
        has_users_step = has_users_step || p->steps[i].kind == WD_STEP_USERS;
    if (p->nusers && !has_users_step)
        wd_diag_add(diags, WD_DIAG_WARNING, p->users[0].line, 0,
                    "users are defined but no 'authn users' step uses them");
    if (has_users_step && !p->nusers)
        wd_diag_add(diags, WD_DIAG_WARNING, 0, 0, "'authn users' with no users defined");

    if (diags->nerrors)
        goto fail;
    *out = p;
    return WD_OK;
fail:
    wd_policy_release(p);
    return WD_ESYNTAX;
}

int wd_policy_compile(const char *src, size_t len, struct wd_diags *diags, struct wd_policy **out)
{
    return wd_policy_compile_ex(src, len, diags, NULL, out);
}

int wd_policy_compile_ex(const char *src, size_t len, struct wd_diags *diags,
                         wd_policy_secret_check_fn check, struct wd_policy **out)
{
    *out = NULL;
    diags->policy = 1; /* mask what may be a secret when rendering */
    if (len > WD_POLICY_MAX_BYTES) {
        wd_diag_add(diags, WD_DIAG_ERROR, 0, 0, "file larger than %u bytes", WD_POLICY_MAX_BYTES);
        return WD_ETOOBIG;
    }
    if (memchr(src, '\0', len)) {
        const char *z = memchr(src, '\0', len);
        unsigned line = 1;
        for (const char *q = src; q < z; q++)
            line += *q == '\n';
        wd_diag_add(diags, WD_DIAG_ERROR, line, 0, "NUL byte in the file (not a text file?)");
        return WD_ESYNTAX;
    }
    struct wd_ast ast;
    wd_parse(src, len, diags, &ast);
    int rc = compile_ast(&ast, diags, check, NULL, out);
    wd_ast_free(&ast);
    return rc;
}

/* ---- store rules ---- */

/* What makes a store rule unusable before its topics are compiled, or NULL; sets the
 * topics' lengths. */
static const char *rule_in_problem(const struct wd_policy_rule_in *r, size_t *lens)
{
    if (r->perm != WD_DECISION_ALLOW && r->perm != WD_DECISION_DENY)
        return "permission is neither allow nor deny";
    if (!r->actions || (r->actions & ~(WD_ACT_PUBLISH | WD_ACT_SUBSCRIBE)))
        return "action is not publish, subscribe or both";
    if (r->qos_mask & ~7u)
        return "QoS is not 0, 1 or 2";
    if (r->retain < -1 || r->retain > 1)
        return "retain is not true, false or any";
    if (!r->ntopics || !r->topics)
        return "no topic";
    for (size_t t = 0; t < r->ntopics; t++) {
        if (!r->topics[t])
            return "no topic";
        lens[t] = strnlen(r->topics[t], WD_TOPIC_MAX_LEN + 1);
        if (lens[t] > WD_TOPIC_MAX_LEN)
            return "topic longer than 65535 bytes";
        if (!wd_utf8_valid_nonul(r->topics[t], lens[t]))
            return "topic is not valid UTF-8";
    }
    return NULL;
}

int wd_policy_compile_rules(const struct wd_policy_rule_in *rules, size_t n, wd_policy_skip_fn skip,
                            void *ud, struct wd_policy **out)
{
    *out = NULL;
    if (n > WD_POLICY_MAX_RULES)
        return WD_ETOOBIG;
    /* the AST borrows the topics: compiling copies what the policy keeps */
    struct wd_ast ast = {0};
    wd_arena_init(&ast.arena);
    ast.stmts = wd_arena_alloc(&ast.arena, (n ? n : 1) * sizeof *ast.stmts);
    const char **why = wd_calloc(n ? n : 1, sizeof *why);
    for (size_t i = 0; i < n; i++) {
        const struct wd_policy_rule_in *in = &rules[i];
        struct wd_ast_stmt *s = &ast.stmts[ast.n++];
        s->kind = WD_AS_RULE;
        s->line = (unsigned)(i + 1);
        s->col = 1;
        s->decision = in->perm;
        s->actions = in->actions;
        size_t *lens = wd_arena_alloc(&ast.arena, (in->ntopics ? in->ntopics : 1) * sizeof *lens);
        why[i] = rule_in_problem(in, lens);
        if (why[i])
            continue;
        unsigned q = in->qos_mask & 7u;
        s->has_qos = q != 0 && q != 7;
        s->qos_mask = s->has_qos ? q : 0;
        /* EMQX ignores retain for subscribe rules; the policy language refuses it there */
        s->retain = (in->actions & WD_ACT_PUBLISH) ? in->retain : -1;
        s->topics = wd_arena_alloc(&ast.arena, in->ntopics * sizeof *s->topics);
        s->ntopics = in->ntopics;
        for (size_t t = 0; t < in->ntopics; t++)
            s->topics[t] = (struct wd_ast_topic){
                .eq = in->eq, .text = in->topics[t], .len = lens[t], .line = s->line, .col = 1};
    }
    struct wd_diags d;
    wd_diags_init(&d, "store", NULL, 0);
    struct store_mode store = {skip, ud, why};
    int rc = compile_ast(&ast, &d, NULL, &store, out);
    wd_diags_cleanup(&d);
    free(why);
    wd_ast_free(&ast);
    return rc;
}

/* ---- what the policy uses ---- */

bool wd_policy_has_source(const struct wd_policy *p, enum wd_source s)
{
    for (size_t i = 0; i < p->nsources; i++)
        if (p->rules[p->sources[i]].source == s)
            return true;
    return false;
}

bool wd_policy_uses_superuser(const struct wd_policy *p)
{
    return p->uses_superuser;
}

bool wd_policy_uses_claims(const struct wd_policy *p)
{
    return p->uses_claims;
}

bool wd_policy_has_authn_step(const struct wd_policy *p, enum wd_authn_step k)
{
    if (k == WD_STEP_DEFAULT)
        return p->authn_default_line != 0;
    for (size_t i = 0; i < p->nsteps; i++)
        if (p->steps[i].kind == k)
            return true;
    return false;
}

int wd_policy_load_file(const char *path, struct wd_diags *diags, wd_policy_secret_check_fn check,
                        struct wd_policy **out, char **src_out)
{
    *out = NULL;
    *src_out = NULL;
    wd_diags_init(diags, path, NULL, 0);
    char *buf, err[512];
    size_t len;
    int rc = wd_file_read(path, WD_POLICY_MAX_BYTES, &buf, &len, err, sizeof err);
    if (rc != WD_OK) {
        const char *why = strncmp(err, path, strlen(path)) == 0 ? err + strlen(path) + 2 : err;
        wd_diag_add(diags, WD_DIAG_ERROR, 0, 0, "%s", why);
        return rc;
    }
    diags->src = buf;
    diags->srclen = len;
    *src_out = buf;
    return wd_policy_compile_ex(buf, len, diags, check, out);
}

struct wd_policy *wd_policy_get(struct wd_policy *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void wd_policy_release(struct wd_policy *p)
{
    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < p->nres; i++)
        pcre2_code_free(p->res[i]);
    free(p->res);
    wd_trie__free(&p->trie);
    wd_trie__free(&p->deny_sub);
    wd_arena_free(&p->arena);
    free(p);
}

size_t wd_policy_nsteps(const struct wd_policy *p)
{
    return p->nsteps;
}

const struct wd_policy_step *wd_policy_step(const struct wd_policy *p, size_t i)
{
    return i < p->nsteps ? &p->steps[i] : NULL;
}

enum wd_decision wd_policy_authn_default(const struct wd_policy *p, unsigned *line)
{
    if (line)
        *line = p->authn_default_line;
    return p->authn_default;
}

const struct wd_policy_user *wd_policy_user_find(const struct wd_policy *p, const char *name)
{
    struct wd_policy_user key = {.name = name};
    return bsearch(&key, p->users, p->nusers, sizeof *p->users, cmp_user);
}

size_t wd_policy_nusers(const struct wd_policy *p)
{
    return p->nusers;
}

const struct wd_policy_user *wd_policy_user_at(const struct wd_policy *p, size_t i)
{
    return i < p->nusers ? &p->users[i] : NULL;
}

size_t wd_policy_nrules(const struct wd_policy *p)
{
    return p->nrules;
}

size_t wd_policy_memory(const struct wd_policy *p)
{
    return sizeof *p + p->arena.total + wd_trie__memory(&p->trie) + wd_trie__memory(&p->deny_sub);
}

unsigned long wd_policy_generation(const struct wd_policy *p)
{
    return p->generation;
}
