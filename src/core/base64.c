/* SPDX-License-Identifier: Apache-2.0 */
/*
 * base64.c: see base64.h.
 */
#include "core/base64.h"

#include <stdint.h>

#include "core/wd.h"

static int value(int ch, enum wd_base64_alphabet alpha)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == (alpha == WD_BASE64_URL ? '-' : '+'))
        return 62;
    if (ch == (alpha == WD_BASE64_URL ? '_' : '/'))
        return 63;
    return -1;
}

size_t wd_base64_decoded_max(size_t n)
{
    return n / 4 * 3 + 3;
}

int wd_base64_decode(const char *in, size_t n, enum wd_base64_alphabet alpha, unsigned char *out,
                     size_t cap, size_t *outlen)
{
    *outlen = 0;
    if (n % 4 == 1)
        return WD_EINVAL;
    if (n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
        return WD_ERANGE;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = value((unsigned char)in[i], alpha);
        if (v < 0)
            return WD_EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* unused bits set: not the canonical encoding */
        return WD_EINVAL;
    *outlen = o;
    return WD_OK;
}

void wd_base64_encode(struct wd_buf *b, const void *data, size_t n, enum wd_base64_alphabet alpha)
{
    const char *tab = alpha == WD_BASE64_URL
                          ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                          : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned long v = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8 | p[i + 2];
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};
        wd_buf_put(b, q, 4);
    }
    if (n - i == 1) {
        unsigned long v = (unsigned long)p[i] << 16;
        char q[2] = {tab[v >> 18], tab[(v >> 12) & 63]};
        wd_buf_put(b, q, 2);
    } else if (n - i == 2) {
        unsigned long v = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8;
        char q[3] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63]};
        wd_buf_put(b, q, 3);
    }
}
