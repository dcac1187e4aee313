/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json.c: see json.h. The UTF-8 check is utf8.c's strict one, one sequence at a time.
 */
#include "core/json.h"

#include <stdint.h>
#include <stdio.h>

#include "core/utf8.h"

bool wd_json_str(struct wd_buf *b, const char *s, size_t n, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    bool cut = false;
    wd_buf_putc(b, '"');
    size_t i = 0;
    while (i < n) {
        size_t len = wd_utf8_seq_len(p + i, n - i);
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
