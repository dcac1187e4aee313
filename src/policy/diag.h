/* SPDX-License-Identifier: Apache-2.0 */
/*
 * diag.h: diagnostics for policy files: severity, file:line:col, message; rendered with
 * the source line and a caret. Every stage adds to one list so a single pass reports
 * every problem. Bounded: past WD_DIAG_MAX entries one "too many diagnostics" note ends
 * the list.
 */
#ifndef WD_DIAG_H
#define WD_DIAG_H

#include <stddef.h>

#define WD_DIAG_MAX 200

enum wd_diag_sev {
    WD_DIAG_ERROR,
    WD_DIAG_WARNING,
};

struct wd_diag {
    enum wd_diag_sev sev;
    unsigned line, col; /* 1-based; col 0 = no column */
    char *msg;
    int syntax; /* from the lexer or parser: may quote any token, a secret included */
};

struct wd_redaction {
    unsigned line, col;
    size_t len;
};

struct wd_diags {
    char *file;
    const char *src; /* borrowed; only needed while rendering */
    size_t srclen;
    struct wd_diag *v;
    size_t n, cap;
    size_t nerrors, nwarnings;
    int truncated;
    struct wd_redaction *red; /* source spans never to echo (secrets) */
    size_t nred, capred;
    /* the source is a policy file (set by the compiler): lines that are not a well-formed
     * rule, step or default may hold a secret, and are masked when rendered (below) */
    int policy;
    int in_syntax; /* set while lexing and parsing (wd_diag.syntax) */
};

void wd_diags_init(struct wd_diags *d, const char *file, const char *src, size_t srclen);
void wd_diags_cleanup(struct wd_diags *d);
/* Drops every diagnostic and resets the counts (file, source and redactions stay). */
void wd_diags_clear(struct wd_diags *d);
void wd_diag_add(struct wd_diags *d, enum wd_diag_sev sev, unsigned line, unsigned col,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Marks `len` source bytes at line:col as secret: rendered source lines show them as '*'
 * (between the quotes), so a diagnostic can point at a secret without revealing it. */
void wd_diags_redact(struct wd_diags *d, unsigned line, unsigned col, size_t len);

/* Renders every diagnostic, in line order, as
 *   file:line:col: error: message
 *       7 | source line
 *         |     ^
 * Returns a malloc'd string (possibly empty).
 *
 * In a policy file (d->policy) a `user` statement holds a secret, and a broken one may
 * not even be recognized as one (`usr "a" "plain:x"`, an unquoted or unterminated
 * secret, the secret on the next line). So every line that does not start with a
 * keyword that never takes a secret (authn, allow, deny, rules, authz) is masked after
 * its first word and, when more follows it on the line, its first string (the user
 * name); so are the indented lines that follow it and lines that start with neither a
 * word nor indentation. A lexer or parser diagnostic (which may quote any token) at a
 * masked position has the quoted text and numbers of its message masked too, and is
 * replaced by a generic message if any word of the masked text would still show. */
char *wd_diags_render(const struct wd_diags *d);

#endif
