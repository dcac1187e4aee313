/* SPDX-License-Identifier: Apache-2.0 */
/*
 * buf.c: see buf.h.
 */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/wd.h"

void wd_buf_put(struct wd_buf *b, const void *p, size_t n)
{
    if (b->full)
        return;
    if (b->limit && n > b->limit - b->len) {
        b->full = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->s = wd_realloc(b->s, cap);
        b->cap = cap;
    }
    if (n)
        memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void wd_buf_puts(struct wd_buf *b, const char *s)
{
    wd_buf_put(b, s, strlen(s));
}

void wd_buf_putc(struct wd_buf *b, char c)
{
    wd_buf_put(b, &c, 1);
}

void wd_buf_printf(struct wd_buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        wd_buf_put(b, tmp, (size_t)n);
        return;
    }
    char *big = wd_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    wd_buf_put(b, big, (size_t)n);
    free(big);
}

void wd_buf_free(struct wd_buf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}
