/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wd.c: status text and the aborting allocators declared in wd.h.
 */
#include "core/wd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *wd_rc_str(int rc)
{
    switch (rc) {
#define WD_RC_TEXT(name, val, text)                                                                \
    case (val):                                                                                    \
        return text;
        WD_RC_MAP(WD_RC_TEXT)
#undef WD_RC_TEXT
    }
    return "unknown error";
}

const char *wd_decision_str(enum wd_decision d)
{
    switch (d) {
    case WD_DECISION_ALLOW:
        return "allow";
    case WD_DECISION_DENY:
        return "deny";
    case WD_DECISION_NOMATCH:
        return "nomatch";
    }
    return "?";
}

static void oom(size_t n)
{
    fprintf(stderr, "warden: out of memory allocating %zu bytes, aborting\n", n);
    abort();
}

void *wd_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *wd_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *wd_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *wd_strdup(const char *s)
{
    return wd_strndup(s, strlen(s));
}

char *wd_strndup(const char *s, size_t n)
{
    char *p = wd_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int wd_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void wd_seterr(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}
