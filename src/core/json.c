/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json.c: see json.h. The UTF-8 check is the strict one (no overlongs, no surrogates,
 * nothing above U+10FFFF), one sequence at a time.
 */
#include "core/json.h"

#include <stdint.h>
#include <stdio.h>

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if it is not one. */
static size_t seq_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

bool wd_json_str(struct wd_buf *b, const char *s, size_t n, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    bool cut = false;
    wd_buf_putc(b, '"');
    size_t i = 0;
    while (i < n) {
        size_t len = seq_len(p + i, n - i);
        size_t take = len ? len : 1;
        if (max && i + take > max) {
            cut = true;
            break;
        }
        unsigned char c = p[i];
        char esc[8];
        if (len == 0) {
            wd_buf_puts(b, "\\ufffd");
        } else if (c == '"') {
            wd_buf_puts(b, "\\\"");
        } else if (c == '\\') {
            wd_buf_puts(b, "\\\\");
        } else if (c == '\n') {
            wd_buf_puts(b, "\\n");
        } else if (c == '\r') {
            wd_buf_puts(b, "\\r");
        } else if (c == '\t') {
            wd_buf_puts(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            wd_buf_puts(b, esc);
        } else if (len == 3 && c == 0xe2 && p[i + 1] == 0x80 &&
                   (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)) {
            wd_buf_puts(b, p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
        } else {
            wd_buf_put(b, p + i, len);
        }
        i += take;
    }
    wd_buf_putc(b, '"');
    return cut;
}
