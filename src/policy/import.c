/* SPDX-License-Identifier: Apache-2.0 */
/*
 * import.c: see import.h. The acl.conf text is read one Erlang term at a time by
 * erlterm.c (which knows nothing of ACLs); this file translates each term tree into one
 * warden rule line, with an arena for the translation freed after each term.
 *
 * Decisions that are not obvious:
 * - EMQX's `all` topics (and `{Perm, all}`) match every topic including every `$`-topic;
 *   warden has no such form and its `#` skips `$`-topics. `all` becomes
 *   `["#", "$SYS/#"]` (the only `$` tree EMQX itself publishes to clients) and a warning
 *   says which requests the rule no longer covers. Listing guessed `$` prefixes would
 *   look complete without being so. One case is exact and not warned about: when the
 *   last rule is an unconditional `{Perm, all}`, `authz default Perm` answers the
 *   `$`-topics it misses just as the rule did in EMQX (where no_match is then never
 *   reached); otherwise the default is `allow`, EMQX's `authorization.no_match` default.
 * - A who-condition that can never be true (`{'or', []}`, `{ipaddrs, []}`) or a rule
 *   that can never match (an empty topic or QoS list) is folded at translation time and
 *   the rule is emitted commented out with a warning: warden has no `false` and an
 *   invented impossible condition would be harder to read than a comment.
 *   `{'and', []}` and `all` are true and vanish from the condition.
 * - Regexes are unanchored in EMQX and anchored in warden: `R` becomes
 *   `(?s:.*)(?:R)(?s:.*)`, which matches exactly what EMQX's search matched (`(?s:...)`
 *   also crosses newlines, as a search does; `\E` is added after a `\Q`). R is checked on
 *   its own first, so an unbalanced R cannot change meaning once wrapped.
 * - Placeholders are rendered as EMQX parses them (`\$\{[.]?([a-zA-Z0-9._]*)\}`, `${$}` is
 *   a literal `$`); literal `${` is written `$${`. `${cert_common_name}` and `${cn}` become
 *   `${cn}`; `${zone}` and `${client_attrs.*}` have no equivalent, and names EMQX does
 *   not render in ACL topics (`${peerhost}`, kept literally by EMQX) are errors too.
 * - A deny rule decides every subscription that overlaps its topic in warden, and only
 *   the ones its topic matches in EMQX (`secrets/#` does not stop a subscription to `#`).
 *   The compiled translation is checked for the deny rules where that changes a decision:
 *   a later allow rule (or an allow default) that lets through a subscription the deny
 *   rule overlaps without covering. Each is warned about with an example subscription.
 * - Every translation that succeeded is compiled with wd_policy_compile before it is
 *   returned; an error there is reported at the acl.conf line of the rule (a bug here,
 *   but the user gets a diagnostic instead of a policy warden rejects).
 * - Bounds: input up to WD_IMPORT_MAX_BYTES, the term reader's (nesting up to 64, 200,000
 *   elements per term, erlterm.h), warden's own limits on strings, lists and output
 *   size. Each kind of warning is listed ten times at most and then counted, so that a
 *   long file cannot push its errors past the diagnostics limit.
 */
#include "policy/import.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/arena.h"
#include "core/utf8.h"
#include "core/wd.h"
#include "policy/cidr.h"
#include "policy/erlterm.h"
#include "policy/lex.h"
#include "core/buf.h"
#include "policy/policy.h"
#include "policy/policy_int.h"
#include "policy/topic.h"

#define MAX_LIST 100000 /* items in one warden list (parse.c) */
#define MAX_TESTS 1000  /* tests in one condition (the compiler recurses on them) */

static void ob_num(struct wd_buf *b, unsigned long v)
{
    char n[32];
    snprintf(n, sizeof n, "%lu", v);
    wd_buf_puts(b, n);
}

static void ob_reset(struct wd_buf *b)
{
    b->len = 0;
    b->full = false;
    if (b->s)
        b->s[0] = '\0';
}

/* A warden string literal (docs/policy.md: \" \\ \n \t \xHH). */
static void ob_quoted(struct wd_buf *b, const char *s, size_t n)
{
    wd_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            wd_buf_put(b, e, 2);
        } else if (c == '\n') {
            wd_buf_put(b, "\\n", 2);
        } else if (c == '\t') {
            wd_buf_put(b, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            char e[8];
            snprintf(e, sizeof e, "\\x%02x", c);
            wd_buf_put(b, e, 4);
        } else {
            wd_buf_put(b, &s[i], 1);
        }
    }
    wd_buf_putc(b, '"');
}

/* ---- who-conditions, folded ---- */

enum ck {
    CK_TRUE,
    CK_FALSE,
    CK_TEST,
    CK_AND,
    CK_OR,
};

struct cnode {
    enum ck k;
    const char *text;             /* TEST: warden text */
    const struct wd_erl_term *at; /* FALSE: the term that makes it false */
    const char *why;              /* FALSE: why, for the warning */
    struct cnode *first, *last;   /* AND, OR */
    struct cnode *next;
};

/* ---- state ---- */

#define WARN_LIST 10

enum wkind {
    W_MAPPED,
    W_REGEX,
    W_EMPTY,
    W_OPTION,
    W_QOS,
    W_ONCE, /* said once per file anyway */
    W_UNDEFINED,
    W_NEVER,
    W_ALL,
    W_OVERLAP,
    W_KINDS,
};

static const char *const wkind_what[W_KINDS] = {
    "IPv4-mapped addresses", "unanchored regexes",
    "empty names",           "action options",
    "QoS and retain",        "",
    "\"undefined\"",         "rules left out",
    "'all' topics",          "deny rules and wider subscriptions",
};

struct imp {
    struct wd_diags *d;
    struct wd_arena a; /* the current term's translation */
    struct wd_buf tmp; /* text being built */

    /* the current rule */
    unsigned tests;
    bool tests_reported;
    bool warned_undefined;

    /* once per file */
    bool warned_plus, warned_widen;

    /* the last rule emitted decides everything ({Perm, all}): its 'all' warning waits,
     * because if no rule follows, `authz default Perm` makes it exact */
    bool catch_all;
    bool catch_all_allow;
    unsigned catch_all_line, catch_all_col;

    size_t warned[W_KINDS];

    const char *base; /* file name for `# FILE:LINE` */
    struct wd_buf out;
    unsigned *linemap; /* output line (0-based) -> acl.conf line (0: none) */
    size_t nlines, caplines;
    size_t nrules;
    bool rules_reported, size_reported;
};

static void vdiag(struct imp *im, enum wd_diag_sev sev, unsigned line, unsigned col,
                  const char *fmt, va_list ap)
{
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    wd_diag_add(im->d, sev, line, col, "%s", buf);
}

static void err_at(struct imp *im, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void err_at(struct imp *im, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(im, WD_DIAG_ERROR, line, col, fmt, ap);
    va_end(ap);
}

static void err(struct imp *im, const struct wd_erl_term *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err(struct imp *im, const struct wd_erl_term *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(im, WD_DIAG_ERROR, t->line, t->col, fmt, ap);
    va_end(ap);
}

/* Warnings of one kind are listed WARN_LIST times at most: a long file must not push its
 * errors past the diagnostics limit (WD_DIAG_MAX). The rest are counted, and said once. */
static void warn(struct imp *im, enum wkind k, const struct wd_erl_term *t, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void warn(struct imp *im, enum wkind k, const struct wd_erl_term *t, const char *fmt, ...)
{
    if (im->warned[k]++ >= WARN_LIST)
        return;
    va_list ap;
    va_start(ap, fmt);
    vdiag(im, WD_DIAG_WARNING, t->line, t->col, fmt, ap);
    va_end(ap);
}

static void warn_totals(struct imp *im)
{
    for (int k = 0; k < W_KINDS; k++)
        if (im->warned[k] > WARN_LIST)
            wd_diag_add(im->d, WD_DIAG_WARNING, 0, 0,
                        "%zu more warnings like the ones above about %s were not listed",
                        im->warned[k] - WARN_LIST, wkind_what[k]);
}

/* ---- who ---- */

static struct cnode *cnew(struct imp *im, enum ck k)
{
    struct cnode *c = wd_arena_alloc(&im->a, sizeof *c);
    c->k = k;
    return c;
}

static struct cnode *cfalse(struct imp *im, const struct wd_erl_term *at, const char *why)
{
    struct cnode *c = cnew(im, CK_FALSE);
    c->at = at;
    c->why = why;
    return c;
}

/* A test; text built in im->tmp. */
static struct cnode *ctest(struct imp *im, const struct wd_erl_term *at)
{
    if (++im->tests > MAX_TESTS) {
        if (!im->tests_reported)
            err(im, at, "condition with more than %d tests", MAX_TESTS);
        im->tests_reported = true;
        return NULL;
    }
    struct cnode *c = cnew(im, CK_TEST);
    c->text = wd_arena_strndup(&im->a, im->tmp.s, im->tmp.len);
    return c;
}

static bool check_len(struct imp *im, const struct wd_erl_term *at, size_t n)
{
    if (n <= WD_POLICY_MAX_STRING)
        return true;
    err(im, at, "string longer than %d bytes (warden's limit)", WD_POLICY_MAX_STRING);
    return false;
}

/* Appends "ADDRESS" to im->tmp if it is one; reports otherwise. */
static bool tr_addr(struct imp *im, const struct wd_erl_term *a)
{
    char d[96];
    if (a->k != WD_ERL_STRING) {
        wd_erl_describe(a, d, sizeof d);
        err(im, a, "expected an address string (\"10.0.0.0/8\"), got %s", d);
        return false;
    }
    /* the parser `peer in [...]` uses: what is refused here would be refused there */
    struct wd_cidr c;
    char why[256];
    if (wd_cidr_parse(a->s, a->len, &c, NULL, why, sizeof why) != WD_OK) {
        wd_erl_excerpt(a->s, a->len, d, sizeof d);
        err(im, a, "bad address \"%s\": %s", d, why);
        return false;
    }
    /* written as IPv6 and tested as IPv4: IPv4-mapped */
    bool mapped = c.family == 4 && memchr(a->s, ':', a->len);
    if (mapped)
        warn(im, W_MAPPED, a,
             "warden tests an IPv4-mapped IPv6 address as IPv4; EMQX compares it with "
             "IPv6 peers only");
    ob_quoted(&im->tmp, a->s, a->len);
    return true;
}

static void put_regex_literal(struct wd_buf *b, const char *r, size_t n)
{
    wd_buf_puts(b, "(?s:.*)(?:");
    wd_buf_put(b, r, n);
    /* a \Q...\E quote left open would swallow the closing parenthesis */
    for (size_t i = 0; i + 1 < n; i++) {
        if (r[i] == '\\' && r[i + 1] == 'Q') {
            wd_buf_puts(b, "\\E");
            break;
        }
    }
    wd_buf_puts(b, ")(?s:.*)");
}

static struct cnode *tr_regex(struct imp *im, const char *field, const struct wd_erl_term *re_tuple,
                              const struct wd_erl_term *r)
{
    int ec;
    PCRE2_SIZE off;
    /* as EMQX compiles it (re:compile/1, no options): invalid there, invalid here */
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)r->s, r->len, 0, &ec, &off, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        err(im, r, "bad regular expression at offset %zu: %s (EMQX rejects it too)", (size_t)off,
            (char *)msg);
        return NULL;
    }
    pcre2_code_free(code);
    struct wd_buf re = {0};
    put_regex_literal(&re, r->s, r->len);
    struct cnode *c = NULL;
    /* as warden compiles it (compile.c) */
    code = pcre2_compile((PCRE2_SPTR)re.s, re.len,
                         PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_NEVER_BACKSLASH_C,
                         &ec, &off, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        err(im, r, "this regular expression cannot be kept unanchored for warden: %s", (char *)msg);
        goto out;
    }
    pcre2_code_free(code);
    if (!check_len(im, r, re.len))
        goto out;
    warn(im, W_REGEX, re_tuple,
         "EMQX regexes are unanchored and warden's must match the whole %s: translated as "
         "\"(?s:.*)(?:...)(?s:.*)\" to keep EMQX's meaning; consider a regex for the whole "
         "value",
         field);
    ob_reset(&im->tmp);
    wd_buf_puts(&im->tmp, field);
    wd_buf_puts(&im->tmp, " ~ ");
    ob_quoted(&im->tmp, re.s, re.len);
    c = ctest(im, re_tuple);
out:
    free(re.s);
    return c;
}

/* {username, "x"} / {username, {re, "r"}} and the same for clientid. */
static struct cnode *tr_id(struct imp *im, const char *field, const struct wd_erl_term *w,
                           const struct wd_erl_term *v)
{
    char d[96];
    if (v->k == WD_ERL_STRING) {
        if (!check_len(im, v, v->len))
            return NULL;
        if (v->len == 0)
            warn(im, W_EMPTY, v, "warden treats an empty %s as no %s: this test is never true",
                 field, field);
        ob_reset(&im->tmp);
        wd_buf_puts(&im->tmp, field);
        wd_buf_puts(&im->tmp, " = ");
        ob_quoted(&im->tmp, v->s, v->len);
        return ctest(im, w);
    }
    if (v->k == WD_ERL_TUPLE && v->n == 2 && wd_erl_is_atom(v->first, "re")) {
        const struct wd_erl_term *r = v->first->next;
        if (r->k == WD_ERL_STRING)
            return tr_regex(im, field, v, r);
        wd_erl_describe(r, d, sizeof d);
        err(im, r, "expected a regular expression string, got %s", d);
        return NULL;
    }
    wd_erl_describe(v, d, sizeof d);
    err(im, v, "expected a %s string or {re, \"regex\"}, got %s", field, d);
    return NULL;
}

static struct cnode *tr_who(struct imp *im, const struct wd_erl_term *w);

/* {'and', [...]} / {'or', [...]}: folded (true/false absorbed, nested same-op flattened) */
static struct cnode *tr_bool(struct imp *im, const struct wd_erl_term *w,
                             const struct wd_erl_term *l, bool is_and)
{
    char d[96];
    if (l->k != WD_ERL_LIST) {
        wd_erl_describe(l, d, sizeof d);
        err(im, l, "expected a list of who-conditions, got %s", d);
        return NULL;
    }
    enum ck op = is_and ? CK_AND : CK_OR;
    enum ck unit = is_and ? CK_TRUE : CK_FALSE, zero = is_and ? CK_FALSE : CK_TRUE;
    struct cnode *res = cnew(im, op), *absorb = NULL;
    size_t n = 0;
    bool bad = false;
    for (const struct wd_erl_term *c = l->first; c; c = c->next) {
        struct cnode *x = tr_who(im, c);
        if (!x) {
            bad = true;
            continue;
        }
        if (x->k == unit)
            continue;
        if (x->k == zero) {
            if (!absorb)
                absorb = x;
            continue;
        }
        if (x->k == op) {
            for (struct cnode *y = x->first; y; y = y->next)
                n++;
            if (res->last)
                res->last->next = x->first;
            else
                res->first = x->first;
            res->last = x->last;
            continue;
        }
        x->next = NULL;
        if (res->last)
            res->last->next = x;
        else
            res->first = x;
        res->last = x;
        n++;
    }
    if (bad)
        return NULL;
    if (absorb)
        return absorb;
    if (n == 0)
        return is_and ? cnew(im, CK_TRUE)
                      : cfalse(im, w,
                               l->n ? "none of the conditions of this 'or' can be true"
                                    : "{'or', []} is never true");
    if (n == 1)
        return res->first;
    return res;
}

static struct cnode *tr_who(struct imp *im, const struct wd_erl_term *w)
{
    char d[96];
    if (wd_erl_is_atom(w, "all"))
        return cnew(im, CK_TRUE);
    const char *key =
        w->k == WD_ERL_TUPLE && w->n >= 1 && w->first->k == WD_ERL_ATOM ? w->first->s : "";
    if (strcmp(key, "client_attr") == 0) {
        err(im, w,
            "client_attr has no warden equivalent (warden's conditions test username, "
            "clientid, cn, protocol, peer and port)");
        return NULL;
    }
    if (!strcmp(key, "zone") || !strcmp(key, "listener") || !strcmp(key, "security_profile")) {
        err(im, w, "{%s, ...} (an EMQX 6 condition) has no warden equivalent", key);
        return NULL;
    }
    static const char *const known[] = {"user",   "username", "client", "clientid",
                                        "ipaddr", "ipaddrs",  "and",    "or"};
    bool ok = false;
    for (size_t i = 0; i < WD_ARRAY_LEN(known); i++)
        ok = ok || strcmp(key, known[i]) == 0;
    if (!ok) {
        wd_erl_describe(w, d, sizeof d);
        err(im, w,
            "unknown who-condition %s (expected all, {username, ...}, {clientid, ...}, "
            "{ipaddr, ...}, {ipaddrs, [...]}, {'and', [...]} or {'or', [...]})",
            d);
        return NULL;
    }
    if (w->n != 2) {
        err(im, w, "{%s, ...} has 2 elements, not %zu", key, w->n);
        return NULL;
    }
    const struct wd_erl_term *v = w->first->next;
    if (!strcmp(key, "user") || !strcmp(key, "username"))
        return tr_id(im, "username", w, v);
    if (!strcmp(key, "client") || !strcmp(key, "clientid"))
        return tr_id(im, "clientid", w, v);
    if (!strcmp(key, "and") || !strcmp(key, "or"))
        return tr_bool(im, w, v, key[0] == 'a');
    /* ipaddr, ipaddrs */
    ob_reset(&im->tmp);
    wd_buf_puts(&im->tmp, "peer in [");
    if (!strcmp(key, "ipaddr")) {
        if (!tr_addr(im, v))
            return NULL;
    } else {
        if (v->k != WD_ERL_LIST) {
            wd_erl_describe(v, d, sizeof d);
            err(im, v, "expected a list of addresses, got %s", d);
            return NULL;
        }
        if (v->n == 0)
            return cfalse(im, w, "{ipaddrs, []} matches no client");
        if (v->n > MAX_LIST) {
            err(im, v, "list longer than %d items", MAX_LIST);
            return NULL;
        }
        bool good = true;
        for (const struct wd_erl_term *a = v->first; a; a = a->next) {
            if (a != v->first)
                wd_buf_puts(&im->tmp, ", ");
            good = tr_addr(im, a) && good;
        }
        if (!good)
            return NULL;
    }
    wd_buf_puts(&im->tmp, "]");
    return ctest(im, w);
}

static void put_cond(struct wd_buf *b, const struct cnode *c, bool nested)
{
    if (c->k == CK_TEST) {
        wd_buf_puts(b, c->text);
        return;
    }
    if (nested)
        wd_buf_putc(b, '(');
    for (const struct cnode *x = c->first; x; x = x->next) {
        if (x != c->first)
            wd_buf_puts(b, c->k == CK_AND ? " and " : " or ");
        put_cond(b, x, true);
    }
    if (nested)
        wd_buf_putc(b, ')');
}

/* ---- action ---- */

struct action {
    unsigned mask; /* WD_ACT_* */
    const char *name;
    unsigned qos; /* bit n: QoS n; 7: any */
    int retain;   /* -1: any */
};

/* {qos, N} or {qos, [N, ...]}: ORs the levels into *mask. */
static bool qos_value(struct imp *im, const struct wd_erl_term *v, unsigned *mask, bool top)
{
    char d[96];
    if (v->k == WD_ERL_INT && v->num >= 0 && v->num <= 2) {
        *mask |= 1u << v->num;
        return true;
    }
    if (v->k == WD_ERL_LIST && top) {
        bool ok = true;
        for (const struct wd_erl_term *x = v->first; x; x = x->next)
            ok = qos_value(im, x, mask, false) && ok;
        return ok;
    }
    wd_erl_describe(v, d, sizeof d);
    err(im, v, "QoS must be 0, 1 or 2 (or a list of them), got %s", d);
    return false;
}

/* Returns false on error; *never set to the option that makes the rule never match. */
static bool tr_action(struct imp *im, const struct wd_erl_term *a, bool allow, struct action *act,
                      const struct wd_erl_term **never)
{
    char d[96];
    const struct wd_erl_term *name = a, *opts = NULL;
    act->qos = 7;
    act->retain = -1;
    if (a->k == WD_ERL_TUPLE && a->n == 2) {
        name = a->first;
        opts = a->first->next;
    }
    if (wd_erl_is_atom(name, "publish")) {
        act->mask = WD_ACT_PUBLISH;
        act->name = "publish";
    } else if (wd_erl_is_atom(name, "subscribe")) {
        act->mask = WD_ACT_SUBSCRIBE;
        act->name = "subscribe";
    } else if (wd_erl_is_atom(name, "all")) {
        act->mask = WD_ACT_PUBLISH | WD_ACT_SUBSCRIBE;
        act->name = "all";
    } else {
        wd_erl_describe(a, d, sizeof d);
        err(im, a, "unknown action %s (expected publish, subscribe, all or {Action, [Options]})",
            d);
        return false;
    }
    if (!opts)
        return true;
    if (opts->k != WD_ERL_LIST) {
        err(im, opts,
            "action options must be a list, as in {%s, [{qos, 1}, {retain, false}]} (EMQX 5.8 "
            "rejects {%s, {retain, true}})",
            act->name, act->name);
        return false;
    }
    bool ok = true, qos_seen = false, retain_seen = false, sub_retain_warned = false;
    const struct wd_erl_term *qos_at = NULL;
    unsigned qos = 0;
    for (const struct wd_erl_term *o = opts->first; o; o = o->next) {
        /* proplists: a bare atom `k` is {k, true}; other tuples of the wrong size are
         * skipped, as are non-tuples */
        const char *key = NULL;
        const struct wd_erl_term *val = NULL;
        if (o->k == WD_ERL_ATOM)
            key = o->s;
        else if (o->k == WD_ERL_TUPLE && o->n == 2 && o->first->k == WD_ERL_ATOM) {
            key = o->first->s;
            val = o->first->next;
        }
        if (key && strcmp(key, "qos") == 0) {
            qos_seen = true;
            if (!qos_at)
                qos_at = o;
            if (!val) {
                err(im, o, "QoS must be 0, 1 or 2 (or a list of them), got 'true'");
                ok = false;
            } else if (!qos_value(im, val, &qos, true)) {
                ok = false;
            }
        } else if (key && strcmp(key, "retain") == 0) {
            if (!(act->mask & WD_ACT_PUBLISH)) {
                if (!sub_retain_warned && !wd_erl_is_atom(val, "all"))
                    warn(im, W_OPTION, o, "EMQX ignores retain on subscribe rules: dropped");
                sub_retain_warned = true;
                continue;
            }
            if (retain_seen) {
                warn(im, W_OPTION, o, "EMQX uses the first retain option: this one is ignored");
                continue;
            }
            retain_seen = true;
            if (!val || wd_erl_is_atom(val, "true")) {
                act->retain = 1;
            } else if (wd_erl_is_atom(val, "false")) {
                act->retain = 0;
            } else if (!wd_erl_is_atom(val, "all")) {
                wd_erl_describe(val, d, sizeof d);
                err(im, val, "retain must be true, false or all, got %s", d);
                ok = false;
            }
        } else {
            wd_erl_describe(o, d, sizeof d);
            warn(im, W_OPTION, o,
                 "option %s is ignored (EMQX ignores it too; options are {qos, ...} "
                 "and {retain, ...})",
                 d);
        }
    }
    if (!ok)
        return false;
    if (qos_seen) {
        act->qos = qos;
        if (qos == 0)
            *never = qos_at;
    }
    if (!*never && (act->qos != 7 || act->retain != -1))
        warn(im, W_QOS, a,
             "EMQX does not send QoS or retain through ExHook, so warden cannot test them on "
             "EMQX's requests: this %s rule %s",
             allow ? "allow" : "deny",
             allow ? "never matches them" : "matches them whatever their QoS and retain flag");
    return true;
}

/* ---- topics ---- */

/* Does the filter have a '+' that, in EMQX, also lets a subscription to '.../#' through
 * (a '+' that is the last level, or followed only by '#')? */
static bool plus_quirk(const char *s, size_t n)
{
    const char *lv[WD_TOPIC_MAX_LEVELS];
    size_t ln[WD_TOPIC_MAX_LEVELS];
    int k = wd_topic_split(s, n, lv, ln, WD_TOPIC_MAX_LEVELS);
    for (int i = 0; i < k; i++) {
        if (ln[i] != 1 || lv[i][0] != '+')
            continue;
        if (i == k - 1 || (i == k - 2 && ln[k - 1] == 1 && lv[k - 1][0] == '#'))
            return true;
    }
    return false;
}

static bool is_var_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_';
}

/* Literal text for a warden topic: every "${" becomes "$${". */
static void put_literal(struct wd_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '$' && i + 1 < n && s[i + 1] == '{') {
            wd_buf_puts(b, "$${");
            i++;
        } else {
            wd_buf_putc(b, s[i]);
        }
    }
}

struct rule_flags {
    bool all_topics;
    bool undefined_warned;
};

/* An EMQX topic filter with placeholders -> warden topic text in im->tmp. */
static bool tr_template(struct imp *im, const struct wd_erl_term *at, const char *s, size_t n,
                        bool *has_var, bool *maybe_undefined)
{
    struct wd_buf lit = {0};
    bool ok = true;
    ob_reset(&im->tmp);
    for (size_t i = 0; i < n;) {
        if (s[i] == '$' && i + 1 < n && s[i + 1] == '{') {
            if (i + 3 < n && s[i + 2] == '$' && s[i + 3] == '}') { /* ${$}: a literal $ */
                wd_buf_putc(&lit, '$');
                i += 4;
                continue;
            }
            size_t k = i + 2;
            if (k < n && s[k] == '.')
                k++;
            size_t ns = k;
            while (k < n && is_var_char(s[k]))
                k++;
            if (k < n && s[k] == '}') {
                const char *name = s + ns;
                size_t nl = k - ns;
                const char *var = NULL;
                if (nl == 8 && !memcmp(name, "username", 8)) {
                    var = "${username}";
                    *maybe_undefined = true;
                } else if (nl == 8 && !memcmp(name, "clientid", 8)) {
                    var = "${clientid}";
                } else if ((nl == 16 && !memcmp(name, "cert_common_name", 16)) ||
                           (nl == 2 && !memcmp(name, "cn", 2))) {
                    var = "${cn}";
                    *maybe_undefined = true;
                }
                char ex[64];
                wd_erl_excerpt(name, nl, ex, sizeof ex);
                if (!var && ((nl == 4 && !memcmp(name, "zone", 4)) ||
                             (nl >= 13 && !memcmp(name, "client_attrs.", 13)))) {
                    err(im, at, "placeholder ${%s} has no warden equivalent", ex);
                    ok = false;
                } else if (!var) {
                    err(im, at,
                        "${%s} is not a placeholder in EMQX ACL topics (EMQX matches the literal "
                        "text; write ${$}{%s} if that is what you mean)",
                        ex, ex);
                    ok = false;
                } else if (lit.len && lit.s[lit.len - 1] == '$') {
                    err(im, at,
                        "a literal '$' right before a placeholder cannot be written in "
                        "warden");
                    ok = false;
                }
                put_literal(&im->tmp, lit.s, lit.len);
                ob_reset(&lit);
                if (var)
                    wd_buf_puts(&im->tmp, var);
                *has_var = true;
                i = k + 1;
                continue;
            }
        }
        wd_buf_putc(&lit, s[i]);
        i++;
    }
    put_literal(&im->tmp, lit.s, lit.len);
    free(lit.s);
    return ok;
}

/* One topic; appended to b. */
static bool tr_topic(struct imp *im, const struct wd_erl_term *t, struct wd_buf *b,
                     unsigned actions, struct rule_flags *rf)
{
    char d[96];
    const char *s;
    size_t n;
    bool eq = false;
    if (t->k == WD_ERL_STRING) {
        s = t->s;
        n = t->len;
        if (n >= 3 && memcmp(s, "eq ", 3) == 0) {
            eq = true;
            s += 3;
            n -= 3;
        }
    } else if (t->k == WD_ERL_TUPLE && t->n == 2 && wd_erl_is_atom(t->first, "eq") &&
               t->first->next->k == WD_ERL_STRING) {
        eq = true;
        s = t->first->next->s;
        n = t->first->next->len;
    } else {
        wd_erl_describe(t, d, sizeof d);
        err(im, t, "a topic is a string, \"eq TOPIC\" or {eq, TOPIC}; got %s", d);
        return false;
    }
    if (n == 0) {
        err(im, t, "empty topic");
        return false;
    }
    if (eq) {
        if (!check_len(im, t, n))
            return false;
        wd_buf_puts(b, "eq ");
        ob_quoted(b, s, n);
        return true;
    }
    if (!wd_topic_filter_valid(s, n)) {
        wd_erl_excerpt(s, n, d, sizeof d);
        err(im, t,
            "invalid topic filter \"%s\" ('+' and '#' must be whole levels, '#' last, at most %d "
            "levels)",
            d, WD_TOPIC_MAX_LEVELS);
        return false;
    }
    bool has_var = false, maybe_undefined = false;
    if (!tr_template(im, t, s, n, &has_var, &maybe_undefined))
        return false;
    if (!check_len(im, t, im->tmp.len))
        return false;
    ob_quoted(b, im->tmp.s, im->tmp.len);
    if ((actions & WD_ACT_SUBSCRIBE) && !im->warned_plus && plus_quirk(s, n)) {
        im->warned_plus = true;
        warn(im, W_ONCE, t,
             "in EMQX a rule filter like \"a/+\" also allows subscribing to \"a/#\"; in warden "
             "it allows only subscriptions it covers entirely (said once for the file)");
    }
    if (has_var && !im->warned_widen) {
        im->warned_widen = true;
        warn(im, W_ONCE, t,
             "in EMQX a placeholder value containing '/', '+' or '#' (a username such as \"#\"), "
             "or a first-level one starting with '$', widens the rule; in warden such a value "
             "never matches (said once for the file)");
    }
    if (maybe_undefined && !rf->undefined_warned) {
        rf->undefined_warned = true;
        warn(im, W_UNDEFINED, t,
             "EMQX renders a missing username or certificate name as \"undefined\" here; in "
             "warden a client without one never matches this topic");
    }
    return true;
}

/* Topics -> text in b. *never set when the list is empty. */
static bool tr_topics(struct imp *im, const struct wd_erl_term *t, struct wd_buf *b,
                      unsigned actions, struct rule_flags *rf, const struct wd_erl_term **never)
{
    char d[96];
    if (wd_erl_is_atom(t, "all")) {
        rf->all_topics = true;
        wd_buf_puts(b, "[\"#\", \"$SYS/#\"]");
        return true;
    }
    if (t->k == WD_ERL_STRING) {
        wd_erl_excerpt(t->s, t->len, d, sizeof d);
        err(im, t, "the topics must be a list, as in [\"%s\"], or all (EMQX rejects a bare string)",
            d);
        return false;
    }
    if (t->k != WD_ERL_LIST) {
        wd_erl_describe(t, d, sizeof d);
        err(im, t, "expected a list of topics or all, got %s", d);
        return false;
    }
    if (t->n == 0) {
        *never = t;
        wd_buf_puts(b, "[]");
        return true;
    }
    if (t->n > MAX_LIST) {
        err(im, t, "list longer than %d items", MAX_LIST);
        return false;
    }
    bool ok = true;
    if (t->n > 1)
        wd_buf_putc(b, '[');
    for (const struct wd_erl_term *x = t->first; x; x = x->next) {
        if (x != t->first)
            wd_buf_puts(b, ", ");
        ok = tr_topic(im, x, b, actions, rf) && ok;
    }
    if (t->n > 1)
        wd_buf_putc(b, ']');
    return ok;
}

/* ---- rules ---- */

static void end_line(struct imp *im, unsigned src_line)
{
    wd_buf_putc(&im->out, '\n');
    if (im->nlines == im->caplines) {
        im->caplines = im->caplines ? im->caplines * 2 : 256;
        im->linemap = wd_realloc(im->linemap, im->caplines * sizeof *im->linemap);
    }
    im->linemap[im->nlines++] = src_line;
}

static void put_comment_lines(struct imp *im, const char *text)
{
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen(text);
        wd_buf_put(&im->out, text, n);
        end_line(im, 0);
        text += n + (nl ? 1 : 0);
    }
}

static void all_topics_warning(struct imp *im, unsigned line, unsigned col, bool allow)
{
    if (im->warned[W_ALL]++ >= WARN_LIST)
        return;
    wd_diag_add(im->d, WD_DIAG_WARNING, line, col,
                "'all' topics: EMQX's 'all' matches every topic, '$'-topics included, and "
                "warden's \"#\" no '$'-topic: translated as [\"#\", \"$SYS/#\"], so other "
                "'$'-topics (such as $events/... or $foo/...) are not %s by this rule",
                allow ? "allowed" : "denied");
}

static void translate(struct imp *im, const struct wd_erl_term *r)
{
    char d[96];
    size_t errors = im->d->nerrors;
    im->tests = 0;
    im->tests_reported = false;
    if (r->k != WD_ERL_TUPLE || (r->n != 2 && r->n != 4)) {
        wd_erl_describe(r, d, sizeof d);
        err(im, r, "a rule is {Perm, Who, Action, Topics} or {Perm, all}; got %s", d);
        return;
    }
    const struct wd_erl_term *perm = r->first;
    bool ok = true;
    if (!wd_erl_is_atom(perm, "allow") && !wd_erl_is_atom(perm, "deny")) {
        wd_erl_describe(perm, d, sizeof d);
        err(im, perm, "the permission must be allow or deny, got %s", d);
        ok = false;
    }
    struct cnode *who = NULL;
    struct action act = {WD_ACT_PUBLISH | WD_ACT_SUBSCRIBE, "all", 7, -1};
    struct rule_flags rf = {0};
    const struct wd_erl_term *never = NULL, *all_at = NULL;
    struct wd_buf topics = {0};
    bool allow = wd_erl_is_atom(perm, "allow");
    if (r->n == 2) {
        const struct wd_erl_term *what = perm->next;
        if (!wd_erl_is_atom(what, "all")) {
            wd_erl_describe(what, d, sizeof d);
            err(im, what, "a 2-element rule is {allow, all} or {deny, all}; got %s", d);
            goto out;
        }
        who = cnew(im, CK_TRUE);
        tr_topics(im, what, &topics, act.mask, &rf, &never);
        all_at = what;
    } else {
        const struct wd_erl_term *w = wd_erl_nth(r, 1), *a = wd_erl_nth(r, 2),
                                 *t = wd_erl_nth(r, 3);
        who = tr_who(im, w);
        if (!tr_action(im, a, allow, &act, &never))
            ok = false;
        if (!tr_topics(im, t, &topics, act.mask, &rf, &never))
            ok = false;
        if (rf.all_topics)
            all_at = t;
        if (!who)
            ok = false;
    }
    if (!ok || im->d->nerrors != errors)
        goto out;
    const char *why = NULL;
    if (who->k == CK_FALSE) {
        never = who->at;
        why = who->why;
    } else if (never && never->k == WD_ERL_LIST) {
        why = "an empty topic list matches nothing";
    } else if (never) {
        why = "an empty QoS list matches nothing";
    }
    if (never)
        warn(im, W_NEVER, never,
             "this rule never matches in EMQX (%s): it is left out, as a comment", why);
    if (im->nrules >= WD_POLICY_MAX_RULES && !never) {
        if (!im->rules_reported)
            err(im, r, "more than %d rules (warden's limit)", WD_POLICY_MAX_RULES);
        im->rules_reported = true;
        goto out;
    }
    if (!never) {
        if (im->catch_all) /* a rule follows the catch-all: the difference is real */
            all_topics_warning(im, im->catch_all_line, im->catch_all_col, im->catch_all_allow);
        im->catch_all = who->k == CK_TRUE && act.mask == (WD_ACT_PUBLISH | WD_ACT_SUBSCRIBE) &&
                        act.qos == 7 && act.retain == -1 && rf.all_topics;
        if (im->catch_all) {
            im->catch_all_allow = allow;
            im->catch_all_line = all_at->line;
            im->catch_all_col = all_at->col;
        } else if (all_at) {
            all_topics_warning(im, all_at->line, all_at->col, allow);
        }
    }
    struct wd_buf *o = &im->out;
    if (never) {
        wd_buf_puts(o, "# left out, it never matches in EMQX (");
        wd_buf_puts(o, why);
        wd_buf_puts(o, "): ");
    } else {
        im->nrules++;
    }
    wd_buf_puts(o, allow ? "allow " : "deny ");
    wd_buf_puts(o, act.name);
    wd_buf_putc(o, ' ');
    wd_buf_put(o, topics.s, topics.len);
    if (act.qos != 7 && act.qos != 0) {
        wd_buf_puts(o, " qos ");
        bool many = act.qos != 1 && act.qos != 2 && act.qos != 4;
        if (many)
            wd_buf_putc(o, '[');
        bool first = true;
        for (unsigned q = 0; q < 3; q++) {
            if (!(act.qos & (1u << q)))
                continue;
            if (!first)
                wd_buf_puts(o, ", ");
            ob_num(o, q);
            first = false;
        }
        if (many)
            wd_buf_putc(o, ']');
    }
    if (act.retain != -1)
        wd_buf_puts(o, act.retain ? " retain true" : " retain false");
    if (who->k == CK_TEST || who->k == CK_AND || who->k == CK_OR) {
        wd_buf_puts(o, " when ");
        put_cond(o, who, false);
    }
    wd_buf_puts(o, "  # ");
    wd_buf_puts(o, im->base);
    wd_buf_putc(o, ':');
    ob_num(o, r->line);
    end_line(im, never ? 0 : r->line);
out:
    free(topics.s);
}

/* ---- driver ---- */

static const char *basename_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The file name as it may appear in a comment: one line, printable. */
static char *comment_safe(const char *s)
{
    char *c = wd_strdup(s);
    for (char *p = c; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return c;
}

/* Compiles the translation: an error there is a bug here, reported at the acl.conf line
 * of the rule that produced it. */
/* ---- deny rules and wider subscriptions ---- */

/* A subscription that the deny topic d overlaps without covering, into buf: `a` itself
 * if given, else the first of "#", "L1/#", "L1/L2/#", ... that is one; NULL if none. */
static const char *wider_than(const struct wd_ctopic *d, const struct wd_ctopic *a, char *buf,
                              size_t cap)
{
    if (a) {
        if (a->eq || !wd_topic_overlaps(d->text, d->len, a->text, a->len) ||
            wd_topic_covers(d->text, d->len, a->text, a->len))
            return NULL;
        return a->text;
    }
    for (int i = 0; i < d->nlv && d->lv[i].kind != WD_LV_HASH; i++) {
        size_t n = (size_t)(i ? d->lv[i - 1].s + d->lv[i - 1].len - d->text : 0);
        if (n + 3 > cap)
            return NULL;
        memcpy(buf, d->text, n);
        memcpy(buf + n, i ? "/#" : "#", i ? 3 : 2);
        size_t bn = strlen(buf);
        if (wd_topic_overlaps(d->text, d->len, buf, bn) &&
            !wd_topic_covers(d->text, d->len, buf, bn))
            return buf;
    }
    return NULL;
}

/* Warns at each deny rule (of the compiled translation p) that now decides a subscription
 * EMQX let through to a later allow rule or an allow default. Placeholder levels are
 * compared as written: a warning says "may". */
static void overlap_warnings(struct imp *im, const struct wd_policy *p)
{
    for (size_t i = 0; i < p->nrules; i++) {
        const struct wd_rule *r = &p->rules[i];
        if (r->is_source || r->perm != WD_DECISION_DENY || !(r->actions & WD_ACT_SUBSCRIBE))
            continue;
        const char *ex = NULL;
        unsigned by = 0;
        char buf[256];
        for (size_t t = 0; t < r->ntopics && !ex; t++) {
            const struct wd_ctopic *d = &r->topics[t];
            if (d->eq)
                continue;
            for (size_t j = i + 1; j < p->nrules && !ex; j++) {
                const struct wd_rule *a = &p->rules[j];
                if (a->is_source || a->perm != WD_DECISION_ALLOW ||
                    !(a->actions & WD_ACT_SUBSCRIBE))
                    continue;
                for (size_t k = 0; k < a->ntopics && !ex; k++)
                    if ((ex = wider_than(d, &a->topics[k], buf, sizeof buf)))
                        by = a->line;
            }
            if (!ex && p->authz_default == WD_DECISION_ALLOW)
                ex = wider_than(d, NULL, buf, sizeof buf);
        }
        if (!ex || im->warned[W_OVERLAP]++ >= WARN_LIST)
            continue;
        unsigned line = r->line >= 1 && r->line <= im->nlines ? im->linemap[r->line - 1] : 0;
        unsigned at = by >= 1 && by <= im->nlines ? im->linemap[by - 1] : 0;
        char where[64] = "the no_match default (allow)";
        if (by)
            snprintf(where, sizeof where, "the allow rule at line %u", at);
        char e[96];
        wd_erl_excerpt(ex, strlen(ex), e, sizeof e);
        wd_diag_add(im->d, WD_DIAG_WARNING, line, 0,
                    "in EMQX this deny rule does not stop a wider subscription such as \"%s\", "
                    "which %s may then allow; in warden a deny rule decides every subscription "
                    "that can receive a topic it denies, so that subscription is denied here",
                    e, where);
    }
}

static void self_check(struct imp *im)
{
    struct wd_diags cd;
    wd_diags_init(&cd, "import", im->out.s, im->out.len);
    struct wd_policy *p = NULL;
    if (wd_policy_compile(im->out.s, im->out.len, &cd, &p) != WD_OK) {
        bool any = false;
        for (size_t i = 0; i < cd.n; i++) {
            if (cd.v[i].sev != WD_DIAG_ERROR)
                continue;
            unsigned l = cd.v[i].line;
            unsigned src = l >= 1 && l <= im->nlines ? im->linemap[l - 1] : 0;
            err_at(im, src, 0, "the translation does not compile (please report this): %s",
                   cd.v[i].msg);
            any = true;
        }
        if (!any)
            err_at(im, 0, 0, "the translation does not compile (please report this)");
    } else {
        overlap_warnings(im, p);
    }
    wd_policy_release(p);
    wd_diags_cleanup(&cd);
}

int wd_import_acl(const char *src, size_t len, struct wd_diags *diags, char **out)
{
    *out = NULL;
    if (len > WD_IMPORT_MAX_BYTES) {
        wd_diag_add(diags, WD_DIAG_ERROR, 0, 0, "file larger than %u bytes", WD_IMPORT_MAX_BYTES);
        return WD_ETOOBIG;
    }
    size_t errors = diags->nerrors;
    struct imp im = {.d = diags};
    im.out.limit = WD_POLICY_MAX_BYTES;
    char *file = comment_safe(diags->file ? diags->file : "acl.conf");
    im.base = basename_of(file);
    wd_arena_init(&im.a);
    int rc = WD_ESYNTAX;

    wd_buf_puts(&im.out, "# Generated by `warden import-acl` from ");
    wd_buf_puts(&im.out, file);
    wd_buf_puts(&im.out, ".");
    end_line(&im, 0);
    put_comment_lines(&im,
                      "# The rules keep acl.conf's order: in EMQX and in warden the first rule "
                      "that matches decides.\n"
                      "# Each rule names the acl.conf line it comes from; the warnings printed "
                      "by the import say\n"
                      "# where warden deliberately behaves differently from EMQX.\n");
    end_line(&im, 0);

    struct wd_erl_reader *rd = wd_erl_reader_new(src, len, diags);
    for (;;) {
        /* one term per round; its translation's arena goes with it */
        const struct wd_erl_term *term = NULL;
        int r = wd_erl_read(rd, &term);
        if (r == WD_ENOENT)
            break;
        wd_arena_free(&im.a);
        wd_arena_init(&im.a);
        if (r == WD_OK)
            translate(&im, term);
    }
    wd_erl_reader_free(rd);

    end_line(&im, 0);
    if (im.catch_all && !im.catch_all_allow) {
        put_comment_lines(&im, "# acl.conf ends with {deny, all}, which decides every request that "
                               "reaches it, so EMQX's\n"
                               "# `authorization.no_match` never applies. The default repeats deny "
                               "for the '$'-topics\n"
                               "# that the last rule cannot name (warden's \"#\" skips them).\n"
                               "authz default deny\n");
    } else if (im.catch_all) {
        put_comment_lines(&im,
                          "# acl.conf ends with {allow, all}, which decides every request that "
                          "reaches it, so EMQX's\n"
                          "# `authorization.no_match` never applies. The default repeats allow "
                          "for the '$'-topics\n"
                          "# that the last rule cannot name (warden's \"#\" skips them).\n"
                          "# Review it: the default acl.conf itself recommends ending with "
                          "{deny, all} and setting\n"
                          "# no_match = deny in production.\n"
                          "authz default allow\n");
    } else {
        put_comment_lines(&im,
                          "# When no rule matches, EMQX applies `authorization.no_match`, which "
                          "defaults to allow,\n"
                          "# so this translation keeps allow. Review it: the default acl.conf "
                          "itself recommends ending\n"
                          "# with {deny, all} and setting no_match = deny in production.\n"
                          "authz default allow\n");
    }
    if (im.out.full)
        err_at(&im, 0, 0, "the translation would be larger than %u bytes (warden's limit)",
               WD_POLICY_MAX_BYTES);
    if (diags->nerrors == errors)
        self_check(&im);
    warn_totals(&im);
    if (diags->nerrors == errors) {
        *out = im.out.s;
        im.out.s = NULL;
        rc = WD_OK;
    }
    wd_arena_free(&im.a);
    free(im.out.s);
    free(im.tmp.s);
    free(im.linemap);
    free(file);
    return rc;
}
