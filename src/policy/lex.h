/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lex.h: the policy lexer. Turns a whole file into an array of tokens (the parser wants
 * lookahead, and files are bounded). Strings are decoded (escapes resolved) into the
 * caller's arena. Newlines are tokens, except inside [...] and (...), where a
 * statement may continue. Lexical errors go to the diagnostics and produce an ERROR
 * token, so the parser can resynchronize at the next newline.
 */
#ifndef WD_LEX_H
#define WD_LEX_H

#include <stddef.h>

#include "core/arena.h"
#include "policy/diag.h"

#define WD_POLICY_MAX_STRING 4096

enum wd_tok {
    WD_TOK_EOF,
    WD_TOK_NEWLINE,
    WD_TOK_WORD,   /* keyword or field name: [a-z_][a-z0-9_.]* */
    WD_TOK_STRING, /* "..." */
    WD_TOK_NUMBER, /* decimal */
    WD_TOK_LBRACK,
    WD_TOK_RBRACK,
    WD_TOK_LPAREN,
    WD_TOK_RPAREN,
    WD_TOK_COMMA,
    WD_TOK_EQ,    /* = */
    WD_TOK_TILDE, /* ~ */
    WD_TOK_ERROR,
    WD_TOK_JSON, /* {...}: a raw JSON object (only with WD_LEX_JSON: tests files) */
};

struct wd_token {
    enum wd_tok kind;
    unsigned line, col;
    const char *text; /* WORD/STRING: NUL-terminated (decoded for strings) */
    size_t len;       /* of text */
    size_t srclen;    /* bytes of source the token spans (quotes and escapes included) */
    long num;         /* NUMBER */
};

struct wd_tokens {
    struct wd_token *v;
    size_t n;
};

/* Lexes src. Always succeeds (errors are diagnostics); the array ends with EOF. Token
 * texts are allocated in `strings`, so they can outlive the token array. */
void wd_lex(const char *src, size_t len, struct wd_diags *diags, struct wd_arena *strings,
            struct wd_tokens *out);
void wd_tokens_free(struct wd_tokens *t);

/* wd_lex with options. WD_LEX_JSON: a '{' starts a JSON object token that runs to its
 * matching '}' (strings and nesting respected; it may continue on the next lines, but a
 * line starting with a word in column 1 ends it unterminated, as for brackets). Its text is
 * the source bytes as written, braces included; nothing in it is checked here. Policy
 * files have no such token: there '{' stays an unexpected character. */
#define WD_LEX_JSON 1u
#define WD_LEX_JSON_MAX (64u << 10) /* bytes of one JSON token */
void wd_lex_ex(const char *src, size_t len, struct wd_diags *diags, struct wd_arena *strings,
               struct wd_tokens *out, unsigned flags);

const char *wd_tok_name(enum wd_tok k);

#endif
