/* SPDX-License-Identifier: Apache-2.0 */
/*
 * parse.c: recursive-descent parser from tokens to the AST (ast.h). One statement per
 * line; on a syntax error the statement is reported, dropped, and parsing resumes at the
 * next line, so one pass reports every broken statement.
 */
#include "policy/ast.h"

#include <stdio.h>
#include <string.h>

#include "policy/lex.h"

#define MAX_COND_DEPTH 64
#define MAX_LIST 100000

struct parser {
    struct wd_tokens toks;
    size_t i;
    struct wd_diags *d;
    struct wd_arena *a;
    int depth;
};

static const struct wd_token *peek(struct parser *p)
{
    return &p->toks.v[p->i];
}

static const struct wd_token *next(struct parser *p)
{
    const struct wd_token *t = &p->toks.v[p->i];
    if (t->kind != WD_TOK_EOF)
        p->i++;
    return t;
}

static bool is_word(const struct wd_token *t, const char *w)
{
    return t->kind == WD_TOK_WORD && strcmp(t->text, w) == 0;
}

static void describe(const struct wd_token *t, char *buf, size_t cap)
{
    if (t->kind == WD_TOK_WORD)
        snprintf(buf, cap, "'%.40s'", t->text);
    else if (t->kind == WD_TOK_STRING)
        snprintf(buf, cap, "string \"%.40s\"", t->text);
    else if (t->kind == WD_TOK_NUMBER)
        snprintf(buf, cap, "number %ld", t->num);
    else
        snprintf(buf, cap, "%s", wd_tok_name(t->kind));
}

/* Reports "expected X, got Y" at t. Lexical errors were already reported. */
static bool expected(struct parser *p, const struct wd_token *t, const char *what)
{
    if (t->kind != WD_TOK_ERROR) {
        char got[80];
        describe(t, got, sizeof got);
        wd_diag_add(p->d, WD_DIAG_ERROR, t->line, t->col, "expected %s, got %s", what, got);
    }
    return false;
}

static bool expect_word(struct parser *p, const char *w)
{
    const struct wd_token *t = next(p);
    if (is_word(t, w))
        return true;
    char what[64];
    snprintf(what, sizeof what, "'%s'", w);
    return expected(p, t, what);
}

static bool parse_decision(struct parser *p, enum wd_decision *out, bool allow_nomatch)
{
    const struct wd_token *t = next(p);
    if (is_word(t, "allow"))
        *out = WD_DECISION_ALLOW;
    else if (is_word(t, "deny"))
        *out = WD_DECISION_DENY;
    else if (allow_nomatch && is_word(t, "nomatch"))
        *out = WD_DECISION_NOMATCH;
    else
        return expected(p, t, allow_nomatch ? "allow, deny or nomatch" : "allow or deny");
    return true;
}

const char *wd_field_name(enum wd_field f)
{
    static const char *const names[] = {"username", "clientid", "cn", "protocol", "peer", "port"};
    return (unsigned)f < WD_ARRAY_LEN(names) ? names[f] : "?";
}

static bool field_from(const struct wd_token *t, enum wd_field *f)
{
    for (int i = 0; i <= WD_FIELD_PORT; i++) {
        if (is_word(t, wd_field_name((enum wd_field)i))) {
            *f = (enum wd_field)i;
            return true;
        }
    }
    return false;
}

static bool parse_value(struct parser *p, struct wd_ast_value *v)
{
    const struct wd_token *t = next(p);
    v->line = t->line;
    v->col = t->col;
    if (t->kind == WD_TOK_STRING) {
        v->s = t->text;
        v->len = t->len;
        return true;
    }
    if (t->kind == WD_TOK_NUMBER) {
        v->is_num = true;
        v->num = t->num;
        return true;
    }
    return expected(p, t, "a string or a number");
}

/* '[' value (',' value)* [','] ']' */
static bool parse_list(struct parser *p, struct wd_ast_value **out, size_t *n)
{
    const struct wd_token *t = next(p);
    if (t->kind != WD_TOK_LBRACK)
        return expected(p, t, "'['");
    size_t cap = 4;
    *out = wd_arena_alloc(p->a, cap * sizeof **out);
    *n = 0;
    while (peek(p)->kind != WD_TOK_RBRACK) {
        if (*n == MAX_LIST) {
            wd_diag_add(p->d, WD_DIAG_ERROR, peek(p)->line, peek(p)->col,
                        "list longer than %d items", MAX_LIST);
            return false;
        }
        if (*n == cap) {
            struct wd_ast_value *nv = wd_arena_alloc(p->a, cap * 2 * sizeof *nv);
            memcpy(nv, *out, cap * sizeof *nv);
            *out = nv;
            cap *= 2;
        }
        if (!parse_value(p, &(*out)[*n]))
            return false;
        (*n)++;
        if (peek(p)->kind == WD_TOK_COMMA)
            next(p);
        else if (peek(p)->kind != WD_TOK_RBRACK)
            return expected(p, next(p), "',' or ']'");
    }
    next(p);
    return true;
}

static struct wd_ast_cond *parse_or(struct parser *p);

static struct wd_ast_cond *new_cond(struct parser *p, enum wd_ast_cond_kind k,
                                    const struct wd_token *at)
{
    struct wd_ast_cond *c = wd_arena_alloc(p->a, sizeof *c);
    c->kind = k;
    c->line = at->line;
    c->col = at->col;
    return c;
}

static struct wd_ast_cond *parse_primary(struct parser *p)
{
    const struct wd_token *t = peek(p);
    if (++p->depth > MAX_COND_DEPTH) {
        wd_diag_add(p->d, WD_DIAG_ERROR, t->line, t->col, "condition nested deeper than %d",
                    MAX_COND_DEPTH);
        return NULL;
    }
    struct wd_ast_cond *c = NULL;
    if (t->kind == WD_TOK_LPAREN) {
        next(p);
        c = parse_or(p);
        if (c && peek(p)->kind != WD_TOK_RPAREN) {
            expected(p, next(p), "')'");
            c = NULL;
        } else if (c) {
            next(p);
        }
    } else if (is_word(t, "not")) {
        next(p);
        struct wd_ast_cond *inner = parse_primary(p);
        if (inner) {
            c = new_cond(p, WD_AC_NOT, t);
            c->l = inner;
        }
    } else if (is_word(t, "superuser") || is_word(t, "anonymous")) {
        next(p);
        c = new_cond(p, is_word(t, "superuser") ? WD_AC_SUPERUSER : WD_AC_ANONYMOUS, t);
    } else if (t->kind == WD_TOK_WORD) {
        enum wd_field f;
        if (!field_from(t, &f)) {
            wd_diag_add(p->d, WD_DIAG_ERROR, t->line, t->col,
                        "unknown field '%.40s' (expected username, clientid, cn, protocol, peer, "
                        "port, superuser or anonymous)",
                        t->text);
            p->depth--;
            return NULL;
        }
        next(p);
        const struct wd_token *op = next(p);
        if (op->kind == WD_TOK_EQ) {
            c = new_cond(p, WD_AC_EQ, t);
            c->vals = wd_arena_alloc(p->a, sizeof *c->vals);
            c->nvals = 1;
            if (!parse_value(p, c->vals))
                c = NULL;
        } else if (is_word(op, "in")) {
            c = new_cond(p, WD_AC_IN, t);
            if (!parse_list(p, &c->vals, &c->nvals))
                c = NULL;
        } else if (op->kind == WD_TOK_TILDE) {
            c = new_cond(p, WD_AC_RE, t);
            c->vals = wd_arena_alloc(p->a, sizeof *c->vals);
            c->nvals = 1;
            if (!parse_value(p, c->vals))
                c = NULL;
        } else {
            expected(p, op, "'=', 'in' or '~'");
        }
        if (c)
            c->field = f;
    } else {
        expected(p, next(p), "a condition");
    }
    p->depth--;
    return c;
}

static struct wd_ast_cond *parse_and(struct parser *p)
{
    struct wd_ast_cond *l = parse_primary(p);
    if (!l)
        return NULL;
    while (is_word(peek(p), "and")) {
        const struct wd_token *t = next(p);
        struct wd_ast_cond *r = parse_primary(p);
        if (!r)
            return NULL;
        struct wd_ast_cond *c = new_cond(p, WD_AC_AND, t);
        c->l = l;
        c->r = r;
        l = c;
    }
    return l;
}

static struct wd_ast_cond *parse_or(struct parser *p)
{
    struct wd_ast_cond *l = parse_and(p);
    if (!l)
        return NULL;
    while (is_word(peek(p), "or")) {
        const struct wd_token *t = next(p);
        struct wd_ast_cond *r = parse_and(p);
        if (!r)
            return NULL;
        struct wd_ast_cond *c = new_cond(p, WD_AC_OR, t);
        c->l = l;
        c->r = r;
        l = c;
    }
    return l;
}

/* [when COND] then end of line */
static bool parse_tail(struct parser *p, struct wd_ast_stmt *s, bool when_required)
{
    if (is_word(peek(p), "when")) {
        next(p);
        p->depth = 0;
        s->when = parse_or(p);
        if (!s->when)
            return false;
    } else if (when_required) {
        return expected(p, next(p), "'when' (an unconditional step is 'authn default')");
    }
    const struct wd_token *t = next(p);
    if (t->kind != WD_TOK_NEWLINE)
        return expected(p, t, s->when ? "end of line" : "'when' or end of line");
    return true;
}

static bool parse_topic(struct parser *p, struct wd_ast_topic *out)
{
    const struct wd_token *t = next(p);
    out->line = t->line;
    out->col = t->col;
    if (is_word(t, "eq")) {
        out->eq = true;
        t = next(p);
    }
    if (t->kind != WD_TOK_STRING)
        return expected(p, t,
                        out->eq ? "a topic string after 'eq'" : "a topic string, 'eq' or '['");
    out->text = t->text;
    out->len = t->len;
    return true;
}

static bool parse_topics(struct parser *p, struct wd_ast_stmt *s)
{
    if (peek(p)->kind != WD_TOK_LBRACK) {
        s->topics = wd_arena_alloc(p->a, sizeof *s->topics);
        s->ntopics = 1;
        return parse_topic(p, s->topics);
    }
    next(p);
    size_t cap = 4;
    s->topics = wd_arena_alloc(p->a, cap * sizeof *s->topics);
    while (peek(p)->kind != WD_TOK_RBRACK) {
        if (s->ntopics == MAX_LIST) {
            wd_diag_add(p->d, WD_DIAG_ERROR, peek(p)->line, peek(p)->col,
                        "list longer than %d items", MAX_LIST);
            return false;
        }
        if (s->ntopics == cap) {
            struct wd_ast_topic *nt = wd_arena_alloc(p->a, cap * 2 * sizeof *nt);
            memcpy(nt, s->topics, cap * sizeof *nt);
            s->topics = nt;
            cap *= 2;
        }
        if (!parse_topic(p, &s->topics[s->ntopics]))
            return false;
        s->ntopics++;
        if (peek(p)->kind == WD_TOK_COMMA)
            next(p);
        else if (peek(p)->kind != WD_TOK_RBRACK)
            return expected(p, next(p), "',' or ']'");
    }
    const struct wd_token *close = next(p);
    if (s->ntopics == 0) {
        wd_diag_add(p->d, WD_DIAG_ERROR, close->line, close->col, "empty topic list");
        return false;
    }
    return true;
}

static bool parse_rule(struct parser *p, struct wd_ast_stmt *s)
{
    s->kind = WD_AS_RULE;
    s->retain = -1;
    s->qos_mask = 7;
    const struct wd_token *t = next(p);
    s->decision = is_word(t, "allow") ? WD_DECISION_ALLOW : WD_DECISION_DENY;
    t = next(p);
    if (is_word(t, "publish"))
        s->actions = WD_ACT_PUBLISH;
    else if (is_word(t, "subscribe"))
        s->actions = WD_ACT_SUBSCRIBE;
    else if (is_word(t, "all"))
        s->actions = WD_ACT_PUBLISH | WD_ACT_SUBSCRIBE;
    else
        return expected(p, t, "publish, subscribe or all");
    if (!parse_topics(p, s))
        return false;
    for (;;) {
        const struct wd_token *o = peek(p);
        if (is_word(o, "qos")) {
            next(p);
            if (s->has_qos) {
                wd_diag_add(p->d, WD_DIAG_ERROR, o->line, o->col, "'qos' given twice");
                return false;
            }
            s->has_qos = true;
            s->qos_col = o->col;
            struct wd_ast_value *vals;
            size_t n;
            if (peek(p)->kind == WD_TOK_LBRACK) {
                if (!parse_list(p, &vals, &n))
                    return false;
            } else {
                vals = wd_arena_alloc(p->a, sizeof *vals);
                n = 1;
                if (!parse_value(p, vals))
                    return false;
            }
            s->qos_mask = 0;
            for (size_t i = 0; i < n; i++) {
                if (!vals[i].is_num || vals[i].num < 0 || vals[i].num > 2) {
                    wd_diag_add(p->d, WD_DIAG_ERROR, vals[i].line, vals[i].col,
                                "QoS must be 0, 1 or 2");
                    return false;
                }
                s->qos_mask |= 1u << vals[i].num;
            }
            if (s->qos_mask == 0) {
                wd_diag_add(p->d, WD_DIAG_ERROR, o->line, o->col, "empty QoS list");
                return false;
            }
        } else if (is_word(o, "retain")) {
            next(p);
            if (s->retain != -1) {
                wd_diag_add(p->d, WD_DIAG_ERROR, o->line, o->col, "'retain' given twice");
                return false;
            }
            s->retain_col = o->col;
            const struct wd_token *v = next(p);
            if (is_word(v, "true"))
                s->retain = 1;
            else if (is_word(v, "false"))
                s->retain = 0;
            else
                return expected(p, v, "true or false");
        } else {
            break;
        }
    }
    return parse_tail(p, s, false);
}

static bool parse_stmt(struct parser *p, struct wd_ast_stmt *s)
{
    const struct wd_token *t = peek(p);
    memset(s, 0, sizeof *s);
    s->line = t->line;
    s->col = t->col;
    if (is_word(t, "user")) {
        next(p);
        s->kind = WD_AS_USER;
        const struct wd_token *n = next(p);
        if (n->kind != WD_TOK_STRING)
            return expected(p, n, "a user name string");
        s->name = n->text;
        s->name_col = n->col;
        const struct wd_token *sec = next(p);
        if (sec->kind == WD_TOK_STRING || sec->kind == WD_TOK_ERROR)
            /* whatever happens next, a diagnostic must not echo this secret */
            wd_diags_redact(p->d, sec->line, sec->col, sec->srclen ? sec->srclen : 1);
        if (sec->kind != WD_TOK_STRING)
            return expected(p, sec, "a secret string (e.g. \"sha256:SALT:HEX\")");
        s->secret = sec->text;
        s->secret_col = sec->col;
        s->secret_srclen = sec->srclen;
        if (is_word(peek(p), "superuser")) {
            next(p);
            s->superuser = true;
        }
        const struct wd_token *e = next(p);
        if (e->kind != WD_TOK_NEWLINE)
            return expected(p, e, "'superuser' or end of line");
        return true;
    }
    if (is_word(t, "authn")) {
        next(p);
        s->kind = WD_AS_AUTHN;
        const struct wd_token *k = next(p);
        if (is_word(k, "users")) {
            s->step = WD_STEP_USERS;
        } else if (is_word(k, "anonymous")) {
            s->step = WD_STEP_ANONYMOUS;
            if (!parse_decision(p, &s->decision, false))
                return false;
        } else if (is_word(k, "allow") || is_word(k, "deny")) {
            s->step = WD_STEP_DECIDE;
            s->decision = is_word(k, "allow") ? WD_DECISION_ALLOW : WD_DECISION_DENY;
            return parse_tail(p, s, true);
        } else if (is_word(k, "redis")) {
            s->step = WD_STEP_REDIS;
        } else if (is_word(k, "jwt")) {
            s->step = WD_STEP_JWT;
        } else if (is_word(k, "default")) {
            s->step = WD_STEP_DEFAULT;
            if (!parse_decision(p, &s->decision, true))
                return false;
            const struct wd_token *e = next(p);
            if (e->kind != WD_TOK_NEWLINE)
                return expected(p, e, "end of line (a default has no condition)");
            return true;
        } else {
            return expected(p, k, "users, anonymous, allow, deny, redis, jwt or default");
        }
        return parse_tail(p, s, false);
    }
    if (is_word(t, "allow") || is_word(t, "deny"))
        return parse_rule(p, s);
    if (is_word(t, "rules")) {
        next(p);
        s->kind = WD_AS_SOURCE;
        const struct wd_token *k = next(p);
        if (is_word(k, "redis"))
            s->source = WD_SOURCE_REDIS;
        else if (is_word(k, "jwt"))
            s->source = WD_SOURCE_JWT;
        else
            return expected(p, k, "redis or jwt");
        return parse_tail(p, s, false);
    }
    if (is_word(t, "authz")) {
        next(p);
        s->kind = WD_AS_AUTHZ_DEFAULT;
        if (!expect_word(p, "default"))
            return false;
        if (!parse_decision(p, &s->decision, true))
            return false;
        const struct wd_token *e = next(p);
        if (e->kind != WD_TOK_NEWLINE)
            return expected(p, e, "end of line");
        return true;
    }
    next(p);
    if (t->kind == WD_TOK_WORD)
        wd_diag_add(p->d, WD_DIAG_ERROR, t->line, t->col,
                    "unknown statement '%.40s' (expected user, authn, allow, deny, rules or authz)",
                    t->text);
    else
        expected(p, t, "a statement (user, authn, allow, deny, rules or authz)");
    return false;
}

void wd_parse(const char *src, size_t len, struct wd_diags *diags, struct wd_ast *ast)
{
    memset(ast, 0, sizeof *ast);
    wd_arena_init(&ast->arena);
    struct parser p = {.d = diags, .a = &ast->arena};
    diags->in_syntax = 1; /* these messages may quote any token (diag.h) */
    wd_lex(src, len, diags, &ast->arena, &p.toks);
    size_t cap = 0;
    while (peek(&p)->kind != WD_TOK_EOF) {
        if (peek(&p)->kind == WD_TOK_NEWLINE) {
            next(&p);
            continue;
        }
        struct wd_ast_stmt s;
        size_t before = diags->nerrors;
        bool ok = parse_stmt(&p, &s);
        if (!ok || diags->nerrors != before) {
            /* drop the statement; resynchronize at the next line unless the error was
             * the line's end itself */
            if (p.toks.v[p.i - 1].kind != WD_TOK_NEWLINE)
                while (peek(&p)->kind != WD_TOK_NEWLINE && peek(&p)->kind != WD_TOK_EOF)
                    next(&p);
            continue;
        }
        if (ast->n == cap) {
            cap = cap ? cap * 2 : 64;
            struct wd_ast_stmt *nv = wd_arena_alloc(&ast->arena, cap * sizeof *nv);
            if (ast->n)
                memcpy(nv, ast->stmts, ast->n * sizeof *nv);
            ast->stmts = nv;
        }
        ast->stmts[ast->n++] = s;
    }
    diags->in_syntax = 0;
    wd_tokens_free(&p.toks);
}

void wd_ast_free(struct wd_ast *ast)
{
    wd_arena_free(&ast->arena);
    memset(ast, 0, sizeof *ast);
}
