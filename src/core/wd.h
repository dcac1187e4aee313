/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wd.h: basics every layer shares. One status enum built from one X-macro list (0 is ok,
 * errors are negative), wd_rc_str() for its text, the decision enum (a decision is not an
 * error), and a few allocation helpers that abort on OOM: a daemon that cannot allocate a
 * few bytes cannot answer correctly anyway, and failing loudly beats answering wrongly.
 */
#ifndef WD_H
#define WD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WD_RC_MAP(X)                                                                               \
    X(OK, 0, "ok")                                                                                 \
    X(ENOMEM, -1, "out of memory")                                                                 \
    X(EINVAL, -2, "invalid argument")                                                              \
    X(ERANGE, -3, "value out of range")                                                            \
    X(ETOOBIG, -4, "input too large")                                                              \
    X(EIO, -5, "input/output error")                                                               \
    X(ENOENT, -6, "not found")                                                                     \
    X(ESYNTAX, -7, "syntax error")                                                                 \
    X(EDECODE, -8, "cannot decode request")                                                        \
    X(EBACKEND, -9, "backend failure")                                                             \
    X(ETIMEDOUT, -10, "timed out")                                                                 \
    X(EBIND, -11, "cannot bind listening address")                                                 \
    X(ETLS, -12, "TLS configuration error")                                                        \
    X(EBUSY, -13, "over capacity")                                                                 \
    X(EAGAIN, -14, "waiting for a back end")

enum wd_rc {
#define WD_RC_ENUM(name, val, text) WD_##name = (val),
    WD_RC_MAP(WD_RC_ENUM)
#undef WD_RC_ENUM
};

/* Text for a status code; never NULL ("unknown error" for values not in the map). */
const char *wd_rc_str(int rc);

/* The outcome of an authentication or authorization check. NOMATCH means "nothing in
 * warden's configuration decided": how it is answered on the wire is configurable
 * (see docs/configuration.md, nomatch_reply). */
enum wd_decision {
    WD_DECISION_NOMATCH = 0,
    WD_DECISION_ALLOW,
    WD_DECISION_DENY,
};

const char *wd_decision_str(enum wd_decision d);

/* Allocation that aborts on OOM (CONVENTIONS: OOM aborts, oversized input is an error). */
void *wd_malloc(size_t n);
void *wd_calloc(size_t n, size_t size);
void *wd_realloc(void *p, size_t n);

/* Formats an error message into err[0..cap) (nothing when err is NULL or cap is 0). */
void wd_seterr(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
char *wd_strdup(const char *s);
char *wd_strndup(const char *s, size_t n);

/* Value of a hex digit (either case), or -1. */
int wd_hexval(int c);

#define WD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
