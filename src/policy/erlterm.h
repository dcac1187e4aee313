/* SPDX-License-Identifier: Apache-2.0 */
/*
 * erlterm.h: a reader of Erlang terms, the subset that file:consult/1 reads from EMQX's
 * acl.conf: atoms (plain and 'quoted'), "strings" (every Erlang escape; adjacent strings
 * concatenate), integers (12, 1_000, 16#ff, -1, $c), {tuples} and [lists], `%` comments,
 * each top-level term ending with '.' and a blank. Floats, binaries, maps, variables and
 * keywords are errors. It knows nothing of what the terms mean: import.c reads acl.conf
 * rules from them.
 *
 * Errors go to the caller's diagnostics at file:line:col (columns count bytes); after an
 * error the rest of that term, up to its '.', is skipped and reading goes on with the next
 * term. Limits: nesting WD_ERL_MAX_DEPTH, WD_ERL_MAX_NODES elements per term; strings and
 * atoms are valid UTF-8 without NUL.
 */
#ifndef WD_POLICY_ERLTERM_H
#define WD_POLICY_ERLTERM_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/diag.h"

#define WD_ERL_MAX_DEPTH 64     /* tuple and list nesting in one term */
#define WD_ERL_MAX_NODES 200000 /* elements in one term: bounds memory per term */

enum wd_erl_kind {
    WD_ERL_ATOM,
    WD_ERL_STRING,
    WD_ERL_INT,
    WD_ERL_TUPLE,
    WD_ERL_LIST,
};

struct wd_erl_term {
    enum wd_erl_kind k;
    unsigned line, col; /* where it starts in the source, 1-based */
    const char *s;      /* ATOM, STRING: decoded UTF-8, NUL-terminated */
    size_t len;
    long num;                         /* INT (LONG_MAX for anything larger) */
    struct wd_erl_term *first, *next; /* TUPLE, LIST: children */
    size_t n;                         /* TUPLE, LIST: number of children */
};

struct wd_erl_reader;

/* A reader over src (len bytes, borrowed until wd_erl_reader_free; need not be
 * NUL-terminated). Diagnostics go to d (borrowed too). */
struct wd_erl_reader *wd_erl_reader_new(const char *src, size_t len, struct wd_diags *d);
void wd_erl_reader_free(struct wd_erl_reader *rd); /* NULL-safe */

/* Reads the next top-level term. Returns WD_OK with *out (valid until the next call or
 * wd_erl_reader_free), WD_ENOENT at the end of the input, or WD_ESYNTAX for a term with
 * errors (reported to the diagnostics; the term was skipped, call again for the next). */
int wd_erl_read(struct wd_erl_reader *rd, const struct wd_erl_term **out);

/* Helpers for messages about terms. */
bool wd_erl_is_atom(const struct wd_erl_term *t, const char *name);          /* NULL-safe */
const struct wd_erl_term *wd_erl_nth(const struct wd_erl_term *t, size_t i); /* or NULL */
/* "'atom'", "the string \"...\"", "the integer 3", "a tuple of 2 elements", "a list" */
void wd_erl_describe(const struct wd_erl_term *t, char *buf, size_t cap);
/* Printable excerpt of s: at most 40 bytes, control characters as '?', cut at a character
 * boundary, "..." when cut. */
void wd_erl_excerpt(const char *s, size_t n, char *buf, size_t cap);

#endif
