/* SPDX-License-Identifier: Apache-2.0 */
/*
 * erlterm.c: see erlterm.h. A scanner (strings with every Erlang escape, quoted and plain
 * atoms, integers in any base and $c, `%` comments, the `.` that ends a term) and a
 * recursive parser into a term tree held by an arena that lives until the next term.
 *
 * Decisions that are not obvious:
 * - Strings and atoms are decoded to UTF-8 and must be valid UTF-8 without NUL: every
 *   user of the reader writes them into text files and diagnostics.
 * - Adjacent strings are one string, as in Erlang ("a" "b" is "ab").
 * - After an error the rest of the term, up to and including its '.', is skipped with no
 *   further lexical diagnostics, so one mistake gives one message and the next term is
 *   read normally.
 * - Bounds: nesting WD_ERL_MAX_DEPTH (the parser recurses once per level) and
 *   WD_ERL_MAX_NODES elements per term (memory per term); integers saturate at LONG_MAX
 *   while read, so no input overflows.
 */
#include "policy/erlterm.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/utf8.h"
#include "core/wd.h"

/* ---- tokens ---- */

enum tk {
    TK_EOF,
    TK_DOT,
    TK_LBRACE,
    TK_RBRACE,
    TK_LBRACK,
    TK_RBRACK,
    TK_COMMA,
    TK_ATOM,
    TK_STRING,
    TK_INT,
    TK_ERROR,
};

struct tok {
    enum tk k;
    unsigned line, col;   /* first byte */
    unsigned eline, ecol; /* just past the last byte */
    const char *s;        /* ATOM, STRING (term arena) */
    size_t len;
    long num;
};

struct wd_erl_reader {
    const char *src;
    size_t len, i;
    unsigned line;
    size_t line_start;
    struct wd_diags *d;
    bool quiet; /* skipping a broken term: no further lexical diagnostics */

    struct tok cur; /* lookahead, valid when `have` */
    bool have;
    unsigned last_line, last_col;   /* end of the last consumed token */
    const struct wd_erl_term *open; /* innermost open tuple or list */

    struct wd_arena a; /* the current term */
    size_t nodes;
    bool too_big;
    unsigned term_line, term_col; /* where the current top-level term starts */
    struct wd_buf tmp, cat;       /* string decoding, adjacent-string concatenation */
};

static void vdiag(struct wd_erl_reader *rd, unsigned line, unsigned col, const char *fmt,
                  va_list ap)
{
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    wd_diag_add(rd->d, WD_DIAG_ERROR, line, col, "%s", buf);
}

static void err_at(struct wd_erl_reader *rd, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void err_at(struct wd_erl_reader *rd, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(rd, line, col, fmt, ap);
    va_end(ap);
}

static void err(struct wd_erl_reader *rd, const struct wd_erl_term *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err(struct wd_erl_reader *rd, const struct wd_erl_term *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(rd, t->line, t->col, fmt, ap);
    va_end(ap);
}

/* Lexical errors: silent while skipping the rest of a broken term. */
static void lex_err(struct wd_erl_reader *rd, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void lex_err(struct wd_erl_reader *rd, unsigned line, unsigned col, const char *fmt, ...)
{
    if (rd->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vdiag(rd, line, col, fmt, ap);
    va_end(ap);
}

static void ob_reset(struct wd_buf *b)
{
    b->len = 0;
    b->full = false;
    if (b->s)
        b->s[0] = '\0';
}

static void ob_utf8(struct wd_buf *b, unsigned long cp)
{
    char u[4];
    if (cp < 0x80) {
        u[0] = (char)cp;
        wd_buf_put(b, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        wd_buf_put(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        wd_buf_put(b, u, 3);
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        wd_buf_put(b, u, 4);
    }
}

/* ---- terms ---- */

void wd_erl_excerpt(const char *s, size_t n, char *buf, size_t cap)
{
    size_t k = n < 40 ? n : 40;
    if (k >= cap)
        k = cap - 1;
    while (k < n && k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
        k--;
    for (size_t i = 0; i < k; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    buf[k] = '\0';
    if (k < n && k + 4 < cap) {
        buf[k] = '.';
        buf[k + 1] = '.';
        buf[k + 2] = '.';
        buf[k + 3] = '\0';
    }
}

void wd_erl_describe(const struct wd_erl_term *t, char *buf, size_t cap)
{
    char ex[64];
    switch (t->k) {
    case WD_ERL_ATOM:
        wd_erl_excerpt(t->s, t->len, ex, sizeof ex);
        snprintf(buf, cap, "'%s'", ex);
        break;
    case WD_ERL_STRING:
        wd_erl_excerpt(t->s, t->len, ex, sizeof ex);
        snprintf(buf, cap, "the string \"%s\"", ex);
        break;
    case WD_ERL_INT:
        snprintf(buf, cap, "the integer %ld", t->num);
        break;
    case WD_ERL_TUPLE:
        snprintf(buf, cap, "a tuple of %zu element%s", t->n, t->n == 1 ? "" : "s");
        break;
    case WD_ERL_LIST:
        snprintf(buf, cap, "a list");
        break;
    }
}

bool wd_erl_is_atom(const struct wd_erl_term *t, const char *name)
{
    return t && t->k == WD_ERL_ATOM && strcmp(t->s, name) == 0;
}

const struct wd_erl_term *wd_erl_nth(const struct wd_erl_term *t, size_t i)
{
    const struct wd_erl_term *c = t->first;
    while (c && i--)
        c = c->next;
    return c;
}

/* ---- scanner ---- */

static void adv(struct wd_erl_reader *rd)
{
    if (rd->src[rd->i] == '\n') {
        rd->line++;
        rd->line_start = rd->i + 1;
    }
    rd->i++;
}

static unsigned col_here(const struct wd_erl_reader *rd)
{
    return (unsigned)(rd->i - rd->line_start + 1);
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_name_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '@';
}

#define ESC_EOF (-2) /* the input ended inside the escape */
#define ESC_BAD (-1)
#define ESC_RAW (-3) /* backslash before a non-ASCII character: the character itself */

/* Decodes the escape after a backslash (rd->i is past the backslash). Returns a code
 * point, or one of the ESC_ values (ESC_BAD with *msg set). */
static long lex_escape(struct wd_erl_reader *rd, const char **msg)
{
    if (rd->i >= rd->len)
        return ESC_EOF;
    unsigned char c = (unsigned char)rd->src[rd->i];
    if (c >= '0' && c <= '7') {
        long v = 0;
        for (int k = 0; k < 3 && rd->i < rd->len && rd->src[rd->i] >= '0' && rd->src[rd->i] <= '7';
             k++) {
            v = v * 8 + (rd->src[rd->i] - '0');
            adv(rd);
        }
        return v;
    }
    switch (c) {
    case 'x': {
        adv(rd);
        if (rd->i < rd->len && rd->src[rd->i] == '{') {
            adv(rd);
            long v = 0;
            int nd = 0;
            while (rd->i < rd->len && wd_hexval(rd->src[rd->i]) >= 0) {
                if (v <= 0x10FFFF)
                    v = v * 16 + wd_hexval(rd->src[rd->i]);
                nd++;
                adv(rd);
            }
            if (rd->i >= rd->len)
                return ESC_EOF;
            if (rd->src[rd->i] != '}' || nd == 0) {
                *msg = "bad \\x{...} escape (hexadecimal digits then '}')";
                return ESC_BAD;
            }
            adv(rd);
            if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
                *msg = "\\x{...} is not a Unicode code point";
                return ESC_BAD;
            }
            return v;
        }
        if (rd->i + 1 < rd->len && wd_hexval(rd->src[rd->i]) >= 0 &&
            wd_hexval(rd->src[rd->i + 1]) >= 0) {
            long v = wd_hexval(rd->src[rd->i]) * 16 + wd_hexval(rd->src[rd->i + 1]);
            adv(rd);
            adv(rd);
            return v;
        }
        if (rd->i >= rd->len)
            return ESC_EOF;
        *msg = "bad \\x escape (\\xHH or \\x{H...})";
        return ESC_BAD;
    }
    case '^': {
        adv(rd);
        if (rd->i >= rd->len)
            return ESC_EOF;
        long v = (unsigned char)rd->src[rd->i] & 31;
        adv(rd);
        return v;
    }
    default:
        break;
    }
    static const char from[] = "bdefnrstv";
    static const char to[] = {8, 127, 27, 12, 10, 13, 32, 9, 11};
    const char *m = c ? strchr(from, c) : NULL;
    if (m) {
        adv(rd);
        return to[m - from];
    }
    if (c >= 0x80)
        return ESC_RAW;
    adv(rd); /* any other character stands for itself: \" \' \\ \$ ... */
    return c;
}

/* "..." or '...': decodes into the term arena. */
static enum tk lex_quoted(struct wd_erl_reader *rd, struct tok *t)
{
    char q = rd->src[rd->i];
    const char *what = q == '"' ? "string" : "quoted atom";
    adv(rd);
    ob_reset(&rd->tmp);
    bool bad = false;
    for (;;) {
        if (rd->i >= rd->len) {
            lex_err(rd, t->line, t->col, "unterminated %s: the %c here has no closing %c", what, q,
                    q);
            return TK_ERROR;
        }
        char c = rd->src[rd->i];
        if (c == q) {
            adv(rd);
            break;
        }
        if (c != '\\') {
            wd_buf_putc(&rd->tmp, c);
            adv(rd);
            continue;
        }
        unsigned eline = rd->line, ecol = col_here(rd);
        adv(rd);
        const char *msg = "bad escape";
        long cp = lex_escape(rd, &msg);
        if (cp == ESC_EOF || cp == ESC_RAW)
            continue; /* the loop reports the end of input / copies the character */
        if (cp == ESC_BAD) {
            if (!bad)
                lex_err(rd, eline, ecol, "%s", msg);
            bad = true;
            continue;
        }
        ob_utf8(&rd->tmp, (unsigned long)cp);
    }
    if (bad)
        return TK_ERROR;
    const char *s = rd->tmp.s ? rd->tmp.s : "";
    if (memchr(s, '\0', rd->tmp.len)) {
        lex_err(rd, t->line, t->col, "a NUL character in a %s cannot be translated", what);
        return TK_ERROR;
    }
    if (!wd_utf8_valid_nonul(s, rd->tmp.len)) {
        lex_err(rd, t->line, t->col, "%s is not valid UTF-8", what);
        return TK_ERROR;
    }
    t->s = wd_arena_strndup(&rd->a, s, rd->tmp.len);
    t->len = rd->tmp.len;
    return q == '"' ? TK_STRING : TK_ATOM;
}

static long mul_add(long v, int base, int d, bool *big)
{
    if (v > (LONG_MAX - d) / base) {
        *big = true;
        return LONG_MAX;
    }
    return v * base + d;
}

static int digit_in(int c, int base)
{
    int v = is_digit(c)              ? c - '0'
            : (c >= 'a' && c <= 'z') ? c - 'a' + 10
            : (c >= 'A' && c <= 'Z') ? c - 'A' + 10
                                     : 99;
    return v < base ? v : -1;
}

/* Integers: 12, 1_000, 16#ff, -1. Floats are rejected (nothing in acl.conf takes one). */
static enum tk lex_number(struct wd_erl_reader *rd, struct tok *t, bool neg)
{
    if (neg)
        adv(rd);
    long v = 0;
    bool big = false;
    while (rd->i < rd->len) {
        char c = rd->src[rd->i];
        if (is_digit(c)) {
            v = mul_add(v, 10, c - '0', &big);
            adv(rd);
        } else if (c == '_' && rd->i + 1 < rd->len && is_digit(rd->src[rd->i + 1])) {
            adv(rd);
        } else {
            break;
        }
    }
    if (rd->i < rd->len && rd->src[rd->i] == '#') {
        adv(rd);
        if (big || v < 2 || v > 36) {
            lex_err(rd, t->line, t->col, "bad number base %ld (2 to 36)", v);
            return TK_ERROR;
        }
        int base = (int)v, nd = 0;
        v = 0;
        while (rd->i < rd->len) {
            int dv = digit_in(rd->src[rd->i], base);
            if (dv < 0)
                break;
            v = mul_add(v, base, dv, &big);
            nd++;
            adv(rd);
        }
        if (!nd) {
            lex_err(rd, t->line, t->col, "no digits after '%d#'", base);
            return TK_ERROR;
        }
    } else if (rd->i + 1 < rd->len && rd->src[rd->i] == '.' && is_digit(rd->src[rd->i + 1])) {
        while (rd->i < rd->len && (is_name_char(rd->src[rd->i]) || rd->src[rd->i] == '.'))
            adv(rd);
        lex_err(rd, t->line, t->col, "floating-point numbers have no meaning in acl.conf rules");
        return TK_ERROR;
    }
    if (rd->i < rd->len && is_name_char(rd->src[rd->i])) {
        while (rd->i < rd->len && is_name_char(rd->src[rd->i]))
            adv(rd);
        lex_err(rd, t->line, t->col, "malformed number");
        return TK_ERROR;
    }
    t->num = neg ? -v : v;
    return TK_INT;
}

static const char *const reserved[] = {
    "after", "and",   "andalso", "band",   "begin",   "bnot", "bor", "bsl",  "bsr", "bxor",
    "case",  "catch", "cond",    "div",    "else",    "end",  "fun", "if",   "let", "maybe",
    "not",   "of",    "or",      "orelse", "receive", "rem",  "try", "when", "xor",
};

static void lex(struct wd_erl_reader *rd, struct tok *t)
{
    memset(t, 0, sizeof *t);
    /* whitespace (Erlang: every byte up to and including space) and % comments */
    while (rd->i < rd->len) {
        unsigned char c = (unsigned char)rd->src[rd->i];
        if (c == '%') {
            while (rd->i < rd->len && rd->src[rd->i] != '\n')
                rd->i++;
        } else if (c <= ' ') {
            adv(rd);
        } else {
            break;
        }
    }
    t->line = rd->line;
    t->col = col_here(rd);
    if (rd->i >= rd->len) {
        t->k = TK_EOF;
        goto out;
    }
    unsigned char c = (unsigned char)rd->src[rd->i];
    size_t start = rd->i;
    switch (c) {
    case '{':
        t->k = TK_LBRACE;
        adv(rd);
        goto out;
    case '}':
        t->k = TK_RBRACE;
        adv(rd);
        goto out;
    case '[':
        t->k = TK_LBRACK;
        adv(rd);
        goto out;
    case ']':
        t->k = TK_RBRACK;
        adv(rd);
        goto out;
    case ',':
        t->k = TK_COMMA;
        adv(rd);
        goto out;
    case '.':
        adv(rd);
        if (rd->i >= rd->len || (unsigned char)rd->src[rd->i] <= ' ' || rd->src[rd->i] == '%') {
            t->k = TK_DOT;
        } else {
            lex_err(rd, t->line, t->col,
                    "unexpected '.' (a term ends with '.' followed by a space or a new line)");
            t->k = TK_ERROR;
        }
        goto out;
    case '"':
    case '\'':
        t->k = lex_quoted(rd, t);
        goto out;
    case '$': { /* character literal: an integer */
        adv(rd);
        if (rd->i >= rd->len) {
            lex_err(rd, t->line, t->col, "'$' at the end of the file");
            t->k = TK_ERROR;
            goto out;
        }
        long v;
        if (rd->src[rd->i] == '\\') {
            adv(rd);
            const char *msg = "bad escape";
            v = lex_escape(rd, &msg);
            if (v == ESC_RAW) {
                v = (unsigned char)rd->src[rd->i];
                adv(rd);
            }
            if (v < 0) {
                lex_err(rd, t->line, t->col, "%s",
                        v == ESC_EOF ? "escape at the end of the file" : msg);
                t->k = TK_ERROR;
                goto out;
            }
        } else {
            v = (unsigned char)rd->src[rd->i];
            adv(rd);
        }
        t->num = v;
        t->k = TK_INT;
        goto out;
    }
    default:
        break;
    }
    if (is_digit(c) || (c == '-' && rd->i + 1 < rd->len && is_digit(rd->src[rd->i + 1]))) {
        t->k = lex_number(rd, t, c == '-');
        goto out;
    }
    if (c >= 'a' && c <= 'z') {
        while (rd->i < rd->len && is_name_char(rd->src[rd->i]))
            adv(rd);
        size_t n = rd->i - start;
        for (size_t k = 0; k < WD_ARRAY_LEN(reserved); k++) {
            if (strlen(reserved[k]) == n && memcmp(reserved[k], rd->src + start, n) == 0) {
                lex_err(rd, t->line, t->col,
                        "'%s' is an Erlang keyword: write the atom quoted, as '%s'", reserved[k],
                        reserved[k]);
                t->k = TK_ERROR;
                goto out;
            }
        }
        t->k = TK_ATOM;
        t->s = wd_arena_strndup(&rd->a, rd->src + start, n);
        t->len = n;
        goto out;
    }
    if ((c >= 'A' && c <= 'Z') || c == '_') {
        while (rd->i < rd->len && is_name_char(rd->src[rd->i]))
            adv(rd);
        size_t n = rd->i - start;
        lex_err(rd, t->line, t->col,
                "'%.*s' is an Erlang variable, which acl.conf cannot use (atoms start with a "
                "lowercase letter or are quoted: '%.*s')",
                (int)(n > 40 ? 40 : n), rd->src + start, (int)(n > 40 ? 40 : n), rd->src + start);
        t->k = TK_ERROR;
        goto out;
    }
    adv(rd);
    t->k = TK_ERROR;
    if (c == '<' && rd->i < rd->len && rd->src[rd->i] == '<')
        lex_err(rd, t->line, t->col, "binaries (<<...>>) are not supported: write a string");
    else if (c >= 0x20 && c < 0x7f)
        lex_err(rd, t->line, t->col, "unexpected character '%c'", c);
    else
        lex_err(rd, t->line, t->col, "unexpected byte 0x%02x outside a string", c);
    /* skip the rest of a UTF-8 sequence: one diagnostic per character */
    while (rd->i < rd->len && ((unsigned char)rd->src[rd->i] & 0xc0) == 0x80)
        adv(rd);
out:
    t->eline = rd->line;
    t->ecol = col_here(rd);
}

static const struct tok *peek(struct wd_erl_reader *rd)
{
    if (!rd->have) {
        lex(rd, &rd->cur);
        rd->have = true;
    }
    return &rd->cur;
}

static void consume(struct wd_erl_reader *rd)
{
    peek(rd);
    rd->last_line = rd->cur.eline;
    rd->last_col = rd->cur.ecol;
    rd->have = false;
}

static const char *tok_name(const struct tok *t)
{
    switch (t->k) {
    case TK_EOF:
        return "the end of the file";
    case TK_DOT:
        return "'.'";
    case TK_LBRACE:
        return "'{'";
    case TK_RBRACE:
        return "'}'";
    case TK_LBRACK:
        return "'['";
    case TK_RBRACK:
        return "']'";
    case TK_COMMA:
        return "','";
    case TK_ATOM:
        return "an atom";
    case TK_STRING:
        return "a string";
    case TK_INT:
        return "an integer";
    case TK_ERROR:
        break;
    }
    return "invalid input";
}

/* ---- parser ---- */

static struct wd_erl_term *new_term(struct wd_erl_reader *rd, enum wd_erl_kind k,
                                    const struct tok *t)
{
    if (++rd->nodes > WD_ERL_MAX_NODES) {
        if (!rd->too_big)
            err_at(rd, rd->term_line, rd->term_col, "term too large (more than %d elements)",
                   WD_ERL_MAX_NODES);
        rd->too_big = true;
        return NULL;
    }
    struct wd_erl_term *n = wd_arena_alloc(&rd->a, sizeof *n);
    n->k = k;
    n->line = t->line;
    n->col = t->col;
    return n;
}

static struct wd_erl_term *parse_term(struct wd_erl_reader *rd, int depth)
{
    const struct tok *t = peek(rd);
    struct wd_erl_term *n = NULL;
    switch (t->k) {
    case TK_ATOM:
    case TK_INT:
        n = new_term(rd, t->k == TK_ATOM ? WD_ERL_ATOM : WD_ERL_INT, t);
        if (n) {
            n->s = t->s;
            n->len = t->len;
            n->num = t->num;
        }
        consume(rd);
        return n;
    case TK_STRING: {
        n = new_term(rd, WD_ERL_STRING, t);
        if (!n)
            return NULL;
        n->s = t->s;
        n->len = t->len;
        consume(rd);
        if (peek(rd)->k != TK_STRING)
            return n;
        /* adjacent strings are one string, as in Erlang */
        ob_reset(&rd->cat);
        wd_buf_put(&rd->cat, n->s, n->len);
        while (peek(rd)->k == TK_STRING) {
            wd_buf_put(&rd->cat, rd->cur.s, rd->cur.len);
            consume(rd);
        }
        n->s = wd_arena_strndup(&rd->a, rd->cat.s, rd->cat.len);
        n->len = rd->cat.len;
        return n;
    }
    case TK_LBRACE:
    case TK_LBRACK: {
        bool tuple = t->k == TK_LBRACE;
        if (depth >= WD_ERL_MAX_DEPTH) {
            err_at(rd, t->line, t->col, "terms nested deeper than %d levels", WD_ERL_MAX_DEPTH);
            return NULL;
        }
        n = new_term(rd, tuple ? WD_ERL_TUPLE : WD_ERL_LIST, t);
        if (!n)
            return NULL;
        consume(rd);
        enum tk close = tuple ? TK_RBRACE : TK_RBRACK;
        if (peek(rd)->k == close) {
            consume(rd);
            return n;
        }
        const struct wd_erl_term *outer = rd->open;
        rd->open = n;
        struct wd_erl_term *tail = NULL;
        for (;;) {
            struct wd_erl_term *c = parse_term(rd, depth + 1);
            if (!c) {
                n = NULL;
                break;
            }
            if (tail)
                tail->next = c;
            else
                n->first = c;
            tail = c;
            n->n++;
            const struct tok *p = peek(rd);
            if (p->k == TK_COMMA) {
                consume(rd);
                continue;
            }
            if (p->k == close) {
                consume(rd);
                break;
            }
            if (p->k == TK_EOF)
                err(rd, n, "unterminated %s: this '%c' has no closing '%c'",
                    tuple ? "tuple" : "list", tuple ? '{' : '[', tuple ? '}' : ']');
            else if (p->k != TK_ERROR)
                err_at(rd, p->line, p->col, "expected ',' or '%c', got %s", tuple ? '}' : ']',
                       tok_name(p));
            n = NULL;
            break;
        }
        rd->open = outer;
        return n;
    }
    case TK_EOF:
        if (rd->open)
            err(rd, rd->open, "unterminated %s: this '%c' has no closing '%c'",
                rd->open->k == WD_ERL_TUPLE ? "tuple" : "list",
                rd->open->k == WD_ERL_TUPLE ? '{' : '[', rd->open->k == WD_ERL_TUPLE ? '}' : ']');
        else
            err_at(rd, t->line, t->col, "unexpected end of the file");
        return NULL;
    case TK_ERROR:
        return NULL;
    default:
        err_at(rd, t->line, t->col, "expected a term, got %s", tok_name(t));
        return NULL;
    }
}

/* After a syntax error: drop the rest of the term, up to and including its '.'. */
static void skip_term(struct wd_erl_reader *rd)
{
    rd->quiet = true;
    while (peek(rd)->k != TK_DOT && peek(rd)->k != TK_EOF)
        consume(rd);
    if (peek(rd)->k == TK_DOT)
        consume(rd);
    rd->quiet = false;
}

/* ---- the reader ---- */

struct wd_erl_reader *wd_erl_reader_new(const char *src, size_t len, struct wd_diags *d)
{
    struct wd_erl_reader *rd = wd_calloc(1, sizeof *rd);
    rd->src = src ? src : "";
    rd->len = src ? len : 0;
    rd->line = 1;
    rd->d = d;
    wd_arena_init(&rd->a);
    return rd;
}

void wd_erl_reader_free(struct wd_erl_reader *rd)
{
    if (!rd)
        return;
    wd_arena_free(&rd->a);
    free(rd->tmp.s);
    free(rd->cat.s);
    free(rd);
}

int wd_erl_read(struct wd_erl_reader *rd, const struct wd_erl_term **out)
{
    *out = NULL;
    /* one term per call; the previous one's arena goes */
    wd_arena_free(&rd->a);
    wd_arena_init(&rd->a);
    rd->nodes = 0;
    rd->too_big = false;
    rd->open = NULL;
    const struct tok *t = peek(rd);
    if (t->k == TK_EOF)
        return WD_ENOENT;
    rd->term_line = t->line;
    rd->term_col = t->col;
    struct wd_erl_term *term = parse_term(rd, 0);
    if (!term) {
        skip_term(rd);
        return WD_ESYNTAX;
    }
    const struct tok *e = peek(rd);
    if (e->k == TK_DOT) {
        consume(rd);
        *out = term;
        return WD_OK;
    }
    if (e->k == TK_EOF)
        err_at(rd, rd->last_line, rd->last_col,
               "missing '.' after the last term (each rule ends with '.')");
    else if (e->k != TK_ERROR)
        err_at(rd, rd->last_line, rd->last_col,
               "missing '.' after the term (each rule ends with '.'; found %s on line %u)",
               tok_name(e), e->line);
    skip_term(rd);
    return WD_ESYNTAX;
}
