/* SPDX-License-Identifier: Apache-2.0 */
/*
 * buf.h: a growable, always NUL-terminated byte buffer for building text (diagnostics,
 * canonical rule text, translated policies). Allocation aborts on OOM like wd_malloc. An
 * optional limit bounds the size: appends past it are dropped and `full` is set, so a
 * caller producing output from untrusted input can refuse instead of growing without end.
 */
#ifndef WD_BUF_H
#define WD_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct wd_buf {
    char *s; /* NULL until the first append */
    size_t len, cap;
    size_t limit; /* 0: none */
    bool full;
};

void wd_buf_put(struct wd_buf *b, const void *p, size_t n);
void wd_buf_puts(struct wd_buf *b, const char *s);
void wd_buf_putc(struct wd_buf *b, char c);
void wd_buf_printf(struct wd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wd_buf_free(struct wd_buf *b);

#endif
