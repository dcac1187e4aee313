/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lex.c: see lex.h. Columns count bytes from 1.
 */
#include "policy/lex.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "core/wd.h"

const char *wd_tok_name(enum wd_tok k)
{
    switch (k) {
    case WD_TOK_EOF:
        return "end of file";
    case WD_TOK_NEWLINE:
        return "end of line";
    case WD_TOK_WORD:
        return "word";
    case WD_TOK_STRING:
        return "string";
    case WD_TOK_NUMBER:
        return "number";
    case WD_TOK_LBRACK:
        return "'['";
    case WD_TOK_RBRACK:
        return "']'";
    case WD_TOK_LPAREN:
        return "'('";
    case WD_TOK_RPAREN:
        return "')'";
    case WD_TOK_COMMA:
        return "','";
    case WD_TOK_EQ:
        return "'='";
    case WD_TOK_TILDE:
        return "'~'";
    case WD_TOK_ERROR:
        return "invalid input";
    case WD_TOK_JSON:
        return "JSON object";
    }
    return "?";
}

struct lexer {
    const char *s;
    size_t len, i;
    unsigned line;
    size_t line_start;
    int depth; /* [ and ( nesting: newlines inside are not tokens */
    struct wd_diags *d;
    struct wd_tokens *out;
    struct wd_arena *strings;
    size_t cap;
};

static struct wd_token *emit(struct lexer *lx, enum wd_tok kind, size_t start)
{
    if (lx->out->n == lx->cap) {
        lx->cap = lx->cap ? lx->cap * 2 : 256;
        lx->out->v = wd_realloc(lx->out->v, lx->cap * sizeof *lx->out->v);
    }
    struct wd_token *t = &lx->out->v[lx->out->n++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->line = lx->line;
    t->col = (unsigned)(start - lx->line_start + 1);
    return t;
}

static void lex_string(struct lexer *lx)
{
    size_t start = lx->i;
    unsigned col = (unsigned)(start - lx->line_start + 1);
    lx->i++; /* opening quote */
    char *buf = wd_malloc(WD_POLICY_MAX_STRING + 1);
    size_t n = 0;
    int bad = 0;
    for (;;) {
        if (lx->i >= lx->len || lx->s[lx->i] == '\n') {
            wd_diag_add(lx->d, WD_DIAG_ERROR, lx->line, col, "unterminated string");
            bad = 1;
            break;
        }
        char c = lx->s[lx->i++];
        if (c == '"')
            break;
        if (c == '\\') {
            char e = lx->i < lx->len ? lx->s[lx->i++] : '\0';
            switch (e) {
            case '"':
            case '\\':
                c = e;
                break;
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case 'x': {
                int h = lx->i + 1 < lx->len ? wd_hexval(lx->s[lx->i]) : -1;
                int l = h >= 0 ? wd_hexval(lx->s[lx->i + 1]) : -1;
                if (h < 0 || l < 0) {
                    wd_diag_add(lx->d, WD_DIAG_ERROR, lx->line, (unsigned)(lx->i - lx->line_start),
                                "bad \\x escape");
                    bad = 1;
                    c = '?';
                } else {
                    c = (char)(h << 4 | l);
                    lx->i += 2;
                }
                break;
            }
            default:
                wd_diag_add(lx->d, WD_DIAG_ERROR, lx->line, (unsigned)(lx->i - lx->line_start),
                            "unknown escape '\\%c' (use \\\" \\\\ \\n \\t \\xHH)",
                            e >= 0x20 && e < 0x7f ? e : '?');
                bad = 1;
                c = '?';
            }
        }
        if (n == WD_POLICY_MAX_STRING) {
            if (!bad)
                wd_diag_add(lx->d, WD_DIAG_ERROR, lx->line, col, "string longer than %d bytes",
                            WD_POLICY_MAX_STRING);
            bad = 1;
            continue;
        }
        buf[n++] = c;
    }
    if (!bad && !wd_utf8_valid_nonul(buf, n)) {
        wd_diag_add(lx->d, WD_DIAG_ERROR, lx->line, col, "string is not valid UTF-8");
        bad = 1;
    }
    struct wd_token *t = emit(lx, bad ? WD_TOK_ERROR : WD_TOK_STRING, start);
    t->text = wd_arena_strndup(lx->strings, buf, n);
    t->len = n;
    t->srclen = lx->i - start;
    free(buf);
}

static int is_word_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* A JSON object from the '{' at lx->i to its matching '}' (WD_LEX_JSON). Only nesting and
 * strings are followed, to find the end; jansson reads it later and reports what is wrong
 * inside. */
static void lex_json(struct lexer *lx)
{
    size_t start = lx->i;
    unsigned line = lx->line, col = (unsigned)(start - lx->line_start + 1);
    int depth = 0;
    bool in_str = false;
    while (lx->i < lx->len) {
        char c = lx->s[lx->i];
        if (c == '\n') {
            if (in_str || (lx->i + 1 < lx->len && is_word_start(lx->s[lx->i + 1])))
                break; /* a JSON string never holds a raw newline; a new statement */
            lx->i++;
            lx->line++;
            lx->line_start = lx->i;
            continue;
        }
        lx->i++;
        if (in_str) {
            if (c == '\\' && lx->i < lx->len && lx->s[lx->i] != '\n')
                lx->i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && --depth == 0) {
            break;
        }
    }
    bool closed = depth == 0 && !in_str;
    size_t n = lx->i - start;
    struct wd_token *t = emit(lx, WD_TOK_JSON, start);
    t->line = line;
    t->col = col;
    if (!closed || n > WD_LEX_JSON_MAX) {
        if (closed)
            wd_diag_add(lx->d, WD_DIAG_ERROR, line, col, "JSON object longer than %u bytes",
                        WD_LEX_JSON_MAX);
        else
            wd_diag_add(lx->d, WD_DIAG_ERROR, line, col, "unterminated JSON object");
        t->kind = WD_TOK_ERROR;
        return;
    }
    t->text = wd_arena_strndup(lx->strings, lx->s + start, n);
    t->len = n;
    t->srclen = n;
}

static int is_word_char(char c)
{
    return is_word_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

void wd_lex(const char *src, size_t len, struct wd_diags *diags, struct wd_arena *strings,
            struct wd_tokens *out)
{
    wd_lex_ex(src, len, diags, strings, out, 0);
}

void wd_lex_ex(const char *src, size_t len, struct wd_diags *diags, struct wd_arena *strings,
               struct wd_tokens *out, unsigned flags)
{
    memset(out, 0, sizeof *out);
    struct lexer lx = {.s = src, .len = len, .line = 1, .d = diags, .out = out, .strings = strings};
    while (lx.i < lx.len) {
        char c = lx.s[lx.i];
        size_t start = lx.i;
        if (c == '\n') {
            /* inside [...] or (...) a statement continues on indented lines; a line that
             * starts with a word in column 1 is a new statement, so one unclosed bracket
             * cannot swallow the rest of the file */
            if (lx.depth > 0 && lx.i + 1 < lx.len && is_word_start(lx.s[lx.i + 1]))
                lx.depth = 0;
            if (lx.depth == 0)
                emit(&lx, WD_TOK_NEWLINE, start);
            lx.i++;
            lx.line++;
            lx.line_start = lx.i;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r') {
            lx.i++;
            continue;
        }
        if (c == '#') {
            while (lx.i < lx.len && lx.s[lx.i] != '\n')
                lx.i++;
            continue;
        }
        if (c == '"') {
            lex_string(&lx);
            continue;
        }
        if (c == '{' && (flags & WD_LEX_JSON)) {
            lex_json(&lx);
            continue;
        }
        if (c >= '0' && c <= '9') {
            while (lx.i < lx.len && lx.s[lx.i] >= '0' && lx.s[lx.i] <= '9')
                lx.i++;
            if (lx.i < lx.len && is_word_char(lx.s[lx.i])) {
                while (lx.i < lx.len && is_word_char(lx.s[lx.i]))
                    lx.i++;
                wd_diag_add(diags, WD_DIAG_ERROR, lx.line, (unsigned)(start - lx.line_start + 1),
                            "malformed number '%.*s' (addresses and names are strings: quote them)",
                            (int)(lx.i - start), lx.s + start);
                emit(&lx, WD_TOK_ERROR, start);
                continue;
            }
            struct wd_token *t = emit(&lx, WD_TOK_NUMBER, start);
            errno = 0;
            char tmp[32];
            size_t n = lx.i - start < sizeof tmp - 1 ? lx.i - start : sizeof tmp - 1;
            memcpy(tmp, lx.s + start, n);
            tmp[n] = '\0';
            t->num = strtol(tmp, NULL, 10);
            if (errno || lx.i - start > 10) {
                wd_diag_add(diags, WD_DIAG_ERROR, lx.line, t->col, "number too large");
                t->kind = WD_TOK_ERROR;
            }
            continue;
        }
        if (is_word_start(c)) {
            while (lx.i < lx.len && is_word_char(lx.s[lx.i]))
                lx.i++;
            struct wd_token *t = emit(&lx, WD_TOK_WORD, start);
            t->text = wd_arena_strndup(strings, lx.s + start, lx.i - start);
            t->len = lx.i - start;
            continue;
        }
        enum wd_tok k = WD_TOK_ERROR;
        switch (c) {
        case '[':
            k = WD_TOK_LBRACK;
            lx.depth++;
            break;
        case ']':
            k = WD_TOK_RBRACK;
            if (lx.depth > 0)
                lx.depth--;
            break;
        case '(':
            k = WD_TOK_LPAREN;
            lx.depth++;
            break;
        case ')':
            k = WD_TOK_RPAREN;
            if (lx.depth > 0)
                lx.depth--;
            break;
        case ',':
            k = WD_TOK_COMMA;
            break;
        case '=':
            k = WD_TOK_EQ;
            break;
        case '~':
            k = WD_TOK_TILDE;
            break;
        default:
            break;
        }
        lx.i++;
        if (k == WD_TOK_ERROR) {
            unsigned char u = (unsigned char)c;
            if (u >= 0x20 && u < 0x7f)
                wd_diag_add(diags, WD_DIAG_ERROR, lx.line, (unsigned)(start - lx.line_start + 1),
                            "unexpected character '%c'", c);
            else
                wd_diag_add(diags, WD_DIAG_ERROR, lx.line, (unsigned)(start - lx.line_start + 1),
                            "unexpected byte 0x%02x outside a string", u);
        }
        emit(&lx, k, start);
    }
    emit(&lx, WD_TOK_NEWLINE, lx.i);
    emit(&lx, WD_TOK_EOF, lx.i);
}

void wd_tokens_free(struct wd_tokens *t)
{
    free(t->v);
    memset(t, 0, sizeof *t);
}
