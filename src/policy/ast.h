/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ast.h: the parsed form of a policy file, one node per statement, with source
 * positions for diagnostics. Everything lives in the AST's arena. The grammar is in
 * docs/policy.md; the parser (parse.c) checks syntax, the compiler (compile.c) meaning.
 */
#ifndef WD_AST_H
#define WD_AST_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/request.h"
#include "core/wd.h"
#include "policy/diag.h"

enum wd_field {
    WD_FIELD_USERNAME,
    WD_FIELD_CLIENTID,
    WD_FIELD_CN,
    WD_FIELD_PROTOCOL,
    WD_FIELD_PEER,
    WD_FIELD_PORT,
};

enum wd_ast_cond_kind {
    WD_AC_OR,
    WD_AC_AND,
    WD_AC_NOT,
    WD_AC_EQ, /* field = value */
    WD_AC_IN, /* field in [values] */
    WD_AC_RE, /* field ~ "regex" */
    WD_AC_SUPERUSER,
    WD_AC_ANONYMOUS,
};

struct wd_ast_value {
    bool is_num;
    const char *s; /* strings: NUL-terminated, UTF-8 */
    size_t len;
    long num;
    unsigned line, col;
};

struct wd_ast_cond {
    enum wd_ast_cond_kind kind;
    enum wd_field field;
    struct wd_ast_cond *l, *r; /* OR/AND: both; NOT: l */
    struct wd_ast_value *vals;
    size_t nvals;
    unsigned line, col;
};

struct wd_ast_topic {
    bool eq;
    const char *text;
    size_t len;
    unsigned line, col;
};

enum wd_ast_stmt_kind {
    WD_AS_USER,
    WD_AS_AUTHN,
    WD_AS_RULE,
    WD_AS_SOURCE,
    WD_AS_AUTHZ_DEFAULT,
};

enum wd_authn_step {
    WD_STEP_USERS,
    WD_STEP_ANONYMOUS, /* decision: allow/deny */
    WD_STEP_DECIDE,    /* decision when COND */
    WD_STEP_REDIS,
    WD_STEP_JWT,
    WD_STEP_DEFAULT, /* decision */
};

enum wd_source {
    WD_SOURCE_REDIS,
    WD_SOURCE_JWT,
};

/* action bits: the enum wd_action values, which are bits (the stores' WD_ACL_* too) */
#define WD_ACT_PUBLISH ((unsigned)WD_ACTION_PUBLISH)
#define WD_ACT_SUBSCRIBE ((unsigned)WD_ACTION_SUBSCRIBE)

struct wd_ast_stmt {
    enum wd_ast_stmt_kind kind;
    unsigned line, col;
    /* user */
    const char *name, *secret;
    unsigned name_col, secret_col;
    size_t secret_srclen; /* for redacting the secret when a diagnostic shows the line */
    bool superuser;
    /* authn */
    enum wd_authn_step step;
    enum wd_decision decision; /* authn anonymous/decide/default, rule permission, authz default */
    /* rule */
    unsigned actions; /* WD_ACT_* mask */
    struct wd_ast_topic *topics;
    size_t ntopics;
    bool has_qos;
    unsigned qos_mask; /* bit n: QoS n */
    int retain;        /* -1 unset, 0, 1 */
    unsigned qos_col, retain_col;
    /* source */
    enum wd_source source;
    /* authn steps, rules, sources */
    struct wd_ast_cond *when;
};

struct wd_ast {
    struct wd_ast_stmt *stmts;
    size_t n;
    struct wd_arena arena;
};

/* Parses src into ast (errors go to diags; statements with errors are dropped). */
void wd_parse(const char *src, size_t len, struct wd_diags *diags, struct wd_ast *ast);
void wd_ast_free(struct wd_ast *ast);

const char *wd_field_name(enum wd_field f);

#endif
